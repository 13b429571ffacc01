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
fn default_fraud_rules_catch_evasive_fraud_and_spare_look_alikes() {
    // A data set the rules were not written against (its own seed), 30-day window, with the
    // evasive patterns (rotating rings, slow farms, narrow bursts, fresh throw-away domains)
    // and the honest look-alikes (influencer bursts, company cards, households, offices,
    // campuses) planted.
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
    for evasive in [
        "rotating_ring",
        "slow_farm",
        "velocity_burst",
        "disposable_email",
    ] {
        assert!(
            patterns.contains_key(evasive),
            "{evasive} planted in the window: {q:#}"
        );
    }
    for (pattern, r) in patterns {
        let recall = r["recall"].as_f64().unwrap();
        assert!(recall >= 0.8, "recall of {pattern} is {recall}: {q:#}");
    }
    for (rule, r) in q["by_rule"].as_object().unwrap() {
        let precision = r["precision"].as_f64().unwrap();
        assert!(
            precision >= 0.9,
            "precision of rule {rule} is {precision}: {q:#}"
        );
    }
    let lookalikes = q["by_lookalike"].as_object().unwrap();
    for kind in [
        "influencer_burst",
        "company_card",
        "household_device",
        "office_network",
        "campus_network",
    ] {
        let l = &lookalikes[kind];
        assert!(
            l["referrals"].as_u64().unwrap() > 0,
            "{kind} planted: {q:#}"
        );
        let share = l["flagged_share"].as_f64().unwrap();
        assert!(share <= 0.05, "{kind} flagged at {share}: {q:#}");
    }
}

#[test]
fn a_malformed_list_file_is_a_located_config_error() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&repo().join("rules"), dir.path());
    let rules = dir.path().to_str().unwrap();
    let list = dir.path().join("disposable_email_domains.local.txt");
    std::fs::write(
        &list,
        "# local additions\nspamgourmet.com\nTempMail.COM\nspamgourmet.com\n",
    )
    .unwrap();
    // `validate` reports every problem (exit 1); a run refuses to start (exit 3, no plan).
    let o = run(refopt().args(["validate", "--rules", rules]));
    let stderr = expect_exit(&o, 1);
    assert!(
        stderr.contains("disposable_email_domains.local.txt:3")
            && stderr.contains("`TempMail.COM` is not a lower-case domain name"),
        "{stderr}"
    );
    assert!(
        stderr.contains("disposable_email_domains.local.txt:4")
            && stderr.contains("listed twice (first on line 2)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("rule `disposable_email_domain`"),
        "{stderr}"
    );
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
        rules,
    ]));
    let stderr = expect_exit(&o, 3);
    assert!(
        stderr.contains("disposable_email_domains.local.txt:3"),
        "{stderr}"
    );
    assert!(plan_files(plans.path()).is_empty());
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
    assert!(flagged_by(&base, "self_referral_same_device_and_card") > 0);
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
            "- { column: referrals, op: \">=\", value: 2 }",
            "- { column: referrals, op: \">=\", value: 1000 }",
            1,
        )
    });
    let edited = run_with_rules(&rules);
    assert_eq!(flagged_by(&edited, "self_referral_same_device_and_card"), 0);
    for other in ["ring_component", "referral_velocity_burst"] {
        assert_eq!(
            flagged_by(&edited, other),
            flagged_by(&base, other),
            "other rules are unaffected: {other}"
        );
    }
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
        flagged_by(&plan, "self_referral_same_device_and_card") > 0,
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
fn a_rule_past_its_time_limit_is_retried_twice_then_skipped() {
    let dir = tempfile::tempdir().unwrap();
    // ~150,000 operations per row (under the operation limit) against a 1 ms budget: every
    // attempt runs out of time, as a rule would on an overloaded machine.
    let slow_rule = r#"
  - id: slow_scan
    description: a rule too slow for its time budget
    severity: low
    pattern: test
    table: risk_partners
    key: partner_id
    time_limit_ms: 1
    expression: |
      { let s = 0; for i in 0..50000 { s += i; } s < 0 }
  - id: type_error
    description: a script error fails the same way every time
    severity: low
    pattern: test
    table: risk_partners
    key: partner_id
    expression: row.partner_id - 3 > 0
"#;
    let rules = rules_copy(dir.path(), |y| {
        y.replace(
            "\n# Payout concentration",
            &format!("{slow_rule}\n# Payout concentration"),
        )
    });
    let plan = run_with_rules(&rules);
    let events: Vec<&serde_json::Value> = plan["error_handling"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["task_id"] == "fraud_rules/slow_scan")
        .collect();
    let steps: Vec<(u64, &str)> = events
        .iter()
        .map(|e| {
            (
                e["attempt"].as_u64().unwrap(),
                e["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [(1, "retried"), (2, "retried"), (3, "rule_skipped")],
        "retry limit 2: {events:#?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["error"].as_str().unwrap().contains("time limit of 1 ms")),
        "{events:#?}"
    );
    // Not transient: one attempt, skipped at once.
    let type_error: Vec<(u64, &str)> = plan["error_handling"]["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["task_id"] == "fraud_rules/type_error")
        .map(|e| {
            (
                e["attempt"].as_u64().unwrap(),
                e["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(type_error, [(1, "rule_skipped")]);
    assert!(
        flagged_by(&plan, "self_referral_same_device_and_card") > 0,
        "the other rules still ran"
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

#[test]
fn signals_stop_a_slow_rule_within_two_seconds_and_write_nothing() {
    // ~150,000 operations per row (legal: under the operation limit) on every referral, with a
    // budget of ten minutes: without cancellation the run would go on for minutes.
    let slow_rule = r#"
  - id: slow_but_legal
    description: a rule that takes far longer than a Job's grace period
    severity: low
    pattern: test
    table: risk_referrals
    key: referral_id
    time_limit_ms: 600000
    expression: |
      { let s = 0; for i in 0..50000 { s += i; } s < 0 }
"#;
    for (signal, code, name) in [("TERM", 143, "SIGTERM"), ("INT", 130, "SIGINT")] {
        let dir = tempfile::tempdir().unwrap();
        let plans = tempfile::tempdir().unwrap();
        let rules = rules_copy(&dir.path().join("rules"), |y| {
            y.replace(
                "\n# Payout concentration",
                &format!("{slow_rule}\n# Payout concentration"),
            )
        });
        let mut child = refopt()
            .args([
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
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(
                std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0,
                "the run ended before its rules phase"
            );
            if line.starts_with("rules: started") {
                break;
            }
        }
        // Well inside the slow rule (each row takes milliseconds, there are thousands).
        std::thread::sleep(std::time::Duration::from_millis(700));
        let sent = std::time::Instant::now();
        let o =
            run(std::process::Command::new("kill")
                .args([format!("-{signal}"), child.id().to_string()]));
        assert!(o.status.success());
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
        let status = child.wait().unwrap();
        let took = sent.elapsed();
        assert_eq!(status.code(), Some(code), "{name}: {rest}");
        assert!(
            took < std::time::Duration::from_secs(2),
            "{name}: exited {took:?} after the signal\n{rest}"
        );
        assert!(
            rest.contains(&format!("interrupted by {name}: stopped, no plan written")),
            "{rest}"
        );
        assert!(
            plan_files(plans.path()).is_empty(),
            "{name}: a plan was written"
        );
    }
}
