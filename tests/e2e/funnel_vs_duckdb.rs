//! refopt's funnel and KPIs equal an independent DuckDB computation on the same Parquet files.

use std::process::Command;

use crate::harness::*;

fn key(row: &serde_json::Value) -> (String, String, String) {
    (
        row["period"].as_str().unwrap().to_string(),
        row["dimension"].as_str().unwrap().to_string(),
        row["value"].as_str().unwrap().to_string(),
    )
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn funnel_and_kpis_match_duckdb() {
    let data = shared_data();
    let plans = tempfile::tempdir().unwrap();
    let (plan, _) = run_pipeline(
        data.to_str().unwrap(),
        plans.path().to_str().unwrap(),
        &[
            "--detail",
            "full",
            "--dimensions",
            "channel,persona,region,partner-tier",
        ],
        &[],
    );

    let python = python();
    let o = run(Command::new(python).args([
        repo()
            .join("tests/python/funnel_reference.py")
            .to_str()
            .unwrap(),
        data.to_str().unwrap(),
        AS_OF,
        "30",
    ]));
    assert!(o.status.success(), "reference failed\n{}", text(&o));
    let reference: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();

    // refopt rows: one per (dimension, value) with current and previous counts.
    let mut ours = std::collections::BTreeMap::new();
    for row in plan["metrics"]["funnel"].as_array().unwrap() {
        for period in ["current", "previous"] {
            let counts = &row[period];
            assert!(
                counts.is_object(),
                "--detail full keeps previous counts: {row}"
            );
            ours.insert(
                (
                    period.to_string(),
                    row["dimension"].as_str().unwrap().to_string(),
                    row["value"].as_str().unwrap().to_string(),
                ),
                counts.clone(),
            );
        }
    }
    let reference_rows = reference["funnel"].as_array().unwrap();
    assert!(
        reference_rows.len() > 20,
        "reference has rows for every dimension"
    );
    for r in reference_rows {
        let k = key(r);
        let o = ours
            .get(&k)
            .unwrap_or_else(|| panic!("refopt lacks funnel row {k:?}"));
        for field in [
            "invites",
            "referrals",
            "signups",
            "qualified",
            "opportunities",
            "won",
            "flagged",
            "nps_responses",
            "nps_promoters",
            "nps_detractors",
        ] {
            assert_eq!(o[field].as_u64(), r[field].as_u64(), "{field} of {k:?}");
        }
        // Money is exact: DuckDB's DECIMAL(18, 2) sum, to the cent, as the same text.
        for field in ["revenue", "payout_cost"] {
            let (a, b) = (o[field].as_str().unwrap(), r[field].as_str().unwrap());
            assert_eq!(a, b, "{field} of {k:?}: refopt {a} vs duckdb DECIMAL {b}");
        }
    }
    // And nothing extra on refopt's side (zero rows aside).
    let reference_keys: std::collections::BTreeSet<_> = reference_rows.iter().map(key).collect();
    for (k, counts) in &ours {
        if ["referrals", "invites", "nps_responses"]
            .iter()
            .any(|f| counts[f].as_u64() != Some(0))
        {
            assert!(
                reference_keys.contains(k),
                "refopt has a row DuckDB does not: {k:?}"
            );
        }
    }

    // Rates are derived from the counts.
    let overall = &plan["metrics"]["funnel"][0];
    assert_eq!(overall["dimension"], "overall");
    let c = &overall["current"];
    let expected = c["won"].as_f64().unwrap() / c["referrals"].as_f64().unwrap();
    assert!(close(
        overall["rates"]["referral_to_won"].as_f64().unwrap(),
        expected
    ));

    // Fraud flags and NPS per dimension value (the seed's data refresh per dimension): the
    // plan's rates follow from counts DuckDB agrees with, and every dimension has answers.
    let mut answered_dimensions = std::collections::BTreeSet::new();
    let mut flagged_dimensions = std::collections::BTreeSet::new();
    for row in plan["metrics"]["funnel"].as_array().unwrap() {
        let c = &row["current"];
        let n = |f: &str| c[f].as_f64().unwrap();
        if n("nps_responses") > 0.0 {
            answered_dimensions.insert(row["dimension"].as_str().unwrap().to_string());
            let nps = 100.0 * (n("nps_promoters") - n("nps_detractors")) / n("nps_responses");
            assert!(close(row["rates"]["nps"].as_f64().unwrap(), nps), "{row}");
        } else {
            assert!(row["rates"]["nps"].is_null(), "{row}");
        }
        if n("flagged") > 0.0 {
            flagged_dimensions.insert(row["dimension"].as_str().unwrap().to_string());
            let rate = n("flagged") / n("referrals");
            assert!(
                close(row["rates"]["flag_rate"].as_f64().unwrap(), rate),
                "{row}"
            );
        }
    }
    let all: std::collections::BTreeSet<String> =
        ["overall", "channel", "persona", "region", "partner-tier"]
            .map(String::from)
            .into();
    assert_eq!(answered_dimensions, all);
    assert_eq!(flagged_dimensions, all);

    // KPIs.
    let kpis = plan["metrics"]["kpis"].as_array().unwrap();
    for r in reference["kpis"].as_array().unwrap() {
        let metric = r["metric"].as_str().unwrap();
        let period = r["period"].as_str().unwrap();
        let ours = kpis
            .iter()
            .find(|k| k["metric"] == metric)
            .unwrap_or_else(|| panic!("refopt lacks KPI {metric}"));
        let a = ours[period].as_f64().unwrap();
        let b = r["value"].as_f64().unwrap();
        assert!(
            close(a, b),
            "KPI {metric} {period}: refopt {a} vs duckdb {b}"
        );
    }
}

#[test]
fn plan_is_written_to_the_store_and_matches_stdout() {
    let data = shared_data();
    let plans = tempfile::tempdir().unwrap();
    let (plan, out) = run_pipeline(
        data.to_str().unwrap(),
        plans.path().to_str().unwrap(),
        &[],
        &[],
    );
    let files = plan_files(plans.path());
    assert_eq!(
        files.len(),
        1,
        "one plan written: {files:?}\n{}",
        text(&out)
    );
    let name = files[0].file_name().unwrap().to_string_lossy().to_string();
    assert!(
        name.starts_with("plan-") && name.ends_with(".json"),
        "{name}"
    );
    assert!(files[0].parent().unwrap().ends_with("optimize-referrals"));
    let stored: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files[0]).unwrap()).unwrap();
    assert_eq!(stored, plan);
    assert_valid_plan(&stored);

    // The seed's plan header: window, datasets, task ids, dependency graph with the diamond.
    for key in [
        "schema_version",
        "run_id",
        "pipeline",
        "created_at",
        "inputs",
        "datasets",
        "tasks",
        "dependency_graph",
        "error_handling",
        "success_metrics",
        "metrics",
        "findings",
        "risk",
        "partner_health",
        "experiments",
        "alerts",
        "escalations",
        "backlog",
        "change_log",
    ] {
        assert!(stored.get(key).is_some(), "plan lacks `{key}`");
    }
    assert_eq!(
        stored["pipeline"]["pattern"],
        "pipeline with diamond block and merge gate"
    );
    assert_eq!(stored["dependency_graph"]["merge_gates"][0], "merge_gate");
    assert_eq!(stored["inputs"]["window"], "30d");
    assert_eq!(stored["error_handling"]["retry_limit"], 2);
    let tasks = stored["tasks"].as_array().unwrap();
    assert!(tasks.iter().all(|t| t["status"] == "succeeded"));
    let metric_names: Vec<&str> = stored["success_metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        metric_names,
        ["conversion_lift", "fraud_reduction", "partner_nps"]
    );
    // Summary detail drops previous counts of dimension rows but keeps the overall row's.
    let funnel = stored["metrics"]["funnel"].as_array().unwrap();
    assert!(funnel[0]["previous"].is_object());
    assert!(funnel.iter().skip(1).all(|r| r["previous"].is_null()));
    assert!(
        funnel
            .iter()
            .any(|r| r["dimension"] == "partner-tier" && r["value"] == "none")
    );
}

#[test]
fn human_summary_prints_the_funnel() {
    let data = shared_data();
    let plans = tempfile::tempdir().unwrap();
    let o = run(refopt().args([
        "run",
        "optimize-referrals",
        "--root",
        data.to_str().unwrap(),
        "--plans",
        plans.path().to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--dimensions",
        "channel",
    ]));
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "funnel (current window",
        "referrals",
        "won",
        "by channel:",
        "success metrics:",
        "plan: file://",
    ] {
        assert!(
            stdout.contains(needle),
            "summary lacks `{needle}`\n{stdout}"
        );
    }
}
