//! Registers the pipeline's datasets as DataFusion listing tables over Parquet, with Hive `dt`
//! day partitions for pruning, after checking that each dataset exists and has its required
//! columns. All dataset problems are collected and reported together.
//!
//! Stages read a dataset through a view that turns NaN and infinite floating-point values into
//! nulls, so no sum, mean or plan field is ever poisoned by one; the data tests count them on
//! the files as they are (the `__raw_<dataset>` table) and name dataset and column.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use refopt_spec::{Code, ColumnType, Dataset, Diagnostic};

use crate::error::EngineError;
use crate::storage::StorageLocation;

/// A dataset as registered: where it is and how big it is.
#[derive(Debug, Clone)]
pub struct RegisteredDataset {
    pub name: String,
    pub url: String,
    pub files: u64,
    pub bytes: u64,
    /// SHA-256 over the dataset's files (path, size, ETag or modification time).
    pub fingerprint: String,
}

/// Registers every dataset, or fails listing every missing dataset and column.
pub async fn register_datasets(
    ctx: &SessionContext,
    root: &StorageLocation,
    datasets: &[Dataset],
) -> Result<Vec<RegisteredDataset>, EngineError> {
    root.register(ctx);
    let results =
        futures::future::join_all(datasets.iter().map(|d| register_one(ctx, root, d))).await;
    let mut registered = Vec::new();
    let mut problems = Vec::new();
    for r in results {
        match r {
            Ok(d) => registered.push(d),
            Err(Registration::Problems(p)) => problems.extend(p),
            Err(Registration::Engine(e)) => return Err(e),
        }
    }
    if !problems.is_empty() {
        return Err(EngineError::Datasets(refopt_spec::Diagnostics(problems)));
    }
    Ok(registered)
}

/// The table holding a dataset's rows as stored (NaN and infinite values included).
pub fn raw_table_name(dataset: &str) -> String {
    format!("__raw_{dataset}")
}

/// SQL that is true when the float `column` (an SQL expression) is NaN or infinite.
pub fn non_finite_sql(column: &str) -> String {
    format!("(isnan({column}) OR abs({column}) > 1.7976931348623157e308)")
}

/// Registers `table` as the raw table and, under the dataset's name, a view reading every
/// non-finite float as null and every `money` column as exact cents (`DECIMAL(18, 2)`, to the
/// nearest cent; null when out of range) — the table itself when neither applies.
async fn register_with_finite_view(
    ctx: &SessionContext,
    dataset: &Dataset,
    table: Arc<ListingTable>,
) -> Result<(), EngineError> {
    use datafusion::catalog::TableProvider;
    let name = dataset.name.as_str();
    let schema = table.schema();
    let raw = raw_table_name(name);
    ctx.register_table(raw.as_str(), table.clone())?;
    let is_float =
        |t: &DataType| matches!(t, DataType::Float16 | DataType::Float32 | DataType::Float64);
    let is_money = |column: &str| dataset.column_types.get(column) == Some(&ColumnType::Money);
    if !schema
        .fields()
        .iter()
        .any(|f| is_float(f.data_type()) || is_money(f.name()))
    {
        ctx.register_table(name, table)?;
        return Ok(());
    }
    let columns: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| {
            let c = crate::metrics::data_tests::ident(f.name());
            let finite = if is_float(f.data_type()) {
                format!("CASE WHEN {} THEN NULL ELSE {c} END", non_finite_sql(&c))
            } else {
                c.clone()
            };
            if is_money(f.name()) {
                format!("TRY_CAST({finite} AS {MONEY_SQL}) AS {c}")
            } else if finite != c {
                format!("{finite} AS {c}")
            } else {
                c
            }
        })
        .collect();
    let view = ctx
        .sql(&format!(
            "SELECT {} FROM {}",
            columns.join(", "),
            crate::metrics::data_tests::ident(&raw)
        ))
        .await?
        .into_view();
    ctx.register_table(name, view)?;
    Ok(())
}

/// [`crate::execution::column_types::MONEY`] in SQL.
pub const MONEY_SQL: &str = "DECIMAL(18, 2)";

/// SQL that is true when the money `column` (a float or decimal SQL expression, finite) is not
/// a whole number of cents within `DECIMAL(18, 2)`: what the stages read differs from it.
pub fn not_cents_sql(column: &str) -> String {
    format!(
        "(abs(CAST({column} AS DOUBLE)) >= 1e16 OR abs(CAST({column} AS DOUBLE) * 100 - round(CAST({column} AS DOUBLE) * 100)) > 1e-6)"
    )
}

/// Most files named per dataset in one error (the rest are counted).
const FILES_NAMED: usize = 10;

/// Reads each file's footer: a file that is not readable Parquet, lacks a required column or has
/// one of another type than declared is a problem naming the dataset, the file and the column.
async fn check_each_file(
    state: &datafusion::execution::SessionState,
    root: &StorageLocation,
    dataset: &Dataset,
    files: &[&object_store::ObjectMeta],
) -> Result<Vec<Diagnostic>, Registration> {
    use datafusion::datasource::file_format::FileFormat;
    use futures::StreamExt;
    let format = ParquetFormat::default();
    let checks = futures::stream::iter(files.iter().map(|file| {
        let format = &format;
        async move {
            let url = format!("{}{}", root.store_url, file.location);
            let shown = crate::storage::redact(&url);
            match format
                .infer_schema(state, &root.store, std::slice::from_ref(*file))
                .await
            {
                Err(e) if crate::error::caused_by_object_store(&e) => {
                    Err(Registration::Engine(EngineError::storage_while(
                        shown,
                        format_args!("cannot read dataset `{}`", dataset.name),
                        e,
                    )))
                }
                Err(e) => Ok(vec![format!("{shown} is not readable Parquet: {e}")]),
                Ok(schema) => Ok(dataset
                    .required_columns
                    .iter()
                    .filter_map(|c| match schema.field_with_name(c) {
                        Err(_) => Some(format!("{shown} lacks required column `{c}`")),
                        Ok(f) => dataset.column_types.get(c).and_then(|declared| {
                            (!crate::execution::column_types::matches(*declared, f.data_type()))
                                .then(|| {
                                    format!(
                                        "{shown}: column `{c}` is {} (declared {})",
                                        f.data_type(),
                                        declared.name()
                                    )
                                })
                        }),
                    })
                    .collect()),
            }
        }
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
    let mut lines = Vec::new();
    for check in checks {
        lines.extend(check?);
    }
    Ok(file_problems(dataset, lines))
}

/// One diagnostic per file line of `dataset` (sorted), the first [`FILES_NAMED`] named and
/// the rest counted.
fn file_problems(dataset: &Dataset, mut lines: Vec<String>) -> Vec<Diagnostic> {
    lines.sort();
    let more = lines.len().saturating_sub(FILES_NAMED);
    lines.truncate(FILES_NAMED);
    if more > 0 {
        lines.push(format!("... and {more} more"));
    }
    lines
        .into_iter()
        .map(|line| {
            Diagnostic::of(
                Code::Dataset,
                dataset.location.clone(),
                format!("dataset `{}`: {line}", dataset.name),
            )
        })
        .collect()
}

enum Registration {
    Problems(Vec<Diagnostic>),
    Engine(EngineError),
}

async fn register_one(
    ctx: &SessionContext,
    root: &StorageLocation,
    dataset: &Dataset,
) -> Result<RegisteredDataset, Registration> {
    let prefix = root.child(&dataset.path);
    let display = root.display_of(&dataset.path);
    let objects: Vec<_> = root
        .store
        .list(Some(&prefix))
        .try_collect()
        .await
        .map_err(|e| Registration::Engine(EngineError::storage(display.clone(), e)))?;
    let parquet: Vec<_> = objects
        .iter()
        .filter(|o| o.location.as_ref().ends_with(".parquet"))
        .collect();
    if parquet.is_empty() {
        return Err(Registration::Problems(vec![Diagnostic::of(
            Code::Dataset,
            dataset.location.clone(),
            format!(
                "dataset `{}` not found: no Parquet files under {display}/",
                dataset.name
            ),
        )]));
    }
    let files = parquet.len() as u64;
    let bytes = parquet.iter().map(|o| o.size).sum();
    // What the data is, for the run's inputs fingerprint: every file's path, size and version
    // tag (ETag, or the modification time where the store has none).
    let mut listing: Vec<String> = parquet
        .iter()
        .map(|o| {
            format!(
                "{} {} {}",
                o.location,
                o.size,
                o.e_tag
                    .clone()
                    .unwrap_or_else(|| o.last_modified.timestamp_micros().to_string())
            )
        })
        .collect();
    listing.sort();
    let fingerprint = crate::config_hash::sha256_hex(listing.join("\n").as_bytes());

    let table_url = ListingTableUrl::parse(root.folder_url(&dataset.path))
        .map_err(|e| Registration::Engine(EngineError::storage(display.clone(), e)))?;
    let mut options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    if dataset.partitioned_by_day {
        options = options.with_table_partition_cols(vec![("dt".to_string(), DataType::Utf8)]);
    }
    let state = ctx.state();
    let schema = match options.infer_schema(&state, &table_url).await {
        Ok(schema) => schema,
        Err(e) if crate::error::caused_by_object_store(&e) => {
            return Err(Registration::Engine(EngineError::storage_while(
                display.clone(),
                format_args!("cannot read dataset `{}`", dataset.name),
                e,
            )));
        }
        Err(e) => {
            // Name the file(s) at fault, not just the folder.
            let mut problems = check_each_file(&state, root, dataset, &parquet).await?;
            if problems.is_empty() {
                problems.push(Diagnostic::of(
                    Code::Dataset,
                    dataset.location.clone(),
                    format!(
                        "dataset `{}` at {display}/ is not readable Parquet: {e}",
                        dataset.name
                    ),
                ));
            }
            return Err(Registration::Problems(problems));
        }
    };
    let missing: Vec<Diagnostic> = dataset
        .required_columns
        .iter()
        .filter(|c| schema.field_with_name(c).is_err())
        .map(|c| {
            Diagnostic::of(
                Code::Dataset,
                dataset.location.clone(),
                format!(
                    "dataset `{}` is missing required column `{c}` (found: {})",
                    dataset.name,
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
        .collect();
    if !missing.is_empty() {
        return Err(Registration::Problems(missing));
    }
    let mistyped: Vec<Diagnostic> = dataset
        .column_types
        .iter()
        .filter_map(|(column, declared)| {
            let found = schema.field_with_name(column).ok()?.data_type();
            (!crate::execution::column_types::matches(*declared, found)).then(|| {
                Diagnostic::of(
                    Code::Dataset,
                    dataset.location.clone(),
                    format!(
                        "dataset `{}`: column `{column}` is declared {} but the data has {found}",
                        dataset.name,
                        declared.name()
                    ),
                )
            })
        })
        .collect();
    if !mistyped.is_empty() {
        return Err(Registration::Problems(mistyped));
    }
    // Every file on its own: one missing a column the others have (read as nulls otherwise)
    // or holding it as another type is named with the file.
    let file_problems = check_each_file(&state, root, dataset, &parquet).await?;
    if !file_problems.is_empty() {
        return Err(Registration::Problems(file_problems));
    }
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(|e| Registration::Engine(e.into()))?;
    register_with_finite_view(ctx, dataset, Arc::new(table))
        .await
        .map_err(Registration::Engine)?;
    Ok(RegisteredDataset {
        name: dataset.name.clone(),
        url: display,
        files,
        bytes,
        fingerprint,
    })
}

/// After a stage failed to decode stored Parquet: decodes every file of `datasets`, and each
/// column of a file that fails, and names the dataset, file and column of every page that
/// cannot be read. Runs only on that failure, so the happy path never pays for it.
pub async fn find_undecodable_files(
    root: &StorageLocation,
    datasets: &[Dataset],
) -> Result<Vec<Diagnostic>, EngineError> {
    use futures::StreamExt;
    let mut problems = Vec::new();
    for dataset in datasets {
        let display = root.display_of(&dataset.path);
        let objects: Vec<_> = root
            .store
            .list(Some(&root.child(&dataset.path)))
            .try_collect()
            .await
            .map_err(|e| EngineError::storage(display.clone(), e))?;
        let checks = futures::stream::iter(
            objects
                .into_iter()
                .filter(|o| o.location.as_ref().ends_with(".parquet"))
                .map(|file| async move {
                    let shown =
                        crate::storage::redact(&format!("{}{}", root.store_url, file.location));
                    decode_fault(root, &file)
                        .await
                        .map(|fault| format!("{shown}: {fault}"))
                }),
        )
        .buffer_unordered(4)
        .filter_map(|line| async move { line })
        .collect::<Vec<_>>()
        .await;
        problems.extend(file_problems(dataset, checks));
    }
    Ok(problems)
}

/// What keeps `file` from being decoded, naming the column(s) at fault; `None` when every
/// page decodes. The file is read whole: this runs only to explain a failure.
async fn decode_fault(root: &StorageLocation, file: &object_store::ObjectMeta) -> Option<String> {
    use object_store::ObjectStoreExt;
    let bytes = match root.store.get(&file.location).await {
        Ok(got) => got.bytes().await,
        Err(e) => Err(e),
    };
    let bytes = match bytes {
        Ok(bytes) => bytes,
        Err(e) => return Some(format!("cannot be read: {e}")),
    };
    tokio::task::spawn_blocking(move || decode_fault_in(bytes))
        .await
        .unwrap_or_else(|e| Some(format!("cannot be decoded: {e}")))
}

fn decode_fault_in(bytes: bytes::Bytes) -> Option<String> {
    use datafusion::parquet::arrow::ProjectionMask;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let open = || ParquetRecordBatchReaderBuilder::try_new(bytes.clone());
    let builder = match open() {
        Ok(builder) => builder,
        Err(e) => return Some(format!("is not readable Parquet: {e}")),
    };
    let columns: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let decode_all =
        |builder: ParquetRecordBatchReaderBuilder<bytes::Bytes>| -> Result<(), String> {
            for batch in builder.build().map_err(|e| e.to_string())? {
                batch.map_err(|e| e.to_string())?;
            }
            Ok(())
        };
    let whole = decode_all(builder).err()?;
    let mut faults = Vec::new();
    for (index, column) in columns.iter().enumerate() {
        let Ok(builder) = open() else { break };
        let mask = ProjectionMask::roots(builder.parquet_schema(), [index]);
        if let Err(e) = decode_all(builder.with_projection(mask)) {
            faults.push(format!("column `{column}` cannot be decoded: {e}"));
        }
    }
    Some(if faults.is_empty() {
        format!("cannot be decoded: {whole}")
    } else {
        faults.join("; ")
    })
}
