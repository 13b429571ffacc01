//! Bad input: each problem is a clear error naming the thing, a non-zero exit code, and no plan.

use std::path::Path;

use crate::harness::*;

/// Copies the default pipeline (YAML and SQL) into `dir`, applying `edit` to the YAML text.
fn pipeline_copy(dir: &Path, edit: impl Fn(String) -> String) -> String {
    let src = repo().join("pipelines");
    std::fs::create_dir_all(dir.join("sql")).unwrap();
    for entry in std::fs::read_dir(src.join("sql")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join("sql").join(entry.file_name())).unwrap();
    }
    let yaml = std::fs::read_to_string(src.join("optimize-referrals.yaml")).unwrap();
    let edited = edit(yaml.clone());
    assert_ne!(edited, yaml, "the edit must change the pipeline");
    let file = dir.join("optimize-referrals.yaml");
    std::fs::write(&file, edited).unwrap();
    file.to_str().unwrap().to_string()
}

/// Runs `refopt run` with `args`, expecting failure with `code` and every `needle` in stderr,
/// and no plan written.
fn expect_failure(pipeline: &str, root: &str, extra: &[&str], code: i32, needles: &[&str]) {
    let plans = tempfile::tempdir().unwrap();
    let mut cmd = refopt();
    cmd.args([
        "run",
        pipeline,
        "--root",
        root,
        "--plans",
        plans.path().to_str().unwrap(),
    ]);
    if !extra.contains(&"--as-of") {
        cmd.args(["--as-of", AS_OF]);
    }
    cmd.args(extra);
    let o = run(&mut cmd);
    let stderr = expect_exit(&o, code);
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "stderr lacks `{needle}`\n{}",
            text(&o)
        );
    }
    assert!(
        plan_files(plans.path()).is_empty(),
        "no plan may be written on error"
    );
}

#[test]
fn missing_dataset_is_named() {
    let data = tempfile::tempdir().unwrap();
    // A copy of the shared data without fraud_flags.
    copy_tree(shared_data(), data.path());
    std::fs::remove_dir_all(data.path().join("fraud_flags")).unwrap();
    expect_failure(
        "optimize-referrals",
        data.path().to_str().unwrap(),
        &[],
        4,
        &[
            "dataset `fraud_flags` not found",
            "optimize-referrals.yaml:",
            "fraud_flags/",
        ],
    );
}

#[test]
fn a_column_of_another_type_than_declared_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_copy(dir.path(), |y| {
        y.replace("      - score: int64\n", "      - score: timestamp\n")
    });
    expect_failure(
        &pipeline,
        shared_data().to_str().unwrap(),
        &[],
        4,
        &["dataset `nps_responses`: column `score` is declared timestamp but the data has Int64"],
    );
}

#[test]
fn missing_required_column_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_copy(dir.path(), |y| {
        y.replace(
            "      - flagged_at: timestamp\n",
            "      - flagged_at: timestamp\n      - confidence: float64\n",
        )
    });
    expect_failure(
        &pipeline,
        shared_data().to_str().unwrap(),
        &[],
        4,
        &[
            "dataset `fraud_flags` is missing required column `confidence`",
            "found: referral_id",
        ],
    );
}

#[test]
fn unknown_stage_reference_is_located() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_copy(dir.path(), |y| {
        y.replace(
            "depends_on: [funnel_cube, nps_cube]\n    publishes: funnel",
            "depends_on: [funnel_cub, nps_cube]\n    publishes: funnel",
        )
    });
    expect_failure(
        &pipeline,
        shared_data().to_str().unwrap(),
        &[],
        3,
        &[
            "optimize-referrals.yaml:",
            "stage `funnel` depends on unknown stage `funnel_cub` (did you mean `funnel_cube`?)",
        ],
    );
}

#[test]
fn dependency_cycle_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_copy(dir.path(), |y| {
        y.replace(
            "depends_on: [dataset_days, repeated_key_days]\n    publishes: dataset_health",
            "depends_on: [dataset_days, repeated_key_days, partner_health]\n    publishes: dataset_health",
        )
    });
    expect_failure(
        &pipeline,
        shared_data().to_str().unwrap(),
        &[],
        3,
        &["dependency cycle:", "data_refresh", "partner_health"],
    );
}

#[test]
fn invalid_window_is_rejected() {
    for (window, reason) in [
        ("30", "missing the `d` unit"),
        ("0d", "between 1d and 366d"),
        ("abc", "missing the `d` unit"),
    ] {
        expect_failure(
            "optimize-referrals",
            shared_data().to_str().unwrap(),
            &["--window", window],
            3,
            &[&format!("invalid window `{window}`"), reason],
        );
    }
}

#[test]
fn unknown_dimension_is_rejected() {
    expect_failure(
        "optimize-referrals",
        shared_data().to_str().unwrap(),
        &["--dimensions", "channel,chanel"],
        3,
        &[
            "unknown dimension `chanel`",
            "channel, persona, region, partner-tier",
        ],
    );
}

#[test]
fn invalid_as_of_and_missing_pipeline_are_rejected() {
    expect_failure(
        "optimize-referrals",
        shared_data().to_str().unwrap(),
        &["--as-of", "2026-13-01"],
        3,
        &["invalid --as-of `2026-13-01`"],
    );
    expect_failure(
        "no-such-pipeline",
        shared_data().to_str().unwrap(),
        &[],
        3,
        &["no-such-pipeline.yaml not found"],
    );
}

#[test]
fn sql_error_fails_the_stage_without_retries_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = pipeline_copy(dir.path(), |y| {
        y.replace("Analyzes referral", "Copy: analyzes referral")
    });
    let funnel = dir.path().join("sql/funnel.sql");
    let sql = std::fs::read_to_string(&funnel).unwrap().replacen(
        "SUM(invites) AS invites",
        "SUM(invitez) AS invites",
        1,
    );
    std::fs::write(&funnel, sql).unwrap();
    expect_failure(
        &pipeline,
        shared_data().to_str().unwrap(),
        &[],
        6,
        &["stage `funnel` after 1 attempt(s)", "invitez"],
    );
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
