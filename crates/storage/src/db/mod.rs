//! The database: catalog, commit pipeline (group commit), sealing and
//! recovery. This module holds the public API and the state the threads
//! share; `commit` (the committer thread), `durability` (the syncer
//! thread), `sealing` (sealer and seal syncer threads), `wal_files` (which
//! WAL files may go) and `recovery` (opening a data directory) hold the
//! rest.
//!
//! # Commit order and the ack contract
//!
//! One committer thread owns the WAL. It takes every queued request
//! (transactions, table creations, column additions, staged parts), checks
//! and frames each as a WAL record without changing any shared state (a
//! request that breaks a limit is answered with an error and left out),
//! writes them as one commit group, and only then applies the group: the
//! catalog, the memtables, the visible LSN, "committed" answers. It hands
//! the syncer thread what a sync must cover; "durable" answers come from
//! there, once an fsync covers the record. So:
//!
//! 1. A transaction is visible iff its group was written whole (never half:
//!    the visible LSN moves after all of a group's rows are in place, and
//!    recovery replays whole groups only).
//! 2. "Committed" is sent only after (1); "durable" only after an fsync
//!    covering the record.
//! 3. Row ids are assigned in commit order, dense per table.
//! 4. After a failed write or fsync the database is poisoned: nothing more
//!    is written or acknowledged, every waiting request gets an error, and
//!    [`Database::health`] says why. A failed write leaves no part of its
//!    group in the log that recovery would apply.
//!
//! The catalog file is a checkpoint of the DDL in the WAL, stored before
//! WAL files are deleted (never on the commit path).
//!
//! # Sealing
//!
//! When a table's memtable passes `seal_rows` or `seal_bytes`, a sealer
//! thread writes its oldest rows to a segment (for a day-partitioned table,
//! one segment per UTC day they span, in `segments/YYYY-MM-DD/`; see
//! `split_by_day`), switches readers to it and drops those rows from memory,
//! and goes on with the next seal. A seal syncer thread makes the written
//! seals durable in seal order (the segments, then the WAL through their
//! rows' records), records each in its table's manifest and deletes WAL
//! files whose every row a durable manifest now covers (a failure after
//! the rows left memory poisons the database; the WAL keeps them for the
//! restart). Memory is bounded by `max_unsealed_bytes` across tables: past
//! it the biggest tables are sealed whatever their size and
//! [`Database::memory_available`] holds ingest back until the sealer (that
//! is, the disk) has caught up.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::Instant;

use arrow::array::RecordBatch;
use tokio::sync::{Notify, oneshot};

mod commit;
mod durability;
mod recovery;
mod sealing;
mod wal_files;

use durability::Durability;
use sealing::{
    DropRows, SEALS_AWAITING_SYNC, SealerJob, SyncJob, force_seal_biggest, seal_syncer_loop,
    sealer_loop,
};
use wal_files::WalFiles;

use crate::error::{Result, StorageError};
use crate::io::FileSystem;
use crate::limits::{MAX_PART_ROWS, MAX_RECORD_BODY_LEN, MAX_TRANSACTION_PARTS};
use crate::rows::EncodedRows;
use crate::schema::{ColumnSchema, SchemaChange, TableSchema};
use crate::table::{Table, TableSnapshot};
use crate::wal::{self, WalWriter};

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
    /// Most bytes of rows that transactions being built may hold across
    /// all connections (deferred groups waiting for their commit; see
    /// [`Database::reserve_uncommitted`]) (default 1 GiB).
    pub max_uncommitted_bytes: usize,
    /// Where files live (the operating system's file system by default; a
    /// [`crate::io::SimulatedDisk`] in fault-injection tests).
    pub fs: Arc<dyn FileSystem>,
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
            max_uncommitted_bytes: 1 << 30,
            fs: crate::io::os(),
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
    /// here, on the caller's thread. Refused past the limits in
    /// [`crate::limits`] (parts per transaction, rows per part, bytes per
    /// WAL record).
    pub fn add(&mut self, table: Arc<Table>, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if self.parts.len() >= MAX_TRANSACTION_PARTS {
            return Err(StorageError::LimitExceeded {
                what: "table blocks in one transaction",
                value: self.parts.len() as u64 + 1,
                limit: MAX_TRANSACTION_PARTS as u64,
            });
        }
        if batch.num_rows() > MAX_PART_ROWS {
            return Err(StorageError::LimitExceeded {
                what: "rows in one table block",
                value: batch.num_rows() as u64,
                limit: MAX_PART_ROWS as u64,
            });
        }
        table.check_batch(&batch)?;
        let rows = EncodedRows::encode(&batch)?;
        // The part's rows go into one record (with a small head).
        if rows.len() > MAX_RECORD_BODY_LEN - 4096 {
            return Err(StorageError::LimitExceeded {
                what: "bytes of one table block's rows",
                value: rows.len() as u64,
                limit: (MAX_RECORD_BODY_LEN - 4096) as u64,
            });
        }
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

    /// Table blocks (parts) it holds.
    pub fn part_count(&self) -> usize {
        self.parts.len()
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
    pub fn append(&mut self, mut other: Transaction) -> Result<()> {
        if self.parts.len() + other.parts.len() > MAX_TRANSACTION_PARTS {
            return Err(StorageError::LimitExceeded {
                what: "table blocks in one transaction",
                value: (self.parts.len() + other.parts.len()) as u64,
                limit: MAX_TRANSACTION_PARTS as u64,
            });
        }
        self.parts.append(&mut other.parts);
        if self.abandon.is_none() {
            self.abandon = other.abandon.take();
        }
        Ok(())
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
        /// A table of the name existing is an error, not the answer.
        exclusive: bool,
        reply: oneshot::Sender<Result<Arc<Table>>>,
    },
    AlterSchema {
        table: Arc<Table>,
        change: SchemaChange,
        reply: oneshot::Sender<Result<Arc<TableSchema>>>,
    },
    DropTable {
        table: Arc<Table>,
        reply: oneshot::Sender<Result<()>>,
    },
    TruncateTable {
        table: Arc<Table>,
        reply: oneshot::Sender<Result<Arc<Table>>>,
    },
    RenameTable {
        table: Arc<Table>,
        name: String,
        reply: oneshot::Sender<Result<Arc<TableSchema>>>,
    },
    Sync {
        reply: oneshot::Sender<Result<()>>,
    },
    /// Write parts ahead of their commit: (part id, table id, rows).
    Stage {
        parts: Vec<(u64, u32, u64, EncodedRows)>,
    },
    /// Staged parts whose transaction was dropped.
    Abandon {
        parts: Vec<u64>,
    },
}

/// Whether the database can still write, and if not, why.
#[derive(Debug, Default)]
struct Health {
    poisoned: Mutex<Option<String>>,
}

/// Shared state.
#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    options: Options,
    fs: Arc<dyn FileSystem>,
    tables: RwLock<Catalog>,
    visible_lsn: AtomicU64,
    health: Health,
    wal_files: Mutex<WalFiles>,
    /// Next staged-part id (unique across the WAL's lifetime).
    next_part_id: AtomicU64,
    /// Bytes of memtable rows across all tables (see
    /// [`Options::max_unsealed_bytes`]).
    unsealed_bytes: AtomicUsize,
    /// Bytes reserved by transactions being built (see
    /// [`Options::max_uncommitted_bytes`]).
    uncommitted_bytes: AtomicUsize,
    /// Woken after every seal, for [`Database::memory_available`].
    sealed: Notify,
    durability: Durability,
    /// Set when the database closes (seals then stop retrying).
    closing: AtomicBool,
    /// The last lsn of a group that changed the catalog: the catalog
    /// checkpoint waits until the WAL is durable through it, so it never
    /// holds DDL a power cut could take from the log.
    last_ddl_lsn: AtomicU64,
    /// Segments a drop of rows replaced, whose files go once no snapshot
    /// holds them (`sealing::remove_retired_segments`).
    retired_segments: Mutex<Vec<Arc<crate::segment::Segment>>>,
}

impl Shared {
    fn over_memory_limit(&self) -> bool {
        self.unsealed_bytes.load(Ordering::Acquire) > self.options.max_unsealed_bytes
    }

    /// Why the database stopped writing, if it did.
    fn poisoned(&self) -> Option<String> {
        lock(&self.health.poisoned).clone()
    }

    fn check_healthy(&self) -> Result<()> {
        match self.poisoned() {
            Some(reason) => Err(StorageError::Poisoned(reason)),
            None => Ok(()),
        }
    }

    /// Stops all writing after `e` (the first reason is kept): syncs stop
    /// and fail their waiters, ingest waiting for memory is released (its
    /// commits now fail).
    fn poison(&self, e: &StorageError) {
        let reason = {
            let mut p = lock(&self.health.poisoned);
            if p.is_none() {
                tracing::error!(error = %e, "write failed; the database refuses further writes until restarted");
                *p = Some(e.to_string());
            }
            p.clone().unwrap_or_default()
        };
        self.durability.fail(&reason);
        self.sealed.notify_waiters();
    }
}

#[derive(Debug, Default)]
struct Catalog {
    by_name: HashMap<String, Arc<Table>>,
    by_id: HashMap<u32, Arc<Table>>,
    next_id: u32,
}

impl Catalog {
    fn insert(&mut self, table: Arc<Table>) {
        self.next_id = self.next_id.max(table.id + 1);
        self.by_name
            .insert(table.schema().name.to_ascii_lowercase(), table.clone());
        self.by_id.insert(table.id, table);
    }

    fn get(&self, name: &str) -> Option<&Arc<Table>> {
        self.by_name.get(&name.to_ascii_lowercase())
    }

    /// Files `table` under its schema's (new) name.
    fn rename(&mut self, table: &Arc<Table>, old: &str) {
        if self
            .by_name
            .get(&old.to_ascii_lowercase())
            .is_some_and(|t| t.id == table.id)
        {
            self.by_name.remove(&old.to_ascii_lowercase());
        }
        self.by_name
            .insert(table.schema().name.to_ascii_lowercase(), table.clone());
    }

    /// Takes table `id` out (a drop).
    fn remove(&mut self, id: u32) -> Option<Arc<Table>> {
        let table = self.by_id.remove(&id)?;
        let name = table.schema().name.to_ascii_lowercase();
        if self.by_name.get(&name).is_some_and(|t| t.id == id) {
            self.by_name.remove(&name);
        }
        Some(table)
    }
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

/// Bytes of rows a transaction being built holds, reserved against
/// [`Options::max_uncommitted_bytes`]; released when dropped.
#[derive(Debug)]
pub struct UncommittedReservation {
    shared: Arc<Shared>,
    bytes: usize,
}

impl UncommittedReservation {
    /// Reserves `more` bytes too; refused (and nothing more reserved) past
    /// the limit.
    pub fn grow(&mut self, more: usize) -> Result<()> {
        let limit = self.shared.options.max_uncommitted_bytes;
        self.shared
            .uncommitted_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |now| {
                now.checked_add(more).filter(|n| *n <= limit)
            })
            .map_err(|now| StorageError::LimitExceeded {
                what: "bytes of uncommitted rows across all connections",
                value: now.saturating_add(more) as u64,
                limit: limit as u64,
            })?;
        self.bytes += more;
        Ok(())
    }

    /// Bytes reserved.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for UncommittedReservation {
    fn drop(&mut self) {
        self.shared
            .uncommitted_bytes
            .fetch_sub(self.bytes, Ordering::AcqRel);
    }
}

/// An open database.
#[derive(Debug)]
pub struct Database {
    shared: Arc<Shared>,
    requests: RequestChannel,
    committer: Mutex<Option<JoinHandle<()>>>,
    syncer: Mutex<Option<JoinHandle<()>>>,
    sealer: Mutex<Option<JoinHandle<()>>>,
    seal_syncer: Mutex<Option<JoinHandle<()>>>,
    /// Hands the sealer drops of rows (closed first by [`Database::close`]).
    sealer_jobs: Mutex<Option<Sender<SealerJob>>>,
}

/// What [`Database::drop_rows_in`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DroppedRows {
    /// Rows removed.
    pub rows: u64,
    /// Segments whose every row went (their files are deleted).
    pub segments_removed: usize,
    /// Segments rewritten without some of their rows.
    pub segments_rewritten: usize,
}

/// At most this many time ranges in one [`Database::drop_rows_in`].
pub const MAX_DROP_RANGES: usize = 100_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| StorageError::Io {
            op: "spawn",
            path: PathBuf::from(name),
            source: e,
        })
}

impl Database {
    /// Opens (creating if needed) the database in `dir`, recovering every
    /// committed transaction from the WAL. With `options.read_only` nothing
    /// is written: no torn tail is cut and no commits are accepted.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Arc<Database>> {
        let dir = dir.as_ref().to_path_buf();
        let fs = options.fs.clone();
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
        wal::create_dir_durably(&*fs, &dir)?;
        let started = Instant::now();
        let (shared, end) = Self::recover(&dir, &options)?;
        let mut wal = WalWriter::open(fs.clone(), &dir.join("wal"), &end, options.wal_roll_size)?;
        // The writer made the whole log durable: say so in it.
        wal.append_sync_mark(end.next_lsn.saturating_sub(1))?;
        if end.file.is_none() {
            // A new log: its first file was just created.
            lock(&shared.wal_files).roll(wal.current_path().to_path_buf(), end.next_lsn);
        }
        let shared = Arc::new(shared);
        let (seal_tx, seal_rx) = mpsc::channel::<SealerJob>();
        if shared.over_memory_limit() {
            // The replayed WAL alone is over the limit: seal before ingest
            // waits on it.
            let mut all = Vec::new();
            force_seal_biggest(&shared, &mut all);
            for (t, _) in all {
                let _ = seal_tx.send(SealerJob::Seal(t));
            }
        }
        let (tx, rx) = mpsc::channel::<Request>();
        let requests: RequestChannel = Arc::new(Mutex::new(Some(tx)));
        let syncer = {
            let shared = shared.clone();
            spawn("quiver-syncer", move || {
                shared.durability.run(|e| shared.poison(e));
            })?
        };
        let sealer_jobs = Mutex::new(Some(seal_tx.clone()));
        let committer = {
            let shared = shared.clone();
            spawn("quiver-committer", move || {
                commit::Committer::new(shared, wal, seal_tx).run(rx)
            })?
        };
        let (sealed_tx, sealed_rx) = mpsc::sync_channel::<SyncJob>(SEALS_AWAITING_SYNC);
        let seal_syncer = {
            let shared = shared.clone();
            spawn("quiver-seal-syncer", move || {
                seal_syncer_loop(&shared, sealed_rx)
            })?
        };
        let sealer = {
            let shared = shared.clone();
            spawn("quiver-sealer", move || {
                sealer_loop(&shared, seal_rx, &sealed_tx)
            })?
        };
        let db = Arc::new(Database {
            shared,
            requests,
            committer: Mutex::new(Some(committer)),
            syncer: Mutex::new(Some(syncer)),
            sealer: Mutex::new(Some(sealer)),
            seal_syncer: Mutex::new(Some(seal_syncer)),
            sealer_jobs,
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
            syncer: Mutex::new(None),
            sealer: Mutex::new(None),
            seal_syncer: Mutex::new(None),
            sealer_jobs: Mutex::new(None),
        })
    }

    fn send(&self, request: Request) -> Result<()> {
        self.shared.check_healthy()?;
        // A request that cannot be sent is dropped only after the lock is
        // released: a transaction in it reports its abandoned parts
        // through this same channel.
        let unsent = match lock(&self.requests).as_ref() {
            Some(tx) => tx.send(request).err().map(|e| e.0),
            None => Some(request),
        };
        match unsent {
            None => Ok(()),
            Some(request) => {
                drop(request);
                Err(self
                    .shared
                    .poisoned()
                    .map_or(StorageError::Closed, StorageError::Poisoned))
            }
        }
    }

    /// `None` while the database can write; once a write or fsync failed,
    /// why (it then refuses every write until reopened).
    pub fn health(&self) -> Option<String> {
        self.shared.poisoned()
    }

    /// The table called `name` (ASCII case-insensitive).
    pub fn table(&self, name: &str) -> Option<Arc<Table>> {
        self.shared
            .tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
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
                    segments: snap.segments().iter().filter(|s| s.has_rows()).count(),
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

    /// Snapshots of the tables called `names` (`None` for a table that does
    /// not exist) at one LSN, with the LSN: a transaction that spans them is
    /// in all of them or in none, and no row committed later is in any.
    ///
    /// The tables' states are read-locked together (in id order) before the
    /// LSN is read: a sealed row was visible when it was sealed, so every
    /// row a segment holds is at or below the LSN read after the locks.
    pub fn snapshots(&self, names: &[&str]) -> (u64, Vec<Option<TableSnapshot>>) {
        let tables: Vec<Option<Arc<Table>>> = names.iter().map(|n| self.table(n)).collect();
        let mut order: Vec<&Arc<Table>> = tables.iter().flatten().collect();
        order.sort_by_key(|t| t.id);
        order.dedup_by_key(|t| t.id);
        let guards: Vec<(u32, _)> = order.iter().map(|t| (t.id, t.state())).collect();
        let lsn = self.visible_lsn();
        let snapshots = tables
            .iter()
            .map(|t| {
                t.as_ref().map(|t| {
                    let (_, guard) = guards
                        .iter()
                        .find(|(id, _)| *id == t.id)
                        .expect("every table was locked");
                    t.snapshot_of(guard, lsn)
                })
            })
            .collect();
        drop(guards);
        (lsn, snapshots)
    }

    /// Creates a table (logged in the WAL) and returns it; if a table of
    /// that name (ignoring ASCII case) exists, returns the existing one.
    pub fn create_table(&self, schema: TableSchema) -> oneshot::Receiver<Result<Arc<Table>>> {
        self.create(schema, false)
    }

    /// Creates a table (logged in the WAL) and returns it; fails with
    /// [`StorageError::TableExists`] if a table of that name exists, also
    /// one another client created a moment before.
    pub fn create_new_table(&self, schema: TableSchema) -> oneshot::Receiver<Result<Arc<Table>>> {
        self.create(schema, true)
    }

    fn create(
        &self,
        schema: TableSchema,
        exclusive: bool,
    ) -> oneshot::Receiver<Result<Arc<Table>>> {
        let (reply, rx) = oneshot::channel();
        if let Some(t) = self.table(&schema.name) {
            let _ = reply.send(match exclusive {
                true => Err(StorageError::TableExists {
                    table: t.schema().name.clone(),
                }),
                false => Ok(t),
            });
            return rx;
        }
        if let Err(e) = schema.validate() {
            let _ = reply.send(Err(e));
            return rx;
        }
        let (tx2, rx2) = oneshot::channel();
        match self.send(Request::CreateTable {
            schema,
            exclusive,
            reply: tx2,
        }) {
            Ok(()) => rx2,
            Err(e) => {
                let _ = reply.send(Err(e));
                rx
            }
        }
    }

    /// Adds the columns a table lacks (logged in the WAL) and returns the
    /// table's schema after it. A column that exists already (under any
    /// type: another connection may have just added it) is left as it is;
    /// the caller converts its values to the column's type or refuses them.
    pub fn add_columns(
        &self,
        table: Arc<Table>,
        columns: Vec<ColumnSchema>,
    ) -> oneshot::Receiver<Result<Arc<TableSchema>>> {
        self.alter_schema(table, SchemaChange::Add(columns))
    }

    /// Changes a table's columns (logged in the WAL) and returns its schema
    /// after it: adds, drops or renames columns as
    /// [`TableSchema::apply_change`] does. Stored data is not rewritten:
    /// a renamed column keeps its stored name, a dropped column's data
    /// stays in place, unread. Queries already running keep the schema
    /// they started with.
    pub fn alter_schema(
        &self,
        table: Arc<Table>,
        change: SchemaChange,
    ) -> oneshot::Receiver<Result<Arc<TableSchema>>> {
        let (reply, rx) = oneshot::channel();
        if let Err(e) = self.send(Request::AlterSchema {
            table,
            change,
            reply,
        }) {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Err(e));
            return rx;
        }
        rx
    }

    /// Drops a table (logged in the WAL): it leaves the catalog at once,
    /// later commits to it fail, queries already reading it finish, and its
    /// files are removed at the next open. `None` when no table of that
    /// name (ignoring ASCII case) exists.
    pub fn drop_table(&self, name: &str) -> Option<oneshot::Receiver<Result<()>>> {
        Some(self.drop_this_table(self.table(name)?))
    }

    /// Drops `table` itself (whatever name it has now): fails if it was
    /// dropped already.
    pub fn drop_this_table(&self, table: Arc<Table>) -> oneshot::Receiver<Result<()>> {
        let (reply, rx) = oneshot::channel();
        if let Err(e) = self.send(Request::DropTable { table, reply }) {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Err(e));
            return rx;
        }
        rx
    }

    /// Empties a table: one commit group drops it and creates a table of
    /// the same name and schema in its place (a new id, empty symbol
    /// dictionaries), so after a crash there is either the old table or
    /// the empty one. Returns the new table; `None` when no table of that
    /// name exists.
    pub fn truncate_table(&self, name: &str) -> Option<oneshot::Receiver<Result<Arc<Table>>>> {
        let table = self.table(name)?;
        let (reply, rx) = oneshot::channel();
        if let Err(e) = self.send(Request::TruncateTable { table, reply }) {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Err(e));
            return Some(rx);
        }
        Some(rx)
    }

    /// Renames a table (logged in the WAL); its files stay where they are
    /// (directories are named by table id). Refused when another table has
    /// the new name. `None` when no table is called `from`.
    pub fn rename_table(
        &self,
        from: &str,
        to: &str,
    ) -> Option<oneshot::Receiver<Result<Arc<TableSchema>>>> {
        let table = self.table(from)?;
        let (reply, rx) = oneshot::channel();
        let request = Request::RenameTable {
            table,
            name: to.to_string(),
            reply,
        };
        if let Err(e) = self.send(request) {
            let (tx, rx) = oneshot::channel();
            let _ = tx.send(Err(e));
            return Some(rx);
        }
        Some(rx)
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
            parts.push((
                id,
                p.table.id,
                p.batch.num_rows() as u64,
                std::mem::take(&mut p.rows),
            ));
        }
        if parts.is_empty() {
            return Ok(());
        }
        if txn.abandon.is_none() {
            txn.abandon = Some(self.requests.clone());
        }
        self.send(Request::Stage { parts })
    }

    /// Reserves room for `bytes` of rows a transaction being built will
    /// hold (across all connections at most
    /// [`Options::max_uncommitted_bytes`]); refused past it.
    pub fn reserve_uncommitted(&self, bytes: usize) -> Result<UncommittedReservation> {
        let mut r = UncommittedReservation {
            shared: self.shared.clone(),
            bytes: 0,
        };
        r.grow(bytes)?;
        Ok(r)
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
        self.shared.over_memory_limit() && self.shared.poisoned().is_none()
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
            if !self.shared.over_memory_limit() || self.shared.poisoned().is_some() {
                return;
            }
            sealed.await;
        }
    }

    /// Removes `table`'s rows whose designated timestamp lies in one of
    /// `ranges` (half-open, raw values in the column's unit): QuestDB's
    /// DROP PARTITION and TTL. Every row committed before the call is
    /// sealed first, so the drop reaches all of them; rows committed while
    /// it runs may stay. The row ids of removed rows are never reused.
    /// Crash-safe: one manifest switches from the old segments to what is
    /// left, and files no manifest lists are removed at the next open.
    /// Files go once no query reads them. Refused for a table without a
    /// designated timestamp, an empty range or more than
    /// [`MAX_DROP_RANGES`] ranges.
    pub fn drop_rows_in(
        &self,
        table: Arc<Table>,
        ranges: Vec<(i64, i64)>,
    ) -> oneshot::Receiver<Result<DroppedRows>> {
        let (reply, rx) = oneshot::channel();
        let name = table.schema().name.clone();
        let invalid = |reason: String| StorageError::InvalidRequest {
            table: name.clone(),
            reason,
        };
        let checked = if table.schema().designated_timestamp.is_none() {
            Err(invalid("the table has no designated timestamp".into()))
        } else if ranges.len() > MAX_DROP_RANGES {
            Err(invalid(format!(
                "{} time ranges to drop, more than {MAX_DROP_RANGES}",
                ranges.len()
            )))
        } else if let Some((lo, hi)) = ranges.iter().find(|(lo, hi)| lo >= hi) {
            Err(invalid(format!(
                "an empty time range to drop: {lo} .. {hi}"
            )))
        } else {
            self.shared.check_healthy()
        };
        if let Err(e) = checked {
            let _ = reply.send(Err(e));
            return rx;
        }
        let job = SealerJob::DropRows(DropRows {
            table,
            ranges: merge_ranges(ranges),
            reply,
        });
        let unsent = match lock(&self.sealer_jobs).as_ref() {
            Some(tx) => tx.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        if let Some(SealerJob::DropRows(job)) = unsent {
            let _ = job.reply.send(Err(StorageError::Closed));
        }
        rx
    }

    /// Deletes the files of segments a drop replaced that no query reads
    /// any more (done after every drop and seal; call it to return the
    /// space sooner after queries that ran during a drop end).
    pub fn remove_unused_segment_files(&self) {
        sealing::remove_retired_segments(&self.shared);
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

    /// Stops accepting requests, finishes the queued ones, stops the
    /// committer and sealer threads (seals already written are made
    /// durable), then fsyncs the WAL.
    pub fn close(&self) {
        self.shared.closing.store(true, Ordering::Release);
        let sender = lock(&self.requests).take();
        drop(sender);
        let sealer_jobs = lock(&self.sealer_jobs).take();
        drop(sealer_jobs);
        for handle in [&self.committer, &self.sealer, &self.seal_syncer] {
            if let Some(h) = lock(handle).take()
                && h.join().is_err()
            {
                self.shared
                    .poison(&StorageError::Poisoned("a storage thread panicked".into()));
            }
        }
        self.shared.durability.close();
        if let Some(h) = lock(&self.syncer).take() {
            let _ = h.join();
        }
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }
}

/// Half-open `ranges` sorted, with overlapping and touching ones joined
/// (what [`Database::drop_rows_in`] works with; the SQL layer's time
/// ranges use it too).
pub fn merge_ranges(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

impl Drop for Database {
    fn drop(&mut self) {
        self.close();
    }
}
