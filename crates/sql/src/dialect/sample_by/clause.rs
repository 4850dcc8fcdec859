//! The `SAMPLE BY` clause as written: found in the statement's tokens,
//! read into a [`SampleByClause`], and cut out of the text (replaced by a
//! marker `GROUP BY` the plan rewrite finds again), since sqlparser cannot
//! parse it.
//!
//! ```text
//! SAMPLE BY <n><unit>
//!     [FROM <timestamp>] [TO <timestamp>]
//!     [FILL(<NONE | NULL | PREV | LINEAR | constant>, ...)]
//!     [ALIGN TO CALENDAR [TIME ZONE '<tz>'] [WITH OFFSET '<+hh:mm>']
//!      | ALIGN TO FIRST OBSERVATION]
//! ```

use datafusion::sql::sqlparser::tokenizer::Token;

use super::bucketing::SampleUnit;
use crate::dialect::time_ranges::parse_timestamp;
use crate::dialect::time_zones::Zone;
use crate::error::{QueryError, QueryErrorKind};
use crate::write::tokens::{Tokens, describe};

/// The identifier that stands in for a cut-out clause, numbered.
pub const MARKER: &str = "__quiver_sample_by_";

fn invalid(message: impl Into<String>) -> QueryError {
    QueryError::new(QueryErrorKind::Invalid, message)
}

/// How an aggregate column's empty buckets are filled.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub enum Fill {
    /// No row for an empty bucket.
    None,
    /// NULL.
    Null,
    /// The key's previous value.
    Prev,
    /// Interpolated between the key's previous and next values.
    Linear,
    /// A constant, as written (cast to the column's type).
    Value(String),
}

/// Where bucket 0 starts.
#[derive(Debug, Clone, PartialEq)]
pub enum Align {
    /// At calendar boundaries in `zone` (UTC when `None`), moved by
    /// `offset` nanoseconds.
    Calendar {
        /// The time zone (UTC when `None`).
        zone: Option<Zone>,
        /// `WITH OFFSET`, nanoseconds.
        offset: i64,
    },
    /// At the first row's timestamp.
    FirstObservation,
}

/// One `SAMPLE BY` clause (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleByClause {
    /// Units per bucket.
    pub stride: i64,
    /// The unit.
    pub unit: SampleUnit,
    /// `FROM`, nanoseconds since the epoch.
    pub from: Option<i64>,
    /// `TO` (exclusive), nanoseconds since the epoch.
    pub to: Option<i64>,
    /// `FILL(...)` as written; empty without FILL.
    pub fill: Vec<Fill>,
    /// `ALIGN TO ...`.
    pub align: Align,
    /// The text as written, for EXPLAIN and errors.
    pub text: String,
}

impl SampleByClause {
    /// Whether any column is filled.
    pub fn fills(&self) -> bool {
        self.fill.iter().any(|f| *f != Fill::None)
    }
}

/// `sql` with each `SAMPLE BY` clause replaced by `GROUP BY "<MARKER>i"`,
/// and the clauses in order; `None` when it has none.
pub fn extract(sql: &str) -> Result<Option<(String, Vec<SampleByClause>)>, QueryError> {
    if !crate::dialect::clause_markers::mentions(sql, "sample") {
        return Ok(None);
    }
    let Ok(mut tokens) = Tokens::new(sql) else {
        // The parser reports it.
        return Ok(None);
    };
    let mut clauses = Vec::new();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    while i + 1 < tokens.len() {
        if !(is_word(tokens.get(i), "SAMPLE") && is_word(tokens.get(i + 1), "BY")) {
            i += 1;
            continue;
        }
        tokens.seek(i + 2);
        let clause = read_clause(&mut tokens)?;
        let end_token = tokens.position();
        let (Some((start, _)), Some((_, end))) =
            (tokens.span(i), tokens.span(end_token.saturating_sub(1)))
        else {
            return Ok(None);
        };
        let mut clause = clause;
        clause.text = sql[start..end].to_string();
        out.push_str(&sql[copied..start]);
        out.push_str(&format!("GROUP BY \"{MARKER}{}\"", clauses.len()));
        copied = end;
        clauses.push(clause);
        i = end_token;
    }
    if clauses.is_empty() {
        return Ok(None);
    }
    out.push_str(&sql[copied..]);
    Ok(Some((out, clauses)))
}

fn is_word(t: Option<&Token>, word: &str) -> bool {
    matches!(t, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// Reads the clause after `SAMPLE BY`, leaving `tokens` after its last
/// token.
fn read_clause(tokens: &mut Tokens) -> Result<SampleByClause, QueryError> {
    let (stride, unit) = read_stride(tokens)?;
    let mut clause = SampleByClause {
        stride,
        unit,
        from: None,
        to: None,
        fill: Vec::new(),
        align: Align::Calendar {
            zone: None,
            offset: 0,
        },
        text: String::new(),
    };
    let mut seen_align = false;
    loop {
        if tokens.keyword("FROM") {
            clause.from = Some(read_bound(tokens, "FROM")?);
        } else if tokens.keyword("TO") {
            clause.to = Some(read_bound(tokens, "TO")?);
        } else if tokens.keyword("FILL") {
            if !clause.fill.is_empty() {
                return Err(invalid("SAMPLE BY has FILL twice"));
            }
            clause.fill = read_fill(tokens)?;
        } else if tokens.keyword("ALIGN") {
            if seen_align {
                return Err(invalid("SAMPLE BY has ALIGN TO twice"));
            }
            seen_align = true;
            tokens.expect_keyword("TO")?;
            clause.align = read_align(tokens)?;
        } else {
            break;
        }
    }
    if let (Some(from), Some(to)) = (clause.from, clause.to)
        && from >= to
    {
        return Err(invalid(format!(
            "SAMPLE BY ... FROM must be before TO ({} is not before {})",
            crate::dialect::time_ranges::format_nanos(from),
            crate::dialect::time_ranges::format_nanos(to)
        )));
    }
    Ok(clause)
}

/// `<n><unit>`: `1h`, `15m`, `3M` (a number and a letter, with or without
/// a space).
fn read_stride(tokens: &mut Tokens) -> Result<(i64, SampleUnit), QueryError> {
    let text = match tokens.next() {
        Some(Token::Number(n, _)) => match tokens.peek() {
            Some(Token::Word(w)) if w.quote_style.is_none() => {
                let unit = w.value.clone();
                tokens.next();
                format!("{n}{unit}")
            }
            other => {
                return Err(invalid(format!(
                    "SAMPLE BY {n} needs a unit (n U T s m h d w M y), found {}",
                    describe(other)
                )));
            }
        },
        Some(Token::Word(w)) if w.quote_style.is_none() => w.value,
        other => {
            return Err(invalid(format!(
                "SAMPLE BY needs a stride such as 1h or 15m, found {}",
                describe(other.as_ref())
            )));
        }
    };
    let bad = || {
        invalid(format!(
            "invalid SAMPLE BY stride '{text}': expected a positive number and a unit (n U T s m h d w M y), e.g. 15m"
        ))
    };
    let letter = text.chars().last().ok_or_else(bad)?;
    let unit = SampleUnit::from_letter(letter).ok_or_else(bad)?;
    let digits = &text[..text.len() - letter.len_utf8()];
    let stride = match digits {
        "" => 1,
        d => d.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(bad)?,
    };
    Ok((stride, unit))
}

/// A FROM or TO bound: a timestamp text or microseconds since the epoch.
fn read_bound(tokens: &mut Tokens, what: &str) -> Result<i64, QueryError> {
    match tokens.next() {
        Some(Token::SingleQuotedString(s)) => parse_timestamp(&s).ok_or_else(|| {
            invalid(format!(
                "SAMPLE BY ... {what} '{s}' is not a timestamp (e.g. '2024-01-15' or '2024-01-15T09:30:00Z')"
            ))
        }),
        Some(Token::Number(n, _)) => n
            .parse::<i64>()
            .ok()
            .and_then(|micros| micros.checked_mul(1_000))
            .ok_or_else(|| invalid(format!("SAMPLE BY ... {what} {n} is not a timestamp"))),
        other => Err(QueryError::new(
            QueryErrorKind::Unsupported,
            format!(
                "SAMPLE BY ... {what} takes a timestamp literal such as '2024-01-15', found {}",
                describe(other.as_ref())
            ),
        )),
    }
}

/// `( option, ... )` after FILL.
fn read_fill(tokens: &mut Tokens) -> Result<Vec<Fill>, QueryError> {
    tokens.expect(&Token::LParen)?;
    let mut fill = Vec::new();
    loop {
        let negative = tokens.token(&Token::Minus);
        let option = match tokens.next() {
            Some(Token::Number(n, _)) => Fill::Value(match negative {
                true => format!("-{n}"),
                false => n,
            }),
            Some(Token::SingleQuotedString(s)) if !negative => Fill::Value(s),
            Some(Token::Word(w)) if !negative && w.quote_style.is_none() => {
                match w.value.to_ascii_uppercase().as_str() {
                    "NONE" => Fill::None,
                    "NULL" => Fill::Null,
                    "PREV" => Fill::Prev,
                    "LINEAR" => Fill::Linear,
                    _ => {
                        return Err(invalid(format!(
                            "unknown FILL option '{}': expected NONE, NULL, PREV, LINEAR or a constant",
                            w.value
                        )));
                    }
                }
            }
            other => {
                return Err(invalid(format!(
                    "FILL expects NONE, NULL, PREV, LINEAR or a constant, found {}",
                    describe(other.as_ref())
                )));
            }
        };
        fill.push(option);
        if tokens.token(&Token::RParen) {
            return Ok(fill);
        }
        tokens.expect(&Token::Comma)?;
    }
}

/// What follows `ALIGN TO`.
fn read_align(tokens: &mut Tokens) -> Result<Align, QueryError> {
    if tokens.keyword("FIRST") {
        tokens.expect_keyword("OBSERVATION")?;
        return Ok(Align::FirstObservation);
    }
    tokens.expect_keyword("CALENDAR")?;
    let mut zone = None;
    let mut offset = 0;
    if tokens.keyword("TIME") {
        tokens.expect_keyword("ZONE")?;
        let text = quoted(tokens, "TIME ZONE")?;
        zone = Some(Zone::parse(&text).ok_or_else(|| {
            invalid(format!(
                "unknown time zone '{text}' (expected e.g. 'Europe/Berlin' or '+01:00')"
            ))
        })?);
        // A fixed zone of +00:00 cuts buckets as UTC does.
        if zone == Zone::parse("UTC") {
            zone = None;
        }
    }
    if tokens.keyword("WITH") {
        tokens.expect_keyword("OFFSET")?;
        let text = quoted(tokens, "WITH OFFSET")?;
        offset = parse_offset(&text).ok_or_else(|| {
            invalid(format!(
                "invalid offset '{text}' (expected [+-]hh:mm, e.g. '+01:30')"
            ))
        })?;
    }
    Ok(Align::Calendar { zone, offset })
}

fn quoted(tokens: &mut Tokens, what: &str) -> Result<String, QueryError> {
    match tokens.next() {
        Some(Token::SingleQuotedString(s)) => Ok(s),
        other => Err(invalid(format!(
            "{what} takes a quoted text, found {}",
            describe(other.as_ref())
        ))),
    }
}

/// `[+-]hh:mm` as nanoseconds.
fn parse_offset(text: &str) -> Option<i64> {
    let t = text.trim();
    let (sign, rest) = match t.strip_prefix('-') {
        Some(r) => (-1, r),
        None => (1, t.strip_prefix('+').unwrap_or(t)),
    };
    let (h, m) = rest.split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: i64 = h.parse().ok()?;
    let m: i64 = m.parse().ok()?;
    (h <= 23 && m <= 59).then_some(sign * (h * 3_600 + m * 60) * 1_000_000_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> (String, SampleByClause) {
        let (text, mut clauses) = extract(sql).unwrap().unwrap();
        assert_eq!(clauses.len(), 1);
        (text, clauses.remove(0))
    }

    #[test]
    fn cuts_the_clause_out_and_reads_it() {
        let (text, c) = one(
            "SELECT ts, avg(px) FROM t WHERE px > 0 SAMPLE BY 15m FROM '2024-01-01' TO '2024-01-02' FILL(PREV, 0, -1.5) ALIGN TO CALENDAR TIME ZONE 'Europe/Berlin' WITH OFFSET '-00:30' ORDER BY ts LIMIT 3",
        );
        assert_eq!(
            text,
            "SELECT ts, avg(px) FROM t WHERE px > 0 GROUP BY \"__quiver_sample_by_0\" ORDER BY ts LIMIT 3"
        );
        assert_eq!((c.stride, c.unit), (15, SampleUnit::Minute));
        assert_eq!(c.from, parse_timestamp("2024-01-01"));
        assert_eq!(c.to, parse_timestamp("2024-01-02"));
        assert_eq!(
            c.fill,
            vec![
                Fill::Prev,
                Fill::Value("0".into()),
                Fill::Value("-1.5".into())
            ]
        );
        assert_eq!(
            c.align,
            Align::Calendar {
                zone: Zone::parse("Europe/Berlin"),
                offset: -30 * 60 * 1_000_000_000
            }
        );
        assert!(c.text.starts_with("SAMPLE BY 15m") && c.text.ends_with("'-00:30'"));
    }

    #[test]
    fn several_clauses_in_subqueries_and_first_observation() {
        let (text, clauses) = extract(
            "SELECT * FROM (SELECT ts, sum(x) FROM t SAMPLE BY 1d ALIGN TO FIRST OBSERVATION) a JOIN (SELECT ts, max(y) FROM u SAMPLE BY 1 d) b ON a.ts = b.ts",
        )
        .unwrap()
        .unwrap();
        assert!(text.contains("FROM t GROUP BY \"__quiver_sample_by_0\") a"));
        assert!(text.contains("FROM u GROUP BY \"__quiver_sample_by_1\") b"));
        assert_eq!(clauses[0].align, Align::FirstObservation);
        assert_eq!((clauses[1].stride, clauses[1].unit), (1, SampleUnit::Day));
        assert!(extract("SELECT 'SAMPLE BY 1h' FROM t").unwrap().is_none());
    }

    #[test]
    fn clear_errors() {
        for (sql, says) in [
            (
                "SELECT ts FROM t SAMPLE BY 0h",
                "invalid SAMPLE BY stride '0h'",
            ),
            (
                "SELECT ts FROM t SAMPLE BY 1q",
                "invalid SAMPLE BY stride '1q'",
            ),
            (
                "SELECT ts FROM t SAMPLE BY 1h FILL(MAGIC)",
                "unknown FILL option 'MAGIC'",
            ),
            ("SELECT ts FROM t SAMPLE BY 1h FILL(PREV", "expected ','"),
            (
                "SELECT ts FROM t SAMPLE BY 1h ALIGN TO CALENDAR TIME ZONE 'Mars/Base'",
                "unknown time zone 'Mars/Base'",
            ),
            (
                "SELECT ts FROM t SAMPLE BY 1h ALIGN TO CALENDAR WITH OFFSET '1h'",
                "invalid offset '1h'",
            ),
            (
                "SELECT ts FROM t SAMPLE BY 1h FROM '2024-02-01' TO '2024-01-01'",
                "FROM must be before TO",
            ),
            (
                "SELECT ts FROM t SAMPLE BY 1h FROM 'soon'",
                "is not a timestamp",
            ),
        ] {
            let e = extract(sql).unwrap_err().to_string();
            assert!(e.contains(says), "{sql}: {e}");
        }
    }
}
