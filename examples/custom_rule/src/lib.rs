//! # A custom fraud rule in Rust, called from SQL
//!
//! This crate is what a data engineer writes to add a rule Weir does not
//! ship: **round-amount bursts**, a card making several purchases of whole
//! amounts (100.00, 250.00 …) within a short time, a pattern of testing
//! stolen cards or of gift-card fraud. It has three parts:
//!
//! 1. [`RoundBurst`], an implementation of the engine's
//!    [`Operator`] trait: event-time buffering under the watermark,
//!    per-card state, alerts, metrics, snapshot and restore.
//! 2. [`RoundBurstFunction`], a [`TableFunction`] that checks the SQL
//!    arguments and hands the planner the output schema, the key to
//!    partition on and a factory of operators, so SQL can call
//!    `ROUND_BURST(TABLE t, DESCRIPTOR(card), DESCRIPTOR(time),
//!    DESCRIPTOR(id), min_count, INTERVAL window)`.
//! 3. [`IsRound`], a DataFusion scalar UDF `is_round(amount, unit)`.
//!
//! [`plan_options`] registers both with the planner; `main` runs
//! `rule.sql` against the `transactions` generator and prints the alerts.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, TimestampMillisecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{
    DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use datafusion_common::ScalarValue;
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use weir_engine::message::EventTime;
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};
use weir_queries::table_function::{TableFunction, TableFunctionCall, TableFunctionPlan};
use weir_queries::PlanOptions;

/// Name of the metrics counter of emitted alerts (shown per operator in
/// `weir run`'s summary and readable with `OperatorMetrics::count`).
pub const BURSTS_COUNTER: &str = "round_bursts";

/// The round-amount-burst rule over rows that are already known to be
/// round (the SQL filters them with [`IsRound`]).
///
/// Per key (a BIGINT card id), in event-time order: the rule keeps the
/// event times of the key's rows within the last `window_ms` (both ends
/// included) and alerts on the row that brings their number to exactly
/// `min_count` (so once per burst; a new burst starts once the count has
/// fallen below `min_count` again).
///
/// Rows are buffered until the watermark passes them and processed in
/// event-time order (ties: by id), so out-of-order input gives the same
/// alerts as ordered input. A row at or below the watermark when it
/// arrives is late: dropped and counted in the `late` metric. At end of
/// input everything buffered is processed.
///
/// Output: `<key> BIGINT`, `round_count BIGINT`, `burst_start
/// TIMESTAMP(3)` (the earliest row of the burst), `event_time
/// TIMESTAMP(3)`, `<id> BIGINT` (the triggering row's id).
#[derive(Debug)]
pub struct RoundBurst {
    key: usize,
    time: usize,
    id: usize,
    min_count: usize,
    window_ms: i64,
    schema: SchemaRef,
    /// Rows waiting for the watermark: (time, id) by key.
    pending: Vec<(EventTime, i64, i64)>,
    /// Per key: the times of its rows within the window, oldest first.
    windows: HashMap<i64, VecDeque<EventTime>>,
    watermark: Option<EventTime>,
}

impl RoundBurst {
    /// The rule over an input of `input`, keyed by column `key`, with
    /// event time in `time` (TIMESTAMP(3)) and row ids in `id` (BIGINT).
    pub fn try_new(
        input: &SchemaRef,
        key: usize,
        time: usize,
        id: usize,
        min_count: usize,
        window_ms: i64,
    ) -> Result<Self> {
        let field = |i: usize| {
            input
                .fields()
                .get(i)
                .ok_or_else(|| WeirError::Plan(format!("round_burst: no column {i} in the input")))
        };
        for (i, what, t) in [
            (key, "key", DataType::Int64),
            (id, "id", DataType::Int64),
            (
                time,
                "time",
                DataType::Timestamp(TimeUnit::Millisecond, None),
            ),
        ] {
            let f = field(i)?;
            if f.data_type() != &t {
                return Err(WeirError::Plan(format!(
                    "round_burst: the {what} column '{}' must be {t}, not {}",
                    f.name(),
                    f.data_type()
                )));
            }
        }
        if min_count < 1 || window_ms <= 0 {
            return Err(WeirError::Plan(
                "round_burst: min_count and the window must be positive".into(),
            ));
        }
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        let schema = Arc::new(Schema::new(vec![
            Field::new(field(key)?.name(), DataType::Int64, false),
            Field::new("round_count", DataType::Int64, false),
            Field::new("burst_start", ts.clone(), false),
            Field::new("event_time", ts, false),
            Field::new(field(id)?.name(), DataType::Int64, true),
        ]));
        Ok(Self {
            key,
            time,
            id,
            min_count,
            window_ms,
            schema,
            pending: Vec::new(),
            windows: HashMap::new(),
            watermark: None,
        })
    }

    /// The schema of the alerts.
    pub fn output_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// Processes the buffered rows at or below `upto`, in event-time order,
    /// and emits their alerts as one batch.
    fn release(
        &mut self,
        upto: EventTime,
        ctx: &OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        self.pending.sort_unstable_by_key(|&(t, k, id)| (t, id, k));
        let n = self.pending.partition_point(|&(t, _, _)| t <= upto);
        let mut alerts: Vec<[i64; 5]> = Vec::new();
        for (t, key, id) in self.pending.drain(..n) {
            let w = self.windows.entry(key).or_default();
            while w.front().is_some_and(|&f| f < t - self.window_ms) {
                w.pop_front();
            }
            w.push_back(t);
            if w.len() == self.min_count {
                alerts.push([key, w.len() as i64, w.front().copied().unwrap_or(t), t, id]);
            }
        }
        // State that can no longer matter: windows whose last row is older
        // than the window before the watermark.
        let horizon = upto.saturating_sub(self.window_ms);
        self.windows
            .retain(|_, w| w.back().is_some_and(|&last| last >= horizon));
        if alerts.is_empty() {
            return Ok(());
        }
        ctx.metrics.add_count(BURSTS_COUNTER, alerts.len() as u64);
        let col = |i: usize| alerts.iter().map(move |a| a[i]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(Int64Array::from_iter_values(col(0))),
            Arc::new(Int64Array::from_iter_values(col(1))),
            Arc::new(TimestampMillisecondArray::from_iter_values(col(2))),
            Arc::new(TimestampMillisecondArray::from_iter_values(col(3))),
            Arc::new(Int64Array::from_iter_values(col(4))),
        ];
        out.collect(RecordBatch::try_new(self.schema.clone(), columns)?);
        Ok(())
    }
}

impl Operator for RoundBurst {
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        _out: &mut Collector,
    ) -> Result<()> {
        let keys = batch.column(self.key).as_primitive::<Int64Type>();
        let ids = batch.column(self.id).as_primitive::<Int64Type>();
        let times = batch
            .column(self.time)
            .as_primitive::<TimestampMillisecondType>();
        let mut late = 0;
        for r in 0..batch.num_rows() {
            if keys.is_null(r) || times.is_null(r) {
                continue; // no card or no time: nothing to count
            }
            let t = times.value(r);
            if self.watermark.is_some_and(|w| t <= w) {
                late += 1;
                continue;
            }
            let id = if ids.is_null(r) {
                i64::MIN
            } else {
                ids.value(r)
            };
            self.pending.push((t, keys.value(r), id));
        }
        if late > 0 {
            ctx.metrics.add_late_dropped(late);
        }
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        self.watermark = Some(self.watermark.map_or(watermark, |w| w.max(watermark)));
        self.release(watermark, ctx, out)?;
        // Alerts first, then the watermark: downstream sees them as on time.
        out.emit_watermark(watermark);
        Ok(())
    }

    fn on_end(&mut self, ctx: &mut OperatorContext, out: &mut Collector) -> Result<()> {
        self.release(EventTime::MAX, ctx, out)
    }

    /// Two tables: `pending` (time, key, id) and `windows` (key, time), plus
    /// the watermark in a one-row `meta` table.
    fn snapshot(&mut self) -> Result<OperatorState> {
        let mut state = OperatorState::empty();
        let three = |name: [&str; 3], rows: &[[i64; 3]]| -> Result<RecordBatch> {
            let schema = Arc::new(Schema::new(
                name.iter()
                    .map(|n| Field::new(*n, DataType::Int64, false))
                    .collect::<Vec<_>>(),
            ));
            let cols: Vec<ArrayRef> = (0..3)
                .map(|c| {
                    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r[c]))) as ArrayRef
                })
                .collect();
            Ok(RecordBatch::try_new(schema, cols)?)
        };
        let pending: Vec<[i64; 3]> = self.pending.iter().map(|&(t, k, id)| [t, k, id]).collect();
        state.put("pending", three(["time", "key", "id"], &pending)?)?;
        // Sorted by key so that a snapshot's bytes do not depend on hashing.
        let sorted: BTreeMap<i64, &VecDeque<EventTime>> =
            self.windows.iter().map(|(k, w)| (*k, w)).collect();
        let windows: Vec<[i64; 3]> = sorted
            .iter()
            .flat_map(|(k, w)| w.iter().map(move |t| [*k, *t, 0]))
            .collect();
        state.put("windows", three(["key", "time", "unused"], &windows)?)?;
        let wm = self.watermark.unwrap_or(EventTime::MIN);
        state.put(
            "meta",
            three(
                ["watermark", "has_watermark", "unused"],
                &[[wm, i64::from(self.watermark.is_some()), 0]],
            )?,
        )?;
        Ok(state)
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        if state.is_empty() {
            return Ok(());
        }
        let column = |table: &str, name: &str| -> Result<Int64Array> {
            state
                .require(table)?
                .column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .cloned()
                .ok_or_else(|| WeirError::State(format!("round_burst: {table}.{name} is missing")))
        };
        let (t, k, id) = (
            column("pending", "time")?,
            column("pending", "key")?,
            column("pending", "id")?,
        );
        self.pending = (0..t.len())
            .map(|i| (t.value(i), k.value(i), id.value(i)))
            .collect();
        let (k, t) = (column("windows", "key")?, column("windows", "time")?);
        self.windows.clear();
        for i in 0..k.len() {
            self.windows
                .entry(k.value(i))
                .or_default()
                .push_back(t.value(i));
        }
        let (wm, has) = (
            column("meta", "watermark")?,
            column("meta", "has_watermark")?,
        );
        if wm.is_empty() || has.is_empty() {
            return Err(WeirError::State("round_burst: meta is empty".into()));
        }
        self.watermark = (has.value(0) != 0).then(|| wm.value(0));
        Ok(())
    }
}

/// `ROUND_BURST(TABLE t, DESCRIPTOR(key), DESCRIPTOR(time), DESCRIPTOR(id),
/// min_count, INTERVAL window)`: [`RoundBurst`] from SQL, the input
/// hash-partitioned by `key`.
#[derive(Debug, Clone, Copy)]
pub struct RoundBurstFunction;

impl TableFunction for RoundBurstFunction {
    fn name(&self) -> &str {
        "ROUND_BURST"
    }

    fn plan(&self, call: &TableFunctionCall) -> Result<TableFunctionPlan> {
        call.expect_args(5, 5)?;
        let key = call.column(0)?;
        let time = call.column(1)?;
        let id = call.column(2)?;
        let min_count =
            usize::try_from(call.count(3)?).map_err(|_| call.error("min_count is too large"))?;
        let window_ms = call.interval_ms(4)?;
        let input = call.input_schema.clone();
        // Build one operator now: checks the columns, gives the schema.
        let schema = RoundBurst::try_new(&input, key, time, id, min_count, window_ms)
            .map_err(|e| call.error(e))?
            .output_schema();
        Ok(TableFunctionPlan {
            schema,
            keys: vec![key],
            operator: Arc::new(move |_subtask: usize, _parallelism: usize| {
                let op = RoundBurst::try_new(&input, key, time, id, min_count, window_ms)?;
                Ok(Box::new(op) as Box<dyn Operator>)
            }),
            description: format!("round-amount bursts: {min_count} within {window_ms} ms per key"),
        })
    }
}

/// `is_round(amount, unit) -> BOOLEAN`: whether `amount` is a whole
/// multiple of `unit` (to the cent); NULL if either is NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct IsRound {
    signature: Signature,
}

impl IsRound {
    /// The UDF, ready to register.
    pub fn udf() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Self {
            signature: Signature::uniform(2, vec![DataType::Float64], Volatility::Immutable),
        }))
    }
}

impl ScalarUDFImpl for IsRound {
    fn name(&self) -> &str {
        "is_round"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _args: &[DataType]) -> datafusion_common::Result<DataType> {
        Ok(DataType::Boolean)
    }
    fn invoke_with_args(
        &self,
        args: ScalarFunctionArgs,
    ) -> datafusion_common::Result<ColumnarValue> {
        let scalar = args
            .args
            .iter()
            .all(|a| matches!(a, ColumnarValue::Scalar(_)));
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [amount, unit] = arrays.as_slice() else {
            return datafusion_common::exec_err!("is_round takes two arguments");
        };
        let amount = cast(amount, &DataType::Float64)?;
        let unit = cast(unit, &DataType::Float64)?;
        let (a, u) = (
            amount.as_primitive::<Float64Type>(),
            unit.as_primitive::<Float64Type>(),
        );
        let out: BooleanArray = (0..a.len())
            .map(|i| {
                (a.is_valid(i) && u.is_valid(i)).then(|| {
                    // Compare in cents: amounts are decimal, floats are not.
                    let (cents, unit) =
                        ((a.value(i) * 100.0).round(), (u.value(i) * 100.0).round());
                    unit > 0.0 && cents % unit == 0.0
                })
            })
            .collect();
        let out: ArrayRef = Arc::new(out);
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

/// Weir's default plan options plus `ROUND_BURST` and `is_round`.
pub fn plan_options() -> PlanOptions {
    let mut options = PlanOptions::new();
    options.register_table_function(Arc::new(RoundBurstFunction));
    options.register_udf(IsRound::udf());
    options
}
