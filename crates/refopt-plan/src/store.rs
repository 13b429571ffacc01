//! The plan store: plans are immutable objects under `<plans-root>/<pipeline>/`, written in one
//! put with create-only semantics, so a plan is never overwritten nor seen half-written.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

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
        source: serde_json::Error,
    },
    #[error("could not find a free plan name under {0} after 100 attempts")]
    NoFreeName(String),
}

/// Plans of every pipeline under one prefix of an object store.
#[derive(Clone)]
pub struct PlanStore {
    store: Arc<dyn ObjectStore>,
    prefix: Path,
    /// Display form of the root (URL without credentials), for messages and plan references.
    root_display: String,
}

/// A stored plan's name and location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPlan {
    pub path: Path,
    pub url: String,
}

impl PlanStore {
    /// A store rooted at `prefix`; `root_display` is the URL shown to users.
    pub fn new(store: Arc<dyn ObjectStore>, prefix: Path, root_display: impl Into<String>) -> Self {
        Self {
            store,
            prefix,
            root_display: root_display.into().trim_end_matches('/').to_string(),
        }
    }

    fn pipeline_dir(&self, pipeline: &str) -> Path {
        self.prefix.clone().join(pipeline)
    }

    fn url_of(&self, path: &Path) -> String {
        let relative = path
            .as_ref()
            .strip_prefix(self.prefix.as_ref())
            .unwrap_or(path.as_ref())
            .trim_start_matches('/');
        format!("{}/{}", self.root_display, relative)
    }

    /// Writes `plan` as `plan-<UTC timestamp>.json`, never replacing an existing object.
    pub async fn write(
        &self,
        plan: &Plan,
        created: DateTime<Utc>,
    ) -> Result<StoredPlan, PlanStoreError> {
        let body = serde_json::to_vec_pretty(plan).expect("plans always serialize");
        let stamp = created.format("%Y%m%dT%H%M%SZ").to_string();
        let dir = self.pipeline_dir(&plan.pipeline.name);
        for n in 0..100u32 {
            let name = if n == 0 {
                format!("plan-{stamp}.json")
            } else {
                format!("plan-{stamp}-{n}.json")
            };
            let path = dir.clone().join(name.as_str());
            let options = PutOptions {
                mode: PutMode::Create,
                ..PutOptions::default()
            };
            match self
                .store
                .put_opts(&path, PutPayload::from(body.clone()), options)
                .await
            {
                Ok(_) => {
                    let url = self.url_of(&path);
                    return Ok(StoredPlan { path, url });
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
        let mut path = self.pipeline_dir(pipeline);
        for part in name.split('/') {
            path = path.join(part);
        }
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        self.store
            .put_opts(&path, PutPayload::from(bytes), options)
            .await
            .map_err(|source| PlanStoreError::Store {
                location: self.url_of(&path),
                source,
            })?;
        Ok(self.url_of(&path))
    }

    /// Stored plans of `pipeline`, oldest first (names sort by time).
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
        paths.retain(|p| {
            p.filename()
                .is_some_and(|f| f.starts_with("plan-") && f.ends_with(".json"))
        });
        paths.sort_by_key(sort_key);
        Ok(paths
            .into_iter()
            .map(|path| StoredPlan {
                url: self.url_of(&path),
                path,
            })
            .collect())
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
        serde_json::from_slice(&bytes).map_err(|source| PlanStoreError::Decode {
            location: plan.url.clone(),
            source,
        })
    }
}

/// `plan-<stamp>.json` sorts before `plan-<stamp>-1.json`, which sorts before `-2`, `-10`.
fn sort_key(path: &Path) -> (String, u32) {
    let name = path.filename().unwrap_or_default();
    let stem = name.trim_start_matches("plan-").trim_end_matches(".json");
    match stem.split_once('-') {
        Some((stamp, n)) => (stamp.to_string(), n.parse().unwrap_or(0)),
        None => (stem.to_string(), 0),
    }
}
