//! Window table-valued functions: finding `TABLE(TUMBLE(...))` & co. in FROM
//! clauses, validating them, and replacing them by synthetic table references.

use std::ops::ControlFlow;

use sqlparser::ast::{
    DateTimeField, Expr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Interval,
    ObjectName, Query, Spanned, TableFactor, UnaryOperator, Value, VisitMut, VisitorMut,
};

use crate::dialect::{is_marker_name, table_marker};
use crate::span::{line_of, table_factor_start};
use crate::{DialectError, TableFunctionArg, TvfKind, WindowTvf};

/// Prefix of the synthetic table names that replace window TVF calls.
pub(crate) const TVF_TABLE_PREFIX: &str = "__weir_tvf_";

/// The table-valued functions rewritten by the dialect: the four window
/// TVFs and Weir's sequence-ordering TVFs, by (case-insensitive) name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Window {
    Tumble,
    Hop,
    Cumulate,
    Session,
    SequenceOrder,
    SequenceGaps,
}

impl Window {
    pub(crate) fn from_name(name: &ObjectName) -> Option<Window> {
        let [part] = name.0.as_slice() else {
            return None;
        };
        let v = part.as_ident()?.value.as_str();
        [
            ("TUMBLE", Window::Tumble),
            ("HOP", Window::Hop),
            ("CUMULATE", Window::Cumulate),
            ("SESSION", Window::Session),
            ("SEQUENCE_ORDER", Window::SequenceOrder),
            ("SEQUENCE_GAPS", Window::SequenceGaps),
        ]
        .into_iter()
        .find(|(n, _)| v.eq_ignore_ascii_case(n))
        .map(|(_, w)| w)
    }

    fn name(self) -> &'static str {
        match self {
            Window::Tumble => "TUMBLE",
            Window::Hop => "HOP",
            Window::Cumulate => "CUMULATE",
            Window::Session => "SESSION",
            Window::SequenceOrder => "SEQUENCE_ORDER",
            Window::SequenceGaps => "SEQUENCE_GAPS",
        }
    }

    fn is_sequence(self) -> bool {
        matches!(self, Window::SequenceOrder | Window::SequenceGaps)
    }

    /// Flink's parameter names, in positional order.
    fn params(self) -> &'static [&'static str] {
        match self {
            Window::Tumble => &["DATA", "TIMECOL", "SIZE", "OFFSET"],
            Window::Hop => &["DATA", "TIMECOL", "SLIDE", "SIZE", "OFFSET"],
            Window::Cumulate => &["DATA", "TIMECOL", "STEP", "SIZE", "OFFSET"],
            Window::Session => &["DATA", "TIMECOL", "GAP"],
            Window::SequenceOrder | Window::SequenceGaps => &[
                "DATA",
                "KEYCOL",
                "SEQCOL",
                "MAX_DELAY",
                "MAX_BUFFER",
                "FIRST_SEQUENCE",
            ],
        }
    }

    /// Number of leading parameters that must be given (all but OFFSET).
    fn required(self) -> usize {
        match self {
            Window::Tumble | Window::Session => 3,
            Window::Hop | Window::Cumulate => 4,
            Window::SequenceOrder | Window::SequenceGaps => 4,
        }
    }

    fn signature(self) -> &'static str {
        match self {
            Window::Tumble => "TUMBLE(TABLE t, DESCRIPTOR(ts), size [, offset])",
            Window::Hop => "HOP(TABLE t, DESCRIPTOR(ts), slide, size [, offset])",
            Window::Cumulate => "CUMULATE(TABLE t, DESCRIPTOR(ts), step, size [, offset])",
            Window::Session => "SESSION(TABLE t [PARTITION BY k, ...], DESCRIPTOR(ts), gap)",
            Window::SequenceOrder => {
                "SEQUENCE_ORDER(TABLE t, DESCRIPTOR(key, ...), DESCRIPTOR(seq), max_delay [, max_buffer_rows [, first_sequence]])"
            }
            Window::SequenceGaps => {
                "SEQUENCE_GAPS(TABLE t, DESCRIPTOR(key, ...), DESCRIPTOR(seq), max_delay [, max_buffer_rows [, first_sequence]])"
            }
        }
    }
}

/// Names of Flink's legacy group-window functions (`GROUP BY TUMBLE(ts, ...)`,
/// `TUMBLE_START(...)`, ...).
fn is_group_window_function(name: &ObjectName) -> bool {
    let [part] = name.0.as_slice() else {
        return false;
    };
    let Some(ident) = part.as_ident() else {
        return false;
    };
    let upper = ident.value.to_ascii_uppercase();
    ["TUMBLE", "HOP", "SESSION", "CUMULATE"].iter().any(|w| {
        upper == *w
            || upper
                .strip_prefix(w)
                .is_some_and(|rest| ["_START", "_END", "_ROWTIME", "_PROCTIME"].contains(&rest))
    })
}

/// Rewrites the window TVF calls of queries, numbering the synthetic tables
/// with a counter that runs over a whole script.
#[derive(Debug, Default)]
pub(crate) struct TvfRewriter {
    next_id: usize,
    /// `WITHIN` durations of the statement's `MATCH_RECOGNIZE` clauses, in
    /// text order (see [`crate::match_recognize::strip_within`]).
    pub(crate) within: std::collections::VecDeque<Option<i64>>,
}

impl TvfRewriter {
    /// Replaces every window TVF in `query` (including inside CTEs, derived
    /// tables and subqueries) and returns the calls found, in visit order.
    /// Also rejects `TABLE t` arguments outside a window TVF and Flink's
    /// legacy group-window functions.
    pub(crate) fn rewrite(
        &mut self,
        query: &mut Query,
        fallback_line: usize,
    ) -> Result<Vec<WindowTvf>, DialectError> {
        let mut visitor = Rewrite {
            next_id: &mut self.next_id,
            within: &mut self.within,
            found: Vec::new(),
            fallback_line,
        };
        match query.visit(&mut visitor) {
            ControlFlow::Continue(()) => Ok(visitor.found),
            ControlFlow::Break(e) => Err(e),
        }
    }
}

struct Rewrite<'a> {
    next_id: &'a mut usize,
    within: &'a mut std::collections::VecDeque<Option<i64>>,
    found: Vec<WindowTvf>,
    fallback_line: usize,
}

impl Rewrite<'_> {
    /// `TABLE(name(TABLE t, args…))` for a name that is not a built-in TVF:
    /// a table function call, if its first argument is `TABLE t`.
    fn function_call(
        &mut self,
        f: &sqlparser::ast::Function,
        alias: Option<sqlparser::ast::TableAlias>,
        span: sqlparser::tokenizer::Span,
        line: usize,
    ) -> Result<Option<TableFactor>, DialectError> {
        let FunctionArguments::List(list) = &f.args else {
            return Ok(None);
        };
        let mut exprs = Vec::new();
        for a in &list.args {
            match a {
                FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => exprs.push(e),
                other => {
                    return Err(invalid(
                        line,
                        format!(
                            "table function {}: only positional arguments are supported, found {}",
                            f.name,
                            short(other)
                        ),
                    ))
                }
            }
        }
        let Some((table, keys)) = exprs.first().and_then(|e| table_marker(e)) else {
            return Ok(None);
        };
        if !keys.is_empty() {
            return Err(invalid(
                line,
                format!(
                    "table function {}: use DESCRIPTOR(key, ...) instead of PARTITION BY",
                    f.name
                ),
            ));
        }
        let input = join_idents(&table);
        let args = exprs[1..]
            .iter()
            .map(|e| match descriptor_columns(e) {
                Some(cols) => TableFunctionArg::Descriptor(cols),
                None => TableFunctionArg::Expr(Box::new((*e).clone())),
            })
            .collect();
        let table_name = format!("{TVF_TABLE_PREFIX}{}", *self.next_id);
        *self.next_id += 1;
        self.found.push(WindowTvf {
            table_name: table_name.clone(),
            kind: TvfKind::Function,
            input,
            time_column: String::new(),
            partition_by: Vec::new(),
            alias: alias.as_ref().map(|a| a.name.value.clone()),
            match_recognize: None,
            function: f.name.to_string(),
            args,
            line,
        });
        Ok(Some(synthetic_table(span, table_name, alias)))
    }
}

impl VisitorMut for Rewrite<'_> {
    type Break = DialectError;

    fn pre_visit_table_factor(&mut self, tf: &mut TableFactor) -> ControlFlow<DialectError> {
        let span = || table_factor_start(tf);
        let line = || line_of(span(), self.fallback_line);
        if let TableFactor::MatchRecognize { alias, .. } = &*tf {
            let within = self.within.pop_front().flatten();
            let line = line();
            let (clause, input) = match crate::match_recognize::convert(tf, within, line) {
                Ok(c) => c,
                Err(e) => return ControlFlow::Break(e),
            };
            let alias = alias.clone();
            let span = span();
            let table_name = format!("{TVF_TABLE_PREFIX}{}", *self.next_id);
            *self.next_id += 1;
            self.found.push(WindowTvf {
                table_name: table_name.clone(),
                kind: TvfKind::MatchRecognize,
                input,
                time_column: String::new(),
                partition_by: Vec::new(),
                alias: alias.as_ref().map(|a| a.name.value.clone()),
                match_recognize: Some(Box::new(clause)),
                function: "MATCH_RECOGNIZE".into(),
                args: Vec::new(),
                line,
            });
            *tf = synthetic_table(span, table_name, alias);
            return ControlFlow::Continue(());
        }
        let (window, args, alias) = match &*tf {
            TableFactor::TableFunction {
                expr: Expr::Function(f),
                alias,
            } => {
                let Some(window) = Window::from_name(&f.name) else {
                    return match self.function_call(f, alias.clone(), span(), line()) {
                        Ok(Some(replacement)) => {
                            *tf = replacement;
                            ControlFlow::Continue(())
                        }
                        Ok(None) => ControlFlow::Continue(()),
                        Err(e) => ControlFlow::Break(e),
                    };
                };
                let args = match &f.args {
                    FunctionArguments::List(list)
                        if list.duplicate_treatment.is_none() && list.clauses.is_empty() =>
                    {
                        list.args.as_slice()
                    }
                    FunctionArguments::None => &[],
                    _ => return ControlFlow::Break(malformed(line(), window, f)),
                };
                if f.over.is_some() || f.filter.is_some() || !f.within_group.is_empty() {
                    return ControlFlow::Break(malformed(line(), window, f));
                }
                (window, args, alias)
            }
            // `FROM TUMBLE(TABLE t, ...)` without the TABLE(...) wrapper.
            TableFactor::Table {
                name,
                args: Some(targs),
                alias,
                ..
            } => {
                let Some(window) = Window::from_name(name) else {
                    return ControlFlow::Continue(());
                };
                if targs.settings.is_some() {
                    return ControlFlow::Break(invalid(
                        line(),
                        format!("malformed {} call", window.name()),
                    ));
                }
                (window, targs.args.as_slice(), alias)
            }
            _ => return ControlFlow::Continue(()),
        };
        let span = span();
        let line = line_of(span, self.fallback_line);
        let (kind, input, time_column, partition_by) = match bind(window, args, line) {
            Ok(parts) => parts,
            Err(e) => return ControlFlow::Break(e),
        };
        let alias = alias.clone();
        let table_name = format!("{TVF_TABLE_PREFIX}{}", *self.next_id);
        *self.next_id += 1;
        self.found.push(WindowTvf {
            table_name: table_name.clone(),
            kind,
            input,
            time_column,
            partition_by,
            alias: alias.as_ref().map(|a| a.name.value.clone()),
            match_recognize: None,
            function: window.name().to_string(),
            args: Vec::new(),
            line,
        });
        *tf = synthetic_table(span, table_name, alias);
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> ControlFlow<DialectError> {
        let Expr::Function(f) = &*expr else {
            return ControlFlow::Continue(());
        };
        let line = line_of(f.name.span(), self.fallback_line);
        if is_marker_name(&f.name) {
            let table = table_marker(expr)
                .map(|(t, _)| join_idents(&t))
                .unwrap_or_default();
            return ControlFlow::Break(invalid(
                line,
                format!(
                    "TABLE {table} is only allowed as the first argument of a \
                     table-valued function in FROM, e.g. TABLE(TUMBLE(TABLE t, ...))"
                ),
            ));
        }
        if is_group_window_function(&f.name) {
            return ControlFlow::Break(DialectError::Unsupported {
                construct: format!("group window function {}", f.name),
                line,
            });
        }
        ControlFlow::Continue(())
    }
}

/// A reference to a synthetic table that replaces a TVF call.
fn synthetic_table(
    span: sqlparser::tokenizer::Span,
    table_name: String,
    alias: Option<sqlparser::ast::TableAlias>,
) -> TableFactor {
    TableFactor::Table {
        name: ObjectName::from(vec![Ident::with_span(span, table_name)]),
        alias,
        args: None,
        with_hints: vec![],
        version: None,
        with_ordinality: false,
        partitions: vec![],
        json_path: None,
        sample: None,
        index_hints: vec![],
    }
}

fn invalid(line: usize, message: String) -> DialectError {
    DialectError::Invalid { line, message }
}

fn malformed(line: usize, window: Window, f: &impl std::fmt::Display) -> DialectError {
    invalid(
        line,
        format!(
            "malformed {} call {}; expected {}",
            window.name(),
            short(f),
            window.signature()
        ),
    )
}

/// A node's SQL text for a message, cut after 80 characters.
fn short(node: &impl std::fmt::Display) -> String {
    let text = node.to_string();
    match text.char_indices().nth(80) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text,
    }
}

/// `a.b` from identifier parts.
fn join_idents(idents: &[&Ident]) -> String {
    idents
        .iter()
        .map(|i| i.value.as_str())
        .collect::<Vec<_>>()
        .join(".")
}

/// Binds (positional, then Flink's named `DATA => ...` form) and validates the
/// arguments of one window TVF call: (kind, input, time column, partition keys).
fn bind(
    window: Window,
    args: &[FunctionArg],
    line: usize,
) -> Result<(TvfKind, String, String, Vec<String>), DialectError> {
    let fname = window.name();
    let params = window.params();
    let mut slots: Vec<Option<&Expr>> = vec![None; params.len()];
    let mut seen_named = false;
    for (i, arg) in args.iter().enumerate() {
        match arg {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => {
                if seen_named {
                    return Err(invalid(
                        line,
                        format!(
                            "{fname}: positional argument {} after named arguments",
                            short(e)
                        ),
                    ));
                }
                match slots.get_mut(i) {
                    Some(slot) => *slot = Some(e),
                    None => {
                        return Err(invalid(
                            line,
                            format!(
                                "{fname} takes at most {} arguments, got {}; expected {}",
                                params.len(),
                                args.len(),
                                window.signature()
                            ),
                        ))
                    }
                }
            }
            FunctionArg::Named {
                name,
                arg: FunctionArgExpr::Expr(e),
                ..
            } => {
                seen_named = true;
                let Some(idx) = params
                    .iter()
                    .position(|p| p.eq_ignore_ascii_case(&name.value))
                else {
                    return Err(invalid(
                        line,
                        format!(
                            "unknown argument {} of {fname} (expected one of {})",
                            name.value,
                            params.join(", ")
                        ),
                    ));
                };
                match slots.get_mut(idx) {
                    Some(slot @ None) => *slot = Some(e),
                    _ => {
                        return Err(invalid(
                            line,
                            format!("argument {} of {fname} is given twice", name.value),
                        ))
                    }
                }
            }
            other => {
                return Err(invalid(
                    line,
                    format!("unexpected argument {} of {fname}", short(other)),
                ))
            }
        }
    }
    let arg = |i: usize| slots.get(i).copied().flatten();
    for (i, p) in params.iter().enumerate().take(window.required()) {
        if arg(i).is_none() {
            return Err(invalid(
                line,
                format!(
                    "{fname} is missing its {p} argument; expected {}",
                    window.signature()
                ),
            ));
        }
    }

    // DATA: TABLE name [PARTITION BY ...]
    let data = arg(0);
    let Some((table, keys)) = data.and_then(table_marker) else {
        return Err(invalid(
            line,
            format!(
                "the DATA argument of {fname} must be TABLE <name>, found: {}",
                data.map(short).unwrap_or_default()
            ),
        ));
    };
    if !keys.is_empty() && window != Window::Session {
        return Err(invalid(
            line,
            format!("PARTITION BY is only allowed in SESSION windows, not in {fname}"),
        ));
    }
    let input = join_idents(&table);
    let mut partition_by: Vec<String> = keys.iter().map(|k| k.value.clone()).collect();

    if window.is_sequence() {
        // KEYCOL: DESCRIPTOR(k, ...); SEQCOL: DESCRIPTOR(seq).
        let keycol = arg(1);
        let Some(key_columns) = keycol.and_then(descriptor_columns) else {
            return Err(invalid(
                line,
                format!(
                    "the KEYCOL argument of {fname} must be DESCRIPTOR(<column>, ...), found: {}",
                    keycol.map(short).unwrap_or_default()
                ),
            ));
        };
        partition_by = key_columns;
        let seqcol = arg(2);
        let Some(seq_column) = seqcol.and_then(descriptor_column) else {
            return Err(invalid(
                line,
                format!(
                    "the SEQCOL argument of {fname} must be DESCRIPTOR(<column>), found: {}",
                    seqcol.map(short).unwrap_or_default()
                ),
            ));
        };
        let delay = arg(3).ok_or_else(|| invalid(line, format!("{fname}: MAX_DELAY missing")))?;
        let max_delay_ms =
            interval_ms(delay).map_err(|m| invalid(line, format!("MAX_DELAY of {fname}: {m}")))?;
        if max_delay_ms < 0 {
            return Err(invalid(
                line,
                format!("{fname} max delay must not be negative, got {max_delay_ms} ms"),
            ));
        }
        let max_buffer_rows = match arg(4) {
            None => None,
            Some(e) => match integer_literal(e) {
                Some(n) if n > 0 => Some(n as u64),
                _ => {
                    return Err(invalid(
                        line,
                        format!(
                            "MAX_BUFFER of {fname} must be a positive integer, found: {}",
                            short(e)
                        ),
                    ))
                }
            },
        };
        let first_sequence = match arg(5) {
            None => None,
            Some(e) => match integer_literal(e) {
                Some(n) => Some(n),
                None => {
                    return Err(invalid(
                        line,
                        format!(
                            "FIRST_SEQUENCE of {fname} must be an integer literal, found: {}",
                            short(e)
                        ),
                    ))
                }
            },
        };
        let kind = TvfKind::Sequence {
            max_delay_ms,
            max_buffer_rows,
            first_sequence,
            gaps: window == Window::SequenceGaps,
        };
        return Ok((kind, input, seq_column, partition_by));
    }

    // TIMECOL: DESCRIPTOR(col)
    let timecol = arg(1);
    let Some(time_column) = timecol.and_then(descriptor_column) else {
        return Err(invalid(
            line,
            format!(
                "the TIMECOL argument of {fname} must be DESCRIPTOR(<column>), found: {}",
                timecol.map(short).unwrap_or_default()
            ),
        ));
    };

    // Durations, in milliseconds.
    let ms = |i: usize| -> Result<Option<i64>, DialectError> {
        match arg(i) {
            None => Ok(None),
            Some(e) => interval_ms(e).map(Some).map_err(|m| {
                let param = params.get(i).copied().unwrap_or("argument");
                invalid(line, format!("{param} of {fname}: {m}"))
            }),
        }
    };
    let positive = |i: usize, what: &str| -> Result<i64, DialectError> {
        let v = ms(i)?.unwrap_or(0);
        if v > 0 {
            Ok(v)
        } else {
            Err(invalid(
                line,
                format!("{fname} {what} must be positive, got {v} ms"),
            ))
        }
    };
    let offset = |i: usize, size: i64| -> Result<i64, DialectError> {
        let offset = ms(i)?.unwrap_or(0);
        if offset.unsigned_abs() < size.unsigned_abs() {
            Ok(offset)
        } else {
            Err(invalid(
                line,
                format!(
                    "{fname} offset ({offset} ms) must be smaller in absolute value than the \
                     window size ({size} ms)"
                ),
            ))
        }
    };
    let multiple = |size: i64, unit: i64, what: &str| -> Result<(), DialectError> {
        if size % unit == 0 {
            Ok(())
        } else {
            Err(invalid(
                line,
                format!(
                    "{fname} size ({size} ms) must be an integral multiple of {what} ({unit} ms)"
                ),
            ))
        }
    };

    let kind = match window {
        Window::Tumble => {
            let size_ms = positive(2, "size")?;
            TvfKind::Tumble {
                size_ms,
                offset_ms: offset(3, size_ms)?,
            }
        }
        Window::Hop => {
            let slide_ms = positive(2, "slide")?;
            let size_ms = positive(3, "size")?;
            multiple(size_ms, slide_ms, "slide")?;
            TvfKind::Hop {
                slide_ms,
                size_ms,
                offset_ms: offset(4, size_ms)?,
            }
        }
        Window::Cumulate => {
            let step_ms = positive(2, "step")?;
            let size_ms = positive(3, "size")?;
            multiple(size_ms, step_ms, "step")?;
            TvfKind::Cumulate {
                step_ms,
                size_ms,
                offset_ms: offset(4, size_ms)?,
            }
        }
        Window::Session => TvfKind::Session {
            gap_ms: positive(2, "gap")?,
        },
        Window::SequenceOrder | Window::SequenceGaps => {
            return Err(invalid(line, format!("{fname}: internal: not a window")))
        }
    };
    Ok((kind, input, time_column, partition_by))
}

/// `DESCRIPTOR(col)` → `col`.
fn descriptor_column(expr: &Expr) -> Option<String> {
    let Expr::Function(f) = expr else {
        return None;
    };
    let [part] = f.name.0.as_slice() else {
        return None;
    };
    if !part
        .as_ident()
        .is_some_and(|i| i.value.eq_ignore_ascii_case("DESCRIPTOR"))
    {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    match list.args.as_slice() {
        [FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(col)))] => {
            Some(col.value.clone())
        }
        _ => None,
    }
}

/// `DESCRIPTOR(a, b, ...)` → `[a, b, ...]` (at least one column).
fn descriptor_columns(expr: &Expr) -> Option<Vec<String>> {
    let Expr::Function(f) = expr else {
        return None;
    };
    let [part] = f.name.0.as_slice() else {
        return None;
    };
    if !part
        .as_ident()
        .is_some_and(|i| i.value.eq_ignore_ascii_case("DESCRIPTOR"))
    {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let cols: Option<Vec<String>> = list
        .args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(Expr::Identifier(col))) => {
                Some(col.value.clone())
            }
            _ => None,
        })
        .collect();
    cols.filter(|c| !c.is_empty())
}

/// An integer literal.
fn integer_literal(expr: &Expr) -> Option<i64> {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::Number(n, _) => n.parse().ok(),
            _ => None,
        },
        Expr::Nested(inner) => integer_literal(inner),
        _ => None,
    }
}

/// Converts a day-time interval expression (`INTERVAL '10' SECOND`,
/// `-INTERVAL '1' HOUR`, `INTERVAL '1 02:00:00' DAY TO SECOND`, ...) to
/// milliseconds. The error is a message without the line.
pub fn interval_ms(expr: &Expr) -> Result<i64, String> {
    match expr {
        Expr::Interval(interval) => interval_literal_ms(interval),
        Expr::Nested(inner) => interval_ms(inner),
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => interval_ms(expr).and_then(|v| {
            v.checked_neg()
                .ok_or_else(|| "interval out of range".to_string())
        }),
        Expr::UnaryOp {
            op: UnaryOperator::Plus,
            expr,
        } => interval_ms(expr),
        other => Err(format!(
            "expected a day-time INTERVAL literal such as INTERVAL '10' SECOND, found: {}",
            short(other)
        )),
    }
}

/// Milliseconds per unit; `Err` for units that are not allowed.
fn unit_ms(field: &DateTimeField) -> Result<i128, String> {
    match field {
        DateTimeField::Day | DateTimeField::Days => Ok(86_400_000),
        DateTimeField::Hour | DateTimeField::Hours => Ok(3_600_000),
        DateTimeField::Minute | DateTimeField::Minutes => Ok(60_000),
        DateTimeField::Second | DateTimeField::Seconds => Ok(1_000),
        DateTimeField::Millisecond | DateTimeField::Milliseconds => Ok(1),
        DateTimeField::Year
        | DateTimeField::Years
        | DateTimeField::Month
        | DateTimeField::Months => Err(format!(
            "a year-month interval ({field}) is not allowed here: months and years have no \
                 fixed length; use a day-time interval (DAY, HOUR, MINUTE, SECOND)"
        )),
        other => Err(format!(
            "unsupported interval unit {other} (use DAY, HOUR, MINUTE, SECOND or MILLISECOND)"
        )),
    }
}

/// Position of a field in `DAY TO SECOND` ranges.
fn range_rank(field: &DateTimeField) -> Option<usize> {
    match field {
        DateTimeField::Day | DateTimeField::Days => Some(0),
        DateTimeField::Hour | DateTimeField::Hours => Some(1),
        DateTimeField::Minute | DateTimeField::Minutes => Some(2),
        DateTimeField::Second | DateTimeField::Seconds => Some(3),
        _ => None,
    }
}

const RANGE_UNITS_MS: [i128; 4] = [86_400_000, 3_600_000, 60_000, 1_000];

fn interval_literal_ms(interval: &Interval) -> Result<i64, String> {
    let text = match interval.value.as_ref() {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => s.clone(),
            Value::Number(n, _) => n.to_string(),
            other => return Err(format!("expected a quoted interval value, found: {other}")),
        },
        other => {
            return Err(format!(
                "expected a quoted interval value, found: {}",
                short(other)
            ))
        }
    };
    let Some(leading) = &interval.leading_field else {
        return Err(format!(
            "INTERVAL '{text}' needs a unit, e.g. INTERVAL '10' SECOND"
        ));
    };
    let bad_value = || match &interval.last_field {
        None => format!("invalid interval value '{text}' for unit {leading}"),
        Some(last) => format!("invalid interval value '{text}' for {leading} TO {last}"),
    };
    let trimmed = text.trim();
    let (negative, body) = match trimmed.strip_prefix('-') {
        Some(rest) => (true, rest.trim_start()),
        None => (
            false,
            trimmed.strip_prefix('+').unwrap_or(trimmed).trim_start(),
        ),
    };
    let total: i128 = match &interval.last_field {
        None => decimal_ms(body, unit_ms(leading)?).ok_or_else(bad_value)?,
        Some(last) => {
            // Year-month ranges get the year-month message.
            unit_ms(leading)?;
            unit_ms(last)?;
            let (Some(from), Some(to)) = (range_rank(leading), range_rank(last)) else {
                return Err(format!("unsupported interval range {leading} TO {last}"));
            };
            let units = match RANGE_UNITS_MS.get(from..=to) {
                Some(units) if from < to => units,
                _ => return Err(format!("invalid interval range {leading} TO {last}")),
            };
            let parts: Vec<&str> = body.split([' ', ':']).filter(|p| !p.is_empty()).collect();
            if parts.len() != units.len() {
                return Err(bad_value());
            }
            let mut sum: i128 = 0;
            for (i, (part, unit)) in parts.iter().zip(units).enumerate() {
                if i + 1 < parts.len() && part.contains('.') {
                    return Err(bad_value());
                }
                let v = decimal_ms(part, *unit).ok_or_else(bad_value)?;
                sum = sum.checked_add(v).ok_or_else(bad_value)?;
            }
            sum
        }
    };
    let total = if negative { -total } else { total };
    i64::try_from(total).map_err(|_| format!("interval '{text}' is out of range"))
}

/// `digits[.digits]` times `unit` milliseconds, if that is a whole number of
/// milliseconds and in range.
fn decimal_ms(s: &str, unit: i128) -> Option<i128> {
    let (int_part, frac_part) = s.split_once('.').unwrap_or((s, ""));
    if (int_part.is_empty() && frac_part.is_empty())
        || !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
        || int_part.len() > 20
    {
        return None;
    }
    let int: i128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().ok()?
    };
    let mut total = int.checked_mul(unit)?;
    let frac = frac_part.trim_end_matches('0');
    if !frac.is_empty() {
        if frac.len() > 18 {
            return None;
        }
        let scale = 10i128.checked_pow(u32::try_from(frac.len()).ok()?)?;
        let numerator = frac.parse::<i128>().ok()?.checked_mul(unit)?;
        if numerator % scale != 0 {
            return None;
        }
        total = total.checked_add(numerator / scale)?;
    }
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_values() {
        assert_eq!(decimal_ms("10", 1000), Some(10_000));
        assert_eq!(decimal_ms("0.5", 1000), Some(500));
        assert_eq!(decimal_ms(".25", 1000), Some(250));
        assert_eq!(decimal_ms("1.500", 1000), Some(1500));
        assert_eq!(decimal_ms("0.0005", 1000), None);
        assert_eq!(decimal_ms("", 1000), None);
        assert_eq!(decimal_ms(".", 1000), None);
        assert_eq!(decimal_ms("1e3", 1000), None);
        assert_eq!(decimal_ms("-1", 1000), None);
        assert_eq!(decimal_ms("999999999999999999999", 1), None);
    }

    #[test]
    fn group_window_names() {
        let n = |s: &str| ObjectName::from(vec![Ident::new(s)]);
        assert!(is_group_window_function(&n("tumble_start")));
        assert!(is_group_window_function(&n("HOP_END")));
        assert!(is_group_window_function(&n("session")));
        assert!(!is_group_window_function(&n("tumbler")));
        assert!(!is_group_window_function(&n("HOP_X")));
    }
}
