//! QWP egress sessions: one per WebSocket connection on `/read/v1` (SPEC
//! §4, §9.5).
//!
//! The session sends SERVER_INFO first, then serves one query at a time:
//! a QUERY_REQUEST runs through the query engine ([`QueryEngine`]) and its
//! rows go out as RESULT_BATCH frames (schema in batch 0 only, at most
//! `max_batch_rows` rows and `max_frame_len` bytes each, SYMBOL values
//! through the connection's delta dictionary, timestamps Gorilla-encoded
//! where that is smaller, zstd bodies when the client asked for them),
//! then RESULT_END; a failure is a QUERY_ERROR with the fitting status, and
//! the connection stays usable. While a result streams the session keeps
//! reading the socket: CANCEL stops the query (its stream is dropped, which
//! stops the scan), CREDIT refills a client-set byte budget (the stream
//! pauses when it is spent), and a second QUERY_REQUEST is refused.
//!
//! Results are pulled batch by batch from the engine as the socket takes
//! them, so server memory is bounded by a batch, not by the result.

mod batcher;
pub mod binds;
pub mod columns;
mod outbox;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use self::batcher::ResultBatcher;
use arrow::array::RecordBatch;
use futures_util::StreamExt;
use quiver_qwp::egress::response::role;
use quiver_qwp::{
    BatchEncoding, ClientMessage, ColumnDef, Limits, ResultBatch, ServerInfo, ServerMessage,
    StatusCode, decode_client_message, encode_server_message,
};
use quiver_sql::{
    QueryEngine, QueryError, QueryErrorKind, QueryOutput, QueryStream, StatementKind,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use crate::websocket::{ClientMessage as WsMessage, FrameError, FrameReader, close_code};

use columns::{ResultDictionary, WireType, encode_column};

/// SERVER_INFO capability: the server parses the `query_flags` trailer.
const CAP_QUERY_FLAGS: u32 = 0x2;
/// SERVER_INFO capability: the server honours a query's `timeout_ms`.
const CAP_QUERY_TIMEOUT: u32 = 0x8;

/// Per-connection settings.
#[derive(Debug, Clone)]
pub struct EgressOptions {
    /// Most rows per RESULT_BATCH (default 16,384, QuestDB's; the client's
    /// `X-QWP-Max-Batch-Rows` can lower it).
    pub max_batch_rows: usize,
    /// Largest frame sent, header included (default 16 MiB).
    pub max_frame_len: usize,
    /// zstd level when the client accepts zstd bodies.
    pub zstd_level: Option<i32>,
    /// Past this many entries (or 8 MiB of strings) the connection's SYMBOL
    /// dictionary is reset before the next query (default 100,000).
    pub max_dictionary_entries: u64,
    /// Decoder limits for client frames.
    pub limits: Limits,
}

impl Default for EgressOptions {
    fn default() -> Self {
        EgressOptions {
            max_batch_rows: 16_384,
            max_frame_len: 16 << 20,
            zstd_level: None,
            max_dictionary_entries: 100_000,
            limits: Limits::default(),
        }
    }
}

/// Bytes of dictionary strings past which it is reset before a query.
const MAX_DICTIONARY_BYTES: usize = 8 << 20;

use self::outbox::{OutFrame, Outbox};

/// A result being sent.
struct Streaming {
    request_id: i64,
    stream: QueryStream,
    /// Joins the engine's small batches (a memtable chunk can be a few
    /// rows) into RESULT_BATCHes of `max_batch_rows`, and lets those of at
    /// least half that through as they are, so a client sees few, large
    /// batches.
    coalescer: ResultBatcher,
    /// The query's stream ended (what the coalescer holds is the rest).
    exhausted: bool,
    wire: Vec<WireType>,
    names: Vec<String>,
    /// The next batch_seq.
    batch_seq: u64,
    rows: u64,
    /// Bytes the client still takes (`None`: no flow control).
    credit: Option<i64>,
    /// When the client's `timeout_ms` runs out, and the timeout.
    deadline: Option<(tokio::time::Instant, u64)>,
}

/// Where a session is.
enum SessionState {
    /// Waiting for a QUERY_REQUEST.
    Idle,
    /// Sending a result.
    Streaming(Box<Streaming>),
}

/// One egress connection.
pub struct EgressSession {
    engine: Arc<QueryEngine>,
    options: EgressOptions,
    dictionary: ResultDictionary,
    /// A CACHE_RESET is owed before the next RESULT_BATCH.
    reset_owed: bool,
    state: SessionState,
    queries: u64,
}

fn status_of(kind: QueryErrorKind) -> StatusCode {
    match kind {
        QueryErrorKind::Invalid | QueryErrorKind::Unsupported => StatusCode::PARSE_ERROR,
        QueryErrorKind::Cancelled => StatusCode::CANCELLED,
        QueryErrorKind::Limit => StatusCode::LIMIT_EXCEEDED,
        _ => StatusCode::INTERNAL_ERROR,
    }
}

/// EXEC_DONE's `op_type`: QuestDB's compiled-query type code (SPEC §9.5).
fn op_type_of(kind: StatementKind) -> u8 {
    match kind {
        StatementKind::Insert => 2,
        StatementKind::TruncateTable => 3,
        StatementKind::AlterTable => 4,
        StatementKind::DropTable => 7,
        StatementKind::CreateTable => 9,
        StatementKind::InsertSelect => 10,
        StatementKind::RenameTable => 12,
        StatementKind::CreateTableAs => 21,
        // A query streams rows and never ends with EXEC_DONE.
        _ => 1,
    }
}

/// What the session does next.
enum Event {
    Frame(Result<Option<WsMessage>, FrameError>),
    /// The coalescer holds a completed batch and credit is left.
    Ready,
    /// The query is exhausted and every batch went out.
    Finished,
    /// The streaming query's timeout ran out.
    TimedOut,
    Batch(Option<Result<RecordBatch, QueryError>>),
    Stop,
}

impl EgressSession {
    /// A session for a new connection.
    pub fn new(engine: Arc<QueryEngine>, options: EgressOptions) -> Self {
        EgressSession {
            engine,
            options,
            dictionary: ResultDictionary::default(),
            reset_owed: false,
            state: SessionState::Idle,
            queries: 0,
        }
    }

    fn encoding(&self) -> BatchEncoding {
        BatchEncoding {
            gorilla: true,
            zstd_level: self.options.zstd_level,
        }
    }

    /// Serves the connection until the client leaves or the server stops.
    pub async fn run<S>(
        mut self,
        io: S,
        max_message_len: usize,
        peer: SocketAddr,
        mut stop: watch::Receiver<bool>,
    ) where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (read, write) = tokio::io::split(io);
        let mut incoming = FrameReader::new(read, max_message_len);
        let mut ws = Outbox::start(write);
        let wall_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_nanos()).ok())
            .unwrap_or(0);
        let info = ServerMessage::ServerInfo(ServerInfo {
            role: role::STANDALONE,
            epoch: 0,
            capabilities: CAP_QUERY_FLAGS | CAP_QUERY_TIMEOUT,
            server_wall_ns: wall_ns,
            cluster_id: "quiver".into(),
            node_id: "".into(),
            zone_id: None,
        });
        if self.send(&mut ws, &info).await.is_err() {
            return;
        }
        loop {
            // Rows go out only while the client's credit lasts; batches the
            // coalescer completed go before more are pulled from the query,
            // and RESULT_END once the query is exhausted and all are sent.
            let deadline = match &self.state {
                SessionState::Streaming(s) => s.deadline,
                SessionState::Idle => None,
            };
            let (ready, finished, streaming) = match &mut self.state {
                SessionState::Streaming(s) => {
                    let credit = s.credit.is_none_or(|c| c > 0);
                    let completed = s.coalescer.has_completed_batch();
                    let pull = credit && !completed && !s.exhausted;
                    (
                        credit && completed,
                        s.exhausted && !completed,
                        pull.then_some(s),
                    )
                }
                SessionState::Idle => (false, false, None),
            };
            let event = tokio::select! {
                biased;
                _ = stop.changed() => Event::Stop,
                _ = sleep_until(deadline) => Event::TimedOut,
                msg = incoming.next() => Event::Frame(msg),
                _ = std::future::ready(()), if ready => Event::Ready,
                _ = std::future::ready(()), if finished => Event::Finished,
                batch = async {
                    match streaming {
                        Some(s) => s.stream.next().await,
                        None => std::future::pending().await,
                    }
                } => Event::Batch(batch),
            };
            let outcome = match event {
                Event::Stop => {
                    close(&mut ws, close_code::AWAY, "server shutting down").await;
                    break;
                }
                Event::Frame(Ok(None)) | Event::Frame(Err(FrameError::Io(_))) => break,
                Event::Frame(Err(e @ FrameError::TooLarge { .. })) => {
                    close(&mut ws, close_code::TOO_BIG, &e.to_string()).await;
                    break;
                }
                Event::Frame(Err(e @ FrameError::Protocol(_))) => {
                    close(&mut ws, close_code::PROTOCOL, &e.to_string()).await;
                    break;
                }
                Event::Frame(Ok(Some(msg))) => match msg {
                    WsMessage::Binary(bytes) => self.handle_client_frame(&mut ws, &bytes).await,
                    WsMessage::Close(_) => {
                        // The closing handshake: answer it, then go.
                        close(&mut ws, close_code::NORMAL, "").await;
                        break;
                    }
                    WsMessage::Text => {
                        close(&mut ws, close_code::UNSUPPORTED, "QWP is binary").await;
                        break;
                    }
                    WsMessage::Ping(payload) => {
                        ws.send(OutFrame::Pong(payload.into())).await.map(|_| true)
                    }
                    WsMessage::Pong => Ok(true),
                },
                Event::Ready => self.send_completed(&mut ws).await,
                Event::Batch(Some(Ok(batch))) => self.coalesce(&mut ws, Some(batch)).await,
                Event::Batch(Some(Err(e))) => {
                    let request_id = self.finish_streaming();
                    self.send_error(&mut ws, request_id, status_of(e.kind), &e.message)
                        .await
                        .map(|_| true)
                }
                Event::Batch(None) => self.coalesce(&mut ws, None).await,
                Event::Finished => self.end_result(&mut ws).await,
                Event::TimedOut => {
                    let ms = deadline.map_or(0, |(_, ms)| ms);
                    let request_id = self.finish_streaming();
                    self.send_error(
                        &mut ws,
                        request_id,
                        StatusCode::QUERY_TIMEOUT,
                        &format!("query timed out after {ms} ms (the client's timeout)"),
                    )
                    .await
                    .map(|_| true)
                }
            };
            match outcome {
                Ok(true) => {}
                Ok(false) | Err(_) => break,
            }
        }
        ws.finish().await;
        tracing::debug!(%peer, queries = self.queries, "egress session ended");
    }

    /// Handles one client frame; `Ok(false)` ends the connection.
    async fn handle_client_frame(&mut self, ws: &mut Outbox, bytes: &[u8]) -> Result<bool, ()> {
        let message = match decode_client_message(bytes, &self.options.limits) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "malformed egress frame; closing");
                close(ws, close_code::PROTOCOL, &e.to_string()).await;
                return Ok(false);
            }
        };
        match message {
            ClientMessage::QueryRequest(request) => {
                if let SessionState::Streaming(_) = self.state {
                    self.send_error(
                        ws,
                        request.request_id,
                        StatusCode::PARSE_ERROR,
                        "one query at a time per connection: the previous one is still streaming",
                    )
                    .await?;
                    return Ok(true);
                }
                self.queries += 1;
                if request.flags.is_some_and(|f| f.reset_dict()) && !self.dictionary.is_empty() {
                    self.dictionary.clear();
                    self.reset_owed = true;
                }
                if self.dictionary.len() >= self.options.max_dictionary_entries
                    || self.dictionary.data_len() >= MAX_DICTIONARY_BYTES
                {
                    self.dictionary.clear();
                    self.reset_owed = true;
                }
                let binds: Result<Vec<_>, String> = request
                    .binds
                    .iter()
                    .enumerate()
                    .map(|(i, b)| binds::bind_value(i, b))
                    .collect();
                let binds = match binds {
                    Ok(b) => b,
                    Err(e) => {
                        self.send_error(ws, request.request_id, StatusCode::PARSE_ERROR, &e)
                            .await?;
                        return Ok(true);
                    }
                };
                tracing::debug!(request_id = request.request_id, sql = %request.sql, binds = binds.len(), "query");
                let timeout_ms = request.flags.and_then(|f| f.timeout_ms);
                let started = tokio::time::Instant::now();
                let deadline = timeout_ms.map(|ms| (started + Duration::from_millis(ms), ms));
                let planned = match deadline {
                    Some((at, _)) => {
                        tokio::time::timeout_at(at, self.engine.execute_with(&request.sql, binds))
                            .await
                    }
                    None => Ok(self.engine.execute_with(&request.sql, binds).await),
                };
                let Ok(planned) = planned else {
                    let ms = timeout_ms.unwrap_or(0);
                    self.send_error(
                        ws,
                        request.request_id,
                        StatusCode::QUERY_TIMEOUT,
                        &format!("query timed out after {ms} ms (the client's timeout)"),
                    )
                    .await?;
                    return Ok(true);
                };
                match planned {
                    Ok(QueryOutput::Rows(stream)) => {
                        let schema = stream.schema();
                        let target = self.options.max_batch_rows.max(1);
                        self.state = SessionState::Streaming(Box::new(Streaming {
                            request_id: request.request_id,
                            coalescer: ResultBatcher::new(Arc::clone(&schema), target),
                            exhausted: false,
                            wire: schema.fields().iter().map(|f| WireType::of(f)).collect(),
                            names: schema.fields().iter().map(|f| f.name().clone()).collect(),
                            stream,
                            batch_seq: 0,
                            rows: 0,
                            deadline,
                            credit: (request.initial_credit > 0)
                                .then(|| i64::try_from(request.initial_credit).unwrap_or(i64::MAX)),
                        }));
                    }
                    Ok(QueryOutput::Done { kind, rows }) => {
                        let done = ServerMessage::ExecDone {
                            request_id: request.request_id,
                            op_type: op_type_of(kind),
                            rows_affected: rows,
                        };
                        self.send(ws, &done).await?;
                    }
                    Err(e) => {
                        self.send_error(ws, request.request_id, status_of(e.kind), &e.message)
                            .await?;
                    }
                }
                Ok(true)
            }
            ClientMessage::Cancel { request_id } => {
                if matches!(&self.state, SessionState::Streaming(s) if s.request_id == request_id) {
                    self.finish_streaming();
                    self.send_error(ws, request_id, StatusCode::CANCELLED, "cancelled by client")
                        .await?;
                }
                Ok(true)
            }
            ClientMessage::Credit {
                request_id,
                additional_bytes,
            } => {
                if let SessionState::Streaming(s) = &mut self.state
                    && s.request_id == request_id
                    && let Some(c) = &mut s.credit
                {
                    *c = c.saturating_add(i64::try_from(additional_bytes).unwrap_or(i64::MAX));
                }
                Ok(true)
            }
        }
    }

    /// Back to idle; returns the request id that was streaming.
    fn finish_streaming(&mut self) -> i64 {
        match std::mem::replace(&mut self.state, SessionState::Idle) {
            SessionState::Streaming(s) => s.request_id,
            SessionState::Idle => -1,
        }
    }

    /// Adds `batch` to the result's coalescer (`None`: the stream ended,
    /// flush what it holds), then sends one completed batch if credit is
    /// left (the loop sends the others as credit allows).
    async fn coalesce(&mut self, ws: &mut Outbox, batch: Option<RecordBatch>) -> Result<bool, ()> {
        let SessionState::Streaming(s) = &mut self.state else {
            return Ok(true);
        };
        let pushed = match batch {
            Some(b) => s.coalescer.push_batch(b),
            None => {
                s.exhausted = true;
                s.coalescer.finish()
            }
        };
        if let Err(e) = pushed {
            let request_id = self.finish_streaming();
            self.send_error(ws, request_id, StatusCode::INTERNAL_ERROR, &e.to_string())
                .await?;
            return Ok(true);
        }
        self.send_completed(ws).await
    }

    /// Sends the coalescer's next completed batch, if any.
    async fn send_completed(&mut self, ws: &mut Outbox) -> Result<bool, ()> {
        let next = match &mut self.state {
            SessionState::Streaming(s) => s.coalescer.next_completed_batch(),
            SessionState::Idle => None,
        };
        match next {
            Some(batch) => self.send_rows(ws, batch).await,
            None => Ok(true),
        }
    }

    /// Sends `batch` as one or more RESULT_BATCH frames.
    async fn send_rows(&mut self, ws: &mut Outbox, batch: RecordBatch) -> Result<bool, ()> {
        let mut offset = 0;
        let total = batch.num_rows();
        let mut chunk = self.options.max_batch_rows.max(1);
        // An empty batch from the stream sends nothing (the schema goes
        // out with the first rows or at the end).
        while offset < total {
            let rows = chunk.min(total - offset);
            let part = batch.slice(offset, rows);
            match self.encode_batch(&part) {
                Err(e) => {
                    let request_id = self.finish_streaming();
                    self.send_error(ws, request_id, StatusCode::INTERNAL_ERROR, &e)
                        .await?;
                    return Ok(true);
                }
                Ok(Some(frame)) => {
                    self.send_batch_frame(ws, frame).await?;
                    offset += rows;
                }
                // Too large for a frame: fewer rows.
                Ok(None) if rows > 1 => chunk = rows / 2,
                Ok(None) => {
                    let request_id = self.finish_streaming();
                    self.send_error(
                        ws,
                        request_id,
                        StatusCode::LIMIT_EXCEEDED,
                        "a single row is larger than the largest frame",
                    )
                    .await?;
                    return Ok(true);
                }
            }
        }
        Ok(true)
    }

    /// One RESULT_BATCH frame of `batch`, or `None` when it is larger than
    /// a frame may be; `Err` says why it cannot be sent.
    fn encode_batch(&mut self, batch: &RecordBatch) -> Result<Option<Vec<u8>>, String> {
        let SessionState::Streaming(s) = &mut self.state else {
            return Ok(None);
        };
        let mark = self.dictionary.mark();
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (array, wire) in batch.columns().iter().zip(&s.wire) {
            columns.push(encode_column(array, wire, &mut self.dictionary)?);
        }
        let has_symbols = s
            .wire
            .iter()
            .any(|w| w.type_code == quiver_qwp::TypeCode::Symbol);
        let message = ServerMessage::ResultBatch(ResultBatch {
            request_id: s.request_id,
            batch_seq: s.batch_seq,
            symbols: self.dictionary.take_delta(has_symbols),
            table_name: "".into(),
            row_count: u32::try_from(batch.num_rows()).unwrap_or(u32::MAX),
            schema: (s.batch_seq == 0).then(|| {
                s.names
                    .iter()
                    .zip(&s.wire)
                    .map(|(n, w)| ColumnDef {
                        name: n.clone().into(),
                        type_code: w.type_code,
                    })
                    .collect()
            }),
            columns,
        });
        // The columns' bytes and a little for headers and the delta.
        let estimate = batch
            .columns()
            .iter()
            .map(|c| c.to_data().get_slice_memory_size().unwrap_or(0))
            .sum::<usize>()
            + 4096;
        let mut frame = Vec::with_capacity(estimate.min(self.options.max_frame_len + 4096));
        let encoding = BatchEncoding {
            gorilla: true,
            zstd_level: self.options.zstd_level,
        };
        encode_server_message(&message, &encoding, &mut frame).map_err(|e| e.to_string())?;
        if frame.len() > self.options.max_frame_len {
            self.dictionary.rewind(mark);
            return Ok(None);
        }
        s.batch_seq += 1;
        s.rows += batch.num_rows() as u64;
        if let Some(c) = &mut s.credit {
            *c = c.saturating_sub(i64::try_from(frame.len()).unwrap_or(i64::MAX));
        }
        Ok(Some(frame))
    }

    /// The stream ended: an empty batch if none went out (the schema), then
    /// RESULT_END.
    async fn end_result(&mut self, ws: &mut Outbox) -> Result<bool, ()> {
        if let SessionState::Streaming(s) = &self.state
            && s.batch_seq == 0
        {
            let empty = RecordBatch::new_empty(s.stream.schema());
            match self.encode_batch(&empty) {
                Ok(Some(frame)) => self.send_batch_frame(ws, frame).await?,
                Ok(None) => {}
                Err(e) => {
                    let request_id = self.finish_streaming();
                    self.send_error(ws, request_id, StatusCode::INTERNAL_ERROR, &e)
                        .await?;
                    return Ok(true);
                }
            }
        }
        let SessionState::Streaming(s) = std::mem::replace(&mut self.state, SessionState::Idle)
        else {
            return Ok(true);
        };
        let end = ServerMessage::ResultEnd {
            request_id: s.request_id,
            final_seq: s.batch_seq.saturating_sub(1),
            total_rows: s.rows,
        };
        self.send(ws, &end).await?;
        Ok(true)
    }

    async fn send_error(
        &mut self,
        ws: &mut Outbox,
        request_id: i64,
        status: StatusCode,
        message: &str,
    ) -> Result<(), ()> {
        let error = ServerMessage::QueryError {
            request_id,
            status,
            message: truncate(message, 1000).into(),
        };
        self.send(ws, &error).await
    }

    async fn send(&mut self, ws: &mut Outbox, message: &ServerMessage<'_>) -> Result<(), ()> {
        let mut frame = Vec::new();
        encode_server_message(message, &self.encoding(), &mut frame).map_err(|_| ())?;
        send_ws(ws, frame).await
    }

    /// Sends a RESULT_BATCH frame, after the CACHE_RESET owed (if any).
    async fn send_batch_frame(&mut self, ws: &mut Outbox, frame: Vec<u8>) -> Result<(), ()> {
        if std::mem::take(&mut self.reset_owed) {
            let reset = ServerMessage::CacheReset { reset_mask: 0x01 };
            self.send(ws, &reset).await?;
        }
        send_ws(ws, frame).await
    }
}

/// Sleeps until the deadline, or forever without one.
async fn sleep_until(deadline: Option<(tokio::time::Instant, u64)>) {
    match deadline {
        Some((at, _)) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn send_ws(ws: &mut Outbox, frame: Vec<u8>) -> Result<(), ()> {
    ws.send(OutFrame::Binary(frame.into())).await
}

/// Queues a close frame (the writer sends it after the frames before it),
/// waiting at most a few seconds for room.
async fn close(ws: &mut Outbox, code: u16, reason: &str) {
    ws.send_soon(OutFrame::Close(code, truncate(reason, 120)))
        .await;
}

fn truncate(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}
