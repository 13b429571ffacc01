//! Plan assembly: turns the execution record and the role outputs into plan JSON v1.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use refopt_plan::*;
use refopt_spec::{StageKind, StageScope, WindowRange};

use crate::execution::datasets::RegisteredDataset;
use crate::execution::executor::{Execution, StageStatus};
use crate::metrics::Measures;
use crate::request::RunRequest;
use crate::rules::RuleResults;

pub mod change_log;
pub mod plan_delta;

/// Inputs of plan assembly: what the run was asked, what ran, what was measured and what the
/// rules decided.
pub struct PlanContext<'a> {
    pub request: &'a RunRequest,
    pub run_id: String,
    pub created_at: DateTime<Utc>,
    pub range: &'a WindowRange,
    pub data_root_display: &'a str,
    pub datasets: &'a [RegisteredDataset],
    pub execution: &'a Execution,
    pub measures: Measures,
    /// Risk section from the fraud review (default when no rules ran).
    pub risk: Risk,
    /// Retried attempts of fraud rules that failed transiently.
    pub rule_retries: Vec<ErrorEvent>,
    pub rule_results: RuleResults,
    pub experiments: Vec<ExperimentResult>,
    /// The declared data tests' results per dataset name.
    pub data_tests: BTreeMap<String, Vec<DataTestResult>>,
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Builds the plan (without its backlog and change log, which read the plan).
pub fn assemble(ctx: PlanContext<'_>) -> Plan {
    let request = ctx.request;
    let pipeline = &request.pipeline;
    let Measures {
        funnel,
        kpis,
        dataset_checks,
        success_metrics,
        ..
    } = ctx.measures;
    let RuleResults {
        alerts,
        gated,
        escalations,
        escalation_state,
        escalated,
        partner_health,
        partner_communications,
        skipped,
    } = ctx.rule_results;

    let datasets: Vec<DatasetRead> = ctx
        .datasets
        .iter()
        .map(|d| DatasetRead {
            name: d.name.clone(),
            url: d.url.clone(),
            files: d.files,
            bytes: d.bytes,
            checks: dataset_checks.get(&d.name).cloned().unwrap_or_default(),
            tests: ctx.data_tests.get(&d.name).cloned().unwrap_or_default(),
        })
        .collect();

    let tasks = ctx
        .execution
        .stages
        .iter()
        .map(|s| Task {
            id: s.id.clone(),
            kind: s.kind.to_string(),
            status: match s.status {
                StageStatus::Succeeded => TaskStatus::Succeeded,
                StageStatus::Failed => TaskStatus::Failed,
                StageStatus::Skipped => TaskStatus::Skipped,
            },
            attempts: s.attempts,
            depends_on: pipeline
                .stage(&s.id)
                .map(|p| p.depends_on.clone())
                .unwrap_or_default(),
            started_at: s.started_at.map(rfc3339),
            finished_at: s.finished_at.map(rfc3339),
            duration_ms: s.duration.map(|d| d.as_millis() as u64),
            output_rows: s.output_rows,
            error: s.error.clone(),
            range: pipeline
                .stage(&s.id)
                .filter(|p| p.scope == StageScope::Range)
                .map(|_| {
                    let (start, end) = ctx.request.shared_stages.as_ref().map_or(
                        (
                            ctx.range.previous_start.date_naive(),
                            ctx.range.end.date_naive(),
                        ),
                        |shared| shared.range,
                    );
                    format!("{start}..{end}")
                }),
        })
        .collect();

    let dependency_graph = dependency_graph(pipeline);
    let pattern = if dependency_graph.parallel_groups.iter().any(|g| g.len() > 1)
        && !dependency_graph.merge_gates.is_empty()
    {
        "pipeline with diamond block and merge gate"
    } else if dependency_graph.parallel_groups.iter().any(|g| g.len() > 1) {
        "pipeline with parallel stages"
    } else {
        "pipeline"
    };

    let mut findings = fraud_findings(&ctx.risk);
    findings.extend(gated);
    let (test_findings, test_alerts) = data_test_outcomes(pipeline, &datasets);
    findings.extend(test_findings);
    findings.extend(empty_window_findings(pipeline, &datasets, ctx.range));
    let mut alerts = alerts;
    alerts.extend(test_alerts);
    let mut error_events: Vec<ErrorEvent> = ctx
        .execution
        .failures
        .iter()
        .map(|f| ErrorEvent {
            task_id: f.stage.clone(),
            attempt: f.attempt,
            error: f.error.clone(),
            action: f.action,
            backoff_ms: f.backoff.map(|b| b.as_millis() as u64),
        })
        .collect();
    // A failed fraud rule: its retried attempts, then the skip (numbered after them).
    error_events.extend(ctx.rule_retries.iter().cloned());
    error_events.extend(ctx.risk.rules.iter().filter_map(|r| {
        let task_id = format!("fraud_rules/{}", r.rule_id);
        let mut skipped = crate::rules::skipped_rule(&task_id, r.error.clone()?);
        skipped.attempt += ctx
            .rule_retries
            .iter()
            .filter(|e| e.task_id == task_id)
            .count() as u32;
        Some(skipped)
    }));
    error_events.extend(skipped);

    Plan {
        schema_version: SCHEMA_VERSION.to_string(),
        run_id: ctx.run_id.clone(),
        pipeline: PipelineInfo {
            name: pipeline.name.clone(),
            description: pipeline.description.trim().to_string(),
            pattern: pattern.to_string(),
        },
        created_at: rfc3339(ctx.created_at),
        status: if escalated {
            RunStatus::Escalated
        } else {
            RunStatus::Succeeded
        },
        inputs: Inputs {
            window: request.window.to_string(),
            window_days: request.window.days,
            as_of: request.as_of.to_string(),
            window_start: rfc3339(ctx.range.start),
            previous_window_start: rfc3339(ctx.range.previous_start),
            detail: request.detail,
            dimensions: request.dimensions.clone(),
            experiments: request.experiments.clone(),
            alert_threshold: request.alert_threshold,
            data_root: ctx.data_root_display.to_string(),
            rules: request.rules_source.clone(),
            pipeline: request.pipeline_source.clone(),
            config_hashes: {
                let mut hashes = request.rules_hashes.clone();
                hashes.extend(crate::config_hash::pipeline_hashes(pipeline));
                hashes
            },
            // Set by the run once the plan is assembled.
            fingerprint: String::new(),
        },
        datasets,
        tasks,
        dependency_graph,
        error_handling: ErrorHandling {
            retry_limit: pipeline
                .stages
                .iter()
                .map(|s| s.retry.limit)
                .max()
                .unwrap_or(2),
            events: error_events,
            storage_retry_limit: request.storage.retries,
            storage_retries: request
                .storage
                .attempts
                .snapshot()
                .into_iter()
                .map(|a| StorageRetry {
                    method: a.method,
                    object: a.object,
                    error: a.error,
                    at: rfc3339(a.at),
                })
                .collect(),
        },
        success_metrics,
        metrics: Metrics { funnel, kpis },
        findings,
        risk: ctx.risk,
        partner_health,
        experiments: ctx.experiments,
        alerts,
        escalations,
        escalation_state,
        backlog: Vec::new(),
        partner_communications,
        change_log: Vec::new(),
        version: 0,
    }
}

/// A finding per day-partitioned dataset without a row in the current window, located at its
/// declaration; when none of them has a row, one critical finding says the window holds no data
/// (an `--as-of` before the data or past its end). Needs the data-refresh checks (without a
/// dataset-health stage nothing is known, and nothing is said).
fn empty_window_findings(
    pipeline: &refopt_spec::Pipeline,
    datasets: &[DatasetRead],
    range: &refopt_spec::WindowRange,
) -> Vec<Finding> {
    if datasets.iter().all(|d| d.checks.is_empty()) {
        return Vec::new();
    }
    let window = format!("[{}, {})", range.start.date_naive(), range.end.date_naive());
    let empty: Vec<(&refopt_spec::Dataset, &DatasetRead)> = pipeline
        .datasets
        .iter()
        .filter(|p| p.partitioned_by_day)
        .filter_map(|p| Some((p, datasets.iter().find(|d| d.name == p.name)?)))
        .filter(|(_, d)| current_rows(d) == 0)
        .collect();
    let partitioned = pipeline
        .datasets
        .iter()
        .filter(|p| p.partitioned_by_day)
        .count();
    if partitioned > 0 && empty.len() == partitioned {
        return vec![Finding {
            id: "empty_window".to_string(),
            kind: "empty_window".to_string(),
            severity: Severity::Critical,
            title: format!("No dataset has a row in the window {window}"),
            detail: format!(
                "every day-partitioned dataset of {} is empty in the window: is --as-of before the data starts or past its end? `refopt plan approve` is blocked",
                pipeline.file.display()
            ),
        }];
    }
    empty
        .into_iter()
        .map(|(p, d)| Finding {
            id: format!("empty_window/{}", d.name),
            kind: "empty_window".to_string(),
            severity: Severity::Low,
            title: format!("`{}` has no rows in the window {window}", d.name),
            detail: format!(
                "{}: dataset `{}` at {} has no rows in the window; its figures in this plan are zero",
                p.location, d.name, d.url
            ),
        })
        .collect()
}

/// Rows of a dataset in the current window, from its data-refresh checks.
pub(crate) fn current_rows(d: &DatasetRead) -> u64 {
    d.checks
        .iter()
        .filter(|c| c.period == "current")
        .map(|c| c.rows)
        .sum()
}

/// What failing data tests raise: a finding per `warn`, an alert (to the dataset's owner) per
/// `error`.
fn data_test_outcomes(
    pipeline: &refopt_spec::Pipeline,
    datasets: &[DatasetRead],
) -> (Vec<Finding>, Vec<Alert>) {
    let mut findings = Vec::new();
    let mut alerts = Vec::new();
    for d in datasets {
        let owner = pipeline
            .datasets
            .iter()
            .find(|p| p.name == d.name)
            .map_or(refopt_spec::pipeline::DEFAULT_DATA_OWNER, |p| {
                p.owner.as_str()
            });
        for t in &d.tests {
            let id = format!("data_test/{}/{}", d.name, t.id);
            let title = format!(
                "`{}` data test `{}` {}: {}",
                d.name, t.id, t.status, t.message
            );
            match t.status {
                DataTestStatus::Pass => {}
                DataTestStatus::Warn => findings.push(Finding {
                    id,
                    kind: "data_test".to_string(),
                    severity: Severity::Medium,
                    title,
                    detail: format!(
                        "severity warn: reported, approval not blocked; {} owns dataset `{}`",
                        owner, d.name
                    ),
                }),
                DataTestStatus::Error => {
                    let (current, direction) = match t.kind {
                        // Without any event the age is unknown (the message says so): the
                        // limit itself stands in, keeping the plan free of infinities.
                        DataTestKind::Freshness => {
                            (t.observed.or(t.threshold).unwrap_or(0.0), Crossing::Above)
                        }
                        DataTestKind::RowCountChange => {
                            (t.observed.unwrap_or(0.0), Crossing::Below)
                        }
                        _ => (t.failing_rows.unwrap_or(0) as f64, Crossing::Above),
                    };
                    let threshold = match t.kind {
                        // The level a relative change fell below is minus the allowed drop.
                        DataTestKind::RowCountChange => -t.threshold.unwrap_or(0.0),
                        _ => t.threshold.unwrap_or(0.0),
                    };
                    alerts.push(Alert {
                        id,
                        metric: t.id.clone(),
                        dimension: "dataset".to_string(),
                        value: d.name.clone(),
                        level: AlertLevel::Critical,
                        current,
                        threshold,
                        direction,
                        sample: t.rows,
                        owner: owner.to_string(),
                        message: format!(
                            "{title}; `refopt plan approve` is blocked until the data is fixed"
                        ),
                    })
                }
            }
        }
    }
    (findings, alerts)
}

/// One finding per fraud rule that flagged referrals, most severe first.
fn fraud_findings(risk: &Risk) -> Vec<Finding> {
    let mut rules: Vec<&RuleSummary> = risk
        .rules
        .iter()
        .filter(|r| r.referrals_flagged > 0)
        .collect();
    rules.sort_by(|a, b| {
        b.severity
            .cmp(&a.severity)
            .then(b.referrals_flagged.cmp(&a.referrals_flagged))
            .then_with(|| a.rule_id.cmp(&b.rule_id))
    });
    rules
        .into_iter()
        .map(|r| Finding {
            id: format!("fraud/{}", r.rule_id),
            kind: "fraud".to_string(),
            severity: r.severity,
            title: format!("{} referrals flagged by `{}` ({})", r.referrals_flagged, r.rule_id, r.pattern),
            detail: format!(
                "{} rows of the feature table matched; hold unpaid payouts of these referrals pending fraud-detection review",
                r.rows_selected
            ),
        })
        .chain(risk.suppressions.iter().filter_map(|s| match s.status {
            SuppressionStatus::Expired => Some(Finding {
                id: format!("suppression/{}", s.id),
                kind: "suppression_expired".to_string(),
                severity: Severity::Medium,
                title: format!("Suppression `{}` expired on {} and no longer applies", s.id, s.expires),
                detail: format!(
                    "{} referrals matching its `{}` values were flagged this run; renew it (owner {}) if the reason still holds: {}",
                    s.referrals_matched, s.column, s.owner, s.reason
                ),
            }),
            SuppressionStatus::Failed => Some(Finding {
                id: format!("suppression/{}", s.id),
                kind: "suppression_failed".to_string(),
                severity: Severity::High,
                title: format!("Suppression `{}` could not be applied", s.id),
                detail: s.error.clone().unwrap_or_default(),
            }),
            SuppressionStatus::Active => None,
        }))
        .chain(risk.payout_concentration.iter().flat_map(|pc| {
            pc.beyond_limits.iter().map(|c| Finding {
                    id: format!(
                        "concentration/{}/{}",
                        c.scope,
                        c.group_id.as_deref().unwrap_or("program")
                    ),
                    kind: "payout_concentration".to_string(),
                    severity: pc.severity,
                    title: format!(
                        "Payouts concentrated in {} {}: top recipient {:.0}%, Gini {:.2}",
                        c.scope,
                        c.group_id.as_deref().unwrap_or("(program)"),
                        c.top1_share.unwrap_or(0.0) * 100.0,
                        c.gini.unwrap_or(0.0)
                    ),
                    detail: format!(
                        "{} recipients shared ${:.2}; review the largest recipients' referrals",
                        c.recipients, c.payouts
                    ),
                })
        }))
        .collect()
}

/// Nodes, edges, depth groups and merge gates of the stage graph.
pub fn dependency_graph(pipeline: &refopt_spec::Pipeline) -> DependencyGraph {
    let mut depth: BTreeMap<&str, usize> = BTreeMap::new();
    // Stages are in topological order, so dependencies have their depth already.
    for s in &pipeline.stages {
        let d = s
            .depends_on
            .iter()
            .map(|dep| depth.get(dep.as_str()).copied().unwrap_or(0) + 1)
            .max()
            .unwrap_or(0);
        depth.insert(s.id.as_str(), d);
    }
    let max_depth = depth.values().copied().max().unwrap_or(0);
    let parallel_groups = (0..=max_depth)
        .map(|d| {
            pipeline
                .stages
                .iter()
                .filter(|s| depth[s.id.as_str()] == d)
                .map(|s| s.id.clone())
                .collect()
        })
        .collect();
    DependencyGraph {
        nodes: pipeline.stages.iter().map(|s| s.id.clone()).collect(),
        edges: pipeline
            .stages
            .iter()
            .flat_map(|s| {
                s.depends_on.iter().map(|d| Edge {
                    from: d.clone(),
                    to: s.id.clone(),
                })
            })
            .collect(),
        parallel_groups,
        merge_gates: pipeline
            .stages
            .iter()
            .filter(|s| s.kind == StageKind::Gate)
            .map(|s| s.id.clone())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, severity: Severity, flagged: u64) -> RuleSummary {
        RuleSummary {
            rule_id: id.into(),
            pattern: "p".into(),
            severity,
            rows_selected: flagged,
            referrals_flagged: flagged,
            error: None,
            evaluation: None,
        }
    }

    #[test]
    fn fraud_findings_are_most_severe_first_then_largest_and_report_broken_suppressions() {
        let risk = Risk {
            rules: vec![
                rule("medium_many", Severity::Medium, 50),
                rule("high_few", Severity::High, 2),
                rule("silent", Severity::Critical, 0),
                rule("high_many", Severity::High, 9),
            ],
            suppressions: vec![
                SuppressionReport {
                    id: "office".into(),
                    status: SuppressionStatus::Active,
                    ..Default::default()
                },
                SuppressionReport {
                    id: "old".into(),
                    status: SuppressionStatus::Expired,
                    referrals_matched: 3,
                    ..Default::default()
                },
                SuppressionReport {
                    id: "typo".into(),
                    status: SuppressionStatus::Failed,
                    error: Some("no column `nope`".into()),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let findings = fraud_findings(&risk);
        let ids: Vec<&str> = findings.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "fraud/high_many",
                "fraud/high_few",
                "fraud/medium_many",
                "suppression/old",
                "suppression/typo"
            ]
        );
        assert_eq!(findings[3].kind, "suppression_expired");
        assert!(
            findings[3].detail.starts_with("3 referrals"),
            "{:?}",
            findings[3]
        );
        assert_eq!(
            (findings[4].severity, findings[4].detail.as_str()),
            (Severity::High, "no column `nope`")
        );
    }

    #[test]
    fn the_default_pipeline_is_a_diamond_joined_by_its_merge_gate() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../pipelines/optimize-referrals.yaml");
        let pipeline = refopt_spec::Pipeline::load(&file).unwrap();
        let graph = dependency_graph(&pipeline);
        assert_eq!(graph.nodes.len(), pipeline.stages.len());
        assert_eq!(graph.merge_gates, ["merge_gate"]);
        // Every edge goes from a shallower group to a deeper one, and every stage is in one group.
        let depth = |id: &str| {
            graph
                .parallel_groups
                .iter()
                .position(|g| g.iter().any(|s| s == id))
                .unwrap()
        };
        assert!(graph.edges.iter().all(|e| depth(&e.from) < depth(&e.to)));
        assert_eq!(
            graph.parallel_groups.iter().map(Vec::len).sum::<usize>(),
            graph.nodes.len()
        );
        // The gate waits for parallel branches: its dependencies share a group.
        let gate_deps: Vec<&Edge> = graph
            .edges
            .iter()
            .filter(|e| e.to == "merge_gate")
            .collect();
        assert!(gate_deps.len() >= 2, "{gate_deps:?}");
        assert!(graph.parallel_groups.iter().any(|g| g.len() > 1));
    }
}
