//! QUERY_REQUEST bind values as DataFusion scalars.
//!
//! Each bind becomes a scalar of the Arrow type a stored column of its
//! QWP type reads as ([`ColumnType::read_type`]), so `ts > $1` with a
//! TIMESTAMP bind compares like with like; a typed NULL becomes a NULL of
//! that type. The scalar carries the type's name as field metadata (as a
//! stored column does), so `SELECT $1` answers in the bind's own QWP type
//! (CHAR, IPv4, GEOHASH are not told apart by their Arrow types). Byte orders follow storage: UUID big-endian (RFC 4122 order),
//! LONG256 little-endian. Arrays are refused by the decoder already.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::i256;
use datafusion::common::ScalarValue;
use datafusion::common::metadata::{FieldMetadata, ScalarAndMetadata};
use quiver_qwp::{Bind, TypeCode, Value};
use quiver_storage::{ColumnType, TYPE_METADATA_KEY};

/// The stored column type a QWP type (with its DECIMAL scale or GEOHASH
/// precision) stands for.
fn column_type(t: TypeCode, arg: u8) -> Option<ColumnType> {
    Some(match t {
        TypeCode::Boolean => ColumnType::Boolean,
        TypeCode::Byte => ColumnType::Byte,
        TypeCode::Short => ColumnType::Short,
        TypeCode::Char => ColumnType::Char,
        TypeCode::Int => ColumnType::Int,
        TypeCode::Long => ColumnType::Long,
        TypeCode::Float => ColumnType::Float,
        TypeCode::Double => ColumnType::Double,
        // SYMBOL binds are text.
        TypeCode::Symbol | TypeCode::Varchar => ColumnType::Varchar,
        TypeCode::Timestamp => ColumnType::Timestamp,
        TypeCode::TimestampNanos => ColumnType::TimestampNanos,
        TypeCode::Date => ColumnType::Date,
        TypeCode::Uuid => ColumnType::Uuid,
        TypeCode::Long256 => ColumnType::Long256,
        TypeCode::Geohash => ColumnType::Geohash(arg),
        TypeCode::Binary => ColumnType::Binary,
        TypeCode::Ipv4 => ColumnType::Ipv4,
        TypeCode::Decimal64 => ColumnType::Decimal64(arg),
        TypeCode::Decimal128 => ColumnType::Decimal128(arg),
        TypeCode::Decimal256 => ColumnType::Decimal256(arg),
        _ => return None,
    })
}

/// Bind `index` (0-based) as a scalar tagged with its stored type, or why
/// it cannot be one.
pub fn bind_value(index: usize, bind: &Bind<'_>) -> Result<ScalarAndMetadata, String> {
    let scalar = bind_scalar(index, bind)?;
    let t = match bind {
        Bind::Null { type_code, arg } => column_type(*type_code, *arg),
        Bind::Value(v) => column_type(v.type_code(), bind_arg(v)),
    };
    let metadata = t
        .filter(|t| t.read_type() == scalar.data_type())
        .map(|t| FieldMetadata::from(BTreeMap::from([(TYPE_METADATA_KEY.to_string(), t.name())])));
    Ok(ScalarAndMetadata::new(scalar, metadata))
}

/// The DECIMAL scale or GEOHASH precision of a value (0 for other types).
fn bind_arg(v: &Value<'_>) -> u8 {
    match v {
        Value::Geohash { precision_bits, .. } => *precision_bits,
        Value::Decimal64 { scale, .. }
        | Value::Decimal128 { scale, .. }
        | Value::Decimal256 { scale, .. } => *scale,
        _ => 0,
    }
}

/// Bind `index` (0-based) as a scalar, or why it cannot be one.
fn bind_scalar(index: usize, bind: &Bind<'_>) -> Result<ScalarValue, String> {
    let position = index + 1;
    let utc = || Some(Arc::<str>::from("UTC"));
    let v = match bind {
        Bind::Null { type_code, arg } => {
            let t = column_type(*type_code, *arg).ok_or_else(|| {
                format!("bind ${position}: NULL of type {type_code:?} is not supported")
            })?;
            return ScalarValue::try_from(&t.read_type().clone())
                .map(|s| match s {
                    // A NULL SYMBOL dictionary scalar is just a NULL string.
                    ScalarValue::Dictionary(_, inner) => *inner,
                    other => other,
                })
                .map_err(|e| format!("bind ${position}: {e}"));
        }
        Bind::Value(v) => v,
    };
    Ok(match v {
        Value::Boolean(b) => ScalarValue::Boolean(Some(*b)),
        Value::Byte(x) => ScalarValue::Int8(Some(*x)),
        Value::Short(x) => ScalarValue::Int16(Some(*x)),
        Value::Int(x) => ScalarValue::Int32(Some(*x)),
        Value::Long(x) => ScalarValue::Int64(Some(*x)),
        Value::Float(x) => ScalarValue::Float32(Some(*x)),
        Value::Double(x) => ScalarValue::Float64(Some(*x)),
        Value::Char(c) => ScalarValue::UInt16(Some(*c)),
        Value::Varchar(s) => ScalarValue::Utf8(Some((*s).to_string())),
        Value::Timestamp(us) => ScalarValue::TimestampMicrosecond(Some(*us), utc()),
        Value::TimestampNanos(ns) => ScalarValue::TimestampNanosecond(Some(*ns), utc()),
        Value::Date(ms) => ScalarValue::TimestampMillisecond(Some(*ms), utc()),
        Value::Uuid { lo, hi } => {
            let v = (u128::from(*hi) << 64) | u128::from(*lo);
            ScalarValue::FixedSizeBinary(16, Some(v.to_be_bytes().to_vec()))
        }
        Value::Long256(limbs) => {
            let bytes = limbs.iter().flat_map(|l| l.to_le_bytes()).collect();
            ScalarValue::FixedSizeBinary(32, Some(bytes))
        }
        Value::Geohash {
            precision_bits,
            value,
        } => {
            let t = ColumnType::Geohash(*precision_bits).read_type();
            ScalarValue::UInt64(Some(*value))
                .cast_to(&t)
                .map_err(|e| format!("bind ${position}: GEOHASH: {e}"))?
        }
        Value::Binary(b) => ScalarValue::Binary(Some(b.to_vec())),
        Value::Ipv4(ip) => ScalarValue::UInt32(Some(*ip)),
        Value::Decimal64 { scale, unscaled } => {
            ScalarValue::Decimal64(Some(*unscaled), 18, decimal_scale(position, *scale)?)
        }
        Value::Decimal128 { scale, unscaled } => {
            ScalarValue::Decimal128(Some(*unscaled), 38, decimal_scale(position, *scale)?)
        }
        Value::Decimal256 { scale, unscaled } => ScalarValue::Decimal256(
            Some(i256::from_le_bytes(*unscaled)),
            76,
            decimal_scale(position, *scale)?,
        ),
        other => {
            return Err(format!(
                "bind ${position}: {:?} values are not supported as binds",
                other.type_code()
            ));
        }
    })
}

fn decimal_scale(position: usize, scale: u8) -> Result<i8, String> {
    i8::try_from(scale).map_err(|_| format!("bind ${position}: DECIMAL scale {scale} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_take_the_types_stored_columns_read_as() {
        let cases: Vec<(Value<'static>, ColumnType)> = vec![
            (Value::Boolean(true), ColumnType::Boolean),
            (Value::Byte(-1), ColumnType::Byte),
            (Value::Short(-2), ColumnType::Short),
            (Value::Int(-3), ColumnType::Int),
            (Value::Long(-4), ColumnType::Long),
            (Value::Float(0.5), ColumnType::Float),
            (Value::Double(0.25), ColumnType::Double),
            (Value::Char(0x20AC), ColumnType::Char),
            (Value::Varchar("x"), ColumnType::Varchar),
            (Value::Timestamp(1), ColumnType::Timestamp),
            (Value::TimestampNanos(1), ColumnType::TimestampNanos),
            (Value::Date(1), ColumnType::Date),
            (Value::Uuid { lo: 1, hi: 2 }, ColumnType::Uuid),
            (Value::Long256([1, 2, 3, 4]), ColumnType::Long256),
            (
                Value::Geohash {
                    precision_bits: 20,
                    value: 7,
                },
                ColumnType::Geohash(20),
            ),
            (Value::Binary(b"\x00\x01"), ColumnType::Binary),
            (Value::Ipv4(0x7f000001), ColumnType::Ipv4),
            (
                Value::Decimal64 {
                    scale: 2,
                    unscaled: 123,
                },
                ColumnType::Decimal64(2),
            ),
            (
                Value::Decimal128 {
                    scale: 3,
                    unscaled: -5,
                },
                ColumnType::Decimal128(3),
            ),
            (
                Value::Decimal256 {
                    scale: 4,
                    unscaled: [1; 32],
                },
                ColumnType::Decimal256(4),
            ),
        ];
        for (i, (value, column)) in cases.into_iter().enumerate() {
            let type_code = value.type_code();
            let s = bind_scalar(i, &Bind::Value(value)).unwrap();
            assert_eq!(s.data_type(), column.read_type(), "{column:?}");
            assert!(!s.is_null());
            let arg = match column {
                ColumnType::Geohash(b) => b,
                ColumnType::Decimal64(s)
                | ColumnType::Decimal128(s)
                | ColumnType::Decimal256(s) => s,
                _ => 0,
            };
            let null = bind_scalar(i, &Bind::Null { type_code, arg }).unwrap();
            assert!(null.is_null(), "{column:?}");
            assert_eq!(null.data_type(), column.read_type(), "NULL {column:?}");
        }
    }

    #[test]
    fn uuid_and_long256_bytes_follow_storage_order() {
        let uuid = bind_scalar(
            0,
            &Bind::Value(Value::Uuid {
                lo: 0x0123_4567_89ab_cdef,
                hi: 0xfedc_ba98_7654_3210,
            }),
        )
        .unwrap();
        let ScalarValue::FixedSizeBinary(16, Some(b)) = uuid else {
            panic!("{uuid:?}")
        };
        assert_eq!(b[0], 0xfe, "most significant byte first");
        assert_eq!(b[15], 0xef);
        let l = bind_scalar(0, &Bind::Value(Value::Long256([1, 0, 0, 1 << 56]))).unwrap();
        let ScalarValue::FixedSizeBinary(32, Some(b)) = l else {
            panic!("{l:?}")
        };
        assert_eq!((b[0], b[31]), (1, 1), "least significant limb first");
    }

    #[test]
    fn binds_carry_their_stored_type() {
        let v = bind_value(0, &Bind::Value(Value::Ipv4(1))).unwrap();
        let name = v
            .metadata()
            .and_then(|m| m.inner().get(TYPE_METADATA_KEY).cloned());
        assert_eq!(name.as_deref(), Some("IPV4"));
        let g = bind_value(
            0,
            &Bind::Null {
                type_code: TypeCode::Geohash,
                arg: 12,
            },
        )
        .unwrap();
        let name = g
            .metadata()
            .and_then(|m| m.inner().get(TYPE_METADATA_KEY).cloned());
        assert_eq!(name.as_deref(), Some("GEOHASH(12b)"));
    }

    #[test]
    fn symbol_null_binds_are_text() {
        let s = bind_scalar(
            0,
            &Bind::Null {
                type_code: TypeCode::Symbol,
                arg: 0,
            },
        )
        .unwrap();
        assert_eq!(s, ScalarValue::Utf8(None));
    }
}
