//! The database: catalog, commit pipeline (group commit), sealing and
//! recovery.
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

    fn recover(dir: &Path, options: &Options) -> Result<(Shared, u64)> {
        let mut catalog = load_catalog(dir)?;
        for table in catalog.by_id.values() {
            let manifest = Manifest::load(&table.dir)?;
            if !options.read_only {
                // Without a manifest (the first seal did not finish), every
                // segment file is an orphan.
                remove_orphan_segments(
                    &table.dir,
                    manifest.as_ref().unwrap_or(&Manifest::default()),
                )?;
            }
            if let Some(m) = manifest {
                let mut state = table.state.write().unwrap_or_else(|p| p.into_inner());
                state.sealed_row_end = m.sealed_row_end;
                state.durable_sealed_row_end = m.sealed_row_end;
                state.next_row_id = m.sealed_row_end;
                state.segments = m.segments.into_iter().map(Arc::new).collect();
                drop(state);
                for (column, entries) in m.symbols {
                    table.replace_symbols(&column, SymbolTable::from_strings(entries));
                }
            }
        }
        let wal_dir = dir.join("wal");
        let recovered = if options.read_only {
            wal::read_only(&wal_dir)?
        } else {
            wal::recover(&wal_dir)?
        };
        let mut wal_files: Vec<WalFileRows> = Vec::new();
        let mut last_lsn = 0u64;
        // Staged parts not yet committed: id → (table id, rows, file index).
        let mut staged: HashMap<u64, (u32, RecordBatch, usize)> = HashMap::new();
        let mut max_part_id = 0u64;
        let replayed = recovered.records.len();
        for (path, record) in recovered.records {
            if wal_files.last().is_none_or(|f| f.path != path) {
                wal_files.push(WalFileRows {
                    path: path.clone(),
                    row_end: HashMap::new(),
                    open_parts: 0,
                });
            }
            let source = path.display().to_string();
            let mut r = Reader::new(&record.body, &source);
            match record.kind {
                RecordKind::Part => {
                    let id = r.u64()?;
                    let table_id = r.u32()?;
                    let rows = r.bytes()?;
                    r.finish()?;
                    let batch = decode_rows(rows).map_err(|e| undecodable(&r, e))?;
                    max_part_id = max_part_id.max(id);
                    staged.insert(id, (table_id, batch, wal_files.len() - 1));
                }
                RecordKind::CreateTable | RecordKind::AddColumns => {
                    let id = r.u32()?;
                    let schema = TableSchema::decode(&mut r)?;
                    match catalog.by_id.get(&id) {
                        Some(t) if t.schema().version >= schema.version => {}
                        Some(t) => t.set_schema(schema),
                        None => {
                            let t = Arc::new(Table::new(id, table_dir(dir, id), schema));
                            catalog.insert(t);
                        }
                    }
                }
                RecordKind::Transaction => {
                    let parts = r.u16()?;
                    for _ in 0..parts {
                        let id = r.u32()?;
                        let first_row_id = r.u64()?;
                        let table = catalog
                            .by_id
                            .get(&id)
                            .cloned()
                            .ok_or_else(|| r.corrupt("unknown table id"))?;
                        let sections = r.u32()?;
                        for _ in 0..sections {
                            let column = r.str()?;
                            let start = r.u32()?;
                            let n = r.u32()? as usize;
                            let mut entries = Vec::with_capacity(n.min(r.remaining()));
                            for _ in 0..n {
                                entries.push(r.str()?);
                            }
                            let symbols = table
                                .symbols(&column)
                                .ok_or_else(|| r.corrupt("symbols for a non-SYMBOL column"))?;
                            symbols
                                .apply_logged(start, &entries)
                                .map_err(|reason| r.corrupt(reason))?;
                        }
                        let (mut batch, part_file) = match r.u8()? {
                            0 => {
                                let rows = r.bytes()?;
                                let batch = decode_rows(rows).map_err(|e| undecodable(&r, e))?;
                                (batch, None)
                            }
                            1 => {
                                let part = r.u64()?;
                                let rows = r.u64()?;
                                match staged.remove(&part) {
                                    Some((table_id, batch, file)) => {
                                        if table_id != id || batch.num_rows() as u64 != rows {
                                            return Err(r.corrupt(
                                                "a staged part does not match its reference",
                                            ));
                                        }
                                        (batch, Some(file))
                                    }
                                    None => {
                                        // Its file was deleted once its rows were sealed.
                                        let sealed = table
                                            .state
                                            .read()
                                            .unwrap_or_else(|p| p.into_inner())
                                            .sealed_row_end;
                                        if first_row_id + rows > sealed {
                                            return Err(r.corrupt(
                                                "a transaction names a part that is neither in the WAL nor sealed",
                                            ));
                                        }
                                        continue;
                                    }
                                }
                            }
                            _ => return Err(r.corrupt("unknown part mode")),
                        };
                        let rows = batch.num_rows() as u64;
                        let end = first_row_id + rows;
                        if let Some(file) = part_file {
                            let e = wal_files[file].row_end.entry(id).or_insert(end);
                            *e = (*e).max(end);
                        }
                        let state = table.state.write().unwrap_or_else(|p| p.into_inner());
                        let mut first = first_row_id;
                        if end <= state.sealed_row_end {
                            continue;
                        }
                        if first < state.sealed_row_end {
                            let skip = (state.sealed_row_end - first) as usize;
                            batch = batch.slice(skip, batch.num_rows() - skip);
                            first = state.sealed_row_end;
                        }
                        if first != state.next_row_id {
                            return Err(r.corrupt("row ids do not continue the table"));
                        }
                        drop(state);
                        table.append(StoredBatch {
                            lsn: record.lsn,
                            first_row_id: first,
                            batch,
                        });
                        let f = wal_files.last_mut().expect("pushed above");
                        f.row_end.insert(id, end);
                    }
                    r.finish()?;
                }
            }
            last_lsn = record.lsn;
        }
        if replayed > 0 || recovered.cut_bytes > 0 {
            tracing::info!(
                records = replayed,
                cut_bytes = recovered.cut_bytes,
                uncommitted_parts = staged.len(),
                "WAL replayed"
            );
        }
        let unsealed_bytes = catalog
            .by_id
            .values()
            .map(|t| {
                t.state
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .memtable_bytes
            })
            .sum();
        let shared = Shared {
            dir: dir.to_path_buf(),
            options: options.clone(),
            tables: RwLock::new(catalog),
            visible_lsn: AtomicU64::new(last_lsn),
            poisoned: Mutex::new(None),
            wal_files: Mutex::new(wal_files),
            next_part_id: AtomicU64::new(max_part_id + 1),
            unsealed_bytes: AtomicUsize::new(unsealed_bytes),
            sealed: Notify::new(),
            final_wal_sync: Mutex::new(None),
            final_wal_synced: Condvar::new(),
        };
        Ok((shared, recovered.next_lsn))
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

fn table_dir(dir: &Path, id: u32) -> PathBuf {
    dir.join("tables").join(id.to_string())
}

fn load_catalog(dir: &Path) -> Result<Catalog> {
    let path = dir.join(CATALOG_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Catalog::default()),
        Err(e) => return Err(StorageError::io("read", &path)(e)),
    };
    let corrupt = |reason| StorageError::Corrupt {
        path: path.clone(),
        offset: 0,
        reason,
    };
    if bytes.len() < 8 || bytes[..4] != CATALOG_MAGIC {
        return Err(corrupt("not a catalog"));
    }
    if crc32c::crc32c(&bytes[8..]) != u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes")) {
        return Err(corrupt("checksum mismatch"));
    }
    let source = path.display().to_string();
    let mut r = Reader::new(&bytes[8..], &source);
    let mut catalog = Catalog {
        next_id: r.u32()?,
        ..Catalog::default()
    };
    let n = r.u32()?;
    for _ in 0..n {
        let id = r.u32()?;
        let schema = TableSchema::decode(&mut r)?;
        catalog.insert(Arc::new(Table::new(id, table_dir(dir, id), schema)));
    }
    r.finish()?;
    Ok(catalog)
}

fn store_catalog(dir: &Path, catalog: &Catalog) -> Result<()> {
    let mut w = Writer::default();
    w.u32(catalog.next_id);
    let mut tables: Vec<&Arc<Table>> = catalog.by_id.values().collect();
    tables.sort_by_key(|t| t.id);
    w.u32(tables.len() as u32);
    for t in tables {
        w.u32(t.id);
        t.schema().encode(&mut w);
    }
    let body = w.into_inner();
    let mut bytes = CATALOG_MAGIC.to_vec();
    bytes.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
    bytes.extend_from_slice(&body);
    write_durably(dir, CATALOG_FILE, &bytes)
}

/// A WAL record's rows that passed the checksum but do not decode.
fn undecodable(r: &Reader<'_>, e: arrow::error::ArrowError) -> StorageError {
    tracing::error!(error = %e, "undecodable rows in a WAL record");
    r.corrupt("undecodable rows")
}

fn remove_orphan_segments(table_dir: &Path, manifest: &Manifest) -> Result<()> {
    let seg_dir = table_dir.join("segments");
    let Ok(entries) = fs::read_dir(&seg_dir) else {
        return Ok(());
    };
    let mut files = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            // A day partition.
            if let Ok(inner) = fs::read_dir(&path) {
                files.extend(inner.flatten().map(|e| e.path()));
            }
        } else {
            files.push(path);
        }
    }
    for path in files {
        if !manifest.segments.iter().any(|s| s.path == path) {
            tracing::info!(path = %path.display(), "removing a segment no manifest lists");
            fs::remove_file(&path).map_err(StorageError::io("remove", &path))?;
        }
    }
    Ok(())
}

struct Committer {
    shared: Arc<Shared>,
    wal: WalWriter,
    next_lsn: u64,
    seal_tx: Sender<Arc<Table>>,
    /// WAL file of each staged part not yet committed or abandoned.
    part_files: HashMap<u64, PathBuf>,
}

/// A request after its record was framed, waiting for the write.
enum Framed {
    Commit {
        lsn: u64,
        parts: Vec<(Arc<Table>, u64, RecordBatch)>,
        committed: oneshot::Sender<Result<Committed>>,
        durable: Option<oneshot::Sender<Result<()>>>,
    },
    Table(oneshot::Sender<Result<Arc<Table>>>, Arc<Table>),
    Schema(oneshot::Sender<Result<Arc<TableSchema>>>, Arc<TableSchema>),
    Sync(oneshot::Sender<Result<()>>),
}

impl Committer {
    fn run(mut self, rx: Receiver<Request>) {
        let (syncer_tx, syncer_rx) = mpsc::channel::<SyncRequest>();
        let syncer = {
            let shared = self.shared.clone();
            std::thread::Builder::new()
                .name("quiver-syncer".into())
                .spawn(move || syncer_loop(&shared, syncer_rx))
        };
        let syncer = match syncer {
            Ok(h) => Some(h),
            Err(e) => {
                tracing::warn!(error = %e, "no syncer thread; fsyncs run on the committer");
                None
            }
        };
        let mut buf: Vec<Chunk> = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while group.len() < 1024 {
                match rx.try_recv() {
                    Ok(r) => group.push(r),
                    Err(_) => break,
                }
            }
            buf.clear();
            let mut framed = Vec::with_capacity(group.len());
            let mut catalog_changed = false;
            let mut reserved: HashMap<u32, u64> = HashMap::new();
            for request in group {
                if let Some(f) = self.frame(request, &mut buf, &mut catalog_changed, &mut reserved)
                {
                    framed.push(f);
                }
            }
            if let Err(e) = self.write(&buf, catalog_changed) {
                self.poison(&e, framed);
                continue;
            }
            let mut wants_sync = self.shared.options.sync_every_commit;
            let mut durable_replies = Vec::new();
            let mut max_lsn = None;
            let mut touched: Vec<(Arc<Table>, bool)> = Vec::new();
            let mut replies = Vec::new();
            for f in framed {
                match f {
                    Framed::Commit {
                        lsn,
                        parts,
                        committed,
                        durable,
                    } => {
                        let mut names = Vec::new();
                        for (table, first_row_id, batch) in parts {
                            let bytes = table.append(StoredBatch {
                                lsn,
                                first_row_id,
                                batch,
                            });
                            self.shared
                                .unsealed_bytes
                                .fetch_add(bytes, Ordering::AcqRel);
                            let name = table.schema().name.clone();
                            if !names.contains(&name) {
                                names.push(name);
                            }
                            if !touched.iter().any(|(t, _)| Arc::ptr_eq(t, &table)) {
                                touched.push((table, false));
                            }
                        }
                        max_lsn = Some(lsn);
                        replies.push((committed, Committed { lsn, tables: names }));
                        if let Some(d) = durable {
                            wants_sync = true;
                            durable_replies.push(d);
                        }
                    }
                    Framed::Table(reply, t) => {
                        let _ = reply.send(Ok(t));
                    }
                    Framed::Schema(reply, s) => {
                        let _ = reply.send(Ok(s));
                    }
                    Framed::Sync(reply) => {
                        wants_sync = true;
                        durable_replies.push(reply);
                    }
                }
            }
            if let Some(lsn) = max_lsn {
                self.shared.visible_lsn.store(lsn, Ordering::Release);
            }
            for (reply, c) in replies {
                let _ = reply.send(Ok(c));
            }
            if wants_sync {
                // The fsyncs run on the syncer thread, so commits keep
                // flowing while the disk works; the durable replies go out
                // when the fsyncs covering this group are done.
                let job = self.wal.sync_job();
                if let Err(mpsc::SendError((job, replies))) = syncer_tx.send((job, durable_replies))
                {
                    finish_sync(&self.shared, vec![job], replies);
                }
            }
            match self.wal.roll_if_full(self.next_lsn) {
                Ok(Some(path)) => lock(&self.shared.wal_files).push(WalFileRows {
                    path,
                    row_end: HashMap::new(),
                    open_parts: 0,
                }),
                Ok(None) => {}
                Err(e) => self.set_poisoned(&e),
            }
            self.seal_tables_pinning_old_wal_files(&mut touched);
            if self.shared.over_memory_limit() {
                force_seal_biggest(&self.shared, &mut touched);
            }
            for (t, force) in touched {
                let state = t.state.read().unwrap_or_else(|p| p.into_inner());
                let unsealed = state.next_row_id - state.sealed_row_end;
                if !state.sealing
                    && (force
                        || unsealed >= self.shared.options.seal_rows
                        || state.memtable_bytes >= self.shared.options.seal_bytes)
                {
                    drop(state);
                    let _ = self.seal_tx.send(t);
                }
            }
        }
        // Channel closed: let the syncer finish, then make everything
        // durable before stopping.
        drop(syncer_tx);
        if let Some(h) = syncer {
            let _ = h.join();
        }
        match self.wal.sync() {
            Ok(()) => self
                .shared
                .set_final_wal_sync(lock(&self.shared.poisoned).is_none()),
            Err(e) => {
                tracing::error!(error = %e, "final WAL sync failed");
                self.shared.set_final_wal_sync(false);
            }
        }
    }

    /// Marks for sealing (whatever their size) the tables that hold unsealed
    /// rows in the oldest WAL file once there are too many files.
    fn seal_tables_pinning_old_wal_files(&self, touched: &mut Vec<(Arc<Table>, bool)>) {
        let files = lock(&self.shared.wal_files);
        if files.len() <= self.shared.options.max_wal_files.max(1) {
            return;
        }
        let pinning: Vec<(u32, u64)> = files[0].row_end.iter().map(|(k, v)| (*k, *v)).collect();
        drop(files);
        let catalog = self.shared.tables.read().unwrap_or_else(|p| p.into_inner());
        for (id, end) in pinning {
            // Rows already sealed wait for their seal to be durable, not for
            // another seal (which would only cut a tiny segment).
            if let Some(t) = catalog.by_id.get(&id)
                && t.state
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .sealed_row_end
                    < end
            {
                match touched.iter_mut().find(|(x, _)| Arc::ptr_eq(x, t)) {
                    Some(entry) => entry.1 = true,
                    None => touched.push((t.clone(), true)),
                }
            }
        }
    }

    /// Frames one request into `buf`, updating the catalog for DDL.
    fn frame(
        &mut self,
        request: Request,
        buf: &mut Vec<Chunk>,
        catalog_changed: &mut bool,
        reserved: &mut HashMap<u32, u64>,
    ) -> Option<Framed> {
        match request {
            Request::Sync { reply } => Some(Framed::Sync(reply)),
            Request::CreateTable { schema, reply } => {
                let shared = self.shared.clone();
                let mut catalog = shared.tables.write().unwrap_or_else(|p| p.into_inner());
                if let Some(t) = catalog.by_name.get(&schema.name.to_ascii_lowercase()) {
                    return Some(Framed::Table(reply, t.clone()));
                }
                if let Err(e) = schema.validate() {
                    let _ = reply.send(Err(e));
                    return None;
                }
                let id = catalog.next_id;
                let table = Arc::new(Table::new(id, table_dir(&self.shared.dir, id), schema));
                let mut w = Writer::default();
                w.u32(id);
                table.schema().encode(&mut w);
                wal::encode_record_parts(
                    buf,
                    RecordKind::CreateTable,
                    self.take_lsn(),
                    vec![Chunk::Owned(w.into_inner())],
                );
                catalog.insert(table.clone());
                *catalog_changed = true;
                tracing::info!(table = %table.schema().name, id, "table created");
                Some(Framed::Table(reply, table))
            }
            Request::AddColumns {
                table,
                columns,
                reply,
            } => {
                let mut schema = (*table.schema()).clone();
                let mut added = Vec::new();
                for c in columns {
                    match schema.column_index(&c.name) {
                        Some(i) if schema.columns[i].column_type == c.column_type => {}
                        Some(i) => {
                            let _ = reply.send(Err(StorageError::SchemaMismatch {
                                table: schema.name.clone(),
                                column: schema.columns[i].name.clone(),
                                stored: schema.columns[i].column_type.name(),
                                sent: c.column_type.name(),
                            }));
                            return None;
                        }
                        None => {
                            added.push(c.name.clone());
                            schema.columns.push(c);
                        }
                    }
                }
                if added.is_empty() {
                    return Some(Framed::Schema(reply, table.schema()));
                }
                schema.version += 1;
                if let Err(e) = schema.validate() {
                    let _ = reply.send(Err(e));
                    return None;
                }
                let mut w = Writer::default();
                w.u32(table.id);
                schema.encode(&mut w);
                wal::encode_record_parts(
                    buf,
                    RecordKind::AddColumns,
                    self.take_lsn(),
                    vec![Chunk::Owned(w.into_inner())],
                );
                table.set_schema(schema);
                *catalog_changed = true;
                tracing::info!(table = %table.schema().name, columns = ?added, "columns added");
                Some(Framed::Schema(reply, table.schema()))
            }
            Request::Stage { parts } => {
                let shared = self.shared.clone();
                let mut files = lock(&shared.wal_files);
                let file = files.len().saturating_sub(1);
                for (id, table_id, rows) in parts {
                    let mut w = Writer::default();
                    w.u64(id);
                    w.u32(table_id);
                    w.u32(rows.len() as u32);
                    let lsn = self.take_lsn();
                    let mut body = vec![Chunk::Owned(w.into_inner())];
                    body.extend(rows.into_chunks());
                    wal::encode_record_parts(buf, RecordKind::Part, lsn, body);
                    if let Some(f) = files.get_mut(file) {
                        f.open_parts += 1;
                        self.part_files.insert(id, f.path.clone());
                    }
                }
                None
            }
            Request::Abandon { parts } => {
                let shared = self.shared.clone();
                let mut files = lock(&shared.wal_files);
                for id in parts {
                    if let Some(path) = self.part_files.remove(&id)
                        && let Some(f) = files.iter_mut().find(|f| f.path == path)
                    {
                        f.open_parts = f.open_parts.saturating_sub(1);
                    }
                }
                None
            }
            Request::Commit {
                mut txn,
                committed,
                durable,
            } => {
                let txn_parts = txn.take_parts();
                if txn_parts.is_empty() {
                    let lsn = self.shared.visible_lsn.load(Ordering::Acquire);
                    let _ = committed.send(Ok(Committed {
                        lsn,
                        tables: vec![],
                    }));
                    if let Some(d) = durable {
                        return Some(Framed::Sync(d));
                    }
                    return None;
                }
                let lsn = self.take_lsn();
                // Body: per part a small header, then the part's rows as
                // their Arrow buffers (written with the rest of the group in
                // one vectored write, not copied into a record buffer).
                let mut body: Vec<Chunk> = Vec::with_capacity(txn_parts.len() * 8 + 1);
                let mut w = Writer::default();
                w.u16(txn_parts.len() as u16);
                let mut parts = Vec::with_capacity(txn_parts.len());
                let mut logged: Vec<u32> = Vec::new();
                for part in txn_parts {
                    let id = part.table.id;
                    let next = reserved.entry(id).or_insert_with(|| {
                        part.table
                            .state
                            .read()
                            .unwrap_or_else(|p| p.into_inner())
                            .next_row_id
                    });
                    let first_row_id = *next;
                    *next += part.batch.num_rows() as u64;
                    w.u32(id);
                    w.u64(first_row_id);
                    let count_at = w.len();
                    w.u32(0);
                    let mut sections = 0u32;
                    if !logged.contains(&id) {
                        logged.push(id);
                        for (column, symbols) in part.table.all_symbols() {
                            if let Some((start, entries)) = symbols.take_unlogged() {
                                w.str(&column);
                                w.u32(start);
                                w.u32(entries.len() as u32);
                                for e in &entries {
                                    w.str(e);
                                }
                                sections += 1;
                            }
                        }
                    }
                    w.patch_u32(count_at, sections);
                    let end = first_row_id + part.batch.num_rows() as u64;
                    let mut files = lock(&self.shared.wal_files);
                    match part.staged {
                        Some(part_id) => {
                            // The rows are in the Part record's file, which
                            // they now pin as committed rows, not open ones.
                            w.u8(1);
                            w.u64(part_id);
                            w.u64(part.batch.num_rows() as u64);
                            body.push(Chunk::Owned(std::mem::take(&mut w).into_inner()));
                            if let Some(path) = self.part_files.remove(&part_id)
                                && let Some(f) = files.iter_mut().find(|f| f.path == path)
                            {
                                f.open_parts = f.open_parts.saturating_sub(1);
                                let e = f.row_end.entry(id).or_insert(end);
                                *e = (*e).max(end);
                            }
                        }
                        None => {
                            w.u8(0);
                            w.u32(part.rows.len() as u32);
                            body.push(Chunk::Owned(std::mem::take(&mut w).into_inner()));
                            body.extend(part.rows.into_chunks());
                        }
                    }
                    if let Some(f) = files.last_mut() {
                        f.row_end.insert(id, end);
                    }
                    drop(files);
                    parts.push((part.table, first_row_id, part.batch));
                }
                wal::encode_record_parts(buf, RecordKind::Transaction, lsn, body);
                Some(Framed::Commit {
                    lsn,
                    parts,
                    committed,
                    durable,
                })
            }
        }
    }

    fn take_lsn(&mut self) -> u64 {
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        lsn
    }

    fn write(&mut self, buf: &[Chunk], catalog_changed: bool) -> Result<()> {
        if !buf.is_empty() {
            self.wal.append_parts(buf)?;
        }
        if catalog_changed {
            let catalog = self.shared.tables.read().unwrap_or_else(|p| p.into_inner());
            store_catalog(&self.shared.dir, &catalog)?;
        }
        Ok(())
    }

    fn set_poisoned(&self, e: &StorageError) {
        poison_shared(&self.shared, e);
    }

    fn poison(&self, e: &StorageError, framed: Vec<Framed>) {
        self.set_poisoned(e);
        let err = || StorageError::Poisoned(e.to_string());
        for f in framed {
            match f {
                Framed::Commit {
                    committed, durable, ..
                } => {
                    let _ = committed.send(Err(err()));
                    if let Some(d) = durable {
                        let _ = d.send(Err(err()));
                    }
                }
                Framed::Table(r, _) => {
                    let _ = r.send(Err(err()));
                }
                Framed::Schema(r, _) => {
                    let _ = r.send(Err(err()));
                }
                Framed::Sync(r) => {
                    let _ = r.send(Err(err()));
                }
            }
        }
    }
}

/// A sync for the syncer thread, and who waits for it.
type SyncRequest = (SyncJob, Vec<oneshot::Sender<Result<()>>>);

/// Runs the committer's sync jobs in order, coalescing those queued
/// together into one round of fsyncs (group commit for durability).
fn syncer_loop(shared: &Shared, rx: Receiver<SyncRequest>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first.0];
        let mut replies = first.1;
        while let Ok((job, more)) = rx.try_recv() {
            jobs.push(job);
            replies.extend(more);
        }
        finish_sync(shared, jobs, replies);
    }
}

/// Runs `jobs` and answers `replies`; a failure poisons the database, and
/// once it is poisoned no sync succeeds any more (Linux reports a failed
/// writeback to one fsync only, so a later one could pass while earlier
/// records were lost: durable must stay a prefix of the log).
fn finish_sync(shared: &Shared, jobs: Vec<SyncJob>, replies: Vec<oneshot::Sender<Result<()>>>) {
    if let Some(reason) = lock(&shared.poisoned).clone() {
        for r in replies {
            let _ = r.send(Err(StorageError::Poisoned(reason.clone())));
        }
        return;
    }
    match SyncJob::run_all(jobs) {
        Ok(()) => {
            for r in replies {
                let _ = r.send(Ok(()));
            }
        }
        Err(e) => finish_sync_failed(shared, &e, replies),
    }
}

fn finish_sync_failed(
    shared: &Shared,
    e: &StorageError,
    replies: Vec<oneshot::Sender<Result<()>>>,
) {
    poison_shared(shared, e);
    for r in replies {
        let _ = r.send(Err(StorageError::Poisoned(e.to_string())));
    }
}

fn poison_shared(shared: &Shared, e: &StorageError) {
    tracing::error!(error = %e, "write failed; the database refuses further writes until restarted");
    let mut p = lock(&shared.poisoned);
    if p.is_none() {
        *p = Some(e.to_string());
    }
    drop(p);
    // Ingest waiting for memory stops waiting (its commits now fail).
    shared.sealed.notify_waiters();
}

/// Marks for sealing, whatever their size, the tables holding the most
/// unsealed bytes, largest first, until sealing them would bring memory
/// back under [`Options::max_unsealed_bytes`] (memory is over it). Small
/// tables are left alone unless they are needed, so they do not get a tiny
/// segment every time a big one hits the limit.
fn force_seal_biggest(shared: &Shared, touched: &mut Vec<(Arc<Table>, bool)>) {
    let catalog = shared.tables.read().unwrap_or_else(|p| p.into_inner());
    let mut tables: Vec<(usize, &Arc<Table>)> = catalog
        .by_id
        .values()
        .filter_map(|t| {
            let state = t.state.read().unwrap_or_else(|p| p.into_inner());
            (!state.memtable.is_empty()).then_some((state.memtable_bytes, t))
        })
        .collect();
    tables.sort_by_key(|t| std::cmp::Reverse(t.0));
    let mut excess = shared
        .unsealed_bytes
        .load(Ordering::Acquire)
        .saturating_sub(shared.options.max_unsealed_bytes);
    for (bytes, t) in tables {
        match touched.iter_mut().find(|(x, _)| Arc::ptr_eq(x, t)) {
            Some(entry) => entry.1 = true,
            None => touched.push((t.clone(), true)),
        }
        if bytes >= excess {
            break;
        }
        excess -= bytes;
    }
}

/// How long the sealer waits before retrying a failed seal that ingest is
/// waiting on.
const SEAL_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

fn sealer_loop(
    shared: &Shared,
    requests: &RequestChannel,
    rx: Receiver<Arc<Table>>,
    sealed: &SyncSender<SealedRows>,
) {
    while let Ok(table) = rx.recv() {
        let mut queue = vec![table];
        while let Some(table) = queue.pop() {
            match seal(shared, &table) {
                Ok(None) => {}
                Ok(Some(job)) => {
                    // The rows left memory: ingest waiting for it goes on.
                    shared.sealed.notify_waiters();
                    // Waits while the seal syncer is behind.
                    let _ = sealed.send(job);
                    // Rows committed while this seal ran may keep memory
                    // over the limit with no commit left to notice (ingest
                    // is waiting): seal again until it is under.
                    if shared.over_memory_limit() && queue.is_empty() {
                        let mut all = Vec::new();
                        force_seal_biggest(shared, &mut all);
                        queue.extend(all.into_iter().map(|(t, _)| t));
                    }
                }
                Err(e) => {
                    if !matches!(e, StorageError::Closed) {
                        tracing::error!(table = %table.schema().name, error = %e, "sealing failed; rows stay in memory and the WAL");
                    }
                    table
                        .state
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .sealing = false;
                    // Ingest may be waiting for memory with no commit left
                    // to ask for another seal: retry after a pause (a full
                    // disk may get space back), unless the database is
                    // poisoned, which ends the waits instead, or closing
                    // (the WAL keeps the rows).
                    let closing = lock(requests).is_none();
                    if shared.over_memory_limit() && lock(&shared.poisoned).is_none() && !closing {
                        std::thread::sleep(SEAL_RETRY_PAUSE);
                        if queue.is_empty() {
                            queue.push(table);
                        }
                    }
                }
            }
            shared.sealed.notify_waiters();
        }
    }
}

/// Writes the oldest visible memtable rows of `table` to segments and drops
/// them from memory (see the module docs). Returns what the seal syncer must
/// make durable, or `None` when there was nothing to seal.
fn seal(shared: &Shared, table: &Arc<Table>) -> Result<Option<SealedRows>> {
    if let Some(reason) = lock(&shared.poisoned).clone() {
        return Err(StorageError::Poisoned(reason));
    }
    let visible = shared.visible_lsn.load(Ordering::Acquire);
    let (batches, first_row_id) = {
        let mut state = table.state.write().unwrap_or_else(|p| p.into_inner());
        if state.sealing {
            return Ok(None);
        }
        let batches: Vec<StoredBatch> = state
            .memtable
            .iter()
            .take_while(|b| b.lsn <= visible)
            .cloned()
            .collect();
        if batches.is_empty() {
            return Ok(None);
        }
        state.sealing = true;
        (batches, state.sealed_row_end)
    };
    let started = Instant::now();
    let snapshot = table.snapshot(visible);
    let read_schema = snapshot.read_schema(false);
    let schema = table.schema();
    let ts_col = schema
        .designated_timestamp
        .map(|i| schema.columns[i].name.clone());
    let mut projected = Vec::new();
    let mut pending = Vec::new();
    let mut pending_rows = 0usize;
    let mut ts_range = (i64::MAX, i64::MIN);
    let chunk = shared.options.segment_batch_rows.max(1);
    // Project the memtable rows through a one-part snapshot scan.
    let part_snapshot = snapshot.with_batches(batches.clone());
    for b in part_snapshot.scan(false) {
        let b = b?;
        if let Some(name) = &ts_col
            && let Some(col) = b.column_by_name(name)
            && let Some(ts) = crate::table::timestamp_range(col)
        {
            ts_range = (ts_range.0.min(ts.0), ts_range.1.max(ts.1));
        }
        // Large batches go to the segment as they are; small ones are
        // joined into batches of about `chunk` rows.
        if pending.is_empty() && b.num_rows() >= chunk / 4 {
            projected.push(b);
            continue;
        }
        pending_rows += b.num_rows();
        pending.push(b);
        if pending_rows >= chunk {
            projected.push(concat_batches(&read_schema, &pending)?);
            pending.clear();
            pending_rows = 0;
        }
    }
    if !pending.is_empty() {
        projected.push(concat_batches(&read_schema, &pending)?);
    }
    let rows: u64 = batches.iter().map(|b| b.batch.num_rows() as u64).sum();
    let segments_dir = table.dir.join("segments");
    let pieces = match (schema.partition_by, &ts_col) {
        (PartitionBy::Day, Some(name)) => split_by_day(projected, name, MAX_DAYS_PER_SEAL),
        _ => vec![(None, projected)],
    };
    let single = pieces.len() == 1;
    let mut written = Vec::with_capacity(pieces.len());
    let mut next_row_id = first_row_id;
    for (day, piece) in pieces {
        let piece_rows: u64 = piece.iter().map(|b| b.num_rows() as u64).sum();
        let range = match &ts_col {
            Some(name) if !single => piece
                .iter()
                .filter_map(|b| crate::table::timestamp_range(b.column_by_name(name)?))
                .fold((i64::MAX, i64::MIN), |acc, r| {
                    (acc.0.min(r.0), acc.1.max(r.1))
                }),
            _ => ts_range,
        };
        let dir = match day {
            Some(day) => segments_dir.join(day_name(day)),
            None => segments_dir.clone(),
        };
        written.push(write_segment(
            &dir,
            &schema.name,
            &read_schema,
            next_row_id,
            &piece,
            range,
        )?);
        next_row_id += piece_rows;
    }
    // Readers switch to the segment files now, and the rows leave memory
    // before the slow part (fsyncs, on the seal syncer): ingest waiting for
    // memory goes on sooner, the heap stays smaller, and the next seal can
    // start while the disk works. WAL files are deleted by
    // `durable_sealed_row_end` only.
    let new_segments: Vec<Arc<Segment>> = written.into_iter().map(Arc::new).collect();
    let manifest = {
        let mut state = table.state.write().unwrap_or_else(|p| p.into_inner());
        let mut freed = 0;
        for _ in 0..batches.len() {
            if let Some(b) = state.memtable.pop_front() {
                freed += b.batch.get_array_memory_size();
            }
        }
        state.memtable_bytes = state.memtable_bytes.saturating_sub(freed);
        let _ = shared
            .unsealed_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_sub(freed))
            });
        state.sealed_row_end += rows;
        debug_assert_eq!(state.sealed_row_end, first_row_id + rows, "invariant 1");
        state.segments.extend(new_segments.iter().cloned());
        state.sealing = false;
        // The manifest this seal makes durable lists the segments up to its
        // own: later seals' segments are durable only once their own job
        // has run.
        Manifest {
            table_id: table.id,
            sealed_row_end: state.sealed_row_end,
            segments: state.segments.iter().map(|s| Segment::clone(s)).collect(),
            symbols: Vec::new(),
        }
    };
    Ok(Some(SealedRows {
        table: table.clone(),
        new_segments,
        manifest,
        rows,
        first_row_id,
        started,
        written_ms: started.elapsed().as_millis() as u64,
    }))
}

/// A seal whose segments are written and whose rows left memory, waiting to
/// be made durable by the seal syncer.
struct SealedRows {
    table: Arc<Table>,
    /// The segments this seal wrote (not yet fsync'd).
    new_segments: Vec<Arc<Segment>>,
    /// The table's manifest as of this seal, without symbols (filled in
    /// when stored: dictionaries only grow, so a later one is a superset).
    manifest: Manifest,
    rows: u64,
    first_row_id: u64,
    started: Instant,
    /// How long writing the segments took (the rest is fsyncs).
    written_ms: u64,
}

/// How many written seals may wait for their fsyncs before the sealer waits
/// too (and with it, through the memory limit, ingest).
const SEALS_AWAITING_SYNC: usize = 4;

/// Makes written seals durable in seal order, coalescing those queued
/// together into one round of fsyncs, and deletes the WAL files they cover.
fn seal_syncer_loop(shared: &Shared, requests: &RequestChannel, rx: Receiver<SealedRows>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while let Ok(job) = rx.try_recv() {
            jobs.push(job);
        }
        match make_durable(shared, requests, &jobs) {
            Ok(()) => {
                for job in &jobs {
                    tracing::info!(
                        table = %job.table.schema().name,
                        rows = job.rows,
                        first_row_id = job.first_row_id,
                        written_ms = job.written_ms,
                        elapsed_ms = job.started.elapsed().as_millis() as u64,
                        "sealed a segment"
                    );
                }
                if let Err(e) = remove_sealed_wal_files(shared) {
                    tracing::warn!(error = %e, "could not remove sealed WAL files; retried after the next seal");
                }
            }
            Err(StorageError::Closed) => {
                tracing::info!("seal interrupted by shutdown; the WAL keeps its rows");
            }
            // The rows are only in the segment files and the WAL now: no
            // later manifest may list a segment that is not durable (the
            // WAL keeps the rows for the restart).
            Err(e) => poison_shared(shared, &e),
        }
    }
}

/// Fsyncs the segments of `jobs`, then the WAL (their rows' records must be
/// durable before a manifest makes the rows durable: otherwise a power loss
/// could keep them while losing the records they were committed with, and
/// half of a transaction that spans tables), then stores each table's
/// newest manifest among them.
fn make_durable(shared: &Shared, requests: &RequestChannel, jobs: &[SealedRows]) -> Result<()> {
    if let Some(reason) = lock(&shared.poisoned).clone() {
        return Err(StorageError::Poisoned(reason));
    }
    for segment in jobs.iter().flat_map(|j| &j.new_segments) {
        segment.sync()?;
    }
    match sync_wal(requests) {
        Ok(()) => {}
        // Shutting down: the committer makes the whole WAL durable before
        // it stops.
        Err(StorageError::Closed) if shared.wait_for_final_wal_sync() => {}
        Err(e) => return Err(e),
    }
    for (i, job) in jobs.iter().enumerate() {
        if jobs[i + 1..]
            .iter()
            .any(|later| Arc::ptr_eq(&later.table, &job.table))
        {
            continue;
        }
        let mut manifest = job.manifest.clone();
        manifest.symbols = job
            .table
            .all_symbols()
            .into_iter()
            .map(|(c, s)| (c, s.strings().iter().map(|x| x.to_string()).collect()))
            .collect();
        if let Some(reason) = lock(&shared.poisoned).clone() {
            return Err(StorageError::Poisoned(reason));
        }
        manifest.store(&job.table.dir)?;
        let mut state = job.table.state.write().unwrap_or_else(|p| p.into_inner());
        state.durable_sealed_row_end = manifest.sealed_row_end;
    }
    Ok(())
}

/// At most this many day partitions get their own segment in one seal; the
/// rest of the sealed rows (out-of-order data crossing days back and forth)
/// go into the last one, whose min/max timestamps then span those days.
const MAX_DAYS_PER_SEAL: usize = 32;

/// Splits sealed rows (in row-id order) into runs of one UTC day of the
/// designated timestamp `ts_col`, cutting where the day changes, at most
/// `max` runs. Each run keeps row-id order, so each becomes a segment of
/// consecutive row ids in its day's directory.
fn split_by_day(
    batches: Vec<RecordBatch>,
    ts_col: &str,
    max: usize,
) -> Vec<(Option<i64>, Vec<RecordBatch>)> {
    let mut runs: Vec<(Option<i64>, Vec<RecordBatch>)> = Vec::new();
    for batch in batches {
        // Most batches lie within one day: no per-row work for them.
        if let Some((first, last)) = batch.column_by_name(ts_col).and_then(day_range)
            && first == last
        {
            let full = runs.len() >= max;
            match runs.last_mut() {
                Some(run) if run.0 == Some(first) || full => run.1.push(batch),
                _ => runs.push((Some(first), vec![batch])),
            }
            continue;
        }
        let days = batch.column_by_name(ts_col).and_then(day_numbers);
        let Some(days) = days else {
            match runs.last_mut() {
                Some(run) => run.1.push(batch),
                None => runs.push((None, vec![batch])),
            }
            continue;
        };
        let mut start = 0;
        for (i, day) in days.iter().enumerate() {
            let current = runs.last().and_then(|r| r.0);
            let Some(day) = *day else { continue };
            if current.is_none() && runs.is_empty() {
                runs.push((Some(day), Vec::new()));
            } else if current != Some(day) && runs.len() < max {
                if i > start {
                    runs.last_mut()
                        .expect("a run")
                        .1
                        .push(batch.slice(start, i - start));
                }
                start = i;
                runs.push((Some(day), Vec::new()));
            }
        }
        if batch.num_rows() > start {
            if runs.is_empty() {
                runs.push((None, Vec::new()));
            }
            runs.last_mut()
                .expect("a run")
                .1
                .push(batch.slice(start, batch.num_rows() - start));
        }
    }
    runs
}

/// Units of a timestamp column's values per day.
fn units_per_day(column: &ArrayRef) -> Option<i64> {
    use arrow::datatypes::TimeUnit;
    match column.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => Some(86_400),
        DataType::Timestamp(TimeUnit::Millisecond, _) => Some(86_400_000),
        DataType::Timestamp(TimeUnit::Microsecond, _) => Some(86_400_000_000),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => Some(86_400_000_000_000),
        _ => None,
    }
}

/// The UTC days of the smallest and largest values of a timestamp column
/// (`None` if it has no values or is not a timestamp).
fn day_range(column: &ArrayRef) -> Option<(i64, i64)> {
    let per_day = units_per_day(column)?;
    let (min, max) = crate::table::timestamp_range(column)?;
    Some((min.div_euclid(per_day), max.div_euclid(per_day)))
}

/// The UTC day (days since 1970-01-01) of each value of a timestamp column.
fn day_numbers(column: &ArrayRef) -> Option<Vec<Option<i64>>> {
    use arrow::array::AsArray;
    use arrow::datatypes::{
        TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    };
    const DAY_SECONDS: i64 = 86_400;
    Some(match column.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => column
            .as_primitive::<TimestampMicrosecondType>()
            .iter()
            .map(|v| v.map(|v| v.div_euclid(DAY_SECONDS * 1_000_000)))
            .collect(),
        DataType::Timestamp(TimeUnit::Nanosecond, _) => column
            .as_primitive::<TimestampNanosecondType>()
            .iter()
            .map(|v| v.map(|v| v.div_euclid(DAY_SECONDS * 1_000_000_000)))
            .collect(),
        DataType::Timestamp(TimeUnit::Millisecond, _) => column
            .as_primitive::<TimestampMillisecondType>()
            .iter()
            .map(|v| v.map(|v| v.div_euclid(DAY_SECONDS * 1_000)))
            .collect(),
        _ => return None,
    })
}

/// `YYYY-MM-DD` of a day number (days since 1970-01-01, proleptic
/// Gregorian), the name of its partition directory.
pub(crate) fn day_name(day: i64) -> String {
    // Civil-from-days (H. Hinnant's algorithm).
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Makes everything committed so far durable in the WAL, through the
/// committer (which owns it), and waits.
fn sync_wal(requests: &RequestChannel) -> Result<()> {
    let (reply, rx) = oneshot::channel();
    match lock(requests).as_ref() {
        Some(tx) => tx
            .send(Request::Sync { reply })
            .map_err(|_| StorageError::Closed)?,
        None => return Err(StorageError::Closed),
    }
    rx.blocking_recv().unwrap_or(Err(StorageError::Closed))
}

/// Deletes WAL files (except the newest) whose rows are all sealed.
fn remove_sealed_wal_files(shared: &Shared) -> Result<()> {
    let catalog = shared.tables.read().unwrap_or_else(|p| p.into_inner());
    let mut files = lock(&shared.wal_files);
    while files.len() > 1 && files[0].open_parts == 0 {
        let covered = files[0].row_end.iter().all(|(id, end)| {
            catalog.by_id.get(id).is_none_or(|t| {
                t.state
                    .read()
                    .unwrap_or_else(|p| p.into_inner())
                    .durable_sealed_row_end
                    >= *end
            })
        });
        if !covered {
            break;
        }
        let f = files.remove(0);
        match fs::remove_file(&f.path) {
            Ok(()) => {
                tracing::info!(path = %f.path.display(), "removed a WAL file whose rows are all sealed")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("remove", &f.path)(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts_batch(values: &[i64]) -> RecordBatch {
        let ts =
            arrow::array::TimestampMicrosecondArray::from(values.to_vec()).with_timezone("UTC");
        RecordBatch::try_from_iter([("ts", Arc::new(ts) as ArrayRef)]).unwrap()
    }

    /// (day, timestamps) of each run.
    fn runs(batches: Vec<RecordBatch>, max: usize) -> Vec<(Option<i64>, Vec<i64>)> {
        use arrow::array::AsArray;
        use arrow::datatypes::TimestampMicrosecondType;
        split_by_day(batches, "ts", max)
            .into_iter()
            .map(|(day, batches)| {
                let values = batches
                    .iter()
                    .flat_map(|b| {
                        b.column(0)
                            .as_primitive::<TimestampMicrosecondType>()
                            .values()
                            .to_vec()
                    })
                    .collect();
                (day, values)
            })
            .collect()
    }

    #[test]
    fn rows_split_where_the_day_changes_whole_batches_or_not() {
        const DAY: i64 = 86_400_000_000;
        let batches = || {
            vec![
                ts_batch(&[1, 2]),
                ts_batch(&[3, DAY + 1, 4, DAY + 2]),
                ts_batch(&[DAY + 3]),
                ts_batch(&[5]),
                ts_batch(&[-1]),
            ]
        };
        assert_eq!(
            runs(batches(), 32),
            vec![
                (Some(0), vec![1, 2, 3]),
                (Some(1), vec![DAY + 1]),
                (Some(0), vec![4]),
                (Some(1), vec![DAY + 2, DAY + 3]),
                (Some(0), vec![5]),
                (Some(-1), vec![-1]),
            ]
        );
        // At most `max` runs: the rest joins the last one.
        assert_eq!(
            runs(batches(), 2),
            vec![
                (Some(0), vec![1, 2, 3]),
                (Some(1), vec![DAY + 1, 4, DAY + 2, DAY + 3, 5, -1]),
            ]
        );
    }

    #[test]
    fn day_names_are_utc_calendar_dates() {
        assert_eq!(day_name(0), "1970-01-01");
        assert_eq!(day_name(-1), "1969-12-31");
        assert_eq!(day_name(19_723), "2024-01-01");
        assert_eq!(day_name(11_016), "2000-02-29");
        assert_eq!(day_name(11_017), "2000-03-01");
        assert_eq!(day_name(-719_468), "0000-03-01");
    }
}
