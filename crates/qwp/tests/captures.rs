//! Golden decodes of real frames sent by the official Python client
//! (`questdb==6.0.0`, see `fixtures/captures/README.md`). The expected values
//! are the ones the capture scripts sent (`../shared/qwp/pyclient/*.py`), not
//! what our decoder happened to print. Each frame must also re-encode to the
//! identical bytes, since our encoder makes the same choices as the client.

use quiver_qwp::{
    BatchEncoding, Bind, ClientMessage, EgressDecoder, IngressDecoder, IngressMessage,
    IngressResponse, Limits, ServerMessage, StatusCode, TypeCode, Value, decode_client_message,
    decode_ingress_response, encode_client_message, encode_ingress_message,
    encode_ingress_response, encode_server_message,
};

fn capture(path: &str) -> Vec<u8> {
    let file = crate_dir().join("tests/fixtures/captures").join(path);
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let hex: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    hex.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn utc_micros(y: i64, mo: i64, d: i64, h: i64, mi: i64, s: i64) -> i64 {
    ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 * 1_000_000 + s * 1_000_000
}

/// The rows of a column, with SYMBOL ids resolved through the connection
/// dictionary.
fn column<'m>(
    decoder: &IngressDecoder,
    message: &'m IngressMessage<'_>,
    table: &str,
    name: &str,
) -> Vec<Option<Value<'m>>> {
    let t = message
        .tables
        .iter()
        .find(|t| t.name == table)
        .expect("table");
    let c = t
        .columns
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("column {name:?}"));
    c.data
        .rows()
        .into_iter()
        .map(|v| match v {
            Some(Value::Symbol(id)) => Some(Value::Varchar(leak(
                decoder.dictionary().get(u64::from(id)).unwrap(),
            ))),
            other => other,
        })
        .collect()
}

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_owned().into_boxed_str())
}

fn type_of(message: &IngressMessage<'_>, name: &str) -> TypeCode {
    message.tables[0]
        .columns
        .iter()
        .find(|c| c.name == name)
        .unwrap()
        .data
        .type_code()
}

fn assert_reencodes(message: &IngressMessage<'_>, frame: &[u8]) {
    let mut out = Vec::new();
    encode_ingress_message(message, &mut out).unwrap();
    assert_eq!(out, frame, "re-encoding gives the client's bytes");
}

fn assert_doubles(got: Vec<Option<Value<'_>>>, want: &[f64]) {
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert!(
            g.as_ref().unwrap().bit_eq(&Value::Double(*w)),
            "{g:?} != {w}"
        );
    }
}

#[test]
fn row_api_frames_decode_to_what_the_script_sent() {
    for scenario in [
        "a_rows",
        "a_rows_durable",
        "a_rows_auth_basic",
        "a_rows_auth_token",
        "f_no_qwp_version",
    ] {
        let frame0 = capture(&format!("{scenario}/conn1-frame0-bin.hex"));
        let frame1 = capture(&format!("{scenario}/conn1-frame1-bin.hex"));
        let mut decoder = IngressDecoder::new(Limits::default());

        let (m, outcome) = decoder.decode(&frame0).unwrap();
        assert!(!m.defer_commit);
        assert_eq!(outcome.added, 4);
        assert_eq!(m.tables.len(), 1);
        assert_eq!(m.tables[0].name, "trades");
        assert_eq!(m.tables[0].row_count, 3);
        let col = |name| column(&decoder, &m, "trades", name);
        assert_eq!(
            col("sym"),
            [
                Some(Value::Varchar("ETH-USD")),
                Some(Value::Varchar("BTC-USD")),
                Some(Value::Varchar("ETH-USD"))
            ]
        );
        assert_eq!(
            col("side"),
            [
                Some(Value::Varchar("sell")),
                None,
                Some(Value::Varchar("buy"))
            ]
        );
        // DOUBLE and LONG nulls are sentinels in dense mode (row API).
        assert_doubles(col("price"), &[2615.54, 39269.98, f64::NAN]);
        assert_eq!(
            col("qty"),
            [
                Some(Value::Long(7)),
                Some(Value::Long(i64::MIN)),
                Some(Value::Long(-1))
            ]
        );
        assert!(col("qty")[1].as_ref().unwrap().is_sentinel_null());
        assert_eq!(
            col("ok"),
            [
                Some(Value::Boolean(true)),
                Some(Value::Boolean(false)),
                Some(Value::Boolean(true))
            ]
        );
        assert_eq!(
            col("note"),
            [
                Some(Value::Varchar("hello")),
                None,
                Some(Value::Varchar("ünïcødé"))
            ]
        );
        assert_eq!(
            col("ts2"),
            [
                Some(Value::Timestamp(1_700_000_000_000_000)),
                None,
                Some(Value::Timestamp(utc_micros(2024, 1, 2, 3, 4, 5))),
            ]
        );
        assert_eq!(
            type_of(&m, ""),
            TypeCode::TimestampNanos,
            "designated TimestampNanos"
        );
        assert_eq!(
            col(""),
            [
                Some(Value::TimestampNanos(1_700_000_000_123_456_789)),
                Some(Value::TimestampNanos(1_700_000_001_000_000_000)),
                Some(Value::TimestampNanos(1_700_000_002_000_000_000)),
            ]
        );
        assert!(m.tables[0].designated_timestamp().is_some());
        assert_reencodes(&m, &frame0);

        // Frame 1: ETH-USD is already known, so the delta is empty and starts at 4.
        let (m, outcome) = decoder.decode(&frame1).unwrap();
        assert_eq!(outcome.added, 0);
        let delta = m.symbols.as_ref().unwrap();
        assert_eq!((delta.start, delta.entries.len()), (4, 0));
        let col = |name| column(&decoder, &m, "quotes", name);
        assert_eq!(col("sym"), [Some(Value::Varchar("ETH-USD"))]);
        assert_doubles(col("bid"), &[1.5]);
        assert_doubles(col("ask"), &[1.75]);
        assert_eq!(type_of(&m, "book"), TypeCode::DoubleArray);
        assert_eq!(
            col("book"),
            [Some(Value::DoubleArray {
                shape: vec![3],
                values: vec![1.0, 2.0, 3.0]
            })]
        );
        assert_eq!(
            col(""),
            [Some(Value::TimestampNanos(1_700_000_003_000_000_000))]
        );
        assert_reencodes(&m, &frame1);

        // Frame 1 alone refers to ids it does not define: a dictionary gap.
        let err = IngressDecoder::new(Limits::default())
            .decode(&frame1)
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::DICTIONARY_GAP);
    }
}

#[test]
fn dataframe_frames_from_pandas_arrow_and_polars_decode_alike() {
    for flavour in ["pandas", "arrow", "polars"] {
        let frame0 = capture(&format!("b_df_{flavour}/conn2-frame0-bin.hex"));
        let mut decoder = IngressDecoder::new(Limits::default());
        let (m, _) = decoder.decode(&frame0).unwrap();
        assert_eq!(m.tables[0].name, "df_test");
        assert_eq!(m.tables[0].row_count, 4);
        let col = |name| column(&decoder, &m, "df_test", name);
        // pandas Int64 with NA: dense with the i64::MIN sentinel.
        assert_eq!(type_of(&m, "i64"), TypeCode::Long);
        assert_eq!(
            col("i64"),
            [
                Some(Value::Long(1)),
                Some(Value::Long(i64::MIN)),
                Some(Value::Long(-3)),
                Some(Value::Long(1 << 62))
            ]
        );
        assert_doubles(col("f64"), &[1.5, f64::NAN, -2.25, 1e300]);
        assert_eq!(
            col("str"),
            [
                Some(Value::Varchar("a")),
                None,
                Some(Value::Varchar("ünï")),
                Some(Value::Varchar("longer string"))
            ]
        );
        // Categorical -> SYMBOL, NaN -> NULL in the bitmap.
        assert_eq!(type_of(&m, "sym"), TypeCode::Symbol);
        assert_eq!(
            col("sym"),
            [
                Some(Value::Varchar("ETH")),
                Some(Value::Varchar("BTC")),
                None,
                Some(Value::Varchar("ETH"))
            ]
        );
        assert_eq!(
            col("flag"),
            [true, false, true, false].map(|b| Some(Value::Boolean(b)))
        );
        assert_eq!(
            col("ts2"),
            [
                Some(Value::Timestamp(utc_micros(2024, 1, 1, 0, 0, 0) + 1)),
                None,
                Some(Value::Timestamp(utc_micros(2024, 1, 2, 0, 0, 0))),
                Some(Value::Timestamp(utc_micros(2024, 1, 3, 0, 0, 0))),
            ]
        );
        assert_eq!(type_of(&m, ""), TypeCode::Timestamp);
        let ts: Vec<_> = (0..4)
            .map(|s| Some(Value::Timestamp(utc_micros(2024, 1, 1, 0, 0, s))))
            .collect();
        assert_eq!(col(""), ts);
        assert_reencodes(&m, &frame0);

        // Frame 1 is the empty commit message.
        let frame1 = capture(&format!("b_df_{flavour}/conn2-frame1-bin.hex"));
        let (commit, _) = decoder.decode(&frame1).unwrap();
        assert!(commit.tables.is_empty() && !commit.defer_commit);
        assert_eq!(
            frame1,
            [0x51, 0x57, 0x50, 0x31, 1, 8, 0, 0, 2, 0, 0, 0, 0, 0]
        );
        assert_reencodes(&IngressMessage::commit(0), &frame1);
    }
}

#[test]
fn acks_sent_to_the_client_decode_and_reencode() {
    let cases: &[(&str, IngressResponse<'static>)] = &[
        (
            "a_rows/conn1-sent-0-ok0.hex",
            IngressResponse::Ok {
                sequence: 0,
                tables: vec![],
            },
        ),
        (
            "a_rows/conn1-sent-1-ok1.hex",
            IngressResponse::Ok {
                sequence: 1,
                tables: vec![],
            },
        ),
        (
            "a_rows_durable/conn1-sent-1-durable0.hex",
            IngressResponse::DurableAck { tables: vec![] },
        ),
        (
            "f_error_ack_0x03/conn1-sent-0-err0.hex",
            IngressResponse::Error {
                status: StatusCode::SCHEMA_MISMATCH,
                sequence: 0,
                message: "fake server says no".into(),
            },
        ),
        (
            "f_error_ack_0x05/conn1-sent-0-err0.hex",
            IngressResponse::Error {
                status: StatusCode::PARSE_ERROR,
                sequence: 0,
                message: "fake server says no".into(),
            },
        ),
        (
            "f_df_error_ack_0x03/conn2-sent-1-err1.hex",
            IngressResponse::Error {
                status: StatusCode::SCHEMA_MISMATCH,
                sequence: 1,
                message: "fake server says no".into(),
            },
        ),
    ];
    for (path, want) in cases {
        let bytes = capture(path);
        assert_eq!(&decode_ingress_response(&bytes).unwrap(), want, "{path}");
        let mut out = Vec::new();
        encode_ingress_response(want, &mut out);
        assert_eq!(out, bytes, "{path}");
    }
}

#[test]
fn egress_requests_from_the_client() {
    let limits = Limits::default();
    let select = "SELECT x, ts FROM t WHERE x > $1 LIMIT 10";
    let cases = [
        ("c_egress_exec/conn1-frame1-bin.hex", 2, select, None),
        ("c_egress_error/conn1-frame0-bin.hex", 1, select, None),
        // With CAP_QUERY_FLAGS the request ends in query_flags = RESET_DICT.
        ("c_egress_caps/conn1-frame0-bin.hex", 1, select, Some(1)),
    ];
    for (path, rid, sql, flags) in cases {
        let bytes = capture(path);
        let message = decode_client_message(&bytes, &limits).unwrap();
        let ClientMessage::QueryRequest(q) = &message else {
            panic!("{path}: {message:?}")
        };
        assert_eq!((q.request_id, &*q.sql, q.initial_credit), (rid, sql, 0));
        assert_eq!(q.binds, [Bind::Value(Value::Long(5))]);
        assert_eq!(q.flags.map(|f| f.bits), flags);
        assert_eq!(q.flags.is_some_and(|f| f.reset_dict()), flags.is_some());
        let mut out = Vec::new();
        encode_client_message(&message, &mut out).unwrap();
        assert_eq!(out, bytes, "{path}");
    }
    let ddl_frame = capture("c_egress_exec/conn1-frame0-bin.hex");
    let ddl = decode_client_message(&ddl_frame, &limits).unwrap();
    let ClientMessage::QueryRequest(q) = ddl else {
        panic!()
    };
    assert!(
        q.sql
            .starts_with("CREATE TABLE IF NOT EXISTS t (x LONG, ts TIMESTAMP)")
    );
    assert!(q.binds.is_empty() && q.flags.is_none());
}

#[test]
fn egress_frames_the_client_accepted() {
    let mut decoder = EgressDecoder::new(Limits::egress_client());
    let mut scratch = Vec::new();
    for path in [
        "c_egress_exec/conn1-sent-0-server_info.hex",
        "c_egress_exec/conn1-sent-1-exec_done.hex",
        "c_egress_exec/conn1-sent-2-exec_done.hex",
        "c_egress_caps/conn1-sent-0-server_info.hex",
        "c_egress_error/conn1-sent-1-query_error.hex",
    ] {
        let bytes = capture(path);
        let message = decoder.decode(&bytes, &mut scratch).unwrap();
        match &message {
            ServerMessage::ServerInfo(info) => {
                assert_eq!(
                    (&*info.cluster_id, &*info.node_id),
                    ("fake-cluster", "fake-node-1")
                );
                assert_eq!(info.capabilities, if path.contains("caps") { 2 } else { 0 });
            }
            ServerMessage::ExecDone {
                op_type,
                rows_affected,
                ..
            } => assert_eq!((*op_type, *rows_affected), (1, 3)),
            ServerMessage::QueryError {
                status, message, ..
            } => {
                assert_eq!(*status, StatusCode::PARSE_ERROR);
                assert_eq!(message, "fake server: table does not exist");
            }
            other => panic!("{path}: {other:?}"),
        }
        let mut out = Vec::new();
        encode_server_message(&message, &BatchEncoding::default(), &mut out).unwrap();
        assert_eq!(out, bytes, "{path}");
    }
}

/// This crate's directory, as cargo/nextest report it when the test runs
/// (not where the binary was compiled: CI shares one target directory
/// between checkouts, and cargo may reuse a test binary built in another).
fn crate_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
