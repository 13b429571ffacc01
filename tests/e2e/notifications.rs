//! Distribution: notifications to a real HTTP receiver and a real SMTP server
//! (tests/python/notify_sinks.py), exactly once per event across a run, a retry and a rerun;
//! flaky and dead receivers; the rip-cord; approvals; no secret anywhere.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

const HOOK_TOKEN: &str = "T0K3N-hook-SECRET-77";
const SMTP_PASSWORD: &str = "smtp-PASS-secret-55";

struct Sinks {
    child: Child,
    http: u16,
    smtp: u16,
    log: PathBuf,
}

impl Sinks {
    fn start(dir: &Path) -> Sinks {
        let ports = dir.join("ports.json");
        let log = dir.join("received.jsonl");
        std::fs::write(&log, "").unwrap();
        let child = Command::new(python())
            .arg(repo().join("tests/python/notify_sinks.py"))
            .arg(&ports)
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let ports: serde_json::Value = loop {
            if let Ok(text) = std::fs::read_to_string(&ports) {
                break serde_json::from_str(&text).unwrap();
            }
            assert!(Instant::now() < deadline, "sinks did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        Sinks {
            child,
            http: ports["http"].as_u64().unwrap() as u16,
            smtp: ports["smtp"].as_u64().unwrap() as u16,
            log,
        }
    }

    fn received(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    fn env(&self) -> Vec<(&'static str, String)> {
        let url = |kind: &str| format!("http://127.0.0.1:{}/{kind}/hooks/{HOOK_TOKEN}", self.http);
        vec![
            ("HOOK_OK_URL", url("ok")),
            ("HOOK_FLAKY_URL", url("flaky")),
            ("HOOK_DOWN_URL", url("down")),
            ("MAIL_USER", "refopt".to_string()),
            ("MAIL_PASSWORD", SMTP_PASSWORD.to_string()),
        ]
    }
}

impl Drop for Sinks {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rules_with_sinks(dir: &Path, smtp_port: u16) -> PathBuf {
    let rules = dir.join("rules");
    copy_tree(&repo().join("rules"), &rules);
    // One-level ladder: the first escalation is the top of the ladder (the rip-cord).
    std::fs::write(
        rules.join("ladder.yaml"),
        "version: 1\nlevels:\n  - role: Referral Architect\n    owner: referral-architect\n    fallback: lifecycle-ops\nseries:\n  cadence: 1d\ntriggers:\n  consecutive_breaches: 2\n  advance_after: 1d\n  recover_after: 2\n  fraud_spike:\n    multiplier: 100.0\n    trailing_periods: 4\n    owner: fraud-detection\n",
    )
    .unwrap();
    std::fs::write(
        rules.join("notifications.yaml"),
        format!(
            "version: 1\nretry: {{limit: 2, backoff_ms: 50}}\nsinks:\n\
             \x20 - {{id: ok, kind: webhook, format: json, url_env: HOOK_OK_URL, events: [alert_warn, alert_critical, escalation, rip_cord, plan_approved]}}\n\
             \x20 - {{id: flaky, kind: webhook, format: json, url_env: HOOK_FLAKY_URL, events: [escalation]}}\n\
             \x20 - {{id: down, kind: webhook, format: slack, url_env: HOOK_DOWN_URL, events: [escalation]}}\n\
             \x20 - {{id: mail, kind: smtp, host: 127.0.0.1, port: {smtp_port}, starttls: false, username_env: MAIL_USER, password_env: MAIL_PASSWORD, from: refopt@example.com, to: [exec@example.com], events: [rip_cord], owners: [lifecycle-ops]}}\n"
        ),
    )
    .unwrap();
    rules
}

fn run_with(rules: &Path, plans: &Path, env: &[(&str, String)], extra: &[&str]) -> Output {
    let mut cmd = refopt();
    cmd.args([
        "run",
        "optimize-referrals",
        "--root",
        shared_data().to_str().unwrap(),
        "--plans",
        plans.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
        "--alert-threshold",
        "0.99",
        "--output",
        "json",
    ]);
    if !extra.contains(&"--as-of") {
        cmd.args(["--as-of", AS_OF]);
    }
    cmd.args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// Successful deliveries per (path kind, event id).
fn delivered(
    received: &[serde_json::Value],
) -> std::collections::BTreeMap<(String, String), usize> {
    let mut out = std::collections::BTreeMap::new();
    for r in received {
        let (kind, event) = if r["sink"] == "smtp" {
            ("smtp".to_string(), "rip_cord".to_string())
        } else {
            if r["status"] != 200 {
                continue;
            }
            let body: serde_json::Value =
                serde_json::from_str(r["body"].as_str().unwrap()).unwrap();
            let kind = r["path"]
                .as_str()
                .unwrap()
                .split('/')
                .nth(1)
                .unwrap()
                .to_string();
            let event = body["event"].as_str().map(String::from).unwrap_or_default();
            let version = body["plan_version"].as_u64().unwrap_or(0);
            // A run's messages link the report written beside its plan.
            if version > 0 && !event.starts_with("plan_") {
                let report = body["report_url"].as_str().unwrap_or_default();
                assert!(
                    report.ends_with(&format!("plan-v{version:06}.html")),
                    "{event}: report_url {report:?}"
                );
            }
            (kind, format!("v{version} {event}"))
        };
        *out.entry((kind, event)).or_insert(0) += 1;
    }
    out
}

#[test]
fn each_event_is_delivered_once_and_failures_are_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let sinks = Sinks::start(dir.path());
    let rules = rules_with_sinks(dir.path(), sinks.smtp);
    let plans = dir.path().join("plans");
    let env = sinks.env();

    // v1: the threshold is breached on the day before (alerts only); v2: breached on a second
    // day in a row, so it pulls the rip-cord (level 1, the top of the one-level ladder).
    let first = run_with(&rules, &plans, &env, &["--as-of", "2026-05-31"]);
    assert!(first.status.success(), "{}", text(&first));
    let second = run_with(&rules, &plans, &env, &[]);
    assert!(
        second.status.success(),
        "a dead receiver never fails the run\n{}",
        text(&second)
    );
    let v2: serde_json::Value = serde_json::from_slice(&second.stdout).unwrap();
    assert_eq!(v2["version"], 2);
    assert_eq!(v2["status"], "escalated", "the rip-cord marks the plan");
    assert!(!v2["escalations"].as_array().unwrap().is_empty());
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(err.contains("to down FAILED after 3 attempts"), "{err}");

    // A retried run and a rerun of the same inputs: the same plan version, nothing re-sent.
    let after_two = delivered(&sinks.received());
    for _ in 0..2 {
        let again = run_with(&rules, &plans, &env, &[]);
        assert!(again.status.success(), "{}", text(&again));
        assert!(String::from_utf8_lossy(&again.stderr).contains("unchanged, plan v2"));
    }
    let received = sinks.received();
    let counts = delivered(&received);
    assert_eq!(counts, after_two, "reruns deliver nothing new");
    // Mail is keyed by kind only (one email per rip-cord pulled); webhooks by event.
    let rip_cords = counts
        .keys()
        .filter(|(k, e)| k == "ok" && e.starts_with("v2 rip_cord:"))
        .count();
    assert!(
        counts
            .iter()
            .filter(|((k, _), _)| k != "smtp")
            .all(|(_, &n)| n == 1),
        "exactly once per event: {counts:?}"
    );
    let alerts_v1 = counts
        .keys()
        .filter(|(k, e)| k == "ok" && e.starts_with("v1 alert:"))
        .count();
    assert!(alerts_v1 > 0, "{counts:?}");
    assert!(
        counts.contains_key(&(
            "ok".to_string(),
            "v2 rip_cord:alert:referral_to_won_low:all:2026-05-31".to_string()
        )),
        "{counts:?}"
    );
    assert_eq!(
        counts.get(&("smtp".into(), "rip_cord".into())),
        Some(&rip_cords),
        "one email per rip-cord: {counts:?}"
    );
    let mail = received.iter().find(|r| r["sink"] == "smtp").unwrap();
    assert!(mail["data"].as_str().unwrap().contains("Rip-cord"));

    // The flaky receiver: three requests per escalation, one success, attempts recorded.
    let flaky: Vec<&serde_json::Value> = received
        .iter()
        .filter(|r| r["sink"] == "http" && r["path"].as_str().unwrap().starts_with("/flaky"))
        .collect();
    assert_eq!(
        flaky.iter().filter(|r| r["status"] == 200).count(),
        v2["escalations"].as_array().unwrap().len()
    );
    let audit = plans.join("optimize-referrals/audit/plan-v000002");
    let records: Vec<serde_json::Value> = std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| serde_json::from_slice(&std::fs::read(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    let flaky_record = records.iter().find(|r| r["sink"] == "flaky").unwrap();
    assert_eq!(flaky_record["status"], "delivered");
    assert_eq!(flaky_record["attempts"].as_array().unwrap().len(), 3);
    assert!(
        flaky_record["attempts"][0]["outcome"]
            .as_str()
            .unwrap()
            .contains("503")
    );
    // The dead receiver: failed deliveries recorded (the run and each rerun tried again).
    let down: Vec<&serde_json::Value> = records.iter().filter(|r| r["sink"] == "down").collect();
    assert!(!down.is_empty() && down.iter().all(|r| r["status"] == "failed"));
    assert!(
        down.iter()
            .all(|r| r["attempts"].as_array().unwrap().len() == 3)
    );

    // `plan audit` shows the deliveries.
    let o = run(refopt().args([
        "plan",
        "audit",
        "2",
        "--plans",
        plans.to_str().unwrap(),
        "--rules",
        rules.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("-> flaky: delivered after 3 attempt(s)"));

    // No secret anywhere: plans, audit records, outputs, what the receivers got.
    let mut haystack = String::new();
    for o in [&first, &second] {
        haystack.push_str(&text(o));
    }
    for f in walk(&plans) {
        haystack.push_str(&String::from_utf8_lossy(&std::fs::read(f).unwrap()));
    }
    for r in &received {
        if r["sink"] == "http" {
            haystack.push_str(r["body"].as_str().unwrap());
        } else {
            haystack.push_str(r["data"].as_str().unwrap());
        }
    }
    assert!(!haystack.contains(HOOK_TOKEN), "webhook token leaked");
    assert!(!haystack.contains(SMTP_PASSWORD), "SMTP password leaked");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn approvals_are_refused_with_reasons_idempotent_and_valid() {
    let dir = tempfile::tempdir().unwrap();
    let plans = dir.path().join("plans");
    let rules = dir.path().join("rules");
    copy_tree(&repo().join("rules"), &rules);
    let p = plans.to_str().unwrap();
    let r = rules.to_str().unwrap();
    for extra in [&[][..], &["--force"][..]] {
        let o = run_with(&rules, &plans, &[], extra);
        assert!(o.status.success(), "{}", text(&o));
    }
    let approve = |version: &str, by: &str, role: &str| {
        run(refopt().args([
            "plan", "approve", version, "--by", by, "--role", role, "--plans", p, "--rules", r,
        ]))
    };

    // v1 is no longer the latest for its window.
    let o = approve("1", "alice", "fraud-detection");
    expect_exit(&o, 1);
    assert!(
        text(&o).contains("plan v1 is not the latest for its window (v2 is)"),
        "{}",
        text(&o)
    );

    // A plan whose rule failed: a script that divides a string.
    let broken = dir.path().join("broken");
    copy_tree(&rules, &broken);
    let fraud = broken.join("fraud.yaml");
    let y = std::fs::read_to_string(&fraud).unwrap().replace(
        "\n# Payout concentration",
        "\n  - id: type_error\n    description: t\n    severity: low\n    pattern: test\n    table: risk_partners\n    key: partner_id\n    expression: row.partner_id - 3 > 0\n\n# Payout concentration",
    );
    std::fs::write(&fraud, y).unwrap();
    let o = run_with(&broken, &plans, &[], &["--force"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = approve("3", "alice", "fraud-detection");
    expect_exit(&o, 1);
    assert!(text(&o).contains("type_error` failed"), "{}", text(&o));

    // A good plan: approved once, the second approval records nothing.
    let o = run_with(&rules, &plans, &[], &["--force"]);
    assert!(o.status.success(), "{}", text(&o));
    let o = approve("4", "alice", "fraud-detection");
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("plan v4 approved by alice as fraud-detection")
    );
    let o = approve("4", "alice", "fraud-detection");
    assert!(o.status.success(), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("already approved"));
    let audit = plans.join("optimize-referrals/audit/plan-v000004");
    let approvals: Vec<PathBuf> = std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_str()
                .unwrap()
                .starts_with("approval-")
        })
        .collect();
    assert_eq!(approvals.len(), 1);
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&approvals[0]).unwrap()).unwrap();
    let plan_bytes = std::fs::read(plans.join("optimize-referrals/plan-v000004.json")).unwrap();
    let o = run(Command::new(python()).args([
        "-c",
        "import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],'rb').read()).hexdigest())",
        plans
            .join("optimize-referrals/plan-v000004.json")
            .to_str()
            .unwrap(),
    ]));
    assert_eq!(
        record["plan_sha256"].as_str().unwrap(),
        String::from_utf8_lossy(&o.stdout).trim()
    );
    assert!(!plan_bytes.is_empty());
    let o = run(Command::new(python()).args([
        "-c",
        "import json,sys,jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))); print('valid')",
        approvals[0].to_str().unwrap(),
        repo().join("docs/approval.schema.json").to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{}", text(&o));
}
