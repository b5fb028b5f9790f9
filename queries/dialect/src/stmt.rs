//! Script splitting and a small cursor over one statement's tokens.

use sqlparser::ast::{Ident, ObjectName};
use sqlparser::keywords::Keyword;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::{Location, Token, TokenWithSpan, Whitespace};

use crate::DialectError;

/// Converts a 1-based line or column from sqlparser to `usize`.
pub(crate) fn to_usize(v: u64) -> usize {
    usize::try_from(v).unwrap_or(usize::MAX)
}

/// True for whitespace and comments.
pub(crate) fn is_trivia(t: &TokenWithSpan) -> bool {
    matches!(t.token, Token::Whitespace(_))
}

/// Splits a token stream on `;` tokens (semicolons inside strings, quoted
/// identifiers and comments are not `;` tokens). Statements made only of
/// whitespace and comments are dropped.
pub(crate) fn split_statements(tokens: Vec<TokenWithSpan>) -> Vec<Vec<TokenWithSpan>> {
    let mut out = Vec::new();
    let mut current = Vec::new();
    for t in tokens {
        match t.token {
            Token::SemiColon => {
                if current.iter().any(|t| !is_trivia(t)) {
                    out.push(std::mem::take(&mut current));
                } else {
                    current.clear();
                }
            }
            Token::EOF => {}
            _ => current.push(t),
        }
    }
    if current.iter().any(|t| !is_trivia(t)) {
        out.push(current);
    }
    out
}

/// The first `/*+ ... */` hint comment among `tokens`, if any.
pub(crate) fn find_hint(tokens: &[TokenWithSpan]) -> Option<&TokenWithSpan> {
    tokens.iter().find(|t| {
        matches!(&t.token, Token::Whitespace(Whitespace::MultiLineComment(c)) if c.starts_with('+'))
    })
}

/// Most binary operators allowed in a chain (summed over the open
/// parentheses). sqlparser builds `a + b + c ...` as a left-deep tree, and
/// its `Drop`, `Display` and `Spanned` recurse without a stack guard.
pub(crate) const MAX_OPERATOR_CHAIN: usize = 1000;

/// The token where a statement's operator chain exceeds
/// [`MAX_OPERATOR_CHAIN`], if it does.
pub(crate) fn operator_chain_overflow(tokens: &[TokenWithSpan]) -> Option<&TokenWithSpan> {
    // Operators of the current comma-separated item, per open parenthesis.
    let mut stack: Vec<usize> = vec![0];
    let mut total = 0usize;
    for t in tokens {
        match &t.token {
            Token::LParen | Token::LBracket | Token::LBrace => stack.push(0),
            Token::RParen | Token::RBracket | Token::RBrace if stack.len() > 1 => {
                total -= stack.pop().unwrap_or(0);
            }
            tok if tok == &Token::Comma || is_clause_keyword(tok) => {
                if let Some(last) = stack.last_mut() {
                    total -= *last;
                    *last = 0;
                }
            }
            tok if is_operator(tok) => {
                if let Some(last) = stack.last_mut() {
                    *last += 1;
                    total += 1;
                }
                if total + stack.len() > MAX_OPERATOR_CHAIN {
                    return Some(t);
                }
            }
            _ => {}
        }
    }
    None
}

/// Keywords that end an expression: the operator count starts again after them.
fn is_clause_keyword(token: &Token) -> bool {
    matches!(
        token,
        Token::Word(w) if w.quote_style.is_none() && matches!(
            w.keyword,
            Keyword::SELECT
                | Keyword::FROM
                | Keyword::WHERE
                | Keyword::GROUP
                | Keyword::HAVING
                | Keyword::ORDER
                | Keyword::LIMIT
                | Keyword::OFFSET
                | Keyword::UNION
                | Keyword::INTERSECT
                | Keyword::EXCEPT
                | Keyword::WINDOW
                | Keyword::QUALIFY
                | Keyword::ON
        )
    )
}

fn is_operator(token: &Token) -> bool {
    match token {
        Token::Word(w) => {
            w.quote_style.is_none()
                && matches!(
                    w.keyword,
                    Keyword::AND
                        | Keyword::OR
                        | Keyword::XOR
                        | Keyword::IS
                        | Keyword::LIKE
                        | Keyword::ILIKE
                        | Keyword::SIMILAR
                        | Keyword::BETWEEN
                        | Keyword::IN
                        | Keyword::COLLATE
                        | Keyword::REGEXP
                        | Keyword::RLIKE
                        | Keyword::DIV
                        | Keyword::AT
                )
        }
        Token::Plus
        | Token::Minus
        | Token::Mul
        | Token::Div
        | Token::Mod
        | Token::DuckIntDiv
        | Token::StringConcat
        | Token::Eq
        | Token::DoubleEq
        | Token::Neq
        | Token::Lt
        | Token::Gt
        | Token::LtEq
        | Token::GtEq
        | Token::Spaceship
        | Token::Caret
        | Token::Ampersand
        | Token::Pipe
        | Token::ShiftLeft
        | Token::ShiftRight
        | Token::DoubleColon
        | Token::Arrow
        | Token::LongArrow
        | Token::HashArrow
        | Token::HashLongArrow
        | Token::Colon
        | Token::Period
        | Token::Tilde
        | Token::ExclamationMark => true,
        _ => false,
    }
}

/// One statement being parsed: a sqlparser [`Parser`] over its tokens (with
/// their script-wide locations), the statement's start line and the location
/// just after its last token.
pub(crate) struct Stmt<'a> {
    pub(crate) p: Parser<'a>,
    pub(crate) line: usize,
    end: Location,
}

impl<'a> Stmt<'a> {
    pub(crate) fn new(p: Parser<'a>, line: usize, end: Location) -> Self {
        Stmt { p, line, end }
    }

    /// Runs a sqlparser primitive, turning its error into a located syntax error.
    pub(crate) fn run<T>(
        &mut self,
        f: impl FnOnce(&mut Parser<'a>) -> Result<T, ParserError>,
    ) -> Result<T, DialectError> {
        let r = f(&mut self.p);
        r.map_err(|e| self.syntax_from(e))
    }

    /// Where the parser is: the next token's start, or the statement end.
    pub(crate) fn here(&self) -> Location {
        let start = self.p.peek_token_ref().span.start;
        if start.line == 0 {
            self.end
        } else {
            start
        }
    }

    /// A syntax error at `loc`.
    pub(crate) fn syntax_at(&self, loc: Location, message: impl Into<String>) -> DialectError {
        let loc = if loc.line == 0 { self.here() } else { loc };
        DialectError::Syntax {
            line: to_usize(loc.line),
            column: to_usize(loc.column),
            message: message.into(),
        }
    }

    /// A syntax error at the next token: "expected X, found: Y".
    pub(crate) fn expected(&self, what: &str) -> DialectError {
        let found = self.p.peek_token_ref();
        let found_text = match found.token {
            Token::EOF => "end of statement".to_string(),
            ref t => t.to_string(),
        };
        self.syntax_at(
            found.span.start,
            format!("Expected: {what}, found: {found_text}"),
        )
    }

    /// Converts a sqlparser error, recovering the location from its message.
    pub(crate) fn syntax_from(&self, e: ParserError) -> DialectError {
        match e {
            ParserError::ParserError(msg) | ParserError::TokenizerError(msg) => {
                let (message, loc) = split_location(&msg);
                let message = message.replace("found: EOF", "found: end of statement");
                self.syntax_at(loc.unwrap_or_else(|| self.here()), message)
            }
            ParserError::RecursionLimitExceeded => {
                self.syntax_at(self.here(), "statement is nested too deeply")
            }
        }
    }

    /// Requires that the statement has no more tokens.
    pub(crate) fn expect_end(&mut self) -> Result<(), DialectError> {
        if self.p.peek_token_ref().token == Token::EOF {
            Ok(())
        } else {
            Err(self.expected("end of statement"))
        }
    }

    /// True if the `n`th next token is the unquoted word `word` (any case).
    pub(crate) fn peek_word(&self, n: usize, word: &str) -> bool {
        matches!(
            &self.p.peek_nth_token_ref(n).token,
            Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word)
        )
    }

    /// True if the `n`th next token is the unquoted keyword `kw`.
    pub(crate) fn peek_keyword_at(&self, n: usize, kw: Keyword) -> bool {
        matches!(
            &self.p.peek_nth_token_ref(n).token,
            Token::Word(w) if w.quote_style.is_none() && w.keyword == kw
        )
    }

    /// Consumes the unquoted word `word` if it is next.
    pub(crate) fn parse_word(&mut self, word: &str) -> bool {
        if self.peek_word(0, word) {
            self.p.next_token();
            true
        } else {
            false
        }
    }

    /// Parses an identifier (plain, backtick- or double-quoted), case preserved.
    pub(crate) fn ident(&mut self) -> Result<Ident, DialectError> {
        match &self.p.peek_token_ref().token {
            Token::Word(_) => self.run(|p| p.parse_identifier()),
            _ => Err(self.expected("an identifier")),
        }
    }

    /// Parses a possibly qualified name and joins its parts with `.`.
    pub(crate) fn object_name(&mut self) -> Result<String, DialectError> {
        if !matches!(self.p.peek_token_ref().token, Token::Word(_)) {
            return Err(self.expected("a name"));
        }
        let loc = self.here();
        let name = self.run(|p| p.parse_object_name(false))?;
        object_name_string(&name)
            .ok_or_else(|| self.syntax_at(loc, format!("Expected: a name, found: {name}")))
    }

    /// Parses a single-quoted string literal (Flink's only string form).
    pub(crate) fn string_literal(&mut self) -> Result<String, DialectError> {
        if let Token::SingleQuotedString(s) = &self.p.peek_token_ref().token {
            let s = s.clone();
            self.p.next_token();
            Ok(s)
        } else {
            Err(self.expected("a quoted string"))
        }
    }
}

/// `a.b.c` from an object name made of identifiers.
pub(crate) fn object_name_string(name: &ObjectName) -> Option<String> {
    let mut parts = Vec::with_capacity(name.0.len());
    for part in &name.0 {
        parts.push(part.as_ident()?.value.as_str());
    }
    Some(parts.join("."))
}

/// Splits sqlparser's `"<message> at Line: L, Column: C"`.
fn split_location(msg: &str) -> (String, Option<Location>) {
    if let Some(idx) = msg.rfind(" at Line: ") {
        let rest = &msg[idx + " at Line: ".len()..];
        if let Some((l, c)) = rest.split_once(", Column: ") {
            if let (Ok(line), Ok(column)) = (l.trim().parse::<u64>(), c.trim().parse::<u64>()) {
                return (msg[..idx].to_string(), Some(Location { line, column }));
            }
        }
    }
    (msg.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn location_is_split_off() {
        let (m, l) = split_location("Expected: ), found: x at Line: 3, Column: 14");
        assert_eq!(m, "Expected: ), found: x");
        assert_eq!(
            l,
            Some(Location {
                line: 3,
                column: 14
            })
        );
        let (m, l) = split_location("no location");
        assert_eq!(m, "no location");
        assert_eq!(l, None);
    }
}
