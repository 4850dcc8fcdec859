//! One WebSocket connection to a QWP endpoint: the HTTP upgrade with QWP's
//! headers, failover across the connection string's endpoints, binary
//! frames both ways, every wait bounded.
//!
//! It owns the socket and nothing of QWP's meaning: what a frame says is
//! the ingest connection's (or the query connection's) business, and so is
//! whether an upgrade response is acceptable (a check it passes in, so a
//! refusal moves on to the next endpoint). Pings are answered by the
//! WebSocket layer; a close, a text frame, an I/O error or a timeout is an
//! error for the caller, who then drops the connection.
//!
//! Frames built by the sender go out without a copy
//! ([`Transport::send_in_place`]): the payload is encoded after
//! [`HEADROOM`] free bytes, the WebSocket header is written into them, the
//! payload is masked in place and the whole written with one call.
//! (tungstenite would copy each frame into its own buffer, then mask it.)

use std::hash::BuildHasher;
use std::io::{self, ErrorKind, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tungstenite::client::ClientRequestBuilder;
use tungstenite::handshake::HandshakeError;
use tungstenite::http::{HeaderMap, Uri};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Bytes, Message, WebSocket};

use crate::conf::{Auth, ClientConf, Endpoint};
use crate::error::{ClientError, Result};
use crate::tls::Stream;

/// Bytes kept free before a payload sent with [`Transport::send_in_place`]:
/// the longest client frame header (2, 8 bytes of length, 4 of mask).
pub(crate) const HEADROOM: usize = 14;

/// How long a closing connection may take to send its close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// What an upgrade asks for.
pub(crate) struct Upgrade<'h> {
    /// The path (`/api/v4/write`, `/read/v1`).
    pub(crate) path: &'static str,
    /// QWP headers (authentication is added from the settings).
    pub(crate) headers: &'h [(&'static str, String)],
    /// The largest frame accepted from the server.
    pub(crate) max_inbound: usize,
}

/// An upgraded connection (see the module docs).
#[derive(Debug)]
pub(crate) struct Transport {
    socket: WebSocket<Stream>,
    endpoint: Endpoint,
    /// The read timeout currently set on the socket.
    read_timeout: Option<Duration>,
    /// Keys of the masking-key generator (random per process, from the
    /// OS, as the standard library's hash maps draw theirs).
    mask_keys: std::collections::hash_map::RandomState,
    /// Frames masked so far.
    masked: u64,
}

impl Transport {
    /// Connects to the first endpoint of `conf` that accepts the upgrade
    /// and whose response passes `check`, trying them in order. Refused
    /// credentials end the search (another endpoint would refuse them
    /// too); any other failure moves on, and the last one is returned.
    pub(crate) fn connect<T>(
        conf: &ClientConf,
        upgrade: &Upgrade<'_>,
        check: impl Fn(&Endpoint, &HeaderMap) -> Result<T>,
    ) -> Result<(Transport, T)> {
        let tls = match conf.tls {
            true => Some(crate::tls::client_config(conf)?),
            false => None,
        };
        let mut last = None;
        for endpoint in &conf.endpoints {
            let attempt = Self::connect_one(conf, tls.as_ref(), endpoint, upgrade).and_then(
                |(t, headers)| {
                    let accepted = check(endpoint, &headers)?;
                    Ok((t, accepted))
                },
            );
            match attempt {
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
        tls: Option<&Arc<rustls::ClientConfig>>,
        endpoint: &Endpoint,
        upgrade: &Upgrade<'_>,
    ) -> Result<(Transport, HeaderMap)> {
        let failed = |reason: String| ClientError::Connect {
            endpoint: endpoint.clone(),
            reason,
        };
        let tcp = open_socket(endpoint, conf.connect_timeout).map_err(|e| failed(e.to_string()))?;
        // The TLS handshake runs inside the upgrade's first write and read,
        // under the connect timeout; a certificate refused fails it.
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(config) => crate::tls::wrap(Arc::clone(config), endpoint, tcp)?,
        };
        let uri: Uri = format!("ws://{endpoint}{}", upgrade.path)
            .parse()
            .map_err(|e| failed(format!("not a valid address: {e}")))?;
        let mut request = ClientRequestBuilder::new(uri);
        for (name, value) in upgrade.headers {
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
            .max_message_size(Some(upgrade.max_inbound))
            .max_frame_size(Some(upgrade.max_inbound));
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
        // After the handshake (bounded by the connect timeout), every
        // write and every read waits at most the request timeout.
        let tcp = socket.get_ref().tcp();
        tcp.set_write_timeout(Some(conf.request_timeout))
            .and_then(|()| tcp.set_read_timeout(Some(conf.request_timeout)))
            .map_err(|e| failed(e.to_string()))?;
        let (parts, _) = response.into_parts();
        Ok((
            Transport {
                socket,
                endpoint: endpoint.clone(),
                read_timeout: Some(conf.request_timeout),
                mask_keys: std::collections::hash_map::RandomState::new(),
                masked: 0,
            },
            parts.headers,
        ))
    }

    /// The endpoint this connection is to.
    pub(crate) fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    fn broken(&self, e: tungstenite::Error) -> ClientError {
        let reason = match e {
            tungstenite::Error::Io(io) if is_timeout(&io) => {
                return ClientError::Timeout {
                    endpoint: self.endpoint.clone(),
                    waited: self.read_timeout.unwrap_or_default(),
                };
            }
            e => e.to_string(),
        };
        ClientError::Transport {
            endpoint: self.endpoint.clone(),
            reason,
        }
    }

    /// Sends one binary frame.
    pub(crate) fn send(&mut self, frame: Vec<u8>) -> Result<()> {
        self.socket
            .send(Message::binary(frame))
            .map_err(|e| self.broken(e))
    }

    /// Sends `frame[HEADROOM..]` as one binary frame, writing the header
    /// into the headroom and masking the payload in place (`frame` is
    /// scratch afterwards).
    pub(crate) fn send_in_place(&mut self, frame: &mut [u8]) -> Result<()> {
        let Some(payload_len) = frame.len().checked_sub(HEADROOM) else {
            return Err(ClientError::Usage("a frame without its headroom".into()));
        };
        let key = self.next_mask();
        let mut header = [0u8; HEADROOM];
        header[0] = 0x82; // FIN, binary
        let mut n = 2;
        match (u8::try_from(payload_len), u16::try_from(payload_len)) {
            (Ok(len), _) if len < 126 => header[1] = 0x80 | len,
            (_, Ok(len)) => {
                header[1] = 0x80 | 126;
                header[2..4].copy_from_slice(&len.to_be_bytes());
                n = 4;
            }
            _ => {
                header[1] = 0x80 | 127;
                header[2..10].copy_from_slice(&(payload_len as u64).to_be_bytes());
                n = 10;
            }
        }
        header[n..n + 4].copy_from_slice(&key);
        n += 4;
        let start = HEADROOM - n;
        frame[start..HEADROOM].copy_from_slice(&header[..n]);
        apply_mask(&mut frame[HEADROOM..], key);
        // Whatever the WebSocket layer queued (a pong) goes first, whole.
        self.socket.flush().map_err(|e| self.broken(e))?;
        // Flushed: TLS holds ciphertext until told to write it out.
        let stream = self.socket.get_mut();
        stream
            .write_all(&frame[start..])
            .and_then(|()| stream.flush())
            .map_err(|e| self.broken(tungstenite::Error::Io(e)))
    }

    /// A masking key: the frame counter hashed with SipHash under random
    /// keys, so keys seen do not tell the next one (RFC 6455 §5.3).
    fn next_mask(&mut self) -> [u8; 4] {
        self.masked += 1;
        let bytes = self.mask_keys.hash_one(self.masked).to_le_bytes();
        [bytes[0], bytes[1], bytes[2], bytes[3]]
    }

    /// Sends an empty ping (activity the server may answer durable acks
    /// on).
    pub(crate) fn ping(&mut self) -> Result<()> {
        self.socket
            .send(Message::Ping(Bytes::new()))
            .map_err(|e| self.broken(e))
    }

    /// Waits up to `within` for the next binary frame (pings are answered
    /// meanwhile, and count against the wait); `None` when none came in
    /// time. (A frame whose bytes trickle in may take one more socket
    /// timeout than `within`.)
    pub(crate) fn receive_within(&mut self, within: Duration) -> Result<Option<Bytes>> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(None);
            }
            // Whole milliseconds, so a wait is not reset for a few
            // microseconds' difference.
            let left =
                Duration::from_millis(left.as_millis().max(1).try_into().unwrap_or(u64::MAX));
            if self.read_timeout != Some(left) {
                self.socket
                    .get_ref()
                    .tcp()
                    .set_read_timeout(Some(left))
                    .map_err(|e| self.broken(tungstenite::Error::Io(e)))?;
                self.read_timeout = Some(left);
            }
            let message = match self.socket.read() {
                Ok(m) => m,
                Err(tungstenite::Error::Io(e)) if is_timeout(&e) => return Ok(None),
                Err(e) => return Err(self.broken(e)),
            };
            match message {
                Message::Binary(frame) => return Ok(Some(frame)),
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
                    return Err(ClientError::Transport {
                        endpoint: self.endpoint.clone(),
                        reason: format!("the server closed the connection {why}"),
                    });
                }
            }
        }
    }

    /// Whether the connection is open with nothing unread: an idle
    /// connection the server closed (or wrote to since) is not.
    pub(crate) fn is_quiet(&self) -> bool {
        let tcp = self.socket.get_ref().tcp();
        if tcp.set_nonblocking(true).is_err() {
            return false;
        }
        let mut byte = [0u8; 1];
        let quiet = matches!(tcp.peek(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock);
        tcp.set_nonblocking(false).is_ok() && quiet
    }

    /// Closes the connection: a close frame if it goes out within a
    /// second, then the socket (errors ignored: it is going away).
    pub(crate) fn close(&mut self) {
        let _ = self
            .socket
            .get_ref()
            .tcp()
            .set_write_timeout(Some(CLOSE_TIMEOUT));
        let _ = self.socket.close(None);
        let _ = self.socket.flush();
        let _ = self.socket.get_ref().tcp().shutdown(Shutdown::Both);
    }
}

/// XORs `payload` with `key` repeated (RFC 6455 §5.3), eight bytes at a
/// time.
fn apply_mask(payload: &mut [u8], key: [u8; 4]) {
    let wide = u64::from_le_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut words = payload.chunks_exact_mut(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_le_bytes(w) ^ wide).to_le_bytes());
    }
    // The tail starts at a multiple of 8, so of 4: the key from its start.
    for (b, k) in words.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *b ^= k;
    }
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

/// A TCP connection to one of the endpoint's addresses.
fn open_socket(endpoint: &Endpoint, timeout: Duration) -> io::Result<TcpStream> {
    let mut last = io::Error::new(ErrorKind::NotFound, "the host has no address");
    for addr in (endpoint.host.as_str(), endpoint.port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, timeout) {
            Ok(stream) => {
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(timeout))?;
                stream.set_write_timeout(Some(timeout))?;
                return Ok(stream);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masking_is_the_bytewise_rule_for_every_length_and_undoes_itself() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for len in 0..40 {
            let original: Vec<u8> = (0..len).map(|i| (i * 37 + 5) as u8).collect();
            let mut masked = original.clone();
            apply_mask(&mut masked, key);
            let want: Vec<u8> = original
                .iter()
                .enumerate()
                .map(|(i, b)| b ^ key[i % 4])
                .collect();
            assert_eq!(masked, want, "{len}");
            apply_mask(&mut masked, key);
            assert_eq!(masked, original);
        }
    }
}
