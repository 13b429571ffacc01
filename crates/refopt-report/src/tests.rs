//! Rendering tests: escaping of user data, detail levels, the Markdown size bound; and the
//! plan-building helpers the other modules' tests share.

use refopt_plan::*;

use crate::{Report, render};

const XSS: &str = "<script>alert(1)</script>";

pub(crate) fn counts(invites: u64, referrals: u64, won: u64) -> FunnelCounts {
    FunnelCounts {
        invites,
        referrals,
        signups: referrals * 8 / 10,
        qualified: referrals / 2,
        opportunities: referrals / 4,
        won,
        revenue: Money::from_cents(won as i64 * 500_000),
        payout_cost: Money::from_cents(won as i64 * 30_000),
        ..FunnelCounts::default()
    }
}

pub(crate) fn funnel_row(
    dimension: &str,
    value: &str,
    cur: FunnelCounts,
    prev: FunnelCounts,
) -> FunnelRow {
    let rate = |c: FunnelCounts| crate::insights::referral_to_won(&c);
    FunnelRow {
        dimension: dimension.into(),
        value: value.into(),
        current: cur,
        previous: Some(prev),
        rates: FunnelRates {
            referral_to_won: rate(cur),
            ..Default::default()
        },
        rate_deltas: FunnelRates {
            referral_to_won: Some(rate(cur).unwrap() - rate(prev).unwrap()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// A plan with user-controlled strings set to markup in every place they can appear.
fn plan() -> Plan {
    let mut plan = Plan {
        version: 7,
        pipeline: PipelineInfo {
            name: "optimize-referrals".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    plan.inputs.window = "30d".into();
    plan.inputs.window_days = 30;
    plan.inputs.as_of = "2026-11-01".into();
    plan.inputs.dimensions = vec!["channel".into()];
    plan.inputs.fingerprint = "f".repeat(64);
    plan.metrics.funnel = vec![
        funnel_row(
            "overall",
            "all",
            counts(10_000, 2_000, 100),
            counts(9_000, 1_900, 120),
        ),
        funnel_row(
            "channel",
            XSS,
            counts(4_000, 800, 30),
            counts(3_500, 760, 50),
        ),
        funnel_row(
            "channel",
            "email",
            counts(6_000, 1_200, 70),
            counts(5_500, 1_140, 70),
        ),
    ];
    plan.risk.referrals_reviewed = 2_000;
    plan.risk.referrals_flagged = 61;
    plan.risk.flag_rate = Some(61.0 / 2000.0);
    plan.risk.rules = vec![RuleSummary {
        rule_id: "device_ring".into(),
        pattern: XSS.into(),
        referrals_flagged: 61,
        ..Default::default()
    }];
    let partner = PartnerScore {
        partner_id: "p_1".into(),
        name: XSS.into(),
        tier: "gold".into(),
        score: 41.0,
        referrals: 90,
        referrals_previous: 120,
        revenue: Money::from_cents(12_000_000),
        share_of_voice: Some(0.25),
    };
    plan.partner_health.partners_evaluated = 1;
    plan.partner_health.partners_scored = 1;
    plan.partner_health.top = vec![partner.clone()];
    plan.partner_health.at_risk = vec![partner];
    plan.partner_health.partners = vec![serde_json::json!({
        "partner_id": "p_1", "name": XSS, "revenue": 120000.0, "health_score": 41.0
    })];
    plan.backlog = vec![BacklogItem {
        title: format!("Partner enablement: {XSS}"),
        owner: "partner-ops".into(),
        priority: 3,
        ..Default::default()
    }];
    plan.partner_communications = vec![PartnerCommunication {
        partner_id: "p_1".into(),
        partner_name: XSS.into(),
        reason: refopt_plan::CommunicationReason::HealthDrop,
        subject: format!("{XSS}: let's talk"),
        body: format!("Hi {XSS} team,\nyour score moved from 62.0 to 41.0."),
        owner: "partner-ops".into(),
        template: "rules/partner_messages.yaml#health_drop".into(),
    }];
    plan
}

fn rendered(plan: &Plan, history: &[Plan], detail: Detail) -> Report {
    render(plan, history, detail).expect("renders")
}

#[test]
fn markup_in_data_is_text_in_html_and_markdown() {
    for detail in [Detail::Summary, Detail::Full] {
        let report = rendered(&plan(), &[], detail);
        assert!(
            !report.html.contains("<script"),
            "raw script tag in the HTML"
        );
        assert!(
            report
                .html
                .contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;")
                || report
                    .html
                    .contains("&lt;script&gt;alert(1)&lt;/script&gt;")
        );
        assert!(
            !report.markdown.contains("<script"),
            "raw script tag in the Markdown"
        );
    }
}

#[test]
fn html_is_self_contained() {
    let html = rendered(&plan(), &[], Detail::Full).html;
    for needle in [
        "<script",
        "<link",
        "@import",
        "url(",
        "src=\"http",
        "href=\"http",
    ] {
        assert!(!html.contains(needle), "found {needle}");
    }
    for id in [
        "headline",
        "success-metrics",
        "funnel",
        "risk",
        "partners",
        "experiments",
        "alerts",
        "backlog",
    ] {
        assert!(
            html.contains(&format!("<section id=\"{id}\"")),
            "section {id}"
        );
    }
    assert!(html.matches("<svg").count() >= 4);
}

#[test]
fn deltas_compare_with_the_previous_window_and_plan() {
    let current = plan();
    let mut earlier = plan();
    earlier.version = 6;
    earlier.inputs.as_of = "2026-10-25".into();
    earlier.metrics.funnel[0].current = counts(8_000, 1_600, 80);
    earlier.risk.flag_rate = Some(0.05);
    let view = crate::view::build(
        &current,
        std::slice::from_ref(&earlier),
        Detail::Summary,
        String::new(),
    )
    .unwrap();
    let invites = view.tiles.iter().find(|t| t.key == "invites").unwrap();
    // 10,000 vs 9,000 in the previous window, vs 8,000 in plan v6.
    assert_eq!(invites.vs_window.as_deref(), Some("+11.1%"));
    assert_eq!(invites.vs_plan.as_deref(), Some("+25.0%"));
    let won = view.tiles.iter().find(|t| t.key == "won").unwrap();
    assert_eq!(won.window_tone, "bad");
    assert_eq!(view.previous_plan.as_ref().map(|p| p.version), Some(6));
    assert!(
        view.risk
            .trend_insight
            .as_deref()
            .unwrap()
            .contains("down from 5.00% as of 2026-10-25")
    );
}

#[test]
fn markdown_summary_stays_under_4000_characters_with_long_lists() {
    let mut p = plan();
    // Markup expands when escaped (`&` -> `&amp;`): the bound must hold anyway.
    let long = "&<".repeat(250);
    p.alerts = (0..50)
        .map(|i| Alert {
            id: format!("a{i}"),
            level: refopt_plan::AlertLevel::Critical,
            message: long.clone(),
            owner: long.clone(),
            ..Default::default()
        })
        .collect();
    p.escalations = (0..20)
        .map(|_| Escalation {
            role: long.clone(),
            owner: long.clone(),
            reason: long.clone(),
            level: 3,
            ..Default::default()
        })
        .collect();
    p.backlog = (0..40)
        .map(|i| BacklogItem {
            title: long.clone(),
            owner: long.clone(),
            priority: i,
            ..Default::default()
        })
        .collect();
    p.experiments = (0..10)
        .map(|i| ExperimentResult {
            id: format!("exp_{i}_{long}"),
            decision: refopt_plan::Decision::KeepRunning,
            decision_reason: long.clone(),
            ..Default::default()
        })
        .collect();
    p.partner_communications = (0..30)
        .map(|_| PartnerCommunication {
            partner_name: long.clone(),
            subject: long.clone(),
            body: long.clone(),
            owner: long.clone(),
            ..Default::default()
        })
        .collect();
    p.inputs.dimensions = vec!["channel".into(), "region".into(), "partner_tier".into()];
    let md = rendered(&p, &[], Detail::Summary).markdown;
    assert!(
        md.chars().count() < 4000,
        "{} characters:\n{md}",
        md.chars().count()
    );
    assert!(md.contains("…and more in the report"));
}

#[test]
fn partner_messages_are_shown_in_the_report_and_the_summary() {
    for detail in [Detail::Summary, Detail::Full] {
        let report = rendered(&plan(), &[], detail);
        let section = report
            .html
            .split("<section id=\"partner-communications\">")
            .nth(1)
            .and_then(|s| s.split("</section>").next())
            .expect("a partner communications section");
        assert!(section.contains("data-reason=\"health_drop\""), "{section}");
        assert!(
            section.contains("your score moved from 62.0 to 41.0."),
            "{section}"
        );
        assert!(
            section.contains("partner_messages.yaml#health_drop"),
            "{section}"
        );
        assert!(
            report
                .markdown
                .contains("**Partner messages to review** (1")
        );
        assert!(
            report.markdown.contains("(health drop): "),
            "{}",
            report.markdown
        );
    }
    let empty = rendered(&Plan::default(), &[], Detail::Summary);
    assert!(empty.html.contains("no message to draft"));
    assert!(!empty.markdown.contains("Partner messages"));
}

#[test]
fn an_empty_plan_renders_at_both_details() {
    // A pipeline without rules, dimensions, experiments or a funnel stage still gets a report.
    for detail in [Detail::Summary, Detail::Full] {
        let report = rendered(&Plan::default(), &[], detail);
        assert!(report.html.contains("<section id=\"funnel\""));
        assert!(report.html.contains("No experiments were evaluated"));
        assert!(report.markdown.starts_with("### refopt"));
    }
}

#[test]
fn data_tests_are_counted_and_failures_listed_errors_first() {
    let mut plan = plan();
    let test = |id: &str, status: DataTestStatus| DataTestResult {
        id: id.into(),
        status,
        rows: 100,
        failing_rows: Some(u64::from(status != DataTestStatus::Pass)),
        message: format!("{id} says {XSS}"),
        ..Default::default()
    };
    plan.datasets = vec![DatasetRead {
        name: "payouts".into(),
        tests: vec![
            test("accepted_values:recipient_type", DataTestStatus::Warn),
            test("unique:payout_id", DataTestStatus::Pass),
            test(
                "relationships:referral_id->referrals.referral_id",
                DataTestStatus::Error,
            ),
        ],
        ..Default::default()
    }];
    let summary = rendered(&plan, &[], Detail::Summary);
    assert!(
        summary
            .html
            .contains("3 declared: 1 passed, 1 warned, 1 failed")
    );
    assert!(summary.html.contains("approval is blocked"));
    let error = summary.html.find("relationships:referral_id-&gt;").unwrap();
    let warn = summary.html.find("accepted_values:recipient_type").unwrap();
    assert!(error < warn, "errors first");
    assert!(
        !summary.html.contains("unique:payout_id"),
        "a summary lists failures only"
    );
    assert!(!summary.html.contains(XSS));
    assert!(
        summary
            .markdown
            .contains("1 passed · 1 warned · 1 failed (approval blocked)")
    );
    assert!(
        summary
            .markdown
            .contains("- warn: payouts accepted\\_values:recipient\\_type:")
    );
    let full = rendered(&plan, &[], Detail::Full);
    assert!(
        full.html.contains("unique:payout_id"),
        "a full report lists every test"
    );
}
