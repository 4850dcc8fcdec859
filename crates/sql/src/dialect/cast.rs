//! `questdb_cast(value, 'TYPE')`: what `value::TYPE` and `CAST(value AS
//! TYPE)` become for QuestDB's own types ([`crate::dialect::rewrite`]
//! turns the casts into calls). The result is the type's Arrow read type
//! with `quiver.type` field metadata naming it, so an IPV4 goes out as
//! IPV4 and not as the integer Arrow holds it in; values convert as INSERT
//! converts them (text to IPV4, UUID, LONG256, CHAR, GEOHASH and
//! timestamps; integers to timestamps in the type's own unit).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, FieldRef};
use datafusion::common::{ScalarValue, exec_err, plan_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    ColumnarValue, ReturnFieldArgs, ScalarFunctionArgs, ScalarUDFImpl, Signature, Volatility,
};
use quiver_storage::{ColumnType, TYPE_METADATA_KEY};

use crate::write::to_stored::{Target, convert};

/// The function's name.
pub const NAME: &str = "questdb_cast";

/// See the module docs.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct QuestdbCast {
    signature: Signature,
}

impl QuestdbCast {
    /// The function.
    pub fn new() -> Self {
        QuestdbCast {
            signature: Signature::any(2, Volatility::Immutable),
        }
    }
}

impl Default for QuestdbCast {
    fn default() -> Self {
        Self::new()
    }
}

fn target_type(name: Option<&ScalarValue>) -> Result<ColumnType> {
    let name = match name {
        Some(ScalarValue::Utf8(Some(n)) | ScalarValue::Utf8View(Some(n))) => n,
        _ => return plan_err!("{NAME} takes a type name literal"),
    };
    match ColumnType::from_name(name) {
        Some(t) => Ok(t),
        None => plan_err!("unknown type {name}"),
    }
}

impl ScalarUDFImpl for QuestdbCast {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _: &[DataType]) -> Result<DataType> {
        // Only called without scalar arguments, which this function needs.
        exec_err!("{NAME}'s type comes from return_field_from_args")
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        let t = target_type(args.scalar_arguments.get(1).copied().flatten())?;
        let metadata = HashMap::from([(TYPE_METADATA_KEY.to_string(), t.name())]);
        Ok(Arc::new(
            Field::new(NAME, t.read_type(), true).with_metadata(metadata),
        ))
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let name = match args.args.get(1) {
            Some(ColumnarValue::Scalar(s)) => Some(s),
            _ => None,
        };
        let t = target_type(name)?;
        let scalar_input = matches!(args.args.first(), Some(ColumnarValue::Scalar(_)));
        let Some(value) = args.args.into_iter().next() else {
            return exec_err!("{NAME} takes a value");
        };
        let array = value.into_array(args.number_rows)?;
        let out = convert(&array, &Target::Cast(t))
            .map_err(|e| datafusion::error::DataFusionError::Execution(e.message))?;
        Ok(match scalar_input {
            true => ColumnarValue::Scalar(ScalarValue::try_from_array(&out, 0)?),
            false => ColumnarValue::Array(out),
        })
    }
}
