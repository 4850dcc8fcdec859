//! Inputs the fuzzers found, kept as regressions (`fixtures/fuzz/<target>/`).
//! Each file is run through the same checks as the fuzz target: decode, read
//! every row, re-encode, decode again.
//!
//! - `ingress/array-shape-product-overflow` (cargo fuzz, ingress, first
//!   run): a DOUBLE_ARRAY value with shape `[.., u32::MAX, .., 0]`. Decoding
//!   counted its elements with a saturating product (0, correct), but the
//!   row iterator multiplied the dimensions in `usize` and overflowed
//!   (a panic in debug builds). Both now share one element count.

use quiver_qwp::{
    BatchEncoding, ClientMessage, EgressDecoder, IngressDecoder, Limits, TypeCode,
    decode_client_message, decode_ingress_response, encode_client_message, encode_ingress_message,
    encode_server_message,
};

fn fixtures(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = crate_dir().join("tests/fixtures/fuzz").join(target);
    let mut out: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| {
            d.map(|e| {
                let p = e.unwrap().path();
                (
                    p.file_name().unwrap().to_string_lossy().into_owned(),
                    std::fs::read(&p).unwrap(),
                )
            })
            .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

#[test]
fn ingress_regressions() {
    for (name, bytes) in fixtures("ingress") {
        let _ = decode_ingress_response(&bytes);
        let Ok((message, _)) = IngressDecoder::new(Limits::default()).decode(&bytes) else {
            continue;
        };
        for t in &message.tables {
            for c in &t.columns {
                assert_eq!(c.data.rows().len(), t.row_count as usize, "{name}");
            }
        }
        let mut again = Vec::new();
        encode_ingress_message(&message, &mut again).unwrap();
        IngressDecoder::new(Limits::default())
            .decode(&again)
            .unwrap();
    }
}

#[test]
fn egress_regressions() {
    for (name, bytes) in fixtures("egress") {
        if let Ok(m) = decode_client_message(&bytes, &Limits::default()) {
            let mut again = Vec::new();
            encode_client_message(&m, &mut again).unwrap();
            let decoded = decode_client_message(&again, &Limits::default());
            assert_eq!(
                decoded
                    .map(|d| matches!(d, ClientMessage::QueryRequest(_)))
                    .ok(),
                Some(matches!(m, ClientMessage::QueryRequest(_))),
                "{name}"
            );
        }
        let mut scratch = Vec::new();
        if let Ok(m) = EgressDecoder::default().decode(&bytes, &mut scratch) {
            let mut again = Vec::new();
            encode_server_message(&m, &BatchEncoding::default(), &mut again).unwrap();
            EgressDecoder::default()
                .decode(&again, &mut Vec::new())
                .unwrap();
        }
    }
}

#[test]
fn array_with_a_zero_dimension_and_huge_others() {
    let mut frame = b"QWP1\x01\x08\x01\x00".to_vec();
    let mut payload = vec![
        0,
        0,
        1,
        b't',
        1,
        1,
        1,
        b'a',
        TypeCode::DoubleArray.as_u8(),
        0x00,
        4,
    ];
    for d in [u32::MAX, u32::MAX, u32::MAX, 0] {
        payload.extend_from_slice(&d.to_le_bytes());
    }
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&payload);
    // No elements, but 2^32-1 lists of 2^32-1 lists of ... of none: what
    // an Arrow conversion would allocate offsets for. Refused.
    let e = IngressDecoder::new(Limits::default())
        .decode(&frame)
        .unwrap_err();
    assert!(
        matches!(e.kind(), quiver_qwp::DecodeErrorKind::ArrayTooLarge { .. }),
        "{e:?}"
    );
}

/// This crate's directory, as cargo/nextest report it when the test runs
/// (not where the binary was compiled: CI shares one target directory
/// between checkouts, and cargo may reuse a test binary built in another).
fn crate_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
