//! SQL forms of the ordering operators: how a query reaches
//! [`SequenceOrder`], [`Deduplicate`], [`TemporalSort`] and [`OverAggregate`].
//!
//! | SQL | operator | partitioning |
//! |---|---|---|
//! | `TABLE(SEQUENCE_ORDER(TABLE t, DESCRIPTOR(k, …), DESCRIPTOR(seq), INTERVAL … [, max_buffer_rows [, first_sequence]]))` | [`SequenceOrder`], rows out (the input's schema) | hash on the keys; no keys: one subtask |
//! | `TABLE(SEQUENCE_GAPS(…same arguments…))` | [`SequenceOrder`], gap markers out: the key columns, `first_missing BIGINT`, `last_missing BIGINT`, `detected_at TIMESTAMP(3)` | same |
//! | `SELECT … FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY rowtime ASC) AS rn FROM t) WHERE rn = 1` (also `rn <= 1`, `rn < 2`) | [`Deduplicate`] (keep first) | hash on `k` |
//! | `ORDER BY rowtime [ASC] [, other columns …]` | [`TemporalSort`] | one subtask (a total order) |
//! | `agg(x) OVER (PARTITION BY k ORDER BY rowtime {RANGE BETWEEN INTERVAL … \| ROWS BETWEEN n \| RANGE/ROWS BETWEEN UNBOUNDED} PRECEDING AND CURRENT ROW)` | [`OverAggregate`] | hash on `k` |
//!
//! Flink's rules hold: the sort key of a streaming `ORDER BY`, of a
//! deduplication and of an `OVER` window is a time attribute (a column with
//! a `WATERMARK`, passed through unchanged, or `window_time`), ascending;
//! every aggregate of one `OVER` query uses the same window. Everything else
//! (keep-last deduplication, Top-N, `FOLLOWING` frames, `GROUPS` frames,
//! `DISTINCT`/`FILTER` in `OVER`, `LIMIT`) is a plan error naming the
//! construct.
//!
//! A key's sequence starts at its first row unless the call gives
//! `first_sequence` (then every key expects that number first, and a
//! missing start is a gap like any other).
//!
//! `SEQUENCE_ORDER` and `SEQUENCE_GAPS` are two operator instances: a job
//! that wants both reads the table twice (two statements, or two `TABLE(…)`
//! calls), each with the same arguments; both see the same rows, so the gap
//! markers describe exactly the holes in the ordered rows. The counters
//! `duplicate_rows`, `null_sequence_rows`, `gaps` and `missing_sequences`
//! of the sequence operator and `duplicate_rows` of deduplication are
//! reported as operator metrics.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, SchemaRef};
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::{Column, DFSchema, ScalarValue};
use datafusion_expr::expr::{WindowFunction, WindowFunctionParams};
use datafusion_expr::function::{PartitionEvaluatorArgs, WindowUDFFieldArgs};
use datafusion_expr::logical_plan::{Filter, Projection, Sort, Window};
use datafusion_expr::{
    cast, lit, BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator as BinOp, PartitionEvaluator,
    Signature, TypeSignature, Volatility, WindowFrameBound, WindowFrameUnits,
    WindowFunctionDefinition, WindowUDF, WindowUDFImpl,
};
use weir_dialect::{TvfKind, WindowTvf};
use weir_engine::graph::{NodeKind, Partitioning};
use weir_engine::message::EventTime;
use weir_engine::operator::{Collector, Operator, OperatorContext, OperatorFactory};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};
use weir_operators::deduplicate::{Deduplicate, DeduplicateConfig};
use weir_operators::over_aggregate::{
    OverAggregate, OverAggregateCall, OverAggregateConfig, OverFrame, OverFunction,
};
use weir_operators::sequence_order::{
    SequenceOrder, SequenceOrderConfig, SequenceOutput, SequenceStart,
};
use weir_operators::temporal_sort::{SortKey, TemporalSort, TemporalSortConfig};
use WindowFunctionDefinition::WindowUDF as WindowUDFDef;

use crate::catalog::Catalog;
use crate::lower::{Lowerer, Stream};
use crate::table_function::TableFunctionPlan;

fn plan_err(line: usize, msg: impl std::fmt::Display) -> WeirError {
    WeirError::Plan(format!("line {line}: {msg}"))
}

/// Rows held per key by `SEQUENCE_ORDER` when the call gives no bound.
pub const DEFAULT_MAX_BUFFER_ROWS: usize = 10_000;

// ---------------------------------------------------------------------------
// SEQUENCE_ORDER / SEQUENCE_GAPS

/// Plans `SEQUENCE_ORDER(...)`/`SEQUENCE_GAPS(...)` as a table function over
/// its input: keyed by the `DESCRIPTOR` keys, ordered by the sequence
/// column, timed by the input's time attribute.
pub(crate) fn plan_sequence(catalog: &Catalog, t: &WindowTvf) -> Result<TableFunctionPlan> {
    let TvfKind::Sequence {
        max_delay_ms,
        max_buffer_rows,
        first_sequence,
        gaps,
    } = t.kind
    else {
        return Err(WeirError::Internal("not a sequence TVF".into()));
    };
    let fname = if gaps {
        "SEQUENCE_GAPS"
    } else {
        "SEQUENCE_ORDER"
    };
    let line = t.line;
    let input = catalog.relation_schema(&t.input).ok_or_else(|| {
        plan_err(
            line,
            format!("{fname}(TABLE {}): no such table or view", t.input),
        )
    })?;
    let index = |name: &str, what: &str| {
        input.index_of(name).map_err(|_| {
            plan_err(
                line,
                format!(
                    "{fname}: {what} {name}: table {} has no such column",
                    t.input
                ),
            )
        })
    };
    let key_columns: Vec<usize> = t
        .partition_by
        .iter()
        .map(|k| index(k, "key column"))
        .collect::<Result<_>>()?;
    let sequence_column = index(&t.time_column, "sequence column")?;
    let time_column = relation_time_attributes(catalog, &t.input)
        .into_iter()
        .next()
        .ok_or_else(|| {
            plan_err(
                line,
                format!(
                    "{fname}(TABLE {}): the input has no time attribute; declare WATERMARK FOR <column> AS ... in its CREATE TABLE",
                    t.input
                ),
            )
        })?;
    let mut config = SequenceOrderConfig::new(
        input.clone(),
        key_columns.clone(),
        sequence_column,
        time_column,
    );
    config.max_delay_ms = max_delay_ms;
    config.max_buffer_rows = max_buffer_rows.map_or(DEFAULT_MAX_BUFFER_ROWS, |n| n as usize);
    config.start = first_sequence.map_or(SequenceStart::FirstSeen, SequenceStart::Fixed);
    config.output = if gaps {
        SequenceOutput::Gaps
    } else {
        SequenceOutput::Rows
    };
    config
        .validate()
        .map_err(|e| plan_err(line, e.to_string().replace("SEQUENCE_ORDER", fname)))?;
    let schema = config.output_schema();
    let description = format!(
        "{fname} keys [{}] sequence {} time {} max_delay {} ms max_buffer_rows {}",
        t.partition_by.join(", "),
        t.time_column,
        input.field(time_column).name(),
        config.max_delay_ms,
        config.max_buffer_rows
    );
    let operator: Arc<dyn OperatorFactory> = Arc::new(move |_s: usize, _p: usize| {
        let op = SequenceOrder::try_new(config.clone())?;
        Ok(Box::new(Counted::new(op, sequence_counters)) as Box<dyn Operator>)
    });
    Ok(TableFunctionPlan {
        schema,
        keys: key_columns,
        operator,
        description,
    })
}

fn sequence_counters(op: &SequenceOrder) -> Vec<(&'static str, u64)> {
    let s = op.stats();
    vec![
        ("duplicate_rows", s.duplicate_rows),
        ("null_sequence_rows", s.null_sequence_rows),
        ("gaps", s.gaps),
        ("missing_sequences", s.missing_sequences),
    ]
}

fn dedup_counters(op: &Deduplicate) -> Vec<(&'static str, u64)> {
    vec![("duplicate_rows", op.stats().duplicate_rows)]
}

/// Reports an operator's own counters as metrics (`add_count`), as deltas
/// after each call; otherwise delegates.
struct Counted<O> {
    inner: O,
    counters: fn(&O) -> Vec<(&'static str, u64)>,
    reported: Vec<u64>,
}

impl<O> Counted<O> {
    fn new(inner: O, counters: fn(&O) -> Vec<(&'static str, u64)>) -> Self {
        let reported = counters(&inner).iter().map(|(_, v)| *v).collect();
        Self {
            inner,
            counters,
            reported,
        }
    }

    fn report(&mut self, ctx: &OperatorContext) {
        for (i, (name, v)) in (self.counters)(&self.inner).into_iter().enumerate() {
            let old = self.reported.get(i).copied().unwrap_or(0);
            if v > old {
                ctx.metrics.add_count(name, v - old);
            }
            if let Some(r) = self.reported.get_mut(i) {
                *r = v;
            }
        }
    }
}

impl<O: Operator> Operator for Counted<O> {
    fn process_batch(
        &mut self,
        batch: arrow::record_batch::RecordBatch,
        ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        self.inner.process_batch(batch, ctx, out)?;
        self.report(ctx);
        Ok(())
    }

    fn on_watermark(
        &mut self,
        watermark: EventTime,
        ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        self.inner.on_watermark(watermark, ctx, out)?;
        self.report(ctx);
        Ok(())
    }

    fn on_tick(
        &mut self,
        now: std::time::Instant,
        ctx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Result<()> {
        self.inner.on_tick(now, ctx, out)
    }

    fn on_end(&mut self, ctx: &mut OperatorContext, out: &mut Collector) -> Result<()> {
        self.inner.on_end(ctx, out)?;
        self.report(ctx);
        Ok(())
    }

    fn snapshot(&mut self) -> Result<OperatorState> {
        self.inner.snapshot()
    }

    fn restore(&mut self, state: OperatorState) -> Result<()> {
        self.inner.restore(state)?;
        // Counts before the checkpoint were reported by the earlier run.
        self.reported = (self.counters)(&self.inner)
            .iter()
            .map(|(_, v)| *v)
            .collect();
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Time attributes

/// Input columns of a table, view or TVF relation that are time attributes.
fn relation_time_attributes(catalog: &Catalog, name: &str) -> Vec<usize> {
    let Some(schema) = catalog.relation_schema(name) else {
        return Vec::new();
    };
    (0..schema.fields().len())
        .filter(|&i| relation_is_time_attribute(catalog, name, i, 0))
        .collect()
}

fn relation_is_time_attribute(catalog: &Catalog, name: &str, idx: usize, depth: usize) -> bool {
    if depth > 32 {
        return false;
    }
    if let Some(t) = catalog.tables.get(name) {
        return t.ddl.watermark.as_ref().is_some_and(|w| {
            t.schema
                .fields()
                .get(idx)
                .is_some_and(|f| f.name() == &w.column)
        });
    }
    if let Some(v) = catalog.views.get(name) {
        return is_time_attribute_at(catalog, v, idx, depth + 1);
    }
    if let Some(tvf) = catalog.tvfs.get(name) {
        return match (&tvf.tvf.kind, &tvf.function) {
            (TvfKind::Sequence { gaps: false, .. }, _) => {
                relation_is_time_attribute(catalog, &tvf.tvf.input, idx, depth + 1)
            }
            (_, Some(_)) => false,
            _ => {
                let n = catalog
                    .relation_schema(&tvf.tvf.input)
                    .map_or(0, |s| s.fields().len());
                if idx < n {
                    relation_is_time_attribute(catalog, &tvf.tvf.input, idx, depth + 1)
                } else {
                    // window_start, window_end, window_time: window_time is.
                    idx == n + 2
                }
            }
        };
    }
    false
}

/// Whether output column `idx` of `plan` is a time attribute: a column
/// with a watermark (or `window_time`), passed through unchanged.
pub(crate) fn is_time_attribute(catalog: &Catalog, plan: &LogicalPlan, idx: usize) -> bool {
    is_time_attribute_at(catalog, plan, idx, 0)
}

fn is_time_attribute_at(catalog: &Catalog, plan: &LogicalPlan, idx: usize, depth: usize) -> bool {
    if depth > 64 {
        return false;
    }
    let d = depth + 1;
    match plan {
        LogicalPlan::TableScan(scan) => {
            let source_idx = match &scan.projection {
                Some(p) => match p.get(idx) {
                    Some(i) => *i,
                    None => return false,
                },
                None => idx,
            };
            relation_is_time_attribute(catalog, scan.table_name.table(), source_idx, d)
        }
        LogicalPlan::Projection(p) => p
            .expr
            .get(idx)
            .and_then(|e| column_index(e, p.input.schema()))
            .is_some_and(|i| is_time_attribute_at(catalog, &p.input, i, d)),
        LogicalPlan::Filter(f) => is_time_attribute_at(catalog, &f.input, idx, d),
        LogicalPlan::SubqueryAlias(a) => is_time_attribute_at(catalog, &a.input, idx, d),
        LogicalPlan::Sort(s) => is_time_attribute_at(catalog, &s.input, idx, d),
        LogicalPlan::Window(w) => {
            idx < w.input.schema().fields().len() && is_time_attribute_at(catalog, &w.input, idx, d)
        }
        LogicalPlan::Aggregate(a) => a
            .group_expr
            .get(idx)
            .and_then(|g| column_index(g, a.input.schema()))
            .is_some_and(|i| {
                a.input.schema().field(i).name() == "window_time"
                    && is_time_attribute_at(catalog, &a.input, i, d)
            }),
        _ => false,
    }
}

/// The index in `schema` of a plain column reference (through aliases).
fn column_index(e: &Expr, schema: &DFSchema) -> Option<usize> {
    match e {
        Expr::Column(c) => schema.index_of_column(c).ok(),
        Expr::Alias(a) => column_index(&a.expr, schema),
        _ => None,
    }
}

/// Names of the time attributes among `plan`'s columns, for messages.
fn time_attribute_names(catalog: &Catalog, plan: &LogicalPlan) -> String {
    let names: Vec<String> = (0..plan.schema().fields().len())
        .filter(|&i| is_time_attribute(catalog, plan, i))
        .map(|i| plan.schema().field(i).name().clone())
        .collect();
    if names.is_empty() {
        "none: declare WATERMARK FOR <column> AS ... in the CREATE TABLE".into()
    } else {
        names.join(", ")
    }
}

/// One subtask behind a rebalance edge (forward when already one).
fn single_subtask(input: &Stream) -> Partitioning {
    if input.parallelism == 1 {
        Partitioning::Forward
    } else {
        Partitioning::Rebalance
    }
}

/// Adds `factory` behind a hash edge on `keys` (one subtask without keys).
fn add_keyed(
    lw: &mut Lowerer<'_>,
    input: &Stream,
    keys: &[usize],
    name: &str,
    description: String,
    schema: SchemaRef,
    factory: Arc<dyn OperatorFactory>,
) -> weir_engine::graph::NodeId {
    let (parallelism, partitioning) = if keys.is_empty() {
        (1, single_subtask(input))
    } else {
        (lw.parallelism, Partitioning::Hash(keys.to_vec()))
    };
    let node = lw.graph.add_node(
        name,
        description,
        parallelism,
        NodeKind::Operator(factory),
        schema,
    );
    lw.graph.connect(input.node, node, partitioning);
    node
}

// ---------------------------------------------------------------------------
// ORDER BY

/// A streaming `ORDER BY rowtime [ASC] [, …]`: [`TemporalSort`] on one subtask.
pub(crate) fn lower_sort(lw: &mut Lowerer<'_>, s: &Sort) -> Result<Stream> {
    let line = lw.line;
    if s.fetch.is_some() {
        return Err(plan_err(
            line,
            "unsupported construct: ORDER BY ... LIMIT (Top-N) on a stream",
        ));
    }
    let in_schema = s.input.schema();
    let mut cols = Vec::new();
    for e in &s.expr {
        let Some(i) = column_index(&e.expr, in_schema) else {
            return Err(plan_err(
                line,
                format!(
                    "unsupported construct: ORDER BY expression {}: sort on columns only",
                    e.expr
                ),
            ));
        };
        cols.push((i, e));
    }
    let Some(&(time_column, first)) = cols.first() else {
        return Err(WeirError::Internal("ORDER BY without keys".into()));
    };
    if !first.asc || !is_time_attribute(lw.catalog, &s.input, time_column) {
        return Err(plan_err(
            line,
            format!(
                "unsupported construct: ORDER BY {} {} on a stream: the first sort key must be a time attribute, ascending (time attributes here: {})",
                first.expr,
                if first.asc { "ASC" } else { "DESC" },
                time_attribute_names(lw.catalog, &s.input)
            ),
        ));
    }
    let input = lw.lower(&s.input, false)?;
    let arrow: SchemaRef = Arc::new(input.schema.as_arrow().clone());
    let config = TemporalSortConfig {
        input_schema: arrow.clone(),
        time_column,
        sort_keys: cols[1..]
            .iter()
            .map(|(c, e)| SortKey {
                column: *c,
                descending: !e.asc,
                nulls_first: e.nulls_first,
            })
            .collect(),
    };
    config.validate().map_err(|e| plan_err(line, e))?;
    let description = format!(
        "ORDER BY {}",
        s.expr
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    let factory: Arc<dyn OperatorFactory> = Arc::new(move |_s: usize, _p: usize| {
        Ok(Box::new(TemporalSort::try_new(config.clone())?) as Box<dyn Operator>)
    });
    let node = add_keyed(
        lw,
        &input,
        &[],
        "temporal_sort",
        description,
        arrow,
        factory,
    );
    Ok(Stream::new(node, input.schema.clone(), 1))
}

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

fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        other => other,
    }
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

fn strip_cast(e: &Expr) -> &Expr {
    match e {
        Expr::Cast(c) => strip_cast(&c.expr),
        Expr::TryCast(c) => strip_cast(&c.expr),
        other => other,
    }
}

/// Marks the `ROW_NUMBER()` window under `WHERE rn = 1` (through plain
/// projections) so that [`lower_window`] plans it as deduplication.
pub(crate) fn mark_deduplication(lw: &mut Lowerer<'_>, f: &Filter) {
    let Some(c) = rank_one_column(&f.predicate) else {
        return;
    };
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

fn lower_deduplication(lw: &mut Lowerer<'_>, w: &Window) -> Result<Stream> {
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

/// A `Window` node: deduplication when marked by [`mark_deduplication`],
/// otherwise an [`OverAggregate`].
pub(crate) fn lower_window(lw: &mut Lowerer<'_>, w: &Window) -> Result<Stream> {
    // Removed once used: the address is only meaningful while the plan
    // that the filter belongs to is being lowered.
    if lw.dedup_windows.remove(&(w as *const Window as usize)) {
        return lower_deduplication(lw, w);
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
