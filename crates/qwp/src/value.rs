//! One value of any QWP type, for row-at-a-time access and building.
//!
//! [`Value`] is the slow, convenient path: tests, the row API, binds,
//! diagnostics. Bulk consumers read the byte views on
//! [`ColumnData`](crate::column::ColumnData) instead.

use crate::types::TypeCode;

/// One value as it is on the wire (sentinels are not interpreted: an INT
/// column in dense mode reports `Int(i32::MIN)`, see [`Value::is_sentinel_null`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    /// BOOLEAN.
    Boolean(bool),
    /// BYTE.
    Byte(i8),
    /// SHORT.
    Short(i16),
    /// INT.
    Int(i32),
    /// LONG.
    Long(i64),
    /// FLOAT.
    Float(f32),
    /// DOUBLE.
    Double(f64),
    /// SYMBOL: a connection-global id (delta mode) or an index into the
    /// column's own dictionary (per-column mode).
    Symbol(u32),
    /// TIMESTAMP, microseconds.
    Timestamp(i64),
    /// DATE, milliseconds.
    Date(i64),
    /// UUID as its two wire halves.
    Uuid {
        /// Low 64 bits (first on the wire).
        lo: u64,
        /// High 64 bits.
        hi: u64,
    },
    /// LONG256 as four limbs, least significant first.
    Long256([u64; 4]),
    /// GEOHASH.
    Geohash {
        /// Precision of the column, 1..=60.
        precision_bits: u8,
        /// The value (low `ceil(bits/8)` bytes are on the wire).
        value: u64,
    },
    /// VARCHAR.
    Varchar(&'a str),
    /// TIMESTAMP_NANOS, nanoseconds.
    TimestampNanos(i64),
    /// DOUBLE_ARRAY, row-major.
    DoubleArray {
        /// Dimension lengths.
        shape: Vec<u32>,
        /// Elements.
        values: Vec<f64>,
    },
    /// LONG_ARRAY, row-major.
    LongArray {
        /// Dimension lengths.
        shape: Vec<u32>,
        /// Elements.
        values: Vec<i64>,
    },
    /// DECIMAL64.
    Decimal64 {
        /// Scale of the column.
        scale: u8,
        /// Unscaled value.
        unscaled: i64,
    },
    /// DECIMAL128.
    Decimal128 {
        /// Scale of the column.
        scale: u8,
        /// Unscaled value.
        unscaled: i128,
    },
    /// DECIMAL256.
    Decimal256 {
        /// Scale of the column.
        scale: u8,
        /// Unscaled two's-complement value, little-endian.
        unscaled: [u8; 32],
    },
    /// CHAR (one UTF-16 code unit).
    Char(u16),
    /// BINARY.
    Binary(&'a [u8]),
    /// IPv4 as a `u32`.
    Ipv4(u32),
}

impl Value<'_> {
    /// The type this value belongs to.
    pub fn type_code(&self) -> TypeCode {
        match self {
            Value::Boolean(_) => TypeCode::Boolean,
            Value::Byte(_) => TypeCode::Byte,
            Value::Short(_) => TypeCode::Short,
            Value::Int(_) => TypeCode::Int,
            Value::Long(_) => TypeCode::Long,
            Value::Float(_) => TypeCode::Float,
            Value::Double(_) => TypeCode::Double,
            Value::Symbol(_) => TypeCode::Symbol,
            Value::Timestamp(_) => TypeCode::Timestamp,
            Value::Date(_) => TypeCode::Date,
            Value::Uuid { .. } => TypeCode::Uuid,
            Value::Long256(_) => TypeCode::Long256,
            Value::Geohash { .. } => TypeCode::Geohash,
            Value::Varchar(_) => TypeCode::Varchar,
            Value::TimestampNanos(_) => TypeCode::TimestampNanos,
            Value::DoubleArray { .. } => TypeCode::DoubleArray,
            Value::LongArray { .. } => TypeCode::LongArray,
            Value::Decimal64 { .. } => TypeCode::Decimal64,
            Value::Decimal128 { .. } => TypeCode::Decimal128,
            Value::Decimal256 { .. } => TypeCode::Decimal256,
            Value::Char(_) => TypeCode::Char,
            Value::Binary(_) => TypeCode::Binary,
            Value::Ipv4(_) => TypeCode::Ipv4,
        }
    }

    /// Whether this is the NULL sentinel of a dense (no bitmap) column:
    /// `i32::MIN`/`i64::MIN` integers and timestamps, NaN floats, IPv4 `0`,
    /// all-ones GEOHASH, UUID/LONG256 with every half/limb `i64::MIN`
    /// (SPEC §2.1, §4.6). BOOLEAN, BYTE, SHORT and CHAR have no NULL.
    pub fn is_sentinel_null(&self) -> bool {
        const MIN: u64 = i64::MIN as u64;
        match *self {
            Value::Int(v) => v == i32::MIN,
            Value::Long(v) | Value::Timestamp(v) | Value::Date(v) | Value::TimestampNanos(v) => {
                v == i64::MIN
            }
            Value::Float(v) => v.is_nan(),
            Value::Double(v) => v.is_nan(),
            Value::Ipv4(v) => v == 0,
            Value::Uuid { lo, hi } => lo == MIN && hi == MIN,
            Value::Long256(limbs) => limbs == [MIN; 4],
            Value::Geohash {
                precision_bits,
                value,
            } => {
                // All-ones over the wire bytes, where that is not a valid
                // hash of this precision (a valid one is below 2^bits).
                let bytes = u32::from(precision_bits).div_ceil(8);
                precision_bits % 8 != 0 && value == u64::MAX >> (64 - 8 * bytes)
            }
            _ => false,
        }
    }

    /// Equality that treats floats bit for bit (so NaN equals the same NaN);
    /// for tests and round-trip checks.
    pub fn bit_eq(&self, other: &Value<'_>) -> bool {
        match (self, other) {
            (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
            (Value::Double(a), Value::Double(b)) => a.to_bits() == b.to_bits(),
            (
                Value::DoubleArray {
                    shape: sa,
                    values: va,
                },
                Value::DoubleArray {
                    shape: sb,
                    values: vb,
                },
            ) => {
                sa == sb
                    && va.len() == vb.len()
                    && va.iter().zip(vb).all(|(a, b)| a.to_bits() == b.to_bits())
            }
            _ => self == other,
        }
    }
}

/// A little-endian scalar that fixed-width columns hold.
pub trait LeScalar: Copy + 'static + sealed::Sealed {
    /// Width in bytes.
    const WIDTH: usize;
    /// Reads from exactly `WIDTH` bytes.
    fn read_le(bytes: &[u8]) -> Self;
    /// Appends the little-endian bytes.
    fn put_le(self, out: &mut Vec<u8>);
}

mod sealed {
    pub trait Sealed {}
}

macro_rules! le_scalar {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {}
        impl LeScalar for $t {
            const WIDTH: usize = std::mem::size_of::<$t>();
            #[inline]
            fn read_le(bytes: &[u8]) -> Self {
                <$t>::from_le_bytes(bytes.try_into().expect("caller passes WIDTH bytes"))
            }
            #[inline]
            fn put_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    )*};
}
le_scalar!(i8, i16, u16, i32, u32, i64, u64, f32, f64, i128);

/// The values in `bytes` read as little-endian `T`s (a trailing partial value
/// is ignored).
pub fn le_values<T: LeScalar>(bytes: &[u8]) -> impl ExactSizeIterator<Item = T> + '_ {
    bytes.chunks_exact(T::WIDTH).map(T::read_le)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sentinels() {
        assert!(Value::Int(i32::MIN).is_sentinel_null());
        assert!(!Value::Int(0).is_sentinel_null());
        assert!(Value::Double(f64::NAN).is_sentinel_null());
        assert!(
            Value::Geohash {
                precision_bits: 5,
                value: 0xFF
            }
            .is_sentinel_null()
        );
        assert!(
            Value::Geohash {
                precision_bits: 60,
                value: u64::MAX
            }
            .is_sentinel_null()
        );
        assert!(
            !Value::Geohash {
                precision_bits: 5,
                value: 0x1F
            }
            .is_sentinel_null()
        );
        assert!(!Value::Byte(0).is_sentinel_null(), "BYTE has no NULL");
        assert!(Value::Double(f64::NAN).bit_eq(&Value::Double(f64::NAN)));
    }

    #[test]
    fn le_values_reads_chunks() {
        let bytes = [1u8, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 9];
        assert_eq!(le_values::<i32>(&bytes).collect::<Vec<_>>(), [1, -1]);
    }
}
