//! What ops edit: the pipeline YAML (datasets, dimensions, SQL stages) and its validation.
//!
//! This crate has no DataFusion dependency: it loads and checks configuration, reporting every
//! problem with its file, line and column, so `refopt validate` and the runner share one loader.

pub mod alerts;
pub mod dag;
pub mod data_tests;
pub mod diagnostic;
pub mod distribution;
pub mod experiments;
pub mod fraud;
pub mod partner_health;
pub mod partner_messages;
pub mod pipeline;
pub mod redact;
pub mod rule_tests;
pub mod ruleset;
pub mod sandbox;
pub mod stop;
pub mod suppressions;
pub mod targets;
pub mod window;
pub mod yaml;

pub use alerts::{AlertRule, Alerts, Direction, Ladder, Series, Triggers};
pub use data_tests::{DataTest, DataTestCheck, TestSeverity};
pub use diagnostic::{Code, Diagnostic, Diagnostics, Level, Location};
pub use fraud::{FraudRule, FraudRules, Severity};
pub use pipeline::{
    ColumnType, Dataset, Dimension, Pipeline, RetryPolicy, Role, Stage, StageKind, StageScope,
};
pub use ruleset::RuleSet;
pub use suppressions::{Suppression, Suppressions};
pub use targets::SuccessTargets;
pub use window::{Window, WindowRange};
