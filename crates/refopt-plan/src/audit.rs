//! The audit trail beside each plan: approval decisions and notification deliveries, each an
//! immutable object under `<series>/audit/plan-v<NNNNNN>/`. A plan is never edited after it is
//! written; its lifecycle (draft -> approved / rejected) is derived from these records.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A sign-off (or refusal) of one plan version.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApprovalRecord {
    /// `approved` or `rejected`.
    pub decision: String,
    pub pipeline: String,
    pub plan_version: u64,
    pub plan_url: String,
    /// SHA-256 of the plan object's bytes: what exactly was approved.
    pub plan_sha256: String,
    pub plan_run_id: String,
    /// Who decided.
    pub by: String,
    /// The role signed for (an agent or ladder owner), if any.
    pub role: Option<String>,
    pub note: Option<String>,
    /// RFC 3339 UTC.
    pub at: String,
}

/// An acknowledgement of an escalation episode (`refopt plan ack`), stored create-only under
/// `<series>/acks/`: the episode stops climbing the ladder.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AcknowledgementRecord {
    pub pipeline: String,
    /// `alert:<id>:<value>` or `fraud_spike`.
    pub trigger: String,
    /// As-of date of the episode's first breach.
    pub episode_opened: String,
    /// The level the episode stood at (and stays at).
    pub level: u32,
    pub by: String,
    pub note: Option<String>,
    /// RFC 3339 UTC.
    pub at: String,
    /// The plan version that showed the episode.
    pub plan_version: u64,
}

/// One attempt to deliver a notification.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryAttempt {
    pub attempt: u32,
    pub at: String,
    /// `delivered` or the error (no URLs or credentials).
    pub outcome: String,
}

/// Every attempt of one run to deliver one event to one sink.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DeliveryRecord {
    pub pipeline: String,
    pub plan_version: u64,
    /// Stable id of the event within the plan, e.g. `escalation:alert:won_rate:all:level2`.
    pub event: String,
    /// `alert_warn`, `alert_critical`, `escalation`, `rip_cord`, `run_failed`, `plan_approved`,
    /// `plan_rejected`.
    pub event_kind: String,
    pub sink: String,
    /// `delivered` or `failed`.
    pub status: String,
    pub attempts: Vec<DeliveryAttempt>,
    /// Run that made the attempts.
    pub run_id: String,
}

/// The JSON Schema of approval records (`docs/approval.schema.json`).
pub fn approval_json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(ApprovalRecord)).expect("schema serializes")
}
