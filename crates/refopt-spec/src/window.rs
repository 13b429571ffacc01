//! The analysis window (`--window 7d|30d|90d|Nd`) and the time ranges it implies.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Days, NaiveDate, Utc};

/// Largest window accepted, in days.
pub const MAX_WINDOW_DAYS: u32 = 366;

/// A window length in whole days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub days: u32,
}

/// Why a `--window` value was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid window `{given}`: {reason} (expected a number of days such as 7d, 30d or 90d)")]
pub struct WindowError {
    pub given: String,
    pub reason: String,
}

impl FromStr for Window {
    type Err = WindowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| WindowError {
            given: s.to_string(),
            reason: reason.to_string(),
        };
        let digits = s
            .strip_suffix('d')
            .ok_or_else(|| err("missing the `d` unit"))?;
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("the length must be a whole number"));
        }
        let days: u32 = digits.parse().map_err(|_| err("number too large"))?;
        if days == 0 || days > MAX_WINDOW_DAYS {
            return Err(err(&format!("must be between 1d and {MAX_WINDOW_DAYS}d")));
        }
        Ok(Window { days })
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}d", self.days)
    }
}

/// The current and previous window ending at `as_of` (exclusive): `[as_of - w, as_of)` and
/// `[as_of - 2w, as_of - w)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowRange {
    pub previous_start: DateTime<Utc>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl WindowRange {
    /// Ranges for `window` ending at midnight UTC of `as_of`.
    pub fn new(window: Window, as_of: NaiveDate) -> Self {
        let end_date = as_of;
        let start_date = end_date - Days::new(u64::from(window.days));
        let previous_date = start_date - Days::new(u64::from(window.days));
        let midnight = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
        Self {
            previous_start: midnight(previous_date),
            start: midnight(start_date),
            end: midnight(end_date),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_days() {
        assert_eq!("30d".parse::<Window>().unwrap().days, 30);
        assert_eq!("7d".parse::<Window>().unwrap().days, 7);
    }

    #[test]
    fn rejects_bad_windows() {
        for bad in ["30", "d", "0d", "-1d", "1.5d", "400d", "30w", ""] {
            let e = bad.parse::<Window>().unwrap_err();
            assert_eq!(e.given, bad);
            assert!(e.to_string().contains("invalid window"), "{e}");
        }
    }

    #[test]
    fn ranges_are_adjacent() {
        let r = WindowRange::new(
            Window { days: 30 },
            NaiveDate::from_ymd_opt(2026, 3, 31).unwrap(),
        );
        assert_eq!(r.end.to_rfc3339(), "2026-03-31T00:00:00+00:00");
        assert_eq!(r.start.to_rfc3339(), "2026-03-01T00:00:00+00:00");
        assert_eq!(r.previous_start.to_rfc3339(), "2026-01-30T00:00:00+00:00");
    }
}
