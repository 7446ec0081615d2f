//! Timestamps are stored as integer microseconds since the Unix epoch (UTC).

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
