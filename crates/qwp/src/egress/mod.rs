//! Egress (`/read/v1`, SPEC §4): the client sends SQL, the server streams
//! columnar result batches.
//!
//! Framing is asymmetric: client frames have **no** 12-byte header and start
//! with `msg_kind`; server frames carry the header, then `msg_kind`.
//!
//! | kind | code | direction | module |
//! |---|---|---|---|
//! | QUERY_REQUEST | `0x10` | C→S | [`request`] |
//! | RESULT_BATCH | `0x11` | S→C | [`response`] |
//! | RESULT_END | `0x12` | S→C | [`response`] |
//! | QUERY_ERROR | `0x13` | S→C | [`response`] |
//! | CANCEL | `0x14` | C→S | [`request`] |
//! | CREDIT | `0x15` | C→S | [`request`] |
//! | EXEC_DONE | `0x16` | S→C | [`response`] |
//! | CACHE_RESET | `0x17` | S→C | [`response`] |
//! | SERVER_INFO | `0x18` | S→C | [`response`] |

pub mod request;
pub mod response;

/// An egress message kind (the first payload byte).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageKind {
    /// C→S: run a statement.
    QueryRequest = 0x10,
    /// S→C: a batch of result rows.
    ResultBatch = 0x11,
    /// S→C: the result is complete.
    ResultEnd = 0x12,
    /// S→C: the query failed.
    QueryError = 0x13,
    /// C→S: cancel a running query.
    Cancel = 0x14,
    /// C→S: grant more flow-control credit.
    Credit = 0x15,
    /// S→C: a non-SELECT statement finished.
    ExecDone = 0x16,
    /// S→C: clear connection-scoped caches.
    CacheReset = 0x17,
    /// S→C: first frame on every connection.
    ServerInfo = 0x18,
}

impl MessageKind {
    /// The kind for a byte, if assigned.
    pub const fn from_u8(b: u8) -> Option<MessageKind> {
        Some(match b {
            0x10 => MessageKind::QueryRequest,
            0x11 => MessageKind::ResultBatch,
            0x12 => MessageKind::ResultEnd,
            0x13 => MessageKind::QueryError,
            0x14 => MessageKind::Cancel,
            0x15 => MessageKind::Credit,
            0x16 => MessageKind::ExecDone,
            0x17 => MessageKind::CacheReset,
            0x18 => MessageKind::ServerInfo,
            _ => return None,
        })
    }

    /// Whether clients send this kind.
    pub const fn is_client_kind(self) -> bool {
        matches!(
            self,
            MessageKind::QueryRequest | MessageKind::Cancel | MessageKind::Credit
        )
    }
}
