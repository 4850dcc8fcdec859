//! InfluxDB line protocol ingest: HTTP `/write` and `/api/v2/write`
//! ([`http`]) and newline-delimited TCP ([`tcp`]).
//!
//! Bytes are parsed by `quiver_ilp`; lines become QWP table blocks
//! ([`blocks`]) and take QWP ingest's path from there (`crate::ingest`:
//! plan, coercions, table and column creation, the uncommitted budget), so
//! a row written either way is stored the same. [`LineWriter`] turns a
//! stream of bytes into one transaction: lines are gathered, converted and
//! staged in steps of [`LineOptions::step_rows`] rows, so a request's
//! memory is bounded by what it converts, not by its body.
//!
//! This module must not decide types or coercions, or write storage other
//! than through a [`PendingGroup`] and a commit.

pub mod blocks;
pub mod http;
pub mod tcp;

use std::sync::Arc;

use quiver_ilp::{IlpError, Limits, Line, Parser, Precision, Step};
use quiver_qwp::{StatusCode, SymbolDictionary};
use quiver_storage::{Database, Transaction};

use crate::ingest::convert::BlockConverter;
use crate::ingest::group::PendingGroup;
use crate::ingest::{FrameLimits, IngestError};
use blocks::LineBlocks;

/// Why lines were not written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A line that is not line protocol.
    #[error("failed to parse line protocol: {0}")]
    Malformed(#[from] IlpError),
    /// A line that cannot go into its table as it is.
    #[error("error in line {line}: {message}")]
    Line {
        /// Its number, from 1.
        line: u64,
        /// What is wrong, naming table and column.
        message: String,
    },
    /// Ingest refused a line's rows (types, names, limits).
    #[error("error in line {line}: {}", error.message)]
    Rejected {
        /// The line to blame.
        line: u64,
        /// Ingest's error.
        error: IngestError,
    },
    /// The request itself is wrong (parameters, body).
    #[error("{0}")]
    Request(String),
    /// A `Content-Encoding` other than gzip.
    #[error("unsupported Content-Encoding; send the body as it is or with gzip")]
    Encoding,
    /// The request is larger than allowed.
    #[error(
        "the request body is larger than {max} bytes (--ilp-max-request-bytes); send smaller requests"
    )]
    TooLarge {
        /// The limit.
        max: usize,
    },
    /// The client stopped sending the body.
    #[error("the request body stalled for {secs} s; nothing was written")]
    Stalled {
        /// The idle limit.
        secs: u64,
    },
    /// The server failed.
    #[error("{0}")]
    Internal(String),
}

impl WriteError {
    /// The line it concerns, if one.
    pub fn line(&self) -> Option<u64> {
        match self {
            WriteError::Malformed(e) => Some(e.line),
            WriteError::Line { line, .. } | WriteError::Rejected { line, .. } => Some(*line),
            _ => None,
        }
    }

    /// Whether the client caused it (a retry as it is fails the same way).
    pub fn is_client_fault(&self) -> bool {
        match self {
            WriteError::Rejected { error, .. } => matches!(
                error.status,
                StatusCode::PARSE_ERROR | StatusCode::SCHEMA_MISMATCH
            ),
            WriteError::Internal(_) => false,
            _ => true,
        }
    }
}

/// Line-protocol settings.
#[derive(Debug, Clone)]
pub struct LineOptions {
    /// Most bytes one HTTP request's body may hold (after gzip).
    pub max_request_bytes: usize,
    /// What one line may hold (length, names, columns, array elements).
    pub limits: Limits,
    /// Most tables one request (or TCP commit group) may write.
    pub max_tables: usize,
    /// Rows gathered before they are converted and staged.
    pub step_rows: usize,
    /// Estimated bytes gathered before they are converted and staged.
    pub step_bytes: usize,
    /// Most converted bytes one request (or TCP commit group) may hold
    /// (the server's `--max-pending-bytes`).
    pub max_pending_bytes: usize,
    /// What one step may materialise.
    pub frame_limits: FrameLimits,
    /// A write is answered once it is fsync'd, not once it is visible.
    pub durable: bool,
    /// An HTTP request whose body sends nothing for this long is dropped
    /// (its staged rows with it), so a stalled client cannot pin the WAL
    /// and the uncommitted budget.
    pub body_idle_timeout: std::time::Duration,
}

impl Default for LineOptions {
    fn default() -> Self {
        LineOptions {
            max_request_bytes: 1 << 30,
            limits: Limits::default(),
            max_tables: 1024,
            step_rows: 100_000,
            step_bytes: 16 << 20,
            max_pending_bytes: 1 << 30,
            frame_limits: FrameLimits::default(),
            durable: false,
            body_idle_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// Bytes of line protocol into one pending transaction (see the module
/// docs).
pub struct LineWriter {
    db: Arc<Database>,
    options: LineOptions,
    precision: Precision,
    blocks: LineBlocks,
    group: PendingGroup,
    converter: BlockConverter,
    /// An incomplete last line of the bytes fed so far.
    carry: Vec<u8>,
    /// Bytes of `carry` the parser found incomplete at its last look.
    scanned: usize,
    /// A newline arrived in `carry` since that look (a line may be whole).
    unscanned_newline: bool,
    /// Bytes handed to the parser so far (rescans included).
    parsed_bytes: u64,
    /// Time spent converting gathered lines (for the request's log line).
    convert_time: std::time::Duration,
    /// The number of the next line to parse.
    next_line: u64,
    /// Bytes fed so far.
    fed: usize,
    /// Lines written so far.
    lines: u64,
}

/// Commits `txn` (not empty) and waits until it is visible, and also until
/// it is fsync'd if `durable`.
pub async fn commit(db: &Database, txn: Transaction, durable: bool) -> Result<(), WriteError> {
    let receipt = db.commit(txn, durable);
    let closed = Err(quiver_storage::StorageError::Closed);
    let committed = receipt.committed.await.unwrap_or(closed);
    committed.map_err(|e| WriteError::Internal(format!("the commit failed: {e}")))?;
    if let Some(d) = receipt.durable {
        let closed = Err(quiver_storage::StorageError::Closed);
        d.await.unwrap_or(closed).map_err(|e| {
            WriteError::Internal(format!(
                "the rows are committed but could not be made durable: {e}"
            ))
        })?;
    }
    Ok(())
}

/// Line blocks carry their SYMBOL values in their own dictionaries.
static NO_DICTIONARY: std::sync::LazyLock<SymbolDictionary> =
    std::sync::LazyLock::new(SymbolDictionary::new);

impl LineWriter {
    /// A writer of lines with timestamps in `precision`.
    pub fn new(db: Arc<Database>, options: LineOptions, precision: Precision) -> Self {
        LineWriter {
            converter: BlockConverter::new(db.clone(), 1024),
            group: PendingGroup::new(
                options.max_pending_bytes,
                "send fewer rows per request or TCP commit group (--max-pending-bytes)",
            ),
            db,
            precision,
            blocks: LineBlocks::new(options.step_bytes, options.step_rows, options.max_tables),
            carry: Vec::new(),
            scanned: 0,
            unscanned_newline: false,
            parsed_bytes: 0,
            convert_time: std::time::Duration::ZERO,
            next_line: 1,
            fed: 0,
            lines: 0,
            options,
        }
    }

    /// Lines taken so far.
    pub fn lines(&self) -> u64 {
        self.lines
    }

    /// Time spent converting lines into table rows so far.
    pub fn convert_time(&self) -> std::time::Duration {
        self.convert_time
    }

    /// Rows gathered or pending.
    pub fn rows(&self) -> usize {
        self.group.row_count() + self.blocks.rows()
    }

    /// Parses the whole lines of `chunk` (after what earlier chunks left
    /// over), converting and staging them a step at a time.
    pub async fn feed(&mut self, chunk: &[u8]) -> Result<(), WriteError> {
        self.fed = self.fed.saturating_add(chunk.len());
        if self.fed > self.options.max_request_bytes {
            return Err(WriteError::TooLarge {
                max: self.options.max_request_bytes,
            });
        }
        if self.carry.is_empty() {
            let consumed = self.parse_all(chunk, true).await?;
            self.carry.extend_from_slice(&chunk[consumed..]);
            self.scanned = self.carry.len();
            return Ok(());
        }
        self.carry.extend_from_slice(chunk);
        // The carried line was scanned whole already: scan it again only
        // once a newline came and it grew by a quarter (so tiny chunks
        // cost no rescans of a long line), or once it is past the line
        // limit (the parser says so).
        let grew = self.carry.len() - self.scanned;
        let over_limit = self.carry.len() > self.options.limits.max_line_bytes;
        let newline = chunk.contains(&b'\n');
        if !over_limit && (!newline || grew < self.scanned / 4) {
            self.unscanned_newline |= newline;
            return Ok(());
        }
        self.parse_carry(true).await
    }

    /// Whether lines may be waiting: rows gathered, or a newline in the
    /// carried bytes not parsed yet ([`LineWriter::take`] parses them).
    pub fn has_pending(&self) -> bool {
        self.rows() > 0 || self.unscanned_newline
    }

    /// Parses what is left (the last line needs no newline) and returns the
    /// transaction of every line, for commit.
    pub async fn finish(&mut self) -> Result<Transaction, WriteError> {
        self.parse_carry(false).await?;
        self.take().await
    }

    /// The transaction of every whole line so far, for commit; a line cut
    /// by the end of the input so far waits for the rest. The request
    /// size counts from here again.
    pub async fn take(&mut self) -> Result<Transaction, WriteError> {
        if !self.carry.is_empty() {
            self.parse_carry(true).await?;
        }
        self.step().await?;
        // The next group (TCP) counts its size and tables afresh.
        self.fed = self.carry.len();
        self.blocks = LineBlocks::new(
            self.options.step_bytes,
            self.options.step_rows,
            self.options.max_tables,
        );
        Ok(self.group.take())
    }

    /// Drops every line taken (rolled back).
    pub fn clear(&mut self) {
        self.group.clear();
        self.blocks = LineBlocks::new(
            self.options.step_bytes,
            self.options.step_rows,
            self.options.max_tables,
        );
        self.carry.clear();
        self.scanned = 0;
        self.unscanned_newline = false;
    }

    /// Parses the carried bytes, keeping what is left of them.
    async fn parse_carry(&mut self, partial: bool) -> Result<(), WriteError> {
        let carry = std::mem::take(&mut self.carry);
        let consumed = self.parse_all(&carry, partial).await;
        self.carry = carry;
        self.carry.drain(..consumed?);
        self.scanned = self.carry.len();
        self.unscanned_newline = false;
        Ok(())
    }

    /// Parses the whole lines of `input` into the blocks, converting a step
    /// whenever one is full; returns the bytes of whole lines.
    async fn parse_all(&mut self, input: &[u8], partial: bool) -> Result<usize, WriteError> {
        let mut offset = 0;
        loop {
            let (consumed, full) = self.parse(&input[offset..], partial)?;
            offset += consumed;
            if !full {
                return Ok(offset);
            }
            self.step().await?;
        }
    }

    /// Parses lines of `input` until it ends or a step is full; returns the
    /// bytes of whole lines parsed and whether a step is full.
    fn parse(&mut self, input: &[u8], partial: bool) -> Result<(usize, bool), WriteError> {
        self.parsed_bytes += input.len() as u64;
        let mut parser =
            Parser::new(input, self.precision, self.options.limits).first_line(self.next_line);
        if partial {
            parser = parser.partial();
        }
        let mut line = Line::default();
        let mut full = false;
        // `End` or `NeedMore` stops it.
        while let Step::Line = parser.next_line(&mut line)? {
            // The parser counts the line once it has read it.
            let number = parser.line_number() - 1;
            self.blocks.add(&line, number, &self.db)?;
            self.lines += 1;
            if self.blocks.rows() >= self.options.step_rows
                || self.blocks.bytes() >= self.options.step_bytes
            {
                full = true;
                break;
            }
        }
        self.next_line = parser.line_number();
        Ok((parser.consumed(), full))
    }

    /// Converts the gathered lines into the pending transaction and
    /// writes them to the WAL (not yet committed).
    async fn step(&mut self) -> Result<(), WriteError> {
        let started = std::time::Instant::now();
        let result = self.convert_and_stage().await;
        self.convert_time += started.elapsed();
        result
    }

    async fn convert_and_stage(&mut self) -> Result<(), WriteError> {
        for b in self.blocks.finish()? {
            self.group
                .add(
                    &self.db,
                    &mut self.converter,
                    std::slice::from_ref(&b.block),
                    &NO_DICTIONARY,
                    &self.options.frame_limits,
                )
                .await
                .map_err(|error| WriteError::Rejected {
                    line: b.line_of(error.column.as_deref(), error.row),
                    error,
                })?;
        }
        self.group
            .stage(&self.db)
            .map_err(|e| WriteError::Internal(e.message))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_long_line_in_tiny_chunks_is_not_rescanned_per_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), quiver_storage::Options::default()).unwrap();
        let mut w = LineWriter::new(db.clone(), LineOptions::default(), Precision::Nanos);
        // A 64 KiB string with an escaped newline every 100 bytes, so most
        // chunks hold a newline byte, fed 7 bytes at a time.
        let line = format!(
            "t s=\"{}\"\n",
            format!("{}\\\n", "x".repeat(99)).repeat(640)
        );
        for chunk in line.as_bytes().chunks(7) {
            w.feed(chunk).await.unwrap();
        }
        let txn = w.finish().await.unwrap();
        assert_eq!(txn.row_count(), 1);
        assert!(
            w.parsed_bytes < 6 * line.len() as u64,
            "{} bytes parsed for a line of {}",
            w.parsed_bytes,
            line.len()
        );
        drop(txn);
        db.close();
    }

    /// Feeds `input` in chunks cut at `cuts` (offsets) into a writer of a
    /// fresh database; the rows of its transaction, or the line of its
    /// error.
    fn write_lines(input: &[u8], cuts: &[usize]) -> Result<usize, Option<u64>> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), quiver_storage::Options::default()).unwrap();
        let options = LineOptions {
            // Tiny steps: conversions, block splits and staging all happen.
            step_rows: 3,
            ..LineOptions::default()
        };
        let mut w = LineWriter::new(db.clone(), options, Precision::Nanos);
        let result = rt.block_on(async {
            let mut at = 0;
            for &cut in cuts.iter().filter(|&&c| c <= input.len()) {
                if cut > at {
                    w.feed(&input[at..cut]).await?;
                    at = cut;
                }
            }
            w.feed(&input[at..]).await?;
            w.finish().await
        });
        let out = result.map(|t| t.row_count()).map_err(|e| e.line());
        drop(w);
        db.close();
        out
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// Lines of a few tables and columns whose values change kind
        /// (so blocks split and coercions run), cut anywhere: never a
        /// panic, every line a row, and the same outcome as the whole input.
        #[test]
        fn any_lines_cut_anywhere_write_like_the_whole(
            lines in proptest::collection::vec(
                (0..3usize, proptest::collection::vec((0..4usize, 0..9usize), 1..4), proptest::option::of(0..5i64)),
                1..12,
            ),
            cuts in proptest::collection::vec(0..400usize, 0..6),
        ) {
            let values = ["1i", "-2i", "1.5", "7", "t", "\"s\"", "3t", "1.25d", "18446744073709551615u"];
            let mut input = String::new();
            for (table, fields, ts) in &lines {
                input.push_str(&format!("t{table}"));
                if table % 2 == 0 {
                    input.push_str(",tag=v");
                }
                input.push(' ');
                let fields: Vec<String> = fields
                    .iter()
                    .map(|(c, v)| format!("c{c}={}", values[*v]))
                    .collect();
                input.push_str(&fields.join(","));
                if let Some(ts) = ts {
                    input.push_str(&format!(" {}", ts * 1_000_000_000));
                }
                input.push('\n');
            }
            let mut cuts = cuts;
            cuts.sort();
            let whole = write_lines(input.as_bytes(), &[]);
            let cut = write_lines(input.as_bytes(), &cuts);
            proptest::prop_assert_eq!(&whole, &cut, "{}", input);
            if let Ok(rows) = whole {
                proptest::prop_assert_eq!(rows, lines.len());
            }
        }
    }

    #[tokio::test]
    async fn blocks_of_a_step_reserve_within_its_bytes_together() {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path(), quiver_storage::Options::default()).unwrap();
        let options = LineOptions {
            step_rows: 1 << 20,
            ..LineOptions::default()
        };
        let max = options.step_bytes;
        let mut w = LineWriter::new(db.clone(), options, Precision::Nanos);
        // 80 tables of 1,024 rows each: each block reaches the row count at
        // which it reserves room for a whole step.
        let mut body = String::new();
        for t in 0..80 {
            for _ in 0..1024 {
                body.push_str(&format!(
                    "t{t} a=1i,b=2i,c=3i,d=4i,e=5i,f=6i,g=7i,h=8i,i=9i,j=10i\n"
                ));
            }
        }
        for chunk in body.as_bytes().chunks(1 << 20) {
            w.feed(chunk).await.unwrap();
            assert!(
                w.blocks.reserved() <= max,
                "{} > {max}",
                w.blocks.reserved()
            );
        }
        drop(w.finish().await.unwrap());
        db.close();
    }
}
