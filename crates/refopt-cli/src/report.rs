//! `refopt report`: renders the dashboard snapshot of a stored plan again, and the lines a run
//! prints about the snapshot it wrote beside its plan.

use anyhow::{Context, anyhow};
use refopt_engine::{EngineError, RunOutcome};
use refopt_plan::{Detail, Plan};
use refopt_report::StoredReport;

use crate::args::{self, PlanStoreArgs, ReportArgs, ReportFormat};
use crate::plan_cmd;
use crate::progress;

pub async fn run(args: ReportArgs) -> anyhow::Result<()> {
    let (root, series, file) = split_plan_url(&args.plan)?;
    let version = refopt_plan::plan_version(file).ok_or_else(|| {
        EngineError::Parameter(format!(
            "{}: not a stored plan (expected a file named plan-v<N>.json)",
            args.plan
        ))
    })?;
    // The plan's folder is a plan series: its root and folder name are a plans root and a
    // "pipeline" to `refopt plan`.
    let (store, listed) = plan_cmd::open(&PlanStoreArgs {
        plans: root.to_string(),
        pipeline: series.to_string(),
    })
    .await?;
    let stored = listed
        .iter()
        .find(|p| p.version == version)
        .ok_or_else(|| EngineError::Parameter(format!("{}: no such plan", args.plan)))?;
    let plan = plan_cmd::read(&store, stored).await?;
    // Earlier versions of the same series, newest first, as many as a run reads; unreadable
    // ones are skipped.
    let mut history: Vec<Plan> = Vec::new();
    for earlier in listed
        .iter()
        .rev()
        .filter(|p| p.version < version)
        .take(refopt_engine::PREVIOUS_PLANS)
    {
        if let Ok(p) = store.read(earlier).await {
            history.push(p);
        }
    }
    let detail = match args.detail {
        Some(args::Detail::Summary) => Detail::Summary,
        Some(args::Detail::Full) => Detail::Full,
        None => plan.inputs.detail,
    };
    let report = refopt_report::render(&plan, &history, detail)?;
    let (html_name, markdown_name) = refopt_report::file_names(version);
    let (body, default_name) = match args.format {
        ReportFormat::Html => (report.html, html_name),
        ReportFormat::Markdown => (report.markdown, markdown_name),
    };
    match args.out.as_deref().unwrap_or(&default_name) {
        "-" => print!("{body}"),
        path => {
            std::fs::write(path, body).with_context(|| format!("writing {path}"))?;
            crate::progress::notice(&format!(
                "wrote {path} (plan v{version}, {} earlier plan(s) for deltas and trend)",
                history.len()
            ));
        }
    }
    Ok(())
}

/// `<root>/<series folder>/plan-v<N>.json` -> (root, series folder, file name).
fn split_plan_url(url: &str) -> anyhow::Result<(&str, &str, &str)> {
    let trimmed = url.trim_end_matches('/');
    let (folder, file) = trimmed.rsplit_once('/').ok_or_else(|| {
        anyhow!("{url}: give the plan's path with its pipeline folder, e.g. plans/optimize-referrals/plan-v000001.json")
    })?;
    let (root, series) = folder.rsplit_once('/').unwrap_or((".", folder));
    let root = if root.is_empty() { "/" } else { root };
    if series.is_empty() || root.ends_with(':') || root.ends_with(":/") {
        return Err(anyhow!(
            "{url}: a plan lives in a pipeline folder under a plans root (…/<pipeline>/plan-v<N>.json)"
        ));
    }
    Ok((root, series, file))
}

/// Writes the report of a run's new plan beside it; for unchanged inputs, writes whichever
/// report file of the latest plan is missing (None: a dry run, or nothing missing). A failure
/// is returned, not raised: the plan stands either way.
pub async fn write_for(outcome: &RunOutcome) -> Option<Result<StoredReport, String>> {
    let store = outcome.store.as_ref()?;
    outcome.stored.as_ref()?;
    let plan = &outcome.plan;
    if outcome.unchanged {
        // An earlier run may have been stopped between its plan and its report: finish it.
        return refopt_report::complete_beside(store, plan, &outcome.history, plan.inputs.detail)
            .await
            .transpose();
    }
    Some(refopt_report::write_beside(store, plan, &outcome.history, plan.inputs.detail).await)
}

/// Tells where the run's report went, or why it is missing (the plan stands either way).
pub fn announce(report: Option<&Result<StoredReport, String>>) {
    match report {
        Some(Ok(r)) if progress::json_logs() => {
            tracing::info!(html = %r.html_url, markdown = %r.markdown_url, "report written");
        }
        Some(Ok(r)) => eprintln!("report: {} (summary: {})", r.html_url, r.markdown_url),
        Some(Err(e)) if progress::json_logs() => {
            tracing::warn!(error = %e, "report not written; the plan is stored (re-render with `refopt report`)");
        }
        Some(Err(e)) => eprintln!(
            "warning: report not written ({e}); the plan is stored: re-render it with `refopt report <plan url>`"
        ),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::split_plan_url;

    #[test]
    fn plan_urls_split_into_root_series_and_file() {
        assert_eq!(
            split_plan_url("s3://b/plans/optimize-referrals/plan-v000003.json").unwrap(),
            ("s3://b/plans", "optimize-referrals", "plan-v000003.json")
        );
        assert_eq!(
            split_plan_url("optimize-referrals/plan-v1.json").unwrap(),
            (".", "optimize-referrals", "plan-v1.json")
        );
        assert_eq!(
            split_plan_url("/p/x/backfill/30d/as_of=2026-01-01/plan-v1.json").unwrap(),
            ("/p/x/backfill/30d", "as_of=2026-01-01", "plan-v1.json")
        );
        assert!(split_plan_url("plan-v1.json").is_err());
        assert!(split_plan_url("s3://plan-v1.json").is_err());
    }
}
