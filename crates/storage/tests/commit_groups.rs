//! Requests that land in one commit group: each sees the changes of the
//! requests before it in the group (renames, creations, truncates, column
//! changes), and a reopen replays the group to the same state.
//!
//! The committer is held inside the WAL write of a first group
//! ([`SimulatedDisk::hold_next`]) while the requests queue up, so they all
//! form the next group, deterministically.

mod common;

use std::path::Path;
use std::sync::Arc;

use arrow::array::{Array, AsArray, Float64Array, RecordBatch};
use arrow::datatypes::{Float64Type, Schema};
use common::{DIR, contents, create, open, rows, schema};
use quiver_storage::io::{Op, SimulatedDisk};
use quiver_storage::{ColumnSchema, ColumnType, Database, SchemaChange, Table, Transaction};

/// Holds the committer inside its next WAL write (of a commit of one row
/// to `table`); returns the hold and that commit's receipt.
fn hold_committer(
    disk: &SimulatedDisk,
    db: &Database,
    table: &Arc<Table>,
) -> (quiver_storage::io::Hold, quiver_storage::CommitReceipt) {
    let hold = disk.hold_next(Op::Write, &Path::new(DIR).join("wal"));
    let mut txn = Transaction::new();
    txn.add(table.clone(), rows(table, 99, 0, 1)).unwrap();
    let receipt = db.commit(txn, false);
    hold.wait_until_reached();
    (hold, receipt)
}

fn column_names(db: &Database, name: &str) -> Vec<String> {
    db.table(name)
        .unwrap()
        .schema()
        .columns
        .iter()
        .map(|c| c.name.clone())
        .collect()
}

#[test]
fn create_after_rename_and_truncate_after_add_column_in_one_group() {
    let disk = SimulatedDisk::new();
    let db = open(&disk).unwrap();
    let old = create(&db, "t0").unwrap();
    let mut txn = Transaction::new();
    txn.add(old.clone(), rows(&old, 1, 0, 5)).unwrap();
    db.commit(txn, false)
        .committed
        .blocking_recv()
        .unwrap()
        .unwrap();

    let (hold, first) = hold_committer(&disk, &db, &old);
    // Lined up behind the held group, in this order:
    let renamed = db.rename_table("t0", "t1").unwrap();
    // t1 does not exist when these are sent, but it does within the group:
    // the renamed table is t1.
    let created_new = db.create_new_table(schema("t1"));
    let created = db.create_table(schema("t1"));
    let added = db.add_columns(
        old.clone(),
        vec![ColumnSchema::new("extra", ColumnType::Double)],
    );
    // Truncating the old table (found by its name before the group) keeps
    // what the group did to it: its new name and its new column.
    let truncated = db.truncate_table("t0").unwrap();
    // The old table is gone by now.
    let late = db.alter_schema(
        old.clone(),
        SchemaChange::Drop {
            names: vec!["extra".into()],
            if_exists: false,
        },
    );
    hold.release();
    first.committed.blocking_recv().unwrap().unwrap();

    assert_eq!(renamed.blocking_recv().unwrap().unwrap().name, "t1");
    assert!(matches!(
        created_new.blocking_recv().unwrap(),
        Err(quiver_storage::StorageError::TableExists { .. })
    ));
    assert_eq!(created.blocking_recv().unwrap().unwrap().id(), old.id());
    assert!(
        added
            .blocking_recv()
            .unwrap()
            .unwrap()
            .column_index("extra")
            .is_some()
    );
    let empty_t1 = truncated.blocking_recv().unwrap().unwrap();
    assert_ne!(empty_t1.id(), old.id());
    assert_eq!(empty_t1.schema().name, "t1");
    assert!(
        late.blocking_recv().unwrap().is_err(),
        "the table was dropped"
    );

    let check = |db: &Database, when: &str| {
        let names: Vec<String> = db
            .tables()
            .into_iter()
            .map(|t| t.schema.name.clone())
            .collect();
        assert_eq!(names, ["t1"], "{when}");
        assert!(
            column_names(db, "t1").contains(&"extra".to_string()),
            "{when}"
        );
        // Truncated: every row before is gone.
        let all = contents(db);
        assert!(all["t1"].is_empty(), "{when}: {all:?}");
    };
    check(&db, "after the group");
    db.close();
    drop(db);
    let db = open(&disk).unwrap();
    check(&db, "after a reopen");
    // The name t0 is free; both take rows under their names.
    let t0 = create(&db, "t0").unwrap();
    assert_ne!(t0.id(), old.id());
    let t1 = db.table("t1").unwrap();
    let mut txn = Transaction::new();
    txn.add(t0.clone(), rows(&t0, 2, 0, 3)).unwrap();
    txn.add(t1.clone(), rows(&t1, 2, 0, 4)).unwrap();
    db.commit(txn, true)
        .committed
        .blocking_recv()
        .unwrap()
        .unwrap();
    let all = contents(&db);
    assert_eq!((all["t0"].len(), all["t1"].len()), (3, 4));
}

/// Rows of `table` with `extra` = `value` in every row.
fn with_extra(table: &Arc<Table>, txn: i64, n: i64, value: f64) -> RecordBatch {
    let base = rows(table, txn, 0, n);
    let schema = table.schema();
    let extra = &schema.columns[schema.column_index("extra").unwrap()];
    let mut fields: Vec<_> = base.schema().fields().iter().cloned().collect();
    fields.push(Arc::new(extra.stored_field()));
    let mut columns = base.columns().to_vec();
    columns.push(Arc::new(Float64Array::from(vec![value; n as usize])));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

/// (txn, extra) of every row of `name`.
fn extras(db: &Database, name: &str) -> Vec<(i64, Option<f64>)> {
    let snap = db.snapshot(name).unwrap();
    let i = snap.schema().column_index("extra").unwrap();
    let mut out = Vec::new();
    for b in snap.collect(false).unwrap() {
        let txn = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
        let extra = b.column(i).as_primitive::<Float64Type>();
        for r in 0..b.num_rows() {
            out.push((txn.value(r), extra.is_valid(r).then(|| extra.value(r))));
        }
    }
    out
}

#[test]
fn drop_and_add_a_column_between_commits_of_one_group() {
    let disk = SimulatedDisk::new();
    let db = open(&disk).unwrap();
    let t = create(&db, "t").unwrap();
    db.add_columns(
        t.clone(),
        vec![ColumnSchema::new("extra", ColumnType::Double)],
    )
    .blocking_recv()
    .unwrap()
    .unwrap();
    // Rows built for the column before it is dropped.
    let before = with_extra(&t, 1, 2, 1.5);

    let (hold, first) = hold_committer(&disk, &db, &t);
    let mut txn = Transaction::new();
    txn.add(t.clone(), before).unwrap();
    let committed_before = db.commit(txn, false);
    let dropped = db.alter_schema(
        t.clone(),
        SchemaChange::Drop {
            names: vec!["extra".into()],
            if_exists: false,
        },
    );
    let re_added = db.add_columns(
        t.clone(),
        vec![ColumnSchema::new("extra", ColumnType::Double)],
    );
    let renamed = db.alter_schema(
        t.clone(),
        SchemaChange::Rename {
            from: "txn".into(),
            to: "TXN".into(),
        },
    );
    hold.release();
    first.committed.blocking_recv().unwrap().unwrap();
    committed_before.committed.blocking_recv().unwrap().unwrap();
    dropped.blocking_recv().unwrap().unwrap();
    let schema = re_added.blocking_recv().unwrap().unwrap();
    assert_ne!(
        schema.columns[schema.column_index("extra").unwrap()].stored_name,
        "extra"
    );
    renamed.blocking_recv().unwrap().unwrap();

    // Rows for the new column.
    let mut txn = Transaction::new();
    txn.add(t.clone(), with_extra(&t, 2, 3, 2.5)).unwrap();
    db.commit(txn, false)
        .committed
        .blocking_recv()
        .unwrap()
        .unwrap();

    let want = vec![
        (99, None),
        (1, None),
        (1, None),
        (2, Some(2.5)),
        (2, Some(2.5)),
        (2, Some(2.5)),
    ];
    assert_eq!(extras(&db, "t"), want);
    assert_eq!(column_names(&db, "t")[0], "TXN");
    db.close();
    drop(db);
    let db = open(&disk).unwrap();
    assert_eq!(extras(&db, "t"), want, "after a reopen");
}
