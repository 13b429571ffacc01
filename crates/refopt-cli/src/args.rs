//! Command-line arguments (what the user typed, validated without I/O).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// refopt: batch runner for referral programs. Reads referral data from object storage with
/// SQL (DataFusion), runs the pipeline's stages, and writes a versioned plan JSON back.
#[derive(Debug, Parser)]
#[command(name = "refopt", version = crate::VERSION, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Quick start:\n  refopt demo                       generate demo data in ./refopt-demo and run the default pipeline\n  refopt init my-program            write the default pipeline and rules into my-program/ for editing\n  refopt run optimize-referrals --root s3://bucket/referrals --window 30d --dimensions channel,partner-tier\n\nConfiguration lookup (rules and pipelines each): the flag (--rules, --pipelines-dir), else the\nenvironment (REFOPT_RULES, REFOPT_PIPELINES), else ./rules or ./pipelines in the working\ndirectory, else the defaults embedded in refopt (plans record them as embedded@<version>).\n\nExit codes: 0 ok, 1 internal error (or validate/test found problems), 2 usage error, 3 configuration error, 4 data error, 5 storage error, 6 a stage failed (no plan written), 130/143 interrupted by SIGINT/SIGTERM (no plan written)."
)]
pub struct Cli {
    /// Log lines on stderr: readable text, or one JSON object per line (for Kubernetes log
    /// pipelines). The human summary or plan JSON on stdout is unaffected.
    #[arg(long, global = true, value_enum, env = "REFOPT_LOG_FORMAT", default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

impl Command {
    /// The `--memory-limit` of a command that runs the pipeline, if it was given.
    pub fn memory_limit(&self) -> Option<usize> {
        match self {
            Command::Run(a) => a.analysis.memory_limit,
            Command::Demo(a) => a.analysis.memory_limit,
            Command::Backfill(a) => a.analysis.memory_limit,
            Command::Backtest(a) => a.analysis.memory_limit,
            Command::EvaluateRules(a) => a.analysis.memory_limit,
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Progress bar on a terminal, plain lines otherwise.
    Text,
    /// JSON lines via `tracing` (timestamp, level, message, fields).
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a pipeline over a window of data and write its plan JSON.
    Run(RunArgs),
    /// Generate synthetic data (every table of the data contract) with planted fraud.
    Generate(GenerateArgs),
    /// Generate a small data set into a local folder and run the default pipeline on it.
    Demo(DemoArgs),
    /// Print the JSON Schema of plan JSON v1 (with --approval: of approval records).
    Schema {
        /// The schema of approval records instead.
        #[arg(long)]
        approval: bool,
    },
    /// Score the fraud rules against generated truth labels: precision and recall overall,
    /// per planted pattern and per rule, and the share of each kind of legitimate look-alike
    /// flagged (data from `refopt generate`).
    EvaluateRules(EvaluateArgs),
    /// Check the pipeline and rules without reading data: YAML structure, Rhai scripts, every
    /// stage's SQL planned against the declared schemas, the DAG, and rules against the tables
    /// they read. Exit 0 when clean, 1 when problems were found, 2 on a usage error.
    #[command(
        after_help = "Examples:\n  refopt validate\n  refopt validate --rules s3://ops/rules --format github\n  refopt validate --sample          # also run the pipeline on a tiny generated data set"
    )]
    Validate(ValidateArgs),
    /// Run rule unit tests: YAML cases with input rows and the findings, alerts, scores or
    /// backlog they must produce (default folder: rules/tests). Exit 1 if any case fails.
    #[command(
        after_help = "Example:\n  refopt test                       # rules/tests/*.yaml against ./rules\n  refopt test my-tests/ --rules s3://ops/rules"
    )]
    Test(TestArgs),
    /// Read the versioned plan store: list versions, show one, diff two, or follow a metric.
    #[command(subcommand)]
    Plan(PlanCommand),
    /// Print each stage's SQL after parameter binding and its DataFusion logical plan (with
    /// --physical, the physical plan), without running anything.
    Explain(ExplainArgs),
    /// Write one plan per as-of date over a historical range, oldest first; each window's
    /// escalation memory is the backfill's own earlier windows. Resumable: windows whose plan
    /// already has the same inputs are skipped.
    #[command(
        after_help = "Plans go to <plans>/<pipeline>/backfill/<N>d/as_of=<date>/plan-v<N>.json.\n\nExample:\n  refopt backfill optimize-referrals --root s3://bucket/program --from 2026-01-01 --to 2026-06-30 --step 7d --window 30d"
    )]
    Backfill(BackfillArgs),
    /// Replay historical windows with the current rules and a changed rule set, write nothing,
    /// and report per window what the change would have done (findings, alerts, escalations,
    /// backlog).
    #[command(
        after_help = "Example:\n  refopt backtest optimize-referrals --root ./data --new-rules ./rules-edited --from 2026-03-01 --to 2026-06-01 --step 7d"
    )]
    Backtest(BacktestArgs),
    /// Render the dashboard snapshot of a stored plan again: a self-contained HTML report
    /// (charts, insights, tables; opens offline) or its Markdown summary. Earlier plans in the
    /// same folder give the deltas vs the previous plan and the flag-rate trend.
    #[command(
        after_help = "Every run already writes plan-v<N>.html and plan-v<N>.md beside its plan.\n\nExamples:\n  refopt report refopt-demo/plans/optimize-referrals/plan-v000003.json\n  refopt report s3://bucket/plans/optimize-referrals/plan-v000012.json --detail full --out report.html\n  refopt report PLAN_URL --format markdown --out -      # the summary on stdout"
    )]
    Report(ReportArgs),
    /// Write the default pipeline and rules embedded in refopt (with the rule tests) into a
    /// folder for editing: <DIR>/pipelines and <DIR>/rules. Refuses to overwrite any file.
    #[command(
        after_help = "Then, from that folder (./rules and ./pipelines are found there):\n  refopt validate && refopt test\n  refopt run optimize-referrals --root s3://bucket/referrals"
    )]
    Init(InitArgs),
    /// Print a shell completion script, e.g. `refopt completions bash > /etc/bash_completion.d/refopt`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff); with --dir, write one page per command (refopt-run.1, ...).
    Man {
        /// Folder for refopt.1 and one page per command.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
}

/// `refopt init`.
#[derive(Debug, Clone, Args)]
pub struct InitArgs {
    /// Folder to write into (created if missing).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

/// `refopt report`.
#[derive(Debug, Clone, Args)]
pub struct ReportArgs {
    /// URL or path of a stored plan JSON (`.../<pipeline>/plan-v<N>.json`).
    pub plan: String,
    /// Where to write; `-` for stdout. Default: `plan-v<N>.html` (or `.md`) in the current
    /// folder.
    #[arg(long, short)]
    pub out: Option<String>,
    /// HTML report or Markdown summary.
    #[arg(long, value_enum, default_value_t = ReportFormat::Html)]
    pub format: ReportFormat,
    /// Level of detail; defaults to the detail the plan was run with.
    #[arg(long, value_enum)]
    pub detail: Option<Detail>,
}

/// Output format of `refopt report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    /// One self-contained HTML file (inline CSS and SVG, no scripts).
    Html,
    /// A Markdown summary (under 4,000 characters at `--detail summary`).
    Markdown,
}

/// The historical range of a backfill or backtest.
#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    /// First as-of date (window end, exclusive), YYYY-MM-DD.
    #[arg(long)]
    pub from: String,
    /// Last as-of date (included when the steps land on it), YYYY-MM-DD.
    #[arg(long)]
    pub to: String,
    /// Days between as-of dates: 1d, 7d, 30d (any Nd).
    #[arg(long, default_value = "7d")]
    pub step: String,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Pipeline name (looked up as <pipelines-dir>/<name>.yaml) or path to a pipeline YAML.
    pub pipeline: String,
    /// Data root: a local path, file://, s3://, gs:// or az:// URL.
    #[arg(long, env = "REFOPT_ROOT")]
    pub root: String,
    /// Where plans are written (default: <root>/_plans).
    #[arg(long, env = "REFOPT_PLANS")]
    pub plans: Option<String>,
    /// Folder holding pipeline files [default: ./pipelines if it exists, else the pipeline
    /// embedded in refopt].
    #[arg(long, env = "REFOPT_PIPELINES")]
    pub pipelines_dir: Option<PathBuf>,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Rewrite windows whose stored plan has the same inputs.
    #[arg(long)]
    pub force: bool,
    /// Windows analyzed at the same time (stages and rules); plans are still written oldest
    /// first. They share --memory-limit and --threads, and each extra window holds its own
    /// stage outputs in memory: worth raising only when one window leaves cores idle (see
    /// docs/performance.md).
    #[arg(long, env = "REFOPT_CONCURRENT_WINDOWS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrent_windows: u16,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Pipeline name (looked up as <pipelines-dir>/<name>.yaml) or path to a pipeline YAML.
    pub pipeline: String,
    /// Data root: a local path, file://, s3://, gs:// or az:// URL.
    #[arg(long, env = "REFOPT_ROOT")]
    pub root: String,
    /// Folder holding pipeline files [default: ./pipelines if it exists, else the pipeline
    /// embedded in refopt].
    #[arg(long, env = "REFOPT_PIPELINES")]
    pub pipelines_dir: Option<PathBuf>,
    /// The changed rule set (folder or object-store prefix) compared with --rules.
    #[arg(long)]
    pub new_rules: String,
    #[command(flatten)]
    pub range: RangeArgs,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProblemFormat {
    /// One block per diagnostic: `file:line:column: error[RF006]: message`, then its help.
    #[value(alias = "human")]
    Text,
    /// A JSON array of {code, level, file, line, column, message, help}.
    Json,
    /// GitHub Actions annotations (`::error file=...,line=...,col=...,title=RF006::message`;
    /// warnings as `::warning`).
    Github,
}

/// Which pipeline and rules to check.
#[derive(Debug, Clone, Args)]
pub struct ConfigArgs {
    /// Pipeline name (looked up in --pipelines-dir) or path to a pipeline YAML.
    #[arg(long, default_value = "optimize-referrals")]
    pub pipeline: String,
    /// Folder holding pipeline files [default: ./pipelines if it exists, else the pipeline
    /// embedded in refopt].
    #[arg(long, env = "REFOPT_PIPELINES")]
    pub pipelines_dir: Option<PathBuf>,
    /// Rules folder or object-store prefix [default: ./rules if it exists, else the rules
    /// embedded in refopt].
    #[arg(long, env = "REFOPT_RULES")]
    pub rules: Option<String>,
    /// Retries of a failed object-store request (timeouts, resets, 5xx, 429) after its first
    /// attempt, with exponential backoff and jitter; each failed attempt is recorded in the
    /// plan's error_handling.storage_retries.
    #[arg(long, env = "REFOPT_STORAGE_RETRIES", default_value_t = 2)]
    pub storage_retries: u32,
    /// Longest one object-store request may take, connect to last byte, e.g. 60s or 500ms; a
    /// stalled request fails and is retried.
    #[arg(long, env = "REFOPT_STORAGE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub storage_timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Output format of the diagnostics (errors and warnings; codes in docs/cli.md).
    #[arg(long, value_enum, default_value_t = ProblemFormat::Text)]
    pub format: ProblemFormat,
    /// Treat warnings (expired suppressions, stages nothing reads) as errors: exit 1 when there
    /// are any.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Kubernetes manifests to check (skipped when the folder does not exist): every file a
    /// kustomize configMapGenerator names must exist.
    #[arg(long, default_value = "k8s")]
    pub k8s: PathBuf,
    /// Also run the whole pipeline on a tiny generated data set in a temporary folder (nothing
    /// is written to any plan store) and report what the plan would contain.
    #[arg(long)]
    pub sample: bool,
}

#[derive(Debug, Subcommand)]
pub enum PlanCommand {
    /// Every stored version: version, created, window, as-of, findings, alerts, escalations.
    List(PlanStoreArgs),
    /// One plan (JSON), or one top-level section of it.
    Show {
        /// A version number or `latest`.
        #[arg(default_value = "latest", value_name = "VERSION")]
        which: String,
        /// Only this top-level key (e.g. `risk`, `change_log`, `backlog`).
        #[arg(long)]
        section: Option<String>,
        #[command(flatten)]
        store: PlanStoreArgs,
    },
    /// What differs between two versions (run ids, timestamps and timings are ignored).
    Diff {
        /// Older version (number or `latest`).
        a: String,
        /// Newer version (number or `latest`).
        b: String,
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
        #[command(flatten)]
        store: PlanStoreArgs,
    },
    /// A value across versions, e.g. `--metric risk.flag_rate` or
    /// `--metric metrics.funnel.0.rates.referral_to_won`.
    History {
        #[arg(long)]
        metric: String,
        #[command(flatten)]
        store: PlanStoreArgs,
    },
    /// Sign off a plan version: records who, when, the role and the plan's SHA-256 as a new
    /// audit object (the plan is never edited). Refused when a task or rule failed, a dataset
    /// was stale, or a newer plan exists. Approving twice is a no-op.
    Approve(DecisionArgs),
    /// Reject a plan version (recorded like an approval).
    Reject(DecisionArgs),
    /// Acknowledge an escalation episode of the latest plan: someone has it in hand, so it
    /// stays at the level it stands at instead of climbing the ladder every `advance_after`
    /// (rules/ladder.yaml) until it recovers. Recorded create-only under `<pipeline>/acks/`;
    /// acknowledging twice is a no-op.
    Ack(AckArgs),
    /// The audit trail of a version: approvals, rejections, notification deliveries, and the
    /// approval state (draft, awaiting roles, approved, rejected).
    Audit {
        /// A version number or `latest`.
        #[arg(default_value = "latest", value_name = "VERSION")]
        which: String,
        #[arg(long, value_enum, default_value_t = Output::Human)]
        output: Output,
        /// Rules folder (approvals.yaml says which roles must sign) [default: ./rules if it
        /// exists, else the embedded rules].
        #[arg(long, env = "REFOPT_RULES")]
        rules: Option<String>,
        #[command(flatten)]
        store: PlanStoreArgs,
    },
    /// Delete flagged-referrals files that no stored plan names: what a run killed between
    /// writing that file and its plan left behind (a rerun over the same data adopts the file
    /// instead). Files younger than `--older-than` are kept, as they may belong to a run that is
    /// finishing. Refuses when a stored plan cannot be read (it might name a file).
    Gc {
        /// Keep files modified within this long, e.g. 1h or 30m.
        #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
        older_than: std::time::Duration,
        /// Only list what would be deleted.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        store: PlanStoreArgs,
    },
}

/// `plan approve` / `plan reject`.
#[derive(Debug, Clone, Args)]
pub struct DecisionArgs {
    /// A version number or `latest`.
    #[arg(value_name = "VERSION")]
    pub which: String,
    /// Who decides (recorded).
    #[arg(long)]
    pub by: String,
    /// The role signed for (e.g. fraud-detection), when the plan needs role sign-offs.
    #[arg(long)]
    pub role: Option<String>,
    #[arg(long)]
    pub note: Option<String>,
    /// Rules folder: approvals.yaml (policy) and notifications.yaml (plan_approved/rejected)
    /// [default: ./rules if it exists, else the embedded rules].
    #[arg(long, env = "REFOPT_RULES")]
    pub rules: Option<String>,
    /// Print what would be notified, send nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub store: PlanStoreArgs,
}

/// `plan ack`.
#[derive(Debug, Clone, Args)]
pub struct AckArgs {
    /// The escalation's trigger as the plan names it, e.g. `alert:partner_nps_low:all` or
    /// `fraud_spike` (`refopt plan show latest --section escalations`).
    #[arg(value_name = "TRIGGER")]
    pub trigger: String,
    /// Who takes it in hand (recorded).
    #[arg(long)]
    pub by: String,
    #[arg(long)]
    pub note: Option<String>,
    #[command(flatten)]
    pub store: PlanStoreArgs,
}

/// Where the plans are.
#[derive(Debug, Clone, Args)]
pub struct PlanStoreArgs {
    /// Plans root (URL or path), as given to `refopt run --plans`.
    #[arg(long, env = "REFOPT_PLANS")]
    pub plans: String,
    /// Pipeline name.
    #[arg(long, default_value = "optimize-referrals")]
    pub pipeline: String,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Folder of test files (*.yaml) or one file [default: the `tests` folder of a local
    /// --rules folder, else ./rules/tests].
    pub path: Option<PathBuf>,
    /// Rules folder or object-store prefix under test [default: ./rules if it exists, else the
    /// rules embedded in refopt].
    #[arg(long, env = "REFOPT_RULES")]
    pub rules: Option<String>,
    /// Retries of a failed object-store request (timeouts, resets, 5xx, 429) after its first
    /// attempt, with exponential backoff and jitter; each failed attempt is recorded in the
    /// plan's error_handling.storage_retries.
    #[arg(long, env = "REFOPT_STORAGE_RETRIES", default_value_t = 2)]
    pub storage_retries: u32,
    /// Longest one object-store request may take, connect to last byte, e.g. 60s or 500ms; a
    /// stalled request fails and is retried.
    #[arg(long, env = "REFOPT_STORAGE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub storage_timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// Only this stage (default: every stage).
    pub stage: Option<String>,
    #[command(flatten)]
    pub config: ConfigArgs,
    /// Also print the physical plan.
    #[arg(long)]
    pub physical: bool,
    /// Plan against the real datasets under this root instead of empty tables of the declared
    /// types (needed for a realistic physical plan: file scans, partition pruning).
    #[arg(long, env = "REFOPT_ROOT")]
    pub root: Option<String>,
    /// Window used to bind the placeholders.
    #[arg(long, default_value = "30d")]
    pub window: String,
    /// End of the window (exclusive), YYYY-MM-DD (default: today).
    #[arg(long)]
    pub as_of: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RuleEngine {
    /// Expressions with a compiled form run inside DataFusion; the rest in the interpreter.
    Auto,
    /// Every expression runs row by row in the Rhai interpreter.
    Interpreter,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Detail {
    /// Overall funnel and top values per dimension.
    Summary,
    /// Everything: previous-window counts for every row, all partners.
    Full,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// A readable summary.
    Human,
    /// The plan JSON on stdout.
    Json,
}

/// Flags shared by `run` and `demo`: the seed command's inputs.
#[derive(Debug, Clone, Args)]
pub struct AnalysisArgs {
    /// Analysis window: 7d, 30d, 90d (any whole number of days up to 366d).
    #[arg(long, default_value = "30d")]
    pub window: String,
    /// How much goes into the plan and the printed summary.
    #[arg(long, value_enum, default_value_t = Detail::Summary)]
    pub detail: Detail,
    /// Breakdowns, comma-separated: channel, persona, region, partner-tier.
    #[arg(long, value_delimiter = ',', default_value = "channel,partner-tier")]
    pub dimensions: Vec<String>,
    /// Experiments to evaluate, comma-separated ids (recorded in the plan).
    #[arg(long, value_delimiter = ',')]
    pub experiments: Vec<String>,
    /// Replaces the warn level of the alerts marked `uses_alert_threshold: true` in
    /// alerts.yaml (shipped rules: `referral_to_won_low`, the referral -> won rate, so a share
    /// between 0 and 1). Checked against each such alert: a rate must be within 0..1, and the
    /// value must lie on the warn side of the alert's critical level; a value that changes no
    /// alert is an error (exit 3). Recorded in the plan's inputs.
    #[arg(long, value_name = "LEVEL")]
    pub alert_threshold: Option<f64>,
    /// Print a human summary or the plan JSON.
    #[arg(long, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// How fraud-rule expressions run. `auto`: an expression made of comparisons, arithmetic,
    /// `!`/`&&`/`||`, `in` lists, `is_null`, `coalesce`, `ratio`, `ip_network` and the string
    /// methods contains/starts_with/ends_with over `row` and `params` is compiled to a DataFusion
    /// filter (vectorized; its sensitivity sweep in the same scan); anything else runs row by
    /// row in the Rhai interpreter. `interpreter`: every expression in Rhai, to check the
    /// compiled forms. The plan's risk.rules[].evaluation says which ran.
    #[arg(long, value_enum, default_value_t = RuleEngine::Auto)]
    pub rule_engine: RuleEngine,
    /// Query threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Memory limit for queries, e.g. 2GiB or 512MiB; operators spill to disk beyond it, and
    /// stage outputs are written to the scratch folder.
    #[arg(long, value_parser = parse_size)]
    pub memory_limit: Option<usize>,
    /// Folder for the run's scratch files: stage outputs (Arrow IPC) and operators' spill files,
    /// in a `refopt-scratch-<pid>-*` folder removed when the run ends (a killed run's is removed
    /// by the next). Stage outputs are written there instead of held in memory whenever this is
    /// given or --memory-limit is set [default: the system temp folder, TMPDIR].
    #[arg(long, env = "REFOPT_SCRATCH", value_name = "DIR")]
    pub scratch: Option<std::path::PathBuf>,
    /// Prometheus Pushgateway to push run metrics to after the run (duration, success, rows,
    /// findings, alerts, escalations); best effort, a failed push never fails the run.
    #[arg(long, env = "REFOPT_PUSHGATEWAY", value_name = "URL")]
    pub pushgateway: Option<String>,
    /// Rules folder or object-store prefix (s3://, gs://, az://) holding fraud.yaml, alerts.yaml,
    /// ladder.yaml, partner_health.yaml, suppressions.yaml, experiments.yaml, approvals.yaml,
    /// notifications.yaml and the .rhai scripts. Rules are read at run time: edit them without
    /// rebuilding [default: ./rules if it exists, else the rules embedded in refopt; `refopt
    /// init` writes those out for editing].
    #[arg(long, env = "REFOPT_RULES")]
    pub rules: Option<String>,
    /// Retries of a failed object-store request (timeouts, resets, 5xx, 429) after its first
    /// attempt, with exponential backoff and jitter; each failed attempt is recorded in the
    /// plan's error_handling.storage_retries.
    #[arg(long, env = "REFOPT_STORAGE_RETRIES", default_value_t = 2)]
    pub storage_retries: u32,
    /// Longest one object-store request may take, connect to last byte, e.g. 60s or 500ms; a
    /// stalled request fails and is retried.
    #[arg(long, env = "REFOPT_STORAGE_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub storage_timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Pipeline name (looked up as <pipelines-dir>/<name>.yaml) or path to a pipeline YAML.
    pub pipeline: String,
    /// Data root: a local path, file://, s3://bucket/prefix, gs://bucket/prefix or az://container/prefix.
    #[arg(long, env = "REFOPT_ROOT")]
    pub root: String,
    /// Where plans are written (default: <root>/_plans).
    #[arg(long, env = "REFOPT_PLANS")]
    pub plans: Option<String>,
    /// Folder holding pipeline files [default: ./pipelines if it exists, else the pipeline
    /// embedded in refopt].
    #[arg(long, env = "REFOPT_PIPELINES")]
    pub pipelines_dir: Option<PathBuf>,
    /// End of the window (exclusive), YYYY-MM-DD, UTC (default: today).
    #[arg(long, conflicts_with = "as_of_from_index")]
    pub as_of: Option<String>,
    /// For Kubernetes Indexed Jobs (backfills): `START:STEP_DAYS`; the as-of date is
    /// START + JOB_COMPLETION_INDEX x STEP_DAYS (e.g. `2026-01-01:7` gives one weekly window per
    /// index).
    #[arg(long, value_name = "START:STEP_DAYS")]
    pub as_of_from_index: Option<String>,
    /// Run without writing a plan.
    #[arg(long)]
    pub dry_run: bool,
    /// Write a new plan version even when the latest plan has the same inputs (data files,
    /// rules, pipeline, parameters); without it such a rerun reports "unchanged" and writes
    /// nothing.
    #[arg(long)]
    pub force: bool,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Where to write: a local path or object store URL.
    #[arg(long)]
    pub root: String,
    /// Days of events.
    #[arg(long, default_value_t = 120)]
    pub days: u32,
    /// Millions of organic invites over the period (0.05 = 50,000; 100 = 100 M).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Seed of every random choice: same seed, same data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// First day after the data, YYYY-MM-DD (default: today, UTC).
    #[arg(long)]
    pub end: Option<String>,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Local folder for demo data (<dir>/data) and plans (<dir>/plans).
    #[arg(long, default_value = "refopt-demo")]
    pub dir: PathBuf,
    /// Millions of invites to generate.
    #[arg(long, default_value_t = 0.1)]
    pub scale: f64,
    /// Days of data.
    #[arg(long, default_value_t = 120)]
    pub days: u32,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Regenerate the data even if the folder already has some.
    #[arg(long)]
    pub regenerate: bool,
    /// Folder holding pipeline files [default: ./pipelines if it exists, else the pipeline
    /// embedded in refopt].
    #[arg(long, env = "REFOPT_PIPELINES")]
    pub pipelines_dir: Option<PathBuf>,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// Data root written by `refopt generate` (with its `_truth/` labels).
    #[arg(long)]
    pub root: String,
    /// End of the window (exclusive), YYYY-MM-DD.
    #[arg(long)]
    pub as_of: String,
    /// Folder holding pipeline files [default: ./pipelines if it exists, else the pipeline
    /// embedded in refopt].
    #[arg(long, env = "REFOPT_PIPELINES")]
    pub pipelines_dir: Option<PathBuf>,
    /// Pipeline name or file.
    #[arg(long, default_value = "optimize-referrals")]
    pub pipeline: String,
    #[command(flatten)]
    pub analysis: AnalysisArgs,
}

/// Parses sizes such as `512MiB`, `2GiB`, `1.5GB` or a plain number of bytes.
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let value: f64 = num.parse().map_err(|_| format!("invalid size `{s}`"))?;
    let factor: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "kib" => 1024.0,
        "m" | "mb" => 1e6,
        "mib" => 1024.0 * 1024.0,
        "g" | "gb" => 1e9,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{s}` (use MiB or GiB)"
            ));
        }
    };
    Ok((value * factor) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512MiB").unwrap(), 512 * 1024 * 1024);
        assert_eq!(parse_size("2GiB").unwrap(), 2 * 1024 * 1024 * 1024);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("2XB").is_err());
    }
}
