//! Notifications: a plan's events (alerts, escalations, the rip-cord, approvals) routed to the
//! sinks of `rules/notifications.yaml` (webhooks, SMTP), delivered at most once per event per
//! plan version, retried with backoff, and every attempt recorded in the plan's audit trail.
//!
//! Idempotency: a delivered event leaves `delivery-<sink>-<event hash>.json` (create-only) in
//! the audit folder; a later run, retry or rerun for the same plan version finds it and sends
//! nothing. Failed runs of attempts leave `...-failed-<run id>.json` and are tried again next
//! time. Secrets come from the environment variables the YAML names and never appear in
//! records, logs or errors.

use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use refopt_plan::{DeliveryAttempt, DeliveryRecord, Plan, PlanStore, Transition};
use refopt_spec::alerts::Ladder;
use refopt_spec::distribution::{Notifications, Sink, SinkKind, WebhookFormat};

use crate::config_hash::sha256_hex;

/// Something worth telling people about.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Stable within a plan version, e.g. `escalation:alert:won_rate:all:level2`.
    pub id: String,
    /// One of `refopt_spec::distribution::EVENT_KINDS`.
    pub kind: &'static str,
    /// Ladder level for escalations and the rip-cord.
    pub level: Option<u32>,
    /// Owners the event is addressed to (routing).
    pub owners: Vec<String>,
    pub title: String,
    pub text: String,
}

/// The events of a stored plan: alerts, escalations (an episode's rip-cord or a rung up) and,
/// with the rip-cord, a message to every ladder level's owner and fallback.
pub fn plan_events(plan: &Plan, ladder: Option<&Ladder>) -> Vec<Event> {
    let mut events = Vec::new();
    for a in &plan.alerts {
        events.push(Event {
            id: format!("alert:{}:{}:{}:{}", a.id, a.dimension, a.value, a.level),
            kind: if a.level == refopt_plan::AlertLevel::Critical {
                "alert_critical"
            } else {
                "alert_warn"
            },
            level: None,
            owners: vec![a.owner.clone()],
            title: format!("[{}] {} ({} {})", a.level, a.id, a.dimension, a.value),
            text: a.message.clone(),
        });
    }
    // Escalations are announced when an episode pulls the rip-cord or climbs a rung, once per
    // episode and level (a rerun of the date does not announce again).
    for episode in &plan.escalation_state.episodes {
        if !episode.announce
            || !matches!(
                episode.transition,
                Transition::RipCord | Transition::Advanced
            )
        {
            continue;
        }
        let Some(e) = plan
            .escalations
            .iter()
            .find(|e| e.trigger == episode.trigger)
        else {
            continue;
        };
        events.push(Event {
            id: format!(
                "escalation:{}:{}:level{}",
                e.trigger, e.episode_opened, e.level
            ),
            kind: "escalation",
            level: Some(e.level),
            owners: vec![e.owner.clone(), e.fallback_owner.clone()],
            title: format!("Escalation level {} ({}): {}", e.level, e.role, e.trigger),
            text: e.reason.clone(),
        });
        if episode.transition == Transition::RipCord {
            let mut owners: Vec<String> = ladder
                .map(|l| l.owners().map(String::from).collect())
                .unwrap_or_default();
            if let Some(l) = ladder {
                owners.push(l.triggers.fraud_spike.owner.clone());
            }
            owners.sort();
            owners.dedup();
            events.push(Event {
                id: format!("rip_cord:{}:{}", e.trigger, e.episode_opened),
                kind: "rip_cord",
                level: Some(e.level),
                owners,
                title: format!("Rip-cord: {} ({})", plan.pipeline.name, e.trigger),
                text: e.reason.clone(),
            });
        }
    }
    events
}

/// Whether `sink` takes `event`.
pub fn routes_to(sink: &Sink, event: &Event) -> bool {
    // The rip-cord goes to every subscribed sink whatever the level (a fraud spike pulls it
    // at level 1).
    sink.events.contains(event.kind)
        && (event.kind == "rip_cord" || event.level.is_none_or(|l| l >= sink.min_escalation_level))
        && (sink.owners.is_empty() || sink.owners.iter().any(|o| event.owners.contains(o)))
}

/// Where and what a plan version is.
#[derive(Debug, Clone)]
pub struct PlanRef<'a> {
    pub pipeline: &'a str,
    pub version: u64,
    pub url: &'a str,
    pub run_id: &'a str,
    /// The HTML report written beside the plan by this run, if any.
    pub report_url: Option<&'a str>,
}

/// What happened to one (event, sink) pair.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub event: String,
    pub sink: String,
    /// `delivered`, `failed`, `already_delivered`, `not_configured` or `dry_run`.
    pub status: String,
    pub attempts: Vec<DeliveryAttempt>,
}

fn record_name(sink: &str, event: &str) -> String {
    format!(
        "delivery-{sink}-{}.json",
        &sha256_hex(event.as_bytes())[..16]
    )
}

/// Delivers every routed event once. With `dry_run`, nothing is sent or recorded. `store` is
/// where the audit trail goes (None: nothing recorded, e.g. a run without a plan store).
pub async fn deliver(
    config: &Notifications,
    events: &[Event],
    plan: &PlanRef<'_>,
    store: Option<&PlanStore>,
    dry_run: bool,
) -> Vec<Delivery> {
    // The audit trail is read only when something may be sent (no storage traffic when every
    // routed sink is unconfigured).
    let mut recorded: Option<Vec<String>> = None;
    let mut out = Vec::new();
    for event in events {
        for sink in config.sinks.iter().filter(|s| routes_to(s, event)) {
            let name = record_name(&sink.id, &event.id);
            let mut delivery = Delivery {
                event: event.id.clone(),
                sink: sink.id.clone(),
                status: String::new(),
                attempts: Vec::new(),
            };
            let target = match resolve_target(sink) {
                Ok(t) => t,
                Err(why) => {
                    delivery.status = "not_configured".into();
                    delivery.attempts.push(DeliveryAttempt {
                        attempt: 0,
                        at: now(),
                        outcome: why,
                    });
                    out.push(delivery);
                    continue;
                }
            };
            if recorded.is_none() {
                recorded = Some(match store {
                    Some(s) => match s.read_audit(plan.pipeline, plan.version).await {
                        Ok(r) => r.into_iter().map(|(name, _)| name).collect(),
                        Err(e) => {
                            // Without the trail we cannot tell what was sent: send nothing.
                            delivery.status = "failed".into();
                            delivery.attempts.push(DeliveryAttempt {
                                attempt: 0,
                                at: now(),
                                outcome: format!("audit trail unreadable, nothing sent: {e}"),
                            });
                            out.push(delivery);
                            return out;
                        }
                    },
                    None => Vec::new(),
                });
            }
            if recorded.as_ref().is_some_and(|r| r.contains(&name)) {
                delivery.status = "already_delivered".into();
                out.push(delivery);
                continue;
            }
            if dry_run {
                delivery.status = "dry_run".into();
                out.push(delivery);
                continue;
            }
            for attempt in 1..=config.retry.limit + 1 {
                let result = send(&target, event, plan).await;
                delivery.attempts.push(DeliveryAttempt {
                    attempt,
                    at: now(),
                    outcome: match &result {
                        Ok(()) => "delivered".into(),
                        Err(e) => e.clone(),
                    },
                });
                if result.is_ok() {
                    break;
                }
                if attempt <= config.retry.limit {
                    tokio::time::sleep(refopt_plan::backoff(
                        std::time::Duration::from_millis(config.retry.backoff_ms),
                        attempt,
                    ))
                    .await;
                }
            }
            let delivered = delivery
                .attempts
                .last()
                .is_some_and(|a| a.outcome == "delivered");
            delivery.status = if delivered { "delivered" } else { "failed" }.into();
            if let Some(store) = store {
                let record = DeliveryRecord {
                    pipeline: plan.pipeline.to_string(),
                    plan_version: plan.version,
                    event: event.id.clone(),
                    event_kind: event.kind.to_string(),
                    sink: sink.id.clone(),
                    status: delivery.status.clone(),
                    attempts: delivery.attempts.clone(),
                    run_id: plan.run_id.to_string(),
                };
                let file = if delivered {
                    name.clone()
                } else {
                    name.replace(
                        ".json",
                        &format!(
                            "-failed-{}.json",
                            sha256_hex(now().as_bytes()).get(..8).unwrap_or("0")
                        ),
                    )
                };
                let mut written = false;
                for _ in 0..=config.retry.limit {
                    match store
                        .write_audit(plan.pipeline, plan.version, &file, &record)
                        .await
                    {
                        Ok(_) => {
                            written = true;
                            break;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "could not record a notification delivery; retrying")
                        }
                    }
                }
                if !written {
                    tracing::error!(event = %event.id, sink = %sink.id, "delivery not recorded: a later run may send it again");
                }
            }
            out.push(delivery);
        }
    }
    out
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A sink with its secrets read from the environment.
enum Target {
    Webhook {
        url: String,
        format: WebhookFormat,
    },
    Smtp {
        transport: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
        to: Vec<Mailbox>,
    },
}

fn env(name: &str) -> Result<String, String> {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
        .ok_or_else(|| format!("${name} is not set"))
}

fn resolve_target(sink: &Sink) -> Result<Target, String> {
    match &sink.kind {
        SinkKind::Webhook { url_env, format } => Ok(Target::Webhook {
            url: env(url_env)?,
            format: *format,
        }),
        SinkKind::Smtp {
            host,
            port,
            starttls,
            username_env,
            password_env,
            from,
            to,
        } => {
            let builder = if *starttls {
                AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                    .map_err(|e| format!("smtp {host}: {e}"))?
            } else {
                AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
            };
            let mut builder = builder.port(*port).timeout(Some(Duration::from_secs(10)));
            if let (Some(user), Some(pass)) = (username_env, password_env) {
                builder = builder.credentials(Credentials::new(env(user)?, env(pass)?));
            }
            let parse = |a: &String| {
                a.parse::<Mailbox>()
                    .map_err(|e| format!("address `{a}`: {e}"))
            };
            Ok(Target::Smtp {
                transport: Box::new(builder.build()),
                from: parse(from)?,
                to: to.iter().map(parse).collect::<Result<_, _>>()?,
            })
        }
    }
}

/// The JSON body of a webhook.
pub fn webhook_body(format: WebhookFormat, event: &Event, plan: &PlanRef<'_>) -> serde_json::Value {
    match format {
        WebhookFormat::Json => serde_json::json!({
            "event": event.id,
            "kind": event.kind,
            "level": event.level,
            "owners": event.owners,
            "title": event.title,
            "text": event.text,
            "pipeline": plan.pipeline,
            "plan_version": plan.version,
            "plan_url": plan.url,
            "report_url": plan.report_url,
        }),
        WebhookFormat::Slack => serde_json::json!({
            "text": format!(
                "*{}*\n{}\n<{}|plan v{}>{}",
                slack_escape(&event.title),
                slack_escape(&event.text),
                slack_escape(plan.url),
                plan.version,
                plan.report_url
                    .map(|r| format!(" · <{}|report>", slack_escape(r)))
                    .unwrap_or_default()
            ),
        }),
    }
}

/// Text for Slack's `mrkdwn`: `&`, `<` and `>` escaped as Slack asks, so a value from the data
/// cannot become a mention (`<!channel>`), a link (`<https://x|Open>`) or a user reference.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

async fn send(target: &Target, event: &Event, plan: &PlanRef<'_>) -> Result<(), String> {
    match target {
        Target::Webhook { url, format } => {
            let response = reqwest::Client::new()
                .post(url)
                .timeout(Duration::from_secs(10))
                .header("content-type", "application/json")
                .header(
                    "idempotency-key",
                    format!("{}:v{}:{}", plan.pipeline, plan.version, event.id),
                )
                .body(webhook_body(*format, event, plan).to_string())
                .send()
                .await
                // The URL carries the webhook's token: never in an error.
                .map_err(|e| format!("webhook request failed: {}", e.without_url()))?;
            let status = response.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("webhook answered HTTP {status}"))
            }
        }
        Target::Smtp {
            transport,
            from,
            to,
        } => {
            let mut message = Message::builder().from(from.clone()).subject(&event.title);
            for t in to {
                message = message.to(t.clone());
            }
            let message = message
                .body(format!(
                    "{}\n\nPlan: {} (v{})\n{}",
                    event.text,
                    plan.url,
                    plan.version,
                    plan.report_url
                        .map(|r| format!("Report: {r}\n"))
                        .unwrap_or_default()
                ))
                .map_err(|e| format!("email: {e}"))?;
            transport
                .send(message)
                .await
                .map(|_| ())
                .map_err(|e| format!("smtp: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slack_text_from_data_cannot_mention_or_link() {
        let event = Event {
            id: "alert:x".into(),
            kind: "alert",
            level: None,
            owners: vec![],
            title: "channel <!channel> & co".into(),
            text: "value <https://evil.example|Open the plan> <@U123>".into(),
        };
        let plan = PlanRef {
            pipeline: "p",
            version: 3,
            url: "file:///plans/p/plan-v000003.json",
            run_id: "r",
            report_url: None,
        };
        let body = webhook_body(WebhookFormat::Slack, &event, &plan);
        let text = body["text"].as_str().unwrap();
        assert!(
            !text.contains("<!channel>") && !text.contains("<https://evil"),
            "{text}"
        );
        assert!(!text.contains("<@U123>"), "{text}");
        assert!(text.contains("&lt;!channel&gt; &amp; co"), "{text}");
        // refopt's own link to the plan stays a link.
        assert!(
            text.contains("<file:///plans/p/plan-v000003.json|plan v3>"),
            "{text}"
        );
    }
    use std::collections::BTreeSet;

    fn sink(events: &[&str], owners: &[&str], min_level: u32) -> Sink {
        Sink {
            id: "s".into(),
            kind: SinkKind::Webhook {
                format: WebhookFormat::Json,
                url_env: "X".into(),
            },
            events: events
                .iter()
                .map(|e| e.to_string())
                .collect::<BTreeSet<_>>(),
            owners: owners.iter().map(|o| o.to_string()).collect(),
            min_escalation_level: min_level,
            location: refopt_spec::Location::file_start(std::path::Path::new("n.yaml")),
        }
    }

    fn event(kind: &'static str, level: Option<u32>, owner: &str) -> Event {
        Event {
            id: "e".into(),
            kind,
            level,
            owners: vec![owner.into()],
            title: String::new(),
            text: String::new(),
        }
    }

    #[test]
    fn routing_by_event_level_and_owner() {
        let s = sink(&["escalation"], &["partner-ops"], 2);
        assert!(routes_to(&s, &event("escalation", Some(2), "partner-ops")));
        assert!(!routes_to(&s, &event("escalation", Some(1), "partner-ops")));
        assert!(!routes_to(
            &s,
            &event("escalation", Some(3), "exec-sponsor")
        ));
        assert!(!routes_to(&s, &event("alert_warn", None, "partner-ops")));
        // The rip-cord reaches a subscribed sink whatever its minimum level.
        let exec = sink(&["rip_cord"], &["exec-sponsor"], 3);
        assert!(routes_to(
            &exec,
            &event("rip_cord", Some(1), "exec-sponsor")
        ));
    }
}
