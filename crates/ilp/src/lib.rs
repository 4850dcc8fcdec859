//! InfluxDB line protocol (ILP), parsed without I/O.
//!
//! [`Parser`] walks a buffer of ILP text one line at a time into a reused
//! [`Line`]: the table (measurement), its tags, its fields as typed
//! [`Value`]s and the optional timestamp. It reads the protocol as InfluxDB
//! defines it (escapes in names and tag values, quoted strings, `i` and `u`
//! integers, booleans in every spelling, comments and blank lines, a line
//! timestamp in the request's [`Precision`]) and QuestDB's versions 2 and 3
//! as the official clients write them: binary doubles (`name==` + 16 + 8
//! bytes little-endian), n-dimensional DOUBLE and LONG arrays (`==` + 14 +
//! element type + dimensions + data), decimals (binary `==` + 23, or text
//! with a `d` suffix) and timestamps with a `t` (microseconds) or `n`
//! (nanoseconds) suffix.
//!
//! Names and strings are borrowed from the input ([`Text`]), unescaped
//! only when asked; binary values are slices of it. Every length read from
//! the input is checked against the input and the [`Limits`] before use,
//! and nothing is allocated per line beyond the reused [`Line`].
//!
//! What it does not do: map lines to columns and types (the server's ILP
//! ingest does, with the same rules as QWP ingest), or any I/O. A buffer
//! that may end in the middle of a line (a chunk of a request, a TCP read)
//! is parsed with [`Parser::partial`]: the parser stops before the
//! incomplete line and says where, for the caller to keep and append to.

mod error;
#[doc(hidden)]
pub mod fuzzing;
mod line;
mod number;
mod parse;
mod plain;
mod stops;

pub use error::{IlpError, IlpErrorKind};
pub use line::{ArrayElement, ArrayView, Line, Precision, Text, Timestamp, Value};
pub use parse::{Limits, Parser, Step};
