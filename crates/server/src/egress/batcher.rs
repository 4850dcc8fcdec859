//! Cuts a result stream into batches of the frame's row target: slices of
//! input batches that hold at least that many rows go out as they are
//! (no copy), and smaller batches are joined (copied) by Arrow's
//! `BatchCoalescer`. Rows keep their order. One batch is taken at a time,
//! so the session checks credit and CANCEL between frames.

use std::collections::VecDeque;

use arrow::array::RecordBatch;
use arrow::compute::BatchCoalescer;
use arrow::datatypes::SchemaRef;
use arrow::error::ArrowError;

/// See the module docs.
#[derive(Debug)]
pub struct ResultBatcher {
    target: usize,
    /// Slices of large batches, ready to send, before anything in
    /// `coalescer`.
    ready: VecDeque<RecordBatch>,
    coalescer: BatchCoalescer,
}

impl ResultBatcher {
    /// Batches of `target` rows (at least 1) of `schema`.
    pub fn new(schema: SchemaRef, target: usize) -> Self {
        let target = target.max(1);
        ResultBatcher {
            target,
            ready: VecDeque::new(),
            coalescer: BatchCoalescer::new(schema, target),
        }
    }

    /// Adds the stream's next batch.
    pub fn push_batch(&mut self, batch: RecordBatch) -> Result<(), ArrowError> {
        let rows = batch.num_rows();
        if rows < self.target || !self.coalescer.is_empty() {
            return self.coalescer.push_batch(batch);
        }
        let whole = rows - rows % self.target;
        for offset in (0..whole).step_by(self.target) {
            self.ready.push_back(batch.slice(offset, self.target));
        }
        match whole < rows {
            true => self.coalescer.push_batch(batch.slice(whole, rows - whole)),
            false => Ok(()),
        }
    }

    /// The stream ended: what is buffered becomes the last batch.
    pub fn finish(&mut self) -> Result<(), ArrowError> {
        self.coalescer.finish_buffered_batch()
    }

    /// Whether a batch is ready.
    pub fn has_completed_batch(&self) -> bool {
        !self.ready.is_empty() || self.coalescer.has_completed_batch()
    }

    /// The next ready batch.
    pub fn next_completed_batch(&mut self) -> Option<RecordBatch> {
        self.ready
            .pop_front()
            .or_else(|| self.coalescer.next_completed_batch())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{AsArray, Int64Array};
    use arrow::datatypes::{DataType, Field, Int64Type, Schema};

    use super::*;

    #[test]
    fn order_and_sizes() {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let batch = |r: std::ops::Range<i64>| {
            RecordBatch::try_new(
                schema.clone(),
                vec![Arc::new(Int64Array::from_iter_values(r))],
            )
            .unwrap()
        };
        let mut b = ResultBatcher::new(schema.clone(), 10);
        let mut out = Vec::new();
        let drain = |b: &mut ResultBatcher, out: &mut Vec<RecordBatch>| {
            while let Some(x) = b.next_completed_batch() {
                out.push(x);
            }
        };
        // Small, large while small rows are buffered, large alone, small.
        for r in [0..3, 3..28, 28..28, 28..53, 53..57] {
            b.push_batch(batch(r)).unwrap();
            drain(&mut b, &mut out);
        }
        b.finish().unwrap();
        drain(&mut b, &mut out);
        let values: Vec<i64> = out
            .iter()
            .flat_map(|x| x.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect();
        assert_eq!(values, (0..57).collect::<Vec<_>>());
        assert!(out.iter().all(|x| x.num_rows() <= 10));
        assert_eq!(out.iter().filter(|x| x.num_rows() == 10).count(), 5);
    }
}
