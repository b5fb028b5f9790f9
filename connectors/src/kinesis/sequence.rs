//! Kinesis sequence numbers: decimal strings of up to 129 digits, compared
//! as numbers and stored exactly as received.

use std::cmp::Ordering;
use std::fmt;

/// The most digits a Kinesis sequence number can have.
pub const MAX_DIGITS: usize = 129;

/// A Kinesis sequence number.
///
/// Kinesis documents sequence numbers as decimal strings matching
/// `0|([1-9]\d{0,128})`; real ones are 56 digits today, far beyond `u64`
/// and `u128`. A [`SequenceNumber`] keeps the text exactly as received (it
/// is what `AFTER_SEQUENCE_NUMBER` and checkpoints need) and orders by
/// numeric value: leading zeros are ignored, then the longer number is the
/// larger, then digits compare left to right. Equality is numeric too, so
/// `007` equals `7` (both still print as received).
#[derive(Debug, Clone)]
pub struct SequenceNumber(String);

impl SequenceNumber {
    /// Parses a sequence number: 1 to [`MAX_DIGITS`] ASCII digits (leading
    /// zeros allowed). The error says what is wrong with `text`.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("empty sequence number".into());
        }
        if text.len() > MAX_DIGITS {
            return Err(format!(
                "sequence number has {} digits, more than {MAX_DIGITS}",
                text.len()
            ));
        }
        if !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "sequence number '{}' is not a decimal number",
                super::truncate_for_log(text)
            ));
        }
        Ok(Self(text.to_string()))
    }

    /// The text exactly as received.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digits without leading zeros (`"0"` for zero).
    fn significant(&self) -> &str {
        let s = self.0.trim_start_matches('0');
        if s.is_empty() {
            "0"
        } else {
            s
        }
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        let (a, b) = (self.significant(), other.significant());
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for SequenceNumber {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for SequenceNumber {}

impl fmt::Display for SequenceNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seq(s: &str) -> SequenceNumber {
        match SequenceNumber::parse(s) {
            Ok(v) => v,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn compares_numerically_not_as_text_or_u64() {
        // Plain string comparison would put "9" after "10".
        assert!(seq("9") < seq("10"));
        // Leading zeros do not count, and are kept when printed.
        assert_eq!(seq("007"), seq("7"));
        assert_eq!(seq("007").to_string(), "007");
        assert!(seq("0000000000000000000000000000000000000000000000000000000000000010") > seq("9"));
        // Real sequence numbers: 56 digits, far beyond u128.
        let a = seq("49590338271490256608559692538361571095921575989136588898");
        let b = seq("49590338271490256608559692540925702759324208523137515618");
        assert!(a < b);
        assert_eq!(
            a.as_str(),
            "49590338271490256608559692538361571095921575989136588898"
        );
        // 129 digits: the maximum.
        let max = "9".repeat(MAX_DIGITS);
        let below = format!("{}8", "9".repeat(MAX_DIGITS - 1));
        assert!(seq(&below) < seq(&max));
        assert!(seq("0") < seq("1"));
        assert_eq!(seq("0"), seq("000"));
    }

    #[test]
    fn rejects_what_is_not_a_sequence_number() {
        assert!(SequenceNumber::parse("").is_err());
        assert!(SequenceNumber::parse("12a").is_err());
        assert!(SequenceNumber::parse("-1").is_err());
        assert!(SequenceNumber::parse(&"1".repeat(MAX_DIGITS + 1)).is_err());
        assert!(SequenceNumber::parse(&"1".repeat(MAX_DIGITS)).is_ok());
    }
}
