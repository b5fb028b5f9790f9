//! Options of the `kafka` connector, parsed once into [`KafkaOptions`].
//!
//! Names follow Flink's Kafka connector. Options meant for librdkafka are
//! written `'properties.<librdkafka key>'` and passed through unchanged
//! (checked against librdkafka when the table is planned, so a typo is a
//! plan-time error, not a runtime surprise).

use std::collections::BTreeMap;
use std::time::Duration;

use rdkafka::ClientConfig;
use weir_engine::Result;

use crate::format::{CsvOptions, JsonOptions, CSV_OPTION_KEYS, JSON_OPTION_KEYS};
use crate::options::ConnectorOptions;
use crate::TableDescriptor;

/// The record format of message values or keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KafkaFormat {
    /// One JSON object per message (Flink's `json`).
    Json(JsonOptions),
    /// One CSV record per message (Flink's `csv`).
    Csv(CsvOptions),
    /// The message bytes as they are, in a single `STRING` (UTF-8) or
    /// `BYTES` column (Flink's `raw`).
    Raw,
}

impl KafkaFormat {
    /// The option value naming this format.
    pub fn name(&self) -> &'static str {
        match self {
            KafkaFormat::Json(_) => "json",
            KafkaFormat::Csv(_) => "csv",
            KafkaFormat::Raw => "raw",
        }
    }
}

/// Where a source starts reading each partition (`'scan.startup.mode'`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartupMode {
    /// The earliest offset still in the log (`earliest-offset`).
    EarliestOffset,
    /// The end of the log when the job starts (`latest-offset`).
    LatestOffset,
    /// The consumer group's committed offsets (`group-offsets`); a partition
    /// without one follows `'properties.auto.offset.reset'`, or is an error
    /// when that is not set (as in Flink).
    GroupOffsets,
    /// The first record whose timestamp is at or after this epoch
    /// millisecond (`timestamp` with `'scan.startup.timestamp-millis'`).
    Timestamp(i64),
    /// Given offsets per partition (`specific-offsets` with
    /// `'scan.startup.specific-offsets'`); partitions not listed start from
    /// the group's committed offset when there is one, else the earliest.
    SpecificOffsets(BTreeMap<i32, i64>),
}

impl StartupMode {
    /// The option value naming this mode.
    pub fn name(&self) -> &'static str {
        match self {
            StartupMode::EarliestOffset => "earliest-offset",
            StartupMode::LatestOffset => "latest-offset",
            StartupMode::GroupOffsets => "group-offsets",
            StartupMode::Timestamp(_) => "timestamp",
            StartupMode::SpecificOffsets(_) => "specific-offsets",
        }
    }
}

/// Where a bounded source stops reading each partition
/// (`'scan.bounded.mode'`); the stop offset is exclusive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BoundedMode {
    /// Read forever (`unbounded`, the default).
    Unbounded,
    /// Stop at the end of the log as seen when the job starts (`latest-offset`).
    LatestOffset,
    /// Stop at the consumer group's committed offsets (`group-offsets`).
    GroupOffsets,
    /// Stop before the first record whose timestamp is at or after this
    /// epoch millisecond (`timestamp` with `'scan.bounded.timestamp-millis'`).
    Timestamp(i64),
    /// Stop at given offsets (`specific-offsets` with
    /// `'scan.bounded.specific-offsets'`); partitions not listed stop at the
    /// end of the log as seen when the job starts.
    SpecificOffsets(BTreeMap<i32, i64>),
}

impl BoundedMode {
    /// True unless [`BoundedMode::Unbounded`].
    pub fn is_bounded(&self) -> bool {
        !matches!(self, BoundedMode::Unbounded)
    }
}

/// What a source does with a message it cannot decode
/// (`'format.on-error'`, or `dead-letter` implied by `'dead-letter.topic'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMalformed {
    /// Count it, log it with `topic/partition@offset`, skip it.
    Skip,
    /// Fail the job with an error naming `topic/partition@offset`.
    Fail,
    /// Count and log it, and copy the original message (key, value,
    /// headers, plus `weir.error.*` headers) to `'dead-letter.topic'`.
    DeadLetter,
}

/// Which columns a message value holds (`'value.fields-include'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldsInclude {
    /// Every physical column, key columns included (`ALL`, the default).
    All,
    /// Every physical column except the key columns (`EXCEPT_KEY`).
    ExceptKey,
}

/// How a sink chooses partitions (`'sink.partitioner'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkPartitioner {
    /// Kafka's default: murmur2 of the key (Java-client compatible), spread
    /// at random when there is no key (`default`).
    Default,
    /// Sink subtask `s` writes partition `s % partitions` (`fixed`).
    Fixed,
    /// Rows go to partitions in turn (`round-robin`).
    RoundRobin,
}

/// What a sink promises about delivery (`'sink.delivery-guarantee'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeliveryGuarantee {
    /// No flush on checkpoint barriers (`none`); the end of input is still
    /// flushed and delivery failures are still job errors.
    None,
    /// Every barrier and the end of input wait for all deliveries
    /// (`at-least-once`, the default). With the idempotent producer there
    /// are no duplicates from producer retries.
    AtLeastOnce,
    /// Kafka transactions committed when a checkpoint completes
    /// (`exactly-once`; needs checkpoints and
    /// `'sink.transactional-id-prefix'`). Readers must use
    /// `isolation.level=read_committed`.
    ExactlyOnce,
}

/// The message key of a table: which columns, in which format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyOptions {
    /// The key columns, in `'key.fields'` order (table column names).
    pub fields: Vec<String>,
    /// The key format (`'key.format'`).
    pub format: KafkaFormat,
    /// Prefix of key column names that is not part of the key's field names
    /// (`'key.fields-prefix'`).
    pub prefix: String,
}

/// Typed options of a `kafka` table.
///
/// | option | meaning | default |
/// |---|---|---|
/// | `'topic'` | topic name; a source may list several separated by `;` | required |
/// | `'properties.bootstrap.servers'` | `host:port[,host:port…]` | required |
/// | `'properties.group.id'` | consumer group: offsets are committed to it and read by `group-offsets` | none |
/// | `'properties.*'` | any librdkafka setting, passed through (checked at plan time) | – |
/// | `'format'` (or `'value.format'`) | `json`, `csv` or `raw` | required |
/// | `'json.*'`, `'csv.*'` | format options, as for the filesystem connector | – |
/// | `'key.format'` | `json`, `csv` or `raw`, with `'key.json.*'` / `'key.csv.*'` | required with `'key.fields'` |
/// | `'key.fields'` | key columns, `;`-separated; a sink writes them as the message key, a source with `EXCEPT_KEY` reads them from it | none |
/// | `'key.fields-prefix'` | prefix of key column names not part of the key's field names | none |
/// | `'value.fields-include'` | `ALL` or `EXCEPT_KEY` | `ALL` |
/// | `'scan.startup.mode'` | `earliest-offset`, `latest-offset`, `group-offsets`, `timestamp`, `specific-offsets` | `group-offsets` with a group id, else `earliest-offset` |
/// | `'scan.startup.specific-offsets'` | `partition:0,offset:42;partition:1,offset:300` | – |
/// | `'scan.startup.timestamp-millis'` | epoch milliseconds | – |
/// | `'scan.bounded.mode'` | `unbounded`, `latest-offset`, `group-offsets`, `timestamp`, `specific-offsets` | `unbounded` |
/// | `'scan.bounded.specific-offsets'`, `'scan.bounded.timestamp-millis'` | as for startup | – |
/// | `'format.on-error'` | `skip`, `fail` or `dead-letter` (Flink's `'json.ignore-parse-errors'` is accepted too) | `dead-letter` with a dead-letter topic, else `skip` |
/// | `'dead-letter.topic'` | where malformed messages are copied | none |
/// | `'batch.size'` | maximum rows per batch a source emits | 8192 |
/// | `'scan.startup.timeout'` | how long a job start waits for the topic's partition list when the broker is unreachable | 60 s |
/// | `'sink.delivery-guarantee'` | `at-least-once` or `none` | `at-least-once` |
/// | `'sink.partitioner'` | `default`, `fixed` or `round-robin` | `default` |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaOptions {
    /// The topics (a sink has exactly one).
    pub topics: Vec<String>,
    /// `'properties.bootstrap.servers'`.
    pub bootstrap_servers: String,
    /// `'properties.group.id'`.
    pub group_id: Option<String>,
    /// Other `'properties.*'`, without the prefix, for librdkafka.
    pub properties: BTreeMap<String, String>,
    /// The value format.
    pub format: KafkaFormat,
    /// The message key, if the table has one.
    pub key: Option<KeyOptions>,
    /// Which columns the value holds.
    pub value_fields_include: FieldsInclude,
    /// Where a source starts.
    pub startup: StartupMode,
    /// Where a source stops.
    pub bounded: BoundedMode,
    /// What a source does with malformed messages.
    pub on_error: OnMalformed,
    /// Where malformed messages are copied (with [`OnMalformed::DeadLetter`]).
    pub dead_letter_topic: Option<String>,
    /// Maximum rows per batch a source emits.
    pub batch_size: usize,
    /// How long a job start waits for partition metadata.
    pub startup_timeout: Duration,
    /// Whether a source commits the offsets it emitted to the group
    /// (a group id is set and `'properties.enable.auto.commit'` is not `false`).
    pub commit_offsets: bool,
    /// How often offsets are committed (`'properties.auto.commit.interval.ms'`)
    /// when the job runs without checkpoints.
    pub commit_interval: Duration,
    /// With checkpoints, commit the offsets of each completed checkpoint
    /// instead of every `commit_interval`
    /// (`'properties.commit.offsets.on.checkpoint'`, default true, as
    /// Flink's Kafka source).
    pub commit_on_checkpoint: bool,
    /// The sink's delivery guarantee.
    pub delivery_guarantee: DeliveryGuarantee,
    /// `'sink.transactional-id-prefix'` (exactly-once sinks only).
    pub transactional_id_prefix: Option<String>,
    /// How a sink picks partitions.
    pub partitioner: SinkPartitioner,
}

/// Default rows per batch.
pub const DEFAULT_BATCH_SIZE: usize = 8192;

/// Default time a job start waits for partition metadata.
pub const DEFAULT_STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// Default offset commit interval (librdkafka's `auto.commit.interval.ms`).
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_secs(5);

/// The option keys the `kafka` connector knows (besides `'properties.*'`
/// and the format options).
pub const KAFKA_OPTION_KEYS: [&str; 22] = [
    "topic",
    "format",
    "value.format",
    "key.format",
    "key.fields",
    "key.fields-prefix",
    "value.fields-include",
    "scan.startup.mode",
    "scan.startup.specific-offsets",
    "scan.startup.timestamp-millis",
    "scan.bounded.mode",
    "scan.bounded.specific-offsets",
    "scan.bounded.timestamp-millis",
    "scan.startup.timeout",
    "scan.topic-partition-discovery.interval",
    "format.on-error",
    "dead-letter.topic",
    "batch.size",
    "sink.delivery-guarantee",
    "sink.partitioner",
    "sink.transactional-id-prefix",
    "topic-pattern",
];

/// Prefixes of option keys the `kafka` connector knows.
pub const KAFKA_OPTION_PREFIXES: [&str; 5] = [
    "properties.",
    "key.json.",
    "key.csv.",
    "value.json.",
    "value.csv.",
];

/// librdkafka settings Weir manages itself: a `'properties.*'` with one of
/// these names is an error saying which option to use instead.
const MANAGED_PROPERTIES: [(&str, &str); 3] = [
    (
        "enable.auto.offset.store",
        "Weir stores and commits the offsets it has emitted itself",
    ),
    (
        "enable.partition.eof",
        "Weir enables it itself for bounded reads",
    ),
    (
        "transactional.id",
        "Weir derives it from 'sink.transactional-id-prefix' ('sink.delivery-guarantee' = 'exactly-once')",
    ),
];

impl KafkaOptions {
    /// Parses the options of `table`. Unknown options, options of another
    /// format than `'format'`, and librdkafka settings librdkafka rejects
    /// are [`weir_engine::WeirError::Config`] errors naming the option.
    pub fn parse(table: &TableDescriptor) -> Result<Self> {
        let mut known: Vec<&str> = KAFKA_OPTION_KEYS.to_vec();
        known.extend(JSON_OPTION_KEYS);
        known.extend(CSV_OPTION_KEYS);
        known.extend(["json.ignore-parse-errors", "csv.ignore-parse-errors"]);
        let o = ConnectorOptions::new(table, "kafka", &known, &KAFKA_OPTION_PREFIXES)?;

        if o.get("topic-pattern").is_some() {
            return Err(o.error(
                "option 'topic-pattern' is not supported by connector 'kafka': list the topics in 'topic', separated by ';'",
            ));
        }
        let raw_topic = o.required("topic")?;
        let topics: Vec<String> = raw_topic
            .split(';')
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
        if topics.is_empty() {
            return Err(o.invalid(
                "topic",
                raw_topic,
                "a topic name (or several, separated by ';')",
            ));
        }

        // librdkafka pass-through.
        let mut properties = BTreeMap::new();
        for (k, v) in &table.options {
            if let Some(p) = k.strip_prefix("properties.") {
                properties.insert(p.to_string(), v.clone());
            }
        }
        let bootstrap_servers = properties
            .remove("bootstrap.servers")
            .filter(|s| !s.trim().is_empty())
            .ok_or_else(|| {
                o.error("option 'properties.bootstrap.servers' is required for connector 'kafka'")
            })?;
        let group_id = properties.remove("group.id").filter(|g| !g.is_empty());
        // A Flink Kafka source property, not a librdkafka one.
        let commit_on_checkpoint = match properties.remove("commit.offsets.on.checkpoint") {
            None => true,
            Some(v) => match v.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => {
                    return Err(o.invalid(
                        "properties.commit.offsets.on.checkpoint",
                        &v,
                        "'true' or 'false'",
                    ))
                }
            },
        };
        for (p, why) in MANAGED_PROPERTIES {
            if properties.contains_key(p) {
                return Err(o.error(format!("option 'properties.{p}' cannot be set: {why}")));
            }
        }
        check_librdkafka_properties(&o, &bootstrap_servers, &properties)?;
        let commit_offsets = group_id.is_some()
            && !properties
                .get("enable.auto.commit")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"));
        let commit_interval = match properties.get("auto.commit.interval.ms") {
            None => DEFAULT_COMMIT_INTERVAL,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(o.invalid(
                        "properties.auto.commit.interval.ms",
                        v,
                        "a number of milliseconds of at least 1",
                    ))
                }
            },
        };

        // Formats.
        let format_key = match (o.get("format"), o.get("value.format")) {
            (Some(_), Some(_)) => {
                return Err(o.error("options 'format' and 'value.format' are the same; give one"))
            }
            (_, Some(_)) => "value.format",
            _ => "format",
        };
        o.required(format_key)?;
        let value_options = prefixed_view(&table.options, "value.", &["json.", "csv."]);
        let vo = ConnectorOptions::from_map(&table.name, &value_options, "kafka", &known, &[])?;
        let format = parse_format(&o, &vo, format_key)?;
        check_format_options(&o, &table.options, "", format.name())?;
        check_format_options(&o, &table.options, "value.", format.name())?;

        let key = match o.get("key.fields") {
            None => {
                for k in ["key.format", "key.fields-prefix"] {
                    if o.get(k).is_some() {
                        return Err(o.error(format!("option '{k}' needs 'key.fields'")));
                    }
                }
                if table.options.keys().any(|k| k.starts_with("key.")) {
                    return Err(o.error("options 'key.*' need 'key.fields'"));
                }
                None
            }
            Some(raw) => {
                let fields: Vec<String> = raw
                    .split(';')
                    .map(|f| f.trim().to_string())
                    .filter(|f| !f.is_empty())
                    .collect();
                if fields.is_empty() {
                    return Err(o.invalid("key.fields", raw, "column names separated by ';'"));
                }
                if o.get("key.format").is_none() {
                    return Err(o.error(
                        "option 'key.fields' needs 'key.format' ('json', 'csv' or 'raw'), as in Flink",
                    ));
                }
                let key_options = prefixed_view(&table.options, "key.", &["json.", "csv."]);
                let ko =
                    ConnectorOptions::from_map(&table.name, &key_options, "kafka", &known, &[])?;
                let format = parse_format(&o, &ko, "key.format")?;
                check_format_options(&o, &table.options, "key.", format.name())?;
                Some(KeyOptions {
                    fields,
                    format,
                    prefix: o.get("key.fields-prefix").unwrap_or("").to_string(),
                })
            }
        };
        let value_fields_include = match o.choice("value.fields-include", &["ALL", "EXCEPT_KEY"])? {
            Some("EXCEPT_KEY") => {
                if key.is_none() {
                    return Err(o.error("'value.fields-include' = 'EXCEPT_KEY' needs 'key.fields'"));
                }
                FieldsInclude::ExceptKey
            }
            _ => FieldsInclude::All,
        };
        if key.as_ref().is_some_and(|k| !k.prefix.is_empty())
            && value_fields_include != FieldsInclude::ExceptKey
        {
            return Err(o.error(
                "option 'key.fields-prefix' needs 'value.fields-include' = 'EXCEPT_KEY', as in Flink",
            ));
        }

        // Source.
        let startup = match o.choice(
            "scan.startup.mode",
            &[
                "earliest-offset",
                "latest-offset",
                "group-offsets",
                "timestamp",
                "specific-offsets",
            ],
        )? {
            Some("latest-offset") => StartupMode::LatestOffset,
            Some("group-offsets") => {
                if group_id.is_none() {
                    return Err(o.error(
                        "'scan.startup.mode' = 'group-offsets' needs 'properties.group.id'",
                    ));
                }
                StartupMode::GroupOffsets
            }
            Some("timestamp") => {
                StartupMode::Timestamp(timestamp_millis(&o, "scan.startup.timestamp-millis")?)
            }
            Some("specific-offsets") => {
                StartupMode::SpecificOffsets(specific_offsets(&o, "scan.startup.specific-offsets")?)
            }
            Some(_) => StartupMode::EarliestOffset,
            // Flink's default is group-offsets; without a group that has
            // nothing to read, so start from the beginning.
            None if group_id.is_some() => StartupMode::GroupOffsets,
            None => StartupMode::EarliestOffset,
        };
        unused_unless(
            &o,
            "scan.startup.timestamp-millis",
            "scan.startup.mode",
            "timestamp",
            startup.name(),
        )?;
        unused_unless(
            &o,
            "scan.startup.specific-offsets",
            "scan.startup.mode",
            "specific-offsets",
            startup.name(),
        )?;
        let bounded_name = o
            .choice(
                "scan.bounded.mode",
                &[
                    "unbounded",
                    "latest-offset",
                    "group-offsets",
                    "timestamp",
                    "specific-offsets",
                ],
            )?
            .unwrap_or("unbounded");
        let bounded = match bounded_name {
            "latest-offset" => BoundedMode::LatestOffset,
            "group-offsets" => {
                if group_id.is_none() {
                    return Err(o.error(
                        "'scan.bounded.mode' = 'group-offsets' needs 'properties.group.id'",
                    ));
                }
                BoundedMode::GroupOffsets
            }
            "timestamp" => {
                BoundedMode::Timestamp(timestamp_millis(&o, "scan.bounded.timestamp-millis")?)
            }
            "specific-offsets" => {
                BoundedMode::SpecificOffsets(specific_offsets(&o, "scan.bounded.specific-offsets")?)
            }
            _ => BoundedMode::Unbounded,
        };
        unused_unless(
            &o,
            "scan.bounded.timestamp-millis",
            "scan.bounded.mode",
            "timestamp",
            bounded_name,
        )?;
        unused_unless(
            &o,
            "scan.bounded.specific-offsets",
            "scan.bounded.mode",
            "specific-offsets",
            bounded_name,
        )?;
        if let Some(v) = o.get("scan.topic-partition-discovery.interval") {
            let disabled = matches!(v.trim(), "0" | "-1" | "" | "0 ms" | "0ms" | "0 s" | "0s")
                || v.trim().starts_with('-');
            if !disabled {
                tracing::warn!(
                    table = %table.name,
                    "'scan.topic-partition-discovery.interval' = '{v}': Weir reads the partitions that exist when the job starts and does not discover new ones"
                );
            }
        }

        // Bad input.
        let dead_letter_topic = o
            .get("dead-letter.topic")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty());
        let on_error = parse_on_error(&o, format.name(), dead_letter_topic.is_some())?;

        let batch_size = o
            .positive_usize("batch.size")?
            .unwrap_or(DEFAULT_BATCH_SIZE);
        let startup_timeout = match o.get("scan.startup.timeout") {
            None => DEFAULT_STARTUP_TIMEOUT,
            Some(v) => parse_duration(v).ok_or_else(|| {
                o.invalid(
                    "scan.startup.timeout",
                    v,
                    "a duration such as '60 s' or '500 ms'",
                )
            })?,
        };

        // Sink.
        let delivery_guarantee = match o.choice(
            "sink.delivery-guarantee",
            &["at-least-once", "exactly-once", "none"],
        )? {
            Some("none") => DeliveryGuarantee::None,
            Some("exactly-once") => DeliveryGuarantee::ExactlyOnce,
            _ => DeliveryGuarantee::AtLeastOnce,
        };
        let transactional_id_prefix = o
            .get("sink.transactional-id-prefix")
            .map(|v| v.trim().to_string());
        match (&delivery_guarantee, &transactional_id_prefix) {
            (DeliveryGuarantee::ExactlyOnce, None) => {
                return Err(o.error(
                    "'sink.delivery-guarantee' = 'exactly-once' needs 'sink.transactional-id-prefix', unique to this job and sink on the cluster (its transactional ids are '<prefix>-<subtask>-0' and '-1')",
                ))
            }
            (DeliveryGuarantee::ExactlyOnce, Some(p)) if p.is_empty() => {
                return Err(o.error("'sink.transactional-id-prefix' is empty"))
            }
            (DeliveryGuarantee::ExactlyOnce, Some(_)) | (_, None) => {}
            (_, Some(_)) => {
                return Err(o.error(
                    "option 'sink.transactional-id-prefix' is for 'sink.delivery-guarantee' = 'exactly-once'",
                ))
            }
        }
        let partitioner =
            match o.choice("sink.partitioner", &["default", "fixed", "round-robin"])? {
                Some("fixed") => SinkPartitioner::Fixed,
                Some("round-robin") => SinkPartitioner::RoundRobin,
                _ => SinkPartitioner::Default,
            };

        Ok(Self {
            topics,
            bootstrap_servers,
            group_id,
            properties,
            format,
            key,
            value_fields_include,
            startup,
            bounded,
            on_error,
            dead_letter_topic,
            batch_size,
            startup_timeout,
            commit_offsets,
            commit_interval,
            commit_on_checkpoint,
            delivery_guarantee,
            transactional_id_prefix,
            partitioner,
        })
    }

    /// The librdkafka configuration shared by every client of this table:
    /// the bootstrap servers, the group id and the pass-through properties.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers);
        if let Some(g) = &self.group_id {
            c.set("group.id", g);
        }
        for (k, v) in &self.properties {
            c.set(k, v);
        }
        c
    }
}

/// Checks the `'properties.*'` against librdkafka (unknown names, bad
/// values) without connecting anywhere.
fn check_librdkafka_properties(
    o: &ConnectorOptions<'_>,
    bootstrap: &str,
    properties: &BTreeMap<String, String>,
) -> Result<()> {
    for (k, v) in properties {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", bootstrap);
        c.set(k, v);
        if let Err(e) = c.create_native_config() {
            return Err(o.error(format!(
                "option 'properties.{k}' = '{v}' is rejected by librdkafka: {e} (librdkafka settings are listed at https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md)"
            )));
        }
    }
    Ok(())
}

/// The options of `map` under `prefix` (`value.` or `key.`) for the format
/// sub-prefixes given, with `prefix` removed (`key.json.x` → `json.x`).
fn prefixed_view(
    map: &BTreeMap<String, String>,
    prefix: &str,
    sub: &[&str],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for (k, v) in map {
        if let Some(rest) = k.strip_prefix(prefix) {
            if sub.iter().any(|s| rest.starts_with(s)) {
                out.insert(rest.to_string(), v.clone());
            }
        } else if prefix == "value." && sub.iter().any(|s| k.starts_with(s)) {
            out.insert(k.clone(), v.clone());
        }
    }
    out
}

/// Parses a format named by `key` of `o`, with its options read from
/// `fo` (a view where the format options have no prefix).
fn parse_format(
    o: &ConnectorOptions<'_>,
    fo: &ConnectorOptions<'_>,
    key: &str,
) -> Result<KafkaFormat> {
    Ok(match o.choice(key, &["json", "csv", "raw"])? {
        Some("csv") => KafkaFormat::Csv(CsvOptions::parse(fo)?),
        Some("raw") => KafkaFormat::Raw,
        _ => KafkaFormat::Json(JsonOptions::parse(fo)?),
    })
}

/// Options `<prefix>json.*` / `<prefix>csv.*` must match the format.
fn check_format_options(
    o: &ConnectorOptions<'_>,
    options: &BTreeMap<String, String>,
    prefix: &str,
    format: &str,
) -> Result<()> {
    for key in options.keys() {
        let Some(rest) = key.strip_prefix(prefix) else {
            continue;
        };
        for other in ["json", "csv"] {
            if rest.starts_with(&format!("{other}.")) && format != other {
                let which = if prefix == "key." {
                    "'key.format'"
                } else {
                    "'format'"
                };
                return Err(o.error(format!(
                    "option '{key}' applies to format '{other}', but {which} is '{format}'"
                )));
            }
        }
    }
    Ok(())
}

/// An option that only means something for one value of a mode option.
fn unused_unless(
    o: &ConnectorOptions<'_>,
    key: &str,
    mode_key: &str,
    mode: &str,
    actual: &str,
) -> Result<()> {
    if o.get(key).is_some() && actual != mode {
        return Err(o.error(format!(
            "option '{key}' needs '{mode_key}' = '{mode}' (it is '{actual}')"
        )));
    }
    Ok(())
}

fn timestamp_millis(o: &ConnectorOptions<'_>, key: &str) -> Result<i64> {
    o.required(key)?;
    match o.parse::<i64>(key, "epoch milliseconds (a whole number of at least 0)")? {
        Some(ms) if ms >= 0 => Ok(ms),
        _ => Err(o.invalid(
            key,
            o.get(key).unwrap_or(""),
            "epoch milliseconds (a whole number of at least 0)",
        )),
    }
}

/// Parses Flink's `partition:0,offset:42;partition:1,offset:300`.
fn specific_offsets(o: &ConnectorOptions<'_>, key: &str) -> Result<BTreeMap<i32, i64>> {
    let raw = o.required(key)?;
    let expected = "'partition:<n>,offset:<n>' entries separated by ';', e.g. 'partition:0,offset:42;partition:1,offset:300'";
    let mut out = BTreeMap::new();
    for entry in raw.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let mut partition = None;
        let mut offset = None;
        for part in entry.split(',') {
            let (k, v) = part
                .split_once(':')
                .ok_or_else(|| o.invalid(key, raw, expected))?;
            match k.trim() {
                "partition" => partition = v.trim().parse::<i32>().ok().filter(|p| *p >= 0),
                "offset" => offset = v.trim().parse::<i64>().ok().filter(|p| *p >= 0),
                _ => return Err(o.invalid(key, raw, expected)),
            }
        }
        match (partition, offset) {
            (Some(p), Some(off)) => {
                if out.insert(p, off).is_some() {
                    return Err(o.error(format!("option '{key}' lists partition {p} twice")));
                }
            }
            _ => return Err(o.invalid(key, raw, expected)),
        }
    }
    if out.is_empty() {
        return Err(o.invalid(key, raw, expected));
    }
    Ok(out)
}

fn parse_on_error(
    o: &ConnectorOptions<'_>,
    format: &str,
    has_dead_letter_topic: bool,
) -> Result<OnMalformed> {
    let explicit = o
        .choice("format.on-error", &["skip", "fail", "dead-letter"])?
        .map(|c| match c {
            "fail" => OnMalformed::Fail,
            "dead-letter" => OnMalformed::DeadLetter,
            _ => OnMalformed::Skip,
        });
    let flink_key = format!("{format}.ignore-parse-errors");
    let flink = o.bool(&flink_key)?.map(|ignore| {
        if ignore {
            OnMalformed::Skip
        } else {
            OnMalformed::Fail
        }
    });
    for other in ["json", "csv"] {
        let k = format!("{other}.ignore-parse-errors");
        if other != format && o.get(&k).is_some() {
            return Err(o.error(format!(
                "option '{k}' applies to format '{other}', but 'format' is '{format}'"
            )));
        }
    }
    let chosen = match (explicit, flink) {
        (Some(a), Some(b)) if a != b => {
            return Err(o.error(format!(
                "options 'format.on-error' and '{flink_key}' contradict each other"
            )))
        }
        (Some(a), _) => Some(a),
        (None, b) => b,
    };
    match (chosen, has_dead_letter_topic) {
        (Some(OnMalformed::DeadLetter), false) => Err(o.error(
            "'format.on-error' = 'dead-letter' needs 'dead-letter.topic'",
        )),
        (Some(m), true) if m != OnMalformed::DeadLetter => Err(o.error(format!(
            "option 'dead-letter.topic' is set but malformed messages are {} ('format.on-error' = '{}')",
            if m == OnMalformed::Fail { "failing the job" } else { "skipped" },
            if m == OnMalformed::Fail { "fail" } else { "skip" },
        ))),
        (Some(m), _) => Ok(m),
        (None, true) => Ok(OnMalformed::DeadLetter),
        (None, false) => Ok(OnMalformed::Skip),
    }
}

/// Parses a duration: `60 s`, `500ms`, `2 min`, `1h`, or milliseconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.trim().parse().ok()?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n * 1000.0,
        "min" | "mins" | "minute" | "minutes" | "m" => n * 60_000.0,
        "h" | "hour" | "hours" => n * 3_600_000.0,
        _ => return None,
    };
    (ms.is_finite() && ms >= 0.0).then(|| Duration::from_millis(ms as u64))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn table(options: &[(&str, &str)]) -> TableDescriptor {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        let mut m: BTreeMap<String, String> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        m.insert("connector".into(), "kafka".into());
        m.entry("topic".into()).or_insert_with(|| "t".into());
        m.entry("properties.bootstrap.servers".into())
            .or_insert_with(|| "127.0.0.1:9".into());
        TableDescriptor::new("t", schema, m)
    }

    fn err(options: &[(&str, &str)]) -> String {
        match KafkaOptions::parse(&table(options)) {
            Ok(_) => "<no error>".into(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_and_flink_names() -> Result<()> {
        let o = KafkaOptions::parse(&table(&[("format", "json")]))?;
        assert_eq!(o.topics, vec!["t".to_string()]);
        assert_eq!(o.startup, StartupMode::EarliestOffset);
        assert_eq!(o.bounded, BoundedMode::Unbounded);
        assert_eq!(o.on_error, OnMalformed::Skip);
        assert!(!o.commit_offsets);
        let o = KafkaOptions::parse(&table(&[
            ("format", "csv"),
            ("topic", "a; b"),
            ("properties.group.id", "g"),
            ("properties.fetch.min.bytes", "1000"),
            ("scan.startup.mode", "specific-offsets"),
            (
                "scan.startup.specific-offsets",
                "partition:0,offset:42; partition:1,offset:300",
            ),
            ("scan.bounded.mode", "latest-offset"),
            ("dead-letter.topic", "dlq"),
            ("csv.field-delimiter", ";"),
        ]))?;
        assert_eq!(o.topics, vec!["a".to_string(), "b".to_string()]);
        assert_eq!(o.group_id.as_deref(), Some("g"));
        assert_eq!(
            o.properties.get("fetch.min.bytes").map(String::as_str),
            Some("1000")
        );
        assert_eq!(
            o.startup,
            StartupMode::SpecificOffsets([(0, 42), (1, 300)].into_iter().collect())
        );
        assert_eq!(o.bounded, BoundedMode::LatestOffset);
        assert_eq!(o.on_error, OnMalformed::DeadLetter);
        assert!(o.commit_offsets);
        assert!(matches!(o.format, KafkaFormat::Csv(ref c) if c.field_delimiter == b';'));
        let o = KafkaOptions::parse(&table(&[("format", "json"), ("properties.group.id", "g")]))?;
        assert_eq!(o.startup, StartupMode::GroupOffsets);
        assert!(o.commit_on_checkpoint);
        let o = KafkaOptions::parse(&table(&[
            ("format", "json"),
            ("properties.group.id", "g"),
            ("properties.commit.offsets.on.checkpoint", "FALSE"),
        ]))?;
        assert!(!o.commit_on_checkpoint);
        assert!(
            !o.properties.contains_key("commit.offsets.on.checkpoint"),
            "not passed to librdkafka"
        );
        Ok(())
    }

    #[test]
    fn commit_offsets_on_checkpoint_is_a_boolean() {
        assert!(err(&[
            ("format", "json"),
            ("properties.commit.offsets.on.checkpoint", "sometimes")
        ])
        .contains("'properties.commit.offsets.on.checkpoint' = 'sometimes' is not valid for connector 'kafka': expected 'true' or 'false'"));
    }

    #[test]
    fn errors_name_the_option() {
        assert!(err(&[("format", "json"), ("scan.startup.mod", "x")])
            .contains("unknown option 'scan.startup.mod' for connector 'kafka' (did you mean 'scan.startup.mode'?"));
        assert!(err(&[("format", "avro")]).contains("'format' = 'avro' is not valid"));
        assert!(err(&[
            ("format", "json"),
            ("scan.startup.mode", "specific-offsets")
        ])
        .contains("option 'scan.startup.specific-offsets' is required"));
        assert!(err(&[
            ("format", "json"),
            ("scan.startup.mode", "specific-offsets"),
            ("scan.startup.specific-offsets", "0:42")
        ])
        .contains("expected 'partition:<n>,offset:<n>'"));
        assert!(
            err(&[("format", "json"), ("properties.no.such.thing", "1")])
                .contains("'properties.no.such.thing' = '1' is rejected by librdkafka")
        );
        assert!(
            err(&[("format", "json"), ("format.on-error", "dead-letter")])
                .contains("needs 'dead-letter.topic'")
        );
        assert!(err(&[("format", "json"), ("key.fields", "a")]).contains("needs 'key.format'"));
        assert!(err(&[("format", "json"), ("csv.field-delimiter", ";")])
            .contains("applies to format 'csv'"));
        assert!(err(&[
            ("format", "json"),
            ("sink.delivery-guarantee", "exactly-once")
        ])
        .contains("needs 'sink.transactional-id-prefix'"));
        assert!(
            err(&[("format", "json"), ("scan.startup.mode", "group-offsets")])
                .contains("needs 'properties.group.id'")
        );
        assert!(
            err(&[("format", "json"), ("scan.startup.timestamp-millis", "5")])
                .contains("needs 'scan.startup.mode' = 'timestamp'")
        );
        assert!(
            err(&[("format", "json"), ("properties.bootstrap.servers", "")])
                .contains("'properties.bootstrap.servers' is required")
        );
        assert!(err(&[
            ("format", "json"),
            ("properties.enable.auto.offset.store", "true")
        ])
        .contains("cannot be set"));
    }

    #[test]
    fn key_options_have_their_own_format() -> Result<()> {
        let o = KafkaOptions::parse(&table(&[
            ("value.format", "json"),
            ("key.format", "csv"),
            ("key.csv.field-delimiter", "|"),
            ("key.fields", "a"),
            ("value.fields-include", "EXCEPT_KEY"),
        ]))?;
        let key = o
            .key
            .ok_or_else(|| weir_engine::WeirError::Internal("no key".into()))?;
        assert_eq!(key.fields, vec!["a".to_string()]);
        assert!(matches!(key.format, KafkaFormat::Csv(ref c) if c.field_delimiter == b'|'));
        assert_eq!(o.value_fields_include, FieldsInclude::ExceptKey);
        Ok(())
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60 s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("250"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2 min"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("soon"), None);
    }
}
