//! Partner health (`rules/partner_health.yaml` + its Rhai scoring script): a 0..100 score per
//! partner, top/bottom lists, at-risk partners and tier-change suggestions.

use std::path::Path;

use serde::Deserialize;

use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::sandbox::{Script, compile_file};
use crate::yaml;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPartnerHealth {
    version: serde_saphyr::Spanned<u32>,
    score_script: String,
    #[serde(default = "default_top_n")]
    top_n: usize,
    at_risk_below: f64,
    promote_at_or_above: f64,
    demote_below: f64,
    /// Partners with fewer referrals in the window than this are not scored.
    #[serde(default)]
    min_referrals: u64,
    /// A score this many points below the previous plan's is a health drop.
    #[serde(default = "default_health_drop_points")]
    health_drop_points: f64,
}

fn default_health_drop_points() -> f64 {
    10.0
}

fn default_top_n() -> usize {
    5
}

/// Validated partner health settings.
#[derive(Debug, Clone)]
pub struct PartnerHealthRules {
    pub script: Script,
    pub top_n: usize,
    pub at_risk_below: f64,
    pub promote_at_or_above: f64,
    pub demote_below: f64,
    pub min_referrals: u64,
    /// A score at least this many points below the previous plan's is a health drop.
    pub health_drop_points: f64,
}

impl PartnerHealthRules {
    /// Loads the YAML and compiles the script it names (relative to the YAML's folder).
    pub fn load(file: &Path) -> Result<PartnerHealthRules, Diagnostics> {
        let raw: RawPartnerHealth = yaml::load(file)?;
        let mut errors = Vec::new();
        errors.extend(yaml::check_version(file, &raw.version, 1, "partner health"));
        if !(raw.demote_below <= raw.at_risk_below && raw.at_risk_below < raw.promote_at_or_above) {
            errors.push(Diagnostic::new(
                Location::file_start(file),
                format!(
                    "thresholds out of order: need demote_below ({}) <= at_risk_below ({}) < promote_at_or_above ({})",
                    raw.demote_below, raw.at_risk_below, raw.promote_at_or_above
                ),
            ));
        }
        if !(raw.health_drop_points > 0.0 && raw.health_drop_points <= 100.0) {
            errors.push(Diagnostic::new(
                Location::file_start(file),
                format!(
                    "health_drop_points must be in (0, 100], got {}",
                    raw.health_drop_points
                ),
            ));
        }
        let script = compile_file(
            &file
                .parent()
                .unwrap_or(Path::new("."))
                .join(&raw.score_script),
            &["row", "window_days"],
        )
        .map_err(|e| errors.push(e))
        .ok();
        match (script, errors.is_empty()) {
            (Some(script), true) => Ok(PartnerHealthRules {
                script,
                top_n: raw.top_n,
                at_risk_below: raw.at_risk_below,
                promote_at_or_above: raw.promote_at_or_above,
                demote_below: raw.demote_below,
                min_referrals: raw.min_referrals,
                health_drop_points: raw.health_drop_points,
            }),
            _ => Err(Diagnostics(errors)),
        }
    }
}
