//! Issue 20, item 10: partner communications. A partner with a tier change or a health drop
//! (its score fell by `health_drop_points` since the previous plan) gets exactly one message
//! drafted from `rules/partner_messages.yaml`, with its name and measured numbers, in the plan
//! and the report; a template naming an unknown placeholder is a located `validate` error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::harness::*;

/// Copies `rules/` into `dir`, applying `edit(file name, text)` to every file.
fn rules_copy(dir: &Path, edit: impl Fn(&str, String) -> String) -> String {
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

fn scores(plan: &serde_json::Value) -> BTreeMap<String, f64> {
    plan["partner_health"]["scores"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_f64().unwrap()))
        .collect()
}

/// The report escapes text as minijinja does for HTML.
fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#x27;")
        .replace('/', "&#x2f;")
}

#[test]
fn partners_with_tier_changes_or_health_drops_get_one_drafted_message_each() {
    let plans = tempfile::tempdir().unwrap();
    let plans_dir = plans.path().to_str().unwrap();
    let data = shared_data().to_str().unwrap();
    // First plan: every partner scores 20 points higher (clamped at 100) than the shipped
    // script says. The second plan, with the shipped rules, then sees drops of up to 20.
    let boosted = tempfile::tempdir().unwrap();
    let last = "if row.status != \"active\" { score * 0.5 } else { score }";
    let rules = rules_copy(boosted.path(), |name, text| {
        if name == "partner_health.rhai" {
            assert!(text.contains(last));
            text.replace(last, &format!("({last}) + 20.0"))
        } else {
            text
        }
    });
    let (first, _) = run_pipeline(data, plans_dir, &["--rules", &rules], &[]);
    assert!(
        first["partner_health"]["health_drops"]
            .as_array()
            .unwrap()
            .is_empty(),
        "no earlier plan, no drop"
    );
    let (plan, _) = run_pipeline(data, plans_dir, &[], &[]);
    let health = &plan["partner_health"];

    // Health drops: exactly the partners 10+ points (partner_health.yaml) below plan 1.
    let (before, now) = (scores(&first), scores(&plan));
    assert_eq!(
        now.len() as u64,
        health["partners_scored"].as_u64().unwrap()
    );
    let expected: BTreeSet<&String> = now
        .iter()
        .filter(|(id, s)| before.get(*id).is_some_and(|b| b - *s >= 10.0))
        .map(|(id, _)| id)
        .collect();
    let drops = health["health_drops"].as_array().unwrap();
    let dropped: BTreeSet<&String> = drops
        .iter()
        .map(|d| {
            let id = d["partner_id"].as_str().unwrap();
            let (b, s) = (before[id], now[id]);
            assert_eq!(d["previous_score"].as_f64(), Some(b), "{d}");
            assert_eq!(d["score"].as_f64(), Some(s), "{d}");
            assert!((d["drop"].as_f64().unwrap() - (b - s)).abs() < 1e-9, "{d}");
            assert_eq!(d["previous_version"], first["version"]);
            now.get_key_value(id).unwrap().0
        })
        .collect();
    assert!(
        expected.len() >= 5,
        "the boost must produce drops: {expected:?}"
    );
    assert_eq!(dropped, expected);

    // One message per partner with a tier change or a drop; a tier change takes precedence.
    let tier_changes = health["tier_changes"].as_array().unwrap();
    let changed: BTreeSet<&str> = tier_changes
        .iter()
        .map(|t| t["partner_id"].as_str().unwrap())
        .collect();
    let messages = plan["partner_communications"].as_array().unwrap();
    let mut ids: Vec<&str> = messages
        .iter()
        .map(|m| m["partner_id"].as_str().unwrap())
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), messages.len(), "one message per partner");
    let wanted: BTreeSet<&str> = changed
        .iter()
        .copied()
        .chain(expected.iter().map(|s| s.as_str()))
        .collect();
    assert_eq!(ids.iter().copied().collect::<BTreeSet<_>>(), wanted);

    for m in messages {
        let id = m["partner_id"].as_str().unwrap();
        let body = m["body"].as_str().unwrap();
        let name = m["partner_name"].as_str().unwrap();
        assert_eq!(m["owner"], "partner-ops");
        assert!(!name.is_empty() && body.contains(name), "{m:#}");
        assert!(m["subject"].as_str().unwrap().contains(name), "{m:#}");
        let (numbers, reason) = match tier_changes.iter().find(|t| t["partner_id"] == id) {
            Some(t) => (
                vec![
                    format!("{:.1}", t["score"].as_f64().unwrap()),
                    format!(
                        "from {} to {}",
                        t["from"].as_str().unwrap(),
                        t["to"].as_str().unwrap()
                    ),
                    format!("sent {} referrals", t["referrals"]),
                    format!("(previous window: {})", t["referrals_previous"]),
                    format!("${:.0}", money(&t["revenue"])),
                ],
                "tier_change",
            ),
            None => {
                let d = drops.iter().find(|d| d["partner_id"] == id).unwrap();
                (
                    vec![
                        format!(
                            "from {:.1} to {:.1}",
                            d["previous_score"].as_f64().unwrap(),
                            d["score"].as_f64().unwrap()
                        ),
                        format!("down {:.1} points", d["drop"].as_f64().unwrap()),
                        format!("plan v{}", first["version"]),
                        format!("sent {} referrals", d["referrals"]),
                        format!("${:.0}", money(&d["revenue"])),
                    ],
                    "health_drop",
                )
            }
        };
        assert_eq!(m["reason"], reason, "{m:#}");
        for n in numbers {
            assert!(
                body.contains(&n),
                "`{n}` missing from the {reason} message:\n{body}"
            );
        }
    }

    // The report shows every draft; the Markdown summary counts them.
    let json = plan_files(plans.path()).pop().unwrap();
    assert!(json.ends_with("plan-v000002.json"), "{}", json.display());
    let html = std::fs::read_to_string(json.with_extension("html")).unwrap();
    for m in messages {
        let id = m["partner_id"].as_str().unwrap();
        assert_eq!(
            html.matches(&format!("data-partner=\"{id}\"")).count(),
            1,
            "{id}"
        );
        let first_line = m["body"].as_str().unwrap().lines().next().unwrap();
        assert!(html.contains(&html_escape(first_line)), "{first_line}");
    }
    let md = std::fs::read_to_string(json.with_extension("md")).unwrap();
    assert!(
        md.contains(&format!(
            "**Partner messages to review** ({}",
            messages.len()
        )),
        "{md}"
    );
}

#[test]
fn an_unknown_placeholder_in_a_partner_message_is_a_located_validate_error() {
    let dir = tempfile::tempdir().unwrap();
    for folder in ["pipelines", "rules"] {
        copy_tree(&repo().join(folder), &dir.path().join(folder));
    }
    let file = dir.path().join("rules/partner_messages.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let needle = "down {drop} points";
    assert!(text.contains(needle));
    let text = text.replacen(needle, "down {dorp} points", 1);
    std::fs::write(&file, &text).unwrap();
    // Where the typo is, counted independently of refopt.
    let (line, column) = text
        .lines()
        .enumerate()
        .find_map(|(i, l)| l.find("{dorp}").map(|c| (i + 1, c + 1)))
        .unwrap();

    let o = run(refopt().current_dir(dir.path()).arg("validate"));
    let stderr = expect_exit(&o, 1);
    let first = stderr.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!(
            "rules/partner_messages.yaml:{line}:{column}: error[RF006]: templates.health_drop.body: unknown placeholder `{{dorp}}`"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("help: a health_drop message can use"),
        "{stderr}"
    );
    assert!(stderr.contains("{drop}"), "{stderr}");
}
