//! Catalog and manifest files with a matching checksum: no panics; what
//! decodes re-encodes to itself (`quiver_storage::fuzzing::files`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| quiver_storage::fuzzing::files(data));
