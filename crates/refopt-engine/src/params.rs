//! Run parameters bound into stage SQL as named placeholders (`$window_start`, ...). Values are
//! bound, never pasted into SQL text.

use datafusion::common::ParamValues;
use datafusion::scalar::ScalarValue;
use refopt_spec::WindowRange;

/// Names and meanings of the placeholders every stage may use (documented in
/// `docs/pipeline-authoring.md`).
pub const PLACEHOLDERS: [(&str, &str); 7] = [
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
];

/// Placeholder values for a window.
pub fn bind(range: &WindowRange, window_days: u32) -> ParamValues {
    let ts = |t: chrono::DateTime<chrono::Utc>| {
        ScalarValue::TimestampMicrosecond(Some(t.timestamp_micros()), Some("UTC".into()))
    };
    let day = |t: chrono::DateTime<chrono::Utc>| {
        ScalarValue::Utf8(Some(t.format("%Y-%m-%d").to_string()))
    };
    ParamValues::from(vec![
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
    ])
}
