//! The scan floor for `bench/compare.sh`: reads every column the pipeline declares, over the
//! day partitions the pipeline's window touches (previous window start to as-of), with nothing
//! else — no joins, no aggregation beyond what forces every value to be decoded. A pipeline run
//! cannot be faster than this on the same machine and thread count.
//!
//! usage: cargo run --release --example scan_floor -- DATA_ROOT PIPELINE_YAML AS_OF WINDOW_DAYS THREADS

use std::time::Instant;

use chrono::{Days, NaiveDate};
use refopt_engine::execution::session::{SessionOptions, new_session};
use refopt_engine::{execution::datasets::register_datasets, storage};
use refopt_spec::Pipeline;
use refopt_spec::pipeline::ColumnType;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, root, pipeline, as_of, window_days, threads] = args.as_slice() else {
        return Err("usage: scan_floor DATA_ROOT PIPELINE_YAML AS_OF WINDOW_DAYS THREADS".into());
    };
    let pipeline = Pipeline::load(std::path::Path::new(pipeline))?;
    let end = NaiveDate::parse_from_str(as_of, "%Y-%m-%d")?;
    let start = end - Days::new(2 * window_days.parse::<u64>()?);
    let ctx = new_session(&SessionOptions {
        threads: Some(threads.parse()?),
        ..Default::default()
    })?;
    let location = storage::resolve(root)?;
    let began = Instant::now();
    register_datasets(&ctx, &location, &pipeline.datasets).await?;
    let mut rows = 0u64;
    for d in &pipeline.datasets {
        // An aggregate over an expression of every value: forces decoding (a bare MIN or COUNT
        // could be answered from Parquet statistics without reading the data).
        let columns: Vec<String> = d
            .required_columns
            .iter()
            .map(|c| match d.column_types.get(c) {
                Some(ColumnType::Int64 | ColumnType::Float64) => format!("SUM(\"{c}\")"),
                Some(ColumnType::Bool) => format!("SUM(CASE WHEN \"{c}\" THEN 1 ELSE 0 END)"),
                Some(ColumnType::Timestamp | ColumnType::Date) => {
                    format!("MAX(date_part('epoch', \"{c}\"))")
                }
                _ => format!("MAX(character_length(\"{c}\"))"),
            })
            .collect();
        let filter = if d.partitioned_by_day {
            format!(" WHERE dt >= '{start}' AND dt < '{end}'")
        } else {
            String::new()
        };
        let sql = format!(
            "SELECT COUNT(*), {} FROM {}{filter}",
            columns.join(", "),
            d.name
        );
        let batches = ctx.sql(&sql).await?.collect().await?;
        let count = batches[0]
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .map_or(0, |a| a.value(0));
        rows += count as u64;
    }
    println!(
        "{{\"total_s\": {:.3}, \"rows\": {rows}}}",
        began.elapsed().as_secs_f64()
    );
    Ok(())
}
