//! Issue 20, item 8: every backlog item projects its lift from a stated model over measured
//! plan inputs. The tests recompute each lift from the item's `lift_formula` and `lift_inputs`
//! with their own Rhai engine and check the inputs against the plan sections they come from.

use std::path::Path;

use crate::harness::*;

const EXPERIMENTS: &str = "exp_double_reward,exp_aa_holdout,exp_share_button";

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

/// `formula` over `inputs` (numbers as floats), with this test's own `ratio` and `coalesce`.
fn evaluate(formula: &str, inputs: &serde_json::Map<String, serde_json::Value>) -> f64 {
    let mut engine = rhai::Engine::new();
    engine.set_strict_variables(true);
    engine.register_fn("ratio", |a: f64, b: f64| {
        if b == 0.0 {
            rhai::Dynamic::UNIT
        } else {
            rhai::Dynamic::from_float(a / b)
        }
    });
    engine.register_fn(
        "coalesce",
        |v: rhai::Dynamic, d: rhai::Dynamic| {
            if v.is_unit() { d } else { v }
        },
    );
    let mut scope = rhai::Scope::new();
    for (k, v) in inputs {
        let value = match v {
            serde_json::Value::Number(n) => rhai::Dynamic::from_float(n.as_f64().unwrap()),
            serde_json::Value::String(s) => rhai::Dynamic::from(s.clone()),
            _ => rhai::Dynamic::UNIT,
        };
        scope.push_dynamic(k.as_str(), value);
    }
    let out = engine
        .eval_expression_with_scope::<rhai::Dynamic>(&mut scope, formula)
        .unwrap_or_else(|e| panic!("`{formula}` over {inputs:?}: {e}"));
    out.as_float()
        .unwrap_or_else(|_| panic!("`{formula}` gave {out}"))
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
}

fn num(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[test]
fn every_backlog_item_projects_its_lift_from_its_stated_model() {
    let plans = tempfile::tempdir().unwrap();
    let (plan, _) = run_pipeline(
        shared_data().to_str().unwrap(),
        plans.path().to_str().unwrap(),
        &[
            "--dimensions",
            "channel",
            "--experiments",
            EXPERIMENTS,
            "--detail",
            "full",
        ],
        &[],
    );
    let backlog = plan["backlog"].as_array().unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for item in backlog {
        let title = item["title"].as_str().unwrap();
        let lift = item["projected_lift"]
            .as_f64()
            .unwrap_or_else(|| panic!("`{title}` has no projected lift: {item:#}"));
        assert!(
            item["assumption"].as_str().unwrap().trim().len() > 20,
            "`{title}` states no assumption: {item:#}"
        );
        let inputs = item["lift_inputs"].as_object().unwrap();
        let formula = item["lift_formula"].as_str().unwrap();
        let recomputed = evaluate(formula, inputs);
        assert!(
            close(lift, recomputed),
            "`{title}`: projected {lift}, `{formula}` gives {recomputed}"
        );
        kinds.insert(item["kind"].as_str().unwrap().to_string());
    }

    // The inputs are the plan's measurements, not numbers of the script's own.
    let by_kind = |k: &str| -> Vec<&serde_json::Value> {
        backlog.iter().filter(|i| i["kind"] == k).collect()
    };
    let overall = &plan["metrics"]["funnel"][0]["current"];
    let hold = by_kind("payout_hold")
        .into_iter()
        .next()
        .expect("a payout hold item");
    // Scripts see the plan's exact money as numbers.
    assert_eq!(
        num(&hold["lift_inputs"]["unpaid"]),
        money(&plan["risk"]["payout_hold"]["amount"])
    );
    assert_eq!(
        num(&hold["lift_inputs"]["program_payouts"]),
        money(&overall["payout_cost"])
    );
    assert!(num(&hold["projected_lift"]) > 0.0, "{hold:#}");

    let rollout = by_kind("experiment_rollout")
        .into_iter()
        .next()
        .expect("a roll-out item");
    let experiment = plan["experiments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["decision"] == "ship")
        .unwrap();
    let primary = experiment["comparisons"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["role"] == "primary" && c["variant"] == experiment["decision_variant"])
        .unwrap();
    assert!(close(
        num(&rollout["projected_lift"]),
        num(&primary["relative_lift"])
    ));
    assert_eq!(rollout["lift_inputs"]["ci_low"], primary["relative_ci"][0]);

    let at_risk = plan["partner_health"]["at_risk"].as_array().unwrap();
    let enablement = by_kind("partner_enablement");
    assert_eq!(enablement.len(), at_risk.len().min(3), "{enablement:#?}");
    for item in &enablement {
        let partner = at_risk
            .iter()
            .find(|p| {
                let id = p["partner_id"].as_str().unwrap();
                item["title"].as_str().unwrap().contains(&format!("({id})"))
            })
            .unwrap();
        let inputs = &item["lift_inputs"];
        assert_eq!(inputs["referrals"], partner["referrals"]);
        assert_eq!(inputs["referrals_previous"], partner["referrals_previous"]);
        assert_eq!(inputs["program_referrals"], overall["referrals"]);
        let decline = (num(&partner["referrals_previous"]) - num(&partner["referrals"])).max(0.0);
        assert!(close(
            num(&item["projected_lift"]),
            decline / num(&overall["referrals"])
        ));
    }
    for item in by_kind("tier_review") {
        let change = plan["partner_health"]["tier_changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| {
                let id = t["partner_id"].as_str().unwrap();
                item["title"].as_str().unwrap().contains(&format!("({id})"))
            })
            .unwrap();
        assert_eq!(item["lift_inputs"]["referrals"], change["referrals"]);
        assert_eq!(
            item["lift_inputs"]["referrals_previous"],
            change["referrals_previous"]
        );
    }
    for item in by_kind("investigation") {
        let alert = plan["alerts"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| {
                item["title"]
                    .as_str()
                    .unwrap()
                    .contains(a["id"].as_str().unwrap())
            })
            .unwrap();
        assert_eq!(item["lift_inputs"]["current"], alert["current"]);
        assert_eq!(item["lift_inputs"]["threshold"], alert["threshold"]);
    }
    for kind in [
        "payout_hold",
        "experiment_rollout",
        "partner_enablement",
        "experiment_proposal",
        "messaging_change",
    ] {
        assert!(kinds.contains(kind), "no {kind} item in {kinds:?}");
    }

    // The report shows each item's model at --detail full.
    let json = plan_files(plans.path()).pop().unwrap();
    let html = std::fs::read_to_string(json.with_extension("html")).unwrap();
    assert_eq!(
        html.matches("<tr class=\"assumption\">").count(),
        backlog.len().min(100)
    );
}

#[test]
fn an_item_without_an_assumption_or_with_a_wrong_lift_skips_the_playbook() {
    for (case, edit, expect) in [
        (
            "no assumption",
            "        assumption: \"Every held dollar",
            "has no `assumption`",
        ),
        (
            "lift disagrees with its formula",
            "        lift_formula: \"coalesce(ratio(unpaid, program_payouts), 0.0)\",",
            "disagrees with lift_formula",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let rules = rules_copy(dir.path(), |name, text| {
            if name != "playbook.rhai" {
                return text;
            }
            assert!(text.contains(edit), "{case}: `{edit}` not in the playbook");
            match case {
                "no assumption" => text.replacen(edit, "        note: \"Every held dollar", 1),
                _ => text.replacen(edit, &format!("{edit}\n        projected_lift: 0.5,"), 1),
            }
        });
        let plans = tempfile::tempdir().unwrap();
        let (plan, _) = run_pipeline(
            shared_data().to_str().unwrap(),
            plans.path().to_str().unwrap(),
            &["--rules", &rules],
            &[],
        );
        assert_eq!(
            plan["backlog"].as_array().unwrap().len(),
            0,
            "{case}: a failing playbook leaves the backlog empty"
        );
        let event = plan["error_handling"]["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["task_id"] == "playbook")
            .unwrap_or_else(|| panic!("{case}: the playbook is recorded as skipped"));
        assert_eq!(event["action"], "rule_skipped");
        let error = event["error"].as_str().unwrap();
        assert!(
            error.contains("playbook.rhai: backlog item `Hold $")
                && error.contains(expect.trim_start_matches("has ")),
            "{case}: {error}"
        );
    }
}
