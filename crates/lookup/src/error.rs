//! Typed errors, one enum per operation: [`OpenError`] (opening and
//! validating a sidecar file, also raised lazily when a record batch is
//! first decoded), [`BuildError`] (writing a sidecar), [`FetchError`]
//! (point lookups and scans). [`Error`] is the union of the three.
//!
//! Every variant names the file or column it is about, so a message read in
//! a log without its call site still says what went wrong where. None of
//! these errors is produced by a panic: malformed input is checked before it
//! is used.

use std::path::PathBuf;

use arrow::datatypes::DataType;
use arrow::error::ArrowError;
use datafusion::error::DataFusionError;

/// Opening a sidecar, or validating one of its record batches, failed.
///
/// A file that is truncated, garbage, foreign (when foreign files are not
/// allowed), or whose keys break the sorted/unique invariant is reported
/// here, never by a panic or a `SIGBUS`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file could not be opened, stat'ed or mapped.
    #[error("cannot open sidecar {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The bytes are not a well-formed Arrow IPC file: bad magic, a footer
    /// length or block that points outside the file, an unparsable
    /// flatbuffer, an unexpected message.
    #[error("{path} is not a valid Arrow IPC file: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What was wrong, with offsets where they help.
        reason: String,
    },
    /// The `quiver.lookup` footer metadata is missing a field, has an
    /// unsupported format version, or disagrees with the file's contents.
    #[error("{path}: bad sidecar metadata: {reason}")]
    Metadata {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },
    /// The file has no `quiver.lookup` metadata and the caller did not allow
    /// foreign files ([`crate::OpenOptions::allow_foreign`]).
    #[error("{path} is an Arrow IPC file without quiver.lookup metadata (foreign file)")]
    Foreign {
        /// The file.
        path: PathBuf,
    },
    /// The key column (field 0) has a type that is not a key type.
    #[error(
        "{path}: key column `{name}` has type {data_type}; expected Int32, Int64, UInt32 or UInt64"
    )]
    KeyType {
        /// The file.
        path: PathBuf,
        /// Name of field 0.
        name: String,
        /// Its type.
        data_type: DataType,
    },
    /// A record batch's keys are null, not strictly ascending (as u64), or do
    /// not agree with the coarse index stored in the metadata.
    #[error("{path}: key invariant violated in record batch {batch}: {reason}")]
    KeyInvariant {
        /// The file.
        path: PathBuf,
        /// Index of the record batch in the footer.
        batch: usize,
        /// What was wrong.
        reason: String,
    },
    /// Arrow rejected a dictionary or record batch while decoding it (bad
    /// offsets, invalid UTF-8, wrong buffer sizes, ...).
    #[error("{path}: cannot decode {what}: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Which block, e.g. `record batch 3`.
        what: String,
        /// Arrow's error.
        #[source]
        source: ArrowError,
    },
}

/// Building a sidecar failed. The destination path is left untouched: the
/// output is only published (atomically) by a successful `finish`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// Creating, writing, syncing or renaming a file failed.
    #[error("{context} {path}: {source}")]
    Io {
        /// What was being done, e.g. `cannot create temp file in`.
        context: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Arrow failed while projecting, gathering or writing batches.
    #[error("{context}: {source}")]
    Arrow {
        /// What was being done.
        context: &'static str,
        /// Arrow's error.
        #[source]
        source: ArrowError,
    },
    /// `begin` was given a schema whose arity does not match the key plus
    /// value column indices.
    #[error("output schema has {fields} fields but 1 key + {values} value columns were given")]
    Arity {
        /// Fields in the output schema.
        fields: usize,
        /// Value column indices given.
        values: usize,
    },
    /// A key or value column index points past the end of a pushed batch.
    #[error("column index {index} is out of range for a batch with {columns} columns")]
    ColumnIndex {
        /// The offending index.
        index: usize,
        /// Columns in the batch.
        columns: usize,
    },
    /// A pushed batch's column type differs from the output schema's field.
    #[error("column `{column}`: expected {expected}, found {found}")]
    SchemaMismatch {
        /// Output field name.
        column: String,
        /// Type in the output schema.
        expected: DataType,
        /// Type in the pushed batch.
        found: DataType,
    },
    /// The key field's type is not Int32, Int64, UInt32 or UInt64.
    #[error("key column `{name}` has type {data_type}; expected Int32, Int64, UInt32 or UInt64")]
    KeyType {
        /// Key field name.
        name: String,
        /// Its type.
        data_type: DataType,
    },
    /// A column type the chosen provider cannot store (rejected at `begin`).
    #[error("column `{column}` has type {data_type}, which {provider} cannot hold: {reason}")]
    UnsupportedType {
        /// Field name.
        column: String,
        /// Its type.
        data_type: DataType,
        /// `SQLite` or `the Feather sidecar`.
        provider: &'static str,
        /// Why.
        reason: &'static str,
    },
    /// A pushed key is null (row index counted over all pushes).
    #[error("null key at input row {row}")]
    NullKey {
        /// Zero-based row over all pushed batches.
        row: u64,
    },
    /// The same key was pushed twice (possibly in different batches).
    #[error("duplicate key {key} (as u64)")]
    DuplicateKey {
        /// The key, in the u64 domain.
        key: u64,
    },
    /// Unifying a dictionary column's dictionaries across batches needs more
    /// distinct values than its key type can index.
    #[error("dictionary column `{column}`: {values} distinct values overflow key type {key_type}")]
    DictionaryOverflow {
        /// Field name.
        column: String,
        /// The dictionary key type.
        key_type: DataType,
        /// Distinct values needed.
        values: usize,
    },
    /// SQLite failed.
    #[error("sqlite: {context}: {source}")]
    Sqlite {
        /// What was being done.
        context: &'static str,
        /// rusqlite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// An earlier error left the builder in an unknown state; start again.
    #[error("the builder failed earlier and cannot be used any more")]
    Poisoned,
    /// The published file could not be reopened.
    #[error(transparent)]
    Open(#[from] OpenError),
}

/// A point lookup or scan failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// `key_col` is not the provider's key column.
    #[error("key column `{requested}` requested, but this sidecar is keyed by `{key_column}`")]
    UnknownKeyColumn {
        /// The name passed to `fetch_by_keys`.
        requested: String,
        /// The provider's key column.
        key_column: String,
    },
    /// A projection index is not a column of the provider's schema.
    #[error("projection index {index} is out of range for a schema with {columns} columns")]
    ProjectionOutOfRange {
        /// The offending index.
        index: usize,
        /// Columns in the schema.
        columns: usize,
    },
    /// A record batch of the file failed validation when it was first used.
    #[error(transparent)]
    Corrupt(#[from] OpenError),
    /// Arrow failed while gathering the rows.
    #[error("gathering rows: {0}")]
    Arrow(#[source] ArrowError),
    /// SQLite failed (or held a value that does not fit the Arrow schema).
    #[error("sqlite: {context}: {source}")]
    Sqlite {
        /// What was being done.
        context: &'static str,
        /// rusqlite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A SQLite value does not match the column's Arrow type.
    #[error("sqlite column `{column}`: {reason}")]
    SqliteValue {
        /// Field name.
        column: String,
        /// What was wrong.
        reason: String,
    },
    /// The blocking task running the query panicked or was cancelled.
    #[error("lookup task failed: {0}")]
    Task(String),
}

/// Any error of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// See [`OpenError`].
    #[error(transparent)]
    Open(#[from] OpenError),
    /// See [`BuildError`].
    #[error(transparent)]
    Build(#[from] BuildError),
    /// See [`FetchError`].
    #[error(transparent)]
    Fetch(#[from] FetchError),
}

impl From<FetchError> for DataFusionError {
    fn from(e: FetchError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}

impl From<OpenError> for DataFusionError {
    fn from(e: OpenError) -> Self {
        DataFusionError::External(Box::new(e))
    }
}
