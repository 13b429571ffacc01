//! Reading plan JSON with the `schema_version` rules (docs/plan-format.md):
//!
//! - another major version is refused with a message naming both versions;
//! - a newer minor version of our major is read: fields this build does not know are dropped
//!   from the value and reported ([`ReadPlan::unknown_fields`]), never silently;
//! - the same or an older minor version must have no unknown field (a hand-edited or corrupt
//!   plan is an error, not a half-read plan).

use serde::Deserialize;

use crate::plan::{Plan, SCHEMA_VERSION};

/// A plan and the fields of a newer minor version that this build does not know.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadPlan {
    pub plan: Plan,
    /// Paths of the fields that were dropped (`risk.new_section`, ...).
    pub unknown_fields: Vec<String>,
    /// The plan predates exact money (schema 1.2): its amounts were floating-point numbers,
    /// read rounded to the cent.
    pub float_money: bool,
}

/// The first schema version with money as exact decimal strings.
const EXACT_MONEY: (u64, u64) = (1, 2);

/// Why a plan could not be read.
#[derive(Debug, thiserror::Error)]
pub enum PlanReadError {
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "schema_version {found} is not readable by this build (it reads {SCHEMA_VERSION} and older 1.x plans); use a refopt release that writes {found}"
    )]
    OtherMajor { found: String },
    #[error("unknown field(s) {} in a schema_version {version} plan", fields.join(", "))]
    UnknownFields {
        version: String,
        fields: Vec<String>,
    },
}

#[derive(Deserialize)]
struct VersionOnly {
    schema_version: String,
}

/// `major.minor` of a schema version (a missing minor is 0).
fn major_minor(version: &str) -> Option<(u64, u64)> {
    let (major, minor) = version.split_once('.').unwrap_or((version, "0"));
    Some((major.parse().ok()?, minor.parse().ok()?))
}

/// Checks that `bytes` (a plan this build serialized) reads back as a plan; the error names
/// the field that does not, e.g. `risk.payout_hold.amount: invalid type: null, expected f64`
/// (a NaN or infinite number is written as null).
pub fn check_reads_back(bytes: &[u8]) -> Result<(), String> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize::<_, Plan>(&mut deserializer)
        .map(drop)
        .map_err(|e| format!("{}: {}", e.path(), e.inner()))
}

/// Parses plan JSON under the `schema_version` rules.
pub fn parse_plan(bytes: &[u8]) -> Result<ReadPlan, PlanReadError> {
    let found = serde_json::from_slice::<VersionOnly>(bytes)?.schema_version;
    let ours = major_minor(SCHEMA_VERSION).expect("SCHEMA_VERSION is major.minor");
    let Some(theirs) = major_minor(&found).filter(|v| v.0 == ours.0) else {
        return Err(PlanReadError::OtherMajor { found });
    };
    let mut unknown_fields = Vec::new();
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let plan: Plan = serde_ignored::deserialize(&mut deserializer, |path| {
        unknown_fields.push(path.to_string())
    })?;
    deserializer.end()?;
    if !unknown_fields.is_empty() && theirs.1 <= ours.1 {
        return Err(PlanReadError::UnknownFields {
            version: found,
            fields: unknown_fields,
        });
    }
    Ok(ReadPlan {
        plan,
        unknown_fields,
        float_money: theirs < EXACT_MONEY,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan_json(version: &str, extra: Option<(&str, serde_json::Value)>) -> Vec<u8> {
        let mut value = serde_json::to_value(Plan {
            schema_version: version.to_string(),
            ..Plan::default()
        })
        .unwrap();
        if let Some((key, v)) = extra {
            value["risk"][key] = v;
        }
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn current_version_reads_without_unknown_fields() {
        let read = parse_plan(&plan_json(SCHEMA_VERSION, None)).unwrap();
        assert!(read.unknown_fields.is_empty());
        assert_eq!(read.plan.schema_version, SCHEMA_VERSION);
    }

    #[test]
    fn newer_minor_version_reports_its_unknown_fields() {
        let read = parse_plan(&plan_json("1.9", Some(("tiers", serde_json::json!([1]))))).unwrap();
        assert_eq!(read.unknown_fields, vec!["risk.tiers".to_string()]);
    }

    #[test]
    fn unknown_fields_in_a_known_version_are_an_error() {
        let err = parse_plan(&plan_json(SCHEMA_VERSION, Some(("tiers", 1.into())))).unwrap_err();
        assert!(err.to_string().contains("risk.tiers"), "{err}");
    }

    #[test]
    fn a_plan_with_float_money_reads_rounded_to_the_cent_and_says_so() {
        let mut value =
            serde_json::from_slice::<serde_json::Value>(&plan_json("1.1", None)).unwrap();
        value["risk"]["payouts_at_risk"] =
            serde_json::json!({"unpaid": 4788033.729999999, "paid": 0.1});
        let read = parse_plan(&serde_json::to_vec(&value).unwrap()).unwrap();
        assert!(read.float_money);
        assert_eq!(
            read.plan.risk.payouts_at_risk.unpaid.to_string(),
            "4788033.73"
        );
        assert_eq!(read.plan.risk.payouts_at_risk.paid.to_string(), "0.10");
        assert!(
            !parse_plan(&plan_json(SCHEMA_VERSION, None))
                .unwrap()
                .float_money
        );
    }

    #[test]
    fn another_major_version_is_refused_by_name() {
        let err = parse_plan(&plan_json("2.0", None)).unwrap_err();
        assert!(matches!(err, PlanReadError::OtherMajor { .. }));
        assert!(err.to_string().contains("2.0"), "{err}");
    }
}
