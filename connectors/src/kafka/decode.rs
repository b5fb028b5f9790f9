//! Decoding Kafka messages of one partition into Arrow batches of a
//! table's source schema: the value (and, with `EXCEPT_KEY`, the key) in
//! its format, then the metadata columns.
//!
//! A message is appended whole or not at all: when its key or value cannot
//! be decoded the reason is returned and no column gets a row.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryBuilder, BooleanArray, Int32Array, Int64Builder, MapBuilder,
    MapFieldNames, StringArray, StringBuilder, TimestampMillisecondArray,
};
use arrow::datatypes::{DataType, Field, Fields, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use rdkafka::message::{Headers, Message, Timestamp};
use weir_engine::{Result, WeirError};

use super::options::{FieldsInclude, KafkaFormat, KafkaOptions};
use crate::format::csv::CsvDecoder;
use crate::format::json::JsonDecoder;
use crate::{MetadataColumn, TableDescriptor};

/// A metadata key a Kafka source can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetadataKey {
    /// `topic`: the topic name, `STRING`.
    Topic,
    /// `partition`: the partition number, `INT`.
    Partition,
    /// `offset`: the message offset, `BIGINT`.
    Offset,
    /// `timestamp`: the message timestamp, `TIMESTAMP_LTZ(3)` (NULL when
    /// the message has none).
    Timestamp,
    /// `timestamp-type`: `NoTimestampType`, `CreateTime` or `LogAppendTime`.
    TimestampType,
    /// `key`: the raw message key, `BYTES` (or `STRING`, UTF-8 checked).
    Key,
    /// `headers`: `MAP<STRING, BYTES>` (header names to values; the last
    /// value wins when a name repeats).
    Headers,
}

impl MetadataKey {
    /// Every key, with its name and Arrow type.
    pub fn all() -> [(MetadataKey, &'static str, DataType); 7] {
        [
            (MetadataKey::Topic, "topic", DataType::Utf8),
            (MetadataKey::Partition, "partition", DataType::Int32),
            (MetadataKey::Offset, "offset", DataType::Int64),
            (
                MetadataKey::Timestamp,
                "timestamp",
                DataType::Timestamp(TimeUnit::Millisecond, Some(Arc::from("UTC"))),
            ),
            (MetadataKey::TimestampType, "timestamp-type", DataType::Utf8),
            (MetadataKey::Key, "key", DataType::Binary),
            (MetadataKey::Headers, "headers", headers_type()),
        ]
    }

    /// The key named `name`.
    pub fn from_name(name: &str) -> Option<MetadataKey> {
        Self::all()
            .into_iter()
            .find(|(_, n, _)| *n == name)
            .map(|(k, _, _)| k)
    }
}

/// The Arrow type of the `headers` metadata column: `MAP<STRING, BYTES>`
/// as `Map(entries: Struct(key: Utf8 not null, value: Binary))`.
pub fn headers_type() -> DataType {
    DataType::Map(
        Arc::new(Field::new(
            "entries",
            DataType::Struct(Fields::from(vec![
                Field::new("key", DataType::Utf8, false),
                Field::new("value", DataType::Binary, true),
            ])),
            false,
        )),
        false,
    )
}

/// Where a physical column of the source schema comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ColumnFrom {
    /// Column `i` of the decoded value.
    Value(usize),
    /// Column `i` of the decoded key.
    Key(usize),
}

/// How messages of a table become rows: shared by all partitions' decoders.
#[derive(Debug)]
pub struct RecordLayout {
    /// What the source emits: physical then metadata columns.
    schema: SchemaRef,
    /// The columns decoded from the value.
    value_schema: SchemaRef,
    /// Value columns the job never reads (left NULL by the JSON decoder).
    value_unread: Vec<String>,
    /// The columns decoded from the key (`EXCEPT_KEY` only).
    key_schema: Option<SchemaRef>,
    /// For each physical column, where it comes from.
    physical_from: Vec<ColumnFrom>,
    /// The metadata columns, in declared order.
    metadata: Vec<(MetadataKey, DataType)>,
    value_format: KafkaFormat,
    key_format: Option<KafkaFormat>,
    batch_size: usize,
}

impl RecordLayout {
    /// Checks the table's columns against the formats and metadata keys.
    pub fn new(table: &TableDescriptor, options: &KafkaOptions) -> Result<Self> {
        let physical = &table.schema;
        let mut key_cols: Vec<usize> = Vec::new();
        let mut key_fields: Vec<Field> = Vec::new();
        if let (Some(key), FieldsInclude::ExceptKey) = (&options.key, options.value_fields_include)
        {
            for name in &key.fields {
                let i = physical.index_of(name).map_err(|_| {
                    WeirError::Config(format!(
                        "table {}: 'key.fields' names column '{name}', which the table does not have",
                        table.name
                    ))
                })?;
                let f = physical.field(i);
                let key_name = name.strip_prefix(key.prefix.as_str()).unwrap_or(name);
                key_cols.push(i);
                key_fields.push(Field::new(key_name, f.data_type().clone(), f.is_nullable()));
            }
        } else if let Some(key) = &options.key {
            for name in &key.fields {
                physical.index_of(name).map_err(|_| {
                    WeirError::Config(format!(
                        "table {}: 'key.fields' names column '{name}', which the table does not have",
                        table.name
                    ))
                })?;
            }
        }
        let mut value_fields = Vec::new();
        let mut physical_from = Vec::new();
        for (i, f) in physical.fields().iter().enumerate() {
            if let Some(k) = key_cols.iter().position(|&c| c == i) {
                physical_from.push(ColumnFrom::Key(k));
            } else {
                physical_from.push(ColumnFrom::Value(value_fields.len()));
                value_fields.push(f.as_ref().clone());
            }
        }
        let value_schema = Arc::new(Schema::new(value_fields));
        let key_schema = (!key_cols.is_empty()).then(|| Arc::new(Schema::new(key_fields)));
        let key_format = key_schema
            .as_ref()
            .and_then(|_| options.key.as_ref().map(|k| k.format.clone()));
        let metadata = metadata_columns(&table.name, &table.metadata)?;
        let value_unread = value_schema
            .fields()
            .iter()
            .filter(|f| !table.reads(f.name()))
            .map(|f| f.name().clone())
            .collect();
        let layout = Self {
            schema: table.source_schema(),
            value_schema,
            value_unread,
            key_schema,
            physical_from,
            metadata,
            value_format: options.format.clone(),
            key_format,
            batch_size: options.batch_size,
        };
        // Creating a decoder checks the column types against the formats.
        layout
            .decoder("", 0)
            .map_err(|e| e.context(format!("table {}", table.name)))?;
        Ok(layout)
    }

    /// The schema of the batches decoders produce.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// A decoder for one partition.
    pub fn decoder(&self, topic: &str, partition: i32) -> Result<SplitDecoder> {
        let value = FormatDecoder::new(
            &self.value_format,
            self.value_schema.clone(),
            self.batch_size,
            "value",
            &self.value_unread,
        )?;
        let key = match (&self.key_format, &self.key_schema) {
            (Some(f), Some(s)) => Some(FormatDecoder::new(
                f,
                s.clone(),
                self.batch_size,
                "key",
                &[],
            )?),
            _ => None,
        };
        let meta = self
            .metadata
            .iter()
            .map(|(k, t)| MetaBuilder::new(*k, t, self.batch_size))
            .collect();
        Ok(SplitDecoder {
            schema: self.schema.clone(),
            physical_from: self.physical_from.clone(),
            value,
            key,
            key_garbage: Vec::new(),
            meta,
            topic: topic.to_string(),
            partition,
            rows: 0,
        })
    }
}

/// Resolves the table's metadata columns to keys (the registry has checked
/// names and castability already; checked again for direct callers).
fn metadata_columns(
    table: &str,
    columns: &[MetadataColumn],
) -> Result<Vec<(MetadataKey, DataType)>> {
    columns
        .iter()
        .map(|m| {
            let key = MetadataKey::from_name(&m.key).ok_or_else(|| {
                let known: Vec<&str> = MetadataKey::all().iter().map(|(_, n, _)| *n).collect();
                WeirError::Config(format!(
                    "table {table}: column {}: connector 'kafka' has no metadata key '{}' (available: {})",
                    m.name,
                    m.key,
                    known.join(", ")
                ))
            })?;
            Ok((key, m.data_type.clone()))
        })
        .collect()
}

/// Decodes one format into rows of a schema.
enum FormatDecoder {
    Json(JsonDecoder),
    /// With a record of empty fields (all NULL), for null keys.
    Csv(CsvDecoder, ::csv::ByteRecord),
    Raw(RawDecoder),
}

impl FormatDecoder {
    /// `unread`: columns the JSON decoder may leave NULL.
    fn new(
        format: &KafkaFormat,
        schema: SchemaRef,
        batch_size: usize,
        what: &str,
        unread: &[String],
    ) -> Result<Self> {
        Ok(match format {
            KafkaFormat::Json(o) => FormatDecoder::Json(JsonDecoder::with_unread(
                schema,
                o.clone(),
                batch_size,
                unread,
            )?),
            KafkaFormat::Csv(o) => {
                let empty: ::csv::ByteRecord = schema.fields().iter().map(|_| "").collect();
                FormatDecoder::Csv(CsvDecoder::new(schema, o.clone(), batch_size)?, empty)
            }
            KafkaFormat::Raw => FormatDecoder::Raw(RawDecoder::new(schema, batch_size, what)?),
        })
    }

    /// Appends the record in `bytes` (`None`: a null message or key).
    /// `Ok(false)`: nothing appended, nothing wrong (a tombstone).
    fn decode(
        &mut self,
        bytes: Option<&[u8]>,
        null_row: bool,
    ) -> std::result::Result<bool, String> {
        match (self, bytes) {
            (FormatDecoder::Raw(r), b) => r.decode(b).map(|()| true),
            (FormatDecoder::Json(d), Some(b)) => match d.decode(b)? {
                true => Ok(true),
                false => Err("empty message".into()),
            },
            (FormatDecoder::Csv(d, _), Some(b)) => match d.decode_message(b)? {
                true => Ok(true),
                false => Err("empty message".into()),
            },
            (FormatDecoder::Json(d), None) if null_row => d.decode(b"{}"),
            (FormatDecoder::Csv(d, empty), None) if null_row => {
                d.decode_record(empty).map(|()| true)
            }
            (_, None) => Ok(false),
        }
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>> {
        match self {
            FormatDecoder::Json(d) => d.flush(),
            FormatDecoder::Csv(d, _) => d.flush(),
            FormatDecoder::Raw(r) => r.flush(),
        }
    }
}

/// The `raw` format: the bytes of each message in one `BYTES` or `STRING`
/// column; a null message is a NULL row.
struct RawDecoder {
    utf8: bool,
    nullable: bool,
    schema: SchemaRef,
    strings: StringBuilder,
    bytes: BinaryBuilder,
    rows: usize,
    capacity: usize,
}

impl RawDecoder {
    fn new(schema: SchemaRef, capacity: usize, what: &str) -> Result<Self> {
        if schema.fields().len() != 1 {
            return Err(WeirError::Config(format!(
                "'raw' {what} format needs exactly one column, found {} ({})",
                schema.fields().len(),
                schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let f = schema.field(0);
        let utf8 = match f.data_type() {
            DataType::Utf8 => true,
            DataType::Binary => false,
            other => {
                return Err(WeirError::Config(format!(
                    "column '{}' has type {other}; the 'raw' {what} format reads STRING or BYTES",
                    f.name()
                )))
            }
        };
        Ok(Self {
            utf8,
            nullable: f.is_nullable(),
            strings: StringBuilder::with_capacity(if utf8 { capacity } else { 0 }, 0),
            bytes: BinaryBuilder::with_capacity(if utf8 { 0 } else { capacity }, 0),
            schema,
            rows: 0,
            capacity,
        })
    }

    fn decode(&mut self, bytes: Option<&[u8]>) -> std::result::Result<(), String> {
        match bytes {
            None if !self.nullable => {
                return Err(format!(
                    "null message but column '{}' is NOT NULL",
                    self.schema.field(0).name()
                ))
            }
            None if self.utf8 => self.strings.append_null(),
            None => self.bytes.append_null(),
            Some(b) if self.utf8 => {
                let s = std::str::from_utf8(b).map_err(|e| format!("not valid UTF-8 ({e})"))?;
                self.strings.append_value(s);
            }
            Some(b) => self.bytes.append_value(b),
        }
        self.rows += 1;
        Ok(())
    }

    fn flush(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 {
            return Ok(None);
        }
        self.rows = 0;
        let array: ArrayRef = if self.utf8 {
            let a = Arc::new(self.strings.finish());
            self.strings = StringBuilder::with_capacity(self.capacity, 0);
            a
        } else {
            let a = Arc::new(self.bytes.finish());
            self.bytes = BinaryBuilder::with_capacity(self.capacity, 0);
            a
        };
        Ok(Some(RecordBatch::try_new(
            self.schema.clone(),
            vec![array],
        )?))
    }
}

/// Builds one metadata column.
enum MetaBuilder {
    /// Topic or partition: the same value on every row, made at flush.
    Constant(MetadataKey, DataType),
    Offset(Int64Builder, DataType),
    /// Epoch millis (NULL when absent), and the declared type.
    Timestamp(Vec<Option<i64>>, DataType),
    TimestampType(StringBuilder, DataType),
    KeyBytes(BinaryBuilder, DataType),
    KeyString(StringBuilder),
    Headers(Box<MapBuilder<StringBuilder, BinaryBuilder>>, DataType),
}

impl MetaBuilder {
    fn new(key: MetadataKey, declared: &DataType, capacity: usize) -> Self {
        let t = declared.clone();
        match key {
            MetadataKey::Topic | MetadataKey::Partition => MetaBuilder::Constant(key, t),
            MetadataKey::Offset => MetaBuilder::Offset(Int64Builder::with_capacity(capacity), t),
            MetadataKey::Timestamp => MetaBuilder::Timestamp(Vec::with_capacity(capacity), t),
            MetadataKey::TimestampType => MetaBuilder::TimestampType(StringBuilder::new(), t),
            MetadataKey::Key if *declared == DataType::Utf8 => {
                MetaBuilder::KeyString(StringBuilder::new())
            }
            MetadataKey::Key => MetaBuilder::KeyBytes(BinaryBuilder::new(), t),
            MetadataKey::Headers => MetaBuilder::Headers(
                Box::new(MapBuilder::new(
                    Some(MapFieldNames {
                        entry: "entries".into(),
                        key: "key".into(),
                        value: "value".into(),
                    }),
                    StringBuilder::new(),
                    BinaryBuilder::new(),
                )),
                t,
            ),
        }
    }

    /// Checks what could make appending fail, before anything is appended.
    fn check<M: Message>(&self, m: &M) -> std::result::Result<(), String> {
        match self {
            MetaBuilder::KeyString(_) => match m.key() {
                Some(k) => std::str::from_utf8(k)
                    .map(|_| ())
                    .map_err(|e| format!("key is not valid UTF-8 ({e}) for a STRING key column")),
                None => Ok(()),
            },
            MetaBuilder::Headers(..) => match m.headers() {
                Some(h) => {
                    for i in 0..h.count() {
                        if h.try_get(i).is_none() {
                            return Err(format!("header {i} cannot be read"));
                        }
                    }
                    Ok(())
                }
                None => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn append<M: Message>(&mut self, m: &M) -> std::result::Result<(), String> {
        match self {
            MetaBuilder::Constant(..) => {}
            MetaBuilder::Offset(b, _) => b.append_value(m.offset()),
            MetaBuilder::Timestamp(v, _) => v.push(m.timestamp().to_millis()),
            MetaBuilder::TimestampType(b, _) => b.append_value(match m.timestamp() {
                Timestamp::NotAvailable => "NoTimestampType",
                Timestamp::CreateTime(_) => "CreateTime",
                Timestamp::LogAppendTime(_) => "LogAppendTime",
            }),
            MetaBuilder::KeyBytes(b, _) => b.append_option(m.key()),
            MetaBuilder::KeyString(b) => match m.key() {
                Some(k) => b.append_value(std::str::from_utf8(k).map_err(|e| e.to_string())?),
                None => b.append_null(),
            },
            MetaBuilder::Headers(b, _) => {
                if let Some(h) = m.headers() {
                    // Later values win for a repeated name, as in a Java map.
                    let mut entries: Vec<(&str, Option<&[u8]>)> = Vec::with_capacity(h.count());
                    for i in 0..h.count() {
                        if let Some(header) = h.try_get(i) {
                            match entries.iter_mut().find(|(k, _)| *k == header.key) {
                                Some(e) => e.1 = header.value,
                                None => entries.push((header.key, header.value)),
                            }
                        }
                    }
                    for (k, v) in entries {
                        b.keys().append_value(k);
                        b.values().append_option(v);
                    }
                }
                b.append(true).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    }

    fn finish(&mut self, rows: usize, topic: &str, partition: i32) -> Result<ArrayRef> {
        let (array, declared): (ArrayRef, &DataType) = match self {
            MetaBuilder::Constant(MetadataKey::Partition, t) => {
                (Arc::new(Int32Array::from(vec![partition; rows])), t)
            }
            MetaBuilder::Constant(_, t) => (
                Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
                    topic, rows,
                ))),
                t,
            ),
            MetaBuilder::Offset(b, t) => (Arc::new(b.finish()), t),
            MetaBuilder::Timestamp(v, t) => {
                let values = std::mem::take(v);
                let tz = match t {
                    DataType::Timestamp(TimeUnit::Millisecond, tz) => tz.clone(),
                    _ => Some(Arc::from("UTC")),
                };
                let a = TimestampMillisecondArray::from(values).with_timezone_opt(tz);
                (Arc::new(a), t)
            }
            MetaBuilder::TimestampType(b, t) => (Arc::new(b.finish()), t),
            MetaBuilder::KeyBytes(b, t) => (Arc::new(b.finish()), t),
            MetaBuilder::KeyString(b) => return Ok(Arc::new(b.finish())),
            MetaBuilder::Headers(b, t) => (Arc::new(b.finish()), t),
        };
        if array.data_type() == declared {
            Ok(array)
        } else {
            Ok(arrow::compute::cast(&array, declared)?)
        }
    }
}

/// Decodes the messages of one partition into batches of the source schema.
pub struct SplitDecoder {
    schema: SchemaRef,
    physical_from: Vec<ColumnFrom>,
    value: FormatDecoder,
    key: Option<FormatDecoder>,
    /// Key rows (since the last flush) whose value then failed: dropped at flush.
    key_garbage: Vec<usize>,
    meta: Vec<MetaBuilder>,
    topic: String,
    partition: i32,
    /// Complete rows since the last flush.
    rows: usize,
}

impl SplitDecoder {
    /// Appends a message. `Ok(false)`: skipped without error (a tombstone
    /// in a JSON/CSV table). `Err`: the message is malformed, nothing was
    /// appended, and the reason says why.
    pub fn push<M: Message>(&mut self, m: &M) -> std::result::Result<bool, String> {
        for b in &self.meta {
            b.check(m)?;
        }
        if let Some(key) = &mut self.key {
            let key_rows_before = self.rows + self.key_garbage.len();
            key.decode(m.key(), true).map_err(|e| format!("key: {e}"))?;
            match self.value.decode(m.payload(), false) {
                Ok(true) => {}
                Ok(false) => {
                    self.key_garbage.push(key_rows_before);
                    return Ok(false);
                }
                Err(e) => {
                    self.key_garbage.push(key_rows_before);
                    return Err(e);
                }
            }
        } else if !self.value.decode(m.payload(), false)? {
            return Ok(false);
        }
        for b in &mut self.meta {
            // Checked above: cannot fail for a well-formed builder.
            b.append(m)?;
        }
        self.rows += 1;
        Ok(true)
    }

    /// Rows waiting to be flushed.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row waits.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The waiting rows as one batch of the source schema.
    pub fn flush(&mut self) -> Result<Option<RecordBatch>> {
        if self.rows == 0 && self.key_garbage.is_empty() {
            return Ok(None);
        }
        let rows = self.rows;
        self.rows = 0;
        let value = self.value.flush()?;
        let key = match &mut self.key {
            Some(k) => {
                let b = k.flush()?;
                let garbage = std::mem::take(&mut self.key_garbage);
                match b {
                    Some(b) if !garbage.is_empty() => {
                        let keep: BooleanArray = (0..b.num_rows())
                            .map(|i| Some(!garbage.contains(&i)))
                            .collect();
                        Some(arrow::compute::filter_record_batch(&b, &keep)?)
                    }
                    other => other,
                }
            }
            None => None,
        };
        if rows == 0 {
            return Ok(None);
        }
        let column = |b: &Option<RecordBatch>, i: usize, what: &str| -> Result<ArrayRef> {
            b.as_ref()
                .filter(|b| b.num_rows() == rows)
                .map(|b| b.column(i).clone())
                .ok_or_else(|| {
                    WeirError::Internal(format!(
                        "kafka decoder: {what} rows do not match ({rows} rows)"
                    ))
                })
        };
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for from in &self.physical_from {
            columns.push(match from {
                ColumnFrom::Value(i) => column(&value, *i, "value")?,
                ColumnFrom::Key(i) => column(&key, *i, "key")?,
            });
        }
        for b in &mut self.meta {
            columns.push(b.finish(rows, &self.topic, self.partition)?);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        Ok(Some(RecordBatch::try_new_with_options(
            self.schema.clone(),
            columns,
            &options,
        )?))
    }
}
