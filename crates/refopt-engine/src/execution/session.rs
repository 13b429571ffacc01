//! The DataFusion session factory: thread count, memory pool with spilling, and the options the
//! pipeline's SQL relies on.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::execution::SessionStateBuilder;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{FairSpillPool, TrackConsumersPool};
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::physical_optimizer::optimizer::PhysicalOptimizer;
use datafusion::prelude::{SessionConfig, SessionContext};

use super::scratch::Scratch;
use super::small_side_join::SmallSideHashJoin;
use crate::error::EngineError;

/// Knobs of a session.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Worker threads for query execution (default: all cores).
    pub threads: Option<usize>,
    /// Memory pool limit in bytes; operators spill to the scratch folder beyond it.
    pub memory_limit: Option<usize>,
    /// Where the run's scratch folder is made (`--scratch`; default: the system temp folder).
    /// Stage outputs are written there, not held in memory, whenever memory is limited or a
    /// folder is given.
    pub scratch: Option<PathBuf>,
    /// One memory pool and spill directory for every session made from these options (the
    /// concurrent windows of a backfill share `memory_limit`); see [`SessionOptions::shared`].
    pub shared_runtime: Option<Arc<RuntimeEnv>>,
    /// The scratch folder made by [`SessionOptions::shared`].
    pub shared_scratch: Option<Arc<Scratch>>,
}

impl SessionOptions {
    /// How many stages may run at once: all that are ready, unless memory is limited, in which
    /// case one at a time so each stage's operators get the whole pool (and spill within it)
    /// instead of starving each other.
    pub fn max_parallel_stages(&self) -> usize {
        if self.memory_limit.is_some() {
            1
        } else {
            usize::MAX
        }
    }

    /// Whether stage outputs go to a scratch folder rather than memory.
    pub fn spills_stage_outputs(&self) -> bool {
        self.memory_limit.is_some() || self.scratch.is_some()
    }

    /// These options with their runtime (memory pool, spill directory) and scratch folder
    /// made once, so that all sessions made from them draw on one `memory_limit`.
    pub fn shared(&self) -> Result<SessionOptions, EngineError> {
        let scratch = self.scratch_folder()?;
        Ok(SessionOptions {
            shared_runtime: Some(runtime(self, scratch.as_deref())?),
            shared_scratch: scratch,
            ..self.clone()
        })
    }

    /// The scratch folder of a session made from these options, if stage outputs spill.
    fn scratch_folder(&self) -> Result<Option<Arc<Scratch>>, EngineError> {
        if let Some(shared) = &self.shared_scratch {
            return Ok(Some(shared.clone()));
        }
        if !self.spills_stage_outputs() {
            return Ok(None);
        }
        Ok(Some(Arc::new(Scratch::create(self.scratch.as_deref())?)))
    }
}

/// The runtime of a session: the memory pool (with spilling into the scratch folder) when
/// memory is limited.
fn runtime(
    options: &SessionOptions,
    scratch: Option<&Scratch>,
) -> Result<Arc<RuntimeEnv>, EngineError> {
    if let Some(shared) = &options.shared_runtime {
        return Ok(shared.clone());
    }
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = options.memory_limit {
        // Fair shares for the operators that spill; when the pool runs out, the error names
        // the consumers holding the most.
        let pool = TrackConsumersPool::new(
            FairSpillPool::new(limit),
            NonZeroUsize::new(5).expect("non-zero"),
        );
        let spill_to = match scratch {
            Some(s) => DiskManagerMode::Directories(vec![s.path().to_path_buf()]),
            None => DiskManagerMode::OsTmpDirectory,
        };
        runtime = runtime
            .with_memory_pool(Arc::new(pool))
            .with_disk_manager_builder(DiskManagerBuilder::default().with_mode(spill_to));
    }
    Ok(runtime.build_arc()?)
}

/// Builds a session context.
pub fn new_session(options: &SessionOptions) -> Result<SessionContext, EngineError> {
    let threads = options
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let config = SessionConfig::new()
        .with_target_partitions(threads)
        .with_information_schema(true)
        .set_bool("datafusion.execution.parquet.pushdown_filters", true)
        .set_bool("datafusion.execution.parquet.reorder_filters", true);
    // Under a memory limit, plans that spill instead of failing: aggregates and window
    // functions are not hash-repartitioned (fewer RepartitionExecs, which can stall when they
    // spill in DataFusion 55, apache/datafusion#24883; scans still read file groups in parallel
    // and aggregates finish in one partition), and joins are sort-merge joins (their sorts
    // spill; their inputs are still hash-repartitioned, so the stall remains possible there).
    let config = if let Some(limit) = options.memory_limit {
        config
            .set_bool("datafusion.optimizer.repartition_aggregations", false)
            .set_bool("datafusion.optimizer.enable_round_robin_repartition", false)
            .set_bool("datafusion.optimizer.repartition_windows", false)
            // Sort-merge joins: their sorts spill, a hash join's build side cannot; except
            // where one side is small (see `SmallSideHashJoin`): up to 1/32 of the limit.
            .set_bool("datafusion.optimizer.prefer_hash_join", false)
            .set_usize(
                "datafusion.optimizer.hash_join_single_partition_threshold",
                small_side_bytes(limit),
            )
            // Each sort reserves this much up front to merge its spills; with DataFusion's
            // 10 MiB default, a stage with a few sorts over `--threads` partitions reserves a
            // small pool away before reading a row. 1/64 of the limit, at most the default.
            .set_usize(
                "datafusion.execution.sort_spill_reservation_bytes",
                sort_spill_reservation_bytes(limit),
            )
    } else {
        config
    };
    // Stage outputs find the scratch folder through the session (see `executor::run_sql`).
    let scratch = options.scratch_folder()?;
    let config = match &scratch {
        Some(s) => config.with_extension(s.clone()),
        None => config,
    };
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime(options, scratch.as_deref())?)
        .with_default_features();
    if options.memory_limit.is_some() {
        let mut rules = PhysicalOptimizer::new().rules;
        let at = rules
            .iter()
            .position(|rule| rule.name() == SmallSideHashJoin::BEFORE)
            .unwrap_or(0);
        rules.insert(at, Arc::new(SmallSideHashJoin));
        state = state.with_physical_optimizer_rules(rules);
    }
    let ctx = SessionContext::new_with_state(state.build());
    super::functions::register(&ctx);
    Ok(ctx)
}

/// What each sort reserves for merging its spills under a memory limit: 1/64 of the limit,
/// between 256 KiB and DataFusion's default of 10 MiB.
fn sort_spill_reservation_bytes(memory_limit: usize) -> usize {
    (memory_limit / 64).clamp(256 * 1024, 10 * 1024 * 1024)
}

/// The largest side (in bytes, by statistics) a join under a memory limit builds a hash table
/// from: 1/32 of the limit, at least DataFusion's default of 1 MiB.
fn small_side_bytes(memory_limit: usize) -> usize {
    (memory_limit / 32).max(1024 * 1024)
}
