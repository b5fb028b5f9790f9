//! Flink's `CREATE TABLE`, parsed over sqlparser's primitives.

use sqlparser::ast::{DataType, Ident, ObjectName};
use sqlparser::keywords::Keyword;
use sqlparser::parser::IsOptional;
use sqlparser::tokenizer::Token;

use crate::stmt::{to_usize, Stmt};
use crate::{ColumnDef, CreateTable, DialectError, WatermarkDef};

/// Parses `CREATE [TEMPORARY] TABLE [IF NOT EXISTS] name ( elements ) [COMMENT '...'] [WITH (...)]`.
pub(crate) fn parse_create_table(st: &mut Stmt) -> Result<CreateTable, DialectError> {
    st.run(|p| p.expect_keyword_is(Keyword::CREATE))?;
    let _ = st.p.parse_keyword(Keyword::TEMPORARY);
    st.run(|p| p.expect_keyword_is(Keyword::TABLE))?;
    let _ =
        st.p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
    let name = st.object_name()?;
    reject_table_clauses(st)?;
    st.run(|p| p.expect_token(&Token::LParen))?;

    let mut table = CreateTable {
        name,
        columns: Vec::new(),
        watermark: None,
        primary_key: Vec::new(),
        options: Vec::new(),
        line: st.line,
    };
    let mut pk_line: Option<usize> = None;
    loop {
        parse_element(st, &mut table, &mut pk_line)?;
        if st.p.consume_token(&Token::Comma) {
            continue;
        }
        if st.p.consume_token(&Token::RParen) {
            break;
        }
        return Err(st.expected("',' or ')'"));
    }

    loop {
        if st.p.parse_keyword(Keyword::COMMENT) {
            st.string_literal()?;
        } else if st.p.parse_keyword(Keyword::WITH) {
            if !table.options.is_empty() {
                return Err(DialectError::Invalid {
                    line: st.line,
                    message: "WITH options given twice".into(),
                });
            }
            parse_options(st, &mut table.options)?;
        } else {
            reject_table_clauses(st)?;
            break;
        }
    }
    st.expect_end()?;
    validate(&mut table, pk_line)?;
    Ok(table)
}

/// Flink `CREATE TABLE` clauses that Weir does not support.
fn reject_table_clauses(st: &mut Stmt) -> Result<(), DialectError> {
    let line = to_usize(st.here().line);
    let construct = if st.peek_keyword_at(0, Keyword::AS) {
        "CREATE TABLE AS SELECT"
    } else if st.peek_keyword_at(0, Keyword::LIKE) {
        "CREATE TABLE ... LIKE"
    } else if st.peek_keyword_at(0, Keyword::PARTITIONED) {
        "PARTITIONED BY"
    } else if st.peek_word(0, "DISTRIBUTED") {
        "DISTRIBUTED BY"
    } else {
        return Ok(());
    };
    Err(DialectError::Unsupported {
        construct: construct.into(),
        line,
    })
}

/// One element of the parenthesized list: a column, `WATERMARK FOR`, or a
/// table-level `PRIMARY KEY`.
fn parse_element(
    st: &mut Stmt,
    table: &mut CreateTable,
    pk_line: &mut Option<usize>,
) -> Result<(), DialectError> {
    let line = to_usize(st.here().line);

    if st.peek_word(0, "WATERMARK") && st.peek_keyword_at(1, Keyword::FOR) {
        st.p.next_token();
        st.p.next_token();
        let column = st.ident()?.value;
        st.run(|p| p.expect_keyword_is(Keyword::AS))?;
        let expr = st.run(|p| p.parse_expr())?;
        if table.watermark.is_some() {
            return Err(DialectError::Invalid {
                line,
                message: "a table can have only one WATERMARK definition".into(),
            });
        }
        table.watermark = Some(WatermarkDef { column, expr, line });
        return Ok(());
    }

    let constraint = st.p.parse_keyword(Keyword::CONSTRAINT);
    if constraint {
        st.ident()?;
    }
    if constraint || st.peek_keyword_at(0, Keyword::PRIMARY) {
        st.run(|p| p.expect_keywords(&[Keyword::PRIMARY, Keyword::KEY]))?;
        let cols = st.run(|p| p.parse_parenthesized_column_list(IsOptional::Mandatory, false))?;
        expect_not_enforced(st, line)?;
        set_primary_key(
            table,
            pk_line,
            cols.into_iter().map(|c| c.value).collect(),
            line,
        )?;
        return Ok(());
    }

    let name = st.ident()?.value;
    if st.p.parse_keyword(Keyword::AS) {
        let expr = st.run(|p| p.parse_expr())?;
        if st.p.parse_keyword(Keyword::COMMENT) {
            st.string_literal()?;
        }
        table.columns.push(ColumnDef::Computed { name, expr, line });
        return Ok(());
    }

    let data_type = parse_type(st)?;
    let mut nullable = true;
    let mut metadata: Option<(Option<String>, bool)> = None;
    loop {
        if st.parse_word("METADATA") {
            if metadata.is_some() {
                return Err(st.expected("',' or ')'"));
            }
            let key = if st.p.parse_keyword(Keyword::FROM) {
                Some(st.string_literal()?)
            } else {
                None
            };
            let is_virtual = st.parse_word("VIRTUAL");
            metadata = Some((key, is_virtual));
        } else if st.p.parse_keywords(&[Keyword::NOT, Keyword::NULL]) {
            nullable = false;
        } else if st.p.parse_keyword(Keyword::NULL) {
            nullable = true;
        } else if st.peek_keyword_at(0, Keyword::PRIMARY) {
            let pk_at = to_usize(st.here().line);
            st.run(|p| p.expect_keywords(&[Keyword::PRIMARY, Keyword::KEY]))?;
            expect_not_enforced(st, pk_at)?;
            set_primary_key(table, pk_line, vec![name.clone()], pk_at)?;
        } else if st.p.parse_keyword(Keyword::COMMENT) {
            st.string_literal()?;
        } else {
            break;
        }
    }
    table.columns.push(match metadata {
        Some((key, is_virtual)) => ColumnDef::Metadata {
            name,
            data_type,
            key,
            is_virtual,
            line,
        },
        None => ColumnDef::Physical {
            name,
            data_type,
            nullable,
            line,
        },
    });
    Ok(())
}

/// A Flink column type. `TIMESTAMP(p) WITH LOCAL TIME ZONE` becomes the same
/// `DataType` as `TIMESTAMP_LTZ(p)`.
fn parse_type(st: &mut Stmt) -> Result<DataType, DialectError> {
    let ltz = st.run(|p| {
        p.maybe_parse(|p| {
            p.expect_keyword_is(Keyword::TIMESTAMP)?;
            let precision = p.parse_optional_precision()?;
            p.expect_keywords(&[Keyword::WITH, Keyword::LOCAL, Keyword::TIME, Keyword::ZONE])?;
            Ok(precision)
        })
    })?;
    if let Some(precision) = ltz {
        return Ok(timestamp_ltz(precision));
    }
    if !matches!(st.p.peek_token_ref().token, Token::Word(_)) {
        return Err(st.expected("a data type"));
    }
    st.run(|p| p.parse_data_type())
}

/// The `DataType` that `TIMESTAMP_LTZ(p)` parses to.
pub(crate) fn timestamp_ltz(precision: Option<u64>) -> DataType {
    DataType::Custom(
        ObjectName::from(vec![Ident::new("TIMESTAMP_LTZ")]),
        precision.map(|p| vec![p.to_string()]).unwrap_or_default(),
    )
}

fn expect_not_enforced(st: &mut Stmt, line: usize) -> Result<(), DialectError> {
    if st.p.parse_keyword(Keyword::NOT) && st.parse_word("ENFORCED") {
        Ok(())
    } else {
        Err(DialectError::Invalid {
            line,
            message: "PRIMARY KEY must be declared NOT ENFORCED (Flink does not own the data, \
                      so the key is not checked)"
                .into(),
        })
    }
}

fn set_primary_key(
    table: &mut CreateTable,
    pk_line: &mut Option<usize>,
    cols: Vec<String>,
    line: usize,
) -> Result<(), DialectError> {
    if pk_line.is_some() {
        return Err(DialectError::Invalid {
            line,
            message: "a table can have only one PRIMARY KEY".into(),
        });
    }
    *pk_line = Some(line);
    table.primary_key = cols;
    Ok(())
}

fn parse_options(st: &mut Stmt, options: &mut Vec<(String, String)>) -> Result<(), DialectError> {
    st.run(|p| p.expect_token(&Token::LParen))?;
    if st.p.consume_token(&Token::RParen) {
        return Ok(());
    }
    loop {
        let line = to_usize(st.here().line);
        let key = st.string_literal()?;
        st.run(|p| p.expect_token(&Token::Eq))?;
        let value = st.string_literal()?;
        if options.iter().any(|(k, _)| *k == key) {
            return Err(DialectError::Invalid {
                line,
                message: format!("option '{key}' is given twice"),
            });
        }
        options.push((key, value));
        if st.p.consume_token(&Token::Comma) {
            continue;
        }
        if st.p.consume_token(&Token::RParen) {
            return Ok(());
        }
        return Err(st.expected("',' or ')'"));
    }
}

/// Flink's schema rules: unique column names, the watermark's column and the
/// primary key's columns exist, the key is on physical columns (which become
/// NOT NULL, as in Flink).
fn validate(table: &mut CreateTable, pk_line: Option<usize>) -> Result<(), DialectError> {
    for (i, c) in table.columns.iter().enumerate() {
        if table.columns[..i].iter().any(|o| o.name() == c.name()) {
            return Err(DialectError::Invalid {
                line: c.line(),
                message: format!(
                    "column `{}` is defined twice in table {}",
                    c.name(),
                    table.name
                ),
            });
        }
    }
    if let Some(wm) = &table.watermark {
        if !table.columns.iter().any(|c| c.name() == wm.column) {
            return Err(DialectError::Invalid {
                line: wm.line,
                message: format!(
                    "WATERMARK FOR {}: no such column in table {}",
                    wm.column, table.name
                ),
            });
        }
    }
    let line = pk_line.unwrap_or(table.line);
    for (i, k) in table.primary_key.iter().enumerate() {
        if table.primary_key[..i].contains(k) {
            return Err(DialectError::Invalid {
                line,
                message: format!("PRIMARY KEY lists column `{k}` twice"),
            });
        }
        match table.columns.iter_mut().find(|c| c.name() == k) {
            None => {
                return Err(DialectError::Invalid {
                    line,
                    message: format!("PRIMARY KEY column `{k}` is not a column of table {}", table.name),
                })
            }
            Some(ColumnDef::Physical { nullable, .. }) => *nullable = false,
            Some(_) => {
                return Err(DialectError::Invalid {
                    line,
                    message: format!(
                        "PRIMARY KEY column `{k}` must be a physical column, not a computed or metadata column"
                    ),
                })
            }
        }
    }
    Ok(())
}
