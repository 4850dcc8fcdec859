//! The ack contract under simulated power loss and injected I/O errors.
//!
//! Random workloads (several tables, multi-table transactions, deferred
//! parts staged ahead of their commit and abandoned ones, durable and plain
//! commits, columns added, seals, WAL rolls and WAL file deletion) run on a
//! [`SimulatedDisk`]. Each workload is run once to count its file
//! operations, then again with the power cut at every k-th operation, the
//! disk coming back as a power cut leaves it (only synced data, or synced
//! data plus a scrambled mix of unsynced pages). After reopening:
//!
//! - the database opens;
//! - every transaction whose durable ack came is there, exactly once;
//! - no transaction is partly there (across tables), none that failed is
//!   there, and those there are a prefix of the commit order;
//! - row ids are dense from 0 and continue with the next commit;
//! - opening again finds the same rows (recovery is idempotent).
//!
//! The same workloads also run with a failed or torn write or fsync at each
//! cut point instead: the database poisons, nothing after the failure is
//! acknowledged, and after a restart that loses nothing every acknowledged
//! transaction is there and no failed one is.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{contents, create, open, per_txn, rows};
use quiver_storage::io::{Fault, PowerLoss, SimulatedDisk};
use quiver_storage::{
    ColumnSchema, ColumnType, CommitReceipt, Database, StorageError, Table, Transaction,
};

/// One step of a workload.
#[derive(Debug, Clone)]
enum Step {
    /// Rows for (table, rows) pairs in one transaction; `staged` parts are
    /// written ahead of the commit.
    Commit {
        parts: Vec<(usize, i64)>,
        staged: usize,
        durable: bool,
    },
    /// A transaction with staged parts, dropped without committing.
    Abandon { table: usize, rows: i64 },
    /// A new column on a table.
    AddColumn { table: usize, column: usize },
    /// Wait for every commit so far.
    Drain,
}

/// A small deterministic generator (SplitMix64).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const TABLES: usize = 3;

fn workload(seed: u64) -> Vec<Step> {
    let mut rng = Rng(seed);
    let mut steps = Vec::new();
    for _ in 0..28 {
        let step = match rng.below(10) {
            0 => Step::Abandon {
                table: rng.below(TABLES as u64) as usize,
                rows: 1 + rng.below(30) as i64,
            },
            1 => Step::AddColumn {
                table: rng.below(TABLES as u64) as usize,
                column: rng.below(3) as usize,
            },
            2 => Step::Drain,
            _ => {
                let n = 1 + rng.below(3) as usize;
                let parts: Vec<(usize, i64)> = (0..n)
                    .map(|_| (rng.below(TABLES as u64) as usize, 1 + rng.below(25) as i64))
                    .collect();
                Step::Commit {
                    staged: rng.below(n as u64 + 1) as usize,
                    durable: rng.below(3) == 0,
                    parts,
                }
            }
        };
        steps.push(step);
    }
    steps
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Sent; no answer (yet).
    Pending,
    /// Committed (OK ack).
    Committed,
    /// Durable ack.
    Durable,
    /// Answered with an error.
    Failed,
}

/// What the client saw, per transaction id, in commit order.
#[derive(Debug, Default)]
struct Oracle {
    txns: BTreeMap<i64, (Vec<(usize, i64)>, Status)>,
}

fn table_name(i: usize) -> String {
    format!("t{i}")
}

struct InFlight {
    txn: i64,
    receipt: CommitReceipt,
}

fn settle(oracle: &mut Oracle, f: InFlight) {
    let committed = f.receipt.committed.blocking_recv();
    let status = match committed {
        Ok(Ok(_)) => match f.receipt.durable {
            None => Status::Committed,
            Some(d) => match d.blocking_recv() {
                Ok(Ok(())) => Status::Durable,
                _ => Status::Committed,
            },
        },
        Ok(Err(_)) => Status::Failed,
        Err(_) => Status::Pending,
    };
    oracle.txns.get_mut(&f.txn).expect("sent").1 = status;
}

/// Runs `steps` against the database on `disk` (opened here; `None` if
/// opening failed) and returns what the client saw.
fn run(disk: &SimulatedDisk, steps: &[Step]) -> (Oracle, Option<Arc<Database>>) {
    let mut oracle = Oracle::default();
    let Ok(db) = open(disk) else {
        return (oracle, None);
    };
    let mut tables: Vec<Option<Arc<Table>>> = vec![None; TABLES];
    let mut table = |db: &Database, i: usize| -> Option<Arc<Table>> {
        if tables[i].is_none() {
            tables[i] = create(db, &table_name(i)).ok();
        }
        tables[i].clone()
    };
    let mut in_flight: Vec<InFlight> = Vec::new();
    let mut next_txn = 1i64;
    for step in steps {
        match step {
            Step::Drain => {
                for f in in_flight.drain(..) {
                    settle(&mut oracle, f);
                }
            }
            Step::AddColumn { table: i, column } => {
                if let Some(t) = table(&db, *i) {
                    let _ = db
                        .add_columns(
                            t,
                            vec![ColumnSchema::new(
                                format!("extra{column}"),
                                ColumnType::Double,
                            )],
                        )
                        .blocking_recv();
                }
            }
            Step::Abandon { table: i, rows: n } => {
                if let Some(t) = table(&db, *i) {
                    let mut txn = Transaction::new();
                    txn.add(t.clone(), rows(&t, -1, 0, *n)).unwrap();
                    let _ = db.stage(&mut txn);
                    drop(txn);
                }
            }
            Step::Commit {
                parts,
                staged,
                durable,
            } => {
                let id = next_txn;
                next_txn += 1;
                let mut txn = Transaction::new();
                let mut offsets: BTreeMap<usize, i64> = BTreeMap::new();
                let mut complete = true;
                for (k, (i, n)) in parts.iter().enumerate() {
                    let Some(t) = table(&db, *i) else {
                        complete = false;
                        break;
                    };
                    let first = offsets.entry(*i).or_default();
                    txn.add(t.clone(), rows(&t, id, *first, *n)).unwrap();
                    *first += n;
                    if k + 1 == *staged && db.stage(&mut txn).is_err() {
                        complete = false;
                        break;
                    }
                }
                if !complete {
                    continue;
                }
                oracle.txns.insert(id, (parts.clone(), Status::Pending));
                in_flight.push(InFlight {
                    txn: id,
                    receipt: db.commit(txn, *durable),
                });
                if in_flight.len() >= 4 {
                    settle(&mut oracle, in_flight.remove(0));
                }
            }
        }
    }
    for f in in_flight.drain(..) {
        settle(&mut oracle, f);
    }
    (oracle, Some(db))
}

/// Checks what reopening found against what the client saw. Returns the
/// rows per table.
fn check(db: &Database, oracle: &Oracle, context: &str) -> BTreeMap<String, Vec<common::Row>> {
    let found = contents(db);
    let counts: BTreeMap<String, BTreeMap<i64, i64>> = found
        .iter()
        .map(|(name, rows)| (name.clone(), per_txn(name, rows)))
        .collect();
    let mut present_so_far = true;
    for (txn, (parts, status)) in &oracle.txns {
        let mut expected: BTreeMap<usize, i64> = BTreeMap::new();
        for (t, n) in parts {
            *expected.entry(*t).or_default() += n;
        }
        let got: Vec<i64> = expected
            .keys()
            .map(|t| {
                counts
                    .get(&table_name(*t))
                    .and_then(|c| c.get(txn))
                    .copied()
                    .unwrap_or(0)
            })
            .collect();
        let whole = expected.values().copied().collect::<Vec<_>>() == got;
        let absent = got.iter().all(|n| *n == 0);
        assert!(
            whole || absent,
            "{context}: transaction {txn} is partly there: {got:?} of {expected:?}"
        );
        match status {
            Status::Durable => assert!(whole, "{context}: durable transaction {txn} is lost"),
            Status::Failed => assert!(absent, "{context}: failed transaction {txn} is there"),
            Status::Committed | Status::Pending => {}
        }
        if *status != Status::Failed {
            assert!(
                present_so_far || absent,
                "{context}: transaction {txn} is there but one before it is not"
            );
            present_so_far &= whole;
        }
    }
    for (name, c) in &counts {
        for txn in c.keys() {
            assert!(
                oracle.txns.contains_key(txn),
                "{context}: {name} holds rows of transaction {txn}, never committed"
            );
        }
    }
    found
}

/// After the checks: row ids continue, and a second recovery finds the
/// same rows.
fn continue_and_reopen(disk: &SimulatedDisk, db: Arc<Database>, context: &str) {
    let before = contents(&db);
    if let Some(info) = db.tables().first() {
        let t = db.table(&info.schema.name).unwrap();
        let mut txn = Transaction::new();
        txn.add(t.clone(), rows(&t, 1_000_000, 0, 3)).unwrap();
        let r = db.commit(txn, true);
        r.committed.blocking_recv().unwrap().unwrap();
        r.durable.unwrap().blocking_recv().unwrap().unwrap();
    }
    db.close();
    drop(db);
    let db = open(disk).unwrap_or_else(|e| panic!("{context}: reopening again: {e}"));
    let after = contents(&db);
    for (name, rows) in &after {
        per_txn(name, rows);
        let old = before.get(name).cloned().unwrap_or_default();
        assert_eq!(
            &rows[..old.len()],
            &old[..],
            "{context}: a second recovery found other rows in {name}"
        );
    }
    db.close();
}

/// Workloads and cut points per workload (the suite's size; see the
/// README).
const WORKLOADS: u64 = 10;
const CUTS_PER_WORKLOAD: u64 = 40;

#[test]
fn every_durable_transaction_survives_a_power_cut_at_any_operation() {
    let mut cuts_run = 0;
    let mut durable_checked = 0;
    let mut recovered_from_segments = 0;
    for seed in 0..WORKLOADS {
        let steps = workload(seed);
        let probe = SimulatedDisk::new();
        let (_, db) = run(&probe, &steps);
        db.expect("opens").close();
        let total = probe.ops();
        let step = (total / CUTS_PER_WORKLOAD).max(1);
        for (k, cut) in (1..=total).step_by(step as usize).enumerate() {
            let disk = SimulatedDisk::new();
            disk.fail_at(cut, Fault::PowerOff);
            let (oracle, db) = run(&disk, &steps);
            if let Some(db) = db {
                db.close();
            }
            let loss = match k % 2 {
                0 => PowerLoss::DropUnsynced,
                _ => PowerLoss::Scramble {
                    seed: seed * 1000 + cut,
                },
            };
            disk.restart(loss);
            let context =
                format!("workload {seed}, power cut at operation {cut} of {total}, {loss:?}");
            let db = open(&disk).unwrap_or_else(|e| panic!("{context}: does not open: {e}"));
            check(&db, &oracle, &context);
            durable_checked += oracle
                .txns
                .values()
                .filter(|(_, s)| *s == Status::Durable)
                .count();
            recovered_from_segments += usize::from(db.tables().iter().any(|t| t.segments > 0));
            continue_and_reopen(&disk, db, &context);
            cuts_run += 1;
        }
    }
    eprintln!(
        "{cuts_run} power cuts over {WORKLOADS} workloads; {durable_checked} durable transactions checked; \
         {recovered_from_segments} recoveries with sealed segments"
    );
    assert!(cuts_run >= WORKLOADS * CUTS_PER_WORKLOAD / 2);
    assert!(durable_checked > 100 && recovered_from_segments > 50);
}

#[test]
fn an_io_error_at_any_operation_poisons_cleanly_and_loses_nothing_acknowledged() {
    for seed in 0..WORKLOADS {
        let steps = workload(100 + seed);
        let probe = SimulatedDisk::new();
        let (_, db) = run(&probe, &steps);
        db.expect("opens").close();
        let total = probe.ops();
        let step = (total / (CUTS_PER_WORKLOAD / 2)).max(1);
        for (k, at) in (1..=total).step_by(step as usize).enumerate() {
            let fault = match k % 2 {
                0 => Fault::Error,
                _ => Fault::ShortWrite,
            };
            let disk = SimulatedDisk::new();
            disk.fail_at(at, fault);
            let (oracle, db) = run(&disk, &steps);
            let context = format!(
                "workload {}, {fault:?} at operation {at} of {total}",
                100 + seed
            );
            if let Some(db) = db {
                // Whatever failed, the database either goes on or refuses
                // everything after the failure: never an ack after it.
                let mut failed = false;
                for (txn, (_, status)) in &oracle.txns {
                    match status {
                        Status::Failed => failed = true,
                        Status::Committed | Status::Durable => assert!(
                            !failed,
                            "{context}: transaction {txn} acknowledged after an earlier one failed"
                        ),
                        Status::Pending => {}
                    }
                }
                if failed {
                    assert!(db.health().is_some(), "{context}: a failure without poison");
                }
                db.close();
            }
            // The process restarts; nothing was lost by a power cut.
            disk.heal();
            let db = open(&disk).unwrap_or_else(|e| panic!("{context}: does not open: {e}"));
            let found = check(&db, &oracle, &context);
            for (txn, (parts, status)) in &oracle.txns {
                if matches!(status, Status::Committed | Status::Durable) {
                    let name = table_name(parts[0].0);
                    assert!(
                        found
                            .get(&name)
                            .is_some_and(|rows| rows.iter().any(|r| r.1 == *txn)),
                        "{context}: acknowledged transaction {txn} is lost"
                    );
                }
            }
            continue_and_reopen(&disk, db, &context);
        }
    }
}

#[test]
fn a_failed_commit_is_an_error_not_a_hang() {
    // A disk that fails every write from the start: open fails cleanly.
    let disk = SimulatedDisk::new();
    disk.fail_at(1, Fault::PowerOff);
    assert!(matches!(open(&disk), Err(StorageError::Io { .. })));
}
