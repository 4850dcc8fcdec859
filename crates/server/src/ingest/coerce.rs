//! Which QWP column types go into which table column types, and how: one
//! table ([`coercion`]), used both when a frame is planned (is this column
//! accepted?) and when its values are converted (how?), so the two cannot
//! disagree. It follows QuestDB's coercions (SPEC §9.3): integers widen or
//! narrow with a range check, whole floats go into integer columns,
//! timestamps change unit, text is parsed, anything with a text form goes
//! into VARCHAR and SYMBOL.
//!
//! This module converts values into non-SYMBOL columns; SYMBOL columns need
//! their table's dictionary (`convert`).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeBinaryArray, Int64Array, PrimitiveArray, StringArray,
    UInt16Array,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, UInt16Type, UInt32Type};
use quiver_qwp::ingress::Column;
use quiver_qwp::{StatusCode, TypeCode, Values};
use quiver_storage::ColumnType;

use super::IngestError;

/// How values of a sent type go into a column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coercion {
    /// The column's own type: the values as they are.
    Exact,
    /// A checked Arrow cast: integers widen, or narrow with a range check;
    /// numbers and booleans into floats; timestamps change unit; decimals
    /// rescale.
    Cast,
    /// Floats into an integer column: refused if a value has a fraction.
    WholeNumber,
    /// Integers as a point in time in the column's unit.
    EpochNumber,
    /// The values' text (VARCHAR).
    Text,
    /// Text (VARCHAR, or a SYMBOL's text) parsed as the column's type.
    Parse,
    /// Any value with a text form into a SYMBOL column.
    Intern,
    /// A finer GEOHASH cut to the column's coarser precision.
    Geohash,
    /// An array column whose values are all NULL (its rank unknown) into
    /// an array column of the same element type.
    NullArray,
}

fn is_integer(t: TypeCode) -> bool {
    matches!(
        t,
        TypeCode::Byte | TypeCode::Short | TypeCode::Int | TypeCode::Long
    )
}

fn is_float(t: TypeCode) -> bool {
    matches!(t, TypeCode::Float | TypeCode::Double)
}

/// How a column sent as `sent` (whose own column type is `natural`, `None`
/// for an all-NULL array) goes into a column of type `to`; `None` if it
/// cannot.
pub fn coercion(sent: TypeCode, natural: Option<ColumnType>, to: ColumnType) -> Option<Coercion> {
    use ColumnType as C;
    use TypeCode as T;
    if natural == Some(to) {
        return Some(Coercion::Exact);
    }
    let no_text = matches!(sent, T::DoubleArray | T::LongArray | T::Binary);
    Some(match (sent, to) {
        (T::DoubleArray, C::DoubleArray(_)) | (T::LongArray, C::LongArray(_)) => {
            return natural.is_none().then_some(Coercion::NullArray);
        }
        (_, C::Symbol) if !no_text => Coercion::Intern,
        (_, C::Varchar) if !no_text => Coercion::Text,
        (T::Symbol, C::Byte | C::Short | C::Int | C::Long | C::Float | C::Double) => {
            Coercion::Parse
        }
        (T::Geohash, C::Geohash(bits)) => match natural {
            Some(C::Geohash(sent_bits)) if sent_bits >= bits => Coercion::Geohash,
            _ => return None,
        },
        (s, C::Byte | C::Short | C::Int | C::Long) if is_float(s) => Coercion::WholeNumber,
        (s, C::Byte | C::Short | C::Int | C::Long | C::Float | C::Double)
            if is_integer(s) || is_float(s) || s == T::Boolean =>
        {
            Coercion::Cast
        }
        (s, C::Date | C::Timestamp | C::TimestampNanos) if is_integer(s) => Coercion::EpochNumber,
        (T::Timestamp | T::TimestampNanos, C::Timestamp | C::TimestampNanos) => Coercion::Cast,
        (s, C::Decimal64(_) | C::Decimal128(_) | C::Decimal256(_))
            if is_integer(s)
                || is_float(s)
                || matches!(s, T::Decimal64 | T::Decimal128 | T::Decimal256) =>
        {
            Coercion::Cast
        }
        (
            T::Varchar,
            C::Byte
            | C::Short
            | C::Int
            | C::Long
            | C::Float
            | C::Double
            | C::Boolean
            | C::Date
            | C::Timestamp
            | C::TimestampNanos
            | C::Char
            | C::Uuid
            | C::Decimal64(_)
            | C::Decimal128(_)
            | C::Decimal256(_),
        ) => Coercion::Parse,
        _ => return None,
    })
}

/// The column type a QWP column creates: its own type (`None` for an array
/// column whose values are all NULL, so its rank is unknown).
pub fn natural_type(column: &Column<'_>) -> Result<Option<ColumnType>, IngestError> {
    let data = &column.data;
    Ok(Some(match data.type_code() {
        TypeCode::Boolean => ColumnType::Boolean,
        TypeCode::Byte => ColumnType::Byte,
        TypeCode::Short => ColumnType::Short,
        TypeCode::Int => ColumnType::Int,
        TypeCode::Long => ColumnType::Long,
        TypeCode::Float => ColumnType::Float,
        TypeCode::Double => ColumnType::Double,
        TypeCode::Symbol => ColumnType::Symbol,
        TypeCode::Timestamp => ColumnType::Timestamp,
        TypeCode::TimestampNanos => ColumnType::TimestampNanos,
        TypeCode::Date => ColumnType::Date,
        TypeCode::Uuid => ColumnType::Uuid,
        TypeCode::Long256 => ColumnType::Long256,
        TypeCode::Varchar => ColumnType::Varchar,
        TypeCode::Binary => ColumnType::Binary,
        TypeCode::Ipv4 => ColumnType::Ipv4,
        TypeCode::Char => ColumnType::Char,
        TypeCode::Geohash => match data.values() {
            Values::Geohash { precision_bits, .. } => ColumnType::Geohash(*precision_bits),
            _ => return Ok(None),
        },
        t @ (TypeCode::Decimal64 | TypeCode::Decimal128 | TypeCode::Decimal256) => {
            let Values::Decimal { scale, .. } = data.values() else {
                return Ok(None);
            };
            match t {
                TypeCode::Decimal64 => ColumnType::Decimal64(*scale),
                TypeCode::Decimal128 => ColumnType::Decimal128(*scale),
                _ => ColumnType::Decimal256(*scale),
            }
        }
        t @ (TypeCode::DoubleArray | TypeCode::LongArray) => {
            if data.value_count() == 0 {
                return Ok(None);
            }
            let rank = quiver_qwp::arrow::array_rank(data).map_err(|e| {
                IngestError::new(
                    StatusCode::SCHEMA_MISMATCH,
                    format!("{e} [column={}]", column.name),
                )
            })?;
            // The decoder bounds ranks (32); a larger one is no column type.
            let rank = u8::try_from(rank).map_err(|_| {
                IngestError::new(
                    StatusCode::PARSE_ERROR,
                    format!("array rank {rank} is too large [column={}]", column.name),
                )
            })?;
            if t == TypeCode::DoubleArray {
                ColumnType::DoubleArray(rank)
            } else {
                ColumnType::LongArray(rank)
            }
        }
    }))
}

/// Text for a column being written into VARCHAR or SYMBOL; `None` for
/// types without a text form.
pub fn to_text(array: &ArrayRef, sent: TypeCode) -> Option<ArrayRef> {
    let text: StringArray = match sent {
        TypeCode::Uuid => array
            .as_fixed_size_binary()
            .iter()
            .map(|v| {
                v.map(|b| {
                    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
                    format!(
                        "{}-{}-{}-{}-{}",
                        &h[..8],
                        &h[8..12],
                        &h[12..16],
                        &h[16..20],
                        &h[20..]
                    )
                })
            })
            .collect(),
        TypeCode::Long256 => array
            .as_fixed_size_binary()
            .iter()
            .map(|v| {
                v.map(|b| {
                    let hex: String = b.iter().rev().map(|x| format!("{x:02x}")).collect();
                    format!("0x{hex}")
                })
            })
            .collect(),
        TypeCode::Char => array
            .as_primitive::<UInt16Type>()
            .iter()
            .map(|v| {
                v.map(|c| {
                    char::decode_utf16([c])
                        .map(|r| r.unwrap_or('\u{FFFD}'))
                        .collect::<String>()
                })
            })
            .collect(),
        TypeCode::Ipv4 => array
            .as_primitive::<UInt32Type>()
            .iter()
            .map(|v| v.map(|ip| std::net::Ipv4Addr::from(ip).to_string()))
            .collect(),
        TypeCode::DoubleArray | TypeCode::LongArray | TypeCode::Binary => return None,
        _ => return cast_with_options(array, &DataType::Utf8, &CastOptions::default()).ok(),
    };
    Some(Arc::new(text))
}

/// Most bytes of text one value of `sent` becomes (LONG256 as `0x` and 64
/// hex digits; a DECIMAL256 has up to 77 digits, a sign and a point), to
/// bound what a conversion to text allocates.
pub fn max_text_len(sent: TypeCode) -> usize {
    match sent {
        TypeCode::Decimal256 => 80,
        TypeCode::Long256 => 66,
        TypeCode::Decimal128 => 42,
        TypeCode::Uuid => 36,
        _ => 32,
    }
}

/// A geohash of `from` bits stored at `to` bits: finer hashes are cut to
/// the column's precision (QuestDB adapts precision); coarser ones cannot
/// be.
fn adapt_geohash(array: &ArrayRef, from: u8, to: u8, target: &DataType) -> Option<ArrayRef> {
    if from < to {
        return None;
    }
    let wide = arrow::compute::cast(array, &DataType::Int64).ok()?;
    let shift = u32::from(from - to);
    let shifted: Int64Array = wide
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.map(|v| v >> shift))
        .collect();
    arrow::compute::cast(&shifted, target).ok()
}

fn parse_uuids(array: &ArrayRef) -> Result<ArrayRef, String> {
    let s = array.as_string::<i32>();
    let mut bytes = Vec::with_capacity(s.len() * 16);
    let mut valid = Vec::with_capacity(s.len());
    for v in s.iter() {
        match v {
            Some(text) => {
                let hex: String = text.chars().filter(|c| *c != '-').collect();
                let parsed = (hex.len() == 32)
                    .then(|| u128::from_str_radix(&hex, 16).ok())
                    .flatten()
                    .ok_or_else(|| format!("{text:?} is not a UUID"))?;
                bytes.extend_from_slice(&parsed.to_be_bytes());
                valid.push(true);
            }
            None => {
                bytes.extend_from_slice(&[0; 16]);
                valid.push(false);
            }
        }
    }
    let nulls = arrow::buffer::NullBuffer::from(valid);
    Ok(Arc::new(
        FixedSizeBinaryArray::try_new(16, bytes.into(), Some(nulls)).map_err(|e| e.to_string())?,
    ))
}

/// Converts `array` (the natural Arrow form of a column sent as `sent`,
/// whose own type is `natural`; or its text for [`Coercion::Parse`] of a
/// SYMBOL) to the stored type of `to`, as `how` says. `Err` says which
/// value does not fit.
pub fn convert(
    array: ArrayRef,
    sent: TypeCode,
    natural: Option<ColumnType>,
    to: ColumnType,
    how: Coercion,
) -> Result<ArrayRef, String> {
    let strict = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let target = to.stored_type();
    match how {
        Coercion::Exact => Ok(array),
        Coercion::Intern => Err("SYMBOL columns are converted with their dictionary".into()),
        Coercion::NullArray => Ok(arrow::array::new_null_array(&target, array.len())),
        Coercion::Text => to_text(&array, sent).ok_or_else(|| "values have no text form".into()),
        Coercion::Geohash => {
            let (ColumnType::Geohash(bits), Some(ColumnType::Geohash(from))) = (to, natural) else {
                return Err("not a geohash".into());
            };
            adapt_geohash(&array, from, bits, &target).ok_or_else(|| {
                format!("geohash of {from} bits is coarser than the column's {bits}")
            })
        }
        Coercion::WholeNumber => {
            let f = cast_with_options(&array, &DataType::Float64, &strict)
                .map_err(|e| e.to_string())?;
            if f.as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .any(|v| v.fract() != 0.0 || !v.is_finite())
            {
                return Err("a value is not a whole number".into());
            }
            cast_with_options(&f, &target, &strict)
                .map_err(|e| format!("a value is out of range: {e}"))
        }
        Coercion::EpochNumber => {
            let wide =
                cast_with_options(&array, &DataType::Int64, &strict).map_err(|e| e.to_string())?;
            let raw: PrimitiveArray<Int64Type> = wide.as_primitive::<Int64Type>().clone();
            let unit = match to {
                ColumnType::TimestampNanos => TimeUnit::Nanosecond,
                ColumnType::Date => TimeUnit::Millisecond,
                _ => TimeUnit::Microsecond,
            };
            cast_with_options(
                &raw,
                &DataType::Timestamp(unit, Some("UTC".into())),
                &strict,
            )
            .map_err(|e| e.to_string())
        }
        Coercion::Parse if to == ColumnType::Char => {
            let s = array.as_string::<i32>();
            let chars: UInt16Array = s
                .iter()
                .map(|v| v.and_then(|s| s.encode_utf16().next()))
                .collect();
            Ok(Arc::new(chars))
        }
        Coercion::Parse if to == ColumnType::Uuid => parse_uuids(&array),
        Coercion::Cast if is_decimal(&target) && is_decimal(array.data_type()) => {
            // Arrow rounds a finer decimal into a decimal column of a
            // smaller scale: a value that changes is refused. (Floats are
            // rounded to the column's scale, as they are approximate.)
            let cast = cast_with_options(&array, &target, &strict)
                .map_err(|e| format!("a value cannot be converted: {e}"))?;
            let back = cast_with_options(&cast, array.data_type(), &strict)
                .map_err(|e| format!("a value cannot be converted: {e}"))?;
            if back.as_ref() != array.as_ref() {
                return Err(format!(
                    "a value has more digits after the point than the column's {}",
                    to.name()
                ));
            }
            Ok(cast)
        }
        Coercion::Parse | Coercion::Cast => cast_with_options(&array, &target, &strict)
            .map_err(|e| format!("a value cannot be converted: {e}")),
    }
}

fn is_decimal(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
    )
}
