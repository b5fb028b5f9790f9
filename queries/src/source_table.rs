//! Source pipelines of tables (source, computed columns, watermark
//! assigner) and sinks of tables.

use std::sync::Arc;
use std::time::Duration;

use arrow::datatypes::{DataType, Schema, TimeUnit};
use datafusion_common::DFSchema;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{cast, Expr, ExprSchemable};
use datafusion_physical_expr::create_physical_expr;
use datafusion_sql::planner::{PlannerContext, SqlToRel};
use weir_connectors::{ConnectorRegistry, MetadataColumn, TableDescriptor};
use weir_dialect::ColumnDef;
use weir_engine::graph::NodeKind;
use weir_engine::operator::Operator;
use weir_engine::sink::SinkFactory;
use weir_engine::{Result, WeirError};
use weir_operators::watermark_assigner::WatermarkAssigner;

use crate::catalog::{Catalog, TableDef};
use crate::lower::{Lowerer, Stream};

/// Options the planner consumes from a table's WITH clause (not passed to the connector).
pub const PLANNER_OPTIONS: [&str; 1] = ["scan.watermark.idle-timeout"];

/// Plans the source and sink sides of tables.
pub struct SourceTablePlanner<'a> {
    /// Connectors by name.
    pub registry: &'a ConnectorRegistry,
    /// The catalog (for planning computed columns and watermarks).
    pub catalog: &'a Catalog,
    /// Default idle timeout of sources (`SET 'table.exec.source.idle-timeout'`).
    pub default_idle_timeout: Option<Duration>,
}

/// Parses a Flink duration: `5 s`, `500ms`, `1 min`, `2h`, or a number of milliseconds.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let t = text.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num.trim().parse().ok()?;
    let ms = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "ms" | "milli" | "millis" | "millisecond" | "milliseconds" => n,
        "s" | "sec" | "secs" | "second" | "seconds" => n * 1000.0,
        "min" | "mins" | "minute" | "minutes" | "m" => n * 60_000.0,
        "h" | "hour" | "hours" => n * 3_600_000.0,
        "d" | "day" | "days" => n * 86_400_000.0,
        _ => return None,
    };
    (ms >= 0.0).then(|| Duration::from_millis(ms as u64))
}

impl<'a> SourceTablePlanner<'a> {
    fn descriptor(&self, table: &TableDef) -> Result<TableDescriptor> {
        let mut d = TableDescriptor::new(
            table.ddl.name.clone(),
            table.physical_schema.clone(),
            table.options.clone(),
        );
        for c in &table.ddl.columns {
            if let ColumnDef::Metadata {
                name,
                data_type,
                key,
                ..
            } = c
            {
                d.metadata.push(MetadataColumn {
                    name: name.clone(),
                    key: key.clone().unwrap_or_else(|| name.clone()),
                    data_type: crate::types::arrow_type(data_type)?,
                });
            }
        }
        Ok(d)
    }

    /// The nullable physical columns of `table` that neither the job
    /// (`read`, indices in the declared columns) nor the watermark reads.
    /// None when the table has computed columns (their inputs are not
    /// worked out) or when everything is read.
    fn unread_columns(
        &self,
        table: &TableDef,
        read: Option<&[usize]>,
        watermark: Option<&Expr>,
    ) -> Result<Vec<String>> {
        let Some(read) = read else {
            return Ok(Vec::new());
        };
        let computed = table
            .ddl
            .columns
            .iter()
            .any(|c| matches!(c, ColumnDef::Computed { .. }));
        if computed {
            return Ok(Vec::new());
        }
        let mut needed: Vec<String> = read
            .iter()
            .filter_map(|&i| table.schema.fields().get(i).map(|f| f.name().clone()))
            .collect();
        if let (Some(wm), Some(e)) = (&table.ddl.watermark, watermark) {
            needed.push(wm.column.clone());
            needed.extend(e.column_refs().into_iter().map(|c| c.name.clone()));
        }
        Ok(table
            .physical_schema
            .fields()
            .iter()
            .filter(|f| f.is_nullable() && !needed.contains(f.name()))
            .map(|f| f.name().clone())
            .collect())
    }

    /// Creates the sink factory of a table. Writable (non-`VIRTUAL`)
    /// metadata columns are not supported in sink tables yet: a plan error
    /// names the column.
    pub fn sink(&self, table: &TableDef) -> Result<Arc<dyn SinkFactory>> {
        let line = table.ddl.line;
        for c in &table.ddl.columns {
            if let ColumnDef::Metadata {
                name,
                is_virtual: false,
                line: col_line,
                ..
            } = c
            {
                return Err(WeirError::Plan(format!(
                    "line {col_line}: table {}: writing METADATA column {name} is not supported; declare it VIRTUAL to use the table as a sink",
                    table.ddl.name
                )));
            }
        }
        let mut d = self.descriptor(table)?;
        d.metadata.clear();
        self.registry
            .sink(&d)
            .map_err(|e| e.context(format!("line {line}")))
    }

    /// Adds the source pipeline of `table` to the graph. `read`: the
    /// indices (in the table's declared columns) of the columns the job
    /// reads from this source, `None` for all: the others are named to the
    /// connector as unread (projection push-down).
    pub fn lower_source(
        &self,
        lowerer: &mut Lowerer<'_>,
        table: &TableDef,
        parallelism: usize,
        read: Option<&[usize]>,
    ) -> Result<Stream> {
        let line = table.ddl.line;
        let name = &table.ddl.name;
        let perr = |m: String| WeirError::Plan(format!("line {line}: table {name}: {m}"));
        let full_df = Arc::new(
            DFSchema::try_from_qualified_schema(name.as_str(), &table.schema)
                .map_err(|e| perr(e.to_string()))?,
        );
        let planner = SqlToRel::new(self.catalog);
        // The watermark expression, planned once: its columns are read
        // (projection push-down) and it drives the assigner.
        let watermark = match &table.ddl.watermark {
            Some(wm) => Some(
                planner
                    .sql_to_expr(wm.expr.clone(), &full_df, &mut PlannerContext::new())
                    .map_err(|e| perr(format!("WATERMARK FOR {}: {e}", wm.column)))?,
            ),
            None => None,
        };
        let mut descriptor = self.descriptor(table)?;
        descriptor.unread = self.unread_columns(table, read, watermark.as_ref())?;
        let source_schema = descriptor.source_schema();
        let factory = self
            .registry
            .source(&descriptor)
            .map_err(|e| e.context(format!("line {line}")))?;
        let node = lowerer.graph.add_node(
            format!("source:{name}"),
            factory.describe(),
            parallelism,
            NodeKind::Source(factory),
            source_schema.clone(),
        );
        // The source emits physical columns then metadata columns.
        let physical_df = Arc::new(
            DFSchema::try_from_qualified_schema(name.as_str(), &source_schema)
                .map_err(|e| perr(e.to_string()))?,
        );
        let mut stream = Stream::new(node, physical_df.clone(), parallelism);
        // Computed columns: project physical -> declared columns.
        let computed = table
            .ddl
            .columns
            .iter()
            .any(|c| !matches!(c, ColumnDef::Physical { .. }));
        if computed {
            let mut exprs = Vec::new();
            for c in &table.ddl.columns {
                match c {
                    ColumnDef::Physical { name: col, .. } => exprs.push(Expr::Column(
                        datafusion_common::Column::new(Some(name.as_str()), col),
                    )),
                    ColumnDef::Computed {
                        name: col, expr, ..
                    } => {
                        let e = planner
                            .sql_to_expr(expr.clone(), &physical_df, &mut PlannerContext::new())
                            .map_err(|e| perr(format!("computed column {col}: {e}")))?;
                        let e = coerce(e, &physical_df)
                            .map_err(|e| perr(format!("computed column {col}: {e}")))?;
                        exprs.push(e.alias(col))
                    }
                    ColumnDef::Metadata { name: col, .. } => exprs.push(Expr::Column(
                        datafusion_common::Column::new(Some(name.as_str()), col),
                    )),
                }
            }
            stream = lowerer.project(&stream, &exprs, full_df.clone(), "computed_columns")?;
        }
        stream.schema = full_df.clone();
        // Watermark assigner, chained to the source.
        if let (Some(wm), Some(e)) = (&table.ddl.watermark, watermark) {
            let e = coerce(
                cast(e, DataType::Timestamp(TimeUnit::Millisecond, None)),
                &full_df,
            )
            .map_err(|e| perr(format!("WATERMARK FOR {}: {e}", wm.column)))?;
            let physical = create_physical_expr(
                &e,
                &full_df,
                &Default::default(),
                &PhysicalPlanningContext::default(),
            )
            .map_err(|e| perr(format!("WATERMARK FOR {}: {e}", wm.column)))?;
            let idle = match table
                .ddl
                .options
                .iter()
                .find(|(k, _)| k == "scan.watermark.idle-timeout")
            {
                Some((_, v)) => Some(parse_duration(v).ok_or_else(|| {
                    perr(format!(
                        "'scan.watermark.idle-timeout' = '{v}' is not a duration"
                    ))
                })?),
                None => self.default_idle_timeout,
            };
            let description = format!("WATERMARK FOR {} AS {}", wm.column, wm.expr);
            let factory = Arc::new(move |_s: usize, _p: usize| -> Result<Box<dyn Operator>> {
                Ok(Box::new(WatermarkAssigner::new(physical.clone(), idle)))
            });
            let schema = stream.schema.clone();
            stream = lowerer.add_operator(&stream, "watermark", description, schema, factory);
        }
        Ok(stream)
    }
}

/// Applies DataFusion's type coercion to a standalone expression.
fn coerce(e: Expr, schema: &DFSchema) -> datafusion_common::Result<Expr> {
    use datafusion_common::tree_node::TreeNode;
    use datafusion_optimizer::analyzer::type_coercion::TypeCoercionRewriter;
    e.rewrite(&mut TypeCoercionRewriter::new(schema))
        .map(|t| t.data)
}

/// The Arrow schema of a table's physical columns and of all its columns.
pub fn table_schemas(
    ddl: &weir_dialect::CreateTable,
    catalog: &Catalog,
) -> Result<(Arc<Schema>, Arc<Schema>)> {
    let line = ddl.line;
    let mut physical = Vec::new();
    for c in &ddl.columns {
        if let ColumnDef::Physical {
            name,
            data_type,
            nullable,
            ..
        } = c
        {
            let t = crate::types::arrow_type(data_type)
                .map_err(|e| e.context(format!("line {line}: column {name}")))?;
            physical.push(arrow::datatypes::Field::new(name, t, *nullable));
        }
    }
    let physical = Arc::new(Schema::new(physical));
    let physical_df = DFSchema::try_from_qualified_schema(ddl.name.as_str(), &physical)
        .map_err(|e| WeirError::Plan(format!("line {line}: {e}")))?;
    let planner = SqlToRel::new(catalog);
    let mut all = Vec::new();
    for c in &ddl.columns {
        match c {
            ColumnDef::Physical { name, .. } => {
                let f = physical
                    .field_with_name(name)
                    .map_err(|e| WeirError::Plan(format!("line {line}: {e}")))?;
                all.push(f.clone());
            }
            ColumnDef::Computed { name, expr, .. } => {
                let e = planner
                    .sql_to_expr(expr.clone(), &physical_df, &mut PlannerContext::new())
                    .map_err(|e| {
                        WeirError::Plan(format!("line {line}: computed column {name}: {e}"))
                    })?;
                let e = coerce(e, &physical_df).map_err(|e| {
                    WeirError::Plan(format!("line {line}: computed column {name}: {e}"))
                })?;
                let (_, field) = e.to_field(&physical_df).map_err(|e| {
                    WeirError::Plan(format!("line {line}: computed column {name}: {e}"))
                })?;
                all.push(arrow::datatypes::Field::new(
                    name,
                    field.data_type().clone(),
                    field.is_nullable(),
                ));
            }
            ColumnDef::Metadata {
                name, data_type, ..
            } => {
                let t = crate::types::arrow_type(data_type)?;
                all.push(arrow::datatypes::Field::new(name, t, true));
            }
        }
    }
    Ok((physical, Arc::new(Schema::new(all))))
}
