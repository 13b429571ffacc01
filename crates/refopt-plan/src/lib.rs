//! Plan JSON v1 (types and JSON Schema) and the versioned plan store.

pub mod audit;
pub mod plan;
pub mod store;

pub use audit::{ApprovalRecord, DeliveryAttempt, DeliveryRecord, approval_json_schema};
pub use plan::*;
pub use store::{PlanStore, PlanStoreError, StoredPlan, plan_version};

/// The JSON Schema (draft 2020-12) of plan JSON v1, as committed in `docs/plan.schema.json`.
pub fn plan_json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Plan)).expect("schema serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

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
