//! The WAL rows encoding: no panics; a decoded batch re-encodes and decodes
//! to itself (`quiver_storage::fuzzing::rows`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| quiver_storage::fuzzing::rows(data));
