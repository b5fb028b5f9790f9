//! Window definitions shared by the window operators (not an operator).
//!
//! Flink semantics: windows are half-open `[start, end)` and aligned to the
//! Unix epoch plus an optional offset. A window's `window_time` is
//! `window_end - 1` ms. A window fires when the watermark reaches
//! `window_end - 1`.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef, UInt64Type};
use datafusion_physical_expr::aggregate::AggregateFunctionExpr;
use datafusion_physical_expr::PhysicalExpr;
use weir_engine::{Result, WeirError};

/// A window TVF: `TUMBLE`, `HOP`, `CUMULATE` or `SESSION`. All times are in
/// milliseconds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WindowSpec {
    /// `TUMBLE(size, offset)`: consecutive windows of `size_ms`.
    Tumble {
        /// Window length.
        size_ms: i64,
        /// Shift of the window boundaries from the epoch.
        offset_ms: i64,
    },
    /// `HOP(slide, size, offset)`: windows of `size_ms` starting every `slide_ms`.
    Hop {
        /// Window length.
        size_ms: i64,
        /// Distance between window starts.
        slide_ms: i64,
        /// Shift of the window boundaries from the epoch.
        offset_ms: i64,
    },
    /// `CUMULATE(step, size, offset)`: windows `[s, s + k*step)` growing by
    /// `step_ms` up to `size_ms`, where `s` is aligned to `size_ms`.
    Cumulate {
        /// Maximum window length (must be a multiple of `step_ms`).
        size_ms: i64,
        /// Growth of the window end.
        step_ms: i64,
        /// Shift of the window boundaries from the epoch.
        offset_ms: i64,
    },
    /// `SESSION(gap)`: a row opens `[ts, ts + gap)`; windows of one partition
    /// key that intersect (overlap or touch) are merged.
    Session {
        /// Inactivity gap.
        gap_ms: i64,
    },
}

/// A half-open event-time interval `[start, end)` in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TimeWindow {
    /// Inclusive start.
    pub start: i64,
    /// Exclusive end.
    pub end: i64,
}

impl TimeWindow {
    /// A window `[start, end)`.
    pub fn new(start: i64, end: i64) -> Self {
        Self { start, end }
    }

    /// The window's `window_time`: its last millisecond, `end - 1`.
    pub fn max_timestamp(&self) -> i64 {
        self.end.saturating_sub(1)
    }

    /// True once `watermark` has reached `end - 1` (the window has fired).
    pub fn is_fired(&self, watermark: Option<i64>) -> bool {
        watermark.is_some_and(|w| self.max_timestamp() <= w)
    }
}

/// The start of the window of length `size` (aligned to the epoch plus
/// `offset`) containing `ts`: `ts - ((ts - offset) mod size)`, also for
/// negative timestamps. `size` must be positive.
pub fn window_start(ts: i64, size: i64, offset: i64) -> i64 {
    if size <= 0 {
        return ts;
    }
    ts.saturating_sub(ts.wrapping_sub(offset).rem_euclid(size))
}

impl WindowSpec {
    /// Checks that the sizes are positive (and, for `CUMULATE`, that the
    /// size is a multiple of the step).
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(WeirError::Plan(m));
        match *self {
            WindowSpec::Tumble { size_ms, .. } if size_ms <= 0 => {
                bad(format!("TUMBLE size must be positive, got {size_ms} ms"))
            }
            WindowSpec::Hop {
                size_ms, slide_ms, ..
            } if size_ms <= 0 || slide_ms <= 0 => bad(format!(
                "HOP size and slide must be positive, got size {size_ms} ms and slide {slide_ms} ms"
            )),
            WindowSpec::Cumulate {
                size_ms, step_ms, ..
            } if size_ms <= 0 || step_ms <= 0 || size_ms % step_ms != 0 => bad(format!(
                "CUMULATE max size must be a positive multiple of its step, got size {size_ms} ms and step {step_ms} ms"
            )),
            WindowSpec::Session { gap_ms } if gap_ms <= 0 => {
                bad(format!("SESSION gap must be positive, got {gap_ms} ms"))
            }
            _ => Ok(()),
        }
    }

    /// True for `SESSION`.
    pub fn is_session(&self) -> bool {
        matches!(self, WindowSpec::Session { .. })
    }

    /// Appends the windows containing `ts` to `out`, in Flink's order:
    /// the tumble window; for `HOP`, latest start first; for `CUMULATE`,
    /// smallest first; for `SESSION`, the row's own window `[ts, ts + gap)`.
    pub fn assign(&self, ts: i64, out: &mut Vec<TimeWindow>) {
        match *self {
            WindowSpec::Tumble { size_ms, offset_ms } => {
                let start = window_start(ts, size_ms, offset_ms);
                out.push(TimeWindow::new(start, start.saturating_add(size_ms)));
            }
            WindowSpec::Hop {
                size_ms,
                slide_ms,
                offset_ms,
            } => {
                let mut start = window_start(ts, slide_ms, offset_ms);
                let lowest = ts.saturating_sub(size_ms);
                while start > lowest {
                    out.push(TimeWindow::new(start, start.saturating_add(size_ms)));
                    start = start.saturating_sub(slide_ms);
                }
            }
            WindowSpec::Cumulate {
                size_ms,
                step_ms,
                offset_ms,
            } => {
                let start = window_start(ts, size_ms, offset_ms);
                let last_end = start.saturating_add(size_ms);
                let mut end = window_start(ts, step_ms, offset_ms).saturating_add(step_ms);
                while end <= last_end && step_ms > 0 {
                    out.push(TimeWindow::new(start, end));
                    end = end.saturating_add(step_ms);
                }
            }
            WindowSpec::Session { gap_ms } => {
                out.push(TimeWindow::new(ts, ts.saturating_add(gap_ms)));
            }
        }
    }

    /// The windows containing `ts` (see [`WindowSpec::assign`]).
    pub fn windows(&self, ts: i64) -> Vec<TimeWindow> {
        let mut out = Vec::new();
        self.assign(ts, &mut out);
        out
    }

    /// The end of the last window containing `ts` (Flink's
    /// `SliceAssigner::getLastWindowEnd` of the row's slice). A window
    /// aggregation drops a row as late only once this window has fired;
    /// until then the row still goes into those of its windows that have
    /// not fired.
    pub fn last_end(&self, ts: i64) -> i64 {
        match *self {
            WindowSpec::Tumble { size_ms, offset_ms } => {
                window_start(ts, size_ms, offset_ms).saturating_add(size_ms)
            }
            WindowSpec::Hop {
                size_ms,
                slide_ms,
                offset_ms,
            } => window_start(ts, slide_ms, offset_ms).saturating_add(size_ms),
            WindowSpec::Cumulate {
                size_ms, offset_ms, ..
            } => window_start(ts, size_ms, offset_ms).saturating_add(size_ms),
            WindowSpec::Session { gap_ms } => ts.saturating_add(gap_ms),
        }
    }
}

/// What one output column of a window aggregation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputColumn {
    /// The window's start (`TIMESTAMP(3)`).
    WindowStart,
    /// The window's end (`TIMESTAMP(3)`).
    WindowEnd,
    /// The window's time attribute, `window_end - 1 ms`.
    WindowTime,
    /// Grouping key `i` (an index into [`WindowAggregateConfig::keys`]).
    Key(usize),
    /// Aggregate `i` (an index into [`WindowAggregateConfig::aggregates`]).
    Aggregate(usize),
}

/// An aggregate of a window aggregation with its optional `FILTER (WHERE …)`.
pub type FilteredAggregate = (Arc<AggregateFunctionExpr>, Option<Arc<dyn PhysicalExpr>>);

/// The configuration of [`WindowAggregate`](crate::window_aggregate::WindowAggregate)
/// and [`SessionWindowAggregate`](crate::session_window_aggregate::SessionWindowAggregate).
#[derive(Debug, Clone)]
pub struct WindowAggregateConfig {
    /// The window TVF.
    pub window: WindowSpec,
    /// Input column holding each row's event time (Timestamp(Millisecond, None)).
    pub time_column: usize,
    /// Grouping expressions other than window_start/window_end, evaluated on the input.
    pub keys: Vec<Arc<dyn PhysicalExpr>>,
    /// For SESSION: indices into `keys` of the PARTITION BY columns (sessions
    /// are formed per partition key; aggregates are computed per full key
    /// within each session). Ignored otherwise.
    pub session_keys: Vec<usize>,
    /// The aggregates (DataFusion's AggregateFunctionExpr, built by the planner
    /// with AggregateExprBuilder), each with an optional FILTER (WHERE ...)
    /// predicate evaluated on the input.
    pub aggregates: Vec<FilteredAggregate>,
    /// What each output column is, in order; the output schema below has one
    /// field per entry.
    pub output: Vec<OutputColumn>,
    /// The output schema.
    pub output_schema: SchemaRef,
}

impl WindowAggregateConfig {
    /// Checks the configuration: a valid window, one output field per
    /// output column, key/aggregate indices in range.
    pub fn validate(&self) -> Result<()> {
        self.window.validate()?;
        if self.output.len() != self.output_schema.fields().len() {
            return Err(WeirError::Plan(format!(
                "window aggregation: {} output columns but the output schema has {} fields",
                self.output.len(),
                self.output_schema.fields().len()
            )));
        }
        for o in &self.output {
            match *o {
                OutputColumn::Key(i) if i >= self.keys.len() => {
                    return Err(WeirError::Plan(format!(
                        "window aggregation: output key {i} but only {} keys",
                        self.keys.len()
                    )))
                }
                OutputColumn::Aggregate(i) if i >= self.aggregates.len() => {
                    return Err(WeirError::Plan(format!(
                        "window aggregation: output aggregate {i} but only {} aggregates",
                        self.aggregates.len()
                    )))
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The `meta` state table: the operator's watermark (and an optional
/// counter).
pub(crate) fn meta_table(watermark: Option<i64>, counter: u64) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        Field::new("watermark", DataType::Int64, true),
        Field::new("counter", DataType::UInt64, false),
    ]));
    Ok(RecordBatch::try_new(
        schema,
        vec![
            Arc::new(Int64Array::from(vec![watermark])),
            Arc::new(UInt64Array::from(vec![counter])),
        ],
    )?)
}

/// Reads a table written by [`meta_table`].
pub(crate) fn read_meta(table: &RecordBatch) -> Result<(Option<i64>, u64)> {
    let wm = int64_column(table, "watermark")?;
    let counter = table
        .column_by_name("counter")
        .and_then(|c| c.as_primitive_opt::<UInt64Type>())
        .ok_or_else(|| WeirError::State("state column 'counter' is missing".into()))?;
    if table.num_rows() != 1 {
        return Err(WeirError::State(
            "state table 'meta' must have one row".into(),
        ));
    }
    Ok((wm.is_valid(0).then(|| wm.value(0)), counter.value(0)))
}

/// A named Int64 column of a state table.
pub(crate) fn int64_column<'a>(table: &'a RecordBatch, name: &str) -> Result<&'a Int64Array> {
    table
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| WeirError::State(format!("state column '{name}' is missing or not Int64")))
}

/// A named UInt64 column of a state table.
pub(crate) fn uint64_column<'a>(table: &'a RecordBatch, name: &str) -> Result<&'a UInt64Array> {
    table
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<UInt64Type>())
        .ok_or_else(|| WeirError::State(format!("state column '{name}' is missing or not UInt64")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(start: i64, end: i64) -> TimeWindow {
        TimeWindow::new(start, end)
    }

    #[test]
    fn tumble_is_half_open_and_epoch_aligned() {
        let t = WindowSpec::Tumble {
            size_ms: 10_000,
            offset_ms: 0,
        };
        assert_eq!(t.windows(9_999), vec![w(0, 10_000)]);
        assert_eq!(t.windows(10_000), vec![w(10_000, 20_000)]);
        assert_eq!(t.windows(-1), vec![w(-10_000, 0)]);
        assert_eq!(t.last_end(10_000), 20_000);
        let shifted = WindowSpec::Tumble {
            size_ms: 10_000,
            offset_ms: 3_000,
        };
        assert_eq!(shifted.windows(12_999), vec![w(3_000, 13_000)]);
        assert_eq!(shifted.windows(13_000), vec![w(13_000, 23_000)]);
    }

    #[test]
    fn hop_puts_a_row_in_size_over_slide_windows() {
        let h = WindowSpec::Hop {
            size_ms: 10_000,
            slide_ms: 5_000,
            offset_ms: 0,
        };
        assert_eq!(h.windows(7_000), vec![w(5_000, 15_000), w(0, 10_000)]);
        assert_eq!(h.windows(10_000), vec![w(10_000, 20_000), w(5_000, 15_000)]);
        assert_eq!(h.last_end(7_000), 15_000);
        assert_eq!(h.last_end(10_000), 20_000);
        // Size not a multiple of the slide.
        let odd = WindowSpec::Hop {
            size_ms: 10_000,
            slide_ms: 4_000,
            offset_ms: 0,
        };
        assert_eq!(
            odd.windows(9_000),
            vec![w(8_000, 18_000), w(4_000, 14_000), w(0, 10_000)]
        );
        assert_eq!(odd.last_end(9_000), 18_000);
    }

    #[test]
    fn cumulate_windows_grow_by_step() {
        let c = WindowSpec::Cumulate {
            size_ms: 30_000,
            step_ms: 10_000,
            offset_ms: 0,
        };
        assert_eq!(c.windows(12_000), vec![w(0, 20_000), w(0, 30_000)]);
        assert_eq!(
            c.windows(30_000),
            vec![w(30_000, 40_000), w(30_000, 50_000), w(30_000, 60_000)]
        );
        assert_eq!(c.windows(29_999), vec![w(0, 30_000)]);
        assert_eq!(c.last_end(12_000), 30_000);
        assert_eq!(c.last_end(30_000), 60_000);
    }

    #[test]
    fn validation() {
        assert!(WindowSpec::Tumble {
            size_ms: 0,
            offset_ms: 0
        }
        .validate()
        .is_err());
        assert!(WindowSpec::Cumulate {
            size_ms: 25,
            step_ms: 10,
            offset_ms: 0
        }
        .validate()
        .is_err());
        assert!(WindowSpec::Session { gap_ms: 5 }.validate().is_ok());
    }
}
