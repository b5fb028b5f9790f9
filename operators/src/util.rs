//! Small helpers shared by the operators: error conversion, event-time
//! extraction and casting arrays to an output schema.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Int64Array};
use arrow::compute::{cast, prep_null_mask_filter};
use arrow::datatypes::{DataType, Field, Int64Type, SchemaRef, TimeUnit};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion_common::DataFusionError;
use datafusion_physical_expr::PhysicalExpr;
use weir_engine::{Result, WeirError};

/// Wraps a DataFusion error with what was being done.
/// The context is only built on error.
pub(crate) fn df_err<F: FnOnce() -> String>(
    context: F,
) -> impl FnOnce(DataFusionError) -> WeirError {
    move |e| WeirError::external(context(), e)
}

/// Evaluates `expr` on `batch` as an array of `batch.num_rows()` rows.
pub(crate) fn evaluate(
    expr: &Arc<dyn PhysicalExpr>,
    batch: &RecordBatch,
    what: &str,
) -> Result<ArrayRef> {
    expr.evaluate(batch)
        .and_then(|v| v.into_array(batch.num_rows()))
        .map_err(df_err(|| format!("evaluating {what} `{expr}`")))
}

/// Evaluates a boolean predicate; nulls become false.
pub(crate) fn evaluate_predicate(
    expr: &Arc<dyn PhysicalExpr>,
    batch: &RecordBatch,
    what: &str,
) -> Result<BooleanArray> {
    let array = evaluate(expr, batch, what)?;
    let Some(mask) = array.as_boolean_opt() else {
        return Err(WeirError::Execution(format!(
            "{what} `{expr}` evaluated to {}, not BOOLEAN",
            array.data_type()
        )));
    };
    Ok(if mask.null_count() > 0 {
        prep_null_mask_filter(mask)
    } else {
        mask.clone()
    })
}

/// Converts an event-time array (any TIMESTAMP unit, or BIGINT milliseconds)
/// to milliseconds since the epoch. Nulls are kept.
pub(crate) fn to_millis(array: &ArrayRef, what: &str) -> Result<Int64Array> {
    let ms = match array.data_type() {
        DataType::Int64 => array.clone(),
        DataType::Timestamp(TimeUnit::Millisecond, _) => cast(array, &DataType::Int64)?,
        DataType::Timestamp(_, _) => {
            let t = cast(array, &DataType::Timestamp(TimeUnit::Millisecond, None))?;
            cast(&t, &DataType::Int64)?
        }
        other => {
            return Err(WeirError::Execution(format!(
                "{what} must be a TIMESTAMP or BIGINT (epoch milliseconds), not {other}"
            )))
        }
    };
    ms.as_primitive_opt::<Int64Type>()
        .cloned()
        .ok_or_else(|| WeirError::Internal(format!("{what}: cast to Int64 failed")))
}

/// Reads the event-time column `index` of `batch` as epoch milliseconds.
pub(crate) fn event_times(batch: &RecordBatch, index: usize) -> Result<Int64Array> {
    let column = batch.columns().get(index).ok_or_else(|| {
        WeirError::Execution(format!(
            "time column index {index} is out of range: the input has {} columns",
            batch.num_columns()
        ))
    })?;
    let name = batch.schema().field(index).name().clone();
    to_millis(column, &format!("time column '{name}'"))
}

/// Casts `array` to the type of `field` when they differ, naming the field
/// if that is impossible.
pub(crate) fn cast_to_field(array: ArrayRef, field: &Field) -> Result<ArrayRef> {
    if array.data_type() == field.data_type() {
        return Ok(array);
    }
    cast(&array, field.data_type()).map_err(|e| {
        WeirError::Execution(format!(
            "column '{}': cannot convert {} to {}: {e}",
            field.name(),
            array.data_type(),
            field.data_type()
        ))
    })
}

/// Builds a batch of `schema` from `columns` (cast to the schema's types),
/// also when there are no columns.
pub(crate) fn build_batch(
    schema: &SchemaRef,
    columns: Vec<ArrayRef>,
    num_rows: usize,
) -> Result<RecordBatch> {
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(a, f)| cast_to_field(a, f))
        .collect::<Result<Vec<_>>>()?;
    let options = RecordBatchOptions::new().with_row_count(Some(num_rows));
    Ok(RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &options,
    )?)
}
