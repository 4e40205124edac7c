//! The one place that reads the system clock. Everything else takes `now` as
//! a value (unix seconds), so expiry, rate limits and backoff are testable.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch.
pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}
