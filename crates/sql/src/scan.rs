//! A stored table as DataFusion sees it: [`SnapshotTable`] is a
//! `TableProvider` over one [`TableSnapshot`] (taken by the engine for the
//! whole statement), and [`SnapshotScanExec`] the leaf plan that reads it.
//!
//! Rows come in row-id order (segments, then memtable rows). Only the
//! projected columns (and those the filters read) are read; filters on the
//! designated timestamp ([`crate::prune`]) skip segments, their blocks and
//! memtable batches outside their range. The query's WHERE conditions that
//! can be evaluated on one row of this table alone (no subquery, nothing
//! volatile) are applied by the scan itself, exactly: DataFusion keeps no
//! filter above it, and a block without a matching row goes no further.
//! `EXPLAIN` shows both the range and the filter.
//!
//! The scan runs on tokio's blocking pool (segments are files): its thread
//! walks the blocks in order and deals them, in runs of consecutive blocks
//! (1, then 2, 4, up to [`RUN_BLOCKS`] as the scan goes on), round robin
//! to itself and to helper threads (up to DataFusion's target partitions
//! in all, at most [`MAX_SCAN_WORKERS`], within a process-wide budget)
//! that read, filter and trim them; the stream takes the results in the
//! same turn, so rows keep their order. Neighbouring filtered rows of a
//! run leave joined into one batch of at most [`JOIN_BYTES`] (they are
//! copies already; one hand-over and one batch downstream instead of one
//! per block), unfiltered blocks as the views they are, and a thread
//! hands over what it holds whenever its copies pass [`HELD_BYTES`]:
//! memory is bounded by a few blocks per thread, and dropping the stream
//! stops every thread at its next block. When the snapshot's rows are in designated-timestamp order the
//! scan declares that ordering, so time joins (and sorts on the
//! timestamp) need not sort.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, BooleanArray, RecordBatch};
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::DFSchema;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown, TableType};
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use quiver_storage::{ScanRequest, StoredBlock, StoredReader, TableSnapshot};
use tokio::sync::mpsc;

/// Most threads one scan reads and filters blocks on.
pub const MAX_SCAN_WORKERS: usize = 8;

/// Most consecutive blocks one thread takes at a time (one block when the
/// scan has a LIMIT, so that little is read past it). Measured on the
/// query benchmark's high-cpu-all (27 blocks of 16,384 rows, a tenth of
/// each passing): one hand-over and one small batch per block cost the
/// server a context switch or more at each of three thread boundaries,
/// and the egress session a copy to join them.
const RUN_BLOCKS: usize = 8;

/// Largest batch neighbouring filtered rows are joined into (far below
/// the 2 GiB a text column's 32-bit offsets can address).
const JOIN_BYTES: usize = 4 << 20;

/// Copied rows a thread holds before it hands them over mid-run.
const HELD_BYTES: usize = 16 << 20;

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

    /// Whether the scan can apply `filter` itself, exactly as a filter
    /// above it would: it reads only this table's columns, runs the same
    /// for every row (nothing volatile, such as `random()`, which would
    /// otherwise be drawn twice), and holds no subquery or parameter.
    fn can_apply(&self, filter: &Expr) -> bool {
        if filter.is_volatile() {
            return false;
        }
        let mut plain = true;
        let _ = filter.apply(|e| {
            plain = match e {
                Expr::Column(c) => self.schema.index_of(&c.name).is_ok(),
                Expr::ScalarSubquery(_)
                | Expr::Exists(_)
                | Expr::InSubquery(_)
                | Expr::OuterReferenceColumn(..)
                | Expr::Placeholder(_)
                | Expr::AggregateFunction(_)
                | Expr::WindowFunction(_) => false,
                _ => true,
            };
            Ok(match plain {
                true => TreeNodeRecursion::Continue,
                false => TreeNodeRecursion::Stop,
            })
        });
        plain
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
        Ok(filters
            .iter()
            .map(|f| match self.can_apply(f) {
                true => TableProviderFilterPushDown::Exact,
                false => TableProviderFilterPushDown::Unsupported,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let ts_range = self
            .designated_timestamp()
            .and_then(|(name, t)| crate::prune::timestamp_range(filters, &name, t));
        let output: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..self.schema.fields().len()).collect(),
        };
        // Every column read: the output's, then those only the filter reads.
        let mut read = output.clone();
        let filter = match conjunction(filters.iter().cloned()) {
            None => None,
            Some(all) => {
                let mut columns = Vec::new();
                for c in all.column_refs() {
                    let i = self.schema.index_of(&c.name)?;
                    if !columns.contains(&i) {
                        columns.push(i);
                    }
                    if !read.contains(&i) {
                        read.push(i);
                    }
                }
                let columns = ScanRequest {
                    columns: Some(columns),
                    ts_range: None,
                };
                let schema =
                    DFSchema::try_from(self.snapshot.request_schema(&columns).as_ref().clone())?;
                // The conditions on the designated timestamp alone that a
                // block inside their range passes whole, and the others.
                let (mut bounds, mut rest) = (None::<(i128, i128)>, Vec::new());
                let ts = self.designated_timestamp();
                for f in filters {
                    match ts
                        .as_ref()
                        .and_then(|(name, _)| crate::prune::exact_bounds(f, name))
                    {
                        Some(b) => {
                            bounds = Some(bounds.map_or(b, |a| (a.0.max(b.0), a.1.min(b.1))));
                        }
                        None => rest.push(f.clone()),
                    }
                }
                let inside = match (bounds, ts) {
                    (Some(bounds), Some((_, t))) => Some(WholeBlocks {
                        bounds,
                        column_type: t,
                        predicate: conjunction(rest)
                            .map(|e| state.create_physical_expr(e, &schema))
                            .transpose()?,
                    }),
                    _ => None,
                };
                let predicate = state.create_physical_expr(all, &schema)?;
                Some(ScanFilter {
                    columns,
                    predicate,
                    inside,
                })
            }
        };
        let spec = ScanSpec {
            read: ScanRequest {
                columns: Some(read),
                ts_range,
            },
            output: ScanRequest {
                columns: Some(output),
                ts_range: None,
            },
            filter,
        };
        Ok(Arc::new(SnapshotScanExec::new(
            Arc::clone(&self.snapshot),
            spec,
            limit,
        )))
    }
}

/// What one scan reads, keeps and returns.
#[derive(Debug)]
struct ScanSpec {
    /// Every column read (the output's and the filter's) and the range of
    /// designated timestamps that may match.
    read: ScanRequest,
    /// The columns returned.
    output: ScanRequest,
    /// Which rows are returned (all when `None`).
    filter: Option<ScanFilter>,
}

/// The rows a scan keeps: those for which `predicate` (over `columns`)
/// is true.
#[derive(Debug, Clone)]
struct ScanFilter {
    columns: ScanRequest,
    predicate: Arc<dyn PhysicalExpr>,
    /// For blocks inside the range of its designated-timestamp conditions.
    inside: Option<WholeBlocks>,
}

/// What the filter is for a block whose designated timestamps (none NULL)
/// all lie in `bounds` (nanoseconds, inclusive; the column is of
/// `column_type`): `predicate`, the other conditions (`None`: every row
/// passes). The rows of a block in the middle of a time range then need
/// no look at their timestamps, and without other conditions no copy.
#[derive(Debug, Clone)]
struct WholeBlocks {
    bounds: (i128, i128),
    column_type: quiver_storage::ColumnType,
    predicate: Option<Arc<dyn PhysicalExpr>>,
}

/// The leaf plan reading a [`SnapshotTable`] (see the module docs).
#[derive(Debug)]
pub struct SnapshotScanExec {
    snapshot: Arc<TableSnapshot>,
    spec: Arc<ScanSpec>,
    limit: Option<usize>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl SnapshotScanExec {
    fn new(snapshot: Arc<TableSnapshot>, spec: ScanSpec, limit: Option<usize>) -> Self {
        let schema = snapshot.request_schema(&spec.output);
        // Rows come in row-id order; when that is also designated-timestamp
        // order (ingested in order), say so: a merge or sort on it is free.
        let ts_index = snapshot.schema().designated_timestamp.and_then(|d| {
            spec.output
                .columns
                .as_ref()
                .and_then(|c| c.iter().position(|&c| c == d))
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
            spec: Arc::new(spec),
            limit,
            schema,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
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
                    self.snapshot.segments_for(&self.spec.read),
                    self.snapshot
                        .segments()
                        .iter()
                        .filter(|s| s.has_rows())
                        .count(),
                )?;
                if let Some((lo, hi)) = self.spec.read.ts_range {
                    write!(f, ", timestamp in [{lo}, {hi}]")?;
                }
                if let Some(filter) = &self.spec.filter {
                    write!(f, ", filter={}", filter.predicate)?;
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
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        match &self.spec.filter {
            Some(filter) => f(&filter.predicate),
            None => Ok(TreeNodeRecursion::Continue),
        }
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

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return Err(DataFusionError::Internal(format!(
                "SnapshotScanExec has one partition, not {partition}"
            )));
        }
        let workers = context
            .session_config()
            .target_partitions()
            .clamp(1, MAX_SCAN_WORKERS);
        let counters = ScanCounters {
            baseline: BaselineMetrics::new(&self.metrics, partition),
            read_rows: MetricBuilder::new(&self.metrics).counter("read_rows", partition),
        };
        let stream = scan_in_order(
            Arc::clone(&self.snapshot),
            Arc::clone(&self.spec),
            workers,
            self.limit,
            counters,
        );
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }
}

/// What a scan counts for `EXPLAIN ANALYZE`.
struct ScanCounters {
    /// Rows returned, and the time spent reading and filtering.
    baseline: BaselineMetrics,
    /// Rows of the blocks read, before the filter.
    read_rows: Count,
}

/// Threads a scan may start besides its own, taken from one budget for
/// the whole process (twice the cores): under many concurrent queries a
/// scan runs on its own thread alone instead of multiplying threads.
struct HelperThreads {
    count: usize,
}

/// Helper threads of all scans now running.
static HELPERS_IN_USE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

impl HelperThreads {
    /// Up to `wanted` helpers, as many as the budget has left.
    fn reserve(wanted: usize) -> Self {
        use std::sync::atomic::Ordering;
        static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        let budget =
            *BUDGET.get_or_init(|| std::thread::available_parallelism().map_or(2, usize::from) * 2);
        let mut count = 0;
        let _ = HELPERS_IN_USE.fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
            count = wanted.min(budget.saturating_sub(used));
            Some(used + count)
        });
        HelperThreads { count }
    }
}

impl Drop for HelperThreads {
    fn drop(&mut self) {
        HELPERS_IN_USE.fetch_sub(self.count, std::sync::atomic::Ordering::AcqRel);
    }
}

/// What each thread of a scan does to a run of blocks, and counts.
struct BlockWork {
    reader: ScanReader,
    read_rows: Count,
    elapsed: datafusion::physical_plan::metrics::Time,
}

/// Consecutive blocks for one thread (see [`RUN_BLOCKS`]).
type Run = Vec<quiver_storage::Result<StoredBlock>>;

/// A run's output being gathered: batches ready to hand over, and
/// filtered rows waiting to be joined.
#[derive(Default)]
struct RunOutput {
    out: Vec<RecordBatch>,
    /// Bytes of copies in `out`.
    out_bytes: usize,
    selected: Vec<RecordBatch>,
    selected_bytes: usize,
}

impl RunOutput {
    /// Joins the waiting filtered rows into one batch in `out`.
    fn join(&mut self) -> Result<()> {
        match self.selected.len() {
            0 => {}
            1 => self.out.append(&mut self.selected),
            _ => {
                let joined =
                    arrow::compute::concat_batches(&self.selected[0].schema(), &self.selected)?;
                self.out.push(joined);
                self.selected.clear();
            }
        }
        self.out_bytes += std::mem::take(&mut self.selected_bytes);
        Ok(())
    }

    fn add(&mut self, kept: Kept) -> Result<()> {
        match kept {
            Kept::Nothing => {}
            Kept::Whole(batch) => {
                self.join()?;
                self.out.push(batch);
            }
            Kept::Selected(batch) => {
                let bytes = batch.get_array_memory_size();
                if self.selected_bytes + bytes > JOIN_BYTES {
                    self.join()?;
                }
                self.selected_bytes += bytes;
                self.selected.push(batch);
            }
        }
        Ok(())
    }

    /// Copies held (joined or waiting).
    fn held(&self) -> usize {
        self.out_bytes + self.selected_bytes
    }

    /// Everything gathered so far, joined.
    fn take(&mut self) -> Result<Vec<RecordBatch>> {
        self.join()?;
        self.out_bytes = 0;
        Ok(std::mem::take(&mut self.out))
    }
}

impl BlockWork {
    /// One block's rows; a panic in it (a bug) is an error naming it, not
    /// a lost thread.
    fn block_rows(&self, block: quiver_storage::Result<StoredBlock>) -> Result<Kept> {
        let _timer = self.elapsed.timer();
        let block = block.map_err(|e| DataFusionError::External(Box::new(e)))?;
        self.read_rows.add(block.batch.num_rows());
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.reader.keep_rows(&block)
        }))
        .unwrap_or_else(|panic| {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(DataFusionError::Internal(format!(
                "a scan thread panicked: {message}"
            )))
        })
    }

    /// Reads and filters a run, handing its rows to `output` in order:
    /// [`Piece::Part`]s whenever the copies held pass [`HELD_BYTES`], then
    /// the run's last piece. `false` when the stream is gone or an error
    /// was sent (the thread stops).
    fn run(&self, run: Run, output: &mpsc::Sender<Result<Piece>>) -> bool {
        let mut gathered = RunOutput::default();
        for block in run {
            if output.is_closed() {
                return false;
            }
            let step = self.block_rows(block).and_then(|kept| {
                let _timer = self.elapsed.timer();
                gathered.add(kept)?;
                match gathered.held() > HELD_BYTES {
                    true => gathered.take().map(Some),
                    false => Ok(None),
                }
            });
            match step {
                Ok(None) => {}
                Ok(Some(part)) => {
                    if output.blocking_send(Ok(Piece::Part(part))).is_err() {
                        return false;
                    }
                }
                Err(e) => {
                    let _ = output.blocking_send(Err(e));
                    return false;
                }
            }
        }
        let last = {
            let _timer = self.elapsed.timer();
            gathered.take()
        };
        let piece = last.map(|out| match out.is_empty() {
            true => Piece::Nothing,
            false => Piece::Rows(out),
        });
        let failed = piece.is_err();
        output.blocking_send(piece).is_ok() && !failed
    }
}

/// Walks the scan's blocks in order on this thread and deals them in runs
/// round robin to itself (turn 0) and one helper thread per further
/// output: each thread's first run is one block, each further round's
/// twice the last up to `run_blocks` (small scans stay spread over the
/// threads, large ones hand over seldom). Each run's result goes to the
/// output of its turn.
/// Stops at the end (each output then gets [`Piece::Done`]), at an error,
/// or when an output is dropped (the stream is gone).
fn deal_blocks(
    snapshot: &TableSnapshot,
    request: &ScanRequest,
    work: &BlockWork,
    run_blocks: usize,
    outputs: Vec<mpsc::Sender<Result<Piece>>>,
) {
    let mut outputs = outputs.into_iter();
    let Some(own) = outputs.next() else { return };
    std::thread::scope(|scope| {
        let mut helpers = Vec::new();
        for output in outputs {
            let (tx, rx) = std::sync::mpsc::sync_channel::<Run>(1);
            let started = std::thread::Builder::new()
                .name("quiver-scan".into())
                .spawn_scoped(scope, move || {
                    while let Ok(run) = rx.recv() {
                        if !work.run(run, &output) {
                            return;
                        }
                    }
                    let _ = output.blocking_send(Ok(Piece::Done));
                });
            if let Err(e) = started {
                let _ = own.blocking_send(Err(DataFusionError::ResourcesExhausted(format!(
                    "cannot start a scan thread: {e}"
                ))));
                return;
            }
            helpers.push(tx);
        }
        let turns = helpers.len() + 1;
        let mut blocks = snapshot.scan_stored(request).peekable();
        let mut turn = 0;
        while blocks.peek().is_some() {
            let round = u32::try_from(turn / turns).unwrap_or(u32::MAX).min(8);
            let length = (1usize << round).min(run_blocks.max(1));
            let run: Run = blocks.by_ref().take(length).collect();
            let sent = match turn % turns {
                0 => work.run(run, &own),
                k => helpers[k - 1].send(run).is_ok(),
            };
            turn += 1;
            // A gone helper or stream, or an error sent: stop.
            if !sent {
                return;
            }
        }
        let _ = own.blocking_send(Ok(Piece::Done));
        // Dropping the helpers' senders ends them, each with its Done.
    });
}

/// What a worker hands back for one run, in the run's turn.
enum Piece {
    /// Rows of the run that passed, in order, with more of the run to come
    /// in the same turn.
    Part(Vec<RecordBatch>),
    /// The run's (remaining) rows that passed, in order (at least one
    /// batch, none empty); the turn ends.
    Rows(Vec<RecordBatch>),
    /// None of the run's rows passed.
    Nothing,
    /// No block is left for this worker.
    Done,
}

/// The scan's batches in row-id order, read and filtered on `workers`
/// threads (see the module docs); at most `limit` rows.
fn scan_in_order(
    snapshot: Arc<TableSnapshot>,
    spec: Arc<ScanSpec>,
    workers: usize,
    limit: Option<usize>,
    counters: ScanCounters,
) -> impl futures_util::Stream<Item = Result<RecordBatch>> + Send {
    let reader = ScanReader {
        output: snapshot.stored_reader(&spec.output),
        filter: spec
            .filter
            .as_ref()
            .map(|f| (snapshot.stored_reader(&f.columns), f.clone())),
    };
    // The scan's own thread plus as many helpers as the budget allows.
    let helpers = HelperThreads::reserve(workers.saturating_sub(1));
    let mut outputs = Vec::with_capacity(helpers.count + 1);
    let mut results = Vec::with_capacity(helpers.count + 1);
    for _ in 0..=helpers.count {
        let (tx, rx) = mpsc::channel::<Result<Piece>>(1);
        outputs.push(tx);
        results.push(rx);
    }
    let work = BlockWork {
        reader,
        read_rows: counters.read_rows.clone(),
        elapsed: counters.baseline.elapsed_compute().clone(),
    };
    let run_blocks = match limit {
        Some(_) => 1,
        None => RUN_BLOCKS,
    };
    tokio::task::spawn_blocking(move || {
        let _helpers = helpers;
        deal_blocks(&snapshot, &spec.read, &work, run_blocks, outputs);
    });
    struct Taking {
        results: Vec<mpsc::Receiver<Result<Piece>>>,
        turn: usize,
        /// The rest of the last run's batches.
        ready: std::collections::VecDeque<RecordBatch>,
        left: usize,
        baseline: BaselineMetrics,
    }
    let state = Taking {
        results,
        turn: 0,
        ready: std::collections::VecDeque::new(),
        left: limit.unwrap_or(usize::MAX),
        baseline: counters.baseline,
    };
    futures_util::stream::unfold(Some(state), |state| async move {
        let mut state = state?;
        loop {
            if state.left == 0 {
                return None;
            }
            if let Some(batch) = state.ready.pop_front() {
                let batch = match batch.num_rows() > state.left {
                    true => batch.slice(0, state.left),
                    false => batch,
                };
                state.left -= batch.num_rows();
                state.baseline.record_output(batch.num_rows());
                return Some((Ok(batch), Some(state)));
            }
            let n = state.results.len();
            let piece = state.results[state.turn % n].recv().await;
            if !matches!(piece, Some(Ok(Piece::Part(_)))) {
                state.turn += 1;
            }
            match piece {
                Some(Ok(Piece::Part(batches) | Piece::Rows(batches))) => {
                    state.ready.extend(batches)
                }
                Some(Ok(Piece::Nothing)) => continue,
                Some(Ok(Piece::Done)) => {
                    state.baseline.done();
                    return None;
                }
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    return Some((
                        Err(DataFusionError::Internal(
                            "a scan thread stopped before the end of the scan".into(),
                        )),
                        None,
                    ));
                }
            }
        }
    })
}

/// What a scan thread turns stored blocks into the output with.
#[derive(Clone)]
struct ScanReader {
    /// The output columns.
    output: StoredReader,
    /// The filter's columns, and the filter.
    filter: Option<(StoredReader, ScanFilter)>,
}

/// What a block keeps.
enum Kept {
    /// No row.
    Nothing,
    /// Every row: the block's columns as they are.
    Whole(RecordBatch),
    /// Some rows, copied out of the block.
    Selected(RecordBatch),
}

impl ScanReader {
    /// One stored block's rows that pass the filter, in the read form.
    /// The filter runs on its own columns first; only the passing rows of
    /// the output columns are then taken (and their SYMBOL keys checked).
    fn keep_rows(&self, block: &StoredBlock) -> Result<Kept> {
        let external = |e: quiver_storage::StorageError| DataFusionError::External(Box::new(e));
        let all_rows = || -> Result<Kept> {
            let batch = self.output.read(&block.batch).map_err(external)?;
            Ok(match batch.num_rows() {
                0 => Kept::Nothing,
                _ => Kept::Whole(batch),
            })
        };
        let Some((columns, filter)) = &self.filter else {
            return all_rows();
        };
        let predicate = match (&filter.inside, block.ts_range) {
            (Some(inside), Some(range))
                if crate::prune::holds_for_block(inside.bounds, inside.column_type, range) =>
            {
                match &inside.predicate {
                    Some(p) => p,
                    None => return all_rows(),
                }
            }
            _ => &filter.predicate,
        };
        let on = columns.read(&block.batch).map_err(external)?;
        let value = predicate.evaluate(&on)?.into_array(on.num_rows())?;
        let mask = value
            .as_any()
            .downcast_ref::<BooleanArray>()
            .ok_or_else(|| {
                DataFusionError::Internal(format!(
                    "a filter evaluated to {}, not BOOLEAN",
                    value.data_type()
                ))
            })?;
        // NULL is not true: the row goes.
        let mask = match mask.null_count() {
            0 => mask.clone(),
            _ => arrow::compute::prep_null_mask_filter(mask),
        };
        Ok(match mask.true_count() {
            0 => Kept::Nothing,
            n if n == on.num_rows() => all_rows()?,
            _ => Kept::Selected(
                self.output
                    .read_selected(&block.batch, &mask)
                    .map_err(external)?,
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    fn batch(values: std::ops::Range<i64>) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from_iter_values(values))]).unwrap()
    }

    fn values(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect()
    }

    #[test]
    fn filtered_rows_are_joined_up_to_the_join_limit_in_order() {
        // 100,000 rows of 8 bytes each: five fit in JOIN_BYTES (4 MiB).
        let n = 100_000;
        let mut gathered = RunOutput::default();
        for k in 0..12 {
            let rows = k * n..(k + 1) * n;
            let kept = match k {
                // A whole block between filtered ones ends a join.
                7 => Kept::Whole(batch(rows)),
                _ => Kept::Selected(batch(rows)),
            };
            gathered.add(kept).unwrap();
        }
        assert!(gathered.held() > 4 * 800_000);
        let out = gathered.take().unwrap();
        assert_eq!(values(&out), (0..12 * n).collect::<Vec<_>>());
        let sizes: Vec<usize> = out.iter().map(|b| b.num_rows() / n as usize).collect();
        assert_eq!(sizes, [5, 2, 1, 4]);
        assert!(
            out.iter()
                .all(|b| b.get_array_memory_size() <= JOIN_BYTES + (1 << 20))
        );
        assert_eq!(gathered.held(), 0);
    }
}
