//! The window's referrals table as the fraud review reads it: through DataFusion queries whose
//! results grow with what the rules select, never with the window. Selected keys are joined to
//! the referrals that carry them, the channel counts are an aggregate, and the referrals linked
//! to flagged ones are found by expanding shared devices and cards a step at a time.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, UInt32Array};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;
use rustc_hash::FxHashSet;

use super::KEY_SEPARATOR;
use crate::metrics::data_tests::ident;

/// What the review keeps of a referral the rules selected: per column, the values of its rows
/// (one row, unless its id repeats; null values are left out).
pub(super) type Facts = BTreeMap<String, BTreeSet<String>>;

/// The columns that link referrals into clusters (IPs do not: offices share them).
pub(super) const LINK_COLUMNS: [&str; 2] = ["device_id", "payment_fingerprint"];

/// The column a referral's channel is read from (a null channel counts as "").
pub(super) const CHANNEL: &str = "channel";

/// The referrals table of a review.
pub(super) struct ReferralsTable {
    name: String,
    columns: BTreeSet<String>,
}

/// A query's result batches.
async fn collect(ctx: &SessionContext, sql: &str) -> Result<Vec<RecordBatch>, DataFusionError> {
    ctx.sql(sql).await?.collect().await
}

/// A column as text, as the rules' keys and the suppressions compare it.
fn as_text(alias: &str, column: &str) -> String {
    format!("CAST({alias}.{} AS VARCHAR)", ident(column))
}

/// A query result's column as strings.
fn strings(batch: &RecordBatch, n: usize) -> Result<ArrayRef, DataFusionError> {
    Ok(cast(batch.column(n), &DataType::Utf8)?)
}

impl ReferralsTable {
    pub(super) async fn open(ctx: &SessionContext, name: &str) -> Result<Self, DataFusionError> {
        let schema = ctx.table(name).await?.schema().as_arrow().clone();
        Ok(Self {
            name: name.to_string(),
            columns: schema.fields().iter().map(|f| f.name().clone()).collect(),
        })
    }

    pub(super) fn has(&self, column: &str) -> bool {
        self.columns.contains(column)
    }

    /// A column that must be there, or the error a missing one gives.
    pub(super) fn require(&self, column: &str) -> Result<(), DataFusionError> {
        if self.has(column) {
            Ok(())
        } else {
            Err(DataFusionError::Plan(format!(
                "column `{column}` not found in `{}`",
                self.name
            )))
        }
    }

    /// The referrals whose `key` columns equal one of the selected keys (parts joined by
    /// [`KEY_SEPARATOR`]), for every selection at once: per selection (by the
    /// tag it comes with), the referral ids found; and what `facts` columns say of each of them.
    pub(super) async fn with_keys(
        &self,
        ctx: &SessionContext,
        key: &[String],
        selections: &[(usize, &FxHashSet<String>)],
        facts: &[String],
        found: &mut BTreeMap<usize, BTreeSet<String>>,
        known: &mut BTreeMap<String, Facts>,
    ) -> Result<(), DataFusionError> {
        // The selected keys as a small table: the selection's index and the key's parts.
        let mut fields = vec![Field::new("selection", DataType::UInt32, false)];
        fields.extend((0..key.len()).map(|n| Field::new(format!("k{n}"), DataType::Utf8, false)));
        let mut tags = Vec::new();
        let mut parts: Vec<Vec<&str>> = vec![Vec::new(); key.len()];
        for (selection, keys) in selections {
            for k in keys.iter() {
                let split: Vec<&str> = k.split(KEY_SEPARATOR).collect();
                if split.len() != key.len() {
                    continue;
                }
                tags.push(*selection as u32);
                for (column, part) in parts.iter_mut().zip(split) {
                    column.push(part);
                }
            }
        }
        if tags.is_empty() {
            return Ok(());
        }
        let mut columns: Vec<ArrayRef> = vec![Arc::new(UInt32Array::from(tags))];
        columns.extend(
            parts
                .into_iter()
                .map(|p| Arc::new(StringArray::from(p)) as ArrayRef),
        );
        let keys = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?;
        let keys_table = "__refopt_selected_keys";
        ctx.deregister_table(keys_table)?;
        ctx.register_table(
            keys_table,
            Arc::new(MemTable::try_new(keys.schema(), vec![vec![keys]])?),
        )?;
        let on = key
            .iter()
            .enumerate()
            .map(|(n, column)| format!("{} = k.k{n}", as_text("r", column)))
            .collect::<Vec<_>>()
            .join(" AND ");
        let sql = format!(
            "SELECT k.selection, {} AS referral_id{} FROM {} r JOIN {keys_table} k ON {on}",
            as_text("r", "referral_id"),
            fact_columns(facts),
            ident(&self.name),
        );
        let batches = collect(ctx, &sql).await;
        ctx.deregister_table(keys_table)?;
        for batch in batches? {
            let selection = batch
                .column(0)
                .as_primitive::<datafusion::arrow::datatypes::UInt32Type>();
            let ids = strings(&batch, 1)?;
            let ids = ids.as_string::<i32>();
            let values = (0..facts.len())
                .map(|n| strings(&batch, 2 + n))
                .collect::<Result<Vec<_>, _>>()?;
            for row in 0..batch.num_rows() {
                if ids.is_null(row) {
                    continue;
                }
                let id = ids.value(row);
                found
                    .entry(selection.value(row) as usize)
                    .or_default()
                    .insert(id.to_string());
                let facts_of = known.entry(id.to_string()).or_default();
                for (column, values) in facts.iter().zip(&values) {
                    let values = values.as_string::<i32>();
                    if !values.is_null(row) {
                        facts_of
                            .entry(column.clone())
                            .or_default()
                            .insert(values.value(row).to_string());
                    }
                }
            }
        }
        Ok(())
    }

    /// The rows of the table, and per channel its distinct referral ids (rows without an id are
    /// not counted there; an id whose rows disagree counts under the least of their channels).
    pub(super) async fn channel_counts(
        &self,
        ctx: &SessionContext,
    ) -> Result<(u64, BTreeMap<String, u64>), DataFusionError> {
        let channel = if self.has(CHANNEL) {
            format!("COALESCE({}, '')", as_text("r", CHANNEL))
        } else {
            "''".to_string()
        };
        let sql = format!(
            "SELECT channel, CAST(SUM(CASE WHEN referral_id IS NULL THEN 0 ELSE 1 END) AS BIGINT), \
                    CAST(SUM(n) AS BIGINT) \
             FROM (SELECT {} AS referral_id, MIN({channel}) AS channel, COUNT(*) AS n \
                   FROM {} r GROUP BY 1) ids \
             GROUP BY channel",
            as_text("r", "referral_id"),
            ident(&self.name),
        );
        let mut rows = 0u64;
        let mut by_channel = BTreeMap::new();
        for batch in ctx.sql(&sql).await?.collect().await? {
            let channels = strings(&batch, 0)?;
            let channels = channels.as_string::<i32>();
            let ids = batch
                .column(1)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            let n = batch
                .column(2)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            for row in 0..batch.num_rows() {
                rows += n.value(row) as u64;
                if ids.value(row) > 0 {
                    *by_channel
                        .entry(channels.value(row).to_string())
                        .or_default() += ids.value(row) as u64;
                }
            }
        }
        Ok((rows, by_channel))
    }

    /// Every referral linked to the `start` link values (device ids, payment fingerprints, in
    /// [`LINK_COLUMNS`] order) through shared link values, transitively: rows of (referral id,
    /// its link values). Each step queries the table for the link values found in the last one;
    /// memory grows with the linked referrals, not the window.
    pub(super) async fn linked(
        &self,
        ctx: &SessionContext,
        start: [BTreeSet<String>; 2],
    ) -> Result<BTreeSet<LinkRow>, DataFusionError> {
        for column in LINK_COLUMNS {
            self.require(column)?;
        }
        let mut known = start.clone();
        let mut frontier = start;
        let mut rows = BTreeSet::new();
        let frontier_tables = ["__refopt_linked_devices", "__refopt_linked_cards"];
        while frontier.iter().any(|f| !f.is_empty()) {
            if refopt_spec::stop::requested() {
                return Err(DataFusionError::Execution(
                    "stopped: the run was interrupted".into(),
                ));
            }
            let mut branches = Vec::new();
            for ((values, table), column) in frontier.iter().zip(frontier_tables).zip(LINK_COLUMNS)
            {
                let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Utf8, false)]));
                let batch = RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(StringArray::from_iter_values(values.iter()))],
                )?;
                ctx.deregister_table(table)?;
                ctx.register_table(
                    table,
                    Arc::new(MemTable::try_new(schema, vec![vec![batch]])?),
                )?;
                if !values.is_empty() {
                    branches.push(format!(
                        "SELECT {}, {}, {} FROM {} r WHERE {} IN (SELECT v FROM {table})",
                        as_text("r", "referral_id"),
                        as_text("r", LINK_COLUMNS[0]),
                        as_text("r", LINK_COLUMNS[1]),
                        ident(&self.name),
                        as_text("r", column),
                    ));
                }
            }
            let batches = ctx
                .sql(&branches.join(" UNION ALL "))
                .await?
                .collect()
                .await;
            for table in frontier_tables {
                ctx.deregister_table(table)?;
            }
            let mut next: [BTreeSet<String>; 2] = Default::default();
            for batch in batches? {
                let columns = (0..3)
                    .map(|n| strings(&batch, n))
                    .collect::<Result<Vec<_>, _>>()?;
                let [ids, devices, cards] = [0, 1, 2].map(|n| columns[n].as_string::<i32>());
                let value = |a: &StringArray, row: usize| {
                    (!a.is_null(row)).then(|| a.value(row).to_string())
                };
                for row in 0..batch.num_rows() {
                    let Some(id) = value(ids, row) else { continue };
                    let links = [value(devices, row), value(cards, row)];
                    for (n, link) in links.iter().enumerate() {
                        if let Some(link) = link
                            && known[n].insert(link.clone())
                        {
                            next[n].insert(link.clone());
                        }
                    }
                    rows.insert(LinkRow { id, links });
                }
            }
            frontier = next;
        }
        Ok(rows)
    }
}

/// A referral row and its link values ([`LINK_COLUMNS`] order).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct LinkRow {
    pub id: String,
    pub links: [Option<String>; 2],
}

/// `, <column as text> AS f<n>` for each fact column (a channel's null reads as "").
fn fact_columns(facts: &[String]) -> String {
    facts
        .iter()
        .enumerate()
        .map(|(n, column)| {
            if column == CHANNEL {
                format!(", COALESCE({}, '') AS f{n}", as_text("r", column))
            } else {
                format!(", {} AS f{n}", as_text("r", column))
            }
        })
        .collect()
}
