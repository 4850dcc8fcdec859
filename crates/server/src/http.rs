//! HTTP/1.1 on the listen port: routing, `/ping`, and the WebSocket upgrade
//! for QWP ingest (SPEC §1.2, §1.3, §9.2).
//!
//! | request | response |
//! |---|---|
//! | `GET /exec?query=...` | the SQL's result as QuestDB's JSON (see [`crate::sql_http`]) |
//! | `GET /exp?query=...` | the SQL's result as CSV |
//! | `POST /write`, `POST /api/v2/write` | line protocol (QuestDB's and InfluxDB's v1/v2 write APIs, see [`crate::ilp::http`]): 204, or a JSON error |
//! | `GET /settings` | the line protocol versions and name limit the official clients negotiate with |
//! | `GET`/`POST /query` | InfluxDB 1.x: `CREATE DATABASE` answered OK (nothing to create), other InfluxQL 400 |
//! | `GET /ping` | 204; 503 + `{"status":"unhealthy","reason":...}` once storage refuses writes after a failure |
//! | `GET /read/v1` with a valid upgrade | 101 + `X-QWP-Version: 1` (`X-QWP-Content-Encoding: zstd;level=N` when the client accepts zstd), then QWP egress: SQL queries |
//! | `GET /write/v4`, `GET /api/v4/write` with a valid upgrade | 101 + `X-QWP-Version: 1`, `X-QWP-Max-Batch-Size`, `X-QWP-Durable-Ack: enabled` when asked |
//! | the same without `Upgrade`/`Connection`/`Sec-WebSocket-Key` | 400 with the reason |
//! | `Sec-WebSocket-Version` other than 13 | 426 + `Sec-WebSocket-Version: 13` |
//! | anything else | 404 |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONNECTION, HeaderMap, HeaderValue, UPGRADE};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use quiver_storage::Database;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::task::TaskTracker;

use crate::egress::{EgressOptions, EgressSession};
use crate::ilp::LineOptions;
use crate::ingest::{IngestSession, SessionOptions};
use crate::sql_http::{self, Endpoint};

/// Response bodies: whole (`Full`) or streamed (`/exec`, `/exp`); an
/// error breaks the transfer off.
pub type Body = BoxBody<Bytes, std::io::Error>;
use quiver_sql::QueryEngine;

/// What every connection shares.
#[derive(Clone)]
pub struct ServerState {
    /// The database.
    pub db: Arc<Database>,
    /// The query engine.
    pub engine: Arc<QueryEngine>,
    /// Settings every egress session starts from.
    pub egress: EgressOptions,
    /// Largest QWP message accepted.
    pub max_message_len: usize,
    /// Settings every ingest session starts from.
    pub session: SessionOptions,
    /// Line protocol settings.
    pub ilp: LineOptions,
    /// Becomes `true` at shutdown.
    pub stop: watch::Receiver<bool>,
    /// Tracks upgraded sessions for graceful shutdown.
    pub tracker: TaskTracker,
}

/// Serves one TCP connection until it closes or is upgraded.
pub async fn serve_connection(stream: TcpStream, peer: SocketAddr, state: ServerState) {
    let io = TokioIo::new(stream);
    let state_stop = state.stop.clone();
    let service = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, Infallible>(route(req, peer, state).await) }
    });
    let mut stop = state_stop.clone();
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = stop.changed() => {
            // Finish a request in progress; an idle connection closes now.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(%peer, error = %e, "connection ended with an error");
    }
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn route(req: Request<Incoming>, peer: SocketAddr, state: ServerState) -> Response<Body> {
    let endpoint = match (req.method(), req.uri().path()) {
        (&Method::GET, "/exec") => Some(Endpoint::Exec),
        (&Method::GET, "/exp") => Some(Endpoint::Export),
        _ => None,
    };
    if let Some(endpoint) = endpoint {
        return sql_http::handle(endpoint, req.uri().query(), state.engine.clone()).await;
    }
    if matches!(*req.method(), Method::GET | Method::POST) && req.uri().path() == "/query" {
        return crate::ilp::http::influx_query(req)
            .await
            .map(|b| b.map_err(|never| match never {}).boxed());
    }
    if req.method() == Method::POST && matches!(req.uri().path(), "/write" | "/api/v2/write") {
        return crate::ilp::http::write(req, peer, state)
            .await
            .map(|b| b.map_err(|never| match never {}).boxed());
    }
    route_whole(req, peer, state).map(|b| b.map_err(|never| match never {}).boxed())
}

fn route_whole(
    req: Request<Incoming>,
    peer: SocketAddr,
    state: ServerState,
) -> Response<Full<Bytes>> {
    match (req.method(), req.uri().path()) {
        (&Method::GET | &Method::HEAD, "/ping") => match state.db.health() {
            None => {
                let mut r = Response::new(Full::new(Bytes::new()));
                *r.status_mut() = StatusCode::NO_CONTENT;
                // InfluxDB clients read these to tell a server is there.
                r.headers_mut()
                    .insert("x-influxdb-version", HeaderValue::from_static("1.8.10"));
                r.headers_mut()
                    .insert("x-influxdb-build", HeaderValue::from_static("OSS"));
                r
            }
            Some(reason) => {
                let body = format!(
                    "{{\"status\":\"unhealthy\",\"reason\":{}}}\n",
                    json_string(&format!(
                        "storage refuses writes after a failure; restart the server: {reason}"
                    ))
                );
                let mut r = Response::new(Full::new(Bytes::from(body)));
                *r.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
                r.headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/json"));
                r
            }
        },
        (&Method::GET, "/write/v4" | "/api/v4/write") => upgrade_ingest(req, peer, state),
        (&Method::GET, "/read/v1") => upgrade_egress(req, peer, state),
        (&Method::GET, "/settings") => crate::ilp::http::settings(),
        (_, "/write" | "/api/v2/write") => text(StatusCode::METHOD_NOT_ALLOWED, "use POST\n"),
        (
            _,
            "/write/v4" | "/api/v4/write" | "/read/v1" | "/ping" | "/exec" | "/exp" | "/settings",
        ) => text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n"),
        (_, path) => text(
            StatusCode::NOT_FOUND,
            &format!("no such endpoint: {path}\n"),
        ),
    }
}

fn has_token(headers: &HeaderMap, name: hyper::header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Checks a WebSocket upgrade request; the `Sec-WebSocket-Key`, or the
/// answer refusing it (400/426).
fn check_upgrade(headers: &HeaderMap) -> Result<Vec<u8>, Box<Response<Full<Bytes>>>> {
    if !has_token(headers, UPGRADE, "websocket") {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            "missing or invalid Upgrade header: expected websocket\n",
        )));
    }
    if !has_token(headers, CONNECTION, "upgrade") {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            "missing or invalid Connection header: expected Upgrade\n",
        )));
    }
    let version_ok = headers
        .get("sec-websocket-version")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() == "13");
    if !version_ok {
        let mut r = text(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported Sec-WebSocket-Version: expected 13\n",
        );
        r.headers_mut()
            .insert("sec-websocket-version", HeaderValue::from_static("13"));
        return Err(Box::new(r));
    }
    headers
        .get("sec-websocket-key")
        .map(|k| k.as_bytes().to_vec())
        .ok_or_else(|| {
            Box::new(text(
                StatusCode::BAD_REQUEST,
                "missing Sec-WebSocket-Key header\n",
            ))
        })
}

/// A 101 accepting the upgrade of `key`, with `X-QWP-Version: 1`.
fn switching_protocols(key: &[u8]) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key)) {
        h.insert("sec-websocket-accept", accept);
    }
    h.insert("x-qwp-version", HeaderValue::from_static("1"));
    response
}

/// Checks the upgrade request and answers 101 (or 400/426), then hands
/// the upgraded connection to an ingest session.
fn upgrade_ingest(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    state: ServerState,
) -> Response<Full<Bytes>> {
    let headers = req.headers();
    let key = match check_upgrade(headers) {
        Ok(k) => k,
        Err(refused) => return *refused,
    };
    let durable = headers
        .get("x-qwp-request-durable-ack")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
    let client_id = headers
        .get("x-qwp-client-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();

    let mut response = switching_protocols(&key);
    let h = response.headers_mut();
    h.insert(
        "x-qwp-max-batch-size",
        HeaderValue::from(state.max_message_len as u64),
    );
    if durable {
        h.insert("x-qwp-durable-ack", HeaderValue::from_static("enabled"));
    }

    let upgrade = hyper::upgrade::on(&mut req);
    let tracker = state.tracker.clone();
    tracker.spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "upgrade failed");
                return;
            }
        };
        let config = WebSocketConfig::default()
            .max_message_size(Some(state.max_message_len))
            .max_frame_size(Some(state.max_message_len))
            .read_buffer_size(256 * 1024);
        let ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        tracing::debug!(%peer, client_id, durable, "ingest session started");
        let options = SessionOptions {
            durable_acks: durable,
            ..state.session.clone()
        };
        IngestSession::new(state.db.clone(), options)
            .run(ws, peer, state.stop.clone())
            .await;
    });
    response
}

/// The zstd level a client's `X-QWP-Accept-Encoding` asks for: the first
/// `zstd` token (level from `zstd;level=N` or `zstd;N`, default 1, clamped
/// to 1..=9) unless a `raw`/`identity` token comes first (SPEC §9.5).
fn accepted_zstd_level(headers: &HeaderMap) -> Option<i32> {
    let value = headers.get("x-qwp-accept-encoding")?.to_str().ok()?;
    for token in value.split(',') {
        let mut parts = token.split(';').map(str::trim);
        match parts.next().map(str::to_ascii_lowercase).as_deref() {
            Some("zstd") => {
                let level = parts
                    .next()
                    .map(|p| p.trim_start_matches("level="))
                    .and_then(|p| p.parse::<i32>().ok())
                    .unwrap_or(1);
                return Some(level.clamp(1, 9));
            }
            Some("raw" | "identity") => return None,
            _ => {}
        }
    }
    None
}

/// Checks the upgrade request and answers 101 (or 400/426), then hands
/// the upgraded connection to an egress (query) session.
fn upgrade_egress(
    mut req: Request<Incoming>,
    peer: SocketAddr,
    state: ServerState,
) -> Response<Full<Bytes>> {
    let headers = req.headers();
    let key = match check_upgrade(headers) {
        Ok(k) => k,
        Err(refused) => return *refused,
    };
    let mut options = state.egress.clone();
    // X-QWP-Max-Batch-Rows can only lower the row cap; nonsense is ignored.
    if let Some(rows) = headers
        .get("x-qwp-max-batch-rows")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|r| *r > 0)
    {
        options.max_batch_rows = options.max_batch_rows.min(rows);
    }
    options.zstd_level = accepted_zstd_level(headers);
    let mut response = switching_protocols(&key);
    if let Some(level) = options.zstd_level
        && let Ok(v) = HeaderValue::from_str(&format!("zstd;level={level}"))
    {
        response.headers_mut().insert("x-qwp-content-encoding", v);
    }
    let upgrade = hyper::upgrade::on(&mut req);
    let tracker = state.tracker.clone();
    tracker.spawn(async move {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(%peer, error = %e, "upgrade failed");
                return;
            }
        };
        tracing::debug!(%peer, "egress session started");
        EgressSession::new(state.engine.clone(), options)
            .run(
                TokioIo::new(upgraded),
                state.max_message_len,
                peer,
                state.stop.clone(),
            )
            .await;
    });
    response
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    crate::sql_http::cells::json_string(&mut out, s);
    out
}
