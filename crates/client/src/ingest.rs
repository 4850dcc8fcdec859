//! One QWP ingest connection (`/api/v4/write`): frames out, cumulative
//! acks in.
//!
//! The server numbers this connection's frames from 0 and answers with
//! cumulative OKs (every frame up to `sequence` is committed) or an error
//! naming one frame; frames are pipelined, so [`IngestConnection::send`]
//! never waits for an answer and [`IngestConnection::wait_acked`] reads
//! answers until the one asked for. After any error the connection is
//! [`broken`](IngestConnection::is_broken): the server rolled back its
//! uncommitted rows, and a pool must not lend it again.
//!
//! It does not build frames (the sender does, with `quiver-qwp`).

use quiver_qwp::{IngressResponse, decode_ingress_response};

use crate::conf::ClientConf;
use crate::error::{ClientError, Result};
use crate::transport::Transport;

/// Where ingest connections upgrade (the official clients' path).
const WRITE_PATH: &str = "/api/v4/write";
/// The largest frame sent when the server does not say
/// (`X-QWP-Max-Batch-Size`): QWP's ceiling.
const DEFAULT_MAX_FRAME: usize = 16 << 20;

/// An ingest connection (see the module docs).
#[derive(Debug)]
pub struct IngestConnection {
    transport: Transport,
    max_frame: usize,
    durable: bool,
    /// The sequence number of the next frame sent.
    next_sequence: i64,
    /// Every frame up to this one is acknowledged (-1: none yet).
    acked: i64,
    broken: bool,
}

impl IngestConnection {
    /// Connects (failing over across the endpoints) and checks what the
    /// server granted: durable acks when asked for, its frame limit.
    pub fn connect(conf: &ClientConf) -> Result<IngestConnection> {
        let mut headers = vec![("X-QWP-Max-Version", "1".to_owned())];
        headers.push((
            "X-QWP-Client-Id",
            concat!("quiver-client/", env!("CARGO_PKG_VERSION")).to_owned(),
        ));
        if conf.request_durable_ack {
            headers.push(("X-QWP-Request-Durable-Ack", "true".to_owned()));
        }
        let (transport, response) = Transport::connect(conf, WRITE_PATH, &headers)?;
        let header = |name: &str| response.get(name).and_then(|v| v.to_str().ok());
        let endpoint = transport.endpoint().clone();
        match header("x-qwp-version").map(str::trim) {
            None | Some("1") => {}
            Some(v) => {
                return Err(ClientError::Protocol {
                    endpoint,
                    reason: format!("QWP version {v} (this client speaks 1)"),
                });
            }
        }
        let durable =
            header("x-qwp-durable-ack").is_some_and(|v| v.eq_ignore_ascii_case("enabled"));
        if conf.request_durable_ack && !durable {
            return Err(ClientError::DurableAckRefused { endpoint });
        }
        let max_frame = header("x-qwp-max-batch-size")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n > 0)
            .map_or(DEFAULT_MAX_FRAME, |n| n.min(DEFAULT_MAX_FRAME));
        Ok(IngestConnection {
            transport,
            max_frame,
            durable,
            next_sequence: 0,
            acked: -1,
            broken: false,
        })
    }

    /// The largest frame the server accepts.
    pub fn max_frame(&self) -> usize {
        self.max_frame
    }

    /// Whether the server grants durable acks on this connection.
    pub fn durable(&self) -> bool {
        self.durable
    }

    /// Whether an error ended this connection's usefulness.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// Frames sent and not yet acknowledged.
    pub fn unacked(&self) -> i64 {
        self.next_sequence - 1 - self.acked
    }

    /// Sends one encoded ingress message without waiting; returns its
    /// sequence number. A frame over the server's limit is refused before
    /// anything is sent (the connection stays usable).
    pub fn send(&mut self, frame: Vec<u8>) -> Result<i64> {
        self.usable()?;
        if frame.len() > self.max_frame {
            return Err(ClientError::FrameTooLarge {
                len: frame.len(),
                max: self.max_frame,
            });
        }
        let sent = self.transport.send(frame);
        self.note(sent)?;
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        Ok(sequence)
    }

    /// Reads answers until frame `sequence` is acknowledged.
    pub fn wait_acked(&mut self, sequence: i64) -> Result<()> {
        self.usable()?;
        if sequence >= self.next_sequence {
            return Err(ClientError::Protocol {
                endpoint: self.transport.endpoint().clone(),
                reason: format!("frame {sequence} was never sent"),
            });
        }
        while self.acked < sequence {
            let answer = self.read_answer();
            self.note(answer)?;
        }
        Ok(())
    }

    fn usable(&self) -> Result<()> {
        match self.broken {
            true => Err(ClientError::Transport {
                endpoint: self.transport.endpoint().clone(),
                reason: "an earlier error broke this connection".into(),
            }),
            false => Ok(()),
        }
    }

    /// Marks the connection broken when `result` is an error that breaks
    /// it.
    fn note<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            self.broken |= e.breaks_connection();
        }
        result
    }

    fn read_answer(&mut self) -> Result<()> {
        let frame = self.transport.receive()?;
        let endpoint = || self.transport.endpoint().clone();
        let response = decode_ingress_response(&frame).map_err(|e| ClientError::Protocol {
            endpoint: endpoint(),
            reason: format!("an undecodable ack: {e}"),
        })?;
        match response {
            IngressResponse::Ok { sequence, .. } => {
                if sequence < self.acked || sequence >= self.next_sequence {
                    return Err(ClientError::Protocol {
                        endpoint: endpoint(),
                        reason: format!(
                            "an OK for frame {sequence} (acknowledged up to {}, sent up to {})",
                            self.acked,
                            self.next_sequence - 1
                        ),
                    });
                }
                self.acked = sequence;
                Ok(())
            }
            IngressResponse::DurableAck { .. } => Ok(()),
            IngressResponse::Error {
                status,
                sequence,
                message,
            } => Err(ClientError::Server {
                status: status.0,
                sequence,
                message: message.into_owned(),
            }),
        }
    }
}

impl Drop for IngestConnection {
    fn drop(&mut self) {
        self.transport.close();
    }
}
