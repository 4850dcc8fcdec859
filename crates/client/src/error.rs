//! What can go wrong talking to a QWP server, typed: callers match on the
//! kind (retry, fail over, give up) and the server's status and message
//! are kept as sent.

use std::time::Duration;

use crate::conf::{ConfError, Endpoint};

/// Which pool lane a borrow was for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// Ingest connections (`/write/v4`).
    Writer,
    /// Query connections (`/read/v1`).
    Reader,
}

impl std::fmt::Display for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Lane::Writer => "writer",
            Lane::Reader => "reader",
        })
    }
}

/// An error of the client.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The connection string.
    #[error(transparent)]
    Conf(#[from] ConfError),
    /// No endpoint could be reached; the last endpoint's error.
    #[error("could not connect to {endpoint}: {reason}")]
    Connect {
        /// The last endpoint tried.
        endpoint: Endpoint,
        /// Why.
        reason: String,
    },
    /// The server refused the credentials (401 or 403): not retried on
    /// other endpoints.
    #[error("{endpoint} refused the credentials (HTTP {status})")]
    Unauthorized {
        /// The endpoint.
        endpoint: Endpoint,
        /// 401 or 403.
        status: u16,
    },
    /// `request_durable_ack=on`, and the server did not grant durable acks.
    #[error("{endpoint} does not grant durable acks (request_durable_ack=on)")]
    DurableAckRefused {
        /// The endpoint.
        endpoint: Endpoint,
    },
    /// TLS settings that cannot be used (`tls_roots` unreadable, a host
    /// that is not a valid server name).
    #[error("TLS: {reason}")]
    Tls {
        /// Why.
        reason: String,
    },
    /// The connection broke (I/O or WebSocket), or the server closed it.
    #[error("connection to {endpoint} failed: {reason}")]
    Transport {
        /// The endpoint.
        endpoint: Endpoint,
        /// Why.
        reason: String,
    },
    /// The server sent something QWP does not allow.
    #[error("{endpoint} broke the protocol: {reason}")]
    Protocol {
        /// The endpoint.
        endpoint: Endpoint,
        /// What was wrong.
        reason: String,
    },
    /// The server refused a frame (a QWP error ack).
    #[error("the server refused frame {sequence} with status {status:#04x}: {message}")]
    Server {
        /// The QWP status (`0x03` schema mismatch, `0x05` parse error, ...).
        status: u8,
        /// The refused frame's sequence number on its connection.
        sequence: i64,
        /// The server's message.
        message: String,
    },
    /// The server refused a statement (QUERY_ERROR); the connection stays
    /// usable.
    #[error("the server refused query {request_id} with status {status:#04x}: {message}")]
    Query {
        /// The query's request id on its connection.
        request_id: i64,
        /// The QWP status (`0x05` parse error, `0x06` internal error,
        /// `0x08` security, `0x0a` cancelled, `0x0b` limit exceeded, ...).
        status: u8,
        /// The server's message.
        message: String,
    },
    /// The server neither took nor answered a frame within
    /// `request_timeout`.
    #[error("{endpoint} did not answer within {waited:?} (request_timeout)")]
    Timeout {
        /// The endpoint.
        endpoint: Endpoint,
        /// How long the client waited.
        waited: Duration,
    },
    /// A call the connection's state does not allow (the connection stays
    /// usable).
    #[error("{0}")]
    Usage(String),
    /// A chunk that cannot be sent as built.
    #[error(transparent)]
    Chunk(#[from] crate::sender::ChunkError),
    /// A frame larger than the server accepts (`X-QWP-Max-Batch-Size`).
    #[error("a frame of {len} bytes is larger than the server's limit of {max} bytes")]
    FrameTooLarge {
        /// The frame's length.
        len: usize,
        /// The server's limit.
        max: usize,
    },
    /// Every connection of a lane stayed borrowed for the whole acquire
    /// timeout.
    #[error("all {max} {lane} connections stayed busy for {waited:?} (acquire_timeout_ms)")]
    PoolExhausted {
        /// The lane.
        lane: Lane,
        /// Its maximum size.
        max: usize,
        /// How long the borrow waited.
        waited: Duration,
    },
    /// A sender was dropped with flushed rows it could not commit (given
    /// to the client's error handler; the rows are lost).
    #[error("a sender dropped with {rows} unsynced rows could not commit them: {cause}")]
    Unsynced {
        /// Rows flushed and not committed.
        rows: u64,
        /// Why the commit failed.
        cause: Box<ClientError>,
    },
    /// A chunk failed part-way (see [`crate::Sender::flush`]): the
    /// connection was closed and the rows flushed since the last sync were
    /// rolled back.
    #[error(
        "a chunk failed part-way, so {rows} rows flushed since the last sync were rolled back: {cause}"
    )]
    ChunkAborted {
        /// Rows rolled back.
        rows: u64,
        /// What failed.
        cause: Box<ClientError>,
    },
    /// A commit left but its answer did not come: the rows may or may not
    /// be committed (a retry may duplicate them). The connection was closed.
    #[error(
        "the commit of {rows} rows was sent but not confirmed (it may or may not have happened): {cause}"
    )]
    Unconfirmed {
        /// Rows the commit covered (0: a durability wait).
        rows: u64,
        /// Why the answer did not come.
        cause: Box<ClientError>,
    },
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
    /// Polars could not convert a frame to Arrow or a result to a
    /// `DataFrame` (feature `polars`); nothing was sent for it.
    #[cfg(feature = "polars")]
    #[error("Polars: {reason}")]
    Polars {
        /// What failed, and Polars' message.
        reason: String,
    },
}

impl ClientError {
    /// Whether the connection that gave this error must not be used again.
    pub fn breaks_connection(&self) -> bool {
        !matches!(
            self,
            ClientError::Conf(_)
                | ClientError::Tls { .. }
                | ClientError::Usage(_)
                | ClientError::Chunk(_)
                | ClientError::FrameTooLarge { .. }
                | ClientError::PoolExhausted { .. }
                | ClientError::Closed
                | ClientError::Query { .. }
        ) && !self.is_polars()
    }

    #[cfg(feature = "polars")]
    fn is_polars(&self) -> bool {
        matches!(self, ClientError::Polars { .. })
    }

    #[cfg(not(feature = "polars"))]
    fn is_polars(&self) -> bool {
        false
    }
}

/// A result of the client.
pub type Result<T, E = ClientError> = std::result::Result<T, E>;
