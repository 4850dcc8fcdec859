//! Malformed input of every kind returns a typed error that names what was
//! wrong (and the table and column where it was), maps to the right QWP
//! status, and never panics.

mod common;

use quiver_qwp::{
    BatchEncoding, ClientMessage, DecodeError, DecodeErrorKind, EgressDecoder, IngressDecoder,
    Limits, StatusCode, SymbolDictionary, TypeCode, decode_client_message, decode_ingress_message,
    decode_ingress_response, put_varint,
};

fn ingress(frame: &[u8]) -> Result<(), DecodeError> {
    decode_ingress_message(frame, &Limits::default(), &SymbolDictionary::new()).map(|_| ())
}

fn kind(frame: &[u8]) -> DecodeErrorKind {
    ingress(frame)
        .expect_err("malformed frame must fail")
        .kind()
}

/// An ingress frame with a correct header around `payload`.
fn frame(flags: u8, table_count: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = b"QWP1".to_vec();
    f.push(1);
    f.push(flags);
    f.extend_from_slice(&table_count.to_le_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

fn string(out: &mut Vec<u8>, s: &[u8]) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// A table block: name, rows, column defs, then raw column bytes.
fn block(name: &[u8], rows: u64, defs: &[(&[u8], u8)], bodies: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    string(&mut b, name);
    put_varint(&mut b, rows);
    put_varint(&mut b, defs.len() as u64);
    for (n, t) in defs {
        string(&mut b, n);
        b.push(*t);
    }
    b.extend_from_slice(bodies);
    b
}

fn capture_frames() -> Vec<Vec<u8>> {
    let dir = crate_dir().join("tests/fixtures/captures");
    let mut frames = Vec::new();
    for scenario in std::fs::read_dir(&dir).unwrap() {
        let scenario = scenario.unwrap().path();
        if !scenario.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&scenario).unwrap() {
            let f = f.unwrap().path();
            if f.to_string_lossy().ends_with("-bin.hex") {
                let text = std::fs::read_to_string(&f).unwrap();
                let hex: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
                frames.push(
                    hex.chunks(2)
                        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
                        .collect(),
                );
            }
        }
    }
    assert!(frames.len() > 10);
    frames
}

#[test]
fn truncation_at_every_byte_is_an_error() {
    let mut frames = capture_frames()
        .into_iter()
        .filter(|f| f.starts_with(b"QWP1"))
        .collect::<Vec<_>>();
    frames.push(common::rich_ingress_frame(7));
    // Some captured frames refer to symbols an earlier frame defined.
    let mut dictionary = SymbolDictionary::new();
    for s in ["ETH-USD", "BTC-USD", "sell", "buy"] {
        dictionary.push(s);
    }
    let ingress = |f: &[u8]| decode_ingress_message(f, &Limits::default(), &dictionary).map(|_| ());
    for full in &frames {
        ingress(full).expect("the untruncated frame is valid");
        for len in 0..full.len() {
            // As cut (the header disagrees with the length) ...
            let e = ingress(&full[..len]).expect_err("raw prefix");
            assert_eq!(e.status(), StatusCode::PARSE_ERROR);
            // ... and with the header patched, so the body parser sees the cut.
            let patched = common::truncated_with_patched_length(full, len);
            let e = ingress(&patched).expect_err("patched prefix");
            assert_eq!(e.status(), StatusCode::PARSE_ERROR, "cut at {len}: {e}");
        }
    }
}

#[test]
fn egress_truncation_at_every_byte_is_an_error() {
    for encoding in [
        BatchEncoding::default(),
        BatchEncoding {
            gorilla: true,
            zstd_level: None,
        },
        BatchEncoding {
            gorilla: true,
            zstd_level: Some(3),
        },
    ] {
        let full = common::rich_result_batch(9, encoding);
        let mut scratch = Vec::new();
        EgressDecoder::default()
            .decode(&full, &mut scratch)
            .expect("valid batch");
        for len in 0..full.len() {
            let patched = common::truncated_with_patched_length(&full, len);
            assert!(
                EgressDecoder::default()
                    .decode(&patched, &mut scratch)
                    .is_err(),
                "cut at {len}"
            );
        }
    }
    for full in capture_frames()
        .into_iter()
        .filter(|f| !f.starts_with(b"QWP1"))
    {
        let whole = decode_client_message(&full, &Limits::default()).expect("valid request");
        for len in 0..full.len() {
            match decode_client_message(&full[..len], &Limits::default()) {
                Err(_) => {}
                // The optional query_flags trailer is detected by the bytes
                // left, so a request cut exactly before it is still valid.
                Ok(ClientMessage::QueryRequest(q)) => {
                    let ClientMessage::QueryRequest(w) = &whole else {
                        panic!()
                    };
                    assert!(
                        q.flags.is_none() && w.flags.is_some() && len == full.len() - 1,
                        "cut at {len}"
                    );
                }
                Ok(other) => panic!("cut at {len} decoded as {other:?}"),
            }
        }
    }
}

#[test]
fn single_byte_corruption_never_panics() {
    let frames = [
        common::rich_ingress_frame(5),
        common::rich_result_batch(
            5,
            BatchEncoding {
                gorilla: true,
                zstd_level: None,
            },
        ),
    ];
    let mut errors = 0usize;
    for full in &frames {
        for i in 0..full.len() {
            for v in [0x00, 0x01, 0x7F, 0x80, 0xFF, full[i].wrapping_add(1)] {
                let mut bad = full.clone();
                bad[i] = v;
                errors += usize::from(ingress(&bad).is_err());
                let mut scratch = Vec::new();
                let _ = EgressDecoder::default().decode(&bad, &mut scratch);
                let _ = decode_client_message(&bad[12..], &Limits::default());
                let _ = decode_ingress_response(&bad);
            }
        }
    }
    assert!(errors > 0);
}

#[test]
fn header_errors() {
    let ok = frame(0x08, 0, &[0, 0]);
    ingress(&ok).unwrap();
    let mut bad = ok.clone();
    bad[..4].copy_from_slice(b"ILP1");
    assert_eq!(kind(&bad), DecodeErrorKind::BadMagic(*b"ILP1"));
    let mut bad = ok.clone();
    bad[4] = 2;
    assert_eq!(
        kind(&bad),
        DecodeErrorKind::UnsupportedVersion {
            got: 2,
            expected: 1
        }
    );
    for reserved in [0x02u8, 0x10, 0x20, 0x40, 0x80] {
        let mut bad = ok.clone();
        bad[5] |= reserved;
        assert_eq!(
            kind(&bad),
            DecodeErrorKind::ReservedFlags { flags: reserved },
            "0x{reserved:02x}"
        );
    }
    let mut bad = ok.clone();
    bad[8] = 3;
    assert_eq!(
        kind(&bad),
        DecodeErrorKind::PayloadLengthMismatch {
            declared: 3,
            actual: 2
        }
    );
    // table_count says one block, none follows.
    assert!(matches!(
        kind(&frame(0x08, 1, &[0, 0])),
        DecodeErrorKind::UnexpectedEnd { .. }
    ));
    // bytes after the last block.
    assert!(matches!(
        kind(&frame(0x08, 0, &[0, 0, 9])),
        DecodeErrorKind::TrailingBytes { count: 1, .. }
    ));
    // A frame over the configured maximum is refused before parsing.
    let limits = Limits {
        max_message_len: 13,
        ..Limits::default()
    };
    let e = decode_ingress_message(&ok, &limits, &SymbolDictionary::new()).unwrap_err();
    assert!(matches!(
        e.kind(),
        DecodeErrorKind::LimitExceeded {
            what: "message length",
            ..
        }
    ));
}

#[test]
fn lengths_past_the_frame() {
    // Table name claims 100 bytes, 3 are there.
    let mut p = vec![0x00, 0x00, 100];
    p.extend_from_slice(b"abc");
    assert!(matches!(
        kind(&frame(0x08, 1, &p)),
        DecodeErrorKind::UnexpectedEnd {
            what: "table name",
            ..
        }
    ));
    // VARCHAR whose last offset points past the frame.
    let mut body = vec![0x00];
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(&1000u32.to_le_bytes());
    body.extend_from_slice(b"xy");
    let p = [&[0u8, 0][..], &block(b"t", 1, &[(b"v", 0x0F)], &body)].concat();
    let e = ingress(&frame(0x08, 1, &p)).unwrap_err();
    assert!(matches!(
        e.kind(),
        DecodeErrorKind::UnexpectedEnd {
            what: "variable-length data",
            needed: 1000,
            ..
        }
    ));
    assert_eq!((e.table(), e.column()), (Some("t"), Some("v")));
    // Fixed-width values for 3 rows, 2 present.
    let mut body = vec![0x00];
    body.extend_from_slice(&[0u8; 16]);
    let p = [&[0u8, 0][..], &block(b"t", 3, &[(b"l", 0x05)], &body)].concat();
    assert!(matches!(
        kind(&frame(0x08, 1, &p)),
        DecodeErrorKind::UnexpectedEnd {
            what: "LONG",
            needed: 24,
            remaining: 16
        }
    ));
    // Array shape with more elements than the frame holds.
    let mut body = vec![0x00, 2];
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    body.extend_from_slice(&u32::MAX.to_le_bytes());
    let p = [&[0u8, 0][..], &block(b"t", 1, &[(b"a", 0x11)], &body)].concat();
    assert!(matches!(
        kind(&frame(0x08, 1, &p)),
        DecodeErrorKind::ArrayTooLarge { .. }
    ));
}

#[test]
fn varint_overflow() {
    let mut p = vec![0x00, 0x00];
    string(&mut p, b"t");
    p.extend_from_slice(&[0xFF; 11]);
    let e = ingress(&frame(0x08, 1, &p)).unwrap_err();
    assert_eq!(
        e.kind(),
        DecodeErrorKind::VarintOverflow { what: "row_count" }
    );
    assert_eq!(e.table(), Some("t"));
    // The delta dictionary's start varint, too.
    let e = ingress(&frame(0x08, 0, &[0x80; 12])).unwrap_err();
    assert_eq!(
        e.kind(),
        DecodeErrorKind::VarintOverflow {
            what: "delta_start"
        }
    );
}

#[test]
fn unknown_type_codes_name_table_and_column() {
    let assigned: Vec<u8> = TypeCode::ALL.iter().map(|t| t.as_u8()).collect();
    for code in (0..=u8::MAX).filter(|c| !assigned.contains(c)) {
        let p = [
            &[0u8, 0][..],
            &block(b"trades", 1, &[(b"px", code)], &[0, 0, 0, 0]),
        ]
        .concat();
        let e = ingress(&frame(0x08, 1, &p)).unwrap_err();
        assert_eq!(e.kind(), DecodeErrorKind::UnknownTypeCode(code));
        assert_eq!((e.table(), e.column()), (Some("trades"), Some("px")));
        assert_eq!(e.status(), StatusCode::PARSE_ERROR);
        assert!(e.to_string().contains("table=trades, column=px"), "{e}");
    }
}

#[test]
fn symbol_ids_past_the_dictionary() {
    // Dictionary: 2 entries; column refers to id 2.
    let mut p = vec![0x00, 0x02, 0x01, b'a', 0x01, b'b'];
    p.extend_from_slice(&block(b"t", 2, &[(b"s", 0x09)], &[0x00, 0x01, 0x02]));
    let e = ingress(&frame(0x08, 1, &p)).unwrap_err();
    assert_eq!(
        e.kind(),
        DecodeErrorKind::SymbolIdOutOfRange {
            id: 2,
            dict_size: 2
        }
    );
    assert_eq!(
        (e.table(), e.column(), e.status()),
        (Some("t"), Some("s"), StatusCode::PARSE_ERROR)
    );
    // Per-column mode (no delta flag): index past the column's dictionary.
    let p = block(b"t", 1, &[(b"s", 0x09)], &[0x00, 0x01, 0x01, b'x', 0x01]);
    assert!(matches!(
        kind(&frame(0x00, 1, &p)),
        DecodeErrorKind::SymbolIdOutOfRange {
            id: 1,
            dict_size: 1
        }
    ));
}

#[test]
fn dictionary_gap_and_rollback() {
    let mut decoder = IngressDecoder::new(Limits::default());
    decoder
        .decode(&frame(0x08, 0, &[0x00, 0x02, 0x01, b'a', 0x01, b'b']))
        .unwrap();
    assert_eq!(decoder.dictionary().len(), 2);
    // delta_start 3 > size 2.
    let e = decoder
        .decode(&frame(0x08, 0, &[0x03, 0x01, 0x01, b'c']))
        .unwrap_err();
    assert_eq!(
        e.kind(),
        DecodeErrorKind::DictionaryGap { start: 3, size: 2 }
    );
    assert_eq!(e.status(), StatusCode::DICTIONARY_GAP);
    // A frame whose delta is fine but whose table block is bad changes nothing.
    let mut p = vec![0x02, 0x01, 0x01, b'c'];
    p.extend_from_slice(&block(b"t", 1, &[(b"x", 0x08)], &[0x00]));
    decoder.decode(&frame(0x08, 1, &p)).unwrap_err();
    assert_eq!(decoder.dictionary().len(), 2);
    assert_eq!(decoder.dictionary().get(1), Some("b"));
    // Overlapping redefinition is accepted and reported.
    let (_, outcome) = decoder
        .decode(&frame(0x08, 0, &[0x01, 0x02, 0x01, b'B', 0x01, b'c']))
        .unwrap();
    assert!(outcome.redefined);
    assert_eq!(
        (decoder.dictionary().get(1), decoder.dictionary().get(2)),
        (Some("B"), Some("c"))
    );
}

#[test]
fn bitmaps_and_offsets_that_disagree_with_row_counts() {
    // 4 rows, bitmap marks 2 NULL (0b0101), but 4 LONG values follow.
    let mut body = vec![0x01, 0b0101];
    body.extend_from_slice(&[0u8; 32]);
    let p = [&[0u8, 0][..], &block(b"t", 4, &[(b"l", 0x05)], &body)].concat();
    assert!(matches!(
        kind(&frame(0x08, 1, &p)),
        DecodeErrorKind::TrailingBytes { count: 16, .. }
    ));
    // 4 rows, no NULLs, but the offset table has 3 entries (for 2 values).
    let mut body = vec![0x00];
    for o in [0u32, 1, 2] {
        body.extend_from_slice(&o.to_le_bytes());
    }
    body.extend_from_slice(b"ab");
    let p = [&[0u8, 0][..], &block(b"t", 4, &[(b"v", 0x0F)], &body)].concat();
    assert!(ingress(&frame(0x08, 1, &p)).is_err());
    // Offsets that go backwards.
    let mut body = vec![0x00];
    for o in [0u32, 2, 1] {
        body.extend_from_slice(&o.to_le_bytes());
    }
    body.extend_from_slice(b"ab");
    let p = [&[0u8, 0][..], &block(b"t", 2, &[(b"v", 0x17)], &body)].concat();
    assert!(matches!(
        kind(&frame(0x08, 1, &p)),
        DecodeErrorKind::InvalidOffsets {
            reason: "offsets decrease",
            ..
        }
    ));
    // Gorilla stream shorter than its row count.
    let mut body = vec![0x00, 0x01];
    body.extend_from_slice(&[0u8; 16]);
    body.push(0xFF);
    let p = [&[0u8, 0][..], &block(b"t", 5, &[(b"ts", 0x0A)], &body)].concat();
    assert!(matches!(
        kind(&frame(0x0C, 1, &p)),
        DecodeErrorKind::UnexpectedEnd {
            what: "gorilla bitstream",
            ..
        }
    ));
    // Unknown timestamp encoding byte.
    let p = [
        &[0u8, 0][..],
        &block(b"t", 0, &[(b"ts", 0x0A)], &[0x00, 0x02]),
    ]
    .concat();
    assert_eq!(
        kind(&frame(0x0C, 1, &p)),
        DecodeErrorKind::UnknownTimestampEncoding(2)
    );
}

#[test]
fn invalid_utf8_anywhere() {
    let bad = [0xC3u8, 0x28];
    let p = [&[0u8, 0][..], &block(&bad, 0, &[], &[])].concat();
    assert_eq!(
        kind(&frame(0x08, 1, &p)),
        DecodeErrorKind::InvalidUtf8 { what: "table name" }
    );
    let p = [&[0u8, 0][..], &block(b"t", 0, &[(&bad, 0x05)], &[0])].concat();
    assert_eq!(
        kind(&frame(0x08, 1, &p)),
        DecodeErrorKind::InvalidUtf8 {
            what: "column name"
        }
    );
    let p = [0x00, 0x01, 0x02, 0xC3, 0x28];
    assert_eq!(
        kind(&frame(0x08, 0, &p)),
        DecodeErrorKind::InvalidUtf8 {
            what: "symbol dictionary entry"
        }
    );
    let mut body = vec![0x00];
    body.extend_from_slice(&0u32.to_le_bytes());
    body.extend_from_slice(&2u32.to_le_bytes());
    body.extend_from_slice(&bad);
    let p = [&[0u8, 0][..], &block(b"t", 1, &[(b"v", 0x0F)], &body)].concat();
    let e = ingress(&frame(0x08, 1, &p)).unwrap_err();
    assert_eq!(
        e.kind(),
        DecodeErrorKind::InvalidUtf8 {
            what: "VARCHAR value"
        }
    );
    assert_eq!(e.column(), Some("v"));
}

#[test]
fn limits_are_typed_errors() {
    let limit = |what: &'static str| move |k: DecodeErrorKind| matches!(k, DecodeErrorKind::LimitExceeded { what: w, .. } if w == what);
    let p = [&[0u8, 0][..], &block(b"t", 1_000_001, &[], &[])].concat();
    assert!(limit("row_count")(kind(&frame(0x08, 1, &p))));
    let mut p = vec![0u8, 0];
    string(&mut p, b"t");
    p.push(1);
    put_varint(&mut p, 2049);
    assert!(limit("column_count")(kind(&frame(0x08, 1, &p))));
    let p = [&[0u8, 0][..], &block(&[b'x'; 128], 1, &[], &[])].concat();
    assert!(limit("table name")(kind(&frame(0x08, 1, &p))));
    let p = [&[0u8, 0][..], &block(b"t", 1, &[(&[b'c'; 128], 0x05)], &[])].concat();
    assert!(limit("column name")(kind(&frame(0x08, 1, &p))));
    let mut p = Vec::new();
    put_varint(&mut p, 1_999_999);
    put_varint(&mut p, 2);
    assert!(limit("symbol dictionary size")(kind(&frame(0x08, 0, &p))));
    // Decimal scale and geohash precision out of range.
    let p = [&[0u8, 0][..], &block(b"t", 0, &[(b"d", 0x13)], &[0x00, 19])].concat();
    assert!(matches!(
        kind(&frame(0x08, 1, &p)),
        DecodeErrorKind::InvalidScale {
            scale: 19,
            max: 18,
            ..
        }
    ));
    let p = [&[0u8, 0][..], &block(b"t", 0, &[(b"g", 0x0E)], &[0x00, 61])].concat();
    assert_eq!(
        kind(&frame(0x08, 1, &p)),
        DecodeErrorKind::InvalidGeohashPrecision { bits: 61 }
    );
    let p = [
        &[0u8, 0][..],
        &block(b"t", 1, &[(b"a", 0x12)], &[0x00, 0, 0, 0, 0, 0]),
    ]
    .concat();
    assert!(matches!(
        kind(&frame(0x08, 1, &p)),
        DecodeErrorKind::InvalidArrayRank { n_dims: 0, .. }
    ));
    let p = [
        &[0u8, 0][..],
        &block(b"t", 1, &[(b"a", 0x12)], &[0x00, 33, 0, 0, 0, 0]),
    ]
    .concat();
    assert!(matches!(
        kind(&frame(0x08, 1, &p)),
        DecodeErrorKind::InvalidArrayRank { n_dims: 33, .. }
    ));
}

#[test]
fn designated_timestamp_rules() {
    let p = [&[0u8, 0][..], &block(b"t", 0, &[(b"", 0x05)], &[0x00])].concat();
    assert_eq!(
        kind(&frame(0x08, 1, &p)),
        DecodeErrorKind::InvalidDesignatedTimestamp { type_name: "LONG" }
    );
    let p = [
        &[0u8, 0][..],
        &block(b"t", 0, &[(b"", 0x0A), (b"", 0x10)], &[0x00, 0x00]),
    ]
    .concat();
    assert_eq!(
        kind(&frame(0x08, 1, &p)),
        DecodeErrorKind::DuplicateDesignatedTimestamp
    );
    let p = [&[0u8, 0][..], &block(b"", 0, &[], &[])].concat();
    assert_eq!(
        kind(&frame(0x08, 1, &p)),
        DecodeErrorKind::EmptyName { what: "table name" }
    );
}

fn server_frame(flags: u8, table_count: u16, payload: &[u8]) -> Vec<u8> {
    frame(flags, table_count, payload)
}

#[test]
fn egress_server_frames() {
    let mut scratch = Vec::new();
    let mut decode = |f: &[u8]| {
        EgressDecoder::new(Limits::egress_client())
            .decode(f, &mut scratch)
            .map(|_| ())
            .unwrap_err()
            .kind()
    };
    let end = [0x12, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    assert!(
        EgressDecoder::default()
            .decode(&server_frame(0, 0, &end), &mut Vec::new())
            .is_ok()
    );
    assert!(matches!(
        decode(&server_frame(0, 1, &end)),
        DecodeErrorKind::InvalidTableCount { got: 1, .. }
    ));
    assert!(matches!(
        decode(&server_frame(0x04, 0, &end)),
        DecodeErrorKind::ReservedFlags { flags: 0x04 }
    ));
    assert_eq!(
        decode(&server_frame(0, 0, &[0x19])),
        DecodeErrorKind::UnknownMessageKind(0x19)
    );
    assert_eq!(
        decode(&server_frame(0, 0, &[0x10])),
        DecodeErrorKind::UnexpectedMessageKind(0x10)
    );
    assert!(matches!(
        decode(&server_frame(0, 0, &[])),
        DecodeErrorKind::UnexpectedEnd { .. }
    ));
    // A continuation batch with no batch 0 before it.
    let batch1 = [0x11, 5, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00];
    assert!(matches!(
        decode(&server_frame(0, 1, &batch1)),
        DecodeErrorKind::BatchOutOfSequence {
            expected: 0,
            got: 1,
            ..
        }
    ));
    // A per-column symbol dictionary longer than the batch.
    let mut p = vec![
        0x11, 5, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x01, 0x01, 0x01, b's', 0x09,
    ];
    p.extend_from_slice(&[0x00, 0x02, 0x01, b'a', 0x01, b'b', 0x00]);
    assert!(matches!(
        decode(&server_frame(0, 1, &p)),
        DecodeErrorKind::LimitExceeded {
            what: "column symbol dictionary size",
            ..
        }
    ));
    // QUERY_ERROR with a status the client does not accept.
    let qe = [0x13, 1, 0, 0, 0, 0, 0, 0, 0, 0x09, 0, 0];
    assert!(matches!(
        decode(&server_frame(0, 0, &qe)),
        DecodeErrorKind::InvalidValue {
            what: "QUERY_ERROR status",
            ..
        }
    ));
    // Egress null flags other than 0/1, and bitmaps on never-null types.
    let mut p = vec![
        0x11, 5, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x01, 0x01, 0x01, b'b', 0x02,
    ];
    p.extend_from_slice(&[0x01, 0x01]);
    assert!(matches!(
        decode(&server_frame(0, 1, &p)),
        DecodeErrorKind::NullsNotAllowed { type_name: "BYTE" }
    ));
}

#[cfg(feature = "zstd")]
#[test]
fn zstd_bombs_stop_at_the_limit() {
    // 2 MiB of zeros compresses to a few hundred bytes; with a 1 MiB limit
    // the decoder stops once the limit is passed.
    let body = vec![0u8; 2 * 1024 * 1024];
    let compressed = zstd::bulk::compress(&body, 3).unwrap();
    assert!(compressed.len() < 1024);
    let mut p = vec![0x11, 5, 0, 0, 0, 0, 0, 0, 0, 0x00];
    p.extend_from_slice(&compressed);
    let limits = Limits {
        max_decompressed_len: 1024 * 1024,
        ..Limits::egress_client()
    };
    let mut scratch = Vec::new();
    let e = EgressDecoder::new(limits)
        .decode(&server_frame(0x10, 1, &p), &mut scratch)
        .unwrap_err();
    assert!(matches!(
        e.kind(),
        DecodeErrorKind::LimitExceeded {
            what: "decompressed batch size",
            ..
        }
    ));
    assert!(
        scratch.capacity() <= 4 * 1024 * 1024,
        "grew to {}",
        scratch.capacity()
    );
    // Garbage where a zstd frame should be.
    let mut p = vec![0x11, 5, 0, 0, 0, 0, 0, 0, 0, 0x00];
    p.extend_from_slice(b"not zstd at all");
    let e = EgressDecoder::default()
        .decode(&server_frame(0x10, 1, &p), &mut scratch)
        .unwrap_err();
    assert!(matches!(e.kind(), DecodeErrorKind::Decompression { .. }));
}

#[test]
fn egress_client_requests() {
    let limits = Limits::default();
    let e = |f: &[u8]| decode_client_message(f, &limits).unwrap_err().kind();
    // SQL over the limit.
    let mut p = vec![0x10, 1, 0, 0, 0, 0, 0, 0, 0];
    put_varint(&mut p, 1024 * 1024 + 1);
    assert!(matches!(
        e(&p),
        DecodeErrorKind::LimitExceeded { what: "sql", .. }
    ));
    // bind_count over the limit.
    let p = [0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x81, 0x10];
    assert!(matches!(
        e(&p),
        DecodeErrorKind::LimitExceeded {
            what: "bind_count",
            ..
        }
    ));
    // Bind with an unknown type, a bad null flag, a non-boolean byte.
    assert_eq!(
        e(&[0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x08, 0]),
        DecodeErrorKind::UnknownTypeCode(0x08)
    );
    assert_eq!(
        e(&[0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x05, 7]),
        DecodeErrorKind::InvalidNullFlag(7)
    );
    assert!(matches!(
        e(&[0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x01, 0, 2]),
        DecodeErrorKind::InvalidValue { .. }
    ));
    // CANCEL with a trailing byte, CREDIT cut short.
    assert!(matches!(
        e(&[0x14, 1, 0, 0, 0, 0, 0, 0, 0, 9]),
        DecodeErrorKind::TrailingBytes { .. }
    ));
    assert!(matches!(
        e(&[0x15, 1, 0, 0, 0]),
        DecodeErrorKind::UnexpectedEnd { .. }
    ));
}

/// This crate's directory, as cargo/nextest report it when the test runs
/// (not where the binary was compiled: CI shares one target directory
/// between checkouts, and cargo may reuse a test binary built in another).
fn crate_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
