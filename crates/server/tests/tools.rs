//! `quiver tables` and `quiver export` (Arrow and Parquet): run against a
//! live server's data directory and after it stops, they list the tables
//! and write back exactly the ingested rows, in row-id order, with the
//! stored names and types (the unnamed designated timestamp as `timestamp`).

mod common;

use std::process::Command;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Int64Type, TimeUnit, TimestampMicrosecondType};
use common::TestServer;
use common::raw::{Ack, RawClient, block, longs, message, symbol_ids, timestamps};

fn quiver(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "quiver {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn ingest(server: &TestServer, frames: i64, rows: i64) {
    let mut c = RawClient::connect(&server.addr(), false);
    for f in 0..frames {
        let (delta, ids) = c.register(&["alpha", "beta", "γάμμα"]);
        let first = f * rows;
        c.send(&message(
            delta,
            false,
            vec![block(
                "exported",
                vec![
                    ("n", longs(first..first + rows)),
                    (
                        "s",
                        symbol_ids((first..first + rows).map(|k| ids[(k % 3) as usize])),
                    ),
                    ("", timestamps((first..first + rows).map(|k| k * 10))),
                ],
            )],
        ))
        .unwrap();
    }
    loop {
        match c.read_ack().unwrap() {
            Ack::Ok(seq, _) if seq == frames - 1 => break,
            Ack::Ok(..) => {}
            other => panic!("{other:?}"),
        }
    }
}

fn check_batches(batches: &[RecordBatch], total: i64) {
    let mut n = 0i64;
    for b in batches {
        let schema = b.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(names, ["n", "s", "timestamp"]);
        assert_eq!(
            schema.field(2).data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(schema.field(0).metadata()["quiver.type"], "LONG");
        assert_eq!(schema.field(1).metadata()["quiver.type"], "SYMBOL");
        let col_n = b.column(0).as_primitive::<Int64Type>();
        let ts = b.column(2).as_primitive::<TimestampMicrosecondType>();
        let s = arrow::compute::cast(b.column(1), &DataType::Utf8).unwrap();
        let s = s.as_string::<i32>();
        for i in 0..b.num_rows() {
            assert_eq!(col_n.value(i), n, "row-id order");
            assert_eq!(ts.value(i), n * 10);
            assert_eq!(s.value(i), ["alpha", "beta", "γάμμα"][(n % 3) as usize]);
            assert!(!s.is_null(i));
            n += 1;
        }
    }
    assert_eq!(n, total);
}

#[test]
fn tables_and_export_match_what_was_ingested() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    // Small seal threshold: the export reads segments and memtable rows.
    let mut server = TestServer::start_in(&dir, &["--seal-rows", "700"]);
    ingest(&server, 12, 250);
    let data_dir = dir.to_str().unwrap();

    // While the server runs.
    let listing = quiver(&["tables", "--data-dir", data_dir]);
    assert!(listing.contains("exported (3000 rows"), "{listing}");
    assert!(
        listing.contains("  n LONG") && listing.contains("  s SYMBOL"),
        "{listing}"
    );
    assert!(
        listing.contains("  timestamp TIMESTAMP  designated timestamp"),
        "{listing}"
    );
    let arrow_path = temp.path().join("out.arrow");
    quiver(&[
        "export",
        "--data-dir",
        data_dir,
        "--table",
        "exported",
        "--format",
        "arrow",
        "--out",
        arrow_path.to_str().unwrap(),
    ]);
    let reader =
        arrow::ipc::reader::FileReader::try_new(std::fs::File::open(&arrow_path).unwrap(), None)
            .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    check_batches(&batches, 3000);

    assert_eq!(server.stop().code(), Some(0));
    assert!(
        !server
            .storage()
            .snapshot("exported")
            .unwrap()
            .segments()
            .is_empty(),
        "sealing happened:\n{}",
        server.log_text()
    );

    // After it stops, Parquet.
    let parquet_path = temp.path().join("out.parquet");
    quiver(&[
        "export",
        "--data-dir",
        data_dir,
        "--table",
        "exported",
        "--format",
        "parquet",
        "--out",
        parquet_path.to_str().unwrap(),
    ]);
    let file = std::fs::File::open(&parquet_path).unwrap();
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    check_batches(&batches, 3000);

    // Errors are clear.
    let out = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args([
            "export",
            "--data-dir",
            data_dir,
            "--table",
            "missing",
            "--out",
            "/dev/null",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no table \"missing\""));
}
