//! Registers the pipeline's datasets as DataFusion listing tables over Parquet, with Hive `dt`
//! day partitions for pruning, after checking that each dataset exists and has its required
//! columns. All dataset problems are collected and reported together.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use refopt_spec::{Code, Dataset, Diagnostic};

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
    let schema = options
        .infer_schema(&state, &table_url)
        .await
        .map_err(|e| {
            if crate::error::caused_by_object_store(&e) {
                return Registration::Engine(EngineError::storage_while(
                    display.clone(),
                    format_args!("cannot read dataset `{}`", dataset.name),
                    e,
                ));
            }
            Registration::Problems(vec![Diagnostic::of(
                Code::Dataset,
                dataset.location.clone(),
                format!(
                    "dataset `{}` at {display}/ is not readable Parquet: {e}",
                    dataset.name
                ),
            )])
        })?;
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
    let config = ListingTableConfig::new(table_url)
        .with_listing_options(options)
        .with_schema(schema);
    let table = ListingTable::try_new(config).map_err(|e| Registration::Engine(e.into()))?;
    ctx.register_table(dataset.name.as_str(), Arc::new(table))
        .map_err(|e| Registration::Engine(e.into()))?;
    Ok(RegisteredDataset {
        name: dataset.name.clone(),
        url: display,
        files,
        bytes,
        fingerprint,
    })
}
