//! [`SequenceOrder`]: per-key ordering by a sequence number, with duplicate
//! removal and gap detection. Weir's own operator (Flink has none); in SQL
//! the table functions `SEQUENCE_ORDER(...)` (ordered rows) and
//! `SEQUENCE_GAPS(...)` (gap markers), each its own operator instance.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, TimestampMillisecondArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use weir_engine::message::EventTime;
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};

use crate::key_map::KeyMap;
use crate::ordering::{
    advance_watermark, check_time_column, count_null_times, field, int64_values, is_sequence_type,
    put_time_meta, read_time_meta, state_batch, timestamp_ms, with_keys, TimerQueue, Times,
};
use crate::row_store::{Loc, RowStore};
use crate::window::{int64_column, uint64_column};

/// Where the sequence of a key starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceStart {
    /// The first row seen for a key starts its sequence: that row is released
    /// at once and the next expected number is its sequence number plus one.
    /// Rows of the key with smaller numbers that arrive later are dropped
    /// (counted as duplicates). Right for streams joined mid-way (a Kafka
    /// topic read from `latest`); not for out-of-order input at the start.
    FirstSeen,
    /// Every key starts at this number (`Fixed(1)` = "expect 1"): rows before
    /// it are dropped as duplicates, and a key whose first rows are missing
    /// waits for them like for any other gap.
    Fixed(i64),
}

impl SequenceStart {
    /// Every key's first sequence number is 1.
    pub const EXPECT_ONE: SequenceStart = SequenceStart::Fixed(1);
}

/// What a [`SequenceOrder`] emits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceOutput {
    /// The input rows in sequence order per key, duplicates removed: the
    /// input schema (`SEQUENCE_ORDER`).
    Rows,
    /// One row per given-up gap: the key columns, `first_missing BIGINT`,
    /// `last_missing BIGINT`, `detected_at TIMESTAMP(3)` (`SEQUENCE_GAPS`).
    Gaps,
}

/// The configuration of a [`SequenceOrder`].
///
/// The SQL form the planner maps onto it:
/// `TABLE(SEQUENCE_ORDER(TABLE tx, DESCRIPTOR(account_id), DESCRIPTOR(seq),
/// INTERVAL '5' SECOND [, max_buffer_rows [, first_sequence]]))` and the same
/// arguments for `SEQUENCE_GAPS`; the time column is the input's time
/// attribute.
#[derive(Debug, Clone)]
pub struct SequenceOrderConfig {
    /// The input schema.
    pub input_schema: SchemaRef,
    /// Input columns of the key; each key is ordered on its own. Empty: the
    /// whole input of a subtask is one sequence (to order per Kafka partition
    /// or Kinesis shard, key by the partition/shard column).
    pub key_columns: Vec<usize>,
    /// Input column of the sequence number: an integer column (`BIGINT`;
    /// `TINYINT`..`INT` and unsigned types are widened). Values must fit in a
    /// signed 64-bit integer: a `UInt64` above `i64::MAX` is an execution
    /// error. Rows with a NULL sequence number are dropped and counted.
    pub sequence_column: usize,
    /// Input column of the event time (`TIMESTAMP` or `BIGINT` epoch ms).
    /// Rows with a NULL time are dropped and counted as late.
    pub time_column: usize,
    /// A gap is given up when the watermark reaches the event time of the
    /// first held row after it plus this delay (ms, `>= 0`).
    pub max_delay_ms: i64,
    /// Most rows held per key; when one more arrives the smallest gap of the
    /// key is given up.
    pub max_buffer_rows: usize,
    /// Where each key's sequence starts.
    pub start: SequenceStart,
    /// Ordered rows or gap markers.
    pub output: SequenceOutput,
}

impl SequenceOrderConfig {
    /// A configuration with defaults: no delay, 10,000 held rows per key,
    /// sequences start at the first row seen, rows out.
    pub fn new(
        input_schema: SchemaRef,
        key_columns: Vec<usize>,
        sequence_column: usize,
        time_column: usize,
    ) -> Self {
        Self {
            input_schema,
            key_columns,
            sequence_column,
            time_column,
            max_delay_ms: 0,
            max_buffer_rows: 10_000,
            start: SequenceStart::FirstSeen,
            output: SequenceOutput::Rows,
        }
    }

    /// Checks column indices and types and the bounds.
    pub fn validate(&self) -> Result<()> {
        const WHAT: &str = "SEQUENCE_ORDER";
        let seq = field(
            &self.input_schema,
            self.sequence_column,
            WHAT,
            "sequence column",
        )?;
        if !is_sequence_type(seq.data_type()) {
            return Err(WeirError::Plan(format!(
                "{WHAT}: sequence column '{}' must be an integer, not {}",
                seq.name(),
                seq.data_type()
            )));
        }
        check_time_column(&self.input_schema, self.time_column, WHAT)?;
        for &k in &self.key_columns {
            field(&self.input_schema, k, WHAT, "key column")?;
        }
        if self.max_delay_ms < 0 {
            return Err(WeirError::Plan(format!(
                "{WHAT}: max delay must not be negative, got {} ms",
                self.max_delay_ms
            )));
        }
        Ok(())
    }

    /// The output schema: the input schema for [`SequenceOutput::Rows`], the
    /// gap schema for [`SequenceOutput::Gaps`].
    pub fn output_schema(&self) -> SchemaRef {
        match self.output {
            SequenceOutput::Rows => self.input_schema.clone(),
            SequenceOutput::Gaps => {
                let mut fields: Vec<Field> = self
                    .key_columns
                    .iter()
                    .filter_map(|&k| self.input_schema.fields().get(k))
                    .map(|f| f.as_ref().clone())
                    .collect();
                fields.push(Field::new("first_missing", DataType::Int64, false));
                fields.push(Field::new("last_missing", DataType::Int64, false));
                fields.push(Field::new("detected_at", timestamp_ms(), true));
                Arc::new(Schema::new(fields))
            }
        }
    }
}

/// Counters of a [`SequenceOrder`] (they survive snapshot/restore).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SequenceOrderStats {
    /// Rows released in order (emitted in [`SequenceOutput::Rows`] mode).
    pub released_rows: u64,
    /// Rows dropped because their sequence number was already passed
    /// (released, given up in a gap, or before the key's start) or is
    /// already held.
    pub duplicate_rows: u64,
    /// Rows dropped for a NULL sequence number.
    pub null_sequence_rows: u64,
    /// Gaps given up (on timeout, a full buffer or at end of input).
    pub gaps: u64,
    /// Of those, gaps given up because a key's buffer was full.
    pub buffer_full_gaps: u64,
    /// Sequence numbers missing in all given-up gaps.
    pub missing_sequences: u64,
    /// Rows held right now.
    pub held_rows: u64,
}

/// A row waiting for the rows before it.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// Event time.
    ts: i64,
    /// The row ([`SequenceOutput::Rows`] mode only).
    loc: Option<Loc>,
}

/// The state of one key.
#[derive(Debug, Default)]
struct SeqKey {
    /// The next sequence number to release.
    next: i64,
    /// Held rows by sequence number (all `> next`).
    held: BTreeMap<i64, Held>,
    /// The time at which the first gap is given up (if rows are held).
    deadline: Option<i64>,
}

/// A given-up gap.
#[derive(Debug, Clone, Copy)]
struct Gap {
    key: u32,
    first: i64,
    last: i64,
    detected_at: Option<i64>,
}

/// What one step (batch, watermark, end) releases, and the counters.
#[derive(Debug, Default)]
struct Releases {
    rows: Vec<Loc>,
    gaps: Vec<Gap>,
    /// Event times of held rows (multiset), for holding back the watermark.
    held_times: BTreeMap<i64, u32>,
    stats: SequenceOrderStats,
}

impl Releases {
    fn release(&mut self, held: Held) {
        if let Some(loc) = held.loc {
            self.rows.push(loc);
        }
        self.unhold(held.ts);
        self.stats.released_rows += 1;
    }

    fn hold(&mut self, ts: i64) {
        *self.held_times.entry(ts).or_insert(0) += 1;
        self.stats.held_rows += 1;
    }

    fn unhold(&mut self, ts: i64) {
        if let Some(c) = self.held_times.get_mut(&ts) {
            *c -= 1;
            if *c == 0 {
                self.held_times.remove(&ts);
            }
        }
        self.stats.held_rows = self.stats.held_rows.saturating_sub(1);
    }

    /// Releases the held rows of `key` that follow on `key.next`.
    fn drain(&mut self, key: &mut SeqKey) {
        while let Some(entry) = key.held.first_entry() {
            if *entry.key() != key.next {
                break;
            }
            let held = entry.remove();
            self.release(held);
            key.next = key.next.saturating_add(1);
        }
    }

    /// Gives up the first gap of `key` (if it holds rows) and releases what
    /// follows it.
    fn give_up(&mut self, id: u32, key: &mut SeqKey, detected_at: Option<i64>) -> bool {
        let Some((&first_held, _)) = key.held.first_key_value() else {
            return false;
        };
        self.gaps.push(Gap {
            key: id,
            first: key.next,
            last: first_held.saturating_sub(1),
            detected_at,
        });
        self.stats.gaps += 1;
        self.stats.missing_sequences += first_held.abs_diff(key.next);
        key.next = first_held;
        self.drain(key);
        true
    }
}

/// Orders rows per key by a sequence number.
///
/// Per key, rows are released in ascending sequence order as soon as they
/// are contiguous: the next expected number is the last released plus one
/// (the first one is set by [`SequenceStart`]). A row with a number already
/// passed, or already held, is dropped and counted
/// ([`SequenceOrderStats::duplicate_rows`]). A row further ahead is held
/// until the rows before it arrive, at most
/// [`max_buffer_rows`](SequenceOrderConfig::max_buffer_rows) per key. A gap is
/// given up — reported, and the key continues from its next held row — when
///
/// - the watermark reaches the event time of the first held row after the
///   gap plus [`max_delay_ms`](SequenceOrderConfig::max_delay_ms) (the gap is
///   stamped `detected_at` = that watermark), or
/// - a key would hold more than `max_buffer_rows` rows (its first gap is
///   given up at once, stamped with the current watermark, NULL before the
///   first watermark), or
/// - the input ends (every remaining gap, in key order, stamped with the last
///   watermark).
///
/// Rows released by a batch are emitted at once, in release order; rows
/// released by a watermark are emitted before it. In
/// [`SequenceOutput::Rows`] mode the forwarded watermark is held back below
/// the event time of the earliest held row (so released rows are never late
/// downstream); in [`SequenceOutput::Gaps`] mode the watermark is forwarded
/// unchanged after the gaps it detected.
///
/// Counters are read with [`SequenceOrder::stats`]; rows with a NULL event
/// time also count in the `late_rows_dropped` metric.
pub struct SequenceOrder {
    config: SequenceOrderConfig,
    output_schema: SchemaRef,
    keys: KeyMap<SeqKey>,
    store: RowStore,
    /// Deadlines: (time, key id as tiebreak, key id).
    timers: TimerQueue<u32>,
    releases: Releases,
    /// The highest input watermark seen.
    watermark: Option<EventTime>,
    /// The last watermark forwarded.
    emitted_watermark: Option<EventTime>,
    warned_null_time: bool,
    /// Scratch: rows of the current batch held during it, as (key, seq).
    newly_held: Vec<(u32, i64)>,
}

impl fmt::Debug for SequenceOrder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SequenceOrder")
            .field("output", &self.config.output)
            .field("keys", &self.keys.len())
            .field("stats", &self.releases.stats)
            .field("watermark", &self.watermark)
            .finish()
    }
}

impl SequenceOrder {
    /// A sequence-ordering operator; fails for invalid columns or bounds.
    pub fn try_new(config: SequenceOrderConfig) -> Result<Self> {
        config.validate()?;
        let keys = KeyMap::try_new(
            &config.input_schema,
            config.key_columns.clone(),
            "SEQUENCE_ORDER",
        )?;
        Ok(Self {
            output_schema: config.output_schema(),
            store: RowStore::new(config.input_schema.clone()),
            keys,
            timers: TimerQueue::new(),
            releases: Releases::default(),
            watermark: None,
            emitted_watermark: None,
            warned_null_time: false,
            newly_held: Vec::new(),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SequenceOrderConfig {
        &self.config
    }

    /// The output schema (see [`SequenceOrderConfig::output_schema`]).
    pub fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    /// The counters.
    pub fn stats(&self) -> SequenceOrderStats {
        self.releases.stats
    }

    /// Number of keys with state.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    fn first_expected(&self, seq: i64) -> i64 {
        match self.config.start {
            SequenceStart::FirstSeen => seq,
            SequenceStart::Fixed(s) => s,
        }
    }

    /// Re-arms the deadline of `key` after its first held row changed.
    fn reschedule(timers: &mut TimerQueue<u32>, delay: i64, id: u32, key: &mut SeqKey) {
        let deadline = key
            .held
            .first_key_value()
            .map(|(_, h)| h.ts.saturating_add(delay));
        if deadline != key.deadline {
            key.deadline = deadline;
            if let Some(d) = deadline {
                timers.push(d, u64::from(id), id);
            }
        }
    }

    /// Gives up the gaps whose deadline the watermark `w` reached.
    fn expire(&mut self, w: EventTime) -> Result<()> {
        let delay = self.config.max_delay_ms;
        while let Some((deadline, _, id)) = self.timers.pop_until(w) {
            let Some(key) = self.keys.get_mut(id) else {
                continue;
            };
            if key.deadline != Some(deadline) {
                continue; // stale
            }
            key.deadline = None;
            self.releases.give_up(id, key, Some(w));
            Self::reschedule(&mut self.timers, delay, id, key);
        }
        Ok(())
    }

    /// Emits what was released (rows or gaps) and frees released rows.
    fn emit(&mut self, current: Option<&RecordBatch>, out: &mut Collector) -> Result<()> {
        match self.config.output {
            SequenceOutput::Rows => {
                if !self.releases.rows.is_empty() {
                    out.collect(self.store.gather(current, &self.releases.rows)?);
                }
            }
            SequenceOutput::Gaps => {
                if !self.releases.gaps.is_empty() {
                    out.collect(self.gap_batch()?);
                }
            }
        }
        for loc in self.releases.rows.drain(..) {
            if let Loc::Stored(r) = loc {
                self.store.release(r)?;
            }
        }
        self.releases.gaps.clear();
        Ok(())
    }

    fn gap_batch(&self) -> Result<RecordBatch> {
        let gaps = &self.releases.gaps;
        let ids: Vec<u32> = gaps.iter().map(|g| g.key).collect();
        let mut columns = self.keys.decode(&ids)?;
        columns.push(Arc::new(Int64Array::from_iter_values(
            gaps.iter().map(|g| g.first),
        )));
        columns.push(Arc::new(Int64Array::from_iter_values(
            gaps.iter().map(|g| g.last),
        )));
        columns.push(Arc::new(TimestampMillisecondArray::from_iter(
            gaps.iter().map(|g| g.detected_at),
        )));
        crate::util::build_batch(&self.output_schema, columns, gaps.len())
    }

    /// Moves the rows of `batch` still held after it into the store.
    fn store_held(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.newly_held.is_empty() {
            return Ok(());
        }
        let keep_rows = self.config.output == SequenceOutput::Rows;
        let mut rows = Vec::new();
        let mut targets = Vec::new();
        for &(id, seq) in &self.newly_held {
            let Some(held) = self.keys.get_mut(id).and_then(|k| k.held.get_mut(&seq)) else {
                continue; // released during the batch
            };
            if let Some(Loc::Current(row)) = held.loc {
                if keep_rows {
                    rows.push(row);
                    targets.push((id, seq));
                } else {
                    held.loc = None;
                }
            }
        }
        self.newly_held.clear();
        let refs = self.store.insert(batch, &rows)?;
        for ((id, seq), r) in targets.into_iter().zip(refs) {
            if let Some(held) = self.keys.get_mut(id).and_then(|k| k.held.get_mut(&seq)) {
                held.loc = Some(Loc::Stored(r));
            }
        }
        Ok(())
    }

    /// Takes one row: releases, holds or drops it.
    fn accept(&mut self, key: &[u8], seq: i64, ts: i64, loc: Loc) -> Result<()> {
        let start = self.first_expected(seq);
        let (id, _) = self.keys.get_or_insert(key, || SeqKey {
            next: start,
            ..SeqKey::default()
        });
        let state = self.keys.value_mut(id)?;
        if seq < state.next || state.held.contains_key(&seq) {
            self.releases.stats.duplicate_rows += 1;
            return Ok(());
        }
        let loc = Some(loc);
        if seq == state.next {
            self.releases.rows.extend(loc);
            self.releases.stats.released_rows += 1;
            state.next = state.next.saturating_add(1);
            self.releases.drain(state);
        } else {
            state.held.insert(seq, Held { ts, loc });
            self.releases.hold(ts);
            if matches!(loc, Some(Loc::Current(_))) {
                self.newly_held.push((id, seq));
            }
            if state.held.len() > self.config.max_buffer_rows {
                self.releases.give_up(id, state, self.watermark);
                self.releases.stats.buffer_full_gaps += 1;
            }
        }
        Self::reschedule(&mut self.timers, self.config.max_delay_ms, id, state);
        Ok(())
    }

    /// The watermark to forward: the input watermark, held back below the
    /// earliest held row in [`SequenceOutput::Rows`] mode.
    fn output_watermark(&self, w: EventTime) -> EventTime {
        match (
            self.config.output,
            self.releases.held_times.first_key_value(),
        ) {
            (SequenceOutput::Rows, Some((&ts, _))) => w.min(ts.saturating_sub(1)),
            _ => w,
        }
    }
}

impl Operator for SequenceOrder {
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        if let Some(w) = ctx.watermark {
            advance_watermark(&mut self.watermark, w);
        }
        let seqs = int64_values(&batch, self.config.sequence_column, "sequence column")?;
        let times = Times::read(&batch, self.config.time_column)?;
        let keys = self.keys.encode(&batch)?;
        let seq_nulls = seqs.null_count() > 0;
        let mut null_times = 0u64;
        for row in 0..n {
            if seq_nulls && seqs.is_null(row) {
                self.releases.stats.null_sequence_rows += 1;
                continue;
            }
            let Some(ts) = times.get(row) else {
                null_times += 1;
                continue;
            };
            self.accept(keys.key(row), seqs.value(row), ts, Loc::Current(row as u32))?;
        }
        count_null_times(ctx, null_times, &mut self.warned_null_time);
        self.emit(Some(&batch), out)?;
        self.store_held(&batch)
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        _ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        let w = advance_watermark(&mut self.watermark, watermark);
        self.expire(w)?;
        self.emit(None, out)?;
        let forward = self.output_watermark(w);
        if self.emitted_watermark.is_none_or(|e| forward > e) {
            self.emitted_watermark = Some(forward);
            out.emit_watermark(forward);
        }
        Ok(())
    }

    fn on_end(&mut self, _ctx: &mut OperatorContext, out: &mut Collector) -> Result<()> {
        let ids: Vec<u32> = self.keys.iter().map(|(id, _)| id).collect();
        for id in ids {
            let state = self.keys.value_mut(id)?;
            while self.releases.give_up(id, state, self.watermark) {}
            state.deadline = None;
        }
        self.timers.clear();
        self.emit(None, out)
    }

    fn snapshot(&mut self) -> Result<OperatorState> {
        let s = &self.releases.stats;
        let counters = [
            s.released_rows,
            s.duplicate_rows,
            s.null_sequence_rows,
            s.gaps,
            s.buffer_full_gaps,
            s.missing_sequences,
        ];
        let mut state = OperatorState::empty();
        put_time_meta(
            &mut state,
            &[
                ("watermark", self.watermark),
                ("emitted_watermark", self.emitted_watermark),
            ],
        )?;
        state.put(
            "counters",
            state_batch(vec![(
                "value",
                Arc::new(UInt64Array::from(counters.to_vec())),
            )])?,
        )?;
        let ids: Vec<u32> = self.keys.iter().map(|(id, _)| id).collect();
        let nexts: Vec<i64> = ids
            .iter()
            .filter_map(|&id| self.keys.get(id).map(|k| k.next))
            .collect();
        state.put(
            "keys",
            with_keys(
                self.keys.state_fields(),
                self.keys.decode(&ids)?,
                vec![("next", Arc::new(Int64Array::from(nexts)))],
            )?,
        )?;
        let mut held_ids = Vec::new();
        let mut held_seq = Vec::new();
        let mut held_ts = Vec::new();
        let mut held_refs = Vec::new();
        for &id in &ids {
            let Some(k) = self.keys.get(id) else { continue };
            for (&seq, h) in &k.held {
                held_ids.push(id);
                held_seq.push(seq);
                held_ts.push(h.ts);
                if let Some(Loc::Stored(r)) = h.loc {
                    held_refs.push(r);
                }
            }
        }
        state.put(
            "held",
            with_keys(
                self.keys.state_fields(),
                self.keys.decode(&held_ids)?,
                vec![
                    ("seq", Arc::new(Int64Array::from(held_seq))),
                    ("ts", Arc::new(Int64Array::from(held_ts))),
                ],
            )?,
        )?;
        if self.config.output == SequenceOutput::Rows {
            if held_refs.len() != held_ids.len() {
                return Err(WeirError::Internal(
                    "sequence order: a held row is not stored".into(),
                ));
            }
            state.put(
                "held_rows",
                self.store.gather_stored(held_refs.into_iter())?,
            )?;
        }
        Ok(state)
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        if state.is_empty() {
            return Ok(());
        }
        [self.watermark, self.emitted_watermark] =
            read_time_meta(&state, ["watermark", "emitted_watermark"])?;
        let counters = uint64_column(state.require("counters")?, "value")?;
        if counters.len() != 6 {
            return Err(WeirError::State(format!(
                "state table 'counters' has {} rows, expected 6",
                counters.len()
            )));
        }
        let c = counters.values();
        self.releases.stats = SequenceOrderStats {
            released_rows: c[0],
            duplicate_rows: c[1],
            null_sequence_rows: c[2],
            gaps: c[3],
            buffer_full_gaps: c[4],
            missing_sequences: c[5],
            held_rows: 0,
        };
        let keys_table = state.require("keys")?;
        let nexts = int64_column(keys_table, "next")?;
        let encoded = self.keys.encode_state(keys_table)?;
        for i in 0..keys_table.num_rows() {
            let next = nexts.value(i);
            self.keys.get_or_insert(encoded.key(i), || SeqKey {
                next,
                ..SeqKey::default()
            });
        }
        let held = state.require("held")?;
        let seqs = int64_column(held, "seq")?;
        let times = int64_column(held, "ts")?;
        let encoded = self.keys.encode_state(held)?;
        let refs = match self.config.output {
            SequenceOutput::Rows => {
                let rows = state.require("held_rows")?;
                if rows.num_rows() != held.num_rows() {
                    return Err(WeirError::State(format!(
                        "state table 'held_rows' has {} rows, 'held' {}",
                        rows.num_rows(),
                        held.num_rows()
                    )));
                }
                let all: Vec<u32> = (0..rows.num_rows() as u32).collect();
                self.store
                    .insert(rows, &all)?
                    .into_iter()
                    .map(Some)
                    .collect()
            }
            SequenceOutput::Gaps => vec![None; held.num_rows()],
        };
        for (i, r) in refs.into_iter().enumerate() {
            let id = self.keys.get_id(encoded.key(i)).ok_or_else(|| {
                WeirError::State("a held row belongs to a key missing from 'keys'".into())
            })?;
            let ts = times.value(i);
            let key = self.keys.value_mut(id)?;
            key.held.insert(
                seqs.value(i),
                Held {
                    ts,
                    loc: r.map(Loc::Stored),
                },
            );
            self.releases.hold(ts);
        }
        let ids: Vec<u32> = self.keys.iter().map(|(id, _)| id).collect();
        for id in ids {
            let key = self.keys.value_mut(id)?;
            Self::reschedule(&mut self.timers, self.config.max_delay_ms, id, key);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{self, rows_of, Event, Harness, Step};
    use arrow::array::{ArrayRef, StringArray, UInt64Array};
    use arrow::datatypes::TimeUnit;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("k", DataType::Utf8, true),
            Field::new("seq", DataType::Int64, true),
        ]))
    }

    fn input(rows: &[(i64, &str, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(TimestampMillisecondArray::from(
                    rows.iter().map(|r| r.0).collect::<Vec<_>>(),
                )),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                Arc::new(Int64Array::from(
                    rows.iter().map(|r| r.2).collect::<Vec<_>>(),
                )),
            ],
        )
        .expect("batch")
    }

    fn config(delay: i64, output: SequenceOutput) -> SequenceOrderConfig {
        let mut c = SequenceOrderConfig::new(schema(), vec![1], 2, 0);
        c.max_delay_ms = delay;
        c.output = output;
        c
    }

    fn op(c: SequenceOrderConfig) -> Harness<SequenceOrder> {
        Harness::new(SequenceOrder::try_new(c).expect("operator"))
    }

    fn rows(v: &[&str]) -> Event {
        Event::Rows(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn in_order_rows_pass_through_at_once() {
        let mut h = op(config(1_000, SequenceOutput::Rows));
        h.batch(input(&[(1, "a", 7), (2, "b", 1), (3, "a", 8), (4, "b", 2)]))
            .expect("batch");
        assert_eq!(
            h.take_events(),
            vec![rows(&["1,a,7", "2,b,1", "3,a,8", "4,b,2"])]
        );
        h.watermark(10).expect("wm");
        assert_eq!(h.take_events(), vec![Event::Watermark(10)]);
        assert_eq!(h.op.stats().released_rows, 4);
    }

    #[test]
    fn out_of_order_rows_are_held_and_released_in_order_per_key() {
        let mut c = config(1_000, SequenceOutput::Rows);
        c.start = SequenceStart::EXPECT_ONE;
        let mut h = op(c);
        h.batch(input(&[
            (10, "a", 3),
            (11, "b", 2),
            (12, "a", 1),
            (13, "b", 1),
            (14, "a", 4),
        ]))
        .expect("batch");
        assert_eq!(h.take_events(), vec![rows(&["12,a,1", "13,b,1", "11,b,2"])]);
        assert_eq!(h.op.stats().held_rows, 2);
        h.batch(input(&[(15, "a", 2)])).expect("batch");
        assert_eq!(h.take_events(), vec![rows(&["15,a,2", "10,a,3", "14,a,4"])]);
        assert_eq!(h.op.stats().held_rows, 0);
        assert_eq!(h.op.stats().gaps, 0);
    }

    #[test]
    fn duplicates_are_dropped_and_counted() {
        let mut h = op(config(1_000, SequenceOutput::Rows));
        h.batch(input(&[
            (1, "a", 1),
            (2, "a", 1), // released already
            (3, "a", 3),
            (4, "a", 3), // held already
            (5, "a", 0), // before the start
        ]))
        .expect("batch");
        h.batch(input(&[(6, "a", 2), (7, "a", 3), (8, "a", 2), (9, "a", 4)]))
            .expect("batch");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["1,a,1", "6,a,2", "3,a,3", "9,a,4"]
        );
        let s = h.op.stats();
        assert_eq!(s.duplicate_rows, 5);
        assert_eq!(s.released_rows, 4);
    }

    #[test]
    fn gap_is_given_up_when_the_watermark_reaches_first_held_time_plus_delay() {
        let mut h = op(config(500, SequenceOutput::Rows));
        h.batch(input(&[(900, "a", 1), (1_000, "a", 3), (800, "a", 4)]))
            .expect("batch");
        assert_eq!(h.take_events(), vec![rows(&["900,a,1"])]);
        // Deadline 1_000 + 500; the watermark is held below the held rows (800).
        h.watermark(1_499).expect("wm");
        assert_eq!(h.take_events(), vec![Event::Watermark(799)]);
        h.watermark(1_500).expect("wm");
        assert_eq!(
            h.take_events(),
            vec![rows(&["1000,a,3", "800,a,4"]), Event::Watermark(1_500)]
        );
        // The missing row arrives after the gap was given up: a duplicate.
        h.batch(input(&[(950, "a", 2), (1_600, "a", 5)]))
            .expect("batch");
        assert_eq!(h.take_events(), vec![rows(&["1600,a,5"])]);
        let s = h.op.stats();
        assert_eq!((s.gaps, s.missing_sequences, s.duplicate_rows), (1, 1, 1));
    }

    #[test]
    fn gaps_output_reports_key_range_and_detection_watermark() {
        let mut h = op(config(100, SequenceOutput::Gaps));
        assert_eq!(
            h.op.output_schema()
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>(),
            vec!["k", "first_missing", "last_missing", "detected_at"]
        );
        h.batch(input(&[
            (10, "a", 1),
            (20, "a", 5),
            (30, "b", 1),
            (40, "b", 3),
            (50, "a", 9),
        ]))
        .expect("batch");
        assert!(
            h.take_events().is_empty(),
            "rows are not emitted in gap mode"
        );
        // The first held row after a's gap is seq 5 at 20: deadline 120.
        h.watermark(119).expect("wm");
        assert_eq!(h.take_events(), vec![Event::Watermark(119)]);
        h.watermark(120).expect("wm");
        assert_eq!(
            h.take_events(),
            vec![rows(&["a,2,4,120"]), Event::Watermark(120)]
        );
        h.watermark(1_000).expect("wm");
        assert_eq!(
            h.take_events(),
            vec![rows(&["b,2,2,1000", "a,6,8,1000"]), Event::Watermark(1_000)]
        );
        assert_eq!(h.op.stats().missing_sequences, 3 + 1 + 3);
    }

    #[test]
    fn a_full_buffer_gives_up_the_smallest_gap_at_once() {
        let mut c = config(60_000, SequenceOutput::Rows);
        c.max_buffer_rows = 2;
        let mut h = op(c);
        h.batch(input(&[(1, "a", 1), (2, "a", 3), (3, "a", 6), (4, "a", 5)]))
            .expect("batch");
        assert_eq!(rows_of(&h.take_batches()), vec!["1,a,1", "2,a,3"]);
        let s = h.op.stats();
        assert_eq!((s.gaps, s.buffer_full_gaps, s.held_rows), (1, 1, 2));
        h.batch(input(&[(5, "a", 4)])).expect("batch");
        assert_eq!(rows_of(&h.take_batches()), vec!["5,a,4", "4,a,5", "3,a,6"]);
    }

    #[test]
    fn buffer_full_gap_is_stamped_with_the_current_watermark() {
        let mut c = config(60_000, SequenceOutput::Gaps);
        c.max_buffer_rows = 1;
        let mut h = op(c);
        h.batch(input(&[(1, "a", 1), (2, "a", 3), (3, "a", 5)]))
            .expect("batch");
        assert_eq!(rows_of(&h.take_batches()), vec!["a,2,2,null"]);
        h.watermark(42).expect("wm");
        h.batch(input(&[(4, "a", 7)])).expect("batch");
        assert_eq!(
            h.take_events(),
            vec![Event::Watermark(42), rows(&["a,4,4,42"])]
        );
    }

    #[test]
    fn end_of_input_releases_everything_in_order_and_reports_gaps() {
        for output in [SequenceOutput::Rows, SequenceOutput::Gaps] {
            let mut c = config(60_000, output);
            c.start = SequenceStart::EXPECT_ONE;
            let mut h = op(c);
            h.batch(input(&[
                (1, "b", 4),
                (2, "a", 1),
                (3, "b", 2),
                (4, "a", 7),
                (5, "a", 3),
            ]))
            .expect("batch");
            h.watermark(10).expect("wm");
            let before = rows_of(&h.take_batches());
            h.end().expect("end");
            let after = rows_of(&h.take_batches());
            match output {
                SequenceOutput::Rows => {
                    assert_eq!(before, vec!["2,a,1"]);
                    assert_eq!(after, vec!["3,b,2", "1,b,4", "5,a,3", "4,a,7"]);
                }
                SequenceOutput::Gaps => {
                    assert!(before.is_empty());
                    assert_eq!(after, vec!["b,1,1,10", "b,3,3,10", "a,2,2,10", "a,4,6,10"]);
                }
            }
            assert_eq!(h.op.stats().held_rows, 0);
        }
    }

    #[test]
    fn fixed_start_waits_for_the_first_rows() {
        let mut c = config(100, SequenceOutput::Rows);
        c.start = SequenceStart::Fixed(1);
        let mut h = op(c);
        h.batch(input(&[(10, "a", 2), (11, "a", 0)]))
            .expect("batch");
        assert!(h.take_batches().is_empty());
        h.watermark(110).expect("wm");
        assert_eq!(rows_of(&h.take_batches()), vec!["10,a,2"]);
        assert_eq!(h.op.stats().duplicate_rows, 1);
        assert_eq!(h.op.stats().gaps, 1);
    }

    #[test]
    fn first_seen_start_releases_the_first_row_and_drops_earlier_ones() {
        let mut h = op(config(100, SequenceOutput::Rows));
        h.batch(input(&[(10, "a", 5), (11, "a", 4), (12, "a", 6)]))
            .expect("batch");
        assert_eq!(rows_of(&h.take_batches()), vec!["10,a,5", "12,a,6"]);
        assert_eq!(h.op.stats().duplicate_rows, 1);
    }

    #[test]
    fn no_key_columns_orders_the_whole_input() {
        let mut c = SequenceOrderConfig::new(schema(), vec![], 2, 0);
        c.start = SequenceStart::EXPECT_ONE;
        c.output = SequenceOutput::Gaps;
        let mut h = op(c.clone());
        assert_eq!(h.op.output_schema().fields().len(), 3);
        h.batch(input(&[(1, "a", 2), (2, "b", 4), (3, "c", 1)]))
            .expect("batch");
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()), vec!["3,3,null"]);
        c.output = SequenceOutput::Rows;
        let mut h = op(c);
        h.batch(input(&[(1, "a", 2), (2, "b", 4), (3, "c", 1)]))
            .expect("batch");
        h.batch(input(&[(4, "d", 3)])).expect("batch");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["3,c,1", "1,a,2", "4,d,3", "2,b,4"]
        );
    }

    #[test]
    fn null_sequence_and_null_time_rows_are_dropped_and_counted() {
        let mut h = op(config(100, SequenceOutput::Rows));
        let b = input(&[(1, "a", 1), (2, "a", 2), (3, "a", 3)]);
        let ts: ArrayRef = Arc::new(TimestampMillisecondArray::from(vec![
            Some(1),
            None,
            Some(3),
        ]));
        let seq: ArrayRef = Arc::new(Int64Array::from(vec![Some(1), Some(2), None]));
        let b = RecordBatch::try_new(schema(), vec![ts, b.column(1).clone(), seq]).expect("batch");
        h.batch(b).expect("batch");
        assert_eq!(rows_of(&h.take_batches()), vec!["1,a,1"]);
        assert_eq!(h.op.stats().null_sequence_rows, 1);
        assert_eq!(h.late_dropped(), 1);
    }

    #[test]
    fn sequence_types_are_checked() {
        let s = Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Int64, false),
            Field::new("seq", DataType::Utf8, false),
            Field::new("useq", DataType::UInt64, false),
        ]));
        assert!(SequenceOrder::try_new(SequenceOrderConfig::new(s.clone(), vec![], 1, 0)).is_err());
        assert!(SequenceOrder::try_new(SequenceOrderConfig::new(s.clone(), vec![], 2, 1)).is_err());
        assert!(
            SequenceOrder::try_new(SequenceOrderConfig::new(s.clone(), vec![7], 2, 0)).is_err()
        );
        let mut neg = SequenceOrderConfig::new(s.clone(), vec![], 2, 0);
        neg.max_delay_ms = -1;
        assert!(SequenceOrder::try_new(neg).is_err());
        let mut h = op(SequenceOrderConfig::new(s.clone(), vec![], 2, 0));
        let big = RecordBatch::try_new(
            s,
            vec![
                Arc::new(Int64Array::from(vec![1, 2])),
                Arc::new(StringArray::from(vec!["x", "y"])),
                Arc::new(UInt64Array::from(vec![1, u64::MAX])),
            ],
        )
        .expect("batch");
        let err = h.batch(big).expect_err("too large");
        assert!(err.to_string().contains("useq"), "{err}");
    }

    /// Runs `steps` (Ok = batch, Err = watermark), optionally snapshotting
    /// and restoring into a fresh operator after `cut` steps.
    fn replay(
        c: &SequenceOrderConfig,
        steps: &[Step],
        cut: Option<usize>,
    ) -> (Vec<Event>, SequenceOrderStats) {
        let make = || SequenceOrder::try_new(c.clone()).expect("operator");
        let (events, h) = test_util::replay(make, steps, cut);
        (events, h.op.stats())
    }

    #[test]
    fn snapshot_round_trip_gives_identical_output() {
        let steps = vec![
            Ok(input(&[
                (100, "a", 1),
                (110, "a", 3),
                (120, "b", 5),
                (130, "a", 5),
            ])),
            Ok(input(&[
                (140, "b", 7),
                (150, "a", 3),
                (160, "c", 2),
                (170, "b", 6),
            ])),
            Err(300),
            Ok(input(&[
                (200, "a", 2),
                (210, "a", 9),
                (220, "b", 9),
                (230, "c", 4),
            ])),
            Err(640),
            Ok(input(&[
                (500, "a", 4),
                (510, "c", 3),
                (520, "b", 12),
                (530, "a", 6),
            ])),
            Err(700),
            Ok(input(&[(600, "b", 10), (610, "a", 10), (620, "c", 9)])),
            Err(2_000),
            Ok(input(&[(1_900, "a", 12), (1_910, "a", 11)])),
        ];
        for output in [SequenceOutput::Rows, SequenceOutput::Gaps] {
            for start in [SequenceStart::FirstSeen, SequenceStart::EXPECT_ONE] {
                let mut c = config(400, output);
                c.start = start;
                c.max_buffer_rows = 3;
                let (expected, stats) = replay(&c, &steps, None);
                assert!(stats.gaps > 2 && stats.duplicate_rows > 0, "{stats:?}");
                for cut in 1..steps.len() {
                    let (got, got_stats) = replay(&c, &steps, Some(cut));
                    assert_eq!(got, expected, "{output:?} {start:?} cut at {cut}");
                    assert_eq!(got_stats, stats);
                }
            }
        }
    }
}
