//! Shared test harness: the refopt binary, generated data shared by tests, a Python with the
//! reference tools, plan JSON Schema validation, and a moto S3 server on a free port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// As-of date (exclusive window end) of the shared data set.
pub const AS_OF: &str = "2026-06-01";
/// Seed of the shared data set.
pub const SEED: &str = "7";

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap()
}

/// A command for the refopt binary, run from the repository root.
pub fn refopt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_refopt"));
    c.current_dir(repo());
    c.env_remove("REFOPT_ROOT").env_remove("REFOPT_PLANS");
    c
}

/// Runs a command, returning its output (stdout, stderr, status).
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("command starts")
}

/// Asserts that a finished command failed the documented way: exit `code`, a message on
/// stderr, no panic. Returns stderr for assertions on the message.
#[track_caller]
pub fn expect_exit(o: &Output, code: i32) -> String {
    assert_eq!(o.status.code(), Some(code), "exit code\n{}", text(o));
    let stderr = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!stderr.contains("panicked"), "panic\n{}", text(o));
    assert!(
        !stderr.trim().is_empty(),
        "a failure says why on stderr\n{}",
        text(o)
    );
    stderr
}

/// Text of stdout + stderr, for assertions and failure messages.
pub fn text(o: &Output) -> String {
    format!(
        "--- status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Generates data into `root` (a path or URL) with the shared seed and as-of date.
pub fn generate(root: &str, extra_env: &[(&str, String)]) {
    let mut cmd = refopt();
    cmd.args([
        "generate", "--root", root, "--days", "90", "--scale", "0.06", "--seed", SEED, "--end",
        AS_OF,
    ]);
    for (k, v) in extra_env {
        cmd.env(k, v);
    }
    let o = run(&mut cmd);
    assert!(o.status.success(), "generate failed\n{}", text(&o));
}

/// A local data set shared by all tests of this process (generated once).
pub fn shared_data() -> &'static Path {
    static DATA: OnceLock<tempfile::TempDir> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path().to_str().unwrap(), &[]);
        dir
    })
    .path()
}

/// The Python interpreter with the reference tools (set by tests/run.sh). Fails loudly when
/// the tools are missing instead of skipping.
pub fn python() -> String {
    let python = std::env::var("REFOPT_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let check = Command::new(&python)
        .args(["-c", "import duckdb, moto, boto3"])
        .output()
        .unwrap_or_else(|e| panic!("cannot start {python}: {e}; run the tests with tests/run.sh"));
    assert!(
        check.status.success(),
        "{python} lacks duckdb/moto/boto3 ({}); run the tests with tests/run.sh, which installs them",
        String::from_utf8_lossy(&check.stderr)
    );
    python
}

/// Validates a plan against the committed JSON Schema (docs/plan.schema.json).
pub fn assert_valid_plan(plan: &serde_json::Value) {
    static SCHEMA: OnceLock<serde_json::Value> = OnceLock::new();
    let schema = SCHEMA.get_or_init(|| {
        let text = std::fs::read_to_string(repo().join("docs/plan.schema.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    });
    let validator = jsonschema::validator_for(schema).expect("schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(plan)
        .map(|e| format!("{} at {}", e, e.instance_path))
        .collect();
    assert!(
        errors.is_empty(),
        "plan violates docs/plan.schema.json:\n{}",
        errors.join("\n")
    );
}

/// A plan's money value (a decimal string with two places, schema 1.2) as a number.
#[track_caller]
pub fn money(v: &serde_json::Value) -> f64 {
    let text = v
        .as_str()
        .unwrap_or_else(|| panic!("money is a decimal string: {v}"));
    let (_, cents) = text
        .split_once('.')
        .unwrap_or_else(|| panic!("money has two decimal places: {text}"));
    assert_eq!(cents.len(), 2, "money has two decimal places: {text}");
    text.parse().unwrap()
}

/// Copies the folder `from` (recursively) to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// Every plan file (`plan-*.json`) under `dir` (recursively); reports beside them are not plans.
pub fn plan_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(plan_files(&p));
            } else if p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("plan-") && n.ends_with(".json")
            }) {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Runs the default pipeline on `root`, writing plans to `plans`; returns the written plan.
pub fn run_pipeline(
    root: &str,
    plans: &str,
    extra: &[&str],
    env: &[(&str, String)],
) -> (serde_json::Value, Output) {
    let mut cmd = refopt();
    cmd.args([
        "run",
        "optimize-referrals",
        "--root",
        root,
        "--plans",
        plans,
        "--as-of",
        AS_OF,
        "--window",
        "30d",
        "--output",
        "json",
    ]);
    cmd.args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = run(&mut cmd);
    assert!(o.status.success(), "run failed\n{}", text(&o));
    let plan: serde_json::Value = serde_json::from_slice(&o.stdout).expect("stdout is plan JSON");
    assert_valid_plan(&plan);
    (plan, o)
}

/// A moto S3 server on a free 127.0.0.1 port, killed on drop.
pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Moto {
    /// Starts the server and creates `bucket`.
    pub fn start(bucket: &str) -> Moto {
        let python = python();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&python)
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto server starts");
        let endpoint = format!("http://127.0.0.1:{port}");
        let moto = Moto { child, endpoint };
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto server did not listen on port {port} within 30s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let script = format!(
            "import boto3; boto3.client('s3', endpoint_url='{}', aws_access_key_id='test', \
             aws_secret_access_key='test', region_name='us-east-1').create_bucket(Bucket='{bucket}')",
            moto.endpoint
        );
        let o = run(Command::new(&python).args(["-c", &script]));
        assert!(o.status.success(), "bucket creation failed\n{}", text(&o));
        moto
    }

    /// Environment for refopt to reach this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".to_string()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_string()),
            ("AWS_REGION", "us-east-1".to_string()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts two JSON values are equal, numbers within 1e-9 relative (parallel float sums may
/// differ in the last bits); panics with the path of the first difference.
pub fn assert_json_close(a: &serde_json::Value, b: &serde_json::Value, path: &str) {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!(
                (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                "{path}: {x} != {y}"
            );
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}: lengths differ");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                assert_json_close(x, y, &format!("{path}[{i}]"));
            }
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<_> = x.keys().chain(y.keys()).collect();
            for k in keys {
                assert_json_close(&x[k.as_str()], &y[k.as_str()], &format!("{path}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{path}"),
    }
}
