//! Streaming `ORDER BY rowtime [, …]` as a [`TemporalSort`].

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion_expr::logical_plan::Sort;
use weir_engine::operator::{Operator, OperatorFactory};
use weir_engine::{Result, WeirError};
use weir_operators::temporal_sort::{SortKey, TemporalSort, TemporalSortConfig};

use crate::lower::{Lowerer, Stream};

use super::{add_keyed, column_index, is_time_attribute, plan_err, time_attribute_names};

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
