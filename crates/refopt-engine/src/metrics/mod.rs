//! Measures: what the stage outputs say, read through their role contracts before any rule
//! runs: the funnel per dimension, the KPIs, the data-refresh checks per dataset and the
//! success metrics.

pub mod data_tests;
pub mod funnel;

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat};
use datafusion::arrow::array::RecordBatch;
use refopt_plan::{DatasetCheck, FunnelRow, Kpi, SuccessMetric};
use refopt_spec::{Pipeline, Role};

use crate::error::EngineError;
use crate::execution::executor::Execution;
use crate::execution::roles;

pub use funnel::{funnel_rows, rates, success_metrics};

/// The measures of one run.
#[derive(Debug, Clone, Default)]
pub struct Measures {
    /// Funnel rows of the requested dimensions (overall first).
    pub funnel: Vec<FunnelRow>,
    /// Funnel rows of every dimension the pipeline declares, with previous counts (what alerts
    /// may name).
    pub funnel_all_dimensions: Vec<FunnelRow>,
    pub kpis: Vec<Kpi>,
    /// Data-refresh checks per dataset name, by period.
    pub dataset_checks: BTreeMap<String, Vec<DatasetCheck>>,
    pub success_metrics: Vec<SuccessMetric>,
}

/// Output batches of the stage publishing `role`, if the pipeline has one.
pub fn role_output<'a>(
    pipeline: &'a Pipeline,
    execution: &'a Execution,
    role: Role,
) -> Option<(&'a str, &'a [RecordBatch])> {
    let stage = pipeline.stage_publishing(role)?;
    let batches = execution.outputs.get(&stage.id)?;
    Some((stage.id.as_str(), batches.as_slice()))
}

/// Reads the measures from the outputs of the stages publishing the funnel, KPI and
/// dataset-health roles. `keep_previous`: funnel rows of every dimension keep their previous
/// window's counts (`--detail full`). `targets`: what the success metrics are compared with.
pub fn measure(
    pipeline: &Pipeline,
    execution: &Execution,
    dimensions: &[String],
    keep_previous: bool,
    targets: &refopt_spec::SuccessTargets,
) -> Result<Measures, EngineError> {
    let records = match role_output(pipeline, execution, Role::Funnel) {
        Some((stage, batches)) => roles::funnel_records(stage, batches)?,
        None => Vec::new(),
    };
    let funnel = funnel_rows(&records, dimensions, keep_previous);
    let every_dimension: Vec<String> = pipeline.dimensions.iter().map(|d| d.name.clone()).collect();
    let funnel_all_dimensions = funnel_rows(&records, &every_dimension, true);
    let kpis = kpis(role_output(pipeline, execution, Role::Kpis))?;
    let success_metrics = success_metrics(funnel.first(), &kpis, targets);
    Ok(Measures {
        funnel,
        funnel_all_dimensions,
        kpis,
        dataset_checks: dataset_checks(role_output(pipeline, execution, Role::DatasetHealth))?,
        success_metrics,
    })
}

fn micros_rfc3339(m: i64) -> Option<String> {
    DateTime::from_timestamp_micros(m).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Data-refresh checks per dataset from the `dataset_health` role, by period.
fn dataset_checks(
    output: Option<(&str, &[RecordBatch])>,
) -> Result<BTreeMap<String, Vec<DatasetCheck>>, EngineError> {
    let mut out: BTreeMap<String, Vec<DatasetCheck>> = BTreeMap::new();
    let Some((stage, batches)) = output else {
        return Ok(out);
    };
    for b in roles::read(stage, Role::DatasetHealth, batches)? {
        for r in 0..b.rows {
            out.entry(b.text("dataset", r))
                .or_default()
                .push(DatasetCheck {
                    period: b.text("period", r),
                    rows: b.int("row_count", r).max(0) as u64,
                    null_violations: b.int("null_violations", r).max(0) as u64,
                    duplicate_keys: b.int("duplicate_keys", r).max(0) as u64,
                    latest_event_at: b.micros("latest_event_at", r).and_then(micros_rfc3339),
                });
        }
    }
    for checks in out.values_mut() {
        checks.sort_by(|a, b| a.period.cmp(&b.period));
    }
    Ok(out)
}

/// KPIs (current, previous, delta) from the `kpis` role.
fn kpis(output: Option<(&str, &[RecordBatch])>) -> Result<Vec<Kpi>, EngineError> {
    let Some((stage, batches)) = output else {
        return Ok(Vec::new());
    };
    let mut values: BTreeMap<String, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for b in roles::read(stage, Role::Kpis, batches)? {
        for r in 0..b.rows {
            let entry = values.entry(b.text("metric", r)).or_default();
            match b.text("period", r).as_str() {
                "current" => entry.0 = b.real("value", r),
                "previous" => entry.1 = b.real("value", r),
                _ => {}
            }
        }
    }
    Ok(values
        .into_iter()
        .map(|(metric, (current, previous))| Kpi {
            metric,
            current,
            previous,
            delta: current.zip(previous).map(|(c, p)| c - p),
        })
        .collect())
}
