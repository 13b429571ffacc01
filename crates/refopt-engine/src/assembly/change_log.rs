//! What changed since the previous plan of the same pipeline (the seed's plan-maintenance
//! safeguard): funnel rates that moved beyond a tolerance, configuration files that changed,
//! findings that appeared or were resolved, escalation levels and suggested tier changes.

use refopt_plan::{ChangeLogEntry, Plan};
use refopt_spec::alerts::FUNNEL_RATES;

use crate::assembly::plan_delta::PlanDelta;
use crate::rules::alerts::rate_of;

/// Relative change of a funnel rate that the change log reports (5%).
pub const RATE_TOLERANCE: f64 = 0.05;

/// The change log of `plan` against `previous` (the pipeline's latest stored plan, if any).
pub fn change_log(plan: &Plan, previous: Option<&Plan>) -> Vec<ChangeLogEntry> {
    let entry = |kind: &str, description: String| ChangeLogEntry {
        kind: kind.to_string(),
        description,
    };
    let Some(prev) = previous else {
        return vec![entry(
            "first_plan",
            "first plan of this pipeline in this store".to_string(),
        )];
    };
    let mut out = Vec::new();
    let label = format!("since v{} ({})", prev.version, prev.run_id);

    // Configuration: every rule and pipeline file, by content hash.
    let (old, new) = (&prev.inputs.config_hashes, &plan.inputs.config_hashes);
    for (file, hash) in new {
        match old.get(file) {
            None => out.push(entry("config", format!("{file} added {label}"))),
            Some(h) if h != hash => out.push(entry("config", format!("{file} changed {label}"))),
            _ => {}
        }
    }
    for file in old.keys().filter(|f| !new.contains_key(*f)) {
        out.push(entry("config", format!("{file} removed {label}")));
    }
    if prev.inputs.window != plan.inputs.window
        || prev.inputs.alert_threshold != plan.inputs.alert_threshold
    {
        out.push(entry(
            "config",
            format!(
                "parameters changed {label}: window {} -> {}, alert threshold {:?} -> {:?}",
                prev.inputs.window,
                plan.inputs.window,
                prev.inputs.alert_threshold,
                plan.inputs.alert_threshold
            ),
        ));
    }

    // Overall funnel rates that moved by more than the tolerance.
    if let (Some(a), Some(b)) = (prev.metrics.funnel.first(), plan.metrics.funnel.first()) {
        for name in FUNNEL_RATES {
            if let (Some(was), Some(now)) = (rate_of(a, name).0, rate_of(b, name).0)
                && was != 0.0
                && ((now - was) / was).abs() > RATE_TOLERANCE
            {
                out.push(entry(
                    "metric",
                    format!(
                        "overall {name} {was:.4} -> {now:.4} ({:+.1}%)",
                        (now - was) / was * 100.0
                    ),
                ));
            }
        }
    }

    let delta = PlanDelta::between(prev, plan);
    for id in &delta.findings.gained {
        out.push(entry("finding_new", format!("new finding {id}")));
    }
    for id in &delta.findings.lost {
        out.push(entry(
            "finding_resolved",
            format!("finding {id} no longer present"),
        ));
    }
    for (trigger, levels) in &delta.escalation_levels {
        let description = match *levels {
            (Some(l), Some(level)) => format!("{trigger}: level {l} -> {level}"),
            (None, Some(level)) => format!("{trigger}: escalated to level {level}"),
            (_, None) => format!("{trigger}: no longer escalated"),
        };
        out.push(entry("escalation", description));
    }
    // Suggested tier changes that are new.
    for change in &delta.tier_changes.gained {
        out.push(entry("tier_change", change.clone()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use refopt_plan::Finding;

    #[test]
    fn reports_config_findings_and_first_plan() {
        let mut a = Plan::default();
        a.inputs
            .config_hashes
            .insert("rules/fraud.yaml".into(), "1".into());
        a.findings.push(Finding {
            id: "fraud/x".into(),
            ..Finding::default()
        });
        let mut b = a.clone();
        b.inputs
            .config_hashes
            .insert("rules/fraud.yaml".into(), "2".into());
        b.findings = vec![Finding {
            id: "fraud/y".into(),
            ..Finding::default()
        }];
        let log = change_log(&b, Some(&a));
        let text: Vec<String> = log
            .iter()
            .map(|e| format!("{}: {}", e.kind, e.description))
            .collect();
        assert!(
            text.iter()
                .any(|t| t.starts_with("config: rules/fraud.yaml changed")),
            "{text:?}"
        );
        assert!(
            text.contains(&"finding_new: new finding fraud/y".to_string()),
            "{text:?}"
        );
        assert!(text.contains(&"finding_resolved: finding fraud/x no longer present".to_string()));
        assert_eq!(change_log(&b, None)[0].kind, "first_plan");
    }
}
