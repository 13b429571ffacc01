//! The versioned plan store: versions increase and are never overwritten, racing runs get
//! distinct versions, runs killed at any point leave only complete plans, and `refopt plan`
//! reads the store (list, show, diff, history) with a change log between versions.

use std::process::Stdio;
use std::time::Duration;

use crate::harness::*;

fn plans_in(dir: &std::path::Path) -> Vec<(u64, serde_json::Value)> {
    plan_files(dir)
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let plan: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{} is not complete JSON: {e}", p.display()));
            assert_valid_plan(&plan);
            (plan["version"].as_u64().unwrap(), plan)
        })
        .collect()
}

fn start_run(plans: &str, extra: &[&str]) -> std::process::Child {
    refopt()
        .args([
            "run",
            "optimize-referrals",
            "--root",
            shared_data().to_str().unwrap(),
            "--plans",
            plans,
            "--as-of",
            AS_OF,
        ])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn concurrent_runs_get_distinct_versions_and_nothing_is_overwritten() {
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().to_str().unwrap();
    let mut a = start_run(plans, &["--force"]);
    let mut b = start_run(plans, &["--force"]);
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    let mut versions: Vec<u64> = plans_in(dir.path()).iter().map(|(v, _)| *v).collect();
    versions.sort();
    assert_eq!(versions, [1, 2]);
    let names: Vec<String> = plan_files(dir.path())
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().to_string())
        .collect();
    assert_eq!(names, ["plan-v000001.json", "plan-v000002.json"]);
}

#[test]
fn runs_killed_at_random_points_leave_only_complete_plans() {
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().to_str().unwrap();
    // A fixed sequence of kill delays (ms) from a small LCG: reproducible, spread over the run.
    let mut seed: u64 = 20261127;
    for _ in 0..20 {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let delay = 50 + (seed >> 33) % 3000;
        let mut child = start_run(plans, &[]);
        std::thread::sleep(Duration::from_millis(delay));
        let _ = child.kill(); // SIGKILL
        let _ = child.wait();
        // Whatever was written is a complete, schema-valid plan (plans_in asserts it).
        let found = plans_in(dir.path());
        let mut versions: Vec<u64> = found.iter().map(|(v, _)| *v).collect();
        versions.sort();
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(
            versions, expected,
            "versions are dense and never overwritten"
        );
    }
    // The store still works.
    let before = plans_in(dir.path()).len();
    let mut child = start_run(plans, &["--force"]);
    assert!(child.wait().unwrap().success());
    assert_eq!(plans_in(dir.path()).len(), before + 1);
}

#[test]
fn plan_diff_after_a_threshold_edit_shows_the_edit_and_its_consequences() {
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().join("plans");
    let plans = plans.to_str().unwrap();
    let rules = dir.path().join("rules");
    copy_tree(&repo().join("rules"), &rules);
    let rules = rules.to_str().unwrap().to_string();
    let run_once = || {
        let mut c = start_run(plans, &["--rules", &rules, "--force"]);
        assert!(c.wait().unwrap().success());
    };
    run_once();
    run_once();
    let fraud = std::path::Path::new(&rules).join("fraud.yaml");
    let original = std::fs::read_to_string(&fraud).unwrap();
    let edited = original.replace(
        "{ column: referrals_within_1h, op: \">=\", value: 8 }",
        "{ column: referrals_within_1h, op: \">=\", value: 2 }",
    );
    assert_ne!(edited, original);
    std::fs::write(&fraud, edited).unwrap();
    run_once();

    let diff = |a: &str, b: &str| -> Vec<serde_json::Value> {
        let o = run(refopt().args(["plan", "diff", a, b, "--output", "json", "--plans", plans]));
        assert!(o.status.success(), "{}", text(&o));
        serde_json::from_slice::<serde_json::Value>(&o.stdout)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    };
    // Same inputs, same plan; only an escalation already announced by v1 is not announced again.
    let rerun = diff("1", "2");
    assert!(
        rerun.iter().all(|c| {
            let path = c["path"].as_str().unwrap();
            path.starts_with("escalation_state.") && path.ends_with(".announce")
        }),
        "{rerun:#?}"
    );
    // The edit: the rule file's hash, the velocity rule's count, and what follows from it.
    let changes = diff("2", "latest");
    let paths: Vec<&str> = changes
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.contains(&"inputs.config_hashes.rules/fraud.yaml"),
        "{paths:?}"
    );
    assert!(paths.contains(&"risk.referrals_flagged"), "{paths:?}");
    let velocity_index = {
        let o = run(refopt().args(["plan", "show", "3", "--section", "risk", "--plans", plans]));
        let risk: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        risk["rules"]
            .as_array()
            .unwrap()
            .iter()
            .position(|r| r["rule_id"] == "referral_velocity_burst")
            .unwrap()
    };
    assert!(
        paths.contains(&format!("risk.rules.{velocity_index}.referrals_flagged").as_str()),
        "{paths:?}"
    );
    // Nothing the rules do not touch changed.
    assert!(
        paths
            .iter()
            .all(|p| !p.starts_with("metrics.") && !p.starts_with("datasets.")),
        "{paths:?}"
    );
    // The change log of the new version names the edited file.
    let o = run(refopt().args([
        "plan",
        "show",
        "latest",
        "--section",
        "change_log",
        "--plans",
        plans,
    ]));
    let log = String::from_utf8_lossy(&o.stdout);
    assert!(log.contains("rules/fraud.yaml changed since v2"), "{log}");
    // History of the flag count across versions.
    let o = run(refopt().args([
        "plan",
        "history",
        "--metric",
        "risk.referrals_flagged",
        "--plans",
        plans,
    ]));
    let lines: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(String::from)
        .collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    let last: u64 = lines[2].rsplit(' ').next().unwrap().parse().unwrap();
    let first: u64 = lines[0].rsplit(' ').next().unwrap().parse().unwrap();
    assert!(last > first, "{lines:?}");
    // `plan list` shows the three versions.
    let o = run(refopt().args(["plan", "list", "--plans", plans]));
    assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 3);
}

#[test]
fn a_rerun_with_identical_inputs_reports_unchanged_unless_forced() {
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().to_str().unwrap();
    let args = |extra: &[&str]| {
        let mut cmd = refopt();
        cmd.args([
            "run",
            "optimize-referrals",
            "--root",
            shared_data().to_str().unwrap(),
            "--plans",
            plans,
            "--as-of",
            AS_OF,
        ])
        .args(extra);
        run(&mut cmd)
    };
    assert!(args(&[]).status.success());
    let o = args(&[]);
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("unchanged, plan v1"), "{stderr}");
    assert_eq!(plan_files(dir.path()).len(), 1);
    // A different parameter is a different input.
    assert!(args(&["--window", "7d"]).status.success());
    assert_eq!(plan_files(dir.path()).len(), 2);
    // --force writes a new version of the same inputs.
    assert!(args(&["--force"]).status.success());
    let versions: Vec<u64> = plans_in(dir.path()).iter().map(|(v, _)| *v).collect();
    assert_eq!(versions.len(), 3, "{versions:?}");
}
