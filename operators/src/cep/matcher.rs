//! A compiled `MATCH_RECOGNIZE` ([`CompiledMatch`]) and the matcher of one
//! ordered stream ([`Matcher`]).

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion_physical_expr::PhysicalExpr;
use weir_engine::{Result, WeirError};

use super::condition::Condition;
use super::context::{rowtime_type, Binder, MatchContext, RowExprId};
use super::measure::Measure;
use super::nfa::{Nfa, NfaRun, PartialMatch, Scratch, Skip, VarConditions};
use super::pattern::{Pattern, SkipStrategy};
use super::rows::{History, RowLoc, RowStore, StoredRow};
use crate::util::{build_batch, evaluate, event_times};

/// What to match: the pattern, its conditions and measures, and the
/// `AFTER MATCH SKIP` and `WITHIN` clauses.
#[derive(Debug)]
pub struct MatchSpec {
    /// `PATTERN (…)`.
    pub pattern: Pattern,
    /// `DEFINE`: a condition per variable; variables without one accept
    /// every row (a condition for a name not in the pattern is ignored, as
    /// in Flink).
    pub defines: Vec<(String, Box<dyn Condition>)>,
    /// `MEASURES`, in output order.
    pub measures: Vec<Box<dyn Measure>>,
    /// `AFTER MATCH SKIP …` (default: `TO NEXT ROW`, as Flink).
    pub skip: SkipStrategy,
    /// `WITHIN INTERVAL …`, in milliseconds: a match whose last row is this
    /// much or more after its first row is discarded.
    pub within_ms: Option<i64>,
}

impl MatchSpec {
    /// A spec with no conditions, no measures, the default skip strategy
    /// and no `WITHIN`.
    pub fn new(pattern: Pattern) -> Self {
        Self {
            pattern,
            defines: Vec::new(),
            measures: Vec::new(),
            skip: SkipStrategy::default(),
            within_ms: None,
        }
    }

    /// Adds `DEFINE var AS condition`.
    pub fn define(mut self, var: impl Into<String>, condition: impl Condition + 'static) -> Self {
        self.defines.push((var.into(), Box::new(condition)));
        self
    }

    /// Adds a measure.
    pub fn measure(mut self, measure: impl Measure + 'static) -> Self {
        self.measures.push(Box::new(measure));
        self
    }

    /// Sets the skip strategy.
    pub fn skip(mut self, skip: SkipStrategy) -> Self {
        self.skip = skip;
        self
    }

    /// Sets `WITHIN`, in milliseconds.
    pub fn within_ms(mut self, ms: i64) -> Self {
        self.within_ms = Some(ms);
        self
    }
}

/// A [`MatchSpec`] checked and compiled for an input schema: the NFA, the
/// bound conditions and measures, and the per-row expressions to evaluate
/// on every input batch. Shared (in an [`Arc`]) by the matchers and
/// operator subtasks that run it.
pub struct CompiledMatch {
    input_schema: SchemaRef,
    time_column: usize,
    rowtime: DataType,
    pattern: Pattern,
    variables: Vec<String>,
    pub(crate) nfa: Nfa,
    skip_strategy: SkipStrategy,
    skip: Skip,
    within: Option<i64>,
    /// Per variable: its condition (`None`: always true).
    conditions: Vec<Option<Box<dyn Condition>>>,
    /// Per variable: the vectorized predicate, when the condition reads the
    /// current row only.
    predicates: Vec<Option<RowExprId>>,
    measures: Vec<Box<dyn Measure>>,
    measures_schema: SchemaRef,
    row_exprs: Vec<Arc<dyn PhysicalExpr>>,
    look_back: usize,
}

impl fmt::Debug for CompiledMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompiledMatch")
            .field("pattern", &self.pattern.to_string())
            .field("skip", &self.skip_strategy.to_string())
            .field("within_ms", &self.within)
            .field("conditions", &self.conditions)
            .field("measures", &self.measures)
            .finish()
    }
}

impl CompiledMatch {
    /// Checks and compiles `spec` for rows of `input_schema` ordered by the
    /// event-time column `time_column` (a `TIMESTAMP` or a `BIGINT` of epoch
    /// milliseconds). Unsupported constructs and unknown names are plan
    /// errors.
    pub fn try_new(spec: MatchSpec, input_schema: SchemaRef, time_column: usize) -> Result<Self> {
        let time_field = input_schema.fields().get(time_column).ok_or_else(|| {
            WeirError::Plan(format!(
                "time column index {time_column} is out of range: the input has {} columns",
                input_schema.fields().len()
            ))
        })?;
        match time_field.data_type() {
            DataType::Int64 | DataType::Timestamp(_, _) => {}
            other => {
                return Err(WeirError::Plan(format!(
                    "ORDER BY column '{}' must be a TIMESTAMP (or BIGINT epoch milliseconds), \
                     not {other}",
                    time_field.name()
                )))
            }
        }
        let rowtime = rowtime_type(time_field.data_type());
        let elements = spec.pattern.elements()?;
        let variables: Vec<String> = elements.iter().map(|e| e.var.clone()).collect();
        let skip = Skip::resolve(&spec.skip, &variables)?;
        if let Some(w) = spec.within_ms {
            if w <= 0 {
                return Err(WeirError::Plan(format!(
                    "WITHIN must be a positive interval, got {w} ms"
                )));
            }
        }
        let nfa = Nfa::compile(&elements);
        let mut binder = Binder::new(&input_schema, &variables, rowtime.clone());
        let mut conditions: Vec<Option<Box<dyn Condition>>> =
            variables.iter().map(|_| None).collect();
        let mut defined: Vec<String> = Vec::new();
        for (var, mut cond) in spec.defines {
            if defined.contains(&var) {
                return Err(WeirError::Plan(format!("variable {var} is defined twice")));
            }
            defined.push(var.clone());
            // As in Flink, a DEFINE of a name that is not in the pattern is
            // accepted and has no effect.
            let Some(i) = variables.iter().position(|v| *v == var) else {
                continue;
            };
            cond.bind(&mut binder)
                .map_err(|e| e.context(format!("DEFINE {var}")))?;
            conditions[i] = Some(cond);
        }
        let predicates = conditions
            .iter()
            .map(|c| c.as_ref().and_then(|c| c.row_predicate()))
            .collect();
        let mut fields: Vec<Field> = Vec::new();
        let mut measures = spec.measures;
        for m in &mut measures {
            let f = m.bind(&mut binder).map_err(|e| e.context("MEASURES"))?;
            if fields.iter().any(|g| g.name() == f.name()) {
                return Err(WeirError::Plan(format!(
                    "measure name '{}' is used twice",
                    f.name()
                )));
            }
            fields.push(f);
        }
        let (row_exprs, look_back) = binder.finish();
        Ok(Self {
            time_column,
            rowtime,
            pattern: spec.pattern,
            variables,
            nfa,
            skip_strategy: spec.skip,
            skip,
            within: spec.within_ms,
            conditions,
            predicates,
            measures,
            measures_schema: Arc::new(Schema::new(fields)),
            row_exprs,
            look_back,
            input_schema,
        })
    }

    /// The input schema.
    pub fn input_schema(&self) -> &SchemaRef {
        &self.input_schema
    }

    /// The event-time column.
    pub fn time_column(&self) -> usize {
        self.time_column
    }

    /// The pattern.
    pub fn pattern(&self) -> &Pattern {
        &self.pattern
    }

    /// The pattern variables, in pattern order.
    pub fn variables(&self) -> &[String] {
        &self.variables
    }

    /// The skip strategy.
    pub fn skip(&self) -> &SkipStrategy {
        &self.skip_strategy
    }

    /// `WITHIN`, in milliseconds.
    pub fn within_ms(&self) -> Option<i64> {
        self.within
    }

    /// The schema of the measures, in order.
    pub fn measures_schema(&self) -> &SchemaRef {
        &self.measures_schema
    }

    /// How many rows before a match's first row `PREV` may read.
    pub fn look_back(&self) -> usize {
        self.look_back
    }

    /// A fingerprint of what the state layout depends on (checked on
    /// restore).
    pub(crate) fn fingerprint(&self) -> String {
        format!(
            "PATTERN ({}) {} states={}",
            self.pattern,
            self.skip_strategy,
            self.nfa.states.len()
        )
    }

    /// Evaluates the per-row expressions on `batch`.
    pub(crate) fn derive(&self, batch: &RecordBatch) -> Result<Vec<ArrayRef>> {
        self.row_exprs
            .iter()
            .map(|e| evaluate(e, batch, "MATCH_RECOGNIZE row expression"))
            .collect()
    }

    /// Feeds one row to a partition: times out old partial matches, runs
    /// the NFA and appends the released matches to `out`. The row must
    /// already be retained in `store`.
    pub(crate) fn feed(
        &self,
        part: &mut PartitionState,
        store: &RowStore,
        row: StoredRow,
        scratch: &mut Scratch,
        out: &mut Vec<PartialMatch>,
    ) -> Result<()> {
        part.run
            .advance_time(row.ts, self.within, &self.skip, &self.variables, out)?;
        let seq = part.history.push(row);
        let mut eval = Evaluator {
            compiled: self,
            store,
            history: &part.history,
            seq,
            loc: row.loc,
        };
        part.run.process(
            &self.nfa,
            seq,
            row.ts,
            &mut eval,
            &self.skip,
            &self.variables,
            scratch,
            out,
        )
    }

    /// Feeds the pending rows of `part` up to `watermark`, in event-time
    /// order, then advances time to `watermark`.
    pub(crate) fn advance(
        &self,
        part: &mut PartitionState,
        store: &RowStore,
        watermark: i64,
        scratch: &mut Scratch,
        out: &mut Vec<PartialMatch>,
    ) -> Result<()> {
        if !part.pending_sorted {
            part.pending.sort_by_key(|r| r.ts);
            part.pending_sorted = true;
        }
        let due = part.pending.partition_point(|r| r.ts <= watermark);
        if due > 0 {
            let mut rows = std::mem::take(&mut part.pending);
            part.pending = rows.split_off(due);
            for row in rows {
                self.feed(part, store, row, scratch, out)?;
            }
        }
        part.run
            .advance_time(watermark, self.within, &self.skip, &self.variables, out)
    }

    /// The first history row `part` still needs: the first row of its
    /// earliest match, minus the `PREV` look-back.
    pub(crate) fn keep_from(&self, part: &PartitionState) -> u64 {
        let next = part.history.next_seq();
        let earliest = part.run.earliest_row().map_or(next, |e| e.min(next));
        earliest.saturating_sub(self.look_back as u64)
    }

    /// When `part` next needs the watermark: its earliest pending row, or
    /// the time-out of its earliest partial match.
    pub(crate) fn wakeup(&self, part: &PartitionState) -> Option<i64> {
        let pending = part.pending.iter().map(|r| r.ts).min();
        let timeout = self
            .within
            .and_then(|w| part.run.earliest_partial_ts().map(|t| t.saturating_add(w)));
        match (pending, timeout) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The `MEASURES` context of a released match of `history`.
    pub(crate) fn context<'a>(
        &'a self,
        store: &'a RowStore,
        history: &'a History,
        m: &'a PartialMatch,
    ) -> MatchContext<'a> {
        MatchContext::measures(
            store,
            history,
            m.start_seq,
            &m.counts,
            m.released_at,
            &self.rowtime,
        )
    }

    /// The measure columns of a list of matches.
    pub(crate) fn measure_columns(&self, matches: &[MatchContext<'_>]) -> Result<Vec<ArrayRef>> {
        self.measures.iter().map(|m| m.evaluate(matches)).collect()
    }
}

/// Evaluates variable conditions for one row of one partition.
struct Evaluator<'a> {
    compiled: &'a CompiledMatch,
    store: &'a RowStore,
    history: &'a History,
    seq: u64,
    loc: RowLoc,
}

impl VarConditions for Evaluator<'_> {
    fn eval(&mut self, var: usize, partial: Option<&PartialMatch>) -> Result<bool> {
        if let Some(Some(p)) = self.compiled.predicates.get(var) {
            let chunk = self.store.chunk(self.loc.chunk)?;
            let mask = chunk
                .derived
                .get(p.0)
                .and_then(|a| a.as_boolean_opt())
                .ok_or_else(|| WeirError::Internal("row predicate missing".into()))?;
            let i = self.loc.row as usize;
            return Ok(mask.is_valid(i) && mask.value(i));
        }
        let Some(Some(cond)) = self.compiled.conditions.get(var) else {
            return Ok(true);
        };
        let (start, counts) = match partial {
            Some(p) => (p.start_seq, &p.counts[..]),
            None => (self.seq, &[][..]),
        };
        let ctx = MatchContext::define(
            self.store,
            self.history,
            start,
            counts,
            self.seq,
            var,
            &self.compiled.rowtime,
        );
        cond.evaluate(&ctx)
            .map_err(|e| e.context(format!("DEFINE {}", self.compiled.variables[var])))
    }
}

/// The matching state of one partition.
#[derive(Debug, Clone)]
pub(crate) struct PartitionState {
    /// Rows that went through the NFA and are still needed.
    pub(crate) history: History,
    /// Partial and completed matches.
    pub(crate) run: NfaRun,
    /// Rows waiting for the watermark, in arrival order unless sorted.
    pub(crate) pending: Vec<StoredRow>,
    /// Whether `pending` is sorted by time.
    pub(crate) pending_sorted: bool,
}

impl Default for PartitionState {
    fn default() -> Self {
        Self {
            history: History::default(),
            run: NfaRun::default(),
            pending: Vec::new(),
            pending_sorted: true,
        }
    }
}

impl PartitionState {
    /// Queues a row until the watermark passes it.
    pub(crate) fn push_pending(&mut self, row: StoredRow) {
        if self.pending.last().is_some_and(|l| l.ts > row.ts) {
            self.pending_sorted = false;
        }
        self.pending.push(row);
    }

    /// Releases everything and empties the state, keeping its allocations
    /// (for reuse by another partition).
    pub(crate) fn reset(&mut self, store: &mut RowStore) {
        self.history.reset(store);
        for r in self.pending.drain(..) {
            store.release(r.loc);
        }
        self.pending_sorted = true;
        self.run.partials.clear();
        self.run.completed.clear();
        self.run.next_order = 0;
    }

    /// True if nothing is pending, running or waiting.
    pub(crate) fn is_idle(&self) -> bool {
        self.pending.is_empty() && self.run.is_empty()
    }
}

/// Matches one stream whose rows arrive in event-time order (one
/// partition, no watermark): the NFA of a [`CompiledMatch`] without the
/// partitioning and reordering of the operator
/// ([`crate::match_recognize::MatchRecognize`]).
///
/// ```
/// # use std::sync::Arc;
/// # use arrow::array::{Int64Array, RecordBatch};
/// # use arrow::datatypes::{DataType, Field, Schema};
/// # use datafusion_expr::Operator;
/// # use weir_operators::cep::{expr, CompiledMatch, ExprCondition, ExprMeasure, MatchSpec,
/// #     Matcher, Navigation, Pattern, VarRef};
/// let schema = Arc::new(Schema::new(vec![
///     Field::new("ts", DataType::Int64, false),
///     Field::new("amount", DataType::Int64, false),
/// ]));
/// let amount = expr::col("amount", &schema)?;
/// let spec = MatchSpec::new(Pattern::parse("A B")?)
///     .define("A", ExprCondition::row(expr::binary(amount.clone(), Operator::Lt, expr::lit(1i64), &schema)?))
///     .define("B", ExprCondition::row(expr::binary(amount.clone(), Operator::Gt, expr::lit(500i64), &schema)?))
///     .measure(ExprMeasure::navigation("big", Navigation::last(VarRef::var("B"), amount, 0)))
///     .within_ms(60_000);
/// let mut m = Matcher::new(Arc::new(CompiledMatch::try_new(spec, schema.clone(), 0)?));
/// let rows = RecordBatch::try_new(schema, vec![
///     Arc::new(Int64Array::from(vec![1_000, 2_000, 3_000])),
///     Arc::new(Int64Array::from(vec![0, 900, 7])),
/// ])?;
/// let out = m.push(&rows)?;
/// assert_eq!(out.num_rows(), 1); // big = 900
/// # Ok::<(), weir_engine::WeirError>(())
/// ```
pub struct Matcher {
    compiled: Arc<CompiledMatch>,
    store: RowStore,
    part: PartitionState,
    scratch: Scratch,
    last_ts: Option<i64>,
}

impl fmt::Debug for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Matcher")
            .field("compiled", &self.compiled)
            .field("partial_matches", &self.part.run.partials.len())
            .field("rows_kept", &self.part.history.len())
            .finish()
    }
}

impl Matcher {
    /// A matcher with no rows seen.
    pub fn new(compiled: Arc<CompiledMatch>) -> Self {
        Self {
            compiled,
            store: RowStore::default(),
            part: PartitionState::default(),
            scratch: Scratch::default(),
            last_ts: None,
        }
    }

    /// The compiled spec.
    pub fn compiled(&self) -> &Arc<CompiledMatch> {
        &self.compiled
    }

    /// Number of running partial matches.
    pub fn partial_matches(&self) -> usize {
        self.part.run.partials.len()
    }

    /// Feeds rows (of the compiled input schema, in non-decreasing event
    /// time) and returns the measures of the matches they release. A NULL
    /// or decreasing event time is an error.
    pub fn push(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let expected = self.compiled.input_schema.fields().len();
        if batch.num_columns() != expected {
            return Err(WeirError::Execution(format!(
                "the matcher expects {expected} input columns, got {}",
                batch.num_columns()
            )));
        }
        let ts = event_times(batch, self.compiled.time_column)?;
        for i in 0..batch.num_rows() {
            if ts.is_null(i) {
                return Err(WeirError::Execution(format!(
                    "row {i} has a NULL event time"
                )));
            }
            let t = ts.value(i);
            if self.last_ts.is_some_and(|l| t < l) {
                return Err(WeirError::Execution(format!(
                    "rows must arrive in event-time order: {t} after {}",
                    self.last_ts.unwrap_or_default()
                )));
            }
            self.last_ts = Some(t);
        }
        let derived = self.compiled.derive(batch)?;
        let chunk = self.store.insert(batch.clone(), derived);
        let mut out = Vec::new();
        for i in 0..batch.num_rows() {
            let row = StoredRow {
                loc: RowLoc {
                    chunk,
                    row: i as u32,
                },
                ts: ts.value(i),
            };
            self.store.retain(row.loc);
            self.compiled.feed(
                &mut self.part,
                &self.store,
                row,
                &mut self.scratch,
                &mut out,
            )?;
        }
        self.store.seal(chunk);
        self.emit(out)
    }

    /// Lets event time pass `ts` without a row: drops partial matches that
    /// can no longer complete within `WITHIN`, which may release matches
    /// they held back.
    pub fn advance_time(&mut self, ts: i64) -> Result<RecordBatch> {
        let mut out = Vec::new();
        self.compiled
            .advance(&mut self.part, &self.store, ts, &mut self.scratch, &mut out)?;
        self.emit(out)
    }

    /// End of input: time advances to the end. As in Flink, partial matches
    /// that are still running produce nothing; completed matches they hold
    /// back are released only if `WITHIN` times the partial matches out.
    pub fn finish(&mut self) -> Result<RecordBatch> {
        self.advance_time(i64::MAX)
    }

    fn emit(&mut self, matches: Vec<PartialMatch>) -> Result<RecordBatch> {
        let columns = {
            let ctxs: Vec<MatchContext<'_>> = matches
                .iter()
                .map(|m| self.compiled.context(&self.store, &self.part.history, m))
                .collect();
            if ctxs.is_empty() {
                Vec::new()
            } else {
                self.compiled.measure_columns(&ctxs)?
            }
        };
        let keep = self.compiled.keep_from(&self.part);
        self.part.history.trim_before(keep, &mut self.store);
        let schema = self.compiled.measures_schema();
        if matches.is_empty() {
            return Ok(RecordBatch::new_empty(schema.clone()));
        }
        build_batch(schema, columns, matches.len())
    }
}
