//! Inputs for the storage fuzz targets kept as regressions
//! (`fixtures/fuzz/<target>/`) and the fuzzers' seeds (`fuzz/seeds/`), run
//! through the same properties as the targets (`quiver_storage::fuzzing`);
//! the seeds check the properties hold on valid input.
//!
//! - `records/part-rows-as-ipc-stream-with-huge-length`,
//!   `records/ipc-stream-2` (storage_records, first run): Part records
//!   whose rows lacked the rows encoding's magic went to arrow-ipc's stream
//!   reader (kept for WAL files of the first format), which trusted a
//!   length prefix: 26 bytes made it allocate and read ~1.3 GB (0.6 s and
//!   2 GB of RSS per input under the fuzzer). Recovery no longer reads IPC
//!   streams. The test also bounds the time each input takes.
//! - `rows/time64-in-milliseconds` (storage_rows, after 9M executions): a
//!   column described as `Time64(ms)`, which Arrow cannot build (it panics
//!   in `make_array`). Time units are now checked against their type, and
//!   `Map` columns (which storage never writes, and whose Arrow
//!   constructor panics on a malformed entries struct) are refused.

use std::path::PathBuf;

fn inputs(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let root = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let dirs = [
        root.join("tests/fixtures/fuzz").join(target),
        root.join("../../fuzz/seeds")
            .join(format!("storage_{target}")),
    ];
    let mut out = Vec::new();
    for dir in dirs {
        if let Ok(entries) = std::fs::read_dir(&dir) {
            for e in entries {
                let p = e.unwrap().path();
                let bytes = std::fs::read(&p).unwrap();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

fn run(target: &str, check: fn(&[u8])) {
    let inputs = inputs(target);
    assert!(!inputs.is_empty(), "no seeds for {target}");
    for (path, bytes) in inputs {
        let started = std::time::Instant::now();
        check(&bytes);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{} took {:?}",
            path.display(),
            started.elapsed()
        );
        // Every truncation too.
        for cut in 0..bytes.len().min(4096) {
            check(&bytes[..cut]);
        }
    }
}

#[test]
fn records() {
    run("records", quiver_storage::fuzzing::records);
}

#[test]
fn rows() {
    run("rows", quiver_storage::fuzzing::rows);
}

#[test]
fn files() {
    run("files", quiver_storage::fuzzing::files);
}

#[test]
fn wal() {
    run("wal", quiver_storage::fuzzing::wal);
}
