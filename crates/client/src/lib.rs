//! `quiver-client`: a Rust SDK for servers that speak QWP (QuestDB's wire
//! protocol over WebSocket), Quiver's and QuestDB's.
//!
//! Built in slices (issue 13). This far:
//!
//! - [`ClientConf::parse`] reads the official clients' `ws::`/`wss::`
//!   grammar and key names (endpoints for failover, authentication,
//!   durable acks, pool sizes and timeouts, compression, TLS) into typed,
//!   validated settings with the official defaults. Keys of features not
//!   built yet (auto-flush, store-and-forward, reconnect and failover
//!   tuning) are refused as unknown rather than ignored.
//! - [`Client`] is the pool: it lends ingest and query connections to any thread,
//!   opens the minimum eagerly, waits up to the acquire timeout past the
//!   maximum, closes broken or unacknowledged connections instead of
//!   lending them again, replaces idle ones the server closed, and reaps.
//! - [`Sender`] sends [`Chunk`]s (columns borrowed from caller memory,
//!   checked when added, encoded straight into reused frame buffers) as
//!   deferred frames and commits them with [`Sender::sync`]; Arrow batches
//!   go through [`Sender::flush_batch`] or [`Client::send_batch`] with the
//!   official client's type mapping ([`ArrowOptions`]).
//! - [`IngestConnection`] (through [`Writer`]) sends already encoded QWP
//!   frames and reads the server's cumulative acks.
//! - Errors are typed ([`ClientError`], [`ChunkError`]) and carry the
//!   server's status and message, or the table, column and row.
//! - [`Client::query`] runs SQL with positional binds ([`Param`]) on a
//!   pooled query connection and streams the result as Arrow record
//!   batches ([`QueryStream`], a `RecordBatchReader`; [`AsyncQueryStream`]
//!   for async code): every QWP type in its natural Arrow type with the
//!   official client's field metadata, zstd, credit flow control, cancel on
//!   drop; [`Query::execute`] for statements without rows.
//!
//! Nothing is retried behind the caller's back: a refused query would fail
//! again, a statement with effects could run twice, and an ingest commit
//! whose answer was lost is reported as [`ClientError::Unconfirmed`].
//!
//! `wss::` connects over TLS (rustls): the Mozilla roots, or the CA file of
//! `tls_roots`; `tls_verify=unsafe_off` for self-signed test servers.
//!
//! With the `polars` feature, Polars `DataFrame`s and `LazyFrame`s go in
//! through the Arrow path (`Client::send_dataframe`,
//! `Client::send_lazyframe`, `Sender::flush_dataframe`) and results come
//! out as `DataFrame`s (`Query::fetch_dataframe`,
//! `QueryStream::next_dataframe`, `QueryStream::into_dataframe`); the
//! crate re-exports the `polars` it is built with as `quiver_client::polars`.
//!
//! ```
//! use quiver_client::{ClientConf, Endpoint};
//!
//! let conf = ClientConf::parse("ws::addr=db1:9000,db2;request_durable_ack=on;sender_pool_max=8;")?;
//! assert_eq!(conf.endpoints, vec![Endpoint::new("db1", 9000), Endpoint::new("db2", 9000)]);
//! assert!(conf.request_durable_ack);
//! assert_eq!(conf.pool.sender_max, 8);
//! # Ok::<(), quiver_client::ConfError>(())
//! ```
//!
//! Sending columns (needs a server, so not run here):
//!
//! ```no_run
//! use quiver_client::{Ack, Chunk, Client};
//!
//! let client = Client::from_conf("ws::addr=127.0.0.1:9000;")?;
//! let px = [101.5, 101.25];
//! let ts = [1_700_000_000_000_000_000i64, 1_700_000_000_000_000_001];
//! let mut chunk = Chunk::new("trades", 2)?;
//! chunk.f64("px", &px, None)?.at_nanos(&ts)?;
//! let mut sender = client.sender()?;
//! sender.flush(&chunk)?;
//! sender.sync(Ack::Ok)?;
//! # Ok::<(), quiver_client::ClientError>(())
//! ```
//!
//! Querying (needs a server, so not run here):
//!
//! ```no_run
//! use quiver_client::{Client, Param};
//!
//! let client = Client::from_conf("ws::addr=127.0.0.1:9000;")?;
//! let mut rows = client
//!     .query("SELECT * FROM trades WHERE ts > $1")
//!     .bind(Param::timestamp_micros(1_700_000_000_000_000))
//!     .fetch()?;
//! while let Some(batch) = rows.next_batch()? {
//!     println!("{} rows", batch.num_rows());
//! }
//! # Ok::<(), quiver_client::ClientError>(())
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod conf;
#[cfg(feature = "polars")]
mod dataframe;
mod error;
mod ingest;
mod pool;
mod query;
mod sender;
mod tls;
mod transport;

/// Encoding without a connection, for benchmarks (not a stable API).
#[doc(hidden)]
pub mod bench {
    use crate::sender::{Chunk, SymbolTable, encode_chunk_public};

    /// Appends the frame of all of `chunk`'s rows to `out`, as the first
    /// frame of a fresh connection.
    pub fn encode_frame(chunk: &Chunk<'_>, out: &mut Vec<u8>) -> bool {
        encode_chunk_public(chunk, &mut SymbolTable::default(), out)
    }

    /// The frames of `sql`'s result as the server sends them (QWP header
    /// included), read on a fresh query connection of `conf`.
    pub fn capture_result_frames(conf: &str, sql: &str) -> crate::Result<Vec<Vec<u8>>> {
        let conf = crate::ClientConf::parse(conf)?;
        crate::query::capture_result_frames(&conf, sql)
    }

    /// Decodes frames from [`capture_result_frames`] into Arrow record
    /// batches as a query stream does, without a socket; the rows.
    pub fn decode_result_frames(frames: &[Vec<u8>]) -> Result<usize, String> {
        crate::query::decode_result_frames(frames)
    }

    /// A `DataFrame` as the record batches `Sender::flush_dataframe`
    /// would send (all slices).
    #[cfg(feature = "polars")]
    pub fn dataframe_batches(
        frame: &::polars::prelude::DataFrame,
    ) -> crate::Result<Vec<arrow_array::RecordBatch>> {
        crate::dataframe::frame_batches(frame)
    }
}

#[cfg(feature = "polars")]
pub use ::polars;
pub use conf::{Auth, ClientConf, Compression, ConfError, Endpoint, PoolConf, Reap};
#[cfg(feature = "polars")]
pub use dataframe::batch_to_dataframe;
pub use error::{ClientError, Lane, Result};
pub use ingest::{IngestConnection, Ticket};
pub use pool::{Client, LaneStats, Writer};
pub use query::{AsyncQueryStream, Executed, Param, Query, QueryStream, ServerDescription};
pub use quiver_qwp::TypeCode;
pub use sender::{
    Ack, ArrowOptions, Bits, Chunk, ChunkError, Codes, ColumnAs, Designated, Offsets, Sender,
};
