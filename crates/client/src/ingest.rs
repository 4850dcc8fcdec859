//! One QWP ingest connection (`/api/v4/write`): frames out, cumulative
//! acks in.
//!
//! The server numbers this connection's frames from 0 and answers with
//! cumulative OKs (every frame up to `sequence` is committed) or an error
//! naming one frame; frames are pipelined, so [`IngestConnection::send`]
//! never waits for an answer and [`IngestConnection::wait_acked`] reads
//! answers until the frame of a [`Ticket`] is acknowledged. A frame sent
//! with `FLAG_DEFER_COMMIT` opens a group the server answers only when a
//! frame without the flag closes it, so waiting inside an open group is
//! refused rather than left to hang. With durable acks granted, each OK's
//! per-table transactions are kept until the server reports them durable
//! ([`IngestConnection::wait_durable`]); nothing else is kept per table.
//!
//! Every wait ends within the request timeout of the last progress. After
//! any error but a usage error the connection is
//! [`broken`](IngestConnection::is_broken): the server rolled back its
//! uncommitted rows, and a pool must not lend it again.
//!
//! It does not build frames (the sender does).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use quiver_qwp::{Flags, IngressResponse, decode_ingress_response};

use crate::conf::ClientConf;
use crate::error::{ClientError, Result};
use crate::sender::SymbolTable;
use crate::transport::{HEADROOM, Transport, Upgrade};

/// Where ingest connections upgrade (the official clients' path).
const WRITE_PATH: &str = "/api/v4/write";
/// The largest frame sent when the server does not say
/// (`X-QWP-Max-Batch-Size`): QWP's ceiling.
const DEFAULT_MAX_FRAME: usize = 16 << 20;
/// The largest answer taken from the server (an OK names at most 65,535
/// tables of at most 65,535 bytes; real ones are far smaller).
const MAX_ANSWER: usize = 16 << 20;
/// How often a connection waiting for durable acks pings (the official
/// `durable_ack_keepalive_interval_millis`): the server sends them on
/// inbound activity.
const DURABLE_KEEPALIVE: Duration = Duration::from_millis(200);

/// Numbers connections, so a ticket is only redeemed where it was issued.
static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

/// A sent frame: which connection, which sequence number on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket {
    connection: u64,
    sequence: i64,
}

impl Ticket {
    /// The frame's sequence number on its connection (from 0).
    pub fn sequence(&self) -> i64 {
        self.sequence
    }
}

/// An ingest connection (see the module docs).
#[derive(Debug)]
pub struct IngestConnection {
    transport: Transport,
    id: u64,
    max_frame: usize,
    durable: bool,
    request_timeout: Duration,
    /// The sequence number of the next frame sent.
    next_sequence: i64,
    /// Every frame up to this one is acknowledged (-1: none yet).
    acked: i64,
    /// The first frame of an open deferred group.
    open_group: Option<i64>,
    /// Committed transactions per table not yet reported durable.
    not_durable: HashMap<String, i64>,
    broken: bool,
    /// The SYMBOL entries sent on this connection (ids are per connection).
    pub(crate) symbols: SymbolTable,
    /// A raw frame defined SYMBOL ids.
    foreign_symbols: bool,
}

/// Whether an ingress frame's delta dictionary defines entries (its count,
/// a varint after the start varint, is not 0). An unreadable frame counts
/// as defining some.
fn defines_symbols(frame: &[u8]) -> bool {
    if !frame.get(5).is_some_and(|&f| Flags(f).delta_symbol_dict()) {
        return false;
    }
    let mut at = quiver_qwp::HEADER_LEN;
    let mut varint = || {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = *frame.get(at)?;
            at += 1;
            v |= u64::from(b & 0x7f).checked_shl(shift)?;
            if b & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    };
    let _start = varint();
    varint() != Some(0)
}

impl IngestConnection {
    /// Connects (failing over across the endpoints: one that does not
    /// speak QWP 1, or does not grant durable acks when they are asked
    /// for, is passed over) and reads the server's frame limit.
    pub(crate) fn connect(conf: &ClientConf) -> Result<IngestConnection> {
        let mut headers = vec![
            ("X-QWP-Max-Version", "1".to_owned()),
            (
                "X-QWP-Client-Id",
                concat!("quiver-client/", env!("CARGO_PKG_VERSION")).to_owned(),
            ),
        ];
        if conf.request_durable_ack {
            headers.push(("X-QWP-Request-Durable-Ack", "true".to_owned()));
        }
        let upgrade = Upgrade {
            path: WRITE_PATH,
            headers: &headers,
            max_inbound: MAX_ANSWER,
        };
        let (transport, (durable, max_frame)) =
            Transport::connect(conf, &upgrade, |endpoint, response| {
                let header = |name: &str| response.get(name).and_then(|v| v.to_str().ok());
                match header("x-qwp-version").map(str::trim) {
                    None | Some("1") => {}
                    Some(v) => {
                        return Err(ClientError::Protocol {
                            endpoint: endpoint.clone(),
                            reason: format!("QWP version {v} (this client speaks 1)"),
                        });
                    }
                }
                let durable = header("x-qwp-durable-ack")
                    .is_some_and(|v| v.trim().eq_ignore_ascii_case("enabled"));
                if conf.request_durable_ack && !durable {
                    return Err(ClientError::DurableAckRefused {
                        endpoint: endpoint.clone(),
                    });
                }
                let max_frame = header("x-qwp-max-batch-size")
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .filter(|&n| n > 0)
                    .map_or(DEFAULT_MAX_FRAME, |n| n.min(DEFAULT_MAX_FRAME));
                Ok((durable, max_frame))
            })?;
        Ok(IngestConnection {
            transport,
            id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
            max_frame,
            durable,
            request_timeout: conf.request_timeout,
            next_sequence: 0,
            acked: -1,
            open_group: None,
            not_durable: HashMap::new(),
            broken: false,
            symbols: SymbolTable::default(),
            foreign_symbols: false,
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

    /// Whether a deferred group is open (sent frames that only a frame
    /// without `FLAG_DEFER_COMMIT` commits).
    pub fn in_deferred_group(&self) -> bool {
        self.open_group.is_some()
    }

    /// Whether the connection is open with nothing unread on the socket:
    /// an idle connection the server closed (or wrote to since, such as a
    /// late error) is not.
    pub(crate) fn is_quiet(&self) -> bool {
        self.transport.is_quiet()
    }

    /// Sends one encoded ingress message without waiting. A frame over the
    /// server's limit is refused before anything is sent (the connection
    /// stays usable).
    pub fn send(&mut self, frame: Vec<u8>) -> Result<Ticket> {
        self.usable()?;
        if frame.len() > self.max_frame {
            return Err(ClientError::FrameTooLarge {
                len: frame.len(),
                max: self.max_frame,
            });
        }
        let defer = frame.get(5).is_some_and(|&f| Flags(f).defer_commit());
        // Symbols a raw frame defines would redefine ids a sender on this
        // connection relies on (the server keeps the latest).
        self.foreign_symbols |= defines_symbols(&frame);
        let sent = self.transport.send(frame);
        self.note(sent)?;
        Ok(self.sent(defer))
    }

    /// Whether a raw frame defined SYMBOL ids on this connection (it is
    /// then not lent again: a sender's dictionary would disagree).
    pub(crate) fn has_foreign_symbols(&self) -> bool {
        self.foreign_symbols
    }

    /// [`IngestConnection::send`] of a frame encoded after
    /// [`crate::transport::HEADROOM`] free bytes, without a copy (`frame`
    /// is scratch afterwards).
    pub(crate) fn send_in_place(&mut self, frame: &mut [u8]) -> Result<Ticket> {
        self.usable()?;
        let payload = frame.get(HEADROOM..).unwrap_or_default();
        if payload.len() > self.max_frame {
            return Err(ClientError::FrameTooLarge {
                len: payload.len(),
                max: self.max_frame,
            });
        }
        let defer = payload.get(5).is_some_and(|&f| Flags(f).defer_commit());
        let sent = self.transport.send_in_place(frame);
        self.note(sent)?;
        Ok(self.sent(defer))
    }

    /// Numbers a frame just sent.
    fn sent(&mut self, defer: bool) -> Ticket {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        self.open_group = match defer {
            true => self.open_group.or(Some(sequence)),
            false => None,
        };
        Ticket {
            connection: self.id,
            sequence,
        }
    }

    /// Reads answers until the ticket's frame is acknowledged (committed).
    pub fn wait_acked(&mut self, ticket: Ticket) -> Result<()> {
        self.usable()?;
        if ticket.connection != self.id {
            return Err(ClientError::Usage(format!(
                "the ticket of frame {} was issued by another connection",
                ticket.sequence
            )));
        }
        if self
            .open_group
            .is_some_and(|start| ticket.sequence >= start)
        {
            return Err(ClientError::Usage(format!(
                "frame {} is in an open deferred group: send a frame without FLAG_DEFER_COMMIT to commit it first",
                ticket.sequence
            )));
        }
        let mut progress = Instant::now();
        while self.acked < ticket.sequence {
            let before = self.acked;
            let step = self.read_answer(progress);
            self.note(step)?;
            if self.acked > before {
                progress = Instant::now();
            }
        }
        Ok(())
    }

    /// Waits until every transaction committed on this connection is
    /// durable (fsync'd), pinging meanwhile as the official clients do.
    /// Only with durable acks granted (`request_durable_ack=on`).
    pub fn wait_durable(&mut self) -> Result<()> {
        self.usable()?;
        if !self.durable {
            return Err(ClientError::Usage(
                "durable acks were not requested (request_durable_ack=on)".into(),
            ));
        }
        let mut progress = Instant::now();
        let mut pinged = Instant::now();
        while !self.not_durable.is_empty() {
            if pinged.elapsed() >= DURABLE_KEEPALIVE {
                let ping = self.transport.ping();
                self.note(ping)?;
                pinged = Instant::now();
            }
            let left = self.not_durable.len();
            let step = self.read_answer_within(progress, DURABLE_KEEPALIVE);
            self.note(step)?;
            if self.not_durable.len() < left {
                progress = Instant::now();
            }
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

    fn read_answer(&mut self, progress: Instant) -> Result<()> {
        self.read_answer_within(progress, self.request_timeout)
    }

    /// Reads one answer, waiting at most `step` and failing once the
    /// request timeout has passed since `progress`.
    fn read_answer_within(&mut self, progress: Instant, step: Duration) -> Result<()> {
        let waited = progress.elapsed();
        let Some(left) = self
            .request_timeout
            .checked_sub(waited)
            .filter(|d| !d.is_zero())
        else {
            return Err(ClientError::Timeout {
                endpoint: self.transport.endpoint().clone(),
                waited,
            });
        };
        let Some(frame) = self.transport.receive_within(left.min(step))? else {
            return Ok(());
        };
        let endpoint = || self.transport.endpoint().clone();
        let response = decode_ingress_response(&frame).map_err(|e| ClientError::Protocol {
            endpoint: endpoint(),
            reason: format!("an undecodable ack: {e}"),
        })?;
        match response {
            IngressResponse::Ok { sequence, tables } => {
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
                if self.open_group.is_some_and(|start| sequence >= start) {
                    return Err(ClientError::Protocol {
                        endpoint: endpoint(),
                        reason: format!("an OK for frame {sequence} of an open deferred group"),
                    });
                }
                self.acked = sequence;
                if self.durable {
                    for t in tables {
                        let txn = self
                            .not_durable
                            .entry(t.table.into_owned())
                            .or_insert(t.seq_txn);
                        *txn = (*txn).max(t.seq_txn);
                    }
                }
                Ok(())
            }
            IngressResponse::DurableAck { tables } => {
                for t in tables {
                    if self
                        .not_durable
                        .get(t.table.as_ref())
                        .is_some_and(|&txn| txn <= t.seq_txn)
                    {
                        self.not_durable.remove(t.table.as_ref());
                    }
                }
                Ok(())
            }
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
