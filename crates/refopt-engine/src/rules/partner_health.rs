//! Partner health scoring: runs the partner health script on every row of the stage that
//! publishes `partner_health`, then derives top/bottom, at-risk partners and tier suggestions.

use datafusion::arrow::array::RecordBatch;
use refopt_plan::{HealthDrop, PartnerHealth, PartnerScore, Plan, Tier, TierChange};
use refopt_spec::partner_health::PartnerHealthRules;
use refopt_spec::sandbox;
use rhai::Scope;

use crate::error::EngineError;
use crate::rules::json::batches_to_objects;
use crate::rules::rows::RowReader;

/// At `--detail summary` the plan lists this many partner rows; `full` lists every partner.
const SUMMARY_PARTNERS: usize = 10;

/// Scores partners and finds the health drops since the newest of `previous` (earlier plans,
/// newest first); a failing script leaves the scores out and records the error.
pub fn score(
    batches: &[RecordBatch],
    rules: Option<&PartnerHealthRules>,
    full: bool,
    previous: &[Plan],
) -> Result<PartnerHealth, EngineError> {
    let mut rows = batches_to_objects(batches)?;
    let mut health = PartnerHealth {
        partners_evaluated: rows.len() as u64,
        ..PartnerHealth::default()
    };
    if let Some(rules) = rules {
        match run_script(batches, rules) {
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
                revenue: r.get("revenue").and_then(|v| v.as_f64()).unwrap_or(0.0),
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
            .total_cmp(&a.revenue)
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
