//! `CREATE TABLE` in QuestDB's form, parsed by hand (the SQL parser does
//! not know `TIMESTAMP(col) PARTITION BY DAY WAL` or QuestDB's type names):
//!
//! ```text
//! CREATE TABLE [IF NOT EXISTS] name (
//!     column TYPE [CAPACITY n] [CACHE | NOCACHE] [INDEX [CAPACITY n]], ...
//! ) [TIMESTAMP(column)] [PARTITION BY NONE|HOUR|DAY|WEEK|MONTH|YEAR]
//!   [TTL n HOURS|DAYS|WEEKS|MONTHS|YEARS] [WAL | BYPASS WAL] [;]
//! ```
//!
//! SYMBOL options are accepted and have no effect (the dictionary grows as
//! needed). `CREATE TABLE t AS (query) [TIMESTAMP(col)] [PARTITION BY
//! unit]` takes its columns from the query ([`CreateTableAs`]). Nothing here touches storage: the result is a checked
//! [`TableSchema`].

use datafusion::sql::sqlparser::tokenizer::Token;
use quiver_storage::{ColumnSchema, ColumnType, PartitionBy, TableSchema, Ttl, TtlUnit};

use super::tokens::{Tokens, describe, invalid};
use crate::error::{QueryError, QueryErrorKind};

/// A parsed `CREATE TABLE`.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTable {
    /// The table to create.
    pub schema: TableSchema,
    /// `IF NOT EXISTS` was given: an existing table is not an error.
    pub if_not_exists: bool,
}

/// A parsed `CREATE TABLE ... AS (SELECT ...)`: the table's columns are
/// the query's.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateTableAs {
    /// The table to create.
    pub name: String,
    /// `IF NOT EXISTS`: an existing table is left alone (nothing inserted).
    pub if_not_exists: bool,
    /// The query, as text.
    pub query: String,
    /// The designated timestamp's column name.
    pub timestamp: Option<String>,
    /// Partitioning.
    pub partition_by: PartitionBy,
    /// Time to live.
    pub ttl: Option<Ttl>,
}

/// What a `CREATE TABLE` statement is.
#[derive(Debug, Clone, PartialEq)]
pub enum Create {
    /// Columns listed.
    Table(CreateTable),
    /// Columns from a query.
    As(CreateTableAs),
}

/// The clauses after the column list (or the query).
struct TableOptions {
    timestamp: Option<String>,
    partition_by: Option<PartitionBy>,
    ttl: Option<Ttl>,
}

/// A TTL after the `TTL` keyword: `n UNIT` or `nU` (`7 DAYS`, `2w`,
/// `12 HOURS`, `1M`, `3y`); `0` (any unit or none) is no TTL.
pub(crate) fn parse_ttl(t: &mut Tokens) -> Result<Option<Ttl>, QueryError> {
    let (number, mut unit) = match t.next() {
        Some(Token::Number(n, _)) => (n, String::new()),
        Some(Token::Word(w)) if w.quote_style.is_none() => (w.value, String::new()),
        other => {
            return Err(invalid(format!(
                "TTL takes a number and a unit (such as 7 DAYS), not {}",
                describe(other.as_ref())
            )));
        }
    };
    let digits = number.bytes().take_while(u8::is_ascii_digit).count();
    let (count, glued) = number.split_at(digits);
    if !glued.is_empty() {
        unit = glued.to_string();
    } else if let Some(Token::Word(w)) = t.peek()
        && w.quote_style.is_none()
    {
        unit = w.value.clone();
        t.next();
    }
    let count: u32 = count
        .parse()
        .map_err(|_| invalid(format!("TTL {number} is not a whole number of units")))?;
    let unit = match unit.to_ascii_uppercase().as_str() {
        "H" | "HOUR" | "HOURS" => TtlUnit::Hours,
        "D" | "DAY" | "DAYS" => TtlUnit::Days,
        "W" | "WEEK" | "WEEKS" => TtlUnit::Weeks,
        "M" | "MONTH" | "MONTHS" => TtlUnit::Months,
        "Y" | "YEAR" | "YEARS" => TtlUnit::Years,
        "" if count == 0 => TtlUnit::Hours,
        other => {
            return Err(invalid(format!(
                "unknown TTL unit {other:?}: one of HOURS, DAYS, WEEKS, MONTHS, YEARS"
            )));
        }
    };
    Ok((count > 0).then_some(Ttl { count, unit }))
}

fn parse_table_options(t: &mut Tokens) -> Result<TableOptions, QueryError> {
    let mut options = TableOptions {
        timestamp: None,
        partition_by: None,
        ttl: None,
    };
    while !t.at_end() && !t.token(&Token::SemiColon) {
        if t.keyword("TIMESTAMP") {
            t.expect(&Token::LParen)?;
            options.timestamp = Some(t.name("column")?);
            t.expect(&Token::RParen)?;
        } else if t.keyword("PARTITION") {
            t.expect_keyword("BY")?;
            let unit = t.name("partition unit")?;
            options.partition_by = Some(PartitionBy::from_name(&unit).ok_or_else(|| {
                invalid(format!(
                    "unknown partition unit {unit}: one of NONE, HOUR, DAY, WEEK, MONTH, YEAR"
                ))
            })?);
        } else if t.keyword("TTL") {
            options.ttl = parse_ttl(t)?;
        } else if t.keyword("WAL") {
        } else if t.keyword("BYPASS") {
            t.expect_keyword("WAL")?;
        } else {
            return Err(QueryError::new(
                QueryErrorKind::Unsupported,
                format!(
                    "unexpected {} after the column list: CREATE TABLE takes TIMESTAMP(col), PARTITION BY unit, TTL n unit and WAL | BYPASS WAL",
                    t.describe_next()
                ),
            ));
        }
    }
    if !t.at_end() {
        return Err(invalid("one statement per query"));
    }
    Ok(options)
}

/// Checks and applies the options to `schema`.
pub(crate) fn apply_table_options(
    schema: &mut TableSchema,
    timestamp: Option<&str>,
    partition_by: Option<PartitionBy>,
    ttl: Option<Ttl>,
) -> Result<(), QueryError> {
    if let Some(column) = timestamp {
        let index = schema.column_index(column).ok_or_else(|| {
            invalid(format!(
                "the designated timestamp is not a column of the table [table={}, column={column}]",
                schema.name
            ))
        })?;
        schema.designated_timestamp = Some(index);
    }
    if let Some(p) = partition_by {
        if p != PartitionBy::None && schema.designated_timestamp.is_none() {
            return Err(invalid(format!(
                "PARTITION BY {} needs a designated timestamp: add TIMESTAMP(column) [table={}]",
                p.name(),
                schema.name
            )));
        }
        schema.partition_by = p;
    }
    schema.ttl = ttl;
    schema.validate()?;
    Ok(())
}

/// Parses a QuestDB `CREATE TABLE` (see the module docs).
pub fn parse_create_table(sql: &str) -> Result<CreateTable, QueryError> {
    match parse_create(sql)? {
        Create::Table(c) => Ok(c),
        Create::As(_) => Err(invalid("CREATE TABLE ... AS has no column list")),
    }
}

/// Parses a QuestDB `CREATE TABLE`, with a column list or `AS (query)`.
pub fn parse_create(sql: &str) -> Result<Create, QueryError> {
    let mut t = Tokens::new(sql)?;
    t.expect_keyword("CREATE")?;
    t.expect_keyword("TABLE")?;
    let if_not_exists = t.keyword("IF");
    if if_not_exists {
        t.expect_keyword("NOT")?;
        t.expect_keyword("EXISTS")?;
    }
    let name = t.name("table")?;
    if t.keyword("AS") {
        t.expect(&Token::LParen)?;
        let query = t.balanced_text()?;
        let options = parse_table_options(&mut t)?;
        if query.trim().is_empty() {
            return Err(invalid("CREATE TABLE ... AS needs a query in parentheses"));
        }
        return Ok(Create::As(CreateTableAs {
            name,
            if_not_exists,
            query,
            timestamp: options.timestamp,
            partition_by: options.partition_by.unwrap_or(PartitionBy::None),
            ttl: options.ttl,
        }));
    }
    t.expect(&Token::LParen)?;
    let mut columns = Vec::new();
    loop {
        let column = t.name("column")?;
        let column_type = parse_type(&mut t, &column)?;
        if column_type == ColumnType::Symbol {
            skip_symbol_options(&mut t)?;
        }
        columns.push(ColumnSchema::new(column, column_type));
        if t.token(&Token::Comma) {
            continue;
        }
        t.expect(&Token::RParen)?;
        break;
    }
    let mut schema = TableSchema {
        name,
        columns,
        designated_timestamp: None,
        partition_by: PartitionBy::None,
        version: 0,
        has_dropped_columns: false,
        ttl: None,
    };
    let options = parse_table_options(&mut t)?;
    apply_table_options(
        &mut schema,
        options.timestamp.as_deref(),
        options.partition_by,
        options.ttl,
    )?;
    Ok(Create::Table(CreateTable {
        schema,
        if_not_exists,
    }))
}

/// A column type: QuestDB's names and their common SQL aliases,
/// `GEOHASH(8c)`/`GEOHASH(40b)`, `DECIMAL(p, s)` and `[]` array ranks.
pub(crate) fn parse_type(t: &mut Tokens, column: &str) -> Result<ColumnType, QueryError> {
    let name = match t.next() {
        Some(Token::Word(w)) => w.value.to_ascii_uppercase(),
        other => {
            return Err(invalid(format!(
                "expected a type for column {column}, found {}",
                describe(other.as_ref())
            )));
        }
    };
    // Arguments in parentheses, as text ("8c", "38", "2").
    let mut args = Vec::new();
    if t.token(&Token::LParen) {
        let mut current = String::new();
        loop {
            match t.next() {
                Some(Token::RParen) => break,
                Some(Token::Comma) => args.push(std::mem::take(&mut current)),
                Some(Token::Number(n, _)) => current.push_str(&n),
                Some(Token::Word(w)) => current.push_str(&w.value),
                other => {
                    return Err(invalid(format!(
                        "unexpected {} in the type of column {column}",
                        describe(other.as_ref())
                    )));
                }
            }
        }
        args.push(current);
    }
    let mut rank = 0u8;
    while t.token(&Token::LBracket) {
        t.expect(&Token::RBracket)?;
        rank = rank.saturating_add(1);
    }
    let unknown = || invalid(format!("unknown type {name} for column {column}"));
    let plain = |ty: ColumnType| match args.is_empty() {
        true => Ok(ty),
        false => Err(invalid(format!(
            "type {name} of column {column} takes no arguments"
        ))),
    };
    let base = match name.as_str() {
        "BOOLEAN" | "BOOL" => plain(ColumnType::Boolean)?,
        "BYTE" | "TINYINT" => plain(ColumnType::Byte)?,
        "SHORT" | "SMALLINT" => plain(ColumnType::Short)?,
        "CHAR" => plain(ColumnType::Char)?,
        "INT" | "INTEGER" => plain(ColumnType::Int)?,
        "LONG" | "BIGINT" => plain(ColumnType::Long)?,
        "FLOAT" | "REAL" => plain(ColumnType::Float)?,
        "DOUBLE" => plain(ColumnType::Double)?,
        "SYMBOL" => plain(ColumnType::Symbol)?,
        "TIMESTAMP" => plain(ColumnType::Timestamp)?,
        "TIMESTAMP_NS" => plain(ColumnType::TimestampNanos)?,
        "DATE" => plain(ColumnType::Date)?,
        "UUID" => plain(ColumnType::Uuid)?,
        "LONG256" => plain(ColumnType::Long256)?,
        "VARCHAR" | "STRING" | "TEXT" => plain(ColumnType::Varchar)?,
        "BINARY" => plain(ColumnType::Binary)?,
        "IPV4" => plain(ColumnType::Ipv4)?,
        "GEOHASH" => geohash(&args, column)?,
        "DECIMAL" | "NUMERIC" => decimal(&args, column)?,
        _ => return Err(unknown()),
    };
    Ok(match (rank, base) {
        (0, ty) => ty,
        (r, ColumnType::Double) => ColumnType::DoubleArray(r),
        (r, ColumnType::Long) => ColumnType::LongArray(r),
        _ => {
            return Err(invalid(format!(
                "arrays of {name} are not supported (column {column}): DOUBLE[] and LONG[] are"
            )));
        }
    })
}

/// `GEOHASH(Nc)` (N base-32 characters, 5 bits each) or `GEOHASH(Nb)`.
fn geohash(args: &[String], column: &str) -> Result<ColumnType, QueryError> {
    let bad = || {
        invalid(format!(
            "GEOHASH needs a precision such as GEOHASH(8c) or GEOHASH(40b), 1 to 60 bits (column {column})"
        ))
    };
    let [arg] = args else { return Err(bad()) };
    let arg = arg.to_ascii_lowercase();
    let (digits, per) = match (arg.strip_suffix('c'), arg.strip_suffix('b')) {
        (Some(d), _) => (d, 5u32),
        (_, Some(d)) => (d, 1u32),
        _ => return Err(bad()),
    };
    let bits = digits
        .parse::<u32>()
        .ok()
        .and_then(|n| n.checked_mul(per))
        .filter(|b| (1..=60).contains(b))
        .ok_or_else(bad)?;
    Ok(ColumnType::Geohash(u8::try_from(bits).map_err(|_| bad())?))
}

/// `DECIMAL(p, s)`: stored in the narrowest of 64, 128 and 256 bits that
/// holds `p` digits (precision 18, 38 or 76).
fn decimal(args: &[String], column: &str) -> Result<ColumnType, QueryError> {
    let bad = || {
        invalid(format!(
            "DECIMAL needs a precision (1 to 76) and a scale (0 to the precision): DECIMAL(p, s) (column {column})"
        ))
    };
    let [p, s] = args else { return Err(bad()) };
    let (p, s) = match (p.parse::<u8>(), s.parse::<u8>()) {
        (Ok(p), Ok(s)) if (1..=76).contains(&p) && s <= p => (p, s),
        _ => return Err(bad()),
    };
    Ok(match p {
        1..=18 => ColumnType::Decimal64(s),
        19..=38 => ColumnType::Decimal128(s),
        _ => ColumnType::Decimal256(s),
    })
}

/// SYMBOL's `CAPACITY n`, `CACHE`/`NOCACHE` and `INDEX [CAPACITY n]`.
pub(crate) fn skip_symbol_options(t: &mut Tokens) -> Result<(), QueryError> {
    loop {
        if t.keyword("CAPACITY") {
            match t.next() {
                Some(Token::Number(..)) => {}
                other => {
                    return Err(invalid(format!(
                        "expected a number after CAPACITY, found {}",
                        describe(other.as_ref())
                    )));
                }
            }
        } else if t.keyword("CACHE") || t.keyword("NOCACHE") || t.keyword("INDEX") {
        } else {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questdb_create_table() {
        let c = parse_create_table(
            "CREATE TABLE IF NOT EXISTS trades (sym SYMBOL CAPACITY 256 NOCACHE INDEX, \
             px DOUBLE, qty long, g GEOHASH(8c), g2 geohash(3b), d DECIMAL(10, 2), \
             big decimal(60,10), m DOUBLE[][], ts TIMESTAMP, \"odd name\" varchar) \
             TIMESTAMP(ts) PARTITION BY MONTH WAL;",
        )
        .unwrap();
        assert!(c.if_not_exists);
        let s = &c.schema;
        assert_eq!(s.name, "trades");
        let types: Vec<ColumnType> = s.columns.iter().map(|c| c.column_type).collect();
        assert_eq!(
            types,
            [
                ColumnType::Symbol,
                ColumnType::Double,
                ColumnType::Long,
                ColumnType::Geohash(40),
                ColumnType::Geohash(3),
                ColumnType::Decimal64(2),
                ColumnType::Decimal256(10),
                ColumnType::DoubleArray(2),
                ColumnType::Timestamp,
                ColumnType::Varchar,
            ]
        );
        assert_eq!(s.columns[9].name, "odd name");
        assert_eq!(s.designated_timestamp, Some(8));
        assert_eq!(s.partition_by, PartitionBy::Month);

        let plain = parse_create_table("create table t (x int)").unwrap();
        assert!(!plain.if_not_exists);
        assert_eq!(plain.schema.partition_by, PartitionBy::None);
        assert_eq!(plain.schema.designated_timestamp, None);
    }

    #[test]
    fn bad_create_table_names_the_problem() {
        for (sql, needle) in [
            ("CREATE TABLE t (x WIDGET)", "unknown type WIDGET"),
            (
                "CREATE TABLE t (x INT) TIMESTAMP(y)",
                "designated timestamp",
            ),
            (
                "CREATE TABLE t (x INT) TIMESTAMP(x)",
                "TIMESTAMP or TIMESTAMP_NS",
            ),
            (
                "CREATE TABLE t (x INT) PARTITION BY DAY",
                "needs a designated",
            ),
            (
                "CREATE TABLE t (ts TIMESTAMP) TIMESTAMP(ts) PARTITION BY DECADE",
                "unknown partition unit",
            ),
            ("CREATE TABLE t (x GEOHASH(13c))", "GEOHASH needs"),
            ("CREATE TABLE t (x DECIMAL(80, 2))", "DECIMAL needs"),
            ("CREATE TABLE t (x DECIMAL)", "DECIMAL needs"),
            ("CREATE TABLE t (x INT, X LONG)", "duplicate column"),
            ("CREATE TABLE t (x INT", "expected"),
            ("CREATE TABLE t AS SELECT 1", "expected '('"),
            ("CREATE TABLE t (x INT) DEDUP UPSERT KEYS(x)", "DEDUP"),
            ("CREATE TABLE t (x SYMBOL[])", "arrays of SYMBOL"),
        ] {
            let e = parse_create_table(sql).unwrap_err();
            assert!(e.message.contains(needle), "{sql}: {}", e.message);
        }
    }
}
