//! The NFA: a pattern compiled into states with `TAKE` and `PROCEED`
//! edges, and the per-partition run that feeds rows through it.
//!
//! # Compilation
//!
//! [`Nfa::compile`] builds the same state graph as Flink's CEP
//! `NFACompiler` does for the patterns Flink SQL produces (variables joined
//! by `next()`, loops made `consecutive()`), so greedy and reluctant
//! quantifiers behave exactly as in Flink. Elements are converted from the
//! last to the first, each pointing at the state of the element after it
//! (its *sink*; the last points at the final state):
//!
//! - `A`: one state, `TAKE(A) → sink`;
//! - `A?`: one state, `TAKE(A) → sink`, `PROCEED → sink`;
//! - `A{n,m}`: a chain of `n` mandatory states then `m - n` optional ones
//!   (each also `PROCEED → sink`); `A{0,m}` makes the head optional;
//! - `A{n,}` (`*`, `+`): `n` mandatory states then a looping state
//!   (`PROCEED → sink`, `TAKE(A) → itself`); `*` makes the head optional.
//!
//! A greedy quantifier with differing bounds adds `AND NOT A` to every edge
//! of its sink state: the following variable cannot take a row that the
//! loop could take. There are no `IGNORE` edges (`MATCH_RECOGNIZE` has
//! strict contiguity), so the rows of a match are consecutive rows of the
//! partition and a partial match is fully described by its first row and
//! the number of rows mapped to each element.
//!
//! # Running
//!
//! [`NfaRun`] is Flink's `NFA.process`/`advanceTime` for one partition.
//! For every row, each partial match follows the edges whose conditions
//! hold — `PROCEED` edges are followed within the same row, `TAKE` edges
//! map the row and create a new partial match — and a new match attempt
//! starts at the row. A partial match that reaches the final state, by a
//! `TAKE` or by `PROCEED` edges right after one, is *completed*. Completed
//! matches are released in order of their first row, and only once no
//! partial match that started earlier is still running; each released
//! match prunes partial and completed matches according to the skip
//! strategy. With `WITHIN`, a partial match is dropped once a row (or the
//! watermark) is `within` or more after its first row.

use std::fmt;
use std::ops::Range;

use weir_engine::{Result, WeirError};

use super::pattern::{Element, SkipStrategy};

/// Index of a state in [`Nfa::states`].
pub(crate) type StateId = u32;

/// An edge condition: a boolean combination of variable conditions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cond {
    /// Always true.
    True,
    /// The `DEFINE` condition of variable (element) `i`, with the current
    /// row mapped to that variable.
    Var(usize),
    /// Negation.
    Not(Box<Cond>),
    /// Conjunction.
    And(Box<Cond>, Box<Cond>),
}

/// What an edge does with the current row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Maps the row to the source state's variable and moves on.
    Take,
    /// Moves on without consuming the row (an epsilon edge).
    Proceed,
}

/// One edge of the graph.
#[derive(Debug, Clone)]
pub(crate) struct Edge {
    pub(crate) action: Action,
    pub(crate) target: StateId,
    pub(crate) cond: Cond,
}

/// One state of the graph.
#[derive(Debug, Clone)]
pub(crate) struct State {
    /// The element (variable) this state belongs to; `None` for the final
    /// state.
    pub(crate) element: Option<usize>,
    /// Outgoing edges, in Flink's order.
    pub(crate) edges: Vec<Edge>,
}

/// A compiled pattern.
#[derive(Debug, Clone)]
pub(crate) struct Nfa {
    pub(crate) states: Vec<State>,
    pub(crate) start: StateId,
    pub(crate) final_state: StateId,
    /// Number of elements (= variables; element `i` is variable `i`).
    pub(crate) elements: usize,
}

impl Nfa {
    /// Compiles validated elements (see [`super::pattern::Pattern::elements`]).
    pub(crate) fn compile(elements: &[Element]) -> Nfa {
        let mut nfa = Nfa {
            states: vec![State {
                element: None,
                edges: Vec::new(),
            }],
            start: 0,
            final_state: 0,
            elements: elements.len(),
        };
        let mut sink = nfa.final_state;
        for (i, e) in elements.iter().enumerate().rev() {
            sink = nfa.convert(i, e, sink);
        }
        nfa.start = sink;
        nfa
    }

    fn add_state(&mut self, element: usize, edges: Vec<Edge>) -> StateId {
        self.states.push(State {
            element: Some(element),
            edges,
        });
        (self.states.len() - 1) as StateId
    }

    fn take(cond: &Cond, target: StateId) -> Edge {
        Edge {
            action: Action::Take,
            target,
            cond: cond.clone(),
        }
    }

    fn proceed(target: StateId) -> Edge {
        Edge {
            action: Action::Proceed,
            target,
            cond: Cond::True,
        }
    }

    /// Flink's `updateWithGreedyCondition`: every edge of `state` also
    /// requires that the greedy variable cannot take the row.
    fn add_greedy_condition(&mut self, state: StateId, take: &Cond) {
        if let Some(s) = self.states.get_mut(state as usize) {
            for e in &mut s.edges {
                let cond = std::mem::replace(&mut e.cond, Cond::True);
                e.cond = Cond::And(Box::new(cond), Box::new(Cond::Not(Box::new(take.clone()))));
            }
        }
    }

    /// Flink's `convertPattern` for one element; returns its first state.
    fn convert(&mut self, i: usize, e: &Element, sink: StateId) -> StateId {
        let q = e.quantifier;
        let take = Cond::Var(i);
        if q.is_one() {
            return self.add_state(i, vec![Self::take(&take, sink)]);
        }
        if q.is_optional_one() {
            return self.add_state(i, vec![Self::take(&take, sink), Self::proceed(sink)]);
        }
        let optional_head = q.min == 0;
        let from = q.min.max(1);
        let greedy = q.flink_greedy();
        let mut last = match q.max {
            None => {
                // createLooping: PROCEED to the sink first, then TAKE to itself.
                let looping = self.add_state(i, vec![Self::proceed(sink)]);
                if greedy {
                    self.add_greedy_condition(sink, &take);
                }
                if let Some(s) = self.states.get_mut(looping as usize) {
                    s.edges.push(Self::take(&take, looping));
                }
                looping
            }
            Some(to) => {
                // createTimesState: optional states for from..to.
                if greedy && from != to {
                    self.add_greedy_condition(sink, &take);
                }
                let mut last = sink;
                for _ in from..to {
                    last = self.add_state(i, vec![Self::take(&take, last), Self::proceed(sink)]);
                }
                last
            }
        };
        for _ in 1..from {
            last = self.add_state(i, vec![Self::take(&take, last)]);
        }
        let mut head = vec![Self::take(&take, last)];
        if optional_head {
            head.push(Self::proceed(sink));
        }
        self.add_state(i, head)
    }

    /// True if `state` is the final state.
    pub(crate) fn is_final(&self, state: StateId) -> bool {
        state == self.final_state
    }
}

impl fmt::Display for Nfa {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (id, s) in self.states.iter().enumerate() {
            let marker = if id as StateId == self.start {
                "start "
            } else if id as StateId == self.final_state {
                "final "
            } else {
                ""
            };
            write!(f, "s{id} {marker}(")?;
            match s.element {
                Some(e) => write!(f, "e{e}")?,
                None => write!(f, "-")?,
            }
            write!(f, "):")?;
            for e in &s.edges {
                let a = match e.action {
                    Action::Take => "take",
                    Action::Proceed => "proceed",
                };
                write!(f, " {a}[{}]->s{}", CondDisplay(&e.cond), e.target)?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

struct CondDisplay<'a>(&'a Cond);

impl fmt::Display for CondDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Cond::True => write!(f, "true"),
            Cond::Var(i) => write!(f, "e{i}"),
            Cond::Not(c) => write!(f, "!{}", CondDisplay(c)),
            Cond::And(a, b) => write!(f, "{}&{}", CondDisplay(a), CondDisplay(b)),
        }
    }
}

/// Rows mapped to each element of a match: inline for up to
/// [`Counts::INLINE`] elements, so cloning a partial match does not
/// allocate for usual patterns.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Counts {
    /// Up to `INLINE` counts.
    Inline {
        len: u8,
        values: [u32; Counts::INLINE],
    },
    /// More.
    Heap(Vec<u32>),
}

impl Counts {
    /// Elements stored inline.
    pub(crate) const INLINE: usize = 6;

    /// `n` zeros.
    pub(crate) fn zeros(n: usize) -> Self {
        if n <= Self::INLINE {
            Counts::Inline {
                len: n as u8,
                values: [0; Self::INLINE],
            }
        } else {
            Counts::Heap(vec![0; n])
        }
    }

    /// From a slice (restore).
    pub(crate) fn from_slice(values: &[u32]) -> Self {
        let mut c = Self::zeros(values.len());
        c.copy_from_slice(values);
        c
    }
}

impl std::ops::Deref for Counts {
    type Target = [u32];

    fn deref(&self) -> &[u32] {
        match self {
            Counts::Inline { len, values } => &values[..usize::from(*len)],
            Counts::Heap(v) => v,
        }
    }
}

impl std::ops::DerefMut for Counts {
    fn deref_mut(&mut self) -> &mut [u32] {
        match self {
            Counts::Inline { len, values } => &mut values[..usize::from(*len)],
            Counts::Heap(v) => v,
        }
    }
}

impl fmt::Debug for Counts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A partial or completed match: its state, first row and the number of
/// rows mapped to each element (the rows are consecutive in the partition).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PartialMatch {
    /// Current state (the final state for a completed match).
    pub(crate) state: StateId,
    /// Partition sequence number of the first row.
    pub(crate) start_seq: u64,
    /// Event time of the first row.
    pub(crate) start_ts: i64,
    /// Rows mapped to each element, in pattern order.
    pub(crate) counts: Counts,
    /// Completion order (ties between completed matches with the same
    /// first row are released in the order they completed).
    pub(crate) order: u64,
    /// When the match was released: the time of the row being processed or
    /// of the time advance that released it (Flink's emission timestamp,
    /// `MATCH_ROWTIME()`). Meaningless before release.
    pub(crate) released_at: i64,
}

impl PartialMatch {
    /// Number of rows mapped so far.
    pub(crate) fn len(&self) -> u64 {
        self.counts.iter().map(|&c| u64::from(c)).sum()
    }

    /// Sequence numbers of all rows mapped so far.
    pub(crate) fn rows(&self) -> Range<u64> {
        self.start_seq..self.start_seq + self.len()
    }

    /// Sequence numbers of the rows mapped to element `e`.
    pub(crate) fn element_rows(&self, e: usize) -> Range<u64> {
        let before: u64 = self.counts.iter().take(e).map(|&c| u64::from(c)).sum();
        let n = self.counts.get(e).map_or(0, |&c| u64::from(c));
        let from = self.start_seq + before;
        from..from + n
    }
}

/// Evaluates variable conditions for the row being processed.
pub(crate) trait VarConditions {
    /// Whether the current row satisfies the condition of variable `var`
    /// when mapped to it, given the rows `partial` has mapped so far
    /// (`None` for a match attempt that starts at the current row).
    fn eval(&mut self, var: usize, partial: Option<&PartialMatch>) -> Result<bool>;
}

/// The pruning rule of a skip strategy, resolved to an element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Skip {
    PastLastRow,
    ToNextRow,
    ToFirst(usize),
    ToLast(usize),
}

impl Skip {
    /// Resolves variable names against the pattern's variables.
    pub(crate) fn resolve(s: &SkipStrategy, vars: &[String]) -> Result<Skip> {
        let find = |v: &str| {
            vars.iter().position(|x| x == v).ok_or_else(|| {
                WeirError::Plan(format!(
                    "AFTER MATCH {s}: {v} is not a variable of the pattern ({})",
                    vars.join(", ")
                ))
            })
        };
        Ok(match s {
            SkipStrategy::PastLastRow => Skip::PastLastRow,
            SkipStrategy::ToNextRow => Skip::ToNextRow,
            SkipStrategy::ToFirst(v) => Skip::ToFirst(find(v)?),
            SkipStrategy::ToLast(v) => Skip::ToLast(find(v)?),
        })
    }

    /// Flink's `getPruningId`/`shouldPrune`: matches starting at or before
    /// (`inclusive`) or strictly before the returned row are dropped.
    fn pruning(&self, m: &PartialMatch, vars: &[String]) -> Result<(u64, bool)> {
        let all = m.rows();
        match *self {
            Skip::PastLastRow => Ok((all.end.saturating_sub(1), true)),
            Skip::ToNextRow => Ok((all.start, true)),
            Skip::ToFirst(e) | Skip::ToLast(e) => {
                let rows = m.element_rows(e);
                let name = vars.get(e).map_or("?", String::as_str);
                if rows.is_empty() {
                    return Err(WeirError::Execution(format!(
                        "AFTER MATCH SKIP TO {} {name}: no row of the match is mapped to {name} \
                         (as in Flink, this is an error)",
                        if matches!(self, Skip::ToFirst(_)) {
                            "FIRST"
                        } else {
                            "LAST"
                        }
                    )));
                }
                let row = if matches!(self, Skip::ToFirst(_)) {
                    rows.start
                } else {
                    rows.end - 1
                };
                if row == all.start {
                    return Err(WeirError::Execution(format!(
                        "AFTER MATCH SKIP TO {} {name}: cannot skip to the first row of the \
                         match, which would find the same match again (as in Flink, this is an \
                         error)",
                        if matches!(self, Skip::ToFirst(_)) {
                            "FIRST"
                        } else {
                            "LAST"
                        }
                    )));
                }
                Ok((row, false))
            }
        }
    }
}

/// Memo of variable conditions for one partial match and one row:
/// `0` unknown, `1` false, `2` true.
struct Memo(Vec<u8>);

impl Memo {
    fn reset(&mut self, n: usize) {
        self.0.clear();
        self.0.resize(n, 0);
    }
}

/// The matching state of one partition: partial matches and completed
/// matches waiting to be released.
#[derive(Debug, Clone, Default)]
pub(crate) struct NfaRun {
    /// Running partial matches, by first row (ascending).
    pub(crate) partials: Vec<PartialMatch>,
    /// Completed matches not released yet, by (first row, completion).
    pub(crate) completed: Vec<PartialMatch>,
    /// Next completion order number.
    pub(crate) next_order: u64,
}

/// Scratch buffers of [`NfaRun::process`].
#[derive(Default)]
pub(crate) struct Scratch {
    memo: Vec<u8>,
    stack: Vec<StateId>,
    takes: Vec<(StateId, StateId)>,
    next: Vec<PartialMatch>,
    done: Vec<PartialMatch>,
}

impl NfaRun {
    /// True if nothing is running or waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.partials.is_empty() && self.completed.is_empty()
    }

    /// The first row still referenced by a partial or completed match.
    pub(crate) fn earliest_row(&self) -> Option<u64> {
        let p = self.partials.first().map(|m| m.start_seq);
        let c = self.completed.first().map(|m| m.start_seq);
        match (p, c) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Event time of the earliest running partial match.
    pub(crate) fn earliest_partial_ts(&self) -> Option<i64> {
        self.partials.iter().map(|p| p.start_ts).min()
    }

    /// Drops partial matches whose first row is `within` or more before
    /// `ts` (Flink's `advanceTime`) and releases the completed matches this
    /// unblocks into `out`.
    pub(crate) fn advance_time(
        &mut self,
        ts: i64,
        within: Option<i64>,
        skip: &Skip,
        vars: &[String],
        out: &mut Vec<PartialMatch>,
    ) -> Result<()> {
        if let Some(w) = within {
            self.partials.retain(|p| ts.saturating_sub(p.start_ts) < w);
        }
        self.release(ts, skip, vars, out)
    }

    /// Feeds the row with sequence number `seq` and time `ts` (rows must
    /// come in partition order, `seq` increasing by one) and appends the
    /// matches it releases to `out`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn process(
        &mut self,
        nfa: &Nfa,
        seq: u64,
        ts: i64,
        conditions: &mut impl VarConditions,
        skip: &Skip,
        vars: &[String],
        scratch: &mut Scratch,
        out: &mut Vec<PartialMatch>,
    ) -> Result<()> {
        let mut memo = Memo(std::mem::take(&mut scratch.memo));
        let mut next = std::mem::take(&mut scratch.next);
        let mut done = std::mem::take(&mut scratch.done);
        next.clear();
        done.clear();
        let partials = std::mem::take(&mut self.partials);
        for p in &partials {
            memo.reset(nfa.elements);
            self.step(
                nfa,
                Some(p),
                seq,
                ts,
                conditions,
                &mut memo,
                scratch,
                &mut next,
                &mut done,
            )?;
        }
        // The start state is always there: a match attempt at this row.
        memo.reset(nfa.elements);
        self.step(
            nfa, None, seq, ts, conditions, &mut memo, scratch, &mut next, &mut done,
        )?;
        // Partial matches keep their order (by first row); the new attempt
        // starts at this row, after all of them.
        self.partials = std::mem::take(&mut next);
        scratch.next = partials;
        for m in done.drain(..) {
            let pos = self
                .completed
                .partition_point(|c| c.start_seq <= m.start_seq);
            self.completed.insert(pos, m);
        }
        scratch.done = done;
        scratch.memo = memo.0;
        self.release(ts, skip, vars, out)
    }

    /// Flink's `computeNextStates` for one partial match (or the start
    /// state when `partial` is `None`).
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        nfa: &Nfa,
        partial: Option<&PartialMatch>,
        seq: u64,
        ts: i64,
        conditions: &mut impl VarConditions,
        memo: &mut Memo,
        scratch: &mut Scratch,
        next: &mut Vec<PartialMatch>,
        done: &mut Vec<PartialMatch>,
    ) -> Result<()> {
        let state = partial.map_or(nfa.start, |p| p.state);
        // createDecisionGraph: follow PROCEED edges depth-first, collect TAKEs.
        scratch.takes.clear();
        scratch.stack.clear();
        scratch.stack.push(state);
        while let Some(s) = scratch.stack.pop() {
            let Some(st) = nfa.states.get(s as usize) else {
                return Err(WeirError::Internal(format!("NFA state {s} missing")));
            };
            for e in &st.edges {
                if eval_cond(&e.cond, partial, conditions, memo)? {
                    match e.action {
                        Action::Proceed => scratch.stack.push(e.target),
                        Action::Take => scratch.takes.push((s, e.target)),
                    }
                }
            }
        }
        for i in 0..scratch.takes.len() {
            let (source, target) = scratch.takes[i];
            let element = nfa
                .states
                .get(source as usize)
                .and_then(|s| s.element)
                .ok_or_else(|| WeirError::Internal("TAKE from the final state".into()))?;
            let mut m = match partial {
                Some(p) => p.clone(),
                None => PartialMatch {
                    state,
                    start_seq: seq,
                    start_ts: ts,
                    counts: Counts::zeros(nfa.elements),
                    order: 0,
                    released_at: 0,
                },
            };
            if let Some(c) = m.counts.get_mut(element) {
                *c += 1;
            }
            m.state = target;
            if nfa.is_final(target) {
                m.order = self.next_order;
                self.next_order += 1;
                done.push(m);
                continue;
            }
            // findFinalStateAfterProceed: conditions see the match before
            // this row was taken.
            if final_after_proceed(nfa, target, partial, conditions, memo, &mut scratch.stack)? {
                let mut f = m.clone();
                f.state = nfa.final_state;
                f.order = self.next_order;
                self.next_order += 1;
                next.push(m);
                done.push(f);
            } else {
                next.push(m);
            }
        }
        Ok(())
    }

    /// Flink's `processMatchesAccordingToSkipStrategy`: releases completed
    /// matches that no earlier partial match can precede, pruning after
    /// each one; `now` is the time of the row or time advance.
    fn release(
        &mut self,
        now: i64,
        skip: &Skip,
        vars: &[String],
        out: &mut Vec<PartialMatch>,
    ) -> Result<()> {
        while let Some(first) = self.completed.first() {
            if self
                .partials
                .first()
                .is_some_and(|p| first.start_seq > p.start_seq)
            {
                break;
            }
            let mut m = self.completed.remove(0);
            m.released_at = now;
            let (row, inclusive) = skip.pruning(&m, vars)?;
            let keep = |p: &PartialMatch| {
                if inclusive {
                    p.start_seq > row
                } else {
                    p.start_seq >= row
                }
            };
            self.partials.retain(keep);
            self.completed.retain(keep);
            out.push(m);
        }
        Ok(())
    }
}

fn eval_cond(
    cond: &Cond,
    partial: Option<&PartialMatch>,
    conditions: &mut impl VarConditions,
    memo: &mut Memo,
) -> Result<bool> {
    Ok(match cond {
        Cond::True => true,
        Cond::Var(v) => match memo.0.get(*v).copied() {
            Some(1) => false,
            Some(2) => true,
            _ => {
                let r = conditions.eval(*v, partial)?;
                if let Some(slot) = memo.0.get_mut(*v) {
                    *slot = if r { 2 } else { 1 };
                }
                r
            }
        },
        Cond::Not(c) => !eval_cond(c, partial, conditions, memo)?,
        Cond::And(a, b) => {
            eval_cond(a, partial, conditions, memo)? && eval_cond(b, partial, conditions, memo)?
        }
    })
}

fn final_after_proceed(
    nfa: &Nfa,
    state: StateId,
    partial: Option<&PartialMatch>,
    conditions: &mut impl VarConditions,
    memo: &mut Memo,
    stack: &mut Vec<StateId>,
) -> Result<bool> {
    stack.clear();
    stack.push(state);
    while let Some(s) = stack.pop() {
        let Some(st) = nfa.states.get(s as usize) else {
            return Err(WeirError::Internal(format!("NFA state {s} missing")));
        };
        for e in &st.edges {
            if e.action == Action::Proceed && eval_cond(&e.cond, partial, conditions, memo)? {
                if nfa.is_final(e.target) {
                    return Ok(true);
                }
                stack.push(e.target);
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cep::pattern::Pattern;

    /// Conditions from a closure over (variable, row value, values mapped
    /// to each element so far, with the current row mapped to `var`).
    struct Closure<'a, F> {
        values: &'a [i64],
        current: usize,
        f: F,
    }

    impl<F: Fn(usize, i64, &[Vec<i64>]) -> bool> VarConditions for Closure<'_, F> {
        fn eval(&mut self, var: usize, partial: Option<&PartialMatch>) -> Result<bool> {
            let n = partial.map_or(var + 1, |p| p.counts.len()).max(var + 1);
            let mut mapped: Vec<Vec<i64>> = (0..n)
                .map(|e| {
                    partial
                        .map(|p| p.element_rows(e).map(|s| self.values[s as usize]).collect())
                        .unwrap_or_default()
                })
                .collect();
            let v = self.values[self.current];
            mapped[var].push(v);
            Ok((self.f)(var, v, &mapped))
        }
    }

    /// Runs `pattern` over `values` (timestamps = index) and prints each
    /// match as `var=values` groups, prefixed with the row that released it.
    fn run(
        pattern: &str,
        skip: SkipStrategy,
        values: &[i64],
        f: impl Fn(usize, i64, &[Vec<i64>]) -> bool,
    ) -> Result<Vec<String>> {
        run_within(pattern, skip, None, values, f)
    }

    fn run_within(
        pattern: &str,
        skip: SkipStrategy,
        within: Option<i64>,
        values: &[i64],
        f: impl Fn(usize, i64, &[Vec<i64>]) -> bool,
    ) -> Result<Vec<String>> {
        let elements = Pattern::parse(pattern)?.elements()?;
        let vars: Vec<String> = elements.iter().map(|e| e.var.clone()).collect();
        let nfa = Nfa::compile(&elements);
        let skip = Skip::resolve(&skip, &vars)?;
        let mut run = NfaRun::default();
        let mut scratch = Scratch::default();
        let mut cond = Closure {
            values,
            current: 0,
            f,
        };
        let mut printed = Vec::new();
        let print = |at: usize, out: &[PartialMatch], printed: &mut Vec<String>| {
            for m in out {
                let groups: Vec<String> = vars
                    .iter()
                    .enumerate()
                    .filter(|(e, _)| !m.element_rows(*e).is_empty())
                    .map(|(e, v)| {
                        let vals: Vec<String> = m
                            .element_rows(e)
                            .map(|s| values[s as usize].to_string())
                            .collect();
                        format!("{v}={}", vals.join("|"))
                    })
                    .collect();
                printed.push(format!("@{at} {}", groups.join(" ")));
            }
        };
        for i in 0..values.len() {
            let mut out = Vec::new();
            run.advance_time(i as i64, within, &skip, &vars, &mut out)?;
            cond.current = i;
            run.process(
                &nfa,
                i as u64,
                i as i64,
                &mut cond,
                &skip,
                &vars,
                &mut scratch,
                &mut out,
            )?;
            print(i, &out, &mut printed);
        }
        let mut out = Vec::new();
        run.advance_time(i64::MAX, within, &skip, &vars, &mut out)?;
        print(values.len(), &out, &mut printed);
        Ok(printed)
    }

    #[test]
    fn compiles_the_flink_state_graph() {
        let nfa = Nfa::compile(&Pattern::parse("A B* C").expect("p").elements().expect("e"));
        // C: take; B*: looping state, optional head; greedy B adds !B to C.
        assert_eq!(
            nfa.to_string(),
            "s0 final (-):\n\
             s1 (e2): take[e2&!e1]->s0\n\
             s2 (e1): proceed[true]->s1 take[e1]->s2\n\
             s3 (e1): take[e1]->s2 proceed[true]->s1\n\
             s4 start (e0): take[e0]->s3\n"
        );
        let nfa = Nfa::compile(
            &Pattern::parse("A{2,3}? B")
                .expect("p")
                .elements()
                .expect("e"),
        );
        assert_eq!(
            nfa.to_string(),
            "s0 final (-):\n\
             s1 (e1): take[e1]->s0\n\
             s2 (e0): take[e0]->s1 proceed[true]->s1\n\
             s3 (e0): take[e0]->s2\n\
             s4 start (e0): take[e0]->s3\n"
        );
    }

    // The Flink docs' `A B* C` example: A > 10, B < 15, C > 12.
    fn abc(var: usize, v: i64, _: &[Vec<i64>]) -> bool {
        match var {
            0 => v > 10,
            1 => v < 15,
            _ => v > 12,
        }
    }

    #[test]
    fn greedy_and_reluctant_star_as_in_the_flink_docs() -> Result<()> {
        let prices = [10, 11, 12, 13, 14, 16];
        assert_eq!(
            run("A B* C", SkipStrategy::PastLastRow, &prices, abc)?,
            vec!["@5 A=11 B=12|13|14 C=16"]
        );
        assert_eq!(
            run("A B*? C", SkipStrategy::PastLastRow, &prices, abc)?,
            vec!["@3 A=11 B=12 C=13", "@5 A=14 C=16"]
        );
        Ok(())
    }

    #[test]
    fn skip_strategies_as_in_the_flink_docs() -> Result<()> {
        // PATTERN (A+ C) DEFINE A AS SUM(A.price) < 30
        let prices = [7, 9, 10, 5, 10, 7, 14];
        let f = |var: usize, _: i64, m: &[Vec<i64>]| var != 0 || m[0].iter().sum::<i64>() < 30;
        assert_eq!(
            run("A+ C", SkipStrategy::PastLastRow, &prices, f)?,
            vec!["@3 A=7|9|10 C=5", "@6 A=10|7 C=14"]
        );
        assert_eq!(
            run("A+ C", SkipStrategy::ToNextRow, &prices, f)?,
            vec![
                "@3 A=7|9|10 C=5",
                "@4 A=9|10|5 C=10",
                "@5 A=10|5|10 C=7",
                "@6 A=5|10|7 C=14",
                "@6 A=10|7 C=14"
            ]
        );
        assert_eq!(
            run("A+ C", SkipStrategy::ToLast("A".into()), &prices, f)?,
            vec!["@3 A=7|9|10 C=5", "@5 A=10|5|10 C=7", "@6 A=10|7 C=14"]
        );
        let err = run("A+ C", SkipStrategy::ToFirst("A".into()), &prices, f)
            .expect_err("skip to the first row");
        assert!(err.to_string().contains("first row of the match"), "{err}");
        Ok(())
    }

    /// A = 1 or 2, B = anything but 0, C = 3 after an A of 2: the attempt
    /// at the 1 keeps running (it can never take C) and holds back the
    /// match found by the later attempt until it dies or times out.
    fn held(var: usize, v: i64, m: &[Vec<i64>]) -> bool {
        match var {
            0 => v == 1 || v == 2,
            1 => v != 0,
            _ => v == 3 && m[0] == [2],
        }
    }

    #[test]
    fn earlier_partial_match_holds_back_later_completed_ones() -> Result<()> {
        assert_eq!(
            run("A B*? C", SkipStrategy::PastLastRow, &[1, 2, 3, 0], held)?,
            vec!["@3 A=2 C=3"]
        );
        // Without a row that ends the earlier attempt, the match is never
        // released (as in Flink without WITHIN).
        assert_eq!(
            run("A B*? C", SkipStrategy::PastLastRow, &[1, 2, 3, 4], held)?,
            Vec::<String>::new()
        );
        // With WITHIN the earlier attempt times out and releases it.
        assert_eq!(
            run_within(
                "A B*? C",
                SkipStrategy::PastLastRow,
                Some(3),
                &[1, 2, 3, 4, 4],
                held
            )?,
            vec!["@3 A=2 C=3"]
        );
        assert_eq!(
            run_within(
                "A B*? C",
                SkipStrategy::PastLastRow,
                Some(10),
                &[1, 2, 3, 4],
                held
            )?,
            vec!["@4 A=2 C=3"]
        );
        Ok(())
    }

    #[test]
    fn within_drops_matches_spanning_the_interval_or_more() -> Result<()> {
        let any = |_: usize, _: i64, _: &[Vec<i64>]| true;
        // Rows at times 0, 1, 2: A B C spans 2.
        assert_eq!(
            run_within("A B C", SkipStrategy::PastLastRow, Some(3), &[0, 1, 2], any)?,
            vec!["@2 A=0 B=1 C=2"]
        );
        assert!(
            run_within("A B C", SkipStrategy::PastLastRow, Some(2), &[0, 1, 2], any)?.is_empty()
        );
        Ok(())
    }

    #[test]
    fn quantifier_bounds() -> Result<()> {
        let ab = |var: usize, v: i64, _: &[Vec<i64>]| (var == 0) == (v == 1);
        let data = [1, 1, 1, 1, 2, 0, 1, 2];
        let r = |p: &str| run(p, SkipStrategy::PastLastRow, &data, ab);
        assert_eq!(r("A{2} B")?, vec!["@4 A=1|1 B=2"]);
        assert_eq!(r("A{2,3} B")?, vec!["@4 A=1|1|1 B=2"]);
        assert_eq!(r("A{2,} B")?, vec!["@4 A=1|1|1|1 B=2"]);
        assert_eq!(r("A{,2} B")?, vec!["@4 A=1|1 B=2", "@5 B=0", "@7 A=1 B=2"]);
        assert_eq!(r("A? B")?, vec!["@4 A=1 B=2", "@5 B=0", "@7 A=1 B=2"]);
        assert_eq!(r("A* B")?, vec!["@4 A=1|1|1|1 B=2", "@5 B=0", "@7 A=1 B=2"]);
        assert_eq!(r("A+ B")?, vec!["@4 A=1|1|1|1 B=2", "@7 A=1 B=2"]);
        // Reluctant loops at the end complete as early as possible (here the
        // first element, X, is the one that wants a 1).
        assert_eq!(r("X Y+?")?, vec!["@4 X=1 Y=2", "@7 X=1 Y=2"]);
        assert_eq!(r("X Y{2,3}?")?, vec!["@5 X=1 Y=2|0"]);
        Ok(())
    }
}
