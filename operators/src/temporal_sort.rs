//! [`TemporalSort`]: streaming `ORDER BY rowtime [, other columns]`
//! (Flink's `RowTimeSortOperator`).

use std::fmt;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{lexsort_to_indices, take_record_batch, SortColumn, SortOptions};
use arrow::datatypes::SchemaRef;
use weir_engine::message::EventTime;
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};

use crate::ordering::{
    check_time_column, count_null_times, field, put_time_meta, read_time_meta, TimerQueue, Times,
};
use crate::row_store::{RowRef, RowStore};

/// A secondary sort key (after the time attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    /// Input column.
    pub column: usize,
    /// `DESC`.
    pub descending: bool,
    /// `NULLS FIRST` (Flink's default: first for `ASC`, last for `DESC`).
    pub nulls_first: bool,
}

impl SortKey {
    /// `column ASC` (nulls first, as in Flink).
    pub fn asc(column: usize) -> Self {
        Self {
            column,
            descending: false,
            nulls_first: true,
        }
    }

    /// `column DESC` (nulls last, as in Flink).
    pub fn desc(column: usize) -> Self {
        Self {
            column,
            descending: true,
            nulls_first: false,
        }
    }
}

/// The configuration of a [`TemporalSort`].
#[derive(Debug, Clone)]
pub struct TemporalSortConfig {
    /// The input schema (also the output schema).
    pub input_schema: SchemaRef,
    /// Input column of the time attribute, the first (ascending) sort key
    /// (`TIMESTAMP` or `BIGINT` epoch ms).
    pub time_column: usize,
    /// Further sort keys, for rows with equal times.
    pub sort_keys: Vec<SortKey>,
}

impl TemporalSortConfig {
    /// Checks column indices and the time column type.
    pub fn validate(&self) -> Result<()> {
        const WHAT: &str = "ORDER BY";
        check_time_column(&self.input_schema, self.time_column, WHAT)?;
        for k in &self.sort_keys {
            field(&self.input_schema, k.column, WHAT, "sort column")?;
        }
        Ok(())
    }
}

/// Sorts a stream by its time attribute (then by further keys) under
/// watermarks.
///
/// Flink semantics (`RowTimeSortOperator`): rows are held until the
/// watermark reaches their time, then emitted in order of time, rows of equal
/// time sorted by the further keys (stably: ties keep arrival order), before
/// the watermark is forwarded. A row is late — dropped and counted in the
/// `late_rows_dropped` metric — when its time is at or before the time of
/// the last rows emitted; Flink compares with that time, not with the
/// watermark, so a row behind the watermark but after everything emitted is
/// still sorted in and emitted with the next watermark. Rows with a NULL time
/// are dropped and counted. At end of input everything held is emitted,
/// sorted.
pub struct TemporalSort {
    config: TemporalSortConfig,
    store: RowStore,
    /// Held rows by (time, arrival).
    queue: TimerQueue<RowRef>,
    /// Time of the last rows emitted (Flink's `lastTriggeringTs`).
    last_emitted: Option<EventTime>,
    next_seq: u64,
    warned_null_time: bool,
}

impl fmt::Debug for TemporalSort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemporalSort")
            .field("sort_keys", &self.config.sort_keys)
            .field("held_rows", &self.store.len())
            .field("last_emitted", &self.last_emitted)
            .finish()
    }
}

impl TemporalSort {
    /// A temporal sort; fails for invalid columns.
    pub fn try_new(config: TemporalSortConfig) -> Result<Self> {
        config.validate()?;
        Ok(Self {
            store: RowStore::new(config.input_schema.clone()),
            queue: TimerQueue::new(),
            last_emitted: None,
            next_seq: 0,
            warned_null_time: false,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TemporalSortConfig {
        &self.config
    }

    /// The output schema (the input schema).
    pub fn output_schema(&self) -> SchemaRef {
        self.config.input_schema.clone()
    }

    /// Number of rows held.
    pub fn held_rows(&self) -> usize {
        self.store.len()
    }

    /// Holds the rows of `batch` that are not late; returns (late, null time).
    fn hold(&mut self, batch: &RecordBatch) -> Result<(u64, u64)> {
        let times = Times::read(batch, self.config.time_column)?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        let mut row_times = Vec::with_capacity(batch.num_rows());
        let (mut late, mut nulls) = (0u64, 0u64);
        for row in 0..batch.num_rows() {
            match times.get(row) {
                None => nulls += 1,
                Some(ts) if self.last_emitted.is_some_and(|l| ts <= l) => late += 1,
                Some(ts) => {
                    rows.push(row as u32);
                    row_times.push(ts);
                }
            }
        }
        let refs = self.store.insert(batch, &rows)?;
        for (r, ts) in refs.into_iter().zip(row_times) {
            self.queue.push(ts, self.next_seq, r);
            self.next_seq += 1;
        }
        Ok((late, nulls))
    }

    /// Emits the held rows with time `<= limit`, sorted.
    fn fire(&mut self, limit: EventTime, out: &mut Collector) -> Result<()> {
        let mut refs = Vec::new();
        let mut last = None;
        while let Some((ts, _, r)) = self.queue.pop_until(limit) {
            refs.push(r);
            last = Some(ts);
        }
        let Some(last) = last else {
            return Ok(());
        };
        let batch = self.store.gather_stored(refs.iter().copied())?;
        for r in refs {
            self.store.release(r)?;
        }
        self.last_emitted = Some(last);
        out.collect(self.sort_ties(batch)?);
        Ok(())
    }

    /// Sorts rows already in time order by (time, further keys), stably.
    fn sort_ties(&self, batch: RecordBatch) -> Result<RecordBatch> {
        if self.config.sort_keys.is_empty() || batch.num_rows() < 2 {
            return Ok(batch);
        }
        let times = Times::read(&batch, self.config.time_column)?;
        let mut columns = vec![SortColumn {
            values: Arc::new(times.values) as ArrayRef,
            options: None,
        }];
        for k in &self.config.sort_keys {
            columns.push(SortColumn {
                values: batch.column(k.column).clone(),
                options: Some(SortOptions {
                    descending: k.descending,
                    nulls_first: k.nulls_first,
                }),
            });
        }
        columns.push(SortColumn {
            values: Arc::new(UInt32Array::from_iter_values(0..batch.num_rows() as u32)),
            options: None,
        });
        let indices = lexsort_to_indices(&columns, None)?;
        Ok(take_record_batch(&batch, &indices)?)
    }
}

impl Operator for TemporalSort {
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        _out: &mut Collector,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let (late, nulls) = self.hold(&batch)?;
        if late > 0 {
            ctx.metrics.add_late_dropped(late);
        }
        count_null_times(ctx, nulls, &mut self.warned_null_time);
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        _ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        self.fire(watermark, out)?;
        out.emit_watermark(watermark);
        Ok(())
    }

    fn on_end(&mut self, _ctx: &mut OperatorContext, out: &mut Collector) -> Result<()> {
        self.fire(EventTime::MAX, out)
    }

    fn snapshot(&mut self) -> Result<OperatorState> {
        let mut state = OperatorState::empty();
        put_time_meta(&mut state, &[("last_emitted", self.last_emitted)])?;
        let mut held: Vec<(i64, u64, RowRef)> = self.queue.entries().collect();
        held.sort_by_key(|e| (e.0, e.1));
        state.put(
            "held",
            self.store.gather_stored(held.into_iter().map(|e| e.2))?,
        )?;
        Ok(state)
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        if state.is_empty() {
            return Ok(());
        }
        let [last_emitted] = read_time_meta(&state, ["last_emitted"])?;
        let held = state.require("held")?.clone();
        let held = held
            .with_schema(self.config.input_schema.clone())
            .map_err(|e| WeirError::State(format!("state table 'held': {e}")))?;
        self.last_emitted = None;
        self.hold(&held)?;
        self.last_emitted = last_emitted;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::agg::{input, input_schema};
    use crate::test_util::{self, rows_of, Event, Harness, Step};

    fn op(sort_keys: Vec<SortKey>) -> Harness<TemporalSort> {
        Harness::new(
            TemporalSort::try_new(TemporalSortConfig {
                input_schema: input_schema(),
                time_column: 0,
                sort_keys,
            })
            .expect("operator"),
        )
    }

    fn rows(v: &[&str]) -> Event {
        Event::Rows(v.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn emits_rows_up_to_the_watermark_in_time_order() {
        let mut h = op(vec![]);
        h.batch(input(&[
            (30, "a", 1),
            (10, "b", 2),
            (20, "c", 3),
            (10, "d", 4),
        ]))
        .expect("batch");
        h.batch(input(&[(15, "e", 5), (40, "f", 6)]))
            .expect("batch");
        assert!(h.take_events().is_empty());
        h.watermark(20).expect("wm");
        assert_eq!(
            h.take_events(),
            vec![
                rows(&["10,b,2", "10,d,4", "15,e,5", "20,c,3"]),
                Event::Watermark(20)
            ]
        );
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()), vec!["30,a,1", "40,f,6"]);
        assert_eq!(h.op.held_rows(), 0);
    }

    #[test]
    fn rows_of_equal_time_are_sorted_by_the_further_keys_stably() {
        let mut h = op(vec![SortKey::desc(2)]);
        h.batch(input(&[
            (10, "a", 1),
            (10, "b", 3),
            (5, "c", 0),
            (10, "c", 3),
            (10, "d", 2),
        ]))
        .expect("batch");
        h.watermark(10).expect("wm");
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["5,c,0", "10,b,3", "10,c,3", "10,d,2", "10,a,1"]
        );
        let mut h = op(vec![SortKey::asc(1), SortKey::asc(2)]);
        h.batch(input(&[(1, "b", 2), (1, "a", 9), (1, "b", 1)]))
            .expect("batch");
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()), vec!["1,a,9", "1,b,1", "1,b,2"]);
    }

    #[test]
    fn late_means_at_or_before_the_last_emitted_time() {
        let mut h = op(vec![]);
        h.batch(input(&[(10, "a", 1), (20, "b", 2)]))
            .expect("batch");
        h.watermark(15).expect("wm");
        assert_eq!(rows_of(&h.take_batches()), vec!["10,a,1"]);
        // 10 is at the last emitted time: late. 12 is behind the watermark
        // but after what was emitted: sorted in, emitted at the next watermark.
        h.batch(input(&[(10, "c", 3), (12, "d", 4), (9, "e", 5)]))
            .expect("batch");
        assert_eq!(h.late_dropped(), 2);
        h.watermark(16).expect("wm");
        assert_eq!(
            h.take_events(),
            vec![rows(&["12,d,4"]), Event::Watermark(16)]
        );
        h.batch(input(&[(11, "f", 6)])).expect("batch");
        assert_eq!(h.late_dropped(), 3);
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()), vec!["20,b,2"]);
    }

    #[test]
    fn null_times_are_dropped_and_counted() {
        let mut h = op(vec![]);
        let b = input(&[(1, "a", 1), (2, "b", 2)]);
        let ts: ArrayRef = Arc::new(arrow::array::TimestampMillisecondArray::from(vec![
            None,
            Some(2),
        ]));
        let b = RecordBatch::try_new(
            b.schema(),
            vec![ts, b.column(1).clone(), b.column(2).clone()],
        )
        .expect("batch");
        h.batch(b).expect("batch");
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()), vec!["2,b,2"]);
        assert_eq!(h.late_dropped(), 1);
    }

    #[test]
    fn invalid_columns_are_plan_errors() {
        let bad_time = TemporalSortConfig {
            input_schema: input_schema(),
            time_column: 1,
            sort_keys: vec![],
        };
        assert!(TemporalSort::try_new(bad_time).is_err());
        let bad_key = TemporalSortConfig {
            input_schema: input_schema(),
            time_column: 0,
            sort_keys: vec![SortKey::asc(3)],
        };
        assert!(TemporalSort::try_new(bad_key).is_err());
    }

    #[test]
    fn snapshot_round_trip_gives_identical_output() {
        let steps: Vec<Step> = vec![
            Ok(input(&[
                (30, "a", 1),
                (10, "b", 2),
                (20, "c", 3),
                (10, "d", 4),
            ])),
            Err(12),
            Ok(input(&[
                (11, "e", 5),
                (10, "f", 6),
                (25, "g", 7),
                (13, "h", 8),
            ])),
            Ok(input(&[(25, "i", 1), (40, "j", 2), (12, "k", 3)])),
            Err(25),
            Ok(input(&[(26, "l", 4), (24, "m", 5), (50, "n", 6)])),
            Err(45),
        ];
        let make = || {
            TemporalSort::try_new(TemporalSortConfig {
                input_schema: input_schema(),
                time_column: 0,
                sort_keys: vec![SortKey::desc(2)],
            })
            .expect("operator")
        };
        let run = |cut: Option<usize>| {
            let (events, h) = test_util::replay(make, &steps, cut);
            (events, h.late_dropped())
        };
        let (expected, late) = run(None);
        assert_eq!(late, 2);
        for cut in 1..steps.len() {
            assert_eq!(run(Some(cut)), (expected.clone(), late), "cut at {cut}");
        }
    }
}
