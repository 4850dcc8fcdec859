//! `quiver-storage`: the storage engine behind Quiver's ack contract.
//!
//! - An OK ("committed") means the transaction's WAL record is written and
//!   its rows are visible to new snapshots; it survives a killed process.
//! - A durable ack means the WAL is fsync'd (group commit: one fsync for
//!   every transaction queued at the time); it survives power loss.
//! - A transaction spans tables and commits all of its rows or none.
//! - Every row gets a stable `u64` row id per table, dense, in commit order;
//!   sealed segments are Arrow IPC files sorted by it.
//! - Recovery replays every whole commit group of records that chain to
//!   each other, cuts what follows (a torn tail, logged), and refuses to
//!   open only when records an fsync covered are damaged or missing.
//! - Nothing too large for the on-disk formats or the limits in [`limits`]
//!   is accepted; after a failed write or fsync the database is poisoned
//!   and refuses all work ([`Database::health`]).
//! - All file I/O goes through [`io::FileSystem`], so tests can fail any
//!   operation or cut the power ([`io::SimulatedDisk`]).
//!
//! The crate owns tables, schemas, the WAL, commits, recovery, segments, row
//! ids and symbol dictionaries. It knows nothing of sockets, QWP or SQL.
//!
//! ```
//! use quiver_storage::{ColumnSchema, ColumnType, Database, Options, PartitionBy, TableSchema, Transaction};
//! use arrow::array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
//! use std::sync::Arc;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let db = Database::open(dir.path(), Options::default()).unwrap();
//! let schema = TableSchema {
//!     name: "trades".into(),
//!     columns: vec![
//!         ColumnSchema::new("qty", ColumnType::Long),
//!         ColumnSchema::new("timestamp", ColumnType::Timestamp),
//!     ],
//!     designated_timestamp: Some(1),
//!     partition_by: PartitionBy::Day,
//!     version: 0,
//!     has_dropped_columns: false,
//!     ttl: None,
//! };
//! let table = db.create_table(schema).blocking_recv().unwrap().unwrap();
//! let batch = RecordBatch::try_new(
//!     table.schema().stored_schema(),
//!     vec![
//!         Arc::new(Int64Array::from(vec![7, 8])),
//!         Arc::new(TimestampMicrosecondArray::from(vec![1, 2]).with_timezone("UTC")),
//!     ],
//! ).unwrap();
//! let mut txn = Transaction::new();
//! txn.add(table, batch).unwrap();
//! let receipt = db.commit(txn, true);
//! receipt.committed.blocking_recv().unwrap().unwrap();
//! receipt.durable.unwrap().blocking_recv().unwrap().unwrap();
//! assert_eq!(db.snapshot("trades").unwrap().row_count(), 2);
//! ```

#![warn(missing_docs)]
// One `unsafe` block: mapping sealed segment files (`io::OsFileSystem::map_read`).
#![deny(unsafe_code)]

pub mod calendar;
pub mod db;
pub mod error;
pub mod format;
#[doc(hidden)]
pub mod fuzzing;
pub mod io;
pub mod limits;
pub mod rows;
pub mod schema;
pub mod segment;
pub mod symbols;
pub mod table;
pub mod wal;

pub use db::{
    CommitReceipt, Committed, Database, DroppedRows, Options, TableInfo, Transaction,
    UncommittedReservation,
};
pub use error::{Result, StorageError};
pub use schema::{
    ColumnSchema, ColumnType, DESIGNATED_METADATA_KEY, DESIGNATED_TIMESTAMP_NAME, PartitionBy,
    SchemaChange, TYPE_METADATA_KEY, TableSchema, Ttl, TtlUnit,
};
pub use segment::{ROW_ID_COLUMN, Segment};
pub use symbols::SymbolTable;
pub use table::{
    BatchOrder, ScanRequest, StoredBatch, StoredBlock, StoredReader, Table, TableSnapshot,
};
