//! KPI alerts (`rules/alerts.yaml`) and the escalation ladder (`rules/ladder.yaml`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::window::Window;
use crate::yaml;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    version: serde_saphyr::Spanned<u32>,
    /// Minimum sample (denominator) before any alert may fire.
    #[serde(default = "default_min_sample")]
    min_sample: u64,
    alerts: Vec<RawAlert>,
}

fn default_min_sample() -> u64 {
    100
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlert {
    id: Spanned<String>,
    description: String,
    /// `funnel.<rate>` (a rate of the funnel row) or `kpi.<metric>`.
    metric: String,
    /// `overall` (default), or a dimension name: evaluated for every value of it.
    #[serde(default = "default_dimension")]
    dimension: String,
    direction: Direction,
    warn: f64,
    critical: f64,
    #[serde(default)]
    min_sample: Option<u64>,
    owner: String,
    /// `--alert-threshold` replaces this alert's warn level.
    #[serde(default)]
    uses_alert_threshold: bool,
}

fn default_dimension() -> String {
    "overall".to_string()
}

/// Which side of the threshold is bad.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Alert when the value falls below the levels.
    Below,
    /// Alert when the value rises above the levels.
    Above,
}

/// A validated KPI alert.
#[derive(Debug, Clone)]
pub struct AlertRule {
    pub id: String,
    pub description: String,
    pub metric: String,
    pub dimension: String,
    pub direction: Direction,
    pub warn: f64,
    pub critical: f64,
    pub min_sample: u64,
    pub owner: String,
    pub uses_alert_threshold: bool,
    pub location: Location,
}

impl AlertRule {
    /// `below` or `above`, as the YAML says.
    pub fn direction_word(&self) -> &'static str {
        match self.direction {
            Direction::Below => "below",
            Direction::Above => "above",
        }
    }
}

/// Funnel rates an alert may watch (`funnel.<name>`).
pub const FUNNEL_RATES: [&str; 10] = [
    "invite_to_referral",
    "referral_to_signup",
    "signup_to_qualified",
    "qualified_to_opportunity",
    "opportunity_to_won",
    "referral_to_won",
    "cost_per_won",
    "revenue_per_payout_dollar",
    "flag_rate",
    "nps",
];

/// The alert rules.
#[derive(Debug, Clone)]
pub struct Alerts {
    pub file: PathBuf,
    pub rules: Vec<AlertRule>,
}

impl Alerts {
    /// Loads and checks `file`: known metrics, warn/critical in the right order, owners set.
    pub fn load(file: &Path) -> Result<Alerts, Diagnostics> {
        let raw: RawAlerts = yaml::load(file)?;
        let mut errors = Vec::new();
        errors.extend(yaml::check_version(file, &raw.version, 1, "alerts"));
        let mut ids = BTreeSet::new();
        let mut rules = Vec::new();
        for a in raw.alerts {
            let location = Location::from_yaml(file, &a.id.referenced);
            let id = a.id.value;
            let mut problem = |m: String| {
                errors.push(Diagnostic::new(
                    location.clone(),
                    format!("alert `{id}`: {m}"),
                ))
            };
            if !ids.insert(id.clone()) {
                problem("declared twice".into());
            }
            let known = match a.metric.split_once('.') {
                Some(("funnel", rate)) => FUNNEL_RATES.contains(&rate),
                Some(("kpi", name)) => !name.is_empty(),
                _ => false,
            };
            if !known {
                problem(format!(
                    "unknown metric `{}` (use funnel.<rate> with a rate of {}, or kpi.<metric>)",
                    a.metric,
                    FUNNEL_RATES.join(", ")
                ));
            }
            let ordered = match a.direction {
                Direction::Below => a.critical <= a.warn,
                Direction::Above => a.critical >= a.warn,
            };
            if !ordered || !a.warn.is_finite() || !a.critical.is_finite() {
                let rule = match a.direction {
                    Direction::Below => "for `direction: below`, critical must be at or below warn",
                    Direction::Above => "for `direction: above`, critical must be at or above warn",
                };
                problem(format!(
                    "levels out of order: warn {} critical {} ({rule})",
                    a.warn, a.critical
                ));
            }
            if a.owner.trim().is_empty() {
                problem("owner is empty".into());
            }
            rules.push(AlertRule {
                id: id.clone(),
                description: a.description.trim().to_string(),
                metric: a.metric,
                dimension: a.dimension,
                direction: a.direction,
                warn: a.warn,
                critical: a.critical,
                min_sample: a.min_sample.unwrap_or(raw.min_sample),
                owner: a.owner,
                uses_alert_threshold: a.uses_alert_threshold,
                location,
            });
        }
        if errors.is_empty() {
            Ok(Alerts {
                file: file.to_path_buf(),
                rules,
            })
        } else {
            Err(Diagnostics(errors))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLadder {
    version: serde_saphyr::Spanned<u32>,
    levels: Vec<RawLevel>,
    series: RawSeries,
    triggers: RawTriggers,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSeries {
    cadence: Spanned<String>,
    #[serde(default)]
    breach_period: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTriggers {
    consecutive_breaches: u32,
    advance_after: Spanned<String>,
    recover_after: u32,
    fraud_spike: FraudSpike,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLevel {
    role: Spanned<String>,
    owner: String,
    fallback: String,
}

/// How the plans of a series follow each other in time: breaches are counted per period of
/// as-of dates, never per plan (reruns of one as-of date count once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Series {
    /// Days between the as-of dates of consecutive scheduled runs (the CronJob schedule).
    pub cadence_days: u32,
    /// Days of one breach period, a multiple of the cadence: every run whose as-of date falls in
    /// the same period counts as one breach at most.
    pub breach_period_days: u32,
}

/// When escalations fire and how an episode moves.
#[derive(Debug, Clone, PartialEq)]
pub struct Triggers {
    /// An alert breached in this many consecutive breach periods pulls the rip-cord (the seed:
    /// twice).
    pub consecutive_breaches: u32,
    /// Days (of as-of time) an escalated episode may stay unacknowledged before it climbs one
    /// rung; again every further `advance_after_days`.
    pub advance_after_days: u32,
    /// Breach periods in a row without a breach that end an escalated episode.
    pub recover_after: u32,
    /// Fraud spike: pulls the rip-cord at once.
    pub fraud_spike: FraudSpike,
}

/// Fraud spike trigger: the flag rate above `multiplier` x its average over the previous
/// `trailing_periods` breach periods.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FraudSpike {
    pub multiplier: f64,
    pub trailing_periods: usize,
    /// Who owns fraud spikes before they climb the ladder.
    pub owner: String,
}

/// One rung of the ladder.
#[derive(Debug, Clone, PartialEq)]
pub struct Level {
    /// 1-based.
    pub level: u32,
    pub role: String,
    pub owner: String,
    pub fallback: String,
}

/// The escalation ladder.
#[derive(Debug, Clone)]
pub struct Ladder {
    pub levels: Vec<Level>,
    pub series: Series,
    pub triggers: Triggers,
}

impl Ladder {
    /// Owners and fallback owners of every level, in ladder order.
    pub fn owners(&self) -> impl Iterator<Item = &str> {
        self.levels
            .iter()
            .flat_map(|l| [l.owner.as_str(), l.fallback.as_str()])
    }

    /// Loads and checks `file`.
    pub fn load(file: &Path) -> Result<Ladder, Diagnostics> {
        let raw: RawLadder = yaml::load(file)?;
        let mut errors = Vec::new();
        errors.extend(yaml::check_version(file, &raw.version, 1, "ladder"));
        if raw.levels.is_empty() {
            errors.push(Diagnostic::new(
                Location::file_start(file),
                "the ladder has no levels",
            ));
        }
        for l in &raw.levels {
            if l.owner.trim().is_empty() || l.fallback.trim().is_empty() {
                errors.push(Diagnostic::new(
                    Location::from_yaml(file, &l.role.referenced),
                    format!(
                        "level `{}` needs an owner and a fallback owner",
                        l.role.value
                    ),
                ));
            }
        }
        let t = &raw.triggers;
        if t.consecutive_breaches < 1
            || t.recover_after < 1
            || t.fraud_spike.trailing_periods < 1
            || !(t.fraud_spike.multiplier > 1.0 && t.fraud_spike.multiplier.is_finite())
        {
            errors.push(Diagnostic::new(
                Location::file_start(file),
                "triggers: consecutive_breaches, recover_after and fraud_spike.trailing_periods must be >= 1 and fraud_spike.multiplier a number > 1",
            ));
        }
        let mut days = |value: &Spanned<String>, key: &str| match value.value.parse::<Window>() {
            Ok(w) => Some(w.days),
            Err(e) => {
                errors.push(Diagnostic::new(
                    Location::from_yaml(file, &value.referenced),
                    format!("{key}: {e}"),
                ));
                None
            }
        };
        let cadence = days(&raw.series.cadence, "series.cadence");
        let breach_period = match &raw.series.breach_period {
            Some(p) => days(p, "series.breach_period"),
            None => cadence,
        };
        let advance_after = days(&t.advance_after, "triggers.advance_after");
        if let (Some(c), Some(p)) = (cadence, breach_period)
            && p % c != 0
        {
            errors.push(Diagnostic::new(
                Location::from_yaml(
                    file,
                    raw.series
                        .breach_period
                        .as_ref()
                        .map_or(&raw.series.cadence.referenced, |p| &p.referenced),
                ),
                format!(
                    "series.breach_period ({p}d) must be a multiple of series.cadence ({c}d): a period holds whole scheduled runs"
                ),
            ));
        }
        let (Some(cadence_days), Some(breach_period_days), Some(advance_after_days)) =
            (cadence, breach_period, advance_after)
        else {
            return Err(Diagnostics(errors));
        };
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        Ok(Ladder {
            levels: raw
                .levels
                .into_iter()
                .enumerate()
                .map(|(i, l)| Level {
                    level: i as u32 + 1,
                    role: l.role.value,
                    owner: l.owner,
                    fallback: l.fallback,
                })
                .collect(),
            series: Series {
                cadence_days,
                breach_period_days,
            },
            triggers: Triggers {
                consecutive_breaches: raw.triggers.consecutive_breaches,
                advance_after_days,
                recover_after: raw.triggers.recover_after,
                fraud_spike: raw.triggers.fraud_spike,
            },
        })
    }

    /// The rung for a 1-based level, capped at the top of the ladder.
    pub fn level(&self, level: u32) -> &Level {
        let i = (level.max(1) as usize - 1).min(self.levels.len() - 1);
        &self.levels[i]
    }
}
