//! `refopt backfill` and `refopt backtest`: many windows over historical data.

use std::sync::Mutex;

use anyhow::Context;
use chrono::NaiveDate;
use indicatif::ProgressBar;
use refopt_engine::EngineError;
use refopt_engine::run::backfill::{self, WindowObserver, WindowResult};

use crate::args::{BackfillArgs, BacktestArgs, Output, RangeArgs};
use crate::progress::{json_logs, window_bar};

/// Windows done / total with an ETA on a terminal; one line per window otherwise.
struct WindowProgress {
    bar: Option<ProgressBar>,
    verb: &'static str,
    /// Rows in the finished windows' days (shown on the bar).
    rows: Mutex<u64>,
}

impl WindowProgress {
    fn new(total: usize, verb: &'static str) -> Self {
        Self {
            bar: if json_logs() {
                None
            } else {
                window_bar(total as u64)
            },
            verb,
            rows: Mutex::new(0),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

#[async_trait::async_trait]
impl WindowObserver for WindowProgress {
    /// Each window's report goes beside its plan, like a run's (a failure is a warning).
    async fn plan_written(&self, outcome: &refopt_engine::RunOutcome) {
        if let Some(stored) = &outcome.stored {
            crate::interrupt::plan_written(&stored.url);
        }
        if let Some(Err(e)) = crate::report::write_for(outcome).await {
            let line = format!(
                "warning: report of window as_of {} not written ({e}); re-render it with `refopt report`",
                outcome.plan.inputs.as_of
            );
            match &self.bar {
                _ if json_logs() => tracing::warn!(error = %e, "report not written"),
                Some(b) => b.println(line),
                None => eprintln!("{line}"),
            }
        }
    }

    fn window_started(&self, as_of: NaiveDate, _index: usize, _total: usize) {
        if let Some(b) = &self.bar {
            let rows = *self.rows.lock().unwrap_or_else(|e| e.into_inner());
            b.set_message(format!(
                "rows in windows {} | as_of {as_of}",
                refopt_report::format::count(rows as f64)
            ));
        }
    }

    fn window_finished(&self, r: &WindowResult, index: usize, total: usize) {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        *rows += r.window_rows;
        let state = if r.unchanged {
            match self.verb {
                "backtest" => "no change",
                _ => "skipped (plan with the same inputs exists)",
            }
        } else {
            match self.verb {
                "backtest" => "CHANGED",
                _ => "written",
            }
        };
        if json_logs() {
            tracing::info!(
                as_of = %r.as_of, window = index + 1, total, state,
                version = r.version, findings = r.findings, escalations = r.escalations,
                window_rows = r.window_rows, window_rows_total = *rows,
                plan = r.url.as_deref().unwrap_or_default(), "window finished"
            );
            return;
        }
        let line = format!(
            "window {}/{} as_of {}: {state}{}; {} findings, {} escalations, {} rows",
            index + 1,
            total,
            r.as_of,
            r.url
                .as_ref()
                .map(|u| format!(" v{} {u}", r.version))
                .unwrap_or_default(),
            r.findings,
            r.escalations,
            refopt_report::format::count(r.window_rows as f64)
        );
        match &self.bar {
            Some(b) => {
                b.println(line);
                b.inc(1);
            }
            None => eprintln!("{line}"),
        }
    }

    fn window_failed(&self, as_of: NaiveDate, error: &EngineError) {
        if json_logs() {
            tracing::error!(as_of = %as_of, error = %error, "window failed");
        } else {
            let line = format!("window as_of {as_of}: FAILED: {error}");
            match &self.bar {
                Some(b) => b.println(line),
                None => eprintln!("{line}"),
            }
        }
    }
}

fn dates(range: &RangeArgs) -> anyhow::Result<Vec<NaiveDate>> {
    let from = crate::parse_date("--from", &range.from)?;
    let to = crate::parse_date("--to", &range.to)?;
    let step = range
        .step
        .strip_suffix('d')
        .and_then(|n| n.parse::<u32>().ok())
        .ok_or_else(|| {
            EngineError::Parameter(format!(
                "--step `{}`: expected a number of days such as 1d, 7d or 30d",
                range.step
            ))
        })?;
    Ok(backfill::as_of_dates(from, to, step)?)
}

/// `refopt backfill`.
pub async fn run_backfill(args: BackfillArgs) -> anyhow::Result<()> {
    let file = crate::pipeline_file(&args.pipeline, args.pipelines_dir.as_deref())?;
    let pipeline = crate::load_pipeline(&file)?;
    let dates = dates(&args.range)?;
    let plans = args
        .plans
        .clone()
        .unwrap_or_else(|| crate::default_plans_root(&args.root));
    let mut request = crate::build_request(
        (pipeline, &file),
        args.root.clone(),
        Some(plans),
        dates[0],
        &args.analysis,
    )
    .await?;
    request.force = args.force;
    let progress = WindowProgress::new(dates.len(), "backfill");
    let started = std::time::Instant::now();
    let results = backfill::backfill(
        &request,
        &dates,
        usize::from(args.concurrent_windows),
        &progress,
    )
    .await;
    progress.finish();
    let results = results?;
    let written = results.iter().filter(|r| !r.unchanged).count();
    if args.analysis.output == Output::Json {
        let rows: Vec<serde_json::Value> = results
            .iter()
            .map(|r| {
                serde_json::json!({
                    "as_of": r.as_of.to_string(), "skipped": r.unchanged, "version": r.version,
                    "plan": r.url, "findings": r.findings, "escalations": r.escalations,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
    }
    let summary = format!(
        "backfill done: {} windows, {written} written, {} skipped as unchanged, in {:.1}s",
        results.len(),
        results.len() - written,
        started.elapsed().as_secs_f64()
    );
    if json_logs() {
        tracing::info!(windows = results.len(), written, "backfill done");
    } else {
        eprintln!("{summary}");
    }
    Ok(())
}

/// `refopt backtest`.
pub async fn run_backtest(args: BacktestArgs) -> anyhow::Result<()> {
    let file = crate::pipeline_file(&args.pipeline, args.pipelines_dir.as_deref())?;
    let pipeline = crate::load_pipeline(&file)?;
    let dates = dates(&args.range)?;
    let request = crate::build_request(
        (pipeline, &file),
        args.root.clone(),
        None,
        dates[0],
        &args.analysis,
    )
    .await?;
    let new_rules =
        refopt_engine::rules::source::load_rules_with(&args.new_rules, &request.storage)
            .await
            .with_context(|| format!("loading --new-rules {}", args.new_rules))?;
    let progress = WindowProgress::new(dates.len(), "backtest");
    let changes = backfill::backtest(
        &request,
        (&request.rules, &request.rules_source),
        (&new_rules.rules, &new_rules.source),
        &dates,
        &progress,
    )
    .await;
    progress.finish();
    let changes = changes?;
    if args.analysis.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&changes)?);
        return Ok(());
    }
    let changed: Vec<_> = changes.iter().filter(|c| c.changed).collect();
    println!(
        "{} of {} windows change with {} (vs {}):",
        changed.len(),
        changes.len(),
        new_rules.source,
        request.rules_source
    );
    for c in &changes {
        if !c.changed {
            println!("  {}  no change", c.as_of);
            continue;
        }
        println!(
            "  {}  flagged referrals {} -> {}",
            c.as_of, c.flagged_referrals[0], c.flagged_referrals[1]
        );
        let lists = [
            ("findings +", &c.findings_gained),
            ("findings -", &c.findings_lost),
            ("findings ~", &c.findings_changed),
            ("alerts +", &c.alerts_gained),
            ("alerts -", &c.alerts_lost),
            ("escalations +", &c.escalations_gained),
            ("escalations -", &c.escalations_lost),
            ("backlog +", &c.backlog_gained),
            ("backlog -", &c.backlog_lost),
        ];
        for (label, items) in lists {
            for item in items {
                println!("      {label} {item}");
            }
        }
    }
    Ok(())
}
