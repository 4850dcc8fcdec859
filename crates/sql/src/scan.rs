//! A stored table as DataFusion sees it: [`SnapshotTable`] is a
//! `TableProvider` over one [`TableSnapshot`] (taken by the engine for the
//! whole statement), and [`SnapshotScanExec`] the leaf plan that reads it.
//!
//! The scan runs on tokio's blocking pool (segments are files) and hands
//! batches over a channel of two: memory is bounded by the batch size, and
//! dropping the stream stops the reader at the next batch. Rows come in
//! row-id order (segments, then memtable rows). Only the projected columns
//! are read; filters on the designated timestamp ([`crate::prune`]) skip
//! segments and memtable batches outside their range (shown by `EXPLAIN`),
//! and DataFusion still applies every filter above the scan. When the
//! snapshot's rows are in designated-timestamp order the scan declares that
//! ordering, so time joins (and sorts on the timestamp) need not sort.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use quiver_storage::{ScanRequest, TableSnapshot};

/// One table's snapshot as a DataFusion table.
#[derive(Debug, Clone)]
pub struct SnapshotTable {
    snapshot: Arc<TableSnapshot>,
    schema: SchemaRef,
}

impl SnapshotTable {
    /// The designated timestamp's name and type.
    fn designated_timestamp(&self) -> Option<(String, quiver_storage::ColumnType)> {
        let schema = self.snapshot.schema();
        let c = schema.columns.get(schema.designated_timestamp?)?;
        Some((c.name.clone(), c.column_type))
    }

    /// The table as `snapshot` shows it.
    pub fn new(snapshot: TableSnapshot) -> Self {
        let schema = snapshot.read_schema(false);
        SnapshotTable {
            snapshot: Arc::new(snapshot),
            schema,
        }
    }
}

#[async_trait]
impl TableProvider for SnapshotTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let ts = self.designated_timestamp();
        Ok(filters
            .iter()
            .map(|f| match &ts {
                Some((name, _)) if crate::prune::is_bound(f, name) => {
                    TableProviderFilterPushDown::Inexact
                }
                _ => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let ts_range = self
            .designated_timestamp()
            .and_then(|(name, t)| crate::prune::timestamp_range(filters, &name, t));
        let request = ScanRequest {
            columns: projection.cloned(),
            ts_range,
        };
        Ok(Arc::new(SnapshotScanExec::new(
            Arc::clone(&self.snapshot),
            request,
            limit,
        )))
    }
}

/// The leaf plan reading a [`SnapshotTable`] (see the module docs).
#[derive(Debug)]
pub struct SnapshotScanExec {
    snapshot: Arc<TableSnapshot>,
    request: Arc<ScanRequest>,
    limit: Option<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl SnapshotScanExec {
    fn new(snapshot: Arc<TableSnapshot>, request: ScanRequest, limit: Option<usize>) -> Self {
        let schema = snapshot.request_schema(&request);
        // Rows come in row-id order; when that is also designated-timestamp
        // order (ingested in order), say so: a merge or sort on it is free.
        let ts_index =
            snapshot
                .schema()
                .designated_timestamp
                .and_then(|d| match &request.columns {
                    Some(columns) => columns.iter().position(|&c| c == d),
                    None => Some(d),
                });
        let equivalences = match ts_index {
            Some(i) if snapshot.is_ts_ordered() => {
                // Ascending, NULLs last (there are none): what ORDER BY ts
                // and the time joins ask for.
                let ordering = PhysicalSortExpr {
                    expr: Arc::new(Column::new(schema.field(i).name(), i)),
                    options: arrow::compute::SortOptions {
                        descending: false,
                        nulls_first: false,
                    },
                };
                EquivalenceProperties::new_with_orderings(Arc::clone(&schema), [[ordering]])
            }
            _ => EquivalenceProperties::new(Arc::clone(&schema)),
        };
        let properties = PlanProperties::new(
            equivalences,
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        SnapshotScanExec {
            snapshot,
            request: Arc::new(request),
            limit,
            schema,
            properties: Arc::new(properties),
        }
    }
}

impl DisplayAs for SnapshotScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.snapshot.schema().name;
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => {
                write!(
                    f,
                    "SnapshotScanExec: table={name}, rows={}, segments={} of {}",
                    self.snapshot.row_count(),
                    self.snapshot.segments_for(&self.request),
                    self.snapshot
                        .segments()
                        .iter()
                        .filter(|s| s.has_rows())
                        .count(),
                )?;
                if let Some((lo, hi)) = self.request.ts_range {
                    write!(f, ", timestamp in [{lo}, {hi}]")?;
                }
                write!(f, ", limit={:?}", self.limit)
            }
            DisplayFormatType::TreeRender => write!(f, "table={name}"),
        }
    }
}

impl ExecutionPlan for SnapshotScanExec {
    fn name(&self) -> &'static str {
        "SnapshotScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match children.is_empty() {
            true => Ok(self),
            false => Err(DataFusionError::Internal(
                "SnapshotScanExec has no children".into(),
            )),
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "SnapshotScanExec has one partition, not {partition}"
            )));
        }
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 2);
        let tx = builder.tx();
        let snapshot = Arc::clone(&self.snapshot);
        let request = Arc::clone(&self.request);
        let mut left = self.limit.unwrap_or(usize::MAX);
        builder.spawn_blocking(move || {
            for batch in snapshot.scan_request(&request) {
                if left == 0 {
                    break;
                }
                let batch = batch.map_err(|e| DataFusionError::External(Box::new(e)))?;
                let batch = match batch.num_rows() > left {
                    true => batch.slice(0, left),
                    false => batch,
                };
                left -= batch.num_rows();
                if tx.blocking_send(Ok(batch)).is_err() {
                    // The stream was dropped: stop reading.
                    break;
                }
            }
            Ok(())
        });
        Ok(builder.build())
    }
}
