//! Shipping to Kubernetes: the kustomize overlay renders to manifests that validate against the
//! Kubernetes OpenAPI schemas offline, the CronJob has the fields a production job needs, the
//! ConfigMaps carry exactly the repository's rules and pipeline (and validate), and the binary
//! behaves as a Job needs: JSON logs, a summary line, SIGTERM stops without writing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::harness::*;

/// `kubectl kustomize k8s/overlays/example`, as a list of JSON objects (via PyYAML).
fn rendered() -> (String, Vec<serde_json::Value>) {
    let o = run(Command::new("kubectl")
        .args(["kustomize", "k8s/overlays/example"])
        .current_dir(repo()));
    assert!(o.status.success(), "kubectl kustomize failed\n{}", text(&o));
    let yaml = String::from_utf8(o.stdout).unwrap();
    let mut child = Command::new(python())
        .args([
            "-c",
            "import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(yaml.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let docs: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    (yaml, docs)
}

fn find<'a>(docs: &'a [serde_json::Value], kind: &str, name_prefix: &str) -> &'a serde_json::Value {
    docs.iter()
        .find(|d| {
            d["kind"] == kind
                && d["metadata"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(name_prefix))
        })
        .unwrap_or_else(|| panic!("no {kind} {name_prefix}* in the rendered manifests"))
}

#[test]
fn generated_base_is_in_sync_with_rules_and_pipelines() {
    let o = run(Command::new(python())
        .args(["k8s/sync.py", "--check"])
        .current_dir(repo()));
    assert!(o.status.success(), "k8s/base drifted\n{}", text(&o));
}

#[test]
fn rendered_manifests_validate_against_the_kubernetes_schemas() {
    let (yaml, docs) = rendered();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, yaml).unwrap();
    let validator = Path::new(&python()).with_file_name("kubernetes-validate");
    let o = run(Command::new(&validator).args(["--strict", file.to_str().unwrap()]));
    assert!(o.status.success(), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    let passed = stdout
        .lines()
        .filter(|l| l.contains(" passed for resource "))
        .count();
    assert_eq!(passed, docs.len(), "every resource validated: {stdout}");
}

#[test]
fn cronjob_has_the_production_fields() {
    let (_, docs) = rendered();
    let cron = find(&docs, "CronJob", "refopt");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    assert!(cron["spec"]["startingDeadlineSeconds"].as_u64().is_some());
    let job = &cron["spec"]["jobTemplate"]["spec"];
    assert!(job["backoffLimit"].as_u64().is_some());
    assert!(job["activeDeadlineSeconds"].as_u64().is_some());
    assert!(job["ttlSecondsAfterFinished"].as_u64().is_some());
    let pod = &job["template"]["spec"];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["allowPrivilegeEscalation"],
        false
    );
    let limits = &container["resources"]["limits"];
    assert!(
        limits["memory"].is_string() && limits["cpu"].is_string(),
        "{limits}"
    );
    // The memory limit leaves room above refopt's --memory-limit.
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let pool = args[args.iter().position(|a| *a == "--memory-limit").unwrap() + 1];
    let gib = |s: &str| {
        s.trim_end_matches("GiB")
            .trim_end_matches("Gi")
            .parse::<f64>()
            .unwrap()
    };
    assert!(
        gib(limits["memory"].as_str().unwrap()) > gib(pool),
        "{limits} vs {pool}"
    );
    // Rules come from the generated ConfigMap, mounted where REFOPT_RULES points.
    let rules_cm = find(&docs, "ConfigMap", "refopt-rules")["metadata"]["name"].clone();
    let volume = pod["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "rules")
        .unwrap();
    assert_eq!(volume["configMap"]["name"], rules_cm);
    let mount = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "rules")
        .unwrap();
    let env = container["env"].as_array().unwrap();
    let rules_env = env.iter().find(|e| e["name"] == "REFOPT_RULES").unwrap();
    assert_eq!(rules_env["value"], mount["mountPath"]);
    assert!(
        serde_json::to_string(&docs)
            .unwrap()
            .find("AWS_SECRET_ACCESS_KEY\":")
            .is_none(),
        "no static keys in manifests"
    );
    // The backfill is an Indexed Job whose as-of date comes from the completion index.
    let backfill = find(&docs, "Job", "refopt-backfill");
    assert_eq!(backfill["spec"]["completionMode"], "Indexed");
    assert!(
        backfill["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "--as-of-from-index")
    );
}

#[test]
fn configmaps_carry_the_repository_files_and_validate() {
    let (_, docs) = rendered();
    let dir = tempfile::tempdir().unwrap();
    let write_all = |cm: &serde_json::Value, to: &Path, items: Option<&serde_json::Value>| {
        std::fs::create_dir_all(to).unwrap();
        for (key, value) in cm["data"].as_object().unwrap() {
            let path = items
                .and_then(|i| i.as_array())
                .and_then(|i| i.iter().find(|x| x["key"] == key.as_str()))
                .map(|x| x["path"].as_str().unwrap().to_string())
                .unwrap_or_else(|| key.clone());
            let target = to.join(path);
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::write(target, value.as_str().unwrap()).unwrap();
        }
    };
    let rules = find(&docs, "ConfigMap", "refopt-rules");
    for (key, value) in rules["data"].as_object().unwrap() {
        let repo_file = std::fs::read_to_string(repo().join("rules").join(key)).unwrap();
        assert_eq!(
            value.as_str().unwrap(),
            repo_file,
            "ConfigMap rules/{key} drifted"
        );
    }
    let shipped: usize = std::fs::read_dir(repo().join("rules"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_type().unwrap().is_file())
        .count();
    assert_eq!(rules["data"].as_object().unwrap().len(), shipped);
    write_all(rules, &dir.path().join("rules"), None);
    let cron = find(&docs, "CronJob", "refopt");
    let sources = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "pipelines")
        .unwrap()["projected"]["sources"];
    write_all(
        find(&docs, "ConfigMap", "refopt-pipelines"),
        &dir.path().join("pipelines"),
        None,
    );
    write_all(
        find(&docs, "ConfigMap", "refopt-pipeline-sql"),
        &dir.path().join("pipelines"),
        Some(&sources[1]["configMap"]["items"]),
    );
    // What the pod sees is what `refopt validate` accepts.
    let o = run(refopt().current_dir(dir.path()).args([
        "validate",
        "--pipelines-dir",
        "pipelines",
        "--rules",
        "rules",
    ]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}

#[test]
fn json_logs_end_with_a_summary_line() {
    let plans = tempfile::tempdir().unwrap();
    let o = run(refopt().args([
        "--log-format",
        "json",
        "run",
        "optimize-referrals",
        "--root",
        shared_data().to_str().unwrap(),
        "--plans",
        plans.path().to_str().unwrap(),
        "--as-of",
        AS_OF,
        "--output",
        "json",
    ]));
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l["fields"]["message"] == "stage finished")
    );
    let last = lines.last().unwrap();
    assert_eq!(last["fields"]["message"], "run succeeded");
    let plan = last["fields"]["plan"].as_str().unwrap();
    assert!(plan.contains("/optimize-referrals/plan-"), "{last}");
}

#[test]
fn json_logs_cover_data_generation_too() {
    // The container's demo generates data first; its status lines must be JSON as well.
    let root = tempfile::tempdir().unwrap();
    let o = run(refopt().args([
        "--log-format",
        "json",
        "generate",
        "--root",
        root.path().to_str().unwrap(),
        "--days",
        "5",
        "--scale",
        "0.002",
    ]));
    assert!(o.status.success(), "{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    let messages: Vec<String> = stderr
        .lines()
        .map(|l| {
            let v: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
            v["fields"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert!(
        messages.iter().any(|m| m.starts_with("generating ")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.starts_with("wrote ")),
        "{messages:?}"
    );
}

#[test]
fn sigterm_stops_the_run_and_writes_nothing() {
    let plans = tempfile::tempdir().unwrap();
    let mut child = refopt()
        .args([
            "run",
            "optimize-referrals",
            "--root",
            shared_data().to_str().unwrap(),
            "--plans",
            plans.path().to_str().unwrap(),
            "--as-of",
            AS_OF,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until a stage is running, then stop the run the way Kubernetes does.
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            stderr.read_line(&mut line).unwrap() > 0,
            "run ended before a stage started"
        );
        if line.contains("started") {
            break;
        }
    }
    let o = run(Command::new("kill").args(["-TERM", &child.id().to_string()]));
    assert!(o.status.success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(143), "{rest}");
    assert!(rest.contains("interrupted by SIGTERM"), "{rest}");
    assert!(plan_files(plans.path()).is_empty(), "no plan after SIGTERM");
}

#[test]
fn validate_reports_a_configmap_file_that_went_missing() {
    let dir = tempfile::tempdir().unwrap();
    for folder in ["pipelines", "rules", "k8s"] {
        copy_tree(&repo().join(folder), &dir.path().join(folder));
    }
    let o = run(refopt().current_dir(dir.path()).arg("validate"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    std::fs::remove_file(dir.path().join("k8s/base/config/rules/ladder.yaml")).unwrap();
    let o = run(refopt().current_dir(dir.path()).arg("validate"));
    expect_exit(&o, 1);
    assert!(
        String::from_utf8_lossy(&o.stderr).contains(
            "k8s/base/kustomization.yaml:1:1: error[RF011]: configMapGenerator `refopt-rules` names `config/rules/ladder.yaml`, which does not exist"
        ),
        "{}",
        text(&o)
    );
}

#[test]
fn run_metrics_are_pushed_to_a_pushgateway_and_a_dead_one_does_not_fail_the_run() {
    // A real HTTP receiver on 127.0.0.1 that records each PUT (path and body).
    let dir = tempfile::tempdir().unwrap();
    let record = dir.path().join("pushed.txt");
    let script = format!(
        "import http.server, sys\n\
         class H(http.server.BaseHTTPRequestHandler):\n\
         \x20   def do_PUT(self):\n\
         \x20       body = self.rfile.read(int(self.headers['Content-Length']))\n\
         \x20       open('{record}', 'ab').write(self.path.encode() + b'\\n' + body)\n\
         \x20       self.send_response(200); self.end_headers()\n\
         \x20   def log_message(self, *a): pass\n\
         s = http.server.HTTPServer(('127.0.0.1', 0), H)\n\
         print(s.server_port, flush=True)\n\
         s.serve_forever()\n",
        record = record.display()
    );
    let mut server = Command::new(python())
        .args(["-c", &script])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut port = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut port)
        .unwrap();
    let gateway = format!("http://127.0.0.1:{}", port.trim());
    let plans = tempfile::tempdir().unwrap();
    let (plan, _) = run_pipeline(
        shared_data().to_str().unwrap(),
        plans.path().to_str().unwrap(),
        &["--pushgateway", &gateway],
        &[],
    );
    let _ = server.kill();
    let _ = server.wait();
    let pushed = std::fs::read_to_string(&record).unwrap();
    assert!(
        pushed.starts_with("/metrics/job/refopt/pipeline/optimize-referrals\n"),
        "{pushed}"
    );
    assert!(
        pushed.contains("refopt_run_success{pipeline=\"optimize-referrals\"} 1"),
        "{pushed}"
    );
    let findings = plan["findings"].as_array().unwrap().len();
    assert!(
        pushed.contains(&format!(
            "refopt_findings{{pipeline=\"optimize-referrals\"}} {findings}"
        )),
        "{pushed}"
    );

    // Nothing listens there any more: the run still succeeds and says why the push failed.
    let (_, output) = run_pipeline(
        shared_data().to_str().unwrap(),
        plans.path().to_str().unwrap(),
        &["--pushgateway", &gateway],
        &[],
    );
    assert!(
        String::from_utf8_lossy(&output.stderr)
            .contains("metrics push failed (the run is unaffected)"),
        "{}",
        text(&output)
    );
}
