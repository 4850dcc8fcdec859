//! One input of a time join read in timestamp order ([`Side`]): its rows are
//! taken one at a time, each becoming the newest row of its key; only the
//! newest row per key is remembered, in the batches the rows came in,
//! compacted when those hold more than twice the remembered rows, so memory
//! follows the number of keys. ASOF/LT take the right side's rows up to each
//! left row's time ([`super::exec`]); SPLICE ([`splice`]) takes both sides'
//! rows in timestamp order (a left row before a right row of the same
//! time), pairing each with the other side's row in force (NULLs when none).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, RecordBatch, new_null_array};
use arrow::compute::interleave;
use arrow::datatypes::{DataType, SchemaRef};
use arrow::row::{RowConverter, Rows};
use datafusion::common::HashMap;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::MemoryReservation;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures_util::StreamExt;

use super::exec::nanos;

/// A row kept by a side: (kept batch, row).
pub(super) type Pick = Option<(usize, usize)>;

/// One input of the splice.
pub(super) struct Side {
    stream: SendableRecordBatchStream,
    schema: SchemaRef,
    time: usize,
    keys: Vec<usize>,
    key_types: Vec<DataType>,
    kept: Vec<RecordBatch>,
    kept_rows: usize,
    /// Per key: its newest row's time and where it is kept.
    newest: HashMap<Box<[u8]>, (i128, usize, usize)>,
    /// Bytes `newest` is counted as in the pool.
    map_bytes: usize,
    /// The batch being read: its slot, times, key rows, next row.
    cursor: Option<(usize, Vec<i128>, Option<Rows>, usize)>,
    done: bool,
    reservation: MemoryReservation,
}

impl Side {
    pub(super) fn new(
        stream: SendableRecordBatchStream,
        time: usize,
        keys: Vec<usize>,
        key_types: Vec<DataType>,
        reservation: MemoryReservation,
    ) -> Self {
        Side {
            schema: stream.schema(),
            stream,
            time,
            keys,
            key_types,
            kept: Vec::new(),
            kept_rows: 0,
            newest: HashMap::default(),
            map_bytes: 0,
            cursor: None,
            done: false,
            reservation,
        }
    }

    /// Columns of this side.
    pub(super) fn field_count(&self) -> usize {
        self.schema.fields().len()
    }

    /// Whether the next row needs a new batch.
    pub(super) fn exhausted(&self) -> bool {
        self.cursor
            .as_ref()
            .is_none_or(|(_, times, _, pos)| *pos >= times.len())
    }

    pub(super) fn compaction_due(&self, batch_size: usize) -> bool {
        self.kept_rows > 2 * self.newest.len() + 2 * batch_size
    }

    /// The time of the next row (`None` at the end), pulling a batch when
    /// the current one is done.
    pub(super) async fn peek(&mut self, converter: Option<&RowConverter>) -> Result<Option<i128>> {
        while self.exhausted() {
            if self.done {
                return Ok(None);
            }
            let Some(batch) = self.stream.next().await else {
                self.done = true;
                return Ok(None);
            };
            let batch = batch?;
            if batch.num_rows() == 0 {
                continue;
            }
            self.reservation.try_grow(batch.get_array_memory_size())?;
            let times = nanos(batch.column(self.time))?;
            let keys = match converter {
                None => None,
                Some(c) => {
                    let options = arrow::compute::CastOptions {
                        safe: false,
                        ..Default::default()
                    };
                    let arrays = self
                        .keys
                        .iter()
                        .zip(&self.key_types)
                        .map(|(k, t)| {
                            let a = batch.column(*k);
                            match a.data_type() == t {
                                true => Ok(Arc::clone(a)),
                                false => arrow::compute::cast_with_options(a, t, &options)
                                    .map_err(DataFusionError::from),
                            }
                        })
                        .collect::<Result<Vec<ArrayRef>>>()?;
                    Some(c.convert_columns(&arrays)?)
                }
            };
            self.kept_rows += batch.num_rows();
            self.kept.push(batch);
            self.cursor = Some((self.kept.len() - 1, times, keys, 0));
        }
        Ok(self.cursor.as_ref().map(|(_, times, _, pos)| times[*pos]))
    }

    /// Takes the next row (after [`Side::peek`] found one): it becomes its
    /// key's newest. `with_key` sees its key first (to look the key up on
    /// the other side); returns where the row is kept and what `with_key`
    /// gave.
    pub(super) fn take<R>(
        &mut self,
        with_key: impl FnOnce(&[u8]) -> R,
    ) -> Result<((usize, usize), R)> {
        let Some((slot, times, keys, pos)) = &mut self.cursor else {
            return Err(DataFusionError::Internal(
                "a time join took a row past its input".into(),
            ));
        };
        let at = (*slot, *pos);
        let time = times[*pos];
        let key: &[u8] = keys.as_ref().map_or(&[], |k| k.row(*pos).data());
        let seen = with_key(key);
        *pos += 1;
        // A row without a time is never in force.
        if time == i128::MIN {
            return Ok((at, seen));
        }
        match self.newest.get_mut(key) {
            Some(e) => *e = (time, at.0, at.1),
            None => {
                let bytes = key.len() + 64;
                self.reservation.try_grow(bytes)?;
                self.map_bytes += bytes;
                self.newest.insert(key.into(), (time, at.0, at.1));
            }
        }
        Ok((at, seen))
    }

    /// The newest row of `key`: its time and where it is kept.
    pub(super) fn newest(&self, key: &[u8]) -> Option<(i128, (usize, usize))> {
        self.newest.get(key).map(|&(t, s, r)| (t, (s, r)))
    }

    /// This side's columns for `picks` (NULLs where `None`).
    pub(super) fn columns(&self, picks: &[Pick]) -> Result<Vec<ArrayRef>> {
        let miss = self.kept.len();
        let indices: Vec<(usize, usize)> = picks.iter().map(|p| p.unwrap_or((miss, 0))).collect();
        let mut out = Vec::with_capacity(self.schema.fields().len());
        for (c, field) in self.schema.fields().iter().enumerate() {
            let null = new_null_array(field.data_type(), 1);
            let mut arrays: Vec<&dyn Array> =
                self.kept.iter().map(|b| b.column(c).as_ref()).collect();
            arrays.push(null.as_ref());
            out.push(interleave(&arrays, &indices)?);
        }
        Ok(out)
    }

    /// Keeps only the newest rows per key (and the batch being read).
    pub(super) fn compact(&mut self) -> Result<()> {
        // The batch being read stays whole only while rows of it remain;
        // a finished one is folded in like the rest (else, once an input
        // ends, its last batch would keep every compaction due).
        let current = self
            .cursor
            .as_ref()
            .filter(|(_, times, _, pos)| *pos < times.len())
            .map(|c| c.0);
        let mut picks: Vec<(usize, usize)> = self
            .newest
            .values()
            .filter(|v| Some(v.1) != current)
            .map(|v| (v.1, v.2))
            .collect();
        picks.sort_unstable();
        let place: HashMap<(usize, usize), usize> =
            picks.iter().enumerate().map(|(i, p)| (*p, i)).collect();
        let mut kept = Vec::new();
        if !picks.is_empty() {
            let mut columns = Vec::new();
            for c in 0..self.schema.fields().len() {
                let arrays: Vec<&dyn Array> =
                    self.kept.iter().map(|b| b.column(c).as_ref()).collect();
                columns.push(interleave(&arrays, &picks)?);
            }
            kept.push(RecordBatch::try_new(Arc::clone(&self.schema), columns)?);
        }
        let current_slot = kept.len();
        if let Some(slot) = current {
            kept.push(self.kept[slot].clone());
        }
        for v in self.newest.values_mut() {
            (v.1, v.2) = match Some(v.1) == current {
                true => (current_slot, v.2),
                false => (0, place[&(v.1, v.2)]),
            };
        }
        match current {
            Some(_) => {
                if let Some(c) = &mut self.cursor {
                    c.0 = current_slot;
                }
            }
            None => self.cursor = None,
        }
        self.kept_rows = kept.iter().map(RecordBatch::num_rows).sum();
        self.reservation.resize(
            kept.iter()
                .map(RecordBatch::get_array_memory_size)
                .sum::<usize>()
                + self.map_bytes,
        );
        self.kept = kept;
        Ok(())
    }
}

/// Runs the splice, sending output batches of `schema` to `tx` until both
/// inputs end (or the receiver goes away).
pub(super) async fn splice(
    mut left: Side,
    mut right: Side,
    converter: Option<RowConverter>,
    schema: SchemaRef,
    batch_size: usize,
    tx: tokio::sync::mpsc::Sender<Result<RecordBatch>>,
) -> Result<()> {
    let send = async |b: RecordBatch| tx.send(Ok(b)).await.is_ok();
    let mut picks: Vec<(Pick, Pick)> = Vec::with_capacity(batch_size);
    let flush =
        |left: &Side, right: &Side, picks: &mut Vec<(Pick, Pick)>| -> Result<Option<RecordBatch>> {
            if picks.is_empty() {
                return Ok(None);
            }
            let l: Vec<Pick> = picks.iter().map(|p| p.0).collect();
            let r: Vec<Pick> = picks.iter().map(|p| p.1).collect();
            let mut columns = left.columns(&l)?;
            columns.extend(right.columns(&r)?);
            picks.clear();
            Ok(Some(RecordBatch::try_new(Arc::clone(&schema), columns)?))
        };
    loop {
        // A compaction moves kept rows: copy out what was picked first.
        if (left.exhausted() && left.compaction_due(batch_size))
            || (right.exhausted() && right.compaction_due(batch_size))
        {
            if let Some(b) = flush(&left, &right, &mut picks)?
                && !send(b).await
            {
                return Ok(());
            }
            left.compact()?;
            right.compact()?;
        }
        let lt = left.peek(converter.as_ref()).await?;
        let rt = right.peek(converter.as_ref()).await?;
        let take_left = match (lt, rt) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(a), Some(b)) => a <= b,
        };
        if take_left {
            let (at, other) = left.take(|key| right.newest(key).map(|n| n.1))?;
            picks.push((Some(at), other));
        } else {
            let (at, other) = right.take(|key| left.newest(key).map(|n| n.1))?;
            picks.push((other, Some(at)));
        }
        if picks.len() >= batch_size
            && let Some(b) = flush(&left, &right, &mut picks)?
            && !send(b).await
        {
            return Ok(());
        }
    }
    if let Some(b) = flush(&left, &right, &mut picks)? {
        send(b).await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Int64Array, TimestampMicrosecondArray};
    use arrow::datatypes::{Field, Schema, TimeUnit};
    use arrow::row::SortField;
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryConsumer, MemoryPool};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    /// A side over one batch of `rows` rows with keys `i % keys`.
    fn side(rows: i64, keys: i64) -> (Side, RowConverter) {
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Microsecond, None),
                false,
            ),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from_iter_values((0..rows).map(|i| i % keys))),
                Arc::new(TimestampMicrosecondArray::from_iter_values(0..rows)),
            ],
        )
        .unwrap();
        let stream = RecordBatchStreamAdapter::new(
            Arc::clone(&schema),
            futures_util::stream::iter(vec![Ok(batch)]),
        );
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(1 << 30));
        let side = Side::new(
            Box::pin(stream),
            1,
            vec![0],
            vec![DataType::Int64],
            MemoryConsumer::new("test").register(&pool),
        );
        let converter = RowConverter::new(vec![SortField::new(DataType::Int64)]).unwrap();
        (side, converter)
    }

    #[test]
    fn a_finished_input_compacts_once_to_its_newest_rows() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let (mut side, converter) = side(10_000, 10);
            while side.peek(Some(&converter)).await.unwrap().is_some() {
                side.take(|_| ()).unwrap();
            }
            assert!(side.exhausted() && side.compaction_due(16));
            side.compact().unwrap();
            // The finished batch is folded in: ten rows stay, and no
            // compaction is due again (it would run for every later row).
            assert_eq!(side.kept_rows, 10);
            assert!(!side.compaction_due(16));
            let three = converter
                .convert_columns(&[Arc::new(Int64Array::from(vec![3])) as ArrayRef])
                .unwrap();
            let (_, at) = side.newest(three.row(0).data()).unwrap();
            let k = side.columns(&[Some(at)]).unwrap();
            let ts = k[1]
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .unwrap();
            assert_eq!(ts.value(0), 9_993);
        });
    }
}
