//! Values a statement computed (Arrow arrays of whatever type DataFusion
//! gave them) turned into a QuestDB type, the way QuestDB converts on INSERT
//! and in `::` casts: text into IPV4, UUID, LONG256, CHAR, GEOHASH and
//! timestamps; integers into timestamps as their raw units; SYMBOL text
//! interned in the table's dictionary; numbers narrowed only when they fit
//! (an overflow is an error naming the column, never a wrapped value).

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeBinaryBuilder, Int64Array, StringArray, UInt16Array,
    UInt32Array,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::DataType;
use arrow::util::display::FormatOptions;
use quiver_storage::{ColumnSchema, ColumnType, SymbolTable, Table};

use crate::error::{QueryError, QueryErrorKind};

/// Where converted values go, for messages and SYMBOL keys.
pub enum Target<'a> {
    /// A table column: SYMBOL text is interned in its dictionary and the
    /// result has the stored type.
    Column(&'a ColumnSchema, Option<Arc<SymbolTable>>),
    /// A `::` cast: the result has the read type (SYMBOL as a dictionary
    /// array of its own).
    Cast(ColumnType),
}

impl Target<'_> {
    fn column_type(&self) -> ColumnType {
        match self {
            Target::Column(c, _) => c.column_type,
            Target::Cast(t) => *t,
        }
    }
}

fn cannot(target: &Target<'_>, detail: impl std::fmt::Display) -> QueryError {
    let message = match target {
        Target::Column(column, _) => format!(
            "cannot insert into column {} of type {}: {detail}",
            column.name,
            column.column_type.name()
        ),
        Target::Cast(t) => format!("cannot cast to {}: {detail}", t.name()),
    };
    QueryError::new(QueryErrorKind::Invalid, message)
}

/// Arrow's cast that fails on overflow and on unparsable text instead of
/// producing NULL.
fn strict_cast(
    array: &ArrayRef,
    to: &DataType,
    column: &Target<'_>,
) -> Result<ArrayRef, QueryError> {
    let options = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    cast_with_options(array, to, &options).map_err(|e| {
        cannot(
            column,
            format!("a {} value does not convert: {e}", array.data_type()),
        )
    })
}

/// The values as text, for the conversions that parse text.
fn as_text(array: &ArrayRef, column: &Target<'_>) -> Result<StringArray, QueryError> {
    Ok(strict_cast(array, &DataType::Utf8, column)?
        .as_string::<i32>()
        .clone())
}

fn is_text(t: &DataType) -> bool {
    match t {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_text(v),
        _ => false,
    }
}

/// `array` as column `column` of `table` stores it.
pub fn to_stored(
    array: &ArrayRef,
    column: &ColumnSchema,
    table: &Table,
) -> Result<ArrayRef, QueryError> {
    convert(array, &Target::Column(column, table.column_symbols(column)))
}

/// `array` converted for `target_of` (see the module docs).
pub fn convert(array: &ArrayRef, target_of: &Target<'_>) -> Result<ArrayRef, QueryError> {
    let column = target_of;
    let column_type = target_of.column_type();
    let target = match target_of {
        Target::Column(..) => column_type.stored_type(),
        Target::Cast(_) => column_type.read_type(),
    };
    let from = array.data_type();
    // A stored SYMBOL's keys belong to its table: never taken as they are.
    let stored_symbol =
        column_type == ColumnType::Symbol && matches!(target_of, Target::Column(..));
    // A GEOHASH of another precision can hold the same Arrow type: checked
    // below.
    let geohash = matches!(column_type, ColumnType::Geohash(_));
    if from == &target && !stored_symbol && !geohash {
        return Ok(Arc::clone(array));
    }
    if from == &DataType::Null {
        return Ok(arrow::array::new_null_array(&target, array.len()));
    }
    let text = is_text(from);
    match column_type {
        ColumnType::Symbol if !stored_symbol => {
            let strings: ArrayRef = Arc::new(as_text(array, column)?);
            strict_cast(&strings, &target, column)
        }
        ColumnType::Symbol => {
            let Target::Column(_, Some(symbols)) = target_of else {
                return Err(cannot(column, "the column has no dictionary"));
            };
            let strings = as_text(array, column)?;
            let keys: Result<UInt32Array, QueryError> = strings
                .iter()
                .map(|s| {
                    s.map(|s| symbols.intern(s).map_err(QueryError::from))
                        .transpose()
                })
                .collect();
            Ok(Arc::new(keys?))
        }
        ColumnType::Ipv4 if text => {
            let strings = as_text(array, column)?;
            let parsed: Result<UInt32Array, QueryError> = strings
                .iter()
                .map(|s| {
                    s.filter(|s| !s.is_empty())
                        .map(|s| {
                            s.parse::<std::net::Ipv4Addr>().map(u32::from).map_err(|_| {
                                cannot(column, format!("'{s}' is not an IPv4 address"))
                            })
                        })
                        .transpose()
                })
                .collect();
            Ok(Arc::new(parsed?))
        }
        ColumnType::Uuid if text => fixed_from_text(array, column, 16, parse_uuid),
        ColumnType::Long256 if text => fixed_from_text(array, column, 32, parse_long256),
        ColumnType::Long256
            if matches!(
                from,
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView
            ) =>
        {
            // A `0x...` literal: big-endian bytes of the number.
            let bytes = strict_cast(array, &DataType::Binary, column)?;
            let bytes = bytes.as_binary::<i32>();
            let mut b = FixedSizeBinaryBuilder::with_capacity(bytes.len(), 32);
            for v in bytes {
                match v {
                    Some(v) if v.len() <= 32 => {
                        let mut le = [0u8; 32];
                        for (i, byte) in v.iter().rev().enumerate() {
                            le[i] = *byte;
                        }
                        b.append_value(le).map_err(|e| cannot(column, e))?;
                    }
                    Some(v) => {
                        return Err(cannot(
                            column,
                            format!("{} bytes is longer than 32", v.len()),
                        ));
                    }
                    None => b.append_null(),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        ColumnType::Long256 if from.is_integer() => {
            let values = strict_cast(array, &DataType::Int64, column)?;
            let values = values.as_primitive::<arrow::datatypes::Int64Type>();
            let mut b = FixedSizeBinaryBuilder::with_capacity(values.len(), 32);
            for v in values {
                match v {
                    Some(v) if v >= 0 => {
                        let mut bytes = [0u8; 32];
                        bytes[..8].copy_from_slice(&v.to_le_bytes());
                        b.append_value(bytes).map_err(|e| cannot(column, e))?;
                    }
                    Some(v) => return Err(cannot(column, format!("{v} is negative"))),
                    None => b.append_null(),
                }
            }
            Ok(Arc::new(b.finish()))
        }
        ColumnType::Char if text => {
            let strings = as_text(array, column)?;
            let units: Result<UInt16Array, QueryError> = strings
                .iter()
                .map(|s| match s {
                    None | Some("") => Ok(None),
                    Some(s) => {
                        let mut units = s.encode_utf16();
                        match (units.next(), units.next()) {
                            (Some(u), None) => Ok(Some(u)),
                            _ => Err(cannot(column, format!("'{s}' is not one character"))),
                        }
                    }
                })
                .collect();
            Ok(Arc::new(units?))
        }
        ColumnType::Geohash(bits) if text => {
            let strings = as_text(array, column)?;
            let values: Result<Int64Array, QueryError> = strings
                .iter()
                .map(|s| {
                    s.filter(|s| !s.is_empty())
                        .map(|s| parse_geohash(s, bits).map_err(|e| cannot(column, e)))
                        .transpose()
                })
                .collect();
            let values: ArrayRef = Arc::new(values?);
            strict_cast(&values, &target, column)
        }
        ColumnType::Geohash(bits) if from.is_integer() => {
            // An integer is the geohash's bits: it must fit the precision
            // (a wider geohash is not cut silently).
            let raw = strict_cast(array, &DataType::Int64, column)?;
            let limit = 1i64 << bits;
            if let Some(v) = raw
                .as_primitive::<arrow::datatypes::Int64Type>()
                .iter()
                .flatten()
                .find(|v| !(0..limit).contains(v))
            {
                return Err(cannot(column, format!("{v} does not fit in {bits} bits")));
            }
            strict_cast(&raw, &target, column)
        }
        ColumnType::Timestamp | ColumnType::TimestampNanos | ColumnType::Date
            if from.is_integer() =>
        {
            // QuestDB reads an integer as the column's own unit, as
            // Arrow's cast from Int64 does.
            let raw = strict_cast(array, &DataType::Int64, column)?;
            strict_cast(&raw, &target, column)
        }
        _ => strict_cast(array, &target, column),
    }
}

fn fixed_from_text(
    array: &ArrayRef,
    column: &Target<'_>,
    width: i32,
    parse: fn(&str) -> Option<Vec<u8>>,
) -> Result<ArrayRef, QueryError> {
    let strings = as_text(array, column)?;
    let mut b = FixedSizeBinaryBuilder::with_capacity(strings.len(), width);
    for s in strings.iter() {
        match s.filter(|s| !s.is_empty()) {
            None => b.append_null(),
            Some(s) => {
                let bytes = parse(s).ok_or_else(|| {
                    cannot(
                        column,
                        format!("'{s}' is not a {}", column.column_type().name()),
                    )
                })?;
                b.append_value(bytes).map_err(|e| cannot(column, e))?;
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` (dashes optional) as 16 bytes in
/// text order.
pub fn parse_uuid(s: &str) -> Option<Vec<u8>> {
    // 32 hex digits, with the four dashes in their places or none.
    let dashed = s.len() == 36
        && s.bytes()
            .enumerate()
            .all(|(i, b)| matches!(i, 8 | 13 | 18 | 23) == (b == b'-'));
    if !(dashed || s.len() == 32) {
        return None;
    }
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b'-').collect();
    if hex.len() != 32 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    hex.chunks(2)
        .map(|pair| u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok())
        .collect()
}

/// `0x` and up to 64 hex digits as 32 little-endian bytes.
pub fn parse_long256(s: &str) -> Option<Vec<u8>> {
    let digits = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"))?;
    if digits.is_empty() || digits.len() > 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = vec![0u8; 32];
    // Two digits per byte, from the least significant end.
    for (i, chunk) in digits.as_bytes().rchunks(2).enumerate() {
        out[i] = u8::from_str_radix(std::str::from_utf8(chunk).ok()?, 16).ok()?;
    }
    Some(out)
}

/// Geohash's base-32 digits, in value order.
pub const GEOHASH_ALPHABET: &[u8; 32] = b"0123456789bcdefghjkmnpqrstuvwxyz";

/// A base-32 geohash of at least `bits` bits, cut to `bits`.
pub fn parse_geohash(s: &str, bits: u8) -> Result<i64, String> {
    let s = s.strip_prefix('#').unwrap_or(s);
    let mut value: u64 = 0;
    let mut have = 0u32;
    for c in s.bytes() {
        if have >= u32::from(bits) {
            break;
        }
        let digit = GEOHASH_ALPHABET
            .iter()
            .position(|a| *a == c.to_ascii_lowercase())
            .ok_or_else(|| format!("'{s}' is not a geohash"))?;
        value = (value << 5) | digit as u64;
        have += 5;
    }
    if have < u32::from(bits) {
        return Err(format!("'{s}' has fewer than {bits} bits of geohash"));
    }
    value >>= have - u32::from(bits);
    i64::try_from(value).map_err(|_| format!("'{s}' is too long"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        assert_eq!(
            parse_uuid("123e4567-e89b-12d3-a456-426614174000").unwrap(),
            [
                0x12, 0x3e, 0x45, 0x67, 0xe8, 0x9b, 0x12, 0xd3, 0xa4, 0x56, 0x42, 0x66, 0x14, 0x17,
                0x40, 0x00
            ]
        );
        assert_eq!(parse_uuid("123e4567"), None);
        assert_eq!(parse_uuid("+23e4567-e89b-12d3-a456-426614174000"), None);
        assert_eq!(parse_uuid("123e4567e-89b-12d3-a456-426614174000"), None);
        assert!(parse_uuid("123e4567e89b12d3a456426614174000").is_some());
        assert_eq!(parse_uuid("zz3e4567-e89b-12d3-a456-426614174000"), None);
        let l = parse_long256("0x1ff").unwrap();
        assert_eq!(&l[..3], &[0xff, 0x01, 0x00]);
        assert_eq!(parse_long256("1ff"), None);
        assert_eq!(parse_long256(&format!("0x{}", "f".repeat(65))), None);
        // "u" is 26, "s" is 24 in base 32.
        assert_eq!(parse_geohash("us", 10), Ok((26 << 5) | 24));
        assert_eq!(parse_geohash("#us", 5), Ok(26));
        assert_eq!(parse_geohash("us", 3), Ok(26 >> 2));
        assert!(parse_geohash("u", 10).is_err());
        assert!(parse_geohash("ua", 10).is_err());
    }
}
