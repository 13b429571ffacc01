//! Deterministic synthetic data for refopt: every table of the input data contract v1, written
//! as day-partitioned Parquet to any object store, with planted fraud and its truth.
//!
//! The same seed and parameters always produce the same rows. Fraud patterns and their
//! legitimate look-alikes are described in `docs/data-generator.md`; the labels go to
//! `<root>/_truth/`, a prefix the pipeline never reads.

mod generator;
mod sink;
pub mod tables;
mod world;

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::NaiveDate;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

pub use generator::{EXPERIMENTS, GenerationCounts, PlantedExperiment, pattern};
pub use sink::TableStats;

use generator::{Generator, poisson};
use sink::ParquetUploader;
use tables::Partner;

/// Errors while generating data.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    #[error("invalid generator settings: {0}")]
    Settings(String),
    #[error("could not encode Parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("could not build Arrow batch: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("could not write {path}: {source}")]
    Store {
        path: String,
        source: object_store::Error,
    },
    #[error("background task failed: {0}")]
    Task(String),
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenerateConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// Organic invites over the whole period (fraud adds a little on top).
    pub invites: u64,
    /// Number of days of events.
    pub days: u32,
    /// First day after the data (exclusive end): events cover `[end - days, end)`.
    pub end: NaiveDate,
}

/// What was written.
#[derive(Debug, Clone)]
pub struct GenerateReport {
    pub tables: BTreeMap<String, TableStats>,
    pub counts: GenerationCounts,
    pub start: NaiveDate,
    pub end: NaiveDate,
}

/// Progress callback: `(days_done, days_total, invites_so_far)`.
pub type Progress<'a> = &'a (dyn Fn(u32, u32, u64) + Sync);

const DAY_MICROS: i64 = 86_400_000_000;

/// Generates the data set into `root` of `store`.
pub async fn generate(
    store: Arc<dyn ObjectStore>,
    root: &Path,
    config: &GenerateConfig,
    progress: Progress<'_>,
) -> Result<GenerateReport, GenerateError> {
    if config.days == 0 || config.days > 3_660 {
        return Err(GenerateError::Settings(format!(
            "days must be between 1 and 3660, got {}",
            config.days
        )));
    }
    if config.invites < 100 {
        return Err(GenerateError::Settings(format!(
            "need at least 100 invites, got {}",
            config.invites
        )));
    }
    let start_date = config.end - chrono::Days::new(u64::from(config.days));
    let start = start_date
        .and_hms_opt(0, 0, 0)
        .expect("midnight")
        .and_utc()
        .timestamp_micros();
    let end = start + i64::from(config.days) * DAY_MICROS;

    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    let world = world::World::new(config.seed, config.invites, config.days, start, &mut rng);
    let mut out = ParquetUploader::new(Arc::clone(&store), root.clone());
    let mut generator = Generator::new(&world, config.seed, start, end);
    generator.write_static(&mut out).await?;

    let per_day = config.invites as f64 / f64::from(config.days);
    for d in 0..config.days {
        let day_start = start + i64::from(d) * DAY_MICROS;
        let weekday = ((day_start / DAY_MICROS) + 4).rem_euclid(7); // 0 = Sunday
        let seasonal = if weekday == 0 || weekday == 6 {
            0.65
        } else {
            1.14
        };
        let growth = 0.9 + 0.2 * f64::from(d) / f64::from(config.days);
        let today = poisson(&mut rng, per_day * seasonal * growth);
        generator.day(i64::from(d), &mut out, today).await?;
        generator
            .flush_before((day_start / DAY_MICROS) as i32 + 1, &mut out)
            .await?;
        progress(d + 1, config.days, generator.counts.invites);
    }
    generator.flush_before(i32::MAX, &mut out).await?;

    // Truth: referral labels and partner labels, outside the pipeline's datasets.
    let labels = [
        (
            "fraud_referrals",
            "pattern",
            std::mem::take(&mut generator.truth),
        ),
        (
            "lookalike_referrals",
            "kind",
            std::mem::take(&mut generator.lookalikes),
        ),
    ];
    for (folder, column, rows) in labels {
        for (i, chunk) in rows.chunks(sink::MAX_ROWS_PER_FILE).enumerate() {
            let batch = tables::TruthLabel::to_batch(chunk, column)?;
            out.upload(
                "_truth",
                &format!("_truth/{folder}/part-{i:05}.parquet"),
                batch,
            )
            .await?;
        }
    }
    let bad_partners: Vec<Partner> = world
        .partners
        .iter()
        .filter(|p| p.compliance_problem || p.payout_fraud)
        .map(|p| Partner {
            partner_id: p.id.clone(),
            name: if p.payout_fraud {
                pattern::PAYOUT_CONCENTRATION.to_string()
            } else {
                pattern::COMPLIANCE_FAILURE.to_string()
            },
            tier: p.tier,
            region: p.region,
            joined_at: p.joined_at,
            status: p.status,
        })
        .collect();
    let batch = <Partner as tables::ContractRow>::to_batch(&bad_partners)?;
    out.upload("_truth", "_truth/fraud_partners/part-00000.parquet", batch)
        .await?;
    let counts = generator.counts.clone();
    let manifest = manifest_json(config, start_date, &counts);
    let tables = out.finish().await?;
    let path = Path::from(format!("{root}/_truth/manifest.json").trim_start_matches('/'));
    store
        .put(&path, manifest.into_bytes().into())
        .await
        .map_err(|source| GenerateError::Store {
            path: path.to_string(),
            source,
        })?;
    Ok(GenerateReport {
        tables,
        counts,
        start: start_date,
        end: config.end,
    })
}

fn manifest_json(config: &GenerateConfig, start: NaiveDate, counts: &GenerationCounts) -> String {
    let experiments: Vec<serde_json::Value> = EXPERIMENTS
        .iter()
        .map(|e| {
            serde_json::json!({
                "id": e.id,
                "variants": e.variants.iter().map(|(v, share)| serde_json::json!({"variant": v, "allocation": share})).collect::<Vec<_>>(),
                "invite_to_referral_multiplier_for_second_variant": e.effect,
                "contamination": e.contamination,
            })
        })
        .collect();
    let manifest = serde_json::json!({
        "generator": "refopt-datagen",
        "seed": config.seed,
        "invites_requested": config.invites,
        "days": config.days,
        "start": start.to_string(),
        "end_exclusive": config.end.to_string(),
        "invites_written": counts.invites,
        "referrals_written": counts.referrals,
        "fraud_referrals_by_pattern": counts.fraud_by_pattern,
        "lookalike_referrals_by_kind": counts.lookalikes_by_kind,
        "lookalike_labels": "_truth/lookalike_referrals (referral_id, kind, created_at): honest referrals built to resemble fraud",
        "experiments": experiments,
        "fraud_partner_labels": "_truth/fraud_partners (name column holds the pattern)",
    });
    serde_json::to_string_pretty(&manifest).expect("manifest serializes")
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::TryStreamExt;
    use object_store::memory::InMemory;

    async fn run(seed: u64) -> (Arc<InMemory>, GenerateReport) {
        let store = Arc::new(InMemory::new());
        let config = GenerateConfig {
            seed,
            invites: 20_000,
            days: 40,
            end: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        };
        let report = generate(store.clone(), &Path::from("root"), &config, &|_, _, _| {})
            .await
            .unwrap();
        (store, report)
    }

    async fn contents(store: &InMemory) -> Vec<(String, bytes::Bytes)> {
        let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
        let mut out = Vec::new();
        for m in metas {
            let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap();
            out.push((m.location.to_string(), bytes));
        }
        out.sort();
        out
    }

    #[tokio::test]
    async fn same_seed_same_bytes_other_seed_other_data() {
        let (a, report) = run(1).await;
        let (b, _) = run(1).await;
        let (c, _) = run(2).await;
        let (a, b, c) = (contents(&a).await, contents(&b).await, contents(&c).await);
        assert_eq!(a, b);
        assert_ne!(a, c);
        // Every contract table is written, day-partitioned except partners.
        for table in tables::Table::ALL {
            let prefix = if table.is_partitioned() {
                format!("root/{}/dt=", table.name())
            } else {
                format!("root/{}/part-", table.name())
            };
            assert!(
                a.iter().any(|(k, _)| k.starts_with(&prefix)),
                "no files for {prefix}"
            );
            assert!(
                report.tables[table.name()].rows > 0,
                "{} is empty",
                table.name()
            );
        }
        assert!(a.iter().any(|(k, _)| k == "root/_truth/manifest.json"));
    }

    #[tokio::test]
    async fn every_fraud_pattern_is_planted() {
        let (_, report) = run(3).await;
        for p in [
            pattern::SELF_REFERRAL,
            pattern::DEVICE_RING,
            pattern::VELOCITY_BURST,
            pattern::DISPOSABLE_EMAIL,
            pattern::PAYOUT_CONCENTRATION,
            pattern::TIMING_ANOMALY,
        ] {
            assert!(
                report.counts.fraud_by_pattern.get(p).copied().unwrap_or(0) > 0,
                "{p} not planted"
            );
        }
        let fraud: u64 = report.counts.fraud_by_pattern.values().sum();
        let share = fraud as f64 / report.counts.referrals as f64;
        assert!((0.005..0.15).contains(&share), "fraud share {share}");
    }

    #[tokio::test]
    async fn rejects_bad_settings() {
        let store = Arc::new(InMemory::new());
        let config = GenerateConfig {
            seed: 1,
            invites: 10,
            days: 0,
            end: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        };
        let e = generate(store, &Path::from("r"), &config, &|_, _, _| {})
            .await
            .unwrap_err();
        assert!(e.to_string().contains("days must be between"), "{e}");
    }
}
