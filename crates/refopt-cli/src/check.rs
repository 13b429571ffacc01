//! `refopt validate` and `refopt explain`: the dry runs people put in CI.

use std::sync::Arc;

use anyhow::anyhow;
use refopt_engine::checks::validate::validate;
use refopt_engine::{EngineError, RunRequest, SessionOptions};
use refopt_plan::Detail;
use refopt_spec::{Diagnostic, Level, Window, WindowRange};

use crate::args::{ExplainArgs, ProblemFormat, TestArgs, ValidateArgs};
use crate::{load_pipeline, parse_date, pipeline_file, today};

/// Validation found errors, or warnings under `--deny-warnings` (exit code 1); they have been
/// printed.
#[derive(Debug, thiserror::Error)]
#[error("{errors} error(s), {warnings} warning(s) found")]
pub struct ProblemsFound {
    pub errors: usize,
    pub warnings: usize,
}

pub async fn run_validate(args: ValidateArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let file = pipeline_file(&args.config.pipeline, args.config.pipelines_dir.as_deref())?;
    if !file.path.is_file() {
        return Err(
            EngineError::Parameter(format!("pipeline file {} not found", file.display)).into(),
        );
    }
    let rules = crate::defaults::rules(args.config.rules.as_deref())?;
    let mut validation = validate(&file.path, Some(&rules.location)).await;
    crate::defaults::name_embedded(&mut validation.problems);
    if args.k8s.is_dir() {
        validation
            .problems
            .extend(refopt_engine::checks::validate::check_k8s(&args.k8s));
    }
    for d in &mut validation.problems {
        d.location.file = refopt_engine::checks::validate::display_path(&d.location.file);
    }
    validation
        .problems
        .sort_by_key(|d| std::cmp::Reverse(d.level));
    print_diagnostics(&validation.problems, args.format);
    let errors = validation
        .problems
        .iter()
        .filter(|d| d.level == Level::Error)
        .count();
    let warnings = validation.problems.len() - errors;
    if errors > 0 || (args.deny_warnings && warnings > 0) {
        return Err(ProblemsFound { errors, warnings }.into());
    }
    if args.format == ProblemFormat::Text {
        eprintln!(
            "ok: {} and {} are valid ({} SQL stages planned, {} rules checked{}) in {} ms",
            file.display,
            redact_secrets(&rules.display(crate::defaults::RULES_FOLDER)),
            validation.stages_planned,
            validation.rules_checked,
            match warnings {
                0 => String::new(),
                n => format!(", {n} warning(s)"),
            },
            started.elapsed().as_millis()
        );
    }
    if args.sample {
        sample_run(&args).await?;
    }
    Ok(())
}

use refopt_spec::redact::redact_secrets;

fn print_diagnostics(diagnostics: &[Diagnostic], format: ProblemFormat) {
    use std::io::Write;
    // Writes to stdout ignore a closed pipe (`refopt validate --format github | head`).
    let mut out = std::io::stdout().lock();
    match format {
        ProblemFormat::Text => {
            for d in diagnostics {
                eprintln!("{}", redact_secrets(&d.render()));
            }
        }
        ProblemFormat::Json => {
            let json: Vec<serde_json::Value> = diagnostics.iter().map(diagnostic_json).collect();
            let json = serde_json::to_string_pretty(&json).expect("diagnostics serialize");
            let _ = writeln!(out, "{}", redact_secrets(&json));
        }
        ProblemFormat::Github => {
            for d in diagnostics {
                if writeln!(out, "{}", redact_secrets(&github_annotation(d))).is_err() {
                    break;
                }
            }
        }
    }
}

/// The JSON form of a diagnostic (documented in docs/cli.md).
fn diagnostic_json(d: &Diagnostic) -> serde_json::Value {
    serde_json::json!({
        "code": d.code.as_str(),
        "level": d.level.to_string(),
        "file": d.location.file.display().to_string(),
        "line": d.location.line,
        "column": d.location.column,
        "message": d.message,
        "help": d.help,
    })
}

/// A GitHub Actions workflow command (`::error file=F,line=L,col=C,title=CODE::message`), with
/// the characters GitHub treats specially escaped.
fn github_annotation(d: &Diagnostic) -> String {
    let escape_data = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let escape_property = |s: &str| escape_data(s).replace(':', "%3A").replace(',', "%2C");
    let mut message = d.message.clone();
    if let Some(h) = &d.help {
        message.push_str(&format!("\nhelp: {h}"));
    }
    format!(
        "::{} file={},line={},col={},title={}::{}",
        d.level,
        escape_property(&d.location.file.display().to_string()),
        d.location.line,
        d.location.column,
        d.code,
        escape_data(&message)
    )
}

/// Generates a tiny data set in a temporary folder and runs the pipeline on it without writing a
/// plan, then prints what the plan would contain.
async fn sample_run(args: &ValidateArgs) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let end = today();
    let location = refopt_engine::storage::resolve(&dir.path().to_string_lossy())
        .map_err(|e| EngineError::Parameter(e.to_string()))?;
    let config = refopt_datagen::GenerateConfig {
        seed: 1,
        invites: 20_000,
        days: 70,
        end,
    };
    crate::progress::notice("sample: generating 20,000 invites over 70 days in a temporary folder");
    refopt_datagen::generate(
        location.store.clone(),
        &location.prefix,
        &config,
        &|_, _, _| {},
    )
    .await?;
    let file = pipeline_file(&args.config.pipeline, args.config.pipelines_dir.as_deref())?;
    let pipeline = load_pipeline(&file)?;
    let rules =
        crate::defaults::load_rules(args.config.rules.as_deref(), &Default::default()).await?;
    let request = RunRequest {
        pipeline,
        data_root: dir.path().to_string_lossy().into_owned(),
        plans_root: None,
        window: Window { days: 30 },
        as_of: end,
        detail: Detail::Full,
        dimensions: vec!["channel".into()],
        experiments: Vec::new(),
        alert_threshold: None,
        rules: rules.rules,
        rules_source: rules.source,
        pipeline_source: file.display.clone(),
        rules_hashes: rules.hashes,
        force: false,
        session: SessionOptions::default(),
        storage: Default::default(),
        plan_series: Vec::new(),
        shared_stages: None,
        rule_engine: refopt_engine::RuleEngine::Auto,
    };
    let outcome = refopt_engine::run(request, Arc::new(refopt_engine::Quiet)).await?;
    let plan = &outcome.plan;
    let failed_rules: Vec<&str> = plan
        .error_handling
        .events
        .iter()
        .filter(|e| e.action == refopt_plan::ErrorAction::RuleSkipped)
        .map(|e| e.task_id.as_str())
        .collect();
    crate::progress::notice(&format!(
        "sample: the plan would hold {} tasks, {} funnel rows, {} findings, {} alerts, {} escalations, {} backlog items; {} of {} referrals flagged; {} partners scored",
        plan.tasks.len(),
        plan.metrics.funnel.len(),
        plan.findings.len(),
        plan.alerts.len(),
        plan.escalations.len(),
        plan.backlog.len(),
        plan.risk.referrals_flagged,
        plan.risk.referrals_reviewed,
        plan.partner_health.partners_scored
    ));
    if !failed_rules.is_empty() {
        return Err(anyhow!(
            "sample: rules failed at run time: {} (details in the plan's error_handling)",
            failed_rules.join(", ")
        ));
    }
    Ok(())
}

/// Rule tests failed (exit code 1); the results have been printed.
#[derive(Debug, thiserror::Error)]
#[error("{failed} of {total} rule test(s) failed")]
pub struct TestsFailed {
    pub failed: usize,
    pub total: usize,
}

pub async fn run_tests(args: TestArgs) -> anyhow::Result<()> {
    let resolved = crate::defaults::rules(args.rules.as_deref())?;
    let tests = match &args.path {
        Some(path) => path.clone(),
        // The tests beside local rules (./rules, a --rules folder, the embedded copy).
        None if !refopt_engine::rules::source::is_remote(&resolved.location) => {
            std::path::Path::new(resolved.location.trim_start_matches("file://")).join("tests")
        }
        None => std::path::PathBuf::from("rules/tests"),
    };
    let shown = crate::defaults::name_embedded_text(&tests.display().to_string());
    let cases = refopt_spec::rule_tests::load_tests(&tests).map_err(|mut e| {
        crate::defaults::name_embedded(&mut e.0);
        EngineError::Config(e)
    })?;
    if cases.is_empty() {
        return Err(anyhow!("no test cases in {shown}"));
    }
    let rules = crate::defaults::load_rules(args.rules.as_deref(), &Default::default()).await?;
    let mut failed = 0;
    for case in &cases {
        let result = refopt_engine::checks::rule_tests::run_case(case, &rules.rules).await;
        if result.passed {
            println!(
                "PASS {}  ({})",
                result.name,
                crate::defaults::name_embedded_text(&result.location.to_string())
            );
        } else {
            failed += 1;
            println!(
                "FAIL {}  ({})",
                result.name,
                crate::defaults::name_embedded_text(&result.location.to_string())
            );
            for line in result.detail.unwrap_or_default().lines() {
                println!("     {line}");
            }
        }
    }
    println!(
        "\n{} passed, {failed} failed ({shown} against {})",
        cases.len() - failed,
        rules.source
    );
    if failed > 0 {
        return Err(TestsFailed {
            failed,
            total: cases.len(),
        }
        .into());
    }
    Ok(())
}

pub async fn run_explain(args: ExplainArgs) -> anyhow::Result<()> {
    let file = pipeline_file(&args.config.pipeline, args.config.pipelines_dir.as_deref())?;
    let pipeline = load_pipeline(&file)?;
    let window: Window = args
        .window
        .parse()
        .map_err(|e: refopt_spec::window::WindowError| EngineError::Parameter(e.to_string()))?;
    let as_of = match &args.as_of {
        Some(d) => parse_date("--as-of", d)?,
        None => today(),
    };
    let params =
        refopt_engine::execution::params::bind(&WindowRange::new(window, as_of), window.days);
    let ctx = match &args.root {
        Some(root) => {
            let ctx = refopt_engine::execution::session::new_session(&SessionOptions::default())?;
            let data = refopt_engine::storage::resolve(root)
                .map_err(|e| EngineError::Parameter(e.to_string()))?;
            refopt_engine::execution::datasets::register_datasets(&ctx, &data, &pipeline.datasets)
                .await?;
            ctx
        }
        None => {
            let mut problems = Vec::new();
            let ctx = refopt_engine::checks::validate::planning_session(&pipeline, &mut problems);
            if let Some(p) = problems.first() {
                return Err(EngineError::Parameter(p.to_string()).into());
            }
            ctx.ok_or_else(|| anyhow!("cannot create a planning session"))?
        }
    };
    let explained = refopt_engine::checks::explain::explain(
        &ctx,
        &pipeline,
        &params,
        args.stage.as_deref(),
        args.physical,
    )
    .await?;
    for e in explained {
        println!(
            "== stage {} ==\n-- SQL (placeholders shown bound)\n{}\n",
            e.id,
            e.sql.trim()
        );
        println!("-- logical plan\n{}", e.logical_plan);
        if let Some(p) = e.physical_plan {
            println!("-- physical plan\n{p}");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_annotations_escape_properties_and_newlines() {
        let d = Diagnostic::of(
            refopt_spec::Code::UnknownReference,
            refopt_spec::Location {
                file: "rules/a,b.yaml".into(),
                line: 3,
                column: 5,
            },
            "rule `x`: bad 100%",
        )
        .help("fix: it");
        assert_eq!(
            github_annotation(&d),
            "::error file=rules/a%2Cb.yaml,line=3,col=5,title=RF006::rule `x`: bad 100%25%0Ahelp: fix: it"
        );
        let warning = Diagnostic::of(refopt_spec::Code::Unused, d.location.clone(), "unused");
        assert!(github_annotation(&warning).starts_with("::warning file="));
    }

    #[test]
    fn json_diagnostics_carry_code_and_level() {
        let d = Diagnostic::of(
            refopt_spec::Code::Expired,
            refopt_spec::Location::file_start(std::path::Path::new("rules/suppressions.yaml")),
            "expired",
        );
        let json = diagnostic_json(&d);
        assert_eq!(json["code"], "RF101");
        assert_eq!(json["level"], "warning");
        assert_eq!(json["line"], 1);
        assert!(json["help"].is_null());
    }
}
