//! Event-time helpers.

use crate::message::EventTime;

/// Formats epoch milliseconds as `YYYY-MM-DD HH:MM:SS.mmm` (UTC), the way
/// Flink prints a `TIMESTAMP(3)`.
pub fn format_millis(ms: EventTime) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    let (y, m, d) = civil_from_days(days);
    let h = rem / 3_600_000;
    let mi = (rem / 60_000) % 60;
    let s = (rem / 1000) % 60;
    let milli = rem % 1000;
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{s:02}.{milli:03}")
}

/// Converts days since 1970-01-01 to (year, month, day) in the proleptic
/// Gregorian calendar (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_flink_timestamp_3() {
        assert_eq!(format_millis(0), "1970-01-01 00:00:00.000");
        assert_eq!(format_millis(1_700_000_000_123), "2023-11-14 22:13:20.123");
        assert_eq!(format_millis(-1), "1969-12-31 23:59:59.999");
    }
}
