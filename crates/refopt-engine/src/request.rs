//! What a run is asked to do: the pipeline, the rules, the window and the stores. Every phase
//! reads it; it sits below them all.

use std::sync::Arc;

use chrono::NaiveDate;
use refopt_plan::Detail;
use refopt_spec::{Pipeline, RuleSet, Window};

use crate::execution::executor::SharedStages;
use crate::execution::session::SessionOptions;
use crate::storage::StoragePolicy;

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub pipeline: Pipeline,
    /// Data root (URL or path).
    pub data_root: String,
    /// Plans root (URL or path); `None` means do not write (dry run).
    pub plans_root: Option<String>,
    pub window: Window,
    /// Exclusive end day of the window.
    pub as_of: NaiveDate,
    pub detail: Detail,
    pub dimensions: Vec<String>,
    pub experiments: Vec<String>,
    pub alert_threshold: Option<f64>,
    /// Rules (fraud heuristics, alerts, ladder) run after the stages.
    pub rules: RuleSet,
    /// Where the rules were loaded from (folder or object-store URL), recorded in the plan.
    pub rules_source: String,
    /// Where the pipeline file was read from, recorded in the plan.
    pub pipeline_source: String,
    /// `rules/<file>` -> SHA-256 of the rule files (see [`crate::config_hash`]).
    pub rules_hashes: std::collections::BTreeMap<String, String>,
    /// Write a new plan even when the latest plan has the same inputs fingerprint.
    pub force: bool,
    pub session: SessionOptions,
    /// Retries and timeouts of object-store requests; failed attempts land in the plan.
    pub storage: StoragePolicy,
    /// Plan series under the pipeline's folder (empty: the live series); see
    /// [`refopt_plan::PlanStore::with_series`].
    pub plan_series: Vec<String>,
    /// Outputs of the `scope: range` stages, computed once for all windows of a backfill;
    /// `None`: the run computes them over its own window's days.
    pub shared_stages: Option<Arc<SharedStages>>,
    /// Which evaluator runs rule expressions (compiled where possible, or all interpreted).
    pub rule_engine: crate::rules::fraud::RuleEngine,
}
