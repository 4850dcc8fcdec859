//! A table: its schema, symbol dictionaries, committed rows in memory
//! (the memtable) and sealed segments; and snapshots for readers.
//!
//! Invariants (checked with `debug_assert!` at each transition of
//! [`TableState`]):
//! 1. Row ids are dense and increasing: the memtable holds rows
//!    `sealed_row_end .. next_row_id` in order, segments hold `0 .. sealed_row_end`.
//! 2. `durable_sealed_row_end <= sealed_row_end`: a seal releases its rows
//!    from memory before its segments are durable; WAL files are deleted by
//!    the durable end only.
//! 3. At most one seal of a table runs at a time, and it takes the oldest
//!    memtable rows.
//! 4. A stored batch (and a segment file) names columns by their stored
//!    names ([`crate::ColumnSchema::stored_name`]), which never change and
//!    are never reused: a column renamed keeps its data, one dropped
//!    leaves data no column reads. A committed batch holds a subset of the
//!    table's columns at its commit, in their stored types.
//! 5. Every SYMBOL key in a visible batch is below its dictionary's length.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use arrow::array::{
    Array, ArrayRef, BooleanArray, DictionaryArray, RecordBatch, UInt32Array, UInt64Array,
    new_null_array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt32Type};

use crate::error::{Result, StorageError};
use crate::io::FileSystem;
use crate::schema::{ColumnSchema, ColumnType, TableSchema};
use crate::segment::{ROW_ID_COLUMN, Segment};
use crate::symbols::SymbolTable;

/// Committed rows of one transaction part, as stored.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    /// Log sequence number of the transaction that committed them.
    pub lsn: u64,
    /// Row id of the first row.
    pub first_row_id: u64,
    /// The rows (a subset of the table's columns, stored types).
    pub batch: RecordBatch,
    /// Whether its designated timestamps are in order, and their first and
    /// last: worked out once, the first time a scan asks (shared by the
    /// snapshots holding the batch).
    pub ts_order: Arc<std::sync::OnceLock<BatchOrder>>,
}

/// The designated timestamps of a memtable batch: in order from `first` to
/// `last`, in order but none (empty), or out of order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOrder {
    /// Non-decreasing, without NULLs.
    Sorted {
        /// First value.
        first: i64,
        /// Last value.
        last: i64,
    },
    /// No rows.
    Empty,
    /// Out of order, NULLs, or no timestamp column.
    Unsorted,
}

/// A table.
#[derive(Debug)]
pub struct Table {
    pub(crate) id: u32,
    pub(crate) dir: PathBuf,
    fs: Arc<dyn FileSystem>,
    schema: RwLock<Arc<TableSchema>>,
    /// SYMBOL dictionaries by lower-cased stored column name.
    symbols: RwLock<HashMap<String, Arc<SymbolTable>>>,
    state: RwLock<TableState>,
    /// Set when a DROP TABLE is applied: nothing more is committed to or
    /// sealed from it, and its files go at the next open.
    dropped: std::sync::atomic::AtomicBool,
}

/// A table's committed data. The methods are its legal transitions; each
/// checks the invariants in the module docs.
#[derive(Debug, Default)]
pub(crate) struct TableState {
    /// Dropped: nothing more is sealed and the memtable is let go.
    dropped: bool,
    next_row_id: u64,
    sealed_row_end: u64,
    /// Rows below this are in segments a durable manifest lists.
    durable_sealed_row_end: u64,
    memtable: VecDeque<StoredBatch>,
    memtable_bytes: usize,
    segments: Vec<Arc<Segment>>,
    /// A seal of the oldest memtable rows is in progress.
    sealing: bool,
}

/// The oldest visible memtable rows, taken by a seal.
#[derive(Debug)]
pub(crate) struct SealInput {
    /// The rows, in row-id order.
    pub(crate) batches: Vec<StoredBatch>,
    /// Row id of the first.
    pub(crate) first_row_id: u64,
    /// How many rows.
    pub(crate) rows: u64,
    /// The highest lsn among them (the WAL must be durable through it
    /// before a manifest lists their segments).
    pub(crate) max_lsn: u64,
}

impl TableState {
    /// The state a manifest describes: rows below `sealed_row_end` in
    /// `segments`, all of it durable, nothing in memory.
    pub(crate) fn restore(&mut self, sealed_row_end: u64, segments: Vec<Arc<Segment>>) {
        debug_assert!(self.memtable.is_empty() && !self.sealing);
        self.next_row_id = sealed_row_end;
        self.sealed_row_end = sealed_row_end;
        self.durable_sealed_row_end = sealed_row_end;
        self.segments = segments;
    }

    /// The next row id a commit gets.
    pub(crate) fn next_row_id(&self) -> u64 {
        self.next_row_id
    }

    /// Rows below this are sealed (possibly not yet durably).
    pub(crate) fn sealed_row_end(&self) -> u64 {
        self.sealed_row_end
    }

    /// Rows below this are in segments a durable manifest lists.
    pub(crate) fn durable_sealed_row_end(&self) -> u64 {
        self.durable_sealed_row_end
    }

    /// Bytes of memtable rows.
    pub(crate) fn memtable_bytes(&self) -> usize {
        self.memtable_bytes
    }

    /// Rows committed but not sealed.
    pub(crate) fn unsealed_rows(&self) -> u64 {
        self.next_row_id - self.sealed_row_end
    }

    /// Whether a seal is in progress.
    pub(crate) fn is_sealing(&self) -> bool {
        self.sealing
    }

    /// Whether the memtable holds no rows.
    pub(crate) fn memtable_is_empty(&self) -> bool {
        self.memtable.is_empty()
    }

    /// Appends committed rows (invariant 1: they continue the row ids).
    /// Returns the bytes they hold in memory.
    pub(crate) fn append(&mut self, stored: StoredBatch) -> usize {
        debug_assert_eq!(
            stored.first_row_id, self.next_row_id,
            "invariant 1: dense row ids"
        );
        self.next_row_id += stored.batch.num_rows() as u64;
        let bytes = stored.batch.get_array_memory_size();
        self.memtable_bytes += bytes;
        self.memtable.push_back(stored);
        bytes
    }

    /// Starts a seal of the memtable rows visible at `visible_lsn`
    /// (invariant 3); `None` if one is running or there is nothing to seal.
    pub(crate) fn begin_seal(&mut self, visible_lsn: u64) -> Option<SealInput> {
        if self.sealing || self.dropped {
            return None;
        }
        let batches: Vec<StoredBatch> = self
            .memtable
            .iter()
            .take_while(|b| b.lsn <= visible_lsn)
            .cloned()
            .collect();
        if batches.is_empty() {
            return None;
        }
        self.sealing = true;
        Some(SealInput {
            rows: batches.iter().map(|b| b.batch.num_rows() as u64).sum(),
            max_lsn: batches.iter().map(|b| b.lsn).max().unwrap_or(0),
            first_row_id: self.sealed_row_end,
            batches,
        })
    }

    /// Ends a seal whose segments are written: its rows leave memory and
    /// readers see `segments` instead. Returns the bytes freed.
    pub(crate) fn finish_seal(&mut self, input: &SealInput, segments: &[Arc<Segment>]) -> usize {
        debug_assert!(
            self.sealing,
            "invariant 3: finishing a seal that was not begun"
        );
        debug_assert_eq!(input.first_row_id, self.sealed_row_end, "invariant 3");
        let mut freed = 0;
        for _ in 0..input.batches.len() {
            if let Some(b) = self.memtable.pop_front() {
                freed += b.batch.get_array_memory_size();
            }
        }
        self.memtable_bytes = self.memtable_bytes.saturating_sub(freed);
        self.sealed_row_end += input.rows;
        debug_assert!(self.sealed_row_end <= self.next_row_id, "invariant 1");
        self.segments.extend(segments.iter().cloned());
        self.sealing = false;
        if self.dropped {
            // Dropped while this seal ran: the rest leaves memory too.
            freed += self.drop_rows();
        }
        freed
    }

    /// The table was dropped: its memtable rows leave memory now (or when
    /// a running seal ends) and no seal begins. Returns the bytes freed.
    pub(crate) fn drop_rows(&mut self) -> usize {
        self.dropped = true;
        if self.sealing {
            return 0;
        }
        let freed = self.memtable_bytes;
        self.memtable.clear();
        self.memtable_bytes = 0;
        freed
    }

    /// Ends a seal that failed: the rows stay in memory, unless the table
    /// was dropped meanwhile. Returns the bytes freed.
    pub(crate) fn abort_seal(&mut self) -> usize {
        self.sealing = false;
        match self.dropped {
            true => self.drop_rows(),
            false => 0,
        }
    }

    /// Records that a manifest listing the segments below `sealed_row_end`
    /// is durable (invariant 2).
    pub(crate) fn mark_durable(&mut self, sealed_row_end: u64) {
        debug_assert!(sealed_row_end <= self.sealed_row_end, "invariant 2");
        self.durable_sealed_row_end = self.durable_sealed_row_end.max(sealed_row_end);
    }

    /// The segments (for a manifest).
    pub(crate) fn segments(&self) -> &[Arc<Segment>] {
        &self.segments
    }

    /// Puts `prefix` in place of the segments below row id `end` (DROP
    /// PARTITION: the same row ids, fewer rows; invariant 1 holds). Seals
    /// finished meanwhile stay after it.
    pub(crate) fn replace_sealed_prefix(&mut self, end: u64, prefix: Vec<Arc<Segment>>) {
        debug_assert!(
            prefix.iter().try_fold(0, |next, s| (s.first_row_id == next)
                .then(|| next + s.row_count))
                == Some(end),
            "invariant 1"
        );
        let keep = self.segments.partition_point(|s| s.first_row_id < end);
        self.segments.splice(..keep, prefix);
    }
}

fn read_lock<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}

fn write_lock<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Table {
    pub(crate) fn new(
        id: u32,
        dir: PathBuf,
        schema: TableSchema,
        fs: Arc<dyn FileSystem>,
    ) -> Table {
        let t = Table {
            id,
            dir,
            fs,
            schema: RwLock::new(Arc::new(schema)),
            symbols: RwLock::new(HashMap::new()),
            state: RwLock::new(TableState::default()),
            dropped: std::sync::atomic::AtomicBool::new(false),
        };
        t.ensure_symbol_tables();
        t
    }

    /// The table's id (its directory name under `tables/`).
    pub fn id(&self) -> u32 {
        self.id
    }

    /// The current schema.
    pub fn schema(&self) -> Arc<TableSchema> {
        read_lock(&self.schema).clone()
    }

    /// Whether the table was dropped.
    pub fn is_dropped(&self) -> bool {
        self.dropped.load(std::sync::atomic::Ordering::Acquire)
    }

    pub(crate) fn mark_dropped(&self) {
        self.dropped
            .store(true, std::sync::atomic::Ordering::Release);
    }

    pub(crate) fn set_schema(&self, schema: TableSchema) {
        *write_lock(&self.schema) = Arc::new(schema);
        self.ensure_symbol_tables();
    }

    fn ensure_symbol_tables(&self) {
        let schema = self.schema();
        let mut symbols = write_lock(&self.symbols);
        for c in &schema.columns {
            if c.column_type == ColumnType::Symbol {
                symbols
                    .entry(c.stored_name.to_ascii_lowercase())
                    .or_insert_with(|| Arc::new(SymbolTable::new()));
            }
        }
    }

    /// The dictionary of the SYMBOL column called `column` now.
    pub fn symbols(&self, column: &str) -> Option<Arc<SymbolTable>> {
        let schema = self.schema();
        let c = &schema.columns[schema.column_index(column)?];
        self.stored_symbols(&c.stored_name)
    }

    /// The dictionary of SYMBOL column `column` (of any version of the
    /// schema: a rename does not change it).
    pub fn column_symbols(&self, column: &ColumnSchema) -> Option<Arc<SymbolTable>> {
        self.stored_symbols(&column.stored_name)
    }

    /// The dictionary of the SYMBOL column stored under `stored_name`.
    pub(crate) fn stored_symbols(&self, stored_name: &str) -> Option<Arc<SymbolTable>> {
        read_lock(&self.symbols)
            .get(&stored_name.to_ascii_lowercase())
            .cloned()
    }

    pub(crate) fn replace_symbols(&self, stored_name: &str, table: SymbolTable) {
        write_lock(&self.symbols).insert(stored_name.to_ascii_lowercase(), Arc::new(table));
    }

    /// The dictionaries of the table's SYMBOL columns by stored name.
    pub(crate) fn all_symbols(&self) -> Vec<(String, Arc<SymbolTable>)> {
        let schema = self.schema();
        let symbols = read_lock(&self.symbols);
        schema
            .columns
            .iter()
            .filter_map(|c| {
                symbols
                    .get(&c.stored_name.to_ascii_lowercase())
                    .map(|s| (c.stored_name.clone(), s.clone()))
            })
            .collect()
    }

    /// Rows committed (visible or not yet sealed), i.e. the next row id.
    pub fn row_count(&self) -> u64 {
        read_lock(&self.state).next_row_id
    }

    /// The committed data, for reading.
    pub(crate) fn state(&self) -> std::sync::RwLockReadGuard<'_, TableState> {
        read_lock(&self.state)
    }

    /// The committed data, for a transition.
    pub(crate) fn state_mut(&self) -> std::sync::RwLockWriteGuard<'_, TableState> {
        write_lock(&self.state)
    }

    /// Checks a batch against the schema: every column exists under its
    /// stored name with its stored type.
    pub(crate) fn check_batch(&self, batch: &RecordBatch) -> Result<()> {
        let schema = self.schema();
        for f in batch.schema().fields() {
            let Some(i) = schema.stored_column_index(f.name()) else {
                return Err(StorageError::InvalidBatch {
                    table: schema.name.clone(),
                    reason: format!("column {} is not in the table", f.name()),
                });
            };
            let c = &schema.columns[i];
            if f.data_type() != &c.column_type.stored_type() {
                return Err(StorageError::SchemaMismatch {
                    table: schema.name.clone(),
                    column: c.name.clone(),
                    stored: c.column_type.name(),
                    sent: f.data_type().to_string(),
                });
            }
        }
        Ok(())
    }

    /// `batch` without the columns the schema does not store, when the
    /// table ever dropped one (replay under a schema newer than the rows:
    /// those are dropped columns); `batch` as it is otherwise.
    pub(crate) fn without_dropped_columns(&self, batch: RecordBatch) -> Result<RecordBatch> {
        let schema = self.schema();
        if !schema.has_dropped_columns {
            return Ok(batch);
        }
        let keep: Vec<usize> = batch
            .schema()
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| schema.stored_column_index(f.name()).is_some())
            .map(|(i, _)| i)
            .collect();
        match keep.len() == batch.num_columns() {
            true => Ok(batch),
            false => Ok(batch.project(&keep)?),
        }
    }

    /// A consistent view of the rows committed at or before `visible_lsn`.
    pub fn snapshot(&self, visible_lsn: u64) -> TableSnapshot {
        let state = read_lock(&self.state);
        self.snapshot_of(&state, visible_lsn)
    }

    /// [`Table::snapshot`] with the state already read-locked (several
    /// tables are locked at once for one snapshot across them).
    pub(crate) fn snapshot_of(&self, state: &TableState, visible_lsn: u64) -> TableSnapshot {
        let schema = self.schema();
        let batches: Vec<StoredBatch> = state
            .memtable
            .iter()
            .take_while(|b| b.lsn <= visible_lsn)
            .cloned()
            .collect();
        let segments = state.segments.clone();
        let row_count = segments.iter().map(|s| s.live_rows).sum::<u64>()
            + batches
                .iter()
                .map(|b| b.batch.num_rows() as u64)
                .sum::<u64>();
        // The dictionaries of this schema's columns (not of a schema a
        // concurrent column change made since).
        let symbols = schema
            .columns
            .iter()
            .filter_map(|c| {
                let s = self.stored_symbols(&c.stored_name)?;
                Some((c.stored_name.to_ascii_lowercase(), s.values(usize::MAX)))
            })
            .collect();
        TableSnapshot {
            fs: self.fs.clone(),
            schema,
            segments,
            batches,
            symbols,
            row_count,
        }
    }
}

/// A read-only view of a table at one point in the commit order.
#[derive(Debug, Clone)]
pub struct TableSnapshot {
    fs: Arc<dyn FileSystem>,
    schema: Arc<TableSchema>,
    segments: Vec<Arc<Segment>>,
    batches: Vec<StoredBatch>,
    /// Dictionary values by lower-cased SYMBOL column name.
    symbols: HashMap<String, ArrayRef>,
    row_count: u64,
}

impl TableSnapshot {
    /// The schema at the snapshot.
    pub fn schema(&self) -> &Arc<TableSchema> {
        &self.schema
    }

    /// Rows visible in the snapshot.
    pub fn row_count(&self) -> u64 {
        self.row_count
    }

    /// The smallest and largest designated timestamp (raw values) of the
    /// visible rows, from segment metadata and the memtable batches (whose
    /// timestamps are read); `None` without a designated timestamp or rows.
    pub fn timestamp_range(&self) -> Option<(i64, i64)> {
        let name = self
            .schema
            .designated_timestamp
            .and_then(|i| self.schema.columns.get(i))
            .map(|c| c.stored_name.as_str())?;
        let segments = self
            .segments
            .iter()
            .filter(|s| s.has_rows() && s.min_ts <= s.max_ts)
            .map(|s| (s.min_ts, s.max_ts));
        let batches = self
            .batches
            .iter()
            .filter_map(|b| timestamp_range(b.batch.column_by_name(name)?));
        segments
            .chain(batches)
            .reduce(|a, b| (a.0.min(b.0), a.1.max(b.1)))
    }

    /// Segments in the snapshot.
    pub fn segments(&self) -> &[Arc<Segment>] {
        &self.segments
    }

    /// The Arrow schema of [`TableSnapshot::scan`] batches, with the row id
    /// column first when `with_row_id`.
    pub fn read_schema(&self, with_row_id: bool) -> SchemaRef {
        let mut fields: Vec<Arc<Field>> = Vec::new();
        if with_row_id {
            fields.push(Arc::new(Field::new(ROW_ID_COLUMN, DataType::UInt64, false)));
        }
        fields.extend(self.schema.read_schema().fields().iter().cloned());
        Arc::new(Schema::new(fields))
    }

    /// Every visible row in row-id order, in batches of the read schema
    /// (segments are read from disk one batch at a time; memory stays
    /// bounded by batch size).
    pub fn scan(&self, with_row_id: bool) -> impl Iterator<Item = Result<RecordBatch>> + '_ {
        let schema = self.read_schema(with_row_id);
        let from_segments = self
            .segments
            .iter()
            .filter(|s| s.has_rows())
            .flat_map(move |seg| match seg.read(&*self.fs) {
                Ok(batches) => Box::new(batches) as Box<dyn Iterator<Item = Result<RecordBatch>>>,
                Err(e) => Box::new(std::iter::once(Err(e))),
            });
        let schema2 = schema.clone();
        let segment_batches = from_segments.map(move |b| {
            let b = b?;
            let ids = b.column(0).clone();
            let rest = RecordBatch::try_new(
                Arc::new(Schema::new(b.schema().fields()[1..].to_vec())),
                b.columns()[1..].to_vec(),
            )?;
            self.project(&rest, Some(ids), &schema2, with_row_id)
        });
        let memtable_batches = self.batches.iter().map(move |s| {
            let ids: ArrayRef = Arc::new(UInt64Array::from_iter_values(
                s.first_row_id..s.first_row_id + s.batch.num_rows() as u64,
            ));
            self.project(&s.batch, Some(ids), &schema, with_row_id)
        });
        segment_batches.chain(memtable_batches)
    }

    /// The schema of [`TableSnapshot::scan_request`] batches: the requested
    /// columns in the read form, in the order asked.
    pub fn request_schema(&self, request: &ScanRequest) -> SchemaRef {
        let full = self.schema.read_schema();
        match &request.columns {
            None => full,
            Some(columns) => Arc::new(Schema::new(
                columns
                    .iter()
                    .filter_map(|&i| full.fields().get(i).cloned())
                    .collect::<Vec<_>>(),
            )),
        }
    }

    /// Segments [`TableSnapshot::scan_request`] reads for `request`.
    pub fn segments_for(&self, request: &ScanRequest) -> usize {
        self.segments
            .iter()
            .filter(|s| s.has_rows() && request.may_hold(s.min_ts, s.max_ts))
            .count()
    }

    /// Whether every row of the snapshot, read in row-id order, comes in
    /// designated-timestamp order: each segment's rows are sorted and
    /// begin at or after the previous one's end, and so are the memtable
    /// batches after them. A scan may then promise that order (and a merge
    /// over it need not sort). Reads each segment file's metadata once.
    pub fn is_ts_ordered(&self) -> bool {
        let Some(name) = self
            .schema
            .designated_timestamp
            .and_then(|i| self.schema.columns.get(i))
            .map(|c| c.stored_name.clone())
        else {
            return false;
        };
        let mut last: Option<i64> = None;
        for s in &self.segments {
            if !s.has_rows() {
                continue;
            }
            // Rows without a timestamp (no range) are not in its order.
            if s.min_ts > s.max_ts
                || last.is_some_and(|l| s.min_ts < l)
                || !s.is_ts_sorted(&*self.fs)
            {
                return false;
            }
            last = Some(s.max_ts);
        }
        for b in &self.batches {
            let order = *b.ts_order.get_or_init(|| {
                match in_timestamp_order(std::slice::from_ref(&b.batch), &name, None) {
                    None => BatchOrder::Unsorted,
                    Some(None) => BatchOrder::Empty,
                    Some(Some(last)) => {
                        let first = b
                            .batch
                            .column_by_name(&name)
                            .and_then(timestamp_range)
                            .map_or(last, |r| r.0);
                        BatchOrder::Sorted { first, last }
                    }
                }
            });
            match order {
                BatchOrder::Unsorted => return false,
                BatchOrder::Empty => {}
                BatchOrder::Sorted { first, last: l } => {
                    if last.is_some_and(|prev| first < prev) {
                        return false;
                    }
                    last = Some(l);
                }
            }
        }
        true
    }

    /// The visible rows `request` asks for, in row-id order, as batches of
    /// [`TableSnapshot::request_schema`]: [`TableSnapshot::scan_stored`]'s
    /// blocks through [`TableSnapshot::read_stored`].
    pub fn scan_request<'a>(
        &'a self,
        request: &'a ScanRequest,
    ) -> impl Iterator<Item = Result<RecordBatch>> + 'a {
        let reader = self.stored_reader(request);
        self.scan_stored(request)
            .map(move |b| reader.read(&b?.batch))
    }

    /// The blocks holding the rows `request` asks for, in row-id order, in
    /// their stored form (stored column names, SYMBOL as keys): only the
    /// requested columns are read from segment files, and segments, their
    /// blocks and memtable batches whose designated timestamps all lie
    /// outside the requested range are skipped. Rows in a block are not
    /// filtered: the range prunes, the caller filters. A
    /// [`StoredReader`] turns each into the read form; the two steps are
    /// apart so that callers may spread the second over threads.
    pub fn scan_stored<'a>(
        &'a self,
        request: &'a ScanRequest,
    ) -> impl Iterator<Item = Result<StoredBlock>> + Send + 'a {
        let names: Vec<String> = match &request.columns {
            Some(c) => c
                .iter()
                .filter_map(|&i| self.schema.columns.get(i).map(|c| c.stored_name.clone()))
                .collect(),
            None => self
                .schema
                .columns
                .iter()
                .map(|c| c.stored_name.clone())
                .collect(),
        };
        let ts_name = self
            .schema
            .designated_timestamp
            .and_then(|i| self.schema.columns.get(i))
            .map(|c| c.stored_name.clone());
        // A block or batch (stored columns) with what is known of its
        // designated timestamps, or `None` when it cannot hold wanted rows:
        // their range against the request's (a block without the timestamp
        // column, or without a value, is kept/skipped as below). In a
        // segment whose rows are in timestamp order (so without NULLs) a
        // block's range is its first and last value. Only looked at when
        // the request has a range.
        let look = move |batch: RecordBatch, missing: bool, sorted: bool| -> Option<StoredBlock> {
            let (Some(_), Some(name)) = (&request.ts_range, &ts_name) else {
                return Some(StoredBlock {
                    batch,
                    ts_range: None,
                });
            };
            let Some(i) = batch
                .schema()
                .fields()
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(name))
            else {
                return missing.then_some(StoredBlock {
                    batch,
                    ts_range: None,
                });
            };
            let column = batch.column(i).clone();
            let range = match sorted {
                true => sorted_timestamp_range(&column),
                false => timestamp_range(&column),
            }?;
            request.may_hold(range.0, range.1).then(|| StoredBlock {
                ts_range: (column.null_count() == 0).then_some(range),
                batch,
            })
        };
        let fs = &*self.fs;
        let look_batch = look.clone();
        let from_segments = self
            .segments
            .iter()
            .filter(move |s| s.has_rows() && request.may_hold(s.min_ts, s.max_ts))
            .flat_map(move |seg| {
                // A block of a segment outside the range is skipped too (its
                // columns are mapped, not decoded, so this costs a look at
                // its timestamps).
                let sorted = request.ts_range.is_some() && seg.is_ts_sorted(fs);
                let look = look.clone();
                match seg.read_columns(fs, &names) {
                    Ok(batches) => Box::new(batches.filter_map(move |b| match b {
                        Ok(b) => look(b, true, sorted).map(Ok),
                        Err(e) => Some(Err(e)),
                    }))
                        as Box<dyn Iterator<Item = Result<StoredBlock>> + Send>,
                    Err(e) => Box::new(std::iter::once(Err(e))),
                }
            });
        let from_memtable = self
            .batches
            .iter()
            .filter_map(move |s| look_batch(s.batch.clone(), false, false).map(Ok));
        from_segments.chain(from_memtable)
    }

    /// What turns [`TableSnapshot::scan_stored`]'s blocks into `request`'s
    /// read form ([`TableSnapshot::request_schema`]).
    pub fn stored_reader(&self, request: &ScanRequest) -> StoredReader {
        StoredReader {
            snapshot: self.clone(),
            columns: match &request.columns {
                Some(c) => c.clone(),
                None => (0..self.schema.columns.len()).collect(),
            },
            schema: self.request_schema(request),
        }
    }

    /// A stored or sealed batch as `columns` of the read schema.
    fn project_columns(
        &self,
        batch: &RecordBatch,
        columns: &[usize],
        schema: &SchemaRef,
        selection: Option<&BooleanArray>,
    ) -> Result<RecordBatch> {
        // Only the selected rows are taken (one prepared selection for
        // every column), before SYMBOL keys are checked and wrapped.
        let selection = selection.map(|s| {
            let mut builder = arrow::compute::FilterBuilder::new(s);
            if columns.len() > 1 {
                builder = builder.optimize();
            }
            builder.build()
        });
        let n = selection.as_ref().map_or(batch.num_rows(), |s| s.count());
        let source = batch.schema();
        let mut out: Vec<ArrayRef> = Vec::with_capacity(columns.len());
        for &i in columns {
            let c = &self.schema.columns[i];
            let found = source
                .fields()
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(&c.stored_name))
                .map(|i| match &selection {
                    Some(s) => s.filter(batch.column(i)),
                    None => Ok(batch.column(i).clone()),
                })
                .transpose()?;
            out.push(self.read_column(c, found, n)?);
        }
        Ok(RecordBatch::try_new_with_options(
            schema.clone(),
            out,
            &arrow::array::RecordBatchOptions::new().with_row_count(Some(n)),
        )?)
    }

    /// One column in the read form: NULL when the batch predates it,
    /// SYMBOL keys as a dictionary over the snapshot's values.
    fn read_column(
        &self,
        c: &crate::schema::ColumnSchema,
        found: Option<ArrayRef>,
        n: usize,
    ) -> Result<ArrayRef> {
        let read_type = c.column_type.read_type();
        Ok(match found {
            None => new_null_array(&read_type, n),
            Some(a) if c.column_type == ColumnType::Symbol => {
                let values = self
                    .symbols
                    .get(&c.stored_name.to_ascii_lowercase())
                    .cloned()
                    .unwrap_or_else(|| new_null_array(&DataType::Utf8, 0));
                let keys = match a.data_type() {
                    DataType::UInt32 => a.as_any().downcast_ref::<UInt32Array>().cloned(),
                    DataType::Dictionary(_, _) => a
                        .as_any()
                        .downcast_ref::<DictionaryArray<UInt32Type>>()
                        .map(|d| d.keys().clone()),
                    _ => None,
                }
                .ok_or_else(|| StorageError::InvalidBatch {
                    table: self.schema.name.clone(),
                    reason: format!("SYMBOL column {} holds {}", c.name, a.data_type()),
                })?;
                Arc::new(DictionaryArray::<UInt32Type>::try_new(keys, values)?)
            }
            Some(a) => a,
        })
    }

    /// The same table view over other memtable rows and no segments (the
    /// sealer projects the rows it seals through this).
    pub(crate) fn with_batches(&self, batches: Vec<StoredBatch>) -> TableSnapshot {
        TableSnapshot {
            fs: self.fs.clone(),
            row_count: batches.iter().map(|b| b.batch.num_rows() as u64).sum(),
            schema: self.schema.clone(),
            segments: Vec::new(),
            batches,
            symbols: self.symbols.clone(),
        }
    }

    /// The memtable rows in the form segment files hold them: every
    /// column under its stored name, in its read type (the sealer writes
    /// these).
    pub(crate) fn sealed_batches(&self) -> impl Iterator<Item = Result<RecordBatch>> + '_ {
        let schema = self.schema.sealed_schema();
        self.batches
            .iter()
            .map(move |s| self.project(&s.batch, None, &schema, false))
    }

    /// Every visible row as one list of batches (tests, small tables).
    pub fn collect(&self, with_row_id: bool) -> Result<Vec<RecordBatch>> {
        self.scan(with_row_id).collect()
    }

    /// A stored or sealed batch in the snapshot's read schema: missing
    /// columns as NULL, SYMBOL keys as dictionaries over the snapshot's values.
    fn project(
        &self,
        batch: &RecordBatch,
        row_ids: Option<ArrayRef>,
        schema: &SchemaRef,
        with_row_id: bool,
    ) -> Result<RecordBatch> {
        let n = batch.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        if with_row_id {
            columns.push(row_ids.unwrap_or_else(|| new_null_array(&DataType::UInt64, n)));
        }
        let source = batch.schema();
        for c in &self.schema.columns {
            let found = source
                .fields()
                .iter()
                .position(|f| f.name().eq_ignore_ascii_case(&c.stored_name))
                .map(|i| batch.column(i).clone());
            columns.push(self.read_column(c, found, n)?);
        }
        Ok(RecordBatch::try_new(schema.clone(), columns)?)
    }
}

/// One block of a scan ([`TableSnapshot::scan_stored`]): stored columns
/// of consecutive rows.
#[derive(Debug, Clone)]
pub struct StoredBlock {
    /// The columns, in stored form.
    pub batch: RecordBatch,
    /// The smallest and largest raw value of its designated timestamps,
    /// when the request has a range and none of them is NULL.
    pub ts_range: Option<(i64, i64)>,
}

/// Turns stored blocks of one snapshot ([`TableSnapshot::scan_stored`])
/// into a request's read form: requested columns in the order asked,
/// missing ones as NULL, SYMBOL keys as dictionaries over the snapshot's
/// values. Cheap to clone and `Send`: one per thread of a scan.
#[derive(Debug, Clone)]
pub struct StoredReader {
    snapshot: TableSnapshot,
    columns: Vec<usize>,
    schema: SchemaRef,
}

impl StoredReader {
    /// `block` in the read form.
    pub fn read(&self, block: &RecordBatch) -> Result<RecordBatch> {
        self.snapshot
            .project_columns(block, &self.columns, &self.schema, None)
    }

    /// The rows of `block` that `selection` (as long as the block, no
    /// NULLs) marks, in the read form: only those rows of each column are
    /// taken from the block.
    pub fn read_selected(
        &self,
        block: &RecordBatch,
        selection: &BooleanArray,
    ) -> Result<RecordBatch> {
        if selection.len() != block.num_rows() || selection.null_count() > 0 {
            return Err(StorageError::InvalidRequest {
                table: self.snapshot.schema.name.clone(),
                reason: format!(
                    "a selection of {} rows ({} NULL) for a block of {}",
                    selection.len(),
                    selection.null_count(),
                    block.num_rows()
                ),
            });
        }
        self.snapshot
            .project_columns(block, &self.columns, &self.schema, Some(selection))
    }

    /// The schema of what [`StoredReader::read`] returns.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }
}

/// What a scan of a snapshot reads ([`TableSnapshot::scan_request`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScanRequest {
    /// Columns to read, as indices into the table's columns (`None`: all).
    pub columns: Option<Vec<usize>>,
    /// Only rows whose designated timestamp may lie in `lo..=hi` (raw
    /// values in the column's unit) are needed (`None`: every row).
    pub ts_range: Option<(i64, i64)>,
}

impl ScanRequest {
    /// Whether rows with designated timestamps in `min..=max` may be
    /// needed.
    fn may_hold(&self, min: i64, max: i64) -> bool {
        match self.ts_range {
            None => true,
            Some((lo, hi)) => min <= hi && max >= lo,
        }
    }
}

/// Whether column `name` of `batches` holds timestamps in non-decreasing
/// order (no NULLs), each batch after the last and after `after`: the last
/// value when so, `None` otherwise.
pub(crate) fn in_timestamp_order(
    batches: &[RecordBatch],
    name: &str,
    after: Option<i64>,
) -> Option<Option<i64>> {
    use arrow::array::AsArray;
    use arrow::datatypes::{
        TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    };
    let mut last = after;
    for b in batches {
        let column = b.column_by_name(name)?;
        if column.null_count() > 0 {
            return None;
        }
        let values: &[i64] = match column.data_type() {
            DataType::Timestamp(TimeUnit::Microsecond, _) => {
                column.as_primitive::<TimestampMicrosecondType>().values()
            }
            DataType::Timestamp(TimeUnit::Nanosecond, _) => {
                column.as_primitive::<TimestampNanosecondType>().values()
            }
            DataType::Timestamp(TimeUnit::Millisecond, _) => {
                column.as_primitive::<TimestampMillisecondType>().values()
            }
            _ => return None,
        };
        if let (Some(prev), Some(first)) = (last, values.first())
            && *first < prev
        {
            return None;
        }
        if values.windows(2).any(|w| w[1] < w[0]) {
            return None;
        }
        last = values.last().copied().or(last);
    }
    Some(last)
}

/// Smallest and largest non-NULL raw value of a timestamp column.
/// The raw values and validity of a timestamp column (`None` when it is
/// not one).
pub(crate) fn timestamp_values(
    column: &ArrayRef,
) -> Option<(&[i64], Option<&arrow::buffer::NullBuffer>)> {
    use arrow::array::AsArray;
    use arrow::datatypes::{
        TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType,
    };
    Some(match column.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let a = column.as_primitive::<TimestampMicrosecondType>();
            (a.values(), a.nulls())
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            let a = column.as_primitive::<TimestampNanosecondType>();
            (a.values(), a.nulls())
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            let a = column.as_primitive::<TimestampMillisecondType>();
            (a.values(), a.nulls())
        }
        _ => return None,
    })
}

/// The range of a timestamp column known to be in non-decreasing order
/// without NULLs: its first and last value.
fn sorted_timestamp_range(column: &ArrayRef) -> Option<(i64, i64)> {
    let (values, nulls) = timestamp_values(column)?;
    match nulls.is_some_and(|n| n.null_count() > 0) {
        true => timestamp_range(column),
        false => Some((*values.first()?, *values.last()?)),
    }
}

pub(crate) fn timestamp_range(column: &ArrayRef) -> Option<(i64, i64)> {
    let (values, nulls) = timestamp_values(column)?;
    let fold = |(lo, hi): (i64, i64), v: i64| (lo.min(v), hi.max(v));
    let start = (i64::MAX, i64::MIN);
    // A branch-free fold over the values (arrow's min/max kernels branch per
    // value for integers; this runs once or twice per sealed row).
    let (min, max) = match nulls.filter(|n| n.null_count() > 0) {
        None => values.iter().copied().fold(start, fold),
        Some(n) => n.valid_indices().map(|i| values[i]).fold(start, fold),
    };
    (min <= max).then_some((min, max))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, TimestampMicrosecondArray, TimestampNanosecondArray};

    #[test]
    fn timestamp_range_skips_nulls_and_needs_a_value() {
        let a: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![5, -3, 9, 0]));
        assert_eq!(timestamp_range(&a), Some((-3, 9)));
        let a: ArrayRef = Arc::new(TimestampNanosecondArray::from(vec![
            None,
            Some(i64::MAX),
            Some(i64::MIN),
        ]));
        assert_eq!(timestamp_range(&a), Some((i64::MIN, i64::MAX)));
        let a: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![None, Some(7), None]));
        assert_eq!(timestamp_range(&a.slice(1, 2)), Some((7, 7)));
        let a: ArrayRef = Arc::new(TimestampMicrosecondArray::from(vec![None::<i64>, None]));
        assert_eq!(timestamp_range(&a), None);
        assert_eq!(timestamp_range(&a.slice(0, 0)), None);
        let a: ArrayRef = Arc::new(Int64Array::from(vec![1]));
        assert_eq!(timestamp_range(&a), None);
    }
}
