//! QWP columns as Arrow arrays (feature `arrow`).
//!
//! [`column_to_array`] turns a decoded [`ColumnData`] into an Arrow array of
//! its natural type ([`arrow_type`]) with one copy of the values: fixed-width
//! columns without NULLs are a single `memcpy`, QWP null bitmaps become Arrow
//! validity a word at a time, and bitmap-mode values (sent densely, only the
//! non-NULL ones) are scattered to their rows. SYMBOL ids become `UInt32`
//! keys through a caller-supplied `Vec` (the caller owns the dictionaries).
//!
//! | QWP | Arrow |
//! |---|---|
//! | BOOLEAN | Boolean |
//! | BYTE, SHORT, INT, LONG | Int8, Int16, Int32, Int64 |
//! | FLOAT, DOUBLE | Float32, Float64 |
//! | CHAR | UInt16 |
//! | IPv4 | UInt32 |
//! | SYMBOL | UInt32 keys (mapped by the caller) |
//! | TIMESTAMP, TIMESTAMP_NANOS, DATE | Timestamp(µs / ns / ms, "UTC") |
//! | UUID | FixedSizeBinary(16), RFC 4122 byte order (wire bytes reversed) |
//! | LONG256 | FixedSizeBinary(32), wire order (little-endian limbs) |
//! | GEOHASH(p) | Int8 / Int16 / Int32 / Int64 for p in 1–7 / 8–15 / 16–31 / 32–60 |
//! | VARCHAR, BINARY | Utf8, Binary |
//! | DECIMAL64/128/256 (scale s) | Decimal64(18, s), Decimal128(38, s), Decimal256(76, s) |
//! | DOUBLE_ARRAY, LONG_ARRAY of rank r | r nested Lists of Float64 / Int64 |
//!
//! With `sentinel_nulls` (ingress), dense-mode values that are QuestDB's NULL
//! sentinels (`i32::MIN`, `i64::MIN`, NaN, IPv4 `0`, all-ones GEOHASH) are
//! NULL in the output, as QuestDB stores them. This module must not know
//! about tables or storage.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Decimal256Array, FixedSizeBinaryArray,
    Float64Array, Int64Array, ListArray, PrimitiveArray, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, UInt32Array,
};
use arrow::buffer::{BooleanBuffer, Buffer, MutableBuffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow::datatypes::{ArrowNativeType, ArrowPrimitiveType, DataType, Field, TimeUnit, i256};

use crate::column::{ColumnData, Symbols, Values};
use crate::types::TypeCode;
use crate::value::{LeScalar, le_values};

/// Why a column could not become an Arrow array.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ToArrowError {
    /// Array values of different ranks in one column.
    #[error("array values of rank {first} and {other} in one column")]
    ArrayRankMismatch {
        /// Rank of the first array.
        first: usize,
        /// A different rank found later.
        other: usize,
    },
    /// A SYMBOL id with no entry in the caller's key map.
    #[error("symbol id {id} has no key (map holds {len})")]
    UnmappedSymbol {
        /// The id.
        id: u32,
        /// Entries in the map.
        len: usize,
    },
    /// More variable-length data than an Arrow `i32` offset can address.
    #[error("column data exceeds 2 GiB")]
    TooLarge,
    /// Arrow refused the parts (a bug: the codec validated them).
    #[error("arrow rejected the column: {0}")]
    Arrow(String),
}

/// The natural Arrow type of a QWP column (see the module table). Arrays
/// need the rank, which the caller knows from the data.
pub fn arrow_type(
    type_code: TypeCode,
    geohash_bits: u8,
    decimal_scale: u8,
    array_rank: usize,
) -> DataType {
    let utc = || Some(Arc::<str>::from("UTC"));
    match type_code {
        TypeCode::Boolean => DataType::Boolean,
        TypeCode::Byte => DataType::Int8,
        TypeCode::Short => DataType::Int16,
        TypeCode::Int => DataType::Int32,
        TypeCode::Long => DataType::Int64,
        TypeCode::Float => DataType::Float32,
        TypeCode::Double => DataType::Float64,
        TypeCode::Char => DataType::UInt16,
        TypeCode::Ipv4 | TypeCode::Symbol => DataType::UInt32,
        TypeCode::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, utc()),
        TypeCode::TimestampNanos => DataType::Timestamp(TimeUnit::Nanosecond, utc()),
        TypeCode::Date => DataType::Timestamp(TimeUnit::Millisecond, utc()),
        TypeCode::Uuid => DataType::FixedSizeBinary(16),
        TypeCode::Long256 => DataType::FixedSizeBinary(32),
        TypeCode::Geohash => geohash_type(geohash_bits),
        TypeCode::Varchar => DataType::Utf8,
        TypeCode::Binary => DataType::Binary,
        TypeCode::Decimal64 => DataType::Decimal64(18, decimal_scale as i8),
        TypeCode::Decimal128 => DataType::Decimal128(38, decimal_scale as i8),
        TypeCode::Decimal256 => DataType::Decimal256(76, decimal_scale as i8),
        TypeCode::DoubleArray => nested_list(DataType::Float64, array_rank),
        TypeCode::LongArray => nested_list(DataType::Int64, array_rank),
    }
}

/// The integer type holding a GEOHASH of `bits` precision.
pub fn geohash_type(bits: u8) -> DataType {
    match bits {
        0..=7 => DataType::Int8,
        8..=15 => DataType::Int16,
        16..=31 => DataType::Int32,
        _ => DataType::Int64,
    }
}

/// `rank` nested nullable Lists of `leaf`.
pub fn nested_list(leaf: DataType, rank: usize) -> DataType {
    let mut t = leaf;
    for _ in 0..rank {
        t = DataType::List(Arc::new(Field::new("item", t, true)));
    }
    t
}

/// The rank of a column's array values (1 when it has none).
pub fn array_rank(column: &ColumnData<'_>) -> Result<usize, ToArrowError> {
    let Values::Array(a) = column.values() else {
        return Ok(1);
    };
    let mut rank = None;
    for v in a.iter() {
        match rank {
            None => rank = Some(v.rank()),
            Some(r) if r != v.rank() => {
                return Err(ToArrowError::ArrayRankMismatch {
                    first: r,
                    other: v.rank(),
                });
            }
            _ => {}
        }
    }
    Ok(rank.unwrap_or(1))
}

/// Converts a decoded column to an Arrow array of its natural type.
///
/// `symbol_keys[id]` is the output key for SYMBOL id `id` (global or local,
/// as the column carries); `sentinel_nulls` turns dense-mode sentinels into
/// NULLs (ingress semantics).
pub fn column_to_array(
    column: &ColumnData<'_>,
    symbol_keys: &[u32],
    sentinel_nulls: bool,
) -> Result<ArrayRef, ToArrowError> {
    let rows = column.row_count() as usize;
    let validity = column.nulls().map(|b| {
        let mut bits = Vec::new();
        b.to_validity(&mut bits);
        NullBuffer::new(BooleanBuffer::new(Buffer::from_vec(bits), 0, rows))
    });
    let t = column.type_code();
    let array: ArrayRef = match column.values() {
        Values::Boolean(bits) => {
            let values = match &validity {
                None => BooleanBuffer::new(Buffer::from(bits.to_vec()), 0, rows),
                Some(v) => {
                    let mut dense = 0usize;
                    BooleanBuffer::collect_bool(rows, |r| {
                        if v.is_null(r) {
                            return false;
                        }
                        let b = bits[dense / 8] & (1 << (dense % 8)) != 0;
                        dense += 1;
                        b
                    })
                }
            };
            Arc::new(BooleanArray::new(values, validity))
        }
        Values::Fixed(bytes) => match t {
            TypeCode::Byte => primitive::<arrow::datatypes::Int8Type>(
                bytes,
                validity,
                rows,
                None::<fn(&_) -> bool>,
            ),
            TypeCode::Short => primitive::<arrow::datatypes::Int16Type>(
                bytes,
                validity,
                rows,
                None::<fn(&_) -> bool>,
            ),
            TypeCode::Char => primitive::<arrow::datatypes::UInt16Type>(
                bytes,
                validity,
                rows,
                None::<fn(&_) -> bool>,
            ),
            TypeCode::Int => primitive::<arrow::datatypes::Int32Type>(
                bytes,
                validity,
                rows,
                sentinel_nulls.then_some(|v: &i32| *v == i32::MIN),
            ),
            TypeCode::Long => primitive::<arrow::datatypes::Int64Type>(
                bytes,
                validity,
                rows,
                sentinel_nulls.then_some(|v: &i64| *v == i64::MIN),
            ),
            TypeCode::Float => primitive::<arrow::datatypes::Float32Type>(
                bytes,
                validity,
                rows,
                sentinel_nulls.then_some(|v: &f32| v.is_nan()),
            ),
            TypeCode::Double => primitive::<arrow::datatypes::Float64Type>(
                bytes,
                validity,
                rows,
                sentinel_nulls.then_some(|v: &f64| v.is_nan()),
            ),
            TypeCode::Ipv4 => primitive::<arrow::datatypes::UInt32Type>(
                bytes,
                validity,
                rows,
                sentinel_nulls.then_some(|v: &u32| *v == 0),
            ),
            TypeCode::Uuid => {
                // RFC 4122 order is the wire's 16 bytes reversed.
                let canonical: Vec<u8> = bytes
                    .chunks_exact(16)
                    .flat_map(|c| c.iter().rev().copied())
                    .collect();
                let min = sentinel_nulls.then(|| {
                    let mut m = [0u8; 16];
                    m[..8].copy_from_slice(&i64::MIN.to_le_bytes());
                    m[8..].copy_from_slice(&i64::MIN.to_le_bytes());
                    m.reverse();
                    m
                });
                fixed_binary(canonical, 16, validity, rows, min.as_ref().map(|m| &m[..]))?
            }
            TypeCode::Long256 => {
                let min = sentinel_nulls.then(|| [i64::MIN.to_le_bytes(); 4].concat());
                fixed_binary(bytes.to_vec(), 32, validity, rows, min.as_deref())?
            }
            other => unreachable!("{other} has no fixed layout"),
        },
        Values::Timestamp(ts) => {
            let is_min = sentinel_nulls.then_some(|v: &i64| *v == i64::MIN);
            // Raw values are copied once; Gorilla-decoded ones become the
            // array's buffer as they are (scattered first if NULLs).
            let array = match ts.raw_bytes() {
                Some(b) => match t {
                    TypeCode::Timestamp => primitive::<arrow::datatypes::TimestampMicrosecondType>(
                        b, validity, rows, is_min,
                    ),
                    TypeCode::TimestampNanos => primitive::<
                        arrow::datatypes::TimestampNanosecondType,
                    >(b, validity, rows, is_min),
                    _ => primitive::<arrow::datatypes::TimestampMillisecondType>(
                        b, validity, rows, is_min,
                    ),
                },
                None => {
                    let values = ScalarBuffer::from(scatter(ts.to_vec(), validity.as_ref(), rows));
                    match t {
                        TypeCode::Timestamp => {
                            decoded::<arrow::datatypes::TimestampMicrosecondType>(
                                values, validity, is_min,
                            )
                        }
                        TypeCode::TimestampNanos => {
                            decoded::<arrow::datatypes::TimestampNanosecondType>(
                                values, validity, is_min,
                            )
                        }
                        _ => decoded::<arrow::datatypes::TimestampMillisecondType>(
                            values, validity, is_min,
                        ),
                    }
                }
            };
            with_utc(array)
        }
        Values::Geohash {
            precision_bits,
            bytes,
        } => {
            let w = usize::from(*precision_bits).div_ceil(8);
            let all_ones = u64::MAX >> (64 - 8 * w);
            let widened: Vec<i64> = bytes
                .chunks_exact(w)
                .map(|c| {
                    let mut b = [0u8; 8];
                    b[..w].copy_from_slice(c);
                    u64::from_le_bytes(b) as i64
                })
                .collect();
            let scattered = scatter(widened, validity.as_ref(), rows);
            let mut array = Int64Array::new(ScalarBuffer::from(scattered), validity.clone());
            // All-ones is NULL only where it is not a valid hash (precision
            // not a whole number of bytes).
            if sentinel_nulls && precision_bits % 8 != 0 {
                let values = array.values();
                if values.iter().any(|v| *v as u64 == all_ones) {
                    let s = NullBuffer::new(BooleanBuffer::collect_bool(rows, |r| {
                        values[r] as u64 != all_ones
                    }));
                    let nulls = NullBuffer::union(array.nulls(), Some(&s));
                    array = Int64Array::new(array.values().clone(), nulls);
                }
            }
            let array: ArrayRef = Arc::new(array);
            arrow::compute::cast(&array, &geohash_type(*precision_bits))
                .map_err(|e| ToArrowError::Arrow(e.to_string()))?
        }
        Values::Decimal { scale, bytes } => {
            let s = *scale as i8;
            match t {
                TypeCode::Decimal64 => Arc::new(
                    dense_primitive::<arrow::datatypes::Decimal64Type>(bytes, validity, rows)
                        .with_precision_and_scale(18, s)
                        .map_err(|e| ToArrowError::Arrow(e.to_string()))?,
                ) as ArrayRef,
                TypeCode::Decimal128 => Arc::new(
                    dense_primitive::<arrow::datatypes::Decimal128Type>(bytes, validity, rows)
                        .with_precision_and_scale(38, s)
                        .map_err(|e| ToArrowError::Arrow(e.to_string()))?,
                ),
                _ => {
                    let values: Vec<i256> = bytes
                        .chunks_exact(32)
                        .map(|c| i256::from_le_bytes(c.try_into().expect("chunk of 32")))
                        .collect();
                    let scattered = scatter(values, validity.as_ref(), rows);
                    Arc::new(
                        Decimal256Array::new(ScalarBuffer::from(scattered), validity)
                            .with_precision_and_scale(76, s)
                            .map_err(|e| ToArrowError::Arrow(e.to_string()))?,
                    )
                }
            }
        }
        Values::VarLen { offsets, data } => {
            // Offsets were checked at decode to rise within `data`; with
            // `data` under 2 GiB every one fits an i32 (the fallback is
            // unreachable), and a plain map keeps the copy a tight loop.
            if i32::try_from(data.len()).is_err() {
                return Err(ToArrowError::TooLarge);
            }
            let dense: Vec<i32> = le_values::<u32>(offsets)
                .map(|o| i32::try_from(o).unwrap_or(i32::MAX))
                .collect();
            let offsets = match &validity {
                None => dense,
                Some(v) => {
                    // NULL rows repeat the previous end.
                    let mut out = Vec::with_capacity(rows + 1);
                    out.push(0);
                    let mut next = 1usize;
                    for r in 0..rows {
                        if v.is_valid(r) {
                            out.push(dense[next]);
                            next += 1;
                        } else {
                            out.push(*out.last().expect("starts with 0"));
                        }
                    }
                    out
                }
            };
            let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
            let values = Buffer::from(data.to_vec());
            if t == TypeCode::Varchar {
                Arc::new(
                    StringArray::try_new(offsets, values, validity)
                        .map_err(|e| ToArrowError::Arrow(e.to_string()))?,
                )
            } else {
                Arc::new(
                    BinaryArray::try_new(offsets, values, validity)
                        .map_err(|e| ToArrowError::Arrow(e.to_string()))?,
                )
            }
        }
        Values::Symbol(s) => {
            let ids = match s {
                Symbols::Global(ids) | Symbols::Local { ids, .. } => ids,
            };
            let unmapped = |id: u32| ToArrowError::UnmappedSymbol {
                id,
                len: symbol_keys.len(),
            };
            let keys: Vec<u32> = match ids.single_byte_ids() {
                // Every id is one byte (below 128): one pass through a
                // table of the first 128 keys, no varint decoding.
                Some(bytes) => {
                    if let Some(max) = ids.max_id()
                        && max as usize >= symbol_keys.len()
                    {
                        return Err(unmapped(max));
                    }
                    let mut table = [0u32; 128];
                    let n = symbol_keys.len().min(128);
                    table[..n].copy_from_slice(&symbol_keys[..n]);
                    bytes
                        .iter()
                        .map(|&b| table[usize::from(b & 0x7f)])
                        .collect()
                }
                None => ids
                    .iter()
                    .map(|id| symbol_keys.get(id as usize).copied().ok_or(unmapped(id)))
                    .collect::<Result<_, _>>()?,
            };
            let keys = scatter(keys, validity.as_ref(), rows);
            Arc::new(UInt32Array::new(ScalarBuffer::from(keys), validity))
        }
        Values::Array(a) => {
            let rank = array_rank(column)?;
            let float = t == TypeCode::DoubleArray;
            // Leaf values, then one offset buffer per nesting level.
            // Arrow's own (aligned) allocation: the elements are read as
            // f64/i64 in place.
            let mut leaf = MutableBuffer::new(0);
            let mut level_offsets: Vec<Vec<i32>> = vec![vec![0]; rank];
            let mut dense = a.iter();
            for r in 0..rows {
                let valid = validity.as_ref().is_none_or(|v| v.is_valid(r));
                if !valid {
                    let last = *level_offsets[0].last().expect("starts with 0");
                    level_offsets[0].push(last);
                    continue;
                }
                let v = dense
                    .next()
                    .ok_or_else(|| ToArrowError::Arrow("array count".into()))?;
                leaf.extend_from_slice(v.data());
                let shape: Vec<usize> = v.shape().map(|d| d as usize).collect();
                // Level k has prod(shape[..k]) lists of shape[k] entries.
                let mut lists = 1usize;
                for (k, &dim) in shape.iter().enumerate() {
                    let offs = &mut level_offsets[k];
                    for _ in 0..lists {
                        let last = *offs.last().expect("starts with 0");
                        let dim = i32::try_from(dim).map_err(|_| ToArrowError::TooLarge)?;
                        offs.push(last.checked_add(dim).ok_or(ToArrowError::TooLarge)?);
                    }
                    lists = lists.saturating_mul(dim);
                }
            }
            let mut child: ArrayRef = if float {
                Arc::new(Float64Array::new(
                    ScalarBuffer::from(Buffer::from(leaf)),
                    None,
                ))
            } else {
                Arc::new(Int64Array::new(
                    ScalarBuffer::from(Buffer::from(leaf)),
                    None,
                ))
            };
            for k in (0..rank).rev() {
                let field = Arc::new(Field::new("item", child.data_type().clone(), true));
                let nulls = if k == 0 { validity.clone() } else { None };
                let offsets =
                    OffsetBuffer::new(ScalarBuffer::from(std::mem::take(&mut level_offsets[k])));
                child = Arc::new(
                    ListArray::try_new(field, offsets, child, nulls)
                        .map_err(|e| ToArrowError::Arrow(e.to_string()))?,
                );
            }
            child
        }
    };
    Ok(array)
}

fn with_utc(array: ArrayRef) -> ArrayRef {
    let utc = "UTC";
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => Arc::new(
            array
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .expect("micros")
                .clone()
                .with_timezone(utc),
        ),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Arc::new(
            array
                .as_any()
                .downcast_ref::<TimestampNanosecondArray>()
                .expect("nanos")
                .clone()
                .with_timezone(utc),
        ),
        _ => Arc::new(
            array
                .as_any()
                .downcast_ref::<TimestampMillisecondArray>()
                .expect("millis")
                .clone()
                .with_timezone(utc),
        ),
    }
}

/// Dense values (non-NULL rows only) as a full-length primitive array.
fn dense_primitive<T: ArrowPrimitiveType>(
    bytes: &[u8],
    validity: Option<NullBuffer>,
    rows: usize,
) -> PrimitiveArray<T>
where
    T::Native: LeScalar,
{
    let values: Vec<T::Native> = le_values::<T::Native>(bytes).collect();
    let scattered = scatter(values, validity.as_ref(), rows);
    PrimitiveArray::<T>::new(ScalarBuffer::from(scattered), validity)
}

/// A primitive array from dense values; values matching `sentinel` become
/// NULL (QuestDB treats its reserved values as NULL whether or not the
/// column also carries a bitmap).
fn primitive<T: ArrowPrimitiveType>(
    bytes: &[u8],
    validity: Option<NullBuffer>,
    rows: usize,
    sentinel: Option<impl Fn(&T::Native) -> bool>,
) -> ArrayRef
where
    T::Native: LeScalar,
{
    let array = match validity {
        // One copy, into Arrow's aligned allocation: the wire bytes are the
        // little-endian values. (A `Vec<u8>` need not be aligned for `T`;
        // an empty one is not even allocated.)
        None => PrimitiveArray::<T>::new(
            ScalarBuffer::new(Buffer::from_slice_ref(bytes), 0, rows),
            None,
        ),
        Some(v) => dense_primitive::<T>(bytes, Some(v), rows),
    };
    Arc::new(with_sentinel_nulls(array, sentinel))
}

/// A primitive array over already decoded values (one per row).
fn decoded<T: ArrowPrimitiveType>(
    values: ScalarBuffer<T::Native>,
    validity: Option<NullBuffer>,
    sentinel: Option<impl Fn(&T::Native) -> bool>,
) -> ArrayRef {
    Arc::new(with_sentinel_nulls(
        PrimitiveArray::<T>::new(values, validity),
        sentinel,
    ))
}

/// `array` with rows whose value matches `sentinel` also NULL.
fn with_sentinel_nulls<T: ArrowPrimitiveType>(
    array: PrimitiveArray<T>,
    sentinel: Option<impl Fn(&T::Native) -> bool>,
) -> PrimitiveArray<T> {
    let Some(is_null) = sentinel else {
        return array;
    };
    let values = array.values();
    // Branch-free within each block, so the common case (no sentinel)
    // is a vectorised scan.
    if !values
        .chunks(256)
        .any(|block| block.iter().fold(false, |hit, v| hit | is_null(v)))
    {
        return array;
    }
    let sentinel_nulls = NullBuffer::new(BooleanBuffer::collect_bool(values.len(), |r| {
        !is_null(&values[r])
    }));
    let nulls = NullBuffer::union(array.nulls(), Some(&sentinel_nulls));
    PrimitiveArray::<T>::new(values.clone(), nulls)
}

/// Places `dense[i]` at the i-th valid row; NULL rows get the default.
fn scatter<T: ArrowNativeType>(
    dense: Vec<T>,
    validity: Option<&NullBuffer>,
    rows: usize,
) -> Vec<T> {
    match validity {
        None => dense,
        Some(v) => {
            let mut out = Vec::with_capacity(rows);
            let mut next = dense.iter();
            for r in 0..rows {
                out.push(if v.is_valid(r) {
                    *next.next().unwrap_or(&T::default())
                } else {
                    T::default()
                });
            }
            out
        }
    }
}

fn fixed_binary(
    dense: Vec<u8>,
    width: usize,
    validity: Option<NullBuffer>,
    rows: usize,
    sentinel: Option<&[u8]>,
) -> Result<ArrayRef, ToArrowError> {
    let values = match &validity {
        Some(v) => {
            let mut out = vec![0u8; rows * width];
            let mut next = dense.chunks_exact(width);
            for r in 0..rows {
                if v.is_valid(r)
                    && let Some(c) = next.next()
                {
                    out[r * width..(r + 1) * width].copy_from_slice(c);
                }
            }
            out
        }
        None => dense,
    };
    let mut nulls = validity;
    if let Some(s) = sentinel
        && values.chunks_exact(width).any(|c| c == s)
    {
        let sentinel_nulls = NullBuffer::new(BooleanBuffer::collect_bool(rows, |r| {
            &values[r * width..(r + 1) * width] != s
        }));
        nulls = NullBuffer::union(nulls.as_ref(), Some(&sentinel_nulls));
    }
    FixedSizeBinaryArray::try_new(width as i32, Buffer::from(values), nulls)
        .map(|a| Arc::new(a) as ArrayRef)
        .map_err(|e| ToArrowError::Arrow(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::column::{ColumnBuilder, NullEncoding};
    use crate::value::Value;
    use arrow::array::AsArray;

    fn build(t: TypeCode, rows: &[Option<Value<'_>>], nulls: NullEncoding) -> ColumnData<'static> {
        let mut b = ColumnBuilder::new(t);
        for r in rows {
            b.push(r.as_ref()).unwrap();
        }
        b.finish(nulls)
    }

    /// Regression: values were put in a `Vec<u8>` and viewed as `f64`/`i64`,
    /// which panics when its pointer is not aligned for them (always when
    /// it is empty: an all-NULL array column, or a column of no rows).
    #[test]
    fn empty_and_all_null_columns_convert_without_alignment_panics() {
        for t in [TypeCode::DoubleArray, TypeCode::LongArray] {
            let a =
                column_to_array(&build(t, &[None, None], NullEncoding::Bitmap), &[], true).unwrap();
            assert_eq!((a.len(), a.null_count()), (2, 2));
        }
        for t in [TypeCode::Long, TypeCode::Double, TypeCode::Int] {
            let a = column_to_array(&build(t, &[], NullEncoding::Bitmap), &[], true).unwrap();
            assert_eq!(a.len(), 0);
        }
    }

    #[test]
    fn longs_dense_bitmap_and_sentinel() {
        let rows = [Some(Value::Long(5)), None, Some(Value::Long(-7))];
        for mode in [NullEncoding::Bitmap, NullEncoding::Sentinel] {
            let a = column_to_array(&build(TypeCode::Long, &rows, mode), &[], true).unwrap();
            let a = a.as_primitive::<arrow::datatypes::Int64Type>();
            assert_eq!(a.len(), 3);
            assert_eq!(
                (a.value(0), a.is_null(1), a.value(2)),
                (5, true, -7),
                "{mode:?}"
            );
        }
        // A sentinel next to a bitmap NULL is NULL too.
        let mixed = [Some(Value::Long(i64::MIN)), None, Some(Value::Long(3))];
        let a = column_to_array(
            &build(TypeCode::Long, &mixed, NullEncoding::Bitmap),
            &[],
            true,
        )
        .unwrap();
        assert_eq!(
            (a.is_null(0), a.is_null(1), a.is_valid(2)),
            (true, true, true)
        );
        let mixed = [Some(Value::Ipv4(0)), None, Some(Value::Ipv4(7))];
        let a = column_to_array(
            &build(TypeCode::Ipv4, &mixed, NullEncoding::Bitmap),
            &[],
            true,
        )
        .unwrap();
        assert_eq!(a.null_count(), 2);
        let min = i64::MIN as u64;
        let mixed = [
            Some(Value::Uuid { lo: min, hi: min }),
            None,
            Some(Value::Uuid { lo: 1, hi: 2 }),
        ];
        let a = column_to_array(
            &build(TypeCode::Uuid, &mixed, NullEncoding::Bitmap),
            &[],
            true,
        )
        .unwrap();
        assert_eq!(a.null_count(), 2);
        // Without sentinel_nulls the sentinel is a value.
        let a = column_to_array(
            &build(TypeCode::Long, &rows, NullEncoding::Sentinel),
            &[],
            false,
        )
        .unwrap();
        assert_eq!(a.null_count(), 0);
    }

    #[test]
    fn strings_symbols_and_uuid() {
        let rows = [Some(Value::Varchar("ä")), None, Some(Value::Varchar("bc"))];
        let a = column_to_array(
            &build(TypeCode::Varchar, &rows, NullEncoding::Bitmap),
            &[],
            true,
        )
        .unwrap();
        let s = a.as_string::<i32>();
        assert_eq!((s.value(0), s.is_null(1), s.value(2)), ("ä", true, "bc"));

        let rows = [Some(Value::Symbol(1)), None, Some(Value::Symbol(0))];
        let a = column_to_array(
            &build(TypeCode::Symbol, &rows, NullEncoding::Bitmap),
            &[40, 41],
            true,
        )
        .unwrap();
        let k = a.as_primitive::<arrow::datatypes::UInt32Type>();
        assert_eq!((k.value(0), k.is_null(1), k.value(2)), (41, true, 40));
        assert!(
            column_to_array(
                &build(TypeCode::Symbol, &rows, NullEncoding::Bitmap),
                &[40],
                true
            )
            .is_err()
        );
        // Ids of more than one varint byte take the general path.
        let rows = [Some(Value::Symbol(200)), Some(Value::Symbol(1))];
        let keys: Vec<u32> = (0..201).map(|k| k + 1000).collect();
        let column = build(TypeCode::Symbol, &rows, NullEncoding::Bitmap);
        let a = column_to_array(&column, &keys, true).unwrap();
        let k = a.as_primitive::<arrow::datatypes::UInt32Type>();
        assert_eq!(k.values().to_vec(), [1200, 1001]);
        assert!(column_to_array(&column, &keys[..200], true).is_err());

        let rows = [Some(Value::Uuid {
            lo: 0x0102_0304_0506_0708,
            hi: 0x1112_1314_1516_1718,
        })];
        let a = column_to_array(
            &build(TypeCode::Uuid, &rows, NullEncoding::Bitmap),
            &[],
            true,
        )
        .unwrap();
        let f = a.as_fixed_size_binary();
        assert_eq!(
            f.value(0),
            [
                0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 1, 2, 3, 4, 5, 6, 7, 8
            ]
        );
    }

    #[test]
    fn arrays_become_nested_lists() {
        let rows = [
            Some(Value::DoubleArray {
                shape: vec![2, 3],
                values: (0..6).map(f64::from).collect(),
            }),
            None,
            Some(Value::DoubleArray {
                shape: vec![1, 0],
                values: vec![],
            }),
        ];
        let a = column_to_array(
            &build(TypeCode::DoubleArray, &rows, NullEncoding::Bitmap),
            &[],
            true,
        )
        .unwrap();
        assert_eq!(a.data_type(), &nested_list(DataType::Float64, 2));
        let outer = a.as_list::<i32>();
        assert!(outer.is_null(1));
        let first = outer.value(0);
        let first = first.as_list::<i32>();
        assert_eq!(first.len(), 2);
        let row1 = first.value(1);
        assert_eq!(
            row1.as_primitive::<arrow::datatypes::Float64Type>()
                .values(),
            &[3.0, 4.0, 5.0]
        );
        assert_eq!(outer.value(2).as_list::<i32>().value(0).len(), 0);
    }

    #[test]
    fn timestamps_geohash_decimal_bool() {
        let rows = [Some(Value::Timestamp(1)), None];
        let a = column_to_array(
            &build(TypeCode::Timestamp, &rows, NullEncoding::Bitmap),
            &[],
            true,
        )
        .unwrap();
        assert_eq!(
            a.data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(a.null_count(), 1);
        let mut b = ColumnBuilder::new(TypeCode::Geohash).geohash_precision(12);
        b.push(Some(&Value::Geohash {
            precision_bits: 12,
            value: 0xABC,
        }))
        .unwrap();
        let a = column_to_array(&b.finish(NullEncoding::Bitmap), &[], true).unwrap();
        assert_eq!(
            a.as_primitive::<arrow::datatypes::Int16Type>().value(0),
            0xABC
        );
        let rows = [
            Some(Value::Decimal128 {
                scale: 4,
                unscaled: -12345,
            }),
            None,
        ];
        let a = column_to_array(
            &build(TypeCode::Decimal128, &rows, NullEncoding::Bitmap),
            &[],
            true,
        )
        .unwrap();
        assert_eq!(a.data_type(), &DataType::Decimal128(38, 4));
        assert_eq!(
            a.as_primitive::<arrow::datatypes::Decimal128Type>()
                .value(0),
            -12345
        );
        let rows = [Some(Value::Boolean(true)), None, Some(Value::Boolean(true))];
        let a = column_to_array(
            &build(TypeCode::Boolean, &rows, NullEncoding::Bitmap),
            &[],
            true,
        )
        .unwrap();
        let b = a.as_boolean();
        assert!(b.value(0) && b.is_null(1) && b.value(2));
    }
}
