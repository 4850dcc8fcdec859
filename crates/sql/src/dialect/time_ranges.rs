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
//! QuestDB's TICK syntax on top (`date [T time] [@zone] [#days] [;duration]`):
//!
//! - bracket expansion in any field: `'2024-01-[15,16,20..22]'`,
//!   `'2024-01-15T[09:00,14:30]'` (every combination; numbers zero-padded);
//! - date lists: `'[2024-01-15, 2024-03-20]T09:30'`;
//! - date variables: `$now`, `$today`, `$yesterday`, `$tomorrow`, with
//!   arithmetic (`$now - 2h`) and ranges (`'$now-1h..$now'`), evaluated
//!   when the statement starts;
//! - a time zone for the wall-clock texts: `'2024-01-15T09:30@America/New_York'`
//!   (a time that happens twice reads as the first, one skipped as the
//!   offset before the change);
//! - day filters on each interval's local start: `#workday`, `#weekend`,
//!   `#Mon,Wed,Fri`;
//! - durations made of several units: `;6h30m`.
//!
//! Several intervals become `((col >= a AND col < b) OR ...)`, overlapping
//! ones merged; pruning uses their hull. Repetitions (`;1h;1d;5`), ISO weeks
//! and business-day arithmetic are refused by name; an expansion past
//! 10,000 intervals is an error.

use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};

use super::time_arithmetic::add_nanos_by_unit;
use super::time_zones::Zone;
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
        let intervals = parse_range(range)?;
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
        let bounds: Vec<String> = intervals
            .iter()
            .map(|(start, end)| {
                format!(
                    "({column} >= '{}' AND {column} < '{}')",
                    format_nanos(*start),
                    format_nanos(*end)
                )
            })
            .collect();
        // A balanced tree of ORs: its depth grows with the log of the
        // number of intervals, so planning never recurses deeply.
        out.push_str(&balanced_or(&bounds));
        if out.len() > MAX_REWRITTEN {
            return Err(invalid(format!(
                "time ranges expand the statement past {MAX_REWRITTEN} bytes"
            )));
        }
        copied = to;
    }
    if copied == 0 {
        return Ok(None);
    }
    out.push_str(&sql[copied..]);
    Ok(Some(out))
}

/// Longest statement the time-range rewrite may produce.
const MAX_REWRITTEN: usize = 4 << 20;

/// `parts` joined by OR as a balanced tree of parenthesized pairs.
fn balanced_or(parts: &[String]) -> String {
    match parts {
        [] => "FALSE".to_string(),
        [one] => one.clone(),
        _ => {
            let (a, b) = parts.split_at(parts.len() / 2);
            format!("({} OR {})", balanced_or(a), balanced_or(b))
        }
    }
}

/// Most intervals one time range may stand for.
const MAX_INTERVALS: usize = 10_000;

const DAY: i64 = 86_400_000_000_000;

fn unsupported(text: &str, what: &str) -> QueryError {
    QueryError::new(
        QueryErrorKind::Unsupported,
        format!("time range '{text}': {what} is not supported yet"),
    )
}

/// The intervals a QuestDB time range text stands for, as nanoseconds
/// since the epoch (`[start, end)`, sorted, overlaps merged).
pub fn parse_range(text: &str) -> Result<Vec<(i64, i64)>, QueryError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_nanos()).ok())
        .unwrap_or(0);
    parse_range_at(text, now)
}

/// Longest time range text, and deepest bracket nesting, accepted.
const MAX_TEXT: usize = 512;
const MAX_NESTING: usize = 4;

/// [`parse_range`] with `$now` at `now`.
fn parse_range_at(text: &str, now: i64) -> Result<Vec<(i64, i64)>, QueryError> {
    if text.len() > MAX_TEXT {
        return Err(invalid(format!(
            "time range of {} bytes: at most {MAX_TEXT}",
            text.len()
        )));
    }
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '[' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(invalid(format!(
                        "time range '{text}' nests brackets deeper than {MAX_NESTING}"
                    )));
                }
            }
            ']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    let mut parts = text.split(';');
    let head = parts.next().unwrap_or_default();
    let duration = parts.next().map(str::trim);
    if parts.next().is_some() {
        return Err(unsupported(text, "a repeating interval"));
    }
    let (head, days) = match head.split_once('#') {
        Some((h, f)) => (h, Some(day_filter(text, f.trim())?)),
        None => (head, None),
    };
    let (head, zone) = match head.split_once('@') {
        Some((h, z)) => (
            h,
            Some(Zone::parse(z.trim()).ok_or_else(|| {
                invalid(format!(
                    "unknown time zone '{}' in time range '{text}'",
                    z.trim()
                ))
            })?),
        ),
        None => (head, None),
    };
    let bad = || {
        invalid(format!(
            "invalid time range '{text}': expected e.g. '2024', '2024-01-15', '2024-01-[15..17]T09:30', '$now-1h..$now' or '2024-01-15T09:30;1h'"
        ))
    };
    let mut entries = Vec::new();
    expand(text, head.trim(), now, &mut entries)?;
    let extend = match duration {
        None => 0,
        Some(d) => parse_duration(d).ok_or_else(|| {
            invalid(format!(
                "invalid modifier '{d}' in time range '{text}': expected e.g. 1h, -3d, 1M or 6h30m"
            ))
        })?,
    };
    let mut out = Vec::new();
    for entry in entries {
        let (mut start, mut end, wall_clock) = match entry {
            Entry::Text(t) => match partial_timestamp(&t) {
                Some((s, e)) => (s, e, true),
                // `[01..31]` over a shorter month: the missing days.
                None if past_month_end(&t) => continue,
                None => return Err(bad()),
            },
            Entry::Absolute(s, e) => (s, e, false),
        };
        if let Some(days) = &days {
            let weekday = usize::try_from((start.div_euclid(DAY) + 3).rem_euclid(7)).unwrap_or(0);
            if !days[weekday] {
                continue;
            }
        }
        if let (Some(z), true) = (zone, wall_clock) {
            let to_utc = |local: i64| -> Option<i64> {
                let offset = z.offset_at_local(local.div_euclid(1_000_000_000))?;
                local.checked_sub(offset.checked_mul(1_000_000_000)?)
            };
            start = to_utc(start).ok_or_else(bad)?;
            end = to_utc(end).ok_or_else(bad)?;
        }
        if extend != 0 {
            end = match duration {
                // Calendar units move the end by the calendar.
                Some(d) if d.ends_with(['M', 'y']) => {
                    let unit = d.chars().last().unwrap_or('d');
                    let n: i64 = d[..d.len() - 1].parse().map_err(|_| bad())?;
                    add_nanos_by_unit(end, n, unit).ok_or_else(bad)?
                }
                _ => end.checked_add(extend).ok_or_else(bad)?,
            };
        }
        if end <= start {
            return Err(invalid(format!("time range '{text}' is empty")));
        }
        out.push((start, end));
    }
    if out.is_empty() {
        return Err(invalid(format!(
            "time range '{text}' keeps no day (its day filter excludes every one)"
        )));
    }
    Ok(quiver_storage::db::merge_ranges(out))
}

/// Whether `text` is a date whose day (29..31) is past its month's end.
fn past_month_end(text: &str) -> bool {
    let date = text.split(['T', ' ']).next().unwrap_or_default();
    let mut parts = date.split('-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(y), Ok(m), Ok(d)) = (y.parse::<i64>(), m.parse::<u32>(), d.parse::<u32>()) else {
        return false;
    };
    (1..=12).contains(&m) && (29..=31).contains(&d) && d > days_in_month(y, m)
}

/// One expanded date part.
enum Entry {
    /// A partial timestamp in wall-clock time (the zone applies).
    Text(String),
    /// An interval already in UTC (date variables).
    Absolute(i64, i64),
}

/// The index of the `]` closing the `[` at `open`.
fn closing(s: &str, open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, c) in s[open..].char_indices() {
        match c {
            '[' => depth += 1,
            ']' => {
                depth -= 1;
                if depth == 0 {
                    return Some(open + i);
                }
            }
            _ => {}
        }
    }
    None
}

/// `s` split at commas outside brackets.
fn top_level_items(s: &str) -> Vec<&str> {
    let mut items = Vec::new();
    let (mut depth, mut from) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            ',' if depth == 0 => {
                items.push(&s[from..i]);
                from = i + 1;
            }
            _ => {}
        }
    }
    items.push(&s[from..]);
    items
}

fn is_digits(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// Expands the date part `head` (lists, brackets, variables) into
/// entries, at most [`MAX_INTERVALS`].
fn expand(text: &str, head: &str, now: i64, out: &mut Vec<Entry>) -> Result<(), QueryError> {
    let too_many = || {
        invalid(format!(
            "time range '{text}' expands to more than {MAX_INTERVALS} intervals"
        ))
    };
    let unclosed = || invalid(format!("invalid time range '{text}': a '[' is not closed"));
    if head.starts_with('$') {
        if out.len() >= MAX_INTERVALS {
            return Err(too_many());
        }
        out.push(variable_range(text, head, now)?);
        return Ok(());
    }
    let Some(open) = head.find('[') else {
        if out.len() >= MAX_INTERVALS {
            return Err(too_many());
        }
        out.push(Entry::Text(head.to_string()));
        return Ok(());
    };
    let close = closing(head, open).ok_or_else(unclosed)?;
    let (before, inner, after) = (&head[..open], &head[open + 1..close], &head[close + 1..]);
    for item in top_level_items(inner) {
        let item = item.trim();
        match item.split_once("..") {
            Some((a, b)) if is_digits(a.trim()) && is_digits(b.trim()) => {
                let (a, b) = (a.trim(), b.trim());
                let width = a.len().clamp(2, 9);
                let (lo, hi): (u64, u64) = (
                    a.parse().map_err(|_| too_many())?,
                    b.parse().map_err(|_| too_many())?,
                );
                if hi < lo {
                    return Err(invalid(format!(
                        "invalid time range '{text}': the range [{item}] runs backwards"
                    )));
                }
                if hi - lo >= MAX_INTERVALS as u64 {
                    return Err(too_many());
                }
                for v in lo..=hi {
                    expand(text, &format!("{before}{v:0width$}{after}"), now, out)?;
                }
            }
            // A range of dates or variables in a date list: one interval.
            Some(_) if before.is_empty() => {
                if out.len() >= MAX_INTERVALS {
                    return Err(too_many());
                }
                out.push(variable_range(text, item, now)?);
            }
            _ if is_digits(item) => {
                let width = item.len().clamp(2, 9);
                let v: u64 = item.parse().map_err(|_| too_many())?;
                expand(text, &format!("{before}{v:0width$}{after}"), now, out)?;
            }
            _ => expand(text, &format!("{before}{item}{after}"), now, out)?,
        }
    }
    Ok(())
}

/// `$now`, `$today`, `$yesterday`, `$tomorrow` with `± n unit`s, or a
/// literal date; or `a..b` of those: an interval in UTC.
fn variable_range(text: &str, item: &str, now: i64) -> Result<Entry, QueryError> {
    let bad = || {
        invalid(format!(
            "invalid date variable '{item}' in time range '{text}'"
        ))
    };
    let one = |v: &str| -> Result<(i64, i64), QueryError> {
        let v = v.trim();
        if !v.starts_with('$') {
            return partial_timestamp(v).ok_or_else(bad);
        }
        let name_end = v[1..]
            .find(|c: char| !c.is_ascii_alphabetic())
            .map_or(v.len(), |i| i + 1);
        let midnight = now.div_euclid(DAY) * DAY;
        let (start, end) = match v[..name_end].to_ascii_lowercase().as_str() {
            "$now" => (now, now + 1),
            "$today" => (midnight, midnight + DAY),
            "$yesterday" => (midnight - DAY, midnight),
            "$tomorrow" => (midnight + DAY, midnight + 2 * DAY),
            _ => return Err(bad()),
        };
        let rest: String = v[name_end..]
            .chars()
            .filter(|c| !c.is_whitespace())
            .collect();
        if rest.is_empty() {
            return Ok((start, end));
        }
        if rest.ends_with("bd") {
            return Err(unsupported(text, "business-day arithmetic"));
        }
        let sign = match rest.as_bytes()[0] {
            b'+' => 1,
            b'-' => -1,
            _ => return Err(bad()),
        };
        let shift = parse_duration(&rest[1..]).ok_or_else(bad)?;
        let shift = shift.checked_mul(sign).ok_or_else(bad)?;
        Ok((
            start.checked_add(shift).ok_or_else(bad)?,
            end.checked_add(shift).ok_or_else(bad)?,
        ))
    };
    match item.split_once("..") {
        Some((a, b)) => {
            let (start, _) = one(a)?;
            let (b_start, b_end) = one(b)?;
            // `..$now` ends at that instant.
            let end = match b.trim().to_ascii_lowercase().starts_with("$now") {
                true => b_start,
                false => b_end,
            };
            Ok(Entry::Absolute(start, end))
        }
        None => {
            let (s, e) = one(item)?;
            Ok(Entry::Absolute(s, e))
        }
    }
}

/// `#workday`, `#weekend` or `#Mon,Wed,Fri`: which weekdays (Monday
/// first) are kept.
fn day_filter(text: &str, filter: &str) -> Result<[bool; 7], QueryError> {
    let lower = filter.to_ascii_lowercase();
    match lower.as_str() {
        "workday" => return Ok([true, true, true, true, true, false, false]),
        "weekend" => return Ok([false, false, false, false, false, true, true]),
        _ => {}
    }
    let mut days = [false; 7];
    for d in lower.split(',') {
        let d = d.trim();
        let i = [
            "monday",
            "tuesday",
            "wednesday",
            "thursday",
            "friday",
            "saturday",
            "sunday",
        ]
        .iter()
        .position(|n| d.len() >= 3 && n.starts_with(d))
            .ok_or_else(|| {
                invalid(format!(
                    "unknown day filter '#{filter}' in time range '{text}': expected #workday, #weekend or days such as #Mon,Wed,Fri"
                ))
            })?;
        days[i] = true;
    }
    Ok(days)
}

/// A duration of fixed units such as `1h`, `-3d` or `6h30m`, in
/// nanoseconds (months and years count as 30 and 365 days here; the end
/// of a range moves by the calendar instead).
fn parse_duration(text: &str) -> Option<i64> {
    let (sign, mut rest) = match text.strip_prefix('-') {
        Some(r) => (-1i64, r),
        None => (1, text),
    };
    let mut total: i64 = 0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        if digits == 0 {
            return None;
        }
        let n: i64 = rest[..digits].parse().ok()?;
        let unit = rest[digits..].chars().next()?;
        let per: i64 = match unit {
            'y' => 365 * DAY,
            'M' => 30 * DAY,
            'w' => 7 * DAY,
            'd' => DAY,
            'h' => 3_600_000_000_000,
            'm' => 60_000_000_000,
            's' => 1_000_000_000,
            'T' => 1_000_000,
            'U' => 1_000,
            'n' => 1,
            _ => return None,
        };
        total = total.checked_add(n.checked_mul(per)?)?;
        rest = &rest[digits + unit.len_utf8()..];
    }
    total.checked_mul(sign)
}

/// The instant (nanoseconds since the epoch, UTC) a timestamp text such as
/// `'2024-01-15'` or `'2024-01-15T09:30:00.5Z'` starts at.
pub(crate) fn parse_timestamp(text: &str) -> Option<i64> {
    partial_timestamp(text.trim()).map(|(start, _)| start)
}

/// `[start, end)` of a partial timestamp `YYYY[-MM[-DD[(T| )HH[:MM[:SS[.f]]]]]][Z]`.
pub(crate) fn partial_timestamp(text: &str) -> Option<(i64, i64)> {
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
        let got = parse_range(text).unwrap();
        assert_eq!(got.len(), 1, "{text}");
        (format_nanos(got[0].0), format_nanos(got[0].1))
    }

    fn ranges(text: &str, now: i64) -> Vec<(String, String)> {
        parse_range_at(text, now)
            .unwrap()
            .into_iter()
            .map(|(s, e)| (format_nanos(s), format_nanos(e)))
            .collect()
    }

    fn pair(a: &str, b: &str) -> (String, String) {
        (a.to_string(), b.to_string())
    }

    #[test]
    fn tick_brackets_lists_zones_filters_and_variables() {
        let now = parse_timestamp("2024-03-13T15:20:00Z").unwrap(); // a Wednesday
        // Bracket values and ranges, zero-padded; adjacent days merge.
        assert_eq!(
            ranges("2024-01-[5,7..8]", now),
            vec![
                pair(
                    "2024-01-05T00:00:00.000000000Z",
                    "2024-01-06T00:00:00.000000000Z"
                ),
                pair(
                    "2024-01-07T00:00:00.000000000Z",
                    "2024-01-09T00:00:00.000000000Z"
                ),
            ]
        );
        // Times in brackets, with a duration.
        assert_eq!(
            ranges("2024-01-15T[09:00,14:30];30m", now),
            vec![
                pair(
                    "2024-01-15T09:00:00.000000000Z",
                    "2024-01-15T09:31:00.000000000Z"
                ),
                pair(
                    "2024-01-15T14:30:00.000000000Z",
                    "2024-01-15T15:01:00.000000000Z"
                ),
            ]
        );
        // A date list with a shared time, and a compound duration.
        assert_eq!(
            ranges("[2024-01-15, 2024-02-01]T09:30;6h29m", now),
            vec![
                pair(
                    "2024-01-15T09:30:00.000000000Z",
                    "2024-01-15T16:00:00.000000000Z"
                ),
                pair(
                    "2024-02-01T09:30:00.000000000Z",
                    "2024-02-01T16:00:00.000000000Z"
                ),
            ]
        );
        // New York: 09:30 EST is 14:30 UTC in January, 13:30 EDT in July.
        assert_eq!(
            ranges("[2024-01-16,2024-07-16]T09:30@America/New_York", now),
            vec![
                pair(
                    "2024-01-16T14:30:00.000000000Z",
                    "2024-01-16T14:31:00.000000000Z"
                ),
                pair(
                    "2024-07-16T13:30:00.000000000Z",
                    "2024-07-16T13:31:00.000000000Z"
                ),
            ]
        );
        // 2024-03-01 is a Friday: workdays of its first week.
        assert_eq!(
            ranges("2024-03-[01..05]#workday", now),
            vec![
                pair(
                    "2024-03-01T00:00:00.000000000Z",
                    "2024-03-02T00:00:00.000000000Z"
                ),
                pair(
                    "2024-03-04T00:00:00.000000000Z",
                    "2024-03-06T00:00:00.000000000Z"
                ),
            ]
        );
        assert_eq!(ranges("2024-03-[01..05]#Sat,sunday", now).len(), 1);
        // Variables at the statement's time.
        assert_eq!(
            ranges("$now-1h..$now", now),
            vec![pair(
                "2024-03-13T14:20:00.000000000Z",
                "2024-03-13T15:20:00.000000000Z"
            )]
        );
        assert_eq!(
            ranges("$yesterday", now),
            vec![pair(
                "2024-03-12T00:00:00.000000000Z",
                "2024-03-13T00:00:00.000000000Z"
            )]
        );
        assert_eq!(
            ranges("[$today - 2d..$today]", now),
            vec![pair(
                "2024-03-11T00:00:00.000000000Z",
                "2024-03-14T00:00:00.000000000Z"
            )]
        );
        for (bad, says) in [
            ("2024-01-[15", "is not closed"),
            ("2024-01-[1..100000]", "more than 10000 intervals"),
            ("2024-01-[5..3]", "runs backwards"),
            ("2024-01-15@Mars/Base", "unknown time zone"),
            ("2024-01-15#someday", "unknown day filter"),
            ("2024-03-02#workday", "keeps no day"),
            ("$later", "invalid date variable"),
            ("[[[[[2024]]]]]", "nests brackets deeper than 4"),
            (
                &format!("2024-01-15T09:30{}", " ".repeat(600)),
                "at most 512",
            ),
        ] {
            let e = parse_range_at(bad, now).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
        }
        for unsupported in ["$today-5bd..$today", "2024;1d;1h;3"] {
            assert_eq!(
                parse_range_at(unsupported, now).unwrap_err().kind,
                QueryErrorKind::Unsupported,
                "{unsupported}"
            );
        }
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
    }

    #[test]
    fn many_intervals_make_a_balanced_or() {
        let parts: Vec<String> = (0..5).map(|i| i.to_string()).collect();
        assert_eq!(balanced_or(&parts), "((0 OR 1) OR (2 OR (3 OR 4)))");
        let sql = rewrite("SELECT * FROM t WHERE ts IN '[1700..2261]-01-01'")
            .unwrap()
            .unwrap();
        // 562 intervals, nested about 11 deep, not 562.
        let mut depth = 0usize;
        let mut deepest = 0usize;
        for c in sql.chars() {
            match c {
                '(' => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ')' => depth -= 1,
                _ => {}
            }
        }
        assert!(deepest < 20, "{deepest}");
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
