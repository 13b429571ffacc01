//! The stage DAG executor: runs every stage as soon as its dependencies succeeded, independent
//! stages concurrently on tokio, retrying transient failures with exponential backoff and
//! jitter, and recording every attempt.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveDate, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::common::ParamValues;
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::physical_plan::collect;
use datafusion::physical_plan::display::DisplayableExecutionPlan;
use datafusion::prelude::{DataFrame, SessionContext};
use refopt_plan::ErrorAction;
use refopt_spec::{Pipeline, Stage, StageKind, StageScope};

use super::scratch::Scratch;
use super::spilled::SpilledOutput;
use tokio::task::JoinSet;

/// The outcome of one stage.
#[derive(Debug, Clone)]
pub struct StageRecord {
    pub id: String,
    pub kind: &'static str,
    pub status: StageStatus,
    pub attempts: u32,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration: Option<Duration>,
    pub output_rows: Option<u64>,
    pub error: Option<String>,
}

/// Final state of a stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageStatus {
    Succeeded,
    Failed,
    Skipped,
}

/// One failed attempt.
#[derive(Debug, Clone)]
pub struct AttemptFailure {
    pub stage: String,
    pub attempt: u32,
    pub error: String,
    /// `Retried`, `GaveUp` or `NotRetryable`.
    pub action: ErrorAction,
    pub backoff: Option<Duration>,
}

/// Everything the executor did.
#[derive(Debug, Clone, Default)]
pub struct Execution {
    /// Stage records in pipeline order.
    pub stages: Vec<StageRecord>,
    pub failures: Vec<AttemptFailure>,
    /// Stages that ran at the same time as at least one other stage.
    pub overlapped: BTreeSet<String>,
    /// Output batches of every SQL stage that succeeded.
    pub outputs: BTreeMap<String, Vec<RecordBatch>>,
    /// Whether a stage failed because stored Parquet could not be decoded (a corrupt page):
    /// the run then looks for the file at fault.
    pub undecodable_data: bool,
}

impl Execution {
    /// Whether every stage succeeded.
    pub fn succeeded(&self) -> bool {
        self.stages
            .iter()
            .all(|s| s.status == StageStatus::Succeeded)
    }
}

/// Observer of stage progress (for progress bars and logs).
pub trait StageObserver: Send + Sync {
    fn started(&self, _stage: &str) {}
    fn finished(&self, _record: &StageRecord) {}
    /// The phase after the stages began: `rules` (data tests, fraud review, risk section).
    fn phase_started(&self, _phase: &str) {}
}

/// An observer that does nothing.
pub struct Quiet;
impl StageObserver for Quiet {}

struct Finished {
    record: StageRecord,
    failures: Vec<AttemptFailure>,
    batches: Vec<RecordBatch>,
    undecodable_data: bool,
}

/// Outputs of `scope: range` stages computed once, before the windows of a backfill: each
/// window's execution registers them as tables instead of running those stages.
#[derive(Debug, Clone)]
pub struct SharedStages {
    /// First and last day (exclusive) the stages computed over.
    pub range: (NaiveDate, NaiveDate),
    pub outputs: BTreeMap<String, SharedOutput>,
}

/// One shared stage: how it ran, and its result.
#[derive(Debug, Clone)]
pub struct SharedOutput {
    pub record: StageRecord,
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// Runs the pipeline's stages on `ctx` with `params` bound. Stages in `shared` are not run:
/// their outputs are registered as tables and their records copied.
pub async fn execute(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    params: &ParamValues,
    max_parallel_stages: usize,
    observer: Arc<dyn StageObserver>,
    shared: Option<&SharedStages>,
) -> Execution {
    let max_parallel_stages = max_parallel_stages.max(1);
    let mut execution = Execution::default();
    let mut records: BTreeMap<String, StageRecord> = BTreeMap::new();
    let mut running: JoinSet<Finished> = JoinSet::new();
    let mut in_flight: BTreeSet<String> = BTreeSet::new();
    let mut task_stage: std::collections::HashMap<tokio::task::Id, String> =
        std::collections::HashMap::new();
    let mut waiting: Vec<&Stage> = pipeline.stages.iter().collect();
    for (id, output) in shared.map(|s| &s.outputs).into_iter().flatten() {
        let mut record = output.record.clone();
        if let Err(e) = register_output(ctx, id, output.schema.clone(), output.batches.clone()) {
            record.status = StageStatus::Failed;
            record.error = Some(format!("cannot register the shared output: {e}"));
        } else {
            execution.outputs.insert(id.clone(), output.batches.clone());
        }
        observer.finished(&record);
        records.insert(id.clone(), record);
        waiting.retain(|s| &s.id != id);
    }

    loop {
        // Start or skip whatever is decidable now.
        let mut i = 0;
        while i < waiting.len() {
            let stage = waiting[i];
            let dep_states: Vec<Option<StageStatus>> = stage
                .depends_on
                .iter()
                .map(|d| records.get(d).map(|r| r.status))
                .collect();
            if dep_states
                .iter()
                .any(|s| matches!(s, Some(StageStatus::Failed | StageStatus::Skipped)))
            {
                let record = skipped(stage);
                observer.finished(&record);
                records.insert(stage.id.clone(), record);
                waiting.remove(i);
                continue;
            }
            if dep_states
                .iter()
                .all(|s| *s == Some(StageStatus::Succeeded))
                && in_flight.len() < max_parallel_stages
            {
                observer.started(&stage.id);
                in_flight.insert(stage.id.clone());
                if in_flight.len() > 1 {
                    execution.overlapped.extend(in_flight.iter().cloned());
                }
                let handle = running.spawn(run_stage(ctx.clone(), stage.clone(), params.clone()));
                task_stage.insert(handle.id(), stage.id.clone());
                waiting.remove(i);
                continue;
            }
            i += 1;
        }
        let Some(done) = running.join_next_with_id().await else {
            break;
        };
        let finished = match done {
            Ok((_, f)) => f,
            Err(join_error) => {
                // A panicking stage task is a bug; record it rather than crash the run.
                let id = task_stage
                    .get(&join_error.id())
                    .cloned()
                    .unwrap_or_default();
                Finished {
                    record: StageRecord {
                        id,
                        kind: "sql",
                        status: StageStatus::Failed,
                        attempts: 1,
                        started_at: None,
                        finished_at: Some(Utc::now()),
                        duration: None,
                        output_rows: None,
                        error: Some(format!("stage task aborted: {join_error}")),
                    },
                    failures: Vec::new(),
                    batches: Vec::new(),
                    undecodable_data: false,
                }
            }
        };
        in_flight.remove(&finished.record.id);
        observer.finished(&finished.record);
        execution.failures.extend(finished.failures);
        execution.undecodable_data |= finished.undecodable_data;
        if finished.record.status == StageStatus::Succeeded && finished.record.kind == "sql" {
            execution
                .outputs
                .insert(finished.record.id.clone(), finished.batches);
        }
        records.insert(finished.record.id.clone(), finished.record);
    }
    execution.stages = pipeline
        .stages
        .iter()
        .filter_map(|s| records.remove(&s.id))
        .collect();
    execution
}

fn skipped(stage: &Stage) -> StageRecord {
    StageRecord {
        id: stage.id.clone(),
        kind: kind_name(stage),
        status: StageStatus::Skipped,
        attempts: 0,
        started_at: None,
        finished_at: None,
        duration: None,
        output_rows: None,
        error: Some("not run: a dependency failed".to_string()),
    }
}

fn kind_name(stage: &Stage) -> &'static str {
    stage.kind.name()
}

async fn run_stage(ctx: SessionContext, stage: Stage, params: ParamValues) -> Finished {
    let started_at = Utc::now();
    let clock = Instant::now();
    let mut failures = Vec::new();
    let mut attempts = 0;
    let mut undecodable_data = false;
    let outcome = loop {
        attempts += 1;
        let result = match &stage.kind {
            StageKind::Gate => Ok(StageOutput::default()),
            StageKind::Sql { sql, .. } => run_sql(&ctx, &stage, sql, &params).await,
            StageKind::Components { sql, .. } => run_components(&ctx, &stage, sql, &params).await,
        };
        match result {
            Ok(output) => break Ok(output),
            Err(e) => {
                let message = e.to_string();
                let retryable = is_transient(&e);
                if retryable && attempts <= stage.retry.limit {
                    let backoff = backoff(stage.retry.backoff_ms, attempts);
                    failures.push(AttemptFailure {
                        stage: stage.id.clone(),
                        attempt: attempts,
                        error: message,
                        action: ErrorAction::Retried,
                        backoff: Some(backoff),
                    });
                    tokio::time::sleep(backoff).await;
                    continue;
                }
                failures.push(AttemptFailure {
                    stage: stage.id.clone(),
                    attempt: attempts,
                    error: message.clone(),
                    action: if retryable {
                        ErrorAction::GaveUp
                    } else {
                        ErrorAction::NotRetryable
                    },
                    backoff: None,
                });
                undecodable_data = is_undecodable(&e);
                break Err(message);
            }
        }
    };
    let finished_at = Utc::now();
    let (status, output, error) = match outcome {
        Ok(o) => (StageStatus::Succeeded, o, None),
        Err(e) => (StageStatus::Failed, StageOutput::default(), Some(e)),
    };
    let output_rows =
        (status == StageStatus::Succeeded && stage.kind.sql().is_some()).then_some(output.rows);
    let batches = output.batches;
    Finished {
        record: StageRecord {
            id: stage.id.clone(),
            kind: kind_name(&stage),
            status,
            attempts,
            started_at: Some(started_at),
            finished_at: Some(finished_at),
            duration: Some(clock.elapsed()),
            output_rows,
            error,
        },
        failures,
        batches,
        undecodable_data,
    }
}

/// A stage's result: its row count, and its batches when they are held in memory.
#[derive(Default)]
struct StageOutput {
    rows: u64,
    batches: Vec<RecordBatch>,
}

/// Plans and runs one stage's SQL, then registers its result as a table named after the stage:
/// in memory, or, when the session has a scratch folder, streamed into an Arrow IPC file there
/// (nothing of it held in memory) that later stages and the rules read as a stream, one batch
/// at a time ([`SpilledOutput`]). Outputs that
/// are read as batches (published roles, and `scope: range` stages a backfill's windows share)
/// are small aggregates and stay in memory.
async fn run_sql(
    ctx: &SessionContext,
    stage: &Stage,
    sql: &str,
    params: &ParamValues,
) -> Result<StageOutput, DataFusionError> {
    let df = ctx.sql(sql).await?.with_param_values(params.clone())?;
    register_result(ctx, stage, df).await
}

/// Runs a `kind: components` stage: its SQL's edges labelled by connected component (see
/// [`super::components`]). The table stays in memory, where the union-find already held its
/// nodes: as a table with exact statistics, joins against it under a memory limit build their
/// hash table from it instead of sorting the other side (see `SmallSideHashJoin`).
async fn run_components(
    ctx: &SessionContext,
    stage: &Stage,
    sql: &str,
    params: &ParamValues,
) -> Result<StageOutput, DataFusionError> {
    let edges = ctx.sql(sql).await?.with_param_values(params.clone())?;
    let labelled = super::components::components(edges).await?;
    let rows = labelled.num_rows() as u64;
    register_output(ctx, &stage.id, labelled.schema(), vec![labelled.clone()])?;
    Ok(StageOutput {
        rows,
        batches: vec![labelled],
    })
}

/// Runs `df` and registers its result as the stage's table (see [`run_sql`]).
async fn register_result(
    ctx: &SessionContext,
    stage: &Stage,
    df: DataFrame,
) -> Result<StageOutput, DataFusionError> {
    let id = stage.id.as_str();
    let scratch = ctx.state().config().get_extension::<Scratch>();
    let read_as_batches = stage.publishes.is_some() || stage.scope == StageScope::Range;
    match scratch {
        Some(scratch) if !read_as_batches => {
            let file = scratch.stage_file(id);
            let written = write_ipc(df, &file).await?;
            ctx.deregister_table(id)?;
            let table = SpilledOutput::new(file, written.schema, written.batches);
            ctx.register_table(id, Arc::new(table))?;
            Ok(StageOutput {
                rows: written.rows,
                batches: Vec::new(),
            })
        }
        _ => {
            let planned_schema = Arc::new(df.schema().as_arrow().clone());
            let batches = collect_stage(ctx, id, df).await?;
            // Executed batches may differ from the logical schema in nullability; trust the data.
            let schema = batches.first().map_or(planned_schema, |b| b.schema());
            register_output(ctx, id, schema, batches.clone())?;
            Ok(StageOutput {
                rows: batches.iter().map(|b| b.num_rows() as u64).sum(),
                batches,
            })
        }
    }
}

/// What [`write_ipc`] wrote.
struct Written {
    schema: SchemaRef,
    rows: u64,
    batches: usize,
}

/// Streams a query's result into an Arrow IPC file, batch by batch.
async fn write_ipc(df: DataFrame, file: &std::path::Path) -> Result<Written, DataFusionError> {
    use datafusion::arrow::ipc::writer::FileWriter;
    use futures::StreamExt;
    let mut stream = df.execute_stream().await?;
    let out = std::io::BufWriter::new(std::fs::File::create(file)?);
    let schema = stream.schema();
    let mut writer = FileWriter::try_new(out, &schema)?;
    let (mut rows, mut batches) = (0u64, 0usize);
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if batch.num_rows() == 0 {
            continue;
        }
        rows += batch.num_rows() as u64;
        batches += 1;
        writer.write(&compact_views(batch)?)?;
    }
    writer.finish()?;
    Ok(Written {
        schema,
        rows,
        batches,
    })
}

/// `batch` with its string and binary view columns copied into buffers of their own where they
/// point into much larger shared buffers. A sort or window over view columns emits batches
/// whose views reference every buffer of its input run; written as they are, each batch
/// carried all of them (a 515 k-row stage output grew past 12 GB under a memory limit).
fn compact_views(batch: RecordBatch) -> Result<RecordBatch, DataFusionError> {
    use datafusion::arrow::array::{ArrayRef, AsArray, GenericByteViewArray};
    use datafusion::arrow::datatypes::ByteViewType;
    /// A copy of `views` when its buffers hold more than twice the bytes it points to.
    fn compacted<T: ByteViewType + ?Sized>(views: &GenericByteViewArray<T>) -> Option<ArrayRef> {
        let held: usize = views.data_buffers().iter().map(|b| b.len()).sum();
        (held > 2 * views.total_buffer_bytes_used() + 64 * 1024)
            .then(|| Arc::new(views.gc()) as ArrayRef)
    }
    let columns: Vec<ArrayRef> = batch
        .columns()
        .iter()
        .map(|column| {
            let copy = match column.data_type() {
                DataType::Utf8View => compacted(column.as_string_view()),
                DataType::BinaryView => compacted(column.as_binary_view()),
                _ => None,
            };
            copy.unwrap_or_else(|| column.clone())
        })
        .collect();
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// Runs `df` to completion. When the environment variable `REFOPT_PROFILE_STAGE` names this
/// stage, its physical plan is printed on stderr with each operator's metrics (rows, compute
/// time, memory, spills): the tool for finding where a stage spends its time.
async fn collect_stage(
    ctx: &SessionContext,
    id: &str,
    df: DataFrame,
) -> Result<Vec<RecordBatch>, DataFusionError> {
    if std::env::var("REFOPT_PROFILE_STAGE").is_ok_and(|profiled| profiled == id) {
        let plan = df.create_physical_plan().await?;
        let batches = collect(plan.clone(), ctx.task_ctx()).await?;
        let profile = DisplayableExecutionPlan::with_metrics(plan.as_ref()).indent(true);
        eprintln!("stage {id}: physical plan with metrics\n{profile}");
        Ok(batches)
    } else {
        df.collect().await
    }
}

/// Registers a stage's output as an in-memory table named after the stage, its batches dealt
/// round robin into the session's target partitions so that later stages read it in parallel
/// (a one-partition table makes every aggregate and join probe over it single-threaded).
fn register_output(
    ctx: &SessionContext,
    id: &str,
    schema: SchemaRef,
    batches: Vec<RecordBatch>,
) -> Result<(), DataFusionError> {
    let table = MemTable::try_new(schema, deal_into_partitions(ctx, batches))?;
    ctx.deregister_table(id)?;
    ctx.register_table(id, Arc::new(table))?;
    Ok(())
}

/// `batches` dealt round robin into at most the session's target partitions (never zero).
fn deal_into_partitions(ctx: &SessionContext, batches: Vec<RecordBatch>) -> Vec<Vec<RecordBatch>> {
    let count = ctx
        .state()
        .config()
        .target_partitions()
        .min(batches.len())
        .max(1);
    let mut partitions = vec![Vec::new(); count];
    for (i, batch) in batches.into_iter().enumerate() {
        partitions[i % count].push(batch);
    }
    partitions
}

/// Errors worth re-running a stage for: I/O hiccups and memory pressure, not SQL or schema
/// mistakes. Object-store errors are not: the storage client already retried the failed
/// request up to the storage retry limit, and re-running the stage would multiply that limit.
pub fn is_transient(e: &DataFusionError) -> bool {
    if crate::error::caused_by_object_store(e) {
        return false;
    }
    match e.find_root() {
        DataFusionError::IoError(_) | DataFusionError::External(_) => true,
        // Memory is shared by concurrent stages: another attempt may find it free.
        DataFusionError::ResourcesExhausted(_) => true,
        DataFusionError::ParquetError(p) => {
            matches!(
                p.as_ref(),
                datafusion::parquet::errors::ParquetError::External(_)
            )
        }
        _ => false,
    }
}

/// Whether `e` says stored Parquet could not be decoded (as opposed to a failing store, a
/// query error or exhausted memory).
pub fn is_undecodable(e: &DataFusionError) -> bool {
    use datafusion::arrow::error::ArrowError;
    if crate::error::caused_by_object_store(e) {
        return false;
    }
    match e.find_root() {
        DataFusionError::ParquetError(_) => true,
        DataFusionError::ArrowError(a, _) => matches!(a.as_ref(), ArrowError::ParquetError(_)),
        _ => false,
    }
}

/// `base * 2^(attempt-1)`, plus up to 25% jitter.
pub(crate) fn backoff(base_ms: u64, attempt: u32) -> Duration {
    refopt_plan::backoff(Duration::from_millis(base_ms), attempt)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[tokio::test]
    async fn stage_outputs_are_dealt_into_the_sessions_partitions_and_keep_every_row() {
        use datafusion::arrow::array::{AsArray, Int64Array};
        use datafusion::arrow::datatypes::{Field, Int64Type, Schema};
        use datafusion::prelude::SessionConfig;
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        let batch = |from: i64| {
            let values = Int64Array::from_iter_values(from..from + 10);
            RecordBatch::try_new(schema.clone(), vec![Arc::new(values)]).unwrap()
        };
        let ctx = SessionContext::new_with_config(SessionConfig::new().with_target_partitions(3));
        let dealt = deal_into_partitions(&ctx, (0..7).map(|i| batch(i * 10)).collect());
        let sizes: Vec<usize> = dealt.iter().map(Vec::len).collect();
        assert_eq!(sizes, [3, 2, 2]);
        assert_eq!(deal_into_partitions(&ctx, vec![batch(0)]).len(), 1);
        assert_eq!(deal_into_partitions(&ctx, Vec::new()).len(), 1);

        register_output(
            &ctx,
            "out",
            schema.clone(),
            (0..7).map(|i| batch(i * 10)).collect(),
        )
        .unwrap();
        let df = ctx.sql("SELECT COUNT(*), SUM(x) FROM out").await.unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let counted = df.collect().await.unwrap();
        let value = |i: usize| counted[0].column(i).as_primitive::<Int64Type>().value(0);
        assert_eq!((value(0), value(1)), (70, (0..70).sum::<i64>()));
        let shown = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(true)
            .to_string();
        assert!(shown.contains("partitions=3"), "{shown}");
    }

    fn pipeline(stages: &str) -> Pipeline {
        let text = format!(
            "version: 1\nname: t\ndatasets:\n  - name: d\n    path: d\n    required_columns: [x]\nstages:\n{stages}"
        );
        Pipeline::parse(Path::new("t.yaml"), &text).unwrap()
    }

    #[tokio::test]
    async fn runs_the_diamond_and_registers_outputs() {
        let p = pipeline(
            "  - id: a\n    sql: SELECT 1 AS n\n\
             \x20 - id: b\n    sql: SELECT n + 1 AS n FROM a\n    depends_on: [a]\n\
             \x20 - id: c\n    sql: SELECT n + 2 AS n FROM a\n    depends_on: [a]\n\
             \x20 - id: gate\n    kind: gate\n    depends_on: [b, c]\n\
             \x20 - id: e\n    sql: SELECT b.n + c.n AS n FROM b, c\n    depends_on: [gate]\n",
        );
        let ctx = SessionContext::new();
        let run = execute(
            &ctx,
            &p,
            &ParamValues::List(vec![]),
            usize::MAX,
            Arc::new(Quiet),
            None,
        )
        .await;
        assert!(run.succeeded(), "{:?}", run.stages);
        let e = &run.outputs["e"][0];
        let n = e
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .unwrap();
        assert_eq!(n.value(0), 5);
        assert!(run.failures.is_empty());
        assert_eq!(
            run.stages.iter().map(|s| s.attempts).collect::<Vec<_>>(),
            [1, 1, 1, 1, 1]
        );
    }

    #[tokio::test]
    async fn a_failed_stage_skips_its_dependants_and_is_not_retried_for_sql_errors() {
        let p = pipeline(
            "  - id: a\n    sql: SELECT no_such_column FROM (SELECT 1 AS n)\n\
             \x20 - id: b\n    sql: SELECT 1\n    depends_on: [a]\n\
             \x20 - id: c\n    sql: SELECT 2 AS m\n",
        );
        let ctx = SessionContext::new();
        let run = execute(
            &ctx,
            &p,
            &ParamValues::List(vec![]),
            usize::MAX,
            Arc::new(Quiet),
            None,
        )
        .await;
        let status: Vec<_> = run
            .stages
            .iter()
            .map(|s| (s.id.as_str(), s.status))
            .collect();
        assert!(status.contains(&("a", StageStatus::Failed)));
        assert!(status.contains(&("b", StageStatus::Skipped)));
        assert!(status.contains(&("c", StageStatus::Succeeded)));
        assert_eq!(run.failures.len(), 1);
        assert_eq!(run.failures[0].action, ErrorAction::NotRetryable);
    }

    #[test]
    fn io_and_memory_errors_rerun_a_stage_storage_and_sql_errors_do_not() {
        let io = DataFusionError::IoError(std::io::Error::other("disk hiccup"));
        assert!(is_transient(&DataFusionError::Context(
            "scan".into(),
            Box::new(io)
        )));
        assert!(is_transient(&DataFusionError::ResourcesExhausted(
            "pool".into()
        )));
        // Already retried per request by the storage client.
        let storage = DataFusionError::ObjectStore(Box::new(object_store::Error::Generic {
            store: "S3",
            source: "connection reset".into(),
        }));
        assert!(!is_transient(&DataFusionError::Context(
            "scan".into(),
            Box::new(storage)
        )));
        let wrapped = DataFusionError::External(Box::new(object_store::Error::Generic {
            store: "S3",
            source: "503".into(),
        }));
        assert!(!is_transient(&wrapped));
        assert!(!is_transient(&DataFusionError::Plan("no column".into())));
    }

    #[test]
    fn spilled_string_views_carry_only_the_bytes_they_point_to() {
        use datafusion::arrow::array::{Array, AsArray, StringViewArray};
        use datafusion::arrow::datatypes::{Field, Schema};
        let long: Vec<String> = (0..10_000)
            .map(|n| format!("a long enough value {n:08}"))
            .collect();
        let all = StringViewArray::from_iter_values(long.iter());
        // Two rows that still point into the buffers of all 10,000.
        let slice = all.slice(10, 2);
        let schema = Arc::new(Schema::new(vec![Field::new(
            "s",
            DataType::Utf8View,
            false,
        )]));
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(slice)]).unwrap();
        let held = |b: &RecordBatch| -> usize {
            let views = b.column(0).as_string_view();
            views.data_buffers().iter().map(|b| b.len()).sum()
        };
        assert!(held(&batch) > 200_000);
        let compact = compact_views(batch).unwrap();
        assert!(held(&compact) < 1_000, "{}", held(&compact));
        assert_eq!(compact.column(0).as_string_view().value(1), long[11]);
        assert_eq!(compact.column(0).len(), 2);
        // A batch that owns its bytes is left as it is.
        let own = StringViewArray::from_iter_values(long.iter().take(3));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(own)]).unwrap();
        let same = compact_views(batch.clone()).unwrap();
        assert!(Arc::ptr_eq(batch.column(0), same.column(0)));
    }

    #[test]
    fn backoff_doubles_with_bounded_jitter() {
        for attempt in 1..=3u32 {
            let base = 100u64 << (attempt - 1);
            let d = backoff(100, attempt).as_millis() as u64;
            assert!(
                d >= base && d <= base + base / 4 + 1,
                "attempt {attempt}: {d}ms"
            );
        }
    }
}
