//! A token cursor over one statement (whitespace and comments dropped),
//! for the statements parsed by hand here: QuestDB's DDL.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{QueryError, QueryErrorKind};

pub(crate) fn invalid(message: impl Into<String>) -> QueryError {
    QueryError::new(QueryErrorKind::Invalid, message)
}

/// Tokens without whitespace and comments.
pub(crate) struct Tokens {
    tokens: Vec<Token>,
    pos: usize,
}

impl Tokens {
    pub(crate) fn new(sql: &str) -> Result<Self, QueryError> {
        let tokens = Tokenizer::new(&GenericDialect {}, sql)
            .tokenize()
            .map_err(|e| invalid(e.to_string()))?
            .into_iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .collect();
        Ok(Tokens { tokens, pos: 0 })
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

    /// The text of the tokens up to the `)` that closes an already
    /// consumed `(` (consumed too), rebuilt with single spaces.
    pub(crate) fn balanced_text(&mut self) -> Result<String, QueryError> {
        let mut depth = 1usize;
        let mut parts: Vec<String> = Vec::new();
        loop {
            match self.next() {
                None | Some(Token::EOF) => return Err(invalid("a '(' is not closed")),
                Some(Token::LParen) => depth += 1,
                Some(Token::RParen) => {
                    depth -= 1;
                    if depth == 0 {
                        return Ok(parts.join(" "));
                    }
                }
                _ => {}
            }
            if let Some(t) = self.tokens.get(self.pos.saturating_sub(1)) {
                parts.push(t.to_string());
            }
        }
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
