//! Helpers shared by the ordering operators (sequence ordering,
//! deduplication, temporal sort, OVER aggregation); not an operator.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array, RecordBatch, UInt64Array};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema, SchemaRef, TimeUnit};
use weir_engine::operator::OperatorContext;
use weir_engine::{Result, WeirError};

/// A min-queue of timers `(time, tiebreak, payload)`: the smallest time (then
/// tiebreak) first. Entries may be stale; callers validate them when popped.
#[derive(Debug, Default)]
pub(crate) struct TimerQueue<P: Ord> {
    heap: BinaryHeap<Reverse<(i64, u64, P)>>,
}

impl<P: Ord + Copy> TimerQueue<P> {
    /// An empty queue.
    pub(crate) fn new() -> Self {
        Self {
            heap: BinaryHeap::new(),
        }
    }

    /// Adds a timer.
    #[inline]
    pub(crate) fn push(&mut self, time: i64, tiebreak: u64, payload: P) {
        self.heap.push(Reverse((time, tiebreak, payload)));
    }

    /// Removes and returns the first timer with `time <= limit`.
    #[inline]
    pub(crate) fn pop_until(&mut self, limit: i64) -> Option<(i64, u64, P)> {
        match self.heap.peek() {
            Some(Reverse((t, _, _))) if *t <= limit => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// The entries, in no particular order (including stale ones).
    pub(crate) fn entries(&self) -> impl Iterator<Item = (i64, u64, P)> + '_ {
        self.heap.iter().map(|Reverse(e)| *e)
    }

    /// Removes every entry.
    pub(crate) fn clear(&mut self) {
        self.heap.clear();
    }
}

/// Event times of a batch with the rows whose time is NULL: those are dropped
/// by every ordering operator, counted in `late_rows_dropped` and logged once.
pub(crate) struct Times {
    /// Epoch milliseconds (0 where NULL).
    pub(crate) values: Int64Array,
    /// True if some time is NULL.
    pub(crate) has_nulls: bool,
}

impl Times {
    /// Reads the event-time column of `batch`.
    pub(crate) fn read(batch: &RecordBatch, column: usize) -> Result<Self> {
        let values = crate::util::event_times(batch, column)?;
        let has_nulls = values.null_count() > 0;
        Ok(Self { values, has_nulls })
    }

    /// The time of `row`, `None` when NULL.
    #[inline]
    pub(crate) fn get(&self, row: usize) -> Option<i64> {
        if self.has_nulls && self.values.is_null(row) {
            None
        } else {
            Some(self.values.values()[row])
        }
    }
}

/// Counts rows dropped for a NULL event time (as late) and warns once.
pub(crate) fn count_null_times(ctx: &OperatorContext, rows: u64, warned: &mut bool) {
    if rows == 0 {
        return;
    }
    ctx.metrics.add_late_dropped(rows);
    if !*warned {
        *warned = true;
        tracing::warn!(node = %ctx.node, rows, "dropped rows with a NULL event time");
    }
}

/// Checks that `column` is an event-time column of `schema`: a TIMESTAMP (any
/// unit) or BIGINT epoch milliseconds.
pub(crate) fn check_time_column(schema: &Schema, column: usize, what: &str) -> Result<()> {
    let field = field(schema, column, what, "time column")?;
    match field.data_type() {
        DataType::Timestamp(_, _) | DataType::Int64 => Ok(()),
        other => Err(WeirError::Plan(format!(
            "{what}: time column '{}' must be a TIMESTAMP or BIGINT, not {other}",
            field.name()
        ))),
    }
}

/// The field `column` of `schema`, or a plan error naming `role`.
pub(crate) fn field<'a>(
    schema: &'a Schema,
    column: usize,
    what: &str,
    role: &str,
) -> Result<&'a Field> {
    schema
        .fields()
        .get(column)
        .map(|f| f.as_ref())
        .ok_or_else(|| {
            WeirError::Plan(format!(
                "{what}: {role} {column} is out of range: the input has {} columns",
                schema.fields().len()
            ))
        })
}

/// True for the integer types a sequence column may have.
pub(crate) fn is_sequence_type(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Int8
            | DataType::Int16
            | DataType::Int32
            | DataType::Int64
            | DataType::UInt8
            | DataType::UInt16
            | DataType::UInt32
            | DataType::UInt64
    )
}

/// Reads an integer column as Int64 (nulls kept). UInt64 values above
/// `i64::MAX` are an error naming the column.
pub(crate) fn int64_values(batch: &RecordBatch, column: usize, what: &str) -> Result<Int64Array> {
    let array = batch.columns().get(column).ok_or_else(|| {
        WeirError::Execution(format!(
            "{what} {column} is out of range: the input has {} columns",
            batch.num_columns()
        ))
    })?;
    if let Some(u) = array.as_any().downcast_ref::<UInt64Array>() {
        if let Some(max) = arrow::compute::max(u) {
            if max > i64::MAX as u64 {
                return Err(WeirError::Execution(format!(
                    "{what} '{}' holds {max}, above the largest supported sequence number {}",
                    batch.schema().field(column).name(),
                    i64::MAX
                )));
            }
        }
    }
    let cast = cast(array, &DataType::Int64)?;
    cast.as_primitive_opt::<Int64Type>()
        .cloned()
        .ok_or_else(|| WeirError::Internal(format!("{what}: cast to Int64 failed")))
}

/// The `TIMESTAMP(3)` type of times the operators produce.
pub(crate) fn timestamp_ms() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, None)
}

/// A one-table state batch from (name, column) pairs (all nullable).
pub(crate) fn state_batch(columns: Vec<(&str, ArrayRef)>) -> Result<RecordBatch> {
    let fields: Vec<Field> = columns
        .iter()
        .map(|(n, c)| Field::new(*n, c.data_type().clone(), true))
        .collect();
    let arrays = columns.into_iter().map(|(_, c)| c).collect();
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)?)
}

/// Appends key columns (named `key0..`) in front of `columns`.
pub(crate) fn with_keys(
    key_fields: Vec<Field>,
    keys: Vec<ArrayRef>,
    columns: Vec<(&str, ArrayRef)>,
) -> Result<RecordBatch> {
    let mut fields: Vec<Field> = key_fields;
    let mut arrays: Vec<ArrayRef> = keys;
    for (n, c) in columns {
        fields.push(Field::new(n, c.data_type().clone(), true));
        arrays.push(c);
    }
    let schema: SchemaRef = Arc::new(Schema::new(fields));
    if arrays.is_empty() {
        return Ok(RecordBatch::new_empty(schema));
    }
    Ok(RecordBatch::try_new(schema, arrays)?)
}

/// A named Float64 column of a state table.
pub(crate) fn float64_column<'a>(table: &'a RecordBatch, name: &str) -> Result<&'a Float64Array> {
    table
        .column_by_name(name)
        .and_then(|c| c.as_primitive_opt::<Float64Type>())
        .ok_or_else(|| WeirError::State(format!("state column '{name}' is missing or not Float64")))
}

/// Value of a nullable Int64 state column at `i`.
#[inline]
pub(crate) fn opt_i64(a: &Int64Array, i: usize) -> Option<i64> {
    a.is_valid(i).then(|| a.value(i))
}
