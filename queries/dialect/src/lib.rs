//! # weir-dialect: Flink SQL in front of sqlparser
//!
//! DataFusion's SQL parser (sqlparser with `GenericDialect`) rejects several of
//! Flink's streaming forms: `TABLE bids` as the argument of a window
//! table-valued function, and `WATERMARK FOR … AS …`, computed and metadata
//! columns in `CREATE TABLE`. This crate sits in front of it:
//!
//! - [`parse_script`] splits a script into statements on top-level `;` (not
//!   inside strings or comments), each with the line where it starts;
//! - `CREATE TABLE` is parsed here, over sqlparser's primitives, into a
//!   [`CreateTable`] (columns, watermark, primary key, `WITH` options);
//! - queries are parsed by sqlparser with [`FlinkDialect`], then every window
//!   TVF call in a `FROM` clause (`TABLE(TUMBLE(TABLE bid, DESCRIPTOR(ts),
//!   INTERVAL '10' SECOND))`) is replaced by a reference to a synthetic table
//!   (`__weir_tvf_0`) described by a [`WindowTvf`], so DataFusion's planner can
//!   plan the rewritten [`sqlparser::ast::Query`];
//! - [`check_supported`] rejects the constructs Weir does not run yet, naming
//!   the construct and its line.
//!
//! ```
//! use weir_dialect::{parse_script, StatementKind, TvfKind};
//!
//! let script = parse_script(
//!     "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND))",
//! )?;
//! let StatementKind::Query { query, tvfs } = &script[0].kind else { unreachable!() };
//! assert_eq!(query.to_string(), "SELECT * FROM __weir_tvf_0");
//! assert_eq!(tvfs[0].kind, TvfKind::Tumble { size_ms: 10_000, offset_ms: 0 });
//! assert_eq!(tvfs[0].time_column, "dateTime");
//! # Ok::<(), weir_dialect::DialectError>(())
//! ```

mod check;
mod ddl;
mod dialect;
mod match_recognize;
mod span;
mod stmt;
mod tvf;

use sqlparser::ast::{DataType, Expr, Query};
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Tokenizer};

pub use check::check_supported;
pub use dialect::FlinkDialect;
pub use tvf::interval_ms;

use check::check_supported_at;
use stmt::{find_hint, is_trivia, split_statements, to_usize, Stmt};
use tvf::TvfRewriter;

/// One statement of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptStatement {
    /// 1-based line where the statement starts (its first token that is not
    /// whitespace or a comment).
    pub line: usize,
    /// What the statement is.
    pub kind: StatementKind,
}

/// The statements Weir runs.
// Unboxed on purpose: a script has few statements, and callers match on the
// plain `CreateTable`.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatementKind {
    /// `CREATE [TEMPORARY] TABLE [IF NOT EXISTS] name (...) WITH (...)`.
    CreateTable(CreateTable),
    /// `CREATE [TEMPORARY] VIEW [IF NOT EXISTS] name AS query`.
    CreateView {
        /// View name (qualified parts joined with `.`), case preserved.
        name: String,
        /// The query, window TVFs replaced by their synthetic tables.
        query: Box<Query>,
        /// The window TVFs found in the query.
        tvfs: Vec<WindowTvf>,
    },
    /// `INSERT INTO table query`.
    Insert {
        /// Target table name (qualified parts joined with `.`), case preserved.
        table: String,
        /// The query, window TVFs replaced by their synthetic tables.
        query: Box<Query>,
        /// The window TVFs found in the query.
        tvfs: Vec<WindowTvf>,
    },
    /// A bare query (`SELECT`, `WITH ... SELECT`, `... UNION ALL ...`).
    Query {
        /// The query, window TVFs replaced by their synthetic tables.
        query: Box<Query>,
        /// The window TVFs found in the query.
        tvfs: Vec<WindowTvf>,
    },
    /// `SET 'key' = 'value'` (quotes optional).
    Set {
        /// The key, quotes removed.
        key: String,
        /// The value, quotes removed.
        value: String,
    },
}

/// A Flink `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateTable {
    /// Table name (qualified parts joined with `.`), case preserved.
    pub name: String,
    /// Columns in declared order.
    pub columns: Vec<ColumnDef>,
    /// `WATERMARK FOR col AS expr`, if declared.
    pub watermark: Option<WatermarkDef>,
    /// `PRIMARY KEY (a, b) NOT ENFORCED` columns (table-level or inline),
    /// empty if none. Key columns are physical and NOT NULL, as in Flink.
    pub primary_key: Vec<String>,
    /// `WITH ('k' = 'v', ...)` in order, quotes removed.
    pub options: Vec<(String, String)>,
    /// 1-based line where the statement starts.
    pub line: usize,
}

/// A column of a [`CreateTable`].
// Unboxed on purpose: callers match on the plain fields.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnDef {
    /// `name TYPE [NOT NULL] [PRIMARY KEY NOT ENFORCED] [COMMENT '...']`.
    Physical {
        /// Column name, case preserved.
        name: String,
        /// Declared type. `TIMESTAMP_LTZ(p)` and `TIMESTAMP(p) WITH LOCAL TIME
        /// ZONE` are `DataType::Custom("TIMESTAMP_LTZ", ["p"])`.
        data_type: DataType,
        /// False with `NOT NULL` (and for primary key columns).
        nullable: bool,
        /// 1-based line of the column name.
        line: usize,
    },
    /// `name AS expr` (Flink computed column).
    Computed {
        /// Column name, case preserved.
        name: String,
        /// The expression computing it.
        expr: Expr,
        /// 1-based line of the column name.
        line: usize,
    },
    /// `name TYPE METADATA [FROM 'key'] [VIRTUAL]`.
    Metadata {
        /// Column name, case preserved.
        name: String,
        /// Declared type.
        data_type: DataType,
        /// The metadata key after `FROM`; `None` means the column name.
        key: Option<String>,
        /// `VIRTUAL`: read-only, not written by a sink.
        is_virtual: bool,
        /// 1-based line of the column name.
        line: usize,
    },
}

impl ColumnDef {
    /// The column's name.
    pub fn name(&self) -> &str {
        match self {
            ColumnDef::Physical { name, .. }
            | ColumnDef::Computed { name, .. }
            | ColumnDef::Metadata { name, .. } => name,
        }
    }

    /// The 1-based line of the column's definition.
    pub fn line(&self) -> usize {
        match self {
            ColumnDef::Physical { line, .. }
            | ColumnDef::Computed { line, .. }
            | ColumnDef::Metadata { line, .. } => *line,
        }
    }
}

/// `WATERMARK FOR column AS expr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatermarkDef {
    /// The event-time column, case preserved.
    pub column: String,
    /// The watermark expression (e.g. `ts - INTERVAL '5' SECOND`).
    pub expr: Expr,
    /// 1-based line of the `WATERMARK` keyword.
    pub line: usize,
}

/// A window table-valued function call found in a FROM clause, replaced in the
/// query by a reference to the synthetic table `table_name`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WindowTvf {
    /// The synthetic table, `__weir_tvf_<n>`, `n` counting over the whole script.
    pub table_name: String,
    /// Which window, with its durations.
    pub kind: TvfKind,
    /// The table or view after `TABLE` (qualified parts joined with `.`).
    pub input: String,
    /// The column in `DESCRIPTOR(col)`, case preserved: the time attribute
    /// of a window, the sequence column of `SEQUENCE_ORDER`/`SEQUENCE_GAPS`.
    pub time_column: String,
    /// `SESSION(TABLE t PARTITION BY a, b, ...)` keys, the key columns of
    /// `SEQUENCE_ORDER`/`SEQUENCE_GAPS`; empty otherwise.
    pub partition_by: Vec<String>,
    /// The alias written after `TABLE(...)`, also kept on the replacement table.
    pub alias: Option<String>,
    /// The clause of a [`TvfKind::MatchRecognize`]; `None` otherwise.
    pub match_recognize: Option<Box<MatchRecognize>>,
    /// The function name of a [`TvfKind::Function`] as written (the TVF's
    /// name otherwise).
    pub function: String,
    /// The arguments after `TABLE t` of a [`TvfKind::Function`], by
    /// position (named arguments are not supported there); empty otherwise.
    pub args: Vec<TableFunctionArg>,
    /// 1-based line of the call.
    pub line: usize,
}

/// The kind of window and its durations in milliseconds (Flink's rules hold:
/// sizes are positive, HOP size is a multiple of the slide, CUMULATE size a
/// multiple of the step, |offset| < size).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TvfKind {
    /// `TUMBLE(TABLE t, DESCRIPTOR(ts), size [, offset])`.
    Tumble {
        /// Window size.
        size_ms: i64,
        /// Shift of the window starts from the epoch alignment.
        offset_ms: i64,
    },
    /// `HOP(TABLE t, DESCRIPTOR(ts), slide, size [, offset])` (Flink's order).
    Hop {
        /// Distance between window starts.
        slide_ms: i64,
        /// Window size.
        size_ms: i64,
        /// Shift of the window starts from the epoch alignment.
        offset_ms: i64,
    },
    /// `CUMULATE(TABLE t, DESCRIPTOR(ts), step, size [, offset])`.
    Cumulate {
        /// Growth of the window end at each step.
        step_ms: i64,
        /// Maximum window size.
        size_ms: i64,
        /// Shift of the window starts from the epoch alignment.
        offset_ms: i64,
    },
    /// `SESSION(TABLE t [PARTITION BY k, ...], DESCRIPTOR(ts), gap)`.
    Session {
        /// Inactivity gap that closes a session.
        gap_ms: i64,
    },
    /// Weir's `SEQUENCE_ORDER(TABLE t, DESCRIPTOR(key, ...), DESCRIPTOR(seq),
    /// max_delay [, max_buffer_rows])` (the rows, per key in ascending `seq`,
    /// duplicates dropped) and `SEQUENCE_GAPS(...)` (same arguments; the gap
    /// markers). The keys are in [`WindowTvf::partition_by`] and the
    /// sequence column in [`WindowTvf::time_column`].
    Sequence {
        /// How long (event time past the first row after a gap) a gap may
        /// stay open before it is given up.
        max_delay_ms: i64,
        /// Rows buffered per key before the oldest gap is given up.
        max_buffer_rows: Option<u64>,
        /// The sequence number every key starts at (`None`: a key's first
        /// row starts its sequence).
        first_sequence: Option<i64>,
        /// `SEQUENCE_GAPS` (true) or `SEQUENCE_ORDER` (false).
        gaps: bool,
    },
    /// `input MATCH_RECOGNIZE (…)`; the clause is in
    /// [`WindowTvf::match_recognize`].
    MatchRecognize,
    /// Any other `TABLE(name(TABLE t, arg, …))`: a table function registered
    /// with the planner (Weir's built-in rules or a user's operator). The
    /// name is [`WindowTvf::function`], the other arguments
    /// [`WindowTvf::args`].
    Function,
}

/// An argument of a table function call after `TABLE t`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TableFunctionArg {
    /// `DESCRIPTOR(a, b, …)`: column names.
    Descriptor(Vec<String>),
    /// Any other expression (a literal, an interval), as parsed.
    Expr(Box<sqlparser::ast::Expr>),
}

/// A `MATCH_RECOGNIZE` clause (Flink's subset: ONE ROW PER MATCH, no
/// alternation, anchors, PERMUTE or exclusion), expressions as parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchRecognize {
    /// `PARTITION BY` expressions.
    pub partition_by: Vec<sqlparser::ast::Expr>,
    /// `ORDER BY` (first: the time attribute).
    pub order_by: Vec<sqlparser::ast::OrderByExpr>,
    /// `MEASURES expr AS name, …`.
    pub measures: Vec<sqlparser::ast::Measure>,
    /// `AFTER MATCH SKIP …` (default `TO NEXT ROW`, as Flink: Calcite fills
    /// it in, whatever Flink's documentation says).
    pub after_match_skip: sqlparser::ast::AfterMatchSkip,
    /// `PATTERN (…)`.
    pub pattern: PatternTerm,
    /// `DEFINE var AS condition, …`.
    pub define: Vec<sqlparser::ast::SymbolDefinition>,
    /// `WITHIN INTERVAL …`, in milliseconds.
    pub within_ms: Option<i64>,
}

/// A term of a `MATCH_RECOGNIZE` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PatternTerm {
    /// A pattern variable.
    Var(String),
    /// Terms one after the other.
    Concat(Vec<PatternTerm>),
    /// `( term )`.
    Group(Box<PatternTerm>),
    /// `term quantifier`.
    Quantified {
        /// The repeated term.
        term: Box<PatternTerm>,
        /// How often.
        quantifier: Quantifier,
    },
}

/// `*`, `+`, `?`, `{n}`, `{n,}`, `{,m}`, `{n,m}`, each greedy or reluctant
/// (followed by `?`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quantifier {
    /// Fewest repetitions.
    pub min: u32,
    /// Most repetitions (`None`: unbounded).
    pub max: Option<u32>,
    /// Greedy (as many as possible) or reluctant (as few as possible).
    pub greedy: bool,
}

/// An error of the dialect layer. Every message names the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialectError {
    /// The text is not valid SQL.
    #[error("line {line}, column {column}: syntax error: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What was expected and found.
        message: String,
    },
    /// A construct Weir does not support (yet), named: "JOIN", "LIMIT",
    /// "SELECT DISTINCT", "subquery in expression", "UNION (without ALL)", "INTERSECT", "EXCEPT", "GROUPING
    /// SETS", "ROLLUP", "CUBE", "MATCH_RECOGNIZE", "LATERAL", "VALUES", or a
    /// statement kind such as "DROP TABLE statement".
    #[error("line {line}: unsupported construct: {construct}{}", check::hint(.construct))]
    Unsupported {
        /// The construct.
        construct: String,
        /// 1-based line where it appears.
        line: usize,
    },
    /// Well-formed but invalid (HOP size not a multiple of the slide, a month
    /// interval, an unknown TVF argument, a watermark on a missing column, ...).
    #[error("line {line}: {message}")]
    Invalid {
        /// 1-based line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

impl DialectError {
    /// The 1-based line the error is about.
    pub fn line(&self) -> usize {
        match self {
            DialectError::Syntax { line, .. }
            | DialectError::Unsupported { line, .. }
            | DialectError::Invalid { line, .. } => *line,
        }
    }
}

/// Parses a Flink SQL script: statements separated by `;`, with `--` and
/// `/* */` comments anywhere. Returns the statements in order, or the first
/// error. Every query returned has passed [`check_supported`]; window TVF
/// tables are numbered `__weir_tvf_0`, `__weir_tvf_1`, ... over the script.
pub fn parse_script(sql: &str) -> Result<Vec<ScriptStatement>, DialectError> {
    let dialect = FlinkDialect;
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .map_err(|e| DialectError::Syntax {
            line: to_usize(e.location.line.max(1)),
            column: to_usize(e.location.column.max(1)),
            message: e.message,
        })?;
    let mut rewriter = TvfRewriter::default();
    let mut out = Vec::new();
    for tokens in split_statements(tokens) {
        let Some(first) = tokens.iter().find(|t| !is_trivia(t)) else {
            continue;
        };
        let line = to_usize(first.span.start.line);
        if let Some(hint) = find_hint(&tokens) {
            return Err(DialectError::Unsupported {
                construct: check::construct::HINT.into(),
                line: to_usize(hint.span.start.line),
            });
        }
        if let Some(t) = stmt::operator_chain_overflow(&tokens) {
            return Err(DialectError::Unsupported {
                construct: format!(
                    "expression with more than {} chained operators",
                    stmt::MAX_OPERATOR_CHAIN
                ),
                line: to_usize(t.span.start.line),
            });
        }
        let end = tokens
            .iter()
            .rev()
            .find(|t| !is_trivia(t))
            .map(|t| t.span.end)
            .unwrap_or(Location { line: 1, column: 1 });
        let mut tokens = tokens;
        rewriter.within = match_recognize::strip_within(&mut tokens)?.into();
        let kind = parse_statement(&dialect, tokens, line, end, &mut rewriter)?;
        out.push(ScriptStatement { line, kind });
    }
    Ok(out)
}

fn parse_statement(
    dialect: &FlinkDialect,
    tokens: Vec<TokenWithSpan>,
    line: usize,
    end: Location,
    rewriter: &mut TvfRewriter,
) -> Result<StatementKind, DialectError> {
    let words = leading_words(&tokens, 6);
    let word = |i: usize| words.get(i).map(String::as_str).unwrap_or("");
    if word(0) == "SET" {
        return parse_set(&tokens, end);
    }
    let mut st = Stmt::new(
        Parser::new(dialect).with_tokens_with_locations(tokens),
        line,
        end,
    );
    let create_object = if word(1) == "TEMPORARY" {
        word(2)
    } else {
        word(1)
    };
    match word(0) {
        "CREATE" if create_object == "TABLE" => Ok(StatementKind::CreateTable(
            ddl::parse_create_table(&mut st)?,
        )),
        "CREATE" if create_object == "VIEW" => parse_create_view(&mut st, rewriter),
        "INSERT" => parse_insert(&mut st, rewriter),
        "SELECT" | "WITH" | "VALUES" => {
            let (query, tvfs) = parse_query(&mut st, rewriter)?;
            Ok(StatementKind::Query { query, tvfs })
        }
        "" if st.p.peek_token_ref().token == Token::LParen => {
            let (query, tvfs) = parse_query(&mut st, rewriter)?;
            Ok(StatementKind::Query { query, tvfs })
        }
        "" => {
            Err(st.expected("a statement (CREATE TABLE, CREATE VIEW, INSERT INTO, SELECT or SET)"))
        }
        _ => Err(DialectError::Unsupported {
            construct: format!("{} statement", statement_kind(&words)),
            line,
        }),
    }
}

/// The first `n` unquoted words of a statement, upper-cased, stopping at the
/// first other token.
fn leading_words(tokens: &[TokenWithSpan], n: usize) -> Vec<String> {
    tokens
        .iter()
        .filter(|t| !is_trivia(t))
        .take(n)
        .map_while(|t| match &t.token {
            Token::Word(w) if w.quote_style.is_none() => Some(w.value.to_ascii_uppercase()),
            _ => None,
        })
        .collect()
}

/// A name for an unsupported statement: `DROP TABLE`, `EXPLAIN`, `STATEMENT SET`, ...
fn statement_kind(words: &[String]) -> String {
    let first = words.first().map(String::as_str).unwrap_or("");
    match first {
        "CREATE" | "DROP" | "ALTER" | "SHOW" => {
            let or_replace = words.get(1).map(String::as_str) == Some("OR")
                && words.get(2).map(String::as_str) == Some("REPLACE");
            let object = words
                .iter()
                .skip(if or_replace { 3 } else { 1 })
                .find(|w| !matches!(w.as_str(), "TEMPORARY" | "TEMP" | "SYSTEM"));
            let first = if or_replace {
                "CREATE OR REPLACE"
            } else {
                first
            };
            match object {
                Some(o) => format!("{first} {o}"),
                None => first.to_string(),
            }
        }
        "BEGIN" | "EXECUTE" if words.get(1).map(String::as_str) == Some("STATEMENT") => {
            "STATEMENT SET".to_string()
        }
        _ => first.to_string(),
    }
}

/// Parses a query up to the end of the statement, rewrites its window TVFs
/// and checks it.
fn parse_query(
    st: &mut Stmt,
    rewriter: &mut TvfRewriter,
) -> Result<(Box<Query>, Vec<WindowTvf>), DialectError> {
    let mut query = st.run(|p| p.parse_query())?;
    st.expect_end()?;
    let tvfs = rewriter.rewrite(&mut query, st.line)?;
    check_supported_at(&query, st.line)?;
    Ok((query, tvfs))
}

/// `INSERT INTO name query`.
fn parse_insert(st: &mut Stmt, rewriter: &mut TvfRewriter) -> Result<StatementKind, DialectError> {
    st.run(|p| p.expect_keyword_is(Keyword::INSERT))?;
    if st.peek_keyword_at(0, Keyword::OVERWRITE) {
        return Err(DialectError::Unsupported {
            construct: "INSERT OVERWRITE".into(),
            line: st.line,
        });
    }
    st.run(|p| p.expect_keyword_is(Keyword::INTO))?;
    let table = st.object_name()?;
    let here = to_usize(st.here().line);
    if st.p.peek_token_ref().token == Token::LParen
        && !matches!(
            st.p.peek_nth_token_ref(1).token,
            Token::Word(ref w) if w.keyword == Keyword::SELECT || w.keyword == Keyword::WITH
        )
    {
        return Err(DialectError::Unsupported {
            construct: "INSERT with a column list".into(),
            line: here,
        });
    }
    if st.peek_keyword_at(0, Keyword::PARTITION) {
        return Err(DialectError::Unsupported {
            construct: "INSERT ... PARTITION".into(),
            line: here,
        });
    }
    let (query, tvfs) = parse_query(st, rewriter)?;
    Ok(StatementKind::Insert { table, query, tvfs })
}

/// `CREATE [TEMPORARY] VIEW [IF NOT EXISTS] name [COMMENT '...'] AS query`.
fn parse_create_view(
    st: &mut Stmt,
    rewriter: &mut TvfRewriter,
) -> Result<StatementKind, DialectError> {
    st.run(|p| p.expect_keyword_is(Keyword::CREATE))?;
    let _ = st.p.parse_keyword(Keyword::TEMPORARY);
    st.run(|p| p.expect_keyword_is(Keyword::VIEW))?;
    let _ =
        st.p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = st.object_name()?;
    if st.p.peek_token_ref().token == Token::LParen {
        return Err(DialectError::Unsupported {
            construct: "CREATE VIEW with a column list".into(),
            line: to_usize(st.here().line),
        });
    }
    if st.p.parse_keyword(Keyword::COMMENT) {
        st.string_literal()?;
    }
    st.run(|p| p.expect_keyword_is(Keyword::AS))?;
    let (query, tvfs) = parse_query(st, rewriter)?;
    Ok(StatementKind::CreateView { name, query, tvfs })
}

/// `SET 'key' = 'value'`, or unquoted: `SET table.exec.state.ttl = 1 h`.
fn parse_set(tokens: &[TokenWithSpan], end: Location) -> Result<StatementKind, DialectError> {
    let syntax = |loc: Location, message: String| DialectError::Syntax {
        line: to_usize(if loc.line == 0 { end.line } else { loc.line }),
        column: to_usize(if loc.line == 0 {
            end.column
        } else {
            loc.column
        }),
        message,
    };
    let body: Vec<&TokenWithSpan> = tokens.iter().skip_while(|t| is_trivia(t)).skip(1).collect();
    let Some(eq) = body.iter().position(|t| t.token == Token::Eq) else {
        return Err(syntax(
            end,
            "Expected: SET 'key' = 'value', found: end of statement".into(),
        ));
    };
    let (key_tokens, value_tokens) = (&body[..eq], &body[eq + 1..]);
    let eq_loc = body[eq].span.start;
    let key = set_text(key_tokens)
        .map_err(|t| syntax(t.span.start, format!("Expected: '=', found: {}", t.token)))?;
    if key.is_empty() {
        return Err(syntax(eq_loc, "Expected: a key before '='".into()));
    }
    let value = set_text(value_tokens).map_err(|t| {
        syntax(
            t.span.start,
            format!("Expected: end of statement, found: {}", t.token),
        )
    })?;
    if value.is_empty() {
        return Err(syntax(end, "Expected: a value after '='".into()));
    }
    Ok(StatementKind::Set { key, value })
}

/// The text of a SET key or value: a quoted string's content, or the
/// unquoted tokens as written. Errors with the first extra token after a
/// quoted string.
fn set_text<'t>(tokens: &[&'t TokenWithSpan]) -> Result<String, &'t TokenWithSpan> {
    let significant: Vec<&&TokenWithSpan> = tokens.iter().filter(|t| !is_trivia(t)).collect();
    match significant.as_slice() {
        [] => Ok(String::new()),
        [t] => match &t.token {
            Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Ok(s.clone()),
            other => Ok(other.to_string()),
        },
        [first, second, ..] => {
            if matches!(
                first.token,
                Token::SingleQuotedString(_) | Token::DoubleQuotedString(_)
            ) {
                return Err(second);
            }
            let text: String = tokens
                .iter()
                .map(|t| match &t.token {
                    Token::Whitespace(_) => " ".to_string(),
                    other => other.to_string(),
                })
                .collect();
            Ok(text.split_whitespace().collect::<Vec<_>>().join(" "))
        }
    }
}
