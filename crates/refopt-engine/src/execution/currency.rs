//! Money in one currency: a dataset that declares `currency: {column, expect}` must have every
//! row of the run's windows (current and previous) in that currency, or the run stops before
//! any stage sums its amounts (refopt converts nothing).

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::ParamValues;
use datafusion::prelude::SessionContext;
use refopt_spec::{Diagnostic, Diagnostics, Pipeline};

use crate::error::EngineError;
use crate::metrics::data_tests::{ident, query_one, window_rows};

/// Checks every dataset with a declared currency; the error names the dataset, the column and
/// the currencies found with their row counts (`null` for rows without one).
pub async fn check_single_currency(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    params: &ParamValues,
) -> Result<(), EngineError> {
    let mut problems = Vec::new();
    for dataset in &pipeline.datasets {
        let Some(currency) = &dataset.currency else {
            continue;
        };
        let column = ident(&currency.column);
        let sql = format!(
            "SELECT CAST(COALESCE(CAST({column} AS VARCHAR), 'null') AS VARCHAR) AS currency, \
             COUNT(*) AS row_count FROM ({}) GROUP BY 1 ORDER BY 2 DESC, 1",
            window_rows(dataset)
        );
        let batches = query_one(ctx, params, &sql).await?;
        let mut others = Vec::new();
        for batch in &batches {
            let codes = cast(batch.column(0), &DataType::Utf8)?;
            let codes = codes.as_string::<i32>();
            let counts = cast(batch.column(1), &DataType::Int64)?;
            let counts = counts.as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                let code = codes.value(row);
                if code != currency.expect {
                    others.push(format!("{} row(s) in {code}", counts.value(row)));
                }
            }
        }
        if !others.is_empty() {
            problems.push(Diagnostic::new(
                dataset.location.clone(),
                format!(
                    "dataset `{}`, column `{}`: {} in the window; refopt sums money in one currency, {} (`currency.expect`): convert the amounts upstream, or run one program per currency",
                    dataset.name,
                    currency.column,
                    others.join(", "),
                    currency.expect
                ),
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(EngineError::Datasets(Diagnostics(problems)))
    }
}
