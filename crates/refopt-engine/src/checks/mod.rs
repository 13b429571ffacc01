//! What runs without writing a plan: `refopt validate` (the dry run), `refopt explain`, rule
//! unit tests (`refopt test`) and rule quality against truth labels (`refopt eval`).

pub mod explain;
pub mod rule_quality;
pub mod rule_tests;
pub mod validate;
