//! The dry run behind `refopt validate` and `refopt explain`: everything that can be checked
//! without reading data. The pipeline and the rules are loaded (every problem of every file), each
//! stage's SQL is planned by DataFusion against empty tables with the declared dataset column types
//! and the upstream stages' output schemas, and every rule is checked against the tables it reads:
//! columns, `row.<column>` accesses in Rhai, functions the sandbox does not offer, dimensions and
//! owners.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::prelude::SessionContext;
use refopt_spec::pipeline::SqlSource;
use refopt_spec::{Code, Diagnostic, Location, Pipeline, RuleSet, StageKind, Window, WindowRange};

use crate::execution::session::{SessionOptions, new_session};
use crate::rules::source::load_rules;

/// What validation found, and what it planned.
#[derive(Debug, Default)]
pub struct Validation {
    pub problems: Vec<Diagnostic>,
    /// Output schema of every stage that planned.
    pub stage_schemas: BTreeMap<String, SchemaRef>,
    pub stages_planned: usize,
    pub rules_checked: usize,
}

/// Checks the kustomizations under `k8s_dir` (every `kustomization.yaml`): each file a
/// `configMapGenerator` names must exist, so a CronJob never mounts a rule set that lost a file.
pub fn check_k8s(k8s_dir: &Path) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    let mut stack = vec![k8s_dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.file_name().is_none_or(|n| n != "kustomization.yaml") {
                continue;
            }
            let doc: serde_json::Value = match refopt_spec::yaml::load(&path) {
                Ok(d) => d,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            let generators = doc["configMapGenerator"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for generator in generators {
                for file in generator["files"].as_array().cloned().unwrap_or_default() {
                    let Some(entry) = file.as_str() else { continue };
                    // `key=path` or just `path`.
                    let relative = entry.split_once('=').map_or(entry, |(_, p)| p);
                    if !dir.join(relative).is_file() {
                        problems.push(
                            Diagnostic::of(Code::Deployment, Location::file_start(&path),
                                format!(
                                    "configMapGenerator `{}` names `{relative}`, which does not exist",
                                    generator["name"].as_str().unwrap_or("?")
                                ),
                            )
                            .help("run k8s/sync.py to regenerate k8s/base from rules/ and pipelines/"),
                        );
                    }
                }
            }
        }
    }
    problems
}

/// Validates the pipeline at `pipeline_file` with the rules at `rules_location` (a folder or
/// object-store URL; `None` skips rules).
pub async fn validate(pipeline_file: &Path, rules_location: Option<&str>) -> Validation {
    let mut v = Validation::default();
    let pipeline = match Pipeline::load(pipeline_file) {
        Ok(p) => Some(p),
        Err(errors) => {
            v.problems.extend(errors.0);
            None
        }
    };
    let rules = match rules_location {
        Some(location) => match load_rules(location).await {
            Ok(loaded) => Some(loaded.rules),
            Err(crate::EngineError::Config(errors)) => {
                v.problems.extend(errors.0);
                None
            }
            Err(e) => {
                v.problems.push(Diagnostic::of(
                    Code::Unreadable,
                    Location::file_start(Path::new(location)),
                    e.to_string(),
                ));
                None
            }
        },
        None => None,
    };
    let Some(pipeline) = pipeline else {
        return v;
    };
    let ctx = match planning_session(&pipeline, &mut v.problems) {
        Some(ctx) => ctx,
        None => return v,
    };
    plan_stages(&ctx, &pipeline, &mut v).await;
    if let Some(rules) = &rules {
        check_rules(&pipeline, rules, &v.stage_schemas.clone(), &mut v);
        v.problems
            .extend(expired_suppressions(rules, chrono::Utc::now().date_naive()));
    }
    v.problems.extend(unused_stages(&pipeline, rules.as_ref()));
    v
}

/// What a run refuses that `validate` would: rules reading columns their tables do not have
/// (a Rhai `row.<typo>` is `()` at run time and would silently flag or pass every row). Checked
/// against the schemas the stages actually produced in `ctx`, before any rule runs.
pub async fn refuse_rules_on_unknown_columns(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    rules: &RuleSet,
) -> Result<(), crate::EngineError> {
    let mut schemas = BTreeMap::new();
    for stage in &pipeline.stages {
        if let Ok(table) = ctx.table_provider(stage.id.as_str()).await {
            schemas.insert(stage.id.clone(), table.schema());
        }
    }
    let mut v = Validation::default();
    check_rules(pipeline, rules, &schemas, &mut v);
    let errors: Vec<Diagnostic> = v
        .problems
        .into_iter()
        .filter(|d| d.level == refopt_spec::Level::Error)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(crate::EngineError::Config(refopt_spec::Diagnostics(errors)))
    }
}

/// Warnings for suppressions that expired before `today`: they no longer apply, so the
/// referrals they cover are flagged again.
fn expired_suppressions(rules: &RuleSet, today: chrono::NaiveDate) -> Vec<Diagnostic> {
    let Some(suppressions) = &rules.suppressions else {
        return Vec::new();
    };
    suppressions
        .entries
        .iter()
        .filter(|s| !s.is_active_on(today))
        .map(|s| {
            Diagnostic::of(
                Code::Expired,
                s.location.clone(),
                format!(
                    "suppression `{}` expired on {}: referrals with these `{}` values are flagged again",
                    s.id, s.expires, s.column
                ),
            )
            .help(format!(
                "renew it (owner {}) if the reason still holds, or delete it",
                s.owner
            ))
        })
        .collect()
}

/// Warnings for SQL stages whose output nothing reads: no later stage depends on them, they
/// publish no role, and no rule reads them as a table.
fn unused_stages(pipeline: &Pipeline, rules: Option<&RuleSet>) -> Vec<Diagnostic> {
    let mut read: BTreeSet<&str> = pipeline
        .stages
        .iter()
        .flat_map(|s| s.depends_on.iter().map(String::as_str))
        .collect();
    if let Some(fraud) = rules.and_then(|r| r.fraud.as_ref()) {
        read.insert(fraud.referrals_table.as_str());
        read.extend(fraud.rules.iter().map(|r| r.table.as_str()));
        read.extend(fraud.payout_concentration.iter().map(|l| l.table.as_str()));
    }
    pipeline
        .stages
        .iter()
        .filter(|s| s.kind.sql().is_some())
        .filter(|s| s.publishes.is_none() && !read.contains(s.id.as_str()))
        .map(|s| {
            Diagnostic::of(
                Code::Unused,
                s.location.clone(),
                format!(
                    "stage `{}`: nothing reads its output (no stage depends on it, it publishes no role, no rule reads it)",
                    s.id
                ),
            )
            .help("remove the stage, or publish a role from it, or read it in a later stage or rule")
        })
        .collect()
}

/// A session with every dataset registered as an empty table of its declared column types.
/// Datasets with untyped columns are reported (their stages cannot be planned).
pub fn planning_session(
    pipeline: &Pipeline,
    problems: &mut Vec<Diagnostic>,
) -> Option<SessionContext> {
    let ctx = new_session(&SessionOptions::default()).ok()?;
    for d in &pipeline.datasets {
        let mut fields = Vec::new();
        let mut untyped = Vec::new();
        for c in &d.required_columns {
            match d.column_types.get(c) {
                Some(t) => fields.push(Field::new(
                    c,
                    crate::execution::column_types::arrow_type(*t),
                    true,
                )),
                None => untyped.push(c.as_str()),
            }
        }
        if !untyped.is_empty() {
            problems.push(
                Diagnostic::of(Code::InvalidValue, d.location.clone(),
                    format!(
                        "dataset `{}`: column(s) {} have no declared type, so SQL over them cannot be checked",
                        d.name,
                        untyped.join(", ")
                    ),
                )
                .help(format!(
                    "write `- {}: string` (types: {})",
                    untyped[0],
                    refopt_spec::ColumnType::NAMES.join(", ")
                )),
            );
        }
        if d.partitioned_by_day {
            fields.push(Field::new("dt", DataType::Utf8, false));
        }
        let schema = Arc::new(Schema::new(fields));
        let table = MemTable::try_new(schema, vec![vec![]]).ok()?;
        ctx.register_table(d.name.as_str(), Arc::new(table)).ok()?;
    }
    Some(ctx)
}

/// Placeholder values for planning (any valid window will do: only types matter).
pub fn planning_params() -> datafusion::common::ParamValues {
    let window = Window { days: 30 };
    let as_of = chrono::NaiveDate::from_ymd_opt(2026, 1, 1).expect("valid date");
    crate::execution::params::bind(&WindowRange::new(window, as_of), window.days)
}

/// Plans every SQL stage in dependency order, registering each output schema as an empty table.
async fn plan_stages(ctx: &SessionContext, pipeline: &Pipeline, v: &mut Validation) {
    let params = planning_params();
    let mut failed: BTreeSet<String> = BTreeSet::new();
    for stage in &pipeline.stages {
        if stage.depends_on.iter().any(|d| failed.contains(d)) {
            failed.insert(stage.id.clone());
            continue;
        }
        let Some((sql, source)) = stage.kind.sql() else {
            continue;
        };
        // Analyzer rules (type coercion) run when the physical plan is built, so build it:
        // over empty tables that costs nothing and catches what a run would hit first.
        let planned = match ctx
            .sql(sql)
            .await
            .and_then(|df| df.with_param_values(params.clone()))
        {
            Ok(df) => match df.clone().create_physical_plan().await {
                Ok(_) if matches!(stage.kind, StageKind::Components { .. }) => {
                    crate::execution::components::check_edges(&df).map(|()| df)
                }
                Ok(_) => Ok(df),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        match planned {
            Ok(df) => {
                let schema: SchemaRef = match stage.kind {
                    StageKind::Components { .. } => crate::execution::components::output_schema(),
                    _ => Arc::new(df.schema().as_arrow().clone()),
                };
                if let Some(role) = stage.publishes {
                    for (column, _) in crate::execution::roles::contract(role) {
                        if schema.field_with_name(column).is_err() {
                            v.problems.push(
                                Diagnostic::of(Code::RoleContract, stage.location.clone(),
                                    format!(
                                        "stage `{}` publishes the `{role}` role but its output lacks column `{column}`",
                                        stage.id,
                                    ),
                                )
                                .help("see the role contracts in docs/pipeline-authoring.md"),
                            );
                        }
                    }
                }
                let table = MemTable::try_new(schema.clone(), vec![vec![]]).expect("schema");
                let _ = ctx.deregister_table(stage.id.as_str());
                let _ = ctx.register_table(stage.id.as_str(), Arc::new(table));
                v.stage_schemas.insert(stage.id.clone(), schema);
                v.stages_planned += 1;
            }
            Err(e) => {
                failed.insert(stage.id.clone());
                v.problems
                    .push(sql_problem(stage, sql, source, &e.to_string()));
            }
        }
    }
}

/// A SQL planning error located in the SQL file (line and column from the parser, or of the
/// first mention of the unknown column), with a hint.
fn sql_problem(
    stage: &refopt_spec::Stage,
    sql: &str,
    source: &SqlSource,
    error: &str,
) -> Diagnostic {
    // DataFusion chains context lines ("type_coercion", "caused by", the cause): keep them on
    // one line, without the connective.
    let message = error
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "caused by" && !l.starts_with("Valid fields are"))
        .collect::<Vec<_>>()
        .join(": ");
    let (mut line, mut column) = parser_position(error).unwrap_or((0, 0));
    let unknown = unknown_column(error);
    if line == 0
        && let Some(name) = &unknown
        && let Some(pos) = find_identifier(sql, name)
    {
        (line, column) = pos;
    }
    let location = match source {
        SqlSource::File(path) => Location {
            file: path.clone(),
            line: line.max(1),
            column: column.max(1),
        },
        SqlSource::Inline(location) => {
            let mut l = location.clone();
            if line > 0 {
                // Block scalars start on the line after `sql: |`.
                l.line += line;
                l.column = column;
            }
            l
        }
    };
    let mut problem = Diagnostic::of(
        Code::Sql,
        location,
        format!("stage `{}`: SQL does not plan: {message}", stage.id),
    );
    if let Some(name) = unknown {
        problem = problem.help(format!(
            "`{name}` is not a column of the tables this stage reads; check the spelling, the dataset's required_columns, or the upstream stage's SELECT"
        ));
    }
    problem
}

fn parser_position(error: &str) -> Option<(u64, u64)> {
    let at = error.find("Line: ")?;
    let rest = &error[at + 6..];
    let line: u64 = rest
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let col_at = rest.find("Column: ")?;
    let column: u64 = rest[col_at + 8..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((line, column))
}

/// The column name in DataFusion's "No field named x" errors.
fn unknown_column(error: &str) -> Option<String> {
    let at = error.find("No field named ")?;
    let rest = &error[at + "No field named ".len()..];
    let name: String = rest
        .trim_start_matches(['"', '`'])
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == '.')
        .collect();
    let name = name.trim_end_matches('.');
    let name = name.rsplit('.').next().unwrap_or(name).to_string();
    (!name.is_empty()).then_some(name)
}

/// 1-based line and column of the first whole-word occurrence of `name` in `sql`.
fn find_identifier(sql: &str, name: &str) -> Option<(u64, u64)> {
    for (i, line) in sql.lines().enumerate() {
        let mut start = 0;
        while let Some(pos) = line[start..].find(name) {
            let at = start + pos;
            let before = line[..at].chars().next_back();
            let after = line[at + name.len()..].chars().next();
            let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
            if !word(before) && !word(after) && !line.trim_start().starts_with("--") {
                return Some((i as u64 + 1, at as u64 + 1));
            }
            start = at + name.len();
        }
    }
    None
}

/// Checks every rule against the stage schemas and the pipeline.
fn check_rules(
    pipeline: &Pipeline,
    rules: &RuleSet,
    schemas: &BTreeMap<String, SchemaRef>,
    v: &mut Validation,
) {
    let columns_of = |table: &str| -> Option<Vec<String>> {
        schemas
            .get(table)
            .map(|s| s.fields().iter().map(|f| f.name().clone()).collect())
    };
    let missing = |table: &str, column: &str| -> Option<String> {
        let columns = columns_of(table)?;
        if columns.iter().any(|c| c == column) {
            return None;
        }
        let hint = refopt_spec::pipeline::closest(column, columns.iter().map(String::as_str))
            .map(|c| format!("did you mean `{c}`?"))
            .unwrap_or_else(|| format!("columns: {}", columns.join(", ")));
        Some(hint)
    };
    let stage_ids: Vec<&str> = pipeline.stages.iter().map(|s| s.id.as_str()).collect();
    let api = sandbox_api();

    if let Some(fraud) = &rules.fraud {
        if let Err(errors) = fraud.check_tables(stage_ids.iter().copied()) {
            v.problems.extend(errors.0);
        }
        if !stage_ids.contains(&fraud.referrals_table.as_str()) {
            v.problems.push(Diagnostic::of(
                Code::UnknownReference,
                Location::file_start(&fraud.file),
                format!(
                    "referrals_table `{}` is not a stage of the pipeline",
                    fraud.referrals_table
                ),
            ));
        }
        for rule in &fraud.rules {
            v.rules_checked += 1;
            let mut check = |table: &str, column: &str, what: &str| {
                if let Some(hint) = missing(table, column) {
                    v.problems.push(
                        Diagnostic::of(
                            Code::UnknownReference,
                            rule.location.clone(),
                            format!(
                                "rule `{}`: {what} `{column}` is not a column of `{table}`",
                                rule.id
                            ),
                        )
                        .help(hint),
                    );
                }
            };
            for k in &rule.key {
                check(&rule.table, k, "key");
                check(&fraud.referrals_table, k, "key");
            }
            for c in &rule.when {
                check(&rule.table, &c.column, "condition column");
            }
            if let Some(expr) = &rule.expression {
                let usage = refopt_spec::sandbox::usage(&expr.ast);
                for (column, pos) in &usage.row_fields {
                    if let Some(hint) = missing(&rule.table, column) {
                        v.problems.push(
                            Diagnostic::of(
                                Code::UnknownReference,
                                script_location(&expr.location, true, *pos),
                                format!(
                                    "rule `{}`: `row.{column}` is not a column of `{}`",
                                    rule.id, rule.table
                                ),
                            )
                            .help(hint),
                        );
                    }
                }
                for (p, pos) in &usage.params_fields {
                    if !rule.params.contains_key(p) {
                        let declared: Vec<&str> = rule.params.keys().map(String::as_str).collect();
                        v.problems.push(
                            Diagnostic::of(Code::UnknownReference, script_location(&expr.location, true, *pos),
                                format!("rule `{}`: `params.{p}` is not declared in the rule's `params`", rule.id),
                            )
                            .help(format!("declared params: {}", if declared.is_empty() { "none".to_string() } else { declared.join(", ") })),
                        );
                    }
                }
                v.problems.extend(unknown_functions(
                    &api,
                    &usage,
                    &expr.location,
                    true,
                    &format!("rule `{}`", rule.id),
                ));
            }
        }
        if let Some(limits) = &fraud.payout_concentration {
            for column in [
                "scope",
                "group_id",
                "recipients",
                "payouts",
                "top1_share",
                "top5_share",
                "gini",
            ] {
                if let Some(hint) = missing(&limits.table, column) {
                    v.problems.push(
                        Diagnostic::of(
                            Code::UnknownReference,
                            Location::file_start(&fraud.file),
                            format!(
                                "payout_concentration: `{}` lacks column `{column}`",
                                limits.table
                            ),
                        )
                        .help(hint),
                    );
                }
            }
        }
        if let Some(suppressions) = &rules.suppressions {
            for s in &suppressions.entries {
                v.rules_checked += 1;
                if let Some(hint) = missing(&fraud.referrals_table, &s.column) {
                    v.problems.push(
                        Diagnostic::of(
                            Code::UnknownReference,
                            s.location.clone(),
                            format!(
                                "suppression `{}`: `{}` is not a column of `{}`",
                                s.id, s.column, fraud.referrals_table
                            ),
                        )
                        .help(hint),
                    );
                }
            }
        }
    }

    if let Some(alerts) = &rules.alerts {
        for a in &alerts.rules {
            v.rules_checked += 1;
            if a.dimension != "overall"
                && !pipeline.dimensions.iter().any(|d| d.name == a.dimension)
            {
                let names: Vec<&str> = pipeline
                    .dimensions
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect();
                let hint = refopt_spec::pipeline::closest(&a.dimension, names.iter().copied())
                    .map(|c| format!("did you mean `{c}`?"))
                    .unwrap_or_else(|| format!("dimensions: overall, {}", names.join(", ")));
                v.problems.push(
                    Diagnostic::of(
                        Code::UnknownReference,
                        a.location.clone(),
                        format!("alert `{}`: unknown dimension `{}`", a.id, a.dimension),
                    )
                    .help(hint),
                );
            }
        }
    }

    if let Some(health) = &rules.partner_health {
        v.rules_checked += 1;
        let table = pipeline
            .stages
            .iter()
            .find(|s| s.publishes == Some(refopt_spec::Role::PartnerHealth))
            .map(|s| s.id.clone());
        let usage = refopt_spec::sandbox::usage(&health.script.ast);
        let location = Location::file_start(&health.script.file);
        if let Some(table) = table {
            for (column, pos) in &usage.row_fields {
                if let Some(hint) = missing(&table, column) {
                    v.problems.push(
                        Diagnostic::of(
                            Code::UnknownReference,
                            script_location(&location, false, *pos),
                            format!(
                                "partner health script: `row.{column}` is not a column of `{table}`"
                            ),
                        )
                        .help(hint),
                    );
                }
            }
        }
        v.problems.extend(unknown_functions(
            &api,
            &usage,
            &location,
            false,
            "partner health script",
        ));
    }
    if let Some(playbook) = &rules.playbook {
        v.rules_checked += 1;
        let usage = refopt_spec::sandbox::usage(&playbook.ast);
        let location = Location::file_start(&playbook.file);
        v.problems.extend(unknown_functions(
            &api, &usage, &location, false, "playbook",
        ));
    }
}

/// A diagnostic for every function a script calls that the sandbox does not provide.
/// `subject` names the script in the message (`rule `x``, `playbook`).
fn unknown_functions(
    api: &BTreeSet<String>,
    usage: &refopt_spec::sandbox::ScriptUsage,
    base: &Location,
    embedded: bool,
    subject: &str,
) -> Vec<Diagnostic> {
    usage
        .calls
        .iter()
        .filter(|(name, _)| !api.contains(name.as_str()))
        .map(|(name, pos)| {
            let hint = refopt_spec::pipeline::closest(name, api.iter().map(String::as_str))
                .map(|c| {
                    format!(
                        "did you mean `{c}`? The sandbox API is listed in docs/rule-authoring.md"
                    )
                })
                .unwrap_or_else(|| {
                    "the sandbox API is listed in docs/rule-authoring.md".to_string()
                });
            Diagnostic::of(
                Code::Script,
                script_location(base, embedded, *pos),
                format!("{subject}: calls `{name}`, which the rules sandbox does not provide"),
            )
            .help(hint)
        })
        .collect()
}

/// Names of every function the sandbox offers (registered helpers and Rhai's standard
/// packages) plus the language's built-ins.
fn sandbox_api() -> BTreeSet<String> {
    let engine = refopt_spec::sandbox::engine();
    let mut names: BTreeSet<String> = engine
        .gen_fn_signatures(true)
        .iter()
        .filter_map(|s| s.split('(').next())
        .map(|n| n.rsplit("::").next().unwrap_or(n).trim().to_string())
        .collect();
    for builtin in [
        "type_of",
        "Fn",
        "call",
        "curry",
        "is_def_var",
        "is_def_fn",
        "is_shared",
        "print",
        "debug",
    ] {
        names.insert(builtin.to_string());
    }
    names
}

/// The location of a position inside a script: `base` is where the script starts (a `.rhai` file's
/// start, or the first character of an expression embedded in YAML).
fn script_location(base: &Location, embedded: bool, (line, column): (u64, u64)) -> Location {
    let mut loc = base.clone();
    if line == 0 {
        return loc;
    }
    if embedded {
        // An embedded script's span starts at its first character; block scalars keep their
        // indentation on every line.
        loc.line += line - 1;
        loc.column += column - 1;
    } else {
        loc.line = line;
        loc.column = column;
    }
    loc
}

/// Paths `refopt validate` reports relative to, for readable output.
pub fn display_path(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_positions_and_columns_in_errors() {
        assert_eq!(
            parser_position(
                "sql parser error: Expected: end of statement, found: x at Line: 3, Column: 7"
            ),
            Some((3, 7))
        );
        assert_eq!(
            unknown_column(
                "Schema error: No field named refferer_id. Valid fields are r.referral_id."
            ),
            Some("refferer_id".to_string())
        );
        assert_eq!(
            unknown_column("Schema error: No field named r.refferer_id. Valid fields are ..."),
            Some("refferer_id".to_string())
        );
        assert_eq!(
            find_identifier(
                "SELECT a,\n  refferer_id_x, refferer_id\nFROM t",
                "refferer_id"
            ),
            Some((2, 18))
        );
    }

    #[test]
    fn script_usage_sees_fields_and_calls() {
        let engine = refopt_spec::sandbox::engine();
        let mut scope = rhai::Scope::new();
        scope.push("row", rhai::Map::new());
        scope.push("params", rhai::Map::new());
        let ast = engine
            .compile_with_scope(
                &scope,
                "let x = coalesce(row.won, 0) + params.min; open_file(\"x\"); x.to_string().len() > max(1, 2)",
            )
            .unwrap();
        let usage = refopt_spec::sandbox::usage(&ast);
        assert!(usage.row_fields.contains_key("won"));
        assert!(usage.params_fields.contains_key("min"));
        assert_eq!(usage.calls.get("open_file"), Some(&(1, 44)));
        let api = sandbox_api();
        assert!(api.contains("coalesce") && api.contains("max") && api.contains("len"));
        assert!(!api.contains("open_file"));
    }
}
