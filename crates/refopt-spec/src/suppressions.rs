//! Suppressions (`rules/suppressions.yaml`): known-legitimate look-alikes that fraud rules must
//! not flag — an office or campus behind one IP, a family's shared tablet, a reseller's card.
//!
//! Every suppression names the referrals column it matches, the values, the rules it silences
//! (all when empty), a reason, an owner and an expiry date. A suppression past its expiry stops
//! applying and the plan reports it as expired, so an allowlist cannot silently outlive its
//! reason.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::yaml;

/// The suppressions file format version.
pub const SUPPRESSIONS_VERSION: u32 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuppressions {
    version: Spanned<u32>,
    #[serde(default)]
    suppressions: Vec<RawSuppression>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuppression {
    id: Spanned<String>,
    column: String,
    values: Vec<String>,
    #[serde(default)]
    rules: Vec<String>,
    reason: String,
    owner: String,
    expires: Spanned<String>,
}

/// One allowlist entry.
#[derive(Debug, Clone, PartialEq)]
pub struct Suppression {
    pub id: String,
    /// Column of the referrals table whose value is matched (e.g. `ip`, `device_id`).
    pub column: String,
    pub values: Vec<String>,
    /// Fraud rule ids silenced; empty means every rule.
    pub rules: Vec<String>,
    pub reason: String,
    pub owner: String,
    /// Last day (inclusive) on which the suppression applies.
    pub expires: NaiveDate,
    pub location: Location,
}

impl Suppression {
    /// Whether the suppression still applies on `day`.
    pub fn is_active_on(&self, day: NaiveDate) -> bool {
        day <= self.expires
    }

    /// Whether the suppression silences `rule_id`.
    pub fn covers_rule(&self, rule_id: &str) -> bool {
        self.rules.is_empty() || self.rules.iter().any(|r| r == rule_id)
    }
}

/// The suppressions file.
#[derive(Debug, Clone, PartialEq)]
pub struct Suppressions {
    pub file: PathBuf,
    pub entries: Vec<Suppression>,
}

impl Suppressions {
    /// Loads and checks `file`: unique ids, a reason and owner, at least one value, a valid
    /// `expires` date (YYYY-MM-DD).
    pub fn load(file: &Path) -> Result<Suppressions, Diagnostics> {
        let raw: RawSuppressions = yaml::load(file)?;
        let at = |l: &serde_saphyr::Location| Location::from_yaml(file, l);
        let mut errors = Vec::new();
        errors.extend(yaml::check_version(
            file,
            &raw.version,
            SUPPRESSIONS_VERSION,
            "suppressions",
        ));
        let mut ids = BTreeSet::new();
        let mut entries = Vec::new();
        for s in raw.suppressions {
            let location = at(&s.id.referenced);
            let id = s.id.value;
            if !ids.insert(id.clone()) {
                errors.push(
                    Diagnostic::new(
                        location.clone(),
                        format!("suppression `{id}` is declared twice"),
                    )
                    .code(crate::diagnostic::Code::Duplicate),
                );
            }
            if s.reason.trim().is_empty() {
                errors.push(Diagnostic::new(
                    location.clone(),
                    format!("suppression `{id}` needs a `reason`"),
                ));
            }
            if s.values.is_empty() {
                errors.push(Diagnostic::new(
                    location.clone(),
                    format!("suppression `{id}` needs at least one value in `values`"),
                ));
            }
            let expires = match NaiveDate::parse_from_str(&s.expires.value, "%Y-%m-%d") {
                Ok(d) => d,
                Err(_) => {
                    errors.push(Diagnostic::new(
                        at(&s.expires.referenced),
                        format!(
                            "suppression `{id}`: expires `{}` is not a date (YYYY-MM-DD)",
                            s.expires.value
                        ),
                    ));
                    NaiveDate::MIN
                }
            };
            entries.push(Suppression {
                id,
                column: s.column,
                values: s.values,
                rules: s.rules,
                reason: s.reason.trim().to_string(),
                owner: s.owner,
                expires,
                location,
            });
        }
        if errors.is_empty() {
            Ok(Suppressions {
                file: file.to_path_buf(),
                entries,
            })
        } else {
            Err(Diagnostics(errors))
        }
    }

    /// Checks that every rule a suppression names exists, with a hint for typos.
    pub fn check_rules<'a>(
        &self,
        rule_ids: impl Iterator<Item = &'a str> + Clone,
    ) -> Vec<Diagnostic> {
        let mut errors = Vec::new();
        for s in &self.entries {
            for r in &s.rules {
                if !rule_ids.clone().any(|id| id == r) {
                    let hint = crate::pipeline::closest(r, rule_ids.clone())
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default();
                    errors.push(
                        Diagnostic::new(
                            s.location.clone(),
                            format!(
                                "suppression `{}` names unknown fraud rule `{r}`{hint}",
                                s.id
                            ),
                        )
                        .code(crate::diagnostic::Code::UnknownReference),
                    );
                }
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str) -> Result<Suppressions, Diagnostics> {
        let dir = std::env::temp_dir().join(format!("refopt-supp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(format!("s{}.yaml", text.len()));
        std::fs::write(&file, text).unwrap();
        Suppressions::load(&file)
    }

    #[test]
    fn loads_and_applies_by_date() {
        let s = load_str(
            "version: 1\nsuppressions:\n  - id: office\n    column: ip\n    values: [10.0.0.1]\n    reason: HQ wifi\n    owner: fraud-detection\n    expires: 2026-12-31\n",
        )
        .unwrap();
        let e = &s.entries[0];
        assert!(e.is_active_on(NaiveDate::from_ymd_opt(2026, 12, 31).unwrap()));
        assert!(!e.is_active_on(NaiveDate::from_ymd_opt(2027, 1, 1).unwrap()));
        assert!(e.covers_rule("anything"));
    }

    #[test]
    fn bad_date_and_missing_reason_are_located() {
        let err = load_str(
            "version: 1\nsuppressions:\n  - id: office\n    column: ip\n    values: []\n    reason: ''\n    owner: x\n    expires: next year\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains(":8:"), "{err}");
        assert!(err.contains("not a date"), "{err}");
        assert!(err.contains("needs a `reason`"), "{err}");
        assert!(err.contains("at least one value"), "{err}");
    }
}
