//! Planning `MATCH_RECOGNIZE`: the parsed clause ([`weir_dialect::MatchRecognize`])
//! becomes a [`MatchRecognize`] operator behind a hash edge on the
//! `PARTITION BY` columns (no `PARTITION BY`: one subtask, as in Flink).
//!
//! The relation SQL sees has the `PARTITION BY` columns, then the measures
//! (Flink's `ONE ROW PER MATCH`); the outer query projects, filters or
//! inserts it like any table. The operator is handed to the lowering as a
//! [`TableFunctionPlan`], the same way a table function is.
//!
//! `DEFINE` and `MEASURES` expressions are translated as the guide in
//! [`weir_operators::cep`] says: every navigation (`PREV`, `FIRST`, `LAST`,
//! `v.x` of another variable, aggregates over a variable,
//! `MATCH_ROWTIME()`) is replaced by a column `__weir_navN` and collected
//! as a [`Navigation`]; the rest of the expression is planned by DataFusion
//! against [`navigation_schema`] (arithmetic, comparisons, `CASE`, scalar
//! functions).
//!
//! `PREV(x)` means `PREV(x, 1)`, the row before in the partition (the SQL
//! standard). Flink 2.2 accepts only `PREV(x, 0)` ("Flink does not support
//! physical offsets within partition"); other offsets are a Weir extension.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use arrow::datatypes::{DataType, SchemaRef};
use datafusion_common::tree_node::{Transformed, TreeNode};
use datafusion_common::DFSchema;
use datafusion_expr::execution_props::ExecutionProps;
use datafusion_expr::physical_planning_context::PhysicalPlanningContext;
use datafusion_expr::{cast, Expr};
use datafusion_optimizer::analyzer::type_coercion::TypeCoercionRewriter;
use datafusion_physical_expr::{create_physical_expr, PhysicalExpr};
use datafusion_sql::planner::{ParserOptions, PlannerContext, SqlToRel};
use sqlparser::ast::{
    AfterMatchSkip, Expr as SqlExpr, FunctionArg, FunctionArgExpr, FunctionArguments, Ident, Value,
    VisitMut, VisitorMut,
};
use weir_dialect::{PatternTerm, WindowTvf};
use weir_engine::operator::Operator;
use weir_engine::{Result, WeirError};
use weir_operators::cep::{
    navigation_schema, rowtime_type, AggFunc, CompiledMatch, ExprCondition, ExprMeasure, MatchSpec,
    Navigation, Pattern, Quantifier, SkipStrategy, VarRef,
};
use weir_operators::match_recognize::MatchRecognize;

use crate::catalog::{Catalog, TvfDef};
use crate::table_function::TableFunctionPlan;

/// Prefix of the navigation columns of a translated expression.
const NAV_PREFIX: &str = "__weir_nav";

fn plan_err(line: usize, msg: impl std::fmt::Display) -> WeirError {
    WeirError::Plan(format!("line {line}: MATCH_RECOGNIZE: {msg}"))
}

/// Plans the `MATCH_RECOGNIZE` of `t` against the relations in `catalog`.
pub(crate) fn plan_match_recognize(catalog: &Catalog, t: &WindowTvf) -> Result<TvfDef> {
    let line = t.line;
    let mr = t
        .match_recognize
        .as_deref()
        .ok_or_else(|| WeirError::Internal("MATCH_RECOGNIZE without its clause".into()))?;
    let input = catalog
        .relation_schema(&t.input)
        .ok_or_else(|| plan_err(line, format!("input '{}': no such table or view", t.input)))?;

    let time_column = order_by_column(catalog, t, &input)?;
    let partition_by: Vec<usize> = mr
        .partition_by
        .iter()
        .map(|e| {
            let name = plain_column(e).ok_or_else(|| {
                plan_err(
                    line,
                    format!("PARTITION BY {e}: only column names are supported"),
                )
            })?;
            input.index_of(&name).map_err(|_| {
                plan_err(
                    line,
                    format!("PARTITION BY {name}: {} has no such column", t.input),
                )
            })
        })
        .collect::<Result<_>>()?;

    let pattern = pattern(&mr.pattern);
    let skip = match &mr.after_match_skip {
        AfterMatchSkip::PastLastRow => SkipStrategy::PastLastRow,
        AfterMatchSkip::ToNextRow => SkipStrategy::ToNextRow,
        AfterMatchSkip::ToFirst(v) => SkipStrategy::ToFirst(v.value.clone()),
        AfterMatchSkip::ToLast(v) => SkipStrategy::ToLast(v.value.clone()),
    };
    let mut spec = MatchSpec::new(pattern.clone()).skip(skip.clone());
    if let Some(ms) = mr.within_ms {
        spec = spec.within_ms(ms);
    }

    let parser_options = ParserOptions {
        enable_ident_normalization: false,
        map_string_types_to_utf8view: false,
        ..ParserOptions::new()
    };
    let sql = SqlToRel::new_with_options(catalog, parser_options);
    let rowtime = rowtime_type(input.field(time_column).data_type());
    let tr = Translator {
        sql: &sql,
        input: input.clone(),
        rowtime,
        line,
    };
    for d in &mr.define {
        let var = d.symbol.value.clone();
        let what = format!("DEFINE {var}");
        let (expr, navs) = tr.translate(&d.definition, Some(&var), &what)?;
        spec = spec.define(var, ExprCondition::new(expr, navs));
    }
    let mut measure_names = Vec::new();
    for m in &mr.measures {
        let name = m.alias.value.clone();
        let what = format!("MEASURES … AS {name}");
        let (expr, navs) = tr.translate(&m.expr, None, &what)?;
        spec = spec.measure(ExprMeasure::new(name.clone(), expr, navs));
        measure_names.push(name);
    }
    if mr.measures.is_empty() {
        return Err(plan_err(line, "MEASURES is required (Flink's rule)"));
    }

    let with_line = |e: WeirError| match e {
        WeirError::Plan(m) => plan_err(line, m),
        other => other,
    };
    let compiled =
        Arc::new(CompiledMatch::try_new(spec, input.clone(), time_column).map_err(with_line)?);
    let schema = MatchRecognize::output_schema_for(&compiled, &partition_by).map_err(with_line)?;
    MatchRecognize::try_new(compiled.clone(), partition_by.clone()).map_err(with_line)?;

    let description = format!(
        "PARTITION BY [{}] ORDER BY {} MEASURES [{}] {} PATTERN ({pattern}){}",
        partition_by
            .iter()
            .map(|&i| input.field(i).name().as_str())
            .collect::<Vec<_>>()
            .join(", "),
        input.field(time_column).name(),
        measure_names.join(", "),
        skip_sql(&skip),
        mr.within_ms
            .map(|ms| format!(" WITHIN {ms} ms"))
            .unwrap_or_default(),
    );
    let keys = partition_by.clone();
    let operator = Arc::new(move |_s: usize, _p: usize| -> Result<Box<dyn Operator>> {
        Ok(Box::new(MatchRecognize::try_new(
            compiled.clone(),
            partition_by.clone(),
        )?))
    });
    Ok(TvfDef {
        tvf: t.clone(),
        schema: schema.clone(),
        function: Some(TableFunctionPlan {
            schema,
            keys,
            operator,
            description,
        }),
    })
}

fn skip_sql(skip: &SkipStrategy) -> String {
    match skip {
        SkipStrategy::PastLastRow => "AFTER MATCH SKIP PAST LAST ROW".into(),
        SkipStrategy::ToNextRow => "AFTER MATCH SKIP TO NEXT ROW".into(),
        SkipStrategy::ToFirst(v) => format!("AFTER MATCH SKIP TO FIRST {v}"),
        SkipStrategy::ToLast(v) => format!("AFTER MATCH SKIP TO LAST {v}"),
    }
}

/// Checks `ORDER BY` (the input's time attribute, ascending, alone) and
/// returns the time column's index.
fn order_by_column(catalog: &Catalog, t: &WindowTvf, input: &SchemaRef) -> Result<usize> {
    let line = t.line;
    let mr = t
        .match_recognize
        .as_deref()
        .ok_or_else(|| WeirError::Internal("MATCH_RECOGNIZE without its clause".into()))?;
    let time_attr: Option<String> = match catalog.tables.get(&t.input) {
        Some(table) => table.ddl.watermark.as_ref().map(|w| w.column.clone()),
        None => None,
    };
    let is_table = catalog.tables.contains_key(&t.input);
    let expected = || match (&time_attr, is_table) {
        (Some(c), _) => format!("{}'s time attribute is {c}", t.input),
        (None, true) => format!(
            "{} has no time attribute: declare WATERMARK FOR <column> AS … in its CREATE TABLE",
            t.input
        ),
        (None, false) => "the time attribute of the view's table".into(),
    };
    let first = mr
        .order_by
        .first()
        .ok_or_else(|| plan_err(line, "ORDER BY <time attribute> is required"))?;
    let Some(name) = plain_column(&first.expr) else {
        return Err(plan_err(
            line,
            format!(
                "ORDER BY {}: must be the time attribute (rowtime) of the input, ascending; {}",
                first.expr,
                expected()
            ),
        ));
    };
    let idx = input.index_of(&name).map_err(|_| {
        plan_err(
            line,
            format!("ORDER BY {name}: {} has no such column", t.input),
        )
    })?;
    let is_time = match &time_attr {
        Some(c) => *c == name,
        None => !is_table && matches!(input.field(idx).data_type(), DataType::Timestamp(_, _)),
    };
    if !is_time {
        return Err(plan_err(
            line,
            format!(
                "ORDER BY {name}: MATCH_RECOGNIZE must be ordered by the time attribute (rowtime) of its input, ascending; {}",
                expected()
            ),
        ));
    }
    if first.options.asc == Some(false) {
        return Err(plan_err(
            line,
            format!("ORDER BY {name} DESC: the time attribute must be ascending"),
        ));
    }
    if mr.order_by.len() > 1 {
        let rest: Vec<String> = mr.order_by[1..]
            .iter()
            .map(|o| o.expr.to_string())
            .collect();
        return Err(plan_err(
            line,
            format!(
                "unsupported construct: secondary ORDER BY keys ({}); rows with equal times are matched in arrival order",
                rest.join(", ")
            ),
        ));
    }
    Ok(idx)
}

/// The column name of `e` when it is one (`x` or `t.x`).
fn plain_column(e: &SqlExpr) -> Option<String> {
    match e {
        SqlExpr::Identifier(i) => Some(i.value.clone()),
        SqlExpr::CompoundIdentifier(parts) => parts.last().map(|i| i.value.clone()),
        SqlExpr::Nested(inner) => plain_column(inner),
        _ => None,
    }
}

fn pattern(p: &PatternTerm) -> Pattern {
    match p {
        PatternTerm::Var(v) => Pattern::var(v.clone()),
        PatternTerm::Concat(parts) => Pattern::concat(parts.iter().map(pattern)),
        PatternTerm::Group(inner) => Pattern::group(pattern(inner)),
        PatternTerm::Quantified { term, quantifier } => Pattern::quantified(
            pattern(term),
            Quantifier {
                min: quantifier.min,
                max: quantifier.max,
                greedy: quantifier.greedy,
            },
        ),
    }
}

/// A translated expression over the navigation schema, and its navigations.
type Translated = (Arc<dyn PhysicalExpr>, Vec<(String, Navigation)>);

/// Translates `DEFINE` and `MEASURES` expressions.
struct Translator<'a> {
    sql: &'a SqlToRel<'a, Catalog>,
    input: SchemaRef,
    rowtime: DataType,
    line: usize,
}

impl Translator<'_> {
    /// Translates `expr` (in `DEFINE var` when `defining` is set, else in
    /// `MEASURES`) into an expression over the navigation schema and its
    /// navigations.
    fn translate(&self, expr: &SqlExpr, defining: Option<&str>, what: &str) -> Result<Translated> {
        let mut rewrite = Rewrite {
            tr: self,
            defining,
            what,
            navs: Vec::new(),
            integer_avgs: Vec::new(),
        };
        let mut e = expr.clone();
        if let ControlFlow::Break(err) = e.visit(&mut rewrite) {
            return Err(err);
        }
        let schema = navigation_schema(&self.input, &rewrite.navs, &self.rowtime)
            .map_err(|err| plan_err(self.line, format!("{what}: {err}")))?;
        let mut logical = self.logical(e, &schema, what)?;
        if !rewrite.integer_avgs.is_empty() {
            // Flink's AVG of an integer has the integer's type.
            logical = logical
                .transform_up(|node| {
                    if let Expr::Column(c) = &node {
                        if let Some((_, t)) =
                            rewrite.integer_avgs.iter().find(|(n, _)| *n == c.name)
                        {
                            return Ok(Transformed::yes(cast(node, t.clone())));
                        }
                    }
                    Ok(Transformed::no(node))
                })
                .map(|t| t.data)
                .map_err(|err| plan_err(self.line, format!("{what}: {err}")))?;
        }
        let physical = self.physical(logical, &schema, what)?;
        Ok((physical, rewrite.navs))
    }

    /// Plans a SQL expression (no navigations left) against `schema`,
    /// with type coercion.
    fn logical(&self, e: SqlExpr, schema: &SchemaRef, what: &str) -> Result<Expr> {
        let df = DFSchema::try_from(schema.as_ref().clone())
            .map_err(|err| plan_err(self.line, format!("{what}: {err}")))?;
        let logical = self
            .sql
            .sql_to_expr(e, &df, &mut PlannerContext::new())
            .map_err(|err| plan_err(self.line, format!("{what}: {err}")))?;
        let mut coercion = TypeCoercionRewriter::new(&df);
        logical
            .rewrite(&mut coercion)
            .map(|t| t.data)
            .map_err(|err| plan_err(self.line, format!("{what}: {err}")))
    }

    fn physical(&self, e: Expr, schema: &SchemaRef, what: &str) -> Result<Arc<dyn PhysicalExpr>> {
        let df = DFSchema::try_from(schema.as_ref().clone())
            .map_err(|err| plan_err(self.line, format!("{what}: {err}")))?;
        create_physical_expr(
            &e,
            &df,
            &ExecutionProps::new(),
            &PhysicalPlanningContext::default(),
        )
        .map_err(|err| plan_err(self.line, format!("{what}: {err}")))
    }

    /// Plans the argument of a navigation against the input: `v.x` becomes
    /// `x`; returns the one variable it names, if any.
    fn argument(&self, e: &SqlExpr, what: &str) -> Result<(Arc<dyn PhysicalExpr>, Option<String>)> {
        let mut strip = StripVars {
            vars: BTreeSet::new(),
            nested: None,
        };
        let mut e = e.clone();
        let _ = e.visit(&mut strip);
        if let Some(f) = strip.nested {
            return Err(plan_err(
                self.line,
                format!("{what}: {f}(…) inside the argument of a navigation or aggregate is not supported"),
            ));
        }
        if strip.vars.len() > 1 {
            return Err(plan_err(
                self.line,
                format!(
                    "{what}: `{e}` reads several pattern variables ({}); a navigation or aggregate must read one",
                    strip.vars.iter().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        let logical = self.logical(e, &self.input, what)?;
        let physical = self.physical(logical, &self.input, what)?;
        Ok((physical, strip.vars.into_iter().next()))
    }

    fn check_column(&self, name: &str, what: &str) -> Result<()> {
        if self.input.index_of(name).is_err() {
            return Err(plan_err(
                self.line,
                format!("{what}: the input has no column '{name}'"),
            ));
        }
        Ok(())
    }
}

/// Replaces navigations by navigation columns (see [`Translator::translate`]).
struct Rewrite<'a, 'b> {
    tr: &'a Translator<'b>,
    defining: Option<&'a str>,
    what: &'a str,
    navs: Vec<(String, Navigation)>,
    /// Navigation columns of `AVG` over an integer, with the integer type.
    integer_avgs: Vec<(String, DataType)>,
}

/// What a function call means inside `DEFINE`/`MEASURES`.
enum Call {
    Prev,
    First,
    Last,
    Agg(AggFunc),
    MatchRowtime,
    Unsupported(&'static str),
    Other,
}

fn classify(name: &str) -> Call {
    match name.to_ascii_uppercase().as_str() {
        "PREV" => Call::Prev,
        "FIRST" => Call::First,
        "LAST" => Call::Last,
        "SUM" => Call::Agg(AggFunc::Sum),
        "COUNT" => Call::Agg(AggFunc::Count),
        "AVG" => Call::Agg(AggFunc::Avg),
        "MIN" => Call::Agg(AggFunc::Min),
        "MAX" => Call::Agg(AggFunc::Max),
        "MATCH_ROWTIME" => Call::MatchRowtime,
        "NEXT" => Call::Unsupported("NEXT() (Flink supports PREV only)"),
        "CLASSIFIER" => Call::Unsupported("CLASSIFIER()"),
        "MATCH_NUMBER" => Call::Unsupported("MATCH_NUMBER()"),
        "MATCH_PROCTIME" => Call::Unsupported("MATCH_PROCTIME() (processing time)"),
        "PROCTIME" => Call::Unsupported("PROCTIME() (processing time)"),
        _ => Call::Other,
    }
}

/// The positional arguments of a call (`None` for `*`), or a message.
fn call_args(f: &sqlparser::ast::Function) -> std::result::Result<Vec<Arg>, String> {
    let list = match &f.args {
        FunctionArguments::None => return Ok(Vec::new()),
        FunctionArguments::Subquery(_) => return Err("a subquery argument".into()),
        FunctionArguments::List(l) => l,
    };
    if list.duplicate_treatment.is_some() {
        return Err("DISTINCT/ALL in the arguments".into());
    }
    if !list.clauses.is_empty() {
        return Err("clauses in the arguments".into());
    }
    if f.filter.is_some() || f.over.is_some() || !f.within_group.is_empty() {
        return Err("FILTER/OVER/WITHIN GROUP".into());
    }
    list.args
        .iter()
        .map(|a| match a {
            FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Ok(Arg::Expr(Box::new(e.clone()))),
            FunctionArg::Unnamed(FunctionArgExpr::Wildcard) => Ok(Arg::Star(None)),
            FunctionArg::Unnamed(FunctionArgExpr::QualifiedWildcard(n)) => {
                Ok(Arg::Star(Some(n.to_string())))
            }
            other => Err(format!("argument {other}")),
        })
        .collect()
}

enum Arg {
    Expr(Box<SqlExpr>),
    /// `*` or `v.*`.
    Star(Option<String>),
}

/// A non-negative integer literal (the offset of `PREV`/`FIRST`/`LAST`).
fn offset(a: Option<&Arg>, default: usize) -> Option<usize> {
    match a {
        None => Some(default),
        Some(Arg::Expr(e)) => match e.as_ref() {
            SqlExpr::Value(v) => match &v.value {
                Value::Number(n, _) => n.parse::<usize>().ok(),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

impl Rewrite<'_, '_> {
    fn err(&self, msg: impl std::fmt::Display) -> WeirError {
        plan_err(self.tr.line, format!("{}: {msg}", self.what))
    }

    /// Adds a navigation and returns the identifier of its column.
    fn push(&mut self, nav: Navigation) -> SqlExpr {
        let name = format!("{NAV_PREFIX}{}", self.navs.len());
        self.navs.push((name.clone(), nav));
        SqlExpr::Identifier(Ident::new(name))
    }

    fn call(
        &mut self,
        f: &sqlparser::ast::Function,
        kind: Call,
    ) -> std::result::Result<Option<SqlExpr>, WeirError> {
        let name = f.name.to_string().to_ascii_uppercase();
        let args = match kind {
            Call::Other => return Ok(None),
            Call::Unsupported(what) => {
                return Err(self.err(format!("unsupported construct: {what}")))
            }
            _ => call_args(f).map_err(|m| self.err(format!("{name}: unsupported {m}")))?,
        };
        let nav = match kind {
            Call::Prev | Call::First | Call::Last => {
                let (Some(Arg::Expr(arg)), 1..=2) = (args.first(), args.len()) else {
                    return Err(self.err(format!(
                        "{name} takes a column expression and an optional offset"
                    )));
                };
                // `PREV(x)` is `PREV(x, 1)` (the SQL standard's row before);
                // `FIRST(x)`/`LAST(x)` count from 0.
                let default = usize::from(matches!(kind, Call::Prev));
                let n = offset(args.get(1), default).ok_or_else(|| {
                    self.err(format!(
                        "{name}: the offset must be a non-negative integer literal"
                    ))
                })?;
                let (arg, var) = self.tr.argument(arg, self.what)?;
                match kind {
                    Call::Prev => Navigation::prev(arg, n),
                    Call::First => Navigation::first(var_ref(var), arg, n),
                    _ => Navigation::last(var_ref(var), arg, n),
                }
            }
            Call::Agg(func) => {
                let (var, arg) = match args.as_slice() {
                    [Arg::Star(v)] if func == AggFunc::Count => (v.clone(), None),
                    [Arg::Expr(e)] => {
                        let (arg, var) = self.tr.argument(e, self.what)?;
                        (var, Some(arg))
                    }
                    _ => {
                        return Err(
                            self.err(format!("{name} over a pattern variable takes one argument"))
                        )
                    }
                };
                let integer = match (&arg, func) {
                    (Some(a), AggFunc::Avg) => {
                        a.data_type(&self.tr.input).ok().filter(|t| t.is_integer())
                    }
                    _ => None,
                };
                let nav = Navigation::aggregate(func, var_ref(var), arg, &self.tr.input)
                    .map_err(|e| self.err(e))?;
                if let Some(t) = integer {
                    self.integer_avgs
                        .push((format!("{NAV_PREFIX}{}", self.navs.len()), t));
                }
                nav
            }
            Call::MatchRowtime => {
                if !args.is_empty() {
                    return Err(self.err("MATCH_ROWTIME() takes no arguments"));
                }
                Navigation::match_rowtime()
            }
            Call::Other | Call::Unsupported(_) => return Ok(None),
        };
        Ok(Some(self.push(nav)))
    }
}

fn var_ref(v: Option<String>) -> VarRef {
    match v {
        Some(v) => VarRef::Var(v),
        None => VarRef::All,
    }
}

impl VisitorMut for Rewrite<'_, '_> {
    type Break = WeirError;

    fn pre_visit_expr(&mut self, expr: &mut SqlExpr) -> ControlFlow<WeirError> {
        let replacement = match &*expr {
            SqlExpr::Function(f) => {
                let kind = match f.name.0.as_slice() {
                    [part] => part
                        .as_ident()
                        .map(|i| classify(&i.value))
                        .unwrap_or(Call::Other),
                    _ => Call::Other,
                };
                match self.call(f, kind) {
                    Ok(r) => r,
                    Err(e) => return ControlFlow::Break(e),
                }
            }
            SqlExpr::CompoundIdentifier(parts) => {
                let [var, column] = parts.as_slice() else {
                    return ControlFlow::Break(
                        self.err(format!("`{expr}`: expected variable.column")),
                    );
                };
                if let Err(e) = self.tr.check_column(&column.value, self.what) {
                    return ControlFlow::Break(e);
                }
                if self.defining == Some(var.value.as_str()) {
                    // The row being tested.
                    Some(SqlExpr::Identifier(column.clone()))
                } else {
                    let arg = match self
                        .tr
                        .argument(&SqlExpr::Identifier(column.clone()), self.what)
                    {
                        Ok((a, _)) => a,
                        Err(e) => return ControlFlow::Break(e),
                    };
                    Some(self.push(Navigation::last(VarRef::Var(var.value.clone()), arg, 0)))
                }
            }
            SqlExpr::Identifier(i) => {
                if let Err(e) = self.tr.check_column(&i.value, self.what) {
                    return ControlFlow::Break(e);
                }
                None
            }
            _ => None,
        };
        if let Some(r) = replacement {
            *expr = r;
        }
        ControlFlow::Continue(())
    }
}

/// Removes variable qualifiers (`v.x` → `x`) from a navigation argument,
/// noting the variables and any nested navigation.
struct StripVars {
    vars: BTreeSet<String>,
    nested: Option<String>,
}

impl VisitorMut for StripVars {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &mut SqlExpr) -> ControlFlow<()> {
        match &*expr {
            SqlExpr::CompoundIdentifier(parts) if parts.len() == 2 => {
                self.vars.insert(parts[0].value.clone());
                *expr = SqlExpr::Identifier(parts[1].clone());
            }
            SqlExpr::Function(f) => {
                if let [part] = f.name.0.as_slice() {
                    if let Some(i) = part.as_ident() {
                        if !matches!(classify(&i.value), Call::Other) {
                            self.nested = Some(i.value.to_ascii_uppercase());
                        }
                    }
                }
            }
            _ => {}
        }
        ControlFlow::Continue(())
    }
}
