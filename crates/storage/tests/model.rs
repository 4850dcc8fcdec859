//! Model-based test: random sequences of operations run against the
//! database (on a simulated disk) and against a plain in-memory model of
//! what the ack contract promises, compared after every step.
//!
//! Extra DOUBLE columns are added, dropped and renamed among the commits;
//! every commit writes `txn * 1000 + id` into each, where `id` names the
//! column for life (a rename keeps it, a drop and a re-add makes a new
//! one), so a value that shows up under the wrong column, or a renamed
//! column that loses its values, is caught.
//!
//! The model is the log of committed transactions and table drops in
//! commit order and how many of its entries were durably acknowledged. After a clean reopen the
//! database must hold exactly the model; after a power cut it must hold a
//! prefix of it at least as long as the durable part (durability is a
//! prefix of the log), which then becomes the model.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, RecordBatch};
use arrow::datatypes::{Float64Type, Int64Type, Schema};
use common::{contents, create, open, per_txn, rows};
use proptest::prelude::*;
use quiver_storage::io::{PowerLoss, SimulatedDisk};
use quiver_storage::{ColumnSchema, ColumnType, Database, SchemaChange, Transaction};

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
    /// A column dropped (when the table has it).
    DropColumn { table: usize, column: usize },
    /// A column renamed (when the table has it and not the new name).
    RenameColumn {
        table: usize,
        from: usize,
        to: usize,
    },
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
        2 => (0usize..3, 0usize..3).prop_map(|(table, column)| Op::AddColumn { table, column }),
        1 => (0usize..3, 0usize..3).prop_map(|(table, column)| Op::DropColumn { table, column }),
        1 => (0usize..3, 0usize..3, 0usize..3).prop_map(|(table, from, to)| Op::RenameColumn { table, from, to }),
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
    /// Columns the tables have now, by name: the column's id.
    columns: BTreeMap<usize, BTreeMap<String, u64>>,
    /// Columns ever added, per table (a lost drop brings them back).
    ever: BTreeMap<usize, BTreeSet<String>>,
    /// Column ids given out so far.
    next_column_id: u64,
    /// Per column id, the transactions that wrote it.
    written: BTreeMap<u64, BTreeSet<i64>>,
    /// Transactions up to this one may have lost which columns they wrote
    /// (a power cut took column changes back): their extra values are only
    /// checked to belong to their column.
    unsure_through: i64,
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

/// (txn, extra column values by name) of every row of table `t`.
fn extras(db: &Database, t: usize) -> Vec<(i64, BTreeMap<String, Option<f64>>)> {
    let Some(snap) = db.snapshot(&name(t)) else {
        return Vec::new();
    };
    let schema = snap.schema().clone();
    let mut out = Vec::new();
    for b in snap.collect(false).unwrap() {
        let txn = b.column(0).as_primitive::<Int64Type>();
        for r in 0..b.num_rows() {
            let mut values = BTreeMap::new();
            for (i, c) in schema.columns.iter().enumerate() {
                if c.name.starts_with("extra") {
                    let v = b.column(i).as_primitive::<Float64Type>();
                    values.insert(c.name.clone(), v.is_valid(r).then(|| v.value(r)));
                }
            }
            out.push((txn.value(r), values));
        }
    }
    out
}

/// Checks every extra value of table `t` against the model: a value is
/// `txn * 1000 + id` of its column, present exactly when that transaction
/// wrote the column (for transactions the model is sure of).
fn check_extras(db: &Database, model: &Model, t: usize, step: usize) -> Result<(), TestCaseError> {
    let columns = model.columns.get(&t).cloned().unwrap_or_default();
    for (txn, values) in extras(db, t) {
        for (column, value) in values {
            let id = columns.get(&column).copied();
            prop_assert!(id.is_some(), "step {}: unknown column {}", step, column);
            let id = id.unwrap_or_default();
            let wrote = model.written.get(&id).is_some_and(|w| w.contains(&txn));
            match value {
                Some(v) => prop_assert_eq!(
                    v,
                    (txn * 1000) as f64 + id as f64,
                    "step {}: t{}.{} of txn {} holds another column's value",
                    step,
                    t,
                    column,
                    txn
                ),
                None => prop_assert!(
                    !wrote || txn <= model.unsure_through,
                    "step {}: t{}.{} of txn {} lost its value",
                    step,
                    t,
                    column,
                    txn
                ),
            }
            if txn > model.unsure_through && value.is_some() {
                prop_assert!(
                    wrote,
                    "step {}: t{}.{} txn {} has a value it never wrote",
                    step,
                    t,
                    column,
                    txn
                );
            }
        }
    }
    Ok(())
}

/// The extra columns `table` has now, with the model's ids.
fn extra_columns(model: &Model, t: usize) -> BTreeMap<String, u64> {
    model.columns.get(&t).cloned().unwrap_or_default()
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
                let mut wrote: Vec<u64> = Vec::new();
                for (k, (t, n)) in parts.iter().enumerate() {
                    let table = create(&db, &name(*t)).unwrap();
                    let first = per_table.entry(*t).or_default();
                    let base = rows(&table, id, *first, *n);
                    let schema = table.schema();
                    let mut fields: Vec<_> = base.schema().fields().iter().cloned().collect();
                    let mut arrays = base.columns().to_vec();
                    for (column, cid) in extra_columns(&model, *t) {
                        let c = &schema.columns[schema.column_index(&column).unwrap()];
                        fields.push(Arc::new(c.stored_field()));
                        arrays.push(Arc::new(Float64Array::from(vec![
                            (id * 1000) as f64
                                + cid as f64;
                            *n as usize
                        ])));
                        wrote.push(cid);
                    }
                    let batch =
                        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).unwrap();
                    txn.add(table.clone(), batch).unwrap();
                    *first += n;
                    if k + 1 == staged {
                        db.stage(&mut txn).unwrap();
                    }
                }
                let r = db.commit(txn, durable);
                r.committed.blocking_recv().unwrap().unwrap();
                for cid in wrote {
                    model.written.entry(cid).or_default().insert(id);
                }
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
                let columns = model.columns.entry(table).or_default();
                if !columns.contains_key(&column) {
                    columns.insert(column.clone(), model.next_column_id);
                    model.next_column_id += 1;
                }
                model.ever.entry(table).or_default().insert(column);
            }
            Op::DropColumn { table, column } => {
                let column = format!("extra{column}");
                let t = create(&db, &name(table)).unwrap();
                let answer = db
                    .alter_schema(
                        t,
                        SchemaChange::Drop {
                            names: vec![column.clone()],
                            if_exists: false,
                        },
                    )
                    .blocking_recv()
                    .unwrap();
                let columns = model.columns.entry(table).or_default();
                prop_assert_eq!(
                    answer.is_ok(),
                    columns.contains_key(&column),
                    "step {}",
                    step
                );
                columns.remove(&column);
            }
            Op::RenameColumn { table, from, to } => {
                let (from, to) = (format!("extra{from}"), format!("extra{to}"));
                let t = create(&db, &name(table)).unwrap();
                let answer = db
                    .alter_schema(
                        t,
                        SchemaChange::Rename {
                            from: from.clone(),
                            to: to.clone(),
                        },
                    )
                    .blocking_recv()
                    .unwrap();
                let columns = model.columns.entry(table).or_default();
                let ok = columns.contains_key(&from) && (from == to || !columns.contains_key(&to));
                prop_assert_eq!(answer.is_ok(), ok, "step {}: {:?}", step, answer);
                if ok {
                    let id = columns.remove(&from).unwrap_or_default();
                    columns.insert(to.clone(), id);
                    model.ever.entry(table).or_default().insert(to);
                }
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
                            model.ever.entry(to).or_default().extend(moved.into_keys());
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
                        model
                            .columns
                            .get(&t)
                            .map(|c| c.keys().cloned().collect())
                            .unwrap_or_default(),
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
                // Column changes may be lost with the power: which column is
                // which is read back from the values (each column's values
                // must all carry one id), and transactions so far are only
                // checked for values that belong to their column.
                model.unsure_through = next_txn - 1;
                for t in 0..3 {
                    let have = columns(&db, t);
                    let added = model.ever.get(&t).cloned().unwrap_or_default();
                    prop_assert!(
                        have.is_subset(&added),
                        "step {}: a column nobody added",
                        step
                    );
                    let mut ids: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
                    for (txn, values) in extras(&db, t) {
                        for (column, v) in values {
                            if let Some(v) = v {
                                ids.entry(column)
                                    .or_default()
                                    .insert(v as u64 - txn as u64 * 1000);
                            }
                        }
                    }
                    let mut columns = BTreeMap::new();
                    for column in have {
                        let id = match ids.get(&column) {
                            Some(found) => {
                                prop_assert_eq!(
                                    found.len(),
                                    1,
                                    "step {}: t{}.{} mixes columns: {:?}",
                                    step,
                                    t,
                                    column,
                                    found
                                );
                                found.iter().next().copied().unwrap_or_default()
                            }
                            None => {
                                model.next_column_id += 1;
                                model.next_column_id - 1
                            }
                        };
                        columns.insert(column, id);
                    }
                    model.columns.insert(t, columns);
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
        for t in 0..3 {
            check_extras(&db, &model, t, step)?;
        }
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

#[test]
fn columns_dropped_added_again_and_renamed_keep_their_values_through_seals() {
    let commit = Op::Commit {
        parts: vec![(0, 3)],
        staged: 0,
        durable: false,
    };
    // Past the seal threshold (40 rows): segments get written.
    let big = Op::Commit {
        parts: vec![(0, 29), (0, 29)],
        staged: 1,
        durable: true,
    };
    run(vec![
        commit.clone(),
        Op::AddColumn {
            table: 0,
            column: 0,
        },
        commit.clone(),
        Op::DropColumn {
            table: 0,
            column: 0,
        },
        Op::AddColumn {
            table: 0,
            column: 0,
        },
        commit.clone(),
        Op::RenameColumn {
            table: 0,
            from: 0,
            to: 1,
        },
        Op::AddColumn {
            table: 0,
            column: 0,
        },
        big.clone(),
        big.clone(),
        Op::RenameColumn {
            table: 0,
            from: 1,
            to: 2,
        },
        Op::DropColumn {
            table: 0,
            column: 0,
        },
        big.clone(),
        Op::Reopen,
        commit,
        big,
        Op::PowerCut { scramble: None },
    ])
    .unwrap();
}
