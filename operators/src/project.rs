//! [`ProjectOperator`]: computes a list of expressions into a batch of a
//! given schema (SQL `SELECT` list).

use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion_physical_expr::PhysicalExpr;
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_engine::{Result, WeirError};

use crate::util::evaluate;

/// Evaluates one [`PhysicalExpr`] per output column.
///
/// The output batch has exactly the schema given at construction. Its
/// fields may differ from what the expressions report in nullability
/// (the schema wins) and, for string types, in representation: a value of
/// `Utf8`, `LargeUtf8`, `Utf8View` or a string dictionary is cast to the
/// string type of the schema (likewise for the binary types). A `NULL`
/// literal is cast to the column's type, and a timestamp is relabelled to the
/// schema's time zone when the unit matches. Any other type mismatch is an
/// error naming the column. Watermarks pass through unchanged.
#[derive(Debug)]
pub struct ProjectOperator {
    /// One expression per output column, over the input schema.
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    /// The output schema.
    schema: SchemaRef,
}

impl ProjectOperator {
    /// A projection computing `exprs` into batches of `schema`. Fails if
    /// the number of expressions differs from the number of fields.
    pub fn try_new(exprs: Vec<Arc<dyn PhysicalExpr>>, schema: SchemaRef) -> Result<Self> {
        if exprs.len() != schema.fields().len() {
            return Err(WeirError::Plan(format!(
                "projection has {} expressions but its output schema has {} columns",
                exprs.len(),
                schema.fields().len()
            )));
        }
        Ok(Self { exprs, schema })
    }

    /// The output schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The expressions, one per output column.
    pub fn exprs(&self) -> &[Arc<dyn PhysicalExpr>] {
        &self.exprs
    }
}

/// True for the string types a projection converts between freely.
fn is_string(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}

/// True for the binary types a projection converts between freely.
fn is_binary(t: &DataType) -> bool {
    match t {
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => true,
        DataType::Dictionary(_, v) => is_binary(v),
        _ => false,
    }
}

/// Converts `array` to the type of `field` if that is an allowed
/// representation change, or fails naming the column.
fn conform(array: ArrayRef, field: &Field) -> Result<ArrayRef> {
    let (from, to) = (array.data_type(), field.data_type());
    if from == to {
        return Ok(array);
    }
    let allowed = (is_string(from) && is_string(to))
        || (is_binary(from) && is_binary(to))
        || *from == DataType::Null
        || matches!((from, to), (DataType::Timestamp(a, _), DataType::Timestamp(b, _)) if a == b);
    if !allowed {
        return Err(WeirError::Execution(format!(
            "projection column '{}': expression produced {from}, but the output schema says {to}",
            field.name()
        )));
    }
    cast(&array, to).map_err(|e| {
        WeirError::Execution(format!(
            "projection column '{}': cannot convert {from} to {to}: {e}",
            field.name()
        ))
    })
}

impl Operator for ProjectOperator {
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let columns = self
            .exprs
            .iter()
            .zip(self.schema.fields())
            .map(|(expr, field)| {
                let what = format!("projection column '{}'", field.name());
                conform(evaluate(expr, &batch, &what)?, field)
            })
            .collect::<Result<Vec<_>>>()?;
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        let projected = RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(|e| WeirError::Execution(format!("projection: {e}")))?;
        out.collect(projected);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array, LargeStringArray, StringArray};
    use arrow::datatypes::Schema;
    use datafusion_expr::Operator as BinOp;
    use datafusion_physical_expr::expressions::{col, lit, BinaryExpr};
    use weir_engine::operator::Output;

    fn input() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(StringArray::from(vec![Some("x"), None, Some("z")])),
            ],
        )
        .expect("batch")
    }

    fn run(op: &mut ProjectOperator, b: RecordBatch) -> Result<Vec<RecordBatch>> {
        let mut ctx = OperatorContext::standalone("project");
        let mut out = Collector::new();
        op.process_batch(b, &mut ctx, &mut out)?;
        Ok(out
            .take()
            .into_iter()
            .filter_map(|o| match o {
                Output::Batch(b) => Some(b),
                Output::Watermark(_) => None,
            })
            .collect())
    }

    #[test]
    fn computes_expressions_with_the_given_schema() {
        let b = input();
        let s = b.schema();
        let exprs: Vec<Arc<dyn PhysicalExpr>> = vec![
            Arc::new(BinaryExpr::new(
                col("a", &s).expect("a"),
                BinOp::Multiply,
                lit(10i64),
            )),
            col("s", &s).expect("s"),
        ];
        // Nullable although the expression is not; LargeUtf8 although it is Utf8.
        let schema = Arc::new(Schema::new(vec![
            Field::new("a10", DataType::Int64, true),
            Field::new("s", DataType::LargeUtf8, true),
        ]));
        let mut op = ProjectOperator::try_new(exprs, schema.clone()).expect("new");
        let out = run(&mut op, b).expect("run");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].schema(), schema);
        let a = out[0]
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("i64");
        assert_eq!(a.values().to_vec(), vec![10, 20, 30]);
        let s = out[0]
            .column(1)
            .as_any()
            .downcast_ref::<LargeStringArray>()
            .expect("large utf8");
        assert_eq!(
            s.iter().collect::<Vec<_>>(),
            vec![Some("x"), None, Some("z")]
        );
    }

    #[test]
    fn type_mismatch_names_the_column() {
        let b = input();
        let exprs = vec![col("a", &b.schema()).expect("a")];
        let schema = Arc::new(Schema::new(vec![Field::new(
            "amount",
            DataType::Utf8,
            true,
        )]));
        let mut op = ProjectOperator::try_new(exprs, schema).expect("new");
        let err = run(&mut op, b).expect_err("mismatch").to_string();
        assert!(err.contains("'amount'"), "{err}");
    }

    #[test]
    fn wrong_arity_is_a_plan_error() {
        let schema = Arc::new(Schema::new(vec![Field::new("a", DataType::Int64, true)]));
        assert!(ProjectOperator::try_new(vec![], schema).is_err());
    }

    #[test]
    fn empty_projection_keeps_row_count() {
        let schema = Arc::new(Schema::empty());
        let mut op = ProjectOperator::try_new(vec![], schema).expect("new");
        let out = run(&mut op, input()).expect("run");
        assert_eq!(out[0].num_rows(), 3);
        assert_eq!(out[0].num_columns(), 0);
    }
}
