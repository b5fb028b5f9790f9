//! Helpers to write `DEFINE` and `MEASURES` expressions in Rust.
//!
//! These build DataFusion [`PhysicalExpr`]s with DataFusion's own type
//! coercion for binary operators (so `price > 10` works for an `INT`
//! column and a `BIGINT` literal). A SQL front end plans expressions with
//! DataFusion directly and does not need them.

use std::sync::Arc;

use arrow::datatypes::{DataType, Schema, SchemaRef, TimeUnit};
use datafusion_common::ScalarValue;
use datafusion_expr::type_coercion::binary::BinaryTypeCoercer;
use datafusion_expr::Operator;
use datafusion_physical_expr::expressions as dfx;
use datafusion_physical_expr::PhysicalExpr;
use weir_engine::Result;

use super::navigation::{navigation_schema, Navigation};
use crate::util::df_err;

/// A column by name.
pub fn col(name: &str, schema: &Schema) -> Result<Arc<dyn PhysicalExpr>> {
    dfx::col(name, schema).map_err(df_err(|| format!("column {name}")))
}

/// A literal.
pub fn lit(value: impl Into<ScalarValue>) -> Arc<dyn PhysicalExpr> {
    dfx::lit(value.into())
}

/// `expr` cast to `to` (no-op when it already has that type).
pub fn cast(
    expr: Arc<dyn PhysicalExpr>,
    to: DataType,
    schema: &Schema,
) -> Result<Arc<dyn PhysicalExpr>> {
    dfx::cast(expr, schema, to).map_err(df_err(|| "building a cast".to_string()))
}

/// `left op right`, with both sides coerced as DataFusion's planner does
/// (comparisons, arithmetic, `AND`, `OR`).
pub fn binary(
    left: Arc<dyn PhysicalExpr>,
    op: Operator,
    right: Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Result<Arc<dyn PhysicalExpr>> {
    let text = format!("building `{left} {op} {right}`");
    let what = || text.clone();
    let lt = left.data_type(schema).map_err(df_err(what))?;
    let rt = right.data_type(schema).map_err(df_err(what))?;
    let (lc, rc) = BinaryTypeCoercer::new(&lt, &op, &rt)
        .get_input_types()
        .map_err(df_err(what))?;
    let left = cast(left, lc, schema)?;
    let right = cast(right, rc, schema)?;
    dfx::binary(left, op, right, schema).map_err(df_err(what))
}

/// `a AND b`.
pub fn and(
    a: Arc<dyn PhysicalExpr>,
    b: Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Result<Arc<dyn PhysicalExpr>> {
    binary(a, Operator::And, b, schema)
}

/// `a OR b`.
pub fn or(
    a: Arc<dyn PhysicalExpr>,
    b: Arc<dyn PhysicalExpr>,
    schema: &Schema,
) -> Result<Arc<dyn PhysicalExpr>> {
    binary(a, Operator::Or, b, schema)
}

/// `NOT a`.
pub fn not(a: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
    dfx::not(a).map_err(df_err(|| "building NOT".to_string()))
}

/// `a IS NULL`.
pub fn is_null(a: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
    dfx::is_null(a).map_err(df_err(|| "building IS NULL".to_string()))
}

/// The schema a `DEFINE` or `MEASURES` expression with `navigations` is
/// written against, for an input whose time column is a `TIMESTAMP`
/// without time zone (see [`navigation_schema`] for the general case).
pub fn define_schema(input: &SchemaRef, navigations: &[(String, Navigation)]) -> Result<SchemaRef> {
    navigation_schema(
        input,
        navigations,
        &DataType::Timestamp(TimeUnit::Millisecond, None),
    )
}
