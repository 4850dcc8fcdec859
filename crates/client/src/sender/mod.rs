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
//! A chunk is sent whole or not at all: if it fails after some of its
//! frames left (a single row over the frame limit, the connection's symbol
//! limit), the connection is closed, the server rolls back everything
//! flushed since the last sync, and the error
//! ([`ClientError::ChunkAborted`]) says how many rows that was.
//!
//! Dropping a sender with flushed, unsynced rows commits them with a
//! bounded wait (the request timeout); if that fails, the error goes to the
//! log and to the client's error handler ([`crate::Client::on_error`]):
//! rows are never dropped silently. [`Sender::discard`] is the way to drop
//! them on purpose.

mod arrow;
mod chunk;
mod encode;

use std::ops::Range;

pub use arrow::{ArrowOptions, ColumnAs, Designated};
pub use chunk::{Bits, Chunk, ChunkError, Codes, Offsets};
pub(crate) use encode::SymbolTable;

use crate::error::{ClientError, Result};
use crate::ingest::Ticket;
use crate::pool::{Reporter, Writer};
use crate::transport::HEADROOM;
use encode::EncodeError;

/// [`encode::encode_chunk`] of every row, for [`crate::bench`].
pub(crate) fn encode_chunk_public(
    chunk: &Chunk<'_>,
    symbols: &mut SymbolTable,
    out: &mut Vec<u8>,
) -> bool {
    encode::encode_chunk(chunk, 0..chunk.rows, symbols, true, usize::MAX, out).is_ok()
}

/// Most rows in one frame's table block (QWP's limit).
const MAX_ROWS_PER_FRAME: usize = 1_000_000;
/// The size frames are cut to (when the server takes larger ones): the
/// server decodes a frame while the next one arrives, so 1 MiB frames keep
/// both sides busy where one 16 MiB frame leaves the server waiting for
/// all of it. Measured in `cargo bench -p quiver-server --bench sdk`.
const TARGET_FRAME_BYTES: usize = 1 << 20;

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
    /// The frame buffer, kept for the next flush.
    buffer: Vec<u8>,
    /// Where errors no caller receives go (also after the connection).
    reporter: Reporter,
}

impl Sender {
    pub(crate) fn new(writer: Writer) -> Sender {
        Sender {
            reporter: writer.reporter(),
            writer: Some(writer),
            pending_rows: 0,
            frames: 0,
            buffer: Vec::new(),
        }
    }

    fn writer(&mut self) -> Result<&mut Writer> {
        self.writer.as_mut().ok_or_else(|| {
            ClientError::Usage(
                "this sender's connection was closed after an error; borrow another sender".into(),
            )
        })
    }

    /// Rows flushed and not yet committed.
    pub fn pending_rows(&self) -> u64 {
        self.pending_rows
    }

    /// Frames sent so far (a chunk takes one per ~1 MiB).
    pub fn frames_sent(&self) -> u64 {
        self.frames
    }

    /// Sends `chunk`'s rows as deferred frames without waiting for the
    /// server (see the module docs). A chunk refused before any of its
    /// frames left (no designated timestamp chosen, a row or a value span
    /// larger than a frame at the start) leaves the sender as it was; one
    /// that fails part-way ends in [`ClientError::ChunkAborted`].
    pub fn flush(&mut self, chunk: &Chunk<'_>) -> Result<()> {
        if chunk.rows == 0 {
            return Ok(());
        }
        let max_frame = self.writer()?.max_frame();
        let per_frame =
            (TARGET_FRAME_BYTES.min(max_frame) / chunk.row_bytes()).clamp(1, MAX_ROWS_PER_FRAME);
        // Row ranges: the next cut of `per_frame` rows from `next`, and
        // (last first) pieces of a range that turned out too large.
        let mut next = 0usize;
        let mut again: Vec<Range<usize>> = Vec::new();
        // Reused across flushes: no allocation per frame.
        let mut frame = std::mem::take(&mut self.buffer);
        let mut sent_frames = 0u64;
        let result = loop {
            let rows = match again.pop() {
                Some(r) => r,
                None if next < chunk.rows => {
                    let end = next + per_frame.min(chunk.rows - next);
                    let r = next..end;
                    next = end;
                    r
                }
                None => break Ok(()),
            };
            let conn = match self.writer() {
                Ok(w) => w.conn(),
                Err(e) => break Err(e),
            };
            frame.clear();
            frame.resize(HEADROOM, 0);
            match encode::encode_chunk(
                chunk,
                rows.clone(),
                &mut conn.symbols,
                true,
                max_frame,
                &mut frame,
            ) {
                Ok(()) => {
                    if let Err(e) = conn.send_in_place(&mut frame) {
                        break Err(self.abort(sent_frames, e));
                    }
                    self.pending_rows += rows.len() as u64;
                    self.frames += 1;
                    sent_frames += 1;
                }
                Err(EncodeError::TooLarge) if rows.len() > 1 => {
                    // The first half, then the second (the cut adapts to
                    // rows far larger than the mean).
                    let mid = rows.start + rows.len() / 2;
                    again.push(mid..rows.end);
                    again.push(rows.start..mid);
                }
                Err(EncodeError::TooLarge) => {
                    let e = ClientError::FrameTooLarge {
                        len: frame.len().saturating_sub(HEADROOM),
                        max: max_frame,
                    };
                    break Err(self.abort(sent_frames, e));
                }
                Err(EncodeError::SymbolsFull) => {
                    // This connection's table is spent: it is closed, so
                    // the next sender starts an empty one.
                    let e = ClientError::Usage(format!(
                        "table {}: the connection's SYMBOL dictionary is full; it was closed, so a new sender starts an empty one",
                        chunk.table
                    ));
                    break Err(self.abort(sent_frames.max(1), e));
                }
                Err(EncodeError::Chunk(e)) => break Err(self.abort(sent_frames, e.into())),
            }
        };
        // Kept for the next flush, unless a huge frame inflated it.
        if frame.capacity() <= 4 * TARGET_FRAME_BYTES.max(max_frame) {
            self.buffer = frame;
        }
        result
    }

    /// A chunk failed after `sent_frames` of its frames left: a chunk is
    /// sent whole or not at all, so the connection is closed (the server
    /// rolls back everything since the last sync) and the error says so.
    /// An error that broke the connection rolls back the same.
    pub(crate) fn abort(&mut self, sent_frames: u64, cause: ClientError) -> ClientError {
        if sent_frames == 0 && !cause.breaks_connection() {
            return cause;
        }
        let rows = std::mem::take(&mut self.pending_rows);
        if let Some(writer) = self.writer.take() {
            writer.discard();
        }
        match rows {
            0 => cause,
            rows => ClientError::ChunkAborted {
                rows,
                cause: Box::new(cause),
            },
        }
    }

    /// Sends an Arrow `RecordBatch` as deferred frames, as [`flush`]
    /// sends a chunk (see [`ArrowOptions`] for the type mapping and the
    /// designated timestamp). Commit with [`Sender::sync`].
    ///
    /// [`flush`]: Sender::flush
    pub fn flush_batch(
        &mut self,
        batch: &arrow_array::RecordBatch,
        options: &ArrowOptions,
    ) -> Result<()> {
        let converted = arrow::ArrowChunk::new(batch, options)?;
        let chunk = converted.chunk()?;
        self.flush(&chunk)
    }

    /// Sends every batch of `reader` (see [`Sender::flush_batch`]) and
    /// commits them as one transaction at `ack`'s level; returns the rows
    /// sent. If any batch fails, nothing of the stream is committed (the
    /// connection is closed and the server rolls back).
    pub fn send_reader(
        &mut self,
        reader: impl arrow_array::RecordBatchReader,
        options: &ArrowOptions,
        ack: Ack,
    ) -> Result<u64> {
        let mut rows = 0u64;
        let sent = (|| {
            for batch in reader {
                let batch = batch
                    .map_err(|e| ClientError::Usage(format!("the batch reader failed: {e}")))?;
                self.flush_batch(&batch, options)?;
                rows += batch.num_rows() as u64;
            }
            self.sync(ack)
        })();
        match sent {
            Ok(()) => Ok(rows),
            Err(e) => {
                self.drop_pending();
                Err(e)
            }
        }
    }

    /// Commits every row flushed since the last sync as one transaction
    /// and waits for it to be acknowledged at `ack`'s level. If the wait
    /// fails after the commit left, whether it happened is unknown
    /// ([`ClientError::Unconfirmed`]): retrying may duplicate rows.
    pub fn sync(&mut self, ack: Ack) -> Result<()> {
        if ack == Ack::Durable && !self.writer()?.durable() {
            return Err(ClientError::Usage(
                "durable sync needs durable acks: connect with request_durable_ack=on".into(),
            ));
        }
        if self.pending_rows > 0 || self.writer()?.in_deferred_group() {
            let ticket = match self.commit() {
                Ok(t) => t,
                Err(e) => return Err(self.abort(0, e)),
            };
            let rows = self.pending_rows;
            if let Err(e) = self.writer()?.wait_acked(ticket) {
                return Err(self.unconfirmed(rows, e));
            }
            self.pending_rows = 0;
        }
        if ack == Ack::Durable
            && let Err(e) = self.writer()?.wait_durable()
        {
            return Err(self.unconfirmed(0, e));
        }
        Ok(())
    }

    /// The answer to a commit (or its durability) did not come: the rows
    /// may or may not be committed. The connection is closed.
    fn unconfirmed(&mut self, rows: u64, cause: ClientError) -> ClientError {
        if !cause.breaks_connection() {
            return cause;
        }
        self.pending_rows = 0;
        if let Some(writer) = self.writer.take() {
            writer.discard();
        }
        ClientError::Unconfirmed {
            rows,
            cause: Box::new(cause),
        }
    }

    fn commit(&mut self) -> Result<Ticket> {
        let mut frame = vec![0; HEADROOM];
        let conn = self.writer()?.conn();
        encode::encode_commit(&conn.symbols, &mut frame);
        conn.send_in_place(&mut frame)
    }

    /// Closes the connection, so the server rolls back what was flushed.
    fn drop_pending(&mut self) {
        self.pending_rows = 0;
        if let Some(writer) = self.writer.take() {
            writer.discard();
        }
    }

    /// Drops the rows flushed since the last sync: the connection is
    /// closed, and the server rolls them back.
    pub fn discard(mut self) {
        self.drop_pending();
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        if self.pending_rows == 0 {
            return;
        }
        if std::thread::panicking() {
            // Unwinding: whatever was being sent is not known to be whole.
            tracing::warn!(
                rows = self.pending_rows,
                "a sender dropped while panicking rolls back its unsynced rows"
            );
            self.drop_pending();
            return;
        }
        let rows = self.pending_rows;
        if let Err(e) = self.sync(Ack::Ok) {
            tracing::error!(rows, error = %e, "a sender dropped with unsynced rows could not commit them");
            let report = ClientError::Unsynced {
                rows,
                cause: Box::new(e),
            };
            self.reporter.report(&report);
        }
    }
}
