//! Experiments: the decisions (ship, stop, keep running, investigate) and the statistics behind
//! them.

pub mod decisions;
pub mod statistics;

use refopt_plan::ExperimentResult;
use refopt_spec::experiments::{Experiment, Experiments};
use refopt_spec::{Pipeline, Role, WindowRange};

use crate::error::EngineError;
use crate::execution::executor::Execution;
use crate::metrics::role_output;

/// The experiments a run evaluates (`ids`, or every experiment active in the window); an
/// unknown id, or ids without an experiments file, are parameter errors.
pub fn selected<'a>(
    spec: Option<&'a Experiments>,
    ids: &[String],
    range: &WindowRange,
) -> Result<Vec<&'a Experiment>, EngineError> {
    match spec {
        Some(spec) => spec
            .select(ids, range.start.date_naive(), range.end.date_naive())
            .map_err(EngineError::Parameter),
        None if ids.is_empty() => Ok(Vec::new()),
        None => Err(EngineError::Parameter(format!(
            "--experiments {}: the rules have no experiments.yaml declaring them",
            ids.join(",")
        ))),
    }
}

/// Evaluates the selected experiments when the rules declare experiments and a stage publishes
/// the `experiments` role.
pub fn evaluate(
    spec: Option<&Experiments>,
    ids: &[String],
    pipeline: &Pipeline,
    execution: &Execution,
    range: &WindowRange,
) -> Result<Vec<ExperimentResult>, EngineError> {
    let (Some(spec), Some((stage, batches))) =
        (spec, role_output(pipeline, execution, Role::Experiments))
    else {
        return Ok(Vec::new());
    };
    let selected = selected(Some(spec), ids, range)?;
    decisions::evaluate(
        stage,
        batches,
        spec,
        &selected,
        range.end.timestamp_micros(),
    )
}
