//! The SQLite sidecar: [`SqliteSidecarBuilder`] and
//! [`SqliteLookupProvider`], the parity oracle for the Feather sidecar on
//! the types SQLite can hold.
//!
//! # Database layout
//!
//! ```text
//! CREATE TABLE quiver_lookup_meta (name TEXT PRIMARY KEY, value BLOB);
//!   -- ('format', '1'), ('schema', <Arrow IPC stream holding only the schema>)
//! CREATE TABLE quiver_lookup_rows (c0 INTEGER PRIMARY KEY, c1 <affinity>, ...);
//! ```
//!
//! `c0` is the key: SQLite's rowid alias, so a lookup is a B-tree seek. It
//! stores the key's `u64`-domain value reinterpreted as `i64` (the key
//! mapping of [`crate::key`]), so every supported key type fits. Columns are
//! named by position, never by the Arrow field name, so no user text reaches
//! SQL. The Arrow schema is stored verbatim, so the provider returns exactly
//! the types it was built with (time zones, Utf8View, Float16, ...).
//!
//! | Arrow type | SQLite storage |
//! |---|---|
//! | Int8..Int64, UInt8..UInt32, Date32/64, Time32/64, Timestamp (any unit, any zone), Duration | INTEGER (the i64 value) |
//! | UInt64 | INTEGER (the bits as i64) |
//! | Float16, Float32, Float64 | REAL (NaN is stored by SQLite as NULL) |
//! | Boolean | INTEGER 0/1 |
//! | Utf8, LargeUtf8, Utf8View | TEXT |
//! | Binary, LargeBinary, BinaryView, FixedSizeBinary | BLOB |
//!
//! Anything else (Decimal, List, Struct, Map, FixedSizeList, Dictionary,
//! Interval, Union, ...) is rejected by [`SqliteSidecarBuilder::begin`] with
//! [`BuildError::UnsupportedType`].
//!
//! # Lookups
//!
//! `SELECT c0, <projection> FROM quiver_lookup_rows WHERE c0 IN rarray(?1)
//! ORDER BY c0` with the sorted, de-duplicated keys bound as one array
//! parameter (rusqlite's `rarray` table-valued function), a cached prepared
//! statement per projection, on a pooled read-only connection inside
//! `tokio::task::spawn_blocking`. SQLite orders `c0` as signed `i64`, so keys
//! at or above 2^63 (negative as `i64`) come first; the rows are rotated
//! into `u64` order afterwards. Connections map the database
//! (`PRAGMA mmap_size`) and keep a 16 MiB page cache each.
//!
//! # Building
//!
//! Rows are inserted in one transaction into a temp file next to the
//! destination (journal off, synchronous off: the file is not live yet),
//! which is then `fsync`ed and renamed over the destination, like the
//! Feather builder. A duplicate key is caught by the primary key.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::{Arc, Mutex};

use arrow::array::{
    Array, ArrayRef, AsArray, BinaryBuilder, BinaryViewBuilder, BooleanArray,
    FixedSizeBinaryBuilder, Float16Array, Float32Array, Float64Array, LargeBinaryBuilder,
    LargeStringBuilder, PrimitiveArray, RecordBatch, RecordBatchOptions, StringBuilder,
    StringViewBuilder, UInt64Array,
};
use arrow::compute::take;
use arrow::datatypes::{ArrowPrimitiveType, Float16Type};
use arrow::datatypes::{
    DataType, Date32Type, Date64Type, DurationMicrosecondType, DurationMillisecondType,
    DurationNanosecondType, DurationSecondType, Int8Type, Int16Type, Int32Type, Int64Type, Schema,
    SchemaRef, Time32MillisecondType, Time32SecondType, Time64MicrosecondType,
    Time64NanosecondType, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow::ipc::reader::StreamReader;
use arrow::ipc::writer::StreamWriter;
use rusqlite::types::{ToSqlOutput, Value, ValueRef};
use rusqlite::{Connection, OpenFlags};
use tempfile::NamedTempFile;
use tokio::sync::Semaphore;

use crate::builder::{check_output_schema, first_null, project_input, publish, temp_location};
use crate::error::{BuildError, FetchError};
use crate::feather::project_schema;
use crate::key::{KeyColumn, KeyType, sorted_unique};

/// `half::f16`, named through Arrow (the crate does not re-export `half`).
type F16 = <Float16Type as ArrowPrimitiveType>::Native;

const ROWS_TABLE: &str = "quiver_lookup_rows";
const META_TABLE: &str = "quiver_lookup_meta";
const FORMAT: &str = "1";
const PROVIDER: &str = "SQLite";
/// Rows per record batch when scanning the whole table.
pub(crate) const SCAN_BATCH_ROWS: usize = 8192;

/// How a column is stored in SQLite.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Storage {
    /// An integer-valued Arrow type stored as its i64 value.
    Int,
    /// UInt64, stored as its bits reinterpreted as i64.
    U64,
    /// Float16/32/64 as REAL.
    Real,
    /// Boolean as 0/1.
    Bool,
    /// Any string type as TEXT.
    Text,
    /// Any binary type as BLOB.
    Blob,
}

impl Storage {
    fn of(data_type: &DataType) -> Result<Self, &'static str> {
        use DataType::*;
        Ok(match data_type {
            Int8
            | Int16
            | Int32
            | Int64
            | UInt8
            | UInt16
            | UInt32
            | Date32
            | Date64
            | Time32(_)
            | Time64(_)
            | Timestamp(_, _)
            | Duration(_) => Self::Int,
            UInt64 => Self::U64,
            Float16 | Float32 | Float64 => Self::Real,
            Boolean => Self::Bool,
            Utf8 | LargeUtf8 | Utf8View => Self::Text,
            Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => Self::Blob,
            Decimal32(..) | Decimal64(..) | Decimal128(..) | Decimal256(..) => {
                return Err("SQLite has no exact decimal type");
            }
            List(_) | LargeList(_) | ListView(_) | LargeListView(_) | FixedSizeList(..) => {
                return Err("SQLite has no list type");
            }
            Struct(_) | Map(..) | Union(..) => return Err("SQLite has no nested types"),
            Dictionary(..) => return Err("SQLite has no dictionary encoding"),
            _ => return Err("no SQLite mapping for this type"),
        })
    }

    fn affinity(self) -> &'static str {
        match self {
            Self::Int | Self::U64 | Self::Bool => "INTEGER",
            Self::Real => "REAL",
            Self::Text => "TEXT",
            Self::Blob => "BLOB",
        }
    }
}

fn sqlite_err(context: &'static str) -> impl Fn(rusqlite::Error) -> BuildError {
    move |source| BuildError::Sqlite { context, source }
}

fn fetch_err(context: &'static str) -> impl Fn(rusqlite::Error) -> FetchError {
    move |source| FetchError::Sqlite { context, source }
}

/// Encodes a schema as an Arrow IPC stream with no batches.
fn schema_bytes(schema: &Schema) -> Result<Vec<u8>, arrow::error::ArrowError> {
    let mut w = StreamWriter::try_new(Vec::new(), schema)?;
    w.finish()?;
    w.into_inner()
}

/// Builds a SQLite sidecar (see the [module docs](self)).
pub struct SqliteSidecarBuilder {
    path: PathBuf,
    dir: PathBuf,
    temp: NamedTempFile,
    /// `None` once finished or poisoned.
    conn: Option<Connection>,
    schema: SchemaRef,
    key_index: usize,
    value_indices: Vec<usize>,
    rows: u64,
}

impl std::fmt::Debug for SqliteSidecarBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSidecarBuilder")
            .field("path", &self.path)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl SqliteSidecarBuilder {
    /// Starts a build of the SQLite sidecar at `path`; same arguments as
    /// [`FeatherSidecarBuilder::begin`](crate::FeatherSidecarBuilder::begin).
    /// Rejects columns SQLite cannot hold.
    pub fn begin(
        path: impl AsRef<Path>,
        schema: SchemaRef,
        key_col_index: usize,
        value_col_indices: &[usize],
    ) -> Result<Self, BuildError> {
        check_output_schema(&schema, value_col_indices.len())?;
        let mut affinities = Vec::with_capacity(schema.fields().len());
        for f in schema.fields().iter().skip(1) {
            let storage =
                Storage::of(f.data_type()).map_err(|reason| BuildError::UnsupportedType {
                    column: f.name().clone(),
                    data_type: f.data_type().clone(),
                    provider: PROVIDER,
                    reason,
                })?;
            affinities.push(storage.affinity());
        }
        let path = path.as_ref().to_path_buf();
        let (dir, prefix) = temp_location(&path);
        let temp = tempfile::Builder::new()
            .prefix(&format!("{prefix}sqlite-build-"))
            .suffix(".tmp")
            .tempfile_in(&dir)
            .map_err(|source| BuildError::Io {
                context: "cannot create a temp file in",
                path: dir.clone(),
                source,
            })?;
        let conn =
            Connection::open(temp.path()).map_err(sqlite_err("opening the temp database"))?;
        let columns: String = affinities
            .iter()
            .enumerate()
            .map(|(i, a)| format!(", c{} {a}", i + 1))
            .collect();
        let schema_blob = schema_bytes(&schema).map_err(|source| BuildError::Arrow {
            context: "encoding the schema",
            source,
        })?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = OFF;
             PRAGMA synchronous = OFF;
             CREATE TABLE {META_TABLE} (name TEXT PRIMARY KEY, value BLOB);
             CREATE TABLE {ROWS_TABLE} (c0 INTEGER PRIMARY KEY{columns});
             BEGIN;"
        ))
        .map_err(sqlite_err("creating tables"))?;
        conn.execute(
            &format!("INSERT INTO {META_TABLE} VALUES ('format', ?1), ('schema', ?2)"),
            rusqlite::params![FORMAT, schema_blob],
        )
        .map_err(sqlite_err("writing the schema"))?;
        Ok(Self {
            path,
            dir,
            temp,
            conn: Some(conn),
            schema,
            key_index: key_col_index,
            value_indices: value_col_indices.to_vec(),
            rows: 0,
        })
    }

    /// Rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// Inserts a batch. Null keys and mismatched columns are rejected
    /// without changing the builder; a duplicate key or SQLite failure
    /// poisons it.
    pub fn push_batch(&mut self, batch: &RecordBatch) -> Result<(), BuildError> {
        if self.conn.is_none() {
            return Err(BuildError::Poisoned);
        }
        let projected = project_input(&self.schema, self.key_index, &self.value_indices, batch)?;
        if let Some(first) = first_null(projected.column(0)) {
            return Err(BuildError::NullKey {
                row: self.rows + first as u64,
            });
        }
        let result = self.insert(&projected);
        if result.is_err() {
            self.conn = None;
        }
        result
    }

    fn insert(&mut self, batch: &RecordBatch) -> Result<(), BuildError> {
        let conn = self.conn.as_ref().expect("checked by caller");
        let keys = KeyColumn::from_array(batch.column(0)).expect("key type checked at begin");
        let cells: Vec<Cells<'_>> = batch.columns()[1..].iter().map(Cells::new).collect();
        let placeholders: String = (1..=batch.num_columns())
            .map(|i| format!("?{i}"))
            .collect::<Vec<_>>()
            .join(", ");
        let mut stmt = conn
            .prepare_cached(&format!("INSERT INTO {ROWS_TABLE} VALUES ({placeholders})"))
            .map_err(sqlite_err("preparing the insert"))?;
        for row in 0..batch.num_rows() {
            let key = keys.get(row);
            stmt.raw_bind_parameter(1, KeyType::to_sqlite(key))
                .map_err(sqlite_err("binding a key"))?;
            for (c, cell) in cells.iter().enumerate() {
                let v = ToSqlOutput::Borrowed(cell.value(row));
                stmt.raw_bind_parameter(c + 2, v)
                    .map_err(sqlite_err("binding a value"))?;
            }
            match stmt.raw_execute() {
                Ok(_) => {}
                Err(e)
                    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ConstraintViolation) =>
                {
                    return Err(BuildError::DuplicateKey { key });
                }
                Err(e) => return Err(sqlite_err("inserting a row")(e)),
            }
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Commits, publishes the file atomically, and opens it.
    pub fn finish(mut self) -> Result<SqliteLookupProvider, BuildError> {
        let conn = self.conn.take().ok_or(BuildError::Poisoned)?;
        conn.execute_batch("COMMIT;")
            .map_err(sqlite_err("committing"))?;
        conn.close()
            .map_err(|(_, e)| sqlite_err("closing the database")(e))?;
        self.temp
            .as_file()
            .sync_all()
            .map_err(|source| BuildError::Io {
                context: "cannot sync",
                path: self.temp.path().to_path_buf(),
                source,
            })?;
        publish(self.temp, &self.path, &self.dir)?;
        SqliteLookupProvider::open(&self.path)
    }
}

/// Reads one column's cells as SQLite values.
enum Cells<'a> {
    Int(Box<dyn Fn(usize) -> i64 + 'a>, &'a dyn Array),
    Real(Box<dyn Fn(usize) -> f64 + 'a>, &'a dyn Array),
    Text(Box<dyn Fn(usize) -> &'a str + 'a>, &'a dyn Array),
    Blob(Box<dyn Fn(usize) -> &'a [u8] + 'a>, &'a dyn Array),
}

impl<'a> Cells<'a> {
    fn new(array: &'a ArrayRef) -> Self {
        use DataType::*;
        macro_rules! int {
            ($t:ty) => {{
                let a = array.as_primitive::<$t>();
                Cells::Int(Box::new(move |i| a.value(i) as i64), array.as_ref())
            }};
        }
        match array.data_type() {
            Int8 => int!(Int8Type),
            Int16 => int!(Int16Type),
            Int32 => int!(Int32Type),
            Int64 => int!(Int64Type),
            UInt8 => int!(UInt8Type),
            UInt16 => int!(UInt16Type),
            UInt32 => int!(UInt32Type),
            UInt64 => int!(UInt64Type),
            Date32 => int!(Date32Type),
            Date64 => int!(Date64Type),
            Time32(TimeUnit::Second) => int!(Time32SecondType),
            Time32(_) => int!(Time32MillisecondType),
            Time64(TimeUnit::Microsecond) => int!(Time64MicrosecondType),
            Time64(_) => int!(Time64NanosecondType),
            Timestamp(TimeUnit::Second, _) => int!(TimestampSecondType),
            Timestamp(TimeUnit::Millisecond, _) => int!(TimestampMillisecondType),
            Timestamp(TimeUnit::Microsecond, _) => int!(TimestampMicrosecondType),
            Timestamp(TimeUnit::Nanosecond, _) => int!(TimestampNanosecondType),
            Duration(TimeUnit::Second) => int!(DurationSecondType),
            Duration(TimeUnit::Millisecond) => int!(DurationMillisecondType),
            Duration(TimeUnit::Microsecond) => int!(DurationMicrosecondType),
            Duration(TimeUnit::Nanosecond) => int!(DurationNanosecondType),
            Boolean => {
                let a = array.as_boolean();
                Cells::Int(Box::new(move |i| i64::from(a.value(i))), array.as_ref())
            }
            Float16 => {
                let a = array.as_primitive::<arrow::datatypes::Float16Type>();
                Cells::Real(Box::new(move |i| a.value(i).to_f64()), array.as_ref())
            }
            Float32 => {
                let a = array.as_primitive::<arrow::datatypes::Float32Type>();
                Cells::Real(Box::new(move |i| f64::from(a.value(i))), array.as_ref())
            }
            Float64 => {
                let a = array.as_primitive::<arrow::datatypes::Float64Type>();
                Cells::Real(Box::new(move |i| a.value(i)), array.as_ref())
            }
            Utf8 => {
                let a = array.as_string::<i32>();
                Cells::Text(Box::new(move |i| a.value(i)), array.as_ref())
            }
            LargeUtf8 => {
                let a = array.as_string::<i64>();
                Cells::Text(Box::new(move |i| a.value(i)), array.as_ref())
            }
            Utf8View => {
                let a = array.as_string_view();
                Cells::Text(Box::new(move |i| a.value(i)), array.as_ref())
            }
            Binary => {
                let a = array.as_binary::<i32>();
                Cells::Blob(Box::new(move |i| a.value(i)), array.as_ref())
            }
            LargeBinary => {
                let a = array.as_binary::<i64>();
                Cells::Blob(Box::new(move |i| a.value(i)), array.as_ref())
            }
            BinaryView => {
                let a = array.as_binary_view();
                Cells::Blob(Box::new(move |i| a.value(i)), array.as_ref())
            }
            FixedSizeBinary(_) => {
                let a = array.as_fixed_size_binary();
                Cells::Blob(Box::new(move |i| a.value(i)), array.as_ref())
            }
            other => unreachable!("type {other} rejected at begin"),
        }
    }

    fn value(&self, row: usize) -> ValueRef<'a> {
        let (array, v): (&dyn Array, _) = match self {
            Cells::Int(f, a) => (
                *a,
                ValueRef::Integer(if a.is_valid(row) { f(row) } else { 0 }),
            ),
            Cells::Real(f, a) => (
                *a,
                ValueRef::Real(if a.is_valid(row) { f(row) } else { 0.0 }),
            ),
            Cells::Text(f, a) => (
                *a,
                if a.is_valid(row) {
                    ValueRef::Text(f(row).as_bytes())
                } else {
                    ValueRef::Null
                },
            ),
            Cells::Blob(f, a) => (
                *a,
                if a.is_valid(row) {
                    ValueRef::Blob(f(row))
                } else {
                    ValueRef::Null
                },
            ),
        };
        if array.is_null(row) {
            ValueRef::Null
        } else {
            v
        }
    }
}

/// Builds one Arrow column from SQLite values.
enum ColumnReader {
    Int(Vec<Option<i64>>),
    Real(Vec<Option<f64>>),
    Utf8(StringBuilder),
    LargeUtf8(LargeStringBuilder),
    Utf8View(StringViewBuilder),
    Binary(BinaryBuilder),
    LargeBinary(LargeBinaryBuilder),
    BinaryView(BinaryViewBuilder),
    FixedSizeBinary(FixedSizeBinaryBuilder, i32),
}

impl ColumnReader {
    fn new(data_type: &DataType, capacity: usize) -> Self {
        use DataType::*;
        match data_type {
            Float16 | Float32 | Float64 => Self::Real(Vec::with_capacity(capacity)),
            Utf8 => Self::Utf8(StringBuilder::with_capacity(capacity, capacity * 16)),
            LargeUtf8 => {
                Self::LargeUtf8(LargeStringBuilder::with_capacity(capacity, capacity * 16))
            }
            Utf8View => Self::Utf8View(StringViewBuilder::with_capacity(capacity)),
            Binary => Self::Binary(BinaryBuilder::with_capacity(capacity, capacity * 16)),
            LargeBinary => {
                Self::LargeBinary(LargeBinaryBuilder::with_capacity(capacity, capacity * 16))
            }
            BinaryView => Self::BinaryView(BinaryViewBuilder::with_capacity(capacity)),
            FixedSizeBinary(n) => {
                Self::FixedSizeBinary(FixedSizeBinaryBuilder::with_capacity(capacity, *n), *n)
            }
            _ => Self::Int(Vec::with_capacity(capacity)),
        }
    }

    fn push(&mut self, v: ValueRef<'_>) -> Result<(), String> {
        fn text(b: &[u8]) -> Result<&str, String> {
            std::str::from_utf8(b).map_err(|e| format!("invalid UTF-8 in TEXT: {e}"))
        }
        match (self, v) {
            (Self::Int(c), ValueRef::Null) => c.push(None),
            (Self::Int(c), ValueRef::Integer(i)) => c.push(Some(i)),
            (Self::Real(c), ValueRef::Null) => c.push(None),
            (Self::Real(c), ValueRef::Real(f)) => c.push(Some(f)),
            (Self::Real(c), ValueRef::Integer(i)) => c.push(Some(i as f64)),
            (Self::Utf8(b), ValueRef::Null) => b.append_null(),
            (Self::Utf8(b), ValueRef::Text(t)) => b.append_value(text(t)?),
            (Self::LargeUtf8(b), ValueRef::Null) => b.append_null(),
            (Self::LargeUtf8(b), ValueRef::Text(t)) => b.append_value(text(t)?),
            (Self::Utf8View(b), ValueRef::Null) => b.append_null(),
            (Self::Utf8View(b), ValueRef::Text(t)) => b.append_value(text(t)?),
            (Self::Binary(b), ValueRef::Null) => b.append_null(),
            (Self::Binary(b), ValueRef::Blob(x)) => b.append_value(x),
            (Self::LargeBinary(b), ValueRef::Null) => b.append_null(),
            (Self::LargeBinary(b), ValueRef::Blob(x)) => b.append_value(x),
            (Self::BinaryView(b), ValueRef::Null) => b.append_null(),
            (Self::BinaryView(b), ValueRef::Blob(x)) => b.append_value(x),
            (Self::FixedSizeBinary(b, _), ValueRef::Null) => b.append_null(),
            (Self::FixedSizeBinary(b, n), ValueRef::Blob(x)) => {
                b.append_value(x).map_err(|_| {
                    format!("BLOB of {} bytes in a FixedSizeBinary({n}) column", x.len())
                })?
            }
            (_, v) => return Err(format!("unexpected SQLite value {:?}", v.data_type())),
        }
        Ok(())
    }

    fn finish(self, data_type: &DataType) -> ArrayRef {
        use DataType::*;
        macro_rules! int {
            ($c:expr, $t:ty, $n:ty) => {
                Arc::new(
                    PrimitiveArray::<$t>::from_iter($c.iter().map(|v| v.map(|x| x as $n)))
                        .with_data_type(data_type.clone()),
                )
            };
        }
        match self {
            Self::Int(c) => match data_type {
                Int8 => int!(c, Int8Type, i8),
                Int16 => int!(c, Int16Type, i16),
                Int32 => int!(c, Int32Type, i32),
                Int64 => int!(c, Int64Type, i64),
                UInt8 => int!(c, UInt8Type, u8),
                UInt16 => int!(c, UInt16Type, u16),
                UInt32 => int!(c, UInt32Type, u32),
                UInt64 => int!(c, UInt64Type, u64),
                Date32 => int!(c, Date32Type, i32),
                Date64 => int!(c, Date64Type, i64),
                Time32(TimeUnit::Second) => int!(c, Time32SecondType, i32),
                Time32(_) => int!(c, Time32MillisecondType, i32),
                Time64(TimeUnit::Microsecond) => int!(c, Time64MicrosecondType, i64),
                Time64(_) => int!(c, Time64NanosecondType, i64),
                Timestamp(TimeUnit::Second, _) => int!(c, TimestampSecondType, i64),
                Timestamp(TimeUnit::Millisecond, _) => int!(c, TimestampMillisecondType, i64),
                Timestamp(TimeUnit::Microsecond, _) => int!(c, TimestampMicrosecondType, i64),
                Timestamp(TimeUnit::Nanosecond, _) => int!(c, TimestampNanosecondType, i64),
                Duration(TimeUnit::Second) => int!(c, DurationSecondType, i64),
                Duration(TimeUnit::Millisecond) => int!(c, DurationMillisecondType, i64),
                Duration(TimeUnit::Microsecond) => int!(c, DurationMicrosecondType, i64),
                Duration(TimeUnit::Nanosecond) => int!(c, DurationNanosecondType, i64),
                Boolean => Arc::new(BooleanArray::from_iter(c.iter().map(|v| v.map(|x| x != 0)))),
                other => unreachable!("{other} is not stored as INTEGER"),
            },
            Self::Real(c) => match data_type {
                Float16 => Arc::new(Float16Array::from_iter(
                    c.iter().map(|v| v.map(F16::from_f64)),
                )),
                Float32 => Arc::new(Float32Array::from_iter(
                    c.iter().map(|v| v.map(|x| x as f32)),
                )),
                _ => Arc::new(Float64Array::from_iter(c.iter().copied())),
            },
            Self::Utf8(mut b) => Arc::new(b.finish()),
            Self::LargeUtf8(mut b) => Arc::new(b.finish()),
            Self::Utf8View(mut b) => Arc::new(b.finish()),
            Self::Binary(mut b) => Arc::new(b.finish()),
            Self::LargeBinary(mut b) => Arc::new(b.finish()),
            Self::BinaryView(mut b) => Arc::new(b.finish()),
            Self::FixedSizeBinary(mut b, _) => Arc::new(b.finish()),
        }
    }
}

/// Shared state of a SQLite provider.
#[derive(Debug)]
struct SqliteInner {
    path: PathBuf,
    schema: SchemaRef,
    key_type: KeyType,
    /// Idle read-only connections.
    pool: Mutex<Vec<Connection>>,
    /// Bounds concurrent queries (and so open connections).
    permits: Arc<Semaphore>,
}

impl SqliteInner {
    fn connect(path: &Path) -> Result<Connection, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        rusqlite::vtab::array::load_module(&conn)?;
        // Map up to 2 GiB (SQLite's compile-time cap) and keep a 16 MiB page
        // cache: give the oracle its fast configuration.
        conn.execute_batch("PRAGMA mmap_size = 2147418112; PRAGMA cache_size = -16384;")?;
        Ok(conn)
    }

    /// Runs `f` on a pooled connection (opening one if none is idle).
    fn with_connection<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, FetchError>,
    ) -> Result<T, FetchError> {
        let idle = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => Self::connect(&self.path).map_err(fetch_err("opening a connection"))?,
        };
        let result = f(&conn);
        self.pool
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(conn);
        result
    }

    /// Projection columns as SQL, always starting with `c0` (the key).
    fn select_list(columns: &[usize]) -> String {
        std::iter::once("c0".to_string())
            .chain(columns.iter().map(|c| format!("c{c}")))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn fetch(
        &self,
        conn: &Connection,
        keys: &[u64],
        columns: &[usize],
        schema: &SchemaRef,
    ) -> Result<Option<RecordBatch>, FetchError> {
        let values: Vec<Value> = keys
            .iter()
            .filter(|&&k| self.key_type.can_hold(k))
            .map(|&k| Value::Integer(KeyType::to_sqlite(k)))
            .collect();
        if values.is_empty() {
            return Ok(None);
        }
        let n = values.len();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {} FROM {ROWS_TABLE} WHERE c0 IN rarray(?1) ORDER BY c0",
                Self::select_list(columns)
            ))
            .map_err(fetch_err("preparing the lookup"))?;
        let mut rows = stmt
            .query([Rc::new(values)])
            .map_err(fetch_err("running the lookup"))?;
        let (sql_keys, batch) = self.read_rows(&mut rows, columns, schema, n, usize::MAX)?;
        let Some(batch) = batch else {
            return Ok(None);
        };
        // SQLite ordered by signed i64; u64 order puts the non-negative
        // half first.
        let split = sql_keys.partition_point(|&k| k < 0);
        if split == 0 || split == sql_keys.len() {
            return Ok(Some(batch));
        }
        let order = UInt64Array::from_iter_values(
            (split..sql_keys.len()).chain(0..split).map(|i| i as u64),
        );
        let columns = batch
            .columns()
            .iter()
            .map(|c| take(c.as_ref(), &order, None))
            .collect::<Result<Vec<_>, _>>()
            .map_err(FetchError::Arrow)?;
        RecordBatch::try_new(batch.schema(), columns)
            .map(Some)
            .map_err(FetchError::Arrow)
    }
}

/// A point-lookup provider over a SQLite sidecar (see the
/// [module docs](self)). Cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteLookupProvider {
    inner: Arc<SqliteInner>,
}

impl SqliteLookupProvider {
    /// Opens a SQLite sidecar written by [`SqliteSidecarBuilder`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, BuildError> {
        let path = path.as_ref().to_path_buf();
        let conn = SqliteInner::connect(&path).map_err(sqlite_err("opening the database"))?;
        let (format, blob): (String, Vec<u8>) = conn
            .query_row(
                &format!(
                    "SELECT (SELECT value FROM {META_TABLE} WHERE name = 'format'), \
                            (SELECT value FROM {META_TABLE} WHERE name = 'schema')"
                ),
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .map_err(sqlite_err("reading the metadata"))?;
        if format != FORMAT {
            return Err(BuildError::Sqlite {
                context: "unsupported sidecar format",
                source: rusqlite::Error::InvalidQuery,
            });
        }
        let schema = StreamReader::try_new(Cursor::new(blob), None)
            .map(|r| r.schema())
            .map_err(|source| BuildError::Arrow {
                context: "decoding the stored schema",
                source,
            })?;
        let key_type = check_output_schema(&schema, schema.fields().len().saturating_sub(1))?;
        for f in schema.fields().iter().skip(1) {
            Storage::of(f.data_type()).map_err(|reason| BuildError::UnsupportedType {
                column: f.name().clone(),
                data_type: f.data_type().clone(),
                provider: PROVIDER,
                reason,
            })?;
        }
        let connections = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2)
            .clamp(2, 8);
        Ok(Self {
            inner: Arc::new(SqliteInner {
                path,
                schema,
                key_type,
                pool: Mutex::new(vec![conn]),
                permits: Arc::new(Semaphore::new(connections)),
            }),
        })
    }

    /// The schema: key column first, then the value columns.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.inner.schema)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Name of the key column.
    pub fn key_column(&self) -> &str {
        self.inner.schema.field(0).name()
    }

    /// Number of rows (a `count(*)`, so O(rows)).
    pub fn len(&self) -> Result<usize, FetchError> {
        self.inner.with_connection(|c| {
            c.query_row(&format!("SELECT count(*) FROM {ROWS_TABLE}"), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as usize)
            .map_err(fetch_err("counting rows"))
        })
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> Result<bool, FetchError> {
        self.len().map(|n| n == 0)
    }

    /// Blocking lookup (the same contract as
    /// [`FeatherLookupProvider::fetch`](crate::FeatherLookupProvider::fetch)).
    pub fn fetch_blocking(
        &self,
        keys: &[u64],
        projection: Option<&[usize]>,
    ) -> Result<Option<RecordBatch>, FetchError> {
        let schema = Arc::new(project_schema(&self.inner.schema, projection)?);
        if keys.is_empty() {
            return Ok(None);
        }
        let columns: Vec<usize> = match projection {
            Some(p) => p.to_vec(),
            None => (0..self.inner.schema.fields().len()).collect(),
        };
        let keys = sorted_unique(keys);
        self.inner
            .with_connection(|c| self.inner.fetch(c, &keys, &columns, &schema))
    }

    /// Async lookup: validates, then runs [`Self::fetch_blocking`] on the
    /// blocking pool, at most one query per pooled connection at a time.
    pub async fn fetch(
        &self,
        keys: &[u64],
        projection: Option<&[usize]>,
    ) -> Result<Option<RecordBatch>, FetchError> {
        project_schema(&self.inner.schema, projection)?;
        if keys.is_empty() {
            return Ok(None);
        }
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|e| FetchError::Task(e.to_string()))?;
        let this = self.clone();
        let keys = keys.to_vec();
        let projection = projection.map(<[usize]>::to_vec);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            this.fetch_blocking(&keys, projection.as_deref())
        })
        .await
        .map_err(|e| FetchError::Task(e.to_string()))?
    }

    /// Streams the whole table in key order (SQLite's signed order), in
    /// batches of up to [`SCAN_BATCH_ROWS`] rows, projected, stopping after
    /// `limit` rows. Blocking.
    pub(crate) fn scan_blocking(
        &self,
        projection: Option<&[usize]>,
        limit: Option<usize>,
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> Result<(), FetchError> {
        let schema = Arc::new(project_schema(&self.inner.schema, projection)?);
        let columns: Vec<usize> = match projection {
            Some(p) => p.to_vec(),
            None => (0..self.inner.schema.fields().len()).collect(),
        };
        let limit = limit.map_or(-1, |l| l as i64);
        self.inner.with_connection(|c| {
            let mut stmt = c
                .prepare(&format!(
                    "SELECT {} FROM {ROWS_TABLE} ORDER BY c0 LIMIT ?1",
                    SqliteInner::select_list(&columns)
                ))
                .map_err(fetch_err("preparing the scan"))?;
            let mut rows = stmt.query([limit]).map_err(fetch_err("running the scan"))?;
            loop {
                let (_, batch) = self.inner.read_rows(
                    &mut rows,
                    &columns,
                    &schema,
                    SCAN_BATCH_ROWS,
                    SCAN_BATCH_ROWS,
                )?;
                match batch {
                    Some(b) => {
                        if !emit(b) {
                            return Ok(());
                        }
                    }
                    None => return Ok(()),
                }
            }
        })
    }
}

impl SqliteInner {
    /// Reads up to `max` rows of a result whose first column is the key and
    /// the rest are `columns`, into a batch of `schema`. Returns the keys
    /// (as stored) too.
    fn read_rows(
        &self,
        rows: &mut rusqlite::Rows<'_>,
        columns: &[usize],
        schema: &SchemaRef,
        capacity: usize,
        max: usize,
    ) -> Result<(Vec<i64>, Option<RecordBatch>), FetchError> {
        let mut readers: Vec<ColumnReader> = columns
            .iter()
            .map(|&c| ColumnReader::new(self.schema.field(c).data_type(), capacity))
            .collect();
        let mut keys = Vec::with_capacity(capacity);
        while keys.len() < max {
            let Some(row) = rows.next().map_err(fetch_err("reading a row"))? else {
                break;
            };
            keys.push(row.get::<_, i64>(0).map_err(fetch_err("reading a key"))?);
            for (i, r) in readers.iter_mut().enumerate() {
                let v = row.get_ref(i + 1).map_err(fetch_err("reading a value"))?;
                r.push(v).map_err(|reason| FetchError::SqliteValue {
                    column: self.schema.field(columns[i]).name().clone(),
                    reason,
                })?;
            }
        }
        if keys.is_empty() {
            return Ok((keys, None));
        }
        let arrays: Vec<ArrayRef> = readers
            .into_iter()
            .zip(columns)
            .map(|(r, &c)| r.finish(self.schema.field(c).data_type()))
            .collect();
        let options = RecordBatchOptions::new().with_row_count(Some(keys.len()));
        let batch = RecordBatch::try_new_with_options(Arc::clone(schema), arrays, &options)
            .map_err(FetchError::Arrow)?;
        Ok((keys, Some(batch)))
    }
}
