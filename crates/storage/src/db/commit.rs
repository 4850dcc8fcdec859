//! The committer thread (frames requests as WAL records, writes each group
//! with one vectored write, applies and publishes it) and the syncer thread
//! (coalesced fsyncs for durable acks). See the parent module's docs for
//! the commit order and what each answer means.

use super::recovery::{store_catalog, table_dir};
use super::sealing::force_seal_biggest;
use super::*;

pub(super) struct Committer {
    pub(super) shared: Arc<Shared>,
    pub(super) wal: WalWriter,
    pub(super) next_lsn: u64,
    pub(super) seal_tx: Sender<Arc<Table>>,
    /// WAL file of each staged part not yet committed or abandoned.
    pub(super) part_files: HashMap<u64, PathBuf>,
}

/// A request after its record was framed, waiting for the write.
pub(super) enum Framed {
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
    pub(super) fn run(mut self, rx: Receiver<Request>) {
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
pub(super) type SyncRequest = (SyncJob, Vec<oneshot::Sender<Result<()>>>);

/// Runs the committer's sync jobs in order, coalescing those queued
/// together into one round of fsyncs (group commit for durability).
pub(super) fn syncer_loop(shared: &Shared, rx: Receiver<SyncRequest>) {
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
pub(super) fn finish_sync(
    shared: &Shared,
    jobs: Vec<SyncJob>,
    replies: Vec<oneshot::Sender<Result<()>>>,
) {
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

pub(super) fn finish_sync_failed(
    shared: &Shared,
    e: &StorageError,
    replies: Vec<oneshot::Sender<Result<()>>>,
) {
    poison_shared(shared, e);
    for r in replies {
        let _ = r.send(Err(StorageError::Poisoned(e.to_string())));
    }
}

pub(super) fn poison_shared(shared: &Shared, e: &StorageError) {
    tracing::error!(error = %e, "write failed; the database refuses further writes until restarted");
    let mut p = lock(&shared.poisoned);
    if p.is_none() {
        *p = Some(e.to_string());
    }
    drop(p);
    // Ingest waiting for memory stops waiting (its commits now fail).
    shared.sealed.notify_waiters();
}
