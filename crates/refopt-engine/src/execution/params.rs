//! Run parameters bound into stage SQL as named placeholders (`$window_start`, ...). Values are
//! bound, never pasted into SQL text.

use chrono::{DateTime, Utc};
use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use refopt_spec::WindowRange;

/// Names and meanings of the placeholders every stage may use (documented in
/// `docs/pipeline-authoring.md`).
pub const PLACEHOLDERS: [(&str, &str); 11] = [
    (
        "window_start",
        "start of the current window (timestamp, UTC, inclusive)",
    ),
    (
        "window_end",
        "end of the current window = as_of (timestamp, UTC, exclusive)",
    ),
    (
        "previous_start",
        "start of the previous window (timestamp, UTC, inclusive)",
    ),
    (
        "window_start_day",
        "`YYYY-MM-DD` of window_start, for `dt` pruning",
    ),
    (
        "window_end_day",
        "`YYYY-MM-DD` of window_end, for `dt` pruning (exclusive)",
    ),
    (
        "previous_start_day",
        "`YYYY-MM-DD` of previous_start, for `dt` pruning",
    ),
    ("window_days", "window length in days (integer)"),
    (
        "range_start",
        "start of the run's date range (timestamp, UTC, inclusive): previous_start in a run, the earliest window's previous_start in a backfill",
    ),
    (
        "range_end",
        "end of the run's date range (timestamp, UTC, exclusive): window_end in a run, the latest as_of in a backfill",
    ),
    ("range_start_day", "`YYYY-MM-DD` of range_start"),
    ("range_end_day", "`YYYY-MM-DD` of range_end (exclusive)"),
];

/// Placeholder values for a window (its date range is its own: previous_start..window_end).
pub fn bind(range: &WindowRange, window_days: u32) -> ParamValues {
    let mut values = vec![
        ("window_start", ts(range.start)),
        ("window_end", ts(range.end)),
        ("previous_start", ts(range.previous_start)),
        ("window_start_day", day(range.start)),
        ("window_end_day", day(range.end)),
        ("previous_start_day", day(range.previous_start)),
        (
            "window_days",
            ScalarValue::Int64(Some(i64::from(window_days))),
        ),
    ];
    values.extend(range_values(range.previous_start, range.end));
    ParamValues::from(values)
}

/// Placeholder values of `scope: range` stages computed once over `start..end` (the span of a
/// backfill's windows).
pub fn bind_range(start: DateTime<Utc>, end: DateTime<Utc>) -> ParamValues {
    ParamValues::from(range_values(start, end).to_vec())
}

fn range_values(start: DateTime<Utc>, end: DateTime<Utc>) -> [(&'static str, ScalarValue); 4] {
    [
        ("range_start", ts(start)),
        ("range_end", ts(end)),
        ("range_start_day", day(start)),
        ("range_end_day", day(end)),
    ]
}

fn ts(t: DateTime<Utc>) -> ScalarValue {
    ScalarValue::TimestampMicrosecond(Some(t.timestamp_micros()), Some("UTC".into()))
}

fn day(t: DateTime<Utc>) -> ScalarValue {
    ScalarValue::Utf8(Some(t.format("%Y-%m-%d").to_string()))
}
