//! Backfills and backtests: one run per as-of date, in chronological order, each window's
//! earlier plans serving as its history (so "breached twice" means twice in the backfill's own
//! order, not in whatever the live series holds).
//!
//! A backfill writes each window's plan to its own series, `<pipeline>/backfill/<N>d/as_of=<date>/`,
//! versioned like live runs. It is resumable: a window whose latest plan has the same inputs
//! fingerprint is skipped (its stored plan becomes the history of the next window). A backtest
//! runs two rule sets over the same windows without writing anything and reports, per window,
//! what the new rules would have changed.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use chrono::{DateTime, Days, NaiveDate, Utc};
use refopt_plan::Plan;
use refopt_spec::{Pipeline, RuleSet, Stage, StageScope, Window, WindowRange};

use crate::assembly::plan_delta::PlanDelta;
use crate::error::EngineError;
use crate::execution::executor::{Quiet, SharedOutput, SharedStages, execute};
use crate::run::{
    AnalyzedRun, PREVIOUS_PLANS, Prepared, RunOutcome, RunRequest, open_data, prepare,
    stages_failed,
};

/// The as-of dates from `from` to `to` (both included) every `step_days`.
pub fn as_of_dates(
    from: NaiveDate,
    to: NaiveDate,
    step_days: u32,
) -> Result<Vec<NaiveDate>, EngineError> {
    if step_days == 0 {
        return Err(EngineError::Parameter("--step must be at least 1d".into()));
    }
    if to < from {
        return Err(EngineError::Parameter(format!(
            "--to {to} is before --from {from}"
        )));
    }
    let mut dates = Vec::new();
    let mut day = from;
    while day <= to {
        dates.push(day);
        if dates.len() > 10_000 {
            return Err(EngineError::Parameter(
                "more than 10,000 windows: use a larger --step".into(),
            ));
        }
        day = day
            .checked_add_days(Days::new(u64::from(step_days)))
            .ok_or_else(|| EngineError::Parameter("date out of range".into()))?;
    }
    Ok(dates)
}

/// The plan series of a backfill window.
pub fn series(window_days: u32, as_of: NaiveDate) -> Vec<String> {
    vec![
        "backfill".to_string(),
        format!("{window_days}d"),
        format!("as_of={as_of}"),
    ]
}

/// The newest earlier plans, newest first: as many as a live run reads.
fn recent(history: &[Plan]) -> Vec<Plan> {
    history.iter().rev().take(PREVIOUS_PLANS).cloned().collect()
}

/// What happened to one window.
#[derive(Debug, Clone)]
pub struct WindowResult {
    pub as_of: NaiveDate,
    /// Skipped: the stored plan already had these inputs.
    pub unchanged: bool,
    /// Where the plan is (None for backtests).
    pub url: Option<String>,
    pub version: u64,
    pub findings: usize,
    pub escalations: usize,
    /// Rows of the datasets in the window's days (current and previous period), from the
    /// plan's data-refresh checks. Overlapping windows count their shared days again: it is
    /// the work each window covers, not what was read (range stages read shared days once).
    pub window_rows: u64,
}

/// Progress of a backfill or backtest, and what follows a window's plan write.
#[async_trait::async_trait]
pub trait WindowObserver: Send + Sync {
    /// A window's plan was written (not called for unchanged windows or backtests): the place
    /// to write its report beside it.
    async fn plan_written(&self, _outcome: &RunOutcome) {}
    fn window_started(&self, _as_of: NaiveDate, _index: usize, _total: usize) {}
    fn window_finished(&self, _result: &WindowResult, _index: usize, _total: usize) {}
    fn window_failed(&self, _as_of: NaiveDate, _error: &EngineError) {}
}

fn result_of(as_of: NaiveDate, outcome: &RunOutcome) -> WindowResult {
    WindowResult {
        as_of,
        unchanged: outcome.unchanged,
        url: outcome.stored.as_ref().map(|s| s.url.clone()),
        version: outcome.stored.as_ref().map_or(0, |s| s.version),
        findings: outcome.plan.findings.len(),
        escalations: outcome.plan.escalations.len(),
        window_rows: window_rows(&outcome.plan),
    }
}

/// Rows of the datasets in a plan's window (both periods).
fn window_rows(plan: &Plan) -> u64 {
    plan.datasets
        .iter()
        .flat_map(|d| &d.checks)
        .map(|c| c.rows)
        .sum()
}

/// Computes the pipeline's `scope: range` stages once over the days from `start` to `end`
/// (None when the pipeline has none).
pub async fn shared_stages(
    base: &RunRequest,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Option<Arc<SharedStages>>, EngineError> {
    let stages: Vec<Stage> = base
        .pipeline
        .stages
        .iter()
        .filter(|s| s.scope == StageScope::Range)
        .cloned()
        .collect();
    if stages.is_empty() {
        return Ok(None);
    }
    let (from, to) = (start.date_naive(), end.date_naive());
    let started = std::time::Instant::now();
    let (ctx, data, _) = open_data(base).await?;
    let pipeline = Pipeline {
        stages,
        ..base.pipeline.clone()
    };
    let execution = execute(
        &ctx,
        &pipeline,
        &crate::execution::params::bind_range(start, end),
        base.session.max_parallel_stages(),
        Arc::new(Quiet),
        None,
    )
    .await;
    if !execution.succeeded() {
        return Err(
            match stages_failed(&execution, &data, &base.pipeline.datasets).await {
                EngineError::StagesFailed { failed, first } => EngineError::StagesFailed {
                    failed,
                    first: format!("range stages shared by the windows ({from}..{to}): {first}"),
                },
                other => other,
            },
        );
    }
    let mut outputs = BTreeMap::new();
    for record in execution.stages {
        let id = record.id.clone();
        let schema = Arc::new(ctx.table(id.as_str()).await?.schema().as_arrow().clone());
        let batches = execution.outputs.get(&id).cloned().unwrap_or_default();
        outputs.insert(
            id,
            SharedOutput {
                record,
                schema,
                batches,
            },
        );
    }
    tracing::info!(
        stages = outputs.len(),
        from = %from,
        to = %to,
        seconds = started.elapsed().as_secs_f64(),
        "range stages computed once for the windows"
    );
    Ok(Some(Arc::new(SharedStages {
        range: (from, to),
        outputs,
    })))
}

/// The days the windows read, as one span, when their ranges (previous period included)
/// leave no gap between them; None when they do (sharing would scan days no window reads).
fn contiguous_span(window: Window, dates: &[NaiveDate]) -> Option<(DateTime<Utc>, DateTime<Utc>)> {
    let mut ranges: Vec<WindowRange> = dates.iter().map(|&d| WindowRange::new(window, d)).collect();
    ranges.sort_by_key(|r| r.previous_start);
    let first = ranges.first()?;
    let (start, mut end) = (first.previous_start, first.end);
    for r in &ranges[1..] {
        if r.previous_start > end {
            return None;
        }
        end = end.max(r.end);
    }
    Some((start, end))
}

/// Runs `base` once per date, each window in its own plan series. Every window is prepared
/// first (windows whose latest plan has the same inputs are skipped); the pipeline's range
/// stages are then computed once over the days of the windows left to run, when those days are
/// contiguous. Up to `concurrent_windows` windows are analyzed at once (stages and rules,
/// sharing one memory pool when memory is limited); plans are assembled and written oldest
/// first, each with the earlier windows' plans as history, so cross-run triggers follow the
/// backfill's chronology. Stops at the first failing window: earlier windows' plans stay (a
/// rerun skips them), later windows' analyses are dropped unwritten.
pub async fn backfill(
    base: &RunRequest,
    dates: &[NaiveDate],
    concurrent_windows: usize,
    observer: &dyn WindowObserver,
) -> Result<Vec<WindowResult>, EngineError> {
    let mut base = base.clone();
    base.session = base.session.shared()?;
    let mut prepared = Vec::with_capacity(dates.len());
    for &as_of in dates {
        let mut request = base.clone();
        request.as_of = as_of;
        request.plan_series = series(base.window.days, as_of);
        request.storage.attempts = Default::default();
        let window = prepare(request)
            .await
            .inspect_err(|e| observer.window_failed(as_of, e))?;
        prepared.push((as_of, window));
    }
    let to_run: Vec<NaiveDate> = prepared
        .iter()
        .filter(|(_, p)| matches!(p, Prepared::Ready(_)))
        .map(|(d, _)| *d)
        .collect();
    let shared = match contiguous_span(base.window, &to_run) {
        Some((start, end)) if to_run.len() > 1 => shared_stages(&base, start, end)
            .await
            .inspect_err(|e| observer.window_failed(to_run[0], e))?,
        _ => None,
    };

    let mut in_flight = VecDeque::new();
    let mut upcoming = prepared.into_iter().enumerate();
    let mut history: Vec<Plan> = Vec::new();
    let mut results = Vec::new();
    loop {
        while in_flight.len() < concurrent_windows.max(1)
            && let Some((i, (as_of, window))) = upcoming.next()
        {
            observer.window_started(as_of, i, dates.len());
            let task = match window {
                Prepared::Unchanged(outcome) => WindowTask::Unchanged(outcome),
                Prepared::Ready(mut ready) => {
                    if let Some(shared) = &shared {
                        ready.share_stages(shared.clone());
                    }
                    WindowTask::Running(AbortOnDrop(tokio::spawn(ready.analyze(Arc::new(Quiet)))))
                }
            };
            in_flight.push_back((i, as_of, task));
        }
        let Some((i, as_of, task)) = in_flight.pop_front() else {
            break;
        };
        let outcome = match task {
            WindowTask::Unchanged(outcome) => Ok(*outcome),
            WindowTask::Running(mut task) => match (&mut task.0).await {
                Ok(Ok(analyzed)) => analyzed.finish(Some(recent(&history))).await,
                Ok(Err(e)) => Err(e),
                Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
                Err(join) => Err(EngineError::Cancelled(format!(
                    "window {as_of} was cancelled: {join}"
                ))),
            },
        };
        let outcome = outcome.inspect_err(|e| observer.window_failed(as_of, e))?;
        if outcome.stored.is_some() && !outcome.unchanged {
            observer.plan_written(&outcome).await;
        }
        let result = result_of(as_of, &outcome);
        observer.window_finished(&result, i, dates.len());
        history.push(outcome.plan);
        results.push(result);
    }
    Ok(results)
}

/// A window of a backfill: its stored plan, or its analysis running as a task.
enum WindowTask {
    Unchanged(Box<RunOutcome>),
    Running(AbortOnDrop<Result<AnalyzedRun, EngineError>>),
}

/// A spawned window analysis that is cancelled when the backfill stops early.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the new rules change in one window.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct WindowChange {
    pub as_of: String,
    pub changed: bool,
    pub findings_gained: Vec<String>,
    pub findings_lost: Vec<String>,
    /// Findings present in both whose detail (counts, referrals) differs.
    pub findings_changed: Vec<String>,
    pub alerts_gained: Vec<String>,
    pub alerts_lost: Vec<String>,
    pub escalations_gained: Vec<String>,
    pub escalations_lost: Vec<String>,
    pub backlog_gained: Vec<String>,
    pub backlog_lost: Vec<String>,
    pub flagged_referrals: [u64; 2],
}

/// The old and new plans of one backtest window: the stages run once, each rule set over
/// their outputs, each plan with its own history.
async fn backtest_window(
    old: RunRequest,
    new: (&RuleSet, &str),
    histories: &[Vec<Plan>; 2],
) -> Result<[Plan; 2], EngineError> {
    let old = RunRequest { force: true, ..old };
    let Prepared::Ready(old) = prepare(old).await? else {
        unreachable!("a forced run is never skipped as unchanged");
    };
    let execution = old.execute_stages(Arc::new(Quiet)).await?;
    let data_tests = old.evaluate_data_tests().await?;
    let new = old.with_rules(new.0.clone(), new.1.to_string());
    let old_plan = old
        .apply_rules(execution.clone(), data_tests.clone())
        .await?;
    let old_plan = old_plan.finish(Some(recent(&histories[0]))).await?.plan;
    let new_plan = new.apply_rules(execution, data_tests).await?;
    let new_plan = new_plan.finish(Some(recent(&histories[1]))).await?.plan;
    Ok([old_plan, new_plan])
}

/// Runs `old` and `new` rules over the same windows (nothing written), each with its own
/// chronological history, and compares the plans per window.
pub async fn backtest(
    base: &RunRequest,
    old: (&RuleSet, &str),
    new: (&RuleSet, &str),
    dates: &[NaiveDate],
    observer: &dyn WindowObserver,
) -> Result<Vec<WindowChange>, EngineError> {
    let mut histories: [Vec<Plan>; 2] = [Vec::new(), Vec::new()];
    let mut changes = Vec::new();
    let shared = match contiguous_span(base.window, dates) {
        Some((start, end)) if dates.len() > 1 => shared_stages(base, start, end)
            .await
            .inspect_err(|e| observer.window_failed(dates[0], e))?,
        _ => None,
    };
    for (i, &as_of) in dates.iter().enumerate() {
        observer.window_started(as_of, i, dates.len());
        let mut request = base.clone();
        request.shared_stages = shared.clone();
        request.as_of = as_of;
        request.plans_root = None;
        request.rules = old.0.clone();
        request.rules_source = old.1.to_string();
        request.storage.attempts = Default::default();
        let plans = match backtest_window(request, new, &histories).await {
            Ok(plans) => plans,
            Err(e) => {
                observer.window_failed(as_of, &e);
                return Err(e);
            }
        };
        let change = compare(as_of, &plans[0], &plans[1]);
        observer.window_finished(
            &WindowResult {
                as_of,
                unchanged: !change.changed,
                url: None,
                version: 0,
                findings: plans[1].findings.len(),
                escalations: plans[1].escalations.len(),
                window_rows: window_rows(&plans[1]),
            },
            i,
            dates.len(),
        );
        changes.push(change);
        let [a, b] = plans;
        histories[0].push(a);
        histories[1].push(b);
    }
    Ok(changes)
}

/// The decision-relevant differences between two plans of the same window.
pub fn compare(as_of: NaiveDate, old: &Plan, new: &Plan) -> WindowChange {
    let delta = PlanDelta::between(old, new);
    let flagged_referrals = [old.risk.referrals_flagged, new.risk.referrals_flagged];
    let changed = !(delta.findings.is_empty()
        && delta.findings_changed.is_empty()
        && delta.alerts.is_empty()
        && delta.escalations.is_empty()
        && delta.backlog.is_empty()
        && flagged_referrals[0] == flagged_referrals[1]);
    WindowChange {
        as_of: as_of.to_string(),
        changed,
        findings_gained: delta.findings.gained,
        findings_lost: delta.findings.lost,
        findings_changed: delta.findings_changed,
        alerts_gained: delta.alerts.gained,
        alerts_lost: delta.alerts.lost,
        escalations_gained: delta.escalations.gained,
        escalations_lost: delta.escalations.lost,
        backlog_gained: delta.backlog.gained,
        backlog_lost: delta.backlog.lost,
        flagged_referrals,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn dates_step_inclusively() {
        let d = as_of_dates(day("2026-01-01"), day("2026-01-15"), 7).unwrap();
        assert_eq!(d, [day("2026-01-01"), day("2026-01-08"), day("2026-01-15")]);
        assert!(as_of_dates(day("2026-01-02"), day("2026-01-01"), 1).is_err());
        assert!(as_of_dates(day("2026-01-01"), day("2026-01-02"), 0).is_err());
    }

    #[test]
    fn identical_plans_do_not_change() {
        let p = Plan::default();
        assert!(!compare(day("2026-01-01"), &p, &p).changed);
        let mut q = p.clone();
        q.risk.referrals_flagged = 3;
        assert!(compare(day("2026-01-01"), &p, &q).changed);
    }
}
