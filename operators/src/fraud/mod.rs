//! Fraud-detection rules: keyed, event-time operators that emit alerts.
//!
//! Every rule here is one [`FraudRule`] (the policy: what state a key
//! keeps, when a row raises an alert, when the state may go) run by one
//! mechanism, [`FraudOperator`]:
//!
//! | rule | module | alerts when |
//! |---|---|---|
//! | velocity | [`velocity`] | more than N rows, or a total amount above X, of a key within T (sliding) |
//! | amount spike | [`amount_spike`] | an amount's z-score against the key's earlier rows exceeds k |
//! | impossible travel | [`impossible_travel`] | two consecutive rows of a key are further apart than a speed allows |
//! | small then large | [`small_then_large`] | an amount below 1.00 is followed by one above 500 within a minute |
//! | device sharing | [`device_sharing`] | more than M distinct cards use one device within T |
//!
//! [`haversine::haversine_km`] is the great-circle distance kernel the
//! travel rule uses, over Arrow arrays (the SQL scalar function
//! `haversine_km`).
//!
//! # Event time
//!
//! A [`FraudOperator`] buffers the rows it receives and hands them to its
//! rule only once the watermark has passed them, in event-time order per
//! key (rows of one key with equal event times in arrival order). So every
//! rule sees each key's rows in event-time order whatever order they
//! arrived in, and its result does not depend on how the input was
//! shuffled: processing on arrival would not be equivalent, since the
//! rules compare a row with the rows before it in event time. The price is
//! latency: an alert is emitted when the watermark passes the row that
//! raised it.
//!
//! - A row whose event time is at or below the current watermark when it
//!   arrives is late: dropped and counted in `late_rows_dropped` (as are
//!   rows with a NULL event time). Flink's CEP operator does the same.
//! - Per-key state expires: after each row the rule says until when the
//!   key's state can still matter ([`FraudRule::expires_at`]); once the
//!   watermark reaches that time the state is dropped, and a later row of
//!   the key starts afresh.
//! - At end of input every buffered row is processed.
//! - Alerts are counted in the operator's metrics as `alerts`
//!   ([`OperatorMetrics::count`](weir_engine::metrics::OperatorMetrics::count)).
//!
//! # Output
//!
//! One row per alert: the key columns (copied from the triggering row,
//! with their input names and types), the rule's measures, then
//! `event_time TIMESTAMP(3)` (the triggering row's event time),
//! `alert_time TIMESTAMP(3)` (the watermark that released the triggering
//! row, capped at the largest event time seen: at end of input, the
//! largest event time) and finally the `carry` columns of the triggering
//! row (e.g. `tx_id`). Alerts of one watermark come out in event-time
//! order.
//!
//! # Duplicates
//!
//! Whether a rule tolerates exact duplicate rows is documented per rule.
//! Where it does not, remove duplicates first (e.g. the sequence-ordering
//! or deduplication operators).
//!
//! # State
//!
//! [`FraudOperator::snapshot`](weir_engine::operator::Operator::snapshot)
//! writes three tables: `meta` (watermark, largest event time, alerts
//! emitted), `pending` (the buffered rows, projected to the columns the
//! operator reads, in processing order) and `keys` (`key` BINARY in arrow's
//! row format, `expires` BIGINT, `state` BINARY encoded by the rule with
//! [`StateWriter`]).

pub mod amount_spike;
pub mod device_sharing;
pub mod haversine;
pub mod impossible_travel;
pub mod small_then_large;
pub mod velocity;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BinaryBuilder, Float64Array, Int64Array,
    TimestampMillisecondArray, UInt64Array,
};
use arrow::compute::{cast, interleave};
use arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, Rows, SortField};
use weir_engine::message::EventTime;
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};

use crate::util::{build_batch, to_millis};

pub use amount_spike::{AmountSpikeConfig, AmountSpikeRule};
pub use device_sharing::{DeviceSharingConfig, DeviceSharingRule};
pub use haversine::{haversine_km, haversine_km_value};
pub use impossible_travel::{ImpossibleTravelConfig, ImpossibleTravelRule};
pub use small_then_large::{SmallThenLargeConfig, SmallThenLargeRule};
pub use velocity::{VelocityConfig, VelocityRule};

/// Name of the metrics counter of emitted alerts.
pub const ALERTS_COUNTER: &str = "alerts";

/// A column a rule reads from each row, besides the key and the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleInput {
    /// A numeric column read as `DOUBLE` (integers and decimals are cast).
    Float64(usize),
    /// A column of any type, compared by value (e.g. a card id); the rule
    /// sees it as bytes in arrow's row format, equal iff the values are.
    Value(usize),
}

impl RuleInput {
    fn column(self) -> usize {
        match self {
            RuleInput::Float64(c) | RuleInput::Value(c) => c,
        }
    }
}

/// When a rule whose condition holds over a stretch of rows alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AlertMode {
    /// Once per breach: on the row that makes the condition true after a
    /// row of the key found it false (or after the key's state expired).
    #[default]
    OnBreach,
    /// On every row for which the condition holds.
    EveryRow,
}

/// The columns every rule binds: the partitioning key, the event time and
/// the input columns copied into each alert.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RuleColumns {
    /// Key columns (input indices): state and ordering are per key. Empty:
    /// one key for the whole input. NULL is a key value like any other.
    pub keys: Vec<usize>,
    /// The event-time column (`TIMESTAMP` of any unit, or `BIGINT` epoch
    /// milliseconds).
    pub time_column: usize,
    /// Input columns copied from the triggering row to the end of each
    /// alert (e.g. `tx_id`).
    pub carry: Vec<usize>,
}

/// One row as a rule sees it: its event time and the columns the rule
/// declared in [`FraudRule::inputs`], by position in that list.
pub struct RuleRow<'a> {
    time: EventTime,
    row: usize,
    inputs: &'a RowInputs,
}

impl RuleRow<'_> {
    /// The row's event time, epoch milliseconds.
    pub fn time(&self) -> EventTime {
        self.time
    }

    /// Input `i` (a [`RuleInput::Float64`]) of this row; `None` when NULL.
    pub fn f64(&self, i: usize) -> Option<f64> {
        match self.inputs.columns.get(i)? {
            InputColumn::Float64(a) => a.is_valid(self.row).then(|| a.value(self.row)),
            InputColumn::Value(..) => None,
        }
    }

    /// Input `i` (a [`RuleInput::Value`]) of this row in arrow's row
    /// format; `None` when NULL.
    pub fn value(&self, i: usize) -> Option<&[u8]> {
        match self.inputs.columns.get(i)? {
            InputColumn::Value(a, rows) => a.is_valid(self.row).then(|| rows.row(self.row).data()),
            InputColumn::Float64(_) => None,
        }
    }
}

/// The policy of a fraud rule, run by a [`FraudOperator`].
///
/// The operator calls [`FraudRule::on_row`] for each row of a key in
/// event-time order, with that key's state, and drops the state once the
/// watermark reaches [`FraudRule::expires_at`]. A rule written outside
/// Weir implements this trait and runs in a [`FraudOperator`] like the
/// built-in ones.
pub trait FraudRule: Send + 'static {
    /// What the rule keeps per key.
    type State: Send;
    /// The measures of one alert.
    type Alert: Send;

    /// The rule's name (for errors and `explain`).
    fn name(&self) -> &'static str;

    /// The columns the rule reads from each row, besides key and time.
    fn inputs(&self) -> Vec<RuleInput>;

    /// The measure columns of an alert (between the keys and `event_time`).
    fn measure_fields(&self) -> Vec<Field>;

    /// The state of a key that has no state (first row, or after expiry).
    fn new_state(&self) -> Self::State;

    /// Processes the key's next row in event-time order; returns an alert
    /// when the row raises one.
    fn on_row(&self, state: &mut Self::State, row: &RuleRow<'_>) -> Option<Self::Alert>;

    /// The last event time at which the key's state can still matter: a
    /// row later than it would be processed exactly as on a new state.
    /// Once the watermark reaches it (and every row up to the watermark
    /// has been processed) the state is dropped. `EventTime::MIN`: drop
    /// at the next watermark.
    fn expires_at(&self, state: &Self::State) -> EventTime;

    /// The measure columns of `alerts`, one row each, typed as
    /// [`FraudRule::measure_fields`].
    fn measure_columns(&self, alerts: &[Self::Alert]) -> Result<Vec<ArrayRef>>;

    /// Writes a key's state for a snapshot.
    fn encode_state(&self, state: &Self::State, out: &mut StateWriter);

    /// Reads a key's state written by [`FraudRule::encode_state`].
    fn decode_state(&self, input: &mut StateReader<'_>) -> Result<Self::State>;
}

/// Writes a rule's per-key state as bytes (little-endian, fixed width).
#[derive(Debug, Default)]
pub struct StateWriter {
    buf: Vec<u8>,
}

impl StateWriter {
    /// Appends an `i64`.
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a `u64`.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends an `f64`.
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// Appends a `bool`.
    pub fn bool(&mut self, v: bool) {
        self.buf.push(u8::from(v));
    }

    /// Appends a length-prefixed byte string.
    pub fn bytes(&mut self, v: &[u8]) {
        self.u64(v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.buf)
    }
}

/// Reads what a [`StateWriter`] wrote; running out of bytes is a
/// [`WeirError::State`], never a panic.
#[derive(Debug)]
pub struct StateReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> StateReader<'a> {
    /// A reader over `buf`.
    pub fn new(buf: &'a [u8]) -> Self {
        Self { buf, pos: 0 }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.buf.len())
            .ok_or_else(|| WeirError::State("fraud rule state is truncated".into()))?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn array8(&mut self) -> Result<[u8; 8]> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(a)
    }

    /// Reads an `i64`.
    pub fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array8()?))
    }

    /// Reads a `u64`.
    pub fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array8()?))
    }

    /// Reads an `f64`.
    pub fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array8()?))
    }

    /// Reads a `bool`.
    pub fn bool(&mut self) -> Result<bool> {
        Ok(self.take(1)?[0] != 0)
    }

    /// Reads a length-prefixed byte string.
    pub fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = usize::try_from(self.u64()?)
            .map_err(|_| WeirError::State("fraud rule state: bad length".into()))?;
        self.take(n)
    }

    /// Checks that everything was read.
    pub fn finish(&self) -> Result<()> {
        if self.pos == self.buf.len() {
            Ok(())
        } else {
            Err(WeirError::State(format!(
                "fraud rule state has {} unread bytes",
                self.buf.len() - self.pos
            )))
        }
    }
}

/// The extracted rule inputs of one retained batch.
struct RowInputs {
    columns: Vec<InputColumn>,
}

enum InputColumn {
    Float64(Float64Array),
    Value(ArrayRef, Rows),
}

/// A batch of rows not yet processed, projected to the columns the
/// operator reads, with its keys and rule inputs extracted.
struct Retained {
    batch: RecordBatch,
    times: Int64Array,
    keys: Option<Rows>,
    inputs: RowInputs,
    /// Rows of this batch still waiting for the watermark.
    pending: usize,
}

/// A key's slot in the state table.
struct Slot<S> {
    key: Arc<[u8]>,
    state: S,
    expires: EventTime,
    /// The expiry time of this slot's entry in the expiry queue, if any.
    queued: Option<EventTime>,
}

/// Where an alert's triggering row is.
#[derive(Clone, Copy)]
struct AlertAt {
    batch: u32,
    row: u32,
    time: EventTime,
    alert_time: EventTime,
}

/// Runs a [`FraudRule`] per key in event time. See the [module docs](self).
pub struct FraudOperator<R: FraudRule> {
    rule: R,
    columns: RuleColumns,
    inputs: Vec<RuleInput>,
    /// Input column indices kept in retained batches (sorted, unique).
    projection: Vec<usize>,
    projected_schema: SchemaRef,
    /// Positions in the projected batch of: keys, time, inputs, carry.
    p_keys: Vec<usize>,
    p_time: usize,
    p_inputs: Vec<usize>,
    p_carry: Vec<usize>,
    output_schema: SchemaRef,
    key_converter: Option<RowConverter>,
    value_converters: Vec<Option<RowConverter>>,
    /// Retained batches (a slab; `None` = free).
    batches: Vec<Option<Retained>>,
    free_batches: Vec<u32>,
    /// Rows waiting for the watermark: (time, arrival, batch, row).
    pending: BinaryHeap<Reverse<(EventTime, u64, u32, u32)>>,
    arrival: u64,
    /// Key states (a slab), their index by key bytes, and slot generations.
    slots: Vec<Option<Slot<R::State>>>,
    generations: Vec<u32>,
    free_slots: Vec<u32>,
    index: HashMap<Arc<[u8]>, u32, ahash::RandomState>,
    /// Expiry queue: (expires, slot, generation), one live entry per slot.
    expiry: BinaryHeap<Reverse<(EventTime, u32, u32)>>,
    watermark: Option<EventTime>,
    max_time: Option<EventTime>,
    alerts_total: u64,
    /// Alerts not yet emitted.
    alert_at: Vec<AlertAt>,
    alerts: Vec<R::Alert>,
    /// Batches emptied by the last release, freed after emission.
    emptied: Vec<u32>,
    warned_null_time: bool,
}

impl<R: FraudRule + fmt::Debug> fmt::Debug for FraudOperator<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FraudOperator")
            .field("rule", &self.rule)
            .field("columns", &self.columns)
            .field("keys_in_state", &self.index.len())
            .field("pending_rows", &self.pending.len())
            .field("watermark", &self.watermark)
            .finish()
    }
}

fn plan_err(rule: &str, m: impl fmt::Display) -> WeirError {
    WeirError::Plan(format!("{rule}: {m}"))
}

/// The type of a numeric column as a rule reads it, or an error.
pub(crate) fn check_float_input(
    rule: &str,
    schema: &Schema,
    column: usize,
    what: &str,
) -> Result<()> {
    let f = schema.fields().get(column).ok_or_else(|| {
        plan_err(
            rule,
            format!(
                "{what} column index {column} is out of range: the input has {} columns",
                schema.fields().len()
            ),
        )
    })?;
    if f.data_type().is_numeric()
        && arrow::compute::can_cast_types(f.data_type(), &DataType::Float64)
    {
        Ok(())
    } else {
        Err(plan_err(
            rule,
            format!(
                "{what} column '{}' must be numeric, not {}",
                f.name(),
                f.data_type()
            ),
        ))
    }
}

impl<R: FraudRule> FraudOperator<R> {
    /// Runs `rule` over an input of `input_schema` with the given key, time
    /// and carried columns. Errors ([`WeirError::Plan`]) name the rule and
    /// the column: an index out of range, a time column that is not a
    /// `TIMESTAMP` or `BIGINT`, a numeric input that is not numeric, two
    /// output columns with one name.
    pub fn try_new(rule: R, columns: RuleColumns, input_schema: &SchemaRef) -> Result<Self> {
        let name = rule.name();
        let n = input_schema.fields().len();
        let check = |c: usize, what: &str| -> Result<()> {
            if c < n {
                Ok(())
            } else {
                Err(plan_err(
                    name,
                    format!("{what} column index {c} is out of range: the input has {n} columns"),
                ))
            }
        };
        for &k in &columns.keys {
            check(k, "key")?;
        }
        check(columns.time_column, "time")?;
        for &c in &columns.carry {
            check(c, "carried")?;
        }
        let time_type = input_schema.field(columns.time_column).data_type();
        if !matches!(time_type, DataType::Int64 | DataType::Timestamp(_, _)) {
            return Err(plan_err(
                name,
                format!(
                    "time column '{}' must be a TIMESTAMP or BIGINT (epoch milliseconds), not {time_type}",
                    input_schema.field(columns.time_column).name()
                ),
            ));
        }
        let inputs = rule.inputs();
        for i in &inputs {
            check(i.column(), "input")?;
            if let RuleInput::Float64(c) = i {
                check_float_input(name, input_schema, *c, "numeric input")?;
            }
        }

        let mut projection: Vec<usize> = columns
            .keys
            .iter()
            .chain(std::iter::once(&columns.time_column))
            .chain(inputs.iter().map(|i| match i {
                RuleInput::Float64(c) | RuleInput::Value(c) => c,
            }))
            .chain(columns.carry.iter())
            .copied()
            .collect();
        projection.sort_unstable();
        projection.dedup();
        let pos = |c: usize| projection.iter().position(|p| *p == c).unwrap_or(0);
        let p_keys = columns.keys.iter().map(|&c| pos(c)).collect();
        let p_time = pos(columns.time_column);
        let p_inputs = inputs.iter().map(|i| pos(i.column())).collect();
        let p_carry = columns.carry.iter().map(|&c| pos(c)).collect();
        let projected_schema = Arc::new(input_schema.project(&projection)?);

        let mut fields: Vec<Field> = Vec::new();
        for &k in &columns.keys {
            fields.push(input_schema.field(k).clone().with_nullable(true));
        }
        fields.extend(rule.measure_fields());
        let ts = DataType::Timestamp(TimeUnit::Millisecond, None);
        fields.push(Field::new("event_time", ts.clone(), false));
        fields.push(Field::new("alert_time", ts, false));
        for &c in &columns.carry {
            fields.push(input_schema.field(c).clone().with_nullable(true));
        }
        for (i, f) in fields.iter().enumerate() {
            if fields[..i].iter().any(|g| g.name() == f.name()) {
                return Err(plan_err(
                    name,
                    format!(
                        "the alert output would have two columns named '{}' (carry a renamed column instead)",
                        f.name()
                    ),
                ));
            }
        }
        let output_schema = Arc::new(Schema::new(fields));

        let key_converter = if columns.keys.is_empty() {
            None
        } else {
            Some(RowConverter::new(
                columns
                    .keys
                    .iter()
                    .map(|&k| SortField::new(input_schema.field(k).data_type().clone()))
                    .collect(),
            )?)
        };
        let value_converters = inputs
            .iter()
            .map(|i| match i {
                RuleInput::Value(c) => Ok(Some(RowConverter::new(vec![SortField::new(
                    input_schema.field(*c).data_type().clone(),
                )])?)),
                RuleInput::Float64(_) => Ok(None),
            })
            .collect::<Result<Vec<_>>>()?;

        Ok(Self {
            rule,
            columns,
            inputs,
            projection,
            projected_schema,
            p_keys,
            p_time,
            p_inputs,
            p_carry,
            output_schema,
            key_converter,
            value_converters,
            batches: Vec::new(),
            free_batches: Vec::new(),
            pending: BinaryHeap::new(),
            arrival: 0,
            slots: Vec::new(),
            generations: Vec::new(),
            free_slots: Vec::new(),
            index: HashMap::with_hasher(ahash::RandomState::with_seeds(
                0x243f_6a88_85a3_08d3,
                0x1319_8a2e_0370_7344,
                0xa409_3822_299f_31d0,
                0x082e_fa98_ec4e_6c89,
            )),
            expiry: BinaryHeap::new(),
            watermark: None,
            max_time: None,
            alerts_total: 0,
            alert_at: Vec::new(),
            alerts: Vec::new(),
            emptied: Vec::new(),
            warned_null_time: false,
        })
    }

    /// The rule.
    pub fn rule(&self) -> &R {
        &self.rule
    }

    /// The bound key, time and carried columns.
    pub fn columns(&self) -> &RuleColumns {
        &self.columns
    }

    /// The schema of the alerts (see the [module docs](self)).
    pub fn output_schema(&self) -> SchemaRef {
        self.output_schema.clone()
    }

    /// Number of keys holding state.
    pub fn keys_in_state(&self) -> usize {
        self.index.len()
    }

    /// Number of rows waiting for the watermark.
    pub fn pending_rows(&self) -> usize {
        self.pending.len()
    }

    /// Alerts emitted since creation (restored from snapshots).
    pub fn alerts_emitted(&self) -> u64 {
        self.alerts_total
    }

    /// Buffers the rows of a projected batch (all assumed on time).
    fn ingest(&mut self, batch: RecordBatch, times: Int64Array, rows: &[u32]) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let keys = match &self.key_converter {
            Some(conv) => {
                let cols: Vec<ArrayRef> = self
                    .p_keys
                    .iter()
                    .map(|&p| batch.column(p).clone())
                    .collect();
                Some(conv.convert_columns(&cols)?)
            }
            None => None,
        };
        let mut columns = Vec::with_capacity(self.inputs.len());
        for (i, input) in self.inputs.iter().enumerate() {
            let array = batch.column(self.p_inputs[i]).clone();
            columns.push(match input {
                RuleInput::Float64(_) => {
                    let a = if array.data_type() == &DataType::Float64 {
                        array
                    } else {
                        cast(&array, &DataType::Float64)?
                    };
                    InputColumn::Float64(a.as_primitive::<Float64Type>().clone())
                }
                RuleInput::Value(_) => {
                    let conv = self.value_converters[i].as_ref().ok_or_else(|| {
                        WeirError::Internal("fraud: value input without a converter".into())
                    })?;
                    let rows = conv.convert_columns(std::slice::from_ref(&array))?;
                    InputColumn::Value(array, rows)
                }
            });
        }
        let retained = Retained {
            batch,
            times,
            keys,
            inputs: RowInputs { columns },
            pending: rows.len(),
        };
        let slot = match self.free_batches.pop() {
            Some(s) => {
                self.batches[s as usize] = Some(retained);
                s
            }
            None => {
                self.batches.push(Some(retained));
                u32::try_from(self.batches.len() - 1)
                    .map_err(|_| WeirError::Internal("fraud: too many retained batches".into()))?
            }
        };
        let times = &self
            .batches
            .get(slot as usize)
            .and_then(Option::as_ref)
            .ok_or_else(|| WeirError::Internal("fraud: retained batch missing".into()))?
            .times;
        for &r in rows {
            let t = times.value(r as usize);
            self.pending.push(Reverse((t, self.arrival, slot, r)));
            self.arrival += 1;
        }
        Ok(())
    }

    /// Processes every buffered row with event time `<= upto`, in order.
    fn release(&mut self, upto: EventTime, alert_time: EventTime) -> Result<()> {
        while let Some(&Reverse((t, _, b, r))) = self.pending.peek() {
            if t > upto {
                break;
            }
            self.pending.pop();
            let retained = self
                .batches
                .get_mut(b as usize)
                .and_then(Option::as_mut)
                .ok_or_else(|| WeirError::Internal("fraud: retained batch missing".into()))?;
            retained.pending -= 1;
            if retained.pending == 0 {
                self.emptied.push(b);
            }
            let key: &[u8] = match &retained.keys {
                Some(rows) => rows.row(r as usize).data(),
                None => &[],
            };
            let slot = match self.index.get(key) {
                Some(&s) => s,
                None => {
                    let s = match self.free_slots.pop() {
                        Some(s) => s,
                        None => {
                            self.slots.push(None);
                            self.generations.push(0);
                            u32::try_from(self.slots.len() - 1)
                                .map_err(|_| WeirError::Internal("fraud: too many keys".into()))?
                        }
                    };
                    self.generations[s as usize] = self.generations[s as usize].wrapping_add(1);
                    let shared: Arc<[u8]> = key.into();
                    self.slots[s as usize] = Some(Slot {
                        key: shared.clone(),
                        state: self.rule.new_state(),
                        expires: EventTime::MIN,
                        queued: None,
                    });
                    self.index.insert(shared, s);
                    s
                }
            };
            let entry = self.slots[slot as usize]
                .as_mut()
                .ok_or_else(|| WeirError::Internal("fraud: key slot missing".into()))?;
            let row = RuleRow {
                time: t,
                row: r as usize,
                inputs: &retained.inputs,
            };
            if let Some(alert) = self.rule.on_row(&mut entry.state, &row) {
                self.alert_at.push(AlertAt {
                    batch: b,
                    row: r,
                    time: t,
                    alert_time: alert_time.max(t),
                });
                self.alerts.push(alert);
            }
            // Expired state is dropped by `expire` once every row up to
            // the watermark was processed, not here: later buffered rows
            // of the key may still need it.
            entry.expires = self.rule.expires_at(&entry.state);
            if entry.queued.is_none_or(|q| entry.expires < q) {
                entry.queued = Some(entry.expires);
                self.expiry.push(Reverse((
                    entry.expires,
                    slot,
                    self.generations[slot as usize],
                )));
            }
        }
        Ok(())
    }

    fn remove_slot(&mut self, slot: u32) {
        if let Some(s) = self.slots.get_mut(slot as usize).and_then(Option::take) {
            self.index.remove(&s.key);
            self.free_slots.push(slot);
        }
    }

    /// Drops the state of keys whose expiry time the watermark reached.
    fn expire(&mut self, watermark: EventTime) {
        while let Some(&Reverse((e, slot, generation))) = self.expiry.peek() {
            if e > watermark {
                break;
            }
            self.expiry.pop();
            if self.generations.get(slot as usize) != Some(&generation) {
                continue;
            }
            let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
                continue;
            };
            if entry.expires <= watermark {
                self.remove_slot(slot);
            } else if entry.queued == Some(e) {
                entry.queued = Some(entry.expires);
                self.expiry.push(Reverse((entry.expires, slot, generation)));
            }
        }
    }

    /// Emits the collected alerts as one batch and frees emptied batches.
    fn emit(&mut self, ctx: &OperatorContext, out: &mut Collector) -> Result<()> {
        if !self.alert_at.is_empty() {
            let n = self.alert_at.len();
            // The retained batches the alerts come from, densely numbered.
            let mut used: Vec<u32> = self.alert_at.iter().map(|a| a.batch).collect();
            used.sort_unstable();
            used.dedup();
            let mut batches = Vec::with_capacity(used.len());
            for b in &used {
                batches.push(
                    self.batches
                        .get(*b as usize)
                        .and_then(Option::as_ref)
                        .ok_or_else(|| {
                            WeirError::Internal("fraud: alert from a freed batch".into())
                        })?
                        .batch
                        .clone(),
                );
            }
            let indices: Vec<(usize, usize)> = self
                .alert_at
                .iter()
                .map(|a| (used.binary_search(&a.batch).unwrap_or(0), a.row as usize))
                .collect();
            let take_column = |p: usize| -> Result<ArrayRef> {
                let arrays: Vec<&dyn Array> =
                    batches.iter().map(|b| b.column(p).as_ref()).collect();
                Ok(interleave(&arrays, &indices)?)
            };
            let mut columns = Vec::with_capacity(self.output_schema.fields().len());
            for &p in &self.p_keys {
                columns.push(take_column(p)?);
            }
            columns.extend(self.rule.measure_columns(&self.alerts)?);
            columns.push(Arc::new(TimestampMillisecondArray::from_iter_values(
                self.alert_at.iter().map(|a| a.time),
            )));
            columns.push(Arc::new(TimestampMillisecondArray::from_iter_values(
                self.alert_at.iter().map(|a| a.alert_time),
            )));
            for &p in &self.p_carry {
                columns.push(take_column(p)?);
            }
            out.collect(build_batch(&self.output_schema, columns, n)?);
            ctx.metrics.add_count(ALERTS_COUNTER, n as u64);
            self.alerts_total += n as u64;
            self.alert_at.clear();
            self.alerts.clear();
        }
        for b in self.emptied.drain(..) {
            if let Some(slot) = self.batches.get_mut(b as usize) {
                if slot.as_ref().is_some_and(|r| r.pending == 0) {
                    *slot = None;
                    self.free_batches.push(b);
                }
            }
        }
        Ok(())
    }

    fn current_watermark(&self, ctx: &OperatorContext) -> Option<EventTime> {
        match (ctx.watermark, self.watermark) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }
}

impl<R: FraudRule> Operator for FraudOperator<R> {
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        ctx: &mut OperatorContext,
        _out: &mut Collector,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let batch = batch.project(&self.projection)?;
        let times = to_millis(batch.column(self.p_time), "time column")?;
        let watermark = self.current_watermark(ctx);
        let mut rows = Vec::with_capacity(batch.num_rows());
        let (mut late, mut nulls) = (0u64, 0u64);
        let mut max = self.max_time;
        for (r, t) in times.iter().enumerate() {
            match t {
                None => nulls += 1,
                Some(t) if watermark.is_some_and(|w| t <= w) => late += 1,
                Some(t) => {
                    max = Some(max.map_or(t, |m| m.max(t)));
                    rows.push(r as u32);
                }
            }
        }
        self.max_time = max;
        if late + nulls > 0 {
            ctx.metrics.add_late_dropped(late + nulls);
        }
        if nulls > 0 && !self.warned_null_time {
            self.warned_null_time = true;
            tracing::warn!(node = %ctx.node, rule = self.rule.name(), rows = nulls,
                "dropped rows with a NULL event time");
        }
        self.ingest(batch, times, &rows)
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        let w = self.watermark.map_or(watermark, |c| c.max(watermark));
        self.watermark = Some(w);
        let alert_time = self.max_time.map_or(w, |m| m.min(w));
        self.release(w, alert_time)?;
        self.expire(w);
        self.emit(ctx, out)?;
        out.emit_watermark(watermark);
        Ok(())
    }

    fn on_end(&mut self, ctx: &mut OperatorContext, out: &mut Collector) -> Result<()> {
        let alert_time = self.max_time.unwrap_or(EventTime::MIN);
        self.release(EventTime::MAX, alert_time)?;
        self.emit(ctx, out)
    }

    fn snapshot(&mut self) -> Result<OperatorState> {
        let mut state = OperatorState::empty();
        let meta_schema = Arc::new(Schema::new(vec![
            Field::new("watermark", DataType::Int64, true),
            Field::new("max_time", DataType::Int64, true),
            Field::new("alerts", DataType::UInt64, false),
        ]));
        state.put(
            "meta",
            RecordBatch::try_new(
                meta_schema,
                vec![
                    Arc::new(Int64Array::from(vec![self.watermark])),
                    Arc::new(Int64Array::from(vec![self.max_time])),
                    Arc::new(UInt64Array::from(vec![self.alerts_total])),
                ],
            )?,
        )?;

        // Pending rows in processing order.
        let mut order: Vec<(EventTime, u64, u32, u32)> =
            self.pending.iter().map(|Reverse(p)| *p).collect();
        order.sort_unstable();
        let mut used: Vec<u32> = order.iter().map(|p| p.2).collect();
        used.sort_unstable();
        used.dedup();
        let batches = used
            .iter()
            .map(|b| {
                self.batches
                    .get(*b as usize)
                    .and_then(Option::as_ref)
                    .map(|r| r.batch.clone())
                    .ok_or_else(|| {
                        WeirError::Internal("fraud: pending row of a freed batch".into())
                    })
            })
            .collect::<Result<Vec<_>>>()?;
        let indices: Vec<(usize, usize)> = order
            .iter()
            .map(|p| (used.binary_search(&p.2).unwrap_or(0), p.3 as usize))
            .collect();
        let columns = (0..self.projected_schema.fields().len())
            .map(|c| {
                if batches.is_empty() {
                    return Ok(arrow::array::new_empty_array(
                        self.projected_schema.field(c).data_type(),
                    ));
                }
                let arrays: Vec<&dyn Array> =
                    batches.iter().map(|b| b.column(c).as_ref()).collect();
                Ok(interleave(&arrays, &indices)?)
            })
            .collect::<Result<Vec<_>>>()?;
        state.put(
            "pending",
            build_batch(&self.projected_schema, columns, order.len())?,
        )?;

        let mut keys = BinaryBuilder::new();
        let mut states = BinaryBuilder::new();
        let mut expires = Vec::new();
        let mut writer = StateWriter::default();
        for s in self.slots.iter().flatten() {
            keys.append_value(&*s.key);
            expires.push(s.expires);
            self.rule.encode_state(&s.state, &mut writer);
            states.append_value(writer.take());
        }
        let keys_schema = Arc::new(Schema::new(vec![
            Field::new("key", DataType::Binary, false),
            Field::new("expires", DataType::Int64, false),
            Field::new("state", DataType::Binary, false),
        ]));
        state.put(
            "keys",
            RecordBatch::try_new(
                keys_schema,
                vec![
                    Arc::new(keys.finish()),
                    Arc::new(Int64Array::from(expires)),
                    Arc::new(states.finish()),
                ],
            )?,
        )?;
        Ok(state)
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        if state.is_empty() {
            return Ok(());
        }
        let corrupt = |m: &str| WeirError::State(format!("{}: {m}", self.rule.name()));
        let meta = state.require("meta")?;
        let int = |b: &RecordBatch, name: &str| -> Result<Int64Array> {
            b.column_by_name(name)
                .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int64Type>())
                .cloned()
                .ok_or_else(|| corrupt(&format!("state column '{name}' is missing")))
        };
        if meta.num_rows() != 1 {
            return Err(corrupt("state table 'meta' must have one row"));
        }
        let wm = int(meta, "watermark")?;
        let mt = int(meta, "max_time")?;
        let alerts = meta
            .column_by_name("alerts")
            .and_then(|c| c.as_primitive_opt::<arrow::datatypes::UInt64Type>())
            .ok_or_else(|| corrupt("state column 'alerts' is missing"))?;
        self.watermark = wm.is_valid(0).then(|| wm.value(0));
        self.max_time = mt.is_valid(0).then(|| mt.value(0));
        self.alerts_total = alerts.value(0);

        let keys = state.require("keys")?;
        let key_col = keys
            .column_by_name("key")
            .and_then(|c| c.as_any().downcast_ref::<BinaryArray>())
            .ok_or_else(|| corrupt("state column 'key' is missing"))?;
        let state_col = keys
            .column_by_name("state")
            .and_then(|c| c.as_any().downcast_ref::<BinaryArray>())
            .ok_or_else(|| corrupt("state column 'state' is missing"))?;
        let expires = int(keys, "expires")?;
        self.slots.clear();
        self.generations.clear();
        self.free_slots.clear();
        self.index.clear();
        self.expiry.clear();
        for i in 0..keys.num_rows() {
            let mut reader = StateReader::new(state_col.value(i));
            let s = self.rule.decode_state(&mut reader)?;
            reader.finish()?;
            let slot = self.slots.len() as u32;
            let e = expires.value(i);
            let key: Arc<[u8]> = key_col.value(i).into();
            self.index.insert(key.clone(), slot);
            self.slots.push(Some(Slot {
                key,
                state: s,
                expires: e,
                queued: Some(e),
            }));
            self.generations.push(1);
            self.expiry.push(Reverse((e, slot, 1)));
        }

        let pending = state.require("pending")?;
        if pending.schema().fields() != self.projected_schema.fields() {
            return Err(corrupt(
                "the buffered rows in the snapshot do not have the columns this operator reads",
            ));
        }
        self.batches.clear();
        self.free_batches.clear();
        self.pending.clear();
        let batch = pending.clone().with_schema(self.projected_schema.clone())?;
        let times = to_millis(batch.column(self.p_time), "time column")?;
        let rows: Vec<u32> = (0..batch.num_rows() as u32).collect();
        self.ingest(batch, times, &rows)
    }
}

/// Output helper: a `TIMESTAMP(3)` field.
pub(crate) fn ts_field(name: &str, nullable: bool) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Millisecond, None),
        nullable,
    )
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{rows_of, Harness};
    use arrow::array::{Int64Array, StringArray};
    use weir_engine::operator::Operator;

    /// A user rule: alerts on every second row of a key, measuring the
    /// gap to the previous row.
    #[derive(Debug)]
    struct EverySecond;

    impl FraudRule for EverySecond {
        type State = Option<EventTime>;
        type Alert = i64;
        fn name(&self) -> &'static str {
            "every_second"
        }
        fn inputs(&self) -> Vec<RuleInput> {
            Vec::new()
        }
        fn measure_fields(&self) -> Vec<Field> {
            vec![Field::new("gap", DataType::Int64, false)]
        }
        fn new_state(&self) -> Self::State {
            None
        }
        fn on_row(&self, s: &mut Self::State, row: &RuleRow<'_>) -> Option<i64> {
            match s.take() {
                Some(prev) => Some(row.time() - prev),
                None => {
                    *s = Some(row.time());
                    None
                }
            }
        }
        fn expires_at(&self, s: &Self::State) -> EventTime {
            s.map_or(EventTime::MIN, |t| t + 100)
        }
        fn measure_columns(&self, alerts: &[i64]) -> Result<Vec<ArrayRef>> {
            Ok(vec![Arc::new(Int64Array::from(alerts.to_vec()))])
        }
        fn encode_state(&self, s: &Self::State, out: &mut StateWriter) {
            out.i64(s.unwrap_or(EventTime::MIN));
        }
        fn decode_state(&self, input: &mut StateReader<'_>) -> Result<Self::State> {
            let t = input.i64()?;
            Ok((t != EventTime::MIN).then_some(t))
        }
    }

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![
            Field::new("user", DataType::Utf8, true),
            Field::new("region", DataType::Int64, true),
            Field::new("t", DataType::Int64, true),
            Field::new("note", DataType::Utf8, true),
        ]))
    }

    fn batch(rows: &[(Option<&str>, i64, Option<i64>, &str)]) -> RecordBatch {
        RecordBatch::try_new(
            schema(),
            vec![
                Arc::new(StringArray::from_iter(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.2))),
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.3))),
            ],
        )
        .expect("batch")
    }

    fn operator(keys: Vec<usize>) -> FraudOperator<EverySecond> {
        FraudOperator::try_new(
            EverySecond,
            RuleColumns {
                keys,
                time_column: 2,
                carry: vec![3],
            },
            &schema(),
        )
        .expect("operator")
    }

    #[test]
    fn composite_and_null_keys_bigint_time_and_carried_strings() {
        let op = operator(vec![0, 1]);
        let out = op.output_schema();
        let names: Vec<&str> = out.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            ["user", "region", "gap", "event_time", "alert_time", "note"]
        );
        let mut h = Harness::new(op);
        h.batch(batch(&[
            (Some("a"), 1, Some(30), "a1-second"),
            (Some("a"), 2, Some(5), "a2-first"),
            (None, 1, Some(7), "null-first"),
            (Some("a"), 1, Some(10), "a1-first"),
            (None, 1, Some(9), "null-second"),
            (Some("a"), 2, None, "no time"),
        ]))
        .expect("batch");
        assert_eq!(h.late_dropped(), 1);
        h.watermark(20).expect("wm");
        // Only the null key has two rows up to 20.
        assert_eq!(
            rows_of(&h.take_batches()),
            vec!["null,1,2,9,20,null-second"]
        );
        h.end().expect("end");
        assert_eq!(rows_of(&h.take_batches()), vec!["a,1,20,30,30,a1-second"]);
        assert_eq!(h.op.alerts_emitted(), 2);
        assert_eq!(h.ctx.metrics.count(ALERTS_COUNTER), 2);
    }

    #[test]
    fn no_keys_is_one_key_and_state_expires_after_the_watermark() {
        let mut h = Harness::new(operator(Vec::new()));
        h.batch(batch(&[
            (Some("x"), 0, Some(1), "1"),
            (Some("y"), 0, Some(500), "2"),
        ]))
        .expect("batch");
        h.watermark(100).expect("wm");
        assert_eq!(h.op.keys_in_state(), 1);
        h.watermark(101).expect("wm");
        assert_eq!(h.op.keys_in_state(), 0, "expired at 1 + 100");
        assert_eq!(h.op.pending_rows(), 1);
        h.end().expect("end");
        assert!(h.take_batches().is_empty());
    }

    #[test]
    fn restore_rejects_foreign_or_corrupt_state() {
        let mut a = Harness::new(operator(vec![0]));
        a.batch(batch(&[
            (Some("x"), 0, Some(1), "1"),
            (Some("x"), 0, Some(5), "2"),
        ]))
        .expect("batch");
        a.watermark(2).expect("wm");
        let snap = a.op.snapshot().expect("snapshot");
        // A rule reading other columns cannot take the buffered rows.
        let mut other = FraudOperator::try_new(
            EverySecond,
            RuleColumns {
                keys: vec![1],
                time_column: 2,
                carry: vec![],
            },
            &schema(),
        )
        .expect("operator");
        let e = other.restore(snap.clone()).err().map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("do not have the columns")),
            "{e:?}"
        );
        let mut r = StateReader::new(&[1, 2, 3]);
        assert!(r.i64().is_err());
        let mut b = Harness::new(operator(vec![0]));
        b.op.restore(snap).expect("restore");
        b.end().expect("end");
        assert_eq!(rows_of(&b.take_batches()), vec!["x,4,5,5,2"]);
    }
}
