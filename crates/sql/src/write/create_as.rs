//! `CREATE TABLE t AS (query)`: the table's column types come from the
//! query's result: a column that still carries its stored QuestDB type
//! keeps it; others take the QuestDB type their Arrow type maps to (as the
//! wire does). A result column no QuestDB type can hold is an error naming
//! it.

use arrow::datatypes::{DataType, Field, TimeUnit};
use quiver_storage::{ColumnType, TYPE_METADATA_KEY};

use super::tokens::invalid;
use crate::error::QueryError;

/// The column type a result field is stored as.
pub fn column_type_of(field: &Field) -> Result<ColumnType, QueryError> {
    if let Some(t) = field
        .metadata()
        .get(TYPE_METADATA_KEY)
        .and_then(|n| ColumnType::from_name(n))
        .filter(|t| &t.read_type() == field.data_type())
    {
        return Ok(t);
    }
    use DataType as D;
    let t = match field.data_type() {
        D::Boolean => ColumnType::Boolean,
        D::Int8 => ColumnType::Byte,
        D::Int16 | D::UInt8 => ColumnType::Short,
        D::Int32 | D::UInt16 => ColumnType::Int,
        D::Int64 | D::UInt32 => ColumnType::Long,
        D::Float16 | D::Float32 => ColumnType::Float,
        D::Float64 => ColumnType::Double,
        D::Utf8 | D::LargeUtf8 | D::Utf8View => ColumnType::Varchar,
        D::Dictionary(_, v) if matches!(**v, D::Utf8 | D::LargeUtf8 | D::Utf8View) => {
            ColumnType::Symbol
        }
        D::Binary | D::LargeBinary | D::BinaryView => ColumnType::Binary,
        D::Timestamp(TimeUnit::Nanosecond, _) => ColumnType::TimestampNanos,
        D::Timestamp(TimeUnit::Millisecond, _) | D::Date32 | D::Date64 => ColumnType::Date,
        D::Timestamp(_, _) => ColumnType::Timestamp,
        D::FixedSizeBinary(16) => ColumnType::Uuid,
        D::FixedSizeBinary(32) => ColumnType::Long256,
        D::Decimal32(_, s) | D::Decimal64(_, s) if *s >= 0 => {
            ColumnType::Decimal64(s.unsigned_abs())
        }
        D::Decimal128(_, s) if *s >= 0 => ColumnType::Decimal128(s.unsigned_abs()),
        D::Decimal256(_, s) if *s >= 0 => ColumnType::Decimal256(s.unsigned_abs()),
        D::List(_) | D::LargeList(_) => match list_leaf(field.data_type()) {
            (D::Float64, rank) => ColumnType::DoubleArray(rank),
            (D::Int64, rank) => ColumnType::LongArray(rank),
            _ => return Err(unstorable(field)),
        },
        _ => return Err(unstorable(field)),
    };
    Ok(t)
}

fn unstorable(field: &Field) -> QueryError {
    invalid(format!(
        "column {} of type {} cannot be stored: cast it to a QuestDB type",
        field.name(),
        field.data_type()
    ))
}

/// The leaf type of nested lists and their depth.
fn list_leaf(t: &DataType) -> (DataType, u8) {
    match t {
        DataType::List(f) | DataType::LargeList(f) => {
            let (leaf, rank) = list_leaf(f.data_type());
            (leaf, rank.saturating_add(1))
        }
        other => (other.clone(), 0),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn result_fields_to_column_types() {
        let f = |t: DataType| Field::new("c", t, true);
        assert_eq!(
            column_type_of(&f(DataType::Int64)).unwrap(),
            ColumnType::Long
        );
        assert_eq!(
            column_type_of(&f(DataType::Timestamp(TimeUnit::Nanosecond, None))).unwrap(),
            ColumnType::TimestampNanos
        );
        let list = DataType::List(Arc::new(Field::new(
            "item",
            DataType::List(Arc::new(Field::new("item", DataType::Float64, true))),
            true,
        )));
        assert_eq!(
            column_type_of(&f(list)).unwrap(),
            ColumnType::DoubleArray(2)
        );
        // A stored type wins where the Arrow type agrees.
        let ip = f(DataType::UInt32).with_metadata(HashMap::from([(
            TYPE_METADATA_KEY.to_string(),
            "IPV4".to_string(),
        )]));
        assert_eq!(column_type_of(&ip).unwrap(), ColumnType::Ipv4);
        assert!(column_type_of(&f(DataType::Null)).is_err());
    }
}
