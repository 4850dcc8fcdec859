//! The database: catalog, commit pipeline (group commit), sealing and
//! recovery. This module holds the public API and the state the threads
//! share; `commit` (committer and syncer threads), `sealing` (sealer and
//! seal syncer threads) and `recovery` (opening a data directory) hold the
//! rest.
//!
//! # Commit order and the ack contract
//!
//! One committer thread owns the WAL. It takes every queued request
//! (transactions, table creations, column additions), frames them as WAL
//! records, writes them with one `write`, then applies the transactions to
//! the memtables, publishes the new visible LSN and answers "committed"; if
//! any request asked for durability it hands one sync job for the whole
//! group to the syncer thread, which `fdatasync`s (coalescing the jobs that
//! queued up meanwhile) and answers "durable", while the committer goes on
//! with the next group. So:
//!
//! 1. A transaction is visible iff its record was written (never half: the
//!    visible LSN moves after all of a group's rows are in place).
//! 2. "Committed" is sent only after (1); "durable" only after the fsync
//!    covering the record.
//! 3. Row ids are assigned in commit order, dense per table.
//!
//! # Transaction record body
//!
//! ```text
//! u16 part count, then per part:
//!   u32 table id | u64 first row id
//!   u32 symbol section count, each: str column | u32 first key | u32 n | n × str
//!   u8 0 | bytes rows (`rows` encoding: one batch, stored types)         inline rows
//!   u8 1 | u64 part id | u64 rows                                       rows of a Part record
//! ```
//! (`bytes rows` is the `crate::rows` encoding, which references the
//! batch's Arrow buffers until the write; WAL files written before it hold
//! an Arrow IPC stream there, which recovery still reads.)
//! A Part record (`u64 part id | u32 table id | bytes rows`)
//! writes a deferred frame's rows as they arrive, so a large deferred group
//! commits with a small record. Recovery keeps Part records until the
//! transaction naming them, and drops those that none names. A named part
//! whose WAL file is gone must have been sealed (the file was deleted
//! because its rows were): the row count in the reference checks that.
//! CreateTable and AddColumns bodies are `u32 table id` + the full schema.
//! The catalog file (`catalog`) holds every schema and is replaced durably on
//! each change, so DDL survives the deletion of old WAL files.
//!
//! # Sealing
//!
//! When a table's memtable passes `seal_rows` or `seal_bytes`, a sealer
//! thread writes its oldest rows to a segment (for a day-partitioned table,
//! one segment per UTC day they span, in `segments/YYYY-MM-DD/`; see
//! `split_by_day`), switches readers to it and drops those rows from memory,
//! and goes on with the next seal. A seal syncer thread makes the written
//! seals durable in seal order (the segments, then the WAL up to their rows;
//! seals queued together share one WAL sync), records each in its table's
//! manifest (listing the segments up to that seal, with the symbol
//! dictionaries) and deletes WAL files whose every row a durable manifest
//! now covers (a failure after the rows left memory poisons the database;
//! the WAL keeps them for the restart). Memory is bounded by
//! `max_unsealed_bytes` across tables: past it the biggest tables are sealed
//! whatever their size and
//! [`Database::memory_available`] holds ingest back until the sealer (that
//! is, the disk) has caught up.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use arrow::array::{ArrayRef, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::DataType;
use tokio::sync::{Notify, oneshot};

mod commit;
mod recovery;
mod sealing;

use commit::Committer;
use sealing::{SEALS_AWAITING_SYNC, SealedRows, force_seal_biggest, seal_syncer_loop, sealer_loop};

use crate::codec::{Reader, Writer};
use crate::error::{Result, StorageError};
use crate::rows::{EncodedRows, decode_rows};
use crate::schema::{ColumnSchema, PartitionBy, TableSchema};
use crate::segment::{Manifest, Segment, write_durably, write_segment};
use crate::symbols::SymbolTable;
use crate::table::{StoredBatch, Table, TableSnapshot};
use crate::wal::{self, Chunk, RecordKind, SyncJob, WalWriter};

/// Tuning knobs. The defaults suit a laptop.
#[derive(Debug, Clone)]
pub struct Options {
    /// Start a new WAL file past this size (default 64 MiB).
    pub wal_roll_size: u64,
    /// Seal a table's memtable past this many rows (default 1,000,000).
    pub seal_rows: u64,
    /// Seal a table's memtable past this many bytes (default 64 MiB).
    pub seal_bytes: usize,
    /// fsync after every group, durable acks requested or not (default off).
    pub sync_every_commit: bool,
    /// Rows per batch in a segment file (default 65,536).
    pub segment_batch_rows: usize,
    /// Open without writing anything (offline tools while a server runs).
    pub read_only: bool,
    /// Past this many WAL files, tables holding rows in the oldest file are
    /// sealed whatever their size, so a quiet table cannot pin the log
    /// (default 4).
    pub max_wal_files: usize,
    /// Past this many bytes of unsealed rows in memory, across all tables,
    /// the tables holding the most are sealed whatever their size and
    /// [`Database::memory_available`] waits (ingest stops reading its
    /// sockets) until sealing brings memory back under it, so memory stays
    /// bounded when ingest outpaces the disk (default 512 MiB).
    pub max_unsealed_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            wal_roll_size: 64 << 20,
            seal_rows: 1_000_000,
            seal_bytes: 64 << 20,
            sync_every_commit: false,
            segment_batch_rows: 65_536,
            read_only: false,
            max_wal_files: 4,
            max_unsealed_bytes: 512 << 20,
        }
    }
}

/// Rows for one table, ready to commit: the batch and its WAL encoding
/// (empty once staged: the bytes are then in a Part record).
#[derive(Debug, Clone)]
struct Part {
    table: Arc<Table>,
    batch: RecordBatch,
    rows: EncodedRows,
    /// Id of the Part record holding the rows, once staged.
    staged: Option<u64>,
}

/// Rows for any number of tables that commit together or not at all.
///
/// Parts can be written to the WAL ahead of the commit with
/// [`Database::stage`]; dropping a transaction with staged parts without
/// committing it abandons them.
#[derive(Debug, Default)]
pub struct Transaction {
    parts: Vec<Part>,
    /// Where to report abandoned staged parts: the database's request
    /// channel, shared (not cloned) so closing the database is not held up.
    abandon: Option<RequestChannel>,
}

/// The committer's request channel; `None` once the database closes.
type RequestChannel = Arc<Mutex<Option<Sender<Request>>>>;

impl Drop for Transaction {
    fn drop(&mut self) {
        let ids: Vec<u64> = self.parts.iter().filter_map(|p| p.staged).collect();
        if let (Some(channel), false) = (self.abandon.take(), ids.is_empty())
            && let Some(tx) = lock(&channel).as_ref()
        {
            let _ = tx.send(Request::Abandon { parts: ids });
        }
    }
}

impl Transaction {
    /// An empty transaction.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds rows for `table`. The batch's columns must be table columns in
    /// their stored types (a subset, any order); it is encoded for the WAL
    /// here, on the caller's thread.
    pub fn add(&mut self, table: Arc<Table>, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        table.check_batch(&batch)?;
        let rows = EncodedRows::encode(&batch)?;
        self.parts.push(Part {
            table,
            batch,
            rows,
            staged: None,
        });
        Ok(())
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// Rows across all parts.
    pub fn row_count(&self) -> usize {
        self.parts.iter().map(|p| p.batch.num_rows()).sum()
    }

    /// Approximate memory held.
    pub fn memory_size(&self) -> usize {
        self.parts
            .iter()
            .map(|p| p.batch.get_array_memory_size())
            .sum()
    }

    /// Moves `other`'s rows after these.
    pub fn append(&mut self, mut other: Transaction) {
        self.parts.append(&mut other.parts);
        if self.abandon.is_none() {
            self.abandon = other.abandon.take();
        }
    }

    /// The parts, leaving the transaction empty (nothing to abandon).
    fn take_parts(&mut self) -> Vec<Part> {
        self.abandon = None;
        std::mem::take(&mut self.parts)
    }
}

/// What a committed transaction produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Its log sequence number (also each touched table's transaction number).
    pub lsn: u64,
    /// Tables it wrote, by name.
    pub tables: Vec<String>,
}

/// Answers to a commit: committed (visible, in the WAL), then durable.
#[derive(Debug)]
pub struct CommitReceipt {
    /// Resolves once the transaction is written and visible.
    pub committed: oneshot::Receiver<Result<Committed>>,
    /// Resolves once it is fsync'd, if durability was requested.
    pub durable: Option<oneshot::Receiver<Result<()>>>,
}

enum Request {
    Commit {
        txn: Transaction,
        committed: oneshot::Sender<Result<Committed>>,
        durable: Option<oneshot::Sender<Result<()>>>,
    },
    CreateTable {
        schema: TableSchema,
        reply: oneshot::Sender<Result<Arc<Table>>>,
    },
    AddColumns {
        table: Arc<Table>,
        columns: Vec<ColumnSchema>,
        reply: oneshot::Sender<Result<Arc<TableSchema>>>,
    },
    Sync {
        reply: oneshot::Sender<Result<()>>,
    },
    /// Write parts ahead of their commit: (part id, table id, rows).
    Stage {
        parts: Vec<(u64, u32, EncodedRows)>,
    },
    /// Staged parts whose transaction was dropped.
    Abandon {
        parts: Vec<u64>,
    },
}

/// Per WAL file: the end of the rows it holds, per table id, and the staged
/// parts in it that are not committed yet (they pin the file).
#[derive(Debug, Clone, Default)]
struct WalFileRows {
    path: PathBuf,
    row_end: HashMap<u32, u64>,
    open_parts: usize,
}

/// Shared state.
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    options: Options,
    tables: RwLock<Catalog>,
    visible_lsn: AtomicU64,
    poisoned: Mutex<Option<String>>,
    wal_files: Mutex<Vec<WalFileRows>>,
    /// Next staged-part id (unique across the WAL's lifetime).
    next_part_id: AtomicU64,
    /// Bytes of memtable rows across all tables (see
    /// [`Options::max_unsealed_bytes`]).
    unsealed_bytes: AtomicUsize,
    /// Woken after every seal, for [`Database::memory_available`].
    sealed: Notify,
    /// Set when the committer has stopped: whether its final WAL sync
    /// succeeded (seals finishing during shutdown wait for it).
    final_wal_sync: Mutex<Option<bool>>,
    final_wal_synced: Condvar,
}

impl Shared {
    fn over_memory_limit(&self) -> bool {
        self.unsealed_bytes.load(Ordering::Acquire) > self.options.max_unsealed_bytes
    }

    /// Records that the committer stopped (first call wins).
    fn set_final_wal_sync(&self, succeeded: bool) {
        let mut done = lock(&self.final_wal_sync);
        if done.is_none() {
            *done = Some(succeeded);
        }
        self.final_wal_synced.notify_all();
    }

    /// Waits for the committer to stop; true if it left the whole WAL
    /// durable.
    fn wait_for_final_wal_sync(&self) -> bool {
        let mut done = lock(&self.final_wal_sync);
        loop {
            if let Some(ok) = *done {
                return ok;
            }
            done = self
                .final_wal_synced
                .wait(done)
                .unwrap_or_else(|p| p.into_inner());
        }
    }
}

#[derive(Debug, Default)]
struct Catalog {
    by_name: HashMap<String, Arc<Table>>,
    by_id: HashMap<u32, Arc<Table>>,
    next_id: u32,
}

/// Summary of one table for `quiver tables`.
#[derive(Debug, Clone)]
pub struct TableInfo {
    /// Schema.
    pub schema: Arc<TableSchema>,
    /// Committed rows.
    pub row_count: u64,
    /// Sealed segments.
    pub segments: usize,
}

/// An open database.
#[derive(Debug)]
pub struct Database {
    shared: Arc<Shared>,
    requests: RequestChannel,
    committer: Mutex<Option<JoinHandle<()>>>,
    sealer: Mutex<Option<JoinHandle<()>>>,
    seal_syncer: Mutex<Option<JoinHandle<()>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

const CATALOG_FILE: &str = "catalog";
const CATALOG_MAGIC: [u8; 4] = *b"QCAT";

impl Database {
    /// Opens (creating if needed) the database in `dir`, recovering every
    /// committed transaction from the WAL. With `options.read_only` nothing
    /// is written: no torn tail is cut and no commits are accepted.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Arc<Database>> {
        let dir = dir.as_ref().to_path_buf();
        if options.read_only {
            // A server may seal and delete WAL files while we read; retry.
            let mut attempt = 0;
            loop {
                match Self::recover(&dir, &options) {
                    Err(StorageError::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound && attempt < 5 =>
                    {
                        attempt += 1;
                    }
                    other => return other.map(|(shared, _)| Self::without_threads(shared)),
                }
            }
        }
        wal::create_dir_durably(&dir)?;
        let started = Instant::now();
        let (shared, next_lsn) = Self::recover(&dir, &options)?;
        let wal = WalWriter::open(&dir.join("wal"), next_lsn, options.wal_roll_size)?;
        let shared = Arc::new(shared);
        {
            let mut files = lock(&shared.wal_files);
            if files.last().is_none_or(|f| f.path != wal.current_path()) {
                files.push(WalFileRows {
                    path: wal.current_path().to_path_buf(),
                    row_end: HashMap::new(),
                    open_parts: 0,
                });
            }
        }
        let (seal_tx, seal_rx) = mpsc::channel::<Arc<Table>>();
        if shared.over_memory_limit() {
            // The replayed WAL alone is over the limit: seal before ingest
            // waits on it.
            let mut all = Vec::new();
            force_seal_biggest(&shared, &mut all);
            for (t, _) in all {
                let _ = seal_tx.send(t);
            }
        }
        let (tx, rx) = mpsc::channel::<Request>();
        let requests: RequestChannel = Arc::new(Mutex::new(Some(tx)));
        let committer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("quiver-committer".into())
                .spawn(move || {
                    Committer {
                        shared,
                        wal,
                        next_lsn,
                        seal_tx,
                        part_files: HashMap::new(),
                    }
                    .run(rx)
                })
                .map_err(StorageError::io("spawn", "committer"))?
        };
        let (sealed_tx, sealed_rx) = mpsc::sync_channel::<SealedRows>(SEALS_AWAITING_SYNC);
        let seal_syncer = {
            let shared = shared.clone();
            let requests = Arc::clone(&requests);
            std::thread::Builder::new()
                .name("quiver-seal-syncer".into())
                .spawn(move || seal_syncer_loop(&shared, &requests, sealed_rx))
                .map_err(StorageError::io("spawn", "seal syncer"))?
        };
        let sealer = {
            let shared = shared.clone();
            let requests = Arc::clone(&requests);
            std::thread::Builder::new()
                .name("quiver-sealer".into())
                .spawn(move || sealer_loop(&shared, &requests, seal_rx, &sealed_tx))
                .map_err(StorageError::io("spawn", "sealer"))?
        };
        let db = Arc::new(Database {
            shared,
            requests,
            committer: Mutex::new(Some(committer)),
            sealer: Mutex::new(Some(sealer)),
            seal_syncer: Mutex::new(Some(seal_syncer)),
        });
        tracing::info!(
            dir = %dir.display(),
            tables = db.tables().len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "database open"
        );
        Ok(db)
    }

    fn without_threads(shared: Shared) -> Arc<Database> {
        Arc::new(Database {
            shared: Arc::new(shared),
            requests: Arc::new(Mutex::new(None)),
            committer: Mutex::new(None),
            sealer: Mutex::new(None),
            seal_syncer: Mutex::new(None),
        })
    }

    fn send(&self, request: Request) -> Result<()> {
        if let Some(reason) = lock(&self.shared.poisoned).clone() {
            return Err(StorageError::Poisoned(reason));
        }
        match lock(&self.requests).as_ref() {
            Some(tx) => tx.send(request).map_err(|_| StorageError::Closed),
            None => Err(StorageError::Closed),
        }
    }

    /// The table called `name` (ASCII case-insensitive).
    pub fn table(&self, name: &str) -> Option<Arc<Table>> {
        self.shared
            .tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_name
            .get(&name.to_ascii_lowercase())
            .cloned()
    }

    /// Every table, ordered by name.
    pub fn tables(&self) -> Vec<TableInfo> {
        let catalog = self.shared.tables.read().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<TableInfo> = catalog
            .by_id
            .values()
            .map(|t| {
                let snap = t.snapshot(self.visible_lsn());
                TableInfo {
                    schema: t.schema(),
                    row_count: snap.row_count(),
                    segments: snap.segments().len(),
                }
            })
            .collect();
        out.sort_by(|a, b| a.schema.name.cmp(&b.schema.name));
        out
    }

    /// The last LSN whose rows are visible.
    pub fn visible_lsn(&self) -> u64 {
        self.shared.visible_lsn.load(Ordering::Acquire)
    }

    /// A snapshot of `name` at the current visible LSN.
    pub fn snapshot(&self, name: &str) -> Option<TableSnapshot> {
        let lsn = self.visible_lsn();
        self.table(name).map(|t| t.snapshot(lsn))
    }

    /// Creates a table (durably logged) and returns it; if a table of that
    /// name (ignoring ASCII case) exists, returns the existing one.
    pub fn create_table(&self, schema: TableSchema) -> oneshot::Receiver<Result<Arc<Table>>> {
        let (reply, rx) = oneshot::channel();
        if let Some(t) = self.table(&schema.name) {
            let _ = reply.send(Ok(t));
            return rx;
        }
        let (tx2, rx2) = oneshot::channel();
        match self.send(Request::CreateTable { schema, reply: tx2 }) {
            Ok(()) => rx2,
            Err(e) => {
                let _ = reply.send(Err(e));
                rx
            }
        }
    }

    /// Adds the columns a table lacks (durably logged). Columns that exist
    /// with the same type are fine; with another type it is a
    /// [`StorageError::SchemaMismatch`].
    pub fn add_columns(
        &self,
        table: Arc<Table>,
        columns: Vec<ColumnSchema>,
    ) -> oneshot::Receiver<Result<Arc<TableSchema>>> {
        let (reply, rx) = oneshot::channel();
        if let Err(e) = self.send(Request::AddColumns {
            table,
            columns,
            reply,
        }) {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Err(e));
            return rx;
        }
        rx
    }

    /// Commits `txn`: one WAL record, all its rows or none.
    pub fn commit(&self, txn: Transaction, durable: bool) -> CommitReceipt {
        let (committed, committed_rx) = oneshot::channel();
        let (durable_tx, durable_rx) = if durable {
            let (t, r) = oneshot::channel();
            (Some(t), Some(r))
        } else {
            (None, None)
        };
        if let Err(e) = self.send(Request::Commit {
            txn,
            committed,
            durable: durable_tx,
        }) {
            let (t, r) = oneshot::channel();
            let _ = t.send(Err(e));
            return CommitReceipt {
                committed: r,
                durable: None,
            };
        }
        CommitReceipt {
            committed: committed_rx,
            durable: durable_rx,
        }
    }

    /// Writes the parts of `txn` not yet written to the WAL ahead of its
    /// commit (not visible, not durable): a later [`Database::commit`] of the
    /// transaction then only names them, so a large deferred group commits
    /// without writing its rows again. Dropping `txn` uncommitted abandons
    /// them.
    pub fn stage(&self, txn: &mut Transaction) -> Result<()> {
        let mut parts = Vec::new();
        for p in txn.parts.iter_mut().filter(|p| p.staged.is_none()) {
            let id = self.shared.next_part_id.fetch_add(1, Ordering::Relaxed);
            p.staged = Some(id);
            parts.push((id, p.table.id, std::mem::take(&mut p.rows)));
        }
        if parts.is_empty() {
            return Ok(());
        }
        if txn.abandon.is_none() {
            txn.abandon = Some(self.requests.clone());
        }
        self.send(Request::Stage { parts })
    }

    /// Bytes of committed rows held in memtables (not yet sealed), across
    /// all tables.
    pub fn unsealed_bytes(&self) -> usize {
        self.shared.unsealed_bytes.load(Ordering::Acquire)
    }

    /// Whether unsealed rows exceed [`Options::max_unsealed_bytes`]; ingest
    /// should then wait for [`Database::memory_available`] before taking
    /// more rows. Never true once the database is poisoned (commits fail
    /// then; waiting would not end).
    pub fn over_memory_limit(&self) -> bool {
        self.shared.over_memory_limit() && lock(&self.shared.poisoned).is_none()
    }

    /// Resolves once unsealed rows are back under
    /// [`Options::max_unsealed_bytes`] (at once if they are), or the
    /// database is poisoned (commits then fail, which the caller reports).
    /// Going over the limit makes the committer hand the biggest tables to
    /// the sealer, and the sealer keeps sealing until memory is under it,
    /// so this resolves as fast as the disk takes the segments; a failed
    /// seal is logged and retried every second.
    pub async fn memory_available(&self) {
        loop {
            let mut sealed = std::pin::pin!(self.shared.sealed.notified());
            // Register before checking, so a seal finishing in between
            // still wakes us.
            sealed.as_mut().enable();
            if !self.shared.over_memory_limit() || lock(&self.shared.poisoned).is_some() {
                return;
            }
            sealed.await;
        }
    }

    /// Waits until everything committed so far is fsync'd.
    pub fn sync(&self) -> oneshot::Receiver<Result<()>> {
        let (reply, rx) = oneshot::channel();
        if let Err(e) = self.send(Request::Sync { reply }) {
            let (t, r) = oneshot::channel();
            let _ = t.send(Err(e));
            return r;
        }
        rx
    }

    /// Stops accepting requests, finishes the queued ones, fsyncs, and
    /// stops the committer and sealer threads (seals already queued are
    /// finished and made durable).
    pub fn close(&self) {
        let sender = lock(&self.requests).take();
        drop(sender);
        if let Some(h) = lock(&self.committer).take() {
            let _ = h.join();
            // A committer that panicked never reported its final sync.
            self.shared.set_final_wal_sync(false);
        }
        if let Some(h) = lock(&self.sealer).take() {
            let _ = h.join();
        }
        if let Some(h) = lock(&self.seal_syncer).take() {
            let _ = h.join();
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        self.close();
    }
}

impl Catalog {
    fn insert(&mut self, table: Arc<Table>) {
        self.next_id = self.next_id.max(table.id + 1);
        self.by_name
            .insert(table.schema().name.to_ascii_lowercase(), table.clone());
        self.by_id.insert(table.id, table);
    }
}
