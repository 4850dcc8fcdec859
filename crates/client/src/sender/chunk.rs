//! [`Chunk`]: one table's rows as borrowed columns, checked when each
//! column is added and copied only when the sender encodes them.
//!
//! Every buffer comes with its length (a slice) and is checked against the
//! chunk's row count before it is kept: values, validity bitmaps (Arrow's:
//! bit set = valid, at any bit offset), VARCHAR/BINARY offsets (in range,
//! non-decreasing, on UTF-8 character boundaries) and SYMBOL codes
//! (inside their dictionary). A chunk that was built is therefore
//! encodable; the encoder never reads outside a caller's buffer.
//!
//! What it must not do: copy caller data, or know about connections.

use quiver_qwp::TypeCode;

/// Longest table or column name, in bytes (QuestDB's limit).
pub const MAX_NAME_BYTES: usize = 127;
/// Most columns in one chunk (QuestDB's per-table limit).
pub const MAX_COLUMNS: usize = 2048;
/// Longest SYMBOL dictionary entry, in bytes.
pub const MAX_SYMBOL_BYTES: usize = 1 << 20;
/// The most dimensions an array column may have (QWP's limit).
pub const MAX_ARRAY_RANK: usize = 32;

/// A mistake in how a chunk was built, named by table and column.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// A table or column name QuestDB does not accept.
    #[error("table {table}: bad name {name:?}: {reason}")]
    BadName {
        /// The table.
        table: String,
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A column added twice (names are case-insensitive).
    #[error("table {table}: column {column} added twice")]
    DuplicateColumn {
        /// The table.
        table: String,
        /// The column.
        column: String,
    },
    /// More columns than a table may have.
    #[error("table {table}: more than {max} columns")]
    TooManyColumns {
        /// The table.
        table: String,
        /// The limit.
        max: usize,
    },
    /// A buffer of the wrong length for the chunk's rows.
    #[error("table {table}, column {column}: {what} holds {got}, {expected} expected")]
    Length {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// Which buffer.
        what: &'static str,
        /// What the rows need.
        expected: usize,
        /// What was given.
        got: usize,
    },
    /// Offsets that do not describe values inside their data.
    #[error("table {table}, column {column}: row {row}: {reason}")]
    BadValue {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The row.
        row: usize,
        /// What is wrong.
        reason: String,
    },
    /// A type parameter out of range (decimal scale, geohash bits).
    #[error("table {table}, column {column}: {reason}")]
    BadType {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// What is wrong.
        reason: String,
    },
    /// An Arrow type with no QuestDB column type (or not one yet).
    #[error("table {table}, column {column}: Arrow type {data_type} cannot be sent{hint}")]
    Unsupported {
        /// The table.
        table: String,
        /// The column.
        column: String,
        /// The Arrow type.
        data_type: String,
        /// What to do instead, if anything.
        hint: &'static str,
    },
    /// No designated timestamp chosen (`at_*`, or `at_server_time` to
    /// let the server stamp rows: never implied).
    #[error("table {table}: no designated timestamp (call at_micros, at_nanos or at_server_time)")]
    NoTimestamp {
        /// The table.
        table: String,
    },
    /// A designated timestamp chosen twice.
    #[error("table {table}: the designated timestamp is already set")]
    TimestampTwice {
        /// The table.
        table: String,
    },
}

/// A bitmap as Arrow lays it out: bit `offset + i` (LSB first within each
/// byte) is row `i`. For validity, a set bit is a valid (non-null) row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bits<'a> {
    /// The bytes.
    pub bytes: &'a [u8],
    /// The bit of row 0.
    pub offset: usize,
}

impl<'a> Bits<'a> {
    /// Bits from bit 0.
    pub fn new(bytes: &'a [u8]) -> Self {
        Bits { bytes, offset: 0 }
    }

    /// Bits from bit `offset` (a slice of an Arrow array).
    pub fn with_offset(bytes: &'a [u8], offset: usize) -> Self {
        Bits { bytes, offset }
    }

    /// Bit `i` (checked against the chunk's rows when the column is added).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> bool {
        let bit = self.offset + i;
        self.bytes[bit / 8] & (1 << (bit % 8)) != 0
    }

    /// Whether rows `0..rows` are all inside the bytes.
    fn covers(&self, rows: usize) -> bool {
        self.offset
            .checked_add(rows)
            .and_then(|end| end.checked_add(7))
            .is_some_and(|bits| bits / 8 <= self.bytes.len())
    }
}

/// VARCHAR or BINARY offsets as Arrow keeps them: `rows + 1` of them, value
/// `i` is `data[offsets[i]..offsets[i + 1]]` (a sliced array's offsets need
/// not start at 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offsets<'a> {
    /// Arrow `Utf8`/`Binary`.
    I32(&'a [i32]),
    /// Arrow `LargeUtf8`/`LargeBinary`.
    I64(&'a [i64]),
}

impl Offsets<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Offsets::I32(o) => o.len(),
            Offsets::I64(o) => o.len(),
        }
    }

    /// Offset `i` as checked when the column was added (in range, so a
    /// `usize`).
    #[inline]
    pub(crate) fn at(&self, i: usize) -> usize {
        let v = match self {
            Offsets::I32(o) => i64::from(o[i]),
            Offsets::I64(o) => o[i],
        };
        usize::try_from(v).unwrap_or(0)
    }

    /// Checks every offset: non-negative, non-decreasing, at most
    /// `limit` (entries of the level below, or elements).
    fn check_within(&self, limit: usize) -> Result<(), (usize, String)> {
        let mut prev = 0usize;
        for i in 0..self.len() {
            let raw = match self {
                Offsets::I32(o) => i64::from(o[i]),
                Offsets::I64(o) => o[i],
            };
            let at = usize::try_from(raw).map_err(|_| (i, format!("negative offset {raw}")))?;
            if at > limit {
                return Err((i, format!("offset {at} past the {limit} entries below")));
            }
            if i > 0 && at < prev {
                return Err((i - 1, format!("offsets go back from {prev} to {at}")));
            }
            prev = at;
        }
        Ok(())
    }

    /// Checks every offset: non-negative, non-decreasing, inside `data`,
    /// and (for text) on a character boundary of valid UTF-8.
    fn check(&self, data: &[u8], text: bool) -> Result<(), (usize, String)> {
        let n = self.len();
        let mut prev = 0usize;
        for i in 0..n {
            let raw = match self {
                Offsets::I32(o) => i64::from(o[i]),
                Offsets::I64(o) => o[i],
            };
            let at = usize::try_from(raw).map_err(|_| (i, format!("negative offset {raw}")))?;
            if at > data.len() {
                return Err((
                    i,
                    format!("offset {at} past the data's {} bytes", data.len()),
                ));
            }
            if i > 0 && at < prev {
                return Err((i - 1, format!("offsets go back from {prev} to {at}")));
            }
            if text && at < data.len() && (data[at] & 0xc0) == 0x80 {
                return Err((
                    i.min(n.saturating_sub(2)),
                    format!("offset {at} inside a UTF-8 character"),
                ));
            }
            prev = at;
        }
        if text && n > 0 {
            let span = &data[self.at(0)..self.at(n - 1)];
            if let Err(e) = std::str::from_utf8(span) {
                // The row holding the first bad byte.
                let bad = self.at(0) + e.valid_up_to();
                let row = (0..n - 1).find(|&r| self.at(r + 1) > bad).unwrap_or(0);
                return Err((row, "not valid UTF-8".into()));
            }
        }
        Ok(())
    }
}

/// SYMBOL codes into a dictionary, as in an Arrow dictionary array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codes<'a> {
    /// `Dictionary(Int8, _)`.
    I8(&'a [i8]),
    /// `Dictionary(Int16, _)`.
    I16(&'a [i16]),
    /// `Dictionary(Int32, _)`.
    I32(&'a [i32]),
}

impl Codes<'_> {
    fn len(&self) -> usize {
        match self {
            Codes::I8(c) => c.len(),
            Codes::I16(c) => c.len(),
            Codes::I32(c) => c.len(),
        }
    }

    /// Code `i`, as checked when the column was added (for valid rows:
    /// inside the dictionary).
    #[inline]
    pub(crate) fn at(&self, i: usize) -> usize {
        let v = match self {
            Codes::I8(c) => i64::from(c[i]),
            Codes::I16(c) => i64::from(c[i]),
            Codes::I32(c) => i64::from(c[i]),
        };
        usize::try_from(v).unwrap_or(0)
    }

    fn raw(&self, i: usize) -> i64 {
        match self {
            Codes::I8(c) => i64::from(c[i]),
            Codes::I16(c) => i64::from(c[i]),
            Codes::I32(c) => i64::from(c[i]),
        }
    }
}

/// Fixed-width values, typed as the caller holds them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fixed<'a> {
    I8(&'a [i8]),
    I16(&'a [i16]),
    I32(&'a [i32]),
    I64(&'a [i64]),
    F32(&'a [f32]),
    F64(&'a [f64]),
    U16(&'a [u16]),
    U32(&'a [u32]),
    I128(&'a [i128]),
    /// UUIDs in RFC 4122 byte order (written reversed: QWP's lo, hi).
    Uuid(&'a [[u8; 16]]),
    /// 32-byte little-endian values (LONG256, DECIMAL256).
    Le32(&'a [[u8; 32]]),
    /// Geohashes: the low `bytes` bytes of each.
    Geo(&'a [u64], usize),
}

impl Fixed<'_> {
    /// Bytes per value on the wire.
    fn width(&self) -> usize {
        match self {
            Fixed::I8(_) => 1,
            Fixed::I16(_) | Fixed::U16(_) => 2,
            Fixed::I32(_) | Fixed::F32(_) | Fixed::U32(_) => 4,
            Fixed::I64(_) | Fixed::F64(_) => 8,
            Fixed::I128(_) | Fixed::Uuid(_) => 16,
            Fixed::Le32(_) => 32,
            Fixed::Geo(_, n) => *n,
        }
    }

    fn len(&self) -> usize {
        match self {
            Fixed::I8(v) => v.len(),
            Fixed::I16(v) => v.len(),
            Fixed::I32(v) => v.len(),
            Fixed::I64(v) => v.len(),
            Fixed::F32(v) => v.len(),
            Fixed::F64(v) => v.len(),
            Fixed::U16(v) => v.len(),
            Fixed::U32(v) => v.len(),
            Fixed::I128(v) => v.len(),
            Fixed::Uuid(v) => v.len(),
            Fixed::Le32(v) => v.len(),
            Fixed::Geo(v, _) => v.len(),
        }
    }
}

/// A column's values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Data<'a> {
    /// BOOLEAN, bit-packed (Arrow's layout).
    Bool(Bits<'a>),
    Fixed(Fixed<'a>),
    /// VARCHAR or BINARY.
    Var {
        offsets: Offsets<'a>,
        data: &'a [u8],
    },
    /// SYMBOL: codes into a dictionary of strings.
    Symbol {
        codes: Codes<'a>,
        dictionary: Offsets<'a>,
        strings: &'a [u8],
    },
    /// DOUBLE_ARRAY or LONG_ARRAY: the elements; the list levels are the
    /// column's `levels`.
    Array(Elements<'a>),
}

/// The elements of an array column (its innermost lists' values).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Elements<'a> {
    F64(&'a [f64]),
    I64(&'a [i64]),
}

impl Elements<'_> {
    pub(crate) fn len(&self) -> usize {
        match self {
            Elements::F64(v) => v.len(),
            Elements::I64(v) => v.len(),
        }
    }
}

/// Where list entry `i` of the outermost level starts among the elements.
pub(crate) fn leaf_offset(levels: &[Offsets<'_>], mut i: usize) -> usize {
    for level in levels {
        i = level.at(i);
    }
    i
}

/// The shape of array row `row` (written into `dims`, outermost first)
/// and its elements' range, from the list levels; an error names the
/// depth at which the row is not rectangular.
pub(crate) fn array_shape(
    levels: &[Offsets<'_>],
    row: usize,
    dims: &mut Vec<usize>,
) -> Result<std::ops::Range<usize>, String> {
    dims.clear();
    let (mut lo, mut hi) = (levels[0].at(row), levels[0].at(row + 1));
    dims.push(hi - lo);
    for (depth, level) in levels.iter().enumerate().skip(1) {
        let len = if hi > lo {
            level.at(lo + 1) - level.at(lo)
        } else {
            0
        };
        if let Some(i) = (lo..hi).find(|&i| level.at(i + 1) - level.at(i) != len) {
            return Err(format!(
                "not rectangular: lists of {len} and {} elements at depth {depth}",
                level.at(i + 1) - level.at(i)
            ));
        }
        dims.push(len);
        (lo, hi) = (level.at(lo), level.at(hi));
    }
    Ok(lo..hi)
}

/// How a column's NULLs travel (as the official DataFrame path sends
/// them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NullMode {
    /// No bitmap; a NULL row carries the type's sentinel (0, MIN, NaN).
    Sentinel,
    /// A bitmap when the column has a NULL, and only non-NULL values.
    Bitmap,
}

/// One column of a chunk.
#[derive(Debug, Clone)]
pub(crate) struct ChunkColumn<'a> {
    pub(crate) name: String,
    pub(crate) code: TypeCode,
    /// The column prefix: a DECIMAL's scale or a GEOHASH's bits.
    pub(crate) prefix: Option<u8>,
    pub(crate) data: Data<'a>,
    pub(crate) validity: Option<Bits<'a>>,
    pub(crate) nulls: NullMode,
    /// An array column's list offsets, outermost first (empty otherwise).
    pub(crate) levels: Vec<Offsets<'a>>,
}

/// Where rows get their designated timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Designated<'a> {
    Unset,
    Micros(&'a [i64]),
    Nanos(&'a [i64]),
    ServerTime,
}

/// One table's rows as borrowed columns (see the module docs).
///
/// ```
/// use quiver_client::{Bits, Chunk};
///
/// let px = [101.5, 101.25, 0.0];
/// let valid = [0b011u8]; // the third price is NULL
/// let ts = [1_700_000_000_000_000i64, 1_700_000_000_000_001, 1_700_000_000_000_002];
/// let mut chunk = Chunk::new("trades", 3)?;
/// chunk.f64("px", &px, Some(Bits::new(&valid)))?;
/// chunk.at_micros(&ts)?;
/// # Ok::<(), quiver_client::ChunkError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Chunk<'a> {
    pub(crate) table: String,
    pub(crate) rows: usize,
    pub(crate) columns: Vec<ChunkColumn<'a>>,
    pub(crate) timestamp: Designated<'a>,
}

/// Checks a table or column name as QuestDB does.
fn check_name(table: &str, name: &str) -> Result<(), ChunkError> {
    let bad = |reason| ChunkError::BadName {
        table: table.to_owned(),
        name: name.to_owned(),
        reason,
    };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(bad("longer than 127 bytes"));
    }
    if name.starts_with(' ') || name.ends_with(' ') {
        return Err(bad("leading or trailing space"));
    }
    if name.chars().any(|c| {
        matches!(
            c,
            '.' | '?'
                | ','
                | '\''
                | '"'
                | '\\'
                | '/'
                | ':'
                | ')'
                | '('
                | '+'
                | '*'
                | '%'
                | '~'
                | '\0'
        ) || c.is_control()
            || c == '\u{feff}'
    }) {
        return Err(bad("a character QuestDB does not allow in names"));
    }
    Ok(())
}

impl<'a> Chunk<'a> {
    /// An empty chunk of `rows` rows for `table`.
    pub fn new(table: &str, rows: usize) -> Result<Chunk<'a>, ChunkError> {
        check_name(table, table)?;
        Ok(Chunk {
            table: table.to_owned(),
            rows,
            columns: Vec::new(),
            timestamp: Designated::Unset,
        })
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// How many rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// About how many frame bytes a row takes (exact for fixed widths; the
    /// mean for VARCHAR and BINARY; five per SYMBOL id at most).
    pub(crate) fn row_bytes(&self) -> usize {
        let rows = self.rows.max(1);
        let mut bytes = match self.timestamp {
            Designated::Micros(_) | Designated::Nanos(_) => 8,
            _ => 0,
        };
        for c in &self.columns {
            bytes += match &c.data {
                Data::Bool(_) => 1,
                Data::Fixed(f) => f.width(),
                Data::Var { offsets, .. } => {
                    4 + (offsets.at(self.rows) - offsets.at(0)).div_ceil(rows)
                }
                Data::Symbol { .. } => 5,
                Data::Array(_) => {
                    let elements = leaf_offset(&c.levels, self.rows) - leaf_offset(&c.levels, 0);
                    1 + 4 * c.levels.len() + 8 * elements.div_ceil(rows)
                }
            };
        }
        bytes.max(1)
    }

    fn length(&self, column: &str, what: &'static str, expected: usize, got: usize) -> ChunkError {
        ChunkError::Length {
            table: self.table.clone(),
            column: column.to_owned(),
            what,
            expected,
            got,
        }
    }

    fn push(
        &mut self,
        name: &str,
        code: TypeCode,
        prefix: Option<u8>,
        data: Data<'a>,
        validity: Option<Bits<'a>>,
        nulls: NullMode,
    ) -> Result<&mut Self, ChunkError> {
        check_name(&self.table, name)?;
        if self
            .columns
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(name))
        {
            return Err(ChunkError::DuplicateColumn {
                table: self.table.clone(),
                column: name.to_owned(),
            });
        }
        let designated = usize::from(matches!(
            self.timestamp,
            Designated::Micros(_) | Designated::Nanos(_)
        ));
        if self.columns.len() + designated >= MAX_COLUMNS {
            return Err(ChunkError::TooManyColumns {
                table: self.table.clone(),
                max: MAX_COLUMNS,
            });
        }
        if let Some(v) = validity.filter(|v| !v.covers(self.rows)) {
            let bits = v.bytes.len().saturating_mul(8).saturating_sub(v.offset);
            return Err(self.length(name, "validity bits", self.rows, bits));
        }
        let rows = self.rows;
        let bad = |row: usize, reason: String| ChunkError::BadValue {
            table: self.table.clone(),
            column: name.to_owned(),
            row,
            reason,
        };
        match &data {
            Data::Bool(bits) => {
                if !bits.covers(rows) {
                    let got = bits
                        .bytes
                        .len()
                        .saturating_mul(8)
                        .saturating_sub(bits.offset);
                    return Err(self.length(name, "values (bits)", rows, got));
                }
            }
            Data::Fixed(f) => {
                if f.len() != rows {
                    return Err(self.length(name, "values", rows, f.len()));
                }
            }
            Data::Var { offsets, data } => {
                if Some(offsets.len()) != rows.checked_add(1) {
                    return Err(self.length(
                        name,
                        "offsets",
                        rows.saturating_add(1),
                        offsets.len(),
                    ));
                }
                offsets
                    .check(data, code == TypeCode::Varchar)
                    .map_err(|(row, reason)| bad(row, reason))?;
            }
            Data::Symbol {
                codes,
                dictionary,
                strings,
            } => {
                if codes.len() != rows {
                    return Err(self.length(name, "codes", rows, codes.len()));
                }
                let entries = dictionary.len().saturating_sub(1);
                if dictionary.len() == 0 {
                    return Err(self.length(name, "dictionary offsets", 1, 0));
                }
                dictionary
                    .check(strings, true)
                    .map_err(|(row, reason)| bad(row, format!("dictionary entry: {reason}")))?;
                for e in 0..entries {
                    if dictionary.at(e + 1) - dictionary.at(e) > MAX_SYMBOL_BYTES {
                        return Err(bad(
                            e,
                            format!("dictionary entry longer than {MAX_SYMBOL_BYTES} bytes"),
                        ));
                    }
                }
                for r in 0..rows {
                    if validity.is_some_and(|v| !v.get(r)) {
                        continue;
                    }
                    let c = codes.raw(r);
                    if c < 0 || usize::try_from(c).is_ok_and(|c| c >= entries) {
                        return Err(bad(
                            r,
                            format!("code {c} outside a dictionary of {entries}"),
                        ));
                    }
                }
            }
            // Checked with its levels by `array`.
            Data::Array(_) => {}
        }
        self.columns.push(ChunkColumn {
            name: name.to_owned(),
            code,
            prefix,
            data,
            validity,
            nulls,
            levels: Vec::new(),
        });
        Ok(self)
    }

    /// A BOOLEAN column from bit-packed values (Arrow's layout). NULLs
    /// (clear validity bits) are sent as `false`, as QuestDB has no NULL
    /// booleans.
    pub fn bool(
        &mut self,
        name: &str,
        values: Bits<'a>,
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::Boolean,
            None,
            Data::Bool(values),
            validity,
            NullMode::Sentinel,
        )
    }

    /// A BYTE column (NULL is sent as 0: QuestDB's BYTE has no NULL).
    pub fn i8(
        &mut self,
        name: &str,
        values: &'a [i8],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::Byte,
            None,
            Data::Fixed(Fixed::I8(values)),
            validity,
            NullMode::Sentinel,
        )
    }

    /// A SHORT column (NULL is sent as 0: QuestDB's SHORT has no NULL).
    pub fn i16(
        &mut self,
        name: &str,
        values: &'a [i16],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::Short,
            None,
            Data::Fixed(Fixed::I16(values)),
            validity,
            NullMode::Sentinel,
        )
    }

    /// An INT column (NULL is `i32::MIN`, QuestDB's NULL).
    pub fn i32(
        &mut self,
        name: &str,
        values: &'a [i32],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::Int,
            None,
            Data::Fixed(Fixed::I32(values)),
            validity,
            NullMode::Sentinel,
        )
    }

    /// A LONG column (NULL is `i64::MIN`, QuestDB's NULL).
    pub fn i64(
        &mut self,
        name: &str,
        values: &'a [i64],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::Long,
            None,
            Data::Fixed(Fixed::I64(values)),
            validity,
            NullMode::Sentinel,
        )
    }

    /// A FLOAT column (NULL is NaN).
    pub fn f32(
        &mut self,
        name: &str,
        values: &'a [f32],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::Float,
            None,
            Data::Fixed(Fixed::F32(values)),
            validity,
            NullMode::Sentinel,
        )
    }

    /// A DOUBLE column (NULL is NaN).
    pub fn f64(
        &mut self,
        name: &str,
        values: &'a [f64],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::Double,
            None,
            Data::Fixed(Fixed::F64(values)),
            validity,
            NullMode::Sentinel,
        )
    }

    /// A CHAR column of UTF-16 code units (NULL is sent as 0).
    pub fn char(
        &mut self,
        name: &str,
        values: &'a [u16],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::Char,
            None,
            Data::Fixed(Fixed::U16(values)),
            validity,
            NullMode::Sentinel,
        )
    }

    /// An IPv4 column (addresses as `u32`, `a.b.c.d` = `a << 24 | ...`).
    pub fn ipv4(
        &mut self,
        name: &str,
        values: &'a [u32],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::Ipv4,
            None,
            Data::Fixed(Fixed::U32(values)),
            validity,
            NullMode::Bitmap,
        )
    }

    /// A UUID column, each in RFC 4122 byte order (Arrow's 16-byte
    /// fixed-size binary, Python's `uuid.bytes`).
    pub fn uuid(
        &mut self,
        name: &str,
        values: &'a [[u8; 16]],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::Uuid,
            None,
            Data::Fixed(Fixed::Uuid(values)),
            validity,
            NullMode::Bitmap,
        )
    }

    /// A LONG256 column, each 32 bytes little-endian.
    pub fn long256(
        &mut self,
        name: &str,
        values: &'a [[u8; 32]],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::Long256,
            None,
            Data::Fixed(Fixed::Le32(values)),
            validity,
            NullMode::Bitmap,
        )
    }

    /// A TIMESTAMP column in microseconds since the epoch.
    pub fn timestamp_micros(
        &mut self,
        name: &str,
        values: &'a [i64],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::Timestamp,
            None,
            Data::Fixed(Fixed::I64(values)),
            validity,
            NullMode::Bitmap,
        )
    }

    /// A TIMESTAMP_NS column in nanoseconds since the epoch.
    pub fn timestamp_nanos(
        &mut self,
        name: &str,
        values: &'a [i64],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::TimestampNanos,
            None,
            Data::Fixed(Fixed::I64(values)),
            validity,
            NullMode::Bitmap,
        )
    }

    /// A DATE column in milliseconds since the epoch.
    pub fn date_millis(
        &mut self,
        name: &str,
        values: &'a [i64],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::Date,
            None,
            Data::Fixed(Fixed::I64(values)),
            validity,
            NullMode::Bitmap,
        )
    }

    fn scale(&self, name: &str, scale: u8, max: u8) -> Result<Option<u8>, ChunkError> {
        match scale <= max {
            true => Ok(Some(scale)),
            false => Err(ChunkError::BadType {
                table: self.table.clone(),
                column: name.to_owned(),
                reason: format!("scale {scale} above the type's {max}"),
            }),
        }
    }

    /// A DECIMAL64 column: unscaled values, `scale` digits after the point
    /// (at most 18).
    pub fn decimal64(
        &mut self,
        name: &str,
        scale: u8,
        values: &'a [i64],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        let prefix = self.scale(name, scale, 18)?;
        self.push(
            name,
            TypeCode::Decimal64,
            prefix,
            Data::Fixed(Fixed::I64(values)),
            validity,
            NullMode::Bitmap,
        )
    }

    /// A DECIMAL128 column (scale at most 38).
    pub fn decimal128(
        &mut self,
        name: &str,
        scale: u8,
        values: &'a [i128],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        let prefix = self.scale(name, scale, 38)?;
        self.push(
            name,
            TypeCode::Decimal128,
            prefix,
            Data::Fixed(Fixed::I128(values)),
            validity,
            NullMode::Bitmap,
        )
    }

    /// A DECIMAL256 column, each 32 bytes little-endian two's complement
    /// (scale at most 76).
    pub fn decimal256(
        &mut self,
        name: &str,
        scale: u8,
        values: &'a [[u8; 32]],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        let prefix = self.scale(name, scale, 76)?;
        self.push(
            name,
            TypeCode::Decimal256,
            prefix,
            Data::Fixed(Fixed::Le32(values)),
            validity,
            NullMode::Bitmap,
        )
    }

    /// A GEOHASH column of `bits` bits (1 to 60), each in the low bits.
    pub fn geohash(
        &mut self,
        name: &str,
        bits: u8,
        values: &'a [u64],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        if !(1..=60).contains(&bits) {
            return Err(ChunkError::BadType {
                table: self.table.clone(),
                column: name.to_owned(),
                reason: format!("{bits} geohash bits (1 to 60)"),
            });
        }
        let bytes = usize::from(bits).div_ceil(8);
        // Only the low `bits` may be set (the server stores what it gets,
        // and all ones is NULL).
        let valid = |r: usize| validity.is_none_or(|v| !v.covers(r + 1) || v.get(r));
        if let Some(row) =
            (0..values.len().min(self.rows)).find(|&r| valid(r) && values[r] >> bits != 0)
        {
            return Err(ChunkError::BadValue {
                table: self.table.clone(),
                column: name.to_owned(),
                row,
                reason: format!("{:#x} has bits above the column's {bits}", values[row]),
            });
        }
        self.push(
            name,
            TypeCode::Geohash,
            Some(bits),
            Data::Fixed(Fixed::Geo(values, bytes)),
            validity,
            NullMode::Bitmap,
        )
    }

    /// A VARCHAR column from Arrow offsets and UTF-8 data.
    pub fn varchar(
        &mut self,
        name: &str,
        offsets: Offsets<'a>,
        data: &'a [u8],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::Varchar,
            None,
            Data::Var { offsets, data },
            validity,
            NullMode::Bitmap,
        )
    }

    /// A BINARY column from Arrow offsets and bytes.
    pub fn binary(
        &mut self,
        name: &str,
        offsets: Offsets<'a>,
        data: &'a [u8],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.push(
            name,
            TypeCode::Binary,
            None,
            Data::Var { offsets, data },
            validity,
            NullMode::Bitmap,
        )
    }

    /// A SYMBOL column from dictionary codes (an Arrow dictionary array):
    /// `dictionary` and `strings` are the dictionary's offsets and UTF-8
    /// data. Only entries some valid row references are sent, once per
    /// connection.
    pub fn symbol(
        &mut self,
        name: &str,
        codes: Codes<'a>,
        dictionary: Offsets<'a>,
        strings: &'a [u8],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        let data = Data::Symbol {
            codes,
            dictionary,
            strings,
        };
        self.push(
            name,
            TypeCode::Symbol,
            None,
            data,
            validity,
            NullMode::Bitmap,
        )
    }

    /// A DOUBLE_ARRAY column: each row an N-dimensional array of
    /// `levels.len()` dimensions (1 to 32), laid out as Arrow nests lists:
    /// `levels[0]` holds `rows + 1` offsets into the entries of
    /// `levels[1]`, ..., the last level's offsets index `values`. Offsets
    /// need not start at 0 (sliced lists). Every non-NULL row must be
    /// rectangular (all lists at one depth of one row the same length), as
    /// QuestDB's arrays are; an element NULL is NaN.
    ///
    /// ```
    /// use quiver_client::{Chunk, Offsets};
    ///
    /// // Two rows of 2x2 matrices: rows -> matrix rows -> elements.
    /// let outer = [0i32, 2, 4];
    /// let inner = [0i32, 2, 4, 6, 8];
    /// let values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    /// let mut chunk = Chunk::new("m", 2)?;
    /// chunk.f64_array("m", &[Offsets::I32(&outer), Offsets::I32(&inner)], &values, None)?;
    /// # Ok::<(), quiver_client::ChunkError>(())
    /// ```
    pub fn f64_array(
        &mut self,
        name: &str,
        levels: &[Offsets<'a>],
        values: &'a [f64],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.array(
            name,
            TypeCode::DoubleArray,
            levels,
            Elements::F64(values),
            validity,
        )
    }

    /// A LONG_ARRAY column, laid out as for [`Chunk::f64_array`] (an
    /// element NULL is `i64::MIN`).
    pub fn i64_array(
        &mut self,
        name: &str,
        levels: &[Offsets<'a>],
        values: &'a [i64],
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        self.array(
            name,
            TypeCode::LongArray,
            levels,
            Elements::I64(values),
            validity,
        )
    }

    fn array(
        &mut self,
        name: &str,
        code: TypeCode,
        levels: &[Offsets<'a>],
        elements: Elements<'a>,
        validity: Option<Bits<'a>>,
    ) -> Result<&mut Self, ChunkError> {
        if levels.is_empty() || levels.len() > MAX_ARRAY_RANK {
            return Err(ChunkError::BadType {
                table: self.table.clone(),
                column: name.to_owned(),
                reason: format!(
                    "{} dimensions (1 to {MAX_ARRAY_RANK} allowed)",
                    levels.len()
                ),
            });
        }
        let rows = self.rows;
        if Some(levels[0].len()) != rows.checked_add(1) {
            return Err(self.length(
                name,
                "outer offsets",
                rows.saturating_add(1),
                levels[0].len(),
            ));
        }
        let bad = |row: usize, reason: String| ChunkError::BadValue {
            table: self.table.clone(),
            column: name.to_owned(),
            row,
            reason,
        };
        for (depth, level) in levels.iter().enumerate() {
            let limit = match levels.get(depth + 1) {
                Some(below) if below.len() == 0 => {
                    return Err(bad(0, format!("no offsets at depth {}", depth + 1)));
                }
                Some(below) => below.len() - 1,
                None => elements.len(),
            };
            level
                .check_within(limit)
                .map_err(|(i, reason)| match depth {
                    0 => bad(i, reason),
                    _ => bad(0, format!("depth {depth}, list {i}: {reason}")),
                })?;
        }
        if let Some(v) = validity.filter(|v| !v.covers(rows)) {
            let bits = v.bytes.len().saturating_mul(8).saturating_sub(v.offset);
            return Err(self.length(name, "validity bits", rows, bits));
        }
        let mut dims = Vec::with_capacity(levels.len());
        for r in (0..rows).filter(|&r| validity.is_none_or(|v| v.get(r))) {
            array_shape(levels, r, &mut dims).map_err(|reason| bad(r, reason))?;
            if let Some(d) = dims.iter().find(|&&d| u32::try_from(d).is_err()) {
                return Err(bad(r, format!("a dimension of {d} elements")));
            }
        }
        self.push(
            name,
            code,
            None,
            Data::Array(elements),
            validity,
            NullMode::Bitmap,
        )?;
        if let Some(column) = self.columns.last_mut() {
            column.levels = levels.to_vec();
        }
        Ok(self)
    }

    fn set_timestamp(&mut self, t: Designated<'a>) -> Result<&mut Self, ChunkError> {
        if self.timestamp != Designated::Unset {
            return Err(ChunkError::TimestampTwice {
                table: self.table.clone(),
            });
        }
        let column = matches!(t, Designated::Micros(_) | Designated::Nanos(_));
        if column && self.columns.len() >= MAX_COLUMNS {
            return Err(ChunkError::TooManyColumns {
                table: self.table.clone(),
                max: MAX_COLUMNS,
            });
        }

        let values = match t {
            Designated::Micros(v) | Designated::Nanos(v) => Some(v),
            _ => None,
        };
        if let Some(v) = values {
            if v.len() != self.rows {
                return Err(self.length("designated timestamp", "values", self.rows, v.len()));
            }
            if let Some(row) = v.iter().position(|&t| t < 0) {
                return Err(ChunkError::BadValue {
                    table: self.table.clone(),
                    column: "designated timestamp".into(),
                    row,
                    reason: format!(
                        "{} is before 1970 (designated timestamps cannot be)",
                        v[row]
                    ),
                });
            }
        }
        self.timestamp = t;
        Ok(self)
    }

    /// The designated timestamp, in microseconds since the epoch.
    pub fn at_micros(&mut self, values: &'a [i64]) -> Result<&mut Self, ChunkError> {
        self.set_timestamp(Designated::Micros(values))
    }

    /// The designated timestamp, in nanoseconds since the epoch.
    pub fn at_nanos(&mut self, values: &'a [i64]) -> Result<&mut Self, ChunkError> {
        self.set_timestamp(Designated::Nanos(values))
    }

    /// No designated timestamp: the server stamps each row with its time.
    pub fn at_server_time(&mut self) -> Result<&mut Self, ChunkError> {
        self.set_timestamp(Designated::ServerTime)
    }
}
