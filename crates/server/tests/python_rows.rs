//! The official Python client's row API (`db.sender().row()`) against the
//! real server: every column type the client offers, NULLs, non-ASCII text
//! and symbols, several tables in one frame, server-assigned timestamps,
//! a column added by a later frame and QuestDB's NULL sentinels. Every
//! stored value is compared with a value derived here from the constants
//! in `tests/py/rows_all_types.py`.

mod common;
mod stored;

use arrow::datatypes::TimeUnit;
use common::{TestServer, run_python_ok};
use quiver_storage::ColumnType as T;
use stored::{
    Checks, assert_arrays1, assert_floats, dec, geohash_bits, ipv4, long256_le, now_micros, owned,
    read_table, utc_micros, uuid_bytes,
};

/// `L256_MIXED` in the script.
const L256_MIXED_HEX: &str = "0102030405060708111213141516171821222324252627283132333435363738";

/// Milliseconds of a UTC civil time.
fn utc_millis(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64, ms: i64) -> i64 {
    utc_micros(y, mo, d, h, mi, s, ms * 1000) / 1000
}

/// Asserts a column of a QuestDB type without a NULL (BOOLEAN, CHAR): each
/// row must hold `want`, where `Some(v)` may also be stored as NULL when
/// `v` is the type's default (the client cannot send NULL for these types;
/// a row that did not send the column at all may read as NULL).
fn assert_not_nullable<V: PartialEq + std::fmt::Debug + Copy>(
    what: &str,
    got: &[Option<V>],
    want: &[(Option<V>, bool)],
) {
    assert_eq!(got.len(), want.len(), "{what}: row count");
    for (i, (g, (w, null_ok))) in got.iter().zip(want).enumerate() {
        let ok = g == w || (*null_ok && g.is_none());
        assert!(
            ok,
            "{what}[{i}]: got {g:?}, want {w:?}{}",
            if *null_ok { " or NULL" } else { "" }
        );
    }
}

#[test]
fn row_api_every_type_round_trips() {
    let server = TestServer::start();
    let before = now_micros();
    let out = run_python_ok("rows_all_types.py", &[&server.port.to_string(), "main"]);
    let after = now_micros();
    assert!(out.contains("done main"), "script output:\n{out}");
    let db = server.storage();

    // ---- all_types: 3 rows of frame 1, 1 row of frame 2 ----------------
    let t = read_table(&db, "all_types");
    assert_eq!(t.rows(), 4, "all_types rows");
    assert_eq!(t.snapshot_rows, 4);
    t.assert_types(&[
        ("sym", T::Symbol),
        ("sym_u", T::Symbol),
        ("b", T::Boolean),
        ("l", T::Long),
        ("d", T::Double),
        ("s", T::Varchar),
        ("ts_us", T::Timestamp),
        ("ts_ns", T::TimestampNanos),
        ("arr1", T::DoubleArray(1)),
        ("arr2", T::DoubleArray(2)),
        // Decimal cells go out as DECIMAL256, scale pinned by the first value.
        ("dec", T::Decimal256(4)),
        ("u", T::Uuid),
        ("ip", T::Ipv4),
        ("ch", T::Char),
        ("dt", T::Date),
        ("l256", T::Long256),
        ("geo5", T::Geohash(5)),
        ("geo10", T::Geohash(10)),
        ("geo20", T::Geohash(20)),
        ("geo60", T::Geohash(60)),
        ("bin", T::Binary),
        ("extra", T::Varchar),
        ("timestamp", T::TimestampNanos),
    ]);
    assert_eq!(t.designated(), Some("timestamp"));

    assert_eq!(
        t.syms("sym"),
        owned(&[Some("alpha"), None, Some("βeta-✓"), Some("alpha")])
    );
    assert_eq!(
        t.syms("sym_u"),
        owned(&[Some("βeta-✓"), Some("日本"), Some("alpha"), Some("new ∑")])
    );
    assert_not_nullable(
        "b",
        &t.bools("b"),
        &[
            (Some(true), false),
            (Some(false), false),
            // None in a row: the client writes false.
            (Some(false), false),
            // Not sent in frame 2.
            (Some(false), true),
        ],
    );
    assert_eq!(
        t.ints("l"),
        [Some(42), None, Some(-9_223_372_036_854_775_807), Some(7)]
    );
    assert_floats(
        "d",
        &t.floats("d"),
        &[Some(3.25), None, Some(-1.5e300), None],
    );
    assert_eq!(
        t.strs("s"),
        owned(&[Some("hello"), None, Some("ünïcødé 日本語 🦞"), None])
    );
    assert_eq!(
        t.times("ts_us", TimeUnit::Microsecond),
        [
            Some(1_700_000_000_123_456),
            None,
            Some(utc_micros(2024, 2, 29, 23, 59, 59, 999_999)),
            None
        ]
    );
    assert_eq!(
        t.times("ts_ns", TimeUnit::Nanosecond),
        [Some(1_700_000_000_123_456_789), None, Some(0), None]
    );
    assert_arrays1(
        "arr1",
        &t.arrays1("arr1"),
        &[
            Some(vec![1.0, 2.5, -3.0, f64::NAN]),
            None,
            Some(vec![]),
            None,
        ],
    );
    assert_eq!(
        t.arrays2("arr2"),
        [
            Some(vec![vec![1.0, 2.0, 3.0], vec![4.0, 5.0, 6.0]]),
            None,
            // The transposed view, sent in logical (row-major) order.
            Some(vec![vec![0.0, 3.0], vec![1.0, 4.0], vec![2.0, 5.0]]),
            None
        ]
    );
    let (decimals, scale) = t.decimals("dec");
    assert_eq!(scale, 4);
    assert_eq!(
        decimals,
        // 123.4500, NULL, -0.5, and 2.5 (sent at scale 1 in frame 2).
        [
            Some(dec("1234500")),
            None,
            Some(dec("-5000")),
            Some(dec("25000"))
        ]
    );
    assert_eq!(
        t.bytes("u"),
        [
            Some(uuid_bytes("12345678-9abc-def0-1234-56789abcdef0")),
            None,
            Some(uuid_bytes("00000000-0000-0000-0000-000000000001")),
            None
        ]
    );
    assert_eq!(
        t.ints("ip"),
        [
            Some(ipv4("192.168.1.20")),
            None,
            Some(ipv4("255.255.255.255")),
            None
        ]
    );
    assert_not_nullable(
        "ch",
        &t.ints("ch"),
        &[
            (Some(i64::from(u32::from('A'))), false),
            // Char None: the client writes code unit 0 (CHAR has no NULL).
            (Some(0), true),
            (Some(0x20AC), false),
            (Some(0), true),
        ],
    );
    assert_eq!(
        t.times("dt", TimeUnit::Millisecond),
        [
            Some(1_700_000_000_123),
            None,
            Some(utc_millis(1999, 12, 31, 23, 59, 59, 999)),
            None
        ]
    );
    assert_eq!(
        t.bytes("l256"),
        [
            Some(long256_le(L256_MIXED_HEX)),
            None,
            Some(vec![0xFF; 32]),
            None
        ]
    );
    assert_eq!(
        t.ints("geo5"),
        [Some(geohash_bits("u")), None, Some(0), None]
    );
    assert_eq!(
        t.ints("geo10"),
        [Some(geohash_bits("u3")), None, Some(0b11_1111_1110), None]
    );
    assert_eq!(
        t.ints("geo20"),
        [Some(geohash_bits("u33d")), None, Some(1), None]
    );
    assert_eq!(
        t.ints("geo60"),
        [
            Some(geohash_bits("u33dc0cpke7v")),
            None,
            Some((1i64 << 60) - 2),
            None
        ]
    );
    assert_eq!(
        t.bytes("bin"),
        [Some(vec![0x00, 0x01, 0xFF]), None, Some(vec![]), None]
    );
    assert_eq!(
        t.strs("extra"),
        owned(&[None, None, None, Some("added later")])
    );
    assert_eq!(
        t.times("timestamp", TimeUnit::Nanosecond),
        [
            Some(1_700_000_000_000_000_001),
            Some(1_700_000_001_000_000_000),
            Some(1_700_000_002_500_000_000),
            Some(1_700_000_003_000_000_000)
        ]
    );

    // ---- micros_at: designated timestamp from tz-aware datetimes --------
    let m = read_table(&db, "micros_at");
    assert_eq!(m.rows(), 2);
    m.assert_types(&[
        ("k", T::Symbol),
        ("v", T::Long),
        ("s", T::Varchar),
        ("température", T::Double),
        ("timestamp", T::Timestamp),
    ]);
    assert_eq!(m.designated(), Some("timestamp"));
    assert_eq!(m.syms("k"), owned(&[Some("alpha"), Some("γ")]));
    assert_eq!(m.ints("v"), [Some(1), Some(2)]);
    assert_eq!(m.strs("s"), owned(&[Some("x"), Some("y")]));
    assert_floats(
        "température",
        &m.floats("température"),
        &[Some(21.5), Some(-3.0)],
    );
    assert_eq!(
        m.times("timestamp", TimeUnit::Microsecond),
        [
            // 12:00:00.25 at +05:30 is 06:30:00.25 UTC.
            Some(utc_micros(2024, 1, 1, 6, 30, 0, 250_000)),
            Some(utc_micros(2024, 1, 2, 0, 0, 0, 1))
        ]
    );

    // ---- server_ts: no designated timestamp sent ------------------------
    let s = read_table(&db, "server_ts");
    assert_eq!(s.rows(), 2);
    s.assert_types(&[
        ("k", T::Symbol),
        ("v", T::Long),
        ("timestamp", T::Timestamp),
    ]);
    assert_eq!(s.designated(), Some("timestamp"));
    assert_eq!(s.syms("k"), owned(&[Some("a"), Some("b")]));
    assert_eq!(s.ints("v"), [Some(10), Some(20)]);
    for (i, ts) in s
        .times("timestamp", TimeUnit::Microsecond)
        .iter()
        .enumerate()
    {
        let ts = ts.unwrap_or_else(|| panic!("server_ts row {i}: NULL designated timestamp"));
        assert!(
            (before..=after).contains(&ts),
            "server_ts row {i}: server time {ts} outside the script's run [{before}, {after}]"
        );
    }

    // Nothing else was created.
    let mut names: Vec<String> = db
        .tables()
        .into_iter()
        .map(|t| t.schema.name.clone())
        .collect();
    names.sort();
    assert_eq!(names, ["all_types", "micros_at", "server_ts"]);
}

/// The sentinel tables' expected values: row 0 sent QuestDB's NULL
/// sentinels, row 1 ordinary values, row 2 (bitmap table only) LONG 2 and
/// None elsewhere.
fn check_sentinels(db: &quiver_storage::Database, table: &str, rows: usize, base_ns: i64) {
    let t = read_table(db, table);
    assert_eq!(t.rows(), rows, "{table} rows");
    t.assert_types(&[
        ("l", T::Long),
        ("d", T::Double),
        ("ip", T::Ipv4),
        ("dt", T::Date),
        ("u", T::Uuid),
        ("l256", T::Long256),
        ("timestamp", T::TimestampNanos),
    ]);
    let bitmap = rows == 3;
    // Appends the third row's value when the table has it.
    fn with<V>(mut v: Vec<V>, third: V, bitmap: bool) -> Vec<V> {
        if bitmap {
            v.push(third);
        }
        v
    }
    let mut c = Checks::default();
    c.eq(
        format!("{table}.l"),
        t.ints("l"),
        with(vec![None, Some(1)], Some(2), bitmap),
    );
    c.floats(
        format!("{table}.d"),
        &t.floats("d"),
        &with(vec![None, Some(0.5)], None, bitmap),
    );
    c.eq(
        format!("{table}.ip (0.0.0.0, 10.0.0.1)"),
        t.ints("ip"),
        with(vec![None, Some(ipv4("10.0.0.1"))], None, bitmap),
    );
    c.eq(
        format!("{table}.dt (INT64_MIN, 0)"),
        t.times("dt", TimeUnit::Millisecond),
        with(vec![None, Some(0)], None, bitmap),
    );
    c.eq(
        format!("{table}.u (80000000-0000-0000-8000-000000000000, ...0001)"),
        t.bytes("u"),
        with(
            vec![
                None,
                Some(uuid_bytes("80000000-0000-0000-8000-000000000001")),
            ],
            None,
            bitmap,
        ),
    );
    c.eq(
        format!("{table}.l256 (all limbs 0x8000000000000000, 0)"),
        t.bytes("l256"),
        with(vec![None, Some(vec![0u8; 32])], None, bitmap),
    );
    c.eq(
        format!("{table}.timestamp"),
        t.times("timestamp", TimeUnit::Nanosecond),
        (0..rows as i64).map(|i| Some(base_ns + i)).collect(),
    );
    c.finish(table);
}

#[test]
fn null_sentinels_sent_densely_read_back_as_null() {
    let server = TestServer::start();
    let out = run_python_ok(
        "rows_all_types.py",
        &[&server.port.to_string(), "sentinels"],
    );
    assert!(out.contains("done sentinels"), "script output:\n{out}");
    check_sentinels(
        &server.storage(),
        "sentinels_dense",
        2,
        1_700_000_010_000_000_000,
    );
}

/// The client's documentation promises that IPV4 0.0.0.0, DATE INT64_MIN,
/// UUID 80000000-0000-0000-8000-000000000000 and an all-0x8000000000000000
/// LONG256 "read back as NULL"; with a None elsewhere in the column the
/// client sends them as ordinary values under a null bitmap.
#[test]
fn null_sentinels_sent_with_a_bitmap_read_back_as_null() {
    let server = TestServer::start();
    let out = run_python_ok(
        "rows_all_types.py",
        &[&server.port.to_string(), "sentinels"],
    );
    assert!(out.contains("done sentinels"), "script output:\n{out}");
    check_sentinels(
        &server.storage(),
        "sentinels_bitmap",
        3,
        1_700_000_020_000_000_000,
    );
}
