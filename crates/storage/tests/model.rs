//! Model-based test: random sequences of operations run against the
//! database (on a simulated disk) and against a plain in-memory model of
//! what the ack contract promises, compared after every step.
//!
//! The model is the log of committed transactions and table drops in
//! commit order and how many of its entries were durably acknowledged. After a clean reopen the
//! database must hold exactly the model; after a power cut it must hold a
//! prefix of it at least as long as the durable part (durability is a
//! prefix of the log), which then becomes the model.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use common::{contents, create, open, per_txn, rows};
use proptest::prelude::*;
use quiver_storage::io::{PowerLoss, SimulatedDisk};
use quiver_storage::{ColumnSchema, ColumnType, Database, Transaction};

#[derive(Debug, Clone)]
enum Op {
    /// One transaction over (table, rows) parts; the first `staged` parts
    /// are written ahead of the commit.
    Commit {
        parts: Vec<(usize, i64)>,
        staged: usize,
        durable: bool,
    },
    /// Rows staged, then the transaction dropped.
    Abandon { table: usize, rows: i64 },
    /// A column added to a table.
    AddColumn { table: usize, column: usize },
    /// A table dropped (a later commit creates it again, empty).
    Drop { table: usize },
    /// A table emptied (its columns stay).
    Truncate { table: usize },
    /// A table renamed (when the new name is free).
    Rename { from: usize, to: usize },
    /// Close and open again.
    Reopen,
    /// Cut the power and open again.
    PowerCut { scramble: Option<u64> },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (prop::collection::vec((0usize..3, 1i64..30), 1..4), 0usize..4, any::<bool>())
            .prop_map(|(parts, staged, durable)| Op::Commit { staged: staged.min(parts.len()), parts, durable }),
        1 => (0usize..3, 1i64..20).prop_map(|(table, rows)| Op::Abandon { table, rows }),
        1 => (0usize..3, 0usize..3).prop_map(|(table, column)| Op::AddColumn { table, column }),
        1 => (0usize..3).prop_map(|table| Op::Drop { table }),
        1 => (0usize..3).prop_map(|table| Op::Truncate { table }),
        1 => (0usize..3, 0usize..3).prop_map(|(from, to)| Op::Rename { from, to }),
        1 => Just(Op::Reopen),
        1 => prop::option::of(any::<u64>()).prop_map(|scramble| Op::PowerCut { scramble }),
    ]
}

/// One entry of the committed log.
#[derive(Debug, Clone)]
enum Entry {
    /// A transaction: its id and rows per table.
    Txn(i64, BTreeMap<usize, i64>),
    /// A table dropped: its rows so far are gone.
    Drop(usize),
    /// A table renamed: its rows are the new name's.
    Rename(usize, usize),
}

/// What the contract promises.
#[derive(Debug, Default, Clone)]
struct Model {
    /// Committed entries in commit order.
    committed: Vec<Entry>,
    /// How many of them are durable.
    durable: usize,
    /// Columns the tables have now.
    columns: BTreeMap<usize, BTreeSet<String>>,
    /// Columns ever added, per table (a lost drop brings them back).
    ever: BTreeMap<usize, BTreeSet<String>>,
}

fn name(t: usize) -> String {
    format!("t{t}")
}

/// Rows per (table, txn) in the database.
fn observed(db: &Database) -> BTreeMap<(usize, i64), i64> {
    let mut out = BTreeMap::new();
    for (table, rows) in contents(db) {
        let t: usize = table[1..].parse().unwrap();
        for (txn, n) in per_txn(&table, &rows) {
            out.insert((t, txn), n);
        }
    }
    out
}

fn expected(committed: &[Entry]) -> BTreeMap<(usize, i64), i64> {
    let mut out = BTreeMap::new();
    for entry in committed {
        match entry {
            Entry::Txn(txn, parts) => {
                for (t, n) in parts {
                    out.insert((*t, *txn), *n);
                }
            }
            Entry::Drop(t) => out.retain(|(table, _), _| table != t),
            Entry::Rename(from, to) => {
                let moved: Vec<((usize, i64), i64)> = out
                    .iter()
                    .filter(|((t, _), _)| t == from)
                    .map(|(k, v)| (*k, *v))
                    .collect();
                for ((_, txn), n) in moved {
                    out.remove(&(*from, txn));
                    out.insert((*to, txn), n);
                }
            }
        }
    }
    out
}

fn columns(db: &Database, t: usize) -> BTreeSet<String> {
    db.table(&name(t))
        .map(|table| {
            table
                .schema()
                .columns
                .iter()
                .filter(|c| c.name.starts_with("extra"))
                .map(|c| c.name.clone())
                .collect()
        })
        .unwrap_or_default()
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let disk = SimulatedDisk::new();
    let mut db: Arc<Database> = open(&disk).unwrap();
    let mut model = Model::default();
    let mut next_txn = 1i64;
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Commit {
                parts,
                staged,
                durable,
            } => {
                let id = next_txn;
                next_txn += 1;
                let mut txn = Transaction::new();
                let mut per_table: BTreeMap<usize, i64> = BTreeMap::new();
                for (k, (t, n)) in parts.iter().enumerate() {
                    let table = create(&db, &name(*t)).unwrap();
                    let first = per_table.entry(*t).or_default();
                    txn.add(table.clone(), rows(&table, id, *first, *n))
                        .unwrap();
                    *first += n;
                    if k + 1 == staged {
                        db.stage(&mut txn).unwrap();
                    }
                }
                let r = db.commit(txn, durable);
                r.committed.blocking_recv().unwrap().unwrap();
                model.committed.push(Entry::Txn(id, per_table));
                if let Some(d) = r.durable {
                    d.blocking_recv().unwrap().unwrap();
                    model.durable = model.committed.len();
                }
            }
            Op::Abandon { table, rows: n } => {
                let t = create(&db, &name(table)).unwrap();
                let mut txn = Transaction::new();
                txn.add(t.clone(), rows(&t, -1, 0, n)).unwrap();
                db.stage(&mut txn).unwrap();
            }
            Op::AddColumn { table, column } => {
                let t = create(&db, &name(table)).unwrap();
                let column = format!("extra{column}");
                db.add_columns(t, vec![ColumnSchema::new(&column, ColumnType::Double)])
                    .blocking_recv()
                    .unwrap()
                    .unwrap();
                model
                    .columns
                    .entry(table)
                    .or_default()
                    .insert(column.clone());
                model.ever.entry(table).or_default().insert(column);
            }
            Op::Drop { table } => {
                let dropped = match db.drop_table(&name(table)) {
                    Some(done) => {
                        done.blocking_recv().unwrap().unwrap();
                        true
                    }
                    None => false,
                };
                prop_assert!(
                    db.table(&name(table)).is_none(),
                    "step {}: still there",
                    step
                );
                if dropped {
                    model.committed.push(Entry::Drop(table));
                    model.columns.remove(&table);
                }
            }
            Op::Truncate { table } => {
                if let Some(done) = db.truncate_table(&name(table)) {
                    done.blocking_recv().unwrap().unwrap();
                    // Its rows are gone as a drop's are; the columns stay.
                    model.committed.push(Entry::Drop(table));
                }
            }
            Op::Rename { from, to } => {
                let free = db.table(&name(to)).is_none();
                match db.rename_table(&name(from), &name(to)) {
                    Some(done) => {
                        let answer = done.blocking_recv().unwrap();
                        prop_assert_eq!(answer.is_ok(), free || from == to, "step {}", step);
                        if answer.is_ok() && from != to {
                            model.committed.push(Entry::Rename(from, to));
                            let moved = model.columns.remove(&from).unwrap_or_default();
                            model.columns.insert(to, moved.clone());
                            model.ever.entry(to).or_default().extend(moved);
                        }
                    }
                    None => prop_assert!(db.table(&name(from)).is_none()),
                }
            }
            Op::Reopen => {
                db.close();
                drop(db);
                db = open(&disk).unwrap();
                model.durable = model.committed.len();
                for t in 0..3 {
                    prop_assert_eq!(
                        columns(&db, t),
                        model.columns.get(&t).cloned().unwrap_or_default(),
                        "step {}: columns after a reopen",
                        step
                    );
                }
            }
            Op::PowerCut { scramble } => {
                disk.power_off();
                db.close();
                drop(db);
                disk.restart(match scramble {
                    Some(seed) => PowerLoss::Scramble { seed },
                    None => PowerLoss::DropUnsynced,
                });
                db = open(&disk).unwrap();
                let got = observed(&db);
                // A prefix of the committed transactions, at least the
                // durable ones.
                let kept = (model.durable..=model.committed.len())
                    .find(|k| expected(&model.committed[..*k]) == got);
                prop_assert!(
                    kept.is_some(),
                    "step {}: after a power cut the rows are no prefix of the {} committed \
                     transactions ({} durable): {:?}",
                    step,
                    model.committed.len(),
                    model.durable,
                    got
                );
                model.committed.truncate(kept.unwrap_or(0));
                // Opening made everything recovered durable.
                model.durable = model.committed.len();
                for t in 0..3 {
                    let have = columns(&db, t);
                    let added = model.ever.get(&t).cloned().unwrap_or_default();
                    prop_assert!(
                        have.is_subset(&added),
                        "step {}: a column nobody added",
                        step
                    );
                    model.columns.insert(t, have);
                }
                continue;
            }
        }
        prop_assert_eq!(
            observed(&db),
            expected(&model.committed),
            "step {}: the rows differ from the model",
            step
        );
    }
    db.close();
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_database_matches_the_model_after_every_step_and_reopen(
        ops in prop::collection::vec(op(), 1..40)
    ) {
        run(ops)?;
    }
}
