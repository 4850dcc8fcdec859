//! The connection pool: [`Client`] lends ingest connections ([`Writer`])
//! and, with egress, query connections, from one object shared by every
//! thread.
//!
//! Each lane keeps idle connections (most recently returned lent first),
//! opens new ones up to its maximum, and makes a borrower past the maximum
//! wait up to the acquire timeout for one to come back, then fail with
//! [`ClientError::PoolExhausted`]. A handle goes back on drop unless its
//! connection saw an error that breaks it, or still has frames the server
//! has not acknowledged (an open deferred group among them: another
//! borrower must never commit it or see its acks), or it was
//! [`Writer::discard`]ed; then it is closed, never lent again, and the
//! server rolls back what it had not committed. (The column sender syncs
//! before its connection goes back.) Idle connections past the idle
//! timeout are closed down to the lane's minimum, by a background thread
//! (`pool_reap=auto`) or by [`Client::reap`].
//!
//! No lock is held across network I/O: a slot is counted under the lock,
//! the connection is opened or closed outside it.
//!
//! What it must not do: build or interpret frames (the connections and
//! senders do).

use std::ops::Deref;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::thread;
use std::time::{Duration, Instant};

use crate::conf::{ClientConf, Reap};
use crate::error::{ClientError, Lane as LaneKind, Result};
use crate::ingest::{IngestConnection, Ticket};
use crate::query::{ConnectionState, Query, QueryConnection, ServerDescription};
use crate::sender::Sender;

/// What a lane lends.
trait Pooled: Sized + Send + 'static {
    const LANE: LaneKind;
    fn open(conf: &ClientConf) -> Result<Self>;
    /// Whether it may go back to the idle list as it is.
    fn reusable(&self) -> bool;
    /// Whether an idle one is still worth lending (checked at borrow).
    fn alive(&self) -> bool;
}

impl Pooled for IngestConnection {
    const LANE: LaneKind = LaneKind::Writer;
    fn open(conf: &ClientConf) -> Result<Self> {
        IngestConnection::connect(conf)
    }
    fn reusable(&self) -> bool {
        // Frames not yet acknowledged (an open deferred group among them)
        // must not pass to another borrower, who would see their acks or
        // commit them.
        !self.is_broken() && self.unacked() == 0 && !self.has_foreign_symbols()
    }
    fn alive(&self) -> bool {
        self.is_quiet()
    }
}

impl Pooled for QueryConnection {
    const LANE: LaneKind = LaneKind::Reader;
    fn open(conf: &ClientConf) -> Result<Self> {
        QueryConnection::connect(conf)
    }
    fn reusable(&self) -> bool {
        // Only between queries: a stream dropped mid-result is drained or
        // broken by then.
        self.state() == ConnectionState::Idle
    }
    fn alive(&self) -> bool {
        self.is_quiet()
    }
}

/// A lane's connections: idle ones and how many exist.
struct LaneState<C> {
    /// Idle connections and when each came back, oldest first.
    idle: Vec<(C, Instant)>,
    /// Connections that exist or are being opened (idle and lent too).
    open: usize,
    closed: bool,
}

/// One kind of connection (see the module docs).
struct Lane<C> {
    min: usize,
    max: usize,
    acquire_timeout: Duration,
    idle_timeout: Duration,
    state: Mutex<LaneState<C>>,
    returned: Condvar,
}

impl<C: Pooled> Lane<C> {
    fn new(min: usize, max: usize, conf: &ClientConf) -> Self {
        Lane {
            min,
            max,
            acquire_timeout: conf.pool.acquire_timeout,
            idle_timeout: conf.pool.idle_timeout,
            state: Mutex::new(LaneState {
                idle: Vec::new(),
                open: 0,
                closed: false,
            }),
            returned: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, LaneState<C>> {
        // A panic while holding the lock leaves counts that are still
        // consistent (every change is one statement), so go on.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection that is still alive, or a new one while under
    /// the maximum, or the first to come back within the acquire timeout.
    fn acquire(&self, conf: &ClientConf) -> Result<C> {
        let start = Instant::now();
        let deadline = start + self.acquire_timeout;
        let mut state = self.lock();
        loop {
            if state.closed {
                return Err(ClientError::Closed);
            }
            if let Some((conn, _)) = state.idle.pop() {
                drop(state);
                // Checked outside the lock; a dead one gives its slot back.
                if conn.alive() {
                    return Ok(conn);
                }
                drop(conn);
                self.forget_one();
                state = self.lock();
                continue;
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                // The slot is given back if opening fails or panics.
                let slot = Slot { lane: self };
                let conn = C::open(conf)?;
                std::mem::forget(slot);
                return Ok(conn);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ClientError::PoolExhausted {
                    lane: C::LANE,
                    max: self.max,
                    waited: now - start,
                });
            }
            state = self
                .returned
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }

    /// A slot given up (a connection closed or never opened).
    fn forget_one(&self) {
        let mut state = self.lock();
        state.open -= 1;
        drop(state);
        self.returned.notify_one();
    }

    /// Takes back a lent connection: idle again, or closed if it is not
    /// [`Pooled::reusable`].
    fn release(&self, conn: C) {
        let mut state = self.lock();
        if !conn.reusable() || state.closed {
            state.open -= 1;
            drop(state);
            self.returned.notify_one();
            drop(conn); // closes it, outside the lock
            return;
        }
        state.idle.push((conn, Instant::now()));
        drop(state);
        self.returned.notify_one();
    }

    /// Opens connections up to the minimum (eager start).
    fn fill(&self, conf: &ClientConf) -> Result<()> {
        let mut opened = Vec::new();
        for _ in 0..self.min {
            opened.push(self.acquire(conf)?);
        }
        for conn in opened {
            self.release(conn);
        }
        Ok(())
    }

    /// Closes idle connections idle for longer than the idle timeout,
    /// keeping the minimum open; returns how many it closed.
    fn reap(&self, now: Instant) -> usize {
        let mut state = self.lock();
        let mut expired = Vec::new();
        // Oldest first: the front of `idle`.
        while state.open > self.min
            && state
                .idle
                .first()
                .is_some_and(|(_, since)| now.duration_since(*since) >= self.idle_timeout)
        {
            expired.push(state.idle.remove(0).0);
            state.open -= 1;
        }
        drop(state);
        let n = expired.len();
        drop(expired);
        n
    }

    /// Closes every idle connection and refuses later borrows.
    fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        let idle = std::mem::take(&mut state.idle);
        state.open -= idle.len();
        drop(state);
        self.returned.notify_all();
        drop(idle);
    }

    fn stats(&self) -> LaneStats {
        let state = self.lock();
        LaneStats {
            open: state.open,
            idle: state.idle.len(),
        }
    }
}

/// A counted slot whose connection is being opened: given back unless
/// the open succeeds (then forgotten).
struct Slot<'l, C: Pooled> {
    lane: &'l Lane<C>,
}

impl<C: Pooled> Drop for Slot<'_, C> {
    fn drop(&mut self) {
        self.lane.forget_one();
    }
}

/// How many connections a lane has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneStats {
    /// Connections that exist (idle, lent or being opened).
    pub open: usize,
    /// Of them, idle.
    pub idle: usize,
}

/// Where errors no caller can receive go (see [`Client::on_error`]).
type ErrorHandler = Arc<dyn Fn(&ClientError) + Send + Sync>;

/// What every handle and the reaper share.
struct Shared {
    conf: ClientConf,
    writers: Lane<IngestConnection>,
    readers: Lane<QueryConnection>,
    on_error: Mutex<Option<ErrorHandler>>,
}

/// A pool of connections to a QWP server (see the module docs). Cheap to
/// share: wrap it in an `Arc` or lend `&Client` to threads.
pub struct Client {
    shared: Arc<Shared>,
    /// Dropped with the client: stops the reaper.
    _stop_reaper: Option<mpsc::Sender<()>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("endpoints", &self.shared.conf.endpoints)
            .field("writers", &self.shared.writers.stats())
            .field("readers", &self.shared.readers.stats())
            .finish()
    }
}

impl Client {
    /// Starts a pool: opens the minimum of writers now (unless
    /// `lazy_connect=on`), so a wrong address or refused credentials fail
    /// here, and starts the reaper when `pool_reap=auto`. Query
    /// connections open at the first query (a client that only ingests
    /// never opens one); idle ones are reaped down to `query_pool_min`.
    pub fn connect(conf: ClientConf) -> Result<Client> {
        let writers = Lane::new(conf.pool.sender_min, conf.pool.sender_max, &conf);
        let readers = Lane::new(conf.pool.query_min, conf.pool.query_max, &conf);
        let shared = Arc::new(Shared {
            conf,
            writers,
            readers,
            on_error: Mutex::new(None),
        });
        if !shared.conf.pool.lazy_connect {
            shared.writers.fill(&shared.conf)?;
        }
        let stop = match shared.conf.pool.reap {
            Reap::Auto => Some(start_reaper(Arc::downgrade(&shared))),
            Reap::Manual => None,
        };
        Ok(Client {
            shared,
            _stop_reaper: stop,
        })
    }

    /// [`Client::connect`] with a connection string (`ws::addr=...;`).
    pub fn from_conf(conf: &str) -> Result<Client> {
        Client::connect(ClientConf::parse(conf)?)
    }

    /// The settings the pool runs with.
    pub fn conf(&self) -> &ClientConf {
        &self.shared.conf
    }

    /// Borrows an ingest connection (see the module docs for waiting).
    pub fn writer(&self) -> Result<Writer> {
        let conn = self.shared.writers.acquire(&self.shared.conf)?;
        Ok(Writer {
            conn: Some(conn),
            shared: Arc::clone(&self.shared),
        })
    }

    /// Borrows a query connection (see the module docs for waiting);
    /// [`Client::query`] borrows one per statement.
    pub(crate) fn reader(&self) -> Result<Reader> {
        let conn = self.shared.readers.acquire(&self.shared.conf)?;
        Ok(Reader {
            conn: Some(conn),
            shared: Arc::clone(&self.shared),
        })
    }

    /// A statement to run on a query connection: bind parameters, then
    /// [`Query::fetch`] its result as Arrow batches or [`Query::execute`]
    /// it for its effect.
    ///
    /// ```no_run
    /// use arrow_array::RecordBatchReader;
    /// use quiver_client::Client;
    ///
    /// let client = Client::from_conf("ws::addr=127.0.0.1:9000;")?;
    /// let mut rows = client
    ///     .query("SELECT sym, px FROM trades WHERE px > $1 AND sym = $2")
    ///     .bind(100.0)
    ///     .bind("AAPL")
    ///     .fetch()?;
    /// println!("{:?}", rows.schema());
    /// while let Some(batch) = rows.next_batch()? {
    ///     println!("{} rows", batch.num_rows());
    /// }
    /// # Ok::<(), quiver_client::ClientError>(())
    /// ```
    pub fn query(&self, sql: impl Into<String>) -> Query<'_> {
        Query::new(self, sql.into())
    }

    /// Borrows an ingest connection as a column-major sender
    /// ([`Sender`]).
    pub fn sender(&self) -> Result<Sender> {
        Ok(Sender::new(self.writer()?))
    }

    /// Sends one Arrow `RecordBatch` and commits it at `ack`'s level, on a
    /// borrowed connection (see [`crate::ArrowOptions`]). All of it or
    /// nothing: on an error nothing of the batch is committed.
    pub fn send_batch(
        &self,
        batch: &arrow_array::RecordBatch,
        options: &crate::ArrowOptions,
        ack: crate::Ack,
    ) -> Result<()> {
        let mut sender = self.sender()?;
        let sent = sender
            .flush_batch(batch, options)
            .and_then(|()| sender.sync(ack));
        if sent.is_err() {
            sender.discard();
        }
        sent
    }

    /// Calls `handler` with errors no caller can receive: a sender
    /// dropped with rows it could not commit ([`ClientError::Unsynced`]).
    /// They are also logged (`tracing`, target `quiver_client`).
    pub fn on_error(&self, handler: impl Fn(&ClientError) + Send + Sync + 'static) {
        let mut slot = self
            .shared
            .on_error
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *slot = Some(Arc::new(handler));
    }

    /// Closes idle connections past the idle timeout now (down to each
    /// lane's minimum); returns how many. For `pool_reap=manual`.
    pub fn reap(&self) -> usize {
        let now = Instant::now();
        self.shared.writers.reap(now) + self.shared.readers.reap(now)
    }

    /// The writer lane's counts.
    pub fn writer_stats(&self) -> LaneStats {
        self.shared.writers.stats()
    }

    /// The reader lane's counts.
    pub fn reader_stats(&self) -> LaneStats {
        self.shared.readers.stats()
    }

    /// Closes idle connections; borrowing fails from now on and lent
    /// connections close when they come back.
    pub fn close(&self) {
        self.shared.writers.close();
        self.shared.readers.close();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.close();
    }
}

/// A reaper thread that lives until the client is dropped.
fn start_reaper(shared: Weak<Shared>) -> mpsc::Sender<()> {
    let (stop, stopped) = mpsc::channel::<()>();
    let tick = shared.upgrade().map_or(Duration::from_secs(1), |s| {
        (s.conf.pool.idle_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    });
    let spawned = thread::Builder::new()
        .name("quiver-client-reaper".into())
        .spawn(move || {
            while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                let now = Instant::now();
                shared.writers.reap(now);
                shared.readers.reap(now);
            }
        });
    // Without a thread, idle connections stay until `reap` or close.
    drop(spawned);
    stop
}

/// A borrowed ingest connection; goes back to the pool on drop (closed
/// instead if an error broke it).
pub struct Writer {
    conn: Option<IngestConnection>,
    shared: Arc<Shared>,
}

impl Writer {
    /// Closes the connection instead of returning it (what it sent and did
    /// not commit is rolled back by the server).
    pub fn discard(mut self) {
        if let Some(conn) = self.conn.take() {
            drop(conn);
            self.shared.writers.forget_one();
        }
    }
}

/// Hands errors to the client's error handler (see [`Client::on_error`]).
pub(crate) struct Reporter(Arc<Shared>);

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reporter")
    }
}

impl Reporter {
    /// Hands `error` to the handler, if one is set.
    pub(crate) fn report(&self, error: &ClientError) {
        let handler = self
            .0
            .on_error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(handler) = handler {
            handler(error);
        }
    }
}

impl Writer {
    /// Where this writer's client reports errors.
    pub(crate) fn reporter(&self) -> Reporter {
        Reporter(Arc::clone(&self.shared))
    }

    pub(crate) fn conn(&mut self) -> &mut IngestConnection {
        // Present until drop or discard, which consume the handle.
        self.conn.as_mut().expect("a writer holds its connection")
    }

    /// [`IngestConnection::send`].
    pub fn send(&mut self, frame: Vec<u8>) -> Result<Ticket> {
        self.conn().send(frame)
    }

    /// [`IngestConnection::wait_acked`].
    pub fn wait_acked(&mut self, ticket: Ticket) -> Result<()> {
        self.conn().wait_acked(ticket)
    }

    /// [`IngestConnection::wait_durable`].
    pub fn wait_durable(&mut self) -> Result<()> {
        self.conn().wait_durable()
    }
}

/// Read access to the connection's state; the connection itself stays
/// in the handle (it cannot be swapped for another pool's).
impl Deref for Writer {
    type Target = IngestConnection;
    fn deref(&self) -> &IngestConnection {
        self.conn.as_ref().expect("a writer holds its connection")
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.shared.writers.release(conn);
        }
    }
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").field("conn", &self.conn).finish()
    }
}

/// A borrowed query connection (held by a [`crate::QueryStream`]); goes
/// back to the pool on drop, or is closed if it is broken or a result is
/// still streaming on it.
pub(crate) struct Reader {
    conn: Option<QueryConnection>,
    shared: Arc<Shared>,
}

impl Reader {
    pub(crate) fn conn(&mut self) -> &mut QueryConnection {
        // Present until drop, which consumes the handle.
        self.conn.as_mut().expect("a reader holds its connection")
    }

    /// What the server said about itself when the connection opened.
    pub(crate) fn server(&self) -> &ServerDescription {
        self.conn
            .as_ref()
            .expect("a reader holds its connection")
            .server()
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.shared.readers.release(conn);
        }
    }
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader").field("conn", &self.conn).finish()
    }
}
