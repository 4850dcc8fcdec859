//! Result columns (Arrow, from the query engine) as QWP egress columns.
//!
//! Each result column goes out as a QWP type ([`WireType::of`]): the
//! QuestDB type it was stored as when its field still says so
//! (`quiver.type` metadata that agrees with its Arrow type), so the official
//! clients produce the dtypes they produce against QuestDB; otherwise the
//! type its Arrow type maps to (a text form for the rest). Values are
//! copied once into the frame's column bodies:
//!
//! - NULLs travel in a null bitmap with the values dense, except for
//!   BOOLEAN, BYTE, SHORT and CHAR, which the protocol sends without one
//!   (QuestDB has no NULL for them: NULL goes out as 0 / false);
//! - SYMBOL values get connection-wide ids from [`ResultDictionary`]; new
//!   entries travel as the batch's delta;
//! - UUIDs are stored in RFC 4122 order and sent in wire order (low then
//!   high 64 bits, little-endian).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, GenericListArray, OffsetSizeTrait, StringArray, UInt32Array,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Float64Type, Int64Type, TimeUnit, UInt32Type};
use quiver_qwp::bitmap::null_bitmap_from_validity;
use quiver_qwp::column::Timestamps;
use quiver_qwp::{
    ColumnBuilder, ColumnData, NullBitmap, NullEncoding, StringList, SymbolDelta, SymbolDictionary,
    SymbolIds, Symbols, TypeCode, Value, Values,
};
use quiver_storage::{ColumnType, TYPE_METADATA_KEY};

/// How one result column goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireType {
    /// The QWP type.
    pub type_code: TypeCode,
    /// GEOHASH precision or DECIMAL scale (0 otherwise).
    arg: u8,
    /// The Arrow type the values are cast to first, if any.
    cast: Option<DataType>,
}

impl WireType {
    fn new(type_code: TypeCode) -> Self {
        WireType {
            type_code,
            arg: 0,
            cast: None,
        }
    }

    fn cast(type_code: TypeCode, to: DataType) -> Self {
        WireType {
            type_code,
            arg: 0,
            cast: Some(to),
        }
    }

    /// GEOHASH precision in bits or DECIMAL scale (0 for other types).
    pub fn arg(&self) -> u8 {
        self.arg
    }

    /// QuestDB's name of the type (`LONG`, `TIMESTAMP_NS`, `GEOHASH(4c)`,
    /// `DECIMAL(18,2)`, `DOUBLE[]`; arrays of unknown rank as one level).
    pub fn questdb_name(&self) -> String {
        match self.type_code {
            TypeCode::Geohash if self.arg.is_multiple_of(5) => {
                format!("GEOHASH({}c)", self.arg / 5)
            }
            TypeCode::Geohash => format!("GEOHASH({}b)", self.arg),
            TypeCode::Decimal64 => format!("DECIMAL(18,{})", self.arg),
            TypeCode::Decimal128 => format!("DECIMAL(38,{})", self.arg),
            TypeCode::Decimal256 => format!("DECIMAL(76,{})", self.arg),
            TypeCode::TimestampNanos => "TIMESTAMP_NS".into(),
            TypeCode::DoubleArray => "DOUBLE[]".into(),
            TypeCode::LongArray => "LONG[]".into(),
            TypeCode::Ipv4 => "IPv4".into(),
            other => other.name().to_ascii_uppercase(),
        }
    }

    /// `array` in the Arrow type its values go out as (a cast where the
    /// result's type differs, e.g. `UInt8` to SHORT's `Int16`).
    pub fn prepare(&self, array: &ArrayRef) -> Result<ArrayRef, String> {
        match &self.cast {
            Some(t) if array.data_type() != t => cast_with_options(
                array,
                t,
                &CastOptions {
                    safe: false,
                    ..CastOptions::default()
                },
            )
            .map_err(|e| format!("a value cannot be sent as {}: {e}", self.type_code.name())),
            _ => Ok(Arc::clone(array)),
        }
    }

    /// The wire type of a result field (see the module docs).
    pub fn of(field: &Field) -> WireType {
        let stored = field
            .metadata()
            .get(TYPE_METADATA_KEY)
            .and_then(|n| ColumnType::from_name(n))
            .filter(|t| &t.read_type() == field.data_type());
        if let Some(t) = stored {
            return Self::of_column(t);
        }
        Self::of_arrow(field.data_type())
    }

    fn of_column(t: ColumnType) -> WireType {
        let code = match t {
            ColumnType::Boolean => TypeCode::Boolean,
            ColumnType::Byte => TypeCode::Byte,
            ColumnType::Short => TypeCode::Short,
            ColumnType::Char => TypeCode::Char,
            ColumnType::Int => TypeCode::Int,
            ColumnType::Long => TypeCode::Long,
            ColumnType::Float => TypeCode::Float,
            ColumnType::Double => TypeCode::Double,
            ColumnType::Symbol => TypeCode::Symbol,
            ColumnType::Timestamp => TypeCode::Timestamp,
            ColumnType::TimestampNanos => TypeCode::TimestampNanos,
            ColumnType::Date => TypeCode::Date,
            ColumnType::Uuid => TypeCode::Uuid,
            ColumnType::Long256 => TypeCode::Long256,
            ColumnType::Varchar => TypeCode::Varchar,
            ColumnType::Binary => TypeCode::Binary,
            ColumnType::Ipv4 => TypeCode::Ipv4,
            ColumnType::Geohash(bits) => {
                return WireType {
                    type_code: TypeCode::Geohash,
                    arg: bits,
                    cast: Some(DataType::Int64),
                };
            }
            ColumnType::Decimal64(s) => return decimal(TypeCode::Decimal64, s),
            ColumnType::Decimal128(s) => return decimal(TypeCode::Decimal128, s),
            ColumnType::Decimal256(s) => return decimal(TypeCode::Decimal256, s),
            ColumnType::DoubleArray(_) => TypeCode::DoubleArray,
            ColumnType::LongArray(_) => TypeCode::LongArray,
        };
        WireType::new(code)
    }

    fn of_arrow(t: &DataType) -> WireType {
        use DataType as D;
        let utc = || Some(Arc::<str>::from("UTC"));
        match t {
            D::Boolean => WireType::new(TypeCode::Boolean),
            D::Int8 => WireType::new(TypeCode::Byte),
            D::Int16 => WireType::new(TypeCode::Short),
            D::Int32 => WireType::new(TypeCode::Int),
            D::Int64 => WireType::new(TypeCode::Long),
            D::UInt8 => WireType::cast(TypeCode::Short, D::Int16),
            D::UInt16 => WireType::cast(TypeCode::Int, D::Int32),
            D::UInt32 | D::UInt64 => WireType::cast(TypeCode::Long, D::Int64),
            D::Float16 => WireType::cast(TypeCode::Float, D::Float32),
            D::Float32 => WireType::new(TypeCode::Float),
            D::Float64 => WireType::new(TypeCode::Double),
            D::Timestamp(TimeUnit::Nanosecond, _) => WireType::cast(
                TypeCode::TimestampNanos,
                D::Timestamp(TimeUnit::Nanosecond, utc()),
            ),
            D::Timestamp(TimeUnit::Millisecond, _) | D::Date32 | D::Date64 => {
                WireType::cast(TypeCode::Date, D::Timestamp(TimeUnit::Millisecond, utc()))
            }
            D::Timestamp(_, _) => WireType::cast(
                TypeCode::Timestamp,
                D::Timestamp(TimeUnit::Microsecond, utc()),
            ),
            D::Utf8 => WireType::new(TypeCode::Varchar),
            D::LargeUtf8 | D::Utf8View => WireType::cast(TypeCode::Varchar, D::Utf8),
            D::Binary => WireType::new(TypeCode::Binary),
            D::LargeBinary | D::BinaryView => WireType::cast(TypeCode::Binary, D::Binary),
            D::FixedSizeBinary(16) => WireType::new(TypeCode::Uuid),
            D::FixedSizeBinary(32) => WireType::new(TypeCode::Long256),
            D::Decimal32(_, s) | D::Decimal64(_, s) if *s >= 0 => WireType {
                cast: Some(D::Decimal64(18, *s)),
                ..decimal(TypeCode::Decimal64, s.unsigned_abs())
            },
            D::Decimal128(_, s) if *s >= 0 => WireType {
                cast: Some(D::Decimal128(38, *s)),
                ..decimal(TypeCode::Decimal128, s.unsigned_abs())
            },
            D::Decimal256(_, s) if *s >= 0 => WireType {
                cast: Some(D::Decimal256(76, *s)),
                ..decimal(TypeCode::Decimal256, s.unsigned_abs())
            },
            D::Dictionary(_, v) if matches!(**v, D::Utf8 | D::LargeUtf8 | D::Utf8View) => {
                WireType::new(TypeCode::Symbol)
            }
            D::List(_) | D::LargeList(_) if leaf(t) == Some(D::Float64) => {
                WireType::new(TypeCode::DoubleArray)
            }
            D::List(_) | D::LargeList(_) if leaf(t) == Some(D::Int64) => {
                WireType::new(TypeCode::LongArray)
            }
            _ => WireType::cast(TypeCode::Varchar, D::Utf8),
        }
    }
}

fn decimal(type_code: TypeCode, scale: u8) -> WireType {
    WireType {
        type_code,
        arg: scale,
        cast: None,
    }
}

/// The leaf type of nested lists.
fn leaf(t: &DataType) -> Option<DataType> {
    match t {
        DataType::List(f) | DataType::LargeList(f) => leaf(f.data_type()),
        other => Some(other.clone()),
    }
}

/// A connection's SYMBOL dictionary for results: strings to the ids it
/// gave them, and the entries added since the last batch.
#[derive(Debug, Default)]
pub struct ResultDictionary {
    entries: SymbolDictionary,
    index: HashMap<String, u32>,
    /// Id of the first entry not yet sent.
    sent: u64,
}

impl ResultDictionary {
    /// Entries held.
    pub fn len(&self) -> u64 {
        self.entries.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Bytes of string data held.
    pub fn data_len(&self) -> usize {
        self.entries.data_len()
    }

    /// Forgets everything (CACHE_RESET).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.index.clear();
        self.sent = 0;
    }

    fn id(&mut self, s: &str) -> u32 {
        if let Some(&id) = self.index.get(s) {
            return id;
        }
        // The connection's dictionary is reset long before ids run out
        // (100,000 entries; the client's own cap is 8,388,608).
        let id = u32::try_from(self.entries.push(s)).unwrap_or(u32::MAX);
        self.index.insert(s.to_string(), id);
        id
    }

    /// Where the next delta starts (see [`ResultDictionary::rewind`]).
    pub fn mark(&self) -> u64 {
        self.sent
    }

    /// Sends the entries from `mark` again with the next delta (the batch
    /// that carried them was not sent).
    pub fn rewind(&mut self, mark: u64) {
        self.sent = mark.min(self.sent);
    }

    /// The entries added since the last call, as a batch's delta (`None`
    /// when the batch needs none).
    pub fn take_delta(&mut self, has_symbols: bool) -> Option<SymbolDelta<'static>> {
        if !has_symbols && self.sent == self.entries.len() {
            return None;
        }
        let start = self.sent;
        let new: Vec<&str> = (start..self.entries.len())
            .filter_map(|i| self.entries.get(i))
            .collect();
        self.sent = self.entries.len();
        Some(SymbolDelta {
            start,
            entries: StringList::from_strs(new),
        })
    }
}

/// Why a column could not be encoded.
pub type EncodeResult<T> = Result<T, String>;

/// The QWP body of `array` as `wire` says (see the module docs). Values
/// that go out as Arrow holds them (fixed-width numbers without NULLs,
/// text whose NULL slots are empty) are borrowed from `array`, not
/// copied: the frame encoder copies them once, into the frame.
pub fn encode_column<'a>(
    array: &'a ArrayRef,
    wire: &WireType,
    dictionary: &mut ResultDictionary,
) -> EncodeResult<ColumnData<'a>> {
    if wire.cast.as_ref().is_none_or(|t| t == array.data_type())
        && let Some(column) = borrowed_column(array, wire)?
    {
        return Ok(column);
    }
    let array = wire.prepare(array)?;
    let rows = u32::try_from(array.len()).map_err(|_| "too many rows in a batch".to_string())?;
    let t = wire.type_code;
    let column = match t {
        TypeCode::Boolean => {
            let a = array.as_boolean();
            let mut bits = vec![0u8; array.len().div_ceil(8)];
            for (i, v) in a.iter().enumerate() {
                if v == Some(true) {
                    bits[i / 8] |= 1 << (i % 8);
                }
            }
            ColumnData::try_new(t, rows, None, Values::Boolean(Cow::Owned(bits)))
        }
        // No NULL on the wire for these: NULL goes out as 0.
        TypeCode::Byte | TypeCode::Short | TypeCode::Char => {
            let width = array.data_type().primitive_width().unwrap_or(1);
            let data = array.to_data();
            let values = &data.buffers()[0].as_slice()
                [data.offset() * width..(data.offset() + data.len()) * width];
            let mut bytes = values.to_vec();
            if let Some(n) = array.nulls() {
                for i in 0..array.len() {
                    if n.is_null(i) {
                        bytes[i * width..(i + 1) * width].fill(0);
                    }
                }
            }
            ColumnData::try_new(t, rows, None, Values::Fixed(Cow::Owned(bytes)))
        }
        TypeCode::Int
        | TypeCode::Long
        | TypeCode::Float
        | TypeCode::Double
        | TypeCode::Ipv4
        | TypeCode::Long256 => {
            let (nulls, bytes) = dense_fixed(&array)?;
            ColumnData::try_new(t, rows, nulls, Values::Fixed(Cow::Owned(bytes)))
        }
        TypeCode::Uuid => {
            let (nulls, mut bytes) = dense_fixed(&array)?;
            for v in bytes.chunks_exact_mut(16) {
                v.reverse();
            }
            ColumnData::try_new(t, rows, nulls, Values::Fixed(Cow::Owned(bytes)))
        }
        TypeCode::Timestamp | TypeCode::TimestampNanos | TypeCode::Date => {
            let (nulls, bytes) = dense_fixed(&array)?;
            ColumnData::try_new(
                t,
                rows,
                nulls,
                Values::Timestamp(Timestamps::Raw(Cow::Owned(bytes))),
            )
        }
        TypeCode::Decimal64 | TypeCode::Decimal128 | TypeCode::Decimal256 => {
            let (nulls, bytes) = dense_fixed(&array)?;
            ColumnData::try_new(
                t,
                rows,
                nulls,
                Values::Decimal {
                    scale: wire.arg,
                    bytes: Cow::Owned(bytes),
                },
            )
        }
        TypeCode::Geohash => {
            let width = usize::from(wire.arg).div_ceil(8);
            let a = array.as_primitive::<Int64Type>();
            let mut bytes = Vec::with_capacity(array.len() * width);
            for v in a.iter().flatten() {
                bytes.extend_from_slice(&v.to_le_bytes()[..width]);
            }
            ColumnData::try_new(
                t,
                rows,
                null_bitmap(&array),
                Values::Geohash {
                    precision_bits: wire.arg,
                    bytes: Cow::Owned(bytes),
                },
            )
        }
        TypeCode::Varchar | TypeCode::Binary => {
            let (offsets, data) = match t {
                TypeCode::Varchar => var_len(
                    array
                        .as_string::<i32>()
                        .iter()
                        .map(|v| v.map(str::as_bytes)),
                ),
                _ => var_len(array.as_binary::<i32>().iter()),
            };
            ColumnData::try_new(
                t,
                rows,
                null_bitmap(&array),
                Values::VarLen {
                    offsets: Cow::Owned(offsets),
                    data: Cow::Owned(data),
                },
            )
        }
        TypeCode::Symbol => {
            let dict = array.as_any_dictionary();
            let keys = cast_with_options(dict.keys(), &DataType::UInt32, &CastOptions::default())
                .map_err(|e| e.to_string())?;
            let keys = keys.as_primitive::<UInt32Type>();
            let values = cast_with_options(dict.values(), &DataType::Utf8, &CastOptions::default())
                .map_err(|e| e.to_string())?;
            let values = values.as_string::<i32>();
            let ids = symbol_ids(keys, values, array.logical_nulls().as_ref(), dictionary);
            ColumnData::try_new(
                t,
                rows,
                null_bitmap(&array),
                Values::Symbol(Symbols::Global(ids)),
            )
        }
        TypeCode::DoubleArray | TypeCode::LongArray => {
            return encode_arrays(&array, t);
        }
    };
    column.map_err(|e| e.to_string())
}

/// The result-dictionary ids of the non-NULL rows of a dictionary column:
/// each dictionary value the rows use is looked up once (in key order), and
/// a row costs one table lookup; one byte per row while the ids stay below
/// 128. Values no row uses never enter the result's dictionary.
fn symbol_ids(
    keys: &UInt32Array,
    values: &StringArray,
    nulls: Option<&arrow::buffer::NullBuffer>,
    dictionary: &mut ResultDictionary,
) -> SymbolIds<'static> {
    // Keys of a valid dictionary array are below `values.len()`; a key past
    // it (never expected) is left out, and the count check of the column
    // then refuses the batch.
    let nulls = nulls.filter(|n| n.null_count() > 0);
    let rows = || {
        keys.values()
            .iter()
            .enumerate()
            .filter(move |&(i, _)| nulls.is_none_or(|n| n.is_valid(i)))
            .map(|(_, &k)| k as usize)
    };
    let mut used = vec![false; values.len()];
    for k in rows() {
        if let Some(u) = used.get_mut(k) {
            *u = true;
        }
    }
    let table: Vec<u32> = used
        .iter()
        .enumerate()
        .map(|(k, &u)| match u {
            true => dictionary.id(values.value(k)),
            false => 0,
        })
        .collect();
    if table.iter().all(|&id| id < 0x80) {
        let small: Vec<u8> = match nulls {
            // One byte per key through the table: no per-row branch.
            None => keys
                .values()
                .iter()
                .map(|&k| small_id(&table, k as usize))
                .collect(),
            Some(_) => rows().map(|k| small_id(&table, k)).collect(),
        };
        if let Some(ids) = SymbolIds::from_small_ids(small) {
            return ids;
        }
    }
    let ids: Vec<u32> = rows().filter_map(|k| table.get(k).copied()).collect();
    SymbolIds::from_id_slice(&ids)
}

/// Key `k`'s id as one byte, or 0x80 (refused by
/// `SymbolIds::from_small_ids`) for a key past the table.
fn small_id(table: &[u32], k: usize) -> u8 {
    table
        .get(k)
        .and_then(|&id| u8::try_from(id).ok())
        .unwrap_or(0x80)
}

/// The NULL bitmap of `array` (`None` without NULLs).
fn null_bitmap(array: &ArrayRef) -> Option<NullBitmap<'static>> {
    let nulls = array.logical_nulls()?;
    if nulls.null_count() == 0 {
        return None;
    }
    let mut bytes = Vec::new();
    null_bitmap_from_validity(nulls.validity(), nulls.offset(), array.len(), &mut bytes);
    NullBitmap::try_new(Cow::Owned(bytes), u32::try_from(array.len()).ok()?)
}

/// A fixed-width column's non-NULL values, little-endian, and its NULL
/// bitmap.
fn dense_fixed(array: &ArrayRef) -> EncodeResult<(Option<NullBitmap<'static>>, Vec<u8>)> {
    let data = array.to_data();
    let width = match array.data_type() {
        DataType::FixedSizeBinary(w) => usize::try_from(*w).map_err(|_| "width".to_string())?,
        t => t
            .primitive_width()
            .ok_or_else(|| format!("{t} is not fixed width"))?,
    };
    let buffer = data.buffers()[0].as_slice();
    let values = &buffer[data.offset() * width..(data.offset() + data.len()) * width];
    let nulls = null_bitmap(array);
    let bytes = match &nulls {
        None => values.to_vec(),
        Some(_) => {
            let mut out = Vec::with_capacity(values.len());
            for i in 0..array.len() {
                if array.is_valid(i) {
                    out.extend_from_slice(&values[i * width..(i + 1) * width]);
                }
            }
            out
        }
    };
    Ok((nulls, bytes))
}

/// Offsets (`u32` LE, from 0) and data of the non-NULL values.
fn var_len<'a>(values: impl Iterator<Item = Option<&'a [u8]>>) -> (Vec<u8>, Vec<u8>) {
    let mut offsets = vec![0u8; 4];
    let mut data = Vec::new();
    for v in values.flatten() {
        data.extend_from_slice(v);
        // A batch is far below 4 GiB (frames are at most 16 MiB).
        let end = u32::try_from(data.len()).unwrap_or(u32::MAX);
        offsets.extend_from_slice(&end.to_le_bytes());
    }
    (offsets, data)
}

/// The column without copying its values, where the wire layout is
/// Arrow's: fixed-width numbers without NULLs, and VARCHAR/BINARY whose
/// NULL slots hold no bytes (the non-NULL values are then one contiguous
/// run; only the offsets are rebuilt). `None`: take the general path.
fn borrowed_column<'a>(
    array: &'a ArrayRef,
    wire: &WireType,
) -> EncodeResult<Option<ColumnData<'a>>> {
    use arrow::datatypes::{
        Decimal64Type, Decimal128Type, Decimal256Type, Float32Type, Int32Type,
        TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    };
    let t = wire.type_code;
    let rows = u32::try_from(array.len()).map_err(|_| "too many rows in a batch".to_string())?;
    let no_nulls = array.null_count() == 0;
    let fixed: Option<&'a [u8]> = match (t, array.data_type()) {
        _ if !no_nulls => None,
        (TypeCode::Int, DataType::Int32) => Some(
            array
                .as_primitive::<Int32Type>()
                .values()
                .inner()
                .as_slice(),
        ),
        (TypeCode::Long, DataType::Int64) => Some(
            array
                .as_primitive::<Int64Type>()
                .values()
                .inner()
                .as_slice(),
        ),
        (TypeCode::Float, DataType::Float32) => Some(
            array
                .as_primitive::<Float32Type>()
                .values()
                .inner()
                .as_slice(),
        ),
        (TypeCode::Double, DataType::Float64) => Some(
            array
                .as_primitive::<Float64Type>()
                .values()
                .inner()
                .as_slice(),
        ),
        (TypeCode::Ipv4, DataType::UInt32) => Some(
            array
                .as_primitive::<UInt32Type>()
                .values()
                .inner()
                .as_slice(),
        ),
        (TypeCode::Timestamp, DataType::Timestamp(TimeUnit::Microsecond, _)) => Some(
            array
                .as_primitive::<TimestampMicrosecondType>()
                .values()
                .inner()
                .as_slice(),
        ),
        (TypeCode::TimestampNanos, DataType::Timestamp(TimeUnit::Nanosecond, _)) => Some(
            array
                .as_primitive::<TimestampNanosecondType>()
                .values()
                .inner()
                .as_slice(),
        ),
        (TypeCode::Date, DataType::Timestamp(TimeUnit::Millisecond, _)) => Some(
            array
                .as_primitive::<TimestampMillisecondType>()
                .values()
                .inner()
                .as_slice(),
        ),
        (TypeCode::Decimal64, DataType::Decimal64(..)) => Some(
            array
                .as_primitive::<Decimal64Type>()
                .values()
                .inner()
                .as_slice(),
        ),
        (TypeCode::Decimal128, DataType::Decimal128(..)) => Some(
            array
                .as_primitive::<Decimal128Type>()
                .values()
                .inner()
                .as_slice(),
        ),
        (TypeCode::Decimal256, DataType::Decimal256(..)) => Some(
            array
                .as_primitive::<Decimal256Type>()
                .values()
                .inner()
                .as_slice(),
        ),
        _ => None,
    };
    if let Some(bytes) = fixed {
        let values = match t {
            TypeCode::Timestamp | TypeCode::TimestampNanos | TypeCode::Date => {
                Values::Timestamp(Timestamps::Raw(Cow::Borrowed(bytes)))
            }
            TypeCode::Decimal64 | TypeCode::Decimal128 | TypeCode::Decimal256 => Values::Decimal {
                scale: wire.arg,
                bytes: Cow::Borrowed(bytes),
            },
            _ => Values::Fixed(Cow::Borrowed(bytes)),
        };
        return ColumnData::try_new(t, rows, None, values)
            .map(Some)
            .map_err(|e| e.to_string());
    }
    let (offsets, data, nulls) = match (t, array.data_type()) {
        (TypeCode::Varchar, DataType::Utf8) => {
            let a = array.as_string::<i32>();
            (a.value_offsets(), a.value_data(), a.nulls())
        }
        (TypeCode::Binary, DataType::Binary) => {
            let a = array.as_binary::<i32>();
            (a.value_offsets(), a.value_data(), a.nulls())
        }
        _ => return Ok(None),
    };
    let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
        return Ok(None);
    };
    let (Ok(first), Ok(last)) = (usize::try_from(first), usize::try_from(last)) else {
        return Ok(None);
    };
    let nulls = nulls.filter(|n| n.null_count() > 0);
    // NULL slots with bytes would break the contiguous run.
    if let Some(n) = nulls
        && (0..array.len()).any(|i| !n.is_valid(i) && offsets[i + 1] != offsets[i])
    {
        return Ok(None);
    }
    if u32::try_from(last - first).is_err() {
        return Err("a batch's text is over 4 GiB".to_string());
    }
    // Arrow's offsets are non-negative and ascending, so rebased on the
    // first they fit the wire's u32 (checked above); without NULLs and
    // starting at 0 they already are the wire's bytes.
    let out: Cow<'a, [u8]> = match (nulls, first) {
        (None, 0) => Cow::Borrowed(
            array
                .as_any()
                .downcast_ref::<arrow::array::StringArray>()
                .map(|a| a.offsets().inner().inner().as_slice())
                .or_else(|| {
                    array
                        .as_any()
                        .downcast_ref::<arrow::array::BinaryArray>()
                        .map(|a| a.offsets().inner().inner().as_slice())
                })
                .ok_or("not a string or binary array")?,
        ),
        (None, _) => Cow::Owned(
            offsets
                .iter()
                .map(|&o| rebase(o, first))
                .collect::<EncodeResult<Vec<[u8; 4]>>>()?
                .concat(),
        ),
        (Some(n), _) => {
            let mut out = Vec::with_capacity((array.len() + 1) * 4);
            out.extend_from_slice(&0u32.to_le_bytes());
            for i in 0..array.len() {
                if n.is_valid(i) {
                    out.extend_from_slice(&rebase(offsets[i + 1], first)?);
                }
            }
            Cow::Owned(out)
        }
    };
    let data = data.get(first..last).ok_or("text offsets out of range")?;
    let values = Values::VarLen {
        offsets: out,
        data: Cow::Borrowed(data),
    };
    match t {
        // Arrow guarantees UTF-8 split on character boundaries.
        TypeCode::Varchar => ColumnData::try_new_utf8_checked(t, rows, null_bitmap(array), values),
        _ => ColumnData::try_new(t, rows, null_bitmap(array), values),
    }
    .map(Some)
    .map_err(|e| e.to_string())
}

/// An Arrow offset rebased on the batch's first as the wire's u32.
fn rebase(offset: i32, first: usize) -> EncodeResult<[u8; 4]> {
    usize::try_from(offset)
        .ok()
        .and_then(|o| o.checked_sub(first))
        .and_then(|o| u32::try_from(o).ok())
        .map(u32::to_le_bytes)
        .ok_or_else(|| "text offsets out of range".to_string())
}

/// Array columns: each row's shape and elements (arrays are rectangular).
fn encode_arrays(array: &ArrayRef, t: TypeCode) -> EncodeResult<ColumnData<'static>> {
    let mut b = ColumnBuilder::new(t);
    for row in 0..array.len() {
        if array.is_null(row) {
            b.push(None).map_err(|e| e.to_string())?;
            continue;
        }
        let (shape, leaf, range) = array_row(array, row)?;
        let range = range.0..range.1;
        let value = match t {
            TypeCode::DoubleArray => Value::DoubleArray {
                shape,
                values: leaf
                    .as_primitive::<Float64Type>()
                    .slice(range.start, range.len())
                    .iter()
                    .map(|v| v.unwrap_or(f64::NAN))
                    .collect(),
            },
            _ => Value::LongArray {
                shape,
                values: leaf
                    .as_primitive::<Int64Type>()
                    .slice(range.start, range.len())
                    .iter()
                    .map(|v| v.unwrap_or(i64::MIN))
                    .collect(),
            },
        };
        b.push(Some(&value)).map_err(|e| e.to_string())?;
    }
    Ok(b.finish(NullEncoding::Bitmap))
}

/// One row of nested lists: its shape (one length per nesting level; a
/// level below an empty one has length 0), the leaf array and the range of
/// that row's elements in it, in row-major order. Every element of a level
/// must have the same length (arrays are rectangular).
fn array_row(array: &ArrayRef, row: usize) -> EncodeResult<(Vec<u32>, ArrayRef, (usize, usize))> {
    /// The lengths of elements `start..end` and the range they cover in
    /// the child array.
    fn level<O: OffsetSizeTrait>(
        a: &GenericListArray<O>,
        start: usize,
        end: usize,
    ) -> (Vec<usize>, usize, usize, ArrayRef) {
        let offsets = a.value_offsets();
        let lens = (start..end).map(|i| a.value_length(i).as_usize()).collect();
        (
            lens,
            offsets[start].as_usize(),
            offsets[end].as_usize(),
            Arc::clone(a.values()),
        )
    }
    let mut shape = Vec::new();
    let mut current = Arc::clone(array);
    let (mut start, mut end) = (row, row + 1);
    loop {
        let (lens, child_start, child_end, child) = match current.data_type() {
            DataType::List(_) => level(current.as_list::<i32>(), start, end),
            DataType::LargeList(_) => level(current.as_list::<i64>(), start, end),
            _ => return Ok((shape, current, (start, end))),
        };
        // Rectangular: every element of this level has the first one's
        // length; an empty level has length 0 below it too.
        let len = lens.first().copied().unwrap_or(0);
        if lens.iter().any(|l| *l != len) {
            return Err("arrays must be rectangular".into());
        }
        shape.push(u32::try_from(len).map_err(|_| "array dimension too large".to_string())?);
        current = child;
        (start, end) = (child_start, child_end);
    }
}
