//! Our SDK's queries (QWP egress) against the real server:
//!
//! - every QuestDB type (DOUBLE and LONG arrays too), sent as an Arrow batch in the form our egress
//!   returns it (types chosen by field metadata), comes back equal value
//!   by value, over many batches, raw and zstd, and equal to what the
//!   official crate's reader returns for the same query (arrays and the
//!   `questdb.*` field metadata);
//! - binds, credit flow control with a tiny window, statements without
//!   rows, refused statements (typed, the connection kept);
//! - a stream dropped mid-result is cancelled and its connection lent
//!   again; concurrent queries share a bounded lane.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::thread;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Decimal64Array, Decimal128Array, Decimal256Array,
    DictionaryArray, FixedSizeBinaryArray, Float32Array, Float64Array, Int8Array, Int16Array,
    Int32Array, Int64Array, ListArray, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray, UInt16Array, UInt32Array,
};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType, Field, Schema, UInt32Type, i256};
use common::{Lcg, TestServer};
use quiver_client::{Ack, ArrowOptions, Client, ClientError, Param};

const ROWS: usize = 5_000;

fn client(server: &TestServer, extra: &str) -> Client {
    Client::from_conf(&format!("ws::addr={};{extra}", server.addr())).unwrap()
}

fn field(name: &str, t: DataType, md: &[(&str, &str)]) -> Field {
    let md: HashMap<String, String> = md
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    Field::new(name, t, true).with_metadata(md)
}

/// Every type, in the Arrow form and with the metadata our egress gives
/// it; NULLs where QuestDB can hold them (not in BOOLEAN, BYTE, SHORT,
/// CHAR), and no value that is a NULL sentinel.
fn every_type(rows: usize) -> RecordBatch {
    let mut rng = Lcg(7);
    let mut null = |r: usize| (r % 7 == 3) || rng.next().is_multiple_of(5);
    let valid: Vec<bool> = (0..rows).map(|r| !null(r)).collect();
    let mut rng = Lcg(11);
    let mut v = || rng.next();
    macro_rules! opt {
        ($r:expr, $x:expr) => {
            valid[$r].then_some($x)
        };
    }
    let ts_base = 1_700_000_000_000_000i64;
    let words = ["alpha", "beta", "gamma", "delta", "é-ü", ""];
    let syms: Vec<String> = (0..40).map(|k| format!("sym{k}")).collect();

    let bools = BooleanArray::from((0..rows).map(|_| v() % 2 == 0).collect::<Vec<_>>());
    let bytes = Int8Array::from((0..rows).map(|_| v() as i8).collect::<Vec<_>>());
    let shorts = Int16Array::from((0..rows).map(|_| v() as i16).collect::<Vec<_>>());
    let chars = UInt16Array::from(
        (0..rows)
            .map(|_| (v() % 0xD000) as u16 + 1)
            .collect::<Vec<_>>(),
    );
    let ints = Int32Array::from(
        (0..rows)
            .map(|r| opt!(r, (v() as i32).max(i32::MIN + 1)))
            .collect::<Vec<_>>(),
    );
    let longs = Int64Array::from(
        (0..rows)
            .map(|r| opt!(r, (v() as i64).max(i64::MIN + 1) - (1 << 40)))
            .collect::<Vec<_>>(),
    );
    let floats = Float32Array::from(
        (0..rows)
            .map(|r| opt!(r, (v() % 100_000) as f32 / 8.0 - 5000.0))
            .collect::<Vec<_>>(),
    );
    let doubles = Float64Array::from(
        (0..rows)
            .map(|r| opt!(r, (v() as f64) / 3.0 - 1e15))
            .collect::<Vec<_>>(),
    );
    let ips = UInt32Array::from(
        (0..rows)
            .map(|r| opt!(r, (v() as u32).max(1)))
            .collect::<Vec<_>>(),
    );
    let keys: Vec<Option<u32>> = (0..rows)
        .map(|r| opt!(r, (v() % syms.len() as u64) as u32))
        .collect();
    let sym = DictionaryArray::<UInt32Type>::try_new(
        keys.into(),
        Arc::new(StringArray::from_iter_values(&syms)),
    )
    .unwrap();
    let micros = TimestampMicrosecondArray::from(
        (0..rows)
            .map(|r| opt!(r, ts_base + (v() % 1_000_000_000) as i64))
            .collect::<Vec<_>>(),
    )
    .with_timezone("UTC");
    let nanos = TimestampNanosecondArray::from(
        (0..rows)
            .map(|r| opt!(r, ts_base * 1000 + (v() % 1_000_000_000_000) as i64))
            .collect::<Vec<_>>(),
    )
    .with_timezone("UTC");
    let dates = TimestampMillisecondArray::from(
        (0..rows)
            .map(|r| opt!(r, ts_base / 1000 + (v() % 1_000_000_000) as i64))
            .collect::<Vec<_>>(),
    )
    .with_timezone("UTC");
    let uuids = FixedSizeBinaryArray::try_from_sparse_iter_with_size(
        (0..rows).map(|r| {
            opt!(r, {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&v().to_le_bytes());
                b[8..].copy_from_slice(&(v() | 1).to_le_bytes());
                b
            })
        }),
        16,
    )
    .unwrap();
    let l256s = FixedSizeBinaryArray::try_from_sparse_iter_with_size(
        (0..rows).map(|r| {
            opt!(r, {
                let mut b = [0u8; 32];
                for w in 0..4 {
                    b[w * 8..w * 8 + 8].copy_from_slice(&(v() | 1).to_le_bytes());
                }
                b
            })
        }),
        32,
    )
    .unwrap();
    let geo = Int64Array::from(
        (0..rows)
            .map(|r| opt!(r, (v() % (1 << 40)) as i64 - 1).map(|g| g.max(0)))
            .collect::<Vec<_>>(),
    );
    let texts = StringArray::from(
        (0..rows)
            .map(|r| opt!(r, words[(v() % words.len() as u64) as usize].repeat(r % 4)))
            .collect::<Vec<_>>(),
    );
    let bins = BinaryArray::from(
        (0..rows)
            .map(|r| opt!(r, &[0u8, 1, 2, 255, 7][..(r % 6).min(5)]))
            .collect::<Vec<_>>(),
    );
    let d64 = Decimal64Array::from(
        (0..rows)
            .map(|r| opt!(r, (v() % 1_000_000_000) as i64 - 500_000_000))
            .collect::<Vec<_>>(),
    )
    .with_precision_and_scale(18, 3)
    .unwrap();
    let d128 = Decimal128Array::from(
        (0..rows)
            .map(|r| opt!(r, i128::from(v()) * 1_000_000_007 - (1 << 70)))
            .collect::<Vec<_>>(),
    )
    .with_precision_and_scale(38, 6)
    .unwrap();
    let d256 = Decimal256Array::from(
        (0..rows)
            .map(|r| {
                opt!(
                    r,
                    i256::from_i128(i128::from(v()) << 40) - i256::from_i128(1 << 90)
                )
            })
            .collect::<Vec<_>>(),
    )
    .with_precision_and_scale(76, 10)
    .unwrap();
    let ts = TimestampMicrosecondArray::from(
        (0..rows as i64)
            .map(|r| ts_base + r * 1000)
            .collect::<Vec<_>>(),
    )
    .with_timezone("UTC");
    // DOUBLE[][]: row r is a (r % 3) x 2 matrix; LONG[]: r % 4 elements.
    let (mut outer, mut inner, mut elements) = (vec![0i32], vec![0i32], Vec::new());
    let (mut long_offsets, mut long_elements) = (vec![0i32], Vec::new());
    for (r, &ok) in valid.iter().enumerate() {
        if ok {
            for _ in 0..r % 3 {
                elements.extend([(v() % 1000) as f64 / 8.0, -((v() % 77) as f64)]);
                inner.push(elements.len() as i32);
            }
            long_elements.extend((0..r % 4).map(|_| (v() % 1_000_000) as i64 - 7));
        }
        outer.push(inner.len() as i32 - 1);
        long_offsets.push(long_elements.len() as i32);
    }
    let item = |t| Arc::new(Field::new("item", t, true));
    let matrices = ListArray::new(
        item(DataType::Float64),
        OffsetBuffer::new(inner.into()),
        Arc::new(Float64Array::from(elements)),
        None,
    );
    let darr = ListArray::new(
        item(matrices.data_type().clone()),
        OffsetBuffer::new(outer.into()),
        Arc::new(matrices),
        Some(NullBuffer::from(valid.clone())),
    );
    let larr = ListArray::new(
        item(DataType::Int64),
        OffsetBuffer::new(long_offsets.into()),
        Arc::new(Int64Array::from(long_elements)),
        Some(NullBuffer::from(valid.clone())),
    );

    let utc = |u| DataType::Timestamp(u, Some("UTC".into()));
    use arrow::datatypes::TimeUnit::{Microsecond, Millisecond, Nanosecond};
    let schema = Schema::new(vec![
        field("b", DataType::Boolean, &[]),
        field("i8", DataType::Int8, &[("questdb.column_type", "byte")]),
        field("i16", DataType::Int16, &[("questdb.column_type", "short")]),
        field("ch", DataType::UInt16, &[("questdb.column_type", "char")]),
        field("i32", DataType::Int32, &[("questdb.column_type", "int")]),
        field("i64", DataType::Int64, &[]),
        field("f32", DataType::Float32, &[]),
        field("f64", DataType::Float64, &[]),
        field("ip", DataType::UInt32, &[("questdb.column_type", "ipv4")]),
        field(
            "sym",
            DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8)),
            &[("questdb.symbol", "true")],
        ),
        field("us", utc(Microsecond), &[]),
        field("ns", utc(Nanosecond), &[]),
        field("ms", utc(Millisecond), &[]),
        field(
            "id",
            DataType::FixedSizeBinary(16),
            &[("ARROW:extension:name", "arrow.uuid")],
        ),
        field(
            "l256",
            DataType::FixedSizeBinary(32),
            &[("questdb.column_type", "long256")],
        ),
        field(
            "geo",
            DataType::Int64,
            &[
                ("questdb.column_type", "geohash"),
                ("questdb.geohash_bits", "40"),
            ],
        ),
        field("s", DataType::Utf8, &[]),
        field("bin", DataType::Binary, &[]),
        field("d64", DataType::Decimal64(18, 3), &[]),
        field("d128", DataType::Decimal128(38, 6), &[]),
        field("d256", DataType::Decimal256(76, 10), &[]),
        field("darr", darr.data_type().clone(), &[]),
        field("larr", larr.data_type().clone(), &[]),
        field("ts", utc(Microsecond), &[]),
    ]);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(bools),
        Arc::new(bytes),
        Arc::new(shorts),
        Arc::new(chars),
        Arc::new(ints),
        Arc::new(longs),
        Arc::new(floats),
        Arc::new(doubles),
        Arc::new(ips),
        Arc::new(sym),
        Arc::new(micros),
        Arc::new(nanos),
        Arc::new(dates),
        Arc::new(uuids),
        Arc::new(l256s),
        Arc::new(geo),
        Arc::new(texts),
        Arc::new(bins),
        Arc::new(d64),
        Arc::new(d128),
        Arc::new(d256),
        Arc::new(darr),
        Arc::new(larr),
        Arc::new(ts),
    ];
    RecordBatch::try_new(Arc::new(schema), columns).unwrap()
}

/// The SELECT list of `every_type`'s columns, in order.
fn select_all(batch: &RecordBatch) -> String {
    let names: Vec<&str> = batch
        .schema_ref()
        .fields()
        .iter()
        .map(|f| match f.name().as_str() {
            // The designated timestamp is stored as `timestamp`, as QuestDB
            // names it.
            "ts" => "timestamp AS ts",
            name => name,
        })
        .collect();
    format!("SELECT {} FROM t", names.join(", "))
}

/// A column with dictionaries resolved to their values (batches carry
/// different dictionaries).
fn plain(a: &ArrayRef) -> ArrayRef {
    match a.data_type() {
        DataType::Dictionary(_, v) => cast(a, v).unwrap(),
        _ => Arc::clone(a),
    }
}

/// Asserts two results hold the same values column by column.
fn assert_same_values(got: &RecordBatch, want: &RecordBatch, what: &str) {
    assert_eq!(got.num_columns(), want.num_columns(), "{what}");
    assert_eq!(got.num_rows(), want.num_rows(), "{what}");
    for (i, f) in want.schema_ref().fields().iter().enumerate() {
        assert_eq!(
            plain(got.column(i)).as_ref(),
            plain(want.column(i)).as_ref(),
            "{what}: column {}",
            f.name()
        );
    }
}

/// Reads a whole stream into one batch, checking every batch carries the
/// stream's schema.
fn collect(stream: quiver_client::QueryStream) -> (RecordBatch, usize) {
    let schema = stream.schema();
    let mut batches = Vec::new();
    for b in stream {
        let b = b.unwrap();
        assert_eq!(b.schema(), schema);
        batches.push(b);
    }
    let n = batches.len();
    (concat_batches(&schema, &batches).unwrap(), n)
}

fn load_every_type(server: &TestServer) -> RecordBatch {
    let batch = every_type(ROWS);
    let client = client(server, "");
    client
        .send_batch(&batch, &ArrowOptions::at_column("t", "ts"), Ack::Ok)
        .unwrap();
    batch
}

#[test]
fn every_type_comes_back_as_it_went_in_raw_and_zstd_and_as_the_official_reader_reads_it() {
    let server = TestServer::start();
    let sent = load_every_type(&server);
    let sql = select_all(&sent);
    for extra in ["compression=raw;", "compression=zstd;"] {
        let client = client(&server, &format!("{extra}max_batch_rows=700;"));
        let stream = client.query(sql.clone()).fetch().unwrap();
        assert_eq!(stream.server().zstd, extra.contains("zstd"), "{extra}");
        let (got, batches) = collect(stream);
        assert!(batches >= ROWS / 700, "{extra}: {batches} batches");
        assert_same_values(&got, &sent, extra);
        // The types and the QuestDB metadata the batch was sent with.
        for (g, w) in got.schema().fields().iter().zip(sent.schema().fields()) {
            assert_eq!(g.data_type(), w.data_type(), "{}", w.name());
            for (k, v) in w.metadata() {
                assert_eq!(g.metadata().get(k), Some(v), "{}: {k}", w.name());
            }
        }
    }

    // The official crate's reader on the same query: the same arrays and
    // the same QuestDB metadata.
    let mut theirs =
        questdb::egress::Reader::from_conf(format!("ws::addr={};", server.addr())).unwrap();
    let mut cursor = theirs.execute(sql.clone()).unwrap();
    let (their_schema, their_batches) = cursor.fetch_all_arrow().unwrap();
    let their = concat_batches(&their_schema, &their_batches).unwrap();
    let (ours, _) = collect(client(&server, "").query(sql).fetch().unwrap());
    assert_same_values(&ours, &their, "ours vs the official reader");
    for (o, t) in ours.schema().fields().iter().zip(their_schema.fields()) {
        assert_eq!(o.data_type(), t.data_type(), "{}", t.name());
        for key in [
            "questdb.column_type",
            "questdb.symbol",
            "questdb.geohash_bits",
            "ARROW:extension:name",
        ] {
            assert_eq!(
                o.metadata().get(key),
                t.metadata().get(key),
                "{}: {key}",
                t.name()
            );
        }
    }
}

#[test]
fn binds_select_rows_and_statements_report_what_they_did() {
    let server = TestServer::start();
    let client = client(&server, "query_pool_max=1;");
    let created = client
        .query("CREATE TABLE k (sym SYMBOL, v LONG, ts TIMESTAMP) TIMESTAMP(ts) PARTITION BY DAY")
        .execute()
        .unwrap();
    assert!(created.op_type.is_some(), "{created:?}");
    let n = 1000i64;
    let values: Vec<String> = (0..n)
        .map(|i| format!("('s{}', {i}, {})", i % 10, 1_700_000_000_000_000 + i))
        .collect();
    let inserted = client
        .query(format!("INSERT INTO k VALUES {}", values.join(", ")))
        .execute()
        .unwrap();
    assert_eq!(inserted.rows, n as u64);

    let (got, _) = collect(
        client
            .query("SELECT v FROM k WHERE v >= $1 AND sym = $2 AND ts > $3")
            .bind(500i64)
            .bind("s3")
            .bind(Param::timestamp_micros(1_700_000_000_000_000 + 600))
            .fetch()
            .unwrap(),
    );
    let want: Vec<i64> = (601..n).filter(|i| i % 10 == 3).collect();
    let v = got.column(0).as_any().downcast_ref::<Int64Array>().unwrap();
    assert_eq!(v.values().to_vec(), want);

    // A query read with `execute` counts its rows.
    let counted = client.query("SELECT * FROM k").execute().unwrap();
    assert_eq!((counted.op_type, counted.rows), (None, n as u64));
    // One connection served all of it.
    assert_eq!(client.reader_stats().open, 1);
}

#[test]
fn a_refused_statement_is_typed_and_the_connection_is_kept() {
    let server = TestServer::start();
    let client = client(&server, "query_pool_max=1;");
    match client.query("SELECT * FROM no_such_table").fetch() {
        Err(ClientError::Query {
            status, message, ..
        }) => {
            assert_eq!(status, 0x05, "{message}");
            assert!(message.contains("no_such_table"), "{message}");
        }
        other => panic!("expected a refused query, got {other:?}"),
    }
    let one = client.query("SELECT 1 AS one").execute().unwrap();
    assert_eq!(one.rows, 1);
    let stats = client.reader_stats();
    assert_eq!((stats.open, stats.idle), (1, 1), "the connection was kept");
}

#[test]
fn a_tiny_credit_window_still_streams_every_batch() {
    let server = TestServer::start();
    let sent = load_every_type(&server);
    let client = client(&server, "max_batch_rows=100;");
    let stream = client.query(select_all(&sent)).credit(1).fetch().unwrap();
    let (got, batches) = collect(stream);
    // At most 100 rows per batch; the server joins batches of fewer than
    // half that, so no more than one per 50 rows.
    assert!(
        (ROWS.div_ceil(100)..=ROWS.div_ceil(50)).contains(&batches),
        "{batches} batches"
    );
    assert_same_values(&got, &sent, "credit(1)");
}

#[test]
fn a_stream_dropped_mid_result_is_cancelled_and_its_connection_lent_again() {
    let server = TestServer::start();
    load_every_type(&server);
    let client = client(&server, "query_pool_max=1;max_batch_rows=10;");
    for credit in [0, 4096] {
        let mut stream = client
            .query("SELECT * FROM t")
            .credit(credit)
            .fetch()
            .unwrap();
        let first = stream.next_batch().unwrap().unwrap();
        assert_eq!(first.num_rows(), 10);
        drop(stream);
        let stats = client.reader_stats();
        assert_eq!((stats.open, stats.idle), (1, 1), "credit {credit}");
        // The same connection runs the next query from a clean state.
        let n = client.query("SELECT * FROM t").execute().unwrap();
        assert_eq!(n.rows, ROWS as u64);
    }
}

#[test]
fn concurrent_queries_share_a_bounded_lane() {
    let server = TestServer::start();
    let sent = load_every_type(&server);
    let client = Arc::new(client(
        &server,
        "query_pool_max=2;acquire_timeout_ms=60000;",
    ));
    let sql = select_all(&sent);
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let client = Arc::clone(&client);
            let sql = sql.clone();
            thread::spawn(move || collect(client.query(sql).fetch().unwrap()).0)
        })
        .collect();
    for t in threads {
        assert_same_values(&t.join().unwrap(), &sent, "concurrent");
    }
    assert!(client.reader_stats().open <= 2);
}

/// Runs a future to completion on this thread (no runtime: the stream
/// needs none).
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    struct Unpark(thread::Thread);
    impl std::task::Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Arc::new(Unpark(thread::current())).into();
    let mut cx = std::task::Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
        thread::park();
    }
}

#[test]
fn the_async_stream_gives_the_same_batches_and_cancels_when_dropped() {
    use futures_util::StreamExt;
    let server = TestServer::start();
    let sent = load_every_type(&server);
    let client = client(&server, "query_pool_max=1;max_batch_rows=300;");
    let mut stream = client
        .query(select_all(&sent))
        .fetch()
        .unwrap()
        .into_async()
        .unwrap();
    let schema = stream.schema();
    let batches = block_on(async {
        let mut all = Vec::new();
        while let Some(b) = stream.next().await {
            all.push(b.unwrap());
        }
        all
    });
    assert!(batches.len() > 1);
    assert_same_values(&concat_batches(&schema, &batches).unwrap(), &sent, "async");
    drop(stream);

    // Dropped after one batch: the worker cancels, the connection comes
    // back and serves the next query.
    let mut stream = client
        .query("SELECT * FROM t")
        .fetch()
        .unwrap()
        .into_async()
        .unwrap();
    let first = block_on(stream.next()).unwrap().unwrap();
    assert_eq!(first.num_rows(), 300);
    drop(stream);
    common::wait_for(|| client.reader_stats().idle == 1);
    assert_eq!(client.reader_stats().open, 1);
    let n = client.query("SELECT * FROM t").execute().unwrap();
    assert_eq!(n.rows, ROWS as u64);
}

#[test]
fn a_server_lost_mid_stream_is_an_error_never_a_short_result_and_the_pool_recovers() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let mut server = TestServer::start_in(&data, &[]);
    let sent = every_type(ROWS);
    client(&server, "")
        .send_batch(&sent, &ArrowOptions::at_column("t", "ts"), Ack::Ok)
        .unwrap();
    let client = client(
        &server,
        "query_pool_max=1;max_batch_rows=10;request_timeout=20000;",
    );
    let mut stream = client.query("SELECT * FROM t").fetch().unwrap();
    let mut rows = stream.next_batch().unwrap().unwrap().num_rows();
    server.kill9();
    // Batches already on the way may still arrive; then an error, not an
    // end that would make a short result look whole.
    let error = loop {
        match stream.next_batch() {
            Ok(Some(b)) => rows += b.num_rows(),
            Ok(None) => panic!("the result ended after {rows} of {ROWS} rows"),
            Err(e) => break e,
        }
    };
    assert!(rows < ROWS);
    assert!(matches!(error, ClientError::Transport { .. }), "{error:?}");
    drop(stream);
    assert_eq!(
        client.reader_stats().open,
        0,
        "the broken connection is closed"
    );

    // The same address again: the pool connects anew.
    let _server = TestServer::start_at(&data, &server.addr(), &[]);
    let (got, _) = collect(client.query(select_all(&sent)).fetch().unwrap());
    assert_same_values(&got, &sent, "after the restart");
}
