//! `request_durable_ack=on` with the official Python client: the upgrade
//! answers `X-QWP-Durable-Ack: enabled` (checked on the wire, and implied
//! by the client connecting at all), flush + wait completes for the row
//! API and `dataframe()`, and the rows are stored.

mod common;
mod stored;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use arrow::datatypes::TimeUnit;
use common::{TestServer, run_python_ok};
use quiver_storage::ColumnType as T;
use stored::{owned, read_table};

/// `BASE_NS` and `DF_ROWS` in `tests/py/durable.py`.
const BASE_NS: i64 = 1_700_000_000_000_000_000;
const DF_ROWS: usize = 40_000;

/// Sends a WebSocket upgrade for `/api/v4/write` (as the client does) and
/// returns the response head, lower-cased header names kept as sent.
fn upgrade_response(addr: &str, durable: bool) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "GET /api/v4/write HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nX-QWP-Max-Version: 1\r\n"
    );
    if durable {
        req.push_str("X-QWP-Request-Durable-Ack: true\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match s.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            other => panic!(
                "upgrade response ended early ({other:?}): {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    String::from_utf8(head).expect("ASCII response head")
}

/// The value of header `name` (case-insensitive) in a response head.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

#[test]
fn upgrade_echoes_durable_ack_only_when_requested() {
    let server = TestServer::start();
    let head = upgrade_response(&server.addr(), true);
    assert!(
        head.starts_with("HTTP/1.1 101"),
        "durable upgrade not accepted:\n{head}"
    );
    assert_eq!(
        header(&head, "X-QWP-Durable-Ack"),
        Some("enabled"),
        "response:\n{head}"
    );
    // RFC 6455 §1.3's example key and accept value.
    assert_eq!(
        header(&head, "Sec-WebSocket-Accept"),
        Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "response:\n{head}"
    );

    let head = upgrade_response(&server.addr(), false);
    assert!(head.starts_with("HTTP/1.1 101"), "response:\n{head}");
    assert_eq!(
        header(&head, "X-QWP-Durable-Ack"),
        None,
        "durable ack echoed without being requested:\n{head}"
    );
}

#[test]
fn rows_and_dataframe_with_durable_acks() {
    let server = TestServer::start();
    let started = Instant::now();
    let out = run_python_ok("durable.py", &[&server.port.to_string()]);
    let elapsed = started.elapsed();
    assert!(out.contains("done durable"), "script output:\n{out}");
    assert!(
        !out.contains("Disconnected") && !out.contains("Reconnected"),
        "the client lost its connection:\n{out}\nserver log:\n{}",
        server.log_text()
    );
    // Waiting on durable acks must not stall (the client's stall detector
    // or a 10 s wait timeout would have failed the script anyway).
    assert!(
        elapsed < Duration::from_secs(30),
        "took {elapsed:?}:\n{out}"
    );

    let db = server.storage();
    let t = read_table(&db, "durable_rows");
    assert_eq!(t.rows(), 3);
    t.assert_types(&[
        ("k", T::Symbol),
        ("v", T::Long),
        ("s", T::Varchar),
        ("timestamp", T::TimestampNanos),
    ]);
    assert_eq!(t.syms("k"), owned(&[Some("a"), Some("b"), Some("a")]));
    assert_eq!(t.ints("v"), [Some(1), Some(2), Some(3)]);
    assert_eq!(
        t.strs("s"),
        owned(&[Some("one"), Some("two"), Some("three")])
    );
    assert_eq!(
        t.times("timestamp", TimeUnit::Nanosecond),
        [Some(BASE_NS), Some(BASE_NS + 1), Some(BASE_NS + 2)]
    );

    let d = read_table(&db, "durable_df");
    assert_eq!(d.rows(), DF_ROWS);
    d.assert_types(&[
        ("i", T::Long),
        ("sym", T::Symbol),
        ("timestamp", T::TimestampNanos),
    ]);
    let is = d.ints("i");
    let syms = d.syms("sym");
    let ts = d.times("timestamp", TimeUnit::Nanosecond);
    for k in 0..DF_ROWS {
        let i = k as i64;
        assert_eq!(is[k], Some(i), "durable_df row {k}: i");
        assert_eq!(
            syms[k].as_deref(),
            Some(["x", "y", "z"][k % 3]),
            "durable_df row {k}: sym"
        );
        assert_eq!(ts[k], Some(BASE_NS + i * 1_000), "durable_df row {k}: ts");
    }
}
