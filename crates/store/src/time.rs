//! Timestamps are kept to the microsecond, in UTC: SQLite stores them as integer microseconds
//! since the Unix epoch, PostgreSQL as `timestamptz` (microsecond precision too).

use chrono::{DateTime, Utc};

pub fn to_micros(at: DateTime<Utc>) -> i64 {
    at.timestamp_micros()
}

/// Out-of-range values cannot be produced by [`to_micros`]; they clamp to the epoch.
pub fn from_micros(micros: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(micros).unwrap_or_default()
}

pub fn opt_from_micros(micros: Option<i64>) -> Option<DateTime<Utc>> {
    micros.map(from_micros)
}

/// `at` cut to whole microseconds: what either backend gives back after storing it.
pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    from_micros(to_micros(at))
}
