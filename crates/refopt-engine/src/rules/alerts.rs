//! KPI alerts: evaluates `rules/alerts.yaml` against the funnel rates and KPIs, behind a
//! minimum-sample gate. Alerts that could not be evaluated for lack of data become findings.

use refopt_plan::{Alert, AlertLevel, Crossing, Finding, FunnelRow, Kpi, Severity};
use refopt_spec::{AlertRule, Alerts, Direction};

/// Fired alerts and the findings for gated ones.
pub struct AlertOutcome {
    pub alerts: Vec<Alert>,
    pub gated: Vec<Finding>,
}

/// A funnel rate by name (one of `FUNNEL_RATES`) and the sample behind it (its denominator).
pub(crate) fn rate_of(row: &FunnelRow, name: &str) -> (Option<f64>, u64) {
    let r = &row.rates;
    let c = &row.current;
    match name {
        "invite_to_referral" => (r.invite_to_referral, c.invites),
        "referral_to_signup" => (r.referral_to_signup, c.referrals),
        "signup_to_qualified" => (r.signup_to_qualified, c.signups),
        "qualified_to_opportunity" => (r.qualified_to_opportunity, c.qualified),
        "opportunity_to_won" => (r.opportunity_to_won, c.opportunities),
        "referral_to_won" => (r.referral_to_won, c.referrals),
        "cost_per_won" => (r.cost_per_won, c.won),
        "revenue_per_payout_dollar" => (r.revenue_per_payout_dollar, c.won),
        "flag_rate" => (r.flag_rate, c.referrals),
        "nps" => (r.nps, c.nps_responses),
        _ => (None, 0),
    }
}

/// Checks `--alert-threshold` against the alerts it replaces the warn level of (those with
/// `uses_alert_threshold: true`): a finite value, within 0..=1 for rates, on the warn side of
/// each alert's critical level (a warn level past critical never fires first). A value that
/// changes nothing is an error too.
pub fn check_alert_threshold(threshold: f64, alerts: Option<&Alerts>) -> Result<(), String> {
    if !threshold.is_finite() {
        return Err(format!(
            "--alert-threshold must be a finite number, got {threshold}"
        ));
    }
    let using: Vec<&AlertRule> = alerts
        .map(|a| a.rules.iter().filter(|r| r.uses_alert_threshold).collect())
        .unwrap_or_default();
    if using.is_empty() {
        return Err(
            "--alert-threshold changes nothing: no alert in alerts.yaml has `uses_alert_threshold: true`"
                .to_string(),
        );
    }
    for rule in using {
        let is_rate = match rule.metric.split_once('.') {
            Some(("funnel", rate)) => {
                !matches!(rate, "cost_per_won" | "revenue_per_payout_dollar" | "nps")
            }
            Some(("kpi", name)) => name.ends_with("_rate"),
            _ => false,
        };
        if is_rate && !(0.0..=1.0).contains(&threshold) {
            return Err(format!(
                "--alert-threshold {threshold} is not a rate: alert `{}` watches {}, a share between 0 and 1",
                rule.id, rule.metric
            ));
        }
        let past_critical = match rule.direction {
            Direction::Below => threshold < rule.critical,
            Direction::Above => threshold > rule.critical,
        };
        if past_critical {
            return Err(format!(
                "--alert-threshold {threshold} is past the critical level {} of alert `{}` ({} {}): the warn level would never fire first; use a value on the warn side of {}",
                rule.critical,
                rule.id,
                rule.metric,
                rule.direction_word(),
                rule.critical
            ));
        }
    }
    Ok(())
}

/// Evaluates every alert. `funnel` must hold rows of every dimension the alerts name.
pub fn evaluate(
    alerts: &Alerts,
    funnel: &[FunnelRow],
    kpis: &[Kpi],
    alert_threshold: Option<f64>,
) -> AlertOutcome {
    let mut out = AlertOutcome {
        alerts: Vec::new(),
        gated: Vec::new(),
    };
    let overall_referrals = funnel.first().map_or(0, |r| r.current.referrals);
    for rule in &alerts.rules {
        let warn = match (rule.uses_alert_threshold, alert_threshold) {
            (true, Some(t)) => t,
            _ => rule.warn,
        };
        let observations: Vec<(String, Option<f64>, u64)> = match rule.metric.split_once('.') {
            Some(("funnel", rate)) => funnel
                .iter()
                .filter(|r| r.dimension == rule.dimension)
                .map(|r| {
                    let (v, n) = rate_of(r, rate);
                    (r.value.clone(), v, n)
                })
                .collect(),
            Some(("kpi", name)) => kpis
                .iter()
                .filter(|k| k.metric == name)
                .map(|k| ("all".to_string(), k.current, overall_referrals))
                .collect(),
            _ => Vec::new(),
        };
        for (value, current, sample) in observations {
            let Some(current) = current else { continue };
            let breached = |level: f64| match rule.direction {
                Direction::Below => current < level,
                Direction::Above => current > level,
            };
            let level = if breached(rule.critical) {
                Some((AlertLevel::Critical, rule.critical))
            } else if breached(warn) {
                Some((AlertLevel::Warn, warn))
            } else {
                None
            };
            let Some((level, threshold)) = level else {
                continue;
            };
            if sample < rule.min_sample {
                out.gated.push(Finding {
                    id: format!("alert_gated/{}/{value}", rule.id),
                    kind: "alert_gated".into(),
                    severity: Severity::Info,
                    title: format!(
                        "`{}` would be {level} for {} {value}, but the sample is too small",
                        rule.id, rule.dimension
                    ),
                    detail: format!(
                        "{} = {current:.4} on a sample of {sample} (< minimum {})",
                        rule.metric, rule.min_sample
                    ),
                });
                continue;
            }
            out.alerts
                .push(alert(rule, &value, level, current, threshold, sample));
        }
    }
    out
}

fn alert(
    rule: &AlertRule,
    value: &str,
    level: AlertLevel,
    current: f64,
    threshold: f64,
    sample: u64,
) -> Alert {
    let direction = match rule.direction {
        Direction::Below => Crossing::Below,
        Direction::Above => Crossing::Above,
    };
    Alert {
        id: rule.id.clone(),
        metric: rule.metric.clone(),
        dimension: rule.dimension.clone(),
        value: value.to_string(),
        level,
        current,
        threshold,
        direction,
        sample,
        owner: rule.owner.clone(),
        message: format!(
            "{} for {} {value} is {current:.4}, {direction} the {level} level {threshold}",
            rule.metric, rule.dimension
        ),
    }
}
