//! `refopt plan …`: reading the versioned plan store.

use anyhow::anyhow;
use refopt_engine::EngineError;
use refopt_plan::{Plan, PlanStore, StoredPlan};
use serde_json::Value;

use crate::args::{Output, PlanCommand, PlanStoreArgs};

/// Keys that differ on every run and say nothing about the plan's content.
const VOLATILE: [&str; 8] = [
    "run_id",
    "created_at",
    "version",
    "started_at",
    "finished_at",
    "duration_ms",
    "flagged_referrals_url",
    "change_log",
];

pub async fn run(command: PlanCommand) -> anyhow::Result<()> {
    match command {
        PlanCommand::Approve(args) => crate::distribute::decide(args, true).await,
        PlanCommand::Reject(args) => crate::distribute::decide(args, false).await,
        PlanCommand::Ack(args) => crate::distribute::acknowledge(args).await,
        PlanCommand::Audit {
            which,
            output,
            rules,
            store,
        } => crate::distribute::audit(&which, output, rules.as_deref(), &store).await,
        PlanCommand::Gc {
            older_than,
            dry_run,
            store,
        } => gc(&store, older_than, dry_run).await,
        PlanCommand::List(store) => {
            let (s, plans) = open(&store).await?;
            if plans.is_empty() {
                println!("no plans for {} in {}", store.pipeline, store.plans);
            }
            for p in &plans {
                let plan = read(&s, p).await?;
                println!(
                    "v{:<5} {}  window {} as of {}  findings {:>3}  alerts {:>2}  escalations {:>2}  {}",
                    p.version,
                    plan.created_at,
                    plan.inputs.window,
                    plan.inputs.as_of,
                    plan.findings.len(),
                    plan.alerts.len(),
                    plan.escalations.len(),
                    p.url
                );
            }
            Ok(())
        }
        PlanCommand::Show {
            which,
            section,
            store,
        } => {
            let (s, plans) = open(&store).await?;
            let plan = serde_json::to_value(read(&s, pick(&plans, &which)?).await?)?;
            let value = match &section {
                Some(key) => plan.get(key).cloned().ok_or_else(|| {
                    anyhow!(
                        "no section `{key}`; sections: {}",
                        plan.as_object()
                            .map(|o| o.keys().cloned().collect::<Vec<_>>().join(", "))
                            .unwrap_or_default()
                    )
                })?,
                None => plan,
            };
            println!("{}", serde_json::to_string_pretty(&value)?);
            Ok(())
        }
        PlanCommand::Diff {
            a,
            b,
            output,
            store,
        } => {
            let (s, plans) = open(&store).await?;
            let (pa, pb) = (pick(&plans, &a)?, pick(&plans, &b)?);
            let va = serde_json::to_value(read(&s, pa).await?)?;
            let vb = serde_json::to_value(read(&s, pb).await?)?;
            let mut changes = Vec::new();
            diff(&va, &vb, String::new(), &mut changes);
            match output {
                Output::Json => {
                    let list: Vec<Value> = changes
                        .iter()
                        .map(|(path, old, new)| serde_json::json!({ "path": path, "old": old, "new": new }))
                        .collect();
                    println!("{}", serde_json::to_string_pretty(&list)?);
                }
                Output::Human => {
                    println!(
                        "v{} -> v{}: {} change(s)",
                        pa.version,
                        pb.version,
                        changes.len()
                    );
                    for (path, old, new) in &changes {
                        println!("  {path}: {} -> {}", short(old), short(new));
                    }
                }
            }
            Ok(())
        }
        PlanCommand::History { metric, store } => {
            let (s, plans) = open(&store).await?;
            for p in &plans {
                let plan = serde_json::to_value(read(&s, p).await?)?;
                let value = metric
                    .split('.')
                    .try_fold(&plan, |v, key| match key.parse::<usize>() {
                        Ok(i) => v.get(i),
                        Err(_) => v.get(key),
                    })
                    .cloned()
                    .unwrap_or(Value::Null);
                println!(
                    "v{:<5} as of {}  {}",
                    p.version,
                    plan["inputs"]["as_of"].as_str().unwrap_or("?"),
                    short(&value)
                );
            }
            Ok(())
        }
    }
}

/// The plan store and its plans (oldest first) for `args`.
/// `plan gc`: deletes (or with `dry_run` lists) the flagged-referrals files no plan names.
async fn gc(
    store: &PlanStoreArgs,
    grace: std::time::Duration,
    dry_run: bool,
) -> anyhow::Result<()> {
    let (s, plans) = open(store).await?;
    let mut referenced = std::collections::BTreeSet::new();
    for p in &plans {
        // An unreadable plan stops the collection: it may name a file that must stay.
        let plan = read(&s, p).await?;
        referenced.extend(plan.risk.flagged_referrals_url);
    }
    let orphans = s
        .unreferenced_artifacts(
            &store.pipeline,
            refopt_plan::FLAGGED_REFERRALS_FOLDER,
            &referenced,
            grace,
        )
        .await
        .map_err(EngineError::from)?;
    let bytes: u64 = orphans.iter().map(|o| o.bytes).sum();
    for orphan in &orphans {
        if !dry_run {
            s.delete_orphan(orphan).await.map_err(EngineError::from)?;
        }
        println!(
            "{} {} ({} bytes)",
            if dry_run { "would delete" } else { "deleted" },
            orphan.url,
            orphan.bytes
        );
    }
    println!(
        "{} {} unreferenced file(s), {bytes} bytes; {} plan(s) name {} file(s)",
        if dry_run { "would delete" } else { "deleted" },
        orphans.len(),
        plans.len(),
        referenced.len()
    );
    Ok(())
}

pub(crate) async fn open(args: &PlanStoreArgs) -> anyhow::Result<(PlanStore, Vec<StoredPlan>)> {
    let location = refopt_engine::storage::resolve(&args.plans)
        .map_err(|e| EngineError::Parameter(e.to_string()))?;
    let store = PlanStore::new(location.store, location.prefix, location.display);
    let plans = store
        .list(&args.pipeline)
        .await
        .map_err(EngineError::from)?;
    Ok((store, plans))
}

/// A stored plan's bytes as a plan, under the `schema_version` rules (an unreadable plan is a
/// data error naming the plan).
pub(crate) fn decode(stored: &StoredPlan, bytes: &[u8]) -> anyhow::Result<Plan> {
    refopt_plan::parse_plan(bytes)
        .map(|read| {
            if read.float_money {
                crate::progress::warning(&format!(
                    "note: {} is schema {}: its money was written as floating-point numbers and is read rounded to the cent",
                    refopt_spec::redact::terminal_safe(&stored.url),
                    read.plan.schema_version
                ));
            }
            read.plan
        })
        .map_err(|source| {
            EngineError::from(refopt_plan::PlanStoreError::Decode {
                location: stored.url.clone(),
                source,
            })
            .into()
        })
}

pub(crate) async fn read(store: &PlanStore, p: &StoredPlan) -> anyhow::Result<Plan> {
    store.read(p).await.map_err(|e| EngineError::from(e).into())
}

/// A version number (`7`, `v7`) or `latest`.
pub(crate) fn pick<'a>(plans: &'a [StoredPlan], version: &str) -> anyhow::Result<&'a StoredPlan> {
    let found = if version == "latest" {
        plans.last()
    } else {
        let n: u64 = version.trim_start_matches('v').parse().map_err(|_| {
            EngineError::Parameter(format!("`{version}` is not a version number or `latest`"))
        })?;
        plans.iter().find(|p| p.version == n)
    };
    found.ok_or_else(|| {
        EngineError::Parameter(format!(
            "no plan version {version} (versions: {})",
            plans
                .iter()
                .map(|p| p.version.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .into()
    })
}

/// Paths (dot-separated, array indices as numbers) whose values differ.
fn diff(a: &Value, b: &Value, path: String, out: &mut Vec<(String, Value, Value)>) {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_string()
        } else {
            format!("{path}.{key}")
        }
    };
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                if VOLATILE.contains(&k.as_str()) {
                    continue;
                }
                let (va, vb) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                diff(va, vb, join(k), out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (va, vb)) in x.iter().zip(y).enumerate() {
                diff(va, vb, join(&i.to_string()), out);
            }
        }
        // Parallel float sums differ in the last bits between runs: not a change.
        (Value::Number(x), Value::Number(y))
            if x.as_f64()
                .zip(y.as_f64())
                .is_some_and(|(x, y)| (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)) => {}
        _ if a != b => out.push((path, a.clone(), b.clone())),
        _ => {}
    }
}

fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 120 {
        format!(
            "{}…",
            &s[..s.char_indices().nth(117).map_or(s.len(), |(i, _)| i)]
        )
    } else {
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_ignores_volatile_keys_and_reports_paths() {
        let a = serde_json::json!({ "run_id": "a", "risk": { "rules": [{ "n": 1 }, { "n": 2 }] } });
        let b = serde_json::json!({ "run_id": "b", "risk": { "rules": [{ "n": 1 }, { "n": 3 }] } });
        let mut out = Vec::new();
        diff(&a, &b, String::new(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, "risk.rules.1.n");
    }
}
