//! `quiver-sql`: SQL over Quiver's stored tables, on DataFusion.
//!
//! - [`QueryEngine`] runs one statement: it parses it, takes one snapshot
//!   of every table the statement names (one LSN for all of them: a
//!   transaction across tables is in all or none, and nothing committed
//!   later is in any), plans it with DataFusion and returns the rows as a
//!   stream of Arrow batches ([`QueryOutput`]).
//! - [`scan::SnapshotScanExec`] reads a snapshot (sealed segments, then
//!   committed memtable rows) on the blocking pool, a batch at a time:
//!   server memory is bounded by the batch size, not the result size, and
//!   dropping the stream stops the read.
//!
//! - [`write`] runs `CREATE TABLE` and `INSERT` through storage's WAL and
//!   commit path, as ingest does.
//! - Queries run on their own runtime ([`executor::QueryExecutor`]), so a
//!   heavy query never holds the threads that serve sockets; every
//!   operator yields regularly (`cooperative`), so dropping a
//!   [`executor::QueryStream`] stops its work promptly.
//!
//! Result columns keep the `quiver.type` field metadata of the table
//! columns they come from where DataFusion keeps it, so the wire layer can
//! send each column as the QuestDB type it was stored as.
//!
//! This crate knows nothing of sockets, QWP or HTTP.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod cooperative;
pub mod dialect;
pub mod engine;
pub mod error;
pub mod executor;
pub mod prune;
pub mod result_types;
pub mod scan;
pub mod write;

pub use engine::{QueryEngine, QueryOptions, QueryOutput, StatementKind};
pub use error::{QueryError, QueryErrorKind};
pub use executor::QueryStream;
