//! Recovery streams the WAL: its memory is bounded by the largest record
//! (plus the rows that end up in memtables), not by the size of the log.
//! Before, it read every WAL file whole into memory, and kept every staged
//! part decoded until its transaction came: one open deferred group that
//! pins the log made a restart read all of it into memory.
//!
//! The heap is measured with a counting allocator (this test binary only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Int64Array, RecordBatch, TimestampMicrosecondArray};
use quiver_storage::{
    ColumnSchema, ColumnType, Database, Options, PartitionBy, TableSchema, Transaction,
};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters are only bookkeeping.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the system allocator's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn batch(first: i64, n: i64) -> RecordBatch {
    let schema = table_schema();
    RecordBatch::try_new(
        schema.stored_schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(first..first + n)),
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(first..first + n).with_timezone("UTC"),
            ),
        ],
    )
    .unwrap()
}

fn table_schema() -> TableSchema {
    TableSchema {
        name: "t".into(),
        columns: vec![
            ColumnSchema::new("v", ColumnType::Long),
            ColumnSchema::new("timestamp", ColumnType::Timestamp),
        ],
        designated_timestamp: Some(1),
        partition_by: PartitionBy::Day,
        version: 0,
        has_dropped_columns: false,
        ttl: None,
    }
}

#[test]
fn reopening_a_large_pinned_wal_holds_one_record_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        seal_rows: 20_000,
        wal_roll_size: 1 << 20,
        ..Options::default()
    };
    const ROWS_PER_TXN: i64 = 10_000;
    const TXNS: i64 = 300;
    {
        let db = Database::open(dir.path(), options.clone()).unwrap();
        let t = db
            .create_table(table_schema())
            .blocking_recv()
            .unwrap()
            .unwrap();
        // A deferred group that never commits pins every WAL file after it.
        let mut open_group = Transaction::new();
        open_group.add(t.clone(), batch(-1_000, 1_000)).unwrap();
        db.stage(&mut open_group).unwrap();
        for i in 0..TXNS {
            let mut txn = Transaction::new();
            txn.add(t.clone(), batch(i * ROWS_PER_TXN, ROWS_PER_TXN))
                .unwrap();
            db.commit(txn, false)
                .committed
                .blocking_recv()
                .unwrap()
                .unwrap();
        }
        db.sync().blocking_recv().unwrap().unwrap();
        // Let the sealer catch up, so what the reopen replays into memory
        // is small and the measure is recovery's own.
        for _ in 0..1000 {
            let snap = db.snapshot("t").unwrap();
            let sealed: u64 = snap.segments().iter().map(|s| s.row_count).sum();
            if snap.row_count() - sealed < 40_000 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        db.close();
        // Dropped after close: its part stays open in the log.
        drop(open_group);
    }
    let wal_bytes: u64 = std::fs::read_dir(dir.path().join("wal"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    // ~48 MB of rows (16 bytes each) are in the WAL, nearly all sealed.
    assert!(wal_bytes > 40 << 20, "{wal_bytes} WAL bytes");
    let before = CURRENT.load(Ordering::Relaxed);
    PEAK.store(before, Ordering::Relaxed);
    // No seal runs while it opens (a seal's buffers are not recovery's).
    let reopen = Options {
        seal_rows: u64::MAX,
        ..options
    };
    let db = Database::open(dir.path(), reopen).unwrap();
    let peak = PEAK.load(Ordering::Relaxed) - before;
    assert_eq!(
        db.snapshot("t").unwrap().row_count(),
        (TXNS * ROWS_PER_TXN) as u64
    );
    // A record is 160 KB (read, then decoded once if not sealed); the read
    // buffers are 256 KB; the rows replayed into memory are what the
    // memtable holds after it. (Measured: 0.5-3.3 MB for 48 MB.)
    let memtable = db.unsealed_bytes();
    assert!(
        peak < memtable + (4 << 20),
        "recovery of {wal_bytes} WAL bytes peaked at {peak} heap bytes ({memtable} in memtables)"
    );
}
