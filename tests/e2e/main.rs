//! End-to-end tests: the `refopt` binary against generated data in a local folder and on a
//! real S3-compatible server (moto), with DuckDB as an independent reference.
//! Run them with `tests/run.sh`, which installs the Python tools they need.

mod backfill;
mod bad_input;
mod data_refresh;
mod data_tests;
mod determinism;
mod docs_examples;
mod escalation;
mod experiments;
mod funnel_vs_duckdb;
mod hardening;
mod harness;
mod install;
mod k8s;
mod notifications;
mod partner_messages;
mod plan_store;
mod playbook;
mod report;
mod rule_features;
mod rules;
mod s3;
mod storage_faults;
mod validate;
