//! Weir's fraud rules as SQL table functions, and the `haversine_km` scalar
//! function. All are available by default ([`PlanOptions::new`](crate::PlanOptions::new)
//! registers the table functions; `haversine_km` is one of Weir's scalar
//! functions).
//!
//! Each table function runs one rule of [`weir_operators::fraud`] per key,
//! in event time, and returns one row per alert: the key columns, the
//! rule's measures, `event_time` and `alert_time` (`TIMESTAMP(3)`), then the
//! carried columns. Arguments mirror the Rust configurations; bracketed ones
//! are optional and take the Rust defaults (given in parentheses):
//!
//! ```text
//! VELOCITY(TABLE t, DESCRIPTOR(key, …), DESCRIPTOR(time)
//!          [, INTERVAL window (1 min) [, max_count (5)]]
//!          [, DESCRIPTOR(amount), max_amount]
//!          [, DESCRIPTOR(carry, …)] [, 'ON_BREACH' | 'EVERY_ROW'])
//! AMOUNT_SPIKE(TABLE t, DESCRIPTOR(key, …), DESCRIPTOR(time), DESCRIPTOR(amount)
//!          [, z_threshold (4.0) [, min_history (10) [, INTERVAL state_ttl (30 days)]]]
//!          [, DESCRIPTOR(carry, …)])
//! IMPOSSIBLE_TRAVEL(TABLE t, DESCRIPTOR(key, …), DESCRIPTOR(time),
//!          DESCRIPTOR(lat), DESCRIPTOR(lon)
//!          [, max_speed_kmh (900) [, min_distance_km (50)]]
//!          [, DESCRIPTOR(carry, …)])
//! SMALL_THEN_LARGE(TABLE t, DESCRIPTOR(key, …), DESCRIPTOR(time), DESCRIPTOR(amount)
//!          [, small_below (1.00), large_above (500.00) [, INTERVAL window (1 min)]]
//!          [, DESCRIPTOR(carry, …)])
//! DEVICE_SHARING(TABLE t, DESCRIPTOR(device, …), DESCRIPTOR(time), DESCRIPTOR(card)
//!          [, max_cards (3) [, INTERVAL window (10 min)]]
//!          [, DESCRIPTOR(carry, …)] [, 'ON_BREACH' | 'EVERY_ROW'])
//! haversine_km(lat1, lon1, lat2, lon2) -> DOUBLE   (NULL if any argument is NULL)
//! ```
//!
//! The input is hash-partitioned on the key columns, so one subtask sees
//! every row of a key. Rows at or below the watermark when they arrive are
//! late: dropped and counted. Velocity and amount spike count an exact
//! duplicate twice (see each rule's documentation).
//!
//! ```
//! use weir_queries::{plan_script, PlanOptions};
//! let job = plan_script(
//!     "CREATE TABLE tx (card_id BIGINT, amount DOUBLE, tx_id BIGINT, event_time TIMESTAMP(3),
//!        WATERMARK FOR event_time AS event_time - INTERVAL '5' SECOND)
//!      WITH ('connector' = 'transactions', 'events.num' = '1000');
//!      SELECT card_id, tx_count, event_time, tx_id
//!      FROM TABLE(VELOCITY(TABLE tx, DESCRIPTOR(card_id), DESCRIPTOR(event_time),
//!                          INTERVAL '1' MINUTE, 5, DESCRIPTOR(tx_id)));",
//!     &PlanOptions::new(),
//! )?;
//! assert!(job.explain()?.contains("VELOCITY"));
//! # Ok::<(), weir_engine::WeirError>(())
//! ```

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, SchemaRef};
use datafusion_common::{exec_err, ScalarValue};
use datafusion_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};
use weir_engine::operator::Operator;
use weir_engine::{Result, WeirError};
use weir_operators::fraud::{
    haversine_km, AlertMode, AmountSpikeConfig, DeviceSharingConfig, FraudOperator, FraudRule,
    ImpossibleTravelConfig, SmallThenLargeConfig, VelocityConfig,
};

use crate::table_function::{
    CallArg, TableFunction, TableFunctionCall, TableFunctionPlan, TableFunctionRegistry,
};

/// The five fraud rules, as table functions.
pub fn fraud_table_functions() -> Vec<Arc<dyn TableFunction>> {
    vec![
        Arc::new(VelocityFunction),
        Arc::new(AmountSpikeFunction),
        Arc::new(ImpossibleTravelFunction),
        Arc::new(SmallThenLargeFunction),
        Arc::new(DeviceSharingFunction),
    ]
}

/// A registry holding Weir's built-in table functions (the fraud rules).
pub fn builtin_table_functions() -> TableFunctionRegistry {
    let mut r = TableFunctionRegistry::new();
    for f in fraud_table_functions() {
        r.register(f);
    }
    r
}

/// Reads a call's arguments in order; optional ones are recognised by kind.
struct Args<'a> {
    call: &'a TableFunctionCall,
    pos: usize,
    signature: &'static str,
}

impl<'a> Args<'a> {
    fn new(call: &'a TableFunctionCall, signature: &'static str) -> Self {
        Self {
            call,
            pos: 0,
            signature,
        }
    }

    fn error(&self, m: impl std::fmt::Display) -> WeirError {
        self.call
            .error(format!("{m} (signature: {})", self.signature))
    }

    fn peek(&self) -> Option<&'a CallArg> {
        self.call.args.get(self.pos)
    }

    /// A required `DESCRIPTOR(col, …)`.
    fn columns(&mut self, what: &str) -> Result<Vec<usize>> {
        match self.peek() {
            Some(CallArg::Columns(c)) => {
                self.pos += 1;
                Ok(c.clone())
            }
            Some(other) => Err(self.error(format!(
                "argument {} ({what}) must be DESCRIPTOR(...), found {other:?}",
                self.pos + 2
            ))),
            None => Err(self.error(format!("argument {} ({what}) is missing", self.pos + 2))),
        }
    }

    /// A required `DESCRIPTOR(col)` of one column.
    fn column(&mut self, what: &str) -> Result<usize> {
        match self.columns(what)?.as_slice() {
            [c] => Ok(*c),
            _ => Err(self.error(format!(
                "argument {} ({what}) must name exactly one column",
                self.pos + 1
            ))),
        }
    }

    fn opt_columns(&mut self) -> Option<Vec<usize>> {
        match self.peek() {
            Some(CallArg::Columns(c)) => {
                self.pos += 1;
                Some(c.clone())
            }
            _ => None,
        }
    }

    fn opt_interval(&mut self) -> Option<i64> {
        match self.peek() {
            Some(CallArg::IntervalMs(ms)) => {
                self.pos += 1;
                Some(*ms)
            }
            _ => None,
        }
    }

    fn opt_number(&mut self) -> Option<f64> {
        let v = match self.peek() {
            Some(CallArg::Literal(ScalarValue::Int64(Some(v)))) => *v as f64,
            Some(CallArg::Literal(ScalarValue::Float64(Some(v)))) => *v,
            _ => return None,
        };
        self.pos += 1;
        Some(v)
    }

    fn opt_count(&mut self, what: &str) -> Result<Option<u64>> {
        match self.peek() {
            Some(CallArg::Literal(ScalarValue::Int64(Some(v)))) => {
                let v = u64::try_from(*v).map_err(|_| {
                    self.error(format!(
                        "argument {} ({what}) must not be negative",
                        self.pos + 2
                    ))
                })?;
                self.pos += 1;
                Ok(Some(v))
            }
            _ => Ok(None),
        }
    }

    /// `DESCRIPTOR(col), number`: an optional column with its threshold.
    fn opt_column_and_number(&mut self) -> Result<Option<(usize, f64)>> {
        let (Some(CallArg::Columns(c)), Some(CallArg::Literal(_))) =
            (self.peek(), self.call.args.get(self.pos + 1))
        else {
            return Ok(None);
        };
        let [c] = c.as_slice() else {
            return Err(self.error(format!(
                "argument {} must name exactly one column",
                self.pos + 2
            )));
        };
        self.pos += 1;
        match self.opt_number() {
            Some(n) => Ok(Some((*c, n))),
            None => Err(self.error(format!("argument {} must be a number", self.pos + 2))),
        }
    }

    fn opt_mode(&mut self) -> Result<Option<AlertMode>> {
        let Some(CallArg::Literal(ScalarValue::Utf8(Some(s)))) = self.peek() else {
            return Ok(None);
        };
        let mode = match s.to_ascii_uppercase().as_str() {
            "ON_BREACH" => AlertMode::OnBreach,
            "EVERY_ROW" => AlertMode::EveryRow,
            _ => {
                return Err(self.error(format!(
                    "argument {}: alert mode '{s}': expected 'ON_BREACH' or 'EVERY_ROW'",
                    self.pos + 2
                )))
            }
        };
        self.pos += 1;
        Ok(Some(mode))
    }

    /// Checks that every argument was used.
    fn finish(&self) -> Result<()> {
        match self.peek() {
            None => Ok(()),
            Some(a) => Err(self.error(format!(
                "argument {} ({a:?}) is not expected here",
                self.pos + 2
            ))),
        }
    }
}

/// The plan of a fraud rule: output schema checked now (by building the
/// operator once), one operator per subtask, partitioned by the keys.
fn fraud_plan<R, F>(
    call: &TableFunctionCall,
    keys: Vec<usize>,
    description: String,
    build: F,
) -> Result<TableFunctionPlan>
where
    R: FraudRule,
    F: Fn(&SchemaRef) -> Result<FraudOperator<R>> + Send + Sync + 'static,
{
    let input = call.input_schema.clone();
    let as_plan_error = |e: WeirError| match e {
        WeirError::Plan(m) => call.error(m),
        other => other,
    };
    let schema = build(&input).map_err(as_plan_error)?.output_schema();
    Ok(TableFunctionPlan {
        schema,
        keys,
        operator: Arc::new(move |_subtask: usize, _parallelism: usize| {
            Ok(Box::new(build(&input)?) as Box<dyn Operator>)
        }),
        description,
    })
}

fn mode_name(m: AlertMode) -> &'static str {
    match m {
        AlertMode::OnBreach => "once per breach",
        AlertMode::EveryRow => "every row",
    }
}

/// `VELOCITY(TABLE t, DESCRIPTOR(key, …), DESCRIPTOR(time) [, INTERVAL
/// window [, max_count]] [, DESCRIPTOR(amount), max_amount] [,
/// DESCRIPTOR(carry, …)] [, 'ON_BREACH' | 'EVERY_ROW'])`: more than
/// `max_count` rows (default 5), or a total amount above `max_amount`, of
/// a key within `window` (default 1 minute, sliding, both ends included).
/// Measures: `tx_count BIGINT UNSIGNED`, `total_amount DOUBLE`,
/// `window_first_time TIMESTAMP(3)`. See [`VelocityConfig`].
#[derive(Debug, Clone, Copy)]
pub struct VelocityFunction;

impl TableFunction for VelocityFunction {
    fn name(&self) -> &str {
        "VELOCITY"
    }
    fn plan(&self, call: &TableFunctionCall) -> Result<TableFunctionPlan> {
        let mut a = Args::new(
            call,
            "VELOCITY(TABLE t, DESCRIPTOR(key, ...), DESCRIPTOR(time) [, INTERVAL window [, max_count]] \
             [, DESCRIPTOR(amount), max_amount] [, DESCRIPTOR(carry, ...)] [, 'ON_BREACH' | 'EVERY_ROW'])",
        );
        let keys = a.columns("key")?;
        let time = a.column("time")?;
        let mut c = VelocityConfig::new(keys.clone(), time);
        if let Some(w) = a.opt_interval() {
            c.window_ms = w;
            if let Some(n) = a.opt_count("max_count")? {
                c.max_count = Some(n);
            }
        }
        if let Some((amount, max)) = a.opt_column_and_number()? {
            c = c.with_amount(amount, max);
        }
        c.carry = a.opt_columns().unwrap_or_default();
        if let Some(m) = a.opt_mode()? {
            c.alert_mode = m;
        }
        a.finish()?;
        let description = format!(
            "velocity: more than {} rows{} per key within {} ms, {}",
            c.max_count.unwrap_or(0),
            c.max_amount
                .map(|x| format!(" or a total amount above {x}"))
                .unwrap_or_default(),
            c.window_ms,
            mode_name(c.alert_mode)
        );
        fraud_plan(call, keys, description, move |s| c.clone().build(s))
    }
}

/// `AMOUNT_SPIKE(TABLE t, DESCRIPTOR(key, …), DESCRIPTOR(time),
/// DESCRIPTOR(amount) [, z_threshold [, min_history [, INTERVAL
/// state_ttl]]] [, DESCRIPTOR(carry, …)])`: an amount more than
/// `z_threshold` (default 4.0) sample standard deviations above the mean of
/// the key's earlier amounts, once it has `min_history` (default 10) of
/// them; a key's statistics are dropped after `state_ttl` (default 30
/// days) without rows. Measures: `amount`, `mean`, `stddev`, `z_score`
/// (DOUBLE), `history BIGINT UNSIGNED`. See [`AmountSpikeConfig`].
#[derive(Debug, Clone, Copy)]
pub struct AmountSpikeFunction;

impl TableFunction for AmountSpikeFunction {
    fn name(&self) -> &str {
        "AMOUNT_SPIKE"
    }
    fn plan(&self, call: &TableFunctionCall) -> Result<TableFunctionPlan> {
        let mut a = Args::new(
            call,
            "AMOUNT_SPIKE(TABLE t, DESCRIPTOR(key, ...), DESCRIPTOR(time), DESCRIPTOR(amount) \
             [, z_threshold [, min_history [, INTERVAL state_ttl]]] [, DESCRIPTOR(carry, ...)])",
        );
        let keys = a.columns("key")?;
        let time = a.column("time")?;
        let amount = a.column("amount")?;
        let mut c = AmountSpikeConfig::new(keys.clone(), time, amount);
        if let Some(z) = a.opt_number() {
            c.z_threshold = z;
            if let Some(n) = a.opt_count("min_history")? {
                c.min_history = n;
                if let Some(ttl) = a.opt_interval() {
                    c.state_ttl_ms = ttl;
                }
            }
        }
        c.carry = a.opt_columns().unwrap_or_default();
        a.finish()?;
        let description = format!(
            "amount_spike: z-score above {} after {} amounts per key",
            c.z_threshold, c.min_history
        );
        fraud_plan(call, keys, description, move |s| c.clone().build(s))
    }
}

/// `IMPOSSIBLE_TRAVEL(TABLE t, DESCRIPTOR(key, …), DESCRIPTOR(time),
/// DESCRIPTOR(lat), DESCRIPTOR(lon) [, max_speed_kmh [, min_distance_km]]
/// [, DESCRIPTOR(carry, …)])`: two consecutive located rows of a key more
/// than `min_distance_km` (default 50) apart at a speed above
/// `max_speed_kmh` (default 900). Measures: `prev_event_time
/// TIMESTAMP(3)`, `prev_lat`, `prev_lon`, `lat`, `lon`, `distance_km`,
/// `speed_kmh` (DOUBLE). See [`ImpossibleTravelConfig`].
#[derive(Debug, Clone, Copy)]
pub struct ImpossibleTravelFunction;

impl TableFunction for ImpossibleTravelFunction {
    fn name(&self) -> &str {
        "IMPOSSIBLE_TRAVEL"
    }
    fn plan(&self, call: &TableFunctionCall) -> Result<TableFunctionPlan> {
        let mut a = Args::new(
            call,
            "IMPOSSIBLE_TRAVEL(TABLE t, DESCRIPTOR(key, ...), DESCRIPTOR(time), DESCRIPTOR(lat), \
             DESCRIPTOR(lon) [, max_speed_kmh [, min_distance_km]] [, DESCRIPTOR(carry, ...)])",
        );
        let keys = a.columns("key")?;
        let time = a.column("time")?;
        let lat = a.column("lat")?;
        let lon = a.column("lon")?;
        let mut c = ImpossibleTravelConfig::new(keys.clone(), time, lat, lon);
        if let Some(speed) = a.opt_number() {
            c.max_speed_kmh = speed;
            if let Some(d) = a.opt_number() {
                c.min_distance_km = d;
            }
        }
        c.carry = a.opt_columns().unwrap_or_default();
        a.finish()?;
        let description = format!(
            "impossible_travel: above {} km/h over more than {} km per key",
            c.max_speed_kmh, c.min_distance_km
        );
        fraud_plan(call, keys, description, move |s| c.clone().build(s))
    }
}

/// `SMALL_THEN_LARGE(TABLE t, DESCRIPTOR(key, …), DESCRIPTOR(time),
/// DESCRIPTOR(amount) [, small_below, large_above [, INTERVAL window]] [,
/// DESCRIPTOR(carry, …)])`: an amount below `small_below` (default 1.00)
/// immediately followed, in the key's event-time order, by one above
/// `large_above` (default 500.00) at most `window` (default 1 minute)
/// later (Flink's fraud-detection tutorial). Measures: `small_amount
/// DOUBLE`, `small_event_time TIMESTAMP(3)`, `amount DOUBLE`. See
/// [`SmallThenLargeConfig`].
#[derive(Debug, Clone, Copy)]
pub struct SmallThenLargeFunction;

impl TableFunction for SmallThenLargeFunction {
    fn name(&self) -> &str {
        "SMALL_THEN_LARGE"
    }
    fn plan(&self, call: &TableFunctionCall) -> Result<TableFunctionPlan> {
        let mut a = Args::new(
            call,
            "SMALL_THEN_LARGE(TABLE t, DESCRIPTOR(key, ...), DESCRIPTOR(time), DESCRIPTOR(amount) \
             [, small_below, large_above [, INTERVAL window]] [, DESCRIPTOR(carry, ...)])",
        );
        let keys = a.columns("key")?;
        let time = a.column("time")?;
        let amount = a.column("amount")?;
        let mut c = SmallThenLargeConfig::new(keys.clone(), time, amount);
        if let Some(small) = a.opt_number() {
            c.small_below = small;
            c.large_above = a
                .opt_number()
                .ok_or_else(|| a.error("small_below must be followed by large_above"))?;
            if let Some(w) = a.opt_interval() {
                c.window_ms = w;
            }
        }
        c.carry = a.opt_columns().unwrap_or_default();
        a.finish()?;
        let description = format!(
            "small_then_large: below {} then above {} within {} ms per key",
            c.small_below, c.large_above, c.window_ms
        );
        fraud_plan(call, keys, description, move |s| c.clone().build(s))
    }
}

/// `DEVICE_SHARING(TABLE t, DESCRIPTOR(device, …), DESCRIPTOR(time),
/// DESCRIPTOR(card) [, max_cards [, INTERVAL window]] [, DESCRIPTOR(carry,
/// …)] [, 'ON_BREACH' | 'EVERY_ROW'])`: more than `max_cards` (default 3)
/// distinct cards on one device within `window` (default 10 minutes,
/// sliding). Measures: `distinct_cards BIGINT UNSIGNED`, `tx_count BIGINT
/// UNSIGNED`, `window_first_time TIMESTAMP(3)`. See [`DeviceSharingConfig`].
#[derive(Debug, Clone, Copy)]
pub struct DeviceSharingFunction;

impl TableFunction for DeviceSharingFunction {
    fn name(&self) -> &str {
        "DEVICE_SHARING"
    }
    fn plan(&self, call: &TableFunctionCall) -> Result<TableFunctionPlan> {
        let mut a = Args::new(
            call,
            "DEVICE_SHARING(TABLE t, DESCRIPTOR(device, ...), DESCRIPTOR(time), DESCRIPTOR(card) \
             [, max_cards [, INTERVAL window]] [, DESCRIPTOR(carry, ...)] [, 'ON_BREACH' | 'EVERY_ROW'])",
        );
        let keys = a.columns("device")?;
        let time = a.column("time")?;
        let card = a.column("card")?;
        let mut c = DeviceSharingConfig::new(keys.clone(), time, card);
        if let Some(n) = a.opt_count("max_cards")? {
            c.max_cards = n;
            if let Some(w) = a.opt_interval() {
                c.window_ms = w;
            }
        }
        c.carry = a.opt_columns().unwrap_or_default();
        if let Some(m) = a.opt_mode()? {
            c.alert_mode = m;
        }
        a.finish()?;
        let description = format!(
            "device_sharing: more than {} distinct cards per device within {} ms, {}",
            c.max_cards,
            c.window_ms,
            mode_name(c.alert_mode)
        );
        fraud_plan(call, keys, description, move |s| c.clone().build(s))
    }
}

/// `haversine_km(lat1, lon1, lat2, lon2)`: the great-circle distance in
/// kilometres between two points given in degrees, on a sphere of radius
/// 6371 km. Numeric arguments are cast to DOUBLE; NULL when any argument
/// is NULL.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct HaversineKmFunc {
    signature: Signature,
}

impl HaversineKmFunc {
    /// Creates the function.
    pub fn new() -> Self {
        Self {
            signature: Signature::uniform(4, vec![DataType::Float64], Volatility::Immutable),
        }
    }

    /// The function as a DataFusion UDF.
    pub fn udf() -> Arc<ScalarUDF> {
        Arc::new(ScalarUDF::new_from_impl(Self::new()))
    }
}

impl Default for HaversineKmFunc {
    fn default() -> Self {
        Self::new()
    }
}

impl ScalarUDFImpl for HaversineKmFunc {
    fn name(&self) -> &str {
        "haversine_km"
    }
    fn signature(&self) -> &Signature {
        &self.signature
    }
    fn return_type(&self, _arg_types: &[DataType]) -> datafusion_common::Result<DataType> {
        Ok(DataType::Float64)
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
        let arrays = arrays
            .iter()
            .map(|a| cast(a, &DataType::Float64))
            .collect::<std::result::Result<Vec<ArrayRef>, _>>()?;
        let [a, b, c, d] = arrays.as_slice() else {
            return exec_err!("haversine_km takes four arguments");
        };
        let out = haversine_km(
            a.as_primitive::<Float64Type>(),
            b.as_primitive::<Float64Type>(),
            c.as_primitive::<Float64Type>(),
            d.as_primitive::<Float64Type>(),
        )
        .map_err(|e| datafusion_common::DataFusionError::Execution(e.to_string()))?;
        let out: ArrayRef = Arc::new(out);
        if scalar {
            Ok(ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?))
        } else {
            Ok(ColumnarValue::Array(out))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Float64Array};
    use arrow::datatypes::{Field, Schema};

    fn call(args: Vec<CallArg>) -> TableFunctionCall {
        let schema = Arc::new(Schema::new(vec![
            Field::new("card", DataType::Int64, true),
            Field::new("ts", DataType::Int64, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("id", DataType::Int64, true),
        ]));
        TableFunctionCall {
            name: "VELOCITY".into(),
            input_schema: schema,
            args,
            line: 3,
        }
    }

    #[test]
    fn velocity_arguments_by_kind() {
        use CallArg::*;
        let lit = |v: i64| Literal(ScalarValue::Int64(Some(v)));
        let plan = VelocityFunction
            .plan(&call(vec![
                Columns(vec![0]),
                Columns(vec![1]),
                IntervalMs(30_000),
                lit(3),
                Columns(vec![2]),
                Literal(ScalarValue::Float64(Some(100.5))),
                Columns(vec![3]),
                Literal(ScalarValue::Utf8(Some("every_row".into()))),
            ]))
            .expect("plan");
        assert_eq!(plan.keys, vec![0]);
        let names: Vec<&str> = plan
            .schema
            .fields()
            .iter()
            .map(|f| f.name().as_str())
            .collect();
        assert_eq!(
            names,
            [
                "card",
                "tx_count",
                "total_amount",
                "window_first_time",
                "event_time",
                "alert_time",
                "id"
            ]
        );
        assert!(
            plan.description
                .contains("more than 3 rows or a total amount above 100.5")
                && plan.description.contains("30000 ms, every row"),
            "{}",
            plan.description
        );
        let e = VelocityFunction
            .plan(&call(vec![Columns(vec![0]), Columns(vec![1]), lit(3)]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("line 3: VELOCITY: argument 4") && e.contains("is not expected here"),
            "{e}"
        );
        let e = VelocityFunction
            .plan(&call(vec![Columns(vec![0]), Columns(vec![2])]))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            e.contains("time column 'amount' must be a TIMESTAMP"),
            "{e}"
        );
    }

    #[test]
    fn haversine_nulls_in_null_out() {
        let f = HaversineKmFunc::new();
        let arr = |v: Vec<Option<f64>>| ColumnarValue::Array(Arc::new(Float64Array::from(v)));
        let args = ScalarFunctionArgs {
            args: vec![
                arr(vec![Some(48.8566), None]),
                arr(vec![Some(2.3522), Some(0.0)]),
                arr(vec![Some(51.5074), Some(0.0)]),
                arr(vec![Some(-0.1278), Some(0.0)]),
            ],
            arg_fields: (0..4)
                .map(|i| Arc::new(Field::new(format!("a{i}"), DataType::Float64, true)))
                .collect(),
            number_rows: 2,
            return_field: Arc::new(Field::new("d", DataType::Float64, true)),
            config_options: Arc::new(Default::default()),
        };
        let ColumnarValue::Array(out) = f.invoke_with_args(args).expect("invoke") else {
            panic!("array in, array out");
        };
        let out = out.as_primitive::<Float64Type>();
        assert!((out.value(0) - 343.5).abs() < 1.0, "{}", out.value(0));
        assert!(out.is_null(1));
    }
}
