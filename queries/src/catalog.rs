//! The catalog of a script: tables, views and window TVF relations, and the
//! DataFusion [`ContextProvider`] that plans queries against it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion_common::config::ConfigOptions;
use datafusion_common::{DataFusionError, TableReference};
use datafusion_expr::logical_plan::builder::LogicalTableSource;
use datafusion_expr::planner::ExprPlanner;
use datafusion_expr::{AggregateUDF, LogicalPlan, ScalarUDF, TableSource, WindowUDF};
use datafusion_sql::planner::ContextProvider;
use weir_dialect::{CreateTable, WindowTvf};

use crate::functions;

/// A table declared with `CREATE TABLE`.
#[derive(Debug, Clone)]
pub struct TableDef {
    /// The parsed statement.
    pub ddl: CreateTable,
    /// Physical columns (what the connector reads or writes), in order.
    pub physical_schema: SchemaRef,
    /// All columns (physical and computed) in declared order: the table as queries see it.
    pub schema: SchemaRef,
    /// WITH options, minus the ones the planner consumes itself.
    pub options: BTreeMap<String, String>,
}

/// A window TVF relation of a query.
#[derive(Debug, Clone)]
pub struct TvfDef {
    /// The TVF as parsed.
    pub tvf: WindowTvf,
    /// Its schema: the input's columns plus window_start, window_end,
    /// window_time for windows; what the function says for table functions.
    pub schema: SchemaRef,
    /// The planned call of a table function (`None` for built-in TVFs).
    pub function: Option<crate::table_function::TableFunctionPlan>,
}

/// Names of the columns a window TVF adds.
pub const WINDOW_COLUMNS: [&str; 3] = ["window_start", "window_end", "window_time"];

/// Tables, views and TVF relations known while planning a script.
pub struct Catalog {
    /// CREATE TABLE definitions by name.
    pub tables: HashMap<String, TableDef>,
    /// CREATE VIEW plans by name.
    pub views: HashMap<String, LogicalPlan>,
    /// Window TVF relations by synthetic name.
    pub tvfs: HashMap<String, TvfDef>,
    options: ConfigOptions,
    scalar: HashMap<String, Arc<ScalarUDF>>,
    aggregate: HashMap<String, Arc<AggregateUDF>>,
    planners: Vec<Arc<dyn ExprPlanner>>,
}

impl Catalog {
    /// A catalog with DataFusion's and Weir's functions.
    pub fn new() -> Self {
        let mut scalar = HashMap::new();
        for f in datafusion_functions::all_default_functions() {
            for a in f.aliases() {
                scalar.insert(a.to_ascii_lowercase(), f.clone());
            }
            scalar.insert(f.name().to_ascii_lowercase(), f);
        }
        for f in functions::weir_functions() {
            scalar.insert(f.name().to_ascii_lowercase(), f);
        }
        let mut aggregate = HashMap::new();
        for f in datafusion_functions_aggregate::all_default_aggregate_functions() {
            for a in f.aliases() {
                aggregate.insert(a.to_ascii_lowercase(), f.clone());
            }
            aggregate.insert(f.name().to_ascii_lowercase(), f);
        }
        let planners: Vec<Arc<dyn ExprPlanner>> = vec![
            Arc::new(datafusion_functions::core::planner::CoreFunctionPlanner::default()),
            Arc::new(datafusion_functions::unicode::planner::UnicodeFunctionPlanner),
            Arc::new(datafusion_functions::datetime::planner::DatetimeFunctionPlanner),
            Arc::new(datafusion_functions_aggregate::planner::AggregateFunctionPlanner),
        ];
        let mut options = ConfigOptions::new();
        options.sql_parser.enable_ident_normalization = false;
        options.sql_parser.map_string_types_to_utf8view = false;
        Self {
            tables: HashMap::new(),
            views: HashMap::new(),
            tvfs: HashMap::new(),
            options,
            scalar,
            aggregate,
            planners,
        }
    }

    /// Registers a scalar function (a Weir extension or a user's UDF).
    pub fn register_udf(&mut self, f: Arc<ScalarUDF>) {
        self.scalar.insert(f.name().to_ascii_lowercase(), f);
    }

    /// Registers an aggregate function.
    pub fn register_udaf(&mut self, f: Arc<AggregateUDF>) {
        self.aggregate.insert(f.name().to_ascii_lowercase(), f);
    }

    /// The schema a relation name resolves to (table, view or TVF).
    pub fn relation_schema(&self, name: &str) -> Option<SchemaRef> {
        if let Some(t) = self.tables.get(name) {
            return Some(t.schema.clone());
        }
        if let Some(v) = self.views.get(name) {
            return Some(Arc::new(v.schema().as_arrow().clone()));
        }
        self.tvfs.get(name).map(|t| t.schema.clone())
    }

    /// Builds the schema of a TVF over `input`: the input's columns plus the
    /// three window columns.
    pub fn tvf_schema(input: &Schema) -> SchemaRef {
        let mut fields: Vec<Field> = input.fields().iter().map(|f| f.as_ref().clone()).collect();
        for name in WINDOW_COLUMNS {
            fields.push(Field::new(
                name,
                DataType::Timestamp(TimeUnit::Millisecond, None),
                true,
            ));
        }
        Arc::new(Schema::new(fields))
    }
}

impl Default for Catalog {
    fn default() -> Self {
        Self::new()
    }
}

/// A table source that is a view: DataFusion's analyzer inlines its plan.
#[derive(Debug)]
struct ViewSource {
    plan: LogicalPlan,
    schema: SchemaRef,
}

impl TableSource for ViewSource {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn get_logical_plan(&self) -> Option<std::borrow::Cow<'_, LogicalPlan>> {
        Some(std::borrow::Cow::Borrowed(&self.plan))
    }
}

impl ContextProvider for Catalog {
    fn get_table_source(
        &self,
        name: TableReference,
    ) -> datafusion_common::Result<Arc<dyn TableSource>> {
        let table = name.table();
        if let Some(v) = self.views.get(table) {
            return Ok(Arc::new(ViewSource {
                plan: v.clone(),
                schema: Arc::new(v.schema().as_arrow().clone()),
            }));
        }
        match self.relation_schema(table) {
            Some(schema) => Ok(Arc::new(LogicalTableSource::new(schema))),
            None => {
                let mut known: Vec<&String> = self.tables.keys().chain(self.views.keys()).collect();
                known.sort();
                Err(DataFusionError::Plan(format!(
                    "table or view '{table}' not found (known: {})",
                    known
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        }
    }

    fn get_expr_planners(&self) -> &[Arc<dyn ExprPlanner>] {
        &self.planners
    }

    fn get_function_meta(&self, name: &str) -> Option<Arc<ScalarUDF>> {
        self.scalar.get(&name.to_ascii_lowercase()).cloned()
    }

    fn get_higher_order_meta(&self, _name: &str) -> Option<Arc<datafusion_expr::HigherOrderUDF>> {
        None
    }

    fn get_aggregate_meta(&self, name: &str) -> Option<Arc<AggregateUDF>> {
        self.aggregate.get(&name.to_ascii_lowercase()).cloned()
    }

    fn get_window_meta(&self, name: &str) -> Option<Arc<WindowUDF>> {
        crate::ordering_plan::window_function(name)
    }

    fn get_variable_type(&self, _variable_names: &[String]) -> Option<DataType> {
        None
    }

    fn options(&self) -> &ConfigOptions {
        &self.options
    }

    fn udf_names(&self) -> Vec<String> {
        self.scalar.keys().cloned().collect()
    }

    fn higher_order_function_names(&self) -> Vec<String> {
        Vec::new()
    }

    fn udaf_names(&self) -> Vec<String> {
        self.aggregate.keys().cloned().collect()
    }

    fn udwf_names(&self) -> Vec<String> {
        crate::ordering_plan::window_function_names()
    }
}
