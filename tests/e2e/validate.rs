//! `refopt validate` and `refopt explain`: the shipped configuration is clean, and a corpus of
//! broken configurations each gets its exact located message and exit code 1.

use std::path::Path;

use crate::harness::*;

/// One broken configuration: `find` is replaced by `replace` in `file` of a copy of
/// `pipelines/` and `rules/`; validation must print `expect` (the first line of the problem).
struct BrokenCase {
    name: &'static str,
    file: &'static str,
    find: &'static str,
    replace: &'static str,
    expect: &'static str,
}

const CORPUS: &[BrokenCase] = &[
    BrokenCase {
        name: "sql_column_typo",
        file: "pipelines/sql/risk_referrals.sql",
        find: "SELECT r.referral_id, r.referrer_id",
        replace: "SELECT r.referral_id, r.refferer_id",
        expect: "pipelines/sql/risk_referrals.sql:5:25: error[RF007]: stage `risk_referrals`: SQL does not plan: Schema error: No field named r.refferer_id. Did you mean 'r.referrer_id'?",
    },
    BrokenCase {
        name: "pipeline_unknown_key",
        file: "pipelines/optimize-referrals.yaml",
        find: "    sql_file: sql/kpis.sql\n",
        replace: "    sql_file: sql/kpis.sql\n    retyr: { limit: 3 }\n",
        expect: "pipelines/optimize-referrals.yaml:226:5: error[RF002]: unknown field `retyr`, expected one of id, description, kind, sql, sql_file, depends_on, retry, publishes, scope",
    },
    BrokenCase {
        name: "pipeline_cycle",
        file: "pipelines/optimize-referrals.yaml",
        find: "    sql_file: sql/funnel_cube.sql\n    depends_on: [data_refresh, invite_days]",
        replace: "    sql_file: sql/funnel_cube.sql\n    depends_on: [data_refresh, invite_days, funnel]",
        expect: "pipelines/optimize-referrals.yaml:216:9: error[RF004]: dependency cycle: funnel -> funnel_cube -> funnel",
    },
    BrokenCase {
        name: "pipeline_unknown_dependency",
        file: "pipelines/optimize-referrals.yaml",
        find: "    sql_file: sql/kpis.sql\n    depends_on: [funnel_cube]",
        replace: "    sql_file: sql/kpis.sql\n    depends_on: [funnel_cub]",
        expect: "pipelines/optimize-referrals.yaml:226:18: error[RF006]: stage `kpis` depends on unknown stage `funnel_cub` (did you mean `funnel_cube`?)",
    },
    BrokenCase {
        name: "range_stage_depends_on_window_stage",
        file: "pipelines/optimize-referrals.yaml",
        find: "    sql_file: sql/invite_days.sql\n    scope: range\n",
        replace: "    sql_file: sql/invite_days.sql\n    scope: range\n    depends_on: [data_refresh]\n",
        expect: "pipelines/optimize-referrals.yaml:197:9: error[RF004]: stage `invite_days` has `scope: range` but depends on `data_refresh`, a window stage: a range stage is computed once for all windows of a backfill, so it may depend on range stages only",
    },
    BrokenCase {
        name: "fraud_rule_empty_key",
        file: "rules/fraud.yaml",
        find: "    key: device_id\n",
        replace: "    key: []\n",
        expect: "rules/fraud.yaml:22:9: error[RF004]: rule `device_shared_across_referrers`: `key` names no column; name the column(s) whose value links a row of `risk_devices` to the window's referrals",
    },
    BrokenCase {
        name: "column_unknown_type",
        file: "pipelines/optimize-referrals.yaml",
        find: "      - sent_at: timestamp",
        replace: "      - sent_at: timestmp",
        expect: "pipelines/optimize-referrals.yaml:26:9: error[RF006]: dataset `invites`: column `sent_at` has unknown type `timestmp` (did you mean `timestamp`?); types: string, int64, float64, money, bool, timestamp, date",
    },
    BrokenCase {
        name: "data_test_unknown_kind",
        file: "pipelines/optimize-referrals.yaml",
        find: "      - { test: unique, column: payout_id }",
        replace: "      - { test: uniq, column: payout_id }",
        expect: "pipelines/optimize-referrals.yaml:91:17: error[RF006]: dataset `payouts`: unknown test `uniq` (did you mean `unique`?)",
    },
    BrokenCase {
        name: "data_test_unknown_column",
        file: "pipelines/optimize-referrals.yaml",
        find: "      - { test: unique, column: referral_id }",
        replace: "      - { test: unique, column: referal_id }",
        expect: "pipelines/optimize-referrals.yaml:54:33: error[RF006]: dataset `referrals`: test names column `referal_id`, which is not among its required_columns (did you mean `referral_id`?)",
    },
    BrokenCase {
        name: "data_test_unknown_parent_dataset",
        file: "pipelines/optimize-referrals.yaml",
        find: "      - { test: relationships, column: referral_id, to: referrals, field: referral_id }",
        replace: "      - { test: relationships, column: referral_id, to: referals, field: referral_id }",
        expect: "pipelines/optimize-referrals.yaml:72:9: error[RF006]: dataset `conversions`: relationships test names unknown dataset `referals` (did you mean `referrals`?)",
    },
    BrokenCase {
        name: "data_test_error_after_before_warn_after",
        file: "pipelines/optimize-referrals.yaml",
        find: "      - { test: freshness, warn_after: 26h, error_after: 3d }",
        replace: "      - { test: freshness, warn_after: 26h, error_after: 12h }",
        expect: "pipelines/optimize-referrals.yaml:30:9: error[RF004]: dataset `invites`: `error_after` is less than `warn_after`",
    },
    BrokenCase {
        name: "rhai_syntax_error",
        file: "rules/fraud.yaml",
        find: "row.won >= params.min_wins &&",
        replace: "row.won >= params.min_wins &&&",
        expect: "rules/fraud.yaml:193:36: error[RF008]: rule `partner_payouts_out_of_proportion`: Rhai syntax error: Unexpected '&'",
    },
    BrokenCase {
        name: "rhai_row_field_typo",
        file: "rules/fraud.yaml",
        find: "row.won >= params.min_wins",
        replace: "row.wins >= params.min_wins",
        expect: "rules/fraud.yaml:193:11: error[RF006]: rule `partner_payouts_out_of_proportion`: `row.wins` is not a column of `risk_partners`",
    },
    BrokenCase {
        name: "rhai_params_undeclared",
        file: "rules/fraud.yaml",
        find: "row.minutes_to_qualified < params.max_minutes)",
        replace: "row.minutes_to_qualified < params.max_minute)",
        expect: "rules/fraud.yaml:178:80: error[RF006]: rule `qualified_within_an_hour`: `params.max_minute` is not declared in the rule's `params`",
    },
    BrokenCase {
        name: "fraud_unknown_table",
        file: "rules/fraud.yaml",
        find: "    table: risk_devices",
        replace: "    table: risk_device",
        expect: "rules/fraud.yaml:22:9: error[RF006]: rule `device_shared_across_referrers` reads unknown table `risk_device` (did you mean `risk_devices`?)",
    },
    BrokenCase {
        name: "fraud_condition_column",
        file: "rules/fraud.yaml",
        find: "{ column: referrals_within_1h,",
        replace: "{ column: referrals_within_hour,",
        expect: "rules/fraud.yaml:131:9: error[RF006]: rule `referral_velocity_burst`: condition column `referrals_within_hour` is not a column of `risk_referral_velocity`",
    },
    BrokenCase {
        name: "fraud_unknown_key",
        file: "rules/fraud.yaml",
        find: "    score: 0.85",
        replace: "    score: 0.85\n    treshold: 2",
        expect: "rules/fraud.yaml:83:5: error[RF002]: unknown field `treshold`, expected one of id, description, severity, pattern, table, key, when, expression, params, score, enabled, time_limit_ms",
    },
    BrokenCase {
        name: "fraud_score_range",
        file: "rules/fraud.yaml",
        find: "    score: 0.85",
        replace: "    score: 8.5",
        expect: "rules/fraud.yaml:56:9: error[RF004]: rule `ring_component`: score 8.5 must be between 0 and 1",
    },
    BrokenCase {
        name: "fraud_duplicate_id",
        file: "rules/fraud.yaml",
        find: "  - id: card_shared_across_referrers",
        replace: "  - id: device_shared_across_referrers",
        expect: "rules/fraud.yaml:35:9: error[RF005]: rule `device_shared_across_referrers` is declared twice",
    },
    BrokenCase {
        name: "alert_unknown_owner",
        file: "rules/alerts.yaml",
        find: "    owner: lifecycle-ops",
        replace: "    owner: growth-team",
        expect: "rules/alerts.yaml:22:9: error[RF006]: alert `channel_signup_rate_low`: owner `growth-team` is neither a ladder owner nor a known agent (referral-architect, lifecycle-ops, fraud-detection, partner-ops)",
    },
    BrokenCase {
        name: "alert_inverted_thresholds",
        file: "rules/alerts.yaml",
        find: "    warn: 0.40\n    critical: 0.30",
        replace: "    warn: 0.30\n    critical: 0.40",
        expect: "rules/alerts.yaml:22:9: error[RF004]: alert `channel_signup_rate_low`: levels out of order: warn 0.3 critical 0.4 (for `direction: below`, critical must be at or below warn)",
    },
    BrokenCase {
        name: "alert_unknown_dimension",
        file: "rules/alerts.yaml",
        find: "    dimension: channel",
        replace: "    dimension: chanel",
        expect: "rules/alerts.yaml:22:9: error[RF006]: alert `channel_signup_rate_low`: unknown dimension `chanel`",
    },
    BrokenCase {
        name: "alert_unknown_metric",
        file: "rules/alerts.yaml",
        find: "    metric: funnel.referral_to_won",
        replace: "    metric: funnel.referal_to_won",
        expect: "rules/alerts.yaml:11:9: error[RF004]: alert `referral_to_won_low`: unknown metric `funnel.referal_to_won` (use funnel.<rate> with a rate of invite_to_referral, referral_to_signup, signup_to_qualified, qualified_to_opportunity, opportunity_to_won, referral_to_won, cost_per_won, revenue_per_payout_dollar, flag_rate, nps, or kpi.<metric>)",
    },
    BrokenCase {
        name: "playbook_unknown_function",
        file: "rules/playbook.rhai",
        find: "let items = [];",
        replace: "let items = []; http_post(\"https://example.com\");",
        expect: "rules/playbook.rhai:11:17: error[RF008]: playbook: calls `http_post`, which the rules sandbox does not provide",
    },
    BrokenCase {
        name: "partner_health_row_typo",
        file: "rules/partner_health.rhai",
        find: "coalesce(row.content_shares, 0)",
        replace: "coalesce(row.content_share, 0)",
        expect: "rules/partner_health.rhai:27:44: error[RF006]: partner health script: `row.content_share` is not a column of `partner_health`",
    },
    BrokenCase {
        name: "suppression_unknown_rule",
        file: "rules/suppressions.yaml",
        find: "suppressions: []",
        replace: "suppressions:\n  - id: office\n    column: ip\n    values: [203.0.113.10]\n    rules: [device_shared_across_referrer]\n    reason: HQ wifi\n    owner: fraud-detection\n    expires: 2027-01-31",
        expect: "rules/suppressions.yaml:17:9: error[RF006]: suppression `office` names unknown fraud rule `device_shared_across_referrer` (did you mean `device_shared_across_referrers`?)",
    },
    BrokenCase {
        name: "suppression_unknown_column",
        file: "rules/suppressions.yaml",
        find: "suppressions: []",
        replace: "suppressions:\n  - id: office\n    column: ip_address\n    values: [203.0.113.10]\n    reason: HQ wifi\n    owner: fraud-detection\n    expires: 2027-01-31",
        expect: "rules/suppressions.yaml:17:9: error[RF006]: suppression `office`: `ip_address` is not a column of `risk_referrals`",
    },
    BrokenCase {
        name: "ladder_unknown_key",
        file: "rules/ladder.yaml",
        find: "    fallback: lifecycle-ops",
        replace: "    fallback: lifecycle-ops\n    backup: partner-ops",
        expect: "rules/ladder.yaml:18:5: error[RF002]: unknown field `backup`, expected one of role, owner, fallback",
    },
    BrokenCase {
        name: "experiment_unknown_metric",
        file: "rules/experiments.yaml",
        find: "    secondary_metrics: [won]",
        replace: "    secondary_metrics: [wins]",
        expect: "rules/experiments.yaml:39:25: error[RF004]: experiment `exp_aa_holdout`: unknown metric `wins` (did you mean `won`?); known: referred, qualified, won, fraud_flag_rate, qualified_per_unit, revenue_per_unit, payout_cost_per_unit",
    },
    BrokenCase {
        name: "experiment_control_not_a_variant",
        file: "rules/experiments.yaml",
        find: "    control: a\n",
        replace: "    control: c\n",
        expect: "rules/experiments.yaml:36:14: error[RF004]: experiment `exp_aa_holdout`: control `c` is not one of the variants (a, b)",
    },
];

/// Copies `pipelines/` and `rules/` into `dir`.
fn copy_config(dir: &Path) {
    for folder in ["pipelines", "rules"] {
        copy_tree(&repo().join(folder), &dir.join(folder));
    }
}

fn edit(dir: &Path, file: &str, find: &str, replace: &str) {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(find), "`{find}` not found in {file}");
    std::fs::write(&path, text.replacen(find, replace, 1)).unwrap();
}

fn validate_in(dir: &Path, extra: &[&str]) -> std::process::Output {
    run(refopt().current_dir(dir).arg("validate").args(extra))
}

#[test]
fn shipped_configuration_is_valid() {
    let o = run(refopt().arg("validate"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("are valid"));
}

#[test]
fn every_broken_configuration_gets_its_located_message_and_exit_1() {
    assert!(CORPUS.len() >= 15);
    let mut failures = Vec::new();
    for case in CORPUS {
        let dir = tempfile::tempdir().unwrap();
        copy_config(dir.path());
        edit(dir.path(), case.file, case.find, case.replace);
        let o = validate_in(dir.path(), &[]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        let first = stderr.lines().next().unwrap_or_default();
        if o.status.code() != Some(1) || first != case.expect {
            failures.push(format!(
                "{}: exit {:?}\n  expected: {}\n  got:      {}",
                case.name,
                o.status.code(),
                case.expect,
                first
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn all_problems_are_reported_in_one_pass_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    copy_config(dir.path());
    for case in [
        "sql_column_typo",
        "rhai_row_field_typo",
        "alert_unknown_dimension",
    ] {
        let c = CORPUS.iter().find(|c| c.name == case).unwrap();
        edit(dir.path(), c.file, c.find, c.replace);
    }
    let o = validate_in(dir.path(), &["--format", "json"]);
    expect_exit(&o, 1);
    let problems: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let problems = problems.as_array().unwrap();
    assert_eq!(problems.len(), 3, "{problems:#?}");
    let files: Vec<&str> = problems
        .iter()
        .map(|p| p["file"].as_str().unwrap())
        .collect();
    assert!(files.contains(&"pipelines/sql/risk_referrals.sql"));
    assert!(files.contains(&"rules/fraud.yaml"));
    assert!(files.contains(&"rules/alerts.yaml"));
    assert!(problems.iter().all(|p| p["line"].as_u64().unwrap() > 0));
    assert!(problems.iter().any(|p| p["help"] == "did you mean `won`?"));
    assert!(
        problems.iter().all(|p| p["level"] == "error"),
        "{problems:#?}"
    );
    let codes: Vec<&str> = problems
        .iter()
        .map(|p| p["code"].as_str().unwrap())
        .collect();
    assert!(
        codes.contains(&"RF007") && codes.contains(&"RF006"),
        "{codes:?}"
    );

    let o = validate_in(dir.path(), &["--format", "github"]);
    expect_exit(&o, 1);
    let stdout = String::from_utf8_lossy(&o.stdout);
    let annotations: Vec<&str> = stdout.lines().collect();
    assert_eq!(annotations.len(), 3, "{stdout}");
    assert!(
        annotations.contains(
            &"::error file=rules/alerts.yaml,line=22,col=9,title=RF006::alert `channel_signup_rate_low`: unknown dimension `chanel`%0Ahelp: did you mean `channel`?"
        ),
        "{stdout}"
    );
}

#[test]
fn warnings_pass_unless_denied_and_carry_their_codes() {
    let dir = tempfile::tempdir().unwrap();
    copy_config(dir.path());
    // An expired suppression and a stage nothing reads.
    edit(
        dir.path(),
        "rules/suppressions.yaml",
        "suppressions: []",
        "suppressions:\n  - id: old-office\n    column: ip\n    values: [\"203.0.113.10\"]\n    reason: office wifi\n    owner: fraud-detection\n    expires: 2020-01-31",
    );
    edit(
        dir.path(),
        "pipelines/optimize-referrals.yaml",
        "stages:\n",
        "stages:\n  - id: scratch\n    sql: SELECT 1 AS one\n",
    );
    let o = validate_in(dir.path(), &[]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("rules/suppressions.yaml:17:9: warning[RF101]: suppression `old-office` expired on 2020-01-31"),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning[RF102]: stage `scratch`"),
        "{stderr}"
    );
    assert!(stderr.contains("2 warning(s)"), "{stderr}");

    let o = validate_in(dir.path(), &["--deny-warnings", "--format", "json"]);
    let err = expect_exit(&o, 1);
    assert!(err.contains("0 error(s), 2 warning(s)"), "{err}");
    let diagnostics: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let codes: Vec<&str> = diagnostics
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            assert_eq!(d["level"], "warning", "{d:#}");
            d["code"].as_str().unwrap()
        })
        .collect();
    assert_eq!(codes.len(), 2, "{diagnostics:#}");
    assert!(
        codes.contains(&"RF101") && codes.contains(&"RF102"),
        "{codes:?}"
    );

    let o = validate_in(dir.path(), &["--format", "github"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.lines().all(|l| l.starts_with("::warning file=")),
        "{stdout}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let o = run(refopt().args(["validate", "--format", "xml"]));
    expect_exit(&o, 2);
}

#[test]
fn validate_sample_runs_the_pipeline_on_generated_data_without_writing() {
    let dir = tempfile::tempdir().unwrap();
    copy_config(dir.path());
    let o = validate_in(dir.path(), &["--sample"]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("sample: the plan would hold 30 tasks"),
        "{stderr}"
    );
    assert!(plan_files(dir.path()).is_empty());
}

#[test]
fn explain_prints_bound_sql_and_plans_without_running() {
    let o = run(refopt().args([
        "explain",
        "risk_devices",
        "--as-of",
        "2026-06-01",
        "--window",
        "7d",
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("== stage risk_devices =="), "{stdout}");
    assert!(!stdout.contains("== stage risk_referrals =="), "{stdout}");
    assert!(stdout.contains("-- logical plan"), "{stdout}");
    assert!(stdout.contains("Aggregate:"), "{stdout}");

    // With data: the physical plan scans the real Parquet files, the dt filter is bound.
    let o = run(refopt().args([
        "explain",
        "risk_referrals",
        "--physical",
        "--root",
        shared_data().to_str().unwrap(),
        "--as-of",
        AS_OF,
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("r.dt >= '2026-05-02'"), "{stdout}");
    assert!(stdout.contains("DataSourceExec"), "{stdout}");
    assert!(stdout.contains(".parquet"), "{stdout}");

    let o = run(refopt().args(["explain", "risk_device"]));
    expect_exit(&o, 3);
    assert!(String::from_utf8_lossy(&o.stderr).contains("did you mean `risk_devices`?"));
}

#[test]
fn shipped_rule_tests_pass() {
    let o = run(refopt().arg("test"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(!stdout.contains("FAIL"), "{stdout}");
    // Every shipped fraud rule has at least one case that expects it to fire.
    let cases = std::fs::read_to_string(repo().join("rules/tests/fraud.yaml")).unwrap();
    let fraud = std::fs::read_to_string(repo().join("rules/fraud.yaml")).unwrap();
    for line in fraud.lines() {
        if let Some(id) = line.trim().strip_prefix("- id: ") {
            assert!(
                cases.contains(&format!("[{id}]")) || cases.contains(&format!("{id}]")),
                "no test expects rule {id} to fire"
            );
        }
    }
}

#[test]
fn a_wrong_expectation_fails_with_a_readable_diff() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("wrong.yaml");
    std::fs::write(
        &file,
        "version: 1\ntests:\n  - name: expects the busy hour to be flagged too\n    fraud:\n      tables:\n        risk_referral_velocity:\n          - { referral_id: r1, referrer_id: u1, referrals_within_1h: 12, burst_referrals: 12, burst_networks: 1, burst_devices: 12, burst_fast_signup_share: 0.0 }\n          - { referral_id: r3, referrer_id: u2, referrals_within_1h: 5, burst_referrals: 5, burst_networks: 1, burst_devices: 5, burst_fast_signup_share: 0.0 }\n      referrals:\n        - { referral_id: r1, referrer_id: u1 }\n        - { referral_id: r3, referrer_id: u2 }\n      expect:\n        flagged:\n          r1: [referral_velocity_burst]\n          r3: [referral_velocity_burst]\n",
    )
    .unwrap();
    let o = run(refopt().args(["test", file.to_str().unwrap()]));
    expect_exit(&o, 1);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("FAIL expects the busy hour to be flagged too"),
        "{stdout}"
    );
    assert!(stdout.contains("wrong.yaml:3:11"), "{stdout}");
    assert!(
        stdout.contains("--- expected") && stdout.contains("+++ actual"),
        "{stdout}"
    );
    // The diff shows the referral that was expected but not flagged, and nothing else removed.
    let removed: Vec<&str> = stdout
        .lines()
        .map(str::trim_start)
        .filter(|l| l.starts_with('-') && !l.starts_with("---"))
        .collect();
    assert!(removed.iter().any(|l| l.contains("\"r3\"")), "{stdout}");
    assert!(stdout.contains("0 passed, 1 failed"), "{stdout}");
}
