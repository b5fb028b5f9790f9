//! Planning a whole script: statements in order, one job.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use datafusion_common::{Column, DFSchema};
use datafusion_expr::{cast, AggregateUDF, Expr, ExprSchemable, LogicalPlan, ScalarUDF};
use datafusion_optimizer::analyzer::Analyzer;
use datafusion_optimizer::optimize_projections::OptimizeProjections;
use datafusion_optimizer::simplify_expressions::SimplifyExpressions;
use datafusion_optimizer::{Optimizer, OptimizerContext};
use datafusion_sql::planner::{ParserOptions, SqlToRel};
use sqlparser::ast::{Query, Statement};
use weir_connectors::ConnectorRegistry;
use weir_dialect::{parse_script, StatementKind, TvfKind, WindowTvf};
use weir_engine::graph::{JobGraph, NodeKind, Partitioning};
use weir_engine::sink::SinkFactory;
use weir_engine::{Result, WeirError};

use crate::catalog::{Catalog, TableDef, TvfDef};
use crate::lower::{Lowerer, Stream};
use crate::source_table::{parse_duration, table_schemas, SourceTablePlanner, PLANNER_OPTIONS};
use crate::table_function::{TableFunction, TableFunctionCall, TableFunctionRegistry};

/// How to plan a script.
#[derive(Clone)]
pub struct PlanOptions {
    /// Parallelism of sources and keyed operators (overridden by `SET 'parallelism.default'`).
    pub parallelism: usize,
    /// Connectors by name.
    pub registry: Arc<ConnectorRegistry>,
    /// Where a bare `SELECT` writes (default: the `print` connector).
    pub select_sink: Option<Arc<dyn SinkFactory>>,
    /// Table functions callable as `TABLE(NAME(TABLE t, …))`.
    pub table_functions: TableFunctionRegistry,
    /// Extra scalar functions (user UDFs), callable by name.
    pub scalar_functions: Vec<Arc<ScalarUDF>>,
    /// Extra aggregate functions (user UDAFs), callable by name.
    pub aggregate_functions: Vec<Arc<AggregateUDF>>,
}

impl PlanOptions {
    /// Parallelism 1, the default connectors, bare SELECTs printed, the
    /// built-in table functions (the fraud rules of
    /// [`fraud_functions`](crate::fraud_functions)).
    pub fn new() -> Self {
        Self {
            parallelism: 1,
            registry: Arc::new(ConnectorRegistry::with_defaults()),
            select_sink: None,
            table_functions: crate::fraud_functions::builtin_table_functions(),
            scalar_functions: Vec::new(),
            aggregate_functions: Vec::new(),
        }
    }

    /// Makes `f` callable from SQL as `TABLE(NAME(TABLE t, …))`.
    pub fn register_table_function(&mut self, f: Arc<dyn TableFunction>) {
        self.table_functions.register(f);
    }

    /// Makes a scalar UDF callable from SQL.
    pub fn register_udf(&mut self, f: Arc<ScalarUDF>) {
        self.scalar_functions.push(f);
    }

    /// Makes an aggregate UDF callable from SQL (in window aggregations).
    pub fn register_udaf(&mut self, f: Arc<AggregateUDF>) {
        self.aggregate_functions.push(f);
    }
}

impl Default for PlanOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// One INSERT or SELECT of a script, as planned.
#[derive(Debug, Clone)]
pub struct PlannedStatement {
    /// Line of the statement.
    pub line: usize,
    /// `INSERT INTO t` or `SELECT`.
    pub target: String,
    /// The optimized DataFusion logical plan (for `explain`).
    pub logical_plan: String,
}

/// A script planned into one job.
pub struct PlannedJob {
    /// The dataflow graph.
    pub graph: JobGraph,
    /// Its INSERT/SELECT statements.
    pub statements: Vec<PlannedStatement>,
}

impl PlannedJob {
    /// Human-readable plan: logical plans, then tasks, nodes and edges.
    pub fn explain(&self) -> Result<String> {
        let mut s = String::new();
        for st in &self.statements {
            s.push_str(&format!(
                "== line {}: {} ==\n{}\n",
                st.line, st.target, st.logical_plan
            ));
        }
        s.push_str("== dataflow ==\n");
        s.push_str(&self.graph.explain()?);
        Ok(s)
    }
}

/// Plans a script of Flink SQL statements into one job.
pub fn plan_script(sql: &str, options: &PlanOptions) -> Result<PlannedJob> {
    let statements = parse_script(sql).map_err(|e| WeirError::Plan(e.to_string()))?;
    let mut catalog = Catalog::new();
    for f in &options.scalar_functions {
        catalog.register_udf(f.clone());
    }
    for f in &options.aggregate_functions {
        catalog.register_udaf(f.clone());
    }
    let mut graph = JobGraph::new();
    let mut planned = Vec::new();
    let mut parallelism = options.parallelism.max(1);
    let mut idle_timeout: Option<Duration> = None;
    for st in statements {
        let line = st.line;
        match st.kind {
            StatementKind::Set { key, value } => match key.as_str() {
                "parallelism.default" => {
                    parallelism = value
                        .parse::<usize>()
                        .ok()
                        .filter(|p| *p > 0)
                        .ok_or_else(|| plan_err(line, format!("SET 'parallelism.default' = '{value}': expected a positive integer")))?;
                }
                "table.exec.source.idle-timeout" => {
                    idle_timeout = Some(parse_duration(&value).ok_or_else(|| {
                        plan_err(line, format!("SET '{key}' = '{value}': expected a duration like '5 s'"))
                    })?);
                }
                "execution.runtime-mode" if value.eq_ignore_ascii_case("streaming") => {}
                "pipeline.name" | "sql-client.execution.result-mode" => {}
                _ => {
                    return Err(plan_err(
                        line,
                        format!("unsupported SET key '{key}' (supported: parallelism.default, table.exec.source.idle-timeout, execution.runtime-mode = streaming, pipeline.name)"),
                    ))
                }
            },
            StatementKind::CreateTable(ddl) => {
                if catalog.relation_schema(&ddl.name).is_some() {
                    return Err(plan_err(line, format!("table or view '{}' already exists", ddl.name)));
                }
                let (physical_schema, schema) = table_schemas(&ddl, &catalog)?;
                if let Some(wm) = &ddl.watermark {
                    let field = schema.field_with_name(&wm.column).map_err(|_| {
                        plan_err(wm.line, format!("WATERMARK FOR {}: no such column in table {}", wm.column, ddl.name))
                    })?;
                    if !matches!(field.data_type(), arrow::datatypes::DataType::Timestamp(_, _)) {
                        return Err(plan_err(
                            wm.line,
                            format!("WATERMARK FOR {}: the column must be TIMESTAMP(3) or TIMESTAMP_LTZ(3), not {}", wm.column, field.data_type()),
                        ));
                    }
                }
                let options: BTreeMap<String, String> = ddl
                    .options
                    .iter()
                    .filter(|(k, _)| !PLANNER_OPTIONS.contains(&k.as_str()))
                    .cloned()
                    .collect();
                catalog.tables.insert(
                    ddl.name.clone(),
                    TableDef {
                        ddl,
                        physical_schema,
                        schema,
                        options,
                    },
                );
            }
            StatementKind::CreateView { name, query, tvfs } => {
                if catalog.relation_schema(&name).is_some() {
                    return Err(plan_err(line, format!("table or view '{name}' already exists")));
                }
                register_tvfs(&mut catalog, &tvfs, options)?;
                let plan = plan_query(&catalog, *query, line)?;
                catalog.views.insert(name, plan);
            }
            StatementKind::Insert { table, query, tvfs } => {
                register_tvfs(&mut catalog, &tvfs, options)?;
                let plan = plan_query(&catalog, *query, line)?;
                let target = catalog
                    .tables
                    .get(&table)
                    .ok_or_else(|| plan_err(line, format!("INSERT INTO {table}: no such table")))?
                    .clone();
                let sources = SourceTablePlanner {
                    registry: &options.registry,
                    catalog: &catalog,
                    default_idle_timeout: idle_timeout,
                };
                let sink = sources.sink(&target)?;
                let mut lowerer = Lowerer::new(&catalog, &mut graph, &sources, parallelism, line);
                let stream = lowerer.lower_query(&plan)?;
                let stream = conform_to_sink(&mut lowerer, stream, &target.physical_schema, &table, line)?;
                add_sink(&mut graph, &stream, sink, &format!("sink:{table}"));
                planned.push(PlannedStatement {
                    line,
                    target: format!("INSERT INTO {table}"),
                    logical_plan: plan.display_indent().to_string(),
                });
            }
            StatementKind::Query { query, tvfs } => {
                register_tvfs(&mut catalog, &tvfs, options)?;
                let plan = plan_query(&catalog, *query, line)?;
                let sources = SourceTablePlanner {
                    registry: &options.registry,
                    catalog: &catalog,
                    default_idle_timeout: idle_timeout,
                };
                let sink = match &options.select_sink {
                    Some(s) => s.clone(),
                    None => {
                        let descriptor = weir_connectors::TableDescriptor::new(
                            "select",
                            Arc::new(plan.schema().as_arrow().clone()),
                            BTreeMap::from([("connector".to_string(), "print".to_string())]),
                        );
                        options.registry.sink(&descriptor)?
                    }
                };
                let mut lowerer = Lowerer::new(&catalog, &mut graph, &sources, parallelism, line);
                let stream = lowerer.lower_query(&plan)?;
                add_sink(&mut graph, &stream, sink, "sink:select");
                planned.push(PlannedStatement {
                    line,
                    target: "SELECT".into(),
                    logical_plan: plan.display_indent().to_string(),
                });
            }
        }
    }
    if planned.is_empty() {
        return Err(WeirError::Plan(
            "the script has no INSERT INTO or SELECT statement: nothing to run".into(),
        ));
    }
    Ok(PlannedJob {
        graph,
        statements: planned,
    })
}

fn plan_err(line: usize, msg: impl std::fmt::Display) -> WeirError {
    WeirError::Plan(format!("line {line}: {msg}"))
}

fn register_tvfs(catalog: &mut Catalog, tvfs: &[WindowTvf], options: &PlanOptions) -> Result<()> {
    for t in tvfs {
        if t.kind == TvfKind::Function {
            let f = options.table_functions.get(&t.function).ok_or_else(|| {
                let known = options.table_functions.names();
                plan_err(
                    t.line,
                    format!(
                        "unknown table function '{}' (known: {})",
                        t.function,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                )
            })?;
            let input = catalog.relation_schema(&t.input).ok_or_else(|| {
                plan_err(
                    t.line,
                    format!("{}(TABLE {}): no such table or view", t.function, t.input),
                )
            })?;
            let call = TableFunctionCall::resolve(&t.function, input, &t.args, t.line)?;
            let plan = f.plan(&call)?;
            catalog.tvfs.insert(
                t.table_name.clone(),
                TvfDef {
                    tvf: t.clone(),
                    schema: plan.schema.clone(),
                    function: Some(plan),
                },
            );
            continue;
        }
        if t.kind == TvfKind::MatchRecognize {
            let def = crate::match_plan::plan_match_recognize(catalog, t)?;
            catalog.tvfs.insert(t.table_name.clone(), def);
            continue;
        }
        if let TvfKind::Sequence { .. } = t.kind {
            let plan = crate::ordering_plan::plan_sequence(catalog, t)?;
            catalog.tvfs.insert(
                t.table_name.clone(),
                TvfDef {
                    tvf: t.clone(),
                    schema: plan.schema.clone(),
                    function: Some(plan),
                },
            );
            continue;
        }
        let input = catalog.relation_schema(&t.input).ok_or_else(|| {
            plan_err(
                t.line,
                format!("window TVF over '{}': no such table or view", t.input),
            )
        })?;
        if input.field_with_name(&t.time_column).is_err() {
            return Err(plan_err(
                t.line,
                format!(
                    "DESCRIPTOR({}): table {} has no such column",
                    t.time_column, t.input
                ),
            ));
        }
        for p in &t.partition_by {
            if input.field_with_name(p).is_err() {
                return Err(plan_err(
                    t.line,
                    format!("PARTITION BY {p}: table {} has no such column", t.input),
                ));
            }
        }
        let schema = Catalog::tvf_schema(&input);
        catalog.tvfs.insert(
            t.table_name.clone(),
            TvfDef {
                tvf: t.clone(),
                schema,
                function: None,
            },
        );
    }
    Ok(())
}

/// Plans, analyzes (type coercion, view inlining) and lightly optimizes a query.
fn plan_query(catalog: &Catalog, query: Query, line: usize) -> Result<LogicalPlan> {
    let parser_options = ParserOptions {
        enable_ident_normalization: false,
        map_string_types_to_utf8view: false,
        ..ParserOptions::new()
    };
    let planner = SqlToRel::new_with_options(catalog, parser_options);
    let plan = planner
        .sql_statement_to_plan(Statement::Query(Box::new(query)))
        .map_err(|e| plan_err(line, e))?;
    // Before type coercion, which wraps an integer AVG argument in a cast to
    // DOUBLE that cannot be told apart from the user's own CAST.
    let plan = flink_avg_types(plan).map_err(|e| plan_err(line, e))?;
    let plan = crate::ordering_plan::flink_over_avg(plan).map_err(|e| plan_err(line, e))?;
    let config = datafusion_common::config::ConfigOptions::new();
    let plan = Analyzer::new()
        .execute_and_check(plan, &config, |_, _| {})
        .map_err(|e| plan_err(line, e))?;
    let optimizer = Optimizer::with_rules(vec![
        Arc::new(SimplifyExpressions::new()),
        Arc::new(OptimizeProjections::new()),
    ]);
    optimizer
        .optimize(plan, &OptimizerContext::new(), |_, _| {})
        .map_err(|e| plan_err(line, e))
        .and_then(|plan| {
            crate::ordering_plan::flink_over_types(plan).map_err(|e| plan_err(line, e))
        })
}

/// Flink's `AVG` has its argument's type: of an integer column it is that
/// integer type (the average truncated toward zero), of a FLOAT a FLOAT;
/// DataFusion's is DOUBLE. Adds a projection above
/// each such aggregate that casts those columns back, keeping their names.
fn flink_avg_types(plan: LogicalPlan) -> datafusion_common::Result<LogicalPlan> {
    use datafusion_common::tree_node::{Transformed, TreeNode};
    use datafusion_expr::expr::AggregateFunction;
    use datafusion_expr::logical_plan::Projection;
    plan.transform_up(|node| {
        let LogicalPlan::Aggregate(agg) = &node else {
            return Ok(Transformed::no(node));
        };
        let ngroups = agg.group_expr.len();
        let mut casts: Vec<(usize, arrow::datatypes::DataType)> = Vec::new();
        for (i, e) in agg.aggr_expr.iter().enumerate() {
            let inner = match e {
                Expr::Alias(a) => a.expr.as_ref(),
                other => other,
            };
            if let Expr::AggregateFunction(AggregateFunction { func, params }) = inner {
                if func.name().eq_ignore_ascii_case("avg") {
                    if let Some(arg) = params.args.first() {
                        let t = arg.get_type(agg.input.schema())?;
                        if t.is_integer() || t == arrow::datatypes::DataType::Float32 {
                            casts.push((ngroups + i, t));
                        }
                    }
                }
            }
        }
        if casts.is_empty() {
            return Ok(Transformed::no(node));
        }
        let schema = agg.schema.clone();
        let exprs: Vec<Expr> = schema
            .iter()
            .enumerate()
            .map(|(i, (q, f))| {
                let c = Expr::Column(Column::from((q, f)));
                match casts.iter().find(|(j, _)| *j == i) {
                    Some((_, t)) => cast(c, t.clone()).alias_qualified(q.cloned(), f.name()),
                    None => c,
                }
            })
            .collect();
        let projection = Projection::try_new(exprs, Arc::new(node))?;
        Ok(Transformed::yes(LogicalPlan::Projection(projection)))
    })
    .map(|t| t.data)
}

/// Casts and renames the query's columns to the sink table's columns.
fn conform_to_sink(
    lowerer: &mut Lowerer<'_>,
    stream: Stream,
    sink_schema: &SchemaRef,
    table: &str,
    line: usize,
) -> Result<Stream> {
    let fields = stream.schema.fields();
    if fields.len() != sink_schema.fields().len() {
        return Err(plan_err(
            line,
            format!(
                "INSERT INTO {table}: the query has {} columns, the table has {} ({})",
                fields.len(),
                sink_schema.fields().len(),
                sink_schema
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let same = fields
        .iter()
        .zip(sink_schema.fields())
        .all(|(a, b)| a.name() == b.name() && a.data_type() == b.data_type());
    if same {
        return Ok(stream);
    }
    let mut exprs = Vec::new();
    for (i, target) in sink_schema.fields().iter().enumerate() {
        let c = Expr::Column(Column::from(stream.schema.qualified_field(i)));
        let e = if stream.schema.field(i).data_type() == target.data_type() {
            c
        } else {
            cast(c, target.data_type().clone())
        };
        exprs.push(e.alias(target.name()));
    }
    let schema =
        Arc::new(DFSchema::try_from(sink_schema.as_ref().clone()).map_err(|e| plan_err(line, e))?);
    lowerer.project(&stream, &exprs, schema, "sink_columns")
}

fn add_sink(graph: &mut JobGraph, stream: &Stream, sink: Arc<dyn SinkFactory>, name: &str) {
    let node = graph.add_node(
        name,
        sink.describe(),
        stream.parallelism,
        NodeKind::Sink(sink),
        Arc::new(stream.schema.as_arrow().clone()),
    );
    graph.connect(stream.node, node, Partitioning::Forward);
}
