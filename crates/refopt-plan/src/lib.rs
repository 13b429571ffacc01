//! Plan JSON v1 (types and JSON Schema) and the versioned plan store.

pub mod audit;
pub mod money;
pub mod name;
pub mod plan;
pub mod read;
pub mod store;
pub mod vocabulary;

pub use audit::{
    AcknowledgementRecord, ApprovalRecord, DeliveryAttempt, DeliveryRecord, approval_json_schema,
};
pub use money::Money;
pub use name::{plan_file_name, plan_stem, plan_version};
pub use plan::*;
pub use read::{PlanReadError, ReadPlan, parse_plan};
pub use store::{FLAGGED_REFERRALS_FOLDER, Orphan, PlanStore, PlanStoreError, StoredPlan, backoff};

/// Relative change from `previous` to `current`, `(current - previous) / previous`; `None`
/// unless `previous` is a positive finite number and `current` finite. The one definition the
/// plan, the report, the CLI summary and the rules sandbox (`pct_change`) share.
pub fn relative_change(current: f64, previous: f64) -> Option<f64> {
    (previous > 0.0 && previous.is_finite() && current.is_finite())
        .then(|| (current - previous) / previous)
}

/// The JSON Schema (draft 2020-12) of plan JSON v1, as committed in `docs/plan.schema.json`.
pub fn plan_json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Plan)).expect("schema serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_change_needs_a_positive_previous_value() {
        assert_eq!(
            relative_change(110.0, 100.0).map(|v| (v * 1e6).round()),
            Some(100_000.0)
        );
        assert_eq!(relative_change(1.0, 0.0), None);
        assert_eq!(relative_change(1.0, -2.0), None);
        assert_eq!(relative_change(f64::NAN, 2.0), None);
        assert_eq!(relative_change(0.0, 4.0), Some(-1.0));
    }

    /// The committed schema must be the one generated from the types.
    #[test]
    fn committed_schema_matches_types() {
        let committed = include_str!("../../../docs/plan.schema.json");
        let committed: serde_json::Value = serde_json::from_str(committed).unwrap();
        assert_eq!(
            committed,
            plan_json_schema(),
            "docs/plan.schema.json is stale: run `refopt schema > docs/plan.schema.json`"
        );
        let committed: serde_json::Value =
            serde_json::from_str(include_str!("../../../docs/approval.schema.json")).unwrap();
        assert_eq!(
            committed,
            approval_json_schema(),
            "docs/approval.schema.json is stale: run `refopt schema --approval > docs/approval.schema.json`"
        );
    }
}
