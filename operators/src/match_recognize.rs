//! [`MatchRecognize`]: Flink's `MATCH_RECOGNIZE` (`ONE ROW PER MATCH`) as a
//! streaming operator over event time.
//!
//! Rows are partitioned by the `PARTITION BY` columns and buffered until
//! the watermark passes them; then each partition's rows are fed to the
//! NFA ([`crate::cep`]) in event-time order (rows with equal times in
//! arrival order), as Flink's `CepOperator` does. A row whose time is at or
//! before the current watermark is late: dropped and counted in
//! `late_rows_dropped` (so are rows with a NULL time). With `WITHIN`,
//! partial matches time out when the watermark reaches their first row's
//! time plus the interval.
//!
//! Output: one row per match, the partition columns followed by the
//! measures, emitted when the watermark (or the end of input) releases the
//! match, before the watermark is forwarded. At the end of input every
//! buffered row is matched; partial matches still running are dropped, as
//! in Flink.
//!
//! State (snapshot/restore): the buffered and still-needed rows of every
//! partition (with their input columns), the partial and completed matches
//! and the watermark, as Arrow tables.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, ListArray, RecordBatch, StringArray,
    UInt32Array, UInt64Array,
};
use arrow::array::{ListBuilder, UInt32Builder};
use arrow::compute::interleave;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type};
use weir_engine::message::EventTime;
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};

use crate::cep::matcher::PartitionState;
use crate::cep::nfa::{Counts, PartialMatch, Scratch};
use crate::cep::rows::{History, RowLoc, RowStore, StoredRow};
use crate::cep::{CompiledMatch, MatchContext};
use crate::groups::KeyCodec;
use crate::util::{build_batch, event_times};

/// Version of the snapshot layout.
const STATE_VERSION: u32 = 1;

/// Rows per chunk when the row store is compacted.
const COMPACT_CHUNK_ROWS: usize = 8192;

/// One `PARTITION BY` key's matching state.
struct Partition {
    /// The partition key (row format).
    key: Box<[u8]>,
    /// Rows, partial and completed matches.
    state: PartitionState,
    /// The time this partition is queued under in `timers`.
    timer: Option<i64>,
}

/// `MATCH_RECOGNIZE … ONE ROW PER MATCH` over event time. See the
/// [module docs](self).
pub struct MatchRecognize {
    compiled: Arc<CompiledMatch>,
    /// `PARTITION BY` column indices.
    partition_by: Vec<usize>,
    /// Partition columns, then measures.
    output_schema: SchemaRef,
    /// Encodes partition keys.
    codec: KeyCodec,
    /// Partition key -> partition number.
    ids: HashMap<Box<[u8]>, u64, ahash::RandomState>,
    /// Partitions by number (a slab: numbers of dropped partitions are
    /// reused, most recently freed first).
    partitions: Vec<Option<Partition>>,
    /// Free partition numbers (a stack).
    free: Vec<u64>,
    /// Number of live partitions.
    live: usize,
    /// States of dropped partitions, kept for their allocations.
    spare: Vec<PartitionState>,
    /// `(time, partition)`: when a partition next needs the watermark (its
    /// earliest buffered row or the time-out of its earliest partial match).
    timers: BTreeSet<(i64, u64)>,
    /// The rows of all partitions.
    store: RowStore,
    /// The highest watermark seen (survives restore).
    watermark: Option<EventTime>,
    scratch: Scratch,
    warned_null_time: bool,
}

impl fmt::Debug for MatchRecognize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MatchRecognize")
            .field("compiled", &self.compiled)
            .field("partition_by", &self.partition_by)
            .field("partitions", &self.live)
            .field("rows", &self.store.live_rows())
            .field("watermark", &self.watermark)
            .finish()
    }
}

impl MatchRecognize {
    /// The operator for `compiled`, partitioned by the input columns
    /// `partition_by` (empty: one partition, i.e. no parallelism, as in
    /// Flink without `PARTITION BY`).
    pub fn try_new(compiled: Arc<CompiledMatch>, partition_by: Vec<usize>) -> Result<Self> {
        let output_schema = Self::output_schema_for(&compiled, &partition_by)?;
        Ok(Self {
            codec: KeyCodec::new(partition_by.len()),
            ids: HashMap::with_hasher(ahash::RandomState::new()),
            partitions: Vec::new(),
            free: Vec::new(),
            live: 0,
            spare: Vec::new(),
            timers: BTreeSet::new(),
            store: RowStore::default(),
            watermark: None,
            scratch: Scratch::default(),
            warned_null_time: false,
            output_schema,
            partition_by,
            compiled,
        })
    }

    /// The output schema of `compiled` partitioned by `partition_by`: the
    /// partition columns, then the measures.
    pub fn output_schema_for(
        compiled: &CompiledMatch,
        partition_by: &[usize],
    ) -> Result<SchemaRef> {
        let input = compiled.input_schema();
        let mut fields: Vec<Field> = Vec::new();
        for &i in partition_by {
            let f = input.fields().get(i).ok_or_else(|| {
                WeirError::Plan(format!(
                    "PARTITION BY column index {i} is out of range: the input has {} columns",
                    input.fields().len()
                ))
            })?;
            fields.push(f.as_ref().clone());
        }
        for f in compiled.measures_schema().fields() {
            if fields.iter().any(|g| g.name() == f.name()) {
                return Err(WeirError::Plan(format!(
                    "measure '{}' has the name of a PARTITION BY column",
                    f.name()
                )));
            }
            fields.push(f.as_ref().clone());
        }
        Ok(Arc::new(Schema::new(fields)))
    }

    /// The output schema: partition columns, then measures.
    pub fn output_schema(&self) -> &SchemaRef {
        &self.output_schema
    }

    /// The compiled pattern.
    pub fn compiled(&self) -> &Arc<CompiledMatch> {
        &self.compiled
    }

    /// Number of partitions with state.
    pub fn partitions(&self) -> usize {
        self.live
    }

    /// Number of running partial matches over all partitions.
    pub fn partial_matches(&self) -> usize {
        self.partitions
            .iter()
            .flatten()
            .map(|p| p.state.run.partials.len())
            .sum()
    }

    /// Partition `pid`.
    fn part(&self, pid: u64) -> Option<&Partition> {
        self.partitions.get(pid as usize).and_then(Option::as_ref)
    }

    /// Number of rows kept (buffered or still needed by a match).
    pub fn rows_kept(&self) -> usize {
        self.store.live_rows()
    }

    /// Queues partition `pid` under `time` (earlier times win).
    fn schedule(timers: &mut BTreeSet<(i64, u64)>, pid: u64, part: &mut Partition, time: i64) {
        if part.timer.is_some_and(|t| t <= time) {
            return;
        }
        if let Some(old) = part.timer.take() {
            timers.remove(&(old, pid));
        }
        part.timer = Some(time);
        timers.insert((time, pid));
    }

    /// Creates the partition of `key`.
    fn new_partition(&mut self, key: &[u8]) -> u64 {
        let part = Partition {
            key: key.into(),
            state: self.spare.pop().unwrap_or_default(),
            timer: None,
        };
        let pid = match self.free.pop() {
            Some(pid) => {
                if let Some(slot) = self.partitions.get_mut(pid as usize) {
                    *slot = Some(part);
                }
                pid
            }
            None => {
                self.partitions.push(Some(part));
                (self.partitions.len() - 1) as u64
            }
        };
        self.ids.insert(key.into(), pid);
        self.live += 1;
        pid
    }

    /// Drops partition `pid`, keeping its state's allocations for reuse.
    fn drop_partition(&mut self, pid: u64) {
        let Some(mut p) = self.partitions.get_mut(pid as usize).and_then(Option::take) else {
            return;
        };
        self.ids.remove(&p.key);
        if let Some(t) = p.timer {
            self.timers.remove(&(t, pid));
        }
        p.state.reset(&mut self.store);
        if self.spare.len() < 1024 {
            self.spare.push(p.state);
        }
        self.free.push(pid);
        self.live -= 1;
    }

    /// Feeds every partition whose timer is due at `watermark` and emits
    /// the matches released.
    fn fire(&mut self, watermark: EventTime, out: &mut Collector) -> Result<()> {
        let mut due = Vec::new();
        while let Some(&(t, pid)) = self.timers.first() {
            if t > watermark {
                break;
            }
            self.timers.pop_first();
            due.push(pid);
        }
        if due.is_empty() {
            return Ok(());
        }
        let mut matches: Vec<(u64, PartialMatch)> = Vec::new();
        let mut buf = Vec::new();
        for &pid in &due {
            let Some(part) = self
                .partitions
                .get_mut(pid as usize)
                .and_then(Option::as_mut)
            else {
                continue;
            };
            part.timer = None;
            self.compiled.advance(
                &mut part.state,
                &self.store,
                watermark,
                &mut self.scratch,
                &mut buf,
            )?;
            matches.extend(buf.drain(..).map(|m| (pid, m)));
        }
        if !matches.is_empty() {
            let batch = self.output(&matches)?;
            out.collect(batch);
        }
        let look_back = self.compiled.look_back();
        for pid in due {
            let Some(part) = self
                .partitions
                .get_mut(pid as usize)
                .and_then(Option::as_mut)
            else {
                continue;
            };
            let keep = self.compiled.keep_from(&part.state);
            part.state.history.trim_before(keep, &mut self.store);
            if let Some(t) = self.compiled.wakeup(&part.state) {
                Self::schedule(&mut self.timers, pid, part, t);
            } else if look_back == 0 && part.state.is_idle() {
                self.drop_partition(pid);
            }
        }
        self.maybe_compact()
    }

    /// The output rows of released matches: partition columns from each
    /// match's first row, then the measures.
    fn output(&self, matches: &[(u64, PartialMatch)]) -> Result<RecordBatch> {
        let ctxs = matches
            .iter()
            .map(|(pid, m)| {
                let part = self
                    .part(*pid)
                    .ok_or_else(|| WeirError::Internal(format!("partition {pid} vanished")))?;
                Ok(self.compiled.context(&self.store, &part.state.history, m))
            })
            .collect::<Result<Vec<MatchContext<'_>>>>()?;
        let mut columns = Vec::with_capacity(self.output_schema.fields().len());
        if !self.partition_by.is_empty() {
            let firsts = ctxs
                .iter()
                .zip(matches)
                .map(|(c, (_, m))| c.row(m.start_seq))
                .collect::<Result<Vec<_>>>()?;
            let mut batches: Vec<&RecordBatch> = Vec::new();
            let mut indices = Vec::with_capacity(firsts.len());
            for r in &firsts {
                let src = match batches.iter().position(|b| std::ptr::eq(*b, r.batch())) {
                    Some(i) => i,
                    None => {
                        batches.push(r.batch());
                        batches.len() - 1
                    }
                };
                indices.push((src, r.index()));
            }
            for &k in &self.partition_by {
                let arrays: Vec<&dyn Array> =
                    batches.iter().map(|b| b.column(k).as_ref()).collect();
                columns.push(interleave(&arrays, &indices)?);
            }
        }
        columns.extend(self.compiled.measure_columns(&ctxs)?);
        build_batch(&self.output_schema, columns, matches.len())
    }

    /// Copies the kept rows into fresh chunks when most stored rows are no
    /// longer referenced.
    fn maybe_compact(&mut self) -> Result<()> {
        let live = self.store.live_rows();
        if self.store.allocated_rows() <= 2 * live + 65_536 {
            return Ok(());
        }
        let mut locs: Vec<&mut RowLoc> = Vec::with_capacity(live);
        for p in self.partitions.iter_mut().flatten() {
            locs.extend(p.state.history.locs_mut());
            locs.extend(p.state.pending.iter_mut().map(|r| &mut r.loc));
        }
        self.store.compact(&mut locs, COMPACT_CHUNK_ROWS)
    }

    /// Numbers of the live partitions, ascending.
    fn sorted_pids(&self) -> Vec<u64> {
        self.partitions
            .iter()
            .enumerate()
            .filter(|(_, p)| p.is_some())
            .map(|(i, _)| i as u64)
            .collect()
    }
}

impl Operator for MatchRecognize {
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        _out: &mut Collector,
    ) -> Result<()> {
        let n = batch.num_rows();
        if n == 0 {
            return Ok(());
        }
        if batch.num_columns() != self.compiled.input_schema().fields().len() {
            return Err(WeirError::Execution(format!(
                "MATCH_RECOGNIZE expects {} input columns, got {}",
                self.compiled.input_schema().fields().len(),
                batch.num_columns()
            )));
        }
        let ts = event_times(&batch, self.compiled.time_column())?;
        let watermark = match (ctx.watermark, self.watermark) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let key_columns: Vec<ArrayRef> = self
            .partition_by
            .iter()
            .map(|&i| batch.column(i).clone())
            .collect();
        let keys = self.codec.encode(&key_columns)?;
        let derived = self.compiled.derive(&batch)?;
        let chunk = self.store.insert(batch, derived);
        let (mut late, mut nulls) = (0u64, 0u64);
        for i in 0..n {
            if ts.is_null(i) {
                nulls += 1;
                continue;
            }
            let t = ts.value(i);
            if watermark.is_some_and(|w| t <= w) {
                late += 1;
                continue;
            }
            let key = keys.key(i);
            let pid = match self.ids.get(key) {
                Some(&pid) => pid,
                None => self.new_partition(key),
            };
            let loc = RowLoc {
                chunk,
                row: i as u32,
            };
            self.store.retain(loc);
            let part = self
                .partitions
                .get_mut(pid as usize)
                .and_then(Option::as_mut)
                .ok_or_else(|| WeirError::Internal(format!("partition {pid} missing")))?;
            part.state.push_pending(StoredRow { loc, ts: t });
            Self::schedule(&mut self.timers, pid, part, t);
        }
        self.store.seal(chunk);
        if late + nulls > 0 {
            ctx.metrics.add_late_dropped(late + nulls);
        }
        if nulls > 0 && !self.warned_null_time {
            self.warned_null_time = true;
            tracing::warn!(node = %ctx.node, rows = nulls, "dropped rows with a NULL event time");
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        _ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
        self.fire(watermark, out)?;
        out.emit_watermark(watermark);
        Ok(())
    }

    fn on_end(&mut self, _ctx: &mut OperatorContext, out: &mut Collector) -> Result<()> {
        self.fire(EventTime::MAX, out)
    }

    fn snapshot(&mut self) -> Result<OperatorState> {
        let mut state = OperatorState::empty();
        let meta_schema = Arc::new(Schema::new(vec![
            Field::new("version", DataType::UInt32, false),
            Field::new("pattern", DataType::Utf8, false),
            Field::new("watermark", DataType::Int64, true),
            Field::new("slots", DataType::UInt64, false),
        ]));
        state.put(
            "meta",
            RecordBatch::try_new(
                meta_schema,
                vec![
                    Arc::new(UInt32Array::from(vec![STATE_VERSION])),
                    Arc::new(StringArray::from(vec![self.compiled.fingerprint()])),
                    Arc::new(Int64Array::from(vec![self.watermark])),
                    Arc::new(UInt64Array::from(vec![self.partitions.len() as u64])),
                ],
            )?,
        )?;
        state.put(
            "free",
            RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new(
                    "partition",
                    DataType::UInt64,
                    false,
                )])),
                vec![Arc::new(UInt64Array::from(self.free.clone()))],
            )?,
        )?;

        let pids = self.sorted_pids();
        let (mut p_id, mut p_base, mut p_order) = (vec![], vec![], vec![]);
        let mut locs: Vec<RowLoc> = Vec::new();
        let (mut r_pid, mut r_seq, mut r_ts) = (vec![], vec![], vec![]);
        let mut m_pid = vec![];
        let mut m_done = vec![];
        let mut m_state = vec![];
        let mut m_start = vec![];
        let mut m_start_ts = vec![];
        let mut m_order = vec![];
        let mut m_counts = ListBuilder::new(UInt32Builder::new());
        for pid in &pids {
            let Some(p) = self.part(*pid) else {
                continue;
            };
            p_id.push(*pid);
            p_base.push(p.state.history.base());
            p_order.push(p.state.run.next_order);
            for (seq, r) in p.state.history.iter() {
                locs.push(r.loc);
                r_pid.push(*pid);
                r_seq.push(Some(seq));
                r_ts.push(r.ts);
            }
            for r in &p.state.pending {
                locs.push(r.loc);
                r_pid.push(*pid);
                r_seq.push(None);
                r_ts.push(r.ts);
            }
            let all = p
                .state
                .run
                .partials
                .iter()
                .map(|m| (false, m))
                .chain(p.state.run.completed.iter().map(|m| (true, m)));
            for (done, m) in all {
                m_pid.push(*pid);
                m_done.push(done);
                m_state.push(m.state);
                m_start.push(m.start_seq);
                m_start_ts.push(m.start_ts);
                m_order.push(m.order);
                m_counts.append_value(m.counts.iter().map(|&c| Some(c)));
            }
        }
        let partitions = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("partition", DataType::UInt64, false),
                Field::new("history_base", DataType::UInt64, false),
                Field::new("next_order", DataType::UInt64, false),
            ])),
            vec![
                Arc::new(UInt64Array::from(p_id)),
                Arc::new(UInt64Array::from(p_base)),
                Arc::new(UInt64Array::from(p_order)),
            ],
        )?;
        state.put("partitions", partitions)?;
        let rows = if locs.is_empty() {
            RecordBatch::new_empty(self.compiled.input_schema().clone())
        } else {
            self.store.gather(&locs)?.0
        };
        state.put("rows", rows)?;
        let row_meta = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("partition", DataType::UInt64, false),
                Field::new("seq", DataType::UInt64, true),
                Field::new("ts", DataType::Int64, false),
            ])),
            vec![
                Arc::new(UInt64Array::from(r_pid)),
                Arc::new(UInt64Array::from(r_seq)),
                Arc::new(Int64Array::from(r_ts)),
            ],
        )?;
        state.put("row_meta", row_meta)?;
        let counts_field = Field::new("item", DataType::UInt32, true);
        let matches = RecordBatch::try_new(
            Arc::new(Schema::new(vec![
                Field::new("partition", DataType::UInt64, false),
                Field::new("completed", DataType::Boolean, false),
                Field::new("state", DataType::UInt32, false),
                Field::new("start_seq", DataType::UInt64, false),
                Field::new("start_ts", DataType::Int64, false),
                Field::new("order", DataType::UInt64, false),
                Field::new("counts", DataType::List(Arc::new(counts_field)), false),
            ])),
            vec![
                Arc::new(UInt64Array::from(m_pid)),
                Arc::new(BooleanArray::from(m_done)),
                Arc::new(UInt32Array::from(m_state)),
                Arc::new(UInt64Array::from(m_start)),
                Arc::new(Int64Array::from(m_start_ts)),
                Arc::new(UInt64Array::from(m_order)),
                Arc::new(m_counts.finish()),
            ],
        )?;
        state.put("matches", matches)?;
        Ok(state)
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        if state.is_empty() {
            return Ok(());
        }
        let corrupt = |what: &str| WeirError::State(format!("MATCH_RECOGNIZE state: {what}"));
        let meta = state.require("meta")?;
        if meta.num_rows() != 1 {
            return Err(corrupt("meta must have one row"));
        }
        if u32_col(meta, 0)?.value(0) != STATE_VERSION {
            return Err(corrupt("unknown state version"));
        }
        let pattern = state_col(meta, 1)?
            .as_string_opt::<i32>()
            .ok_or_else(|| corrupt("bad pattern column"))?;
        if pattern.value(0) != self.compiled.fingerprint() {
            return Err(WeirError::State(format!(
                "MATCH_RECOGNIZE state was written for {}, not {}",
                pattern.value(0),
                self.compiled.fingerprint()
            )));
        }
        let wm = i64_col(meta, 2)?;
        self.watermark = wm.is_valid(0).then(|| wm.value(0));
        let slots = u64_col(meta, 3)?.value(0) as usize;
        let free = u64_col(state.require("free")?, 0)?;
        if free.values().iter().any(|&f| f as usize >= slots) {
            return Err(corrupt("free partition number out of range"));
        }
        self.free = free.values().to_vec();

        let parts = state.require("partitions")?;
        let (p_id, p_base, p_order) = (u64_col(parts, 0)?, u64_col(parts, 1)?, u64_col(parts, 2)?);
        let mut restored: HashMap<u64, PartitionState, ahash::RandomState> =
            HashMap::with_hasher(ahash::RandomState::new());
        for i in 0..parts.num_rows() {
            let mut s = PartitionState {
                history: History::starting_at(p_base.value(i)),
                ..PartitionState::default()
            };
            s.run.next_order = p_order.value(i);
            restored.insert(p_id.value(i), s);
        }

        let rows = state.require("rows")?.clone();
        let meta_rows = state.require("row_meta")?;
        if rows.num_rows() != meta_rows.num_rows() {
            return Err(corrupt("rows and row_meta differ in length"));
        }
        let (r_pid, r_seq, r_ts) = (
            u64_col(meta_rows, 0)?,
            u64_col(meta_rows, 1)?,
            i64_col(meta_rows, 2)?,
        );
        let mut first_row: HashMap<u64, usize> = HashMap::new();
        if rows.num_columns() != self.compiled.input_schema().fields().len() {
            return Err(corrupt("rows do not have the input columns"));
        }
        let key_columns: Vec<ArrayRef> = self
            .partition_by
            .iter()
            .map(|&i| state_col(&rows, i).cloned())
            .collect::<Result<_>>()?;
        let keys = self.codec.encode(&key_columns)?;
        if rows.num_rows() > 0 {
            let derived = self.compiled.derive(&rows)?;
            let chunk = self.store.insert(rows.clone(), derived);
            for i in 0..rows.num_rows() {
                let pid = r_pid.value(i);
                let s = restored
                    .get_mut(&pid)
                    .ok_or_else(|| corrupt("row of an unknown partition"))?;
                first_row.entry(pid).or_insert(i);
                let loc = RowLoc {
                    chunk,
                    row: i as u32,
                };
                let row = StoredRow {
                    loc,
                    ts: r_ts.value(i),
                };
                self.store.retain(loc);
                if r_seq.is_valid(i) {
                    if s.history.next_seq() != r_seq.value(i) {
                        return Err(corrupt("history rows out of sequence"));
                    }
                    s.history.push(row);
                } else {
                    s.pending.push(row);
                    s.pending_sorted = false;
                }
            }
            self.store.seal(chunk);
        }

        let m = state.require("matches")?;
        let (m_pid, m_state, m_start, m_start_ts, m_order) = (
            u64_col(m, 0)?,
            u32_col(m, 2)?,
            u64_col(m, 3)?,
            i64_col(m, 4)?,
            u64_col(m, 5)?,
        );
        let m_done = state_col(m, 1)?
            .as_boolean_opt()
            .ok_or_else(|| corrupt("bad completed column"))?;
        let m_counts = state_col(m, 6)?
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(|| corrupt("bad counts column"))?;
        let elements = self.compiled.variables().len();
        for i in 0..m.num_rows() {
            let counts: Vec<u32> = m_counts
                .value(i)
                .as_primitive_opt::<UInt32Type>()
                .ok_or_else(|| corrupt("bad counts values"))?
                .values()
                .to_vec();
            if counts.len() != elements {
                return Err(corrupt("match with a wrong number of variables"));
            }
            let pm = PartialMatch {
                state: m_state.value(i),
                start_seq: m_start.value(i),
                start_ts: m_start_ts.value(i),
                counts: Counts::from_slice(&counts),
                order: m_order.value(i),
                released_at: 0,
            };
            let s = restored
                .get_mut(&m_pid.value(i))
                .ok_or_else(|| corrupt("match of an unknown partition"))?;
            if m_done.value(i) {
                s.run.completed.push(pm);
            } else {
                s.run.partials.push(pm);
            }
        }

        self.partitions = (0..slots).map(|_| None).collect();
        let mut is_free = vec![false; slots];
        for &f in &self.free {
            is_free[f as usize] = true;
        }
        for (pid, s) in restored {
            let first = *first_row
                .get(&pid)
                .ok_or_else(|| corrupt("partition without rows"))?;
            let key: Box<[u8]> = keys.key(first).into();
            let mut part = Partition {
                key: key.clone(),
                state: s,
                timer: None,
            };
            if let Some(t) = self.compiled.wakeup(&part.state) {
                Self::schedule(&mut self.timers, pid, &mut part, t);
            }
            let slot = self
                .partitions
                .get_mut(pid as usize)
                .ok_or_else(|| corrupt("partition number out of range"))?;
            if slot.is_some() || is_free.get(pid as usize).copied().unwrap_or(true) {
                return Err(corrupt("partition number used twice"));
            }
            *slot = Some(part);
            self.ids.insert(key, pid);
            self.live += 1;
        }
        Ok(())
    }
}

/// Column `i` of a state table.
fn state_col(b: &RecordBatch, i: usize) -> Result<&ArrayRef> {
    b.columns()
        .get(i)
        .ok_or_else(|| WeirError::State(format!("MATCH_RECOGNIZE state: column {i} is missing")))
}

fn u64_col(b: &RecordBatch, i: usize) -> Result<&UInt64Array> {
    state_col(b, i)?
        .as_primitive_opt()
        .ok_or_else(|| WeirError::State(format!("MATCH_RECOGNIZE state: column {i} is not UInt64")))
}

fn u32_col(b: &RecordBatch, i: usize) -> Result<&UInt32Array> {
    state_col(b, i)?
        .as_primitive_opt()
        .ok_or_else(|| WeirError::State(format!("MATCH_RECOGNIZE state: column {i} is not UInt32")))
}

fn i64_col(b: &RecordBatch, i: usize) -> Result<&Int64Array> {
    state_col(b, i)?
        .as_primitive_opt()
        .ok_or_else(|| WeirError::State(format!("MATCH_RECOGNIZE state: column {i} is not Int64")))
}

#[cfg(test)]
mod flink_quantifiers;
#[cfg(test)]
mod tests;
