//! Statements that change the database: `CREATE TABLE`, `ALTER TABLE ...
//! ADD | DROP | RENAME COLUMN | DROP PARTITION | SET TTL`, `DROP TABLE`,
//! `TRUNCATE TABLE`, `RENAME TABLE` and `INSERT`. Each goes through
//! storage, as ingest does, and answers only once durable. Other DDL
//! QuestDB has (`DETACH PARTITION` and the like, `DROP` of other objects)
//! is recognised and refused by name.
//!
//! This module decides what a statement is ([`WriteStatement::classify`])
//! and runs it; reading rows for `INSERT ... SELECT` goes through the
//! engine's query path.

pub mod alter_table;
pub mod create_as;
pub mod create_table;
pub mod insert;
pub(crate) mod partitions;
pub mod to_stored;
pub(crate) mod tokens;

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use crate::error::{QueryError, QueryErrorKind};

/// A statement this module handles before the SQL parser sees it.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteStatement {
    /// QuestDB's `CREATE TABLE`.
    CreateTable(create_table::CreateTable),
    /// `CREATE TABLE t AS (query)`.
    CreateTableAs(create_table::CreateTableAs),
    /// `ALTER TABLE ... ADD | DROP | RENAME COLUMN`.
    AlterTable(alter_table::AlterTable),
    /// `DROP TABLE [IF EXISTS] t`.
    DropTable {
        /// The table.
        table: String,
        /// `IF EXISTS`: a missing table is not an error.
        if_exists: bool,
    },
    /// `RENAME TABLE a TO b`.
    RenameTable {
        /// The table.
        from: String,
        /// Its new name.
        to: String,
    },
    /// `TRUNCATE TABLE [IF EXISTS] t`.
    TruncateTable {
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
            ["CREATE", "TABLE"] => Ok(Some(match create_table::parse_create(sql)? {
                create_table::Create::Table(c) => WriteStatement::CreateTable(c),
                create_table::Create::As(c) => WriteStatement::CreateTableAs(c),
            })),
            ["DROP", "TABLE"] => {
                let (table, if_exists) = parse_table_statement(sql, "DROP")?;
                Ok(Some(WriteStatement::DropTable { table, if_exists }))
            }
            ["RENAME", "TABLE"] => parse_rename_table(sql).map(Some),
            ["TRUNCATE", "TABLE"] => {
                let (table, if_exists) = parse_table_statement(sql, "TRUNCATE")?;
                Ok(Some(WriteStatement::TruncateTable { table, if_exists }))
            }
            ["ALTER", "TABLE"] => Ok(Some(WriteStatement::AlterTable(
                alter_table::parse_alter_table(sql)?,
            ))),
            ["DROP" | "ALTER", second] => Err(QueryError::new(
                QueryErrorKind::Unsupported,
                format!(
                    "{} {second} is not supported (tables are: CREATE, DROP, TRUNCATE, RENAME, ALTER TABLE ... ADD | DROP | RENAME COLUMN, DROP PARTITION, SET TTL)",
                    first_two[0]
                ),
            )),
            _ => Ok(None),
        }
    }
}

/// `RENAME TABLE old TO new [;]`.
fn parse_rename_table(sql: &str) -> Result<WriteStatement, QueryError> {
    let mut t = tokens::Tokens::new(sql)?;
    t.expect_keyword("RENAME")?;
    t.expect_keyword("TABLE")?;
    let from = t.name("table")?;
    t.expect_keyword("TO")?;
    let to = t.name("table")?;
    t.token(&Token::SemiColon);
    if !t.at_end() {
        return Err(tokens::invalid(format!(
            "unexpected {} after the new name",
            t.describe_next()
        )));
    }
    Ok(WriteStatement::RenameTable { from, to })
}

/// `<VERB> TABLE [IF EXISTS] name [;]`: the name and whether IF EXISTS
/// was given.
fn parse_table_statement(sql: &str, verb: &str) -> Result<(String, bool), QueryError> {
    let mut t = tokens::Tokens::new(sql)?;
    t.expect_keyword(verb)?;
    t.expect_keyword("TABLE")?;
    let if_exists = t.keyword("IF");
    if if_exists {
        t.expect_keyword("EXISTS")?;
    }
    let table = t.name("table")?;
    t.token(&Token::SemiColon);
    if !t.at_end() {
        return Err(tokens::invalid(format!(
            "unexpected {} after the table name: {verb} TABLE takes one table",
            t.describe_next()
        )));
    }
    Ok((table, if_exists))
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
        assert_eq!(
            WriteStatement::classify("truncate table t").unwrap(),
            Some(WriteStatement::TruncateTable {
                table: "t".into(),
                if_exists: false
            })
        );
        assert_eq!(
            WriteStatement::classify("rename table 't' to \"U u\"").unwrap(),
            Some(WriteStatement::RenameTable {
                from: "t".into(),
                to: "U u".into()
            })
        );
        assert!(WriteStatement::classify("RENAME TABLE t u").is_err());
        assert!(matches!(
            WriteStatement::classify("alter table t drop column x"),
            Ok(Some(WriteStatement::AlterTable(_)))
        ));
        let e = WriteStatement::classify("alter table t set param x = 1").unwrap_err();
        assert_eq!(e.kind, QueryErrorKind::Unsupported);
        let e = WriteStatement::classify("alter user u set password 'p'").unwrap_err();
        assert_eq!(e.kind, QueryErrorKind::Unsupported);
    }
}
