//! ILP lines: no panics; a buffer cut anywhere parses like the whole
//! (`quiver_ilp::fuzzing::parse`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = quiver_ilp::fuzzing::parse(data);
});
