//! Declared data tests (pipeline `tests:`) act: on data broken on purpose their counts equal an
//! independent DuckDB computation, a `warn` test is a finding, an `error` test is a critical
//! alert and `refopt plan approve` is refused (exit 1), and the report beside the plan lists
//! them. On the clean shared data every default test passes.

use std::process::Command;

use serde_json::Value;

use crate::harness::*;

/// The plan's result of test `id` of `dataset`.
fn result<'a>(plan: &'a Value, dataset: &str, id: &str) -> &'a Value {
    plan["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == dataset)
        .and_then(|d| {
            d["tests"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["id"] == id)
        })
        .unwrap_or_else(|| panic!("plan lacks test {id} of {dataset}"))
}

fn reference_script() -> String {
    repo()
        .join("tests/python/data_tests_reference.py")
        .to_str()
        .unwrap()
        .to_string()
}

fn by_id<'a>(items: &'a Value, id: &str) -> Option<&'a Value> {
    items.as_array().unwrap().iter().find(|v| v["id"] == id)
}

#[test]
fn clean_data_passes_every_default_data_test() {
    let plans = tempfile::tempdir().unwrap();
    let (plan, _) = run_pipeline(
        shared_data().to_str().unwrap(),
        plans.path().to_str().unwrap(),
        &[],
        &[],
    );
    let mut declared = 0;
    for d in plan["datasets"].as_array().unwrap() {
        for t in d["tests"].as_array().unwrap() {
            declared += 1;
            assert_eq!(t["status"], "pass", "{} {t}", d["name"]);
        }
    }
    assert!(
        declared >= 20,
        "the default pipeline declares its tests ({declared})"
    );
    let referrals = result(&plan, "referrals", "unique:referral_id");
    assert!(referrals["rows"].as_u64().unwrap() > 1000, "{referrals}");
    assert_eq!(referrals["failing_rows"], 0);
    assert!(
        !plan["findings"].to_string().contains("data_test/")
            && !plan["alerts"].to_string().contains("data_test/"),
        "clean data raises nothing"
    );
}

#[test]
fn broken_data_counts_match_duckdb_warn_is_a_finding_error_blocks_approval() {
    let data = tempfile::tempdir().unwrap();
    copy_tree(shared_data(), data.path());
    let root = data.path().to_str().unwrap();
    let o = run(Command::new(python()).args([&reference_script(), "plant", root, AS_OF]));
    assert!(o.status.success(), "planting failed\n{}", text(&o));
    let planted: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(planted["invite_days_removed"], 12, "{planted}");

    let plans = tempfile::tempdir().unwrap();
    let (plan, _) = run_pipeline(root, plans.path().to_str().unwrap(), &[], &[]);

    // Every number equals DuckDB's.
    let o = run(Command::new(python()).args([&reference_script(), "reference", root, AS_OF, "30"]));
    assert!(o.status.success(), "reference failed\n{}", text(&o));
    let expected: Value = serde_json::from_slice(&o.stdout).unwrap();
    for (dataset, tests) in expected.as_object().unwrap() {
        for (id, want) in tests.as_object().unwrap() {
            let got = result(&plan, dataset, id);
            for (field, value) in want.as_object().unwrap() {
                let path = format!("{dataset}.{id}.{field}");
                match (value.as_f64(), got[field].as_f64()) {
                    (Some(w), Some(g)) => {
                        assert!((w - g).abs() < 1e-9, "{path}: plan {g}, DuckDB {w}")
                    }
                    _ => assert_eq!(&got[field], value, "{path}"),
                }
            }
        }
    }

    // The planted problems, exactly (the shared data is clean: see the test above).
    let failing = |dataset: &str, id: &str| result(&plan, dataset, id)["failing_rows"].as_u64();
    assert_eq!(failing("referrals", "not_null:referrer_id"), Some(2));
    assert_eq!(failing("referrals", "unique:referral_id"), Some(1));
    assert_eq!(failing("referrals", "accepted_values:channel"), Some(3));
    assert_eq!(failing("referrals", "not_null:referral_id"), Some(0));
    let orphans = "relationships:referral_id->referrals.referral_id";
    assert_eq!(failing("payouts", orphans), Some(4));
    assert_eq!(failing("conversions", orphans), Some(3));
    assert_eq!(
        failing("payouts", "accepted_values:recipient_type"),
        Some(2)
    );

    // Statuses follow the declared severities and thresholds.
    let status = |dataset: &str, id: &str| result(&plan, dataset, id)["status"].clone();
    for (dataset, id) in [
        ("referrals", "not_null:referrer_id"),
        ("referrals", "unique:referral_id"),
        ("referrals", "accepted_values:channel"),
        ("payouts", orphans),
        ("conversions", orphans),
        ("invites", "freshness"),
    ] {
        assert_eq!(status(dataset, id), "error", "{dataset} {id}");
    }
    assert_eq!(status("payouts", "accepted_values:recipient_type"), "warn");
    assert_eq!(status("referrals", "not_null:referral_id"), "pass");
    let fresh = result(&plan, "invites", "freshness");
    assert!(
        fresh["observed"].as_f64().unwrap() >= 12.0 * 24.0,
        "{fresh}"
    );
    assert_eq!(fresh["threshold"], 72.0);
    // Twelve of thirty days gone: a drop of 30% to 60% of the rows is a warning.
    let drop = result(&plan, "invites", "row_count_change");
    let change = drop["observed"].as_f64().unwrap();
    assert!((-0.6..=-0.3).contains(&change), "{drop}");
    assert_eq!(drop["status"], "warn");
    assert_eq!(drop["threshold"], 0.3);

    // warn -> finding; error -> critical alert to the dataset's owner.
    let finding = by_id(
        &plan["findings"],
        "data_test/payouts/accepted_values:recipient_type",
    )
    .unwrap_or_else(|| panic!("no finding: {}", plan["findings"]));
    assert_eq!(finding["kind"], "data_test");
    assert_eq!(finding["severity"], "medium");
    assert!(
        finding["title"].as_str().unwrap().contains("2 of"),
        "{finding}"
    );
    assert!(by_id(&plan["findings"], "data_test/invites/row_count_change").is_some());
    assert!(
        by_id(
            &plan["alerts"],
            "data_test/payouts/accepted_values:recipient_type"
        )
        .is_none()
    );
    let alert = by_id(&plan["alerts"], "data_test/referrals/not_null:referrer_id")
        .unwrap_or_else(|| panic!("no alert: {}", plan["alerts"]));
    assert_eq!(alert["level"], "critical");
    assert_eq!(alert["current"], 2.0);
    assert_eq!(alert["owner"], "data-platform");
    assert_eq!(alert["value"], "referrals");
    let stale = by_id(&plan["alerts"], "data_test/invites/freshness").unwrap();
    assert_eq!(stale["direction"], "above");
    assert_eq!(
        plan["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["id"].as_str().unwrap().starts_with("data_test/"))
            .count(),
        6,
        "one alert per error test"
    );

    // The report beside the plan lists them.
    let plan_file = plan_files(plans.path()).pop().unwrap();
    let html = std::fs::read_to_string(plan_file.with_extension("html")).unwrap();
    assert!(
        html.contains("id=\"data-tests\""),
        "HTML has a data tests section"
    );
    assert!(
        html.contains("passed, 2 warned, 6 failed"),
        "counts in the HTML"
    );
    assert!(html.contains("<code>relationships:referral_id-&gt;referrals.referral_id</code>"));
    assert!(html.contains("approval is blocked"));
    let md = std::fs::read_to_string(plan_file.with_extension("md")).unwrap();
    assert!(
        md.contains("2 warned · 6 failed (approval blocked)"),
        "{md}"
    );
    assert!(
        md.contains("- error: referrals not\\_null:referrer\\_id: 2 of"),
        "{md}"
    );

    // Approval is refused, naming each failed error test.
    let o = run(refopt().args([
        "plan",
        "approve",
        "latest",
        "--by",
        "dana",
        "--plans",
        plans.path().to_str().unwrap(),
    ]));
    let stderr = expect_exit(&o, 1);
    assert!(stderr.contains("approval of"), "{stderr}");
    assert!(
        stderr.contains("data test `not_null:referrer_id` of dataset `referrals` failed: 2 of"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "data test `{orphans}` of dataset `payouts` failed: 4 of"
        )),
        "{stderr}"
    );
    assert!(
        !stderr.contains("accepted_values:recipient_type"),
        "warn does not block: {stderr}"
    );
}
