//! [`TimeJoinExec`]: a time join as a merge of two inputs ordered by their
//! timestamps (the planner sorts an input that is not). For ASOF / LT, for
//! each left row it first takes in every right row up to that time (ASOF:
//! at or before, LT: strictly before) through a [`Side`], which remembers
//! only the newest right row per key, then pairs the left row with its
//! key's newest row (none when older than the tolerance). SPLICE runs
//! [`super::side`]'s two-sided merge.

use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch};
use arrow::compute::SortOptions;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{RowConverter, Rows, SortField};
use datafusion::common::internal_err;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::{
    EquivalenceProperties, LexRequirement, OrderingRequirements, PhysicalExpr,
    PhysicalSortRequirement,
};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchReceiverStreamBuilder;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures_util::StreamExt;

use super::TimeJoinKind;
use super::side::{Pick, Side};
use crate::dialect::sample_by::bucket_function::nanos_per_tick;
use crate::dialect::time_arithmetic::raw_values;

/// Column roles of a time join's inputs.
#[derive(Debug, Clone)]
pub struct TimeJoinColumns {
    /// Left timestamp.
    pub left_time: usize,
    /// Right timestamp.
    pub right_time: usize,
    /// Left key columns.
    pub left_keys: Vec<usize>,
    /// Right key columns, pairwise with the left ones.
    pub right_keys: Vec<usize>,
}

/// The physical time join (see the module docs).
#[derive(Debug)]
pub struct TimeJoinExec {
    left: Arc<dyn ExecutionPlan>,
    right: Arc<dyn ExecutionPlan>,
    kind: TimeJoinKind,
    tolerance: Option<i64>,
    columns: TimeJoinColumns,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl TimeJoinExec {
    /// The join of `left` and `right` producing `schema` (left columns,
    /// then right ones).
    pub fn try_new(
        left: Arc<dyn ExecutionPlan>,
        right: Arc<dyn ExecutionPlan>,
        kind: TimeJoinKind,
        tolerance: Option<i64>,
        columns: TimeJoinColumns,
        schema: SchemaRef,
    ) -> Result<Self> {
        let (ls, rs) = (left.schema(), right.schema());
        if schema.fields().len() != ls.fields().len() + rs.fields().len() {
            return internal_err!("a time join's columns are its inputs' columns");
        }
        for (s, i) in [(&ls, columns.left_time), (&rs, columns.right_time)] {
            if !matches!(s.field(i).data_type(), DataType::Timestamp(_, _)) {
                return internal_err!("a time join needs timestamps");
            }
        }
        key_types(&ls, &rs, &columns)?;
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(TimeJoinExec {
            left,
            right,
            kind,
            tolerance,
            columns,
            schema,
            properties: Arc::new(properties),
        })
    }
}

/// The type each key pair is compared in: the type both sides coerce to
/// for `=` (an error when there is none).
fn key_types(
    left: &SchemaRef,
    right: &SchemaRef,
    columns: &TimeJoinColumns,
) -> Result<Vec<DataType>> {
    use datafusion::logical_expr::type_coercion::binary::comparison_coercion;
    columns
        .left_keys
        .iter()
        .zip(&columns.right_keys)
        .map(|(l, r)| {
            let (lt, rt) = (left.field(*l).data_type(), right.field(*r).data_type());
            match lt == rt {
                true => Ok(lt.clone()),
                false => comparison_coercion(lt, rt).ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "a time join cannot compare key {} ({lt}) with {} ({rt})",
                        left.field(*l).name(),
                        right.field(*r).name()
                    ))
                }),
            }
        })
        .collect()
}

impl DisplayAs for TimeJoinExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (ls, rs) = (self.left.schema(), self.right.schema());
        write!(
            f,
            "TimeJoinExec: {} JOIN, time {} >= {}",
            self.kind,
            ls.field(self.columns.left_time).name(),
            rs.field(self.columns.right_time).name()
        )?;
        for (l, r) in self.columns.left_keys.iter().zip(&self.columns.right_keys) {
            write!(f, ", {} = {}", ls.field(*l).name(), rs.field(*r).name())?;
        }
        if let Some(t) = self.tolerance {
            write!(f, ", tolerance={t}ns")?;
        }
        Ok(())
    }
}

fn ascending(schema: &SchemaRef, i: usize) -> Option<OrderingRequirements> {
    let requirement = LexRequirement::new([PhysicalSortRequirement {
        expr: Arc::new(Column::new(schema.field(i).name(), i)),
        // Ascending, NULLs (never in force) last: as a scan in timestamp
        // order declares it and ORDER BY ts sorts.
        options: Some(SortOptions {
            descending: false,
            nulls_first: false,
        }),
    }])?;
    Some(OrderingRequirements::new(requirement))
}

impl ExecutionPlan for TimeJoinExec {
    fn name(&self) -> &'static str {
        "TimeJoinExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition, Distribution::SinglePartition]
    }

    fn required_input_ordering(&self) -> Vec<Option<OrderingRequirements>> {
        vec![
            ascending(&self.left.schema(), self.columns.left_time),
            ascending(&self.right.schema(), self.columns.right_time),
        ]
    }

    fn maintains_input_order(&self) -> Vec<bool> {
        vec![self.kind != TimeJoinKind::Splice, false]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.left, &self.right]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let (Some(right), Some(left), true) = (children.pop(), children.pop(), children.is_empty())
        else {
            return internal_err!("TimeJoinExec has two inputs");
        };
        Ok(Arc::new(TimeJoinExec::try_new(
            left,
            right,
            self.kind,
            self.tolerance,
            self.columns.clone(),
            Arc::clone(&self.schema),
        )?))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("TimeJoinExec has one partition, not {partition}");
        }
        let mut left = self.left.execute(0, Arc::clone(&context))?;
        let right = self.right.execute(0, Arc::clone(&context))?;
        let right_schema = self.right.schema();
        let key_types = key_types(&self.left.schema(), &right_schema, &self.columns)?;
        if self.kind == TimeJoinKind::Splice {
            let converter = match key_types.is_empty() {
                true => None,
                false => Some(RowConverter::new(
                    key_types.iter().cloned().map(SortField::new).collect(),
                )?),
            };
            let pool = context.memory_pool();
            let left = super::side::Side::new(
                left,
                self.columns.left_time,
                self.columns.left_keys.clone(),
                key_types.clone(),
                MemoryConsumer::new("SpliceJoin left").register(pool),
            );
            let right = super::side::Side::new(
                right,
                self.columns.right_time,
                self.columns.right_keys.clone(),
                key_types,
                MemoryConsumer::new("SpliceJoin right").register(pool),
            );
            let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 2);
            let tx = builder.tx();
            let schema = Arc::clone(&self.schema);
            let batch_size = context.session_config().batch_size().max(1);
            builder.spawn(super::side::splice(
                left, right, converter, schema, batch_size, tx,
            ));
            return Ok(builder.build());
        }
        let converter = match key_types.is_empty() {
            true => None,
            false => Some(RowConverter::new(
                key_types.iter().cloned().map(SortField::new).collect(),
            )?),
        };
        let right = Side::new(
            right,
            self.columns.right_time,
            self.columns.right_keys.clone(),
            key_types.clone(),
            MemoryConsumer::new("TimeJoinExec").register(context.memory_pool()),
        );
        let mut state = MergeState {
            kind: self.kind,
            tolerance: self.tolerance,
            columns: self.columns.clone(),
            converter,
            key_types,
            right,
            schema: Arc::clone(&self.schema),
            batch_size: context.session_config().batch_size().max(1),
            pending: Vec::new(),
            copied: Vec::new(),
        };
        let mut builder = RecordBatchReceiverStreamBuilder::new(Arc::clone(&self.schema), 2);
        let tx = builder.tx();
        builder.spawn(async move {
            while let Some(batch) = left.next().await {
                let out = state.join(&batch?).await?;
                if tx.send(Ok(out)).await.is_err() {
                    break;
                }
            }
            Ok(())
        });
        Ok(builder.build())
    }
}

/// ASOF / LT JOIN's state between left batches.
struct MergeState {
    kind: TimeJoinKind,
    tolerance: Option<i64>,
    columns: TimeJoinColumns,
    converter: Option<RowConverter>,
    key_types: Vec<DataType>,
    right: Side,
    schema: SchemaRef,
    batch_size: usize,
    /// Right rows picked for the left batch being joined, not yet copied
    /// out.
    pending: Vec<Pick>,
    /// Right columns copied out for the left batch so far.
    copied: Vec<Vec<ArrayRef>>,
}

/// A timestamp column as nanoseconds (wide: microseconds past 2262 fit;
/// NULL sorts before every time).
pub(super) fn nanos(column: &ArrayRef) -> Result<Vec<i128>> {
    let DataType::Timestamp(unit, _) = column.data_type() else {
        return internal_err!("a time join needs timestamps");
    };
    let per = nanos_per_tick(*unit);
    let raw = raw_values(column)?;
    Ok((0..raw.len())
        .map(|i| match raw.is_null(i) {
            true => i128::MIN,
            false => i128::from(raw.value(i)) * i128::from(per),
        })
        .collect())
}

impl MergeState {
    /// Key rows of the left `batch`, cast to the keys' common types.
    fn key_rows(&self, batch: &RecordBatch) -> Result<Option<Rows>> {
        let Some(converter) = &self.converter else {
            return Ok(None);
        };
        let options = arrow::compute::CastOptions {
            safe: false,
            ..Default::default()
        };
        let arrays = self
            .columns
            .left_keys
            .iter()
            .zip(&self.key_types)
            .map(|(c, t)| {
                let a = batch.column(*c);
                match a.data_type() == t {
                    true => Ok(Arc::clone(a)),
                    false => arrow::compute::cast_with_options(a, t, &options)
                        .map_err(DataFusionError::from),
                }
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Some(converter.convert_columns(&arrays)?))
    }

    /// Copies the pending picks' right columns out of the kept batches.
    fn copy_pending(&mut self) -> Result<()> {
        if !self.pending.is_empty() {
            self.copied.push(self.right.columns(&self.pending)?);
            self.pending.clear();
        }
        Ok(())
    }

    /// Takes in right rows up to `time` (ASOF: at or before, LT: before).
    async fn advance(&mut self, time: i128) -> Result<()> {
        loop {
            // A compaction moves kept rows: copy out what was picked first.
            if self.right.exhausted() && self.right.compaction_due(self.batch_size) {
                self.copy_pending()?;
                self.right.compact()?;
            }
            let Some(t) = self.right.peek(self.converter.as_ref()).await? else {
                return Ok(());
            };
            let take = match self.kind {
                TimeJoinKind::LessThan => t < time,
                TimeJoinKind::AsOf | TimeJoinKind::Splice => t <= time,
            };
            if !take {
                return Ok(());
            }
            self.right.take(|_| ())?;
        }
    }

    /// One left batch joined.
    async fn join(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        if batch.num_rows() == 0 {
            return Ok(RecordBatch::new_empty(Arc::clone(&self.schema)));
        }
        let times = nanos(batch.column(self.columns.left_time))?;
        let keys = self.key_rows(batch)?;
        for (i, &time) in times.iter().enumerate() {
            self.advance(time).await?;
            let key: &[u8] = keys.as_ref().map_or(&[], |k| k.row(i).data());
            // A left row without a time matches nothing.
            let pick = match self.right.newest(key) {
                Some((t, at))
                    if time != i128::MIN
                        && self.tolerance.is_none_or(|tol| {
                            time.checked_sub(t).is_some_and(|d| d <= i128::from(tol))
                        }) =>
                {
                    Some(at)
                }
                _ => None,
            };
            self.pending.push(pick);
        }
        self.copy_pending()?;
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        let copied = std::mem::take(&mut self.copied);
        for c in 0..self.right.field_count() {
            let parts: Vec<&dyn Array> = copied.iter().map(|p| p[c].as_ref()).collect();
            columns.push(match parts.len() {
                1 => Arc::clone(&copied[0][c]),
                _ => arrow::compute::concat(&parts)?,
            });
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}
