//! The refopt engine, grouped by the phases of a run:
//!
//! - [`storage`]: object stores from location strings, with visible retries.
//! - [`execution`]: the DataFusion session, dataset registration, run parameters, the stage DAG
//!   executor and the role contracts of stage outputs.
//! - [`metrics`]: the funnel, KPIs and dataset checks read from the role outputs.
//! - [`rules`]: the editable rules (fraud review, risk, alerts, escalation, partner health,
//!   playbook) and where they are loaded from; [`rules::apply`] is the rules phase.
//! - [`experiments`]: experiment decisions and the statistics behind them.
//! - [`assembly`]: builds the plan from the measures and the rule results; the change log.
//! - [`run`]: one run (prepare, analyze, finish) and backfills/backtests of many.
//! - [`distribution`]: notifications and the approval policy.
//! - [`checks`]: what runs without a plan: `validate`, `explain`, rule tests, rule quality.
//!
//! Dependencies point down this list (a phase uses the phases above it, never below).

pub(crate) mod assembly;
pub mod checks;
pub mod config_hash;
pub mod distribution;
pub mod error;
pub mod execution;
pub(crate) mod experiments;
pub(crate) mod metrics;
pub mod request;
pub mod rules;
pub mod run;
pub mod storage;

pub use error::{EngineError, ErrorClass};
pub use execution::executor::{Quiet, StageObserver, StageRecord, StageStatus};
pub use execution::session::SessionOptions;
pub use rules::fraud::RuleEngine;
pub use run::{PREVIOUS_PLANS, RunOutcome, RunRequest, run};
