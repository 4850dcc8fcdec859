//! The official Python client's `db.dataframe()` against the real server:
//! pandas (NumPy dtypes, Arrow dtypes, nullable extension dtypes,
//! Categorical), pyarrow Tables, polars DataFrames, non-ASCII text, a frame
//! large enough to be split into many QWP messages, and server-assigned
//! timestamps. Each case loads its own table; every stored value and type
//! is compared with values derived here from the constants in
//! `tests/py/dataframes.py`.
//!
//! Column types follow what the client sends for each dtype (e.g. it
//! widens NumPy/Arrow `int32` to LONG and Arrow `int8`/`int16` to INT).

mod common;
mod stored;

use arrow::datatypes::TimeUnit;
use common::{TestServer, run_python_ok};
use quiver_storage::ColumnType as T;
use stored::{
    Checks, Stored, days_from_civil, dec, ipv4, now_micros, owned, read_table, utc_micros,
    uuid_bytes,
};

/// `BASE_NS` in the script: 2023-11-14T22:13:20Z.
const BASE_NS: i64 = 1_700_000_000_000_000_000;
/// `LARGE_ROWS` in the script.
const LARGE_ROWS: usize = 200_000;
const MS_PER_DAY: i64 = 86_400_000;

/// Starts a server, loads `case`, returns the server (kept alive) and
/// the table.
fn load(case: &str, table: &str) -> (TestServer, Stored) {
    let server = TestServer::start();
    let out = run_python_ok("dataframes.py", &[&server.port.to_string(), case]);
    assert!(
        out.contains(&format!("done {case}")),
        "script output:\n{out}"
    );
    let t = read_table(&server.storage(), table);
    (server, t)
}

/// The designated timestamps of `n` rows one second apart from `BASE_NS`.
fn seconds_ns(n: i64) -> Vec<Option<i64>> {
    (0..n).map(|i| Some(BASE_NS + i * 1_000_000_000)).collect()
}

#[test]
fn pandas_numpy_dtypes() {
    let (_server, t) = load("numpy", "df_numpy");
    assert_eq!(t.rows(), 4);
    t.assert_types(&[
        ("i64", T::Long),
        ("i32", T::Long),
        ("f64", T::Double),
        ("f32", T::Float),
        ("flag", T::Boolean),
        ("s", T::Varchar),
        ("s_obj", T::Varchar),
        ("t_ns", T::TimestampNanos),
        ("t_us", T::Timestamp),
        ("timestamp", T::TimestampNanos),
    ]);
    assert_eq!(t.designated(), Some("timestamp"));
    let mut c = Checks::default();
    c.eq(
        "i64",
        t.ints("i64"),
        vec![Some(1), Some(-2), Some(1 << 62), Some(i64::MIN + 1)],
    );
    c.eq(
        "i32",
        t.ints("i32"),
        vec![
            Some(7),
            Some(-7),
            Some(i64::from(i32::MAX)),
            Some(i64::from(i32::MIN) + 1),
        ],
    );
    c.floats(
        "f64 (NaN = NULL)",
        &t.floats("f64"),
        &[Some(1.5), None, Some(-2.25), Some(1e300)],
    );
    c.floats(
        "f32",
        &t.floats("f32"),
        &[Some(0.5), Some(-1.25), Some(3.0), Some(1024.0)],
    );
    c.eq(
        "flag",
        t.bools("flag"),
        vec![Some(true), Some(false), Some(true), Some(false)],
    );
    c.eq(
        "s",
        t.strs("s"),
        owned(&[Some("a"), None, Some("ünï"), Some("")]),
    );
    c.eq(
        "s_obj",
        t.strs("s_obj"),
        owned(&[Some("o1"), Some("ö2"), None, Some("o4")]),
    );
    c.eq(
        "t_ns",
        t.times("t_ns", TimeUnit::Nanosecond),
        vec![
            Some(utc_micros(2024, 1, 1, 0, 0, 0, 0) * 1000 + 1),
            None,
            Some(-1_000),
            Some(utc_micros(2024, 6, 30, 12, 34, 56, 789_000) * 1000),
        ],
    );
    c.eq(
        "t_us",
        t.times("t_us", TimeUnit::Microsecond),
        vec![
            Some(utc_micros(2024, 1, 1, 0, 0, 0, 1)),
            Some(utc_micros(2001, 9, 9, 1, 46, 40, 0)),
            Some(0),
            Some(utc_micros(2038, 1, 19, 3, 14, 8, 0)),
        ],
    );
    c.eq(
        "timestamp",
        t.times("timestamp", TimeUnit::Nanosecond),
        seconds_ns(4),
    );
    c.finish("df_numpy");
}

#[test]
fn pandas_arrow_dtypes() {
    let (_server, t) = load("arrow", "df_arrow");
    assert_eq!(t.rows(), 4);
    t.assert_types(&[
        ("a_i64", T::Long),
        ("a_f64", T::Double),
        ("a_bool", T::Boolean),
        ("a_str", T::Varchar),
        ("a_ts", T::Timestamp),
        ("timestamp", T::TimestampNanos),
    ]);
    let mut c = Checks::default();
    c.eq(
        "a_i64",
        t.ints("a_i64"),
        vec![Some(10), None, Some(-30), Some(1 << 53)],
    );
    c.floats(
        "a_f64",
        &t.floats("a_f64"),
        &[Some(0.25), None, Some(-8.0), Some(1e-300)],
    );
    c.eq(
        "a_bool",
        t.bools("a_bool"),
        vec![Some(true), Some(false), Some(false), Some(true)],
    );
    c.eq(
        "a_str",
        t.strs("a_str"),
        owned(&[Some("x"), None, Some("ÿ€"), Some("last")]),
    );
    c.eq(
        "a_ts",
        t.times("a_ts", TimeUnit::Microsecond),
        vec![
            Some(utc_micros(2024, 3, 1, 0, 0, 0, 1)),
            None,
            Some(utc_micros(2000, 1, 1, 0, 0, 0, 0)),
            Some(utc_micros(2024, 3, 1, 5, 0, 0, 0)),
        ],
    );
    c.eq(
        "timestamp",
        t.times("timestamp", TimeUnit::Nanosecond),
        seconds_ns(4),
    );
    c.finish("df_arrow");
}

#[test]
fn pandas_nullable_extension_dtypes() {
    let (_server, t) = load("masked", "df_masked");
    assert_eq!(t.rows(), 4);
    t.assert_types(&[
        ("m_i64", T::Long),
        ("m_str", T::Varchar),
        ("m_ts", T::TimestampNanos),
        ("timestamp", T::TimestampNanos),
    ]);
    let mut c = Checks::default();
    c.eq(
        "m_i64 (Int64 with NA)",
        t.ints("m_i64"),
        vec![None, Some(5), Some(6), Some(i64::MIN + 1)],
    );
    c.eq(
        "m_str (string[pyarrow] with NA)",
        t.strs("m_str"),
        owned(&[Some("p"), Some("q"), None, Some("ü")]),
    );
    c.eq(
        "m_ts (datetime64[ns] with NaT)",
        t.times("m_ts", TimeUnit::Nanosecond),
        vec![
            Some(1_000),
            None,
            Some(2_000),
            Some(utc_micros(2024, 3, 1, 0, 0, 0, 123_456) * 1000 + 789),
        ],
    );
    c.eq(
        "timestamp",
        t.times("timestamp", TimeUnit::Nanosecond),
        seconds_ns(4),
    );
    c.finish("df_masked");
}

#[test]
fn pandas_categorical_becomes_symbol() {
    let (_server, t) = load("category", "df_category");
    assert_eq!(t.rows(), 6);
    t.assert_types(&[
        ("cat", T::Symbol),
        ("cat2", T::Symbol),
        ("n", T::Long),
        ("timestamp", T::TimestampNanos),
    ]);
    let mut c = Checks::default();
    c.eq(
        "cat",
        t.syms("cat"),
        owned(&[
            Some("ETH"),
            Some("BTC"),
            None,
            Some("ETH"),
            Some("ß-Ω"),
            None,
        ]),
    );
    c.eq(
        "cat2",
        t.syms("cat2"),
        owned(&[
            Some("ü"),
            Some("ü"),
            Some("v"),
            Some("w"),
            Some("v"),
            Some("ü"),
        ]),
    );
    c.eq("n", t.ints("n"), (0..6).map(Some).collect::<Vec<_>>());
    c.eq(
        "timestamp",
        t.times("timestamp", TimeUnit::Nanosecond),
        seconds_ns(6),
    );
    c.finish("df_category");
}

#[test]
fn pandas_non_ascii_strings_and_column_name() {
    let (_server, t) = load("unicode", "df_unicode");
    assert_eq!(t.rows(), 5);
    t.assert_types(&[
        ("名前", T::Varchar),
        ("s_pa", T::Varchar),
        ("timestamp", T::TimestampNanos),
    ]);
    let mut c = Checks::default();
    c.eq(
        "名前",
        t.strs("名前"),
        owned(&[
            Some("東京"),
            Some("Zürich"),
            None,
            Some("🦞 lobster"),
            Some("Ελληνικά"),
        ]),
    );
    c.eq(
        "s_pa",
        t.strs("s_pa"),
        owned(&[
            Some("ąčę"),
            Some(""),
            None,
            Some("𝔘𝔫𝔦"),
            Some("mixed ascii ü"),
        ]),
    );
    c.eq(
        "timestamp",
        t.times("timestamp", TimeUnit::Nanosecond),
        seconds_ns(5),
    );
    c.finish("df_unicode");
}

#[test]
fn pyarrow_table_every_type() {
    let (_server, t) = load("pyarrow", "df_pyarrow");
    assert_eq!(t.rows(), 4);
    t.assert_types(&[
        ("i8", T::Int),
        ("i16", T::Int),
        ("i32", T::Long),
        ("i64", T::Long),
        ("f32", T::Float),
        ("f64", T::Double),
        ("flag", T::Boolean),
        ("s", T::Varchar),
        ("ls", T::Varchar),
        ("sym", T::Symbol),
        ("d_ms", T::Date),
        ("t_us", T::Timestamp),
        ("d32", T::Date),
        ("dec", T::Decimal128(3)),
        ("arr", T::DoubleArray(1)),
        ("arr2", T::DoubleArray(2)),
        ("bin", T::Binary),
        ("u", T::Uuid),
        ("l256", T::Long256),
        ("ip", T::Ipv4),
        ("ch", T::Char),
        ("geo", T::Geohash(20)),
        ("timestamp", T::TimestampNanos),
    ]);
    let mut c = Checks::default();
    c.eq(
        "i8",
        t.ints("i8"),
        vec![Some(1), None, Some(-128), Some(127)],
    );
    c.eq(
        "i16",
        t.ints("i16"),
        vec![Some(1000), Some(-1000), None, Some(32767)],
    );
    c.eq(
        "i32",
        t.ints("i32"),
        vec![None, Some(i64::from(i32::MAX)), Some(-5), Some(0)],
    );
    c.eq(
        "i64",
        t.ints("i64"),
        vec![Some(1 << 40), None, Some(i64::MIN + 1), Some(0)],
    );
    c.floats(
        "f32",
        &t.floats("f32"),
        &[Some(1.5), None, Some(-0.25), Some(f64::from(3e38_f32))],
    );
    c.floats(
        "f64",
        &t.floats("f64"),
        &[None, Some(2.5), Some(-1e-10), Some(6.02e23)],
    );
    c.eq(
        "flag",
        t.bools("flag"),
        vec![Some(true), Some(true), Some(false), Some(true)],
    );
    c.eq(
        "s",
        t.strs("s"),
        owned(&[Some("s0"), None, Some("sß"), Some("")]),
    );
    c.eq(
        "ls",
        t.strs("ls"),
        owned(&[Some("large"), Some("ünï"), None, Some("z")]),
    );
    c.eq(
        "sym (dictionary)",
        t.syms("sym"),
        owned(&[Some("alpha"), Some("βeta"), None, Some("alpha")]),
    );
    c.eq(
        "d_ms (timestamp[ms] -> DATE)",
        t.times("d_ms", TimeUnit::Millisecond),
        vec![Some(1_700_000_000_123), None, Some(-1), Some(0)],
    );
    c.eq(
        "t_us",
        t.times("t_us", TimeUnit::Microsecond),
        vec![Some(1_700_000_000_000_001), Some(0), None, Some(1_000)],
    );
    c.eq(
        "d32 (date32 -> DATE)",
        t.times("d32", TimeUnit::Millisecond),
        vec![
            Some(days_from_civil(2024, 2, 29) * MS_PER_DAY),
            None,
            Some(0),
            Some(days_from_civil(1969, 12, 31) * MS_PER_DAY),
        ],
    );
    let (decimals, scale) = t.decimals("dec");
    c.eq("dec scale", scale, 3);
    c.eq(
        "dec",
        decimals,
        vec![
            Some(dec("1234567891")),
            Some(dec("-1")),
            None,
            Some(dec("0")),
        ],
    );
    c.eq(
        "arr",
        t.arrays1("arr"),
        vec![Some(vec![1.0, 2.0]), None, Some(vec![]), Some(vec![-0.5])],
    );
    c.eq(
        "arr2",
        t.arrays2("arr2"),
        vec![
            Some(vec![vec![1.0, 2.0], vec![3.0, 4.0]]),
            Some(vec![vec![5.0]]),
            None,
            Some(vec![vec![6.0, 7.0, 8.0]]),
        ],
    );
    c.eq(
        "bin",
        t.bytes("bin"),
        vec![
            Some(vec![0x00, 0xFF]),
            Some(vec![]),
            None,
            Some(b"bytes".to_vec()),
        ],
    );
    c.eq(
        "u",
        t.bytes("u"),
        vec![
            Some(uuid_bytes("12345678-9abc-def0-1234-56789abcdef0")),
            None,
            Some(uuid_bytes("ffffffff-0000-0000-0000-000000000001")),
            Some(vec![0; 16]),
        ],
    );
    // 2**200 + 5 as little-endian bytes: byte 0 = 5, bit 200 = byte 25 bit 0.
    let mut l256_a = vec![0u8; 32];
    l256_a[0] = 5;
    l256_a[200 / 8] = 1 << (200 % 8);
    c.eq(
        "l256",
        t.bytes("l256"),
        vec![
            Some(l256_a),
            None,
            Some((0u8..32).collect()),
            Some(vec![0; 32]),
        ],
    );
    c.eq(
        "ip",
        t.ints("ip"),
        vec![
            Some(ipv4("192.168.1.20")),
            None,
            Some(ipv4("10.0.0.1")),
            Some(ipv4("255.255.255.255")),
        ],
    );
    c.eq(
        "ch",
        t.ints("ch"),
        ['A', 'é', '€', 'z']
            .iter()
            .map(|ch| Some(i64::from(u32::from(*ch))))
            .collect::<Vec<_>>(),
    );
    c.eq(
        "geo",
        t.ints("geo"),
        vec![Some(0b1101000011000110110), None, Some(0), Some(1)],
    );
    c.eq(
        "timestamp",
        t.times("timestamp", TimeUnit::Nanosecond),
        seconds_ns(4),
    );
    c.finish("df_pyarrow");
}

#[test]
fn polars_dataframe() {
    let (_server, t) = load("polars", "df_polars");
    assert_eq!(t.rows(), 4);
    t.assert_types(&[
        ("i", T::Long),
        ("f", T::Double),
        ("s", T::Varchar),
        ("b", T::Boolean),
        ("c", T::Symbol),
        ("t_ns", T::TimestampNanos),
        ("d", T::Date),
        ("arr", T::DoubleArray(1)),
        // Datetime("us") designated: TIMESTAMP.
        ("timestamp", T::Timestamp),
    ]);
    let mut c = Checks::default();
    c.eq("i", t.ints("i"), vec![Some(1), None, Some(-3), Some(4)]);
    c.floats(
        "f",
        &t.floats("f"),
        &[Some(0.5), Some(1.5), None, Some(-2.0)],
    );
    c.eq(
        "s",
        t.strs("s"),
        owned(&[Some("pl"), None, Some("ünï"), Some("🦞")]),
    );
    c.eq(
        "b",
        t.bools("b"),
        vec![Some(true), Some(false), Some(true), Some(false)],
    );
    c.eq(
        "c (Categorical)",
        t.syms("c"),
        owned(&[Some("x"), Some("y"), None, Some("x")]),
    );
    c.eq(
        "t_ns",
        t.times("t_ns", TimeUnit::Nanosecond),
        vec![Some(1_700_000_000_000_000_001), None, Some(5), Some(0)],
    );
    c.eq(
        "d (Date -> DATE)",
        t.times("d", TimeUnit::Millisecond),
        vec![
            Some(days_from_civil(2024, 1, 1) * MS_PER_DAY),
            None,
            Some(days_from_civil(2000, 2, 29) * MS_PER_DAY),
            Some(days_from_civil(1970, 1, 2) * MS_PER_DAY),
        ],
    );
    c.eq(
        "arr",
        t.arrays1("arr"),
        vec![Some(vec![1.0]), Some(vec![2.0, 3.0]), None, Some(vec![])],
    );
    c.eq(
        "timestamp",
        t.times("timestamp", TimeUnit::Microsecond),
        (0..4)
            .map(|i| Some(BASE_NS / 1000 + i * 1_000_000))
            .collect::<Vec<_>>(),
    );
    c.finish("df_polars");
}

/// 200,000 rows: the client sends them as many messages (16,384 rows
/// each, all but the last deferring their commit) and a final empty
/// commit message.
#[test]
fn large_frame_split_into_many_messages() {
    let (server, t) = load("large", "df_large");
    assert_eq!(t.rows(), LARGE_ROWS, "df_large rows");
    assert_eq!(t.snapshot_rows, LARGE_ROWS as u64);
    t.assert_types(&[
        ("i", T::Long),
        ("f", T::Double),
        ("sym", T::Symbol),
        ("s", T::Varchar),
        ("timestamp", T::TimestampNanos),
    ]);
    let is = t.ints("i");
    let fs = t.floats("f");
    let syms = t.syms("sym");
    let ss = t.strs("s");
    let ts = t.times("timestamp", TimeUnit::Nanosecond);
    // Every row, in order.
    let mut bad = Vec::new();
    for k in 0..LARGE_ROWS {
        let i = k as i64;
        let ok = is[k] == Some(i)
            && fs[k].map(f64::to_bits) == Some((i as f64 * 0.5).to_bits())
            && syms[k].as_deref() == Some(format!("s{}", i % 7).as_str())
            && ss[k].as_deref() == Some(format!("row-{i}").as_str())
            && ts[k] == Some(BASE_NS + i * 1_000);
        if !ok && bad.len() < 5 {
            bad.push(format!(
                "row {k}: i={:?} f={:?} sym={:?} s={:?} ts={:?}",
                is[k], fs[k], syms[k], ss[k], ts[k]
            ));
        }
    }
    assert!(bad.is_empty(), "df_large rows differ:\n{}", bad.join("\n"));
    // A few rows around the batch boundaries, spelled out.
    for k in [0usize, 16_383, 16_384, 100_000, 196_607, 196_608, 199_999] {
        let i = k as i64;
        assert_eq!(is[k], Some(i), "row {k}");
        assert_eq!(ts[k], Some(BASE_NS + i * 1_000), "row {k}");
    }
    drop(server);
}

#[test]
fn dataframe_with_server_timestamp() {
    let server = TestServer::start();
    let before = now_micros();
    let out = run_python_ok("dataframes.py", &[&server.port.to_string(), "server_ts"]);
    let after = now_micros();
    assert!(out.contains("done server_ts"), "script output:\n{out}");
    let t = read_table(&server.storage(), "df_server_ts");
    assert_eq!(t.rows(), 3);
    t.assert_types(&[
        ("v", T::Long),
        ("s", T::Varchar),
        ("timestamp", T::Timestamp),
    ]);
    assert_eq!(t.designated(), Some("timestamp"));
    assert_eq!(t.ints("v"), [Some(1), Some(2), Some(3)]);
    assert_eq!(t.strs("s"), owned(&[Some("a"), Some("b"), Some("c")]));
    for (i, ts) in t
        .times("timestamp", TimeUnit::Microsecond)
        .iter()
        .enumerate()
    {
        let ts = ts.unwrap_or_else(|| panic!("row {i}: NULL designated timestamp"));
        assert!(
            (before..=after).contains(&ts),
            "row {i}: server time {ts} outside the script's run [{before}, {after}]"
        );
    }
}
