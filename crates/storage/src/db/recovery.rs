//! Opening a data directory: the catalog, each table's manifest and
//! segments (removing orphans), then the WAL replayed into memtables.

use super::*;

impl Database {
    pub(super) fn recover(dir: &Path, options: &Options) -> Result<(Shared, u64)> {
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
}

pub(super) fn table_dir(dir: &Path, id: u32) -> PathBuf {
    dir.join("tables").join(id.to_string())
}

pub(super) fn load_catalog(dir: &Path) -> Result<Catalog> {
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

pub(super) fn store_catalog(dir: &Path, catalog: &Catalog) -> Result<()> {
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
pub(super) fn undecodable(r: &Reader<'_>, e: arrow::error::ArrowError) -> StorageError {
    tracing::error!(error = %e, "undecodable rows in a WAL record");
    r.corrupt("undecodable rows")
}

pub(super) fn remove_orphan_segments(table_dir: &Path, manifest: &Manifest) -> Result<()> {
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
