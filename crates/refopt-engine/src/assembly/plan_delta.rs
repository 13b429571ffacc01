//! What differs between two plans, by key: the one plan-to-plan comparison behind the change
//! log (a plan vs the previous plan of its series) and backtests (old rules vs new rules on the
//! same window).

use std::collections::{BTreeMap, BTreeSet};

use refopt_plan::Plan;

/// Keys present in the new plan only, and in the old plan only (each sorted).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GainedLost {
    pub gained: Vec<String>,
    pub lost: Vec<String>,
}

impl GainedLost {
    fn of<T>(old: &[T], new: &[T], key: impl Fn(&T) -> String) -> Self {
        let old: BTreeSet<String> = old.iter().map(&key).collect();
        let new: BTreeSet<String> = new.iter().map(&key).collect();
        GainedLost {
            gained: new.difference(&old).cloned().collect(),
            lost: old.difference(&new).cloned().collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.gained.is_empty() && self.lost.is_empty()
    }
}

/// The decision-relevant differences between an old and a new plan.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlanDelta {
    /// Findings by id.
    pub findings: GainedLost,
    /// Findings present in both whose severity or detail differ.
    pub findings_changed: Vec<String>,
    /// Alerts by `id dimension value level`.
    pub alerts: GainedLost,
    /// Escalations by `trigger level N`.
    pub escalations: GainedLost,
    /// Escalation level per trigger: (old level, new level), for triggers whose level differs.
    pub escalation_levels: BTreeMap<String, (Option<u32>, Option<u32>)>,
    /// Backlog items by title.
    pub backlog: GainedLost,
    /// Suggested tier changes by `partner -> tier`.
    pub tier_changes: GainedLost,
}

impl PlanDelta {
    /// Compares `new` with `old`.
    pub fn between(old: &Plan, new: &Plan) -> PlanDelta {
        let findings_changed = old
            .findings
            .iter()
            .filter_map(|f| {
                let other = new.findings.iter().find(|g| g.id == f.id)?;
                (other.detail != f.detail || other.severity != f.severity).then(|| f.id.clone())
            })
            .collect();
        let levels = |p: &Plan| -> BTreeMap<String, u32> {
            p.escalations
                .iter()
                .map(|e| (e.trigger.clone(), e.level))
                .collect()
        };
        let (was, now) = (levels(old), levels(new));
        let escalation_levels = was
            .keys()
            .chain(now.keys())
            .filter_map(|t| {
                let pair = (was.get(t).copied(), now.get(t).copied());
                (pair.0 != pair.1).then(|| (t.clone(), pair))
            })
            .collect();
        PlanDelta {
            findings: GainedLost::of(&old.findings, &new.findings, |f| f.id.clone()),
            findings_changed,
            alerts: GainedLost::of(&old.alerts, &new.alerts, |a| {
                format!("{} {} {} {}", a.id, a.dimension, a.value, a.level)
            }),
            escalations: GainedLost::of(&old.escalations, &new.escalations, |e| {
                format!("{} level {}", e.trigger, e.level)
            }),
            escalation_levels,
            backlog: GainedLost::of(&old.backlog, &new.backlog, |b| b.title.clone()),
            tier_changes: GainedLost::of(
                &old.partner_health.tier_changes,
                &new.partner_health.tier_changes,
                |t| format!("{}: suggested tier {}", t.partner_id, t.to),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use refopt_plan::{Escalation, FRAUD_SPIKE_TRIGGER, Finding, Severity};

    use super::*;

    fn finding(id: &str, severity: Severity) -> Finding {
        Finding {
            id: id.into(),
            severity,
            ..Finding::default()
        }
    }

    #[test]
    fn keys_gained_lost_and_changed() {
        let old = Plan {
            findings: vec![finding("a", Severity::High), finding("b", Severity::Low)],
            escalations: vec![Escalation {
                trigger: FRAUD_SPIKE_TRIGGER.into(),
                level: 1,
                ..Escalation::default()
            }],
            ..Plan::default()
        };
        let new = Plan {
            findings: vec![finding("b", Severity::Medium), finding("c", Severity::Low)],
            escalations: vec![Escalation {
                trigger: FRAUD_SPIKE_TRIGGER.into(),
                level: 2,
                ..Escalation::default()
            }],
            ..Plan::default()
        };
        let d = PlanDelta::between(&old, &new);
        assert_eq!(d.findings.gained, vec!["c"]);
        assert_eq!(d.findings.lost, vec!["a"]);
        assert_eq!(d.findings_changed, vec!["b"]);
        assert_eq!(
            d.escalation_levels.get(FRAUD_SPIKE_TRIGGER),
            Some(&(Some(1), Some(2)))
        );
        assert_eq!(d.escalations.gained, vec!["fraud_spike level 2"]);
        assert!(PlanDelta::between(&new, &new).findings.is_empty());
    }
}
