//! Dropping rows by designated timestamp (DROP PARTITION, TTL): the rows
//! go, the others keep their row ids, the files go, it survives a reopen,
//! and a power cut at any operation of the drop leaves either every row
//! of the range or none of it.

mod common;

use common::{contents, create, open, rows};
use quiver_storage::io::{Fault, PowerLoss, SimulatedDisk};
use quiver_storage::{Database, PartitionBy, StorageError, Transaction};

const DAY: i64 = 86_400_000_000;

/// The UTC day of a row written by `common::rows`.
fn day_of(row: &common::Row) -> i64 {
    row.1 * 3 + row.2 / 7
}

fn commit(db: &Database, table: &str, txn: i64, n: i64) {
    let t = db.table(table).unwrap();
    let mut tx = Transaction::new();
    tx.add(t.clone(), rows(&t, txn, 0, n)).unwrap();
    let r = db.commit(tx, true);
    r.committed.blocking_recv().unwrap().unwrap();
    r.durable.unwrap().blocking_recv().unwrap().unwrap();
}

/// Three transactions over days 0..=10 (some rows sealed, some not).
fn fill(db: &Database, table: &str) {
    commit(db, table, 0, 30);
    commit(db, table, 1, 30);
    commit(db, table, 2, 23);
}

fn drop_days(
    db: &Database,
    table: &str,
    days: &[i64],
) -> quiver_storage::Result<quiver_storage::DroppedRows> {
    let ranges = days.iter().map(|d| (d * DAY, (d + 1) * DAY)).collect();
    db.drop_rows_in(db.table(table).unwrap(), ranges)
        .blocking_recv()
        .unwrap_or(Err(StorageError::Closed))
}

/// Files under the table's segments directory.
fn segment_files(disk: &SimulatedDisk) -> Vec<String> {
    disk.files()
        .keys()
        .filter_map(|p| p.to_str())
        .filter(|p| p.contains("/segments/"))
        .map(str::to_string)
        .collect()
}

/// The format version byte of every table's manifest on `disk`.
fn manifest_versions(disk: &SimulatedDisk) -> Vec<u8> {
    disk.files()
        .iter()
        .filter(|(p, _)| p.ends_with("manifest"))
        .map(|(_, bytes)| bytes[8])
        .collect()
}

#[test]
fn dropped_days_lose_their_rows_and_files_others_keep_their_ids() {
    let disk = SimulatedDisk::new();
    let db = open(&disk).unwrap();
    create(&db, "t").unwrap();
    fill(&db, "t");
    let before = contents(&db).remove("t").unwrap();
    assert_eq!(before.len(), 83);
    // The seal runs in the background: wait for day 2's segment.
    let sealed_at = std::time::Instant::now();
    while !segment_files(&disk)
        .iter()
        .any(|f| f.contains("1970-01-03"))
    {
        assert!(sealed_at.elapsed().as_secs() < 10, "day 2 is never sealed");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    let dropped = drop_days(&db, "t", &[2, 4]).unwrap();
    let expected: Vec<_> = before
        .iter()
        .filter(|r| ![2, 4].contains(&day_of(r)))
        .cloned()
        .collect();
    assert_eq!(dropped.rows as usize, before.len() - expected.len());
    assert!(dropped.segments_removed > 0);
    assert_eq!(contents(&db)["t"], expected);
    assert_eq!(
        db.snapshot("t").unwrap().row_count() as usize,
        expected.len()
    );
    let files = segment_files(&disk);
    assert!(
        !files
            .iter()
            .any(|f| f.contains("1970-01-03") || f.contains("1970-01-05")),
        "files of dropped days remain: {files:?}"
    );
    // Rows written since (also into a dropped day) get new row ids.
    commit(&db, "t", 3, 5);
    let after = contents(&db).remove("t").unwrap();
    assert_eq!(after.len(), expected.len() + 5);
    assert_eq!(after[expected.len()].0, 83, "row ids are not reused");
    db.close();
    drop(db);
    let db = open(&disk).unwrap();
    assert_eq!(contents(&db)["t"], after, "the drop survives a reopen");
    // Dropping what is gone already is nothing.
    assert_eq!(drop_days(&db, "t", &[2]).unwrap().rows, 0);
    // Day 3 between the dropped days 2 and 4: their emptied segments
    // become one span, so the list does not grow with every drop.
    drop_days(&db, "t", &[3]).unwrap();
    let segments = db.snapshot("t").unwrap().segments().to_vec();
    assert!(
        segments
            .windows(2)
            .all(|w| w[0].has_rows() || w[1].has_rows()),
        "neighbouring empty spans: {segments:?}"
    );
    let ids: Vec<u64> = contents(&db)["t"].iter().map(|r| r.0).collect();
    let kept: Vec<u64> = after
        .iter()
        .filter(|r| day_of(r) != 3)
        .map(|r| r.0)
        .collect();
    assert_eq!(ids, kept);
    // The manifest says it holds segments with fewer rows than they span
    // (version 3); a table without drops keeps version 2.
    assert_eq!(manifest_versions(&disk), vec![3]);
    db.close();
}

#[test]
fn a_table_without_drops_keeps_the_older_manifest_version() {
    let disk = SimulatedDisk::new();
    let db = open(&disk).unwrap();
    create(&db, "t").unwrap();
    fill(&db, "t");
    assert_eq!(drop_days(&db, "t", &[100]).unwrap().rows, 0);
    db.close();
    assert_eq!(manifest_versions(&disk), vec![2]);
}

#[test]
fn a_segment_spanning_days_is_rewritten_without_the_dropped_rows() {
    let disk = SimulatedDisk::new();
    let db = open(&disk).unwrap();
    let mut schema = common::schema("flat");
    schema.partition_by = PartitionBy::None;
    db.create_table(schema).blocking_recv().unwrap().unwrap();
    fill(&db, "flat");
    let before = contents(&db).remove("flat").unwrap();
    // Half of day 1, all of day 3, and rows of days 5..=6.
    let ranges = vec![(DAY + 3, 2 * DAY), (3 * DAY, 4 * DAY), (5 * DAY, 7 * DAY)];
    let dropped = db
        .drop_rows_in(db.table("flat").unwrap(), ranges.clone())
        .blocking_recv()
        .unwrap()
        .unwrap();
    assert!(dropped.segments_rewritten > 0, "{dropped:?}");
    let ts = |r: &common::Row| day_of(r) * DAY + r.2;
    let expected: Vec<_> = before
        .iter()
        .filter(|r| !ranges.iter().any(|&(lo, hi)| lo <= ts(r) && ts(r) < hi))
        .cloned()
        .collect();
    assert_eq!(dropped.rows as usize, before.len() - expected.len());
    assert_eq!(contents(&db)["flat"], expected);
    db.close();
    drop(db);
    let db = open(&disk).unwrap();
    assert_eq!(contents(&db)["flat"], expected);
    db.close();
}

#[test]
fn bad_drop_requests_are_refused_before_anything_changes() {
    let disk = SimulatedDisk::new();
    let db = open(&disk).unwrap();
    create(&db, "t").unwrap();
    fill(&db, "t");
    let before = contents(&db);
    let t = db.table("t").unwrap();
    let empty = db.drop_rows_in(t.clone(), vec![(5, 5)]).blocking_recv();
    assert!(matches!(
        empty,
        Ok(Err(StorageError::InvalidRequest { .. }))
    ));
    let many = vec![(0, 1); quiver_storage::db::MAX_DROP_RANGES + 1];
    let many = db.drop_rows_in(t, many).blocking_recv();
    assert!(matches!(many, Ok(Err(StorageError::InvalidRequest { .. }))));
    let mut schema = common::schema("no_ts");
    schema.designated_timestamp = None;
    let no_ts = db.create_table(schema).blocking_recv().unwrap().unwrap();
    let refused = db.drop_rows_in(no_ts, vec![(0, DAY)]).blocking_recv();
    assert!(matches!(
        refused,
        Ok(Err(StorageError::InvalidRequest { .. }))
    ));
    assert_eq!(contents(&db)["t"], before["t"]);
    assert_eq!(db.health(), None);
    db.close();
}

/// A power cut at every file operation of a drop: after the restart the
/// table holds all of the dropped days' rows or none of them, every other
/// row is there with its row id, and files of a completed drop are gone.
#[test]
fn a_power_cut_during_a_drop_leaves_all_of_it_or_none() {
    let probe = SimulatedDisk::new();
    let (start, end) = {
        let db = open(&probe).unwrap();
        create(&db, "t").unwrap();
        fill(&db, "t");
        let start = probe.ops();
        drop_days(&db, "t", &[1, 2, 5]).unwrap();
        let end = probe.ops();
        db.close();
        (start, end)
    };
    assert!(end > start + 5, "the drop does file operations");
    let mut outcomes = [0usize; 2];
    // A little past the drop too: background work may shift the count.
    for k in 0..(end - start + 4) {
        let disk = SimulatedDisk::new();
        let db = open(&disk).unwrap();
        create(&db, "t").unwrap();
        fill(&db, "t");
        let before = contents(&db).remove("t").unwrap();
        disk.fail_at(disk.ops() + 1 + k, Fault::PowerOff);
        let result = drop_days(&db, "t", &[1, 2, 5]);
        db.close();
        drop(db);
        let loss = match k % 2 {
            0 => PowerLoss::DropUnsynced,
            _ => PowerLoss::Scramble { seed: k },
        };
        disk.restart(loss);
        let context = format!("power cut at drop operation {k}, {loss:?}, drop said {result:?}");
        let db = open(&disk).unwrap_or_else(|e| panic!("{context}: does not open: {e}"));
        let found = contents(&db).remove("t").unwrap();
        let dropped: Vec<_> = before
            .iter()
            .filter(|r| ![1, 2, 5].contains(&day_of(r)))
            .cloned()
            .collect();
        if found == before {
            assert!(
                result.is_err(),
                "{context}: a drop that answered OK is lost"
            );
            outcomes[0] += 1;
        } else {
            assert_eq!(found, dropped, "{context}: neither all nor none dropped");
            let files = segment_files(&disk);
            assert!(
                !files.iter().any(|f| f.contains("1970-01-03")),
                "{context}: files of a dropped day remain after reopening: {files:?}"
            );
            outcomes[1] += 1;
        }
        // The database goes on from either.
        commit(&db, "t", 7, 2);
        db.close();
    }
    eprintln!(
        "power cuts: {} before the drop took, {} after",
        outcomes[0], outcomes[1]
    );
    assert!(outcomes[0] > 0 && outcomes[1] > 0, "{outcomes:?}");
}
