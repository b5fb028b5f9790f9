//! `agg(x) OVER (…)` as an [`OverAggregate`]; Flink's types for its results.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field};
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::{Column, DFSchema, ScalarValue};
use datafusion_expr::expr::{WindowFunction, WindowFunctionParams};
use datafusion_expr::logical_plan::{Projection, Window};
use datafusion_expr::{
    cast, Expr, ExprSchemable, LogicalPlan, Signature, Volatility, WindowFrameBound,
    WindowFrameUnits, WindowFunctionDefinition,
};
use weir_engine::operator::{Operator, OperatorFactory};
use weir_engine::{Result, WeirError};
use weir_operators::over_aggregate::{
    OverAggregate, OverAggregateCall, OverAggregateConfig, OverFrame, OverFunction,
};
use WindowFunctionDefinition::WindowUDF as WindowUDFDef;

use crate::lower::{Lowerer, Stream};

use super::{
    add_keyed, column_index, is_time_attribute, plan_err, strip_alias, time_attribute_names,
};

// ---------------------------------------------------------------------------
// OVER aggregation

/// A `Window` node as an [`OverAggregateConfig`] (time attribute not yet
/// checked) plus the computed arguments projected in front of it.
struct OverPlan {
    config: OverAggregateConfig,
    /// Computed arguments, appended to the input columns first.
    extra_args: Vec<Expr>,
    /// The ORDER BY expression (for messages).
    order: Expr,
}

fn interval_ms(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::IntervalDayTime(Some(d)) => {
            Some(d.days as i64 * 86_400_000 + d.milliseconds as i64)
        }
        ScalarValue::IntervalMonthDayNano(Some(m)) if m.months == 0 => {
            Some(m.days as i64 * 86_400_000 + m.nanoseconds / 1_000_000)
        }
        ScalarValue::DurationMillisecond(Some(n)) => Some(*n),
        ScalarValue::DurationSecond(Some(n)) => Some(n * 1000),
        _ => None,
    }
}

fn over_function(name: &str) -> Option<OverFunction> {
    Some(match name.to_ascii_lowercase().as_str() {
        "count" => OverFunction::Count,
        "sum" => OverFunction::Sum,
        "avg" | "mean" => OverFunction::Avg,
        "min" => OverFunction::Min,
        "max" => OverFunction::Max,
        "stddev" | "stddev_samp" => OverFunction::StddevSamp,
        "stddev_pop" => OverFunction::StddevPop,
        "var" | "var_samp" | "variance" | "var_sample" => OverFunction::VarSamp,
        "var_pop" | "var_population" => OverFunction::VarPop,
        "first_value" => OverFunction::FirstValue,
        "last_value" => OverFunction::LastValue,
        _ => return None,
    })
}

fn over_plan(w: &Window, line: usize) -> Result<OverPlan> {
    let in_schema = w.input.schema();
    let n_in = in_schema.fields().len();
    let mut first: Option<&WindowFunctionParams> = None;
    let mut aggregates = Vec::new();
    let mut extra_args: Vec<Expr> = Vec::new();
    for (i, e) in w.window_expr.iter().enumerate() {
        let Expr::WindowFunction(wf) = strip_alias(e) else {
            return Err(plan_err(
                line,
                format!("unsupported window expression: {e}"),
            ));
        };
        let WindowFunction { fun, params } = wf.as_ref();
        let func = match fun {
            WindowFunctionDefinition::AggregateUDF(f) => f,
            WindowUDFDef(f) if f.name() == "row_number" => {
                return Err(plan_err(
                    line,
                    "unsupported construct: ROW_NUMBER() OVER (...) outside the deduplication form `WHERE rn = 1` (ROW_NUMBER() in a subquery, filtered on = 1 in the outer query; Top-N is not supported)",
                ))
            }
            WindowUDFDef(f) => {
                return Err(plan_err(
                    line,
                    format!(
                        "unsupported construct: {}() OVER (...): OVER supports aggregate functions (COUNT, SUM, AVG, MIN, MAX, ...) and ROW_NUMBER() for deduplication",
                        f.name().to_ascii_uppercase()
                    ),
                ))
            }
        };
        let name = w.schema.field(n_in + i).name().clone();
        let function = over_function(func.name()).ok_or_else(|| {
            plan_err(
                line,
                format!(
                    "unsupported construct: {}(...) OVER (...): OVER windows support COUNT, SUM, AVG, MIN, MAX, STDDEV_POP, STDDEV_SAMP, VAR_POP, VAR_SAMP, FIRST_VALUE, LAST_VALUE",
                    func.name().to_ascii_uppercase()
                ),
            )
        })?;
        if params.distinct {
            return Err(plan_err(
                line,
                format!("unsupported construct: DISTINCT in an OVER aggregate: {e}"),
            ));
        }
        if params.filter.is_some() {
            return Err(plan_err(
                line,
                format!("unsupported construct: FILTER in an OVER aggregate: {e}"),
            ));
        }
        match first {
            None => first = Some(params),
            Some(p) => {
                if p.partition_by != params.partition_by
                    || p.order_by != params.order_by
                    || p.window_frame != params.window_frame
                {
                    return Err(plan_err(
                        line,
                        "unsupported construct: OVER aggregates over different windows in one query; all aggregates must be computed on the same window (as in Flink)",
                    ));
                }
            }
        }
        let call = match params.args.as_slice() {
            [] => OverAggregateCall::count_star(name),
            [Expr::Literal(v, _)] if function == OverFunction::Count && !v.is_null() => {
                OverAggregateCall::count_star(name)
            }
            #[allow(deprecated)]
            [Expr::Wildcard { .. }] if function == OverFunction::Count => {
                OverAggregateCall::count_star(name)
            }
            [arg] => match column_index(arg, in_schema) {
                Some(c) => OverAggregateCall::new(function, c, name),
                None => {
                    let c = n_in + extra_args.len();
                    extra_args.push(
                        arg.clone()
                            .alias(format!("__weir_over_arg_{}", extra_args.len())),
                    );
                    OverAggregateCall::new(function, c, name)
                }
            },
            _ => {
                return Err(plan_err(
                    line,
                    format!("unsupported construct: OVER aggregate with several arguments: {e}"),
                ))
            }
        };
        aggregates.push(call);
    }
    let params = first.ok_or_else(|| WeirError::Internal("window without expressions".into()))?;
    let partition_keys: Vec<usize> = params
        .partition_by
        .iter()
        .map(|p| {
            column_index(p, in_schema).ok_or_else(|| {
                plan_err(
                    line,
                    format!(
                        "unsupported construct: OVER (PARTITION BY {p}): partition by columns only"
                    ),
                )
            })
        })
        .collect::<Result<_>>()?;
    let order = match params.order_by.as_slice() {
        [o] => o,
        [] => {
            return Err(plan_err(
                line,
                "unsupported construct: OVER without ORDER BY: an OVER window on a stream must be ordered by a time attribute, ascending",
            ))
        }
        _ => {
            return Err(plan_err(
                line,
                "unsupported construct: OVER with several ORDER BY keys: order by the time attribute only",
            ))
        }
    };
    let time_column = column_index(&order.expr, in_schema).filter(|_| order.asc).ok_or_else(|| {
        plan_err(
            line,
            format!(
                "unsupported construct: OVER (ORDER BY {} {}): an OVER window must be ordered by a time attribute, ascending",
                order.expr,
                if order.asc { "ASC" } else { "DESC" }
            ),
        )
    })?;
    let frame = &params.window_frame;
    let frame_text = frame.to_string();
    if !matches!(frame.end_bound, WindowFrameBound::CurrentRow) {
        return Err(plan_err(
            line,
            format!(
                "unsupported construct: OVER frame {frame_text}: frames must end at CURRENT ROW (FOLLOWING is not supported on streams)"
            ),
        ));
    }
    let frame = match (&frame.units, &frame.start_bound) {
        (WindowFrameUnits::Groups, _) => {
            return Err(plan_err(
                line,
                format!("unsupported construct: OVER frame {frame_text}: GROUPS frames are not supported"),
            ))
        }
        (_, WindowFrameBound::Following(_)) => {
            return Err(plan_err(
                line,
                format!("unsupported construct: OVER frame {frame_text}: FOLLOWING is not supported on streams"),
            ))
        }
        (WindowFrameUnits::Range, WindowFrameBound::Preceding(v)) if v.is_null() => {
            OverFrame::RangeUnbounded
        }
        (WindowFrameUnits::Rows, WindowFrameBound::Preceding(v)) if v.is_null() => {
            OverFrame::RowsUnbounded
        }
        (WindowFrameUnits::Range, WindowFrameBound::CurrentRow) => {
            OverFrame::RangePreceding { preceding_ms: 0 }
        }
        (WindowFrameUnits::Rows, WindowFrameBound::CurrentRow) => {
            OverFrame::RowsPreceding { preceding: 0 }
        }
        (WindowFrameUnits::Range, WindowFrameBound::Preceding(v)) => {
            let preceding_ms = interval_ms(v).ok_or_else(|| {
                plan_err(
                    line,
                    format!(
                        "unsupported construct: OVER frame {frame_text}: a RANGE frame over a time attribute takes a day-time INTERVAL ... PRECEDING"
                    ),
                )
            })?;
            OverFrame::RangePreceding { preceding_ms }
        }
        (WindowFrameUnits::Rows, WindowFrameBound::Preceding(v)) => {
            let preceding = match v {
                ScalarValue::UInt64(Some(n)) => *n,
                ScalarValue::Int64(Some(n)) if *n >= 0 => *n as u64,
                _ => {
                    return Err(plan_err(
                        line,
                        format!("unsupported construct: OVER frame {frame_text}: ROWS takes a non-negative integer"),
                    ))
                }
            };
            OverFrame::RowsPreceding { preceding }
        }
    };
    let mut fields: Vec<Field> = in_schema
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for e in &extra_args {
        let (_, field) = e.to_field(in_schema).map_err(|err| plan_err(line, err))?;
        fields.push(field.as_ref().clone());
    }
    let config = OverAggregateConfig {
        input_schema: Arc::new(arrow::datatypes::Schema::new(fields)),
        partition_keys,
        time_column,
        frame,
        aggregates,
        state_ttl_ms: None,
    };
    Ok(OverPlan {
        config,
        extra_args,
        order: order.expr.clone(),
    })
}

/// A `Window` node: deduplication when marked by [`mark_deduplication`](super::mark_deduplication),
/// otherwise an [`OverAggregate`].
pub(crate) fn lower_window(lw: &mut Lowerer<'_>, w: &Window) -> Result<Stream> {
    // Removed once used: the address is only meaningful while the plan
    // that the filter belongs to is being lowered.
    if lw.dedup_windows.remove(&(w as *const Window as usize)) {
        return super::dedup::lower_deduplication(lw, w);
    }
    let line = lw.line;
    let plan = over_plan(w, line)?;
    if !is_time_attribute(lw.catalog, &w.input, plan.config.time_column) {
        return Err(plan_err(
            line,
            format!(
                "unsupported construct: OVER (ORDER BY {}): {} is not a time attribute; an OVER window on a stream is ordered by the rowtime attribute (processing time is not supported; time attributes here: {})",
                plan.order,
                plan.order,
                time_attribute_names(lw.catalog, &w.input)
            ),
        ));
    }
    let mut input = lw.lower(&w.input, false)?;
    let n_in = input.schema.fields().len();
    if !plan.extra_args.is_empty() {
        let mut exprs: Vec<Expr> = (0..n_in)
            .map(|i| Expr::Column(Column::from(input.schema.qualified_field(i))))
            .collect();
        exprs.extend(plan.extra_args.iter().cloned());
        let arrow = plan.config.input_schema.clone();
        let mut qualifiers: Vec<_> = input.schema.iter().map(|(q, _)| q.cloned()).collect();
        qualifiers.extend(plan.extra_args.iter().map(|_| None));
        let schema = Arc::new(
            DFSchema::from_field_specific_qualified_schema(qualifiers, &arrow)
                .map_err(|e| plan_err(line, e))?,
        );
        input = lw.project(&input, &exprs, schema, "over_arguments")?;
    }
    let config = plan.config;
    let out_arrow = config.output_schema().map_err(|e| plan_err(line, e))?;
    let keys = config.partition_keys.clone();
    let description = format!(
        "{:?} PARTITION BY {:?} ORDER BY {} [{}]",
        config.frame,
        keys,
        plan.order,
        config
            .aggregates
            .iter()
            .map(|a| format!("{:?}({:?})", a.function, a.column))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let n_args = plan.extra_args.len();
    let factory: Arc<dyn OperatorFactory> = Arc::new(move |_s: usize, _p: usize| {
        Ok(Box::new(OverAggregate::try_new(config.clone())?) as Box<dyn Operator>)
    });
    let node = add_keyed(
        lw,
        &input,
        &keys,
        "over_aggregate",
        description,
        out_arrow.clone(),
        factory,
    );
    let parallelism = if keys.is_empty() { 1 } else { lw.parallelism };
    // The window's schema with the operator's types (see `flink_over_types`).
    let qualifiers: Vec<_> = input
        .schema
        .iter()
        .map(|(q, _)| q.cloned())
        .chain(w.schema.iter().skip(n_in).map(|(q, _)| q.cloned()))
        .collect();
    let out_schema = Arc::new(
        DFSchema::from_field_specific_qualified_schema(qualifiers, &out_arrow)
            .map_err(|e| plan_err(line, e))?,
    );
    let out = Stream::new(node, out_schema, parallelism);
    if n_args == 0 {
        return Ok(out);
    }
    // Drop the computed arguments again.
    let exprs: Vec<Expr> = (0..n_in)
        .chain(n_in + n_args..out.schema.fields().len())
        .map(|i| Expr::Column(Column::from(out.schema.qualified_field(i))))
        .collect();
    let fields: Vec<Field> = (0..n_in)
        .chain(n_in + n_args..out_arrow.fields().len())
        .map(|i| out_arrow.field(i).clone())
        .collect();
    let schema = Arc::new(
        DFSchema::from_field_specific_qualified_schema(
            w.schema.iter().map(|(q, _)| q.cloned()).collect(),
            &Arc::new(arrow::datatypes::Schema::new(fields)),
        )
        .map_err(|e| plan_err(line, e))?,
    );
    lw.project(&out, &exprs, schema, "over_output")
}

/// The types Flink gives `OVER` aggregates (the [`OverAggregate`]'s: `SUM`,
/// `AVG`, `MIN`, … of a column have its type, so `AVG` of a `BIGINT` is a
/// `BIGINT`), where DataFusion's differ: a projection above each `Window`
/// casts those columns, and the plan above is re-typed.
pub(crate) fn flink_over_types(plan: LogicalPlan) -> datafusion_common::Result<LogicalPlan> {
    let mut changed = false;
    let out = plan.transform_up(|node| {
        if changed && !matches!(node, LogicalPlan::Window(_)) {
            let node = node.recompute_schema()?;
            return Ok(Transformed::yes(node));
        }
        let LogicalPlan::Window(w) = &node else {
            return Ok(Transformed::no(node));
        };
        let Ok(p) = over_plan(w, 0) else {
            return Ok(Transformed::no(node));
        };
        let Ok(op_schema) = p.config.output_schema() else {
            return Ok(Transformed::no(node));
        };
        let n_in = w.input.schema().fields().len();
        let n_args = p.extra_args.len();
        let mut any = false;
        let exprs: Vec<Expr> = w
            .schema
            .iter()
            .enumerate()
            .map(|(i, (q, f))| {
                let c = Expr::Column(Column::from((q, f)));
                if i < n_in {
                    return c;
                }
                let t = op_schema.field(i + n_args).data_type();
                if t == f.data_type() {
                    c
                } else {
                    any = true;
                    cast(c, t.clone()).alias_qualified(q.cloned(), f.name())
                }
            })
            .collect();
        if !any {
            return Ok(Transformed::no(node));
        }
        changed = true;
        let projection = Projection::try_new(exprs, Arc::new(node))?;
        Ok(Transformed::yes(LogicalPlan::Projection(projection)))
    })?;
    Ok(out.data)
}

/// `AVG` of an integer argument in an `OVER` window, as Flink types it: the
/// argument's integer type (the operator truncates toward zero). Planned in
/// place of DataFusion's `avg` before type coercion, which would otherwise
/// cast the argument to DOUBLE (indistinguishable from a user's own
/// `CAST(x AS DOUBLE)` afterwards). Named `avg`; never evaluated by
/// DataFusion.
#[derive(Debug, PartialEq, Eq, Hash)]
struct IntegerAvg {
    signature: Signature,
}

impl datafusion_expr::AggregateUDFImpl for IntegerAvg {
    fn name(&self) -> &str {
        "avg"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> datafusion_common::Result<DataType> {
        Ok(arg_types.first().cloned().unwrap_or(DataType::Int64))
    }

    fn accumulator(
        &self,
        _args: datafusion_expr::function::AccumulatorArgs,
    ) -> datafusion_common::Result<Box<dyn datafusion_expr::Accumulator>> {
        datafusion_common::not_impl_err!("AVG OVER is planned by Weir, not evaluated")
    }
}

/// Replaces `AVG(integer) OVER (…)` by [`IntegerAvg`] (before type
/// coercion; see there) and re-types the plan above.
pub(crate) fn flink_over_avg(plan: LogicalPlan) -> datafusion_common::Result<LogicalPlan> {
    let integer_avg = Arc::new(datafusion_expr::AggregateUDF::new_from_impl(IntegerAvg {
        signature: Signature::any(1, Volatility::Immutable),
    }));
    let mut changed = false;
    let out = plan.transform_up(|node| {
        let LogicalPlan::Window(w) = &node else {
            if changed {
                return Ok(Transformed::yes(node.recompute_schema()?));
            }
            return Ok(Transformed::no(node));
        };
        let mut any = false;
        let mut exprs = Vec::with_capacity(w.window_expr.len());
        for e in &w.window_expr {
            let (inner, alias) = match e {
                Expr::Alias(a) => (a.expr.as_ref(), Some((a.relation.clone(), a.name.clone()))),
                other => (other, None),
            };
            let replaced = match inner {
                Expr::WindowFunction(wf) => match &wf.fun {
                    WindowFunctionDefinition::AggregateUDF(f)
                        if matches!(f.name().to_ascii_lowercase().as_str(), "avg" | "mean")
                            && !wf.params.distinct =>
                    {
                        match wf.params.args.as_slice() {
                            [arg] if arg.get_type(w.input.schema())?.is_integer() => {
                                let mut wf = wf.as_ref().clone();
                                wf.fun =
                                    WindowFunctionDefinition::AggregateUDF(integer_avg.clone());
                                Some(Expr::WindowFunction(Box::new(wf)))
                            }
                            _ => None,
                        }
                    }
                    _ => None,
                },
                _ => None,
            };
            match replaced {
                Some(r) => {
                    any = true;
                    exprs.push(match alias {
                        Some((q, n)) => r.alias_qualified(q, n),
                        None => r,
                    });
                }
                None => exprs.push(e.clone()),
            }
        }
        if !any {
            if changed {
                return Ok(Transformed::yes(node.recompute_schema()?));
            }
            return Ok(Transformed::no(node));
        }
        changed = true;
        let window = Window::try_new(exprs, w.input.clone())?;
        Ok(Transformed::yes(LogicalPlan::Window(window)))
    })?;
    Ok(out.data)
}
