//! `MEASURES`: the [`Measure`] trait and its DataFusion-backed
//! implementation [`ExprMeasure`].

use std::fmt;
use std::sync::Arc;

use arrow::array::{new_null_array, Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::interleave;
use arrow::datatypes::{Field, SchemaRef};
use datafusion_physical_expr::expressions::Column;
use datafusion_physical_expr::utils::collect_columns;
use datafusion_physical_expr::PhysicalExpr;
use weir_engine::{Result, WeirError};

use super::context::{Binder, MatchContext};
use super::navigation::{navigation_schema, BoundNavigation, Navigation};
use crate::util::df_err;

/// The column name of the navigation of [`ExprMeasure::navigation`].
const NAVIGATION_COLUMN: &str = "__weir_measure";

/// One output column computed from each match (one `MEASURES` entry, with
/// `FINAL` semantics: the match is complete).
pub trait Measure: Send + Sync + fmt::Debug {
    /// Resolves variable names, registers per-row expressions and returns
    /// the output field (name, type, nullability).
    fn bind(&mut self, binder: &mut Binder<'_>) -> Result<Field>;

    /// The values for a list of matches, one per match, as an array of the
    /// bound field's type.
    fn evaluate(&self, matches: &[MatchContext<'_>]) -> Result<ArrayRef>;
}

/// A measure written as a DataFusion expression over the input columns
/// followed by one column per navigation (see [`navigation_schema`]).
/// The input columns hold the *last row of the match* (so a bare column
/// means `LAST(*.column)`, as in Flink); usually the expression reads
/// navigations only. Evaluated once per batch of matches, vectorized.
pub struct ExprMeasure {
    name: String,
    expr: Option<Arc<dyn PhysicalExpr>>,
    navigations: Vec<(String, Navigation)>,
    bound: Option<Bound>,
}

struct Bound {
    schema: SchemaRef,
    expr: Arc<dyn PhysicalExpr>,
    navigations: Vec<BoundNavigation>,
    input_used: Vec<bool>,
}

impl fmt::Debug for ExprMeasure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ExprMeasure");
        d.field("name", &self.name);
        if let Some(e) = &self.expr {
            d.field("expr", &format_args!("{e}"));
        }
        d.field(
            "navigations",
            &self.navigations.iter().map(|n| &n.0).collect::<Vec<_>>(),
        )
        .finish()
    }
}

impl ExprMeasure {
    /// The measure `expr AS name`, `expr` over the input columns followed by
    /// the named navigation columns.
    pub fn new(
        name: impl Into<String>,
        expr: Arc<dyn PhysicalExpr>,
        navigations: Vec<(String, Navigation)>,
    ) -> Self {
        Self {
            name: name.into(),
            expr: Some(expr),
            navigations,
            bound: None,
        }
    }

    /// The measure `navigation AS name`, e.g. `LAST(A.price) AS lastPrice`.
    pub fn navigation(name: impl Into<String>, navigation: Navigation) -> Self {
        Self {
            navigations: vec![(NAVIGATION_COLUMN.to_string(), navigation)],
            name: name.into(),
            expr: None,
            bound: None,
        }
    }

    fn bound(&self) -> Result<&Bound> {
        self.bound
            .as_ref()
            .ok_or_else(|| WeirError::Internal(format!("measure {} not bound", self.name)))
    }
}

impl Measure for ExprMeasure {
    fn bind(&mut self, binder: &mut Binder<'_>) -> Result<Field> {
        let input = binder.input_schema().clone();
        let schema = navigation_schema(&input, &self.navigations, binder.rowtime_type())?;
        let expr: Arc<dyn PhysicalExpr> = match &self.expr {
            Some(e) => e.clone(),
            None => Arc::new(Column::new(NAVIGATION_COLUMN, input.fields().len())),
        };
        let data_type = expr
            .data_type(&schema)
            .map_err(df_err(|| format!("typing measure {} `{expr}`", self.name)))?;
        let navigations = self
            .navigations
            .iter()
            .map(|(_, n)| n.bind(binder))
            .collect::<Result<Vec<_>>>()?;
        let mut input_used = vec![false; input.fields().len()];
        for c in collect_columns(&expr) {
            if let Some(u) = input_used.get_mut(c.index()) {
                *u = true;
            }
        }
        self.bound = Some(Bound {
            schema,
            expr,
            navigations,
            input_used,
        });
        Ok(Field::new(&self.name, data_type, true))
    }

    fn evaluate(&self, matches: &[MatchContext<'_>]) -> Result<ArrayRef> {
        let b = self.bound()?;
        let n = matches.len();
        let mut columns = Vec::with_capacity(b.schema.fields().len());
        // The last row of each match, for the input columns read.
        let anchors = if b.input_used.iter().any(|u| *u) {
            matches
                .iter()
                .map(|m| m.anchor())
                .collect::<Result<Vec<_>>>()?
        } else {
            Vec::new()
        };
        let mut chunks: Vec<u32> = Vec::new();
        let mut indices = Vec::with_capacity(anchors.len());
        for a in &anchors {
            let src = match chunks.iter().position(|&c| c == a.chunk()) {
                Some(i) => i,
                None => {
                    chunks.push(a.chunk());
                    chunks.len() - 1
                }
            };
            indices.push((src, a.index()));
        }
        for (i, (used, field)) in b.input_used.iter().zip(b.schema.fields()).enumerate() {
            if !*used {
                columns.push(new_null_array(field.data_type(), n));
                continue;
            }
            let arrays: Vec<&dyn Array> = chunks
                .iter()
                .map(|c| {
                    anchors
                        .iter()
                        .find(|a| a.chunk() == *c)
                        .map(|a| a.batch().column(i).as_ref())
                        .ok_or_else(|| WeirError::Internal("anchor chunk missing".into()))
                })
                .collect::<Result<_>>()?;
            columns.push(interleave(&arrays, &indices)?);
        }
        for nav in &b.navigations {
            columns.push(nav.column(matches)?);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        let batch = RecordBatch::try_new_with_options(b.schema.clone(), columns, &options)?;
        b.expr
            .evaluate(&batch)
            .and_then(|v| v.into_array(n))
            .map_err(df_err(|| {
                format!("evaluating measure {} `{}`", self.name, b.expr)
            }))
    }
}
