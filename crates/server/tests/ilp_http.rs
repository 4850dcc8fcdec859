//! Line protocol over HTTP and TCP against the real server, with raw
//! requests: one request is one transaction (a bad line anywhere, even
//! after rows were staged, applies nothing, also after a restart), errors
//! are QuestDB's JSON with the line, type conflicts name line, table,
//! column and types, gzip and chunked bodies, limits, precisions of both
//! APIs, concurrent writers into one table, and a TCP connection closed on
//! a bad line without touching another's rows.

mod common;
mod stored;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use arrow::datatypes::TimeUnit;
use common::{HttpResponse, TestServer, http_get, http_post, wait_for};
use stored::read_table;

fn write(server: &TestServer, path: &str, body: &str) -> HttpResponse {
    http_post(&server.addr(), path, "", body.as_bytes())
}

fn json(r: &HttpResponse) -> serde_json::Value {
    serde_json::from_str(&r.body).unwrap_or_else(|e| panic!("{e}: {r:?}"))
}

fn row_count(server: &TestServer, table: &str) -> u64 {
    server
        .storage()
        .snapshot(table)
        .map_or(0, |s| s.row_count())
}

#[test]
fn a_request_is_one_transaction_and_errors_name_the_line() {
    let server = TestServer::start();
    let ok = write(
        &server,
        "/write",
        "t,k=a x=1i,y=1.5 1000\nt,k=b x=2i 2000\n",
    );
    assert_eq!(ok.status, 204, "{ok:?}");
    assert!(ok.body.is_empty());

    // A malformed third line: nothing of the request is applied.
    let r = write(
        &server,
        "/write",
        "t,k=c x=3i 3000\n# a comment\nt,k=d x=4i,y=oops 4000\nt x=5i\n",
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.head.contains("content-type: application/json"), "{r:?}");
    let j = json(&r);
    assert_eq!(j["code"], "invalid");
    assert_eq!(j["line"], 3);
    assert!(j["errorId"].as_str().is_some_and(|s| !s.is_empty()), "{j}");
    assert!(j["message"].as_str().unwrap().contains("oops"), "{j}");

    // A value that does not fit its column's type: line, table, column and
    // both types are named, and nothing is applied.
    let r = write(
        &server,
        "/write",
        "t,k=e x=6i\nt,k=f x=7i\nt,k=g x=\"seven\"\n",
    );
    assert_eq!(r.status, 400, "{r:?}");
    let j = json(&r);
    assert_eq!(j["line"], 3, "{j}");
    let m = j["message"].as_str().unwrap();
    for part in ["table=t", "column=x", "LONG", "VARCHAR"] {
        assert!(m.contains(part), "{part} missing from {m}");
    }

    // Two types for one new column within one request: the second meets
    // the first as a later frame would (a whole DOUBLE fits a LONG, text
    // that is no number does not).
    let r = write(&server, "/write", "u a=1i\nu b=2i\nu a=3.0\nu a=\"x\"\n");
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(json(&r)["line"], 4);

    // A refused value names its own line, not the first of its column.
    let r = write(
        &server,
        "/write",
        "t x=8.0\nt,k=h y=1.5\nt x=9.0\nt x=9.5\nt x=10.0\n",
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(json(&r)["line"], 4, "{r:?}");
    assert!(
        json(&r)["message"]
            .as_str()
            .unwrap()
            .contains("row 3 of the block")
    );

    // A column twice in a line.
    let r = write(&server, "/write", "t x=1i,x=2i\n");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(json(&r)["message"].as_str().unwrap().contains("twice"));

    let t = read_table(&server.storage(), "t");
    assert_eq!(t.syms("k"), vec![Some("a".into()), Some("b".into())]);
    assert_eq!(t.ints("x"), vec![Some(1), Some(2)]);
    assert_eq!(row_count(&server, "u"), 0);
}

#[test]
fn a_failed_request_leaves_nothing_even_after_steps_were_staged_and_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let mut server = TestServer::start_in(&data, &[]);
    assert_eq!(write(&server, "/write", "big seq=0i 1\n").status, 204);
    // 250,000 good lines (staged to the WAL in steps of 100,000), then a
    // bad one.
    let mut body = String::new();
    for i in 1..=250_000 {
        body.push_str(&format!("big,k=h{} seq={i}i {}\n", i % 7, i + 1));
    }
    body.push_str("big seq=\n");
    let r = write(&server, "/write", &body);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(json(&r)["line"], 250_001);
    assert_eq!(row_count(&server, "big"), 1);
    server.stop();
    let server = TestServer::start_in(&data, &[]);
    assert_eq!(
        read_table(&server.storage(), "big").ints("seq"),
        vec![Some(0)]
    );
}

#[test]
fn gzip_and_chunked_bodies() {
    let server = TestServer::start();
    let mut lines = String::new();
    for i in 0..20_000 {
        lines.push_str(&format!("gz,k=s{} v={i}i {}\n", i % 3, i + 1));
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(lines.as_bytes()).unwrap();
    let compressed = gz.finish().unwrap();
    let r = http_post(
        &server.addr(),
        "/write",
        "Content-Encoding: gzip\r\n",
        &compressed,
    );
    assert_eq!(r.status, 204, "{r:?}");
    let t = read_table(&server.storage(), "gz");
    assert_eq!(t.ints("v"), (0..20_000).map(Some).collect::<Vec<_>>());

    let r = http_post(
        &server.addr(),
        "/write",
        "Content-Encoding: gzip\r\n",
        b"not gzip at all",
    );
    assert_eq!(r.status, 400, "{r:?}");
    assert!(json(&r)["message"].as_str().unwrap().contains("gzip"));
    let r = http_post(
        &server.addr(),
        "/write",
        "Content-Encoding: br\r\n",
        b"x v=1i\n",
    );
    assert_eq!(r.status, 415, "{r:?}");

    // Chunked, with lines (and a multi-byte character) cut across chunks
    // and pauses between them.
    let body = "ch,k=ä v=1i 1\nch,k=b v=2i 2\nch,k=ü v=3i 3";
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /write HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .unwrap();
    let bytes = body.as_bytes();
    for piece in [&bytes[..9], &bytes[9..20], &bytes[20..]] {
        write!(s, "{:x}\r\n", piece.len()).unwrap();
        s.write_all(piece).unwrap();
        s.write_all(b"\r\n").unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(30));
    }
    s.write_all(b"0\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let head = String::from_utf8_lossy(&out);
    assert!(head.starts_with("HTTP/1.1 204"), "{head}");
    let t = read_table(&server.storage(), "ch");
    assert_eq!(
        t.syms("k"),
        vec![Some("ä".into()), Some("b".into()), Some("ü".into())]
    );
}

#[test]
fn limits_answer_with_clear_errors() {
    let server = TestServer::start_with(&[
        "--ilp-max-request-bytes",
        "4096",
        "--ilp-max-line-bytes",
        "200",
        "--ilp-max-tables",
        "3",
    ]);
    let body = "lim v=1i\n".repeat(1000);
    let r = write(&server, "/write", &body);
    assert_eq!(r.status, 413, "{r:?}");
    assert_eq!(json(&r)["code"], "request too large");
    let long = format!("lim s=\"{}\"\n", "x".repeat(300));
    let r = write(&server, "/write", &long);
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        json(&r)["message"]
            .as_str()
            .unwrap()
            .contains("longer than 200")
    );
    let r = write(&server, "/write", &format!("{} v=1i\n", "n".repeat(128)));
    assert_eq!(r.status, 400, "{r:?}");
    let r = http_post(&server.addr(), "/write", "", b"bad\xffname v=1i\n");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(json(&r)["message"].as_str().unwrap().contains("UTF-8"));
    assert_eq!(row_count(&server, "lim"), 0);
    assert!(http_get(&server.addr(), "/write").starts_with("HTTP/1.1 405"));
    let body: String = (0..5).map(|t| format!("few{t} v=1i\n")).collect();
    let r = write(&server, "/write", &body);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(json(&r)["line"], 4);
    assert!(
        json(&r)["message"]
            .as_str()
            .unwrap()
            .contains("more than 3 tables")
    );
    assert_eq!(row_count(&server, "few0"), 0);
}

#[test]
fn precisions_and_the_influxdb_apis() {
    let server = TestServer::start();
    for (path, ts) in [
        ("/write?precision=s", "1700000000"),
        ("/write?db=mydb&precision=ms", "1700000000001"),
        (
            "/api/v2/write?org=o&bucket=b&precision=us",
            "1700000000000002",
        ),
        (
            "/api/v2/write?org=o&bucket=b&precision=ns",
            "1700000000000003000",
        ),
        ("/api/v2/write?bucket=b", "1700000000000004000"),
        ("/write?precision=m", "28333333"),
        ("/write?precision=h", "472222"),
    ] {
        let r = write(&server, path, &format!("p v=1i {ts}\n"));
        assert_eq!(r.status, 204, "{path}: {r:?}");
    }
    // InfluxDB 1.x clients create their database first; other InfluxQL
    // is refused with a pointer to SQL.
    let r = http_post(
        &server.addr(),
        "/query",
        "Content-Type: application/x-www-form-urlencoded\r\n",
        b"q=CREATE+DATABASE+%22telegraf%22",
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("statement_id"), "{r:?}");
    let r = http_post(&server.addr(), "/query?q=SELECT+*+FROM+p", "", b"");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(r.body.contains("/exec"), "{r:?}");
    let ping = http_get(&server.addr(), "/ping").to_ascii_lowercase();
    assert!(ping.contains("x-influxdb-version"), "{ping}");
    let r = write(&server, "/write?precision=fortnight", "p v=1i 1\n");
    assert_eq!(r.status, 400, "{r:?}");
    let t = read_table(&server.storage(), "p");
    let base = 1_700_000_000_000_000i64;
    assert_eq!(
        t.times("timestamp", TimeUnit::Microsecond),
        vec![
            Some(base),
            Some(base + 1000),
            Some(base + 2),
            Some(base + 3),
            Some(base + 4),
            Some(28_333_333 * 60_000_000),
            Some(472_222 * 3_600_000_000),
        ]
    );

    let settings: serde_json::Value = {
        let raw = http_get(&server.addr(), "/settings");
        let body = raw.split_once("\r\n\r\n").unwrap().1;
        serde_json::from_str(body).unwrap()
    };
    assert_eq!(
        settings["config"]["line.proto.support.versions"],
        serde_json::json!([1, 2, 3])
    );
    assert_eq!(settings["config"]["cairo.max.file.name.length"], 127);
}

#[test]
fn concurrent_writers_into_one_table() {
    let server = TestServer::start();
    let addr = server.addr();
    let writers = 4;
    let requests = 15;
    let lines = 400;
    std::thread::scope(|scope| {
        for w in 0..writers {
            let addr = addr.clone();
            scope.spawn(move || {
                for r in 0..requests {
                    let mut body = String::new();
                    for l in 0..lines {
                        body.push_str(&format!(
                            "conc,writer=w{w} req={r}i,line={l}i,extra_w{w}={l}i\n"
                        ));
                    }
                    let resp = http_post(&addr, "/write", "", body.as_bytes());
                    assert_eq!(resp.status, 204, "{resp:?}");
                }
            });
        }
    });
    let t = read_table(&server.storage(), "conc");
    assert_eq!(t.rows(), writers * requests * lines);
    // Each request's rows are contiguous (one transaction each).
    let writer = t.syms("writer");
    let req = t.ints("req");
    let mut runs = 0;
    for i in 0..t.rows() {
        if i == 0 || writer[i] != writer[i - 1] || req[i] != req[i - 1] {
            runs += 1;
        }
    }
    assert_eq!(runs, writers * requests);
    for w in 0..writers {
        let extra = t.ints(&format!("extra_w{w}"));
        let mine = (0..t.rows())
            .filter(|&i| writer[i].as_deref() == Some(&format!("w{w}")))
            .count();
        assert_eq!(extra.iter().flatten().count(), mine, "writer {w}");
    }
}

#[test]
fn tcp_closes_a_connection_on_a_bad_line_and_spares_the_others() {
    let server = TestServer::start_with(&["--ilp-tcp-listen", "127.0.0.1:0"]);
    let tcp = format!("127.0.0.1:{}", server.ilp_tcp_port.unwrap());
    let mut a = TcpStream::connect(&tcp).unwrap();
    let mut b = TcpStream::connect(&tcp).unwrap();
    a.write_all(b"tcp,c=a v=1i 1\ntcp,c=a v=2i 2\n").unwrap();
    b.write_all(b"tcp,c=b v=10i 10\n").unwrap();
    // Committed in groups: wait for the group of both.
    wait_for(|| row_count(&server, "tcp") == 3);
    // A line cut across writes is whole once its rest arrives.
    b.write_all(b"tcp,c=b v=1").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    b.write_all(b"1i 11\n").unwrap();
    a.write_all(b"tcp,c=a v=3i 3\ntcp,c=a v=oops 4\n").unwrap();
    a.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut buf = [0u8; 16];
    let n = a.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server closes the connection");
    b.write_all(b"tcp,c=b v=12i 12\n").unwrap();
    drop(b);
    wait_for(|| row_count(&server, "tcp") == 5);
    let t = read_table(&server.storage(), "tcp");
    // The connections' groups commit in either order.
    let mut v = t.ints("v");
    v.sort();
    assert_eq!(v, vec![Some(1), Some(2), Some(10), Some(11), Some(12)]);
    assert!(server.log_text().contains("oops"), "the bad line is logged");
}

#[test]
fn wide_and_sparse_tables_stay_bounded() {
    let server = TestServer::start();
    // Past the column limit, in one line or over two: refused at once,
    // naming the line.
    let line = |from: usize, to: usize| {
        let fields: Vec<String> = (from..to).map(|c| format!("c{c}=1i")).collect();
        format!("wide {}\n", fields.join(","))
    };
    let r = write(&server, "/write", &line(0, 3000));
    assert_eq!(r.status, 400, "{r:?}");
    assert!(
        json(&r)["message"]
            .as_str()
            .unwrap()
            .contains("more than 2048")
    );
    let r = write(&server, "/write", &(line(0, 1500) + &line(1500, 3000)));
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(json(&r)["line"], 2);
    assert!(
        json(&r)["message"]
            .as_str()
            .unwrap()
            .contains("more than 2048 columns")
    );
    // Many rows, then a line adding many columns: the line starts its own
    // block instead of filling every earlier row with NULLs.
    let mut body = "sparse a=1i\n".repeat(20_000);
    body.push_str("sparse ");
    for c in 0..1500 {
        body.push_str(&format!("c{c}=1i,"));
    }
    body.pop();
    body.push('\n');
    let r = write(&server, "/write", &body);
    assert_eq!(r.status, 204, "{r:?}");
    let t = read_table(&server.storage(), "sparse");
    assert_eq!(t.rows(), 20_001);
    assert_eq!(t.ints("c1499")[20_000], Some(1));
    assert_eq!(t.ints("c0")[0], None);
}

#[test]
fn decimals_at_their_edges() {
    let server = TestServer::start();
    // A scale past DECIMAL128's 38 digits goes into DECIMAL256.
    let r = write(&server, "/write", "dec d=1e-50d\ndec d=-2.5d\n");
    assert_eq!(r.status, 204, "{r:?}");
    let t = read_table(&server.storage(), "dec");
    let (values, scale) = t.decimals("d");
    assert_eq!(scale, 50);
    assert_eq!(values[0], Some(stored::dec("1")));
    assert_eq!(
        values[1],
        Some(stored::dec(&format!("-25{}", "0".repeat(49))))
    );
    // An exponent no decimal can have is refused (not scaled a million
    // times).
    let r = write(&server, "/write", "dec2 d=0e999999d\n");
    assert_eq!(r.status, 400, "{r:?}");
    assert!(json(&r)["message"].as_str().unwrap().contains("exponent"));
    // A value with more digits after the point than its column is refused,
    // not rounded.
    assert_eq!(write(&server, "/write", "dec3 p=1d\n").status, 204);
    let r = write(&server, "/write", "dec3 p=1.99d\n");
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(write(&server, "/write", "dec3 p=2.00d\n").status, 204);
    let t = read_table(&server.storage(), "dec3");
    assert_eq!(
        t.decimals("p"),
        (vec![Some(stored::dec("1")), Some(stored::dec("2"))], 0)
    );
    // Floats are approximate: rounded to the column's scale, -0.0 is 0.
    assert_eq!(write(&server, "/write", "dec4 p=1.5d\n").status, 204);
    let r = write(
        &server,
        "/write",
        "dec4 p=-0.0\ndec4 p=51912171146.239054\n",
    );
    assert_eq!(r.status, 204, "{r:?}");
    let (values, scale) = read_table(&server.storage(), "dec4").decimals("p");
    assert_eq!(scale, 1);
    assert_eq!(values[1], Some(stored::dec("0")));
    assert_eq!(values[2], Some(stored::dec("519121711462")));
}

#[test]
fn a_stalled_body_is_dropped_with_408() {
    let server = TestServer::start_with(&["--deferred-idle-timeout-secs", "1"]);
    let mut s = TcpStream::connect(server.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "POST /write HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 1000\r\n\r\nstall v=1i\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert_eq!(row_count(&server, "stall"), 0);
}

#[test]
fn a_long_lived_tcp_connection_is_not_held_to_the_request_size() {
    let server = TestServer::start_with(&[
        "--ilp-tcp-listen",
        "127.0.0.1:0",
        "--ilp-max-request-bytes",
        "4096",
    ]);
    let tcp = format!("127.0.0.1:{}", server.ilp_tcp_port.unwrap());
    let mut c = TcpStream::connect(&tcp).unwrap();
    let mut sent = 0;
    for group in 0..4 {
        let mut body = String::new();
        for i in 0..200 {
            body.push_str(&format!("long_tcp v={}i\n", group * 200 + i));
        }
        assert!(body.len() < 4096);
        sent += body.len();
        c.write_all(body.as_bytes()).unwrap();
        wait_for(|| row_count(&server, "long_tcp") == (group + 1) * 200);
    }
    assert!(sent > 4096 * 2);
}

#[test]
fn a_tcp_line_completed_by_a_small_read_is_committed_promptly() {
    let server = TestServer::start_with(&["--ilp-tcp-listen", "127.0.0.1:0"]);
    let tcp = format!("127.0.0.1:{}", server.ilp_tcp_port.unwrap());
    let mut c = TcpStream::connect(&tcp).unwrap();
    // A 400 KB string with an escaped newline every KB (so most reads hold
    // a newline byte), its last bytes sent after a pause while the
    // connection stays open.
    let line = format!(
        "tcp_big s=\"{}\"\n",
        format!("{}\\\n", "x".repeat(1000)).repeat(400)
    );
    let (head, tail) = line.as_bytes().split_at(line.len() - 500);
    for piece in head.chunks(16 << 10) {
        c.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(2));
    }
    std::thread::sleep(Duration::from_millis(200));
    c.write_all(tail).unwrap();
    wait_for(|| row_count(&server, "tcp_big") == 1);
    drop(c);
}
