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
//! next to the Arrow path). A `LazyFrame` is collected first.
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

use std::collections::VecDeque;
use std::fmt::Display;
use std::io::Cursor;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use ::polars::prelude::{
    Categorical32Type, CategoricalChunked, CategoricalPhysical, Categories, Column, DataFrame,
    DataType as PolarsType, IntoColumn, IntoSeries, IpcStreamReader, IpcStreamWriter, LazyFrame,
    NewChunkedArray, PolarsResult, SerReader, SerWriter, UInt32Chunked,
};
use arrow_array::types::UInt32Type;
use arrow_array::{Array, DictionaryArray, RecordBatch, RecordBatchOptions, StringArray};
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
            let mut slice = self.frame.slice(offset, len);
            self.offset += len;
            self.ipc.clear();
            let ipc = &mut self.ipc;
            guarded("writing the frame as Arrow", || {
                IpcStreamWriter::new(ipc).finish(&mut slice)
            })?;
            let reader =
                arrow_ipc::reader::StreamReader::try_new(Cursor::new(self.ipc.as_slice()), None)
                    .map_err(|e| polars_error("reading the frame as Arrow", e))?;
            for batch in reader {
                let batch = batch.map_err(|e| polars_error("reading the frame as Arrow", e))?;
                if batch.num_rows() > 0 {
                    self.ready.push_back(batch);
                }
            }
        }
    }
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
    guarded("converting a SYMBOL column", || {
        let mapping = dtype.cat_mapping()?;
        let ids = values
            .iter()
            .map(|v| mapping.insert_cat(v.unwrap_or_default()))
            .collect::<PolarsResult<Vec<u32>>>()?;
        let keys = dictionary.keys();
        // Keys are inside the dictionary (Arrow checks it); an id Polars
        // does not know would become NULL (`from_cats_and_dtype` checks).
        let id = |k: u32| ids.get(k as usize).copied().unwrap_or(u32::MAX);
        let physical = match keys.nulls() {
            None => {
                UInt32Chunked::from_vec(name.into(), keys.values().iter().map(|&k| id(k)).collect())
            }
            Some(_) => {
                UInt32Chunked::from_iter_options(name.into(), keys.iter().map(|k| k.map(id)))
            }
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
    /// If the first slice fails, nothing was sent and earlier flushes stay
    /// pending.
    pub fn flush_dataframe(&mut self, frame: &DataFrame, options: &ArrowOptions) -> Result<u64> {
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
    /// batch (`rechunk_mut_par` makes each column contiguous, at the cost
    /// of a copy); a result without rows is an empty frame with the
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
