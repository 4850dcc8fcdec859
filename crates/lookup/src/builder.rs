//! The write side of the Feather sidecar: [`FeatherSidecarBuilder`] turns
//! record batches in any key order into a sidecar file (format in
//! [`crate::format`]) with bounded memory, and publishes it atomically.
//!
//! # How a build runs
//!
//! `begin` creates a temp file next to the destination and starts an Arrow
//! IPC writer on it. Every pushed batch is projected to the output schema
//! (key column first), its keys are appended to an in-memory `Vec<u64>` (the
//! only O(N) state), and then it goes one of two ways:
//!
//! - **Sorted** (so far every key is above the previous one): rows are
//!   re-chunked straight into the output, `batch_rows` (8192) rows per record
//!   batch, and the first key of each chunk is recorded for the coarse index.
//!   If the input stays sorted, `finish` writes the footer and renames the
//!   temp file over the destination: one pass, no spill, no gather.
//! - **Spilling** (the first out-of-order key switches over for good): the
//!   temp file becomes an unsorted spill; the rows already written stay, the
//!   pending tail and every later batch are appended as they come. `finish`
//!   sorts `(key, row)` pairs, rejects duplicates, maps the spill read-only
//!   (zero-copy), and gathers rows in key order into a second temp file,
//!   `batch_rows` rows at a time with one `interleave` per column over the
//!   spill batches a window touches, then renames it over the destination.
//!
//! Both ways produce the same bytes for the same rows: output chunks are
//! assembled by the same kernel ([`crate::gather`]), and dictionary columns
//! are re-encoded by [`DictionaryUnifier`] in output order.
//!
//! # Memory
//!
//! One input batch, at most `batch_rows` pending rows (copied out of the
//! input batch so it can be dropped), 8 bytes per row of keys, and at finish
//! (spilling only) 16 bytes per row of `(key, row)` pairs plus one output
//! chunk. Payload bytes live in the temp files and the page cache.
//!
//! # Publishing
//!
//! The output is written to a sibling temp file, `fsync`ed, renamed over the
//! destination (atomic on POSIX), and the directory is `fsync`ed. A reader
//! that has the old file mapped keeps reading the old inode; a crash leaves
//! either the old file or the new one, never a torn one. A builder dropped
//! before `finish` deletes its temp files and leaves the destination alone.
//!
//! # Rejected input
//!
//! Null keys (at `push_batch`), duplicate keys, also across pushes (at
//! `push_batch` while sorted, else at `finish`), columns whose type differs
//! from the output schema, and dictionary-encoded fields nested inside other
//! types (top-level dictionary columns are supported and unified).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, RecordBatchOptions};
use arrow::compute::interleave;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use arrow::ipc::writer::{DictionaryHandling, FileWriter, IpcWriteOptions};
use tempfile::NamedTempFile;

use crate::dictionary::DictionaryUnifier;
use crate::error::BuildError;
use crate::feather::{FeatherLookupProvider, MappedIpc};
use crate::format::{DEFAULT_BATCH_ROWS, METADATA_KEY, SidecarMeta};
use crate::gather::compact_views;
use crate::key::{KeyColumn, KeyType};

/// Options for [`FeatherSidecarBuilder::begin_with`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BuildOptions {
    /// Rows per record batch in the output (the last one may be shorter).
    /// Smaller batches make a cold lookup touch fewer bytes; larger ones
    /// make the coarse index smaller. Default 8192.
    pub batch_rows: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        Self {
            batch_rows: DEFAULT_BATCH_ROWS,
        }
    }
}

impl BuildOptions {
    /// Sets [`BuildOptions::batch_rows`] (at least 1).
    pub fn batch_rows(mut self, rows: usize) -> Self {
        self.batch_rows = rows.max(1);
        self
    }
}

/// What a finished build did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildReport {
    /// Rows written.
    pub rows: u64,
    /// Record batches in the output.
    pub batches: usize,
    /// Whether the input arrived strictly ascending, so the output was
    /// written straight through (no spill, no gather).
    pub input_was_sorted: bool,
    /// Size of the published file in bytes.
    pub file_bytes: u64,
}

/// The output file being written, and its IPC writer.
struct Output {
    temp: NamedTempFile,
    writer: FileWriter<BufWriter<File>>,
}

impl Output {
    fn create(dir: &Path, prefix: &str, schema: &SchemaRef) -> Result<Self, BuildError> {
        let temp = tempfile::Builder::new()
            .prefix(prefix)
            .suffix(".tmp")
            .tempfile_in(dir)
            .map_err(|source| BuildError::Io {
                context: "cannot create a temp file in",
                path: dir.to_path_buf(),
                source,
            })?;
        let handle = temp
            .as_file()
            .try_clone()
            .map_err(|source| BuildError::Io {
                context: "cannot reopen temp file",
                path: temp.path().to_path_buf(),
                source,
            })?;
        let options =
            IpcWriteOptions::default().with_dictionary_handling(DictionaryHandling::Delta);
        let writer = FileWriter::try_new_with_options(
            BufWriter::with_capacity(1 << 20, handle),
            schema,
            options,
        )
        .map_err(|source| BuildError::Arrow {
            context: "starting the IPC writer",
            source,
        })?;
        Ok(Self { temp, writer })
    }

    fn write(&mut self, batch: &RecordBatch) -> Result<(), BuildError> {
        self.writer
            .write(batch)
            .map_err(|source| BuildError::Arrow {
                context: "writing a record batch",
                source,
            })
    }

    /// Writes the footer (with `meta`, if any), flushes and syncs; returns
    /// the temp file, complete on disk.
    fn close(mut self, meta: Option<&SidecarMeta>) -> Result<NamedTempFile, BuildError> {
        if let Some(meta) = meta {
            self.writer.write_metadata(METADATA_KEY, meta.encode());
        }
        self.writer.finish().map_err(|source| BuildError::Arrow {
            context: "writing the IPC footer",
            source,
        })?;
        let path = self.temp.path().to_path_buf();
        let io = |source| BuildError::Io {
            context: "cannot flush",
            path: path.clone(),
            source,
        };
        let mut buffered = self
            .writer
            .into_inner()
            .map_err(|source| BuildError::Arrow {
                context: "flushing the IPC writer",
                source,
            })?;
        buffered.flush().map_err(io)?;
        let file = buffered.into_inner().map_err(|e| io(e.into_error()))?;
        file.sync_all().map_err(io)?;
        Ok(self.temp)
    }
}

/// Projects batches to the output schema and builds output chunks, with
/// dictionary columns re-encoded onto one growing dictionary each.
///
/// Chunks are always built with `interleave` (never `take`, even from one
/// source): the two kernels lay out some arrays differently (`take` drops
/// the child values under a null list entry, `interleave` keeps them), and
/// using one kernel is what makes both build paths write the same bytes.
struct Assembler {
    schema: SchemaRef,
    unifiers: Vec<Option<DictionaryUnifier>>,
}

impl Assembler {
    fn new(schema: &SchemaRef) -> Result<Self, BuildError> {
        let unifiers = schema
            .fields()
            .iter()
            .map(|f| match f.data_type() {
                DataType::Dictionary(..) => {
                    DictionaryUnifier::try_new(f.name(), f.data_type()).map(Some)
                }
                _ => Ok(None),
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            schema: Arc::clone(schema),
            unifiers,
        })
    }

    /// Gathers `indices` (`(source, row)`) from `sources` into one batch.
    fn chunk(
        &mut self,
        sources: &[&RecordBatch],
        indices: &[(usize, usize)],
    ) -> Result<RecordBatch, BuildError> {
        let arrow = |source| BuildError::Arrow {
            context: "gathering an output chunk",
            source,
        };
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for (c, unifier) in self.unifiers.iter_mut().enumerate() {
            let column = match unifier {
                Some(u) => {
                    let refs: Vec<&dyn Array> =
                        sources.iter().map(|b| b.column(c).as_ref()).collect();
                    u.gather(&refs, indices)?
                }
                None => {
                    let refs: Vec<&dyn Array> =
                        sources.iter().map(|b| b.column(c).as_ref()).collect();
                    compact_views(interleave(&refs, indices).map_err(arrow)?).map_err(arrow)?
                }
            };
            columns.push(column);
        }
        self.batch(columns, indices.len())
    }

    /// Re-encodes only the dictionary columns of a whole batch (spill
    /// writes keep every other column as it came).
    fn reencode(&mut self, batch: &RecordBatch) -> Result<RecordBatch, BuildError> {
        if self.unifiers.iter().all(Option::is_none) {
            return Ok(batch.clone());
        }
        let all: Vec<(usize, usize)> = (0..batch.num_rows()).map(|r| (0, r)).collect();
        let mut columns = batch.columns().to_vec();
        for (c, unifier) in self.unifiers.iter_mut().enumerate() {
            if let Some(u) = unifier {
                columns[c] = u.gather(&[batch.column(c).as_ref()], &all)?;
            }
        }
        self.batch(columns, batch.num_rows())
    }

    fn batch(&self, columns: Vec<ArrayRef>, rows: usize) -> Result<RecordBatch, BuildError> {
        let options = RecordBatchOptions::new().with_row_count(Some(rows));
        RecordBatch::try_new_with_options(Arc::clone(&self.schema), columns, &options).map_err(
            |source| BuildError::Arrow {
                context: "assembling an output chunk",
                source,
            },
        )
    }
}

/// Where the build is.
enum Phase {
    /// Every key so far was above the one before: rows go straight to the
    /// output in `batch_rows` chunks. `pending` holds the rows of the next,
    /// incomplete chunk.
    Sorted {
        pending: VecDeque<RecordBatch>,
        pending_rows: usize,
        /// First key of each chunk written.
        first_keys: Vec<u64>,
    },
    /// The input went out of order: the output temp file is now a spill in
    /// input order, to be gathered at `finish`.
    Spilling,
}

/// Builds a Feather (Arrow IPC) sidecar sorted by key from batches in any
/// order. See the [module docs](self) for how.
///
/// ```
/// # use std::sync::Arc;
/// # use arrow::array::{Int64Array, RecordBatch, StringArray};
/// # use arrow::datatypes::{DataType, Field, Schema};
/// use quiver_lookup::FeatherSidecarBuilder;
///
/// let dir = tempfile::tempdir().unwrap();
/// let input = Arc::new(Schema::new(vec![
///     Field::new("name", DataType::Utf8, true),
///     Field::new("rowid", DataType::Int64, false),
/// ]));
/// // The output schema: key first, then the value columns.
/// let output = Arc::new(Schema::new(vec![
///     Field::new("rowid", DataType::Int64, false),
///     Field::new("name", DataType::Utf8, true),
/// ]));
/// let mut builder =
///     FeatherSidecarBuilder::begin(dir.path().join("t.arrow"), output, 1, &[0]).unwrap();
/// builder.push_batch(&RecordBatch::try_new(input, vec![
///     Arc::new(StringArray::from(vec!["b", "a"])),
///     Arc::new(Int64Array::from(vec![20, 10])),
/// ]).unwrap()).unwrap();
/// assert!(!builder.input_was_sorted());
/// let sidecar = builder.finish().unwrap();
/// assert_eq!(sidecar.len(), 2);
/// ```
pub struct FeatherSidecarBuilder {
    path: PathBuf,
    dir: PathBuf,
    prefix: String,
    schema: SchemaRef,
    key_index: usize,
    value_indices: Vec<usize>,
    key_type: KeyType,
    batch_rows: usize,
    /// `None` once an error has poisoned the builder.
    output: Option<Output>,
    assembler: Assembler,
    keys: Vec<u64>,
    phase: Phase,
    written_rows: usize,
}

impl std::fmt::Debug for FeatherSidecarBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeatherSidecarBuilder")
            .field("path", &self.path)
            .field("rows", &self.keys.len())
            .field("input_was_sorted", &self.input_was_sorted())
            .finish_non_exhaustive()
    }
}

/// Checks the output schema at `begin`: a key type for field 0, and no
/// dictionary nested inside another type.
pub(crate) fn check_output_schema(
    schema: &SchemaRef,
    values: usize,
) -> Result<KeyType, BuildError> {
    let fields = schema.fields();
    if fields.len() != 1 + values {
        return Err(BuildError::Arity {
            fields: fields.len(),
            values,
        });
    }
    let key = &fields[0];
    KeyType::from_data_type(key.data_type()).ok_or_else(|| BuildError::KeyType {
        name: key.name().clone(),
        data_type: key.data_type().clone(),
    })
}

/// Projects an input batch onto the output schema (key column first),
/// checking column indices and types.
pub(crate) fn project_input(
    schema: &SchemaRef,
    key_index: usize,
    value_indices: &[usize],
    batch: &RecordBatch,
) -> Result<RecordBatch, BuildError> {
    let columns = batch.num_columns();
    let mut out = Vec::with_capacity(1 + value_indices.len());
    for (&index, field) in std::iter::once(&key_index)
        .chain(value_indices)
        .zip(schema.fields())
    {
        let column = batch
            .columns()
            .get(index)
            .ok_or(BuildError::ColumnIndex { index, columns })?;
        if column.data_type() != field.data_type() {
            return Err(BuildError::SchemaMismatch {
                column: field.name().clone(),
                expected: field.data_type().clone(),
                found: column.data_type().clone(),
            });
        }
        out.push(Arc::clone(column));
    }
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::clone(schema), out, &options).map_err(|source| {
        BuildError::Arrow {
            context: "the batch does not match the output schema",
            source,
        }
    })
}

/// The first null in a key column, if any.
pub(crate) fn first_null(key: &ArrayRef) -> Option<usize> {
    (key.null_count() > 0).then(|| (0..key.len()).find(|&i| key.is_null(i)).unwrap_or(0))
}

/// Temp-file prefix and containing directory for a destination path.
pub(crate) fn temp_location(path: &Path) -> (PathBuf, String) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "sidecar".into());
    (dir, format!(".{name}."))
}

/// Renames a finished temp file over `path` and syncs `dir`, so the rename
/// is durable. Readers of the old file keep the old inode.
pub(crate) fn publish(temp: NamedTempFile, path: &Path, dir: &Path) -> Result<(), BuildError> {
    temp.persist(path).map_err(|e| BuildError::Io {
        context: "cannot rename the finished sidecar onto",
        path: path.to_path_buf(),
        source: e.error,
    })?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| BuildError::Io {
            context: "cannot sync directory",
            path: dir.to_path_buf(),
            source,
        })
}

fn nested_dictionary(data_type: &DataType) -> bool {
    fn any_dictionary(dt: &DataType) -> bool {
        match dt {
            DataType::Dictionary(..) => true,
            DataType::List(f)
            | DataType::LargeList(f)
            | DataType::ListView(f)
            | DataType::LargeListView(f)
            | DataType::FixedSizeList(f, _)
            | DataType::Map(f, _) => any_dictionary(f.data_type()),
            DataType::Struct(fs) => fs.iter().any(|f| any_dictionary(f.data_type())),
            DataType::Union(fs, _) => fs.iter().any(|(_, f)| any_dictionary(f.data_type())),
            DataType::RunEndEncoded(r, v) => {
                any_dictionary(r.data_type()) || any_dictionary(v.data_type())
            }
            _ => false,
        }
    }
    match data_type {
        DataType::Dictionary(_, v) => any_dictionary(v),
        other => any_dictionary(other),
    }
}

impl FeatherSidecarBuilder {
    /// Starts a build of the sidecar at `path` with the default
    /// [`BuildOptions`].
    ///
    /// `schema` is the *output* schema: the key field, then one field per
    /// value column. `key_col_index` and `value_col_indices` select those
    /// columns, in that order, from each pushed batch. Nothing is written to
    /// `path` until [`finish`](Self::finish).
    pub fn begin(
        path: impl AsRef<Path>,
        schema: SchemaRef,
        key_col_index: usize,
        value_col_indices: &[usize],
    ) -> Result<Self, BuildError> {
        Self::begin_with(
            path,
            schema,
            key_col_index,
            value_col_indices,
            BuildOptions::default(),
        )
    }

    /// [`begin`](Self::begin) with explicit options.
    pub fn begin_with(
        path: impl AsRef<Path>,
        schema: SchemaRef,
        key_col_index: usize,
        value_col_indices: &[usize],
        options: BuildOptions,
    ) -> Result<Self, BuildError> {
        let key_type = check_output_schema(&schema, value_col_indices.len())?;
        if let Some(f) = schema
            .fields()
            .iter()
            .find(|f| nested_dictionary(f.data_type()))
        {
            return Err(BuildError::UnsupportedType {
                column: f.name().clone(),
                data_type: f.data_type().clone(),
                provider: "the Feather sidecar",
                reason: "dictionary-encoded fields nested inside other types are not supported; \
                         use a top-level dictionary column",
            });
        }
        let path = path.as_ref().to_path_buf();
        let (dir, prefix) = temp_location(&path);
        let assembler = Assembler::new(&schema)?;
        let output = Output::create(&dir, &format!("{prefix}build-"), &schema)?;
        Ok(Self {
            path,
            dir,
            prefix,
            schema,
            key_index: key_col_index,
            value_indices: value_col_indices.to_vec(),
            key_type,
            batch_rows: options.batch_rows.max(1),
            output: Some(output),
            assembler,
            keys: Vec::new(),
            phase: Phase::Sorted {
                pending: VecDeque::new(),
                pending_rows: 0,
                first_keys: Vec::new(),
            },
            written_rows: 0,
        })
    }

    /// Whether every key pushed so far was above the one before it (so
    /// `finish` will not need to spill and gather).
    pub fn input_was_sorted(&self) -> bool {
        matches!(self.phase, Phase::Sorted { .. })
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.keys.len() as u64
    }

    /// The output schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn project(&self, batch: &RecordBatch) -> Result<RecordBatch, BuildError> {
        project_input(&self.schema, self.key_index, &self.value_indices, batch)
    }

    /// Adds a batch. Rejects null keys and mismatched columns without
    /// changing the builder; an I/O or Arrow failure while writing poisons
    /// it (later calls return [`BuildError::Poisoned`]).
    pub fn push_batch(&mut self, batch: &RecordBatch) -> Result<(), BuildError> {
        if self.output.is_none() {
            return Err(BuildError::Poisoned);
        }
        let projected = self.project(batch)?;
        if projected.num_rows() == 0 {
            return Ok(());
        }
        let key = projected.column(0);
        if let Some(first) = first_null(key) {
            return Err(BuildError::NullKey {
                row: self.keys.len() as u64 + first as u64,
            });
        }
        let keys = KeyColumn::from_array(key).expect("key type checked at begin");
        let still_sorted =
            self.input_was_sorted() && keys.ascending_after(self.keys.last().copied());
        keys.extend_into(&mut self.keys);
        let result = self.route(projected, still_sorted);
        if result.is_err() {
            self.output = None;
        }
        result
    }

    fn route(&mut self, batch: RecordBatch, still_sorted: bool) -> Result<(), BuildError> {
        if still_sorted {
            let Phase::Sorted {
                pending,
                pending_rows,
                ..
            } = &mut self.phase
            else {
                unreachable!()
            };
            *pending_rows += batch.num_rows();
            pending.push_back(batch);
            while self.pending_rows() >= self.batch_rows {
                self.write_chunk(self.batch_rows)?;
            }
            return self.compact_pending();
        }
        if self.input_was_sorted() {
            // Switch to spilling: flush what is pending, in input order.
            let rows = self.pending_rows();
            if rows > 0 {
                self.write_chunk(rows)?;
            }
            tracing::debug!(
                path = %self.path.display(),
                rows = self.keys.len(),
                "sidecar input out of order; spilling for a sort at finish"
            );
            self.phase = Phase::Spilling;
        }
        let reencoded = self.assembler.reencode(&batch)?;
        self.output_mut().write(&reencoded)
    }

    fn output_mut(&mut self) -> &mut Output {
        self.output.as_mut().expect("checked by callers")
    }

    fn pending_rows(&self) -> usize {
        match &self.phase {
            Phase::Sorted { pending_rows, .. } => *pending_rows,
            Phase::Spilling => 0,
        }
    }

    /// Writes the first `rows` pending rows as one record batch.
    fn write_chunk(&mut self, rows: usize) -> Result<(), BuildError> {
        let Phase::Sorted {
            pending,
            pending_rows,
            first_keys,
        } = &mut self.phase
        else {
            unreachable!()
        };
        let mut sources = Vec::new();
        let mut need = rows;
        while need > 0 {
            let b = pending.pop_front().expect("enough pending rows");
            if b.num_rows() <= need {
                need -= b.num_rows();
                sources.push(b);
            } else {
                sources.push(b.slice(0, need));
                pending.push_front(b.slice(need, b.num_rows() - need));
                need = 0;
            }
        }
        *pending_rows -= rows;
        first_keys.push(self.keys[self.written_rows]);
        let refs: Vec<&RecordBatch> = sources.iter().collect();
        let indices: Vec<(usize, usize)> = sources
            .iter()
            .enumerate()
            .flat_map(|(s, b)| (0..b.num_rows()).map(move |r| (s, r)))
            .collect();
        let chunk = self.assembler.chunk(&refs, &indices)?;
        self.written_rows += rows;
        self.output_mut().write(&chunk)
    }

    /// Copies a pending tail that is a slice of a larger input batch, so
    /// the input batch can be dropped (memory stays one input batch).
    fn compact_pending(&mut self) -> Result<(), BuildError> {
        let Phase::Sorted { pending, .. } = &mut self.phase else {
            return Ok(());
        };
        // Only the newest batch and a front remainder split off by the last
        // chunk can be slices of a large batch; the rest were checked on
        // earlier pushes (so many tiny pushes stay linear).
        let last = pending.len().saturating_sub(1);
        for (i, b) in pending.iter_mut().enumerate() {
            if i != 0 && i != last {
                continue;
            }
            let referenced: usize = b.columns().iter().map(|c| c.get_array_memory_size()).sum();
            let needed: usize = b
                .columns()
                .iter()
                .map(|c| c.to_data().get_slice_memory_size().unwrap_or(usize::MAX))
                .sum();
            if referenced > needed.saturating_mul(2) {
                let indices: Vec<(usize, usize)> = (0..b.num_rows()).map(|r| (0, r)).collect();
                let columns = b
                    .columns()
                    .iter()
                    .map(|c| compact_views(interleave(&[c.as_ref()], &indices)?))
                    .collect::<Result<Vec<_>, ArrowError>>()
                    .map_err(|source| BuildError::Arrow {
                        context: "copying the pending rows",
                        source,
                    })?;
                *b = RecordBatch::try_new_with_options(
                    b.schema(),
                    columns,
                    &RecordBatchOptions::new().with_row_count(Some(b.num_rows())),
                )
                .map_err(|source| BuildError::Arrow {
                    context: "copying the pending rows",
                    source,
                })?;
            }
        }
        Ok(())
    }

    /// Finishes the build and opens the published sidecar.
    pub fn finish(self) -> Result<FeatherLookupProvider, BuildError> {
        self.finish_with_report().map(|(p, _)| p)
    }

    /// [`finish`](Self::finish), also returning what the build did.
    pub fn finish_with_report(
        mut self,
    ) -> Result<(FeatherLookupProvider, BuildReport), BuildError> {
        if self.output.is_none() {
            return Err(BuildError::Poisoned);
        }
        let sorted = self.input_was_sorted();
        let rows = self.keys.len() as u64;
        let (temp, batches) = if sorted {
            let rows = self.pending_rows();
            if rows > 0 {
                self.write_chunk(rows)?;
            }
            let Phase::Sorted { first_keys, .. } =
                std::mem::replace(&mut self.phase, Phase::Spilling)
            else {
                unreachable!()
            };
            let batches = first_keys.len();
            let meta = self.meta(first_keys);
            let output = self.output.take().expect("checked above");
            (output.close(Some(&meta))?, batches)
        } else {
            self.gather()?
        };
        let file_bytes = temp.as_file().metadata().map(|m| m.len()).unwrap_or(0);
        publish(temp, &self.path, &self.dir)?;
        let provider = FeatherLookupProvider::open(&self.path)?;
        let report = BuildReport {
            rows,
            batches,
            input_was_sorted: sorted,
            file_bytes,
        };
        tracing::debug!(path = %self.path.display(), ?report, "sidecar published");
        Ok((provider, report))
    }

    fn meta(&self, first_keys: Vec<u64>) -> SidecarMeta {
        SidecarMeta {
            key_type: self.key_type,
            rows: self.keys.len() as u64,
            batch_rows: self.batch_rows as u64,
            // Sorted input: the last key pushed is the largest.
            last_key: self.keys.last().copied(),
            first_keys,
        }
    }

    /// Sorts the spilled rows by key into a new temp file.
    fn gather(&mut self) -> Result<(NamedTempFile, usize), BuildError> {
        let spill = self.output.take().expect("checked by caller").close(None)?;
        let keys = std::mem::take(&mut self.keys);
        let rows = keys.len();
        let mut order: Vec<(u64, u64)> = keys
            .iter()
            .enumerate()
            .map(|(i, &k)| (k, i as u64))
            .collect();
        drop(keys);
        order.sort_unstable();
        if let Some(w) = order.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(BuildError::DuplicateKey { key: w[0].0 });
        }

        let mapped = MappedIpc::open(spill.path())?;
        let spill_batches = (0..mapped.layout.batches.len())
            .map(|b| mapped.decode(spill.path(), b))
            .collect::<Result<Vec<_>, _>>()?;
        let mut starts = Vec::with_capacity(spill_batches.len());
        let mut total = 0u64;
        for b in &spill_batches {
            starts.push(total);
            total += b.num_rows() as u64;
        }
        debug_assert_eq!(total as usize, rows, "spill rows == pushed keys");

        let mut assembler = Assembler::new(&self.schema)?;
        let mut output =
            Output::create(&self.dir, &format!("{}gather-", self.prefix), &self.schema)?;
        let mut first_keys = Vec::with_capacity(rows.div_ceil(self.batch_rows));
        // Per spill batch: the window it was last touched in, and its source
        // slot there.
        let mut stamp = vec![(usize::MAX, 0usize); spill_batches.len()];
        let mut sources: Vec<&RecordBatch> = Vec::new();
        let mut indices: Vec<(usize, usize)> = Vec::with_capacity(self.batch_rows);
        for (w, window) in order.chunks(self.batch_rows).enumerate() {
            sources.clear();
            indices.clear();
            for &(_, row) in window {
                let b = starts.partition_point(|&s| s <= row) - 1;
                if stamp[b].0 != w {
                    stamp[b] = (w, sources.len());
                    sources.push(&spill_batches[b]);
                }
                indices.push((stamp[b].1, (row - starts[b]) as usize));
            }
            let chunk = assembler.chunk(&sources, &indices)?;
            output.write(&chunk)?;
            first_keys.push(window[0].0);
        }
        let meta = SidecarMeta {
            key_type: self.key_type,
            rows: rows as u64,
            batch_rows: self.batch_rows as u64,
            last_key: order.last().map(|&(k, _)| k),
            first_keys,
        };
        drop(order);
        let batches = meta.first_keys.len();
        drop(spill_batches);
        drop(mapped);
        drop(spill);
        Ok((output.close(Some(&meta))?, batches))
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{Field, Schema};

    use super::*;

    #[test]
    fn temp_files_go_next_to_the_destination() {
        assert_eq!(
            temp_location(Path::new("x.arrow")),
            (PathBuf::from("."), ".x.arrow.".to_string())
        );
        assert_eq!(
            temp_location(Path::new("/a/b/x.arrow")),
            (PathBuf::from("/a/b"), ".x.arrow.".to_string())
        );
    }

    /// Memory bound: after a large push, the pending tail is a compact copy,
    /// not a slice that keeps the whole input batch alive.
    #[test]
    fn pending_tail_does_not_pin_the_input_batch() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("v", DataType::Utf8, false),
        ]));
        let n = 100_000;
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from_iter_values(0..n)),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("{i:064}")),
                )),
            ],
        )
        .unwrap();
        let input_bytes = batch.get_array_memory_size();
        let mut b = FeatherSidecarBuilder::begin(dir.path().join("t"), schema, 0, &[1]).unwrap();
        b.push_batch(&batch).unwrap();
        drop(batch);
        let Phase::Sorted {
            pending,
            pending_rows,
            ..
        } = &b.phase
        else {
            panic!("sorted input")
        };
        assert_eq!(*pending_rows, 100_000 % DEFAULT_BATCH_ROWS);
        let held: usize = pending.iter().map(|p| p.get_array_memory_size()).sum();
        assert!(
            held * 5 < input_bytes,
            "pending holds {held} of {input_bytes} bytes"
        );
        assert_eq!(b.finish().unwrap().len(), 100_000);
    }
}
