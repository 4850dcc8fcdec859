//! The golden vectors of SPEC §6 decode to their annotated values and
//! re-encode to the same bytes.

use quiver_qwp::{
    IngressDecoder, IngressMessage, Limits, SymbolDictionary, TypeCode, Value,
    decode_ingress_message, encode_ingress_message,
};

fn hex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// SPEC §6.1: Java/Rust replay payload #1 (373 bytes).
const REPLAY_1: &str = "
51 57 50 31 01 08 01 00 69 01 00 00 00 0a 07 53 59 4d 5f 30 30 30 07 53
59 4d 5f 30 30 31 07 53 59 4d 5f 30 30 32 07 53 59 4d 5f 30 30 33 07 53
59 4d 5f 30 30 34 07 53 59 4d 5f 30 30 35 07 53 59 4d 5f 30 30 36 07 53
59 4d 5f 30 30 37 07 53 59 4d 5f 30 30 38 07 53 59 4d 5f 30 30 39 06 74
72 61 64 65 73 0a 04 03 73 79 6d 09 03 71 74 79 05 02 70 78 07 00 10 00
00 01 02 03 04 05 06 07 08 09 00 00 00 00 00 00 00 00 00 01 00 00 00 00
00 00 00 02 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00 04 00 00 00 00
00 00 00 05 00 00 00 00 00 00 00 06 00 00 00 00 00 00 00 07 00 00 00 00
00 00 00 08 00 00 00 00 00 00 00 09 00 00 00 00 00 00 00 00 00 00 00 00
00 00 59 40 00 00 00 00 00 40 59 40 00 00 00 00 00 80 59 40 00 00 00 00
00 c0 59 40 00 00 00 00 00 00 5a 40 00 00 00 00 00 40 5a 40 00 00 00 00
00 80 5a 40 00 00 00 00 00 c0 5a 40 00 00 00 00 00 00 5b 40 00 00 00 00
00 40 5b 40 00 00 00 2a 36 fe 9c 97 17 01 00 2a 36 fe 9c 97 17 02 00 2a
36 fe 9c 97 17 03 00 2a 36 fe 9c 97 17 04 00 2a 36 fe 9c 97 17 05 00 2a
36 fe 9c 97 17 06 00 2a 36 fe 9c 97 17 07 00 2a 36 fe 9c 97 17 08 00 2a
36 fe 9c 97 17 09 00 2a 36 fe 9c 97 17";

/// SPEC §6.2: replay payload #2 (148 bytes), the dictionary re-sent from 0.
const REPLAY_2: &str = "
51 57 50 31 01 08 01 00 88 00 00 00 00 0a 07 53 59 4d 5f 30 30 30 07 53
59 4d 5f 30 30 31 07 53 59 4d 5f 30 30 32 07 53 59 4d 5f 30 30 33 07 53
59 4d 5f 30 30 34 07 53 59 4d 5f 30 30 35 07 53 59 4d 5f 30 30 36 07 53
59 4d 5f 30 30 37 07 53 59 4d 5f 30 30 38 07 53 59 4d 5f 30 30 39 06 74
72 61 64 65 73 01 04 03 73 79 6d 09 03 71 74 79 05 02 70 78 07 00 10 00
09 00 63 00 00 00 00 00 00 00 00 00 00 00 00 00 3c 8f 40 00 e8 03 2a 36
fe 9c 97 17";

fn rows<'m>(m: &'m IngressMessage<'_>, col: &str) -> Vec<Option<Value<'m>>> {
    m.tables[0]
        .columns
        .iter()
        .find(|c| c.name == col)
        .unwrap()
        .data
        .rows()
}

fn reencode(m: &IngressMessage<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_ingress_message(m, &mut out).unwrap();
    out
}

#[test]
fn replay_payloads_decode_to_their_annotations() {
    let frame1 = hex(REPLAY_1);
    assert_eq!(frame1.len(), 373);
    let mut decoder = IngressDecoder::new(Limits::default());
    let (m, _) = decoder.decode(&frame1).unwrap();
    assert_eq!(m.symbols.as_ref().unwrap().entries.len(), 10);
    let t = &m.tables[0];
    assert_eq!((&*t.name, t.row_count, t.columns.len()), ("trades", 10, 4));
    let names: Vec<(&str, TypeCode)> = t
        .columns
        .iter()
        .map(|c| (&*c.name, c.data.type_code()))
        .collect();
    assert_eq!(
        names,
        [
            ("sym", TypeCode::Symbol),
            ("qty", TypeCode::Long),
            ("px", TypeCode::Double),
            ("", TypeCode::TimestampNanos)
        ]
    );
    let syms: Vec<&str> = rows(&m, "sym")
        .into_iter()
        .map(|v| match v {
            Some(Value::Symbol(id)) => decoder.dictionary().get(u64::from(id)).unwrap(),
            other => panic!("{other:?}"),
        })
        .collect();
    let want: Vec<String> = (0..10).map(|i| format!("SYM_00{i}")).collect();
    assert_eq!(syms, want);
    assert_eq!(
        rows(&m, "qty"),
        (0..10).map(|i| Some(Value::Long(i))).collect::<Vec<_>>()
    );
    assert_eq!(
        rows(&m, "px"),
        (0..10)
            .map(|i| Some(Value::Double(100.0 + i as f64)))
            .collect::<Vec<_>>()
    );
    assert_eq!(
        rows(&m, ""),
        (0..10)
            .map(|i| Some(Value::TimestampNanos(1_700_000_000_000_000_000 + i)))
            .collect::<Vec<_>>()
    );
    assert_eq!(reencode(&m), frame1);

    // Payload #2 re-sends ids 0..9 (identical) and refers to SYM_009.
    let frame2 = hex(REPLAY_2);
    assert_eq!(frame2.len(), 148);
    let (m, outcome) = decoder.decode(&frame2).unwrap();
    assert_eq!((outcome.added, outcome.redefined), (0, false));
    assert_eq!(decoder.dictionary().len(), 10);
    assert_eq!(rows(&m, "sym"), [Some(Value::Symbol(9))]);
    assert_eq!(decoder.dictionary().get(9), Some("SYM_009"));
    assert_eq!(rows(&m, "qty"), [Some(Value::Long(99))]);
    assert_eq!(rows(&m, "px"), [Some(Value::Double(999.5))]);
    assert_eq!(
        rows(&m, ""),
        [Some(Value::TimestampNanos(1_700_000_000_000_001_000))]
    );
    assert_eq!(reencode(&m), frame2);

    // On a fresh connection payload #2 is self-sufficient.
    assert!(
        IngressDecoder::new(Limits::default())
            .decode(&frame2)
            .is_ok()
    );
}

#[test]
fn spec_ingress_example_without_delta_dictionary() {
    // SPEC §6.3, flags 0: table "sensors", 2 rows, id LONG, value DOUBLE, ts TIMESTAMP
    // (named "ts", so not the designated timestamp).
    let payload = hex(
        "07 73 65 6E 73 6F 72 73 02 03 02 69 64 05 05 76 61 6C 75 65 07 02 74 73 0A
         00 01 00 00 00 00 00 00 00 02 00 00 00 00 00 00 00
         00 CD CC CC CC CC CC F4 3F 9A 99 99 99 99 99 01 40
         00 00 E4 0B 54 02 00 00 00 80 1A 06 00 00 00 00 00",
    );
    let mut frame = hex("51 57 50 31 01 00 01 00");
    frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    frame.extend_from_slice(&payload);
    let m = decode_ingress_message(&frame, &Limits::default(), &SymbolDictionary::new()).unwrap();
    assert!(m.symbols.is_none());
    assert_eq!(m.tables[0].name, "sensors");
    assert!(m.tables[0].designated_timestamp().is_none());
    assert_eq!(rows(&m, "id"), [Some(Value::Long(1)), Some(Value::Long(2))]);
    assert_eq!(
        rows(&m, "value"),
        [Some(Value::Double(1.3)), Some(Value::Double(2.2))]
    );
    assert_eq!(
        rows(&m, "ts"),
        [
            Some(Value::Timestamp(10_000_000_000)),
            Some(Value::Timestamp(400_000))
        ]
    );
    assert_eq!(reencode(&m), frame);
}
