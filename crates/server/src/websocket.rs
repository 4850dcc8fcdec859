//! WebSocket framing (RFC 6455, the server's side) for egress connections:
//! [`FrameReader`] reads the client's frames and [`FrameWriter`] writes the
//! server's. The handshake is HTTP's (`http.rs`); this module owns only the
//! frames after it, and no policy (the session decides what a ping, a text
//! frame or a close means).
//!
//! Why not tungstenite here: it copies every outgoing frame into its own
//! buffer before writing it, a second pass over every result byte (about
//! 4% of the server's CPU streaming 371 MB in `bench/egress`). The writer
//! here writes a 2-10 byte header and the caller's payload with one
//! vectored write, never copying the payload. Ingest keeps tungstenite.
//!
//! The reader is cancel-safe (a `select!` may drop [`FrameReader::next`]
//! at any await): bytes are only consumed from its buffer once a whole
//! frame is there, and a fragmented message's parts live in the reader.
//! Every length is checked against the message limit before anything is
//! allocated for it.

use std::io::{self, IoSlice};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Close status codes (RFC 6455 §7.4.1).
pub mod close_code {
    /// The purpose of the connection is fulfilled.
    pub const NORMAL: u16 = 1000;
    /// The server is going away.
    pub const AWAY: u16 = 1001;
    /// A protocol error.
    pub const PROTOCOL: u16 = 1002;
    /// A kind of data the endpoint cannot accept.
    pub const UNSUPPORTED: u16 = 1003;
    /// A message too big to process.
    pub const TOO_BIG: u16 = 1009;
}

/// Frame opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// A later part of a fragmented message.
    Continuation,
    /// UTF-8 text.
    Text,
    /// Binary data.
    Binary,
    /// Close, with an optional status code and reason.
    Close,
    /// Ping: answered by a pong with the same payload.
    Ping,
    /// Pong.
    Pong,
}

impl Opcode {
    fn code(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    fn from_code(code: u8) -> Option<Opcode> {
        Some(match code {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            _ => return None,
        })
    }

    fn is_control(self) -> bool {
        matches!(self, Opcode::Close | Opcode::Ping | Opcode::Pong)
    }
}

/// A message from the client.
#[derive(Debug, PartialEq, Eq)]
pub enum ClientMessage {
    /// A binary message (fragments joined).
    Binary(Vec<u8>),
    /// A text message (its content is not kept).
    Text,
    /// A ping and its payload.
    Ping(Vec<u8>),
    /// A pong.
    Pong,
    /// A close, with the status code if the client sent one.
    Close(Option<u16>),
}

/// Why the client's frames cannot be read on.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The connection failed.
    #[error("reading the connection: {0}")]
    Io(#[from] io::Error),
    /// The client broke the protocol (close with 1002).
    #[error("WebSocket protocol error: {0}")]
    Protocol(&'static str),
    /// A message over the limit (close with 1009).
    #[error("a WebSocket message of {len} bytes is over the limit of {limit}")]
    TooLarge {
        /// Its length (so far, for a fragmented one).
        len: u64,
        /// The limit.
        limit: usize,
    },
}

/// A frame's header as read: opcode, FIN, payload length, mask, and how
/// many bytes the header took.
struct Header {
    fin: bool,
    opcode: Opcode,
    len: usize,
    mask: [u8; 4],
    header_len: usize,
}

/// Reads the client's frames (see the module docs).
pub struct FrameReader<R> {
    io: R,
    /// Bytes read; `buf[pos..]` are not consumed yet. Consumed bytes are
    /// dropped once per read, not once per frame (many small frames would
    /// otherwise move the rest of the buffer each time).
    buf: Vec<u8>,
    pos: usize,
    max_message: usize,
    /// A fragmented message being joined: whether it is binary, and its
    /// bytes so far.
    partial: Option<(bool, Vec<u8>)>,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// A reader of messages up to `max_message` bytes.
    pub fn new(io: R, max_message: usize) -> Self {
        FrameReader {
            io,
            buf: Vec::with_capacity(4096),
            pos: 0,
            max_message,
            partial: None,
        }
    }

    /// The next message; `None` when the client closed the connection
    /// without a close frame.
    pub async fn next(&mut self) -> Result<Option<ClientMessage>, FrameError> {
        loop {
            if let Some(message) = self.parse()? {
                return Ok(Some(message));
            }
            self.buf.drain(..self.pos);
            self.pos = 0;
            if self.buf.is_empty() && self.buf.capacity() > 1 << 16 {
                // After a large frame: give the memory back.
                self.buf = Vec::with_capacity(4096);
            }
            self.buf.reserve(4096);
            if self.io.read_buf(&mut self.buf).await? == 0 {
                return match self.buf.is_empty() && self.partial.is_none() {
                    true => Ok(None),
                    false => Err(FrameError::Protocol("the connection ended inside a frame")),
                };
            }
        }
    }

    /// One message from the buffer, consuming its frames, or `None` when
    /// more bytes are needed (nothing consumed then but whole frames of a
    /// fragmented message, which move to `partial`).
    fn parse(&mut self) -> Result<Option<ClientMessage>, FrameError> {
        loop {
            let Some(h) = self.header()? else {
                return Ok(None);
            };
            let start = self.pos + h.header_len;
            let end = start + h.len;
            if self.buf.len() < end {
                // The whole frame must fit the buffer: room for the part
                // still to come (once it is under way: a bare header
                // reserves nothing).
                if self.buf.len() > start {
                    self.buf.reserve(end - self.buf.len());
                }
                return Ok(None);
            }
            let mut payload: Vec<u8> = self.buf[start..end].to_vec();
            self.pos = end;
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= h.mask[i % 4];
            }
            let message = match h.opcode {
                Opcode::Ping => ClientMessage::Ping(payload),
                Opcode::Pong => ClientMessage::Pong,
                Opcode::Close => ClientMessage::Close(match payload.len() {
                    0 => None,
                    1 => return Err(FrameError::Protocol("a close frame of one byte")),
                    _ => Some(u16::from_be_bytes([payload[0], payload[1]])),
                }),
                Opcode::Text | Opcode::Binary if self.partial.is_some() => {
                    return Err(FrameError::Protocol(
                        "a new message before the last one's final fragment",
                    ));
                }
                Opcode::Text | Opcode::Binary if !h.fin => {
                    self.partial = Some((h.opcode == Opcode::Binary, payload));
                    continue;
                }
                Opcode::Text => ClientMessage::Text,
                Opcode::Binary => ClientMessage::Binary(payload),
                Opcode::Continuation => {
                    let Some((binary, mut joined)) = self.partial.take() else {
                        return Err(FrameError::Protocol("a continuation frame with no message"));
                    };
                    if joined.len() + payload.len() > self.max_message {
                        return Err(FrameError::TooLarge {
                            len: (joined.len() + payload.len()) as u64,
                            limit: self.max_message,
                        });
                    }
                    joined.reserve_exact(payload.len());
                    joined.extend_from_slice(&payload);
                    if !h.fin {
                        self.partial = Some((binary, joined));
                        continue;
                    }
                    match binary {
                        true => ClientMessage::Binary(joined),
                        false => ClientMessage::Text,
                    }
                }
            };
            return Ok(Some(message));
        }
    }

    /// The header at the front of the buffer, checked, or `None` when it
    /// is not all there yet.
    fn header(&self) -> Result<Option<Header>, FrameError> {
        let b = &self.buf[self.pos..];
        if b.len() < 2 {
            return Ok(None);
        }
        if b[0] & 0x70 != 0 {
            return Err(FrameError::Protocol(
                "reserved bits set (no extension was agreed)",
            ));
        }
        let fin = b[0] & 0x80 != 0;
        let opcode =
            Opcode::from_code(b[0] & 0x0F).ok_or(FrameError::Protocol("an unknown opcode"))?;
        if b[1] & 0x80 == 0 {
            return Err(FrameError::Protocol("an unmasked frame from the client"));
        }
        let (len, at) = match b[1] & 0x7F {
            126 => match b.get(2..4) {
                Some(l) => (u64::from(u16::from_be_bytes([l[0], l[1]])), 4),
                None => return Ok(None),
            },
            127 => match b.get(2..10) {
                Some(l) => {
                    let mut be = [0u8; 8];
                    be.copy_from_slice(l);
                    (u64::from_be_bytes(be), 10)
                }
                None => return Ok(None),
            },
            n => (u64::from(n), 2),
        };
        if opcode.is_control() && (!fin || len > 125) {
            return Err(FrameError::Protocol(
                "a control frame fragmented or over 125 bytes",
            ));
        }
        let len = usize::try_from(len)
            .ok()
            .filter(|&l| l <= self.max_message)
            .ok_or(FrameError::TooLarge {
                len,
                limit: self.max_message,
            })?;
        let Some(mask) = b.get(at..at + 4) else {
            return Ok(None);
        };
        Ok(Some(Header {
            fin,
            opcode,
            len,
            mask: [mask[0], mask[1], mask[2], mask[3]],
            header_len: at + 4,
        }))
    }
}

/// Writes the server's frames: unmasked, unfragmented, the payload written
/// from the caller's bytes (see the module docs).
pub struct FrameWriter<W> {
    io: W,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// A writer over `io`.
    pub fn new(io: W) -> Self {
        FrameWriter { io }
    }

    /// Writes one frame and flushes it.
    pub async fn write(&mut self, opcode: Opcode, payload: &[u8]) -> io::Result<()> {
        let (header, header_len) = frame_header(opcode, payload.len());
        let (mut h, mut p) = (&header[..header_len], payload);
        while !h.is_empty() || !p.is_empty() {
            let n = self
                .io
                .write_vectored(&[IoSlice::new(h), IoSlice::new(p)])
                .await?;
            if n == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            let from_header = n.min(h.len());
            h = &h[from_header..];
            p = &p[n - from_header..];
        }
        self.io.flush().await
    }

    /// Writes a close frame with `code` and `reason` (cut to fit a control
    /// frame, on a character boundary).
    pub async fn close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        let mut end = reason.len().min(123);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(&reason.as_bytes()[..end]);
        self.write(Opcode::Close, &payload).await
    }

    /// Shuts the writing side down (after the last frame).
    pub async fn shutdown(&mut self) -> io::Result<()> {
        self.io.shutdown().await
    }
}

/// The header of an unmasked final frame of `len` payload bytes.
fn frame_header(opcode: Opcode, len: usize) -> ([u8; 10], usize) {
    let mut h = [0u8; 10];
    h[0] = 0x80 | opcode.code();
    let at = if let Ok(short @ 0..=125) = u8::try_from(len) {
        h[1] = short;
        2
    } else if let Ok(medium) = u16::try_from(len) {
        h[1] = 126;
        h[2..4].copy_from_slice(&medium.to_be_bytes());
        4
    } else {
        h[1] = 127;
        // usize fits u64 on every platform Rust supports.
        h[2..10].copy_from_slice(&u64::try_from(len).unwrap_or(u64::MAX).to_be_bytes());
        10
    };
    (h, at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame.
    fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = [0x12, 0x34, 0x56, 0x78];
        let mut out = vec![(if fin { 0x80 } else { 0 }) | opcode];
        match payload.len() {
            n @ 0..=125 => out.push(0x80 | n as u8),
            n @ 126..=0xFFFF => {
                out.push(0x80 | 126);
                out.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                out.push(0x80 | 127);
                out.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    async fn read_all(bytes: Vec<u8>, max: usize) -> Vec<Result<ClientMessage, String>> {
        // Fed one byte at a time: every split point of every frame.
        let (mut tx, rx) = tokio::io::duplex(1);
        let writer = tokio::spawn(async move {
            let _ = tx.write_all(&bytes).await;
        });
        let mut reader = FrameReader::new(rx, max);
        let mut out = Vec::new();
        loop {
            match reader.next().await {
                Ok(Some(m)) => out.push(Ok(m)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        // The writer may be blocked on bytes the reader never took.
        drop(reader);
        writer.await.unwrap();
        out
    }

    #[tokio::test]
    async fn messages_fragments_and_control_frames() {
        let big: Vec<u8> = (0..70_000u32).map(|i| i as u8).collect();
        let mut bytes = client_frame(true, 0x2, b"hello");
        bytes.extend(client_frame(false, 0x2, b"frag"));
        bytes.extend(client_frame(true, 0x9, b"ping in between"));
        bytes.extend(client_frame(false, 0x0, b"ment"));
        bytes.extend(client_frame(true, 0x0, b"ed"));
        bytes.extend(client_frame(true, 0x2, &big));
        bytes.extend(client_frame(true, 0x2, &big[..300]));
        bytes.extend(client_frame(true, 0x1, "text ✓".as_bytes()));
        bytes.extend(client_frame(true, 0xA, b""));
        bytes.extend(client_frame(true, 0x8, &[0x03, 0xE8, b'b', b'y', b'e']));
        let got = read_all(bytes, 100_000).await;
        assert_eq!(
            got,
            vec![
                Ok(ClientMessage::Binary(b"hello".to_vec())),
                Ok(ClientMessage::Ping(b"ping in between".to_vec())),
                Ok(ClientMessage::Binary(b"fragmented".to_vec())),
                Ok(ClientMessage::Binary(big.clone())),
                Ok(ClientMessage::Binary(big[..300].to_vec())),
                Ok(ClientMessage::Text),
                Ok(ClientMessage::Pong),
                Ok(ClientMessage::Close(Some(1000))),
            ]
        );
    }

    #[tokio::test]
    async fn protocol_errors_and_limits() {
        let cases: Vec<(Vec<u8>, &str)> = vec![
            // Unmasked.
            (vec![0x82, 0x01, 0x00], "unmasked"),
            // Reserved bit.
            (client_frame(true, 0x2 | 0x40, b"x"), "reserved bits"),
            // Unknown opcode.
            (client_frame(true, 0x3, b"x"), "unknown opcode"),
            // A fragmented ping.
            (client_frame(false, 0x9, b"x"), "control frame"),
            // A continuation with nothing to continue.
            (client_frame(true, 0x0, b"x"), "continuation"),
            // A new message inside a fragmented one.
            (
                [
                    client_frame(false, 0x2, b"a"),
                    client_frame(true, 0x2, b"b"),
                ]
                .concat(),
                "before the last one's final fragment",
            ),
            // Over the limit, in one frame and across fragments.
            (client_frame(true, 0x2, &[0u8; 101]), "over the limit"),
            (
                [
                    client_frame(false, 0x2, &[0u8; 60]),
                    client_frame(true, 0x0, &[0u8; 60]),
                ]
                .concat(),
                "over the limit",
            ),
            // A length no buffer is allocated for.
            (
                vec![0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
                "over the limit",
            ),
            // The connection ends inside a frame.
            (
                client_frame(true, 0x2, b"cut")[..5].to_vec(),
                "ended inside a frame",
            ),
        ];
        for (bytes, want) in cases {
            let got = read_all(bytes, 100).await;
            match got.last() {
                Some(Err(e)) => assert!(e.contains(want), "{e} lacks {want}"),
                other => panic!("{want}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn written_frames_have_the_short_and_long_length_forms() {
        for len in [0usize, 125, 126, 65_535, 65_536, 200_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let (tx, mut rx) = tokio::io::duplex(1 << 16);
            let mut w = FrameWriter::new(tx);
            let send = tokio::spawn(async move {
                w.write(Opcode::Binary, &payload).await.unwrap();
                w.shutdown().await.unwrap();
                payload
            });
            let mut got = Vec::new();
            rx.read_to_end(&mut got).await.unwrap();
            let payload = send.await.unwrap();
            let (h, n) = frame_header(Opcode::Binary, len);
            assert_eq!(&got[..n], &h[..n], "{len}");
            assert_eq!(got[0], 0x82);
            assert_eq!(&got[n..], &payload[..], "{len}");
            let declared = match got[1] {
                126 => u64::from(u16::from_be_bytes([got[2], got[3]])),
                127 => u64::from_be_bytes(got[2..10].try_into().unwrap()),
                l => u64::from(l),
            };
            assert_eq!(declared, len as u64);
        }
        // A close frame carries the code and a reason cut to fit.
        let (tx, mut rx) = tokio::io::duplex(1 << 10);
        let mut w = FrameWriter::new(tx);
        w.close(1011, &"é".repeat(100)).await.unwrap();
        w.shutdown().await.unwrap();
        let mut got = Vec::new();
        rx.read_to_end(&mut got).await.unwrap();
        assert_eq!(got[0], 0x88);
        assert!(usize::from(got[1]) <= 125);
        assert_eq!(&got[2..4], &1011u16.to_be_bytes());
        assert!(std::str::from_utf8(&got[4..]).is_ok());
    }
}
