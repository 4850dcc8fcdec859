//! A WAL written as valid chained records, then one byte changed: recovery
//! never panics, replays a prefix of what was written, and cutting the tail
//! leaves none (`quiver_storage::fuzzing::wal`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| quiver_storage::fuzzing::wal(data));
