//! Getting a plan to people: notifications after a run, and the approval lifecycle
//! (`refopt plan approve|reject|audit`).

use anyhow::bail;
use chrono::{SecondsFormat, Utc};
use refopt_engine::distribution::approvals::{approval_blockers, standing};
use refopt_engine::distribution::notify::{self, Delivery, Event, PlanRef};
use refopt_plan::{AcknowledgementRecord, ApprovalRecord, Plan, PlanStore, StoredPlan};
use refopt_spec::RuleSet;

use crate::args::{AckArgs, DecisionArgs, Output, PlanStoreArgs};
use crate::progress::json_logs;

/// Reports deliveries on stderr (or as JSON log lines).
pub fn report(deliveries: &[Delivery]) {
    // Unconfigured sinks: one line per sink, not one per event.
    let mut unconfigured: std::collections::BTreeMap<&str, (usize, &str)> = Default::default();
    for d in deliveries.iter().filter(|d| d.status == "not_configured") {
        let why = d.attempts.last().map(|a| a.outcome.as_str()).unwrap_or("");
        unconfigured.entry(d.sink.as_str()).or_insert((0, why)).0 += 1;
    }
    for (sink, (events, why)) in unconfigured {
        if json_logs() {
            tracing::info!(
                sink,
                events,
                reason = why,
                "notification sink not configured"
            );
        } else {
            eprintln!(
                "notifications: sink {sink} not configured ({why}); {events} event(s) not sent"
            );
        }
    }
    for d in deliveries.iter().filter(|d| d.status != "not_configured") {
        let attempts = d.attempts.iter().filter(|a| a.attempt > 0).count();
        let last = d.attempts.last().map(|a| a.outcome.as_str()).unwrap_or("");
        if json_logs() {
            if d.status == "failed" {
                tracing::warn!(event = %d.event, sink = %d.sink, status = %d.status, attempts, error = last, "notification");
            } else {
                tracing::info!(event = %d.event, sink = %d.sink, status = %d.status, attempts, "notification");
            }
            continue;
        }
        match d.status.as_str() {
            "dry_run" => eprintln!(
                "notification (dry run): would send {} to {}",
                d.event, d.sink
            ),
            "already_delivered" => {
                eprintln!(
                    "notification: {} to {} was already delivered",
                    d.event, d.sink
                )
            }
            "failed" => eprintln!(
                "warning: notification {} to {} FAILED after {attempts} attempts: {last}",
                d.event, d.sink
            ),
            _ => eprintln!(
                "notification: {} delivered to {} (attempt {attempts})",
                d.event, d.sink
            ),
        }
    }
}

/// Sends a stored plan's events (idempotent per plan version).
pub async fn notify_plan(
    rules: &RuleSet,
    plan: &Plan,
    stored: Option<(&PlanStore, &StoredPlan)>,
    report_url: Option<&str>,
    dry_run: bool,
) {
    let Some(config) = &rules.notifications else {
        return;
    };
    let events = notify::plan_events(plan, rules.ladder.as_ref());
    let (store, version, url) = match stored {
        Some((s, p)) => (Some(s), p.version, p.url.as_str()),
        None => (None, 0, "(not stored)"),
    };
    let plan_ref = PlanRef {
        pipeline: &plan.pipeline.name,
        version,
        url,
        run_id: &plan.run_id,
        report_url,
    };
    let deliveries = notify::deliver(
        config,
        &events,
        &plan_ref,
        store,
        dry_run || store.is_none(),
    )
    .await;
    report(&deliveries);
}

/// Tells the `run_failed` sinks that a run failed (no plan exists to record it in).
pub async fn notify_failure(
    rules: &RuleSet,
    pipeline: &str,
    as_of: &str,
    error: &str,
    dry_run: bool,
) {
    let Some(config) = &rules.notifications else {
        return;
    };
    let event = Event {
        id: format!("run_failed:{pipeline}:{as_of}"),
        kind: "run_failed",
        level: None,
        owners: Vec::new(),
        title: format!("refopt run of {pipeline} (as of {as_of}) failed"),
        text: error.to_string(),
    };
    let plan_ref = PlanRef {
        pipeline,
        version: 0,
        url: "(no plan written)",
        run_id: "",
        report_url: None,
    };
    report(&notify::deliver(config, &[event], &plan_ref, None, dry_run).await);
}

/// `refopt plan ack`: records an acknowledgement of an open escalation episode of the latest
/// plan.
pub async fn acknowledge(args: AckArgs) -> anyhow::Result<()> {
    let by = args.by.trim();
    if by.is_empty() {
        bail!("--by must name who acknowledges");
    }
    let (store, plans) = crate::plan_cmd::open(&args.store).await?;
    let stored = crate::plan_cmd::pick(&plans, "latest")?;
    let plan = crate::plan_cmd::read(&store, stored).await?;
    let Some(escalation) = plan.escalations.iter().find(|e| e.trigger == args.trigger) else {
        let open: Vec<&str> = plan
            .escalations
            .iter()
            .map(|e| e.trigger.as_str())
            .collect();
        bail!(
            "no open escalation `{}` in {} (open: {})",
            args.trigger,
            stored.url,
            if open.is_empty() {
                "none".to_string()
            } else {
                open.join(", ")
            }
        );
    };
    let record = AcknowledgementRecord {
        pipeline: plan.pipeline.name.clone(),
        trigger: escalation.trigger.clone(),
        episode_opened: escalation.episode_opened.clone(),
        level: escalation.level,
        by: by.to_string(),
        note: args.note.clone(),
        at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
        plan_version: stored.version,
    };
    let key = format!("{}\n{}", record.trigger, record.episode_opened);
    let name = format!(
        "ack-{}.json",
        &refopt_engine::config_hash::sha256_hex(key.as_bytes())[..16]
    );
    let created = store
        .write_series_record(
            &plan.pipeline.name,
            refopt_engine::run::ACKS_FOLDER,
            &name,
            &record,
        )
        .await?;
    if created {
        println!(
            "{} (episode opened {}) acknowledged by {by} at level {} ({}): it stays there until it recovers",
            record.trigger, record.episode_opened, record.level, escalation.role
        );
    } else {
        println!(
            "{} (episode opened {}) was already acknowledged; nothing recorded",
            record.trigger, record.episode_opened
        );
    }
    Ok(())
}

/// `refopt plan approve` and `refopt plan reject`.
pub async fn decide(args: DecisionArgs, approve: bool) -> anyhow::Result<()> {
    let rules = crate::defaults::load_rules(args.rules.as_deref(), &Default::default())
        .await?
        .rules;
    let (store, plans) = crate::plan_cmd::open(&args.store).await?;
    let stored = crate::plan_cmd::pick(&plans, &args.which)?;
    let bytes = store
        .read_bytes(stored)
        .await
        .map_err(refopt_engine::EngineError::from)?;
    let plan = crate::plan_cmd::decode(stored, &bytes)?;
    let sha = refopt_engine::config_hash::sha256_hex(&bytes);
    if approve {
        let latest = plans.last().map_or(0, |p| p.version);
        let blockers = approval_blockers(&plan, stored, latest, rules.approvals.as_ref());
        if !blockers.is_empty() {
            bail!(
                "approval of {} refused:\n  - {}",
                stored.url,
                blockers.join("\n  - ")
            );
        }
    }
    let by = args.by.trim();
    if by.is_empty() {
        bail!("--by must name who decides");
    }
    let record = ApprovalRecord {
        decision: if approve { "approved" } else { "rejected" }.into(),
        pipeline: plan.pipeline.name.clone(),
        plan_version: stored.version,
        plan_url: stored.url.clone(),
        plan_sha256: sha.clone(),
        plan_run_id: plan.run_id.clone(),
        by: by.to_string(),
        role: args.role.clone(),
        note: args.note.clone(),
        at: Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true),
    };
    let safe = |s: &str| {
        s.chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect::<String>()
    };
    // The readable part may map different names to one (`李雷` and `王芳`, `Dana Smith` and
    // `Dana_Smith`); the hash of the exact name and role keeps each decider's record apart.
    let role = args.role.as_deref().unwrap_or("any");
    let who = refopt_engine::config_hash::sha256_hex(format!("{by}\0{role}").as_bytes());
    let name = format!(
        "{}-{}-{}-{}-{}.json",
        if approve { "approval" } else { "rejection" },
        &sha[..12],
        safe(by).chars().take(40).collect::<String>(),
        safe(role).chars().take(40).collect::<String>(),
        &who[..16]
    );
    let created = store
        .write_audit(&plan.pipeline.name, stored.version, &name, &record)
        .await?;
    let verb = if approve { "approved" } else { "rejected" };
    if created {
        println!(
            "plan v{} {verb} by {by}{} (sha256 {})",
            stored.version,
            args.role
                .as_deref()
                .map(|r| format!(" as {r}"))
                .unwrap_or_default(),
            &sha[..12]
        );
    } else {
        println!(
            "plan v{} was already {verb} by {by}{}; nothing recorded",
            stored.version,
            args.role
                .as_deref()
                .map(|r| format!(" as {r}"))
                .unwrap_or_default()
        );
    }
    let standing = standing(&store, &plan, stored, &sha, rules.approvals.as_ref()).await?;
    let state = standing.state();
    println!("state: {state}");
    let event_kind = match state.as_str() {
        "approved" => Some("plan_approved"),
        "rejected" => Some("plan_rejected"),
        _ => None,
    };
    if let (Some(kind), Some(config)) = (event_kind, &rules.notifications) {
        let event = Event {
            id: kind.to_string(),
            kind,
            level: None,
            owners: standing
                .approvals
                .iter()
                .filter_map(|a| a.role.clone())
                .collect(),
            title: format!("Plan v{} of {} {state}", stored.version, plan.pipeline.name),
            text: format!(
                "{verb} by {by}{}",
                args.note
                    .as_deref()
                    .map(|n| format!(": {n}"))
                    .unwrap_or_default()
            ),
        };
        let plan_ref = PlanRef {
            pipeline: &plan.pipeline.name,
            version: stored.version,
            url: &stored.url,
            run_id: &plan.run_id,
            report_url: None,
        };
        report(&notify::deliver(config, &[event], &plan_ref, Some(&store), args.dry_run).await);
    }
    Ok(())
}

/// `refopt plan audit`.
pub async fn audit(
    which: &str,
    output: Output,
    rules: Option<&str>,
    args: &PlanStoreArgs,
) -> anyhow::Result<()> {
    let rules = crate::defaults::load_rules(rules, &Default::default())
        .await?
        .rules;
    let (store, plans) = crate::plan_cmd::open(args).await?;
    let stored = crate::plan_cmd::pick(&plans, which)?;
    let bytes = store
        .read_bytes(stored)
        .await
        .map_err(refopt_engine::EngineError::from)?;
    let plan = crate::plan_cmd::decode(stored, &bytes)?;
    let sha = refopt_engine::config_hash::sha256_hex(&bytes);
    let s = standing(&store, &plan, stored, &sha, rules.approvals.as_ref()).await?;
    if output == Output::Json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "plan_version": stored.version,
                "plan_sha256": sha,
                "state": s.state(),
                "required_roles": s.required.iter().map(|(r, ok)| serde_json::json!({"role": r, "signed": ok})).collect::<Vec<_>>(),
                "approvals": s.approvals,
                "rejections": s.rejections,
                "deliveries": s.deliveries,
            }))?
        );
        return Ok(());
    }
    println!("plan v{} ({}) sha256 {}", stored.version, stored.url, sha);
    println!("state: {}", s.state());
    for (role, ok) in &s.required {
        println!("  sign-off {role}: {}", if *ok { "yes" } else { "missing" });
    }
    for r in s.approvals.iter().chain(&s.rejections) {
        println!(
            "  {} {} by {}{}{}",
            r.at,
            r.decision,
            r.by,
            r.role
                .as_deref()
                .map(|x| format!(" as {x}"))
                .unwrap_or_default(),
            r.note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default()
        );
    }
    for d in &s.deliveries {
        println!(
            "  notification {} -> {}: {} after {} attempt(s)",
            d.event,
            d.sink,
            d.status,
            d.attempts.len()
        );
    }
    Ok(())
}
