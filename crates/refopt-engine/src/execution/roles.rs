//! Reading the outputs of stages that publish a role. Each role has a column contract; columns
//! are cast to the contract's types, and a missing column is a located error naming the stage.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    Decimal128Type, Float64Type, Int64Type, TimestampMicrosecondType,
};
use refopt_plan::{FunnelCounts, Money};
use refopt_spec::{ColumnType, Role};

use crate::error::EngineError;

/// Column contract of each role: (column, type).
pub fn contract(role: Role) -> &'static [(&'static str, ColumnType)] {
    use ColumnType::{Float64 as Real, Int64 as Integer, Money, String as Text, Timestamp};
    match role {
        Role::DatasetHealth => &[
            ("dataset", Text),
            ("period", Text),
            ("row_count", Integer),
            ("null_violations", Integer),
            ("duplicate_keys", Integer),
            ("latest_event_at", Timestamp),
        ],
        Role::Funnel => &[
            ("period", Text),
            ("dimension", Text),
            ("value", Text),
            ("invites", Integer),
            ("referrals", Integer),
            ("signups", Integer),
            ("qualified", Integer),
            ("opportunities", Integer),
            ("won", Integer),
            ("revenue", Money),
            ("payout_cost", Money),
            ("flagged", Integer),
            ("nps_responses", Integer),
            ("nps_promoters", Integer),
            ("nps_detractors", Integer),
        ],
        Role::Kpis => &[("metric", Text), ("period", Text), ("value", Real)],
        Role::PartnerHealth => &[("partner_id", Text)],
        Role::Experiments => &[
            ("experiment_id", Text),
            ("variant", Text),
            ("units", Integer),
            ("referred", Integer),
            ("qualified", Integer),
            ("won", Integer),
            ("fraud_flagged", Integer),
            ("qualified_per_unit_mean", Real),
            ("qualified_per_unit_var", Real),
            ("revenue_per_unit_mean", Real),
            ("revenue_per_unit_var", Real),
            ("payout_cost_per_unit_mean", Real),
            ("payout_cost_per_unit_var", Real),
            ("multi_exposed", Integer),
            ("first_assigned_at", Timestamp),
        ],
    }
}

/// A batch whose role columns were checked and cast.
pub struct RoleBatch {
    columns: Vec<ArrayRef>,
    names: Vec<&'static str>,
    pub rows: usize,
}

impl RoleBatch {
    fn col(&self, name: &str) -> &ArrayRef {
        let i = self
            .names
            .iter()
            .position(|n| *n == name)
            .expect("contract column");
        &self.columns[i]
    }

    /// Text value (empty string for null).
    pub fn text(&self, name: &str, row: usize) -> String {
        let a = self.col(name).as_string::<i32>();
        if a.is_null(row) {
            String::new()
        } else {
            a.value(row).to_string()
        }
    }

    /// Integer value (0 for null).
    pub fn int(&self, name: &str, row: usize) -> i64 {
        let a = self.col(name).as_primitive::<Int64Type>();
        if a.is_null(row) { 0 } else { a.value(row) }
    }

    /// Real value (None for null or non-finite).
    pub fn real(&self, name: &str, row: usize) -> Option<f64> {
        let a = self.col(name).as_primitive::<Float64Type>();
        (!a.is_null(row))
            .then(|| a.value(row))
            .filter(|v| v.is_finite())
    }

    /// Money value (zero for null).
    pub fn money(&self, name: &str, row: usize) -> Money {
        let a = self.col(name).as_primitive::<Decimal128Type>();
        if a.is_null(row) {
            return Money::ZERO;
        }
        // The contract's decimal has the money scale: its integer is the amount in cents.
        Money::from_cents_saturating(a.value(row))
    }

    /// Timestamp value in microseconds.
    pub fn micros(&self, name: &str, row: usize) -> Option<i64> {
        let a = self.col(name).as_primitive::<TimestampMicrosecondType>();
        (!a.is_null(row)).then(|| a.value(row))
    }
}

/// Checks and casts `batches` of `stage` against `role`'s contract.
pub fn read(
    stage: &str,
    role: Role,
    batches: &[RecordBatch],
) -> Result<Vec<RoleBatch>, EngineError> {
    let spec = contract(role);
    let err = |message: String| EngineError::RoleContract {
        stage: stage.to_string(),
        role: role.to_string(),
        message,
    };
    let mut out = Vec::new();
    for batch in batches {
        let mut columns = Vec::new();
        for (name, ty) in spec {
            let column = batch.column_by_name(name).ok_or_else(|| {
                err(format!(
                    "output lacks column `{name}` (has: {})",
                    batch
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let cast_column = cast(column, &crate::execution::column_types::role_type(*ty))
                .map_err(|e| {
                    err(format!(
                        "column `{name}` cannot be read as {}: {e}",
                        ty.name()
                    ))
                })?;
            columns.push(Arc::clone(&cast_column));
        }
        out.push(RoleBatch {
            columns,
            names: spec.iter().map(|(n, _)| *n).collect(),
            rows: batch.num_rows(),
        });
    }
    Ok(out)
}

/// One funnel row of the stage output.
#[derive(Debug, Clone)]
pub struct FunnelRecord {
    pub period: String,
    pub dimension: String,
    pub value: String,
    pub counts: FunnelCounts,
}

/// Reads a funnel stage's output.
pub fn funnel_records(
    stage: &str,
    batches: &[RecordBatch],
) -> Result<Vec<FunnelRecord>, EngineError> {
    let mut out = Vec::new();
    for b in read(stage, Role::Funnel, batches)? {
        for r in 0..b.rows {
            let count = |name: &str| b.int(name, r).max(0) as u64;
            out.push(FunnelRecord {
                period: b.text("period", r),
                dimension: b.text("dimension", r),
                value: b.text("value", r),
                counts: FunnelCounts {
                    invites: count("invites"),
                    referrals: count("referrals"),
                    signups: count("signups"),
                    qualified: count("qualified"),
                    opportunities: count("opportunities"),
                    won: count("won"),
                    revenue: b.money("revenue", r),
                    payout_cost: b.money("payout_cost", r),
                    flagged: count("flagged"),
                    nps_responses: count("nps_responses"),
                    nps_promoters: count("nps_promoters"),
                    nps_detractors: count("nps_detractors"),
                },
            });
        }
    }
    Ok(out)
}
