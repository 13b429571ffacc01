//! Experiment statistics against an independent reference: `tests/python/experiments_reference.py`
//! rebuilds every unit's outcomes from the Parquet files (DuckDB row reads, Python joins) and
//! runs statsmodels/scipy. Every lift, CI, statistic and p-value in the plan must match to 1e-9
//! relative; the generator's planted effects must come out as planted.

use std::process::Command;

use crate::harness::*;

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * a.abs().max(b.abs()) || (a - b).abs() < 1e-15
}

fn assert_close(plan: &serde_json::Value, reference: &serde_json::Value, what: &str) {
    let (a, b) = (plan.as_f64(), reference.as_f64());
    match (a, b) {
        (Some(a), Some(b)) => assert!(close(a, b), "{what}: plan {a} vs reference {b}"),
        _ => panic!("{what}: plan {plan} vs reference {reference}"),
    }
}

#[test]
fn experiment_statistics_match_statsmodels_and_scipy_and_find_the_planted_effects() {
    // Larger than the shared data set: a 55/45 split needs over 1,100 units before a
    // chi-square test at 0.001 can see it.
    let data = tempfile::tempdir().unwrap();
    let root = data.path().to_str().unwrap();
    let o = run(refopt().args([
        "generate", "--root", root, "--days", "60", "--scale", "0.2", "--seed", "31", "--end",
        AS_OF,
    ]));
    assert!(o.status.success(), "{}", text(&o));
    let plans = tempfile::tempdir().unwrap();
    let (plan, _) = run_pipeline(
        root,
        plans.path().to_str().unwrap(),
        &[
            "--experiments",
            "exp_double_reward,exp_aa_holdout,exp_share_button",
            "--detail",
            "full",
        ],
        &[],
    );
    let experiments = plan["experiments"].as_array().unwrap();
    assert_eq!(experiments.len(), 3);

    // The reference gets each experiment's declared design and the metrics in plan order.
    let spec: Vec<serde_json::Value> = experiments
        .iter()
        .map(|e| {
            let metrics: Vec<&serde_json::Value> = e["comparisons"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| &c["metric"])
                .collect();
            let variants: serde_json::Map<String, serde_json::Value> = e["variants"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| {
                    (
                        v["variant"].as_str().unwrap().to_string(),
                        v["expected_share"].clone(),
                    )
                })
                .collect();
            serde_json::json!({
                "id": e["id"], "control": e["control"], "variants": variants,
                "metrics": metrics, "alpha": e["alpha"], "correction": e["correction"],
            })
        })
        .collect();
    let o = run(Command::new(python()).args([
        repo()
            .join("tests/python/experiments_reference.py")
            .to_str()
            .unwrap(),
        root,
        &plan["inputs"]["window_start"].as_str().unwrap()[..10],
        plan["inputs"]["as_of"].as_str().unwrap(),
        &serde_json::Value::from(spec).to_string(),
    ]));
    assert!(o.status.success(), "reference failed\n{}", text(&o));
    let reference: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();

    let mut checked = 0;
    for e in experiments {
        let id = e["id"].as_str().unwrap();
        let r = &reference[id];
        for v in e["variants"].as_array().unwrap() {
            assert_eq!(
                v["units"],
                r["units"][v["variant"].as_str().unwrap()],
                "{id} units"
            );
        }
        assert_eq!(
            e["multi_exposed_units"], r["multi_exposed"],
            "{id} multi-exposed"
        );
        assert_close(
            &e["srm"]["chi_square"],
            &r["srm_chi_square"],
            "srm chi-square",
        );
        assert_close(&e["srm"]["p_value"], &r["srm_p_value"], "srm p-value");
        let comparisons = e["comparisons"].as_array().unwrap();
        let expected = r["comparisons"].as_array().unwrap();
        assert_eq!(comparisons.len(), expected.len(), "{id}");
        for (c, x) in comparisons.iter().zip(expected) {
            let what = format!("{id} {} {}", c["variant"], c["metric"]);
            assert_eq!(c["metric"], x["metric"]);
            for field in [
                "control_value",
                "variant_value",
                "absolute_lift",
                "relative_lift",
                "statistic",
                "p_value",
                "p_adjusted",
            ] {
                assert_close(&c[field], &x[field], &format!("{what} {field}"));
                checked += 1;
            }
            for field in ["absolute_ci", "relative_ci"] {
                for i in 0..2 {
                    assert_close(&c[field][i], &x[field][i], &format!("{what} {field}[{i}]"));
                    checked += 1;
                }
            }
        }
    }
    assert!(checked > 60, "only {checked} numbers compared");

    let by_id = |id: &str| experiments.iter().find(|e| e["id"] == id).unwrap();
    let primary = |e: &serde_json::Value| {
        e["comparisons"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["role"] == "primary")
            .unwrap()
            .clone()
    };

    // The planted effect (treatment refers more): detected, positive, shipped.
    let real = by_id("exp_double_reward");
    let p = primary(real);
    assert_eq!(real["decision"], "ship", "{}", real["decision_reason"]);
    assert_eq!(real["decision_variant"], "treatment");
    assert!(p["significant"].as_bool().unwrap());
    assert!(p["relative_ci"][0].as_f64().unwrap() > 0.0, "{p}");
    assert!(
        real["multi_exposed_units"].as_u64().unwrap() > 0,
        "contaminated units reported"
    );
    assert_eq!(real["srm"]["mismatch"], false);

    // A/A: nothing on the primary metric, and never shipped.
    let aa = by_id("exp_aa_holdout");
    let p = primary(aa);
    assert!(!p["significant"].as_bool().unwrap(), "{p}");
    assert_ne!(aa["decision"], "ship");
    assert_eq!(aa["srm"]["mismatch"], false);

    // The 55/45 split of a 50/50 design: SRM, and no decision on the effect.
    let srm = by_id("exp_share_button");
    assert_eq!(srm["srm"]["mismatch"], true, "{}", srm["srm"]);
    assert_eq!(srm["decision"], "investigate_srm");

    // The playbook turns the decisions into backlog items with the measured lift.
    let backlog = plan["backlog"].as_array().unwrap();
    let rollout = backlog
        .iter()
        .find(|b| b["title"] == "Roll out treatment of exp_double_reward")
        .expect("roll-out item");
    assert_close(
        &rollout["projected_lift"],
        &primary(real)["relative_lift"],
        "projected lift",
    );
    assert!(
        backlog
            .iter()
            .any(|b| b["title"].as_str().unwrap().contains("exp_share_button"))
    );
}

#[test]
fn an_unknown_experiment_is_a_configuration_error() {
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
        "--experiments",
        "exp_double_rewards",
    ]));
    let err = expect_exit(&o, 3);
    assert!(
        err.contains("unknown experiment `exp_double_rewards` (did you mean `exp_double_reward`?)"),
        "{err}"
    );
    assert!(plan_files(plans.path()).is_empty());
}
