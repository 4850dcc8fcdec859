//! A query result as an async [`Stream`], for callers on an async runtime.
//!
//! [`Query::fetch`](super::Query::fetch) itself blocks (borrowing a
//! connection, sending the query, reading the first batch): on a runtime,
//! call it where blocking is allowed (`spawn_blocking`), then poll the
//! stream anywhere. The connection is blocking, so a worker thread reads
//! the result and
//! hands batches over through a slot of [`AHEAD`] batches: the worker
//! stops reading (and the server, through TCP or credit, stops sending)
//! while the slot is full, so memory stays bounded however slow the
//! consumer. The stream needs no particular runtime: polling never
//! blocks, and the worker wakes the task when a batch is ready. Dropping
//! the stream tells the worker to stop; it drops the [`QueryStream`],
//! which cancels the query as a dropped blocking stream does.
//!
//! What it must not do: read frames itself (the [`QueryStream`] does).

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::thread;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use futures_core::Stream;

use super::QueryStream;
use crate::error::{ClientError, Result};

/// Batches the worker may read ahead of the consumer.
const AHEAD: usize = 2;

/// What the worker and the stream share.
#[derive(Default)]
struct Slot {
    batches: VecDeque<Result<RecordBatch>>,
    /// The worker has nothing more to give.
    finished: bool,
    /// The stream was dropped: the worker should stop.
    abandoned: bool,
    waker: Option<Waker>,
}

struct Shared {
    slot: Mutex<Slot>,
    /// Signalled when the consumer takes a batch or leaves.
    taken: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Slot> {
        // Every change under the lock is a single assignment or push, so a
        // poisoned slot is still consistent.
        self.slot.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A query result as an async stream of record batches (see the module
/// docs). Made by [`QueryStream::into_async`].
pub struct AsyncQueryStream {
    shared: Arc<Shared>,
    schema: SchemaRef,
}

impl std::fmt::Debug for AsyncQueryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncQueryStream")
            .field("schema", &self.schema)
            .finish()
    }
}

impl QueryStream {
    /// This stream as an async [`Stream`], read by a worker thread (see
    /// [`AsyncQueryStream`]).
    pub fn into_async(self) -> Result<AsyncQueryStream> {
        let schema = self.schema();
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot::default()),
            taken: Condvar::new(),
        });
        let worker = Arc::clone(&shared);
        thread::Builder::new()
            .name("quiver-client-query".into())
            .spawn(move || read_ahead(self, &worker))
            .map_err(|e| ClientError::Usage(format!("cannot start the query's reader: {e}")))?;
        Ok(AsyncQueryStream { shared, schema })
    }
}

/// Ends the stream for the consumer however the worker ends (a panic
/// included: the consumer then sees an error, not an endless wait).
struct Finish<'s>(&'s Shared);

impl Drop for Finish<'_> {
    fn drop(&mut self) {
        let mut slot = self.0.lock();
        if !slot.finished && thread::panicking() {
            slot.batches.push_back(Err(ClientError::Usage(
                "the query's reader thread panicked".into(),
            )));
        }
        slot.finished = true;
        let waker = slot.waker.take();
        drop(slot);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

/// The worker: reads batches into the slot while the stream wants them.
fn read_ahead(mut stream: QueryStream, shared: &Shared) {
    let _finish = Finish(shared);
    loop {
        {
            let mut slot = shared.lock();
            while slot.batches.len() >= AHEAD && !slot.abandoned {
                slot = shared.taken.wait(slot).unwrap_or_else(|p| p.into_inner());
            }
            if slot.abandoned {
                return; // dropping `stream` cancels the query
            }
        }
        let next = stream.next_batch();
        let end = !matches!(next, Ok(Some(_)));
        let mut slot = shared.lock();
        match next {
            Ok(Some(batch)) => slot.batches.push_back(Ok(batch)),
            Ok(None) => {}
            Err(e) => slot.batches.push_back(Err(e)),
        }
        slot.finished = end;
        // Woken outside the lock: an executor may poll from `wake`.
        let waker = slot.waker.take();
        drop(slot);
        if let Some(waker) = waker {
            waker.wake();
        }
        if end {
            return;
        }
    }
}

impl AsyncQueryStream {
    /// The result's Arrow schema.
    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
}

impl Stream for AsyncQueryStream {
    type Item = Result<RecordBatch>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let mut slot = self.shared.lock();
        if let Some(item) = slot.batches.pop_front() {
            drop(slot);
            self.shared.taken.notify_one();
            return Poll::Ready(Some(item));
        }
        if slot.finished {
            return Poll::Ready(None);
        }
        slot.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

impl Drop for AsyncQueryStream {
    fn drop(&mut self) {
        self.shared.lock().abandoned = true;
        self.shared.taken.notify_one();
    }
}
