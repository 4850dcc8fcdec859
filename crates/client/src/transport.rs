//! One WebSocket connection to a QWP endpoint: the HTTP upgrade with QWP's
//! headers, failover across the connection string's endpoints, binary
//! frames both ways.
//!
//! It owns the socket and nothing of QWP's meaning: what a frame says is
//! the ingest connection's (or the query connection's) business. Pings are
//! answered by the WebSocket layer; a close, a text frame or an I/O error
//! is an error for the caller, who then drops the connection.

use std::io;
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use base64::Engine as _;
use tungstenite::client::ClientRequestBuilder;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{HeaderMap, Uri};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message, WebSocket};

use crate::conf::{Auth, ClientConf, Endpoint};
use crate::error::{ClientError, Result};

/// The largest frame accepted from the server.
const MAX_INBOUND_FRAME: usize = 256 << 20;

/// An upgraded connection (see the module docs).
#[derive(Debug)]
pub(crate) struct Transport {
    socket: WebSocket<TcpStream>,
    endpoint: Endpoint,
}

impl Transport {
    /// Connects to the first endpoint of `conf` that accepts the upgrade
    /// of `path` with `headers` (besides authentication), trying them in
    /// order. Returns the upgrade response's headers. Refused credentials
    /// end the search (another endpoint would refuse them too).
    pub(crate) fn connect(
        conf: &ClientConf,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<(Transport, HeaderMap)> {
        if conf.tls {
            return Err(ClientError::Unsupported("wss:: (TLS)"));
        }
        let mut last = None;
        for endpoint in &conf.endpoints {
            match Self::connect_one(conf, endpoint, path, headers) {
                Ok(done) => return Ok(done),
                Err(e @ ClientError::Unauthorized { .. }) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Connect {
            endpoint: Endpoint::new("", 0),
            reason: "the connection string has no endpoint".into(),
        }))
    }

    fn connect_one(
        conf: &ClientConf,
        endpoint: &Endpoint,
        path: &str,
        headers: &[(&str, String)],
    ) -> Result<(Transport, HeaderMap)> {
        let failed = |reason: String| ClientError::Connect {
            endpoint: endpoint.clone(),
            reason,
        };
        let stream =
            open_socket(endpoint, conf.connect_timeout).map_err(|e| failed(e.to_string()))?;
        let uri: Uri = format!("ws://{endpoint}{path}")
            .parse()
            .map_err(|e| failed(format!("not a valid address: {e}")))?;
        let mut request = ClientRequestBuilder::new(uri);
        for (name, value) in headers {
            request = request.with_header(*name, value.clone());
        }
        match &conf.auth {
            Auth::None => {}
            Auth::Basic { username, password } => {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("{username}:{password}"));
                request = request.with_header("Authorization", format!("Basic {token}"));
            }
            Auth::Token(token) => {
                request = request.with_header("Authorization", format!("Bearer {token}"));
            }
        }
        let config = WebSocketConfig::default()
            .max_message_size(Some(MAX_INBOUND_FRAME))
            .max_frame_size(Some(MAX_INBOUND_FRAME));
        let (socket, response) =
            match tungstenite::client::client_with_config(request, stream, Some(config)) {
                Ok(done) => done,
                Err(HandshakeError::Failure(tungstenite::Error::Http(response))) => {
                    let status = response.status().as_u16();
                    if status == 401 || status == 403 {
                        return Err(ClientError::Unauthorized {
                            endpoint: endpoint.clone(),
                            status,
                        });
                    }
                    let body = response
                        .body()
                        .as_deref()
                        .map(|b| String::from_utf8_lossy(&b[..b.len().min(512)]).into_owned())
                        .unwrap_or_default();
                    return Err(failed(format!("upgrade refused with HTTP {status} {body}")));
                }
                Err(e) => return Err(failed(format!("upgrade failed: {e}"))),
            };
        // The handshake's timeout is the connect timeout; after it, reads
        // wait as long as the server takes to answer.
        socket
            .get_ref()
            .set_read_timeout(None)
            .map_err(|e| failed(e.to_string()))?;
        let (parts, _) = response.into_parts();
        Ok((
            Transport {
                socket,
                endpoint: endpoint.clone(),
            },
            parts.headers,
        ))
    }

    /// The endpoint this connection is to.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn broken(&self, e: impl std::fmt::Display) -> ClientError {
        ClientError::Transport {
            endpoint: self.endpoint.clone(),
            reason: e.to_string(),
        }
    }

    /// Sends one binary frame.
    pub(crate) fn send(&mut self, frame: Vec<u8>) -> Result<()> {
        self.socket
            .send(Message::binary(frame))
            .map_err(|e| self.broken(e))
    }

    /// Waits for the next binary frame (pings are answered meanwhile).
    pub(crate) fn receive(&mut self) -> Result<tungstenite::Bytes> {
        loop {
            match self.socket.read().map_err(|e| self.broken(e))? {
                Message::Binary(frame) => return Ok(frame),
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                Message::Text(_) => {
                    return Err(ClientError::Protocol {
                        endpoint: self.endpoint.clone(),
                        reason: "a text frame (QWP frames are binary)".into(),
                    });
                }
                Message::Close(close) => {
                    let why = close.map_or_else(
                        || "without a reason".to_owned(),
                        |c| format!("with code {} {}", u16::from(c.code), c.reason),
                    );
                    return Err(self.broken(format!("the server closed the connection {why}")));
                }
            }
        }
    }

    /// Closes the connection politely (errors ignored: it is going away).
    pub(crate) fn close(&mut self) {
        let _ = self.socket.close(None);
        let _ = self.socket.flush();
    }
}

/// A TCP connection to one of the endpoint's addresses.
fn open_socket(endpoint: &Endpoint, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host has no address");
    for addr in (endpoint.host.as_str(), endpoint.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(timeout))?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}
