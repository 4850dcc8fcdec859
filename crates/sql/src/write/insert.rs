//! `INSERT INTO t [(columns)] VALUES ... | SELECT ...`: the source rows are
//! planned and streamed like any query (binds included), converted to the
//! target columns' stored types ([`to_stored`]) and committed through the
//! same WAL and commit path as ingest, durably, before the statement
//! answers.
//!
//! A source of at most [`CHUNK_BYTES`] of rows commits as one
//! transaction: all of it or none. A larger `INSERT ... SELECT` commits in
//! chunks of about that size as it streams (memory stays bounded); if it
//! fails part way, the chunks committed before stay, as with QuestDB's
//! batched `INSERT ... SELECT`.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::datatypes::Schema;
use datafusion::sql::sqlparser::ast::{Insert, TableObject};
use futures_util::StreamExt;
use quiver_storage::{Database, Table, TableSchema, Transaction};

use super::to_stored::to_stored;
use crate::error::{QueryError, QueryErrorKind};

/// Rows held before a chunk of a large INSERT commits.
pub const CHUNK_BYTES: usize = 64 << 20;
/// Table blocks (of up to [`PART_ROWS`] rows) held before a chunk commits.
const CHUNK_PARTS: usize = 256;

fn invalid(message: impl Into<String>) -> QueryError {
    QueryError::new(QueryErrorKind::Invalid, message)
}

/// What an INSERT writes: the table and which of its columns (of the
/// schema it was planned with, so a column change meanwhile cannot shift
/// them), in the order the source produces values.
pub struct InsertTarget {
    table: Arc<Table>,
    schema: Arc<TableSchema>,
    columns: Vec<usize>,
}

impl InsertTarget {
    /// Every column of `table`, in order.
    pub fn all_columns(table: Arc<Table>) -> Self {
        let schema = table.schema();
        let columns = (0..schema.columns.len()).collect();
        InsertTarget {
            table,
            schema,
            columns,
        }
    }

    /// Resolves the table and column list of `insert`.
    pub fn resolve(db: &Database, insert: &Insert) -> Result<Self, QueryError> {
        let name = match &insert.table {
            TableObject::TableName(n) => {
                n.0.last()
                    .and_then(|p| p.as_ident())
                    .map(|i| i.value.clone())
                    .ok_or_else(|| invalid("INSERT needs a table name"))?
            }
            other => {
                return Err(QueryError::new(
                    QueryErrorKind::Unsupported,
                    format!("INSERT INTO {other} is not supported: name a table"),
                ));
            }
        };
        let table = db
            .table(&name)
            .ok_or_else(|| invalid(format!("table does not exist [table={name}]")))?;
        let schema = table.schema();
        let columns = if insert.columns.is_empty() {
            (0..schema.columns.len()).collect()
        } else {
            let mut out: Vec<usize> = Vec::with_capacity(insert.columns.len());
            for c in &insert.columns {
                let column = c.to_string().trim_matches('"').to_string();
                let i = schema.column_index(&column).ok_or_else(|| {
                    invalid(format!(
                        "column does not exist [table={}, column={column}]",
                        schema.name
                    ))
                })?;
                if out.contains(&i) {
                    return Err(invalid(format!(
                        "column {column} is listed twice [table={}]",
                        schema.name
                    )));
                }
                out.push(i);
            }
            out
        };
        if let Some(ts) = schema.designated_timestamp
            && !columns.contains(&ts)
        {
            return Err(invalid(format!(
                "the designated timestamp {} needs a value [table={}]",
                schema.columns[ts].name, schema.name
            )));
        }
        Ok(InsertTarget {
            table,
            schema,
            columns,
        })
    }

    /// Converts one source batch to the table's stored columns.
    fn convert(&self, batch: &RecordBatch) -> Result<RecordBatch, QueryError> {
        let schema = &self.schema;
        if batch.num_columns() != self.columns.len() {
            return Err(invalid(format!(
                "INSERT names {} columns of {} but the source gives {} values per row",
                self.columns.len(),
                schema.name,
                batch.num_columns()
            )));
        }
        let mut fields = Vec::with_capacity(self.columns.len());
        let mut arrays: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (array, &i) in batch.columns().iter().zip(&self.columns) {
            let column = &schema.columns[i];
            let stored = to_stored(array, column, &self.table)?;
            if Some(i) == schema.designated_timestamp && stored.null_count() > 0 {
                return Err(invalid(format!(
                    "the designated timestamp {} cannot be NULL [table={}]",
                    column.name, schema.name
                )));
            }
            fields.push(column.stored_field());
            arrays.push(stored);
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
            .map_err(|e| QueryError::new(QueryErrorKind::Internal, e.to_string()))
    }
}

/// Rows joined into one table block before it joins the transaction.
const PART_ROWS: usize = 65_536;

/// Streams `rows` into `target`; returns the rows inserted.
///
/// Rows held before their commit count against the server-wide budget for
/// uncommitted rows ([`Database::reserve_uncommitted`]), as ingest's do:
/// past it the statement fails with a limit error instead of growing
/// memory. Small source batches are joined into blocks of
/// [`PART_ROWS`] rows, so a statement commits in one transaction up to
/// [`CHUNK_BYTES`] whatever the size of its batches.
pub async fn insert_rows(
    db: &Database,
    target: &InsertTarget,
    mut rows: datafusion::physical_plan::SendableRecordBatchStream,
) -> Result<u64, QueryError> {
    let busy = |e: quiver_storage::StorageError| {
        QueryError::new(
            QueryErrorKind::Limit,
            format!("the server holds as many uncommitted rows as it may ({e}); retry later"),
        )
    };
    let mut reservation = db.reserve_uncommitted(0).map_err(busy)?;
    let mut txn = Transaction::new();
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0usize;
    let mut inserted = 0u64;
    let mut uncommitted = 0u64;
    loop {
        let next = rows.next().await;
        let done = next.is_none();
        if let Some(batch) = next {
            let batch = target.convert(&batch?)?;
            reservation
                .grow(batch.get_array_memory_size())
                .map_err(busy)?;
            pending_rows += batch.num_rows();
            uncommitted += batch.num_rows() as u64;
            pending.push(batch);
        }
        if !pending.is_empty() && (done || pending_rows >= PART_ROWS) {
            let block = match pending.len() {
                1 => pending.remove(0),
                _ => arrow::compute::concat_batches(&pending[0].schema(), &pending)
                    .map_err(|e| QueryError::new(QueryErrorKind::Internal, e.to_string()))?,
            };
            pending.clear();
            pending_rows = 0;
            txn.add(Arc::clone(&target.table), block)?;
        }
        let full = txn.memory_size() >= CHUNK_BYTES || txn.part_count() >= CHUNK_PARTS;
        if !txn.is_empty() && (done || full) {
            commit(db, std::mem::take(&mut txn)).await?;
            inserted += std::mem::take(&mut uncommitted);
            // The committed rows are the database's now.
            reservation = db.reserve_uncommitted(0).map_err(busy)?;
        }
        if done {
            return Ok(inserted);
        }
    }
}

/// Commits `txn` and waits until it is durable.
async fn commit(db: &Database, txn: Transaction) -> Result<(), QueryError> {
    db.memory_available().await;
    let receipt = db.commit(txn, true);
    let closed = || QueryError::new(QueryErrorKind::Internal, "the database closed");
    receipt.committed.await.map_err(|_| closed())??;
    if let Some(durable) = receipt.durable {
        durable.await.map_err(|_| closed())??;
    }
    Ok(())
}
