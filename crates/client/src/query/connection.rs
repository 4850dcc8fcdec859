//! One QWP egress connection (`/read/v1`): QUERY_REQUEST, CREDIT and
//! CANCEL out, decoded server frames in.
//!
//! The upgrade asks for the result encodings the settings accept
//! (`X-QWP-Accept-Encoding`) and a row cap (`X-QWP-Max-Batch-Rows`); the
//! response must name QWP version 1, and SERVER_INFO must be the first
//! frame. The connection then runs one query at a time:
//!
//! ```text
//!            start(request)              terminator for the request
//!   Idle ─────────────────────▶ Streaming ─────────────────────────▶ Idle
//!     ▲                            │ transport, protocol or decode error
//!     │                            ▼
//!     └──── (never) ────────── Broken   (closed by the pool, not lent again)
//! ```
//!
//! The connection-scoped symbol dictionary and the schema of the streaming
//! result live in the [`EgressDecoder`]. What a frame means for the caller
//! (Arrow batches, credit) is the query stream's business; this module
//! must not build Arrow data.

use std::time::Duration;

use quiver_qwp::{
    ClientMessage, EgressDecoder, Limits, QueryRequest, ServerMessage, SymbolDictionary,
    encode_client_message,
};
use tungstenite::Bytes;

use crate::conf::{ClientConf, Compression, Endpoint};
use crate::error::{ClientError, Result};
use crate::transport::{Transport, Upgrade};

use super::SymbolKeys;

/// Where query connections upgrade.
const READ_PATH: &str = "/read/v1";
/// How long the first frame (SERVER_INFO) may take after the upgrade (the
/// official `server_info_timeout_ms`).
const SERVER_INFO_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a query connection is in its protocol (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ConnectionState {
    /// No query running: a new one may start.
    Idle,
    /// A query's result is streaming; only its frames may arrive.
    Streaming {
        /// The query.
        request_id: i64,
    },
    /// An error left the connection in an unknown state.
    Broken,
}

/// What the server said about itself (SERVER_INFO).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerDescription {
    /// `0` standalone, `1` primary, `2` replica, `3` primary catching up.
    pub role: u8,
    /// Capability bits (`0x2`: the server reads query flags).
    pub capabilities: u32,
    /// The cluster's name.
    pub cluster_id: String,
    /// The node's name.
    pub node_id: String,
    /// Whether result batches may come zstd-compressed.
    pub zstd: bool,
}

/// A decoded server frame and what reading it needs.
#[derive(Debug)]
pub(crate) struct Received<'c> {
    /// The message.
    pub(crate) message: ServerMessage<'c>,
    /// The connection's symbol dictionary, with the frame's delta applied.
    pub(crate) dictionary: &'c SymbolDictionary,
    /// Scratch for SYMBOL columns, kept with the dictionary it maps.
    pub(crate) keys: &'c mut SymbolKeys,
    /// The frame's length on the wire (QWP header included), what the
    /// server debits from credit.
    pub(crate) wire_len: usize,
}

/// An egress connection (see the module docs).
#[derive(Debug)]
pub(crate) struct QueryConnection {
    transport: Transport,
    decoder: EgressDecoder,
    /// Decompressed zstd bodies.
    scratch: Vec<u8>,
    /// SYMBOL key scratch (one entry per dictionary entry, kept across
    /// queries as the dictionary is).
    keys: SymbolKeys,
    /// The frame being decoded (kept so the decoder can borrow it).
    frame: Bytes,
    server: ServerDescription,
    state: ConnectionState,
    /// The id of the next query (from 1, as the official clients count).
    next_request_id: i64,
    request_timeout: Duration,
}

impl QueryConnection {
    /// Connects (failing over across the endpoints) and reads SERVER_INFO.
    pub(crate) fn connect(conf: &ClientConf) -> Result<QueryConnection> {
        let accept = match conf.compression {
            Compression::Raw => "raw".to_owned(),
            Compression::Zstd => format!("zstd;level={}", conf.compression_level),
            Compression::Auto => format!("zstd;level={},raw", conf.compression_level),
        };
        let mut headers = vec![
            ("X-QWP-Max-Version", "1".to_owned()),
            (
                "X-QWP-Client-Id",
                concat!("quiver-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            ),
            ("X-QWP-Accept-Encoding", accept),
        ];
        if let Some(rows) = conf.max_batch_rows {
            headers.push(("X-QWP-Max-Batch-Rows", rows.to_string()));
        }
        let limits = Limits::egress_client();
        let upgrade = Upgrade {
            path: READ_PATH,
            headers: &headers,
            max_inbound: usize::try_from(limits.max_message_len).unwrap_or(usize::MAX),
        };
        let (mut transport, zstd) = Transport::connect(conf, &upgrade, |endpoint, response| {
            let header = |name: &str| response.get(name).and_then(|v| v.to_str().ok());
            match header("x-qwp-version").map(str::trim) {
                Some("1") => {}
                None => return Err(protocol(endpoint, "no X-QWP-Version in the upgrade")),
                Some(v) => {
                    return Err(protocol(
                        endpoint,
                        &format!("QWP version {v} (this client speaks 1)"),
                    ));
                }
            }
            let zstd = match header("x-qwp-content-encoding").map(str::trim) {
                None => false,
                Some(v) => {
                    let codec = v.split(';').next().unwrap_or("").trim();
                    if codec.eq_ignore_ascii_case("zstd") {
                        true
                    } else if codec.eq_ignore_ascii_case("raw")
                        || codec.eq_ignore_ascii_case("identity")
                    {
                        false
                    } else {
                        return Err(protocol(
                            endpoint,
                            &format!("result encoding {v:?} (raw or zstd expected)"),
                        ));
                    }
                }
            };
            if conf.compression == Compression::Zstd && !zstd {
                return Err(ClientError::Connect {
                    endpoint: endpoint.clone(),
                    reason: "the server does not offer zstd results (compression=zstd)".into(),
                });
            }
            Ok(zstd)
        })?;
        let mut decoder = EgressDecoder::new(limits);
        let mut scratch = Vec::new();
        let endpoint = transport.endpoint().clone();
        let frame = transport
            .receive_within(SERVER_INFO_TIMEOUT.min(conf.request_timeout))?
            .ok_or_else(|| ClientError::Connect {
                endpoint: endpoint.clone(),
                reason: "no SERVER_INFO within 5 s of the upgrade".into(),
            })?;
        let server = match decoder.decode(&frame, &mut scratch) {
            Ok(ServerMessage::ServerInfo(info)) => ServerDescription {
                role: info.role,
                capabilities: info.capabilities,
                cluster_id: info.cluster_id.into_owned(),
                node_id: info.node_id.into_owned(),
                zstd,
            },
            Ok(other) => {
                return Err(protocol(
                    &endpoint,
                    &format!("the first frame is {} (SERVER_INFO expected)", kind(&other)),
                ));
            }
            Err(e) => return Err(protocol(&endpoint, &format!("SERVER_INFO: {e}"))),
        };
        Ok(QueryConnection {
            transport,
            decoder,
            scratch,
            keys: SymbolKeys::default(),
            frame: Bytes::new(),
            server,
            state: ConnectionState::Idle,
            next_request_id: 1,
            request_timeout: conf.request_timeout,
        })
    }

    /// The endpoint this connection is to.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        self.transport.endpoint()
    }

    /// What the server said about itself.
    pub(crate) fn server(&self) -> &ServerDescription {
        &self.server
    }

    pub(crate) fn state(&self) -> ConnectionState {
        self.state
    }

    /// Marks the connection unusable (the pool closes it).
    pub(crate) fn set_broken(&mut self) {
        self.state = ConnectionState::Broken;
    }

    /// Whether the connection is open with nothing unread (see
    /// [`Transport::is_quiet`]).
    pub(crate) fn is_quiet(&self) -> bool {
        self.transport.is_quiet()
    }

    /// Sends a QUERY_REQUEST with the next request id (filled in here) and
    /// returns that id. Refused unless idle; a request the codec refuses
    /// (a bad bind) leaves the connection idle and usable.
    pub(crate) fn start(&mut self, mut request: QueryRequest<'_>) -> Result<i64> {
        match self.state {
            ConnectionState::Idle => {}
            ConnectionState::Streaming { request_id } => {
                return Err(ClientError::Usage(format!(
                    "query {request_id} is still streaming on this connection"
                )));
            }
            ConnectionState::Broken => {
                return Err(ClientError::Usage("the connection is broken".into()));
            }
        }
        let request_id = self.next_request_id;
        request.request_id = request_id;
        let mut out = Vec::new();
        encode_client_message(&ClientMessage::QueryRequest(request), &mut out)
            .map_err(|e| ClientError::Usage(format!("the query cannot be sent: {e}")))?;
        self.send(out)?;
        self.next_request_id = request_id.checked_add(1).unwrap_or(1);
        self.state = ConnectionState::Streaming { request_id };
        Ok(request_id)
    }

    /// Grants the streaming query `bytes` more credit.
    pub(crate) fn credit(&mut self, request_id: i64, additional_bytes: u64) -> Result<()> {
        let mut out = Vec::new();
        encode_client_message(
            &ClientMessage::Credit {
                request_id,
                additional_bytes,
            },
            &mut out,
        )
        .map_err(|e| ClientError::Usage(e.to_string()))?;
        self.send(out)
    }

    /// Asks the server to stop the streaming query (it answers with a
    /// terminator, after batches already under way).
    pub(crate) fn cancel(&mut self, request_id: i64) -> Result<()> {
        let mut out = Vec::new();
        encode_client_message(&ClientMessage::Cancel { request_id }, &mut out)
            .map_err(|e| ClientError::Usage(e.to_string()))?;
        self.send(out)
    }

    fn send(&mut self, frame: Vec<u8>) -> Result<()> {
        let sent = self.transport.send(frame);
        if sent.is_err() {
            self.state = ConnectionState::Broken;
        }
        sent
    }

    /// Reads and decodes the next frame of the streaming query, waiting up
    /// to `within`. A terminator for the query makes the connection idle.
    /// Any failure breaks it.
    pub(crate) fn next_message(&mut self, within: Duration) -> Result<Received<'_>> {
        let ConnectionState::Streaming { request_id } = self.state else {
            return Err(ClientError::Usage("no query is streaming".into()));
        };
        // The previous frame goes first, so the WebSocket layer can read
        // the next one into the same allocation.
        self.frame = Bytes::new();
        let received = self.transport.receive_within(within);
        let frame = match received {
            Ok(Some(frame)) => frame,
            Ok(None) => {
                self.state = ConnectionState::Broken;
                return Err(ClientError::Timeout {
                    endpoint: self.endpoint().clone(),
                    waited: within,
                });
            }
            Err(e) => {
                self.state = ConnectionState::Broken;
                return Err(e);
            }
        };
        self.frame = frame;
        let len = self.frame.len();
        let endpoint = self.transport.endpoint();
        let message = match self.decoder.decode(&self.frame, &mut self.scratch) {
            Ok(m) => m,
            Err(e) => {
                self.state = ConnectionState::Broken;
                return Err(ClientError::Protocol {
                    endpoint: endpoint.clone(),
                    reason: format!("a result frame of query {request_id} does not decode: {e}"),
                });
            }
        };
        let belongs = match &message {
            ServerMessage::ResultBatch(b) => b.request_id == request_id,
            ServerMessage::ResultEnd { request_id: id, .. }
            | ServerMessage::ExecDone { request_id: id, .. } => *id == request_id,
            // -1: an error the server could not attribute, which ends the
            // only query there is.
            ServerMessage::QueryError { request_id: id, .. } => *id == request_id || *id == -1,
            ServerMessage::CacheReset { .. } => true,
            ServerMessage::ServerInfo(_) => false,
        };
        if !belongs {
            self.state = ConnectionState::Broken;
            return Err(ClientError::Protocol {
                endpoint: endpoint.clone(),
                reason: format!("{} while query {request_id} streams", kind(&message)),
            });
        }
        if matches!(
            message,
            ServerMessage::ResultEnd { .. }
                | ServerMessage::ExecDone { .. }
                | ServerMessage::QueryError { .. }
        ) {
            self.state = ConnectionState::Idle;
        }
        Ok(Received {
            message,
            dictionary: self.decoder.dictionary(),
            keys: &mut self.keys,
            wire_len: len,
        })
    }

    /// The last frame read, as it came (for [`crate::bench`]).
    pub(crate) fn last_frame(&self) -> &[u8] {
        &self.frame
    }

    /// The request timeout of the settings.
    pub(crate) fn request_timeout(&self) -> Duration {
        self.request_timeout
    }
}

fn protocol(endpoint: &Endpoint, reason: &str) -> ClientError {
    ClientError::Protocol {
        endpoint: endpoint.clone(),
        reason: reason.to_owned(),
    }
}

/// A message kind's name, for errors.
fn kind(message: &ServerMessage<'_>) -> &'static str {
    match message {
        ServerMessage::ServerInfo(_) => "SERVER_INFO",
        ServerMessage::ResultBatch(_) => "RESULT_BATCH",
        ServerMessage::ResultEnd { .. } => "RESULT_END",
        ServerMessage::QueryError { .. } => "QUERY_ERROR",
        ServerMessage::ExecDone { .. } => "EXEC_DONE",
        ServerMessage::CacheReset { .. } => "CACHE_RESET",
    }
}
