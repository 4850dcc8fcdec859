//! Cuts a result stream into batches of at most the frame's row target:
//! input batches (and slices of larger ones) of at least half the target
//! go out as they are (no copy), and smaller ones are joined (copied) by
//! Arrow's `BatchCoalescer` into batches of the target. Rows keep their
//! order. One batch is taken at a time, so the session checks credit and
//! CANCEL between frames.

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

    /// Whether `rows` go out without being joined to others.
    fn large(&self, rows: usize) -> bool {
        rows >= self.target.div_ceil(2)
    }

    /// Adds the stream's next batch.
    pub fn push_batch(&mut self, batch: RecordBatch) -> Result<(), ArrowError> {
        let rows = batch.num_rows();
        if !self.large(rows) || !self.coalescer.is_empty() {
            return self.coalescer.push_batch(batch);
        }
        let whole = rows - rows % self.target;
        for offset in (0..whole).step_by(self.target) {
            self.ready.push_back(batch.slice(offset, self.target));
        }
        let rest = rows - whole;
        match rest {
            0 => Ok(()),
            _ if self.large(rest) => {
                self.ready.push_back(batch.slice(whole, rest));
                Ok(())
            }
            _ => self.coalescer.push_batch(batch.slice(whole, rest)),
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

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
    }

    /// One Int64 column `v` holding `r`.
    fn batch(r: std::ops::Range<i64>) -> RecordBatch {
        RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from_iter_values(r))]).unwrap()
    }

    #[test]
    fn order_and_sizes() {
        let schema = schema();
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

    #[test]
    fn batches_of_half_the_target_or_more_are_not_copied() {
        let schema = schema();
        let mut b = ResultBatcher::new(schema.clone(), 10);
        // 7 rows alone; 23 as 10 + 10 + 3, the 3 joined with the next 2.
        let (seven, twenty_three) = (batch(0..7), batch(7..30));
        b.push_batch(seven.clone()).unwrap();
        b.push_batch(twenty_three.clone()).unwrap();
        b.push_batch(batch(30..32)).unwrap();
        b.finish().unwrap();
        let mut out = Vec::new();
        while let Some(x) = b.next_completed_batch() {
            out.push(x);
        }
        let rows: Vec<usize> = out.iter().map(|x| x.num_rows()).collect();
        assert_eq!(rows, [7, 10, 10, 5]);
        // The first three share their input's buffers.
        let values = |x: &RecordBatch| x.column(0).as_primitive::<Int64Type>().values().as_ptr();
        assert_eq!(values(&out[0]), values(&seven));
        assert_eq!(values(&out[1]), values(&twenty_three));
        assert_eq!(values(&out[2]), at_row(&twenty_three, 10));
    }

    /// Where row `row` of `x`'s first column lies.
    fn at_row(x: &RecordBatch, row: usize) -> *const i64 {
        x.column(0).as_primitive::<Int64Type>().values()[row..].as_ptr()
    }
}
