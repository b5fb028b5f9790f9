//! [`FilterOperator`]: keeps the rows for which a predicate is true.

use std::sync::Arc;

use arrow::compute::filter_record_batch;
use arrow::record_batch::RecordBatch;
use datafusion_physical_expr::PhysicalExpr;
use weir_engine::operator::{Collector, Operator, OperatorContext};
use weir_engine::Result;

use crate::util::evaluate_predicate;

/// Filters batches by a boolean [`PhysicalExpr`] (SQL `WHERE`).
///
/// The predicate is evaluated on the whole batch; rows where it is `NULL`
/// count as false (SQL semantics). Watermarks pass through unchanged.
#[derive(Debug)]
pub struct FilterOperator {
    /// The predicate, over the input schema; must evaluate to BOOLEAN.
    predicate: Arc<dyn PhysicalExpr>,
}

impl FilterOperator {
    /// A filter keeping rows where `predicate` is true.
    pub fn new(predicate: Arc<dyn PhysicalExpr>) -> Self {
        Self { predicate }
    }

    /// The predicate.
    pub fn predicate(&self) -> &Arc<dyn PhysicalExpr> {
        &self.predicate
    }
}

impl Operator for FilterOperator {
    fn process_batch(
        &mut self,
        batch: RecordBatch,
        _ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let mask = evaluate_predicate(&self.predicate, &batch, "filter predicate")?;
        let selected = mask.true_count();
        if selected == batch.num_rows() {
            out.collect(batch);
        } else if selected > 0 {
            out.collect(filter_record_batch(&batch, &mask)?);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use datafusion_expr::Operator as BinOp;
    use datafusion_physical_expr::expressions::{col, lit, BinaryExpr};
    use weir_engine::operator::Output;

    fn batch() -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(vec![Some(1), None, Some(5), Some(10)])),
                Arc::new(StringArray::from(vec!["x", "y", "z", "w"])),
            ],
        )
        .expect("batch")
    }

    fn run(op: &mut FilterOperator, b: RecordBatch) -> Vec<RecordBatch> {
        let mut ctx = OperatorContext::standalone("filter");
        let mut out = Collector::new();
        op.process_batch(b, &mut ctx, &mut out).expect("process");
        out.take()
            .into_iter()
            .filter_map(|o| match o {
                Output::Batch(b) => Some(b),
                Output::Watermark(_) => None,
            })
            .collect()
    }

    #[test]
    fn keeps_true_rows_and_treats_null_as_false() {
        let b = batch();
        let pred = Arc::new(BinaryExpr::new(
            col("a", &b.schema()).expect("col"),
            BinOp::Gt,
            lit(2i64),
        ));
        let mut op = FilterOperator::new(pred);
        let out = run(&mut op, b);
        assert_eq!(out.len(), 1);
        let s = out[0]
            .column(1)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("str");
        assert_eq!(s.iter().collect::<Vec<_>>(), vec![Some("z"), Some("w")]);
    }

    #[test]
    fn all_false_emits_nothing_and_all_true_passes_through() {
        let b = batch();
        let mut none = FilterOperator::new(lit(false));
        assert!(run(&mut none, b.clone()).is_empty());
        let mut all = FilterOperator::new(lit(true));
        let out = run(&mut all, b.clone());
        assert_eq!(out, vec![b]);
    }

    #[test]
    fn non_boolean_predicate_is_an_error() {
        let b = batch();
        let mut op = FilterOperator::new(lit(1i64));
        let mut ctx = OperatorContext::standalone("filter");
        let mut out = Collector::new();
        assert!(op.process_batch(b, &mut ctx, &mut out).is_err());
    }

    #[test]
    fn watermarks_pass_through() {
        let mut op = FilterOperator::new(lit(true));
        let mut ctx = OperatorContext::standalone("filter");
        let mut out = Collector::new();
        op.on_watermark(42, &mut ctx, &mut out).expect("wm");
        assert!(matches!(
            out.take().as_slice(),
            [Output::Watermark(
                weir_engine::message::Watermark::EventTime(42)
            )]
        ));
    }
}
