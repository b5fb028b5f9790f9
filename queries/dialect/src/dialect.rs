//! [`FlinkDialect`]: sqlparser's `GenericDialect` plus Flink's `TABLE name
//! [PARTITION BY ...]` argument form for window table-valued functions.

use std::any::TypeId;

use sqlparser::ast::{
    Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList, FunctionArguments, Ident,
    ObjectName,
};
use sqlparser::dialect::{Dialect, GenericDialect};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Span, Token};

/// Name of the private marker function that encodes a `TABLE name [PARTITION BY a, b]`
/// argument: the first argument is the table name, the rest are the partition keys.
pub(crate) const TABLE_MARKER: &str = "__weir_table";

/// The Flink SQL dialect: behaves exactly like sqlparser's [`GenericDialect`]
/// (backtick and double-quote identifiers, `=>` named arguments, ...) except that
///
/// * inside an expression, `TABLE name` and `TABLE name PARTITION BY a, b` (or
///   `PARTITION BY (a, b)`) parse, as the data argument of a window table-valued
///   function (`TUMBLE(TABLE bid, DESCRIPTOR(ts), INTERVAL '10' SECOND)`);
/// * MySQL-style `/*! ... */` comments are plain comments, not executable hints.
///
/// It reports [`GenericDialect`]'s type id from [`Dialect::dialect`], so every
/// `GenericDialect`-specific branch of the parser applies to it too.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlinkDialect;

/// Delegates boolean feature flags to `GenericDialect`.
macro_rules! delegate_flags {
    ($($name:ident),* $(,)?) => {
        $(
            fn $name(&self) -> bool {
                GenericDialect.$name()
            }
        )*
    };
}

impl Dialect for FlinkDialect {
    fn dialect(&self) -> TypeId {
        TypeId::of::<GenericDialect>()
    }

    fn is_delimited_identifier_start(&self, ch: char) -> bool {
        GenericDialect.is_delimited_identifier_start(ch)
    }

    fn is_identifier_start(&self, ch: char) -> bool {
        GenericDialect.is_identifier_start(ch)
    }

    fn is_identifier_part(&self, ch: char) -> bool {
        GenericDialect.is_identifier_part(ch)
    }

    fn supports_multiline_comment_hints(&self) -> bool {
        false
    }

    fn supports_named_fn_args_with_rarrow_operator(&self) -> bool {
        true
    }

    fn parse_prefix(&self, parser: &mut Parser) -> Option<Result<Expr, ParserError>> {
        let is_table = matches!(
            &parser.peek_token_ref().token,
            Token::Word(w) if w.keyword == Keyword::TABLE && w.quote_style.is_none()
        );
        if !is_table || !matches!(parser.peek_nth_token_ref(1).token, Token::Word(_)) {
            return None;
        }
        let start = parser.next_token().span;
        Some(parse_table_argument(parser, start))
    }

    delegate_flags!(
        supports_unicode_string_literal,
        supports_partition_by_after_order_by,
        supports_array_join_syntax,
        supports_group_by_expr,
        supports_group_by_with_modifier,
        supports_left_associative_joins_without_parens,
        supports_connect_by,
        supports_match_recognize,
        supports_pipe_operator,
        supports_start_transaction_modifier,
        supports_window_function_null_treatment_arg,
        supports_dictionary_syntax,
        supports_window_clause_named_window_reference,
        supports_parenthesized_set_variables,
        supports_select_wildcard_except,
        support_map_literal_syntax,
        allow_extract_custom,
        allow_extract_single_quotes,
        supports_extract_comma_syntax,
        supports_create_view_comment_syntax,
        supports_parens_around_table_factor,
        supports_values_as_table_factor,
        supports_create_index_with_clause,
        supports_explain_with_utility_options,
        supports_limit_comma,
        supports_update_order_by,
        supports_from_first_select,
        supports_projection_trailing_commas,
        supports_asc_desc_in_column_definition,
        supports_try_convert,
        supports_bitwise_shift_operators,
        supports_comment_on,
        supports_load_extension,
        supports_named_fn_args_with_assignment_operator,
        supports_struct_literal,
        supports_empty_projections,
        supports_nested_comments,
        supports_user_host_grantee,
        supports_string_escape_constant,
        supports_array_typedef_with_brackets,
        supports_match_against,
        supports_set_names,
        supports_comma_separated_set_assignments,
        supports_filter_during_aggregation,
        supports_select_wildcard_exclude,
        supports_data_type_signed_suffix,
        supports_interval_options,
        supports_quote_delimited_string,
        supports_select_wildcard_replace,
        supports_select_wildcard_ilike,
        supports_select_wildcard_rename,
        supports_optimize_table,
        supports_install,
        supports_detach,
        supports_prewhere,
        supports_with_fill,
        supports_limit_by,
        supports_interpolate,
        supports_settings,
        supports_select_format,
        supports_comment_optimizer_hint,
        supports_constraint_keyword_without_name,
        supports_key_column_option,
        supports_comma_separated_trim,
        supports_cte_without_as,
        supports_select_item_multi_column_alias,
        supports_xml_expressions,
    );
}

/// Parses the rest of `TABLE name [PARTITION BY a, b | PARTITION BY (a, b)]`
/// (the `TABLE` keyword is already consumed) into the marker function.
fn parse_table_argument(parser: &mut Parser, start: Span) -> Result<Expr, ParserError> {
    let name = parser.parse_object_name(false)?;
    let mut idents: Vec<Ident> = Vec::with_capacity(name.0.len());
    for part in &name.0 {
        match part.as_ident() {
            Some(ident) => idents.push(ident.clone()),
            None => {
                return Err(ParserError::ParserError(format!(
                    "Expected: a table name after TABLE, found: {name}{}",
                    start.start
                )))
            }
        }
    }
    let table = match idents.len() {
        1 => Expr::Identifier(idents.remove(0)),
        _ => Expr::CompoundIdentifier(idents),
    };
    let mut args = vec![table];
    if parser.parse_keywords(&[Keyword::PARTITION, Keyword::BY]) {
        if parser.consume_token(&Token::LParen) {
            let keys = parser.parse_comma_separated(Parser::parse_identifier)?;
            parser.expect_token(&Token::RParen)?;
            args.extend(keys.into_iter().map(Expr::Identifier));
        } else {
            loop {
                args.push(Expr::Identifier(parser.parse_identifier()?));
                // `PARTITION BY a, b, DESCRIPTOR(ts), ...`: a comma continues the key
                // list only when it is followed by a plain name that ends there.
                let continues = parser.peek_token_ref().token == Token::Comma
                    && matches!(
                        &parser.peek_nth_token_ref(1).token,
                        Token::Word(w) if !w.value.eq_ignore_ascii_case("DESCRIPTOR")
                    )
                    && matches!(
                        parser.peek_nth_token_ref(2).token,
                        Token::Comma | Token::RParen
                    );
                if !continues {
                    break;
                }
                parser.next_token();
            }
        }
    }
    Ok(Expr::Function(Function {
        name: ObjectName::from(vec![Ident::with_span(start, TABLE_MARKER)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    }))
}

/// If `expr` is the `TABLE name [PARTITION BY ...]` marker, returns the table
/// name parts and the partition keys.
pub(crate) fn table_marker(expr: &Expr) -> Option<(Vec<&Ident>, Vec<&Ident>)> {
    let Expr::Function(f) = expr else {
        return None;
    };
    if !is_marker_name(&f.name) {
        return None;
    }
    let FunctionArguments::List(list) = &f.args else {
        return None;
    };
    let mut exprs = list.args.iter().map(|a| match a {
        FunctionArg::Unnamed(FunctionArgExpr::Expr(e)) => Some(e),
        _ => None,
    });
    let table = match exprs.next()?? {
        Expr::Identifier(i) => vec![i],
        Expr::CompoundIdentifier(parts) => parts.iter().collect(),
        _ => return None,
    };
    let mut keys = Vec::new();
    for e in exprs {
        match e? {
            Expr::Identifier(i) => keys.push(i),
            _ => return None,
        }
    }
    Some((table, keys))
}

/// True if `name` is the marker function's name.
pub(crate) fn is_marker_name(name: &ObjectName) -> bool {
    matches!(name.0.as_slice(), [part] if part.as_ident().is_some_and(|i| i.value == TABLE_MARKER))
}
