//! Reading a table's `WITH` options: unknown-key detection and typed getters
//! whose errors name the table, the option and what was expected.
//!
//! Every connector parses its options exactly once, when the planner asks it
//! for a source or a sink, into a typed struct (`NexmarkOptions`,
//! `FilesystemOptions`, …). Nothing reads the raw map after that.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::str::FromStr;

use weir_engine::{Result, WeirError};

use crate::TableDescriptor;

/// The `WITH` options of one table, checked against the keys a connector
/// knows, with typed getters.
#[derive(Debug, Clone, Copy)]
pub struct ConnectorOptions<'a> {
    table: &'a str,
    connector: &'a str,
    options: &'a BTreeMap<String, String>,
}

impl<'a> ConnectorOptions<'a> {
    /// Checks that every option of `table` is `'connector'`, one of `known`,
    /// or starts with one of `known_prefixes` (e.g. `properties.`), and
    /// returns a reader for them. An unknown option is a
    /// [`WeirError::Config`] naming it, listing the known ones and
    /// suggesting the closest.
    pub fn new(
        table: &'a TableDescriptor,
        connector: &'a str,
        known: &[&str],
        known_prefixes: &[&str],
    ) -> Result<Self> {
        Self::from_map(
            &table.name,
            &table.options,
            connector,
            known,
            known_prefixes,
        )
    }

    /// Like [`ConnectorOptions::new`], from a table name and an option map.
    pub fn from_map(
        table: &'a str,
        options: &'a BTreeMap<String, String>,
        connector: &'a str,
        known: &[&str],
        known_prefixes: &[&str],
    ) -> Result<Self> {
        for key in options.keys() {
            let ok = key == "connector"
                || known.contains(&key.as_str())
                || known_prefixes.iter().any(|p| key.starts_with(p));
            if !ok {
                let mut all: Vec<String> = known.iter().map(|k| format!("'{k}'")).collect();
                all.extend(known_prefixes.iter().map(|p| format!("'{p}*'")));
                all.sort();
                let hint = closest(key, known)
                    .map(|k| format!("did you mean '{k}'? "))
                    .unwrap_or_default();
                let list = if all.is_empty() {
                    "none".to_string()
                } else {
                    all.join(", ")
                };
                return Err(WeirError::Config(format!(
                    "table {table}: unknown option '{key}' for connector '{connector}' ({hint}known: {list})"
                )));
            }
        }
        Ok(Self {
            table,
            connector,
            options,
        })
    }

    /// The table's name.
    pub fn table(&self) -> &'a str {
        self.table
    }

    /// The connector's name.
    pub fn connector(&self) -> &'a str {
        self.connector
    }

    /// A configuration error about this table: `table <name>: <message>`.
    pub fn error(&self, message: impl Display) -> WeirError {
        WeirError::Config(format!("table {}: {message}", self.table))
    }

    /// An error saying option `key` has a value that is not `expected`.
    pub fn invalid(&self, key: &str, value: &str, expected: impl Display) -> WeirError {
        self.error(format!(
            "option '{key}' = '{value}' is not valid for connector '{}': expected {expected}",
            self.connector
        ))
    }

    /// The raw value of `key`, if given.
    pub fn get(&self, key: &str) -> Option<&'a str> {
        self.options.get(key).map(String::as_str)
    }

    /// The raw value of `key`, which must be given.
    pub fn required(&self, key: &str) -> Result<&'a str> {
        self.get(key).ok_or_else(|| {
            self.error(format!(
                "option '{key}' is required for connector '{}'",
                self.connector
            ))
        })
    }

    /// `key` parsed with [`FromStr`] (surrounding spaces ignored);
    /// `expected` describes valid values for the error message.
    pub fn parse<T: FromStr>(&self, key: &str, expected: &str) -> Result<Option<T>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|_| self.invalid(key, v, expected)),
        }
    }

    /// A boolean option: `true` or `false` (any case).
    pub fn bool(&self, key: &str) -> Result<Option<bool>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" => Ok(Some(true)),
                "false" => Ok(Some(false)),
                _ => Err(self.invalid(key, v, "'true' or 'false'")),
            },
        }
    }

    /// A whole number of at least 1.
    pub fn positive(&self, key: &str) -> Result<Option<u64>> {
        match self.parse::<u64>(key, "a whole number of at least 1")? {
            Some(0) => Err(self.invalid(key, "0", "a whole number of at least 1")),
            other => Ok(other),
        }
    }

    /// A whole number of at least 1 that fits in memory sizes.
    pub fn positive_usize(&self, key: &str) -> Result<Option<usize>> {
        match self.positive(key)? {
            None => Ok(None),
            Some(n) => usize::try_from(n)
                .map(Some)
                .map_err(|_| self.invalid(key, &n.to_string(), "a smaller number")),
        }
    }

    /// A duration in milliseconds (see [`parse_duration_ms`]).
    pub fn duration_ms(&self, key: &str) -> Result<Option<u64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => parse_duration_ms(v).map(Some).ok_or_else(|| {
                self.invalid(
                    key,
                    v,
                    "a duration: milliseconds, or a whole number with a unit (ms, s, min, h)",
                )
            }),
        }
    }

    /// A fraction between 0 and 1 (inclusive).
    pub fn fraction(&self, key: &str) -> Result<Option<f64>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(f) if (0.0..=1.0).contains(&f) => Ok(Some(f)),
                _ => Err(self.invalid(key, v, "a number between 0 and 1")),
            },
        }
    }

    /// One of `choices` (compared ignoring case); returns the matching choice.
    pub fn choice(&self, key: &str, choices: &[&'static str]) -> Result<Option<&'static str>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => {
                let t = v.trim();
                choices
                    .iter()
                    .find(|c| c.eq_ignore_ascii_case(t))
                    .copied()
                    .map(Some)
                    .ok_or_else(|| {
                        let list: Vec<String> = choices.iter().map(|c| format!("'{c}'")).collect();
                        self.invalid(key, v, format!("one of {}", list.join(", ")))
                    })
            }
        }
    }
}

/// Parses a duration: a whole number with an optional unit (`ms`, `s`,
/// `min`, `h`; long forms and plurals too), milliseconds without one, e.g.
/// `250`, `250 ms`, `5s`, `2 min`.
pub fn parse_duration_ms(text: &str) -> Option<u64> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num.parse().ok()?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "millisecond" | "milliseconds" => 1,
        "s" | "sec" | "second" | "seconds" => 1_000,
        "min" | "minute" | "minutes" => 60_000,
        "h" | "hour" | "hours" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(factor)
}

/// The known key closest to `key` by edit distance, when close enough to be
/// a plausible typo.
pub fn closest<'k>(key: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(key, k), *k))
        .filter(|(d, k)| *d <= 3.max(k.len() / 4) && *d < k.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance (with adjacent transpositions counting as one edit).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev2: Vec<usize> = vec![0; b.len() + 1];
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                cur[j] = cur[j].min(prev2[j - 2] + 1);
            }
        }
        prev2 = std::mem::replace(&mut prev, cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn unknown_option_names_it_and_suggests() {
        let m = map(&[("connector", "nexmark"), ("evnets.num", "10")]);
        let err = ConnectorOptions::from_map("bid", &m, "nexmark", &["events.num", "splits"], &[])
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_eq!(
            err,
            "config error: table bid: unknown option 'evnets.num' for connector 'nexmark' \
             (did you mean 'events.num'? known: 'events.num', 'splits')"
        );
    }

    #[test]
    fn typed_getters_report_what_was_expected() -> Result<()> {
        let m = map(&[("n", "x"), ("b", "TRUE"), ("z", "0"), ("c", "Sine")]);
        let o = ConnectorOptions::from_map("t", &m, "c", &["n", "b", "z", "c"], &[])?;
        let e = o.parse::<u64>("n", "a number").err().map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("config error: table t: option 'n' = 'x' is not valid for connector 'c': expected a number")
        );
        assert_eq!(o.bool("b")?, Some(true));
        assert!(o.positive("z").is_err());
        assert_eq!(o.choice("c", &["sine", "square"])?, Some("sine"));
        assert_eq!(o.parse::<u64>("missing", "x")?, None);
        Ok(())
    }

    #[test]
    fn durations_and_fractions() -> Result<()> {
        assert_eq!(parse_duration_ms("250"), Some(250));
        assert_eq!(parse_duration_ms(" 5s "), Some(5_000));
        assert_eq!(parse_duration_ms("2 min"), Some(120_000));
        assert_eq!(parse_duration_ms("1 hour"), Some(3_600_000));
        assert_eq!(parse_duration_ms("1.5 s"), None);
        assert_eq!(parse_duration_ms("5 days"), None);
        let m = map(&[("d", "3 s"), ("f", "0.25"), ("g", "1.5")]);
        let o = ConnectorOptions::from_map("t", &m, "c", &["d", "f", "g"], &[])?;
        assert_eq!(o.duration_ms("d")?, Some(3_000));
        assert_eq!(o.fraction("f")?, Some(0.25));
        assert!(o.fraction("g").is_err());
        Ok(())
    }

    #[test]
    fn edit_distance_counts_transpositions_once() {
        assert_eq!(edit_distance("evnets.num", "events.num"), 1);
        assert_eq!(edit_distance("kafak", "kafka"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("zzzzzz", &["path"]), None);
    }
}
