//! Flaky storage: a fault-injecting proxy (tests/python/fault_proxy.py) between refopt and a real
//! S3-compatible server (moto) resets, stalls and 503s chosen requests. Up to the retry limit
//! (2) of faults per request, runs succeed and the plan records every failed attempt; one more
//! fault per request fails the run cleanly (storage error, exit 5), with no plan written and
//! earlier plans intact.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::harness::*;

/// The proxy process, killed on drop.
struct FaultProxy {
    child: Child,
    endpoint: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl FaultProxy {
    fn start(upstream: &str, config: serde_json::Value) -> FaultProxy {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let log = dir.path().join("faults.jsonl");
        std::fs::write(&log, "").unwrap();
        let child = Command::new(python())
            .arg(repo().join("tests/python/fault_proxy.py"))
            .args([upstream, &config.to_string()])
            .arg(&port_file)
            .arg(&log)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("fault proxy starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file) {
                break p;
            }
            assert!(Instant::now() < deadline, "fault proxy did not start");
            std::thread::sleep(Duration::from_millis(50));
        };
        FaultProxy {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
            log,
            _dir: dir,
        }
    }

    /// Injected faults: (method, path without query, kind).
    fn injected(&self) -> Vec<(String, String, String)> {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .map(|line| {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                let path = v["path"].as_str().unwrap();
                let path = path.split('?').next().unwrap().to_string();
                (
                    v["method"].as_str().unwrap().to_string(),
                    path,
                    v["kind"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }

    /// refopt's environment with the proxy as the S3 endpoint.
    fn env(&self, moto: &Moto) -> Vec<(&'static str, String)> {
        moto.env()
            .into_iter()
            .map(|(k, v)| {
                if k == "AWS_ENDPOINT_URL" {
                    (k, self.endpoint.clone())
                } else {
                    (k, v)
                }
            })
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const DATA: &str = "s3://faults/program";
const PLANS: &str = "s3://faults/plans";

fn run_through(env: &[(&str, String)]) -> std::process::Output {
    let mut cmd = refopt();
    cmd.args([
        "run",
        "optimize-referrals",
        "--root",
        DATA,
        "--plans",
        PLANS,
        "--as-of",
        AS_OF,
        "--window",
        "30d",
        "--output",
        "json",
        "--force",
        "--storage-timeout",
        "5s",
    ]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

/// Stored plans: (key, text), read straight from moto (no proxy).
fn stored_plans(moto: &Moto) -> Vec<(String, String)> {
    let script = format!(
        "import boto3, json\n\
         c = boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', \
         aws_secret_access_key='test', region_name='us-east-1')\n\
         out = []\n\
         for o in c.list_objects_v2(Bucket='faults', Prefix='plans/').get('Contents', []):\n\
         \x20   if o['Key'].endswith('.json'):\n\
         \x20       body = c.get_object(Bucket='faults', Key=o['Key'])['Body'].read()\n\
         \x20       out.append([o['Key'], body.decode()])\n\
         print(json.dumps(out))",
        moto.endpoint
    );
    let o = run(Command::new(python()).args(["-c", &script]));
    assert!(o.status.success(), "{}", text(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn storage_faults_are_retried_recorded_or_fail_cleanly() {
    let moto = Moto::start("faults");
    generate(DATA, &moto.env());
    // v1, written without faults.
    let clean = run_through(&moto.env());
    assert!(clean.status.success(), "{}", text(&clean));
    let before = stored_plans(&moto);
    assert_eq!(before.len(), 1, "{before:?}");

    // Two faults on every request for some days of one dataset, the partner table and the
    // plan store (listing, reading v1, writing the flagged referrals and v2): resets, 503s and
    // stalls past the 5 s timeout (a debug build under test load can take 2 s to read a
    // healthy response, so the timeout leaves room and the stall exceeds it clearly).
    let proxy = FaultProxy::start(
        &moto.endpoint,
        serde_json::json!({
            "faults_per_request": 2,
            "kinds": ["reset", "503", "reset", "503", "reset", "stall"],
            "path_regex": "partners/|plans|compliance_events/dt%3D[0-9-]+5/",
            "stall_seconds": 8,
        }),
    );
    let o = run_through(&proxy.env(&moto));
    assert!(o.status.success(), "faulty run failed\n{}", text(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_valid_plan(&plan);
    assert_eq!(plan["version"], 2);
    let injected = proxy.injected();
    for kind in ["reset", "503", "stall"] {
        assert!(
            injected.iter().any(|(_, _, k)| k == kind),
            "no {kind} was injected: {injected:?}"
        );
    }
    let handling = &plan["error_handling"];
    assert_eq!(handling["storage_retry_limit"], 2);
    // Faults on the plan's own write happen after it is serialized: logged, not recorded.
    // (So would requests for notifications' audit records, made after the write; no sink is
    // configured here, so there are none.)
    let mut expected: Vec<(String, String)> = injected
        .iter()
        .filter(|(method, path, _)| !(method == "PUT" && path.contains("/plan-v")))
        .map(|(m, p, _)| (m.clone(), p.clone()))
        .collect();
    // Every injected fault is recorded; anything else recorded must be a genuine timeout of a
    // slow request (the proxy and moto are single Python processes).
    let mut unexplained: Vec<&serde_json::Value> = Vec::new();
    for r in handling["storage_retries"].as_array().unwrap() {
        let key = (
            r["method"].as_str().unwrap().to_string(),
            r["object"].as_str().unwrap().to_string(),
        );
        if let Some(i) = expected.iter().position(|e| *e == key) {
            expected.swap_remove(i);
        } else if !r["error"].as_str().unwrap().starts_with("Timeout") {
            unexplained.push(r);
        }
    }
    assert!(
        expected.is_empty(),
        "injected but not recorded: {expected:?}"
    );
    assert!(
        unexplained.is_empty(),
        "recorded but not injected: {unexplained:?}"
    );
    assert!(
        injected
            .iter()
            .any(|(m, p, _)| m == "PUT" && p.contains("/plan-v")),
        "the plan write itself was faulted and still landed"
    );
    assert!(
        handling["storage_retries"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| !r["error"].as_str().unwrap().is_empty())
    );
    drop(proxy);
    let after_success = stored_plans(&moto);
    assert_eq!(after_success.len(), 2);
    assert_eq!(after_success[0], before[0], "v1 untouched");

    // A lost response to the create-only plan write: the retry finds its own plan there and
    // counts it as written (no duplicate version).
    let proxy = FaultProxy::start(
        &moto.endpoint,
        serde_json::json!({
            "faults_per_request": 1,
            "kinds": ["lost_response"],
            "methods": ["PUT"],
            "path_regex": "plan-v\\d+\\.json",
        }),
    );
    let o = run_through(&proxy.env(&moto));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(proxy.injected().len(), 1);
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(plan["version"], 3);
    let after_lost = stored_plans(&moto);
    assert_eq!(after_lost.len(), 3, "no duplicate plan version");
    let stored: serde_json::Value = serde_json::from_str(&after_lost[2].1).unwrap();
    assert_eq!(stored["run_id"], plan["run_id"]);
    drop(proxy);

    // Three faults per request on one dataset's files: over the limit. The run fails with the
    // storage error, writes nothing, and leaves earlier plans as they were.
    let proxy = FaultProxy::start(
        &moto.endpoint,
        serde_json::json!({
            "faults_per_request": 3,
            "kinds": ["503", "reset"],
            "methods": ["GET"],
            "path_regex": "compliance_events/.*\\.parquet",
        }),
    );
    let o = run_through(&proxy.env(&moto));
    let err = expect_exit(&o, 5);
    assert!(err.contains("dataset `compliance_events`"), "{err}");
    assert!(err.contains("after 2 retries"), "{err}");
    assert!(o.stdout.is_empty(), "no plan printed");
    assert!(!proxy.injected().is_empty());
    assert_eq!(stored_plans(&moto), after_lost, "earlier plans intact");
}
