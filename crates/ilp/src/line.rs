//! One parsed line and its values, borrowed from the input.

use std::borrow::Cow;

/// One line: table, tags, fields and timestamp. Reused by
/// [`crate::Parser::next_line`], which clears it first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Line<'a> {
    /// The table (InfluxDB's measurement).
    pub table: Text<'a>,
    /// Tags in line order (SYMBOL columns).
    pub tags: Vec<(Text<'a>, Text<'a>)>,
    /// Fields in line order.
    pub fields: Vec<(Text<'a>, Value<'a>)>,
    /// The designated timestamp, if the line has one.
    pub timestamp: Option<Timestamp>,
}

impl Line<'_> {
    pub(crate) fn clear(&mut self) {
        self.table = Text::default();
        self.tags.clear();
        self.fields.clear();
        self.timestamp = None;
    }
}

/// A name, tag value or string as written in the line: escapes are kept
/// until [`Text::unescaped`] or [`Text::to_str`] removes them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Text<'a> {
    raw: &'a [u8],
    /// [`ESCAPED`]: `raw` holds a backslash (quoted strings), or one before
    /// a character that needs it (names and tag values); [`QUOTED`]: a
    /// quoted string. One word, written and copied whole: two `bool`s were
    /// copied with unaligned reads of what had just been written, which
    /// stalled every field pushed into a [`Line`].
    flags: u64,
}

const ESCAPED: u64 = 1;
const QUOTED: u64 = 2;

impl<'a> Text<'a> {
    pub(crate) fn name(raw: &'a [u8], escaped: bool) -> Self {
        Text {
            raw,
            flags: u64::from(escaped) * ESCAPED,
        }
    }

    pub(crate) fn quoted(raw: &'a [u8], escaped: bool) -> Self {
        Text {
            raw,
            flags: (u64::from(escaped) * ESCAPED) | QUOTED,
        }
    }

    /// The bytes as written, escapes included.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// The bytes with escapes removed: a backslash before one of the
    /// characters the official clients escape (in names and tag values:
    /// space, comma, `=`, newline, carriage return and backslash; in
    /// quoted strings: `"`, newline, carriage return and backslash) stands
    /// for that character; any other backslash is itself, as InfluxDB
    /// reads it.
    pub fn unescaped(&self) -> Cow<'a, [u8]> {
        if self.flags & ESCAPED == 0 {
            return Cow::Borrowed(self.raw);
        }
        let escapes: &[u8] = match self.flags & QUOTED != 0 {
            true => b"\"\n\r\\",
            false => b" ,=\n\r\\",
        };
        let mut out = Vec::with_capacity(self.raw.len());
        let mut i = 0;
        while i < self.raw.len() {
            let b = self.raw[i];
            match self.raw.get(i + 1) {
                Some(next) if b == b'\\' && escapes.contains(next) => {
                    out.push(*next);
                    i += 2;
                }
                _ => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        Cow::Owned(out)
    }

    /// The text with escapes removed, if it is UTF-8.
    pub fn to_str(&self) -> Result<Cow<'a, str>, std::str::Utf8Error> {
        Ok(match self.unescaped() {
            Cow::Borrowed(b) => Cow::Borrowed(std::str::from_utf8(b)?),
            Cow::Owned(v) => Cow::Owned(std::str::from_utf8(&v)?.to_owned()),
        })
    }
}

/// A timestamp as the line gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamp {
    /// Nanoseconds since the epoch (a `n` suffix, or a line timestamp
    /// without a suffix, converted from the request's precision).
    Nanos(i64),
    /// Microseconds since the epoch (a `t` suffix).
    Micros(i64),
}

impl Timestamp {
    /// Nanoseconds since the epoch, if they fit in an i64.
    pub fn as_nanos(&self) -> Option<i64> {
        match *self {
            Timestamp::Nanos(n) => Some(n),
            Timestamp::Micros(u) => u.checked_mul(1_000),
        }
    }

    /// Microseconds since the epoch (nanoseconds floored).
    pub fn as_micros(&self) -> i64 {
        match *self {
            Timestamp::Nanos(n) => n.div_euclid(1_000),
            Timestamp::Micros(u) => u,
        }
    }
}

/// The unit of line timestamps without a suffix (`precision=` of the HTTP
/// request; nanoseconds by default, as InfluxDB and QuestDB).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Precision {
    /// `n`, `ns`.
    #[default]
    Nanos,
    /// `u`, `us`.
    Micros,
    /// `ms`.
    Millis,
    /// `s`.
    Seconds,
    /// `m`.
    Minutes,
    /// `h`.
    Hours,
}

impl Precision {
    /// The precision a request names (`n`, `ns`, `u`, `us`, `ms`, `s`, `m`,
    /// `h`).
    pub fn parse(s: &str) -> Option<Precision> {
        Some(match s {
            "n" | "ns" => Precision::Nanos,
            "u" | "us" | "µs" => Precision::Micros,
            "ms" => Precision::Millis,
            "s" => Precision::Seconds,
            "m" => Precision::Minutes,
            "h" => Precision::Hours,
            _ => return None,
        })
    }

    /// Nanoseconds per unit.
    pub fn nanos(&self) -> i64 {
        match self {
            Precision::Nanos => 1,
            Precision::Micros => 1_000,
            Precision::Millis => 1_000_000,
            Precision::Seconds => 1_000_000_000,
            Precision::Minutes => 60_000_000_000,
            Precision::Hours => 3_600_000_000_000,
        }
    }
}

/// A field value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    /// `-12i`.
    Long(i64),
    /// `12u` (InfluxDB's unsigned integers).
    UnsignedLong(u64),
    /// `1.5`, `-2e10`, `NaN`, `Infinity`, or a binary double.
    Double(f64),
    /// `t`, `true`, `F`, `False`, ...
    Boolean(bool),
    /// `"..."`.
    String(Text<'a>),
    /// `123t` or `123n`.
    Timestamp(Timestamp),
    /// A text decimal (`1.25d`): the digits as written, without the `d`.
    DecimalText(&'a str),
    /// A binary decimal: `mantissa` (big-endian two's complement, 1 to 32
    /// bytes) times ten to the minus `scale`.
    Decimal {
        /// Digits after the point.
        scale: u8,
        /// The unscaled value.
        mantissa: &'a [u8],
    },
    /// An n-dimensional array (binary only).
    Array(ArrayView<'a>),
}

/// The element type of an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrayElement {
    /// f64 (QuestDB's type tag 10).
    Double,
    /// i64 (QuestDB's type tag 6).
    Long,
}

/// An array as written: its shape and its elements' bytes (row-major,
/// little-endian, 8 bytes each), both borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrayView<'a> {
    /// Element type.
    pub element: ArrayElement,
    /// Each dimension's length, as 4 little-endian bytes (1 to 32 of them).
    pub(crate) shape: &'a [u8],
    /// The elements.
    pub data: &'a [u8],
}

impl ArrayView<'_> {
    /// How many dimensions.
    pub fn dimensions(&self) -> usize {
        self.shape.len() / 4
    }

    /// The length of each dimension.
    pub fn shape(&self) -> impl Iterator<Item = u32> + '_ {
        self.shape
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// How many elements.
    pub fn len(&self) -> usize {
        self.data.len() / 8
    }

    /// Whether it has no element (a dimension of length 0).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The elements as f64 (for [`ArrayElement::Double`]).
    pub fn doubles(&self) -> impl Iterator<Item = f64> + '_ {
        self.data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
    }

    /// The elements as i64 (for [`ArrayElement::Long`]).
    pub fn longs(&self) -> impl Iterator<Item = i64> + '_ {
        self.data
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
    }
}
