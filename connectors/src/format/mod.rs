//! Record formats shared by connectors: JSON (one object per line or per
//! message) and CSV, decoded into Arrow batches of a declared schema with
//! malformed records reported one by one, and encoded back to lines.
//!
//! - [`json::JsonDecoder`] / [`csv::CsvDecoder`]: bytes → rows of a
//!   [`arrow::record_batch::RecordBatch`]; a record that cannot be decoded is
//!   reported with the reason and nothing of it is appended.
//! - [`encode::JsonEncoder`] / [`encode::CsvEncoder`]: batch → lines.
//! - [`raw::RawDecoder`] / [`raw::encode_raw_row`]: a whole message as one
//!   `STRING` or `BYTES` column (Flink's `raw`).
//! - [`text`]: the text forms of values (timestamps, dates, decimals).
//!
//! Format options use Flink's names and are parsed once by
//! [`JsonOptions::parse`], [`CsvOptions::parse`] and [`OnError::parse`].

pub mod columns;
pub mod csv;
pub mod encode;
pub mod json;
pub mod raw;
pub mod text;

use weir_engine::Result;

use crate::options::ConnectorOptions;

/// What a source does with a record it cannot decode (`'format.on-error'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Count it in the metrics, log it with its position, skip it (default).
    #[default]
    Skip,
    /// Fail the job with an error naming its position.
    Fail,
}

impl OnError {
    /// Keys read by [`OnError::parse`] (`<format>.ignore-parse-errors` is
    /// Flink's name; `'true'` means skip, `'false'` fail).
    pub fn keys(format: &str) -> [String; 2] {
        [
            "format.on-error".to_string(),
            format!("{format}.ignore-parse-errors"),
        ]
    }

    /// Parses `'format.on-error'` = `skip` | `fail` (default `skip`), or
    /// Flink's `'<format>.ignore-parse-errors'` = `true` | `false`.
    pub fn parse(o: &ConnectorOptions<'_>, format: &str) -> Result<Self> {
        let explicit = o.choice("format.on-error", &["skip", "fail"])?.map(|c| {
            if c == "fail" {
                OnError::Fail
            } else {
                OnError::Skip
            }
        });
        let flink_key = format!("{format}.ignore-parse-errors");
        let flink = o
            .bool(&flink_key)?
            .map(|ignore| if ignore { OnError::Skip } else { OnError::Fail });
        match (explicit, flink) {
            (Some(a), Some(b)) if a != b => Err(o.error(format!(
                "options 'format.on-error' and '{flink_key}' contradict each other"
            ))),
            (a, b) => Ok(a.or(b).unwrap_or_default()),
        }
    }
}

/// How timestamps are written as JSON text (`'json.timestamp-format.standard'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampStandard {
    /// `2026-01-01 00:00:10.000` (default).
    #[default]
    Sql,
    /// `2026-01-01T00:00:10.000`.
    Iso8601,
}

/// Options of the JSON format.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct JsonOptions {
    /// How timestamps are written (both forms are always read).
    pub timestamp_standard: TimestampStandard,
    /// A missing field is an error instead of NULL (`'json.fail-on-missing-field'`, default false).
    pub fail_on_missing_field: bool,
}

/// Option keys of the JSON format (besides [`OnError::keys`]).
pub const JSON_OPTION_KEYS: [&str; 2] = [
    "json.timestamp-format.standard",
    "json.fail-on-missing-field",
];

impl JsonOptions {
    /// Parses the `json.*` options.
    pub fn parse(o: &ConnectorOptions<'_>) -> Result<Self> {
        let timestamp_standard =
            match o.choice("json.timestamp-format.standard", &["SQL", "ISO-8601"])? {
                Some("ISO-8601") => TimestampStandard::Iso8601,
                _ => TimestampStandard::Sql,
            };
        Ok(Self {
            timestamp_standard,
            fail_on_missing_field: o.bool("json.fail-on-missing-field")?.unwrap_or(false),
        })
    }
}

/// Options of the CSV format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Field delimiter (`'csv.field-delimiter'`, default `,`; `\t` for tab).
    pub field_delimiter: u8,
    /// Quote character (`'csv.quote-character'`, default `"`).
    pub quote_character: u8,
    /// Text that stands for NULL (`'csv.null-literal'`, default none: an
    /// empty field is NULL).
    pub null_literal: Option<String>,
    /// Sources skip the first line of each file; sinks write the column
    /// names as first line (`'csv.ignore-first-line'`, default false).
    pub ignore_first_line: bool,
    /// Lines starting with `#` are comments (`'csv.allow-comments'`, default false).
    pub allow_comments: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        Self {
            field_delimiter: b',',
            quote_character: b'"',
            null_literal: None,
            ignore_first_line: false,
            allow_comments: false,
        }
    }
}

/// Option keys of the CSV format (besides [`OnError::keys`]).
pub const CSV_OPTION_KEYS: [&str; 5] = [
    "csv.field-delimiter",
    "csv.quote-character",
    "csv.null-literal",
    "csv.ignore-first-line",
    "csv.allow-comments",
];

impl CsvOptions {
    /// Parses the `csv.*` options.
    pub fn parse(o: &ConnectorOptions<'_>) -> Result<Self> {
        let mut c = CsvOptions::default();
        let single_byte = |key: &str| -> Result<Option<u8>> {
            match o.get(key) {
                None => Ok(None),
                Some(v) => {
                    let b = match v {
                        "\\t" => b'\t',
                        _ if v.len() == 1 && v.is_ascii() && v != "\n" && v != "\r" => {
                            v.as_bytes()[0]
                        }
                        _ => return Err(o.invalid(key, v, "a single ASCII character (or \\t)")),
                    };
                    Ok(Some(b))
                }
            }
        };
        if let Some(d) = single_byte("csv.field-delimiter")? {
            c.field_delimiter = d;
        }
        if let Some(q) = single_byte("csv.quote-character")? {
            c.quote_character = q;
        }
        if c.field_delimiter == c.quote_character {
            return Err(o.error("'csv.field-delimiter' and 'csv.quote-character' must differ"));
        }
        c.null_literal = o.get("csv.null-literal").map(str::to_string);
        c.ignore_first_line = o.bool("csv.ignore-first-line")?.unwrap_or(false);
        c.allow_comments = o.bool("csv.allow-comments")?.unwrap_or(false);
        Ok(c)
    }
}
