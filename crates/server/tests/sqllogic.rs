//! The SQL surface as sqllogictest files (`tests/slt/*.slt`, one per
//! area), each run against a fresh real server through `GET /exec`: what
//! a statement answers, every row and value as /exec prints it, and the
//! error message of each statement that must fail. Expected results are
//! written by hand from what QuestDB answers (or plain arithmetic), never
//! recorded from our output.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::TestServer;
use sqllogictest::{DBOutput, DefaultColumnType};

#[derive(Debug)]
struct SqlError(String);

impl std::fmt::Display for SqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SqlError {}

/// A client of `/exec`.
struct Exec {
    addr: String,
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The body of a chunked or plain HTTP/1.1 response, and its status.
fn get(addr: &str, path: &str) -> Result<(u16, Vec<u8>), SqlError> {
    let io = |e: std::io::Error| SqlError(format!("HTTP: {e}"));
    let mut s = TcpStream::connect(addr).map_err(io)?;
    s.set_read_timeout(Some(Duration::from_secs(60)))
        .map_err(io)?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).map_err(io)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| SqlError("no HTTP head".into()))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| SqlError(format!("bad status line: {head}")))?;
    let mut body = &raw[split + 4..];
    if !head.contains("transfer-encoding: chunked") {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    loop {
        let line_end = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| SqlError("truncated chunk".into()))?;
        let size = usize::from_str_radix(String::from_utf8_lossy(&body[..line_end]).trim(), 16)
            .map_err(|_| SqlError("bad chunk size".into()))?;
        body = &body[line_end + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        if body.len() < size + 2 {
            return Err(SqlError("truncated chunk".into()));
        }
        out.extend_from_slice(&body[..size]);
        body = &body[size + 2..];
    }
}

fn cell(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "NULL".into(),
        serde_json::Value::String(s) if s.is_empty() => "(empty)".into(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl sqllogictest::DB for Exec {
    type Error = SqlError;
    type ColumnType = DefaultColumnType;

    fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SqlError> {
        let (status, body) = get(&self.addr, &format!("/exec?query={}", percent_encode(sql)))?;
        let json: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
            SqlError(format!(
                "not JSON ({e}): {}",
                String::from_utf8_lossy(&body)
            ))
        })?;
        if let Some(error) = json.get("error") {
            return Err(SqlError(format!("HTTP {status}: {}", cell(error))));
        }
        if status != 200 {
            return Err(SqlError(format!("HTTP {status} without an error member")));
        }
        let Some(dataset) = json.get("dataset").and_then(|d| d.as_array()) else {
            return Ok(DBOutput::StatementComplete(0));
        };
        let width = json["columns"].as_array().map_or(0, Vec::len);
        let rows = dataset
            .iter()
            .map(|r| {
                r.as_array()
                    .map(|r| r.iter().map(cell).collect())
                    .unwrap_or_default()
            })
            .collect();
        Ok(DBOutput::Rows {
            types: vec![DefaultColumnType::Any; width],
            rows,
        })
    }
}

fn run_file(name: &str) {
    let server = TestServer::start();
    let addr = server.addr();
    // The crate's directory as cargo reports it when the test runs (the
    // binary may have been built from another checkout).
    let crate_dir = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    let path = crate_dir.join("tests/slt").join(name);
    let mut runner = sqllogictest::Runner::new(move || {
        let addr = addr.clone();
        async move { Ok(Exec { addr }) }
    });
    if let Err(e) = runner.run_file(&path) {
        panic!("{}\n\nserver log:\n{}", e.display(true), server.log_text());
    }
}

#[test]
fn ddl() {
    run_file("ddl.slt");
}

#[test]
fn insert() {
    run_file("insert.slt");
}

#[test]
fn casts() {
    run_file("casts.slt");
}

#[test]
fn select() {
    run_file("select.slt");
}

#[test]
fn alter() {
    run_file("alter.slt");
}

#[test]
fn time_functions() {
    run_file("time_functions.slt");
}

#[test]
fn time_ranges() {
    run_file("time_ranges.slt");
}

#[test]
fn sample_by() {
    run_file("sample_by.slt");
}

#[test]
fn latest_on() {
    run_file("latest_on.slt");
}

#[test]
fn time_joins() {
    run_file("time_joins.slt");
}

#[test]
fn aggregates() {
    run_file("aggregates.slt");
}

#[test]
fn partitions() {
    run_file("partitions.slt");
}

#[test]
fn scan_filters() {
    run_file("scan_filters.slt");
}

/// The server applies TTLs on its own, every `--ttl-check-secs`: rows
/// inserted after the TTL was set, in partitions already past it, go
/// without another statement, and their day directories with them.
#[test]
fn the_server_applies_ttls_periodically() {
    let temp = tempfile::tempdir().unwrap();
    let data = temp.path().join("data");
    let server = TestServer::start_in(&data, &["--ttl-check-secs", "1"]);
    let addr = server.addr();
    let run = |sql: &str| match sqllogictest::DB::run(&mut Exec { addr: addr.clone() }, sql) {
        Ok(DBOutput::Rows { rows, .. }) => rows,
        Ok(_) => Vec::new(),
        Err(e) => panic!("{sql}: {e}"),
    };
    run("CREATE TABLE ttl (x LONG, ts TIMESTAMP) TIMESTAMP(ts) PARTITION BY DAY TTL 2 DAYS");
    run(
        "INSERT INTO ttl VALUES (1, '2024-01-01T05:00:00Z'), (2, '2024-01-02T05:00:00Z'), (3, '2024-01-05T05:00:00Z')",
    );
    let started = std::time::Instant::now();
    loop {
        let rows = run("SELECT x FROM ttl");
        if rows == vec![vec!["3".to_string()]] {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the TTL was not applied: {rows:?}\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The dropped days' files are gone: removed on a later tick, once no
    // query reads them (polled, not assumed at the instant rows vanish).
    let days = || {
        let mut days = Vec::new();
        for table in std::fs::read_dir(data.join("tables")).unwrap() {
            let segments = table.unwrap().path().join("segments");
            for day in std::fs::read_dir(segments).into_iter().flatten() {
                days.push(day.unwrap().file_name().to_string_lossy().to_string());
            }
        }
        days
    };
    let started = std::time::Instant::now();
    while days() != vec!["2024-01-05".to_string()] && started.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(days(), vec!["2024-01-05".to_string()]);
}
