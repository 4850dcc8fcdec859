//! `ALTER TABLE t ADD COLUMN [IF NOT EXISTS] c TYPE [, c2 TYPE ...]`, the
//! one ALTER that storage logs today; QuestDB's other ALTERs (`DROP
//! COLUMN`, `RENAME COLUMN`, ...) are refused by name.

use datafusion::sql::sqlparser::tokenizer::Token;
use quiver_storage::{ColumnSchema, ColumnType};

use super::create_table::{parse_type, skip_symbol_options};
use super::tokens::{Tokens, invalid};
use crate::error::{QueryError, QueryErrorKind};

/// A parsed `ALTER TABLE ... ADD COLUMN`.
#[derive(Debug, Clone, PartialEq)]
pub struct AddColumns {
    /// The table.
    pub table: String,
    /// The new columns.
    pub columns: Vec<ColumnSchema>,
    /// `IF NOT EXISTS`: a column that exists already is not an error.
    pub if_not_exists: bool,
}

/// Parses an `ALTER TABLE` statement (see the module docs).
pub fn parse_alter_table(sql: &str) -> Result<AddColumns, QueryError> {
    let mut t = Tokens::new(sql)?;
    t.expect_keyword("ALTER")?;
    t.expect_keyword("TABLE")?;
    let table = t.name("table")?;
    if !t.keyword("ADD") {
        let what = match t.next() {
            Some(Token::Word(w)) => {
                let second = match t.peek() {
                    Some(Token::Word(w2)) => format!(" {}", w2.value.to_ascii_uppercase()),
                    _ => String::new(),
                };
                format!("{}{second}", w.value.to_ascii_uppercase())
            }
            _ => "this form".to_string(),
        };
        return Err(QueryError::new(
            QueryErrorKind::Unsupported,
            format!("ALTER TABLE ... {what} is not supported yet: ALTER TABLE ... ADD COLUMN is"),
        ));
    }
    t.expect_keyword("COLUMN")?;
    let if_not_exists = t.keyword("IF");
    if if_not_exists {
        t.expect_keyword("NOT")?;
        t.expect_keyword("EXISTS")?;
    }
    let mut columns = Vec::new();
    loop {
        let name = t.name("column")?;
        let column_type = parse_type(&mut t, &name)?;
        if column_type == ColumnType::Symbol {
            skip_symbol_options(&mut t)?;
        }
        columns.push(ColumnSchema::new(name, column_type));
        if !t.token(&Token::Comma) {
            break;
        }
        // `ADD COLUMN a INT, b LONG` and `ADD COLUMN a INT, ADD COLUMN b LONG`.
        if t.keyword("ADD") {
            t.expect_keyword("COLUMN")?;
        }
    }
    t.token(&Token::SemiColon);
    if !t.at_end() {
        return Err(invalid(format!(
            "unexpected {} after the new columns",
            t.describe_next()
        )));
    }
    Ok(AddColumns {
        table,
        columns,
        if_not_exists,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_column_forms() {
        let a = parse_alter_table(
            "ALTER TABLE t ADD COLUMN x INT, y SYMBOL CAPACITY 8, ADD COLUMN z geohash(2c);",
        )
        .unwrap();
        assert_eq!(a.table, "t");
        assert!(!a.if_not_exists);
        let types: Vec<ColumnType> = a.columns.iter().map(|c| c.column_type).collect();
        assert_eq!(
            types,
            [ColumnType::Int, ColumnType::Symbol, ColumnType::Geohash(10)]
        );
        assert!(
            parse_alter_table("alter table t add column if not exists x long")
                .unwrap()
                .if_not_exists
        );
        let e = parse_alter_table("ALTER TABLE t DROP COLUMN x").unwrap_err();
        assert!(
            e.message
                .contains("ALTER TABLE ... DROP COLUMN is not supported yet"),
            "{}",
            e.message
        );
        assert!(parse_alter_table("ALTER TABLE t ADD COLUMN x WIDGET").is_err());
        assert!(parse_alter_table("ALTER TABLE t ADD COLUMN x INT y").is_err());
    }
}
