//! One resolver from a location string to an object store: `file://` URLs and plain paths,
//! `s3://bucket/prefix`, `gs://bucket/prefix` and `az://container/prefix`.
//!
//! Credentials and endpoints come from the environment only (`AWS_*`, `GOOGLE_*`, `AZURE_*`),
//! read by the object_store builders; they never appear in URLs we print or store.

use std::sync::Arc;

use datafusion::prelude::SessionContext;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ClientConfigKey, ObjectStore};
use url::Url;

pub(crate) mod attempts;

pub use attempts::StoragePolicy;

/// Why a location could not be turned into a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    #[error("invalid storage location `{location}`: {reason}")]
    Invalid { location: String, reason: String },
    #[error("cannot configure {scheme} store for `{location}`: {source}")]
    Configure {
        scheme: String,
        location: String,
        source: object_store::Error,
    },
}

/// A resolved location: the store, the prefix inside it, and the URL DataFusion knows it by.
#[derive(Clone, Debug)]
pub struct StorageLocation {
    pub store: Arc<dyn ObjectStore>,
    /// `scheme://authority/` under which `store` is registered with DataFusion.
    pub store_url: Url,
    /// Prefix inside the store (no leading or trailing slash).
    pub prefix: Path,
    /// The location as shown to users (no credentials).
    pub display: String,
}

impl StorageLocation {
    /// The path of `relative` under this location's prefix.
    pub fn child(&self, relative: &str) -> Path {
        let mut path = self.prefix.clone();
        for part in relative.split('/').filter(|p| !p.is_empty()) {
            path = path.join(part);
        }
        path
    }

    /// The URL of a folder under this location, with a trailing slash (for DataFusion listing).
    pub fn folder_url(&self, relative: &str) -> String {
        format!("{}{}/", self.store_url, self.child(relative))
    }

    /// The user-facing URL of something under this location.
    pub fn display_of(&self, relative: &str) -> String {
        format!(
            "{}/{}",
            self.display.trim_end_matches('/'),
            relative.trim_matches('/')
        )
    }

    /// Makes this store known to a DataFusion session.
    pub fn register(&self, ctx: &SessionContext) {
        ctx.register_object_store(&self.store_url, Arc::clone(&self.store));
    }
}

/// Resolves a URL or local path with the default [`StoragePolicy`] (2 retries, 60 s timeout).
pub fn resolve(location: &str) -> Result<StorageLocation, StorageError> {
    resolve_with(location, &StoragePolicy::default())
}

/// Resolves a URL or local path; cloud stores retry, time out and record failed attempts as
/// `policy` says (local folders have no transient failures to retry).
pub fn resolve_with(
    location: &str,
    policy: &StoragePolicy,
) -> Result<StorageLocation, StorageError> {
    let shown = redact(location);
    let invalid = |reason: &str| StorageError::Invalid {
        location: shown.clone(),
        reason: reason.to_string(),
    };
    if location.trim().is_empty() {
        return Err(invalid("empty location"));
    }
    let Some((scheme, _)) = location.split_once("://") else {
        return local(std::path::Path::new(location), location);
    };
    let url = Url::parse(location).map_err(|e| invalid(&e.to_string()))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials in URLs are not accepted; use the environment (e.g. AWS_ACCESS_KEY_ID)",
        ));
    }
    if scheme == "file" {
        let path = url
            .to_file_path()
            .map_err(|_| invalid("not a valid file URL"))?;
        return local(&path, location);
    }
    let bucket = url
        .host_str()
        .filter(|h| !h.is_empty())
        .ok_or_else(|| invalid("missing bucket or container name"))?
        .to_string();
    let configure = |source| StorageError::Configure {
        scheme: scheme.to_string(),
        location: shown.clone(),
        source,
    };
    let timeout = format!("{}ms", policy.timeout.as_millis());
    let store: Arc<dyn ObjectStore> = match scheme {
        "s3" | "s3a" => {
            let mut builder = AmazonS3Builder::from_env()
                .with_bucket_name(&bucket)
                .with_retry(policy.retry_config())
                .with_http_connector(policy.connector())
                .with_config(
                    AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                    &timeout,
                );
            // A plain-HTTP endpoint (MinIO, moto, a local gateway) needs allow_http.
            let endpoint = std::env::var("AWS_ENDPOINT_URL")
                .or_else(|_| std::env::var("AWS_ENDPOINT"))
                .unwrap_or_default();
            if endpoint.starts_with("http://") {
                builder = builder.with_allow_http(true);
            }
            Arc::new(builder.build().map_err(configure)?)
        }
        "gs" => Arc::new(
            GoogleCloudStorageBuilder::from_env()
                .with_bucket_name(&bucket)
                .with_retry(policy.retry_config())
                .with_http_connector(policy.connector())
                .with_config(GoogleConfigKey::Client(ClientConfigKey::Timeout), &timeout)
                .build()
                .map_err(configure)?,
        ),
        "az" | "abfs" | "abfss" => Arc::new(
            MicrosoftAzureBuilder::from_env()
                .with_container_name(&bucket)
                .with_retry(policy.retry_config())
                .with_http_connector(policy.connector())
                .with_config(AzureConfigKey::Client(ClientConfigKey::Timeout), &timeout)
                .build()
                .map_err(configure)?,
        ),
        other => {
            return Err(invalid(&format!(
                "unsupported scheme `{other}` (use file://, s3://, gs://, az:// or a local path)"
            )));
        }
    };
    let store_url =
        Url::parse(&format!("{scheme}://{bucket}/")).map_err(|e| invalid(&e.to_string()))?;
    let prefix = Path::from(url.path().trim_matches('/'));
    let display = format!("{scheme}://{bucket}/{prefix}")
        .trim_end_matches('/')
        .to_string();
    Ok(StorageLocation {
        store,
        store_url,
        prefix,
        display,
    })
}

/// Hides any `user:password@` part of a URL-like string.
pub fn redact(location: &str) -> String {
    refopt_spec::redact::redact_secrets(location).into_owned()
}

fn local(path: &std::path::Path, original: &str) -> Result<StorageLocation, StorageError> {
    let absolute = std::path::absolute(path).map_err(|e| StorageError::Invalid {
        location: original.to_string(),
        reason: e.to_string(),
    })?;
    let text = absolute.to_string_lossy();
    let prefix = Path::from(text.trim_start_matches('/').trim_end_matches('/'));
    Ok(StorageLocation {
        store: Arc::new(LocalFileSystem::new()),
        store_url: Url::parse("file:///").expect("static URL"),
        prefix,
        display: format!("file://{}", text.trim_end_matches('/')),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_become_file_urls() {
        let l = resolve("/tmp/data").unwrap();
        assert_eq!(l.display, "file:///tmp/data");
        assert_eq!(l.folder_url("invites"), "file:///tmp/data/invites/");
        let l = resolve("file:///tmp/x/").unwrap();
        assert_eq!(l.child("a/b").as_ref(), "tmp/x/a/b");
    }

    #[test]
    fn s3_locations_keep_bucket_and_prefix() {
        let l = resolve("s3://bucket/some/prefix").unwrap();
        assert_eq!(l.store_url.as_str(), "s3://bucket/");
        assert_eq!(l.prefix.as_ref(), "some/prefix");
        assert_eq!(l.folder_url("invites"), "s3://bucket/some/prefix/invites/");
    }

    #[test]
    fn rejects_credentials_and_unknown_schemes() {
        let e = resolve("s3://key:secret@bucket/x").unwrap_err().to_string();
        assert!(e.contains("credentials"), "{e}");
        assert!(!e.contains("secret@"), "{e}");
        assert!(
            resolve("ftp://host/x")
                .unwrap_err()
                .to_string()
                .contains("unsupported scheme")
        );
    }
}
