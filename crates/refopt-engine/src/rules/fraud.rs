//! Fraud review: evaluates the fraud rules over the feature tables, maps flagged rows back to
//! the window's referrals, links flagged referrals into clusters (connected components over
//! shared devices and payment fingerprints) and summarizes the result.
//!
//! Threshold conditions run inside DataFusion as filters; Rhai expressions run row by row in the
//! sandbox. A rule that fails (unknown column, script error, sandbox limit) is recorded with its
//! id and location and the other rules still run.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::NaiveDate;
use datafusion::arrow::array::{Array, AsArray, RecordBatch, StringArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::DataType;
use datafusion::prelude::{Expr, SessionContext, col, lit};
use refopt_spec::fraud::{Condition, ConditionValue, Op};
use refopt_spec::{FraudRule, FraudRules, Suppression, Suppressions, sandbox};
use rhai::Scope;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::rules::rows::RowReader;

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
pub async fn review(
    ctx: &SessionContext,
    rules: &FraudRules,
    options: ReviewOptions<'_>,
) -> Result<FraudReview, datafusion::error::DataFusionError> {
    let referrals = ctx
        .table(rules.referrals_table.as_str())
        .await?
        .collect()
        .await?;
    let referral_ids = string_column(&referrals, "referral_id")?;
    let mut suppressions = SuppressionIndex::build(&referrals, options)?;
    let mut hits: BTreeMap<usize, Vec<(String, f64)>> = BTreeMap::new();
    let mut outcomes = Vec::new();
    let mut sweep = Vec::new();
    // The referrals indexed by each key column set, built once and shared by the rules.
    let mut key_cache = HashMap::new();
    let mut retries = Vec::new();
    for rule in &rules.rules {
        let referral_keys = match cached_index(&referrals, &rule.key, &mut key_cache) {
            Ok(keys) => keys,
            Err(message) => {
                outcomes.push(failed(rule, message));
                continue;
            }
        };
        let matched =
            match flag_with_retries(ctx, rule, &referral_keys, rules.retry_limit, &mut retries)
                .await
            {
                Ok((rows_selected, matched)) => {
                    let matched = suppressions.filter(rule, matched, true);
                    outcomes.push(RuleOutcome {
                        rule_id: rule.id.clone(),
                        pattern: rule.pattern.clone(),
                        severity: crate::rules::plan_severity(rule.severity),
                        rows_selected,
                        referrals_flagged: matched.len() as u64,
                        error: None,
                    });
                    matched
                }
                Err(message) => {
                    outcomes.push(failed(rule, message));
                    continue;
                }
            };
        for &i in &matched {
            hits.entry(i)
                .or_default()
                .push((rule.id.clone(), rule.score));
        }
        // The sensitivity sweep, one factor at a time (each collects its own feature rows).
        if rule.has_numeric_thresholds() {
            for &factor in options.sweep_factors {
                let scaled = rule.scaled(factor);
                let flagged = flag(ctx, &scaled, &referral_keys).await.ok();
                sweep.push(SweepPoint {
                    rule_id: rule.id.clone(),
                    factor,
                    referrals_flagged: flagged
                        .map(|(_, m)| suppressions.filter(rule, m, false).len() as u64),
                });
            }
        }
    }

    let clusters_of = link_clusters(&referrals, &hits)?;
    let mut flagged: Vec<FlaggedReferral> = hits
        .iter()
        .map(|(&i, fired)| FlaggedReferral {
            referral_id: referral_ids.get(i).unwrap_or_default().to_string(),
            rule_ids: fired.iter().map(|(id, _)| id.clone()).collect(),
            score: 1.0 - fired.iter().map(|(_, s)| 1.0 - s).product::<f64>(),
            cluster_id: clusters_of.get(&i).cloned(),
        })
        .collect();
    flagged.sort_by(|a, b| a.referral_id.cmp(&b.referral_id));
    let clusters = summarize_clusters(&referrals, &hits, &clusters_of)?;
    let by_channel = flag_counts_by_channel(&referrals, &referral_ids, &flagged)?;
    Ok(FraudReview {
        flagged,
        outcomes,
        referrals_reviewed: referral_ids.len() as u64,
        referrals_table: rules.referrals_table.clone(),
        by_channel,
        clusters,
        suppressions: suppressions.outcomes(),
        sweep,
        retries,
    })
}

/// Per channel, the window's distinct referral ids and those of them flagged (a referral
/// without a channel counts under ``; the first row of a repeated id decides its channel).
fn flag_counts_by_channel(
    referrals: &[RecordBatch],
    referral_ids: &StringColumn,
    flagged: &[FlaggedReferral],
) -> Result<BTreeMap<String, (u64, u64)>, datafusion::error::DataFusionError> {
    let channels = string_column(referrals, "channel").ok();
    let flagged: FxHashSet<&str> = flagged.iter().map(|f| f.referral_id.as_str()).collect();
    let mut seen: FxHashSet<&str> = FxHashSet::default();
    let mut counts: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (i, id) in referral_ids.iter().enumerate() {
        let Some(id) = id else { continue };
        if !seen.insert(id) {
            continue;
        }
        let channel = channels.as_ref().and_then(|c| c.get(i)).unwrap_or_default();
        let entry = match counts.get_mut(channel) {
            Some(entry) => entry,
            None => counts.entry(channel.to_string()).or_default(),
        };
        entry.0 += 1;
        entry.1 += u64::from(flagged.contains(id));
    }
    Ok(counts)
}

/// The referrals' index for a rule's key columns, built once per key and shared by the rules.
fn cached_index(
    referrals: &[RecordBatch],
    key: &[String],
    cache: &mut HashMap<Vec<String>, Arc<KeyIndex>>,
) -> Result<Arc<KeyIndex>, String> {
    if let Some(index) = cache.get(key) {
        return Ok(index.clone());
    }
    let index = Arc::new(
        KeyIndex::build(referrals, key)
            .map_err(|e| format!("referrals table lacks the rule's key: {e}"))?,
    );
    cache.insert(key.to_vec(), index.clone());
    Ok(index)
}

/// The window's referrals by key value: a rule looks up the keys it selected instead of
/// testing every referral. Rows are hashed in place (no per-row key strings).
struct KeyIndex {
    columns: Vec<StringColumn>,
    /// Key hash -> the last referral with it; `earlier` chains to the ones before (a chain may
    /// hold other keys with the same hash, so lookups compare the values).
    last: FxHashMap<u64, usize>,
    earlier: Vec<usize>,
}

impl KeyIndex {
    const END: usize = usize::MAX;

    fn build(
        referrals: &[RecordBatch],
        key: &[String],
    ) -> Result<Self, datafusion::error::DataFusionError> {
        let columns = key
            .iter()
            .map(|k| string_column(referrals, k))
            .collect::<Result<Vec<_>, _>>()?;
        let rows = columns.first().map_or(0, StringColumn::len);
        let mut last = FxHashMap::default();
        let mut earlier = vec![Self::END; rows];
        for (i, slot) in earlier.iter_mut().enumerate() {
            if let Some(hash) = key_hash(columns.iter().map(|c| c.get(i)))
                && let Some(previous) = last.insert(hash, i)
            {
                *slot = previous;
            }
        }
        Ok(Self {
            columns,
            last,
            earlier,
        })
    }

    /// Indices of the referrals whose key (parts joined by [`KEY_SEPARATOR`]) is `value`.
    fn referrals<'a>(&'a self, value: &'a str) -> impl Iterator<Item = usize> + 'a {
        let parts: Vec<&str> = value.split(KEY_SEPARATOR).collect();
        let first =
            key_hash(parts.iter().map(|p| Some(*p))).and_then(|hash| self.last.get(&hash).copied());
        std::iter::successors(first, |&i| {
            Some(self.earlier[i]).filter(|&j| j != Self::END)
        })
        .filter(move |&i| {
            parts.len() == self.columns.len()
                && self
                    .columns
                    .iter()
                    .zip(&parts)
                    .all(|(c, part)| c.get(i) == Some(*part))
        })
    }
}

/// Hash of a key given as its parts; None when a part is null (such rows have no key).
fn key_hash<'a>(parts: impl IntoIterator<Item = Option<&'a str>>) -> Option<u64> {
    use std::hash::Hasher;
    let mut hasher = rustc_hash::FxHasher::default();
    for part in parts {
        hasher.write(part?.as_bytes());
        hasher.write_u8(KEY_SEPARATOR as u8);
    }
    Some(hasher.finish())
}

/// Rows the rule selects in its feature table, and the indices of the referrals sharing their
/// key (ascending).
/// [`flag`], retried up to `retry_limit` times while it fails transiently; each retried
/// attempt is recorded in `retries`.
async fn flag_with_retries(
    ctx: &SessionContext,
    rule: &FraudRule,
    referrals: &KeyIndex,
    retry_limit: u32,
    retries: &mut Vec<refopt_plan::ErrorEvent>,
) -> Result<(u64, Vec<usize>), String> {
    let mut attempt = 1;
    loop {
        match flag(ctx, rule, referrals).await {
            Ok(flagged) => return Ok(flagged),
            Err(failure) if failure.transient && attempt <= retry_limit => {
                retries.push(refopt_plan::ErrorEvent {
                    task_id: format!("fraud_rules/{}", rule.id),
                    attempt,
                    error: failure.message,
                    action: refopt_plan::ErrorAction::Retried,
                    backoff_ms: None,
                });
                attempt += 1;
            }
            Err(failure) if failure.transient => {
                return Err(format!(
                    "{} (attempt {attempt}; retry limit {retry_limit})",
                    failure.message
                ));
            }
            Err(failure) => return Err(failure.message),
        }
    }
}

async fn flag(
    ctx: &SessionContext,
    rule: &FraudRule,
    referrals: &KeyIndex,
) -> Result<(u64, Vec<usize>), RuleFailure> {
    let (rows_selected, keys) = evaluate(ctx, rule).await?;
    let mut matched: Vec<usize> = keys.iter().flat_map(|k| referrals.referrals(k)).collect();
    matched.sort_unstable();
    Ok((rows_selected, matched))
}

/// A suppression, whether it is active, and the referral indices it lists (or why not).
type ResolvedSuppression<'a> = (&'a Suppression, bool, Result<HashSet<usize>, String>);

/// Suppressions resolved against the window's referrals: for each, the referral indices whose
/// column value it lists.
struct SuppressionIndex<'a> {
    entries: Vec<ResolvedSuppression<'a>>,
    /// Referrals each suppression matched among the rules' hits.
    matched: Vec<HashSet<usize>>,
}

impl<'a> SuppressionIndex<'a> {
    fn build(
        referrals: &[RecordBatch],
        options: ReviewOptions<'a>,
    ) -> Result<Self, datafusion::error::DataFusionError> {
        let mut entries = Vec::new();
        for s in options.suppressions.iter().flat_map(|s| &s.entries) {
            let indices = match string_column(referrals, &s.column) {
                Ok(values) => {
                    let listed: HashSet<&str> = s.values.iter().map(String::as_str).collect();
                    Ok(values
                        .iter()
                        .enumerate()
                        .filter(|(_, v)| v.is_some_and(|v| listed.contains(v)))
                        .map(|(i, _)| i)
                        .collect())
                }
                Err(_) => Err(format!(
                    "{}: suppression `{}`: the referrals table has no column `{}`",
                    s.location, s.id, s.column
                )),
            };
            entries.push((s, s.is_active_on(options.as_of), indices));
        }
        let matched = vec![HashSet::new(); entries.len()];
        Ok(Self { entries, matched })
    }

    /// Drops the referrals an active suppression covers; `record` counts what each suppression
    /// (active or expired) matched.
    fn filter(&mut self, rule: &FraudRule, flagged: Vec<usize>, record: bool) -> Vec<usize> {
        flagged
            .into_iter()
            .filter(|i| {
                let mut keep = true;
                for (n, (s, active, indices)) in self.entries.iter().enumerate() {
                    if let Ok(indices) = indices
                        && s.covers_rule(&rule.id)
                        && indices.contains(i)
                    {
                        if record {
                            self.matched[n].insert(*i);
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
            .map(|((s, active, indices), matched)| SuppressionOutcome {
                id: s.id.clone(),
                column: s.column.clone(),
                reason: s.reason.clone(),
                owner: s.owner.clone(),
                expires: s.expires,
                active: *active,
                referrals_matched: matched.len() as u64,
                error: indices.as_ref().err().cloned(),
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
    }
}

/// Selects the rule's rows and returns their keys.
async fn evaluate(
    ctx: &SessionContext,
    rule: &FraudRule,
) -> Result<(u64, FxHashSet<String>), RuleFailure> {
    let mut df = ctx
        .table(rule.table.as_str())
        .await
        .map_err(RuleFailure::from_datafusion)?;
    for c in &rule.when {
        df = df
            .filter(condition_expr(c))
            .map_err(RuleFailure::from_datafusion)?;
    }
    let batches = df.collect().await.map_err(RuleFailure::from_datafusion)?;
    let Some(expression) = &rule.expression else {
        // Threshold conditions only: every row the filters kept is selected.
        let mut keys = FxHashSet::default();
        let mut selected = 0u64;
        for batch in &batches {
            let columns = KeyColumns::new(batch, &rule.key).map_err(RuleFailure::permanent)?;
            for row in 0..batch.num_rows() {
                selected += 1;
                keys.extend(columns.key(row));
            }
        }
        return Ok((selected, keys));
    };
    // Rows carry only the columns the expression reads (unless it uses `row` as a whole).
    let usage = sandbox::usage(&expression.ast);
    let fields: Option<std::collections::BTreeSet<String>> =
        (!usage.row_whole).then(|| usage.row_fields.into_keys().collect());
    let mut engine = sandbox::engine();
    // The rule's time budget, over all rows and workers: past it, every evaluation stops.
    let deadline = std::time::Instant::now() + rule.time_limit;
    // Replaces the sandbox's own progress hook, so it checks the stop request too.
    engine.on_progress(move |_| {
        if refopt_spec::stop::requested() {
            return Some(rhai::Dynamic::from(refopt_spec::stop::TOKEN));
        }
        (std::time::Instant::now() >= deadline).then(|| rhai::Dynamic::from(TIME_LIMIT_TOKEN))
    });
    let params = rule.params_map();
    // The batches are split across the session's threads (`--threads`); each worker reuses
    // one scope, and every row gets fresh `params` and `row` values as before (a script may
    // modify its copies).
    let workers = ctx
        .state()
        .config()
        .target_partitions()
        .min(batches.len())
        .max(1);
    let chunk = batches.len().div_ceil(workers).max(1);
    let results: Vec<Result<(u64, FxHashSet<String>), RuleFailure>> = std::thread::scope(
        |threads| {
            let handles: Vec<_> = batches
            .chunks(chunk)
            .enumerate()
            .map(|(n, part)| {
                let (engine, params, fields) = (&engine, &params, fields.as_ref());
                threads.spawn(move || {
                    let mut scope = Scope::new();
                    let mut keys = FxHashSet::default();
                    let mut selected = 0u64;
                    for (b, batch) in part.iter().enumerate() {
                        let key_columns =
                            KeyColumns::new(batch, &rule.key).map_err(RuleFailure::permanent)?;
                        let rows = RowReader::new(batch, fields);
                        for row in 0..batch.num_rows() {
                            scope.rewind(0);
                            scope.push("params", params.clone());
                            scope.push("row", rows.map(row));
                            let keep = engine
                                .eval_ast_with_scope::<bool>(&mut scope, &expression.ast)
                                .map_err(|e| {
                                    if refopt_spec::stop::is_stop(&e) {
                                        return RuleFailure::permanent("stopped: the run was interrupted");
                                    }
                                    if is_time_limit(&e) {
                                        return RuleFailure {
                                            message: format!(
                                                "ran past its time limit of {} ms (row {row} of batch {} of `{}`)",
                                                rule.time_limit.as_millis(),
                                                n * chunk + b,
                                                rule.table
                                            ),
                                            transient: true,
                                        };
                                    }
                                    RuleFailure::permanent(format!(
                                        "expression failed on row {row} of batch {} of `{}`: {}",
                                        n * chunk + b,
                                        rule.table,
                                        sandbox::describe(&e)
                                    ))
                                })?;
                            if keep {
                                selected += 1;
                                keys.extend(key_columns.key(row));
                            }
                        }
                    }
                    Ok((selected, keys))
                })
            })
            .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(RuleFailure::permanent("rule evaluation panicked")))
                })
                .collect()
        },
    );
    let mut keys = FxHashSet::default();
    let mut selected = 0u64;
    // In batch order: the first failing batch's error is the one reported.
    for result in results {
        let (n, k) = result?;
        selected += n;
        keys.extend(k);
    }
    Ok((selected, keys))
}

/// The token a rule's expression is stopped with when its time budget runs out.
const TIME_LIMIT_TOKEN: &str = "refopt: time limit";

fn is_time_limit(e: &rhai::EvalAltResult) -> bool {
    matches!(e, rhai::EvalAltResult::ErrorTerminated(token, _)
        if token.clone().into_string().is_ok_and(|t| t == TIME_LIMIT_TOKEN))
}

fn condition_expr(c: &Condition) -> Expr {
    let column = col(format!("\"{}\"", c.column.replace('"', "\"\"")));
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

/// One column of all batches as a single string array, indexed like the rows of the batches
/// in order (no per-row allocation).
struct StringColumn(StringArray);

impl StringColumn {
    fn get(&self, i: usize) -> Option<&str> {
        (!self.0.is_null(i)).then(|| self.0.value(i))
    }

    fn iter(&self) -> impl Iterator<Item = Option<&str>> {
        self.0.iter()
    }

    fn len(&self) -> usize {
        self.0.len()
    }
}

fn string_column(
    batches: &[RecordBatch],
    name: &str,
) -> Result<StringColumn, datafusion::error::DataFusionError> {
    let mut parts = Vec::with_capacity(batches.len());
    for b in batches {
        let column = b.column_by_name(name).ok_or_else(|| {
            datafusion::error::DataFusionError::Plan(format!("column `{name}` not found"))
        })?;
        parts.push(cast(column, &DataType::Utf8)?);
    }
    let refs: Vec<&dyn Array> = parts.iter().map(|a| a.as_ref()).collect();
    let all = if refs.is_empty() {
        Arc::new(StringArray::new_null(0)) as datafusion::arrow::array::ArrayRef
    } else {
        datafusion::arrow::compute::concat(&refs)?
    };
    Ok(StringColumn(all.as_string::<i32>().clone()))
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

/// Union-find over referral indices.
struct Components {
    parent: Vec<usize>,
}

impl Components {
    fn new(n: usize) -> Self {
        Self {
            parent: (0..n).collect(),
        }
    }
    fn find(&mut self, mut x: usize) -> usize {
        while self.parent[x] != x {
            self.parent[x] = self.parent[self.parent[x]];
            x = self.parent[x];
        }
        x
    }
    fn union(&mut self, a: usize, b: usize) {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.parent[ra.max(rb)] = ra.min(rb);
        }
    }
}

/// Links every referral of the window through shared devices and payment fingerprints (IPs are
/// left out: offices and campuses share them legitimately) and names the components that
/// contain at least two flagged referrals.
fn link_clusters(
    referrals: &[RecordBatch],
    hits: &BTreeMap<usize, Vec<(String, f64)>>,
) -> Result<HashMap<usize, String>, datafusion::error::DataFusionError> {
    let ids = string_column(referrals, "referral_id")?;
    let mut components = Components::new(ids.len());
    for column in ["device_id", "payment_fingerprint"] {
        let values = string_column(referrals, column)?;
        let mut first: FxHashMap<&str, usize> = FxHashMap::default();
        for (i, v) in values.iter().enumerate() {
            if let Some(v) = v {
                match first.get(v) {
                    Some(&j) => components.union(i, j),
                    None => {
                        first.insert(v, i);
                    }
                }
            }
        }
    }
    let mut members: HashMap<usize, Vec<usize>> = HashMap::new();
    for &i in hits.keys() {
        members.entry(components.find(i)).or_default().push(i);
    }
    let mut out = HashMap::new();
    for flagged in members.into_values() {
        if flagged.len() < 2 {
            continue;
        }
        // Named after its smallest flagged referral id: stable across runs, whatever order the
        // referrals were read in.
        let name = format!(
            "cluster-{}",
            flagged
                .iter()
                .filter_map(|i| ids.get(*i))
                .min()
                .unwrap_or("unknown")
        );
        for i in flagged {
            out.insert(i, name.clone());
        }
    }
    Ok(out)
}

fn summarize_clusters(
    referrals: &[RecordBatch],
    hits: &BTreeMap<usize, Vec<(String, f64)>>,
    clusters_of: &HashMap<usize, String>,
) -> Result<Vec<Cluster>, datafusion::error::DataFusionError> {
    let referrers = string_column(referrals, "referrer_id")?;
    let devices = string_column(referrals, "device_id")?;
    let cards = string_column(referrals, "payment_fingerprint")?;
    // IPs are context for reviewers, not a link: a referrals table without them is fine.
    let ips = if referrals.iter().all(|b| b.column_by_name("ip").is_some()) {
        Some(string_column(referrals, "ip")?)
    } else {
        None
    };
    #[derive(Default)]
    struct Acc {
        n: u64,
        referrers: BTreeSet<String>,
        devices: BTreeSet<String>,
        ips: BTreeSet<String>,
        cards: BTreeSet<String>,
        rules: BTreeSet<String>,
    }
    let mut acc: BTreeMap<&str, Acc> = BTreeMap::new();
    for (i, name) in clusters_of {
        let a = acc.entry(name.as_str()).or_default();
        a.n += 1;
        a.referrers.extend(referrers.get(*i).map(str::to_string));
        a.devices.extend(devices.get(*i).map(str::to_string));
        a.ips
            .extend(ips.as_ref().and_then(|ips| ips.get(*i)).map(str::to_string));
        a.cards.extend(cards.get(*i).map(str::to_string));
        a.rules.extend(hits[i].iter().map(|(r, _)| r.clone()));
    }
    let mut clusters: Vec<Cluster> = acc
        .into_iter()
        .map(|(name, a)| Cluster {
            cluster_id: name.to_string(),
            referrals: a.n,
            referrers: a.referrers.len() as u64,
            devices: a.devices.into_iter().take(5).collect(),
            ips: a.ips.into_iter().take(5).collect(),
            payment_fingerprints: a.cards.len() as u64,
            rule_ids: a.rules.into_iter().collect(),
        })
        .collect();
    clusters.sort_by(|a, b| {
        b.referrals
            .cmp(&a.referrals)
            .then_with(|| a.cluster_id.cmp(&b.cluster_id))
    });
    Ok(clusters)
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
    use datafusion::arrow::array::{ArrayRef, Int64Array};
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

    fn lookup(index: &KeyIndex, value: &str) -> Vec<usize> {
        let mut found: Vec<usize> = index.referrals(value).collect();
        found.sort_unstable();
        found
    }

    #[test]
    fn key_index_finds_every_referral_with_a_key_and_none_with_a_null_part() {
        let batch = strings(&[
            (
                "device_id",
                &[Some("d1"), Some("d2"), Some("d1"), None, Some("d1")],
            ),
            (
                "card",
                &[Some("c1"), Some("c1"), Some("c2"), Some("c1"), Some("c1")],
            ),
        ]);
        let by_device =
            KeyIndex::build(std::slice::from_ref(&batch), &["device_id".into()]).unwrap();
        assert_eq!(lookup(&by_device, "d1"), vec![0, 2, 4]);
        assert_eq!(lookup(&by_device, "d2"), vec![1]);
        assert!(lookup(&by_device, "d3").is_empty());
        let key = ["device_id".to_string(), "card".to_string()];
        let by_both = KeyIndex::build(&[batch], &key).unwrap();
        let joined = |d: &str, c: &str| format!("{d}{KEY_SEPARATOR}{c}");
        assert_eq!(lookup(&by_both, &joined("d1", "c1")), vec![0, 4]);
        assert_eq!(lookup(&by_both, &joined("d1", "c2")), vec![2]);
        // Row 3 has no device: no key, so no combination finds it.
        assert!(lookup(&by_both, &joined("", "c1")).is_empty());
        // A value with the wrong number of parts matches nothing.
        assert!(lookup(&by_both, "d1").is_empty());
    }

    #[test]
    fn key_index_compares_values_when_hashes_collide() {
        let batch = strings(&[("device_id", &[Some("a"), Some("b"), Some("a")])]);
        let mut index = KeyIndex::build(&[batch], &["device_id".into()]).unwrap();
        assert_eq!(index.earlier, vec![KeyIndex::END, KeyIndex::END, 0]);
        // Make `b` collide with `a`: one chain a(2) -> a(0) -> b(1), as a shared hash would.
        index.earlier[0] = 1;
        assert_eq!(lookup(&index, "a"), vec![0, 2]);
        // And a key absent from the data whose hash lands on `a`'s chain finds nothing.
        let absent = key_hash([Some("zzz")]).unwrap();
        index.last.insert(absent, 2);
        assert!(lookup(&index, "zzz").is_empty());
    }

    #[test]
    fn clusters_link_through_devices_and_cards_transitively_but_not_ips() {
        // r1 -d1- r2 -c1- r3: r1 and r3 are flagged and linked through r2 (not flagged).
        // r4 shares only an IP with r1; r5 is alone.
        let referrals = strings(&[
            (
                "referral_id",
                &[Some("r1"), Some("r2"), Some("r3"), Some("r4"), Some("r5")],
            ),
            (
                "referrer_id",
                &[Some("A"), Some("B"), Some("C"), Some("D"), Some("E")],
            ),
            (
                "device_id",
                &[Some("d1"), Some("d1"), Some("d3"), Some("d4"), Some("d5")],
            ),
            (
                "payment_fingerprint",
                &[Some("c0"), Some("c1"), Some("c1"), Some("c4"), None],
            ),
            (
                "ip",
                &[
                    Some("10.0.0.1"),
                    None,
                    Some("10.0.0.3"),
                    Some("10.0.0.1"),
                    None,
                ],
            ),
        ]);
        let hits: BTreeMap<usize, Vec<(String, f64)>> = [0, 2, 3, 4]
            .into_iter()
            .map(|i| (i, vec![("rule".to_string(), 0.5)]))
            .collect();
        let batches = [referrals];
        let clusters_of = link_clusters(&batches, &hits).unwrap();
        let expected: HashMap<usize, String> =
            [(0, "cluster-r1".to_string()), (2, "cluster-r1".to_string())].into();
        assert_eq!(clusters_of, expected);
        let clusters = summarize_clusters(&batches, &hits, &clusters_of).unwrap();
        assert_eq!(
            clusters,
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

        let ctx = SessionContext::new();
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
        for (name, batch) in [("refs", refs), ("devices", devices)] {
            let table = MemTable::try_new(batch.schema(), vec![vec![batch]]).unwrap();
            ctx.register_table(name, Arc::new(table)).unwrap();
        }
        let options = ReviewOptions {
            suppressions: Some(&suppressions),
            as_of: NaiveDate::from_ymd_opt(2026, 6, 1).unwrap(),
            sweep_factors: &[],
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
