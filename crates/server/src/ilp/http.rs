//! Line protocol over HTTP: `POST /write` and `POST /api/v2/write` (QuestDB's
//! paths, and InfluxDB's v1 and v2 write APIs), and `GET /settings`.
//!
//! | parameter | meaning |
//! |---|---|
//! | `precision` | line timestamps' unit: `n`/`ns` (default), `u`/`us`, `ms`, `s`, `m`, `h` |
//! | `db` (v1), `bucket`, `org` (v2), `rp`, `u`, `p` | accepted and ignored: tables are named by the lines |
//!
//! A request is one transaction: every line is committed and the answer is
//! 204, or none is and the answer is QuestDB's JSON error (`code`,
//! `message`, `line`, `errorId`): 400 for a line or request that is wrong,
//! 413 past [`super::LineOptions::max_request_bytes`], 408 if the body
//! stalls for [`super::LineOptions::body_idle_timeout`], 415 for an unknown
//! `Content-Encoding`, 503 while the server holds too many uncommitted rows
//! (retry), 500 if the server failed. `Content-Encoding: gzip` bodies are
//! inflated as they arrive, a slice at a time. The answer comes once the
//! rows are visible to queries, or once they are fsync'd when the server
//! runs with `--sync-every-commit`.
//!
//! `/query` answers InfluxDB 1.x clients that create their database before
//! writing (Telegraf does): `CREATE DATABASE` succeeds (there is nothing to
//! create; lines name their tables), any other InfluxQL gets 400 pointing at
//! SQL on `/exec`.
//!
//! `GET /settings` advertises what the official clients negotiate with:
//! `line.proto.support.versions` `[1, 2, 3]` (so they send binary doubles,
//! arrays and decimals by themselves) and `cairo.max.file.name.length`.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::FutureExt;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_ENCODING, HeaderValue};
use hyper::{Request, Response, StatusCode};
use quiver_ilp::Precision;
use quiver_storage::schema::MAX_NAME_LEN;

use super::{LineWriter, WriteError};
use crate::http::ServerState;

/// Compressed bytes inflated at a time (deflate expands at most ~1,032
/// times, so one slice inflates to a few MiB at most).
const INFLATE_SLICE: usize = 4096;

/// The body of `GET /settings`.
pub fn settings() -> Response<Full<Bytes>> {
    let body = format!(
        "{{\"config\":{{\"release.type\":\"OSS\",\"release.version\":\"quiver {}\",\
         \"line.proto.support.versions\":[1,2,3],\"ilp.proto.transports\":[\"http\",\"tcp\"],\
         \"cairo.max.file.name.length\":{MAX_NAME_LEN}}},\"preferences.version\":0,\"preferences\":{{}}}}\n",
        env!("CARGO_PKG_VERSION")
    );
    json(StatusCode::OK, body)
}

fn json(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// Most bytes of a `/query` request body read (a form with `q=`).
const MAX_QUERY_BODY: usize = 64 << 10;

/// `GET`/`POST /query` of InfluxDB's 1.x API (see the module docs).
pub async fn influx_query(req: Request<Incoming>) -> Response<Full<Bytes>> {
    let mut text = req.uri().query().unwrap_or_default().to_string();
    let body = http_body_util::Limited::new(req.into_body(), MAX_QUERY_BODY);
    match body.collect().await {
        Ok(b) => {
            text.push('&');
            text.push_str(&String::from_utf8_lossy(&b.to_bytes()));
        }
        Err(_) => {
            return json(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("{{\"error\":\"a query body is at most {MAX_QUERY_BODY} bytes\"}}\n"),
            );
        }
    }
    let q = text
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == "q")
        .map(|(_, v)| percent_decode(v))
        .unwrap_or_default();
    let create = q.split(';').filter(|st| !st.trim().is_empty()).all(|st| {
        let words: Vec<&str> = st.split_whitespace().take(2).collect();
        words.len() == 2
            && words[0].eq_ignore_ascii_case("create")
            && words[1].eq_ignore_ascii_case("database")
    });
    if create && !q.trim().is_empty() {
        return json(
            StatusCode::OK,
            "{\"results\":[{\"statement_id\":0}]}\n".to_string(),
        );
    }
    let mut body = String::from("{\"error\":");
    crate::sql_http::cells::json_string(
        &mut body,
        "InfluxQL is not supported (CREATE DATABASE is accepted and does nothing); query with SQL on GET /exec?query=",
    );
    body.push_str("}\n");
    json(StatusCode::BAD_REQUEST, body)
}

/// `%XX` escapes and `+` decoded (invalid escapes kept as they are).
fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = match bytes[i] {
            b'%' if i + 2 < bytes.len() => hex(bytes[i + 1]).zip(hex(bytes[i + 2])),
            _ => None,
        };
        match (bytes[i], decoded) {
            (_, Some((hi, lo))) => {
                out.push(hi * 16 + lo);
                i += 3;
            }
            (b'+', None) => {
                out.push(b' ');
                i += 1;
            }
            (b, None) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The timestamp unit a request asks for.
fn precision(query: Option<&str>) -> Result<Precision, WriteError> {
    let Some(query) = query else {
        return Ok(Precision::Nanos);
    };
    let mut precision = Precision::Nanos;
    for pair in query.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key == "precision" {
            // `µ` arrives percent-encoded.
            let unit = match value {
                "%C2%B5" | "%C2%B5s" => "u",
                v => v,
            };
            precision = Precision::parse(unit).ok_or_else(|| {
                WriteError::Request(format!(
                    "unknown precision {value:?}; use n, u, ms, s, m or h"
                ))
            })?;
        }
    }
    Ok(precision)
}

/// A unique id for an error answer, also in the server's log.
fn error_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    static START: std::sync::LazyLock<u64> = std::sync::LazyLock::new(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    format!("{:x}-{}", *START, NEXT.fetch_add(1, Ordering::Relaxed))
}

/// The JSON answer to a failed write.
fn error_response(error: &WriteError, peer: SocketAddr) -> Response<Full<Bytes>> {
    let (status, code) = match error {
        WriteError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "request too large"),
        WriteError::Stalled { .. } => (StatusCode::REQUEST_TIMEOUT, "request timeout"),
        WriteError::Encoding => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported encoding"),
        WriteError::Rejected { error, .. }
            if error.status == quiver_qwp::StatusCode::WRITE_ERROR =>
        {
            (StatusCode::SERVICE_UNAVAILABLE, "busy")
        }
        e if e.is_client_fault() => (StatusCode::BAD_REQUEST, "invalid"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    let id = error_id();
    let message = error.to_string();
    match status {
        StatusCode::INTERNAL_SERVER_ERROR => {
            tracing::error!(%peer, error_id = %id, %message, "line protocol write failed")
        }
        _ => tracing::info!(%peer, error_id = %id, %message, "line protocol write refused"),
    }
    let mut body = String::with_capacity(message.len() + 96);
    body.push_str("{\"code\":");
    crate::sql_http::cells::json_string(&mut body, code);
    body.push_str(",\"message\":");
    crate::sql_http::cells::json_string(&mut body, &message);
    if let Some(line) = error.line() {
        body.push_str(&format!(",\"line\":{line}"));
    }
    body.push_str(",\"errorId\":");
    crate::sql_http::cells::json_string(&mut body, &id);
    body.push_str("}\n");
    json(status, body)
}

/// Serves a write request (see the module docs).
pub async fn write(
    req: Request<Incoming>,
    peer: SocketAddr,
    state: ServerState,
) -> Response<Full<Bytes>> {
    let outcome = std::panic::AssertUnwindSafe(write_request(req, &state))
        .catch_unwind()
        .await;
    match outcome {
        Ok(Ok(rows)) => {
            tracing::debug!(%peer, rows, "line protocol write committed");
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::NO_CONTENT;
            r
        }
        Ok(Err(e)) => error_response(&e, peer),
        Err(_) => {
            tracing::error!(%peer, "a line protocol write panicked (a bug)");
            error_response(
                &WriteError::Internal("the server failed while writing the lines".into()),
                peer,
            )
        }
    }
}

/// How the body is encoded.
enum BodyDecoder {
    Identity,
    Gzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
}

/// Reads, parses and commits one request; returns the rows committed.
async fn write_request(req: Request<Incoming>, state: &ServerState) -> Result<usize, WriteError> {
    let started = std::time::Instant::now();
    let precision = precision(req.uri().query())?;
    let mut decoder = match req.headers().get(CONTENT_ENCODING).map(|v| v.as_bytes()) {
        None | Some(b"identity") => BodyDecoder::Identity,
        Some(v) if v.eq_ignore_ascii_case(b"gzip") || v.eq_ignore_ascii_case(b"x-gzip") => {
            BodyDecoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Vec::new())))
        }
        Some(_) => return Err(WriteError::Encoding),
    };
    let db = state.db.clone();
    let mut writer = LineWriter::new(db.clone(), state.ilp.clone(), precision);
    let mut body = req.into_body();
    let idle = state.ilp.body_idle_timeout;
    loop {
        let Ok(frame) = tokio::time::timeout(idle, body.frame()).await else {
            return Err(WriteError::Stalled {
                secs: idle.as_secs(),
            });
        };
        let Some(frame) = frame else {
            break;
        };
        let frame = frame
            .map_err(|e| WriteError::Request(format!("reading the request body failed: {e}")))?;
        let Ok(chunk) = frame.into_data() else {
            continue;
        };
        // Hold the client back while storage seals (as QWP ingest does).
        if db.over_memory_limit() {
            db.memory_available().await;
        }
        match &mut decoder {
            BodyDecoder::Identity => writer.feed(&chunk).await?,
            BodyDecoder::Gzip(gz) => {
                for slice in chunk.chunks(INFLATE_SLICE) {
                    gz.write_all(slice).map_err(bad_gzip)?;
                    let inflated = std::mem::take(gz.get_mut());
                    writer.feed(&inflated).await?;
                }
            }
        }
    }
    if let BodyDecoder::Gzip(gz) = &mut decoder {
        gz.try_finish().map_err(bad_gzip)?;
        let inflated = std::mem::take(gz.get_mut());
        writer.feed(&inflated).await?;
    }
    let txn = writer.finish().await?;
    let rows = txn.row_count();
    if txn.is_empty() {
        return Ok(0);
    }
    let read = started.elapsed();
    super::commit(&db, txn, state.ilp.durable).await?;
    tracing::debug!(
        rows,
        lines = writer.lines(),
        read_parse_convert_ms = read.as_secs_f64() * 1e3,
        of_which_convert_ms = writer.convert_time().as_secs_f64() * 1e3,
        commit_ms = (started.elapsed() - read).as_secs_f64() * 1e3,
        "line protocol request"
    );
    Ok(rows)
}

fn bad_gzip(e: std::io::Error) -> WriteError {
    WriteError::Request(format!("the gzip body cannot be inflated: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("CREATE+DATABASE+%22telegraf%22"),
            "CREATE DATABASE \"telegraf\""
        );
        assert_eq!(percent_decode("%zz%4"), "%zz%4");
        assert_eq!(percent_decode("ü%C3%BC"), "üü");
    }

    #[test]
    fn precisions_of_both_apis() {
        assert_eq!(precision(None).unwrap(), Precision::Nanos);
        assert_eq!(precision(Some("db=x")).unwrap(), Precision::Nanos);
        assert_eq!(precision(Some("precision=ns")).unwrap(), Precision::Nanos);
        assert_eq!(
            precision(Some("org=a&bucket=b&precision=us")).unwrap(),
            Precision::Micros
        );
        assert_eq!(precision(Some("precision=u")).unwrap(), Precision::Micros);
        assert_eq!(precision(Some("precision=ms")).unwrap(), Precision::Millis);
        assert_eq!(precision(Some("precision=h")).unwrap(), Precision::Hours);
        assert!(precision(Some("precision=fortnight")).is_err());
    }
}
