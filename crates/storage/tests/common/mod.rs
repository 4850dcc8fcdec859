//! Shared by the storage tests: a database on a simulated disk, a table
//! whose rows say which transaction wrote them, and reading every table
//! back.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, AsArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array,
};
use arrow::datatypes::{Int64Type, UInt32Type, UInt64Type};
use quiver_storage::io::SimulatedDisk;
use quiver_storage::{
    ColumnSchema, ColumnType, Database, Options, PartitionBy, Table, TableSchema,
};

/// Where the database lives on a simulated disk.
pub const DIR: &str = "/db";

/// Options for a database on `disk` (small thresholds, so seals, WAL rolls
/// and WAL deletion happen in small workloads).
pub fn options(disk: &SimulatedDisk) -> Options {
    Options {
        fs: Arc::new(disk.clone()),
        seal_rows: 40,
        wal_roll_size: 4096,
        max_wal_files: 2,
        segment_batch_rows: 16,
        ..Options::default()
    }
}

/// Opens the database on `disk`.
pub fn open(disk: &SimulatedDisk) -> quiver_storage::Result<Arc<Database>> {
    Database::open(Path::new(DIR), options(disk))
}

/// A table of rows tagged with the transaction (`txn`) and the row's
/// index in it (`i`), a SYMBOL and a designated timestamp.
pub fn schema(name: &str) -> TableSchema {
    TableSchema {
        name: name.into(),
        columns: vec![
            ColumnSchema::new("txn", ColumnType::Long),
            ColumnSchema::new("i", ColumnType::Long),
            ColumnSchema::new("sym", ColumnType::Symbol),
            ColumnSchema::new("timestamp", ColumnType::Timestamp),
        ],
        designated_timestamp: Some(3),
        partition_by: PartitionBy::Day,
        version: 0,
        has_dropped_columns: false,
        ttl: None,
    }
}

/// Creates (or finds) table `name`.
pub fn create(db: &Database, name: &str) -> quiver_storage::Result<Arc<Table>> {
    db.create_table(schema(name))
        .blocking_recv()
        .unwrap_or(Err(quiver_storage::StorageError::Closed))
}

/// `n` rows of transaction `txn`, rows `first..first + n` of it; the day
/// of the timestamp changes every 7 rows, the symbol cycles over 5 values.
pub fn rows(table: &Table, txn: i64, first: i64, n: i64) -> RecordBatch {
    let symbols = table.symbols("sym").unwrap();
    let keys: Vec<u32> = (first..first + n)
        .map(|i| symbols.intern(&format!("s{}", (txn + i) % 5)).unwrap())
        .collect();
    const DAY: i64 = 86_400_000_000;
    RecordBatch::try_new(
        table
            .schema()
            .stored_schema()
            .project(&[0, 1, 2, 3])
            .unwrap()
            .into(),
        vec![
            Arc::new(Int64Array::from_iter_values(std::iter::repeat_n(
                txn, n as usize,
            ))),
            Arc::new(Int64Array::from_iter_values(first..first + n)),
            Arc::new(UInt32Array::from(keys)),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(
                    (first..first + n).map(|i| (txn * 3 + i / 7) * DAY + i),
                )
                .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap()
}

/// One stored row: (row id, txn, i, symbol).
pub type Row = (u64, i64, i64, String);

/// Every visible row of every table, by table name.
pub fn contents(db: &Database) -> BTreeMap<String, Vec<Row>> {
    let mut out = BTreeMap::new();
    for info in db.tables() {
        let name = info.schema.name.clone();
        let snap = db.snapshot(&name).unwrap();
        let mut rows = Vec::new();
        for b in snap.collect(true).unwrap() {
            let ids = b.column(0).as_primitive::<UInt64Type>();
            let txn = b.column(1).as_primitive::<Int64Type>();
            let i = b.column(2).as_primitive::<Int64Type>();
            let sym = b.column(3).as_dictionary::<UInt32Type>();
            let values = sym.values().as_any().downcast_ref::<StringArray>().unwrap();
            for r in 0..b.num_rows() {
                let s = match sym.is_null(r) {
                    true => String::new(),
                    false => values.value(sym.keys().value(r) as usize).to_string(),
                };
                rows.push((ids.value(r), txn.value(r), i.value(r), s));
            }
        }
        out.insert(name, rows);
    }
    out
}

/// Rows per transaction id in `rows`, checking along the way that row ids
/// are dense from 0 and each transaction's rows are whole and in order.
pub fn per_txn(table: &str, rows: &[Row]) -> BTreeMap<i64, i64> {
    let mut out: BTreeMap<i64, i64> = BTreeMap::new();
    for (k, (id, txn, i, sym)) in rows.iter().enumerate() {
        assert_eq!(*id, k as u64, "{table}: row ids are not dense: {rows:?}");
        let seen = out.entry(*txn).or_default();
        assert_eq!(
            *i, *seen,
            "{table}: transaction {txn} is not whole or in order"
        );
        assert_eq!(*sym, format!("s{}", (txn + i) % 5), "{table}: wrong symbol");
        *seen += 1;
    }
    out
}
