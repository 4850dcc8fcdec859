//! Interop: the official Rust client `questdb-rs` 7.2 against a real
//! `quiver serve`, value by value.
//!
//! - the row API (`Sender` + `Buffer` over `ws::`) with every column type it
//!   offers, NULLs, several tables in one frame, several flushes;
//! - the column-major `Chunk` API through a `QuestDb` pool, including a
//!   chunk the client must split over several frames;
//! - Arrow `RecordBatch` ingestion (pool sender, one-call pool flush and
//!   `Chunk::push_arrow_column`);
//! - durable acks (`request_durable_ack=on`, `AckLevel::Durable`).
//!
//! Every expectation is computed from the constants that were sent; stored
//! rows are read back through `quiver-storage` (read-only). Every table is
//! then read back with `SELECT *` through the client's reader at default
//! settings (`/read/v1`), as Arrow batches and as native batch views
//! (`ColumnView` per column), which must return the stored types and values.

mod common;

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, DictionaryArray, FixedSizeBinaryArray, Float64Array,
    Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampNanosecondArray, UInt16Array, UInt32Array,
};
use arrow::compute::concat_batches;
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Decimal64Type, Decimal128Type, Decimal256Type, Field,
    Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type, Schema, TimeUnit,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, UInt16Type,
    UInt32Type, i256,
};
use questdb::ingress::column_sender::{ArrowColumnOverride, Chunk, Validity};
use questdb::ingress::{
    AckLevel, Buffer, ColumnName, QwpWsErrorHandler, Sender, TimestampMicros, TimestampNanos,
    TimestampUnit,
};
use questdb::{ConnectHandlers, QuestDb};
use quiver_storage::{ColumnType, TableSchema};

use common::TestServer;

/// No-progress deadline for every ack wait.
const ACK_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Reading what was stored
// ---------------------------------------------------------------------------

/// One table as stored: its schema and every row in row-id order.
struct Stored {
    name: String,
    schema: Arc<TableSchema>,
    batch: RecordBatch,
}

/// Reads `name` through a fresh read-only open of the server's data dir.
fn read_table(server: &TestServer, name: &str) -> Stored {
    let db = server.storage();
    let snap = db.snapshot(name).unwrap_or_else(|| {
        panic!(
            "table {name} does not exist; server log:\n{}",
            server.log_text()
        )
    });
    let schema = snap.read_schema(false);
    let batches = snap.collect(false).expect("scan table");
    let batch = concat_batches(&schema, &batches).expect("concat batches");
    assert_eq!(
        batch.num_rows() as u64,
        snap.row_count(),
        "{name}: scanned rows vs row_count()"
    );
    Stored {
        name: name.to_string(),
        schema: snap.schema().clone(),
        batch,
    }
}

impl Stored {
    fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    fn column_names(&self) -> Vec<String> {
        self.schema.columns.iter().map(|c| c.name.clone()).collect()
    }

    fn col(&self, c: &str) -> &ArrayRef {
        let i = self.batch.schema().index_of(c).unwrap_or_else(|_| {
            panic!(
                "{}: no column {c}; columns: {:?}",
                self.name,
                self.column_names()
            )
        });
        self.batch.column(i)
    }

    /// The stored column type.
    fn ty(&self, c: &str) -> ColumnType {
        let i = self.schema.column_index(c).unwrap_or_else(|| {
            panic!(
                "{}: no column {c}; columns: {:?}",
                self.name,
                self.column_names()
            )
        });
        self.schema.columns[i].column_type
    }

    /// Name and type of the designated timestamp.
    fn designated(&self) -> (String, ColumnType) {
        let i = self
            .schema
            .designated_timestamp
            .unwrap_or_else(|| panic!("{}: no designated timestamp", self.name));
        let c = &self.schema.columns[i];
        (c.name.clone(), c.column_type)
    }

    fn prim<T: ArrowPrimitiveType>(&self, c: &str) -> Vec<Option<T::Native>> {
        let a = self.col(c);
        a.as_primitive_opt::<T>()
            .unwrap_or_else(|| panic!("{}.{c}: unexpected Arrow type {}", self.name, a.data_type()))
            .iter()
            .collect()
    }

    fn i64s(&self, c: &str) -> Vec<Option<i64>> {
        self.prim::<Int64Type>(c)
    }

    fn f64s(&self, c: &str) -> Vec<Option<f64>> {
        self.prim::<Float64Type>(c)
    }

    /// VARCHAR or SYMBOL values as text.
    fn strs(&self, c: &str) -> Vec<Option<String>> {
        let a = self.col(c);
        let a = match a.data_type() {
            DataType::Dictionary(_, _) => arrow::compute::cast(a, &DataType::Utf8).expect("cast"),
            DataType::Utf8 => a.clone(),
            other => panic!("{}.{c}: not text but {other}", self.name),
        };
        a.as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect()
    }

    fn bools(&self, c: &str) -> Vec<Option<bool>> {
        self.col(c).as_boolean().iter().collect()
    }

    fn fixed(&self, c: &str) -> Vec<Option<Vec<u8>>> {
        self.col(c)
            .as_fixed_size_binary()
            .iter()
            .map(|v| v.map(<[u8]>::to_vec))
            .collect()
    }

    fn binary(&self, c: &str) -> Vec<Option<Vec<u8>>> {
        self.col(c)
            .as_binary::<i32>()
            .iter()
            .map(|v| v.map(<[u8]>::to_vec))
            .collect()
    }

    /// A rank-1 DOUBLE array column.
    fn f64_lists(&self, c: &str) -> Vec<Option<Vec<f64>>> {
        self.col(c)
            .as_list::<i32>()
            .iter()
            .map(|row| row.map(|v| v.as_primitive::<Float64Type>().values().to_vec()))
            .collect()
    }

    /// A rank-2 DOUBLE array column.
    fn f64_lists2(&self, c: &str) -> Vec<Option<Vec<Vec<f64>>>> {
        self.col(c)
            .as_list::<i32>()
            .iter()
            .map(|row| {
                row.map(|outer| {
                    outer
                        .as_list::<i32>()
                        .iter()
                        .map(|inner| {
                            inner
                                .expect("inner array")
                                .as_primitive::<Float64Type>()
                                .values()
                                .to_vec()
                        })
                        .collect()
                })
            })
            .collect()
    }

    /// A rank-1 LONG array column.
    fn i64_lists(&self, c: &str) -> Vec<Option<Vec<i64>>> {
        self.col(c)
            .as_list::<i32>()
            .iter()
            .map(|row| row.map(|v| v.as_primitive::<Int64Type>().values().to_vec()))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Client helpers
// ---------------------------------------------------------------------------

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// A pool (default settings otherwise), recording every server rejection.
fn pool(server: &TestServer, extra: &str) -> (QuestDb, Arc<Mutex<Vec<String>>>) {
    let conf = format!("ws::addr={};{extra}", server.addr());
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = errors.clone();
    let mut handlers = ConnectHandlers::default();
    handlers.error_handler = Some(QwpWsErrorHandler::new(move |e| {
        sink.lock().unwrap().push(format!("{e:?}"))
    }));
    let db = QuestDb::connect_with_handlers(&conf, handlers).unwrap_or_else(|e| {
        panic!(
            "QuestDb::connect({conf}): {e}; server log:\n{}",
            server.log_text()
        )
    });
    (db, errors)
}

fn assert_no_rejections(errors: &Mutex<Vec<String>>, server: &TestServer) {
    let errors = errors.lock().unwrap();
    assert!(
        errors.is_empty(),
        "server rejections: {errors:?}; server log:\n{}",
        server.log_text()
    );
}

/// An LSB-first validity bitmap (1 = valid).
fn bitmap(valid: &[bool]) -> Vec<u8> {
    let mut out = vec![0u8; valid.len().div_ceil(8)];
    for (i, v) in valid.iter().enumerate() {
        if *v {
            out[i / 8] |= 1 << (i % 8);
        }
    }
    out
}

/// Arrow Utf8 layout (offsets, bytes) of optional strings; NULLs are empty.
fn utf8_layout(values: &[Option<&str>]) -> (Vec<i32>, Vec<u8>) {
    let mut offsets = vec![0i32];
    let mut bytes = Vec::new();
    for v in values {
        if let Some(s) = v {
            bytes.extend_from_slice(s.as_bytes());
        }
        offsets.push(bytes.len() as i32);
    }
    (offsets, bytes)
}

/// Arrow Utf8 layout of a dictionary.
fn dict_layout(entries: &[&str]) -> (Vec<i32>, Vec<u8>) {
    let values: Vec<Option<&str>> = entries.iter().map(|s| Some(*s)).collect();
    utf8_layout(&values)
}

fn opt_strings(values: &[Option<&str>]) -> Vec<Option<String>> {
    values.iter().map(|v| v.map(str::to_owned)).collect()
}

/// RFC 4122 bytes of the row API's `(lo, hi)` UUID halves (`hi` holds the
/// most significant bits).
fn uuid_rfc(lo: u64, hi: u64) -> Vec<u8> {
    (((hi as u128) << 64) | lo as u128).to_be_bytes().to_vec()
}

/// An unscaled decimal from its digits.
fn i256_of(digits: &str) -> i256 {
    i256::from_string(digits).unwrap_or_else(|| panic!("bad digits {digits}"))
}

// ---------------------------------------------------------------------------
// Reading back through the client's reader (egress)
// ---------------------------------------------------------------------------

/// The client's name (`questdb.column_type` field metadata) of a stored
/// column type.
fn client_kind_name(t: ColumnType) -> &'static str {
    match t {
        ColumnType::Boolean => "boolean",
        ColumnType::Byte => "byte",
        ColumnType::Short => "short",
        ColumnType::Char => "char",
        ColumnType::Int => "int",
        ColumnType::Long => "long",
        ColumnType::Float => "float",
        ColumnType::Double => "double",
        ColumnType::Symbol => "symbol",
        ColumnType::Timestamp => "timestamp",
        ColumnType::TimestampNanos => "timestamp_nanos",
        ColumnType::Date => "date",
        ColumnType::Uuid => "uuid",
        ColumnType::Long256 => "long256",
        ColumnType::Geohash(_) => "geohash",
        ColumnType::Varchar => "varchar",
        ColumnType::Binary => "binary",
        ColumnType::Ipv4 => "ipv4",
        ColumnType::Decimal64(_) => "decimal64",
        ColumnType::Decimal128(_) => "decimal128",
        ColumnType::Decimal256(_) => "decimal256",
        ColumnType::DoubleArray(_) => "double_array",
        ColumnType::LongArray(_) => "long_array",
    }
}

/// Each cell of a column as text, in a form both sides share: SYMBOL
/// dictionaries decoded, timestamps and dates as their integer value
/// (the client adds a UTC zone), everything else as Arrow displays it
/// (decimals by value, whatever their precision).
fn cells(array: &ArrayRef) -> Vec<String> {
    use arrow::util::display::{ArrayFormatter, FormatOptions};
    let normalized = match array.data_type() {
        DataType::Dictionary(_, _) => arrow::compute::cast(array, &DataType::Utf8).expect("cast"),
        DataType::Timestamp(_, _) | DataType::Date64 => {
            arrow::compute::cast(array, &DataType::Int64).expect("cast")
        }
        _ => array.clone(),
    };
    let options = FormatOptions::default().with_null("NULL");
    let f = ArrayFormatter::try_new(normalized.as_ref(), &options).expect("formatter");
    (0..normalized.len())
        .map(|i| f.value(i).to_string())
        .collect()
}

/// A stored array cell as `shape:values` (rectangular nested lists,
/// row-major), `NULL` for a NULL row.
fn stored_array_cells(array: &ArrayRef) -> Vec<String> {
    fn flatten(
        a: &dyn Array,
        row: usize,
        shape: &mut Vec<usize>,
        depth: usize,
        out: &mut Vec<String>,
    ) {
        match a.data_type() {
            DataType::List(_) => {
                let inner = a.as_list::<i32>().value(row);
                if shape.len() <= depth {
                    shape.push(inner.len());
                }
                for i in 0..inner.len() {
                    flatten(inner.as_ref(), i, shape, depth + 1, out);
                }
            }
            DataType::Float64 => {
                out.push(format!("{:?}", a.as_primitive::<Float64Type>().value(row)))
            }
            DataType::Int64 => out.push(a.as_primitive::<Int64Type>().value(row).to_string()),
            other => panic!("array leaf {other}"),
        }
    }
    (0..array.len())
        .map(|row| {
            if array.is_null(row) {
                return "NULL".to_string();
            }
            let (mut shape, mut values) = (Vec::new(), Vec::new());
            flatten(array.as_ref(), row, &mut shape, 0, &mut values);
            format!("{shape:?}:{values:?}")
        })
        .collect()
}

/// One column of a native `BatchView` as an Arrow array of the stored
/// read type (so both sides print through [`cells`]), or as array cells.
fn native_cells(
    view: &questdb::egress::ColumnView<'_>,
    rows: usize,
    stored: &DataType,
) -> Vec<String> {
    use questdb::egress::ColumnView as V;
    let arr: ArrayRef = match view {
        V::Boolean(c) => Arc::new(BooleanArray::from_iter(
            (0..rows).map(|r| Some(c.value(r) != 0)),
        )),
        V::Byte(c) => Arc::new(arrow::array::Int8Array::from_iter(
            (0..rows).map(|r| Some(c.value(r))),
        )),
        V::Short(c) => Arc::new(arrow::array::Int16Array::from_iter(
            (0..rows).map(|r| Some(c.value(r))),
        )),
        V::Char(c) => Arc::new(UInt16Array::from_iter((0..rows).map(|r| Some(c.value(r))))),
        V::Int(c) => Arc::new(Int32Array::from_iter(
            (0..rows).map(|r| (!c.is_null(r)).then(|| c.value(r))),
        )),
        V::Long(c) | V::Timestamp(c) | V::TimestampNanos(c) | V::Date(c) => Arc::new(
            Int64Array::from_iter((0..rows).map(|r| (!c.is_null(r)).then(|| c.value(r)))),
        ),
        V::Float(c) => Arc::new(arrow::array::Float32Array::from_iter(
            (0..rows).map(|r| (!c.is_null(r)).then(|| c.value(r))),
        )),
        V::Double(c) => Arc::new(Float64Array::from_iter(
            (0..rows).map(|r| (!c.is_null(r)).then(|| c.value(r))),
        )),
        V::Ipv4(c) => Arc::new(UInt32Array::from_iter(
            (0..rows).map(|r| (!c.is_null(r)).then(|| c.value(r))),
        )),
        V::Symbol(c) => Arc::new(StringArray::from_iter((0..rows).map(|r| c.resolve(r)))),
        V::Varchar(c) => Arc::new(StringArray::from_iter((0..rows).map(|r| c.value(r)))),
        V::Binary(c) => Arc::new(arrow::array::BinaryArray::from_iter(
            (0..rows).map(|r| c.value(r)),
        )),
        V::Uuid(c) => Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                (0..rows).map(|r| (!c.is_null(r)).then(|| c.value(r).to_vec())),
                16,
            )
            .unwrap(),
        ),
        V::Long256(c) => Arc::new(
            FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                (0..rows).map(|r| (!c.is_null(r)).then(|| c.value(r).to_vec())),
                32,
            )
            .unwrap(),
        ),
        V::Geohash(c) => {
            Arc::new(Int64Array::from_iter((0..rows).map(|r| {
                (!c.is_null(r)).then(|| i64::try_from(c.value(r)).unwrap())
            })))
        }
        V::Decimal64(c) => {
            let a = arrow::array::Decimal64Array::from_iter(
                (0..rows).map(|r| (!c.is_null(r)).then(|| c.value(r))),
            );
            Arc::new(a.with_data_type(stored.clone()))
        }
        V::Decimal128(c) => {
            let a = arrow::array::Decimal128Array::from_iter(
                (0..rows).map(|r| (!c.is_null(r)).then(|| c.value(r))),
            );
            Arc::new(a.with_data_type(stored.clone()))
        }
        V::Decimal256(c) => {
            let a = arrow::array::Decimal256Array::from_iter(
                (0..rows).map(|r| (!c.is_null(r)).then(|| i256::from_le_bytes(*c.value(r)))),
            );
            Arc::new(a.with_data_type(stored.clone()))
        }
        V::DoubleArray(c) => {
            return (0..rows)
                .map(|r| match c.shape(r) {
                    None => "NULL".to_string(),
                    Some(shape) => {
                        let shape: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
                        let values: Vec<String> = (0..c.element_count(r))
                            .map(|i| format!("{:?}", c.element(r, i).unwrap()))
                            .collect();
                        format!("{shape:?}:{values:?}")
                    }
                })
                .collect();
        }
        V::LongArray(c) => {
            return (0..rows)
                .map(|r| match c.shape(r) {
                    None => "NULL".to_string(),
                    Some(shape) => {
                        let shape: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
                        let values: Vec<String> = (0..c.element_count(r))
                            .map(|i| c.element(r, i).unwrap().to_string())
                            .collect();
                        format!("{shape:?}:{values:?}")
                    }
                })
                .collect();
        }
        other => panic!("a column view this test does not know: {:?}", other.kind()),
    };
    cells(&arr)
}

/// Reads `table` with `SELECT *` through the client's native batch views
/// (`Cursor::next_batch`, one `ColumnView` per column) and asserts every
/// value equals what storage holds.
fn assert_native_views_match_storage(server: &TestServer, table: &str, stored: &Stored) {
    let conf = format!("ws::addr={};", server.addr());
    let db = QuestDb::connect(&conf).unwrap_or_else(|e| panic!("connect {conf}: {e}"));
    let mut reader = db.borrow_reader().expect("borrow reader");
    let mut cursor = reader
        .execute(format!("SELECT * FROM {table}"))
        .unwrap_or_else(|e| panic!("{table}: query: {e}"));
    let names = stored.column_names();
    let mut got: Vec<Vec<String>> = vec![Vec::new(); names.len()];
    while let Some(batch) = cursor.next_batch().expect("next_batch") {
        assert_eq!(
            batch.column_count(),
            names.len(),
            "{table}: native column count"
        );
        for (i, cells_of) in got.iter_mut().enumerate() {
            let view = batch.column(i).expect("column view");
            let stored_type = stored.col(&names[i]).data_type().clone();
            cells_of.extend(native_cells(&view, batch.row_count(), &stored_type));
        }
    }
    for (i, name) in names.iter().enumerate() {
        let want = match stored.ty(name) {
            ColumnType::DoubleArray(_) | ColumnType::LongArray(_) => {
                stored_array_cells(stored.col(name))
            }
            ColumnType::Boolean => cells(stored.col(name))
                .into_iter()
                .map(|c| if c == "NULL" { "false".into() } else { c })
                .collect(),
            ColumnType::Byte | ColumnType::Short | ColumnType::Char => cells(stored.col(name))
                .into_iter()
                .map(|c| if c == "NULL" { "0".into() } else { c })
                .collect(),
            _ => cells(stored.col(name)),
        };
        assert_eq!(got[i].len(), want.len(), "{table}.{name}: native rows");
        for (row, (g, w)) in got[i].iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{table}.{name}[{row}]: native view vs stored");
        }
    }
}

/// Reads `table` back with `SELECT *` through the client's pooled reader
/// (default settings) and asserts the same columns, in the same order,
/// with the QuestDB types and the values storage holds, through its Arrow
/// batches and through its native batch views.
fn assert_query_matches_storage(server: &TestServer, table: &str) {
    let stored = read_table(server, table);
    let conf = format!("ws::addr={};", server.addr());
    let db = QuestDb::connect(&conf).unwrap_or_else(|e| panic!("connect {conf}: {e}"));
    let mut reader = db.borrow_reader().expect("borrow reader");
    let mut cursor = reader
        .execute(format!("SELECT * FROM {table}"))
        .unwrap_or_else(|e| panic!("{table}: query: {e}; log:\n{}", server.log_text()));
    let (schema, batches) = cursor
        .fetch_all_arrow()
        .unwrap_or_else(|e| panic!("{table}: fetch: {e}; log:\n{}", server.log_text()));
    let got = concat_batches(&schema, &batches).expect("concat");
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    assert_eq!(names, stored.column_names(), "{table}: columns");
    assert_eq!(got.num_rows(), stored.rows(), "{table}: rows");
    for (i, field) in schema.fields().iter().enumerate() {
        let name = field.name();
        let kind = field
            .metadata()
            .get("questdb.column_type")
            .map(String::as_str);
        assert_eq!(
            kind,
            Some(client_kind_name(stored.ty(name))),
            "{table}.{name}: type"
        );
        let (got, want) = (cells(got.column(i)), cells(stored.col(name)));
        for (row, (g, w)) in got.iter().zip(&want).enumerate() {
            assert_eq!(g, w, "{table}.{name}[{row}]: queried vs stored");
        }
    }
    assert_native_views_match_storage(server, table, &stored);
}

// ---------------------------------------------------------------------------
// 1. Row API
// ---------------------------------------------------------------------------

const T_ROW: &str = "row_types";
const T_ROW_US: &str = "row_micros";
const T_ROW_NOW: &str = "row_now";

const TS_NS_BASE: i64 = 1_717_000_000_000_000_000;
const TS_US_BASE: i64 = 1_717_100_000_000_000;

const R_SYM: [Option<&str>; 3] = [Some("alpha"), None, Some("βeta ü € 🚀")];
const R_BOOL: [Option<bool>; 3] = [Some(true), None, Some(false)];
const R_I8: [Option<i8>; 3] = [Some(-7), None, Some(i8::MAX)];
const R_I16: [Option<i16>; 3] = [Some(-300), None, Some(i16::MIN)];
const R_I32: [Option<i32>; 3] = [Some(-123_456), None, Some(i32::MAX)];
const R_I64: [Option<i64>; 3] = [Some(i64::MAX), None, Some(-42)];
const R_F32: [Option<f32>; 3] = [Some(1.5), None, Some(-0.25)];
const R_F64: [Option<f64>; 3] = [Some(std::f64::consts::PI), None, Some(-1.0e300)];
const R_STR: [Option<&str>; 3] = [Some("héllo wörld ✓ 日本語 🚀"), None, Some("")];
const R_TS_US: [Option<i64>; 3] = [Some(1_700_000_000_123_456), None, Some(0)];
const R_TS_NS: [Option<i64>; 3] = [Some(1_700_000_000_123_456_789), None, Some(1)];
const R_DATE: [Option<i64>; 3] = [Some(1_700_000_000_123), None, Some(-86_400_000)];
const R_UUID: [Option<(u64, u64)>; 3] = [
    Some((0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210)),
    None,
    Some((1, 2)),
];
const R_IP: [Option<Ipv4Addr>; 3] = [
    Some(Ipv4Addr::new(192, 168, 1, 42)),
    None,
    Some(Ipv4Addr::new(255, 255, 255, 255)),
];
const R_CHAR: [Option<u16>; 3] = [Some(0x0416 /* Ж */), None, Some(b'A' as u16)];
const GEO_BITS: u8 = 25;
const R_GEO: [Option<u64>; 3] = [Some(0x1AB_CDEF), None, Some(0)];
/// Byte-aligned precision with an all-ones value: must not read as NULL.
const GEO8_BITS: u8 = 8;
const R_GEO8: [u64; 3] = [0xFF, 0x00, 0x5A];
const R_BIN: [Option<&[u8]>; 3] = [Some(&[0, 1, 2, 0xFF, 0]), None, Some(&[])];
/// `"NaN"` is the row API's explicit NULL decimal.
const R_DEC64: [&str; 3] = ["123.45", "NaN", "-7.5"];
const R_DEC128: [Option<&str>; 3] = [Some("12345678901234567890.123456"), None, Some("-1")];
const R_DEC256: [Option<&str>; 3] = [
    Some("98765432109876543210987654321098765432.1"),
    None,
    Some("0.5"),
];

fn r_long256(row: usize) -> Option<[u8; 32]> {
    match row {
        0 => Some(std::array::from_fn(|i| i as u8 + 1)),
        1 => None,
        _ => Some([0xAB; 32]),
    }
}

fn r_arr(row: usize) -> Option<Vec<f64>> {
    match row {
        0 => Some(vec![1.0, 2.5, -3.0]),
        1 => None,
        _ => Some(vec![4.0]),
    }
}

fn r_arr2(row: usize) -> Option<Vec<Vec<f64>>> {
    match row {
        0 => Some(vec![vec![1.0, 2.0], vec![3.0, 4.0]]),
        1 => None,
        _ => Some(vec![vec![5.0, 6.0, 7.0]]),
    }
}

const US_SYM: [&str; 3] = ["alpha", "gamma", "alpha"];
const US_QTY: [i64; 3] = [10, 20, 30];
const US_PX: [f64; 3] = [100.25, 99.5, 101.0];
/// Rows of the second flush to `row_micros`, which adds a column.
const US2_SYM: [&str; 2] = ["delta", "gamma"];
const US2_QTY: [i64; 2] = [40, 50];
const US2_PX: [f64; 2] = [102.5, 98.0];
const US2_NOTE: [&str; 2] = ["late column ✓", "zweite Zeile"];

fn fill_row_types(buf: &mut Buffer, row: usize) -> questdb::Result<()> {
    buf.table(T_ROW)?
        .symbol_opt("sym", R_SYM[row])?
        .column_bool_opt("flag", R_BOOL[row])?
        .column_i8_opt("i8", R_I8[row])?
        .column_i16_opt("i16", R_I16[row])?
        .column_i32_opt("i32", R_I32[row])?
        .column_i64_opt("i64", R_I64[row])?
        .column_f32_opt("f32", R_F32[row])?
        .column_f64_opt("f64", R_F64[row])?
        .column_str_opt("s", R_STR[row])?
        .column_ts_opt("ts_us", R_TS_US[row].map(TimestampMicros::new))?
        .column_ts_opt("ts_ns", R_TS_NS[row].map(TimestampNanos::new))?
        .column_date_opt("dt", R_DATE[row])?
        .column_uuid_opt("u", R_UUID[row])?
        .column_long256_opt("l256", r_long256(row).as_ref())?
        .column_ipv4_opt("ip", R_IP[row])?
        .column_char_opt("ch", R_CHAR[row])?
        .column_geohash_opt("geo", R_GEO[row].map(|g| (g, GEO_BITS)))?
        .column_geohash("geo8", R_GEO8[row], GEO8_BITS)?
        .column_binary_opt("bin", R_BIN[row])?
        .column_dec64("dec64", R_DEC64[row])?
        .column_dec128_opt("dec128", R_DEC128[row])?
        .column_dec_opt("dec256", R_DEC256[row])?
        .column_arr_opt("arr", r_arr(row).as_ref())?
        .column_arr_opt("arr2", r_arr2(row).as_ref())?
        .at(TimestampNanos::new(TS_NS_BASE + row as i64 * 1_000))
}

#[test]
fn row_api_every_column_type_several_tables_and_flushes() {
    let server = TestServer::start();
    let conf = format!("ws::addr={};", server.addr());
    let mut sender = Sender::from_conf(&conf)
        .unwrap_or_else(|e| panic!("Sender::from_conf: {e}; log:\n{}", server.log_text()));
    let mut buf = sender.new_buffer();

    // Three tables interleaved in one buffer (one frame).
    let before_now = now_micros();
    for row in 0..3 {
        fill_row_types(&mut buf, row).unwrap();
        buf.table(T_ROW_US)
            .unwrap()
            .symbol("sym", US_SYM[row])
            .unwrap()
            .column_i64("qty", US_QTY[row])
            .unwrap()
            .column_f64("px", US_PX[row])
            .unwrap()
            .at(TimestampMicros::new(TS_US_BASE + row as i64))
            .unwrap();
        if row < 2 {
            buf.table(T_ROW_NOW)
                .unwrap()
                .column_i64("n", row as i64 + 1)
                .unwrap()
                .at_now()
                .unwrap();
        }
    }
    assert_eq!(buf.row_count(), 8);
    sender.flush(&mut buf).expect("flush 1");
    assert!(buf.is_empty(), "flush clears the buffer");
    sender
        .wait(AckLevel::Ok, ACK_TIMEOUT)
        .unwrap_or_else(|e| panic!("wait Ok (flush 1): {e}; log:\n{}", server.log_text()));
    let after_now = now_micros();

    // A second frame: more rows, a new symbol and a column added late.
    for row in 0..2 {
        buf.table(T_ROW_US)
            .unwrap()
            .symbol("sym", US2_SYM[row])
            .unwrap()
            .column_i64("qty", US2_QTY[row])
            .unwrap()
            .column_f64("px", US2_PX[row])
            .unwrap()
            .column_str("note", US2_NOTE[row])
            .unwrap()
            .at(TimestampMicros::new(TS_US_BASE + 3 + row as i64))
            .unwrap();
    }
    let fsn = sender
        .flush_and_get_fsn(&mut buf)
        .expect("flush 2")
        .expect("a frame was published");
    sender
        .wait(AckLevel::Ok, ACK_TIMEOUT)
        .unwrap_or_else(|e| panic!("wait Ok (flush 2): {e}; log:\n{}", server.log_text()));
    let done = sender.completed_fsn(AckLevel::Ok).unwrap();
    assert!(done.is_some_and(|d| d >= fsn), "completed {done:?} < {fsn}");
    assert!(
        sender.poll_qwp_ws_error().unwrap().is_none(),
        "no server error expected"
    );

    // ---- row_types: every type, value by value.
    let t = read_table(&server, T_ROW);
    assert_query_matches_storage(&server, T_ROW);
    assert_eq!(t.rows(), 3);
    let expect_types = [
        ("sym", ColumnType::Symbol),
        ("flag", ColumnType::Boolean),
        ("i8", ColumnType::Byte),
        ("i16", ColumnType::Short),
        ("i32", ColumnType::Int),
        ("i64", ColumnType::Long),
        ("f32", ColumnType::Float),
        ("f64", ColumnType::Double),
        ("s", ColumnType::Varchar),
        ("ts_us", ColumnType::Timestamp),
        ("ts_ns", ColumnType::TimestampNanos),
        ("dt", ColumnType::Date),
        ("u", ColumnType::Uuid),
        ("l256", ColumnType::Long256),
        ("ip", ColumnType::Ipv4),
        ("ch", ColumnType::Char),
        ("geo", ColumnType::Geohash(GEO_BITS)),
        ("geo8", ColumnType::Geohash(GEO8_BITS)),
        ("bin", ColumnType::Binary),
        ("dec64", ColumnType::Decimal64(2)),
        ("dec128", ColumnType::Decimal128(6)),
        ("dec256", ColumnType::Decimal256(1)),
        ("arr", ColumnType::DoubleArray(1)),
        ("arr2", ColumnType::DoubleArray(2)),
        ("timestamp", ColumnType::TimestampNanos),
    ];
    for (c, ty) in expect_types {
        assert_eq!(t.ty(c), ty, "{T_ROW}.{c} type");
        assert_eq!(
            t.col(c).data_type(),
            &ty.read_type(),
            "{T_ROW}.{c} Arrow type"
        );
    }
    assert_eq!(
        t.designated(),
        ("timestamp".to_string(), ColumnType::TimestampNanos)
    );
    assert_eq!(t.schema.columns.len(), expect_types.len());

    assert_eq!(t.strs("sym"), opt_strings(&R_SYM));
    // BOOLEAN, BYTE and SHORT have no NULL: a row without them is false / 0.
    let bools: Vec<Option<bool>> = R_BOOL.iter().map(|b| Some(b.unwrap_or(false))).collect();
    assert_eq!(t.bools("flag"), bools);
    let i8s: Vec<Option<i8>> = R_I8.iter().map(|v| Some(v.unwrap_or(0))).collect();
    assert_eq!(t.prim::<Int8Type>("i8"), i8s);
    let i16s: Vec<Option<i16>> = R_I16.iter().map(|v| Some(v.unwrap_or(0))).collect();
    assert_eq!(t.prim::<Int16Type>("i16"), i16s);
    assert_eq!(t.prim::<Int32Type>("i32"), R_I32.to_vec());
    assert_eq!(t.i64s("i64"), R_I64.to_vec());
    assert_eq!(t.prim::<Float32Type>("f32"), R_F32.to_vec());
    assert_eq!(t.f64s("f64"), R_F64.to_vec());
    assert_eq!(t.strs("s"), opt_strings(&R_STR));
    assert_eq!(
        t.prim::<TimestampMicrosecondType>("ts_us"),
        R_TS_US.to_vec()
    );
    assert_eq!(t.prim::<TimestampNanosecondType>("ts_ns"), R_TS_NS.to_vec());
    assert_eq!(t.prim::<TimestampMillisecondType>("dt"), R_DATE.to_vec());
    let uuids: Vec<Option<Vec<u8>>> = R_UUID
        .iter()
        .map(|u| u.map(|(lo, hi)| uuid_rfc(lo, hi)))
        .collect();
    assert_eq!(t.fixed("u"), uuids);
    let l256: Vec<Option<Vec<u8>>> = (0..3).map(|r| r_long256(r).map(|b| b.to_vec())).collect();
    assert_eq!(t.fixed("l256"), l256);
    let ips: Vec<Option<u32>> = R_IP.iter().map(|ip| ip.map(u32::from)).collect();
    assert_eq!(t.prim::<UInt32Type>("ip"), ips);
    // CHAR has no NULL bitmap on the wire; QuestDB's NULL CHAR is 0, so a
    // missing CHAR may read as 0 or NULL, both the same QuestDB value.
    let chars = t.prim::<UInt16Type>("ch");
    for (row, sent) in R_CHAR.iter().enumerate() {
        match sent {
            Some(c) => assert_eq!(chars[row], Some(*c), "ch row {row}"),
            None => assert!(
                chars[row].is_none_or(|c| c == 0),
                "ch row {row}: missing CHAR stored as {:?}",
                chars[row]
            ),
        }
    }
    let geo: Vec<Option<i32>> = R_GEO.iter().map(|g| g.map(|g| g as i32)).collect();
    assert_eq!(t.prim::<Int32Type>("geo"), geo);
    let geo8: Vec<Option<i16>> = R_GEO8.iter().map(|g| Some(*g as i16)).collect();
    assert_eq!(t.prim::<Int16Type>("geo8"), geo8);
    let bins: Vec<Option<Vec<u8>>> = R_BIN.iter().map(|b| b.map(<[u8]>::to_vec)).collect();
    assert_eq!(t.binary("bin"), bins);
    // Scale pinned by the first value (2); -7.5 rescaled to -7.50.
    assert_eq!(
        t.prim::<Decimal64Type>("dec64"),
        vec![Some(12_345), None, Some(-750)]
    );
    assert_eq!(
        t.prim::<Decimal128Type>("dec128"),
        vec![
            Some(12_345_678_901_234_567_890_123_456),
            None,
            Some(-1_000_000)
        ]
    );
    assert_eq!(
        t.prim::<Decimal256Type>("dec256"),
        vec![
            Some(i256_of("987654321098765432109876543210987654321")),
            None,
            Some(i256_of("5")),
        ]
    );
    assert_eq!(t.f64_lists("arr"), (0..3).map(r_arr).collect::<Vec<_>>());
    assert_eq!(t.f64_lists2("arr2"), (0..3).map(r_arr2).collect::<Vec<_>>());
    let ts: Vec<Option<i64>> = (0..3).map(|r| Some(TS_NS_BASE + r * 1_000)).collect();
    assert_eq!(t.prim::<TimestampNanosecondType>("timestamp"), ts);

    // ---- row_micros: two frames, a late column, a symbol shared with row_types.
    let t = read_table(&server, T_ROW_US);
    assert_query_matches_storage(&server, T_ROW_US);
    assert_eq!(t.rows(), 5);
    assert_eq!(
        t.designated(),
        ("timestamp".to_string(), ColumnType::Timestamp)
    );
    assert_eq!(t.ty("sym"), ColumnType::Symbol);
    assert_eq!(t.ty("qty"), ColumnType::Long);
    assert_eq!(t.ty("px"), ColumnType::Double);
    assert_eq!(t.ty("note"), ColumnType::Varchar);
    let syms: Vec<Option<String>> = US_SYM
        .iter()
        .chain(US2_SYM.iter())
        .map(|s| Some(s.to_string()))
        .collect();
    assert_eq!(t.strs("sym"), syms);
    let qty: Vec<Option<i64>> = US_QTY
        .iter()
        .chain(US2_QTY.iter())
        .map(|v| Some(*v))
        .collect();
    assert_eq!(t.i64s("qty"), qty);
    let px: Vec<Option<f64>> = US_PX
        .iter()
        .chain(US2_PX.iter())
        .map(|v| Some(*v))
        .collect();
    assert_eq!(t.f64s("px"), px);
    let notes: Vec<Option<String>> = [None, None, None]
        .into_iter()
        .chain(US2_NOTE.iter().map(|s| Some(s.to_string())))
        .collect();
    assert_eq!(t.strs("note"), notes);
    let ts: Vec<Option<i64>> = (0..5).map(|r| Some(TS_US_BASE + r)).collect();
    assert_eq!(t.prim::<TimestampMicrosecondType>("timestamp"), ts);

    // ---- row_now: server-assigned designated timestamps.
    let t = read_table(&server, T_ROW_NOW);
    assert_query_matches_storage(&server, T_ROW_NOW);
    assert_eq!(t.rows(), 2);
    assert_eq!(t.i64s("n"), vec![Some(1), Some(2)]);
    assert_eq!(
        t.designated(),
        ("timestamp".to_string(), ColumnType::Timestamp)
    );
    for (row, v) in t
        .prim::<TimestampMicrosecondType>("timestamp")
        .into_iter()
        .enumerate()
    {
        let v = v.unwrap_or_else(|| panic!("row_now row {row}: NULL designated timestamp"));
        assert!(
            (before_now - 1_000_000..=after_now + 1_000_000).contains(&v),
            "row_now row {row}: server time {v} outside [{before_now}, {after_now}]"
        );
    }
}

#[test]
fn row_api_long_arrays() {
    let server = TestServer::start();
    let mut sender = Sender::from_conf(format!("ws::addr={};", server.addr())).expect("connect");
    let mut buf = sender.new_buffer();
    let rows: [Option<Vec<i64>>; 3] = [Some(vec![1, -2, i64::MAX]), None, Some(vec![0])];
    for (i, r) in rows.iter().enumerate() {
        buf.table("row_long_arrays")
            .unwrap()
            .column_i64("id", i as i64)
            .unwrap()
            .column_arr_opt("la", r.as_ref())
            .unwrap()
            .at(TimestampMicros::new(TS_US_BASE + i as i64))
            .unwrap();
    }
    sender.flush(&mut buf).expect("flush");
    sender
        .wait(AckLevel::Ok, ACK_TIMEOUT)
        .unwrap_or_else(|e| panic!("wait Ok: {e}; log:\n{}", server.log_text()));
    let t = read_table(&server, "row_long_arrays");
    assert_query_matches_storage(&server, "row_long_arrays");
    assert_eq!(t.ty("la"), ColumnType::LongArray(1));
    assert_eq!(t.i64s("id"), vec![Some(0), Some(1), Some(2)]);
    assert_eq!(t.i64_lists("la"), rows.to_vec());
}

// ---------------------------------------------------------------------------
// 2. Column-major chunks
// ---------------------------------------------------------------------------

const C_ROWS: usize = 5;
const C_VALID: [bool; C_ROWS] = [true, false, true, true, false];
const C_I8: [i8; C_ROWS] = [1, -2, i8::MIN, i8::MAX, 5];
const C_I16: [i16; C_ROWS] = [1000, -2000, i16::MIN, i16::MAX, 7];
const C_I32: [i32; C_ROWS] = [10, 20, i32::MIN + 1, i32::MAX, -30];
const C_I64: [i64; C_ROWS] = [100, 200, i64::MIN + 1, i64::MAX, -300];
const C_F32: [f32; C_ROWS] = [0.5, 1.5, -2.75, f32::MAX, 9.0];
const C_F64: [f64; C_ROWS] = [0.125, 1.0, -1.0e-300, f64::INFINITY, -0.0];
const C_DICT8: [&str; 3] = ["BTC-USD", "ETH-USD", "ünï-€"];
const C_SYM8: [i8; C_ROWS] = [0, 1, 2, 1, 0];
const C_SYM8_VALID: [bool; C_ROWS] = [true, true, true, false, true];
const C_SYM16_LEN: usize = 300;
const C_SYM16: [i16; C_ROWS] = [299, 0, 150, 7, 299];
const C_DICT32: [&str; 2] = ["x", "日本"];
const C_SYM32: [i32; C_ROWS] = [1, 0, 0, 1, 1];
const C_STR: [Option<&str>; C_ROWS] = [Some("plain"), None, Some("wörld ✓"), Some(""), Some("🚀")];
const C_BOOL: [bool; C_ROWS] = [true, false, true, true, false];
const C_IP: [u32; C_ROWS] = [0x0A00_0001, 0xC0A8_0101, 1, u32::MAX, 0x7F00_0001];
const C_TS_US: [i64; C_ROWS] = [1_600_000_000_000_000, 0, 1, 2, 3];
const C_TS_NS: [i64; C_ROWS] = [1_600_000_000_000_000_001, 5, 6, 7, 8];
const C_DATE: [i64; C_ROWS] = [1_600_000_000_000, -1, 0, 86_400_000, 42];
const C_BIN: [Option<&[u8]>; C_ROWS] =
    [Some(&[1, 2, 3]), None, Some(&[]), Some(&[0xFF]), Some(&[0])];
const C_DEC64: [i64; C_ROWS] = [123_456, -1, 0, 999_999_999_999_999_999, 7];
const C_DEC64_SCALE: u8 = 3;
const C_DEC128: [i128; C_ROWS] = [
    12_345_678_901_234_567_890_123_456_789,
    -5,
    0,
    1,
    -99_999_999_999_999_999_999_999_999_999,
];
const C_DEC128_SCALE: u8 = 10;
const C_DEC256_SCALE: u8 = 20;
const C_ARR_SHAPE: u32 = 2;
const C_DESIGNATED_NS: i64 = 1_718_000_000_000_000_000;

fn c_uuid(row: usize) -> [u8; 16] {
    std::array::from_fn(|i| (row * 16 + i) as u8 ^ 0x5A)
}

fn c_long256(row: usize) -> [u8; 32] {
    std::array::from_fn(|i| (row * 32 + i) as u8)
}

fn c_dec256(row: usize) -> i256 {
    // Beyond i128 on purpose for row 0; negative for row 2.
    match row {
        0 => i256_of("1234567890123456789012345678901234567890123456789012345"),
        1 => i256::from_i128(1),
        2 => i256_of("-98765432109876543210987654321098765432109876"),
        3 => i256::ZERO,
        _ => i256::from_i128(i128::MAX),
    }
}

fn c_sym16_dict() -> Vec<String> {
    (0..C_SYM16_LEN).map(|i| format!("sym-{i:03}")).collect()
}

#[test]
fn chunk_api_every_column_kind_with_validity() {
    let server = TestServer::start();
    let (db, errors) = pool(&server, "");

    // Backing buffers first; chunks borrow them.
    let valid_bits = bitmap(&C_VALID);
    let sym8_valid_bits = bitmap(&C_SYM8_VALID);
    let (d8_off, d8_bytes) = dict_layout(&C_DICT8);
    let d16 = c_sym16_dict();
    let d16_refs: Vec<&str> = d16.iter().map(String::as_str).collect();
    let (d16_off, d16_bytes) = dict_layout(&d16_refs);
    let (d32_off, d32_bytes) = dict_layout(&C_DICT32);
    let str_valid = bitmap(&C_STR.map(|s| s.is_some()));
    let (s_off, s_bytes) = utf8_layout(&C_STR);
    let bool_bits = bitmap(&C_BOOL);
    let uuids: Vec<[u8; 16]> = (0..C_ROWS).map(c_uuid).collect();
    let l256s: Vec<[u8; 32]> = (0..C_ROWS).map(c_long256).collect();
    let bin_valid = bitmap(&C_BIN.map(|b| b.is_some()));
    let mut bin_off = vec![0i32];
    let mut bin_bytes = Vec::new();
    for b in C_BIN {
        bin_bytes.extend_from_slice(b.unwrap_or_default());
        bin_off.push(bin_bytes.len() as i32);
    }
    let dec256: Vec<[u8; 32]> = (0..C_ROWS).map(|r| c_dec256(r).to_le_bytes()).collect();
    let arr: Vec<f64> = (0..C_ROWS * C_ARR_SHAPE as usize)
        .map(|i| i as f64 * 0.5 - 1.0)
        .collect();
    let designated: Vec<i64> = (0..C_ROWS as i64)
        .map(|i| C_DESIGNATED_NS + i * 1_000)
        .collect();
    // A second chunk, to a second table, reusing the symbol dictionary.
    let designated_us: Vec<i64> = (0..C_ROWS as i64).map(|i| TS_US_BASE + i).collect();

    {
        let mut sender = db
            .borrow_sender()
            .unwrap_or_else(|e| panic!("borrow_sender: {e}; log:\n{}", server.log_text()));
        let v = Validity::from_bitmap(&valid_bits, C_ROWS).unwrap();
        let sym8_v = Validity::from_bitmap(&sym8_valid_bits, C_ROWS).unwrap();
        let str_v = Validity::from_bitmap(&str_valid, C_ROWS).unwrap();
        let bin_v = Validity::from_bitmap(&bin_valid, C_ROWS).unwrap();

        let mut chunk = Chunk::new("chunk_types");
        chunk
            .column_i8("i8", &C_I8, Some(&v))
            .unwrap()
            .column_i16("i16", &C_I16, Some(&v))
            .unwrap()
            .column_i32("i32", &C_I32, Some(&v))
            .unwrap()
            .column_i64("i64", &C_I64, Some(&v))
            .unwrap()
            .column_f32("f32", &C_F32, Some(&v))
            .unwrap()
            .column_f64("f64", &C_F64, Some(&v))
            .unwrap()
            .column_f64("f64_dense", &C_F64, None)
            .unwrap()
            .symbol_i8("sym8", &C_SYM8, &d8_off, &d8_bytes, Some(&sym8_v))
            .unwrap()
            .symbol_i16("sym16", &C_SYM16, &d16_off, &d16_bytes, None)
            .unwrap()
            .symbol_i32("sym32", &C_SYM32, &d32_off, &d32_bytes, None)
            .unwrap()
            .column_str("s", &s_off, &s_bytes, Some(&str_v))
            .unwrap()
            .column_bool("flag", &bool_bits, C_ROWS, None)
            .unwrap()
            .column_uuid("u", &uuids, Some(&v))
            .unwrap()
            .column_long256("l256", &l256s, Some(&v))
            .unwrap()
            .column_ipv4("ip", &C_IP, Some(&v))
            .unwrap()
            .column_ts("ts_us", &C_TS_US, TimestampUnit::Micros, Some(&v))
            .unwrap()
            .column_ts("ts_ns", &C_TS_NS, TimestampUnit::Nanos, None)
            .unwrap()
            .column_date("dt", &C_DATE, Some(&v))
            .unwrap()
            .column_binary("bin", &bin_off, &bin_bytes, Some(&bin_v))
            .unwrap()
            .column_decimal64("dec64", &C_DEC64, C_DEC64_SCALE, Some(&v))
            .unwrap()
            .column_decimal128("dec128", &C_DEC128, C_DEC128_SCALE, Some(&v))
            .unwrap()
            .column_decimal256("dec256", &dec256, C_DEC256_SCALE, Some(&v))
            .unwrap()
            .column_f64_array("arr", &arr, C_ROWS, &[C_ARR_SHAPE], Some(&v))
            .unwrap()
            .at_nanos(&designated)
            .unwrap();
        assert_eq!(chunk.row_count(), C_ROWS);
        sender
            .flush_and_wait(&mut chunk, AckLevel::Ok)
            .unwrap_or_else(|e| panic!("flush_and_wait: {e}; log:\n{}", server.log_text()));

        let mut chunk2 = Chunk::new("chunk_micros");
        chunk2
            .symbol_i8("sym8", &C_SYM8, &d8_off, &d8_bytes, None)
            .unwrap()
            .column_i64("i64", &C_I64, None)
            .unwrap()
            .at_micros(&designated_us)
            .unwrap();
        sender.flush(&mut chunk2).expect("flush chunk2");
        sender
            .wait(AckLevel::Ok, ACK_TIMEOUT)
            .unwrap_or_else(|e| panic!("wait: {e}; log:\n{}", server.log_text()));
    }
    assert_no_rejections(&errors, &server);

    let t = read_table(&server, "chunk_types");
    assert_query_matches_storage(&server, "chunk_types");
    assert_eq!(t.rows(), C_ROWS);
    let expect_types = [
        ("i8", ColumnType::Byte),
        ("i16", ColumnType::Short),
        ("i32", ColumnType::Int),
        ("i64", ColumnType::Long),
        ("f32", ColumnType::Float),
        ("f64", ColumnType::Double),
        ("f64_dense", ColumnType::Double),
        ("sym8", ColumnType::Symbol),
        ("sym16", ColumnType::Symbol),
        ("sym32", ColumnType::Symbol),
        ("s", ColumnType::Varchar),
        ("flag", ColumnType::Boolean),
        ("u", ColumnType::Uuid),
        ("l256", ColumnType::Long256),
        ("ip", ColumnType::Ipv4),
        ("ts_us", ColumnType::Timestamp),
        ("ts_ns", ColumnType::TimestampNanos),
        ("dt", ColumnType::Date),
        ("bin", ColumnType::Binary),
        ("dec64", ColumnType::Decimal64(C_DEC64_SCALE)),
        ("dec128", ColumnType::Decimal128(C_DEC128_SCALE)),
        ("dec256", ColumnType::Decimal256(C_DEC256_SCALE)),
        ("arr", ColumnType::DoubleArray(1)),
        ("timestamp", ColumnType::TimestampNanos),
    ];
    for (c, ty) in expect_types {
        assert_eq!(t.ty(c), ty, "chunk_types.{c} type");
    }
    assert_eq!(t.schema.columns.len(), expect_types.len());
    assert_eq!(
        t.designated(),
        ("timestamp".to_string(), ColumnType::TimestampNanos)
    );

    /// `values` with the rows `C_VALID` marks NULL as None.
    fn masked<T: Copy>(values: &[T]) -> Vec<Option<T>> {
        values
            .iter()
            .zip(C_VALID)
            .map(|(v, ok)| ok.then_some(*v))
            .collect()
    }
    // BYTE and SHORT have no NULL: the client writes NULL rows as 0.
    let i8s: Vec<Option<i8>> = masked(&C_I8).iter().map(|v| Some(v.unwrap_or(0))).collect();
    assert_eq!(t.prim::<Int8Type>("i8"), i8s);
    let i16s: Vec<Option<i16>> = masked(&C_I16)
        .iter()
        .map(|v| Some(v.unwrap_or(0)))
        .collect();
    assert_eq!(t.prim::<Int16Type>("i16"), i16s);
    assert_eq!(t.prim::<Int32Type>("i32"), masked(&C_I32));
    assert_eq!(t.i64s("i64"), masked(&C_I64));
    assert_eq!(t.prim::<Float32Type>("f32"), masked(&C_F32));
    let f64s = t.f64s("f64");
    assert_eq!(f64s, masked(&C_F64));
    // -0.0 == 0.0 in PartialEq: check the sign survived.
    assert!(t.f64s("f64_dense")[4].is_some_and(|v| v == 0.0 && v.is_sign_negative()));
    assert_eq!(t.f64s("f64_dense"), C_F64.map(Some).to_vec());
    let sym8: Vec<Option<String>> = C_SYM8
        .iter()
        .zip(C_SYM8_VALID)
        .map(|(c, ok)| ok.then(|| C_DICT8[*c as usize].to_string()))
        .collect();
    assert_eq!(t.strs("sym8"), sym8);
    let sym16: Vec<Option<String>> = C_SYM16
        .iter()
        .map(|c| Some(d16[*c as usize].clone()))
        .collect();
    assert_eq!(t.strs("sym16"), sym16);
    let sym32: Vec<Option<String>> = C_SYM32
        .iter()
        .map(|c| Some(C_DICT32[*c as usize].to_string()))
        .collect();
    assert_eq!(t.strs("sym32"), sym32);
    assert_eq!(t.strs("s"), opt_strings(&C_STR));
    assert_eq!(t.bools("flag"), C_BOOL.map(Some).to_vec());
    let uuid_expect: Vec<Option<Vec<u8>>> = masked(&uuids)
        .into_iter()
        .map(|u| u.map(|u| u.to_vec()))
        .collect();
    assert_eq!(t.fixed("u"), uuid_expect);
    let l256_expect: Vec<Option<Vec<u8>>> = masked(&l256s)
        .into_iter()
        .map(|u| u.map(|u| u.to_vec()))
        .collect();
    assert_eq!(t.fixed("l256"), l256_expect);
    assert_eq!(t.prim::<UInt32Type>("ip"), masked(&C_IP));
    assert_eq!(
        t.prim::<TimestampMicrosecondType>("ts_us"),
        masked(&C_TS_US)
    );
    assert_eq!(
        t.prim::<TimestampNanosecondType>("ts_ns"),
        C_TS_NS.map(Some).to_vec()
    );
    assert_eq!(t.prim::<TimestampMillisecondType>("dt"), masked(&C_DATE));
    let bins: Vec<Option<Vec<u8>>> = C_BIN.iter().map(|b| b.map(<[u8]>::to_vec)).collect();
    assert_eq!(t.binary("bin"), bins);
    assert_eq!(t.prim::<Decimal64Type>("dec64"), masked(&C_DEC64));
    assert_eq!(t.prim::<Decimal128Type>("dec128"), masked(&C_DEC128));
    let dec256: Vec<i256> = (0..C_ROWS).map(c_dec256).collect();
    assert_eq!(t.prim::<Decimal256Type>("dec256"), masked(&dec256));
    let arrs: Vec<Option<Vec<f64>>> = (0..C_ROWS)
        .map(|r| {
            C_VALID[r]
                .then(|| arr[r * C_ARR_SHAPE as usize..(r + 1) * C_ARR_SHAPE as usize].to_vec())
        })
        .collect();
    assert_eq!(t.f64_lists("arr"), arrs);
    assert_eq!(
        t.prim::<TimestampNanosecondType>("timestamp"),
        designated.iter().map(|v| Some(*v)).collect::<Vec<_>>()
    );

    let t = read_table(&server, "chunk_micros");
    assert_query_matches_storage(&server, "chunk_micros");
    assert_eq!(t.rows(), C_ROWS);
    assert_eq!(
        t.designated(),
        ("timestamp".to_string(), ColumnType::Timestamp)
    );
    assert_eq!(
        t.strs("sym8"),
        C_SYM8
            .iter()
            .map(|c| Some(C_DICT8[*c as usize].to_string()))
            .collect::<Vec<_>>()
    );
    assert_eq!(t.i64s("i64"), C_I64.map(Some).to_vec());
    assert_eq!(
        t.prim::<TimestampMicrosecondType>("timestamp"),
        designated_us.iter().map(|v| Some(*v)).collect::<Vec<_>>()
    );
}

#[test]
fn chunk_api_large_chunk_is_split_over_frames() {
    const N: usize = 250_000;
    const DICT: usize = 1_000;
    /// The client's frame cap; the chunk's payload is many times this.
    const FRAME_CAP: usize = 1 << 20;

    let server = TestServer::start();
    let (db, errors) = pool(&server, &format!("max_buf_size={FRAME_CAP};"));

    let ids: Vec<i64> = (0..N as i64).collect();
    let vals: Vec<f64> = (0..N).map(|i| i as f64 * 0.5).collect();
    let dict: Vec<String> = (0..DICT).map(|i| format!("k{i}")).collect();
    let dict_refs: Vec<&str> = dict.iter().map(String::as_str).collect();
    let (d_off, d_bytes) = dict_layout(&dict_refs);
    let codes: Vec<i16> = (0..N).map(|i| (i % DICT) as i16).collect();
    let texts: Vec<String> = (0..N).map(|i| format!("row-{i}")).collect();
    let text_refs: Vec<Option<&str>> = texts
        .iter()
        .enumerate()
        .map(|(i, s)| (i % 7 != 3).then_some(s.as_str()))
        .collect();
    let (s_off, s_bytes) = utf8_layout(&text_refs);
    let s_valid = bitmap(&text_refs.iter().map(|s| s.is_some()).collect::<Vec<_>>());
    let ts: Vec<i64> = (0..N as i64).map(|i| TS_US_BASE + i).collect();
    let payload = N * (8 + 8 + 2 + 8 + 4) + s_bytes.len();
    assert!(
        payload > 8 * FRAME_CAP,
        "the chunk must need several frames ({payload} bytes)"
    );

    {
        let mut sender = db.borrow_sender().expect("borrow_sender");
        let s_v = Validity::from_bitmap(&s_valid, N).unwrap();
        let mut chunk = Chunk::new("chunk_big");
        chunk
            .column_i64("id", &ids, None)
            .unwrap()
            .column_f64("v", &vals, None)
            .unwrap()
            .symbol_i16("k", &codes, &d_off, &d_bytes, None)
            .unwrap()
            .column_str("s", &s_off, &s_bytes, Some(&s_v))
            .unwrap()
            .at_micros(&ts)
            .unwrap();
        // Larger than one frame: the client must split it (or fail with
        // BatchTooLarge, which would fail this test).
        let fsn = sender
            .flush_and_get_fsn(&mut chunk)
            .unwrap_or_else(|e| panic!("flush: {e}; log:\n{}", server.log_text()))
            .expect("published");
        sender
            .wait(AckLevel::Ok, ACK_TIMEOUT)
            .unwrap_or_else(|e| panic!("wait: {e}; log:\n{}", server.log_text()));
        // Frame sequence numbers start at 0 on a fresh sender: the chunk's
        // last frame having a later one means it went out as several frames.
        assert!(
            fsn >= 1,
            "a {payload}-byte chunk under a {FRAME_CAP}-byte cap went out as one frame"
        );
    }
    assert_no_rejections(&errors, &server);

    let t = read_table(&server, "chunk_big");
    assert_query_matches_storage(&server, "chunk_big");
    assert_eq!(t.rows(), N);
    assert_eq!(t.ty("id"), ColumnType::Long);
    assert_eq!(t.ty("v"), ColumnType::Double);
    assert_eq!(t.ty("k"), ColumnType::Symbol);
    assert_eq!(t.ty("s"), ColumnType::Varchar);
    assert_eq!(
        t.designated(),
        ("timestamp".to_string(), ColumnType::Timestamp)
    );
    let got_ids = t.i64s("id");
    let got_vals = t.f64s("v");
    let got_k = t.strs("k");
    let got_s = t.strs("s");
    let got_ts = t.prim::<TimestampMicrosecondType>("timestamp");
    for i in 0..N {
        assert_eq!(got_ids[i], Some(ids[i]), "id row {i}");
        assert_eq!(got_vals[i], Some(vals[i]), "v row {i}");
        assert_eq!(
            got_k[i].as_deref(),
            Some(dict[i % DICT].as_str()),
            "k row {i}"
        );
        assert_eq!(got_s[i].as_deref(), text_refs[i], "s row {i}");
        assert_eq!(got_ts[i], Some(ts[i]), "timestamp row {i}");
    }
}

// ---------------------------------------------------------------------------
// 3. Arrow
// ---------------------------------------------------------------------------

const A_ROWS: usize = 5;
const A_ID: [Option<i64>; A_ROWS] = [Some(1), None, Some(3), Some(i64::MAX), Some(-5)];
/// Row 1 is NaN, row 2 NULL.
const A_PRICE: [Option<f64>; A_ROWS] = [
    Some(1.5),
    Some(f64::NAN),
    None,
    Some(-2.25),
    Some(f64::INFINITY),
];
const A_NAME: [Option<&str>; A_ROWS] = [
    Some("héllo"),
    None,
    Some("日本語 🚀"),
    Some(""),
    Some("plain"),
];
const A_SYM: [Option<&str>; A_ROWS] = [Some("AAPL"), None, Some("GOOG"), Some("AAPL"), Some("ünï")];
const A_FLAG: [bool; A_ROWS] = [true, false, true, true, false];
const A_IP: [Option<u32>; A_ROWS] = [
    Some(0x0A00_0001),
    None,
    Some(0xC0A8_0001),
    Some(1),
    Some(u32::MAX),
];
const A_CHAR: [u16; A_ROWS] = [b'a' as u16, 0x00E9, 0x0416, b'Z' as u16, 0x4E2D];
const A_GEO_BITS: u8 = 20;
const A_GEO: [Option<i32>; A_ROWS] = [Some(0x0F_FFFE), Some(0), None, Some(12_345), Some(1)];
const A_TS_US: [Option<i64>; A_ROWS] =
    [Some(1_650_000_000_000_001), None, Some(0), Some(2), Some(3)];
const A_DEC_SCALE: i8 = 4;
const A_DEC: [Option<i128>; A_ROWS] = [Some(123_456_789), Some(-1), None, Some(0), Some(10_000)];
const A_TS_NS_BASE: i64 = 1_719_000_000_000_000_000;

fn a_uuid(row: usize) -> Option<[u8; 16]> {
    (row != 3).then(|| std::array::from_fn(|i| (row * 31 + i * 7) as u8))
}

fn a_ts() -> Vec<i64> {
    (0..A_ROWS as i64)
        .map(|i| A_TS_NS_BASE + i * 1_000)
        .collect()
}

/// The batch every Arrow path sends.
fn arrow_batch() -> RecordBatch {
    let sym: DictionaryArray<Int32Type> = A_SYM.iter().copied().collect();
    let uuid_values: Vec<Option<[u8; 16]>> = (0..A_ROWS).map(a_uuid).collect();
    let uuid = FixedSizeBinaryArray::try_from_sparse_iter_with_size(uuid_values.into_iter(), 16)
        .expect("uuid array");
    let uuid_field = Field::new("uid", DataType::FixedSizeBinary(16), true).with_metadata(
        [(
            questdb::arrow_metadata::ARROW_EXTENSION_NAME.to_string(),
            questdb::arrow_metadata::EXT_ARROW_UUID.to_string(),
        )]
        .into(),
    );
    let dec = arrow::array::Decimal128Array::from(A_DEC.to_vec())
        .with_precision_and_scale(38, A_DEC_SCALE)
        .unwrap();
    let columns: Vec<(Field, ArrayRef)> = vec![
        (
            Field::new("id", DataType::Int64, true),
            Arc::new(Int64Array::from(A_ID.to_vec())),
        ),
        (
            Field::new("price", DataType::Float64, true),
            Arc::new(Float64Array::from(A_PRICE.to_vec())),
        ),
        (
            Field::new("name", DataType::Utf8, true),
            Arc::new(StringArray::from(A_NAME.to_vec())),
        ),
        (
            Field::new(
                "sym",
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                true,
            ),
            Arc::new(sym),
        ),
        (
            Field::new("flag", DataType::Boolean, false),
            Arc::new(BooleanArray::from(A_FLAG.to_vec())),
        ),
        (
            Field::new("ip", DataType::UInt32, true),
            Arc::new(UInt32Array::from(A_IP.to_vec())),
        ),
        (
            Field::new("ch", DataType::UInt16, false),
            Arc::new(UInt16Array::from(A_CHAR.to_vec())),
        ),
        (
            Field::new("geo", DataType::Int32, true),
            Arc::new(Int32Array::from(A_GEO.to_vec())),
        ),
        (uuid_field, Arc::new(uuid)),
        (
            Field::new(
                "ts_us",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                true,
            ),
            Arc::new(TimestampMicrosecondArray::from(A_TS_US.to_vec())),
        ),
        (
            Field::new("dec", DataType::Decimal128(38, A_DEC_SCALE), true),
            Arc::new(dec),
        ),
        (
            Field::new("ts", DataType::Timestamp(TimeUnit::Nanosecond, None), false),
            Arc::new(TimestampNanosecondArray::from(a_ts())),
        ),
    ];
    let (fields, arrays): (Vec<Field>, Vec<ArrayRef>) = columns.into_iter().unzip();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("batch")
}

const A_OVERRIDES: [ArrowColumnOverride<'static>; 3] = [
    ArrowColumnOverride::Ipv4 { column: "ip" },
    ArrowColumnOverride::Char { column: "ch" },
    ArrowColumnOverride::Geohash {
        column: "geo",
        bits: A_GEO_BITS,
    },
];

/// Checks the columns common to every Arrow path.
fn verify_arrow_core(t: &Stored) {
    assert_eq!(t.rows(), A_ROWS, "{} rows", t.name);
    assert_eq!(
        t.designated(),
        ("timestamp".to_string(), ColumnType::TimestampNanos),
        "{}: designated timestamp",
        t.name
    );
    assert!(
        t.schema.column_index("ts").is_none(),
        "{}: the designated source column is not stored twice: {:?}",
        t.name,
        t.column_names()
    );
    assert_eq!(t.ty("id"), ColumnType::Long);
    assert_eq!(t.ty("price"), ColumnType::Double);
    assert_eq!(t.ty("name"), ColumnType::Varchar);
    assert_eq!(t.ty("sym"), ColumnType::Symbol);
    assert_eq!(t.ty("flag"), ColumnType::Boolean);

    assert_eq!(t.i64s("id"), A_ID.to_vec());
    let price = t.f64s("price");
    for (row, sent) in A_PRICE.iter().enumerate() {
        // NaN is QuestDB's DOUBLE NULL.
        let expected = sent.filter(|v| !v.is_nan());
        assert_eq!(price[row], expected, "{}.price row {row}", t.name);
    }
    assert_eq!(t.strs("name"), opt_strings(&A_NAME));
    assert_eq!(t.strs("sym"), opt_strings(&A_SYM));
    assert_eq!(t.bools("flag"), A_FLAG.map(Some).to_vec());
    assert_eq!(
        t.prim::<TimestampNanosecondType>("timestamp"),
        a_ts().into_iter().map(Some).collect::<Vec<_>>()
    );
}

/// Checks the columns typed by overrides and metadata.
fn verify_arrow_typed(t: &Stored) {
    assert_eq!(t.ty("ip"), ColumnType::Ipv4);
    assert_eq!(t.ty("ch"), ColumnType::Char);
    assert_eq!(t.ty("geo"), ColumnType::Geohash(A_GEO_BITS));
    assert_eq!(t.ty("uid"), ColumnType::Uuid);
    assert_eq!(t.ty("ts_us"), ColumnType::Timestamp);
    assert_eq!(t.ty("dec"), ColumnType::Decimal128(A_DEC_SCALE as u8));
    assert_eq!(t.prim::<UInt32Type>("ip"), A_IP.to_vec());
    assert_eq!(t.prim::<UInt16Type>("ch"), A_CHAR.map(Some).to_vec());
    assert_eq!(t.prim::<Int32Type>("geo"), A_GEO.to_vec());
    let uuids: Vec<Option<Vec<u8>>> = (0..A_ROWS).map(|r| a_uuid(r).map(|u| u.to_vec())).collect();
    assert_eq!(t.fixed("uid"), uuids);
    assert_eq!(
        t.prim::<TimestampMicrosecondType>("ts_us"),
        A_TS_US.to_vec()
    );
    assert_eq!(t.prim::<Decimal128Type>("dec"), A_DEC.to_vec());
}

#[test]
fn arrow_record_batches_through_every_entry_point() {
    let server = TestServer::start();
    let (db, errors) = pool(&server, "");
    let batch = arrow_batch();

    // a) A pooled (store-and-forward) sender.
    {
        let mut sender = db.borrow_sender().expect("borrow_sender");
        sender
            .flush_arrow_batch_at_column_and_wait(
                "arrow_sender",
                &batch,
                ColumnName::new("ts").unwrap(),
                &A_OVERRIDES,
                AckLevel::Ok,
            )
            .unwrap_or_else(|e| panic!("flush_arrow_batch: {e}; log:\n{}", server.log_text()));
    }
    // b) The one-call pool entry point (a direct column sender).
    db.flush_arrow_batch(
        "arrow_direct",
        &batch,
        Some(ColumnName::new("ts").unwrap()),
        &A_OVERRIDES,
        Some(AckLevel::Ok),
    )
    .unwrap_or_else(|e| {
        panic!(
            "QuestDb::flush_arrow_batch: {e}; log:\n{}",
            server.log_text()
        )
    });
    // c) Arrow columns pushed into a chunk, with a raw designated timestamp.
    let ts = a_ts();
    {
        let mut sender = db.borrow_sender().expect("borrow_sender");
        let mut chunk = Chunk::new("arrow_chunk");
        let schema = batch.schema();
        for name in ["id", "price", "name", "sym", "flag"] {
            let i = schema.index_of(name).unwrap();
            chunk
                .push_arrow_column(name, schema.field(i), batch.column(i).clone())
                .unwrap();
        }
        chunk.at_nanos(&ts).unwrap();
        sender
            .flush_and_wait(&mut chunk, AckLevel::Ok)
            .unwrap_or_else(|e| panic!("chunk flush: {e}; log:\n{}", server.log_text()));
    }
    assert_no_rejections(&errors, &server);

    for table in ["arrow_sender", "arrow_direct"] {
        let t = read_table(&server, table);
        assert_query_matches_storage(&server, table);
        verify_arrow_core(&t);
        verify_arrow_typed(&t);
        assert_eq!(t.schema.columns.len(), batch.num_columns());
    }
    let t = read_table(&server, "arrow_chunk");
    assert_query_matches_storage(&server, "arrow_chunk");
    verify_arrow_core(&t);
    assert_eq!(t.schema.columns.len(), 6);
}

// ---------------------------------------------------------------------------
// 4. Durable acks
// ---------------------------------------------------------------------------

#[test]
fn durable_acks_row_chunk_and_arrow() {
    let mut server = TestServer::start();

    // Row API.
    let conf = format!("ws::addr={};request_durable_ack=on;", server.addr());
    let mut sender = Sender::from_conf(&conf).expect("connect");
    let mut buf = sender.new_buffer();
    for i in 0..3i64 {
        buf.table("durable_rows")
            .unwrap()
            .symbol("sym", US_SYM[i as usize])
            .unwrap()
            .column_i64("v", i * 11)
            .unwrap()
            .at(TimestampMicros::new(TS_US_BASE + i))
            .unwrap();
    }
    let fsn = sender.flush_and_get_fsn(&mut buf).unwrap().unwrap();
    sender
        .wait(AckLevel::Durable, ACK_TIMEOUT)
        .unwrap_or_else(|e| panic!("wait Durable: {e}; log:\n{}", server.log_text()));
    let durable = sender.completed_fsn(AckLevel::Durable).unwrap();
    assert!(
        durable.is_some_and(|d| d >= fsn),
        "durable watermark {durable:?} < {fsn}"
    );
    assert!(sender.poll_qwp_ws_error().unwrap().is_none());
    drop(sender);

    // Pool: a chunk and an Arrow batch, both waiting for durability.
    let (db, errors) = pool(&server, "request_durable_ack=on;");
    let vals: Vec<f64> = vec![1.25, -2.5, 1e10];
    let ts: Vec<i64> = (0..3).map(|i| C_DESIGNATED_NS + i).collect();
    {
        let mut sender = db.borrow_sender().expect("borrow_sender");
        let mut chunk = Chunk::new("durable_chunk");
        chunk
            .column_f64("x", &vals, None)
            .unwrap()
            .at_nanos(&ts)
            .unwrap();
        sender
            .flush_and_wait(&mut chunk, AckLevel::Durable)
            .unwrap_or_else(|e| panic!("flush_and_wait Durable: {e}; log:\n{}", server.log_text()));
    }
    let batch = arrow_batch();
    // `None`: the pool's default level, Durable under request_durable_ack=on.
    db.flush_arrow_batch(
        "durable_arrow",
        &batch,
        Some(ColumnName::new("ts").unwrap()),
        &A_OVERRIDES,
        None,
    )
    .unwrap_or_else(|e| {
        panic!(
            "flush_arrow_batch Durable: {e}; log:\n{}",
            server.log_text()
        )
    });
    assert_no_rejections(&errors, &server);
    drop(db);

    // Durably acknowledged: still there after a crash.
    server.kill9();
    let t = read_table(&server, "durable_rows");
    assert_eq!(t.rows(), 3);
    assert_eq!(t.i64s("v"), vec![Some(0), Some(11), Some(22)]);
    assert_eq!(
        t.strs("sym"),
        US_SYM
            .iter()
            .map(|s| Some(s.to_string()))
            .collect::<Vec<_>>()
    );
    let t = read_table(&server, "durable_chunk");
    assert_eq!(
        t.f64s("x"),
        vals.iter().map(|v| Some(*v)).collect::<Vec<_>>()
    );
    assert_eq!(
        t.prim::<TimestampNanosecondType>("timestamp"),
        ts.iter().map(|v| Some(*v)).collect::<Vec<_>>()
    );
    let t = read_table(&server, "durable_arrow");
    verify_arrow_core(&t);
    verify_arrow_typed(&t);
}

// ---------------------------------------------------------------------------
// 6. The reader: target roles, credit window, zstd, timeout, cancel
// ---------------------------------------------------------------------------

/// Rows of `reader_rows`, loaded with the row API: `v` = 0..READER_ROWS.
const READER_ROWS: i64 = 60_000;

fn load_reader_rows(server: &TestServer) {
    let conf = format!("ws::addr={};", server.addr());
    let mut sender = Sender::from_conf(&conf).expect("sender");
    let mut buf = sender.new_buffer();
    for v in 0..READER_ROWS {
        buf.table("reader_rows")
            .unwrap()
            .symbol("s", ["a", "b", "c"][(v % 3) as usize])
            .unwrap()
            .column_i64("v", v)
            .unwrap()
            .at(TimestampNanos::new(TS_NS_BASE + v))
            .unwrap();
        if buf.row_count() == 10_000 {
            sender.flush(&mut buf).expect("flush");
        }
    }
    sender.flush(&mut buf).expect("flush");
    sender.wait(AckLevel::Ok, ACK_TIMEOUT).expect("acks");
}

/// `v` of every row `SELECT v FROM reader_rows` returns through `cursor`.
fn read_v(cursor: &mut questdb::egress::Cursor<'_>) -> Vec<i64> {
    let (schema, batches) = cursor.fetch_all_arrow().expect("fetch");
    let all = concat_batches(&schema, &batches).expect("concat");
    all.column(0).as_primitive::<Int64Type>().values().to_vec()
}

#[test]
fn reader_roles_credit_window_zstd_timeout_and_cancel() {
    let server = TestServer::start();
    load_reader_rows(&server);
    let want: Vec<i64> = (0..READER_ROWS).collect();
    let addr = server.addr();

    // target=primary: STANDALONE counts as primary.
    let db = QuestDb::connect(&format!("ws::addr={addr};target=primary;")).expect("primary");
    let mut reader = db.borrow_reader().expect("reader");
    assert_eq!(
        read_v(&mut reader.execute("SELECT v FROM reader_rows").unwrap()),
        want
    );
    drop(reader);
    drop(db);

    // target=replica: refused, as QuestDB's standalone server refuses it.
    let replica = QuestDb::connect(&format!(
        "ws::addr={addr};target=replica;sender_pool_min=0;"
    ))
    .and_then(|db| db.borrow_reader().map(|_| ()));
    assert!(replica.is_err(), "a standalone server is no replica");

    let db = QuestDb::connect(&format!("ws::addr={addr};compression=zstd;")).expect("zstd");
    let mut reader = db.borrow_reader().expect("reader");
    // zstd bodies decode to the same rows.
    assert_eq!(
        read_v(&mut reader.execute("SELECT v FROM reader_rows").unwrap()),
        want
    );
    // A 4 KiB credit window: the client grants more as it reads.
    let mut cursor = reader
        .prepare("SELECT v FROM reader_rows")
        .initial_credit(4096)
        .execute()
        .unwrap();
    let mut rows = 0usize;
    while let Some(batch) = cursor.next_batch().unwrap() {
        rows += batch.row_count();
    }
    assert_eq!(rows, READER_ROWS as usize);
    assert!(
        cursor.credit_granted_total() > 0,
        "the client granted credit"
    );
    drop(cursor);

    // A timeout the query cannot meet.
    let err = reader
        .prepare("SELECT count(*) FROM long_sequence(100000) a CROSS JOIN long_sequence(100000) b")
        .timeout(Duration::from_millis(200))
        .execute()
        .and_then(|mut c| c.fetch_all_arrow().map(|_| ()))
        .expect_err("the query cannot finish in 200 ms");
    assert_eq!(err.code(), questdb::ErrorCode::QueryTimeout, "{err}");

    // Cancel mid-stream, then the same reader serves the next query.
    let mut cursor = reader
        .prepare("SELECT v FROM reader_rows")
        .initial_credit(1)
        .execute()
        .unwrap();
    assert!(cursor.next_batch().unwrap().is_some());
    cursor.cancel().expect("cancel");
    drop(cursor);
    assert_eq!(
        read_v(&mut reader.execute("SELECT v FROM reader_rows").unwrap()),
        want
    );
}
