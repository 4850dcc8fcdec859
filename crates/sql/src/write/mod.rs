//! Statements that change the database: `CREATE TABLE`, `ALTER TABLE ...
//! ADD COLUMN`, `DROP TABLE` and `INSERT`. Each goes through storage's WAL
//! and commit path, as ingest does, and answers only once durable. The DDL
//! QuestDB has beyond these (`TRUNCATE`, other `ALTER`s, `RENAME`) is
//! recognised and refused by name until storage can log it.
//!
//! This module decides what a statement is ([`WriteStatement::classify`])
//! and runs it; reading rows for `INSERT ... SELECT` goes through the
//! engine's query path.

pub mod alter_table;
pub mod create_table;
pub mod insert;
pub mod to_stored;
mod tokens;

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{QueryError, QueryErrorKind};

/// A statement this module handles before the SQL parser sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteStatement {
    /// QuestDB's `CREATE TABLE`.
    CreateTable(create_table::CreateTable),
    /// `ALTER TABLE ... ADD COLUMN`.
    AddColumns(alter_table::AddColumns),
    /// `DROP TABLE [IF EXISTS] t`.
    DropTable {
        /// The table.
        table: String,
        /// `IF EXISTS`: a missing table is not an error.
        if_exists: bool,
    },
}

impl WriteStatement {
    /// `Some` for the statements parsed here (QuestDB DDL); `None` for the
    /// rest, which the SQL parser takes. DDL that is not supported yet is
    /// an error naming it.
    pub fn classify(sql: &str) -> Result<Option<WriteStatement>, QueryError> {
        let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
            // The SQL parser reports the error with its position.
            return Ok(None);
        };
        let words: Vec<String> = tokens
            .iter()
            .filter(|t| !matches!(t, Token::Whitespace(_)))
            .take(2)
            .map(|t| match t {
                Token::Word(w) if w.quote_style.is_none() => w.value.to_ascii_uppercase(),
                _ => String::new(),
            })
            .collect();
        let first_two: Vec<&str> = words.iter().map(String::as_str).collect();
        match first_two[..] {
            ["CREATE", "TABLE"] => Ok(Some(WriteStatement::CreateTable(
                create_table::parse_create_table(sql)?,
            ))),
            ["DROP", "TABLE"] => parse_drop_table(sql).map(Some),
            ["ALTER", "TABLE"] => Ok(Some(WriteStatement::AddColumns(
                alter_table::parse_alter_table(sql)?,
            ))),
            ["DROP" | "TRUNCATE" | "ALTER" | "RENAME", second] => Err(QueryError::new(
                QueryErrorKind::Unsupported,
                format!(
                    "{} {second} is not supported yet: tables can be created, inserted into and queried",
                    first_two[0]
                ),
            )),
            _ => Ok(None),
        }
    }
}

/// `DROP TABLE [IF EXISTS] name [;]`.
fn parse_drop_table(sql: &str) -> Result<WriteStatement, QueryError> {
    let mut t = tokens::Tokens::new(sql)?;
    t.expect_keyword("DROP")?;
    t.expect_keyword("TABLE")?;
    let if_exists = t.keyword("IF");
    if if_exists {
        t.expect_keyword("EXISTS")?;
    }
    let table = t.name("table")?;
    t.token(&Token::SemiColon);
    if !t.at_end() {
        return Err(tokens::invalid(format!(
            "unexpected {} after the table name: DROP TABLE drops one table",
            t.describe_next()
        )));
    }
    Ok(WriteStatement::DropTable { table, if_exists })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        assert!(matches!(
            WriteStatement::classify("  create TABLE t (x INT)"),
            Ok(Some(WriteStatement::CreateTable(_)))
        ));
        assert_eq!(WriteStatement::classify("SELECT 1").unwrap(), None);
        assert_eq!(
            WriteStatement::classify("INSERT INTO t VALUES (1)").unwrap(),
            None
        );
        assert_eq!(
            WriteStatement::classify("drop table if exists \"My T\";").unwrap(),
            Some(WriteStatement::DropTable {
                table: "My T".into(),
                if_exists: true
            })
        );
        assert!(WriteStatement::classify("DROP TABLE a, b").is_err());
        let e = WriteStatement::classify("truncate table t").unwrap_err();
        assert_eq!(e.kind, QueryErrorKind::Unsupported);
        assert!(
            e.message.starts_with("TRUNCATE TABLE is not supported"),
            "{}",
            e.message
        );
    }
}
