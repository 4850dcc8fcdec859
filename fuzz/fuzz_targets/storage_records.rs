//! WAL record bodies (transaction, part, schema): no panics; what decodes
//! re-encodes to the same parts (`quiver_storage::fuzzing::records`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| quiver_storage::fuzzing::records(data));
