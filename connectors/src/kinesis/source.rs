//! The Kinesis source: each subtask polls its shards with GetRecords (one
//! call in flight per shard, several shards at once), decodes each page
//! into one batch and emits it on the shard's watermark lanes.
//!
//! See [`super::shards`] for assignment, lineage order and lanes. Per shard:
//!
//! - the first iterator starts at `'scan.stream.initpos'` (shards listed at
//!   the start) or `TRIM_HORIZON` (shards created later); after a record
//!   was read, a new iterator (after expiry) starts `AFTER_SEQUENCE_NUMBER`
//!   of the last record read; a `LATEST` start that expires before any
//!   record becomes `AT_TIMESTAMP` of the moment `LATEST` was asked for;
//! - throttling and transient failures back off (exponentially, jittered)
//!   and retry; `'scan.shard.getrecords.maxretries'` consecutive failures
//!   fail the job;
//! - records whose sequence number is not above the last one read are
//!   dropped (a resumed iterator never repeats a record);
//! - a shard is finished when GetRecords returns no next iterator (a closed
//!   shard read to its end): the coordinator learns it, its children
//!   (`ChildShards`, and a listing made at once) become readable once all
//!   their parents are finished.
//!
//! Positions (`positions()`): one per shard the subtask owns, split
//! `<stream>/<shardId>`, position the sequence number of the last record
//! read (exact text), `SHARD_END:<seq>` (or `SHARD_END`) once finished, or
//! the start (`TRIM_HORIZON`, `LATEST`, `AT_TIMESTAMP:<ms>`) before the
//! first record. Shards closed before a `LATEST` start (never read) are
//! `SHARD_END` too. They reach checkpoints through
//! [`SourceContext::report_positions`] after each page.
//!
//! Restore (`restore_positions`): every subtask hands its positions to the
//! shared coordinator before any subtask runs (see
//! [`ShardCoordinator::restore`]); a shard then resumes
//! `AFTER_SEQUENCE_NUMBER` of its last record read (or at the start it had
//! not used), a finished shard stays finished (its children are readable
//! as soon as all their parents are), and a shard the checkpoint does not
//! know (created after it) is read from `TRIM_HORIZON`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;
use futures::stream::{FuturesUnordered, StreamExt};
use weir_engine::source::{MalformedRecord, Source, SourceContext, SourceFactory, SplitPosition};
use weir_engine::{Result, WeirError};

use super::client::{
    ApiError, ApiWrapper, IteratorStart, KinesisApi, KinesisRecord, PutEntry, RecordsPage,
};
use super::decode::PageDecoder;
use super::options::{Backoff, InitialPosition, KinesisSourceOptions};
use super::sequence::SequenceNumber;
use super::shards::{list_with_retries, Lanes, RestoredShard, ShardCoordinator, ShardStart};
use super::sink::RecordWriter;
use crate::format::OnError;
use crate::TableDescriptor;

/// Creates Kinesis source subtasks for one table; its subtasks share one
/// [`ShardCoordinator`].
pub struct KinesisSourceFactory {
    options: Arc<KinesisSourceOptions>,
    table: TableDescriptor,
    schema: SchemaRef,
    coordinator: Arc<ShardCoordinator>,
    wrapper: Option<ApiWrapper>,
    init: Mutex<()>,
}

impl KinesisSourceFactory {
    /// A factory reading `table` as `options` say (the columns are checked
    /// against the format here; the stream is first listed when the first
    /// subtask is created).
    pub fn new(table: &TableDescriptor, options: KinesisSourceOptions) -> Result<Self> {
        PageDecoder::new(table, &options.format)
            .map_err(|e| e.context(format!("table {}", table.name)))?;
        let coordinator = Arc::new(ShardCoordinator::new(
            options.stream.clone(),
            options.initial_position,
        ));
        Ok(Self {
            options: Arc::new(options),
            table: table.clone(),
            schema: table.source_schema(),
            coordinator,
            wrapper: None,
            init: Mutex::new(()),
        })
    }

    /// Wraps the Kinesis client the subtasks use (tests inject faults).
    pub fn with_api_wrapper(mut self, wrapper: ApiWrapper) -> Self {
        self.wrapper = Some(wrapper);
        self
    }

    /// The typed options.
    pub fn options(&self) -> &KinesisSourceOptions {
        &self.options
    }

    /// The coordinator shared by the subtasks.
    pub fn coordinator(&self) -> &Arc<ShardCoordinator> {
        &self.coordinator
    }

    /// Lists the shards and assigns them (subtask 0 always does, so a
    /// factory run twice starts afresh). `create` is synchronous and may be
    /// called on the job's runtime, so the listing runs on a helper thread
    /// with its own small runtime.
    fn ensure_listed(&self, subtask: usize, parallelism: usize) -> Result<()> {
        let _guard = self
            .init
            .lock()
            .map_err(|_| WeirError::Internal("kinesis factory lock poisoned".into()))?;
        if subtask != 0 && self.coordinator.is_initialized(parallelism)? {
            return Ok(());
        }
        let aws = self.options.aws.clone();
        let wrapper = self.wrapper.clone();
        let stream = self.options.stream.clone();
        let backoff = Backoff {
            base: Duration::from_millis(200),
            max: Duration::from_secs(5),
            exp: 2.0,
        };
        let listing = std::thread::scope(|s| {
            s.spawn(move || -> Result<_> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| WeirError::io("starting a runtime to list kinesis shards", e))?;
                rt.block_on(async {
                    let api = super::client::connect_api(&aws, wrapper.as_ref()).await?;
                    list_with_retries(api.as_ref(), &stream, &backoff, 8).await
                })
            })
            .join()
            .map_err(|_| WeirError::Internal("kinesis shard listing thread panicked".into()))?
        })?;
        tracing::info!(
            stream = %self.options.stream,
            shards = listing.len(),
            parallelism,
            "kinesis shards listed"
        );
        self.coordinator.initialize(parallelism, listing)
    }
}

impl SourceFactory for KinesisSourceFactory {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Source>> {
        let parallelism = parallelism.max(1);
        self.ensure_listed(subtask, parallelism)?;
        let lanes = self.coordinator.lanes(subtask)?;
        Ok(Box::new(KinesisSource {
            subtask,
            options: self.options.clone(),
            coordinator: self.coordinator.clone(),
            wrapper: self.wrapper.clone(),
            decoder: Some(PageDecoder::new(&self.table, &self.options.format)?),
            lanes: Lanes::new(lanes),
            lanes_dirty: true,
            shards: Vec::new(),
            index: HashMap::new(),
            discover_now: false,
            status_set: false,
            warned_shared: false,
        }))
    }

    fn describe(&self) -> String {
        format!(
            "kinesis {} stream {} from {}{}",
            self.options.format.name(),
            self.options.stream,
            self.options.initial_position.describe(),
            if self.options.bounded {
                " (bounded)"
            } else {
                ""
            }
        )
    }
}

/// Where a shard's reading is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReaderState {
    /// A parent is not finished yet.
    Waiting,
    /// Being polled.
    Reading,
    /// Read to its end (closed) or, when bounded, caught up.
    Done { closed: bool },
}

/// One shard a subtask owns.
#[derive(Debug)]
struct ShardReader {
    id: String,
    split: String,
    parents: Vec<String>,
    /// Where a fresh iterator starts while no record was read.
    start: IteratorStart,
    state: ReaderState,
    iterator: Option<String>,
    last: Option<SequenceNumber>,
    /// Consecutive failed calls.
    failures: u32,
    next_poll: Instant,
    in_flight: bool,
    /// Which of the shard's lanes gets the next slice.
    lane_cursor: usize,
}

impl ShardReader {
    fn position(&self) -> String {
        match (&self.state, &self.last) {
            (ReaderState::Done { closed: true }, Some(s)) => format!("SHARD_END:{s}"),
            (ReaderState::Done { closed: true }, None) => "SHARD_END".into(),
            (_, Some(s)) => s.to_string(),
            (_, None) => match &self.start {
                IteratorStart::TrimHorizon => "TRIM_HORIZON".into(),
                IteratorStart::Latest => "LATEST".into(),
                IteratorStart::AtTimestamp(ms) => format!("AT_TIMESTAMP:{ms}"),
                IteratorStart::AfterSequenceNumber(s) => s.clone(),
            },
        }
    }

    /// Where a new iterator must start.
    fn resume_from(&self) -> IteratorStart {
        match &self.last {
            Some(s) => IteratorStart::AfterSequenceNumber(s.to_string()),
            None => self.start.clone(),
        }
    }
}

/// What one poll of a shard returned.
struct Fetched {
    /// The iterator used (to keep when the call failed but the iterator
    /// was fresh), and when a `LATEST` one was asked for.
    iterator: Option<String>,
    latest_at_ms: Option<i64>,
    page: std::result::Result<RecordsPage, ApiError>,
}

/// One Kinesis source subtask.
struct KinesisSource {
    subtask: usize,
    options: Arc<KinesisSourceOptions>,
    coordinator: Arc<ShardCoordinator>,
    wrapper: Option<ApiWrapper>,
    /// Moved to the blocking pool while a page is decoded.
    decoder: Option<PageDecoder>,
    lanes: Lanes,
    lanes_dirty: bool,
    shards: Vec<ShardReader>,
    index: HashMap<String, usize>,
    discover_now: bool,
    status_set: bool,
    warned_shared: bool,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[async_trait]
impl Source for KinesisSource {
    fn split_count(&self) -> usize {
        self.lanes.count()
    }

    async fn run(&mut self, ctx: &mut SourceContext) -> Result<()> {
        let api = self
            .coordinator
            .api(&self.options.aws, self.wrapper.as_ref())
            .await?;
        let dead_letter = self.options.dead_letter_stream.as_ref().map(|s| {
            RecordWriter::new(
                api.clone(),
                s.clone(),
                super::options::MAX_PUT_RECORDS,
                super::options::MAX_PUT_BYTES,
                10,
                Backoff {
                    base: Duration::from_millis(100),
                    max: Duration::from_secs(5),
                    exp: 2.0,
                },
                false,
            )
        });
        self.sync_owned()?;
        ctx.report_positions(self.positions()).await?;
        let interval = self.options.discovery_interval;
        let mut next_discovery = Instant::now() + interval;
        let mut in_flight = FuturesUnordered::new();
        loop {
            if ctx.is_cancelled() {
                return Ok(());
            }
            let now = Instant::now();
            if self.discover_now || now >= next_discovery {
                self.coordinator
                    .discover(
                        api.as_ref(),
                        interval,
                        self.discover_now,
                        &self.options.backoff,
                    )
                    .await?;
                self.discover_now = false;
                next_discovery = Instant::now() + interval;
                self.sync_owned()?;
                ctx.report_positions(self.positions()).await?;
            }
            self.activate()?;
            let now = Instant::now();
            for (i, r) in self.shards.iter_mut().enumerate() {
                if r.state != ReaderState::Reading || r.in_flight || r.next_poll > now {
                    continue;
                }
                r.in_flight = true;
                in_flight.push(fetch(
                    api.clone(),
                    self.options.stream.clone(),
                    i,
                    r.id.clone(),
                    r.iterator.clone(),
                    r.resume_from(),
                    self.options.max_records,
                ));
            }
            if in_flight.is_empty() {
                // Bounded: the subtasks end together, once every shard of
                // the source is done. A subtask that ended early would stop
                // the job's checkpoints (none starts after a source subtask
                // ended) for as long as the others read, and could not read
                // the children of its shards that appear later.
                if self.options.bounded
                    && self
                        .shards
                        .iter()
                        .all(|r| matches!(r.state, ReaderState::Done { .. }))
                    && self.coordinator.all_finished()?
                {
                    return Ok(());
                }
                let wake = self
                    .shards
                    .iter()
                    .filter(|r| r.state == ReaderState::Reading)
                    .map(|r| r.next_poll)
                    .min()
                    .unwrap_or(now + Duration::from_millis(50))
                    .min(next_discovery)
                    .min(now + Duration::from_millis(100));
                tokio::time::sleep_until(wake.into()).await;
                ctx.tick().await?;
                continue;
            }
            tokio::select! {
                Some((i, fetched)) = in_flight.next() => {
                    self.handle(i, fetched, ctx, dead_letter.as_ref()).await?;
                    ctx.report_positions(self.positions()).await?;
                }
                _ = tokio::time::sleep(Duration::from_millis(100)) => {
                    ctx.tick().await?;
                }
            }
        }
    }

    fn positions(&self) -> Vec<SplitPosition> {
        self.shards
            .iter()
            .map(|r| SplitPosition {
                split: r.split.clone(),
                position: r.position(),
            })
            .collect()
    }

    fn supports_checkpoints(&self) -> bool {
        true
    }

    fn restore_positions(&mut self, positions: &[SplitPosition]) -> Result<()> {
        let prefix = format!("{}/", self.options.stream);
        let mut shards = Vec::with_capacity(positions.len());
        for p in positions {
            let Some(id) = p.split.strip_prefix(&prefix) else {
                return Err(WeirError::State(format!(
                    "checkpointed split {} is not a shard of stream '{}' (was the stream changed?)",
                    p.split, self.options.stream
                )));
            };
            let restored = parse_position(&p.position).map_err(|m| {
                WeirError::State(format!(
                    "checkpointed position '{}' of shard {}: {m}",
                    p.position, p.split
                ))
            })?;
            shards.push((id.to_string(), restored));
        }
        self.coordinator.restore(self.subtask, shards)
    }
}

/// Reads a position written by [`ShardReader::position`].
fn parse_position(text: &str) -> std::result::Result<RestoredShard, String> {
    let seq = |s: &str| SequenceNumber::parse(s).map(|n| n.to_string());
    Ok(match text {
        "SHARD_END" => RestoredShard::Finished(None),
        "TRIM_HORIZON" => RestoredShard::From(IteratorStart::TrimHorizon),
        "LATEST" => RestoredShard::From(IteratorStart::Latest),
        _ => {
            if let Some(s) = text.strip_prefix("SHARD_END:") {
                RestoredShard::Finished(Some(seq(s)?))
            } else if let Some(ms) = text.strip_prefix("AT_TIMESTAMP:") {
                let ms = ms
                    .parse()
                    .map_err(|_| format!("'{ms}' is not epoch milliseconds"))?;
                RestoredShard::From(IteratorStart::AtTimestamp(ms))
            } else {
                RestoredShard::From(IteratorStart::AfterSequenceNumber(seq(text)?))
            }
        }
    })
}

/// Polls one shard: a new iterator when needed, then one GetRecords.
async fn fetch(
    api: Arc<dyn KinesisApi>,
    stream: String,
    index: usize,
    shard_id: String,
    iterator: Option<String>,
    resume: IteratorStart,
    limit: u32,
) -> (usize, Fetched) {
    let (iterator, latest_at_ms) = match iterator {
        Some(it) => (it, None),
        None => {
            let asked_at = now_ms();
            match api.get_shard_iterator(&stream, &shard_id, &resume).await {
                Ok(it) => (it, (resume == IteratorStart::Latest).then_some(asked_at)),
                Err(e) => {
                    return (
                        index,
                        Fetched {
                            iterator: None,
                            latest_at_ms: None,
                            page: Err(e),
                        },
                    )
                }
            }
        }
    };
    let page = api.get_records(&iterator, limit).await;
    (
        index,
        Fetched {
            iterator: Some(iterator),
            latest_at_ms,
            page,
        },
    )
}

impl KinesisSource {
    /// Adds the shards the coordinator assigned to this subtask.
    fn sync_owned(&mut self) -> Result<()> {
        for a in self.coordinator.accountable(self.subtask)? {
            if self.index.contains_key(&a.shard.shard_id) {
                continue;
            }
            let mut state = ReaderState::Waiting;
            let mut last = None;
            let start = match self.coordinator.restored(&a.shard.shard_id)? {
                Some(RestoredShard::Finished(l)) => {
                    state = ReaderState::Done { closed: true };
                    last = l;
                    IteratorStart::TrimHorizon
                }
                Some(RestoredShard::From(start)) => {
                    if let IteratorStart::AfterSequenceNumber(s) = &start {
                        last = Some(s.clone());
                    }
                    start
                }
                None => match a.start {
                    ShardStart::Initial(InitialPosition::TrimHorizon) | ShardStart::TrimHorizon => {
                        IteratorStart::TrimHorizon
                    }
                    ShardStart::Initial(InitialPosition::Latest) => IteratorStart::Latest,
                    ShardStart::Initial(InitialPosition::AtTimestamp(ms)) => {
                        IteratorStart::AtTimestamp(ms)
                    }
                    // Never read; stored as finished in checkpoints.
                    ShardStart::Skip => {
                        state = ReaderState::Done { closed: true };
                        IteratorStart::TrimHorizon
                    }
                },
            };
            let last = last
                .map(|s| SequenceNumber::parse(&s))
                .transpose()
                .map_err(|m| {
                    WeirError::Internal(format!("kinesis shard {}: restored {m}", a.shard.shard_id))
                })?;
            let id = a.shard.shard_id.clone();
            tracing::debug!(subtask = self.subtask, shard = %id, "kinesis shard assigned");
            self.index.insert(id.clone(), self.shards.len());
            self.shards.push(ShardReader {
                split: format!("{}/{id}", self.options.stream),
                parents: a.shard.parents().map(str::to_string).collect(),
                id,
                start,
                state,
                iterator: None,
                last,
                failures: 0,
                next_poll: Instant::now(),
                in_flight: false,
                lane_cursor: 0,
            });
        }
        Ok(())
    }

    /// Starts reading shards whose parents are all finished; reassigns
    /// lanes when the set of shards being read changed.
    fn activate(&mut self) -> Result<()> {
        for r in &mut self.shards {
            if r.state == ReaderState::Waiting && self.coordinator.parents_finished(&r.id)? {
                tracing::debug!(subtask = self.subtask, shard = %r.id, "kinesis shard readable");
                r.state = ReaderState::Reading;
                r.next_poll = Instant::now();
                self.lanes_dirty = true;
            }
        }
        if self.lanes_dirty {
            self.lanes_dirty = false;
            let active: Vec<(String, Vec<String>)> = self
                .shards
                .iter()
                .filter(|r| r.state == ReaderState::Reading)
                .map(|r| (r.id.clone(), r.parents.clone()))
                .collect();
            self.lanes.assign(&active);
            let shared = self.lanes.shared();
            if shared > 0 && !self.warned_shared {
                self.warned_shared = true;
                tracing::warn!(
                    subtask = self.subtask,
                    lanes = self.lanes.count(),
                    shards = active.len(),
                    "more kinesis shards than watermark lanes: {shared} lane(s) shared by several shards"
                );
            }
        }
        Ok(())
    }

    fn set_status(&mut self, ctx: &SourceContext, status: Option<String>) {
        self.status_set = status.is_some();
        ctx.set_status(status);
    }

    /// Handles one poll's outcome: retry bookkeeping, or decode and emit.
    async fn handle(
        &mut self,
        i: usize,
        fetched: Fetched,
        ctx: &mut SourceContext,
        dead_letter: Option<&RecordWriter>,
    ) -> Result<()> {
        let stream = self.options.stream.clone();
        let max_retries = self.options.max_retries;
        let backoff = self.options.backoff;
        let Some(r) = self.shards.get_mut(i) else {
            return Err(WeirError::Internal(format!("kinesis shard {i} unknown")));
        };
        r.in_flight = false;
        if let Some(at) = fetched.latest_at_ms {
            // A LATEST start that must be asked again (expiry) asks for
            // the records that arrived since the first ask.
            r.start = IteratorStart::AtTimestamp(at);
        }
        let page = match fetched.page {
            Ok(p) => p,
            Err(e) => {
                r.failures += 1;
                let failures = r.failures;
                let id = r.id.clone();
                let what = format!("kinesis {stream}/{id}");
                match &e {
                    ApiError::ExpiredIterator(_) => {
                        r.iterator = None;
                        r.next_poll = Instant::now();
                        tracing::info!(shard = %what, resume = ?r.resume_from(), "shard iterator expired; resuming");
                    }
                    e if e.is_retryable() => {
                        r.iterator = fetched.iterator;
                        let delay = backoff.delay(failures.saturating_sub(1));
                        r.next_poll = Instant::now() + delay;
                        tracing::warn!(shard = %what, attempt = failures, delay_ms = delay.as_millis() as u64, error = %e, "GetRecords failed, backing off");
                        let status = format!(
                            "{id} {}, retry {failures} in {}ms",
                            if matches!(e, ApiError::Throttled(_)) {
                                "throttled"
                            } else {
                                "failing"
                            },
                            delay.as_millis()
                        );
                        self.set_status(ctx, Some(status));
                    }
                    _ => {
                        return Err(WeirError::Source(format!("{what}: {e}")));
                    }
                }
                if failures > max_retries {
                    return Err(WeirError::Source(format!(
                        "{what}: {failures} consecutive failed calls (limit 'scan.shard.getrecords.maxretries' = {max_retries}), last: {e}"
                    )));
                }
                return Ok(());
            }
        };
        r.failures = 0;
        r.iterator = page.next_iterator.clone();
        let id = r.id.clone();
        let page_len = page.records.len();
        // Drop anything not after the last record read.
        let mut records: Vec<KinesisRecord> = Vec::with_capacity(page_len);
        let mut last = r.last.clone();
        for rec in page.records {
            let seq = SequenceNumber::parse(&rec.sequence_number).map_err(|m| {
                WeirError::Source(format!("kinesis {stream}/{id}: a record has {m}"))
            })?;
            if last.as_ref().is_some_and(|l| seq <= *l) {
                tracing::debug!(shard = %id, seq = %seq, "record at or before the last one read: dropped");
                continue;
            }
            last = Some(seq);
            records.push(rec);
        }
        if self.status_set {
            self.set_status(ctx, None);
        }
        if !records.is_empty() {
            self.emit_records(i, &id, records, ctx, dead_letter).await?;
        }
        let Some(r) = self.shards.get_mut(i) else {
            return Err(WeirError::Internal(format!("kinesis shard {i} unknown")));
        };
        r.last = last;
        let caught_up = page.millis_behind.unwrap_or(0) == 0;
        if page.next_iterator.is_none() {
            r.state = ReaderState::Done { closed: true };
            self.lanes_dirty = true;
            self.discover_now = true;
            self.coordinator
                .mark_finished(&id, r.last.as_ref().map(|s| s.to_string()))?;
            self.coordinator.add_discovered(page.child_shards)?;
            self.sync_owned()?;
            tracing::debug!(shard = %id, "kinesis shard read to its end");
        } else if self.options.bounded && page_len == 0 && caught_up {
            // Bounded: an open shard ends where the reader caught up.
            r.state = ReaderState::Done { closed: false };
            self.lanes_dirty = true;
            self.coordinator
                .mark_finished(&id, r.last.as_ref().map(|s| s.to_string()))?;
            tracing::debug!(shard = %id, "kinesis shard caught up (bounded)");
        } else {
            // A full page means more is waiting: ask again at once.
            r.next_poll = if page_len as u64 >= u64::from(self.options.max_records) {
                Instant::now()
            } else {
                Instant::now() + self.options.poll_interval
            };
        }
        Ok(())
    }

    /// Decodes `records` of shard `i` (on the blocking pool), reports and
    /// dead-letters the malformed ones, and emits the batch over the
    /// shard's lanes.
    async fn emit_records(
        &mut self,
        i: usize,
        id: &str,
        records: Vec<KinesisRecord>,
        ctx: &mut SourceContext,
        dead_letter: Option<&RecordWriter>,
    ) -> Result<()> {
        let mut decoder = self
            .decoder
            .take()
            .ok_or_else(|| WeirError::Internal("kinesis decoder missing".into()))?;
        let shard = id.to_string();
        let (decoder, records, decoded) = tokio::task::spawn_blocking(move || {
            let decoded = decoder.decode(&shard, &records);
            (decoder, records, decoded)
        })
        .await
        .map_err(|e| WeirError::Internal(format!("kinesis decode task failed: {e}")))?;
        self.decoder = Some(decoder);
        let decoded = decoded?;
        let stream = &self.options.stream;
        let mut dead = Vec::new();
        for m in &decoded.malformed {
            let Some(rec) = records.get(m.index) else {
                continue;
            };
            let location = format!("{stream}/{id}@{}", rec.sequence_number);
            if self.options.on_error == OnError::Fail {
                return Err(WeirError::Source(format!(
                    "kinesis {location}: malformed record: {}",
                    m.reason
                )));
            }
            ctx.report_malformed(MalformedRecord {
                location,
                reason: m.reason.clone(),
            });
            if dead_letter.is_some() {
                dead.push(PutEntry {
                    data: rec.data.clone(),
                    partition_key: if rec.partition_key.is_empty() {
                        "malformed".into()
                    } else {
                        rec.partition_key.clone()
                    },
                });
            }
        }
        if let (Some(w), false) = (dead_letter, dead.is_empty()) {
            w.write_all(dead)
                .await
                .map_err(|e| e.context(format!("dead-letter stream for {stream}/{id}")))?;
        }
        if let Some(batch) = decoded.batch {
            self.emit_on_lanes(i, id, batch, ctx).await?;
        }
        Ok(())
    }

    /// Emits `batch` of shard `i` as consecutive slices, one per lane of
    /// the shard (as many as it has rows), so that every lane follows the
    /// shard's event time.
    async fn emit_on_lanes(
        &mut self,
        i: usize,
        id: &str,
        batch: RecordBatch,
        ctx: &mut SourceContext,
    ) -> Result<()> {
        let lanes = self.lanes.of(id).to_vec();
        if lanes.is_empty() {
            return Err(WeirError::Internal(format!(
                "kinesis shard {id} is read by subtask {} but has no watermark lane",
                self.subtask
            )));
        }
        let rows = batch.num_rows();
        let slices = lanes.len().min(rows).max(1);
        let Some(r) = self.shards.get_mut(i) else {
            return Err(WeirError::Internal(format!("kinesis shard {i} unknown")));
        };
        let cursor = r.lane_cursor;
        r.lane_cursor = (cursor + slices) % lanes.len();
        let (base, extra) = (rows / slices, rows % slices);
        let mut offset = 0;
        for j in 0..slices {
            let len = base + usize::from(j < extra);
            let lane = lanes[(cursor + j) % lanes.len()];
            ctx.emit(lane, batch.slice(offset, len)).await?;
            offset += len;
        }
        Ok(())
    }
}
