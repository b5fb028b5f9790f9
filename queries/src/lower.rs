//! Lowering a DataFusion logical plan to a Weir dataflow graph.
//!
//! The plan of one query becomes a pipeline of nodes: a source per table
//! scan (with its computed columns and watermark assigner chained after it),
//! filters and projections as DataFusion `PhysicalExpr`s, and window
//! aggregations behind a hash edge on their keys.
//!
//! Window TVFs are planned by DataFusion as scans of a relation that has the
//! input's columns plus `window_start`, `window_end` and `window_time`. When
//! the TVF feeds a `GROUP BY window_start, window_end, …` through plain
//! projections and filters, those columns are *provisional*: they carry the
//! row's event time, and the window aggregation assigns windows itself
//! (one pass, no row duplication for HOP). Otherwise a window assigner
//! materializes them (one row per window).

use std::collections::HashSet;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion_common::{Column, DFSchema, DFSchemaRef};
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::expr::AggregateFunction;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{cast, col, Expr, LogicalPlan};
use datafusion_physical_expr::aggregate::{AggregateExprBuilder, AggregateFunctionExpr};
use datafusion_physical_expr::{create_physical_expr, PhysicalExpr};
use weir_dialect::TvfKind;
use weir_engine::graph::{JobGraph, NodeId, NodeKind, Partitioning};
use weir_engine::operator::Operator;
use weir_engine::{Result, WeirError};
use weir_operators::filter::FilterOperator;
use weir_operators::project::ProjectOperator;
use weir_operators::session_window_aggregate::SessionWindowAggregate;
use weir_operators::window::{OutputColumn, WindowAggregateConfig, WindowSpec};
use weir_operators::window_aggregate::WindowAggregate;
use weir_operators::window_assigner::WindowAssigner;

use crate::catalog::{Catalog, TableDef};
use crate::source_table::SourceTablePlanner;

/// Where the window columns of a TVF are in a stream's schema.
#[derive(Debug, Clone)]
struct WindowCols {
    tvf: String,
    start: Option<usize>,
    end: Option<usize>,
    time: Option<usize>,
}

impl WindowCols {
    fn any(&self) -> Option<usize> {
        self.start.or(self.end).or(self.time)
    }
}

/// A lowered relation: the node producing it and its logical schema.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The node whose output is this relation.
    pub node: NodeId,
    /// The relation's schema (the batches' layout).
    pub schema: DFSchemaRef,
    /// Its parallelism.
    pub parallelism: usize,
    /// Provisional window columns (only while lowering below a window aggregate).
    windows: Option<WindowCols>,
}

/// Lowers plans into a graph.
pub struct Lowerer<'a> {
    /// The catalog the plans were made against.
    pub catalog: &'a Catalog,
    /// The graph being built.
    pub graph: &'a mut JobGraph,
    /// Creates source pipelines for tables.
    pub sources: &'a SourceTablePlanner<'a>,
    /// Parallelism of sources and keyed operators.
    pub parallelism: usize,
    /// Line of the statement, for error messages.
    pub line: usize,
    props: ExecutionProps,
    /// `ROW_NUMBER()` windows under a `WHERE rn = 1` (by address): lowered
    /// as deduplication (see [`crate::ordering_plan`]).
    pub(crate) dedup_windows: HashSet<usize>,
}

fn plan_err(line: usize, msg: impl std::fmt::Display) -> WeirError {
    WeirError::Plan(format!("line {line}: {msg}"))
}

fn df_err(line: usize, e: datafusion_common::DataFusionError) -> WeirError {
    plan_err(line, e)
}

impl Stream {
    /// A stream produced by `node` with no window columns.
    pub fn new(node: NodeId, schema: DFSchemaRef, parallelism: usize) -> Self {
        Self {
            node,
            schema,
            parallelism,
            windows: None,
        }
    }
}

impl<'a> Lowerer<'a> {
    /// Creates a lowerer for the statement at `line`.
    pub fn new(
        catalog: &'a Catalog,
        graph: &'a mut JobGraph,
        sources: &'a SourceTablePlanner<'a>,
        parallelism: usize,
        line: usize,
    ) -> Self {
        Self {
            catalog,
            graph,
            sources,
            parallelism,
            line,
            props: ExecutionProps::new(),
            dedup_windows: HashSet::new(),
        }
    }

    /// Lowers a whole query plan (window columns materialized).
    pub fn lower_query(&mut self, plan: &LogicalPlan) -> Result<Stream> {
        self.lower(plan, false)
    }

    pub(crate) fn physical(&self, expr: &Expr, schema: &DFSchema) -> Result<Arc<dyn PhysicalExpr>> {
        create_physical_expr(
            expr,
            schema,
            &self.props,
            &PhysicalPlanningContext::default(),
        )
        .map_err(|e| df_err(self.line, e))
    }

    /// Adds an operator node fed by `input` over a forward edge.
    pub fn add_operator(
        &mut self,
        input: &Stream,
        name: &str,
        description: String,
        schema: DFSchemaRef,
        factory: Arc<dyn weir_engine::operator::OperatorFactory>,
    ) -> Stream {
        let node = self.graph.add_node(
            name,
            description,
            input.parallelism,
            NodeKind::Operator(factory),
            Arc::new(schema.as_arrow().clone()),
        );
        self.graph.connect(input.node, node, Partitioning::Forward);
        Stream {
            node,
            schema,
            parallelism: input.parallelism,
            windows: None,
        }
    }

    /// Adds a projection of `exprs` (over `input.schema`) producing `schema`.
    pub fn project(
        &mut self,
        input: &Stream,
        exprs: &[Expr],
        schema: DFSchemaRef,
        name: &str,
    ) -> Result<Stream> {
        let physical: Vec<Arc<dyn PhysicalExpr>> = exprs
            .iter()
            .map(|e| self.physical(e, &input.schema))
            .collect::<Result<_>>()?;
        let arrow_schema: SchemaRef = Arc::new(schema.as_arrow().clone());
        let description = exprs
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        // Validate once at plan time so errors surface before the job runs.
        ProjectOperator::try_new(physical.clone(), arrow_schema.clone())?;
        let factory = Arc::new(move |_s: usize, _p: usize| -> Result<Box<dyn Operator>> {
            Ok(Box::new(ProjectOperator::try_new(
                physical.clone(),
                arrow_schema.clone(),
            )?))
        });
        Ok(self.add_operator(input, name, description, schema, factory))
    }

    pub(crate) fn lower(&mut self, plan: &LogicalPlan, provisional: bool) -> Result<Stream> {
        match plan {
            LogicalPlan::TableScan(scan) => {
                if !scan.filters.is_empty() || scan.fetch.is_some() {
                    return Err(WeirError::Internal(
                        "table scan with pushed-down filters or fetch".into(),
                    ));
                }
                let name = scan.table_name.table().to_string();
                let projection = scan.projection.as_deref();
                let mut stream = if self.catalog.tvfs.contains_key(&name) {
                    self.lower_tvf(&name, provisional, projection)?
                } else if let Some(t) = self.catalog.tables.get(&name) {
                    self.lower_table(t, projection)?
                } else if let Some(v) = self.catalog.views.get(&name) {
                    let v = v.clone();
                    self.lower(&v, false)?
                } else {
                    return Err(plan_err(self.line, format!("unknown relation '{name}'")));
                };
                if let Some(indices) = &scan.projection {
                    let identity = indices.len() == stream.schema.fields().len()
                        && indices.iter().enumerate().all(|(i, j)| i == *j);
                    if !identity {
                        let exprs: Vec<Expr> = indices
                            .iter()
                            .map(|&i| Expr::Column(Column::from(stream.schema.qualified_field(i))))
                            .collect();
                        let windows = stream.windows.clone();
                        let mut projected = self.project(
                            &stream,
                            &exprs,
                            scan.projected_schema.clone(),
                            "scan_projection",
                        )?;
                        projected.windows = windows.map(|w| WindowCols {
                            tvf: w.tvf.clone(),
                            start: w.start.and_then(|s| indices.iter().position(|&i| i == s)),
                            end: w.end.and_then(|s| indices.iter().position(|&i| i == s)),
                            time: w.time.and_then(|s| indices.iter().position(|&i| i == s)),
                        });
                        stream = projected;
                    }
                }
                stream.schema = scan.projected_schema.clone();
                Ok(stream)
            }
            LogicalPlan::SubqueryAlias(a) => {
                let mut s = self.lower(&a.input, provisional)?;
                s.schema = a.schema.clone();
                Ok(s)
            }
            LogicalPlan::Projection(p) => {
                let pass = provisional
                    && window_use_is_passthrough_projection(
                        &p.expr,
                        p.input.schema(),
                        &window_indices(&p.input),
                    );
                let input = self.lower(&p.input, pass)?;
                let windows = input.windows.clone().map(|w| {
                    let pos = |idx: Option<usize>| {
                        idx.and_then(|i| {
                            p.expr
                                .iter()
                                .position(|e| column_index(e, &input.schema) == Some(i))
                        })
                    };
                    WindowCols {
                        tvf: w.tvf.clone(),
                        start: pos(w.start),
                        end: pos(w.end),
                        time: pos(w.time),
                    }
                });
                let mut out = self.project(&input, &p.expr, p.schema.clone(), "project")?;
                out.windows = windows.filter(|w| w.any().is_some());
                Ok(out)
            }
            LogicalPlan::Filter(f) => {
                crate::ordering_plan::mark_deduplication(self, f);
                let uses_windows = {
                    let w = window_indices(&f.input);
                    referenced_indices(&f.predicate, f.input.schema())
                        .iter()
                        .any(|i| w.contains(i))
                };
                let input = self.lower(&f.input, provisional && !uses_windows)?;
                let predicate = self.physical(&f.predicate, &input.schema)?;
                let description = f.predicate.to_string();
                let factory = Arc::new(move |_s: usize, _p: usize| -> Result<Box<dyn Operator>> {
                    Ok(Box::new(FilterOperator::new(predicate.clone())))
                });
                let windows = input.windows.clone();
                let mut out =
                    self.add_operator(&input, "filter", description, input.schema.clone(), factory);
                out.windows = windows;
                Ok(out)
            }
            LogicalPlan::Aggregate(a) => self.lower_aggregate(a),
            LogicalPlan::Join(_) => Err(plan_err(
                self.line,
                "unsupported construct: JOIN (joins are not supported yet)",
            )),
            LogicalPlan::Sort(s) => crate::ordering_plan::lower_sort(self, s),
            LogicalPlan::Limit(_) => Err(plan_err(self.line, "unsupported construct: LIMIT")),
            LogicalPlan::Window(w) => crate::ordering_plan::lower_window(self, w),
            LogicalPlan::Distinct(_) => Err(plan_err(self.line, "unsupported construct: DISTINCT")),
            LogicalPlan::Union(_) => Err(plan_err(self.line, "unsupported construct: UNION")),
            LogicalPlan::Values(_) => Err(plan_err(self.line, "unsupported construct: VALUES")),
            LogicalPlan::EmptyRelation(_) => Err(plan_err(
                self.line,
                "unsupported construct: SELECT without FROM",
            )),
            other => Err(plan_err(
                self.line,
                format!("unsupported construct: {}", other.display()),
            )),
        }
    }

    /// A table's source pipeline: source, computed columns, watermark assigner.
    /// The source pipeline of `table`; `read`: the indices of the columns
    /// this use of the table reads (`None`: all).
    fn lower_table(&mut self, table: &TableDef, read: Option<&[usize]>) -> Result<Stream> {
        let parallelism = self.parallelism;
        self.sources.lower_source(self, table, parallelism, read)
    }

    /// A window TVF (or table function) over a table or view; `projection`:
    /// the TVF's columns read downstream (`None`: all).
    fn lower_tvf(
        &mut self,
        name: &str,
        provisional: bool,
        projection: Option<&[usize]>,
    ) -> Result<Stream> {
        let tvf = self
            .catalog
            .tvfs
            .get(name)
            .ok_or_else(|| WeirError::Internal(format!("tvf {name} missing")))?
            .clone();
        let line = tvf.tvf.line;
        let input_name = tvf.tvf.input.clone();
        if let Some(f) = &tvf.function {
            return self.lower_table_function(&tvf, f);
        }
        let input = if let Some(t) = self.catalog.tables.get(&input_name) {
            if t.ddl.watermark.as_ref().map(|w| w.column.as_str())
                != Some(tvf.tvf.time_column.as_str())
            {
                return Err(plan_err(
                    line,
                    format!(
                        "DESCRIPTOR({}) is not a time attribute of table {}: declare WATERMARK FOR {} AS ... in its CREATE TABLE",
                        tvf.tvf.time_column, input_name, tvf.tvf.time_column
                    ),
                ));
            }
            // The table's columns read downstream, and the time column
            // (the window columns are computed from it).
            let n = t.schema.fields().len();
            let time = t.schema.index_of(&tvf.tvf.time_column).ok();
            let read: Option<Vec<usize>> =
                projection.map(|p| p.iter().copied().filter(|&i| i < n).chain(time).collect());
            self.lower_table(t, read.as_deref())?
        } else if let Some(v) = self.catalog.views.get(&input_name) {
            let v = v.clone();
            self.lower(&v, false)?
        } else {
            return Err(plan_err(
                line,
                format!("window TVF input '{input_name}' is not a table or view"),
            ));
        };
        let time_idx = input
            .schema
            .fields()
            .iter()
            .position(|f| f.name() == &tvf.tvf.time_column)
            .ok_or_else(|| {
                plan_err(
                    line,
                    format!(
                        "DESCRIPTOR({}): no such column in {input_name}",
                        tvf.tvf.time_column
                    ),
                )
            })?;
        let time_type = input.schema.field(time_idx).data_type().clone();
        if !matches!(time_type, DataType::Timestamp(_, _)) {
            return Err(plan_err(
                line,
                format!(
                    "DESCRIPTOR({}) must be a TIMESTAMP column, not {time_type}",
                    tvf.tvf.time_column
                ),
            ));
        }
        let time_col = Expr::Column(Column::from(input.schema.qualified_field(time_idx)));
        let ts = cast(time_col, DataType::Timestamp(TimeUnit::Millisecond, None));
        let mut exprs: Vec<Expr> = input
            .schema
            .iter()
            .map(|(q, f)| Expr::Column(Column::from((q, f))))
            .collect();
        for n in crate::catalog::WINDOW_COLUMNS {
            exprs.push(ts.clone().alias(n));
        }
        let tvf_schema = Arc::new(
            DFSchema::try_from_qualified_schema(name, &tvf.schema).map_err(|e| df_err(line, e))?,
        );
        let n = input.schema.fields().len();
        let mut stream = self.project(&input, &exprs, tvf_schema.clone(), "window_columns")?;
        stream.windows = Some(WindowCols {
            tvf: name.to_string(),
            start: Some(n),
            end: Some(n + 1),
            time: Some(n + 2),
        });
        if provisional {
            return Ok(stream);
        }
        let spec = window_spec(&tvf.tvf.kind, self.line)?;
        if matches!(spec, WindowSpec::Session { .. }) {
            return Err(plan_err(
                line,
                "SESSION windows can only be used with GROUP BY window_start, window_end (a window aggregation)",
            ));
        }
        let schema = Arc::new(tvf.schema.as_ref().clone());
        WindowAssigner::try_new(spec.clone(), n, n, n + 1, n + 2, schema.clone())?;
        let factory = Arc::new(move |_s: usize, _p: usize| -> Result<Box<dyn Operator>> {
            Ok(Box::new(WindowAssigner::try_new(
                spec.clone(),
                n,
                n,
                n + 1,
                n + 2,
                schema.clone(),
            )?))
        });
        let description = format!("{:?}", tvf.tvf.kind);
        let mut out =
            self.add_operator(&stream, "window_assigner", description, tvf_schema, factory);
        out.windows = None;
        Ok(out)
    }

    fn lower_aggregate(&mut self, a: &datafusion_expr::logical_plan::Aggregate) -> Result<Stream> {
        let line = self.line;
        let input_windows = window_indices(&a.input);
        let group_cols: Vec<Option<usize>> = a
            .group_expr
            .iter()
            .map(|g| column_index(g, a.input.schema()))
            .collect();
        let groups_windows = group_cols
            .iter()
            .flatten()
            .any(|i| input_windows.contains(i));
        if input_windows.is_empty() || !groups_windows {
            return Err(plan_err(
                line,
                "unsupported construct: GROUP BY without window_start, window_end of a window TVF (a continuously updating aggregate); use TUMBLE/HOP/CUMULATE/SESSION and GROUP BY window_start, window_end",
            ));
        }
        let input = self.lower(&a.input, true)?;
        let Some(windows) = input.windows.clone() else {
            return Err(plan_err(
                line,
                "window_start/window_end are used in an expression before the aggregation; only plain column references are supported there",
            ));
        };
        let tvf = self
            .catalog
            .tvfs
            .get(&windows.tvf)
            .ok_or_else(|| WeirError::Internal("tvf missing".into()))?
            .clone();
        let time_column = windows
            .any()
            .ok_or_else(|| WeirError::Internal("no window column".into()))?;
        let input_arrow: SchemaRef = Arc::new(input.schema.as_arrow().clone());

        let mut output = Vec::new();
        let mut keys: Vec<Arc<dyn PhysicalExpr>> = Vec::new();
        let mut key_columns: Vec<Option<usize>> = Vec::new();
        let mut key_names: Vec<String> = Vec::new();
        let (mut has_start, mut has_end) = (false, false);
        for (g, c) in a.group_expr.iter().zip(&group_cols) {
            match c {
                Some(i) if windows.start == Some(*i) => {
                    has_start = true;
                    output.push(OutputColumn::WindowStart)
                }
                Some(i) if windows.end == Some(*i) => {
                    has_end = true;
                    output.push(OutputColumn::WindowEnd)
                }
                Some(i) if windows.time == Some(*i) => output.push(OutputColumn::WindowTime),
                _ => {
                    output.push(OutputColumn::Key(keys.len()));
                    keys.push(self.physical(g, &input.schema)?);
                    key_columns.push(*c);
                    key_names.push(match c {
                        Some(i) => input.schema.field(*i).name().clone(),
                        None => g.to_string(),
                    });
                }
            }
        }
        if !(has_start && has_end) {
            return Err(plan_err(
                line,
                "a window aggregation must GROUP BY both window_start and window_end",
            ));
        }
        let mut aggregates = Vec::new();
        let ngroups = a.group_expr.len();
        for (i, e) in a.aggr_expr.iter().enumerate() {
            let inner = match e {
                Expr::Alias(al) => al.expr.as_ref(),
                other => other,
            };
            let Expr::AggregateFunction(AggregateFunction { func, params }) = inner else {
                return Err(plan_err(
                    line,
                    format!("unsupported aggregate expression: {e}"),
                ));
            };
            if !params.order_by.is_empty() {
                return Err(plan_err(
                    line,
                    format!("unsupported construct: ORDER BY inside aggregate {e}"),
                ));
            }
            let args: Vec<Arc<dyn PhysicalExpr>> = params
                .args
                .iter()
                .map(|x| self.physical(x, &input.schema))
                .collect::<Result<_>>()?;
            let name = a.schema.field(ngroups + i).name().clone();
            let agg: AggregateFunctionExpr = AggregateExprBuilder::new(func.clone(), args)
                .schema(input_arrow.clone())
                .alias(name)
                .with_distinct(params.distinct)
                .build()
                .map_err(|e| df_err(line, e))?;
            let filter = match &params.filter {
                Some(f) => Some(self.physical(f, &input.schema)?),
                None => None,
            };
            output.push(OutputColumn::Aggregate(aggregates.len()));
            aggregates.push((Arc::new(agg), filter));
        }
        let spec = window_spec(&tvf.tvf.kind, self.line)?;
        let session_keys: Vec<usize> = match &tvf.tvf.kind {
            TvfKind::Session { .. } => tvf
                .tvf
                .partition_by
                .iter()
                .map(|p| {
                    key_names.iter().position(|k| k == p).ok_or_else(|| {
                        plan_err(
                            line,
                            format!("SESSION PARTITION BY column {p} must appear in GROUP BY"),
                        )
                    })
                })
                .collect::<Result<_>>()?,
            _ => Vec::new(),
        };
        // Rows of one key (for SESSION: one partition key) must meet in one subtask.
        let routing: Vec<Option<usize>> = match &tvf.tvf.kind {
            TvfKind::Session { .. } => session_keys.iter().map(|&k| key_columns[k]).collect(),
            _ => key_columns.clone(),
        };
        let (parallelism, partitioning) =
            if !routing.is_empty() && routing.iter().all(|c| c.is_some()) {
                (
                    self.parallelism,
                    Partitioning::Hash(routing.iter().flatten().copied().collect()),
                )
            } else {
                (1, Partitioning::Rebalance)
            };
        let output_schema: SchemaRef = Arc::new(a.schema.as_arrow().clone());
        let is_session = matches!(spec, WindowSpec::Session { .. });
        let make_config = {
            let spec = spec.clone();
            let keys = keys.clone();
            let session_keys = session_keys.clone();
            let aggregates = aggregates.clone();
            let output = output.clone();
            let output_schema = output_schema.clone();
            move || WindowAggregateConfig {
                window: spec.clone(),
                time_column,
                keys: keys.clone(),
                session_keys: session_keys.clone(),
                aggregates: aggregates.clone(),
                output: output.clone(),
                output_schema: output_schema.clone(),
            }
        };
        // Validate once now; a plan error names the query's line.
        let validated = if is_session {
            SessionWindowAggregate::try_new(make_config()).map(drop)
        } else {
            WindowAggregate::try_new(make_config()).map(drop)
        };
        validated.map_err(|e| match e {
            WeirError::Plan(m) => plan_err(line, m),
            other => other,
        })?;
        let factory = Arc::new(move |_s: usize, _p: usize| -> Result<Box<dyn Operator>> {
            if is_session {
                Ok(Box::new(SessionWindowAggregate::try_new(make_config())?))
            } else {
                Ok(Box::new(WindowAggregate::try_new(make_config())?))
            }
        });
        let description = format!(
            "{:?} GROUP BY [{}] AGGREGATE [{}]",
            tvf.tvf.kind,
            key_names.join(", "),
            a.aggr_expr
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        let node = self.graph.add_node(
            "window_aggregate",
            description,
            parallelism,
            NodeKind::Operator(factory),
            output_schema,
        );
        self.graph.connect(input.node, node, partitioning);
        Ok(Stream {
            node,
            schema: a.schema.clone(),
            parallelism,
            windows: None,
        })
    }
}

impl Lowerer<'_> {
    /// A table function call: its input (table or view), repartitioned by
    /// the function's keys, then its operator.
    fn lower_table_function(
        &mut self,
        tvf: &crate::catalog::TvfDef,
        f: &crate::table_function::TableFunctionPlan,
    ) -> Result<Stream> {
        let line = tvf.tvf.line;
        let input_name = &tvf.tvf.input;
        let input = if let Some(t) = self.catalog.tables.get(input_name) {
            self.lower_table(t, None)?
        } else if let Some(v) = self.catalog.views.get(input_name) {
            let v = v.clone();
            self.lower(&v, false)?
        } else {
            return Err(plan_err(
                line,
                format!(
                    "{}: input '{input_name}' is not a table or view",
                    tvf.tvf.function
                ),
            ));
        };
        let (parallelism, partitioning) = if f.keys.is_empty() {
            (1, Partitioning::Rebalance)
        } else {
            (self.parallelism, Partitioning::Hash(f.keys.clone()))
        };
        let partitioning = if parallelism == 1 && input.parallelism == 1 {
            Partitioning::Forward
        } else {
            partitioning
        };
        let node = self.graph.add_node(
            tvf.tvf.function.to_ascii_uppercase(),
            f.description.clone(),
            parallelism,
            NodeKind::Operator(f.operator.clone()),
            f.schema.clone(),
        );
        self.graph.connect(input.node, node, partitioning);
        let schema = Arc::new(
            DFSchema::try_from_qualified_schema(tvf.tvf.table_name.as_str(), &f.schema)
                .map_err(|e| plan_err(line, e))?,
        );
        Ok(Stream {
            node,
            schema,
            parallelism,
            windows: None,
        })
    }
}

/// The Weir window spec of a window TVF; a plan error for the other TVFs.
pub fn window_spec(kind: &TvfKind, line: usize) -> Result<WindowSpec> {
    Ok(match kind {
        TvfKind::Tumble { size_ms, offset_ms } => WindowSpec::Tumble {
            size_ms: *size_ms,
            offset_ms: *offset_ms,
        },
        TvfKind::Hop {
            slide_ms,
            size_ms,
            offset_ms,
        } => WindowSpec::Hop {
            size_ms: *size_ms,
            slide_ms: *slide_ms,
            offset_ms: *offset_ms,
        },
        TvfKind::Cumulate {
            step_ms,
            size_ms,
            offset_ms,
        } => WindowSpec::Cumulate {
            size_ms: *size_ms,
            step_ms: *step_ms,
            offset_ms: *offset_ms,
        },
        TvfKind::Session { gap_ms } => WindowSpec::Session { gap_ms: *gap_ms },
        TvfKind::Sequence { .. } | TvfKind::MatchRecognize | TvfKind::Function => {
            return Err(plan_err(line, "not a window table-valued function"))
        }
    })
}

/// The index in `schema` of a plain column reference (through aliases).
fn column_index(e: &Expr, schema: &DFSchema) -> Option<usize> {
    match e {
        Expr::Column(c) => schema.index_of_column(c).ok(),
        Expr::Alias(a) => column_index(&a.expr, schema),
        _ => None,
    }
}

/// Indices of columns an expression references.
fn referenced_indices(e: &Expr, schema: &DFSchema) -> Vec<usize> {
    e.column_refs()
        .into_iter()
        .filter_map(|c| schema.index_of_column(c).ok())
        .collect()
}

/// Window columns (provisional-capable) in the output of a logical plan.
fn window_indices(plan: &LogicalPlan) -> HashSet<usize> {
    match plan {
        LogicalPlan::TableScan(scan) => {
            if !scan.table_name.table().starts_with("__weir_tvf_") {
                return HashSet::new();
            }
            scan.projected_schema
                .fields()
                .iter()
                .enumerate()
                .filter(|(_, f)| crate::catalog::WINDOW_COLUMNS.contains(&f.name().as_str()))
                .map(|(i, _)| i)
                .collect()
        }
        LogicalPlan::SubqueryAlias(a) => window_indices(&a.input),
        LogicalPlan::Filter(f) => window_indices(&f.input),
        LogicalPlan::Projection(p) => {
            let inner = window_indices(&p.input);
            p.expr
                .iter()
                .enumerate()
                .filter(|(_, e)| {
                    column_index(e, p.input.schema()).is_some_and(|i| inner.contains(&i))
                })
                .map(|(i, _)| i)
                .collect()
        }
        _ => HashSet::new(),
    }
}

/// True when a projection uses window columns only as plain pass-through columns.
fn window_use_is_passthrough_projection(
    exprs: &[Expr],
    schema: &DFSchema,
    windows: &HashSet<usize>,
) -> bool {
    exprs.iter().all(|e| {
        column_index(e, schema).is_some()
            || !referenced_indices(e, schema)
                .iter()
                .any(|i| windows.contains(i))
    })
}

/// Plans `expr` over a single-table schema (computed columns, watermarks).
pub fn column_expr(name: &str) -> Expr {
    col(Column::new_unqualified(name))
}
