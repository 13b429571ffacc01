//! Engine errors. Each variant belongs to one [`ErrorClass`], and each class has one exit code
//! (`docs/cli.md`). Errors keep their cause: storage errors carry the object-store error, plan
//! store errors their kind.

use refopt_plan::PlanStoreError;
use refopt_spec::Diagnostics;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What can go wrong in a run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The pipeline or rules files are invalid.
    #[error("{0}")]
    Config(Diagnostics),
    /// A run parameter is invalid (window, dimension, date...).
    #[error("{0}")]
    Parameter(String),
    /// Declared datasets are missing, unreadable, or lack or mistype required columns
    /// (diagnostics located at the dataset's declaration).
    #[error("{0}")]
    Datasets(Diagnostics),
    /// The object store failed (after its retries). `context` says what was being done.
    #[error("storage error at {location}: {context}{source}")]
    Storage {
        location: String,
        context: String,
        #[source]
        source: BoxError,
    },
    /// A stored plan could not be read as plan JSON (another major schema version, or not a
    /// plan).
    #[error("{0}")]
    UnreadablePlan(#[source] PlanStoreError),
    /// A stage's output does not have the columns its role requires.
    #[error("stage `{stage}` publishes the `{role}` role: {message}")]
    RoleContract {
        stage: String,
        role: String,
        message: String,
    },
    /// One or more stages failed after retries; no plan claims success.
    #[error("{failed} stage(s) failed: {first}")]
    StagesFailed { failed: usize, first: String },
    /// A DataFusion error outside a stage (e.g. while registering tables).
    #[error("query engine: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// Work was cancelled before it finished (a backfill window's task).
    #[error("{0}")]
    Cancelled(String),
}

/// Broad classes of failure, each with its own exit code (docs/cli.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Exit 3: the pipeline, the rules or a parameter.
    Config,
    /// Exit 4: the data (or a stored plan) is not what the contract says.
    Data,
    /// Exit 5: the object store failed.
    Storage,
    /// Exit 6: a stage failed after its retries.
    PartialFailure,
    /// Exit 1: a bug or an unexpected stop.
    Internal,
}

impl EngineError {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            EngineError::Config(_) | EngineError::Parameter(_) => ErrorClass::Config,
            EngineError::Datasets(_)
            | EngineError::RoleContract { .. }
            | EngineError::UnreadablePlan(_)
            | EngineError::DataFusion(_) => ErrorClass::Data,
            EngineError::Storage { .. } => ErrorClass::Storage,
            EngineError::StagesFailed { .. } => ErrorClass::PartialFailure,
            EngineError::Cancelled(_) => ErrorClass::Internal,
        }
    }

    /// A storage error at `location`, keeping `source` as its cause.
    pub fn storage(location: impl Into<String>, source: impl Into<BoxError>) -> Self {
        EngineError::Storage {
            location: location.into(),
            context: String::new(),
            source: source.into(),
        }
    }

    /// A storage error at `location` while doing `context` (e.g. "cannot read dataset `x`").
    pub fn storage_while(
        location: impl Into<String>,
        context: impl std::fmt::Display,
        source: impl Into<BoxError>,
    ) -> Self {
        EngineError::Storage {
            location: location.into(),
            context: format!("{context}: "),
            source: source.into(),
        }
    }
}

impl From<Diagnostics> for EngineError {
    fn from(e: Diagnostics) -> Self {
        EngineError::Config(e)
    }
}

impl From<datafusion::arrow::error::ArrowError> for EngineError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        EngineError::DataFusion(e.into())
    }
}

/// A plan store error: a failed store request is a storage error (its location and cause
/// kept), an undecodable plan a data error.
impl From<PlanStoreError> for EngineError {
    fn from(e: PlanStoreError) -> Self {
        match e {
            PlanStoreError::Store { location, source } => EngineError::storage(location, source),
            e @ PlanStoreError::Decode { .. } => EngineError::UnreadablePlan(e),
            e => EngineError::storage(String::new(), e),
        }
    }
}

/// Whether an object-store error is anywhere in `e`'s chain of causes.
pub fn caused_by_object_store(e: &datafusion::error::DataFusionError) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(current) = cause {
        if current.downcast_ref::<object_store::Error>().is_some() {
            return true;
        }
        if let Some(datafusion::error::DataFusionError::ObjectStore(_)) =
            current.downcast_ref::<datafusion::error::DataFusionError>()
        {
            return true;
        }
        cause = current.source();
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_store_errors_keep_their_class_and_cause() {
        let store = PlanStoreError::Store {
            location: "s3://b/plans".into(),
            source: object_store::Error::NotFound {
                path: "x".into(),
                source: "gone".into(),
            },
        };
        let e = EngineError::from(store);
        assert_eq!(e.class(), ErrorClass::Storage);
        let cause = std::error::Error::source(&e).expect("cause kept");
        assert!(cause.downcast_ref::<object_store::Error>().is_some());

        let decode = PlanStoreError::Decode {
            location: "p.json".into(),
            source: refopt_plan::parse_plan(b"{}").unwrap_err(),
        };
        assert_eq!(EngineError::from(decode).class(), ErrorClass::Data);
    }

    #[test]
    fn a_cancelled_window_is_not_a_configuration_error() {
        assert_eq!(
            EngineError::Cancelled("window 2026-01-01 was cancelled".into()).class(),
            ErrorClass::Internal
        );
    }
}
