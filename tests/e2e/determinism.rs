//! The same inputs give the same plan: byte-identical data sections whatever the thread count
//! or memory limit (issue 28).

use serde_json::Value;

use crate::harness::*;

/// Keys that say when and how a run went, not what the data says.
const RUN_KEYS: [&str; 10] = [
    "run_id",
    "created_at",
    "version",
    "started_at",
    "finished_at",
    "duration_ms",
    "tasks",
    "dependency_graph",
    "error_handling",
    "change_log",
];

/// The plan without its run keys, as compact JSON text.
fn data_sections(mut plan: Value) -> String {
    fn strip(v: &mut Value) {
        match v {
            Value::Object(map) => {
                for key in RUN_KEYS {
                    map.remove(key);
                }
                // Each run writes to its own plans folder; the file name is the content's hash.
                if let Some(Value::String(url)) = map.get_mut("flagged_referrals_url") {
                    *url = url.rsplit('/').next().unwrap_or_default().to_string();
                }
                map.values_mut().for_each(strip);
            }
            Value::Array(items) => items.iter_mut().for_each(strip),
            _ => {}
        }
    }
    strip(&mut plan);
    serde_json::to_string_pretty(&plan).unwrap()
}

/// The first line where two texts differ, with its neighbours, for a readable failure.
fn first_difference(a: &str, b: &str) -> String {
    let (a, b): (Vec<_>, Vec<_>) = (a.lines().collect(), b.lines().collect());
    let at = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let from = at.saturating_sub(6);
    format!(
        "line {at}:\n--- first\n{}\n--- second\n{}",
        a[from..(at + 3).min(a.len())].join("\n"),
        b[from..(at + 3).min(b.len())].join("\n")
    )
}

#[test]
fn the_same_inputs_give_byte_identical_data_sections_at_any_parallelism_and_memory_limit() {
    // Under a limit the plans differ (sort-merge joins or hash joins of a small side,
    // aggregates in one partition, stage outputs streamed to scratch); the data must not.
    let settings: [&[&str]; 5] = [
        &["--threads", "1"],
        &["--threads", "2"],
        &["--threads", "4"],
        &["--threads", "2", "--memory-limit", "4GiB"],
        &["--threads", "2", "--memory-limit", "64MiB"],
    ];
    let mut texts = Vec::new();
    for extra in settings {
        let plans = tempfile::tempdir().unwrap();
        let mut args = vec!["--detail", "full", "--dimensions", "channel,region"];
        args.extend_from_slice(extra);
        let (plan, _) = run_pipeline(
            shared_data().to_str().unwrap(),
            plans.path().to_str().unwrap(),
            &args,
            &[],
        );
        texts.push((extra, data_sections(plan)));
    }
    let (first_settings, first) = &texts[0];
    assert!(first.contains("\"payout_cost\""), "{first}");
    for (settings, text) in &texts[1..] {
        assert!(
            text == first,
            "{settings:?} vs {first_settings:?} differ at {}",
            first_difference(first, text)
        );
    }
}

/// Ids of the shipped fraud rules that have a Rhai `expression`.
fn shipped_expression_rules() -> Vec<String> {
    let text = std::fs::read_to_string(repo().join("rules/fraud.yaml")).unwrap();
    let mut rules = Vec::new();
    let mut current = None;
    for line in text.lines() {
        if let Some(id) = line.trim_start().strip_prefix("- id: ") {
            current = Some(id.trim().to_string());
        } else if line.trim_start().starts_with("expression:")
            && let Some(id) = current.take()
        {
            rules.push(id);
        }
    }
    rules
}

#[test]
fn compiled_rule_expressions_flag_the_same_referrals_as_the_interpreter_sweep_included() {
    // A data set of its own (another seed and scale than the shared one), so every rule fires.
    let data = tempfile::tempdir().unwrap();
    let root = data.path().to_str().unwrap();
    let o = run(refopt().args([
        "generate", "--root", root, "--days", "60", "--scale", "0.25", "--seed", "2718", "--end",
        AS_OF,
    ]));
    assert!(o.status.success(), "generate failed\n{}", text(&o));
    let expression_rules = shipped_expression_rules();
    assert!(expression_rules.len() >= 5, "{expression_rules:?}");
    let mut texts = Vec::new();
    for (engine, evaluation) in [("auto", "vectorized"), ("interpreter", "interpreted")] {
        let plans = tempfile::tempdir().unwrap();
        let (mut plan, _) = run_pipeline(
            root,
            plans.path().to_str().unwrap(),
            &["--detail", "full", "--rule-engine", engine],
            &[],
        );
        let rules = plan["risk"]["rules"].as_array_mut().unwrap();
        for rule in rules.iter_mut() {
            let id = rule["rule_id"].as_str().unwrap().to_string();
            assert_eq!(rule["error"], Value::Null, "{engine}: {rule}");
            let expected = if expression_rules.contains(&id) {
                evaluation
            } else {
                "vectorized"
            };
            assert_eq!(rule["evaluation"], expected, "{engine}: {id}");
            rule.as_object_mut().unwrap().remove("evaluation");
        }
        texts.push((engine, plan));
    }
    // Not a comparison of two empty results: the expression rules flag referrals, and the
    // sweep moves some of them.
    let risk = &texts[0].1["risk"];
    for id in &expression_rules {
        let rule = risk["rules"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["rule_id"] == id.as_str())
            .unwrap();
        assert!(rule["referrals_flagged"].as_u64().unwrap() > 0, "{rule}");
    }
    let sweep = risk["sensitivity"].to_string();
    assert!(sweep.contains("\"factor\":0.8"), "{sweep}");
    let (auto, interpreted) = (
        data_sections(texts[0].1.clone()),
        data_sections(texts[1].1.clone()),
    );
    assert!(
        auto == interpreted,
        "compiled vs interpreted rules differ at {}",
        first_difference(&auto, &interpreted)
    );
}

/// What docs/operations.md states a run may use beyond `--memory-limit` (memory the pool does
/// not account: the binary, Parquet metadata, window functions' buffers, the fraud review).
const RSS_OVERHEAD_MIB: u64 = 192;

/// Runs `cmd` to completion, polling the child's peak RSS (`VmHWM`) until it exits.
fn run_measuring_peak_rss(cmd: &mut std::process::Command) -> (std::process::Output, u64) {
    use std::process::Stdio;
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status_file = format!("/proc/{}/status", child.id());
    // Drain the pipes while polling, so a chatty child never blocks on a full pipe.
    let stdout = child.stdout.take().unwrap();
    let stderr = child.stderr.take().unwrap();
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).unwrap();
            bytes
        })
    };
    let (out, err) = (read(Box::new(stdout)), read(Box::new(stderr)));
    let mut peak_kib = 0u64;
    let status = loop {
        if let Ok(text) = std::fs::read_to_string(&status_file)
            && let Some(line) = text.lines().find(|l| l.starts_with("VmHWM:"))
        {
            let kib: u64 = line
                .split_whitespace()
                .nth(1)
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            peak_kib = peak_kib.max(kib);
        }
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let output = std::process::Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (output, peak_kib / 1024)
}

#[test]
fn two_million_invites_under_256_mib_give_the_unlimited_plan_within_the_stated_memory() {
    let data = tempfile::tempdir().unwrap();
    let root = data.path().to_str().unwrap();
    let o = run(refopt().args([
        "generate", "--root", root, "--days", "60", "--scale", "2", "--seed", "7", "--end", AS_OF,
    ]));
    assert!(o.status.success(), "generate failed\n{}", text(&o));
    let mut plans = Vec::new();
    for limit in [None, Some("256MiB")] {
        let mut cmd = refopt();
        cmd.args([
            "run",
            "optimize-referrals",
            "--root",
            root,
            "--dry-run",
            "--as-of",
            AS_OF,
            "--detail",
            "full",
            "--threads",
            "2",
            "--output",
            "json",
        ]);
        if let Some(limit) = limit {
            cmd.args(["--memory-limit", limit]);
        }
        let (o, peak_mib) = run_measuring_peak_rss(&mut cmd);
        assert!(o.status.success(), "run ({limit:?}) failed\n{}", text(&o));
        eprintln!("memory limit {limit:?}: peak RSS {peak_mib} MiB");
        if limit.is_some() {
            assert!(
                peak_mib <= 256 + RSS_OVERHEAD_MIB,
                "peak RSS {peak_mib} MiB under --memory-limit 256MiB (stated: limit + {RSS_OVERHEAD_MIB} MiB)"
            );
        }
        let plan: Value = serde_json::from_slice(&o.stdout).expect("plan JSON");
        let referrals = plan["risk"]["referrals_reviewed"].as_u64().unwrap();
        assert!(
            referrals > 150_000,
            "a 2 M-invite window: {referrals} referrals"
        );
        plans.push(data_sections(plan));
    }
    assert!(
        plans[0] == plans[1],
        "256 MiB vs unlimited differ at {}",
        first_difference(&plans[0], &plans[1])
    );
}
