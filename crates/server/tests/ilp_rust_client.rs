//! The official Rust crate's line protocol senders against the real
//! server: `http::` and `tcp::` in protocol versions 1, 2 and 3 (and
//! `http::` negotiating its version through `GET /settings`), with every
//! column type the crate offers for ILP. Each table is read back from
//! storage and compared value by value with the values sent.

mod common;
mod stored;

use arrow::datatypes::TimeUnit;
use common::TestServer;
use questdb::ingress::{Buffer, ProtocolVersion, Sender, TimestampMicros, TimestampNanos};
use quiver_storage::ColumnType as T;
use stored::{Checks, dec, now_micros, read_table};

const NOTE: &str = "say \"hi\"\nand \\ bye, ünïcödé";
const AT0_NS: i64 = 1_700_000_000_123_456_789;
const AT1_US: i64 = 1_700_000_001_000_001;
const SEEN0_US: i64 = 1_700_000_000_654_321;
const SEEN2_NS: i64 = 1_700_000_002_000_000_999;

/// Three rows into `table`: every type in the first, NULLs (absent fields)
/// in the second, a server-time row whose `seen` is sent in nanoseconds
/// (a second block for the column, coerced into its TIMESTAMP) in the third.
fn rows(buffer: &mut Buffer, table: &str, version: ProtocolVersion) {
    buffer
        .table(table)
        .unwrap()
        .symbol("sym", "a,b=c d")
        .unwrap()
        .symbol("venue", "x\\y")
        .unwrap()
        .column_i64("qty", -42)
        .unwrap()
        .column_f64("px", 1.0 / 3.0)
        .unwrap()
        .column_bool("ok", true)
        .unwrap()
        .column_str("note", NOTE)
        .unwrap()
        .column_ts("seen", TimestampMicros::new(SEEN0_US))
        .unwrap();
    if version != ProtocolVersion::V1 {
        buffer
            .column_arr("grid", &vec![vec![1.5, 2.5, 3.5], vec![-1.0, 0.0, 1e300]])
            .unwrap();
    }
    if version == ProtocolVersion::V3 {
        buffer.column_dec("price", "-123.4500").unwrap();
    }
    buffer.at(TimestampNanos::new(AT0_NS)).unwrap();

    buffer
        .table(table)
        .unwrap()
        .symbol("sym", "b")
        .unwrap()
        .column_f64("px", f64::NEG_INFINITY)
        .unwrap()
        .column_bool("ok", false)
        .unwrap();
    if version == ProtocolVersion::V3 {
        buffer.column_dec("price", "7.5").unwrap();
    }
    buffer.at(TimestampMicros::new(AT1_US)).unwrap();

    buffer
        .table(table)
        .unwrap()
        .column_i64("qty", i64::MAX)
        .unwrap()
        .column_ts("seen", TimestampNanos::new(SEEN2_NS))
        .unwrap();
    buffer.at_now().unwrap();
}

fn send(conf: &str, table: &str, version: ProtocolVersion) {
    let mut sender = Sender::from_conf(conf).unwrap_or_else(|e| panic!("{conf}: {e}"));
    let mut buffer = sender.new_buffer();
    assert_eq!(buffer.protocol_version(), version, "{conf}");
    rows(&mut buffer, table, version);
    sender
        .flush(&mut buffer)
        .unwrap_or_else(|e| panic!("{conf}: {e}"));
}

fn check(server: &TestServer, table: &str, version: ProtocolVersion, before: i64) {
    let t = read_table(&server.storage(), table);
    let mut types = vec![
        ("sym", T::Symbol),
        ("venue", T::Symbol),
        ("qty", T::Long),
        ("px", T::Double),
        ("ok", T::Boolean),
        ("note", T::Varchar),
        ("seen", T::Timestamp),
    ];
    if version != ProtocolVersion::V1 {
        types.push(("grid", T::DoubleArray(2)));
    }
    if version == ProtocolVersion::V3 {
        types.push(("price", T::Decimal128(4)));
    }
    types.push(("timestamp", T::Timestamp));
    t.assert_types(&types);
    assert_eq!(t.designated(), Some("timestamp"));
    assert_eq!(t.rows(), 3, "{table}");
    let mut c = Checks::default();
    c.eq(
        "sym",
        t.syms("sym"),
        vec![Some("a,b=c d".into()), Some("b".into()), None],
    );
    c.eq(
        "venue",
        t.syms("venue"),
        vec![Some("x\\y".into()), None, None],
    );
    c.eq("qty", t.ints("qty"), vec![Some(-42), None, Some(i64::MAX)]);
    c.floats(
        "px",
        &t.floats("px"),
        &[Some(1.0 / 3.0), Some(f64::NEG_INFINITY), None],
    );
    // Stored NULL; queries show a NULL BOOLEAN as false, as QuestDB does.
    c.eq("ok", t.bools("ok"), vec![Some(true), Some(false), None]);
    c.eq("note", t.strs("note"), vec![Some(NOTE.into()), None, None]);
    c.eq(
        "seen",
        t.times("seen", TimeUnit::Microsecond),
        vec![Some(SEEN0_US), None, Some(SEEN2_NS.div_euclid(1000))],
    );
    if version != ProtocolVersion::V1 {
        c.eq(
            "grid",
            t.arrays2("grid"),
            vec![
                Some(vec![vec![1.5, 2.5, 3.5], vec![-1.0, 0.0, 1e300]]),
                None,
                None,
            ],
        );
    }
    if version == ProtocolVersion::V3 {
        c.eq(
            "price",
            t.decimals("price"),
            (vec![Some(dec("-1234500")), Some(dec("75000")), None], 4),
        );
    }
    let ts = t.times("timestamp", TimeUnit::Microsecond);
    c.eq(
        "timestamp (sent)",
        ts[..2].to_vec(),
        vec![Some(AT0_NS.div_euclid(1000)), Some(AT1_US)],
    );
    let now = ts[2].unwrap_or(0);
    c.check(
        now >= before && now <= now_micros(),
        format!("server time {now} not between {before} and now"),
    );
    c.finish(table);
}

#[test]
fn http_sender_in_every_protocol_version() {
    let server = TestServer::start();
    for (v, version) in [
        (1, ProtocolVersion::V1),
        (2, ProtocolVersion::V2),
        (3, ProtocolVersion::V3),
    ] {
        let table = format!("http_v{v}");
        let before = now_micros();
        let conf = format!("http::addr={};protocol_version={v};", server.addr());
        send(&conf, &table, version);
        check(&server, &table, version, before);
    }
}

#[test]
fn http_sender_negotiates_the_newest_version() {
    let server = TestServer::start();
    let before = now_micros();
    // No protocol_version: the client reads GET /settings and picks v3.
    send(
        &format!("http::addr={};", server.addr()),
        "http_auto",
        ProtocolVersion::V3,
    );
    check(&server, "http_auto", ProtocolVersion::V3, before);
}

#[test]
fn tcp_sender_in_every_protocol_version() {
    let server = TestServer::start_with(&["--ilp-tcp-listen", "127.0.0.1:0"]);
    let port = server.ilp_tcp_port.expect("tcp port");
    for (v, version) in [
        (1, ProtocolVersion::V1),
        (2, ProtocolVersion::V2),
        (3, ProtocolVersion::V3),
    ] {
        let table = format!("tcp_v{v}");
        let before = now_micros();
        let conf = format!("tcp::addr=127.0.0.1:{port};protocol_version={v};");
        {
            // Dropping the sender closes the connection: the server commits.
            send(&conf, &table, version);
        }
        common::wait_for(|| {
            server
                .storage()
                .snapshot(&table)
                .is_some_and(|s| s.row_count() == 3)
        });
        check(&server, &table, version, before);
    }
}
