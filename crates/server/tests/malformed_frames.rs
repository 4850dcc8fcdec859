//! Bad input from a raw WebSocket client: each kind of malformed frame gets
//! an error ack with the right status, the failing sequence and a message
//! naming what is wrong; nothing of it is stored; later frames on that
//! connection are ignored (the client must reconnect, as with QuestDB);
//! oversized frames close with 1009 and text frames with 1003; garbage and
//! half-open clients never stall others; the server never panics and
//! committed data is untouched.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::TestServer;
use common::raw::{Ack, Closed, RawClient, block, doubles, longs, message, symbol_ids, timestamps};
use quiver_qwp::{ColumnData, StringList, SymbolDelta};

/// A valid one-row frame for `table` on a fresh connection.
fn good_frame(client: &mut RawClient, table: &str, v: i64) -> Vec<u8> {
    let (delta, ids) = client.register(&["ok"]);
    let msg = message(
        delta,
        false,
        vec![block(
            table,
            vec![
                ("v", longs([v])),
                ("s", symbol_ids([ids[0]])),
                ("", timestamps([1_000 + v])),
            ],
        )],
    );
    let mut frame = Vec::new();
    quiver_qwp::encode_ingress_message(&msg, &mut frame).unwrap();
    frame
}

/// A connection whose first frame created table `typed` (`v` LONG, `s`
/// SYMBOL, designated timestamp) with one row, acknowledged.
fn with_typed_table(server: &TestServer) -> RawClient {
    let mut c = RawClient::connect(&server.addr(), false);
    let f = good_frame(&mut c, "typed", 1);
    c.send_raw(f).unwrap();
    assert!(matches!(c.read_ack(), Ok(Ack::Ok(0, _))));
    c
}

fn expect_error(client: &mut RawClient, status: u8, seq: i64, needle: &str) -> String {
    match client.read_ack() {
        Ok(Ack::Error(s, q, m)) => {
            assert_eq!((s, q), (status, seq), "message: {m}");
            assert!(m.contains(needle), "{m:?} should mention {needle:?}");
            m
        }
        other => panic!("expected error {status} for {seq}, got {other:?}"),
    }
}

fn committed_rows(server: &TestServer, table: &str) -> u64 {
    server
        .storage()
        .snapshot(table)
        .map_or(0, |s| s.row_count())
}

#[test]
fn malformed_frames_get_typed_error_acks_and_change_nothing() {
    let mut server = TestServer::start();
    let addr = server.addr();
    // Committed data that must survive everything below.
    let mut c = RawClient::connect(&addr, false);
    let f = good_frame(&mut c, "keep", 1);
    c.send_raw(f).unwrap();
    assert!(matches!(c.read_ack(), Ok(Ack::Ok(0, _))));

    let valid = {
        let mut probe = RawClient::connect(&addr, false);
        good_frame(&mut probe, "bad", 7)
    };
    let mut cases: Vec<(&str, Vec<u8>, u8, &str)> = Vec::new();
    let mut bad_magic = valid.clone();
    bad_magic[..4].copy_from_slice(b"ILP1");
    cases.push(("bad magic", bad_magic, 0x05, "bad magic"));
    let mut bad_version = valid.clone();
    bad_version[4] = 2;
    cases.push((
        "bad version",
        bad_version,
        0x05,
        "unsupported QWP version 2",
    ));
    let mut reserved = valid.clone();
    reserved[5] |= 0x40;
    cases.push(("reserved flag", reserved, 0x05, "flag"));
    let truncated = common_truncate(&valid, valid.len() - 3);
    cases.push(("truncated", truncated, 0x05, "needs"));
    cases.push(("garbage", b"not a qwp frame at all".to_vec(), 0x05, "magic"));
    // Unknown type code: patch the LONG column's type byte (0x05) to 0x08.
    let mut unknown = valid.clone();
    let type_at = find_after(&valid, b"\x01v") + 2;
    unknown[type_at] = 0x08;
    cases.push((
        "unknown type",
        unknown,
        0x05,
        "unknown column type code 0x08 [table=bad, column=v",
    ));
    // A symbol id past the dictionary.
    let msg = message(
        SymbolDelta {
            start: 0,
            entries: StringList::from_strs(["a"]),
        },
        false,
        vec![block(
            "bad",
            vec![("s", symbol_ids([3])), ("", timestamps([1]))],
        )],
    );
    let mut past = Vec::new();
    quiver_qwp::encode_ingress_message(&msg, &mut past).unwrap();
    cases.push((
        "symbol id past dictionary",
        past,
        0x05,
        "symbol id 3 is past the end of the dictionary",
    ));
    // A delta dictionary that skips ids.
    let msg = message(
        SymbolDelta {
            start: 5,
            entries: StringList::from_strs(["x"]),
        },
        false,
        vec![],
    );
    let mut gap = Vec::new();
    quiver_qwp::encode_ingress_message(&msg, &mut gap).unwrap();
    cases.push(("dictionary gap", gap, 0x0D, "delta starts at id 5"));

    for (name, frame, status, needle) in cases {
        let mut client = RawClient::connect(&addr, false);
        // One good frame first: it must stay committed.
        let ok = good_frame(&mut client, "bad_ok", 1);
        client.send_raw(ok).unwrap();
        assert!(matches!(client.read_ack(), Ok(Ack::Ok(0, _))), "{name}");
        client.send_raw(frame).unwrap();
        let m = expect_error(&mut client, status, 1, needle);
        assert!(m.contains("reconnect"), "{name}: {m}");
        // The connection stays open but takes no more frames: no ack.
        let next = good_frame(&mut client, "bad_ok", 2);
        client.send_raw(next).unwrap();
        client
            .ws
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        assert!(
            matches!(client.read_ack(), Err(Closed::Error(_))),
            "{name}: a frame after an error was answered"
        );
    }
    assert_eq!(
        committed_rows(&server, "bad"),
        0,
        "no row of a rejected frame is stored"
    );
    assert_eq!(committed_rows(&server, "keep"), 1);
    // One good frame per case, and nothing after the errors.
    assert_eq!(committed_rows(&server, "bad_ok"), 8);
    assert!(!server.log_text().contains("panicked"));
    assert_eq!(server.stop().code(), Some(0));
}

fn common_truncate(frame: &[u8], len: usize) -> Vec<u8> {
    let mut cut = frame[..len].to_vec();
    let payload = (len - 12) as u32;
    cut[8..12].copy_from_slice(&payload.to_le_bytes());
    cut
}

fn find_after(haystack: &[u8], needle: &[u8]) -> usize {
    haystack
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("needle present")
}

#[test]
fn schema_mismatch_names_table_column_and_both_types() {
    let mut server = TestServer::start();
    let mut c = with_typed_table(&server);
    // `v` is LONG; send it as a SYMBOL in a frame that also writes another table.
    let (delta, ids) = c.register(&["x"]);
    let msg = message(
        delta,
        false,
        vec![
            block("other", vec![("v", longs([5])), ("", timestamps([1]))]),
            block(
                "typed",
                vec![("v", symbol_ids([ids[0]])), ("", timestamps([2]))],
            ),
        ],
    );
    c.send(&msg).unwrap();
    expect_error(
        &mut c,
        0x03,
        1,
        "[table=typed, column=v, stored=LONG, sent=SYMBOL]",
    );
    // Nothing of the frame, in either table.
    assert_eq!(committed_rows(&server, "typed"), 1);
    assert_eq!(committed_rows(&server, "other"), 0);
    assert_eq!(server.stop().code(), Some(0));
}

#[test]
fn a_value_that_does_not_fit_leaves_no_new_table_or_column() {
    let mut server = TestServer::start();
    let mut c = with_typed_table(&server);
    // DOUBLE into the LONG column `v` is a legal coercion for whole
    // numbers; 2.5 is not one. The same frame would create a table and add
    // a column to `typed`.
    let mut doubles = quiver_qwp::ColumnBuilder::new(quiver_qwp::TypeCode::Double);
    for v in [2.0, 2.5] {
        doubles.push(Some(&quiver_qwp::Value::Double(v))).unwrap();
    }
    let doubles = doubles.finish(quiver_qwp::NullEncoding::Bitmap);
    let (delta, _) = c.register(&[]);
    let msg = message(
        delta,
        false,
        vec![
            block(
                "brand_new",
                vec![("v", longs([5, 6])), ("", timestamps([1, 2]))],
            ),
            block(
                "typed",
                vec![
                    ("fresh", longs([7, 8])),
                    ("v", doubles),
                    ("", timestamps([3, 4])),
                ],
            ),
        ],
    );
    c.send(&msg).unwrap();
    expect_error(
        &mut c,
        0x03,
        1,
        "[table=typed, column=v, stored=LONG, sent=DOUBLE]",
    );
    let db = server.storage();
    assert!(db.table("brand_new").is_none(), "the frame created a table");
    let schema = db.table("typed").unwrap().schema();
    assert!(
        schema.column_index("fresh").is_none(),
        "the frame added a column: {:?}",
        schema.columns
    );
    assert_eq!(committed_rows(&server, "typed"), 1);
    assert_eq!(server.stop().code(), Some(0));
}

/// Sends one frame whose first blocks create table `fresh` and column `c`
/// of `typed` from `first`, and whose later blocks send `later` (given the
/// ids of `symbols`) for them; checks it is rejected with `needle` and
/// leaves no table or column behind.
fn a_frame_with_a_bad_later_block_creates_nothing(
    symbols: &[&str],
    first: fn() -> ColumnData<'static>,
    later: fn(&[u32]) -> ColumnData<'static>,
    needle: &str,
) {
    let mut server = TestServer::start();
    let mut c = with_typed_table(&server);
    let (delta, ids) = c.register(symbols);
    let msg = message(
        delta,
        false,
        vec![
            block("fresh", vec![("c", first()), ("", timestamps([1]))]),
            block("typed", vec![("c", first()), ("", timestamps([2]))]),
            block("typed", vec![("c", later(&ids)), ("", timestamps([3]))]),
            block("fresh", vec![("c", later(&ids)), ("", timestamps([4]))]),
        ],
    );
    c.send(&msg).unwrap();
    expect_error(&mut c, 0x03, 1, needle);
    let db = server.storage();
    assert!(db.table("fresh").is_none(), "the frame created a table");
    assert!(
        db.table("typed")
            .unwrap()
            .schema()
            .column_index("c")
            .is_none(),
        "the frame added a column"
    );
    assert_eq!(committed_rows(&server, "typed"), 1);
    assert_eq!(server.stop().code(), Some(0));
}

#[test]
fn two_blocks_of_one_frame_that_disagree_on_a_new_column_create_nothing() {
    // TIMESTAMP first, then SYMBOL, which cannot go into one.
    a_frame_with_a_bad_later_block_creates_nothing(
        &["x"],
        || timestamps([1]),
        |ids| symbol_ids([ids[0]]),
        "[table=typed, column=c, stored=TIMESTAMP, sent=SYMBOL]",
    );
}

#[test]
fn a_later_block_whose_value_does_not_fit_a_column_the_frame_creates_creates_nothing() {
    // LONG first, then SYMBOL text: a type that may go into LONG when it is
    // a number, but this text is not.
    a_frame_with_a_bad_later_block_creates_nothing(
        &["not a number"],
        || longs([1]),
        |ids| symbol_ids([ids[0]]),
        "[table=typed, column=c, stored=LONG, sent=SYMBOL]",
    );
}

#[test]
fn columns_a_frame_creates_are_planned_with_the_types_the_table_gets() {
    let mut server = TestServer::start();
    let mut c = RawClient::connect(&server.addr(), false);
    let (delta, _) = c.register(&[]);
    let msg = message(
        delta,
        false,
        vec![
            // No rows: creates nothing, so its DOUBLE does not decide `v`.
            block("t", vec![("v", doubles([]))]),
            // Creates `t`: `v` LONG and the designated `timestamp`.
            block("t", vec![("v", longs([1])), ("", timestamps([7]))]),
            // Names the designated column: LONG goes into TIMESTAMP.
            block("t", vec![("v", longs([2])), ("timestamp", longs([9]))]),
        ],
    );
    c.send(&msg).unwrap();
    assert!(matches!(c.read_ack(), Ok(Ack::Ok(0, _))));
    let db = server.storage();
    let schema = db.table("t").unwrap().schema();
    let types: Vec<String> = schema
        .columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.column_type.name()))
        .collect();
    assert_eq!(types, ["v LONG", "timestamp TIMESTAMP"]);
    assert_eq!(committed_rows(&server, "t"), 2);
    assert_eq!(server.stop().code(), Some(0));
}

#[test]
fn oversized_and_text_frames_close_the_connection() {
    let mut server = TestServer::start();
    let mut c = RawClient::connect(&server.addr(), false);
    c.send_raw(vec![0u8; 16 * 1024 * 1024 + 1]).ok();
    match c.read_ack() {
        Err(Closed::Close(code, reason)) => {
            assert_eq!(code, 1009, "{reason}");
            assert!(reason.contains("exceeds"), "{reason}");
        }
        other => panic!("expected close 1009, got {other:?}"),
    }
    let mut c = RawClient::connect(&server.addr(), false);
    c.send_text("hello").unwrap();
    assert!(matches!(c.read_ack(), Err(Closed::Close(1003, _))));
    assert_eq!(server.stop().code(), Some(0));
}

#[test]
fn garbage_and_half_open_clients_do_not_stall_others() {
    let mut server = TestServer::start();
    let addr = server.addr();
    // Half-open: a partial upgrade request, then silence.
    let mut half = TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET /write/v4 HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // Garbage instead of HTTP.
    let mut garbage = TcpStream::connect(&addr).unwrap();
    garbage.write_all(&[0xFF; 4096]).unwrap();
    let mut sink = [0u8; 512];
    garbage
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let _ = garbage.read(&mut sink);
    // A client that upgrades and then sends a partial WebSocket frame.
    let mut partial = RawClient::connect(&addr, false);
    partial.ws.get_mut().write_all(&[0x82, 0xFE, 0x10]).unwrap();
    // Meanwhile a well-behaved client ingests normally.
    for i in 0..20 {
        let mut c = RawClient::connect(&addr, false);
        let f = good_frame(&mut c, "busy", i);
        c.send_raw(f).unwrap();
        assert!(matches!(c.read_ack(), Ok(Ack::Ok(0, _))));
    }
    assert_eq!(committed_rows(&server, "busy"), 20);
    drop((half, partial));
    assert!(!server.log_text().contains("panicked"));
    assert_eq!(server.stop().code(), Some(0));
}
