//! Fraud review: evaluates the fraud rules over the feature tables, maps flagged rows back to
//! the window's referrals (a join in DataFusion, [`referrals`]), links flagged referrals into
//! clusters (connected components over shared devices and payment fingerprints, [`clusters`])
//! and summarizes the result.
//!
//! Threshold conditions run inside DataFusion as filters, and so do Rhai expressions that
//! compile to DataFusion expressions ([`compile`]); a rule's sensitivity sweep is then extra
//! columns of the same scan. Other expressions run row by row in the sandbox. A rule that fails (unknown column, script error, sandbox limit) is recorded with its
//! id and location and the other rules still run.

mod clusters;
pub mod compile;
mod referrals;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::{Expr, SessionContext, col, lit};
use refopt_spec::fraud::{Condition, ConditionValue, Op};
use refopt_spec::{FraudRule, FraudRules, Suppression, Suppressions, sandbox};
use rhai::Scope;
use rustc_hash::FxHashSet;

use crate::rules::rows::RowReader;
use referrals::{Facts, ReferralsTable};

/// One referral flagged by at least one rule.
#[derive(Debug, Clone, PartialEq)]
pub struct FlaggedReferral {
    pub referral_id: String,
    pub rule_ids: Vec<String>,
    /// Combined score: `1 - Π(1 - score_i)` over the rules that fired.
    pub score: f64,
    /// Cluster of linked accounts (shared device or card), when the referral is linked to others.
    pub cluster_id: Option<String>,
}

/// What one rule did.
#[derive(Debug, Clone)]
pub struct RuleOutcome {
    pub rule_id: String,
    pub pattern: String,
    pub severity: refopt_plan::Severity,
    /// Rows of the feature table the rule selected.
    pub rows_selected: u64,
    pub referrals_flagged: u64,
    /// Set when the rule could not be evaluated; other rules still ran.
    pub error: Option<String>,
    /// How the rule selected its rows (`None` when it failed before selecting any).
    pub evaluation: Option<RuleEvaluation>,
}

pub use refopt_plan::RuleEvaluation;

/// Which evaluator runs rule expressions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RuleEngine {
    /// Expressions that compile run inside DataFusion; the rest in the interpreter.
    #[default]
    Auto,
    /// Every expression runs in the Rhai interpreter (to check the compiled forms against).
    Interpreter,
}

/// The fraud review's result.
#[derive(Debug, Clone, Default)]
pub struct FraudReview {
    pub flagged: Vec<FlaggedReferral>,
    pub outcomes: Vec<RuleOutcome>,
    /// Referrals of the window the rules looked at.
    pub referrals_reviewed: u64,
    /// The table of the window's referrals the rules looked at.
    pub referrals_table: String,
    /// Per channel: the window's referrals (distinct ids) and how many of them are flagged.
    pub by_channel: BTreeMap<String, (u64, u64)>,
    /// Cluster summaries (largest first).
    pub clusters: Vec<Cluster>,
    /// What each suppression did (expired ones included).
    pub suppressions: Vec<SuppressionOutcome>,
    /// Referrals each rule would flag at scaled thresholds (empty unless asked).
    pub sweep: Vec<SweepPoint>,
    /// Retried attempts of rules that failed transiently (a rule that still fails at the limit
    /// is reported in its outcome's error, like any failed rule).
    pub retries: Vec<refopt_plan::ErrorEvent>,
}

/// Why a rule's evaluation failed, and whether trying again could help.
#[derive(Debug, Clone)]
pub(crate) struct RuleFailure {
    pub message: String,
    /// A loaded machine or a shared resource (the time budget, the memory pool, I/O), not the
    /// rule itself: retried up to the file's `retry_limit`.
    pub transient: bool,
}

impl RuleFailure {
    fn permanent(message: impl std::fmt::Display) -> Self {
        Self {
            message: message.to_string(),
            transient: false,
        }
    }

    fn from_datafusion(e: datafusion::error::DataFusionError) -> Self {
        use datafusion::error::DataFusionError as E;
        let transient = matches!(
            e.find_root(),
            E::ResourcesExhausted(_) | E::IoError(_) | E::ObjectStore(_)
        );
        Self {
            message: e.to_string(),
            transient,
        }
    }
}

/// A group of flagged referrals linked through shared devices or payment fingerprints.
#[derive(Debug, Clone, PartialEq)]
pub struct Cluster {
    pub cluster_id: String,
    pub referrals: u64,
    pub referrers: u64,
    pub devices: Vec<String>,
    /// Up to five IP addresses used by the cluster's flagged referrals (context for review:
    /// IPs do not link clusters, offices share them).
    pub ips: Vec<String>,
    pub payment_fingerprints: u64,
    pub rule_ids: Vec<String>,
}

const KEY_SEPARATOR: char = '\u{1f}';

/// What the review is asked to do beyond running the rules.
#[derive(Debug, Clone, Copy)]
pub struct ReviewOptions<'a> {
    /// Allowlist entries; those past their expiry on `as_of` are reported, not applied.
    pub suppressions: Option<&'a Suppressions>,
    pub as_of: NaiveDate,
    /// Re-evaluate every rule with numeric thresholds at these factors (empty: no sweep).
    pub sweep_factors: &'a [f64],
    pub engine: RuleEngine,
}

/// What one suppression did in this run.
#[derive(Debug, Clone, PartialEq)]
pub struct SuppressionOutcome {
    pub id: String,
    pub column: String,
    pub reason: String,
    pub owner: String,
    pub expires: NaiveDate,
    /// False when the suppression is past its expiry: it no longer applies.
    pub active: bool,
    /// Referrals it kept from being flagged (active), or would have kept (expired).
    pub referrals_matched: u64,
    /// Set when the suppression could not be applied (e.g. unknown column).
    pub error: Option<String>,
}

/// Referrals one rule flags at a scaled threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    pub rule_id: String,
    pub factor: f64,
    /// `None` when the scaled rule failed to evaluate.
    pub referrals_flagged: Option<u64>,
}

/// Runs every fraud rule, applies the suppressions and, when asked, the sensitivity sweep.
///
/// The referrals table is read through queries (see [`referrals`]): what the review holds grows
/// with the referrals the rules select and those linked to them, not with the window.
pub async fn review(
    ctx: &SessionContext,
    rules: &FraudRules,
    options: ReviewOptions<'_>,
) -> Result<FraudReview, datafusion::error::DataFusionError> {
    let table = ReferralsTable::open(ctx, &rules.referrals_table).await?;
    let mut suppressions = SuppressionIndex::build(&table, options);
    // What each rule selected: its rows and keys, then the keys of each sweep factor.
    let mut evaluations = Vec::new();
    let mut retries = Vec::new();
    for rule in &rules.rules {
        if let Some(missing) = rule.key.iter().find(|k| !table.has(k)) {
            evaluations.push(Err(format!(
                "referrals table lacks the rule's key: column `{missing}` not found"
            )));
            continue;
        }
        let factors: &[f64] = if rule.has_numeric_thresholds() {
            options.sweep_factors
        } else {
            &[]
        };
        evaluations.push(
            select(
                ctx,
                rule,
                factors,
                options.engine,
                rules.retry_limit,
                &mut retries,
            )
            .await,
        );
    }

    // The referrals carrying the selected keys: one query per key column set, for every rule
    // and sweep factor keyed by it. The queries tag each selection by its index in `selections`:
    // (rule index, None) for a rule's own keys, (rule index, Some(m)) for its m-th sweep factor.
    let mut fact_columns: Vec<String> = Vec::new();
    for column in [
        "referrer_id",
        "device_id",
        "payment_fingerprint",
        "ip",
        referrals::CHANNEL,
    ]
    .into_iter()
    .map(str::to_string)
    .chain(suppressions.columns())
    {
        if table.has(&column) && !fact_columns.contains(&column) {
            fact_columns.push(column);
        }
    }
    let mut selections: Vec<(usize, Option<usize>)> = Vec::new();
    let mut by_key: BTreeMap<&[String], Vec<(usize, &FxHashSet<String>)>> = BTreeMap::new();
    for (n, (rule, evaluation)) in rules.rules.iter().zip(&evaluations).enumerate() {
        let Ok(selected) = evaluation else {
            continue;
        };
        let tagged = by_key.entry(rule.key.as_slice()).or_default();
        let own = std::iter::once((None, Some(&selected.keys)));
        let swept = selected
            .sweep
            .iter()
            .enumerate()
            .map(|(m, (_, keys))| (Some(m), keys.as_ref()));
        for (sweep, keys) in own.chain(swept) {
            if let Some(keys) = keys {
                tagged.push((selections.len(), keys));
                selections.push((n, sweep));
            }
        }
    }
    let mut found_by_tag: BTreeMap<usize, BTreeSet<String>> = BTreeMap::new();
    let mut facts: BTreeMap<String, Facts> = BTreeMap::new();
    for (key, tagged) in &by_key {
        table
            .with_keys(
                ctx,
                key,
                tagged,
                &fact_columns,
                &mut found_by_tag,
                &mut facts,
            )
            .await?;
    }
    let mut found: BTreeMap<(usize, Option<usize>), BTreeSet<String>> = found_by_tag
        .into_iter()
        .map(|(tag, ids)| (selections[tag], ids))
        .collect();

    let mut hits: BTreeMap<String, Vec<(String, f64)>> = BTreeMap::new();
    let mut outcomes = Vec::new();
    let mut sweep_points = Vec::new();
    for (n, (rule, evaluation)) in rules.rules.iter().zip(evaluations).enumerate() {
        let Selected {
            rows: rows_selected,
            sweep,
            evaluation,
            ..
        } = match evaluation {
            Ok(selected) => selected,
            Err(message) => {
                outcomes.push(failed(rule, message));
                continue;
            }
        };
        let matched = found.remove(&(n, None)).unwrap_or_default();
        let matched = suppressions.filter(rule, matched, &facts, true);
        outcomes.push(RuleOutcome {
            rule_id: rule.id.clone(),
            pattern: rule.pattern.clone(),
            severity: crate::rules::plan_severity(rule.severity),
            rows_selected,
            referrals_flagged: matched.len() as u64,
            error: None,
            evaluation: Some(evaluation),
        });
        for id in matched {
            hits.entry(id)
                .or_default()
                .push((rule.id.clone(), rule.score));
        }
        for (m, (factor, keys)) in sweep.into_iter().enumerate() {
            let flagged = keys.map(|_| {
                let matched = found.remove(&(n, Some(m))).unwrap_or_default();
                suppressions.filter(rule, matched, &facts, false).len() as u64
            });
            sweep_points.push(SweepPoint {
                rule_id: rule.id.clone(),
                factor,
                referrals_flagged: flagged,
            });
        }
    }

    // Clusters: the flagged referrals' devices and cards, and every referral linked to them.
    let mut start: [BTreeSet<String>; 2] = Default::default();
    for id in hits.keys() {
        for (values, column) in start.iter_mut().zip(referrals::LINK_COLUMNS) {
            values.extend(facts[id].get(column).into_iter().flatten().cloned());
        }
    }
    let linked = table.linked(ctx, start).await?;
    let clusters_of = clusters::link(hits.keys().map(String::as_str), &linked);
    drop(linked);
    let rules_of = |id: &str| hits[id].iter().map(|(rule, _)| rule.clone()).collect();
    let clusters = clusters::summarize(&clusters_of, &facts, rules_of);
    let flagged: Vec<FlaggedReferral> = hits
        .iter()
        .map(|(id, fired)| FlaggedReferral {
            referral_id: id.clone(),
            rule_ids: fired.iter().map(|(id, _)| id.clone()).collect(),
            score: 1.0 - fired.iter().map(|(_, s)| 1.0 - s).product::<f64>(),
            cluster_id: clusters_of.get(id).cloned(),
        })
        .collect();

    let (referrals_reviewed, ids_by_channel) = table.channel_counts(ctx).await?;
    let mut by_channel: BTreeMap<String, (u64, u64)> = ids_by_channel
        .into_iter()
        .map(|(channel, ids)| (channel, (ids, 0)))
        .collect();
    for f in &flagged {
        let channel = facts[&f.referral_id]
            .get(referrals::CHANNEL)
            .and_then(|c| c.first())
            .cloned()
            .unwrap_or_default();
        by_channel.entry(channel).or_default().1 += 1;
    }
    Ok(FraudReview {
        flagged,
        outcomes,
        referrals_reviewed,
        referrals_table: rules.referrals_table.clone(),
        by_channel,
        clusters,
        suppressions: suppressions.outcomes(),
        sweep: sweep_points,
        retries,
    })
}

/// What one rule selected: its rows, their keys, and the keys at each sweep factor (`None` where
/// the scaled rule failed).
struct Selected {
    rows: u64,
    keys: FxHashSet<String>,
    sweep: Vec<(f64, Option<FxHashSet<String>>)>,
    evaluation: RuleEvaluation,
}

/// Selects a rule's rows, and its sweep's: as one DataFusion scan when the rule compiles (its
/// conditions and expression, at every factor), else through the interpreter.
async fn select(
    ctx: &SessionContext,
    rule: &FraudRule,
    factors: &[f64],
    engine: RuleEngine,
    retry_limit: u32,
    retries: &mut Vec<refopt_plan::ErrorEvent>,
) -> Result<Selected, String> {
    match compiled_predicates(ctx, rule, factors, engine).await {
        Ok(predicates) => {
            let mut attempt = 1;
            let mut selections = loop {
                match select_compiled(ctx, rule, &predicates).await {
                    Ok(selections) => break selections,
                    Err(failure) => {
                        on_failure(rule, failure, &mut attempt, retry_limit, retries)?;
                    }
                }
            };
            let sweep_keys = selections.split_off(1);
            let (rows, keys) = selections.pop().unwrap_or_default();
            Ok(Selected {
                rows,
                keys,
                sweep: factors
                    .iter()
                    .zip(sweep_keys)
                    .map(|(factor, (_, keys))| (*factor, Some(keys)))
                    .collect(),
                evaluation: RuleEvaluation::Vectorized,
            })
        }
        Err(not_compiled) => {
            tracing::debug!(rule = %rule.id, reason = %not_compiled, "rule expression runs in the interpreter");
            let (rows, keys) = flag_with_retries(ctx, rule, retry_limit, retries).await?;
            let mut sweep = Vec::new();
            for &factor in factors {
                let keys = evaluate(ctx, &rule.scaled(factor)).await.ok();
                sweep.push((factor, keys.map(|(_, keys)| keys)));
            }
            Ok(Selected {
                rows,
                keys,
                sweep,
                evaluation: RuleEvaluation::Interpreted,
            })
        }
    }
}

/// A failed attempt: recorded and retried (`Ok`) while transient and under the limit, else the
/// rule's error.
fn on_failure(
    rule: &FraudRule,
    failure: RuleFailure,
    attempt: &mut u32,
    retry_limit: u32,
    retries: &mut Vec<refopt_plan::ErrorEvent>,
) -> Result<(), String> {
    match failure {
        f if f.transient && *attempt <= retry_limit => {
            retries.push(refopt_plan::ErrorEvent {
                task_id: format!("fraud_rules/{}", rule.id),
                attempt: *attempt,
                error: f.message,
                action: refopt_plan::ErrorAction::Retried,
                backoff_ms: None,
            });
            *attempt += 1;
            Ok(())
        }
        f if f.transient => Err(format!(
            "{} (attempt {attempt}; retry limit {retry_limit})",
            f.message
        )),
        f => Err(f.message),
    }
}

/// The rule's selection as DataFusion predicates: its own, then one per sweep factor. `Err` when
/// its expression has no compiled form (or the interpreter is asked for), or its table cannot
/// be read (the interpreter path reports that).
async fn compiled_predicates(
    ctx: &SessionContext,
    rule: &FraudRule,
    factors: &[f64],
    engine: RuleEngine,
) -> Result<Vec<Expr>, compile::NotCompiled> {
    let not_compiled = |reason: String| compile::NotCompiled { reason, at: None };
    if engine == RuleEngine::Interpreter && rule.expression.is_some() {
        return Err(not_compiled("the interpreter was asked for".into()));
    }
    let table = ctx
        .table(rule.table.as_str())
        .await
        .map_err(|e| not_compiled(e.to_string()))?;
    let ip_network = crate::execution::functions::ip_network();
    let scaled: Vec<FraudRule> = factors.iter().map(|f| rule.scaled(*f)).collect();
    std::iter::once(rule)
        .chain(&scaled)
        .map(|r| {
            let mut terms: Vec<Expr> = r.when.iter().map(condition_expr).collect();
            if let Some(expression) = &r.expression {
                terms.push(compile::compile(
                    &expression.ast,
                    &r.params,
                    table.schema(),
                    &ip_network,
                )?);
            }
            Ok(terms.into_iter().reduce(Expr::and).unwrap_or(lit(true)))
        })
        .collect()
}

/// Runs the compiled predicates over one scan of the rule's table: the rows and keys each
/// selects. The scan streams; it stops at the rule's time limit (transient) or a stop request.
async fn select_compiled(
    ctx: &SessionContext,
    rule: &FraudRule,
    predicates: &[Expr],
) -> Result<Vec<(u64, FxHashSet<String>)>, RuleFailure> {
    use futures::StreamExt;
    let deadline = tokio::time::Instant::now() + rule.time_limit;
    let flag = |n: usize| format!("__refopt_selected_{n}");
    let df = ctx
        .table(rule.table.as_str())
        .await
        .and_then(|df| {
            let any = predicates
                .iter()
                .cloned()
                .reduce(Expr::or)
                .unwrap_or(lit(false));
            let df = df.filter(any)?;
            if predicates.len() == 1 {
                return Ok(df);
            }
            let columns = rule
                .key
                .iter()
                .map(|k| Expr::Column(datafusion::common::Column::from_name(k)))
                .chain(
                    predicates
                        .iter()
                        .enumerate()
                        .map(|(n, p)| p.clone().alias(flag(n))),
                );
            df.select(columns)
        })
        .map_err(RuleFailure::from_datafusion)?;
    let mut stream = df
        .execute_stream()
        .await
        .map_err(RuleFailure::from_datafusion)?;
    let mut selections = vec![(0u64, FxHashSet::default()); predicates.len()];
    loop {
        if refopt_spec::stop::requested() {
            return Err(RuleFailure::permanent("stopped: the run was interrupted"));
        }
        let batch = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => {
                return Err(RuleFailure {
                    message: format!(
                        "ran past its time limit of {} ms (compiled)",
                        rule.time_limit.as_millis()
                    ),
                    transient: true,
                });
            }
            Ok(None) => break,
            Ok(Some(batch)) => batch.map_err(RuleFailure::from_datafusion)?,
        };
        let keys = KeyColumns::new(&batch, &rule.key).map_err(RuleFailure::permanent)?;
        for (n, (rows, selected)) in selections.iter_mut().enumerate() {
            let chosen: Vec<usize> = if predicates.len() == 1 {
                (0..batch.num_rows()).collect()
            } else {
                let column = batch
                    .column_by_name(&flag(n))
                    .map(|c| c.as_boolean())
                    .ok_or_else(|| RuleFailure::permanent("compiled selection column missing"))?;
                (0..batch.num_rows())
                    .filter(|&row| column.is_valid(row) && column.value(row))
                    .collect()
            };
            *rows += chosen.len() as u64;
            selected.extend(chosen.into_iter().filter_map(|row| keys.key(row)));
        }
    }
    Ok(selections)
}

/// [`evaluate`], retried up to `retry_limit` times while it fails transiently; each retried
/// attempt is recorded in `retries`.
async fn flag_with_retries(
    ctx: &SessionContext,
    rule: &FraudRule,
    retry_limit: u32,
    retries: &mut Vec<refopt_plan::ErrorEvent>,
) -> Result<(u64, FxHashSet<String>), String> {
    let mut attempt = 1;
    loop {
        match evaluate(ctx, rule).await {
            Ok(selected) => return Ok(selected),
            Err(failure) => on_failure(rule, failure, &mut attempt, retry_limit, retries)?,
        }
    }
}

/// The suppressions, whether each is active, and which column it matches (or why it cannot).
struct SuppressionIndex<'a> {
    entries: Vec<(&'a Suppression, bool, Result<(), String>)>,
    /// Referrals each suppression matched among the rules' hits.
    matched: Vec<BTreeSet<String>>,
}

impl<'a> SuppressionIndex<'a> {
    fn build(table: &ReferralsTable, options: ReviewOptions<'a>) -> Self {
        let entries: Vec<_> = options
            .suppressions
            .iter()
            .flat_map(|s| &s.entries)
            .map(|s| {
                let usable = if table.has(&s.column) {
                    Ok(())
                } else {
                    Err(format!(
                        "{}: suppression `{}`: the referrals table has no column `{}`",
                        s.location, s.id, s.column
                    ))
                };
                (s, s.is_active_on(options.as_of), usable)
            })
            .collect();
        let matched = vec![BTreeSet::new(); entries.len()];
        Self { entries, matched }
    }

    /// The columns the suppressions match on.
    fn columns(&self) -> impl Iterator<Item = String> + '_ {
        self.entries.iter().map(|(s, _, _)| s.column.clone())
    }

    /// Drops the referrals an active suppression covers (one of the referral's rows has a
    /// listed value); `record` counts what each suppression (active or expired) matched.
    fn filter(
        &mut self,
        rule: &FraudRule,
        flagged: BTreeSet<String>,
        facts: &BTreeMap<String, Facts>,
        record: bool,
    ) -> BTreeSet<String> {
        flagged
            .into_iter()
            .filter(|id| {
                let mut keep = true;
                for (n, (s, active, usable)) in self.entries.iter().enumerate() {
                    let listed = || {
                        facts
                            .get(id)
                            .and_then(|f| f.get(&s.column))
                            .is_some_and(|values| s.values.iter().any(|v| values.contains(v)))
                    };
                    if usable.is_ok() && s.covers_rule(&rule.id) && listed() {
                        if record {
                            self.matched[n].insert(id.clone());
                        }
                        keep &= !active;
                    }
                }
                keep
            })
            .collect()
    }

    fn outcomes(&self) -> Vec<SuppressionOutcome> {
        self.entries
            .iter()
            .zip(&self.matched)
            .map(|((s, active, usable), matched)| SuppressionOutcome {
                id: s.id.clone(),
                column: s.column.clone(),
                reason: s.reason.clone(),
                owner: s.owner.clone(),
                expires: s.expires,
                active: *active,
                referrals_matched: matched.len() as u64,
                error: usable.as_ref().err().cloned(),
            })
            .collect()
    }
}

fn failed(rule: &FraudRule, message: String) -> RuleOutcome {
    RuleOutcome {
        rule_id: rule.id.clone(),
        pattern: rule.pattern.clone(),
        severity: crate::rules::plan_severity(rule.severity),
        rows_selected: 0,
        referrals_flagged: 0,
        error: Some(format!("{}: rule `{}`: {message}", rule.location, rule.id)),
        evaluation: None,
    }
}

/// Selects the rule's rows and returns their keys. The feature table streams through: a
/// threshold-only rule reads it batch by batch, an expression rule evaluates each partition of
/// the query (`--threads` of them) on its own blocking worker as the batches arrive.
async fn evaluate(
    ctx: &SessionContext,
    rule: &FraudRule,
) -> Result<(u64, FxHashSet<String>), RuleFailure> {
    use futures::StreamExt;
    let mut df = ctx
        .table(rule.table.as_str())
        .await
        .map_err(RuleFailure::from_datafusion)?;
    for c in &rule.when {
        df = df
            .filter(condition_expr(c))
            .map_err(RuleFailure::from_datafusion)?;
    }
    let Some(expression) = &rule.expression else {
        // Threshold conditions only: every row the filters kept is selected.
        let mut stream = df
            .execute_stream()
            .await
            .map_err(RuleFailure::from_datafusion)?;
        let mut keys = FxHashSet::default();
        let mut selected = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(RuleFailure::from_datafusion)?;
            let columns = KeyColumns::new(&batch, &rule.key).map_err(RuleFailure::permanent)?;
            selected += batch.num_rows() as u64;
            keys.extend((0..batch.num_rows()).filter_map(|row| columns.key(row)));
        }
        return Ok((selected, keys));
    };
    // Rows carry only the columns the expression reads (unless it uses `row` as a whole).
    let usage = sandbox::usage(&expression.ast);
    let fields: Option<BTreeSet<String>> =
        (!usage.row_whole).then(|| usage.row_fields.into_keys().collect());
    let worker = Arc::new(ExpressionWorker {
        ast: expression.ast.clone(),
        params: rule.params_map(),
        fields,
        key: rule.key.clone(),
        table: rule.table.clone(),
        time_limit: rule.time_limit,
        // The rule's time budget, over all rows and workers: past it, every evaluation stops.
        deadline: std::time::Instant::now() + rule.time_limit,
    });
    let streams = df
        .execute_stream_partitioned()
        .await
        .map_err(RuleFailure::from_datafusion)?;
    let runtime = tokio::runtime::Handle::current();
    let workers: Vec<_> = streams
        .into_iter()
        .enumerate()
        .map(|(partition, stream)| {
            let (worker, runtime) = (worker.clone(), runtime.clone());
            tokio::task::spawn_blocking(move || worker.run(partition, stream, &runtime))
        })
        .collect();
    let mut keys = FxHashSet::default();
    let mut selected = 0u64;
    let mut first_failure = None;
    // In partition order: the first failing partition's error is the one reported.
    for worker in workers {
        let result = worker
            .await
            .unwrap_or_else(|_| Err(RuleFailure::permanent("rule evaluation panicked")));
        match result {
            Ok((n, k)) => {
                selected += n;
                keys.extend(k);
            }
            Err(failure) => {
                first_failure.get_or_insert(failure);
            }
        }
    }
    match first_failure {
        Some(failure) => Err(failure),
        None => Ok((selected, keys)),
    }
}

/// What a worker needs to evaluate a rule's expression over one partition of its table.
struct ExpressionWorker {
    ast: Arc<rhai::AST>,
    params: rhai::Map,
    fields: Option<BTreeSet<String>>,
    key: Vec<String>,
    table: String,
    time_limit: std::time::Duration,
    deadline: std::time::Instant,
}

impl ExpressionWorker {
    /// Evaluates every row of the partition's batches as they arrive: the rows selected and
    /// their keys. Runs on a blocking thread (`runtime` drives the stream).
    fn run(
        &self,
        partition: usize,
        mut stream: datafusion::physical_plan::SendableRecordBatchStream,
        runtime: &tokio::runtime::Handle,
    ) -> Result<(u64, FxHashSet<String>), RuleFailure> {
        use futures::StreamExt;
        let mut engine = sandbox::engine();
        let deadline = self.deadline;
        // Replaces the sandbox's own progress hook, so it checks the stop request too.
        engine.on_progress(move |_| {
            if refopt_spec::stop::requested() {
                return Some(rhai::Dynamic::from(refopt_spec::stop::TOKEN));
            }
            (std::time::Instant::now() >= deadline).then(|| rhai::Dynamic::from(TIME_LIMIT_TOKEN))
        });
        let mut scope = Scope::new();
        let mut keys = FxHashSet::default();
        let mut selected = 0u64;
        let mut batch_number = 0usize;
        while let Some(batch) = runtime.block_on(stream.next()) {
            let batch = batch.map_err(RuleFailure::from_datafusion)?;
            let key_columns = KeyColumns::new(&batch, &self.key).map_err(RuleFailure::permanent)?;
            let rows = RowReader::new(&batch, self.fields.as_ref());
            for row in 0..batch.num_rows() {
                // Every row gets fresh `params` and `row` values (a script may modify them).
                scope.rewind(0);
                scope.push("params", self.params.clone());
                scope.push("row", rows.map(row));
                let keep = engine
                    .eval_ast_with_scope::<bool>(&mut scope, &self.ast)
                    .map_err(|e| self.failure(&e, row, batch_number, partition))?;
                if keep {
                    selected += 1;
                    keys.extend(key_columns.key(row));
                }
            }
            batch_number += 1;
        }
        Ok((selected, keys))
    }

    /// Why evaluating a row failed: a stop, the time budget (transient), or the script.
    fn failure(
        &self,
        e: &rhai::EvalAltResult,
        row: usize,
        batch: usize,
        partition: usize,
    ) -> RuleFailure {
        let at = format!(
            "row {row} of batch {batch} of partition {partition} of `{}`",
            self.table
        );
        if refopt_spec::stop::is_stop(e) {
            return RuleFailure::permanent("stopped: the run was interrupted");
        }
        if is_time_limit(e) {
            return RuleFailure {
                message: format!(
                    "ran past its time limit of {} ms ({at})",
                    self.time_limit.as_millis()
                ),
                transient: true,
            };
        }
        RuleFailure::permanent(format!(
            "expression failed on {at}: {}",
            sandbox::describe(e)
        ))
    }
}

/// The token a rule's expression is stopped with when its time budget runs out.
const TIME_LIMIT_TOKEN: &str = "refopt: time limit";

fn is_time_limit(e: &rhai::EvalAltResult) -> bool {
    matches!(e, rhai::EvalAltResult::ErrorTerminated(token, _)
        if token.clone().into_string().is_ok_and(|t| t == TIME_LIMIT_TOKEN))
}

fn condition_expr(c: &Condition) -> Expr {
    let column = col(crate::metrics::data_tests::ident(&c.column));
    let scalar = |v: &ConditionValue| match v {
        ConditionValue::Number(n) => lit(*n),
        ConditionValue::Text(t) => lit(t.clone()),
        ConditionValue::List(_) => lit(datafusion::scalar::ScalarValue::Null),
    };
    match (c.op, &c.value) {
        (Op::In, ConditionValue::List(items)) => {
            column.in_list(items.iter().map(|i| lit(i.clone())).collect(), false)
        }
        (Op::NotIn, ConditionValue::List(items)) => {
            column.in_list(items.iter().map(|i| lit(i.clone())).collect(), true)
        }
        (Op::Ge, v) => column.gt_eq(scalar(v)),
        (Op::Gt, v) => column.gt(scalar(v)),
        (Op::Le, v) => column.lt_eq(scalar(v)),
        (Op::Lt, v) => column.lt(scalar(v)),
        (Op::Eq, v) => column.eq(scalar(v)),
        (Op::Ne, v) => column.not_eq(scalar(v)),
        // Rejected at load time.
        (Op::In | Op::NotIn, _) => lit(false),
    }
}

/// Key of every row of a batch (None when a key column is null).
/// A batch's key columns as strings; a row's key is built only when asked for.
struct KeyColumns {
    columns: Vec<datafusion::arrow::array::ArrayRef>,
}

impl KeyColumns {
    fn new(
        batch: &RecordBatch,
        key: &[String],
    ) -> Result<Self, datafusion::error::DataFusionError> {
        let columns = key
            .iter()
            .map(|k| {
                let column = batch.column_by_name(k).ok_or_else(|| {
                    datafusion::error::DataFusionError::Plan(format!("column `{k}` not found"))
                })?;
                Ok(cast(column, &DataType::Utf8)?)
            })
            .collect::<Result<Vec<_>, datafusion::error::DataFusionError>>()?;
        Ok(Self { columns })
    }

    /// The row's key (parts joined by [`KEY_SEPARATOR`]); None when a part is null.
    fn key(&self, row: usize) -> Option<String> {
        let mut key = String::new();
        for (n, column) in self.columns.iter().enumerate() {
            let strings = column.as_string::<i32>();
            if strings.is_null(row) {
                return None;
            }
            if n > 0 {
                key.push(KEY_SEPARATOR);
            }
            key.push_str(strings.value(row));
        }
        Some(key)
    }
}

/// Flagged referrals as a record batch: `referral_id`, `rule_ids` (list of strings), `score`,
/// `cluster_id`.
pub fn flagged_batch(flagged: &[FlaggedReferral]) -> RecordBatch {
    use datafusion::arrow::array::{Float64Array, ListBuilder, StringArray, StringBuilder};
    use datafusion::arrow::datatypes::{Field, Schema};
    let mut rules = ListBuilder::new(StringBuilder::new());
    for f in flagged {
        for r in &f.rule_ids {
            rules.values().append_value(r);
        }
        rules.append(true);
    }
    let rules = rules.finish();
    let schema = Schema::new(vec![
        Field::new("referral_id", DataType::Utf8, false),
        Field::new("rule_ids", rules.data_type().clone(), false),
        Field::new("score", DataType::Float64, false),
        Field::new("cluster_id", DataType::Utf8, true),
    ]);
    RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from_iter_values(
                flagged.iter().map(|f| f.referral_id.as_str()),
            )),
            Arc::new(rules),
            Arc::new(Float64Array::from_iter_values(
                flagged.iter().map(|f| f.score),
            )),
            Arc::new(StringArray::from_iter(
                flagged.iter().map(|f| f.cluster_id.as_deref()),
            )),
        ],
    )
    .expect("columns match the schema")
}

/// Flagged referrals encoded as a Parquet file.
pub fn flagged_parquet(
    flagged: &[FlaggedReferral],
) -> Result<bytes::Bytes, datafusion::error::DataFusionError> {
    let batch = flagged_batch(flagged);
    let mut out = Vec::new();
    let mut writer =
        datafusion::parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), None)?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(bytes::Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use datafusion::datasource::MemTable;

    /// A batch of string columns; `None` is a null.
    fn strings(columns: &[(&str, &[Option<&str>])]) -> RecordBatch {
        let fields: Vec<Field> = columns
            .iter()
            .map(|(name, _)| Field::new(*name, DataType::Utf8, true))
            .collect();
        let arrays: Vec<ArrayRef> = columns
            .iter()
            .map(|(_, values)| Arc::new(StringArray::from(values.to_vec())) as ArrayRef)
            .collect();
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap()
    }

    /// A session with `tables` registered in memory.
    fn session_with(tables: Vec<(&str, RecordBatch)>) -> SessionContext {
        let ctx = SessionContext::new();
        for (name, batch) in tables {
            let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
            ctx.register_table(name, Arc::new(table)).unwrap();
        }
        ctx
    }

    #[tokio::test]
    async fn clusters_link_through_devices_and_cards_transitively_but_not_ips() {
        // r1 -d1- r2 -c1- r3 -d3- r6: r1 and r3 are flagged and linked through r2 (not
        // flagged); r4 shares only an IP with r1; r5 is alone; r6 is linked but not flagged.
        let referrals = strings(&[
            (
                "referral_id",
                &[
                    Some("r1"),
                    Some("r2"),
                    Some("r3"),
                    Some("r4"),
                    Some("r5"),
                    Some("r6"),
                ],
            ),
            (
                "referrer_id",
                &[
                    Some("A"),
                    Some("B"),
                    Some("C"),
                    Some("D"),
                    Some("E"),
                    Some("F"),
                ],
            ),
            (
                "device_id",
                &[
                    Some("d1"),
                    Some("d1"),
                    Some("d3"),
                    Some("d4"),
                    Some("d5"),
                    Some("d3"),
                ],
            ),
            (
                "payment_fingerprint",
                &[Some("c0"), Some("c1"), Some("c1"), Some("c4"), None, None],
            ),
            (
                "ip",
                &[
                    Some("10.0.0.1"),
                    None,
                    Some("10.0.0.3"),
                    Some("10.0.0.1"),
                    None,
                    None,
                ],
            ),
        ]);
        let flags = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("referral_id", DataType::Utf8, false),
                Field::new("suspicious", DataType::Int64, false),
            ])),
            vec![
                Arc::new(StringArray::from(vec!["r1", "r2", "r3", "r4", "r5", "r6"])),
                Arc::new(Int64Array::from(vec![1, 0, 1, 1, 1, 0])),
            ],
        )
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let fraud = dir.path().join("fraud.yaml");
        std::fs::write(
            &fraud,
            "version: 1\nreferrals_table: refs\nrules:\n  - id: rule\n    description: d\n    severity: high\n    pattern: p\n    table: flags\n    key: referral_id\n    when:\n      - { column: suspicious, op: \">=\", value: 1 }\n    score: 0.5\n",
        )
        .unwrap();
        let rules = FraudRules::load(&fraud).unwrap();
        let ctx = session_with(vec![("refs", referrals), ("flags", flags)]);
        let options = ReviewOptions {
            suppressions: None,
            as_of: NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
            sweep_factors: &[],
            engine: RuleEngine::Auto,
        };
        let review = review(&ctx, &rules, options).await.unwrap();
        let clusters_of: Vec<(&str, Option<&str>)> = review
            .flagged
            .iter()
            .map(|f| (f.referral_id.as_str(), f.cluster_id.as_deref()))
            .collect();
        assert_eq!(
            clusters_of,
            [
                ("r1", Some("cluster-r1")),
                ("r3", Some("cluster-r1")),
                ("r4", None),
                ("r5", None)
            ]
        );
        assert_eq!(
            review.clusters,
            vec![Cluster {
                cluster_id: "cluster-r1".into(),
                referrals: 2,
                referrers: 2,
                devices: vec!["d1".into(), "d3".into()],
                ips: vec!["10.0.0.1".into(), "10.0.0.3".into()],
                payment_fingerprints: 2,
                rule_ids: vec!["rule".into()],
            }]
        );
    }

    #[tokio::test]
    async fn review_applies_active_suppressions_and_reports_expired_and_broken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let fraud = dir.path().join("fraud.yaml");
        std::fs::write(
            &fraud,
            "version: 1\nreferrals_table: refs\nrules:\n  - id: shared_device\n    description: d\n    severity: high\n    pattern: device_ring\n    table: devices\n    key: device_id\n    when:\n      - { column: referrers, op: \">=\", value: 2 }\n    score: 0.9\n",
        )
        .unwrap();
        let suppressions = dir.path().join("suppressions.yaml");
        std::fs::write(
            &suppressions,
            "version: 1\nsuppressions:\n\
             \x20 - { id: office, column: ip, values: [\"10.0.0.9\"], reason: r, owner: o, expires: 2030-01-01 }\n\
             \x20 - { id: old, column: referral_id, values: [r2], rules: [shared_device], reason: r, owner: o, expires: 2020-01-01 }\n\
             \x20 - { id: typo, column: nope, values: [x], reason: r, owner: o, expires: 2030-01-01 }\n",
        )
        .unwrap();
        let rules = FraudRules::load(&fraud).unwrap();
        let suppressions = Suppressions::load(&suppressions).unwrap();

        let refs = strings(&[
            (
                "referral_id",
                &[Some("r1"), Some("r2"), Some("r3"), Some("r4")],
            ),
            ("referrer_id", &[Some("A"), Some("B"), Some("C"), Some("D")]),
            (
                "device_id",
                &[Some("d1"), Some("d1"), Some("d1"), Some("d2")],
            ),
            (
                "payment_fingerprint",
                &[Some("c1"), Some("c2"), Some("c3"), Some("c4")],
            ),
            (
                "ip",
                &[Some("10.0.0.1"), Some("10.0.0.2"), Some("10.0.0.9"), None],
            ),
            (
                "channel",
                &[Some("email"), Some("email"), Some("social"), None],
            ),
        ]);
        let devices = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("device_id", DataType::Utf8, false),
                Field::new("referrers", DataType::Int64, false),
            ])),
            vec![
                Arc::new(StringArray::from(vec!["d1", "d2"])),
                Arc::new(Int64Array::from(vec![3, 1])),
            ],
        )
        .unwrap();
        let ctx = session_with(vec![("refs", refs), ("devices", devices)]);
        let options = ReviewOptions {
            suppressions: Some(&suppressions),
            as_of: NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
            sweep_factors: &[],
            engine: RuleEngine::Auto,
        };
        let review = review(&ctx, &rules, options).await.unwrap();

        // d1 is shared by three referrers: r1, r2 (its suppression expired) and r3 (behind the
        // allowlisted office IP, so not flagged).
        let ids: Vec<&str> = review
            .flagged
            .iter()
            .map(|f| f.referral_id.as_str())
            .collect();
        assert_eq!(ids, ["r1", "r2"]);
        assert!((review.flagged[0].score - 0.9).abs() < 1e-12);
        assert_eq!(review.outcomes[0].rows_selected, 1);
        assert_eq!(review.outcomes[0].referrals_flagged, 2);
        let outcome = |id: &str| {
            review
                .suppressions
                .iter()
                .find(|s| s.id == id)
                .unwrap()
                .clone()
        };
        let (office, old, typo) = (outcome("office"), outcome("old"), outcome("typo"));
        assert!(office.active && office.referrals_matched == 1 && office.error.is_none());
        assert!(!old.active && old.referrals_matched == 1, "{old:?}");
        assert!(typo.error.unwrap().contains("no column `nope`"));
        // The flagged pair shares d1: one cluster.
        assert_eq!(review.clusters.len(), 1);
        assert_eq!(review.clusters[0].referrals, 2);
        assert_eq!(review.referrals_reviewed, 4);
        assert_eq!(review.by_channel["email"], (2, 2));
        assert_eq!(review.by_channel["social"], (1, 0));
        assert_eq!(review.by_channel[""], (1, 0));
    }
}
