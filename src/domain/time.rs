//! Timestamps as the product accepts them: RFC 3339 with a UTC offset, kept to the microsecond
//! (what both databases store), within the years 1–9999 once converted to UTC.

use chrono::{DateTime, Datelike, SubsecRound, Utc};

pub const TIMESTAMP_RULE: &str =
    "must be an RFC 3339 timestamp with a UTC offset, e.g. 2026-12-01T18:00:00Z";
pub const YEAR_RULE: &str = "must lie between the years 1 and 9999 (UTC)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeError {
    /// Not RFC 3339, or naive (no offset).
    Format,
    /// Outside the years 1–9999 in UTC.
    Year,
}

impl std::fmt::Display for TimeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            TimeError::Format => TIMESTAMP_RULE,
            TimeError::Year => YEAR_RULE,
        })
    }
}

/// Parses `raw`, truncating anything finer than a microsecond before any other rule looks at it.
pub fn parse_timestamp(raw: &str) -> Result<DateTime<Utc>, TimeError> {
    let parsed = DateTime::parse_from_rfc3339(raw.trim()).map_err(|_| TimeError::Format)?;
    let utc = parsed.with_timezone(&Utc).trunc_subsecs(6);
    if (1..=9999).contains(&utc.year()) {
        Ok(utc)
    } else {
        Err(TimeError::Year)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn naive_times_are_refused() {
        assert_eq!(
            parse_timestamp("2026-12-01T18:00:00"),
            Err(TimeError::Format)
        );
        let with_offset = parse_timestamp("2026-12-01T18:00:00+01:00").unwrap();
        assert_eq!(with_offset.to_rfc3339(), "2026-12-01T17:00:00+00:00");
    }

    #[test]
    fn nanoseconds_are_truncated_to_microseconds() {
        let a = parse_timestamp("2026-12-01T18:00:00.1234567Z").unwrap();
        let b = parse_timestamp("2026-12-01T18:00:00.1234569Z").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.timestamp_subsec_nanos(), 123_456_000);
    }

    #[test]
    fn years_past_9999_in_utc_are_refused() {
        assert_eq!(
            parse_timestamp("9999-12-31T23:59:59-23:59"),
            Err(TimeError::Year)
        );
        assert!(parse_timestamp("9999-12-31T23:59:59Z").is_ok());
    }
}
