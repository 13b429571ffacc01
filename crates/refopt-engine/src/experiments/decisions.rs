//! Experiment evaluation: the `experiments` stage's per-variant summaries, the declared
//! experiments (`rules/experiments.yaml`) and the statistics of [`crate::experiments::statistics`]
//! become the plan's experiment results and decisions.
//!
//! Decision order (docs/experiments.md): a sample ratio mismatch stops everything
//! (`investigate_srm`); below the minimum-data gate nothing is decided (`keep_running`); a
//! treatment significantly better on the primary metric that breaks no guardrail ships; one that
//! significantly breaks a guardrail, or is significantly worse on the primary metric, is
//! stopped; a test that reached its sample size without an effect stops; anything else keeps
//! running, with the days until its sample size.

use std::collections::BTreeMap;

use datafusion::arrow::array::RecordBatch;
use refopt_plan::{
    Comparison, Decision, ExperimentResult, PowerAnalysis, SampleRatioCheck, VariantAllocation,
};
use refopt_spec::Role;
use refopt_spec::experiments::{
    Correction, Experiment, Experiments, MetricKind, higher_is_better, metric_kind,
};

use crate::error::EngineError;
use crate::execution::roles;
use crate::experiments::statistics::{
    self as stats, MeanSummary, TestResult, benjamini_hochberg, holm, two_proportions, welch,
};

const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// One variant's row of the experiments stage.
#[derive(Debug, Clone, Default)]
struct VariantSummary {
    units: u64,
    /// Proportion metrics: units with the event.
    events: BTreeMap<&'static str, u64>,
    /// Mean metrics: per-unit mean and sample variance.
    means: BTreeMap<&'static str, (f64, f64)>,
}

impl VariantSummary {
    fn mean(&self, metric: &str) -> MeanSummary {
        let (mean, variance) = self.means.get(metric).copied().unwrap_or((0.0, 0.0));
        MeanSummary {
            units: self.units,
            mean,
            variance,
        }
    }
}

#[derive(Debug, Default)]
struct ExperimentRows {
    variants: BTreeMap<String, VariantSummary>,
    multi_exposed: u64,
    first_assigned_at: Option<i64>,
}

/// Stage column of each proportion metric.
const PROPORTION_COLUMNS: [(&str, &str); 4] = [
    ("referred", "referred"),
    ("qualified", "qualified"),
    ("won", "won"),
    ("fraud_flag_rate", "fraud_flagged"),
];
const MEAN_METRICS: [&str; 3] = [
    "qualified_per_unit",
    "revenue_per_unit",
    "payout_cost_per_unit",
];

fn read_rows(
    stage: &str,
    batches: &[RecordBatch],
) -> Result<BTreeMap<String, ExperimentRows>, EngineError> {
    let mut out: BTreeMap<String, ExperimentRows> = BTreeMap::new();
    for b in roles::read(stage, Role::Experiments, batches)? {
        for r in 0..b.rows {
            let rows = out.entry(b.text("experiment_id", r)).or_default();
            rows.multi_exposed = rows
                .multi_exposed
                .max(b.int("multi_exposed", r).max(0) as u64);
            if let Some(at) = b.micros("first_assigned_at", r) {
                rows.first_assigned_at = Some(rows.first_assigned_at.map_or(at, |f| f.min(at)));
            }
            let mut summary = VariantSummary {
                units: b.int("units", r).max(0) as u64,
                ..VariantSummary::default()
            };
            for (metric, column) in PROPORTION_COLUMNS {
                summary
                    .events
                    .insert(metric, b.int(column, r).max(0) as u64);
            }
            for metric in MEAN_METRICS {
                let mean = b.real(&format!("{metric}_mean"), r).unwrap_or(0.0);
                let variance = b.real(&format!("{metric}_var"), r).unwrap_or(0.0);
                summary.means.insert(metric, (mean, variance));
            }
            rows.variants.insert(b.text("variant", r), summary);
        }
    }
    Ok(out)
}

/// Evaluates `selected` experiments from the experiments stage's output; `window_end_micros`
/// dates the sample-size projection.
pub fn evaluate(
    stage: &str,
    batches: &[RecordBatch],
    spec: &Experiments,
    selected: &[&Experiment],
    window_end_micros: i64,
) -> Result<Vec<ExperimentResult>, EngineError> {
    let rows = read_rows(stage, batches)?;
    let empty = ExperimentRows::default();
    Ok(selected
        .iter()
        .map(|e| {
            evaluate_one(
                e,
                rows.get(&e.id).unwrap_or(&empty),
                spec,
                window_end_micros,
            )
        })
        .collect())
}

fn evaluate_one(
    e: &Experiment,
    rows: &ExperimentRows,
    spec: &Experiments,
    window_end_micros: i64,
) -> ExperimentResult {
    let zero = VariantSummary::default();
    let summary = |v: &str| rows.variants.get(v).unwrap_or(&zero);
    let observed: Vec<u64> = e.variants.iter().map(|(v, _)| summary(v).units).collect();
    let total: u64 = observed.iter().sum();
    let variants = e
        .variants
        .iter()
        .zip(&observed)
        .map(|((v, share), &units)| VariantAllocation {
            variant: v.clone(),
            units,
            expected_share: *share,
            observed_share: if total > 0 {
                units as f64 / total as f64
            } else {
                0.0
            },
        })
        .collect();
    let shares: Vec<f64> = e.variants.iter().map(|(_, s)| *s).collect();
    let (chi_square, degrees_of_freedom, p_value) =
        stats::chi_square_goodness_of_fit(&observed, &shares);
    let srm = SampleRatioCheck {
        chi_square,
        degrees_of_freedom,
        p_value,
        threshold: spec.srm_alpha,
        mismatch: total > 0 && p_value < spec.srm_alpha,
    };

    let mut comparisons = comparisons(e, summary(&e.control), &|v| summary(v));
    let p_values: Vec<f64> = comparisons.iter().map(|c| c.p_value).collect();
    let adjusted = match spec.correction {
        Correction::Holm => holm(&p_values),
        Correction::BenjaminiHochberg => benjamini_hochberg(&p_values),
    };
    for (c, p) in comparisons.iter_mut().zip(adjusted) {
        c.p_adjusted = p;
        c.significant = p < e.alpha;
        if let Some(limit) = c.max_relative_harm {
            let harm = harm(&c.metric, c.relative_lift, c.absolute_lift);
            c.guardrail_violated = Some(c.significant && harm > limit);
        }
    }

    let smallest = observed.iter().copied().min().unwrap_or(0);
    let power_analysis = power_analysis(e, summary(&e.control), smallest, rows, window_end_micros);
    let (decision, decision_variant, decision_reason) = decide(
        e,
        &srm,
        &comparisons,
        smallest,
        power_analysis.as_ref(),
        rows.multi_exposed,
    );
    let cost_variant = decision_variant
        .clone()
        .or_else(|| e.treatments().next().map(String::from));
    let cost_per_incremental_qualified_referral = cost_variant.and_then(|v| {
        let (c, t) = (summary(&e.control), summary(&v));
        let extra_qualified = t.mean("qualified_per_unit").mean - c.mean("qualified_per_unit").mean;
        let extra_cost = t.mean("payout_cost_per_unit").mean - c.mean("payout_cost_per_unit").mean;
        (extra_qualified > 0.0).then(|| extra_cost / extra_qualified)
    });

    ExperimentResult {
        id: e.id.clone(),
        hypothesis: e.hypothesis.clone(),
        owner: e.owner.clone(),
        unit: e.unit.clone(),
        control: e.control.clone(),
        primary_metric: e.primary_metric.clone(),
        alpha: e.alpha,
        power: e.power,
        minimum_detectable_effect: e.minimum_detectable_effect,
        correction: spec.correction.as_str().to_string(),
        variants,
        multi_exposed_units: rows.multi_exposed,
        srm,
        comparisons,
        power_analysis,
        cost_per_incremental_qualified_referral,
        decision,
        decision_variant,
        decision_reason,
    }
}

/// Relative move of `metric` in its harmful direction (negative when it improved). From a
/// control at zero the relative move is undefined: any harmful absolute move counts as
/// unbounded (fraud appearing where there was none breaks any limit).
fn harm(metric: &str, relative_lift: Option<f64>, absolute_lift: f64) -> f64 {
    let sign = if higher_is_better(metric) { -1.0 } else { 1.0 };
    match relative_lift {
        Some(lift) => sign * lift,
        None if sign * absolute_lift > 0.0 => f64::INFINITY,
        None => 0.0,
    }
}

/// Every treatment against the control on the primary, secondary and guardrail metrics
/// (a metric is tested once, in its first role).
fn comparisons<'a>(
    e: &Experiment,
    control: &'a VariantSummary,
    summary: &dyn Fn(&str) -> &'a VariantSummary,
) -> Vec<Comparison> {
    let mut metrics: Vec<(&str, &str, Option<f64>)> = vec![(&e.primary_metric, "primary", None)];
    for m in &e.secondary_metrics {
        metrics.push((m, "secondary", None));
    }
    for g in &e.guardrails {
        metrics.push((&g.metric, "guardrail", Some(g.max_relative_harm)));
    }
    let mut seen = std::collections::BTreeSet::new();
    metrics.retain(|(m, _, _)| seen.insert(*m));

    let mut out = Vec::new();
    for variant in e.treatments() {
        let treated = summary(variant);
        for &(metric, role, max_relative_harm) in &metrics {
            let Some(kind) = metric_kind(metric) else {
                continue;
            };
            let result: Option<TestResult> = match kind {
                MetricKind::Proportion => two_proportions(
                    control.events.get(metric).copied().unwrap_or(0),
                    control.units,
                    treated.events.get(metric).copied().unwrap_or(0),
                    treated.units,
                    e.alpha,
                ),
                MetricKind::Mean => welch(control.mean(metric), treated.mean(metric), e.alpha),
            };
            let Some(r) = result else {
                continue;
            };
            out.push(Comparison {
                variant: variant.to_string(),
                metric: metric.to_string(),
                role: role.to_string(),
                kind: kind.as_str().to_string(),
                control_units: control.units,
                variant_units: treated.units,
                control_value: r.control_value,
                variant_value: r.variant_value,
                absolute_lift: r.absolute_lift,
                absolute_ci: r.absolute_ci,
                relative_lift: r.relative_lift,
                relative_ci: r.relative_ci,
                statistic: r.statistic,
                degrees_of_freedom: r.degrees_of_freedom,
                p_value: r.p_value,
                p_adjusted: r.p_value,
                significant: false,
                max_relative_harm,
                guardrail_violated: None,
            });
        }
    }
    out
}

fn power_analysis(
    e: &Experiment,
    control: &VariantSummary,
    smallest: u64,
    rows: &ExperimentRows,
    window_end_micros: i64,
) -> Option<PowerAnalysis> {
    let metric = e.primary_metric.as_str();
    let (baseline, required) = match metric_kind(metric)? {
        MetricKind::Proportion => {
            if control.units == 0 {
                return None;
            }
            let baseline =
                control.events.get(metric).copied().unwrap_or(0) as f64 / control.units as f64;
            let n = stats::units_for_proportion(
                baseline,
                e.minimum_detectable_effect,
                e.alpha,
                e.power,
            )?;
            (baseline, n)
        }
        MetricKind::Mean => {
            let m = control.mean(metric);
            let n = stats::units_for_mean(
                m.mean,
                m.variance,
                e.minimum_detectable_effect,
                e.alpha,
                e.power,
            )?;
            (m.mean, n)
        }
    };
    let days = rows
        .first_assigned_at
        .map(|first| (window_end_micros - first) as f64 / MICROS_PER_DAY)
        .filter(|d| *d > 0.0);
    let rate = days.map_or(0.0, |d| smallest as f64 / d);
    let days_to_required_sample = if smallest >= required {
        Some(0.0)
    } else if rate > 0.0 {
        Some((required - smallest) as f64 / rate)
    } else {
        None
    };
    Some(PowerAnalysis {
        baseline,
        required_units_per_variant: required,
        units_per_variant: smallest,
        units_per_variant_per_day: rate,
        days_to_required_sample,
    })
}

fn pct(x: f64) -> String {
    format!("{:+.1}%", 100.0 * x)
}

fn decide(
    e: &Experiment,
    srm: &SampleRatioCheck,
    comparisons: &[Comparison],
    smallest: u64,
    power: Option<&PowerAnalysis>,
    multi_exposed: u64,
) -> (Decision, Option<String>, String) {
    let decision = |d: Decision, v: Option<&str>, reason: String| (d, v.map(String::from), reason);
    if srm.mismatch {
        return decision(
            Decision::InvestigateSrm,
            None,
            format!(
                "sample ratio mismatch: chi-square {:.1}, p = {:.2e} < {} (observed shares differ from the declared allocation); no effect can be trusted until the assignment is fixed",
                srm.chi_square, srm.p_value, srm.threshold
            ),
        );
    }
    if smallest < e.min_units_per_variant {
        return decision(
            Decision::KeepRunning,
            None,
            format!(
                "minimum-data gate: the smallest variant has {smallest} units, fewer than the {} required before any decision",
                e.min_units_per_variant
            ),
        );
    }
    let primary: Vec<&Comparison> = comparisons.iter().filter(|c| c.role == "primary").collect();
    let good = |c: &Comparison| {
        if higher_is_better(&c.metric) {
            c.absolute_lift > 0.0
        } else {
            c.absolute_lift < 0.0
        }
    };
    let violated: Vec<&Comparison> = comparisons
        .iter()
        .filter(|c| c.guardrail_violated == Some(true))
        .collect();
    let violating = |v: &str| violated.iter().any(|c| c.variant == v);
    let describe = |c: &Comparison| {
        format!(
            "{} {} {} ({:.0}% CI {} to {}; p_adj = {:.2e})",
            c.variant,
            c.metric,
            c.relative_lift.map_or("n/a".into(), pct),
            100.0 * (1.0 - e.alpha),
            c.relative_ci.map_or("n/a".into(), |ci| pct(ci[0])),
            c.relative_ci.map_or("n/a".into(), |ci| pct(ci[1])),
            c.p_adjusted
        )
    };
    let exposure_note = if multi_exposed > 0 {
        format!("; {multi_exposed} units saw more than one variant and were excluded")
    } else {
        String::new()
    };
    let winner = primary
        .iter()
        .filter(|c| c.significant && good(c) && !violating(&c.variant))
        .max_by(|a, b| {
            a.relative_lift
                .unwrap_or(0.0)
                .total_cmp(&b.relative_lift.unwrap_or(0.0))
        });
    if let Some(w) = winner {
        return decision(
            Decision::Ship,
            Some(&w.variant),
            format!("{}{exposure_note}", describe(w)),
        );
    }
    if let Some(v) = violated.first() {
        return decision(
            Decision::Stop,
            Some(&v.variant),
            format!(
                "guardrail broken: {} is {} beyond its limit of {}",
                describe(v),
                if higher_is_better(&v.metric) {
                    "down"
                } else {
                    "up"
                },
                pct(v.max_relative_harm.unwrap_or(0.0)).trim_start_matches('+')
            ),
        );
    }
    if let Some(worse) = primary.iter().find(|c| c.significant && !good(c)) {
        return decision(
            Decision::Stop,
            Some(&worse.variant),
            format!("the treatment is worse: {}", describe(worse)),
        );
    }
    match power {
        Some(p) if p.units_per_variant >= p.required_units_per_variant => decision(
            Decision::Stop,
            None,
            format!(
                "no significant effect on {} with {} units per variant, enough to detect {} at power {}{}",
                e.primary_metric,
                p.units_per_variant,
                pct(e.minimum_detectable_effect),
                e.power,
                primary
                    .first()
                    .map(|c| format!(": {}", describe(c)))
                    .unwrap_or_default()
            ),
        ),
        Some(p) => decision(
            Decision::KeepRunning,
            None,
            format!(
                "not significant yet: {} of {} units per variant needed to detect {}; about {} more days at {:.1} units per variant per day",
                p.units_per_variant,
                p.required_units_per_variant,
                pct(e.minimum_detectable_effect),
                p.days_to_required_sample
                    .map_or("unknown".to_string(), |d| format!("{}", d.ceil())),
                p.units_per_variant_per_day
            ),
        ),
        None => decision(
            Decision::KeepRunning,
            None,
            format!("no baseline for {} yet", e.primary_metric),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn harm_follows_the_metric_direction_and_a_zero_control() {
        // Fraud flags (lower is better) up 30%: 0.3 harm; revenue (higher is better) up: no harm.
        assert!((harm("fraud_flag_rate", Some(0.3), 0.01) - 0.3).abs() < 1e-12);
        assert!(harm("revenue_per_unit", Some(0.1), 5.0) < 0.0);
        // From a control with no flags at all, any increase breaks every limit.
        assert_eq!(harm("fraud_flag_rate", None, 0.02), f64::INFINITY);
        assert_eq!(harm("fraud_flag_rate", None, 0.0), 0.0);
        assert_eq!(harm("referred", None, 0.02), 0.0);
    }
}
