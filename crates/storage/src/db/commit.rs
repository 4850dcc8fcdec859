//! The committer thread. For each group of queued requests it
//!
//! 1. **frames** every request as a WAL record ([`Group`]): checks, limits,
//!    row ids and symbol entries are worked out against the catalog plus
//!    what earlier requests of the group change, and nothing shared is
//!    touched; a request that cannot be framed is answered with its error
//!    and left out of the group;
//! 2. **writes** the group with one vectored write (on failure: poison,
//!    every request of the group gets an error, and recovery will ignore
//!    whatever part of the group reached the file);
//! 3. **applies** it: the catalog, schemas, symbol entries marked logged,
//!    memtables, WAL file bookkeeping, the visible LSN, then the
//!    "committed" answers; hands the syncer what a sync must cover and
//!    registers the durable waits.
//!
//! Once the database is poisoned every later request is answered with the
//! error and nothing is written. A panic while processing a group poisons
//! the database instead of ending the thread.

use std::collections::{HashMap, HashSet};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::Receiver;

use super::recovery::table_dir;
use super::sealing::force_seal_biggest;
use super::*;
use crate::format::records::{
    DropTableRecord, PartRecord, PartRows, SYMBOLS_PER_RECORD_BYTES, SchemaRecord, SymbolsRecord,
    TransactionRecord, TxnPart,
};
use crate::format::wal::RecordKind;
use crate::limits::MAX_TABLES;
use crate::table::StoredBatch;
use crate::wal::{Chunk, RecordToWrite};

pub(super) struct Committer {
    shared: Arc<Shared>,
    wal: WalWriter,
    seal_tx: Sender<super::sealing::SealerJob>,
    /// Staged parts whose record could not be framed: a commit naming one
    /// fails.
    failed_parts: HashSet<u64>,
}

/// Rows a framed commit appends to one table.
struct Applied {
    table: Arc<Table>,
    first_row_id: u64,
    batch: RecordBatch,
    staged: Option<u64>,
}

/// What applying a framed request does.
enum Outcome {
    Commit {
        lsn: u64,
        parts: Vec<Applied>,
        tables: Vec<String>,
        committed: oneshot::Sender<Result<Committed>>,
        durable: Option<oneshot::Sender<Result<()>>>,
    },
    Table {
        reply: oneshot::Sender<Result<Arc<Table>>>,
        table: Arc<Table>,
        created: bool,
    },
    Schema {
        reply: oneshot::Sender<Result<Arc<TableSchema>>>,
        table: Arc<Table>,
        /// The new schema; `None` when nothing changed.
        schema: Option<TableSchema>,
    },
    Dropped {
        reply: oneshot::Sender<Result<()>>,
        table: Arc<Table>,
        /// A TRUNCATE's empty table, filed under the name in the same
        /// catalog update (no reader sees the name missing).
        replacement: Option<Arc<Table>>,
    },
    Sync(oneshot::Sender<Result<()>>),
    Staged(Vec<u64>),
    Abandoned(Vec<u64>),
}

impl Outcome {
    /// Answers with `err` (the group was not written).
    fn fail(self, err: impl Fn() -> StorageError) {
        match self {
            Outcome::Commit {
                committed, durable, ..
            } => {
                let _ = committed.send(Err(err()));
                if let Some(d) = durable {
                    let _ = d.send(Err(err()));
                }
            }
            Outcome::Table { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Outcome::Dropped { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Outcome::Schema { reply, .. } => {
                let _ = reply.send(Err(err()));
            }
            Outcome::Sync(reply) => {
                let _ = reply.send(Err(err()));
            }
            Outcome::Staged(_) | Outcome::Abandoned(_) => {}
        }
    }
}

/// A group being framed: its records, what applying them does, and what
/// the group changes so far (a request sees the requests before it).
struct Group {
    records: Vec<RecordToWrite>,
    outcomes: Vec<Outcome>,
    next_lsn: u64,
    next_table_id: u32,
    new_tables: Vec<Arc<Table>>,
    schemas: HashMap<u32, TableSchema>,
    /// Next row id per table after the group's commits so far.
    row_ids: HashMap<u32, u64>,
    /// Symbol keys logged by the group so far, per (table id, column).
    logged: HashMap<(u32, String), usize>,
    /// Tables the group drops.
    dropped: Vec<u32>,
    wants_sync: bool,
}

impl Group {
    /// Whether `table` is dropped, by an applied drop or by this group.
    fn is_dropped(&self, table: &Table) -> bool {
        table.is_dropped() || self.dropped.contains(&table.id)
    }

    fn push(&mut self, record: RecordToWrite) -> u64 {
        let lsn = self.next_lsn;
        self.next_lsn += 1;
        self.records.push(record);
        lsn
    }
}

/// The error for a write to a dropped table.
fn dropped_error(table: &Table) -> StorageError {
    StorageError::InvalidBatch {
        table: table.schema().name.clone(),
        reason: "the table was dropped".into(),
    }
}

/// Fails a request that never reached framing.
fn fail_request(request: Request, err: &StorageError) {
    let e = || match err {
        StorageError::Poisoned(r) => StorageError::Poisoned(r.clone()),
        StorageError::Closed => StorageError::Closed,
        other => StorageError::Poisoned(other.to_string()),
    };
    match request {
        Request::Commit {
            committed, durable, ..
        } => {
            let _ = committed.send(Err(e()));
            if let Some(d) = durable {
                let _ = d.send(Err(e()));
            }
        }
        Request::CreateTable { reply, .. } => {
            let _ = reply.send(Err(e()));
        }
        Request::AlterSchema { reply, .. } => {
            let _ = reply.send(Err(e()));
        }
        Request::DropTable { reply, .. } => {
            let _ = reply.send(Err(e()));
        }
        Request::TruncateTable { reply, .. } => {
            let _ = reply.send(Err(e()));
        }
        Request::RenameTable { reply, .. } => {
            let _ = reply.send(Err(e()));
        }
        Request::Sync { reply } => {
            let _ = reply.send(Err(e()));
        }
        Request::Stage { .. } | Request::Abandon { .. } => {}
    }
}

impl Committer {
    pub(super) fn new(
        shared: Arc<Shared>,
        wal: WalWriter,
        seal_tx: Sender<super::sealing::SealerJob>,
    ) -> Self {
        Committer {
            shared,
            wal,
            seal_tx,
            failed_parts: HashSet::new(),
        }
    }

    pub(super) fn run(mut self, rx: Receiver<Request>) {
        while let Ok(first) = rx.recv() {
            let mut group = vec![first];
            while group.len() < 1024 {
                match rx.try_recv() {
                    Ok(r) => group.push(r),
                    Err(_) => break,
                }
            }
            let processed = std::panic::catch_unwind(AssertUnwindSafe(|| self.process(group)));
            if processed.is_err() {
                // The group's reply channels were dropped by the unwind: its
                // callers see the database closed.
                self.shared.poison(&StorageError::Poisoned(
                    "the committer failed unexpectedly (a bug)".into(),
                ));
            }
        }
        // Closed: everything written becomes durable before the syncer
        // stops, then a sync mark says so (damage found there later is
        // reported, not cut as a torn tail).
        let through = self.wal.next_lsn() - 1;
        self.shared.durability.written(self.wal.sync_job(), true);
        if self.shared.durability.wait_blocking(through).is_ok()
            && self.wal.append_sync_mark(through).is_ok()
        {
            self.shared.durability.written(self.wal.sync_job(), true);
        }
    }

    fn process(&mut self, requests: Vec<Request>) {
        if let Err(e) = self.shared.check_healthy() {
            for r in requests {
                fail_request(r, &e);
            }
            return;
        }
        let mut g = {
            let catalog = self.shared.tables.read().unwrap_or_else(|p| p.into_inner());
            Group {
                records: Vec::new(),
                outcomes: Vec::with_capacity(requests.len()),
                next_lsn: self.wal.next_lsn(),
                next_table_id: catalog.next_id,
                new_tables: Vec::new(),
                schemas: HashMap::new(),
                row_ids: HashMap::new(),
                logged: HashMap::new(),
                dropped: Vec::new(),
                wants_sync: self.shared.options.sync_every_commit,
            }
        };
        for r in requests {
            self.frame(&mut g, r);
        }
        let Group {
            records,
            outcomes,
            logged,
            wants_sync,
            ..
        } = g;
        let file = lock(&self.shared.wal_files).current().unwrap_or(0);
        // Poisoned while the group was framed (a failed fsync on the
        // syncer): nothing more is written. (A group whose write is under
        // way when an fsync fails is still acknowledged "committed": it is
        // in the WAL, which is all that promises; it is never reported
        // durable.)
        if let Some(reason) = self.shared.poisoned() {
            for o in outcomes {
                o.fail(|| StorageError::Poisoned(reason.clone()));
            }
            return;
        }
        if !records.is_empty()
            && let Err(e) = self
                .wal
                .append_group(records, self.shared.durability.durable_lsn())
        {
            self.shared.poison(&e);
            let reason = e.to_string();
            for o in outcomes {
                o.fail(|| StorageError::Poisoned(reason.clone()));
            }
            return;
        }
        let touched = self.apply(outcomes, logged, file, wants_sync);
        match self.wal.roll_if_full() {
            Ok(Some(path)) => lock(&self.shared.wal_files).roll(path, self.wal.next_lsn()),
            Ok(None) => {}
            Err(e) => self.shared.poison(&e),
        }
        self.trigger_seals(touched);
    }

    /// Frames one request into the group (see the module docs).
    fn frame(&mut self, g: &mut Group, request: Request) {
        match request {
            Request::Sync { reply } => {
                g.wants_sync = true;
                g.outcomes.push(Outcome::Sync(reply));
            }
            Request::Abandon { parts } => g.outcomes.push(Outcome::Abandoned(parts)),
            Request::CreateTable {
                schema,
                exclusive,
                reply,
            } => match self.frame_create(g, schema) {
                Ok((table, false)) if exclusive => {
                    let _ = reply.send(Err(StorageError::TableExists {
                        table: table.schema().name.clone(),
                    }));
                }
                Ok((table, created)) => g.outcomes.push(Outcome::Table {
                    reply,
                    table,
                    created,
                }),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Request::RenameTable { table, name, reply } => {
                match self.frame_rename(g, &table, name) {
                    Ok(schema) => g.outcomes.push(Outcome::Schema {
                        reply,
                        table,
                        schema: Some(schema),
                    }),
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Request::TruncateTable { table, reply } => match self.frame_truncate(g, &table) {
                Ok(new) => {
                    // The drop's own answer is the truncate's.
                    let (dropped, _) = oneshot::channel();
                    g.outcomes.push(Outcome::Dropped {
                        reply: dropped,
                        table,
                        replacement: Some(new.clone()),
                    });
                    g.outcomes.push(Outcome::Table {
                        reply,
                        table: new,
                        created: false,
                    });
                }
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Request::DropTable { table, reply } => match Self::frame_drop(g, &table) {
                Ok(()) => g.outcomes.push(Outcome::Dropped {
                    reply,
                    table,
                    replacement: None,
                }),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Request::AlterSchema {
                table,
                change,
                reply,
            } => match Self::frame_alter_columns(g, &table, change) {
                Ok(schema) => g.outcomes.push(Outcome::Schema {
                    reply,
                    table,
                    schema,
                }),
                Err(e) => {
                    let _ = reply.send(Err(e));
                }
            },
            Request::Stage { parts } => {
                let mut ids = Vec::with_capacity(parts.len());
                for (part_id, table_id, row_count, rows) in parts {
                    let head = PartRecord {
                        part_id,
                        table_id,
                        row_count,
                    };
                    let record = head
                        .encode(rows)
                        .map_err(StorageError::from)
                        .and_then(|body| {
                            let r = RecordToWrite {
                                kind: RecordKind::Part,
                                body,
                            };
                            r.body_len().map(|_| r)
                        });
                    match record {
                        Ok(r) => {
                            g.push(r);
                            ids.push(part_id);
                        }
                        Err(e) => {
                            tracing::warn!(part_id, error = %e, "a staged part was refused; its transaction will fail");
                            self.failed_parts.insert(part_id);
                        }
                    }
                }
                g.outcomes.push(Outcome::Staged(ids));
            }
            Request::Commit {
                mut txn,
                committed,
                durable,
            } => {
                let parts = txn.take_parts();
                if parts.is_empty() {
                    let lsn = self.shared.visible_lsn.load(Ordering::Acquire);
                    let _ = committed.send(Ok(Committed {
                        lsn,
                        tables: vec![],
                    }));
                    if let Some(d) = durable {
                        g.wants_sync = true;
                        g.outcomes.push(Outcome::Sync(d));
                    }
                    return;
                }
                let staged: Vec<u64> = parts.iter().filter_map(|p| p.staged).collect();
                match self.frame_commit(g, parts) {
                    Ok((lsn, parts, tables)) => g.outcomes.push(Outcome::Commit {
                        lsn,
                        parts,
                        tables,
                        committed,
                        durable,
                    }),
                    Err(e) => {
                        let _ = committed.send(Err(e));
                        if let Some(d) = durable {
                            let _ = d.send(Err(StorageError::Closed));
                        }
                        for id in &staged {
                            self.failed_parts.remove(id);
                        }
                        g.outcomes.push(Outcome::Abandoned(staged));
                    }
                }
            }
        }
    }

    fn frame_create(
        &mut self,
        g: &mut Group,
        mut schema: TableSchema,
    ) -> Result<(Arc<Table>, bool)> {
        // A new table has no stored data to keep apart.
        schema.has_dropped_columns = false;
        for c in &mut schema.columns {
            c.stored_name.clone_from(&c.name);
        }
        let existing = {
            let catalog = self.shared.tables.read().unwrap_or_else(|p| p.into_inner());
            // A rename earlier in this group moves a name: the table it
            // goes to has it, the one it leaves does not.
            let renamed_to = g.schemas.iter().find_map(|(id, s)| {
                s.name
                    .eq_ignore_ascii_case(&schema.name)
                    .then(|| catalog.by_id.get(id).cloned())
                    .flatten()
            });
            renamed_to.or_else(|| {
                catalog.get(&schema.name).cloned().filter(|t| {
                    g.schemas
                        .get(&t.id)
                        .is_none_or(|s| s.name.eq_ignore_ascii_case(&schema.name))
                })
            })
        }
        .filter(|t| !g.is_dropped(t))
        .or_else(|| {
            g.new_tables
                .iter()
                .find(|t| t.schema().name.eq_ignore_ascii_case(&schema.name))
                .cloned()
        });
        if let Some(t) = existing {
            return Ok((t, false));
        }
        schema.validate()?;
        let count = self
            .shared
            .tables
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .by_id
            .len()
            + g.new_tables.len();
        let id = g.next_table_id;
        if count >= MAX_TABLES || id == u32::MAX {
            return Err(StorageError::LimitExceeded {
                what: "tables",
                value: count as u64 + 1,
                limit: MAX_TABLES as u64,
            });
        }
        let body = SchemaRecord {
            table_id: id,
            schema: schema.clone(),
        }
        .encode()?;
        let table = Arc::new(Table::new(
            id,
            table_dir(&self.shared.dir, id),
            schema,
            self.shared.fs.clone(),
        ));
        g.push(RecordToWrite {
            kind: RecordKind::CreateTable,
            body: vec![Chunk::Owned(body)],
        });
        g.next_table_id += 1;
        g.new_tables.push(table.clone());
        Ok((table, true))
    }

    /// Frames a drop of `table` (refused when it is dropped already).
    fn frame_drop(g: &mut Group, table: &Arc<Table>) -> Result<()> {
        if g.is_dropped(table) {
            return Err(dropped_error(table));
        }
        let body = DropTableRecord { table_id: table.id }.encode()?;
        g.push(RecordToWrite {
            kind: RecordKind::DropTable,
            body: vec![Chunk::Owned(body)],
        });
        g.dropped.push(table.id);
        Ok(())
    }

    /// Frames a rename of `table` to `name`: refused when another table
    /// (or one this group creates or renames) has the name.
    fn frame_rename(&self, g: &mut Group, table: &Arc<Table>, name: String) -> Result<TableSchema> {
        if g.is_dropped(table) {
            return Err(dropped_error(table));
        }
        let taken = {
            let catalog = self.shared.tables.read().unwrap_or_else(|p| p.into_inner());
            catalog
                .get(&name)
                .is_some_and(|t| t.id != table.id && !g.is_dropped(t))
        } || g
            .new_tables
            .iter()
            .any(|t| t.schema().name.eq_ignore_ascii_case(&name))
            || g.schemas
                .iter()
                .any(|(id, s)| *id != table.id && s.name.eq_ignore_ascii_case(&name));
        if taken {
            return Err(StorageError::InvalidName {
                table: table.schema().name.clone(),
                name,
                reason: "another table has this name",
            });
        }
        let mut schema = g
            .schemas
            .get(&table.id)
            .cloned()
            .unwrap_or_else(|| (*table.schema()).clone());
        schema.name = name;
        schema.version += 1;
        Self::push_schema(g, table, &schema)?;
        Ok(schema)
    }

    /// Frames `schema` as `table`'s next version (an AlterSchema record).
    fn push_schema(g: &mut Group, table: &Table, schema: &TableSchema) -> Result<()> {
        schema.validate()?;
        let body = SchemaRecord {
            table_id: table.id,
            schema: schema.clone(),
        }
        .encode()?;
        g.push(RecordToWrite {
            kind: RecordKind::AlterSchema,
            body: vec![Chunk::Owned(body)],
        });
        g.schemas.insert(table.id, schema.clone());
        Ok(())
    }

    /// Frames a truncate: the drop of `table` and the creation of an empty
    /// table of its name and schema, both or neither.
    fn frame_truncate(&mut self, g: &mut Group, table: &Arc<Table>) -> Result<Arc<Table>> {
        let records = g.records.len();
        // Columns added or a rename earlier in this group are part of it.
        let schema = g
            .schemas
            .get(&table.id)
            .cloned()
            .unwrap_or_else(|| (*table.schema()).clone());
        Self::frame_drop(g, table)?;
        match self.frame_create(g, schema) {
            Ok((new, true)) => Ok(new),
            other => {
                // Take the drop back out of the group.
                g.records.truncate(records);
                g.next_lsn -= 1;
                g.dropped.pop();
                Err(match other {
                    Err(e) => e,
                    Ok(_) => StorageError::InvalidBatch {
                        table: table.schema().name.clone(),
                        reason: "another table of its name exists".into(),
                    },
                })
            }
        }
    }

    /// The schema after `change` to `table`'s columns, as the group left
    /// it (`None` when nothing changes).
    fn frame_alter_columns(
        g: &mut Group,
        table: &Arc<Table>,
        change: SchemaChange,
    ) -> Result<Option<TableSchema>> {
        if g.is_dropped(table) {
            return Err(dropped_error(table));
        }
        let schema = match g.schemas.get(&table.id) {
            Some(s) => s.apply_change(change)?,
            None => table.schema().apply_change(change)?,
        };
        if let Some(s) = &schema {
            Self::push_schema(g, table, s)?;
        }
        Ok(schema)
    }

    /// Frames a transaction: row ids, the symbol entries its tables have
    /// not logged yet (in Symbols records of bounded size before it), the
    /// record. Changes the group only if it fits.
    fn frame_commit(
        &self,
        g: &mut Group,
        parts: Vec<Part>,
    ) -> Result<(u64, Vec<Applied>, Vec<String>)> {
        if let Some(p) = parts.iter().find(|p| g.is_dropped(&p.table)) {
            return Err(dropped_error(&p.table));
        }
        if let Some(p) = parts
            .iter()
            .find(|p| p.staged.is_some_and(|id| self.failed_parts.contains(&id)))
        {
            return Err(StorageError::InvalidBatch {
                table: p.table.schema().name.clone(),
                reason: "rows staged for this transaction could not be written".into(),
            });
        }
        let mut row_ids: HashMap<u32, u64> = HashMap::new();
        let mut logged: HashMap<(u32, String), usize> = HashMap::new();
        let mut records = Vec::new();
        let mut record = TransactionRecord {
            parts: Vec::with_capacity(parts.len()),
        };
        let mut applied = Vec::with_capacity(parts.len());
        let mut tables: Vec<String> = Vec::new();
        for part in parts {
            let id = part.table.id;
            let rows = part.batch.num_rows() as u64;
            let first_time = !row_ids.contains_key(&id);
            let next = row_ids.entry(id).or_insert_with(|| {
                g.row_ids
                    .get(&id)
                    .copied()
                    .unwrap_or_else(|| part.table.state().next_row_id())
            });
            let first_row_id = *next;
            *next += rows;
            if first_time {
                for (column, dictionary) in part.table.all_symbols() {
                    let key = (id, column.to_ascii_lowercase());
                    let from = g.logged.get(&key).copied().unwrap_or(0);
                    let from = u32::try_from(from).unwrap_or(u32::MAX);
                    if let Some((first_key, entries)) = dictionary.unlogged_from(from) {
                        logged.insert(key, first_key as usize + entries.len());
                        symbol_records(id, &column, first_key, &entries, &mut records)?;
                    }
                }
                let name = part.table.schema().name.clone();
                if !tables.contains(&name) {
                    tables.push(name);
                }
            }
            record.parts.push(TxnPart {
                table_id: id,
                first_row_id,
                row_count: rows,
                rows: match part.staged {
                    Some(part_id) => PartRows::Staged(part_id),
                    None => PartRows::Inline(part.rows),
                },
            });
            applied.push(Applied {
                table: part.table,
                first_row_id,
                batch: part.batch,
                staged: part.staged,
            });
        }
        let body = record.encode()?;
        let record = RecordToWrite {
            kind: RecordKind::Transaction,
            body,
        };
        record.body_len()?;
        for r in records {
            g.push(r);
        }
        let lsn = g.push(record);
        g.row_ids.extend(row_ids);
        g.logged.extend(logged);
        Ok((lsn, applied, tables))
    }

    /// Applies a written group (see the module docs). Returns the tables
    /// it appended rows to.
    fn apply(
        &mut self,
        outcomes: Vec<Outcome>,
        logged: HashMap<(u32, String), usize>,
        file: u64,
        wants_sync: bool,
    ) -> Vec<(Arc<Table>, bool)> {
        let shared = self.shared.clone();
        let mut touched: Vec<(Arc<Table>, bool)> = Vec::new();
        let mut replies = Vec::new();
        let mut durable_waits = Vec::new();
        let mut max_lsn = None;
        let mut ddl = false;
        // A DDL's lsn is published before the catalog changes, so a
        // checkpoint built meanwhile knows to wait for it (see
        // `store_durable_catalog`).
        if outcomes.iter().any(|o| {
            matches!(
                o,
                Outcome::Table { created: true, .. }
                    | Outcome::Schema {
                        schema: Some(_),
                        ..
                    }
                    | Outcome::Dropped { .. }
            )
        }) {
            shared
                .last_ddl_lsn
                .store(self.wal.next_lsn() - 1, Ordering::Release);
        }
        for o in outcomes {
            match o {
                Outcome::Table {
                    reply,
                    table,
                    created,
                } => {
                    if created {
                        ddl = true;
                        shared
                            .tables
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .insert(table.clone());
                        tracing::info!(table = %table.schema().name, id = table.id, "table created");
                    }
                    let _ = reply.send(Ok(table));
                }
                Outcome::Dropped {
                    reply,
                    table,
                    replacement,
                } => {
                    ddl = true;
                    {
                        let mut catalog = shared.tables.write().unwrap_or_else(|p| p.into_inner());
                        catalog.remove(table.id);
                        if let Some(new) = &replacement {
                            catalog.insert(new.clone());
                            tracing::info!(table = %new.schema().name, id = new.id, "table truncated");
                        }
                    }
                    table.mark_dropped();
                    let freed = table.state_mut().drop_rows();
                    let _ = shared.unsealed_bytes.fetch_update(
                        Ordering::AcqRel,
                        Ordering::Acquire,
                        |b| Some(b.saturating_sub(freed)),
                    );
                    lock(&shared.wal_files).forget_table(table.id);
                    tracing::info!(table = %table.schema().name, id = table.id, "table dropped; its files go at the next open");
                    let _ = reply.send(Ok(()));
                }
                Outcome::Schema {
                    reply,
                    table,
                    schema,
                } => {
                    if let Some(s) = schema {
                        ddl = true;
                        let old = table.schema().name.clone();
                        tracing::info!(table = %s.name, version = s.version, "schema altered");
                        table.set_schema(s);
                        if !old.eq_ignore_ascii_case(&table.schema().name) {
                            tracing::info!(from = %old, to = %table.schema().name, "table renamed");
                            shared
                                .tables
                                .write()
                                .unwrap_or_else(|p| p.into_inner())
                                .rename(&table, &old);
                        }
                    }
                    let _ = reply.send(Ok(table.schema()));
                }
                Outcome::Staged(ids) => {
                    let mut files = lock(&shared.wal_files);
                    for id in ids {
                        files.stage(file, id);
                    }
                }
                Outcome::Abandoned(ids) => {
                    let mut files = lock(&shared.wal_files);
                    for id in ids {
                        self.failed_parts.remove(&id);
                        files.abandon(id);
                    }
                }
                Outcome::Sync(reply) => durable_waits.push((self.wal.next_lsn() - 1, reply)),
                Outcome::Commit {
                    lsn,
                    parts,
                    tables,
                    committed,
                    durable,
                } => {
                    for p in parts {
                        let end = p.first_row_id + p.batch.num_rows() as u64;
                        let bytes = p.table.state_mut().append(StoredBatch {
                            lsn,
                            first_row_id: p.first_row_id,
                            batch: p.batch,
                            ts_order: Default::default(),
                        });
                        shared.unsealed_bytes.fetch_add(bytes, Ordering::AcqRel);
                        {
                            let mut files = lock(&shared.wal_files);
                            if let Some(id) = p.staged {
                                files.commit_staged(id, p.table.id, end);
                            }
                            files.record_rows(file, p.table.id, end);
                        }
                        if !touched.iter().any(|(t, _)| Arc::ptr_eq(t, &p.table)) {
                            touched.push((p.table, false));
                        }
                    }
                    max_lsn = Some(lsn);
                    replies.push((committed, Committed { lsn, tables }));
                    if let Some(d) = durable {
                        durable_waits.push((lsn, d));
                    }
                }
            }
        }
        if !logged.is_empty() {
            let catalog = shared.tables.read().unwrap_or_else(|p| p.into_inner());
            for ((table, column), end) in logged {
                if let Some(s) = catalog
                    .by_id
                    .get(&table)
                    .and_then(|t| t.stored_symbols(&column))
                {
                    s.mark_logged(end);
                }
            }
        }
        if let Some(lsn) = max_lsn {
            shared.visible_lsn.store(lsn, Ordering::Release);
        }
        if ddl {
            shared
                .last_ddl_lsn
                .store(self.wal.next_lsn() - 1, Ordering::Release);
        }
        for (reply, c) in replies {
            let _ = reply.send(Ok(c));
        }
        let wants_sync = wants_sync || !durable_waits.is_empty();
        shared.durability.written(self.wal.sync_job(), wants_sync);
        for (lsn, reply) in durable_waits {
            shared.durability.wait_for(lsn, reply);
        }
        touched
    }

    /// Hands the sealer the tables past their thresholds, those pinning
    /// old WAL files, and the biggest ones when memory is over the limit.
    fn trigger_seals(&self, mut touched: Vec<(Arc<Table>, bool)>) {
        self.seal_tables_pinning_old_wal_files(&mut touched);
        if self.shared.over_memory_limit() {
            force_seal_biggest(&self.shared, &mut touched);
        }
        let options = &self.shared.options;
        for (t, force) in touched {
            let due = {
                let s = t.state();
                !t.is_dropped()
                    && !s.is_sealing()
                    && (force
                        || s.unsealed_rows() >= options.seal_rows
                        || s.memtable_bytes() >= options.seal_bytes)
            };
            if due {
                let _ = self.seal_tx.send(super::sealing::SealerJob::Seal(t));
            }
        }
    }

    /// Marks for sealing (whatever their size) the tables that hold unsealed
    /// rows in the oldest WAL file once there are too many files.
    fn seal_tables_pinning_old_wal_files(&self, touched: &mut Vec<(Arc<Table>, bool)>) {
        let pinning =
            lock(&self.shared.wal_files).pinning_tables(self.shared.options.max_wal_files);
        if pinning.is_empty() {
            return;
        }
        let catalog = self.shared.tables.read().unwrap_or_else(|p| p.into_inner());
        for (id, end) in pinning {
            // Rows already sealed wait for their seal to be durable, not for
            // another seal (which would only cut a tiny segment).
            if let Some(t) = catalog.by_id.get(&id)
                && t.state().sealed_row_end() < end
            {
                match touched.iter_mut().find(|(x, _)| Arc::ptr_eq(x, t)) {
                    Some(entry) => entry.1 = true,
                    None => touched.push((t.clone(), true)),
                }
            }
        }
    }
}

/// Symbols records for new entries `first_key ..` of a column, each about
/// [`SYMBOLS_PER_RECORD_BYTES`] at most (one entry alone may be more).
fn symbol_records(
    table_id: u32,
    column: &str,
    first_key: u32,
    entries: &[Arc<str>],
    out: &mut Vec<RecordToWrite>,
) -> Result<()> {
    let mut start = 0;
    while start < entries.len() {
        let mut end = start;
        let mut bytes = 0;
        while end < entries.len()
            && (end == start || bytes + entries[end].len() <= SYMBOLS_PER_RECORD_BYTES)
        {
            bytes += entries[end].len() + 4;
            end += 1;
        }
        let key = u32::try_from(start)
            .ok()
            .and_then(|s| first_key.checked_add(s))
            .ok_or(StorageError::LimitExceeded {
                what: "entries in a SYMBOL column's dictionary",
                value: u64::from(first_key) + start as u64,
                limit: u64::from(u32::MAX),
            })?;
        let body = SymbolsRecord {
            table_id,
            column,
            first_key: key,
            entries: entries[start..end].iter().map(|e| &**e).collect(),
        }
        .encode()?;
        let record = RecordToWrite {
            kind: RecordKind::Symbols,
            body: vec![Chunk::Owned(body)],
        };
        record.body_len()?;
        out.push(record);
        start = end;
    }
    Ok(())
}
