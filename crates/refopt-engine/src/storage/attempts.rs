//! Visible storage retries. object_store retries transient HTTP failures itself (5xx, 429,
//! timeouts, resets) with exponential backoff and jitter, but silently; this module puts a
//! recording layer under its HTTP client so every failed request attempt ends up in the plan's
//! error-handling section and in the logs. (A download that breaks after its headers arrived
//! is resumed by object_store's body stream without a new request through this layer, so it is
//! not recorded.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::client::{
    HttpClient, HttpConnector, HttpError, HttpRequest, HttpResponse, HttpService, ReqwestConnector,
};
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

/// How storage requests are retried and timed out.
#[derive(Debug, Clone)]
pub struct StoragePolicy {
    /// Retries after a request's first attempt (the seed's default is 2).
    pub retries: u32,
    /// Upper bound of one request, connect to last body byte (a stalled server is a failure).
    pub timeout: Duration,
    /// First backoff; grows about 2x per retry, with jitter.
    pub initial_backoff: Duration,
    /// Where failed attempts are recorded.
    pub attempts: StorageAttempts,
}

impl Default for StoragePolicy {
    fn default() -> Self {
        Self {
            retries: 2,
            timeout: Duration::from_secs(60),
            initial_backoff: Duration::from_millis(100),
            attempts: StorageAttempts::default(),
        }
    }
}

impl StoragePolicy {
    /// object_store's retry settings for this policy.
    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: self.initial_backoff,
                max_backoff: Duration::from_secs(15),
                base: 2.0,
            },
            max_retries: self.retries as usize,
            retry_timeout: Duration::from_secs(180).max(self.timeout * (self.retries + 1)),
        }
    }

    /// The same policy with no retries in the storage client (for callers that retry
    /// themselves); failed attempts still go to the same log.
    pub fn without_retries(&self) -> StoragePolicy {
        StoragePolicy {
            retries: 0,
            ..self.clone()
        }
    }

    /// An HTTP connector that records failed attempts into [`Self::attempts`].
    pub fn connector(&self) -> RecordingConnector {
        RecordingConnector {
            attempts: self.attempts.clone(),
        }
    }
}

/// One storage request attempt that failed (and was retried unless the run failed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedAttempt {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Object path of the request (no query string: it may carry signatures or tokens).
    pub object: String,
    /// What went wrong: an HTTP status or the transport error kind.
    pub error: String,
    pub at: DateTime<Utc>,
}

/// A shared, append-only log of failed storage attempts.
#[derive(Debug, Clone, Default)]
pub struct StorageAttempts(Arc<Mutex<Vec<FailedAttempt>>>);

impl StorageAttempts {
    fn record(&self, attempt: FailedAttempt) {
        tracing::warn!(
            method = %attempt.method,
            object = %attempt.object,
            error = %attempt.error,
            "storage request attempt failed"
        );
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(attempt);
    }

    /// Everything recorded so far, oldest first.
    pub fn snapshot(&self) -> Vec<FailedAttempt> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// Builds object_store's reqwest client and wraps it in [`RecordingService`].
#[derive(Debug, Clone)]
pub struct RecordingConnector {
    attempts: StorageAttempts,
}

impl HttpConnector for RecordingConnector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        let inner = ReqwestConnector::default().connect(options)?;
        Ok(HttpClient::new(RecordingService {
            inner,
            attempts: self.attempts.clone(),
        }))
    }
}

/// Passes requests through and records the ones object_store would retry.
#[derive(Debug)]
pub struct RecordingService {
    inner: HttpClient,
    attempts: StorageAttempts,
}

#[async_trait::async_trait]
impl HttpService for RecordingService {
    async fn call(&self, request: HttpRequest) -> Result<HttpResponse, HttpError> {
        let method = request.method().to_string();
        let object = request.uri().path().to_string();
        let result = self.inner.execute(request).await;
        let error = match &result {
            Ok(response) => {
                let status = response.status();
                (status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 408)
                    .then(|| format!("HTTP {status}"))
            }
            Err(e) => Some(describe_transport_error(e)),
        };
        if let Some(error) = error {
            self.attempts.record(FailedAttempt {
                method,
                object,
                error,
                at: Utc::now(),
            });
        }
        result
    }
}

/// The error kind and its innermost cause, e.g. `Request: connection reset by peer`. Outer
/// layers name the URL (which may carry a signed query string), so they are left out.
fn describe_transport_error(e: &HttpError) -> String {
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    let cause = root.to_string();
    if cause.contains("://") || std::ptr::addr_eq(root, e) {
        format!("{:?}", e.kind())
    } else {
        format!("{:?}: {cause}", e.kind())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_config_follows_the_policy() {
        let policy = StoragePolicy {
            retries: 3,
            ..StoragePolicy::default()
        };
        let config = policy.retry_config();
        assert_eq!(config.max_retries, 3);
        assert_eq!(config.backoff.init_backoff, Duration::from_millis(100));
        assert!(config.retry_timeout >= policy.timeout * 4);
    }

    #[test]
    fn attempts_are_shared_between_clones() {
        let log = StorageAttempts::default();
        let other = log.clone();
        other.record(FailedAttempt {
            method: "GET".into(),
            object: "/b/k".into(),
            error: "HTTP 503".into(),
            at: Utc::now(),
        });
        assert_eq!(log.snapshot().len(), 1);
    }
}
