//! Data tests: the pipeline's declared `tests:` of each dataset, evaluated over the current
//! window in DataFusion. One aggregate query per dataset computes the row tests (`not_null`,
//! `accepted_values`, ...), the rows of both windows and the newest event; each `unique` test is
//! one grouped aggregate over the column, and each `relationships` test one anti-join query
//! against its parent dataset (all of its rows).
//! Results are typed [`DataTestResult`]s with a status from the declared severity or thresholds.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use refopt_plan::{DataTestResult, DataTestStatus, relative_change};
use refopt_spec::{DataTest, DataTestCheck, Dataset, Pipeline, TestSeverity, WindowRange};

use crate::error::EngineError;

/// Evaluates every declared data test; the results per dataset name, in declaration order.
/// Datasets without tests are absent.
pub async fn evaluate(
    ctx: &SessionContext,
    pipeline: &Pipeline,
    params: &ParamValues,
    range: &WindowRange,
) -> Result<BTreeMap<String, Vec<DataTestResult>>, EngineError> {
    let mut out = BTreeMap::new();
    for dataset in pipeline.datasets.iter().filter(|d| !d.tests.is_empty()) {
        let counts = query_one(ctx, params, &dataset_sql(dataset)).await?;
        let mut results = Vec::new();
        for (i, test) in dataset.tests.iter().enumerate() {
            let failing = match &test.check {
                DataTestCheck::Relationships {
                    column, to, field, ..
                } => {
                    let parent = pipeline.datasets.iter().find(|d| d.name == *to);
                    let sql = orphans_sql(dataset, column, parent, field);
                    Some(int(&query_one(ctx, params, &sql).await?, "orphans"))
                }
                DataTestCheck::Unique { column, .. } => {
                    let sql = duplicates_sql(dataset, column);
                    Some(int(&query_one(ctx, params, &sql).await?, "duplicates"))
                }
                DataTestCheck::Freshness { .. } | DataTestCheck::RowCountChange { .. } => None,
                _ => Some(int(&counts, &format!("t{i}"))),
            };
            results.push(judge(
                test,
                &Measured {
                    rows: int(&counts, "rows_current"),
                    previous_rows: int(&counts, "rows_previous"),
                    latest: micros(&counts, "latest_event"),
                    failing,
                },
                range.end,
            ));
        }
        out.insert(dataset.name.clone(), results);
    }
    Ok(out)
}

/// What the queries measured for one test.
#[derive(Debug, Clone, Copy, Default)]
struct Measured {
    rows: u64,
    previous_rows: u64,
    /// Newest event of the current window (microseconds since the epoch).
    latest: Option<i64>,
    failing: Option<u64>,
}

/// The test's result from what was measured; `window_end` is where freshness is measured to.
fn judge(test: &DataTest, m: &Measured, window_end: DateTime<Utc>) -> DataTestResult {
    let mut r = DataTestResult {
        id: test.id(),
        kind: test.kind(),
        column: test.column().map(String::from),
        rows: m.rows,
        ..Default::default()
    };
    let row_status = |severity: TestSeverity, failing: u64| match (failing, severity) {
        (0, _) => DataTestStatus::Pass,
        (_, TestSeverity::Warn) => DataTestStatus::Warn,
        (_, TestSeverity::Error) => DataTestStatus::Error,
    };
    match &test.check {
        DataTestCheck::NotNull { severity, .. }
        | DataTestCheck::Unique { severity, .. }
        | DataTestCheck::AcceptedValues { severity, .. }
        | DataTestCheck::Relationships { severity, .. }
        | DataTestCheck::Finite { severity, .. }
        | DataTestCheck::Money { severity, .. } => {
            let failing = m.failing.unwrap_or(0);
            r.failing_rows = Some(failing);
            r.status = row_status(*severity, failing);
            r.threshold = (failing > 0).then_some(0.0);
            let what = match &test.check {
                DataTestCheck::NotNull { column, .. } => format!("have a null `{column}`"),
                DataTestCheck::Unique { column, .. } => {
                    format!("repeat a `{column}` value of an earlier row")
                }
                DataTestCheck::AcceptedValues { column, values, .. } => {
                    format!("have a `{column}` outside [{}]", values.join(", "))
                }
                DataTestCheck::Finite { column, .. } => {
                    format!("have a NaN or infinite `{column}` (read as null by the stages)")
                }
                DataTestCheck::Money { column, .. } => format!(
                    "have a `{column}` that is not a whole number of cents (read to the nearest cent, or as null beyond 10^16)"
                ),
                DataTestCheck::Relationships {
                    column, to, field, ..
                } => format!("have a `{column}` not found in `{to}.{field}` (orphans)"),
                _ => unreachable!("row tests only"),
            };
            r.message = format!("{failing} of {} rows of the window {what}", m.rows);
        }
        DataTestCheck::Freshness {
            warn_after_hours,
            error_after_hours,
        } => {
            let age = m
                .latest
                .and_then(DateTime::from_timestamp_micros)
                .map(|t| (window_end - t).num_seconds() as f64 / 3600.0);
            r.observed = age.map(|a| (a * 100.0).round() / 100.0);
            let over = |limit: Option<f64>| limit.filter(|l| age.is_none_or(|a| a > *l));
            (r.status, r.threshold) = match (over(*error_after_hours), over(*warn_after_hours)) {
                (Some(l), _) => (DataTestStatus::Error, Some(l)),
                (None, Some(l)) => (DataTestStatus::Warn, Some(l)),
                (None, None) => (DataTestStatus::Pass, None),
            };
            r.message = match age {
                Some(a) => format!("newest event is {a:.1} h before the window's end"),
                None => "no events in the window".to_string(),
            };
        }
        DataTestCheck::RowCountChange {
            warn_drop,
            error_drop,
        } => {
            r.previous_rows = Some(m.previous_rows);
            let change = relative_change(m.rows as f64, m.previous_rows as f64);
            r.observed = change;
            let dropped = |limit: Option<f64>| limit.filter(|l| change.is_some_and(|c| -c >= *l));
            (r.status, r.threshold) = match (dropped(*error_drop), dropped(*warn_drop)) {
                (Some(l), _) => (DataTestStatus::Error, Some(l)),
                (None, Some(l)) => (DataTestStatus::Warn, Some(l)),
                (None, None) => (DataTestStatus::Pass, None),
            };
            r.message = match change {
                Some(c) => format!(
                    "{} rows vs {} in the previous window ({:+.1}%)",
                    m.rows,
                    m.previous_rows,
                    c * 100.0
                ),
                None => format!(
                    "{} rows; the previous window has none to compare with",
                    m.rows
                ),
            };
        }
    }
    r
}

/// `"name"` with embedded quotes doubled: a SQL identifier for any column name.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// `'text'` with embedded quotes doubled.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The dataset's rows of the current and previous window (column `cur_` tells which), or
/// every row (all current) without a time column. Day-partitioned datasets read only the
/// windows' `dt` partitions.
pub(crate) fn window_rows(dataset: &Dataset) -> String {
    // The rows as stored: a NaN the stages read as null still counts here.
    let table = ident(&crate::execution::datasets::raw_table_name(&dataset.name));
    let partitions = |from: &str| {
        if dataset.partitioned_by_day {
            format!(" AND dt >= ${from} AND dt < $window_end_day")
        } else {
            String::new()
        }
    };
    match &dataset.time_column {
        Some(t) => {
            // Timestamps keep their instant whatever their zone; dates start at midnight UTC.
            let column = match dataset.column_types.get(t) {
                Some(refopt_spec::ColumnType::Date) => format!("CAST({} AS TIMESTAMP)", ident(t)),
                _ => ident(t),
            };
            let at = format!("arrow_cast({column}, 'Timestamp(Microsecond, Some(\"UTC\"))')");
            format!(
                "SELECT *, {at} AS event_at_, {at} >= $window_start AS cur_ FROM {table} \
                 WHERE {at} >= $previous_start AND {at} < $window_end{}",
                partitions("previous_start_day")
            )
        }
        None => format!(
            "SELECT *, CAST(NULL AS TIMESTAMP) AS event_at_, true AS cur_ FROM {table} WHERE true{}",
            partitions("window_start_day")
        ),
    }
}

/// One row: `rows_current`, `rows_previous`, `latest_event` and `t<i>` (failing rows of the
/// i-th test, for row tests other than relationships).
fn dataset_sql(dataset: &Dataset) -> String {
    let mut columns = vec![
        "SUM(CASE WHEN cur_ THEN 1 ELSE 0 END) AS rows_current".to_string(),
        "SUM(CASE WHEN cur_ THEN 0 ELSE 1 END) AS rows_previous".to_string(),
        "MAX(CASE WHEN cur_ THEN event_at_ END) AS latest_event".to_string(),
    ];
    for (i, test) in dataset.tests.iter().enumerate() {
        let expr = match &test.check {
            DataTestCheck::NotNull { column, .. } => {
                format!(
                    "SUM(CASE WHEN cur_ AND {} IS NULL THEN 1 ELSE 0 END)",
                    ident(column)
                )
            }
            DataTestCheck::AcceptedValues { column, values, .. } => {
                let c = ident(column);
                let list: Vec<String> = values.iter().map(|v| literal(v)).collect();
                format!(
                    "SUM(CASE WHEN cur_ AND {c} IS NOT NULL AND CAST({c} AS VARCHAR) NOT IN ({}) THEN 1 ELSE 0 END)",
                    list.join(", ")
                )
            }
            DataTestCheck::Finite { column, .. } => {
                let c = ident(column);
                format!(
                    "SUM(CASE WHEN cur_ AND {c} IS NOT NULL AND {} THEN 1 ELSE 0 END)",
                    crate::execution::datasets::non_finite_sql(&c)
                )
            }
            DataTestCheck::Money { column, .. } => {
                let c = ident(column);
                format!(
                    "SUM(CASE WHEN cur_ AND {c} IS NOT NULL AND NOT {} AND {} THEN 1 ELSE 0 END)",
                    crate::execution::datasets::non_finite_sql(&format!("CAST({c} AS DOUBLE)")),
                    crate::execution::datasets::not_cents_sql(&c)
                )
            }
            _ => continue,
        };
        columns.push(format!("CAST(COALESCE({expr}, 0) AS BIGINT) AS t{i}"));
    }
    format!(
        "SELECT {} FROM ({}) w",
        columns.join(",\n       "),
        window_rows(dataset)
    )
}

/// One row, `duplicates`: current-window rows whose `column` is set minus its distinct values,
/// as the rows beyond the first of each value. A grouped aggregate rather than
/// `COUNT(DISTINCT)`: it runs in parallel and spills under a memory limit, where a distinct
/// count holds every value of the window in one hash set.
fn duplicates_sql(dataset: &Dataset, column: &str) -> String {
    let c = ident(column);
    format!(
        "SELECT CAST(COALESCE(SUM(n - 1), 0) AS BIGINT) AS duplicates FROM (\
         SELECT COUNT(*) AS n FROM ({}) w WHERE w.cur_ AND w.{c} IS NOT NULL GROUP BY w.{c}) g",
        window_rows(dataset)
    )
}

/// One row, `orphans`: current-window rows whose `column` is set but not among the parent's
/// `field` values (every row of the parent).
fn orphans_sql(dataset: &Dataset, column: &str, parent: Option<&Dataset>, field: &str) -> String {
    let parent = parent.map_or_else(|| ident("missing"), |p| ident(&p.name));
    let field = ident(field);
    format!(
        "SELECT COUNT(*) AS orphans FROM ({}) c \
         LEFT JOIN (SELECT DISTINCT {field} AS k_ FROM {parent} WHERE {field} IS NOT NULL) p \
         ON c.{col} = p.k_ \
         WHERE c.cur_ AND c.{col} IS NOT NULL AND p.k_ IS NULL",
        window_rows(dataset),
        col = ident(column),
    )
}

pub(crate) async fn query_one(
    ctx: &SessionContext,
    params: &ParamValues,
    sql: &str,
) -> Result<Vec<RecordBatch>, EngineError> {
    let df = ctx.sql(sql).await?.with_param_values(params.clone())?;
    Ok(df.collect().await?)
}

/// The first row's value of `name` as scalar, if any.
fn scalar(batches: &[RecordBatch], name: &str) -> Option<ScalarValue> {
    let b = batches.iter().find(|b| b.num_rows() > 0)?;
    let column = b.column_by_name(name)?;
    ScalarValue::try_from_array(column, 0).ok()
}

fn int(batches: &[RecordBatch], name: &str) -> u64 {
    match scalar(batches, name) {
        Some(ScalarValue::Int64(Some(v))) => v.max(0) as u64,
        Some(ScalarValue::UInt64(Some(v))) => v,
        _ => 0,
    }
}

fn micros(batches: &[RecordBatch], name: &str) -> Option<i64> {
    match scalar(batches, name)? {
        ScalarValue::TimestampMicrosecond(v, _) => v,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use refopt_plan::DataTestKind;
    use refopt_spec::Location;

    fn test(check: DataTestCheck) -> DataTest {
        DataTest {
            check,
            location: Location::file_start(std::path::Path::new("p.yaml")),
        }
    }

    fn end() -> DateTime<Utc> {
        "2026-06-01T00:00:00Z".parse().unwrap()
    }

    #[test]
    fn row_tests_act_by_severity() {
        let warn = test(DataTestCheck::NotNull {
            column: "x".into(),
            severity: TestSeverity::Warn,
        });
        let m = Measured {
            rows: 10,
            failing: Some(3),
            ..Default::default()
        };
        let r = judge(&warn, &m, end());
        assert_eq!((r.status, r.failing_rows), (DataTestStatus::Warn, Some(3)));
        assert_eq!(r.message, "3 of 10 rows of the window have a null `x`");
        let error = test(DataTestCheck::Unique {
            column: "x".into(),
            severity: TestSeverity::Error,
        });
        assert_eq!(judge(&error, &m, end()).status, DataTestStatus::Error);
        let clean = Measured {
            failing: Some(0),
            ..m
        };
        assert_eq!(judge(&error, &clean, end()).status, DataTestStatus::Pass);
    }

    #[test]
    fn freshness_compares_age_with_both_limits() {
        let t = test(DataTestCheck::Freshness {
            warn_after_hours: Some(24.0),
            error_after_hours: Some(72.0),
        });
        let at = |hours: i64| Measured {
            latest: Some((end() - chrono::Duration::hours(hours)).timestamp_micros()),
            ..Default::default()
        };
        let r = judge(&t, &at(30), end());
        assert_eq!(
            (r.status, r.observed, r.threshold),
            (DataTestStatus::Warn, Some(30.0), Some(24.0))
        );
        assert_eq!(judge(&t, &at(80), end()).status, DataTestStatus::Error);
        assert_eq!(judge(&t, &at(24), end()).status, DataTestStatus::Pass);
        let none = judge(&t, &Measured::default(), end());
        assert_eq!((none.status, none.observed), (DataTestStatus::Error, None));
        assert_eq!(none.kind, DataTestKind::Freshness);
    }

    #[test]
    fn row_count_change_judges_the_drop() {
        let t = test(DataTestCheck::RowCountChange {
            warn_drop: Some(0.2),
            error_drop: Some(0.5),
        });
        let m = |rows, previous_rows| Measured {
            rows,
            previous_rows,
            ..Default::default()
        };
        let r = judge(&t, &m(40, 100), end());
        assert_eq!(
            (r.status, r.observed, r.threshold),
            (DataTestStatus::Error, Some(-0.6), Some(0.5))
        );
        assert_eq!(r.previous_rows, Some(100));
        assert_eq!(judge(&t, &m(75, 100), end()).status, DataTestStatus::Warn);
        assert_eq!(judge(&t, &m(90, 100), end()).status, DataTestStatus::Pass);
        assert_eq!(judge(&t, &m(90, 0), end()).status, DataTestStatus::Pass);
    }

    #[test]
    fn identifiers_and_literals_are_quoted() {
        assert_eq!(ident("a\"b"), "\"a\"\"b\"");
        assert_eq!(literal("it's"), "'it''s'");
    }
}
