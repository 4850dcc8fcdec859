//! Durability of the WAL: the syncer thread runs the fsyncs, coalescing
//! what piles up while one runs (group commit), and answers whoever waits
//! for an lsn to be durable: commits that asked for durable acks, `sync()`,
//! and seals (a manifest may list segments only once the WAL records of
//! their rows are durable).
//!
//! The committer hands over, after each group it writes, what a sync of the
//! log so far must cover ([`SyncJob`]); nobody asks the committer for a
//! sync, so the sealer and the committer do not call each other.
//!
//! A failed fsync is final (PostgreSQL's lesson: the kernel may have dropped
//! the dirty pages, and a later fsync can succeed without them): the
//! database is poisoned, every waiter and every later one gets an error,
//! and nothing is ever reported durable again.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

use tokio::sync::oneshot;

use crate::error::{Result, StorageError};
use crate::wal::SyncJob;

#[derive(Default)]
struct State {
    /// What the next sync must cover (every job handed over since the last
    /// sync, merged).
    pending: Option<SyncJob>,
    durable_lsn: u64,
    /// The highest lsn anyone waits for (or `sync_every_commit` asked to
    /// sync).
    wanted: u64,
    /// Commits and `sync()` calls waiting for an lsn.
    waiters: Vec<(u64, oneshot::Sender<Result<()>>)>,
    /// The syncer is running a job.
    in_flight: bool,
    /// Why syncs stopped (a failed fsync, or the database was poisoned).
    failed: Option<String>,
    closing: bool,
}

/// See the module docs.
pub(super) struct Durability {
    state: Mutex<State>,
    /// Wakes the syncer thread.
    work: Condvar,
    /// Wakes blocking waiters.
    done: Condvar,
    /// `state.durable_lsn`, readable without the lock (written into record
    /// headers as a claim recovery relies on).
    durable: AtomicU64,
}

impl std::fmt::Debug for Durability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Durability")
            .field("durable_lsn", &self.durable_lsn())
            .finish()
    }
}

impl Durability {
    /// Everything through `durable_lsn` is durable (recovery synced it).
    pub(super) fn new(durable_lsn: u64) -> Self {
        Durability {
            state: Mutex::new(State {
                durable_lsn,
                ..State::default()
            }),
            work: Condvar::new(),
            done: Condvar::new(),
            durable: AtomicU64::new(durable_lsn),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Every lsn through this one is fsync'd.
    pub(super) fn durable_lsn(&self) -> u64 {
        self.durable.load(Ordering::Acquire)
    }

    /// The committer wrote through `job.through_lsn`; `sync_now` asks for a
    /// sync even if nobody waits (`sync_every_commit`).
    pub(super) fn written(&self, job: SyncJob, sync_now: bool) {
        let mut s = self.lock();
        if sync_now {
            s.wanted = s.wanted.max(job.through_lsn);
        }
        match &mut s.pending {
            Some(p) => p.merge(job),
            None => s.pending = Some(job),
        }
        if s.wanted > s.durable_lsn {
            self.work.notify_one();
        }
    }

    /// Answers `reply` once `lsn` is durable (at once if it is, or with an
    /// error if syncs stopped).
    pub(super) fn wait_for(&self, lsn: u64, reply: oneshot::Sender<Result<()>>) {
        let mut s = self.lock();
        if let Some(reason) = &s.failed {
            let _ = reply.send(Err(StorageError::Poisoned(reason.clone())));
        } else if lsn <= s.durable_lsn {
            let _ = reply.send(Ok(()));
        } else {
            s.wanted = s.wanted.max(lsn);
            s.waiters.push((lsn, reply));
            self.work.notify_one();
        }
    }

    /// Blocks until `lsn` is durable.
    pub(super) fn wait_blocking(&self, lsn: u64) -> Result<()> {
        let mut s = self.lock();
        s.wanted = s.wanted.max(lsn);
        self.work.notify_one();
        loop {
            if let Some(reason) = &s.failed {
                return Err(StorageError::Poisoned(reason.clone()));
            }
            if lsn <= s.durable_lsn {
                return Ok(());
            }
            if s.closing && s.pending.is_none() && !s.in_flight {
                return Err(StorageError::Closed);
            }
            s = self.done.wait(s).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Stops syncs for good: every waiter, now and later, gets an error.
    pub(super) fn fail(&self, reason: &str) {
        let mut s = self.lock();
        if s.failed.is_none() {
            s.failed = Some(reason.to_string());
        }
        let err = || StorageError::Poisoned(reason.to_string());
        for (_, r) in s.waiters.drain(..) {
            let _ = r.send(Err(err()));
        }
        s.pending = None;
        self.work.notify_all();
        self.done.notify_all();
    }

    /// Asks the syncer thread to make everything written durable and stop.
    pub(super) fn close(&self) {
        let mut s = self.lock();
        s.closing = true;
        self.work.notify_all();
    }

    /// The syncer thread: runs syncs while anyone waits, until closed.
    /// `on_failure` poisons the database (which calls [`Self::fail`]).
    pub(super) fn run(&self, on_failure: impl Fn(&StorageError)) {
        loop {
            let job = {
                let mut s = self.lock();
                loop {
                    if s.failed.is_some() {
                        if s.closing {
                            return;
                        }
                    } else if s.pending.is_some() && (s.wanted > s.durable_lsn || s.closing) {
                        break;
                    } else if s.closing {
                        self.done.notify_all();
                        return;
                    }
                    s = self.work.wait(s).unwrap_or_else(|p| p.into_inner());
                }
                s.in_flight = true;
                s.pending.take().expect("checked above")
            };
            // A panic in the fsyncs (a bug) is a failed sync, not a dead
            // thread that every durable waiter would wait on forever.
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run()))
                .unwrap_or_else(|_| {
                    Err(StorageError::Poisoned(
                        "the WAL sync failed unexpectedly (a bug)".into(),
                    ))
                });
            let mut s = self.lock();
            s.in_flight = false;
            match result {
                Ok(()) if s.failed.is_none() => {
                    s.durable_lsn = s.durable_lsn.max(job.through_lsn);
                    self.durable.store(s.durable_lsn, Ordering::Release);
                    let durable = s.durable_lsn;
                    let (ready, waiting): (Vec<_>, Vec<_>) =
                        s.waiters.drain(..).partition(|(lsn, _)| *lsn <= durable);
                    s.waiters = waiting;
                    drop(s);
                    for (_, r) in ready {
                        let _ = r.send(Ok(()));
                    }
                    self.done.notify_all();
                }
                // Poisoned meanwhile: the sync proves nothing.
                Ok(()) => {
                    drop(s);
                    self.done.notify_all();
                }
                Err(e) => {
                    drop(s);
                    tracing::error!(error = %e, "WAL fsync failed; what it covered is treated as lost");
                    on_failure(&e);
                }
            }
        }
    }
}
