//! Ingress messages and ack frames: no panics; a decoded message re-encodes
//! canonically and decodes to the same rows (`quiver_qwp::fuzzing::ingress`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| quiver_qwp::fuzzing::ingress(data));
