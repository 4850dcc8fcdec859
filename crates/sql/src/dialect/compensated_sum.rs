//! QuestDB's compensated sums: `ksum(x)` (Kahan) and `nsum(x)` (Neumaier)
//! of any numeric column, as DOUBLE: the rounding error of each addition
//! is carried along, so many small values next to large ones are not lost
//! (`sum` would lose them). NULLs are skipped; no value gives NULL.

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Float64Array};
use arrow::datatypes::{DataType, Field, FieldRef, Float64Type};
use datafusion::common::{ScalarValue, internal_err};
use datafusion::error::Result;
use datafusion::logical_expr::function::{AccumulatorArgs, StateFieldsArgs};
use datafusion::logical_expr::utils::format_state_name;
use datafusion::logical_expr::{Accumulator, AggregateUDFImpl, Signature, Volatility};

/// `ksum` or `nsum` (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct CompensatedSum {
    neumaier: bool,
    signature: Signature,
}

impl CompensatedSum {
    /// `ksum`: Kahan summation.
    pub fn kahan() -> Self {
        CompensatedSum {
            neumaier: false,
            signature: Signature::uniform(1, vec![DataType::Float64], Volatility::Immutable),
        }
    }

    /// `nsum`: Neumaier summation (also exact when a value is larger than
    /// the running sum).
    pub fn neumaier() -> Self {
        CompensatedSum {
            neumaier: true,
            ..Self::kahan()
        }
    }
}

impl AggregateUDFImpl for CompensatedSum {
    fn name(&self) -> &str {
        match self.neumaier {
            true => "nsum",
            false => "ksum",
        }
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn accumulator(&self, acc_args: AccumulatorArgs) -> Result<Box<dyn Accumulator>> {
        if acc_args.is_distinct {
            return datafusion::common::plan_err!("{}(DISTINCT ...) is not supported", self.name());
        }
        Ok(Box::new(SumAccumulator {
            neumaier: self.neumaier,
            sum: 0.0,
            compensation: 0.0,
            seen: false,
        }))
    }

    fn state_fields(&self, args: StateFieldsArgs) -> Result<Vec<FieldRef>> {
        Ok(vec![
            Arc::new(Field::new(
                format_state_name(args.name, "sum"),
                DataType::Float64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "compensation"),
                DataType::Float64,
                true,
            )),
            Arc::new(Field::new(
                format_state_name(args.name, "seen"),
                DataType::Boolean,
                true,
            )),
        ])
    }
}

/// A running compensated sum.
#[derive(Debug)]
struct SumAccumulator {
    neumaier: bool,
    sum: f64,
    /// Kahan: the error to take off the next addition; Neumaier: the error
    /// to add at the end.
    compensation: f64,
    seen: bool,
}

impl SumAccumulator {
    fn add(&mut self, x: f64) {
        self.seen = true;
        if self.neumaier {
            let t = self.sum + x;
            self.compensation += match self.sum.abs() >= x.abs() {
                true => (self.sum - t) + x,
                false => (x - t) + self.sum,
            };
            self.sum = t;
        } else {
            let y = x - self.compensation;
            let t = self.sum + y;
            self.compensation = (t - self.sum) - y;
            self.sum = t;
        }
    }

    fn value(&self) -> f64 {
        match self.neumaier {
            true => self.sum + self.compensation,
            false => self.sum,
        }
    }
}

impl Accumulator for SumAccumulator {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let Some(values) = values.first() else {
            return internal_err!("a sum takes one argument");
        };
        let values = values.as_primitive::<Float64Type>();
        for v in values.iter().flatten() {
            self.add(v);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        Ok(ScalarValue::Float64(self.seen.then(|| self.value())))
    }

    fn size(&self) -> usize {
        std::mem::size_of_val(self)
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![
            ScalarValue::Float64(Some(self.sum)),
            ScalarValue::Float64(Some(self.compensation)),
            ScalarValue::Boolean(Some(self.seen)),
        ])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        let [sums, compensations, seen] = states else {
            return internal_err!("a sum's state has three parts");
        };
        let sums: &Float64Array = sums.as_primitive();
        let compensations: &Float64Array = compensations.as_primitive();
        let seen: &BooleanArray = seen.as_boolean();
        for i in 0..sums.len() {
            if seen.is_null(i) || !seen.value(i) {
                continue;
            }
            // The other sum's value, both of its parts carried in.
            self.add(sums.value(i));
            match self.neumaier {
                true => self.compensation += compensations.value(i),
                false => self.add(-compensations.value(i)),
            }
        }
        Ok(())
    }
}
