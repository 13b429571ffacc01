//! What the templates see: the plan itself plus what is computed for display (headline tiles
//! with their deltas, charts as SVG, insights, the trend across earlier plans).

use serde::Serialize;

use refopt_plan::{DataTestResult, DataTestStatus, Detail, FunnelRow, Plan};

use crate::charts::{self, BarSeries, ForestRow, PartnerPoint};
use crate::format::{count, money, number, pct, relative_change, signed_pct};
use crate::{ReportError, insights};

/// Most earlier plans shown in the flag-rate trend.
const TREND_POINTS: usize = 12;

/// The template context.
#[derive(Debug, Serialize)]
pub struct ReportView<'a> {
    pub plan: &'a Plan,
    pub full: bool,
    /// The earlier plan the "vs previous plan" deltas compare with.
    pub previous_plan: Option<PlanRef>,
    pub tiles: Vec<Tile>,
    pub funnel: FunnelView,
    pub dimensions: Vec<DimensionView<'a>>,
    pub risk: RiskView,
    pub partners: PartnersView,
    pub experiments: Vec<ExperimentView<'a>>,
    pub data_tests: DataTestsView<'a>,
    /// File name of the HTML report (the Markdown summary links to it).
    pub report_file: String,
}

/// An earlier plan, by version and as-of date.
#[derive(Debug, Serialize)]
pub struct PlanRef {
    pub version: u64,
    pub as_of: String,
}

/// A headline KPI with its deltas.
#[derive(Debug, Serialize)]
pub struct Tile {
    /// Stable key (`invites`, `flag_rate`, ...): the report marks the tile with it.
    pub key: &'static str,
    pub label: &'static str,
    pub value: Option<f64>,
    pub display: String,
    /// Relative change vs the previous window and vs the previous plan.
    pub vs_window: Option<String>,
    pub vs_plan: Option<String>,
    /// Whether each change is good news (`good`), bad (`bad`) or neither (`flat`).
    pub window_tone: &'static str,
    pub plan_tone: &'static str,
}

/// The overall funnel.
#[derive(Debug, Serialize)]
pub struct FunnelView {
    pub chart: String,
    pub insight: Option<String>,
}

/// The funnel of one requested dimension.
#[derive(Debug, Serialize)]
pub struct DimensionView<'a> {
    pub name: String,
    pub chart: String,
    pub insight: Option<String>,
    pub rows: Vec<&'a FunnelRow>,
}

/// Fraud and risk charts and insights.
#[derive(Debug, Serialize)]
pub struct RiskView {
    pub trend_chart: String,
    pub trend_insight: Option<String>,
    pub rules_chart: Option<String>,
    pub rules_insight: Option<String>,
    pub clusters_insight: Option<String>,
    pub sweep_chart: Option<String>,
    pub sweep_insight: Option<String>,
}

/// Partner health chart and insight.
#[derive(Debug, Serialize)]
pub struct PartnersView {
    pub chart: Option<String>,
    pub insight: Option<String>,
}

/// One experiment's forest plot and decision line.
#[derive(Debug, Serialize)]
pub struct ExperimentView<'a> {
    pub result: &'a refopt_plan::ExperimentResult,
    pub chart: Option<String>,
    pub insight: String,
}

/// The declared data tests: how many passed, warned and failed, and the rows to list (those
/// that did not pass; every test in a full report), errors first.
#[derive(Debug, Default, Serialize)]
pub struct DataTestsView<'a> {
    pub total: usize,
    pub passed: usize,
    pub warned: usize,
    pub errored: usize,
    pub rows: Vec<DataTestRow<'a>>,
}

/// One data test with its dataset.
#[derive(Debug, Serialize)]
pub struct DataTestRow<'a> {
    pub dataset: &'a str,
    pub test: &'a DataTestResult,
}

fn data_tests(plan: &Plan, full: bool) -> DataTestsView<'_> {
    let all: Vec<DataTestRow<'_>> = plan
        .datasets
        .iter()
        .flat_map(|d| {
            d.tests.iter().map(|t| DataTestRow {
                dataset: &d.name,
                test: t,
            })
        })
        .collect();
    let with = |s: DataTestStatus| all.iter().filter(|r| r.test.status == s).count();
    let mut view = DataTestsView {
        total: all.len(),
        passed: with(DataTestStatus::Pass),
        warned: with(DataTestStatus::Warn),
        errored: with(DataTestStatus::Error),
        rows: Vec::new(),
    };
    view.rows = all
        .into_iter()
        .filter(|r| full || r.test.status != DataTestStatus::Pass)
        .collect();
    // Stable: declaration order within a status.
    view.rows.sort_by_key(|r| std::cmp::Reverse(r.test.status));
    view
}

/// Builds the view of `plan`; `history` holds earlier plans of its series, newest first.
pub fn build<'a>(
    plan: &'a Plan,
    history: &'a [Plan],
    detail: Detail,
    report_file: String,
) -> Result<ReportView<'a>, ReportError> {
    let full = detail == Detail::Full;
    // Full reports stack charts in one column; summaries lay them out two to a row.
    let width = if full { 960 } else { 560 };
    let previous = history.iter().find(|p| {
        p.inputs.window_days == plan.inputs.window_days && p.inputs.as_of <= plan.inputs.as_of
    });
    let trend = flag_rate_trend(plan, history);
    Ok(ReportView {
        plan,
        full,
        previous_plan: previous.map(|p| PlanRef {
            version: p.version,
            as_of: p.inputs.as_of.clone(),
        }),
        tiles: tiles(plan, previous),
        funnel: FunnelView {
            chart: funnel_chart(width, plan)?,
            insight: insights::funnel_overall(plan),
        },
        dimensions: dimensions(width, plan)?,
        risk: RiskView {
            trend_chart: charts::trend("flag rate trend", width, &trend, pct)?,
            trend_insight: insights::flag_rate(plan, &trend),
            rules_chart: rules_chart(width, plan)?,
            rules_insight: insights::rule_hits(plan),
            clusters_insight: insights::clusters(plan),
            sweep_chart: sweep_chart(width, plan)?,
            sweep_insight: insights::sensitivity(plan),
        },
        partners: PartnersView {
            chart: partner_chart(width, plan)?,
            insight: insights::partners(plan),
        },
        experiments: plan
            .experiments
            .iter()
            .map(|e| {
                Ok(ExperimentView {
                    result: e,
                    chart: forest_chart(width, e)?,
                    insight: insights::experiment(e),
                })
            })
            .collect::<Result<_, ReportError>>()?,
        data_tests: data_tests(plan, full),
        report_file,
    })
}

/// One headline value of a plan.
struct Headline {
    key: &'static str,
    label: &'static str,
    value: Option<f64>,
    previous_window: Option<f64>,
    format: fn(f64) -> String,
    higher_is_better: bool,
    /// Deltas as differences in points (scores such as NPS, which can be negative or near
    /// zero), not relative changes.
    in_points: bool,
}

/// Headline values of a plan, in tile order.
fn headline(plan: &Plan) -> Vec<Headline> {
    let overall = plan.metrics.funnel.first();
    let cur = overall.map(|r| r.current);
    let prev = overall.and_then(|r| r.previous);
    let nps = plan.metrics.kpis.iter().find(|k| k.metric == "partner_nps");
    let rate =
        |c: Option<refopt_plan::FunnelCounts>| c.as_ref().and_then(insights::referral_to_won);
    let counted = |key, label, f: fn(refopt_plan::FunnelCounts) -> f64, format| Headline {
        key,
        label,
        value: cur.map(f),
        previous_window: prev.map(f),
        format,
        higher_is_better: true,
        in_points: false,
    };
    let risk = |key, label, value, format| Headline {
        key,
        label,
        value,
        previous_window: None,
        format,
        higher_is_better: false,
        in_points: false,
    };
    vec![
        counted("invites", "Invites", |c| c.invites as f64, count),
        counted("referrals", "Referrals", |c| c.referrals as f64, count),
        counted("won", "Won deals", |c| c.won as f64, count),
        counted("revenue", "Revenue", |c| c.revenue.to_f64(), money),
        Headline {
            key: "referral_to_won",
            label: "Referral → won",
            value: rate(cur),
            previous_window: rate(prev),
            format: pct,
            higher_is_better: true,
            in_points: false,
        },
        risk(
            "referrals_flagged",
            "Referrals flagged",
            Some(plan.risk.referrals_flagged as f64),
            count,
        ),
        risk("flag_rate", "Flag rate", plan.risk.flag_rate, pct),
        risk(
            "payouts_at_risk",
            "Unpaid payouts at risk",
            Some(plan.risk.payouts_at_risk.unpaid.to_f64()),
            money,
        ),
        Headline {
            key: "partner_nps",
            label: "Partner NPS",
            value: nps.and_then(|k| k.current),
            previous_window: nps.and_then(|k| k.previous),
            format: number,
            higher_is_better: true,
            in_points: true,
        },
    ]
}

fn tiles(plan: &Plan, previous: Option<&Plan>) -> Vec<Tile> {
    let before = previous.map(headline).unwrap_or_default();
    let tone = |change: Option<f64>, higher_is_better: bool| match change {
        Some(c) if c.abs() >= 0.0005 => {
            if (c > 0.0) == higher_is_better {
                "good"
            } else {
                "bad"
            }
        }
        _ => "flat",
    };
    headline(plan)
        .into_iter()
        .map(|h| {
            let change = |other: Option<f64>| {
                let (v, p) = h.value.zip(other)?;
                if h.in_points {
                    Some(v - p)
                } else {
                    relative_change(v, p)
                }
            };
            let shown = |c: f64| {
                if h.in_points {
                    format!("{c:+.1} pts")
                } else {
                    signed_pct(c)
                }
            };
            let vs_window = change(h.previous_window);
            let vs_plan = change(before.iter().find(|b| b.key == h.key).and_then(|b| b.value));
            Tile {
                key: h.key,
                label: h.label,
                value: h.value,
                display: h.value.map_or_else(|| "–".to_string(), h.format),
                vs_window: vs_window.map(shown),
                vs_plan: vs_plan.map(shown),
                window_tone: tone(vs_window, h.higher_is_better),
                plan_tone: tone(vs_plan, h.higher_is_better),
            }
        })
        .collect()
}

/// Flag rate of earlier plans with the same window length (one per as-of date, the newest
/// plan of each), oldest first, ending with this plan.
fn flag_rate_trend(plan: &Plan, history: &[Plan]) -> Vec<(String, f64)> {
    let mut points: Vec<(String, f64)> = Vec::new();
    for p in history {
        if p.inputs.window_days != plan.inputs.window_days
            || p.inputs.as_of >= plan.inputs.as_of
            || points.iter().any(|(d, _)| *d == p.inputs.as_of)
        {
            continue;
        }
        if let Some(rate) = p.risk.flag_rate {
            points.push((p.inputs.as_of.clone(), rate));
        }
    }
    points.sort_by(|a, b| a.0.cmp(&b.0));
    let skip = points.len().saturating_sub(TREND_POINTS - 1);
    let mut points: Vec<_> = points.into_iter().skip(skip).collect();
    if let Some(rate) = plan.risk.flag_rate {
        points.push((plan.inputs.as_of.clone(), rate));
    }
    points
}

fn funnel_chart(width: u32, plan: &Plan) -> Result<String, ReportError> {
    let Some(overall) = plan.metrics.funnel.first() else {
        return charts::bars("funnel", width, &[], &[], true, count);
    };
    let steps = |c: refopt_plan::FunnelCounts| {
        [
            c.invites,
            c.referrals,
            c.signups,
            c.qualified,
            c.opportunities,
            c.won,
        ]
        .map(|v| Some(v as f64))
        .to_vec()
    };
    let labels = [
        "Invites",
        "Referrals",
        "Signups",
        "Qualified",
        "Opportunities",
        "Won",
    ]
    .map(String::from)
    .to_vec();
    let mut series = vec![BarSeries {
        name: "this window",
        values: steps(overall.current),
        previous: false,
    }];
    if let Some(p) = overall.previous {
        series.push(BarSeries {
            name: "previous window",
            values: steps(p),
            previous: true,
        });
    }
    charts::bars("funnel", width, &labels, &series, true, count)
}

fn dimensions(width: u32, plan: &Plan) -> Result<Vec<DimensionView<'_>>, ReportError> {
    let mut out = Vec::new();
    for name in &plan.inputs.dimensions {
        let rows: Vec<&FunnelRow> = plan.metrics.funnel_rows(name).collect();
        let labels: Vec<String> = rows.iter().map(|r| r.value.clone()).collect();
        let mut series = vec![BarSeries {
            name: "this window",
            values: rows.iter().map(|r| r.rates.referral_to_won).collect(),
            previous: false,
        }];
        if rows.iter().any(|r| r.previous.is_some()) {
            series.push(BarSeries {
                name: "previous window",
                values: rows
                    .iter()
                    .map(|r| r.previous.as_ref().and_then(insights::referral_to_won))
                    .collect(),
                previous: true,
            });
        }
        out.push(DimensionView {
            name: name.clone(),
            chart: charts::bars(name, width, &labels, &series, false, pct)?,
            insight: insights::funnel_dimension(plan, name),
            rows,
        });
    }
    Ok(out)
}

fn rules_chart(width: u32, plan: &Plan) -> Result<Option<String>, ReportError> {
    if plan.risk.rules.is_empty() {
        return Ok(None);
    }
    let mut rules: Vec<_> = plan.risk.rules.iter().collect();
    rules.sort_by_key(|r| std::cmp::Reverse(r.referrals_flagged));
    let labels: Vec<String> = rules.iter().map(|r| r.rule_id.clone()).collect();
    let series = [BarSeries {
        name: "referrals flagged",
        values: rules
            .iter()
            .map(|r| Some(r.referrals_flagged as f64))
            .collect(),
        previous: false,
    }];
    charts::bars("rule hits", width, &labels, &series, false, count).map(Some)
}

fn sweep_chart(width: u32, plan: &Plan) -> Result<Option<String>, ReportError> {
    if plan.risk.sensitivity.is_empty() {
        return Ok(None);
    }
    // The six rules whose flags move most with their thresholds.
    let mut rows: Vec<_> = plan.risk.sensitivity.iter().collect();
    let spread = |r: &refopt_plan::SensitivityRow| {
        r.scaled
            .iter()
            .filter_map(|p| p.referrals_flagged)
            .map(|v| (v as i64 - r.at_threshold as i64).abs())
            .max()
            .unwrap_or(0)
    };
    rows.sort_by_key(|r| std::cmp::Reverse(spread(r)));
    let lines: Vec<(String, Vec<(f64, f64)>)> = rows
        .iter()
        .take(6)
        .map(|r| {
            let mut pts: Vec<(f64, f64)> = r
                .scaled
                .iter()
                .filter_map(|p| Some((p.factor, p.referrals_flagged? as f64)))
                .chain([(1.0, r.at_threshold as f64)])
                .collect();
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
            (r.rule_id.clone(), pts)
        })
        .collect();
    charts::sweep("sensitivity sweep", width, &lines).map(Some)
}

fn partner_chart(width: u32, plan: &Plan) -> Result<Option<String>, ReportError> {
    let h = &plan.partner_health;
    let at_risk: std::collections::HashSet<&str> =
        h.at_risk.iter().map(|p| p.partner_id.as_str()).collect();
    let points: Vec<PartnerPoint> = h
        .partners
        .iter()
        .filter_map(|p| {
            Some(PartnerPoint {
                revenue: p.get("revenue")?.as_f64()?,
                score: p.get("health_score")?.as_f64()?,
                at_risk: p
                    .get("partner_id")
                    .and_then(|v| v.as_str())
                    .is_some_and(|id| at_risk.contains(id)),
            })
        })
        .collect();
    if points.is_empty() {
        return Ok(None);
    }
    charts::partner_quadrant("partner health", width, &points).map(Some)
}

fn forest_chart(
    width: u32,
    e: &refopt_plan::ExperimentResult,
) -> Result<Option<String>, ReportError> {
    let rows: Vec<ForestRow> = e
        .comparisons
        .iter()
        .filter_map(|c| {
            let [low, high] = c.relative_ci?;
            Some(ForestRow {
                label: format!("{} · {} ({})", c.variant, c.metric, c.role),
                estimate: c.relative_lift?,
                low,
                high,
                significant: c.significant,
            })
        })
        .collect();
    if rows.is_empty() {
        return Ok(None);
    }
    charts::forest(&e.id, width, &rows, signed_pct).map(Some)
}
