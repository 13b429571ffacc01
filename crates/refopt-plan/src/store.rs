//! The plan store: plans are immutable objects under `<plans-root>/<pipeline>/`, written in one
//! put with create-only semantics, so a plan is never overwritten nor seen half-written.

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use rand::Rng;

use crate::name::{plan_file_name, plan_stem, plan_version};
use crate::plan::Plan;

/// Errors of the plan store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanStoreError {
    #[error("plan store {location}: {source}")]
    Store {
        location: String,
        source: object_store::Error,
    },
    #[error("plan {location} is not valid plan JSON: {source}")]
    Decode {
        location: String,
        source: crate::read::PlanReadError,
    },
    #[error("could not find a free plan name under {0} after 100 attempts")]
    NoFreeName(String),
    #[error(
        "refusing to write {location}: the plan would not read back ({problem}); this is a refopt bug, please report it with the run's inputs"
    )]
    Unreadable { location: String, problem: String },
    #[error("{0} holds plan version {max}, the highest refopt writes: move old plans elsewhere to go on", max = crate::name::MAX_PLAN_VERSION)]
    VersionsExhausted(String),
}

/// The folder beside a series' plans holding its flagged-referrals files.
pub const FLAGGED_REFERRALS_FOLDER: &str = "flagged-referrals";

/// A file beside the plans that no stored plan names.
#[derive(Debug, Clone)]
pub struct Orphan {
    pub url: String,
    path: Path,
    pub bytes: u64,
}

/// Plans of every pipeline under one prefix of an object store.
#[derive(Clone)]
pub struct PlanStore {
    store: Arc<dyn ObjectStore>,
    /// Store for create-only puts; see [`PlanStore::with_create_retries`].
    create_store: Arc<dyn ObjectStore>,
    create_retries: u32,
    initial_backoff: Duration,
    prefix: Path,
    /// Sub-folders under the pipeline's folder that hold this store's plan series (empty: the
    /// live series). Backfills keep one series per window and as-of date.
    series: Vec<String>,
    /// Display form of the root (URL without credentials), for messages and plan references.
    root_display: String,
}

impl std::fmt::Debug for PlanStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlanStore")
            .field("root", &self.root_display)
            .field("series", &self.series)
            .finish()
    }
}

/// A stored plan's name and location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlan {
    pub path: Path,
    pub url: String,
    /// Version of the plan within its pipeline (1, 2, ...).
    pub version: u64,
}

impl PlanStore {
    /// A store rooted at `prefix`; `root_display` is the URL shown to users.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path, root_display: impl Into<String>) -> Self {
        Self {
            create_store: Arc::clone(&store),
            store,
            create_retries: 0,
            initial_backoff: Duration::from_millis(100),
            prefix,
            series: Vec::new(),
            root_display: root_display.into().trim_end_matches('/').to_string(),
        }
    }

    /// Create-only puts through `create_store` (a client that does not retry by itself),
    /// retried here up to `retries` times after transient errors with exponential backoff and
    /// jitter. Storage clients do not retry a create whose request timed out or whose
    /// connection was reset (it may have landed); this store can, because it checks whether the
    /// object that is there is its own (see [`PlanStore::holds`]).
    pub fn with_create_retries(
        mut self,
        create_store: Arc<dyn ObjectStore>,
        retries: u32,
        initial_backoff: Duration,
    ) -> Self {
        self.create_store = create_store;
        self.create_retries = retries;
        self.initial_backoff = initial_backoff;
        self
    }

    /// The same store, writing and listing the plan series under `parts` (e.g.
    /// `["backfill", "30d", "as_of=2026-01-01"]`) inside each pipeline's folder. Versions count
    /// per series.
    pub fn with_series(mut self, parts: Vec<String>) -> Self {
        self.series = parts;
        self
    }

    fn pipeline_dir(&self, pipeline: &str) -> Path {
        let mut dir = self.prefix.clone().join(pipeline);
        for part in &self.series {
            dir = dir.join(part.as_str());
        }
        dir
    }

    fn url_of(&self, path: &Path) -> String {
        let relative = path
            .as_ref()
            .strip_prefix(self.prefix.as_ref())
            .unwrap_or(path.as_ref())
            .trim_start_matches('/');
        format!("{}/{}", self.root_display, relative)
    }

    /// Writes `plan` as the pipeline's next version, `plan-v<NNNNNN>.json`, with a create-only
    /// put: the version is taken from the listing, and when another run took it first (the put
    /// finds the object), the listing is read again and the next free version is tried. The
    /// plan's `version` field is set to the version written.
    pub async fn write(&self, plan: &mut Plan) -> Result<StoredPlan, PlanStoreError> {
        let dir = self.pipeline_dir(&plan.pipeline.name);
        for _ in 0..100u32 {
            let latest = self
                .list(&plan.pipeline.name)
                .await?
                .last()
                .map(|p| p.version);
            if latest == Some(crate::name::MAX_PLAN_VERSION) {
                return Err(PlanStoreError::VersionsExhausted(self.url_of(&dir)));
            }
            let version = latest.map_or(1, |v| v + 1);
            plan.version = version;
            let body = serde_json::to_vec_pretty(&*plan).expect("plans always serialize");
            let path = dir.clone().join(plan_file_name(version, "json").as_str());
            // Every plan written is readable by every command: never store one that is not.
            crate::read::check_reads_back(&body).map_err(|problem| PlanStoreError::Unreadable {
                location: self.url_of(&path),
                problem,
            })?;
            match self.create(&path, bytes::Bytes::from(body)).await {
                Ok(_) => {
                    let url = self.url_of(&path);
                    return Ok(StoredPlan { path, url, version });
                }
                Err(object_store::Error::AlreadyExists { .. }) => continue,
                Err(source) => {
                    return Err(PlanStoreError::Store {
                        location: self.url_of(&path),
                        source,
                    });
                }
            }
        }
        Err(PlanStoreError::NoFreeName(self.url_of(&dir)))
    }

    /// Writes a file that belongs to a plan (e.g. flagged referrals) under the pipeline's folder,
    /// create-only; returns its URL.
    pub async fn write_artifact(
        &self,
        pipeline: &str,
        name: &str,
        bytes: bytes::Bytes,
    ) -> Result<String, PlanStoreError> {
        let path = self.artifact_path(pipeline, name);
        self.create(&path, bytes)
            .await
            .map_err(|source| PlanStoreError::Store {
                location: self.url_of(&path),
                source,
            })?;
        Ok(self.url_of(&path))
    }

    /// Where a file beside the pipeline's plans lives (`name` may hold `/`-separated folders).
    fn artifact_path(&self, pipeline: &str, name: &str) -> Path {
        name.split('/')
            .fold(self.pipeline_dir(pipeline), |path, part| path.join(part))
    }

    /// The URL of a file beside the pipeline's plans (`name` as for [`Self::write_artifact`]).
    pub fn url_of_artifact(&self, pipeline: &str, name: &str) -> String {
        let path = self.artifact_path(pipeline, name);
        self.url_of(&path)
    }

    /// Files in the pipeline's `folder` (e.g. `flagged-referrals`) whose URL is not in
    /// `referenced` (as plans record them) and that are older than `grace`: what a run stopped
    /// between writing its files and its plan left behind. A younger file may belong to a run
    /// that is finishing now, so it is never an orphan.
    pub async fn unreferenced_artifacts(
        &self,
        pipeline: &str,
        folder: &str,
        referenced: &std::collections::BTreeSet<String>,
        grace: Duration,
    ) -> Result<Vec<Orphan>, PlanStoreError> {
        let dir = self.artifact_path(pipeline, folder);
        let cutoff =
            chrono::Utc::now() - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let listed: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|source| PlanStoreError::Store {
                location: self.url_of(&dir),
                source,
            })?;
        let mut orphans: Vec<Orphan> = listed
            .into_iter()
            .filter(|meta| meta.last_modified < cutoff)
            .map(|meta| Orphan {
                url: self.url_of(&meta.location),
                path: meta.location,
                bytes: meta.size,
            })
            .filter(|orphan| !referenced.contains(&orphan.url))
            .collect();
        orphans.sort_by(|a, b| a.url.cmp(&b.url));
        Ok(orphans)
    }

    /// Deletes a file [`Self::unreferenced_artifacts`] found.
    pub async fn delete_orphan(&self, orphan: &Orphan) -> Result<(), PlanStoreError> {
        match self.store.delete(&orphan.path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(PlanStoreError::Store {
                location: orphan.url.clone(),
                source,
            }),
        }
    }

    /// Whether a file beside the pipeline's plans exists (`name` as for [`Self::write_artifact`]).
    pub async fn artifact_exists(
        &self,
        pipeline: &str,
        name: &str,
    ) -> Result<bool, PlanStoreError> {
        let path = self.artifact_path(pipeline, name);
        match self.store.head(&path).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(source) => Err(PlanStoreError::Store {
                location: self.url_of(&path),
                source,
            }),
        }
    }

    /// Puts `body` at `path` unless something is there. `AlreadyExists` means another writer
    /// holds the name; an object with exactly `body` is this writer's own earlier attempt whose
    /// response was lost, and counts as written.
    ///
    /// `Ok(true)`: this call created it; `Ok(false)`: the identical object was already there.
    async fn create(&self, path: &Path, body: bytes::Bytes) -> Result<bool, object_store::Error> {
        let mut retries = 0;
        loop {
            let options = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            match self
                .create_store
                .put_opts(path, PutPayload::from(body.clone()), options)
                .await
            {
                Ok(_) => return Ok(true),
                Err(e @ object_store::Error::AlreadyExists { .. }) => {
                    return if self.holds(path, &body).await {
                        Ok(false)
                    } else {
                        Err(e)
                    };
                }
                Err(e @ object_store::Error::Generic { .. }) if retries < self.create_retries => {
                    retries += 1;
                    let wait = backoff(self.initial_backoff, retries);
                    tracing::warn!(
                        object = %path,
                        retry = retries,
                        backoff_ms = wait.as_millis() as u64,
                        error = %e,
                        "create-only put failed; retrying"
                    );
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Whether `path` holds exactly `body`. A create-only put whose response was lost (a
    /// reset after the server stored the object) is retried by the storage client and then
    /// finds the object there: if the bytes are ours, the write succeeded. Plans carry a run id
    /// and timestamps, so another run's plan never matches.
    async fn holds(&self, path: &Path, body: &bytes::Bytes) -> bool {
        match self.store.get(path).await {
            Ok(existing) => existing.bytes().await.is_ok_and(|b| b == *body),
            Err(_) => false,
        }
    }

    /// Stored plans of `pipeline`, oldest first (by version). Objects that are not
    /// `plan-v<N>.json` (artifacts, temporary files of an interrupted local put) are ignored.
    pub async fn list(&self, pipeline: &str) -> Result<Vec<StoredPlan>, PlanStoreError> {
        let dir = self.pipeline_dir(pipeline);
        let mut paths: Vec<Path> = self
            .store
            .list(Some(&dir))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await
            .map_err(|source| PlanStoreError::Store {
                location: self.url_of(&dir),
                source,
            })?;
        let mut plans: Vec<StoredPlan> = paths
            .drain(..)
            .filter_map(|path| {
                // Only this series' plans, not those of series in sub-folders.
                if path.prefix_match(&dir)?.count() != 1 {
                    return None;
                }
                let Some(version) = version_of(&path) else {
                    if path.filename().is_some_and(crate::name::looks_like_plan) {
                        tracing::warn!(
                            "ignoring {}: not a plan name refopt writes (plan-v000001.json to plan-v{}.json)",
                            self.url_of(&path),
                            crate::name::MAX_PLAN_VERSION
                        );
                    }
                    return None;
                };
                Some(StoredPlan {
                    url: self.url_of(&path),
                    path,
                    version,
                })
            })
            .collect();
        plans.sort_by_key(|p| p.version);
        Ok(plans)
    }

    /// The folder of a plan version's audit records.
    fn audit_dir(&self, pipeline: &str, version: u64) -> Path {
        self.pipeline_dir(pipeline)
            .join("audit")
            .join(plan_stem(version).as_str())
    }

    /// Writes an audit record (create-only). `Ok(false)` when a record of that name exists
    /// (the same decision or delivery was recorded before).
    pub async fn write_audit(
        &self,
        pipeline: &str,
        version: u64,
        name: &str,
        record: &impl serde::Serialize,
    ) -> Result<bool, PlanStoreError> {
        self.create_record(self.audit_dir(pipeline, version), name, record)
            .await
    }

    /// Writes a record of the series that belongs to no plan version (create-only), under
    /// `<series>/<folder>/<name>`: e.g. acknowledgements of escalation episodes in `acks`.
    /// `Ok(false)` when a record of that name exists.
    pub async fn write_series_record(
        &self,
        pipeline: &str,
        folder: &str,
        name: &str,
        record: &impl serde::Serialize,
    ) -> Result<bool, PlanStoreError> {
        self.create_record(self.pipeline_dir(pipeline).join(folder), name, record)
            .await
    }

    /// The records of a series folder written by [`PlanStore::write_series_record`]:
    /// (file name, bytes), by name.
    pub async fn read_series_records(
        &self,
        pipeline: &str,
        folder: &str,
    ) -> Result<Vec<(String, bytes::Bytes)>, PlanStoreError> {
        self.read_records(self.pipeline_dir(pipeline).join(folder))
            .await
    }

    async fn create_record(
        &self,
        dir: Path,
        name: &str,
        record: &impl serde::Serialize,
    ) -> Result<bool, PlanStoreError> {
        let path = dir.join(name);
        let body =
            bytes::Bytes::from(serde_json::to_vec_pretty(record).expect("records serialize"));
        match self.create(&path, body).await {
            Ok(created) => Ok(created),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(source) => Err(PlanStoreError::Store {
                location: self.url_of(&path),
                source,
            }),
        }
    }

    /// Audit records of a plan version: (file name, bytes), by name.
    pub async fn read_audit(
        &self,
        pipeline: &str,
        version: u64,
    ) -> Result<Vec<(String, bytes::Bytes)>, PlanStoreError> {
        self.read_records(self.audit_dir(pipeline, version)).await
    }

    async fn read_records(&self, dir: Path) -> Result<Vec<(String, bytes::Bytes)>, PlanStoreError> {
        let metas: Vec<object_store::ObjectMeta> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|source| PlanStoreError::Store {
                location: self.url_of(&dir),
                source,
            })?;
        let mut out = Vec::new();
        for meta in metas {
            let name = meta.location.filename().unwrap_or_default().to_string();
            let err = |source| PlanStoreError::Store {
                location: self.url_of(&meta.location),
                source,
            };
            let bytes = self
                .store
                .get(&meta.location)
                .await
                .map_err(err)?
                .bytes()
                .await
                .map_err(err)?;
            out.push((name, bytes));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// The stored bytes of a plan (for content hashes).
    pub async fn read_bytes(&self, plan: &StoredPlan) -> Result<bytes::Bytes, PlanStoreError> {
        let err = |source| PlanStoreError::Store {
            location: plan.url.clone(),
            source,
        };
        self.store
            .get(&plan.path)
            .await
            .map_err(err)?
            .bytes()
            .await
            .map_err(err)
    }

    /// Reads one stored plan.
    pub async fn read(&self, plan: &StoredPlan) -> Result<Plan, PlanStoreError> {
        let bytes = self
            .store
            .get(&plan.path)
            .await
            .map_err(|source| PlanStoreError::Store {
                location: plan.url.clone(),
                source,
            })?
            .bytes()
            .await
            .map_err(|source| PlanStoreError::Store {
                location: plan.url.clone(),
                source,
            })?;
        let read = crate::read::parse_plan(&bytes).map_err(|source| PlanStoreError::Decode {
            location: plan.url.clone(),
            source,
        })?;
        if !read.unknown_fields.is_empty() {
            tracing::warn!(
                plan = %plan.url,
                schema_version = %read.plan.schema_version,
                unknown_fields = %read.unknown_fields.join(", "),
                "plan written by a newer refopt: fields this build does not know were dropped"
            );
        }
        if read.float_money {
            tracing::info!(
                plan = %plan.url,
                schema_version = %read.plan.schema_version,
                "plan predates exact money (schema 1.2): its float amounts are read rounded to the cent"
            );
        }
        Ok(read.plan)
    }
}

/// The wait before retry number `retry` (1-based): `initial * 2^(retry-1)` (doubling stops
/// after 10 retries), plus up to 25% jitter so that concurrent retries spread out. The one
/// backoff of refopt: stage retries, plan-store writes and notification deliveries use it.
pub fn backoff(initial: Duration, retry: u32) -> Duration {
    let base = initial.saturating_mul(1 << retry.saturating_sub(1).min(10));
    let jitter = rand::rng().random_range(0.0..=0.25);
    base.mul_f64(1.0 + jitter)
}

/// The version in a `plan-v<N>.json` name.
fn version_of(path: &Path) -> Option<u64> {
    plan_version(path.filename()?)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use futures::stream::BoxStream;
    use object_store::memory::InMemory;
    use object_store::{
        CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
        PutMultipartOptions, PutResult,
    };

    use super::*;

    /// An in-memory store whose first `failures` create-only puts fail with a transient error;
    /// with `lands`, each failing put stores the object first (a response lost after the
    /// server stored it).
    #[derive(Debug)]
    struct Flaky {
        inner: Arc<InMemory>,
        failures: AtomicU32,
        lands: bool,
    }

    impl std::fmt::Display for Flaky {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Flaky")
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Flaky {
        async fn put_opts(
            &self,
            location: &Path,
            payload: PutPayload,
            opts: PutOptions,
        ) -> object_store::Result<PutResult> {
            let fail = self
                .failures
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
            if !fail {
                return self.inner.put_opts(location, payload, opts).await;
            }
            if self.lands {
                self.inner.put_opts(location, payload, opts).await?;
            }
            Err(object_store::Error::Generic {
                store: "Flaky",
                source: "connection reset".into(),
            })
        }
        async fn put_multipart_opts(
            &self,
            location: &Path,
            opts: PutMultipartOptions,
        ) -> object_store::Result<Box<dyn MultipartUpload>> {
            self.inner.put_multipart_opts(location, opts).await
        }
        async fn get_opts(
            &self,
            location: &Path,
            options: GetOptions,
        ) -> object_store::Result<GetResult> {
            self.inner.get_opts(location, options).await
        }
        fn delete_stream(
            &self,
            locations: BoxStream<'static, object_store::Result<Path>>,
        ) -> BoxStream<'static, object_store::Result<Path>> {
            self.inner.delete_stream(locations)
        }
        fn list(
            &self,
            prefix: Option<&Path>,
        ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
            self.inner.list(prefix)
        }
        async fn list_with_delimiter(
            &self,
            prefix: Option<&Path>,
        ) -> object_store::Result<ListResult> {
            self.inner.list_with_delimiter(prefix).await
        }
        async fn copy_opts(
            &self,
            from: &Path,
            to: &Path,
            options: CopyOptions,
        ) -> object_store::Result<()> {
            self.inner.copy_opts(from, to, options).await
        }
    }

    /// A plan store over `inner` whose create-only puts go through a [`Flaky`] store.
    fn store(inner: &Arc<InMemory>, failures: u32, lands: bool, retries: u32) -> PlanStore {
        let flaky = Arc::new(Flaky {
            inner: Arc::clone(inner),
            failures: AtomicU32::new(failures),
            lands,
        });
        PlanStore::new(inner.clone(), Path::from("plans"), "mem://plans").with_create_retries(
            flaky,
            retries,
            Duration::from_millis(1),
        )
    }

    fn plan() -> Plan {
        let mut plan = Plan {
            schema_version: crate::plan::SCHEMA_VERSION.into(),
            run_id: "run-1".into(),
            ..Plan::default()
        };
        plan.pipeline.name = "p".into();
        plan
    }

    async fn versions(store: &PlanStore) -> Vec<u64> {
        store
            .list("p")
            .await
            .unwrap()
            .iter()
            .map(|p| p.version)
            .collect()
    }

    #[tokio::test]
    async fn transient_create_failures_are_retried() {
        let inner = Arc::new(InMemory::new());
        let store = store(&inner, 2, false, 2);
        let stored = store.write(&mut plan()).await.unwrap();
        assert_eq!(stored.version, 1);
        assert_eq!(stored.url, "mem://plans/p/plan-v000001.json");
        assert_eq!(versions(&store).await, [1]);
    }

    #[tokio::test]
    async fn a_create_whose_response_was_lost_counts_as_written_once() {
        let inner = Arc::new(InMemory::new());
        let store = store(&inner, 1, true, 2);
        let mut written = plan();
        let stored = store.write(&mut written).await.unwrap();
        // The retry found its own bytes: version 1, not a second copy as version 2.
        assert_eq!(stored.version, 1);
        assert_eq!(versions(&store).await, [1]);
        assert_eq!(store.read(&stored).await.unwrap(), written);
    }

    #[tokio::test]
    async fn retries_are_bounded_and_the_error_names_the_object() {
        let inner = Arc::new(InMemory::new());
        let store = store(&inner, 3, false, 2);
        let err = store.write(&mut plan()).await.unwrap_err();
        assert!(matches!(err, PlanStoreError::Store { .. }), "{err}");
        assert!(
            err.to_string().contains("mem://plans/p/plan-v000001.json"),
            "{err}"
        );
        assert!(versions(&store).await.is_empty());
    }

    #[tokio::test]
    async fn a_version_taken_by_another_run_moves_to_the_next() {
        let inner = Arc::new(InMemory::new());
        let store = store(&inner, 0, false, 0);
        let mut other = plan();
        other.run_id = "run-0".into();
        store.write(&mut other).await.unwrap();
        // The other run's plan is there as v1: this one becomes v2, v1 is untouched.
        let stored = store.write(&mut plan()).await.unwrap();
        assert_eq!(stored.version, 2);
        assert_eq!(versions(&store).await, [1, 2]);
        let first = store.list("p").await.unwrap().remove(0);
        assert_eq!(store.read(&first).await.unwrap().run_id, "run-0");
    }

    #[tokio::test]
    async fn a_plan_name_past_the_highest_version_is_ignored_not_wrapped() {
        let inner = Arc::new(InMemory::new());
        let store = store(&inner, 0, false, 0);
        for name in ["plan-v18446744073709551615.json", "plan-v1000000000.json"] {
            inner
                .put(
                    &Path::from(format!("plans/p/{name}")),
                    b"{}".to_vec().into(),
                )
                .await
                .unwrap();
        }
        assert_eq!(store.write(&mut plan()).await.unwrap().version, 1);
        assert_eq!(store.write(&mut plan()).await.unwrap().version, 2);
        let last = format!(
            "plans/p/{}",
            plan_file_name(crate::name::MAX_PLAN_VERSION, "json")
        );
        inner
            .put(&Path::from(last), b"{}".to_vec().into())
            .await
            .unwrap();
        let err = store.write(&mut plan()).await.unwrap_err();
        assert!(matches!(err, PlanStoreError::VersionsExhausted(_)), "{err}");
    }

    /// A plan with `value` in a required number, an optional one and a free-form map.
    fn plan_with(value: f64) -> Plan {
        let mut p = plan();
        p.metrics.funnel.push(crate::plan::FunnelRow {
            dimension: "overall".into(),
            value: "all".into(),
            won_change: Some(value),
            ..Default::default()
        });
        p.partner_health.top.push(crate::plan::PartnerScore {
            score: value,
            ..Default::default()
        });
        p
    }

    proptest::proptest! {
        /// Whatever floats a plan holds, what the store writes reads back: finite numbers
        /// exactly, and a plan that could not be read back is refused (nothing stored).
        #[test]
        fn every_written_plan_reads_back(value in proptest::num::f64::ANY) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            runtime.block_on(async {
                let inner = Arc::new(InMemory::new());
                let store = store(&inner, 0, false, 0);
                let mut written = plan_with(value);
                match store.write(&mut written).await {
                    Ok(stored) => {
                        let read = store.read(&stored).await.unwrap();
                        proptest::prop_assert!(value.is_finite());
                        proptest::prop_assert_eq!(read, written);
                    }
                    Err(e) => {
                        proptest::prop_assert!(!value.is_finite(), "{}", e);
                        proptest::prop_assert!(
                            e.to_string().contains("partner_health.top[0].score"),
                            "{}", e
                        );
                        proptest::prop_assert!(versions(&store).await.is_empty());
                    }
                }
                Ok(())
            })?;
        }
    }
}
