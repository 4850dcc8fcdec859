//! The parser against lines written by the official client (protocol
//! versions 1, 2 and 3) and against InfluxDB's text rules, with every
//! malformed-line kind answered by an error naming the line.

use questdb::ingress::{Buffer, ProtocolVersion, TimestampMicros, TimestampNanos};
use quiver_ilp::{
    ArrayElement, IlpErrorKind, Limits, Line, Parser, Precision, Step, Timestamp, Value,
};

/// Every line of `input` (complete), or the first error.
fn parse(input: &[u8], precision: Precision) -> Result<Vec<Line<'_>>, quiver_ilp::IlpError> {
    let mut parser = Parser::new(input, precision, Limits::default());
    let mut lines = Vec::new();
    loop {
        let mut line = Line::default();
        match parser.next_line(&mut line)? {
            Step::Line => lines.push(line),
            Step::End => return Ok(lines),
            Step::NeedMore => panic!("a complete input needs no more"),
        }
    }
}

fn text(t: &quiver_ilp::Text<'_>) -> String {
    t.to_str().unwrap().into_owned()
}

fn official(version: ProtocolVersion) -> Vec<u8> {
    let mut b = Buffer::new(version);
    b.table("trades 1")
        .unwrap()
        .symbol("sym bol", "a,b=c")
        .unwrap()
        .symbol("venue", "x\\y")
        .unwrap()
        .column_i64("qty", -42)
        .unwrap()
        .column_f64("px", 1.0 / 3.0)
        .unwrap()
        .column_f64("inf", f64::NEG_INFINITY)
        .unwrap()
        .column_bool("ok", true)
        .unwrap()
        .column_str("note", "say \"hi\"\nand \\ bye")
        .unwrap()
        .column_ts("seen", TimestampMicros::new(1_700_000_000_123_456))
        .unwrap();
    if version != ProtocolVersion::V1 {
        b.column_arr("grid", &vec![vec![1.5, 2.5, 3.5], vec![-1.0, 0.0, 1e300]])
            .unwrap();
    }
    if version == ProtocolVersion::V3 {
        b.column_dec("price", "-123.4500").unwrap();
    }
    b.at(TimestampNanos::new(1_700_000_000_123_456_789))
        .unwrap();
    b.table("t").unwrap().symbol("only", "tags").unwrap();
    b.at(TimestampMicros::new(5)).unwrap();
    b.as_bytes().to_vec()
}

#[test]
fn lines_of_the_official_client_in_every_protocol_version() {
    for version in [
        ProtocolVersion::V1,
        ProtocolVersion::V2,
        ProtocolVersion::V3,
    ] {
        let bytes = official(version);
        let lines = parse(&bytes, Precision::Nanos).unwrap();
        assert_eq!(lines.len(), 2, "{version:?}");
        let l = &lines[0];
        assert_eq!(text(&l.table), "trades 1");
        let tags: Vec<(String, String)> = l.tags.iter().map(|(k, v)| (text(k), text(v))).collect();
        assert_eq!(
            tags,
            vec![
                ("sym bol".to_string(), "a,b=c".to_string()),
                ("venue".to_string(), "x\\y".to_string())
            ]
        );
        let field = |name: &str| {
            l.fields
                .iter()
                .find(|(k, _)| text(k) == name)
                .map(|(_, v)| *v)
                .unwrap_or_else(|| panic!("{version:?}: no field {name}"))
        };
        assert_eq!(field("qty"), Value::Long(-42));
        // Text (v1) and binary (v2+) doubles both come back exact.
        assert_eq!(field("px"), Value::Double(1.0 / 3.0));
        assert_eq!(field("inf"), Value::Double(f64::NEG_INFINITY));
        assert_eq!(field("ok"), Value::Boolean(true));
        match field("note") {
            Value::String(s) => assert_eq!(text(&s), "say \"hi\"\nand \\ bye"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            field("seen"),
            Value::Timestamp(Timestamp::Micros(1_700_000_000_123_456))
        );
        // v1 sends nanoseconds without a suffix, later versions with `n`.
        assert_eq!(
            l.timestamp,
            Some(Timestamp::Nanos(1_700_000_000_123_456_789))
        );
        if version != ProtocolVersion::V1 {
            match field("grid") {
                Value::Array(a) => {
                    assert_eq!(a.element, ArrayElement::Double);
                    assert_eq!(a.shape().collect::<Vec<_>>(), vec![2, 3]);
                    assert_eq!(
                        a.doubles().collect::<Vec<_>>(),
                        vec![1.5, 2.5, 3.5, -1.0, 0.0, 1e300]
                    );
                }
                other => panic!("{other:?}"),
            }
        }
        if version == ProtocolVersion::V3 {
            assert_eq!(field("price"), Value::DecimalText("-123.4500"));
        }
        // A line of tags only, with a microsecond timestamp (v1: nanos).
        let t = &lines[1];
        assert!(t.fields.is_empty());
        assert_eq!(text(&t.tags[0].1), "tags");
        assert_eq!(t.timestamp.and_then(|t| t.as_nanos()), Some(5_000));
    }
}

#[test]
fn influxdb_text_rules() {
    let input = b"# a comment\n\
        \n\
        weather,location=us\\,midwest,season=summer temperature=82,humid=0.5e2,n=7u,b1=T,b2=false,b3=FALSE,s=\"a\\\\b\\\"c\" 1465839830\r\n\
        \t  m\\ name f=1.\n\
        cpu value=-0.25 1700000000\n";
    let lines = parse(input, Precision::Seconds).unwrap();
    assert_eq!(lines.len(), 3);
    let w = &lines[0];
    assert_eq!(text(&w.table), "weather");
    assert_eq!(text(&w.tags[0].1), "us,midwest");
    let values: Vec<Value<'_>> = w.fields.iter().map(|(_, v)| *v).collect();
    assert_eq!(values[0], Value::Double(82.0));
    assert_eq!(values[1], Value::Double(50.0));
    assert_eq!(values[2], Value::UnsignedLong(7));
    assert_eq!(values[3], Value::Boolean(true));
    assert_eq!(values[4], Value::Boolean(false));
    assert_eq!(values[5], Value::Boolean(false));
    match values[6] {
        Value::String(s) => assert_eq!(text(&s), "a\\b\"c"),
        other => panic!("{other:?}"),
    }
    // The precision applies to timestamps without a suffix.
    assert_eq!(
        w.timestamp,
        Some(Timestamp::Nanos(1_465_839_830_000_000_000))
    );
    assert_eq!(text(&lines[1].table), "m name");
    assert_eq!(lines[1].timestamp, None);
    assert_eq!(
        lines[2].timestamp,
        Some(Timestamp::Nanos(1_700_000_000_000_000_000))
    );
}

#[test]
fn malformed_lines_name_their_line_and_what_is_wrong() {
    let cases: &[(&[u8], IlpErrorKind)] = &[
        (b",a=b x=1\n", IlpErrorKind::MissingTable),
        (b"t,=v x=1\n", IlpErrorKind::EmptyName),
        (b"t,a x=1\n", IlpErrorKind::BadTag),
        (b"t,a= x=1\n", IlpErrorKind::BadTag),
        (b"t x\n", IlpErrorKind::BadField),
        (b"t =1\n", IlpErrorKind::EmptyName),
        (b"t\n", IlpErrorKind::NoColumns),
        (b"t x=\"open\n", IlpErrorKind::UnclosedString),
        (
            b"t x=1 12a\n",
            IlpErrorKind::BadTimestamp {
                value: "12a".into(),
            },
        ),
        (b"t x=1 1 2\n", IlpErrorKind::TrailingBytes),
        (
            b"t x=abc\n",
            IlpErrorKind::BadValue {
                value: "abc".into(),
            },
        ),
        (
            b"t x=9223372036854775808i\n",
            IlpErrorKind::IntegerOutOfRange {
                value: "9223372036854775808i".into(),
            },
        ),
        (
            b"t x=-1u\n",
            IlpErrorKind::IntegerOutOfRange {
                value: "-1u".into(),
            },
        ),
        // Seconds that do not fit in nanoseconds.
        (
            b"t x=1 9300000000000\n",
            IlpErrorKind::BadTimestamp {
                value: "9300000000000".into(),
            },
        ),
    ];
    for (input, want) in cases {
        // Two good lines first: the error names line 3.
        let mut bytes = b"ok a=1\nok b=2\n".to_vec();
        bytes.extend_from_slice(input);
        let e = parse(&bytes, Precision::Seconds).unwrap_err();
        assert_eq!(&e.kind, want, "{}", String::from_utf8_lossy(input));
        assert_eq!(e.line, 3, "{}", String::from_utf8_lossy(input));
    }
}

proptest::proptest! {
    /// Any bytes: no panic, and a cut anywhere parses the same lines (or
    /// fails on the same line) as the whole.
    #[test]
    fn any_input_parses_the_same_whole_or_cut(data in proptest::collection::vec(
        proptest::sample::select(b"t,a=b x=1.5i\"\\ \n\r=#\x10\x0e\x17\x0a\x06\x01\x02tfn9-.e".to_vec()), 0..200)) {
        quiver_ilp::fuzzing::parse(&data);
    }

    /// Lines of the usual shapes with odd parts and a few bytes changed:
    /// the same checks, with most lines taking the common-shape path.
    #[test]
    fn lines_near_the_common_shape_parse_the_same_every_way(
        lines in proptest::collection::vec(line_near_the_common_shape(), 1..6),
        cut: u8,
        flips in proptest::collection::vec((0usize..400, proptest::sample::select(b" ,=\\\"\n\r\x10x1".to_vec())), 0..2),
    ) {
        let mut data = vec![cut];
        for l in lines {
            data.extend_from_slice(&l);
        }
        for (at, b) in flips {
            if at + 1 < data.len() {
                data[at + 1] = b;
            }
        }
        quiver_ilp::fuzzing::parse(&data);
    }
}

proptest::proptest! {
    /// The common-shape path under any limits and precision, on whole and
    /// cut inputs: the same steps as the general parser alone.
    #[test]
    fn the_common_shape_path_changes_nothing_under_any_limits(
        lines in proptest::collection::vec(line_near_the_common_shape(), 1..6),
        max_line_bytes in 0usize..300,
        max_name_bytes in 0usize..20,
        max_columns in 0usize..10,
        precision in proptest::sample::select(vec![Precision::Nanos, Precision::Micros, Precision::Seconds, Precision::Hours]),
        cut in 0usize..500,
    ) {
        let data = lines.concat();
        let limits = Limits { max_line_bytes, max_name_bytes, max_columns, max_array_elements: 64 };
        quiver_ilp::fuzzing::same_with_and_without_plain(&data[..cut.min(data.len())], limits, precision);
    }
}

/// One line: a table, up to four tags, one to five fields of every value
/// kind the common shape takes and some it does not, a timestamp or not,
/// `\n` or `\r\n`.
fn line_near_the_common_shape() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    use proptest::sample::select;
    // Mostly the common shape, sometimes not.
    let name = prop_oneof![
        8 => select(vec!["t", "cpu", "a_b"]),
        1 => select(vec!["x\\ y", "long_name_17_bytes", "", "q\"t"]),
    ];
    let value = prop_oneof![
        8 => select(vec![
            "1.5", "-2i", "3u", "t", "FALSE", "\"s,p =\"", "\"\"", "12t", "7n", "1.25d", "NaN",
            "1e5", "==\x10\x00\x00\x00\x00\x00\x00\x24\x40", "==\x10\n\n\n\n\n\n\n\n",
        ]),
        1 => select(vec![
            "\"a\\\"b\"", "99999999999999999999i", "", "1=2", "==\x10\x01", "\"open", "\"ab\"x",
            "==\x10\x00\x00\x00\x00\x00\x00\x24\x40x",
        ]),
    ];
    // Up to 10 columns: past the limit of 8.
    let tags = proptest::collection::vec((name.clone(), name.clone()), 0..5);
    let fields = proptest::collection::vec((name.clone(), value), 1..6);
    let timestamp = prop_oneof![
        6 => select(vec!["", " 1700000000", " 5n", " 6t"]),
        1 => select(vec![" x", " ", "  9", " 1,2"]),
    ];
    let end = prop_oneof![6 => Just("\n"), 1 => select(vec!["\r\n", "\n\n", ""])];
    (name, tags, fields, timestamp, end).prop_map(|(table, tags, fields, timestamp, end)| {
        let mut l = table.to_string();
        for (k, v) in tags {
            l += &format!(",{k}={v}");
        }
        for (i, (k, v)) in fields.iter().enumerate() {
            l += &format!("{}{k}={v}", if i == 0 { " " } else { "," });
        }
        l += timestamp;
        l += end;
        l.into_bytes()
    })
}

#[test]
fn binary_values_are_checked_against_the_input_and_limits() {
    let key = b"t x==";
    let mut cases: Vec<(Vec<u8>, &str)> = vec![
        (vec![16, 1, 2, 3], "announced"),
        (vec![99], "unknown binary type 99"),
        (vec![14, 7, 1, 1, 0, 0, 0], "element type 7"),
        (vec![14, 10, 0], "0 array dimensions"),
        (vec![14, 10, 33], "33 array dimensions"),
        (vec![23, 2, 0], "a decimal of 0 bytes"),
        (vec![23, 2, 33], "a decimal of 33 bytes"),
    ];
    // 2^16 x 2^16 x 2^16 elements: more than the limit, never allocated.
    let mut huge = vec![14, 10, 3];
    for _ in 0..3 {
        huge.extend_from_slice(&65_536u32.to_le_bytes());
    }
    cases.push((huge, "array elements"));
    for (value, want) in cases {
        let mut bytes = key.to_vec();
        bytes.extend_from_slice(&value);
        let e = parse(&bytes, Precision::Nanos).unwrap_err();
        assert!(e.to_string().contains(want), "{e} / {want}");
    }
    // A newline byte inside a binary double is data, not a line end.
    let mut bytes = key.to_vec();
    bytes.push(16);
    bytes.extend_from_slice(&f64::from_bits(0x0a0a_0a0a_0a0a_0a0a).to_le_bytes());
    bytes.extend_from_slice(b",y==\x17\x02\x02\xff\x85\n");
    let lines = parse(&bytes, Precision::Nanos).unwrap();
    assert_eq!(
        lines[0].fields[0].1,
        Value::Double(f64::from_bits(0x0a0a_0a0a_0a0a_0a0a))
    );
    assert_eq!(
        lines[0].fields[1].1,
        Value::Decimal {
            scale: 2,
            mantissa: &[0xff, 0x85]
        }
    );
}

#[test]
fn limits_are_errors() {
    let limits = Limits {
        max_line_bytes: 64,
        max_name_bytes: 8,
        max_columns: 3,
        max_array_elements: 4,
    };
    let check = |input: &[u8], want: &str| {
        let mut p = Parser::new(input, Precision::Nanos, limits);
        let e = p.next_line(&mut Line::default()).unwrap_err();
        assert!(e.to_string().contains(want), "{e} / {want}");
    };
    check(b"t a=1,b=2,c=3,d=4\n", "more than 3 tags and fields");
    check(b"t abcdefghij=1\n", "longer than the limit of 8");
    check(
        &[b"t a=\"".as_slice(), &[b'x'; 100], b"\"\n"].concat(),
        "longer than 64",
    );
    // Unquoted values, names and timestamps: the line's length is checked
    // once at its end.
    check(
        &[b"t a=".as_slice(), &[b'1'; 100], b"\n"].concat(),
        "longer than 64",
    );
    check(
        &[b"t,k=".as_slice(), &[b'v'; 100], b" a=1\n"].concat(),
        "longer than 64",
    );
    check(
        &[b"t a=1".as_slice(), &[b' '; 100], b"1\n"].concat(),
        "longer than 64",
    );
    let mut arr = b"t a==\x0e\x0a\x01".to_vec();
    arr.extend_from_slice(&5u32.to_le_bytes());
    check(&arr, "more than 4 array elements");
}

#[test]
fn partial_input_stops_before_the_cut_line_at_any_cut() {
    let bytes = official(ProtocolVersion::V3);
    let whole = parse(&bytes, Precision::Nanos).unwrap();
    for cut in 0..=bytes.len() {
        // The first part, then what it did not take plus the rest.
        let mut got = Vec::new();
        let mut first = Parser::new(&bytes[..cut], Precision::Nanos, Limits::default()).partial();
        let mut line = Line::default();
        while first.next_line(&mut line).unwrap() == Step::Line {
            got.push(line.clone());
        }
        let taken = first.consumed();
        // The final part is complete: a last line needs no newline.
        let mut rest = Parser::new(&bytes[taken..], Precision::Nanos, Limits::default())
            .first_line(first.line_number());
        while rest.next_line(&mut line).unwrap() == Step::Line {
            got.push(line.clone());
        }
        assert_eq!(got, whole, "cut at {cut}");
    }
}
