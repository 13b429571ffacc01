//! Streaming Parquet output: rows are buffered per (table, day) and written as bounded part
//! files, so memory stays flat whatever the scale.
//!
//! Rows may land in a day later than the one being generated (a conversion weeks after its
//! referral), so each table keeps one buffer per open day. A buffer is written when it fills up
//! ([`MAX_ROWS_PER_FILE`]) and when the generator moves past its day for good.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate};
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use tokio::task::JoinSet;

use crate::GenerateError;
use crate::tables::{ContractRow, Micros};

/// Rows per part file; bounds the memory of one open buffer.
pub const MAX_ROWS_PER_FILE: usize = 250_000;
/// Encodes/uploads allowed in flight at once.
const MAX_IN_FLIGHT: usize = 4;

const MICROS_PER_DAY: i64 = 86_400_000_000;

/// Day number (days since the Unix epoch) of a timestamp.
pub fn day_of(micros: Micros) -> i32 {
    micros.div_euclid(MICROS_PER_DAY) as i32
}

/// `YYYY-MM-DD` of a day number.
pub fn day_string(day: i32) -> String {
    let date: NaiveDate = DateTime::from_timestamp(i64::from(day) * 86_400, 0)
        .expect("day in range")
        .date_naive();
    date.format("%Y-%m-%d").to_string()
}

/// Rows and bytes written for one table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableStats {
    pub rows: u64,
    pub files: u64,
    pub bytes: u64,
}

/// Encodes record batches to Parquet and uploads them, a few at a time in the background.
pub struct ParquetUploader {
    store: Arc<dyn ObjectStore>,
    root: Path,
    in_flight: JoinSet<Result<(String, u64), GenerateError>>,
    stats: BTreeMap<String, TableStats>,
}

impl ParquetUploader {
    /// Writes under `root` in `store`.
    pub fn new(store: Arc<dyn ObjectStore>, root: Path) -> Self {
        Self {
            store,
            root,
            in_flight: JoinSet::new(),
            stats: BTreeMap::new(),
        }
    }

    /// Queues one Parquet object at `relative` (under the root); waits while too many are in flight.
    pub async fn upload(
        &mut self,
        stats_key: &str,
        relative: &str,
        batch: RecordBatch,
    ) -> Result<(), GenerateError> {
        while self.in_flight.len() >= MAX_IN_FLIGHT {
            self.join_one().await?;
        }
        let rows = batch.num_rows() as u64;
        let store = Arc::clone(&self.store);
        let path = Path::from(format!("{}/{}", self.root, relative).trim_start_matches('/'));
        let entry = self.stats.entry(stats_key.to_string()).or_default();
        entry.rows += rows;
        entry.files += 1;
        let key = stats_key.to_string();
        self.in_flight.spawn(async move {
            let encoded = tokio::task::spawn_blocking(move || encode(&batch))
                .await
                .map_err(|e| GenerateError::Task(e.to_string()))??;
            let len = encoded.len() as u64;
            store
                .put(&path, PutPayload::from(encoded))
                .await
                .map_err(|source| GenerateError::Store {
                    path: path.to_string(),
                    source,
                })?;
            Ok((key, len))
        });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<(), GenerateError> {
        if let Some(done) = self.in_flight.join_next().await {
            let (key, bytes) = done.map_err(|e| GenerateError::Task(e.to_string()))??;
            self.stats.entry(key).or_default().bytes += bytes;
        }
        Ok(())
    }

    /// Waits for every queued upload and returns per-table statistics.
    pub async fn finish(mut self) -> Result<BTreeMap<String, TableStats>, GenerateError> {
        while !self.in_flight.is_empty() {
            self.join_one().await?;
        }
        Ok(self.stats)
    }
}

fn encode(batch: &RecordBatch) -> Result<Bytes, GenerateError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(128 * 1024))
        .build();
    let mut out = Vec::with_capacity(batch.get_array_memory_size() / 3);
    let mut writer = ArrowWriter::try_new(&mut out, batch.schema(), Some(props))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(Bytes::from(out))
}

/// Per-day row buffers of one table.
pub struct DayBuffers<T: ContractRow> {
    open: BTreeMap<i32, (Vec<T>, u32)>,
}

impl<T: ContractRow> Default for DayBuffers<T> {
    fn default() -> Self {
        Self {
            open: BTreeMap::new(),
        }
    }
}

impl<T: ContractRow> DayBuffers<T> {
    /// Adds a row to its event day's buffer; writes the buffer if it is full.
    pub async fn push(&mut self, row: T, out: &mut ParquetUploader) -> Result<(), GenerateError> {
        let day = if T::TABLE.is_partitioned() {
            day_of(row.event_micros())
        } else {
            0
        };
        let (rows, _) = self.open.entry(day).or_default();
        rows.push(row);
        if rows.len() >= MAX_ROWS_PER_FILE {
            self.write_day(day, out).await?;
        }
        Ok(())
    }

    /// Writes every buffered day strictly before `day`.
    pub async fn flush_before(
        &mut self,
        day: i32,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        let done: Vec<i32> = self.open.range(..day).map(|(d, _)| *d).collect();
        for d in done {
            self.write_day(d, out).await?;
            self.open.remove(&d);
        }
        Ok(())
    }

    /// Writes everything still buffered.
    pub async fn flush_all(&mut self, out: &mut ParquetUploader) -> Result<(), GenerateError> {
        self.flush_before(i32::MAX, out).await
    }

    async fn write_day(
        &mut self,
        day: i32,
        out: &mut ParquetUploader,
    ) -> Result<(), GenerateError> {
        let Some((rows, part)) = self.open.get_mut(&day) else {
            return Ok(());
        };
        if rows.is_empty() {
            return Ok(());
        }
        let batch = T::to_batch(rows)?;
        rows.clear();
        let table = T::TABLE.name();
        let relative = if T::TABLE.is_partitioned() {
            format!("{table}/dt={}/part-{part:05}.parquet", day_string(day))
        } else {
            format!("{table}/part-{part:05}.parquet")
        };
        *part += 1;
        out.upload(table, &relative, batch).await
    }
}
