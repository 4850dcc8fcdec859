//! Our SDK's Polars bridge (feature `sdk-polars`, which turns on
//! `quiver-client/polars`; CI runs it as its own step) against the real
//! server:
//!
//! - a `DataFrame` of every Polars type that maps onto QuestDB, large
//!   enough to be cut into several slices, goes in with
//!   `send_dataframe` and comes back equal to the values it was built
//!   from, both as Arrow (`fetch`) and as a `DataFrame`
//!   (`fetch_dataframe`);
//! - a `LazyFrame` is collected and sent;
//! - QuestDB types Polars cannot send (UUID, LONG256, IPv4, CHAR, GEOHASH,
//!   DECIMAL, TIMESTAMP_NS, DATE, arrays) come out of `fetch_dataframe`
//!   with the values the Arrow result holds;
//! - a frame failing in a later slice commits nothing (and rolls back what
//!   was flushed before it); failing in its first slice keeps earlier
//!   flushes; a type with no QuestDB column is refused by name;
//! - categoricals go out as dictionaries of only the categories their rows
//!   use (not every category the process has interned); frames without
//!   rows are checked and frames without columns refused; NULL dictionary
//!   values stay NULL in a `DataFrame`.

#![cfg(feature = "sdk-polars")]

mod common;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{cast, concat_batches};
use arrow::datatypes::{DataType as ArrowType, Int64Type, TimeUnit as ArrowUnit};
use common::{Lcg, TestServer};
use quiver_client::polars::prelude::*;
use quiver_client::{Ack, ArrowOptions, Chunk, Client, ClientError};

const ROWS: usize = 150_000;

fn client(server: &TestServer) -> Client {
    Client::from_conf(&format!("ws::addr={};", server.addr())).unwrap()
}

/// The source values of the every-type frame.
struct Source {
    ts: Vec<i64>,
    flag: Vec<bool>,
    i8s: Vec<i8>,
    i16s: Vec<i16>,
    i32s: Vec<Option<i32>>,
    i64s: Vec<Option<i64>>,
    u8s: Vec<u8>,
    u16s: Vec<u16>,
    u32s: Vec<Option<u32>>,
    f32s: Vec<Option<f32>>,
    f64s: Vec<Option<f64>>,
    text: Vec<Option<String>>,
    sym: Vec<Option<String>>,
    bin: Vec<Option<Vec<u8>>>,
    days: Vec<Option<i32>>,
    arr: Vec<[f64; 3]>,
}

impl Source {
    fn new(rows: usize) -> Source {
        let mut rng = Lcg(5);
        let mut v = || rng.next();
        let mut nulls = Lcg(9);
        let mut valid = move || !nulls.next().is_multiple_of(6);
        let words = [
            "alpha",
            "beta",
            "",
            "é-ü",
            "a much longer value than the others",
        ];
        let base = 1_750_000_000_000_000_000i64;
        let mut s = Source {
            ts: Vec::new(),
            flag: Vec::new(),
            i8s: Vec::new(),
            i16s: Vec::new(),
            i32s: Vec::new(),
            i64s: Vec::new(),
            u8s: Vec::new(),
            u16s: Vec::new(),
            u32s: Vec::new(),
            f32s: Vec::new(),
            f64s: Vec::new(),
            text: Vec::new(),
            sym: Vec::new(),
            bin: Vec::new(),
            days: Vec::new(),
            arr: Vec::new(),
        };
        for r in 0..rows {
            s.ts.push(base + r as i64 * 1_000 + (v() % 1_000) as i64);
            s.flag.push(v() % 2 == 0);
            s.i8s.push(v() as i8);
            s.i16s.push(v() as i16);
            s.i32s.push(valid().then(|| (v() as i32).max(i32::MIN + 1)));
            s.i64s.push(valid().then(|| (v() as i64) - (1 << 52)));
            s.u8s.push(v() as u8);
            s.u16s.push(v() as u16);
            s.u32s.push(valid().then(|| v() as u32));
            s.f32s
                .push(valid().then(|| (v() % 100_000) as f32 / 8.0 - 5000.0));
            s.f64s.push(valid().then(|| v() as f64 / 7.0 - 1e14));
            s.text
                .push(valid().then(|| format!("{}-{}", words[(v() % 5) as usize], v() % 1000)));
            s.sym.push(valid().then(|| format!("sym{}", v() % 50)));
            s.bin.push(valid().then(|| {
                let n = (v() % 24) as usize;
                (0..n).map(|_| v() as u8).collect()
            }));
            s.days.push(valid().then(|| 19_000 + (v() % 2_000) as i32));
            s.arr.push([v() as f64 / 3.0, -(v() as f64), 0.5]);
        }
        s
    }

    fn frame(&self) -> DataFrame {
        let ts = Series::new("ts".into(), &self.ts)
            .cast(&DataType::Datetime(TimeUnit::Nanoseconds, None))
            .unwrap();
        let sym = Series::new("sym".into(), &self.sym)
            .cast(&DataType::from_categories(Categories::global()))
            .unwrap();
        let days = Series::new("day".into(), &self.days)
            .cast(&DataType::Date)
            .unwrap();
        let arr: Vec<Series> = self
            .arr
            .iter()
            .map(|a| Series::new("".into(), a.as_slice()))
            .collect();
        let bin: Vec<Option<&[u8]>> = self.bin.iter().map(|b| b.as_deref()).collect();
        let columns = vec![
            ts,
            Series::new("flag".into(), &self.flag),
            Series::new("i8".into(), &self.i8s),
            Series::new("i16".into(), &self.i16s),
            Series::new("i32".into(), &self.i32s),
            Series::new("i64".into(), &self.i64s),
            Series::new("u8".into(), &self.u8s),
            Series::new("u16".into(), &self.u16s),
            Series::new("u32".into(), &self.u32s),
            Series::new("f32".into(), &self.f32s),
            Series::new("f64".into(), &self.f64s),
            Series::new("text".into(), &self.text),
            sym,
            Series::new("bin".into(), &bin),
            days,
            Series::new("arr".into(), &arr),
        ];
        DataFrame::new(
            self.ts.len(),
            columns.into_iter().map(IntoColumn::into_column).collect(),
        )
        .unwrap()
    }

    /// Every column as integers where it is one (timestamps in
    /// nanoseconds, dates in days, booleans 0/1).
    fn integers(&self) -> Vec<(&'static str, Vec<Option<i64>>)> {
        fn all<T: Copy + Into<i64>>(v: &[T]) -> Vec<Option<i64>> {
            v.iter().map(|&x| Some(x.into())).collect()
        }
        fn some<T: Copy + Into<i64>>(v: &[Option<T>]) -> Vec<Option<i64>> {
            v.iter().map(|x| x.map(Into::into)).collect()
        }
        vec![
            ("ts", all(&self.ts)),
            (
                "flag",
                self.flag.iter().map(|&b| Some(i64::from(b))).collect(),
            ),
            ("i8", all(&self.i8s)),
            ("i16", all(&self.i16s)),
            ("i32", some(&self.i32s)),
            ("i64", some(&self.i64s)),
            ("u8", all(&self.u8s)),
            ("u16", all(&self.u16s)),
            ("u32", some(&self.u32s)),
            ("day", some(&self.days)),
        ]
    }
}

/// An Arrow column as integers: timestamps in nanoseconds, dates in days.
fn arrow_integers(column: &ArrayRef) -> Vec<Option<i64>> {
    let (array, scale) = match column.data_type() {
        ArrowType::Timestamp(unit, _) => {
            let scale = match unit {
                ArrowUnit::Second => 1_000_000_000,
                ArrowUnit::Millisecond => 1_000_000,
                ArrowUnit::Microsecond => 1_000,
                ArrowUnit::Nanosecond => 1,
            };
            (cast(column, &ArrowType::Int64).unwrap(), scale)
        }
        _ => (cast(column, &ArrowType::Int64).unwrap(), 1),
    };
    array
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.map(|v| v * scale))
        .collect()
}

/// A Polars column as integers: datetimes in nanoseconds, dates in days.
fn polars_integers(frame: &DataFrame, name: &str) -> Vec<Option<i64>> {
    let series = frame.column(name).unwrap().as_materialized_series().clone();
    let scale = match series.dtype() {
        DataType::Datetime(TimeUnit::Milliseconds, _) => 1_000_000,
        DataType::Datetime(TimeUnit::Microseconds, _) => 1_000,
        _ => 1,
    };
    let series = series.to_physical_repr().cast(&DataType::Int64).unwrap();
    series
        .i64()
        .unwrap()
        .iter()
        .map(|v| v.map(|v| v * scale))
        .collect()
}

fn polars_strings(frame: &DataFrame, name: &str) -> Vec<Option<String>> {
    let series = frame
        .column(name)
        .unwrap()
        .as_materialized_series()
        .cast(&DataType::String)
        .unwrap();
    series
        .str()
        .unwrap()
        .iter()
        .map(|s| s.map(str::to_owned))
        .collect()
}

fn arrow_strings(column: &ArrayRef) -> Vec<Option<String>> {
    let array = cast(column, &ArrowType::Utf8).unwrap();
    array
        .as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_owned))
        .collect()
}

fn polars_floats(frame: &DataFrame, name: &str) -> Vec<Option<f64>> {
    let series = frame
        .column(name)
        .unwrap()
        .as_materialized_series()
        .cast(&DataType::Float64)
        .unwrap();
    series.f64().unwrap().iter().collect()
}

fn arrow_floats(column: &ArrayRef) -> Vec<Option<f64>> {
    let array = cast(column, &ArrowType::Float64).unwrap();
    array
        .as_primitive::<arrow::datatypes::Float64Type>()
        .iter()
        .collect()
}

fn polars_binaries(frame: &DataFrame, name: &str) -> Vec<Option<Vec<u8>>> {
    let series = frame.column(name).unwrap().as_materialized_series().clone();
    series
        .binary()
        .unwrap_or_else(|_| panic!("{name} is {:?}, not binary", series.dtype()))
        .iter()
        .map(|b| b.map(<[u8]>::to_vec))
        .collect()
}

fn arrow_binaries(column: &ArrayRef) -> Vec<Option<Vec<u8>>> {
    match column.data_type() {
        ArrowType::FixedSizeBinary(_) => column
            .as_fixed_size_binary()
            .iter()
            .map(|b| b.map(<[u8]>::to_vec))
            .collect(),
        _ => cast(column, &ArrowType::Binary)
            .unwrap()
            .as_binary::<i32>()
            .iter()
            .map(|b| b.map(<[u8]>::to_vec))
            .collect(),
    }
}

/// A list column flattened per row (NULL rows as `None`), as f64.
fn polars_lists(frame: &DataFrame, name: &str) -> Vec<Option<Vec<f64>>> {
    fn flatten(series: &Series) -> Vec<f64> {
        match series.dtype() {
            DataType::List(_) => {
                let list = series.list().unwrap();
                (0..list.len())
                    .flat_map(|r| flatten(&list.get_as_series(r).unwrap()))
                    .collect()
            }
            _ => series
                .cast(&DataType::Float64)
                .unwrap()
                .f64()
                .unwrap()
                .into_no_null_iter()
                .collect(),
        }
    }
    let series = frame.column(name).unwrap().as_materialized_series().clone();
    let list = series.list().unwrap();
    (0..list.len())
        .map(|r| list.get_as_series(r).map(|s| flatten(&s)))
        .collect()
}

fn arrow_lists(column: &ArrayRef) -> Vec<Option<Vec<f64>>> {
    fn flatten(array: &ArrayRef) -> Vec<f64> {
        match array.data_type() {
            ArrowType::List(_) => flatten(array.as_list::<i32>().values()),
            ArrowType::LargeList(_) => flatten(array.as_list::<i64>().values()),
            _ => arrow_floats(array)
                .into_iter()
                .map(Option::unwrap)
                .collect(),
        }
    }
    let list = column.as_list::<i32>();
    (0..list.len())
        .map(|r| list.is_valid(r).then(|| flatten(&list.value(r))))
        .collect()
}

fn fetch_arrow(client: &Client, sql: &str) -> RecordBatch {
    let stream = client.query(sql).fetch().unwrap();
    let schema = arrow::array::RecordBatchReader::schema(&stream);
    let batches: Vec<RecordBatch> = stream.map(Result::unwrap).collect();
    concat_batches(&schema, &batches).unwrap()
}

#[test]
fn every_polars_type_round_trips_through_arrow_and_polars_results() {
    let server = TestServer::start();
    let client = client(&server);
    let source = Source::new(ROWS);
    let frame = source.frame();
    assert!(
        frame.estimated_size() > 3 * (8 << 20) / 2,
        "the frame is cut into more than one slice of 8 MiB: {} bytes",
        frame.estimated_size()
    );
    let sent = client
        .send_dataframe(&frame, &ArrowOptions::at_column("pl_types", "ts"), Ack::Ok)
        .unwrap();
    assert_eq!(sent, ROWS as u64);

    let sql = "SELECT * FROM pl_types";
    let arrow = fetch_arrow(&client, sql);
    let polars = client.query(sql).fetch_dataframe().unwrap();
    assert_eq!(arrow.num_rows(), ROWS);
    assert_eq!(polars.height(), ROWS);
    assert_eq!(polars.get_column_names().len(), 16);
    let arrow_col = |name: &str| {
        arrow
            .column_by_name(name)
            .unwrap_or_else(|| panic!("no column {name} in {:?}", arrow.schema()))
            .clone()
    };

    for (name, expected) in source.integers() {
        // The designated timestamp's column is `timestamp`, as QuestDB
        // names it for the official clients' frames.
        let name = if name == "ts" { "timestamp" } else { name };
        let got = if name == "day" {
            // DATE comes back as milliseconds.
            arrow_integers(&arrow_col(name))
                .into_iter()
                .map(|v| v.map(|ns| ns / 86_400_000_000_000))
                .collect()
        } else {
            arrow_integers(&arrow_col(name))
        };
        assert!(got == expected, "Arrow result, column {name}");
        let got = polars_integers(&polars, name);
        let got: Vec<Option<i64>> = if name == "day" {
            got.into_iter()
                .map(|v| v.map(|ns| ns / 86_400_000_000_000))
                .collect()
        } else {
            got
        };
        assert!(got == expected, "Polars result, column {name}");
    }
    let widen32 =
        |v: &[Option<f32>]| -> Vec<Option<f64>> { v.iter().map(|x| x.map(f64::from)).collect() };
    for (name, expected) in [("f32", widen32(&source.f32s)), ("f64", source.f64s.clone())] {
        assert!(arrow_floats(&arrow_col(name)) == expected, "Arrow {name}");
        assert!(polars_floats(&polars, name) == expected, "Polars {name}");
    }
    for (name, expected) in [("text", &source.text), ("sym", &source.sym)] {
        assert!(arrow_strings(&arrow_col(name)) == *expected, "Arrow {name}");
        assert!(polars_strings(&polars, name) == *expected, "Polars {name}");
    }
    assert!(
        matches!(
            polars.column("sym").unwrap().dtype(),
            DataType::Categorical(..)
        ),
        "SYMBOL is a categorical"
    );
    assert!(arrow_binaries(&arrow_col("bin")) == source.bin);
    assert!(polars_binaries(&polars, "bin") == source.bin);
    let arrays: Vec<Option<Vec<f64>>> = source.arr.iter().map(|a| Some(a.to_vec())).collect();
    assert!(arrow_lists(&arrow_col("arr")) == arrays, "Arrow arr");
    assert!(polars_lists(&polars, "arr") == arrays, "Polars arr");

    // Batch by batch, the frames add up to the same rows.
    let mut stream = client.query("SELECT i64 FROM pl_types").fetch().unwrap();
    let mut rows = Vec::new();
    let mut batches = 0;
    while let Some(frame) = stream.next_dataframe().unwrap() {
        batches += 1;
        rows.extend(polars_integers(&frame, "i64"));
    }
    assert!(
        batches > 1,
        "a result of {ROWS} rows comes in several batches"
    );
    assert!(rows == source.i64s);
}

#[test]
fn a_lazy_frame_is_collected_and_sent() {
    let server = TestServer::start();
    let client = client(&server);
    let source = Source::new(20_000);
    let lazy = source
        .frame()
        .lazy()
        .filter(col("i64").is_not_null())
        .select([
            col("ts"),
            col("i64"),
            (col("f64") * lit(2.0)).alias("twice"),
        ]);
    let sent = client
        .send_lazyframe(lazy, &ArrowOptions::at_column("pl_lazy", "ts"), Ack::Ok)
        .unwrap();
    let kept: Vec<usize> = (0..source.ts.len())
        .filter(|&r| source.i64s[r].is_some())
        .collect();
    assert_eq!(sent, kept.len() as u64);
    let frame = client
        .query("SELECT i64, twice FROM pl_lazy")
        .fetch_dataframe()
        .unwrap();
    let expected: Vec<Option<i64>> = kept.iter().map(|&r| source.i64s[r]).collect();
    assert!(polars_integers(&frame, "i64") == expected);
    let twice: Vec<Option<f64>> = kept
        .iter()
        .map(|&r| source.f64s[r].map(|x| x * 2.0))
        .collect();
    assert!(polars_floats(&frame, "twice") == twice);
}

#[test]
fn questdb_types_come_out_of_fetch_dataframe_as_in_arrow() {
    let server = TestServer::start();
    let client = client(&server);
    let rows = 3_000;
    let mut rng = Lcg(21);
    let mut v = || rng.next();
    let ts: Vec<i64> = (0..rows as i64)
        .map(|r| 1_700_000_000_000_000 + r)
        .collect();
    let nanos: Vec<i64> = (0..rows)
        .map(|_| 1_700_000_000_000_000_000 + (v() % 1_000_000_000) as i64)
        .collect();
    let dates: Vec<i64> = (0..rows)
        .map(|_| 1_700_000_000_000 + (v() % 1_000_000) as i64)
        .collect();
    let uuids: Vec<[u8; 16]> = (0..rows)
        .map(|_| std::array::from_fn(|_| v() as u8))
        .collect();
    let l256: Vec<[u8; 32]> = (0..rows)
        .map(|_| std::array::from_fn(|_| v() as u8))
        .collect();
    let ips: Vec<u32> = (0..rows).map(|_| (v() as u32).max(1)).collect();
    let chars: Vec<u16> = (0..rows).map(|_| (v() % 0xD000) as u16 + 1).collect();
    let geo: Vec<u64> = (0..rows).map(|_| v() % (1 << 20)).collect();
    let dec: Vec<i128> = (0..rows)
        .map(|_| i128::from(v() as i64) * 1_000 - 7)
        .collect();
    let values: Vec<f64> = (0..rows * 4).map(|_| v() as f64 / 11.0).collect();
    let offsets: Vec<i32> = (0..=rows as i32).map(|r| r * 4).collect();
    let mut chunk = Chunk::new("pl_qdb", rows).unwrap();
    chunk
        .timestamp_nanos("nanos", &nanos, None)
        .unwrap()
        .date_millis("date", &dates, None)
        .unwrap()
        .uuid("uuid", &uuids, None)
        .unwrap()
        .long256("l256", &l256, None)
        .unwrap()
        .ipv4("ip", &ips, None)
        .unwrap()
        .char("ch", &chars, None)
        .unwrap()
        .geohash("geo", 20, &geo, None)
        .unwrap()
        .decimal128("dec", 3, &dec, None)
        .unwrap()
        .f64_array(
            "arr",
            &[quiver_client::Offsets::I32(&offsets)],
            &values,
            None,
        )
        .unwrap()
        .at_micros(&ts)
        .unwrap();
    let mut sender = client.sender().unwrap();
    sender.flush(&chunk).unwrap();
    sender.sync(Ack::Ok).unwrap();
    drop(sender);

    let sql = "SELECT * FROM pl_qdb";
    let arrow = fetch_arrow(&client, sql);
    let polars = client.query(sql).fetch_dataframe().unwrap();
    assert_eq!(polars.height(), rows);
    for field in arrow.schema().fields() {
        let name = field.name().as_str();
        let column = arrow.column_by_name(name).unwrap();
        match column.data_type() {
            ArrowType::FixedSizeBinary(_) | ArrowType::Binary => {
                assert!(
                    arrow_binaries(column) == polars_binaries(&polars, name),
                    "{name}"
                )
            }
            ArrowType::List(_) => {
                assert!(arrow_lists(column) == polars_lists(&polars, name), "{name}")
            }
            ArrowType::Decimal128(..) => {
                let arrow: Vec<Option<i128>> = column
                    .as_primitive::<arrow::datatypes::Decimal128Type>()
                    .iter()
                    .collect();
                let series = polars
                    .column(name)
                    .unwrap()
                    .as_materialized_series()
                    .clone();
                let polars: Vec<Option<i128>> =
                    series.decimal().unwrap().physical().iter().collect();
                assert!(arrow == polars, "{name}");
            }
            _ => assert!(
                arrow_integers(column) == polars_integers(&polars, name),
                "{name} ({})",
                column.data_type()
            ),
        }
    }
}

#[test]
fn a_frame_failing_in_a_later_slice_commits_nothing() {
    let server = TestServer::start();
    let client = client(&server);
    // Two i64-wide columns: 16 bytes a row, so 600,000 rows are two
    // slices; the last row does not fit a LONG.
    let rows = 600_000;
    let ts: Vec<i64> = (0..rows as i64)
        .map(|r| 1_700_000_000_000_000_000 + r)
        .collect();
    let mut big: Vec<u64> = (0..rows as u64).collect();
    big[rows - 1] = u64::MAX;
    let frame = DataFrame::new(
        rows,
        vec![
            Series::new("ts".into(), &ts)
                .cast(&DataType::Datetime(TimeUnit::Nanoseconds, None))
                .unwrap()
                .into_column(),
            Series::new("big".into(), &big).into_column(),
        ],
    )
    .unwrap();
    let options = ArrowOptions::at_column("pl_fail", "ts");

    // An earlier chunk flushed on the same sender is rolled back too.
    let earlier_ts = [1_600_000_000_000_000_000i64];
    let earlier = [1i64];
    let mut chunk = Chunk::new("pl_fail", 1).unwrap();
    chunk
        .i64("big", &earlier, None)
        .unwrap()
        .at_nanos(&earlier_ts)
        .unwrap();
    let mut sender = client.sender().unwrap();
    sender.flush(&chunk).unwrap();
    match sender.flush_dataframe(&frame, &options) {
        Err(ClientError::ChunkAborted {
            rows: aborted,
            cause,
        }) => {
            assert!(
                aborted > 1,
                "the earlier chunk and the first slice: {aborted}"
            );
            assert!(cause.to_string().contains("big"), "{cause}");
        }
        other => panic!("expected ChunkAborted, got {other:?}"),
    }
    drop(sender);
    let err = client
        .send_dataframe(&frame, &options, Ack::Ok)
        .unwrap_err();
    assert!(err.to_string().contains("LONG"), "{err}");

    let count = client
        .query("SELECT count() FROM pl_fail")
        .fetch_dataframe()
        .map(|f| polars_integers(&f, f.get_column_names()[0].as_str())[0]);
    assert!(
        matches!(count, Ok(Some(0))) || matches!(count, Err(ClientError::Query { .. })),
        "nothing committed: {count:?}"
    );

    // Failing in the first slice sends nothing of the frame; earlier
    // flushes stay pending and commit.
    let mut sender = client.sender().unwrap();
    sender.flush(&chunk).unwrap();
    let mut bad_first = big.clone();
    bad_first[0] = u64::MAX;
    let frame = DataFrame::new(
        rows,
        vec![
            frame.column("ts").unwrap().clone(),
            Series::new("big".into(), &bad_first).into_column(),
        ],
    )
    .unwrap();
    let err = sender.flush_dataframe(&frame, &options).unwrap_err();
    assert!(matches!(err, ClientError::Chunk(_)), "{err:?}");
    sender.sync(Ack::Ok).unwrap();
    let frame = client
        .query("SELECT big FROM pl_fail")
        .fetch_dataframe()
        .unwrap();
    assert_eq!(polars_integers(&frame, "big"), vec![Some(1)]);
}

#[test]
fn a_polars_type_without_a_questdb_column_is_refused_by_name() {
    let server = TestServer::start();
    let client = client(&server);
    let fixed = Series::new("fixed".into(), &[1.0f64, 2.0, 3.0, 4.0])
        .reshape_array(&[ReshapeDimension::Infer, ReshapeDimension::new_dimension(2)])
        .unwrap();
    let frame = DataFrame::new(2, vec![fixed.into_column()]).unwrap();
    let err = client
        .send_dataframe(&frame, &ArrowOptions::at_server_time("pl_refused"), Ack::Ok)
        .unwrap_err();
    assert!(err.to_string().contains("fixed"), "{err}");
    // Nothing was created.
    assert!(matches!(
        client.query("SELECT * FROM pl_refused").fetch(),
        Err(ClientError::Query { .. })
    ));
}

#[test]
fn categoricals_are_sent_with_only_the_categories_their_rows_use() {
    // Many categories in the process-wide mapping (as a large query
    // result leaves there); a later small frame must not carry them all.
    let many: Vec<String> = (0..200_000).map(|i| format!("seen-{i}")).collect();
    let seen = Series::new("many".into(), &many)
        .cast(&DataType::from_categories(Categories::global()))
        .unwrap();
    assert_eq!(seen.len(), many.len());
    let sym = Series::new("sym".into(), &[Some("b"), None, Some("a"), Some("b")])
        .cast(&DataType::from_categories(Categories::global()))
        .unwrap();
    let px = Series::new("px".into(), &[1.0f64, 2.0, 3.0, 4.0]);
    let frame = DataFrame::new(4, vec![sym.into_column(), px.into_column()]).unwrap();

    let batches = quiver_client::bench::dataframe_batches(&frame).unwrap();
    let dictionary = batches[0].column(0).as_any_dictionary();
    assert_eq!(dictionary.values().len(), 2, "only b and a");
    assert_eq!(batches[0].schema().field(1).name(), "px");

    // And the rows arrive as written, categoricals-only frames too.
    let server = TestServer::start();
    let client = client(&server);
    client
        .send_dataframe(&frame, &ArrowOptions::at_server_time("pl_cats"), Ack::Ok)
        .unwrap();
    let only = frame.select(["sym"]).unwrap();
    client
        .send_dataframe(&only, &ArrowOptions::at_server_time("pl_cats"), Ack::Ok)
        .unwrap();
    let back = fetch_arrow(&client, "SELECT sym, px FROM pl_cats");
    let sym = cast(back.column(0), &ArrowType::Utf8).unwrap();
    let got: Vec<Option<&str>> = sym.as_string::<i32>().iter().collect();
    let want = [Some("b"), None, Some("a"), Some("b")];
    assert_eq!(got, [want, want].concat());
    let px = back
        .column(1)
        .as_primitive::<arrow::datatypes::Float64Type>();
    assert_eq!(
        px.iter().take(4).collect::<Vec<_>>(),
        [Some(1.0), Some(2.0), Some(3.0), Some(4.0)]
    );
    assert_eq!(px.null_count(), 4);
}

#[test]
fn frames_without_rows_are_checked_and_frames_without_columns_refused() {
    let server = TestServer::start();
    let client = client(&server);
    let empty = DataFrame::new(
        0,
        vec![Series::new("px".into(), Vec::<f64>::new()).into_column()],
    )
    .unwrap();
    // No column named "ts": refused even without rows.
    let err = client
        .send_dataframe(&empty, &ArrowOptions::at_column("pl_empty", "ts"), Ack::Ok)
        .unwrap_err();
    assert!(err.to_string().contains("ts"), "{err}");
    assert_eq!(
        client
            .send_dataframe(&empty, &ArrowOptions::at_server_time("pl_empty"), Ack::Ok)
            .unwrap(),
        0
    );
    let no_columns = DataFrame::empty_with_height(3);
    let err = client
        .send_dataframe(
            &no_columns,
            &ArrowOptions::at_server_time("pl_empty"),
            Ack::Ok,
        )
        .unwrap_err();
    assert!(err.to_string().contains("3 rows without a column"), "{err}");
}

#[test]
fn null_dictionary_values_stay_null_in_polars() {
    use arrow::array::{DictionaryArray, StringArray, UInt32Array};
    let values = StringArray::from(vec![Some("x"), None]);
    let keys = UInt32Array::from(vec![Some(1), Some(0), None]);
    let dictionary =
        DictionaryArray::<arrow::datatypes::UInt32Type>::try_new(keys, std::sync::Arc::new(values))
            .unwrap();
    let batch =
        RecordBatch::try_from_iter([("s", std::sync::Arc::new(dictionary) as ArrayRef)]).unwrap();
    let frame = quiver_client::batch_to_dataframe(&batch).unwrap();
    let s = frame.column("s").unwrap().cast(&DataType::String).unwrap();
    let got: Vec<Option<&str>> = s.str().unwrap().iter().collect();
    assert_eq!(got, [None, Some("x"), None]);
}
