//! The row pattern of `MATCH_RECOGNIZE`: variables, concatenation,
//! grouping and quantifiers, plus the `AFTER MATCH SKIP` strategy.
//!
//! [`Pattern`] is the syntax tree (what the `PATTERN (…)` clause says);
//! [`Pattern::elements`] checks it against the subset Flink supports and
//! flattens it into the sequence of quantified variables the NFA is
//! compiled from. The checks are Flink's (`StreamExecMatch` in Flink 2.x):
//!
//! - pattern variables are unique;
//! - a quantifier applies to a single variable (no quantified groups);
//!   unquantified parentheses are accepted and flattened;
//! - the optional quantifier cannot be reluctant (`A??`, `A{0,1}?`);
//! - an optional variable (`*`, `?`, `{0,m}`) cannot follow a variable with
//!   a greedy quantifier whose bounds differ (`A B* C? D` is rejected,
//!   `A B*? C? D` accepted);
//! - the last element cannot carry a greedy quantifier whose bounds
//!   differ (`A B*`, `A B+`, `A B{1,3}` are rejected; `A B*?`, `A B?`,
//!   `A B{2}` are accepted);
//! - a pattern cannot match zero rows (`A*`, `A? B*`).

use std::fmt;

use weir_engine::{Result, WeirError};

/// How many rows a pattern variable may match, and whether it prefers
/// more (greedy) or fewer (reluctant).
///
/// `max = None` means unbounded. The constructors mirror the SQL syntax:
/// `*` = [`Quantifier::zero_or_more`], `+` = [`Quantifier::one_or_more`],
/// `?` = [`Quantifier::optional`], `{n}` = [`Quantifier::exactly`],
/// `{n,}` = [`Quantifier::at_least`], `{n,m}` = [`Quantifier::between`],
/// `{,m}` = [`Quantifier::at_most`]; a trailing `?` is
/// [`Quantifier::reluctant`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Quantifier {
    /// Minimum number of rows.
    pub min: u32,
    /// Maximum number of rows (`None`: unbounded).
    pub max: Option<u32>,
    /// Greedy (the default) or reluctant.
    pub greedy: bool,
}

impl Quantifier {
    /// Exactly one row: a variable without a quantifier.
    pub const ONE: Quantifier = Quantifier {
        min: 1,
        max: Some(1),
        greedy: true,
    };

    /// `*`: zero or more rows.
    pub fn zero_or_more() -> Self {
        Self::range(0, None)
    }

    /// `+`: one or more rows.
    pub fn one_or_more() -> Self {
        Self::range(1, None)
    }

    /// `?`: zero or one row.
    pub fn optional() -> Self {
        Self::range(0, Some(1))
    }

    /// `{n}`: exactly `n` rows.
    pub fn exactly(n: u32) -> Self {
        Self::range(n, Some(n))
    }

    /// `{n,}`: `n` or more rows.
    pub fn at_least(n: u32) -> Self {
        Self::range(n, None)
    }

    /// `{n,m}`: between `n` and `m` rows (inclusive).
    pub fn between(n: u32, m: u32) -> Self {
        Self::range(n, Some(m))
    }

    /// `{,m}`: between zero and `m` rows. Flink 2.2 fails on `{,m}` and
    /// `{0,m}` at run time ("The from should be a positive number greater
    /// than 0"); Weir accepts them with the semantics of Flink CEP's
    /// `times(0, m)`: an optional `{1,m}`.
    pub fn at_most(m: u32) -> Self {
        Self::range(0, Some(m))
    }

    /// The same bounds, reluctant (`*?`, `+?`, `{n,m}?`).
    pub fn reluctant(self) -> Self {
        Self {
            greedy: false,
            ..self
        }
    }

    fn range(min: u32, max: Option<u32>) -> Self {
        Self {
            min,
            max,
            greedy: true,
        }
    }

    /// True for `?` / `{0,1}`.
    pub fn is_optional_one(&self) -> bool {
        self.min == 0 && self.max == Some(1)
    }

    /// True if the quantifier is exactly one row (no quantifier).
    pub fn is_one(&self) -> bool {
        self.min == 1 && self.max == Some(1)
    }

    /// Whether Flink treats this quantifier as greedy: a greedy quantifier
    /// whose bounds differ, other than `?` (for which greediness has no
    /// effect in Flink's translation).
    pub fn flink_greedy(&self) -> bool {
        self.greedy && !self.is_optional_one() && Some(self.min) != self.max
    }

    /// Checks the bounds as Flink's parser does.
    fn validate(&self, var: &str) -> Result<()> {
        let bad = |why: &str| {
            Err(WeirError::Plan(format!(
                "invalid quantifier {self} on pattern variable {var}: {why}"
            )))
        };
        match self.max {
            Some(0) => bad("the upper bound must be greater than 0"),
            Some(m) if m < self.min => bad("the lower bound exceeds the upper bound"),
            _ if self.is_optional_one() && !self.greedy => Err(WeirError::Plan(format!(
                "reluctant optional quantifier {self} on pattern variable {var} is not \
                 supported (as in Flink: reluctant optional variables are not supported yet)"
            ))),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Quantifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.min, self.max) {
            (1, Some(1)) => {}
            (0, None) => write!(f, "*")?,
            (1, None) => write!(f, "+")?,
            (0, Some(1)) => write!(f, "?")?,
            (n, None) => write!(f, "{{{n},}}")?,
            (0, Some(m)) => write!(f, "{{,{m}}}")?,
            (n, Some(m)) if n == m => write!(f, "{{{n}}}")?,
            (n, Some(m)) => write!(f, "{{{n},{m}}}")?,
        }
        if !self.greedy {
            write!(f, "?")?;
        }
        Ok(())
    }
}

/// A row pattern (the `PATTERN (…)` clause).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    /// A pattern variable: one row satisfying the variable's `DEFINE`
    /// condition (or any row when the variable has none).
    Var(String),
    /// The parts in sequence, with strict contiguity: no row between them.
    Concat(Vec<Pattern>),
    /// Parentheses. Supported without a quantifier only (as in Flink).
    Group(Box<Pattern>),
    /// A quantified pattern. Only a [`Pattern::Var`] may be quantified.
    Quantified {
        /// What is repeated.
        inner: Box<Pattern>,
        /// How often.
        quantifier: Quantifier,
    },
}

/// One quantified variable of a flattened pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// The variable name.
    pub var: String,
    /// Its quantifier ([`Quantifier::ONE`] when none was given).
    pub quantifier: Quantifier,
}

impl Pattern {
    /// A pattern variable.
    pub fn var(name: impl Into<String>) -> Self {
        Pattern::Var(name.into())
    }

    /// A concatenation of patterns.
    pub fn concat(parts: impl IntoIterator<Item = Pattern>) -> Self {
        Pattern::Concat(parts.into_iter().collect())
    }

    /// A parenthesized pattern.
    pub fn group(inner: Pattern) -> Self {
        Pattern::Group(Box::new(inner))
    }

    /// `inner` with a quantifier.
    pub fn quantified(inner: Pattern, quantifier: Quantifier) -> Self {
        Pattern::Quantified {
            inner: Box::new(inner),
            quantifier,
        }
    }

    /// Parses the text between the parentheses of `PATTERN (…)`, e.g.
    /// `A B* C`, `START_ROW PRICE_DOWN+ PRICE_UP`, `A{2,3}? (B C)`.
    ///
    /// A convenience for building patterns in Rust; SQL goes through the
    /// SQL parser. Variables are identifiers (letters, digits, `_`; not
    /// starting with a digit); quantifiers are `*`, `+`, `?`, `{n}`,
    /// `{n,}`, `{n,m}`, `{,m}`, each optionally followed by `?`.
    pub fn parse(text: &str) -> Result<Pattern> {
        let mut p = Parser {
            text,
            chars: text.char_indices().collect(),
            pos: 0,
        };
        let pattern = p.sequence()?;
        p.skip_ws();
        if p.pos < p.chars.len() {
            return Err(p.error("unexpected character"));
        }
        Ok(pattern)
    }

    /// Checks the pattern against the supported subset and flattens it into
    /// its quantified variables, in order. See the [module docs](self) for
    /// the rules.
    pub fn elements(&self) -> Result<Vec<Element>> {
        let mut out = Vec::new();
        self.flatten(&mut out)?;
        if out.is_empty() {
            return Err(WeirError::Plan("PATTERN is empty".into()));
        }
        for (i, e) in out.iter().enumerate() {
            if out[..i].iter().any(|o| o.var == e.var) {
                return Err(WeirError::Plan(format!(
                    "pattern variable {} appears more than once in PATTERN ({self}); \
                     pattern variables must be unique (as in Flink)",
                    e.var
                )));
            }
            e.quantifier.validate(&e.var)?;
        }
        for pair in out.windows(2) {
            if pair[1].quantifier.min == 0 && pair[0].quantifier.flink_greedy() {
                return Err(WeirError::Plan(format!(
                    "optional variable {}{} cannot follow the greedy variable {}{} in PATTERN \
                     ({self}) (as in Flink: optional pattern cannot be preceded by greedy \
                     pattern); make {} reluctant",
                    pair[1].var, pair[1].quantifier, pair[0].var, pair[0].quantifier, pair[0].var
                )));
            }
        }
        if let Some(last) = out.last() {
            if last.quantifier.flink_greedy() {
                return Err(WeirError::Plan(format!(
                    "greedy quantifier {} on the last variable {} of PATTERN ({self}) is not \
                     supported (as in Flink): finish the pattern with a simple variable or a \
                     reluctant quantifier, e.g. {}{}",
                    last.quantifier,
                    last.var,
                    last.var,
                    last.quantifier.reluctant()
                )));
            }
        }
        if out.iter().all(|e| e.quantifier.min == 0) {
            return Err(WeirError::Plan(format!(
                "PATTERN ({self}) can match zero rows; patterns that can produce empty matches \
                 are not supported (as in Flink): at least one variable must be mandatory"
            )));
        }
        Ok(out)
    }

    fn flatten(&self, out: &mut Vec<Element>) -> Result<()> {
        match self {
            Pattern::Var(name) => {
                if name.is_empty() {
                    return Err(WeirError::Plan("empty pattern variable name".into()));
                }
                out.push(Element {
                    var: name.clone(),
                    quantifier: Quantifier::ONE,
                });
            }
            Pattern::Concat(parts) => {
                for p in parts {
                    p.flatten(out)?;
                }
            }
            Pattern::Group(inner) => inner.flatten(out)?,
            Pattern::Quantified { inner, quantifier } => {
                let mut inner = inner.as_ref();
                while let Pattern::Group(g) = inner {
                    inner = g;
                }
                match inner {
                    Pattern::Var(name) => out.push(Element {
                        var: name.clone(),
                        quantifier: *quantifier,
                    }),
                    other => {
                        return Err(WeirError::Plan(format!(
                            "quantifier {quantifier} applied to ({other}) is not supported: \
                             quantifiers apply to single pattern variables only (as in Flink, \
                             group patterns are not supported)"
                        )))
                    }
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Var(v) => write!(f, "{v}"),
            Pattern::Concat(parts) => {
                for (i, p) in parts.iter().enumerate() {
                    if i > 0 {
                        write!(f, " ")?;
                    }
                    write!(f, "{p}")?;
                }
                Ok(())
            }
            Pattern::Group(inner) => write!(f, "({inner})"),
            Pattern::Quantified { inner, quantifier } => match inner.as_ref() {
                Pattern::Concat(_) => write!(f, "({inner}){quantifier}"),
                _ => write!(f, "{inner}{quantifier}"),
            },
        }
    }
}

/// A tiny recursive-descent parser for [`Pattern::parse`].
struct Parser<'a> {
    text: &'a str,
    chars: Vec<(usize, char)>,
    pos: usize,
}

impl Parser<'_> {
    fn error(&self, what: &str) -> WeirError {
        let at = self.chars.get(self.pos).map_or(self.text.len(), |c| c.0);
        WeirError::Plan(format!(
            "cannot parse PATTERN ({}): {what} at offset {at}",
            self.text
        ))
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).map(|c| c.1)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn sequence(&mut self) -> Result<Pattern> {
        let mut parts = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None | Some(')') => break,
                _ => parts.push(self.quantified()?),
            }
        }
        match parts.len() {
            0 => Err(self.error("expected a pattern variable")),
            1 => Ok(parts.remove(0)),
            _ => Ok(Pattern::Concat(parts)),
        }
    }

    fn quantified(&mut self) -> Result<Pattern> {
        let primary = self.primary()?;
        match self.quantifier()? {
            Some(q) => Ok(Pattern::quantified(primary, q)),
            None => Ok(primary),
        }
    }

    fn primary(&mut self) -> Result<Pattern> {
        match self.peek() {
            Some('(') => {
                self.pos += 1;
                let inner = self.sequence()?;
                self.skip_ws();
                if self.peek() != Some(')') {
                    return Err(self.error("expected ')'"));
                }
                self.pos += 1;
                Ok(Pattern::group(inner))
            }
            Some(c) if c.is_alphabetic() || c == '_' => {
                let mut name = String::new();
                while let Some(c) = self.peek() {
                    if c.is_alphanumeric() || c == '_' {
                        name.push(c);
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                Ok(Pattern::Var(name))
            }
            _ => Err(self.error("expected a pattern variable or '('")),
        }
    }

    fn number(&mut self) -> Result<Option<u32>> {
        self.skip_ws();
        let mut digits = String::new();
        while let Some(c) = self.peek().filter(char::is_ascii_digit) {
            digits.push(c);
            self.pos += 1;
        }
        if digits.is_empty() {
            return Ok(None);
        }
        digits
            .parse::<u32>()
            .map(Some)
            .map_err(|_| self.error("quantifier bound out of range"))
    }

    fn expect(&mut self, c: char) -> Result<()> {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.error(&format!("expected '{c}'")))
        }
    }

    fn quantifier(&mut self) -> Result<Option<Quantifier>> {
        let q = match self.peek() {
            Some('*') => Quantifier::zero_or_more(),
            Some('+') => Quantifier::one_or_more(),
            Some('?') => Quantifier::optional(),
            Some('{') => {
                self.pos += 1;
                let min = self.number()?;
                self.skip_ws();
                let q = if self.peek() == Some(',') {
                    self.pos += 1;
                    let max = self.number()?;
                    match (min, max) {
                        (None, None) => return Err(self.error("expected a bound")),
                        (Some(n), None) => Quantifier::at_least(n),
                        (None, Some(m)) => Quantifier::at_most(m),
                        (Some(n), Some(m)) => Quantifier::between(n, m),
                    }
                } else {
                    match min {
                        Some(0) => return Err(self.error("{0} matches no row")),
                        Some(n) => Quantifier::exactly(n),
                        None => return Err(self.error("expected a bound")),
                    }
                };
                self.expect('}')?;
                self.pos -= 1;
                q
            }
            _ => return Ok(None),
        };
        self.pos += 1;
        if self.peek() == Some('?') {
            self.pos += 1;
            return Ok(Some(q.reluctant()));
        }
        Ok(Some(q))
    }
}

/// Where matching resumes after a match (`AFTER MATCH SKIP …`).
///
/// With every strategy at most one match starts at a given row. Variable
/// names are resolved when the matcher is built.
///
/// The default, used when a query has no `AFTER MATCH` clause, is
/// [`SkipStrategy::ToNextRow`]: that is what Flink does (Calcite's
/// `SqlToRelConverter` fills in `SKIP TO NEXT ROW`), although the SQL
/// standard and Flink's documentation say `SKIP PAST LAST ROW`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SkipStrategy {
    /// `SKIP PAST LAST ROW`: the next match starts after the last row of
    /// this one.
    PastLastRow,
    /// `SKIP TO NEXT ROW` (the default): the next match starts after the
    /// first row of this one.
    #[default]
    ToNextRow,
    /// `SKIP TO FIRST var`: the next match starts at the first row mapped to
    /// `var` (an error at run time if none is, or if that is the match's
    /// first row).
    ToFirst(String),
    /// `SKIP TO LAST var`: the next match starts at the last row mapped to
    /// `var` (same errors as [`SkipStrategy::ToFirst`]).
    ToLast(String),
}

impl fmt::Display for SkipStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipStrategy::PastLastRow => write!(f, "SKIP PAST LAST ROW"),
            SkipStrategy::ToNextRow => write!(f, "SKIP TO NEXT ROW"),
            SkipStrategy::ToFirst(v) => write!(f, "SKIP TO FIRST {v}"),
            SkipStrategy::ToLast(v) => write!(f, "SKIP TO LAST {v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elems(text: &str) -> Result<Vec<(String, String)>> {
        Ok(Pattern::parse(text)?
            .elements()?
            .into_iter()
            .map(|e| (e.var, e.quantifier.to_string()))
            .collect())
    }

    #[test]
    fn parses_and_prints_every_quantifier() {
        for text in [
            "A B* C",
            "A B+ C",
            "A B? C",
            "A B{2} C",
            "A B{2,} C",
            "A B{2,4} C",
            "A B{,3} C",
            "A B*? C",
            "A B+? C",
            "A B{2,4}? C",
            "A B{,3}? C",
        ] {
            let p = Pattern::parse(text).expect(text);
            assert_eq!(p.to_string(), text);
            p.elements().expect(text);
        }
        assert_eq!(
            Pattern::parse("A  B{ 1 , 3 }?   C")
                .expect("parse")
                .to_string(),
            "A B{1,3}? C"
        );
    }

    #[test]
    fn groups_without_quantifier_are_flattened() {
        assert_eq!(
            elems("(A (B C*)) D").expect("flatten"),
            vec![
                ("A".to_string(), String::new()),
                ("B".to_string(), String::new()),
                ("C".to_string(), "*".to_string()),
                ("D".to_string(), String::new()),
            ]
        );
        // A quantifier on a parenthesized single variable is fine.
        assert_eq!(elems("(A)+? B").expect("ok")[0].1, "+?");
    }

    #[test]
    fn flink_restrictions_are_plan_errors() {
        let err = |t: &str| elems(t).expect_err(t).to_string();
        assert!(err("(A B)+ C").contains("group patterns are not supported"));
        assert!(err("A B A").contains("must be unique"));
        assert!(err("A B??").contains("reluctant optional"));
        assert!(err("A B{0,1}? C").contains("reluctant optional"));
        assert!(err("A B*").contains("greedy quantifier * on the last variable B"));
        assert!(err("A B+").contains("B+?"));
        assert!(err("A B{1,3}").contains("greedy quantifier"));
        assert!(err("A? B?").contains("empty matches"));
        // As in Flink, `A* B?` fails on the greedy rule first.
        assert!(err("A* B?").contains("cannot follow the greedy variable A*"));
        assert!(err("A B* C* D").contains("cannot follow the greedy variable B*"));
        assert!(err("A B{1,3} C? D").contains("cannot follow"));
        for ok in ["A B*? C* D", "A B{2} C? D", "A B* C+? D"] {
            elems(ok).expect(ok);
        }
        assert!(err("A{3,2} B").contains("lower bound exceeds"));
        assert!(err("A{,0} B").contains("greater than 0"));
        // Accepted endings: simple, reluctant, optional, fixed count.
        for ok in ["A B*?", "A B+?", "A B?", "A B{3}", "A B{1,3}?", "A* B"] {
            elems(ok).expect(ok);
        }
        assert!(Pattern::parse("A B{0} C").is_err());
        assert!(Pattern::parse("A (B").is_err());
        assert!(Pattern::parse("A 1B").is_err());
        assert!(Pattern::parse("").is_err());
    }

    #[test]
    fn flink_greediness() {
        assert!(Quantifier::zero_or_more().flink_greedy());
        assert!(!Quantifier::zero_or_more().reluctant().flink_greedy());
        assert!(!Quantifier::optional().flink_greedy());
        assert!(!Quantifier::exactly(3).flink_greedy());
        assert!(Quantifier::at_most(3).flink_greedy());
        assert!(!Quantifier::ONE.flink_greedy());
    }
}
