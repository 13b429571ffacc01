//! The plan's risk section from a fraud review: flag rates, payouts at risk, agreement with the
//! program's existing fraud flags, rule outcomes and cohorts.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type};
use datafusion::common::ParamValues;
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use refopt_plan::{Cohort, ExistingFlagsComparison, FlagRate, PayoutsAtRisk, Risk, RuleSummary};

use crate::error::EngineError;
use crate::fraud::{FraudReview, flagged_batch};

/// Number of cohorts kept in the plan.
const TOP_COHORTS: usize = 10;

/// Builds the risk section. `payouts` / `fraud_flags` are the dataset tables, read for the window.
pub async fn risk_section(
    ctx: &SessionContext,
    review: &FraudReview,
    params: &ParamValues,
) -> Result<Risk, EngineError> {
    let flagged_ids: HashSet<&str> = review
        .flagged
        .iter()
        .map(|f| f.referral_id.as_str())
        .collect();

    let mut by_channel: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
    for (id, channel) in &review.channel_of {
        let e = by_channel.entry(channel.as_str()).or_default();
        e.0 += 1;
        if flagged_ids.contains(id.as_str()) {
            e.1 += 1;
        }
    }
    let rate = |flagged: u64, total: u64| (total > 0).then(|| flagged as f64 / total as f64);

    // Payouts of flagged referrals, and referrals flagged by the program's existing system.
    let table = MemTable::try_new(
        flagged_batch(&review.flagged).schema(),
        vec![vec![flagged_batch(&review.flagged)]],
    )?;
    ctx.deregister_table("refopt_flagged_referrals")?;
    ctx.register_table("refopt_flagged_referrals", Arc::new(table))?;
    let payouts = ctx
        .sql(
            "SELECT p.status, SUM(p.amount) AS amount FROM payouts p \
             JOIN refopt_flagged_referrals f ON p.referral_id = f.referral_id \
             WHERE p.dt >= $window_start_day AND p.dt < $window_end_day \
               AND p.created_at >= $window_start AND p.created_at < $window_end \
             GROUP BY p.status",
        )
        .await?
        .with_param_values(params.clone())?
        .collect()
        .await?;
    let mut at_risk = PayoutsAtRisk::default();
    for b in &payouts {
        let status = cast(b.column(0), &DataType::Utf8)?;
        let amount = cast(b.column(1), &DataType::Float64)?;
        let (status, amount) = (
            status.as_string::<i32>(),
            amount.as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            match status.value(i) {
                "pending" | "held" => at_risk.unpaid += amount.value(i),
                "paid" => at_risk.paid += amount.value(i),
                _ => {}
            }
        }
    }
    let existing = ctx
        .sql(
            "SELECT DISTINCT referral_id FROM fraud_flags \
             WHERE dt >= $window_start_day AND dt < $window_end_day \
               AND flagged_at >= $window_start AND flagged_at < $window_end",
        )
        .await?
        .with_param_values(params.clone())?
        .collect()
        .await?;
    let mut existing_ids = HashSet::new();
    for b in &existing {
        let ids = cast(b.column(0), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        for i in 0..b.num_rows() {
            if review.channel_of.contains_key(ids.value(i)) {
                existing_ids.insert(ids.value(i).to_string());
            }
        }
    }
    let agreement = existing_ids
        .iter()
        .filter(|id| flagged_ids.contains(id.as_str()))
        .count() as u64;

    Ok(Risk {
        referrals_reviewed: review.referrals_reviewed,
        referrals_flagged: review.flagged.len() as u64,
        flag_rate: rate(review.flagged.len() as u64, review.referrals_reviewed),
        flag_rate_by_channel: by_channel
            .into_iter()
            .map(|(value, (referrals, flagged))| FlagRate {
                value: value.to_string(),
                referrals,
                flagged,
                rate: rate(flagged, referrals),
            })
            .collect(),
        payouts_at_risk: PayoutsAtRisk {
            unpaid: (at_risk.unpaid * 100.0).round() / 100.0,
            paid: (at_risk.paid * 100.0).round() / 100.0,
        },
        existing_flags: ExistingFlagsComparison {
            existing: existing_ids.len() as u64,
            agreement,
            new_flags: review.flagged.len() as u64 - agreement,
            existing_only: existing_ids.len() as u64 - agreement,
        },
        rules: review
            .outcomes
            .iter()
            .map(|o| RuleSummary {
                rule_id: o.rule_id.clone(),
                pattern: o.pattern.clone(),
                severity: o.severity.clone(),
                rows_selected: o.rows_selected,
                referrals_flagged: o.referrals_flagged,
                error: o.error.clone(),
            })
            .collect(),
        flagged_referrals_url: None,
        cohorts: review
            .clusters
            .iter()
            .take(TOP_COHORTS)
            .map(|c| Cohort {
                cluster_id: c.cluster_id.clone(),
                referrals: c.referrals,
                referrers: c.referrers,
                devices: c.devices.clone(),
                payment_fingerprints: c.payment_fingerprints,
                rule_ids: c.rule_ids.clone(),
            })
            .collect(),
    })
}
