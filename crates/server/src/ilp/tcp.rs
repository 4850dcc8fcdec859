//! Line protocol over plain TCP (QuestDB's port 9009; off unless
//! `--ilp-tcp-listen` is given).
//!
//! A connection sends newline-delimited lines and gets no answer. Its lines
//! are committed in groups: when [`TcpOptions::commit_interval`] has passed
//! since the group's first line, when a group reaches
//! [`super::LineOptions::step_rows`] rows, when the client closes, and
//! when the server stops. A line that cannot be written (malformed, a type
//! conflict, a limit) is logged with its number and the connection is
//! closed, as QuestDB does; the lines of its uncommitted group are rolled
//! back with it (the log says how many), committed groups stay, and no
//! other connection is affected. A connection that sends nothing for
//! [`TcpOptions::idle_timeout`] is closed after its group is committed.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quiver_ilp::Precision;
use quiver_storage::Database;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::{LineOptions, LineWriter, WriteError};

/// TCP settings.
#[derive(Debug, Clone)]
pub struct TcpOptions {
    /// A group is committed this long after its first line at the latest.
    pub commit_interval: Duration,
    /// A connection quiet for this long is closed.
    pub idle_timeout: Duration,
    /// Bytes read from the socket at a time.
    pub read_bytes: usize,
}

impl Default for TcpOptions {
    fn default() -> Self {
        TcpOptions {
            commit_interval: Duration::from_millis(500),
            idle_timeout: Duration::from_secs(300),
            read_bytes: 64 << 10,
        }
    }
}

/// Accepts connections on `listener` until `stop`.
pub async fn serve(
    listener: TcpListener,
    db: Arc<Database>,
    lines: LineOptions,
    tcp: TcpOptions,
    mut stop: watch::Receiver<bool>,
    tracker: TaskTracker,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    tracing::debug!(%peer, "line protocol TCP connection");
                    let connection = Connection {
                        writer: LineWriter::new(db.clone(), lines.clone(), Precision::Nanos),
                        db: db.clone(),
                        options: tcp.clone(),
                        durable: lines.durable,
                        step_rows: lines.step_rows,
                        peer,
                        committed_rows: 0,
                    };
                    tracker.spawn(connection.run(stream, stop.clone()));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "line protocol TCP accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
}

/// One TCP connection's state.
struct Connection {
    writer: LineWriter,
    db: Arc<Database>,
    options: TcpOptions,
    durable: bool,
    step_rows: usize,
    peer: SocketAddr,
    committed_rows: usize,
}

/// What woke the connection.
enum Event {
    Read(std::io::Result<usize>),
    CommitDue,
    Idle,
    Stop,
}

impl Connection {
    async fn run(mut self, mut stream: TcpStream, mut stop: watch::Receiver<bool>) {
        let mut buf = vec![0u8; self.options.read_bytes];
        // When the open group must be committed, if one is open.
        let mut commit_at: Option<Instant> = None;
        let mut last_read = Instant::now();
        let outcome = loop {
            let idle_at = last_read + self.options.idle_timeout;
            let event = tokio::select! {
                biased;
                _ = stop.changed() => Event::Stop,
                _ = sleep_until(commit_at), if commit_at.is_some() => Event::CommitDue,
                _ = tokio::time::sleep_until(idle_at) => Event::Idle,
                n = stream.read(&mut buf) => Event::Read(n),
            };
            match event {
                Event::Read(Ok(0)) => {
                    break self.commit(true).await.map(|()| "closed by the client");
                }
                Event::Read(Ok(n)) => {
                    last_read = Instant::now();
                    if self.db.over_memory_limit() {
                        self.db.memory_available().await;
                    }
                    if let Err(e) = self.writer.feed(&buf[..n]).await {
                        break Err(e);
                    }
                    if self.writer.has_pending() && commit_at.is_none() {
                        commit_at = Some(Instant::now() + self.options.commit_interval);
                    }
                    if self.writer.rows() >= self.step_rows {
                        if let Err(e) = self.commit(false).await {
                            break Err(e);
                        }
                        commit_at = None;
                    }
                }
                Event::Read(Err(e)) => {
                    tracing::debug!(peer = %self.peer, error = %e, "line protocol TCP read failed");
                    break self.commit(false).await.map(|()| "the socket failed");
                }
                Event::CommitDue => {
                    if let Err(e) = self.commit(false).await {
                        break Err(e);
                    }
                    commit_at = None;
                }
                Event::Idle => break self.commit(false).await.map(|()| "idle"),
                Event::Stop => break self.commit(false).await.map(|()| "the server is stopping"),
            }
        };
        match outcome {
            Ok(why) => tracing::debug!(
                peer = %self.peer,
                rows = self.committed_rows,
                why,
                "line protocol TCP connection ended"
            ),
            Err(e) => {
                let dropped = self.writer.rows();
                self.writer.clear();
                tracing::warn!(
                    peer = %self.peer,
                    error = %e,
                    committed_rows = self.committed_rows,
                    rolled_back_rows = dropped,
                    "closing a line protocol TCP connection: a line cannot be written; its \
                     uncommitted rows are rolled back"
                );
            }
        }
    }

    /// Commits every line read so far; a line cut by the end of the input
    /// so far waits for the rest unless this is the `last` commit.
    async fn commit(&mut self, last: bool) -> Result<(), WriteError> {
        let txn = match last {
            true => self.writer.finish().await?,
            false => self.writer.take().await?,
        };
        if txn.is_empty() {
            return Ok(());
        }
        let rows = txn.row_count();
        super::commit(&self.db, txn, self.durable).await?;
        self.committed_rows += rows;
        Ok(())
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
