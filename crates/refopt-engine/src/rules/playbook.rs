//! The playbook: a Rhai script that reads the plan (findings, alerts, escalations, risk,
//! partner health, funnel) and returns backlog items. Items are checked (fields, owners) and
//! sorted deterministically (priority, then title).

use refopt_plan::{BacklogItem, Plan};
use refopt_spec::ruleset::KNOWN_AGENTS;
use refopt_spec::sandbox::{self, Script};
use rhai::Scope;

/// Runs the playbook over `plan`; `owners` are the ladder's owners (valid besides the agents).
pub fn run(script: &Script, plan: &Plan, owners: &[String]) -> Result<Vec<BacklogItem>, String> {
    let at = |e: &rhai::EvalAltResult| {
        format!(
            "{}: playbook: {}",
            sandbox::runtime_location(script, e),
            sandbox::describe(e)
        )
    };
    let input = rhai::serde::to_dynamic(plan).map_err(|e| at(&e))?;
    let mut scope = Scope::new();
    scope.push_dynamic("plan", input);
    let output = sandbox::engine()
        .eval_ast_with_scope::<rhai::Dynamic>(&mut scope, &script.ast)
        .map_err(|e| at(&e))?;
    let mut items: Vec<BacklogItem> = rhai::serde::from_dynamic(&output).map_err(|e| {
        format!(
            "{}: playbook must return an array of items with title, rationale, owner, eta_days, projected_lift, lift_formula, lift_inputs, priority: {}",
            script.file.display(),
            sandbox::describe(&e)
        )
    })?;
    for item in &items {
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
        if let Some(l) = item.projected_lift
            && !l.is_finite()
        {
            return Err(format!(
                "{}: backlog item `{}` has a non-finite projected lift",
                script.file.display(),
                item.title
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
