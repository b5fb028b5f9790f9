//! Navigation: the values `DEFINE` and `MEASURES` expressions read from
//! other rows of the match — `PREV`, `FIRST`, `LAST`, aggregates over a
//! variable's rows and `MATCH_ROWTIME()`.
//!
//! A [`Navigation`] computes one value per evaluation from a
//! [`MatchContext`]. The built-in [`super::condition::ExprCondition`] and
//! [`super::measure::ExprMeasure`] expose each navigation as an extra column
//! next to the input columns, so that the rest of the expression is an
//! ordinary DataFusion [`PhysicalExpr`]: `B.price > LAST(A.price) * 1.1`
//! becomes `price > nav0 * 1.1` with `nav0 = Navigation::last(A, price, 0)`.
//! [`navigation_schema`] gives the schema such an expression is planned
//! against.
//!
//! Semantics (Flink's):
//!
//! - `FIRST(v.x, n)` / `LAST(v.x, n)`: `x` at the `n`-th row from the start
//!   / end of the rows mapped to `v` (`*` = all variables); NULL when there
//!   are not enough rows. In a `DEFINE` of `v`, `LAST(v.x)` is the current
//!   row and `LAST(v.x, 1)` the one mapped to `v` before it.
//! - aggregates (`COUNT`, `SUM`, `AVG`, `MIN`, `MAX`, or any DataFusion
//!   aggregate) run over the rows mapped to `v`, including the current row
//!   when it is being mapped to `v` (running aggregates in `DEFINE`).
//! - `PREV(x, n)`: `x` at the row `n` rows before the current row (in
//!   `MEASURES`: before the last row of the match) in the partition,
//!   whatever it was mapped to; NULL before the partition's first row.
//!   Flink accepts only `n = 0`; larger offsets are a Weir extension with
//!   the SQL standard's meaning.
//! - `MATCH_ROWTIME()`: see [`MatchContext::match_rowtime`] (normally the
//!   event time of the match's last row).

use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, TimestampMillisecondArray};
use arrow::compute::{cast, interleave};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_common::ScalarValue;
use datafusion_functions_aggregate::average::avg_udaf;
use datafusion_functions_aggregate::count::count_udaf;
use datafusion_functions_aggregate::min_max::{max_udaf, min_udaf};
use datafusion_functions_aggregate::sum::sum_udaf;
use datafusion_physical_expr::aggregate::{AggregateExprBuilder, AggregateFunctionExpr};
use datafusion_physical_expr::expressions::{cast as cast_expr, lit};
use datafusion_physical_expr::PhysicalExpr;
use weir_engine::{Result, WeirError};

use super::context::{Binder, MatchContext, MatchRow, RowExprId, VarRef, VarSet};
use crate::util::df_err;

/// A built-in aggregate for [`Navigation::aggregate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AggFunc {
    /// `COUNT(x)` (non-null values) or `COUNT(*)` (rows): BIGINT.
    Count,
    /// `SUM(x)`: DataFusion's sum type (BIGINT for integers, DOUBLE for
    /// floats, DECIMAL for decimals).
    Sum,
    /// `AVG(x)`: DOUBLE (integer arguments are cast to DOUBLE). Flink's
    /// `AVG` of an integer column is an integer; cast the result to get it.
    Avg,
    /// `MIN(x)`: the argument type.
    Min,
    /// `MAX(x)`: the argument type.
    Max,
}

/// A value read from the match. See the [module docs](self).
#[derive(Debug, Clone)]
pub enum Navigation {
    /// `PREV(arg, offset)`.
    Prev {
        /// Expression over the input schema, evaluated at the target row.
        arg: Arc<dyn PhysicalExpr>,
        /// Rows back (0 = the current row).
        offset: usize,
    },
    /// `FIRST(var.arg, offset)`.
    First {
        /// Whose rows.
        var: VarRef,
        /// Expression over the input schema, evaluated at the target row.
        arg: Arc<dyn PhysicalExpr>,
        /// Position from the first row (0 = first).
        offset: usize,
    },
    /// `LAST(var.arg, offset)`; also what `var.arg` means.
    Last {
        /// Whose rows.
        var: VarRef,
        /// Expression over the input schema, evaluated at the target row.
        arg: Arc<dyn PhysicalExpr>,
        /// Position from the last row (0 = last).
        offset: usize,
    },
    /// An aggregate over the rows mapped to `var`; its arguments are
    /// expressions over the input schema.
    Aggregate {
        /// Whose rows.
        var: VarRef,
        /// The aggregate (built for the input schema).
        function: Arc<AggregateFunctionExpr>,
    },
    /// `MATCH_ROWTIME()`.
    MatchRowtime,
}

impl Navigation {
    /// `PREV(arg, offset)`.
    pub fn prev(arg: Arc<dyn PhysicalExpr>, offset: usize) -> Self {
        Navigation::Prev { arg, offset }
    }

    /// `FIRST(var.arg, offset)`.
    pub fn first(var: VarRef, arg: Arc<dyn PhysicalExpr>, offset: usize) -> Self {
        Navigation::First { var, arg, offset }
    }

    /// `LAST(var.arg, offset)`.
    pub fn last(var: VarRef, arg: Arc<dyn PhysicalExpr>, offset: usize) -> Self {
        Navigation::Last { var, arg, offset }
    }

    /// A built-in aggregate over `var`'s rows; `arg = None` is `COUNT(*)`.
    pub fn aggregate(
        func: AggFunc,
        var: VarRef,
        arg: Option<Arc<dyn PhysicalExpr>>,
        input_schema: &SchemaRef,
    ) -> Result<Self> {
        let (udaf, name) = match func {
            AggFunc::Count => (count_udaf(), "count"),
            AggFunc::Sum => (sum_udaf(), "sum"),
            AggFunc::Avg => (avg_udaf(), "avg"),
            AggFunc::Min => (min_udaf(), "min"),
            AggFunc::Max => (max_udaf(), "max"),
        };
        let arg = match (func, arg) {
            (AggFunc::Count, None) => lit(ScalarValue::Int64(Some(1))),
            (_, None) => {
                return Err(WeirError::Plan(format!(
                    "{name}(*) is not an aggregate; only COUNT(*) is"
                )))
            }
            (AggFunc::Avg, Some(a)) => {
                let t = a
                    .data_type(input_schema)
                    .map_err(df_err(|| format!("typing the argument of {name}")))?;
                if t.is_numeric() && !matches!(t, DataType::Decimal128(..) | DataType::Float64) {
                    cast_expr(a, input_schema, DataType::Float64)
                        .map_err(df_err(|| format!("casting the argument of {name}")))?
                } else {
                    a
                }
            }
            (_, Some(a)) => a,
        };
        let function = AggregateExprBuilder::new(udaf, vec![arg])
            .schema(input_schema.clone())
            .alias(format!("{name}({var})"))
            .build()
            .map_err(df_err(|| format!("building {name} over {var}")))?;
        Ok(Navigation::Aggregate {
            var,
            function: Arc::new(function),
        })
    }

    /// `MATCH_ROWTIME()`.
    pub fn match_rowtime() -> Self {
        Navigation::MatchRowtime
    }

    /// The value's type for rows of `input`; `rowtime` is the type of
    /// `MATCH_ROWTIME()` (see [`Binder::rowtime_type`]).
    pub fn data_type(&self, input: &Schema, rowtime: &DataType) -> Result<DataType> {
        match self {
            Navigation::Prev { arg, .. }
            | Navigation::First { arg, .. }
            | Navigation::Last { arg, .. } => arg
                .data_type(input)
                .map_err(df_err(|| format!("typing navigation argument `{arg}`"))),
            Navigation::Aggregate { function, .. } => Ok(function.field().data_type().clone()),
            Navigation::MatchRowtime => Ok(rowtime.clone()),
        }
    }

    /// Resolves names and registers argument expressions.
    pub(crate) fn bind(&self, binder: &mut Binder<'_>) -> Result<BoundNavigation> {
        let data_type = self.data_type(binder.input_schema(), binder.rowtime_type())?;
        let kind = match self {
            Navigation::Prev { arg, offset } => {
                binder.look_back(*offset);
                Kind::Prev {
                    arg: binder.row_expr(arg.clone())?,
                    offset: *offset,
                }
            }
            Navigation::First { var, arg, offset } => Kind::Row {
                vars: binder.resolve(var)?,
                arg: binder.row_expr(arg.clone())?,
                offset: *offset,
                from_end: false,
            },
            Navigation::Last { var, arg, offset } => Kind::Row {
                vars: binder.resolve(var)?,
                arg: binder.row_expr(arg.clone())?,
                offset: *offset,
                from_end: true,
            },
            Navigation::Aggregate { var, function } => Kind::Aggregate {
                vars: binder.resolve(var)?,
                args: function
                    .expressions()
                    .into_iter()
                    .map(|a| binder.row_expr(a))
                    .collect::<Result<_>>()?,
                function: function.clone(),
            },
            Navigation::MatchRowtime => Kind::MatchRowtime,
        };
        Ok(BoundNavigation {
            null: new_null_array(&data_type, 1),
            data_type,
            kind,
        })
    }
}

/// The schema of the input columns followed by one column per navigation
/// (all nullable): what a [`super::condition::ExprCondition`] or
/// [`super::measure::ExprMeasure`] expression is planned against.
/// `rowtime` is the type of `MATCH_ROWTIME()`.
pub fn navigation_schema(
    input: &Schema,
    navigations: &[(String, Navigation)],
    rowtime: &DataType,
) -> Result<SchemaRef> {
    let mut fields: Vec<Field> = input
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    for (name, nav) in navigations {
        if fields.iter().any(|f| f.name() == name) {
            return Err(WeirError::Plan(format!(
                "navigation column name '{name}' is already used"
            )));
        }
        fields.push(Field::new(name, nav.data_type(input, rowtime)?, true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

#[derive(Debug, Clone)]
enum Kind {
    Prev {
        arg: RowExprId,
        offset: usize,
    },
    Row {
        vars: VarSet,
        arg: RowExprId,
        offset: usize,
        from_end: bool,
    },
    Aggregate {
        vars: VarSet,
        args: Vec<RowExprId>,
        function: Arc<AggregateFunctionExpr>,
    },
    MatchRowtime,
}

/// A navigation bound to a matcher.
#[derive(Debug, Clone)]
pub(crate) struct BoundNavigation {
    kind: Kind,
    data_type: DataType,
    /// A one-row NULL of `data_type`.
    null: ArrayRef,
}

impl BoundNavigation {
    /// The target row of a row navigation.
    fn target<'a>(&self, ctx: &MatchContext<'a>) -> Result<Option<(MatchRow<'a>, RowExprId)>> {
        Ok(match &self.kind {
            Kind::Prev { arg, offset } => ctx.prev(*offset)?.map(|r| (r, *arg)),
            Kind::Row {
                vars,
                arg,
                offset,
                from_end,
            } => {
                let row = if *from_end {
                    ctx.last(*vars, *offset)?
                } else {
                    ctx.first(*vars, *offset)?
                };
                row.map(|r| (r, *arg))
            }
            _ => None,
        })
    }

    /// The value for one context, as a one-row array.
    pub(crate) fn value(&self, ctx: &MatchContext<'_>) -> Result<ArrayRef> {
        match &self.kind {
            Kind::Prev { .. } | Kind::Row { .. } => Ok(match self.target(ctx)? {
                Some((row, arg)) => row.value(arg)?.slice(row.index(), 1),
                None => self.null.clone(),
            }),
            Kind::Aggregate { .. } => self
                .aggregate(ctx)?
                .to_array()
                .map_err(df_err(|| "converting an aggregate value".to_string())),
            Kind::MatchRowtime => self.rowtime(std::slice::from_ref(ctx)),
        }
    }

    /// The values for many contexts (one per match), as an array.
    pub(crate) fn column(&self, ctxs: &[MatchContext<'_>]) -> Result<ArrayRef> {
        match &self.kind {
            Kind::Prev { .. } | Kind::Row { .. } => {
                // Source 0 is the NULL; the others are the chunks' columns.
                let mut sources: Vec<(u32, RowExprId, &dyn Array)> = Vec::new();
                let mut indices = Vec::with_capacity(ctxs.len());
                let mut arrays: Vec<&dyn Array> = vec![self.null.as_ref()];
                for ctx in ctxs {
                    match self.target(ctx)? {
                        None => indices.push((0, 0)),
                        Some((row, arg)) => {
                            let key = (row.chunk(), arg);
                            let src = match sources.iter().position(|s| (s.0, s.1) == key) {
                                Some(i) => i + 1,
                                None => {
                                    let col = row.value(arg)?;
                                    sources.push((key.0, key.1, col.as_ref()));
                                    arrays.push(col.as_ref());
                                    sources.len()
                                }
                            };
                            indices.push((src, row.index()));
                        }
                    }
                }
                Ok(interleave(&arrays, &indices)?)
            }
            Kind::Aggregate { .. } => {
                let values = ctxs
                    .iter()
                    .map(|c| self.aggregate(c))
                    .collect::<Result<Vec<_>>>()?;
                if values.is_empty() {
                    return Ok(new_null_array(&self.data_type, 0));
                }
                ScalarValue::iter_to_array(values)
                    .map_err(df_err(|| "building aggregate values".to_string()))
            }
            Kind::MatchRowtime => self.rowtime(ctxs),
        }
    }

    fn rowtime(&self, ctxs: &[MatchContext<'_>]) -> Result<ArrayRef> {
        let ts = ctxs
            .iter()
            .map(MatchContext::match_rowtime)
            .collect::<Result<Vec<_>>>()?;
        let array: ArrayRef = Arc::new(TimestampMillisecondArray::from(ts));
        Ok(cast(&array, &self.data_type)?)
    }

    /// Runs the aggregate over the context's rows of its variable.
    fn aggregate(&self, ctx: &MatchContext<'_>) -> Result<ScalarValue> {
        let Kind::Aggregate {
            vars,
            args,
            function,
        } = &self.kind
        else {
            return Err(WeirError::Internal("not an aggregate".into()));
        };
        let what = || format!("evaluating {}", function.name());
        let mut acc = function.create_accumulator().map_err(df_err(what))?;
        let rows = ctx.rows(*vars);
        if !rows.is_empty() {
            let rows = rows
                .iter()
                .map(|s| ctx.row(s))
                .collect::<Result<Vec<_>>>()?;
            let columns = args
                .iter()
                .map(|&arg| gather(&rows, arg))
                .collect::<Result<Vec<_>>>()?;
            acc.update_batch(&columns).map_err(df_err(what))?;
        }
        let v = acc.evaluate().map_err(df_err(what))?;
        if v.data_type() == self.data_type {
            Ok(v)
        } else {
            v.cast_to(&self.data_type).map_err(df_err(what))
        }
    }
}

/// The values of a row expression at `rows`, as one array.
fn gather(rows: &[MatchRow<'_>], arg: RowExprId) -> Result<ArrayRef> {
    if let Some(first) = rows.first() {
        // Consecutive rows of one chunk (the common case): a zero-copy slice.
        let contiguous = rows
            .iter()
            .enumerate()
            .all(|(i, r)| r.chunk() == first.chunk() && r.index() == first.index() + i);
        if contiguous {
            return Ok(first.value(arg)?.slice(first.index(), rows.len()));
        }
    }
    let mut chunks: Vec<(u32, &dyn Array)> = Vec::new();
    let mut indices = Vec::with_capacity(rows.len());
    for r in rows {
        let src = match chunks.iter().position(|c| c.0 == r.chunk()) {
            Some(i) => i,
            None => {
                let col = r
                    .derived()
                    .get(arg.0)
                    .ok_or_else(|| WeirError::Internal("row expression missing".into()))?;
                chunks.push((r.chunk(), col.as_ref()));
                chunks.len() - 1
            }
        };
        indices.push((src, r.index()));
    }
    let arrays: Vec<&dyn Array> = chunks.iter().map(|c| c.1).collect();
    Ok(interleave(&arrays, &indices)?)
}
