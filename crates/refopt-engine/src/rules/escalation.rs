//! Escalations up the ladder. "Breached twice" needs memory: the previous plans of the pipeline
//! (newest first) tell whether an alert fired in the runs just before this one, and at which
//! ladder level it already stands.

use refopt_plan::{Alert, Escalation, Plan};
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
                .and_then(|p| previous_level(p, "fraud_spike"))
                .map_or(1, |l| l + 1);
            let rung = ladder.level(level);
            let mut run_ids: Vec<String> = trailing.iter().map(|(_, id)| id.to_string()).collect();
            run_ids.reverse();
            run_ids.push(run_id.to_string());
            out.push(Escalation {
                trigger: "fraud_spike".into(),
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
