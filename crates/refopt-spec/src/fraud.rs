//! Fraud heuristics (`rules/fraud.yaml`): each rule reads one feature table (a stage output),
//! selects suspicious rows with YAML threshold conditions and/or a Rhai expression, and flags the
//! referrals that share the row's key.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::pipeline::closest;
use crate::{sandbox, yaml};

/// The fraud rules file format version.
pub const FRAUD_RULES_VERSION: u32 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFraudRules {
    version: Spanned<u32>,
    /// Table whose rows are flagged (default `risk_referrals`).
    #[serde(default = "default_referrals_table")]
    referrals_table: String,
    rules: Vec<RawFraudRule>,
    #[serde(default)]
    payout_concentration: Option<PayoutConcentrationLimits>,
    /// Retries of a rule that failed transiently (the seed: "retry limit 2 for fraud model
    /// runs").
    #[serde(default = "default_retry_limit")]
    retry_limit: u32,
    /// Wall-clock budget of one rule's expression over all rows, in milliseconds.
    #[serde(default = "default_time_limit_ms")]
    time_limit_ms: u64,
}

fn default_retry_limit() -> u32 {
    2
}

fn default_time_limit_ms() -> u64 {
    120_000
}

/// Largest `retry_limit` accepted: a failing rule must not hold a run for long.
const MAX_RETRY_LIMIT: u32 = 5;

fn default_referrals_table() -> String {
    "risk_referrals".to_string()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFraudRule {
    id: Spanned<String>,
    description: String,
    severity: Severity,
    /// Pattern family reported in summaries (e.g. `device_ring`).
    pattern: String,
    table: Spanned<String>,
    key: OneOrMany,
    #[serde(default)]
    when: Vec<Spanned<RawCondition>>,
    #[serde(default)]
    expression: Option<Spanned<String>>,
    /// Named numbers the expression reads as `params.<name>` (scaled by the sensitivity sweep).
    #[serde(default)]
    params: BTreeMap<String, f64>,
    #[serde(default = "default_score")]
    score: f64,
    #[serde(default = "default_true")]
    enabled: bool,
    /// Overrides the file's `time_limit_ms` for this rule.
    #[serde(default)]
    time_limit_ms: Option<u64>,
}

fn default_score() -> f64 {
    0.8
}

fn default_true() -> bool {
    true
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn as_slice(&self) -> &[String] {
        match self {
            OneOrMany::One(one) => std::slice::from_ref(one),
            OneOrMany::Many(many) => many,
        }
    }
}

/// How bad a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

/// A condition as written: `value`, or for `in`/`not_in` a `list_file` (one value per line,
/// `#` comments; a path relative to the rules file, or several) instead of or besides `value`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    column: String,
    op: Op,
    #[serde(default)]
    value: Option<ConditionValue>,
    #[serde(default)]
    list_file: Option<OneOrMany>,
}

impl RawCondition {
    /// The condition with its list files read (paths relative to the rules `file`). Err with no
    /// diagnostics when the operator and the value do not fit (the caller locates that one);
    /// list file problems come located at their lines.
    fn resolve(&self, file: &Path, rule: &str) -> Result<Condition, Vec<Diagnostic>> {
        let list_op = matches!(self.op, Op::In | Op::NotIn);
        let value = match (&self.list_file, &self.value) {
            (None, Some(v)) if list_op == matches!(v, ConditionValue::List(_)) => v.clone(),
            (Some(files), None | Some(ConditionValue::List(_))) if list_op => {
                let mut items = match &self.value {
                    Some(ConditionValue::List(inline)) => inline.clone(),
                    _ => Vec::new(),
                };
                let mut problems = Vec::new();
                let folder = file.parent().unwrap_or(Path::new("."));
                for f in files.as_slice() {
                    match read_list_file(&folder.join(f), &self.column) {
                        Ok(values) => items.extend(values),
                        Err(found) => problems.extend(found.into_iter().map(|d| Diagnostic {
                            message: format!(
                                "rule `{rule}`: list file of `{}`: {}",
                                self.column, d.message
                            ),
                            ..d
                        })),
                    }
                }
                if !problems.is_empty() {
                    return Err(problems);
                }
                items.sort();
                items.dedup();
                ConditionValue::List(items)
            }
            _ => return Err(Vec::new()),
        };
        Ok(Condition {
            column: self.column.clone(),
            op: self.op,
            value,
        })
    }
}

/// Most values one list file may hold (the full public disposable-domain list is ~10 k).
pub const MAX_LIST_VALUES: usize = 1_000_000;

/// Reads a list file: one value per line, blank lines and `#` comments skipped. Values hold no
/// whitespace and appear once; for a column named `*domain` they must be lower-case domain
/// names. Problems are located at their line.
pub fn read_list_file(path: &Path, column: &str) -> Result<Vec<String>, Vec<Diagnostic>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![
            Diagnostic::new(
                Location::file_start(path),
                format!("cannot read list file: {e}"),
            )
            .code(crate::diagnostic::Code::Unreadable),
        ]
    })?;
    let domains = column.ends_with("domain");
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut values = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let value = line.trim();
        if value.is_empty() || value.starts_with('#') {
            continue;
        }
        let at = Location {
            file: path.to_path_buf(),
            line: i as u64 + 1,
            column: 1,
        };
        if value.chars().any(char::is_whitespace) {
            problems.push(Diagnostic::new(
                at,
                format!("`{value}`: one value per line (no spaces inside a value)"),
            ));
        } else if domains && !is_domain_name(value) {
            problems.push(Diagnostic::new(
                at,
                format!(
                    "`{value}` is not a lower-case domain name (letters, digits, `-` and `.`, at least one dot), as `{column}` values are compared exactly"
                ),
            ));
        } else if let Some(first) = seen.insert(value, i + 1) {
            problems.push(
                Diagnostic::new(
                    at,
                    format!("`{value}` is listed twice (first on line {first})"),
                )
                .code(crate::diagnostic::Code::Duplicate),
            );
        } else {
            values.push(value.to_string());
        }
        if values.len() > MAX_LIST_VALUES {
            problems.push(Diagnostic::new(
                Location::file_start(path),
                format!("more than {MAX_LIST_VALUES} values: is this a list file?"),
            ));
            break;
        }
    }
    if problems.is_empty() {
        Ok(values)
    } else {
        Err(problems)
    }
}

fn is_domain_name(v: &str) -> bool {
    v.contains('.')
        && !v.starts_with(['.', '-'])
        && !v.ends_with(['.', '-'])
        && !v.contains("..")
        && v.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

/// A threshold condition on one column of the feature table.
#[derive(Debug, Clone, PartialEq)]
pub struct Condition {
    pub column: String,
    pub op: Op,
    pub value: ConditionValue,
}

/// Comparison operators of threshold conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Op {
    #[serde(rename = ">=")]
    Ge,
    #[serde(rename = ">")]
    Gt,
    #[serde(rename = "<=")]
    Le,
    #[serde(rename = "<")]
    Lt,
    #[serde(rename = "==")]
    Eq,
    #[serde(rename = "!=")]
    Ne,
    #[serde(rename = "in")]
    In,
    #[serde(rename = "not_in")]
    NotIn,
}

/// A threshold: a number, a string, or a list (for `in` / `not_in`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum ConditionValue {
    Number(f64),
    Text(String),
    List(Vec<String>),
}

/// A compiled Rhai expression with its source location.
#[derive(Debug, Clone)]
pub struct Expression {
    pub source: String,
    pub ast: Arc<rhai::AST>,
    pub location: Location,
}

/// A validated fraud rule.
#[derive(Debug, Clone)]
pub struct FraudRule {
    pub id: String,
    pub description: String,
    pub severity: Severity,
    pub pattern: String,
    pub table: String,
    /// Columns shared by the feature table and the referrals table.
    pub key: Vec<String>,
    pub when: Vec<Condition>,
    pub expression: Option<Expression>,
    /// Named numbers the expression reads as `params.<name>`.
    pub params: BTreeMap<String, f64>,
    pub score: f64,
    /// Wall-clock budget of the expression over all rows; exceeding it is a transient failure
    /// (a loaded machine), retried up to the file's `retry_limit`.
    pub time_limit: std::time::Duration,
    pub location: Location,
}

impl FraudRule {
    /// Whether the rule has numeric thresholds (condition values or params) a sweep can scale.
    pub fn has_numeric_thresholds(&self) -> bool {
        !self.params.is_empty()
            || self
                .when
                .iter()
                .any(|c| matches!(c.value, ConditionValue::Number(_)))
    }

    /// A copy of the rule with every numeric threshold (condition values and params) multiplied
    /// by `factor`: the sensitivity sweep's "what if the line moved".
    pub fn scaled(&self, factor: f64) -> FraudRule {
        let mut rule = self.clone();
        for c in &mut rule.when {
            if let ConditionValue::Number(n) = &mut c.value {
                *n *= factor;
            }
        }
        for v in rule.params.values_mut() {
            *v *= factor;
        }
        rule
    }

    /// The params as a Rhai map (`params.<name>` in expressions).
    pub fn params_map(&self) -> rhai::Map {
        self.params
            .iter()
            .map(|(k, v)| (k.as_str().into(), rhai::Dynamic::from_float(*v)))
            .collect()
    }
}

/// Limits on how concentrated payouts may be (`payout_concentration` in `fraud.yaml`). Applied to
/// every row of the concentration table: the program's payouts across partners and across
/// referrers, and each partner's payouts across its referrers.
#[derive(Debug, Clone, PartialEq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct PayoutConcentrationLimits {
    /// Stage output with one row per population (`scope`, `group_id`).
    #[serde(default = "default_concentration_table")]
    pub table: String,
    /// Scopes judged (`partner`, `referrer`, `partner_referrers`); empty means all.
    #[serde(default)]
    pub scopes: Vec<String>,
    /// Populations smaller than this are not judged (a partner with two referrers is
    /// "concentrated" by arithmetic, not by fraud).
    pub min_recipients: u64,
    /// Populations paid less than this (USD) are not judged.
    #[serde(default)]
    pub min_payouts: f64,
    /// Largest share of the population's payouts one recipient may take.
    pub max_top1_share: f64,
    /// Largest Gini coefficient of the population's payouts.
    pub max_gini: f64,
    pub severity: Severity,
    /// Owner of the finding (an agent or ladder owner).
    #[serde(default = "default_concentration_owner")]
    pub owner: String,
}

fn default_concentration_table() -> String {
    "payout_concentration".to_string()
}

fn default_concentration_owner() -> String {
    "fraud-detection".to_string()
}

/// The fraud rule set.
#[derive(Debug, Clone)]
pub struct FraudRules {
    pub file: PathBuf,
    pub referrals_table: String,
    pub rules: Vec<FraudRule>,
    pub payout_concentration: Option<PayoutConcentrationLimits>,
    /// Retries of a rule that failed transiently before it is skipped.
    pub retry_limit: u32,
}

impl FraudRules {
    /// Loads and checks `file`; every problem is reported with its location and rule id.
    pub fn load(file: &Path) -> Result<FraudRules, Diagnostics> {
        let raw: RawFraudRules = yaml::load(file)?;
        let at = |l: &serde_saphyr::Location| Location::from_yaml(file, l);
        let mut errors = Vec::new();
        errors.extend(crate::yaml::check_version(
            file,
            &raw.version,
            FRAUD_RULES_VERSION,
            "fraud rules",
        ));
        let engine = sandbox::engine();
        // Expressions see one variable, `row` (strict variables catch typos at load time).
        let mut row_scope = rhai::Scope::new();
        row_scope.push("row", rhai::Map::new());
        row_scope.push("params", rhai::Map::new());
        let mut ids = BTreeSet::new();
        let mut rules = Vec::new();
        for r in raw.rules {
            let location = at(&r.id.referenced);
            let id = r.id.value.clone();
            if !ids.insert(id.clone()) {
                errors.push(
                    Diagnostic::new(location.clone(), format!("rule `{id}` is declared twice"))
                        .code(crate::diagnostic::Code::Duplicate),
                );
            }
            if !(0.0..=1.0).contains(&r.score) {
                errors.push(Diagnostic::new(
                    location.clone(),
                    format!("rule `{id}`: score {} must be between 0 and 1", r.score),
                ));
            }
            if matches!(&r.key, OneOrMany::Many(k) if k.is_empty()) {
                errors.push(Diagnostic::new(
                    location.clone(),
                    format!(
                        "rule `{id}`: `key` names no column; name the column(s) whose value links a row of `{}` to the window's referrals",
                        r.table.value
                    ),
                ));
            }
            if r.when.is_empty() && r.expression.is_none() {
                errors.push(Diagnostic::new(
                    location.clone(),
                    format!("rule `{id}` needs `when` conditions or an `expression`"),
                ));
            }
            let mut when = Vec::new();
            for c in &r.when {
                match c.value.resolve(file, &id) {
                    Ok(condition) => when.push(condition),
                    Err(problems) if problems.is_empty() => errors.push(Diagnostic::new(
                        at(&c.referenced),
                        format!(
                            "rule `{id}`: condition on `{}` — `in`/`not_in` take a list (`value: [...]` and/or `list_file`), other operators a single `value`",
                            c.value.column
                        ),
                    )),
                    Err(problems) => errors.extend(problems),
                }
            }
            let expression = match &r.expression {
                Some(e) => match engine.compile_with_scope(&row_scope, &e.value) {
                    Ok(ast) => Some(Expression {
                        source: e.value.clone(),
                        ast: Arc::new(ast),
                        location: at(&e.referenced),
                    }),
                    Err(err) => {
                        let mut loc = at(&e.referenced);
                        if let Some((line, col)) = sandbox::position(err.position()) {
                            // The span starts at the script's first character; block scalars
                            // keep their indentation on every line.
                            loc.line += line as u64 - 1;
                            loc.column += col as u64 - 1;
                        }
                        errors.push(
                            Diagnostic::new(
                                loc,
                                format!("rule `{id}`: Rhai syntax error: {}", err.0),
                            )
                            .code(crate::diagnostic::Code::Script),
                        );
                        None
                    }
                },
                None => None,
            };
            if r.enabled {
                rules.push(FraudRule {
                    id,
                    description: r.description.trim().to_string(),
                    severity: r.severity,
                    pattern: r.pattern,
                    table: r.table.value,
                    key: match r.key {
                        OneOrMany::One(k) => vec![k],
                        OneOrMany::Many(k) => k,
                    },
                    when,
                    expression,
                    params: r.params,
                    score: r.score,
                    time_limit: std::time::Duration::from_millis(
                        r.time_limit_ms.unwrap_or(raw.time_limit_ms),
                    ),
                    location,
                });
            }
        }
        if raw.retry_limit > MAX_RETRY_LIMIT || raw.time_limit_ms == 0 {
            errors.push(Diagnostic::new(
                Location::file_start(file),
                format!(
                    "retry_limit must be at most {MAX_RETRY_LIMIT} (got {}) and time_limit_ms above 0 (got {})",
                    raw.retry_limit, raw.time_limit_ms
                ),
            ));
        }
        if let Some(limits) = &raw.payout_concentration {
            let share_ok = |v: f64| (0.0..=1.0).contains(&v);
            if !share_ok(limits.max_top1_share) || !share_ok(limits.max_gini) {
                errors.push(Diagnostic::new(
                    Location::file_start(file),
                    "payout_concentration: max_top1_share and max_gini must be between 0 and 1",
                ));
            }
        }
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        Ok(FraudRules {
            file: file.to_path_buf(),
            referrals_table: raw.referrals_table,
            rules,
            payout_concentration: raw.payout_concentration,
            retry_limit: raw.retry_limit,
        })
    }

    /// Checks that every rule's table is one of `tables` (stage ids), with a hint for typos.
    pub fn check_tables<'a>(
        &self,
        tables: impl Iterator<Item = &'a str> + Clone,
    ) -> Result<(), Diagnostics> {
        let mut errors = Vec::new();
        if let Some(limits) = &self.payout_concentration
            && !tables.clone().any(|t| t == limits.table)
        {
            errors.push(
                Diagnostic::new(
                    Location::file_start(&self.file),
                    format!(
                        "payout_concentration reads unknown table `{}`",
                        limits.table
                    ),
                )
                .code(crate::diagnostic::Code::UnknownReference),
            );
        }
        for r in &self.rules {
            if !tables.clone().any(|t| t == r.table) {
                let hint = closest(&r.table, tables.clone())
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                errors.push(
                    Diagnostic::new(
                        r.location.clone(),
                        format!("rule `{}` reads unknown table `{}`{hint}", r.id, r.table),
                    )
                    .code(crate::diagnostic::Code::UnknownReference),
                );
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Diagnostics(errors))
        }
    }
}
