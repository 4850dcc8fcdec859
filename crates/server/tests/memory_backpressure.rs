//! Bounded memory under ingest that outpaces sealing: with a small
//! `--max-unsealed-bytes` and seal thresholds no table reaches, the server
//! must seal on the memory limit and pause reading sockets until sealing
//! catches up, and every acknowledged row must still be stored exactly once.

mod common;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use common::TestServer;
use common::raw::{Ack, RawClient, block, longs, message, timestamps};

const FRAMES: i64 = 60;
const ROWS: i64 = 5_000;
const PIPELINE: i64 = 16;

#[test]
fn ingest_pauses_for_sealing_and_keeps_every_row() {
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let mut server = TestServer::start_in(
        &data_dir,
        &[
            "--seal-rows",
            "1000000000",
            "--max-unsealed-bytes",
            "262144",
        ],
    );
    // Two connections pipelining frames of 5,000 rows (~80 KiB in memory
    // each), so unsealed rows pass 256 KiB every few frames.
    let threads: Vec<_> = (0..2i64)
        .map(|c| {
            let addr = server.addr();
            std::thread::spawn(move || {
                let mut client = RawClient::connect(&addr, false);
                let mut acked = 0i64;
                for f in 0..FRAMES {
                    let first = f * ROWS;
                    let columns = vec![
                        ("conn", longs((0..ROWS).map(|_| c))),
                        ("n", longs(first..first + ROWS)),
                        (
                            "",
                            timestamps((first..first + ROWS).map(|k| 1_700_000_000_000_000 + k)),
                        ),
                    ];
                    let (delta, _) = client.register(&[]);
                    client
                        .send(&message(delta, false, vec![block("t", columns)]))
                        .unwrap();
                    while f - acked + 1 > PIPELINE {
                        acked = read_ok(&mut client);
                    }
                }
                while acked < FRAMES {
                    acked = read_ok(&mut client);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(server.stop().code(), Some(0));
    let log = server.log_text();
    let waits: u64 = log
        .lines()
        .filter(|l| l.contains("ingest session ended"))
        .filter_map(|l| l.split("memory_waits=").nth(1))
        .filter_map(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    assert!(waits > 0, "no session waited for sealing; log:\n{log}");

    let db = common::open_storage(&data_dir);
    let snap = db.snapshot("t").unwrap();
    assert_eq!(snap.row_count() as i64, 2 * FRAMES * ROWS);
    // Only the memory limit can have sealed (the row threshold is never
    // reached), and often enough to keep memory bounded: a seal takes at
    // most what is in memory, which is the limit plus what the two
    // connections have in flight (2 x 16 frames of ~80 KiB, ~160k rows),
    // so 600k rows need at least 4 seals. (How many more depends on how
    // fast the disk is against ingest.)
    assert!(
        snap.segments().len() >= 4,
        "{} segments",
        snap.segments().len()
    );
    let mut seen: Vec<(i64, i64)> = Vec::new();
    for b in snap.collect(false).unwrap() {
        let conn = b
            .column_by_name("conn")
            .unwrap()
            .as_primitive::<Int64Type>();
        let n = b.column_by_name("n").unwrap().as_primitive::<Int64Type>();
        seen.extend((0..b.num_rows()).map(|i| (conn.value(i), n.value(i))));
    }
    seen.sort_unstable();
    let expected: Vec<(i64, i64)> = (0..2)
        .flat_map(|c| (0..FRAMES * ROWS).map(move |n| (c, n)))
        .collect();
    assert_eq!(seen, expected);
}

/// Reads acks until an OK and returns the next unacknowledged sequence.
fn read_ok(client: &mut RawClient) -> i64 {
    loop {
        match client.read_ack().unwrap() {
            Ack::Ok(seq, _) => return seq + 1,
            Ack::Durable(_) => continue,
            Ack::Error(s, q, m) => panic!("error ack {s} for frame {q}: {m}"),
        }
    }
}
