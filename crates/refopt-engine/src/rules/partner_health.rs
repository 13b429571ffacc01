//! Partner health scoring: runs the partner health script on every row of the stage that
//! publishes `partner_health`, then derives top/bottom, at-risk partners and tier suggestions.

use datafusion::arrow::array::RecordBatch;
use refopt_plan::{HealthDrop, Money, PartnerHealth, PartnerScore, Plan, Tier, TierChange};
use refopt_spec::partner_health::PartnerHealthRules;
use refopt_spec::sandbox;
use rhai::Scope;

use crate::error::EngineError;
use crate::rules::json::batches_to_objects;
use crate::rules::rows::RowReader;

/// At `--detail summary` the plan lists this many partner rows; `full` lists every partner.
const SUMMARY_PARTNERS: usize = 10;

/// Scores partners and finds the health drops since the newest of `previous` (earlier plans,
/// newest first); a failing script leaves the scores out and records the error. The script
/// sees `window_days` to put the window's counts on its 30-day scales.
pub fn score(
    batches: &[RecordBatch],
    rules: Option<&PartnerHealthRules>,
    window_days: u32,
    full: bool,
    previous: &[Plan],
) -> Result<PartnerHealth, EngineError> {
    let mut rows = batches_to_objects(batches)?;
    let mut health = PartnerHealth {
        partners_evaluated: rows.len() as u64,
        ..PartnerHealth::default()
    };
    if let Some(rules) = rules {
        match run_script(batches, rules, window_days) {
            Ok(scores) => {
                for (row, score) in rows.iter_mut().zip(&scores) {
                    if let (Some(s), Some(obj)) = (score, row.as_object_mut()) {
                        obj.insert("health_score".into(), serde_json::json!(s));
                    }
                }
                let scored = summarize(&mut health, &rows, &scores, rules);
                health.health_drops = health_drops(&scored, previous, rules.health_drop_points);
            }
            Err(e) => health.error = Some(e),
        }
    }
    health.partners = if full {
        rows
    } else {
        rows.into_iter().take(SUMMARY_PARTNERS).collect()
    };
    Ok(health)
}

fn run_script(
    batches: &[RecordBatch],
    rules: &PartnerHealthRules,
    window_days: u32,
) -> Result<Vec<Option<f64>>, String> {
    let engine = sandbox::engine();
    let mut scores = Vec::new();
    for batch in batches {
        let referrals = batch.schema().index_of("referrals").ok();
        let rows = RowReader::new(batch, None);
        for row in 0..batch.num_rows() {
            let map = rows.map(row);
            let enough = referrals.is_none_or(|_| {
                map.get("referrals")
                    .and_then(|v| v.as_int().ok())
                    .unwrap_or(0) as u64
                    >= rules.min_referrals
            });
            if !enough {
                scores.push(None);
                continue;
            }
            let mut scope = Scope::new();
            scope.push("row", map);
            scope.push("window_days", i64::from(window_days));
            let value = engine
                .eval_ast_with_scope::<rhai::Dynamic>(&mut scope, &rules.script.ast)
                .map_err(|e| {
                    format!(
                        "{}: partner health script: {}",
                        sandbox::runtime_location(&rules.script, &e),
                        sandbox::describe(&e)
                    )
                })?;
            let score = value
                .as_float()
                .or_else(|_| value.as_int().map(|i| i as f64))
                .map_err(|t| {
                    format!(
                        "{}: partner health script returned {t}, expected a number",
                        rules.script.file.display()
                    )
                })?;
            if !score.is_finite() {
                return Err(format!(
                    "{}: partner health script returned {score}",
                    rules.script.file.display()
                ));
            }
            scores.push(Some(score.clamp(0.0, 100.0)));
        }
    }
    Ok(scores)
}

/// Fills the lists of `health`; returns every scored partner, best first.
fn summarize(
    health: &mut PartnerHealth,
    rows: &[serde_json::Value],
    scores: &[Option<f64>],
    rules: &PartnerHealthRules,
) -> Vec<PartnerScore> {
    let text = |r: &serde_json::Value, k: &str| {
        r.get(k)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    };
    let mut scored: Vec<PartnerScore> = rows
        .iter()
        .zip(scores)
        .filter_map(|(r, s)| {
            Some(PartnerScore {
                partner_id: text(r, "partner_id"),
                name: text(r, "name"),
                tier: text(r, "tier"),
                score: (*s)?,
                referrals: r.get("referrals").and_then(|v| v.as_i64()).unwrap_or(0),
                referrals_previous: r
                    .get("referrals_previous")
                    .and_then(|v| v.as_i64())
                    .unwrap_or(0),
                revenue: r
                    .get("revenue")
                    .and_then(|v| v.as_f64())
                    .and_then(Money::from_f64_rounded)
                    .unwrap_or_default(),
                share_of_voice: r.get("share_of_voice").and_then(|v| v.as_f64()),
            })
        })
        .collect();
    health.partners_scored = scored.len() as u64;
    health.scores = scored
        .iter()
        .map(|p| (p.partner_id.clone(), p.score))
        .collect();
    scored.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| a.partner_id.cmp(&b.partner_id))
    });
    health.top = scored.iter().take(rules.top_n).cloned().collect();
    health.bottom = scored.iter().rev().take(rules.top_n).cloned().collect();
    let mut at_risk: Vec<PartnerScore> = scored
        .iter()
        .filter(|p| p.score < rules.at_risk_below)
        .cloned()
        .collect();
    at_risk.sort_by(|a, b| {
        b.revenue
            .cmp(&a.revenue)
            .then_with(|| a.partner_id.cmp(&b.partner_id))
    });
    health.at_risk = at_risk;
    for p in &scored {
        let Some(tier) = Tier::parse(&p.tier) else {
            continue;
        };
        let i = tier as usize;
        let change = if p.score >= rules.promote_at_or_above && i + 1 < Tier::ALL.len() {
            Some((
                Tier::ALL[i + 1],
                format!("health {:.0} >= {}", p.score, rules.promote_at_or_above),
            ))
        } else if p.score < rules.demote_below && i > 0 {
            Some((
                Tier::ALL[i - 1],
                format!("health {:.0} < {}", p.score, rules.demote_below),
            ))
        } else {
            None
        };
        if let Some((to, reason)) = change {
            health.tier_changes.push(TierChange {
                partner_id: p.partner_id.clone(),
                name: p.name.clone(),
                from: tier,
                to,
                score: p.score,
                reason,
                referrals: p.referrals,
                referrals_previous: p.referrals_previous,
                revenue: p.revenue,
            });
        }
    }
    health
        .tier_changes
        .sort_by(|a, b| a.partner_id.cmp(&b.partner_id));
    scored
}

/// Partners scored at least `points` below their score in the newest earlier plan that has
/// scores (`previous` is newest first), largest drop first.
fn health_drops(scored: &[PartnerScore], previous: &[Plan], points: f64) -> Vec<HealthDrop> {
    let Some(before) = previous
        .iter()
        .find(|p| !p.partner_health.scores.is_empty())
    else {
        return Vec::new();
    };
    let mut drops: Vec<HealthDrop> = scored
        .iter()
        .filter_map(|p| {
            let previous_score = *before.partner_health.scores.get(&p.partner_id)?;
            (previous_score - p.score >= points).then(|| HealthDrop {
                partner_id: p.partner_id.clone(),
                name: p.name.clone(),
                tier: p.tier.clone(),
                previous_score,
                score: p.score,
                drop: previous_score - p.score,
                previous_version: before.version,
                referrals: p.referrals,
                referrals_previous: p.referrals_previous,
                revenue: p.revenue,
            })
        })
        .collect();
    drops.sort_by(|a, b| {
        b.drop
            .total_cmp(&a.drop)
            .then_with(|| a.partner_id.cmp(&b.partner_id))
    });
    drops
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    /// One partner row with the window's counts and money multiplied by `scale`.
    fn row(scale: f64) -> RecordBatch {
        let int = |v: f64| Arc::new(Int64Array::from(vec![(v * scale).round() as i64])) as ArrayRef;
        let float = |v: f64| Arc::new(Float64Array::from(vec![v])) as ArrayRef;
        let text = |v: &str| Arc::new(StringArray::from(vec![v])) as ArrayRef;
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("partner_id", text("p1")),
            ("name", text("Acme")),
            ("tier", text("silver")),
            ("status", text("active")),
            ("referrals", int(300.0)),
            ("referrals_previous", int(240.0)),
            ("won", int(30.0)),
            ("revenue", float(27_000.0 * scale)),
            ("logins", int(30.0)),
            ("content_shares", int(30.0)),
            ("share_of_voice", float(0.1)),
            ("partners", Arc::new(Int64Array::from(vec![10])) as ArrayRef),
            ("nps", float(20.0)),
            ("kyc_failures", int(0.0)),
            ("disclosure_checks", int(0.0)),
            ("disclosure_failure_rate", float(0.0)),
        ];
        let schema = Schema::new(
            columns
                .iter()
                .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
                .collect::<Vec<_>>(),
        );
        RecordBatch::try_new(
            Arc::new(schema),
            columns.into_iter().map(|(_, a)| a).collect(),
        )
        .unwrap()
    }

    #[test]
    fn scores_are_on_a_30_day_scale_whatever_the_window() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../rules/partner_health.yaml");
        let rules = PartnerHealthRules::load(&file).unwrap();
        // The same partner's steady activity seen through a 30-day and a 7-day window.
        let month = score(&[row(1.0)], Some(&rules), 30, true, &[]).unwrap();
        let week_counts = row(7.0 / 30.0);
        let week = score(
            std::slice::from_ref(&week_counts),
            Some(&rules),
            7,
            true,
            &[],
        )
        .unwrap();
        let (m, w) = (month.top[0].score, week.top[0].score);
        assert!((m - w).abs() < 0.5, "30d {m} vs 7d {w}");
        // Read as if it were a 30-day window, the same week scores far lower.
        let unscaled = score(&[week_counts], Some(&rules), 30, true, &[]).unwrap();
        assert!(
            unscaled.top[0].score < m - 10.0,
            "{}",
            unscaled.top[0].score
        );
        assert_eq!(month.top[0].share_of_voice, Some(0.1));
    }
}
