//! Data-refresh checks (rows, null violations, duplicate keys) equal an independent DuckDB
//! computation, in a single run and in every window of a backfill — where the per-day range
//! stages are computed once for all windows and rolled up per window.

use std::process::Command;

use serde_json::Value;

use crate::harness::*;

/// The plan's checks of `dataset` as {period: {rows, null_violations, duplicate_keys}}.
fn checks(plan: &Value, dataset: &str) -> Value {
    let entry = plan["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == dataset)
        .unwrap_or_else(|| panic!("plan lacks dataset {dataset}"));
    let mut out = serde_json::Map::new();
    for c in entry["checks"].as_array().unwrap() {
        out.insert(
            c["period"].as_str().unwrap().to_string(),
            serde_json::json!({
                "rows": c["rows"], "null_violations": c["null_violations"],
                "duplicate_keys": c["duplicate_keys"],
            }),
        );
    }
    Value::Object(out)
}

fn reference(root: &str, as_of: &str) -> Value {
    let o = run(Command::new(python()).args([
        repo()
            .join("tests/python/data_health_reference.py")
            .to_str()
            .unwrap(),
        "reference",
        root,
        as_of,
        "30",
    ]));
    assert!(o.status.success(), "reference failed\n{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

fn task<'a>(plan: &'a Value, id: &str) -> &'a Value {
    plan["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("plan lacks task {id}"))
}

#[test]
fn duplicate_and_null_keys_match_duckdb_in_runs_and_backfill_windows() {
    let data = tempfile::tempdir().unwrap();
    copy_tree(shared_data(), data.path());
    let root = data.path().to_str().unwrap();
    let o = run(Command::new(python()).args([
        repo()
            .join("tests/python/data_health_reference.py")
            .to_str()
            .unwrap(),
        "plant",
        root,
        AS_OF,
    ]));
    assert!(o.status.success(), "planting failed\n{}", text(&o));

    // A single run computes the range stages over its own days.
    let plans = tempfile::tempdir().unwrap();
    let (plan, _) = run_pipeline(root, plans.path().to_str().unwrap(), &[], &[]);
    let expected = reference(root, AS_OF);
    for dataset in ["invites", "conversions"] {
        assert_eq!(checks(&plan, dataset), expected[dataset], "{dataset}");
    }
    // Planted: one same-day repeat, three copies on three days (2), three rows without a key,
    // and a copy in another `dt` partition (1); the straddling pair is in different periods.
    assert_eq!(expected["invites"]["current"]["duplicate_keys"], 7);
    assert_eq!(expected["invites"]["current"]["null_violations"], 3);
    assert_eq!(expected["conversions"]["current"]["duplicate_keys"], 1);
    assert_eq!(
        task(&plan, "dataset_days")["range"],
        "2026-04-02..2026-06-01"
    );
    assert!(task(&plan, "data_refresh").get("range").is_none());

    // A backfill computes them once over all windows' days; each window rolls up its own.
    let backfill_plans = tempfile::tempdir().unwrap();
    let o = run(refopt().args([
        "backfill",
        "optimize-referrals",
        "--root",
        root,
        "--plans",
        backfill_plans.path().to_str().unwrap(),
        "--from",
        "2026-05-18",
        "--to",
        AS_OF,
        "--step",
        "7d",
        "--window",
        "30d",
        "--concurrent-windows",
        "2",
    ]));
    assert!(o.status.success(), "backfill failed\n{}", text(&o));
    let files = plan_files(backfill_plans.path());
    assert_eq!(files.len(), 3, "{files:?}");
    let mut duplicates = Vec::new();
    for file in files {
        let plan: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        assert_valid_plan(&plan);
        let as_of = plan["inputs"]["as_of"].as_str().unwrap().to_string();
        let expected = reference(root, &as_of);
        for dataset in ["invites", "conversions"] {
            assert_eq!(
                checks(&plan, dataset),
                expected[dataset],
                "{dataset} as of {as_of}"
            );
        }
        duplicates.push(expected["invites"]["current"]["duplicate_keys"].clone());
        let shared = task(&plan, "repeated_keys");
        assert_eq!(shared["range"], "2026-03-19..2026-06-01", "as of {as_of}");
    }
    // The windows see different duplicates (the straddling pair and the three copies move
    // between periods), so a roll-up that ignored the window would fail above.
    assert_eq!(duplicates, [1, 2, 7]);
}
