//! The HTTP surface on the listen port (SPEC §1.2, §1.3, §9.2): `/ping`,
//! 404s, upgrade rejections, the 101 headers including durable-ack
//! negotiation, and graceful shutdown on SIGTERM.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::TestServer;
use common::raw::{Ack, RawClient, block, longs, message, timestamps};
use quiver_qwp::SymbolDelta;

/// Sends a raw HTTP request and returns the response head.
fn http(addr: &str, request: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut buf = vec![0u8; 4096];
    let mut out = Vec::new();
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&out).to_string()
}

fn upgrade(path: &str, extra: &str) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{extra}\r\n"
    )
}

#[test]
fn ping_404_and_upgrade_rules() {
    let mut server = TestServer::start();
    let addr = server.addr();
    assert!(http(&addr, "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 204"));
    assert!(http(&addr, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 404"));
    assert!(http(&addr, "GET /read/v2 HTTP/1.1\r\nHost: x\r\n\r\n").starts_with("HTTP/1.1 404"));
    // Both ingest paths upgrade; the accept key is RFC 6455's example.
    for path in ["/write/v4", "/api/v4/write"] {
        let r = http(&addr, &upgrade(path, ""));
        assert!(r.starts_with("HTTP/1.1 101"), "{r}");
        let lower = r.to_ascii_lowercase();
        assert!(
            lower.contains("sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo="),
            "{r}"
        );
        assert!(lower.contains("x-qwp-version: 1\r\n"), "{r}");
        assert!(lower.contains("x-qwp-max-batch-size: 16777216"), "{r}");
        assert!(!lower.contains("x-qwp-durable-ack"), "{r}");
    }
    let r = http(
        &addr,
        &upgrade("/write/v4", "X-QWP-Request-Durable-Ack: true\r\n"),
    );
    assert!(
        r.to_ascii_lowercase()
            .contains("x-qwp-durable-ack: enabled"),
        "{r}"
    );
    // Rejections.
    let r = http(&addr, "GET /write/v4 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    let bad_version = upgrade("/write/v4", "").replace("Version: 13", "Version: 8");
    let r = http(&addr, &bad_version);
    assert!(
        r.starts_with("HTTP/1.1 426")
            && r.to_ascii_lowercase().contains("sec-websocket-version: 13"),
        "{r}"
    );
    let no_key =
        upgrade("/write/v4", "").replace("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "");
    assert!(http(&addr, &no_key).starts_with("HTTP/1.1 400"));
    assert_eq!(server.stop().code(), Some(0));
}

#[test]
fn sigterm_acks_what_was_read_and_keeps_it() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().join("data");
    let mut server = TestServer::start_in(&dir, &[]);
    let mut c = RawClient::connect(&server.addr(), false);
    for i in 0..50 {
        let msg = message(
            SymbolDelta::empty(0),
            false,
            vec![block("t", vec![("v", longs([i])), ("", timestamps([i]))])],
        );
        c.send(&msg).unwrap();
    }
    // Every frame sent before the signal is acked (the last OK covers all).
    let mut last = -1;
    while last < 49 {
        match c.read_ack().unwrap() {
            Ack::Ok(seq, _) => last = seq,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(server.stop().code(), Some(0), "graceful exit");
    assert!(server.log_text().contains("stopped"));
    let db = common::open_storage(&dir);
    assert_eq!(db.snapshot("t").unwrap().row_count(), 50);
}

/// `GET /exec?query=...` (percent-encoded), the whole answer.
fn exec(addr: &str, sql: &str) -> String {
    let query: String = sql
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /exec?query={query} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn query_threads_set_how_many_partitions_plans_use() {
    // Not this machine's core count (2 in CI), so the option must be what
    // decides.
    let server = TestServer::start_with(&["--query-threads", "3"]);
    let addr = server.addr();
    exec(
        &addr,
        "CREATE TABLE t (s SYMBOL, v DOUBLE, ts TIMESTAMP) timestamp(ts)",
    );
    exec(
        &addr,
        "INSERT INTO t VALUES ('a', 1.0, '2026-01-01T00:00:00Z')",
    );
    let plan = exec(&addr, "EXPLAIN SELECT s, sum(v) FROM t GROUP BY s");
    assert!(
        plan.contains("Hash([s@0], 3)"),
        "{plan}\nserver log:\n{}",
        server.log_text()
    );
}
