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
use quiver_storage::{Database, Table, Transaction};

use super::to_stored::to_stored;
use crate::error::{QueryError, QueryErrorKind};

/// Rows held before a chunk of a large INSERT commits.
pub const CHUNK_BYTES: usize = 64 << 20;
/// Table blocks (source batches) held before a chunk commits.
const CHUNK_PARTS: usize = 256;

fn invalid(message: impl Into<String>) -> QueryError {
    QueryError::new(QueryErrorKind::Invalid, message)
}

/// What an INSERT writes: the table and which of its columns, in the
/// order the source produces values.
pub struct InsertTarget {
    table: Arc<Table>,
    columns: Vec<usize>,
}

impl InsertTarget {
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
        Ok(InsertTarget { table, columns })
    }

    /// Converts one source batch to the table's stored columns.
    fn convert(&self, batch: &RecordBatch) -> Result<RecordBatch, QueryError> {
        let schema = self.table.schema();
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

/// Streams `rows` into `target`; returns the rows inserted.
pub async fn insert_rows(
    db: &Database,
    target: &InsertTarget,
    mut rows: datafusion::physical_plan::SendableRecordBatchStream,
) -> Result<u64, QueryError> {
    let mut txn = Transaction::new();
    let mut inserted = 0u64;
    let mut pending = 0u64;
    while let Some(batch) = rows.next().await {
        let batch = target.convert(&batch?)?;
        pending += batch.num_rows() as u64;
        txn.add(Arc::clone(&target.table), batch)?;
        if txn.memory_size() >= CHUNK_BYTES || txn.part_count() >= CHUNK_PARTS {
            commit(db, std::mem::take(&mut txn)).await?;
            inserted += std::mem::take(&mut pending);
        }
    }
    if !txn.is_empty() {
        commit(db, txn).await?;
    }
    Ok(inserted + pending)
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
