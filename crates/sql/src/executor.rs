//! Where queries run: a tokio runtime of their own, so a CPU-heavy query
//! (a large join, an aggregate over millions of rows) never holds the
//! threads that serve sockets and ingest, and the caller, awaiting only a
//! channel, can always time out or cancel.
//!
//! [`QueryStream`] is the caller's end: a bounded channel of batches from
//! the task that pulls the DataFusion stream. Dropping it aborts that task
//! (DataFusion's operators then drop their work at their next yield, which
//! the engine's plans make frequent; see `cooperative`).

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use futures_util::Stream;
use tokio::runtime::{Handle, Runtime};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::error::{QueryError, QueryErrorKind};

/// The query runtime. Dropping it stops its threads without waiting.
#[derive(Debug)]
pub struct QueryExecutor {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl QueryExecutor {
    /// A runtime with `threads` worker threads named `quiver-query`.
    pub fn new(threads: usize) -> Result<Self, QueryError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("quiver-query")
            .enable_all()
            .build()
            .map_err(|e| {
                QueryError::new(
                    QueryErrorKind::Internal,
                    format!("cannot start the query runtime: {e}"),
                )
            })?;
        let handle = runtime.handle().clone();
        Ok(QueryExecutor {
            runtime: Some(runtime),
            handle,
        })
    }

    /// Runs `task` on the query runtime.
    pub fn spawn<F>(&self, task: F) -> JoinHandle<()>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.handle.spawn(task)
    }
}

impl Drop for QueryExecutor {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            // Dropping a runtime inside another one's context panics; its
            // tasks are aborted either way.
            rt.shutdown_background();
        }
    }
}

/// What the query task sends.
pub(crate) enum Item {
    /// The result's schema, first.
    Schema(SchemaRef),
    /// Rows.
    Batch(RecordBatch),
    /// A statement without rows finished (instead of a schema).
    Done {
        kind: crate::engine::StatementKind,
        rows: u64,
    },
}

/// Batches of one query, produced on the query runtime.
pub struct QueryStream {
    schema: SchemaRef,
    rx: mpsc::Receiver<Result<Item, QueryError>>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for QueryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryStream")
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

impl QueryStream {
    pub(crate) fn new(
        schema: SchemaRef,
        rx: mpsc::Receiver<Result<Item, QueryError>>,
        task: JoinHandle<()>,
    ) -> Self {
        QueryStream { schema, rx, task }
    }

    /// The result's schema.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }
}

impl Stream for QueryStream {
    type Item = Result<RecordBatch, QueryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(Ok(Item::Batch(b)))) => Poll::Ready(Some(Ok(b))),
            Poll::Ready(Some(Ok(Item::Schema(_) | Item::Done { .. }))) => Poll::Ready(Some(Err(
                QueryError::new(QueryErrorKind::Internal, "query task sent its schema twice"),
            ))),
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for QueryStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}
