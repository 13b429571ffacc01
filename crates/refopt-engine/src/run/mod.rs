//! One run end to end: resolve stores, register datasets, execute the stage DAG, assemble the
//! plan and write it to the plan store. Nothing is written unless every stage succeeded.

pub mod backfill;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use datafusion::common::ParamValues;
use datafusion::prelude::SessionContext;
use rand::Rng;
use refopt_plan::{AcknowledgementRecord, DataTestResult, Plan, PlanStore, Risk, StoredPlan};
use refopt_spec::{RuleSet, WindowRange};

use crate::assembly::{PlanContext, assemble};
use crate::error::EngineError;
use crate::execution::datasets::{RegisteredDataset, register_datasets};
use crate::execution::executor::{Execution, SharedStages, StageObserver, StageStatus, execute};
use crate::execution::session::new_session;
use crate::rules::{FraudReview, RuleInputs};
use crate::storage::{self, StorageLocation};

pub use crate::request::RunRequest;

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
    /// The earlier plans the run read (newest first): the history its report shows (trend,
    /// deltas). Empty when nothing was written.
    pub history: Vec<Plan>,
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
    data: StorageLocation,
    data_root_display: String,
    datasets: Vec<RegisteredDataset>,
    range: WindowRange,
    params: ParamValues,
    fingerprint: String,
    /// The series' earlier plans as stored, newest first.
    stored_previous: Vec<Plan>,
    /// Acknowledgements of escalation episodes recorded for the series.
    acks: Vec<AcknowledgementRecord>,
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
    data_tests: DataTestRun,
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
    if let Some(t) = request.alert_threshold {
        crate::rules::alerts::check_alert_threshold(t, request.rules.alerts.as_ref())
            .map_err(EngineError::Parameter)?;
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
    crate::experiments::selected(
        request.rules.experiments.as_ref(),
        &request.experiments,
        &range,
    )?;
    let params = crate::execution::params::bind(&range, request.window.days);
    // Money is summed in one currency: stop before any stage adds up mixed ones.
    crate::execution::currency::check_single_currency(&ctx, pipeline, &params).await?;
    let fingerprint = fingerprint(&request, &datasets);
    // The series' earlier plans, read once: the latest decides whether this run is a
    // duplicate, and all of them feed cross-run triggers (escalations) and the change log.
    let previous = match &plan_store {
        Some(store) => previous_plans(store, &pipeline.name, request.as_of).await?,
        None => PreviousPlans::default(),
    };
    let acks = match &plan_store {
        Some(store) => acknowledgements(store, &pipeline.name).await?,
        None => Vec::new(),
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
            history: Vec::new(),
        })));
    }
    Ok(Prepared::Ready(Box::new(ReadyRun {
        plan_store,
        ctx,
        data_root_display: data.display.clone(),
        data,
        datasets,
        range,
        params,
        fingerprint,
        stored_previous: previous.plans.into_iter().map(|(_, p)| p).collect(),
        acks,
        request,
    })))
}

/// The declared data tests' results per dataset, and how long they took to evaluate.
#[derive(Debug, Clone)]
pub struct DataTestRun {
    results: BTreeMap<String, Vec<DataTestResult>>,
    ms: u64,
}

impl ReadyRun {
    /// Runs the stage DAG and the rules (fraud review, risk section). Writes nothing; fails
    /// when a stage fails.
    pub async fn analyze(
        self,
        observer: Arc<dyn StageObserver>,
    ) -> Result<AnalyzedRun, EngineError> {
        // The data tests read only the datasets: they run beside the stages, unless stages run
        // one at a time (under a memory limit, so that each query gets the whole pool).
        let (execution, data_tests) = if self.request.session.max_parallel_stages() > 1 {
            let (execution, data_tests) = tokio::join!(
                self.execute_stages(observer.clone()),
                self.evaluate_data_tests()
            );
            (execution?, data_tests?)
        } else {
            let execution = self.execute_stages(observer.clone()).await?;
            (execution, self.evaluate_data_tests().await?)
        };
        observer.phase_started("rules");
        self.apply_rules(execution, data_tests).await
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
            return Err(
                stages_failed(&execution, &self.data, &self.request.pipeline.datasets).await,
            );
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
            data: self.data.clone(),
            data_root_display: self.data_root_display.clone(),
            datasets: self.datasets.clone(),
            range: self.range,
            params: self.params.clone(),
            stored_previous: self.stored_previous.clone(),
            acks: self.acks.clone(),
        }
    }

    /// Evaluates the pipeline's declared data tests over the datasets (no stage output needed).
    pub async fn evaluate_data_tests(&self) -> Result<DataTestRun, EngineError> {
        let testing = std::time::Instant::now();
        let results = crate::metrics::data_tests::evaluate(
            &self.ctx,
            &self.request.pipeline,
            &self.params,
            &self.range,
        )
        .await?;
        Ok(DataTestRun {
            results,
            ms: testing.elapsed().as_millis() as u64,
        })
    }

    /// Runs the fraud review and builds the risk section over the stage outputs of
    /// `execution`; `data_tests` come from [`ReadyRun::evaluate_data_tests`].
    pub async fn apply_rules(
        self,
        execution: Execution,
        data_tests: DataTestRun,
    ) -> Result<AnalyzedRun, EngineError> {
        let request = &self.request;
        crate::checks::validate::refuse_rules_on_unknown_columns(
            &self.ctx,
            &request.pipeline,
            &request.rules,
        )
        .await?;
        let review = crate::rules::review(
            &self.ctx,
            &request.rules,
            &self.params,
            request.as_of,
            request.detail,
            request.rule_engine,
        )
        .await?;
        let created_at = Utc::now();
        Ok(AnalyzedRun {
            execution,
            fraud: review.fraud,
            risk: review.risk,
            run_id: run_id(created_at),
            created_at,
            review_ms: review.review_ms,
            risk_ms: review.risk_ms,
            data_tests,
            ready: self,
        })
    }

    fn storage_error(&self, e: refopt_plan::PlanStoreError) -> EngineError {
        match EngineError::from(e) {
            EngineError::Storage {
                location,
                context,
                source,
            } if location.is_empty() => EngineError::Storage {
                location: self.request.plans_root.clone().unwrap_or_default(),
                context,
                source,
            },
            e => e,
        }
    }
}

impl AnalyzedRun {
    /// Assembles the plan with its earlier plans (newest first; `None`: the plans stored in
    /// the series — backfills and backtests pass their own chronology) and writes the flagged-referrals file
    /// and the plan. The report beside it is the caller's (`refopt_report::write_beside`).
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
            data_tests,
        } = self;
        let request = &ready.request;
        // After SIGTERM/SIGINT nothing is written: rules stopped mid-way would make a plan
        // that looks complete but is not.
        if refopt_spec::stop::requested() {
            return Err(EngineError::Cancelled(
                "stop requested before the plan was written".into(),
            ));
        }
        // Flagged referrals can be many: they go to a Parquet file beside the plan.
        if let (Some(store), Some(review)) = (&ready.plan_store, &fraud)
            && !review.flagged.is_empty()
        {
            let bytes = crate::rules::fraud::flagged_parquet(&review.flagged)?;
            // Named by content: a rerun that flags the same referrals adopts the file a
            // stopped run left (the create-only put finds identical bytes) instead of adding one.
            let digest = crate::config_hash::sha256_hex(&bytes);
            let name = format!(
                "{}/{}.parquet",
                refopt_plan::FLAGGED_REFERRALS_FOLDER,
                &digest[..24]
            );
            let url = store
                .write_artifact(&request.pipeline.name, &name, bytes)
                .await
                .map_err(|e| ready.storage_error(e))?;
            risk.flagged_referrals_url = Some(url);
        }
        let assembling = std::time::Instant::now();
        let previous = previous.unwrap_or_else(|| ready.stored_previous.clone());
        let rule_retries = fraud.as_ref().map_or_else(Vec::new, |f| f.retries.clone());
        let plan = plan_of(
            &ready,
            &execution,
            ReviewOutputs {
                risk,
                rule_retries,
                data_tests: data_tests.results,
            },
            run_id,
            created_at,
            &previous,
        )?;
        // Where the time after the stages goes (JSON logs), for performance work.
        tracing::info!(
            data_tests_ms = data_tests.ms,
            fraud_review_ms = review_ms,
            risk_section_ms = risk_ms,
            assemble_ms = assembling.elapsed().as_millis() as u64,
            "rules phase finished"
        );
        let mut plan = plan;
        if refopt_spec::stop::requested() {
            return Err(EngineError::Cancelled(
                "stop requested before the plan was written".into(),
            ));
        }
        let stored = match &ready.plan_store {
            Some(store) => Some(
                store
                    .write(&mut plan)
                    .await
                    .map_err(|e| ready.storage_error(e))?,
            ),
            None => None,
        };
        Ok(RunOutcome {
            plan,
            stored,
            execution,
            fraud,
            unchanged: false,
            store: ready.plan_store,
            history: previous,
        })
    }
}

/// What the review phase produced besides the stage outputs: the risk section, the fraud
/// rules' retried attempts and the data tests' results per dataset.
struct ReviewOutputs {
    risk: Risk,
    rule_retries: Vec<refopt_plan::ErrorEvent>,
    data_tests: BTreeMap<String, Vec<DataTestResult>>,
}

/// The plan of an analyzed run: measures, the rules phase, experiments, assembly, then the
/// playbook's backlog and the change log (both read the assembled plan).
fn plan_of(
    ready: &ReadyRun,
    execution: &Execution,
    reviewed: ReviewOutputs,
    run_id: String,
    created_at: DateTime<Utc>,
    previous: &[Plan],
) -> Result<Plan, EngineError> {
    let ReviewOutputs {
        risk,
        rule_retries,
        data_tests,
    } = reviewed;
    let request = &ready.request;
    let pipeline = &request.pipeline;
    let full = request.detail == refopt_plan::Detail::Full;
    let measures = crate::metrics::measure(
        pipeline,
        execution,
        &request.dimensions,
        full,
        &request.rules.targets.unwrap_or_default(),
    )?;
    let rule_results = crate::rules::apply(&RuleInputs {
        rules: &request.rules,
        pipeline,
        execution,
        measures: &measures,
        risk: &risk,
        alert_threshold: request.alert_threshold,
        detail: request.detail,
        run_id: &run_id,
        as_of: request.as_of,
        window_days: request.window.days,
        previous,
        acks: &ready.acks,
    })?;
    let experiments = crate::experiments::evaluate(
        request.rules.experiments.as_ref(),
        &request.experiments,
        pipeline,
        execution,
        &ready.range,
    )?;
    let mut plan = assemble(PlanContext {
        request,
        run_id,
        created_at,
        range: &ready.range,
        data_root_display: &ready.data_root_display,
        datasets: &ready.datasets,
        execution,
        measures,
        risk,
        rule_retries,
        rule_results,
        experiments,
        data_tests,
    });
    match crate::rules::backlog(&request.rules, &plan) {
        Ok(items) => plan.backlog = items,
        Err(skipped) => plan.error_handling.events.push(skipped),
    }
    plan.inputs.fingerprint = ready.fingerprint.clone();
    plan.change_log = crate::assembly::change_log::change_log(&plan, previous.first());
    Ok(plan)
}

/// The error of a run whose stages did not all succeed: the files at fault when a stage could
/// not decode stored Parquet (exit 4, like any other bad data), else how many stages failed
/// and the first one.
pub(crate) async fn stages_failed(
    execution: &Execution,
    data: &StorageLocation,
    datasets: &[refopt_spec::Dataset],
) -> EngineError {
    if execution.undecodable_data {
        match crate::execution::datasets::find_undecodable_files(data, datasets).await {
            Ok(problems) if !problems.is_empty() => {
                return EngineError::Datasets(refopt_spec::Diagnostics(problems));
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("looking for the undecodable file failed: {e}"),
        }
    }
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
fn fingerprint(request: &RunRequest, datasets: &[RegisteredDataset]) -> String {
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

/// How many earlier plans are read for cross-run triggers.
pub const PREVIOUS_PLANS: usize = 8;

/// The pipeline's most recent plans, newest first (unreadable objects are skipped with a
/// warning).
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

/// Lists the pipeline's plans once and reads the newest [`PREVIOUS_PLANS`] of them, and
/// further back (up to [`PREDECESSOR_SEARCH`] plans) until one has an as-of date before
/// `as_of`: the plan whose escalation memory this run continues, however many reruns of this
/// date were written since.
async fn previous_plans(
    store: &PlanStore,
    pipeline: &str,
    as_of: chrono::NaiveDate,
) -> Result<PreviousPlans, EngineError> {
    let listed = store.list(pipeline).await.map_err(EngineError::from)?;
    let mut plans = Vec::new();
    let as_of = as_of.to_string();
    for stored in listed.iter().rev().take(PREDECESSOR_SEARCH) {
        let found_predecessor = plans
            .iter()
            .any(|(_, p): &(StoredPlan, Plan)| p.inputs.as_of < as_of);
        if plans.len() >= PREVIOUS_PLANS && found_predecessor {
            break;
        }
        match store.read(stored).await {
            Ok(plan) => plans.push((stored.clone(), plan)),
            // Escalation memory and the change log go without it: say so.
            Err(e) => tracing::warn!(
                plan = %stored.url,
                error = %e,
                "an earlier plan could not be read; escalations and the change log do not see it"
            ),
        }
    }
    Ok(PreviousPlans {
        latest_version: listed.last().map(|p| p.version),
        plans,
    })
}

/// How far back [`previous_plans`] looks for a plan with an earlier as-of date.
const PREDECESSOR_SEARCH: usize = 64;

/// The acknowledgements of escalation episodes recorded for the series (`refopt plan ack`);
/// an unreadable record is skipped with a warning (its episode keeps climbing).
async fn acknowledgements(
    store: &PlanStore,
    pipeline: &str,
) -> Result<Vec<AcknowledgementRecord>, EngineError> {
    let records = store
        .read_series_records(pipeline, ACKS_FOLDER)
        .await
        .map_err(EngineError::from)?;
    Ok(records
        .into_iter()
        .filter_map(|(name, bytes)| match serde_json::from_slice(&bytes) {
            Ok(record) => Some(record),
            Err(e) => {
                tracing::warn!(record = %name, error = %e, "an acknowledgement could not be read; its episode is treated as unacknowledged");
                None
            }
        })
        .collect())
}

/// The series folder of acknowledgement records.
pub const ACKS_FOLDER: &str = "acks";

/// `<UTC timestamp>-<8 random hex digits>`: sortable and unique across concurrent runs.
fn run_id(at: DateTime<Utc>) -> String {
    format!(
        "{}-{:08x}",
        at.format("%Y%m%dT%H%M%SZ"),
        rand::rng().random::<u32>()
    )
}
