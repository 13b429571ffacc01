//! Distribution of plans: who must approve what (`rules/approvals.yaml`) and where
//! notifications go (`rules/notifications.yaml`). Secrets (webhook URLs, SMTP credentials) are
//! never in these files: they name the environment variables that hold them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::yaml;

/// Events a notification sink can subscribe to.
pub const EVENT_KINDS: [&str; 7] = [
    "alert_warn",
    "alert_critical",
    "escalation",
    "rip_cord",
    "run_failed",
    "plan_approved",
    "plan_rejected",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApprovals {
    version: serde_saphyr::Spanned<u32>,
    #[serde(default = "default_max_age")]
    max_data_age_hours: f64,
    #[serde(default)]
    fresh_datasets: Vec<String>,
    #[serde(default)]
    required: BTreeMap<String, String>,
}

fn default_max_age() -> f64 {
    48.0
}

/// Approval policy.
#[derive(Debug, Clone, PartialEq)]
pub struct Approvals {
    pub file: PathBuf,
    /// A dataset whose latest event is older than this (hours before the window's end) is stale,
    /// and a plan built on it cannot be approved.
    pub max_data_age_hours: f64,
    /// Datasets that must be fresh (event tables; empty: every dataset with events).
    pub fresh_datasets: Vec<String>,
    /// Backlog item kind -> role (agent or ladder owner) whose sign-off it needs.
    pub required: BTreeMap<String, String>,
}

impl Approvals {
    pub fn load(file: &Path) -> Result<Approvals, Diagnostics> {
        let raw: RawApprovals = yaml::load(file)?;
        let mut errors = Vec::new();
        errors.extend(yaml::check_version(file, &raw.version, 1, "approvals"));
        if raw.max_data_age_hours.is_nan() || raw.max_data_age_hours <= 0.0 {
            errors.push(Diagnostic::new(
                Location::file_start(file),
                "max_data_age_hours must be > 0",
            ));
        }
        if errors.is_empty() {
            Ok(Approvals {
                file: file.to_path_buf(),
                max_data_age_hours: raw.max_data_age_hours,
                fresh_datasets: raw.fresh_datasets,
                required: raw.required,
            })
        } else {
            Err(Diagnostics(errors))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawNotifications {
    version: serde_saphyr::Spanned<u32>,
    #[serde(default)]
    retry: Option<serde_saphyr::Spanned<crate::pipeline::RetryPolicy>>,
    #[serde(default)]
    sinks: Vec<RawSink>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    id: Spanned<String>,
    kind: Spanned<String>,
    #[serde(default)]
    format: WebhookFormat,
    url_env: Option<String>,
    host: Option<String>,
    #[serde(default = "default_smtp_port")]
    port: u16,
    #[serde(default = "default_true")]
    starttls: bool,
    username_env: Option<String>,
    password_env: Option<String>,
    from: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    events: Vec<Spanned<String>>,
    #[serde(default)]
    owners: Vec<String>,
    #[serde(default)]
    min_escalation_level: u32,
}

/// Where a sink delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    /// HTTP POST of a JSON body (`format: json`) or a Slack-compatible `{"text": ...}`.
    Webhook {
        format: WebhookFormat,
        /// Environment variable holding the URL (URLs carry tokens: never in YAML).
        url_env: String,
    },
    /// Email through an SMTP relay.
    Smtp {
        host: String,
        port: u16,
        /// Upgrade the connection with STARTTLS (default; required by most relays). Without it,
        /// credentials are only accepted for a relay on this host.
        starttls: bool,
        username_env: Option<String>,
        password_env: Option<String>,
        from: String,
        to: Vec<String>,
    },
}

fn default_true() -> bool {
    true
}

fn default_smtp_port() -> u16 {
    587
}

/// Body format of a webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebhookFormat {
    #[default]
    Json,
    Slack,
}

/// One notification sink and its routing.
#[derive(Debug, Clone, PartialEq)]
pub struct Sink {
    pub id: String,
    pub kind: SinkKind,
    pub events: BTreeSet<String>,
    /// Only events addressed to these owners (empty: all).
    pub owners: Vec<String>,
    /// Escalation events below this ladder level are not sent here.
    pub min_escalation_level: u32,
    pub location: Location,
}

/// The notifications file.
#[derive(Debug, Clone, PartialEq)]
pub struct Notifications {
    pub file: PathBuf,
    /// Retries after a failed delivery (the seed's limit is 2) and the first backoff.
    pub retry: crate::pipeline::RetryPolicy,
    pub sinks: Vec<Sink>,
}

impl Notifications {
    pub fn load(file: &Path) -> Result<Notifications, Diagnostics> {
        let raw: RawNotifications = yaml::load(file)?;
        let at = |l: &serde_saphyr::Location| Location::from_yaml(file, l);
        let mut errors = Vec::new();
        errors.extend(yaml::check_version(file, &raw.version, 1, "notifications"));
        let mut ids = BTreeSet::new();
        let mut sinks = Vec::new();
        for s in raw.sinks {
            let location = at(&s.id.referenced);
            if !ids.insert(s.id.value.clone()) {
                errors.push(
                    Diagnostic::new(
                        location.clone(),
                        format!("sink `{}` is declared twice", s.id.value),
                    )
                    .code(crate::diagnostic::Code::Duplicate),
                );
            }
            for e in &s.events {
                if !EVENT_KINDS.contains(&e.value.as_str()) {
                    let hint = crate::pipeline::closest(&e.value, EVENT_KINDS.iter().copied())
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default();
                    errors.push(
                        Diagnostic::new(
                            at(&e.referenced),
                            format!(
                                "sink `{}`: unknown event `{}`{hint}; events: {}",
                                s.id.value,
                                e.value,
                                EVENT_KINDS.join(", ")
                            ),
                        )
                        .code(crate::diagnostic::Code::UnknownReference),
                    );
                }
            }
            let mut missing = |field: &str| {
                errors.push(Diagnostic::new(
                    at(&s.kind.referenced),
                    format!(
                        "sink `{}` of kind `{}` needs `{field}`",
                        s.id.value, s.kind.value
                    ),
                ));
            };
            let kind = match s.kind.value.as_str() {
                "webhook" => {
                    if s.url_env.is_none() {
                        missing("url_env");
                    }
                    SinkKind::Webhook {
                        format: s.format,
                        url_env: s.url_env.unwrap_or_default(),
                    }
                }
                "smtp" => {
                    if s.host.is_none() {
                        missing("host");
                    }
                    if s.from.is_none() {
                        missing("from");
                    }
                    if s.to.is_empty() {
                        missing("to");
                    }
                    let loopback =
                        matches!(s.host.as_deref(), Some("localhost" | "127.0.0.1" | "::1"));
                    if !s.starttls && s.password_env.is_some() && !loopback {
                        errors.push(Diagnostic::new(
                            at(&s.kind.referenced),
                            format!(
                                "sink `{}`: a password over an unencrypted connection; set `starttls: true` (allowed without TLS only for a relay on this host)",
                                s.id.value
                            ),
                        ));
                    }
                    SinkKind::Smtp {
                        host: s.host.unwrap_or_default(),
                        port: s.port,
                        starttls: s.starttls,
                        username_env: s.username_env,
                        password_env: s.password_env,
                        from: s.from.unwrap_or_default(),
                        to: s.to,
                    }
                }
                other => {
                    errors.push(
                        Diagnostic::new(
                            at(&s.kind.referenced),
                            format!(
                                "sink `{}`: unknown kind `{other}` (webhook or smtp)",
                                s.id.value
                            ),
                        )
                        .code(crate::diagnostic::Code::UnknownReference),
                    );
                    continue;
                }
            };
            let env_names: Vec<&String> = match &kind {
                SinkKind::Webhook { url_env, .. } => vec![url_env],
                SinkKind::Smtp {
                    username_env,
                    password_env,
                    ..
                } => username_env.iter().chain(password_env.iter()).collect(),
            };
            for name in env_names {
                let valid = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_');
                if !valid {
                    // The value is not echoed: what was pasted here may be the secret itself.
                    errors.push(Diagnostic::new(
                        location.clone(),
                        format!(
                            "sink `{}`: a secret field holds something that is not an environment variable name (value not shown); secrets come from the environment: name the variable, e.g. REFOPT_SLACK_WEBHOOK_URL",
                            s.id.value
                        ),
                    ).code(crate::diagnostic::Code::Secret));
                }
            }
            sinks.push(Sink {
                id: s.id.value,
                kind,
                events: s.events.into_iter().map(|e| e.value).collect(),
                owners: s.owners,
                min_escalation_level: s.min_escalation_level,
                location,
            });
        }
        let retry = raw
            .retry
            .as_ref()
            .map(|r| crate::pipeline::RetryPolicy::check(r, file, &mut errors))
            .unwrap_or_default();
        if errors.is_empty() {
            Ok(Notifications {
                file: file.to_path_buf(),
                retry,
                sinks,
            })
        } else {
            Err(Diagnostics(errors))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("refopt-dist-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join(name);
        std::fs::write(&file, text).unwrap();
        file
    }

    #[test]
    fn sinks_load_and_bad_events_and_secrets_are_located() {
        let ok = write(
            "n.yaml",
            "version: 1\nsinks:\n  - id: hook\n    kind: webhook\n    format: slack\n    url_env: HOOK_URL\n    events: [escalation, rip_cord]\n",
        );
        let n = Notifications::load(&ok).unwrap();
        assert_eq!(n.retry.limit, 2);
        assert!(n.sinks[0].events.contains("rip_cord"));
        let bad = write(
            "bad.yaml",
            "version: 1\nsinks:\n  - id: hook\n    kind: webhook\n    url_env: https://hooks.example/T0/secret\n    events: [escalations]\n",
        );
        let err = Notifications::load(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.yaml:6:14: sink `hook`: unknown event `escalations` (did you mean `escalation`?)"), "{err}");
        assert!(
            err.contains("not an environment variable name (value not shown)"),
            "{err}"
        );
        assert!(
            !err.contains("T0/secret"),
            "the pasted URL is not echoed: {err}"
        );
    }
}
