//! A token cursor over one statement (whitespace and comments dropped),
//! for the statements parsed by hand here: QuestDB's DDL.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Location, Token, Tokenizer};

use crate::error::{QueryError, QueryErrorKind};

pub(crate) fn invalid(message: impl Into<String>) -> QueryError {
    QueryError::new(QueryErrorKind::Invalid, message)
}

/// Tokens without whitespace and comments, with where each starts and
/// ends in the statement's text.
pub(crate) struct Tokens {
    sql: String,
    tokens: Vec<Token>,
    /// Byte offsets of each token's start and end in `sql`.
    spans: Vec<(usize, usize)>,
    pos: usize,
}

/// Byte offsets of tokenizer locations (1-based line and column in
/// characters) in `sql`, for locations asked in increasing order: a cursor
/// moves forward through the text, so a whole statement costs one pass.
struct Offsets<'a> {
    sql: &'a str,
    /// Byte offset and location of the cursor.
    byte: usize,
    line: u64,
    column: u64,
}

impl<'a> Offsets<'a> {
    fn new(sql: &'a str) -> Self {
        Offsets {
            sql,
            byte: 0,
            line: 1,
            column: 1,
        }
    }

    fn at(&mut self, to: Location) -> Option<usize> {
        if (to.line, to.column) < (self.line, self.column) {
            // Backwards (never for tokens in order): start over.
            *self = Offsets::new(self.sql);
        }
        while (self.line, self.column) < (to.line, to.column) {
            let c = self.sql[self.byte..].chars().next()?;
            self.byte += c.len_utf8();
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
        Some(self.byte)
    }
}

impl Tokens {
    pub(crate) fn new(sql: &str) -> Result<Self, QueryError> {
        let mut tokens = Vec::new();
        let mut spans = Vec::new();
        let mut offsets = Offsets::new(sql);
        for t in Tokenizer::new(&GenericDialect {}, sql)
            .tokenize_with_location()
            .map_err(|e| invalid(e.to_string()))?
        {
            if matches!(t.token, Token::Whitespace(_)) {
                continue;
            }
            let start = offsets.at(t.span.start).unwrap_or(sql.len());
            let end = offsets.at(t.span.end).unwrap_or(sql.len());
            tokens.push(t.token);
            spans.push((start, end.max(start)));
        }
        Ok(Tokens {
            sql: sql.to_string(),
            tokens,
            spans,
            pos: 0,
        })
    }

    pub(crate) fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    pub(crate) fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    /// Consumes the next token if it is the keyword `word`.
    pub(crate) fn keyword(&mut self, word: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w))
                if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word) =>
            {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn expect_keyword(&mut self, word: &str) -> Result<(), QueryError> {
        match self.keyword(word) {
            true => Ok(()),
            false => Err(invalid(format!(
                "expected {word}, found {}",
                self.describe_next()
            ))),
        }
    }

    pub(crate) fn token(&mut self, want: &Token) -> bool {
        match self.peek() {
            Some(t) if t == want => {
                self.pos += 1;
                true
            }
            _ => false,
        }
    }

    pub(crate) fn expect(&mut self, want: &Token) -> Result<(), QueryError> {
        match self.token(want) {
            true => Ok(()),
            false => Err(invalid(format!(
                "expected '{want}', found {}",
                self.describe_next()
            ))),
        }
    }

    /// A (possibly quoted) name.
    pub(crate) fn name(&mut self, what: &str) -> Result<String, QueryError> {
        match self.next() {
            Some(Token::Word(w)) => Ok(w.value),
            Some(Token::SingleQuotedString(s) | Token::DoubleQuotedString(s)) => Ok(s),
            other => Err(invalid(format!(
                "expected a {what} name, found {}",
                describe(other.as_ref())
            ))),
        }
    }

    pub(crate) fn describe_next(&self) -> String {
        describe(self.peek())
    }

    /// The statement's text between an already consumed `(` and the `)`
    /// that closes it (consumed too), exactly as written.
    pub(crate) fn balanced_text(&mut self) -> Result<String, QueryError> {
        let open_end = self
            .spans
            .get(self.pos.saturating_sub(1))
            .map_or(0, |s| s.1);
        let mut depth = 1usize;
        loop {
            let at = self.pos;
            match self.next() {
                None | Some(Token::EOF) => return Err(invalid("a '(' is not closed")),
                Some(Token::LParen) => depth += 1,
                Some(Token::RParen) => {
                    depth -= 1;
                    if depth == 0 {
                        let close_start = self.spans.get(at).map_or(self.sql.len(), |s| s.0);
                        return self
                            .sql
                            .get(open_end..close_start)
                            .map(str::to_string)
                            .ok_or_else(|| invalid("the query's text could not be cut out"));
                    }
                }
                _ => {}
            }
        }
    }

    /// Index of the next token.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Moves back (or forward) to token `pos`.
    pub(crate) fn seek(&mut self, pos: usize) {
        self.pos = pos;
    }

    /// Byte offsets of token `i`'s start and end.
    pub(crate) fn span(&self, i: usize) -> Option<(usize, usize)> {
        self.spans.get(i).copied()
    }

    /// Number of tokens.
    pub(crate) fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Token `i`.
    pub(crate) fn get(&self, i: usize) -> Option<&Token> {
        self.tokens.get(i)
    }

    pub(crate) fn at_end(&self) -> bool {
        matches!(self.peek(), None | Some(Token::EOF))
    }
}

pub(crate) fn describe(t: Option<&Token>) -> String {
    match t {
        None | Some(Token::EOF) => "the end of the statement".to_string(),
        Some(t) => format!("'{t}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balanced_text_is_the_text_as_written() {
        let sql = "CREATE TABLE t AS (SELECT 'it''s', \"a\"\"b\", (1 + 2)\n FROM x -- note\n WHERE y = 'é') TIMESTAMP(ts)";
        let mut t = Tokens::new(sql).unwrap();
        while !matches!(t.next(), Some(Token::LParen)) {}
        assert_eq!(
            t.balanced_text().unwrap(),
            "SELECT 'it''s', \"a\"\"b\", (1 + 2)\n FROM x -- note\n WHERE y = 'é'"
        );
        assert!(t.keyword("TIMESTAMP"));
        let mut open = Tokens::new("AS (SELECT (1)").unwrap();
        open.next();
        open.next();
        assert!(open.balanced_text().is_err());
    }
}
