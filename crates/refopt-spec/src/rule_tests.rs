//! Rule unit tests (`rules/tests/*.yaml`), in the spirit of Vector's configuration unit tests:
//! each case gives input rows for the tables a kind of rule reads, and the result it expects.
//! `refopt test` runs them against the rules folder without reading any data.
//!
//! ```yaml
//! version: 1
//! tests:
//!   - name: a scripted burst is flagged, a busy day is not
//!     fraud:
//!       tables:
//!         risk_referral_velocity:
//!           - { referral_id: r1, referrer_id: u1, referrals_within_1h: 12 }
//!       referrals:
//!         - { referral_id: r1, referrer_id: u1 }
//!       expect:
//!         flagged: { r1: [referral_velocity_burst] }
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};
use serde_saphyr::Spanned;

use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::yaml;

/// A row: column name -> value (numbers, strings, booleans, null).
pub type Row = Map<String, Value>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTestFile {
    version: Spanned<u32>,
    tests: Vec<RawCase>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCase {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    fraud: Option<FraudCase>,
    #[serde(default)]
    partner_health: Option<PartnerHealthCase>,
    #[serde(default)]
    alerts: Option<AlertsCase>,
    #[serde(default)]
    playbook: Option<PlaybookCase>,
}

/// Fraud rules over given feature tables.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FraudCase {
    /// Feature tables by name (stage ids the rules read).
    pub tables: BTreeMap<String, Vec<Row>>,
    /// Rows of the referrals table (missing columns the review needs are null).
    #[serde(default)]
    pub referrals: Vec<Row>,
    /// Rules to run (default: every rule whose table is given).
    #[serde(default)]
    pub rules: Vec<String>,
    /// Run date for suppression expiry (default: 2026-01-01).
    #[serde(default)]
    pub as_of: Option<String>,
    pub expect: FraudExpect,
}

/// Expected fraud result: every flagged referral with the rules that flagged it (exactly).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FraudExpect {
    pub flagged: BTreeMap<String, Vec<String>>,
}

/// The partner health script over given partner rows.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerHealthCase {
    pub rows: Vec<Row>,
    /// The window the rows cover (the script scales counts to 30 days); default 30.
    #[serde(default = "thirty_days")]
    pub window_days: u32,
    pub expect: PartnerHealthExpect,
}

fn thirty_days() -> u32 {
    30
}

/// Expected scores (exact or a range) and, when given, the exact at-risk set and tier changes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerHealthExpect {
    #[serde(default)]
    pub scores: BTreeMap<String, ScoreExpect>,
    #[serde(default)]
    pub at_risk: Option<Vec<String>>,
    #[serde(default)]
    pub tier_changes: Option<BTreeMap<String, String>>,
}

/// A score: an exact number (to 1e-9) or bounds.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
#[serde(untagged)]
pub enum ScoreExpect {
    Exact(f64),
    Range {
        #[serde(default)]
        min: Option<f64>,
        #[serde(default)]
        max: Option<f64>,
    },
}

impl ScoreExpect {
    /// Whether `score` satisfies the expectation.
    pub fn accepts(&self, score: f64) -> bool {
        match self {
            ScoreExpect::Exact(v) => (score - v).abs() <= 1e-9 * v.abs().max(1.0),
            ScoreExpect::Range { min, max } => {
                min.is_none_or(|m| score >= m) && max.is_none_or(|m| score <= m)
            }
        }
    }
}

/// KPI alerts over given funnel counts and KPI values.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsCase {
    #[serde(default)]
    pub funnel: Vec<FunnelInput>,
    /// KPI name -> current value.
    #[serde(default)]
    pub kpis: BTreeMap<String, f64>,
    #[serde(default)]
    pub alert_threshold: Option<f64>,
    pub expect: AlertsExpect,
}

/// Counts of one funnel row.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunnelInput {
    pub dimension: Option<String>,
    pub value: Option<String>,
    pub invites: u64,
    pub referrals: u64,
    pub signups: u64,
    pub qualified: u64,
    pub opportunities: u64,
    pub won: u64,
    pub revenue: f64,
    pub payout_cost: f64,
}

/// Alerts that must fire, exactly, as `<alert id> <value> <level>`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsExpect {
    pub alerts: Vec<String>,
}

/// The playbook over a partial plan.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybookCase {
    /// Merged over an empty plan: give only the sections the playbook should see.
    pub plan: Value,
    pub expect: PlaybookExpect,
}

/// Expected backlog, in order.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaybookExpect {
    pub backlog: Vec<ExpectedItem>,
}

/// The fields of a backlog item a test pins down.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectedItem {
    pub title: String,
    pub owner: String,
    pub priority: u32,
}

/// What a case exercises.
#[derive(Debug, Clone)]
pub enum CaseKind {
    Fraud(FraudCase),
    PartnerHealth(PartnerHealthCase),
    Alerts(AlertsCase),
    Playbook(PlaybookCase),
}

/// One test case.
#[derive(Debug, Clone)]
pub struct TestCase {
    pub name: String,
    pub description: String,
    pub kind: CaseKind,
    pub location: Location,
}

/// Every case of every `*.yaml` file in a folder (sorted by file name), or of one file.
pub fn load_tests(path: &Path) -> Result<Vec<TestCase>, Diagnostics> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| {
                Diagnostics::from(
                    Diagnostic::new(
                        Location::file_start(path),
                        format!("cannot read {}: {e}", path.display()),
                    )
                    .code(crate::diagnostic::Code::Unreadable),
                )
            })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    let mut cases = Vec::new();
    let mut errors = Vec::new();
    for file in files {
        match load_file(&file) {
            Ok(c) => cases.extend(c),
            Err(e) => errors.extend(e.0),
        }
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(Diagnostics(errors))
    }
}

fn load_file(file: &Path) -> Result<Vec<TestCase>, Diagnostics> {
    let raw: RawTestFile = yaml::load(file)?;
    let at = |l: &serde_saphyr::Location| Location::from_yaml(file, l);
    let mut errors = Vec::new();
    errors.extend(crate::yaml::check_version(
        file,
        &raw.version,
        1,
        "rule tests",
    ));
    let mut cases = Vec::new();
    for c in raw.tests {
        let location = at(&c.name.referenced);
        let kinds = [
            c.fraud.map(CaseKind::Fraud),
            c.partner_health.map(CaseKind::PartnerHealth),
            c.alerts.map(CaseKind::Alerts),
            c.playbook.map(CaseKind::Playbook),
        ];
        let mut given: Vec<CaseKind> = kinds.into_iter().flatten().collect();
        if given.len() != 1 {
            errors.push(Diagnostic::new(
                location.clone(),
                format!(
                    "test `{}` must give exactly one of fraud, partner_health, alerts, playbook",
                    c.name.value
                ),
            ));
            continue;
        }
        cases.push(TestCase {
            name: c.name.value,
            description: c.description,
            kind: given.remove(0),
            location,
        });
    }
    if errors.is_empty() {
        Ok(cases)
    } else {
        Err(Diagnostics(errors))
    }
}
