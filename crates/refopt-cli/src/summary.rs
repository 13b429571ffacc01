//! The human summary of a plan printed after a run.

/// Every line of the summary goes through `terminal_safe`: partner names, dimension values and
/// rule texts come from data, and an escape sequence in them must not reach the terminal raw.
macro_rules! println {
    () => {
        std::println!()
    };
    ($($arg:tt)*) => {{
        let text = format!($($arg)*);
        for line in text.split('\n') {
            std::println!("{}", refopt_spec::redact::terminal_safe(line));
        }
    }};
}

use refopt_plan::{Detail, FunnelRow, Plan};

// Numbers read the same here as in the report: one set of formatters (refopt_report::format).
use refopt_report::format;

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), format::pct)
}

fn pp(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), format::signed_points)
}

fn money(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), format::money)
}

fn rel(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), format::signed_pct)
}

/// Prints the summary to stdout.
pub fn print(plan: &Plan, plan_url: Option<&str>) {
    let i = &plan.inputs;
    println!(
        "refopt {} — window {} ending {} (previous window for deltas), run {}",
        plan.pipeline.name, i.window, i.as_of, plan.run_id
    );
    match plan_url {
        Some(url) => println!("plan: {url}"),
        None => println!("plan: not written (dry run)"),
    }
    println!();

    if let Some(overall) = plan.metrics.funnel.first() {
        print_funnel(overall);
    }
    let summary = i.detail == Detail::Summary;
    for dim in &i.dimensions {
        let rows: Vec<&FunnelRow> = plan.metrics.funnel_rows(dim).collect();
        if rows.is_empty() {
            continue;
        }
        println!("\nby {dim}:");
        println!(
            "  {:<14} {:>9} {:>9} {:>7} {:>9} {:>8} {:>12} {:>10} {:>8} {:>6}",
            "value",
            "invites",
            "referrals",
            "won",
            "ref->won",
            "delta",
            "revenue",
            "cost/won",
            "flagged",
            "NPS"
        );
        let shown = if summary {
            rows.len().min(5)
        } else {
            rows.len()
        };
        for r in &rows[..shown] {
            println!(
                "  {:<14} {:>9} {:>9} {:>7} {:>9} {:>8} {:>12} {:>10} {:>8} {:>6}",
                format::clip(&r.value, 14),
                r.current.invites,
                r.current.referrals,
                r.current.won,
                pct(r.rates.referral_to_won),
                pp(r.rate_deltas.referral_to_won),
                money(Some(r.current.revenue.to_f64())),
                money(r.rates.cost_per_won),
                pct(r.rates.flag_rate),
                r.rates
                    .nps
                    .map_or_else(|| "-".to_string(), |n| format!("{n:.0}"))
            );
        }
        if shown < rows.len() {
            println!("  ... {} more (use --detail full)", rows.len() - shown);
        }
    }

    print_risk(plan);
    print_partner_health(plan, summary);
    print_alerts_and_escalations(plan);
    print_experiments(plan, summary);
    print_backlog(plan, summary);

    println!("\nsuccess metrics:");
    for m in &plan.success_metrics {
        let current = match m.name.as_str() {
            "partner_nps" => m
                .current
                .map(|v| format!("{v:.1}"))
                .unwrap_or_else(|| "-".into()),
            _ => rel(m.current),
        };
        let target = match m.name.as_str() {
            "partner_nps" => format!("{:.0}", m.target),
            _ => format!("{:+.0}%", m.target * 100.0),
        };
        println!(
            "  {:<16} {:>8}  target {:>5}  {}",
            m.name, current, target, m.status
        );
    }

    if !summary {
        println!("\ndatasets:");
        for d in &plan.datasets {
            let rows: Vec<String> = d
                .checks
                .iter()
                .map(|c| format!("{} {}", c.period, c.rows))
                .collect();
            println!(
                "  {:<24} {:>6} files {:>10.1} MiB  {}",
                d.name,
                d.files,
                d.bytes as f64 / 1_048_576.0,
                rows.join(", ")
            );
        }
    }
    println!("\ntasks ({}):", plan.pipeline.pattern);
    for t in &plan.tasks {
        println!(
            "  {:<28} {:?} in {} ms{}",
            t.id,
            t.status,
            t.duration_ms.unwrap_or(0),
            if t.attempts > 1 {
                format!(" ({} attempts)", t.attempts)
            } else {
                String::new()
            }
        );
    }
    if !plan.error_handling.events.is_empty() {
        println!("\nretries:");
        for e in &plan.error_handling.events {
            println!(
                "  {} attempt {}: {} ({})",
                e.task_id, e.attempt, e.action, e.error
            );
        }
    }
}

fn print_funnel(o: &FunnelRow) {
    let c = &o.current;
    println!("funnel (current window; change vs previous window):");
    let prev = o.previous.unwrap_or_default();
    let line = |name: &str, cur: u64, prev: u64, rate: Option<f64>, delta: Option<f64>| {
        println!(
            "  {:<14} {:>10}  {:>8}  step {:>6} {:>8}",
            name,
            cur,
            rel(refopt_plan::relative_change(cur as f64, prev as f64)),
            pct(rate),
            pp(delta)
        );
    };
    line("invites", c.invites, prev.invites, None, None);
    line(
        "referrals",
        c.referrals,
        prev.referrals,
        o.rates.invite_to_referral,
        o.rate_deltas.invite_to_referral,
    );
    line(
        "signups",
        c.signups,
        prev.signups,
        o.rates.referral_to_signup,
        o.rate_deltas.referral_to_signup,
    );
    line(
        "qualified",
        c.qualified,
        prev.qualified,
        o.rates.signup_to_qualified,
        o.rate_deltas.signup_to_qualified,
    );
    line(
        "opportunities",
        c.opportunities,
        prev.opportunities,
        o.rates.qualified_to_opportunity,
        o.rate_deltas.qualified_to_opportunity,
    );
    line(
        "won",
        c.won,
        prev.won,
        o.rates.opportunity_to_won,
        o.rate_deltas.opportunity_to_won,
    );
    println!(
        "  revenue {} ({}), payouts {}, cost per won {}, revenue per payout dollar {}",
        format::money(c.revenue.to_f64()),
        rel(o.revenue_change),
        format::money(c.payout_cost.to_f64()),
        money(o.rates.cost_per_won),
        o.rates
            .revenue_per_payout_dollar
            .map(|v| format!("{v:.1}"))
            .unwrap_or_else(|| "-".into())
    );
}

fn print_risk(plan: &Plan) {
    let r = &plan.risk;
    if r.rules.is_empty() {
        return;
    }
    println!(
        "\nrisk review: {} of {} referrals flagged ({}); unpaid payouts to hold {}, already paid {}",
        r.referrals_flagged,
        r.referrals_reviewed,
        pct(r.flag_rate),
        format::money(r.payouts_at_risk.unpaid.to_f64()),
        format::money(r.payouts_at_risk.paid.to_f64())
    );
    println!(
        "  vs existing fraud_flags: {} agree, {} new, {} only in fraud_flags",
        r.existing_flags.agreement, r.existing_flags.new_flags, r.existing_flags.existing_only
    );
    for rule in &r.rules {
        match &rule.error {
            Some(e) => println!("  {:<36} FAILED: {e}", rule.rule_id),
            None => println!(
                "  {:<36} {:>6} referrals  ({}, {})",
                rule.rule_id, rule.referrals_flagged, rule.pattern, rule.severity
            ),
        }
    }
    for c in r.cohorts.iter().take(3) {
        println!(
            "  cluster {}: {} referrals, {} referrers, {} devices shown, {} cards",
            c.cluster_id,
            c.referrals,
            c.referrers,
            c.devices.len(),
            c.payment_fingerprints
        );
    }
    if let Some(url) = &r.flagged_referrals_url {
        println!("  flagged referrals: {url}");
    }
    if let Some(hold) = &r.payout_hold {
        println!(
            "  recommendation: hold {} of pending/held payouts on {} flagged referrals ({})",
            format::money(hold.amount.to_f64()),
            hold.referrals,
            hold.owner
        );
    }
    for s in &r.suppressions {
        println!(
            "  suppression {:<24} {:<8} {} referrals matched on `{}` (expires {})",
            s.id, s.status, s.referrals_matched, s.column, s.expires
        );
    }
    if let Some(c) = &r.payout_concentration {
        for row in &c.program {
            println!(
                "  payouts across {}s: {} recipients, top-1 {}, top-5 {}, Gini {}",
                row.scope,
                row.recipients,
                pct(row.top1_share),
                pct(row.top5_share),
                row.gini
                    .map(|g| format!("{g:.2}"))
                    .unwrap_or_else(|| "-".into())
            );
        }
        for row in &c.beyond_limits {
            println!(
                "  concentrated: {} {} top-1 {}, Gini {}",
                row.scope,
                row.group_id.as_deref().unwrap_or("(program)"),
                pct(row.top1_share),
                row.gini
                    .map(|g| format!("{g:.2}"))
                    .unwrap_or_else(|| "-".into())
            );
        }
    }
    if !r.sensitivity.is_empty() {
        println!("  sensitivity (referrals flagged at the threshold x factor):");
        for row in &r.sensitivity {
            let points: Vec<String> = row
                .scaled
                .iter()
                .map(|p| {
                    format!(
                        "x{}: {}",
                        p.factor,
                        p.referrals_flagged
                            .map(|n| n.to_string())
                            .unwrap_or_else(|| "failed".into())
                    )
                })
                .collect();
            println!(
                "    {:<36} x1: {:<6} {}",
                row.rule_id,
                row.at_threshold,
                points.join("  ")
            );
        }
    }
}

fn print_partner_health(plan: &Plan, summary: bool) {
    let h = &plan.partner_health;
    if h.partners_evaluated == 0 {
        return;
    }
    println!(
        "\npartner health: {} of {} partners scored",
        h.partners_scored, h.partners_evaluated
    );
    if let Some(e) = &h.error {
        println!("  scoring FAILED: {e}");
    }
    let n = if summary { 3 } else { 10 };
    let show = |label: &str, rows: &[refopt_plan::PartnerScore]| {
        for p in rows.iter().take(n) {
            println!(
                "  {label:<8} {:<28} {:<9} score {:>5.1}  referrals {:>6}  revenue {:>10}",
                format::clip(&p.name, 28),
                p.tier,
                p.score,
                p.referrals,
                money(Some(p.revenue.to_f64()))
            );
        }
    };
    show("top", &h.top);
    show("bottom", &h.bottom);
    show("at risk", &h.at_risk);
    for t in h.tier_changes.iter().take(n) {
        println!(
            "  tier     {:<28} {} -> {} ({})",
            format::clip(&t.name, 28),
            t.from,
            t.to,
            t.reason
        );
    }
}

fn print_alerts_and_escalations(plan: &Plan) {
    if !plan.alerts.is_empty() {
        println!("\nalerts:");
        for a in &plan.alerts {
            println!("  [{}] {} -> {}", a.level, a.message, a.owner);
        }
    }
    if !plan.escalations.is_empty() {
        println!("\nescalations:");
        for e in &plan.escalations {
            println!(
                "  level {} {} ({}, fallback {}): {}",
                e.level, e.role, e.owner, e.fallback_owner, e.reason
            );
        }
    }
}

fn print_experiments(plan: &Plan, summary: bool) {
    if plan.experiments.is_empty() {
        return;
    }
    println!("\nexperiments:");
    for e in &plan.experiments {
        let primary = e.comparisons.iter().find(|c| {
            c.role == "primary" && e.decision_variant.as_ref().is_none_or(|v| *v == c.variant)
        });
        let lift = primary.map_or("-".to_string(), |c| {
            format!(
                "{} {} (CI {} to {}, p_adj {:.3})",
                c.metric,
                rel(c.relative_lift),
                rel(c.relative_ci.map(|ci| ci[0])),
                rel(c.relative_ci.map(|ci| ci[1])),
                c.p_adjusted
            )
        });
        println!(
            "  {:<24} {:<16} {}",
            e.id,
            e.decision.as_str().replace('_', " "),
            lift
        );
        if !summary {
            println!("  {:<24} {}", "", e.decision_reason);
        }
    }
}

fn print_backlog(plan: &Plan, summary: bool) {
    if plan.backlog.is_empty() {
        return;
    }
    println!("\nbacklog:");
    let n = if summary { 5 } else { plan.backlog.len() };
    for b in plan.backlog.iter().take(n) {
        println!(
            "  P{} {:<64} {:<18} {:>3}d  lift {}",
            b.priority,
            format::clip(&b.title, 64),
            b.owner,
            b.eta_days,
            rel(b.projected_lift)
        );
    }
    if n < plan.backlog.len() {
        println!("  ... {} more (use --detail full)", plan.backlog.len() - n);
    }
}
