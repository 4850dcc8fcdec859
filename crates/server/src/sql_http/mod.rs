//! SQL over plain HTTP, for curl and tools: QuestDB's `GET /exec` (JSON)
//! and `GET /exp` (CSV export).
//!
//! | parameter | meaning |
//! |---|---|
//! | `query` | the SQL text (percent-encoded), required |
//! | `limit` | `n`: the first n rows; `lo,hi`: rows lo+1 to hi |
//! | `count=true` | `/exec`: `count` is every row of the result, not only the ones sent |
//! | `timings=true` | `/exec`: adds `timings` (nanoseconds to plan, to execute) |
//!
//! `/exec` answers a query with
//! `{"query","columns":[{"name","type"}],"timestamp","dataset":[[..],..],"count"}`
//! (`timestamp`: the index of the designated timestamp column, -1 without),
//! `CREATE TABLE` with `{"ddl":"OK"}`, `INSERT` with `{"dml":"OK"}`, and
//! an error with HTTP 400 (500 for a server fault) and
//! `{"query","error","position"}` (`position`: the character offset where
//! the SQL parser stopped, 0 for other errors). Both endpoints stream: rows are printed
//! a batch at a time into a channel of a few 64 KiB chunks, so a large
//! result needs no more server memory than a small one; a client that
//! goes away drops the query. A query that fails after its first rows went
//! out ends `/exec`'s JSON with an `error` member and breaks off the CSV
//! body (the chunked transfer never completes, so the client sees it).
//!
//! This module owns the HTTP shape only; values print through [`cells`].

pub mod cells;

use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame};
use hyper::header::HeaderValue;
use hyper::{Response, StatusCode};
use quiver_sql::{QueryEngine, QueryErrorKind, QueryOutput, QueryStream, StatementKind};
use quiver_storage::DESIGNATED_METADATA_KEY;
use tokio::sync::mpsc;

use self::cells::{Column, Syntax, json_string};
use crate::egress::columns::WireType;
use crate::http::Body;

/// Bytes printed before a chunk goes to the client.
const CHUNK: usize = 64 << 10;
/// Longest SQL text accepted.
const MAX_QUERY_LEN: usize = 1 << 20;

/// Which endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `/exec`: JSON.
    Exec,
    /// `/exp`: CSV.
    Export,
}

/// The request's parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// SQL text.
    pub query: String,
    /// Rows `[lo, hi)` to send.
    pub rows: (u64, u64),
    /// Count every row of the result.
    pub count: bool,
    /// Report timings.
    pub timings: bool,
}

/// Decodes `%XX` escapes and `+` (a space) of one query-string component.
fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("bad percent escape at byte {i} of the query string"))?;
                out.push(hex);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "the query string is not UTF-8".to_string())
}

impl Params {
    /// Parses a request's query string.
    pub fn parse(query_string: Option<&str>) -> Result<Params, String> {
        let mut params = Params {
            query: String::new(),
            rows: (0, u64::MAX),
            count: false,
            timings: false,
        };
        let mut have_query = false;
        for pair in query_string
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value)?;
            match key {
                "query" => {
                    if value.len() > MAX_QUERY_LEN {
                        return Err(format!(
                            "the query is {} bytes, more than the {MAX_QUERY_LEN} accepted",
                            value.len()
                        ));
                    }
                    params.query = value;
                    have_query = true;
                }
                "limit" => params.rows = parse_limit(&value)?,
                "count" => params.count = value.eq_ignore_ascii_case("true"),
                "timings" => params.timings = value.eq_ignore_ascii_case("true"),
                // QuestDB's other parameters (nm, explain, quoteLargeNum,
                // fmt, src, ...) are accepted and ignored.
                _ => {}
            }
        }
        if !have_query || params.query.trim().is_empty() {
            return Err("no query: pass the SQL as ?query=...".into());
        }
        Ok(params)
    }
}

/// `n` (the first n rows) or `lo,hi` (rows lo+1 to hi).
fn parse_limit(value: &str) -> Result<(u64, u64), String> {
    let bad = || format!("bad limit {value:?}: use limit=n or limit=lo,hi with 0 <= lo <= hi");
    let number = |s: &str| s.trim().parse::<u64>().map_err(|_| bad());
    match value.split_once(',') {
        None => Ok((0, number(value)?)),
        Some((lo, hi)) => {
            let (lo, hi) = (number(lo)?, number(hi)?);
            if lo > hi {
                return Err(bad());
            }
            Ok((lo, hi))
        }
    }
}

fn json_response(status: StatusCode, body: String) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)).map_err(|n| match n {}).boxed());
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    r
}

fn error_response(status: StatusCode, query: &str, message: &str) -> Response<Body> {
    let mut body = String::from("{\"query\":");
    json_string(&mut body, query);
    body.push_str(",\"error\":");
    json_string(&mut body, message);
    body.push_str(&format!(
        ",\"position\":{}}}",
        error_position(query, message)
    ));
    json_response(status, body)
}

/// Where in `query` (a character offset from 0) the SQL parser's message
/// points (`... at Line: L, Column: C`, or the end for `found: EOF`); 0
/// when it names no place.
fn error_position(query: &str, message: &str) -> usize {
    let Some(at) = message.rfind(" at Line: ") else {
        // The parser ran out of statement: the error is at its end.
        return match message.ends_with("found: EOF") {
            true => query.chars().count(),
            false => 0,
        };
    };
    let rest = &message[at + " at Line: ".len()..];
    let mut parts = rest.split(", Column: ");
    let line = parts.next().and_then(|l| l.trim().parse::<usize>().ok());
    let column = parts
        .next()
        .map(|c| {
            c.trim_start()
                .split(|ch: char| !ch.is_ascii_digit())
                .next()
                .unwrap_or("")
        })
        .and_then(|c| c.parse::<usize>().ok());
    let (Some(line), Some(column)) = (line, column) else {
        return 0;
    };
    let mut offset = 0usize;
    for (i, text) in query.split('\n').enumerate() {
        if i + 1 == line {
            return offset + column.saturating_sub(1).min(text.chars().count());
        }
        offset += text.chars().count() + 1;
    }
    0
}

/// Runs `/exec` or `/exp` for a request's query string.
pub async fn handle(
    endpoint: Endpoint,
    query_string: Option<&str>,
    engine: Arc<QueryEngine>,
) -> Response<Body> {
    let params = match Params::parse(query_string) {
        Ok(p) => p,
        Err(e) => return error_response(StatusCode::BAD_REQUEST, "", &e),
    };
    let started = Instant::now();
    let output = match engine.execute(&params.query).await {
        Ok(o) => o,
        Err(e) => {
            let status = match e.kind {
                QueryErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            return error_response(status, &params.query, &e.message);
        }
    };
    let mut stream = match output {
        QueryOutput::Rows(stream) => stream,
        QueryOutput::Done { kind, .. } => {
            let body = match kind {
                StatementKind::Insert | StatementKind::InsertSelect => "{\"dml\":\"OK\"}",
                _ => "{\"ddl\":\"OK\"}",
            };
            return json_response(StatusCode::OK, body.to_string());
        }
    };
    // Most failures come with the first batch (a cast that does not
    // convert, a limit): they still get a 400 before anything is sent.
    let first = match stream.next().await {
        Some(Err(e)) => {
            let status = match e.kind {
                QueryErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::BAD_REQUEST,
            };
            return error_response(status, &params.query, &e.message);
        }
        Some(Ok(batch)) => Some(batch),
        None => None,
    };
    let planned = started.elapsed();
    let (tx, rx) = mpsc::channel::<Result<Bytes, std::io::Error>>(4);
    tokio::spawn(async move {
        let printer = Printer {
            endpoint,
            params,
            tx,
            planned_ns: planned.as_nanos(),
            started,
        };
        printer.run(first, stream).await;
    });
    let body = StreamBody::new(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item.map(Frame::data), rx))
    }));
    let mut r = Response::new(BodyExt::boxed(body));
    let headers = r.headers_mut();
    match endpoint {
        Endpoint::Exec => {
            headers.insert(
                "content-type",
                HeaderValue::from_static("application/json; charset=utf-8"),
            );
        }
        Endpoint::Export => {
            headers.insert(
                "content-type",
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            headers.insert(
                "content-disposition",
                HeaderValue::from_static("attachment; filename=\"questdb-query.csv\""),
            );
        }
    }
    r
}

/// Prints one result into the response body's channel.
struct Printer {
    endpoint: Endpoint,
    params: Params,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    planned_ns: u128,
    started: Instant,
}

impl Printer {
    /// Sends `out` if it is a chunk's worth (or `force`); `Err` when the
    /// client went away.
    async fn flush(&self, out: &mut String, force: bool) -> Result<(), ()> {
        if out.len() >= CHUNK || (force && !out.is_empty()) {
            let chunk = Bytes::from(std::mem::take(out));
            self.tx.send(Ok(chunk)).await.map_err(|_| ())?;
        }
        Ok(())
    }

    async fn run(self, first: Option<arrow::array::RecordBatch>, mut stream: QueryStream) {
        let schema = stream.schema();
        let wire: Vec<WireType> = schema.fields().iter().map(|f| WireType::of(f)).collect();
        let mut out = String::with_capacity(CHUNK + 4096);
        let syntax = match self.endpoint {
            Endpoint::Exec => {
                out.push_str("{\"query\":");
                json_string(&mut out, &self.params.query);
                out.push_str(",\"columns\":[");
                for (i, (f, w)) in schema.fields().iter().zip(&wire).enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str("{\"name\":");
                    json_string(&mut out, f.name());
                    out.push_str(",\"type\":");
                    json_string(&mut out, &w.questdb_name());
                    out.push('}');
                }
                // The designated timestamp, when the result still has it.
                let timestamp = schema
                    .fields()
                    .iter()
                    .position(|f| f.metadata().contains_key(DESIGNATED_METADATA_KEY))
                    .map_or(-1, |i| i64::try_from(i).unwrap_or(-1));
                out.push_str(&format!("],\"timestamp\":{timestamp},\"dataset\":["));
                Syntax::Json
            }
            Endpoint::Export => {
                for (i, f) in schema.fields().iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('"');
                    out.push_str(&f.name().replace('"', "\"\""));
                    out.push('"');
                }
                out.push('\n');
                Syntax::Csv
            }
        };
        let (lo, hi) = self.params.rows;
        let mut seen = 0u64;
        let mut sent = 0u64;
        let mut failure = None;
        let mut first = first.map(Ok);
        loop {
            let batch = match first.take() {
                Some(b) => b,
                None => match stream.next().await {
                    Some(b) => b,
                    None => break,
                },
            };
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    failure = Some(e.message);
                    break;
                }
            };
            // A client that went away stops the query even while nothing
            // is printed (rows before `lo`, or counting past `hi`).
            if self.tx.is_closed() {
                return;
            }
            let rows = batch.num_rows() as u64;
            let from = lo.saturating_sub(seen).min(rows);
            let to = hi.saturating_sub(seen).min(rows);
            if from < to {
                let columns: Result<Vec<Column>, String> = batch
                    .columns()
                    .iter()
                    .zip(&wire)
                    .map(|(a, w)| Column::new(a, w))
                    .collect();
                let columns = match columns {
                    Ok(c) => c,
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                };
                for row in from..to {
                    let row = usize::try_from(row).unwrap_or(usize::MAX);
                    if syntax == Syntax::Json {
                        if sent > 0 {
                            out.push(',');
                        }
                        out.push('[');
                    }
                    for (i, c) in columns.iter().enumerate() {
                        if i > 0 {
                            out.push(',');
                        }
                        c.write(&mut out, row, syntax);
                    }
                    out.push_str(if syntax == Syntax::Json { "]" } else { "\n" });
                    sent += 1;
                    if self.flush(&mut out, false).await.is_err() {
                        return;
                    }
                }
            }
            seen += rows;
            if seen >= hi && !(self.params.count && self.endpoint == Endpoint::Exec) {
                break;
            }
        }
        drop(stream);
        match self.endpoint {
            Endpoint::Exec => {
                let count = if self.params.count { seen } else { sent };
                out.push_str(&format!("],\"count\":{count}"));
                if self.params.timings {
                    let total = self.started.elapsed().as_nanos();
                    out.push_str(&format!(
                        ",\"timings\":{{\"authentication\":0,\"compiler\":{},\"execute\":{},\"count\":0}}",
                        self.planned_ns,
                        total.saturating_sub(self.planned_ns)
                    ));
                }
                if let Some(e) = &failure {
                    tracing::warn!(query = %self.params.query, error = %e, "/exec query failed mid-stream");
                    out.push_str(",\"error\":");
                    json_string(&mut out, e);
                }
                out.push('}');
                let _ = self.flush(&mut out, true).await;
            }
            Endpoint::Export => {
                if self.flush(&mut out, true).await.is_err() {
                    return;
                }
                if let Some(e) = failure {
                    tracing::warn!(query = %self.params.query, error = %e, "/exp query failed mid-stream");
                    let _ = self.tx.send(Err(std::io::Error::other(e))).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_positions() {
        assert_eq!(
            error_position(
                "SELEC 1",
                "sql parser error: Expected: an SQL statement, found: SELEC at Line: 1, Column: 1"
            ),
            0
        );
        assert_eq!(
            error_position(
                "SELECT 1 FROM",
                "Expected: identifier, found: EOF at Line: 1, Column: 14"
            ),
            13
        );
        assert_eq!(
            error_position("SELECT 1\nFROM x y z", "found: z at Line: 2, Column: 10"),
            18
        );
        assert_eq!(
            error_position("SELECT nope FROM t", "No field named nope"),
            0
        );
        assert_eq!(error_position("x", "at Line: 9, Column: 9"), 0);
        assert_eq!(
            error_position("SELECT 1 FROM", "Expected: identifier, found: EOF"),
            13
        );
    }

    #[test]
    fn query_string_parameters() {
        let p = Params::parse(Some(
            "query=SELECT+x%2C%20%27%C3%A9%27+FROM+t&limit=5,10&count=true",
        ))
        .unwrap();
        assert_eq!(p.query, "SELECT x, 'é' FROM t");
        assert_eq!(p.rows, (5, 10));
        assert!(p.count && !p.timings);
        assert_eq!(Params::parse(Some("query=1&limit=3")).unwrap().rows, (0, 3));
        for bad in [
            None,
            Some(""),
            Some("query="),
            Some("query=%zz"),
            Some("query=%ff"),
            Some("query=x&limit=-1"),
            Some("query=x&limit=9,3"),
            Some("query=x&limit=a"),
        ] {
            assert!(Params::parse(bad).is_err(), "{bad:?}");
        }
    }
}
