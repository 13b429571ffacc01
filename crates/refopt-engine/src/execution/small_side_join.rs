//! Hash joins for a small side under a memory limit.
//!
//! Under `--memory-limit` the planner makes every equi-join a sort-merge join, because a
//! hash join's build side cannot spill. But a sort-merge join sorts *both* sides in every
//! partition, and when a query holds many of them (a union of joins) each sorter's fair share
//! of the pool can be smaller than one batch, so it fails before it can spill. When one side
//! is known to be small (statistics of an in-memory stage output or a Parquet footer, within
//! `hash_join_single_partition_threshold` bytes, or rows where bytes are unknown), building a hash
//! table from it once costs less memory than sorting either side: this rule turns such a
//! sort-merge join into a `CollectLeft` hash join with the small side as the build side.
//! It runs before DataFusion's join selection, which keeps the smaller side on the left.

use std::sync::Arc;

use datafusion::common::Result;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::physical_optimizer::PhysicalOptimizerRule;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode, SortMergeJoinExec};
use datafusion::physical_plan::statistics::{StatisticsArgs, StatisticsContext};

/// Replaces sort-merge joins that have a small side with `CollectLeft` hash joins.
#[derive(Debug, Default)]
pub struct SmallSideHashJoin;

impl SmallSideHashJoin {
    /// The name DataFusion's join selection rule is registered under; this rule goes before it.
    pub const BEFORE: &'static str = "join_selection";
}

impl PhysicalOptimizerRule for SmallSideHashJoin {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        plan.transform_up(|node| {
            let Some(join) = node.downcast_ref::<SortMergeJoinExec>() else {
                return Ok(Transformed::no(node));
            };
            let small_left = is_small(join.left(), config)?;
            let small_right = is_small(join.right(), config)?;
            if !small_left && !small_right {
                return Ok(Transformed::no(node));
            }
            let hash_join = HashJoinExec::try_new(
                Arc::clone(join.left()),
                Arc::clone(join.right()),
                join.on().to_vec(),
                join.filter().clone(),
                &join.join_type(),
                None,
                PartitionMode::CollectLeft,
                join.null_equality(),
                false,
            )?;
            if small_left {
                return Ok(Transformed::yes(Arc::new(hash_join)));
            }
            if !join.join_type().supports_swap() {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(
                hash_join.swap_inputs(PartitionMode::CollectLeft)?,
            ))
        })
        .data()
    }

    fn name(&self) -> &str {
        "small_side_hash_join"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether statistics bound a plan's output within DataFusion's single-partition hash join
/// thresholds, as DataFusion's join selection reads them: bytes where known, else rows;
/// unknown size is never small.
fn is_small(plan: &Arc<dyn ExecutionPlan>, config: &ConfigOptions) -> Result<bool> {
    let stats = StatisticsContext::new().compute(plan.as_ref(), &StatisticsArgs::new())?;
    let optimizer = &config.optimizer;
    Ok(
        match (
            stats.total_byte_size.get_value(),
            stats.num_rows.get_value(),
        ) {
            (Some(bytes), _) => *bytes < optimizer.hash_join_single_partition_threshold,
            (None, Some(rows)) => *rows < optimizer.hash_join_single_partition_threshold_rows,
            (None, None) => false,
        },
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::datasource::MemTable;
    use datafusion::physical_plan::displayable;

    use crate::execution::session::{SessionOptions, new_session};

    fn table(rows: i64) -> Arc<MemTable> {
        let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(Int64Array::from_iter_values(0..rows))],
        )
        .unwrap();
        Arc::new(MemTable::try_new(schema, vec![vec![batch]]).unwrap())
    }

    async fn plan_of(memory_limit: Option<usize>, sql: &str) -> (String, usize) {
        let ctx = new_session(&SessionOptions {
            threads: Some(2),
            memory_limit,
            ..Default::default()
        })
        .unwrap();
        ctx.register_table("tiny", table(10)).unwrap();
        ctx.register_table("big", table(1_000_000)).unwrap();
        ctx.register_table("big2", table(1_000_000)).unwrap();
        let df = ctx.sql(sql).await.unwrap();
        let plan = df.clone().create_physical_plan().await.unwrap();
        let rows = df.count().await.unwrap();
        (displayable(plan.as_ref()).indent(true).to_string(), rows)
    }

    #[tokio::test]
    async fn a_small_side_is_hashed_and_two_large_sides_are_merged_under_a_memory_limit() {
        let limit = Some(64 * 1024 * 1024);
        for sql in [
            "SELECT b.k FROM tiny t JOIN big b ON t.k = b.k",
            "SELECT b.k FROM big b JOIN tiny t ON t.k = b.k",
        ] {
            let (plan, rows) = plan_of(limit, sql).await;
            assert!(
                plan.contains("HashJoinExec: mode=CollectLeft"),
                "{sql}:\n{plan}"
            );
            assert!(!plan.contains("SortMergeJoin"), "{sql}:\n{plan}");
            assert_eq!(rows, 10, "{sql}");
        }
        let (plan, rows) = plan_of(limit, "SELECT a.k FROM big a JOIN big2 b ON a.k = b.k").await;
        assert!(plan.contains("SortMergeJoin"), "{plan}");
        assert_eq!(rows, 1_000_000);
    }
}
