//! The column-major sender: [`Chunk`]s of borrowed columns, encoded
//! straight from caller memory into QWP frames and pipelined on one
//! pooled connection.
//!
//! [`Sender::flush`] sends a chunk as deferred frames (`FLAG_DEFER_COMMIT`:
//! appended, not committed; a chunk larger than the server's frame limit
//! is split by rows), without waiting. [`Sender::sync`] commits everything
//! flushed since the last sync as one transaction and waits for the
//! server's OK, or (with [`Ack::Durable`]) until it is durable, failing
//! without committing when the server does not grant durable acks.
//!
//! Dropping a sender with flushed, unsynced rows commits them with a
//! bounded wait (the request timeout); if that fails, the error goes to the
//! log and to the client's error handler ([`crate::Client::on_error`]):
//! rows are never dropped silently. [`Sender::discard`] is the way to drop
//! them on purpose.

mod chunk;
mod encode;

use std::ops::Range;

pub use chunk::{Bits, Chunk, ChunkError, Codes, Offsets};
pub(crate) use encode::SymbolTable;

use crate::error::{ClientError, Result};
use crate::ingest::Ticket;
use crate::pool::Writer;
use encode::EncodeError;

/// Most rows in one frame's table block (QWP's limit).
const MAX_ROWS_PER_FRAME: usize = 1_000_000;

/// How far [`Sender::sync`] waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// Committed: visible to readers and in the server's WAL.
    Ok,
    /// Durable: fsync'd (needs `request_durable_ack=on`).
    Durable,
}

/// A column-major sender on one borrowed connection (see the module docs).
#[derive(Debug)]
pub struct Sender {
    /// Present until drop or discard.
    writer: Option<Writer>,
    /// Rows flushed since the last sync.
    pending_rows: u64,
    /// Frames the last flush sent.
    frames: u64,
}

impl Sender {
    pub(crate) fn new(writer: Writer) -> Sender {
        Sender {
            writer: Some(writer),
            pending_rows: 0,
            frames: 0,
        }
    }

    fn writer(&mut self) -> &mut Writer {
        self.writer
            .as_mut()
            .expect("a sender holds its writer until drop")
    }

    /// Rows flushed and not yet committed.
    pub fn pending_rows(&self) -> u64 {
        self.pending_rows
    }

    /// Frames sent so far (a chunk over the frame limit takes several).
    pub fn frames_sent(&self) -> u64 {
        self.frames
    }

    /// Sends `chunk`'s rows as deferred frames without waiting for the
    /// server (see the module docs). A chunk that cannot be sent (no
    /// designated timestamp chosen, a single row larger than a frame, too
    /// many symbols) is refused before any of its frames leaves.
    pub fn flush(&mut self, chunk: &Chunk<'_>) -> Result<()> {
        if chunk.rows == 0 {
            return Ok(());
        }
        let max_frame = self.writer().max_frame();
        // Row ranges still to send, last first.
        let mut todo: Vec<Range<usize>> = Vec::new();
        let mut start = chunk.rows;
        while start > 0 {
            let from = start.saturating_sub(MAX_ROWS_PER_FRAME);
            todo.push(from..start);
            start = from;
        }
        let mut frame = Vec::new();
        while let Some(rows) = todo.pop() {
            let conn = self.writer().conn();
            let mark = conn.symbols.len();
            frame.clear();
            match encode::encode_chunk(chunk, rows.clone(), &mut conn.symbols, true, &mut frame) {
                Ok(()) if frame.len() <= max_frame => {
                    let n = rows.len() as u64;
                    // The frame owns its buffer once sent.
                    let sent = self.writer().send(std::mem::take(&mut frame));
                    sent?;
                    self.pending_rows += n;
                    self.frames += 1;
                }
                Ok(()) | Err(EncodeError::TooLarge) => {
                    conn.symbols.rollback(mark);
                    if rows.len() == 1 {
                        return Err(ClientError::FrameTooLarge {
                            len: frame.len(),
                            max: max_frame,
                        });
                    }
                    let mid = rows.start + rows.len() / 2;
                    todo.push(mid..rows.end);
                    todo.push(rows.start..mid);
                }
                Err(EncodeError::Chunk(e)) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Commits every row flushed since the last sync as one transaction
    /// and waits for it to be acknowledged at `ack`'s level.
    pub fn sync(&mut self, ack: Ack) -> Result<()> {
        if ack == Ack::Durable && !self.writer().durable() {
            return Err(ClientError::Usage(
                "durable sync needs durable acks: connect with request_durable_ack=on".into(),
            ));
        }
        if self.pending_rows > 0 || self.writer().in_deferred_group() {
            let ticket = self.commit()?;
            self.writer().wait_acked(ticket)?;
            self.pending_rows = 0;
        }
        if ack == Ack::Durable {
            self.writer().wait_durable()?;
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<Ticket> {
        let mut frame = Vec::new();
        encode::encode_commit(&self.writer().conn().symbols, &mut frame);
        self.writer().send(frame)
    }

    /// Drops the rows flushed since the last sync: the connection is
    /// closed, and the server rolls them back.
    pub fn discard(mut self) {
        self.pending_rows = 0;
        if let Some(writer) = self.writer.take() {
            writer.discard();
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.pending_rows == 0 {
            return;
        }
        let rows = self.pending_rows;
        if let Err(e) = self.sync(Ack::Ok) {
            tracing::error!(rows, error = %e, "a sender dropped with unsynced rows could not commit them");
            if let Some(w) = &self.writer {
                w.report(&ClientError::Unsynced {
                    rows,
                    cause: Box::new(e),
                });
            }
        }
    }
}
