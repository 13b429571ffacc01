//! Rule features beyond the fraud heuristics themselves: suppressions with expiry, the threshold
//! sensitivity sweep, payout concentration (checked against DuckDB), partner health scoring,
//! the playbook's backlog, and rules read from an object store.

use std::path::Path;
use std::process::Command;

use crate::harness::*;

/// Copies `rules/` into `dir`, then applies `edit(file name, text)` to every file.
fn rules_copy_with(dir: &Path, edit: impl Fn(&str, String) -> String) -> String {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(repo().join("rules")).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            let name = entry.file_name().to_string_lossy().to_string();
            let text = std::fs::read_to_string(entry.path()).unwrap();
            std::fs::write(dir.join(&name), edit(&name, text)).unwrap();
        }
    }
    dir.to_str().unwrap().to_string()
}

fn plan_with(rules: &str, extra: &[&str]) -> serde_json::Value {
    let plans = tempfile::tempdir().unwrap();
    let mut args = vec!["--rules", rules];
    args.extend_from_slice(extra);
    let (plan, _) = run_pipeline(
        shared_data().to_str().unwrap(),
        plans.path().to_str().unwrap(),
        &args,
        &[],
    );
    assert_valid_plan(&plan);
    plan
}

fn rule<'a>(plan: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    plan["risk"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["rule_id"] == id)
        .unwrap_or_else(|| panic!("rule {id} in plan"))
}

fn suppression_file(device: &str, expires: &str) -> String {
    format!(
        "version: 1\nsuppressions:\n  - id: family-tablet\n    column: device_id\n    values: [\"{device}\"]\n    rules: [self_referral_same_device_and_card]\n    reason: one household's shared tablet, reviewed by fraud-detection\n    owner: fraud-detection\n    expires: {expires}\n"
    )
}

#[test]
fn suppressions_apply_until_they_expire_and_are_reported_after() {
    let baseline = plan_with(repo().join("rules").to_str().unwrap(), &[]);
    let rule_id = "self_referral_same_device_and_card";
    let before = rule(&baseline, rule_id)["referrals_flagged"]
        .as_u64()
        .unwrap();
    let cohort = baseline["risk"]["cohorts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| {
            c["rule_ids"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r == rule_id)
        })
        .expect("a cohort flagged by the self-referral rule");
    let device = cohort["devices"][0].as_str().unwrap();

    // Active (expires after the run's as-of date): the device's referrals are no longer flagged
    // by the named rule; the plan says how many were kept out.
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_copy_with(dir.path(), |_, t| t);
    std::fs::write(
        dir.path().join("suppressions.yaml"),
        suppression_file(device, "2099-12-31"),
    )
    .unwrap();
    let active = plan_with(&rules, &[]);
    let after = rule(&active, rule_id)["referrals_flagged"]
        .as_u64()
        .unwrap();
    let report = &active["risk"]["suppressions"][0];
    assert_eq!(report["status"], "active", "{report:#}");
    let matched = report["referrals_matched"].as_u64().unwrap();
    assert!(matched > 0, "{report:#}");
    assert_eq!(after, before - matched, "{report:#}");
    assert!(
        !active["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["kind"] == "suppression_expired")
    );

    // Expired (before the as-of date): it stops applying, and the plan reports it as a finding
    // and a backlog item for its owner.
    std::fs::write(
        dir.path().join("suppressions.yaml"),
        suppression_file(device, "2026-01-31"),
    )
    .unwrap();
    let expired = plan_with(&rules, &[]);
    assert_eq!(
        rule(&expired, rule_id)["referrals_flagged"]
            .as_u64()
            .unwrap(),
        before
    );
    let report = &expired["risk"]["suppressions"][0];
    assert_eq!(report["status"], "expired", "{report:#}");
    assert_eq!(report["referrals_matched"].as_u64().unwrap(), matched);
    assert!(
        expired["findings"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"] == "suppression/family-tablet" && f["kind"] == "suppression_expired"),
        "{:#}",
        expired["findings"]
    );
    assert!(
        expired["backlog"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["title"]
                .as_str()
                .unwrap()
                .contains("expired suppression family-tablet")),
        "{:#}",
        expired["backlog"]
    );
}

#[test]
fn a_suppression_naming_an_unknown_rule_is_a_located_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_copy_with(dir.path(), |_, t| t);
    std::fs::write(
        dir.path().join("suppressions.yaml"),
        suppression_file("dev_x", "2099-12-31").replace(
            "self_referral_same_device_and_card",
            "self_referral_same_device_and_crad",
        ),
    )
    .unwrap();
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
    let err = expect_exit(&o, 3);
    assert!(err.contains("suppressions.yaml:3:"), "{err}");
    assert!(
        err.contains("did you mean `self_referral_same_device_and_card`"),
        "{err}"
    );
    assert!(plan_files(plans.path()).is_empty());
}

#[test]
fn sensitivity_sweep_reports_flags_around_the_threshold_at_full_detail() {
    // Move the velocity threshold into the range where legitimate referrers live and accept
    // every burst (not only narrow ones), so scaling the threshold must change the count; the
    // sweep reports counts at 0.8x and 1.25x.
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_copy_with(dir.path(), |name, t| {
        if name == "fraud.yaml" {
            let edited = t
                .replace(
                    "{ column: referrals_within_1h, op: \">=\", value: 8 }",
                    "{ column: referrals_within_1h, op: \">=\", value: 2 }",
                )
                .replace(
                    "      row.burst_networks <= params.max_distinct_share * row.burst_referrals",
                    "      true || row.burst_networks <= params.max_distinct_share * row.burst_referrals",
                );
            assert_ne!(edited, t);
            edited
        } else {
            t
        }
    });
    let full = plan_with(&rules, &["--detail", "full"]);
    let rows = full["risk"]["sensitivity"].as_array().unwrap();
    let velocity = rows
        .iter()
        .find(|r| r["rule_id"] == "referral_velocity_burst")
        .unwrap_or_else(|| panic!("velocity rule swept: {rows:#?}"));
    let at = |f: f64| {
        velocity["scaled"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["factor"].as_f64() == Some(f))
            .and_then(|p| p["referrals_flagged"].as_u64())
            .unwrap()
    };
    let base = velocity["at_threshold"].as_u64().unwrap();
    assert_eq!(
        base,
        rule(&full, "referral_velocity_burst")["referrals_flagged"]
            .as_u64()
            .unwrap()
    );
    // A `>=` rule flags more with a lower line: 1.6 (>= 2) flags the same as 2 is impossible
    // to tell apart for integer counts, but 2.5 (>= 3) must flag fewer than 2.
    assert!(at(0.8) >= base && base > at(1.25), "{velocity:#}");
    // Expression rules are swept through their params.
    assert!(
        rows.iter()
            .any(|r| r["rule_id"] == "qualified_within_an_hour"),
        "{rows:#?}"
    );
    // Summary detail skips the sweep.
    let summary = plan_with(&rules, &["--detail", "summary"]);
    assert!(
        summary["risk"]["sensitivity"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn payout_concentration_matches_duckdb() {
    let plan = plan_with(repo().join("rules").to_str().unwrap(), &[]);
    let program = plan["risk"]["payout_concentration"]["program"]
        .as_array()
        .unwrap();
    assert_eq!(program.len(), 2, "{program:#?}");
    let root = shared_data().to_str().unwrap();
    let end_of_window = format!("{AS_OF}T00:00:00Z");
    let script = format!(
        r#"
import duckdb, json
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
rows = con.sql("""
  WITH p AS (
    SELECT recipient_type, recipient_id, SUM(amount) AS x
    FROM read_parquet('{root}/payouts/*/*.parquet', hive_partitioning = true)
    WHERE created_at >= TIMESTAMPTZ '{start}' AND created_at < TIMESTAMPTZ '{end}'
      AND status <> 'reversed'
    GROUP BY ALL
  )
  SELECT recipient_type, list(x ORDER BY x) FROM p GROUP BY recipient_type
""").fetchall()
out = {{}}
for scope, xs in rows:
    n, total = len(xs), sum(xs)
    gini = 2 * sum((i + 1) * x for i, x in enumerate(xs)) / (n * total) - (n + 1) / n
    top = sorted(xs, reverse=True)
    out[scope] = dict(recipients=n, payouts=total, top1_share=top[0] / total,
                      top5_share=sum(top[:5]) / total, gini=gini)
print(json.dumps(out))
"#,
        start = plan["inputs"]["window_start"].as_str().unwrap(),
        end = end_of_window,
    );
    let o = run(Command::new(python()).args(["-c", &script]));
    assert!(o.status.success(), "{}", text(&o));
    let reference: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for row in program {
        let scope = row["scope"].as_str().unwrap();
        let expected = &reference[scope];
        for key in ["recipients", "payouts", "top1_share", "top5_share", "gini"] {
            // Payouts are plan money (a decimal string), the rest numbers.
            let a = row[key].as_f64().unwrap_or_else(|| money(&row[key]));
            let b = expected[key].as_f64().unwrap();
            assert!(
                (a - b).abs() <= 1e-9 * b.abs().max(1.0),
                "{scope}.{key}: refopt {a}, DuckDB {b}"
            );
        }
    }
}

/// A copy of the shared data in which one partner fails a KYC check inside the window (the
/// shared data has no partner failing compliance); returns the root and the partner's id.
fn data_with_kyc_failure(dir: &Path) -> (String, String) {
    copy_tree(shared_data(), dir);
    let root = dir.to_str().unwrap();
    let script = format!(
        r#"
import duckdb
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
row = con.sql("""
  SELECT * REPLACE ('fail' AS status, event_id || '-planted' AS event_id)
  FROM read_parquet('{root}/compliance_events/*/*.parquet', hive_partitioning = true)
  WHERE subject_type = 'partner' AND status = 'pass' AND "at" >= TIMESTAMPTZ '{AS_OF}' - INTERVAL 20 DAY
    AND subject_id IN (SELECT partner_id FROM read_parquet('{root}/partners/*.parquet') WHERE status = 'active')
  ORDER BY "at", subject_id LIMIT 1
""")
partner, day = con.sql("SELECT subject_id, dt FROM row").fetchone()
con.sql("SELECT * EXCLUDE (dt) FROM row").write_parquet(f"{root}/compliance_events/dt={{day}}/planted.parquet")
print(partner)
"#
    );
    let o = run(Command::new(python()).args(["-c", &script]));
    assert!(o.status.success(), "planting failed\n{}", text(&o));
    (
        root.to_string(),
        String::from_utf8_lossy(&o.stdout).trim().to_string(),
    )
}

#[test]
fn partner_health_scores_follow_the_script_and_compliance_failures_are_at_risk() {
    let data = tempfile::tempdir().unwrap();
    let (root, failing_partner) = data_with_kyc_failure(data.path());
    let plans = tempfile::tempdir().unwrap();
    let rules = repo().join("rules");
    let (plan, _) = run_pipeline(
        &root,
        plans.path().to_str().unwrap(),
        &["--rules", rules.to_str().unwrap(), "--detail", "full"],
        &[],
    );
    let health = &plan["partner_health"];
    assert!(health["error"].is_null(), "{health:#}");
    let partners = health["partners"].as_array().unwrap();
    assert_eq!(
        partners.len() as u64,
        health["partners_evaluated"].as_u64().unwrap()
    );
    let mut failing_partners = 0;
    for p in partners {
        let score = p["health_score"].as_f64().unwrap();
        assert!((0.0..=100.0).contains(&score), "{p:#}");
        let failing = p["kyc_failures"].as_i64().unwrap_or(0) > 0
            || (p["disclosure_checks"].as_i64().unwrap_or(0) >= 10
                && p["disclosure_failure_rate"].as_f64().unwrap_or(0.0) > 0.10);
        if failing {
            failing_partners += 1;
            assert!(score <= 40.0, "failing compliance, scored {score}: {p:#}");
            assert!(
                health["at_risk"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|a| a["partner_id"] == p["partner_id"]),
                "failing compliance but not at risk: {p:#}"
            );
        }
    }
    // The planted failure is among them (else the checks above checked nothing).
    assert!(
        failing_partners > 0,
        "no partner fails compliance: {health:#}"
    );
    assert!(
        partners
            .iter()
            .any(|p| p["partner_id"] == failing_partner.as_str()
                && p["kyc_failures"].as_i64().unwrap_or(0) > 0),
        "planted KYC failure of {failing_partner} not in the partner rows"
    );
    // Top and bottom lists are ordered by score.
    let scores = |list: &str| -> Vec<f64> {
        health[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["score"].as_f64().unwrap())
            .collect()
    };
    assert!(scores("top").windows(2).all(|w| w[0] >= w[1]));
    assert!(scores("bottom").windows(2).all(|w| w[0] <= w[1]));

    // One line of the script changes the next run's scores (no rebuild): a cap at 50 that
    // binds, since active partners scored above it before.
    let above_cap: Vec<&serde_json::Value> = partners
        .iter()
        .filter(|p| p["status"] == "active" && p["health_score"].as_f64().unwrap() > 50.0)
        .collect();
    assert!(
        !above_cap.is_empty(),
        "no active partner scored above 50: {health:#}"
    );
    let dir = tempfile::tempdir().unwrap();
    let rules = rules_copy_with(dir.path(), |name, t| {
        if name == "partner_health.rhai" {
            let edited = t.replace(
                "if row.status != \"active\" { score * 0.5 } else { score }",
                "if row.status != \"active\" { score * 0.5 } else { min(score, 50.0) }",
            );
            assert_ne!(edited, t);
            edited
        } else {
            t
        }
    });
    let capped = plan_with(&rules, &["--detail", "full"]);
    let capped_partners = capped["partner_health"]["partners"].as_array().unwrap();
    for p in capped_partners {
        assert!(p["health_score"].as_f64().unwrap() <= 50.0, "{p:#}");
    }
    for p in above_cap {
        let after = capped_partners
            .iter()
            .find(|c| c["partner_id"] == p["partner_id"])
            .unwrap_or_else(|| panic!("partner still scored: {p:#}"));
        assert!(
            after["health_score"].as_f64().unwrap() < p["health_score"].as_f64().unwrap(),
            "score lowered by the edit: before {p:#}, after {after:#}"
        );
    }
    assert!(
        capped["partner_health"]["tier_changes"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["to"] != "platinum"),
        "nobody is promoted at a score of 50"
    );
}

#[test]
fn playbook_backlog_is_deterministic_owned_and_ordered() {
    let a = plan_with(repo().join("rules").to_str().unwrap(), &[]);
    let b = plan_with(repo().join("rules").to_str().unwrap(), &[]);
    let backlog = a["backlog"].as_array().unwrap();
    assert!(!backlog.is_empty(), "{a:#}");
    assert_eq!(a["backlog"], b["backlog"], "same inputs, same backlog");
    let agents = [
        "referral-architect",
        "lifecycle-ops",
        "fraud-detection",
        "partner-ops",
    ];
    for item in backlog {
        assert!(
            agents.contains(&item["owner"].as_str().unwrap()),
            "{item:#}"
        );
        assert!(!item["lift_formula"].as_str().unwrap().is_empty());
    }
    let priorities: Vec<u64> = backlog
        .iter()
        .map(|i| i["priority"].as_u64().unwrap())
        .collect();
    assert!(
        priorities.windows(2).all(|w| w[0] <= w[1]),
        "{priorities:?}"
    );
    // The payout hold recommendation carries the plan's numbers.
    let hold = a["risk"]["payout_hold"].as_object().unwrap_or_else(|| {
        panic!(
            "the shared data has flagged referrals to hold: {:#}",
            a["risk"]
        )
    });
    let referrals = hold["referrals"].as_u64().unwrap();
    assert!(
        backlog.iter().any(|i| i["title"]
            .as_str()
            .unwrap()
            .contains(&format!("on {referrals} flagged referrals"))),
        "{backlog:#?}"
    );
}

/// Uploads every file under `dir` (subfolders included) to `s3://bucket/prefix/` on moto.
fn upload(moto: &Moto, dir: &Path, bucket: &str, prefix: &str) {
    let script = format!(
        "import boto3, os, sys\n\
         c = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1')\n\
         d = sys.argv[1]\n\
         for root, _, files in os.walk(d):\n    for n in files:\n        p = os.path.join(root, n)\n        c.upload_file(p, '{bucket}', '{prefix}/' + os.path.relpath(p, d))\n",
        moto.endpoint
    );
    let o = run(Command::new(python()).args(["-c", &script, dir.to_str().unwrap()]));
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn rules_are_read_from_an_object_store_url() {
    let moto = Moto::start("ops");
    let env = moto.env();
    upload(&moto, &repo().join("rules"), "ops", "rules");
    let plans = tempfile::tempdir().unwrap();
    let (remote, _) = run_pipeline(
        shared_data().to_str().unwrap(),
        plans.path().to_str().unwrap(),
        &["--rules", "s3://ops/rules"],
        &env,
    );
    assert_eq!(remote["inputs"]["rules"], "s3://ops/rules");
    let local = plan_with(repo().join("rules").to_str().unwrap(), &[]);
    assert_eq!(remote["risk"]["rules"], local["risk"]["rules"]);
    assert_eq!(remote["findings"], local["findings"]);

    // A broken file in the bucket is reported at its object URL, line and column.
    let broken = tempfile::tempdir().unwrap();
    rules_copy_with(broken.path(), |name, t| {
        if name == "alerts.yaml" {
            t.replacen("version: 1", "version: 1\nunknown_key: true", 1)
        } else {
            t
        }
    });
    upload(&moto, broken.path(), "ops", "broken");
    let o = run(refopt()
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
            "s3://ops/broken",
        ])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str()))));
    let err = expect_exit(&o, 3);
    assert!(err.contains("s3://ops/broken/alerts.yaml:"), "{err}");
    assert!(err.contains("unknown_key"), "{err}");
}
