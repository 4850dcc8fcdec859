//! Type codes, status codes and the column layouts they imply (SPEC §2.1, §3.3).
//!
//! This module owns the mapping from one-byte wire codes to names and layouts.
//! It must not know how a layout is read or written; that lives in
//! [`crate::column`].

use std::fmt;

/// A QWP column type code (SPEC §2.1). `0x08` (the removed STRING) is not a
/// type code and is rejected like any other unknown byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum TypeCode {
    /// Bit-packed booleans; not nullable in QuestDB.
    Boolean = 0x01,
    /// `i8`; `0` is the ingress "null".
    Byte = 0x02,
    /// `i16`; `0` is the ingress "null".
    Short = 0x03,
    /// `i32`; null sentinel `i32::MIN`.
    Int = 0x04,
    /// `i64`; null sentinel `i64::MIN`.
    Long = 0x05,
    /// `f32`; null is NaN.
    Float = 0x06,
    /// `f64`; null is NaN.
    Double = 0x07,
    /// Dictionary-encoded string (varint ids).
    Symbol = 0x09,
    /// `i64` microseconds since the Unix epoch.
    Timestamp = 0x0A,
    /// `i64` milliseconds since the Unix epoch.
    Date = 0x0B,
    /// 16 bytes: lo `u64` LE then hi `u64` LE.
    Uuid = 0x0C,
    /// 32 bytes: four `u64` LE limbs, least significant first.
    Long256 = 0x0D,
    /// `ceil(bits/8)` bytes per value; the column carries its precision.
    Geohash = 0x0E,
    /// UTF-8 text with a `u32` offset table.
    Varchar = 0x0F,
    /// `i64` nanoseconds since the Unix epoch.
    TimestampNanos = 0x10,
    /// N-dimensional `f64` array.
    DoubleArray = 0x11,
    /// N-dimensional `i64` array.
    LongArray = 0x12,
    /// 8-byte two's-complement unscaled value; the column carries its scale.
    Decimal64 = 0x13,
    /// 16-byte two's-complement unscaled value.
    Decimal128 = 0x14,
    /// 32-byte two's-complement unscaled value.
    Decimal256 = 0x15,
    /// One UTF-16 code unit (`u16`).
    Char = 0x16,
    /// Opaque bytes with a `u32` offset table.
    Binary = 0x17,
    /// IPv4 address as `u32` LE; `0` is null.
    Ipv4 = 0x18,
}

/// How a column's values are laid out after its null section (SPEC §2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Bit-packed, LSB first.
    Boolean,
    /// `value_count` little-endian values of the given width in bytes.
    Fixed(usize),
    /// `i64` values that may be Gorilla-encoded when the message sets
    /// `FLAG_GORILLA` (TIMESTAMP, TIMESTAMP_NANOS; DATE on egress only).
    Timestamp,
    /// `varint precision_bits`, then `ceil(bits/8)` bytes per value.
    Geohash,
    /// `u8 scale`, then values of the given width in bytes.
    Decimal(usize),
    /// `(value_count + 1)` `u32` offsets, then the concatenated bytes.
    VarLen,
    /// Varint ids, global (delta dictionary) or column-local.
    Symbol,
    /// Per value: rank, shape, row-major 8-byte elements.
    Array,
}

/// Which side of the protocol a column is being read or written for; a few
/// layout rules differ (DATE's Gorilla discriminator, egress null rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client → server table blocks (`/write/v4`).
    Ingress,
    /// Server → client result batches and binds (`/read/v1`).
    Egress,
}

impl TypeCode {
    /// Every assigned type code, in code order.
    pub const ALL: [TypeCode; 23] = [
        TypeCode::Boolean,
        TypeCode::Byte,
        TypeCode::Short,
        TypeCode::Int,
        TypeCode::Long,
        TypeCode::Float,
        TypeCode::Double,
        TypeCode::Symbol,
        TypeCode::Timestamp,
        TypeCode::Date,
        TypeCode::Uuid,
        TypeCode::Long256,
        TypeCode::Geohash,
        TypeCode::Varchar,
        TypeCode::TimestampNanos,
        TypeCode::DoubleArray,
        TypeCode::LongArray,
        TypeCode::Decimal64,
        TypeCode::Decimal128,
        TypeCode::Decimal256,
        TypeCode::Char,
        TypeCode::Binary,
        TypeCode::Ipv4,
    ];

    /// The type for a wire byte, or `None` for unassigned codes (incl. `0x08`).
    pub const fn from_u8(code: u8) -> Option<TypeCode> {
        Some(match code {
            0x01 => TypeCode::Boolean,
            0x02 => TypeCode::Byte,
            0x03 => TypeCode::Short,
            0x04 => TypeCode::Int,
            0x05 => TypeCode::Long,
            0x06 => TypeCode::Float,
            0x07 => TypeCode::Double,
            0x09 => TypeCode::Symbol,
            0x0A => TypeCode::Timestamp,
            0x0B => TypeCode::Date,
            0x0C => TypeCode::Uuid,
            0x0D => TypeCode::Long256,
            0x0E => TypeCode::Geohash,
            0x0F => TypeCode::Varchar,
            0x10 => TypeCode::TimestampNanos,
            0x11 => TypeCode::DoubleArray,
            0x12 => TypeCode::LongArray,
            0x13 => TypeCode::Decimal64,
            0x14 => TypeCode::Decimal128,
            0x15 => TypeCode::Decimal256,
            0x16 => TypeCode::Char,
            0x17 => TypeCode::Binary,
            0x18 => TypeCode::Ipv4,
            _ => return None,
        })
    }

    /// The wire byte.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// The QuestDB name of the type, as used in error messages.
    pub const fn name(self) -> &'static str {
        match self {
            TypeCode::Boolean => "BOOLEAN",
            TypeCode::Byte => "BYTE",
            TypeCode::Short => "SHORT",
            TypeCode::Int => "INT",
            TypeCode::Long => "LONG",
            TypeCode::Float => "FLOAT",
            TypeCode::Double => "DOUBLE",
            TypeCode::Symbol => "SYMBOL",
            TypeCode::Timestamp => "TIMESTAMP",
            TypeCode::Date => "DATE",
            TypeCode::Uuid => "UUID",
            TypeCode::Long256 => "LONG256",
            TypeCode::Geohash => "GEOHASH",
            TypeCode::Varchar => "VARCHAR",
            TypeCode::TimestampNanos => "TIMESTAMP_NANOS",
            TypeCode::DoubleArray => "DOUBLE_ARRAY",
            TypeCode::LongArray => "LONG_ARRAY",
            TypeCode::Decimal64 => "DECIMAL64",
            TypeCode::Decimal128 => "DECIMAL128",
            TypeCode::Decimal256 => "DECIMAL256",
            TypeCode::Char => "CHAR",
            TypeCode::Binary => "BINARY",
            TypeCode::Ipv4 => "IPV4",
        }
    }

    /// The value layout of this type.
    pub const fn layout(self) -> Layout {
        match self {
            TypeCode::Boolean => Layout::Boolean,
            TypeCode::Byte => Layout::Fixed(1),
            TypeCode::Short | TypeCode::Char => Layout::Fixed(2),
            TypeCode::Int | TypeCode::Float | TypeCode::Ipv4 => Layout::Fixed(4),
            TypeCode::Long | TypeCode::Double => Layout::Fixed(8),
            TypeCode::Uuid => Layout::Fixed(16),
            TypeCode::Long256 => Layout::Fixed(32),
            TypeCode::Timestamp | TypeCode::TimestampNanos | TypeCode::Date => Layout::Timestamp,
            TypeCode::Geohash => Layout::Geohash,
            TypeCode::Decimal64 => Layout::Decimal(8),
            TypeCode::Decimal128 => Layout::Decimal(16),
            TypeCode::Decimal256 => Layout::Decimal(32),
            TypeCode::Varchar | TypeCode::Binary => Layout::VarLen,
            TypeCode::Symbol => Layout::Symbol,
            TypeCode::DoubleArray | TypeCode::LongArray => Layout::Array,
        }
    }

    /// Whether values of this type carry the one-byte encoding discriminator
    /// when the message sets `FLAG_GORILLA`. DATE has one on egress only.
    pub const fn has_timestamp_encoding(self, direction: Direction) -> bool {
        match self {
            TypeCode::Timestamp | TypeCode::TimestampNanos => true,
            TypeCode::Date => matches!(direction, Direction::Egress),
            _ => false,
        }
    }

    /// Largest decimal scale this type allows (18, 38, 76), or `None` for
    /// non-decimal types.
    pub const fn max_decimal_scale(self) -> Option<u8> {
        match self {
            TypeCode::Decimal64 => Some(18),
            TypeCode::Decimal128 => Some(38),
            TypeCode::Decimal256 => Some(76),
            _ => None,
        }
    }

    /// Whether the egress client requires `null_flag = 0` for this type
    /// (BOOLEAN, BYTE, SHORT, CHAR have no NULL in QuestDB).
    pub const fn is_never_null(self) -> bool {
        matches!(
            self,
            TypeCode::Boolean | TypeCode::Byte | TypeCode::Short | TypeCode::Char
        )
    }

    /// Whether this type may name the designated timestamp (empty column
    /// name) of an ingress table block.
    pub const fn can_be_designated(self) -> bool {
        matches!(self, TypeCode::Timestamp | TypeCode::TimestampNanos)
    }
}

impl fmt::Display for TypeCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl TryFrom<u8> for TypeCode {
    type Error = u8;

    fn try_from(code: u8) -> Result<Self, Self::Error> {
        TypeCode::from_u8(code).ok_or(code)
    }
}

/// A QWP status byte (SPEC §3.3), shared by ingress acks and egress
/// `QUERY_ERROR`. Unknown values are representable because peers may send
/// codes newer than this crate.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(pub u8);

impl StatusCode {
    /// The frame was accepted and committed.
    pub const OK: StatusCode = StatusCode(0x00);
    /// Durable acknowledgement (the WAL is fsync'd).
    pub const DURABLE_ACK: StatusCode = StatusCode(0x02);
    /// A value's type conflicts with the existing column.
    pub const SCHEMA_MISMATCH: StatusCode = StatusCode(0x03);
    /// The message is malformed.
    pub const PARSE_ERROR: StatusCode = StatusCode(0x05);
    /// A server-side failure; retriable.
    pub const INTERNAL_ERROR: StatusCode = StatusCode(0x06);
    /// Authorization failure.
    pub const SECURITY_ERROR: StatusCode = StatusCode(0x08);
    /// The table does not accept the write; retriable.
    pub const WRITE_ERROR: StatusCode = StatusCode(0x09);
    /// Egress: the query was cancelled.
    pub const CANCELLED: StatusCode = StatusCode(0x0A);
    /// Egress: a resource limit was hit.
    pub const LIMIT_EXCEEDED: StatusCode = StatusCode(0x0B);
    /// Reserved: the node is not writable.
    pub const NOT_WRITABLE: StatusCode = StatusCode(0x0C);
    /// Ingress: a symbol delta skipped ids; the client re-registers from 0.
    pub const DICTIONARY_GAP: StatusCode = StatusCode(0x0D);
    /// Egress: the query timed out (only for clients that sent a timeout).
    pub const QUERY_TIMEOUT: StatusCode = StatusCode(0x0E);

    /// The protocol name of the code, or `"UNKNOWN"`.
    pub const fn name(self) -> &'static str {
        match self.0 {
            0x00 => "OK",
            0x02 => "DURABLE_ACK",
            0x03 => "SCHEMA_MISMATCH",
            0x05 => "PARSE_ERROR",
            0x06 => "INTERNAL_ERROR",
            0x08 => "SECURITY_ERROR",
            0x09 => "WRITE_ERROR",
            0x0A => "CANCELLED",
            0x0B => "LIMIT_EXCEEDED",
            0x0C => "NOT_WRITABLE",
            0x0D => "DICTIONARY_GAP",
            0x0E => "QUERY_TIMEOUT",
            _ => "UNKNOWN",
        }
    }

    /// Whether the official Rust client accepts this status in a
    /// `QUERY_ERROR` frame (others are a protocol error to it).
    pub const fn is_valid_query_error(self) -> bool {
        matches!(self.0, 0x03 | 0x05 | 0x06 | 0x08 | 0x0A | 0x0B | 0x0E)
    }
}

impl fmt::Debug for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}(0x{:02x})", self.name(), self.0)
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_and_unassigned_codes_are_rejected() {
        for t in TypeCode::ALL {
            assert_eq!(TypeCode::from_u8(t.as_u8()), Some(t));
        }
        let assigned: Vec<u8> = TypeCode::ALL.iter().map(|t| t.as_u8()).collect();
        for b in 0..=u8::MAX {
            assert_eq!(
                TypeCode::from_u8(b).is_some(),
                assigned.contains(&b),
                "0x{b:02x}"
            );
        }
        assert_eq!(
            TypeCode::from_u8(0x08),
            None,
            "0x08 was STRING and is removed"
        );
    }

    #[test]
    fn date_has_a_discriminator_on_egress_only() {
        assert!(!TypeCode::Date.has_timestamp_encoding(Direction::Ingress));
        assert!(TypeCode::Date.has_timestamp_encoding(Direction::Egress));
        assert!(TypeCode::Timestamp.has_timestamp_encoding(Direction::Ingress));
        assert!(!TypeCode::Long.has_timestamp_encoding(Direction::Egress));
    }

    #[test]
    fn status_names() {
        assert_eq!(StatusCode::DICTIONARY_GAP.name(), "DICTIONARY_GAP");
        assert_eq!(StatusCode(0x7F).name(), "UNKNOWN");
        assert!(!StatusCode::WRITE_ERROR.is_valid_query_error());
        assert!(StatusCode::LIMIT_EXCEEDED.is_valid_query_error());
    }
}
