//! [`LatestOnExec`]: one pass over its input keeping, per key, the row
//! with the newest timestamp (the later row on a tie). The kept rows live
//! in small batches taken from the input; when they hold more than twice
//! the live rows they are compacted, so memory stays proportional to the
//! number of keys. At the end the kept rows come out in timestamp order.

use datafusion::common::HashMap;
use std::fmt;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, UInt32Array};
use arrow::compute::{SortColumn, interleave_record_batch, lexsort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{OwnedRow, RowConverter, SortField};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::common::{exec_err, internal_err};
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

use crate::dialect::time_arithmetic::raw_values;

/// The physical `LatestOn` node (see the module docs).
#[derive(Debug)]
pub struct LatestOnExec {
    input: Arc<dyn ExecutionPlan>,
    timestamp: usize,
    keys: Vec<usize>,
    properties: Arc<PlanProperties>,
}

impl LatestOnExec {
    /// The node over `input`: column `timestamp` is the time, `keys` the
    /// partition.
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        timestamp: usize,
        keys: Vec<usize>,
    ) -> Result<Self> {
        let schema = input.schema();
        if !matches!(
            schema.field(timestamp).data_type(),
            DataType::Timestamp(_, _)
        ) {
            return internal_err!("LatestOnExec needs a timestamp column");
        }
        let properties = PlanProperties::new(
            EquivalenceProperties::new(Arc::clone(&schema)),
            Partitioning::UnknownPartitioning(1),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Ok(LatestOnExec {
            input,
            timestamp,
            keys,
            properties: Arc::new(properties),
        })
    }
}

impl DisplayAs for LatestOnExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let schema = self.input.schema();
        let keys: Vec<&str> = self
            .keys
            .iter()
            .map(|k| schema.field(*k).name().as_str())
            .collect();
        write!(
            f,
            "LatestOnExec: timestamp={}, partition by=[{}]",
            schema.field(self.timestamp).name(),
            keys.join(", ")
        )
    }
}

impl ExecutionPlan for LatestOnExec {
    fn name(&self) -> &'static str {
        "LatestOnExec"
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
            Some(input) if children.is_empty() => Ok(Arc::new(LatestOnExec::try_new(
                input,
                self.timestamp,
                self.keys.clone(),
            )?)),
            _ => internal_err!("LatestOnExec has one input"),
        }
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        if partition != 0 {
            return internal_err!("LatestOnExec has one partition, not {partition}");
        }
        let mut input = self.input.execute(0, Arc::clone(&context))?;
        let schema = self.input.schema();
        let reservation = MemoryConsumer::new("LatestOnExec").register(context.memory_pool());
        let mut latest = Latest::new(
            Arc::clone(&schema),
            self.timestamp,
            self.keys.clone(),
            reservation,
        )?;
        let batch_size = context.session_config().batch_size().max(1);
        let out_schema = Arc::clone(&schema);
        let read = async move {
            while let Some(batch) = input.next().await {
                latest.add(&batch?)?;
            }
            latest.finish()
        };
        let stream = futures_util::stream::once(read).flat_map(move |result| {
            let batches: Vec<Result<RecordBatch>> = match result {
                Ok(all) => (0..all.num_rows())
                    .step_by(batch_size)
                    .map(|at| Ok(all.slice(at, batch_size.min(all.num_rows() - at))))
                    .collect(),
                Err(e) => vec![Err(e)],
            };
            futures_util::stream::iter(batches)
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(out_schema, stream)))
    }
}

/// The newest row per key so far.
struct Latest {
    schema: SchemaRef,
    timestamp: usize,
    keys: Vec<usize>,
    converter: RowConverter,
    /// Per key: its newest timestamp and where its row is kept.
    newest: HashMap<OwnedRow, (i64, usize, usize)>,
    /// Batches holding kept rows (some no longer newest).
    kept: Vec<RecordBatch>,
    kept_rows: usize,
    reservation: MemoryReservation,
}

impl Latest {
    fn new(
        schema: SchemaRef,
        timestamp: usize,
        keys: Vec<usize>,
        reservation: MemoryReservation,
    ) -> Result<Self> {
        let fields = keys
            .iter()
            .map(|k| SortField::new(schema.field(*k).data_type().clone()))
            .collect();
        Ok(Latest {
            converter: RowConverter::new(fields)?,
            schema,
            timestamp,
            keys,
            newest: HashMap::default(),
            kept: Vec::new(),
            kept_rows: 0,
            reservation,
        })
    }

    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let times = raw_values(batch.column(self.timestamp))?;
        let columns: Vec<ArrayRef> = self
            .keys
            .iter()
            .map(|k| Arc::clone(batch.column(*k)))
            .collect();
        let rows = self.converter.convert_columns(&columns)?;
        // This batch's newest row per key (later rows win ties).
        let mut local: HashMap<arrow::row::Row<'_>, (i64, usize)> = HashMap::default();
        for r in 0..batch.num_rows() {
            if times.is_null(r) {
                continue;
            }
            let t = times.value(r);
            let e = local.entry(rows.row(r)).or_insert((t, r));
            if t >= e.0 {
                *e = (t, r);
            }
        }
        let mut take = Vec::new();
        let slot = self.kept.len();
        for (key, (t, r)) in local {
            let wins = match self.newest.get(&key.owned()) {
                Some(&(old, _, _)) => t >= old,
                None => {
                    // A new key's entry counts against the pool.
                    self.reservation.try_grow(key.as_ref().len() + 64)?;
                    true
                }
            };
            if wins {
                let at = take.len();
                take.push(u32::try_from(r).map_err(|_| {
                    datafusion::error::DataFusionError::Internal("batch too large".into())
                })?);
                self.newest.insert(key.owned(), (t, slot, at));
            }
        }
        if take.is_empty() {
            return Ok(());
        }
        let kept = take_record_batch(batch, &UInt32Array::from(take))?;
        self.reservation.try_grow(kept.get_array_memory_size())?;
        self.kept_rows += kept.num_rows();
        self.kept.push(kept);
        if self.kept_rows > 2 * self.newest.len() + 1024 {
            self.compact()?;
        }
        Ok(())
    }

    /// Keeps only the newest rows, in one batch.
    fn compact(&mut self) -> Result<()> {
        let mut picks: Vec<(usize, usize)> =
            self.newest.values().map(|&(_, b, r)| (b, r)).collect();
        picks.sort_unstable();
        let refs: Vec<&RecordBatch> = self.kept.iter().collect();
        let one = match picks.is_empty() {
            true => RecordBatch::new_empty(Arc::clone(&self.schema)),
            false => interleave_record_batch(&refs, &picks)?,
        };
        let place: HashMap<(usize, usize), usize> =
            picks.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        for v in self.newest.values_mut() {
            v.2 = place[&(v.1, v.2)];
            v.1 = 0;
        }
        self.reservation.resize(one.get_array_memory_size());
        self.kept_rows = one.num_rows();
        self.kept = vec![one];
        Ok(())
    }

    /// The newest rows in timestamp order.
    fn finish(mut self) -> Result<RecordBatch> {
        self.compact()?;
        let one = match self.kept.pop() {
            Some(b) => b,
            None => return Ok(RecordBatch::new_empty(self.schema)),
        };
        if one.num_rows() == 0 {
            return Ok(one);
        }
        // By time, then key, so ties come out the same every time.
        let mut sort = vec![SortColumn {
            values: Arc::clone(one.column(self.timestamp)),
            options: None,
        }];
        sort.extend(self.keys.iter().map(|k| SortColumn {
            values: Arc::clone(one.column(*k)),
            options: None,
        }));
        let out = take_record_batch(&one, &lexsort_to_indices(&sort, None)?)?;
        if out.num_rows() != self.newest.len() {
            return exec_err!(
                "LATEST ON kept {} rows for {} keys",
                out.num_rows(),
                self.newest.len()
            );
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool};

    fn batch(schema: &SchemaRef, rows: &[(i64, i64, i64)]) -> RecordBatch {
        RecordBatch::try_new(
            Arc::clone(schema),
            vec![
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.0))),
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.1))),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    rows.iter().map(|r| r.2),
                )),
            ],
        )
        .unwrap()
    }

    fn latest() -> (Latest, SchemaRef) {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("x", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
        ]));
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 30));
        let reservation = MemoryConsumer::new("test").register(&pool);
        (
            Latest::new(Arc::clone(&schema), 2, vec![0], reservation).unwrap(),
            schema,
        )
    }

    fn column(b: &RecordBatch, i: usize) -> Vec<i64> {
        b.column(i)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .values()
            .to_vec()
    }

    #[test]
    fn newest_per_key_with_later_rows_winning_ties_and_out_of_order_times() {
        let (mut l, schema) = latest();
        l.add(&batch(
            &schema,
            &[(1, 10, 5), (2, 20, 5), (1, 11, 5), (2, 21, 3)],
        ))
        .unwrap();
        // An older time later in the scan does not win; an equal one does.
        l.add(&batch(&schema, &[(1, 12, 4), (2, 22, 5), (3, 30, 1)]))
            .unwrap();
        let out = l.finish().unwrap();
        assert_eq!(column(&out, 0), vec![3, 1, 2]);
        assert_eq!(column(&out, 1), vec![30, 11, 22]);
    }

    #[test]
    fn kept_rows_are_compacted_to_one_per_key() {
        let (mut l, schema) = latest();
        for round in 0..8i64 {
            let rows: Vec<(i64, i64, i64)> = (0..1000).map(|k| (k, round, round)).collect();
            l.add(&batch(&schema, &rows)).unwrap();
            // Never more than the bound's worth of rows held.
            assert!(l.kept_rows <= 2 * 1000 + 1024 + 1000, "{}", l.kept_rows);
        }
        assert!(
            l.kept.len() < 8,
            "never compacted: {} batches",
            l.kept.len()
        );
        let out = l.finish().unwrap();
        assert_eq!(out.num_rows(), 1000);
        assert!(column(&out, 1).iter().all(|&x| x == 7));
    }
}
