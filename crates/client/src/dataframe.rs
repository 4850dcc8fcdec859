//! Polars (feature `polars`): `DataFrame`s and `LazyFrame`s in,
//! `DataFrame`s out, through the Arrow paths so both kinds of caller get
//! the same type mapping, checks and errors.
//!
//! Ingest cuts a frame into slices of about [`SLICE_BYTES`] and hands each
//! to the Arrow sender as arrow-rs record batches. The bridge between
//! Polars' Arrow and arrow-rs is an Arrow IPC stream per slice, written at
//! Polars' most compatible level (large strings and binaries rather than
//! views, dictionaries for categoricals): one copy of one slice at a time,
//! never of the whole frame, and no `unsafe` (the Arrow C data interface
//! would avoid the copy; the benchmark `sdk` measures what the copy costs
//! next to the Arrow path). Categorical and enum columns go apart, as
//! dictionaries of only the categories the slice uses (Polars would write
//! every category the process has seen). A `LazyFrame` is collected first.
//!
//! Egress converts each result batch the same way the other direction,
//! except SYMBOL columns, which become categoricals here (Polars' import
//! of a dictionary interns every row's string); a whole result is the
//! batches stacked, one chunk per batch.
//!
//! What it must not do: map QuestDB types itself (the Arrow paths own
//! that), or send any row of a frame that is not all sent (a failure after
//! a first slice left rolls back what was flushed since the last sync,
//! as a failing chunk does).

use std::collections::{HashMap, VecDeque};
use std::fmt::Display;
use std::io::Cursor;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use ::polars::prelude::{
    Categorical32Type, CategoricalChunked, CategoricalPhysical, Categories, Column, DataFrame,
    DataType as PolarsType, IntoColumn, IntoSeries, IpcStreamReader, IpcStreamWriter, LazyFrame,
    NewChunkedArray, PolarsResult, SerReader, SerWriter, UInt32Chunked, polars_bail, polars_err,
};
use arrow_array::builder::{StringBuilder, UInt32Builder};
use arrow_array::types::UInt32Type;
use arrow_array::{Array, ArrayRef, DictionaryArray, RecordBatch, RecordBatchOptions, StringArray};
use arrow_schema::{Field, Schema};

use crate::error::{ClientError, Result};
use crate::pool::Client;
use crate::query::{Query, QueryStream};
use crate::sender::{Ack, ArrowOptions, Sender};

/// About how many bytes of a frame are copied into Arrow IPC at a time.
const SLICE_BYTES: usize = 8 << 20;
/// Most rows in one slice (the server's frames are split further).
const MAX_SLICE_ROWS: usize = 1 << 20;

fn polars_error(what: &str, cause: impl Display) -> ClientError {
    ClientError::Polars {
        reason: format!("{what}: {cause}"),
    }
}

/// A `DataFrame` as arrow-rs record batches, one slice converted at a
/// time.
struct FrameBatches<'a> {
    frame: &'a DataFrame,
    /// The next row to convert.
    offset: usize,
    /// Rows per slice.
    slice_rows: usize,
    /// The IPC stream of the current slice (reused).
    ipc: Vec<u8>,
    /// Batches of the current slice not yet returned.
    ready: VecDeque<RecordBatch>,
}

impl<'a> FrameBatches<'a> {
    fn new(frame: &'a DataFrame) -> FrameBatches<'a> {
        let row_bytes = frame.estimated_size() / frame.height().max(1);
        FrameBatches {
            frame,
            offset: 0,
            slice_rows: (SLICE_BYTES / row_bytes.max(1)).clamp(1, MAX_SLICE_ROWS),
            ipc: Vec::new(),
            ready: VecDeque::new(),
        }
    }

    fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            if let Some(batch) = self.ready.pop_front() {
                return Ok(Some(batch));
            }
            let height = self.frame.height();
            if self.offset >= height {
                return Ok(None);
            }
            let len = self.slice_rows.min(height - self.offset);
            let offset = i64::try_from(self.offset)
                .map_err(|_| polars_error("slicing the frame", "offset beyond i64"))?;
            let slice = self.frame.slice(offset, len);
            self.offset += len;
            let batches = slice_to_batches(slice, &mut self.ipc)?;
            self.ready
                .extend(batches.into_iter().filter(|b| b.num_rows() > 0));
        }
    }
}

/// One slice of a frame as arrow-rs record batches (at least one, even
/// without rows, so an empty frame still has a schema to check).
///
/// Categorical and enum columns are converted here, not through IPC:
/// Polars writes a categorical's dictionary as every category the process
/// has seen, so IPC would copy (and the sender scan) all of them for each
/// slice. Here each becomes a dictionary of only the categories the slice
/// uses.
fn slice_to_batches(slice: DataFrame, ipc: &mut Vec<u8>) -> Result<Vec<RecordBatch>> {
    let rows = slice.height();
    let mut symbols = Vec::new();
    let mut others = Vec::new();
    for (i, column) in slice.columns().iter().enumerate() {
        match column.dtype() {
            PolarsType::Categorical(..) | PolarsType::Enum(..) => {
                symbols.push((i, compact_categories(column)?));
            }
            _ => others.push(column.clone()),
        }
    }
    let width = slice.width();
    let (schema, mut read) = match others.is_empty() {
        // Only categoricals: no IPC, one batch.
        true => (Schema::empty(), vec![None]),
        false => {
            let mut rest = guarded("slicing the frame", || DataFrame::new(rows, others))?;
            ipc.clear();
            guarded("writing the frame as Arrow", || {
                IpcStreamWriter::new(&mut *ipc).finish(&mut rest)
            })?;
            let reader =
                arrow_ipc::reader::StreamReader::try_new(Cursor::new(ipc.as_slice()), None)
                    .map_err(|e| polars_error("reading the frame as Arrow", e))?;
            let schema = reader.schema().as_ref().clone();
            let batches = reader
                .map(|b| b.map(Some))
                .collect::<std::result::Result<Vec<_>, _>>()
                .map_err(|e| polars_error("reading the frame as Arrow", e))?;
            (schema, batches)
        }
    };
    if read.is_empty() {
        read.push(Some(RecordBatch::new_empty(Arc::new(schema.clone()))));
    }
    let mut out = Vec::with_capacity(read.len());
    let mut row = 0;
    for batch in read {
        // `None`: every column is a categorical.
        let n = batch.as_ref().map_or(rows, RecordBatch::num_rows);
        if symbols.is_empty() {
            out.extend(batch);
            continue;
        }
        if n > rows - row {
            return Err(polars_error(
                "reading the frame as Arrow",
                format!("more rows read back than the {rows} of the slice"),
            ));
        }
        let mut rest = batch.iter().flat_map(|b| b.columns().iter().cloned());
        let mut rest_fields = schema.fields().iter().cloned();
        let mut fields = Vec::with_capacity(width);
        let mut columns = Vec::with_capacity(width);
        let mut next_symbol = symbols.iter().peekable();
        for i in 0..width {
            match next_symbol.next_if(|(at, _)| *at == i) {
                Some((_, (field, array))) => {
                    fields.push(Arc::new(field.clone()));
                    columns.push(array.slice(row, n));
                }
                None => {
                    let (Some(field), Some(array)) = (rest_fields.next(), rest.next()) else {
                        return Err(polars_error(
                            "reading the frame as Arrow",
                            "fewer columns than the frame",
                        ));
                    };
                    fields.push(field);
                    columns.push(array);
                }
            }
        }
        let batch = RecordBatch::try_new_with_options(
            Arc::new(Schema::new(fields)),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(n)),
        )
        .map_err(|e| polars_error("assembling the frame as Arrow", e))?;
        out.push(batch);
        row += n;
    }
    if row != rows && !symbols.is_empty() {
        return Err(polars_error(
            "reading the frame as Arrow",
            format!("{row} rows read back of {rows}"),
        ));
    }
    Ok(out)
}

/// A categorical or enum column as `Dictionary(UInt32, Utf8)` holding only
/// the categories its rows use, in order of first use.
fn compact_categories(column: &Column) -> Result<(Field, ArrayRef)> {
    let name = column.name().to_string();
    guarded("converting a categorical column", || {
        let mapping = column.dtype().cat_mapping()?;
        let physical = column.to_physical_repr().cast(&PolarsType::UInt32)?;
        let ids = physical.u32()?;
        // Global id -> local key: a table when the mapping is not much
        // larger than the slice, else a hash map (the mapping may hold
        // every category the process has seen).
        let upper = mapping.num_cats_upper_bound();
        let mut table = match upper <= 4 * ids.len() + 4096 {
            true => Some(vec![u32::MAX; upper]),
            false => None,
        };
        let mut map: HashMap<u32, u32> = HashMap::new();
        let mut values = StringBuilder::new();
        let mut keys = UInt32Builder::with_capacity(ids.len());
        let mut used = 0u32;
        for id in ids.iter() {
            let Some(id) = id else {
                keys.append_null();
                continue;
            };
            let known = match &table {
                Some(t) => t.get(id as usize).copied().filter(|&k| k != u32::MAX),
                None => map.get(&id).copied(),
            };
            let key = match known {
                Some(key) => key,
                None => {
                    let text = mapping.cat_to_str(id).ok_or_else(
                        || polars_err!(ComputeError: "category {id} is not in its mapping"),
                    )?;
                    values.append_value(text);
                    let key = used;
                    used += 1;
                    match &mut table {
                        Some(t) => match t.get_mut(id as usize) {
                            Some(slot) => *slot = key,
                            None => polars_bail!(ComputeError: "category {id} past its mapping"),
                        },
                        None => {
                            map.insert(id, key);
                        }
                    }
                    key
                }
            };
            keys.append_value(key);
        }
        let dictionary =
            DictionaryArray::<UInt32Type>::try_new(keys.finish(), Arc::new(values.finish()))
                .map_err(|e| polars_err!(ComputeError: "{e}"))?;
        let field = Field::new(name.clone(), dictionary.data_type().clone(), true);
        Ok((field, Arc::new(dictionary) as ArrayRef))
    })
}

/// Every batch [`Sender::flush_dataframe`] would send of `frame`.
pub(crate) fn frame_batches(frame: &DataFrame) -> Result<Vec<RecordBatch>> {
    if frame.height() == 0 {
        return slice_to_batches(frame.clone(), &mut Vec::new());
    }
    let mut batches = FrameBatches::new(frame);
    let mut out = Vec::new();
    while let Some(batch) = batches.next_batch()? {
        out.push(batch);
    }
    Ok(out)
}

/// Runs a Polars call, turning a panic inside Polars (it asserts on some
/// inputs it does not support) into an error.
fn guarded<T>(what: &str, call: impl FnOnce() -> PolarsResult<T>) -> Result<T> {
    match std::panic::catch_unwind(AssertUnwindSafe(call)) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(polars_error(what, e)),
        Err(panic) => {
            let message = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("a panic");
            Err(polars_error(what, format!("Polars panicked: {message}")))
        }
    }
}

/// One record batch as a `DataFrame` (columns in the batch's order and
/// names; SYMBOL dictionaries become categoricals of Polars' global
/// categories, UUID and LONG256 binaries). Field metadata is dropped:
/// Polars has no place for the `questdb.*` keys, and refuses the
/// `arrow.uuid` extension.
pub fn batch_to_dataframe(batch: &RecordBatch) -> Result<DataFrame> {
    let schema = batch.schema_ref();
    // SYMBOL columns are converted here (each dictionary value interned
    // once); Polars' own import of a dictionary interns every row's string,
    // which measured as most of a result's conversion time.
    let mut symbols = Vec::new();
    let mut others = Vec::new();
    for (i, (field, column)) in schema.fields().iter().zip(batch.columns()).enumerate() {
        match symbol_column(field.name(), column.as_ref())? {
            Some(symbol) => symbols.push((i, symbol)),
            None => others.push(i),
        }
    }
    let fields: Vec<Field> = others
        .iter()
        .map(|&i| schema.field(i).clone().with_metadata(Default::default()))
        .collect();
    let bare = RecordBatch::try_new_with_options(
        Arc::new(Schema::new(fields)),
        others.iter().map(|&i| batch.column(i).clone()).collect(),
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(|e| polars_error("preparing the batch for Polars", e))?;
    let mut ipc = Vec::new();
    {
        let mut writer = arrow_ipc::writer::StreamWriter::try_new(&mut ipc, bare.schema_ref())
            .map_err(|e| polars_error("writing the batch as Arrow IPC", e))?;
        writer
            .write(&bare)
            .and_then(|()| writer.finish())
            .map_err(|e| polars_error("writing the batch as Arrow IPC", e))?;
    }
    let read = guarded("reading the batch into Polars", || {
        IpcStreamReader::new(Cursor::new(ipc)).finish()
    })?;
    if symbols.is_empty() {
        return Ok(read);
    }
    // The columns back in the batch's order.
    let mut read = read.into_columns().into_iter();
    let mut symbols = symbols.into_iter().peekable();
    let mut columns = Vec::with_capacity(batch.num_columns());
    for i in 0..batch.num_columns() {
        let next = match symbols.next_if(|(at, _)| *at == i) {
            Some((_, symbol)) => Some(symbol),
            None => read.next(),
        };
        columns.extend(next);
    }
    guarded("assembling the batch's DataFrame", || {
        DataFrame::new(batch.num_rows(), columns)
    })
}

/// A SYMBOL column (`Dictionary(UInt32, Utf8)`, as query results carry
/// them) as a categorical of Polars' global categories; `None` for any
/// other column.
fn symbol_column(name: &str, array: &dyn Array) -> Result<Option<Column>> {
    let Some(dictionary) = array.as_any().downcast_ref::<DictionaryArray<UInt32Type>>() else {
        return Ok(None);
    };
    let Some(values) = dictionary.values().as_any().downcast_ref::<StringArray>() else {
        return Ok(None);
    };
    let dtype = PolarsType::from_categories(Categories::global());
    if dtype.cat_physical().ok() != Some(CategoricalPhysical::U32) {
        return Ok(None);
    }
    if values.null_count() > 0 {
        // Polars' own import keeps NULL values NULL.
        return Ok(None);
    }
    guarded("converting a SYMBOL column", || {
        let mapping = dtype.cat_mapping()?;
        // Each value interned when a key first uses it: a sliced batch
        // keeps its whole dictionary, and the global categories are never
        // freed.
        let mut ids: Vec<Option<u32>> = vec![None; values.len()];
        let mut id = |k: u32| -> PolarsResult<u32> {
            let slot = ids
                .get_mut(k as usize)
                .ok_or_else(|| polars_err!(ComputeError: "dictionary key {k} out of range"))?;
            match *slot {
                Some(id) => Ok(id),
                None => {
                    let id = mapping.insert_cat(values.value(k as usize))?;
                    *slot = Some(id);
                    Ok(id)
                }
            }
        };
        let keys = dictionary.keys();
        let physical = match keys.nulls() {
            None => UInt32Chunked::from_vec(
                name.into(),
                keys.values()
                    .iter()
                    .map(|&k| id(k))
                    .collect::<PolarsResult<Vec<u32>>>()?,
            ),
            Some(_) => UInt32Chunked::from_iter_options(
                name.into(),
                keys.iter()
                    .map(|k| k.map(&mut id).transpose())
                    .collect::<PolarsResult<Vec<Option<u32>>>>()?
                    .into_iter(),
            ),
        };
        let categorical =
            CategoricalChunked::<Categorical32Type>::from_cats_and_dtype(physical, dtype);
        Ok(Some(categorical.into_series().into_column()))
    })
}

impl Sender {
    /// Sends a Polars `DataFrame` as deferred frames, as
    /// [`Sender::flush_batch`] sends an Arrow batch (same [`ArrowOptions`]:
    /// table, designated timestamp, type overrides); returns its rows.
    /// Commit with [`Sender::sync`].
    ///
    /// The frame goes whole or not at all: if a slice fails after an
    /// earlier one left, the connection is closed and everything flushed
    /// since the last sync is rolled back ([`ClientError::ChunkAborted`]).
    /// A first slice that fails is handled as [`Sender::flush_batch`]
    /// handles a failing batch: refused before anything was sent, earlier
    /// flushes stay pending; failing after some of its frames left, they
    /// are rolled back too. A frame without rows is checked (columns,
    /// types, timestamp) and sends nothing; a frame without columns but
    /// with rows is refused.
    pub fn flush_dataframe(&mut self, frame: &DataFrame, options: &ArrowOptions) -> Result<u64> {
        if frame.width() == 0 && frame.height() > 0 {
            return Err(polars_error(
                "sending the frame",
                format!("{} rows without a column", frame.height()),
            ));
        }
        if frame.height() == 0 {
            let mut ipc = Vec::new();
            for batch in slice_to_batches(frame.clone(), &mut ipc)? {
                self.flush_batch(&batch, options)?;
            }
            return Ok(0);
        }
        let mut batches = FrameBatches::new(frame);
        let mut rows = 0u64;
        loop {
            let sent = match batches.next_batch() {
                Ok(None) => return Ok(rows),
                Ok(Some(batch)) => self.flush_batch(&batch, options).map(|()| batch.num_rows()),
                Err(e) => Err(e),
            };
            match sent {
                Ok(n) => rows += n as u64,
                Err(e) if rows == 0 => return Err(e),
                Err(e) => return Err(self.abort(1, e)),
            }
        }
    }
}

impl Client {
    /// Sends a Polars `DataFrame` and commits it at `ack`'s level, as one
    /// transaction on a borrowed connection; returns the rows sent. All of
    /// it or nothing: on an error nothing of the frame is committed.
    ///
    /// ```no_run
    /// use polars::prelude::*;
    /// use quiver_client::{Ack, ArrowOptions, Client};
    ///
    /// let client = Client::from_conf("ws::addr=127.0.0.1:9000;")?;
    /// let frame = df!("sym" => ["a", "b"], "px" => [1.5, 2.5])?;
    /// client.send_dataframe(&frame, &ArrowOptions::at_server_time("trades"), Ack::Ok)?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn send_dataframe(
        &self,
        frame: &DataFrame,
        options: &ArrowOptions,
        ack: Ack,
    ) -> Result<u64> {
        let mut sender = self.sender()?;
        let sent = sender
            .flush_dataframe(frame, options)
            .and_then(|rows| sender.sync(ack).map(|()| rows));
        if sent.is_err() {
            sender.discard();
        }
        sent
    }

    /// Collects a Polars `LazyFrame` and sends the result as
    /// [`Client::send_dataframe`] does (the collected frame is held in
    /// memory while it is sent).
    pub fn send_lazyframe(
        &self,
        frame: LazyFrame,
        options: &ArrowOptions,
        ack: Ack,
    ) -> Result<u64> {
        let frame = guarded("collecting the LazyFrame", || frame.collect())?;
        self.send_dataframe(&frame, options, ack)
    }
}

impl Query<'_> {
    /// Runs the query and returns its whole result as one Polars
    /// `DataFrame` (see [`QueryStream::into_dataframe`]).
    ///
    /// ```no_run
    /// use quiver_client::Client;
    ///
    /// let client = Client::from_conf("ws::addr=127.0.0.1:9000;")?;
    /// let frame = client.query("SELECT * FROM trades").fetch_dataframe()?;
    /// println!("{frame}");
    /// # Ok::<(), quiver_client::ClientError>(())
    /// ```
    pub fn fetch_dataframe(self) -> Result<DataFrame> {
        self.fetch()?.into_dataframe()
    }
}

impl QueryStream {
    /// The next batch as a Polars `DataFrame`, `None` after the last.
    pub fn next_dataframe(&mut self) -> Result<Option<DataFrame>> {
        self.next_batch()?
            .map(|batch| batch_to_dataframe(&batch))
            .transpose()
    }

    /// The rest of the result as one Polars `DataFrame` of one chunk per
    /// batch, not rechunked (call `rechunk_mut_par` on it for contiguous
    /// columns, at the cost of a copy); a result without rows is an empty frame with the
    /// result's columns. SYMBOL columns are categoricals; the `questdb.*`
    /// field metadata of the Arrow schema has no place in a `DataFrame`.
    pub fn into_dataframe(mut self) -> Result<DataFrame> {
        let mut whole: Option<DataFrame> = None;
        while let Some(frame) = self.next_dataframe()? {
            match whole.as_mut() {
                None => whole = Some(frame),
                Some(whole) => {
                    guarded("stacking result batches", || {
                        whole.vstack_mut_owned(frame).map(|_| ())
                    })?;
                }
            }
        }
        match whole {
            Some(whole) => Ok(whole),
            None => batch_to_dataframe(&RecordBatch::new_empty(self.schema())),
        }
    }
}
