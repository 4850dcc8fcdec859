//! Decode and encode errors.
//!
//! Every way a peer's bytes can be wrong is a [`DecodeErrorKind`] variant
//! (`Copy`, `&'static str` context). A [`DecodeError`] adds where it happened:
//! the byte offset and, when known, the table and column being read. The one
//! place that maps an error onto a QWP status is [`DecodeError::status`].

use std::fmt;

use crate::types::StatusCode;

/// What was wrong with a message. Each variant's text is written for the
/// person reading the server's error ack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// A field runs past the end of the message (or of its enclosing region).
    #[error("{what} needs {needed} bytes but only {remaining} remain")]
    UnexpectedEnd {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the message.
        remaining: u64,
    },
    /// The first four bytes are not `QWP1`.
    #[error("bad magic {0:02x?}, expected \"QWP1\"")]
    BadMagic([u8; 4]),
    /// The header's version byte is not the negotiated version.
    #[error("unsupported QWP version {got}, expected {expected}")]
    UnsupportedVersion {
        /// Version byte in the header.
        got: u8,
        /// The negotiated version.
        expected: u8,
    },
    /// Header flag bits that are reserved, or not valid in this direction.
    #[error("reserved or unsupported header flag bits set: 0x{flags:02x}")]
    ReservedFlags {
        /// The offending bits.
        flags: u8,
    },
    /// The header's `payload_length` does not match the frame.
    #[error(
        "header payload_length {declared} disagrees with the {actual} payload bytes in the frame"
    )]
    PayloadLengthMismatch {
        /// Length in the header.
        declared: u32,
        /// Bytes actually present after the header.
        actual: u64,
    },
    /// The header's `table_count` is not valid for this message kind.
    #[error("header table_count {got} is invalid for {what}")]
    InvalidTableCount {
        /// The message kind.
        what: &'static str,
        /// Count in the header.
        got: u16,
    },
    /// A varint is longer than 10 bytes or overflows 64 bits.
    #[error("varint for {what} is longer than 10 bytes or overflows 64 bits")]
    VarintOverflow {
        /// The field being read.
        what: &'static str,
    },
    /// A count, length or size is over a protocol or configured limit.
    #[error("{what} {value} exceeds the limit of {limit}")]
    LimitExceeded {
        /// The quantity.
        what: &'static str,
        /// Its value.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// Text that must be UTF-8 is not.
    #[error("{what} is not valid UTF-8")]
    InvalidUtf8 {
        /// The field.
        what: &'static str,
    },
    /// A column type byte is not an assigned QWP type.
    #[error("unknown column type code 0x{0:02x}")]
    UnknownTypeCode(u8),
    /// An egress `msg_kind` byte is unknown.
    #[error("unknown message kind 0x{0:02x}")]
    UnknownMessageKind(u8),
    /// An egress `msg_kind` that is valid, but not in this direction.
    #[error("message kind 0x{0:02x} is not valid in this direction")]
    UnexpectedMessageKind(u8),
    /// A SYMBOL value refers past the end of its dictionary.
    #[error("symbol id {id} is past the end of the dictionary ({dict_size} entries)")]
    SymbolIdOutOfRange {
        /// The id in the column.
        id: u64,
        /// Entries in the dictionary.
        dict_size: u64,
    },
    /// A delta symbol dictionary starts after the current end (ids skipped).
    #[error("symbol dictionary delta starts at id {start} but the dictionary has {size} entries")]
    DictionaryGap {
        /// `delta_start`.
        start: u64,
        /// Current dictionary size.
        size: u64,
    },
    /// An egress delta dictionary does not start exactly at the current end.
    #[error("symbol dictionary delta starts at id {start}, expected exactly {size}")]
    DictionaryOutOfOrder {
        /// `delta_start`.
        start: u64,
        /// Current dictionary size.
        size: u64,
    },
    /// An offset table is inconsistent.
    #[error("{what}: {reason}")]
    InvalidOffsets {
        /// The column layout.
        what: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A null flag other than 0/1 where only those are allowed (egress).
    #[error("null flag 0x{0:02x} is not allowed here")]
    InvalidNullFlag(u8),
    /// A null bitmap on a type that may not have one (egress BOOLEAN, BYTE,
    /// SHORT, CHAR).
    #[error("{type_name} columns must not carry a null bitmap")]
    NullsNotAllowed {
        /// The column type.
        type_name: &'static str,
    },
    /// A decimal scale past its type's maximum.
    #[error("{type_name} scale {scale} exceeds the maximum of {max}")]
    InvalidScale {
        /// The column type.
        type_name: &'static str,
        /// Scale on the wire.
        scale: u8,
        /// Largest allowed.
        max: u8,
    },
    /// A GEOHASH precision outside 1..=60 bits.
    #[error("geohash precision {bits} is outside 1..=60 bits")]
    InvalidGeohashPrecision {
        /// Precision on the wire.
        bits: u64,
    },
    /// An array value with rank 0 or a rank over the limit.
    #[error("array rank {n_dims} is outside 1..={max}")]
    InvalidArrayRank {
        /// Rank on the wire.
        n_dims: u8,
        /// Largest allowed rank.
        max: u8,
    },
    /// An array whose element count overflows or runs past the message.
    #[error("array shape has {elements} elements, more than the message holds")]
    ArrayTooLarge {
        /// Product of the dimensions (saturated).
        elements: u64,
    },
    /// A timestamp encoding discriminator other than 0 (raw) or 1 (Gorilla).
    #[error("unknown timestamp encoding 0x{0:02x}")]
    UnknownTimestampEncoding(u8),
    /// An empty column name (the designated timestamp) on a column that is
    /// not TIMESTAMP or TIMESTAMP_NANOS.
    #[error(
        "the designated timestamp (empty column name) must be TIMESTAMP or TIMESTAMP_NANOS, not {type_name}"
    )]
    InvalidDesignatedTimestamp {
        /// The column type.
        type_name: &'static str,
    },
    /// More than one empty-named column in a table block.
    #[error("more than one designated timestamp column (empty name) in one table block")]
    DuplicateDesignatedTimestamp,
    /// A name that must not be empty is empty.
    #[error("{what} is empty")]
    EmptyName {
        /// The field.
        what: &'static str,
    },
    /// Bytes left after a message (or region) that must end exactly.
    #[error("{count} trailing bytes after {what}")]
    TrailingBytes {
        /// What should have ended.
        what: &'static str,
        /// Bytes left over.
        count: u64,
    },
    /// A zstd body failed to decompress.
    #[error("zstd body could not be decompressed: {reason}")]
    Decompression {
        /// What went wrong.
        reason: &'static str,
    },
    /// A RESULT_BATCH continuation arrived without the batch 0 that carries
    /// its schema, or out of sequence.
    #[error("result batch {got} for request {request_id} does not follow batch {expected}")]
    BatchOutOfSequence {
        /// The request.
        request_id: i64,
        /// The sequence expected next.
        expected: u64,
        /// The sequence received.
        got: u64,
    },
    /// A bind of a type the server does not accept as a bind (arrays).
    #[error("{type_name} is not supported as a bind parameter")]
    UnsupportedBindType {
        /// The bind type.
        type_name: &'static str,
    },
    /// A field has a value outside its domain.
    #[error("{what}: {reason}")]
    InvalidValue {
        /// The field.
        what: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

impl DecodeErrorKind {
    /// The QWP status this error is reported with in an ingress error ack or
    /// an egress `QUERY_ERROR`.
    pub const fn status(&self) -> StatusCode {
        match self {
            DecodeErrorKind::DictionaryGap { .. } => StatusCode::DICTIONARY_GAP,
            _ => StatusCode::PARSE_ERROR,
        }
    }
}

/// A malformed message: what was wrong ([`DecodeErrorKind`]), at which byte,
/// and in which table and column when that is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    kind: DecodeErrorKind,
    offset: u64,
    table: Option<Box<str>>,
    column: Option<Box<str>>,
}

impl DecodeError {
    /// An error of `kind` at byte `offset` of the message.
    pub fn new(kind: DecodeErrorKind, offset: u64) -> Self {
        DecodeError {
            kind,
            offset,
            table: None,
            column: None,
        }
    }

    /// What was wrong.
    pub fn kind(&self) -> DecodeErrorKind {
        self.kind
    }

    /// Byte offset in the message (or decompressed body) where it was found.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The table block being decoded, if any.
    pub fn table(&self) -> Option<&str> {
        self.table.as_deref()
    }

    /// The column being decoded, if any.
    pub fn column(&self) -> Option<&str> {
        self.column.as_deref()
    }

    /// The QWP status to report this error with.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }

    /// Names the table, unless an inner scope already did.
    pub(crate) fn in_table(mut self, table: &str) -> Self {
        if self.table.is_none() {
            self.table = Some(table.into());
        }
        self
    }

    /// Names the column, unless an inner scope already did.
    pub(crate) fn in_column(mut self, column: &str) -> Self {
        if self.column.is_none() {
            self.column = Some(column.into());
        }
        self
    }

    /// Shifts the offset, for errors found inside a sub-region.
    pub(crate) fn shifted(mut self, base: u64) -> Self {
        self.offset += base;
        self
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.kind)?;
        match (&self.table, &self.column) {
            (Some(t), Some(c)) => write!(f, " [table={t}, column={c}")?,
            (Some(t), None) => write!(f, " [table={t}")?,
            (None, Some(c)) => write!(f, " [column={c}")?,
            (None, None) => write!(f, " [")?,
        }
        let sep = if self.table.is_some() || self.column.is_some() {
            ", "
        } else {
            ""
        };
        write!(f, "{sep}offset={}]", self.offset)
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.kind)
    }
}

/// Values handed to an encoder that cannot be written as one valid message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A column's row count differs from its table block's.
    #[error("column {column:?} has {column_rows} rows but its table block has {table_rows}")]
    RowCountMismatch {
        /// The column.
        column: String,
        /// Rows in the column.
        column_rows: u32,
        /// Rows in the block.
        table_rows: u32,
    },
    /// A SYMBOL column's id mode does not match the message (global ids need
    /// the delta dictionary section, column-local dictionaries forbid it).
    #[error("column {column:?}: {reason}")]
    SymbolModeMismatch {
        /// The column.
        column: String,
        /// What is wrong.
        reason: &'static str,
    },
    /// A message, name or count does not fit its wire field.
    #[error("{what} of {value} does not fit the wire format (max {max})")]
    TooLarge {
        /// The quantity.
        what: &'static str,
        /// Its value.
        value: u64,
        /// Largest encodable.
        max: u64,
    },
    /// A value that the wire format cannot carry.
    #[error("{what}: {reason}")]
    InvalidValue {
        /// The field.
        what: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Shorthand for decode results.
pub type DecodeResult<T> = Result<T, DecodeError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_table_column_and_offset() {
        let e = DecodeError::new(DecodeErrorKind::UnknownTypeCode(0x08), 42)
            .in_column("px")
            .in_table("trades")
            .in_table("outer");
        assert_eq!(
            e.to_string(),
            "unknown column type code 0x08 [table=trades, column=px, offset=42]"
        );
        assert_eq!(e.status(), StatusCode::PARSE_ERROR);
        let gap = DecodeError::new(DecodeErrorKind::DictionaryGap { start: 5, size: 3 }, 12);
        assert_eq!(gap.status(), StatusCode::DICTIONARY_GAP);
        assert_eq!(
            gap.to_string(),
            "symbol dictionary delta starts at id 5 but the dictionary has 3 entries [offset=12]"
        );
    }
}
