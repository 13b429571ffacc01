//! Escalations up the ladder. "Breached twice" needs memory: the previous plans of the pipeline
//! (newest first) tell whether an alert fired in the runs just before this one, and at which
//! ladder level it already stands.

use refopt_plan::{Alert, Escalation, FRAUD_SPIKE_TRIGGER, Plan};
use refopt_spec::Ladder;

fn alert_key(a: &Alert) -> String {
    format!("alert:{}:{}", a.id, a.value)
}

fn previous_level(plan: &Plan, trigger: &str) -> Option<u32> {
    plan.escalations
        .iter()
        .find(|e| e.trigger == trigger)
        .map(|e| e.level)
}

/// Escalations of this run. `previous` holds earlier plans of the pipeline, newest first.
pub fn escalate(
    ladder: &Ladder,
    alerts: &[Alert],
    flag_rate: Option<f64>,
    run_id: &str,
    previous: &[Plan],
) -> Vec<Escalation> {
    let needed = ladder.triggers.consecutive_breaches as usize;
    let mut out = Vec::new();
    for a in alerts {
        let key = alert_key(a);
        let streak: Vec<&Plan> = previous
            .iter()
            .take_while(|p| p.alerts.iter().any(|b| alert_key(b) == key))
            .collect();
        if streak.len() + 1 < needed {
            continue;
        }
        let level = previous
            .first()
            .and_then(|p| previous_level(p, &key))
            .map_or(1, |l| l + 1);
        let rung = ladder.level(level);
        let mut run_ids: Vec<String> = streak
            .iter()
            .take(needed.saturating_sub(1).max(1))
            .map(|p| p.run_id.clone())
            .collect();
        run_ids.reverse();
        run_ids.push(run_id.to_string());
        out.push(Escalation {
            trigger: key,
            level: rung.level,
            role: rung.role.clone(),
            owner: rung.owner.clone(),
            fallback_owner: rung.fallback.clone(),
            reason: format!(
                "{} breached its {} level in {} consecutive runs",
                a.id,
                a.level,
                streak.len() + 1
            ),
            run_ids,
        });
    }
    let spike = &ladder.triggers.fraud_spike;
    let trailing: Vec<(f64, &str)> = previous
        .iter()
        .filter_map(|p| Some((p.risk.flag_rate?, p.run_id.as_str())))
        .take(spike.trailing_runs)
        .collect();
    if let Some(current) = flag_rate
        && !trailing.is_empty()
    {
        let average = trailing.iter().map(|(r, _)| r).sum::<f64>() / trailing.len() as f64;
        if average > 0.0 && current > spike.multiplier * average {
            let level = previous
                .first()
                .and_then(|p| previous_level(p, FRAUD_SPIKE_TRIGGER))
                .map_or(1, |l| l + 1);
            let rung = ladder.level(level);
            let mut run_ids: Vec<String> = trailing.iter().map(|(_, id)| id.to_string()).collect();
            run_ids.reverse();
            run_ids.push(run_id.to_string());
            out.push(Escalation {
                trigger: FRAUD_SPIKE_TRIGGER.into(),
                level: rung.level,
                role: rung.role.clone(),
                owner: rung.owner.clone(),
                fallback_owner: rung.fallback.clone(),
                reason: format!(
                    "fraud flag rate {current:.4} is above {}x its trailing average {average:.4} over {} runs",
                    spike.multiplier,
                    trailing.len()
                ),
                run_ids,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder() -> Ladder {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/ladder.yaml");
        Ladder::load(&file).unwrap()
    }

    fn alert(id: &str, value: &str) -> Alert {
        Alert {
            id: id.into(),
            value: value.into(),
            ..Default::default()
        }
    }

    /// An earlier plan with these alerts, escalations and flag rate.
    fn plan(
        run_id: &str,
        alerts: &[Alert],
        escalations: &[Escalation],
        flag_rate: Option<f64>,
    ) -> Plan {
        let mut p = Plan {
            run_id: run_id.into(),
            alerts: alerts.to_vec(),
            escalations: escalations.to_vec(),
            ..Default::default()
        };
        p.risk.flag_rate = flag_rate;
        p
    }

    #[test]
    fn an_alert_escalates_after_consecutive_breaches_and_climbs_the_ladder() {
        let ladder = ladder();
        assert_eq!(ladder.triggers.consecutive_breaches, 2);
        let low = alert("signup_rate_low", "email");
        // First breach: nothing yet.
        assert!(escalate(&ladder, std::slice::from_ref(&low), None, "r1", &[]).is_empty());
        // A breach for another value does not count towards this one.
        let other = plan("r0", &[alert("signup_rate_low", "social")], &[], None);
        assert!(escalate(&ladder, std::slice::from_ref(&low), None, "r1", &[other]).is_empty());
        // Second consecutive breach: level 1, naming both runs, oldest first.
        let first = plan("r1", std::slice::from_ref(&low), &[], None);
        let out = escalate(
            &ladder,
            std::slice::from_ref(&low),
            None,
            "r2",
            std::slice::from_ref(&first),
        );
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].trigger, "alert:signup_rate_low:email");
        assert_eq!(
            (out[0].level, out[0].owner.as_str()),
            (1, "referral-architect")
        );
        assert_eq!(out[0].run_ids, ["r1", "r2"]);
        // Third: level 2; fourth: level 3; beyond the top it stays at the top.
        let second = plan("r2", std::slice::from_ref(&low), &out, None);
        let out = escalate(
            &ladder,
            std::slice::from_ref(&low),
            None,
            "r3",
            &[second, first.clone()],
        );
        assert_eq!((out[0].level, out[0].owner.as_str()), (2, "partner-ops"));
        assert_eq!(out[0].run_ids, ["r2", "r3"]);
        let third = plan("r3", std::slice::from_ref(&low), &out, None);
        let out = escalate(&ladder, std::slice::from_ref(&low), None, "r4", &[third]);
        assert_eq!(out[0].level, 3);
        let fourth = plan("r4", std::slice::from_ref(&low), &out, None);
        let out = escalate(&ladder, std::slice::from_ref(&low), None, "r5", &[fourth]);
        assert_eq!((out[0].level, out[0].owner.as_str()), (3, "exec-sponsor"));
        // A run without the alert breaks the streak: the count starts again.
        let quiet = plan("r5", &[], &[], None);
        assert!(
            escalate(
                &ladder,
                std::slice::from_ref(&low),
                None,
                "r6",
                &[quiet, first]
            )
            .is_empty()
        );
    }

    #[test]
    fn a_fraud_spike_is_measured_against_the_trailing_average() {
        let ladder = ladder();
        let spike = &ladder.triggers.fraud_spike;
        let previous: Vec<Plan> = (0..6)
            .map(|i| plan(&format!("r{i}"), &[], &[], Some(0.01 * (i + 1) as f64)))
            .collect();
        // Trailing average over the newest `trailing_runs` plans: 0.01..0.04 -> 0.025.
        let average = 0.025;
        assert_eq!(spike.trailing_runs, 4);
        let above = spike.multiplier * average + 1e-6;
        let out = escalate(&ladder, &[], Some(above), "now", &previous);
        assert_eq!(out.len(), 1, "{out:#?}");
        assert_eq!(out[0].trigger, refopt_plan::FRAUD_SPIKE_TRIGGER);
        assert_eq!(out[0].run_ids, ["r3", "r2", "r1", "r0", "now"]);
        let below = spike.multiplier * average - 1e-6;
        assert!(escalate(&ladder, &[], Some(below), "now", &previous).is_empty());
        // No history, or no flag rate: nothing to compare.
        assert!(escalate(&ladder, &[], Some(1.0), "now", &[]).is_empty());
        assert!(escalate(&ladder, &[], None, "now", &previous).is_empty());
    }
}
