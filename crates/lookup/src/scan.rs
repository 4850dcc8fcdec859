//! DataFusion integration: both providers are [`TableProvider`]s, so a
//! sidecar can be registered in a `SessionContext` and queried with SQL.
//!
//! A scan is a [`LookupScanExec`]: a leaf plan whose partitions each run a
//! blocking reader on tokio's blocking pool and stream record batches
//! through a bounded channel (two batches in flight), so a scan's memory is
//! bounded by the batch size, not the table size, and dropping the stream
//! stops the reader.
//!
//! - Feather: partitions are contiguous ranges of record batches (up to the
//!   session's `target_partitions`); batches are decoded (zero-copy) and
//!   validated on first use, then projected.
//! - SQLite: one partition, `SELECT ... ORDER BY c0 LIMIT n`, 8192 rows per
//!   batch.
//!
//! Filters are not pushed down (DataFusion applies them above the scan);
//! `projection` and `limit` are honoured.

use std::fmt;
use std::sync::Arc;

use arrow::array::RecordBatch;
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

use crate::feather::{FeatherLookupProvider, project_schema};
use crate::sqlite::SqliteLookupProvider;

/// What a [`LookupScanExec`] reads from.
#[derive(Debug, Clone)]
enum Source {
    Feather(FeatherLookupProvider),
    Sqlite(SqliteLookupProvider),
}

/// A leaf execution plan scanning a sidecar (see the [module docs](self)).
#[derive(Debug)]
pub struct LookupScanExec {
    source: Source,
    projection: Option<Vec<usize>>,
    limit: Option<usize>,
    schema: SchemaRef,
    /// Per partition, the range of record batches (Feather only).
    ranges: Vec<std::ops::Range<usize>>,
    properties: Arc<PlanProperties>,
}

impl LookupScanExec {
    fn new(
        source: Source,
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
        target_partitions: usize,
    ) -> Result<Self> {
        let full = match &source {
            Source::Feather(p) => p.schema(),
            Source::Sqlite(p) => p.schema(),
        };
        let schema = Arc::new(project_schema(&full, projection.map(Vec::as_slice))?);
        let ranges: Vec<std::ops::Range<usize>> = match &source {
            Source::Feather(p) => {
                let n = p.num_batches();
                let parts = target_partitions.clamp(1, n.max(1));
                (0..parts)
                    .map(|i| (i * n / parts)..((i + 1) * n / parts))
                    .collect()
            }
            // One partition; the range is unused.
            Source::Sqlite(_) => std::iter::once(0..0).collect(),
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(ranges.len()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            source,
            projection: projection.cloned(),
            limit,
            schema,
            ranges,
            properties: Arc::new(properties),
        })
    }

    /// Blocking: emits partition `p`'s batches; stops when `emit` says so.
    fn run(
        source: &Source,
        range: std::ops::Range<usize>,
        projection: Option<&[usize]>,
        limit: Option<usize>,
        emit: &mut dyn FnMut(RecordBatch) -> bool,
    ) -> Result<()> {
        match source {
            Source::Feather(p) => {
                let mut left = limit.unwrap_or(usize::MAX);
                for b in range {
                    if left == 0 {
                        break;
                    }
                    let batch = p.batch(b)?;
                    let batch = match projection {
                        Some(cols) => batch.project(cols)?,
                        None => batch,
                    };
                    let batch = if batch.num_rows() > left {
                        batch.slice(0, left)
                    } else {
                        batch
                    };
                    left -= batch.num_rows();
                    if !emit(batch) {
                        break;
                    }
                }
                Ok(())
            }
            Source::Sqlite(p) => Ok(p.scan_blocking(projection, limit, emit)?),
        }
    }
}

impl DisplayAs for LookupScanExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, path) = match &self.source {
            Source::Feather(p) => ("feather", p.path()),
            Source::Sqlite(p) => ("sqlite", p.path()),
        };
        match t {
            DisplayFormatType::Default | DisplayFormatType::Verbose => write!(
                f,
                "LookupScanExec: {kind}={}, partitions={}, limit={:?}",
                path.display(),
                self.ranges.len(),
                self.limit
            ),
            DisplayFormatType::TreeRender => write!(f, "{kind}={}", path.display()),
        }
    }
}

impl ExecutionPlan for LookupScanExec {
    fn name(&self) -> &'static str {
        "LookupScanExec"
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
        if children.is_empty() {
            Ok(self)
        } else {
            Err(DataFusionError::Internal(
                "LookupScanExec has no children".into(),
            ))
        }
    }

    fn execute(
        &self,
        partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let range = self.ranges.get(partition).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!(
                "LookupScanExec: partition {partition} of {}",
                self.ranges.len()
            ))
        })?;
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 2);
        let tx = builder.tx();
        let source = self.source.clone();
        let projection = self.projection.clone();
        let limit = self.limit;
        builder.spawn_blocking(move || {
            Self::run(&source, range, projection.as_deref(), limit, &mut |b| {
                tx.blocking_send(Ok(b)).is_ok()
            })
        });
        Ok(builder.build())
    }
}

#[async_trait]
impl TableProvider for FeatherLookupProvider {
    fn schema(&self) -> SchemaRef {
        FeatherLookupProvider::schema(self)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let partitions = state.config().target_partitions();
        Ok(Arc::new(LookupScanExec::new(
            Source::Feather(self.clone()),
            projection,
            limit,
            partitions,
        )?))
    }
}

#[async_trait]
impl TableProvider for SqliteLookupProvider {
    fn schema(&self) -> SchemaRef {
        SqliteLookupProvider::schema(self)
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
        Ok(Arc::new(LookupScanExec::new(
            Source::Sqlite(self.clone()),
            projection,
            limit,
            1,
        )?))
    }
}
