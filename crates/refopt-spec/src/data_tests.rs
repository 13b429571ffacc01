//! Declarative data tests of a dataset (`tests:` in the pipeline YAML), in the spirit of dbt's
//! schema tests: `not_null`, `unique`, `accepted_values`, `relationships` (orphans),
//! `freshness` (`warn_after`/`error_after`) and `row_count_change` (`warn_drop`/`error_drop`
//! vs the previous window), `finite` (no NaN or infinite values; every float64 column of the
//! contract gets one with `severity: warn` unless declared). A failing test with
//! `severity: warn` is a finding; with `severity: error` (the default) it is an alert and blocks
//! `refopt plan approve`.
//!
//! ```yaml
//! time_column: created_at
//! tests:
//!   - { test: not_null, column: referral_id }
//!   - { test: accepted_values, column: channel, values: [email, social], severity: warn }
//!   - { test: relationships, column: referral_id, to: referrals, field: referral_id }
//!   - { test: freshness, warn_after: 26h, error_after: 2d }
//!   - { test: row_count_change, warn_drop: 0.3, error_drop: 0.6 }
//! ```

use std::path::Path;

use refopt_plan::DataTestKind;
use serde::Deserialize;
use serde_saphyr::Spanned;

use crate::diagnostic::{Code, Diagnostic, Location};
use crate::pipeline::{ColumnType, closest};

/// The declared severity of a row test (`not_null`, `unique`, `accepted_values`,
/// `relationships`): what a failure does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TestSeverity {
    /// A finding and a report entry.
    Warn,
    /// An alert; `refopt plan approve` is refused.
    #[default]
    Error,
}

/// One entry of a dataset's `tests:` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDataTest {
    test: Spanned<String>,
    #[serde(default)]
    column: Option<Spanned<String>>,
    #[serde(default)]
    severity: Option<TestSeverity>,
    #[serde(default)]
    values: Option<Vec<String>>,
    #[serde(default)]
    to: Option<Spanned<String>>,
    #[serde(default)]
    field: Option<Spanned<String>>,
    #[serde(default)]
    warn_after: Option<Spanned<String>>,
    #[serde(default)]
    error_after: Option<Spanned<String>>,
    #[serde(default)]
    warn_drop: Option<Spanned<f64>>,
    #[serde(default)]
    error_drop: Option<Spanned<f64>>,
}

/// What a validated data test checks.
#[derive(Debug, Clone, PartialEq)]
pub enum DataTestCheck {
    NotNull {
        column: String,
        severity: TestSeverity,
    },
    Unique {
        column: String,
        severity: TestSeverity,
    },
    AcceptedValues {
        column: String,
        values: Vec<String>,
        severity: TestSeverity,
    },
    /// Every non-null `column` value must be a value of `to`.`field` (any day of `to`).
    Relationships {
        column: String,
        to: String,
        field: String,
        severity: TestSeverity,
    },
    /// Hours from the newest event (by the dataset's `time_column`) to the window's end.
    Freshness {
        warn_after_hours: Option<f64>,
        error_after_hours: Option<f64>,
    },
    /// Relative drop of the row count vs the previous window (0.3 = 30% fewer rows).
    RowCountChange {
        warn_drop: Option<f64>,
        error_drop: Option<f64>,
    },
    /// No NaN or infinite `column` values (a float column; stages read such values as null).
    Finite {
        column: String,
        severity: TestSeverity,
    },
    /// Every `column` value is a whole number of cents within `DECIMAL(18, 2)` (a money
    /// column; stages read it to the nearest cent).
    Money {
        column: String,
        severity: TestSeverity,
    },
}

/// A validated data test with where it was declared.
#[derive(Debug, Clone, PartialEq)]
pub struct DataTest {
    pub check: DataTestCheck,
    pub location: Location,
}

impl DataTest {
    /// The test's kind.
    pub fn kind(&self) -> DataTestKind {
        match &self.check {
            DataTestCheck::NotNull { .. } => DataTestKind::NotNull,
            DataTestCheck::Unique { .. } => DataTestKind::Unique,
            DataTestCheck::AcceptedValues { .. } => DataTestKind::AcceptedValues,
            DataTestCheck::Relationships { .. } => DataTestKind::Relationships,
            DataTestCheck::Freshness { .. } => DataTestKind::Freshness,
            DataTestCheck::RowCountChange { .. } => DataTestKind::RowCountChange,
            DataTestCheck::Finite { .. } => DataTestKind::Finite,
            DataTestCheck::Money { .. } => DataTestKind::Money,
        }
    }

    /// The column tested, for row tests.
    pub fn column(&self) -> Option<&str> {
        match &self.check {
            DataTestCheck::NotNull { column, .. }
            | DataTestCheck::Unique { column, .. }
            | DataTestCheck::AcceptedValues { column, .. }
            | DataTestCheck::Relationships { column, .. }
            | DataTestCheck::Finite { column, .. }
            | DataTestCheck::Money { column, .. } => Some(column),
            DataTestCheck::Freshness { .. } | DataTestCheck::RowCountChange { .. } => None,
        }
    }

    /// The id of the test within its dataset (`not_null:referral_id`,
    /// `relationships:referral_id->referrals.referral_id`, `freshness`).
    pub fn id(&self) -> String {
        match &self.check {
            DataTestCheck::Relationships {
                column, to, field, ..
            } => format!("relationships:{column}->{to}.{field}"),
            _ => match self.column() {
                Some(c) => format!("{}:{c}", self.kind()),
                None => self.kind().to_string(),
            },
        }
    }
}

/// Parses `36h`, `2d` or `90m` into hours.
pub fn parse_hours(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, per_unit) = if let Some(n) = text.strip_suffix('d') {
        (n, 24.0)
    } else if let Some(n) = text.strip_suffix('h') {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 1.0 / 60.0)
    } else {
        return None;
    };
    let n: f64 = number.trim().parse().ok()?;
    (n.is_finite() && n > 0.0).then_some(n * per_unit)
}

/// What a dataset's tests may refer to.
pub(crate) struct TestScope<'a> {
    pub file: &'a Path,
    pub dataset: &'a str,
    pub columns: &'a [String],
    /// The dataset's `time_column`, when declared.
    pub time_column: Option<&'a str>,
    pub column_types: &'a std::collections::BTreeMap<String, ColumnType>,
}

/// Validates a dataset's raw tests; every problem is a located diagnostic. Relationship targets
/// are checked by [`check_relationship_targets`] once every dataset is known.
pub(crate) fn resolve_tests(
    scope: &TestScope<'_>,
    raw: Vec<Spanned<RawDataTest>>,
    errors: &mut Vec<Diagnostic>,
) -> Vec<DataTest> {
    let at = |loc: &serde_saphyr::Location| Location::from_yaml(scope.file, loc);
    let dataset = scope.dataset;
    let mut tests = Vec::new();
    for entry in raw {
        let location = at(&entry.referenced);
        let t = entry.value;
        let Some(kind) = DataTestKind::parse(&t.test.value) else {
            let names = DataTestKind::ALL.map(|k| k.as_str());
            let hint = closest(&t.test.value, names.iter().copied())
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            errors.push(
                Diagnostic::of(
                    Code::UnknownReference,
                    at(&t.test.referenced),
                    format!("dataset `{dataset}`: unknown test `{}`{hint}", t.test.value),
                )
                .help(format!("tests: {}", names.join(", "))),
            );
            continue;
        };
        let allowed: &[&str] = match kind {
            DataTestKind::NotNull
            | DataTestKind::Unique
            | DataTestKind::Finite
            | DataTestKind::Money => &["column", "severity"],
            DataTestKind::AcceptedValues => &["column", "severity", "values"],
            DataTestKind::Relationships => &["column", "severity", "to", "field"],
            DataTestKind::Freshness => &["warn_after", "error_after"],
            DataTestKind::RowCountChange => &["warn_drop", "error_drop"],
        };
        let present = [
            ("column", t.column.is_some()),
            ("severity", t.severity.is_some()),
            ("values", t.values.is_some()),
            ("to", t.to.is_some()),
            ("field", t.field.is_some()),
            ("warn_after", t.warn_after.is_some()),
            ("error_after", t.error_after.is_some()),
            ("warn_drop", t.warn_drop.is_some()),
            ("error_drop", t.error_drop.is_some()),
        ];
        for (key, _) in present.iter().filter(|(k, p)| *p && !allowed.contains(k)) {
            errors.push(
                Diagnostic::new(
                    location.clone(),
                    format!("dataset `{dataset}`: `{key}` does not apply to a `{kind}` test"),
                )
                .help(format!("a `{kind}` test takes: {}", allowed.join(", "))),
            );
        }
        let row_test = allowed.contains(&"column");
        let severity = t.severity.unwrap_or_default();
        let column = if row_test {
            match &t.column {
                Some(c) if scope.columns.contains(&c.value) => Some(c.value.clone()),
                Some(c) => {
                    errors.push(unknown_column(scope, &c.value, at(&c.referenced)));
                    None
                }
                None => {
                    errors.push(Diagnostic::new(
                        location.clone(),
                        format!("dataset `{dataset}`: a `{kind}` test needs `column`"),
                    ));
                    None
                }
            }
        } else {
            if scope.time_column.is_none() {
                errors.push(
                    Diagnostic::new(
                        location.clone(),
                        format!(
                            "dataset `{dataset}`: a `{kind}` test needs the dataset's `time_column`"
                        ),
                    )
                    .help("declare `time_column:` (a timestamp or date column) on the dataset"),
                );
            }
            None
        };
        let check = match kind {
            DataTestKind::NotNull => {
                column.map(|column| DataTestCheck::NotNull { column, severity })
            }
            DataTestKind::Unique => column.map(|column| DataTestCheck::Unique { column, severity }),
            DataTestKind::Money => {
                let money = column
                    .as_ref()
                    .is_some_and(|c| scope.column_types.get(c) == Some(&ColumnType::Money));
                if column.is_some() && !money {
                    errors.push(Diagnostic::new(
                        location.clone(),
                        format!(
                            "dataset `{dataset}`: a `money` test needs a column declared `money`"
                        ),
                    ));
                }
                column
                    .filter(|_| money)
                    .map(|column| DataTestCheck::Money { column, severity })
            }
            DataTestKind::Finite => {
                let float = column.as_ref().is_some_and(|c| {
                    matches!(
                        scope.column_types.get(c),
                        Some(ColumnType::Float64 | ColumnType::Money)
                    )
                });
                if column.is_some() && !float {
                    errors.push(Diagnostic::new(
                        location.clone(),
                        format!(
                            "dataset `{dataset}`: a `finite` test needs a column declared `float64` or `money`"
                        ),
                    ));
                }
                column
                    .filter(|_| float)
                    .map(|column| DataTestCheck::Finite { column, severity })
            }
            DataTestKind::AcceptedValues => {
                let values = t.values.unwrap_or_default();
                if values.is_empty() {
                    errors.push(Diagnostic::new(
                        location.clone(),
                        format!(
                            "dataset `{dataset}`: `accepted_values` needs a non-empty `values` list"
                        ),
                    ));
                }
                column
                    .filter(|_| !values.is_empty())
                    .map(|column| DataTestCheck::AcceptedValues {
                        column,
                        values,
                        severity,
                    })
            }
            DataTestKind::Relationships => match (t.to, t.field) {
                (Some(to), Some(field)) => column.map(|column| DataTestCheck::Relationships {
                    column,
                    to: to.value,
                    field: field.value,
                    severity,
                }),
                _ => {
                    errors.push(Diagnostic::new(
                        location.clone(),
                        format!(
                            "dataset `{dataset}`: `relationships` needs `to` (a dataset) and `field` (its column)"
                        ),
                    ));
                    None
                }
            },
            DataTestKind::Freshness => {
                let mut hours = |v: &Option<Spanned<String>>, key: &str| {
                    let v = v.as_ref()?;
                    let parsed = parse_hours(&v.value);
                    if parsed.is_none() {
                        errors.push(
                            Diagnostic::new(
                                at(&v.referenced),
                                format!("dataset `{dataset}`: `{key}: {}` is not a duration", v.value),
                            )
                            .help("write a positive number of minutes, hours or days: `90m`, `26h`, `2d`"),
                        );
                    }
                    parsed
                };
                let warn = hours(&t.warn_after, "warn_after");
                let error = hours(&t.error_after, "error_after");
                let declared = t.warn_after.is_some() || t.error_after.is_some();
                let keys = ("warn_after", "error_after");
                thresholds_in_order(scope, &location, keys, declared, warn, error, errors);
                Some(DataTestCheck::Freshness {
                    warn_after_hours: warn,
                    error_after_hours: error,
                })
            }
            DataTestKind::RowCountChange => {
                let mut fraction = |v: &Option<Spanned<f64>>, key: &str| {
                    let v = v.as_ref()?;
                    if !(v.value > 0.0 && v.value <= 1.0) {
                        errors.push(Diagnostic::new(
                            at(&v.referenced),
                            format!(
                                "dataset `{dataset}`: `{key}: {}` must be a fraction in (0, 1] (0.3 = 30% fewer rows)",
                                v.value
                            ),
                        ));
                        return None;
                    }
                    Some(v.value)
                };
                let warn = fraction(&t.warn_drop, "warn_drop");
                let error = fraction(&t.error_drop, "error_drop");
                let declared = t.warn_drop.is_some() || t.error_drop.is_some();
                let keys = ("warn_drop", "error_drop");
                thresholds_in_order(scope, &location, keys, declared, warn, error, errors);
                Some(DataTestCheck::RowCountChange {
                    warn_drop: warn,
                    error_drop: error,
                })
            }
        };
        if let Some(check) = check {
            tests.push(DataTest { check, location });
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in &tests {
        if !seen.insert(t.id()) {
            errors.push(Diagnostic::of(
                Code::Duplicate,
                t.location.clone(),
                format!("dataset `{dataset}`: test `{}` is declared twice", t.id()),
            ));
        }
    }
    tests
}

/// At least one threshold, and the error one no earlier than the warning one.
fn thresholds_in_order(
    scope: &TestScope<'_>,
    location: &Location,
    (warn_key, error_key): (&str, &str),
    declared: bool,
    warn: Option<f64>,
    error: Option<f64>,
    errors: &mut Vec<Diagnostic>,
) {
    let dataset = scope.dataset;
    match (warn, error) {
        (None, None) if !declared => errors.push(Diagnostic::new(
            location.clone(),
            format!("dataset `{dataset}`: give `{warn_key}`, `{error_key}` or both"),
        )),
        (Some(w), Some(e)) if e < w => errors.push(
            Diagnostic::new(
                location.clone(),
                format!("dataset `{dataset}`: `{error_key}` is less than `{warn_key}`"),
            )
            .help(format!(
                "the error level must be at or beyond the warning level: `{error_key}` >= `{warn_key}`"
            )),
        ),
        _ => {}
    }
}

fn unknown_column(scope: &TestScope<'_>, column: &str, location: Location) -> Diagnostic {
    let hint = closest(column, scope.columns.iter().map(String::as_str))
        .map(|c| format!(" (did you mean `{c}`?)"))
        .unwrap_or_default();
    Diagnostic::of(
        Code::UnknownReference,
        location,
        format!(
            "dataset `{}`: test names column `{column}`, which is not among its required_columns{hint}",
            scope.dataset
        ),
    )
    .help("tests may name the dataset's required_columns only")
}

/// Adds a `finite` test with `severity: warn` for every float64 or money column without a
/// declared one, and a `money` test for every money column: a NaN, infinite or sub-cent amount
/// is always counted and named, never summed silently.
pub(crate) fn add_implicit_finite_tests(
    scope: &TestScope<'_>,
    dataset_location: &Location,
    tests: &mut Vec<DataTest>,
) {
    for column in scope.columns {
        let declared_type = scope.column_types.get(column);
        let declared = |kind: DataTestKind| {
            tests
                .iter()
                .any(|t| t.kind() == kind && t.column() == Some(column.as_str()))
        };
        let mut implicit = Vec::new();
        if matches!(declared_type, Some(ColumnType::Float64 | ColumnType::Money))
            && !declared(DataTestKind::Finite)
        {
            implicit.push(DataTestCheck::Finite {
                column: column.clone(),
                severity: TestSeverity::Warn,
            });
        }
        if declared_type == Some(&ColumnType::Money) && !declared(DataTestKind::Money) {
            implicit.push(DataTestCheck::Money {
                column: column.clone(),
                severity: TestSeverity::Warn,
            });
        }
        tests.extend(implicit.into_iter().map(|check| DataTest {
            check,
            location: dataset_location.clone(),
        }));
    }
}

/// The dataset's `time_column` must be one of its required columns, of a time type when typed.
pub(crate) fn check_time_column(
    scope: &TestScope<'_>,
    time_column: &Spanned<String>,
    errors: &mut Vec<Diagnostic>,
) {
    let location = Location::from_yaml(scope.file, &time_column.referenced);
    if !scope.columns.contains(&time_column.value) {
        errors.push(unknown_column(scope, &time_column.value, location));
    } else if let Some(t) = scope.column_types.get(&time_column.value)
        && !matches!(t, ColumnType::Timestamp | ColumnType::Date)
    {
        errors.push(Diagnostic::new(
            location,
            format!(
                "dataset `{}`: time_column `{}` is declared {}; it must be a timestamp or date",
                scope.dataset,
                time_column.value,
                t.name()
            ),
        ));
    }
}

/// Every `relationships` test must name a declared dataset and one of its required columns.
pub(crate) fn check_relationship_targets(
    datasets: &[crate::pipeline::Dataset],
    errors: &mut Vec<Diagnostic>,
) {
    for d in datasets {
        for t in &d.tests {
            let DataTestCheck::Relationships { to, field, .. } = &t.check else {
                continue;
            };
            match datasets.iter().find(|o| o.name == *to) {
                None => {
                    let hint = closest(to, datasets.iter().map(|o| o.name.as_str()))
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default();
                    errors.push(Diagnostic::of(
                        Code::UnknownReference,
                        t.location.clone(),
                        format!(
                            "dataset `{}`: relationships test names unknown dataset `{to}`{hint}",
                            d.name
                        ),
                    ));
                }
                Some(target) if !target.required_columns.contains(field) => {
                    let hint = closest(field, target.required_columns.iter().map(String::as_str))
                        .map(|c| format!(" (did you mean `{c}`?)"))
                        .unwrap_or_default();
                    errors.push(Diagnostic::of(
                        Code::UnknownReference,
                        t.location.clone(),
                        format!(
                            "dataset `{}`: relationships test names `{to}.{field}`, which is not among `{to}`'s required_columns{hint}",
                            d.name
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::Pipeline;

    const STAGES: &str = "stages:\n  - id: s\n    sql: select 1\n";

    fn parse(datasets: &str) -> Result<Pipeline, crate::Diagnostics> {
        Pipeline::parse(
            Path::new("p.yaml"),
            &format!("version: 1\nname: t\ndatasets:\n{datasets}{STAGES}"),
        )
    }

    #[test]
    fn valid_tests_are_typed_in_order() {
        let p = parse(
            "  - name: r\n    path: r\n    required_columns: [id, channel, {at: timestamp}]\n    time_column: at\n    tests:\n      - { test: not_null, column: id }\n      - { test: accepted_values, column: channel, values: [a, b], severity: warn }\n      - { test: freshness, warn_after: 26h, error_after: 2d }\n      - { test: row_count_change, error_drop: 0.5 }\n  - name: c\n    path: c\n    required_columns: [rid]\n    tests:\n      - { test: relationships, column: rid, to: r, field: id }\n",
        )
        .unwrap();
        let r = &p.datasets[0];
        assert_eq!(r.time_column.as_deref(), Some("at"));
        let ids: Vec<String> = r.tests.iter().map(DataTest::id).collect();
        assert_eq!(
            ids,
            [
                "not_null:id",
                "accepted_values:channel",
                "freshness",
                "row_count_change"
            ]
        );
        assert_eq!(
            r.tests[2].check,
            DataTestCheck::Freshness {
                warn_after_hours: Some(26.0),
                error_after_hours: Some(48.0)
            }
        );
        assert!(matches!(
            r.tests[1].check,
            DataTestCheck::AcceptedValues {
                severity: TestSeverity::Warn,
                ..
            }
        ));
        assert!(matches!(
            r.tests[0].check,
            DataTestCheck::NotNull {
                severity: TestSeverity::Error,
                ..
            }
        ));
        assert_eq!(p.datasets[1].tests[0].id(), "relationships:rid->r.id");
    }

    #[test]
    fn bad_declarations_are_located() {
        let e = parse(
            "  - name: r\n    path: r\n    required_columns: [id, {cnt: int64}]\n    tests:\n      - { test: not_nul, column: id }\n      - { test: unique, column: idd }\n      - { test: freshness, warn_after: 2d, error_after: 1d }\n      - { test: relationships, column: id, to: rr, field: id }\n      - { test: row_count_change, warn_drop: 1.5 }\n      - { test: not_null, column: id, values: [x] }\n",
        )
        .unwrap_err();
        let text = e.to_string();
        for expected in [
            "p.yaml:8:17: dataset `r`: unknown test `not_nul` (did you mean `not_null`?)",
            "p.yaml:9:33: dataset `r`: test names column `idd`, which is not among its required_columns (did you mean `id`?)",
            "p.yaml:10:9: dataset `r`: `error_after` is less than `warn_after`",
            "p.yaml:10:9: dataset `r`: a `freshness` test needs the dataset's `time_column`",
            "p.yaml:11:9: dataset `r`: relationships test names unknown dataset `rr` (did you mean `r`?)",
            "p.yaml:12:46: dataset `r`: `warn_drop: 1.5` must be a fraction in (0, 1]",
            "p.yaml:13:9: dataset `r`: `values` does not apply to a `not_null` test",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in\n{text}");
        }
        let codes: Vec<Code> = e.0.iter().map(|d| d.code).collect();
        assert_eq!(codes[0], Code::UnknownReference);

        let e = parse("  - name: r\n    path: r\n    required_columns: [id, {cnt: int64}]\n    time_column: cnt\n").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("p.yaml:7:18: dataset `r`: time_column `cnt` is declared int64"),
            "{text}"
        );

        let e = parse("  - name: r\n    path: r\n    required_columns: [id]\n    tests:\n      - { test: not_null, column: id, severity: fatal }\n").unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("p.yaml:8:49: unknown variant `fatal`"),
            "{text}"
        );
    }

    #[test]
    fn durations_are_hours() {
        assert_eq!(parse_hours("36h"), Some(36.0));
        assert_eq!(parse_hours("2d"), Some(48.0));
        assert_eq!(parse_hours("90m"), Some(1.5));
        assert_eq!(parse_hours("0h"), None);
        assert_eq!(parse_hours("36"), None);
        assert_eq!(parse_hours("-1d"), None);
    }
}
