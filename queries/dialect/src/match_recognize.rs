//! `MATCH_RECOGNIZE`: Flink's `WITHIN INTERVAL …` clause (which sqlparser
//! does not know) is cut out of the token stream before parsing, and the
//! parsed clause is checked against the subset Weir runs.

use sqlparser::ast::{
    AfterMatchSkip, Expr, MatchRecognizePattern, MatchRecognizeSymbol, RepetitionQuantifier,
    RowsPerMatch, TableFactor,
};
use sqlparser::dialect::GenericDialect;
use sqlparser::keywords::Keyword;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, TokenWithSpan, Whitespace};

use crate::stmt::{is_trivia, to_usize};
use crate::tvf::interval_ms;
use crate::{DialectError, MatchRecognize, PatternTerm, Quantifier};

fn is_word(t: &TokenWithSpan, kw: Keyword) -> bool {
    matches!(&t.token, Token::Word(w) if w.keyword == kw)
}

fn is_named(t: &TokenWithSpan, name: &str) -> bool {
    matches!(&t.token, Token::Word(w) if w.value.eq_ignore_ascii_case(name))
}

/// Finds every `MATCH_RECOGNIZE (… PATTERN (…) WITHIN <interval> …)` of a
/// statement, replaces the `WITHIN <interval>` tokens by spaces (so spans
/// and lines stay as written) and returns, per `MATCH_RECOGNIZE` in text
/// order, the `WITHIN` duration in milliseconds, if any.
pub(crate) fn strip_within(tokens: &mut [TokenWithSpan]) -> Result<Vec<Option<i64>>, DialectError> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        if !is_named(&tokens[i], "MATCH_RECOGNIZE") {
            i += 1;
            continue;
        }
        let mr_line = to_usize(tokens[i].span.start.line);
        // Find PATTERN, then its balanced parentheses.
        let mut j = i + 1;
        let mut depth = 0usize;
        let mut pattern_at = None;
        while j < tokens.len() {
            match &tokens[j].token {
                Token::LParen => depth += 1,
                Token::RParen => {
                    if depth <= 1 {
                        break;
                    }
                    depth -= 1;
                }
                _ if depth == 1 && is_word(&tokens[j], Keyword::PATTERN) => {
                    pattern_at = Some(j);
                    break;
                }
                _ => {}
            }
            j += 1;
        }
        let Some(p) = pattern_at else {
            out.push(None);
            i += 1;
            continue;
        };
        let mut k = p + 1;
        while k < tokens.len() && is_trivia(&tokens[k]) {
            k += 1;
        }
        let mut pdepth = 0usize;
        while k < tokens.len() {
            match tokens[k].token {
                Token::LParen => pdepth += 1,
                Token::RParen => {
                    pdepth = pdepth.saturating_sub(1);
                    if pdepth == 0 {
                        break;
                    }
                }
                _ => {}
            }
            k += 1;
        }
        let mut w = k + 1;
        while w < tokens.len() && is_trivia(&tokens[w]) {
            w += 1;
        }
        if w < tokens.len() && is_word(&tokens[w], Keyword::WITHIN) {
            let line = to_usize(tokens[w].span.start.line);
            // The interval runs up to DEFINE (Flink: WITHIN comes right
            // before DEFINE) or the closing parenthesis.
            let mut e = w + 1;
            while e < tokens.len()
                && !is_word(&tokens[e], Keyword::DEFINE)
                && tokens[e].token != Token::RParen
            {
                e += 1;
            }
            let interval: Vec<TokenWithSpan> = tokens[w + 1..e].to_vec();
            let dialect = GenericDialect {};
            let expr: Expr = Parser::new(&dialect)
                .with_tokens_with_locations(interval)
                .parse_expr()
                .map_err(|err| DialectError::Invalid {
                    line,
                    message: format!("MATCH_RECOGNIZE WITHIN: {err}"),
                })?;
            let ms = interval_ms(&expr).map_err(|m| DialectError::Invalid {
                line,
                message: format!("MATCH_RECOGNIZE WITHIN: {m}"),
            })?;
            if ms <= 0 {
                return Err(DialectError::Invalid {
                    line,
                    message: format!("MATCH_RECOGNIZE WITHIN must be positive, got {ms} ms"),
                });
            }
            for t in &mut tokens[w..e] {
                t.token = Token::Whitespace(Whitespace::Space);
            }
            out.push(Some(ms));
        } else {
            let _ = mr_line;
            out.push(None);
        }
        i = k.max(i + 1);
    }
    Ok(out)
}

fn unsupported(construct: &str, line: usize) -> DialectError {
    DialectError::Unsupported {
        construct: construct.into(),
        line,
    }
}

fn invalid(line: usize, message: String) -> DialectError {
    DialectError::Invalid { line, message }
}

/// Converts a parsed `MATCH_RECOGNIZE` table factor into Weir's form,
/// rejecting what Flink's subset (and Weir) does not run. Returns the
/// clause and the name of its input table or view.
pub(crate) fn convert(
    tf: &TableFactor,
    within_ms: Option<i64>,
    line: usize,
) -> Result<(MatchRecognize, String), DialectError> {
    let TableFactor::MatchRecognize {
        table,
        partition_by,
        order_by,
        measures,
        rows_per_match,
        after_match_skip,
        pattern,
        symbols,
        ..
    } = tf
    else {
        return Err(invalid(line, "not a MATCH_RECOGNIZE clause".into()));
    };
    let input = match table.as_ref() {
        TableFactor::Table {
            name, args: None, ..
        } => name
            .0
            .iter()
            .filter_map(|p| p.as_ident().map(|i| i.value.clone()))
            .collect::<Vec<_>>()
            .join("."),
        other => {
            return Err(invalid(
                line,
                format!(
                    "the input of MATCH_RECOGNIZE must be a table or view name (define a view for {other})"
                ),
            ))
        }
    };
    match rows_per_match {
        None | Some(RowsPerMatch::OneRow) => {}
        Some(RowsPerMatch::AllRows(_)) => {
            return Err(unsupported("MATCH_RECOGNIZE ALL ROWS PER MATCH", line))
        }
    }
    if order_by.is_empty() {
        return Err(invalid(
            line,
            "MATCH_RECOGNIZE needs ORDER BY <time attribute> (Flink's rule)".into(),
        ));
    }
    // Flink's actual default (Calcite fills it in), not the SQL standard's
    // `PAST LAST ROW` that Flink's documentation states.
    let after_match_skip = after_match_skip
        .clone()
        .unwrap_or(AfterMatchSkip::ToNextRow);
    let pattern = convert_pattern(pattern, line)?;
    Ok((
        MatchRecognize {
            partition_by: partition_by.clone(),
            order_by: order_by.clone(),
            measures: measures.clone(),
            after_match_skip,
            pattern,
            define: symbols.clone(),
            within_ms,
        },
        input,
    ))
}

/// Flattens the pattern into a sequence of quantified variables or groups.
fn convert_pattern(p: &MatchRecognizePattern, line: usize) -> Result<PatternTerm, DialectError> {
    Ok(match p {
        MatchRecognizePattern::Symbol(MatchRecognizeSymbol::Named(id)) => {
            PatternTerm::Var(id.value.clone())
        }
        MatchRecognizePattern::Symbol(_) => {
            return Err(unsupported("MATCH_RECOGNIZE anchors (^, $)", line))
        }
        MatchRecognizePattern::Exclude(_) => {
            return Err(unsupported("MATCH_RECOGNIZE exclusion {- -}", line))
        }
        MatchRecognizePattern::Permute(_) => {
            return Err(unsupported("MATCH_RECOGNIZE PERMUTE", line))
        }
        MatchRecognizePattern::Alternation(_) => {
            return Err(unsupported("MATCH_RECOGNIZE alternation (|)", line))
        }
        MatchRecognizePattern::Concat(items) => PatternTerm::Concat(
            items
                .iter()
                .map(|i| convert_pattern(i, line))
                .collect::<Result<_, _>>()?,
        ),
        MatchRecognizePattern::Group(inner) => {
            PatternTerm::Group(Box::new(convert_pattern(inner, line)?))
        }
        // `A+?`: sqlparser reads a reluctant quantifier as a `?` applied to
        // the quantified term (a written `(A+)?` is a Group inside).
        MatchRecognizePattern::Repetition(inner, RepetitionQuantifier::AtMostOne)
            if matches!(inner.as_ref(), MatchRecognizePattern::Repetition(..)) =>
        {
            let MatchRecognizePattern::Repetition(term, q) = inner.as_ref() else {
                return Err(invalid(line, "malformed pattern".into()));
            };
            PatternTerm::Quantified {
                term: Box::new(convert_pattern(term, line)?),
                quantifier: quantifier(q, false),
            }
        }
        MatchRecognizePattern::Repetition(term, q) => PatternTerm::Quantified {
            term: Box::new(convert_pattern(term, line)?),
            quantifier: quantifier(q, true),
        },
    })
}

fn quantifier(q: &RepetitionQuantifier, greedy: bool) -> Quantifier {
    let (min, max) = match q {
        RepetitionQuantifier::ZeroOrMore => (0, None),
        RepetitionQuantifier::OneOrMore => (1, None),
        RepetitionQuantifier::AtMostOne => (0, Some(1)),
        RepetitionQuantifier::Exactly(n) => (*n, Some(*n)),
        RepetitionQuantifier::AtLeast(n) => (*n, None),
        RepetitionQuantifier::AtMost(n) => (0, Some(*n)),
        RepetitionQuantifier::Range(a, b) => (*a, Some(*b)),
    };
    Quantifier { min, max, greedy }
}
