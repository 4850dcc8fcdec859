//! 16 concurrent connections, half writing to one shared table and half to
//! their own tables, pipelining frames: every frame is acknowledged in
//! order, and every row is stored exactly once.

mod common;

use std::collections::HashSet;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use common::TestServer;
use common::raw::{Ack, RawClient, block, longs, message, symbol_ids, timestamps};

const CONNECTIONS: i64 = 16;
const FRAMES: i64 = 40;
const ROWS: i64 = 250;
const PIPELINE: i64 = 8;

fn run_connection(addr: String, c: i64) {
    let mut client = RawClient::connect(&addr, c % 4 == 0);
    let table = if c % 2 == 0 {
        "shared".to_string()
    } else {
        format!("own_{c}")
    };
    let mut next_ack = 0i64;
    for f in 0..FRAMES {
        let (delta, ids) = client.register(&[&format!("conn-{c}"), &format!("frame-{}", f % 5)]);
        let first = f * ROWS;
        let columns = vec![
            ("conn", longs((0..ROWS).map(|_| c))),
            ("n", longs(first..first + ROWS)),
            ("tag", symbol_ids((0..ROWS).map(|k| ids[(k % 2) as usize]))),
            (
                "",
                timestamps((first..first + ROWS).map(|k| 1_700_000_000_000_000 + k)),
            ),
        ];
        client
            .send(&message(delta, false, vec![block(&table, columns)]))
            .unwrap();
        // Keep up to PIPELINE frames in flight.
        while f - next_ack + 1 > PIPELINE {
            next_ack = read_ok(&mut client, next_ack);
        }
    }
    while next_ack < FRAMES {
        next_ack = read_ok(&mut client, next_ack);
    }
}

/// Reads acks until an OK; OKs are cumulative and in order.
fn read_ok(client: &mut RawClient, expected_from: i64) -> i64 {
    loop {
        match client.read_ack().unwrap() {
            Ack::Ok(seq, tables) => {
                assert!(
                    seq >= expected_from,
                    "OK {seq} went backwards (expected >= {expected_from})"
                );
                assert!(!tables.is_empty());
                return seq + 1;
            }
            Ack::Durable(_) => continue,
            Ack::Error(s, q, m) => panic!("error ack {s} for frame {q}: {m}"),
        }
    }
}

#[test]
fn sixteen_connections_shared_and_separate_tables() {
    let mut server = TestServer::start();
    let threads: Vec<_> = (0..CONNECTIONS)
        .map(|c| {
            let addr = server.addr();
            std::thread::spawn(move || run_connection(addr, c))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let db = server.storage();
    let per_table = FRAMES * ROWS;
    let shared = db.snapshot("shared").unwrap();
    assert_eq!(shared.row_count() as i64, per_table * CONNECTIONS / 2);
    let mut seen = HashSet::new();
    for b in shared.collect(false).unwrap() {
        let conn = b
            .column_by_name("conn")
            .unwrap()
            .as_primitive::<Int64Type>();
        let n = b.column_by_name("n").unwrap().as_primitive::<Int64Type>();
        for i in 0..b.num_rows() {
            assert!(seen.insert((conn.value(i), n.value(i))), "duplicate row");
        }
    }
    for c in (0..CONNECTIONS).filter(|c| c % 2 == 0) {
        for n in 0..per_table {
            assert!(seen.contains(&(c, n)), "missing row {n} of connection {c}");
        }
    }
    for c in (0..CONNECTIONS).filter(|c| c % 2 == 1) {
        let snap = db.snapshot(&format!("own_{c}")).unwrap();
        assert_eq!(snap.row_count() as i64, per_table);
        let mut n_values: Vec<i64> = snap
            .collect(false)
            .unwrap()
            .iter()
            .flat_map(|b| {
                b.column_by_name("n")
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        n_values.sort();
        assert_eq!(n_values, (0..per_table).collect::<Vec<_>>());
    }
    assert_eq!(server.stop().code(), Some(0));
}
