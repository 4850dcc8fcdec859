//! Storage errors. Each names the table, column or file it concerns. After
//! an I/O failure while writing, the database refuses all further work
//! ([`StorageError::Poisoned`]): what is on disk may no longer match memory.
//! [`StorageError::is_client_fault`] tells a request's own fault (refused,
//! nothing written) from the server's.

use std::path::PathBuf;

/// Shorthand for storage results.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// Everything that can go wrong in the storage engine.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// A file operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file is not what Quiver wrote (not a torn tail: that is cut).
    #[error("{path} is corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What is wrong.
        reason: &'static str,
    },
    /// A value's type conflicts with the column's stored type.
    #[error("column type mismatch [table={table}, column={column}, stored={stored}, sent={sent}]")]
    SchemaMismatch {
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// The column's type.
        stored: String,
        /// The type that was sent.
        sent: String,
    },
    /// A table of that name exists (an exclusive create).
    #[error("table already exists [table={table}]")]
    TableExists {
        /// Table.
        table: String,
    },
    /// A table or column name is not acceptable.
    #[error("invalid name {name:?} [table={table}]: {reason}")]
    InvalidName {
        /// Table.
        table: String,
        /// The name.
        name: String,
        /// Why.
        reason: &'static str,
    },
    /// A column change (drop, rename) that the table's columns refuse.
    #[error("{reason} [table={table}, column={column}]")]
    InvalidColumnChange {
        /// Table.
        table: String,
        /// The column named.
        column: String,
        /// Why.
        reason: &'static str,
    },
    /// A column type's parameter is out of range.
    #[error("invalid column type [table={table}, column={column}]: {reason}")]
    InvalidColumnType {
        /// Table.
        table: String,
        /// Column.
        column: String,
        /// Why.
        reason: &'static str,
    },
    /// A request is larger than a storage limit allows (see
    /// `crate::limits`); nothing of it was written.
    #[error("{what}: {value} is over the limit of {limit}")]
    LimitExceeded {
        /// What was counted.
        what: &'static str,
        /// How much there was.
        value: u64,
        /// The limit.
        limit: u64,
    },
    /// A table would have more than 2,048 columns.
    #[error("table {table} would have {count} columns, more than 2048")]
    TooManyColumns {
        /// Table.
        table: String,
        /// Column count.
        count: usize,
    },
    /// The table does not exist.
    #[error("table does not exist [table={table}]")]
    TableNotFound {
        /// Table.
        table: String,
    },
    /// A batch handed to a transaction does not fit the table.
    #[error("invalid batch [table={table}]: {reason}")]
    InvalidBatch {
        /// Table.
        table: String,
        /// Why.
        reason: String,
    },
    /// A request the table cannot carry out (dropping rows by time from a
    /// table without a designated timestamp, empty time ranges, ...).
    #[error("{reason} [table={table}]")]
    InvalidRequest {
        /// Table.
        table: String,
        /// Why.
        reason: String,
    },
    /// An earlier I/O failure left the database unusable until restart.
    #[error("the database stopped after an earlier write failure: {0}")]
    Poisoned(String),
    /// The database is shutting down.
    #[error("the database is shut down")]
    Closed,
    /// Arrow refused data (a bug, or a corrupt file).
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
}

impl StorageError {
    /// Whether the request itself was at fault (bad name, type, batch or
    /// size: retrying it cannot succeed), as opposed to the server (I/O,
    /// poisoned, closed, corrupt files).
    pub fn is_client_fault(&self) -> bool {
        matches!(
            self,
            StorageError::SchemaMismatch { .. }
                | StorageError::InvalidName { .. }
                | StorageError::InvalidColumnChange { .. }
                | StorageError::TableExists { .. }
                | StorageError::InvalidColumnType { .. }
                | StorageError::LimitExceeded { .. }
                | StorageError::TooManyColumns { .. }
                | StorageError::TableNotFound { .. }
                | StorageError::InvalidBatch { .. }
                | StorageError::InvalidRequest { .. }
        )
    }

    pub(crate) fn io(
        op: &'static str,
        path: &std::path::Path,
    ) -> impl Fn(std::io::Error) -> StorageError + use<> {
        let path = path.to_path_buf();
        move |source| StorageError::Io {
            op,
            path: path.clone(),
            source,
        }
    }
}
