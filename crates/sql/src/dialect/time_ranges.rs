//! QuestDB's time ranges: `ts IN '2024'`, `'2024-01'`, `'2024-01-15'`,
//! `'2024-01-15T09:30'` (every row of that year, month, day, minute, ...),
//! and a modifier that moves the range's upper end: `'2018;1M'` is 2018
//! and January 2019, `'2024-01-15T09:30;1h'` runs from 09:30:00 to the end
//! of 10:30. SQL cannot parse `IN 'text'`, so the statement's text is
//! rewritten before parsing: `col IN 'range'` becomes
//! `(col >= 'start' AND col < 'end')`, which DataFusion plans as usual and
//! which prunes sealed segments like any bound on the designated timestamp
//! (`EXPLAIN` shows the range on the scan).
//!
//! The rest of QuestDB's TICK syntax (bracket lists, time zones, day
//! filters, `$now`, repetitions) is refused with an error naming it.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::time_arithmetic::add_nanos_by_unit;
use crate::error::{QueryError, QueryErrorKind};
use quiver_storage::calendar::{days_from_civil, days_in_month};

fn invalid(message: String) -> QueryError {
    QueryError::new(QueryErrorKind::Invalid, message)
}

/// `sql` with every `col IN 'range'` rewritten (see the module docs);
/// `None` when it has none.
pub fn rewrite(sql: &str) -> Result<Option<String>, QueryError> {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize_with_location() else {
        // The parser reports it.
        return Ok(None);
    };
    // Byte offset of each token's start (locations are 1-based line and
    // column in characters).
    let line_starts: Vec<usize> = std::iter::once(0)
        .chain(sql.match_indices('\n').map(|(i, _)| i + 1))
        .collect();
    let offset = |line: u64, column: u64| -> Option<usize> {
        let start = *line_starts.get(usize::try_from(line).ok()?.checked_sub(1)?)?;
        let skip = usize::try_from(column).ok()?.checked_sub(1)?;
        sql[start..]
            .char_indices()
            .nth(skip)
            .map(|(i, _)| start + i)
            .or(Some(sql.len()))
    };
    let significant: Vec<usize> = (0..tokens.len())
        .filter(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
        .collect();
    let mut out = String::new();
    let mut copied = 0;
    for (k, &i) in significant.iter().enumerate() {
        let is_in = matches!(&tokens[i].token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("IN"));
        let Some(&next) = significant.get(k + 1) else {
            continue;
        };
        let Token::SingleQuotedString(range) = &tokens[next].token else {
            continue;
        };
        if !is_in {
            continue;
        }
        // The column: identifiers joined by dots, right before IN.
        let word = |t: &Token| matches!(t, Token::Word(_));
        let Some(mut first) = k
            .checked_sub(1)
            .filter(|&p| word(&tokens[significant[p]].token))
        else {
            return Err(invalid(format!(
                "IN '{range}' needs a timestamp column on its left"
            )));
        };
        if matches!(&tokens[significant[first]].token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case("NOT"))
        {
            return Err(QueryError::new(
                QueryErrorKind::Unsupported,
                format!("NOT IN '{range}' is not supported yet: use NOT (ts IN '{range}')"),
            ));
        }
        while first >= 2
            && matches!(tokens[significant[first - 1]].token, Token::Period)
            && word(&tokens[significant[first - 2]].token)
        {
            first -= 2;
        }
        let (start, end) = parse_range(range)?;
        let from = offset(
            tokens[significant[first]].span.start.line,
            tokens[significant[first]].span.start.column,
        );
        let column_end = offset(
            tokens[significant[k - 1]].span.end.line,
            tokens[significant[k - 1]].span.end.column,
        );
        let to = offset(tokens[next].span.end.line, tokens[next].span.end.column);
        let (Some(from), Some(column_end), Some(to)) = (from, column_end, to) else {
            return Ok(None);
        };
        if from < copied {
            continue;
        }
        let column = &sql[from..column_end];
        out.push_str(&sql[copied..from]);
        out.push_str(&format!(
            "({column} >= '{}' AND {column} < '{}')",
            format_nanos(start),
            format_nanos(end)
        ));
        copied = to;
    }
    if copied == 0 {
        return Ok(None);
    }
    out.push_str(&sql[copied..]);
    Ok(Some(out))
}

/// The range a QuestDB time range text stands for, as nanoseconds since
/// the epoch: `[start, end)`.
pub fn parse_range(text: &str) -> Result<(i64, i64), QueryError> {
    let unsupported = |what: &str| {
        Err(QueryError::new(
            QueryErrorKind::Unsupported,
            format!("time range '{text}': {what} is not supported yet"),
        ))
    };
    if text.contains('[') {
        return unsupported("bracket expansion");
    }
    if text.contains('@') {
        return unsupported("a time zone");
    }
    if text.contains('#') {
        return unsupported("a day filter");
    }
    if text.contains('$') {
        return unsupported("a date variable");
    }
    let mut parts = text.split(';');
    let base = parts.next().unwrap_or_default().trim();
    let modifier = parts.next().map(str::trim);
    if parts.next().is_some() {
        return unsupported("a repeating interval");
    }
    let (start, end) = partial_timestamp(base)
        .ok_or_else(|| invalid(format!("invalid time range '{text}': expected e.g. '2024', '2024-01-15' or '2024-01-15T09:30;1h'")))?;
    let end = match modifier {
        None => end,
        Some(m) => {
            let bad = || {
                invalid(format!(
                    "invalid modifier '{m}' in time range '{text}': expected e.g. 1h, -3d, 1M"
                ))
            };
            let unit = m.chars().last().ok_or_else(bad)?;
            let n: i64 = m[..m.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
            add_nanos_by_unit(end, n, unit).ok_or_else(bad)?
        }
    };
    if end <= start {
        return Err(invalid(format!("time range '{text}' is empty")));
    }
    Ok((start, end))
}

/// The instant (nanoseconds since the epoch, UTC) a timestamp text such as
/// `'2024-01-15'` or `'2024-01-15T09:30:00.5Z'` starts at.
pub(crate) fn parse_timestamp(text: &str) -> Option<i64> {
    partial_timestamp(text.trim()).map(|(start, _)| start)
}

/// `[start, end)` of a partial timestamp `YYYY[-MM[-DD[(T| )HH[:MM[:SS[.f]]]]]][Z]`.
fn partial_timestamp(text: &str) -> Option<(i64, i64)> {
    let text = text.strip_suffix('Z').unwrap_or(text);
    let digits = |s: &str, n: usize| -> Option<u32> {
        (s.len() == n && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let (date, time) = match text.find(['T', ' ']) {
        Some(i) => (&text[..i], Some(&text[i + 1..])),
        None => (text, None),
    };
    let mut d = date.split('-');
    let year = i64::from(digits(d.next()?, 4)?);
    let month = d.next().map(|m| digits(m, 2)).unwrap_or(Some(0))?;
    let day = d.next().map(|x| digits(x, 2)).unwrap_or(Some(0))?;
    if d.next().is_some() || month > 12 || (month == 0 && day != 0) {
        return None;
    }
    const DAY: i64 = 86_400_000_000_000;
    if month == 0 {
        let start = days_from_civil(year, 1, 1).checked_mul(DAY)?;
        return Some((start, days_from_civil(year + 1, 1, 1).checked_mul(DAY)?));
    }
    if day == 0 {
        let start = days_from_civil(year, month, 1).checked_mul(DAY)?;
        return Some((
            start,
            start.checked_add(i64::from(days_in_month(year, month)) * DAY)?,
        ));
    }
    if day > days_in_month(year, month) {
        return None;
    }
    let midnight = days_from_civil(year, month, day).checked_mul(DAY)?;
    let Some(time) = time else {
        return Some((midnight, midnight.checked_add(DAY)?));
    };
    let (hms, fraction) = match time.split_once('.') {
        Some((hms, f)) => (hms, Some(f)),
        None => (time, None),
    };
    let mut t = hms.split(':');
    let hour = digits(t.next()?, 2)?;
    let minute = match t.next() {
        None => None,
        Some(m) => Some(digits(m, 2)?),
    };
    let second = match t.next() {
        None => None,
        Some(x) => Some(digits(x, 2)?),
    };
    if t.next().is_some()
        || hour > 23
        || minute.is_some_and(|m| m > 59)
        || second.is_some_and(|s| s > 59)
    {
        return None;
    }
    let mut start = midnight + i64::from(hour) * 3_600_000_000_000;
    let mut len = 3_600_000_000_000;
    if let Some(m) = minute {
        start += i64::from(m) * 60_000_000_000;
        len = 60_000_000_000;
    }
    if let Some(s) = second {
        start += i64::from(s) * 1_000_000_000;
        len = 1_000_000_000;
    }
    if let Some(f) = fraction {
        if second.is_none() || f.is_empty() || f.len() > 9 || !f.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let scale = 10i64.pow(9 - u32::try_from(f.len()).ok()?);
        start += f.parse::<i64>().ok()? * scale;
        len = scale;
    } else if minute.is_none() && second.is_none() && hms.len() != 2 {
        return None;
    }
    Some((start, start.checked_add(len)?))
}

/// `ns` as `YYYY-MM-DDTHH:MM:SS.fffffffffZ`.
pub(crate) fn format_nanos(ns: i64) -> String {
    const DAY: i64 = 86_400_000_000_000;
    let days = ns.div_euclid(DAY);
    let in_day = ns.rem_euclid(DAY);
    let (y, m, d) = quiver_storage::calendar::civil_from_days(days);
    let secs = in_day / 1_000_000_000;
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:09}Z",
        secs / 3_600,
        secs % 3_600 / 60,
        secs % 60,
        in_day % 1_000_000_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> (String, String) {
        let (s, e) = parse_range(text).unwrap();
        (format_nanos(s), format_nanos(e))
    }

    #[test]
    fn partial_timestamps_and_modifiers() {
        let r = |a: &str, b: &str| (a.to_string(), b.to_string());
        assert_eq!(
            range("2018"),
            r(
                "2018-01-01T00:00:00.000000000Z",
                "2019-01-01T00:00:00.000000000Z"
            )
        );
        assert_eq!(
            range("2024-02"),
            r(
                "2024-02-01T00:00:00.000000000Z",
                "2024-03-01T00:00:00.000000000Z"
            )
        );
        assert_eq!(
            range("2024-02-29"),
            r(
                "2024-02-29T00:00:00.000000000Z",
                "2024-03-01T00:00:00.000000000Z"
            )
        );
        assert_eq!(
            range("2018-05-23T12:15"),
            r(
                "2018-05-23T12:15:00.000000000Z",
                "2018-05-23T12:16:00.000000000Z"
            )
        );
        assert_eq!(
            range("2018-05-23 12"),
            r(
                "2018-05-23T12:00:00.000000000Z",
                "2018-05-23T13:00:00.000000000Z"
            )
        );
        assert_eq!(
            range("2018-05-23T12:15:07.25Z"),
            r(
                "2018-05-23T12:15:07.250000000Z",
                "2018-05-23T12:15:07.260000000Z"
            )
        );
        // The modifier moves the upper end (QuestDB's examples).
        assert_eq!(
            range("2018;1M"),
            r(
                "2018-01-01T00:00:00.000000000Z",
                "2019-02-01T00:00:00.000000000Z"
            )
        );
        assert_eq!(
            range("2018-01;-3d"),
            r(
                "2018-01-01T00:00:00.000000000Z",
                "2018-01-29T00:00:00.000000000Z"
            )
        );
        assert_eq!(
            range("2024-01-15T09:30;1h"),
            r(
                "2024-01-15T09:30:00.000000000Z",
                "2024-01-15T10:31:00.000000000Z"
            )
        );
        for bad in [
            "",
            "24",
            "2024-13",
            "2024-02-30",
            "2024-01-15T25",
            "2024-01-15T09:3",
            "2024;1x",
            "2024;-2y",
            "2024-01-15T09.5",
        ] {
            assert!(parse_range(bad).is_err(), "{bad}");
        }
        for unsupported in [
            "2024-01-[15,16]",
            "2024-01-15@America/New_York",
            "2024-01#workday",
            "$now-1h..$now",
            "2024;1d;1h;3",
        ] {
            assert_eq!(
                parse_range(unsupported).unwrap_err().kind,
                QueryErrorKind::Unsupported,
                "{unsupported}"
            );
        }
    }

    #[test]
    fn statements_are_rewritten_around_the_column() {
        assert_eq!(rewrite("SELECT 1").unwrap(), None);
        assert_eq!(rewrite("SELECT * FROM t WHERE x IN (1, 2)").unwrap(), None);
        assert_eq!(
            rewrite("SELECT * FROM t WHERE a = 1 AND t.ts IN '2024' ORDER BY ts")
                .unwrap()
                .unwrap(),
            "SELECT * FROM t WHERE a = 1 AND (t.ts >= '2024-01-01T00:00:00.000000000Z' AND t.ts < '2025-01-01T00:00:00.000000000Z') ORDER BY ts"
        );
        let two = rewrite("select * from t where ts in '2024-01-10' or \"ts\" in '2024-01-20'")
            .unwrap()
            .unwrap();
        assert!(two.contains("(ts >= '2024-01-10T00:00:00.000000000Z' AND ts < '2024-01-11T00:00:00.000000000Z') or (\"ts\" >= '2024-01-20"), "{two}");
        // Text in other places is left alone.
        assert_eq!(rewrite("SELECT 'x IN ''2024''' FROM t").unwrap(), None);
        assert!(rewrite("SELECT * FROM t WHERE ts NOT IN '2024'").is_err());
        assert!(rewrite("SELECT * FROM t WHERE 1 IN '2024'").is_err());
    }
}
