//! Cheap start locations. sqlparser's `Spanned` unions the spans of a whole
//! subtree, recursively and without a stack guard; these helpers follow only
//! leftmost children, iteratively where trees get deep.

use sqlparser::ast::{Expr, Query, SetExpr, Spanned, TableFactor};
use sqlparser::tokenizer::Span;

use crate::stmt::to_usize;

/// The start line of `span`, or `fallback` when the span is empty.
pub(crate) fn line_of(span: Span, fallback: usize) -> usize {
    if span.start.line == 0 {
        fallback
    } else {
        to_usize(span.start.line)
    }
}

/// Where a query starts, without walking its expressions (`Spanned` for a
/// whole query recurses through every expression).
pub(crate) fn query_start(query: &Query) -> Span {
    match &query.with {
        Some(with) => with.with_token.0.span,
        None => set_expr_start(&query.body),
    }
}

pub(crate) fn set_expr_start(mut body: &SetExpr) -> Span {
    loop {
        match body {
            SetExpr::Select(s) => return s.select_token.0.span,
            SetExpr::Query(q) => return query_start(q),
            SetExpr::SetOperation { left, .. } => body = left,
            _ => return Span::empty(),
        }
    }
}

pub(crate) fn table_factor_start(tf: &TableFactor) -> Span {
    match tf {
        TableFactor::Table { name, .. } => name.span(),
        TableFactor::Derived { subquery, .. } => query_start(subquery),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => table_factor_start(&table_with_joins.relation),
        TableFactor::Function { name, .. } => name.span(),
        TableFactor::TableFunction { expr, .. } => expr_start(expr),
        TableFactor::UNNEST { array_exprs, .. } => {
            array_exprs.first().map(expr_start).unwrap_or(Span::empty())
        }
        TableFactor::MatchRecognize { table, .. } => table_factor_start(table),
        TableFactor::Pivot { table, .. } | TableFactor::Unpivot { table, .. } => {
            table_factor_start(table)
        }
        _ => Span::empty(),
    }
}

/// Where an expression starts, following left operands iteratively (a long
/// `a + b + ...` is a left-deep tree, and `Spanned` recurses through all of
/// it). Empty for forms not followed here.
pub(crate) fn expr_start(mut expr: &Expr) -> Span {
    loop {
        match expr {
            Expr::BinaryOp { left, .. } => expr = left,
            Expr::InSubquery { expr: e, .. }
            | Expr::InList { expr: e, .. }
            | Expr::Between { expr: e, .. }
            | Expr::Like { expr: e, .. }
            | Expr::ILike { expr: e, .. }
            | Expr::IsNull(e)
            | Expr::IsNotNull(e)
            | Expr::IsTrue(e)
            | Expr::IsFalse(e)
            | Expr::Nested(e)
            | Expr::Cast { expr: e, .. }
            | Expr::UnaryOp { expr: e, .. } => expr = e,
            Expr::GroupingSets(sets) | Expr::Cube(sets) | Expr::Rollup(sets) => {
                match sets.first().and_then(|s| s.first()) {
                    Some(e) => expr = e,
                    None => return Span::empty(),
                }
            }
            Expr::Function(f) => return f.name.span(),
            Expr::Subquery(q) | Expr::Exists { subquery: q, .. } => return query_start(q),
            Expr::Identifier(i) => return i.span,
            Expr::CompoundIdentifier(parts) => {
                return parts.first().map(|i| i.span).unwrap_or(Span::empty())
            }
            Expr::Value(v) => return v.span,
            Expr::Interval(i) => expr = &i.value,
            _ => return Span::empty(),
        }
    }
}
