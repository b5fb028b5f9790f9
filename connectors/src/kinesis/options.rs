//! Options of the `kinesis` connector, parsed once into [`KinesisSourceOptions`]
//! or [`KinesisSinkOptions`].
//!
//! Names follow Flink's Kinesis SQL connector where it has one; the few
//! Weir adds (`'scan.bounded'`, `'dead-letter.stream'`, `'sink.partition-key'`,
//! `'sink.preserve-key-order'`, `'sink.retries'`) are marked below.

use std::time::Duration;

use weir_engine::Result;

use crate::format::{CsvOptions, JsonOptions, OnError, CSV_OPTION_KEYS, JSON_OPTION_KEYS};
use crate::options::ConnectorOptions;
use crate::TableDescriptor;

/// The connector name.
pub const CONNECTOR: &str = "kinesis";

/// GetRecords returns at most this many records per call (Kinesis' limit).
pub const MAX_GET_RECORDS: u32 = 10_000;
/// PutRecords accepts at most this many records per call (Kinesis' limit).
pub const MAX_PUT_RECORDS: usize = 500;
/// PutRecords accepts at most this many bytes (data + partition keys) per call.
pub const MAX_PUT_BYTES: usize = 5 * 1024 * 1024;
/// One record (data + partition key) may be at most this many bytes.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// A partition key is 1 to 256 Unicode characters.
pub const MAX_PARTITION_KEY_CHARS: usize = 256;

/// Options shared by sources and sinks: the stream and how to reach it.
const COMMON_KEYS: [&str; 8] = [
    "stream",
    "aws.region",
    "aws.endpoint",
    "aws.credentials.provider",
    "aws.credentials.basic.accesskeyid",
    "aws.credentials.basic.secretkey",
    "format",
    "format.on-error",
];

/// Options only a source reads.
const SOURCE_KEYS: [&str; 14] = [
    "scan.stream.initpos",
    "scan.stream.initpos-timestamp",
    "scan.stream.initpos-timestamp-format",
    "scan.shard.getrecords.maxrecordcount",
    "scan.shard.getrecords.intervalmillis",
    "scan.shard.getrecords.maxretries",
    "scan.shard.getrecords.backoff.base",
    "scan.shard.getrecords.backoff.max",
    "scan.shard.getrecords.backoff.expconst",
    "scan.shard.discovery.intervalmillis",
    "scan.bounded",
    "dead-letter.stream",
    "json.ignore-parse-errors",
    "csv.ignore-parse-errors",
];

/// Options only a sink reads.
const SINK_KEYS: [&str; 8] = [
    "sink.partition-key",
    "sink.partitioner-field-delimiter",
    "sink.batch.max-size",
    "sink.flush-buffer.size",
    "sink.retries",
    "sink.retry.backoff.base",
    "sink.retry.backoff.max",
    "sink.preserve-key-order",
];

/// How the connector authenticates (`'aws.credentials.provider'`).
#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    /// AWS' default chain: environment, profile, web identity, container,
    /// instance metadata (`AUTO`, the default).
    Auto,
    /// Static keys (`BASIC`): for local emulators, or when nothing else is
    /// available.
    Basic {
        /// `'aws.credentials.basic.accesskeyid'`.
        access_key_id: String,
        /// `'aws.credentials.basic.secretkey'`.
        secret_key: String,
    },
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Auto => f.write_str("Auto"),
            // Never print the secret.
            Credentials::Basic { access_key_id, .. } => f
                .debug_struct("Basic")
                .field("access_key_id", access_key_id)
                .field("secret_key", &"<redacted>")
                .finish(),
        }
    }
}

/// Where the stream lives and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsOptions {
    /// `'aws.region'` (else the default chain's region).
    pub region: Option<String>,
    /// `'aws.endpoint'`: an endpoint URL replacing AWS' (emulators, VPC
    /// endpoints).
    pub endpoint: Option<String>,
    /// `'aws.credentials.provider'` and its keys.
    pub credentials: Credentials,
}

/// How record data is read and written (`'format'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordFormat {
    /// One JSON object per record.
    Json(JsonOptions),
    /// One CSV line per record.
    Csv(CsvOptions),
    /// The whole record as the single column (`STRING` or `BYTES`).
    Raw,
}

impl RecordFormat {
    /// The option value naming this format.
    pub fn name(&self) -> &'static str {
        match self {
            RecordFormat::Json(_) => "json",
            RecordFormat::Csv(_) => "csv",
            RecordFormat::Raw => "raw",
        }
    }
}

/// Where a source starts reading the shards that exist when it starts
/// (`'scan.stream.initpos'`). Shards created later by resharding are always
/// read from their start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitialPosition {
    /// The oldest record still retained (`TRIM_HORIZON`, the default).
    TrimHorizon,
    /// Only records written after the source started (`LATEST`).
    Latest,
    /// Records that arrived at or after this instant, epoch milliseconds
    /// (`AT_TIMESTAMP` with `'scan.stream.initpos-timestamp'`).
    AtTimestamp(i64),
}

impl InitialPosition {
    /// The `ShardIteratorType` name (and timestamp) as text.
    pub fn describe(&self) -> String {
        match self {
            InitialPosition::TrimHorizon => "TRIM_HORIZON".into(),
            InitialPosition::Latest => "LATEST".into(),
            InitialPosition::AtTimestamp(ms) => format!("AT_TIMESTAMP:{ms}"),
        }
    }
}

/// Exponential backoff with full jitter: attempt `n` (from 0) waits a
/// random time up to `min(max, base * exp^n)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The first delay's upper bound.
    pub base: Duration,
    /// The largest delay.
    pub max: Duration,
    /// The growth factor per attempt.
    pub exp: f64,
}

impl Backoff {
    /// The upper bound of the delay before retry `attempt` (from 0).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = self.exp.powi(attempt.min(64) as i32);
        let ms = (self.base.as_secs_f64() * 1000.0 * factor).min(self.max.as_secs_f64() * 1000.0);
        Duration::from_micros((ms.max(0.0) * 1000.0) as u64)
    }

    /// The delay before retry `attempt`: uniformly random in
    /// `[ceiling / 2, ceiling]` (jitter that still backs off).
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        let spread = (ceiling - half).as_micros() as u64;
        let jitter = if spread == 0 {
            0
        } else {
            rand::random::<u64>() % (spread + 1)
        };
        half + Duration::from_micros(jitter)
    }
}

/// Typed options of a `kinesis` source table.
///
/// | option | meaning | default |
/// |---|---|---|
/// | `'stream'` | the stream name | required |
/// | `'aws.region'` | region | the default chain's |
/// | `'aws.endpoint'` | endpoint URL (e.g. `http://127.0.0.1:4567` for kinesalite) | AWS' |
/// | `'aws.credentials.provider'` | `AUTO` (default chain) or `BASIC` | `AUTO` |
/// | `'aws.credentials.basic.accesskeyid'` / `'…secretkey'` | static keys for `BASIC` | – |
/// | `'format'` | `json`, `csv` or `raw` (one `STRING`/`BYTES` column) | required |
/// | `'json.*'`, `'csv.*'` | as for the filesystem connector | |
/// | `'format.on-error'` | `skip` (count, log with shard and sequence number, skip) or `fail` | `skip` |
/// | `'dead-letter.stream'` (Weir) | a stream that receives the data of each skipped record, with its partition key | none |
/// | `'scan.stream.initpos'` | `TRIM_HORIZON`, `LATEST` or `AT_TIMESTAMP` | `TRIM_HORIZON` |
/// | `'scan.stream.initpos-timestamp'` | for `AT_TIMESTAMP`: epoch seconds (`1767225600.5`) or a date-time (`2026-01-01 00:00:00`, ISO-8601 with offset) | – |
/// | `'scan.shard.getrecords.maxrecordcount'` | records per GetRecords call (1–10000) | 10000 |
/// | `'scan.shard.getrecords.intervalmillis'` | pause between GetRecords calls of one shard | 200 |
/// | `'scan.shard.getrecords.maxretries'` | consecutive throttled/failed calls of one shard before the job fails | 20 |
/// | `'scan.shard.getrecords.backoff.base'` / `.max` / `.expconst` | backoff of those retries (ms, ms, factor) | 300 / 10000 / 1.5 |
/// | `'scan.shard.discovery.intervalmillis'` | how often ListShards looks for new shards | 10000 |
/// | `'scan.bounded'` (Weir) | `true`: end once every shard is read to its end (closed shards to SHARD_END, open ones up to the records present when the reader catches up) | `false` |
#[derive(Debug, Clone, PartialEq)]
pub struct KinesisSourceOptions {
    /// `'stream'`.
    pub stream: String,
    /// Region, endpoint, credentials.
    pub aws: AwsOptions,
    /// Record format.
    pub format: RecordFormat,
    /// What a malformed record does.
    pub on_error: OnError,
    /// Where malformed records' data goes, if anywhere.
    pub dead_letter_stream: Option<String>,
    /// Where reading starts.
    pub initial_position: InitialPosition,
    /// End at the current end of every shard.
    pub bounded: bool,
    /// Records per GetRecords call.
    pub max_records: u32,
    /// Pause between two GetRecords calls of one shard.
    pub poll_interval: Duration,
    /// Consecutive failed calls of one shard before the job fails.
    pub max_retries: u32,
    /// Backoff of retried calls.
    pub backoff: Backoff,
    /// How often shards are listed.
    pub discovery_interval: Duration,
}

/// Typed options of a `kinesis` sink table.
///
/// | option | meaning | default |
/// |---|---|---|
/// | `'stream'`, `'aws.*'`, `'format'`, `'json.*'`, `'csv.*'` | as for the source | |
/// | `'sink.partition-key'` (Weir) | column(s), comma separated, whose values (joined by the delimiter, NULL as `null`, cut to 256 characters) are the partition key | a random key per record (Flink's `random` partitioner) |
/// | `'sink.partitioner-field-delimiter'` | joins several key columns | `\|` |
/// | `'sink.batch.max-size'` | records per PutRecords call (1–500) | 500 |
/// | `'sink.flush-buffer.size'` | bytes per PutRecords call (data + keys, ≤ 5 MiB) | 5242880 |
/// | `'sink.retries'` (Weir) | retries of failed entries (and of failed calls) before the job fails | 10 |
/// | `'sink.retry.backoff.base'` / `.max` (Weir) | backoff of those retries, ms | 100 / 5000 |
/// | `'sink.preserve-key-order'` (Weir) | at most one record per partition key per call, so a retried record never lands after a later one of its key | `false` |
#[derive(Debug, Clone, PartialEq)]
pub struct KinesisSinkOptions {
    /// `'stream'`.
    pub stream: String,
    /// Region, endpoint, credentials.
    pub aws: AwsOptions,
    /// Record format.
    pub format: RecordFormat,
    /// Columns forming the partition key (empty: random keys).
    pub partition_key: Vec<String>,
    /// Joins several key columns.
    pub key_delimiter: String,
    /// Records per call.
    pub max_batch_records: usize,
    /// Bytes per call.
    pub max_batch_bytes: usize,
    /// Retries of failed entries before the job fails.
    pub retries: u32,
    /// Backoff of those retries.
    pub backoff: Backoff,
    /// One record per partition key per call.
    pub preserve_key_order: bool,
}

/// Milliseconds of option `key` (a plain number of milliseconds, or a
/// duration like `'500 ms'`, `'10 s'`).
fn millis(o: &ConnectorOptions<'_>, key: &str) -> Result<Option<Duration>> {
    let Some(v) = o.get(key) else {
        return Ok(None);
    };
    parse_duration(v).map(Some).ok_or_else(|| {
        o.invalid(
            key,
            v,
            "milliseconds, or a duration like '500 ms' or '10 s'",
        )
    })
}

/// Parses `200`, `200ms`, `1.5 s`, `2 min`.
fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.trim().parse().ok()?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "millis" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n * 1000.0,
        "min" | "mins" | "minute" | "minutes" => n * 60_000.0,
        _ => return None,
    };
    (ms.is_finite() && ms >= 0.0).then(|| Duration::from_micros((ms * 1000.0) as u64))
}

fn common<'a>(
    table: &'a TableDescriptor,
    role_keys: &[&str],
) -> Result<(ConnectorOptions<'a>, String, AwsOptions, RecordFormat)> {
    let mut known: Vec<&str> = COMMON_KEYS.to_vec();
    known.extend(role_keys);
    known.extend(JSON_OPTION_KEYS);
    known.extend(CSV_OPTION_KEYS);
    let o = ConnectorOptions::new(table, CONNECTOR, &known, &[])?;
    let raw_stream = o.required("stream")?;
    let stream = raw_stream.trim();
    if stream.is_empty()
        || stream.len() > 128
        || !stream
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err(o.invalid(
            "stream",
            raw_stream,
            "a stream name of 1 to 128 characters among a-z, A-Z, 0-9, '_', '.', '-'",
        ));
    }
    let region = o
        .get("aws.region")
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string);
    let endpoint = match o.get("aws.endpoint") {
        None => None,
        Some(e) => {
            let t = e.trim();
            if !(t.starts_with("http://") || t.starts_with("https://")) {
                return Err(o.invalid(
                    "aws.endpoint",
                    e,
                    "a URL starting with http:// or https://",
                ));
            }
            Some(t.to_string())
        }
    };
    let credentials = match o.choice("aws.credentials.provider", &["AUTO", "BASIC"])? {
        Some("BASIC") => Credentials::Basic {
            access_key_id: o.required("aws.credentials.basic.accesskeyid")?.to_string(),
            secret_key: o.required("aws.credentials.basic.secretkey")?.to_string(),
        },
        _ => {
            for k in [
                "aws.credentials.basic.accesskeyid",
                "aws.credentials.basic.secretkey",
            ] {
                if o.get(k).is_some() {
                    return Err(o.error(format!(
                        "option '{k}' needs 'aws.credentials.provider' = 'BASIC'"
                    )));
                }
            }
            Credentials::Auto
        }
    };
    o.required("format")?;
    let format = match o.choice("format", &["json", "csv", "raw"])? {
        Some("csv") => RecordFormat::Csv(CsvOptions::parse(&o)?),
        Some("raw") => RecordFormat::Raw,
        _ => RecordFormat::Json(JsonOptions::parse(&o)?),
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
    if format == RecordFormat::Raw && table.schema.fields().len() != 1 {
        return Err(o.error(format!(
            "format 'raw' reads and writes exactly one physical column (STRING or BYTES), \
             the table has {}",
            table.schema.fields().len()
        )));
    }
    Ok((
        o,
        stream.to_string(),
        AwsOptions {
            region,
            endpoint,
            credentials,
        },
        format,
    ))
}

/// Parses `'scan.stream.initpos-timestamp'`: epoch seconds (with an
/// optional fraction) or a date-time; returns epoch milliseconds.
fn parse_initpos_timestamp(text: &str) -> Option<i64> {
    let t = text.trim();
    if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        let secs: f64 = t.parse().ok()?;
        return secs.is_finite().then(|| (secs * 1000.0).round() as i64);
    }
    let i = crate::format::text::parse_instant(t)?;
    Some(i.secs * 1000 + i64::from(i.nanos / 1_000_000))
}

impl KinesisSourceOptions {
    /// Parses the options of a source table (unknown options, sink options
    /// and options of another format are errors).
    pub fn parse(table: &TableDescriptor) -> Result<Self> {
        let (o, stream, aws, format) = common(table, &SOURCE_KEYS)?;
        let on_error = OnError::parse(&o, format.name())?;
        let initial_position = match o.choice(
            "scan.stream.initpos",
            &["TRIM_HORIZON", "LATEST", "AT_TIMESTAMP"],
        )? {
            Some("LATEST") => InitialPosition::Latest,
            Some("AT_TIMESTAMP") => {
                let v = o.get("scan.stream.initpos-timestamp").ok_or_else(|| {
                    o.error(
                        "'scan.stream.initpos' = 'AT_TIMESTAMP' needs 'scan.stream.initpos-timestamp'",
                    )
                })?;
                let ms = parse_initpos_timestamp(v).ok_or_else(|| {
                    o.invalid(
                        "scan.stream.initpos-timestamp",
                        v,
                        "epoch seconds like '1767225600.5' or a date-time like '2026-01-01 00:00:00' / '2026-01-01T00:00:00.000+01:00'",
                    )
                })?;
                InitialPosition::AtTimestamp(ms)
            }
            _ => {
                if o.get("scan.stream.initpos-timestamp").is_some() {
                    return Err(o.error(
                        "option 'scan.stream.initpos-timestamp' needs 'scan.stream.initpos' = 'AT_TIMESTAMP'",
                    ));
                }
                InitialPosition::TrimHorizon
            }
        };
        let max_records = match o.positive("scan.shard.getrecords.maxrecordcount")? {
            None => MAX_GET_RECORDS,
            Some(n) if n <= u64::from(MAX_GET_RECORDS) => n as u32,
            Some(n) => {
                return Err(o.invalid(
                    "scan.shard.getrecords.maxrecordcount",
                    &n.to_string(),
                    "a number from 1 to 10000",
                ))
            }
        };
        let exp = match o.parse::<f64>("scan.shard.getrecords.backoff.expconst", "a number ≥ 1")?
        {
            None => 1.5,
            Some(e) if e.is_finite() && e >= 1.0 => e,
            Some(e) => {
                return Err(o.invalid(
                    "scan.shard.getrecords.backoff.expconst",
                    &e.to_string(),
                    "a number ≥ 1",
                ))
            }
        };
        let backoff = Backoff {
            base: millis(&o, "scan.shard.getrecords.backoff.base")?
                .unwrap_or(Duration::from_millis(300)),
            max: millis(&o, "scan.shard.getrecords.backoff.max")?
                .unwrap_or(Duration::from_millis(10_000)),
            exp,
        };
        let dead_letter_stream = o
            .get("dead-letter.stream")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string);
        if dead_letter_stream.as_deref() == Some(stream.as_str()) {
            return Err(o.error(
                "'dead-letter.stream' must not be the stream being read (records would loop)",
            ));
        }
        Ok(Self {
            stream,
            aws,
            on_error,
            dead_letter_stream,
            initial_position,
            bounded: o.bool("scan.bounded")?.unwrap_or(false),
            max_records,
            poll_interval: millis(&o, "scan.shard.getrecords.intervalmillis")?
                .unwrap_or(Duration::from_millis(200)),
            max_retries: o
                .parse::<u32>("scan.shard.getrecords.maxretries", "a whole number")?
                .unwrap_or(20),
            backoff,
            discovery_interval: millis(&o, "scan.shard.discovery.intervalmillis")?
                .unwrap_or(Duration::from_secs(10)),
            format,
        })
    }
}

impl KinesisSinkOptions {
    /// Parses the options of a sink table (unknown options, source options
    /// and options of another format are errors; key columns must exist).
    pub fn parse(table: &TableDescriptor) -> Result<Self> {
        let (o, stream, aws, format) = common(table, &SINK_KEYS)?;
        if o.get("format.on-error").is_some() {
            return Err(o.error("option 'format.on-error' applies to sources only"));
        }
        let partition_key: Vec<String> = match o.get("sink.partition-key") {
            None => Vec::new(),
            Some(v) => {
                let cols: Vec<String> = v
                    .split(',')
                    .map(|c| c.trim().to_string())
                    .filter(|c| !c.is_empty())
                    .collect();
                if cols.is_empty() {
                    return Err(o.invalid("sink.partition-key", v, "one or more column names"));
                }
                for c in &cols {
                    if table.schema.field_with_name(c).is_err() {
                        let names: Vec<&str> = table
                            .schema
                            .fields()
                            .iter()
                            .map(|f| f.name().as_str())
                            .collect();
                        return Err(o.error(format!(
                            "'sink.partition-key' names column '{c}', which the table does not have (columns: {})",
                            names.join(", ")
                        )));
                    }
                }
                cols
            }
        };
        let max_batch_records = match o.positive_usize("sink.batch.max-size")? {
            None => MAX_PUT_RECORDS,
            Some(n) if n <= MAX_PUT_RECORDS => n,
            Some(n) => {
                return Err(o.invalid(
                    "sink.batch.max-size",
                    &n.to_string(),
                    "a number from 1 to 500 (PutRecords' limit)",
                ))
            }
        };
        let max_batch_bytes = match o.positive_usize("sink.flush-buffer.size")? {
            None => MAX_PUT_BYTES,
            Some(n) if n <= MAX_PUT_BYTES => n,
            Some(n) => {
                return Err(o.invalid(
                    "sink.flush-buffer.size",
                    &n.to_string(),
                    "a number of bytes up to 5242880 (PutRecords' limit)",
                ))
            }
        };
        Ok(Self {
            stream,
            aws,
            format,
            partition_key,
            key_delimiter: o
                .get("sink.partitioner-field-delimiter")
                .unwrap_or("|")
                .to_string(),
            max_batch_records,
            max_batch_bytes,
            retries: o
                .parse::<u32>("sink.retries", "a whole number")?
                .unwrap_or(10),
            backoff: Backoff {
                base: millis(&o, "sink.retry.backoff.base")?.unwrap_or(Duration::from_millis(100)),
                max: millis(&o, "sink.retry.backoff.max")?.unwrap_or(Duration::from_secs(5)),
                exp: 2.0,
            },
            preserve_key_order: o.bool("sink.preserve-key-order")?.unwrap_or(false),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn table(options: &[(&str, &str)]) -> TableDescriptor {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
        ]));
        let options: BTreeMap<String, String> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        TableDescriptor::new("t", schema, options)
    }

    fn err(r: Result<impl std::fmt::Debug>) -> String {
        match r {
            Ok(v) => format!("<no error: {v:?}>"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn source_defaults_and_flink_names() -> Result<()> {
        let o = KinesisSourceOptions::parse(&table(&[
            ("connector", "kinesis"),
            ("stream", "orders"),
            ("aws.region", "us-east-1"),
            ("aws.endpoint", "http://127.0.0.1:4567"),
            ("aws.credentials.provider", "BASIC"),
            ("aws.credentials.basic.accesskeyid", "x"),
            ("aws.credentials.basic.secretkey", "s3cr3t"),
            ("format", "json"),
        ]))?;
        assert_eq!(o.stream, "orders");
        assert_eq!(o.initial_position, InitialPosition::TrimHorizon);
        assert_eq!(o.max_records, 10_000);
        assert_eq!(o.poll_interval, Duration::from_millis(200));
        assert!(!o.bounded);
        assert!(format!("{:?}", o.aws.credentials).contains("<redacted>"));
        assert!(!format!("{:?}", o.aws.credentials).contains("s3cr3t"));

        let o = KinesisSourceOptions::parse(&table(&[
            ("stream", "s"),
            ("format", "csv"),
            ("scan.stream.initpos", "at_timestamp"),
            ("scan.stream.initpos-timestamp", "2026-01-01 00:00:01.5"),
            ("scan.shard.getrecords.intervalmillis", "10"),
            ("scan.bounded", "true"),
        ]))?;
        assert_eq!(
            o.initial_position,
            InitialPosition::AtTimestamp(1_767_225_601_500)
        );
        assert_eq!(o.poll_interval, Duration::from_millis(10));
        assert!(o.bounded);
        let o = KinesisSourceOptions::parse(&table(&[
            ("stream", "s"),
            ("format", "json"),
            ("scan.stream.initpos", "AT_TIMESTAMP"),
            ("scan.stream.initpos-timestamp", "1767225600.25"),
        ]))?;
        assert_eq!(
            o.initial_position,
            InitialPosition::AtTimestamp(1_767_225_600_250)
        );
        Ok(())
    }

    #[test]
    fn errors_name_the_option() {
        let e = err(KinesisSourceOptions::parse(&table(&[
            ("stream", "s"),
            ("format", "json"),
            ("scan.stream.initpos", "EARLIEST"),
        ])));
        assert!(e.contains("'scan.stream.initpos' = 'EARLIEST'"), "{e}");
        let e = err(KinesisSourceOptions::parse(&table(&[
            ("stream", "s"),
            ("format", "json"),
            ("scan.stream.initpos", "AT_TIMESTAMP"),
        ])));
        assert!(e.contains("needs 'scan.stream.initpos-timestamp'"), "{e}");
        let e = err(KinesisSourceOptions::parse(&table(&[
            ("stream", "s"),
            ("format", "json"),
            ("aws.credentials.provider", "BASIC"),
        ])));
        assert!(
            e.contains("'aws.credentials.basic.accesskeyid' is required"),
            "{e}"
        );
        let e = err(KinesisSourceOptions::parse(&table(&[
            ("stream", "s"),
            ("format", "json"),
            ("sink.partition-key", "k"),
        ])));
        assert!(e.contains("unknown option 'sink.partition-key'"), "{e}");
        let e = err(KinesisSourceOptions::parse(&table(&[
            ("stream", "s"),
            ("format", "json"),
            ("scan.stream.initpo", "LATEST"),
        ])));
        assert!(e.contains("did you mean 'scan.stream.initpos'"), "{e}");
        let e = err(KinesisSinkOptions::parse(&table(&[
            ("stream", "s"),
            ("format", "json"),
            ("sink.partition-key", "nope"),
        ])));
        assert!(e.contains("column 'nope'"), "{e}");
        let e = err(KinesisSinkOptions::parse(&table(&[
            ("stream", "s"),
            ("format", "json"),
            ("sink.batch.max-size", "501"),
        ])));
        assert!(e.contains("1 to 500"), "{e}");
        let e = err(KinesisSourceOptions::parse(&table(&[
            ("stream", "s"),
            ("format", "raw"),
        ])));
        assert!(e.contains("exactly one physical column"), "{e}");
        let e = err(KinesisSourceOptions::parse(&table(&[
            ("stream", "s"),
            ("format", "json"),
            ("aws.endpoint", "localhost:4567"),
        ])));
        assert!(e.contains("http://"), "{e}");
    }

    #[test]
    fn sink_key_columns_and_limits() -> Result<()> {
        let o = KinesisSinkOptions::parse(&table(&[
            ("stream", "out"),
            ("format", "json"),
            ("sink.partition-key", "k, v"),
            ("sink.partitioner-field-delimiter", ":"),
        ]))?;
        assert_eq!(o.partition_key, vec!["k".to_string(), "v".to_string()]);
        assert_eq!(o.key_delimiter, ":");
        assert_eq!(
            (o.max_batch_records, o.max_batch_bytes),
            (500, 5 * 1024 * 1024)
        );
        Ok(())
    }

    #[test]
    fn backoff_grows_to_its_ceiling() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_millis(1000),
            exp: 2.0,
        };
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(10), Duration::from_millis(1000));
        for n in 0..8 {
            let d = b.delay(n);
            assert!(d <= b.ceiling(n) && d >= b.ceiling(n) / 2);
        }
    }
}
