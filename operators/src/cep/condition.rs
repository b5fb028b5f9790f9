//! `DEFINE` conditions: the [`Condition`] trait and its DataFusion-backed
//! implementation [`ExprCondition`].

use std::fmt;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use datafusion_expr::ColumnarValue;
use datafusion_physical_expr::utils::collect_columns;
use datafusion_physical_expr::PhysicalExpr;
use weir_engine::{Result, WeirError};

use super::context::{Binder, MatchContext, RowExprId};
use super::navigation::{navigation_schema, BoundNavigation, Navigation};
use crate::util::df_err;

/// The condition a row must satisfy to be mapped to a pattern variable
/// (one `DEFINE` entry). A variable without a condition accepts every row.
///
/// Implementations are bound once ([`Condition::bind`]) and then evaluated
/// for each row and partial match that tries to map the row to the
/// variable. A condition that reads only the current row should return its
/// predicate from [`Condition::row_predicate`]: the matcher then evaluates
/// it once per input batch, vectorized, and never calls
/// [`Condition::evaluate`].
pub trait Condition: Send + Sync + fmt::Debug {
    /// Resolves variable names and registers the per-row expressions the
    /// condition reads (see [`Binder`]).
    fn bind(&mut self, binder: &mut Binder<'_>) -> Result<()>;

    /// A BOOLEAN row expression registered in [`Condition::bind`] that is
    /// the whole condition, if it depends on the current row only (NULL is
    /// false).
    fn row_predicate(&self) -> Option<RowExprId> {
        None
    }

    /// Whether the context's current row satisfies the condition.
    fn evaluate(&self, ctx: &MatchContext<'_>) -> Result<bool>;
}

/// A condition written as a DataFusion expression over the input columns
/// (the current row) followed by one column per navigation (see
/// [`navigation_schema`]). NULL counts as false.
///
/// Without navigations the condition reads only the current row and is
/// evaluated vectorized on whole input batches. With navigations, it is
/// evaluated on a one-row batch per (partial match, row): the current row's
/// columns and the navigation values.
///
/// ```
/// # use std::sync::Arc;
/// # use arrow::datatypes::{DataType, Field, Schema};
/// # use datafusion_expr::Operator;
/// # use weir_operators::cep::{expr, ExprCondition, Navigation, VarRef};
/// // B AS B.price > LAST(A.price)
/// let input = Arc::new(Schema::new(vec![Field::new("price", DataType::Int64, true)]));
/// let navs = vec![(
///     "last_a_price".to_string(),
///     Navigation::last(VarRef::var("A"), expr::col("price", &input)?, 0),
/// )];
/// let schema = expr::define_schema(&input, &navs)?;
/// let cond = ExprCondition::new(
///     expr::binary(expr::col("price", &schema)?, Operator::Gt, expr::col("last_a_price", &schema)?, &schema)?,
///     navs,
/// );
/// # Ok::<(), weir_engine::WeirError>(())
/// ```
pub struct ExprCondition {
    expr: Arc<dyn PhysicalExpr>,
    navigations: Vec<(String, Navigation)>,
    bound: Option<Bound>,
}

/// What [`ExprCondition::bind`] prepares.
struct Bound {
    /// Input columns followed by the navigation columns.
    schema: SchemaRef,
    navigations: Vec<BoundNavigation>,
    /// Per input column: whether the expression reads it.
    input_used: Vec<bool>,
    /// One-row NULLs for the input columns the expression does not read.
    input_nulls: Vec<ArrayRef>,
    /// Set when there are no navigations.
    predicate: Option<RowExprId>,
}

impl fmt::Debug for ExprCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExprCondition")
            .field("expr", &format_args!("{}", self.expr))
            .field(
                "navigations",
                &self.navigations.iter().map(|n| &n.0).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl ExprCondition {
    /// A condition from an expression over the input columns followed by
    /// the named navigation columns.
    pub fn new(expr: Arc<dyn PhysicalExpr>, navigations: Vec<(String, Navigation)>) -> Self {
        Self {
            expr,
            navigations,
            bound: None,
        }
    }

    /// A condition on the current row only.
    pub fn row(expr: Arc<dyn PhysicalExpr>) -> Self {
        Self::new(expr, Vec::new())
    }

    /// The expression.
    pub fn expr(&self) -> &Arc<dyn PhysicalExpr> {
        &self.expr
    }

    fn bound(&self) -> Result<&Bound> {
        self.bound
            .as_ref()
            .ok_or_else(|| WeirError::Internal(format!("condition `{}` not bound", self.expr)))
    }
}

impl Condition for ExprCondition {
    fn bind(&mut self, binder: &mut Binder<'_>) -> Result<()> {
        let input = binder.input_schema().clone();
        let schema = navigation_schema(&input, &self.navigations, binder.rowtime_type())?;
        let t = self
            .expr
            .data_type(&schema)
            .map_err(df_err(|| format!("typing condition `{}`", self.expr)))?;
        if t != DataType::Boolean {
            return Err(WeirError::Plan(format!(
                "DEFINE condition `{}` is {t}, not BOOLEAN",
                self.expr
            )));
        }
        let navigations = self
            .navigations
            .iter()
            .map(|(_, n)| n.bind(binder))
            .collect::<Result<Vec<_>>>()?;
        let predicate = if navigations.is_empty() {
            Some(binder.row_expr(self.expr.clone())?)
        } else {
            None
        };
        let mut input_used = vec![false; input.fields().len()];
        for c in collect_columns(&self.expr) {
            if let Some(u) = input_used.get_mut(c.index()) {
                *u = true;
            }
        }
        let input_nulls = input
            .fields()
            .iter()
            .map(|f| new_null_array(f.data_type(), 1))
            .collect();
        self.bound = Some(Bound {
            schema,
            navigations,
            input_used,
            input_nulls,
            predicate,
        });
        Ok(())
    }

    fn row_predicate(&self) -> Option<RowExprId> {
        self.bound.as_ref().and_then(|b| b.predicate)
    }

    fn evaluate(&self, ctx: &MatchContext<'_>) -> Result<bool> {
        let b = self.bound()?;
        let row = ctx.current()?.ok_or_else(|| {
            WeirError::Internal("a DEFINE condition was evaluated without a current row".into())
        })?;
        if let Some(p) = b.predicate {
            let v = row.value(p)?;
            let v = v
                .as_boolean_opt()
                .ok_or_else(|| WeirError::Internal("row predicate is not BOOLEAN".into()))?;
            return Ok(v.is_valid(row.index()) && v.value(row.index()));
        }
        let mut columns = Vec::with_capacity(b.schema.fields().len());
        for (i, used) in b.input_used.iter().enumerate() {
            columns.push(if *used {
                row.batch().column(i).slice(row.index(), 1)
            } else {
                b.input_nulls[i].clone()
            });
        }
        for n in &b.navigations {
            columns.push(n.value(ctx)?);
        }
        let batch = RecordBatch::try_new(b.schema.clone(), columns)?;
        let v = self
            .expr
            .evaluate(&batch)
            .map_err(df_err(|| format!("evaluating DEFINE `{}`", self.expr)))?;
        Ok(match v {
            ColumnarValue::Scalar(s) => {
                matches!(s, datafusion_common::ScalarValue::Boolean(Some(true)))
            }
            ColumnarValue::Array(a) => {
                let a = a.as_boolean_opt().ok_or_else(|| {
                    WeirError::Execution(format!("DEFINE `{}` is not BOOLEAN", self.expr))
                })?;
                a.len() == 1 && a.is_valid(0) && a.value(0)
            }
        })
    }
}
