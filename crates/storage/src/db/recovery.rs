//! Opening a data directory: the catalog checkpoint, each table's manifest
//! and segments (removing orphans), then the WAL in two passes: the first
//! finds the end of the trusted log and cuts the tail (`wal::scan`), the
//! second replays it into memtables (`wal::Replay`).
//!
//! Memory stays bounded by the largest record plus the rows that end up in
//! memtables: staged parts are indexed by where they are and read again
//! only when a transaction names them and their rows are not sealed, and
//! rows already in segments are skipped without being decoded.

use std::collections::HashMap;

use super::*;
use crate::format::catalog::CatalogFile;
use crate::format::manifest::{MANIFEST_FILE, Manifest};
use crate::format::records::{
    DropTableRecord, PartRecord, PartRows, SchemaRecord, SymbolsRecord, TransactionRead,
};
use crate::format::wal::{FILE_MAGIC, RecordKind};
use crate::rows::decode_rows;
use crate::segment::write_durably;
use crate::symbols::SymbolTable;
use crate::table::StoredBatch;
use crate::wal::{LogEnd, Replay, ReplayedRecord, Scan};

const CATALOG_FILE: &str = "catalog";

/// Where a staged part's rows are, until a transaction names it.
#[derive(Debug, Clone, Copy)]
struct StagedPart {
    file: usize,
    rows_offset: u64,
    rows_len: usize,
    table_id: u32,
    row_count: u64,
}

/// The second pass's state.
struct Replayer<'a> {
    fs: Arc<dyn FileSystem>,
    dir: &'a Path,
    scan: &'a Scan,
    read_only: bool,
    catalog: Catalog,
    staged: HashMap<u64, StagedPart>,
    max_part_id: u64,
    wal_files: WalFiles,
    last_lsn: u64,
    /// The checkpoint's next table id and tables: an id below it that the
    /// checkpoint lacks was dropped before the checkpoint was stored.
    checkpoint_next_id: u32,
    checkpoint_ids: std::collections::HashSet<u32>,
    /// Tables dropped by replayed records.
    dropped: std::collections::HashSet<u32>,
}

impl Database {
    /// Recovers the database in `dir` (see the module docs); returns the
    /// shared state and where the WAL writer resumes.
    pub(super) fn recover(dir: &Path, options: &Options) -> Result<(Shared, LogEnd)> {
        let fs = options.fs.clone();
        let checkpoint = load_catalog(&*fs, dir)?;
        let wal_dir = dir.join("wal");
        refuse_old_format(&*fs, &wal_dir)?;
        let scan = wal::scan(&*fs, &wal_dir, checkpoint.lsn_floor)?;
        let cut_bytes = match options.read_only {
            true => 0,
            false => wal::cut_tail(&*fs, &wal_dir, &scan)?,
        };
        let mut r = Replayer {
            fs: fs.clone(),
            dir,
            scan: &scan,
            read_only: options.read_only,
            catalog: Catalog {
                next_id: checkpoint.next_id,
                ..Catalog::default()
            },
            staged: HashMap::new(),
            max_part_id: 0,
            wal_files: WalFiles::new(
                scan.files
                    .iter()
                    .map(|f| (f.path.clone(), f.header.first_lsn)),
            ),
            last_lsn: 0,
            checkpoint_next_id: checkpoint.next_id,
            checkpoint_ids: checkpoint.tables.iter().map(|(id, _)| *id).collect(),
            dropped: std::collections::HashSet::new(),
        };
        for (id, schema) in checkpoint.tables {
            let table = Arc::new(Table::new(id, table_dir(dir, id), schema, fs.clone()));
            r.attach(table)?;
        }
        let mut replayed = 0u64;
        for record in Replay::new(&*fs, &scan) {
            r.apply(record?)?;
            replayed += 1;
        }
        if replayed > 0 || cut_bytes > 0 {
            tracing::info!(
                records = replayed,
                cut_bytes,
                uncommitted_parts = r.staged.len(),
                "WAL replayed"
            );
        }
        let lsn_floor = checkpoint.lsn_floor;
        let unsealed_bytes = r
            .catalog
            .by_id
            .values()
            .map(|t| t.state().memtable_bytes())
            .sum();
        let shared = Shared {
            dir: dir.to_path_buf(),
            options: options.clone(),
            fs: fs.clone(),
            tables: RwLock::new(r.catalog),
            visible_lsn: AtomicU64::new(r.last_lsn),
            health: Health::default(),
            wal_files: Mutex::new(r.wal_files),
            next_part_id: AtomicU64::new(r.max_part_id + 1),
            unsealed_bytes: AtomicUsize::new(unsealed_bytes),
            uncommitted_bytes: AtomicUsize::new(0),
            sealed: Notify::new(),
            // The writer fsyncs the whole log before writing (so records
            // may claim it durable).
            durability: Durability::new(scan.end.next_lsn.saturating_sub(1)),
            closing: AtomicBool::new(false),
            last_ddl_lsn: AtomicU64::new(0),
            retired_segments: Mutex::new(Vec::new()),
        };
        if !options.read_only {
            remove_dropped_tables(&shared, lsn_floor)?;
        }
        Ok((shared, scan.end))
    }
}

impl Replayer<'_> {
    /// Adds a table to the catalog with what its manifest says is sealed.
    fn attach(&mut self, table: Arc<Table>) -> Result<()> {
        let manifest = load_manifest(&*self.fs, &table.dir)?;
        if let Some(m) = &manifest
            && m.table_id != table.id
        {
            return Err(StorageError::Corrupt {
                path: table.dir.join(MANIFEST_FILE),
                offset: 9,
                reason: "the manifest belongs to another table",
            });
        }
        if !self.read_only {
            // Without a manifest (the first seal did not finish), every
            // segment file is an orphan.
            remove_orphan_segments(
                &*self.fs,
                &table.dir,
                manifest.as_ref().unwrap_or(&Manifest::default()),
            )?;
        }
        if let Some(m) = manifest {
            table.state_mut().restore(
                m.sealed_row_end,
                m.segments.into_iter().map(Arc::new).collect(),
            );
            for (column, entries) in m.symbols {
                table.replace_symbols(&column, SymbolTable::from_strings(entries)?);
            }
        }
        self.catalog.insert(table);
        Ok(())
    }

    /// Whether table `id`, unknown to the catalog, was dropped (rather
    /// than never created: a damaged log).
    fn was_dropped(&self, id: u32) -> bool {
        self.dropped.contains(&id)
            || (id < self.checkpoint_next_id && !self.checkpoint_ids.contains(&id))
    }

    fn source(&self, record: &ReplayedRecord) -> String {
        self.scan.files[record.file].path.display().to_string()
    }

    fn apply(&mut self, record: ReplayedRecord) -> Result<()> {
        let source = self.source(&record);
        let file_lsn = self.scan.files[record.file].header.first_lsn;
        match record.kind {
            RecordKind::SyncMark => {}
            RecordKind::DropTable => {
                let r = DropTableRecord::decode(&record.body, &source, record.body_offset)?;
                match self.catalog.remove(r.table_id) {
                    Some(t) => {
                        t.mark_dropped();
                        t.state_mut().drop_rows();
                    }
                    None if self.was_dropped(r.table_id) => {}
                    None => {
                        return Err(corrupt_at(&record, &source, "an unknown table dropped"));
                    }
                }
                self.dropped.insert(r.table_id);
                self.wal_files.forget_table(r.table_id);
            }
            RecordKind::Symbols => {
                let r = SymbolsRecord::decode(&record.body, &source, record.body_offset)?;
                if !self.catalog.by_id.contains_key(&r.table_id) && self.was_dropped(r.table_id) {
                    return Ok(());
                }
                let table =
                    self.catalog.by_id.get(&r.table_id).ok_or_else(|| {
                        corrupt_at(&record, &source, "symbols of an unknown table")
                    })?;
                let Some(symbols) = table.stored_symbols(r.column) else {
                    // A column dropped since (the checkpoint's schema is
                    // newer than the record) needs no dictionary.
                    if table.schema().has_dropped_columns {
                        return Ok(());
                    }
                    return Err(corrupt_at(
                        &record,
                        &source,
                        "symbols for a non-SYMBOL column",
                    ));
                };
                symbols
                    .apply_logged(r.first_key, &r.entries)
                    .map_err(|reason| corrupt_at(&record, &source, reason))?;
            }
            RecordKind::Part => {
                let (head, rows) = PartRecord::decode(&record.body, &source, record.body_offset)?;
                self.max_part_id = self.max_part_id.max(head.part_id);
                self.staged.insert(
                    head.part_id,
                    StagedPart {
                        file: record.file,
                        rows_offset: record.body_offset + PartRecord::HEAD_LEN as u64,
                        rows_len: rows.len(),
                        table_id: head.table_id,
                        row_count: head.row_count,
                    },
                );
            }
            RecordKind::CreateTable | RecordKind::AlterSchema => {
                let r = SchemaRecord::decode(&record.body, &source, record.body_offset)?;
                match self.catalog.by_id.get(&r.table_id) {
                    Some(t) if t.schema().version >= r.schema.version => {}
                    Some(t) => {
                        let (t, old) = (t.clone(), t.schema().name.clone());
                        t.set_schema(r.schema);
                        if !old.eq_ignore_ascii_case(&t.schema().name) {
                            self.catalog.rename(&t, &old);
                        }
                    }
                    // Created, then dropped before the checkpoint was
                    // stored: its files may be gone; none of its records
                    // apply.
                    None if self.was_dropped(r.table_id) => {}
                    None if record.kind == RecordKind::CreateTable => {
                        let t = Arc::new(Table::new(
                            r.table_id,
                            table_dir(self.dir, r.table_id),
                            r.schema,
                            self.fs.clone(),
                        ));
                        self.attach(t)?;
                    }
                    None => {
                        return Err(corrupt_at(
                            &record,
                            &source,
                            "columns added to an unknown table",
                        ));
                    }
                }
            }
            RecordKind::Transaction => {
                let txn = TransactionRead::decode(&record.body, &source, record.body_offset)?;
                for part in txn.parts {
                    let Some(table) = self.catalog.by_id.get(&part.table_id).cloned() else {
                        if self.was_dropped(part.table_id) {
                            if let PartRows::Staged(id) = part.rows {
                                self.staged.remove(&id);
                            }
                            continue;
                        }
                        return Err(corrupt_at(&record, &source, "rows of an unknown table"));
                    };
                    let end = part.first_row_id + part.row_count;
                    self.wal_files.record_rows(file_lsn, table.id, end);
                    let rows = match part.rows {
                        PartRows::Inline(bytes) => Rows::Here(bytes),
                        PartRows::Staged(id) => match self.staged.remove(&id) {
                            Some(p) => {
                                if p.table_id != part.table_id || p.row_count != part.row_count {
                                    return Err(corrupt_at(
                                        &record,
                                        &source,
                                        "a staged part does not match its reference",
                                    ));
                                }
                                let part_file = self.scan.files[p.file].header.first_lsn;
                                self.wal_files.record_rows(part_file, table.id, end);
                                Rows::Staged(p)
                            }
                            None => {
                                // Its file was deleted once its rows were sealed.
                                if end > table.state().sealed_row_end() {
                                    return Err(corrupt_at(
                                        &record,
                                        &source,
                                        "a transaction names a part that is neither in the WAL nor sealed",
                                    ));
                                }
                                continue;
                            }
                        },
                    };
                    self.append(
                        &table,
                        &record,
                        &source,
                        part.first_row_id,
                        part.row_count,
                        rows,
                    )?;
                }
                self.last_lsn = record.lsn;
            }
        }
        Ok(())
    }

    /// Appends a part's rows to the table's memtable, skipping rows a
    /// segment already holds (without decoding them when all are).
    fn append(
        &mut self,
        table: &Arc<Table>,
        record: &ReplayedRecord,
        source: &str,
        first_row_id: u64,
        row_count: u64,
        rows: Rows<'_>,
    ) -> Result<()> {
        let end = first_row_id + row_count;
        let (sealed, next) = {
            let s = table.state();
            (s.sealed_row_end(), s.next_row_id())
        };
        if end <= sealed {
            return Ok(());
        }
        let first = first_row_id.max(sealed);
        if first != next {
            return Err(corrupt_at(
                record,
                source,
                "row ids do not continue the table",
            ));
        }
        let owned;
        let bytes: &[u8] = match rows {
            Rows::Here(b) => b,
            Rows::Staged(p) => {
                let f = &self.scan.files[p.file];
                owned = wal::read_at(&*self.fs, &f.path, p.rows_offset, p.rows_len)?;
                &owned
            }
        };
        let batch = decode_rows(bytes).map_err(|e| {
            tracing::error!(error = %e, "undecodable rows in a WAL record");
            corrupt_at(record, source, "undecodable rows")
        })?;
        // Columns dropped since the rows were committed are left out.
        let mut batch = table.without_dropped_columns(batch)?;
        if batch.num_rows() as u64 != row_count || table.check_batch(&batch).is_err() {
            return Err(corrupt_at(
                record,
                source,
                "rows that do not fit their table",
            ));
        }
        if first > first_row_id {
            let skip = (first - first_row_id) as usize;
            batch = batch.slice(skip, batch.num_rows() - skip);
        }
        table.state_mut().append(StoredBatch {
            lsn: record.lsn,
            first_row_id: first,
            batch,
            ts_order: Default::default(),
        });
        Ok(())
    }
}

/// Where a part's rows are during replay.
enum Rows<'a> {
    Here(&'a [u8]),
    Staged(StagedPart),
}

fn corrupt_at(record: &ReplayedRecord, source: &str, reason: &'static str) -> StorageError {
    StorageError::Corrupt {
        path: source.into(),
        offset: record.body_offset,
        reason,
    }
}

/// A data directory written by the first WAL format is refused with a
/// clear message (its records start with the record magic, not a file
/// header).
fn refuse_old_format(fs: &dyn FileSystem, wal_dir: &Path) -> Result<()> {
    for (_, path) in wal::list_files(fs, wal_dir)? {
        let mut head = [0u8; 4];
        let mut r = fs
            .open_read(&path)
            .map_err(StorageError::io("read", &path))?;
        let n = std::io::Read::read(&mut r, &mut head).map_err(StorageError::io("read", &path))?;
        if n == 4 && head == *b"QWAL" && head != FILE_MAGIC {
            return Err(StorageError::Corrupt {
                path,
                offset: 0,
                reason: "written by an earlier Quiver (WAL format 1); export it with that version and import the data",
            });
        }
    }
    Ok(())
}

pub(super) fn table_dir(dir: &Path, id: u32) -> PathBuf {
    dir.join("tables").join(id.to_string())
}

pub(super) fn load_catalog(fs: &dyn FileSystem, dir: &Path) -> Result<CatalogFile> {
    let path = dir.join(CATALOG_FILE);
    match crate::io::read(fs, &path) {
        Ok(bytes) => CatalogFile::decode(&bytes, &path.display().to_string()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(CatalogFile::default()),
        Err(e) => Err(StorageError::io("read", &path)(e)),
    }
}

pub(super) fn load_manifest(fs: &dyn FileSystem, table_dir: &Path) -> Result<Option<Manifest>> {
    let path = table_dir.join(MANIFEST_FILE);
    match crate::io::read(fs, &path) {
        Ok(bytes) => Manifest::decode(&bytes, table_dir, &path.display().to_string()).map(Some),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(StorageError::io("read", &path)(e)),
    }
}

/// Stores the catalog checkpoint (every table's schema and the log's lsn
/// floor) durably.
pub(super) fn store_catalog(shared: &Shared, lsn_floor: u64) -> Result<()> {
    let bytes = catalog_file(shared, lsn_floor).encode()?;
    write_durably(&*shared.fs, &shared.dir, CATALOG_FILE, &bytes)
}

/// Stores the catalog checkpoint holding only DDL the WAL holds durably:
/// waits until the last applied DDL record is durable, and builds the file
/// again if more DDL was applied meanwhile (the committer publishes a
/// DDL's lsn before it changes the catalog).
pub(super) fn store_durable_catalog(shared: &Shared, lsn_floor: u64) -> Result<()> {
    loop {
        let ddl = shared.last_ddl_lsn.load(Ordering::Acquire);
        shared.durability.wait_blocking(ddl)?;
        let file = catalog_file(shared, lsn_floor);
        if shared.last_ddl_lsn.load(Ordering::Acquire) == ddl {
            let bytes = file.encode()?;
            return write_durably(&*shared.fs, &shared.dir, CATALOG_FILE, &bytes);
        }
    }
}

fn catalog_file(shared: &Shared, lsn_floor: u64) -> CatalogFile {
    {
        let catalog = shared.tables.read().unwrap_or_else(|p| p.into_inner());
        let mut tables: Vec<(u32, TableSchema)> = catalog
            .by_id
            .values()
            .map(|t| (t.id, (*t.schema()).clone()))
            .collect();
        tables.sort_by_key(|t| t.0);
        CatalogFile {
            next_id: catalog.next_id,
            lsn_floor,
            tables,
        }
    }
}

/// Removes the directories of dropped tables: every `tables/<id>` whose
/// id the catalog (after replay) does not hold. The catalog checkpoint is
/// stored first, without them: a later open then knows them dropped and
/// skips their records still in the WAL instead of rebuilding them from
/// rows whose segments are gone.
fn remove_dropped_tables(shared: &Shared, lsn_floor: u64) -> Result<()> {
    let fs = &*shared.fs;
    let tables_dir = shared.dir.join("tables");
    let Ok(entries) = fs.read_dir(&tables_dir) else {
        return Ok(());
    };
    let gone: Vec<PathBuf> = {
        let catalog = shared.tables.read().unwrap_or_else(|p| p.into_inner());
        entries
            .into_iter()
            .filter(|e| e.is_dir)
            .filter(|e| {
                e.path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|id| !catalog.by_id.contains_key(&id))
            })
            .map(|e| e.path)
            .collect()
    };
    if gone.is_empty() {
        return Ok(());
    }
    store_catalog(shared, lsn_floor)?;
    for path in gone {
        tracing::info!(path = %path.display(), "removing a dropped table's files");
        remove_tree(fs, &path)?;
    }
    Ok(())
}

/// Removes `path` and everything under it.
fn remove_tree(fs: &dyn FileSystem, path: &Path) -> Result<()> {
    for entry in fs
        .read_dir(path)
        .map_err(StorageError::io("read_dir", path))?
    {
        if entry.is_dir {
            remove_tree(fs, &entry.path)?;
        } else {
            fs.remove_file(&entry.path)
                .map_err(StorageError::io("remove", &entry.path))?;
        }
    }
    fs.remove_dir(path)
        .map_err(StorageError::io("remove", path))?;
    fs.sync_dir(path.parent().unwrap_or(path))
        .map_err(StorageError::io("sync_dir", path))
}

pub(super) fn remove_orphan_segments(
    fs: &dyn FileSystem,
    table_dir: &Path,
    manifest: &Manifest,
) -> Result<()> {
    let seg_dir = table_dir.join("segments");
    let Ok(entries) = fs.read_dir(&seg_dir) else {
        return Ok(());
    };
    let mut files = Vec::new();
    for entry in entries {
        if entry.is_dir {
            // A day partition.
            if let Ok(inner) = fs.read_dir(&entry.path) {
                files.extend(inner.into_iter().filter(|e| !e.is_dir).map(|e| e.path));
            }
        } else {
            files.push(entry.path);
        }
    }
    for path in files {
        // A segment without live rows has no file (a drop removed it).
        if !manifest
            .segments
            .iter()
            .any(|s| s.has_rows() && s.path == path)
        {
            tracing::info!(path = %path.display(), "removing a segment no manifest lists");
            fs.remove_file(&path)
                .map_err(StorageError::io("remove", &path))?;
            if let Some(dir) = path.parent() {
                super::sealing::remove_dir_if_empty(fs, dir);
            }
        }
    }
    Ok(())
}
