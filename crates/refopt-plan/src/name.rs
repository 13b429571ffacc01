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
pub fn plan_version(file_name: &str) -> Option<u64> {
    file_name
        .strip_prefix("plan-v")?
        .strip_suffix(".json")?
        .parse()
        .ok()
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
}
