//! Writes seed inputs for the storage fuzz targets (valid encodings of each
//! on-disk body) into `<dir>/storage_<target>/`:
//! `cargo run -p quiver-storage --example storage_fuzz_seeds -- fuzz/seeds`.

use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, Float64Array, Int64Array, ListArray, RecordBatch, StringArray,
    TimestampMicrosecondArray, UInt32Array,
};
use arrow::datatypes::Float64Type;
use quiver_storage::format::catalog::CatalogFile;
use quiver_storage::format::manifest::Manifest;
use quiver_storage::format::records::{
    PartRecord, PartRows, SchemaRecord, SymbolsRecord, TransactionRecord, TxnPart, join,
};
use quiver_storage::rows::EncodedRows;
use quiver_storage::{ColumnSchema, ColumnType, PartitionBy, Segment, TableSchema};

fn batch() -> RecordBatch {
    let columns: Vec<(&str, ArrayRef)> = vec![
        (
            "l",
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])),
        ),
        ("d", Arc::new(Float64Array::from(vec![1.5, f64::NAN, -0.0]))),
        ("k", Arc::new(UInt32Array::from(vec![0, 1, 2]))),
        (
            "ts",
            Arc::new(TimestampMicrosecondArray::from(vec![1, 2, 3]).with_timezone("UTC")),
        ),
        (
            "s",
            Arc::new(StringArray::from(vec![Some("ç"), None, Some("")])),
        ),
        (
            "b",
            Arc::new(BinaryArray::from_opt_vec(vec![
                Some(b"\x00"),
                None,
                Some(b""),
            ])),
        ),
        (
            "a",
            Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(vec![
                Some(vec![Some(1.0)]),
                None,
                Some(vec![]),
            ])),
        ),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

fn schema() -> TableSchema {
    TableSchema {
        name: "trades".into(),
        columns: vec![
            ColumnSchema::new("sym", ColumnType::Symbol),
            ColumnSchema::new("px", ColumnType::Decimal128(4)),
            ColumnSchema::new("timestamp", ColumnType::Timestamp),
        ],
        designated_timestamp: Some(2),
        partition_by: PartitionBy::Day,
        version: 2,
        has_dropped_columns: false,
        ttl: None,
    }
}

fn write(dir: &Path, target: &str, name: &str, bytes: &[u8]) {
    let d = dir.join(format!("storage_{target}"));
    std::fs::create_dir_all(&d).unwrap();
    std::fs::write(d.join(name), bytes).unwrap();
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: fuzz_seeds <dir>");
    let dir = Path::new(&dir);
    let rows = || EncodedRows::encode(&batch()).unwrap();
    let rows_bytes = join(&rows().into_chunks());
    write(dir, "rows", "every-shape", &rows_bytes);

    let txn = TransactionRecord {
        parts: vec![
            TxnPart {
                table_id: 3,
                first_row_id: 10,
                row_count: 3,
                rows: PartRows::Inline(rows()),
            },
            TxnPart {
                table_id: 4,
                first_row_id: 0,
                row_count: 7,
                rows: PartRows::Staged(9),
            },
        ],
    };
    let mut seed = vec![0u8];
    seed.extend(join(&txn.encode().unwrap()));
    write(dir, "records", "transaction", &seed);
    let mut seed = vec![1u8];
    let part = PartRecord {
        part_id: 9,
        table_id: 4,
        row_count: 3,
    };
    seed.extend(join(&part.encode(rows()).unwrap()));
    write(dir, "records", "part", &seed);
    let mut seed = vec![2u8];
    seed.extend(
        SchemaRecord {
            table_id: 3,
            schema: schema(),
        }
        .encode()
        .unwrap(),
    );
    write(dir, "records", "schema", &seed);
    let mut seed = vec![3u8];
    seed.extend(
        SymbolsRecord {
            table_id: 3,
            column: "sym",
            first_key: 0,
            entries: vec!["a", "b"],
        }
        .encode()
        .unwrap(),
    );
    write(dir, "records", "symbols", &seed);

    let catalog = CatalogFile {
        next_id: 5,
        lsn_floor: 100,
        tables: vec![(3, schema())],
    };
    let mut seed = vec![0u8];
    seed.extend(&catalog.encode().unwrap()[9..]);
    write(dir, "files", "catalog", &seed);
    let table_dir = Path::new("/t");
    let manifest = Manifest {
        table_id: 3,
        sealed_row_end: 5,
        segments: vec![Segment {
            path: table_dir.join("segments/2026-01-01/00000000000000000000-5.arrow"),
            first_row_id: 0,
            row_count: 5,
            live_rows: 5,
            min_ts: 1,
            max_ts: 9,
            cache: Default::default(),
        }],
        symbols: vec![("sym".into(), vec!["a".into(), "b".into()])],
    };
    let mut seed = vec![3u8];
    seed.extend(&manifest.encode(table_dir).unwrap()[9..]);
    write(dir, "files", "manifest", &seed);

    // Three groups of records, then a damage spec.
    let mut spec = Vec::new();
    for (kind, body) in [(0u8, &b"first"[..]), (0x80, b"second"), (0x80, b"third!")] {
        spec.push(kind);
        spec.push(body.len() as u8);
        spec.extend_from_slice(body);
    }
    spec.extend_from_slice(&[60, 0, 0, 0x10]);
    write(dir, "wal", "three-groups", &spec);
}
