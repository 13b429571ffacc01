//! The dashboard snapshot as a reader sees it: the HTML report written beside a plan is opened
//! in headless Chromium with the network off (`tests/python/report_browser.py`, Playwright), on
//! data whose partners are all named `<script>alert(1)</script>`.

use std::path::Path;
use std::process::Command;

use crate::harness::*;

const XSS: &str = "<script>alert(1)</script>";
const EXPERIMENTS: &str = "exp_double_reward,exp_aa_holdout,exp_share_button";

/// `27701` -> `27,701`, as the report prints counts.
fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn run_at(data: &str, plans: &str, as_of: &str, detail: &str) -> serde_json::Value {
    let o = run(refopt().args([
        "run",
        "optimize-referrals",
        "--root",
        data,
        "--plans",
        plans,
        "--as-of",
        as_of,
        "--window",
        "30d",
        "--dimensions",
        "channel,region",
        "--experiments",
        EXPERIMENTS,
        "--detail",
        detail,
        "--output",
        "json",
    ]));
    assert!(o.status.success(), "run failed\n{}", text(&o));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("report: file://"),
        "run did not announce its report:\n{stderr}"
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn chromium() -> String {
    let path = std::env::var("REFOPT_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&path).exists(),
        "Chromium not found at {path}: install Debian's `chromium` (tests/run.sh does when run as root) or set REFOPT_CHROMIUM"
    );
    path
}

#[test]
fn html_report_renders_offline_in_chromium_with_plan_values_and_escaped_partner_names() {
    let python = python();
    let chromium = chromium();
    let data = tempfile::tempdir().unwrap();
    copy_tree(shared_data(), data.path());
    let partners = data.path().join("partners/part-00000.parquet");
    let rename = format!(
        "import duckdb, os; f = {:?}; duckdb.sql(\"COPY (SELECT * REPLACE ('{XSS}' AS name) FROM read_parquet('\" + f + \"')) TO '\" + f + \".new' (FORMAT parquet)\"); os.replace(f + '.new', f)",
        partners.to_str().unwrap()
    );
    let o = run(Command::new(&python).args(["-c", &rename]));
    assert!(o.status.success(), "{}", text(&o));

    let plans = tempfile::tempdir().unwrap();
    let plans_root = plans.path().to_str().unwrap();
    let root = data.path().to_str().unwrap();
    let first = run_at(root, plans_root, "2026-05-25", "summary");
    let plan = run_at(root, plans_root, AS_OF, "full");
    let folder = plans.path().join("optimize-referrals");
    let html_path = folder.join("plan-v000002.html");
    let html = std::fs::read_to_string(&html_path).unwrap();

    // The partner name is data: it appears escaped in the file, never as a tag.
    assert!(!html.contains(XSS), "raw partner name in the HTML");
    assert!(
        html.contains("&lt;script&gt;alert(1)&lt;"),
        "escaped partner name missing"
    );

    let o = run(Command::new(&python)
        .arg(repo().join("tests/python/report_browser.py"))
        .arg(&html_path)
        .env("REFOPT_CHROMIUM", &chromium));
    assert!(o.status.success(), "browser failed\n{}", text(&o));
    let seen: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let list = |key: &str| seen[key].as_array().unwrap().clone();
    assert!(
        list("console_errors").is_empty(),
        "console errors: {:?}",
        seen["console_errors"]
    );
    assert!(
        list("page_errors").is_empty(),
        "page errors: {:?}",
        seen["page_errors"]
    );
    assert!(
        list("dialogs").is_empty(),
        "a script ran: {:?}",
        seen["dialogs"]
    );
    assert!(
        list("blocked").is_empty(),
        "external requests: {:?}",
        seen["blocked"]
    );
    assert_eq!(
        list("requests").len(),
        1,
        "only the report itself loads: {:?}",
        seen["requests"]
    );
    assert_eq!(seen["scripts"], 0, "no script element may exist");
    let page_text = seen["text"].as_str().unwrap();
    assert!(page_text.contains(XSS), "the partner name is shown as text");

    let sections: Vec<&str> = seen["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for id in [
        "headline",
        "success-metrics",
        "funnel",
        "risk",
        "partners",
        "experiments",
        "alerts",
        "backlog",
        "findings",
    ] {
        assert!(sections.contains(&id), "section {id} missing: {sections:?}");
    }
    let charts = list("charts");
    let chart = |name: &str| {
        charts
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("chart {name} missing: {charts:?}"))
            .clone()
    };
    for name in [
        "funnel",
        "funnel-channel",
        "funnel-region",
        "flag-rate-trend",
        "rule-hits",
        "sensitivity",
        "partner-quadrant",
        "forest-exp_double_reward",
    ] {
        let c = chart(name);
        assert_eq!(c["svg"], true, "{name} has no SVG");
        assert!(
            c["width"].as_f64().unwrap() > 300.0,
            "{name} is not laid out: {c}"
        );
        assert!(
            c["marks"].as_u64().unwrap() >= 5,
            "{name} draws nothing: {c}"
        );
    }
    for name in [
        "funnel",
        "funnel-channel",
        "flag-rate-trend",
        "rule-hits",
        "partner-quadrant",
    ] {
        assert!(
            chart(name)["insight"]
                .as_str()
                .is_some_and(|s| !s.is_empty()),
            "{name} has no insight"
        );
    }

    // Values on the page equal the plan's.
    let tiles = list("tiles");
    let tile = |key: &str| {
        tiles
            .iter()
            .find(|t| t["key"] == key)
            .unwrap_or_else(|| panic!("tile {key}"))
            .clone()
    };
    let flagged = plan["risk"]["referrals_flagged"].as_u64().unwrap();
    assert_eq!(tile("referrals_flagged")["display"], grouped(flagged));
    assert_eq!(
        tile("referrals_flagged")["value"]
            .as_str()
            .unwrap()
            .parse::<f64>()
            .unwrap(),
        flagged as f64
    );
    let invites = plan["metrics"]["funnel"][0]["current"]["invites"]
        .as_u64()
        .unwrap();
    assert_eq!(tile("invites")["display"], grouped(invites));
    assert!(
        chart("funnel")["insight"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{} invites", grouped(invites)))
    );
    // The trend has the earlier plan as its first point.
    let trend = chart("flag-rate-trend")["insight"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(trend.contains("as of 2026-05-25"), "{trend}");
    assert!(page_text.contains("compared with plan v1 (as of 2026-05-25)"));
    assert_eq!(first["version"], 1);

    // The Markdown summary of the summary-detail plan: short, escaped.
    let md = std::fs::read_to_string(folder.join("plan-v000001.md")).unwrap();
    assert!(
        md.chars().count() < 4000,
        "summary is {} characters",
        md.chars().count()
    );
    assert!(
        !md.contains("<script"),
        "raw markup in the Markdown summary"
    );
    assert!(md.contains("plan v1"));

    // `refopt report` renders the same bytes from the stored plan and its predecessors.
    let out = plans.path().join("again.html");
    let plan_url = folder.join("plan-v000002.json");
    let o = run(refopt().args([
        "report",
        plan_url.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        html,
        "re-rendered report differs"
    );
    let o = run(refopt().args([
        "report",
        folder.join("plan-v000001.json").to_str().unwrap(),
        "--format",
        "markdown",
        "--out",
        "-",
    ]));
    assert!(o.status.success(), "{}", text(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout), md);
    // A file that is not a stored plan is refused with its name.
    let o = run(refopt().args(["report", folder.join("plan-v000009.json").to_str().unwrap()]));
    assert!(
        expect_exit(&o, 3).contains("plan-v000009.json: no such plan"),
        "{}",
        text(&o)
    );
}
