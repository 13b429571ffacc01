//! The targets of the seed's success metrics (`rules/targets.yaml`): what "met" means for
//! conversion lift, fraud reduction and partner NPS, editable without a rebuild.

use std::path::Path;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::yaml;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTargets {
    version: Spanned<u32>,
    conversion_lift: Spanned<f64>,
    fraud_reduction: Spanned<f64>,
    partner_nps: Spanned<f64>,
}

/// Success-metric targets; [`SuccessTargets::default`] holds the seed's values, used when the
/// rules folder has no targets.yaml.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SuccessTargets {
    /// Relative change of referral -> won conversion vs the previous window.
    pub conversion_lift: f64,
    /// Relative fall of the fraud flag rate vs the previous window.
    pub fraud_reduction: f64,
    /// Partner NPS in the window (-100..100).
    pub partner_nps: f64,
}

impl Default for SuccessTargets {
    fn default() -> Self {
        Self {
            conversion_lift: 0.05,
            fraud_reduction: 0.10,
            partner_nps: 40.0,
        }
    }
}

impl SuccessTargets {
    /// Loads and checks `file`: relative changes within -1..10, NPS within -100..100.
    pub fn load(file: &Path) -> Result<SuccessTargets, Diagnostics> {
        let raw: RawTargets = yaml::load(file)?;
        let mut errors = Vec::new();
        errors.extend(yaml::check_version(file, &raw.version, 1, "targets"));
        let mut check = |value: &Spanned<f64>, name: &str, range: std::ops::RangeInclusive<f64>| {
            if !range.contains(&value.value) {
                errors.push(Diagnostic::new(
                    Location::from_yaml(file, &value.referenced),
                    format!(
                        "{name}: {} is outside {}..{}",
                        value.value,
                        range.start(),
                        range.end()
                    ),
                ));
            }
        };
        check(&raw.conversion_lift, "conversion_lift", -1.0..=10.0);
        check(&raw.fraud_reduction, "fraud_reduction", -1.0..=1.0);
        check(&raw.partner_nps, "partner_nps", -100.0..=100.0);
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        Ok(SuccessTargets {
            conversion_lift: raw.conversion_lift.value,
            fraud_reduction: raw.fraud_reduction.value,
            partner_nps: raw.partner_nps.value,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_targets_are_the_seed_defaults_and_bad_values_are_located() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules/targets.yaml");
        assert_eq!(
            SuccessTargets::load(&file).unwrap(),
            SuccessTargets::default()
        );
        let dir = std::env::temp_dir().join(format!("refopt-targets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let bad = dir.join("targets.yaml");
        std::fs::write(
            &bad,
            "version: 1\nconversion_lift: 0.05\nfraud_reduction: 0.1\npartner_nps: 140\n",
        )
        .unwrap();
        let e = SuccessTargets::load(&bad).unwrap_err().to_string();
        assert!(
            e.contains("targets.yaml:4:") && e.contains("partner_nps: 140"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
