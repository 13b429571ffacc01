//! Plan assembly: turns the execution record and the role outputs into plan JSON v1.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use datafusion::arrow::array::RecordBatch;
use refopt_plan::*;
use refopt_spec::{Role, StageKind, StageScope, WindowRange};

use crate::datasets::RegisteredDataset;
use crate::error::EngineError;
use crate::executor::{Execution, StageStatus};
use crate::metrics;
use crate::roles;
use crate::run::RunRequest;

/// Inputs of plan assembly.
pub struct PlanContext<'a> {
    pub request: &'a RunRequest,
    pub run_id: String,
    pub created_at: DateTime<Utc>,
    pub range: &'a WindowRange,
    pub data_root_display: &'a str,
    pub datasets: &'a [RegisteredDataset],
    pub execution: &'a Execution,
    /// Risk section from the fraud review (default when no rules ran).
    pub risk: Risk,
    /// Earlier plans of the pipeline, newest first (for escalations).
    pub previous: &'a [Plan],
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn micros_rfc3339(m: i64) -> Option<String> {
    DateTime::from_timestamp_micros(m).map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true))
}

/// Output batches of the stage publishing `role`, if the pipeline has one.
fn role_output<'a>(ctx: &'a PlanContext<'_>, role: Role) -> Option<(&'a str, &'a [RecordBatch])> {
    let stage = ctx.request.pipeline.stage_publishing(role)?;
    let batches = ctx.execution.outputs.get(&stage.id)?;
    Some((stage.id.as_str(), batches.as_slice()))
}

/// Evaluates the selected experiments (`--experiments`, or all active in the window) when the
/// rules declare experiments and a stage publishes the `experiments` role.
fn experiment_results(ctx: &PlanContext<'_>) -> Result<Vec<ExperimentResult>, EngineError> {
    let (Some(spec), Some((stage, batches))) = (
        &ctx.request.rules.experiments,
        role_output(ctx, Role::Experiments),
    ) else {
        return Ok(Vec::new());
    };
    let selected = selected_experiments(ctx.request, ctx.range)?;
    crate::experiments::evaluate(
        stage,
        batches,
        spec,
        &selected,
        ctx.range.end.timestamp_micros(),
    )
}

/// The experiments a run evaluates; an unknown `--experiments` id, or ids without an
/// experiments file, are parameter errors.
pub fn selected_experiments<'a>(
    request: &'a RunRequest,
    range: &WindowRange,
) -> Result<Vec<&'a refopt_spec::experiments::Experiment>, EngineError> {
    match &request.rules.experiments {
        Some(spec) => spec
            .select(
                &request.experiments,
                range.start.date_naive(),
                range.end.date_naive(),
            )
            .map_err(EngineError::Parameter),
        None if request.experiments.is_empty() => Ok(Vec::new()),
        None => Err(EngineError::Parameter(format!(
            "--experiments {}: the rules have no experiments.yaml declaring them",
            request.experiments.join(",")
        ))),
    }
}

/// The rip-cord: an escalation at the top of the ladder, or a fraud spike.
fn pulls_rip_cord(
    escalations: &[Escalation],
    ladder: Option<&refopt_spec::alerts::Ladder>,
) -> bool {
    let top = ladder.map_or(u32::MAX, |l| l.levels.len() as u32);
    escalations
        .iter()
        .any(|e| e.level >= top || e.trigger == "fraud_spike")
}

/// Builds the plan.
pub fn assemble(ctx: &PlanContext<'_>) -> Result<Plan, EngineError> {
    let request = ctx.request;
    let pipeline = &request.pipeline;
    let full = request.detail == Detail::Full;

    let checks = dataset_checks(ctx)?;
    let datasets = ctx
        .datasets
        .iter()
        .map(|d| DatasetRead {
            name: d.name.clone(),
            url: d.url.clone(),
            files: d.files,
            bytes: d.bytes,
            checks: checks.get(&d.name).cloned().unwrap_or_default(),
        })
        .collect();

    let records = match role_output(ctx, Role::Funnel) {
        Some((stage, batches)) => roles::funnel_records(stage, batches)?,
        None => Vec::new(),
    };
    let funnel = metrics::funnel_rows(&records, &request.dimensions, full);
    let kpis = kpis(ctx)?;
    let (alerts, gated) = match &request.rules.alerts {
        Some(rules) => {
            let every_dimension: Vec<String> =
                pipeline.dimensions.iter().map(|d| d.name.clone()).collect();
            let all_rows = metrics::funnel_rows(&records, &every_dimension, true);
            let out = crate::alerts::evaluate(rules, &all_rows, &kpis, request.alert_threshold);
            (out.alerts, out.gated)
        }
        None => (Vec::new(), Vec::new()),
    };
    let escalations = match &request.rules.ladder {
        Some(ladder) => crate::escalation::escalate(
            ladder,
            &alerts,
            ctx.risk.flag_rate,
            &ctx.run_id,
            ctx.previous,
        ),
        None => Vec::new(),
    };
    let success_metrics = metrics::success_metrics(funnel.first(), &kpis);

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
    let mut error_events: Vec<ErrorEvent> = ctx
        .execution
        .failures
        .iter()
        .map(|f| ErrorEvent {
            task_id: f.stage.clone(),
            attempt: f.attempt,
            error: f.error.clone(),
            action: f.action.to_string(),
            backoff_ms: f.backoff.map(|b| b.as_millis() as u64),
        })
        .collect();
    error_events.extend(ctx.risk.rules.iter().filter_map(|r| {
        Some(ErrorEvent {
            task_id: format!("fraud_rules/{}", r.rule_id),
            attempt: 1,
            error: r.error.clone()?,
            action: "rule_skipped".to_string(),
            backoff_ms: None,
        })
    }));
    let partner_health = match role_output(ctx, Role::PartnerHealth) {
        Some((stage, batches)) => {
            roles::read(stage, Role::PartnerHealth, batches)?;
            crate::partner_health::score(batches, request.rules.partner_health.as_ref(), full)?
        }
        None => PartnerHealth::default(),
    };
    if let Some(e) = &partner_health.error {
        error_events.push(ErrorEvent {
            task_id: "partner_health_score".into(),
            attempt: 1,
            error: e.clone(),
            action: "rule_skipped".into(),
            backoff_ms: None,
        });
    }

    let mut plan = Plan {
        schema_version: SCHEMA_VERSION.to_string(),
        run_id: ctx.run_id.clone(),
        pipeline: PipelineInfo {
            name: pipeline.name.clone(),
            description: pipeline.description.trim().to_string(),
            pattern: pattern.to_string(),
        },
        created_at: rfc3339(ctx.created_at),
        status: if pulls_rip_cord(&escalations, request.rules.ladder.as_ref()) {
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
        risk: ctx.risk.clone(),
        partner_health,
        experiments: experiment_results(ctx)?,
        alerts,
        escalations,
        backlog: Vec::new(),
        change_log: Vec::new(),
        version: 0,
    };
    if let Some(script) = &request.rules.playbook {
        match crate::playbook::run(script, &plan, &request.rules.ladder_owners()) {
            Ok(items) => plan.backlog = items,
            Err(e) => plan.error_handling.events.push(ErrorEvent {
                task_id: "playbook".into(),
                attempt: 1,
                error: e,
                action: "rule_skipped".into(),
                backoff_ms: None,
            }),
        }
    }
    Ok(plan)
}

/// One finding per fraud rule that flagged referrals, most severe first.
fn fraud_findings(risk: &Risk) -> Vec<Finding> {
    let rank = |s: &str| match s {
        "critical" => 0,
        "high" => 1,
        "medium" => 2,
        _ => 3,
    };
    let mut rules: Vec<&RuleSummary> = risk
        .rules
        .iter()
        .filter(|r| r.referrals_flagged > 0)
        .collect();
    rules.sort_by(|a, b| {
        rank(&a.severity)
            .cmp(&rank(&b.severity))
            .then(b.referrals_flagged.cmp(&a.referrals_flagged))
    });
    rules
        .into_iter()
        .map(|r| Finding {
            id: format!("fraud/{}", r.rule_id),
            kind: "fraud".to_string(),
            severity: r.severity.clone(),
            title: format!("{} referrals flagged by `{}` ({})", r.referrals_flagged, r.rule_id, r.pattern),
            detail: format!(
                "{} rows of the feature table matched; hold unpaid payouts of these referrals pending fraud-detection review",
                r.rows_selected
            ),
        })
        .chain(risk.suppressions.iter().filter_map(|s| match s.status.as_str() {
            "expired" => Some(Finding {
                id: format!("suppression/{}", s.id),
                kind: "suppression_expired".to_string(),
                severity: "medium".to_string(),
                title: format!("Suppression `{}` expired on {} and no longer applies", s.id, s.expires),
                detail: format!(
                    "{} referrals matching its `{}` values were flagged this run; renew it (owner {}) if the reason still holds: {}",
                    s.referrals_matched, s.column, s.owner, s.reason
                ),
            }),
            "failed" => Some(Finding {
                id: format!("suppression/{}", s.id),
                kind: "suppression_failed".to_string(),
                severity: "high".to_string(),
                title: format!("Suppression `{}` could not be applied", s.id),
                detail: s.error.clone().unwrap_or_default(),
            }),
            _ => None,
        }))
        .chain(risk.payout_concentration.iter().flat_map(|pc| {
            pc.beyond_limits.iter().map(|c| Finding {
                    id: format!(
                        "concentration/{}/{}",
                        c.scope,
                        c.group_id.as_deref().unwrap_or("program")
                    ),
                    kind: "payout_concentration".to_string(),
                    severity: pc.severity.clone(),
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

fn dataset_checks(
    ctx: &PlanContext<'_>,
) -> Result<BTreeMap<String, Vec<DatasetCheck>>, EngineError> {
    let mut out: BTreeMap<String, Vec<DatasetCheck>> = BTreeMap::new();
    let Some((stage, batches)) = role_output(ctx, Role::DatasetHealth) else {
        return Ok(out);
    };
    for b in roles::read(stage, Role::DatasetHealth, batches)? {
        for r in 0..b.rows {
            out.entry(b.text("dataset", r))
                .or_default()
                .push(DatasetCheck {
                    period: b.text("period", r),
                    rows: b.int("row_count", r).max(0) as u64,
                    null_violations: b.int("null_violations", r).max(0) as u64,
                    duplicate_keys: b.int("duplicate_keys", r).max(0) as u64,
                    latest_event_at: b.micros("latest_event_at", r).and_then(micros_rfc3339),
                });
        }
    }
    for checks in out.values_mut() {
        checks.sort_by(|a, b| a.period.cmp(&b.period));
    }
    Ok(out)
}

fn kpis(ctx: &PlanContext<'_>) -> Result<Vec<Kpi>, EngineError> {
    let Some((stage, batches)) = role_output(ctx, Role::Kpis) else {
        return Ok(Vec::new());
    };
    let mut values: BTreeMap<String, (Option<f64>, Option<f64>)> = BTreeMap::new();
    for b in roles::read(stage, Role::Kpis, batches)? {
        for r in 0..b.rows {
            let entry = values.entry(b.text("metric", r)).or_default();
            match b.text("period", r).as_str() {
                "current" => entry.0 = b.real("value", r),
                "previous" => entry.1 = b.real("value", r),
                _ => {}
            }
        }
    }
    Ok(values
        .into_iter()
        .map(|(metric, (current, previous))| Kpi {
            metric,
            current,
            previous,
            delta: current.zip(previous).map(|(c, p)| c - p),
        })
        .collect())
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
