//! Fraud rules: quality against the generator's truth, edits without rebuilds, and scripts that
//! misbehave inside the sandbox.

use std::path::Path;

use crate::harness::*;

/// Copies `rules/` into `dir`, applying `edit` to fraud.yaml.
fn rules_copy(dir: &Path, edit: impl Fn(String) -> String) -> String {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(repo().join("rules")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    let file = dir.join("fraud.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let edited = edit(text.clone());
    assert_ne!(edited, text, "the edit must change the rules");
    std::fs::write(&file, edited).unwrap();
    dir.to_str().unwrap().to_string()
}

#[test]
fn default_fraud_rules_reach_precision_and_recall_of_0_9() {
    // A data set the rules were not written against (its own seed), 30-day window.
    let data = tempfile::tempdir().unwrap();
    let root = data.path().to_str().unwrap();
    let o = run(refopt().args([
        "generate", "--root", root, "--days", "75", "--scale", "0.15", "--seed", "2718", "--end",
        AS_OF,
    ]));
    assert!(o.status.success(), "{}", text(&o));
    let o = run(refopt().args([
        "evaluate-rules",
        "--root",
        root,
        "--as-of",
        AS_OF,
        "--output",
        "json",
    ]));
    assert!(o.status.success(), "{}", text(&o));
    let q: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let precision = q["precision"].as_f64().unwrap();
    let recall = q["recall"].as_f64().unwrap();
    assert!(
        precision >= 0.9 && recall >= 0.9,
        "overall precision {precision}, recall {recall}: {q:#}"
    );
    let patterns = q["by_pattern"].as_object().unwrap();
    assert!(
        patterns.len() >= 5,
        "most planted patterns present in the window: {q:#}"
    );
    for (pattern, r) in patterns {
        let recall = r["recall"].as_f64().unwrap();
        assert!(recall >= 0.9, "recall of {pattern} is {recall}: {q:#}");
    }
    for (rule, r) in q["by_rule"].as_object().unwrap() {
        let precision = r["precision"].as_f64().unwrap();
        assert!(
            precision >= 0.9,
            "precision of rule {rule} is {precision}: {q:#}"
        );
    }
}

fn run_with_rules(rules: &str) -> serde_json::Value {
    let plans = tempfile::tempdir().unwrap();
    let (plan, _) = run_pipeline(
        shared_data().to_str().unwrap(),
        plans.path().to_str().unwrap(),
        &["--rules", rules],
        &[],
    );
    plan
}

fn flagged_by(plan: &serde_json::Value, rule: &str) -> u64 {
    plan["risk"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == rule)
        .unwrap_or_else(|| panic!("rule {rule} missing from the plan"))["referrals_flagged"]
        .as_u64()
        .unwrap()
}

#[test]
fn editing_a_threshold_changes_the_next_plan_without_a_rebuild() {
    let base = run_with_rules(repo().join("rules").to_str().unwrap());
    assert!(flagged_by(&base, "device_shared_across_referrers") > 0);
    assert!(
        base["risk"]["flagged_referrals_url"]
            .as_str()
            .unwrap()
            .ends_with(".parquet")
    );
    assert!(!base["findings"].as_array().unwrap().is_empty());

    let dir = tempfile::tempdir().unwrap();
    let rules = rules_copy(dir.path(), |y| {
        y.replacen(
            "- { column: referrers, op: \">=\", value: 3 }",
            "- { column: referrers, op: \">=\", value: 1000 }",
            1,
        )
    });
    let edited = run_with_rules(&rules);
    assert_eq!(flagged_by(&edited, "device_shared_across_referrers"), 0);
    assert_eq!(
        flagged_by(&edited, "self_referral_same_device_and_card"),
        flagged_by(&base, "self_referral_same_device_and_card"),
        "other rules are unaffected"
    );
}

#[test]
fn misbehaving_scripts_are_recorded_and_other_rules_still_run() {
    let dir = tempfile::tempdir().unwrap();
    let bad_rules = r#"
  - id: loops_forever
    description: an infinite loop
    severity: low
    pattern: test
    table: risk_partners
    key: partner_id
    expression: |
      { let x = 0; loop { x += 1; } true }
  - id: allocates_too_much
    description: a huge allocation
    severity: low
    pattern: test
    table: risk_partners
    key: partner_id
    expression: |
      { let s = "x"; for i in 0..100 { s += s; } s.len() > 0 }
  - id: type_error
    description: subtracts a number from a string
    severity: low
    pattern: test
    table: risk_partners
    key: partner_id
    expression: row.partner_id - 3 > 0
"#;
    // Appended to the rules list (before the payout concentration block that ends the file).
    let rules = rules_copy(dir.path(), |y| {
        y.replace(
            "\n# Payout concentration",
            &format!("{bad_rules}\n# Payout concentration"),
        )
    });
    let plan = run_with_rules(&rules);
    for id in ["loops_forever", "allocates_too_much", "type_error"] {
        let rule = plan["risk"]["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule_id"] == id)
            .unwrap();
        let error = rule["error"]
            .as_str()
            .unwrap_or_else(|| panic!("{id} must record an error: {rule}"));
        assert!(
            error.contains(&format!("rule `{id}`")) && error.contains("fraud.yaml:"),
            "{error}"
        );
        let events = plan["error_handling"]["events"].as_array().unwrap();
        assert!(
            events
                .iter()
                .any(|e| e["task_id"] == format!("fraud_rules/{id}")),
            "{events:?}"
        );
    }
    assert!(
        flagged_by(&plan, "device_shared_across_referrers") > 0,
        "the good rules still ran"
    );
}

#[test]
fn rhai_syntax_error_is_a_located_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_copy(dir.path(), |y| {
        y.replace(
            "row.won >= params.min_wins &&",
            "row.won >= params.min_wins &&&",
        )
    });
    let plans = tempfile::tempdir().unwrap();
    let o = run(refopt().args([
        "run",
        "optimize-referrals",
        "--root",
        shared_data().to_str().unwrap(),
        "--plans",
        plans.path().to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--rules",
        &rules,
    ]));
    let stderr = expect_exit(&o, 3);
    assert!(
        stderr.contains("fraud.yaml:")
            && stderr.contains("rule `partner_payouts_out_of_proportion`"),
        "{stderr}"
    );
    assert!(plan_files(plans.path()).is_empty());
}

#[test]
fn a_second_consecutive_breach_escalates_the_first_only_alerts() {
    let plans = tempfile::tempdir().unwrap();
    let store = plans.path().to_str().unwrap();
    let root = shared_data().to_str().unwrap();
    // --alert-threshold replaces the warn level of referral_to_won_low: 99% is always breached.
    // The same data stands in for consecutive days: --force writes a plan each time.
    let breach = ["--alert-threshold", "0.99", "--force"];
    let (first, _) = run_pipeline(root, store, &breach, &[]);
    let alert = first["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["id"] == "referral_to_won_low")
        .expect("alert fires");
    assert_eq!(alert["level"], "warn");
    assert_eq!(alert["threshold"], 0.99);
    assert!(
        first["escalations"].as_array().unwrap().is_empty(),
        "first breach only alerts"
    );

    let (second, _) = run_pipeline(root, store, &breach, &[]);
    let escalations = second["escalations"].as_array().unwrap();
    let e = escalations
        .iter()
        .find(|e| e["trigger"] == "alert:referral_to_won_low:all")
        .expect("second breach escalates");
    assert_eq!(e["level"], 1);
    assert_eq!(e["role"], "Referral Architect");
    assert_eq!(e["owner"], "referral-architect");
    assert_eq!(e["fallback_owner"], "lifecycle-ops");
    assert_eq!(
        e["run_ids"],
        serde_json::json!([first["run_id"], second["run_id"]])
    );

    let (third, _) = run_pipeline(root, store, &breach, &[]);
    let e = third["escalations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["trigger"] == "alert:referral_to_won_low:all")
        .unwrap();
    assert_eq!(e["level"], 2, "still breached: next rung");
    assert_eq!(e["role"], "Partner Ops");

    // Without the override the alert clears, and so does the escalation.
    let (calm, _) = run_pipeline(root, store, &["--force"], &[]);
    assert!(
        calm["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != "referral_to_won_low")
    );
    assert!(
        calm["escalations"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["trigger"] != "alert:referral_to_won_low:all")
    );
}

#[test]
fn small_samples_do_not_fire_alerts() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_copy(dir.path(), |y| y.clone() + "\n");
    let alerts = std::fs::read_to_string(repo().join("rules/alerts.yaml")).unwrap();
    std::fs::write(
        dir.path().join("alerts.yaml"),
        alerts.replace("min_sample: 500", "min_sample: 100000000"),
    )
    .unwrap();
    let plan = run_with_rules_and(&rules, &["--alert-threshold", "0.99"]);
    assert!(
        plan["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|a| a["id"] != "referral_to_won_low")
    );
    let gated = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["id"] == "alert_gated/referral_to_won_low/all");
    assert!(
        gated.is_some(),
        "the gated alert is reported as a finding: {:#}",
        plan["findings"]
    );
}

fn run_with_rules_and(rules: &str, extra: &[&str]) -> serde_json::Value {
    let plans = tempfile::tempdir().unwrap();
    let mut args = vec!["--rules", rules];
    args.extend_from_slice(extra);
    run_pipeline(
        shared_data().to_str().unwrap(),
        plans.path().to_str().unwrap(),
        &args,
        &[],
    )
    .0
}
