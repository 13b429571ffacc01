//! The pipeline file (`pipelines/<name>.yaml`): datasets, dimensions and SQL stages.
//!
//! Loading happens in two phases, as in Vector and ripgrep: the raw YAML types (unknown keys
//! rejected, every name carrying its location) are checked as a whole, collecting *all*
//! problems, and only a fully valid file becomes a [`Pipeline`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::dag;
use crate::diagnostic::{Diagnostic, Diagnostics, Location};
use crate::yaml;

/// The pipeline file format version this build reads.
pub const PIPELINE_VERSION: u32 = 1;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPipeline {
    version: Spanned<u32>,
    name: Spanned<String>,
    #[serde(default)]
    description: String,
    datasets: Vec<RawDataset>,
    #[serde(default)]
    dimensions: Vec<RawDimension>,
    #[serde(default)]
    defaults: RawDefaults,
    stages: Vec<RawStage>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDataset {
    name: Spanned<String>,
    path: String,
    #[serde(default)]
    partitioned_by_day: bool,
    #[serde(default)]
    description: String,
    required_columns: Vec<Spanned<RawColumn>>,
    #[serde(default)]
    time_column: Option<Spanned<String>>,
    #[serde(default)]
    owner: Option<String>,
    #[serde(default)]
    tests: Vec<Spanned<crate::data_tests::RawDataTest>>,
    #[serde(default)]
    currency: Option<Spanned<RawCurrency>>,
}

/// `currency: { column: currency, expect: USD }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCurrency {
    column: String,
    expect: String,
}

/// `name` or `name: type` in `required_columns`.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum RawColumn {
    Name(String),
    Typed(BTreeMap<String, String>),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDimension {
    name: Spanned<String>,
    #[serde(default)]
    description: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDefaults {
    #[serde(default)]
    retry: Option<Spanned<RetryPolicy>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    id: Spanned<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    kind: StageKindName,
    #[serde(default)]
    sql: Option<String>,
    #[serde(default)]
    sql_file: Option<Spanned<String>>,
    #[serde(default)]
    depends_on: Vec<Spanned<String>>,
    #[serde(default)]
    retry: Option<Spanned<RetryPolicy>>,
    #[serde(default)]
    publishes: Option<Role>,
    #[serde(default)]
    scope: StageScope,
}

/// Which dates a stage computes over.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StageScope {
    /// The run's window (current and previous period): the `$window_*`/`$previous_*`
    /// placeholders.
    #[default]
    Window,
    /// The whole date range of the run: `$range_start`..`$range_end` (and `_day` forms). A run
    /// computes it over its own window's range; a backfill computes it **once** over the union
    /// of its windows' ranges and every window reads the same output. Such a stage must
    /// produce per-day rows that window stages roll up (and so must not use window
    /// placeholders, depend on window stages or publish a role).
    Range,
}

/// Placeholders that change with the window; a range-scoped stage must not use them.
pub const WINDOW_PLACEHOLDERS: [&str; 2] = ["$window_", "$previous_"];

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StageKindName {
    #[default]
    Sql,
    Gate,
    Components,
}

/// How often a failed stage is retried, and how long to wait between attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Retries after the first attempt (the seed's default is 2).
    pub limit: u32,
    /// First backoff in milliseconds; doubles each retry, with jitter.
    #[serde(default = "default_backoff_ms")]
    pub backoff_ms: u64,
}

fn default_backoff_ms() -> u64 {
    250
}

/// Most retries a `retry.limit` may ask for.
pub const MAX_RETRY_LIMIT: u32 = 10;
/// Longest first backoff a `retry.backoff_ms` may ask for (one minute; it doubles per retry).
pub const MAX_BACKOFF_MS: u64 = 60_000;

impl RetryPolicy {
    /// Why the policy is out of bounds, if it is: a run must end in bounded time.
    pub fn problem(&self) -> Option<String> {
        if self.limit > MAX_RETRY_LIMIT {
            Some(format!(
                "retry.limit {} is more than {MAX_RETRY_LIMIT} retries",
                self.limit
            ))
        } else if self.backoff_ms > MAX_BACKOFF_MS {
            Some(format!(
                "retry.backoff_ms {} is more than {MAX_BACKOFF_MS} ms (it doubles with each retry)",
                self.backoff_ms
            ))
        } else {
            None
        }
    }

    /// A located error for an out-of-bounds policy.
    pub(crate) fn check(
        policy: &Spanned<RetryPolicy>,
        file: &Path,
        errors: &mut Vec<Diagnostic>,
    ) -> RetryPolicy {
        if let Some(problem) = policy.value.problem() {
            errors.push(Diagnostic::new(
                Location::from_yaml(file, &policy.referenced),
                problem,
            ));
        }
        policy.value
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            limit: 2,
            backoff_ms: default_backoff_ms(),
        }
    }
}

/// What the engine reads from a stage's output to build the plan. Each role has a fixed output
/// contract (documented in `docs/pipeline-authoring.md`) that the engine checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Per dataset and period: row counts, freshness, null and duplicate checks.
    DatasetHealth,
    /// Funnel counts per period, dimension and value.
    Funnel,
    /// Program KPIs per period (`metric`, `period`, `value`).
    Kpis,
    /// Per partner inputs for partner health.
    PartnerHealth,
    /// Per experiment and variant: units and unit-level outcome summaries.
    Experiments,
}

impl Role {
    /// The role's name as written in pipeline YAML (`publishes: funnel`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::DatasetHealth => "dataset_health",
            Role::Funnel => "funnel",
            Role::Kpis => "kpis",
            Role::PartnerHealth => "partner_health",
            Role::Experiments => "experiments",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The owner of a dataset's failing data tests when the pipeline names none.
pub const DEFAULT_DATA_OWNER: &str = "data-platform";

/// A dataset the pipeline reads.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub name: String,
    /// Path under the data root, e.g. `invites`.
    pub path: String,
    /// Hive `dt=YYYY-MM-DD` day partitions.
    pub partitioned_by_day: bool,
    pub description: String,
    pub required_columns: Vec<String>,
    /// Declared types of required columns (`name: type`); `refopt validate` plans SQL with them
    /// and a run rejects data whose column has another type.
    pub column_types: BTreeMap<String, ColumnType>,
    /// The event-time column that places a row in the current or previous window for the
    /// data tests (`freshness` and `row_count_change` need it); without one, tests read every
    /// row.
    pub time_column: Option<String>,
    /// Who is alerted when an `error` data test of the dataset fails (default
    /// [`DEFAULT_DATA_OWNER`]).
    pub owner: String,
    /// Declared data tests, in declaration order.
    pub tests: Vec<crate::data_tests::DataTest>,
    /// The currency of the dataset's money: rows of the window in another currency stop the
    /// run (refopt sums money in one currency).
    pub currency: Option<Currency>,
    pub location: Location,
}

/// A dataset's currency column and the one currency its money must be in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Currency {
    pub column: String,
    /// ISO 4217 code, e.g. `USD`.
    pub expect: String,
}

/// The logical type of a declared column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    String,
    Int64,
    Float64,
    /// An amount of money with two decimal places: stored as float64 or decimal, read by the
    /// stages as an exact `DECIMAL(18, 2)` so sums are exact in any order.
    Money,
    Bool,
    /// Instant in time (any unit; UTC).
    Timestamp,
    Date,
}

impl ColumnType {
    /// Every type name accepted in YAML.
    pub const NAMES: [&'static str; 7] = [
        "string",
        "int64",
        "float64",
        "money",
        "bool",
        "timestamp",
        "date",
    ];

    /// Parses a YAML type name.
    pub fn parse(name: &str) -> Option<ColumnType> {
        Some(match name {
            "string" => ColumnType::String,
            "int64" => ColumnType::Int64,
            "float64" => ColumnType::Float64,
            "money" => ColumnType::Money,
            "bool" => ColumnType::Bool,
            "timestamp" => ColumnType::Timestamp,
            "date" => ColumnType::Date,
            _ => return None,
        })
    }

    /// The YAML name of the type.
    pub fn name(self) -> &'static str {
        match self {
            ColumnType::String => "string",
            ColumnType::Int64 => "int64",
            ColumnType::Float64 => "float64",
            ColumnType::Money => "money",
            ColumnType::Bool => "bool",
            ColumnType::Timestamp => "timestamp",
            ColumnType::Date => "date",
        }
    }
}

/// A breakdown the user may ask for with `--dimensions`.
#[derive(Debug, Clone)]
pub struct Dimension {
    pub name: String,
    pub description: String,
}

/// What a stage does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageKind {
    /// Runs SQL; its result is registered as a table named after the stage.
    Sql { sql: String, source: SqlSource },
    /// A merge gate: waits for its dependencies, produces nothing.
    Gate,
    /// Connected components of a graph: the SQL returns edges (string columns `a`, `b`); the
    /// stage's table has one row per node that is on an edge: `node`, `component` (the
    /// component's smallest node) and `component_nodes`.
    Components { sql: String, source: SqlSource },
}

impl StageKind {
    /// The stage's SQL and where it came from (none for a gate).
    pub fn sql(&self) -> Option<(&str, &SqlSource)> {
        match self {
            StageKind::Sql { sql, source } | StageKind::Components { sql, source } => {
                Some((sql, source))
            }
            StageKind::Gate => None,
        }
    }

    /// The kind's name in the pipeline file (`kind:`) and in the plan's stage records.
    pub fn name(&self) -> &'static str {
        match self {
            StageKind::Sql { .. } => "sql",
            StageKind::Gate => "gate",
            StageKind::Components { .. } => "components",
        }
    }
}

/// Where a stage's SQL came from (for error messages and `explain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlSource {
    Inline(Location),
    File(PathBuf),
}

/// One step of the pipeline.
#[derive(Debug, Clone)]
pub struct Stage {
    pub id: String,
    pub description: String,
    pub kind: StageKind,
    pub depends_on: Vec<String>,
    pub retry: RetryPolicy,
    pub publishes: Option<Role>,
    pub scope: StageScope,
    pub location: Location,
}

/// A validated pipeline.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub description: String,
    pub file: PathBuf,
    pub datasets: Vec<Dataset>,
    pub dimensions: Vec<Dimension>,
    /// Stages in a valid execution order (dependencies first).
    pub stages: Vec<Stage>,
}

impl Pipeline {
    /// Loads and validates a pipeline file, reporting every problem found.
    pub fn load(file: &Path) -> Result<Pipeline, Diagnostics> {
        let raw: RawPipeline = yaml::load(file)?;
        resolve(file, raw)
    }

    /// Parses a pipeline from text (SQL files are resolved relative to `file`'s folder).
    pub fn parse(file: &Path, text: &str) -> Result<Pipeline, Diagnostics> {
        let raw: RawPipeline = yaml::parse(file, text)?;
        resolve(file, raw)
    }

    /// The stage with this id.
    pub fn stage(&self, id: &str) -> Option<&Stage> {
        self.stages.iter().find(|s| s.id == id)
    }

    /// The stage that publishes `role`, if any.
    pub fn stage_publishing(&self, role: Role) -> Option<&Stage> {
        self.stages.iter().find(|s| s.publishes == Some(role))
    }

    /// Checks requested dimension names against the pipeline's declared dimensions.
    pub fn check_dimensions(&self, requested: &[String]) -> Result<(), String> {
        let known: Vec<&str> = self.dimensions.iter().map(|d| d.name.as_str()).collect();
        for r in requested {
            if !known.contains(&r.as_str()) {
                return Err(format!(
                    "unknown dimension `{r}`; pipeline `{}` declares: {}",
                    self.name,
                    known.join(", ")
                ));
            }
        }
        Ok(())
    }
}

fn resolve(file: &Path, raw: RawPipeline) -> Result<Pipeline, Diagnostics> {
    let mut errors = Vec::new();
    let at = |loc: &serde_saphyr::Location| Location::from_yaml(file, loc);
    errors.extend(crate::yaml::check_version(
        file,
        &raw.version,
        PIPELINE_VERSION,
        "pipeline",
    ));
    if !is_identifier(&raw.name.value.replace('-', "_")) {
        errors.push(Diagnostic::new(
            at(&raw.name.referenced),
            format!(
                "pipeline name `{}` must use letters, digits, `_` and `-` only",
                raw.name.value
            ),
        ));
    }

    let mut datasets = Vec::new();
    let mut names = BTreeSet::new();
    for d in raw.datasets {
        let location = at(&d.name.referenced);
        if !is_identifier(&d.name.value) {
            errors.push(Diagnostic::new(
                location.clone(),
                format!(
                    "dataset name `{}` must be a SQL identifier (letters, digits, `_`)",
                    d.name.value
                ),
            ));
        }
        if !names.insert(d.name.value.clone()) {
            errors.push(
                Diagnostic::new(
                    location.clone(),
                    format!("dataset `{}` is declared twice", d.name.value),
                )
                .code(crate::diagnostic::Code::Duplicate),
            );
        }
        if d.path.trim().is_empty() || d.path.contains("..") {
            errors.push(Diagnostic::new(
                location.clone(),
                format!(
                    "dataset `{}`: path must be a relative folder under the data root",
                    d.name.value
                ),
            ));
        }
        if d.required_columns.is_empty() {
            errors.push(Diagnostic::new(
                location.clone(),
                format!("dataset `{}`: required_columns is empty", d.name.value),
            ));
        }
        let mut required_columns = Vec::new();
        let mut column_types = BTreeMap::new();
        for c in d.required_columns {
            match c.value {
                RawColumn::Name(name) => required_columns.push(name),
                RawColumn::Typed(map) if map.len() == 1 => {
                    let (name, type_name) = map.into_iter().next().expect("one entry");
                    match ColumnType::parse(&type_name) {
                        Some(t) => {
                            column_types.insert(name.clone(), t);
                        }
                        None => {
                            let hint = closest(&type_name, ColumnType::NAMES.iter().copied())
                                .map(|c| format!(" (did you mean `{c}`?)"))
                                .unwrap_or_default();
                            errors.push(Diagnostic::new(
                                at(&c.referenced),
                                format!(
                                    "dataset `{}`: column `{name}` has unknown type `{type_name}`{hint}; types: {}",
                                    d.name.value,
                                    ColumnType::NAMES.join(", ")
                                ),
                            ).code(crate::diagnostic::Code::UnknownReference));
                        }
                    }
                    required_columns.push(name);
                }
                RawColumn::Typed(_) => errors.push(Diagnostic::new(
                    at(&c.referenced),
                    format!(
                        "dataset `{}`: write each column as `name` or `name: type`",
                        d.name.value
                    ),
                )),
            }
        }
        let scope = crate::data_tests::TestScope {
            file,
            dataset: &d.name.value,
            columns: &required_columns,
            time_column: d.time_column.as_ref().map(|c| c.value.as_str()),
            column_types: &column_types,
        };
        if let Some(c) = &d.time_column {
            crate::data_tests::check_time_column(&scope, c, &mut errors);
        }
        let mut tests = crate::data_tests::resolve_tests(&scope, d.tests, &mut errors);
        crate::data_tests::add_implicit_finite_tests(&scope, &location, &mut tests);
        let currency = d.currency.map(|c| {
            let code_ok =
                c.value.expect.len() == 3 && c.value.expect.bytes().all(|b| b.is_ascii_uppercase());
            if !required_columns.contains(&c.value.column) {
                errors.push(
                    Diagnostic::new(
                        at(&c.referenced),
                        format!(
                            "dataset `{}`: currency column `{}` is not one of its required columns",
                            d.name.value, c.value.column
                        ),
                    )
                    .code(crate::diagnostic::Code::UnknownReference),
                );
            }
            if !code_ok {
                errors.push(Diagnostic::new(
                    at(&c.referenced),
                    format!(
                        "dataset `{}`: currency `{}` is not an ISO 4217 code such as USD or EUR",
                        d.name.value, c.value.expect
                    ),
                ));
            }
            Currency {
                column: c.value.column,
                expect: c.value.expect,
            }
        });
        datasets.push(Dataset {
            name: d.name.value,
            path: d.path.trim_matches('/').to_string(),
            partitioned_by_day: d.partitioned_by_day,
            description: d.description,
            required_columns,
            column_types,
            time_column: d.time_column.map(|c| c.value),
            owner: d.owner.unwrap_or_else(|| DEFAULT_DATA_OWNER.to_string()),
            tests,
            currency,
            location,
        });
    }
    crate::data_tests::check_relationship_targets(&datasets, &mut errors);

    let mut dimensions = Vec::new();
    let mut dim_names = BTreeSet::new();
    for d in raw.dimensions {
        if !dim_names.insert(d.name.value.clone()) {
            errors.push(
                Diagnostic::new(
                    at(&d.name.referenced),
                    format!("dimension `{}` is declared twice", d.name.value),
                )
                .code(crate::diagnostic::Code::Duplicate),
            );
        }
        dimensions.push(Dimension {
            name: d.name.value,
            description: d.description,
        });
    }

    let default_retry = raw
        .defaults
        .retry
        .as_ref()
        .map(|r| RetryPolicy::check(r, file, &mut errors))
        .unwrap_or_default();
    let base = file.parent().unwrap_or(Path::new("."));
    let mut stages = Vec::new();
    let mut stage_ids: BTreeMap<String, Location> = BTreeMap::new();
    for s in &raw.stages {
        let location = at(&s.id.referenced);
        if !is_identifier(&s.id.value) {
            errors.push(Diagnostic::new(
                location.clone(),
                format!(
                    "stage id `{}` must be a SQL identifier (letters, digits, `_`): later stages read it as a table",
                    s.id.value
                ),
            ));
        }
        if names.contains(&s.id.value) {
            errors.push(
                Diagnostic::new(
                    location.clone(),
                    format!("stage `{}` has the same name as a dataset", s.id.value),
                )
                .code(crate::diagnostic::Code::Duplicate),
            );
        }
        if stage_ids
            .insert(s.id.value.clone(), location.clone())
            .is_some()
        {
            errors.push(
                Diagnostic::new(
                    location,
                    format!("stage `{}` is declared twice", s.id.value),
                )
                .code(crate::diagnostic::Code::Duplicate),
            );
        }
    }
    let mut publishers: BTreeMap<Role, String> = BTreeMap::new();
    for s in raw.stages {
        let location = at(&s.id.referenced);
        let id = s.id.value;
        for dep in &s.depends_on {
            if !stage_ids.contains_key(&dep.value) {
                let hint = closest(&dep.value, stage_ids.keys().map(String::as_str))
                    .map(|c| format!(" (did you mean `{c}`?)"))
                    .unwrap_or_default();
                errors.push(
                    Diagnostic::new(
                        at(&dep.referenced),
                        format!(
                            "stage `{id}` depends on unknown stage `{}`{hint}",
                            dep.value
                        ),
                    )
                    .code(crate::diagnostic::Code::UnknownReference),
                );
            }
        }
        if let Some(role) = s.publishes
            && let Some(other) = publishers.insert(role, id.clone())
        {
            errors.push(Diagnostic::new(
                location.clone(),
                format!("stage `{id}` publishes the `{role}` role, already published by stage `{other}`"),
            ).code(crate::diagnostic::Code::Duplicate));
        }
        let with_sql = |sql: String, source: SqlSource| match s.kind {
            StageKindName::Components => StageKind::Components { sql, source },
            _ => StageKind::Sql { sql, source },
        };
        let kind = match (s.kind, s.sql, s.sql_file) {
            (StageKindName::Gate, None, None) => StageKind::Gate,
            (StageKindName::Gate, _, _) => {
                errors.push(Diagnostic::new(
                    location.clone(),
                    format!("stage `{id}` is a gate and cannot have SQL"),
                ));
                StageKind::Gate
            }
            (_, Some(sql), None) => with_sql(sql, SqlSource::Inline(location.clone())),
            (_, None, Some(f)) => {
                let path = base.join(&f.value);
                match std::fs::read_to_string(&path) {
                    Ok(sql) => with_sql(sql, SqlSource::File(path)),
                    Err(e) => {
                        errors.push(
                            Diagnostic::new(
                                at(&f.referenced),
                                format!(
                                    "stage `{id}`: cannot read sql_file `{}`: {e}",
                                    path.display()
                                ),
                            )
                            .code(crate::diagnostic::Code::Unreadable),
                        );
                        StageKind::Gate
                    }
                }
            }
            (_, None, None) => {
                errors.push(Diagnostic::new(
                    location.clone(),
                    format!("stage `{id}` needs `sql` or `sql_file` (or `kind: gate`)"),
                ));
                StageKind::Gate
            }
            (_, Some(_), Some(_)) => {
                errors.push(Diagnostic::new(
                    location.clone(),
                    format!("stage `{id}` has both `sql` and `sql_file`; keep one"),
                ));
                StageKind::Gate
            }
        };
        if s.scope == StageScope::Range {
            errors.extend(range_scope_problems(&id, &location, &kind, s.publishes));
        }
        stages.push(Stage {
            id,
            description: s.description,
            kind,
            depends_on: s.depends_on.into_iter().map(|d| d.value).collect(),
            retry: s
                .retry
                .as_ref()
                .map_or(default_retry, |r| RetryPolicy::check(r, file, &mut errors)),
            publishes: s.publishes,
            scope: s.scope,
            location,
        });
    }
    if stages.is_empty() {
        errors.push(Diagnostic::new(
            Location::file_start(file),
            "the pipeline has no stages",
        ));
    }
    let scopes: BTreeMap<&str, StageScope> =
        stages.iter().map(|s| (s.id.as_str(), s.scope)).collect();
    for stage in stages.iter().filter(|s| s.scope == StageScope::Range) {
        for dep in &stage.depends_on {
            if scopes.get(dep.as_str()) == Some(&StageScope::Window) {
                errors.push(Diagnostic::new(
                    stage.location.clone(),
                    format!(
                        "stage `{}` has `scope: range` but depends on `{dep}`, a window stage: a range stage is computed once for all windows of a backfill, so it may depend on range stages only",
                        stage.id
                    ),
                ));
            }
        }
    }
    if !errors.is_empty() {
        return Err(Diagnostics(errors));
    }
    let order = dag::topological_order(&stages).map_err(|cycle| {
        let first = stages
            .iter()
            .find(|s| s.id == cycle[0])
            .expect("cycle members are stages");
        Diagnostics(vec![Diagnostic::new(
            first.location.clone(),
            format!("dependency cycle: {}", cycle.join(" -> ")),
        )])
    })?;
    let mut by_id: BTreeMap<String, Stage> =
        stages.into_iter().map(|s| (s.id.clone(), s)).collect();
    let stages = order
        .into_iter()
        .map(|id| by_id.remove(&id).expect("ordered ids are stages"))
        .collect();
    Ok(Pipeline {
        name: raw.name.value,
        description: raw.description,
        file: file.to_path_buf(),
        datasets,
        dimensions,
        stages,
    })
}

/// What keeps a `scope: range` stage from being shared by the windows of a backfill.
fn range_scope_problems(
    id: &str,
    location: &Location,
    kind: &StageKind,
    publishes: Option<Role>,
) -> Vec<Diagnostic> {
    let mut problems = Vec::new();
    match kind {
        StageKind::Gate => problems.push(Diagnostic::new(
            location.clone(),
            format!("stage `{id}`: a gate has no output to share; drop `scope: range`"),
        )),
        StageKind::Sql { sql, .. } | StageKind::Components { sql, .. } => {
            if let Some(p) = WINDOW_PLACEHOLDERS.iter().find(|p| sql.contains(*p)) {
                problems.push(Diagnostic::new(
                    location.clone(),
                    format!(
                        "stage `{id}` has `scope: range` but its SQL uses `{p}...`, which changes with the window; use $range_start, $range_end, $range_start_day, $range_end_day and let window stages filter by day"
                    ),
                ));
            }
        }
    }
    if let Some(role) = publishes {
        problems.push(Diagnostic::new(
            location.clone(),
            format!(
                "stage `{id}` has `scope: range` and publishes the `{role}` role: roles describe one window; publish from a window stage that rolls the range stage up"
            ),
        ));
    }
    problems
}

/// A plain SQL identifier: ASCII letter or `_` first, then letters, digits or `_`.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The candidate closest to `word` by edit distance, if close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Pipeline, Diagnostics> {
        Pipeline::parse(Path::new("p.yaml"), text)
    }

    const HEAD: &str =
        "version: 1\nname: t\ndatasets:\n  - name: a\n    path: a\n    required_columns: [x]\n";

    #[test]
    fn range_stages_are_shared_only_when_window_free() {
        let ok = parse(&format!(
            "{HEAD}stages:\n  - id: days\n    scope: range\n    sql: select 1 where $range_start < $range_end\n  - id: w\n    sql: select * from days where $window_start > $range_start\n    depends_on: [days]\n"
        ))
        .unwrap();
        assert_eq!(ok.stage("days").unwrap().scope, StageScope::Range);
        assert_eq!(ok.stage("w").unwrap().scope, StageScope::Window);

        let bad = parse(&format!(
            "{HEAD}stages:\n  - id: w\n    sql: select 1\n  - id: days\n    scope: range\n    publishes: funnel\n    depends_on: [w]\n    sql: select 1 where $previous_start_day < '2026'\n  - id: g\n    kind: gate\n    scope: range\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(bad.contains("p.yaml:10:"), "{bad}");
        assert!(bad.contains("uses `$previous_...`"), "{bad}");
        assert!(bad.contains("publishes the `funnel` role"), "{bad}");
        assert!(bad.contains("depends on `w`, a window stage"), "{bad}");
        assert!(
            bad.contains("stage `g`: a gate has no output to share"),
            "{bad}"
        );
    }

    #[test]
    fn orders_stages_by_dependency() {
        let p = parse(&format!(
            "{HEAD}stages:\n  - id: c\n    sql: select 1\n    depends_on: [b]\n  - id: b\n    sql: select 1\n"
        ))
        .unwrap();
        let ids: Vec<&str> = p.stages.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(p.stages[0].retry.limit, 2);
    }

    #[test]
    fn unknown_dependency_is_located_with_hint() {
        let e = parse(&format!(
            "{HEAD}stages:\n  - id: funnel\n    sql: select 1\n  - id: b\n    sql: select 1\n    depends_on: [funel]\n"
        ))
        .unwrap_err();
        assert_eq!(e.0.len(), 1);
        let msg = e.0[0].to_string();
        assert!(msg.starts_with("p.yaml:12:"), "{msg}");
        assert!(
            msg.contains("unknown stage `funel` (did you mean `funnel`?)"),
            "{msg}"
        );
    }

    #[test]
    fn cycle_is_reported() {
        let e = parse(&format!(
            "{HEAD}stages:\n  - id: a1\n    sql: select 1\n    depends_on: [b1]\n  - id: b1\n    sql: select 1\n    depends_on: [a1]\n"
        ))
        .unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("dependency cycle: a1 -> b1 -> a1"), "{msg}");
    }

    #[test]
    fn unknown_key_is_located() {
        let e = parse(&format!("{HEAD}stages:\n  - id: a1\n    sqll: select 1\n")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("p.yaml:9:"), "{msg}");
        assert!(msg.contains("sqll"), "{msg}");
    }

    #[test]
    fn all_problems_are_reported_at_once() {
        let e = parse(&format!(
            "{HEAD}stages:\n  - id: a1\n    depends_on: [zz]\n  - id: a1\n    sql: select 1\n"
        ))
        .unwrap_err();
        assert_eq!(e.0.len(), 3, "{e}");
    }

    #[test]
    fn dimensions_are_checked() {
        let p = parse(&format!(
            "{HEAD}dimensions:\n  - name: channel\nstages:\n  - id: a1\n    sql: select 1\n"
        ))
        .unwrap();
        assert!(p.check_dimensions(&["channel".into()]).is_ok());
        let e = p.check_dimensions(&["chanel".into()]).unwrap_err();
        assert!(e.contains("unknown dimension `chanel`"), "{e}");
    }
}
