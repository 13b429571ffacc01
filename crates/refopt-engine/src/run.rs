//! One run end to end: resolve stores, register datasets, execute the stage DAG, assemble the
//! plan and write it to the plan store. Nothing is written unless every stage succeeded.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::common::ParamValues;
use datafusion::prelude::SessionContext;
use rand::Rng;
use refopt_plan::{Detail, Plan, PlanStore, Risk, StoredPlan};
use refopt_spec::{Pipeline, RuleSet, Window, WindowRange};

use crate::assemble::{PlanContext, assemble};
use crate::datasets::{RegisteredDataset, register_datasets};
use crate::error::EngineError;
use crate::executor::{Execution, SharedStages, StageObserver, StageStatus, execute};
use crate::fraud::{FraudReview, ReviewOptions, review};
use crate::session::{SessionOptions, new_session};
use crate::storage::{self, StorageLocation, StoragePolicy};

/// Everything a run needs.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub pipeline: Pipeline,
    /// Data root (URL or path).
    pub data_root: String,
    /// Plans root (URL or path); `None` means do not write (dry run).
    pub plans_root: Option<String>,
    pub window: Window,
    /// Exclusive end day of the window.
    pub as_of: NaiveDate,
    pub detail: Detail,
    pub dimensions: Vec<String>,
    pub experiments: Vec<String>,
    pub alert_threshold: Option<f64>,
    /// Rules (fraud heuristics, alerts, ladder) run after the stages.
    pub rules: RuleSet,
    /// Where the rules were loaded from (folder or object-store URL), recorded in the plan.
    pub rules_source: String,
    /// `rules/<file>` -> SHA-256 of the rule files (see [`crate::config_hash`]).
    pub rules_hashes: std::collections::BTreeMap<String, String>,
    /// Write a new plan even when the latest plan has the same inputs fingerprint.
    pub force: bool,
    pub session: SessionOptions,
    /// Retries and timeouts of object-store requests; failed attempts land in the plan.
    pub storage: StoragePolicy,
    /// Plan series under the pipeline's folder (empty: the live series); see
    /// [`PlanStore::with_series`].
    pub plan_series: Vec<String>,
    /// Outputs of the `scope: range` stages, computed once for all windows of a backfill;
    /// `None`: the run computes them over its own window's days.
    pub shared_stages: Option<Arc<SharedStages>>,
}

/// What a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    pub plan: Plan,
    /// Where the plan was written (None for a dry run).
    pub stored: Option<StoredPlan>,
    pub execution: Execution,
    /// The fraud review, when rules were given.
    pub fraud: Option<FraudReview>,
    /// Set when nothing ran: the latest stored plan has the same inputs fingerprint (`plan` is
    /// that stored plan).
    pub unchanged: bool,
    /// The plan store the run used (None for a dry run), for what follows the write
    /// (notifications, audit records).
    pub store: Option<PlanStore>,
    /// The HTML report and Markdown summary written beside the plan, or why they could not be
    /// (the plan stands either way; `refopt report` renders them again). None when no plan was
    /// written.
    pub report: Option<Result<StoredReport, String>>,
}

/// The dashboard snapshot written beside a plan.
#[derive(Debug, Clone)]
pub struct StoredReport {
    pub html_url: String,
    pub markdown_url: String,
    /// The Markdown summary itself (for chat notifications).
    pub markdown: String,
}

/// Renders the plan's report and writes it beside the plan (`plan-v<N>.html`, `.md`).
async fn write_report(
    store: &PlanStore,
    plan: &Plan,
    history: &[Plan],
    detail: Detail,
) -> Result<StoredReport, String> {
    let report = refopt_report::render(plan, history, detail).map_err(|e| e.to_string())?;
    let (html_name, markdown_name) = refopt_report::file_names(plan.version);
    let pipeline = &plan.pipeline.name;
    let html_url = store
        .write_artifact(pipeline, &html_name, report.html.into_bytes().into())
        .await
        .map_err(|e| e.to_string())?;
    let markdown_url = store
        .write_artifact(
            pipeline,
            &markdown_name,
            report.markdown.clone().into_bytes().into(),
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(StoredReport {
        html_url,
        markdown_url,
        markdown: report.markdown,
    })
}

/// Runs the pipeline and writes its plan: [`prepare`], [`ReadyRun::analyze`],
/// [`AnalyzedRun::finish`] in a row.
pub async fn run(
    request: RunRequest,
    observer: Arc<dyn StageObserver>,
) -> Result<RunOutcome, EngineError> {
    match prepare(request).await? {
        Prepared::Unchanged(outcome) => Ok(*outcome),
        Prepared::Ready(ready) => ready.analyze(observer).await?.finish(None).await,
    }
}

/// A run after [`prepare`]: either nothing to do, or ready to analyze.
pub enum Prepared {
    /// The latest stored plan has the same inputs fingerprint (the outcome carries it).
    Unchanged(Box<RunOutcome>),
    Ready(Box<ReadyRun>),
}

/// A run whose inputs are resolved: stores opened, datasets registered, earlier plans read.
pub struct ReadyRun {
    request: RunRequest,
    plan_store: Option<PlanStore>,
    ctx: SessionContext,
    data_root_display: String,
    datasets: Vec<RegisteredDataset>,
    range: WindowRange,
    params: ParamValues,
    fingerprint: String,
    /// The series' earlier plans as stored, newest first.
    stored_previous: Vec<Plan>,
}

/// A run whose stages and rules have run: everything of the plan but what depends on earlier
/// plans (escalations, change log, report trend). Windows of a backfill are analyzed
/// concurrently and finished in chronological order.
pub struct AnalyzedRun {
    ready: ReadyRun,
    execution: Execution,
    fraud: Option<FraudReview>,
    risk: Risk,
    run_id: String,
    created_at: DateTime<Utc>,
    review_ms: u64,
    risk_ms: u64,
}

/// A session over the request's data root with the pipeline's datasets registered.
pub(crate) async fn open_data(
    request: &RunRequest,
) -> Result<(SessionContext, StorageLocation, Vec<RegisteredDataset>), EngineError> {
    let data = storage::resolve_with(&request.data_root, &request.storage)
        .map_err(|e| EngineError::Parameter(e.to_string()))?;
    let ctx = new_session(&request.session)?;
    let datasets = register_datasets(&ctx, &data, &request.pipeline.datasets).await?;
    Ok((ctx, data, datasets))
}

/// Checks the parameters, opens the stores, registers the datasets and reads the series'
/// earlier plans; returns [`Prepared::Unchanged`] when the latest plan has the same inputs
/// (unless `force`).
pub async fn prepare(request: RunRequest) -> Result<Prepared, EngineError> {
    let pipeline = &request.pipeline;
    pipeline
        .check_dimensions(&request.dimensions)
        .map_err(EngineError::Parameter)?;
    if let Some(t) = request.alert_threshold
        && !t.is_finite()
    {
        return Err(EngineError::Parameter(format!(
            "--alert-threshold must be a finite number, got {t}"
        )));
    }
    let (ctx, data, datasets) = open_data(&request).await?;
    let plan_store = match &request.plans_root {
        Some(root) => {
            let parameter = |e: storage::StorageError| EngineError::Parameter(e.to_string());
            let loc = storage::resolve_with(root, &request.storage).map_err(parameter)?;
            // Create-only puts are retried by the plan store itself (it can tell its own
            // landed write from another run's), so their client must not retry as well.
            let create = storage::resolve_with(root, &request.storage.without_retries())
                .map_err(parameter)?;
            Some(
                PlanStore::new(loc.store, loc.prefix, loc.display)
                    .with_create_retries(
                        create.store,
                        request.storage.retries,
                        request.storage.initial_backoff,
                    )
                    .with_series(request.plan_series.clone()),
            )
        }
        None => None,
    };
    let range = WindowRange::new(request.window, request.as_of);
    crate::assemble::selected_experiments(&request, &range)?;
    let params = crate::params::bind(&range, request.window.days);
    let fingerprint = fingerprint(&request, &datasets);
    // The series' earlier plans, read once: the latest decides whether this run is a
    // duplicate, and all of them feed cross-run triggers (escalations) and the change log.
    let previous = match &plan_store {
        Some(store) => previous_plans(store, &pipeline.name, &request).await?,
        None => PreviousPlans::default(),
    };
    if !request.force
        && let Some((stored, plan)) = previous.latest()
        && plan.inputs.fingerprint == fingerprint
    {
        return Ok(Prepared::Unchanged(Box::new(RunOutcome {
            plan: plan.clone(),
            stored: Some(stored.clone()),
            execution: Execution::default(),
            fraud: None,
            unchanged: true,
            store: plan_store.clone(),
            report: None,
        })));
    }
    Ok(Prepared::Ready(Box::new(ReadyRun {
        plan_store,
        ctx,
        data_root_display: data.display,
        datasets,
        range,
        params,
        fingerprint,
        stored_previous: previous.plans.into_iter().map(|(_, p)| p).collect(),
        request,
    })))
}

impl ReadyRun {
    /// Runs the stage DAG and the rules (fraud review, risk section). Writes nothing; fails
    /// when a stage fails.
    pub async fn analyze(
        self,
        observer: Arc<dyn StageObserver>,
    ) -> Result<AnalyzedRun, EngineError> {
        let execution = self.execute_stages(observer).await?;
        self.apply_rules(execution).await
    }

    /// Runs the stage DAG; its outputs become tables of this run's session.
    pub async fn execute_stages(
        &self,
        observer: Arc<dyn StageObserver>,
    ) -> Result<Execution, EngineError> {
        let execution = execute(
            &self.ctx,
            &self.request.pipeline,
            &self.params,
            self.request.session.max_parallel_stages(),
            observer,
            self.request.shared_stages.as_deref(),
        )
        .await;
        if !execution.succeeded() {
            return Err(stages_failed(&execution));
        }
        Ok(execution)
    }

    /// Reads the `scope: range` stages from `shared` instead of computing them.
    pub fn share_stages(&mut self, shared: Arc<SharedStages>) {
        self.request.shared_stages = Some(shared);
    }

    /// The same run with other rules, sharing this run's session and stage outputs (a backtest
    /// executes the stages once per window for both rule sets).
    pub fn with_rules(&self, rules: RuleSet, rules_source: String) -> ReadyRun {
        let mut request = self.request.clone();
        request.rules = rules;
        request.rules_source = rules_source;
        ReadyRun {
            fingerprint: fingerprint(&request, &self.datasets),
            request,
            plan_store: self.plan_store.clone(),
            ctx: self.ctx.clone(),
            data_root_display: self.data_root_display.clone(),
            datasets: self.datasets.clone(),
            range: self.range,
            params: self.params.clone(),
            stored_previous: self.stored_previous.clone(),
        }
    }

    /// Runs the rules (fraud review, risk section) over the stage outputs of `execution`.
    pub async fn apply_rules(self, execution: Execution) -> Result<AnalyzedRun, EngineError> {
        let request = &self.request;
        let rules_started = std::time::Instant::now();
        let fraud = match &request.rules.fraud {
            Some(rules) => {
                let sweep_factors: &[f64] = match request.detail {
                    Detail::Full => &SWEEP_FACTORS,
                    Detail::Summary => &[],
                };
                let options = ReviewOptions {
                    suppressions: request.rules.suppressions.as_ref(),
                    as_of: request.as_of,
                    sweep_factors,
                };
                Some(review(&self.ctx, rules, options).await?)
            }
            None => None,
        };

        let review_ms = rules_started.elapsed().as_millis() as u64;
        let created_at = Utc::now();
        let run_id = run_id(created_at);
        let risk = match &fraud {
            Some(review) => {
                let limits = request
                    .rules
                    .fraud
                    .as_ref()
                    .and_then(|f| f.payout_concentration.as_ref());
                crate::risk::risk_section(&self.ctx, review, &self.params, limits).await?
            }
            None => Risk::default(),
        };
        let risk_ms = rules_started.elapsed().as_millis() as u64 - review_ms;
        Ok(AnalyzedRun {
            ready: self,
            execution,
            fraud,
            risk,
            run_id,
            created_at,
            review_ms,
            risk_ms,
        })
    }

    fn storage_error(&self, e: impl std::fmt::Display) -> EngineError {
        EngineError::Storage {
            location: self.request.plans_root.clone().unwrap_or_default(),
            message: e.to_string(),
        }
    }
}

impl AnalyzedRun {
    /// Assembles the plan with its earlier plans (newest first; `None`: the plans stored in
    /// the series — backfills and backtests pass their own chronology) and writes the flagged-referrals file,
    /// the plan and its report.
    pub async fn finish(self, previous: Option<Vec<Plan>>) -> Result<RunOutcome, EngineError> {
        let AnalyzedRun {
            ready,
            execution,
            fraud,
            mut risk,
            run_id,
            created_at,
            review_ms,
            risk_ms,
        } = self;
        let request = &ready.request;
        // Flagged referrals can be many: they go to a Parquet file beside the plan.
        if let (Some(store), Some(review)) = (&ready.plan_store, &fraud)
            && !review.flagged.is_empty()
        {
            let bytes = crate::fraud::flagged_parquet(&review.flagged)?;
            let name = format!("flagged-referrals/{run_id}.parquet");
            let url = store
                .write_artifact(&request.pipeline.name, &name, bytes)
                .await
                .map_err(|e| ready.storage_error(e))?;
            risk.flagged_referrals_url = Some(url);
        }
        let assembling = std::time::Instant::now();
        let previous = previous.unwrap_or_else(|| ready.stored_previous.clone());
        let mut plan = assemble(&PlanContext {
            request,
            run_id,
            created_at,
            range: &ready.range,
            data_root_display: &ready.data_root_display,
            datasets: &ready.datasets,
            execution: &execution,
            risk,
            previous: &previous,
        })?;
        plan.inputs.fingerprint = ready.fingerprint.clone();
        plan.change_log = crate::change_log::change_log(&plan, previous.first());
        // Where the time after the stages goes (JSON logs), for performance work.
        tracing::info!(
            fraud_review_ms = review_ms,
            risk_section_ms = risk_ms,
            assemble_ms = assembling.elapsed().as_millis() as u64,
            "rules phase finished"
        );
        let stored = match &ready.plan_store {
            Some(store) => Some(
                store
                    .write(&mut plan)
                    .await
                    .map_err(|e| ready.storage_error(e))?,
            ),
            None => None,
        };
        let report = match &ready.plan_store {
            Some(store) => Some(write_report(store, &plan, &previous, request.detail).await),
            None => None,
        };
        Ok(RunOutcome {
            plan,
            stored,
            execution,
            fraud,
            unchanged: false,
            store: ready.plan_store,
            report,
        })
    }
}

/// The error of a run whose stages did not all succeed: how many failed and the first one.
pub(crate) fn stages_failed(execution: &Execution) -> EngineError {
    let failed: Vec<_> = execution
        .stages
        .iter()
        .filter(|s| s.status == StageStatus::Failed)
        .collect();
    let first = failed
        .first()
        .map(|s| {
            format!(
                "stage `{}` after {} attempt(s): {}",
                s.id,
                s.attempts,
                s.error.as_deref().unwrap_or("unknown error")
            )
        })
        .unwrap_or_else(|| "a stage did not run".to_string());
    EngineError::StagesFailed {
        failed: failed.len(),
        first,
    }
}

/// SHA-256 over the data files, the configuration and the parameters of a run.
fn fingerprint(request: &RunRequest, datasets: &[crate::datasets::RegisteredDataset]) -> String {
    let mut text = format!(
        "pipeline {}\nwindow {}\nas_of {}\ndetail {:?}\ndimensions {:?}\nexperiments {:?}\nalert_threshold {:?}\nrules {}\n",
        request.pipeline.name,
        request.window,
        request.as_of,
        request.detail,
        request.dimensions,
        request.experiments,
        request.alert_threshold,
        request.rules_source,
    );
    for (file, hash) in request
        .rules_hashes
        .iter()
        .chain(&crate::config_hash::pipeline_hashes(&request.pipeline))
    {
        text.push_str(&format!("config {file} {hash}\n"));
    }
    for d in datasets {
        text.push_str(&format!("data {} {}\n", d.name, d.fingerprint));
    }
    crate::config_hash::sha256_hex(text.as_bytes())
}

/// Threshold factors of the sensitivity sweep at `--detail full`.
const SWEEP_FACTORS: [f64; 2] = [0.8, 1.25];

/// How many earlier plans are read for cross-run triggers.
pub const PREVIOUS_PLANS: usize = 8;

/// The pipeline's most recent plans, newest first (unreadable objects are skipped).
#[derive(Debug, Default)]
struct PreviousPlans {
    /// Version of the newest stored plan, readable or not.
    latest_version: Option<u64>,
    plans: Vec<(StoredPlan, Plan)>,
}

impl PreviousPlans {
    /// The newest stored plan, when it could be read.
    fn latest(&self) -> Option<&(StoredPlan, Plan)> {
        self.plans
            .first()
            .filter(|(stored, _)| Some(stored.version) == self.latest_version)
    }
}

/// Lists the pipeline's plans once and reads the newest [`PREVIOUS_PLANS`] of them.
async fn previous_plans(
    store: &PlanStore,
    pipeline: &str,
    request: &RunRequest,
) -> Result<PreviousPlans, EngineError> {
    let listed = store
        .list(pipeline)
        .await
        .map_err(|e| EngineError::Storage {
            location: request.plans_root.clone().unwrap_or_default(),
            message: e.to_string(),
        })?;
    let mut plans = Vec::new();
    for stored in listed.iter().rev().take(PREVIOUS_PLANS) {
        if let Ok(plan) = store.read(stored).await {
            plans.push((stored.clone(), plan));
        }
    }
    Ok(PreviousPlans {
        latest_version: listed.last().map(|p| p.version),
        plans,
    })
}

/// `<UTC timestamp>-<8 random hex digits>`: sortable and unique across concurrent runs.
fn run_id(at: DateTime<Utc>) -> String {
    format!(
        "{}-{:08x}",
        at.format("%Y%m%dT%H%M%SZ"),
        rand::rng().random::<u32>()
    )
}
