//! The refopt engine: object stores, the DataFusion session, dataset registration, the stage
//! DAG executor and plan assembly.

pub mod alerts;
pub mod assemble;
pub mod backfill;
pub mod change_log;
pub mod config_hash;
pub mod datasets;
pub mod error;
pub mod escalation;
pub mod evaluate;
pub mod executor;
pub mod experiment_stats;
pub mod experiments;
pub mod explain;
pub mod fraud;
pub mod json;
pub mod metrics;
pub mod notify;
pub mod params;
pub mod partner_health;
pub mod playbook;
pub mod rhai_rows;
pub mod risk;
pub mod roles;
pub mod rule_tests;
pub mod rules_source;
pub mod run;
pub mod session;
pub mod storage;
pub mod storage_attempts;
pub mod types;
pub mod validate;

pub use error::{EngineError, ErrorClass};
pub use executor::{Quiet, StageObserver, StageRecord, StageStatus};
pub use run::{PREVIOUS_PLANS, RunOutcome, RunRequest, StoredReport, run};
pub use session::SessionOptions;
