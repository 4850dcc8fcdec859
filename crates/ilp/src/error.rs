//! What a malformed line is: the line's number, where in it, and why.

/// A line that cannot be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, byte {offset}: {kind}")]
pub struct IlpError {
    /// Line number in the input, from 1 (blank and comment lines count).
    pub line: u64,
    /// Byte offset of the problem from the start of the line.
    pub offset: usize,
    /// What is wrong.
    pub kind: IlpErrorKind,
}

/// What is wrong with a line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IlpErrorKind {
    /// The table name is empty.
    #[error("the table name is missing")]
    MissingTable,
    /// A tag is not `name=value`.
    #[error("a tag must be name=value")]
    BadTag,
    /// A field is not `name=value`.
    #[error("a field must be name=value")]
    BadField,
    /// A name (table, tag or field) is empty.
    #[error("an empty name")]
    EmptyName,
    /// A name is longer than the limit.
    #[error("a name of {len} bytes is longer than the limit of {max}")]
    NameTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A line has neither tags nor fields.
    #[error("a line needs at least one tag or field")]
    NoColumns,
    /// More tags and fields than the limit.
    #[error("more than {max} tags and fields in one line")]
    TooManyColumns {
        /// The limit.
        max: usize,
    },
    /// A line longer than the limit.
    #[error("a line longer than {max} bytes")]
    LineTooLong {
        /// The limit.
        max: usize,
    },
    /// A field value that is none of the protocol's.
    #[error("cannot parse field value {value:?}")]
    BadValue {
        /// The value as written (cut to 64 bytes).
        value: String,
    },
    /// An integer out of its type's range.
    #[error("integer {value:?} is out of range")]
    IntegerOutOfRange {
        /// The value as written (cut to 64 bytes).
        value: String,
    },
    /// A quoted string without its closing quote.
    #[error("a string without its closing quote")]
    UnclosedString,
    /// A binary value cut short or with an unknown type.
    #[error("binary value: {reason}")]
    BadBinary {
        /// What is wrong.
        reason: String,
    },
    /// The line timestamp is not an integer, or out of range.
    #[error("cannot parse timestamp {value:?}")]
    BadTimestamp {
        /// The value as written (cut to 64 bytes).
        value: String,
    },
    /// Something follows the timestamp.
    #[error("unexpected bytes after the timestamp")]
    TrailingBytes,
    /// The input ends inside a line that must be complete.
    #[error("the input ends inside a line")]
    UnexpectedEnd,
}

impl IlpErrorKind {
    /// A value as written, for a message (at most 64 bytes, lossy UTF-8).
    pub(crate) fn shown(bytes: &[u8]) -> String {
        String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned()
    }
}
