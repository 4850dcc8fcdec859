//! Regressions of the write-path review (issue 9), one test per defect,
//! each failing on the code before its fix:
//!
//! 1. A transaction of more than 65,535 parts was acknowledged, then the
//!    database refused to open: the part count was written as a `u16`.
//! 3. A record larger than recovery accepts (1 GiB) was acknowledged, then
//!    cut as a torn tail at restart: the writer never checked the limit.
//! 4. After a failed write poisoned the database, requests already queued
//!    were still written and acknowledged.
//!    Also: a write that failed half way left whole records of its group
//!    in the log, which replayed after restart though their clients got
//!    errors.
//! 5. After a failed fsync, nothing may ever be reported durable again.
//! 8. Recovery took any valid-looking record after a bad one as proof of
//!    corruption, so a value (VARCHAR or BINARY) holding a record made a
//!    torn tail refuse to open; damage to fsync'd records must still be
//!    refused.
//! 9. `Database::send` deadlocked once the committer thread had died: the
//!    dropped transaction locked the mutex the sender held.

mod common;

use std::sync::Arc;
use std::time::Duration;

use arrow::array::{BinaryArray, RecordBatch};
use arrow::buffer::{Buffer, OffsetBuffer};
use common::{contents, create, open, per_txn, rows};
use quiver_storage::io::{Fault, Op, SimulatedDisk};
use quiver_storage::limits::MAX_RECORD_BODY_LEN;
use quiver_storage::{
    ColumnSchema, ColumnType, Database, Options, PartitionBy, StorageError, TableSchema,
    Transaction,
};

fn wal() -> &'static std::path::Path {
    std::path::Path::new("/db/wal")
}

/// Commits `parts` and waits for the committed answer.
fn commit(db: &Database, txn: Transaction, durable: bool) -> quiver_storage::Result<u64> {
    let r = db.commit(txn, durable);
    let c = r
        .committed
        .blocking_recv()
        .unwrap_or(Err(StorageError::Closed))?;
    if let Some(d) = r.durable {
        d.blocking_recv().unwrap_or(Err(StorageError::Closed))?;
    }
    Ok(c.lsn)
}

fn one(table: &Arc<quiver_storage::Table>, txn: i64, n: i64) -> Transaction {
    let mut t = Transaction::new();
    t.add(table.clone(), rows(table, txn, 0, n)).unwrap();
    t
}

#[test]
fn a_transaction_of_more_than_65535_parts_commits_and_reopens() {
    let disk = SimulatedDisk::new();
    let db = open(&disk).unwrap();
    let t = create(&db, "t").unwrap();
    // One deferred frame, staged ahead of its commit...
    let mut txn = Transaction::new();
    txn.add(t.clone(), rows(&t, 1, 0, 1)).unwrap();
    db.stage(&mut txn).unwrap();
    // ...then a commit frame of 65,535 one-row blocks.
    for i in 1..65_536 {
        txn.add(t.clone(), rows(&t, 1, i, 1)).unwrap();
    }
    commit(&db, txn, true).unwrap();
    assert_eq!(db.snapshot("t").unwrap().row_count(), 65_536);
    db.close();
    drop(db);
    let db = open(&disk).expect("the database opens again");
    let rows = contents(&db);
    assert_eq!(per_txn("t", &rows["t"])[&1], 65_536);
}

/// Creates a table of one column `column` of `column_type`, without a
/// designated timestamp.
fn one_column_table(
    db: &Database,
    name: &str,
    column: &str,
    column_type: ColumnType,
) -> Arc<quiver_storage::Table> {
    db.create_table(TableSchema {
        name: name.into(),
        columns: vec![ColumnSchema::new(column, column_type)],
        designated_timestamp: None,
        partition_by: PartitionBy::None,
        version: 0,
        has_dropped_columns: false,
        ttl: None,
    })
    .blocking_recv()
    .unwrap()
    .unwrap()
}

/// A BINARY column whose one value is `len` zero bytes (allocated zeroed
/// and never touched, so it costs address space, not memory).
fn huge_binary(len: usize) -> RecordBatch {
    let values = Buffer::from_vec(vec![0u8; len]);
    let offsets = OffsetBuffer::new(vec![0i32, i32::try_from(len).unwrap()].into());
    let blob = BinaryArray::try_new(offsets, values, None).unwrap();
    RecordBatch::try_from_iter([("blob", Arc::new(blob) as _)]).unwrap()
}

#[test]
fn a_record_larger_than_recovery_accepts_is_refused_before_the_ack() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), Options::default()).unwrap();
    let t = one_column_table(&db, "blobs", "blob", ColumnType::Binary);
    // Two blocks that each fit a record, but not together.
    let half = MAX_RECORD_BODY_LEN / 2 + 4096;
    let mut txn = Transaction::new();
    txn.add(t.clone(), huge_binary(half)).unwrap();
    txn.add(t.clone(), huge_binary(half)).unwrap();
    let e = commit(&db, txn, false).unwrap_err();
    assert!(
        matches!(&e, StorageError::LimitExceeded { limit, .. } if *limit == MAX_RECORD_BODY_LEN as u64),
        "{e}"
    );
    // A block alone past the limit is refused when it is added.
    let mut txn = Transaction::new();
    let e = txn
        .add(t.clone(), huge_binary(MAX_RECORD_BODY_LEN))
        .unwrap_err();
    assert!(matches!(e, StorageError::LimitExceeded { .. }), "{e}");
    // Nothing was written; the database goes on.
    assert_eq!(db.health(), None);
    let small =
        RecordBatch::try_from_iter([("blob", Arc::new(BinaryArray::from_vec(vec![b"x"])) as _)])
            .unwrap();
    let mut txn = Transaction::new();
    txn.add(t.clone(), small).unwrap();
    commit(&db, txn, true).unwrap();
    drop(db);
    let db = Database::open(dir.path(), Options::default()).unwrap();
    assert_eq!(db.snapshot("blobs").unwrap().row_count(), 1);
}

#[test]
fn after_a_failed_write_nothing_more_is_written_or_acknowledged() {
    let disk = SimulatedDisk::new();
    let db = open(&disk).unwrap();
    let t = create(&db, "t").unwrap();
    commit(&db, one(&t, 0, 3), false).unwrap();
    // The next WAL write writes half its bytes and fails; cutting the file
    // back fails too, so whole records of the group stay in the file.
    disk.fail_next(Op::Write, wal(), Fault::ShortWrite);
    disk.fail_next(Op::SetLen, wal(), Fault::Error);
    let receipts: Vec<_> = (1..=40).map(|i| db.commit(one(&t, i, 3), false)).collect();
    let mut results = Vec::new();
    for r in receipts {
        results.push(r.committed.blocking_recv().unwrap().map(|_| ()));
    }
    let first_error = results
        .iter()
        .position(Result::is_err)
        .expect("a commit failed");
    assert!(
        results[first_error..].iter().all(Result::is_err),
        "a commit was acknowledged after the failed write: {results:?}"
    );
    let ok: Vec<i64> = (1..=40)
        .filter(|i| results[*i as usize - 1].is_ok())
        .collect();
    assert!(db.health().is_some());
    assert!(matches!(
        commit(&db, one(&t, 99, 1), false),
        Err(StorageError::Poisoned(_))
    ));
    assert!(matches!(
        db.sync().blocking_recv().unwrap(),
        Err(StorageError::Poisoned(_))
    ));
    db.close();
    drop(db);
    // The process restarts (nothing lost): exactly the acknowledged
    // transactions are there.
    disk.heal();
    let db = open(&disk).unwrap();
    let got = per_txn("t", &contents(&db)["t"]);
    let expected: Vec<i64> = std::iter::once(0).chain(ok).collect();
    assert_eq!(got.keys().copied().collect::<Vec<_>>(), expected);
}

#[test]
fn after_a_failed_fsync_nothing_is_reported_durable() {
    let disk = SimulatedDisk::new();
    let db = open(&disk).unwrap();
    let t = create(&db, "t").unwrap();
    commit(&db, one(&t, 0, 2), true).unwrap();
    disk.fail_next(Op::Sync, wal(), Fault::Error);
    let r = db.commit(one(&t, 1, 2), true);
    let committed = r.committed.blocking_recv().unwrap();
    assert!(committed.is_ok(), "written and visible before the fsync");
    let durable = r.durable.unwrap().blocking_recv().unwrap();
    assert!(
        matches!(durable, Err(StorageError::Poisoned(_))),
        "{durable:?}"
    );
    // The disk would sync fine now; the database must not believe it.
    assert!(db.health().unwrap().contains("sync"));
    assert!(db.sync().blocking_recv().unwrap().is_err());
    assert!(commit(&db, one(&t, 2, 2), true).is_err());
}

#[test]
fn a_record_header_inside_a_value_does_not_stop_a_torn_tail_being_cut() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), Options::default()).unwrap();
    let t = one_column_table(&db, "notes", "note", ColumnType::Binary);
    let note = |b: &[u8]| {
        RecordBatch::try_from_iter([("note", Arc::new(BinaryArray::from_vec(vec![b])) as _)])
            .unwrap()
    };
    let mut txn = Transaction::new();
    txn.add(t.clone(), note(b"kept")).unwrap();
    commit(&db, txn, true).unwrap();
    // A value holding a well-formed record of the first WAL format (magic,
    // checksum, version 1, kind, length, lsn, body) and the start of one of
    // the current format, then more text.
    let mut fake = Vec::new();
    fake.extend_from_slice(b"QWAL\0\0\0\0\x01\x01\0\0");
    fake.extend_from_slice(&4u32.to_le_bytes());
    fake.extend_from_slice(&1000u64.to_le_bytes());
    fake.extend_from_slice(b"body");
    let crc = crc32c::crc32c(&fake[8..]);
    fake[4..8].copy_from_slice(&crc.to_le_bytes());
    let mut value = fake.clone();
    value.extend_from_slice(&[b'z'; 3000]);
    let mut txn = Transaction::new();
    txn.add(t.clone(), note(&value)).unwrap();
    commit(&db, txn, false).unwrap();
    db.close();
    drop(db);
    // A crash tore the last write after the fake record.
    let wal_file = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let bytes = std::fs::read(&wal_file).unwrap();
    let at = bytes
        .windows(fake.len())
        .position(|w| w == fake.as_slice())
        .expect("the fake record is in the log");
    std::fs::write(&wal_file, &bytes[..at + fake.len() + 1000]).unwrap();
    let db = Database::open(dir.path(), Options::default()).expect("a torn tail is cut");
    assert_eq!(db.snapshot("notes").unwrap().row_count(), 1);
}

#[test]
fn damage_to_fsynced_records_is_refused_not_cut() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::open(dir.path(), Options::default()).unwrap();
        let t = db
            .create_table(common::schema("t"))
            .blocking_recv()
            .unwrap()
            .unwrap();
        for i in 0..3 {
            let mut txn = Transaction::new();
            txn.add(t.clone(), rows(&t, i, 0, 50)).unwrap();
            commit(&db, txn, false).unwrap();
        }
        // Closing fsyncs everything and says so in the log.
    }
    let wal_file = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .max()
        .unwrap();
    let mut bytes = std::fs::read(&wal_file).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&wal_file, &bytes).unwrap();
    let e = Database::open(dir.path(), Options::default()).unwrap_err();
    assert!(
        matches!(&e, StorageError::Corrupt { reason, .. } if reason.contains("fsync'd")),
        "{e}"
    );
}

#[test]
fn a_commit_after_the_committer_failed_returns_an_error_instead_of_hanging() {
    let disk = SimulatedDisk::new();
    let db = open(&disk).unwrap();
    let t = create(&db, "t").unwrap();
    // A bug in the committer (a panic while writing).
    disk.fail_next(Op::Write, wal(), Fault::Panic);
    let _ = commit(&db, one(&t, 0, 1), false);
    // A transaction with staged parts, committed after that: dropping it
    // reports its parts as abandoned through the channel the commit uses.
    let (tx, rx) = std::sync::mpsc::channel();
    let db2 = db.clone();
    let t2 = t.clone();
    std::thread::spawn(move || {
        let mut txn = one(&t2, 1, 2);
        let staged = db2.stage(&mut txn);
        let committed = commit(&db2, txn, false);
        let _ = tx.send((staged.is_err(), committed.is_err()));
    });
    let (stage_failed, commit_failed) = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("the commit returned");
    assert!(stage_failed || commit_failed);
    assert!(db.health().is_some());
}
