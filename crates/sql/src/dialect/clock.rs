//! QuestDB's clock functions, as TIMESTAMP (microseconds, UTC): `now()`,
//! the time the statement started (one value for the whole statement), and
//! `systimestamp()`, the time each batch is computed.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::datatypes::{DataType, Field, FieldRef, TimeUnit};
use datafusion::common::ScalarValue;
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use quiver_storage::TYPE_METADATA_KEY;

fn micros_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn timestamp_type() -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
}

/// `now()` (fixed at `start`) or `systimestamp()` (read per call).
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Clock {
    name: &'static str,
    /// The statement's start, for `now()`.
    start: Option<i64>,
    signature: Signature,
}

impl Clock {
    /// `now()`: the time this statement started.
    pub fn now() -> Self {
        Clock {
            name: "now",
            start: Some(micros_now()),
            signature: Signature::exact(vec![], Volatility::Stable),
        }
    }

    /// `systimestamp()`: the time of each call.
    pub fn systimestamp() -> Self {
        Clock {
            name: "systimestamp",
            start: None,
            signature: Signature::exact(vec![], Volatility::Volatile),
        }
    }
}

impl ScalarUDFImpl for Clock {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        Ok(timestamp_type())
    }

    fn return_field_from_args(&self, _: ReturnFieldArgs) -> Result<FieldRef> {
        let metadata = HashMap::from([(TYPE_METADATA_KEY.to_string(), "TIMESTAMP".to_string())]);
        Ok(Arc::new(
            Field::new(self.name, timestamp_type(), false).with_metadata(metadata),
        ))
    }

    fn invoke_with_args(&self, _: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let micros = self.start.unwrap_or_else(micros_now);
        Ok(ColumnarValue::Scalar(ScalarValue::TimestampMicrosecond(
            Some(micros),
            Some("UTC".into()),
        )))
    }
}
