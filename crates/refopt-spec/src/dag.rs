//! Stage dependency graph: a deterministic topological order, or the cycle that prevents one.

use std::collections::{BTreeMap, BTreeSet};

use crate::pipeline::Stage;

/// Orders stage ids so that every stage comes after its dependencies; ties keep file order.
/// On a cycle, returns the ids along it, first id repeated at the end.
pub fn topological_order(stages: &[Stage]) -> Result<Vec<String>, Vec<String>> {
    let mut remaining: BTreeMap<&str, BTreeSet<&str>> = stages
        .iter()
        .map(|s| {
            (
                s.id.as_str(),
                s.depends_on.iter().map(String::as_str).collect(),
            )
        })
        .collect();
    let mut order = Vec::with_capacity(stages.len());
    while !remaining.is_empty() {
        let ready: Vec<&str> = stages
            .iter()
            .map(|s| s.id.as_str())
            .filter(|id| remaining.get(id).is_some_and(|deps| deps.is_empty()))
            .collect();
        if ready.is_empty() {
            return Err(find_cycle(&remaining));
        }
        for id in ready {
            remaining.remove(id);
            for deps in remaining.values_mut() {
                deps.remove(id);
            }
            order.push(id.to_string());
        }
    }
    Ok(order)
}

fn find_cycle(remaining: &BTreeMap<&str, BTreeSet<&str>>) -> Vec<String> {
    // Every remaining stage has an unfinished dependency: walk until a stage repeats.
    let mut path: Vec<&str> = Vec::new();
    let mut current = *remaining.keys().next().expect("non-empty");
    loop {
        if let Some(pos) = path.iter().position(|s| *s == current) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|s| s.to_string()).collect();
            cycle.push(current.to_string());
            return cycle;
        }
        path.push(current);
        current = remaining[current]
            .iter()
            .find(|d| remaining.contains_key(*d))
            .expect("a remaining stage waits on another remaining stage");
    }
}

/// Every stage that transitively depends on nothing: the graph's roots.
pub fn roots(stages: &[Stage]) -> Vec<&str> {
    stages
        .iter()
        .filter(|s| s.depends_on.is_empty())
        .map(|s| s.id.as_str())
        .collect()
}
