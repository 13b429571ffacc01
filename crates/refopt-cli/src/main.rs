//! The `refopt` binary: parses arguments, calls the library crates, prints results and maps
//! errors to documented exit codes. Errors are printed once, here.

mod allocator;
mod args;
mod check;
mod defaults;
mod distribute;
mod history;
mod interrupt;
mod metrics_push;
mod plan_cmd;
mod progress;
mod report;
mod summary;

/// `refopt --version`: the package version and, when built from git, the revision.
pub const VERSION: &str = env!("REFOPT_VERSION");

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use clap::Parser;
use refopt_engine::storage::StoragePolicy;
use refopt_engine::{EngineError, ErrorClass, RunRequest, SessionOptions};
use refopt_plan::Detail;
use refopt_spec::{Pipeline, Window};

use args::{AnalysisArgs, Cli, Command, DemoArgs, EvaluateArgs, GenerateArgs, Output, RunArgs};

/// Exit codes (documented in `docs/cli.md`).
mod exit {
    pub const INTERNAL: u8 = 1;
    /// `refopt validate` found problems.
    pub const PROBLEMS_FOUND: u8 = 1;
    pub const CONFIG: u8 = 3;
    pub const DATA: u8 = 4;
    pub const STORAGE: u8 = 5;
    pub const STAGE_FAILED: u8 = 6;
    /// Interrupted by SIGINT (128 + 2); nothing partial was written.
    pub const INTERRUPTED_INT: u8 = 130;
    /// Interrupted by SIGTERM (128 + 15), e.g. a Kubernetes Job being stopped.
    pub const INTERRUPTED_TERM: u8 = 143;
}

fn main() -> ExitCode {
    // Like other Unix filters, stop quietly when the reader goes away (`refopt ... | head`):
    // a failed write to a closed stdout panics in `println!`; exit with 141 (128 + SIGPIPE)
    // instead of printing a panic.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default_hook(info);
    }));
    let cli = Cli::parse();
    allocator::configure(cli.command.memory_limit().is_some());
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::INTERNAL);
        }
    };
    progress::init_logs(cli.log_format == args::LogFormat::Json);
    let started = std::time::Instant::now();
    let signals = interrupt::listen();
    let outcome = runtime.block_on(async {
        tokio::select! {
            result = dispatch(cli) => Ok(result),
            Ok(interrupted) = signals => Err(interrupted),
        }
    });
    // A signal that arrived while the command was inside blocking work (a rule evaluating)
    // ended that work early; whatever the command returned then, the run was interrupted.
    let outcome = match (outcome, interrupt::received()) {
        (Ok(_), Some(interrupted)) => Err(interrupted),
        (outcome, _) => outcome,
    };
    // Leaving the runtime cancels whatever was still running (after a signal, Rhai evaluations
    // have already been told to stop); plans are written in one put at the very end, and not
    // at all once a stop is requested, so an interrupted run leaves nothing partial behind.
    runtime.shutdown_timeout(std::time::Duration::from_millis(800));
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let code = match outcome {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            let code = exit_code(&e);
            if progress::json_logs() {
                tracing::error!(exit_code = code, elapsed_ms, error = %error_text(&e), "refopt failed");
            } else {
                eprintln!("error: {}", error_text(&e));
            }
            ExitCode::from(code)
        }
        Err(interrupt::Interrupted { signal, exit_code }) => {
            let outcome = interrupt::outcome();
            if progress::json_logs() {
                tracing::warn!(
                    signal,
                    exit_code,
                    elapsed_ms,
                    "interrupted: stopped, {outcome}"
                );
            } else {
                eprintln!("interrupted by {signal}: stopped, {outcome}");
            }
            ExitCode::from(exit_code)
        }
    };
    defaults::cleanup();
    code
}

/// An error and its causes on one line. Causes whose text the message already contains are
/// left out: many errors (object_store's, DataFusion's) print their cause in their own message
/// and also return it as `source()`, which would repeat it.
/// URL credentials in any of them are hidden.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    defaults::name_embedded_text(&refopt_spec::redact::redact_secrets(&text))
}

fn exit_code(e: &anyhow::Error) -> u8 {
    if e.downcast_ref::<check::ProblemsFound>().is_some()
        || e.downcast_ref::<check::TestsFailed>().is_some()
    {
        return exit::PROBLEMS_FOUND;
    }
    if let Some(engine) = e.downcast_ref::<EngineError>() {
        return match engine.class() {
            ErrorClass::Config => exit::CONFIG,
            ErrorClass::Data => exit::DATA,
            ErrorClass::Storage => exit::STORAGE,
            ErrorClass::PartialFailure => exit::STAGE_FAILED,
            ErrorClass::Internal => exit::INTERNAL,
        };
    }
    if e.downcast_ref::<refopt_spec::Diagnostics>().is_some() {
        return exit::CONFIG;
    }
    if let Some(generate) = e.downcast_ref::<refopt_datagen::GenerateError>() {
        return match generate {
            refopt_datagen::GenerateError::Settings(_) => exit::CONFIG,
            refopt_datagen::GenerateError::Store { .. } => exit::STORAGE,
            _ => exit::INTERNAL,
        };
    }
    exit::INTERNAL
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Run(args) => run(args).await,
        Command::Generate(args) => generate(args).await.map(|_| ()),
        Command::Demo(args) => demo(args).await,
        Command::EvaluateRules(args) => evaluate_rules(args).await,
        Command::Validate(args) => check::run_validate(args).await,
        Command::Explain(args) => check::run_explain(args).await,
        Command::Backfill(args) => history::run_backfill(args).await,
        Command::Backtest(args) => history::run_backtest(args).await,
        Command::Test(args) => check::run_tests(args).await,
        Command::Plan(command) => plan_cmd::run(command).await,
        Command::Report(args) => report::run(args).await,
        Command::Init(args) => init(args),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "refopt", &mut std::io::stdout());
            Ok(())
        }
        Command::Man { dir } => man(dir.as_deref()),
        Command::Schema { approval } => {
            let schema = if approval {
                refopt_plan::approval_json_schema()
            } else {
                refopt_plan::plan_json_schema()
            };
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(())
        }
    }
}

/// `refopt init`: the embedded pipeline and rules, written out for editing.
fn init(args: args::InitArgs) -> anyhow::Result<()> {
    let written = defaults::write_tree(&args.dir, true).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            EngineError::Parameter(format!(
                "refusing to overwrite: {e}; refopt init writes only files that do not exist yet \
                 (move them away or pick another folder)"
            ))
        } else {
            EngineError::Parameter(format!("cannot write into {}: {e}", args.dir.display()))
        }
    })?;
    for file in &written {
        println!("created {}", args.dir.join(file).display());
    }
    let cd = if args.dir == Path::new(".") {
        String::new()
    } else {
        format!("cd {} && ", args.dir.display())
    };
    progress::notice(&format!(
        "\n{} files: the default pipeline and rules of refopt {}. Next:\n  {cd}refopt validate && refopt test\n  refopt run optimize-referrals --root <data> --window 30d   # uses ./rules and ./pipelines",
        written.len(),
        VERSION
    ));
    Ok(())
}

/// `refopt man`: the roff page of refopt on stdout, or one page per command in `dir`.
fn man(dir: Option<&Path>) -> anyhow::Result<()> {
    let command = <Cli as clap::CommandFactory>::command();
    match dir {
        None => clap_mangen::Man::new(command).render(&mut std::io::stdout())?,
        Some(dir) => {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            clap_mangen::generate_to(command, dir)
                .with_context(|| format!("writing man pages into {}", dir.display()))?;
            progress::notice(&format!("man pages written to {}", dir.display()));
        }
    }
    Ok(())
}

/// A pipeline file after the lookup (see [`defaults`]).
#[derive(Debug, Clone)]
struct PipelineFile {
    path: PathBuf,
    /// How plans and messages name it (`embedded@<version>/pipelines/<name>.yaml` for the
    /// embedded default).
    display: String,
    embedded: bool,
}

/// Finds a pipeline by name in the pipelines folder (flag, environment, `./pipelines`, or the
/// embedded defaults), or takes it as a path.
fn pipeline_file(name_or_path: &str, dir: Option<&Path>) -> Result<PipelineFile, EngineError> {
    let as_path = PathBuf::from(name_or_path);
    if name_or_path.ends_with(".yaml") || name_or_path.ends_with(".yml") || as_path.is_file() {
        return Ok(PipelineFile {
            display: as_path.display().to_string(),
            path: as_path,
            embedded: false,
        });
    }
    let folder = defaults::pipelines_dir(dir)?;
    let file_name = format!("{name_or_path}.yaml");
    Ok(PipelineFile {
        path: Path::new(&folder.location).join(&file_name),
        display: if folder.embedded {
            format!("{}/{file_name}", folder.display(defaults::PIPELINES_FOLDER))
        } else {
            Path::new(&folder.location)
                .join(&file_name)
                .display()
                .to_string()
        },
        embedded: folder.embedded,
    })
}

fn load_pipeline(file: &PipelineFile) -> anyhow::Result<Pipeline> {
    if !file.path.is_file() {
        let hint = if file.embedded {
            "the pipelines embedded in refopt are optimize-referrals only: pass --pipelines-dir, \
             a path to a .yaml file, or run `refopt init` and add yours to ./pipelines"
        } else {
            "pass a pipeline name from --pipelines-dir or a path to a .yaml file"
        };
        return Err(EngineError::Parameter(format!(
            "pipeline file {} not found ({hint})",
            file.display
        ))
        .into());
    }
    Pipeline::load(&file.path).map_err(|mut e| {
        defaults::name_embedded(&mut e.0);
        EngineError::Config(e).into()
    })
}

/// Dates refopt accepts for `--as-of`, `--from`, `--to` and `--end`: windows reach up to two
/// years before them, and timestamps are stored in microseconds since 1970.
const DATE_RANGE: std::ops::RangeInclusive<i32> = 1971..=9999;

fn parse_date(flag: &str, value: &str) -> Result<NaiveDate, EngineError> {
    let date = NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|e| {
        EngineError::Parameter(format!(
            "invalid {flag} `{value}`: {e} (expected YYYY-MM-DD)"
        ))
    })?;
    check_date_range(flag, date)
}

fn check_date_range(flag: &str, date: NaiveDate) -> Result<NaiveDate, EngineError> {
    use chrono::Datelike;
    if DATE_RANGE.contains(&date.year()) {
        Ok(date)
    } else {
        Err(EngineError::Parameter(format!(
            "{flag} {date} is out of range: use a date in the years {} to {}",
            DATE_RANGE.start(),
            DATE_RANGE.end()
        )))
    }
}

/// `START:STEP_DAYS` and the Job's completion index -> START + index x STEP_DAYS.
fn as_of_from_index(spec: &str, index: Option<String>) -> Result<NaiveDate, EngineError> {
    let (start, step) = spec.split_once(':').ok_or_else(|| {
        EngineError::Parameter(format!(
            "--as-of-from-index `{spec}`: expected START:STEP_DAYS, e.g. 2026-01-01:7"
        ))
    })?;
    let start = parse_date("--as-of-from-index", start)?;
    let step: u32 = step.parse().map_err(|_| {
        EngineError::Parameter(format!(
            "--as-of-from-index `{spec}`: STEP_DAYS must be a whole number of days"
        ))
    })?;
    let index = index.ok_or_else(|| {
        EngineError::Parameter(
            "--as-of-from-index needs JOB_COMPLETION_INDEX (set by Kubernetes Indexed Jobs)".into(),
        )
    })?;
    let index: u32 = index.trim().parse().map_err(|_| {
        EngineError::Parameter(format!(
            "JOB_COMPLETION_INDEX `{index}` is not a whole number"
        ))
    })?;
    let date = start
        .checked_add_days(chrono::Days::new(u64::from(index) * u64::from(step)))
        .ok_or_else(|| EngineError::Parameter("--as-of-from-index: date out of range".into()))?;
    check_date_range("--as-of-from-index", date)
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

async fn build_request(
    (pipeline, pipeline_source): (Pipeline, &PipelineFile),
    data_root: String,
    plans_root: Option<String>,
    as_of: NaiveDate,
    a: &AnalysisArgs,
) -> anyhow::Result<RunRequest> {
    let window: Window = a
        .window
        .parse()
        .map_err(|e: refopt_spec::window::WindowError| EngineError::Parameter(e.to_string()))?;
    let storage = StoragePolicy {
        retries: a.storage_retries,
        timeout: a.storage_timeout,
        ..StoragePolicy::default()
    };
    let rules = defaults::load_rules(a.rules.as_deref(), &storage).await?;
    let dimensions: Vec<String> = a
        .dimensions
        .iter()
        .map(|d| d.trim().to_string())
        .filter(|d| !d.is_empty())
        .collect();
    Ok(RunRequest {
        pipeline,
        data_root,
        plans_root,
        window,
        as_of,
        detail: match a.detail {
            args::Detail::Summary => Detail::Summary,
            args::Detail::Full => Detail::Full,
        },
        dimensions,
        experiments: a
            .experiments
            .iter()
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect(),
        alert_threshold: a.alert_threshold,
        rules: rules.rules,
        rules_source: rules.source,
        pipeline_source: pipeline_source.display.clone(),
        rules_hashes: rules.hashes,
        force: false,
        session: SessionOptions {
            threads: a.threads,
            memory_limit: a.memory_limit,
            scratch: a.scratch.clone(),
            ..Default::default()
        },
        storage,
        plan_series: Vec::new(),
        shared_stages: None,
        rule_engine: match a.rule_engine {
            args::RuleEngine::Auto => refopt_engine::RuleEngine::Auto,
            args::RuleEngine::Interpreter => refopt_engine::RuleEngine::Interpreter,
        },
    })
}

async fn evaluate_rules(args: EvaluateArgs) -> anyhow::Result<()> {
    let file = pipeline_file(&args.pipeline, args.pipelines_dir.as_deref())?;
    let pipeline = load_pipeline(&file)?;
    let as_of = parse_date("--as-of", &args.as_of)?;
    let request = build_request(
        (pipeline, &file),
        args.root.clone(),
        None,
        as_of,
        &args.analysis,
    )
    .await?;
    if request.rules.fraud.is_none() {
        return Err(EngineError::Parameter(format!(
            "no fraud rules in {} (refopt eval scores fraud rules: add rules/fraud.yaml)",
            request.rules_source
        ))
        .into());
    }
    let range = refopt_spec::WindowRange::new(request.window, as_of);
    let outcome = refopt_engine::run(request, Arc::new(refopt_engine::Quiet)).await?;
    let review = outcome.fraud.expect("rules were given");
    for o in review.outcomes.iter().filter(|o| o.error.is_some()) {
        progress::warning(&format!(
            "rule failed: {}",
            o.error.as_deref().unwrap_or_default()
        ));
    }
    let quality = refopt_engine::checks::rule_quality::score(&args.root, &range, &review).await?;
    if args.analysis.output == Output::Json {
        println!("{}", serde_json::to_string_pretty(&quality)?);
        return Ok(());
    }
    let f = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "-".into());
    println!(
        "fraud rules vs truth, window {} ending {}: {} referrals reviewed",
        args.analysis.window, as_of, review.referrals_reviewed
    );
    println!(
        "overall: flagged {}, truth {}, true positives {}, precision {}, recall {}",
        quality.flagged,
        quality.truth,
        quality.true_positives,
        f(quality.precision),
        f(quality.recall)
    );
    println!("\nrecall per planted pattern:");
    for (p, r) in &quality.by_pattern {
        println!(
            "  {p:<22} truth {:>7}  caught {:>7}  recall {}",
            r.truth,
            r.caught,
            f(r.recall)
        );
    }
    println!("\nprecision per rule:");
    for (rule, r) in &quality.by_rule {
        println!(
            "  {rule:<36} flagged {:>7}  fraudulent {:>7}  precision {}",
            r.flagged,
            r.fraudulent,
            f(r.precision)
        );
    }
    if !quality.by_lookalike.is_empty() {
        println!("\nlegitimate look-alikes flagged (lower is better):");
        for (kind, l) in &quality.by_lookalike {
            println!(
                "  {kind:<22} referrals {:>7}  flagged {:>7}  share {}",
                l.referrals,
                l.flagged,
                f(l.flagged_share)
            );
        }
    }
    Ok(())
}

async fn run(args: RunArgs) -> anyhow::Result<()> {
    let file = pipeline_file(&args.pipeline, args.pipelines_dir.as_deref())?;
    let pipeline = load_pipeline(&file)?;
    let as_of = match (&args.as_of, &args.as_of_from_index) {
        (Some(d), _) => parse_date("--as-of", d)?,
        (None, Some(spec)) => as_of_from_index(spec, std::env::var("JOB_COMPLETION_INDEX").ok())?,
        (None, None) => today(),
    };
    let plans = if args.dry_run {
        None
    } else {
        Some(
            args.plans
                .clone()
                .unwrap_or_else(|| default_plans_root(&args.root)),
        )
    };
    let mut request = build_request(
        (pipeline, &file),
        args.root.clone(),
        plans,
        as_of,
        &args.analysis,
    )
    .await?;
    request.force = args.force;
    execute(
        request,
        args.analysis.output,
        args.analysis.pushgateway.as_deref(),
    )
    .await
}

fn default_plans_root(root: &str) -> String {
    format!("{}/_plans", root.trim_end_matches('/'))
}

async fn execute(
    request: RunRequest,
    output: Output,
    pushgateway: Option<&str>,
) -> anyhow::Result<()> {
    let observer = Arc::new(progress::StageProgress::new(request.pipeline.stages.len()));
    let pipeline_name = request.pipeline.name.clone();
    let rules = request.rules.clone();
    let plans_root = request.plans_root.clone();
    let as_of = request.as_of.to_string();
    let started = std::time::Instant::now();
    let outcome = refopt_engine::run(request, observer.clone()).await;
    observer.finish();
    if let Err(e) = &outcome {
        let dry_run = plans_root.is_none();
        distribute::notify_failure(&rules, &pipeline_name, &as_of, &e.to_string(), dry_run).await;
    }
    if let Some(gateway) = pushgateway {
        let body = metrics_push::exposition(
            &pipeline_name,
            outcome.is_ok(),
            started.elapsed().as_secs_f64(),
            outcome.as_ref().ok().map(|o| &o.plan),
        );
        if let Err(e) = metrics_push::push(gateway, &pipeline_name, body).await {
            if progress::json_logs() {
                tracing::warn!(
                    error = %refopt_spec::redact::redact_secrets(&e),
                    "metrics push failed (the run is unaffected)"
                );
            } else {
                eprintln!(
                    "warning: metrics push failed (the run is unaffected): {}",
                    refopt_spec::redact::redact_secrets(&e)
                );
            }
        }
    }
    let outcome = outcome?;
    if let Some(stored) = outcome.stored.as_ref().filter(|_| !outcome.unchanged) {
        interrupt::plan_written(&stored.url);
    }
    let written_report = report::write_for(&outcome).await;
    report::announce(written_report.as_ref());
    // Notifications for this plan version (idempotent: a rerun or retry sends nothing twice),
    // before the summary line, so that the summary is the run's last word.
    distribute::notify_plan(
        &rules,
        &outcome.plan,
        outcome.store.as_ref().zip(outcome.stored.as_ref()),
        written_report
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .map(|r| r.html_url.as_str()),
        plans_root.is_none(),
    )
    .await;
    let plan_url = outcome
        .stored
        .as_ref()
        .map(|s| s.url.as_str())
        .unwrap_or("(dry run)");
    if outcome.unchanged {
        let version = outcome.stored.as_ref().map_or(0, |s| s.version);
        if progress::json_logs() {
            tracing::info!(
                plan = plan_url,
                version,
                "unchanged: the latest plan has the same inputs; nothing written"
            );
        } else {
            eprintln!(
                "unchanged, plan v{version}: the latest plan has the same inputs (data files, rules, pipeline, parameters); nothing written ({plan_url}); use --force to write a new version"
            );
        }
    } else if progress::json_logs() {
        tracing::info!(
            plan = plan_url,
            run_id = %outcome.plan.run_id,
            window = %outcome.plan.inputs.window,
            as_of = %outcome.plan.inputs.as_of,
            findings = outcome.plan.findings.len(),
            alerts = outcome.plan.alerts.len(),
            escalations = outcome.plan.escalations.len(),
            referrals_flagged = outcome.plan.risk.referrals_flagged,
            "run succeeded"
        );
    } else {
        eprintln!(
            "run succeeded: plan {plan_url} ({} findings, {} alerts, {} escalations)",
            outcome.plan.findings.len(),
            outcome.plan.alerts.len(),
            outcome.plan.escalations.len()
        );
    }
    match output {
        Output::Json => println!("{}", serde_json::to_string_pretty(&outcome.plan)?),
        Output::Human => summary::print(
            &outcome.plan,
            outcome.stored.as_ref().map(|s| s.url.as_str()),
        ),
    }
    Ok(())
}

async fn generate(args: GenerateArgs) -> anyhow::Result<refopt_datagen::GenerateReport> {
    let end = match &args.end {
        Some(d) => parse_date("--end", d)?,
        None => today(),
    };
    if !(args.scale.is_finite() && args.scale > 0.0) {
        return Err(EngineError::Parameter(format!(
            "--scale {}: must be a positive number of millions of invites",
            args.scale
        ))
        .into());
    }
    let invites = (args.scale * 1_000_000.0).round() as u64;
    let location = refopt_engine::storage::resolve(&args.root)
        .map_err(|e| EngineError::Parameter(e.to_string()))?;
    let config = refopt_datagen::GenerateConfig {
        seed: args.seed,
        invites,
        days: args.days,
        end,
    };
    progress::notice(&format!(
        "generating {invites} invites over {} days (seed {}) into {}",
        args.days, args.seed, location.display
    ));
    let bar = progress::GenerationProgress::new(args.days);
    let started = std::time::Instant::now();
    let report = refopt_datagen::generate(
        location.store.clone(),
        &location.prefix,
        &config,
        &|done, total, invites| bar.update(done, total, invites),
    )
    .await?;
    bar.finish();
    let rows: u64 = report.tables.values().map(|t| t.rows).sum();
    let bytes: u64 = report.tables.values().map(|t| t.bytes).sum();
    progress::notice(&format!(
        "wrote {rows} rows ({:.1} MiB) in {:.1}s: {} to {} (truth under {}/_truth/)",
        bytes as f64 / 1_048_576.0,
        started.elapsed().as_secs_f64(),
        report.start,
        report.end,
        location.display
    ));
    for (pattern, n) in &report.counts.fraud_by_pattern {
        progress::notice(&format!("  planted {pattern}: {n} referrals"));
    }
    Ok(report)
}

async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let data = args.dir.join("data");
    let plans = args.dir.join("plans");
    let manifest = data.join("_truth").join("manifest.json");
    let end = if manifest.is_file() && !args.regenerate {
        let text = std::fs::read_to_string(&manifest)
            .with_context(|| format!("reading {}", manifest.display()))?;
        let value: serde_json::Value = serde_json::from_str(&text)?;
        let end = value["end_exclusive"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        progress::notice(&format!(
            "using existing demo data in {} (pass --regenerate to rebuild)",
            data.display()
        ));
        parse_date("end_exclusive in the demo manifest", &end)?
    } else {
        if data.exists() {
            std::fs::remove_dir_all(&data)
                .with_context(|| format!("clearing {}", data.display()))?;
        }
        let report = generate(GenerateArgs {
            root: data.to_string_lossy().into_owned(),
            days: args.days,
            scale: args.scale,
            seed: args.seed,
            end: None,
        })
        .await?;
        report.end
    };
    let file = pipeline_file("optimize-referrals", args.pipelines_dir.as_deref())?;
    let pipeline = load_pipeline(&file)?;
    let request = build_request(
        (pipeline, &file),
        data.to_string_lossy().into_owned(),
        Some(plans.to_string_lossy().into_owned()),
        end,
        &args.analysis,
    )
    .await?;
    execute(
        request,
        args.analysis.output,
        args.analysis.pushgateway.as_deref(),
    )
    .await
}

#[cfg(test)]
mod index_tests {
    use super::*;

    #[test]
    fn as_of_from_index_steps_from_the_start() {
        let d = as_of_from_index("2026-01-01:7", Some("3".into())).unwrap();
        assert_eq!(d.to_string(), "2026-01-22");
        assert!(as_of_from_index("2026-01-01", Some("3".into())).is_err());
        assert!(as_of_from_index("2026-01-01:7", None).is_err());
        assert!(as_of_from_index("2026-01-01:x", Some("1".into())).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[test]
    fn error_text_prints_each_cause_once() {
        let e = anyhow::Error::new(std::io::Error::other("disk on fire")).context("cannot read x");
        assert_eq!(error_text(&e), "cannot read x: disk on fire");
        // A message that already carries its cause does not repeat it.
        let e = anyhow::Error::new(std::io::Error::other("disk on fire"))
            .context("cannot read x: disk on fire");
        assert_eq!(error_text(&e), "cannot read x: disk on fire");
    }
}
