//! `quiver-server`: the `quiver` binary's library.
//!
//! - [`serve`]: HTTP/1.1 on one port: `GET /ping` (204, or 503 with a JSON
//!   body once storage stopped writing after a failure), QWP egress (SQL
//!   queries) on `/read/v1` ([`egress`]), WebSocket upgrades
//!   on `/write/v4` and `/api/v4/write` for QWP ingest ([`ingest`]); other
//!   paths 404.
//! - [`tools`]: `quiver tables` and `quiver export`, which read a data
//!   directory without writing to it (safe while a server runs).
//!
//! The server re-implements neither the wire format (`quiver-qwp`) nor
//! storage (`quiver-storage`); it owns connections, sessions and the mapping
//! of QWP columns onto table columns.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod egress;
pub mod http;
pub mod ilp;
pub mod ingest;
pub mod sql_http;
pub mod tools;
pub mod websocket;

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use egress::EgressOptions;
use quiver_sql::QueryEngine;
use quiver_storage::io::FileSystem;
use quiver_storage::{Database, Options};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::task::TaskTracker;

pub use ilp::LineOptions;
pub use ilp::tcp::TcpOptions;
pub use ingest::{FrameLimits, SessionOptions};
pub use quiver_sql::QueryOptions;

/// Server settings.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Listen address; port 0 picks a free one (the bound address is printed).
    pub listen: SocketAddr,
    /// Largest QWP message accepted, advertised as `X-QWP-Max-Batch-Size`.
    pub max_message_len: usize,
    /// fsync after every commit.
    pub sync_every_commit: bool,
    /// Seal a table's memtable past this many rows.
    pub seal_rows: u64,
    /// Start a new WAL file past this many bytes.
    pub wal_roll_bytes: u64,
    /// Past this many bytes of unsealed rows, ingest waits for sealing.
    pub max_unsealed_bytes: usize,
    /// Most bytes of uncommitted rows all connections may hold together.
    pub max_uncommitted_bytes: usize,
    /// Per-connection ingest settings (limits, timeouts); `durable_acks` is
    /// set per connection from its upgrade request.
    pub session: SessionOptions,
    /// Line protocol settings (`durable` follows `sync_every_commit`;
    /// frame limits and the pending bound follow `session`'s).
    pub ilp: LineOptions,
    /// Where line protocol over TCP listens (off if `None`).
    pub ilp_tcp_listen: Option<SocketAddr>,
    /// Line protocol over TCP settings.
    pub ilp_tcp: TcpOptions,
    /// Query engine settings.
    pub query: QueryOptions,
    /// Per-connection query settings (batch rows, frame size, compression
    /// from the upgrade request).
    pub egress: EgressOptions,
    /// How long shutdown waits for connections to finish their frames.
    pub shutdown_grace: Duration,
    /// How often tables' TTLs are applied (old partitions dropped).
    pub ttl_check_interval: Duration,
    /// The file system under storage (the operating system's by default;
    /// tests inject a simulated disk to fail writes and fsyncs).
    pub fs: Option<Arc<dyn FileSystem>>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            data_dir: PathBuf::from("./quiver-data"),
            listen: SocketAddr::from(([127, 0, 0, 1], 9000)),
            max_message_len: 16 * 1024 * 1024,
            sync_every_commit: false,
            seal_rows: Options::default().seal_rows,
            wal_roll_bytes: Options::default().wal_roll_size,
            max_unsealed_bytes: Options::default().max_unsealed_bytes,
            max_uncommitted_bytes: Options::default().max_uncommitted_bytes,
            session: SessionOptions::default(),
            ilp: LineOptions::default(),
            ilp_tcp_listen: None,
            ilp_tcp: TcpOptions::default(),
            query: QueryOptions::default(),
            egress: EgressOptions::default(),
            shutdown_grace: Duration::from_secs(10),
            ttl_check_interval: Duration::from_secs(30),
            fs: None,
        }
    }
}

/// Anything that stops the server from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Storage failed to open or close.
    #[error(transparent)]
    Storage(#[from] quiver_storage::StorageError),
    /// A socket or file operation failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// An offline tool failed.
    #[error("{0}")]
    Tool(String),
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// A server bound to its port with its database open, not yet serving.
pub struct Server {
    config: ServeConfig,
    db: Arc<Database>,
    engine: Arc<QueryEngine>,
    listener: TcpListener,
    local: SocketAddr,
    ilp_listener: Option<TcpListener>,
}

impl Server {
    /// Opens the database (recovering it) and binds the listen address.
    pub async fn bind(config: ServeConfig) -> Result<Server, ServerError> {
        let options = Options {
            sync_every_commit: config.sync_every_commit,
            seal_rows: config.seal_rows,
            wal_roll_size: config.wal_roll_bytes,
            max_unsealed_bytes: config.max_unsealed_bytes,
            max_uncommitted_bytes: config.max_uncommitted_bytes,
            fs: config.fs.clone().unwrap_or_else(quiver_storage::io::os),
            ..Options::default()
        };
        let data_dir = config.data_dir.clone();
        let db = tokio::task::spawn_blocking(move || Database::open(&data_dir, options))
            .await
            .map_err(|e| ServerError::Tool(format!("storage open task failed: {e}")))??;
        let engine = QueryEngine::new(db.clone(), &config.query)
            .map_err(|e| ServerError::Tool(format!("query engine: {e}")))?;
        let listener = TcpListener::bind(config.listen).await?;
        let local = listener.local_addr()?;
        let ilp_listener = match config.ilp_tcp_listen {
            Some(addr) => Some(TcpListener::bind(addr).await?),
            None => None,
        };
        Ok(Server {
            config,
            db,
            engine: Arc::new(engine),
            listener,
            local,
            ilp_listener,
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address line protocol over TCP listens on, if it does.
    pub fn ilp_tcp_addr(&self) -> Option<SocketAddr> {
        self.ilp_listener.as_ref().and_then(|l| l.local_addr().ok())
    }

    /// Serves until `shutdown` resolves: stop accepting, let sessions
    /// finish the frames they have read and send their acks, close storage
    /// (fsync), return.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
        let Server {
            config,
            db,
            engine,
            listener,
            local,
            ilp_listener,
        } = self;
        tracing::info!(listen = %local, data_dir = %config.data_dir.display(), "quiver listening");
        let (stop_tx, stop_rx) = watch::channel(false);
        let tracker = TaskTracker::new();
        tracker.spawn(apply_ttls_periodically(
            engine.clone(),
            db.clone(),
            config.ttl_check_interval,
            stop_rx.clone(),
        ));
        let ilp = LineOptions {
            durable: config.sync_every_commit,
            frame_limits: config.session.frame_limits,
            max_pending_bytes: config.session.max_pending_bytes,
            body_idle_timeout: config.session.deferred_idle_timeout,
            ..config.ilp.clone()
        };
        if let Some(listener) = ilp_listener {
            if let Ok(addr) = listener.local_addr() {
                tracing::info!(listen = %addr, "line protocol over TCP listening");
            }
            tracker.spawn(ilp::tcp::serve(
                listener,
                db.clone(),
                ilp.clone(),
                config.ilp_tcp.clone(),
                stop_rx.clone(),
                tracker.clone(),
            ));
        }
        let state = http::ServerState {
            db: db.clone(),
            engine,
            egress: config.egress.clone(),
            max_message_len: config.max_message_len,
            session: config.session.clone(),
            ilp,
            stop: stop_rx,
            tracker: tracker.clone(),
        };
        tokio::pin!(shutdown);
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        tracker.spawn(http::serve_connection(stream, peer, state.clone()));
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
            }
        }
        tracing::info!("shutting down: no new connections; finishing in-flight frames");
        drop(listener);
        let _ = stop_tx.send(true);
        tracker.close();
        if tokio::time::timeout(config.shutdown_grace, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("connections still open after the grace period; closing anyway");
        }
        tokio::task::spawn_blocking(move || db.close())
            .await
            .map_err(|e| ServerError::Tool(format!("storage close task failed: {e}")))?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Applies the tables' TTLs every `interval` until `stop`, and lets go of
/// segment files drops replaced once queries reading them have ended.
async fn apply_ttls_periodically(
    engine: Arc<QueryEngine>,
    db: Arc<Database>,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(interval.max(Duration::from_millis(10)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticks.tick() => {}
        }
        // Each table's failure is logged; the others go on.
        engine.apply_ttls().await;
        db.remove_unused_segment_files();
    }
}

/// Runs the server until `shutdown` resolves (see [`Server::run`]),
/// printing `quiver listening on ADDR` to stdout once bound (tests and
/// scripts read it).
pub async fn serve(
    config: ServeConfig,
    shutdown: impl Future<Output = ()>,
) -> Result<(), ServerError> {
    let server = Server::bind(config).await?;
    println!("quiver listening on {}", server.local_addr());
    if let Some(addr) = server.ilp_tcp_addr() {
        println!("quiver line protocol over TCP on {addr}");
    }
    server.run(shutdown).await
}
