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
