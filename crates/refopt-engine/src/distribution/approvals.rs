//! The approval policy: why a plan cannot be approved (tasks or rules that failed, stale or
//! missing data, data tests that failed at `error`, a newer plan for the window), and where a plan stands from its audit records
//! (`refopt plan approve|reject|audit`).

use chrono::{DateTime, SecondsFormat};
use refopt_plan::{ApprovalRecord, DeliveryRecord, Plan, PlanStore, StoredPlan, TaskStatus};
use refopt_spec::distribution::Approvals;

use crate::error::EngineError;

/// Why a plan cannot be approved, if it cannot.
pub fn approval_blockers(
    plan: &Plan,
    stored: &StoredPlan,
    latest: u64,
    policy: Option<&Approvals>,
) -> Vec<String> {
    let mut reasons = Vec::new();
    for t in plan
        .tasks
        .iter()
        .filter(|t| t.status != TaskStatus::Succeeded)
    {
        reasons.push(format!("task `{}` did not succeed", t.id));
    }
    for e in plan
        .error_handling
        .events
        .iter()
        .filter(|e| e.action == refopt_plan::ErrorAction::RuleSkipped)
    {
        reasons.push(format!("rule `{}` failed: {}", e.task_id, e.error));
    }
    for d in &plan.datasets {
        for t in d
            .tests
            .iter()
            .filter(|t| t.status == refopt_plan::DataTestStatus::Error)
        {
            reasons.push(format!(
                "data test `{}` of dataset `{}` failed: {}",
                t.id, d.name, t.message
            ));
        }
    }
    let max_age = policy.map_or(48.0, |p| p.max_data_age_hours);
    let window_end = DateTime::parse_from_rfc3339(&format!("{}T00:00:00Z", plan.inputs.as_of)).ok();
    let must_be_fresh = |name: &str| {
        policy.is_none_or(|p| {
            p.fresh_datasets.is_empty() || p.fresh_datasets.iter().any(|d| d == name)
        })
    };
    if let Some(p) = policy {
        for name in &p.fresh_datasets {
            if !plan.datasets.iter().any(|d| d.name == *name) {
                reasons.push(format!(
                    "{} lists fresh dataset `{name}`, which the plan did not read",
                    p.file.display()
                ));
            }
        }
    }
    for d in plan.datasets.iter().filter(|d| must_be_fresh(&d.name)) {
        let latest_event = d
            .checks
            .iter()
            .filter(|c| c.period == "current")
            .filter_map(|c| c.latest_event_at.as_deref())
            .filter_map(|t| DateTime::parse_from_rfc3339(t).ok())
            .max();
        // The data-refresh checks ran (some dataset has them): a dataset without a row in the
        // current window is empty, whether or not its checks list the period.
        let checked = plan.datasets.iter().any(|d| !d.checks.is_empty());
        if checked && crate::assembly::current_rows(d) == 0 {
            reasons.push(format!("dataset `{}` has no rows in the window", d.name));
        } else if latest_event.is_none() && !d.checks.is_empty() {
            reasons.push(format!("dataset `{}` had no events in the window", d.name));
        }
        if let (Some(end), Some(at)) = (window_end, latest_event) {
            let age = (end - at).num_minutes() as f64 / 60.0;
            if age > max_age {
                reasons.push(format!(
                    "dataset `{}` was stale: latest event {} is {:.0} h before the window's end (limit {max_age} h)",
                    d.name,
                    at.to_rfc3339_opts(SecondsFormat::Secs, true),
                    age
                ));
            }
        }
    }
    if stored.version != latest {
        reasons.push(format!(
            "plan v{} is not the latest for its window (v{latest} is)",
            stored.version
        ));
    }
    reasons
}

/// Approval state of a plan from its audit records.
#[derive(Debug, Default)]
pub struct Standing {
    pub approvals: Vec<ApprovalRecord>,
    pub rejections: Vec<ApprovalRecord>,
    pub deliveries: Vec<DeliveryRecord>,
    /// Roles whose sign-off the plan's backlog needs, and whether each has it.
    pub required: Vec<(String, bool)>,
}

impl Standing {
    /// `draft`, `rejected`, `approved` or `awaiting <roles>`.
    pub fn state(&self) -> String {
        if !self.rejections.is_empty() {
            return "rejected".into();
        }
        if self.approvals.is_empty() {
            return "draft".into();
        }
        let missing: Vec<&str> = self
            .required
            .iter()
            .filter(|(_, ok)| !ok)
            .map(|(r, _)| r.as_str())
            .collect();
        if missing.is_empty() {
            "approved".into()
        } else {
            format!("awaiting {}", missing.join(", "))
        }
    }
}

/// Reads the plan's audit records (approvals and rejections of this exact plan content, by
/// its SHA-256, and notification deliveries) and the roles its backlog needs.
pub async fn standing(
    store: &PlanStore,
    plan: &Plan,
    stored: &StoredPlan,
    sha: &str,
    policy: Option<&Approvals>,
) -> Result<Standing, EngineError> {
    let mut s = Standing::default();
    for (name, bytes) in store
        .read_audit(&plan.pipeline.name, stored.version)
        .await?
    {
        let record = |e: serde_json::Error| {
            EngineError::storage_while(
                format!("{}/audit", stored.url),
                format_args!("audit record {name}"),
                e,
            )
        };
        if name.starts_with("approval-") || name.starts_with("rejection-") {
            let r: ApprovalRecord = serde_json::from_slice(&bytes).map_err(record)?;
            if r.plan_sha256 != sha {
                continue;
            }
            if r.decision == "approved" {
                s.approvals.push(r);
            } else {
                s.rejections.push(r);
            }
        } else if name.starts_with("delivery-") {
            s.deliveries
                .push(serde_json::from_slice(&bytes).map_err(record)?);
        }
    }
    let mut roles: Vec<String> = plan
        .backlog
        .iter()
        .filter_map(|b| policy.and_then(|p| p.required.get(&b.kind)).cloned())
        .collect();
    roles.sort();
    roles.dedup();
    s.required = roles
        .into_iter()
        .map(|r| {
            let ok = s
                .approvals
                .iter()
                .any(|a| a.role.as_deref() == Some(r.as_str()));
            (r, ok)
        })
        .collect();
    Ok(s)
}
