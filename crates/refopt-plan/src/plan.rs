//! Plan JSON v1: the audit record of one run. Field names are the stable contract that tools
//! rely on (see `docs/plan-format.md`); the JSON Schema in `docs/plan.schema.json` is generated
//! from these types and checked for drift by the test suite.

use schemars::JsonSchema;

use crate::money::Money;
use serde::{Deserialize, Serialize};

pub use crate::vocabulary::*;

/// Version of the plan format written by this build.
pub const SCHEMA_VERSION: &str = "1.3";

/// One run's plan: inputs, what was read, what ran, what was measured and recommended.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    /// Plan format version (`1.x`).
    pub schema_version: String,
    /// Unique id of the run that wrote this plan.
    pub run_id: String,
    /// Version within the pipeline's plan store (1, 2, ...; 0 for a plan that was not stored).
    pub version: u64,
    pub pipeline: PipelineInfo,
    /// RFC 3339 UTC time the plan was assembled.
    pub created_at: String,
    /// `succeeded` when every task succeeded.
    pub status: RunStatus,
    pub inputs: Inputs,
    pub datasets: Vec<DatasetRead>,
    pub tasks: Vec<Task>,
    pub dependency_graph: DependencyGraph,
    pub error_handling: ErrorHandling,
    pub success_metrics: Vec<SuccessMetric>,
    pub metrics: Metrics,
    pub findings: Vec<Finding>,
    pub risk: Risk,
    pub partner_health: PartnerHealth,
    pub experiments: Vec<ExperimentResult>,
    pub alerts: Vec<Alert>,
    /// The escalated episodes that are open (level 1 or higher), one per trigger.
    pub escalations: Vec<Escalation>,
    /// The escalation memory of the series, continued by the next as-of date's plan (since 1.1).
    #[serde(default)]
    pub escalation_state: EscalationState,
    pub backlog: Vec<BacklogItem>,
    /// Drafted messages to partners with a tier change or a health drop, for partner-ops to
    /// review (from the templates of `rules/partner_messages.yaml`).
    #[serde(default)]
    pub partner_communications: Vec<PartnerCommunication>,
    pub change_log: Vec<ChangeLogEntry>,
}

/// Overall outcome of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    #[default]
    Succeeded,
    Failed,
    /// Succeeded, and an escalation episode stands escalated: its rip-cord was pulled (every
    /// level's owner and fallback told once) and it has not recovered.
    Escalated,
}

/// Which pipeline ran, and its shape.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct PipelineInfo {
    pub name: String,
    pub description: String,
    /// Execution pattern, e.g. `pipeline with diamond block and merge gate`.
    pub pattern: String,
}

/// The run's parameters (the seed command's inputs).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Inputs {
    /// Window as given, e.g. `30d`.
    pub window: String,
    pub window_days: u32,
    /// Exclusive end of the window (`YYYY-MM-DD`, midnight UTC).
    pub as_of: String,
    /// RFC 3339 start of the current window.
    pub window_start: String,
    /// RFC 3339 start of the previous window (deltas compare against it).
    pub previous_window_start: String,
    pub detail: Detail,
    pub dimensions: Vec<String>,
    pub experiments: Vec<String>,
    pub alert_threshold: Option<f64>,
    /// Data root URL (never contains credentials).
    pub data_root: String,
    /// Rules folder or object-store URL the rules were read from; `embedded@<version>/rules`
    /// for the defaults compiled into refopt.
    pub rules: String,
    /// Pipeline file the run used; `embedded@<version>/pipelines/<name>.yaml` for the default
    /// compiled into refopt (empty in plans before schema 1.3).
    #[serde(default)]
    pub pipeline: String,
    /// SHA-256 of every rule and pipeline file the run used (`rules/fraud.yaml`,
    /// `pipeline/sql/funnel.sql`, ...), so a plan says exactly which configuration produced it.
    pub config_hashes: std::collections::BTreeMap<String, String>,
    /// SHA-256 over everything that determines the plan: the data files (paths, sizes, ETags),
    /// the configuration hashes and the parameters. A rerun with the same fingerprint reports
    /// the existing plan instead of writing a duplicate (unless `--force`).
    pub fingerprint: String,
}

/// How much goes into the plan and the printed summary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Detail {
    #[default]
    Summary,
    Full,
}

/// One dataset as read by the run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct DatasetRead {
    pub name: String,
    pub url: String,
    pub files: u64,
    pub bytes: u64,
    /// Data-refresh checks for the current and previous window (empty when the pipeline has no
    /// dataset-health stage).
    pub checks: Vec<DatasetCheck>,
    /// The pipeline's declared data tests of this dataset, in declaration order (empty when it
    /// declares none).
    #[serde(default)]
    pub tests: Vec<DataTestResult>,
}

/// One declared data test of a dataset and what it measured in the current window.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct DataTestResult {
    /// Stable id within the dataset, e.g. `not_null:referral_id`,
    /// `relationships:referral_id->referrals.referral_id`, `freshness`.
    pub id: String,
    pub kind: DataTestKind,
    /// The column tested (null for `freshness` and `row_count_change`).
    pub column: Option<String>,
    /// `pass`, `warn` (a finding) or `error` (an alert; blocks approval).
    pub status: DataTestStatus,
    /// Rows of the current window the test looked at.
    pub rows: u64,
    /// `row_count_change`: rows of the previous window.
    pub previous_rows: Option<u64>,
    /// Rows that failed (`not_null`, `unique`, `accepted_values`, `relationships`).
    pub failing_rows: Option<u64>,
    /// `freshness`: hours from the newest event to the window's end (null without events).
    /// `row_count_change`: relative change of rows vs the previous window (null without
    /// previous rows).
    pub observed: Option<f64>,
    /// The limit that was crossed (failing rows allowed, hours, or the relative drop), when
    /// one was.
    pub threshold: Option<f64>,
    /// What was measured, in one sentence.
    pub message: String,
}

/// Data-refresh checks of one dataset over one period.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct DatasetCheck {
    /// `current` or `previous`.
    pub period: String,
    pub rows: u64,
    /// Required non-nullable values that were null.
    pub null_violations: u64,
    /// Rows whose key appears more than once.
    pub duplicate_keys: u64,
    /// RFC 3339 time of the newest event in the period, if any.
    pub latest_event_at: Option<String>,
}

/// One executed (or skipped) task of the dependency graph.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Task {
    pub id: String,
    /// `sql` or `gate`.
    pub kind: String,
    pub status: TaskStatus,
    pub attempts: u32,
    pub depends_on: Vec<String>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub duration_ms: Option<u64>,
    pub output_rows: Option<u64>,
    pub error: Option<String>,
    /// For a `scope: range` stage, the days it computed over (`start..end`, end exclusive).
    /// A backfill computes such a stage once over all its windows' days and every window's
    /// plan records that shared computation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<String>,
}

/// Outcome of one task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    #[default]
    Succeeded,
    Failed,
    /// Not run because a dependency failed.
    Skipped,
}

/// The stage graph: nodes, edges and the groups that ran concurrently.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct DependencyGraph {
    pub nodes: Vec<String>,
    pub edges: Vec<Edge>,
    /// Stages grouped by depth: stages in one group have no path between them and may run
    /// concurrently (the diamond).
    pub parallel_groups: Vec<Vec<String>>,
    /// Gate stages that join parallel branches.
    pub merge_gates: Vec<String>,
}

/// `from` must finish before `to` starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Edge {
    pub from: String,
    pub to: String,
}

/// Retries and failures handled during the run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ErrorHandling {
    /// Default retry limit of the pipeline's stages.
    pub retry_limit: u32,
    pub events: Vec<ErrorEvent>,
    /// Retries of one storage request after its first attempt (object stores only).
    #[serde(default)]
    pub storage_retry_limit: u32,
    /// Storage requests that failed and were retried (timeouts, resets, 5xx, 429), in order.
    /// Retries of the final plan write itself are only logged: they happen after the plan
    /// is serialized.
    #[serde(default)]
    pub storage_retries: Vec<StorageRetry>,
}

/// One failed storage request attempt that was retried.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct StorageRetry {
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Request path in the store (never a query string).
    pub object: String,
    /// HTTP status or transport error kind and cause.
    pub error: String,
    /// RFC 3339 time of the failure.
    pub at: String,
}

/// One failed attempt and what was done about it.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ErrorEvent {
    pub task_id: String,
    pub attempt: u32,
    pub error: String,
    /// `retried`, `gave_up` or `not_retryable`.
    pub action: ErrorAction,
    pub backoff_ms: Option<u64>,
}

/// A success metric of the seed (conversion lift, fraud reduction, partner NPS).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct SuccessMetric {
    pub name: String,
    pub description: String,
    /// Current value; null when the data cannot support it (e.g. no previous window).
    pub current: Option<f64>,
    pub target: f64,
    /// `higher_is_better` or `lower_is_better`.
    pub direction: Better,
    /// `met`, `not_met` or `unknown`.
    pub status: TargetStatus,
}

/// Measured metrics.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Metrics {
    /// Funnel rows: the `overall` row first, then one row per value of each requested dimension.
    pub funnel: Vec<FunnelRow>,
    /// Program KPIs per period (`metric` -> value), from the pipeline's KPI stage.
    pub kpis: Vec<Kpi>,
}

impl Metrics {
    /// The funnel rows of one dimension, in plan order.
    pub fn funnel_rows<'a>(&'a self, dimension: &'a str) -> impl Iterator<Item = &'a FunnelRow> {
        self.funnel.iter().filter(move |r| r.dimension == dimension)
    }
}

/// A KPI for the current window with its previous-window value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Kpi {
    pub metric: String,
    pub current: Option<f64>,
    pub previous: Option<f64>,
    pub delta: Option<f64>,
}

/// Funnel of one dimension value (or of everything: dimension `overall`, value `all`).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct FunnelRow {
    pub dimension: String,
    pub value: String,
    pub current: FunnelCounts,
    /// Previous-window counts (omitted at `--detail summary` except for `overall`).
    pub previous: Option<FunnelCounts>,
    pub rates: FunnelRates,
    /// Current minus previous, for each rate (absolute, not relative).
    pub rate_deltas: FunnelRates,
    /// Relative change of won deals and revenue vs the previous window.
    pub won_change: Option<f64>,
    pub revenue_change: Option<f64>,
}

/// Counts through the funnel for one period.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct FunnelCounts {
    pub invites: u64,
    pub referrals: u64,
    pub signups: u64,
    pub qualified: u64,
    pub opportunities: u64,
    pub won: u64,
    /// USD of won deals.
    pub revenue: Money,
    /// USD paid or owed to referrers and partners (excluding reversed payouts).
    pub payout_cost: Money,
    /// Referrals of this period's cohort with a fraud flag (the `fraud_flags` dataset) raised
    /// before the period ends. 0 in plans older than 1.1.
    #[serde(default)]
    pub flagged: u64,
    /// NPS answers given in the period and attributed to this value (see docs/plan-format.md).
    #[serde(default)]
    pub nps_responses: u64,
    /// Answers scoring 9 or 10.
    #[serde(default)]
    pub nps_promoters: u64,
    /// Answers scoring 0 to 6.
    #[serde(default)]
    pub nps_detractors: u64,
}

/// Step conversion rates and incentive efficiency; null where the denominator is zero.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct FunnelRates {
    /// referrals / invites
    pub invite_to_referral: Option<f64>,
    /// signups / referrals
    pub referral_to_signup: Option<f64>,
    /// qualified / signups
    pub signup_to_qualified: Option<f64>,
    /// opportunities / qualified
    pub qualified_to_opportunity: Option<f64>,
    /// won / opportunities
    pub opportunity_to_won: Option<f64>,
    /// won / referrals
    pub referral_to_won: Option<f64>,
    /// payout_cost / won
    pub cost_per_won: Option<f64>,
    /// revenue / payout_cost
    pub revenue_per_payout_dollar: Option<f64>,
    /// flagged / referrals
    #[serde(default)]
    pub flag_rate: Option<f64>,
    /// NPS: 100 x (promoters - detractors) / answers, from -100 to 100
    #[serde(default)]
    pub nps: Option<f64>,
}

/// A finding (filled by rules; see the rules issue).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Finding {
    pub id: String,
    pub kind: String,
    pub severity: Severity,
    pub title: String,
    pub detail: String,
}

/// Fraud and risk summary of the review.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Risk {
    /// Referrals of the current window the fraud rules looked at.
    pub referrals_reviewed: u64,
    /// Referrals flagged by at least one rule.
    pub referrals_flagged: u64,
    /// flagged / reviewed; null without referrals.
    pub flag_rate: Option<f64>,
    /// Flag rate per channel.
    pub flag_rate_by_channel: Vec<FlagRate>,
    /// Payout dollars of flagged referrals.
    pub payouts_at_risk: PayoutsAtRisk,
    /// Comparison with the program's existing `fraud_flags`.
    pub existing_flags: ExistingFlagsComparison,
    /// What each rule did (failed rules carry their error).
    pub rules: Vec<RuleSummary>,
    /// URL of the Parquet file with every flagged referral (`referral_id`, `rule_ids`, `score`,
    /// `cluster_id`); null when nothing was flagged or the run was a dry run.
    pub flagged_referrals_url: Option<String>,
    /// Largest clusters of linked flagged accounts (shared devices or cards).
    pub cohorts: Vec<Cohort>,
    /// Allowlist entries: what each kept from being flagged; expired ones no longer apply.
    pub suppressions: Vec<SuppressionReport>,
    /// Referrals each rule with numeric thresholds would flag at scaled thresholds
    /// (`--detail full` only): the flags just below and above the line.
    pub sensitivity: Vec<SensitivityRow>,
    /// How concentrated the window's payouts are; null without a concentration table.
    pub payout_concentration: Option<PayoutConcentration>,
    /// Recommended action for flagged referrals' payouts.
    pub payout_hold: Option<PayoutHold>,
}

/// What one suppression (allowlist entry) did in this run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct SuppressionReport {
    pub id: String,
    /// Referrals column matched (e.g. `ip`).
    pub column: String,
    pub reason: String,
    pub owner: String,
    /// Last day the suppression applies (YYYY-MM-DD).
    pub expires: String,
    /// `active`, `expired` (no longer applied) or `failed` (could not be applied).
    pub status: SuppressionStatus,
    /// Referrals it kept from being flagged (active) or would have (expired).
    pub referrals_matched: u64,
    pub error: Option<String>,
}

/// Referrals one rule flags at its threshold scaled by `factor`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct SensitivityRow {
    pub rule_id: String,
    /// Referrals flagged at the configured thresholds.
    pub at_threshold: u64,
    /// One point per factor (e.g. 0.8 and 1.25).
    pub scaled: Vec<SensitivityPoint>,
}

/// Referrals flagged at one scaling factor of a rule's numeric thresholds.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct SensitivityPoint {
    pub factor: f64,
    /// Null when the scaled rule failed to evaluate.
    pub referrals_flagged: Option<u64>,
}

/// Payout concentration: the window's payouts across partners, across referrers, and within
/// partners across their referrers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct PayoutConcentration {
    /// Program-wide rows (`scope` `partner` and `referrer`).
    pub program: Vec<ConcentrationRow>,
    /// Populations beyond the configured limits (most concentrated first, at most 20).
    pub beyond_limits: Vec<ConcentrationRow>,
    /// Severity of the findings raised for populations beyond the limits.
    pub severity: Severity,
}

/// Concentration of one population of payout recipients.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ConcentrationRow {
    /// `partner`, `referrer` (program-wide) or `partner_referrers` (one partner's referrers).
    pub scope: String,
    /// The partner id for `partner_referrers`; null for program-wide rows.
    pub group_id: Option<String>,
    pub recipients: u64,
    pub payouts: Money,
    pub top1_share: Option<f64>,
    pub top5_share: Option<f64>,
    /// Gini coefficient of the recipients' payouts (0 equal, 1 all to one).
    pub gini: Option<f64>,
}

/// The recommendation to hold (not pay) the payouts of flagged referrals pending review.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct PayoutHold {
    /// Flagged referrals with pending or held payouts.
    pub referrals: u64,
    /// Pending or held payout dollars to hold.
    pub amount: Money,
    pub owner: String,
    pub reason: String,
}

/// Flag rate of one dimension value.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct FlagRate {
    pub value: String,
    pub referrals: u64,
    pub flagged: u64,
    pub rate: Option<f64>,
}

/// Payout dollars tied to flagged referrals.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct PayoutsAtRisk {
    /// Pending or held: hold them pending review.
    pub unpaid: Money,
    /// Already paid: candidates for recovery.
    pub paid: Money,
}

/// How the rules' flags compare with the program's existing fraud flags.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ExistingFlagsComparison {
    /// Window referrals flagged in `fraud_flags`.
    pub existing: u64,
    /// Flagged by both.
    pub agreement: u64,
    /// Flagged by the rules only.
    pub new_flags: u64,
    /// Flagged in `fraud_flags` only.
    pub existing_only: u64,
}

/// What one fraud rule did.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct RuleSummary {
    pub rule_id: String,
    pub pattern: String,
    pub severity: Severity,
    pub rows_selected: u64,
    pub referrals_flagged: u64,
    pub error: Option<String>,
    /// How the rule selected its rows (absent when it failed, and in older plans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<RuleEvaluation>,
}

/// A cluster of linked flagged accounts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Cohort {
    pub cluster_id: String,
    pub referrals: u64,
    pub referrers: u64,
    /// Up to five shared devices.
    pub devices: Vec<String>,
    /// Up to five IP addresses the cluster's flagged referrals came from.
    #[serde(default)]
    pub ips: Vec<String>,
    pub payment_fingerprints: u64,
    pub rule_ids: Vec<String>,
    /// Payout dollars (pending, held or paid) of the cluster's referrals in the window.
    #[serde(default)]
    pub payouts_at_risk: Money,
}

/// Partner health: scores from the partner health script, top/bottom partners, at-risk
/// partners and tier-change suggestions.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct PartnerHealth {
    /// Partners in the partner health stage output.
    pub partners_evaluated: u64,
    /// Partners that got a score (enough referrals, script succeeded).
    pub partners_scored: u64,
    pub top: Vec<PartnerScore>,
    pub bottom: Vec<PartnerScore>,
    /// Scored below the at-risk line, by revenue (most valuable first).
    pub at_risk: Vec<PartnerScore>,
    pub tier_changes: Vec<TierChange>,
    /// Partners whose score fell by at least `health_drop_points` since the previous plan of
    /// the series, largest drop first.
    #[serde(default)]
    pub health_drops: Vec<HealthDrop>,
    /// Every scored partner's score by partner id: the next run compares against it.
    #[serde(default)]
    pub scores: std::collections::BTreeMap<String, f64>,
    /// Partner rows with their `health_score` (10 at `--detail summary`, all at `full`).
    pub partners: Vec<serde_json::Value>,
    /// Set when the scoring script failed (file:line:column and message).
    pub error: Option<String>,
}

/// A partner's health score with its headline numbers.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct PartnerScore {
    pub partner_id: String,
    pub name: String,
    pub tier: String,
    pub score: f64,
    pub referrals: i64,
    /// Referrals in the previous window (the partner's trend).
    #[serde(default)]
    pub referrals_previous: i64,
    pub revenue: Money,
    /// The partner's share of all partner mentions in the window (since 1.1).
    #[serde(default)]
    pub share_of_voice: Option<f64>,
}

/// A suggested tier change.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct TierChange {
    pub partner_id: String,
    pub name: String,
    pub from: Tier,
    pub to: Tier,
    pub score: f64,
    pub reason: String,
    /// Referrals in the current and the previous window (the partner's trend).
    #[serde(default)]
    pub referrals: i64,
    #[serde(default)]
    pub referrals_previous: i64,
    #[serde(default)]
    pub revenue: Money,
}

/// A partner whose health score fell since the previous plan.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct HealthDrop {
    pub partner_id: String,
    pub name: String,
    pub tier: String,
    /// Score in the previous plan (`previous_version`).
    pub previous_score: f64,
    pub score: f64,
    /// previous_score - score (positive).
    pub drop: f64,
    pub previous_version: u64,
    pub referrals: i64,
    pub referrals_previous: i64,
    pub revenue: Money,
}

/// A message to one partner drafted from a template, for partner-ops to review and send.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct PartnerCommunication {
    pub partner_id: String,
    pub partner_name: String,
    pub reason: CommunicationReason,
    pub subject: String,
    pub body: String,
    /// Who reviews and sends it (`partner-ops`).
    pub owner: String,
    /// The template's place, `rules/partner_messages.yaml#tier_change`.
    pub template: String,
}

/// One evaluated experiment: allocation checks, every comparison with its numbers, and the
/// decision they support (docs/experiments.md describes the methods).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ExperimentResult {
    pub id: String,
    pub hypothesis: String,
    pub owner: String,
    /// What was randomized (`referrer`).
    pub unit: String,
    pub control: String,
    pub primary_metric: String,
    pub alpha: f64,
    pub power: f64,
    /// Relative lift of the primary metric the experiment is sized to detect.
    pub minimum_detectable_effect: f64,
    /// `holm` or `benjamini_hochberg`, over this experiment's comparisons.
    pub correction: String,
    /// Units per variant (single-variant units only), with expected and observed shares.
    pub variants: Vec<VariantAllocation>,
    /// Units exposed to more than one variant: reported, and excluded from every variant.
    pub multi_exposed_units: u64,
    pub srm: SampleRatioCheck,
    pub comparisons: Vec<Comparison>,
    /// Sample size for the primary metric at the MDE, and when it will be reached.
    pub power_analysis: Option<PowerAnalysis>,
    /// Extra referrer payout per extra qualified referral of the best treatment (payout cost
    /// per unit difference / qualified referrals per unit difference); null when the treatment
    /// did not add qualified referrals.
    pub cost_per_incremental_qualified_referral: Option<f64>,
    /// `ship`, `stop`, `keep_running` or `investigate_srm`.
    pub decision: Decision,
    /// The treatment the decision is about (for `ship`: the one to roll out).
    pub decision_variant: Option<String>,
    /// The numbers behind the decision, in one sentence.
    pub decision_reason: String,
}

/// A variant's share of units.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct VariantAllocation {
    pub variant: String,
    pub units: u64,
    pub expected_share: f64,
    pub observed_share: f64,
}

/// Chi-square goodness of fit of units per variant against the declared shares.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct SampleRatioCheck {
    pub chi_square: f64,
    pub degrees_of_freedom: u32,
    pub p_value: f64,
    /// Alarm level (default 0.001).
    pub threshold: f64,
    /// p_value < threshold: the allocation is broken and no effect can be trusted.
    pub mismatch: bool,
}

/// One treatment vs the control on one metric.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Comparison {
    pub variant: String,
    pub metric: String,
    /// `primary`, `secondary` or `guardrail`.
    pub role: String,
    /// `proportion` (two-proportion z-test) or `mean` (Welch's t-test).
    pub kind: String,
    pub control_units: u64,
    pub variant_units: u64,
    pub control_value: f64,
    pub variant_value: f64,
    /// variant - control.
    pub absolute_lift: f64,
    /// Confidence interval (1 - alpha) of the absolute lift.
    pub absolute_ci: [f64; 2],
    /// variant / control - 1; null when the control value is 0.
    pub relative_lift: Option<f64>,
    pub relative_ci: Option<[f64; 2]>,
    /// z (proportions) or t (means).
    pub statistic: f64,
    /// Welch-Satterthwaite degrees of freedom (means only).
    pub degrees_of_freedom: Option<f64>,
    pub p_value: f64,
    /// After the experiment's multiple-testing correction.
    pub p_adjusted: f64,
    /// p_adjusted < alpha.
    pub significant: bool,
    /// Guardrails only: the largest acceptable relative harm, and whether it was exceeded
    /// significantly.
    pub max_relative_harm: Option<f64>,
    pub guardrail_violated: Option<bool>,
}

/// Sample size needed for the primary metric at the minimum detectable effect.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct PowerAnalysis {
    /// Control's value of the primary metric (the baseline the MDE applies to).
    pub baseline: f64,
    pub required_units_per_variant: u64,
    /// Smallest variant's units so far.
    pub units_per_variant: u64,
    /// New units per variant per day since the first assignment.
    pub units_per_variant_per_day: f64,
    /// Days until every variant has the required units at the current rate (0 when reached;
    /// null when no units arrive).
    pub days_to_required_sample: Option<f64>,
}
/// A KPI alert that fired in this run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Alert {
    /// Alert rule id.
    pub id: String,
    pub metric: String,
    pub dimension: String,
    /// Dimension value (`all` for overall).
    pub value: String,
    /// `warn` or `critical`.
    pub level: AlertLevel,
    pub current: f64,
    /// The level that was crossed.
    pub threshold: f64,
    /// `below` or `above`.
    pub direction: Crossing,
    /// Denominator behind the value (the minimum-sample gate passed).
    pub sample: u64,
    pub owner: String,
    pub message: String,
}

/// An escalation up the ladder.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Escalation {
    /// What escalated: `alert:<id>:<value>` or `fraud_spike`.
    pub trigger: String,
    /// 1-based ladder level.
    pub level: u32,
    pub role: String,
    pub owner: String,
    pub fallback_owner: String,
    pub reason: String,
    /// Runs of the breached periods that led here, oldest first (one per period).
    pub run_ids: Vec<String>,
    /// As-of date of the episode's first breach (since 1.1): with the trigger, the episode an
    /// acknowledgement (`refopt plan ack`) names.
    #[serde(default)]
    pub episode_opened: String,
}

/// Escalation memory: what one plan passes to the plan of the next as-of date of its series.
/// Breaches are counted per breach period of as-of dates, so reruns of a date count once.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct EscalationState {
    /// First day (YYYY-MM-DD) of this run's breach period.
    pub period: String,
    pub breach_period_days: u32,
    /// As-of date and run id of the plan this state continues (the series' latest plan with an
    /// earlier as-of date); null for the first plan of a series.
    pub continues: Option<String>,
    /// Fraud flag rate per breach period, oldest first (the fraud-spike baseline).
    pub flag_rates: Vec<PeriodValue>,
    /// Open episodes, and those that ended in this run.
    pub episodes: Vec<Episode>,
}

/// A value measured for one breach period.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct PeriodValue {
    /// First day of the period.
    pub period: String,
    pub value: f64,
}

/// One trigger's run of breaches, from its first breach to its recovery.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Episode {
    /// `alert:<id>:<value>` or `fraud_spike`.
    pub trigger: String,
    pub state: EpisodeState,
    /// What this run changed.
    pub transition: Transition,
    /// Whether this run announces the transition; false when an earlier plan of the same
    /// episode (a rerun of the date) already did, so owners are notified once.
    pub announce: bool,
    /// As-of date of the first breach.
    pub opened: String,
    /// Breached periods in a row, oldest first (the most recent 30).
    pub breaches: Vec<Breach>,
    /// Periods without a breach since the last breach (first days).
    pub quiet_periods: Vec<String>,
    /// Ladder level: 0 before the rip-cord.
    pub level: u32,
    /// As-of date the rip-cord was pulled.
    pub rip_cord: Option<String>,
    /// As-of date the current level was reached.
    pub level_since: Option<String>,
    pub acknowledged: Option<Acknowledgement>,
    /// As-of date the episode ended.
    pub recovered: Option<String>,
}

/// A breached period of an episode: the latest run of the period that breached.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Breach {
    pub period: String,
    pub as_of: String,
    pub run_id: String,
}

/// Who took an episode in hand (`refopt plan ack`): it stays at the acknowledged level.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Acknowledgement {
    pub by: String,
    /// RFC 3339 UTC.
    pub at: String,
    pub level: u32,
    pub note: Option<String>,
}
/// A backlog recommendation from the playbook.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct BacklogItem {
    /// What kind of action (e.g. `payout_hold`, `experiment_rollout`, `incentive_change`);
    /// `rules/approvals.yaml` maps kinds to the role whose sign-off they need.
    #[serde(default)]
    pub kind: String,
    pub title: String,
    pub rationale: String,
    /// An agent (`referral-architect`, `lifecycle-ops`, `fraud-detection`, `partner-ops`) or a
    /// ladder owner.
    pub owner: String,
    /// Days from the plan's creation.
    pub eta_days: u32,
    /// Projected relative lift of the item's target metric (e.g. 0.04 = +4%): `lift_formula`
    /// evaluated over `lift_inputs`. Always set by this build; null only in older plans.
    pub projected_lift: Option<f64>,
    /// The model: a Rhai expression over the names of `lift_inputs` (numbers as floats).
    pub lift_formula: String,
    /// The measured inputs of the formula, from the plan.
    pub lift_inputs: serde_json::Map<String, serde_json::Value>,
    /// What the model assumes, in one or two sentences (the target metric and why the
    /// formula projects it).
    #[serde(default)]
    pub assumption: String,
    /// 1 = do first.
    pub priority: u32,
}

/// One change since the previous plan of the same pipeline.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
pub struct ChangeLogEntry {
    /// `first_plan`, `metric`, `config`, `finding_new`, `finding_resolved`, `escalation`,
    /// `tier_change`.
    pub kind: String,
    pub description: String,
}
