//! README: "An OK for a commit means visible to queries and written to the
//! WAL: it survives a killed process." and "Rows pending at disconnect are
//! rolled back; a transaction commits all of its rows, across tables, or
//! none."
//!
//! Several writers ingest over real connections while the server is killed
//! with SIGKILL at random moments, repeatedly, with small seal and WAL roll
//! thresholds so kills also land during sealing and WAL file deletion. An
//! oracle marks each transaction pending before its frames are sent and
//! acknowledged when its OK arrives. After each restart:
//! - every acknowledged transaction is present exactly once, in all tables;
//! - any transaction present at all is present completely (an unacked one
//!   may have committed before the kill; a deferred group whose commit frame
//!   was never sent never is);
//! - row ids are dense and in order.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arrow::array::{Array, AsArray};
use arrow::datatypes::{Int64Type, UInt64Type};
use common::TestServer;
use common::raw::{Ack, RawClient, block, longs, message, symbol_ids, timestamps};

const WRITERS: i64 = 4;
const ROUNDS: usize = 5;

/// A small PRNG (xorshift64*), seeded per run and printed for replay.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Frames (maybe) sent, no OK seen.
    Pending,
    /// The commit frame was never sent: must never be visible.
    NeverCommitted,
    /// OK received.
    Acked,
}

/// One transaction: rows per table.
#[derive(Debug, Clone)]
struct Txn {
    rows: HashMap<String, i64>,
    state: State,
}

type Oracle = Arc<Mutex<HashMap<(i64, i64), Txn>>>;

/// Writes transactions until the connection breaks; returns the next txn id.
fn writer(
    addr: String,
    w: i64,
    mut next_txn: i64,
    oracle: Oracle,
    seed: u64,
    stop: Arc<AtomicBool>,
) -> i64 {
    let mut rng = Rng(seed | 1);
    let Ok(mut client) = RawClient::try_connect(&addr, w % 2 == 0) else {
        return next_txn;
    };
    let own = format!("crash_w{w}");
    let mut seq: i64 = -1;
    while !stop.load(Ordering::Relaxed) {
        let txn = next_txn;
        next_txn += 1;
        // 1..3 frames; all but the last deferred.
        let frames = 1 + rng.below(3) as usize;
        let mut rows: HashMap<String, i64> = HashMap::new();
        let mut row = 0i64;
        let mut plan = Vec::new();
        for i in 0..frames {
            let n_shared = 1 + rng.below(400) as i64;
            let n_own = rng.below(300) as i64;
            *rows.entry("crash_shared".into()).or_default() += n_shared;
            if n_own > 0 {
                *rows.entry(own.clone()).or_default() += n_own;
            }
            plan.push((i + 1 < frames, n_shared, n_own));
        }
        // Sometimes the connection "dies" before the commit frame: drop it.
        let abandon = frames > 1 && rng.below(10) == 0;
        oracle.lock().unwrap().insert(
            (w, txn),
            Txn {
                rows,
                state: if abandon {
                    State::NeverCommitted
                } else {
                    State::Pending
                },
            },
        );
        for (i, (defer, n_shared, n_own)) in plan.into_iter().enumerate() {
            if abandon && !defer {
                // Close without the commit frame: pending rows roll back.
                let _ = client.ws.close(None);
                return next_txn;
            }
            let (delta, ids) = client.register(&[&format!("writer-{w}"), "common"]);
            let make = |n: i64, first: i64| {
                vec![
                    ("w", longs((0..n).map(|_| w))),
                    ("txn", longs((0..n).map(|_| txn))),
                    ("r", longs(first..first + n)),
                    ("sym", symbol_ids((0..n).map(|k| ids[(k % 2) as usize]))),
                    (
                        "",
                        timestamps(
                            (first..first + n).map(|k| 1_700_000_000_000_000 + txn * 1_000 + k),
                        ),
                    ),
                ]
            };
            let mut tables = vec![block("crash_shared", make(n_shared, row))];
            row += n_shared;
            if n_own > 0 {
                tables.push(block(&own, make(n_own, row)));
                row += n_own;
            }
            if client.send(&message(delta, defer, tables)).is_err() {
                return next_txn;
            }
            seq += 1;
            let _ = i;
        }
        // Wait for the OK of the commit frame (durable acks may interleave).
        loop {
            match client.read_ack() {
                Ok(Ack::Ok(s, _)) if s == seq => {
                    oracle.lock().unwrap().get_mut(&(w, txn)).unwrap().state = State::Acked;
                    break;
                }
                Ok(Ack::Ok(..)) | Ok(Ack::Durable(_)) => continue,
                Ok(Ack::Error(status, s, m)) => {
                    panic!("writer {w} txn {txn}: error ack {status} for {s}: {m}")
                }
                Err(_) => return next_txn,
            }
        }
    }
    next_txn
}

/// (w, txn) → rows present, per table; checks row ids and uniqueness.
fn stored(server: &TestServer) -> HashMap<String, HashMap<(i64, i64), i64>> {
    let db = server.storage();
    let mut out: HashMap<String, HashMap<(i64, i64), i64>> = HashMap::new();
    for info in db.tables() {
        let name = info.schema.name.clone();
        let snap = db.snapshot(&name).unwrap();
        let mut seen = std::collections::HashSet::new();
        let mut expected_id = 0u64;
        let per_txn = out.entry(name.clone()).or_default();
        for b in snap.collect(true).unwrap() {
            let ids = b.column(0).as_primitive::<UInt64Type>();
            let w = b.column_by_name("w").unwrap().as_primitive::<Int64Type>();
            let t = b.column_by_name("txn").unwrap().as_primitive::<Int64Type>();
            let r = b.column_by_name("r").unwrap().as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                assert_eq!(ids.value(i), expected_id, "{name}: row ids must be dense");
                expected_id += 1;
                assert!(!w.is_null(i) && !t.is_null(i) && !r.is_null(i));
                let key = (w.value(i), t.value(i), r.value(i));
                assert!(seen.insert(key), "{name}: row {key:?} stored twice");
                *per_txn.entry((key.0, key.1)).or_default() += 1;
            }
        }
        assert_eq!(expected_id, snap.row_count());
    }
    out
}

fn check(
    oracle: &HashMap<(i64, i64), Txn>,
    stored: &HashMap<String, HashMap<(i64, i64), i64>>,
    round: usize,
) {
    let empty = HashMap::new();
    let mut acked = 0;
    let mut unacked_present = 0;
    for (key, txn) in oracle {
        let present: Vec<(String, i64, i64)> = txn
            .rows
            .iter()
            .map(|(table, n)| {
                let got = stored
                    .get(table)
                    .unwrap_or(&empty)
                    .get(key)
                    .copied()
                    .unwrap_or(0);
                (table.clone(), *n, got)
            })
            .collect();
        let complete = present.iter().all(|(_, n, got)| got == n);
        let absent = present.iter().all(|(_, _, got)| *got == 0);
        match txn.state {
            State::Acked => {
                acked += 1;
                assert!(
                    complete,
                    "round {round}: acked txn {key:?} incomplete: {present:?}"
                );
            }
            State::Pending => {
                assert!(
                    complete || absent,
                    "round {round}: txn {key:?} half present: {present:?}"
                );
                unacked_present += usize::from(complete);
            }
            State::NeverCommitted => {
                assert!(
                    absent,
                    "round {round}: uncommitted txn {key:?} visible: {present:?}"
                );
            }
        }
    }
    // No rows from transactions the oracle never saw.
    for (table, txns) in stored {
        for key in txns.keys() {
            assert!(
                oracle.contains_key(key),
                "round {round}: {table} has rows of unknown txn {key:?}"
            );
        }
    }
    eprintln!(
        "round {round}: {acked} acked transactions verified, {unacked_present} committed without an ack seen"
    );
}

#[test]
fn acked_transactions_survive_kill_9_exactly_once() {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut rng = Rng(seed | 1);
    let temp = tempfile::tempdir().unwrap();
    let data_dir = temp.path().join("data");
    let args = ["--seal-rows", "3000", "--wal-roll-bytes", "262144"];
    let oracle: Oracle = Arc::new(Mutex::new(HashMap::new()));
    let mut next_txn: Vec<i64> = vec![0; WRITERS as usize];
    for round in 0..ROUNDS {
        let mut server = TestServer::start_in(&data_dir, &args);
        // Everything acked so far survived the previous kill and recovery.
        check(&oracle.lock().unwrap(), &stored(&server), round);
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = (0..WRITERS)
            .map(|w| {
                let (addr, oracle, stop) = (server.addr(), oracle.clone(), stop.clone());
                let start = next_txn[w as usize];
                let seed = rng.next();
                std::thread::spawn(move || writer(addr, w, start, oracle, seed, stop))
            })
            .collect();
        std::thread::sleep(Duration::from_millis(200 + rng.below(1200)));
        server.kill9();
        stop.store(true, Ordering::Relaxed);
        for (w, h) in handles.into_iter().enumerate() {
            next_txn[w] = h.join().unwrap();
        }
        assert!(
            !server.log_text().contains("panicked"),
            "server panicked:\n{}",
            server.log_text()
        );
    }
    let mut server = TestServer::start_in(&data_dir, &args);
    let oracle = oracle.lock().unwrap();
    check(&oracle, &stored(&server), ROUNDS);
    let acked = oracle.values().filter(|t| t.state == State::Acked).count();
    assert!(
        acked > 20,
        "only {acked} transactions were acknowledged across all rounds"
    );
    // The small thresholds made the server seal segments (and delete WAL
    // files) between and during kills.
    let segments: usize = server.storage().tables().iter().map(|t| t.segments).sum();
    assert!(
        segments > 0,
        "no segment was sealed; the test did not exercise sealing"
    );
    assert_eq!(server.stop().code(), Some(0));
}
