//! # Pattern matching: `MATCH_RECOGNIZE` as an NFA, usable from Rust
//!
//! Flink SQL's `MATCH_RECOGNIZE` subset, with Flink's semantics:
//!
//! ```sql
//! SELECT * FROM Ticker MATCH_RECOGNIZE (
//!     PARTITION BY symbol ORDER BY rowtime
//!     MEASURES C.price AS lastPrice
//!     ONE ROW PER MATCH
//!     AFTER MATCH SKIP PAST LAST ROW
//!     PATTERN (A B* C) WITHIN INTERVAL '1' HOUR
//!     DEFINE A AS A.price > 10, B AS B.price < 15, C AS C.price > 12)
//! ```
//!
//! The pieces, from the inside out:
//!
//! - [`Pattern`] (`PATTERN`), [`Quantifier`] (greedy or reluctant) and
//!   [`SkipStrategy`] (`AFTER MATCH SKIP`) — the syntax, checked against
//!   Flink's restrictions by [`Pattern::elements`];
//! - the NFA (module `nfa`), compiled like Flink CEP's `NFACompiler` and run like
//!   its `NFA`, so greedy/reluctant quantifiers, match order and skip
//!   pruning give Flink's rows;
//! - [`Condition`] (a `DEFINE`) and [`Measure`] (a `MEASURES` column): two
//!   traits with DataFusion-backed implementations, [`ExprCondition`] and
//!   [`ExprMeasure`]. Their expressions are DataFusion `PhysicalExpr`s over
//!   the input columns plus one column per [`Navigation`] (`PREV`,
//!   `FIRST`, `LAST`, aggregates over a variable, `MATCH_ROWTIME()`), see
//!   [`navigation_schema`]; a custom implementation reads the match through
//!   [`MatchContext`];
//! - [`MatchSpec`] → [`CompiledMatch`]: everything checked and bound for an
//!   input schema;
//! - [`Matcher`]: one stream already in event-time order;
//!   [`crate::match_recognize::MatchRecognize`]: the streaming operator
//!   (partitions, event-time ordering by watermark, late rows, `WITHIN`
//!   time-outs, snapshots).
//!
//! ## Translating SQL
//!
//! - `PATTERN`: sqlparser's `MatchRecognizePattern` maps one-to-one onto
//!   [`Pattern`] (`Symbol` → `Var`, `Concat`, `Group`, `Repetition` →
//!   `Quantified`); a `?` after a quantifier (`B*?`, parsed as a repetition
//!   of a repetition) makes it reluctant.
//! - `DEFINE v AS e`: replace each navigation call in `e` by a column
//!   reference (a name of your choice) and collect `(name, Navigation)`:
//!   `PREV(x, n)` → [`Navigation::prev`]; `FIRST(w.x, n)`/`LAST(w.x, n)` →
//!   [`Navigation::first`]/[`Navigation::last`] (`x` without a variable →
//!   [`VarRef::All`]); `w.x` for another variable `w` → `LAST(w.x, 0)`;
//!   `v.x` and `x` → the current row's column `x`; aggregates →
//!   [`Navigation::aggregate`] or [`Navigation::Aggregate`] with any
//!   DataFusion aggregate (Flink's `AVG` of an integer is an integer: cast
//!   DataFusion's DOUBLE average); `MATCH_ROWTIME()` →
//!   [`Navigation::match_rowtime`]. Plan the rewritten expression with
//!   DataFusion against [`navigation_schema`] (with [`rowtime_type`] of the
//!   time column) and wrap it in [`ExprCondition::new`]. Arguments of
//!   navigations are planned against the input schema.
//! - `MEASURES e AS name`: the same, with [`ExprMeasure::new`]; `w.x` is
//!   `LAST(w.x, 0)` and a bare `x` is `LAST(x)` over all rows (the input
//!   columns of a measure hold the match's last row).
//! - `AFTER MATCH`: absent means [`SkipStrategy::ToNextRow`] — Flink's
//!   actual default (Calcite fills it in), not the `PAST LAST ROW` its
//!   documentation states.
//! - `WITHIN`: [`MatchSpec::within_ms`]; a match must span *less* than the
//!   interval.
//! - A name in `DEFINE` or in a navigation that is not a pattern variable
//!   is accepted, as in Flink (the condition is unused; the rows are none).
//! - Output: `PARTITION BY` columns, then the measures
//!   ([`crate::match_recognize::MatchRecognize::output_schema_for`]).
//!
//! Not supported (plan errors, as in Flink unless noted): quantified
//! groups, alternation (`|`), `PERMUTE`, exclusion, anchors, `ALL ROWS PER
//! MATCH`, `SUBSET`, `CLASSIFIER()`, reluctant `?`, a greedy quantifier on
//! the last variable, an optional variable right after a greedy one,
//! patterns that can match no row; processing-time order and secondary
//! `ORDER BY` keys (rows with equal times are matched in arrival order, as
//! Flink does without secondary keys) are left to the planner to reject.
//!
//! Weir extensions (Flink 2.2 rejects them): `{,m}` / `{0,m}`, and `PREV`
//! with an offset above 0.

pub mod condition;
pub mod context;
pub mod expr;
pub mod matcher;
pub mod measure;
pub mod navigation;
pub(crate) mod nfa;
pub mod pattern;
pub(crate) mod rows;

pub use condition::{Condition, ExprCondition};
pub use context::{
    rowtime_type, Binder, MatchContext, MatchRow, RowExprId, RowSeqs, VarRef, VarSet,
};
pub use matcher::{CompiledMatch, MatchSpec, Matcher};
pub use measure::{ExprMeasure, Measure};
pub use navigation::{navigation_schema, AggFunc, Navigation};
pub use pattern::{Element, Pattern, Quantifier, SkipStrategy};
