//! The playbook: a Rhai script that reads the plan (findings, alerts, escalations, risk,
//! partner health, funnel) and returns backlog items. Items are checked (fields, owners) and
//! sorted deterministically (priority, then title).
//!
//! Every item states its lift model: `lift_formula`, a Rhai expression over the names of its
//! `lift_inputs`, and the `assumption` behind it. refopt evaluates the formula (in the sandbox,
//! numbers as floats) and writes the value as `projected_lift`; an item without a formula or an
//! assumption, whose formula fails or is not a finite number, or whose script-given
//! `projected_lift` disagrees with its formula, fails the playbook.

use refopt_plan::{BacklogItem, Plan};
use refopt_spec::ruleset::KNOWN_AGENTS;
use refopt_spec::sandbox::{self, Script};
use rhai::{Dynamic, Engine, Scope};

/// Runs the playbook over `plan`; `owners` are the ladder's owners (valid besides the agents).
pub fn run(script: &Script, plan: &Plan, owners: &[String]) -> Result<Vec<BacklogItem>, String> {
    let at = |e: &rhai::EvalAltResult| {
        format!(
            "{}: playbook: {}",
            sandbox::runtime_location(script, e),
            sandbox::describe(e)
        )
    };
    let input = rhai::serde::to_dynamic(refopt_plan::money::plan_with_money_as_numbers(plan))
        .map_err(|e| at(&e))?;
    let mut scope = Scope::new();
    scope.push_dynamic("plan", input);
    let output = sandbox::engine()
        .eval_ast_with_scope::<rhai::Dynamic>(&mut scope, &script.ast)
        .map_err(|e| at(&e))?;
    let mut items: Vec<BacklogItem> = rhai::serde::from_dynamic(&output).map_err(|e| {
        format!(
            "{}: playbook must return an array of items with kind, title, rationale, owner, eta_days, lift_formula, lift_inputs, assumption, priority: {}",
            script.file.display(),
            sandbox::describe(&e)
        )
    })?;
    let engine = sandbox::engine();
    for item in &mut items {
        let lift = projected_lift(&engine, item).map_err(|e| {
            format!(
                "{}: backlog item `{}`: {e}",
                script.file.display(),
                item.title
            )
        })?;
        item.projected_lift = Some(lift);
        if !KNOWN_AGENTS.contains(&item.owner.as_str()) && !owners.contains(&item.owner) {
            return Err(format!(
                "{}: backlog item `{}` has unknown owner `{}` (agents: {}; ladder owners: {})",
                script.file.display(),
                item.title,
                item.owner,
                KNOWN_AGENTS.join(", "),
                owners.join(", ")
            ));
        }
    }
    items.sort_by(|a, b| {
        a.priority
            .cmp(&b.priority)
            .then_with(|| a.title.cmp(&b.title))
    });
    Ok(items)
}

/// Relative gap a script's `projected_lift` may have from its formula's value (float noise).
const LIFT_TOLERANCE: f64 = 1e-9;

/// The value of the item's `lift_formula` over its `lift_inputs`, checked against the
/// script's own `projected_lift` when it gave one.
fn projected_lift(engine: &Engine, item: &BacklogItem) -> Result<f64, String> {
    if item.assumption.trim().is_empty() {
        return Err("no `assumption`: state what the lift model assumes".into());
    }
    if item.lift_formula.trim().is_empty() {
        return Err("no `lift_formula`: give the lift as an expression over `lift_inputs`".into());
    }
    let mut scope = Scope::new();
    for (name, value) in &item.lift_inputs {
        let value = match value {
            serde_json::Value::Number(n) => n.as_f64().map_or(Dynamic::UNIT, Dynamic::from_float),
            other => rhai::serde::to_dynamic(other).map_err(|e| sandbox::describe(&e))?,
        };
        scope.push_dynamic(name.as_str(), value);
    }
    let ast = engine
        .compile_expression_with_scope(&scope, &item.lift_formula)
        .map_err(|e| format!("lift_formula `{}` does not parse: {e}", item.lift_formula))?;
    let value = engine
        .eval_ast_with_scope::<Dynamic>(&mut scope, &ast)
        .map_err(|e| {
            format!(
                "lift_formula `{}` failed over lift_inputs: {}",
                item.lift_formula,
                sandbox::describe(&e)
            )
        })?;
    let lift = value
        .as_float()
        .or_else(|_| value.as_int().map(|i| i as f64))
        .map_err(|t| {
            format!(
                "lift_formula `{}` gave {t}, expected a number",
                item.lift_formula
            )
        })?;
    if !lift.is_finite() {
        return Err(format!(
            "lift_formula `{}` gave the non-finite {lift}",
            item.lift_formula
        ));
    }
    if let Some(given) = item.projected_lift
        && (given - lift).abs() > LIFT_TOLERANCE * lift.abs().max(1.0)
    {
        return Err(format!(
            "projected_lift {given} disagrees with lift_formula `{}` = {lift}",
            item.lift_formula
        ));
    }
    Ok(lift)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(formula: &str, inputs: serde_json::Value) -> BacklogItem {
        BacklogItem {
            title: "t".into(),
            lift_formula: formula.into(),
            lift_inputs: inputs.as_object().unwrap().clone(),
            assumption: "a".into(),
            ..BacklogItem::default()
        }
    }

    #[test]
    fn the_formula_is_evaluated_over_the_inputs_as_floats() {
        let engine = sandbox::engine();
        // Integer inputs divide as floats: 3 / 4 is 0.75, not 0.
        let i = item("a / b", serde_json::json!({"a": 3, "b": 4}));
        assert_eq!(projected_lift(&engine, &i), Ok(0.75));
        let i = item(
            "coalesce(ratio(a, b), 0.0)",
            serde_json::json!({"a": 1, "b": 0}),
        );
        assert_eq!(projected_lift(&engine, &i), Ok(0.0));
    }

    #[test]
    fn items_without_a_model_or_with_a_broken_one_are_rejected() {
        let engine = sandbox::engine();
        let mut i = item("a", serde_json::json!({"a": 1}));
        i.assumption = " ".into();
        assert!(
            projected_lift(&engine, &i)
                .unwrap_err()
                .contains("assumption")
        );
        let i = item("missing + 1.0", serde_json::json!({"a": 1}));
        assert!(projected_lift(&engine, &i).unwrap_err().contains("missing"));
        let i = item("a / b", serde_json::json!({"a": 1, "b": 0}));
        assert!(
            projected_lift(&engine, &i)
                .unwrap_err()
                .contains("non-finite")
        );
        let i = item("name", serde_json::json!({"name": "x"}));
        assert!(
            projected_lift(&engine, &i)
                .unwrap_err()
                .contains("expected a number")
        );
        let mut i = item("a * 2.0", serde_json::json!({"a": 0.1}));
        i.projected_lift = Some(0.3);
        assert!(
            projected_lift(&engine, &i)
                .unwrap_err()
                .contains("disagrees")
        );
        i.projected_lift = Some(0.2);
        assert_eq!(projected_lift(&engine, &i), Ok(0.2));
    }
}
