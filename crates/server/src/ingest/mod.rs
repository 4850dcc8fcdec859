//! QWP ingest sessions: one per WebSocket connection on `/write/v4`.
//!
//! A session numbers every binary frame from 0, decodes it with the
//! connection's symbol dictionary, turns its table blocks into Arrow batches
//! of the target tables ([`convert`]), and either keeps them pending
//! (`FLAG_DEFER_COMMIT`) or commits them, with everything pending, as one
//! transaction. Acks are sent in frame order as commits complete:
//!
//! - OK (`0x00`, cumulative sequence, the tables committed and their
//!   transaction numbers) once the transaction is written and visible;
//! - durable ack (`0x02`) once it is fsync'd, if the client asked for them;
//! - an error (status, sequence, message) for a frame that cannot be
//!   applied; nothing of it is applied, the pending group is dropped, and the
//!   session ignores later frames until the client reconnects (SPEC §9.2).
//!
//! Backpressure: the session stops reading the socket while
//! [`SessionOptions::max_in_flight`] commits are outstanding, and while
//! storage holds more unsealed rows than it may
//! ([`Database::memory_available`]), so memory stays bounded when clients
//! send faster than the disk takes segments.

pub mod convert;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use hyper_util::rt::TokioIo;
use quiver_qwp::{
    IngressDecoder, IngressResponse, Limits, StatusCode, TableSeqTxn, encode_ingress_response,
};
use quiver_storage::{CommitReceipt, Committed, Database, StorageError, Transaction};
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use convert::BlockConverter;

/// A failure to apply a frame, reported in an error ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngestError {
    /// The QWP status.
    pub status: StatusCode,
    /// What went wrong, naming table and column where known.
    pub message: String,
}

impl IngestError {
    /// An error with `status`.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        IngestError {
            status,
            message: message.into(),
        }
    }
}

impl From<StorageError> for IngestError {
    fn from(e: StorageError) -> Self {
        let status = match &e {
            StorageError::SchemaMismatch { .. } => StatusCode::SCHEMA_MISMATCH,
            StorageError::InvalidName { .. }
            | StorageError::TooManyColumns { .. }
            | StorageError::InvalidColumnType { .. }
            | StorageError::LimitExceeded { .. } => StatusCode::PARSE_ERROR,
            StorageError::InvalidBatch { .. } => StatusCode::SCHEMA_MISMATCH,
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
    /// Largest pending (deferred) group, in bytes of decoded data.
    pub max_pending_bytes: usize,
    /// Decoder limits.
    pub limits: Limits,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            durable_acks: false,
            max_in_flight: 64,
            max_pending_bytes: 1 << 30,
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

/// One connection's ingest state.
pub struct IngestSession {
    db: Arc<Database>,
    options: SessionOptions,
    decoder: IngressDecoder,
    converter: BlockConverter,
    next_seq: i64,
    pending: Transaction,
    acks: VecDeque<AckItem>,
    durable: VecDeque<DurableWait>,
    /// Set after an error ack: later frames are ignored.
    broken: bool,
    /// Bytes of binary frames received.
    bytes: u64,
    /// Rows of committed (acked) transactions.
    rows: u64,
}

type Ws = WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>;

enum Event {
    Ack(Option<Resolved>),
    Durable(Option<(Vec<String>, u64, bool)>),
    Frame(Option<Result<Message, WsError>>),
    MemoryAvailable,
    Stop,
}

impl IngestSession {
    /// A session for a new connection.
    pub fn new(db: Arc<Database>, options: SessionOptions) -> Self {
        IngestSession {
            converter: BlockConverter::new(db.clone()),
            decoder: IngressDecoder::new(options.limits.clone()),
            db,
            options,
            next_seq: 0,
            pending: Transaction::new(),
            acks: VecDeque::new(),
            durable: VecDeque::new(),
            broken: false,
            bytes: 0,
            rows: 0,
        }
    }

    /// Serves the connection until the client leaves or the server stops.
    pub async fn run(mut self, mut ws: Ws, peer: SocketAddr, mut stop: watch::Receiver<bool>) {
        let mut stopping = *stop.borrow();
        let mut closed = false;
        let mut waiting_for_memory = false;
        let mut memory_waits = 0u64;
        loop {
            if stopping && self.acks.is_empty() && self.durable.is_empty() {
                break;
            }
            if closed && self.acks.is_empty() && self.durable.is_empty() {
                break;
            }
            let wants_read = !stopping && !closed && self.acks.len() < self.options.max_in_flight;
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
            let event = tokio::select! {
                biased;
                item = next_ack(&mut self.acks), if !self.acks.is_empty() => Event::Ack(item),
                d = next_durable(&mut self.durable), if !self.durable.is_empty() => Event::Durable(d),
                _ = self.db.memory_available(), if memory_full => Event::MemoryAvailable,
                msg = ws.next(), if can_read => Event::Frame(msg),
                _ = stop.changed(), if !stopping => Event::Stop,
            };
            match event {
                Event::Ack(Some(item)) => {
                    if let Err(e) = self.send_ack(&mut ws, item).await {
                        tracing::debug!(%peer, error = %e, "ack not delivered; closing");
                        return;
                    }
                }
                Event::Ack(None) => {}
                Event::Durable(Some((tables, lsn, true))) => {
                    tracing::trace!(lsn, ?tables, "durable ack");
                    let response = IngressResponse::DurableAck {
                        tables: tables
                            .into_iter()
                            .map(|t| TableSeqTxn {
                                table: t.into(),
                                seq_txn: lsn as i64,
                            })
                            .collect(),
                    };
                    if send_response(&mut ws, &response).await.is_err() {
                        return;
                    }
                }
                Event::Durable(_) => {}
                Event::Frame(None) => closed = true,
                Event::Frame(Some(Ok(msg))) => match msg {
                    Message::Binary(bytes) => {
                        let seq = self.next_seq;
                        self.next_seq += 1;
                        self.bytes += bytes.len() as u64;
                        if self.broken {
                            tracing::debug!(%peer, seq, "frame ignored: the connection failed earlier");
                            continue;
                        }
                        self.handle_frame(&bytes, seq).await;
                    }
                    Message::Text(_) => {
                        close(
                            &mut ws,
                            CloseCode::Unsupported,
                            "text frames are not supported; QWP is binary",
                        )
                        .await;
                        closed = true;
                    }
                    Message::Close(_) => closed = true,
                    Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
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
                    closed = true;
                }
                Event::MemoryAvailable => {}
                Event::Stop => stopping = true,
            }
        }
        if stopping && !closed {
            close(&mut ws, CloseCode::Away, "server shutting down").await;
        }
        tracing::info!(%peer, frames = self.next_seq, bytes = self.bytes, rows = self.rows, memory_waits, "ingest session ended");
    }

    async fn handle_frame(&mut self, bytes: &[u8], seq: i64) {
        match self.apply_frame(bytes).await {
            Ok(Some(defer)) if defer => {
                if self.pending.memory_size() > self.options.max_pending_bytes {
                    self.fail(
                        seq,
                        IngestError::new(
                            StatusCode::WRITE_ERROR,
                            format!(
                                "deferred rows exceed {} bytes; send a frame without FLAG_DEFER_COMMIT sooner",
                                self.options.max_pending_bytes
                            ),
                        ),
                    );
                }
            }
            Ok(_) => {
                let txn = std::mem::take(&mut self.pending);
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

    /// Decodes and converts a frame, adding its rows to the pending
    /// transaction. Returns whether the frame defers its commit.
    async fn apply_frame(&mut self, bytes: &[u8]) -> Result<Option<bool>, IngestError> {
        let (message, outcome) = self
            .decoder
            .decode(bytes)
            .map_err(|e| IngestError::new(e.status(), e.to_string()))?;
        if outcome.redefined {
            self.converter.clear_symbol_caches();
        }
        // Type conflicts are found before any table or column is created.
        let plan = self.converter.check_frame(&message.tables)?;
        // Every value that goes into an existing column is converted before
        // any table or column is created (see `BlockConverter::prepare`).
        let blocks: Vec<_> = message.tables.iter().filter(|b| b.row_count > 0).collect();
        let mut prepared = Vec::with_capacity(blocks.len());
        for block in &blocks {
            prepared.push(
                self.converter
                    .prepare(block, &plan, self.decoder.dictionary())?,
            );
        }
        let mut txn = Transaction::new();
        for (block, p) in blocks.into_iter().zip(prepared) {
            let (table, batch) = self
                .converter
                .finish(block, p, self.decoder.dictionary())
                .await?;
            txn.add(table, batch)?;
        }
        self.pending.append(txn)?;
        if message.defer_commit {
            // Write the deferred rows to the WAL now, so the frame that
            // commits the group only names them.
            self.db.stage(&mut self.pending)?;
        }
        Ok(Some(message.defer_commit))
    }

    fn fail(&mut self, seq: i64, error: IngestError) {
        tracing::info!(seq, status = ?error.status, message = %error.message, "frame rejected");
        self.pending = Transaction::new();
        self.broken = true;
        self.acks.push_back(AckItem::Error { seq, error });
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
                message: format!(
                    "{} (the connection accepts no more frames; reconnect)",
                    error.message
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
                    self.durable.push_back((c.tables.clone(), c.lsn, d));
                }
                IngressResponse::Ok {
                    sequence: seq,
                    tables: c
                        .tables
                        .into_iter()
                        .map(|t| TableSeqTxn {
                            table: t.into(),
                            seq_txn: c.lsn as i64,
                        })
                        .collect(),
                }
            }
            Resolved::Committed {
                seq,
                result: Err(e),
                ..
            } => {
                self.broken = true;
                let error = IngestError::from(e);
                IngressResponse::Error {
                    status: error.status,
                    sequence: seq,
                    message: error.message.into(),
                }
            }
        };
        tracing::trace!(?response, "ack");
        send_response(ws, &response).await
    }
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

type DurableWait = (
    Vec<String>,
    u64,
    oneshot::Receiver<quiver_storage::Result<()>>,
);

/// Waits for the oldest durable ack and removes it (cancel-safe).
async fn next_durable(durable: &mut VecDeque<DurableWait>) -> Option<(Vec<String>, u64, bool)> {
    let (_, _, rx) = durable.front_mut()?;
    let ok = rx.await.map(|r| r.is_ok()).unwrap_or(false);
    let (tables, lsn, _) = durable.pop_front()?;
    Some((tables, lsn, ok))
}

async fn send_response(ws: &mut Ws, response: &IngressResponse<'_>) -> Result<(), WsError> {
    let mut out = Vec::with_capacity(64);
    encode_ingress_response(response, &mut out);
    ws.send(Message::Binary(out.into())).await
}

async fn close(ws: &mut Ws, code: CloseCode, reason: &str) {
    let reason = quiver_qwp_truncate(reason, 120);
    let _ = ws
        .close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }))
        .await;
}

/// A close reason must fit a control frame (125 bytes with the code).
fn quiver_qwp_truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
