//! The line parser: a single pass over each line's bytes (binary values
//! are skipped by their length, so a newline byte inside one ends
//! nothing).

use crate::error::{IlpError, IlpErrorKind};
use crate::line::{ArrayElement, ArrayView, Line, Precision, Text, Timestamp, Value};
use crate::number;
use crate::plain::plain_line;
use crate::stops::Stops;

/// QuestDB's binary value types (after `name==`).
const BINARY_DOUBLE: u8 = 16;
const BINARY_ARRAY: u8 = 14;
const BINARY_DECIMAL: u8 = 23;
/// Array element type tags.
const ELEMENT_DOUBLE: u8 = 10;
const ELEMENT_LONG: u8 = 6;
/// Most array dimensions (as QuestDB).
const MAX_ARRAY_DIMENSIONS: usize = 32;
/// Longest binary decimal mantissa (256 bits).
const MAX_DECIMAL_BYTES: usize = 32;

/// What one line may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest line, in bytes (terminator excluded).
    pub max_line_bytes: usize,
    /// Longest table, tag or field name, in bytes as written.
    pub max_name_bytes: usize,
    /// Most tags and fields in one line.
    pub max_columns: usize,
    /// Most elements in one array.
    pub max_array_elements: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_line_bytes: 1 << 20,
            max_name_bytes: 127,
            max_columns: 2048,
            max_array_elements: 1 << 24,
        }
    }
}

/// What [`Parser::next_line`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A line, now in the caller's [`Line`].
    Line,
    /// The input holds no further line (blank and comment lines are
    /// skipped).
    End,
    /// A partial input ends inside a line that starts at
    /// [`Parser::consumed`]: append more input to it and parse again.
    NeedMore,
}

/// A parser over one buffer of ILP (see the crate docs).
#[derive(Debug, Clone)]
pub struct Parser<'a> {
    input: &'a [u8],
    pos: usize,
    /// Number of the line at `pos`, from 1.
    line: u64,
    /// Whether the input is all there is (a last line needs no newline).
    complete: bool,
    precision: Precision,
    limits: Limits,
    /// Where the next token ends may be (kept across lines).
    stops: Stops,
    /// Whether lines of the common shape take [`plain_line`] first.
    plain: bool,
}

/// Inside one line: where it starts, for error offsets.
struct Cursor<'a, 'p> {
    input: &'a [u8],
    pos: usize,
    start: usize,
    line: u64,
    limits: &'p Limits,
    stops: Stops,
}

/// Why a line stopped: an error, or (partial input) its end not yet read.
enum Stop {
    /// Boxed: the success path's results stay small.
    Error(Box<IlpError>),
    Incomplete,
}

type Parsed<T> = Result<T, Stop>;

impl<'a> Parser<'a> {
    /// A parser of `input`, which holds whole lines only (the last may lack
    /// its newline), with line timestamps in `precision`.
    pub fn new(input: &'a [u8], precision: Precision, limits: Limits) -> Self {
        Parser {
            input,
            pos: 0,
            line: 1,
            complete: true,
            precision,
            limits,
            stops: Stops::default(),
            plain: true,
        }
    }

    /// The same parser without the common-shape path (the tests compare
    /// the two).
    pub(crate) fn general_only(mut self) -> Self {
        self.plain = false;
        self
    }

    /// The same parser for an input that may end inside a line (see
    /// [`Step::NeedMore`]).
    pub fn partial(mut self) -> Self {
        self.complete = false;
        self
    }

    /// The same parser with the input's first line numbered `n` (the
    /// input continues an earlier one).
    pub fn first_line(mut self, n: u64) -> Self {
        self.line = n.max(1);
        self
    }

    /// Bytes of the input taken by whole lines so far.
    pub fn consumed(&self) -> usize {
        self.pos
    }

    /// Number of the next line (from 1).
    pub fn line_number(&self) -> u64 {
        self.line
    }

    /// Parses the next line into `out` (cleared first).
    pub fn next_line(&mut self, out: &mut Line<'a>) -> Result<Step, IlpError> {
        out.clear();
        loop {
            // Blank lines, comments and leading blanks.
            while self.pos < self.input.len() && matches!(self.input[self.pos], b' ' | b'\t') {
                self.pos += 1;
            }
            match self.input.get(self.pos) {
                None => return Ok(Step::End),
                Some(b'\n') => {
                    self.pos += 1;
                    self.line += 1;
                    continue;
                }
                Some(b'\r') if self.input.get(self.pos + 1) == Some(&b'\n') => {
                    self.pos += 2;
                    self.line += 1;
                    continue;
                }
                // A carriage return that may yet be followed by its newline.
                Some(b'\r') if self.pos + 1 == self.input.len() && !self.complete => {
                    return Ok(Step::NeedMore);
                }
                Some(b'#') => {
                    // A comment, held to the line limit like any line.
                    let rest = &self.input[self.pos..];
                    let end = memchr(b'\n', rest);
                    if end.unwrap_or(rest.len()) > self.limits.max_line_bytes {
                        return Err(IlpError {
                            line: self.line,
                            offset: self.limits.max_line_bytes,
                            kind: IlpErrorKind::LineTooLong {
                                max: self.limits.max_line_bytes,
                            },
                        });
                    }
                    match end {
                        Some(n) => {
                            self.pos += n + 1;
                            self.line += 1;
                            continue;
                        }
                        None if self.complete => {
                            self.pos = self.input.len();
                            return Ok(Step::End);
                        }
                        None => return Ok(Step::NeedMore),
                    }
                }
                Some(_) => break,
            }
        }
        if self.plain {
            let plain = plain_line(
                self.input,
                self.pos,
                &mut self.stops,
                &self.limits,
                self.precision,
                out,
            );
            if let Some(next) = plain {
                self.pos = next;
                self.line += 1;
                return Ok(Step::Line);
            }
            out.clear();
        }
        let mut cursor = Cursor {
            input: self.input,
            pos: self.pos,
            start: self.pos,
            line: self.line,
            limits: &self.limits,
            stops: self.stops,
        };
        let parsed = cursor.line(out, self.precision, self.complete);
        self.stops = cursor.stops;
        match parsed {
            Ok(()) => {
                self.pos = cursor.pos;
                self.line += 1;
                Ok(Step::Line)
            }
            Err(Stop::Incomplete) => {
                if self.input.len() - self.pos > self.limits.max_line_bytes {
                    return Err(IlpError {
                        line: self.line,
                        offset: self.limits.max_line_bytes,
                        kind: IlpErrorKind::LineTooLong {
                            max: self.limits.max_line_bytes,
                        },
                    });
                }
                out.clear();
                Ok(Step::NeedMore)
            }
            Err(Stop::Error(e)) => Err(*e),
        }
    }
}

/// The first `needle` in `haystack`.
fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|&b| b == needle)
}

impl<'a> Cursor<'a, '_> {
    fn error(&self, kind: IlpErrorKind) -> Stop {
        Stop::Error(Box::new(IlpError {
            line: self.line,
            offset: self.pos - self.start,
            kind,
        }))
    }

    /// At the end of the input: incomplete if more may come, else `kind`.
    fn at_end(&self, complete: bool, kind: IlpErrorKind) -> Stop {
        match complete {
            true => self.error(kind),
            false => Stop::Incomplete,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.input.get(self.pos).copied()
    }

    /// The next byte from `from` that may end a token, and that byte
    /// (`None` at the end of the input).
    #[inline(always)]
    fn next_stop(&mut self, from: usize) -> (usize, Option<u8>) {
        let at = self.stops.next(self.input, from);
        (at, self.input.get(at).copied())
    }

    /// Moves to the end of an unquoted value or timestamp: the first
    /// space or line end, or (with `comma`) comma.
    #[inline(always)]
    fn skip_token(&mut self, comma: bool) {
        let mut from = self.pos;
        loop {
            let (at, b) = self.next_stop(from);
            match b {
                None | Some(b' ' | b'\n' | b'\r') => {
                    self.pos = at;
                    return;
                }
                Some(b',') if comma => {
                    self.pos = at;
                    return;
                }
                Some(_) => from = at + 1,
            }
        }
    }

    fn check_length(&self) -> Parsed<()> {
        match self.pos - self.start > self.limits.max_line_bytes {
            true => Err(self.error(IlpErrorKind::LineTooLong {
                max: self.limits.max_line_bytes,
            })),
            false => Ok(()),
        }
    }

    /// A name or tag value: up to an unescaped space, comma, `=` or line
    /// end. A backslash takes the next byte with it.
    #[inline(always)]
    fn name(&mut self, complete: bool) -> Parsed<Text<'a>> {
        let begin = self.pos;
        let mut escaped = false;
        let mut from = self.pos;
        loop {
            let (at, b) = self.next_stop(from);
            match b {
                None | Some(b' ' | b',' | b'=' | b'\n' | b'\r') => {
                    self.pos = at;
                    break;
                }
                Some(b'\\') => {
                    if at + 1 >= self.input.len() {
                        self.pos = at;
                        return Err(self.at_end(complete, IlpErrorKind::UnexpectedEnd));
                    }
                    escaped = true;
                    from = at + 2;
                }
                // A quote or a control byte inside a name: not an end.
                Some(_) => from = at + 1,
            }
        }
        if self.pos >= self.input.len() && !complete {
            return Err(Stop::Incomplete);
        }
        Ok(Text::name(&self.input[begin..self.pos], escaped))
    }

    #[inline(always)]
    fn checked_name(&mut self, complete: bool, missing: IlpErrorKind) -> Parsed<Text<'a>> {
        let name = self.name(complete)?;
        if name.raw().is_empty() {
            return Err(self.error(missing));
        }
        if name.raw().len() > self.limits.max_name_bytes {
            return Err(self.error(IlpErrorKind::NameTooLong {
                len: name.raw().len(),
                max: self.limits.max_name_bytes,
            }));
        }
        Ok(name)
    }

    fn line(&mut self, out: &mut Line<'a>, precision: Precision, complete: bool) -> Parsed<()> {
        out.table = self.checked_name(complete, IlpErrorKind::MissingTable)?;
        // Tags.
        while self.peek() == Some(b',') {
            self.pos += 1;
            let key = self.checked_name(complete, IlpErrorKind::EmptyName)?;
            if self.peek() != Some(b'=') {
                return Err(self.error(IlpErrorKind::BadTag));
            }
            self.pos += 1;
            let value = self.checked_tag_value(complete)?;
            self.count_column(out)?;
            out.tags.push((key, value));
        }
        match self.peek() {
            Some(b' ') => {}
            None => return Err(self.at_end(complete, IlpErrorKind::NoColumns)),
            Some(b'\n' | b'\r') if !out.tags.is_empty() => return self.end_of_line(complete),
            Some(b'\n' | b'\r') => return Err(self.error(IlpErrorKind::NoColumns)),
            Some(_) => return Err(self.error(IlpErrorKind::BadTag)),
        }
        self.skip_spaces();
        // Fields, or (a line of tags only) the timestamp.
        let mut first = true;
        loop {
            let begin = self.pos;
            let key = self.name(complete)?;
            if self.peek() != Some(b'=') {
                if first && !out.tags.is_empty() {
                    // `t,a=b 1700000000n`: a timestamp, not a field.
                    self.pos = begin;
                    return self.timestamp(out, precision, complete);
                }
                return Err(self.error(IlpErrorKind::BadField));
            }
            if key.raw().is_empty() {
                return Err(self.error(IlpErrorKind::EmptyName));
            }
            if key.raw().len() > self.limits.max_name_bytes {
                return Err(self.error(IlpErrorKind::NameTooLong {
                    len: key.raw().len(),
                    max: self.limits.max_name_bytes,
                }));
            }
            self.pos += 1;
            let value = self.value(complete)?;
            self.count_column(out)?;
            out.fields.push((key, value));
            first = false;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b' ') => {
                    self.skip_spaces();
                    return self.timestamp(out, precision, complete);
                }
                _ => return self.end_of_line(complete),
            }
        }
    }

    fn checked_tag_value(&mut self, complete: bool) -> Parsed<Text<'a>> {
        let value = self.name(complete)?;
        if value.raw().is_empty() {
            return Err(self.error(IlpErrorKind::BadTag));
        }
        if self.peek() == Some(b'=') {
            return Err(self.error(IlpErrorKind::BadTag));
        }
        Ok(value)
    }

    fn count_column(&self, out: &Line<'a>) -> Parsed<()> {
        match out.tags.len() + out.fields.len() >= self.limits.max_columns {
            true => Err(self.error(IlpErrorKind::TooManyColumns {
                max: self.limits.max_columns,
            })),
            false => Ok(()),
        }
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(b' ') {
            self.pos += 1;
        }
    }

    /// The line ends here: a newline (after an optional carriage return),
    /// or the end of a complete input.
    fn end_of_line(&mut self, complete: bool) -> Parsed<()> {
        self.skip_spaces();
        // The line's length, checked once here rather than per token:
        // names and unquoted values only advance through the input, so
        // a line past the limit costs no more than its bytes; quoted
        // strings and binary values check as they go.
        self.check_length()?;
        match self.peek() {
            Some(b'\n') => {
                self.pos += 1;
                Ok(())
            }
            Some(b'\r') => match self.input.get(self.pos + 1) {
                Some(b'\n') => {
                    self.pos += 2;
                    Ok(())
                }
                None => Err(self.at_end(complete, IlpErrorKind::UnexpectedEnd)),
                Some(_) => Err(self.error(IlpErrorKind::TrailingBytes)),
            },
            None if complete => Ok(()),
            None => Err(Stop::Incomplete),
            Some(_) => Err(self.error(IlpErrorKind::TrailingBytes)),
        }
    }

    /// The line timestamp (if any), then the end of the line.
    fn timestamp(
        &mut self,
        out: &mut Line<'a>,
        precision: Precision,
        complete: bool,
    ) -> Parsed<()> {
        let begin = self.pos;
        self.skip_token(false);
        if self.pos >= self.input.len() && !complete {
            return Err(Stop::Incomplete);
        }
        let token = &self.input[begin..self.pos];
        if !token.is_empty() {
            let bad = || IlpErrorKind::BadTimestamp {
                value: IlpErrorKind::shown(token),
            };
            let ts = timestamp_of(token, precision);
            out.timestamp = Some(ts.ok_or_else(|| self.error(bad()))?);
        }
        self.end_of_line(complete)
    }

    /// A field value (after `name=`).
    fn value(&mut self, complete: bool) -> Parsed<Value<'a>> {
        match self.peek() {
            None => Err(self.at_end(complete, IlpErrorKind::UnexpectedEnd)),
            Some(b'"') => self.string(complete),
            Some(b'=') => self.binary(complete),
            Some(_) => self.text_value(complete),
        }
    }

    fn string(&mut self, complete: bool) -> Parsed<Value<'a>> {
        self.pos += 1;
        let begin = self.pos;
        let mut escaped = false;
        loop {
            let (at, b) = self.next_stop(self.pos);
            self.pos = at;
            if self.pos - self.start > self.limits.max_line_bytes {
                return Err(self.error(IlpErrorKind::LineTooLong {
                    max: self.limits.max_line_bytes,
                }));
            }
            match b {
                None => return Err(self.at_end(complete, IlpErrorKind::UnclosedString)),
                Some(b'"') => break,
                Some(b'\\') => {
                    if self.pos + 1 >= self.input.len() {
                        return Err(self.at_end(complete, IlpErrorKind::UnclosedString));
                    }
                    escaped = true;
                    self.pos += 2;
                }
                Some(_) => self.pos += 1,
            }
        }
        let text = Text::quoted(&self.input[begin..self.pos], escaped);
        self.pos += 1;
        Ok(Value::String(text))
    }

    /// `n` bytes from here, checked against the input and the line limit.
    fn take(&mut self, n: usize, complete: bool) -> Parsed<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or_else(|| {
            self.error(IlpErrorKind::BadBinary {
                reason: "a length past the end".into(),
            })
        })?;
        if end - self.start > self.limits.max_line_bytes {
            return Err(self.error(IlpErrorKind::LineTooLong {
                max: self.limits.max_line_bytes,
            }));
        }
        if end > self.input.len() {
            return Err(self.at_end(
                complete,
                IlpErrorKind::BadBinary {
                    reason: format!("{n} bytes announced, {} left", self.input.len() - self.pos),
                },
            ));
        }
        let bytes = &self.input[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn byte(&mut self, complete: bool) -> Parsed<u8> {
        Ok(self.take(1, complete)?[0])
    }

    /// A binary value: `=`, its type, then its bytes.
    fn binary(&mut self, complete: bool) -> Parsed<Value<'a>> {
        self.pos += 1;
        let bad = |reason: String| IlpErrorKind::BadBinary { reason };
        match self.byte(complete)? {
            BINARY_DOUBLE => {
                let b = self.take(8, complete)?;
                let mut le = [0u8; 8];
                le.copy_from_slice(b);
                Ok(Value::Double(f64::from_le_bytes(le)))
            }
            BINARY_ARRAY => {
                let element = match self.byte(complete)? {
                    ELEMENT_DOUBLE => ArrayElement::Double,
                    ELEMENT_LONG => ArrayElement::Long,
                    t => return Err(self.error(bad(format!("array element type {t}")))),
                };
                let dims = usize::from(self.byte(complete)?);
                if dims == 0 || dims > MAX_ARRAY_DIMENSIONS {
                    return Err(self.error(bad(format!(
                        "{dims} array dimensions (1 to {MAX_ARRAY_DIMENSIONS})"
                    ))));
                }
                let shape = self.take(dims * 4, complete)?;
                let mut elements: usize = 1;
                for c in shape.chunks_exact(4) {
                    let d = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                    elements = usize::try_from(d)
                        .ok()
                        .and_then(|d| elements.checked_mul(d))
                        .filter(|&n| n <= self.limits.max_array_elements)
                        .ok_or_else(|| {
                            self.error(bad(format!(
                                "more than {} array elements",
                                self.limits.max_array_elements
                            )))
                        })?;
                }
                let data = self.take(elements * 8, complete)?;
                Ok(Value::Array(ArrayView {
                    element,
                    shape,
                    data,
                }))
            }
            BINARY_DECIMAL => {
                let scale = self.byte(complete)?;
                let len = usize::from(self.byte(complete)?);
                if len == 0 || len > MAX_DECIMAL_BYTES {
                    return Err(self.error(bad(format!(
                        "a decimal of {len} bytes (1 to {MAX_DECIMAL_BYTES})"
                    ))));
                }
                let mantissa = self.take(len, complete)?;
                Ok(Value::Decimal { scale, mantissa })
            }
            t => Err(self.error(bad(format!("unknown binary type {t}")))),
        }
    }

    /// An unquoted value: up to a comma, space or line end.
    fn text_value(&mut self, complete: bool) -> Parsed<Value<'a>> {
        let begin = self.pos;
        self.skip_token(true);
        if self.pos >= self.input.len() && !complete {
            return Err(Stop::Incomplete);
        }
        let token = &self.input[begin..self.pos];
        match plain_value(token) {
            Some(value) => Ok(value),
            None => {
                self.pos = begin;
                Err(self.error(value_error(token)))
            }
        }
    }
}

/// A line timestamp: digits with a `n` (nanoseconds) or `t`
/// (microseconds) suffix, or without one in `precision`.
#[inline(always)]
pub(crate) fn timestamp_of(token: &[u8], precision: Precision) -> Option<Timestamp> {
    match token.split_last() {
        Some((b'n', digits)) => number::parse_i64(digits).map(Timestamp::Nanos),
        Some((b't', digits)) => number::parse_i64(digits).map(Timestamp::Micros),
        _ => number::parse_i64(token)
            .and_then(|v| v.checked_mul(precision.nanos()))
            .map(Timestamp::Nanos),
    }
}

/// An unquoted field value (`None`: malformed, see [`value_error`]).
/// Numbers first (most values); booleans, NaN and Infinity after. An
/// `Option` rather than a `Result`: a large error type made every value a
/// copy through memory.
#[inline(always)]
pub(crate) fn plain_value(token: &[u8]) -> Option<Value<'_>> {
    let numeric = matches!(token.first(), Some(b'0'..=b'9' | b'-' | b'+' | b'.'));
    Some(match token {
        _ if !numeric => match token {
            b"t" | b"T" | b"true" | b"True" | b"TRUE" => Value::Boolean(true),
            b"f" | b"F" | b"false" | b"False" | b"FALSE" => Value::Boolean(false),
            _ => Value::Double(number::parse_f64(token)?),
        },
        [digits @ .., b'i'] => Value::Long(number::parse_i64(digits)?),
        [digits @ .., b'u'] => Value::UnsignedLong(number::parse_u64(digits)?),
        [digits @ .., b't'] => Value::Timestamp(Timestamp::Micros(number::parse_i64(digits)?)),
        [digits @ .., b'n'] => Value::Timestamp(Timestamp::Nanos(number::parse_i64(digits)?)),
        // Digits, signs, points and letters of NaN/Infinity: ASCII.
        [digits @ .., b'd'] if number::is_decimal_text(digits) => {
            Value::DecimalText(std::str::from_utf8(digits).unwrap_or_default())
        }
        _ => Value::Double(number::parse_f64(token)?),
    })
}

/// Why [`plain_value`] refused `token`: an integer out of range (an
/// integer suffix after what looks like an integer), or a bad value.
#[cold]
fn value_error(token: &[u8]) -> IlpErrorKind {
    let value = IlpErrorKind::shown(token);
    let numeric = matches!(token.first(), Some(b'0'..=b'9' | b'-' | b'+' | b'.'));
    match token {
        [digits @ .., b'i' | b'u' | b't' | b'n'] if numeric && number::looks_integral(digits) => {
            IlpErrorKind::IntegerOutOfRange { value }
        }
        _ => IlpErrorKind::BadValue { value },
    }
}
