//! Backfills resume after a kill with only the missing windows; backtests report exactly the
//! windows whose plans a rule change alters.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::harness::*;

fn backfill_cmd(
    root: &str,
    plans: &Path,
    from: &str,
    to: &str,
    step: &str,
) -> std::process::Command {
    let mut cmd = refopt();
    cmd.args([
        "backfill",
        "optimize-referrals",
        "--root",
        root,
        "--plans",
        plans.to_str().unwrap(),
        "--from",
        from,
        "--to",
        to,
        "--step",
        step,
        "--window",
        "30d",
        "--output",
        "json",
    ]);
    cmd
}

/// as_of -> plan files of that window's series.
fn plans_by_window(plans: &Path) -> BTreeMap<String, Vec<std::path::PathBuf>> {
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    for file in plan_files(plans) {
        let window = file
            .parent()
            .and_then(|p| p.file_name())
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("as_of="))
            .expect("backfill plans live under as_of=<date>/")
            .to_string();
        out.entry(window).or_default().push(file);
    }
    out
}

#[test]
fn a_killed_backfill_reruns_only_the_missing_windows() {
    let root = shared_data().to_str().unwrap();
    let plans = tempfile::tempdir().unwrap();
    let (from, to, step) = ("2026-04-06", "2026-06-01", "7d"); // 9 windows
    let mut child = backfill_cmd(root, plans.path(), from, to, step)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while plans_by_window(plans.path()).len() < 3 {
        assert!(Instant::now() < deadline, "backfill wrote no plans");
        assert!(child.try_wait().unwrap().is_none(), "backfill ended early");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done_before = plans_by_window(plans.path());
    assert!(done_before.len() < 9, "killed after the last window");
    for files in done_before.values() {
        for f in files {
            let plan: serde_json::Value =
                serde_json::from_slice(&std::fs::read(f).unwrap()).expect("complete JSON");
            assert_valid_plan(&plan);
        }
    }

    let o = run(&mut backfill_cmd(root, plans.path(), from, to, step));
    assert!(o.status.success(), "{}", text(&o));
    let windows: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(windows.len(), 9);
    for w in &windows {
        let as_of = w["as_of"].as_str().unwrap();
        let had_plan = done_before.contains_key(as_of);
        assert_eq!(
            w["skipped"].as_bool().unwrap(),
            had_plan,
            "window {as_of}: skipped iff its plan existed before the rerun"
        );
        assert_eq!(w["version"], 1, "window {as_of}: one plan per window");
    }
    let after = plans_by_window(plans.path());
    assert_eq!(after.len(), 9);
    assert!(after.values().all(|files| files.len() == 1));
    for (as_of, files) in &done_before {
        assert_eq!(&after[as_of], files, "earlier plans untouched");
    }
    // Escalation memory follows the backfill's order: each window's change log compares
    // with the previous window's plan, never with a later one.
    let first: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&after["2026-04-06"][0]).unwrap()).unwrap();
    assert_eq!(first["change_log"][0]["kind"], "first_plan");
}

/// The sections a rule change can move, as comparable JSON.
fn decision_sections(plan: &serde_json::Value) -> serde_json::Value {
    let titles = |key: &str, field: &str| -> Vec<serde_json::Value> {
        let mut v: Vec<serde_json::Value> = plan[key]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x[field].clone())
            .collect();
        v.sort_by_key(|x| x.to_string());
        v
    };
    let mut findings: Vec<serde_json::Value> = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| serde_json::json!([f["id"], f["severity"], f["detail"]]))
        .collect();
    findings.sort_by_key(|x| x.to_string());
    let mut alerts: Vec<serde_json::Value> = plan["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| serde_json::json!([a["id"], a["dimension"], a["value"], a["level"]]))
        .collect();
    alerts.sort_by_key(|x| x.to_string());
    serde_json::json!({
        "findings": findings,
        "alerts": alerts,
        "escalations": titles("escalations", "trigger"),
        "backlog": titles("backlog", "title"),
        "flagged": plan["risk"]["referrals_flagged"],
    })
}

#[test]
fn backtest_lists_exactly_the_windows_whose_plans_change() {
    let root = shared_data().to_str().unwrap();
    let work = tempfile::tempdir().unwrap();
    let new_rules = work.path().join("rules");
    copy_tree(&repo().join("rules"), &new_rules);
    let fraud = new_rules.join("fraud.yaml");
    let original = std::fs::read_to_string(&fraud).unwrap();
    let edited = original.replacen(
        "      - { column: referrers, op: \">=\", value: 3 }",
        "      - { column: referrers, op: \">=\", value: 5 }",
        1,
    );
    assert_ne!(original, edited);
    std::fs::write(&fraud, edited).unwrap();
    let (from, to, step) = ("2026-04-13", "2026-05-31", "12d"); // 5 windows

    // Ground truth: full backfills with each rule set, compared section by section here.
    let old_plans = work.path().join("old");
    let new_plans = work.path().join("new");
    let o = run(&mut backfill_cmd(root, &old_plans, from, to, step));
    assert!(o.status.success(), "{}", text(&o));
    let o = run(backfill_cmd(root, &new_plans, from, to, step)
        .args(["--rules", new_rules.to_str().unwrap()]));
    assert!(o.status.success(), "{}", text(&o));
    let (old, new) = (plans_by_window(&old_plans), plans_by_window(&new_plans));
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let truth: Vec<String> = old
        .iter()
        .filter(|(as_of, files)| {
            decision_sections(&read(&files[0])) != decision_sections(&read(&new[*as_of][0]))
        })
        .map(|(as_of, _)| as_of.clone())
        .collect();
    assert!(
        !truth.is_empty() && truth.len() < old.len(),
        "{truth:?}: want a mix"
    );

    let mut cmd = refopt();
    cmd.args([
        "backtest",
        "optimize-referrals",
        "--root",
        root,
        "--new-rules",
        new_rules.to_str().unwrap(),
        "--from",
        from,
        "--to",
        to,
        "--step",
        step,
        "--window",
        "30d",
        "--output",
        "json",
    ]);
    let o = run(&mut cmd);
    assert!(o.status.success(), "{}", text(&o));
    let report: Vec<serde_json::Value> = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report.len(), 5);
    let changed: Vec<String> = report
        .iter()
        .filter(|w| w["changed"].as_bool().unwrap())
        .map(|w| w["as_of"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(changed, truth);
    for w in report.iter().filter(|w| w["changed"].as_bool().unwrap()) {
        assert!(
            w["findings_changed"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == "fraud/device_shared_across_referrers"),
            "{w}"
        );
    }
}
