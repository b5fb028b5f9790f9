//! The Kinesis sink: rows encoded one record each, written with PutRecords
//! in calls of at most 500 records and 5 MiB, failed entries retried.
//!
//! # Delivery and order
//! Every batch the sink receives is written before `write_batch` returns
//! (so a checkpoint barrier, which follows the batches before it, finds
//! nothing pending): at-least-once. One PutRecords call is in flight at a
//! time. When some entries of a call fail (throttling, internal failure),
//! only those are retried, in their original order, with backoff, and no
//! later record is sent until they are written. PutRecords does not stop at
//! a failed entry, so **a retried record can land after later records of
//! its partition key from the same call**; never after records of a later
//! call. With `'sink.preserve-key-order' = 'true'` a call holds at most one
//! record per partition key, and per-key order is kept exactly (at the cost
//! of smaller calls when few keys are hot). After `'sink.retries'` failed
//! retries the job fails with the entries' error code and message.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use arrow::array::Array;
use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use arrow::util::display::{ArrayFormatter, FormatOptions};
use async_trait::async_trait;
use weir_engine::sink::{Sink, SinkFactory};
use weir_engine::{Result, WeirError};

use super::client::{ApiWrapper, KinesisApi, PutEntry, PutOutcome};
use super::options::{
    Backoff, KinesisSinkOptions, RecordFormat, MAX_PARTITION_KEY_CHARS, MAX_RECORD_BYTES,
};
use crate::format::encode::{CsvEncoder, JsonEncoder};
use crate::format::raw::encode_raw_row;
use crate::TableDescriptor;

/// Writes records to one stream with PutRecords: batching, retries of
/// failed entries in order, a job error when they keep failing. Used by the
/// sink and by the source's dead-letter stream.
#[derive(Clone)]
pub struct RecordWriter {
    api: Arc<dyn KinesisApi>,
    stream: String,
    max_records: usize,
    max_bytes: usize,
    retries: u32,
    backoff: Backoff,
    preserve_key_order: bool,
}

impl std::fmt::Debug for RecordWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordWriter")
            .field("stream", &self.stream)
            .field("max_records", &self.max_records)
            .field("max_bytes", &self.max_bytes)
            .field("retries", &self.retries)
            .finish()
    }
}

/// What a [`RecordWriter::write_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// PutRecords calls made (retries included).
    pub calls: u64,
    /// Entries sent again after failing.
    pub retried_entries: u64,
}

impl RecordWriter {
    /// A writer to `stream`.
    pub fn new(
        api: Arc<dyn KinesisApi>,
        stream: impl Into<String>,
        max_records: usize,
        max_bytes: usize,
        retries: u32,
        backoff: Backoff,
        preserve_key_order: bool,
    ) -> Self {
        Self {
            api,
            stream: stream.into(),
            max_records: max_records.clamp(1, super::options::MAX_PUT_RECORDS),
            max_bytes: max_bytes.clamp(1, super::options::MAX_PUT_BYTES),
            retries,
            backoff,
            preserve_key_order,
        }
    }

    /// Writes `entries` in order (see the module docs for what order
    /// means under retries). Returns once every entry is written.
    pub async fn write_all(&self, entries: Vec<PutEntry>) -> Result<WriteStats> {
        let mut stats = WriteStats::default();
        for e in &entries {
            if e.size() > MAX_RECORD_BYTES {
                return Err(WeirError::Sink(format!(
                    "kinesis stream '{}': a record of {} bytes (data + partition key) exceeds Kinesis' 1 MiB limit",
                    self.stream,
                    e.size()
                )));
            }
        }
        let mut queue: VecDeque<PutEntry> = entries.into();
        while !queue.is_empty() {
            let mut call = Vec::new();
            let mut bytes = 0;
            let mut keys: HashSet<String> = HashSet::new();
            while let Some(e) = queue.front() {
                let full = call.len() >= self.max_records
                    || (!call.is_empty() && bytes + e.size() > self.max_bytes)
                    || (self.preserve_key_order && keys.contains(&e.partition_key));
                if full {
                    break;
                }
                if self.preserve_key_order {
                    keys.insert(e.partition_key.clone());
                }
                bytes += e.size();
                if let Some(e) = queue.pop_front() {
                    call.push(e);
                }
            }
            self.put_with_retries(call, &mut stats).await?;
        }
        Ok(stats)
    }

    /// One call's entries, retried until all are written.
    async fn put_with_retries(
        &self,
        mut call: Vec<PutEntry>,
        stats: &mut WriteStats,
    ) -> Result<()> {
        let mut attempt: u32 = 0;
        loop {
            stats.calls += 1;
            let failure = match self.api.put_records(&self.stream, &call).await {
                Ok(outcomes) => {
                    let mut failed = Vec::new();
                    let mut first: Option<(String, String)> = None;
                    for (entry, outcome) in call.into_iter().zip(outcomes) {
                        if let PutOutcome::Failed { code, message } = outcome {
                            if first.is_none() {
                                first = Some((code, message));
                            }
                            failed.push(entry);
                        }
                    }
                    if failed.is_empty() {
                        return Ok(());
                    }
                    let n = failed.len();
                    call = failed;
                    let (code, message) = first.unwrap_or_default();
                    format!("{n} record(s) failed: {code}: {message}")
                }
                Err(e) if e.is_retryable() => e.to_string(),
                Err(e) => {
                    return Err(WeirError::Sink(format!(
                        "kinesis stream '{}': PutRecords: {e}",
                        self.stream
                    )))
                }
            };
            if attempt >= self.retries {
                return Err(WeirError::Sink(format!(
                    "kinesis stream '{}': PutRecords still failing after {} retries: {failure}",
                    self.stream, self.retries
                )));
            }
            let delay = self.backoff.delay(attempt);
            tracing::warn!(
                stream = %self.stream,
                attempt = attempt + 1,
                delay_ms = delay.as_millis() as u64,
                "{failure}; retrying"
            );
            stats.retried_entries += call.len() as u64;
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// Encodes rows as Kinesis records: data in the table's format, partition
/// key from the key columns (or random).
pub struct RowEncoder {
    format: RecordFormat,
    json: JsonEncoder,
    csv: Option<CsvEncoder>,
    key_columns: Vec<usize>,
    delimiter: String,
}

impl RowEncoder {
    /// An encoder for rows of `schema` written as `options` say.
    pub fn new(schema: &SchemaRef, options: &KinesisSinkOptions) -> Result<Self> {
        let json_options = match &options.format {
            RecordFormat::Json(o) => o.clone(),
            _ => Default::default(),
        };
        let csv = match &options.format {
            RecordFormat::Csv(o) => Some(CsvEncoder::new(o)),
            _ => None,
        };
        let mut key_columns = Vec::with_capacity(options.partition_key.len());
        for k in &options.partition_key {
            key_columns.push(schema.index_of(k).map_err(|_| {
                WeirError::Config(format!("'sink.partition-key': no column '{k}'"))
            })?);
        }
        Ok(Self {
            format: options.format.clone(),
            json: JsonEncoder::new(schema, &json_options),
            csv,
            key_columns,
            delimiter: options.key_delimiter.clone(),
        })
    }

    /// One entry per row of `batch`, in order.
    pub fn encode(&self, batch: &RecordBatch) -> Result<Vec<PutEntry>> {
        let n = batch.num_rows();
        let mut data: Vec<Vec<u8>> = Vec::with_capacity(n);
        match &self.format {
            RecordFormat::Json(_) => {
                let mut buf = Vec::new();
                self.json.encode(batch, &mut buf)?;
                // JSON strings escape line breaks: one line per row.
                for line in buf.split(|b| *b == b'\n').take(n) {
                    data.push(line.to_vec());
                }
            }
            RecordFormat::Csv(_) => {
                let enc = self
                    .csv
                    .as_ref()
                    .ok_or_else(|| WeirError::Internal("csv encoder missing".into()))?;
                for row in 0..n {
                    let mut buf = Vec::new();
                    enc.encode(&batch.slice(row, 1), &mut buf)?;
                    while let Some(b'\n' | b'\r') = buf.last() {
                        buf.pop();
                    }
                    data.push(buf);
                }
            }
            RecordFormat::Raw => {
                for row in 0..n {
                    let mut buf = Vec::new();
                    encode_raw_row(batch, row, &mut buf)?;
                    data.push(buf);
                }
            }
        }
        if data.len() != n {
            return Err(WeirError::Internal(format!(
                "kinesis sink: {} records encoded for {n} rows",
                data.len()
            )));
        }
        let keys = self.partition_keys(batch)?;
        Ok(data
            .into_iter()
            .zip(keys)
            .map(|(data, partition_key)| PutEntry {
                data,
                partition_key,
            })
            .collect())
    }

    fn partition_keys(&self, batch: &RecordBatch) -> Result<Vec<String>> {
        let n = batch.num_rows();
        if self.key_columns.is_empty() {
            return Ok((0..n)
                .map(|_| format!("{:032x}", rand::random::<u128>()))
                .collect());
        }
        let options = FormatOptions::default();
        let cols: Vec<&dyn Array> = self
            .key_columns
            .iter()
            .map(|&i| batch.column(i).as_ref())
            .collect();
        let formatters = cols
            .iter()
            .map(|c| ArrayFormatter::try_new(*c, &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let mut keys = Vec::with_capacity(n);
        for row in 0..n {
            let mut key = String::new();
            for (i, (col, f)) in cols.iter().zip(&formatters).enumerate() {
                if i > 0 {
                    key.push_str(&self.delimiter);
                }
                if col.is_null(row) {
                    key.push_str("null");
                } else {
                    key.push_str(&f.value(row).to_string());
                }
            }
            if key.is_empty() {
                return Err(WeirError::Sink(format!(
                    "kinesis sink: row {row} has an empty partition key (Kinesis needs 1 to 256 characters)"
                )));
            }
            if key.chars().count() > MAX_PARTITION_KEY_CHARS {
                key = key.chars().take(MAX_PARTITION_KEY_CHARS).collect();
            }
            keys.push(key);
        }
        Ok(keys)
    }
}

/// Creates Kinesis sink subtasks for one table.
pub struct KinesisSinkFactory {
    options: Arc<KinesisSinkOptions>,
    schema: SchemaRef,
    wrapper: Option<ApiWrapper>,
}

impl KinesisSinkFactory {
    /// A factory writing `table` as `options` say.
    pub fn new(table: &TableDescriptor, options: KinesisSinkOptions) -> Result<Self> {
        let schema = table.schema.clone();
        RowEncoder::new(&schema, &options)
            .map_err(|e| e.context(format!("table {}", table.name)))?;
        if options.format == RecordFormat::Raw {
            let dt = schema.field(0).data_type();
            if !matches!(
                dt,
                arrow::datatypes::DataType::Utf8 | arrow::datatypes::DataType::Binary
            ) {
                return Err(WeirError::Config(format!(
                    "table {}: format 'raw' writes one STRING or BYTES column, not {dt}",
                    table.name
                )));
            }
        }
        Ok(Self {
            options: Arc::new(options),
            schema,
            wrapper: None,
        })
    }

    /// Wraps the Kinesis client the subtasks use (tests inject faults).
    pub fn with_api_wrapper(mut self, wrapper: ApiWrapper) -> Self {
        self.wrapper = Some(wrapper);
        self
    }

    /// The typed options.
    pub fn options(&self) -> &KinesisSinkOptions {
        &self.options
    }
}

impl SinkFactory for KinesisSinkFactory {
    fn create(&self, _subtask: usize, _parallelism: usize) -> Result<Box<dyn Sink>> {
        Ok(Box::new(KinesisSink {
            options: self.options.clone(),
            encoder: RowEncoder::new(&self.schema, &self.options)?,
            wrapper: self.wrapper.clone(),
            writer: None,
            written: 0,
        }))
    }

    fn describe(&self) -> String {
        let key = if self.options.partition_key.is_empty() {
            "random partition keys".to_string()
        } else {
            format!("partition key {}", self.options.partition_key.join(", "))
        };
        format!(
            "kinesis {} stream {} ({key})",
            self.options.format.name(),
            self.options.stream
        )
    }
}

/// One Kinesis sink subtask.
struct KinesisSink {
    options: Arc<KinesisSinkOptions>,
    encoder: RowEncoder,
    wrapper: Option<ApiWrapper>,
    /// Made on the first batch, in the job's runtime.
    writer: Option<RecordWriter>,
    written: u64,
}

impl KinesisSink {
    async fn writer(&mut self) -> Result<&RecordWriter> {
        if self.writer.is_none() {
            let api = super::client::connect_api(&self.options.aws, self.wrapper.as_ref()).await?;
            let o = &self.options;
            self.writer = Some(RecordWriter::new(
                api,
                o.stream.clone(),
                o.max_batch_records,
                o.max_batch_bytes,
                o.retries,
                o.backoff,
                o.preserve_key_order,
            ));
        }
        self.writer
            .as_ref()
            .ok_or_else(|| WeirError::Internal("kinesis writer missing".into()))
    }
}

#[async_trait]
impl Sink for KinesisSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let entries = self.encoder.encode(&batch)?;
        let n = entries.len() as u64;
        self.writer().await?.write_all(entries).await?;
        self.written += n;
        Ok(())
    }

    async fn finish(&mut self) -> Result<()> {
        tracing::debug!(stream = %self.options.stream, records = self.written, "kinesis sink finished");
        Ok(())
    }
}
