//! Wall-clock time as the service records it: epoch milliseconds in the queue, RFC 3339 UTC in logs.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// UTC time for log lines, `2026-01-02T03:04:05.678Z`.
pub fn timestamp() -> String {
    format_ms(now_ms())
}

/// `ms` since the epoch as `2026-01-02T03:04:05.678Z`.
fn format_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn log_timestamps_are_rfc3339_utc_millis() {
        assert_eq!(
            super::format_ms(1_767_323_045_678),
            "2026-01-02T03:04:05.678Z"
        );
        assert_eq!(super::format_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            super::format_ms(951_782_400_007),
            "2000-02-29T00:00:00.007Z"
        );
        let t = super::timestamp();
        assert_eq!(t.len(), 24, "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z'));
    }
}
