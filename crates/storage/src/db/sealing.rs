//! Sealing: the sealer thread writes a table's oldest rows to segments
//! (split by UTC day) and drops them from memory; the seal syncer thread
//! makes written seals durable in order, stores manifests and deletes the
//! WAL files they cover (after storing the catalog checkpoint). A drop of
//! rows by time (DROP PARTITION, TTL) travels the same way: the sealer
//! seals the table's visible rows, the seal syncer then cuts segments and
//! stores the manifest in its place among the seals ([`drop_rows`]); it is
//! the only thread that stores manifests. See the parent module's docs.
//! Neither thread asks the committer for anything: WAL durability comes
//! from the syncer ([`Durability::wait_blocking`]).

use arrow::array::ArrayRef;
use arrow::compute::concat_batches;
use arrow::datatypes::DataType;

use super::recovery::store_durable_catalog;
use super::*;
use crate::format::manifest::{MANIFEST_FILE, Manifest};
use crate::schema::PartitionBy;
use crate::segment::{Segment, SegmentCut, write_durably, write_segment};

/// Marks for sealing, whatever their size, the tables holding the most
/// unsealed bytes, largest first, until sealing them would bring memory
/// back under [`Options::max_unsealed_bytes`] (memory is over it). Small
/// tables are left alone unless they are needed, so they do not get a tiny
/// segment every time a big one hits the limit.
pub(super) fn force_seal_biggest(shared: &Shared, touched: &mut Vec<(Arc<Table>, bool)>) {
    let catalog = shared.tables.read().unwrap_or_else(|p| p.into_inner());
    let mut tables: Vec<(usize, &Arc<Table>)> = catalog
        .by_id
        .values()
        .filter_map(|t| {
            let state = t.state();
            (!state.memtable_is_empty()).then_some((state.memtable_bytes(), t))
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
pub(super) const SEAL_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_secs(1);

/// Work for the sealer thread.
pub(super) enum SealerJob {
    /// Seal the table's oldest visible rows.
    Seal(Arc<Table>),
    /// Seal all of the table's visible rows, then hand the drop to the
    /// seal syncer (after those rows' seal).
    DropRows(DropRows),
}

/// Work for the seal syncer, in the order the sealer handed it over.
pub(super) enum SyncJob {
    Sealed(SealedRows),
    DropRows(DropRows),
}

/// A request to remove a table's rows by designated timestamp (DROP
/// PARTITION, TTL).
pub(super) struct DropRows {
    pub(super) table: Arc<Table>,
    /// Half-open raw-value ranges, sorted, not overlapping.
    pub(super) ranges: Vec<(i64, i64)>,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<super::DroppedRows>>,
}

pub(super) fn sealer_loop(
    shared: &Shared,
    rx: std::sync::mpsc::Receiver<SealerJob>,
    sealed: &std::sync::mpsc::SyncSender<SyncJob>,
) {
    while let Ok(job) = rx.recv() {
        let table = match job {
            SealerJob::Seal(table) => table,
            SealerJob::DropRows(drop) => {
                seal_before_drop(shared, drop, sealed);
                continue;
            }
        };
        let mut queue = vec![table];
        while let Some(table) = queue.pop() {
            // A panic while sealing (a bug) stops storage instead of the
            // thread: the rows stay in memory and the WAL.
            match guarded_seal(shared, &table) {
                Ok(None) => {}
                Ok(Some(job)) => {
                    // The rows left memory: ingest waiting for it goes on.
                    shared.sealed.notify_waiters();
                    // Waits while the seal syncer is behind.
                    let _ = sealed.send(SyncJob::Sealed(job));
                    // Commits that arrived while this seal ran were not
                    // handed over (the table was sealing): if they are
                    // due a seal themselves, seal again now rather than
                    // wait for a commit that may never come.
                    let due = {
                        let s = table.state();
                        !s.is_sealing()
                            && (s.unsealed_rows() >= shared.options.seal_rows
                                || s.memtable_bytes() >= shared.options.seal_bytes)
                    };
                    if due && !queue.iter().any(|t| Arc::ptr_eq(t, &table)) {
                        queue.push(Arc::clone(&table));
                    }
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
                    abort_seal(shared, &table, &e);
                    // Ingest may be waiting for memory with no commit left
                    // to ask for another seal: retry after a pause (a full
                    // disk may get space back), unless the database is
                    // poisoned, which ends the waits instead, or closing
                    // (the WAL keeps the rows).
                    let closing = shared.closing.load(Ordering::Acquire);
                    if shared.over_memory_limit() && shared.poisoned().is_none() && !closing {
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

/// [`seal`], with a panic (a bug) poisoning the database instead of
/// ending the thread: the rows stay in memory and the WAL.
fn guarded_seal(shared: &Shared, table: &Arc<Table>) -> Result<Option<SealedRows>> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| seal(shared, table))).unwrap_or_else(
        |_| {
            let e = StorageError::Poisoned("sealing failed unexpectedly (a bug)".into());
            shared.poison(&e);
            Err(e)
        },
    )
}

/// Ends a seal that failed with `e`: logged, its rows stay in memory.
fn abort_seal(shared: &Shared, table: &Table, e: &StorageError) {
    if !matches!(e, StorageError::Closed) {
        tracing::error!(table = %table.schema().name, error = %e, "sealing failed; rows stay in memory and the WAL");
    }
    let freed = table.state_mut().abort_seal();
    if freed > 0 {
        let _ = shared
            .unsealed_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_sub(freed))
            });
    }
}

/// Seals every visible row of the drop's table (one seal takes them all:
/// this thread is the only one sealing), then hands the drop to the seal
/// syncer, which makes that seal durable before it removes rows, so the
/// drop reaches every row committed before it was asked.
fn seal_before_drop(
    shared: &Shared,
    drop: DropRows,
    sealed: &std::sync::mpsc::SyncSender<SyncJob>,
) {
    match guarded_seal(shared, &drop.table) {
        Ok(None) => {}
        Ok(Some(job)) => {
            shared.sealed.notify_waiters();
            let _ = sealed.send(SyncJob::Sealed(job));
        }
        Err(e) => {
            abort_seal(shared, &drop.table, &e);
            let _ = drop.reply.send(Err(e));
            return;
        }
    }
    // Unsent (the syncer stopped): the reply is dropped, which the caller
    // reads as the database closing.
    let _ = sealed.send(SyncJob::DropRows(drop));
}

/// Writes the oldest visible memtable rows of `table` to segments and drops
/// them from memory (see the module docs). Returns what the seal syncer must
/// make durable, or `None` when there was nothing to seal.
pub(super) fn seal(shared: &Shared, table: &Arc<Table>) -> Result<Option<SealedRows>> {
    shared.check_healthy()?;
    // A dropped table's rows are never sealed (its files go at the next
    // open).
    if table.is_dropped() {
        return Ok(None);
    }
    let visible = shared.visible_lsn.load(Ordering::Acquire);
    let Some(input) = table.state_mut().begin_seal(visible) else {
        return Ok(None);
    };
    let started = Instant::now();
    let snapshot = table.snapshot(visible);
    let schema = snapshot.schema().clone();
    // Segment files name columns by their stored names.
    let sealed_schema = schema.sealed_schema();
    let ts_col = schema
        .designated_timestamp
        .map(|i| schema.columns[i].stored_name.clone());
    let mut projected = Vec::new();
    let mut pending = Vec::new();
    let mut pending_rows = 0usize;
    let mut ts_range = (i64::MAX, i64::MIN);
    let chunk = shared.options.segment_batch_rows.max(1);
    // Project the memtable rows through a one-part snapshot scan.
    let part_snapshot = snapshot.with_batches(input.batches.clone());
    for b in part_snapshot.sealed_batches() {
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
            projected.push(concat_batches(&sealed_schema, &pending)?);
            pending.clear();
            pending_rows = 0;
        }
    }
    if !pending.is_empty() {
        projected.push(concat_batches(&sealed_schema, &pending)?);
    }
    let segments_dir = table.dir.join("segments");
    // Every unit but NONE is written in day directories (see `PartitionBy`).
    let pieces = match (schema.partition_by, &ts_col) {
        (PartitionBy::None, _) | (_, None) => vec![(None, projected)],
        (_, Some(name)) => split_by_day(projected, name, MAX_DAYS_PER_SEAL),
    };
    let single = pieces.len() == 1;
    let mut written = Vec::with_capacity(pieces.len());
    let mut next_row_id = input.first_row_id;
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
        let sorted = ts_col
            .as_ref()
            .is_some_and(|name| crate::table::in_timestamp_order(&piece, name, None).is_some());
        written.push(Arc::new(write_segment(
            &*shared.fs,
            &dir,
            &schema.name,
            &sealed_schema,
            next_row_id,
            &piece,
            crate::segment::SegmentTimes { range, sorted },
        )?));
        next_row_id += piece_rows;
    }
    // Readers switch to the segment files now, and the rows leave memory
    // before the slow part (fsyncs, on the seal syncer): ingest waiting for
    // memory goes on sooner, the heap stays smaller, and the next seal can
    // start while the disk works. WAL files are deleted by the durable
    // sealed end only.
    let sealed_row_end = {
        let mut state = table.state_mut();
        let freed = state.finish_seal(&input, &written);
        let _ = shared
            .unsealed_bytes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |b| {
                Some(b.saturating_sub(freed))
            });
        state.sealed_row_end()
    };
    Ok(Some(SealedRows {
        table: table.clone(),
        new_segments: written,
        sealed_row_end,
        input_rows: input.rows,
        first_row_id: input.first_row_id,
        max_lsn: input.max_lsn,
        started,
        written_ms: started.elapsed().as_millis() as u64,
    }))
}

/// A seal whose segments are written and whose rows left memory, waiting to
/// be made durable by the seal syncer.
pub(super) struct SealedRows {
    table: Arc<Table>,
    /// The segments this seal wrote (not yet fsync'd).
    new_segments: Vec<Arc<Segment>>,
    /// The table's sealed row end after this seal: the manifest this seal
    /// makes durable lists the segments below it (later seals' segments
    /// are durable only once their own job has run).
    sealed_row_end: u64,
    input_rows: u64,
    first_row_id: u64,
    /// The WAL must be durable through this lsn before the manifest names
    /// the segments.
    max_lsn: u64,
    started: Instant,
    /// How long writing the segments took (the rest is fsyncs).
    written_ms: u64,
}

/// How many written seals may wait for their fsyncs before the sealer waits
/// too (and with it, through the memory limit, ingest).
pub(super) const SEALS_AWAITING_SYNC: usize = 4;

/// Makes written seals durable in seal order, coalescing those queued
/// together into one round of fsyncs, deletes the WAL files they cover,
/// and carries out drops of rows by time in their place in that order.
pub(super) fn seal_syncer_loop(shared: &Shared, rx: std::sync::mpsc::Receiver<SyncJob>) {
    while let Ok(first) = rx.recv() {
        let mut queued = vec![first];
        while let Ok(job) = rx.try_recv() {
            queued.push(job);
        }
        let mut seals = Vec::new();
        for job in queued {
            match job {
                SyncJob::Sealed(s) => seals.push(s),
                SyncJob::DropRows(drop) => {
                    sync_seals(shared, std::mem::take(&mut seals));
                    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        drop_rows(shared, &drop.table, &drop.ranges)
                    }))
                    .unwrap_or_else(|_| {
                        let e = StorageError::Poisoned(
                            "dropping rows failed unexpectedly (a bug)".into(),
                        );
                        shared.poison(&e);
                        Err(e)
                    });
                    let _ = drop.reply.send(outcome);
                }
            }
        }
        sync_seals(shared, seals);
        remove_retired_segments(shared);
    }
}

/// Makes `jobs` durable (see [`make_durable`]) and removes the WAL files
/// they free; a failure poisons the database.
fn sync_seals(shared: &Shared, jobs: Vec<SealedRows>) {
    if jobs.is_empty() {
        return;
    }
    let durable =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| make_durable(shared, &jobs)))
            .unwrap_or_else(|_| {
                Err(StorageError::Poisoned(
                    "making a seal durable failed unexpectedly (a bug)".into(),
                ))
            });
    match durable {
        Ok(()) => {
            for job in &jobs {
                tracing::info!(
                    table = %job.table.schema().name,
                    rows = job.input_rows,
                    first_row_id = job.first_row_id,
                    written_ms = job.written_ms,
                    elapsed_ms = job.started.elapsed().as_millis() as u64,
                    "sealed a segment"
                );
            }
            if let Err(e) = remove_sealed_wal_files(shared) {
                // The checkpoint or a deletion failed: the files stay
                // (they are retried after the next seal), nothing is
                // lost.
                tracing::warn!(error = %e, "could not remove sealed WAL files; retried after the next seal");
            }
        }
        Err(StorageError::Closed) => {
            tracing::info!("seal interrupted by shutdown; the WAL keeps its rows");
        }
        // The rows are only in the segment files and the WAL now: no
        // later manifest may list a segment that is not durable (the
        // WAL keeps the rows for the restart).
        Err(e) => shared.poison(&e),
    }
}

/// Fsyncs the segments of `jobs`, then the WAL through their rows' records
/// (their records must be durable before a manifest makes the rows durable:
/// otherwise a power loss could keep them while losing the records they
/// were committed with, and half of a transaction that spans tables), then
/// stores each table's newest manifest among them.
pub(super) fn make_durable(shared: &Shared, jobs: &[SealedRows]) -> Result<()> {
    shared.check_healthy()?;
    for segment in jobs.iter().flat_map(|j| &j.new_segments) {
        segment.sync(&*shared.fs)?;
    }
    let through = jobs.iter().map(|j| j.max_lsn).max().unwrap_or(0);
    shared.durability.wait_blocking(through)?;
    for (i, job) in jobs.iter().enumerate() {
        if jobs[i + 1..]
            .iter()
            .any(|later| Arc::ptr_eq(&later.table, &job.table))
        {
            continue;
        }
        let segments = job.table.state().segments().to_vec();
        store_manifest(shared, &job.table, job.sealed_row_end, &segments)?;
    }
    Ok(())
}

/// Stores `table`'s manifest listing `segments` below `sealed_row_end`
/// (all durable) with the table's symbol dictionaries now (they only grow,
/// so they cover every listed segment), and records it durable. Only the
/// seal syncer thread stores manifests, in order.
fn store_manifest(
    shared: &Shared,
    table: &Table,
    sealed_row_end: u64,
    segments: &[Arc<Segment>],
) -> Result<()> {
    let manifest = Manifest {
        table_id: table.id,
        sealed_row_end,
        segments: segments
            .iter()
            .take_while(|s| s.first_row_id < sealed_row_end)
            .map(|s| Segment::clone(s))
            .collect(),
        symbols: table
            .all_symbols()
            .into_iter()
            .map(|(c, s)| (c, s.strings().iter().map(|x| x.to_string()).collect()))
            .collect(),
    };
    shared.check_healthy()?;
    let bytes = manifest.encode(&table.dir)?;
    write_durably(&*shared.fs, &table.dir, MANIFEST_FILE, &bytes)?;
    table.state_mut().mark_durable(sealed_row_end);
    Ok(())
}

/// Removes `table`'s rows whose designated timestamp lies in `ranges`
/// from its durable segments (the sealer sealed every row committed
/// before the request just ahead of it): segments wholly inside go (their
/// row-id span stays, without a file), segments partly inside are
/// rewritten without those rows. New files are made durable, then one
/// manifest lists the result, then the old files go (once no snapshot
/// reads them). A failure before the manifest changes nothing; a failed
/// manifest write poisons the database (its state on disk is unknown).
pub(super) fn drop_rows(
    shared: &Shared,
    table: &Arc<Table>,
    ranges: &[(i64, i64)],
) -> Result<super::DroppedRows> {
    shared.check_healthy()?;
    let schema = table.schema();
    let mut outcome = super::DroppedRows::default();
    if table.is_dropped() {
        return Err(StorageError::TableNotFound {
            table: schema.name.clone(),
        });
    }
    let Some(ts) = schema
        .designated_timestamp
        .and_then(|i| schema.columns.get(i))
        .map(|c| c.stored_name.clone())
    else {
        return Err(StorageError::InvalidRequest {
            table: schema.name.clone(),
            reason: "the table has no designated timestamp".into(),
        });
    };
    let (end, segments) = {
        let state = table.state();
        (state.durable_sealed_row_end(), state.segments().to_vec())
    };
    // The ranges are sorted and apart: the last one starting at or before
    // a segment's newest time is the only one that can reach into it.
    let overlaps = |s: &Segment| {
        let i = ranges.partition_point(|&(lo, _)| lo <= s.max_ts);
        i > 0 && ranges[i - 1].1 > s.min_ts
    };
    let mut replacements = Vec::new();
    let mut written: Vec<Arc<Segment>> = Vec::new();
    let cut = (|| -> Result<()> {
        for s in segments
            .iter()
            .take_while(|s| s.first_row_id < end)
            .filter(|s| s.has_rows() && overlaps(s))
        {
            shared.check_healthy()?;
            let (rows, cut) = s.without_rows_in(&*shared.fs, &schema.name, &ts, ranges)?;
            let replacement = match cut {
                SegmentCut::Untouched => continue,
                SegmentCut::Emptied => {
                    outcome.segments_removed += 1;
                    Segment {
                        live_rows: 0,
                        min_ts: i64::MAX,
                        max_ts: i64::MIN,
                        cache: crate::segment::SegmentCache::with_order(true),
                        ..Segment::clone(s)
                    }
                }
                SegmentCut::Rewritten(new) => {
                    outcome.segments_rewritten += 1;
                    let new = Arc::new(*new);
                    written.push(new.clone());
                    new.sync(&*shared.fs)?;
                    Segment::clone(&new)
                }
            };
            outcome.rows += rows;
            replacements.push(Arc::new(replacement));
        }
        Ok(())
    })();
    if let Err(e) = cut {
        // Nothing lists the new files: they go now (or at the next open).
        for s in written {
            let _ = shared.fs.remove_file(&s.path);
        }
        return Err(e);
    }
    if replacements.is_empty() {
        return Ok(outcome);
    }
    let by_id: std::collections::HashMap<u64, Arc<Segment>> = replacements
        .into_iter()
        .map(|r| (r.first_row_id, r))
        .collect();
    // The durable segments as they will be; neighbouring spans without
    // rows become one, so the list does not grow with every drop.
    let mut listed: Vec<Arc<Segment>> = Vec::new();
    for s in segments.iter().take_while(|s| s.first_row_id < end) {
        let s = by_id.get(&s.first_row_id).unwrap_or(s);
        match listed.last_mut() {
            Some(last) if !last.has_rows() && !s.has_rows() => {
                *last = Arc::new(Segment {
                    row_count: last.row_count + s.row_count,
                    ..Segment::clone(last)
                });
            }
            _ => listed.push(s.clone()),
        }
    }
    if let Err(e) = store_manifest(shared, table, end, &listed) {
        shared.poison(&e);
        return Err(e);
    }
    // The segments replaced: their files go once no snapshot reads them.
    let replaced: Vec<Arc<Segment>> = segments
        .into_iter()
        .filter(|s| by_id.contains_key(&s.first_row_id))
        .collect();
    drop(by_id);
    table.state_mut().replace_sealed_prefix(end, listed);
    tracing::info!(
        table = %schema.name,
        rows = outcome.rows,
        segments_removed = outcome.segments_removed,
        segments_rewritten = outcome.segments_rewritten,
        "dropped rows by time"
    );
    lock(&shared.retired_segments).extend(replaced);
    remove_retired_segments(shared);
    Ok(outcome)
}

/// Deletes the files of segments a drop replaced once no snapshot holds
/// them (a query reading one finishes first), and their day directories
/// once empty. A file that cannot go now is left to the next open's
/// orphan removal.
pub(super) fn remove_retired_segments(shared: &Shared) {
    let ready: Vec<Arc<Segment>> = {
        let mut retired = lock(&shared.retired_segments);
        let (ready, held) = retired.drain(..).partition(|s| Arc::strong_count(s) == 1);
        *retired = held;
        ready
    };
    for s in ready {
        match shared.fs.remove_file(&s.path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %s.path.display(), error = %e, "could not remove a dropped segment's file; the next open removes it");
                continue;
            }
        }
        if let Some(dir) = s.path.parent() {
            remove_dir_if_empty(&*shared.fs, dir);
        }
    }
}

/// Removes `dir` if it is an empty day partition directory (best effort).
pub(super) fn remove_dir_if_empty(fs: &dyn crate::io::FileSystem, dir: &std::path::Path) {
    let is_day = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.len() >= 10 && n.contains('-'));
    if is_day
        && fs.read_dir(dir).is_ok_and(|e| e.is_empty())
        && fs.remove_dir(dir).is_ok()
        && let Some(parent) = dir.parent()
    {
        let _ = fs.sync_dir(parent);
    }
}

/// At most this many day partitions get their own segment in one seal; the
/// rest of the sealed rows (out-of-order data crossing days back and forth)
/// go into the last one, whose min/max timestamps then span those days.
pub(super) const MAX_DAYS_PER_SEAL: usize = 32;

/// Splits sealed rows (in row-id order) into runs of one UTC day of the
/// designated timestamp `ts_col`, cutting where the day changes, at most
/// `max` runs. Each run keeps row-id order, so each becomes a segment of
/// consecutive row ids in its day's directory.
pub(super) fn split_by_day(
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
pub(super) fn units_per_day(column: &ArrayRef) -> Option<i64> {
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
pub(super) fn day_range(column: &ArrayRef) -> Option<(i64, i64)> {
    let per_day = units_per_day(column)?;
    let (min, max) = crate::table::timestamp_range(column)?;
    Some((min.div_euclid(per_day), max.div_euclid(per_day)))
}

/// The UTC day (days since 1970-01-01) of each value of a timestamp column.
pub(super) fn day_numbers(column: &ArrayRef) -> Option<Vec<Option<i64>>> {
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
    let (y, m, d) = crate::calendar::civil_from_days(day);
    format!("{y:04}-{m:02}-{d:02}")
}

/// Deletes WAL files (never the newest) whose rows are all in durable
/// segments and which hold no open staged part, oldest first, after
/// storing the catalog checkpoint (their DDL records go with them).
pub(super) fn remove_sealed_wal_files(shared: &Shared) -> Result<()> {
    let (n, floor) = {
        let catalog = shared.tables.read().unwrap_or_else(|p| p.into_inner());
        lock(&shared.wal_files).removable(|table, end| {
            catalog
                .by_id
                .get(&table)
                .is_none_or(|t| t.state().durable_sealed_row_end() >= end)
        })
    };
    if n == 0 {
        return Ok(());
    }
    // The checkpoint holds only DDL the WAL holds durably.
    store_durable_catalog(shared, floor.unwrap_or(0))?;
    let paths = lock(&shared.wal_files).oldest_paths(n);
    let wal_dir = shared.dir.join("wal");
    for path in &paths {
        match shared.fs.remove_file(path) {
            Ok(()) => {
                tracing::info!(path = %path.display(), "removed a WAL file whose rows are all sealed")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("remove", path)(e)),
        }
        // Each removal is made durable before the next: a power cut can
        // bring back only the file removed last, which the log still
        // continues from (an older file coming back without the ones after
        // it would leave a gap recovery cannot tell from lost records).
        crate::wal::sync_dir(&*shared.fs, &wal_dir)?;
        lock(&shared.wal_files).remove_oldest(1);
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
