//! QWP egress (`/read/v1`) frame by frame, with a raw client built from
//! `quiver-qwp`'s encoder and decoder against the real server: the row cap
//! (`X-QWP-Max-Batch-Rows`), batch sequence numbers and RESULT_END counts,
//! CREDIT flow control, CANCEL, a second query while one streams, the
//! symbol dictionary across queries and its reset, zstd bodies, refused
//! binds and statements, malformed client frames and the query memory limit;
//! a 10,000,000-row result within a fixed bound of server memory (peak RSS);
//! queries while ingest commits, each seeing whole transactions of both
//! tables it reads.
//!
//! The data (`t`: `sym` SYMBOL with `SYMBOLS` values round-robin, `v` LONG
//! = row number, `timestamp`) is loaded through the raw ingest client; every
//! expectation is derived from how it was loaded.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::TestServer;
use common::raw::{Ack, RawClient, block, longs, message, symbol_ids, timestamps};
use quiver_qwp::{
    Bind, ClientMessage, EgressDecoder, Flags, Limits, QueryFlags, QueryRequest, ServerMessage,
    StatusCode, TypeCode, Value, encode_client_message,
};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::WebSocket;
use tungstenite::{Error as WsError, Message};

/// Rows in `t`.
const ROWS: i64 = 50_000;
/// Distinct symbols, `s0`..`s9`, row `i` holding `s{i % 10}`.
const SYMBOLS: i64 = 10;
/// A credit large enough for any result here.
const PLENTY: u64 = 1 << 40;

/// Loads `t` in frames of 10,000 rows.
fn load(server: &TestServer) {
    let mut client = RawClient::connect(&server.addr(), false);
    let names: Vec<String> = (0..SYMBOLS).map(|k| format!("s{k}")).collect();
    for start in (0..ROWS).step_by(10_000) {
        let rows: Vec<i64> = (start..(start + 10_000).min(ROWS)).collect();
        let syms: Vec<&str> = rows
            .iter()
            .map(|i| names[usize::try_from(i % SYMBOLS).unwrap()].as_str())
            .collect();
        let (delta, ids) = client.register(&syms);
        let columns = vec![
            ("sym", symbol_ids(ids)),
            ("v", longs(rows.iter().copied())),
            (
                "",
                timestamps(rows.iter().map(|i| 1_700_000_000_000_000 + i)),
            ),
        ];
        client
            .send(&message(delta, false, vec![block("t", columns)]))
            .unwrap();
        match client.read_ack() {
            Ok(Ack::Ok(..)) => {}
            other => panic!("ingest: {other:?}; log:\n{}", server.log_text()),
        }
    }
}

/// A server frame, decoded and owned.
#[derive(Debug, Clone, PartialEq)]
enum Frame {
    Info {
        capabilities: u32,
    },
    Batch {
        request_id: i64,
        seq: u64,
        /// Column names and types, in batch 0 only.
        schema: Option<Vec<(String, TypeCode)>>,
        rows: u32,
        /// Each column's values as text (SYMBOLs resolved through the
        /// connection's dictionary; NULL as "NULL").
        columns: Vec<Vec<String>>,
        /// First id of the symbol delta, if one came.
        delta_start: Option<u64>,
        /// Whether the body was zstd-compressed.
        zstd: bool,
    },
    End {
        request_id: i64,
        final_seq: u64,
        total_rows: u64,
    },
    Error {
        request_id: i64,
        status: StatusCode,
        message: String,
    },
    Done {
        request_id: i64,
    },
    Reset {
        mask: u8,
    },
    Closed {
        code: u16,
        reason: String,
    },
    /// Nothing arrived within the read timeout.
    Silent,
}

/// A raw `/read/v1` connection.
struct RawReader {
    ws: WebSocket<TcpStream>,
    decoder: EgressDecoder,
    next_id: i64,
    /// The response's headers.
    headers: Vec<(String, String)>,
}

impl RawReader {
    fn connect(server: &TestServer, headers: &[(&'static str, &str)]) -> RawReader {
        let addr = server.addr();
        let stream = TcpStream::connect(&addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut request = format!("ws://{addr}/read/v1")
            .into_client_request()
            .unwrap();
        for (k, v) in headers {
            request.headers_mut().insert(*k, v.parse().unwrap());
        }
        let (ws, response) = tungstenite::client::client(request, stream).expect("upgrade");
        let headers = response
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let mut reader = RawReader {
            ws,
            decoder: EgressDecoder::new(Limits::default()),
            next_id: 1,
            headers,
        };
        match reader.next() {
            // CAP_QUERY_FLAGS and CAP_QUERY_TIMEOUT.
            Frame::Info { capabilities } => assert_eq!(capabilities & 0xA, 0xA),
            other => panic!("first frame must be SERVER_INFO, got {other:?}"),
        }
        reader
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn send(&mut self, message: &ClientMessage<'_>) {
        let mut frame = Vec::new();
        encode_client_message(message, &mut frame).unwrap();
        self.ws.send(Message::Binary(frame.into())).unwrap();
    }

    /// Sends a query; returns its request id.
    fn query(&mut self, sql: &str, credit: u64, flags: Option<QueryFlags>) -> i64 {
        self.query_with_binds(sql, credit, flags, vec![])
    }

    fn query_with_binds(
        &mut self,
        sql: &str,
        credit: u64,
        flags: Option<QueryFlags>,
        binds: Vec<Bind<'static>>,
    ) -> i64 {
        let request_id = self.next_id;
        self.next_id += 1;
        self.send(&ClientMessage::QueryRequest(QueryRequest {
            request_id,
            sql: sql.to_string().into(),
            initial_credit: credit,
            binds,
            flags,
        }));
        request_id
    }

    /// The next frame (skipping pings), or `Silent` past the timeout.
    fn next(&mut self) -> Frame {
        loop {
            let bytes = match self.ws.read() {
                Ok(Message::Binary(b)) => b,
                Ok(Message::Close(f)) => {
                    return match f {
                        Some(f) => Frame::Closed {
                            code: f.code.into(),
                            reason: f.reason.to_string(),
                        },
                        None => Frame::Closed {
                            code: 1005,
                            reason: String::new(),
                        },
                    };
                }
                Ok(_) => continue,
                Err(WsError::Io(e))
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Frame::Silent;
                }
                Err(e) => {
                    return Frame::Closed {
                        code: 0,
                        reason: e.to_string(),
                    };
                }
            };
            let zstd = bytes.get(5).is_some_and(|f| f & Flags::ZSTD != 0);
            let mut scratch = Vec::new();
            let message = self
                .decoder
                .decode(&bytes, &mut scratch)
                .unwrap_or_else(|e| panic!("undecodable server frame: {e}"));
            return match message {
                ServerMessage::ServerInfo(info) => Frame::Info {
                    capabilities: info.capabilities,
                },
                ServerMessage::ResultBatch(b) => {
                    let dictionary = self.decoder.dictionary();
                    let columns = b
                        .columns
                        .iter()
                        .map(|c| {
                            c.rows()
                                .into_iter()
                                .map(|v| match v {
                                    Some(Value::Symbol(id)) => dictionary
                                        .get(u64::from(id))
                                        .unwrap_or_else(|| panic!("symbol id {id} undefined"))
                                        .to_string(),
                                    other => text(other.as_ref()),
                                })
                                .collect()
                        })
                        .collect();
                    Frame::Batch {
                        request_id: b.request_id,
                        seq: b.batch_seq,
                        schema: b.schema.map(|s| {
                            s.iter()
                                .map(|d| (d.name.to_string(), d.type_code))
                                .collect()
                        }),
                        rows: b.row_count,
                        columns,
                        delta_start: b.symbols.map(|d| d.start),
                        zstd,
                    }
                }
                ServerMessage::ResultEnd {
                    request_id,
                    final_seq,
                    total_rows,
                } => Frame::End {
                    request_id,
                    final_seq,
                    total_rows,
                },
                ServerMessage::QueryError {
                    request_id,
                    status,
                    message,
                } => Frame::Error {
                    request_id,
                    status,
                    message: message.to_string(),
                },
                ServerMessage::ExecDone { request_id, .. } => Frame::Done { request_id },
                ServerMessage::CacheReset { reset_mask } => Frame::Reset { mask: reset_mask },
            };
        }
    }

    /// Reads batches of `request_id` until RESULT_END; returns them and the
    /// end frame.
    fn drain(&mut self, request_id: i64) -> (Vec<Frame>, Frame) {
        let mut batches = Vec::new();
        loop {
            match self.next() {
                b @ Frame::Batch { .. } => {
                    assert!(matches!(b, Frame::Batch { request_id: r, .. } if r == request_id));
                    batches.push(b);
                }
                end @ Frame::End { .. } => return (batches, end),
                other => panic!("while draining {request_id}: {other:?}"),
            }
        }
    }

    /// Reads `request_id`'s batches up to RESULT_END without keeping their
    /// values; returns (rows, WebSocket payload bytes).
    fn count(&mut self, request_id: i64) -> (u64, u64) {
        let (mut rows, mut bytes) = (0u64, 0u64);
        loop {
            let payload = match self.ws.read() {
                Ok(Message::Binary(b)) => b,
                Ok(Message::Close(f)) => panic!("closed while counting: {f:?}"),
                Ok(_) => continue,
                Err(e) => panic!("read while counting: {e}"),
            };
            bytes += payload.len() as u64;
            let mut scratch = Vec::new();
            match self.decoder.decode(&payload, &mut scratch).unwrap() {
                ServerMessage::ResultBatch(b) => {
                    assert_eq!(b.request_id, request_id);
                    rows += u64::from(b.row_count);
                }
                ServerMessage::ResultEnd { total_rows, .. } => {
                    assert_eq!(total_rows, rows);
                    return (rows, bytes);
                }
                ServerMessage::CacheReset { .. } => {}
                other => panic!("while counting: {other:?}"),
            }
        }
    }

    /// Makes reads give up after `ms` (`Silent`).
    fn read_timeout(&mut self, ms: u64) {
        self.ws
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(ms)))
            .unwrap();
    }
}

/// A value as the tests compare it: LONGs as numbers, others by Debug.
fn text(v: Option<&Value<'_>>) -> String {
    match v {
        None => "NULL".to_string(),
        Some(Value::Long(x)) => x.to_string(),
        Some(other) => format!("{other:?}"),
    }
}

/// Column `c` of every batch, concatenated.
fn column(batches: &[Frame], c: usize) -> Vec<String> {
    batches
        .iter()
        .flat_map(|b| match b {
            Frame::Batch { columns, .. } => columns[c].clone(),
            _ => unreachable!(),
        })
        .collect()
}

fn rows_of(b: &Frame) -> u32 {
    match b {
        Frame::Batch { rows, .. } => *rows,
        other => panic!("not a batch: {other:?}"),
    }
}

/// A `/proc/PID/status` field in KiB (`VmHWM`: peak resident memory).
fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// User + system CPU seconds of a process, from `/proc/PID/stat`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the whole line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // USER_HZ (sysconf(_SC_CLK_TCK)) is 100 on Linux.
    ticks as f64 / 100.0
}

fn started() -> TestServer {
    let server = TestServer::start();
    load(&server);
    server
}

#[test]
fn batches_respect_the_row_cap_and_end_counts_them() {
    let server = started();
    let mut r = RawReader::connect(&server, &[("X-QWP-Max-Batch-Rows", "1000")]);
    let id = r.query("SELECT v, sym FROM t", 0, None);
    let (batches, end) = r.drain(id);
    assert!(batches.len() >= 50, "{} batches", batches.len());
    for (i, b) in batches.iter().enumerate() {
        let Frame::Batch { seq, schema, .. } = b else {
            unreachable!()
        };
        assert_eq!(*seq, i as u64, "batch_seq");
        assert!(rows_of(b) <= 1000, "batch {i}: {} rows", rows_of(b));
        match i {
            0 => assert_eq!(
                schema.as_deref(),
                Some(
                    &[
                        ("v".to_string(), TypeCode::Long),
                        ("sym".to_string(), TypeCode::Symbol)
                    ][..]
                )
            ),
            _ => assert!(schema.is_none(), "schema only in batch 0"),
        }
    }
    let want_v: Vec<String> = (0..ROWS).map(|i| i.to_string()).collect();
    let want_sym: Vec<String> = (0..ROWS).map(|i| format!("s{}", i % SYMBOLS)).collect();
    assert_eq!(column(&batches, 0), want_v, "v in row order");
    assert_eq!(column(&batches, 1), want_sym);
    assert_eq!(
        end,
        Frame::End {
            request_id: id,
            final_seq: batches.len() as u64 - 1,
            total_rows: ROWS as u64,
        }
    );

    // An empty result still sends its schema in one empty batch.
    let id = r.query("SELECT v FROM t WHERE v < 0", 0, None);
    let (batches, end) = r.drain(id);
    assert_eq!(batches.len(), 1);
    assert_eq!(rows_of(&batches[0]), 0);
    assert!(matches!(&batches[0], Frame::Batch { schema: Some(s), .. } if s.len() == 1));
    assert!(matches!(
        end,
        Frame::End {
            total_rows: 0,
            final_seq: 0,
            ..
        }
    ));
}

#[test]
fn credit_pauses_the_stream_until_granted() {
    let server = started();
    let mut r = RawReader::connect(&server, &[("X-QWP-Max-Batch-Rows", "1000")]);
    // One byte of credit: the first batch goes out, then nothing.
    let id = r.query("SELECT v FROM t", 1, None);
    let first = r.next();
    assert_eq!(rows_of(&first), 1000);
    r.read_timeout(500);
    assert_eq!(r.next(), Frame::Silent, "stream must pause without credit");
    r.read_timeout(30_000);
    r.send(&ClientMessage::Credit {
        request_id: id,
        additional_bytes: PLENTY,
    });
    let (rest, end) = r.drain(id);
    let total: u32 = rows_of(&first) + rest.iter().map(rows_of).sum::<u32>();
    assert_eq!(total, ROWS as u32);
    assert!(matches!(end, Frame::End { total_rows, .. } if total_rows == ROWS as u64));
}

#[test]
fn cancel_stops_a_query_and_the_connection_goes_on() {
    let server = started();
    let mut r = RawReader::connect(&server, &[("X-QWP-Max-Batch-Rows", "1000")]);
    let id = r.query("SELECT v FROM t", 1, None);
    assert_eq!(rows_of(&r.next()), 1000);
    r.send(&ClientMessage::Cancel { request_id: id });
    match r.next() {
        Frame::Error {
            request_id, status, ..
        } => {
            assert_eq!(request_id, id);
            assert_eq!(status, StatusCode::CANCELLED);
        }
        other => panic!("expected QUERY_ERROR CANCELLED, got {other:?}"),
    }
    let id = r.query("SELECT count(*) AS n FROM t", 0, None);
    let (batches, _) = r.drain(id);
    assert_eq!(column(&batches, 0), vec![ROWS.to_string()]);
}

#[test]
fn a_second_query_while_one_streams_is_refused() {
    let server = started();
    let mut r = RawReader::connect(&server, &[("X-QWP-Max-Batch-Rows", "1000")]);
    let first = r.query("SELECT v FROM t", 1, None);
    assert_eq!(rows_of(&r.next()), 1000);
    let second = r.query("SELECT 1", 0, None);
    match r.next() {
        Frame::Error {
            request_id,
            status,
            message,
        } => {
            assert_eq!(request_id, second);
            assert_eq!(status, StatusCode::PARSE_ERROR);
            assert!(message.contains("one query at a time"), "{message}");
        }
        other => panic!("expected QUERY_ERROR for the second query, got {other:?}"),
    }
    r.send(&ClientMessage::Credit {
        request_id: first,
        additional_bytes: PLENTY,
    });
    let (rest, _) = r.drain(first);
    assert_eq!(
        1000 + rest.iter().map(rows_of).sum::<u32>(),
        ROWS as u32,
        "the first query is unharmed"
    );
}

#[test]
fn symbol_dictionary_carries_across_queries_until_reset() {
    let server = started();
    let mut r = RawReader::connect(&server, &[]);
    let sql = "SELECT sym FROM t WHERE v < 20";
    let want: Vec<String> = (0..20).map(|i| format!("s{}", i % SYMBOLS)).collect();

    let id = r.query(sql, 0, None);
    let (batches, _) = r.drain(id);
    assert_eq!(column(&batches, 0), want);
    assert!(matches!(
        batches[0],
        Frame::Batch {
            delta_start: Some(0),
            ..
        }
    ));
    assert_eq!(r.decoder.dictionary().len(), SYMBOLS as u64);

    // The same symbols again: nothing new is sent (no reset, no growth).
    let keep = Some(QueryFlags {
        bits: 0,
        timeout_ms: None,
    });
    let id = r.query(sql, 0, keep);
    let (batches, _) = r.drain(id);
    assert_eq!(column(&batches, 0), want);
    assert_eq!(r.decoder.dictionary().len(), SYMBOLS as u64);
    assert!(matches!(
        batches[0],
        Frame::Batch {
            delta_start: None,
            ..
        } | Frame::Batch {
            delta_start: Some(10),
            ..
        }
    ));

    // RESET_DICT: a CACHE_RESET comes first, then ids start from 0 again.
    let reset = Some(QueryFlags {
        bits: 0x01,
        timeout_ms: None,
    });
    let id = r.query(sql, 0, reset);
    assert_eq!(r.next(), Frame::Reset { mask: 0x01 });
    let (batches, _) = r.drain(id);
    assert_eq!(column(&batches, 0), want);
    assert!(matches!(
        batches[0],
        Frame::Batch {
            delta_start: Some(0),
            ..
        }
    ));
}

#[test]
fn zstd_bodies_when_the_client_accepts_them() {
    let server = started();
    let mut r = RawReader::connect(&server, &[("X-QWP-Accept-Encoding", "zstd;level=3")]);
    assert!(
        r.header("x-qwp-content-encoding")
            .is_some_and(|v| v.starts_with("zstd"))
    );
    let id = r.query("SELECT v, sym FROM t", 0, None);
    let (batches, end) = r.drain(id);
    assert!(
        batches
            .iter()
            .any(|b| matches!(b, Frame::Batch { zstd: true, .. })),
        "no batch was compressed"
    );
    let want_v: Vec<String> = (0..ROWS).map(|i| i.to_string()).collect();
    assert_eq!(column(&batches, 0), want_v);
    assert!(matches!(end, Frame::End { total_rows, .. } if total_rows == ROWS as u64));

    // Without the header, bodies are raw.
    let mut raw = RawReader::connect(&server, &[]);
    assert_eq!(raw.header("x-qwp-content-encoding"), None);
    let id = raw.query("SELECT v FROM t", 0, None);
    let (batches, _) = raw.drain(id);
    assert!(
        batches
            .iter()
            .all(|b| matches!(b, Frame::Batch { zstd: false, .. }))
    );
}

#[test]
fn refused_statements_get_a_query_error_and_the_connection_goes_on() {
    let server = started();
    let mut r = RawReader::connect(&server, &[]);
    let cases: Vec<(String, Vec<Bind<'static>>, &str)> = vec![
        ("SELEC 1".into(), vec![], "sql parser error"),
        (
            "SELECT * FROM nope".into(),
            vec![],
            "table does not exist [table=nope]",
        ),
        ("SELECT nope FROM t".into(), vec![], "nope"),
        ("INSERT INTO t VALUES (1)".into(), vec![], "INSERT"),
        (
            "ALTER TABLE t ALTER COLUMN v ADD INDEX".into(),
            vec![],
            "ALTER COLUMN",
        ),
        (
            "DROP TABLE nope".into(),
            vec![],
            "table does not exist [table=nope]",
        ),
        ("SELECT 1; SELECT 2".into(), vec![], "one statement"),
        (
            "SELECT v FROM t WHERE v = $1 OR v = $2".into(),
            vec![Bind::Value(Value::Long(5))],
            "placeholders up to $2, but 1 bind values",
        ),
        (
            "SELECT v FROM t".into(),
            vec![Bind::Value(Value::Long(5))],
            "no placeholders",
        ),
    ];
    for (sql, binds, fragment) in cases {
        let id = r.query_with_binds(&sql, 0, None, binds);
        match r.next() {
            Frame::Error {
                request_id,
                status,
                message,
            } => {
                assert_eq!(request_id, id, "{sql}");
                assert_eq!(status, StatusCode::PARSE_ERROR, "{sql}: {message}");
                assert!(message.contains(fragment), "{sql}: {message}");
            }
            other => panic!("{sql}: expected QUERY_ERROR, got {other:?}"),
        }
    }
    let id = r.query("SELECT count(*) FROM t", 0, None);
    let (batches, _) = r.drain(id);
    assert_eq!(column(&batches, 0), vec![ROWS.to_string()]);
    // The table is still whole.
    assert_eq!(
        server.storage().snapshot("t").unwrap().row_count(),
        ROWS as u64
    );
}

#[test]
fn malformed_client_frames_close_the_connection() {
    let server = started();
    for (what, frame) in [
        ("unknown kind", vec![0x42]),
        ("server kind", vec![0x11, 0, 0]),
        ("truncated request", vec![0x10, 1, 0, 0]),
        (
            "sql length past the frame",
            vec![0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0xff, 0x7f],
        ),
    ] {
        let mut r = RawReader::connect(&server, &[]);
        r.ws.send(Message::Binary(frame.into())).unwrap();
        match r.next() {
            Frame::Closed { code, .. } => assert_eq!(code, 1002, "{what}"),
            other => panic!("{what}: expected a close, got {other:?}"),
        }
    }
    // A text frame is refused too.
    let mut r = RawReader::connect(&server, &[]);
    r.ws.send(Message::Text("SELECT 1".into())).unwrap();
    assert!(matches!(r.next(), Frame::Closed { code: 1003, .. }));
    // The server still serves.
    let mut r = RawReader::connect(&server, &[]);
    let id = r.query("SELECT count(*) FROM t", 0, None);
    let (batches, _) = r.drain(id);
    assert_eq!(column(&batches, 0), vec![ROWS.to_string()]);
}

#[test]
fn a_query_past_the_memory_limit_fails_with_limit_exceeded() {
    let temp = tempfile::tempdir().unwrap();
    let server = TestServer::start_in(
        &temp.path().join("data"),
        &["--query-memory-bytes", "1000000"],
    );
    load(&server);
    let mut r = RawReader::connect(&server, &[]);
    // A hash join's build side cannot spill: 50,000 rows of t join t.
    let id = r.query(
        "SELECT count(*) FROM t a JOIN t b ON a.sym = b.sym AND a.v = b.v",
        0,
        None,
    );
    match r.next() {
        Frame::Error {
            request_id,
            status,
            message,
        } => {
            assert_eq!(request_id, id);
            assert_eq!(status, StatusCode::LIMIT_EXCEEDED, "{message}");
        }
        other => panic!("expected LIMIT_EXCEEDED, got {other:?}"),
    }
    // Small queries still run.
    let id = r.query("SELECT count(*) FROM t", 0, None);
    let (batches, _) = r.drain(id);
    assert_eq!(column(&batches, 0), vec![ROWS.to_string()]);
}

#[test]
fn every_bind_type_round_trips_and_filters() {
    let server = started();
    let mut r = RawReader::connect(&server, &[]);
    let values: Vec<Value<'static>> = vec![
        Value::Boolean(true),
        Value::Byte(-7),
        Value::Short(-300),
        Value::Int(123_456),
        Value::Long(i64::MIN + 1),
        Value::Float(1.5),
        Value::Double(-2.25e300),
        Value::Char(0x20AC),
        Value::Varchar("ünï 🦞"),
        Value::Timestamp(1_700_000_000_123_456),
        Value::TimestampNanos(1_700_000_000_123_456_789),
        Value::Date(1_700_000_000_123),
        Value::Uuid {
            lo: 0x0123_4567_89ab_cdef,
            hi: 0xfedc_ba98_7654_3210,
        },
        Value::Long256([1, 2, 3, u64::MAX]),
        Value::Geohash {
            precision_bits: 20,
            value: 0b1101_0000_1100_0110_1101,
        },
        Value::Binary(b"\x00\xffbytes"),
        Value::Ipv4(0xC0A8_0114),
        Value::Decimal64 {
            scale: 2,
            unscaled: -12_345,
        },
        Value::Decimal128 {
            scale: 10,
            unscaled: 10_i128.pow(30) + 7,
        },
        Value::Decimal256 {
            scale: 4,
            unscaled: {
                let mut b = [0u8; 32];
                b[..8].copy_from_slice(&987_654_321_u64.to_le_bytes());
                b
            },
        },
    ];
    for value in values {
        let t = value.type_code();
        // The value comes back in its own type.
        let id = r.query_with_binds("SELECT $1 AS x", 0, None, vec![Bind::Value(value.clone())]);
        let (batches, _) = r.drain(id);
        let Frame::Batch { schema, .. } = &batches[0] else {
            unreachable!()
        };
        assert_eq!(
            schema.as_deref(),
            Some(&[("x".to_string(), t)][..]),
            "{value:?}"
        );
        assert_eq!(column(&batches, 0), vec![text(Some(&value))], "{t:?}");
        // A typed NULL of the same type.
        let arg = match &value {
            Value::Geohash { precision_bits, .. } => *precision_bits,
            Value::Decimal64 { scale, .. }
            | Value::Decimal128 { scale, .. }
            | Value::Decimal256 { scale, .. } => *scale,
            _ => 0,
        };
        let id = r.query_with_binds(
            "SELECT $1 AS x",
            0,
            None,
            vec![Bind::Null { type_code: t, arg }],
        );
        let (batches, _) = r.drain(id);
        let Frame::Batch { schema, .. } = &batches[0] else {
            unreachable!()
        };
        assert_eq!(
            schema.as_deref(),
            Some(&[("x".to_string(), t)][..]),
            "NULL {t:?}"
        );
        // QuestDB's BOOLEAN, BYTE, SHORT and CHAR have no NULL: it reads
        // as the type's zero, as the client shows it against QuestDB.
        let null = match t {
            TypeCode::Boolean => text(Some(&Value::Boolean(false))),
            TypeCode::Byte => text(Some(&Value::Byte(0))),
            TypeCode::Short => text(Some(&Value::Short(0))),
            TypeCode::Char => text(Some(&Value::Char(0))),
            _ => "NULL".to_string(),
        };
        assert_eq!(column(&batches, 0), vec![null], "NULL {t:?}");
    }

    // Binds in a filter, coerced to the columns' types (INT to LONG, text
    // to SYMBOL).
    let id = r.query_with_binds(
        "SELECT v FROM t WHERE v >= $1 AND v < $2 AND sym = $3",
        0,
        None,
        vec![
            Bind::Value(Value::Long(100)),
            Bind::Value(Value::Int(130)),
            Bind::Value(Value::Varchar("s3")),
        ],
    );
    let (batches, _) = r.drain(id);
    assert_eq!(column(&batches, 0), vec!["103", "113", "123"]);
    // A timestamp bind against the designated timestamp.
    let id = r.query_with_binds(
        "SELECT count(*) FROM t WHERE timestamp < $1",
        0,
        None,
        vec![Bind::Value(Value::Timestamp(1_700_000_000_000_000 + 42))],
    );
    let (batches, _) = r.drain(id);
    assert_eq!(column(&batches, 0), vec!["42"]);
}

#[test]
fn a_query_past_its_timeout_fails_with_query_timeout() {
    let server = started();
    let mut r = RawReader::connect(&server, &[("X-QWP-Max-Batch-Rows", "1000")]);
    let timeout = |ms| {
        Some(QueryFlags {
            bits: 0x02,
            timeout_ms: Some(ms),
        })
    };
    let expect_timeout = |r: &mut RawReader, id: i64| match r.next() {
        Frame::Error {
            request_id,
            status,
            message,
        } => {
            assert_eq!(request_id, id);
            assert_eq!(status, StatusCode::QUERY_TIMEOUT, "{message}");
            assert!(message.contains("timed out"), "{message}");
        }
        other => panic!("expected QUERY_TIMEOUT, got {other:?}"),
    };
    // 10^10 joined rows: far longer than 300 ms.
    let id = r.query(
        "SELECT count(*) FROM long_sequence(100000) a CROSS JOIN long_sequence(100000) b",
        0,
        timeout(300),
    );
    expect_timeout(&mut r, id);
    // Its work stopped: the server is idle afterwards (a join still
    // running would burn a core or two for every second of wall time).
    std::thread::sleep(Duration::from_millis(200));
    let before = cpu_seconds(server.pid());
    std::thread::sleep(Duration::from_secs(1));
    let used = cpu_seconds(server.pid()) - before;
    assert!(
        used < 0.3,
        "server used {used:.2} s of CPU in 1 s after the timeout"
    );
    // A stream paused for credit times out too.
    let id = r.query("SELECT v FROM t", 1, timeout(300));
    assert_eq!(rows_of(&r.next()), 1000);
    expect_timeout(&mut r, id);
    // Within its timeout a query completes; the connection goes on.
    let id = r.query("SELECT count(*) FROM t", 0, timeout(60_000));
    let (batches, _) = r.drain(id);
    assert_eq!(column(&batches, 0), vec![ROWS.to_string()]);
}

#[test]
fn a_ten_million_row_result_streams_in_bounded_server_memory() {
    let server = TestServer::start();
    let mut r = RawReader::connect(&server, &[]);
    let sql = |n: u64| format!("SELECT x, x * 2.5 AS d, 'row-' || x AS s FROM long_sequence({n})");
    // The same plan once at a small size: threads, pools and buffers exist
    // before the peak is read.
    let id = r.query(&sql(300_000), 0, None);
    assert_eq!(r.count(id).0, 300_000);
    let before = status_kib(server.pid(), "VmHWM");
    let id = r.query(&sql(10_000_000), 0, None);
    let (rows, bytes) = r.count(id);
    let after = status_kib(server.pid(), "VmHWM");
    assert_eq!(rows, 10_000_000);
    // The result is far larger than what the server may hold for it.
    assert!(bytes > 250_000_000, "only {bytes} bytes of result");
    let grown_mib = after.saturating_sub(before) / 1024;
    assert!(
        grown_mib < 128,
        "peak RSS grew by {grown_mib} MiB ({before} -> {after} KiB) streaming {bytes} bytes"
    );
}

#[test]
fn queries_during_ingest_each_see_one_committed_state() {
    const TXNS: i64 = 150;
    const PER_TXN: i64 = 1_000;
    let server = TestServer::start();
    // Every transaction adds PER_TXN rows to both tables, v = its number.
    let txn = |client: &mut RawClient, k: i64| {
        let rows = || (0..PER_TXN).map(move |i| 1_700_000_000_000_000 + k * PER_TXN + i);
        let blocks = vec![
            block(
                "a",
                vec![("v", longs(rows().map(|_| k))), ("", timestamps(rows()))],
            ),
            block(
                "b",
                vec![("v", longs(rows().map(|_| k))), ("", timestamps(rows()))],
            ),
        ];
        let (delta, _) = client.register(&[]);
        client.send(&message(delta, false, blocks)).unwrap();
        match client.read_ack() {
            Ok(Ack::Ok(..)) => {}
            other => panic!("ingest: {other:?}"),
        }
    };
    let mut client = RawClient::connect(&server.addr(), false);
    txn(&mut client, 0);
    let writer = std::thread::spawn(move || {
        for k in 1..TXNS {
            txn(&mut client, k);
        }
    });
    let mut r = RawReader::connect(&server, &[]);
    let mut last = 0i64;
    let mut states = std::collections::BTreeSet::new();
    loop {
        let finished = writer.is_finished();
        let id = r.query(
            "SELECT (SELECT count(*) FROM a) AS na, (SELECT count(*) FROM b) AS nb, \
             (SELECT sum(v) FROM a) AS sa, (SELECT sum(v) FROM b) AS sb",
            0,
            None,
        );
        let (batches, _) = r.drain(id);
        let cell = |c: usize| column(&batches, c)[0].parse::<i64>().unwrap();
        let (na, nb, sa, sb) = (cell(0), cell(1), cell(2), cell(3));
        // Whole transactions only, the same ones in both tables, and never
        // fewer than a query before saw.
        assert_eq!(na, nb, "row counts of a and b differ");
        assert_eq!(na % PER_TXN, 0, "a half transaction: {na} rows");
        let k = na / PER_TXN;
        assert_eq!(
            sa,
            PER_TXN * k * (k - 1) / 2,
            "a holds other rows than 0..{k}"
        );
        assert_eq!(sb, sa);
        assert!(na >= last, "rows went from {last} to {na}");
        last = na;
        states.insert(na);
        if finished {
            break;
        }
    }
    writer.join().unwrap();
    assert_eq!(last, TXNS * PER_TXN);
    // The queries ran while rows arrived, not only before or after.
    assert!(states.len() > 2, "queries saw only {states:?}");
}
