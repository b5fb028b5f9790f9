//! SQL forms of the ordering operators: how a query reaches
//! [`SequenceOrder`](weir_operators::sequence_order::SequenceOrder), [`Deduplicate`](weir_operators::deduplicate::Deduplicate), [`TemporalSort`](weir_operators::temporal_sort::TemporalSort) and [`OverAggregate`](weir_operators::over_aggregate::OverAggregate).
//!
//! | SQL | operator | partitioning |
//! |---|---|---|
//! | `TABLE(SEQUENCE_ORDER(TABLE t, DESCRIPTOR(k, …), DESCRIPTOR(seq), INTERVAL … [, max_buffer_rows [, first_sequence]]))` | [`SequenceOrder`](weir_operators::sequence_order::SequenceOrder), rows out (the input's schema) | hash on the keys; no keys: one subtask |
//! | `TABLE(SEQUENCE_GAPS(…same arguments…))` | [`SequenceOrder`](weir_operators::sequence_order::SequenceOrder), gap markers out: the key columns, `first_missing BIGINT`, `last_missing BIGINT`, `detected_at TIMESTAMP(3)` | same |
//! | `SELECT … FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY k ORDER BY rowtime ASC) AS rn FROM t) WHERE rn = 1` (also `rn <= 1`, `rn < 2`) | [`Deduplicate`](weir_operators::deduplicate::Deduplicate) (keep first) | hash on `k` |
//! | `ORDER BY rowtime [ASC] [, other columns …]` | [`TemporalSort`](weir_operators::temporal_sort::TemporalSort) | one subtask (a total order) |
//! | `agg(x) OVER (PARTITION BY k ORDER BY rowtime {RANGE BETWEEN INTERVAL … \| ROWS BETWEEN n \| RANGE/ROWS BETWEEN UNBOUNDED} PRECEDING AND CURRENT ROW)` | [`OverAggregate`](weir_operators::over_aggregate::OverAggregate) | hash on `k` |
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

use arrow::datatypes::SchemaRef;
use datafusion_common::DFSchema;
use datafusion_expr::{Expr, LogicalPlan};
use weir_dialect::TvfKind;
use weir_engine::graph::{NodeKind, Partitioning};
use weir_engine::message::EventTime;
use weir_engine::operator::{Collector, Operator, OperatorContext, OperatorFactory};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};

use crate::catalog::Catalog;
use crate::lower::{Lowerer, Stream};

mod dedup;
mod over;
mod sequence;
mod sort;

pub(crate) use dedup::{mark_deduplication, window_function, window_function_names};
pub(crate) use over::{flink_over_avg, flink_over_types, lower_window};
pub(crate) use sequence::plan_sequence;
pub(crate) use sort::lower_sort;

fn plan_err(line: usize, msg: impl std::fmt::Display) -> WeirError {
    WeirError::Plan(format!("line {line}: {msg}"))
}

/// Rows held per key by `SEQUENCE_ORDER` when the call gives no bound.
pub const DEFAULT_MAX_BUFFER_ROWS: usize = 10_000;

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

fn strip_alias(e: &Expr) -> &Expr {
    match e {
        Expr::Alias(a) => strip_alias(&a.expr),
        other => other,
    }
}

fn strip_cast(e: &Expr) -> &Expr {
    match e {
        Expr::Cast(c) => strip_cast(&c.expr),
        Expr::TryCast(c) => strip_cast(&c.expr),
        other => other,
    }
}
