//! `ALTER TABLE` forms that change columns, parsed by hand as QuestDB
//! writes them:
//!
//! - `ALTER TABLE t ADD COLUMN [IF NOT EXISTS] c TYPE [, [ADD COLUMN] c2 TYPE ...]`
//! - `ALTER TABLE t DROP COLUMN [IF EXISTS] c [, c2 ...]`
//! - `ALTER TABLE t RENAME COLUMN a TO b`
//! - `ALTER TABLE t DROP PARTITION LIST 'name' [, 'name' ...]`
//! - `ALTER TABLE t DROP PARTITION WHERE <condition on the designated timestamp>`
//! - `ALTER TABLE t SET TTL n HOURS | DAYS | WEEKS | MONTHS | YEARS` (`0`: none)
//!
//! QuestDB's other ALTERs (`ALTER COLUMN ... ADD INDEX`, `DETACH
//! PARTITION`, `SET PARAM`, ...) are refused by name. Storage applies the change
//! ([`quiver_storage::TableSchema::apply_change`]); this module only
//! reads the statement.

use datafusion::sql::sqlparser::tokenizer::Token;
use quiver_storage::{ColumnSchema, ColumnType};

use super::create_table::{parse_type, skip_symbol_options};
use super::tokens::{Tokens, invalid};
use crate::error::{QueryError, QueryErrorKind};

/// A parsed `ALTER TABLE`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlterTable {
    /// The table.
    pub table: String,
    /// What changes.
    pub action: AlterAction,
}

/// What an `ALTER TABLE` does to the table's columns.
#[derive(Debug, Clone, PartialEq)]
pub enum AlterAction {
    /// `ADD COLUMN`.
    AddColumns {
        /// The new columns.
        columns: Vec<ColumnSchema>,
        /// `IF NOT EXISTS`: a column that exists already is not an error.
        if_not_exists: bool,
    },
    /// `DROP COLUMN`.
    DropColumns {
        /// The columns.
        names: Vec<String>,
        /// `IF EXISTS`: a column that does not exist is not an error.
        if_exists: bool,
    },
    /// `RENAME COLUMN from TO to`.
    RenameColumn {
        /// The column.
        from: String,
        /// Its new name.
        to: String,
    },
    /// `DROP PARTITION`.
    DropPartitions(PartitionSelection),
    /// `SET TTL` (`None`: `SET TTL 0`).
    SetTtl(Option<quiver_storage::Ttl>),
}

/// Which partitions `DROP PARTITION` drops.
#[derive(Debug, Clone, PartialEq)]
pub enum PartitionSelection {
    /// `LIST 'name', ...`: partition names (or times inside them).
    List(Vec<String>),
    /// `WHERE condition`: the condition's SQL text, on each partition's
    /// start as the designated timestamp.
    Where(String),
}

/// Parses an `ALTER TABLE` statement (see the module docs).
pub fn parse_alter_table(sql: &str) -> Result<AlterTable, QueryError> {
    let mut t = Tokens::new(sql)?;
    t.expect_keyword("ALTER")?;
    t.expect_keyword("TABLE")?;
    let table = t.name("table")?;
    let action = if t.keyword("ADD") {
        t.expect_keyword("COLUMN")?;
        parse_add(&mut t)?
    } else if t.keyword("DROP") {
        if t.keyword("PARTITION") {
            let selection = parse_drop_partition(&mut t, sql)?;
            return Ok(AlterTable {
                table,
                action: AlterAction::DropPartitions(selection),
            });
        }
        if !t.keyword("COLUMN") {
            return Err(unsupported(sql));
        }
        let if_exists = t.keyword("IF");
        if if_exists {
            t.expect_keyword("EXISTS")?;
        }
        let mut names = vec![t.name("column")?];
        while t.token(&Token::Comma) {
            names.push(t.name("column")?);
        }
        AlterAction::DropColumns { names, if_exists }
    } else if t.keyword("SET") {
        if !t.keyword("TTL") {
            return Err(unsupported(sql));
        }
        AlterAction::SetTtl(super::create_table::parse_ttl(&mut t)?)
    } else if t.keyword("RENAME") && t.keyword("COLUMN") {
        let from = t.name("column")?;
        t.expect_keyword("TO")?;
        let to = t.name("column")?;
        AlterAction::RenameColumn { from, to }
    } else {
        return Err(unsupported(sql));
    };
    t.token(&Token::SemiColon);
    if !t.at_end() {
        return Err(invalid(format!(
            "unexpected {} at the end of ALTER TABLE",
            t.describe_next()
        )));
    }
    Ok(AlterTable { table, action })
}

/// What follows `DROP PARTITION`: `LIST 'a', 'b'` or `WHERE condition`
/// (the rest of the statement, without a final `;`).
fn parse_drop_partition(t: &mut Tokens, sql: &str) -> Result<PartitionSelection, QueryError> {
    if t.keyword("LIST") {
        let mut names = Vec::new();
        loop {
            match t.next() {
                Some(Token::SingleQuotedString(name)) => names.push(name),
                other => {
                    return Err(invalid(format!(
                        "DROP PARTITION LIST takes quoted partition names, not {}",
                        super::tokens::describe(other.as_ref())
                    )));
                }
            }
            if !t.token(&Token::Comma) {
                break;
            }
        }
        t.token(&Token::SemiColon);
        if !t.at_end() {
            return Err(invalid(format!(
                "unexpected {} after the partition names",
                t.describe_next()
            )));
        }
        return Ok(PartitionSelection::List(names));
    }
    if t.keyword("WHERE") {
        let start = t.span(t.position()).map_or(sql.len(), |s| s.0);
        let condition = sql.get(start..).unwrap_or("").trim();
        let condition = condition.strip_suffix(';').unwrap_or(condition).trim();
        if condition.is_empty() {
            return Err(invalid("DROP PARTITION WHERE needs a condition"));
        }
        return Ok(PartitionSelection::Where(condition.to_string()));
    }
    Err(invalid(format!(
        "DROP PARTITION takes LIST 'name', ... or WHERE condition, not {}",
        t.describe_next()
    )))
}

/// The columns of `ADD COLUMN` (after those two words).
fn parse_add(t: &mut Tokens) -> Result<AlterAction, QueryError> {
    let if_not_exists = t.keyword("IF");
    if if_not_exists {
        t.expect_keyword("NOT")?;
        t.expect_keyword("EXISTS")?;
    }
    let mut columns = Vec::new();
    loop {
        let name = t.name("column")?;
        let column_type = parse_type(t, &name)?;
        if column_type == ColumnType::Symbol {
            skip_symbol_options(t)?;
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
    Ok(AlterAction::AddColumns {
        columns,
        if_not_exists,
    })
}

/// The error for an ALTER this module does not read, naming the two words
/// after the table name.
fn unsupported(sql: &str) -> QueryError {
    let words: Vec<String> = Tokens::new(sql)
        .map(|mut all| {
            // Past `ALTER TABLE name`.
            for _ in 0..3 {
                all.next();
            }
            std::iter::from_fn(|| match all.next() {
                Some(Token::Word(w)) => Some(w.value.to_ascii_uppercase()),
                _ => None,
            })
            .take(2)
            .collect()
        })
        .unwrap_or_default();
    let what = match words.is_empty() {
        true => "this form".to_string(),
        false => words.join(" "),
    };
    QueryError::new(
        QueryErrorKind::Unsupported,
        format!(
            "ALTER TABLE ... {what} is not supported yet: ADD COLUMN, DROP COLUMN, RENAME COLUMN, DROP PARTITION and SET TTL are"
        ),
    )
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
        let AlterAction::AddColumns {
            columns,
            if_not_exists,
        } = a.action
        else {
            panic!("{:?}", a.action)
        };
        assert!(!if_not_exists);
        let types: Vec<ColumnType> = columns.iter().map(|c| c.column_type).collect();
        assert_eq!(
            types,
            [ColumnType::Int, ColumnType::Symbol, ColumnType::Geohash(10)]
        );
        assert!(matches!(
            parse_alter_table("alter table t add column if not exists x long")
                .unwrap()
                .action,
            AlterAction::AddColumns {
                if_not_exists: true,
                ..
            }
        ));
        assert!(parse_alter_table("ALTER TABLE t ADD COLUMN x WIDGET").is_err());
        assert!(parse_alter_table("ALTER TABLE t ADD COLUMN x INT y").is_err());
    }

    #[test]
    fn drop_and_rename_column_forms() {
        assert_eq!(
            parse_alter_table("ALTER TABLE t DROP COLUMN a, \"B c\";")
                .unwrap()
                .action,
            AlterAction::DropColumns {
                names: vec!["a".into(), "B c".into()],
                if_exists: false
            }
        );
        assert_eq!(
            parse_alter_table("alter table t drop column if exists a")
                .unwrap()
                .action,
            AlterAction::DropColumns {
                names: vec!["a".into()],
                if_exists: true
            }
        );
        assert_eq!(
            parse_alter_table("ALTER TABLE t RENAME COLUMN a TO b")
                .unwrap()
                .action,
            AlterAction::RenameColumn {
                from: "a".into(),
                to: "b".into()
            }
        );
        for bad in [
            "ALTER TABLE t DROP COLUMN",
            "ALTER TABLE t DROP COLUMN a b",
            "ALTER TABLE t RENAME COLUMN a b",
            "ALTER TABLE t RENAME COLUMN a TO",
        ] {
            assert_eq!(
                parse_alter_table(bad).unwrap_err().kind,
                QueryErrorKind::Invalid,
                "{bad}"
            );
        }
        for (sql, named) in [
            (
                "ALTER TABLE t ALTER COLUMN s ADD INDEX",
                "ALTER TABLE ... ALTER COLUMN is not supported yet",
            ),
            (
                "ALTER TABLE t DETACH PARTITION LIST '2026-01-01'",
                "ALTER TABLE ... DETACH PARTITION is not supported yet",
            ),
        ] {
            let e = parse_alter_table(sql).unwrap_err();
            assert_eq!(e.kind, QueryErrorKind::Unsupported);
            assert!(e.message.contains(named), "{}", e.message);
        }
    }

    #[test]
    fn drop_partition_forms() {
        let drop = |sql: &str| parse_alter_table(sql).map(|a| a.action);
        assert_eq!(
            drop("ALTER TABLE t DROP PARTITION LIST '2026-01-01', '2026-01-02';").unwrap(),
            AlterAction::DropPartitions(PartitionSelection::List(vec![
                "2026-01-01".into(),
                "2026-01-02".into()
            ]))
        );
        assert_eq!(
            drop("alter table t drop partition where ts < dateadd('d', -30, now()) ;").unwrap(),
            AlterAction::DropPartitions(PartitionSelection::Where(
                "ts < dateadd('d', -30, now())".into()
            ))
        );
        for bad in [
            "ALTER TABLE t DROP PARTITION",
            "ALTER TABLE t DROP PARTITION LIST",
            "ALTER TABLE t DROP PARTITION LIST 2026",
            "ALTER TABLE t DROP PARTITION LIST '2026' x",
            "ALTER TABLE t DROP PARTITION WHERE ;",
        ] {
            assert_eq!(
                drop(bad).unwrap_err().kind,
                QueryErrorKind::Invalid,
                "{bad}"
            );
        }
    }

    #[test]
    fn set_ttl_forms() {
        use quiver_storage::{Ttl, TtlUnit};
        let ttl = |sql: &str| match parse_alter_table(sql).map(|a| a.action) {
            Ok(AlterAction::SetTtl(ttl)) => Ok(ttl),
            Ok(other) => panic!("{other:?}"),
            Err(e) => Err(e),
        };
        let days = |count| {
            Some(Ttl {
                count,
                unit: TtlUnit::Days,
            })
        };
        assert_eq!(ttl("ALTER TABLE t SET TTL 7 DAYS").unwrap(), days(7));
        assert_eq!(ttl("alter table t set ttl 1 day;").unwrap(), days(1));
        assert_eq!(ttl("ALTER TABLE t SET TTL 3d").unwrap(), days(3));
        assert_eq!(
            ttl("ALTER TABLE t SET TTL 2w").unwrap(),
            Some(Ttl {
                count: 2,
                unit: TtlUnit::Weeks
            })
        );
        assert_eq!(
            ttl("ALTER TABLE t SET TTL 12 HOURS").unwrap(),
            Some(Ttl {
                count: 12,
                unit: TtlUnit::Hours
            })
        );
        assert_eq!(
            ttl("ALTER TABLE t SET TTL 1M").unwrap(),
            Some(Ttl {
                count: 1,
                unit: TtlUnit::Months
            })
        );
        assert_eq!(ttl("ALTER TABLE t SET TTL 0").unwrap(), None);
        for bad in [
            "ALTER TABLE t SET TTL",
            "ALTER TABLE t SET TTL 7 FORTNIGHTS",
            "ALTER TABLE t SET TTL -1 DAYS",
            "ALTER TABLE t SET TTL 99999999999 DAYS",
            "ALTER TABLE t SET TTL 7 DAYS extra",
        ] {
            assert_eq!(ttl(bad).unwrap_err().kind, QueryErrorKind::Invalid, "{bad}");
        }
    }
}
