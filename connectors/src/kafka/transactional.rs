//! Exactly-once Kafka output: transactions committed on checkpoints.
//!
//! # Design
//!
//! Each sink subtask owns two transactional producers, with the stable ids
//! `<prefix>-<subtask>-0` and `<prefix>-<subtask>-1` (`'sink.transactional-id-prefix'`).
//! Two, because after the barrier of checkpoint `n` the epoch `n`
//! transaction waits for the checkpoint to complete while rows of epoch
//! `n + 1` already arrive; one checkpoint is in flight at a time, so two
//! suffice. A transaction begins with the first row of an epoch; at the
//! barrier it is flushed (pre-commit) and it commits when the checkpoint's
//! manifest is written.
//!
//! Restarting calls `init_transactions` on both ids: this fences any
//! previous incarnation and aborts its open transactions. librdkafka
//! cannot resume (commit) a transaction begun by another producer instance,
//! so a transaction pre-committed in the restored checkpoint whose commit
//! was lost in the crash is aborted too. To commit it anyway, the sink's
//! snapshot keeps the records of every pre-committed, not yet committed
//! epoch, and every transaction also commits, through
//! `send_offsets_to_transaction`, a *marker*: offset = the epoch, for group
//! `<prefix>-<subtask>` on partition 0 of the output topic. The marker is
//! visible iff the transaction committed. On recovery, the records of the
//! restored epochs after the marker are produced again in one transaction
//! (with the marker) and committed.
//!
//! Limits: the snapshot holds a checkpoint interval's output of the
//! subtask (memory and checkpoint size); the marker group must not be used
//! by anything else; a changed parallelism (`--allow-state-reset`) leaves
//! the transactions of removed subtasks open until `transaction.timeout.ms`.
//! The marker is read with `isolation.level = read_committed`, so
//! librdkafka's OffsetFetch asks for stable offsets (`require_stable`):
//! Kafka makes it wait until a committed transaction's offsets are
//! materialized. tansu 0.6 did not materialize them with the transaction
//! (it deferred them while another transaction overlapped it, and lost
//! them when the same producer began its next one), so a restart read a
//! stale marker and committed an epoch twice; the tests' broker is built
//! with `.ci/tansu/txn-offsets.patch`, which commits them as Kafka does.

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, AsArray, BinaryArray, Int32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, UInt64Type};
use arrow::record_batch::RecordBatch;
use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};

use super::options::KafkaOptions;
use super::producer::{create_producer, flush_timeout, DeliveryContext, DeliveryState};

/// librdkafka's default `transaction.timeout.ms`.
const DEFAULT_TRANSACTION_TIMEOUT_MS: u64 = 60_000;
/// How long transactional calls (init, commit) may take.
const TXN_CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// The snapshot table of pending records.
const PENDING: &str = "kafka_pending";

/// One record: key, value, explicit partition.
pub(crate) type Record = (Option<Vec<u8>>, Option<Vec<u8>>, Option<i32>);

/// Where one transactional producer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotState {
    /// No transaction.
    Idle,
    /// A transaction is open for the current epoch.
    Open,
    /// Its transaction holds epoch `n`, flushed, awaiting checkpoint `n`.
    PreCommitted(u64),
}

/// A transactional producer.
pub(crate) struct Slot {
    pub(crate) producer: ThreadedProducer<DeliveryContext>,
    pub(crate) delivery: Arc<DeliveryState>,
    pub(crate) state: SlotState,
    id: String,
}

/// The transactional state of an exactly-once sink subtask.
pub(crate) struct Transactions {
    pub(crate) slots: Vec<Slot>,
    /// The slot rows go to.
    pub(crate) current: usize,
    /// Records of the open epoch (kept for the snapshot).
    pub(crate) records: Vec<Record>,
    /// Records of pre-committed, uncommitted epochs.
    pending: Vec<(u64, Record)>,
    /// The marker group's metadata and reader.
    marker: BaseConsumer,
    topic: String,
    table: String,
    options: KafkaOptions,
}

/// Runs blocking librdkafka calls (flush, commit) off the async workers
/// when the runtime allows it.
pub(crate) fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

impl Transactions {
    /// Creates both producers (fencing a previous incarnation and aborting
    /// its open transactions), then commits the restored pending records
    /// whose transaction did not commit.
    pub(crate) fn start(
        options: &KafkaOptions,
        table: &str,
        topic: &str,
        subtask: usize,
        restored: Option<&OperatorState>,
    ) -> Result<Self> {
        let prefix = options.transactional_id_prefix.as_deref().ok_or_else(|| {
            WeirError::Config(format!(
                "table {table}: 'sink.transactional-id-prefix' is not set"
            ))
        })?;
        let timeout_ms = check_transaction_timeout(options, table)?;
        let mut slots = Vec::with_capacity(2);
        for k in 0..2 {
            let id = format!("{prefix}-{subtask}-{k}");
            let mut o = options.clone();
            o.properties.insert("transactional.id".into(), id.clone());
            // librdkafka requires message.timeout.ms <= transaction.timeout.ms.
            if !o.properties.contains_key("delivery.timeout.ms")
                && !o.properties.contains_key("message.timeout.ms")
            {
                o.properties
                    .insert("delivery.timeout.ms".into(), timeout_ms.to_string());
            }
            let (producer, delivery) =
                create_producer(&o, table, &format!("weir-{table}-{subtask}-sink-{k}"))?;
            producer.init_transactions(TXN_CALL_TIMEOUT).map_err(|e| {
                WeirError::Sink(format!(
                    "kafka table {table}: initializing transactional id '{id}': {e}"
                ))
            })?;
            slots.push(Slot {
                producer,
                delivery,
                state: SlotState::Idle,
                id,
            });
        }
        let mut config = options.client_config();
        config
            .set("group.id", format!("{prefix}-{subtask}"))
            .set("enable.auto.commit", "false")
            .set("isolation.level", "read_committed");
        let marker: BaseConsumer = config.create().map_err(|e| {
            WeirError::Config(format!("table {table}: cannot create a Kafka client: {e}"))
        })?;
        let mut t = Self {
            slots,
            current: 0,
            records: Vec::new(),
            pending: Vec::new(),
            marker,
            topic: topic.to_string(),
            table: table.to_string(),
            options: options.clone(),
        };
        if let Some(state) = restored {
            t.recover(state)?;
        }
        Ok(t)
    }

    /// The last epoch whose transaction committed (0: none).
    fn committed_marker(&self) -> Result<u64> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, 0);
        let got = self
            .marker
            .committed_offsets(tpl, TXN_CALL_TIMEOUT)
            .map_err(|e| {
                WeirError::Sink(format!(
                    "kafka table {}: reading the commit marker: {e}",
                    self.table
                ))
            })?;
        Ok(got
            .elements()
            .first()
            .and_then(|e| match e.offset() {
                Offset::Offset(o) if o > 0 => Some(o as u64),
                _ => None,
            })
            .unwrap_or(0))
    }

    fn recover(&mut self, state: &OperatorState) -> Result<()> {
        let Some(batch) = state.get(PENDING) else {
            return Ok(());
        };
        let records = records_from_batch(batch)?;
        let marker = self.committed_marker()?;
        let redo: Vec<(u64, Record)> = records.into_iter().filter(|(e, _)| *e > marker).collect();
        let Some(last) = redo.iter().map(|(e, _)| *e).max() else {
            return Ok(());
        };
        tracing::info!(
            "kafka table {}: committing {} record(s) of epoch(s) up to {last} again: their transaction did not commit before the restart",
            self.table,
            redo.len()
        );
        self.begin(0)?;
        self.records = Vec::new();
        for (_, r) in &redo {
            send_blocking(&self.slots[0].producer, &self.topic, r, &self.table)?;
        }
        self.precommit_slot(0, last)?;
        self.commit_slot(0)
    }

    fn begin(&mut self, slot: usize) -> Result<()> {
        let s = &mut self.slots[slot];
        s.producer.begin_transaction().map_err(|e| {
            WeirError::Sink(format!(
                "kafka table {}: beginning a transaction on '{}': {e}",
                self.table, s.id
            ))
        })?;
        s.state = SlotState::Open;
        Ok(())
    }

    /// Makes sure rows can be sent to `self.current`: a free slot with an
    /// open transaction.
    pub(crate) fn ensure_open(&mut self) -> Result<()> {
        if self.slots[self.current].state == SlotState::Open {
            return Ok(());
        }
        let Some(free) = self.slots.iter().position(|s| s.state == SlotState::Idle) else {
            return Err(WeirError::Internal(format!(
                "kafka table {}: both transactions await a checkpoint's completion",
                self.table
            )));
        };
        self.current = free;
        self.begin(free)
    }

    /// Flushes slot `slot` (waiting for every delivery), adds the marker of
    /// `epoch` and marks it pre-committed.
    fn precommit_slot(&mut self, slot: usize, epoch: u64) -> Result<()> {
        let s = &mut self.slots[slot];
        s.producer
            .flush(flush_timeout(&self.options))
            .map_err(|e| {
                WeirError::Sink(format!(
                    "kafka table {}: flushing '{}': {e}",
                    self.table, s.id
                ))
            })?;
        if let Some((m, n)) = s.delivery.failure() {
            return Err(WeirError::Sink(format!(
                "kafka table {}: {n} message(s) to topic '{}' were not delivered: {m}",
                self.table, self.topic
            )));
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&self.topic, 0, Offset::Offset(epoch as i64))
            .map_err(|e| WeirError::Internal(format!("building the commit marker: {e}")))?;
        let cgm = self.marker.group_metadata().ok_or_else(|| {
            WeirError::Internal("the marker consumer has no group metadata".into())
        })?;
        s.producer
            .send_offsets_to_transaction(&tpl, &cgm, TXN_CALL_TIMEOUT)
            .map_err(|e| {
                WeirError::Sink(format!(
                    "kafka table {}: adding the commit marker to '{}': {e}",
                    self.table, s.id
                ))
            })?;
        s.state = SlotState::PreCommitted(epoch);
        Ok(())
    }

    fn commit_slot(&mut self, slot: usize) -> Result<()> {
        let s = &mut self.slots[slot];
        s.producer
            .commit_transaction(TXN_CALL_TIMEOUT)
            .map_err(|e| {
                WeirError::Sink(format!(
                    "kafka table {}: committing the transaction of '{}': {e}",
                    self.table, s.id
                ))
            })?;
        s.state = SlotState::Idle;
        Ok(())
    }

    /// Barrier of checkpoint `epoch`: pre-commits the open transaction and
    /// returns the snapshot (records of every uncommitted epoch).
    /// Blocking (flush).
    pub(crate) fn pre_commit(&mut self, epoch: u64) -> Result<OperatorState> {
        if self.slots[self.current].state == SlotState::Open {
            self.precommit_slot(self.current, epoch)?;
            for r in std::mem::take(&mut self.records) {
                self.pending.push((epoch, r));
            }
            if let Some(free) = self.slots.iter().position(|s| s.state == SlotState::Idle) {
                self.current = free;
            }
        }
        let mut state = OperatorState::empty();
        if !self.pending.is_empty() {
            state.put(PENDING, records_to_batch(&self.pending)?)?;
        }
        Ok(state)
    }

    /// Checkpoint `upto` completed: commits every transaction pre-committed
    /// up to it, oldest first. Blocking.
    pub(crate) fn commit(&mut self, upto: u64) -> Result<()> {
        let mut ready: Vec<(u64, usize)> = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match s.state {
                SlotState::PreCommitted(e) if e <= upto => Some((e, i)),
                _ => None,
            })
            .collect();
        ready.sort_unstable();
        for (e, i) in ready {
            self.commit_slot(i)?;
            self.pending.retain(|(pe, _)| *pe > e);
        }
        Ok(())
    }

    /// Errors unless every transaction committed (end of input).
    pub(crate) fn check_finished(&self) -> Result<()> {
        match self.slots.iter().find(|s| s.state != SlotState::Idle) {
            None => Ok(()),
            Some(s) => Err(WeirError::Internal(format!(
                "kafka table {}: the transaction of '{}' is {:?} at the end of input",
                self.table, s.id, s.state
            ))),
        }
    }
}

fn send_blocking(
    producer: &ThreadedProducer<DeliveryContext>,
    topic: &str,
    r: &Record,
    table: &str,
) -> Result<()> {
    let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
    if let Some(k) = &r.0 {
        record = record.key(k.as_slice());
    }
    if let Some(v) = &r.1 {
        record = record.payload(v.as_slice());
    }
    if let Some(p) = r.2 {
        record = record.partition(p);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((
                rdkafka::error::KafkaError::MessageProduction(
                    rdkafka::types::RDKafkaErrorCode::QueueFull,
                ),
                back,
            )) => {
                record = back;
                std::thread::sleep(Duration::from_millis(5));
            }
            Err((e, _)) => {
                return Err(WeirError::Sink(format!(
                    "kafka table {table}: cannot send to topic '{topic}': {e}"
                )))
            }
        }
    }
}

fn records_to_batch(records: &[(u64, Record)]) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("epoch", DataType::UInt64, false),
        Field::new("key", DataType::Binary, true),
        Field::new("value", DataType::Binary, true),
        Field::new("partition", DataType::Int32, true),
    ]));
    let epochs = UInt64Array::from_iter_values(records.iter().map(|(e, _)| *e));
    let keys: BinaryArray = records.iter().map(|(_, r)| r.0.as_deref()).collect();
    let values: BinaryArray = records.iter().map(|(_, r)| r.1.as_deref()).collect();
    let parts: Int32Array = records.iter().map(|(_, r)| r.2).collect();
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(epochs),
            Arc::new(keys),
            Arc::new(values),
            Arc::new(parts),
        ],
    )?)
}

fn records_from_batch(b: &RecordBatch) -> Result<Vec<(u64, Record)>> {
    let bad = || WeirError::State(format!("corrupt '{PENDING}' state of a kafka sink"));
    if b.num_columns() != 4 {
        return Err(bad());
    }
    let epochs = b
        .column(0)
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(bad)?;
    let keys = b.column(1).as_binary_opt::<i32>().ok_or_else(bad)?;
    let values = b.column(2).as_binary_opt::<i32>().ok_or_else(bad)?;
    let parts = b
        .column(3)
        .as_primitive_opt::<arrow::datatypes::Int32Type>()
        .ok_or_else(bad)?;
    Ok((0..b.num_rows())
        .map(|i| {
            let key = (!keys.is_null(i)).then(|| keys.value(i).to_vec());
            let value = (!values.is_null(i)).then(|| values.value(i).to_vec());
            let part = (!parts.is_null(i)).then(|| parts.value(i));
            (epochs.value(i), (key, value, part))
        })
        .collect())
}

/// Checks the producers' `transaction.timeout.ms` against the brokers'
/// `transaction.max.timeout.ms` (a larger one makes `init_transactions`
/// fail with a less clear error). Brokers that cannot describe their
/// configuration are not checked (a warning).
fn check_transaction_timeout(options: &KafkaOptions, table: &str) -> Result<u64> {
    let ours = match options.properties.get("transaction.timeout.ms") {
        Some(v) => v.trim().parse::<u64>().map_err(|_| {
            WeirError::Config(format!(
                "table {table}: 'properties.transaction.timeout.ms' = '{v}' is not a number of milliseconds"
            ))
        })?,
        None => DEFAULT_TRANSACTION_TIMEOUT_MS,
    };
    match broker_max_transaction_timeout(options) {
        Ok(max) => timeout_within_limit(ours, max, table),
        Err(e) => {
            tracing::warn!(
                "kafka table {table}: could not check transaction.timeout.ms ({ours}) against the broker's transaction.max.timeout.ms: {e}"
            );
            Ok(ours)
        }
    }
}

/// `ours` if the broker's limit `max` (when it reports one) allows it, else
/// a configuration error naming both.
fn timeout_within_limit(ours: u64, max: Option<u64>, table: &str) -> Result<u64> {
    match max {
        Some(max) if ours > max => Err(WeirError::Config(format!(
            "table {table}: the producer's transaction.timeout.ms ({ours}) exceeds the broker's transaction.max.timeout.ms ({max}): lower 'properties.transaction.timeout.ms' or raise the broker's limit"
        ))),
        _ => Ok(ours),
    }
}

/// The first broker's `transaction.max.timeout.ms`, if it reports one.
fn broker_max_transaction_timeout(
    options: &KafkaOptions,
) -> std::result::Result<Option<u64>, String> {
    let admin: AdminClient<DefaultClientContext> = options
        .client_config()
        .create()
        .map_err(|e| e.to_string())?;
    let md = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let Some(broker) = md.brokers().first().map(|b| b.id()) else {
        return Ok(None);
    };
    let spec = [ResourceSpecifier::Broker(broker)];
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results = futures::executor::block_on(admin.describe_configs(&spec, &opts))
        .map_err(|e| e.to_string())?;
    for r in results {
        let r = r.map_err(|e| e.to_string())?;
        if let Some(entry) = r.get("transaction.max.timeout.ms") {
            return Ok(entry.value.as_deref().and_then(|v| v.parse().ok()));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transaction_timeout_above_the_broker_limit_is_a_config_error() {
        // Kafka's default limit is 900 000 ms (15 min).
        let err =
            timeout_within_limit(3_600_000, Some(900_000), "out").expect_err("above the limit");
        let text = err.to_string();
        assert!(matches!(err, WeirError::Config(_)), "{text}");
        assert!(text.contains("(3600000)"), "{text}");
        assert!(text.contains("(900000)"), "{text}");
        assert!(text.contains("properties.transaction.timeout.ms"), "{text}");
        assert_eq!(
            timeout_within_limit(900_000, Some(900_000), "out").ok(),
            Some(900_000)
        );
        assert_eq!(
            timeout_within_limit(60_000, Some(900_000), "out").ok(),
            Some(60_000)
        );
        // A broker that reports no limit (tansu 0.6) is not checked.
        assert_eq!(
            timeout_within_limit(3_600_000, None, "out").ok(),
            Some(3_600_000)
        );
    }
}
