//! The Kafka sink: one idempotent producer per subtask; rows encoded as
//! JSON, CSV or raw bytes, the key from `'key.fields'`; deliveries awaited
//! on every checkpoint barrier (`at-least-once`) and at the end of input;
//! a delivery librdkafka gave up on is a job error.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use weir_engine::sink::{Sink, SinkFactory, SinkRecovery};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};

use super::client::discover_partitions;
use super::options::{
    DeliveryGuarantee, FieldsInclude, KafkaFormat, KafkaOptions, SinkPartitioner,
};
use super::producer::{create_producer, flush_timeout, DeliveryContext, DeliveryState};
use super::transactional::{blocking, Record, Transactions};
use crate::format::encode::{CsvEncoder, JsonEncoder};
use crate::TableDescriptor;

/// Creates Kafka sink subtasks for one table.
pub struct KafkaSinkFactory {
    table: String,
    options: Arc<KafkaOptions>,
    /// Columns written as the value, with the schema the value encoder sees.
    value: Arc<RowEncoder>,
    /// Columns written as the key.
    key: Option<Arc<RowEncoder>>,
}

impl KafkaSinkFactory {
    /// Checks the options against the table's columns.
    pub fn new(table: &TableDescriptor, options: KafkaOptions) -> Result<Self> {
        let cfg = |m: String| WeirError::Config(format!("table {}: {m}", table.name));
        if options.topics.len() != 1 {
            return Err(cfg(format!(
                "a sink writes one topic, but 'topic' lists {}",
                options.topics.len()
            )));
        }
        let schema = &table.schema;
        let mut key_cols = Vec::new();
        let key = match &options.key {
            None => None,
            Some(k) => {
                let mut fields = Vec::new();
                for name in &k.fields {
                    let i = schema.index_of(name).map_err(|_| {
                        cfg(format!(
                            "'key.fields' names column '{name}', which the table does not have"
                        ))
                    })?;
                    key_cols.push(i);
                    let f = schema.field(i);
                    let key_name = name.strip_prefix(k.prefix.as_str()).unwrap_or(name);
                    fields.push(Field::new(key_name, f.data_type().clone(), f.is_nullable()));
                }
                Some(Arc::new(
                    RowEncoder::new(&k.format, key_cols.clone(), Arc::new(Schema::new(fields)))
                        .map_err(|m| cfg(format!("key: {m}")))?,
                ))
            }
        };
        let value_cols: Vec<usize> = (0..schema.fields().len())
            .filter(|i| options.value_fields_include == FieldsInclude::All || !key_cols.contains(i))
            .collect();
        let value_schema = Arc::new(Schema::new(
            value_cols
                .iter()
                .map(|&i| schema.field(i).clone())
                .collect::<Vec<_>>(),
        ));
        let value = Arc::new(
            RowEncoder::new(&options.format, value_cols, value_schema)
                .map_err(|m| cfg(format!("value: {m}")))?,
        );
        Ok(Self {
            table: table.name.clone(),
            options: Arc::new(options),
            value,
            key,
        })
    }

    /// The parsed options.
    pub fn options(&self) -> &KafkaOptions {
        &self.options
    }
}

impl KafkaSinkFactory {
    /// Subtask `subtask`, transactional when `txn` is given.
    fn build(&self, subtask: usize, txn: Option<Transactions>) -> Result<Box<dyn Sink>> {
        let topic = self.options.topics[0].clone();
        let partitions = match self.options.partitioner {
            SinkPartitioner::Default => None,
            SinkPartitioner::Fixed | SinkPartitioner::RoundRobin => {
                let ps =
                    discover_partitions(&self.options, &self.table, self.options.startup_timeout)?;
                Some(ps.into_iter().map(|tp| tp.partition).collect::<Vec<_>>())
            }
        };
        let plain = match txn {
            Some(_) => None,
            None => Some(create_producer(
                &self.options,
                &self.table,
                &format!("weir-{}-{subtask}-sink", self.table),
            )?),
        };
        Ok(Box::new(KafkaSink {
            table: self.table.clone(),
            topic,
            options: self.options.clone(),
            value: self.value.clone(),
            key: self.key.clone(),
            plain,
            txn,
            partitions,
            subtask,
            next_partition: AtomicUsize::new(subtask),
            values: Vec::new(),
            value_ends: Vec::new(),
            keys: Vec::new(),
            key_ends: Vec::new(),
        }))
    }
}

impl SinkFactory for KafkaSinkFactory {
    fn create(&self, subtask: usize, _parallelism: usize) -> Result<Box<dyn Sink>> {
        if self.options.delivery_guarantee == DeliveryGuarantee::ExactlyOnce {
            return Err(WeirError::Config(format!(
                "table {}: 'sink.delivery-guarantee' = 'exactly-once' commits Kafka transactions on checkpoints: run the job with --checkpoint-dir",
                self.table
            )));
        }
        self.build(subtask, None)
    }

    fn create_checkpointed(
        &self,
        subtask: usize,
        _parallelism: usize,
        recovery: Option<SinkRecovery>,
    ) -> Result<Box<dyn Sink>> {
        if self.options.delivery_guarantee != DeliveryGuarantee::ExactlyOnce {
            return self.build(subtask, None);
        }
        let txn = Transactions::start(
            &self.options,
            &self.table,
            &self.options.topics[0],
            subtask,
            recovery.as_ref().map(|r| &r.state),
        )?;
        self.build(subtask, Some(txn))
    }

    fn exactly_once(&self) -> bool {
        self.options.delivery_guarantee == DeliveryGuarantee::ExactlyOnce
    }

    fn describe(&self) -> String {
        let key = match &self.options.key {
            Some(k) => format!(", key {} ({})", k.fields.join(";"), k.format.name()),
            None => String::new(),
        };
        let partitioner = match self.options.partitioner {
            SinkPartitioner::Default => "",
            SinkPartitioner::Fixed => ", fixed partitions",
            SinkPartitioner::RoundRobin => ", round-robin",
        };
        let guarantee = match self.options.delivery_guarantee {
            DeliveryGuarantee::AtLeastOnce => "at-least-once, idempotent producer",
            DeliveryGuarantee::ExactlyOnce => "exactly-once, transactional producer",
            DeliveryGuarantee::None => "none, idempotent producer",
        };
        format!(
            "kafka {} {}{key}{partitioner} ({guarantee})",
            self.options.format.name(),
            self.options.topics[0]
        )
    }
}

/// Encodes some columns of a batch, one message per row.
struct RowEncoder {
    columns: Vec<usize>,
    schema: SchemaRef,
    kind: EncoderKind,
}

enum EncoderKind {
    Json(JsonEncoder),
    Csv(CsvEncoder),
    /// The single column's bytes (NULL: no payload).
    Raw,
}

impl RowEncoder {
    fn new(
        format: &KafkaFormat,
        columns: Vec<usize>,
        schema: SchemaRef,
    ) -> std::result::Result<Self, String> {
        let kind = match format {
            KafkaFormat::Json(o) => EncoderKind::Json(JsonEncoder::new(&schema, o)),
            KafkaFormat::Csv(o) => EncoderKind::Csv(CsvEncoder::new(o)),
            KafkaFormat::Raw => {
                if schema.fields().len() != 1 {
                    return Err(format!(
                        "the 'raw' format writes exactly one column, found {}",
                        schema.fields().len()
                    ));
                }
                match schema.field(0).data_type() {
                    DataType::Utf8 | DataType::Binary => EncoderKind::Raw,
                    other => {
                        return Err(format!(
                            "column '{}' has type {other}; the 'raw' format writes STRING or BYTES",
                            schema.field(0).name()
                        ))
                    }
                }
            }
        };
        Ok(Self {
            columns,
            schema,
            kind,
        })
    }

    /// Appends each row's message to `out`, recording where each ends
    /// (`None`: a NULL raw value, written as a message without payload).
    fn encode(
        &self,
        batch: &RecordBatch,
        out: &mut Vec<u8>,
        ends: &mut Vec<Option<usize>>,
    ) -> Result<()> {
        out.clear();
        ends.clear();
        let columns: Vec<_> = self
            .columns
            .iter()
            .map(|&i| {
                batch.columns().get(i).cloned().ok_or_else(|| {
                    WeirError::Internal(format!(
                        "kafka sink: a batch of {} columns lacks column {i}",
                        batch.num_columns()
                    ))
                })
            })
            .collect::<Result<_>>()?;
        let rows = batch.num_rows();
        match &self.kind {
            EncoderKind::Json(e) => {
                let projected = RecordBatch::try_new_with_options(
                    self.schema.clone(),
                    columns,
                    &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
                )
                .or_else(|_| {
                    // The query's types differ from the table's: encode with
                    // the batch's own types under the table's names.
                    let fields: Vec<Field> = self
                        .columns
                        .iter()
                        .zip(self.schema.fields())
                        .map(|(&i, f)| {
                            Field::new(f.name(), batch.schema().field(i).data_type().clone(), true)
                        })
                        .collect();
                    RecordBatch::try_new_with_options(
                        Arc::new(Schema::new(fields)),
                        self.columns
                            .iter()
                            .map(|&i| batch.column(i).clone())
                            .collect(),
                        &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
                    )
                })?;
                e.encode(&projected, out)?;
                // One object per line; JSON strings escape line breaks, so
                // every '\n' ends a row.
                let mut start = 0;
                let mut ends_found = 0;
                while let Some(p) = out[start..].iter().position(|&b| b == b'\n') {
                    ends.push(Some(start + p));
                    start += p + 1;
                    ends_found += 1;
                }
                if ends_found != rows {
                    return Err(WeirError::Internal(format!(
                        "kafka sink: encoded {ends_found} JSON rows for {rows}"
                    )));
                }
            }
            EncoderKind::Csv(e) => {
                let projected = RecordBatch::try_new_with_options(
                    Arc::new(Schema::new(
                        self.columns
                            .iter()
                            .zip(self.schema.fields())
                            .map(|(&i, f)| {
                                Field::new(
                                    f.name(),
                                    batch.schema().field(i).data_type().clone(),
                                    true,
                                )
                            })
                            .collect::<Vec<_>>(),
                    )),
                    columns,
                    &arrow::record_batch::RecordBatchOptions::new().with_row_count(Some(rows)),
                )?;
                // Row by row: a quoted field may hold a line break.
                for r in 0..rows {
                    e.encode(&projected.slice(r, 1), out)?;
                    if out.last() == Some(&b'\n') {
                        out.pop();
                    }
                    ends.push(Some(out.len()));
                }
            }
            EncoderKind::Raw => {
                let col = &columns[0];
                let col = match col.data_type() {
                    DataType::Binary | DataType::Utf8 => col.clone(),
                    _ => arrow::compute::cast(col, &DataType::Binary)?,
                };
                for r in 0..rows {
                    if col.is_null(r) {
                        ends.push(None);
                        continue;
                    }
                    match col.data_type() {
                        DataType::Utf8 => {
                            out.extend_from_slice(col.as_string::<i32>().value(r).as_bytes())
                        }
                        _ => out.extend_from_slice(col.as_binary::<i32>().value(r)),
                    }
                    ends.push(Some(out.len()));
                }
            }
        }
        Ok(())
    }
}

/// The messages encoded for one batch: slices of a buffer.
fn slices<'a>(buf: &'a [u8], ends: &[Option<usize>], json_lines: bool) -> Vec<Option<&'a [u8]>> {
    let mut out = Vec::with_capacity(ends.len());
    let mut start = 0;
    for e in ends {
        match e {
            None => out.push(None),
            Some(end) => {
                out.push(Some(&buf[start..*end]));
                start = *end + usize::from(json_lines);
            }
        }
    }
    out
}

/// One subtask of a Kafka sink.
struct KafkaSink {
    table: String,
    topic: String,
    options: Arc<KafkaOptions>,
    value: Arc<RowEncoder>,
    key: Option<Arc<RowEncoder>>,
    /// The producer without transactions (at-least-once, none).
    plain: Option<(ThreadedProducer<DeliveryContext>, Arc<DeliveryState>)>,
    /// The transactional producers (exactly-once).
    txn: Option<Transactions>,
    /// The topic's partitions (`fixed` and `round-robin` partitioners).
    partitions: Option<Vec<i32>>,
    subtask: usize,
    next_partition: AtomicUsize,
    values: Vec<u8>,
    value_ends: Vec<Option<usize>>,
    keys: Vec<u8>,
    key_ends: Vec<Option<usize>>,
}

impl KafkaSink {
    /// The producer rows go to now, and its delivery state.
    fn out(&self) -> (&ThreadedProducer<DeliveryContext>, &DeliveryState) {
        match (&self.txn, &self.plain) {
            (Some(t), _) => {
                let s = &t.slots[t.current];
                (&s.producer, &s.delivery)
            }
            (None, Some((p, d))) => (p, d),
            (None, None) => unreachable!("a kafka sink has a producer"),
        }
    }

    fn check(&self) -> Result<()> {
        match self.out().1.failure() {
            Some((m, n)) => Err(WeirError::Sink(format!(
                "kafka table {}: {n} message(s) to topic '{}' were not delivered: {m}",
                self.table, self.topic
            ))),
            None => Ok(()),
        }
    }

    fn partition_for(&self) -> Option<i32> {
        let ps = self.partitions.as_ref().filter(|p| !p.is_empty())?;
        match self.options.partitioner {
            SinkPartitioner::Fixed => Some(ps[self.subtask % ps.len()]),
            SinkPartitioner::RoundRobin => {
                let n = self.next_partition.fetch_add(1, Ordering::Relaxed);
                Some(ps[n % ps.len()])
            }
            SinkPartitioner::Default => None,
        }
    }

    /// Waits until librdkafka has delivered (or given up on) everything
    /// sent so far; a failure is a job error.
    async fn flush(&mut self) -> Result<()> {
        let timeout = flush_timeout(&self.options);
        let deadline = Instant::now() + timeout;
        let mut wait = Duration::from_micros(200);
        while self.out().0.in_flight_count() > 0 {
            self.check()?;
            if Instant::now() >= deadline {
                return Err(WeirError::Sink(format!(
                    "kafka table {}: {} message(s) to topic '{}' still undelivered after {} s",
                    self.table,
                    self.out().0.in_flight_count(),
                    self.topic,
                    timeout.as_secs()
                )));
            }
            tokio::time::sleep(wait).await;
            wait = (wait * 2).min(Duration::from_millis(20));
        }
        self.check()
    }
}

#[async_trait]
impl Sink for KafkaSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        self.check()?;
        let rows = batch.num_rows();
        if rows == 0 {
            return Ok(());
        }
        let mut values = std::mem::take(&mut self.values);
        let mut value_ends = std::mem::take(&mut self.value_ends);
        let mut keys = std::mem::take(&mut self.keys);
        let mut key_ends = std::mem::take(&mut self.key_ends);
        if let Some(t) = self.txn.as_mut() {
            t.ensure_open()?;
        }
        let keep = self.txn.is_some();
        let mut kept: Vec<Record> = Vec::new();
        let result = async {
            self.value.encode(&batch, &mut values, &mut value_ends)?;
            let json = matches!(self.value.kind, EncoderKind::Json(_));
            let value_slices = slices(&values, &value_ends, json);
            let key_slices = match &self.key {
                Some(k) => {
                    k.encode(&batch, &mut keys, &mut key_ends)?;
                    slices(&keys, &key_ends, matches!(k.kind, EncoderKind::Json(_)))
                }
                None => vec![None; rows],
            };
            for (v, k) in value_slices.into_iter().zip(key_slices) {
                let partition = self.partition_for();
                if keep {
                    kept.push((k.map(<[u8]>::to_vec), v.map(<[u8]>::to_vec), partition));
                }
                let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&self.topic);
                if let Some(v) = v {
                    record = record.payload(v);
                }
                if let Some(k) = k {
                    record = record.key(k);
                }
                if let Some(p) = partition {
                    record = record.partition(p);
                }
                let mut wait = Duration::from_micros(100);
                loop {
                    match self.out().0.send(record) {
                        Ok(()) => break,
                        Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                            // librdkafka's queue is full: wait for deliveries.
                            self.check()?;
                            record = r;
                            tokio::time::sleep(wait).await;
                            wait = (wait * 2).min(Duration::from_millis(10));
                        }
                        Err((e, _)) => {
                            return Err(WeirError::Sink(format!(
                                "kafka table {}: cannot send to topic '{}': {e}",
                                self.table, self.topic
                            )))
                        }
                    }
                }
            }
            Ok(())
        }
        .await;
        self.values = values;
        self.value_ends = value_ends;
        self.keys = keys;
        self.key_ends = key_ends;
        if let Some(t) = self.txn.as_mut() {
            t.records.append(&mut kept);
        }
        result
    }

    async fn on_barrier(&mut self, _checkpoint_id: u64) -> Result<()> {
        match self.options.delivery_guarantee {
            DeliveryGuarantee::AtLeastOnce | DeliveryGuarantee::ExactlyOnce => self.flush().await,
            DeliveryGuarantee::None => self.check(),
        }
    }

    async fn pre_commit(&mut self, checkpoint_id: u64) -> Result<OperatorState> {
        match self.txn.as_mut() {
            None => {
                self.on_barrier(checkpoint_id).await?;
                Ok(OperatorState::empty())
            }
            Some(_) => {
                self.flush().await?;
                let t = self
                    .txn
                    .as_mut()
                    .ok_or_else(|| WeirError::Internal("txn".into()))?;
                blocking(|| t.pre_commit(checkpoint_id))
            }
        }
    }

    async fn commit(&mut self, checkpoint_id: u64) -> Result<()> {
        match self.txn.as_mut() {
            None => Ok(()),
            Some(t) => blocking(|| t.commit(checkpoint_id)),
        }
    }

    async fn finish(&mut self) -> Result<()> {
        self.flush().await?;
        if let Some(t) = &self.txn {
            t.check_finished()?;
        }
        tracing::debug!(
            "kafka table {}: sink subtask {} delivered {} messages to '{}'",
            self.table,
            self.subtask,
            self.out().1.delivered(),
            self.topic
        );
        Ok(())
    }
}
