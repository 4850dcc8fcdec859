//! [`SampleByExec`]: the physical `SampleBy` node. It reads the grouped
//! rows of a SAMPLE BY query (one per bucket and key: small next to the
//! table, counted against the query's memory pool), then streams them in
//! batches ordered by bucket and key, filling empty buckets:
//!
//! - without FILL, rows are only ordered;
//! - with FILL, the buckets run from the first to the last (or from FROM
//!   to TO) and every key seen in the result gets a row in every bucket;
//!   a missing one gets NULL, a constant, its previous value (PREV, NULL
//!   before its first) or a value on the line through its neighbours
//!   (LINEAR, extrapolated from the two nearest at the edges).
//!
//! It must not read the table: its input is the aggregate.

use std::fmt;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt32Array,
    new_null_array,
};
use arrow::compute::{
    CastOptions, SortColumn, cast, cast_with_options, concat_batches, interleave,
    lexsort_to_indices, take,
};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{RowConverter, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_err, internal_err, plan_err};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, Distribution, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures_util::StreamExt;

use super::bucket_function::nanos_per_tick;
use super::bucketing::Bucketing;
use super::clause::Fill;
use crate::dialect::time_arithmetic::{as_timestamps, raw_values};

/// Most rows a filled SAMPLE BY may produce (buckets times keys): a short
/// query cannot ask for an endless stream.
const MAX_FILLED_ROWS: i128 = 100_000_000;

/// Which input column is what, and how buckets are cut and filled.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FillLayout {
    /// The bucket (designated timestamp) column.
    pub bucket: usize,
    /// Key columns.
    pub keys: Vec<usize>,
    /// Aggregate columns and how each is filled.
    pub values: Vec<(usize, Fill)>,
    /// How buckets are cut.
    pub bucketing: Bucketing,
    /// `FROM` and `TO` (exclusive) as UTC nanoseconds.
    pub range: (Option<i64>, Option<i64>),
    /// The clause as written.
    pub text: String,
}

impl FillLayout {
    fn fills(&self) -> bool {
        self.values.iter().any(|(_, f)| *f != Fill::None)
    }
}

impl fmt::Display for FillLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fills: Vec<String> = self.values.iter().map(|(_, m)| m.to_string()).collect();
        write!(
            f,
            "{}, bucket=#{}, keys={:?}, fill=[{}]",
            self.text,
            self.bucket,
            self.keys,
            fills.join(", ")
        )
    }
}

/// The physical `SampleBy` node (see the module docs).
#[derive(Debug)]
pub struct SampleByExec {
    input: Arc<dyn ExecutionPlan>,
    layout: Arc<FillLayout>,
    schema: SchemaRef,
    properties: Arc<PlanProperties>,
}

impl SampleByExec {
    /// The node over `input` (the grouped rows), producing `schema`.
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        layout: Arc<FillLayout>,
        schema: SchemaRef,
    ) -> Result<Self> {
        let input_schema = input.schema();
        if input_schema.fields().len() != schema.fields().len() {
            return internal_err!("SampleBy changes no columns");
        }
        if !matches!(
            input_schema.field(layout.bucket).data_type(),
            DataType::Timestamp(_, _)
        ) {
            return plan_err!("SAMPLE BY needs a timestamp column");
        }
        for (c, fill) in &layout.values {
            let t = input_schema.field(*c).data_type();
            if *fill == Fill::Linear && !t.is_numeric() {
                return plan_err!(
                    "FILL(LINEAR) needs a numeric column, and {} is {t}",
                    input_schema.field(*c).name()
                );
            }
            if let Fill::Value(v) = fill {
                constant(v, t, input_schema.field(*c).name())?;
            }
        }
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(SampleByExec {
            input,
            layout,
            schema,
            properties: Arc::new(properties),
        })
    }
}

/// A FILL constant as a one-row array of the column's type.
fn constant(text: &str, to: &DataType, column: &str) -> Result<ArrayRef> {
    let array: ArrayRef = Arc::new(StringArray::from(vec![text]));
    let options = CastOptions {
        safe: false,
        ..Default::default()
    };
    match cast_with_options(&array, to, &options) {
        Ok(a) => Ok(a),
        Err(_) => plan_err!("FILL value {text:?} does not fit column {column} ({to})"),
    }
}

impl DisplayAs for SampleByExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SampleByExec: {}", self.layout)
    }
}

impl ExecutionPlan for SampleByExec {
    fn name(&self) -> &'static str {
        "SampleByExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn required_input_distribution(&self) -> Vec<Distribution> {
        vec![Distribution::SinglePartition]
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
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
        match children.pop() {
            Some(input) if children.is_empty() => Ok(Arc::new(SampleByExec::try_new(
                input,
                Arc::clone(&self.layout),
                Arc::clone(&self.schema),
            )?)),
            _ => internal_err!("SampleByExec has one input"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("SampleByExec has one partition, not {partition}");
        }
        let mut input = self.input.execute(0, Arc::clone(&context))?;
        let reservation = MemoryConsumer::new("SampleByExec").register(context.memory_pool());
        let batch_size = context.session_config().batch_size();
        let layout = Arc::clone(&self.layout);
        let schema = Arc::clone(&self.schema);
        let input_schema = self.input.schema();
        let read = async move {
            let mut batches = Vec::new();
            while let Some(batch) = input.next().await {
                let batch = batch?;
                reservation.try_grow(batch.get_array_memory_size())?;
                batches.push(batch);
            }
            let data = concat_batches(&input_schema, &batches)?;
            drop(batches);
            Sweep::new(data, layout, schema, batch_size, reservation)
        };
        let stream = futures_util::stream::once(read).flat_map(|sweep| match sweep {
            Ok(sweep) => futures_util::stream::iter(sweep).boxed(),
            Err(e) => futures_util::stream::iter(std::iter::once(Err(e))).boxed(),
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            Arc::clone(&self.schema),
            stream,
        )))
    }
}

/// One key's rows: bucket numbers and row indices, by bucket.
struct Group {
    /// A row holding the key's values.
    row: Option<usize>,
    points: Vec<(i64, usize)>,
    /// Points already emitted.
    next: usize,
}

/// An output row.
enum Slot {
    /// An input row as it is.
    Row(usize),
    /// A filled row of `group` in bucket `index` starting at `start`
    /// (nanoseconds); `at` is the group's next point.
    Fill {
        group: usize,
        index: i64,
        start: i64,
        at: usize,
    },
}

enum Plan {
    /// Input rows in this order.
    Ordered {
        order: UInt32Array,
        next: usize,
    },
    /// Buckets `index..=last`, groups from `group` on in the current one.
    Filled {
        groups: Vec<Group>,
        index: i64,
        last: i64,
        group: usize,
    },
    Done,
}

/// Produces the output batches of [`SampleByExec`].
struct Sweep {
    data: RecordBatch,
    schema: SchemaRef,
    layout: Arc<FillLayout>,
    batch_size: usize,
    per_tick: i64,
    buckets: Int64Array,
    /// Per value column: its FILL constant, and its values as f64 for LINEAR.
    constants: Vec<Option<ArrayRef>>,
    floats: Vec<Option<Float64Array>>,
    plan: Plan,
    _reservation: MemoryReservation,
}

impl Sweep {
    fn new(
        data: RecordBatch,
        layout: Arc<FillLayout>,
        schema: SchemaRef,
        batch_size: usize,
        reservation: MemoryReservation,
    ) -> Result<Self> {
        let bucket_column = data.column(layout.bucket);
        let DataType::Timestamp(unit, _) = bucket_column.data_type() else {
            return exec_err!("SAMPLE BY needs a timestamp column");
        };
        let per_tick = nanos_per_tick(*unit);
        let buckets = raw_values(bucket_column)?;
        let mut constants = Vec::new();
        let mut floats = Vec::new();
        for (c, fill) in &layout.values {
            let column = data.column(*c);
            let name = data.schema().field(*c).name().clone();
            constants.push(match fill {
                Fill::Value(v) => Some(constant(v, column.data_type(), &name)?),
                _ => None,
            });
            floats.push(match fill {
                Fill::Linear => Some(
                    cast(column, &DataType::Float64)?
                        .as_any()
                        .downcast_ref::<Float64Array>()
                        .cloned()
                        .ok_or_else(|| {
                            datafusion::error::DataFusionError::Internal("cast to f64".into())
                        })?,
                ),
                _ => None,
            });
        }
        let plan = match layout.fills() {
            false => {
                let mut sort = vec![SortColumn {
                    values: Arc::clone(bucket_column),
                    options: None,
                }];
                sort.extend(layout.keys.iter().map(|k| SortColumn {
                    values: Arc::clone(data.column(*k)),
                    options: None,
                }));
                Plan::Ordered {
                    order: lexsort_to_indices(&sort, None)?,
                    next: 0,
                }
            }
            true => Self::groups(&data, &layout, &buckets, per_tick)?,
        };
        Ok(Sweep {
            data,
            schema,
            layout,
            batch_size: batch_size.max(1),
            per_tick,
            buckets,
            constants,
            floats,
            plan,
            _reservation: reservation,
        })
    }

    /// Each key's points, keys in order, and the buckets to run through.
    fn groups(
        data: &RecordBatch,
        layout: &FillLayout,
        buckets: &Int64Array,
        per_tick: i64,
    ) -> Result<Plan> {
        let b = &layout.bucketing;
        let index_of = |r: usize| -> Option<i64> {
            if buckets.is_null(r) {
                return None;
            }
            b.index_of(buckets.value(r).checked_mul(per_tick)?)
        };
        let mut groups: Vec<Group> = Vec::new();
        if layout.keys.is_empty() {
            groups.push(Group {
                row: None,
                points: (0..data.num_rows())
                    .filter_map(|r| index_of(r).map(|i| (i, r)))
                    .collect(),
                next: 0,
            });
        } else {
            let fields = layout
                .keys
                .iter()
                .map(|k| SortField::new(data.schema().field(*k).data_type().clone()))
                .collect();
            let converter = RowConverter::new(fields)?;
            let columns: Vec<ArrayRef> = layout
                .keys
                .iter()
                .map(|k| Arc::clone(data.column(*k)))
                .collect();
            let rows = converter.convert_columns(&columns)?;
            let mut by_key: datafusion::common::HashMap<&[u8], usize> = Default::default();
            let mut keyed: Vec<(&[u8], Group)> = Vec::new();
            for r in 0..data.num_rows() {
                let key = rows.row(r).data();
                let g = *by_key.entry(key).or_insert_with(|| {
                    keyed.push((
                        key,
                        Group {
                            row: Some(r),
                            points: Vec::new(),
                            next: 0,
                        },
                    ));
                    keyed.len() - 1
                });
                if let Some(i) = index_of(r) {
                    keyed[g].1.points.push((i, r));
                }
            }
            // Keys in value order within each bucket.
            keyed.sort_by(|a, b| a.0.cmp(b.0));
            groups = keyed.into_iter().map(|(_, g)| g).collect();
        }
        for g in &mut groups {
            g.points.sort_unstable();
        }
        let seen = groups.iter().flat_map(|g| g.points.iter().map(|p| p.0));
        let (mut first, mut last) = (None::<i64>, None::<i64>);
        for i in seen {
            first = Some(first.map_or(i, |f| f.min(i)));
            last = Some(last.map_or(i, |l| l.max(i)));
        }
        let from = layout.range.0.and_then(|f| b.index_of(f));
        let to = layout.range.1.and_then(|t| b.index_of(t.checked_sub(1)?));
        let first = [first, from].into_iter().flatten().min();
        let last = [last, to].into_iter().flatten().max();
        if let (Some(first), Some(last)) = (first, last) {
            let rows = (i128::from(last) - i128::from(first) + 1) * groups.len() as i128;
            if rows > MAX_FILLED_ROWS {
                return exec_err!(
                    "{}: filling would produce {rows} rows, at most {MAX_FILLED_ROWS}: narrow FROM/TO or use a longer stride",
                    layout.text
                );
            }
        }
        Ok(match (first, last) {
            (Some(index), Some(last)) if !groups.is_empty() => Plan::Filled {
                groups,
                index,
                last,
                group: 0,
            },
            _ => Plan::Done,
        })
    }

    /// The next batch's rows.
    fn slots(&mut self) -> Vec<Slot> {
        let mut slots = Vec::new();
        let size = self.batch_size;
        match &mut self.plan {
            Plan::Done => {}
            Plan::Ordered { order, next } => {
                let end = (*next + size).min(order.len());
                slots.extend((*next..end).map(|i| Slot::Row(order.value(i) as usize)));
                *next = end;
                if end == order.len() {
                    self.plan = Plan::Done;
                }
            }
            Plan::Filled {
                groups,
                index,
                last,
                group,
            } => {
                let b = self.layout.bucketing;
                while slots.len() < size && *index <= *last {
                    let Some(start) = b.start_of(*index) else {
                        *index = *last + 1;
                        break;
                    };
                    while *group < groups.len() && slots.len() < size {
                        let g = &mut groups[*group];
                        match g.points.get(g.next) {
                            Some(&(i, row)) if i == *index => {
                                slots.push(Slot::Row(row));
                                g.next += 1;
                            }
                            _ => slots.push(Slot::Fill {
                                group: *group,
                                index: *index,
                                start,
                                at: g.next,
                            }),
                        }
                        *group += 1;
                    }
                    if *group == groups.len() {
                        *group = 0;
                        *index += 1;
                    }
                }
                if *index > *last {
                    // Keep the groups for the slots' fill values.
                    let groups = std::mem::take(groups);
                    self.plan = Plan::Filled {
                        groups,
                        index: 1,
                        last: 0,
                        group: 0,
                    };
                }
            }
        }
        slots
    }

    fn groups_ref(&self) -> &[Group] {
        match &self.plan {
            Plan::Filled { groups, .. } => groups,
            _ => &[],
        }
    }

    /// The output batch of `slots`.
    fn batch(&self, slots: &[Slot]) -> Result<RecordBatch> {
        let groups = self.groups_ref();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.data.num_columns());
        for c in 0..self.data.num_columns() {
            let column = self.data.column(c);
            if c == self.layout.bucket {
                let values: Int64Array = slots
                    .iter()
                    .map(|s| match s {
                        Slot::Row(r) => (!self.buckets.is_null(*r)).then(|| self.buckets.value(*r)),
                        Slot::Fill { start, .. } => Some(start.div_euclid(self.per_tick)),
                    })
                    .collect();
                columns.push(as_timestamps(values, column.data_type())?);
                continue;
            }
            if let Some(v) = self.layout.values.iter().position(|(i, _)| *i == c) {
                columns.push(self.value_column(v, slots, groups)?);
                continue;
            }
            // A key: a filled row takes the key's values from one of its rows.
            let rows: UInt32Array = slots
                .iter()
                .map(|s| {
                    let r = match s {
                        Slot::Row(r) => Some(*r),
                        Slot::Fill { group, .. } => groups.get(*group).and_then(|g| g.row),
                    };
                    r.and_then(|r| u32::try_from(r).ok())
                })
                .collect();
            columns.push(take(column, &rows, None)?);
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    /// Value column number `v` of the output.
    fn value_column(&self, v: usize, slots: &[Slot], groups: &[Group]) -> Result<ArrayRef> {
        let (c, fill) = &self.layout.values[v];
        let column = self.data.column(*c);
        let null = new_null_array(column.data_type(), 1);
        let constant = self.constants[v]
            .clone()
            .unwrap_or_else(|| Arc::clone(&null));
        let mut linear: Vec<Option<f64>> = Vec::new();
        let mut indices = Vec::with_capacity(slots.len());
        for s in slots {
            indices.push(match s {
                Slot::Row(r) => (0, *r),
                Slot::Fill {
                    group, index, at, ..
                } => {
                    let points = groups.get(*group).map_or(&[][..], |g| &g.points[..]);
                    match fill {
                        Fill::None | Fill::Null => (1, 0),
                        Fill::Value(_) => (2, 0),
                        Fill::Prev => match at.checked_sub(1).and_then(|p| points.get(p)) {
                            Some(&(_, row)) => (0, row),
                            None => (1, 0),
                        },
                        Fill::Linear => {
                            linear.push(self.interpolate(v, points, *at, *index));
                            (3, linear.len() - 1)
                        }
                    }
                }
            });
        }
        let linear: ArrayRef = Arc::new(Float64Array::from(linear));
        let linear = cast(&linear, column.data_type())?;
        let sources: [&dyn Array; 4] = [
            column.as_ref(),
            null.as_ref(),
            constant.as_ref(),
            linear.as_ref(),
        ];
        Ok(interleave(&sources, &indices)?)
    }

    /// The value on the line through the two points around `at` (the
    /// two nearest at the edges), at bucket `index`.
    fn interpolate(&self, v: usize, points: &[(i64, usize)], at: usize, index: i64) -> Option<f64> {
        let values = self.floats[v].as_ref()?;
        if points.len() < 2 {
            return None;
        }
        let (a, b) = match at {
            0 => (0, 1),
            n if n >= points.len() => (points.len() - 2, points.len() - 1),
            n => (n - 1, n),
        };
        let ((x0, r0), (x1, r1)) = (points[a], points[b]);
        if values.is_null(r0) || values.is_null(r1) || x0 == x1 {
            return None;
        }
        let (y0, y1) = (values.value(r0), values.value(r1));
        Some(y0 + (y1 - y0) * (index - x0) as f64 / (x1 - x0) as f64)
    }
}

impl Iterator for Sweep {
    type Item = Result<RecordBatch>;

    fn next(&mut self) -> Option<Self::Item> {
        let slots = self.slots();
        if slots.is_empty() {
            return None;
        }
        Some(self.batch(&slots))
    }
}
