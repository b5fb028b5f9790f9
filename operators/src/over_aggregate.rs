//! [`OverAggregate`]: event-time `OVER` windows, as Flink runs them:
//! `agg(x) OVER (PARTITION BY k ORDER BY rowtime RANGE BETWEEN INTERVAL …
//! PRECEDING AND CURRENT ROW)`, `ROWS BETWEEN n PRECEDING AND CURRENT ROW`
//! and both frames `UNBOUNDED PRECEDING`.
//!
//! The aggregates are incremental with retraction (count, sum and sum of
//! squares; MIN/MAX and FIRST/LAST_VALUE over monotonic queues, since a
//! frame always retracts its oldest rows first): O(1) amortised per row and
//! aggregate.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int64Array, PrimitiveArray, RecordBatch, UInt64Array,
};
use arrow::compute::{cast, unary};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type,
    Int8Type, Schema, SchemaRef, UInt16Type, UInt32Type, UInt8Type,
};
use weir_engine::message::EventTime;
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};

use crate::key_map::KeyMap;
use crate::ordering::{
    advance_watermark, check_time_column, count_null_times, field, float64_column, opt_i64,
    put_time_meta, read_time_meta, with_keys, TimerQueue, Times,
};
use crate::row_store::{RowRef, RowStore};
use crate::window::{int64_column, uint64_column};

const WHAT: &str = "OVER aggregation";

/// The frame of an `OVER` window (always ending at `CURRENT ROW`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverFrame {
    /// `RANGE BETWEEN INTERVAL … PRECEDING AND CURRENT ROW`: the rows of the
    /// partition with time in `[t - preceding_ms, t]`, peers (rows of equal
    /// time) included.
    RangePreceding {
        /// The interval in milliseconds (`>= 0`).
        preceding_ms: i64,
    },
    /// `ROWS BETWEEN n PRECEDING AND CURRENT ROW`: the row and the `n` rows
    /// before it in time order (ties in arrival order).
    RowsPreceding {
        /// `n`.
        preceding: u64,
    },
    /// `RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW` (the default frame
    /// of `OVER (ORDER BY rowtime)`): all rows up to the row's time, peers
    /// included.
    RangeUnbounded,
    /// `ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW`.
    RowsUnbounded,
}

impl OverFrame {
    fn is_bounded(self) -> bool {
        matches!(
            self,
            OverFrame::RangePreceding { .. } | OverFrame::RowsPreceding { .. }
        )
    }

    fn is_range(self) -> bool {
        matches!(
            self,
            OverFrame::RangePreceding { .. } | OverFrame::RangeUnbounded
        )
    }
}

/// An aggregate function over an `OVER` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OverFunction {
    /// `COUNT(*)` (no column) or `COUNT(x)` (non-NULL values): `BIGINT NOT NULL`.
    Count,
    /// `SUM(x)`: the type of `x` (integer sums wrap like Java's), NULL when no
    /// value.
    Sum,
    /// `AVG(x)`: the type of `x`; for integers the integer quotient (Flink:
    /// `AVG` of a `BIGINT` is a `BIGINT`).
    Avg,
    /// `MIN(x)`: the type of `x`.
    Min,
    /// `MAX(x)`: the type of `x`.
    Max,
    /// `STDDEV_POP(x)`: the type of `x`.
    StddevPop,
    /// `STDDEV_SAMP(x)` (Flink's `STDDEV`): the type of `x`; NULL for one value.
    StddevSamp,
    /// `VAR_POP(x)`: the type of `x`.
    VarPop,
    /// `VAR_SAMP(x)` (Flink's `VARIANCE`): the type of `x`; NULL for one value.
    VarSamp,
    /// `FIRST_VALUE(x)`: the earliest non-NULL value in the frame.
    FirstValue,
    /// `LAST_VALUE(x)`: the latest non-NULL value in the frame.
    LastValue,
}

impl OverFunction {
    fn name(self) -> &'static str {
        match self {
            OverFunction::Count => "COUNT",
            OverFunction::Sum => "SUM",
            OverFunction::Avg => "AVG",
            OverFunction::Min => "MIN",
            OverFunction::Max => "MAX",
            OverFunction::StddevPop => "STDDEV_POP",
            OverFunction::StddevSamp => "STDDEV_SAMP",
            OverFunction::VarPop => "VAR_POP",
            OverFunction::VarSamp => "VAR_SAMP",
            OverFunction::FirstValue => "FIRST_VALUE",
            OverFunction::LastValue => "LAST_VALUE",
        }
    }
}

/// One aggregate of an [`OverAggregate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverAggregateCall {
    /// The function.
    pub function: OverFunction,
    /// Its argument, an input column (`None` only for `COUNT(*)`). Computed
    /// arguments are projected into a column by the planner first.
    pub column: Option<usize>,
    /// The name of the output column.
    pub name: String,
}

impl OverAggregateCall {
    /// `function(column) AS name`.
    pub fn new(function: OverFunction, column: usize, name: impl Into<String>) -> Self {
        Self {
            function,
            column: Some(column),
            name: name.into(),
        }
    }

    /// `COUNT(*) AS name`.
    pub fn count_star(name: impl Into<String>) -> Self {
        Self {
            function: OverFunction::Count,
            column: None,
            name: name.into(),
        }
    }
}

/// The configuration of an [`OverAggregate`]. All aggregates share one
/// window (partition, order, frame), as in Flink.
#[derive(Debug, Clone)]
pub struct OverAggregateConfig {
    /// The input schema.
    pub input_schema: SchemaRef,
    /// Input columns of `PARTITION BY` (empty: one partition).
    pub partition_keys: Vec<usize>,
    /// Input column of the time attribute in `ORDER BY` (`TIMESTAMP` or
    /// `BIGINT` epoch ms), ascending.
    pub time_column: usize,
    /// The frame.
    pub frame: OverFrame,
    /// The aggregates; their columns follow the input columns in the output.
    pub aggregates: Vec<OverAggregateCall>,
    /// For `ROWS` and unbounded frames: a partition's state is dropped once
    /// the watermark passes its latest row's time plus this (ms; Flink's
    /// idle state retention `table.exec.state.ttl`, here in event time).
    /// `None` or 0: kept forever, as in Flink by default. `RANGE … PRECEDING`
    /// frames clean up on their own (see [`OverAggregate`]) and ignore it.
    pub state_ttl_ms: Option<i64>,
}

/// How an argument column's values are held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Domain {
    /// Integers and timestamps, as i64.
    Int,
    /// Floating point, as f64 bits.
    Float,
    /// Only NULL or not (for `COUNT`).
    Validity,
}

/// An argument type of the numeric functions.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Num {
    /// A (signed or unsigned) integer of that many bits, or a timestamp (64).
    Int {
        bits: u32,
        signed: bool,
        timestamp: bool,
    },
    /// A float (`FLOAT` or `DOUBLE`).
    Float,
    /// Anything else (only `COUNT`).
    Other,
}

impl Num {
    fn of(t: &DataType) -> Num {
        let int = |bits, signed| Num::Int {
            bits,
            signed,
            timestamp: false,
        };
        match t {
            DataType::Int8 => int(8, true),
            DataType::Int16 => int(16, true),
            DataType::Int32 => int(32, true),
            DataType::Int64 => int(64, true),
            DataType::UInt8 => int(8, false),
            DataType::UInt16 => int(16, false),
            DataType::UInt32 => int(32, false),
            DataType::Timestamp(_, _) => Num::Int {
                bits: 64,
                signed: true,
                timestamp: true,
            },
            DataType::Float32 | DataType::Float64 => Num::Float,
            _ => Num::Other,
        }
    }

    /// Wraps an i64 to this integer width (Java's narrowing), identity else.
    #[inline]
    fn wrap(&self, v: i64) -> i64 {
        match *self {
            Num::Int {
                bits: 8,
                signed: true,
                ..
            } => v as i8 as i64,
            Num::Int {
                bits: 16,
                signed: true,
                ..
            } => v as i16 as i64,
            Num::Int {
                bits: 32,
                signed: true,
                ..
            } => v as i32 as i64,
            Num::Int {
                bits: 8,
                signed: false,
                ..
            } => v as u8 as i64,
            Num::Int {
                bits: 16,
                signed: false,
                ..
            } => v as u16 as i64,
            Num::Int {
                bits: 32,
                signed: false,
                ..
            } => v as u32 as i64,
            _ => v,
        }
    }
}

/// An aggregate, prepared.
#[derive(Debug, Clone)]
struct AggPlan {
    function: OverFunction,
    /// Index of its argument among the distinct argument columns.
    slot: Option<usize>,
    /// Its argument type.
    num: Num,
    /// Whether its output is held as f64 (else i64).
    float_out: bool,
}

/// An accumulator's scalar state in a snapshot (unused fields are `None`).
#[derive(Debug, Clone, Copy, Default)]
struct AccFields {
    /// Count of rows or values.
    n: Option<i64>,
    /// Integer sum, or the running MIN/MAX/FIRST/LAST value.
    a: Option<i64>,
    /// Integer sum of squares.
    b: Option<i64>,
    /// Float sum.
    fa: Option<f64>,
    /// Float sum of squares.
    fb: Option<f64>,
}

/// One aggregate's running state.
#[derive(Debug, Clone)]
enum Acc {
    /// Rows or non-NULL values.
    Count { n: i64 },
    /// Integer sum (wrapping) and count of values.
    SumInt { sum: i64, n: i64 },
    /// Float sum and count of values.
    SumFloat { sum: f64, n: i64 },
    /// Integer sum, sum of squares (wrapping) and count.
    VarInt { sum: i64, sumsq: i64, n: i64 },
    /// Float sum, sum of squares and count.
    VarFloat { sum: f64, sumsq: f64, n: i64 },
    /// MIN/MAX. With retraction: a monotonic queue of (position, value);
    /// without: the running extreme.
    Extreme {
        max: bool,
        float: bool,
        queue: VecDeque<(u64, i64)>,
        running: Option<i64>,
    },
    /// FIRST/LAST_VALUE. With retraction: the non-NULL (position, value)s in
    /// the frame; without: the running value.
    Edge {
        last: bool,
        queue: VecDeque<(u64, i64)>,
        running: Option<i64>,
    },
}

#[inline]
fn cmp_values(float: bool, a: i64, b: i64) -> std::cmp::Ordering {
    if float {
        f64::from_bits(a as u64).total_cmp(&f64::from_bits(b as u64))
    } else {
        a.cmp(&b)
    }
}

#[inline]
fn as_f64(bits: i64) -> f64 {
    f64::from_bits(bits as u64)
}

impl Acc {
    fn new(plan: &AggPlan) -> Acc {
        let float = plan.num == Num::Float;
        match plan.function {
            OverFunction::Count => Acc::Count { n: 0 },
            OverFunction::Sum | OverFunction::Avg if float => Acc::SumFloat { sum: 0.0, n: 0 },
            OverFunction::Sum | OverFunction::Avg => Acc::SumInt { sum: 0, n: 0 },
            OverFunction::StddevPop
            | OverFunction::StddevSamp
            | OverFunction::VarPop
            | OverFunction::VarSamp
                if float =>
            {
                Acc::VarFloat {
                    sum: 0.0,
                    sumsq: 0.0,
                    n: 0,
                }
            }
            OverFunction::StddevPop
            | OverFunction::StddevSamp
            | OverFunction::VarPop
            | OverFunction::VarSamp => Acc::VarInt {
                sum: 0,
                sumsq: 0,
                n: 0,
            },
            OverFunction::Min | OverFunction::Max => Acc::Extreme {
                max: plan.function == OverFunction::Max,
                float,
                queue: VecDeque::new(),
                running: None,
            },
            OverFunction::FirstValue | OverFunction::LastValue => Acc::Edge {
                last: plan.function == OverFunction::LastValue,
                queue: VecDeque::new(),
                running: None,
            },
        }
    }

    /// Adds a row at `pos` with value `v` (`Some(0)` for "not NULL" in
    /// validity-only columns; `COUNT(*)` passes `Some(0)` too).
    #[inline]
    fn accumulate(&mut self, retracts: bool, pos: u64, v: Option<i64>) {
        let Some(v) = v else { return };
        match self {
            Acc::Count { n } => *n += 1,
            Acc::SumInt { sum, n } => {
                *sum = sum.wrapping_add(v);
                *n += 1;
            }
            Acc::SumFloat { sum, n } => {
                *sum += as_f64(v);
                *n += 1;
            }
            Acc::VarInt { sum, sumsq, n } => {
                *sum = sum.wrapping_add(v);
                *sumsq = sumsq.wrapping_add(v.wrapping_mul(v));
                *n += 1;
            }
            Acc::VarFloat { sum, sumsq, n } => {
                let x = as_f64(v);
                *sum += x;
                *sumsq += x * x;
                *n += 1;
            }
            Acc::Extreme {
                max,
                float,
                queue,
                running,
            } => {
                let better = |old: i64| {
                    let o = cmp_values(*float, v, old);
                    if *max {
                        o.is_gt()
                    } else {
                        o.is_lt()
                    }
                };
                if retracts {
                    // Drop values the new one makes irrelevant (equal ones too:
                    // the newer outlives them).
                    while let Some(&(_, back)) = queue.back() {
                        if better(back) || cmp_values(*float, v, back).is_eq() {
                            queue.pop_back();
                        } else {
                            break;
                        }
                    }
                    queue.push_back((pos, v));
                } else if running.is_none_or(better) {
                    *running = Some(v);
                }
            }
            Acc::Edge {
                last,
                queue,
                running,
            } => {
                if retracts {
                    queue.push_back((pos, v));
                } else if *last || running.is_none() {
                    *running = Some(v);
                }
            }
        }
    }

    /// Removes the oldest row of the frame, at `pos` with value `v`.
    #[inline]
    fn retract(&mut self, pos: u64, v: Option<i64>) {
        let Some(v) = v else { return };
        match self {
            Acc::Count { n } => *n -= 1,
            Acc::SumInt { sum, n } => {
                *sum = sum.wrapping_sub(v);
                *n -= 1;
            }
            Acc::SumFloat { sum, n } => {
                *sum -= as_f64(v);
                *n -= 1;
            }
            Acc::VarInt { sum, sumsq, n } => {
                *sum = sum.wrapping_sub(v);
                *sumsq = sumsq.wrapping_sub(v.wrapping_mul(v));
                *n -= 1;
            }
            Acc::VarFloat { sum, sumsq, n } => {
                let x = as_f64(v);
                *sum -= x;
                *sumsq -= x * x;
                *n -= 1;
            }
            Acc::Extreme { queue, .. } | Acc::Edge { queue, .. } => {
                if queue.front().is_some_and(|&(p, _)| p == pos) {
                    queue.pop_front();
                }
            }
        }
    }

    /// The current value (i64, or f64 bits when the output is a float).
    fn value(&self, plan: &AggPlan) -> Option<i64> {
        let f = plan.function;
        match self {
            Acc::Count { n } => Some(*n),
            Acc::SumInt { sum, n } => {
                if *n == 0 {
                    None
                } else if f == OverFunction::Avg {
                    Some(plan.num.wrap(sum.wrapping_div(*n)))
                } else {
                    Some(plan.num.wrap(*sum))
                }
            }
            Acc::SumFloat { sum, n } => {
                if *n == 0 {
                    None
                } else if f == OverFunction::Avg {
                    Some((sum / *n as f64).to_bits() as i64)
                } else {
                    Some(sum.to_bits() as i64)
                }
            }
            Acc::VarInt { sum, sumsq, n } => int_variance(plan, *sum, *sumsq, *n),
            Acc::VarFloat { sum, sumsq, n } => {
                if *n == 0 {
                    return None;
                }
                let n = *n as f64;
                let diff = sumsq - sum * sum / n;
                let var = match f {
                    OverFunction::VarPop | OverFunction::StddevPop => diff / n,
                    _ if n == 1.0 => return None,
                    _ => diff / (n - 1.0),
                };
                let out = match f {
                    OverFunction::StddevPop | OverFunction::StddevSamp => var.powf(0.5),
                    _ => var,
                };
                Some(out.to_bits() as i64)
            }
            Acc::Extreme { queue, running, .. } => queue.front().map(|&(_, v)| v).or(*running),
            Acc::Edge {
                last,
                queue,
                running,
            } => {
                let q = if *last { queue.back() } else { queue.front() };
                q.map(|&(_, v)| v).or(*running)
            }
        }
    }

    /// The scalar state for a snapshot.
    fn fields(&self) -> AccFields {
        let d = AccFields::default();
        match self {
            Acc::Count { n } => AccFields { n: Some(*n), ..d },
            Acc::SumInt { sum, n } => AccFields {
                n: Some(*n),
                a: Some(*sum),
                ..d
            },
            Acc::SumFloat { sum, n } => AccFields {
                n: Some(*n),
                fa: Some(*sum),
                ..d
            },
            Acc::VarInt { sum, sumsq, n } => AccFields {
                n: Some(*n),
                a: Some(*sum),
                b: Some(*sumsq),
                ..d
            },
            Acc::VarFloat { sum, sumsq, n } => AccFields {
                n: Some(*n),
                fa: Some(*sum),
                fb: Some(*sumsq),
                ..d
            },
            Acc::Extreme { running, .. } | Acc::Edge { running, .. } => {
                AccFields { a: *running, ..d }
            }
        }
    }

    /// Restores what [`Acc::fields`] wrote (queues are rebuilt from the frame).
    fn set_fields(&mut self, f: AccFields) {
        let n0 = f.n.unwrap_or(0);
        match self {
            Acc::Count { n } => *n = n0,
            Acc::SumInt { sum, n } => {
                *n = n0;
                *sum = f.a.unwrap_or(0);
            }
            Acc::SumFloat { sum, n } => {
                *n = n0;
                *sum = f.fa.unwrap_or(0.0);
            }
            Acc::VarInt { sum, sumsq, n } => {
                *n = n0;
                *sum = f.a.unwrap_or(0);
                *sumsq = f.b.unwrap_or(0);
            }
            Acc::VarFloat { sum, sumsq, n } => {
                *n = n0;
                *sum = f.fa.unwrap_or(0.0);
                *sumsq = f.fb.unwrap_or(0.0);
            }
            Acc::Extreme { running, .. } | Acc::Edge { running, .. } => *running = f.a,
        }
    }

    /// True for the accumulators whose state is their queue.
    fn is_queue(&self) -> bool {
        matches!(self, Acc::Extreme { .. } | Acc::Edge { .. })
    }
}

/// Flink's integer variance: Calcite expands `STDDEV_POP(x)` over a window
/// to `POWER((SUM(x * x) - SUM(x) * SUM(x) / COUNT(x)) / COUNT(x), .5)`
/// evaluated in the type of `x` (integer division, narrowing at each step),
/// then cast back to that type.
fn int_variance(plan: &AggPlan, sum: i64, sumsq: i64, n: i64) -> Option<i64> {
    if n == 0 {
        return None;
    }
    let w = |v: i64| plan.num.wrap(v);
    let count = w(n);
    let sum = w(sum);
    let sum_squared = w(sum.wrapping_mul(sum));
    if count == 0 {
        return None; // the count narrowed to zero: Java would fail here
    }
    let diff = w(w(sumsq).wrapping_sub(w(sum_squared.wrapping_div(count))));
    let denominator = match plan.function {
        OverFunction::VarPop | OverFunction::StddevPop => count,
        _ if n == 1 => return None,
        _ => n - 1,
    };
    if denominator == 0 {
        return None;
    }
    let var = w(diff.wrapping_div(denominator));
    match plan.function {
        OverFunction::StddevPop | OverFunction::StddevSamp => {
            let root = (var as f64).powf(0.5);
            Some(w(match plan.num {
                Num::Int {
                    bits: 8,
                    signed: true,
                    ..
                } => root as i8 as i64,
                Num::Int {
                    bits: 16,
                    signed: true,
                    ..
                } => root as i16 as i64,
                Num::Int {
                    bits: 32,
                    signed: true,
                    ..
                } => root as i32 as i64,
                _ => root as i64,
            }))
        }
        _ => Some(var),
    }
}

/// The state of one partition key.
#[derive(Debug, Default)]
struct OverKey {
    /// Times of the rows in the frame (bounded frames), oldest first.
    times: VecDeque<i64>,
    /// Per argument column, the values of the rows in the frame.
    values: Vec<VecDeque<Option<i64>>>,
    /// Position of the oldest row in the frame (positions count rows).
    front_pos: u64,
    /// One accumulator per aggregate.
    accs: Vec<Acc>,
    /// Time of the last rows processed (Flink's `lastTriggeringTs`).
    last_processed: Option<i64>,
    /// Rows waiting for the watermark.
    pending: u32,
    /// When the state may be dropped (see [`OverAggregate`]).
    expires_at: Option<i64>,
}

impl OverKey {
    fn next_pos(&self) -> u64 {
        self.front_pos + self.times.len() as u64
    }
}

/// Event-time `OVER` aggregation: each input row is emitted once, when the
/// watermark reaches its time, with the aggregates over its frame appended.
///
/// Flink semantics (`RowTimeRangeBoundedPrecedingFunction`,
/// `RowTimeRowsBoundedPrecedingFunction`,
/// `AbstractRowTimeUnboundedPrecedingOver` and its RANGE/ROWS subclasses):
///
/// - Rows are processed per partition in time order when the watermark
///   reaches their time; rows of equal time in arrival order. Output rows
///   come in order of time (then arrival) across partitions, before the
///   watermark is forwarded; at end of input everything held is processed.
/// - `RANGE`: rows of equal time (peers) are all in each other's frame and
///   get the same values; `RANGE … PRECEDING` holds the rows with time in
///   `[t - interval, t]`. `ROWS n PRECEDING`: each row gets its own value
///   over itself and the `n` rows before it.
/// - Late rows are dropped and counted in `late_rows_dropped`. For bounded
///   frames Flink compares a row with the time its partition last
///   processed (a row behind the watermark but after that time is still
///   processed, with the next watermark); for unbounded frames with the
///   watermark (a row at or below it is late).
/// - State: a frame keeps only its rows' argument values; rows leave it when
///   they fall out of the range. `RANGE … PRECEDING` drops a partition's
///   state with Flink's cleanup timer (the watermark reaching `t + interval
///   * 1.5 + 1` after its last row at `t`; a row of the partition arriving
///   later starts afresh). `ROWS` and unbounded frames keep it until
///   [`OverAggregateConfig::state_ttl_ms`] passes.
///
/// Differences from Flink: times are not compared with Flink's default of 0
/// for a fresh partition (Flink drops rows with time `<= 0` there); FLOAT
/// aggregates are computed in DOUBLE and cast; integer `AVG` divides the
/// 64-bit sum (equal unless the narrow sum overflows).
pub struct OverAggregate {
    config: OverAggregateConfig,
    output_schema: SchemaRef,
    plans: Vec<AggPlan>,
    /// Distinct argument columns and how their values are held.
    arg_columns: Vec<(usize, Domain)>,
    /// Whether the frame retracts rows.
    retracts: bool,
    /// The TTL of ROWS / unbounded frames (ms, > 0).
    ttl: Option<i64>,
    keys: KeyMap<OverKey>,
    store: RowStore,
    /// Rows waiting for the watermark: (time, arrival, (key id, row)).
    pending: TimerQueue<(u32, RowRef)>,
    /// Partition cleanup: (time, key id, key id).
    expiry: TimerQueue<u32>,
    watermark: Option<EventTime>,
    next_seq: u64,
    warned_null_time: bool,
}

impl fmt::Debug for OverAggregate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OverAggregate")
            .field("frame", &self.config.frame)
            .field("aggregates", &self.config.aggregates)
            .field("partitions", &self.keys.len())
            .field("pending_rows", &self.store.len())
            .field("watermark", &self.watermark)
            .finish()
    }
}

impl OverAggregateConfig {
    /// Checks columns, argument types and the frame.
    pub fn validate(&self) -> Result<()> {
        self.plan().map(|_| ())
    }

    /// The output schema: the input fields, then one field per aggregate
    /// (`COUNT`: `BIGINT NOT NULL`; the others: the argument's type, nullable).
    pub fn output_schema(&self) -> Result<SchemaRef> {
        let (_, _, fields) = self.plan()?;
        let mut all: Vec<Field> = self
            .input_schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        all.extend(fields);
        Ok(Arc::new(Schema::new(all)))
    }

    #[allow(clippy::type_complexity)]
    fn plan(&self) -> Result<(Vec<AggPlan>, Vec<(usize, Domain)>, Vec<Field>)> {
        check_time_column(&self.input_schema, self.time_column, WHAT)?;
        for &k in &self.partition_keys {
            field(&self.input_schema, k, WHAT, "PARTITION BY column")?;
        }
        if let OverFrame::RangePreceding { preceding_ms } = self.frame {
            if preceding_ms < 0 {
                return Err(WeirError::Plan(format!(
                    "{WHAT}: RANGE interval must not be negative, got {preceding_ms} ms"
                )));
            }
        }
        if let Some(ttl) = self.state_ttl_ms {
            if ttl < 0 {
                return Err(WeirError::Plan(format!(
                    "{WHAT}: state TTL must not be negative, got {ttl} ms"
                )));
            }
        }
        let mut plans = Vec::new();
        let mut columns: Vec<(usize, Domain)> = Vec::new();
        let mut fields = Vec::new();
        for call in &self.aggregates {
            let name = call.function.name();
            let Some(column) = call.column else {
                if call.function != OverFunction::Count {
                    return Err(WeirError::Plan(format!("{WHAT}: {name} needs an argument")));
                }
                plans.push(AggPlan {
                    function: call.function,
                    slot: None,
                    num: Num::Other,
                    float_out: false,
                });
                fields.push(Field::new(&call.name, DataType::Int64, false));
                continue;
            };
            let arg = field(&self.input_schema, column, WHAT, "aggregate argument")?;
            let num = Num::of(arg.data_type());
            let numeric = matches!(
                num,
                Num::Int {
                    timestamp: false,
                    ..
                } | Num::Float
            );
            let ordered = !matches!(num, Num::Other);
            let ok = match call.function {
                OverFunction::Count => true,
                OverFunction::Min
                | OverFunction::Max
                | OverFunction::FirstValue
                | OverFunction::LastValue => ordered,
                _ => numeric,
            };
            if !ok {
                return Err(WeirError::Plan(format!(
                    "{WHAT}: {name}({}) of type {} is not supported",
                    arg.name(),
                    arg.data_type()
                )));
            }
            let domain = match (&num, call.function) {
                (_, OverFunction::Count) => Domain::Validity,
                (Num::Float, _) => Domain::Float,
                _ => Domain::Int,
            };
            // A column read as values serves COUNT too.
            let slot = match columns.iter().position(|&(c, _)| c == column) {
                Some(i) => {
                    if columns[i].1 == Domain::Validity && domain != Domain::Validity {
                        columns[i].1 = domain;
                    }
                    i
                }
                None => {
                    columns.push((column, domain));
                    columns.len() - 1
                }
            };
            let (out_type, nullable) = match call.function {
                OverFunction::Count => (DataType::Int64, false),
                _ => (arg.data_type().clone(), true),
            };
            fields.push(Field::new(&call.name, out_type, nullable));
            plans.push(AggPlan {
                function: call.function,
                slot: Some(slot),
                float_out: call.function != OverFunction::Count && num == Num::Float,
                num,
            });
        }
        Ok((plans, columns, fields))
    }
}

/// Reads the argument columns of a batch: per column, per row, the value
/// (`Some(0)` for non-NULL in validity-only columns).
fn read_args(batch: &RecordBatch, columns: &[(usize, Domain)]) -> Result<Vec<Vec<Option<i64>>>> {
    columns
        .iter()
        .map(|&(c, domain)| {
            let array = batch.columns().get(c).ok_or_else(|| {
                WeirError::Execution(format!("aggregate argument column {c} is out of range"))
            })?;
            Ok(match domain {
                Domain::Validity => (0..array.len())
                    .map(|i| array.is_valid(i).then_some(0))
                    .collect(),
                Domain::Int => {
                    let a = cast(array, &DataType::Int64)?;
                    let a = a.as_primitive::<Int64Type>();
                    a.iter().collect()
                }
                Domain::Float => {
                    let a = cast(array, &DataType::Float64)?;
                    let a = a.as_primitive::<Float64Type>();
                    a.iter().map(|v| v.map(|f| f.to_bits() as i64)).collect()
                }
            })
        })
        .collect()
}

/// Converts i64 values to the primitive type `T` with Java's narrowing.
fn narrow<T: ArrowPrimitiveType>(values: &Int64Array, f: impl Fn(i64) -> T::Native) -> ArrayRef {
    let out: PrimitiveArray<T> = unary(values, f);
    Arc::new(out)
}

/// Builds an aggregate's output column of type `t` from held values.
fn output_column(values: Vec<Option<i64>>, float: bool, t: &DataType) -> Result<ArrayRef> {
    if float {
        let a = Float64Array::from_iter(values.into_iter().map(|v| v.map(as_f64)));
        return Ok(match t {
            DataType::Float32 => {
                let out: PrimitiveArray<Float32Type> = unary(&a, |v| v as f32);
                Arc::new(out)
            }
            _ => Arc::new(a),
        });
    }
    let a = Int64Array::from(values);
    Ok(match t {
        DataType::Int64 => Arc::new(a),
        DataType::Int32 => narrow::<Int32Type>(&a, |v| v as i32),
        DataType::Int16 => narrow::<Int16Type>(&a, |v| v as i16),
        DataType::Int8 => narrow::<Int8Type>(&a, |v| v as i8),
        DataType::UInt32 => narrow::<UInt32Type>(&a, |v| v as u32),
        DataType::UInt16 => narrow::<UInt16Type>(&a, |v| v as u16),
        DataType::UInt8 => narrow::<UInt8Type>(&a, |v| v as u8),
        other => cast(&a, other)?,
    })
}

impl OverAggregate {
    /// An OVER aggregation; fails for invalid columns, frames or argument
    /// types.
    pub fn try_new(config: OverAggregateConfig) -> Result<Self> {
        let (plans, arg_columns, _) = config.plan()?;
        let output_schema = config.output_schema()?;
        let retracts = config.frame.is_bounded();
        let ttl = if matches!(config.frame, OverFrame::RangePreceding { .. }) {
            None
        } else {
            config.state_ttl_ms.filter(|t| *t > 0)
        };
        Ok(Self {
            keys: KeyMap::try_new(&config.input_schema, config.partition_keys.clone(), WHAT)?,
            store: RowStore::new(config.input_schema.clone()),
            pending: TimerQueue::new(),
            expiry: TimerQueue::new(),
            watermark: None,
            next_seq: 0,
            warned_null_time: false,
            output_schema,
            plans,
            arg_columns,
            retracts,
            ttl,
            config,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &OverAggregateConfig {
        &self.config
    }

    /// The output schema (see [`OverAggregateConfig::output_schema`]).
    pub fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    /// Number of partitions with state.
    pub fn partitions(&self) -> usize {
        self.keys.len()
    }

    /// Number of rows waiting for the watermark.
    pub fn pending_rows(&self) -> usize {
        self.store.len()
    }

    fn new_key(&self) -> OverKey {
        OverKey {
            values: if self.retracts {
                vec![VecDeque::new(); self.arg_columns.len()]
            } else {
                Vec::new()
            },
            accs: self.plans.iter().map(Acc::new).collect(),
            ..OverKey::default()
        }
    }

    /// Holds the rows of `batch` that are not late; returns (late, null time).
    fn hold(&mut self, batch: &RecordBatch, check_late: bool) -> Result<(u64, u64)> {
        let times = Times::read(batch, self.config.time_column)?;
        let keys = self.keys.encode(batch)?;
        let mut rows = Vec::with_capacity(batch.num_rows());
        let mut accepted = Vec::with_capacity(batch.num_rows());
        let (mut late, mut nulls) = (0u64, 0u64);
        let bounded = self.config.frame.is_bounded();
        for row in 0..batch.num_rows() {
            let Some(ts) = times.get(row) else {
                nulls += 1;
                continue;
            };
            if check_late && !bounded && self.watermark.is_some_and(|w| ts <= w) {
                late += 1;
                continue;
            }
            let key = keys.key(row);
            let id = match self.keys.get_id(key) {
                Some(id) => id,
                None => {
                    let fresh = self.new_key();
                    self.keys.get_or_insert(key, || fresh).0
                }
            };
            let state = self.keys.value_mut(id)?;
            if check_late && bounded && state.last_processed.is_some_and(|l| ts <= l) {
                late += 1;
                continue;
            }
            state.pending += 1;
            if let OverFrame::RangePreceding { preceding_ms } = self.config.frame {
                // Flink's registerCleanupTimer.
                let min_cleanup = ts.saturating_add(preceding_ms).saturating_add(1);
                if state.expires_at.is_none_or(|c| c < min_cleanup) {
                    let at = ts
                        .saturating_add(preceding_ms)
                        .saturating_add(preceding_ms / 2)
                        .saturating_add(1);
                    state.expires_at = Some(at);
                    self.expiry.push(at, u64::from(id), id);
                }
            }
            rows.push(row as u32);
            accepted.push((ts, id));
        }
        let refs = self.store.insert(batch, &rows)?;
        for (r, (ts, id)) in refs.into_iter().zip(accepted) {
            self.pending.push(ts, self.next_seq, (id, r));
            self.next_seq += 1;
        }
        Ok((late, nulls))
    }

    /// Processes the held rows with time `<= limit` and emits them.
    fn fire(&mut self, limit: EventTime, out: &mut Collector) -> Result<()> {
        let mut ready: Vec<(i64, u32)> = Vec::new();
        let mut refs: Vec<RowRef> = Vec::new();
        while let Some((ts, _, (id, r))) = self.pending.pop_until(limit) {
            ready.push((ts, id));
            refs.push(r);
        }
        if ready.is_empty() {
            return Ok(());
        }
        let batch = self.store.gather_stored(refs.iter().copied())?;
        for r in refs {
            self.store.release(r)?;
        }
        let args = read_args(&batch, &self.arg_columns)?;
        let n = ready.len();
        let mut outputs: Vec<Vec<Option<i64>>> = vec![vec![None; n]; self.plans.len()];
        let mut group: Vec<usize> = Vec::new();
        let mut order: Vec<usize> = Vec::new();
        let mut start = 0;
        while start < n {
            let ts = ready[start].0;
            let mut end = start + 1;
            while end < n && ready[end].0 == ts {
                end += 1;
            }
            if self.config.frame.is_range() {
                // Peers: all rows of a partition with this time, together.
                order.clear();
                order.extend(start..end);
                if order.len() > 1 {
                    order.sort_by_key(|&i| ready[i].1);
                }
                let mut g = 0;
                while g < order.len() {
                    let id = ready[order[g]].1;
                    group.clear();
                    while g < order.len() && ready[order[g]].1 == id {
                        group.push(order[g]);
                        g += 1;
                    }
                    self.process_peers(id, ts, &group, &args, &mut outputs)?;
                }
            } else {
                for (i, &(_, id)) in ready.iter().enumerate().take(end).skip(start) {
                    group.clear();
                    group.push(i);
                    self.process_peers(id, ts, &group, &args, &mut outputs)?;
                }
            }
            start = end;
        }
        let mut columns = batch.columns().to_vec();
        let agg_fields = &self.output_schema.fields()[batch.num_columns()..];
        for ((values, plan), f) in outputs.into_iter().zip(&self.plans).zip(agg_fields) {
            columns.push(output_column(values, plan.float_out, f.data_type())?);
        }
        out.collect(RecordBatch::try_new(self.output_schema.clone(), columns)?);
        Ok(())
    }

    /// Adds the rows `group` (of one partition, time `ts`) to its frame,
    /// retracting what leaves it, and writes their aggregate values.
    fn process_peers(
        &mut self,
        id: u32,
        ts: i64,
        group: &[usize],
        args: &[Vec<Option<i64>>],
        outputs: &mut [Vec<Option<i64>>],
    ) -> Result<()> {
        let frame = self.config.frame;
        let retracts = self.retracts;
        let plans = &self.plans;
        let ttl = self.ttl;
        let key = self.keys.value_mut(id)?;
        let arg = |plan: &AggPlan, row: usize| -> Option<i64> {
            match plan.slot {
                Some(s) => args[s][row],
                None => Some(0),
            }
        };
        if let OverFrame::RangePreceding { preceding_ms } = frame {
            while let Some(&old) = key.times.front() {
                if i128::from(ts) - i128::from(old) <= i128::from(preceding_ms) {
                    break;
                }
                retract_front(key, plans);
            }
        }
        for &row in group {
            if let OverFrame::RowsPreceding { preceding } = frame {
                if key.times.len() as u64 > preceding {
                    retract_front(key, plans);
                }
            }
            let pos = key.next_pos();
            for (acc, plan) in key.accs.iter_mut().zip(plans) {
                acc.accumulate(retracts, pos, arg(plan, row));
            }
            if retracts {
                key.times.push_back(ts);
                for (s, col) in key.values.iter_mut().enumerate() {
                    col.push_back(args[s][row]);
                }
            }
            if !frame.is_range() {
                for (i, (acc, plan)) in key.accs.iter().zip(plans).enumerate() {
                    outputs[i][row] = acc.value(plan);
                }
            }
        }
        if frame.is_range() {
            for (i, (acc, plan)) in key.accs.iter().zip(plans).enumerate() {
                let v = acc.value(plan);
                for &row in group {
                    outputs[i][row] = v;
                }
            }
        }
        key.last_processed = Some(ts);
        key.pending = key.pending.saturating_sub(group.len() as u32);
        if let Some(ttl) = ttl {
            let at = ts.saturating_add(ttl).saturating_add(1);
            key.expires_at = Some(at);
            self.expiry.push(at, u64::from(id), id);
        }
        Ok(())
    }

    /// Drops partitions whose cleanup time the watermark reached.
    fn expire(&mut self, w: EventTime) {
        while let Some((at, _, id)) = self.expiry.pop_until(w) {
            if let Some(key) = self.keys.get(id) {
                if key.expires_at == Some(at) && key.pending == 0 {
                    self.keys.remove(id);
                }
            }
        }
    }
}

/// Removes the oldest row of a partition's frame.
fn retract_front(key: &mut OverKey, plans: &[AggPlan]) {
    let pos = key.front_pos;
    if key.times.pop_front().is_none() {
        return;
    }
    let OverKey { values, accs, .. } = key;
    for (acc, plan) in accs.iter_mut().zip(plans) {
        let v = match plan.slot {
            Some(s) => values.get(s).and_then(|c| c.front().copied().flatten()),
            None => Some(0),
        };
        acc.retract(pos, v);
    }
    for c in values.iter_mut() {
        c.pop_front();
    }
    key.front_pos += 1;
}

impl Operator for OverAggregate {
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        _out: &mut Collector,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if let Some(w) = ctx.watermark {
            advance_watermark(&mut self.watermark, w);
        }
        let (late, nulls) = self.hold(&batch, true)?;
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
        let w = advance_watermark(&mut self.watermark, watermark);
        self.fire(w, out)?;
        self.expire(w);
        out.emit_watermark(watermark);
        Ok(())
    }

    fn on_end(&mut self, _ctx: &mut OperatorContext, out: &mut Collector) -> Result<()> {
        self.fire(EventTime::MAX, out)
    }

    fn snapshot(&mut self) -> Result<OperatorState> {
        let mut state = OperatorState::empty();
        put_time_meta(&mut state, &[("watermark", self.watermark)])?;
        let ids: Vec<u32> = self.keys.iter().map(|(id, _)| id).collect();
        let keys: Vec<&OverKey> = ids.iter().filter_map(|&id| self.keys.get(id)).collect();
        let mut columns: Vec<(String, ArrayRef)> = vec![
            (
                "last_processed".into(),
                Arc::new(Int64Array::from_iter(keys.iter().map(|k| k.last_processed))),
            ),
            (
                "expires_at".into(),
                Arc::new(Int64Array::from_iter(keys.iter().map(|k| k.expires_at))),
            ),
            (
                "front_pos".into(),
                Arc::new(UInt64Array::from_iter_values(
                    keys.iter().map(|k| k.front_pos),
                )),
            ),
        ];
        for i in 0..self.plans.len() {
            let fields: Vec<_> = keys.iter().map(|k| k.accs[i].fields()).collect();
            columns.push((
                format!("acc{i}_n"),
                Arc::new(Int64Array::from_iter(fields.iter().map(|f| f.n))),
            ));
            columns.push((
                format!("acc{i}_a"),
                Arc::new(Int64Array::from_iter(fields.iter().map(|f| f.a))),
            ));
            columns.push((
                format!("acc{i}_b"),
                Arc::new(Int64Array::from_iter(fields.iter().map(|f| f.b))),
            ));
            columns.push((
                format!("acc{i}_fa"),
                Arc::new(Float64Array::from_iter(fields.iter().map(|f| f.fa))),
            ));
            columns.push((
                format!("acc{i}_fb"),
                Arc::new(Float64Array::from_iter(fields.iter().map(|f| f.fb))),
            ));
        }
        let named: Vec<(&str, ArrayRef)> = columns
            .iter()
            .map(|(n, c)| (n.as_str(), c.clone()))
            .collect();
        state.put(
            "keys",
            with_keys(self.keys.state_fields(), self.keys.decode(&ids)?, named)?,
        )?;
        // The frames: one row per held row, partitions in key-table order.
        let mut frame_ids = Vec::new();
        let mut frame_times = Vec::new();
        let mut frame_values: Vec<Vec<Option<i64>>> = vec![Vec::new(); self.arg_columns.len()];
        for (&id, k) in ids.iter().zip(&keys) {
            frame_ids.extend(std::iter::repeat_n(id, k.times.len()));
            frame_times.extend(k.times.iter().copied());
            for (s, col) in k.values.iter().enumerate() {
                frame_values[s].extend(col.iter().copied());
            }
        }
        let value_names: Vec<String> = (0..self.arg_columns.len())
            .map(|s| format!("arg{s}"))
            .collect();
        let mut frame_columns: Vec<(&str, ArrayRef)> =
            vec![("ts", Arc::new(Int64Array::from(frame_times)))];
        for (name, values) in value_names.iter().zip(frame_values) {
            frame_columns.push((name.as_str(), Arc::new(Int64Array::from(values))));
        }
        state.put(
            "frames",
            with_keys(
                self.keys.state_fields(),
                self.keys.decode(&frame_ids)?,
                frame_columns,
            )?,
        )?;
        let mut pending: Vec<(i64, u64, (u32, RowRef))> = self.pending.entries().collect();
        pending.sort_by_key(|e| (e.0, e.1));
        state.put(
            "pending",
            self.store
                .gather_stored(pending.into_iter().map(|e| e.2 .1))?,
        )?;
        Ok(state)
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        if state.is_empty() {
            return Ok(());
        }
        [self.watermark] = read_time_meta(&state, ["watermark"])?;
        let table = state.require("keys")?;
        let last = int64_column(table, "last_processed")?;
        let expires = int64_column(table, "expires_at")?;
        let front = uint64_column(table, "front_pos")?;
        let mut acc_columns = Vec::new();
        for i in 0..self.plans.len() {
            acc_columns.push((
                int64_column(table, &format!("acc{i}_n"))?,
                int64_column(table, &format!("acc{i}_a"))?,
                int64_column(table, &format!("acc{i}_b"))?,
                float64_column(table, &format!("acc{i}_fa"))?,
                float64_column(table, &format!("acc{i}_fb"))?,
            ));
        }
        let encoded = self.keys.encode_state(table)?;
        for row in 0..table.num_rows() {
            let mut key = self.new_key();
            key.last_processed = opt_i64(last, row);
            key.expires_at = opt_i64(expires, row);
            key.front_pos = front.value(row);
            for (acc, (n, a, b, fa, fb)) in key.accs.iter_mut().zip(&acc_columns) {
                acc.set_fields(AccFields {
                    n: opt_i64(n, row),
                    a: opt_i64(a, row),
                    b: opt_i64(b, row),
                    fa: fa.is_valid(row).then(|| fa.value(row)),
                    fb: fb.is_valid(row).then(|| fb.value(row)),
                });
            }
            let expires_at = key.expires_at;
            let (id, _) = self.keys.get_or_insert(encoded.key(row), || key);
            if let Some(at) = expires_at {
                self.expiry.push(at, u64::from(id), id);
            }
        }
        let frames = state.require("frames")?;
        let times = int64_column(frames, "ts")?;
        let values = (0..self.arg_columns.len())
            .map(|s| int64_column(frames, &format!("arg{s}")))
            .collect::<Result<Vec<_>>>()?;
        let encoded = self.keys.encode_state(frames)?;
        let plans = self.plans.clone();
        for row in 0..frames.num_rows() {
            let id = self.keys.get_id(encoded.key(row)).ok_or_else(|| {
                WeirError::State("a frame row belongs to a partition missing from 'keys'".into())
            })?;
            let key = self.keys.value_mut(id)?;
            let pos = key.next_pos();
            key.times.push_back(times.value(row));
            for (s, col) in key.values.iter_mut().enumerate() {
                col.push_back(opt_i64(values[s], row));
            }
            for (acc, plan) in key.accs.iter_mut().zip(&plans) {
                if acc.is_queue() {
                    let v = match plan.slot {
                        Some(s) => opt_i64(values[s], row),
                        None => Some(0),
                    };
                    acc.accumulate(true, pos, v);
                }
            }
        }
        let pending = state.require("pending")?.clone();
        let pending = pending
            .with_schema(self.config.input_schema.clone())
            .map_err(|e| WeirError::State(format!("state table 'pending': {e}")))?;
        self.hold(&pending, false)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{self, rows_of, Event, Harness, Step};
    use arrow::array::{Float64Array, Int32Array, StringArray, TimestampMillisecondArray};
    use arrow::datatypes::TimeUnit;
    use OverFunction::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(TimeUnit::Millisecond, None), true),
            Field::new("k", DataType::Utf8, true),
            Field::new("v", DataType::Int64, true),
            Field::new("d", DataType::Float64, true),
            Field::new("i", DataType::Int32, true),
        ]))
    }

    type Row<'a> = (i64, &'a str, Option<i64>, Option<f64>);

    fn input(rows: &[Row]) -> RecordBatch {
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
                Arc::new(Float64Array::from(
                    rows.iter().map(|r| r.3).collect::<Vec<_>>(),
                )),
                Arc::new(Int32Array::from(
                    rows.iter()
                        .map(|r| r.2.map(|v| v as i32))
                        .collect::<Vec<_>>(),
                )),
            ],
        )
        .expect("batch")
    }

    /// Rows `(ts, k, v)` with `d = v` and `i = v`.
    fn ints(rows: &[(i64, &str, i64)]) -> RecordBatch {
        let rows: Vec<Row> = rows
            .iter()
            .map(|&(t, k, v)| (t, k, Some(v), Some(v as f64)))
            .collect();
        input(&rows)
    }

    fn config(frame: OverFrame, aggregates: Vec<OverAggregateCall>) -> OverAggregateConfig {
        OverAggregateConfig {
            input_schema: schema(),
            partition_keys: vec![1],
            time_column: 0,
            frame,
            aggregates,
            state_ttl_ms: None,
        }
    }

    fn call(f: OverFunction, column: usize) -> OverAggregateCall {
        OverAggregateCall::new(f, column, format!("{}_{column}", f.name().to_lowercase()))
    }

    fn op(c: OverAggregateConfig) -> Harness<OverAggregate> {
        Harness::new(OverAggregate::try_new(c).expect("operator"))
    }

    /// The aggregate columns only (after the 5 input columns), with ts and k.
    fn aggs_of(batches: &[RecordBatch]) -> Vec<String> {
        rows_of(batches)
            .into_iter()
            .map(|r| {
                let f: Vec<&str> = r.split(',').collect();
                let mut out = vec![f[0], f[1]];
                out.extend(&f[5..]);
                out.join(",")
            })
            .collect()
    }

    fn basic() -> Vec<OverAggregateCall> {
        vec![
            OverAggregateCall::count_star("c"),
            call(Sum, 2),
            call(Min, 2),
            call(Max, 2),
            call(Avg, 2),
        ]
    }

    fn data() -> RecordBatch {
        ints(&[
            (20, "a", 2),
            (10, "a", 1),
            (12, "b", 5),
            (15, "a", 4),
            (20, "a", 7),
            (31, "a", 3),
        ])
    }

    #[test]
    fn range_preceding_includes_the_interval_bounds_and_all_peers() {
        let mut h = op(config(
            OverFrame::RangePreceding { preceding_ms: 10 },
            basic(),
        ));
        assert_eq!(
            h.op.output_schema()
                .fields()
                .iter()
                .skip(5)
                .map(|f| f.data_type().clone())
                .collect::<Vec<_>>(),
            vec![DataType::Int64; 5]
        );
        h.batch(data()).expect("batch");
        assert!(h.take_events().is_empty(), "rows wait for the watermark");
        h.watermark(20).expect("wm");
        let events = h.take_events();
        assert_eq!(events.last(), Some(&Event::Watermark(20)));
        let Event::Rows(rows) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(rows[0], "10,a,1,1.0,1,1,1,1,1,1");
        h.end().expect("end");
        let rest = aggs_of(&h.take_batches());
        assert_eq!(rest, vec!["31,a,1,3,3,3,3"]);
        let mut h = op(config(
            OverFrame::RangePreceding { preceding_ms: 10 },
            basic(),
        ));
        h.batch(data()).expect("batch");
        h.end().expect("end");
        assert_eq!(
            aggs_of(&h.take_batches()),
            vec![
                "10,a,1,1,1,1,1",
                "12,b,1,5,5,5,5",
                "15,a,2,5,1,4,2",
                "20,a,4,14,1,7,3",
                "20,a,4,14,1,7,3",
                "31,a,1,3,3,3,3",
            ]
        );
    }

    #[test]
    fn rows_preceding_counts_rows_and_gives_peers_their_own_values() {
        let mut h = op(config(OverFrame::RowsPreceding { preceding: 1 }, basic()));
        h.batch(data()).expect("batch");
        h.end().expect("end");
        assert_eq!(
            aggs_of(&h.take_batches()),
            vec![
                "10,a,1,1,1,1,1",
                "12,b,1,5,5,5,5",
                "15,a,2,5,1,4,2",
                "20,a,2,6,2,4,3",
                "20,a,2,9,2,7,4",
                "31,a,2,10,3,7,5",
            ]
        );
    }

    #[test]
    fn unbounded_frames_range_and_rows() {
        let mut h = op(config(OverFrame::RangeUnbounded, basic()));
        h.batch(data()).expect("batch");
        h.end().expect("end");
        assert_eq!(
            aggs_of(&h.take_batches()),
            vec![
                "10,a,1,1,1,1,1",
                "12,b,1,5,5,5,5",
                "15,a,2,5,1,4,2",
                "20,a,4,14,1,7,3",
                "20,a,4,14,1,7,3",
                "31,a,5,17,1,7,3",
            ]
        );
        let mut h = op(config(OverFrame::RowsUnbounded, basic()));
        h.batch(data()).expect("batch");
        h.end().expect("end");
        assert_eq!(
            aggs_of(&h.take_batches()),
            vec![
                "10,a,1,1,1,1,1",
                "12,b,1,5,5,5,5",
                "15,a,2,5,1,4,2",
                "20,a,3,7,1,4,2",
                "20,a,4,14,1,7,3",
                "31,a,5,17,1,7,3",
            ]
        );
    }

    #[test]
    fn min_and_max_follow_retraction_over_a_long_frame() {
        let values = [5, 3, 8, 1, 9, 2, 7, 7, 0, 6, 4, 10];
        let rows: Vec<(i64, &str, i64)> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| (i as i64 + 1, "a", v))
            .collect();
        let mut h = op(config(
            OverFrame::RowsPreceding { preceding: 3 },
            vec![
                call(Min, 2),
                call(Max, 2),
                call(FirstValue, 2),
                call(LastValue, 2),
            ],
        ));
        h.batch(ints(&rows)).expect("batch");
        h.end().expect("end");
        let got = aggs_of(&h.take_batches());
        for (i, line) in got.iter().enumerate() {
            let frame = &values[i.saturating_sub(3)..=i];
            let expected = format!(
                "{},a,{},{},{},{}",
                i + 1,
                frame.iter().min().expect("min"),
                frame.iter().max().expect("max"),
                frame[0],
                frame[frame.len() - 1]
            );
            assert_eq!(line, &expected);
        }
    }

    #[test]
    fn nulls_are_skipped_by_every_function_but_count_star() {
        let mut h = op(config(
            OverFrame::RowsPreceding { preceding: 2 },
            vec![
                OverAggregateCall::count_star("c"),
                call(Count, 2),
                call(Sum, 2),
                call(FirstValue, 2),
                call(LastValue, 2),
                call(StddevSamp, 3),
            ],
        ));
        h.batch(input(&[
            (1, "a", None, None),
            (2, "a", Some(4), Some(4.0)),
            (3, "a", None, None),
            (4, "a", Some(6), Some(6.0)),
            (5, "a", None, None),
            (6, "a", None, None),
        ]))
        .expect("batch");
        h.end().expect("end");
        assert_eq!(
            aggs_of(&h.take_batches()),
            vec![
                "1,a,1,0,null,null,null,null",
                "2,a,2,1,4,4,4,null",
                "3,a,3,1,4,4,4,null",
                "4,a,3,2,10,4,6,1.4142135623730951",
                "5,a,3,1,6,6,6,null",
                "6,a,3,1,6,6,6,null",
            ]
        );
    }

    #[test]
    fn variance_of_integers_uses_flinks_integer_arithmetic() {
        let aggs = vec![
            call(VarPop, 2),
            call(VarSamp, 2),
            call(StddevPop, 2),
            call(StddevSamp, 2),
            call(VarPop, 3),
            call(VarSamp, 3),
            call(StddevPop, 3),
            call(StddevSamp, 3),
        ];
        let mut h = op(config(OverFrame::RowsUnbounded, aggs));
        let types: Vec<DataType> =
            h.op.output_schema()
                .fields()
                .iter()
                .skip(5)
                .map(|f| f.data_type().clone())
                .collect();
        assert_eq!(types[..4], vec![DataType::Int64; 4][..]);
        assert_eq!(types[4..], vec![DataType::Float64; 4][..]);
        h.batch(ints(&[(1, "a", 1), (2, "a", 2), (3, "a", 3), (4, "a", 4)]))
            .expect("batch");
        h.end().expect("end");
        assert_eq!(
            aggs_of(&h.take_batches()),
            vec![
                "1,a,0,null,0,null,0.0,null,0.0,null",
                "2,a,0,1,0,1,0.25,0.5,0.5,0.7071067811865476",
                "3,a,0,1,0,1,0.6666666666666666,1.0,0.816496580927726,1.0",
                "4,a,1,1,1,1,1.25,1.6666666666666667,1.118033988749895,1.2909944487358056",
            ]
        );
    }

    #[test]
    fn int_columns_keep_their_type_and_wrap_like_java() {
        let c = config(
            OverFrame::RowsUnbounded,
            vec![call(Sum, 4), call(Avg, 4), call(Max, 4)],
        );
        let mut h = op(c);
        let types: Vec<DataType> =
            h.op.output_schema()
                .fields()
                .iter()
                .skip(5)
                .map(|f| f.data_type().clone())
                .collect();
        assert_eq!(types, vec![DataType::Int32; 3]);
        h.batch(ints(&[
            (1, "a", 2_000_000_000),
            (2, "a", 2_000_000_000),
            (3, "b", -7),
            (4, "b", 0),
        ]))
        .expect("batch");
        h.end().expect("end");
        assert_eq!(
            aggs_of(&h.take_batches()),
            vec![
                "1,a,2000000000,2000000000,2000000000",
                "2,a,-294967296,2000000000,2000000000",
                "3,b,-7,-7,-7",
                "4,b,-7,-3,0",
            ]
        );
    }

    #[test]
    fn timestamps_min_max_and_unsupported_types() {
        let c = config(
            OverFrame::RangeUnbounded,
            vec![call(Min, 0), call(LastValue, 0), call(Count, 1)],
        );
        let mut h = op(c);
        assert_eq!(
            h.op.output_schema().field(5).data_type(),
            schema().field(0).data_type()
        );
        h.batch(ints(&[(7, "a", 1), (9, "a", 2)])).expect("batch");
        h.end().expect("end");
        assert_eq!(aggs_of(&h.take_batches()), vec!["7,a,7,7,1", "9,a,7,9,2"]);
        for bad in [call(Sum, 1), call(Min, 1), call(Avg, 0)] {
            assert!(OverAggregate::try_new(config(OverFrame::RangeUnbounded, vec![bad])).is_err());
        }
        let no_arg = OverAggregateCall {
            function: Sum,
            column: None,
            name: "s".into(),
        };
        assert!(OverAggregate::try_new(config(OverFrame::RangeUnbounded, vec![no_arg])).is_err());
        assert!(OverAggregate::try_new(config(
            OverFrame::RangePreceding { preceding_ms: -1 },
            basic()
        ))
        .is_err());
    }

    #[test]
    fn bounded_frames_drop_rows_at_or_before_the_partitions_last_processed_time() {
        let mut h = op(config(
            OverFrame::RangePreceding { preceding_ms: 100 },
            basic(),
        ));
        h.batch(ints(&[(10, "a", 1), (20, "a", 2)])).expect("batch");
        h.watermark(25).expect("wm");
        assert_eq!(
            aggs_of(&h.take_batches()),
            vec!["10,a,1,1,1,1,1", "20,a,2,3,1,2,1"]
        );
        // 20 is at a's last processed time: late. 22 is behind the watermark
        // but after it: processed with the next watermark. b is new: 5 is kept.
        h.batch(ints(&[(20, "a", 9), (22, "a", 3), (5, "b", 4)]))
            .expect("batch");
        assert_eq!(h.late_dropped(), 1);
        h.watermark(26).expect("wm");
        assert_eq!(
            h.take_events(),
            vec![
                Event::Rows(vec![
                    "5,b,4,4.0,4,1,4,4,4,4".into(),
                    "22,a,3,3.0,3,3,6,1,3,2".into()
                ]),
                Event::Watermark(26)
            ]
        );
    }

    #[test]
    fn unbounded_frames_drop_rows_at_or_before_the_watermark() {
        let mut h = op(config(OverFrame::RowsUnbounded, basic()));
        h.batch(ints(&[(10, "a", 1)])).expect("batch");
        h.watermark(15).expect("wm");
        h.take_events();
        h.batch(ints(&[(15, "a", 2), (12, "b", 2), (16, "a", 3)]))
            .expect("batch");
        assert_eq!(h.late_dropped(), 2);
        h.end().expect("end");
        assert_eq!(aggs_of(&h.take_batches()), vec!["16,a,2,4,1,3,2"]);
    }

    #[test]
    fn range_state_is_dropped_by_flinks_cleanup_timer() {
        let mut h = op(config(
            OverFrame::RangePreceding { preceding_ms: 10 },
            basic(),
        ));
        h.batch(ints(&[(100, "a", 1), (104, "a", 2), (103, "b", 1)]))
            .expect("batch");
        // a: cleanup at 100 + 10 + 5 + 1 = 116, not moved by 104 (104 + 11 <= 116).
        h.watermark(115).expect("wm");
        assert_eq!(h.op.partitions(), 2);
        h.watermark(116).expect("wm");
        assert_eq!(h.op.partitions(), 1);
        h.watermark(119).expect("wm");
        assert_eq!(h.op.partitions(), 0);
        h.take_events();
        // A fresh partition: an old row is accepted again (as in Flink).
        h.batch(ints(&[(101, "a", 5)])).expect("batch");
        h.watermark(120).expect("wm");
        assert_eq!(aggs_of(&h.take_batches()), vec!["101,a,1,5,5,5,5"]);
    }

    #[test]
    fn ttl_drops_idle_rows_and_unbounded_state() {
        let mut c = config(OverFrame::RowsUnbounded, basic());
        c.state_ttl_ms = Some(50);
        let mut h = op(c);
        h.batch(ints(&[(10, "a", 1)])).expect("batch");
        h.watermark(60).expect("wm");
        assert_eq!(h.op.partitions(), 1);
        h.watermark(61).expect("wm");
        assert_eq!(h.op.partitions(), 0);
        h.take_events();
        h.batch(ints(&[(70, "a", 2)])).expect("batch");
        h.end().expect("end");
        assert_eq!(aggs_of(&h.take_batches()), vec!["70,a,1,2,2,2,2"]);
    }

    #[test]
    fn output_is_in_time_order_across_partitions_and_batches() {
        let mut h = op(config(
            OverFrame::RowsUnbounded,
            vec![OverAggregateCall::count_star("c")],
        ));
        h.batch(ints(&[(5, "b", 0), (3, "a", 0)])).expect("batch");
        h.batch(ints(&[(4, "c", 0), (3, "b", 0), (6, "a", 0)]))
            .expect("batch");
        h.watermark(5).expect("wm");
        assert_eq!(
            aggs_of(&h.take_batches()),
            vec!["3,a,1", "3,b,1", "4,c,1", "5,b,2"]
        );
        h.end().expect("end");
        assert_eq!(aggs_of(&h.take_batches()), vec!["6,a,2"]);
    }

    #[test]
    fn snapshot_round_trip_gives_identical_output() {
        let aggs = vec![
            OverAggregateCall::count_star("c"),
            call(Count, 2),
            call(Sum, 2),
            call(Avg, 3),
            call(Min, 3),
            call(Max, 2),
            call(StddevSamp, 3),
            call(VarPop, 4),
            call(FirstValue, 2),
            call(LastValue, 3),
        ];
        let steps: Vec<Step> = vec![
            Ok(input(&[
                (10, "a", Some(1), Some(0.5)),
                (12, "b", None, Some(2.0)),
                (11, "a", Some(3), None),
                (30, "c", Some(9), Some(1.5)),
            ])),
            Ok(input(&[
                (11, "a", Some(2), Some(4.0)),
                (25, "b", Some(5), Some(-1.0)),
            ])),
            Err(11),
            Ok(input(&[
                (11, "a", Some(7), Some(7.0)),
                (15, "a", Some(8), Some(3.0)),
                (13, "b", Some(1), None),
                (26, "c", None, Some(2.5)),
            ])),
            Err(26),
            Ok(input(&[
                (27, "a", Some(4), Some(1.0)),
                (60, "b", Some(6), Some(6.0)),
                (40, "c", Some(2), Some(2.0)),
            ])),
            Err(45),
            Ok(input(&[
                (50, "a", Some(1), Some(1.0)),
                (90, "c", Some(3), Some(0.25)),
            ])),
        ];
        let frames = [
            OverFrame::RangePreceding { preceding_ms: 12 },
            OverFrame::RowsPreceding { preceding: 2 },
            OverFrame::RangeUnbounded,
            OverFrame::RowsUnbounded,
        ];
        for frame in frames {
            let mut c = config(frame, aggs.clone());
            c.state_ttl_ms = Some(20);
            let run = |cut: Option<usize>| {
                let make = || OverAggregate::try_new(c.clone()).expect("operator");
                let (events, h) = test_util::replay(make, &steps, cut);
                (events, h.late_dropped())
            };
            let (expected, late) = run(None);
            assert!(expected.len() >= 4, "{frame:?}: {expected:?}");
            for cut in 1..steps.len() {
                assert_eq!(
                    run(Some(cut)),
                    (expected.clone(), late),
                    "{frame:?} cut at {cut}"
                );
            }
        }
    }
}
