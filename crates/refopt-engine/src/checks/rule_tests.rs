//! Runs rule unit tests (`refopt test`): each case's input rows become in-memory tables or plan
//! sections, the rules of the rules folder run on them exactly as in a pipeline run, and the
//! result is compared with the case's expectation. A failure carries a unified diff of expected
//! vs actual (pretty JSON).

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::arrow::json::ReaderBuilder;
use datafusion::arrow::json::reader::infer_json_schema_from_iterator;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use refopt_plan::{FunnelCounts, FunnelRow, Kpi, Money, Plan};
use refopt_spec::rule_tests::{
    AlertsCase, CaseKind, FraudCase, PartnerHealthCase, PlaybookCase, Row, TestCase,
};
use refopt_spec::{FraudRules, RuleSet};
use serde_json::{Value, json};

use crate::rules::fraud::{ReviewOptions, review};

/// The outcome of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    /// `file:line:column` of the case.
    pub location: String,
    pub passed: bool,
    /// Unified diff (expected -> actual) or the error that stopped the case.
    pub detail: Option<String>,
}

/// Runs one case with `rules`.
pub async fn run_case(case: &TestCase, rules: &RuleSet) -> CaseResult {
    let outcome = match &case.kind {
        CaseKind::Fraud(c) => fraud_case(c, rules).await,
        CaseKind::PartnerHealth(c) => partner_health_case(c, rules),
        CaseKind::Alerts(c) => alerts_case(c, rules),
        CaseKind::Playbook(c) => playbook_case(c, rules),
    };
    let (passed, detail) = match outcome {
        Ok((expected, actual)) if expected == actual => (true, None),
        Ok((expected, actual)) => (false, Some(diff(&expected, &actual))),
        Err(e) => (false, Some(format!("error: {e}"))),
    };
    CaseResult {
        name: case.name.clone(),
        location: case.location.to_string(),
        passed,
        detail,
    }
}

/// `--- expected` / `+++ actual` unified diff of two JSON values.
fn diff(expected: &Value, actual: &Value) -> String {
    let e = serde_json::to_string_pretty(expected).unwrap_or_default();
    let a = serde_json::to_string_pretty(actual).unwrap_or_default();
    similar::TextDiff::from_lines(&e, &a)
        .unified_diff()
        .context_radius(3)
        .header("expected", "actual")
        .to_string()
}

type Compared = Result<(Value, Value), String>;

/// Rows as an Arrow batch (types inferred: integers Int64, decimals Float64, text Utf8), with
/// `extra_columns` added as all-null text columns when absent.
fn batch_of(rows: &[Row], extra_columns: &[&str]) -> Result<RecordBatch, String> {
    let values: Vec<Value> = rows.iter().cloned().map(Value::Object).collect();
    let inferred = infer_json_schema_from_iterator(values.iter().map(Ok))
        .map_err(|e| format!("cannot infer column types: {e}"))?;
    let mut fields: Vec<Field> = inferred
        .fields()
        .iter()
        .map(|f| {
            // A column that is null in every row has no type yet: call it text.
            let t = if f.data_type() == &DataType::Null {
                DataType::Utf8
            } else {
                f.data_type().clone()
            };
            Field::new(f.name(), t, true)
        })
        .collect();
    for c in extra_columns {
        if !fields.iter().any(|f| f.name() == c) {
            fields.push(Field::new(*c, DataType::Utf8, true));
        }
    }
    let schema = Arc::new(Schema::new(fields));
    let mut decoder = ReaderBuilder::new(schema.clone())
        .build_decoder()
        .map_err(|e| e.to_string())?;
    decoder.serialize(&values).map_err(|e| e.to_string())?;
    Ok(decoder
        .flush()
        .map_err(|e| e.to_string())?
        .unwrap_or_else(|| RecordBatch::new_empty(schema)))
}

async fn fraud_case(case: &FraudCase, rules: &RuleSet) -> Compared {
    let fraud = rules
        .fraud
        .as_ref()
        .ok_or("the rules folder has no fraud.yaml")?;
    let selected: Vec<_> = fraud
        .rules
        .iter()
        .filter(|r| {
            if case.rules.is_empty() {
                case.tables.contains_key(&r.table)
            } else {
                case.rules.contains(&r.id)
            }
        })
        .cloned()
        .collect();
    for id in &case.rules {
        let Some(rule) = fraud.rules.iter().find(|r| &r.id == id) else {
            return Err(format!("unknown fraud rule `{id}`"));
        };
        if !case.tables.contains_key(&rule.table) {
            return Err(format!(
                "rule `{id}` reads `{}`: give its rows under `tables`",
                rule.table
            ));
        }
    }
    if selected.is_empty() {
        return Err("no fraud rule reads any of the given tables".into());
    }
    let ctx = SessionContext::new();
    // The referrals table carries every rule's key and what the review links and reports on.
    let mut referral_columns = vec![
        "referral_id",
        "referrer_id",
        "device_id",
        "payment_fingerprint",
        "channel",
    ];
    for r in &selected {
        referral_columns.extend(r.key.iter().map(String::as_str));
    }
    for (name, rows) in &case.tables {
        let extra: &[&str] = if name == &fraud.referrals_table {
            &referral_columns
        } else {
            &[]
        };
        register(&ctx, name, batch_of(rows, extra)?)?;
    }
    if !case.tables.contains_key(&fraud.referrals_table) {
        register(
            &ctx,
            &fraud.referrals_table,
            batch_of(&case.referrals, &referral_columns)?,
        )?;
    }
    let only = FraudRules {
        rules: selected,
        ..fraud.clone()
    };
    let as_of = match &case.as_of {
        Some(d) => chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d")
            .map_err(|e| format!("as_of `{d}`: {e}"))?,
        None => chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date"),
    };
    let result = review(
        &ctx,
        &only,
        ReviewOptions {
            suppressions: rules.suppressions.as_ref(),
            as_of,
            sweep_factors: &[],
            engine: crate::rules::fraud::RuleEngine::Auto,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    if let Some(failed) = result.outcomes.iter().find_map(|o| o.error.clone()) {
        return Err(failed);
    }
    let actual: BTreeMap<String, Vec<String>> = result
        .flagged
        .iter()
        .map(|f| {
            let mut ids = f.rule_ids.clone();
            ids.sort();
            (f.referral_id.clone(), ids)
        })
        .collect();
    let expected: BTreeMap<String, Vec<String>> = case
        .expect
        .flagged
        .iter()
        .map(|(k, v)| {
            let mut ids = v.clone();
            ids.sort();
            (k.clone(), ids)
        })
        .collect();
    Ok((json!({ "flagged": expected }), json!({ "flagged": actual })))
}

fn register(ctx: &SessionContext, name: &str, batch: RecordBatch) -> Result<(), String> {
    let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).map_err(|e| e.to_string())?;
    ctx.register_table(name, Arc::new(table))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn partner_health_case(case: &PartnerHealthCase, rules: &RuleSet) -> Compared {
    let health_rules = rules
        .partner_health
        .as_ref()
        .ok_or("the rules folder has no partner_health.yaml")?;
    let batch = batch_of(&case.rows, &["partner_id", "name", "tier", "status"])?;
    let health = crate::rules::partner_health::score(
        &[batch],
        Some(health_rules),
        case.window_days,
        true,
        &[],
    )
    .map_err(|e| e.to_string())?;
    if let Some(e) = health.error {
        return Err(e);
    }
    let scores: BTreeMap<String, f64> = health
        .partners
        .iter()
        .filter_map(|p| {
            Some((
                p.get("partner_id")?.as_str()?.to_string(),
                p.get("health_score")?.as_f64()?,
            ))
        })
        .collect();
    let mut expected = serde_json::Map::new();
    let mut actual = serde_json::Map::new();
    let mut expected_scores = serde_json::Map::new();
    let mut actual_scores = serde_json::Map::new();
    for (id, want) in &case.expect.scores {
        let got = scores.get(id).copied();
        let want_json = serde_json::to_value(want).unwrap_or(Value::Null);
        expected_scores.insert(id.clone(), want_json.clone());
        // A satisfied expectation shows as itself, so only real differences appear in the diff.
        actual_scores.insert(
            id.clone(),
            match got {
                Some(s) if want.accepts(s) => want_json,
                Some(s) => json!(s),
                None => Value::Null,
            },
        );
    }
    expected.insert("scores".into(), Value::Object(expected_scores));
    actual.insert("scores".into(), Value::Object(actual_scores));
    if let Some(at_risk) = &case.expect.at_risk {
        let mut want = at_risk.clone();
        want.sort();
        let mut got: Vec<String> = health
            .at_risk
            .iter()
            .map(|p| p.partner_id.clone())
            .collect();
        got.sort();
        expected.insert("at_risk".into(), json!(want));
        actual.insert("at_risk".into(), json!(got));
    }
    if let Some(changes) = &case.expect.tier_changes {
        let got: BTreeMap<String, String> = health
            .tier_changes
            .iter()
            .map(|t| (t.partner_id.clone(), t.to.to_string()))
            .collect();
        expected.insert("tier_changes".into(), json!(changes));
        actual.insert("tier_changes".into(), json!(got));
    }
    Ok((Value::Object(expected), Value::Object(actual)))
}

fn alerts_case(case: &AlertsCase, rules: &RuleSet) -> Compared {
    let alerts = rules
        .alerts
        .as_ref()
        .ok_or("the rules folder has no alerts.yaml")?;
    let funnel: Vec<FunnelRow> = case
        .funnel
        .iter()
        .map(|f| {
            let counts = FunnelCounts {
                invites: f.invites,
                referrals: f.referrals,
                signups: f.signups,
                qualified: f.qualified,
                opportunities: f.opportunities,
                won: f.won,
                revenue: Money::from_f64_rounded(f.revenue).unwrap_or_default(),
                payout_cost: Money::from_f64_rounded(f.payout_cost).unwrap_or_default(),
                ..FunnelCounts::default()
            };
            FunnelRow {
                dimension: f.dimension.clone().unwrap_or_else(|| "overall".into()),
                value: f.value.clone().unwrap_or_else(|| "all".into()),
                current: counts,
                rates: crate::metrics::rates(&counts),
                ..FunnelRow::default()
            }
        })
        .collect();
    let kpis: Vec<Kpi> = case
        .kpis
        .iter()
        .map(|(name, value)| Kpi {
            metric: name.clone(),
            current: Some(*value),
            ..Kpi::default()
        })
        .collect();
    let outcome = crate::rules::alerts::evaluate(alerts, &funnel, &kpis, case.alert_threshold);
    let mut got: Vec<String> = outcome
        .alerts
        .iter()
        .map(|a| format!("{} {} {}", a.id, a.value, a.level))
        .collect();
    got.sort();
    let mut want = case.expect.alerts.clone();
    want.sort();
    Ok((json!({ "alerts": want }), json!({ "alerts": got })))
}

fn playbook_case(case: &PlaybookCase, rules: &RuleSet) -> Compared {
    let script = rules
        .playbook
        .as_ref()
        .ok_or("the rules folder has no playbook.rhai")?;
    let mut base = serde_json::to_value(Plan::default()).map_err(|e| e.to_string())?;
    merge(&mut base, &case.plan);
    let plan: Plan = serde_json::from_value(base)
        .map_err(|e| format!("`plan` does not fit the plan format: {e}"))?;
    let items = crate::rules::playbook::run(script, &plan, &rules.ladder_owners())?;
    let got: Vec<Value> = items
        .iter()
        .map(|i| json!({ "title": i.title, "owner": i.owner, "priority": i.priority }))
        .collect();
    Ok((
        json!({ "backlog": case.expect.backlog }),
        json!({ "backlog": got }),
    ))
}

/// Deep-merges `patch` into `base` (objects merge key by key; anything else replaces).
fn merge(base: &mut Value, patch: &Value) {
    match (base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, p) => *b = p.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_is_deep() {
        let mut base = json!({ "risk": { "a": 1, "b": { "c": 2 } }, "x": [1] });
        merge(
            &mut base,
            &json!({ "risk": { "b": { "c": 3 } }, "x": [2, 3] }),
        );
        assert_eq!(
            base,
            json!({ "risk": { "a": 1, "b": { "c": 3 } }, "x": [2, 3] })
        );
    }

    #[test]
    fn diff_shows_both_sides() {
        let d = diff(&json!({ "a": 1 }), &json!({ "a": 2 }));
        assert!(
            d.contains("-  \"a\": 1") && d.contains("+  \"a\": 2"),
            "{d}"
        );
    }
}
