//! What conditions and measures see: [`Binder`] when the matcher is built,
//! [`MatchContext`] when they are evaluated.
//!
//! A [`super::condition::Condition`] (a `DEFINE`) or
//! [`super::measure::Measure`] (a `MEASURES` column) is *bound* once: it
//! resolves the variable names it refers to ([`Binder::resolve`]) and
//! registers the per-row expressions it reads ([`Binder::row_expr`]); the
//! matcher evaluates those on every input batch, vectorized, and keeps the
//! results next to the rows. It is then *evaluated* against a
//! [`MatchContext`]: the rows mapped so far to each variable, the row being
//! matched (in `DEFINE`) and the partition's previous rows (`PREV`).
//!
//! Row sets follow Flink: in a `DEFINE` of variable `V`, the rows of `V`
//! and the rows of all variables ([`VarRef::All`], SQL's `*`) include the
//! row being matched; the rows of other variables do not. In `MEASURES`,
//! they are the final rows of the match.

use std::ops::Range;
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef, TimeUnit};
use datafusion_common::ScalarValue;
use datafusion_physical_expr::PhysicalExpr;
use weir_engine::{Result, WeirError};

use super::rows::{History, RowStore, StoredRow};
use crate::util::df_err;

/// A per-row expression registered with [`Binder::row_expr`]: its values
/// are computed once per input batch and read with [`MatchRow::value`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RowExprId(pub(crate) usize);

/// A pattern variable as written by the user: a name, or all variables
/// (SQL's default variable `*`, e.g. `LAST(price, 1)` or `SUM(price)`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum VarRef {
    /// One pattern variable, by name.
    Var(String),
    /// The rows mapped to any variable, in order.
    All,
}

impl VarRef {
    /// One pattern variable.
    pub fn var(name: impl Into<String>) -> Self {
        VarRef::Var(name.into())
    }
}

impl std::fmt::Display for VarRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VarRef::Var(v) => write!(f, "{v}"),
            VarRef::All => write!(f, "*"),
        }
    }
}

/// A [`VarRef`] resolved by [`Binder::resolve`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VarSet {
    /// The variable with this index (its position in the pattern).
    Var(usize),
    /// All variables.
    All,
    /// A name that is not a pattern variable: no rows (Flink accepts such
    /// references; `COUNT(X.price)` is 0, `LAST(X.price)` NULL).
    Unmatched,
}

/// Resolves names and registers per-row expressions while a matcher is
/// built. See the [module docs](self).
#[derive(Debug)]
pub struct Binder<'a> {
    input_schema: &'a SchemaRef,
    variables: &'a [String],
    time_type: DataType,
    row_exprs: Vec<Arc<dyn PhysicalExpr>>,
    row_expr_keys: Vec<String>,
    look_back: usize,
}

impl<'a> Binder<'a> {
    pub(crate) fn new(
        input_schema: &'a SchemaRef,
        variables: &'a [String],
        time_type: DataType,
    ) -> Self {
        Self {
            input_schema,
            variables,
            time_type,
            row_exprs: Vec::new(),
            row_expr_keys: Vec::new(),
            look_back: 0,
        }
    }

    /// The schema of the input rows.
    pub fn input_schema(&self) -> &SchemaRef {
        self.input_schema
    }

    /// The pattern variables, in pattern order.
    pub fn variables(&self) -> &[String] {
        self.variables
    }

    /// The type of `MATCH_ROWTIME()`: `TIMESTAMP(3)` (milliseconds), with
    /// the time zone of the time column if it has one.
    pub fn rowtime_type(&self) -> &DataType {
        &self.time_type
    }

    /// Resolves a variable name. A name that is not a pattern variable
    /// resolves to [`VarSet::Unmatched`] (no rows), as Flink accepts it.
    pub fn resolve(&self, var: &VarRef) -> Result<VarSet> {
        Ok(match var {
            VarRef::All => VarSet::All,
            VarRef::Var(name) => self
                .variables
                .iter()
                .position(|v| v == name)
                .map_or(VarSet::Unmatched, VarSet::Var),
        })
    }

    /// Registers an expression over the input schema to be evaluated on
    /// every input batch; equal expressions share one id.
    pub fn row_expr(&mut self, expr: Arc<dyn PhysicalExpr>) -> Result<RowExprId> {
        let data_type = expr
            .data_type(self.input_schema)
            .map_err(df_err(|| format!("typing row expression `{expr}`")))?;
        let key = format!("{expr}: {data_type}");
        if let Some(i) = self.row_expr_keys.iter().position(|k| *k == key) {
            return Ok(RowExprId(i));
        }
        self.row_exprs.push(expr);
        self.row_expr_keys.push(key);
        Ok(RowExprId(self.row_exprs.len() - 1))
    }

    /// Declares that rows up to `n` positions before the current (or last)
    /// row are read with [`MatchContext::prev`], so the matcher keeps them.
    pub fn look_back(&mut self, n: usize) {
        self.look_back = self.look_back.max(n);
    }

    /// The registered expressions and the look-back, once binding is done.
    pub(crate) fn finish(self) -> (Vec<Arc<dyn PhysicalExpr>>, usize) {
        (self.row_exprs, self.look_back)
    }
}

/// One stored row, as seen by conditions and measures.
#[derive(Debug, Clone, Copy)]
pub struct MatchRow<'a> {
    batch: &'a RecordBatch,
    derived: &'a [ArrayRef],
    index: usize,
    seq: u64,
    ts: i64,
    chunk: u32,
}

impl<'a> MatchRow<'a> {
    /// The batch the row is in.
    pub fn batch(&self) -> &'a RecordBatch {
        self.batch
    }

    /// The row's index in [`MatchRow::batch`].
    pub fn index(&self) -> usize {
        self.index
    }

    /// Event time, in milliseconds since the epoch.
    pub fn event_time(&self) -> i64 {
        self.ts
    }

    /// Position of the row in its partition (0 = first row).
    pub fn sequence(&self) -> u64 {
        self.seq
    }

    /// The column holding a registered row expression's values; the row's
    /// value is at [`MatchRow::index`].
    pub fn value(&self, id: RowExprId) -> Result<&'a ArrayRef> {
        self.derived
            .get(id.0)
            .ok_or_else(|| WeirError::Internal(format!("row expression {} not evaluated", id.0)))
    }

    /// A registered row expression's value for this row.
    pub fn scalar(&self, id: RowExprId) -> Result<ScalarValue> {
        let array = self.value(id)?;
        ScalarValue::try_from_array(array.as_ref(), self.index)
            .map_err(df_err(|| "reading a row expression value".to_string()))
    }

    /// Chunk id (for gathering rows of many matches).
    pub(crate) fn chunk(&self) -> u32 {
        self.chunk
    }

    /// The derived columns of the row's chunk.
    pub(crate) fn derived(&self) -> &'a [ArrayRef] {
        self.derived
    }
}

/// Sequence numbers of a set of rows: a range, plus the row being matched.
#[derive(Debug, Clone)]
pub struct RowSeqs {
    range: Range<u64>,
    extra: Option<u64>,
}

impl RowSeqs {
    /// Number of rows.
    pub fn len(&self) -> usize {
        (self.range.end - self.range.start) as usize + usize::from(self.extra.is_some())
    }

    /// True if there are no rows.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `i`-th sequence number.
    pub fn get(&self, i: usize) -> Option<u64> {
        let n = self.range.end - self.range.start;
        let i = i as u64;
        if i < n {
            Some(self.range.start + i)
        } else if i == n {
            self.extra
        } else {
            None
        }
    }

    /// All sequence numbers, in order.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.range.clone().chain(self.extra)
    }
}

/// The state of a (partial) match that a condition or measure is evaluated
/// against. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct MatchContext<'a> {
    store: &'a RowStore,
    history: &'a History,
    start: u64,
    counts: &'a [u32],
    /// `DEFINE`: the row being matched and the variable it is mapped to.
    current: Option<(u64, usize)>,
    /// The current row (`DEFINE`) or the last row of the match (`MEASURES`).
    anchor: u64,
    /// `MEASURES`: when the match was released.
    released_at: Option<i64>,
    time_type: &'a DataType,
}

impl<'a> MatchContext<'a> {
    /// The context of a `DEFINE` of variable `var` for row `seq`, for a
    /// match starting at `start` with `counts` rows per variable (empty
    /// counts: a match attempt starting at this row).
    pub(crate) fn define(
        store: &'a RowStore,
        history: &'a History,
        start: u64,
        counts: &'a [u32],
        seq: u64,
        var: usize,
        time_type: &'a DataType,
    ) -> Self {
        Self {
            store,
            history,
            start,
            counts,
            current: Some((seq, var)),
            anchor: seq,
            released_at: None,
            time_type,
        }
    }

    /// The context of `MEASURES` for a match released at `released_at`.
    pub(crate) fn measures(
        store: &'a RowStore,
        history: &'a History,
        start: u64,
        counts: &'a [u32],
        released_at: i64,
        time_type: &'a DataType,
    ) -> Self {
        let len: u64 = counts.iter().map(|&c| u64::from(c)).sum();
        Self {
            store,
            history,
            start,
            counts,
            current: None,
            anchor: start + len.saturating_sub(1),
            released_at: Some(released_at),
            time_type,
        }
    }

    /// True when evaluating a `DEFINE` condition (there is a current row).
    pub fn is_define(&self) -> bool {
        self.current.is_some()
    }

    /// The variable the current row is being mapped to (`DEFINE` only).
    pub fn defining(&self) -> Option<usize> {
        self.current.map(|c| c.1)
    }

    /// The type of `MATCH_ROWTIME()`.
    pub fn rowtime_type(&self) -> &DataType {
        self.time_type
    }

    /// `MATCH_ROWTIME()`, in epoch milliseconds, as Flink computes it: in
    /// `MEASURES`, the time at which the match was released — the event
    /// time of the row whose processing released it (normally its last
    /// row) or, for a match held back by an earlier partial match, of the
    /// row or watermark that released it (`i64::MAX` at the end of input);
    /// in `DEFINE`, the current row's time.
    pub fn match_rowtime(&self) -> Result<i64> {
        match self.released_at {
            Some(t) => Ok(t),
            None => Ok(self.anchor()?.event_time()),
        }
    }

    /// The row with sequence number `seq`.
    pub fn row(&self, seq: u64) -> Result<MatchRow<'a>> {
        let r: &StoredRow = self
            .history
            .get(seq)
            .ok_or_else(|| WeirError::Internal(format!("row {seq} of the partition is gone")))?;
        let chunk = self.store.chunk(r.loc.chunk)?;
        Ok(MatchRow {
            batch: &chunk.batch,
            derived: &chunk.derived,
            index: r.loc.row as usize,
            seq,
            ts: r.ts,
            chunk: r.loc.chunk,
        })
    }

    /// The row being matched (`DEFINE`), or `None` (`MEASURES`).
    pub fn current(&self) -> Result<Option<MatchRow<'a>>> {
        self.current.map(|(seq, _)| self.row(seq)).transpose()
    }

    /// The row `PREV` counts from: the row being matched in `DEFINE`, the
    /// last row of the match in `MEASURES`.
    pub fn anchor(&self) -> Result<MatchRow<'a>> {
        self.row(self.anchor)
    }

    /// The row `n` rows before [`MatchContext::anchor`] in the partition,
    /// whatever it was mapped to (`n = 0` is the anchor itself); `None`
    /// before the partition's first row. Needs [`Binder::look_back`].
    pub fn prev(&self, n: usize) -> Result<Option<MatchRow<'a>>> {
        let Some(seq) = self.anchor.checked_sub(n as u64) else {
            return Ok(None);
        };
        if seq < self.history.base() {
            return Ok(None);
        }
        self.row(seq).map(Some)
    }

    /// The sequence numbers of the rows mapped to `vars`, in order.
    pub fn rows(&self, vars: VarSet) -> RowSeqs {
        let total: u64 = self.counts.iter().map(|&c| u64::from(c)).sum();
        let (range, includes_current) = match vars {
            VarSet::All => (self.start..self.start + total, true),
            VarSet::Unmatched => (self.start..self.start, false),
            VarSet::Var(v) => {
                let before: u64 = self.counts.iter().take(v).map(|&c| u64::from(c)).sum();
                let n = self.counts.get(v).map_or(0, |&c| u64::from(c));
                let from = self.start + before;
                (from..from + n, self.current.is_some_and(|c| c.1 == v))
            }
        };
        RowSeqs {
            range,
            extra: self.current.filter(|_| includes_current).map(|c| c.0),
        }
    }

    /// `FIRST(var.x, n)`: the `n`-th row (0-based) mapped to `vars`.
    pub fn first(&self, vars: VarSet, n: usize) -> Result<Option<MatchRow<'a>>> {
        self.rows(vars).get(n).map(|s| self.row(s)).transpose()
    }

    /// `LAST(var.x, n)`: the `n`-th row from the end (0 = last) mapped to
    /// `vars`.
    pub fn last(&self, vars: VarSet, n: usize) -> Result<Option<MatchRow<'a>>> {
        let rows = self.rows(vars);
        match rows.len().checked_sub(n + 1) {
            Some(i) => rows.get(i).map(|s| self.row(s)).transpose(),
            None => Ok(None),
        }
    }
}

/// The type of `MATCH_ROWTIME()` for a time column of type `time`:
/// `TIMESTAMP(3)` (milliseconds), keeping the column's time zone (Flink's
/// `TIMESTAMP_LTZ`). Pass it to [`super::navigation_schema`].
pub fn rowtime_type(time: &DataType) -> DataType {
    match time {
        DataType::Timestamp(_, tz) => DataType::Timestamp(TimeUnit::Millisecond, tz.clone()),
        _ => DataType::Timestamp(TimeUnit::Millisecond, None),
    }
}
