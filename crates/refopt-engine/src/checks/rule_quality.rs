//! Scores fraud rules against truth labels (`<root>/_truth/fraud_referrals`, written by the
//! generator): precision and recall overall and per planted pattern, precision per rule, and how
//! many of each kind of legitimate look-alike (`<root>/_truth/lookalike_referrals`, when the
//! data has them) were flagged.

use std::collections::{BTreeMap, HashMap, HashSet};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::{ParquetReadOptions, SessionContext};
use refopt_spec::WindowRange;

use crate::error::EngineError;
use crate::rules::fraud::FraudReview;
use crate::storage;

/// Precision/recall figures.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RuleQuality {
    pub flagged: u64,
    pub truth: u64,
    pub true_positives: u64,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    /// Per planted pattern: (truth referrals, caught, recall).
    pub by_pattern: BTreeMap<String, PatternRecall>,
    /// Per rule: (flagged, of which true fraud, precision).
    pub by_rule: BTreeMap<String, RulePrecision>,
    /// Per kind of legitimate look-alike: (referrals, flagged, flagged share).
    pub by_lookalike: BTreeMap<String, LookalikeRate>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LookalikeRate {
    pub referrals: u64,
    pub flagged: u64,
    pub flagged_share: Option<f64>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct PatternRecall {
    pub truth: u64,
    pub caught: u64,
    pub recall: Option<f64>,
}

#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct RulePrecision {
    pub flagged: u64,
    pub fraudulent: u64,
    pub precision: Option<f64>,
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// Compares `review` with the truth labels of referrals created in the window.
pub async fn score(
    data_root: &str,
    range: &WindowRange,
    review: &FraudReview,
) -> Result<RuleQuality, EngineError> {
    let root = storage::resolve(data_root).map_err(|e| EngineError::Parameter(e.to_string()))?;
    let ctx = SessionContext::new();
    root.register(&ctx);
    let url = root.folder_url("_truth/fraud_referrals");
    ctx.register_parquet("truth", &url, ParquetReadOptions::default())
        .await
        .map_err(|e| EngineError::Parameter(format!("no truth labels under {url}: {e}")))?;
    let truth = labels(&ctx, "truth", "pattern", range).await?;
    // Data generated before look-alike labels existed has none: nothing to report then.
    let lookalike_url = root.folder_url("_truth/lookalike_referrals");
    let lookalikes = match ctx
        .register_parquet("lookalikes", &lookalike_url, ParquetReadOptions::default())
        .await
    {
        Ok(()) => labels(&ctx, "lookalikes", "kind", range).await?,
        Err(_) => HashMap::new(),
    };
    let flagged: HashSet<&str> = review
        .flagged
        .iter()
        .map(|f| f.referral_id.as_str())
        .collect();
    let mut quality = RuleQuality {
        flagged: flagged.len() as u64,
        truth: truth.len() as u64,
        ..Default::default()
    };
    quality.true_positives = flagged.iter().filter(|id| truth.contains_key(**id)).count() as u64;
    quality.precision = ratio(quality.true_positives, quality.flagged);
    quality.recall = ratio(quality.true_positives, quality.truth);
    for (id, pattern) in &truth {
        let p = quality.by_pattern.entry(pattern.clone()).or_default();
        p.truth += 1;
        if flagged.contains(id.as_str()) {
            p.caught += 1;
        }
    }
    for p in quality.by_pattern.values_mut() {
        p.recall = ratio(p.caught, p.truth);
    }
    for f in &review.flagged {
        for rule in &f.rule_ids {
            let r = quality.by_rule.entry(rule.clone()).or_default();
            r.flagged += 1;
            if truth.contains_key(&f.referral_id) {
                r.fraudulent += 1;
            }
        }
    }
    for r in quality.by_rule.values_mut() {
        r.precision = ratio(r.fraudulent, r.flagged);
    }
    for (id, kind) in &lookalikes {
        let l = quality.by_lookalike.entry(kind.clone()).or_default();
        l.referrals += 1;
        if flagged.contains(id.as_str()) {
            l.flagged += 1;
        }
    }
    for l in quality.by_lookalike.values_mut() {
        l.flagged_share = ratio(l.flagged, l.referrals);
    }
    Ok(quality)
}

/// Referral id -> label of the labelled referrals created in the window.
async fn labels(
    ctx: &SessionContext,
    table: &str,
    label: &str,
    range: &WindowRange,
) -> Result<HashMap<String, String>, EngineError> {
    let sql = format!(
        "SELECT referral_id, {label} FROM {table} WHERE created_at >= to_timestamp_micros({}) AND created_at < to_timestamp_micros({})",
        range.start.timestamp_micros(),
        range.end.timestamp_micros()
    );
    let batches = ctx.sql(&sql).await?.collect().await?;
    let mut out = HashMap::new();
    for b in &batches {
        let ids =
            cast(b.column(0), &DataType::Utf8).map_err(|e| EngineError::DataFusion(e.into()))?;
        let values =
            cast(b.column(1), &DataType::Utf8).map_err(|e| EngineError::DataFusion(e.into()))?;
        let (ids, values) = (ids.as_string::<i32>(), values.as_string::<i32>());
        for i in 0..b.num_rows() {
            out.insert(ids.value(i).to_string(), values.value(i).to_string());
        }
    }
    Ok(out)
}
