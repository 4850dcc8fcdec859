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
//! - [`Client`] is the pool: it lends ingest connections ([`Writer`]) to
//!   any thread, opens the minimum eagerly, waits up to the acquire
//!   timeout past the maximum, closes broken connections instead of
//!   lending them again and reaps idle ones.
//! - [`IngestConnection`] sends encoded QWP ingress frames (pipelined) and
//!   reads the server's cumulative acks; errors carry the server's status,
//!   message and the refused frame's sequence ([`ClientError`]).
//!
//! Still to come: the column-major sender that builds frames from caller
//! memory, Arrow and Polars ingest, egress (query connections join the
//! pool then), TLS (`wss::` is parsed, and refused at connect).
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

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod conf;
mod error;
mod ingest;
mod pool;
mod sender;
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
}

pub use conf::{Auth, ClientConf, Compression, ConfError, Endpoint, PoolConf, Reap};
pub use error::{ClientError, Lane, Result};
pub use ingest::{IngestConnection, Ticket};
pub use pool::{Client, LaneStats, Writer};
pub use sender::{
    Ack, ArrowOptions, Bits, Chunk, ChunkError, Codes, ColumnAs, Designated, Offsets, Sender,
};
