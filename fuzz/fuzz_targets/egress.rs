//! Egress client requests and server frames: no panics; decoded messages
//! re-encode canonically (`quiver_qwp::fuzzing::egress`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| quiver_qwp::fuzzing::egress(data));
