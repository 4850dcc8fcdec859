//! QWP ingest sessions: one per WebSocket connection on `/write/v4`.
//!
//! A session numbers every binary frame from 0, decodes it with the
//! connection's symbol dictionary, plans it whole against the catalog
//! ([`plan`]: targets, coercions, names, limits; nothing changes if it is
//! refused), converts it into Arrow batches of the target tables
//! ([`convert`]), and either keeps them pending (`FLAG_DEFER_COMMIT`) or
//! commits them, with everything pending, as one transaction. Acks are sent
//! in frame order as commits complete:
//!
//! - OK (`0x00`, cumulative sequence, the tables committed and their
//!   transaction numbers) once the transaction is written and visible;
//! - durable ack (`0x02`) once it is fsync'd, if the client asked for them;
//!   if the fsync fails, an error (`INTERNAL_ERROR`) for that frame and the
//!   connection is closed (1011): a durable ack will never come;
//! - an error (status, sequence, message) for a frame that cannot be
//!   applied; nothing of it is applied, the pending group is dropped, and the
//!   session ignores later frames until the client reconnects (SPEC §9.2).
//!
//! Bounds: a frame's rows and converted bytes ([`FrameLimits`]); a
//! connection's uncommitted (deferred) rows ([`SessionOptions::max_pending_bytes`]),
//! also counted against the server-wide budget
//! ([`Database::reserve_uncommitted`]); its SYMBOL id maps
//! ([`SessionOptions::max_symbol_cache_entries`]). A session with nothing
//! owed that receives nothing for [`SessionOptions::idle_timeout`] (or
//! [`SessionOptions::deferred_idle_timeout`] while a deferred group is
//! open) is closed and its pending rows rolled back, so a quiet or
//! half-open client cannot pin the WAL. The session stops reading the
//! socket while [`SessionOptions::max_in_flight`] commits are outstanding,
//! and while storage holds more unsealed rows than it may
//! ([`Database::memory_available`]).

pub mod coerce;
pub mod convert;
pub mod group;
pub mod plan;
pub mod symbol_cache;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use quiver_qwp::{
    IngressDecoder, IngressResponse, Limits, StatusCode, TableSeqTxn, encode_ingress_response,
};
use quiver_storage::{CommitReceipt, Committed, Database, StorageError};
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use convert::BlockConverter;
use group::PendingGroup;
pub use plan::FrameLimits;

/// A failure to apply a frame, reported in an error ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestError {
    /// The QWP status.
    pub status: StatusCode,
    /// What went wrong, naming table and column where known.
    pub message: String,
    /// The column whose type or values failed, where one did (line
    /// protocol ingest turns it into a line number).
    pub column: Option<String>,
    /// The first row of the block whose value was refused, where known.
    pub row: Option<usize>,
}

impl IngestError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        IngestError {
            status,
            message: message.into(),
            column: None,
            row: None,
        }
    }

    /// The same error, about `column`.
    pub fn about_column(mut self, column: &str) -> Self {
        self.column = Some(column.to_string());
        self
    }
}

impl From<StorageError> for IngestError {
    fn from(e: StorageError) -> Self {
        let status = match &e {
            StorageError::SchemaMismatch { .. } | StorageError::InvalidBatch { .. } => {
                StatusCode::SCHEMA_MISMATCH
            }
            e if e.is_client_fault() => StatusCode::PARSE_ERROR,
            _ => StatusCode::INTERNAL_ERROR,
        };
        IngestError::new(status, e.to_string())
    }
}

/// Per-session settings.
#[derive(Debug, Clone)]
pub struct SessionOptions {
    /// The client asked for durable acks (and got `X-QWP-Durable-Ack: enabled`).
    pub durable_acks: bool,
    /// Commits outstanding before the session stops reading.
    pub max_in_flight: usize,
    /// Largest uncommitted (deferred) group per connection, in converted
    /// bytes (default 1 GiB).
    pub max_pending_bytes: usize,
    /// What one frame may materialise.
    pub frame_limits: FrameLimits,
    /// Entries the SYMBOL id maps may hold together (default 4,194,304,
    /// 16 MiB).
    pub max_symbol_cache_entries: usize,
    /// A session with nothing owed that receives nothing for this long is
    /// closed (default 300 s, QuestDB's HTTP connection timeout).
    pub idle_timeout: Duration,
    /// The same while a deferred group is open (default 60 s): its rows are
    /// rolled back, so it stops pinning the WAL.
    pub deferred_idle_timeout: Duration,
    /// Decoder limits.
    pub limits: Limits,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            durable_acks: false,
            max_in_flight: 64,
            max_pending_bytes: 1 << 30,
            frame_limits: FrameLimits::default(),
            max_symbol_cache_entries: 4 << 20,
            idle_timeout: Duration::from_secs(300),
            deferred_idle_timeout: Duration::from_secs(60),
            limits: Limits::default(),
        }
    }
}

/// What the next OK-stream ack waits for.
enum AckItem {
    /// A commit: OK when it completes.
    Commit {
        seq: i64,
        rows: u64,
        committed: oneshot::Receiver<quiver_storage::Result<Committed>>,
        durable: Option<oneshot::Receiver<quiver_storage::Result<()>>>,
    },
    /// A frame with nothing to commit: OK as soon as it is its turn.
    Ready { seq: i64 },
    /// A frame that failed.
    Error { seq: i64, error: IngestError },
}

/// Where a session is (one enum, not flags; transitions are the methods
/// of [`IngestSession`] that set it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SessionState {
    /// Reading and applying frames.
    Open,
    /// A frame failed: later frames are read and ignored until the client
    /// reconnects.
    Broken,
    /// The client left (or the socket failed): the acks owed are settled,
    /// then the session ends.
    Draining,
    /// The server is stopping: no more reads; the acks owed are sent, then
    /// the socket is closed (1001).
    Stopping,
}

/// One connection's ingest state.
pub struct IngestSession {
    db: Arc<Database>,
    options: SessionOptions,
    decoder: IngressDecoder,
    converter: BlockConverter,
    state: SessionState,
    next_seq: i64,
    /// The deferred frames' rows.
    pending: PendingGroup,
    acks: VecDeque<AckItem>,
    durable: VecDeque<DurableWait>,
    /// Bytes of binary frames received.
    bytes: u64,
    /// Rows of committed (acked) transactions.
    rows: u64,
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

enum Event {
    Ack(Option<Resolved>),
    Durable(Option<DurableOutcome>),
    Frame(Option<Result<Message, WsError>>),
    MemoryAvailable,
    Idle,
    Stop,
}

impl IngestSession {
    /// A session for a new connection.
    pub fn new(db: Arc<Database>, options: SessionOptions) -> Self {
        IngestSession {
            converter: BlockConverter::new(db.clone(), options.max_symbol_cache_entries),
            decoder: IngressDecoder::new(options.limits.clone()),
            pending: PendingGroup::new(
                options.max_pending_bytes,
                "send a frame without FLAG_DEFER_COMMIT sooner (max_pending_bytes)",
            ),
            db,
            options,
            state: SessionState::Open,
            next_seq: 0,
            acks: VecDeque::new(),
            durable: VecDeque::new(),
            bytes: 0,
            rows: 0,
        }
    }

    /// The client left.
    fn peer_closed(&mut self) {
        tracing::trace!(state = ?self.state, "peer closed");
        self.state = SessionState::Draining;
    }

    /// The server is stopping.
    fn stop(&mut self) {
        if matches!(self.state, SessionState::Open | SessionState::Broken) {
            tracing::trace!(state = ?self.state, "stopping");
            self.state = SessionState::Stopping;
        }
    }

    /// A frame failed: its error is owed, nothing pending survives, later
    /// frames are ignored.
    fn fail(&mut self, seq: i64, error: IngestError) {
        tracing::info!(seq, status = ?error.status, message = %error.message, "frame rejected");
        self.drop_pending();
        if self.state == SessionState::Open {
            self.state = SessionState::Broken;
        }
        self.acks.push_back(AckItem::Error { seq, error });
    }

    fn drop_pending(&mut self) {
        self.pending.clear();
    }

    fn owes_nothing(&self) -> bool {
        self.acks.is_empty() && self.durable.is_empty()
    }

    /// Serves the connection until the client leaves, the server stops, or
    /// it is idle too long.
    pub async fn run(mut self, mut ws: Ws, peer: SocketAddr, mut stop: watch::Receiver<bool>) {
        if *stop.borrow() {
            self.stop();
        }
        let mut waiting_for_memory = false;
        let mut memory_waits = 0u64;
        // The last frame received or ack sent (idleness counts from it).
        let mut last_frame = Instant::now();
        let mut idle = false;
        loop {
            if matches!(self.state, SessionState::Draining | SessionState::Stopping)
                && self.owes_nothing()
            {
                break;
            }
            let reading = matches!(self.state, SessionState::Open | SessionState::Broken);
            let wants_read = reading && self.acks.len() < self.options.max_in_flight;
            let memory_full = wants_read && self.db.over_memory_limit();
            if memory_full && !waiting_for_memory {
                memory_waits += 1;
                let unsealed_bytes = self.db.unsealed_bytes();
                if memory_waits == 1 {
                    tracing::info!(%peer, unsealed_bytes, "ingest paused: unsealed rows over the memory limit; waiting for sealing (later pauses of this session log at debug)");
                } else {
                    tracing::debug!(%peer, unsealed_bytes, "ingest paused for sealing");
                }
            }
            waiting_for_memory = memory_full;
            let can_read = wants_read && !memory_full;
            // Idle: reading, nothing owed, not held back by the server.
            let idle_limit = match self.pending.is_empty() {
                true => self.options.idle_timeout,
                false => self.options.deferred_idle_timeout,
            };
            let idle_armed = can_read && self.owes_nothing();
            let event = tokio::select! {
                biased;
                item = next_ack(&mut self.acks), if !self.acks.is_empty() => Event::Ack(item),
                d = next_durable(&mut self.durable), if !self.durable.is_empty() => Event::Durable(d),
                _ = self.db.memory_available(), if memory_full => Event::MemoryAvailable,
                msg = ws.next(), if can_read => Event::Frame(msg),
                _ = stop.changed(), if reading => Event::Stop,
                _ = tokio::time::sleep_until(last_frame + idle_limit), if idle_armed => Event::Idle,
            };
            match event {
                Event::Ack(Some(item)) => {
                    if let Err(e) = self.send_ack(&mut ws, item).await {
                        tracing::debug!(%peer, error = %e, "ack not delivered; closing");
                        return;
                    }
                    // Idleness counts from the last exchange, not from a
                    // frame whose commit took long.
                    last_frame = Instant::now();
                }
                Event::Ack(None) => {}
                Event::Durable(Some(outcome)) => match outcome.result {
                    Ok(()) => {
                        tracing::trace!(lsn = outcome.lsn, tables = ?outcome.tables, "durable ack");
                        let response = IngressResponse::DurableAck {
                            tables: table_seq_txns(outcome.tables, outcome.lsn),
                        };
                        if send_response(&mut ws, &response).await.is_err() {
                            return;
                        }
                    }
                    Err(reason) => {
                        // The rows may be lost: say so for this frame and
                        // end the connection (no durable ack will come).
                        tracing::error!(%peer, seq = outcome.seq, %reason, "durable ack failed");
                        let response = IngressResponse::Error {
                            status: StatusCode::INTERNAL_ERROR,
                            sequence: outcome.seq,
                            message: quiver_qwp_truncate(
                                &format!("the write could not be made durable: {reason}"),
                                1000,
                            )
                            .into(),
                        };
                        let _ = send_response(&mut ws, &response).await;
                        close(
                            &mut ws,
                            CloseCode::Error,
                            "the write could not be made durable",
                        )
                        .await;
                        return;
                    }
                },
                Event::Durable(None) => {}
                Event::Frame(None) => self.peer_closed(),
                Event::Frame(Some(Ok(msg))) => match msg {
                    Message::Binary(bytes) => {
                        last_frame = Instant::now();
                        let seq = self.next_seq;
                        self.next_seq += 1;
                        self.bytes += bytes.len() as u64;
                        if self.state == SessionState::Broken {
                            tracing::debug!(%peer, seq, "frame ignored: the connection failed earlier");
                            continue;
                        }
                        // A bug while applying a frame must not leave the
                        // client without an answer: it gets an error, and
                        // the connection takes no more frames.
                        let handled = std::panic::AssertUnwindSafe(self.handle_frame(&bytes, seq))
                            .catch_unwind()
                            .await;
                        if handled.is_err() {
                            tracing::error!(%peer, seq, "applying a frame panicked (a bug)");
                            self.fail(
                                seq,
                                IngestError::new(
                                    StatusCode::INTERNAL_ERROR,
                                    "the server failed while applying this frame",
                                ),
                            );
                        }
                    }
                    Message::Text(_) => {
                        close(
                            &mut ws,
                            CloseCode::Unsupported,
                            "text frames are not supported; QWP is binary",
                        )
                        .await;
                        self.peer_closed();
                    }
                    Message::Close(_) => self.peer_closed(),
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {
                        last_frame = Instant::now();
                    }
                },
                Event::Frame(Some(Err(e))) => {
                    match &e {
                        WsError::Capacity(CapacityError::MessageTooLong { size, max_size }) => {
                            tracing::warn!(%peer, size, max_size, "frame over the advertised maximum; closing with 1009");
                            close(
                                &mut ws,
                                CloseCode::Size,
                                &format!("frame of {size} bytes exceeds the maximum of {max_size}"),
                            )
                            .await;
                        }
                        WsError::Protocol(p) => {
                            tracing::debug!(%peer, error = %p, "WebSocket protocol error; closing with 1002");
                            close(&mut ws, CloseCode::Protocol, &p.to_string()).await;
                        }
                        other => tracing::debug!(%peer, error = %other, "connection ended"),
                    }
                    self.peer_closed();
                }
                Event::MemoryAvailable => {}
                Event::Idle => {
                    let pending_rows = self.pending.row_count();
                    tracing::info!(%peer, idle_secs = idle_limit.as_secs(), pending_rows, "closing an idle ingest session; its uncommitted rows are rolled back");
                    self.drop_pending();
                    close(
                        &mut ws,
                        CloseCode::Away,
                        &format!(
                            "idle for {} s; uncommitted rows rolled back",
                            idle_limit.as_secs()
                        ),
                    )
                    .await;
                    idle = true;
                    break;
                }
                Event::Stop => self.stop(),
            }
        }
        if self.state == SessionState::Stopping {
            close(&mut ws, CloseCode::Away, "server shutting down").await;
        }
        tracing::info!(
            %peer,
            frames = self.next_seq,
            bytes = self.bytes,
            rows = self.rows,
            memory_waits,
            symbol_cache_resets = self.converter.symbol_cache().resets,
            idle,
            "ingest session ended"
        );
    }

    async fn handle_frame(&mut self, bytes: &[u8], seq: i64) {
        match self.apply_frame(bytes).await {
            Ok(true) => {}
            Ok(false) => {
                // The rows leave the uncommitted budget for the committer's
                // (bounded by `max_in_flight` and then the memory limit).
                let txn = self.pending.take();
                if txn.is_empty() {
                    self.acks.push_back(AckItem::Ready { seq });
                } else {
                    let rows = txn.row_count() as u64;
                    let CommitReceipt { committed, durable } =
                        self.db.commit(txn, self.options.durable_acks);
                    self.acks.push_back(AckItem::Commit {
                        seq,
                        rows,
                        committed,
                        durable,
                    });
                }
            }
            Err(error) => self.fail(seq, error),
        }
    }

    /// Decodes, plans and converts a frame, adding its rows to the pending
    /// transaction. Returns whether the frame defers its commit.
    async fn apply_frame(&mut self, bytes: &[u8]) -> Result<bool, IngestError> {
        let (message, outcome) = self
            .decoder
            .decode(bytes)
            .map_err(|e| IngestError::new(e.status(), e.to_string()))?;
        if outcome.redefined {
            self.converter.clear_symbol_caches();
        }
        self.pending
            .add(
                &self.db,
                &mut self.converter,
                &message.tables,
                self.decoder.dictionary(),
                &self.options.frame_limits,
            )
            .await?;
        if message.defer_commit {
            // Write the deferred rows to the WAL now, so the frame that
            // commits the group only names them.
            self.pending.stage(&self.db)?;
        }
        Ok(message.defer_commit)
    }

    async fn send_ack(&mut self, ws: &mut Ws, item: Resolved) -> Result<(), WsError> {
        let response = match item {
            Resolved::Ready { seq } => IngressResponse::Ok {
                sequence: seq,
                tables: vec![],
            },
            Resolved::Error { seq, error } => IngressResponse::Error {
                status: error.status,
                sequence: seq,
                message: quiver_qwp_truncate(
                    &format!(
                        "{} (the connection accepts no more frames; reconnect)",
                        error.message
                    ),
                    1000,
                )
                .into(),
            },
            Resolved::Committed {
                seq,
                rows,
                result: Ok(c),
                durable,
            } => {
                self.rows += rows;
                if let Some(d) = durable {
                    self.durable.push_back(DurableWait {
                        seq,
                        tables: c.tables.clone(),
                        lsn: c.lsn,
                        rx: d,
                    });
                }
                IngressResponse::Ok {
                    sequence: seq,
                    tables: table_seq_txns(c.tables, c.lsn),
                }
            }
            Resolved::Committed {
                seq,
                result: Err(e),
                ..
            } => {
                if self.state == SessionState::Open {
                    self.state = SessionState::Broken;
                }
                self.drop_pending();
                let error = IngestError::from(e);
                IngressResponse::Error {
                    status: error.status,
                    sequence: seq,
                    message: quiver_qwp_truncate(&error.message, 1000).into(),
                }
            }
        };
        tracing::trace!(?response, "ack");
        send_response(ws, &response).await
    }
}

/// The (table, transaction number) pairs of an ack: every table a
/// transaction wrote, numbered by its lsn (which stays far below `i64::MAX`).
fn table_seq_txns(tables: Vec<String>, lsn: u64) -> Vec<TableSeqTxn<'static>> {
    let seq_txn = i64::try_from(lsn).unwrap_or(i64::MAX);
    tables
        .into_iter()
        .map(|t| TableSeqTxn {
            table: t.into(),
            seq_txn,
        })
        .collect()
}

/// An ack whose outcome is known.
enum Resolved {
    Committed {
        seq: i64,
        rows: u64,
        result: quiver_storage::Result<Committed>,
        durable: Option<oneshot::Receiver<quiver_storage::Result<()>>>,
    },
    Ready {
        seq: i64,
    },
    Error {
        seq: i64,
        error: IngestError,
    },
}

/// Waits for the oldest ack's outcome and removes it. Cancel-safe: the item
/// stays queued until its outcome is in.
async fn next_ack(acks: &mut VecDeque<AckItem>) -> Option<Resolved> {
    let result = match acks.front_mut()? {
        AckItem::Commit { committed, .. } => {
            Some(committed.await.unwrap_or(Err(StorageError::Closed)))
        }
        _ => None,
    };
    Some(match acks.pop_front()? {
        AckItem::Commit {
            seq, rows, durable, ..
        } => Resolved::Committed {
            seq,
            rows,
            result: result.unwrap_or(Err(StorageError::Closed)),
            durable,
        },
        AckItem::Ready { seq } => Resolved::Ready { seq },
        AckItem::Error { seq, error } => Resolved::Error { seq, error },
    })
}

/// A committed frame waiting for its durable ack.
struct DurableWait {
    seq: i64,
    tables: Vec<String>,
    lsn: u64,
    rx: oneshot::Receiver<quiver_storage::Result<()>>,
}

/// What became of a durable wait.
struct DurableOutcome {
    seq: i64,
    tables: Vec<String>,
    lsn: u64,
    /// `Err` with the reason if the rows could not be made durable.
    result: Result<(), String>,
}

/// Waits for the oldest durable ack and removes it (cancel-safe).
async fn next_durable(durable: &mut VecDeque<DurableWait>) -> Option<DurableOutcome> {
    let result = match (&mut durable.front_mut()?.rx).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the database closed".to_string()),
    };
    let w = durable.pop_front()?;
    Some(DurableOutcome {
        seq: w.seq,
        tables: w.tables,
        lsn: w.lsn,
        result,
    })
}

/// How long sending one ack may take: a client that reads nothing for
/// this long (a zero TCP window) is dropped, so it cannot hold its
/// uncommitted rows and the WAL files they pin forever.
const SEND_TIMEOUT: Duration = Duration::from_secs(60);

async fn send_response(ws: &mut Ws, response: &IngressResponse<'_>) -> Result<(), WsError> {
    let mut out = Vec::with_capacity(64);
    encode_ingress_response(response, &mut out);
    match tokio::time::timeout(SEND_TIMEOUT, ws.send(Message::Binary(out.into()))).await {
        Ok(sent) => sent,
        Err(_) => Err(WsError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client read no ack for 60 s",
        ))),
    }
}

async fn close(ws: &mut Ws, code: CloseCode, reason: &str) {
    let reason = quiver_qwp_truncate(reason, 120);
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    // A client that reads nothing does not hold the session.
    let _ = tokio::time::timeout(Duration::from_secs(5), ws.close(Some(frame))).await;
}

/// Cuts a message to `max` bytes at a character boundary (a close reason
/// must fit a control frame; an error ack's message is at most 1,024 bytes).
fn quiver_qwp_truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
