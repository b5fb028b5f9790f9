//! The Kafka source: Weir assigns partitions to subtasks itself (no consumer
//! group rebalancing), one split per partition.
//!
//! Each subtask runs a reader thread that owns a librdkafka consumer: it
//! polls messages, decodes them straight into per-partition Arrow builders
//! and hands whole batches (one partition each) to the subtask's async task
//! over a small bounded channel, so decoding runs beside the operators
//! chained to the source and never blocks tokio's threads. Back-pressure
//! reaches the consumer through that channel.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use parking_lot::Mutex;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot};
use weir_engine::source::{MalformedRecord, Source, SourceContext, SourceFactory, SplitPosition};
use weir_engine::{Result, WeirError};

use super::client::{
    describe_client_error, discover_partitions, retry, Reporter, TopicPartition,
    WeirConsumerContext, REQUEST_TIMEOUT,
};
use super::dead_letter::DeadLetter;
use super::decode::{RecordLayout, SplitDecoder};
use super::options::{BoundedMode, KafkaOptions, OnMalformed, StartupMode};
use crate::TableDescriptor;

/// How long the reader waits for a message before flushing what it has
/// and checking for cancellation.
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// Rows wait at most this long in a partition's builders while other
/// partitions keep the consumer busy.
const MAX_LINGER: Duration = Duration::from_millis(20);
/// How often the async side calls `ctx.tick()` when no batch comes.
const TICK: Duration = Duration::from_millis(50);
/// Batches in flight between the reader thread and the subtask.
const CHANNEL_BATCHES: usize = 4;
/// While a broker problem is shown and no message arrives, probe the
/// broker this often to clear the status once it is back.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// `positions` value of a split whose start offset is not resolved yet.
const UNRESOLVED: i64 = i64::MIN;

/// The offsets of the latest completed checkpoint, handed from the
/// subtask to its reader thread, which commits them to the group (the
/// consumer lives on that thread).
struct CheckpointCommits {
    /// Set when `offsets` holds offsets not committed yet.
    ready: AtomicBool,
    /// Per local split: the checkpointed next offset ([`UNRESOLVED`]: none).
    offsets: Vec<AtomicI64>,
}

impl CheckpointCommits {
    fn new(splits: usize) -> Self {
        Self {
            ready: AtomicBool::new(false),
            offsets: (0..splits).map(|_| AtomicI64::new(UNRESOLVED)).collect(),
        }
    }

    /// Stages the positions a completed checkpoint stored.
    fn stage(&self, splits: &[TopicPartition], positions: &[SplitPosition]) {
        for p in positions {
            let Some(i) = splits.iter().position(|tp| tp.to_string() == p.split) else {
                continue;
            };
            // A split whose start was not resolved is stored as the startup
            // mode's name: nothing to commit for it.
            if let Ok(offset) = p.position.parse::<i64>() {
                self.offsets[i].store(offset, Ordering::Relaxed);
            }
        }
        self.ready.store(true, Ordering::Release);
    }
}

/// Creates Kafka source subtasks for one table.
pub struct KafkaSourceFactory {
    table: String,
    options: Arc<KafkaOptions>,
    layout: Arc<RecordLayout>,
    /// The partitions of the topics, fetched when the first subtask is
    /// created (not at planning: `explain` needs no broker) and shared so
    /// that every subtask sees the same list.
    partitions: Mutex<Option<Arc<Vec<TopicPartition>>>>,
}

impl KafkaSourceFactory {
    /// Checks the table's columns against the formats and metadata keys.
    pub fn new(table: &TableDescriptor, options: KafkaOptions) -> Result<Self> {
        let layout = RecordLayout::new(table, &options)?;
        Ok(Self {
            table: table.name.clone(),
            options: Arc::new(options),
            layout: Arc::new(layout),
            partitions: Mutex::new(None),
        })
    }

    /// The parsed options.
    pub fn options(&self) -> &KafkaOptions {
        &self.options
    }

    /// The partitions read, in split order (global split `i` is read by
    /// subtask `i % parallelism`). Fetched from the brokers on the first
    /// call, retried with backoff for `'scan.startup.timeout'`.
    pub fn partitions(&self) -> Result<Arc<Vec<TopicPartition>>> {
        let mut cached = self.partitions.lock();
        if let Some(p) = &*cached {
            return Ok(p.clone());
        }
        let p = Arc::new(discover_partitions(
            &self.options,
            &self.table,
            self.options.startup_timeout,
        )?);
        *cached = Some(p.clone());
        Ok(p)
    }
}

impl SourceFactory for KafkaSourceFactory {
    fn schema(&self) -> SchemaRef {
        self.layout.schema().clone()
    }

    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>> {
        let parallelism = parallelism.max(1);
        let all = self.partitions()?;
        let splits: Vec<TopicPartition> = all
            .iter()
            .enumerate()
            .filter(|(i, _)| i % parallelism == subtask)
            .map(|(_, tp)| tp.clone())
            .collect();
        let positions = Arc::new(splits.iter().map(|_| AtomicI64::new(UNRESOLVED)).collect());
        Ok(Box::new(KafkaSource {
            table: self.table.clone(),
            options: self.options.clone(),
            layout: self.layout.clone(),
            splits,
            positions,
            restored: Arc::new(Vec::new()),
            subtask,
        }))
    }

    fn describe(&self) -> String {
        let o = &self.options;
        let bounded = match &o.bounded {
            BoundedMode::Unbounded => String::new(),
            BoundedMode::LatestOffset => ", bounded: latest-offset".into(),
            BoundedMode::GroupOffsets => ", bounded: group-offsets".into(),
            BoundedMode::Timestamp(t) => format!(", bounded: timestamp {t}"),
            BoundedMode::SpecificOffsets(_) => ", bounded: specific-offsets".into(),
        };
        format!(
            "kafka {} {} ({}{bounded}, {} columns)",
            o.format.name(),
            o.topics.join(";"),
            o.startup.name(),
            self.layout.schema().fields().len()
        )
    }
}

/// One subtask of a Kafka source.
struct KafkaSource {
    table: String,
    options: Arc<KafkaOptions>,
    layout: Arc<RecordLayout>,
    /// The partitions this subtask reads, in local split order.
    splits: Vec<TopicPartition>,
    /// Per split: the offset after the last message emitted (the next one
    /// to read), [`UNRESOLVED`] before the start offset is known.
    positions: Arc<Vec<AtomicI64>>,
    /// Per split: the offset a checkpoint restored (`None`: the split was
    /// not in the checkpoint and starts per `'scan.startup.mode'`). Empty
    /// when not resuming.
    restored: Arc<Vec<Option<i64>>>,
    subtask: usize,
}

/// What the reader thread tells the subtask.
enum Event {
    /// The start offset of every split.
    Started(Vec<i64>),
    /// Rows of split `split` (if any), malformed messages met while reading
    /// them, and the offset after the last message they cover.
    Batch {
        split: usize,
        batch: Option<RecordBatch>,
        malformed: Vec<MalformedRecord>,
        next_offset: i64,
    },
    /// Reading failed for good.
    Failed(WeirError),
    /// The reader stops: acknowledge once every earlier event is handled
    /// (it then commits the emitted offsets and exits).
    Finished(oneshot::Sender<()>),
}

#[async_trait]
impl Source for KafkaSource {
    fn split_count(&self) -> usize {
        self.splits.len()
    }

    async fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        if self.splits.is_empty() {
            return Ok(());
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, mut rx) = mpsc::channel::<Event>(CHANNEL_BATCHES);
        let reader = Reader {
            table: self.table.clone(),
            options: self.options.clone(),
            layout: self.layout.clone(),
            splits: self.splits.clone(),
            positions: self.positions.clone(),
            restored: self.restored.clone(),
            reporter: Arc::new(Reporter::new(&self.table, Some(ctx.metrics().clone()))),
            stop: stop.clone(),
            subtask: self.subtask,
            checkpoint_commits: (self.options.commit_offsets
                && self.options.commit_on_checkpoint
                && ctx.checkpointing())
            .then(|| Arc::new(CheckpointCommits::new(self.splits.len()))),
        };
        let checkpoint_commits = reader.checkpoint_commits.clone();
        let handle = std::thread::Builder::new()
            .name(format!("weir-kafka-{}-{}", self.table, self.subtask))
            .spawn(move || reader.run(tx))
            .map_err(|e| WeirError::io("starting a Kafka reader thread", e))?;
        let result = self
            .receive(ctx, &mut rx, &stop, checkpoint_commits.as_deref())
            .await;
        stop.store(true, Ordering::Relaxed);
        // Dropping the receiver unblocks a reader waiting to send.
        drop(rx);
        let joined = tokio::task::spawn_blocking(move || handle.join())
            .await
            .map_err(|e| WeirError::Internal(format!("joining the Kafka reader: {e}")))?;
        if joined.is_err() {
            return Err(WeirError::Internal(format!(
                "kafka table {}: the reader thread of subtask {} panicked",
                self.table, self.subtask
            )));
        }
        ctx.set_status(None);
        result
    }

    fn positions(&self) -> Vec<SplitPosition> {
        self.splits
            .iter()
            .zip(self.positions.iter())
            .map(|(tp, p)| {
                let p = p.load(Ordering::Relaxed);
                SplitPosition {
                    split: tp.to_string(),
                    position: if p == UNRESOLVED {
                        self.options.startup.name().to_string()
                    } else {
                        p.to_string()
                    },
                }
            })
            .collect()
    }

    fn supports_checkpoints(&self) -> bool {
        true
    }

    /// Resumes each checkpointed partition at its stored next offset;
    /// partitions the checkpoint does not know (added since, or whose start
    /// was not resolved when it was taken) start per `'scan.startup.mode'`.
    fn restore_positions(&mut self, positions: &[SplitPosition]) -> Result<()> {
        let mut restored = vec![None; self.splits.len()];
        for p in positions {
            let Some(i) = self.splits.iter().position(|tp| tp.to_string() == p.split) else {
                return Err(WeirError::State(format!(
                    "kafka table {}: checkpointed partition {} is not read by subtask {} \
                     (were partitions or the parallelism changed?)",
                    self.table, p.split, self.subtask
                )));
            };
            // A split whose start was not resolved is stored as the startup
            // mode's name: it starts per that mode again.
            if let Ok(offset) = p.position.parse::<i64>() {
                restored[i] = Some(offset);
                self.positions[i].store(offset, Ordering::Relaxed);
            }
        }
        self.restored = Arc::new(restored);
        Ok(())
    }
}

impl KafkaSource {
    /// A batch without rows, to report a position alone.
    fn empty(&self) -> RecordBatch {
        RecordBatch::new_empty(self.layout.schema().clone())
    }

    /// Emits what the reader sends until it finishes, the job is cancelled
    /// or emitting fails.
    async fn receive(
        &mut self,
        ctx: &mut SourceContext,
        rx: &mut mpsc::Receiver<Event>,
        stop: &AtomicBool,
        checkpoint_commits: Option<&CheckpointCommits>,
    ) -> Result<()> {
        let mut failure = None;
        loop {
            if ctx.is_cancelled() {
                stop.store(true, Ordering::Relaxed);
            }
            if let Some(commits) = checkpoint_commits {
                if let Some(done) = ctx.completed_checkpoint() {
                    commits.stage(&self.splits, &done.positions);
                }
            }
            let event = match tokio::time::timeout(TICK, rx.recv()).await {
                Err(_) => {
                    ctx.tick().await?;
                    continue;
                }
                Ok(None) => break,
                Ok(Some(e)) => e,
            };
            match event {
                Event::Started(offsets) => {
                    for (i, (p, o)) in self.positions.iter().zip(offsets).enumerate() {
                        p.store(o, Ordering::Relaxed);
                        // Report the resolved start to the checkpoints.
                        ctx.emit_at(i, self.empty(), o).await?;
                    }
                }
                Event::Batch {
                    split,
                    batch,
                    malformed,
                    next_offset,
                } => {
                    for m in malformed {
                        ctx.report_malformed(m);
                    }
                    if stop.load(Ordering::Relaxed) {
                        // Cancelled: what is still queued is not emitted,
                        // and positions stay at what was.
                        continue;
                    }
                    if let Some(p) = self.positions.get(split) {
                        p.store(next_offset, Ordering::Relaxed);
                    }
                    // A checkpoint barrier may follow: it records
                    // `next_offset` as this split's position.
                    let b = batch.unwrap_or_else(|| self.empty());
                    ctx.emit_at(split, b, next_offset).await?;
                }
                Event::Failed(e) => {
                    stop.store(true, Ordering::Relaxed);
                    failure = Some(e);
                }
                Event::Finished(ack) => {
                    let _ = ack.send(());
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// One partition as the reader thread sees it.
struct ReaderSplit {
    tp: TopicPartition,
    decoder: SplitDecoder,
    /// The offset after the last message consumed (decoded or not).
    next: i64,
    /// `next` as of the last event sent.
    sent_next: i64,
    /// Stop before this offset (bounded reads).
    stop_at: Option<i64>,
    done: bool,
    malformed: Vec<MalformedRecord>,
    /// When the oldest waiting row arrived.
    first_row_at: Option<Instant>,
    /// Whether messages before `next` are being delivered again.
    redelivery: Redelivery,
}

/// What a message's offset says, next to the offset after the last
/// message read from its partition.
#[derive(Debug, PartialEq, Eq)]
enum Delivery {
    /// Not read before: process it.
    New,
    /// Already read: the client delivered it a second time (seen with
    /// unpatched tansu: a batch ending before the fetch offset, 100-500
    /// messages). Emitted again it would be counted twice, so it is
    /// skipped; `first` is true for the first message of such a run.
    Again { first: bool },
}

/// Tells new messages from ones delivered again, one partition's worth.
#[derive(Debug, Default)]
struct Redelivery {
    active: bool,
}

impl Redelivery {
    /// Classifies the message at `offset` when `next` is the offset after
    /// the last one read.
    fn check(&mut self, offset: i64, next: i64) -> Delivery {
        if offset < next {
            let first = !self.active;
            self.active = true;
            Delivery::Again { first }
        } else {
            self.active = false;
            Delivery::New
        }
    }
}

/// The state of a reader thread.
struct Reader {
    table: String,
    options: Arc<KafkaOptions>,
    layout: Arc<RecordLayout>,
    splits: Vec<TopicPartition>,
    /// Emitted positions (updated by the subtask), committed to the group.
    positions: Arc<Vec<AtomicI64>>,
    /// Offsets restored from a checkpoint, per split (see [`KafkaSource`]).
    restored: Arc<Vec<Option<i64>>>,
    reporter: Arc<Reporter>,
    stop: Arc<AtomicBool>,
    subtask: usize,
    /// With checkpoints (and a group to commit to): the offsets of
    /// completed checkpoints, committed instead of the emitted ones.
    checkpoint_commits: Option<Arc<CheckpointCommits>>,
}

impl Reader {
    /// The thread's body: read, then hand over and commit.
    fn run(self, tx: mpsc::Sender<Event>) {
        let consumer = match self.consumer() {
            Ok(c) => Some(c),
            Err(e) => {
                let _ = tx.blocking_send(Event::Failed(e));
                None
            }
        };
        if let Some(consumer) = &consumer {
            if let Err(e) = self.read(consumer, &tx) {
                let _ = tx.blocking_send(Event::Failed(e));
            }
        }
        let (ack_tx, ack_rx) = oneshot::channel();
        if tx.blocking_send(Event::Finished(ack_tx)).is_ok() {
            let _ = ack_rx.blocking_recv();
        }
        if let Some(consumer) = &consumer {
            match &self.checkpoint_commits {
                // At the end of a bounded input the emitted offsets are the
                // final ones every later checkpoint stores; a cancelled or
                // failed job leaves the group at its last checkpoint.
                Some(c) if self.stop.load(Ordering::Relaxed) => {
                    self.commit_checkpointed(consumer, c, CommitMode::Sync)
                }
                _ => self.commit(consumer, CommitMode::Sync),
            }
        }
    }

    fn consumer(&self) -> Result<BaseConsumer<WeirConsumerContext>> {
        let mut config = self.options.client_config();
        if self.options.group_id.is_none() {
            // librdkafka's `assign` needs a group id even though no group is
            // joined; without the user's, nothing is committed to this one.
            config.set("group.id", format!("weir-{}", self.table));
        }
        config
            .set("client.id", format!("weir-{}-{}", self.table, self.subtask))
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "enable.partition.eof",
                if self.options.bounded.is_bounded() {
                    "true"
                } else {
                    "false"
                },
            );
        config
            .create_with_context(WeirConsumerContext::new(self.reporter.clone()))
            .map_err(|e| {
                WeirError::Config(format!(
                    "table {}: cannot create a Kafka consumer: {e}",
                    self.table
                ))
            })
    }

    /// Runs a broker request with retries until it succeeds or the job
    /// stops (`Ok(None)`).
    fn request<T>(
        &self,
        what: &str,
        op: impl FnMut() -> rdkafka::error::KafkaResult<T>,
    ) -> Result<Option<T>> {
        match retry(what, &self.reporter, Some(&self.stop), None, |_| false, op) {
            Ok(v) => Ok(Some(v)),
            Err(_) if self.stop.load(Ordering::Relaxed) => Ok(None),
            Err(e) => Err(WeirError::Source(format!(
                "kafka table {}: {what}: {e}",
                self.table
            ))),
        }
    }

    fn watermarks(
        &self,
        consumer: &BaseConsumer<WeirConsumerContext>,
        tp: &TopicPartition,
    ) -> Result<Option<(i64, i64)>> {
        self.request(&format!("reading the offsets of {tp}"), || {
            consumer.fetch_watermarks(&tp.topic, tp.partition, REQUEST_TIMEOUT)
        })
    }

    /// Committed offsets of the group for every split (`None`: none committed).
    fn committed(
        &self,
        consumer: &BaseConsumer<WeirConsumerContext>,
    ) -> Result<Option<Vec<Option<i64>>>> {
        let mut tpl = TopicPartitionList::new();
        for tp in &self.splits {
            tpl.add_partition(&tp.topic, tp.partition);
        }
        let got = self.request("reading the group's committed offsets", || {
            consumer.committed_offsets(tpl.clone(), REQUEST_TIMEOUT)
        })?;
        Ok(got.map(|tpl| {
            self.splits
                .iter()
                .map(|tp| {
                    tpl.find_partition(&tp.topic, tp.partition)
                        .and_then(|e| e.offset().to_raw())
                        .filter(|o| *o >= 0)
                })
                .collect()
        }))
    }

    /// The first offset at or after `ts` per split (`None`: no such record).
    fn offsets_for_time(
        &self,
        consumer: &BaseConsumer<WeirConsumerContext>,
        ts: i64,
    ) -> Result<Option<Vec<Option<i64>>>> {
        let mut tpl = TopicPartitionList::new();
        for tp in &self.splits {
            tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(ts))
                .map_err(|e| WeirError::Internal(format!("building an offset request: {e}")))?;
        }
        let got = self.request(&format!("looking up offsets for timestamp {ts}"), || {
            consumer.offsets_for_times(tpl.clone(), REQUEST_TIMEOUT)
        })?;
        Ok(got.map(|tpl| {
            self.splits
                .iter()
                .map(|tp| {
                    tpl.find_partition(&tp.topic, tp.partition)
                        .and_then(|e| e.offset().to_raw())
                        .filter(|o| *o >= 0)
                })
                .collect()
        }))
    }

    /// The start offset of every split (`None` when the job stopped first).
    fn start_offsets(
        &self,
        consumer: &BaseConsumer<WeirConsumerContext>,
    ) -> Result<Option<Vec<i64>>> {
        let mut out = Vec::with_capacity(self.splits.len());
        let committed = match &self.options.startup {
            StartupMode::GroupOffsets => match self.committed(consumer)? {
                Some(c) => Some(c),
                None => return Ok(None),
            },
            StartupMode::SpecificOffsets(_) if self.options.group_id.is_some() => {
                match self.committed(consumer)? {
                    Some(c) => Some(c),
                    None => return Ok(None),
                }
            }
            _ => None,
        };
        let by_time = match &self.options.startup {
            StartupMode::Timestamp(ts) => match self.offsets_for_time(consumer, *ts)? {
                Some(v) => Some(v),
                None => return Ok(None),
            },
            _ => None,
        };
        for (i, tp) in self.splits.iter().enumerate() {
            let Some((low, high)) = self.watermarks(consumer, tp)? else {
                return Ok(None);
            };
            if let Some(o) = self.restored.get(i).copied().flatten() {
                if o < low {
                    tracing::warn!(
                        "kafka table {}: checkpointed offset {o} of {tp} is before the start of the log ({low}): the messages in between were deleted and are skipped",
                        self.table
                    );
                }
                // Resumed exactly where the checkpoint says, also past the
                // end the broker reports: a reported end can be short of
                // what was already read (unpatched tansu 0.6 reports the
                // last record batch's base offset + 1), and starting there
                // would read those messages a second time.
                out.push(o.max(low));
                continue;
            }
            let committed_here = committed.as_ref().and_then(|c| c[i]);
            let start = match &self.options.startup {
                StartupMode::EarliestOffset => low,
                StartupMode::LatestOffset => high,
                StartupMode::Timestamp(_) => by_time.as_ref().and_then(|v| v[i]).unwrap_or(high),
                StartupMode::SpecificOffsets(map) => match map.get(&tp.partition) {
                    Some(o) => *o,
                    None => committed_here.unwrap_or(low),
                },
                StartupMode::GroupOffsets => match committed_here {
                    Some(o) => o,
                    None => match self.options.properties.get("auto.offset.reset").map(|s| s.trim()) {
                        Some("earliest" | "smallest" | "beginning") => low,
                        Some("latest" | "largest" | "end") => high,
                        _ => {
                            return Err(WeirError::Source(format!(
                                "kafka table {}: group '{}' has no committed offset for {tp}, and 'properties.auto.offset.reset' does not say where to start ('earliest' or 'latest')",
                                self.table,
                                self.options.group_id.as_deref().unwrap_or("")
                            )))
                        }
                    },
                },
            };
            // An offset outside the log starts where librdkafka's
            // `auto.offset.reset` says; clamp the reported start to the log.
            out.push(start.clamp(low, high.max(low)));
        }
        Ok(Some(out))
    }

    /// The exclusive stop offset of every split for bounded reads.
    fn stop_offsets(
        &self,
        consumer: &BaseConsumer<WeirConsumerContext>,
    ) -> Result<Option<Vec<Option<i64>>>> {
        let bounded = &self.options.bounded;
        if !bounded.is_bounded() {
            return Ok(Some(vec![None; self.splits.len()]));
        }
        let committed = match bounded {
            BoundedMode::GroupOffsets => match self.committed(consumer)? {
                Some(c) => Some(c),
                None => return Ok(None),
            },
            _ => None,
        };
        let by_time = match bounded {
            BoundedMode::Timestamp(ts) => match self.offsets_for_time(consumer, *ts)? {
                Some(v) => Some(v),
                None => return Ok(None),
            },
            _ => None,
        };
        let mut out = Vec::with_capacity(self.splits.len());
        for (i, tp) in self.splits.iter().enumerate() {
            let Some((_, high)) = self.watermarks(consumer, tp)? else {
                return Ok(None);
            };
            let stop = match bounded {
                BoundedMode::Unbounded | BoundedMode::LatestOffset => high,
                BoundedMode::Timestamp(_) => by_time.as_ref().and_then(|v| v[i]).unwrap_or(high),
                BoundedMode::SpecificOffsets(map) => map.get(&tp.partition).copied().unwrap_or(high),
                BoundedMode::GroupOffsets => match committed.as_ref().and_then(|c| c[i]) {
                    Some(o) => o,
                    None => {
                        return Err(WeirError::Source(format!(
                            "kafka table {}: 'scan.bounded.mode' = 'group-offsets' but group '{}' has no committed offset for {tp}",
                            self.table,
                            self.options.group_id.as_deref().unwrap_or("")
                        )))
                    }
                },
            };
            out.push(Some(stop));
        }
        Ok(Some(out))
    }

    /// Resolves offsets, assigns the partitions and reads until the end
    /// (bounded), cancellation or a fatal error.
    fn read(
        &self,
        consumer: &BaseConsumer<WeirConsumerContext>,
        tx: &mpsc::Sender<Event>,
    ) -> Result<()> {
        let Some(starts) = self.start_offsets(consumer)? else {
            return Ok(());
        };
        let Some(stops) = self.stop_offsets(consumer)? else {
            return Ok(());
        };
        self.reporter.clear();
        if tx.blocking_send(Event::Started(starts.clone())).is_err() {
            return Ok(());
        }
        let mut splits = Vec::with_capacity(self.splits.len());
        for (i, tp) in self.splits.iter().enumerate() {
            let decoder = self.layout.decoder(&tp.topic, tp.partition)?;
            let stop_at = stops[i];
            splits.push(ReaderSplit {
                tp: tp.clone(),
                decoder,
                next: starts[i],
                sent_next: starts[i],
                stop_at,
                done: stop_at.is_some_and(|s| starts[i] >= s),
                malformed: Vec::new(),
                first_row_at: None,
                redelivery: Redelivery::default(),
            });
        }
        let mut tpl = TopicPartitionList::new();
        for s in splits.iter().filter(|s| !s.done) {
            tpl.add_partition_offset(&s.tp.topic, s.tp.partition, Offset::Offset(s.next))
                .map_err(|e| WeirError::Internal(format!("building an assignment: {e}")))?;
        }
        if tpl.count() == 0 {
            return Ok(());
        }
        consumer.assign(&tpl).map_err(|e| {
            WeirError::Source(format!(
                "kafka table {}: assigning partitions: {e}",
                self.table
            ))
        })?;
        let mut state = ReadState {
            reader: self,
            consumer,
            tx,
            splits,
            lookup: Lookup::new(&self.splits),
            dead_letter: None,
            last_commit: Instant::now(),
            last_probe: Instant::now(),
            waiting: 0,
        };
        let result = state.poll_loop();
        let dead_letter_result = match &mut state.dead_letter {
            Some(d) => d.flush(&self.stop),
            None => Ok(()),
        };
        result.and(dead_letter_result)
    }

    /// Commits the emitted positions to the group (when asked to).
    fn commit(&self, consumer: &BaseConsumer<WeirConsumerContext>, mode: CommitMode) {
        if self.options.commit_offsets {
            self.commit_offsets(consumer, &self.positions, mode);
        }
    }

    /// Commits the offsets of the latest completed checkpoint, if not
    /// committed yet.
    fn commit_checkpointed(
        &self,
        consumer: &BaseConsumer<WeirConsumerContext>,
        commits: &CheckpointCommits,
        mode: CommitMode,
    ) {
        if commits.ready.swap(false, Ordering::Acquire) {
            self.commit_offsets(consumer, &commits.offsets, mode);
        }
    }

    /// Commits `offsets` (one per local split) to the group.
    fn commit_offsets(
        &self,
        consumer: &BaseConsumer<WeirConsumerContext>,
        offsets: &[AtomicI64],
        mode: CommitMode,
    ) {
        let mut tpl = TopicPartitionList::new();
        for (tp, p) in self.splits.iter().zip(offsets.iter()) {
            let p = p.load(Ordering::Relaxed);
            if p != UNRESOLVED && p >= 0 {
                let _ = tpl.add_partition_offset(&tp.topic, tp.partition, Offset::Offset(p));
            }
        }
        if tpl.count() == 0 {
            return;
        }
        if let Err(e) = consumer.commit(&tpl, mode) {
            tracing::warn!(
                "kafka table {}: committing offsets to group '{}' failed: {e}",
                self.table,
                self.options.group_id.as_deref().unwrap_or("")
            );
        }
    }
}

/// Finds the local split of a message.
struct Lookup {
    /// Per topic, the local split of each partition number (`usize::MAX`:
    /// not read by this subtask), indexed by partition number.
    topics: Vec<(String, Vec<usize>)>,
}

impl Lookup {
    fn new(splits: &[TopicPartition]) -> Self {
        let mut topics: Vec<(String, Vec<usize>)> = Vec::new();
        for (i, tp) in splits.iter().enumerate() {
            let Ok(p) = usize::try_from(tp.partition) else {
                continue;
            };
            let at = match topics.iter().position(|(t, _)| *t == tp.topic) {
                Some(at) => at,
                None => {
                    topics.push((tp.topic.clone(), Vec::new()));
                    topics.len() - 1
                }
            };
            let map = &mut topics[at].1;
            if map.len() <= p {
                map.resize(p + 1, usize::MAX);
            }
            map[p] = i;
        }
        Self { topics }
    }

    fn get(map: &[usize], partition: i32) -> Option<usize> {
        let i = *map.get(usize::try_from(partition).ok()?)?;
        (i != usize::MAX).then_some(i)
    }

    /// The local split of message `m` (its topic name is read only when
    /// several topics are read: that costs a `strlen` and a UTF-8 check).
    fn find(&self, m: &BorrowedMessage<'_>) -> Option<usize> {
        let map = if self.topics.len() == 1 {
            &self.topics[0].1
        } else {
            let topic = m.topic();
            &self.topics.iter().find(|(t, _)| t == topic)?.1
        };
        Self::get(map, m.partition())
    }

    /// Local splits with this partition number (end-of-partition events
    /// name only the number).
    fn with_partition(&self, partition: i32) -> Vec<usize> {
        self.topics
            .iter()
            .filter_map(|(_, m)| Self::get(m, partition))
            .collect()
    }
}

/// The reading loop's state.
struct ReadState<'a> {
    reader: &'a Reader,
    consumer: &'a BaseConsumer<WeirConsumerContext>,
    tx: &'a mpsc::Sender<Event>,
    splits: Vec<ReaderSplit>,
    lookup: Lookup,
    dead_letter: Option<DeadLetter>,
    last_commit: Instant,
    last_probe: Instant,
    /// Splits with rows waiting.
    waiting: usize,
}

impl ReadState<'_> {
    fn stopped(&self) -> bool {
        self.reader.stop.load(Ordering::Relaxed)
    }

    fn all_done(&self) -> bool {
        self.splits.iter().all(|s| s.done)
    }

    fn poll_loop(&mut self) -> Result<()> {
        let batch_size = self.reader.options.batch_size;
        let mut since_linger_check = 0u32;
        loop {
            if self.stopped() {
                return Ok(());
            }
            // Checked between bursts of messages (a fatal error stops them).
            if since_linger_check == 0 {
                if let Some(f) = self.consumer.context().fatal.lock().take() {
                    return Err(WeirError::Source(format!(
                        "kafka table {}: fatal client error: {f}",
                        self.reader.table
                    )));
                }
            }
            let timeout = if self.waiting > 0 {
                Duration::ZERO
            } else {
                POLL_TIMEOUT
            };
            match self.consumer.poll(timeout) {
                None => {
                    since_linger_check = 0;
                    self.flush_all()?;
                    if self.all_done() {
                        return Ok(());
                    }
                    self.housekeeping()?;
                }
                Some(Ok(m)) => {
                    if self.reader.reporter.has_problem() {
                        self.reader.reporter.clear();
                    }
                    self.on_message(&m, batch_size)?;
                    since_linger_check += 1;
                    if since_linger_check >= 1024 {
                        since_linger_check = 0;
                        self.flush_lingering()?;
                        self.housekeeping()?;
                        if self.all_done() {
                            self.flush_all()?;
                            return Ok(());
                        }
                    }
                }
                Some(Err(KafkaError::PartitionEOF(p))) => {
                    // Caught up with the end of the log: a split is done
                    // when that end is at or past its stop offset (the
                    // last offsets before it may be transaction markers,
                    // which are never delivered).
                    for i in self.lookup.with_partition(p) {
                        if self.splits[i].stop_at.is_some()
                            && !self.splits[i].done
                            && self.end_reached(i)
                        {
                            self.finish_split(i)?;
                        }
                    }
                    if self.all_done() {
                        self.flush_all()?;
                        return Ok(());
                    }
                }
                Some(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    return Err(WeirError::Source(format!(
                        "kafka table {}: fatal consumer error: {code}",
                        self.reader.table
                    )));
                }
                Some(Err(e)) => {
                    since_linger_check = 0;
                    self.reader
                        .reporter
                        .problem(describe_client_error(&e, "while fetching"));
                    self.flush_all()?;
                    self.housekeeping()?;
                }
            }
        }
    }

    /// Periodic work: offset commits and, while a problem is shown, a
    /// probe that clears it once the broker answers again.
    fn housekeeping(&mut self) -> Result<()> {
        let now = Instant::now();
        if let Some(commits) = &self.reader.checkpoint_commits {
            if commits.ready.load(Ordering::Acquire) {
                if let Some(d) = &mut self.dead_letter {
                    // Dead letters are delivered before offsets past them are committed.
                    d.flush(&self.reader.stop)?;
                }
                self.reader
                    .commit_checkpointed(self.consumer, commits, CommitMode::Async);
            }
        } else if self.reader.options.commit_offsets
            && now.duration_since(self.last_commit) >= self.reader.options.commit_interval
        {
            self.last_commit = now;
            if let Some(d) = &mut self.dead_letter {
                // Dead letters are delivered before offsets past them are committed.
                d.flush(&self.reader.stop)?;
            }
            self.reader.commit(self.consumer, CommitMode::Async);
        }
        if let Some(d) = &self.dead_letter {
            d.check()?;
        }
        if self.reader.reporter.has_problem() && now.duration_since(self.last_probe) >= PROBE_EVERY
        {
            self.last_probe = now;
            if let Some(s) = self.splits.iter().find(|s| !s.done) {
                let probe = self.consumer.fetch_watermarks(
                    &s.tp.topic,
                    s.tp.partition,
                    Duration::from_secs(1),
                );
                if probe.is_ok() {
                    self.reader.reporter.clear();
                }
            }
        }
        Ok(())
    }

    /// After an end-of-partition event for split `i`'s partition number:
    /// whether split `i` has nothing left before its stop offset. The
    /// consumer's position counts transaction markers (never delivered as
    /// messages), and when the event is served every message before it
    /// has been, so the position is the end of the log as of the event.
    fn end_reached(&self, i: usize) -> bool {
        let s = &self.splits[i];
        let Some(stop) = s.stop_at else { return false };
        if s.next >= stop {
            return true;
        }
        match self.consumer.position() {
            Ok(tpl) => tpl
                .find_partition(&s.tp.topic, s.tp.partition)
                .and_then(|e| e.offset().to_raw())
                .is_some_and(|o| o >= stop),
            Err(_) => false,
        }
    }

    fn on_message(&mut self, m: &BorrowedMessage<'_>, batch_size: usize) -> Result<()> {
        let Some(i) = self.lookup.find(m) else {
            return Ok(());
        };
        let offset = m.offset();
        {
            let s = &mut self.splits[i];
            if s.done {
                return Ok(());
            }
            if s.stop_at.is_some_and(|stop| offset >= stop) {
                return self.finish_split(i);
            }
        }
        {
            let s = &mut self.splits[i];
            match s.redelivery.check(offset, s.next) {
                Delivery::New => {}
                Delivery::Again { first } => {
                    if first {
                        tracing::warn!(
                            "kafka table {}: {} delivered offset {offset} again after offset {}: skipping what was already read",
                            self.reader.table,
                            s.tp,
                            s.next - 1
                        );
                    }
                    return Ok(());
                }
            }
        }
        let pushed = self.splits[i].decoder.push(m);
        if let Err(reason) = pushed {
            self.malformed(i, m, reason)?;
        }
        let s = &mut self.splits[i];
        s.next = offset + 1;
        if !s.decoder.is_empty() && s.first_row_at.is_none() {
            s.first_row_at = Some(Instant::now());
            self.waiting += 1;
        }
        if s.decoder.len() >= batch_size {
            self.flush(i)?;
        }
        if self.splits[i]
            .stop_at
            .is_some_and(|stop| offset + 1 >= stop)
        {
            self.finish_split(i)?;
        }
        Ok(())
    }

    /// Handles a message that could not be decoded, per `'format.on-error'`.
    fn malformed(&mut self, i: usize, m: &BorrowedMessage<'_>, reason: String) -> Result<()> {
        let location = format!("{}@{}", self.splits[i].tp, m.offset());
        let options = &self.reader.options;
        match options.on_error {
            OnMalformed::Fail => Err(WeirError::Source(format!(
                "kafka table {}: malformed message at {location}: {reason} ('format.on-error' = 'fail')",
                self.reader.table
            ))),
            OnMalformed::Skip => {
                self.splits[i].malformed.push(MalformedRecord { location, reason });
                Ok(())
            }
            OnMalformed::DeadLetter => {
                let topic = options.dead_letter_topic.clone().unwrap_or_default();
                if self.dead_letter.is_none() {
                    self.dead_letter = Some(DeadLetter::new(
                        &self.reader.options,
                        &self.reader.table,
                        self.reader.subtask,
                        &topic,
                    )?);
                }
                if let Some(d) = &mut self.dead_letter {
                    d.send(m, &reason, &self.reader.stop)?;
                }
                self.splits[i].malformed.push(MalformedRecord {
                    location,
                    reason: format!("{reason} (copied to dead-letter topic '{topic}')"),
                });
                Ok(())
            }
        }
    }

    /// Marks split `i` done (bounded), sends what it has and stops fetching it.
    fn finish_split(&mut self, i: usize) -> Result<()> {
        tracing::debug!(
            "kafka table {}: {} reached its stop offset {:?} at {}",
            self.reader.table,
            self.splits[i].tp,
            self.splits[i].stop_at,
            self.splits[i].next
        );
        self.flush(i)?;
        let s = &mut self.splits[i];
        s.done = true;
        if let Some(stop) = s.stop_at {
            // Everything before the stop offset was consumed (end of the
            // log or a message at the stop offset was seen).
            s.next = s.next.max(stop);
        }
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&s.tp.topic, s.tp.partition);
        let _ = self.consumer.pause(&tpl);
        // Report the position reached even without rows.
        self.send_position(i)
    }

    fn send_position(&mut self, i: usize) -> Result<()> {
        let s = &mut self.splits[i];
        if s.next != s.sent_next || !s.malformed.is_empty() {
            let event = Event::Batch {
                split: i,
                batch: None,
                malformed: std::mem::take(&mut s.malformed),
                next_offset: s.next,
            };
            s.sent_next = s.next;
            self.send(event)?;
        }
        Ok(())
    }

    /// Sends split `i`'s waiting rows (and malformed reports).
    fn flush(&mut self, i: usize) -> Result<()> {
        let s = &mut self.splits[i];
        if s.first_row_at.take().is_some() {
            self.waiting = self.waiting.saturating_sub(1);
        }
        let batch = s.decoder.flush()?;
        if batch.is_none() && s.malformed.is_empty() && s.next == s.sent_next {
            return Ok(());
        }
        let event = Event::Batch {
            split: i,
            batch,
            malformed: std::mem::take(&mut s.malformed),
            next_offset: s.next,
        };
        s.sent_next = s.next;
        self.send(event)
    }

    fn flush_all(&mut self) -> Result<()> {
        for i in 0..self.splits.len() {
            self.flush(i)?;
        }
        Ok(())
    }

    fn flush_lingering(&mut self) -> Result<()> {
        if self.waiting == 0 {
            return Ok(());
        }
        let now = Instant::now();
        for i in 0..self.splits.len() {
            if self.splits[i]
                .first_row_at
                .is_some_and(|t| now.duration_since(t) >= MAX_LINGER)
            {
                self.flush(i)?;
            }
        }
        Ok(())
    }

    fn send(&self, event: Event) -> Result<()> {
        // The receiver is gone only when the subtask stopped; the caller
        // sees the stop flag next.
        if self.tx.blocking_send(event).is_err() {
            self.reader.stop.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(topic: &str, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.to_string(),
            partition,
        }
    }

    #[test]
    fn messages_before_the_next_offset_are_skipped_and_each_run_reported_once() {
        let mut r = Redelivery::default();
        assert_eq!(r.check(10, 10), Delivery::New);
        // Offsets 5..=10 delivered again after 10 was read (next = 11).
        let again: Vec<Delivery> = (5..=10).map(|o| r.check(o, 11)).collect();
        assert_eq!(again[0], Delivery::Again { first: true });
        assert!(again[1..]
            .iter()
            .all(|d| *d == Delivery::Again { first: false }));
        assert_eq!(r.check(11, 11), Delivery::New);
        // A later run is reported again; a gap (transaction markers) is new.
        assert_eq!(r.check(3, 12), Delivery::Again { first: true });
        assert_eq!(r.check(20, 12), Delivery::New);
    }

    #[test]
    fn lookup_maps_topic_partitions_to_local_splits() {
        let lookup = Lookup::new(&[tp("a", 5), tp("b", 0), tp("a", 2), tp("b", 5)]);
        let a = &lookup.topics[0];
        assert_eq!(a.0, "a");
        assert_eq!(
            (0..8).map(|p| Lookup::get(&a.1, p)).collect::<Vec<_>>(),
            vec![None, None, Some(2), None, None, Some(0), None, None]
        );
        assert_eq!(Lookup::get(&lookup.topics[1].1, 0), Some(1));
        assert_eq!(Lookup::get(&a.1, -1), None);
        assert_eq!(lookup.with_partition(5), vec![0, 3]);
        assert_eq!(lookup.with_partition(2), vec![2]);
        assert!(lookup.with_partition(9).is_empty());
    }
}
