//! The function a rewritten `SAMPLE BY` groups by: the start of the bucket
//! a timestamp falls in. One is made per clause and statement, carrying
//! the clause's [`Bucketing`]; it keeps the timestamp's type.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::common::{exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};

use super::bucketing::Bucketing;
use crate::dialect::time_arithmetic::{map_timestamps, ticks_per_second};

/// `__quiver_sample_bucket_<i>(ts)` (see the module docs).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct SampleBucket {
    name: String,
    bucketing: Bucketing,
    signature: Signature,
}

impl SampleBucket {
    /// The function named `name` cutting buckets as `bucketing` does.
    pub fn new(name: String, bucketing: Bucketing) -> Self {
        SampleBucket {
            name,
            bucketing,
            signature: Signature::any(1, Volatility::Immutable),
        }
    }
}

/// Nanoseconds per tick of a timestamp unit.
pub fn nanos_per_tick(unit: TimeUnit) -> i64 {
    1_000_000_000 / ticks_per_second(unit)
}

impl ScalarUDFImpl for SampleBucket {
    fn name(&self) -> &str {
        &self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        match arg_types {
            [t @ DataType::Timestamp(_, _)] => Ok(t.clone()),
            [other] => plan_err!("SAMPLE BY needs a timestamp column, got {other}"),
            _ => plan_err!("the bucket function takes one timestamp"),
        }
    }

    /// A bucket never decreases as its timestamp grows: rows in timestamp
    /// order are in bucket order, so the aggregate over a scan in that
    /// order can group as it streams.
    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        Ok(inputs
            .first()
            .map_or(SortProperties::Singleton, |p| p.sort_properties))
    }

    fn preserves_lex_ordering(&self, _inputs: &[ExprProperties]) -> Result<bool> {
        Ok(true)
    }

    /// The bucket keeps the timestamp's metadata: a designated timestamp
    /// stays the result's designated timestamp, as in QuestDB.
    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let [arg] = args.arg_fields else {
            return plan_err!("the bucket function takes one timestamp");
        };
        let data_type = self.return_type(&[arg.data_type().clone()])?;
        Ok(Arc::new(
            Field::new(self.name(), data_type, true).with_metadata(arg.metadata().clone()),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let DataType::Timestamp(unit, _) = args.args[0].data_type() else {
            return exec_err!("SAMPLE BY needs a timestamp column");
        };
        let per_tick = nanos_per_tick(unit);
        let array = args.args[0].to_array(args.number_rows)?;
        let b = self.bucketing;
        let out = map_timestamps(&array, |v| {
            let start = b.bucket_of(v.checked_mul(per_tick)?)?;
            Some(start.div_euclid(per_tick))
        })?;
        Ok(ColumnarValue::Array(out))
    }
}
