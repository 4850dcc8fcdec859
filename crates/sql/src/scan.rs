//! A stored table as DataFusion sees it: [`SnapshotTable`] is a
//! `TableProvider` over one [`TableSnapshot`] (taken by the engine for the
//! whole statement), and [`SnapshotScanExec`] the leaf plan that reads it.
//!
//! The scan runs on tokio's blocking pool (segments are files) and hands
//! batches over a channel of two: memory is bounded by the batch size, and
//! dropping the stream stops the reader at the next batch. Rows come in
//! row-id order (segments, then memtable rows). Projection and limit are
//! applied in the scan; filters are applied above it by DataFusion.

use std::fmt;
use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use quiver_storage::TableSnapshot;

/// One table's snapshot as a DataFusion table.
#[derive(Debug, Clone)]
pub struct SnapshotTable {
    snapshot: Arc<TableSnapshot>,
    schema: SchemaRef,
}

impl SnapshotTable {
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

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(SnapshotScanExec::new(
            Arc::clone(&self.snapshot),
            Arc::clone(&self.schema),
            projection.cloned(),
            limit,
        )?))
    }
}

/// The leaf plan reading a [`SnapshotTable`] (see the module docs).
#[derive(Debug)]
pub struct SnapshotScanExec {
    snapshot: Arc<TableSnapshot>,
    projection: Option<Vec<usize>>,
    limit: Option<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl SnapshotScanExec {
    fn new(
        snapshot: Arc<TableSnapshot>,
        full: SchemaRef,
        projection: Option<Vec<usize>>,
        limit: Option<usize>,
    ) -> Result<Self> {
        let schema = match &projection {
            Some(p) => Arc::new(full.project(p)?),
            None => full,
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(SnapshotScanExec {
            snapshot,
            projection,
            limit,
            schema,
            properties: Arc::new(properties),
        })
    }
}

impl DisplayAs for SnapshotScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = &self.snapshot.schema().name;
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "SnapshotScanExec: table={name}, rows={}, segments={}, limit={:?}",
                self.snapshot.row_count(),
                self.snapshot.segments().len(),
                self.limit
            ),
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
        let projection = self.projection.clone();
        let mut left = self.limit.unwrap_or(usize::MAX);
        builder.spawn_blocking(move || {
            for batch in snapshot.scan(false) {
                if left == 0 {
                    break;
                }
                let batch = batch.map_err(|e| DataFusionError::External(Box::new(e)))?;
                let batch = match &projection {
                    Some(p) => batch.project(p)?,
                    None => batch,
                };
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
