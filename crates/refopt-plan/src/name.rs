//! Names of stored plans and of the files beside them: `plan-v000007.json`, `.html`, `.md`,
//! and the `audit/plan-v000007/` folder. The one place the pattern is written.

/// The stem every file of plan version `version` shares: `plan-v000007`.
pub fn plan_stem(version: u64) -> String {
    format!("plan-v{version:06}")
}

/// The file name of a stored plan (`json`) or of a file beside it (`html`, `md`).
pub fn plan_file_name(version: u64, extension: &str) -> String {
    format!("{}.{extension}", plan_stem(version))
}

/// The version of a stored plan's file name (`plan-v000007.json` -> 7); `None` for any other
/// name.
/// The highest plan version refopt writes or reads; a store never gets near it, so a larger
/// number in a name is a file refopt did not write.
pub const MAX_PLAN_VERSION: u64 = 999_999_999;

/// name. Only names refopt writes count: at least six digits, no sign, no extra leading zeros,
/// a version from 1 to [`MAX_PLAN_VERSION`].
pub fn plan_version(file_name: &str) -> Option<u64> {
    let digits = file_name.strip_prefix("plan-v")?.strip_suffix(".json")?;
    if !digits.bytes().all(|b| b.is_ascii_digit()) || digits.len() > 9 {
        return None;
    }
    let version: u64 = digits.parse().ok()?;
    (1..=MAX_PLAN_VERSION)
        .contains(&version)
        .then_some(version)
        .filter(|v| plan_file_name(*v, "json") == file_name)
}

/// Whether `file_name` looks like a stored plan (`plan-v*.json`), valid or not.
pub fn looks_like_plan(file_name: &str) -> bool {
    file_name.starts_with("plan-v") && file_name.ends_with(".json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_have_six_digit_versions_and_parse_back() {
        assert_eq!(plan_file_name(7, "json"), "plan-v000007.json");
        assert_eq!(plan_file_name(7, "html"), "plan-v000007.html");
        assert_eq!(plan_version(&plan_file_name(7, "json")), Some(7));
        assert_eq!(
            plan_version(&plan_file_name(1_234_567, "json")),
            Some(1_234_567)
        );
        assert_eq!(plan_version("plan-v000007.html"), None);
        assert_eq!(plan_version("flagged-v000007.json"), None);
    }

    #[test]
    fn names_refopt_does_not_write_are_not_versions() {
        for name in [
            "plan-v18446744073709551615.json",
            "plan-v1000000000.json",
            "plan-v000000.json",
            "plan-v+00007.json",
            "plan-v7.json",
            "plan-v0000007.json",
            "plan-v00000a.json",
        ] {
            assert_eq!(plan_version(name), None, "{name}");
            assert!(looks_like_plan(name));
        }
        assert_eq!(
            plan_version(&plan_file_name(MAX_PLAN_VERSION, "json")),
            Some(MAX_PLAN_VERSION)
        );
    }

    proptest::proptest! {
        /// Every version refopt writes parses back to itself, and no other name parses to it.
        #[test]
        fn version_names_round_trip(version in 1..=MAX_PLAN_VERSION) {
            let name = plan_file_name(version, "json");
            proptest::prop_assert_eq!(plan_version(&name), Some(version));
        }

        #[test]
        fn only_canonical_names_parse(name in "plan-v[+0-9]{0,22}\\.json") {
            if let Some(version) = plan_version(&name) {
                proptest::prop_assert_eq!(plan_file_name(version, "json"), name);
                proptest::prop_assert!((1..=MAX_PLAN_VERSION).contains(&version));
            }
        }
    }
}
