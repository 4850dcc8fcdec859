//! Python line-protocol peers against the real server over HTTP: the
//! official client's `Sender.from_conf("http::...")` (a pandas
//! `dataframe()`, every row type, a rejected flush), and InfluxDB's own
//! clients (`influxdb` for the v1 API, `influxdb-client` for v2 with gzip).
//! Stored values are compared with values derived here from the constants
//! in `tests/py/ilp.py`.

mod common;
mod stored;

use arrow::datatypes::TimeUnit;
use common::{TestServer, run_python_ok};
use quiver_storage::ColumnType as T;
use stored::{Checks, dec, read_table};

/// `BASE_NS` in the script: 2023-11-14T22:13:20Z.
const BASE_NS: i64 = 1_700_000_000_000_000_000;
const BASE_US: i64 = BASE_NS / 1000;
/// `ROWS` in the script.
const ROWS: i64 = 10_000;

fn run(server: &TestServer, case: &str) -> String {
    let out = run_python_ok("ilp.py", &[&server.port.to_string(), case]);
    assert!(out.contains(&format!("done {case}")), "{out}");
    out
}

#[test]
fn official_client_dataframe_over_http() {
    let server = TestServer::start();
    let out = run(&server, "dataframe");
    assert!(out.contains("protocol version 3"), "negotiated: {out}");
    let t = read_table(&server.storage(), "py_df");
    t.assert_types(&[
        ("sym", T::Symbol),
        ("i", T::Long),
        ("f", T::Double),
        ("b", T::Boolean),
        ("t", T::TimestampNanos),
        ("s", T::Varchar),
        ("timestamp", T::Timestamp),
    ]);
    assert_eq!(t.rows() as i64, ROWS);
    let mut c = Checks::default();
    let syms = ["x", "y", "z"];
    c.eq(
        "sym",
        t.syms("sym"),
        (0..ROWS)
            .map(|i| Some(syms[(i % 3) as usize].to_string()))
            .collect(),
    );
    c.eq("i", t.ints("i"), (0..ROWS).map(Some).collect());
    // NaN is how pandas says NULL for floats; the client sends it as NaN.
    let f: Vec<Option<f64>> = (0..ROWS)
        .map(|i| Some(if i == 3 { f64::NAN } else { i as f64 * 0.25 }))
        .collect();
    let got = t.floats("f");
    c.check(
        got.len() == f.len()
            && got.iter().zip(&f).all(|(g, w)| match (g, w) {
                (Some(g), Some(w)) => g == w || (g.is_nan() && w.is_nan()),
                (None, Some(w)) => w.is_nan(),
                _ => false,
            }),
        "f differs",
    );
    c.eq(
        "b",
        t.bools("b"),
        (0..ROWS).map(|i| Some(i % 2 == 0)).collect(),
    );
    c.eq(
        "s",
        t.strs("s"),
        (0..ROWS)
            .map(|i| (i % 5 != 0).then(|| format!("row-{i}")))
            .collect(),
    );
    c.eq(
        "t",
        t.times("t", TimeUnit::Nanosecond),
        (0..ROWS)
            .map(|i| (i != 7).then_some(BASE_NS + i * 1000))
            .collect(),
    );
    c.eq(
        "timestamp",
        t.times("timestamp", TimeUnit::Microsecond),
        (0..ROWS).map(|i| Some(BASE_US + i * 1000)).collect(),
    );
    c.finish("py_df");
}

#[test]
fn official_client_rows_and_a_rejected_flush_over_http() {
    let server = TestServer::start();
    run(&server, "rows");
    let t = read_table(&server.storage(), "py_rows");
    t.assert_types(&[
        ("sym", T::Symbol),
        ("l", T::Long),
        ("d", T::Double),
        ("b", T::Boolean),
        ("s", T::Varchar),
        ("tu", T::Timestamp),
        ("tn", T::TimestampNanos),
        ("arr", T::DoubleArray(2)),
        ("dec", T::Decimal128(3)),
        ("timestamp", T::Timestamp),
    ]);
    let mut c = Checks::default();
    c.eq(
        "sym",
        t.syms("sym"),
        vec![Some("a b,c".into()), Some("only".into())],
    );
    c.eq("l", t.ints("l"), vec![Some(-5), None]);
    c.floats("d", &t.floats("d"), &[Some(2.5), None]);
    c.eq("b", t.bools("b"), vec![Some(true), None]);
    c.eq("s", t.strs("s"), vec![Some("ünï \"q\"".into()), None]);
    c.eq(
        "tu",
        t.times("tu", TimeUnit::Microsecond),
        vec![Some(1_700_000_000_000_001), None],
    );
    c.eq(
        "tn",
        t.times("tn", TimeUnit::Nanosecond),
        vec![Some(1_700_000_000_000_000_002), None],
    );
    c.eq(
        "arr",
        t.arrays2("arr"),
        vec![Some(vec![vec![1.0, 2.0], vec![3.0, 4.0]]), None],
    );
    c.eq(
        "dec",
        t.decimals("dec"),
        (vec![Some(dec("12345")), None], 3),
    );
    c.eq(
        "timestamp",
        t.times("timestamp", TimeUnit::Microsecond),
        vec![Some(BASE_US), Some(BASE_US + 1)],
    );
    c.finish("py_rows");

    let out = run(&server, "reject");
    for part in ["line: 2", "column=v", "LONG", "VARCHAR", "code: invalid"] {
        assert!(out.contains(part), "{part} missing from {out}");
    }
    // The first flush stays; the rejected request applied nothing.
    let t = read_table(&server.storage(), "py_reject");
    assert_eq!(t.ints("v"), vec![Some(1)]);
}

#[test]
fn influxdb_clients_v1_and_v2() {
    let server = TestServer::start();
    let out = run(&server, "influx_v1");
    assert!(out.contains("ping 1.8.10"), "{out}");
    let out = run(&server, "influx_v2");
    assert!(out.contains("ping True"), "{out}");
    for (table, second_ts, note) in [
        ("v1_weather", BASE_US + 1000, "warm, \"sunny\""),
        ("v2_weather", BASE_US, "warm"),
    ] {
        let t = read_table(&server.storage(), table);
        t.assert_types(&[
            ("city", T::Symbol),
            ("count", T::Long),
            ("note", T::Varchar),
            ("ok", T::Boolean),
            ("temp", T::Double),
            ("timestamp", T::Timestamp),
        ]);
        let mut c = Checks::default();
        c.eq(
            "city",
            t.syms("city"),
            vec![Some("Oslo".into()), Some("Rome".into())],
        );
        c.eq("count", t.ints("count"), vec![Some(7), Some(-2)]);
        c.eq(
            "note",
            t.strs("note"),
            vec![Some("cold".into()), Some(note.into())],
        );
        c.eq("ok", t.bools("ok"), vec![Some(true), Some(false)]);
        c.floats("temp", &t.floats("temp"), &[Some(3.5), Some(18.25)]);
        c.eq(
            "timestamp",
            t.times("timestamp", TimeUnit::Microsecond),
            vec![Some(BASE_US), Some(second_ts)],
        );
        c.finish(table);
    }
}
