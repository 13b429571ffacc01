//! `refopt validate` and `refopt explain`: the dry runs people put in CI.

use std::sync::Arc;

use anyhow::anyhow;
use refopt_engine::validate::{Problem, Validation, validate};
use refopt_engine::{EngineError, RunRequest, SessionOptions};
use refopt_plan::Detail;
use refopt_spec::{Window, WindowRange};

use crate::args::{ExplainArgs, ProblemFormat, TestArgs, ValidateArgs};
use crate::{load_pipeline, parse_date, pipeline_file, today};

/// Validation found problems (exit code 1); they have been printed.
#[derive(Debug, thiserror::Error)]
#[error("{0} problem(s) found")]
pub struct ProblemsFound(pub usize);

pub async fn run_validate(args: ValidateArgs) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let file = pipeline_file(&args.config.pipeline, &args.config.pipelines_dir);
    if !file.is_file() {
        return Err(
            EngineError::Parameter(format!("pipeline file {} not found", file.display())).into(),
        );
    }
    let mut validation = validate(&file, Some(&args.config.rules)).await;
    if args.k8s.is_dir() {
        validation
            .problems
            .extend(refopt_engine::validate::check_k8s(&args.k8s));
    }
    for p in &mut validation.problems {
        p.file = refopt_engine::validate::display_path(std::path::Path::new(&p.file))
            .display()
            .to_string();
    }
    print_problems(&validation, args.format);
    if !validation.problems.is_empty() {
        return Err(ProblemsFound(validation.problems.len()).into());
    }
    if args.format == ProblemFormat::Human {
        eprintln!(
            "ok: {} and {} are valid ({} SQL stages planned, {} rules checked) in {} ms",
            file.display(),
            args.config.rules,
            validation.stages_planned,
            validation.rules_checked,
            started.elapsed().as_millis()
        );
    }
    if args.sample {
        sample_run(&args).await?;
    }
    Ok(())
}

fn print_problems(v: &Validation, format: ProblemFormat) {
    use std::io::Write;
    // Writes to stdout ignore a closed pipe (`refopt validate --format github | head`).
    let mut out = std::io::stdout().lock();
    match format {
        ProblemFormat::Human => {
            for p in &v.problems {
                eprintln!("{p}");
            }
        }
        ProblemFormat::Json => {
            let json = serde_json::to_string_pretty(&v.problems).expect("problems serialize");
            let _ = writeln!(out, "{json}");
        }
        ProblemFormat::Github => {
            for p in &v.problems {
                if writeln!(out, "{}", github_annotation(p)).is_err() {
                    break;
                }
            }
        }
    }
}

/// A GitHub Actions workflow command (`::error file=F,line=L,col=C::message`), with the
/// characters GitHub treats specially escaped.
fn github_annotation(p: &Problem) -> String {
    let escape_data = |s: &str| {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    };
    let escape_property = |s: &str| escape_data(s).replace(':', "%3A").replace(',', "%2C");
    let mut message = p.message.clone();
    if let Some(h) = &p.hint {
        message.push_str(&format!("\nhint: {h}"));
    }
    format!(
        "::error file={},line={},col={}::{}",
        escape_property(&p.file),
        p.line,
        p.column,
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
    eprintln!("sample: generating 20,000 invites over 70 days in a temporary folder");
    refopt_datagen::generate(
        location.store.clone(),
        &location.prefix,
        &config,
        &|_, _, _| {},
    )
    .await?;
    let file = pipeline_file(&args.config.pipeline, &args.config.pipelines_dir);
    let pipeline = load_pipeline(&file)?;
    let rules = refopt_engine::rules_source::load_rules(&args.config.rules).await?;
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
        rules_hashes: rules.hashes,
        force: false,
        session: SessionOptions::default(),
        storage: Default::default(),
        plan_series: Vec::new(),
        shared_stages: None,
    };
    let outcome = refopt_engine::run(request, Arc::new(refopt_engine::Quiet)).await?;
    let plan = &outcome.plan;
    let failed_rules: Vec<&str> = plan
        .error_handling
        .events
        .iter()
        .filter(|e| e.action == "rule_skipped")
        .map(|e| e.task_id.as_str())
        .collect();
    eprintln!(
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
    );
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
    let cases = refopt_spec::rule_tests::load_tests(&args.path).map_err(EngineError::Config)?;
    if cases.is_empty() {
        return Err(anyhow!("no test cases in {}", args.path.display()));
    }
    let rules = refopt_engine::rules_source::load_rules(&args.rules).await?;
    let mut failed = 0;
    for case in &cases {
        let result = refopt_engine::rule_tests::run_case(case, &rules.rules).await;
        if result.passed {
            println!("PASS {}  ({})", result.name, result.location);
        } else {
            failed += 1;
            println!("FAIL {}  ({})", result.name, result.location);
            for line in result.detail.unwrap_or_default().lines() {
                println!("     {line}");
            }
        }
    }
    println!(
        "\n{} passed, {failed} failed ({} against {})",
        cases.len() - failed,
        args.path.display(),
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
    let file = pipeline_file(&args.config.pipeline, &args.config.pipelines_dir);
    let pipeline = load_pipeline(&file)?;
    let window: Window = args
        .window
        .parse()
        .map_err(|e: refopt_spec::window::WindowError| EngineError::Parameter(e.to_string()))?;
    let as_of = match &args.as_of {
        Some(d) => parse_date("--as-of", d)?,
        None => today(),
    };
    let params = refopt_engine::params::bind(&WindowRange::new(window, as_of), window.days);
    let ctx = match &args.root {
        Some(root) => {
            let ctx = refopt_engine::session::new_session(&SessionOptions::default())?;
            let data = refopt_engine::storage::resolve(root)
                .map_err(|e| EngineError::Parameter(e.to_string()))?;
            refopt_engine::datasets::register_datasets(&ctx, &data, &pipeline.datasets).await?;
            ctx
        }
        None => {
            let mut problems = Vec::new();
            let ctx = refopt_engine::validate::planning_session(&pipeline, &mut problems);
            if let Some(p) = problems.first() {
                return Err(EngineError::Parameter(p.to_string()).into());
            }
            ctx.ok_or_else(|| anyhow!("cannot create a planning session"))?
        }
    };
    let explained = refopt_engine::explain::explain(
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
        let p = Problem {
            file: "rules/a,b.yaml".into(),
            line: 3,
            column: 5,
            message: "rule `x`: bad 100%".into(),
            hint: Some("fix: it".into()),
        };
        assert_eq!(
            github_annotation(&p),
            "::error file=rules/a%2Cb.yaml,line=3,col=5::rule `x`: bad 100%25%0Ahint: fix: it"
        );
    }
}
