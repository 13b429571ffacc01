//! Experiments (`rules/experiments.yaml`): the tests the plan evaluates, with the statistical
//! settings a decision needs — expected allocation, primary metric, guardrails with cutoffs,
//! minimum detectable effect, alpha, power, the minimum-data gate and the multiple-testing
//! correction.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Deserialize;
use serde_saphyr::Spanned;
use statrs::distribution::{ContinuousCDF, Normal};

use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::yaml;

/// The experiments file format version.
pub const EXPERIMENTS_VERSION: u32 = 1;

/// Whether a metric is a share of units (two-proportion test) or a per-unit mean (Welch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    Proportion,
    Mean,
}

impl MetricKind {
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Proportion => "proportion",
            MetricKind::Mean => "mean",
        }
    }
}

/// The unit-level metrics the experiments stage computes (docs/experiments.md defines each):
/// name, kind, and whether higher is better.
pub const EXPERIMENT_METRICS: [(&str, MetricKind, bool); 7] = [
    ("referred", MetricKind::Proportion, true),
    ("qualified", MetricKind::Proportion, true),
    ("won", MetricKind::Proportion, true),
    ("fraud_flag_rate", MetricKind::Proportion, false),
    ("qualified_per_unit", MetricKind::Mean, true),
    ("revenue_per_unit", MetricKind::Mean, true),
    ("payout_cost_per_unit", MetricKind::Mean, false),
];

/// The kind of a known metric.
pub fn metric_kind(name: &str) -> Option<MetricKind> {
    EXPERIMENT_METRICS
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, k, _)| *k)
}

/// Whether a higher value of a known metric is better.
pub fn higher_is_better(name: &str) -> bool {
    EXPERIMENT_METRICS
        .iter()
        .find(|(n, _, _)| *n == name)
        .is_none_or(|(_, _, h)| *h)
}

/// Units per variant to detect a relative lift `mde` of a proportion `baseline` with a
/// two-sided test at `alpha` and the given power (normal approximation, equal groups).
pub fn units_for_proportion(baseline: f64, mde: f64, alpha: f64, power: f64) -> Option<u64> {
    let p1 = baseline;
    let p2 = baseline * (1.0 + mde);
    if !(p1 > 0.0 && p1 < 1.0 && p2 > 0.0 && p2 < 1.0) || p1 == p2 {
        return None;
    }
    let normal = Normal::standard();
    let za = normal.inverse_cdf(1.0 - alpha / 2.0);
    let zb = normal.inverse_cdf(power);
    let p_bar = (p1 + p2) / 2.0;
    let n = (za * (2.0 * p_bar * (1.0 - p_bar)).sqrt()
        + zb * (p1 * (1.0 - p1) + p2 * (1.0 - p2)).sqrt())
    .powi(2)
        / (p2 - p1).powi(2);
    Some(n.ceil() as u64)
}

/// How p-values of one experiment's comparisons are adjusted for multiple testing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    /// Holm–Bonferroni: controls the family-wise error rate.
    Holm,
    /// Benjamini–Hochberg: controls the false discovery rate.
    BenjaminiHochberg,
}

impl Correction {
    pub fn as_str(self) -> &'static str {
        match self {
            Correction::Holm => "holm",
            Correction::BenjaminiHochberg => "benjamini_hochberg",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    version: Spanned<u32>,
    #[serde(default)]
    defaults: RawDefaults,
    #[serde(default)]
    experiments: Vec<RawExperiment>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    alpha: Option<f64>,
    power: Option<f64>,
    min_units_per_variant: Option<u64>,
    srm_alpha: Option<f64>,
    correction: Option<Correction>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExperiment {
    id: Spanned<String>,
    hypothesis: String,
    owner: String,
    #[serde(default = "default_unit")]
    unit: String,
    control: Spanned<String>,
    /// variant -> expected share of units.
    variants: Spanned<std::collections::BTreeMap<String, f64>>,
    primary_metric: Spanned<String>,
    #[serde(default)]
    secondary_metrics: Vec<Spanned<String>>,
    #[serde(default)]
    guardrails: Vec<RawGuardrail>,
    minimum_detectable_effect: Spanned<f64>,
    alpha: Option<Spanned<f64>>,
    power: Option<Spanned<f64>>,
    min_units_per_variant: Option<u64>,
    start: Spanned<String>,
    end: Option<Spanned<String>>,
}

fn default_unit() -> String {
    "referrer".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGuardrail {
    metric: Spanned<String>,
    /// Largest acceptable relative move in the harmful direction (0.2 = 20% worse).
    max_relative_harm: Spanned<f64>,
}

/// A guardrail: the treatment must not move `metric` in the harmful direction by more than
/// `max_relative_harm` (with significance).
#[derive(Debug, Clone, PartialEq)]
pub struct Guardrail {
    pub metric: String,
    pub max_relative_harm: f64,
}

/// One declared experiment.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiment {
    pub id: String,
    pub hypothesis: String,
    pub owner: String,
    /// What is randomized; the data contract assigns referrers.
    pub unit: String,
    pub control: String,
    /// Variants (control included) with their expected share of units, by name.
    pub variants: Vec<(String, f64)>,
    pub primary_metric: String,
    pub secondary_metrics: Vec<String>,
    pub guardrails: Vec<Guardrail>,
    /// Smallest relative lift of the primary metric worth detecting (0.05 = +5%).
    pub minimum_detectable_effect: f64,
    pub alpha: f64,
    pub power: f64,
    /// Minimum-data gate: no decision before every variant has this many units.
    pub min_units_per_variant: u64,
    pub start: NaiveDate,
    /// Last day (inclusive), if the experiment has ended.
    pub end: Option<NaiveDate>,
    pub location: Location,
}

impl Experiment {
    /// Whether the experiment runs during some part of `[from, to)`.
    pub fn is_active_between(&self, from: NaiveDate, to: NaiveDate) -> bool {
        self.start < to && self.end.is_none_or(|end| end >= from)
    }

    /// The treatment variants (every variant but the control).
    pub fn treatments(&self) -> impl Iterator<Item = &str> {
        self.variants
            .iter()
            .map(|(v, _)| v.as_str())
            .filter(|v| *v != self.control)
    }
}

/// The experiments file.
#[derive(Debug, Clone, PartialEq)]
pub struct Experiments {
    pub file: PathBuf,
    /// Sample-ratio-mismatch alarm level for the chi-square test (default 0.001).
    pub srm_alpha: f64,
    pub correction: Correction,
    pub experiments: Vec<Experiment>,
}

impl Experiments {
    /// Loads and checks `file`: unique ids, known metrics, the control among the variants,
    /// shares that sum to 1, probabilities in (0, 1), dates, a positive MDE.
    pub fn load(file: &Path) -> Result<Experiments, Diagnostics> {
        let raw: RawFile = yaml::load(file)?;
        let at = |l: &serde_saphyr::Location| Location::from_yaml(file, l);
        let mut errors = Vec::new();
        errors.extend(crate::yaml::check_version(
            file,
            &raw.version,
            EXPERIMENTS_VERSION,
            "experiments",
        ));
        let file_start = Location::file_start(file);
        let mut probability = |value: f64, what: &str, location: &Location| {
            if !(value > 0.0 && value < 1.0) {
                errors.push(Diagnostic::new(
                    location.clone(),
                    format!("{what} must be between 0 and 1 (exclusive), got {value}"),
                ));
            }
        };
        let d = &raw.defaults;
        let alpha = d.alpha.unwrap_or(0.05);
        let power = d.power.unwrap_or(0.8);
        let srm_alpha = d.srm_alpha.unwrap_or(0.001);
        probability(alpha, "defaults.alpha", &file_start);
        probability(power, "defaults.power", &file_start);
        probability(srm_alpha, "defaults.srm_alpha", &file_start);
        let min_units = d.min_units_per_variant.unwrap_or(100);
        let correction = d.correction.unwrap_or(Correction::Holm);

        let mut ids = BTreeSet::new();
        let mut experiments = Vec::new();
        for e in raw.experiments {
            let location = at(&e.id.referenced);
            let id = e.id.value;
            let mut problem = |where_: &serde_saphyr::Location, message: String| {
                errors.push(Diagnostic::new(
                    at(where_),
                    format!("experiment `{id}`: {message}"),
                ));
            };
            if !ids.insert(id.clone()) {
                problem(&e.id.referenced, "declared twice".into());
            }
            let variants: Vec<(String, f64)> = e.variants.value.into_iter().collect();
            if variants.len() < 2 {
                problem(
                    &e.variants.referenced,
                    "needs at least two variants (the control and a treatment)".into(),
                );
            }
            if !variants.iter().any(|(v, _)| *v == e.control.value) {
                problem(
                    &e.control.referenced,
                    format!(
                        "control `{}` is not one of the variants ({})",
                        e.control.value,
                        variants
                            .iter()
                            .map(|(v, _)| v.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
            let total: f64 = variants.iter().map(|(_, s)| s).sum();
            if variants.iter().any(|(_, s)| s.is_nan() || *s <= 0.0) || (total - 1.0).abs() > 1e-6 {
                problem(
                    &e.variants.referenced,
                    format!("variant shares must be positive and sum to 1, got {total}"),
                );
            }
            let metrics = std::iter::once(&e.primary_metric)
                .chain(&e.secondary_metrics)
                .chain(e.guardrails.iter().map(|g| &g.metric));
            for m in metrics {
                if metric_kind(&m.value).is_none() {
                    let names = EXPERIMENT_METRICS.iter().map(|(n, _, _)| *n);
                    let hint = crate::pipeline::closest(&m.value, names.clone())
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default();
                    problem(
                        &m.referenced,
                        format!(
                            "unknown metric `{}`{hint}; known: {}",
                            m.value,
                            names.collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
            }
            for g in &e.guardrails {
                let tested = std::iter::once(&e.primary_metric.value)
                    .chain(e.secondary_metrics.iter().map(|m| &m.value));
                if tested.clone().any(|m| *m == g.metric.value) {
                    problem(
                        &g.metric.referenced,
                        format!(
                            "`{}` is both a guardrail and a primary or secondary metric; a metric is tested once, so list it in one place",
                            g.metric.value
                        ),
                    );
                }
                if g.max_relative_harm.value.is_nan() || g.max_relative_harm.value < 0.0 {
                    problem(
                        &g.max_relative_harm.referenced,
                        "max_relative_harm must be >= 0".into(),
                    );
                }
            }
            if e.minimum_detectable_effect.value.is_nan()
                || e.minimum_detectable_effect.value <= 0.0
            {
                problem(
                    &e.minimum_detectable_effect.referenced,
                    "minimum_detectable_effect must be > 0 (a relative lift, 0.05 = +5%)".into(),
                );
            }
            let mut date = |s: &Spanned<String>, field: &str| {
                NaiveDate::parse_from_str(&s.value, "%Y-%m-%d")
                    .map_err(|_| {
                        errors.push(Diagnostic::new(
                            at(&s.referenced),
                            format!(
                                "experiment `{id}`: {field} `{}` is not a date (YYYY-MM-DD)",
                                s.value
                            ),
                        ))
                    })
                    .ok()
            };
            let start = date(&e.start, "start");
            let end = e.end.as_ref().and_then(|s| date(s, "end"));
            let mut probability_at = |v: &Option<Spanned<f64>>, default: f64, what: &str| match v {
                Some(s) => {
                    if !(s.value > 0.0 && s.value < 1.0) {
                        errors.push(Diagnostic::new(
                                at(&s.referenced),
                                format!(
                                    "experiment `{id}`: {what} must be between 0 and 1 (exclusive), got {}",
                                    s.value
                                ),
                            ));
                    }
                    s.value
                }
                None => default,
            };
            let exp_alpha = probability_at(&e.alpha, alpha, "alpha");
            let exp_power = probability_at(&e.power, power, "power");
            if let (Some(s), Some(end)) = (start, end)
                && end < s
            {
                errors.push(Diagnostic::new(
                    location.clone(),
                    format!("experiment `{id}`: end {end} is before start {s}"),
                ));
            }
            experiments.push(Experiment {
                id: id.clone(),
                hypothesis: e.hypothesis.trim().to_string(),
                owner: e.owner,
                unit: e.unit,
                control: e.control.value,
                variants,
                primary_metric: e.primary_metric.value,
                secondary_metrics: e.secondary_metrics.into_iter().map(|m| m.value).collect(),
                guardrails: e
                    .guardrails
                    .into_iter()
                    .map(|g| Guardrail {
                        metric: g.metric.value,
                        max_relative_harm: g.max_relative_harm.value,
                    })
                    .collect(),
                minimum_detectable_effect: e.minimum_detectable_effect.value,
                alpha: exp_alpha,
                power: exp_power,
                min_units_per_variant: e.min_units_per_variant.unwrap_or(min_units),
                start: start.unwrap_or(NaiveDate::MIN),
                end,
                location,
            });
        }
        if errors.is_empty() {
            Ok(Experiments {
                file: file.to_path_buf(),
                srm_alpha,
                correction,
                experiments,
            })
        } else {
            Err(Diagnostics(errors))
        }
    }

    /// The experiments a run evaluates: the ids asked for (each must exist), or every
    /// experiment active during `[from, to)` when none are asked for.
    pub fn select(
        &self,
        ids: &[String],
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<&Experiment>, String> {
        if ids.is_empty() {
            return Ok(self
                .experiments
                .iter()
                .filter(|e| e.is_active_between(from, to))
                .collect());
        }
        ids.iter()
            .map(|id| {
                self.experiments
                    .iter()
                    .find(|e| e.id == *id)
                    .ok_or_else(|| {
                        let known = self.experiments.iter().map(|e| e.id.as_str());
                        let hint = crate::pipeline::closest(id, known.clone())
                            .map(|c| format!(" (did you mean `{c}`?)"))
                            .unwrap_or_default();
                        format!(
                            "--experiments: unknown experiment `{id}`{hint}; {} declares: {}",
                            self.file.display(),
                            known.collect::<Vec<_>>().join(", ")
                        )
                    })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(name: &str, text: &str) -> Result<Experiments, Diagnostics> {
        let dir = std::env::temp_dir().join(format!("refopt-exp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("{name}.yaml"));
        std::fs::write(&file, text).unwrap();
        Experiments::load(&file)
    }

    const GOOD: &str = "version: 1
experiments:
  - id: e1
    hypothesis: h
    owner: referral-architect
    control: control
    variants: {control: 0.5, treatment: 0.5}
    primary_metric: referred
    guardrails:
      - {metric: fraud_flag_rate, max_relative_harm: 0.2}
    minimum_detectable_effect: 0.1
    start: 2026-01-01
    end: 2026-03-31
";

    #[test]
    fn loads_defaults_and_selects_active_experiments() {
        let e = load_str("good", GOOD).unwrap();
        assert_eq!(e.correction, Correction::Holm);
        let x = &e.experiments[0];
        assert_eq!(x.alpha, 0.05);
        assert_eq!(x.treatments().collect::<Vec<_>>(), ["treatment"]);
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        assert_eq!(
            e.select(&[], day("2026-03-01"), day("2026-04-01"))
                .unwrap()
                .len(),
            1
        );
        assert!(
            e.select(&[], day("2026-04-01"), day("2026-05-01"))
                .unwrap()
                .is_empty()
        );
        let err = e
            .select(&["e2".into()], day("2026-03-01"), day("2026-04-01"))
            .unwrap_err();
        assert!(err.contains("unknown experiment `e2`"), "{err}");
    }

    #[test]
    fn problems_are_located() {
        let bad = GOOD
            .replace("primary_metric: referred", "primary_metric: refered")
            .replace("control: control\n", "control: base\n")
            .replace("treatment: 0.5", "treatment: 0.6");
        let err = load_str("bad", &bad).unwrap_err().to_string();
        assert!(err.contains("bad.yaml:8:21: experiment `e1`: unknown metric `refered` (did you mean `referred`?)"), "{err}");
        assert!(
            err.contains("control `base` is not one of the variants"),
            "{err}"
        );
        assert!(err.contains("sum to 1, got 1.1"), "{err}");
    }
}
