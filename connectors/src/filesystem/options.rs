//! Options of the `filesystem` connector, parsed once into [`FilesystemOptions`].

use std::path::PathBuf;

use weir_engine::Result;

use crate::format::{CsvOptions, JsonOptions, OnError, CSV_OPTION_KEYS, JSON_OPTION_KEYS};
use crate::options::ConnectorOptions;
use crate::TableDescriptor;

/// The file format (`'format'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// JSON lines: one object per line (`.jsonl` when written).
    Json,
    /// CSV lines (`.csv` when written).
    Csv,
    /// Apache Parquet (`.parquet` when written).
    Parquet,
}

impl FileFormat {
    /// The option value naming this format.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Json => "json",
            FileFormat::Csv => "csv",
            FileFormat::Parquet => "parquet",
        }
    }

    /// The extension of the files a sink writes.
    pub fn extension(self) -> &'static str {
        match self {
            FileFormat::Json => "jsonl",
            FileFormat::Csv => "csv",
            FileFormat::Parquet => "parquet",
        }
    }
}

/// Default rows per batch read.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// Options accepted for Flink compatibility and ignored: a sink writes one
/// file per subtask.
pub const IGNORED_SINK_OPTIONS: [&str; 3] = [
    "sink.rolling-policy.file-size",
    "sink.rolling-policy.rollover-interval",
    "sink.rolling-policy.check-interval",
];

/// Typed options of a `filesystem` table.
///
/// | option | meaning | default |
/// |---|---|---|
/// | `'path'` | source: a file, or a directory whose files are read in name order (names starting with `.` or `_` skipped, subdirectories ignored); sink: a directory (created) where subtask s writes `part-<s>.<ext>`; `file://` prefix allowed | required |
/// | `'format'` | `json` (JSON lines), `csv`, `parquet` | required |
/// | `'format.on-error'` | `skip` (count, log `file:line`, skip) or `fail`; Flink's `'json.ignore-parse-errors'` / `'csv.ignore-parse-errors'` are accepted too | `skip` |
/// | `'batch.size'` | maximum rows per batch read | 8192 |
/// | `'json.timestamp-format.standard'` | `SQL` or `ISO-8601`: how a sink writes timestamps (sources read both) | `SQL` |
/// | `'json.fail-on-missing-field'` | a missing field is malformed instead of NULL | false |
/// | `'csv.field-delimiter'` | one ASCII character, or `\t` | `,` |
/// | `'csv.quote-character'` | one ASCII character | `"` |
/// | `'csv.null-literal'` | text standing for NULL (then an empty `STRING` field is `''`) | none: empty fields are NULL |
/// | `'csv.ignore-first-line'` | source: skip each file's first line; sink: write the column names as first line | false |
/// | `'csv.allow-comments'` | lines starting with `#` are skipped | false |
/// | `'sink.rolling-policy.*'` | accepted and ignored: one file per sink subtask | – |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesystemOptions {
    /// File or directory.
    pub path: PathBuf,
    /// Record format.
    pub format: FileFormat,
    /// JSON options (format `json`).
    pub json: JsonOptions,
    /// CSV options (format `csv`).
    pub csv: CsvOptions,
    /// What a source does with malformed records.
    pub on_error: OnError,
    /// Maximum rows per batch read.
    pub batch_size: usize,
}

impl FilesystemOptions {
    /// Parses the options of `table` (unknown options, and options of
    /// another format than `'format'`, are errors).
    pub fn parse(table: &TableDescriptor) -> Result<Self> {
        let mut known: Vec<&str> = vec!["path", "format", "batch.size", "format.on-error"];
        known.extend(JSON_OPTION_KEYS);
        known.extend(CSV_OPTION_KEYS);
        known.extend(["json.ignore-parse-errors", "csv.ignore-parse-errors"]);
        known.extend(IGNORED_SINK_OPTIONS);
        let o = ConnectorOptions::new(table, "filesystem", &known, &[])?;
        let raw_path = o.required("path")?;
        let path = raw_path.trim();
        let path = path.strip_prefix("file://").unwrap_or(path);
        if path.is_empty() {
            return Err(o.invalid("path", raw_path, "a file or directory path"));
        }
        o.required("format")?;
        let format = match o.choice("format", &["json", "csv", "parquet"])? {
            Some("csv") => FileFormat::Csv,
            Some("parquet") => FileFormat::Parquet,
            _ => FileFormat::Json,
        };
        for key in table.options.keys() {
            for other in ["json", "csv"] {
                if key.starts_with(&format!("{other}.")) && format.name() != other {
                    return Err(o.error(format!(
                        "option '{key}' applies to format '{other}', but 'format' is '{}'",
                        format.name()
                    )));
                }
            }
        }
        let json = JsonOptions::parse(&o)?;
        let csv = CsvOptions::parse(&o)?;
        let on_error = OnError::parse(&o, format.name())?;
        let batch_size = o
            .positive_usize("batch.size")?
            .unwrap_or(DEFAULT_BATCH_SIZE);
        Ok(Self {
            path: PathBuf::from(path),
            format,
            json,
            csv,
            on_error,
            batch_size,
        })
    }
}
