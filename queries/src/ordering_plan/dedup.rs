//! `ROW_NUMBER() OVER (PARTITION BY k ORDER BY rowtime) … WHERE rn = 1` as a
//! [`Deduplicate`]; the window functions the catalog knows.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, SchemaRef};
use datafusion_common::{Column, ScalarValue};
use datafusion_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion_expr::logical_plan::{Filter, Window};
use datafusion_expr::{
    cast, lit, BinaryExpr, Expr, LogicalPlan, Operator as BinOp, PartitionEvaluator, Signature,
    TypeSignature, Volatility, WindowFunctionDefinition, WindowUDF, WindowUDFImpl,
};
use weir_engine::operator::{Operator, OperatorFactory};
use weir_engine::{Result, WeirError};
use weir_operators::deduplicate::{Deduplicate, DeduplicateConfig};

use crate::lower::{Lowerer, Stream};

use super::{
    add_keyed, column_index, is_time_attribute, plan_err, strip_alias, strip_cast,
    time_attribute_names, Counted,
};

// ---------------------------------------------------------------------------
// ROW_NUMBER() deduplication

/// Flink's window functions, known to the catalog so that queries plan:
/// `ROW_NUMBER()` runs as deduplication; the others reach the lowering and
/// are reported there by name. DataFusion never evaluates them.
#[derive(Debug, PartialEq, Eq, Hash)]
struct FlinkWindowFunction {
    name: &'static str,
    signature: Signature,
}

/// The window functions the catalog knows (lower case).
const WINDOW_FUNCTIONS: [&str; 8] = [
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
];

impl WindowUDFImpl for FlinkWindowFunction {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn partition_evaluator(
        &self,
        _args: PartitionEvaluatorArgs,
    ) -> datafusion_common::Result<Box<dyn PartitionEvaluator>> {
        datafusion_common::not_impl_err!("{}() is planned by Weir, not evaluated", self.name)
    }

    fn field(&self, field_args: WindowUDFFieldArgs) -> datafusion_common::Result<FieldRef> {
        let data_type = match self.name {
            "lag" | "lead" => field_args
                .get_input_field(0)
                .map_or(DataType::Null, |f| f.data_type().clone()),
            "percent_rank" | "cume_dist" => DataType::Float64,
            _ => DataType::UInt64,
        };
        Ok(Arc::new(Field::new(field_args.name(), data_type, true)))
    }
}

/// A window function by name (`ROW_NUMBER`, `RANK`, `LAG`, …), for the catalog.
pub(crate) fn window_function(name: &str) -> Option<Arc<WindowUDF>> {
    let name = WINDOW_FUNCTIONS
        .iter()
        .find(|n| n.eq_ignore_ascii_case(name))?;
    let signature = if *name == "row_number" {
        Signature::nullary(Volatility::Immutable)
    } else {
        Signature::one_of(
            vec![TypeSignature::Nullary, TypeSignature::VariadicAny],
            Volatility::Immutable,
        )
    };
    Some(Arc::new(WindowUDF::new_from_impl(FlinkWindowFunction {
        name,
        signature,
    })))
}

/// Names of the window functions the catalog knows.
pub(crate) fn window_function_names() -> Vec<String> {
    WINDOW_FUNCTIONS.iter().map(|n| n.to_string()).collect()
}

fn is_row_number(e: &Expr) -> bool {
    matches!(
        strip_alias(e),
        Expr::WindowFunction(w) if matches!(&w.fun, WindowFunctionDefinition::WindowUDF(f) if f.name() == "row_number")
    )
}

/// The column compared with 1 in `rn = 1`, `rn <= 1`, `rn < 2` (either side).
fn rank_one_column(predicate: &Expr) -> Option<&Column> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = predicate else {
        return None;
    };
    let int = |e: &Expr| -> Option<i128> {
        match strip_cast(e) {
            Expr::Literal(v, _) => match v {
                ScalarValue::Int8(Some(n)) => Some(*n as i128),
                ScalarValue::Int16(Some(n)) => Some(*n as i128),
                ScalarValue::Int32(Some(n)) => Some(*n as i128),
                ScalarValue::Int64(Some(n)) => Some(*n as i128),
                ScalarValue::UInt8(Some(n)) => Some(*n as i128),
                ScalarValue::UInt16(Some(n)) => Some(*n as i128),
                ScalarValue::UInt32(Some(n)) => Some(*n as i128),
                ScalarValue::UInt64(Some(n)) => Some(*n as i128),
                _ => None,
            },
            _ => None,
        }
    };
    fn column(e: &Expr) -> Option<&Column> {
        match strip_cast(e) {
            Expr::Column(c) => Some(c),
            _ => None,
        }
    }
    let (c, op, n) = if let (Some(c), Some(n)) = (column(left), int(right)) {
        (c, *op, n)
    } else if let (Some(c), Some(n)) = (column(right), int(left)) {
        let flipped = match op {
            BinOp::Lt => BinOp::Gt,
            BinOp::LtEq => BinOp::GtEq,
            BinOp::Gt => BinOp::Lt,
            BinOp::GtEq => BinOp::LtEq,
            o => *o,
        };
        (c, flipped, n)
    } else {
        return None;
    };
    match (op, n) {
        (BinOp::Eq, 1) | (BinOp::LtEq, 1) | (BinOp::Lt, 2) => Some(c),
        _ => None,
    }
}

/// Marks the `ROW_NUMBER()` window under `WHERE rn = 1` (through plain
/// projections) so that [`lower_window`](super::lower_window) plans it as deduplication.
pub(crate) fn mark_deduplication(lw: &mut Lowerer<'_>, f: &Filter) {
    // `rn = 1 AND other conditions`: the other conditions filter the kept
    // rows (the filter still applies the whole predicate), as in Flink.
    for conjunct in datafusion_expr::utils::split_conjunction(&f.predicate) {
        if let Some(c) = rank_one_column(conjunct) {
            mark_column(lw, f, c);
        }
    }
}

fn mark_column(lw: &mut Lowerer<'_>, f: &Filter, c: &Column) {
    let Ok(mut idx) = f.input.schema().index_of_column(c) else {
        return;
    };
    let mut plan: &LogicalPlan = &f.input;
    loop {
        match plan {
            LogicalPlan::Projection(p) => {
                let Some(i) = p
                    .expr
                    .get(idx)
                    .and_then(|e| column_index(e, p.input.schema()))
                else {
                    return;
                };
                idx = i;
                plan = &p.input;
            }
            LogicalPlan::SubqueryAlias(a) => plan = &a.input,
            LogicalPlan::Window(w) => {
                let n = w.input.schema().fields().len();
                if idx >= n && w.window_expr.get(idx - n).is_some_and(is_row_number) {
                    lw.dedup_windows.insert(w as *const Window as usize);
                }
                return;
            }
            _ => return,
        }
    }
}

pub(super) fn lower_deduplication(lw: &mut Lowerer<'_>, w: &Window) -> Result<Stream> {
    let line = lw.line;
    let form = "ROW_NUMBER() OVER (PARTITION BY ... ORDER BY <time attribute> ASC) = 1";
    if w.window_expr.len() != 1 {
        return Err(plan_err(
            line,
            format!("unsupported construct: other window functions beside ROW_NUMBER() in the deduplication form {form}"),
        ));
    }
    let Expr::WindowFunction(wf) = strip_alias(&w.window_expr[0]) else {
        return Err(WeirError::Internal(
            "deduplication without ROW_NUMBER".into(),
        ));
    };
    let params = &wf.params;
    let in_schema = w.input.schema();
    let keys: Vec<usize> = params
        .partition_by
        .iter()
        .map(|p| {
            column_index(p, in_schema).ok_or_else(|| {
                plan_err(
                    line,
                    format!("unsupported construct: ROW_NUMBER() OVER (PARTITION BY {p}): partition by columns only"),
                )
            })
        })
        .collect::<Result<_>>()?;
    let [order] = params.order_by.as_slice() else {
        return Err(plan_err(
            line,
            format!(
                "unsupported construct: ROW_NUMBER() OVER ({} ORDER BY keys): deduplication needs exactly one, the time attribute ({form})",
                params.order_by.len()
            ),
        ));
    };
    let time_column = column_index(&order.expr, in_schema)
        .filter(|&i| is_time_attribute(lw.catalog, &w.input, i))
        .ok_or_else(|| {
            plan_err(
                line,
                format!(
                    "unsupported construct: ROW_NUMBER() OVER (... ORDER BY {}): {} is not a time attribute; deduplication orders by the rowtime attribute (processing-time deduplication is not supported; time attributes here: {})",
                    order.expr,
                    order.expr,
                    time_attribute_names(lw.catalog, &w.input)
                ),
            )
        })?;
    if !order.asc {
        return Err(plan_err(
            line,
            format!(
                "unsupported construct: deduplication keeping the last row (ROW_NUMBER() OVER (... ORDER BY {} DESC) = 1); only keep-first, ORDER BY {} ASC, is supported",
                order.expr, order.expr
            ),
        ));
    }
    let input = lw.lower(&w.input, false)?;
    let arrow: SchemaRef = Arc::new(input.schema.as_arrow().clone());
    let config = DeduplicateConfig::new(arrow.clone(), keys.clone(), time_column);
    config.validate().map_err(|e| plan_err(line, e))?;
    let description = format!(
        "keep first per [{}] by {}",
        params
            .partition_by
            .iter()
            .map(|p| p.to_string())
            .collect::<Vec<_>>()
            .join(", "),
        order.expr
    );
    let factory: Arc<dyn OperatorFactory> = Arc::new(move |_s: usize, _p: usize| {
        let op = Deduplicate::try_new(config.clone())?;
        Ok(Box::new(Counted::new(op, dedup_counters)) as Box<dyn Operator>)
    });
    let node = add_keyed(
        lw,
        &input,
        &keys,
        "deduplicate",
        description,
        arrow,
        factory,
    );
    let parallelism = if keys.is_empty() { 1 } else { lw.parallelism };
    let dedup = Stream::new(node, input.schema.clone(), parallelism);
    // The row number of every row kept is 1.
    let n = in_schema.fields().len();
    let mut exprs: Vec<Expr> = (0..n)
        .map(|i| Expr::Column(Column::from(dedup.schema.qualified_field(i))))
        .collect();
    let (q, f) = w.schema.qualified_field(n);
    let one = cast(lit(ScalarValue::UInt64(Some(1))), f.data_type().clone());
    exprs.push(one.alias_qualified(q.cloned(), f.name()));
    lw.project(&dedup, &exprs, w.schema.clone(), "row_number")
}

fn dedup_counters(op: &Deduplicate) -> Vec<(&'static str, u64)> {
    vec![("duplicate_rows", op.stats().duplicate_rows)]
}
