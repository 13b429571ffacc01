//! One-line insights under each chart, computed from the plan's numbers (never invented): each
//! function returns `None` when the numbers cannot support a statement.

use refopt_plan::{ExperimentResult, FunnelCounts, FunnelRates, FunnelRow, Money, Plan};

use crate::format::{count, money, pct, signed_pct};

/// Smallest referrals in a dimension value (both windows) for its conversion change to be
/// worth a sentence.
const MIN_REFERRALS: u64 = 30;

/// won / referrals of one period's counts; `None` without referrals.
pub fn referral_to_won(c: &FunnelCounts) -> Option<f64> {
    (c.referrals > 0).then(|| c.won as f64 / c.referrals as f64)
}

/// The step rates of the funnel, in order, with readable names.
pub(crate) fn step_rates(r: &FunnelRates) -> [(&'static str, Option<f64>); 5] {
    [
        ("invite → referral", r.invite_to_referral),
        ("referral → signup", r.referral_to_signup),
        ("signup → qualified", r.signup_to_qualified),
        ("qualified → opportunity", r.qualified_to_opportunity),
        ("opportunity → won", r.opportunity_to_won),
    ]
}

/// Overall funnel: conversion, its change, the step that moved most, and which dimension
/// value carries most of the change in won deals.
pub fn funnel_overall(plan: &Plan) -> Option<String> {
    let overall = plan.metrics.funnel.first()?;
    let mut text = format!(
        "{} invites led to {} referrals and {} won deals",
        count(overall.current.invites as f64),
        count(overall.current.referrals as f64),
        count(overall.current.won as f64)
    );
    if let Some(rate) = overall.rates.referral_to_won {
        text.push_str(&format!(" ({} referral → won", pct(rate)));
        if let (Some(delta), Some(prev)) = (
            overall.rate_deltas.referral_to_won,
            overall.previous.as_ref().and_then(referral_to_won),
        ) && prev > 0.0
        {
            text.push_str(&format!(
                ", {} vs the previous window",
                signed_pct(delta / prev)
            ));
        }
        text.push(')');
    }
    // The step whose rate changed most, relative to its previous value.
    let moved = step_rates(&overall.rates)
        .into_iter()
        .zip(step_rates(&overall.rate_deltas))
        .filter_map(|((name, rate), (_, delta))| {
            let (rate, delta) = (rate?, delta?);
            let previous = rate - delta;
            (previous > 0.0).then_some((name, rate, delta / previous))
        })
        .max_by(|a, b| a.2.abs().total_cmp(&b.2.abs()));
    if let Some((name, rate, change)) = moved
        && change.abs() >= 0.005
    {
        text.push_str(&format!(
            "; the step that moved most is {name} at {} ({})",
            pct(rate),
            signed_pct(change)
        ));
    }
    if let Some(share) = won_change_share(plan) {
        text.push_str("; ");
        text.push_str(&share);
    }
    text.push('.');
    Some(text)
}

/// "won deals fell by 19 vs the previous window; 62% of that is region APAC (-12)".
fn won_change_share(plan: &Plan) -> Option<String> {
    let overall = plan.metrics.funnel.first()?;
    let total = overall.current.won as f64 - overall.previous?.won as f64;
    if total == 0.0 {
        return None;
    }
    let (row, change) = plan
        .metrics
        .funnel
        .iter()
        .skip(1)
        .filter_map(|r| Some((r, r.current.won as f64 - r.previous?.won as f64)))
        .filter(|(_, c)| *c != 0.0 && c.signum() == total.signum())
        .max_by(|a, b| a.1.abs().total_cmp(&b.1.abs()))?;
    let direction = if total < 0.0 { "fell" } else { "rose" };
    Some(if change.abs() <= total.abs() {
        format!(
            "won deals {direction} by {} vs the previous window, {} of it in {} {} ({change:+})",
            count(total.abs()),
            pct(change / total),
            row.dimension,
            row.value,
        )
    } else {
        // One value moved more than the total: the others offset it.
        format!(
            "won deals {direction} by {} vs the previous window; {} {} alone moved {change:+}, offset by the other values",
            count(total.abs()),
            row.dimension,
            row.value,
        )
    })
}

/// One dimension: the value whose referral → won conversion changed most, and its share of the
/// change in won deals.
pub fn funnel_dimension(plan: &Plan, dimension: &str) -> Option<String> {
    let rows: Vec<&FunnelRow> = plan.metrics.funnel_rows(dimension).collect();
    let overall = plan.metrics.funnel.first()?;
    let change_of = |r: &FunnelRow| {
        let previous = r.previous?;
        if r.current.referrals < MIN_REFERRALS || previous.referrals < MIN_REFERRALS {
            return None;
        }
        let prev_rate = referral_to_won(&previous)?;
        let rate = r.rates.referral_to_won?;
        (prev_rate > 0.0).then(|| rate / prev_rate - 1.0)
    };
    // The value that moved won deals most (small values' rates swing on a deal or two).
    let won_change = |r: &FunnelRow| {
        r.previous
            .map_or(0.0, |p| r.current.won as f64 - p.won as f64)
    };
    let Some((row, change)) = rows
        .iter()
        .filter_map(|r| Some((*r, change_of(r)?)))
        .max_by(|a, b| {
            won_change(a.0)
                .abs()
                .total_cmp(&won_change(b.0).abs())
                .then(a.1.abs().total_cmp(&b.1.abs()))
        })
    else {
        // No previous window: name the best and worst converting values.
        let mut rated: Vec<(&FunnelRow, f64)> = rows
            .iter()
            .filter(|r| r.current.referrals >= MIN_REFERRALS)
            .filter_map(|r| Some((*r, r.rates.referral_to_won?)))
            .collect();
        rated.sort_by(|a, b| b.1.total_cmp(&a.1));
        let (best, worst) = (rated.first()?, rated.last()?);
        return (rated.len() > 1).then(|| {
            format!(
                "{} {} converts best ({} referral → won), {} worst ({}).",
                dimension,
                best.0.value,
                pct(best.1),
                worst.0.value,
                pct(worst.1)
            )
        });
    };
    let mut text = format!(
        "{} referrals converted {} {} than the previous window ({} referral → won)",
        row.value,
        pct(change.abs()),
        if change < 0.0 { "worse" } else { "better" },
        pct(row.rates.referral_to_won.unwrap_or(0.0))
    );
    let total = overall
        .previous
        .map(|p| overall.current.won as f64 - p.won as f64);
    let own = row.previous.map(|p| row.current.won as f64 - p.won as f64);
    if let (Some(total), Some(own)) = (total, own)
        && total != 0.0
        && own != 0.0
        && own.signum() == total.signum()
        && own.abs() <= total.abs()
    {
        text.push_str(&format!(
            "; it accounts for {} of the {} in won deals ({:+} of {:+})",
            pct(own / total),
            if total < 0.0 { "drop" } else { "rise" },
            own,
            total
        ));
    }
    text.push('.');
    Some(text)
}

/// The flag rate now, against the previous plan of the same window length.
pub fn flag_rate(plan: &Plan, trend: &[(String, f64)]) -> Option<String> {
    let rate = plan.risk.flag_rate?;
    let mut text = format!(
        "{} of {} referrals reviewed were flagged ({})",
        count(plan.risk.referrals_flagged as f64),
        count(plan.risk.referrals_reviewed as f64),
        pct(rate)
    );
    // The trend's last point is this plan; the one before is the previous as-of date.
    match trend.len().checked_sub(2).and_then(|i| trend.get(i)) {
        Some((as_of, previous)) => text.push_str(&format!(
            ", {} from {} as of {}",
            if rate < *previous {
                "down"
            } else if rate > *previous {
                "up"
            } else {
                "unchanged"
            },
            pct(*previous),
            as_of
        )),
        None => text.push_str("; no earlier plan of this window length to compare with"),
    }
    let unpaid = plan.risk.payouts_at_risk.unpaid;
    if unpaid > Money::ZERO {
        text.push_str(&format!(
            "; {} of unpaid payouts at risk",
            money(unpaid.to_f64())
        ));
    }
    text.push('.');
    Some(text)
}

/// Which rule flagged most, and its share of all rule hits.
pub fn rule_hits(plan: &Plan) -> Option<String> {
    let rules = &plan.risk.rules;
    let total: u64 = rules.iter().map(|r| r.referrals_flagged).sum();
    let top = rules.iter().max_by_key(|r| r.referrals_flagged)?;
    let failed = rules.iter().filter(|r| r.error.is_some()).count();
    let mut text = if total == 0 {
        format!("No rule flagged a referral ({} rules ran)", rules.len())
    } else {
        format!(
            "{} ({}) flagged the most referrals: {}, {} of all rule hits",
            top.rule_id,
            top.pattern,
            count(top.referrals_flagged as f64),
            pct(top.referrals_flagged as f64 / total as f64)
        )
    };
    if failed > 0 {
        text.push_str(&format!("; {failed} rule(s) failed and flagged nothing"));
    }
    text.push('.');
    Some(text)
}

/// Clusters the plan lists (it keeps the largest ones only).
const LISTED_CLUSTERS: usize = 10;
/// Devices listed per cluster.
const LISTED_DEVICES: usize = 5;

/// The biggest cluster of linked accounts. The plan lists at most 10 clusters and 5 devices
/// per cluster, so those counts are stated as lower bounds when they hit the cap.
pub fn clusters(plan: &Plan) -> Option<String> {
    let c = plan.risk.cohorts.first()?;
    let at_least = |n: usize, cap: usize| {
        if n >= cap {
            format!("at least {n}")
        } else {
            n.to_string()
        }
    };
    Some(format!(
        "{} cluster(s) of linked accounts; the largest joins {} referrals from {} referrer(s) over {} device(s) and {} card(s), with {} of payouts.",
        at_least(plan.risk.cohorts.len(), LISTED_CLUSTERS),
        count(c.referrals as f64),
        count(c.referrers as f64),
        at_least(c.devices.len(), LISTED_DEVICES),
        c.payment_fingerprints,
        money(c.payouts_at_risk.to_f64())
    ))
}

/// The rule whose flags change most when its thresholds are scaled.
pub fn sensitivity(plan: &Plan) -> Option<String> {
    let (rule, factor, delta) = plan
        .risk
        .sensitivity
        .iter()
        .flat_map(|row| {
            row.scaled.iter().filter_map(move |p| {
                Some((
                    row.rule_id.as_str(),
                    p.factor,
                    p.referrals_flagged? as i64 - row.at_threshold as i64,
                ))
            })
        })
        .max_by_key(|(_, _, d)| d.abs())?;
    Some(if delta == 0 {
        "No rule's flags change when its thresholds are scaled: the flags are far from the lines."
            .to_string()
    } else {
        format!(
            "{rule} is the most threshold-sensitive rule: at {factor}x its thresholds it would flag {} referrals ({delta:+}).",
            count(
                (plan
                    .risk
                    .sensitivity
                    .iter()
                    .find(|r| r.rule_id == rule)
                    .map_or(0, |r| r.at_threshold) as i64
                    + delta) as f64
            )
        )
    })
}

/// Partners at risk and the revenue they hold.
pub fn partners(plan: &Plan) -> Option<String> {
    let h = &plan.partner_health;
    if let Some(error) = &h.error {
        return Some(format!("Partner scoring failed: {error}."));
    }
    if h.partners_scored == 0 {
        return None;
    }
    let at_risk_revenue = h.at_risk.iter().map(|p| p.revenue).sum::<Money>().to_f64();
    let mut text = format!(
        "{} of {} partners scored; {} below the at-risk line",
        h.partners_scored,
        h.partners_evaluated,
        h.at_risk.len()
    );
    if !h.at_risk.is_empty() {
        text.push_str(&format!(
            ", with {} of revenue in the window",
            money(at_risk_revenue)
        ));
    }
    if let Some(top) = h.top.first() {
        text.push_str(&format!("; healthiest: {} ({:.0})", top.name, top.score));
    }
    if !h.tier_changes.is_empty() {
        text.push_str(&format!(
            "; {} tier change(s) suggested",
            h.tier_changes.len()
        ));
    }
    text.push('.');
    Some(text)
}

/// An experiment's decision in one line (the plan's own reason).
pub fn experiment(e: &ExperimentResult) -> String {
    format!(
        "{}: {}",
        e.decision.as_str().replace('_', " "),
        e.decision_reason
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{counts, funnel_row};
    use refopt_plan::{FunnelRow, Plan, RuleSummary};

    /// A row from (referrals, won) of the current and previous window.
    fn row(dimension: &str, value: &str, cur: (u64, u64), prev: (u64, u64)) -> FunnelRow {
        funnel_row(
            dimension,
            value,
            counts(cur.0 * 5, cur.0, cur.1),
            counts(prev.0 * 5, prev.0, prev.1),
        )
    }

    fn plan_with(rows: Vec<FunnelRow>) -> Plan {
        let mut plan = Plan::default();
        plan.metrics.funnel = rows;
        plan
    }

    #[test]
    fn dimension_insight_names_the_value_that_moved_and_its_share_of_the_drop() {
        let plan = plan_with(vec![
            row("overall", "all", (1000, 80), (1000, 100)),
            row("channel", "social", (400, 20), (400, 35)),
            row("channel", "email", (600, 60), (600, 65)),
        ]);
        let text = funnel_dimension(&plan, "channel").unwrap();
        // social: 5% vs 8.75% -> 42.9% worse; -15 of -20 won = 75%.
        assert!(
            text.starts_with("social referrals converted 42.9% worse"),
            "{text}"
        );
        assert!(
            text.contains("75.0% of the drop in won deals (-15 of -20)"),
            "{text}"
        );
        let overall = funnel_overall(&plan).unwrap();
        assert!(overall.contains("won deals fell by 20"), "{overall}");
        assert!(
            overall.contains("75.0% of it in channel social (-15)"),
            "{overall}"
        );
    }

    #[test]
    fn small_values_are_not_singled_out() {
        let plan = plan_with(vec![
            row("overall", "all", (1000, 80), (1000, 100)),
            row("channel", "tiny", (10, 0), (10, 5)),
            row("channel", "email", (990, 80), (990, 95)),
        ]);
        let text = funnel_dimension(&plan, "channel").unwrap();
        assert!(text.starts_with("email "), "{text}");
    }

    #[test]
    fn rule_insight_shares_hits_and_counts_failures() {
        let mut plan = Plan::default();
        plan.risk.rules = vec![
            RuleSummary {
                rule_id: "a".into(),
                pattern: "p".into(),
                referrals_flagged: 30,
                ..Default::default()
            },
            RuleSummary {
                rule_id: "b".into(),
                pattern: "q".into(),
                referrals_flagged: 10,
                ..Default::default()
            },
            RuleSummary {
                rule_id: "c".into(),
                error: Some("x".into()),
                ..Default::default()
            },
        ];
        let text = rule_hits(&plan).unwrap();
        assert_eq!(
            text,
            "a (p) flagged the most referrals: 30, 75.0% of all rule hits; 1 rule(s) failed and flagged nothing."
        );
    }

    #[test]
    fn flag_rate_compares_with_the_previous_point() {
        let mut plan = Plan::default();
        plan.risk.flag_rate = Some(0.03);
        plan.risk.referrals_reviewed = 1000;
        plan.risk.referrals_flagged = 30;
        let trend = vec![
            ("2026-10-01".to_string(), 0.05),
            ("2026-10-08".to_string(), 0.03),
        ];
        let text = flag_rate(&plan, &trend).unwrap();
        assert!(text.contains("down from 5.00% as of 2026-10-01"), "{text}");
        assert!(
            flag_rate(&plan, &trend[1..])
                .unwrap()
                .contains("no earlier plan")
        );
    }
}
