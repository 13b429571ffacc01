//! Optional Prometheus Pushgateway metrics for a run (`--pushgateway URL`): batch jobs finish
//! before Prometheus could scrape them, so they push. Best effort: a failed push is logged and
//! never fails the run.

use std::fmt::Write;

use refopt_plan::Plan;

/// The run's metrics in the Prometheus text exposition format.
pub fn exposition(
    pipeline: &str,
    succeeded: bool,
    duration_secs: f64,
    plan: Option<&Plan>,
) -> String {
    let label = pipeline.replace('\\', "\\\\").replace('"', "\\\"");
    let mut out = String::new();
    let mut gauge = |name: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} gauge");
        let _ = writeln!(out, "{name}{{pipeline=\"{label}\"}} {value}");
    };
    gauge(
        "refopt_run_success",
        "1 if the last run wrote its plan, 0 if it failed.",
        if succeeded { 1.0 } else { 0.0 },
    );
    gauge(
        "refopt_run_duration_seconds",
        "Wall time of the last run.",
        duration_secs,
    );
    if let Some(plan) = plan {
        let rows: u64 = plan
            .datasets
            .iter()
            .flat_map(|d| &d.checks)
            .map(|c| c.rows)
            .sum();
        gauge(
            "refopt_rows_read",
            "Rows of every dataset in the current and previous window.",
            rows as f64,
        );
        gauge(
            "refopt_findings",
            "Findings in the last plan.",
            plan.findings.len() as f64,
        );
        gauge(
            "refopt_alerts",
            "KPI alerts that fired in the last plan.",
            plan.alerts.len() as f64,
        );
        gauge(
            "refopt_escalations",
            "Escalations in the last plan.",
            plan.escalations.len() as f64,
        );
        gauge(
            "refopt_referrals_flagged",
            "Referrals flagged by the fraud rules in the last plan.",
            plan.risk.referrals_flagged as f64,
        );
        gauge(
            "refopt_last_success_timestamp_seconds",
            "Unix time of the last successful run.",
            chrono::Utc::now().timestamp() as f64,
        );
    }
    out
}

/// PUTs the metrics to `<gateway>/metrics/job/refopt/pipeline/<pipeline>`; returns why not.
pub async fn push(gateway: &str, pipeline: &str, body: String) -> Result<(), String> {
    let url = format!(
        "{}/metrics/job/refopt/pipeline/{}",
        gateway.trim_end_matches('/'),
        pipeline
    );
    let response = reqwest::Client::new()
        .put(&url)
        .header("Content-Type", "text/plain; version=0.0.4")
        .timeout(std::time::Duration::from_secs(10))
        .body(body)
        .send()
        .await
        .map_err(|e| format!("pushgateway {gateway}: {e}"))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(format!("pushgateway {gateway}: HTTP {}", response.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_help_type_and_labels() {
        let text = exposition("optimize-referrals", false, 1.5, None);
        assert!(text.contains("# TYPE refopt_run_success gauge"));
        assert!(text.contains("refopt_run_success{pipeline=\"optimize-referrals\"} 0"));
        assert!(text.contains("refopt_run_duration_seconds{pipeline=\"optimize-referrals\"} 1.5"));
        assert!(!text.contains("refopt_findings"));
    }
}
