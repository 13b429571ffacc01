//! The DataFusion session factory: thread count, memory pool with spilling, and the options the
//! pipeline's SQL relies on.

use std::sync::Arc;

use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::prelude::{SessionConfig, SessionContext};

use crate::error::EngineError;

/// Knobs of a session.
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Worker threads for query execution (default: all cores).
    pub threads: Option<usize>,
    /// Memory pool limit in bytes; operators spill to a temp dir beyond it.
    pub memory_limit: Option<usize>,
    /// One memory pool and spill directory for every session made from these options (the
    /// concurrent windows of a backfill share `memory_limit`); see [`SessionOptions::shared`].
    pub shared_runtime: Option<Arc<RuntimeEnv>>,
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

    /// These options with their runtime (memory pool, spill directory) built once, so that
    /// all sessions made from them draw on one `memory_limit`.
    pub fn shared(&self) -> Result<SessionOptions, EngineError> {
        Ok(SessionOptions {
            shared_runtime: Some(runtime(self)?),
            ..self.clone()
        })
    }
}

/// The runtime of a session: the memory pool (with spilling) when memory is limited.
fn runtime(options: &SessionOptions) -> Result<Arc<RuntimeEnv>, EngineError> {
    if let Some(shared) = &options.shared_runtime {
        return Ok(shared.clone());
    }
    let mut runtime = RuntimeEnvBuilder::new();
    if let Some(limit) = options.memory_limit {
        runtime = runtime
            .with_memory_pool(Arc::new(FairSpillPool::new(limit)))
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::OsTmpDirectory),
            );
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
    let config = if options.memory_limit.is_some() {
        config
            .set_bool("datafusion.optimizer.repartition_aggregations", false)
            .set_bool("datafusion.optimizer.enable_round_robin_repartition", false)
            .set_bool("datafusion.optimizer.repartition_windows", false)
            // Sort-merge joins: their sorts spill, a hash join's build side cannot.
            .set_bool("datafusion.optimizer.prefer_hash_join", false)
    } else {
        config
    };
    Ok(SessionContext::new_with_config_rt(
        config,
        runtime(options)?,
    ))
}
