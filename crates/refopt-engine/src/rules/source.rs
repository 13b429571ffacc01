//! Where the rules come from: a local folder, or a prefix in an object store (`s3://`, `gs://`,
//! `az://`) copied to a private temporary folder before loading, so a CronJob picks up rule
//! edits from a bucket without a new image. Problems in downloaded files are reported against
//! their object URL, not the temporary copy.

use std::path::{Path, PathBuf};

use futures::TryStreamExt;
use object_store::ObjectStoreExt;
use refopt_spec::RuleSet;

use crate::error::EngineError;
use crate::storage;

/// Largest rules folder fetched from an object store (files and bytes): rules are text.
const MAX_RULE_FILES: usize = 256;
const MAX_RULE_BYTES: u64 = 8 * 1024 * 1024;

/// Loaded rules and where they came from.
#[derive(Debug)]
pub struct LoadedRules {
    pub rules: RuleSet,
    /// The location as given (credentials redacted).
    pub source: String,
    /// `rules/<file>` -> SHA-256 of every rule file, for the plan.
    pub hashes: std::collections::BTreeMap<String, String>,
}

/// Whether `location` names an object store rather than a local folder.
pub fn is_remote(location: &str) -> bool {
    ["s3://", "gs://", "az://", "abfs://", "abfss://"]
        .iter()
        .any(|scheme| location.starts_with(scheme))
}

/// Loads the rules at `location` (a folder, `file://` URL, or object-store prefix).
pub async fn load_rules(location: &str) -> Result<LoadedRules, EngineError> {
    load_rules_with(location, &storage::StoragePolicy::default()).await
}

/// [`load_rules`] with the run's storage policy (retries, timeout, attempt log).
pub async fn load_rules_with(
    location: &str,
    policy: &storage::StoragePolicy,
) -> Result<LoadedRules, EngineError> {
    if !is_remote(location) {
        let dir = PathBuf::from(location.strip_prefix("file://").unwrap_or(location));
        let rules = RuleSet::load(&dir).map_err(EngineError::Config)?;
        return Ok(LoadedRules {
            rules,
            source: dir.display().to_string(),
            hashes: crate::config_hash::rule_file_hashes(&dir),
        });
    }
    let resolved = storage::resolve_with(location, policy)
        .map_err(|e| EngineError::Parameter(e.to_string()))?;
    let storage_error = |message: String| EngineError::storage(resolved.display.clone(), message);
    let download = tempfile::Builder::new()
        .prefix("refopt-rules-")
        .tempdir()
        .map_err(|e| storage_error(format!("cannot create a temporary folder: {e}")))?;
    let objects: Vec<_> = resolved
        .store
        .list(Some(&resolved.prefix))
        .try_collect()
        .await
        .map_err(|e| storage_error(e.to_string()))?;
    if objects.is_empty() {
        return Err(storage_error("no rule files under this prefix".to_string()));
    }
    if objects.len() > MAX_RULE_FILES
        || objects.iter().map(|o| o.size).sum::<u64>() > MAX_RULE_BYTES
    {
        return Err(storage_error(format!(
            "more than {MAX_RULE_FILES} files or {MAX_RULE_BYTES} bytes: is this a rules folder?"
        )));
    }
    for object in &objects {
        let relative: Vec<_> = object
            .location
            .prefix_match(&resolved.prefix)
            .map(|parts| parts.map(|p| p.as_ref().to_string()).collect())
            .unwrap_or_default();
        if relative.is_empty() || relative.iter().any(|p| p == "..") {
            continue;
        }
        let target = relative
            .iter()
            .fold(download.path().to_path_buf(), |p, part| p.join(part));
        let fetch_error =
            |e: object_store::Error| storage_error(format!("{}: {e}", object.location));
        let bytes = resolved
            .store
            .get(&object.location)
            .await
            .map_err(fetch_error)?
            .bytes()
            .await
            .map_err(fetch_error)?;
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| storage_error(e.to_string()))?;
        }
        std::fs::write(&target, &bytes).map_err(|e| storage_error(e.to_string()))?;
    }
    let display = resolved.display.trim_end_matches('/').to_string();
    load_rules_from_copy(download.path(), &display)
}

/// Loads rules from `local`, a copy of the rules at `origin` (an object URL, or the embedded
/// defaults): problems are located at `origin`, and `origin` is the source the plan records.
pub fn load_rules_from_copy(local: &Path, origin: &str) -> Result<LoadedRules, EngineError> {
    let rules = RuleSet::load(local).map_err(|mut e| {
        rebase_locations(&mut e.0, local, origin);
        EngineError::Config(e)
    })?;
    Ok(LoadedRules {
        rules,
        source: origin.to_string(),
        hashes: crate::config_hash::rule_file_hashes(local),
    })
}

/// Rewrites problem locations (and paths in messages) under `local` to `origin`, the place the
/// files were copied from.
pub fn rebase_locations(problems: &mut [refopt_spec::Diagnostic], local: &Path, origin: &str) {
    for e in problems {
        if let Ok(relative) = e.location.file.strip_prefix(local) {
            e.location.file = PathBuf::from(format!("{origin}/{}", relative.display()));
        }
        e.message = e.message.replace(&local.display().to_string(), origin);
    }
}
