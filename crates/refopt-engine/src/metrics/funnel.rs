//! Funnel metrics: conversion rates between steps, incentive efficiency, and deltas against the
//! previous window, per requested dimension; and the seed's success metrics.

use std::collections::BTreeMap;

use refopt_plan::{
    Better, FunnelCounts, FunnelRates, FunnelRow, Kpi, SuccessMetric, TargetStatus, relative_change,
};

use crate::execution::roles::FunnelRecord;

fn ratio(num: f64, den: f64) -> Option<f64> {
    (den > 0.0).then(|| num / den)
}

/// Rates of one period's counts; `None` where the denominator is zero.
pub fn rates(c: &FunnelCounts) -> FunnelRates {
    FunnelRates {
        invite_to_referral: ratio(c.referrals as f64, c.invites as f64),
        referral_to_signup: ratio(c.signups as f64, c.referrals as f64),
        signup_to_qualified: ratio(c.qualified as f64, c.signups as f64),
        qualified_to_opportunity: ratio(c.opportunities as f64, c.qualified as f64),
        opportunity_to_won: ratio(c.won as f64, c.opportunities as f64),
        referral_to_won: ratio(c.won as f64, c.referrals as f64),
        cost_per_won: ratio(c.payout_cost.to_f64(), c.won as f64),
        revenue_per_payout_dollar: ratio(c.revenue.to_f64(), c.payout_cost.to_f64()),
        flag_rate: ratio(c.flagged as f64, c.referrals as f64),
        nps: ratio(
            100.0 * (c.nps_promoters as f64 - c.nps_detractors as f64),
            c.nps_responses as f64,
        ),
    }
}

fn diff(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? - b?)
}

fn rate_deltas(cur: &FunnelRates, prev: &FunnelRates) -> FunnelRates {
    FunnelRates {
        invite_to_referral: diff(cur.invite_to_referral, prev.invite_to_referral),
        referral_to_signup: diff(cur.referral_to_signup, prev.referral_to_signup),
        signup_to_qualified: diff(cur.signup_to_qualified, prev.signup_to_qualified),
        qualified_to_opportunity: diff(cur.qualified_to_opportunity, prev.qualified_to_opportunity),
        opportunity_to_won: diff(cur.opportunity_to_won, prev.opportunity_to_won),
        referral_to_won: diff(cur.referral_to_won, prev.referral_to_won),
        cost_per_won: diff(cur.cost_per_won, prev.cost_per_won),
        revenue_per_payout_dollar: diff(
            cur.revenue_per_payout_dollar,
            prev.revenue_per_payout_dollar,
        ),
        flag_rate: diff(cur.flag_rate, prev.flag_rate),
        nps: diff(cur.nps, prev.nps),
    }
}

/// Current and previous window counts of one (dimension, value).
type PeriodCounts = (FunnelCounts, FunnelCounts);

/// Funnel rows for `overall` and each requested dimension, in a stable order: overall first,
/// then dimensions in the requested order, values by current referrals descending, then name.
pub fn funnel_rows(
    records: &[FunnelRecord],
    dimensions: &[String],
    keep_previous: bool,
) -> Vec<FunnelRow> {
    let mut by_key: BTreeMap<(String, String), PeriodCounts> = BTreeMap::new();
    for r in records {
        let entry = by_key
            .entry((r.dimension.clone(), r.value.clone()))
            .or_default();
        match r.period.as_str() {
            "current" => entry.0 = add(entry.0, r.counts),
            "previous" => entry.1 = add(entry.1, r.counts),
            _ => {}
        }
    }
    let mut order: Vec<&str> = vec!["overall"];
    order.extend(dimensions.iter().map(String::as_str));
    let mut rows = Vec::new();
    for dim in order {
        let mut values: Vec<(&(String, String), &PeriodCounts)> =
            by_key.iter().filter(|((d, _), _)| d == dim).collect();
        values.sort_by(|a, b| {
            b.1.0
                .referrals
                .cmp(&a.1.0.referrals)
                .then_with(|| a.0.1.cmp(&b.0.1))
        });
        for ((dimension, value), (cur, prev)) in values {
            let cur_rates = rates(cur);
            let prev_rates = rates(prev);
            rows.push(FunnelRow {
                dimension: dimension.clone(),
                value: value.clone(),
                current: *cur,
                previous: (keep_previous || dimension == "overall").then_some(*prev),
                rates: cur_rates,
                rate_deltas: rate_deltas(&cur_rates, &prev_rates),
                won_change: relative_change(cur.won as f64, prev.won as f64),
                revenue_change: relative_change(cur.revenue.to_f64(), prev.revenue.to_f64()),
            });
        }
    }
    rows
}

fn add(a: FunnelCounts, b: FunnelCounts) -> FunnelCounts {
    FunnelCounts {
        invites: a.invites + b.invites,
        referrals: a.referrals + b.referrals,
        signups: a.signups + b.signups,
        qualified: a.qualified + b.qualified,
        opportunities: a.opportunities + b.opportunities,
        won: a.won + b.won,
        revenue: a.revenue + b.revenue,
        payout_cost: a.payout_cost + b.payout_cost,
        flagged: a.flagged + b.flagged,
        nps_responses: a.nps_responses + b.nps_responses,
        nps_promoters: a.nps_promoters + b.nps_promoters,
        nps_detractors: a.nps_detractors + b.nps_detractors,
    }
}

/// Conversion lift, fraud reduction and partner NPS with their targets (rules/targets.yaml).
pub fn success_metrics(
    overall: Option<&FunnelRow>,
    kpis: &[Kpi],
    targets: &refopt_spec::SuccessTargets,
) -> Vec<SuccessMetric> {
    let kpi = |name: &str| kpis.iter().find(|k| k.metric == name);
    let status = |current: Option<f64>, target: f64| match current {
        Some(v) if v >= target => TargetStatus::Met,
        Some(_) => TargetStatus::NotMet,
        None => TargetStatus::Unknown,
    };
    let lift = overall.and_then(|o| {
        let prev = o.previous.as_ref()?;
        relative_change(o.rates.referral_to_won?, rates(prev).referral_to_won?)
    });
    let fraud_reduction =
        kpi("fraud_flag_rate").and_then(|k| Some(-(relative_change(k.current?, k.previous?)?)));
    let nps = kpi("partner_nps").and_then(|k| k.current);
    vec![
        SuccessMetric {
            name: "conversion_lift".into(),
            description: "relative change of referral -> won conversion vs the previous window"
                .into(),
            current: lift,
            target: targets.conversion_lift,
            direction: Better::HigherIsBetter,
            status: status(lift, targets.conversion_lift),
        },
        SuccessMetric {
            name: "fraud_reduction".into(),
            description:
                "relative fall of the fraud flag rate (flags per referral) vs the previous window"
                    .into(),
            current: fraud_reduction,
            target: targets.fraud_reduction,
            direction: Better::HigherIsBetter,
            status: status(fraud_reduction, targets.fraud_reduction),
        },
        SuccessMetric {
            name: "partner_nps".into(),
            description: "NPS of partner respondents in the window (% promoters - % detractors)"
                .into(),
            current: nps,
            target: targets.partner_nps,
            direction: Better::HigherIsBetter,
            status: status(nps, targets.partner_nps),
        },
    ]
}
