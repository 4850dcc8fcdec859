//! Column bodies: the null section and the type-specific values (SPEC §2.2),
//! shared by ingress table blocks, egress result batches and binds.
//!
//! ```text
//! null_flag  u8                 0 = dense (sentinels), else bitmap follows
//! [bitmap]   ceil(rows/8) bytes only if null_flag != 0; bit set = NULL
//! values     layout per type    value_count = rows - nulls
//! ```
//!
//! Decoding validates everything (lengths, offsets, UTF-8, symbol ids,
//! Gorilla streams, array shapes) and returns [`ColumnData`] whose byte
//! regions borrow from the message: no column data is copied. A consumer
//! copies once, from these views into its own buffers. [`ColumnData`] can only
//! be built by the decoder, by [`ColumnData::try_new`] (which validates) or by
//! [`ColumnBuilder`], so encoding one never fails.

use std::borrow::Cow;

use crate::bitmap::NullBitmap;
use crate::error::{DecodeErrorKind, DecodeResult, EncodeError};
use crate::gorilla::{GorillaTimestamps, encode_gorilla_if_smaller};
use crate::limits::Limits;
use crate::symbols::{StringList, SymbolIds};
use crate::types::{Direction, Layout, TypeCode};
use crate::value::{LeScalar, Value, le_values};
use crate::wire::{ByteReader, put_varint};

/// The values of a column after its null section. Which variant a type uses
/// is given by [`TypeCode::layout`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Values<'a> {
    /// BOOLEAN: `ceil(value_count/8)` bytes, LSB first.
    Boolean(Cow<'a, [u8]>),
    /// Fixed-width little-endian values (BYTE, SHORT, INT, LONG, FLOAT,
    /// DOUBLE, UUID, LONG256, CHAR, IPv4).
    Fixed(Cow<'a, [u8]>),
    /// TIMESTAMP, TIMESTAMP_NANOS, DATE.
    Timestamp(Timestamps<'a>),
    /// GEOHASH: precision, then `ceil(bits/8)` bytes per value.
    Geohash {
        /// Precision in bits, 1..=60.
        precision_bits: u8,
        /// The values.
        bytes: Cow<'a, [u8]>,
    },
    /// DECIMAL64/128/256: scale, then two's-complement values.
    Decimal {
        /// Scale.
        scale: u8,
        /// The values.
        bytes: Cow<'a, [u8]>,
    },
    /// VARCHAR, BINARY: `value_count + 1` `u32` LE offsets, then the data.
    VarLen {
        /// The offset table bytes.
        offsets: Cow<'a, [u8]>,
        /// The concatenated values.
        data: Cow<'a, [u8]>,
    },
    /// SYMBOL.
    Symbol(Symbols<'a>),
    /// DOUBLE_ARRAY, LONG_ARRAY.
    Array(ArrayValues<'a>),
}

/// Timestamp values, raw or Gorilla-encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Timestamps<'a> {
    /// `value_count` `i64` LE.
    Raw(Cow<'a, [u8]>),
    /// Delta-of-delta encoded (SPEC §2.4).
    Gorilla(GorillaTimestamps<'a>),
}

impl Timestamps<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            Timestamps::Raw(b) => b.len() / 8,
            Timestamps::Gorilla(g) => g.len() as usize,
        }
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the values to `out`.
    pub fn decode_into(&self, out: &mut Vec<i64>) {
        match self {
            Timestamps::Raw(b) => out.extend(le_values::<i64>(b)),
            Timestamps::Gorilla(g) => g.decode_into(out),
        }
    }

    /// The values as a vector.
    pub fn to_vec(&self) -> Vec<i64> {
        let mut out = Vec::with_capacity(self.len());
        self.decode_into(&mut out);
        out
    }

    /// The raw `i64` LE bytes, if not Gorilla-encoded (zero-copy path).
    pub fn raw_bytes(&self) -> Option<&[u8]> {
        match self {
            Timestamps::Raw(b) => Some(b),
            Timestamps::Gorilla(_) => None,
        }
    }
}

/// SYMBOL values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Symbols<'a> {
    /// Connection-global ids into the delta dictionary
    /// (`FLAG_DELTA_SYMBOL_DICT` set).
    Global(SymbolIds<'a>),
    /// A dictionary carried by the column and indices into it (flag clear).
    Local {
        /// The column's dictionary.
        dictionary: StringList<'a>,
        /// Indices into `dictionary`.
        ids: SymbolIds<'a>,
    },
}

impl<'a> Symbols<'a> {
    /// The ids (global or local).
    pub fn ids(&self) -> &SymbolIds<'a> {
        match self {
            Symbols::Global(ids) | Symbols::Local { ids, .. } => ids,
        }
    }
}

/// DOUBLE_ARRAY / LONG_ARRAY values, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayValues<'a> {
    bytes: Cow<'a, [u8]>,
    count: u32,
}

/// One array value: its shape and row-major 8-byte elements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArrayValue<'s> {
    shape: &'s [u8],
    data: &'s [u8],
}

impl<'s> ArrayValue<'s> {
    /// Rank (number of dimensions), at least 1.
    pub fn rank(&self) -> usize {
        self.shape.len() / 4
    }

    /// Dimension lengths.
    pub fn shape(&self) -> impl ExactSizeIterator<Item = u32> + 's {
        le_values::<u32>(self.shape)
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len() / 8
    }

    /// Whether the array has no elements (some dimension is 0).
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// The element bytes (`len() × 8`, little-endian).
    pub fn data(&self) -> &'s [u8] {
        self.data
    }

    /// Elements as `f64`.
    pub fn f64s(&self) -> impl ExactSizeIterator<Item = f64> + 's {
        le_values::<f64>(self.data)
    }

    /// Elements as `i64`.
    pub fn i64s(&self) -> impl ExactSizeIterator<Item = i64> + 's {
        le_values::<i64>(self.data)
    }
}

impl<'a> ArrayValues<'a> {
    fn decode(r: &mut ByteReader<'a>, count: u32, max_rank: u8) -> DecodeResult<Self> {
        // Each value takes at least 5 bytes (rank + one dimension).
        if u64::from(count) * 5 > r.remaining() as u64 {
            return Err(r.error(DecodeErrorKind::UnexpectedEnd {
                what: "array values",
                needed: u64::from(count) * 5,
                remaining: r.remaining() as u64,
            }));
        }
        let rest = r.rest();
        let before = r.position();
        // Lists below the outermost, over the whole column: what an Arrow
        // conversion allocates offsets for. An array with no elements
        // (a 0 dimension) can still claim billions of them in 9 bytes, so
        // they are bounded by the bytes left, with room for any array
        // without a 0 dimension (at most 31 lists per element).
        let list_budget = (rest.len() as u64).saturating_mul(4);
        let mut lists = 0u64;
        for _ in 0..count {
            let at = r.position();
            let rank = r.u8("array rank")?;
            if rank == 0 || rank > max_rank {
                return Err(r.error_at(
                    DecodeErrorKind::InvalidArrayRank {
                        n_dims: rank,
                        max: max_rank,
                    },
                    at,
                ));
            }
            let shape = r.take(u64::from(rank) * 4, "array shape")?;
            let mut prefix = 1u64;
            for d in le_values::<u32>(shape).take(usize::from(rank) - 1) {
                prefix = prefix.saturating_mul(u64::from(d));
                lists = lists.saturating_add(prefix);
            }
            if lists > list_budget {
                return Err(r.error_at(DecodeErrorKind::ArrayTooLarge { elements: lists }, at));
            }
            let elements = element_count(shape);
            if elements > (r.remaining() / 8) as u64 {
                return Err(r.error_at(DecodeErrorKind::ArrayTooLarge { elements }, at));
            }
            r.take(elements * 8, "array elements")?;
        }
        let used = r.position() - before;
        Ok(ArrayValues {
            bytes: Cow::Borrowed(&rest[..used]),
            count,
        })
    }

    /// Number of array values.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The arrays in row order (NULL rows have none).
    pub fn iter(&self) -> ArrayIter<'_> {
        ArrayIter {
            bytes: &self.bytes,
            remaining: self.count,
        }
    }

    /// The encoded bytes.
    pub(crate) fn encoded(&self) -> &[u8] {
        &self.bytes
    }

    /// The same values, owning their bytes.
    pub fn into_owned(self) -> ArrayValues<'static> {
        ArrayValues {
            bytes: Cow::Owned(self.bytes.into_owned()),
            count: self.count,
        }
    }
}

/// Elements in an array of `shape` (`u32` LE dimensions), saturating: a
/// shape like `[u32::MAX, u32::MAX, u32::MAX, 0]` has 0 elements, and one
/// whose product overflows is "more than any message holds".
fn element_count(shape: &[u8]) -> u64 {
    if le_values::<u32>(shape).any(|d| d == 0) {
        return 0;
    }
    le_values::<u32>(shape).fold(1u64, |acc, d| acc.saturating_mul(u64::from(d)))
}

/// Iterator over [`ArrayValues`].
#[derive(Debug, Clone)]
pub struct ArrayIter<'s> {
    bytes: &'s [u8],
    remaining: u32,
}

impl<'s> Iterator for ArrayIter<'s> {
    type Item = ArrayValue<'s>;

    fn next(&mut self) -> Option<ArrayValue<'s>> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        // Validated on decode/build; malformed bytes end the iteration.
        let (&rank, rest) = self.bytes.split_first()?;
        let shape = rest.get(..usize::from(rank) * 4)?;
        let bytes = usize::try_from(element_count(shape)).ok()?.checked_mul(8)?;
        let data = rest.get(shape.len()..shape.len().checked_add(bytes)?)?;
        self.bytes = &rest[shape.len() + data.len()..];
        Some(ArrayValue { shape, data })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

/// How a column is read: direction, message flags, dictionary size, limits.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ColumnRules<'l> {
    pub(crate) direction: Direction,
    /// `FLAG_GORILLA` is set on the message.
    pub(crate) gorilla: bool,
    /// `Some(size)` when the message uses the delta dictionary: SYMBOL ids
    /// are global and must be below `size`.
    pub(crate) global_dict_size: Option<u64>,
    pub(crate) limits: &'l Limits,
}

/// How a column is written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct EncodeRules {
    pub(crate) direction: Direction,
    pub(crate) gorilla: bool,
    pub(crate) delta_symbols: bool,
}

/// One column's body: type, row count, nulls and values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnData<'a> {
    type_code: TypeCode,
    row_count: u32,
    nulls: Option<NullBitmap<'a>>,
    values: Values<'a>,
}

impl<'a> ColumnData<'a> {
    /// Reads one column body of `row_count` rows.
    pub(crate) fn decode(
        r: &mut ByteReader<'a>,
        type_code: TypeCode,
        row_count: u32,
        rules: &ColumnRules<'_>,
    ) -> DecodeResult<Self> {
        let flag_at = r.position();
        let null_flag = r.u8("null flag")?;
        let nulls = if null_flag == 0 {
            None
        } else {
            if rules.direction == Direction::Egress {
                if null_flag != 1 {
                    return Err(r.error_at(DecodeErrorKind::InvalidNullFlag(null_flag), flag_at));
                }
                if type_code.is_never_null() {
                    return Err(r.error_at(
                        DecodeErrorKind::NullsNotAllowed {
                            type_name: type_code.name(),
                        },
                        flag_at,
                    ));
                }
            }
            Some(NullBitmap::decode(r, row_count)?)
        };
        let n = row_count - nulls.as_ref().map_or(0, NullBitmap::null_count);
        let values = match type_code.layout() {
            Layout::Boolean => Values::Boolean(Cow::Borrowed(
                r.take(u64::from(n).div_ceil(8), "boolean values")?,
            )),
            Layout::Fixed(w) => Values::Fixed(Cow::Borrowed(r.take_array(
                u64::from(n),
                w as u64,
                type_code.name(),
            )?)),
            Layout::Timestamp => {
                let encoding = if rules.gorilla && type_code.has_timestamp_encoding(rules.direction)
                {
                    r.u8("timestamp encoding")?
                } else {
                    0
                };
                match encoding {
                    0 => Values::Timestamp(Timestamps::Raw(Cow::Borrowed(r.take_array(
                        u64::from(n),
                        8,
                        type_code.name(),
                    )?))),
                    1 => Values::Timestamp(Timestamps::Gorilla(GorillaTimestamps::decode(r, n)?)),
                    other => {
                        return Err(r.error_at(
                            DecodeErrorKind::UnknownTimestampEncoding(other),
                            r.position() - 1,
                        ));
                    }
                }
            }
            Layout::Geohash => {
                let at = r.position();
                let bits = r.varint("geohash precision")?;
                if !(1..=60).contains(&bits) {
                    return Err(r.error_at(DecodeErrorKind::InvalidGeohashPrecision { bits }, at));
                }
                let bytes = r.take_array(u64::from(n), bits.div_ceil(8), "geohash values")?;
                Values::Geohash {
                    precision_bits: bits as u8,
                    bytes: Cow::Borrowed(bytes),
                }
            }
            Layout::Decimal(w) => {
                let at = r.position();
                let scale = r.u8("decimal scale")?;
                let max = type_code.max_decimal_scale().expect("decimal layout");
                if scale > max {
                    return Err(r.error_at(
                        DecodeErrorKind::InvalidScale {
                            type_name: type_code.name(),
                            scale,
                            max,
                        },
                        at,
                    ));
                }
                let bytes = r.take_array(u64::from(n), w as u64, type_code.name())?;
                Values::Decimal {
                    scale,
                    bytes: Cow::Borrowed(bytes),
                }
            }
            Layout::VarLen => {
                let offsets_at = r.position();
                let offsets = r.take_array(u64::from(n) + 1, 4, "offset table")?;
                let data_len = check_offsets(offsets)
                    .map_err(|reason| r.error_at(offsets_error(type_code, reason), offsets_at))?;
                let data_at = r.position();
                let data = r.take(u64::from(data_len), "variable-length data")?;
                if type_code == TypeCode::Varchar {
                    check_utf8(offsets, data).map_err(|kind| r.error_at(kind, data_at))?;
                }
                Values::VarLen {
                    offsets: Cow::Borrowed(offsets),
                    data: Cow::Borrowed(data),
                }
            }
            Layout::Symbol => match rules.global_dict_size {
                Some(size) => Values::Symbol(Symbols::Global(SymbolIds::decode(r, n, size)?)),
                None => {
                    let limit = match rules.direction {
                        // The egress client requires dict_size <= row_count.
                        Direction::Egress => u64::from(row_count),
                        Direction::Ingress => rules.limits.max_symbol_entries,
                    };
                    let size = r.varint_max("column symbol dictionary size", limit)?;
                    let dictionary = StringList::decode(
                        r,
                        size,
                        rules.limits.max_symbol_len,
                        "column symbol dictionary entry",
                    )?;
                    let ids = SymbolIds::decode(r, n, size)?;
                    Values::Symbol(Symbols::Local { dictionary, ids })
                }
            },
            Layout::Array => Values::Array(ArrayValues::decode(r, n, rules.limits.max_array_rank)?),
        };
        Ok(ColumnData {
            type_code,
            row_count,
            nulls,
            values,
        })
    }

    /// A column from parts, checked for consistency: the values' layout
    /// matches the type, their count is `row_count` minus the NULLs, offsets
    /// are monotonic and (VARCHAR) on UTF-8 boundaries, scale and precision
    /// are in range.
    pub fn try_new(
        type_code: TypeCode,
        row_count: u32,
        nulls: Option<NullBitmap<'a>>,
        values: Values<'a>,
    ) -> Result<Self, EncodeError> {
        Self::build(type_code, row_count, nulls, values, true)
    }

    /// [`ColumnData::try_new`] for VARCHAR text known to be UTF-8 with
    /// every offset on a character boundary (it comes from an Arrow
    /// `StringArray`, which guarantees both): every check but that one.
    /// Text that breaks the promise makes a frame the peer refuses, nothing
    /// worse.
    pub fn try_new_utf8_checked(
        type_code: TypeCode,
        row_count: u32,
        nulls: Option<NullBitmap<'a>>,
        values: Values<'a>,
    ) -> Result<Self, EncodeError> {
        Self::build(type_code, row_count, nulls, values, false)
    }

    fn build(
        type_code: TypeCode,
        row_count: u32,
        nulls: Option<NullBitmap<'a>>,
        values: Values<'a>,
        check_text: bool,
    ) -> Result<Self, EncodeError> {
        let bad = |reason: &'static str| EncodeError::InvalidValue {
            what: type_code.name(),
            reason,
        };
        if let Some(b) = &nulls
            && b.rows() != row_count
        {
            return Err(bad("null bitmap covers a different number of rows"));
        }
        let n = (row_count - nulls.as_ref().map_or(0, NullBitmap::null_count)) as usize;
        let ok = match (type_code.layout(), &values) {
            (Layout::Boolean, Values::Boolean(b)) => b.len() == n.div_ceil(8),
            (Layout::Fixed(w), Values::Fixed(b)) => b.len() == n * w,
            (Layout::Timestamp, Values::Timestamp(t)) => {
                t.len() == n && t.raw_bytes().is_none_or(|b| b.len() % 8 == 0)
            }
            (
                Layout::Geohash,
                Values::Geohash {
                    precision_bits,
                    bytes,
                },
            ) => {
                if !(1..=60).contains(precision_bits) {
                    return Err(bad("geohash precision outside 1..=60"));
                }
                bytes.len() == n * usize::from(*precision_bits).div_ceil(8)
            }
            (Layout::Decimal(w), Values::Decimal { scale, bytes }) => {
                if Some(*scale) > type_code.max_decimal_scale() {
                    return Err(bad("decimal scale past the type's maximum"));
                }
                bytes.len() == n * w
            }
            (Layout::VarLen, Values::VarLen { offsets, data }) => {
                if offsets.len() != (n + 1) * 4 {
                    return Err(bad("offset table must have value_count + 1 entries"));
                }
                let end = check_offsets(offsets).map_err(bad)?;
                if end as usize != data.len() {
                    return Err(bad("last offset must equal the data length"));
                }
                if check_text
                    && type_code == TypeCode::Varchar
                    && check_utf8(offsets, data).is_err()
                {
                    return Err(bad("VARCHAR data is not UTF-8 on every offset"));
                }
                true
            }
            (Layout::Symbol, Values::Symbol(s)) => {
                if let Symbols::Local { dictionary, ids } = s
                    && ids.max_id().is_some_and(|m| m >= dictionary.len())
                {
                    return Err(bad("symbol index past the column dictionary"));
                }
                s.ids().len() as usize == n
            }
            (Layout::Array, Values::Array(a)) => a.len() as usize == n,
            _ => return Err(bad("values do not match the type's layout")),
        };
        if !ok {
            return Err(bad("value count differs from row_count minus NULLs"));
        }
        Ok(ColumnData {
            type_code,
            row_count,
            nulls,
            values,
        })
    }

    /// The column type.
    pub fn type_code(&self) -> TypeCode {
        self.type_code
    }

    /// Rows, NULL or not.
    pub fn row_count(&self) -> u32 {
        self.row_count
    }

    /// The null bitmap, if the column was sent in bitmap mode.
    pub fn nulls(&self) -> Option<&NullBitmap<'a>> {
        self.nulls.as_ref()
    }

    /// Rows that are NULL by the bitmap (sentinels are not counted).
    pub fn null_count(&self) -> u32 {
        self.nulls.as_ref().map_or(0, NullBitmap::null_count)
    }

    /// Values present (non-NULL rows).
    pub fn value_count(&self) -> u32 {
        self.row_count - self.null_count()
    }

    /// The values.
    pub fn values(&self) -> &Values<'a> {
        &self.values
    }

    /// Every row in order: `None` for a bitmap NULL, else the value. This
    /// allocates and is meant for tests, the row API and diagnostics.
    pub fn rows(&self) -> Vec<Option<Value<'_>>> {
        let mut dense = self.dense_values().into_iter();
        (0..self.row_count)
            .map(|row| match &self.nulls {
                Some(b) if b.is_null(row) => None,
                _ => dense.next(),
            })
            .collect()
    }

    /// The non-NULL values in order.
    fn dense_values(&self) -> Vec<Value<'_>> {
        let n = self.value_count() as usize;
        let t = self.type_code;
        match &self.values {
            Values::Boolean(bits) => (0..n)
                .map(|i| Value::Boolean(bits[i / 8] & (1 << (i % 8)) != 0))
                .collect(),
            Values::Fixed(b) => match t {
                TypeCode::Byte => le_values::<i8>(b).map(Value::Byte).collect(),
                TypeCode::Short => le_values::<i16>(b).map(Value::Short).collect(),
                TypeCode::Char => le_values::<u16>(b).map(Value::Char).collect(),
                TypeCode::Int => le_values::<i32>(b).map(Value::Int).collect(),
                TypeCode::Ipv4 => le_values::<u32>(b).map(Value::Ipv4).collect(),
                TypeCode::Float => le_values::<f32>(b).map(Value::Float).collect(),
                TypeCode::Long => le_values::<i64>(b).map(Value::Long).collect(),
                TypeCode::Double => le_values::<f64>(b).map(Value::Double).collect(),
                TypeCode::Uuid => b
                    .chunks_exact(16)
                    .map(|c| Value::Uuid {
                        lo: u64::read_le(&c[..8]),
                        hi: u64::read_le(&c[8..]),
                    })
                    .collect(),
                TypeCode::Long256 => b
                    .chunks_exact(32)
                    .map(|c| {
                        let mut limbs = [0u64; 4];
                        for (l, v) in limbs.iter_mut().zip(le_values::<u64>(c)) {
                            *l = v;
                        }
                        Value::Long256(limbs)
                    })
                    .collect(),
                _ => unreachable!("fixed layout types are listed above"),
            },
            Values::Timestamp(ts) => {
                let wrap = match t {
                    TypeCode::Timestamp => Value::Timestamp,
                    TypeCode::TimestampNanos => Value::TimestampNanos,
                    _ => Value::Date,
                };
                ts.to_vec().into_iter().map(wrap).collect()
            }
            Values::Geohash {
                precision_bits,
                bytes,
            } => {
                let w = usize::from(*precision_bits).div_ceil(8);
                bytes
                    .chunks_exact(w)
                    .map(|c| {
                        let mut buf = [0u8; 8];
                        buf[..w].copy_from_slice(c);
                        Value::Geohash {
                            precision_bits: *precision_bits,
                            value: u64::from_le_bytes(buf),
                        }
                    })
                    .collect()
            }
            Values::Decimal { scale, bytes } => match t {
                TypeCode::Decimal64 => le_values::<i64>(bytes)
                    .map(|unscaled| Value::Decimal64 {
                        scale: *scale,
                        unscaled,
                    })
                    .collect(),
                TypeCode::Decimal128 => le_values::<i128>(bytes)
                    .map(|unscaled| Value::Decimal128 {
                        scale: *scale,
                        unscaled,
                    })
                    .collect(),
                _ => bytes
                    .chunks_exact(32)
                    .map(|c| Value::Decimal256 {
                        scale: *scale,
                        unscaled: c.try_into().expect("chunk of 32"),
                    })
                    .collect(),
            },
            Values::VarLen { offsets, data } => {
                let offs: Vec<usize> = le_values::<u32>(offsets).map(|o| o as usize).collect();
                offs.windows(2)
                    .map(|w| {
                        let bytes = &data[w[0]..w[1]];
                        if t == TypeCode::Varchar {
                            // Checked on decode/build.
                            Value::Varchar(std::str::from_utf8(bytes).unwrap_or_default())
                        } else {
                            Value::Binary(bytes)
                        }
                    })
                    .collect()
            }
            Values::Symbol(s) => s.ids().iter().map(Value::Symbol).collect(),
            Values::Array(a) => a
                .iter()
                .map(|v| {
                    let shape: Vec<u32> = v.shape().collect();
                    if t == TypeCode::DoubleArray {
                        Value::DoubleArray {
                            shape,
                            values: v.f64s().collect(),
                        }
                    } else {
                        Value::LongArray {
                            shape,
                            values: v.i64s().collect(),
                        }
                    }
                })
                .collect(),
        }
    }

    /// Writes the column body.
    pub(crate) fn encode(&self, out: &mut Vec<u8>, rules: &EncodeRules) -> Result<(), EncodeError> {
        match &self.nulls {
            Some(b) => {
                out.push(1);
                b.encode(out);
            }
            None => out.push(0),
        }
        match &self.values {
            Values::Boolean(b) | Values::Fixed(b) => out.extend_from_slice(b),
            Values::Timestamp(ts) => {
                if rules.gorilla && self.type_code.has_timestamp_encoding(rules.direction) {
                    let values = ts.to_vec();
                    let flag = out.len();
                    out.push(1);
                    if !encode_gorilla_if_smaller(&values, out) {
                        out[flag] = 0;
                        match ts.raw_bytes() {
                            Some(b) => out.extend_from_slice(b),
                            None => values.iter().for_each(|v| v.put_le(out)),
                        }
                    }
                } else {
                    match ts.raw_bytes() {
                        Some(b) => out.extend_from_slice(b),
                        None => ts.to_vec().iter().for_each(|v| v.put_le(out)),
                    }
                }
            }
            Values::Geohash {
                precision_bits,
                bytes,
            } => {
                put_varint(out, u64::from(*precision_bits));
                out.extend_from_slice(bytes);
            }
            Values::Decimal { scale, bytes } => {
                out.push(*scale);
                out.extend_from_slice(bytes);
            }
            Values::VarLen { offsets, data } => {
                out.extend_from_slice(offsets);
                out.extend_from_slice(data);
            }
            Values::Symbol(Symbols::Global(ids)) => {
                if !rules.delta_symbols {
                    return Err(EncodeError::SymbolModeMismatch {
                        column: String::new(),
                        reason: "global symbol ids need the delta dictionary section",
                    });
                }
                out.extend_from_slice(ids.encoded());
            }
            Values::Symbol(Symbols::Local { dictionary, ids }) => {
                if rules.delta_symbols {
                    return Err(EncodeError::SymbolModeMismatch {
                        column: String::new(),
                        reason: "a column-local dictionary cannot be sent with the delta dictionary section",
                    });
                }
                put_varint(out, u64::from(dictionary.len()));
                out.extend_from_slice(dictionary.encoded());
                out.extend_from_slice(ids.encoded());
            }
            Values::Array(a) => out.extend_from_slice(a.encoded()),
        }
        Ok(())
    }

    /// The same column, owning its bytes.
    pub fn into_owned(self) -> ColumnData<'static> {
        let owned = |c: Cow<'_, [u8]>| Cow::Owned(c.into_owned());
        ColumnData {
            type_code: self.type_code,
            row_count: self.row_count,
            nulls: self.nulls.map(NullBitmap::into_owned),
            values: match self.values {
                Values::Boolean(b) => Values::Boolean(owned(b)),
                Values::Fixed(b) => Values::Fixed(owned(b)),
                Values::Timestamp(Timestamps::Raw(b)) => {
                    Values::Timestamp(Timestamps::Raw(owned(b)))
                }
                Values::Timestamp(Timestamps::Gorilla(g)) => {
                    Values::Timestamp(Timestamps::Gorilla(g.into_owned()))
                }
                Values::Geohash {
                    precision_bits,
                    bytes,
                } => Values::Geohash {
                    precision_bits,
                    bytes: owned(bytes),
                },
                Values::Decimal { scale, bytes } => Values::Decimal {
                    scale,
                    bytes: owned(bytes),
                },
                Values::VarLen { offsets, data } => Values::VarLen {
                    offsets: owned(offsets),
                    data: owned(data),
                },
                Values::Symbol(Symbols::Global(ids)) => {
                    Values::Symbol(Symbols::Global(ids.into_owned()))
                }
                Values::Symbol(Symbols::Local { dictionary, ids }) => {
                    Values::Symbol(Symbols::Local {
                        dictionary: dictionary.into_owned(),
                        ids: ids.into_owned(),
                    })
                }
                Values::Array(a) => Values::Array(a.into_owned()),
            },
        }
    }
}

fn offsets_error(type_code: TypeCode, reason: &'static str) -> DecodeErrorKind {
    DecodeErrorKind::InvalidOffsets {
        what: match type_code {
            TypeCode::Varchar => "VARCHAR offset table",
            _ => "BINARY offset table",
        },
        reason,
    }
}

/// Checks an offset table (`u32` LE, first 0, non-decreasing) and returns
/// the last offset (the data length).
fn check_offsets(offsets: &[u8]) -> Result<u32, &'static str> {
    let mut it = le_values::<u32>(offsets);
    let first = it.next().ok_or("offset table is empty")?;
    if first != 0 {
        return Err("first offset is not 0");
    }
    let mut prev = 0u32;
    let mut decreasing = false;
    for o in it {
        decreasing |= o < prev;
        prev = o;
    }
    if decreasing {
        return Err("offsets decrease");
    }
    Ok(prev)
}

/// Checks that VARCHAR data is UTF-8 and every offset is a char boundary.
fn check_utf8(offsets: &[u8], data: &[u8]) -> Result<(), DecodeErrorKind> {
    let text = std::str::from_utf8(data).map_err(|_| DecodeErrorKind::InvalidUtf8 {
        what: "VARCHAR value",
    })?;
    if text.is_ascii() {
        return Ok(());
    }
    if le_values::<u32>(offsets).all(|o| text.is_char_boundary(o as usize)) {
        Ok(())
    } else {
        Err(DecodeErrorKind::InvalidUtf8 {
            what: "VARCHAR value (offset inside a character)",
        })
    }
}

/// How NULLs are written by [`ColumnBuilder::finish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NullEncoding {
    /// A bitmap whenever the column has a NULL (the Java client's choice and
    /// the only form for most types).
    Bitmap,
    /// Dense values with sentinels for BOOLEAN (false), BYTE/SHORT/CHAR (0),
    /// INT/LONG (`MIN`) and FLOAT/DOUBLE (NaN), as the official Rust/Python
    /// clients send them; other types still use a bitmap.
    Sentinel,
}

/// Builds an owned [`ColumnData`] from [`Value`]s, one row at a time.
#[derive(Debug, Clone)]
pub struct ColumnBuilder {
    type_code: TypeCode,
    is_null: Vec<bool>,
    /// Dense non-NULL values in the column's value layout (booleans one
    /// byte each until `finish`).
    values: Vec<u8>,
    /// VarLen offsets.
    offsets: Vec<u32>,
    ids: Vec<u32>,
    arrays: Vec<u8>,
    array_count: u32,
    geohash_bits: Option<u8>,
    scale: Option<u8>,
}

impl ColumnBuilder {
    /// An empty column of `type_code`.
    pub fn new(type_code: TypeCode) -> Self {
        ColumnBuilder {
            type_code,
            is_null: Vec::new(),
            values: Vec::new(),
            offsets: vec![0],
            ids: Vec::new(),
            arrays: Vec::new(),
            array_count: 0,
            geohash_bits: None,
            scale: None,
        }
    }

    /// Sets the GEOHASH precision (needed when every row is NULL).
    pub fn geohash_precision(mut self, bits: u8) -> Self {
        self.geohash_bits = Some(bits);
        self
    }

    /// Sets the DECIMAL scale (needed when every row is NULL).
    pub fn decimal_scale(mut self, scale: u8) -> Self {
        self.scale = Some(scale);
        self
    }

    /// Rows pushed so far.
    pub fn len(&self) -> usize {
        self.is_null.len()
    }

    /// Makes room for `rows` more rows (values of variable width: their
    /// offsets only), so a column known to grow large is not reallocated
    /// on the way.
    pub fn reserve(&mut self, rows: usize) {
        self.is_null.reserve(rows);
        match self.type_code.layout() {
            Layout::Boolean => self.values.reserve(rows),
            Layout::Fixed(w) | Layout::Decimal(w) => self.values.reserve(rows.saturating_mul(w)),
            Layout::Timestamp => self.values.reserve(rows.saturating_mul(8)),
            Layout::VarLen => self.offsets.reserve(rows),
            _ => {}
        }
        if self.type_code == TypeCode::Symbol {
            self.ids.reserve(rows);
        }
    }

    /// Whether no rows were pushed.
    pub fn is_empty(&self) -> bool {
        self.is_null.is_empty()
    }

    /// Appends a row: `None` is NULL. The value's type must be the column's,
    /// and GEOHASH precision and DECIMAL scale must agree across rows.
    pub fn push(&mut self, value: Option<&Value<'_>>) -> Result<(), EncodeError> {
        let Some(value) = value else {
            self.is_null.push(true);
            return Ok(());
        };
        if value.type_code() != self.type_code {
            return Err(EncodeError::InvalidValue {
                what: self.type_code.name(),
                reason: "value of another type pushed to the column",
            });
        }
        let out = &mut self.values;
        match *value {
            Value::Boolean(b) => out.push(u8::from(b)),
            Value::Byte(v) => v.put_le(out),
            Value::Short(v) => v.put_le(out),
            Value::Char(v) => v.put_le(out),
            Value::Int(v) => v.put_le(out),
            Value::Ipv4(v) => v.put_le(out),
            Value::Float(v) => v.put_le(out),
            Value::Long(v) | Value::Timestamp(v) | Value::Date(v) | Value::TimestampNanos(v) => {
                v.put_le(out)
            }
            Value::Double(v) => v.put_le(out),
            Value::Uuid { lo, hi } => {
                lo.put_le(out);
                hi.put_le(out);
            }
            Value::Long256(limbs) => limbs.iter().for_each(|l| l.put_le(out)),
            Value::Geohash {
                precision_bits,
                value,
            } => {
                if !(1..=60).contains(&precision_bits) {
                    return Err(EncodeError::InvalidValue {
                        what: "GEOHASH",
                        reason: "precision outside 1..=60 bits",
                    });
                }
                Self::agree(&mut self.geohash_bits, precision_bits, "GEOHASH precision")?;
                let w = usize::from(precision_bits).div_ceil(8);
                out.extend_from_slice(&value.to_le_bytes()[..w]);
            }
            Value::Decimal64 { scale, unscaled } => {
                Self::agree(&mut self.scale, scale, "DECIMAL scale")?;
                unscaled.put_le(out);
            }
            Value::Decimal128 { scale, unscaled } => {
                Self::agree(&mut self.scale, scale, "DECIMAL scale")?;
                unscaled.put_le(out);
            }
            Value::Decimal256 { scale, unscaled } => {
                Self::agree(&mut self.scale, scale, "DECIMAL scale")?;
                out.extend_from_slice(&unscaled);
            }
            Value::Varchar(s) => self.push_bytes(s.as_bytes())?,
            Value::Binary(b) => self.push_bytes(b)?,
            Value::Symbol(id) => self.ids.push(id),
            Value::DoubleArray {
                ref shape,
                ref values,
            } => {
                self.push_array(shape, values.len())?;
                values.iter().for_each(|v| v.put_le(&mut self.arrays));
            }
            Value::LongArray {
                ref shape,
                ref values,
            } => {
                self.push_array(shape, values.len())?;
                values.iter().for_each(|v| v.put_le(&mut self.arrays));
            }
        }
        self.is_null.push(false);
        Ok(())
    }

    fn agree(slot: &mut Option<u8>, v: u8, what: &'static str) -> Result<(), EncodeError> {
        match *slot {
            Some(s) if s != v => Err(EncodeError::InvalidValue {
                what,
                reason: "differs between rows of one column",
            }),
            _ => {
                *slot = Some(v);
                Ok(())
            }
        }
    }

    fn push_bytes(&mut self, b: &[u8]) -> Result<(), EncodeError> {
        self.values.extend_from_slice(b);
        let end = u32::try_from(self.values.len()).map_err(|_| EncodeError::TooLarge {
            what: "variable-length column data",
            value: self.values.len() as u64,
            max: u64::from(u32::MAX),
        })?;
        self.offsets.push(end);
        Ok(())
    }

    fn push_array(&mut self, shape: &[u32], elements: usize) -> Result<(), EncodeError> {
        let rank = u8::try_from(shape.len()).ok().filter(|r| *r >= 1).ok_or(
            EncodeError::InvalidValue {
                what: "array",
                reason: "rank must be 1..=255",
            },
        )?;
        // As on decode: any zero dimension means no elements.
        let product = if shape.contains(&0) {
            Some(0)
        } else {
            shape
                .iter()
                .try_fold(1usize, |acc, d| acc.checked_mul(*d as usize))
        };
        if product != Some(elements) {
            return Err(EncodeError::InvalidValue {
                what: "array",
                reason: "element count differs from the product of the shape",
            });
        }
        self.arrays.push(rank);
        shape.iter().for_each(|d| d.put_le(&mut self.arrays));
        self.array_count += 1;
        Ok(())
    }

    /// The column, with NULLs written as `nulls` says.
    pub fn finish(self, nulls: NullEncoding) -> ColumnData<'static> {
        self.finish_with(nulls, None)
            .expect("global symbol ids need no dictionary check")
    }

    /// A SYMBOL column in per-column mode: `dictionary` is sent with the
    /// column and the pushed ids index it.
    pub fn finish_local_symbols(
        self,
        dictionary: StringList<'static>,
    ) -> Result<ColumnData<'static>, EncodeError> {
        self.finish_with(NullEncoding::Bitmap, Some(dictionary))
    }

    fn finish_with(
        self,
        nulls: NullEncoding,
        local_dictionary: Option<StringList<'static>>,
    ) -> Result<ColumnData<'static>, EncodeError> {
        let t = self.type_code;
        let rows = self.is_null.len() as u32;
        let any_null = self.is_null.iter().any(|n| *n);
        let sentinel = sentinel_bytes(t).filter(|_| nulls == NullEncoding::Sentinel && any_null);
        let bitmap = (any_null && sentinel.is_none())
            .then(|| NullBitmap::from_nulls(self.is_null.iter().copied()));
        // Dense values, with sentinels spliced in for NULL rows if chosen.
        let dense: Vec<u8> = match (&sentinel, t.layout()) {
            (Some(s), _) => {
                let w = s.len();
                let mut out = Vec::with_capacity(self.is_null.len() * w);
                let mut src = self.values.chunks_exact(w);
                for &is_null in &self.is_null {
                    out.extend_from_slice(if is_null {
                        s
                    } else {
                        src.next().expect("one per value")
                    });
                }
                out
            }
            _ => self.values,
        };
        let values = match t.layout() {
            Layout::Boolean => {
                let mut bits = vec![0u8; dense.len().div_ceil(8)];
                for (i, b) in dense.iter().enumerate() {
                    bits[i / 8] |= (b & 1) << (i % 8);
                }
                Values::Boolean(Cow::Owned(bits))
            }
            Layout::Fixed(_) => Values::Fixed(Cow::Owned(dense)),
            Layout::Timestamp => Values::Timestamp(Timestamps::Raw(Cow::Owned(dense))),
            Layout::Geohash => Values::Geohash {
                precision_bits: self.geohash_bits.unwrap_or(60),
                bytes: Cow::Owned(dense),
            },
            Layout::Decimal(_) => Values::Decimal {
                scale: self.scale.unwrap_or(0),
                bytes: Cow::Owned(dense),
            },
            Layout::VarLen => Values::VarLen {
                offsets: Cow::Owned(self.offsets.iter().flat_map(|o| o.to_le_bytes()).collect()),
                data: Cow::Owned(dense),
            },
            Layout::Symbol => {
                let ids = SymbolIds::from_ids(self.ids);
                Values::Symbol(match local_dictionary {
                    Some(dictionary) => Symbols::Local { dictionary, ids },
                    None => Symbols::Global(ids),
                })
            }
            Layout::Array => Values::Array(ArrayValues {
                bytes: Cow::Owned(self.arrays),
                count: self.array_count,
            }),
        };
        ColumnData::try_new(t, rows, bitmap, values)
    }
}

/// The dense-mode NULL sentinel bytes for the types that use one.
fn sentinel_bytes(t: TypeCode) -> Option<&'static [u8]> {
    const NAN32: [u8; 4] = f32::NAN.to_le_bytes();
    const NAN64: [u8; 8] = f64::NAN.to_le_bytes();
    const MIN32: [u8; 4] = i32::MIN.to_le_bytes();
    const MIN64: [u8; 8] = i64::MIN.to_le_bytes();
    Some(match t {
        TypeCode::Boolean | TypeCode::Byte => &[0],
        TypeCode::Short | TypeCode::Char => &[0, 0],
        TypeCode::Int => &MIN32,
        TypeCode::Long => &MIN64,
        TypeCode::Float => &NAN32,
        TypeCode::Double => &NAN64,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(limits: &Limits) -> ColumnRules<'_> {
        ColumnRules {
            direction: Direction::Ingress,
            gorilla: false,
            global_dict_size: Some(10),
            limits,
        }
    }

    fn decode(bytes: &[u8], t: TypeCode, rows: u32) -> DecodeResult<ColumnData<'_>> {
        let limits = Limits::default();
        let mut r = ByteReader::new(bytes);
        let c = ColumnData::decode(&mut r, t, rows, &rules(&limits))?;
        r.finish("column")?;
        Ok(c)
    }

    #[test]
    fn empty_arrays_cannot_claim_more_lists_than_the_bytes_allow() {
        // null_flag 0, then one array: rank 2, shape [n, 0], no elements.
        let frame = |n: u32| {
            let mut b = vec![0u8, 2];
            b.extend_from_slice(&n.to_le_bytes());
            b.extend_from_slice(&0u32.to_le_bytes());
            b
        };
        // 9 bytes left after the null flag: up to 36 inner lists.
        assert!(decode(&frame(36), TypeCode::DoubleArray, 1).is_ok());
        for n in [37, 1 << 20, u32::MAX] {
            let e = decode(&frame(n), TypeCode::DoubleArray, 1).unwrap_err();
            assert!(
                matches!(e.kind(), DecodeErrorKind::ArrayTooLarge { .. }),
                "{n}: {e:?}"
            );
        }
        // Three dimensions: the products of the outer ones count.
        let mut b = vec![0u8, 3];
        for d in [u32::MAX, u32::MAX, 0] {
            b.extend_from_slice(&d.to_le_bytes());
        }
        assert!(decode(&b, TypeCode::DoubleArray, 1).is_err());
    }

    #[test]
    fn spec_nullable_varchar() {
        // SPEC §6.3: 4 rows, row 1 null: "foo", NULL, "bar", "baz".
        let bytes = [
            0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00, 0x00, 0x00, 0x06, 0x00, 0x00, 0x00,
            0x09, 0x00, 0x00, 0x00, b'f', b'o', b'o', b'b', b'a', b'r', b'b', b'a', b'z',
        ];
        let c = decode(&bytes, TypeCode::Varchar, 4).unwrap();
        assert_eq!(
            c.rows(),
            [
                Some(Value::Varchar("foo")),
                None,
                Some(Value::Varchar("bar")),
                Some(Value::Varchar("baz"))
            ]
        );
        let mut out = Vec::new();
        c.encode(
            &mut out,
            &EncodeRules {
                direction: Direction::Ingress,
                gorilla: false,
                delta_symbols: true,
            },
        )
        .unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn spec_boolean() {
        // SPEC §6.3: [T,F,T,T,F,F,F,T] => 00 8D.
        let c = decode(&[0x00, 0x8D], TypeCode::Boolean, 8).unwrap();
        let got: Vec<bool> = c
            .rows()
            .into_iter()
            .map(|v| matches!(v, Some(Value::Boolean(true))))
            .collect();
        assert_eq!(got, [true, false, true, true, false, false, false, true]);
    }

    #[test]
    fn spec_per_column_symbol() {
        // SPEC §6.3: "us","eu","us" => 00 02 02 75 73 02 65 75 00 01 00.
        let bytes = [
            0x00, 0x02, 0x02, b'u', b's', 0x02, b'e', b'u', 0x00, 0x01, 0x00,
        ];
        let limits = Limits::default();
        let mut r = ByteReader::new(&bytes);
        let c = ColumnData::decode(
            &mut r,
            TypeCode::Symbol,
            3,
            &ColumnRules {
                global_dict_size: None,
                ..rules(&limits)
            },
        )
        .unwrap();
        assert!(r.is_empty());
        let Values::Symbol(Symbols::Local { dictionary, ids }) = c.values() else {
            panic!("local symbols expected");
        };
        let dict: Vec<&str> = dictionary.iter().collect();
        let words: Vec<&str> = ids.iter().map(|i| dict[i as usize]).collect();
        assert_eq!(words, ["us", "eu", "us"]);
    }

    #[test]
    fn offsets_must_be_consistent() {
        // first offset not zero
        let e = decode(&[0, 1, 0, 0, 0, 1, 0, 0, 0], TypeCode::Binary, 1).unwrap_err();
        assert!(matches!(
            e.kind(),
            DecodeErrorKind::InvalidOffsets {
                reason: "first offset is not 0",
                ..
            }
        ));
        // decreasing
        let e = decode(
            &[0, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, b'a', b'b'],
            TypeCode::Binary,
            2,
        )
        .unwrap_err();
        assert!(matches!(
            e.kind(),
            DecodeErrorKind::InvalidOffsets {
                reason: "offsets decrease",
                ..
            }
        ));
        // past the data
        let e = decode(&[0, 0, 0, 0, 0, 9, 0, 0, 0, b'a'], TypeCode::Binary, 1).unwrap_err();
        assert!(matches!(e.kind(), DecodeErrorKind::UnexpectedEnd { .. }));
        // offset inside a UTF-8 character
        let e = decode(
            &[0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0xC3, 0xBC],
            TypeCode::Varchar,
            2,
        )
        .unwrap_err();
        assert!(matches!(e.kind(), DecodeErrorKind::InvalidUtf8 { .. }));
        // the same bytes are fine as BINARY
        decode(
            &[0, 0, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 0xC3, 0xBC],
            TypeCode::Binary,
            2,
        )
        .unwrap();
    }

    #[test]
    fn symbol_ids_past_dictionary() {
        let e = decode(&[0x00, 0x01, 0x0A], TypeCode::Symbol, 2).unwrap_err();
        assert_eq!(
            e.kind(),
            DecodeErrorKind::SymbolIdOutOfRange {
                id: 10,
                dict_size: 10
            }
        );
    }

    #[test]
    fn egress_null_rules() {
        let limits = Limits::default();
        let egress = ColumnRules {
            direction: Direction::Egress,
            ..rules(&limits)
        };
        let mut r = ByteReader::new(&[0x02, 0x00, 0x00]);
        assert_eq!(
            ColumnData::decode(&mut r, TypeCode::Int, 1, &egress)
                .unwrap_err()
                .kind(),
            DecodeErrorKind::InvalidNullFlag(2)
        );
        let mut r = ByteReader::new(&[0x01, 0x01]);
        assert!(matches!(
            ColumnData::decode(&mut r, TypeCode::Byte, 1, &egress)
                .unwrap_err()
                .kind(),
            DecodeErrorKind::NullsNotAllowed { .. }
        ));
        // Ingress accepts any non-zero flag as "bitmap follows".
        let mut r = ByteReader::new(&[0x02, 0x01]);
        let c = ColumnData::decode(&mut r, TypeCode::Byte, 1, &rules(&limits)).unwrap();
        assert_eq!(c.rows(), [None]);
    }

    #[test]
    fn builder_sentinel_and_bitmap() {
        let mut b = ColumnBuilder::new(TypeCode::Long);
        b.push(Some(&Value::Long(7))).unwrap();
        b.push(None).unwrap();
        let sentinel = b.clone().finish(NullEncoding::Sentinel);
        assert!(sentinel.nulls().is_none());
        assert_eq!(
            sentinel.rows(),
            [Some(Value::Long(7)), Some(Value::Long(i64::MIN))]
        );
        let bitmap = b.finish(NullEncoding::Bitmap);
        assert_eq!(bitmap.rows(), [Some(Value::Long(7)), None]);
        // VARCHAR has no sentinel: a bitmap either way.
        let mut v = ColumnBuilder::new(TypeCode::Varchar);
        v.push(None).unwrap();
        assert_eq!(v.finish(NullEncoding::Sentinel).null_count(), 1);
        let mut wrong = ColumnBuilder::new(TypeCode::Int);
        assert!(wrong.push(Some(&Value::Long(1))).is_err());
    }

    #[test]
    fn try_new_rejects_inconsistent_parts() {
        assert!(
            ColumnData::try_new(
                TypeCode::Long,
                2,
                None,
                Values::Fixed(Cow::Borrowed(&[0; 8]))
            )
            .is_err()
        );
        assert!(
            ColumnData::try_new(
                TypeCode::Long,
                1,
                None,
                Values::Fixed(Cow::Borrowed(&[0; 8]))
            )
            .is_ok()
        );
        assert!(
            ColumnData::try_new(
                TypeCode::Long,
                1,
                None,
                Values::Boolean(Cow::Borrowed(&[0]))
            )
            .is_err()
        );
        let offsets: Vec<u8> = [0u32, 3].iter().flat_map(|o| o.to_le_bytes()).collect();
        let ok = Values::VarLen {
            offsets: Cow::Owned(offsets.clone()),
            data: Cow::Borrowed(b"abc"),
        };
        assert!(ColumnData::try_new(TypeCode::Varchar, 1, None, ok).is_ok());
        let short = Values::VarLen {
            offsets: Cow::Owned(offsets),
            data: Cow::Borrowed(b"ab"),
        };
        assert!(ColumnData::try_new(TypeCode::Varchar, 1, None, short).is_err());
    }
}
