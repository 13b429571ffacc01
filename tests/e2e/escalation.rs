//! Escalations count breach periods of as-of dates, never plans: reruns of one date stay where
//! one breach puts them, a daily series with one incident pulls the rip-cord once, climbs while
//! nobody acknowledges it and records its recovery, and a backfill over the same dates agrees.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::harness::*;

const WON_LOW: &str = "alert:referral_to_won_low:all";

/// `refopt run` at `as_of` with the plan JSON on stdout.
fn run_at(root: &Path, plans: &Path, as_of: &str, extra: &[&str]) -> Value {
    let mut cmd = refopt();
    cmd.args(["run", "optimize-referrals", "--root"])
        .arg(root)
        .arg("--plans")
        .arg(plans)
        .args(["--as-of", as_of, "--output", "json"])
        .args(extra);
    let o = run(&mut cmd);
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// The plan's episode of `trigger`, if any.
fn episode<'a>(plan: &'a Value, trigger: &str) -> Option<&'a Value> {
    plan["escalation_state"]["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["trigger"] == trigger)
}

fn escalation<'a>(plan: &'a Value, trigger: &str) -> Option<&'a Value> {
    plan["escalations"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["trigger"] == trigger)
}

#[test]
fn force_reruns_of_one_date_never_climb_the_ladder_and_an_ack_holds_the_level() {
    let plans = tempfile::tempdir().unwrap();
    let root = shared_data();
    // --alert-threshold replaces the warn level of referral_to_won_low: 99% is always breached.
    let breach = ["--alert-threshold", "0.99", "--force"];
    for i in 0..4 {
        let plan = run_at(root, plans.path(), "2026-05-30", &breach);
        assert_eq!(plan["version"], i + 1);
        assert!(
            plan["escalations"].as_array().unwrap().is_empty(),
            "rerun {i}: {:#}",
            plan["escalation_state"]
        );
        assert_ne!(plan["status"], "escalated");
        let e = episode(&plan, WON_LOW).expect("the breach opens an episode");
        assert_eq!(e["state"], "breaching");
        assert_eq!(e["level"], 0);
        assert_eq!(e["breaches"].as_array().unwrap().len(), 1);
        assert_eq!(e["transition"], "opened");
        assert_eq!(e["announce"], i == 0, "only the first run announces it");
    }

    // The next day is a second breach period: the rip-cord, level 1, naming both days' runs.
    let day2 = run_at(root, plans.path(), "2026-05-31", &breach);
    assert_eq!(day2["status"], "escalated");
    let e = escalation(&day2, WON_LOW).expect("breached twice");
    assert_eq!(e["level"], 1);
    assert_eq!(e["role"], "Referral Architect");
    assert_eq!(e["fallback_owner"], "lifecycle-ops");
    assert_eq!(e["episode_opened"], "2026-05-30");
    assert_eq!(e["run_ids"].as_array().unwrap().len(), 2);
    assert_eq!(episode(&day2, WON_LOW).unwrap()["transition"], "rip_cord");

    // Someone takes it in hand: the next day it stays at level 1 instead of climbing.
    let p = plans.path().to_str().unwrap();
    let o = run(refopt().args(["plan", "ack", "alert:nope:all", "--by", "ana", "--plans", p]));
    let stderr = expect_exit(&o, 1);
    assert!(
        stderr.contains("no open escalation `alert:nope:all`") && stderr.contains(WON_LOW),
        "{stderr}"
    );
    for expected in ["acknowledged by ana at level 1", "already acknowledged"] {
        let o = run(refopt().args([
            "plan", "ack", WON_LOW, "--by", "ana", "--note", "on it", "--plans", p,
        ]));
        assert!(o.status.success(), "{}", text(&o));
        assert!(
            String::from_utf8_lossy(&o.stdout).contains(expected),
            "{}",
            text(&o)
        );
    }
    let day3 = run_at(root, plans.path(), AS_OF, &breach);
    let e = escalation(&day3, WON_LOW).unwrap();
    assert_eq!(e["level"], 1, "acknowledged: no rung up");
    let ack = &episode(&day3, WON_LOW).unwrap()["acknowledged"];
    assert_eq!(
        (ack["by"].as_str(), ack["level"].as_u64()),
        (Some("ana"), Some(1))
    );
}

/// Rewrites the NPS responses of `days`: the partner responses become five per respondent of
/// the day, scoring 0 on `incident` days and 9 on the others (a controlled partner NPS).
fn plant_partner_nps(root: &Path, days: &[String], incident: &[String]) {
    let script = r#"
import duckdb, glob, os, sys
root, days, incident = sys.argv[1], sys.argv[2].split(','), set(sys.argv[3].split(','))
for d in days:
    for f in glob.glob(f"{root}/nps_responses/dt={d}/*.parquet"):
        score = 0 if d in incident else 9
        tmp = f + ".tmp"
        duckdb.sql(f"""COPY (
            SELECT * FROM read_parquet('{f}', hive_partitioning=false) WHERE respondent_type <> 'partner'
            UNION ALL
            SELECT r.* REPLACE ('planted-' || r.response_id || '-' || t.i AS response_id,
                                'partner' AS respondent_type, CAST({score} AS BIGINT) AS score)
            FROM read_parquet('{f}', hive_partitioning=false) r, range(5) t(i)
        ) TO '{tmp}' (FORMAT parquet)""")
        os.replace(tmp, f)
"#;
    let o = run(Command::new(python()).args([
        "-c",
        script,
        root.to_str().unwrap(),
        &days.join(","),
        &incident.join(","),
    ]));
    assert!(o.status.success(), "{}", text(&o));
}

/// What a plan says about escalations, comparable between a series and a backfill.
fn escalation_summary(plan: &Value) -> Value {
    let episodes: Vec<Value> = plan["escalation_state"]["episodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            serde_json::json!([
                e["trigger"],
                e["state"],
                e["transition"],
                e["level"],
                e["opened"],
                e["recovered"]
            ])
        })
        .collect();
    serde_json::json!({"status": plan["status"], "episodes": episodes})
}

#[test]
fn one_incident_in_a_daily_series_pulls_one_rip_cord_and_a_backfill_agrees() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("data");
    copy_tree(shared_data(), &root);
    let day = |d: u32| format!("2026-05-{d:02}");
    // Data days 9..=22 are the 1-day windows of as-of dates 10..=23; the incident is on data
    // days 14..=16, so as-of dates 15, 16 and 17 breach.
    let days: Vec<String> = (9..=22).map(day).collect();
    let incident: Vec<String> = (14..=16).map(day).collect();
    plant_partner_nps(&root, &days, &incident);

    // One alert on partner NPS; the fraud spike is out of reach (1-day flag rates are noisy).
    let rules = work.path().join("rules");
    copy_tree(&repo().join("rules"), &rules);
    std::fs::write(
        rules.join("alerts.yaml"),
        "version: 1\nmin_sample: 1\nalerts:\n  - id: partner_nps_incident\n    description: Partner NPS collapsed.\n    metric: kpi.partner_nps\n    direction: below\n    warn: -40\n    critical: -60\n    owner: partner-ops\n",
    )
    .unwrap();
    let ladder = std::fs::read_to_string(rules.join("ladder.yaml")).unwrap();
    std::fs::write(
        rules.join("ladder.yaml"),
        ladder.replace("multiplier: 2.0", "multiplier: 1000.0"),
    )
    .unwrap();
    let trigger = "alert:partner_nps_incident:all";
    let r = rules.to_str().unwrap();
    let common = ["--window", "1d", "--rules", r];

    let plans = work.path().join("series");
    let mut series = BTreeMap::new();
    for d in 10..=23 {
        series.insert(day(d), run_at(&root, &plans, &day(d), &common));
    }
    let breached: Vec<&String> = series
        .iter()
        .filter(|(_, p)| {
            p["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["id"] == "partner_nps_incident")
        })
        .map(|(d, _)| d)
        .collect();
    assert_eq!(
        breached,
        [&day(15), &day(16), &day(17)],
        "the planted incident"
    );

    let at = |d: u32| &series[&day(d)];
    let state = |d: u32| {
        episode(at(d), trigger).map(|e| {
            (
                e["state"].as_str().unwrap().to_string(),
                e["transition"].as_str().unwrap().to_string(),
                e["level"].as_u64().unwrap(),
            )
        })
    };
    let s = |state: &str, transition: &str, level: u64| {
        Some((state.to_string(), transition.to_string(), level))
    };
    for d in 10..=14 {
        assert_eq!(state(d), None, "{}", day(d));
    }
    assert_eq!(state(15), s("breaching", "opened", 0));
    assert_eq!(state(16), s("escalated", "rip_cord", 1), "breached twice");
    assert_eq!(
        escalation(at(16), trigger).unwrap()["role"],
        "Referral Architect"
    );
    assert_eq!(
        state(17),
        s("escalated", "advanced", 2),
        "unacknowledged for 1d"
    );
    assert_eq!(escalation(at(17), trigger).unwrap()["role"], "Partner Ops");
    assert_eq!(
        state(18),
        s("escalated", "none", 2),
        "one quiet period of two"
    );
    assert_eq!(state(19), s("recovered", "recovered", 2));
    assert_eq!(episode(at(19), trigger).unwrap()["recovered"], day(19));
    assert!(escalation(at(19), trigger).is_none());
    assert_eq!(at(19)["status"], "succeeded");
    for d in 20..=23 {
        assert_eq!(state(d), None, "{}", day(d));
    }
    let rip_cords: usize = series
        .values()
        .flat_map(|p| p["escalation_state"]["episodes"].as_array().unwrap())
        .filter(|e| e["transition"] == "rip_cord" && e["announce"] == true)
        .count();
    assert_eq!(rip_cords, 1);

    // A backfill over the same dates walks the same states.
    let backfill_plans = work.path().join("backfill");
    let mut cmd = refopt();
    cmd.args(["backfill", "optimize-referrals", "--root"])
        .arg(&root)
        .arg("--plans")
        .arg(&backfill_plans)
        .args([
            "--from",
            &day(10),
            "--to",
            &day(23),
            "--step",
            "1d",
            "--output",
            "json",
        ])
        .args(common);
    let o = run(&mut cmd);
    assert!(o.status.success(), "{}", text(&o));
    let mut windows = 0;
    for file in plan_files(&backfill_plans) {
        let plan: Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
        let as_of = plan["inputs"]["as_of"].as_str().unwrap().to_string();
        assert_eq!(
            escalation_summary(&plan),
            escalation_summary(&series[&as_of]),
            "{as_of}"
        );
        windows += 1;
    }
    assert_eq!(windows, 14);
}

#[test]
fn alert_threshold_is_checked_against_the_alerts_it_replaces() {
    let plans = tempfile::tempdir().unwrap();
    let attempt = |rules: &Path, threshold: &str| {
        let mut cmd = refopt();
        cmd.args(["run", "optimize-referrals", "--root"])
            .arg(shared_data())
            .arg("--plans")
            .arg(plans.path())
            .arg("--rules")
            .arg(rules)
            .args(["--as-of", AS_OF, "--alert-threshold", threshold]);
        run(&mut cmd)
    };
    let rules = repo().join("rules");
    // referral_to_won_low watches a rate: 1.5 is not one.
    let stderr = expect_exit(&attempt(&rules, "1.5"), 3);
    assert!(
        stderr.contains("not a rate") && stderr.contains("referral_to_won_low"),
        "{stderr}"
    );
    // Below its critical level (0.006) the warn level never fires first.
    let stderr = expect_exit(&attempt(&rules, "0.001"), 3);
    assert!(stderr.contains("past the critical level 0.006"), "{stderr}");
    // Rules where no alert uses the flag: it would change nothing.
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&rules, dir.path());
    let alerts = std::fs::read_to_string(dir.path().join("alerts.yaml")).unwrap();
    std::fs::write(
        dir.path().join("alerts.yaml"),
        alerts.replace("uses_alert_threshold: true", "uses_alert_threshold: false"),
    )
    .unwrap();
    let stderr = expect_exit(&attempt(dir.path(), "0.02"), 3);
    assert!(stderr.contains("changes nothing"), "{stderr}");
    assert!(plan_files(plans.path()).is_empty(), "no plan written");
    // A value on the warn side applies, and the plan records it.
    let o = attempt(&rules, "0.5");
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn success_metric_targets_and_partner_health_scales_come_from_the_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    copy_tree(&repo().join("rules"), &rules);
    // Targets an ops lead set: an NPS target any measured NPS meets, and a lift target no
    // measured lift can reach.
    std::fs::write(
        rules.join("targets.yaml"),
        "version: 1\nconversion_lift: 9.5\nfraud_reduction: -1\npartner_nps: -100\n",
    )
    .unwrap();
    let plans = tempfile::tempdir().unwrap();
    let r = rules.to_str().unwrap();
    let plan = run_at(
        shared_data(),
        plans.path(),
        AS_OF,
        &["--rules", r, "--detail", "full"],
    );
    let metric = |name: &str| {
        plan["success_metrics"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap()
            .clone()
    };
    for (name, target) in [
        ("conversion_lift", 9.5),
        ("fraud_reduction", -1.0),
        ("partner_nps", -100.0),
    ] {
        let m = metric(name);
        assert_eq!(m["target"], target, "{m}");
        // The status is the comparison of the measured value with the YAML's target.
        let expected = match m["current"].as_f64() {
            Some(v) if v >= target => "met",
            Some(_) => "not_met",
            None => "unknown",
        };
        assert_eq!(m["status"], expected, "{m}");
    }
    assert_eq!(metric("conversion_lift")["status"], "not_met");
    assert_eq!(metric("partner_nps")["status"], "met");

    // Share of voice: every partner's share of all partner mentions, summing to 1 over the
    // partners; the top list carries the partner's own value.
    let partners = plan["partner_health"]["partners"].as_array().unwrap();
    let total: f64 = partners
        .iter()
        .filter_map(|p| p["share_of_voice"].as_f64())
        .sum();
    assert!((total - 1.0).abs() < 1e-9, "{total}");
    for top in plan["partner_health"]["top"].as_array().unwrap() {
        let row = partners
            .iter()
            .find(|p| p["partner_id"] == top["partner_id"])
            .unwrap();
        assert_eq!(top["share_of_voice"], row["share_of_voice"]);
    }

    // A target out of range is a located configuration error.
    std::fs::write(
        rules.join("targets.yaml"),
        "version: 1\nconversion_lift: 0.05\nfraud_reduction: 0.1\npartner_nps: 140\n",
    )
    .unwrap();
    let o = run(refopt().args(["validate", "--rules", r]));
    let stderr = expect_exit(&o, 1);
    let out = format!("{stderr}{}", String::from_utf8_lossy(&o.stdout));
    assert!(
        out.contains("targets.yaml:4:") && out.contains("partner_nps: 140 is outside"),
        "{out}"
    );
}

#[test]
fn payouts_in_a_second_currency_stop_the_run_with_the_currencies_named() {
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("data");
    copy_tree(shared_data(), &root);
    // Three payouts of one day in the window turn to EUR.
    let script = r#"
import duckdb, glob, os, sys
f = sorted(glob.glob(f"{sys.argv[1]}/payouts/dt=2026-05-20/*.parquet"))[0]
tmp = f + ".tmp"
duckdb.sql(f"""COPY (
    SELECT * EXCLUDE (rn) REPLACE (CASE WHEN rn <= 3 THEN 'EUR' ELSE currency END AS currency)
    FROM (SELECT *, row_number() OVER () AS rn FROM read_parquet('{f}', hive_partitioning=false))
) TO '{tmp}' (FORMAT parquet)""")
os.replace(tmp, f)
"#;
    let o = run(Command::new(python()).args(["-c", script, root.to_str().unwrap()]));
    assert!(o.status.success(), "{}", text(&o));
    let plans = work.path().join("plans");
    let mut cmd = refopt();
    cmd.args(["run", "optimize-referrals", "--root"])
        .arg(&root)
        .arg("--plans")
        .arg(&plans)
        .args(["--as-of", AS_OF]);
    let stderr = expect_exit(&run(&mut cmd), 4);
    assert!(
        stderr.contains("pipelines/optimize-referrals.yaml:")
            && stderr.contains("dataset `payouts`, column `currency`: 3 row(s) in EUR")
            && stderr.contains("one currency, USD"),
        "{stderr}"
    );
    assert!(plan_files(&plans).is_empty(), "no plan with mixed money");
    // Outside the windows (current and previous 30 days) the EUR rows do not matter.
    let mut cmd = refopt();
    cmd.args(["run", "optimize-referrals", "--root"])
        .arg(&root)
        .arg("--plans")
        .arg(&plans)
        .args(["--as-of", "2026-05-15", "--window", "7d"]);
    let o = run(&mut cmd);
    assert!(o.status.success(), "{}", text(&o));
}
