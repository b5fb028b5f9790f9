//! `SEQUENCE_ORDER(...)` and `SEQUENCE_GAPS(...)` as table functions.

use std::sync::Arc;

use weir_dialect::{TvfKind, WindowTvf};
use weir_engine::operator::{Operator, OperatorFactory};
use weir_engine::{Result, WeirError};
use weir_operators::sequence_order::{
    SequenceOrder, SequenceOrderConfig, SequenceOutput, SequenceStart,
};

use crate::catalog::Catalog;
use crate::table_function::TableFunctionPlan;

use super::{plan_err, relation_time_attributes, Counted, DEFAULT_MAX_BUFFER_ROWS};

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
