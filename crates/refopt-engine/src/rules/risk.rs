//! The plan's risk section from a fraud review: flag rates, payouts at risk, agreement with the
//! program's existing fraud flags, rule outcomes and cohorts.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::JoinType;
use datafusion::common::ParamValues;
use datafusion::datasource::MemTable;
use datafusion::prelude::{SessionContext, col};
use refopt_plan::{
    Cohort, ConcentrationRow, ExistingFlagsComparison, FlagRate, Money, PayoutConcentration,
    PayoutHold, PayoutsAtRisk, Risk, RuleSummary, SensitivityPoint, SensitivityRow,
    SuppressionReport, SuppressionStatus,
};
use refopt_spec::fraud::PayoutConcentrationLimits;

use crate::error::EngineError;
use crate::rules::fraud::{FraudReview, flagged_batch};

/// Number of cohorts kept in the plan.
const TOP_COHORTS: usize = 10;

/// Builds the risk section. `payouts` / `fraud_flags` are the dataset tables, read for the window.
pub async fn risk_section(
    ctx: &SessionContext,
    review: &FraudReview,
    params: &ParamValues,
    concentration_limits: Option<&PayoutConcentrationLimits>,
) -> Result<Risk, EngineError> {
    let flagged_ids: HashSet<&str> = review
        .flagged
        .iter()
        .map(|f| f.referral_id.as_str())
        .collect();

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
            // Per cluster too (one scan serves both): a referral is in at most one cluster, so
            // the distinct referrals per status add up across clusters.
            "SELECT p.status, f.cluster_id, SUM(p.amount) AS amount, \
                    COUNT(DISTINCT p.referral_id) AS referrals \
             FROM payouts p \
             JOIN refopt_flagged_referrals f ON p.referral_id = f.referral_id \
             WHERE p.dt >= $window_start_day AND p.dt < $window_end_day \
               AND p.created_at >= $window_start AND p.created_at < $window_end \
             GROUP BY p.status, f.cluster_id",
        )
        .await?
        .with_param_values(params.clone())?
        .collect()
        .await?;
    let mut at_risk = PayoutsAtRisk::default();
    let mut unpaid_referrals = 0u64;
    // Pending, held or paid dollars of each cluster's referrals.
    let mut cluster_payouts: HashMap<String, Money> = HashMap::new();
    for b in &payouts {
        let status = cast(b.column(0), &DataType::Utf8)?;
        let cluster = cast(b.column(1), &DataType::Utf8)?;
        let amount = crate::execution::column_types::money_values(b.column(2))?;
        let referrals = cast(b.column(3), &DataType::Int64)?;
        let (status, cluster, amount, referrals) = (
            status.as_string::<i32>(),
            cluster.as_string::<i32>(),
            amount,
            referrals.as_primitive::<datafusion::arrow::datatypes::Int64Type>(),
        );
        for i in 0..b.num_rows() {
            let amount = amount[i].unwrap_or(Money::ZERO);
            if cluster.is_valid(i) && matches!(status.value(i), "pending" | "held" | "paid") {
                *cluster_payouts
                    .entry(cluster.value(i).to_string())
                    .or_default() += amount;
            }
            match status.value(i) {
                "pending" | "held" => {
                    at_risk.unpaid += amount;
                    // A referral with both a pending and a held payout counts twice here: an
                    // upper bound, stated as such in the plan format docs.
                    unpaid_referrals += referrals.value(i) as u64;
                }
                "paid" => at_risk.paid += amount,
                _ => {}
            }
        }
    }
    // Flags of the program's existing system on referrals of this window (the table the
    // rules reviewed, looked up like the review looked it up).
    let window_referrals = ctx
        .table(review.referrals_table.as_str())
        .await?
        .select(vec![col("referral_id").alias("window_referral_id")])?;
    let existing = ctx
        .sql(
            "SELECT DISTINCT referral_id FROM fraud_flags \
             WHERE dt >= $window_start_day AND dt < $window_end_day \
               AND flagged_at >= $window_start AND flagged_at < $window_end",
        )
        .await?
        .with_param_values(params.clone())?
        .join(
            window_referrals,
            JoinType::LeftSemi,
            &["referral_id"],
            &["window_referral_id"],
            None,
        )?
        .collect()
        .await?;
    let mut existing_ids = HashSet::new();
    for b in &existing {
        let ids = cast(b.column(0), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        for i in 0..b.num_rows() {
            existing_ids.insert(ids.value(i).to_string());
        }
    }
    let payout_concentration = match concentration_limits {
        Some(limits) => Some(payout_concentration(ctx, limits).await?),
        None => None,
    };
    let payout_hold = (at_risk.unpaid > Money::ZERO).then(|| PayoutHold {
        referrals: unpaid_referrals,
        amount: at_risk.unpaid,
        owner: "fraud-detection".to_string(),
        reason: "hold (do not pay) pending and held payouts of flagged referrals until the \
                 fraud review clears them"
            .to_string(),
    });
    let agreement = existing_ids
        .iter()
        .filter(|id| flagged_ids.contains(id.as_str()))
        .count() as u64;

    Ok(Risk {
        referrals_reviewed: review.referrals_reviewed,
        referrals_flagged: review.flagged.len() as u64,
        flag_rate: rate(review.flagged.len() as u64, review.referrals_reviewed),
        flag_rate_by_channel: review
            .by_channel
            .iter()
            .map(|(value, &(referrals, flagged))| FlagRate {
                value: value.clone(),
                referrals,
                flagged,
                rate: rate(flagged, referrals),
            })
            .collect(),
        payouts_at_risk: at_risk,
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
                severity: o.severity,
                rows_selected: o.rows_selected,
                referrals_flagged: o.referrals_flagged,
                error: o.error.clone(),
                evaluation: o.evaluation,
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
                ips: c.ips.clone(),
                payment_fingerprints: c.payment_fingerprints,
                rule_ids: c.rule_ids.clone(),
                payouts_at_risk: cluster_payouts
                    .get(&c.cluster_id)
                    .copied()
                    .unwrap_or_default(),
            })
            .collect(),
        suppressions: review
            .suppressions
            .iter()
            .map(|s| SuppressionReport {
                id: s.id.clone(),
                column: s.column.clone(),
                reason: s.reason.clone(),
                owner: s.owner.clone(),
                expires: s.expires.to_string(),
                status: match (&s.error, s.active) {
                    (Some(_), _) => SuppressionStatus::Failed,
                    (None, true) => SuppressionStatus::Active,
                    (None, false) => SuppressionStatus::Expired,
                },
                referrals_matched: s.referrals_matched,
                error: s.error.clone(),
            })
            .collect(),
        sensitivity: sensitivity(review),
        payout_concentration,
        payout_hold,
    })
}

/// The sweep's points grouped per rule, next to the rule's count at its configured thresholds.
fn sensitivity(review: &FraudReview) -> Vec<SensitivityRow> {
    review
        .outcomes
        .iter()
        .filter(|o| o.error.is_none())
        .filter_map(|o| {
            let scaled: Vec<SensitivityPoint> = review
                .sweep
                .iter()
                .filter(|p| p.rule_id == o.rule_id)
                .map(|p| SensitivityPoint {
                    factor: p.factor,
                    referrals_flagged: p.referrals_flagged,
                })
                .collect();
            (!scaled.is_empty()).then(|| SensitivityRow {
                rule_id: o.rule_id.clone(),
                at_threshold: o.referrals_flagged,
                scaled,
            })
        })
        .collect()
}

/// Reads the concentration table and applies the limits.
async fn payout_concentration(
    ctx: &SessionContext,
    limits: &PayoutConcentrationLimits,
) -> Result<PayoutConcentration, EngineError> {
    let batches = ctx.table(limits.table.as_str()).await?.collect().await?;
    let rows = crate::rules::json::batches_to_objects(&batches)?;
    let text = |r: &serde_json::Value, k: &str| r.get(k).and_then(|v| v.as_str()).map(String::from);
    let number = |r: &serde_json::Value, k: &str| r.get(k).and_then(|v| v.as_f64());
    let mut all: Vec<ConcentrationRow> = rows
        .iter()
        .map(|r| ConcentrationRow {
            scope: text(r, "scope").unwrap_or_default(),
            group_id: text(r, "group_id"),
            recipients: number(r, "recipients").unwrap_or(0.0) as u64,
            payouts: number(r, "payouts")
                .and_then(Money::from_f64_rounded)
                .unwrap_or_default(),
            top1_share: number(r, "top1_share"),
            top5_share: number(r, "top5_share"),
            gini: number(r, "gini"),
        })
        .collect();
    all.sort_by(|a, b| {
        b.gini
            .unwrap_or(0.0)
            .total_cmp(&a.gini.unwrap_or(0.0))
            .then_with(|| a.scope.cmp(&b.scope))
            .then_with(|| a.group_id.cmp(&b.group_id))
    });
    let beyond = |r: &ConcentrationRow| {
        (limits.scopes.is_empty() || limits.scopes.contains(&r.scope))
            && r.recipients >= limits.min_recipients
            && r.payouts.to_f64() >= limits.min_payouts
            && (r.top1_share.is_some_and(|s| s > limits.max_top1_share)
                || r.gini.is_some_and(|g| g > limits.max_gini))
    };
    Ok(PayoutConcentration {
        program: all
            .iter()
            .filter(|r| r.group_id.is_none())
            .cloned()
            .collect(),
        beyond_limits: all.iter().filter(|r| beyond(r)).take(20).cloned().collect(),
        severity: crate::rules::plan_severity(limits.severity),
    })
}
