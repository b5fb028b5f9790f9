//! [`WindowAggregate`]: `TUMBLE`, `HOP` and `CUMULATE` window aggregation
//! (Flink's window TVF aggregation), final results only.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, Int64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema};
use weir_engine::message::EventTime;
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};

use crate::groups::{emit_fired, groups_table, restore_groups, Aggregates, KeyCodec, WindowGroups};
use crate::util::{evaluate, event_times};
use crate::window::{
    int64_column, meta_table, read_meta, uint64_column, window_start, TimeWindow,
    WindowAggregateConfig, WindowSpec,
};

/// The distinct windows of one batch, numbered in order of appearance.
#[derive(Default)]
struct BatchWindows {
    list: Vec<TimeWindow>,
    index: HashMap<TimeWindow, u32>,
}

impl BatchWindows {
    const LINEAR: usize = 8;

    fn clear(&mut self) {
        self.list.clear();
        self.index.clear();
    }

    #[inline]
    fn slot(&mut self, w: TimeWindow) -> u32 {
        if self.list.len() <= Self::LINEAR {
            if let Some(i) = self.list.iter().rposition(|x| *x == w) {
                return i as u32;
            }
            self.list.push(w);
            let i = (self.list.len() - 1) as u32;
            if self.list.len() > Self::LINEAR {
                for (j, x) in self.list.iter().enumerate() {
                    self.index.insert(*x, j as u32);
                }
            }
            return i;
        }
        let next = self.list.len() as u32;
        let i = *self.index.entry(w).or_insert(next);
        if i == next {
            self.list.push(w);
        }
        i
    }
}

/// Window aggregation over `TUMBLE`, `HOP` or `CUMULATE` windows.
///
/// Each row is assigned to its windows; per window, rows are grouped by the
/// key expressions and aggregated with DataFusion accumulators
/// (`GroupsAccumulator` where available, per-group `Accumulator`s
/// otherwise, e.g. `COUNT(DISTINCT)` on strings), with `FILTER` predicates.
/// A window fires once, when the watermark reaches `window_end - 1`,
/// emitting one row per key seen in it (windows in order of end, keys in
/// order of first appearance), then the watermark is forwarded. As in
/// Flink's slice-based window aggregation, a row whose windows have partly
/// fired (`HOP`, `CUMULATE`) is added to the ones still open; it is late,
/// dropped and counted in `late_rows_dropped` only when all of them have
/// fired (see [`WindowSpec::last_end`]). At end of input every open window
/// fires.
///
/// `HOP` windows are aggregated per slice, as in Flink: a row updates the
/// one slice of `slide` it falls in (not `size / slide` windows), and a
/// window, when it fires, merges the states of its slices; a slice is
/// dropped after its last window fired. Each slice remembers when each of
/// its keys first arrived, so the output is the same as with one state per
/// window, row for row and in order.
pub struct WindowAggregate {
    /// The configuration (window, keys, aggregates, output).
    config: WindowAggregateConfig,
    /// The aggregates, prepared.
    aggs: Aggregates,
    /// Grouping-key encoding.
    codec: KeyCodec,
    /// Open windows by `(end, start)`; for `HOP`, open slices.
    windows: BTreeMap<(i64, i64), WindowGroups>,
    /// `HOP` only: `(size, slide, offset)` of the windows made of the
    /// slices in `windows`.
    sliced: Option<(i64, i64, i64)>,
    /// Per slice (same keys as `windows`), the arrival number of the first
    /// row of each group.
    first_seen: HashMap<(i64, i64), Vec<u64>>,
    /// The arrival number of the next row (counts every row received).
    next_seq: u64,
    /// The highest watermark seen (survives restore).
    watermark: Option<EventTime>,
    /// Whether dropping rows with a NULL time was logged already.
    warned_null_time: bool,
    /// Scratch: distinct windows of the current batch.
    batch_windows: BatchWindows,
    /// Scratch: (window slot, row) assignments of the current batch.
    assignments: Vec<(u32, u32)>,
    /// Scratch: the windows of one row.
    row_windows: Vec<TimeWindow>,
    /// Scratch: key hashes of the current batch.
    hashes: Vec<u64>,
    /// Scratch: group indices.
    group_indices: Vec<usize>,
}

impl fmt::Debug for WindowAggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WindowAggregate")
            .field("window", &self.config.window)
            .field("output", &self.config.output)
            .field("open_windows", &self.windows.len())
            .field("watermark", &self.watermark)
            .finish()
    }
}

impl WindowAggregate {
    /// A window aggregation; fails for `SESSION` (see
    /// [`SessionWindowAggregate`](crate::session_window_aggregate::SessionWindowAggregate)),
    /// invalid windows or output columns, or aggregates without accumulators.
    pub fn try_new(config: WindowAggregateConfig) -> Result<Self> {
        config.validate()?;
        if config.window.is_session() {
            return Err(WeirError::Plan(
                "SESSION windows need SessionWindowAggregate".into(),
            ));
        }
        if let WindowSpec::Hop {
            size_ms, slide_ms, ..
        } = config.window
        {
            // Flink's slice-based HOP aggregation rejects this too.
            if size_ms % slide_ms != 0 {
                return Err(WeirError::Plan(format!(
                    "unsupported construct: HOP window aggregation with a size ({size_ms} ms) that is not a multiple of its slide ({slide_ms} ms)"
                )));
            }
        }
        let aggs = Aggregates::try_new(&config.aggregates)?;
        let codec = KeyCodec::new(config.keys.len());
        let sliced = match config.window {
            WindowSpec::Hop {
                size_ms,
                slide_ms,
                offset_ms,
            } => Some((size_ms, slide_ms, offset_ms)),
            _ => None,
        };
        Ok(Self {
            config,
            aggs,
            codec,
            windows: BTreeMap::new(),
            sliced,
            first_seen: HashMap::new(),
            next_seq: 0,
            watermark: None,
            warned_null_time: false,
            batch_windows: BatchWindows::default(),
            assignments: Vec::new(),
            row_windows: Vec::new(),
            hashes: Vec::new(),
            group_indices: Vec::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &WindowAggregateConfig {
        &self.config
    }

    /// Number of windows (for `HOP`, slices) holding rows that have not
    /// fired yet.
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    /// The same operator keeping one state per `HOP` window instead of one
    /// per slice (the two must give the same output; tests compare them).
    #[cfg(test)]
    fn without_slices(mut self) -> Self {
        self.sliced = None;
        self
    }

    /// Assigns the rows of a batch to windows (`self.assignments`), returns
    /// (late rows, rows with a NULL time).
    fn assign(&mut self, times: &Int64Array, watermark: Option<EventTime>) -> (u64, u64) {
        self.batch_windows.clear();
        self.assignments.clear();
        let (mut late, mut nulls) = (0u64, 0u64);
        let has_nulls = times.null_count() > 0;
        let fired = |end: i64| watermark.is_some_and(|w| end.saturating_sub(1) <= w);
        // (length, reach, offset): each row goes into the one window (or
        // slice) of `length` containing it, which is late once the window
        // ending `reach` after its start has fired.
        let single = match (self.config.window.clone(), self.sliced) {
            (_, Some((size, slide, offset))) => Some((slide, size, offset)),
            (WindowSpec::Tumble { size_ms, offset_ms }, None) => {
                Some((size_ms, size_ms, offset_ms))
            }
            _ => None,
        };
        match (self.config.window.clone(), single) {
            (_, Some((size_ms, reach, offset_ms))) => {
                let mut current: Option<(i64, u32)> = None;
                for (row, &ts) in times.values().iter().enumerate() {
                    if has_nulls && times.is_null(row) {
                        nulls += 1;
                        continue;
                    }
                    let start = window_start(ts, size_ms, offset_ms);
                    let end = start.saturating_add(size_ms);
                    if fired(start.saturating_add(reach)) {
                        late += 1;
                        continue;
                    }
                    let slot = match current {
                        Some((s, slot)) if s == start => slot,
                        _ => {
                            let slot = self.batch_windows.slot(TimeWindow::new(start, end));
                            current = Some((start, slot));
                            slot
                        }
                    };
                    self.assignments.push((slot, row as u32));
                }
            }
            (spec, None) => {
                for (row, &ts) in times.values().iter().enumerate() {
                    if has_nulls && times.is_null(row) {
                        nulls += 1;
                        continue;
                    }
                    // Like Flink's slice-based aggregation: a row is late
                    // only once its last window has fired; before that it
                    // goes into those of its windows still open.
                    if fired(spec.last_end(ts)) {
                        late += 1;
                        continue;
                    }
                    self.row_windows.clear();
                    spec.assign(ts, &mut self.row_windows);
                    for w in &self.row_windows {
                        if fired(w.end) {
                            continue;
                        }
                        let slot = self.batch_windows.slot(*w);
                        self.assignments.push((slot, row as u32));
                    }
                }
            }
        }
        (late, nulls)
    }

    /// Fires (emits and removes) the windows with `end - 1 <= watermark`;
    /// `before` is the watermark of the previous firing (windows it
    /// reached have fired already).
    fn fire(
        &mut self,
        before: Option<EventTime>,
        watermark: EventTime,
        out: &mut Collector,
    ) -> Result<()> {
        if let Some((size, slide, _)) = self.sliced {
            return self.fire_slices(size, slide, before, watermark, out);
        }
        let mut fired = Vec::new();
        while let Some(entry) = self.windows.first_entry() {
            let (end, start) = *entry.key();
            if end.saturating_sub(1) > watermark {
                break;
            }
            fired.push((TimeWindow::new(start, end), entry.remove()));
        }
        emit_fired(&self.config, &self.aggs, &self.codec, &mut fired, out)
    }

    /// [`WindowAggregate::fire`] for `HOP` windows made of slices.
    fn fire_slices(
        &mut self,
        size: i64,
        slide: i64,
        before: Option<EventTime>,
        watermark: EventTime,
        out: &mut Collector,
    ) -> Result<()> {
        let due = |end: i64| {
            let last = end.saturating_sub(1);
            last <= watermark && before.is_none_or(|b| last > b)
        };
        // The ends of the windows that fire now and hold a slice with rows.
        let mut ends = std::collections::BTreeSet::new();
        for &(slice_end, _) in self.windows.keys() {
            let mut end = slice_end;
            for _ in 0..size / slide {
                if due(end) {
                    ends.insert(end);
                }
                end = end.saturating_add(slide);
            }
        }
        let mut fired = Vec::with_capacity(ends.len());
        for end in ends {
            let start = end.saturating_sub(size);
            let mut keys: Vec<(i64, i64)> = Vec::new();
            let mut slices: Vec<(&mut WindowGroups, &[u64], bool)> = Vec::new();
            let range = (start.saturating_add(slide), i64::MIN)..=(end, i64::MAX);
            for (key, groups) in self.windows.range_mut(range) {
                let first_seen = self.first_seen.get(key).map_or(&[][..], Vec::as_slice);
                // The window ending `size` after the slice's start is its last.
                let last = key.1.saturating_add(size) == end;
                keys.push(*key);
                slices.push((groups, first_seen, last));
            }
            let merged = WindowGroups::merge_slices(&self.aggs, &mut slices)?;
            let done: Vec<bool> = slices.iter().map(|(_, _, last)| *last).collect();
            drop(slices);
            for (key, last) in keys.iter().zip(done) {
                if last {
                    self.windows.remove(key);
                    self.first_seen.remove(key);
                }
            }
            if merged.len() > 0 {
                fired.push((TimeWindow::new(start, end), merged));
            }
        }
        // Slices none of whose windows can fire any more (none here: a
        // slice is removed with its last window; kept for safety).
        self.windows
            .retain(|&(_, s), _| s.saturating_add(size).saturating_sub(1) > watermark);
        let windows = &self.windows;
        self.first_seen.retain(|k, _| windows.contains_key(k));
        emit_fired(&self.config, &self.aggs, &self.codec, &mut fired, out)
    }

    /// Records, for the groups `update` added to slice `key`, the arrival
    /// number of their first row; `rows` and `group_indices` are the rows
    /// of the update and their groups, in order.
    fn note_first_seen(
        &mut self,
        key: (i64, i64),
        groups: usize,
        rows: impl Iterator<Item = usize>,
        seq_base: u64,
    ) {
        let seen = self.first_seen.entry(key).or_default();
        let before = seen.len();
        if groups <= before {
            return;
        }
        seen.resize(groups, u64::MAX);
        for (row, &g) in rows.zip(&self.group_indices) {
            if g >= before && seen[g] == u64::MAX {
                seen[g] = seq_base + row as u64;
            }
        }
    }
}

impl Operator for WindowAggregate {
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
        let times = event_times(&batch, self.config.time_column)?;
        let seq_base = self.next_seq;
        self.next_seq += n as u64;
        let watermark = match (ctx.watermark, self.watermark) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let (late, nulls) = self.assign(&times, watermark);
        if late + nulls > 0 {
            ctx.metrics.add_late_dropped(late + nulls);
        }
        if nulls > 0 && !self.warned_null_time {
            self.warned_null_time = true;
            tracing::warn!(node = %ctx.node, rows = nulls, "dropped rows with a NULL event time");
        }
        if self.assignments.is_empty() {
            return Ok(());
        }
        let key_columns = self
            .config
            .keys
            .iter()
            .map(|k| evaluate(k, &batch, "grouping key"))
            .collect::<Result<Vec<_>>>()?;
        let keys = self.codec.encode(&key_columns)?;
        self.codec.hash_all(&keys, n, &mut self.hashes);
        let inputs = self.aggs.evaluate(&batch)?;

        let slots = self.batch_windows.list.len();
        if slots == 1 && self.assignments.len() == n {
            // The common case: the whole batch falls into one window.
            let w = self.batch_windows.list[0];
            let groups = match self.windows.entry((w.end, w.start)) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(v) => v.insert(WindowGroups::try_new(&self.aggs)?),
            };
            groups.update(
                &self.aggs,
                &keys,
                &self.hashes,
                0..n,
                &inputs,
                &mut self.group_indices,
            )?;
            if self.sliced.is_some() {
                let len = groups.len();
                self.note_first_seen((w.end, w.start), len, 0..n, seq_base);
            }
            return Ok(());
        }

        // Order the (window, row) pairs by window, stably, and take the
        // aggregate inputs once in that order.
        let mut offsets = vec![0usize; slots + 1];
        for &(s, _) in &self.assignments {
            offsets[s as usize + 1] += 1;
        }
        for i in 0..slots {
            offsets[i + 1] += offsets[i];
        }
        let mut next = offsets.clone();
        let mut order = vec![0u32; self.assignments.len()];
        for &(s, row) in &self.assignments {
            let pos = &mut next[s as usize];
            order[*pos] = row;
            *pos += 1;
        }
        let indices = UInt32Array::from(order);
        let inputs = inputs.take(&indices)?;
        let rows = indices.values();
        for s in 0..slots {
            let (from, to) = (offsets[s], offsets[s + 1]);
            let w = self.batch_windows.list[s];
            let groups = match self.windows.entry((w.end, w.start)) {
                Entry::Occupied(e) => e.into_mut(),
                Entry::Vacant(v) => v.insert(WindowGroups::try_new(&self.aggs)?),
            };
            groups.update(
                &self.aggs,
                &keys,
                &self.hashes,
                rows[from..to].iter().map(|&r| r as usize),
                &inputs.slice(from, to - from),
                &mut self.group_indices,
            )?;
            if self.sliced.is_some() {
                let len = groups.len();
                let rows = rows[from..to].iter().map(|&r| r as usize);
                self.note_first_seen((w.end, w.start), len, rows, seq_base);
            }
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        _ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        let before = self.watermark;
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
        self.fire(before, watermark, out)?;
        out.emit_watermark(watermark);
        Ok(())
    }

    fn on_end(&mut self, _ctx: &mut OperatorContext, out: &mut Collector) -> Result<()> {
        self.fire(self.watermark, EventTime::MAX, out)
    }

    fn snapshot(&mut self) -> Result<OperatorState> {
        let mut state = OperatorState::empty();
        state.put("meta", meta_table(self.watermark, self.next_seq)?)?;
        if self.sliced.is_some() {
            // Per group of every slice (in the order of `groups`), the
            // arrival number of its first row.
            let mut seqs = Vec::new();
            for (key, groups) in &self.windows {
                let seen = self.first_seen.get(key).map_or(&[][..], Vec::as_slice);
                if seen.len() != groups.len() {
                    return Err(WeirError::Internal(format!(
                        "slice {key:?} has {} groups and {} arrival numbers",
                        groups.len(),
                        seen.len()
                    )));
                }
                seqs.extend_from_slice(seen);
            }
            let schema = Arc::new(Schema::new(vec![Field::new(
                "seq",
                DataType::UInt64,
                false,
            )]));
            let table = RecordBatch::try_new(schema, vec![Arc::new(UInt64Array::from(seqs))])?;
            state.put("first_seen", table)?;
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("start", DataType::Int64, false),
            Field::new("end", DataType::Int64, false),
            Field::new("groups", DataType::UInt64, false),
        ]));
        let windows = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from_iter_values(
                    self.windows.keys().map(|k| k.1),
                )),
                Arc::new(Int64Array::from_iter_values(
                    self.windows.keys().map(|k| k.0),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    self.windows.values().map(|g| g.len() as u64),
                )),
            ],
        )?;
        state.put("windows", windows)?;
        if let Some(groups) = groups_table(&self.aggs, &self.codec, self.windows.values_mut())? {
            state.put("groups", groups)?;
        }
        Ok(state)
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        if state.is_empty() {
            return Ok(());
        }
        let (watermark, next_seq) = read_meta(state.require("meta")?)?;
        let first_seen = match (self.sliced.is_some(), state.get("first_seen")) {
            (true, Some(t)) => Some(uint64_column(t, "seq")?.values().to_vec()),
            (false, None) => None,
            (true, None) => {
                return Err(WeirError::State(
                    "HOP window state without per-slice arrival numbers (a checkpoint of a version that kept one state per window)".into(),
                ))
            }
            (false, Some(_)) => {
                return Err(WeirError::State(
                    "window state with per-slice arrival numbers, but the window is not HOP".into(),
                ))
            }
        };
        let table = state.require("windows")?;
        let starts = int64_column(table, "start")?;
        let ends = int64_column(table, "end")?;
        let counts = uint64_column(table, "groups")?;
        let counts: Vec<usize> = counts.values().iter().map(|&c| c as usize).collect();
        let restored = restore_groups(&self.aggs, &mut self.codec, state.get("groups"), &counts)?;
        if let Some(seqs) = &first_seen {
            if seqs.len() != counts.iter().sum::<usize>() {
                return Err(WeirError::State(format!(
                    "{} arrival numbers for {} groups",
                    seqs.len(),
                    counts.iter().sum::<usize>()
                )));
            }
        }
        self.windows.clear();
        self.first_seen.clear();
        let mut offset = 0;
        for (i, groups) in restored.into_iter().enumerate() {
            let key = (ends.value(i), starts.value(i));
            if let Some(seqs) = &first_seen {
                self.first_seen
                    .insert(key, seqs[offset..offset + counts[i]].to_vec());
                offset += counts[i];
            }
            self.windows.insert(key, groups);
        }
        self.watermark = watermark;
        self.next_seq = next_seq;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::agg::{aggregate, column, config, input};
    use crate::test_util::{self, rows_of, Event, Harness, Step};
    use crate::window::OutputColumn;
    use datafusion_expr::Operator as BinOp;
    use datafusion_functions_aggregate::average::avg_udaf;
    use datafusion_functions_aggregate::count::count_udaf;
    use datafusion_functions_aggregate::min_max::{max_udaf, min_udaf};
    use datafusion_functions_aggregate::sum::sum_udaf;
    use datafusion_physical_expr::expressions::{lit, BinaryExpr};

    fn tumble(size_ms: i64) -> WindowSpec {
        WindowSpec::Tumble {
            size_ms,
            offset_ms: 0,
        }
    }

    fn count_sum(window: WindowSpec) -> WindowAggregate {
        WindowAggregate::try_new(config(
            window,
            true,
            vec![
                (aggregate(count_udaf(), "v", "c", false), None),
                (aggregate(sum_udaf(), "v", "s", false), None),
            ],
        ))
        .expect("operator")
    }

    fn rows(v: &[&str]) -> Event {
        Event::Rows(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn tumble_windows_are_half_open_and_fire_once_at_end_minus_one() {
        let mut h = Harness::new(count_sum(tumble(10_000)));
        h.batch(input(&[
            (1_000, "a", 1),
            (9_999, "a", 2),
            (10_000, "a", 3),
            (5_000, "b", 4),
        ]))
        .expect("batch");
        assert!(h.take_events().is_empty());
        h.watermark(9_998).expect("wm");
        assert_eq!(h.take_events(), vec![Event::Watermark(9_998)]);
        h.watermark(9_999).expect("wm");
        assert_eq!(
            h.take_events(),
            vec![
                rows(&["0,10000,a,2,3", "0,10000,b,1,4"]),
                Event::Watermark(9_999)
            ]
        );
        h.watermark(15_000).expect("wm");
        assert_eq!(h.take_events(), vec![Event::Watermark(15_000)]);
        h.watermark(19_999).expect("wm");
        assert_eq!(
            h.take_events(),
            vec![rows(&["10000,20000,a,1,3"]), Event::Watermark(19_999)]
        );
        h.end().expect("end");
        assert!(h.take_events().is_empty());
        assert_eq!(h.late_dropped(), 0);
    }

    #[test]
    fn out_of_order_rows_within_the_delay_are_aggregated() {
        let mut h = Harness::new(count_sum(tumble(10_000)));
        h.batch(input(&[(8_000, "a", 1)])).expect("batch");
        h.watermark(3_000).expect("wm");
        h.batch(input(&[(2_000, "a", 10), (3_000, "b", 5)]))
            .expect("batch");
        h.watermark(10_000).expect("wm");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["0,10000,a,2,11", "0,10000,b,1,5"]
        );
        assert_eq!(h.late_dropped(), 0);
    }

    #[test]
    fn late_rows_are_dropped_and_counted_exactly() {
        let mut h = Harness::new(count_sum(tumble(10_000)));
        h.batch(input(&[(1_000, "a", 1)])).expect("batch");
        h.watermark(9_999).expect("wm");
        assert_eq!(rows_of(&h.take_batches()), vec!["0,10000,a,1,1"]);
        // 500 and 9_999 belong to the fired window; 10_000 does not.
        h.batch(input(&[(500, "a", 7), (10_000, "a", 2), (9_999, "b", 9)]))
            .expect("batch");
        assert_eq!(h.late_dropped(), 2);
        h.watermark(25_000).expect("wm");
        assert_eq!(rows_of(&h.take_batches()), vec!["10000,20000,a,1,2"]);
        // A window that never had rows is late too once the watermark passed it.
        h.batch(input(&[(15_000, "c", 1), (25_001, "c", 1)]))
            .expect("batch");
        assert_eq!(h.late_dropped(), 3);
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()), vec!["20000,30000,c,1,1"]);
    }

    #[test]
    fn one_batch_spanning_several_windows() {
        let mut h = Harness::new(count_sum(tumble(10)));
        h.batch(input(&[
            (25, "a", 1),
            (3, "b", 2),
            (14, "a", 3),
            (5, "a", 4),
            (27, "b", 5),
            (12, "a", 6),
        ]))
        .expect("batch");
        h.end().expect("end");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec![
                "0,10,b,1,2",
                "0,10,a,1,4",
                "10,20,a,2,9",
                "20,30,a,1,1",
                "20,30,b,1,5",
            ]
        );
    }

    #[test]
    fn hop_puts_a_row_in_every_window_containing_it() {
        let hop = WindowSpec::Hop {
            size_ms: 10_000,
            slide_ms: 5_000,
            offset_ms: 0,
        };
        let mut h = Harness::new(count_sum(hop));
        h.batch(input(&[(7_000, "a", 1), (12_000, "a", 2)]))
            .expect("batch");
        h.watermark(9_999).expect("wm");
        assert_eq!(
            h.take_events(),
            vec![rows(&["0,10000,a,1,1"]), Event::Watermark(9_999)]
        );
        h.end().expect("end");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["5000,15000,a,2,3", "10000,20000,a,1,2"]
        );
    }

    #[test]
    fn hop_late_row_goes_into_its_open_windows_and_is_dropped_after_the_last() {
        let hop = WindowSpec::Hop {
            size_ms: 10_000,
            slide_ms: 5_000,
            offset_ms: 0,
        };
        let mut h = Harness::new(count_sum(hop));
        h.batch(input(&[(6_000, "a", 1)])).expect("batch");
        h.watermark(9_999).expect("wm");
        assert_eq!(rows_of(&h.take_batches()), vec!["0,10000,a,1,1"]);
        // 8_000 is in [0, 10000) (fired) and [5000, 15000) (open): it goes
        // into [5000, 15000) only and is not late (Flink's slice assigner).
        h.batch(input(&[(8_000, "a", 100), (11_000, "a", 2)]))
            .expect("batch");
        assert_eq!(h.late_dropped(), 0);
        h.watermark(14_999).expect("wm");
        assert_eq!(rows_of(&h.take_batches()), vec!["5000,15000,a,3,103"]);
        // 9_000: [0, 10000) and [5000, 15000) have both fired: late.
        // 12_000: [5000, 15000) has fired, [10000, 20000) has not.
        h.batch(input(&[(9_000, "a", 7), (12_000, "a", 1_000)]))
            .expect("batch");
        assert_eq!(h.late_dropped(), 1);
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()), vec!["10000,20000,a,2,1002"]);
        assert_eq!(h.late_dropped(), 1);
    }

    #[test]
    fn hop_late_row_in_one_batch_with_a_new_key() {
        // The late row's only open window has no group for its key yet.
        let hop = WindowSpec::Hop {
            size_ms: 10_000,
            slide_ms: 5_000,
            offset_ms: 0,
        };
        let mut h = Harness::new(count_sum(hop));
        h.batch(input(&[(1_000, "a", 1)])).expect("batch");
        h.watermark(9_999).expect("wm");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["-5000,5000,a,1,1", "0,10000,a,1,1"]
        );
        h.batch(input(&[(9_000, "b", 4), (3_000, "c", 8)]))
            .expect("batch");
        assert_eq!(h.late_dropped(), 1);
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()), vec!["5000,15000,b,1,4"]);
    }

    #[test]
    fn cumulate_windows_fire_at_every_step() {
        let cumulate = WindowSpec::Cumulate {
            size_ms: 30_000,
            step_ms: 10_000,
            offset_ms: 0,
        };
        let mut h = Harness::new(count_sum(cumulate));
        h.batch(input(&[
            (5_000, "a", 1),
            (15_000, "a", 2),
            (25_000, "b", 3),
        ]))
        .expect("batch");
        h.watermark(9_999).expect("wm");
        assert_eq!(rows_of(&h.take_batches()), vec!["0,10000,a,1,1"]);
        h.watermark(19_999).expect("wm");
        assert_eq!(rows_of(&h.take_batches()), vec!["0,20000,a,2,3"]);
        // [0, 10000) and [0, 20000) have fired: 12_000 and 3_000 go into
        // [0, 30000) only, and are not late.
        h.batch(input(&[(12_000, "a", 50), (3_000, "b", 100)]))
            .expect("batch");
        assert_eq!(h.late_dropped(), 0);
        h.watermark(29_999).expect("wm");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["0,30000,a,3,53", "0,30000,b,2,103"]
        );
        // Every window of 29_999 has fired: late.
        h.batch(input(&[(29_999, "a", 1), (30_000, "a", 2)]))
            .expect("batch");
        assert_eq!(h.late_dropped(), 1);
        h.end().expect("end");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec![
                "30000,40000,a,1,2",
                "30000,50000,a,1,2",
                "30000,60000,a,1,2"
            ]
        );
    }

    #[test]
    fn on_end_flushes_every_window_in_order() {
        let mut h = Harness::new(count_sum(tumble(1_000)));
        h.batch(input(&[(2_500, "x", 1), (500, "y", 2), (1_500, "x", 3)]))
            .expect("batch");
        h.watermark(999).expect("wm");
        assert_eq!(rows_of(&h.take_batches()), vec!["0,1000,y,1,2"]);
        h.end().expect("end");
        assert_eq!(
            h.take_events(),
            vec![rows(&["1000,2000,x,1,3", "2000,3000,x,1,1"])]
        );
        assert_eq!(h.op.open_windows(), 0);
    }

    #[test]
    fn count_distinct_on_strings_and_integers() {
        let op = WindowAggregate::try_new(config(
            tumble(10_000),
            false,
            vec![
                (aggregate(count_udaf(), "k", "dk", true), None),
                (aggregate(count_udaf(), "v", "dv", true), None),
                (aggregate(count_udaf(), "v", "c", false), None),
            ],
        ))
        .expect("operator");
        assert!(
            !op.aggs.is_grouped(0),
            "COUNT(DISTINCT varchar) uses Accumulator"
        );
        let mut h = Harness::new(op);
        h.batch(input(&[(1, "a", 1), (2, "b", 1), (3, "a", 2)]))
            .expect("batch");
        h.batch(input(&[(4, "c", 2), (5, "a", 3), (10_001, "z", 9)]))
            .expect("batch");
        h.end().expect("end");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["0,10000,3,3,5", "10000,20000,1,1,1"]
        );
    }

    #[test]
    fn filter_clauses_min_max_avg() {
        let gt2 = Arc::new(BinaryExpr::new(column("v"), BinOp::Gt, lit(2i64)));
        let op = WindowAggregate::try_new(config(
            tumble(10_000),
            true,
            vec![
                (aggregate(count_udaf(), "v", "c", false), Some(gt2.clone())),
                (aggregate(sum_udaf(), "v", "s", false), Some(gt2.clone())),
                (aggregate(count_udaf(), "k", "dk", true), Some(gt2)),
                (aggregate(min_udaf(), "v", "mn", false), None),
                (aggregate(max_udaf(), "v", "mx", false), None),
                (aggregate(avg_udaf(), "v", "av", false), None),
            ],
        ))
        .expect("operator");
        let mut h = Harness::new(op);
        h.batch(input(&[(1, "a", 1), (2, "a", 4), (3, "b", 2), (4, "a", 5)]))
            .expect("batch");
        h.end().expect("end");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec![
                "0,10000,a,2,9,1,1,5,3.3333333333333335",
                "0,10000,b,0,null,0,2,2,2.0"
            ]
        );
    }

    #[test]
    fn null_keys_form_their_own_group() {
        let mut h = Harness::new(count_sum(tumble(10)));
        let b = input(&[(1, "a", 1), (2, "a", 2)]);
        let k: arrow::array::ArrayRef =
            Arc::new(arrow::array::StringArray::from(vec![None, Some("a")]));
        let b = RecordBatch::try_new(
            b.schema(),
            vec![b.column(0).clone(), k, b.column(2).clone()],
        )
        .expect("batch");
        h.batch(b).expect("batch");
        h.end().expect("end");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["0,10,null,1,1", "0,10,a,1,2"]
        );
    }

    #[test]
    fn null_times_are_dropped_and_window_time_is_end_minus_one() {
        let mut cfg = config(
            tumble(10),
            false,
            vec![(aggregate(count_udaf(), "v", "c", false), None)],
        );
        cfg.output = vec![OutputColumn::WindowTime, OutputColumn::Aggregate(0)];
        let fields = cfg.output_schema.fields();
        cfg.output_schema = Arc::new(Schema::new(vec![
            Field::new("window_time", fields[0].data_type().clone(), false),
            fields[2].as_ref().clone(),
        ]));
        let mut h = Harness::new(WindowAggregate::try_new(cfg).expect("operator"));
        let b = input(&[(1, "a", 1), (2, "a", 2), (3, "b", 3)]);
        let ts: arrow::array::ArrayRef =
            Arc::new(arrow::array::TimestampMillisecondArray::from(vec![
                Some(1),
                None,
                Some(3),
            ]));
        let b = RecordBatch::try_new(
            b.schema(),
            vec![ts, b.column(1).clone(), b.column(2).clone()],
        )
        .expect("batch");
        h.batch(b).expect("batch");
        assert_eq!(h.late_dropped(), 1);
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()), vec!["9,2"]);
    }

    #[test]
    fn hop_size_not_a_multiple_of_slide_is_rejected() {
        let hop = WindowSpec::Hop {
            size_ms: 10_000,
            slide_ms: 4_000,
            offset_ms: 0,
        };
        let err = WindowAggregate::try_new(config(
            hop,
            true,
            vec![(aggregate(count_udaf(), "v", "c", false), None)],
        ))
        .expect_err("rejected");
        assert!(matches!(err, WeirError::Plan(_)), "{err}");
        assert!(
            err.to_string().contains("not a multiple of its slide"),
            "{err}"
        );
    }

    #[test]
    fn session_window_is_rejected() {
        assert!(
            WindowAggregate::try_new(config(WindowSpec::Session { gap_ms: 5 }, true, vec![]))
                .is_err()
        );
    }

    /// Runs `steps` (Some(batch) or None = watermark) with or without a
    /// snapshot/restore into a new instance after `cut` steps.
    fn replay(
        make: &dyn Fn() -> WindowAggregate,
        steps: &[Step],
        cut: Option<usize>,
    ) -> (Vec<Event>, u64) {
        let (events, h) = test_util::replay(make, steps, cut);
        (events, h.late_dropped())
    }

    /// Slices give exactly what one state per window gives: the same rows
    /// in the same order, the same late rows, also across a checkpoint.
    #[test]
    fn hop_slices_give_what_one_state_per_window_gives() {
        let gt1 = Arc::new(BinaryExpr::new(column("v"), BinOp::Gt, lit(1i64)));
        let make = |spec: WindowSpec, sliced: bool| {
            let op = WindowAggregate::try_new(config(
                spec,
                true,
                vec![
                    (aggregate(count_udaf(), "v", "c", false), None),
                    (aggregate(sum_udaf(), "v", "s", false), Some(gt1.clone())),
                    (aggregate(count_udaf(), "v", "dv", true), None),
                    (aggregate(min_udaf(), "v", "mn", false), None),
                ],
            ))
            .expect("operator");
            if sliced {
                op
            } else {
                op.without_slices()
            }
        };
        let specs = [
            (10_000, 2_000, 0),
            (10_000, 5_000, 1_500),
            (3_000, 3_000, 0),
            (9_000, 1_000, -400),
        ];
        let keys = ["a", "b", "c", "d", "e", "f", "g"];
        // xorshift: the same pseudo-random stream on every run.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for (size_ms, slide_ms, offset_ms) in specs {
            let spec = WindowSpec::Hop {
                size_ms,
                slide_ms,
                offset_ms,
            };
            // Rows around a clock that moves forward, up to 6 s behind (one
            // in eight up to 20 s); the
            // watermark trails the clock by 3 s (some rows are late).
            let mut steps: Vec<Step> = Vec::new();
            let mut clock = -5_000i64;
            for _ in 0..60 {
                let rows: Vec<(i64, &str, i64)> = (0..1 + next(12))
                    .map(|_| {
                        let behind = if next(8) == 0 { 20_000 } else { 6_000 };
                        (
                            clock - next(behind) as i64,
                            keys[next(keys.len() as u64) as usize],
                            next(5) as i64,
                        )
                    })
                    .collect();
                steps.push(Ok(input(&rows)));
                clock += next(1_500) as i64;
                if next(3) == 0 {
                    steps.push(Err(clock - 3_000));
                }
            }
            let run = |sliced: bool, cut: Option<usize>| {
                let mut h = Harness::new(make(spec.clone(), sliced));
                let mut events = Vec::new();
                for (i, step) in steps.iter().enumerate() {
                    if Some(i) == cut {
                        let bytes =
                            h.op.snapshot()
                                .expect("snapshot")
                                .to_bytes()
                                .expect("bytes");
                        let mut fresh = make(spec.clone(), sliced);
                        fresh
                            .restore(OperatorState::from_bytes(&bytes).expect("decode"))
                            .expect("restore");
                        let late = h.late_dropped();
                        let wm = h.ctx.watermark;
                        events.extend(h.take_events());
                        h = Harness::new(fresh);
                        h.ctx.metrics.add_late_dropped(late);
                        h.ctx.watermark = wm;
                    }
                    match step {
                        Ok(b) => h.batch(b.clone()).expect("batch"),
                        Err(w) => h.watermark(*w).expect("watermark"),
                    }
                }
                h.end().expect("end");
                events.extend(h.take_events());
                (events, h.late_dropped())
            };
            let (expected, late) = run(false, None);
            assert!(late > 0, "{spec:?}: no late rows");
            assert!(expected.len() > 20, "{spec:?}: {expected:?}");
            assert_eq!(run(true, None), (expected.clone(), late), "{spec:?}");
            for cut in [7, 30, 55] {
                assert_eq!(
                    run(true, Some(cut)),
                    (expected.clone(), late),
                    "{spec:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn snapshot_round_trip_gives_identical_output() {
        let gt1 = Arc::new(BinaryExpr::new(column("v"), BinOp::Gt, lit(1i64)));
        let windows = [
            tumble(10_000),
            WindowSpec::Hop {
                size_ms: 10_000,
                slide_ms: 5_000,
                offset_ms: 0,
            },
            WindowSpec::Cumulate {
                size_ms: 20_000,
                step_ms: 5_000,
                offset_ms: 0,
            },
        ];
        let steps = vec![
            Ok(input(&[(1_000, "a", 1), (6_000, "b", 2), (12_000, "a", 3)])),
            Ok(input(&[(2_000, "a", 4), (7_000, "c", 2), (13_000, "b", 1)])),
            Err(4_000),
            Ok(input(&[(3_000, "a", 1), (9_000, "b", 5), (18_000, "a", 2)])),
            Err(9_999),
            Ok(input(&[
                (9_000, "a", 1),
                (16_000, "c", 3),
                (22_000, "a", 2),
            ])),
            Err(14_999),
            Ok(input(&[(19_000, "a", 1), (31_000, "b", 8)])),
        ];
        for window in windows {
            let gt1 = gt1.clone();
            let spec = window.clone();
            let make = move || {
                WindowAggregate::try_new(config(
                    spec.clone(),
                    true,
                    vec![
                        (aggregate(count_udaf(), "v", "c", false), None),
                        (aggregate(sum_udaf(), "v", "s", false), Some(gt1.clone())),
                        (aggregate(avg_udaf(), "v", "av", false), None),
                        (aggregate(count_udaf(), "k", "dk", true), None),
                        (aggregate(count_udaf(), "v", "dv", true), None),
                        (aggregate(max_udaf(), "v", "mx", false), None),
                    ],
                ))
                .expect("operator")
            };
            let (expected, late) = replay(&make, &steps, None);
            assert!(expected.len() > 4, "{window:?}: {expected:?}");
            for cut in 1..steps.len() {
                let (got, got_late) = replay(&make, &steps, Some(cut));
                assert_eq!(got, expected, "{window:?} cut at {cut}");
                assert_eq!(got_late, late);
            }
        }
    }
}
