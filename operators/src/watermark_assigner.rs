//! [`WatermarkAssigner`]: Flink SQL's `WATERMARK FOR ts AS <expr>`.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array, UInt64Array};
use arrow::compute::{max, take_record_batch};
use arrow::datatypes::{
    DataType, Field, Int64Type, Schema, TimeUnit, TimestampMicrosecondType,
    TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
};
use datafusion_common::ScalarValue;
use datafusion_expr::Operator as BinOp;
use datafusion_physical_expr::expressions::{BinaryExpr, CastExpr, Column, Literal, TryCastExpr};
use datafusion_physical_expr::PhysicalExpr;
use weir_engine::message::EventTime;
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};

use crate::util::{evaluate, to_millis};
use crate::window::{int64_column, meta_table, read_meta, uint64_column};

/// Watermark bookkeeping of one source split.
#[derive(Debug, Clone, Copy, Default)]
struct SplitState {
    /// The largest value of the watermark expression seen on this split.
    max: Option<EventTime>,
    /// Excluded from the watermark because it produced no rows for the idle timeout.
    idle: bool,
    /// Rows arrived since the last tick.
    active: bool,
    /// The tick at which the split was last seen active (or first observed).
    last_active: Option<Instant>,
}

/// Generates watermarks from the rows of a source, per source split.
///
/// For each split (`ctx.split` of `ctx.split_count`; one split when the
/// operator is not chained to a source) the split's watermark is the
/// maximum of `watermark_expr` over its rows (TIMESTAMP or BIGINT epoch
/// milliseconds; nulls ignored). The emitted watermark is the minimum over
/// the splits that are not idle, emitted after a batch only when it
/// advances. Nothing is emitted until every split has produced a row,
/// except splits that went idle: with an `idle_timeout`, a split without
/// rows for that long (processing time, checked on ticks) stops holding the
/// watermark back; when every split is idle the output is declared idle
/// once. Upstream watermarks are swallowed: this operator defines them.
///
/// When the expression is non-decreasing in one column (`ts`,
/// `ts - INTERVAL '4' SECOND`, casts between timestamp units), the maximum
/// of a batch is the expression at the row where that column is largest:
/// the expression is then evaluated on two rows only, those with the
/// smallest and the largest value (the smallest too, so that a value the
/// expression rejects fails the batch exactly as evaluating every row would:
/// the values it accepts form an interval).
pub struct WatermarkAssigner {
    /// The `<expr>` of `WATERMARK FOR ts AS <expr>`, over the input schema.
    watermark_expr: Arc<dyn PhysicalExpr>,
    /// The column `watermark_expr` is non-decreasing in, if it is.
    monotone_in: Option<usize>,
    /// How long a split may go without rows before it is idle (`None`: never).
    idle_timeout: Option<Duration>,
    /// Per split state.
    splits: Vec<SplitState>,
    /// The last watermark emitted.
    emitted: Option<EventTime>,
    /// Whether idleness was declared (and no row has arrived since).
    idle_declared: bool,
}

impl fmt::Debug for WatermarkAssigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WatermarkAssigner")
            .field("watermark_expr", &self.watermark_expr.to_string())
            .field("idle_timeout", &self.idle_timeout)
            .field("splits", &self.splits)
            .field("emitted", &self.emitted)
            .finish()
    }
}

impl WatermarkAssigner {
    /// An assigner computing `watermark_expr` on every row.
    pub fn new(watermark_expr: Arc<dyn PhysicalExpr>, idle_timeout: Option<Duration>) -> Self {
        Self {
            monotone_in: monotone_column(watermark_expr.as_ref()),
            watermark_expr,
            idle_timeout,
            splits: Vec::new(),
            emitted: None,
            idle_declared: false,
        }
    }

    /// The last watermark emitted.
    pub fn current_watermark(&self) -> Option<EventTime> {
        self.emitted
    }

    fn ensure_splits(&mut self, n: usize) {
        if self.splits.len() < n {
            self.splits.resize(n, SplitState::default());
        }
    }

    /// The largest value of the watermark expression over the rows of
    /// `batch` (`None`: all NULL).
    fn batch_max(&self, batch: &RecordBatch) -> Result<Option<EventTime>> {
        let extremes = self
            .monotone_in
            .and_then(|c| batch.columns().get(c))
            .and_then(extremes);
        let values = match extremes {
            // Every value NULL: so is the expression.
            Some(None) => return Ok(None),
            Some(Some((lo, hi))) => {
                let rows = take_record_batch(batch, &UInt32Array::from(vec![lo, hi]))?;
                evaluate(&self.watermark_expr, &rows, "watermark expression")?
            }
            None => evaluate(&self.watermark_expr, batch, "watermark expression")?,
        };
        let millis = to_millis(&values, "the watermark expression")?;
        Ok(max(&millis))
    }

    /// Emits the combined watermark if it advanced, or idleness.
    fn maybe_emit(&mut self, out: &mut Collector) {
        let mut min: Option<EventTime> = None;
        let mut any_active = false;
        for s in &self.splits {
            if s.idle {
                continue;
            }
            any_active = true;
            match s.max {
                None => return, // hold back until this split produced a row
                Some(m) => min = Some(min.map_or(m, |c| c.min(m))),
            }
        }
        if !any_active {
            if !self.idle_declared && !self.splits.is_empty() {
                self.idle_declared = true;
                out.emit_idle();
            }
            return;
        }
        if let Some(m) = min {
            if self.emitted.is_none_or(|e| m > e) {
                self.emitted = Some(m);
                out.emit_watermark(m);
            }
        }
    }
}

impl Operator for WatermarkAssigner {
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        let (index, count) = match ctx.split {
            Some(s) if ctx.split_count > 0 => (s, ctx.split_count),
            _ => (0, 1),
        };
        if index >= count {
            return Err(WeirError::Internal(format!(
                "batch from split {index} but the source has {count} splits"
            )));
        }
        self.ensure_splits(count);
        if batch.num_rows() > 0 {
            let batch_max = self.batch_max(&batch)?;
            if let Some(s) = self.splits.get_mut(index) {
                s.active = true;
                s.idle = false;
                if let Some(m) = batch_max {
                    s.max = Some(s.max.map_or(m, |c| c.max(m)));
                }
            }
            self.idle_declared = false;
        }
        out.collect(batch);
        self.maybe_emit(out);
        Ok(())
    }

    fn on_watermark(
        &mut self,
        _watermark: EventTime,
        _ctx: &mut OperatorContext,
        _out: &mut Collector,
    ) -> Result<()> {
        Ok(())
    }

    fn on_tick(
        &mut self,
        now: Instant,
        ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        let Some(timeout) = self.idle_timeout else {
            return Ok(());
        };
        if self.splits.is_empty() {
            self.ensure_splits(ctx.split_count.max(1));
        }
        let mut changed = false;
        for s in &mut self.splits {
            if s.active {
                s.active = false;
                s.last_active = Some(now);
            } else {
                match s.last_active {
                    None => s.last_active = Some(now),
                    Some(t) => {
                        if !s.idle && now.saturating_duration_since(t) >= timeout {
                            s.idle = true;
                            changed = true;
                        }
                    }
                }
            }
        }
        if changed {
            self.maybe_emit(out);
        }
        Ok(())
    }

    fn snapshot(&mut self) -> Result<OperatorState> {
        let mut state = OperatorState::empty();
        state.put("meta", meta_table(self.emitted, self.splits.len() as u64)?)?;
        let schema = Arc::new(Schema::new(vec![
            Field::new("split", DataType::UInt64, false),
            Field::new("max", DataType::Int64, true),
        ]));
        let splits = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(UInt64Array::from_iter_values(
                    (0..self.splits.len()).map(|i| i as u64),
                )),
                Arc::new(Int64Array::from_iter(self.splits.iter().map(|s| s.max))),
            ],
        )?;
        state.put("splits", splits)?;
        Ok(state)
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        if state.is_empty() {
            return Ok(());
        }
        let (emitted, _) = read_meta(state.require("meta")?)?;
        let table = state.require("splits")?;
        let ids = uint64_column(table, "split")?;
        let maxima = int64_column(table, "max")?;
        let mut splits = Vec::new();
        for i in 0..table.num_rows() {
            let id = usize::try_from(ids.value(i))
                .map_err(|_| WeirError::State("split index out of range".into()))?;
            if splits.len() <= id {
                splits.resize(id + 1, SplitState::default());
            }
            if let Some(s) = splits.get_mut(id) {
                s.max = maxima.is_valid(i).then(|| maxima.value(i));
            }
        }
        self.splits = splits;
        self.emitted = emitted;
        self.idle_declared = false;
        Ok(())
    }
}

/// The column `expr` is non-decreasing in, if it is one of: a column of
/// type `TIMESTAMP` or `BIGINT`; such an expression plus or minus a constant
/// interval of fixed length (no months or days) or duration; a cast of such
/// an expression between timestamp units or to `BIGINT`.
fn monotone_column(expr: &dyn PhysicalExpr) -> Option<usize> {
    if let Some(c) = expr.downcast_ref::<Column>() {
        return Some(c.index());
    }
    let time_like = |t: &DataType| matches!(t, DataType::Timestamp(..) | DataType::Int64);
    if let Some(c) = expr.downcast_ref::<CastExpr>() {
        return time_like(c.cast_type())
            .then(|| monotone_column(c.expr().as_ref()))
            .flatten();
    }
    if let Some(c) = expr.downcast_ref::<TryCastExpr>() {
        return time_like(c.cast_type())
            .then(|| monotone_column(c.expr().as_ref()))
            .flatten();
    }
    let b = expr.downcast_ref::<BinaryExpr>()?;
    let fixed = |e: &Arc<dyn PhysicalExpr>| {
        e.downcast_ref::<Literal>()
            .is_some_and(|l| match l.value() {
                ScalarValue::IntervalMonthDayNano(Some(v)) => v.months == 0 && v.days == 0,
                ScalarValue::IntervalDayTime(Some(v)) => v.days == 0,
                ScalarValue::DurationSecond(Some(_))
                | ScalarValue::DurationMillisecond(Some(_))
                | ScalarValue::DurationMicrosecond(Some(_))
                | ScalarValue::DurationNanosecond(Some(_)) => true,
                _ => false,
            })
    };
    match b.op() {
        BinOp::Minus if fixed(b.right()) => monotone_column(b.left().as_ref()),
        BinOp::Plus if fixed(b.right()) => monotone_column(b.left().as_ref()),
        BinOp::Plus if fixed(b.left()) => monotone_column(b.right().as_ref()),
        _ => None,
    }
}

/// The rows holding the smallest and the largest value of a `TIMESTAMP` or
/// `BIGINT` column (`Some(None)`: every value is NULL); `None` for other types.
fn extremes(column: &ArrayRef) -> Option<Option<(u32, u32)>> {
    let values: &[i64] = match column.data_type() {
        DataType::Int64 => column.as_primitive_opt::<Int64Type>()?.values(),
        DataType::Timestamp(TimeUnit::Second, _) => {
            column.as_primitive_opt::<TimestampSecondType>()?.values()
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => column
            .as_primitive_opt::<TimestampMillisecondType>()?
            .values(),
        DataType::Timestamp(TimeUnit::Microsecond, _) => column
            .as_primitive_opt::<TimestampMicrosecondType>()?
            .values(),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => column
            .as_primitive_opt::<TimestampNanosecondType>()?
            .values(),
        _ => return None,
    };
    u32::try_from(values.len()).ok()?;
    let mut best: Option<(usize, usize)> = None;
    let mut consider = |i: usize| match &mut best {
        None => best = Some((i, i)),
        Some((lo, hi)) => {
            if values[i] < values[*lo] {
                *lo = i;
            }
            if values[i] > values[*hi] {
                *hi = i;
            }
        }
    };
    match column.nulls().filter(|n| n.null_count() > 0) {
        None => (0..values.len()).for_each(&mut consider),
        Some(nulls) => nulls.valid_indices().for_each(&mut consider),
    }
    Some(best.map(|(lo, hi)| (lo as u32, hi as u32)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::TimestampMillisecondArray;
    use arrow::datatypes::TimeUnit;
    use datafusion_expr::Operator as BinOp;
    use datafusion_physical_expr::expressions::{col, lit, BinaryExpr};
    use weir_engine::message::Watermark;
    use weir_engine::operator::Output;

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![Field::new("ts", DataType::Int64, true)]))
    }

    fn batch(ts: &[Option<i64>]) -> RecordBatch {
        RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(ts.to_vec()))])
            .expect("batch")
    }

    /// `ts - 1000`.
    fn assigner(idle: Option<Duration>) -> WatermarkAssigner {
        let expr = Arc::new(BinaryExpr::new(
            col("ts", &schema()).expect("col"),
            BinOp::Minus,
            lit(1000i64),
        ));
        WatermarkAssigner::new(expr, idle)
    }

    fn ctx(splits: usize) -> OperatorContext {
        let mut c = OperatorContext::standalone("wm");
        c.split_count = splits;
        c
    }

    #[derive(Debug, PartialEq)]
    enum Ev {
        Rows(usize),
        Wm(i64),
        Idle,
    }

    fn events(out: &mut Collector) -> Vec<Ev> {
        out.take()
            .into_iter()
            .map(|o| match o {
                Output::Batch(b) => Ev::Rows(b.num_rows()),
                Output::Watermark(Watermark::EventTime(w)) => Ev::Wm(w),
                Output::Watermark(Watermark::Idle) => Ev::Idle,
            })
            .collect()
    }

    fn feed(
        op: &mut WatermarkAssigner,
        c: &mut OperatorContext,
        split: usize,
        ts: &[i64],
    ) -> Vec<Ev> {
        c.split = Some(split);
        let mut out = Collector::new();
        let values: Vec<Option<i64>> = ts.iter().map(|t| Some(*t)).collect();
        op.process_batch(batch(&values), c, &mut out)
            .expect("batch");
        events(&mut out)
    }

    #[test]
    fn holds_back_until_every_split_produced_then_takes_the_minimum() {
        let mut op = assigner(None);
        let mut c = ctx(2);
        assert_eq!(feed(&mut op, &mut c, 0, &[5_000, 9_000]), vec![Ev::Rows(2)]);
        assert_eq!(feed(&mut op, &mut c, 0, &[12_000]), vec![Ev::Rows(1)]);
        // Split 1 arrives: min(12_000, 4_000) - 1000.
        assert_eq!(
            feed(&mut op, &mut c, 1, &[4_000, 3_000]),
            vec![Ev::Rows(2), Ev::Wm(3_000)]
        );
        // Out-of-order rows do not move it back; equal values are not re-emitted.
        assert_eq!(feed(&mut op, &mut c, 1, &[2_000]), vec![Ev::Rows(1)]);
        assert_eq!(feed(&mut op, &mut c, 1, &[4_000]), vec![Ev::Rows(1)]);
        assert_eq!(
            feed(&mut op, &mut c, 1, &[20_000]),
            vec![Ev::Rows(1), Ev::Wm(11_000)]
        );
    }

    #[test]
    fn nulls_are_ignored_and_timestamps_accepted() {
        let s = Arc::new(Schema::new(vec![Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Millisecond, None),
            true,
        )]));
        let mut op = WatermarkAssigner::new(col("ts", &s).expect("col"), None);
        let mut c = OperatorContext::standalone("wm");
        let b = RecordBatch::try_new(
            s.clone(),
            vec![Arc::new(TimestampMillisecondArray::from(vec![
                None,
                Some(7),
                None,
            ]))],
        )
        .expect("batch");
        let mut out = Collector::new();
        op.process_batch(b, &mut c, &mut out).expect("batch");
        assert_eq!(events(&mut out), vec![Ev::Rows(3), Ev::Wm(7)]);
        let only_nulls = RecordBatch::try_new(
            s,
            vec![Arc::new(TimestampMillisecondArray::from(vec![None::<i64>]))],
        )
        .expect("batch");
        op.process_batch(only_nulls, &mut c, &mut out)
            .expect("batch");
        assert_eq!(events(&mut out), vec![Ev::Rows(1)]);
    }

    /// The two-row evaluation of a non-decreasing expression gives what
    /// evaluating every row gives, failures included.
    #[test]
    fn monotone_expressions_are_evaluated_on_the_extreme_rows_only() {
        use arrow::datatypes::IntervalMonthDayNano;
        let s = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
        ]));
        let minus = |months: i32, days: i32, nanos: i64| -> Arc<dyn PhysicalExpr> {
            Arc::new(BinaryExpr::new(
                col("ts", &s).expect("col"),
                BinOp::Minus,
                lit(ScalarValue::IntervalMonthDayNano(Some(
                    IntervalMonthDayNano::new(months, days, nanos),
                ))),
            ))
        };
        let four_seconds = minus(0, 0, 4_000_000_000);
        let cast_to_micros: Arc<dyn PhysicalExpr> = Arc::new(CastExpr::new(
            four_seconds.clone(),
            DataType::Timestamp(TimeUnit::Microsecond, None),
            None,
        ));
        let cases: [(Arc<dyn PhysicalExpr>, Option<usize>); 5] = [
            (four_seconds, Some(1)),
            (cast_to_micros, Some(1)),
            (col("ts", &s).expect("col"), Some(1)),
            // A month is not a fixed length: every row is evaluated.
            (minus(1, 0, 0), None),
            (minus(0, 1, 0), None),
        ];
        let far_past = -9_000_000_000_000_000i64;
        let columns: [Vec<Option<i64>>; 5] = [
            vec![Some(5_000), None, Some(-3_000), Some(12_345), Some(12_000)],
            vec![None, None],
            vec![Some(7)],
            // Outside chrono's range: evaluating every row fails.
            vec![Some(1_000), Some(far_past), Some(2_000)],
            vec![None, Some(i64::MIN), Some(0)],
        ];
        for (expr, monotone) in cases {
            let op = WatermarkAssigner::new(expr.clone(), None);
            assert_eq!(op.monotone_in, monotone, "{expr}");
            for ts in &columns {
                let ids = Int64Array::from_iter_values(0..ts.len() as i64);
                let b = RecordBatch::try_new(
                    s.clone(),
                    vec![
                        Arc::new(ids),
                        Arc::new(TimestampMillisecondArray::from(ts.clone())),
                    ],
                )
                .expect("batch");
                let all_rows = evaluate(&expr, &b, "watermark expression")
                    .and_then(|v| to_millis(&v, "the watermark expression"))
                    .map(|m| max(&m));
                let got = op.batch_max(&b);
                match (&got, &all_rows) {
                    (Ok(a), Ok(b)) => assert_eq!(a, b, "{expr} on {ts:?}"),
                    (Err(_), Err(_)) => {}
                    _ => panic!("{expr} on {ts:?}: {got:?} but every row gives {all_rows:?}"),
                }
            }
        }
    }

    #[test]
    fn upstream_watermarks_are_swallowed() {
        let mut op = assigner(None);
        let mut c = ctx(0);
        let mut out = Collector::new();
        op.on_watermark(99, &mut c, &mut out).expect("wm");
        assert!(out.is_empty());
    }

    #[test]
    fn idle_splits_stop_holding_back_and_all_idle_is_declared_once() {
        let timeout = Duration::from_secs(1);
        let mut op = assigner(Some(timeout));
        let mut c = ctx(2);
        let t0 = Instant::now();
        let mut out = Collector::new();
        op.on_tick(t0, &mut c, &mut out).expect("tick");
        assert_eq!(feed(&mut op, &mut c, 0, &[10_000]), vec![Ev::Rows(1)]);
        op.on_tick(t0 + Duration::from_millis(500), &mut c, &mut out)
            .expect("tick");
        assert!(events(&mut out).is_empty());
        // Split 1 has had no rows for 1 s: it is idle, split 0 alone counts.
        op.on_tick(t0 + Duration::from_millis(1000), &mut c, &mut out)
            .expect("tick");
        assert_eq!(events(&mut out), vec![Ev::Wm(9_000)]);
        // Split 0 goes quiet too: everything idle, declared once.
        op.on_tick(t0 + Duration::from_millis(1500), &mut c, &mut out)
            .expect("tick");
        assert_eq!(events(&mut out), vec![Ev::Idle]);
        op.on_tick(t0 + Duration::from_millis(1600), &mut c, &mut out)
            .expect("tick");
        assert!(events(&mut out).is_empty());
        // Split 1 wakes up with an old row: active again, no regression.
        assert_eq!(feed(&mut op, &mut c, 1, &[5_000]), vec![Ev::Rows(1)]);
        assert_eq!(
            feed(&mut op, &mut c, 1, &[30_000]),
            vec![Ev::Rows(1), Ev::Wm(29_000)]
        );
    }

    #[test]
    fn snapshot_round_trip_keeps_split_maxima() {
        let run = |restart: bool| -> Vec<Ev> {
            let mut op = assigner(None);
            let mut c = ctx(2);
            let mut evs = feed(&mut op, &mut c, 0, &[8_000]);
            evs.extend(feed(&mut op, &mut c, 1, &[6_000]));
            if restart {
                let bytes = op.snapshot().expect("snap").to_bytes().expect("bytes");
                let mut fresh = assigner(None);
                fresh
                    .restore(OperatorState::from_bytes(&bytes).expect("decode"))
                    .expect("restore");
                op = fresh;
            }
            evs.extend(feed(&mut op, &mut c, 1, &[7_000]));
            evs.extend(feed(&mut op, &mut c, 1, &[10_000]));
            evs.extend(feed(&mut op, &mut c, 0, &[5_000]));
            evs
        };
        let expected = vec![
            Ev::Rows(1),
            Ev::Rows(1),
            Ev::Wm(5_000),
            Ev::Rows(1),
            Ev::Wm(6_000),
            Ev::Rows(1),
            Ev::Wm(7_000),
            Ev::Rows(1),
        ];
        assert_eq!(run(false), expected);
        assert_eq!(run(true), expected);
    }
}
