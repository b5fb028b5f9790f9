//! [`WindowAssigner`]: the window TVFs `TUMBLE`, `HOP` and `CUMULATE` used
//! without aggregation (`SELECT * FROM TABLE(TUMBLE(...))`).

use arrow::array::{ArrayRef, RecordBatch, TimestampMillisecondArray, UInt32Array};
use arrow::compute::take;
use arrow::datatypes::SchemaRef;
use std::sync::Arc;
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_engine::{Result, WeirError};

use crate::util::{build_batch, event_times};
use crate::window::{TimeWindow, WindowSpec};

/// Fills in `window_start`, `window_end` and `window_time` for every row.
///
/// The input already has the three window columns (placeholders, at the
/// given indices); the output has the same `schema` with the real values
/// (`TIMESTAMP(3)`). `HOP` and `CUMULATE` put a row in several windows: it
/// is repeated once per window (in Flink's order: `HOP` latest window
/// first, `CUMULATE` smallest first). Rows are not checked for lateness (as
/// in Flink, only window aggregations drop late rows); rows with a NULL time
/// are dropped and counted as late. Watermarks pass through unchanged.
#[derive(Debug)]
pub struct WindowAssigner {
    /// The window TVF (not `SESSION`).
    window: WindowSpec,
    /// Input column holding the event time.
    time_column: usize,
    /// Column receiving `window_start`.
    window_start_col: usize,
    /// Column receiving `window_end`.
    window_end_col: usize,
    /// Column receiving `window_time` (`window_end - 1`).
    window_time_col: usize,
    /// Input and output schema.
    schema: SchemaRef,
    /// Whether dropping rows with a NULL time was logged already.
    warned_null_time: bool,
    /// Scratch: windows of one row.
    scratch: Vec<TimeWindow>,
}

impl WindowAssigner {
    /// A window assigner; fails for `SESSION`, invalid sizes or column
    /// indices outside `schema`.
    pub fn try_new(
        window: WindowSpec,
        time_column: usize,
        window_start_col: usize,
        window_end_col: usize,
        window_time_col: usize,
        schema: SchemaRef,
    ) -> Result<Self> {
        window.validate()?;
        if window.is_session() {
            return Err(WeirError::Plan(
                "SESSION windows can only be used with GROUP BY window_start, window_end".into(),
            ));
        }
        let n = schema.fields().len();
        for (what, i) in [
            ("time column", time_column),
            ("window_start column", window_start_col),
            ("window_end column", window_end_col),
            ("window_time column", window_time_col),
        ] {
            if i >= n {
                return Err(WeirError::Plan(format!(
                    "window assigner: {what} index {i} is outside the schema ({n} columns)"
                )));
            }
        }
        Ok(Self {
            window,
            time_column,
            window_start_col,
            window_end_col,
            window_time_col,
            schema,
            warned_null_time: false,
            scratch: Vec::new(),
        })
    }
}

impl Operator for WindowAssigner {
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
        let times = event_times(&batch, self.time_column)?;
        let mut rows: Vec<u32> = Vec::with_capacity(n);
        let mut starts: Vec<i64> = Vec::with_capacity(n);
        let mut ends: Vec<i64> = Vec::with_capacity(n);
        let mut nulls = 0u64;
        for (row, ts) in times.iter().enumerate() {
            let Some(ts) = ts else {
                nulls += 1;
                continue;
            };
            self.scratch.clear();
            self.window.assign(ts, &mut self.scratch);
            for w in &self.scratch {
                rows.push(row as u32);
                starts.push(w.start);
                ends.push(w.end);
            }
        }
        if nulls > 0 {
            ctx.metrics.add_late_dropped(nulls);
            if !self.warned_null_time {
                self.warned_null_time = true;
                tracing::warn!(node = %ctx.node, rows = nulls, "dropped rows with a NULL event time");
            }
        }
        if rows.is_empty() {
            return Ok(());
        }
        let identity = rows.len() == n;
        let mut columns: Vec<ArrayRef> = if identity {
            batch.columns().to_vec()
        } else {
            let indices = UInt32Array::from(rows);
            batch
                .columns()
                .iter()
                .map(|c| take(c.as_ref(), &indices, None))
                .collect::<std::result::Result<_, _>>()?
        };
        let count = starts.len();
        let times: Vec<i64> = ends.iter().map(|e| e.saturating_sub(1)).collect();
        let set = |columns: &mut Vec<ArrayRef>, i: usize, v: Vec<i64>| {
            if let Some(c) = columns.get_mut(i) {
                *c = Arc::new(TimestampMillisecondArray::from(v));
            }
        };
        set(&mut columns, self.window_start_col, starts);
        set(&mut columns, self.window_end_col, ends);
        set(&mut columns, self.window_time_col, times);
        out.collect(build_batch(&self.schema, columns, count)?);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{rows_of, Harness};
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};

    fn ts_type() -> DataType {
        DataType::Timestamp(TimeUnit::Millisecond, None)
    }

    /// (ts, name, window_start, window_end, window_time) with placeholders.
    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("ts", ts_type(), false),
            Field::new("name", DataType::Utf8, true),
            Field::new("window_start", ts_type(), false),
            Field::new("window_end", ts_type(), false),
            Field::new("window_time", ts_type(), false),
        ]))
    }

    fn input(rows: &[(i64, &str)]) -> RecordBatch {
        let ts: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let t = Arc::new(TimestampMillisecondArray::from(ts));
        RecordBatch::try_new(
            schema(),
            vec![
                t.clone(),
                Arc::new(StringArray::from(
                    rows.iter().map(|r| r.1).collect::<Vec<_>>(),
                )),
                t.clone(),
                t.clone(),
                t,
            ],
        )
        .expect("batch")
    }

    fn run(window: WindowSpec, rows: &[(i64, &str)]) -> Vec<String> {
        let op = WindowAssigner::try_new(window, 2, 2, 3, 4, schema()).expect("new");
        let mut h = Harness::new(op);
        h.batch(input(rows)).expect("batch");
        rows_of(&h.take_batches())
    }

    #[test]
    fn tumble_replaces_placeholders() {
        let out = run(
            WindowSpec::Tumble {
                size_ms: 10_000,
                offset_ms: 0,
            },
            &[(9_999, "a"), (10_000, "b")],
        );
        assert_eq!(
            out,
            vec!["9999,a,0,10000,9999", "10000,b,10000,20000,19999",]
        );
    }

    #[test]
    fn hop_repeats_rows_per_window() {
        let out = run(
            WindowSpec::Hop {
                size_ms: 10_000,
                slide_ms: 5_000,
                offset_ms: 0,
            },
            &[(7_000, "a"), (12_000, "b")],
        );
        assert_eq!(
            out,
            vec![
                "7000,a,5000,15000,14999",
                "7000,a,0,10000,9999",
                "12000,b,10000,20000,19999",
                "12000,b,5000,15000,14999",
            ]
        );
    }

    #[test]
    fn cumulate_repeats_rows_per_window() {
        let out = run(
            WindowSpec::Cumulate {
                size_ms: 30_000,
                step_ms: 10_000,
                offset_ms: 0,
            },
            &[(15_000, "a")],
        );
        assert_eq!(out, vec!["15000,a,0,20000,19999", "15000,a,0,30000,29999"]);
    }

    #[test]
    fn session_and_bad_indices_are_rejected() {
        assert!(
            WindowAssigner::try_new(WindowSpec::Session { gap_ms: 5 }, 0, 2, 3, 4, schema())
                .is_err()
        );
        let t = WindowSpec::Tumble {
            size_ms: 5,
            offset_ms: 0,
        };
        assert!(WindowAssigner::try_new(t, 0, 2, 3, 9, schema()).is_err());
    }
}
