//! The supported-subset check: every construct Weir cannot run yet is
//! reported by name, with the line where it appears.

use std::ops::ControlFlow;

use sqlparser::ast::{
    Distinct, Expr, FunctionArguments, GroupByExpr, GroupByWithModifier, LimitClause, Query,
    Select, SelectFlavor, SetExpr, SetOperator, SetQuantifier, TableFactor, Visit, Visitor,
};
use sqlparser::tokenizer::Span;

use crate::span::{expr_start, line_of, query_start, set_expr_start, table_factor_start};
use crate::DialectError;

/// Construct names used in [`DialectError::Unsupported`].
pub(crate) mod construct {
    pub const JOIN: &str = "JOIN";
    pub const LIMIT: &str = "LIMIT";
    pub const OFFSET: &str = "OFFSET";
    pub const FETCH: &str = "FETCH";
    pub const DISTINCT: &str = "SELECT DISTINCT";
    pub const SUBQUERY: &str = "subquery in expression";
    pub const UNION: &str = "UNION (without ALL)";
    pub const INTERSECT: &str = "INTERSECT";
    pub const EXCEPT: &str = "EXCEPT";
    pub const GROUPING_SETS: &str = "GROUPING SETS";
    pub const ROLLUP: &str = "ROLLUP";
    pub const CUBE: &str = "CUBE";
    pub const MATCH_RECOGNIZE: &str = "MATCH_RECOGNIZE";
    pub const LATERAL: &str = "LATERAL";
    pub const VALUES: &str = "VALUES";
    pub const HINT: &str = "SQL hint (/*+ ... */)";
}

/// Explanation appended to an unsupported construct's message.
pub(crate) fn hint(construct_name: &str) -> &'static str {
    match construct_name {
        construct::JOIN => " (joins are not supported yet)",
        construct::LIMIT | construct::OFFSET | construct::FETCH => {
            " (LIMIT, OFFSET and FETCH are not supported on streams yet)"
        }
        construct::DISTINCT => " (not supported yet; use GROUP BY)",
        construct::UNION => " (only UNION ALL is supported)",
        construct::HINT => " (hints are not supported; Weir does not ignore them silently)",
        c if c.starts_with("group window function") => {
            " (use the window table-valued functions: FROM TABLE(TUMBLE(TABLE t, DESCRIPTOR(ts), size)))"
        }
        c if c.ends_with(" statement") => {
            " (supported statements: CREATE TABLE, CREATE VIEW, INSERT INTO, SELECT, SET)"
        }
        _ => " (not supported yet)",
    }
}

/// Checks that `query` stays within the subset of Flink SQL that Weir runs:
/// no joins (including comma joins), LIMIT/OFFSET/FETCH, SELECT DISTINCT, subqueries in expressions, set
/// operations other than UNION ALL, GROUPING SETS/ROLLUP/CUBE,
/// MATCH_RECOGNIZE, LATERAL or VALUES. Derived tables (`FROM (SELECT ...) t`),
/// CTEs and window table-valued functions are supported.
///
/// When several constructs are unsupported, the first one in the source is
/// reported, with its line.
pub fn check_supported(query: &Query) -> Result<(), DialectError> {
    check_supported_at(query, 0)
}

/// [`check_supported`] with the line to report when a construct has no span
/// (0: the line where the query starts).
pub(crate) fn check_supported_at(query: &Query, fallback_line: usize) -> Result<(), DialectError> {
    let fallback_line = if fallback_line == 0 {
        line_of(query_start(query), 1)
    } else {
        fallback_line
    };
    let mut checker = Checker {
        found: Vec::new(),
        fallback_line,
    };
    // The checker never breaks.
    let _ = query.visit(&mut checker);
    let first = checker
        .found
        .into_iter()
        .enumerate()
        .min_by_key(|(i, v)| (v.line, v.column, *i))
        .map(|(_, v)| v);
    match first {
        None => Ok(()),
        Some(v) => Err(DialectError::Unsupported {
            construct: v.construct,
            line: v.line,
        }),
    }
}

struct Violation {
    construct: String,
    line: usize,
    column: u64,
}

struct Checker {
    found: Vec<Violation>,
    fallback_line: usize,
}

impl Checker {
    fn report(&mut self, construct: impl Into<String>, span: Span) {
        let line = line_of(span, self.fallback_line);
        let column = if span.start.line == 0 {
            0
        } else {
            span.start.column
        };
        self.found.push(Violation {
            construct: construct.into(),
            line,
            column,
        });
    }

    fn check_set_expr(&mut self, body: &SetExpr) {
        match body {
            SetExpr::Select(_) | SetExpr::Query(_) => {}
            SetExpr::SetOperation {
                op,
                set_quantifier,
                left,
                right,
            } => {
                let span = set_expr_start(right);
                match (op, set_quantifier) {
                    (SetOperator::Union, SetQuantifier::All) => {}
                    (SetOperator::Union, SetQuantifier::None | SetQuantifier::Distinct) => {
                        self.report(construct::UNION, span)
                    }
                    (SetOperator::Union, q) => self.report(format!("UNION {q}"), span),
                    (SetOperator::Intersect, _) => self.report(construct::INTERSECT, span),
                    (SetOperator::Except | SetOperator::Minus, _) => {
                        self.report(construct::EXCEPT, span)
                    }
                }
                self.check_set_expr(left);
                self.check_set_expr(right);
            }
            SetExpr::Values(v) => self.report(
                construct::VALUES,
                v.rows
                    .first()
                    .and_then(|r| r.first())
                    .map(expr_start)
                    .unwrap_or(Span::empty()),
            ),
            SetExpr::Insert(_) => self.report("INSERT inside a query", Span::empty()),
            SetExpr::Update(_) => self.report("UPDATE inside a query", Span::empty()),
            SetExpr::Delete(_) => self.report("DELETE inside a query", Span::empty()),
            SetExpr::Merge(_) => self.report("MERGE inside a query", Span::empty()),
            SetExpr::Table(_) => {
                self.report("TABLE t as a query (use SELECT * FROM t)", Span::empty())
            }
        }
    }
}

impl Visitor for Checker {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            if with.recursive {
                self.report("WITH RECURSIVE", with.with_token.0.span);
            }
        }
        // ORDER BY and OVER are checked by the planner (streaming ORDER BY
        // rowtime, OVER windows, ROW_NUMBER deduplication).
        match &query.limit_clause {
            None => {}
            Some(LimitClause::LimitOffset {
                limit,
                offset,
                limit_by,
            }) => {
                if let Some(limit) = limit {
                    self.report(construct::LIMIT, expr_start(limit));
                }
                if let Some(offset) = offset {
                    self.report(construct::OFFSET, expr_start(&offset.value));
                }
                if let Some(first) = limit_by.first() {
                    self.report("LIMIT BY", expr_start(first));
                }
            }
            Some(LimitClause::OffsetCommaLimit { limit, .. }) => {
                self.report(construct::LIMIT, expr_start(limit))
            }
        }
        if let Some(fetch) = &query.fetch {
            self.report(
                construct::FETCH,
                fetch
                    .quantity
                    .as_ref()
                    .map(expr_start)
                    .unwrap_or(Span::empty()),
            );
        }
        if !query.locks.is_empty() {
            self.report("FOR UPDATE/SHARE", Span::empty());
        }
        if query.for_clause.is_some() {
            self.report("FOR XML/JSON/BROWSE", Span::empty());
        }
        if query.settings.is_some() {
            self.report("SETTINGS", Span::empty());
        }
        if query.format_clause.is_some() {
            self.report("FORMAT", Span::empty());
        }
        if !query.pipe_operators.is_empty() {
            self.report("pipe operator (|>)", Span::empty());
        }
        self.check_set_expr(&query.body);
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        let select_span = select.select_token.0.span;
        if !select.optimizer_hints.is_empty() {
            self.report(construct::HINT, select_span);
        }
        match &select.distinct {
            None | Some(Distinct::All) => {}
            Some(_) => self.report(construct::DISTINCT, select_span),
        }
        if select.select_modifiers.is_some() {
            self.report("SELECT modifier", select_span);
        }
        if select.top.is_some() {
            self.report("TOP", select_span);
        }
        if select.into.is_some() {
            self.report("SELECT INTO", select_span);
        }
        if select.exclude.is_some() {
            self.report("SELECT * EXCLUDE", select_span);
        }
        if let Some(second) = select.from.get(1) {
            // `FROM a, b` is a cross join.
            self.report(construct::JOIN, table_factor_start(&second.relation));
        }
        for twj in &select.from {
            if let Some(join) = twj.joins.first() {
                self.report(construct::JOIN, table_factor_start(&join.relation));
            }
        }
        if let Some(lv) = select.lateral_views.first() {
            self.report(construct::LATERAL, expr_start(&lv.lateral_view));
        }
        if let Some(p) = &select.prewhere {
            self.report("PREWHERE", expr_start(p));
        }
        if !select.connect_by.is_empty() {
            self.report("CONNECT BY", select_span);
        }
        match &select.group_by {
            GroupByExpr::All(_) => self.report("GROUP BY ALL", select_span),
            GroupByExpr::Expressions(exprs, modifiers) => {
                for m in modifiers {
                    let span = exprs.first().map(expr_start).unwrap_or(select_span);
                    match m {
                        GroupByWithModifier::Rollup => self.report(construct::ROLLUP, span),
                        GroupByWithModifier::Cube => self.report(construct::CUBE, span),
                        GroupByWithModifier::Totals => self.report("WITH TOTALS", span),
                        GroupByWithModifier::GroupingSets(e) => {
                            self.report(construct::GROUPING_SETS, expr_start(e))
                        }
                    }
                }
            }
        }
        if let Some(e) = select.cluster_by.first() {
            self.report("CLUSTER BY", expr_start(e));
        }
        if let Some(e) = select.distribute_by.first() {
            self.report("DISTRIBUTE BY", expr_start(e));
        }
        if let Some(e) = select.sort_by.first() {
            self.report("SORT BY", expr_start(&e.expr));
        }
        // A named WINDOW clause is planned by DataFusion (OVER windows).
        if let Some(q) = &select.qualify {
            self.report("QUALIFY", expr_start(q));
        }
        if select.value_table_mode.is_some() {
            self.report("SELECT AS VALUE/STRUCT", select_span);
        }
        if !matches!(select.flavor, SelectFlavor::Standard) {
            self.report("FROM-first SELECT", select_span);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, tf: &TableFactor) -> ControlFlow<()> {
        // Spans are computed only for a violation: `Spanned` recurses through
        // the whole subtree.
        let span = || table_factor_start(tf);
        match tf {
            TableFactor::Table {
                name,
                args,
                with_hints,
                version,
                with_ordinality,
                partitions,
                json_path,
                sample,
                index_hints,
                alias: _,
            } => {
                if args.is_some() && !is_window_tvf_name(name) {
                    self.report(format!("table function {name}(...)"), span());
                }
                if !with_hints.is_empty() || !index_hints.is_empty() {
                    self.report("table hint", span());
                }
                if version.is_some() {
                    self.report("FOR SYSTEM_TIME AS OF", span());
                }
                if *with_ordinality {
                    self.report("WITH ORDINALITY", span());
                }
                if !partitions.is_empty() {
                    self.report("PARTITION (table partition selection)", span());
                }
                if json_path.is_some() {
                    self.report("JSON path in FROM", span());
                }
                if sample.is_some() {
                    self.report("TABLESAMPLE", span());
                }
            }
            TableFactor::Derived {
                lateral, sample, ..
            } => {
                if *lateral {
                    self.report(construct::LATERAL, span());
                }
                if sample.is_some() {
                    self.report("TABLESAMPLE", span());
                }
            }
            TableFactor::TableFunction { expr, .. } => match expr {
                Expr::Function(f) if is_window_tvf_name(&f.name) => {}
                Expr::Function(f) => self.report(format!("table function {}(...)", f.name), span()),
                _ => self.report("table function TABLE(...)", span()),
            },
            TableFactor::Function { lateral, name, .. } => {
                if *lateral {
                    self.report(construct::LATERAL, span());
                } else {
                    self.report(format!("table function {name}(...)"), span());
                }
            }
            TableFactor::UNNEST { .. } => self.report("UNNEST", span()),
            TableFactor::JsonTable { .. } => self.report("JSON_TABLE", span()),
            TableFactor::OpenJsonTable { .. } => self.report("OPENJSON", span()),
            TableFactor::XmlTable { .. } => self.report("XMLTABLE", span()),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                if let Some(join) = table_with_joins.joins.first() {
                    self.report(construct::JOIN, table_factor_start(&join.relation));
                }
            }
            TableFactor::Pivot { .. } => self.report("PIVOT", span()),
            TableFactor::Unpivot { .. } => self.report("UNPIVOT", span()),
            TableFactor::MatchRecognize { .. } => self.report(construct::MATCH_RECOGNIZE, span()),
            TableFactor::SemanticView { .. } => self.report("SEMANTIC_VIEW", span()),
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        let span = || expr_start(expr);
        match expr {
            Expr::Subquery(_) | Expr::InSubquery { .. } | Expr::Exists { .. } => {
                self.report(construct::SUBQUERY, span())
            }
            Expr::GroupingSets(_) => self.report(construct::GROUPING_SETS, span()),
            Expr::Cube(_) => self.report(construct::CUBE, span()),
            Expr::Rollup(_) => self.report(construct::ROLLUP, span()),
            Expr::Function(f)
                if matches!(f.args, FunctionArguments::Subquery(_))
                    || matches!(f.parameters, FunctionArguments::Subquery(_)) =>
            {
                self.report(construct::SUBQUERY, span());
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}

fn is_window_tvf_name(name: &sqlparser::ast::ObjectName) -> bool {
    crate::tvf::Window::from_name(name).is_some()
}
