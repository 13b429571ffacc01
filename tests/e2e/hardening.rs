//! Bad input and faults (issue 21): one case per way a user or the world can break a run. Each
//! asserts the exit code, the located message, and that no plan or record was lost, corrupted or
//! left unreadable. docs/operations.md ("What refopt promises under bad input and faults")
//! states what these tests hold refopt to.

use std::path::Path;
use std::process::Command;

use crate::harness::*;

/// A copy of the shared data set in a temporary folder (the test may break it).
fn data_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("data");
    copy_tree(shared_data(), &root);
    (work, root)
}

/// Rewrites the first Parquet file of `folder` (under `root`) with DuckDB `select`, where the
/// file's rows are the table `f`.
fn rewrite(root: &Path, folder: &str, select: &str) {
    let script = r#"
import duckdb, glob, os, sys
f = sorted(glob.glob(f"{sys.argv[1]}/{sys.argv[2]}/*.parquet"))[0]
tmp = f + ".tmp"
duckdb.sql(f"CREATE VIEW f AS SELECT * FROM read_parquet('{f}', hive_partitioning=false)")
duckdb.sql(f"COPY ({sys.argv[3]}) TO '{tmp}' (FORMAT parquet)")
os.replace(tmp, f)
print(f)
"#;
    let o =
        run(Command::new(python()).args(["-c", script, root.to_str().unwrap(), folder, select]));
    assert!(o.status.success(), "{}", text(&o));
}

fn first_file(root: &Path, folder: &str) -> std::path::PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(root.join(folder))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    files.remove(0)
}

fn run_on(root: &Path, plans: &Path, extra: &[&str]) -> std::process::Output {
    let mut cmd = refopt();
    cmd.args(["run", "optimize-referrals", "--root"])
        .arg(root)
        .arg("--plans")
        .arg(plans)
        .args(["--as-of", AS_OF]);
    cmd.args(extra);
    run(&mut cmd)
}

/// The result of data test `id` of `dataset` in `plan`.
#[track_caller]
fn dataset_test<'a>(plan: &'a serde_json::Value, dataset: &str, id: &str) -> &'a serde_json::Value {
    let found = plan["datasets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == dataset)
        .unwrap_or_else(|| panic!("no dataset {dataset}"));
    found["tests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["id"] == id)
        .unwrap_or_else(|| panic!("no test {id}: {found:#}"))
}

fn plan_cmd(args: &[&str], plans: &Path) -> std::process::Output {
    run(refopt().arg("plan").args(args).arg("--plans").arg(plans))
}

#[test]
fn non_finite_money_is_counted_excluded_and_every_command_reads_the_plan() {
    let (work, root) = data_copy();
    rewrite(
        &root,
        "payouts/dt=2026-05-20",
        "SELECT * REPLACE (CASE row_number() OVER () WHEN 1 THEN 'NaN'::DOUBLE WHEN 2 THEN 'inf'::DOUBLE WHEN 3 THEN '-inf'::DOUBLE ELSE amount END AS amount) FROM f",
    );
    let plans = work.path().join("plans");
    let o = run_on(&root, &plans, &["--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let finite = dataset_test(&plan, "payouts", "finite:amount");
    assert_eq!(finite["failing_rows"], 3, "{finite:#}");
    assert_eq!(finite["status"], "warn", "{finite:#}");
    assert!(
        plan["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "data_test/payouts/finite:amount"),
        "the finding names dataset and column"
    );
    // The money the plan sums stays finite: the three rows are read as null.
    let payout_cost = &plan["metrics"]["funnel"][0]["current"]["payout_cost"];
    assert!(money(payout_cost).is_finite(), "{payout_cost}");
    assert!(money(&plan["risk"]["payout_hold"]["amount"]) > 0.0);
    // Every command reads it back.
    for args in [
        &["list"][..],
        &["show", "latest"][..],
        &["audit", "latest"][..],
    ] {
        let o = plan_cmd(args, &plans);
        assert!(o.status.success(), "plan {args:?}\n{}", text(&o));
    }
    let url = plan_files(&plans).remove(0);
    let o = run(refopt()
        .arg("report")
        .arg(&url)
        .arg("--out")
        .arg(work.path().join("report.html")));
    assert!(o.status.success(), "{}", text(&o));
    // A rerun recognizes its inputs: no new version.
    let o = run_on(&root, &plans, &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("unchanged"), "{}", text(&o));
    assert_eq!(plan_files(&plans).len(), 1);
}

#[test]
fn sub_cent_money_is_a_finding_and_sums_stay_exact_to_the_cent() {
    let (work, root) = data_copy();
    // Two amounts with a third decimal place: the stages read them to the nearest cent.
    rewrite(
        &root,
        "payouts/dt=2026-05-20",
        "SELECT * REPLACE (CASE row_number() OVER () WHEN 1 THEN 10.005 WHEN 2 THEN 0.001 ELSE amount END AS amount) FROM f",
    );
    let plans = work.path().join("plans");
    let o = run_on(&root, &plans, &["--output", "json"]);
    assert!(o.status.success(), "{}", text(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let cents = dataset_test(&plan, "payouts", "money:amount");
    assert_eq!(cents["failing_rows"], 2, "{cents:#}");
    assert_eq!(cents["status"], "warn", "{cents:#}");
    assert!(
        cents["message"]
            .as_str()
            .unwrap()
            .contains("not a whole number of cents"),
        "{cents:#}"
    );
    assert!(
        plan["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "data_test/payouts/money:amount"),
        "the finding names dataset and column"
    );
    // Every amount in the plan is whole cents.
    money(&plan["metrics"]["funnel"][0]["current"]["payout_cost"]);
    money(&plan["risk"]["payouts_at_risk"]["unpaid"]);
}

#[test]
fn a_window_without_data_is_a_critical_finding_and_cannot_be_approved() {
    let plans = tempfile::tempdir().unwrap();
    let mut cmd = refopt();
    cmd.args(["run", "optimize-referrals", "--root"])
        .arg(shared_data())
        .arg("--plans")
        .arg(plans.path())
        .args(["--as-of", "2021-01-01", "--output", "json"]);
    let o = run(&mut cmd);
    assert!(o.status.success(), "{}", text(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let finding = plan["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["kind"] == "empty_window")
        .unwrap_or_else(|| panic!("no empty_window finding: {:#}", plan["findings"]));
    assert_eq!(finding["severity"], "critical");
    assert!(
        finding["title"]
            .as_str()
            .unwrap()
            .contains("[2020-12-02, 2021-01-01)"),
        "{finding}"
    );
    let o = plan_cmd(&["approve", "latest", "--by", "dana"], plans.path());
    let stderr = expect_exit(&o, 1);
    assert!(
        stderr.contains("dataset `invites` has no rows in the window"),
        "{stderr}"
    );
    let o = plan_cmd(&["audit", "latest"], plans.path());
    assert!(!String::from_utf8_lossy(&o.stdout).contains("approved by"));
}

#[test]
fn a_run_refuses_a_rule_reading_a_column_its_table_lacks() {
    let work = tempfile::tempdir().unwrap();
    let rules = work.path().join("rules");
    copy_tree(&repo().join("rules"), &rules);
    let fraud = rules.join("fraud.yaml");
    let yaml = std::fs::read_to_string(&fraud).unwrap();
    let broken = yaml.replacen("row.minutes_to_won", "row.minutes_to_wonn", 1);
    assert_ne!(broken, yaml);
    std::fs::write(&fraud, broken).unwrap();
    let plans = work.path().join("plans");
    let o = run_on(shared_data(), &plans, &["--rules", rules.to_str().unwrap()]);
    let stderr = expect_exit(&o, 3);
    assert!(
        stderr.contains("fraud.yaml:")
            && stderr.contains("`row.minutes_to_wonn` is not a column of")
            && stderr.contains("did you mean `minutes_to_won`?"),
        "{stderr}"
    );
    assert!(plan_files(&plans).is_empty());
}

#[test]
fn secrets_in_urls_never_reach_the_output_of_any_command() {
    let data = shared_data().to_str().unwrap().to_string();
    let plans = tempfile::tempdir().unwrap();
    let p = plans.path().to_str().unwrap().to_string();
    // (secret, command line)
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "PASSWORD1",
            vec![
                "run",
                "optimize-referrals",
                "--root",
                &data,
                "--plans",
                &p,
                "--as-of",
                AS_OF,
                "--pushgateway",
                "http://user:PASSWORD1@127.0.0.1:9/",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        ),
        (
            "TOKEN2",
            vec![
                "run",
                "optimize-referrals",
                "--root",
                &data,
                "--plans",
                &p,
                "--rules",
                "https://user:TOKEN2@127.0.0.1:9/rules",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        ),
        (
            "secret3",
            vec![
                "run",
                "optimize-referrals",
                "--root",
                "s3://AKIA:secret3@part4@bucket/x",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        ),
        (
            "part4",
            vec![
                "backfill",
                "optimize-referrals",
                "--root",
                "s3://AKIA:secret3@part4@bucket/x",
                "--from",
                "2026-05-01",
                "--to",
                "2026-05-02",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        ),
        (
            "TOKEN5",
            vec![
                "validate",
                "--rules",
                "https://user:TOKEN5@127.0.0.1:9/rules",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
        ),
        (
            "TOKEN6",
            vec!["plan", "list", "--plans", "s3://key:TOKEN6@bucket/plans"]
                .into_iter()
                .map(String::from)
                .collect(),
        ),
    ];
    for (secret, args) in &cases {
        for format in ["text", "json"] {
            let o = run(refopt().args(args).args(["--log-format", format]));
            let all = text(&o);
            assert!(!all.contains(secret), "{secret} leaked by {args:?}\n{all}");
            assert!(!all.contains("panicked"), "{all}");
        }
    }
}

#[test]
fn approvers_whose_names_map_to_one_file_name_are_recorded_apart() {
    let plans = tempfile::tempdir().unwrap();
    let o = run_on(shared_data(), plans.path(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    // Both decide on the same version; neither is told the other already approved.
    for by in ["李雷", "王芳", "Dana Smith", "Dana_Smith"] {
        let o = plan_cmd(&["reject", "latest", "--by", by], plans.path());
        assert!(o.status.success(), "{by}\n{}", text(&o));
        assert!(
            !String::from_utf8_lossy(&o.stdout).contains("nothing recorded"),
            "{by}\n{}",
            text(&o)
        );
    }
    let o = plan_cmd(&["audit", "latest"], plans.path());
    let out = String::from_utf8_lossy(&o.stdout);
    for by in ["李雷", "王芳", "Dana Smith", "Dana_Smith"] {
        assert!(out.contains(by), "{by} missing from the audit\n{out}");
    }
    // Deciding twice is still a no-op.
    let o = plan_cmd(&["reject", "latest", "--by", "李雷"], plans.path());
    assert!(String::from_utf8_lossy(&o.stdout).contains("nothing recorded"));
}

#[test]
fn dates_outside_the_supported_range_are_rejected_not_panicked_on() {
    let data = shared_data().to_str().unwrap();
    for args in [
        &[
            "run",
            "optimize-referrals",
            "--root",
            data,
            "--as-of=-262143-01-05",
            "--window",
            "366d",
        ][..],
        &[
            "run",
            "optimize-referrals",
            "--root",
            data,
            "--as-of",
            "+262142-12-31",
        ][..],
        &[
            "backfill",
            "optimize-referrals",
            "--root",
            data,
            "--from=-262143-01-05",
            "--to",
            "2026-01-01",
        ][..],
        &[
            "backfill",
            "optimize-referrals",
            "--root",
            data,
            "--from",
            "1900-01-01",
            "--to",
            "2026-01-01",
        ][..],
    ] {
        let o = run(refopt().args(args));
        let stderr = expect_exit(&o, 3);
        assert!(
            stderr.contains("is out of range: use a date in the years"),
            "{args:?}\n{stderr}"
        );
    }
}

#[test]
fn broken_parquet_names_the_dataset_the_file_and_the_column() {
    // A required column missing from one day's file.
    let (_work, root) = data_copy();
    rewrite(
        &root,
        "referrals/dt=2026-05-20",
        "SELECT * EXCLUDE (ip) FROM f",
    );
    let bad = first_file(&root, "referrals/dt=2026-05-20");
    let plans = tempfile::tempdir().unwrap();
    let o = run_on(&root, plans.path(), &[]);
    let stderr = expect_exit(&o, 4);
    assert!(
        stderr.contains("optimize-referrals.yaml:")
            && stderr.contains("dataset `referrals`")
            && stderr.contains(bad.file_name().unwrap().to_str().unwrap())
            && stderr.contains("lacks required column `ip`"),
        "{stderr}"
    );
    assert!(plan_files(plans.path()).is_empty());

    // A corrupt footer.
    let (_work, root) = data_copy();
    let bad = first_file(&root, "conversions/dt=2026-05-21");
    let mut bytes = std::fs::read(&bad).unwrap();
    let n = bytes.len();
    bytes[n - 12..].copy_from_slice(b"garbagegarba");
    std::fs::write(&bad, bytes).unwrap();
    let o = run_on(&root, plans.path(), &[]);
    let stderr = expect_exit(&o, 4);
    assert!(
        stderr.contains("dataset `conversions`")
            && stderr.contains(bad.file_name().unwrap().to_str().unwrap())
            && stderr.contains("is not readable Parquet"),
        "{stderr}"
    );
    assert!(plan_files(plans.path()).is_empty());

    // Corrupt data pages behind a readable footer: found only when a stage decodes them, and
    // then named like the rest (not "stage failed", exit 6).
    let (_work, root) = data_copy();
    let bad = first_file(&root, "conversions/dt=2026-05-21");
    let mut bytes = std::fs::read(&bad).unwrap();
    let end = (bytes.len() / 2).min(400);
    for b in &mut bytes[8..end] {
        *b = b.wrapping_mul(7).wrapping_add(13);
    }
    std::fs::write(&bad, bytes).unwrap();
    let o = run_on(&root, plans.path(), &[]);
    let stderr = expect_exit(&o, 4);
    assert!(
        stderr.contains("optimize-referrals.yaml:")
            && stderr.contains("dataset `conversions`")
            && stderr.contains(bad.file_name().unwrap().to_str().unwrap())
            && stderr.contains("cannot be decoded"),
        "{stderr}"
    );
    assert!(plan_files(plans.path()).is_empty());
}

#[test]
fn a_rerun_writes_the_report_a_killed_run_left_unwritten() {
    let plans = tempfile::tempdir().unwrap();
    let o = run_on(shared_data(), plans.path(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    let plan = plan_files(plans.path()).remove(0);
    let html = plan.with_extension("html");
    let md = plan.with_extension("md");
    assert!(html.is_file() && md.is_file());
    // As if killed after the plan was stored, before the report.
    std::fs::remove_file(&html).unwrap();
    std::fs::remove_file(&md).unwrap();
    let o = run_on(shared_data(), plans.path(), &[]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("unchanged"), "{}", text(&o));
    assert!(html.is_file() && md.is_file(), "{}", text(&o));
    assert_eq!(plan_files(plans.path()).len(), 1);
    // The flagged-referrals file is named by its content: a forced rerun that flags the same
    // referrals adopts it (as it would adopt one a killed run left) instead of adding another.
    let o = run_on(shared_data(), plans.path(), &["--force"]);
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(plan_files(plans.path()).len(), 2);
    let flagged = std::fs::read_dir(plans.path().join("optimize-referrals/flagged-referrals"))
        .unwrap()
        .count();
    assert_eq!(flagged, 1, "{}", text(&o));

    // A file a killed run left over other data (no plan names it) is an orphan: `plan gc`
    // deletes it once it is older than the grace period, and never a file a plan names.
    let folder = plans.path().join("optimize-referrals/flagged-referrals");
    let named = std::fs::read_dir(&folder)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let old = folder.join("0123456789abcdef01234567.parquet");
    let young = folder.join("76543210fedcba9876543210.parquet");
    for orphan in [&old, &young] {
        std::fs::copy(&named, orphan).unwrap();
    }
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(two_hours_ago)
        .unwrap();
    let o = plan_cmd(&["gc", "--dry-run"], plans.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("would delete 1 unreferenced file(s)")
            && text(&o).contains("0123456789abcdef01234567.parquet"),
        "{}",
        text(&o)
    );
    assert!(old.is_file());
    let o = plan_cmd(&["gc"], plans.path());
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("deleted 1 unreferenced file(s)"),
        "{}",
        text(&o)
    );
    assert!(!old.exists() && young.is_file() && named.is_file());
    // Every plan still reads (its flagged file is there).
    for version in ["1", "2"] {
        let o = plan_cmd(&["show", version, "--section", "risk"], plans.path());
        assert!(o.status.success(), "{}", text(&o));
    }
    let o = plan_cmd(&["gc", "--older-than", "0s"], plans.path());
    assert!(
        text(&o).contains("deleted 1 unreferenced file(s)"),
        "{}",
        text(&o)
    );
    assert!(!young.exists() && named.is_file());
}

#[test]
fn retry_settings_without_bounds_are_located_errors() {
    for (retry, message) in [
        (
            "{limit: 1000000, backoff_ms: 500}",
            "retry.limit 1000000 is more than 10 retries",
        ),
        (
            "{limit: 4294967295, backoff_ms: 500}",
            "retry.limit 4294967295 is more than 10 retries",
        ),
        (
            "{limit: 2, backoff_ms: 1000000000000000}",
            "retry.backoff_ms 1000000000000000 is more than 60000 ms",
        ),
    ] {
        let work = tempfile::tempdir().unwrap();
        let rules = work.path().join("rules");
        copy_tree(&repo().join("rules"), &rules);
        let file = rules.join("notifications.yaml");
        let yaml = std::fs::read_to_string(&file).unwrap().replace(
            "retry: {limit: 2, backoff_ms: 500}",
            &format!("retry: {retry}"),
        );
        std::fs::write(&file, yaml).unwrap();
        let o = run(refopt().args(["validate", "--rules", rules.to_str().unwrap()]));
        let out = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(o.status.code(), Some(1), "{out}");
        assert!(
            out.contains("notifications.yaml:11:") && out.contains(message),
            "{out}"
        );
    }
}

#[test]
fn a_planted_plan_name_past_the_highest_version_is_ignored() {
    let plans = tempfile::tempdir().unwrap();
    let dir = plans.path().join("optimize-referrals");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("plan-v18446744073709551615.json"), "{}").unwrap();
    for (extra, version) in [
        (&[][..], "plan-v000001.json"),
        (&["--force"][..], "plan-v000002.json"),
    ] {
        let o = run_on(shared_data(), plans.path(), extra);
        assert!(o.status.success(), "{}", text(&o));
        assert!(dir.join(version).is_file(), "{}", text(&o));
        assert!(
            text(&o).contains("ignoring") && text(&o).contains("plan-v18446744073709551615.json"),
            "{}",
            text(&o)
        );
    }
    let o = plan_cmd(&["list"], plans.path());
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn terminal_escapes_in_data_never_reach_the_terminal() {
    let (work, root) = data_copy();
    rewrite(
        &root,
        "partners",
        "SELECT * REPLACE (name || chr(27) || ']0;owned' || chr(7) || chr(27) || '[2J' AS name) FROM f",
    );
    let o = run_on(&root, &work.path().join("plans"), &["--detail", "full"]);
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("]0;owned"),
        "partner names are printed\n{stdout}"
    );
    assert!(
        !stdout.contains('\u{1b}') && !stdout.contains('\u{7}'),
        "raw escape in the summary"
    );
}
