//! [`SessionWindowAggregate`]: `SESSION` window aggregation (Flink's
//! session window TVF aggregation), final results only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, Int64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use weir_engine::message::EventTime;
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};

use crate::groups::{
    emit_fired, groups_table, restore_groups, Aggregates, BatchKeys, GroupTable, KeyCodec,
    WindowGroups,
};
use crate::util::{evaluate, event_times};
use crate::window::{
    int64_column, meta_table, read_meta, uint64_column, TimeWindow, WindowAggregateConfig,
    WindowSpec,
};

/// One open session of a partition key.
struct Session {
    /// Exclusive end: the latest row time plus the gap.
    end: i64,
    /// The session's groups (full keys) and accumulators.
    groups: WindowGroups,
}

/// The open sessions of one partition key.
struct Partition {
    /// The partition key (row format).
    key: Box<[u8]>,
    /// Sessions by start; disjoint and not touching.
    sessions: BTreeMap<i64, Session>,
}

/// Reused per-partition buffers of `process_batch`.
#[derive(Default)]
struct Scratch {
    accepted: Vec<u32>,
    clusters: Vec<(i64, i64)>,
    row_cluster: Vec<u32>,
    session_of: Vec<i64>,
}

/// Starts of the intervals of `map` (start -> end) that intersect
/// `[start, end]` (inclusive: touching intervals merge, as in Flink),
/// latest first.
fn intersecting<V>(
    map: &BTreeMap<i64, V>,
    start: i64,
    end: i64,
    end_of: impl Fn(&V) -> i64,
) -> Vec<i64> {
    map.range(..=end)
        .rev()
        .take_while(|(_, v)| end_of(v) >= start)
        .map(|(s, _)| *s)
        .collect()
}

/// Window aggregation over `SESSION` windows.
///
/// Sessions are formed per partition key (the `PARTITION BY` columns,
/// [`WindowAggregateConfig::session_keys`]); within a session, rows are
/// aggregated per full grouping key with DataFusion accumulators. A row at
/// `ts` opens `[ts, ts + gap)`; sessions that intersect (overlap or touch)
/// are merged, including when an out-of-order row bridges two sessions
/// (their accumulators are merged). A session fires once, when the watermark
/// reaches `end - 1`, emitting `window_start` = its first row time and
/// `window_end` = its last row time plus the gap. A row is late (dropped and
/// counted) only if, after merging with the open sessions, its session has
/// already fired: a row merged into a still-open session is not late.
/// Within a batch, rows are judged in arrival order, like Flink.
pub struct SessionWindowAggregate {
    /// The configuration.
    config: WindowAggregateConfig,
    /// The session gap in milliseconds.
    gap: i64,
    /// The aggregates, prepared.
    aggs: Aggregates,
    /// Full grouping-key encoding.
    codec: KeyCodec,
    /// Partition-key encoding (unused when the partition key is the full key).
    pcodec: KeyCodec,
    /// True when the partition key is the full key.
    same_keys: bool,
    /// Partition key -> partition number (numbers grow in order of first appearance).
    partition_ids: HashMap<Box<[u8]>, u64, ahash::RandomState>,
    /// Partitions with open sessions, by number.
    partitions: HashMap<u64, Partition, ahash::RandomState>,
    /// Firing order of the open sessions: `(end, partition, start)`. Lazy:
    /// every open session has an entry with an end no later than its own
    /// (an extended session is re-queued when its old entry comes up), and
    /// entries of sessions that were merged away are skipped.
    timers: BTreeSet<(i64, u64, i64)>,
    /// Next partition number.
    next_seq: u64,
    /// The highest watermark seen (survives restore).
    watermark: Option<EventTime>,
    /// Whether dropping rows with a NULL time was logged already.
    warned_null_time: bool,
    /// Scratch buffers.
    scratch: Scratch,
    hashes: Vec<u64>,
    phashes: Vec<u64>,
    group_indices: Vec<usize>,
}

impl fmt::Debug for SessionWindowAggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionWindowAggregate")
            .field("gap", &self.gap)
            .field("output", &self.config.output)
            .field("open_sessions", &self.timers.len())
            .field("watermark", &self.watermark)
            .finish()
    }
}

impl SessionWindowAggregate {
    /// A session window aggregation; fails unless the window is `SESSION`,
    /// or for invalid output columns, session keys or aggregates.
    pub fn try_new(config: WindowAggregateConfig) -> Result<Self> {
        config.validate()?;
        let WindowSpec::Session { gap_ms } = config.window else {
            return Err(WeirError::Plan(format!(
                "SessionWindowAggregate needs a SESSION window, got {:?}",
                config.window
            )));
        };
        if let Some(&bad) = config
            .session_keys
            .iter()
            .find(|&&k| k >= config.keys.len())
        {
            return Err(WeirError::Plan(format!(
                "SESSION partition key {bad} is not one of the {} grouping keys",
                config.keys.len()
            )));
        }
        let same_keys = config.session_keys.iter().copied().eq(0..config.keys.len());
        let aggs = Aggregates::try_new(&config.aggregates)?;
        Ok(Self {
            gap: gap_ms,
            aggs,
            codec: KeyCodec::new(config.keys.len()),
            pcodec: KeyCodec::new(config.session_keys.len()),
            same_keys,
            partition_ids: HashMap::with_hasher(ahash::RandomState::new()),
            partitions: HashMap::with_hasher(ahash::RandomState::new()),
            timers: BTreeSet::new(),
            next_seq: 0,
            watermark: None,
            warned_null_time: false,
            scratch: Scratch::default(),
            hashes: Vec::new(),
            phashes: Vec::new(),
            group_indices: Vec::new(),
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &WindowAggregateConfig {
        &self.config
    }

    /// Number of open sessions.
    pub fn open_sessions(&self) -> usize {
        self.partitions.values().map(|p| p.sessions.len()).sum()
    }

    /// The partition key columns, given the full key columns.
    fn partition_columns(&self, keys: &[ArrayRef]) -> Vec<ArrayRef> {
        self.config
            .session_keys
            .iter()
            .filter_map(|&i| keys.get(i).cloned())
            .collect()
    }

    /// The partition number of `key`, creating the partition if new.
    fn partition_for(&mut self, key: &[u8]) -> u64 {
        if let Some(&seq) = self.partition_ids.get(key) {
            if self.partitions.contains_key(&seq) {
                return seq;
            }
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.partition_ids.insert(key.into(), seq);
        self.partitions.insert(
            seq,
            Partition {
                key: key.into(),
                sessions: BTreeMap::new(),
            },
        );
        seq
    }

    /// Merges the cluster `[start, end)` of new rows into the sessions of
    /// partition `seq` (the session containing the cluster afterwards is
    /// the one starting at or before `start`).
    fn merge_cluster(&mut self, seq: u64, start: i64, end: i64) -> Result<()> {
        let part = self
            .partitions
            .get_mut(&seq)
            .ok_or_else(|| WeirError::Internal(format!("session partition {seq} missing")))?;
        let mut hits = intersecting(&part.sessions, start, end, |s| s.end);
        match hits.as_slice() {
            [] => {
                part.sessions.insert(
                    start,
                    Session {
                        end,
                        groups: WindowGroups::try_new(&self.aggs)?,
                    },
                );
                self.timers.insert((end, seq, start));
                return Ok(());
            }
            [only] if *only <= start => {
                // Extends one session to the right: its timer entry stays
                // and is re-queued lazily.
                if let Some(session) = part.sessions.get_mut(only) {
                    session.end = session.end.max(end);
                }
                return Ok(());
            }
            _ => {}
        }
        hits.reverse(); // earliest first: the earliest session is the base
        let mut removed = Vec::with_capacity(hits.len());
        for s in hits {
            if let Some(session) = part.sessions.remove(&s) {
                removed.push((s, session));
            }
        }
        let mut removed = removed.into_iter();
        let Some((base_start, mut base)) = removed.next() else {
            return Err(WeirError::Internal(
                "session merge lost its sessions".into(),
            ));
        };
        let new_start = base_start.min(start);
        let mut new_end = base.end.max(end);
        for (_, other) in removed {
            new_end = new_end.max(other.end);
            base.groups.merge_from(&self.aggs, other.groups)?;
        }
        base.end = new_end;
        part.sessions.insert(new_start, base);
        if new_start != base_start {
            self.timers.insert((new_end, seq, new_start));
        }
        Ok(())
    }

    /// Fires the sessions with `end - 1 <= watermark`.
    fn fire(&mut self, watermark: EventTime, out: &mut Collector) -> Result<()> {
        let mut fired = Vec::new();
        while let Some(&(end, seq, start)) = self.timers.first() {
            if end.saturating_sub(1) > watermark {
                break;
            }
            self.timers.pop_first();
            let Some(part) = self.partitions.get_mut(&seq) else {
                continue;
            };
            match part.sessions.get(&start) {
                None => continue, // merged away
                Some(s) if s.end > end => {
                    // Extended since this entry was queued.
                    self.timers.insert((s.end, seq, start));
                    continue;
                }
                Some(_) => {}
            }
            let Some(session) = part.sessions.remove(&start) else {
                continue;
            };
            if part.sessions.is_empty() {
                if let Some(p) = self.partitions.remove(&seq) {
                    self.partition_ids.remove(&p.key);
                }
            }
            fired.push((TimeWindow::new(start, end), session.groups));
        }
        emit_fired(&self.config, &self.aggs, &self.codec, &mut fired, out)
    }

    /// Decides, in arrival order, which of `rows` (one partition) are late:
    /// a row whose own window `[ts, ts + gap)` has fired is kept only if it
    /// intersects an open session (or a window of a row kept before it).
    fn accept_in_order(
        &self,
        seq: Option<u64>,
        rows: &[u32],
        ts: &Int64Array,
        watermark: i64,
        late: &mut u64,
        accepted: &mut Vec<u32>,
    ) {
        let gap = self.gap;
        let mut intervals: BTreeMap<i64, i64> = seq
            .and_then(|s| self.partitions.get(&s))
            .map(|p| p.sessions.iter().map(|(s, x)| (*s, x.end)).collect())
            .unwrap_or_default();
        for &r in rows {
            let t = ts.value(r as usize);
            let (mut start, mut end) = (t, t.saturating_add(gap));
            let hits = intersecting(&intervals, start, end, |e| *e);
            if hits.is_empty() && end.saturating_sub(1) <= watermark {
                *late += 1;
                continue;
            }
            for h in hits {
                if let Some(e) = intervals.remove(&h) {
                    start = start.min(h);
                    end = end.max(e);
                }
            }
            intervals.insert(start, end);
            accepted.push(r);
        }
    }
}

impl Operator for SessionWindowAggregate {
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
        let ts = event_times(&batch, self.config.time_column)?;
        let watermark = match (ctx.watermark, self.watermark) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let key_columns = self
            .config
            .keys
            .iter()
            .map(|k| evaluate(k, &batch, "grouping key"))
            .collect::<Result<Vec<_>>>()?;
        let keys = self.codec.encode(&key_columns)?;
        let mut hashes = std::mem::take(&mut self.hashes);
        let mut phashes = std::mem::take(&mut self.phashes);
        self.codec.hash_all(&keys, n, &mut hashes);
        let pkeys_owned: Option<BatchKeys> = if self.same_keys {
            None
        } else {
            let cols = self.partition_columns(&key_columns);
            let p = self.pcodec.encode(&cols)?;
            self.pcodec.hash_all(&p, n, &mut phashes);
            Some(p)
        };
        let (pkeys, phash) = match &pkeys_owned {
            Some(p) => (p, &phashes),
            None => (&keys, &hashes),
        };

        // Rows by partition key, in arrival order.
        let mut local = GroupTable::default();
        let mut pid = vec![u32::MAX; n];
        let mut nulls = 0u64;
        for (row, p) in pid.iter_mut().enumerate() {
            if ts.is_null(row) {
                nulls += 1;
                continue;
            }
            *p = local.find_or_insert(pkeys.key(row), phash[row]) as u32;
        }
        let parts = local.len();
        let mut offsets = vec![0usize; parts + 1];
        for &p in &pid {
            if p != u32::MAX {
                offsets[p as usize + 1] += 1;
            }
        }
        for i in 0..parts {
            offsets[i + 1] += offsets[i];
        }
        let mut next = offsets.clone();
        let mut order = vec![0u32; offsets[parts]];
        for (row, &p) in pid.iter().enumerate() {
            if p != u32::MAX {
                let pos = &mut next[p as usize];
                order[*pos] = row as u32;
                *pos += 1;
            }
        }

        let gap = self.gap;
        let mut late = 0u64;
        let mut scratch = std::mem::take(&mut self.scratch);
        // (partition, session start, row) of every accepted row.
        let mut entries: Vec<(u64, i64, u32)> = Vec::with_capacity(order.len());
        for p in 0..parts {
            let rows = &order[offsets[p]..offsets[p + 1]];
            let key = local.key(p);
            let existing = self
                .partition_ids
                .get(key)
                .copied()
                .filter(|s| self.partitions.contains_key(s));
            let self_late = |r: &u32| {
                watermark.is_some_and(|w| {
                    ts.value(*r as usize).saturating_add(gap).saturating_sub(1) <= w
                })
            };
            let accepted = &mut scratch.accepted;
            accepted.clear();
            match watermark {
                Some(w) if rows.iter().any(self_late) => {
                    self.accept_in_order(existing, rows, &ts, w, &mut late, accepted)
                }
                _ => accepted.extend_from_slice(rows),
            }
            if accepted.is_empty() {
                continue;
            }
            if accepted.len() > 1 {
                accepted.sort_by_key(|&r| ts.value(r as usize));
            }
            // Clusters of the batch's rows: windows that intersect.
            let clusters = &mut scratch.clusters;
            let row_cluster = &mut scratch.row_cluster;
            clusters.clear();
            row_cluster.clear();
            for &r in accepted.iter() {
                let t = ts.value(r as usize);
                match clusters.last_mut() {
                    Some(c) if t <= c.1 => c.1 = c.1.max(t.saturating_add(gap)),
                    _ => clusters.push((t, t.saturating_add(gap))),
                }
                row_cluster.push((clusters.len() - 1) as u32);
            }
            let seq = match existing {
                Some(s) => s,
                None => self.partition_for(key),
            };
            for &(start, end) in clusters.iter() {
                self.merge_cluster(seq, start, end)?;
            }
            let part = self
                .partitions
                .get(&seq)
                .ok_or_else(|| WeirError::Internal("session partition vanished".into()))?;
            scratch.session_of.clear();
            for (start, _) in clusters.iter() {
                let s = part
                    .sessions
                    .range(..=*start)
                    .next_back()
                    .map(|(s, _)| *s)
                    .ok_or_else(|| WeirError::Internal("row outside every session".into()))?;
                scratch.session_of.push(s);
            }
            let first = entries.len();
            for (&r, &c) in accepted.iter().zip(row_cluster.iter()) {
                entries.push((seq, scratch.session_of[c as usize], r));
            }
            if entries.len() - first > 1 {
                // Per session, rows in arrival order.
                entries[first..].sort_unstable_by_key(|e| (e.1, e.2));
            }
        }
        self.scratch = scratch;
        if late + nulls > 0 {
            ctx.metrics.add_late_dropped(late + nulls);
        }
        if nulls > 0 && !self.warned_null_time {
            self.warned_null_time = true;
            tracing::warn!(node = %ctx.node, rows = nulls, "dropped rows with a NULL event time");
        }

        if !entries.is_empty() {
            // Take the inputs once, in session order.
            let inputs = self.aggs.evaluate(&batch)?;
            let indices = UInt32Array::from_iter_values(entries.iter().map(|e| e.2));
            let inputs = inputs.take(&indices)?;
            let mut from = 0;
            while from < entries.len() {
                let (seq, start, _) = entries[from];
                let mut to = from + 1;
                while to < entries.len() && entries[to].0 == seq && entries[to].1 == start {
                    to += 1;
                }
                let session = self
                    .partitions
                    .get_mut(&seq)
                    .and_then(|p| p.sessions.get_mut(&start))
                    .ok_or_else(|| WeirError::Internal("session vanished".into()))?;
                session.groups.update(
                    &self.aggs,
                    &keys,
                    &hashes,
                    entries[from..to].iter().map(|e| e.2 as usize),
                    &inputs.slice(from, to - from),
                    &mut self.group_indices,
                )?;
                from = to;
            }
        }
        self.hashes = hashes;
        self.phashes = phashes;
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
        state.put("meta", meta_table(self.watermark, self.next_seq)?)?;
        let mut parts: Vec<(&u64, &mut Partition)> = self.partitions.iter_mut().collect();
        parts.sort_unstable_by_key(|(seq, _)| **seq);
        let (mut seqs, mut starts, mut ends, mut counts) = (vec![], vec![], vec![], vec![]);
        for (seq, part) in &parts {
            for (start, s) in &part.sessions {
                seqs.push(**seq);
                starts.push(*start);
                ends.push(s.end);
                counts.push(s.groups.len() as u64);
            }
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("partition", DataType::UInt64, false),
            Field::new("start", DataType::Int64, false),
            Field::new("end", DataType::Int64, false),
            Field::new("groups", DataType::UInt64, false),
        ]));
        let sessions = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(UInt64Array::from(seqs)),
                Arc::new(Int64Array::from(starts)),
                Arc::new(Int64Array::from(ends)),
                Arc::new(UInt64Array::from(counts)),
            ],
        )?;
        state.put("sessions", sessions)?;
        let groups = parts
            .into_iter()
            .flat_map(|(_, p)| p.sessions.values_mut().map(|s| &mut s.groups));
        if let Some(table) = groups_table(&self.aggs, &self.codec, groups)? {
            state.put("groups", table)?;
        }
        Ok(state)
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        if state.is_empty() {
            return Ok(());
        }
        let (watermark, next_seq) = read_meta(state.require("meta")?)?;
        let table = state.require("sessions")?;
        let seqs = uint64_column(table, "partition")?;
        let starts = int64_column(table, "start")?;
        let ends = int64_column(table, "end")?;
        let counts: Vec<usize> = uint64_column(table, "groups")?
            .values()
            .iter()
            .map(|&c| c as usize)
            .collect();
        let restored = restore_groups(&self.aggs, &mut self.codec, state.get("groups"), &counts)?;
        self.partitions.clear();
        self.partition_ids.clear();
        self.timers.clear();
        for (i, groups) in restored.into_iter().enumerate() {
            let (seq, start, end) = (seqs.value(i), starts.value(i), ends.value(i));
            if !self.partitions.contains_key(&seq) {
                let first = groups
                    .keys()
                    .next()
                    .ok_or_else(|| WeirError::State("restored session without groups".into()))?;
                let key: Box<[u8]> = if self.same_keys {
                    first.into()
                } else {
                    let full = self.codec.decode(std::iter::once(first))?;
                    let cols = self.partition_columns(&full);
                    self.pcodec.encode(&cols)?.key(0).into()
                };
                self.partition_ids.insert(key.clone(), seq);
                self.partitions.insert(
                    seq,
                    Partition {
                        key,
                        sessions: BTreeMap::new(),
                    },
                );
            }
            if let Some(p) = self.partitions.get_mut(&seq) {
                p.sessions.insert(start, Session { end, groups });
            }
            self.timers.insert((end, seq, start));
        }
        self.next_seq = next_seq.max(self.partitions.keys().max().map_or(0, |s| s + 1));
        self.watermark = watermark;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::agg::{aggregate, column, config, input};
    use crate::test_util::{self, rows_of, Event, Harness, Step};
    use crate::window::OutputColumn;
    use datafusion_functions_aggregate::count::count_udaf;
    use datafusion_functions_aggregate::sum::sum_udaf;

    const GAP: i64 = 10_000;

    fn session() -> WindowSpec {
        WindowSpec::Session { gap_ms: GAP }
    }

    /// window_start, window_end, k, COUNT(v), SUM(v), COUNT(DISTINCT v) per k.
    fn op() -> SessionWindowAggregate {
        SessionWindowAggregate::try_new(config(
            session(),
            true,
            vec![
                (aggregate(count_udaf(), "v", "c", false), None),
                (aggregate(sum_udaf(), "v", "s", false), None),
                (aggregate(count_udaf(), "k", "dk", true), None),
            ],
        ))
        .expect("operator")
    }

    #[test]
    fn sessions_per_key_fire_in_order_of_end() {
        let mut h = Harness::new(op());
        h.batch(input(&[
            (1_000, "a", 1),
            (5_000, "a", 2),
            (2_000, "b", 3),
            (30_000, "a", 4),
        ]))
        .expect("batch");
        h.watermark(11_998).expect("wm");
        assert_eq!(h.take_events(), vec![Event::Watermark(11_998)]);
        h.watermark(14_999).expect("wm");
        assert_eq!(
            h.take_events(),
            vec![
                Event::Rows(vec![
                    "2000,12000,b,1,3,1".to_string(),
                    "1000,15000,a,2,3,1".to_string()
                ]),
                Event::Watermark(14_999)
            ]
        );
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()), vec!["30000,40000,a,1,4,1"]);
        assert_eq!(h.op.open_sessions(), 0);
    }

    #[test]
    fn touching_windows_merge() {
        let mut h = Harness::new(op());
        h.batch(input(&[(0, "a", 1), (10_000, "a", 2), (20_001, "a", 4)]))
            .expect("batch");
        h.end().expect("end");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["0,20000,a,2,3,1", "20001,30001,a,1,4,1"]
        );
    }

    #[test]
    fn out_of_order_row_bridges_two_sessions_and_merges_accumulators() {
        let mut h = Harness::new(op());
        h.batch(input(&[(1_000, "a", 1), (20_000, "a", 2), (3_000, "b", 1)]))
            .expect("batch");
        assert_eq!(h.op.open_sessions(), 3);
        h.watermark(5_000).expect("wm");
        assert_eq!(h.take_events(), vec![Event::Watermark(5_000)]);
        // [10500, 20500) touches [1000, 11000) and [20000, 30000).
        h.batch(input(&[(10_500, "a", 4)])).expect("batch");
        assert_eq!(h.op.open_sessions(), 2);
        h.watermark(12_999).expect("wm");
        assert_eq!(rows_of(&h.take_batches()), vec!["3000,13000,b,1,1,1"]);
        h.watermark(29_999).expect("wm");
        assert_eq!(rows_of(&h.take_batches()), vec!["1000,30000,a,3,7,1"]);
        assert_eq!(h.late_dropped(), 0);
    }

    #[test]
    fn lateness_is_judged_after_merging_in_arrival_order() {
        let mut h = Harness::new(op());
        h.batch(input(&[(10_000, "a", 1)])).expect("batch");
        h.watermark(12_000).expect("wm");
        // a@2000: own window [2000, 12000) has fired, but it touches the open
        // session [10000, 20000): kept. Then a@-5000 touches the grown
        // session: kept. b@1000 has no open session: late.
        h.batch(input(&[(2_000, "a", 2), (-5_000, "a", 3), (1_000, "b", 9)]))
            .expect("batch");
        assert_eq!(h.late_dropped(), 1);
        // a@-20000 arrives before a@-12000, which it would have touched: late.
        h.batch(input(&[(-20_000, "a", 5), (-12_000, "a", 6)]))
            .expect("batch");
        assert_eq!(h.late_dropped(), 2);
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()), vec!["-12000,20000,a,4,12,1"]);
    }

    #[test]
    fn partition_key_differs_from_group_key() {
        // Sessions per k; COUNT per (k, v).
        let ts =
            arrow::datatypes::DataType::Timestamp(arrow::datatypes::TimeUnit::Millisecond, None);
        let count = aggregate(count_udaf(), "v", "c", false);
        let schema = Arc::new(Schema::new(vec![
            Field::new("window_start", ts.clone(), false),
            Field::new("window_end", ts, false),
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
            count.field().as_ref().clone(),
        ]));
        let cfg = WindowAggregateConfig {
            window: session(),
            time_column: 0,
            keys: vec![column("k"), column("v")],
            session_keys: vec![0],
            aggregates: vec![(count, None)],
            output: vec![
                OutputColumn::WindowStart,
                OutputColumn::WindowEnd,
                OutputColumn::Key(0),
                OutputColumn::Key(1),
                OutputColumn::Aggregate(0),
            ],
            output_schema: schema,
        };
        let make = || SessionWindowAggregate::try_new(cfg.clone()).expect("operator");
        let mut h = Harness::new(make());
        h.batch(input(&[
            (0, "a", 1),
            (5_000, "a", 2),
            (9_000, "a", 1),
            (1_000, "b", 1),
            (40_000, "a", 2),
        ]))
        .expect("batch");
        // Snapshot with a partition key that is not the full key.
        let bytes =
            h.op.snapshot()
                .expect("snapshot")
                .to_bytes()
                .expect("bytes");
        let mut h = Harness::new(make());
        h.op.restore(OperatorState::from_bytes(&bytes).expect("decode"))
            .expect("restore");
        h.batch(input(&[(12_000, "a", 3)])).expect("batch");
        h.end().expect("end");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec![
                "1000,11000,b,1,1",
                "0,22000,a,1,2",
                "0,22000,a,2,1",
                "0,22000,a,3,1",
                "40000,50000,a,2,1",
            ]
        );
    }

    #[test]
    fn without_partition_keys_sessions_are_global() {
        let op = SessionWindowAggregate::try_new(config(
            session(),
            false,
            vec![(aggregate(count_udaf(), "v", "c", false), None)],
        ))
        .expect("operator");
        let mut h = Harness::new(op);
        h.batch(input(&[(0, "a", 1), (8_000, "b", 1), (30_000, "c", 1)]))
            .expect("batch");
        h.end().expect("end");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["0,18000,2", "30000,40000,1"]
        );
    }

    #[test]
    fn non_session_window_is_rejected() {
        let t = WindowSpec::Tumble {
            size_ms: 10,
            offset_ms: 0,
        };
        assert!(SessionWindowAggregate::try_new(config(t, true, vec![])).is_err());
        let mut bad = config(session(), true, vec![]);
        bad.session_keys = vec![3];
        assert!(SessionWindowAggregate::try_new(bad).is_err());
    }

    #[test]
    fn snapshot_round_trip_gives_identical_output() {
        let steps: Vec<Step> = vec![
            Ok(input(&[(1_000, "a", 1), (2_000, "b", 2), (30_000, "a", 3)])),
            Ok(input(&[(6_000, "a", 4), (25_000, "c", 2), (2_500, "b", 2)])),
            Err(5_000),
            Ok(input(&[
                (18_000, "a", 1),
                (14_000, "b", 5),
                (60_000, "d", 1),
            ])),
            Err(23_999),
            Ok(input(&[
                (21_000, "a", 9),
                (1_000, "c", 1),
                (33_000, "c", 3),
            ])),
            Err(40_000),
            Ok(input(&[(45_000, "a", 1), (52_000, "d", 7)])),
        ];
        let run = |cut: Option<usize>| -> (Vec<Event>, u64) {
            let (events, h) = test_util::replay(op, &steps, cut);
            (events, h.late_dropped())
        };
        let expected = run(None);
        assert!(expected.0.len() > 4, "{expected:?}");
        assert!(expected.1 > 0, "the scenario has late rows");
        for cut in 1..steps.len() {
            assert_eq!(run(Some(cut)), expected, "cut at {cut}");
        }
    }
}
