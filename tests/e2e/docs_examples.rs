//! The examples in the docs are real files: every fenced block marked
//! `<!-- example: PATH -->` must appear verbatim in PATH, and the example rules folder loads and
//! runs.

use crate::harness::*;

/// `(path, block)` for every marked example in a Markdown file.
fn marked_examples(markdown: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut lines = markdown.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .trim()
            .strip_prefix("<!-- example:")
            .and_then(|rest| rest.strip_suffix("-->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "example marker for {path} must be followed by a fenced block"
        );
        let block: Vec<&str> = lines
            .by_ref()
            .take_while(|l| !l.starts_with("```"))
            .collect();
        out.push((path.trim().to_string(), block.join("\n")));
    }
    out
}

#[test]
fn documented_examples_are_the_real_files() {
    let doc = std::fs::read_to_string(repo().join("docs/rule-authoring.md")).unwrap();
    let examples = marked_examples(&doc);
    assert!(examples.len() >= 8, "found {} examples", examples.len());
    for (path, block) in examples {
        let file = std::fs::read_to_string(repo().join(&path))
            .unwrap_or_else(|e| panic!("example file {path}: {e}"));
        assert!(
            file.contains(&block),
            "docs/rule-authoring.md shows a block that is not in {path}:\n{block}"
        );
    }
}

#[test]
fn example_rules_folder_loads_and_runs() {
    let plans = tempfile::tempdir().unwrap();
    let (plan, _) = run_pipeline(
        shared_data().to_str().unwrap(),
        plans.path().to_str().unwrap(),
        &["--rules", "docs/examples/rules", "--detail", "full"],
        &[],
    );
    assert_valid_plan(&plan);
    let rules = plan["risk"]["rules"].as_array().unwrap();
    for id in ["ip_shared_by_many_referrers", "won_suspiciously_fast"] {
        let rule = rules
            .iter()
            .find(|r| r["rule_id"] == id)
            .unwrap_or_else(|| panic!("{id} ran: {rules:#?}"));
        assert!(rule["error"].is_null(), "{rule:#}");
    }
    let suppression = &plan["risk"]["suppressions"][0];
    assert_eq!(suppression["id"], "hq-office-wifi");
    assert_eq!(suppression["status"], "active", "{suppression:#}");
    assert!(
        plan["risk"]["sensitivity"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["rule_id"] == "won_suspiciously_fast"),
        "params are swept"
    );
}

#[test]
fn every_diagnostic_code_is_documented_with_its_level() {
    let cli = std::fs::read_to_string(repo().join("docs/cli.md")).unwrap();
    let rows: Vec<&str> = cli.lines().filter(|l| l.starts_with("| RF")).collect();
    assert_eq!(rows.len(), refopt_spec::Code::ALL.len(), "{rows:#?}");
    for code in refopt_spec::Code::ALL {
        let row = format!("| {} | {} |", code.as_str(), code.level());
        assert!(
            rows.iter().any(|r| r.starts_with(&row)),
            "docs/cli.md lacks `{row} ...`"
        );
    }
}
