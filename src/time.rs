//! Time is stored as unix microseconds (BIGINT) on both back-ends and shown as RFC 3339.

use chrono::{DateTime, SecondsFormat, Utc};

pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

pub fn to_rfc3339(micros: i64) -> String {
    DateTime::<Utc>::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
        .unwrap_or_default()
}

pub fn opt_rfc3339(micros: Option<i64>) -> String {
    micros.map(to_rfc3339).unwrap_or_default()
}

/// Parses RFC 3339 into unix microseconds; the error names the field.
pub fn parse_rfc3339(field: &str, s: &str) -> crate::AppResult<i64> {
    DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc).timestamp_micros())
        .map_err(|e| crate::AppError::invalid(field, format!("not an RFC 3339 date-time ({e})")))
}
