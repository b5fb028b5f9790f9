//! Text forms of SQL values: parsing what JSON strings and CSV fields hold,
//! and formatting values the way Flink prints them.
//!
//! Timestamps (`TIMESTAMP(p)`, zone-less, read as UTC) accept
//! `YYYY-MM-DD HH:MM:SS[.f…]` (Flink's SQL form), `YYYY-MM-DDTHH:MM:SS[.f…]`
//! with an optional `Z` or `±HH:MM` offset (ISO-8601; converted to UTC),
//! `HH:MM` without seconds, a bare date (midnight), and epoch milliseconds
//! (an integer).

use std::fmt::Write as _;

use arrow::datatypes::TimeUnit;

/// Seconds and nanoseconds since the epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Instant {
    /// Whole seconds (floor).
    pub secs: i64,
    /// Nanoseconds within the second, `0..1e9`.
    pub nanos: u32,
}

impl Instant {
    /// The instant as a count of `unit`s since the epoch, if it fits.
    pub fn to_unit(self, unit: TimeUnit) -> Option<i64> {
        let (mul, div) = match unit {
            TimeUnit::Second => (1, 1_000_000_000),
            TimeUnit::Millisecond => (1_000, 1_000_000),
            TimeUnit::Microsecond => (1_000_000, 1_000),
            TimeUnit::Nanosecond => (1_000_000_000, 1),
        };
        self.secs
            .checked_mul(mul)?
            .checked_add(i64::from(self.nanos) / div)
    }

    /// The instant `value` counts in `unit`.
    pub fn from_unit(value: i64, unit: TimeUnit) -> Self {
        let per_sec: i64 = match unit {
            TimeUnit::Second => 1,
            TimeUnit::Millisecond => 1_000,
            TimeUnit::Microsecond => 1_000_000,
            TimeUnit::Nanosecond => 1_000_000_000,
        };
        let secs = value.div_euclid(per_sec);
        let sub = value.rem_euclid(per_sec);
        let nanos = (sub * (1_000_000_000 / per_sec)) as u32;
        Self { secs, nanos }
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = i64::from((m + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ => {
            if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 {
                29
            } else {
                28
            }
        }
    }
}

/// A small cursor over ASCII bytes.
struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn digits(&mut self, n: usize) -> Option<u32> {
        let s = self.b.get(self.i..self.i + n)?;
        let mut v = 0u32;
        for &c in s {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + u32::from(c - b'0');
        }
        self.i += n;
        Some(v)
    }
    fn eat(&mut self, c: u8) -> bool {
        if self.b.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }
    fn done(&self) -> bool {
        self.i == self.b.len()
    }
}

fn parse_date_part(c: &mut Cursor<'_>) -> Option<i64> {
    let y = i64::from(c.digits(4)?);
    if !c.eat(b'-') {
        return None;
    }
    let m = c.digits(2)?;
    if !c.eat(b'-') {
        return None;
    }
    let d = c.digits(2)?;
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) {
        return None;
    }
    Some(days_from_civil(y, m, d))
}

/// Parses a date-time (see the module docs; not epoch numbers) into an
/// instant.
pub fn parse_instant(text: &str) -> Option<Instant> {
    let mut c = Cursor {
        b: text.trim().as_bytes(),
        i: 0,
    };
    let days = parse_date_part(&mut c)?;
    let mut secs_of_day: i64 = 0;
    let mut nanos: u32 = 0;
    let mut offset_secs: i64 = 0;
    if !c.done() {
        if !(c.eat(b' ') || c.eat(b'T') || c.eat(b't')) {
            return None;
        }
        let h = c.digits(2)?;
        if !c.eat(b':') {
            return None;
        }
        let mi = c.digits(2)?;
        let mut s = 0;
        if c.eat(b':') {
            s = c.digits(2)?;
            if c.eat(b'.') || c.eat(b',') {
                let start = c.i;
                let mut n: u32 = 0;
                let mut digits = 0;
                while let Some(d) = c.peek().filter(u8::is_ascii_digit) {
                    if digits < 9 {
                        n = n * 10 + u32::from(d - b'0');
                        digits += 1;
                    }
                    c.i += 1;
                }
                if c.i == start {
                    return None;
                }
                for _ in digits..9 {
                    n *= 10;
                }
                nanos = n;
            }
        }
        if h > 23 || mi > 59 || s > 59 {
            return None;
        }
        secs_of_day = i64::from(h * 3600 + mi * 60 + s);
        match c.peek() {
            None => {}
            Some(b'Z') | Some(b'z') => {
                c.i += 1;
            }
            Some(sign @ (b'+' | b'-')) => {
                c.i += 1;
                let oh = c.digits(2)?;
                let om = if c.eat(b':') {
                    c.digits(2)?
                } else if c.done() {
                    0
                } else {
                    c.digits(2)?
                };
                if oh > 18 || om > 59 {
                    return None;
                }
                let off = i64::from(oh * 3600 + om * 60);
                offset_secs = if sign == b'+' { off } else { -off };
            }
            Some(_) => return None,
        }
        if !c.done() {
            return None;
        }
    }
    Some(Instant {
        secs: days * 86_400 + secs_of_day - offset_secs,
        nanos,
    })
}

/// Parses a date-time into nanoseconds since the epoch (wide enough for any year).
pub fn parse_timestamp_nanos(text: &str) -> Option<i128> {
    let i = parse_instant(text)?;
    Some(i128::from(i.secs) * 1_000_000_000 + i128::from(i.nanos))
}

/// An integer written in decimal (optional sign, spaces around ignored).
pub fn parse_integer(text: &str) -> Option<i64> {
    text.trim().parse::<i64>().ok()
}

/// A timestamp field in `unit`: an epoch-millisecond integer or a date-time.
pub fn parse_timestamp(text: &str, unit: TimeUnit) -> Option<i64> {
    if let Some(ms) = sql_millis(text.as_bytes()) {
        return millis_to_unit(ms, unit);
    }
    let t = text.trim();
    if let Some(ms) = looks_integer(t).then(|| parse_integer(t)).flatten() {
        return millis_to_unit(ms, unit);
    }
    parse_instant(t)?.to_unit(unit)
}

/// The common form `YYYY-MM-DD HH:MM:SS.fff`, exactly 23 bytes, as epoch
/// milliseconds; `None` for anything else (the general parser then
/// decides: it gives the same value for this form and rejects the same
/// invalid dates and times).
fn sql_millis(b: &[u8]) -> Option<i64> {
    if b.len() != 23
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b' '
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
    {
        return None;
    }
    let digit = |i: usize| {
        let d = b[i].wrapping_sub(b'0');
        (d < 10).then_some(u32::from(d))
    };
    let two = |i: usize| Some(digit(i)? * 10 + digit(i + 1)?);
    let y = two(0)? * 100 + two(2)?;
    let (m, d) = (two(5)?, two(8)?);
    let (h, mi, s) = (two(11)?, two(14)?, two(17)?);
    let frac = digit(20)? * 100 + two(21)?;
    let y = i64::from(y);
    if !(1..=12).contains(&m) || d == 0 || d > days_in_month(y, m) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let secs = days_from_civil(y, m, d) * 86_400 + i64::from(h * 3600 + mi * 60 + s);
    Some(secs * 1000 + i64::from(frac))
}

/// Parses `YYYY-MM-DD HH:MM:SS.fff` timestamps as [`parse_timestamp`]'s
/// fast form does, remembering the epoch milliseconds of the last minute
/// seen: records of a stream mostly share it, and a timestamp of that
/// minute then costs a 17-byte comparison and five digits.
#[derive(Debug, Default, Clone)]
pub struct SqlMillisCache {
    /// `YYYY-MM-DD HH:MM:` of the last timestamp parsed in this form, and
    /// its epoch milliseconds (at second 0).
    minute: Option<([u8; 17], i64)>,
}

impl SqlMillisCache {
    /// The epoch milliseconds of `b` when it is a valid timestamp of the
    /// form `YYYY-MM-DD HH:MM:SS.fff` (exactly 23 bytes); `None` for
    /// anything else, exactly as the uncached parse.
    pub fn millis(&mut self, b: &[u8]) -> Option<i64> {
        if let (Some((prefix, base)), Some(head), Some(tail)) =
            (&self.minute, b.get(..17), b.get(17..))
        {
            if head == prefix.as_slice() && tail.len() == 6 && tail[2] == b'.' {
                let digit = |i: usize| {
                    let d = tail[i].wrapping_sub(b'0');
                    (d < 10).then_some(i64::from(d))
                };
                let s = digit(0)? * 10 + digit(1)?;
                let frac = digit(3)? * 100 + digit(4)? * 10 + digit(5)?;
                return (s <= 59).then_some(base + s * 1000 + frac);
            }
        }
        let ms = sql_millis(b)?;
        let mut prefix = [0u8; 17];
        prefix.copy_from_slice(b.get(..17)?);
        // Seconds and fraction of a valid timestamp (checked by `sql_millis`).
        let into_minute = |i: usize| i64::from(b[i] - b'0');
        let within = (into_minute(17) * 10 + into_minute(18)) * 1000
            + into_minute(20) * 100
            + into_minute(21) * 10
            + into_minute(22);
        self.minute = Some((prefix, ms - within));
        Some(ms)
    }
}

fn looks_integer(t: &str) -> bool {
    let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

/// Converts epoch milliseconds to a count of `unit`s, if it fits.
pub fn millis_to_unit(ms: i64, unit: TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Second => Some(ms.div_euclid(1000)),
        TimeUnit::Millisecond => Some(ms),
        TimeUnit::Microsecond => ms.checked_mul(1000),
        TimeUnit::Nanosecond => ms.checked_mul(1_000_000),
    }
}

/// A `DATE` field: `YYYY-MM-DD`, or an integer number of days since the epoch.
pub fn parse_date(text: &str) -> Option<i32> {
    let t = text.trim();
    if looks_integer(t) {
        return t.parse::<i32>().ok();
    }
    let mut c = Cursor {
        b: t.as_bytes(),
        i: 0,
    };
    let days = parse_date_part(&mut c)?;
    if !c.done() {
        return None;
    }
    i32::try_from(days).ok()
}

/// A `BOOLEAN` field: `true` or `false`, any case.
pub fn parse_bool(text: &str) -> Option<bool> {
    let t = text.trim();
    if t.eq_ignore_ascii_case("true") {
        Some(true)
    } else if t.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

/// A floating-point field (also `NaN`, `Infinity`, `-Infinity`).
pub fn parse_float(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok()
}

/// A `DECIMAL(precision, scale)` field: a decimal number (optionally with an
/// exponent), rounded half up to `scale` digits, as the unscaled integer.
/// Errors say why (not a number, too many digits for the precision).
pub fn parse_decimal(text: &str, precision: u8, scale: i8) -> Result<i128, String> {
    let t = text.trim();
    let bad = || format!("'{t}' is not a decimal number");
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (mantissa, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], body[i + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (body, 0),
    };
    let (int_part, frac_part) = match mantissa.find('.') {
        Some(i) => (&mantissa[..i], &mantissa[i + 1..]),
        None => (mantissa, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(bad());
    }
    // digits * 10^(exp - frac_len); we want digits * 10^(exp - frac_len + scale).
    let digits = format!("{int_part}{frac_part}");
    let digits = digits.trim_start_matches('0');
    let shift = i64::from(exp) - frac_part.len() as i64 + i64::from(scale);
    let too_big = || format!("'{t}' does not fit DECIMAL({precision}, {scale})");
    let mut value: i128 = 0;
    let mut round_up = false;
    if shift >= 0 {
        for b in digits.bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(b - b'0')))
                .ok_or_else(too_big)?;
        }
        if !digits.is_empty() {
            for _ in 0..shift {
                value = value.checked_mul(10).ok_or_else(too_big)?;
            }
        }
    } else {
        let drop = usize::try_from(-shift).unwrap_or(usize::MAX);
        let keep = digits.len().saturating_sub(drop);
        for b in digits[..keep].bytes() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i128::from(b - b'0')))
                .ok_or_else(too_big)?;
        }
        // The first dropped digit decides (half up).
        let first_dropped = if drop <= digits.len() {
            digits.as_bytes().get(keep).copied()
        } else {
            None
        };
        round_up = first_dropped.is_some_and(|d| d >= b'5');
    }
    if round_up {
        value = value.checked_add(1).ok_or_else(too_big)?;
    }
    let limit = 10i128
        .checked_pow(u32::from(precision))
        .unwrap_or(i128::MAX);
    if value >= limit {
        return Err(too_big());
    }
    Ok(if neg { -value } else { value })
}

/// Formats an unscaled decimal with `scale` as a plain number (`-12.30`).
pub fn format_decimal(value: i128, scale: i8) -> String {
    if scale <= 0 {
        let mut s = value.to_string();
        if value != 0 {
            for _ in 0..(-i32::from(scale)) {
                s.push('0');
            }
        }
        return s;
    }
    let scale = scale as usize;
    let abs = value.unsigned_abs().to_string();
    let (int, frac) = if abs.len() > scale {
        (
            abs[..abs.len() - scale].to_string(),
            abs[abs.len() - scale..].to_string(),
        )
    } else {
        ("0".to_string(), format!("{abs:0>scale$}"))
    };
    let sign = if value < 0 { "-" } else { "" };
    format!("{sign}{int}.{frac}")
}

/// Formats a timestamp counted in `unit` the way Flink prints
/// `TIMESTAMP(p)`: `YYYY-MM-DD HH:MM:SS` plus 3 (milliseconds), 6 or 9
/// fraction digits. With `iso`, a `T` separates date and time.
pub fn format_timestamp(value: i64, unit: TimeUnit, iso: bool) -> String {
    let mut s = String::with_capacity(32);
    write_timestamp(&mut s, value, unit, iso);
    s
}

/// Appends what [`format_timestamp`] returns to `out`, without allocating.
pub fn write_timestamp(out: &mut String, value: i64, unit: TimeUnit, iso: bool) {
    let i = Instant::from_unit(value, unit);
    let days = i.secs.div_euclid(86_400);
    let sod = i.secs.rem_euclid(86_400);
    write_date_days(out, days);
    out.push(if iso { 'T' } else { ' ' });
    let (h, m, s) = (sod / 3600, (sod / 60) % 60, sod % 60);
    // Writing to a String cannot fail.
    let _ = write!(out, "{h:02}:{m:02}:{s:02}");
    let _ = match unit {
        TimeUnit::Second => Ok(()),
        TimeUnit::Millisecond => write!(out, ".{:03}", i.nanos / 1_000_000),
        TimeUnit::Microsecond => write!(out, ".{:06}", i.nanos / 1_000),
        TimeUnit::Nanosecond => write!(out, ".{:09}", i.nanos),
    };
}

/// Appends the date `days` after 1970-01-01 as `YYYY-MM-DD`.
pub fn write_date_days(out: &mut String, days: i64) {
    let (y, m, d) = civil_from_days(days);
    let _ = write!(out, "{y:04}-{m:02}-{d:02}");
}

/// (year, month, day) of the date `z` days after 1970-01-01 (proleptic
/// Gregorian; H. Hinnant's algorithm).
pub fn civil_from_days(z: i64) -> (i64, u32, u32) {
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

/// Formats a `DATE` (days since the epoch) as `YYYY-MM-DD`.
pub fn format_date(days: i32) -> String {
    let mut s = String::with_capacity(10);
    write_date_days(&mut s, i64::from(days));
    s
}

/// Formats a double the way Java's `Double.toString` does for the common
/// cases: `1.0`, `0.5`, `1.0E300` (written `1e300`), `NaN`, `Infinity`.
pub fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.to_string()
    } else {
        format!("{v:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fast path for `YYYY-MM-DD HH:MM:SS.fff` gives what the general
    /// parser gives, in every unit, valid or not.
    #[test]
    fn sql_form_fast_path_agrees_with_the_general_parser() {
        let general = |t: &str, unit: TimeUnit| {
            let t = t.trim();
            if let Some(ms) = looks_integer(t).then(|| parse_integer(t)).flatten() {
                return millis_to_unit(ms, unit);
            }
            parse_instant(t)?.to_unit(unit)
        };
        let mut cases: Vec<String> = [
            "2026-01-01 00:00:00.001",
            "2024-02-29 23:59:59.999",
            "2023-02-29 12:00:00.000",
            "2026-04-31 00:00:00.000",
            "2026-13-01 00:00:00.000",
            "2026-00-10 00:00:00.000",
            "2026-01-00 00:00:00.000",
            "2026-01-01 24:00:00.000",
            "2026-01-01 23:60:00.000",
            "2026-01-01 23:59:60.000",
            "0000-01-01 00:00:00.500",
            "9999-12-31 23:59:59.999",
            "2026-01-01T00:00:00.001",
            "2026-01-01 00:00:00,001",
            "2026-01-01 00:00:0a.001",
            "2026-01-01 00:00:00.0x1",
            " 2026-01-01 00:00:00.01",
            "2026-01-01 00:00:00.001Z",
            "20260101 00:00:00.00001",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for y in [1969, 1970, 2000, 2100] {
            for m in 1..=12 {
                for d in [1, 28, 29, 30, 31] {
                    cases.push(format!("{y:04}-{m:02}-{d:02} 13:07:59.{:03}", d * 7));
                }
            }
        }
        for t in &cases {
            for unit in [
                TimeUnit::Second,
                TimeUnit::Millisecond,
                TimeUnit::Microsecond,
                TimeUnit::Nanosecond,
            ] {
                assert_eq!(parse_timestamp(t, unit), general(t, unit), "{t} {unit:?}");
            }
        }
        assert_eq!(
            sql_millis(b"2026-01-01 00:00:00.001"),
            Some(1_767_225_600_001)
        );
        assert_eq!(sql_millis(b"2023-02-29 12:00:00.000"), None);
    }

    #[test]
    fn the_minute_cache_gives_what_the_uncached_parse_gives() {
        // Valid timestamps of a few minutes, each followed by variants
        // that share its minute but not its validity.
        let mut cases = Vec::new();
        for base in [
            "2026-01-01 00:00:",
            "2024-02-29 23:59:",
            "1969-12-31 23:59:",
            "2023-02-28 12:34:",
        ] {
            for tail in [
                "00.000", "59.999", "07.123", "60.000", "99.000", "5.1234", "05.12", "05,123",
                "05.12x", "x5.123", "05.123 ", "-1.000", "05.1a3", "05.123",
            ] {
                cases.push(format!("{base}{tail}"));
            }
            cases.push(base.to_string());
            cases.push(format!("{base}0"));
        }
        cases.push("2023-02-29 12:34:05.123".into());
        cases.push("2026-13-01 00:00:00.000".into());
        cases.push("".into());
        let mut cache = SqlMillisCache::default();
        // Twice over, so that every case is also parsed with the cache
        // holding every minute.
        for t in cases.iter().chain(&cases).chain(cases.iter().rev()) {
            assert_eq!(cache.millis(t.as_bytes()), sql_millis(t.as_bytes()), "{t}");
        }
        assert_eq!(cache.millis(b"2026-01-01 00:00:07.123"), Some(T0 + 7_123));
    }

    const T0: i64 = 1_767_225_600_000; // 2026-01-01 00:00:00 UTC

    #[test]
    fn timestamps_in_every_accepted_form() {
        let ms = |s: &str| parse_timestamp(s, TimeUnit::Millisecond);
        assert_eq!(ms("2026-01-01 00:00:00.123"), Some(T0 + 123));
        assert_eq!(ms("2026-01-01 00:00:00"), Some(T0));
        assert_eq!(ms("2026-01-01T00:00:00.123Z"), Some(T0 + 123));
        assert_eq!(ms("2026-01-01T01:00:00+01:00"), Some(T0));
        assert_eq!(ms("2026-01-01T00:00:00.1"), Some(T0 + 100));
        assert_eq!(ms("2026-01-01 00:00"), Some(T0));
        assert_eq!(ms("2026-01-01"), Some(T0));
        assert_eq!(ms(&T0.to_string()), Some(T0));
        assert_eq!(ms("-1"), Some(-1));
        assert_eq!(ms("1969-12-31 23:59:59.999"), Some(-1));
        assert_eq!(ms("2026-02-29 00:00:00"), None);
        assert_eq!(ms("2024-02-29 00:00:00"), Some(1_709_164_800_000));
        assert_eq!(ms("2026-01-01 24:00:00"), None);
        assert_eq!(ms("2026-01-01 00:00:00 junk"), None);
        assert_eq!(ms("hello"), None);
        assert_eq!(
            parse_timestamp("2026-01-01 00:00:00.123456", TimeUnit::Microsecond),
            Some(T0 * 1000 + 123_456)
        );
    }

    #[test]
    fn formatting_agrees_with_the_engine() {
        for ms in [
            0,
            -1,
            T0 + 10_123,
            253_402_300_799_999,
            -62_135_596_800_000,
            951_782_400_000,
        ] {
            assert_eq!(
                format_timestamp(ms, TimeUnit::Millisecond, false),
                weir_engine::time::format_millis(ms)
            );
        }
    }

    #[test]
    fn timestamp_and_date_formatting() {
        assert_eq!(
            format_timestamp(T0 + 10_000, TimeUnit::Millisecond, false),
            "2026-01-01 00:00:10.000"
        );
        assert_eq!(
            format_timestamp(T0 + 10_001, TimeUnit::Millisecond, true),
            "2026-01-01T00:00:10.001"
        );
        assert_eq!(
            format_timestamp(-1, TimeUnit::Microsecond, false),
            "1969-12-31 23:59:59.999999"
        );
        assert_eq!(
            format_timestamp(T0 / 1000, TimeUnit::Second, false),
            "2026-01-01 00:00:00"
        );
        assert_eq!(format_date(20454), "2026-01-01");
        assert_eq!(parse_date("2026-01-01"), Some(20454));
        assert_eq!(parse_date("20454"), Some(20454));
        assert_eq!(parse_date("2026-13-01"), None);
    }

    #[test]
    fn decimals_round_half_up_and_check_precision() {
        assert_eq!(parse_decimal("12.345", 10, 2), Ok(1235));
        assert_eq!(parse_decimal("-12.344", 10, 2), Ok(-1234));
        assert_eq!(parse_decimal("1.5e2", 10, 2), Ok(15000));
        assert_eq!(parse_decimal("0.004", 10, 2), Ok(0));
        assert_eq!(parse_decimal("0.005", 10, 2), Ok(1));
        assert_eq!(parse_decimal("7", 3, 0), Ok(7));
        assert!(parse_decimal("1000", 3, 0).is_err());
        assert!(parse_decimal("12a", 10, 2).is_err());
        assert!(parse_decimal(".", 10, 2).is_err());
        assert_eq!(format_decimal(1235, 2), "12.35");
        assert_eq!(format_decimal(-5, 2), "-0.05");
        assert_eq!(format_decimal(0, 2), "0.00");
        assert_eq!(format_decimal(12, -2), "1200");
    }

    #[test]
    fn floats_print_like_java() {
        assert_eq!(format_float(1.0), "1.0");
        assert_eq!(format_float(0.25), "0.25");
        assert_eq!(format_float(f64::NAN), "NaN");
        assert_eq!(format_float(f64::NEG_INFINITY), "-Infinity");
        assert_eq!(parse_float("-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_bool(" TRUE "), Some(true));
    }
}
