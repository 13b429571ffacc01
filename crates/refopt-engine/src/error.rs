//! Engine errors. Each variant maps to one class of exit code (see `docs/cli.md`).

use refopt_spec::SpecErrors;

/// A problem with one declared dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetProblem {
    pub dataset: String,
    /// `file:line:column` of the dataset's declaration.
    pub declared_at: String,
    pub message: String,
}

/// What can go wrong in a run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The pipeline or rules files are invalid.
    #[error("{0}")]
    Config(SpecErrors),
    /// A run parameter is invalid (window, dimension, date...).
    #[error("{0}")]
    Parameter(String),
    /// Declared datasets are missing or lack required columns.
    #[error("{}", format_problems(.0))]
    Datasets(Vec<DatasetProblem>),
    /// The object store failed.
    #[error("storage error at {location}: {message}")]
    Storage { location: String, message: String },
    /// A stage's output does not have the columns its role requires.
    #[error("stage `{stage}` publishes {role}: {message}")]
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
}

fn format_problems(problems: &[DatasetProblem]) -> String {
    problems
        .iter()
        .map(|p| format!("{}: {}", p.declared_at, p.message))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Broad classes of failure, each with its own exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    Config,
    Data,
    Storage,
    PartialFailure,
}

impl EngineError {
    /// The class of this error.
    pub fn class(&self) -> ErrorClass {
        match self {
            EngineError::Config(_) | EngineError::Parameter(_) => ErrorClass::Config,
            EngineError::Datasets(_)
            | EngineError::RoleContract { .. }
            | EngineError::DataFusion(_) => ErrorClass::Data,
            EngineError::Storage { .. } => ErrorClass::Storage,
            EngineError::StagesFailed { .. } => ErrorClass::PartialFailure,
        }
    }
}

impl From<SpecErrors> for EngineError {
    fn from(e: SpecErrors) -> Self {
        EngineError::Config(e)
    }
}

impl From<datafusion::arrow::error::ArrowError> for EngineError {
    fn from(e: datafusion::arrow::error::ArrowError) -> Self {
        EngineError::DataFusion(e.into())
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
