//! Sealed segments.
//!
//! A segment is an Arrow IPC file holding a contiguous run of a table's rows,
//! sorted by row id, which is its first column (`_row_id`, UInt64). Its other
//! columns are the table's columns when it was sealed, in read form (SYMBOL
//! as `Dictionary(UInt32, Utf8)` carrying the dictionary as it was then, a
//! prefix of every later one). Schema metadata records the format version,
//! the table, the row-id range, the designated timestamp range and whether
//! the rows are in designated-timestamp order (`quiver.ts_sorted`, "1" or
//! "0"; files written before it count as not). A segment
//! never changes after it is renamed into place, so it is also a valid
//! point-lookup sidecar keyed by row id. The table's manifest
//! ([`crate::format::manifest`]) lists the durable ones.

use std::collections::HashMap;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, RecordBatch, UInt64Array};
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::{FileDecoder, read_footer_length};
use arrow::ipc::writer::FileWriter;

use crate::error::{Result, StorageError};
use crate::io::{self, FileSystem};
use crate::wal::{create_dir_durably, sync_dir};

/// Name of the row-id column in segments and row-id-bearing scans.
pub const ROW_ID_COLUMN: &str = "_row_id";
/// Segment format version (schema metadata `quiver.segment.version`).
pub const SEGMENT_VERSION: &str = "1";

/// A sealed segment's place in its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The file.
    pub path: PathBuf,
    /// First row id it holds.
    pub first_row_id: u64,
    /// The row ids it spans (`first_row_id .. first_row_id + row_count`).
    pub row_count: u64,
    /// Rows of that span its file still holds: `row_count` until DROP
    /// PARTITION removes some ([`Segment::without_rows_in`]), 0 when it
    /// removed all (the file is gone, the span stays so row ids stay
    /// dense).
    pub live_rows: u64,
    /// Smallest designated timestamp (raw value), or `i64::MAX` if none.
    pub min_ts: i64,
    /// Largest designated timestamp (raw value), or `i64::MIN` if none.
    pub max_ts: i64,
    /// What is learned from the file once and kept while the segment is
    /// in use: whether its rows are in designated-timestamp order and the
    /// opened file itself.
    pub cache: SegmentCache,
}

/// The designated timestamps of a segment being written: their range (raw
/// values; `(i64::MAX, i64::MIN)` when none) and whether the rows are in
/// their order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentTimes {
    /// Smallest and largest.
    pub range: (i64, i64),
    /// In non-decreasing order, without NULLs.
    pub sorted: bool,
}

/// What a segment learns from its file once (a cache, not part of the
/// segment's identity: every two compare equal; clones share it).
///
/// The opened file is kept so that every query after the first reads the
/// same mapping: mapping a file anew per query faulted in every page it
/// touched again (measured: a third of a scan's time on a 12-column
/// filter), and parsed the footer again. Each column a query reads is
/// decoded (and checked by Arrow: SYMBOL keys, text offsets and UTF-8,
/// dictionaries) the first time and kept: views of the mapping, not
/// copies. At most [`MAX_CACHED_SEGMENT_FILES`] files stay mapped in the
/// whole process (each mapping is one of the kernel's `vm.max_map_count`
/// areas); past that, a segment maps its file per read, as before. A
/// mapping lives as long as the last [`Segment`] clone holding it (the
/// table's state, a snapshot).
#[derive(Clone, Default)]
pub struct SegmentCache(Arc<CacheInner>);

#[derive(Default)]
struct CacheInner {
    /// Whether the rows are in designated-timestamp order: known when the
    /// segment is written, read from the file's metadata
    /// (`quiver.ts_sorted`) the first time it is asked otherwise
    /// ([`Segment::is_ts_sorted`]).
    ts_sorted: std::sync::OnceLock<bool>,
    /// The opened file, once opened without error within the budget.
    opened: std::sync::Mutex<Option<Arc<OpenedSegment>>>,
}

/// Most segment files kept mapped by [`SegmentCache`]s at once.
pub const MAX_CACHED_SEGMENT_FILES: usize = 8192;

/// Segment files now kept mapped.
static CACHED_SEGMENT_FILES: std::sync::atomic::AtomicUsize =
    std::sync::atomic::AtomicUsize::new(0);

/// A mapped segment file and its columns decoded so far.
struct OpenedSegment {
    file: SegmentFile,
    /// By the file's column index: that column in every block.
    columns: std::sync::Mutex<HashMap<usize, Arc<[ArrayRef]>>>,
    /// Whether it counts against [`MAX_CACHED_SEGMENT_FILES`].
    counted: bool,
}

impl Drop for OpenedSegment {
    fn drop(&mut self) {
        if self.counted {
            CACHED_SEGMENT_FILES.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
    }
}

impl OpenedSegment {
    /// Column `index` of every block: decoded the first time (when kept).
    fn column(&self, index: usize) -> Result<Arc<[ArrayRef]>> {
        let cached = |columns: &HashMap<usize, Arc<[ArrayRef]>>| columns.get(&index).cloned();
        if let Some(c) = cached(&self.columns.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(c);
        }
        let decoded: Arc<[ArrayRef]> = self
            .file
            .clone()
            .batches(Some(vec![index]))
            .map(|b| Ok(b?.column(0).clone()))
            .collect::<Result<_>>()?;
        let mut columns = self.columns.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Arc::clone(columns.entry(index).or_insert(decoded)))
    }
}

impl SegmentCache {
    /// For a segment just written, whose order is known.
    pub fn with_order(sorted: bool) -> Self {
        SegmentCache(Arc::new(CacheInner {
            ts_sorted: std::sync::OnceLock::from(sorted),
            ..Default::default()
        }))
    }
}

impl std::fmt::Debug for SegmentCache {
    // Not the file's bytes.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opened = self.0.opened.lock().map(|o| o.is_some()).unwrap_or(false);
        f.debug_struct("SegmentCache")
            .field("ts_sorted", &self.0.ts_sorted.get())
            .field("opened", &opened)
            .finish()
    }
}

impl PartialEq for SegmentCache {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl Eq for SegmentCache {}

impl Segment {
    /// Whether the segment has a file (some of its rows survive).
    pub fn has_rows(&self) -> bool {
        self.live_rows > 0
    }

    /// Whether the segment's rows are in designated-timestamp order (a file
    /// written before this was recorded, or one that cannot be read, counts
    /// as not). Asking does not keep the file mapped.
    pub fn is_ts_sorted(&self, fs: &dyn FileSystem) -> bool {
        *self.cache.0.ts_sorted.get_or_init(|| {
            SegmentFile::open(fs, &self.path).is_ok_and(|f| {
                f.schema
                    .metadata()
                    .get("quiver.ts_sorted")
                    .is_some_and(|v| v == "1")
            })
        })
    }

    /// The opened file: mapped and its footer read the first time, the
    /// same after that while the budget of kept mappings allows (an error
    /// is not kept: the next call tries again).
    fn opened(&self, fs: &dyn FileSystem) -> Result<Arc<OpenedSegment>> {
        use std::sync::atomic::Ordering;
        let mut slot = self
            .cache
            .0
            .opened
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(o) = slot.as_ref() {
            return Ok(Arc::clone(o));
        }
        let file = SegmentFile::open(fs, &self.path)?;
        let counted = CACHED_SEGMENT_FILES
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_CACHED_SEGMENT_FILES).then_some(n + 1)
            })
            .is_ok();
        let opened = Arc::new(OpenedSegment {
            file,
            columns: Default::default(),
            counted,
        });
        if counted {
            *slot = Some(Arc::clone(&opened));
        }
        Ok(opened)
    }

    /// Makes the file and its directory entry durable.
    pub fn sync(&self, fs: &dyn FileSystem) -> Result<()> {
        fs.open_append(&self.path)
            .and_then(|f| f.sync_data())
            .map_err(StorageError::io("sync", &self.path))?;
        match self.path.parent() {
            Some(dir) => sync_dir(fs, dir),
            None => Ok(()),
        }
    }

    /// Reads the segment's batches (row-id column first).
    pub fn read(&self, fs: &dyn FileSystem) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
        Ok(self.opened(fs)?.file.clone().batches(None))
    }

    /// Reads the segment's batches with only the columns named in
    /// `columns` that it holds (stored names, ASCII case ignored; no row
    /// ids): the other columns' bytes are not read. Each column is decoded
    /// once while the file stays mapped ([`SegmentCache`]).
    pub fn read_columns(
        &self,
        fs: &dyn FileSystem,
        columns: &[String],
    ) -> Result<impl Iterator<Item = Result<RecordBatch>> + Send + use<>> {
        let opened = self.opened(fs)?;
        let file = &opened.file;
        let mut indices: Vec<usize> = columns
            .iter()
            .filter_map(|name| {
                file.schema
                    .fields()
                    .iter()
                    .position(|f| f.name().eq_ignore_ascii_case(name) && f.name() != ROW_ID_COLUMN)
            })
            .collect();
        if indices.is_empty() {
            // The row ids carry the row count when no column is read.
            indices.push(0);
        }
        let schema = Arc::new(file.schema.project(&indices)?);
        let arrays = indices
            .iter()
            .map(|&i| opened.column(i))
            .collect::<Result<Vec<_>>>()?;
        let blocks = file.blocks.len();
        let path = self.path.clone();
        Ok((0..blocks).map(move |b| {
            let columns = arrays
                .iter()
                .map(|c| c.get(b).cloned())
                .collect::<Option<Vec<ArrayRef>>>()
                .ok_or_else(|| StorageError::Corrupt {
                    path: path.clone(),
                    offset: 0,
                    reason: "a column with fewer blocks than the file lists",
                })?;
            Ok(RecordBatch::try_new(Arc::clone(&schema), columns)?)
        }))
    }
}

/// What removing rows by time did to a segment ([`Segment::without_rows_in`]).
#[derive(Debug)]
pub(crate) enum SegmentCut {
    /// None of its rows were in the ranges.
    Untouched,
    /// All of its rows were: no file replaces it.
    Emptied,
    /// Some were: a new file holds the rest (not yet durable).
    Rewritten(Box<Segment>),
}

/// Whether raw timestamp `v` lies in one of `ranges` (half-open, sorted,
/// apart): only the last one starting at or before it can hold it.
fn in_ranges(ranges: &[(i64, i64)], v: i64) -> bool {
    let i = ranges.partition_point(|&(lo, _)| lo <= v);
    i > 0 && v < ranges[i - 1].1
}

/// Which rows of a segment block to keep: those whose timestamp (column
/// `ts`) is NULL or outside `ranges`. `None` when the column is not a
/// timestamp.
fn rows_outside(batch: &RecordBatch, ts: usize, ranges: &[(i64, i64)]) -> Option<BooleanArray> {
    let (values, nulls) = crate::table::timestamp_values(batch.column(ts))?;
    Some(
        values
            .iter()
            .enumerate()
            .map(|(i, &v)| nulls.is_some_and(|n| n.is_null(i)) || !in_ranges(ranges, v))
            .map(Some)
            .collect(),
    )
}

impl Segment {
    /// The segment without its rows whose designated timestamp (stored
    /// column `ts_column`) lies in one of `ranges` (half-open, raw values,
    /// sorted and apart):
    /// [`SegmentCut::Rewritten`] writes a new file
    /// (`<first row id>-<span>-<live rows>.arrow`) with the other rows,
    /// their row ids unchanged, and the same row-id span. Returns how many
    /// rows go too. The old file is left for the caller to remove once a
    /// manifest no longer lists it.
    pub(crate) fn without_rows_in(
        &self,
        fs: &dyn FileSystem,
        table: &str,
        ts_column: &str,
        ranges: &[(i64, i64)],
    ) -> Result<(u64, SegmentCut)> {
        if !self.has_rows() {
            return Ok((0, SegmentCut::Untouched));
        }
        let file = self.opened(fs)?.file.clone();
        let Some(ts) = file
            .schema
            .fields()
            .iter()
            .position(|f| f.name().eq_ignore_ascii_case(ts_column))
        else {
            return Ok((0, SegmentCut::Untouched));
        };
        // First only the timestamps: most segments go whole or stay whole.
        let mut removed = 0u64;
        let mut range = (i64::MAX, i64::MIN);
        for b in file.batches(Some(vec![ts])) {
            let b = b?;
            let keep = rows_outside(&b, 0, ranges).ok_or_else(|| StorageError::Corrupt {
                path: self.path.clone(),
                offset: 0,
                reason: "the designated timestamp column is not a timestamp",
            })?;
            removed += (keep.len() - keep.true_count()) as u64;
            let kept = arrow::compute::filter(b.column(0), &keep)?;
            if let Some((lo, hi)) = crate::table::timestamp_range(&kept) {
                range = (range.0.min(lo), range.1.max(hi));
            }
        }
        if removed == 0 {
            return Ok((0, SegmentCut::Untouched));
        }
        if removed >= self.live_rows {
            return Ok((self.live_rows, SegmentCut::Emptied));
        }
        let live_rows = self.live_rows - removed;
        let file = self.opened(fs)?.file.clone();
        let fields: Vec<Arc<Field>> = file.schema.fields().iter().skip(1).cloned().collect();
        // One block at a time: memory stays at a block, not the segment.
        let kept = file.batches(None).map(move |b| {
            let b = b?;
            let keep = rows_outside(&b, ts, ranges)
                .unwrap_or_else(|| BooleanArray::from(vec![true; b.num_rows()]));
            Ok(arrow::compute::filter_record_batch(&b, &keep)?
                .columns()
                .to_vec())
        });
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let name = format!(
            "{:020}-{}-{live_rows}.arrow",
            self.first_row_id, self.row_count
        );
        let spec = SegmentFileSpec {
            dir,
            name: &name,
            table,
            fields,
            first_row_id: self.first_row_id,
            row_count: self.row_count,
            live_rows,
            // Rows left out of sorted rows are still sorted.
            times: SegmentTimes {
                range,
                sorted: self.is_ts_sorted(fs),
            },
        };
        let segment = write_segment_file(fs, spec, kept)?;
        Ok((removed, SegmentCut::Rewritten(Box::new(segment))))
    }
}

/// A segment file's bytes ([`FileSystem::map_read`]: mapped, not copied,
/// on the operating system's file system) with its footer read and its
/// dictionaries decoded. Record batches decode from the bytes in place:
/// column data is never copied, and the pages of columns not read are
/// never touched. Every block the footer names is checked to lie inside the
/// file before it is sliced, so a damaged file is an error.
#[derive(Clone)]
struct SegmentFile {
    path: PathBuf,
    /// The whole file. Each block is handed to Arrow as its own buffer
    /// ([`SegmentFile::block`]): an array's buffer then reports the block's
    /// size, not the file's, to memory accounting (DataFusion's pools).
    data: bytes::Bytes,
    schema: SchemaRef,
    version: arrow::ipc::MetadataVersion,
    /// Record batch blocks: (start, length) of each in `data`, and its
    /// block entry.
    blocks: Vec<(usize, usize, arrow::ipc::Block)>,
    dictionaries: Vec<(usize, usize, arrow::ipc::Block)>,
}

impl SegmentFile {
    /// `ARROW1` plus padding at the start, footer length and `ARROW1` at the end.
    const HEADER: usize = 8;
    const TRAILER: usize = 10;

    fn open(fs: &dyn FileSystem, path: &Path) -> Result<SegmentFile> {
        let bytes = fs.map_read(path).map_err(StorageError::io("read", path))?;
        let corrupt = |offset: usize, reason: &'static str| StorageError::Corrupt {
            path: path.to_path_buf(),
            offset: offset as u64,
            reason,
        };
        let data = bytes;
        let len = data.len();
        if len < Self::HEADER + Self::TRAILER
            || &data[..6] != b"ARROW1"
            || &data[len - 6..] != b"ARROW1"
        {
            return Err(corrupt(
                0,
                "not an Arrow IPC file (no ARROW1 magic at both ends)",
            ));
        }
        let trailer: [u8; 10] = data[len - Self::TRAILER..]
            .try_into()
            .map_err(|_| corrupt(len, "short trailer"))?;
        let footer_end = len - Self::TRAILER;
        let footer_len = read_footer_length(trailer)?;
        let footer_start = footer_end
            .checked_sub(footer_len)
            .filter(|&s| s >= Self::HEADER)
            .ok_or_else(|| corrupt(footer_end, "footer longer than the file"))?;
        let footer = arrow::ipc::root_as_footer(&data[footer_start..footer_end])
            .map_err(|_| corrupt(footer_start, "undecodable footer"))?;
        let fb_schema = footer
            .schema()
            .ok_or_else(|| corrupt(footer_start, "footer without a schema"))?;
        let schema = guarded(|| Ok(arrow::ipc::convert::fb_to_schema(fb_schema)))
            .map_err(|_| corrupt(footer_start, "undecodable schema"))?;
        let schema = Arc::new(schema);
        let block = |b: &arrow::ipc::Block| -> Result<(usize, usize, arrow::ipc::Block)> {
            let start = usize::try_from(b.offset()).ok();
            let length = usize::try_from(b.metaDataLength())
                .ok()
                .zip(usize::try_from(b.bodyLength()).ok())
                .and_then(|(m, b)| m.checked_add(b));
            match (start, length) {
                (Some(start), Some(length))
                    if start >= Self::HEADER
                        && start
                            .checked_add(length)
                            .is_some_and(|end| end <= footer_start) =>
                {
                    Ok((start, length, *b))
                }
                _ => Err(corrupt(footer_start, "a block that lies outside the file")),
            }
        };
        let blocks = footer
            .recordBatches()
            .into_iter()
            .flatten()
            .map(&block)
            .collect::<Result<Vec<_>>>()?;
        let dictionaries = footer
            .dictionaries()
            .into_iter()
            .flatten()
            .map(block)
            .collect::<Result<Vec<_>>>()?;
        Ok(SegmentFile {
            path: path.to_path_buf(),
            version: footer.version(),
            data,
            schema,
            blocks,
            dictionaries,
        })
    }

    /// Bytes `start .. start + len` (checked at open) as a buffer of their
    /// own, sharing the file's memory.
    fn block(&self, start: usize, len: usize) -> Buffer {
        Buffer::from(self.data.slice(start..start + len))
    }

    /// The record batches, with only the fields `projection` lists (all
    /// when `None`).
    fn batches(self, projection: Option<Vec<usize>>) -> impl Iterator<Item = Result<RecordBatch>> {
        let mut decoder = FileDecoder::new(self.schema.clone(), self.version);
        if let Some(p) = projection {
            decoder = decoder.with_projection(p);
        }
        let dictionaries: Result<()> = self.dictionaries.iter().try_for_each(|(start, len, b)| {
            guarded(|| decoder.read_dictionary(b, &self.block(*start, *len)))
                .map_err(StorageError::from)
        });
        let failed = dictionaries.err();
        let path = self.path.clone();
        let blocks = match failed {
            Some(_) => Vec::new(),
            None => self.blocks.clone(),
        };
        failed
            .map(Err)
            .into_iter()
            .chain(blocks.into_iter().map(move |(start, len, b)| {
                guarded(|| decoder.read_record_batch(&b, &self.block(start, len)))
                    .map_err(StorageError::from)?
                    .ok_or_else(|| StorageError::Corrupt {
                        path: path.clone(),
                        offset: start as u64,
                        reason: "a record batch block holds no record batch",
                    })
            }))
    }
}

/// Runs an Arrow decode step, turning a panic (Arrow asserts on some
/// malformed input) into an error: a damaged segment file is an error for
/// the query that reads it, never a crash.
fn guarded<T>(
    f: impl FnOnce() -> std::result::Result<T, arrow::error::ArrowError>,
) -> std::result::Result<T, arrow::error::ArrowError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(arrow::error::ArrowError::IpcError(
            "the segment's Arrow data is malformed".into(),
        ))
    })
}

/// Writes `batches` (read form, without row ids, consecutive rows starting
/// at `first_row_id`) as a segment file in `dir`. Not yet durable: see
/// [`Segment::sync`]; no manifest may list it before.
pub fn write_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    table: &str,
    schema: &SchemaRef,
    first_row_id: u64,
    batches: &[RecordBatch],
    times: SegmentTimes,
) -> Result<Segment> {
    let row_count: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let mut next = first_row_id;
    let with_ids = batches.iter().map(|b| {
        let ids: ArrayRef = Arc::new(UInt64Array::from_iter_values(
            next..next + b.num_rows() as u64,
        ));
        next += b.num_rows() as u64;
        let mut columns = vec![ids];
        columns.extend(b.columns().iter().cloned());
        Ok(columns)
    });
    let name = format!("{first_row_id:020}-{row_count}.arrow");
    let file = SegmentFileSpec {
        dir,
        name: &name,
        table,
        fields: schema.fields().iter().cloned().collect(),
        first_row_id,
        row_count,
        live_rows: row_count,
        times,
    };
    write_segment_file(fs, file, with_ids)
}

/// What [`write_segment_file`] writes: where, and the metadata.
struct SegmentFileSpec<'a> {
    dir: &'a Path,
    name: &'a str,
    table: &'a str,
    /// The columns after the row ids.
    fields: Vec<Arc<Field>>,
    first_row_id: u64,
    row_count: u64,
    live_rows: u64,
    times: SegmentTimes,
}

/// Writes a segment file from batches' columns (row ids first) through a
/// temp file and a rename. Not yet durable.
fn write_segment_file(
    fs: &dyn FileSystem,
    spec: SegmentFileSpec<'_>,
    batches: impl Iterator<Item = Result<Vec<ArrayRef>>>,
) -> Result<Segment> {
    let SegmentFileSpec {
        dir,
        name,
        table,
        fields: columns,
        first_row_id,
        row_count,
        live_rows,
        times,
    } = spec;
    create_dir_durably(fs, dir)?;
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    // A drop may remove the day directory once it is empty, between the
    // check above and the create: make it again then.
    let mut attempts = 0;
    let file = loop {
        match fs.create(&tmp) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 3 => {
                attempts += 1;
                create_dir_durably(fs, dir)?;
            }
            created => break created.map_err(StorageError::io("create", &tmp))?,
        }
    };
    let mut fields = vec![Arc::new(Field::new(ROW_ID_COLUMN, DataType::UInt64, false))];
    fields.extend(columns);
    let metadata = HashMap::from([
        (
            "quiver.segment.version".to_string(),
            SEGMENT_VERSION.to_string(),
        ),
        ("quiver.table".to_string(), table.to_string()),
        ("quiver.first_row_id".to_string(), first_row_id.to_string()),
        ("quiver.row_count".to_string(), row_count.to_string()),
        ("quiver.live_rows".to_string(), live_rows.to_string()),
        ("quiver.min_ts".to_string(), times.range.0.to_string()),
        ("quiver.max_ts".to_string(), times.range.1.to_string()),
        (
            "quiver.ts_sorted".to_string(),
            if times.sorted { "1" } else { "0" }.to_string(),
        ),
    ]);
    let full = Arc::new(Schema::new_with_metadata(fields, metadata));
    // Write errors surface as Arrow errors; report them as I/O on the file.
    let failed = |e: arrow::error::ArrowError| StorageError::Io {
        op: "write",
        path: tmp.clone(),
        source: std::io::Error::other(e.to_string()),
    };
    let mut writer =
        FileWriter::try_new(BufWriter::with_capacity(1 << 20, io::Writer(&*file)), &full)
            .map_err(failed)?;
    for columns in batches {
        let columns = columns?;
        writer
            .write(&RecordBatch::try_new(full.clone(), columns)?)
            .map_err(failed)?;
    }
    writer.finish().map_err(failed)?;
    writer
        .into_inner()
        .map_err(failed)?
        .into_inner()
        .map_err(|e| StorageError::io("write", &tmp)(e.into_error()))?;
    fs.rename(&tmp, &path)
        .map_err(StorageError::io("rename", &path))?;
    Ok(Segment {
        path,
        first_row_id,
        row_count,
        live_rows,
        min_ts: times.range.0,
        max_ts: times.range.1,
        cache: SegmentCache::with_order(times.sorted),
    })
}

/// Replaces `dir/name` with `bytes`: temp file, fsync, rename, fsync dir.
pub(crate) fn write_durably(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    create_dir_durably(fs, dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let f = fs.create(&tmp).map_err(StorageError::io("create", &tmp))?;
    io::write_all(&*f, &[bytes]).map_err(StorageError::io("write", &tmp))?;
    f.sync_data().map_err(StorageError::io("sync", &tmp))?;
    drop(f);
    fs.rename(&tmp, &path)
        .map_err(StorageError::io("rename", &path))?;
    sync_dir(fs, dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::OsFileSystem;
    use arrow::array::{Array, Int64Array};

    #[test]
    fn segments_round_trip_with_row_ids() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFileSystem;
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let b1 = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
            .unwrap();
        let b2 = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![3]))])
            .unwrap();
        let seg = write_segment(
            &fs,
            &dir.path().join("segments"),
            "t",
            &schema,
            10,
            &[b1, b2],
            SegmentTimes {
                range: (5, 9),
                sorted: true,
            },
        )
        .unwrap();
        seg.sync(&fs).unwrap();
        assert_eq!(seg.row_count, 3);
        // The order is in the file: a segment known only by its manifest
        // entry reads it from there.
        let listed = Segment {
            cache: Default::default(),
            ..seg.clone()
        };
        assert!(listed.is_ts_sorted(&fs));
        let missing = Segment {
            path: dir.path().join("gone.arrow"),
            cache: Default::default(),
            ..seg.clone()
        };
        assert!(!missing.is_ts_sorted(&fs));
        let batches: Vec<_> = seg.read(&fs).unwrap().collect::<Result<_>>().unwrap();
        let ids = batches[1]
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap();
        assert_eq!(ids.value(0), 12);
        assert_eq!(batches[0].schema().metadata()["quiver.first_row_id"], "10");
        assert_eq!(batches[0].column(1).len(), 2);
        // Only the columns asked for, without row ids.
        let v: Vec<_> = seg
            .read_columns(&fs, &["V".to_string()])
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(v[0].num_columns(), 1);
        assert_eq!(
            v[1].column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap()
                .value(0),
            3
        );
        // No column: the row ids carry the count.
        let none: Vec<_> = seg
            .read_columns(&fs, &[])
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(none.iter().map(|b| b.num_rows()).sum::<usize>(), 3);
    }

    #[test]
    fn a_read_batch_accounts_for_its_block_not_the_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFileSystem;
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let batches: Vec<RecordBatch> = (0..8)
            .map(|i| {
                RecordBatch::try_new(
                    schema.clone(),
                    vec![Arc::new(Int64Array::from_iter_values(
                        i * 10_000..(i + 1) * 10_000,
                    ))],
                )
                .unwrap()
            })
            .collect();
        let seg = write_segment(
            &fs,
            dir.path(),
            "t",
            &schema,
            0,
            &batches,
            SegmentTimes {
                range: (0, 0),
                sorted: false,
            },
        )
        .unwrap();
        let file_len = std::fs::metadata(&seg.path).unwrap().len() as usize;
        for b in seg.read_columns(&fs, &["v".to_string()]).unwrap() {
            let b = b.unwrap();
            // DataFusion's memory pools count this: a block (row ids and
            // values of 10,000 rows), not the 8-block file.
            let counted = b.get_array_memory_size();
            assert!(
                counted < file_len / 4,
                "{counted} of a {file_len}-byte file"
            );
        }
    }

    #[test]
    fn columns_are_decoded_once_each_and_only_when_read() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFileSystem;
        let schema = Arc::new(Schema::new(vec![
            Field::new("a", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]));
        let b = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(vec![1, 2, 3])),
                Arc::new(arrow::array::StringArray::from(vec!["x", "ZZZZZZZZ", "y"])),
            ],
        )
        .unwrap();
        let seg = write_segment(
            &fs,
            dir.path(),
            "t",
            &schema,
            0,
            &[b.clone(), b],
            SegmentTimes {
                range: (0, 0),
                sorted: false,
            },
        )
        .unwrap();
        // Text that is not UTF-8 in `s` only: a reader of `a` never sees it
        // (before, every column of every block was checked on first read).
        let mut bytes = std::fs::read(&seg.path).unwrap();
        let at = bytes.windows(8).position(|w| w == b"ZZZZZZZZ").unwrap();
        bytes[at] = 0xff;
        std::fs::write(&seg.path, &bytes).unwrap();
        let fresh = Segment {
            cache: Default::default(),
            ..seg.clone()
        };
        let read = |names: &[&str]| {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            fresh
                .read_columns(&fs, &names)
                .and_then(|it| it.collect::<Result<Vec<_>>>())
        };
        for _ in 0..2 {
            let got = read(&["A"]).unwrap();
            assert_eq!(got.len(), 2);
            let a = got[1]
                .column(0)
                .as_any()
                .downcast_ref::<Int64Array>()
                .unwrap();
            assert_eq!(a.values(), &[1, 2, 3]);
            assert!(read(&["a", "s"]).is_err());
            // No column named: the row count still comes through.
            let rows = read(&["nope"]).unwrap();
            assert_eq!(rows.iter().map(|b| b.num_rows()).sum::<usize>(), 6);
        }
        assert!(format!("{:?}", fresh.cache).contains("opened: true"));
    }

    #[test]
    fn damaged_segment_files_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFileSystem;
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let b = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
            .unwrap();
        let seg = write_segment(
            &fs,
            dir.path(),
            "t",
            &schema,
            0,
            &[b],
            SegmentTimes {
                range: (0, 0),
                sorted: false,
            },
        )
        .unwrap();
        let good = std::fs::read(&seg.path).unwrap();
        // Each time a segment that has not opened the file yet (a mapping
        // kept from a file rewritten in place would be stale).
        let read_all = |bytes: &[u8]| {
            std::fs::write(&seg.path, bytes).unwrap();
            let fresh = Segment {
                cache: Default::default(),
                ..seg.clone()
            };
            fresh
                .read(&fs)
                .and_then(|it| it.collect::<Result<Vec<_>>>())
        };
        assert!(read_all(&good).is_ok());
        let len = good.len();
        // Truncated, garbage, a footer length past the start, every single
        // byte of the footer and trailer flipped: errors, never a panic.
        assert!(read_all(&good[..len / 2]).is_err());
        assert!(read_all(&[7u8; 64]).is_err());
        let mut bad = good.clone();
        bad[len - 10..len - 6].copy_from_slice(&i32::MAX.to_le_bytes());
        assert!(read_all(&bad).is_err());
        for i in (0..len).rev().take(400) {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            // Some flips land in padding and change nothing; none may panic.
            let _ = read_all(&bad);
        }
    }
}
