//! SELECT over stored tables: rows from segments and memtables, one
//! snapshot per statement, errors that name what is wrong.

use std::sync::Arc;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch, TimestampMicrosecondArray};
use arrow::datatypes::Int64Type;
use futures_util::StreamExt;
use quiver_sql::{QueryEngine, QueryErrorKind, QueryOptions, QueryOutput};
use quiver_storage::{
    ColumnSchema, ColumnType, Database, Options, PartitionBy, Table, TableSchema, Transaction,
};

fn schema(name: &str) -> TableSchema {
    TableSchema {
        name: name.into(),
        columns: vec![
            ColumnSchema::new("v", ColumnType::Long),
            ColumnSchema::new("timestamp", ColumnType::Timestamp),
        ],
        designated_timestamp: Some(1),
        partition_by: PartitionBy::Day,
        version: 0,
        has_dropped_columns: false,
        ttl: None,
    }
}

fn commit(db: &Database, table: &Arc<Table>, values: std::ops::Range<i64>) {
    let batch = RecordBatch::try_new(
        table.schema().stored_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(values.clone())),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(values.map(|v| v * 1_000))
                    .with_timezone("UTC"),
            ),
        ],
    )
    .unwrap();
    let mut txn = Transaction::new();
    txn.add(table.clone(), batch).unwrap();
    db.commit(txn, false)
        .committed
        .blocking_recv()
        .unwrap()
        .unwrap();
}

/// A database sealing every 100 rows, with table `t` of [`schema`].
fn sealing_table(dir: &std::path::Path) -> (Arc<Database>, Arc<Table>) {
    let db = Database::open(
        dir,
        Options {
            seal_rows: 100,
            ..Options::default()
        },
    )
    .unwrap();
    let t = db
        .create_table(schema("t"))
        .blocking_recv()
        .unwrap()
        .unwrap();
    (db, t)
}

async fn rows(engine: &QueryEngine, sql: &str) -> Vec<RecordBatch> {
    match engine.execute(sql).await.unwrap() {
        QueryOutput::Rows(stream) => stream.map(|b| b.unwrap()).collect().await,
        other => panic!("{other:?}"),
    }
}

fn longs(batches: &[RecordBatch], column: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column(column)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

#[test]
fn select_reads_segments_and_memtable_rows_in_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let (db, t) = sealing_table(dir.path());
    for i in 0..5 {
        commit(&db, &t, i * 50..(i + 1) * 50);
    }
    let engine = QueryEngine::new(db.clone(), &QueryOptions::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let all = rows(&engine, "SELECT v FROM t ORDER BY v").await;
        assert_eq!(longs(&all, 0), (0..250).collect::<Vec<_>>());
        let sum = rows(&engine, "SELECT sum(v), count(*) FROM t WHERE v >= 100").await;
        assert_eq!(
            sum[0].column(0).as_primitive::<Int64Type>().value(0),
            (100..250).sum::<i64>()
        );
        // Table names are case-insensitive, as in QuestDB.
        let upper = rows(&engine, "SELECT count(*) FROM T").await;
        assert_eq!(upper[0].num_rows(), 1);
        // The stored type travels with the column.
        let ts = rows(&engine, "SELECT timestamp FROM t LIMIT 1").await;
        assert_eq!(
            ts[0]
                .schema()
                .field(0)
                .metadata()
                .get("quiver.type")
                .map(String::as_str),
            Some("TIMESTAMP")
        );
    });
}

#[test]
fn errors_name_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), Options::default()).unwrap();
    let engine = QueryEngine::new(db, &QueryOptions::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let e = engine.execute("SELECT * FROM missing").await.unwrap_err();
        assert_eq!(e.kind, QueryErrorKind::Invalid);
        assert!(e.message.contains("missing"), "{e}");
        let e = engine.execute("SELEC 1").await.unwrap_err();
        assert_eq!(e.kind, QueryErrorKind::Invalid, "{e}");
        let e = engine.execute("SELECT 1; SELECT 2").await.unwrap_err();
        assert!(e.message.contains("one statement"), "{e}");
    });
}

#[test]
fn timestamp_filters_skip_segments_and_keep_results_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (db, t) = sealing_table(dir.path());
    // v = 0..400, timestamp = v ms, sealed 100 rows at a time into four
    // segments.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for i in 0..4 {
        commit(&db, &t, i * 100..(i + 1) * 100);
        while db.snapshot("t").unwrap().segments().len() <= i as usize {
            assert!(std::time::Instant::now() < deadline, "rows were not sealed");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let segments = db.snapshot("t").unwrap().segments().len();
    let engine = QueryEngine::new(db.clone(), &QueryOptions::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let plan_line = |batches: Vec<RecordBatch>| {
            batches
                .iter()
                .flat_map(|b| {
                    let col = b.column(1).as_string::<i32>().clone();
                    (0..col.len()).map(move |i| col.value(i).to_string())
                })
                .flat_map(|p| p.lines().map(str::to_string).collect::<Vec<_>>())
                .find(|l| l.contains("SnapshotScanExec"))
                .unwrap()
        };
        for (filter, want) in [
            ("timestamp >= '1970-01-01T00:00:00.300Z'", 300..400),
            ("timestamp < '1970-01-01T00:00:00.050Z'", 0..50),
            (
                "timestamp BETWEEN '1970-01-01T00:00:00.120Z' AND '1970-01-01T00:00:00.129999Z'",
                120..130,
            ),
            ("timestamp = '1970-01-01T00:00:00.333Z'", 333..334),
            // Ends on a block's first or last row (blocks hold 100 ms):
            // strict bounds leave that row out, inclusive ones keep it.
            ("timestamp > '1970-01-01T00:00:00.300Z'", 301..400),
            ("timestamp < '1970-01-01T00:00:00.099Z'", 0..99),
            ("timestamp <= '1970-01-01T00:00:00.199Z'", 0..200),
            (
                "timestamp BETWEEN '1970-01-01T00:00:00.100Z' AND '1970-01-01T00:00:00.198Z'",
                100..199,
            ),
            (
                "timestamp > '1970-01-01T00:00:00.150Z' AND v < 160",
                151..160,
            ),
        ] {
            let got = rows(
                &engine,
                &format!("SELECT v FROM t WHERE {filter} ORDER BY v"),
            )
            .await;
            assert_eq!(longs(&got, 0), want.collect::<Vec<_>>(), "{filter}");
            let plan =
                plan_line(rows(&engine, &format!("EXPLAIN SELECT v FROM t WHERE {filter}")).await);
            let read: usize = plan
                .split("segments=")
                .nth(1)
                .and_then(|s| s.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{plan}"));
            assert!(
                read < segments,
                "{filter}: read {read} of {segments} segments: {plan}"
            );
            assert!(plan.contains("timestamp in ["), "{plan}");
        }
        // SAMPLE BY ... FROM/TO bounds the scan the same way.
        let sampled = "SELECT timestamp, count() FROM t SAMPLE BY 10T FROM '1970-01-01T00:00:00.300Z' TO '1970-01-01T00:00:00.400Z'";
        let got = rows(&engine, sampled).await;
        assert_eq!(longs(&got, 1), vec![10; 10]);
        let explained = rows(&engine, &format!("EXPLAIN {sampled}")).await;
        let text: String = explained
            .iter()
            .map(|b| b.column(1).as_string::<i32>().value(b.num_rows() - 1).to_string())
            .collect();
        assert!(text.contains("SampleByExec: SAMPLE BY 10T"), "{text}");
        let plan = plan_line(explained);
        assert!(plan.contains("timestamp in ["), "{plan}");
        assert!(!plan.contains(&format!("segments={segments} of")), "{plan}");
        // A bound on a time join's left side prunes the left scan.
        let joined = "SELECT count(), sum(b.v) FROM t a ASOF JOIN t b WHERE a.timestamp >= '1970-01-01T00:00:00.300Z'";
        let got = rows(&engine, joined).await;
        assert_eq!(longs(&got, 0), vec![100]);
        assert_eq!(longs(&got, 1), vec![(300..400).sum::<i64>()]);
        let plan = plan_line(rows(&engine, &format!("EXPLAIN {joined}")).await);
        assert!(plan.contains("timestamp in ["), "{plan}");
        assert!(!plan.contains(&format!("segments={segments} of")), "{plan}");
        // Without a bound every segment is read.
        let plan = plan_line(rows(&engine, "EXPLAIN SELECT v FROM t WHERE v > 5").await);
        assert!(
            plan.contains(&format!("segments={segments} of {segments}")),
            "{plan}"
        );
        let all = rows(
            &engine,
            "SELECT count(*) FROM t WHERE timestamp >= '1970-01-01'",
        )
        .await;
        assert_eq!(longs(&all, 0), vec![400]);
    });
}

#[test]
fn an_insert_of_many_small_batches_is_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), Options::default()).unwrap();
    let src = db
        .create_table(schema("src"))
        .blocking_recv()
        .unwrap()
        .unwrap();
    db.create_table(schema("dst"))
        .blocking_recv()
        .unwrap()
        .unwrap();
    // 300 commits of one row: 300 memtable batches, far more than one
    // commit chunk's table blocks.
    for v in 0..300 {
        commit(&db, &src, v..v + 1);
    }
    let engine = QueryEngine::new(db.clone(), &QueryOptions::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        // The last row has no designated timestamp: the whole statement fails.
        let e = engine
            .execute(
                "INSERT INTO dst SELECT v, CASE WHEN v = 299 THEN NULL ELSE timestamp END FROM src",
            )
            .await
            .unwrap_err();
        assert!(e.message.contains("cannot be NULL"), "{e}");
        let n = rows(&engine, "SELECT count(*) FROM dst").await;
        assert_eq!(longs(&n, 0), vec![0], "a failed INSERT left rows behind");
        match engine
            .execute("INSERT INTO dst SELECT v, timestamp FROM src")
            .await
            .unwrap()
        {
            QueryOutput::Done { rows, .. } => assert_eq!(rows, 300),
            other => panic!("{other:?}"),
        }
        let n = rows(&engine, "SELECT count(*) FROM dst").await;
        assert_eq!(longs(&n, 0), vec![300]);
    });
}

#[test]
fn blocks_of_a_segment_outside_a_time_range_are_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(
        dir.path(),
        Options {
            seal_rows: 400,
            segment_batch_rows: 100,
            ..Options::default()
        },
    )
    .unwrap();
    let t = db
        .create_table(schema("t"))
        .blocking_recv()
        .unwrap()
        .unwrap();
    // Four commits of 100 rows sealed into one segment of several blocks.
    for i in 0..4 {
        commit(&db, &t, i * 100..(i + 1) * 100);
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while db.snapshot("t").unwrap().segments().is_empty() {
        assert!(std::time::Instant::now() < deadline, "rows were not sealed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let snapshot = db.snapshot("t").unwrap();
    assert_eq!(snapshot.segments().len(), 1);
    let read = |ts_range| {
        let request = quiver_storage::ScanRequest {
            columns: None,
            ts_range,
        };
        snapshot
            .scan_request(&request)
            .map(|b| b.unwrap().num_rows())
            .sum::<usize>()
    };
    assert_eq!(read(None), 400);
    // Rows 150..160 (timestamps in micros) lie in one block of 100.
    let one_block = read(Some((150_000, 160_000)));
    assert!((10..400).contains(&one_block), "read {one_block} rows");
}

#[test]
fn first_observation_alignment_sees_bind_values() {
    use datafusion::common::ScalarValue;
    use datafusion::common::metadata::ScalarAndMetadata;
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), Options::default()).unwrap();
    let t = db
        .create_table(schema("t"))
        .blocking_recv()
        .unwrap()
        .unwrap();
    // v = 0..100 at v ms.
    commit(&db, &t, 0..100);
    let engine = QueryEngine::new(db.clone(), &QueryOptions::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let sql = "SELECT timestamp, count() FROM t WHERE v >= $1 SAMPLE BY 10T ALIGN TO FIRST OBSERVATION";
        let bind = ScalarAndMetadata::new(ScalarValue::Int64(Some(33)), None);
        let out = match engine.execute_with(sql, vec![bind]).await.unwrap() {
            QueryOutput::Rows(stream) => stream.map(|b| b.unwrap()).collect::<Vec<_>>().await,
            other => panic!("{other:?}"),
        };
        // Buckets of 10 ms from the first row after WHERE (33 ms): 33..42,
        // ..., 93..99.
        assert_eq!(longs(&out, 1), vec![10, 10, 10, 10, 10, 10, 7]);
    });
}

#[test]
fn scans_in_timestamp_order_spare_time_joins_a_sort() {
    let dir = tempfile::tempdir().unwrap();
    let (db, t) = sealing_table(dir.path());
    // Two sealed segments and memtable rows, all in timestamp order.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    for i in 0..2 {
        commit(&db, &t, i * 100..(i + 1) * 100);
        while db.snapshot("t").unwrap().segments().len() <= i as usize {
            assert!(std::time::Instant::now() < deadline, "rows were not sealed");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    commit(&db, &t, 200..250);
    assert!(db.snapshot("t").unwrap().is_ts_ordered());
    let engine = QueryEngine::new(db.clone(), &QueryOptions::default()).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let joined = "SELECT count(), sum(b.v) FROM t a ASOF JOIN t b";
    let plan_text = |batches: Vec<RecordBatch>| -> String {
        batches
            .iter()
            .map(|b| {
                b.column(1)
                    .as_string::<i32>()
                    .value(b.num_rows() - 1)
                    .to_string()
            })
            .collect()
    };
    rt.block_on(async {
        let plan = plan_text(rows(&engine, &format!("EXPLAIN {joined}")).await);
        assert!(plan.contains("TimeJoinExec"), "{plan}");
        assert!(!plan.contains("SortExec"), "{plan}");
        // ORDER BY the timestamp needs no sort either.
        let ordered = "SELECT v FROM t ORDER BY timestamp LIMIT 3";
        let plan = plan_text(rows(&engine, &format!("EXPLAIN {ordered}")).await);
        assert!(!plan.contains("SortExec"), "{plan}");
        assert_eq!(longs(&rows(&engine, ordered).await, 0), vec![0, 1, 2]);
        // SAMPLE BY groups as the rows stream (buckets follow the order).
        let sampled = "SELECT timestamp, count() FROM t SAMPLE BY 100T";
        let plan = plan_text(rows(&engine, &format!("EXPLAIN {sampled}")).await);
        assert!(plan.contains("ordering_mode=Sorted"), "{plan}");
        assert_eq!(longs(&rows(&engine, sampled).await, 1), vec![100, 100, 50]);
        let got = rows(&engine, joined).await;
        assert_eq!(longs(&got, 0), vec![250]);
        assert_eq!(longs(&got, 1), vec![(0..250).sum::<i64>()]);
    });
    // A row older than the newest: the order no longer holds, the join
    // sorts, and the answer stays right (the old row's match is itself).
    commit(&db, &t, 5..6);
    assert!(!db.snapshot("t").unwrap().is_ts_ordered());
    rt.block_on(async {
        let plan = plan_text(rows(&engine, &format!("EXPLAIN {joined}")).await);
        assert!(plan.contains("SortExec"), "{plan}");
        let got = rows(&engine, joined).await;
        assert_eq!(longs(&got, 0), vec![251]);
        // ORDER BY sorts again, and puts the late row in its place.
        let ordered = "SELECT v FROM t ORDER BY timestamp LIMIT 7";
        let plan = plan_text(rows(&engine, &format!("EXPLAIN {ordered}")).await);
        assert!(plan.contains("SortExec"), "{plan}");
        assert_eq!(
            longs(&rows(&engine, ordered).await, 0),
            vec![0, 1, 2, 3, 4, 5, 5]
        );
    });
}

#[test]
fn the_scan_filters_on_several_threads_and_keeps_row_order() {
    let dir = tempfile::tempdir().unwrap();
    let (db, t) = sealing_table(dir.path());
    // v = 0..1000 in 40 commits of 25: some sealed into segments, the
    // rest memtable batches; each is a block dealt to one of 4 threads.
    for i in 0..40 {
        commit(&db, &t, i * 25..(i + 1) * 25);
    }
    let engine = QueryEngine::new(
        db.clone(),
        &QueryOptions {
            threads: 4,
            ..QueryOptions::default()
        },
    )
    .unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        for _ in 0..20 {
            // Blocks where nothing passes sit between those where rows do.
            let got = rows(&engine, "SELECT v FROM t WHERE v % 60 < 3").await;
            let want: Vec<i64> = (0..1000).filter(|v| v % 60 < 3).collect();
            assert_eq!(longs(&got, 0), want);
            // Whole blocks (v < 510) next to partly kept ones in one run
            // of blocks: views and joined copies, in order.
            let got = rows(&engine, "SELECT v FROM t WHERE v < 510 OR v % 7 = 0").await;
            let want: Vec<i64> = (0..1000).filter(|v| *v < 510 || v % 7 == 0).collect();
            assert_eq!(longs(&got, 0), want);
            let got = rows(&engine, "SELECT v FROM t WHERE v % 9 = 4 LIMIT 30").await;
            let want: Vec<i64> = (0..1000).filter(|v| v % 9 == 4).take(30).collect();
            assert_eq!(longs(&got, 0), want);
        }
        // The scan applies the filter: no filter above it.
        let plan = rows(&engine, "EXPLAIN SELECT timestamp FROM t WHERE v % 60 < 3").await;
        let text: String = plan
            .iter()
            .map(|b| {
                b.column(1)
                    .as_string::<i32>()
                    .value(b.num_rows() - 1)
                    .to_string()
            })
            .collect();
        assert!(
            text.contains("SnapshotScanExec") && text.contains("filter="),
            "{text}"
        );
        assert!(!text.contains("FilterExec"), "{text}");
        // A stream dropped after its first batch stops the threads (the
        // next query still runs, the database still closes).
        match engine
            .execute("SELECT v FROM t WHERE v >= 0")
            .await
            .unwrap()
        {
            QueryOutput::Rows(mut stream) => {
                assert!(stream.next().await.unwrap().is_ok());
            }
            other => panic!("{other:?}"),
        }
        let all = rows(&engine, "SELECT count(*) FROM t WHERE v >= 0").await;
        assert_eq!(longs(&all, 0), vec![1000]);
    });
}
