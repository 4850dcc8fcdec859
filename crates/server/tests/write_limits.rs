//! Regressions of the write-path review (issue 9) at the server, each
//! failing on the code before its fix, against the real binary:
//!
//! - A block with a huge row count and no columns costs a few bytes on the
//!   wire, yet the server filled a designated timestamp for every row:
//!   a small frame could ask for hundreds of GB. Frames are now bounded in
//!   rows and converted bytes (`--max-frame-rows`, `--max-frame-bytes`),
//!   checked before anything is allocated.
//! - A SYMBOL column coerced into VARCHAR could need more text than Arrow's
//!   32-bit offsets hold (rows x entry length), and panicked.
//! - A frame whose second block was refused (invalid table or column name,
//!   too many columns) had already created the first block's table: every
//!   name, type and limit of the whole frame is now checked before any DDL.
//! - A client that opened a deferred group and went quiet pinned the WAL
//!   forever; deferred rows were bounded per connection only, and counted
//!   nowhere server-wide.

mod common;

use std::time::{Duration, Instant};

use common::TestServer;
use common::raw::{Ack, Closed, RawClient, block, longs, message, symbol_ids, timestamps};
use quiver_qwp::ingress::Column;
use quiver_qwp::{SymbolDelta, TableBlock};

const PARSE_ERROR: u8 = 0x05;
const WRITE_ERROR: u8 = 0x09;

fn no_columns(table: &str, rows: u32) -> TableBlock<'static> {
    TableBlock {
        name: table.to_string().into(),
        row_count: rows,
        columns: Vec::<Column<'static>>::new(),
    }
}

fn error(ack: Result<Ack, Closed>) -> (u8, String) {
    match ack {
        Ok(Ack::Error(status, _, message)) => (status, message),
        other => panic!("expected an error ack, got {other:?}"),
    }
}

fn ok_frame(client: &mut RawClient, table: &str, first: i64, n: i64, defer: bool) {
    let (delta, _) = client.register(&[]);
    client
        .send(&message(
            delta,
            defer,
            vec![block(
                table,
                vec![
                    ("v", longs(first..first + n)),
                    (
                        "",
                        timestamps((first..first + n).map(|i| 1_700_000_000_000_000 + i)),
                    ),
                ],
            )],
        ))
        .unwrap();
}

#[test]
fn a_tiny_frame_cannot_ask_for_unbounded_rows() {
    let server = TestServer::start();
    let mut client = RawClient::connect(&server.addr(), false);
    // 100 blocks of a million rows and no columns: a few KB on the wire,
    // 100M rows once the designated timestamp is filled.
    let blocks = (0..100)
        .map(|_| no_columns("empty_rows", 1_000_000))
        .collect();
    client
        .send(&message(SymbolDelta::empty(0), false, blocks))
        .unwrap();
    let (status, text) = error(client.read_ack());
    assert_eq!(status, PARSE_ERROR, "{text}");
    assert!(text.contains("max_frame_rows"), "{text}");
    // Nothing was created, and the server serves the next client.
    let mut other = RawClient::connect(&server.addr(), false);
    ok_frame(&mut other, "after", 0, 10, false);
    assert!(matches!(other.read_ack(), Ok(Ack::Ok(0, _))));
    let db = server.storage();
    assert!(db.table("empty_rows").is_none());
    assert_eq!(db.snapshot("after").unwrap().row_count(), 10);
}

#[test]
fn symbol_text_into_varchar_is_bounded_before_it_is_built() {
    let server = TestServer::start();
    let mut client = RawClient::connect(&server.addr(), false);
    ok_frame(&mut client, "notes", 0, 1, false);
    assert!(matches!(client.read_ack(), Ok(Ack::Ok(0, _))));
    // A VARCHAR column, then a SYMBOL into it: a 1 MiB entry referenced by
    // a million rows is 1 TB of text (past i32 offsets too).
    let big = "x".repeat(1 << 20);
    let mut client = RawClient::connect(&server.addr(), false);
    let (delta, _) = client.register(&[]);
    client
        .send(&message(
            delta,
            false,
            vec![block("notes", vec![("note", common::raw::varchars(["a"]))])],
        ))
        .unwrap();
    assert!(matches!(client.read_ack(), Ok(Ack::Ok(0, _))));
    let (delta, ids) = client.register(&[big.as_str()]);
    client
        .send(&message(
            delta,
            false,
            vec![block(
                "notes",
                vec![("note", symbol_ids(std::iter::repeat_n(ids[0], 1_000_000)))],
            )],
        ))
        .unwrap();
    let (status, text) = error(client.read_ack());
    assert_eq!(status, PARSE_ERROR, "{text}");
    assert!(text.contains("max_frame_bytes"), "{text}");
    assert_eq!(server.storage().snapshot("notes").unwrap().row_count(), 2);
}

#[test]
fn a_frame_refused_in_a_later_block_creates_nothing() {
    let server = TestServer::start();
    let good = |t: &str| block(t, vec![("v", longs([1])), ("", timestamps([1]))]);
    let too_many: Vec<(String, _)> = (0..2100).map(|i| (format!("c{i}"), longs([1]))).collect();
    let cases: Vec<(&str, TableBlock<'static>)> = vec![
        (
            "invalid table name",
            block("bad/name", vec![("v", longs([1]))]),
        ),
        (
            "invalid column name",
            block("other", vec![("bad\u{1}col", longs([1]))]),
        ),
        (
            "too many columns",
            TableBlock {
                name: "wide".into(),
                row_count: 1,
                columns: too_many
                    .into_iter()
                    .map(|(n, data)| Column {
                        name: n.into(),
                        data,
                    })
                    .collect(),
            },
        ),
    ];
    for (i, (what, bad)) in cases.into_iter().enumerate() {
        let mut client = RawClient::connect(&server.addr(), false);
        let first = format!("first_{i}");
        client
            .send(&message(
                SymbolDelta::empty(0),
                false,
                vec![good(&first), bad],
            ))
            .unwrap();
        let (status, text) = error(client.read_ack());
        assert_eq!(status, PARSE_ERROR, "{what}: {text}");
        let db = server.storage();
        assert!(
            db.table(&first).is_none(),
            "{what}: the first block's table was created"
        );
        assert!(db.tables().is_empty(), "{what}: {:?}", db.tables());
    }
}

#[test]
fn a_quiet_deferred_group_is_rolled_back_and_unpins_the_wal() {
    let temp = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(
        &temp.path().join("data"),
        &[
            "--deferred-idle-timeout-secs",
            "1",
            "--idle-timeout-secs",
            "30",
        ],
    );
    let mut client = RawClient::connect(&server.addr(), false);
    ok_frame(&mut client, "t", 0, 100, true);
    let started = Instant::now();
    match client.read_ack() {
        Err(Closed::Close(code, reason)) => {
            assert_eq!(code, 1001, "{reason}");
            assert!(reason.contains("idle"), "{reason}");
        }
        other => panic!("expected a close, got {other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(20));
    // The group's rows are gone; the table exists (created with the frame).
    let db = server.storage();
    assert_eq!(db.snapshot("t").map_or(0, |s| s.row_count()), 0);
    assert!(server.log_text().contains("closing an idle ingest session"));
    // A connection that keeps sending is not idle.
    let mut busy = RawClient::connect(&server.addr(), false);
    for i in 0..4 {
        ok_frame(&mut busy, "t", i * 10, 10, true);
        std::thread::sleep(Duration::from_millis(500));
    }
    ok_frame(&mut busy, "t", 40, 10, false);
    assert!(matches!(busy.read_ack(), Ok(Ack::Ok(4, _))));
}

#[test]
fn uncommitted_rows_are_bounded_per_connection_and_server_wide() {
    let temp = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(
        &temp.path().join("data"),
        &[
            "--max-pending-bytes",
            "300000",
            "--max-uncommitted-bytes",
            "500000",
        ],
    );
    // One connection: a deferred group past its bound is refused.
    let mut a = RawClient::connect(&server.addr(), false);
    let mut refused = None;
    for f in 0..20 {
        ok_frame(&mut a, "t", f * 5000, 5000, true);
        if f > 0 && f % 2 == 0 {
            // Nothing is acked while the group is open; an error is.
            a.ws.get_ref()
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            if let Ok(ack) = a.read_ack() {
                refused = Some(ack);
                break;
            }
        }
    }
    match refused {
        Some(Ack::Error(status, _, text)) => {
            assert_eq!(status, PARSE_ERROR, "{text}");
            assert!(text.contains("max_pending_bytes"), "{text}");
        }
        other => panic!("expected the group to be refused, got {other:?}"),
    }
    // Two connections each under their bound, over the server's together:
    // the second is told to retry.
    let mut b = RawClient::connect(&server.addr(), false);
    let mut c = RawClient::connect(&server.addr(), false);
    for f in 0..3 {
        ok_frame(&mut b, "u", f * 5000, 5000, true);
    }
    std::thread::sleep(Duration::from_millis(300));
    let mut outcome = None;
    for f in 0..3 {
        ok_frame(&mut c, "u", 100_000 + f * 5000, 5000, true);
    }
    c.ws.get_ref()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    if let Ok(ack) = c.read_ack() {
        outcome = Some(ack);
    }
    match outcome {
        Some(Ack::Error(status, _, text)) => {
            assert_eq!(status, WRITE_ERROR, "{text}");
            assert!(text.contains("uncommitted"), "{text}");
        }
        other => panic!("expected a retriable refusal, got {other:?}"),
    }
    // The first connection's group still commits.
    ok_frame(&mut b, "u", 15_000, 10, false);
    assert!(matches!(b.read_ack(), Ok(Ack::Ok(3, _))));
}
