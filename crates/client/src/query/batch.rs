//! Result batches as Arrow: the schema fixed by batch 0, then every
//! RESULT_BATCH's columns as arrays of that schema.
//!
//! | QWP | Arrow | field metadata |
//! |---|---|---|
//! | SYMBOL | Dictionary(UInt32, Utf8), only the batch's referenced values | `questdb.symbol=true` |
//! | UUID | FixedSizeBinary(16), RFC 4122 order | `ARROW:extension:name=arrow.uuid` |
//! | GEOHASH(p) | Int8/16/32/64 by p | `questdb.geohash_bits=p` |
//! | DOUBLE/LONG_ARRAY of rank r | r nested Lists | `questdb.array_dim=r` |
//! | others | as [`quiver_qwp::arrow`] maps them | |
//!
//! Every field also carries `questdb.column_type` (the QuestDB type in
//! lower case, as the official clients write it), so a result sent back
//! through [`crate::Sender::flush_batch`] keeps its types. Dense values that
//! are QuestDB's NULL sentinels are NULL. An array column whose first
//! batches hold only NULLs is typed by the first batch with an array in
//! it (the stream reads a few batches ahead to find one, see
//! [`ResultSchema::settle`]); a later batch of another rank is an error (a
//! reader's schema cannot change).
//!
//! Each batch's SYMBOL columns carry their own dictionary, so batches of
//! one result hold different dictionaries: an Arrow IPC *stream* writer
//! takes that (as replacement dictionaries), an IPC *file* writer refuses
//! it; cast to Utf8 or unify the dictionaries first for files.
//!
//! What it must not do: read frames or hold connection state beyond the
//! scratch map it is lent.

use std::collections::HashMap;
use std::sync::Arc;

use arrow_array::types::UInt32Type;
use arrow_array::{
    Array, ArrayRef, DictionaryArray, RecordBatch, RecordBatchOptions, StringArray, new_null_array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef};
use quiver_qwp::arrow::{ToArrowError, array_rank, arrow_type, column_to_array};
use quiver_qwp::{ColumnData, ResultBatch, SymbolDictionary, Symbols, TypeCode, Values};

/// Why a batch could not become Arrow data (a protocol-level fault of the
/// server's frame, never retried).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BatchError {
    /// Batch 0 carried no schema.
    #[error("the first batch has no schema")]
    NoSchema,
    /// Column counts differ between the schema and a batch.
    #[error("a batch has {got} columns, the schema {expected}")]
    ColumnCount {
        /// In the schema.
        expected: usize,
        /// In the batch.
        got: usize,
    },
    /// A column's values cannot be converted.
    #[error("column {column:?}: {reason}")]
    Column {
        /// The column.
        column: String,
        /// Why.
        reason: String,
    },
}

/// Scratch for SYMBOL columns: output key per dictionary id (`u32::MAX`
/// for ids the batch has not used yet; kept all-unused between batches,
/// so a batch costs its rows, not the dictionary's size), and the ids
/// used, in key order.
#[derive(Debug, Default)]
pub(crate) struct SymbolKeys {
    by_id: Vec<u32>,
    used: Vec<u32>,
}

/// The result's schema and how to read each batch into it.
#[derive(Debug, Clone)]
pub(crate) struct ResultSchema {
    schema: SchemaRef,
    types: Vec<TypeCode>,
    /// GEOHASH precision per column (0 for other types).
    geohash_bits: Vec<u8>,
    /// Array columns whose rank no batch has shown yet (typed rank 1).
    tentative: Vec<bool>,
}

impl ResultSchema {
    /// The schema given by batch 0 (its column definitions and, for
    /// GEOHASH, DECIMAL and arrays, its column bodies).
    pub(crate) fn from_first_batch(batch: &ResultBatch<'_>) -> Result<ResultSchema, BatchError> {
        let defs = batch.schema.as_ref().ok_or(BatchError::NoSchema)?;
        if defs.len() != batch.columns.len() {
            return Err(BatchError::ColumnCount {
                expected: defs.len(),
                got: batch.columns.len(),
            });
        }
        let mut fields = Vec::with_capacity(defs.len());
        let mut bits = Vec::with_capacity(defs.len());
        let mut tentative = Vec::with_capacity(defs.len());
        for (def, column) in defs.iter().zip(&batch.columns) {
            let (geohash_bits, scale) = match column.values() {
                Values::Geohash { precision_bits, .. } => (*precision_bits, 0),
                Values::Decimal { scale, .. } => (0, *scale),
                _ => (0, 0),
            };
            bits.push(geohash_bits);
            tentative.push(matches!(column.values(), Values::Array(a) if a.is_empty()));
            let rank = array_rank(column).map_err(|e| column_error(&def.name, &e))?;
            let mut metadata = HashMap::from([(
                "questdb.column_type".to_owned(),
                def.type_code.name().to_ascii_lowercase(),
            )]);
            let data_type = match def.type_code {
                TypeCode::Symbol => {
                    metadata.insert("questdb.symbol".into(), "true".into());
                    DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8))
                }
                t => {
                    match t {
                        TypeCode::Uuid => {
                            metadata.insert("ARROW:extension:name".into(), "arrow.uuid".into());
                        }
                        TypeCode::Geohash => {
                            metadata
                                .insert("questdb.geohash_bits".into(), geohash_bits.to_string());
                        }
                        TypeCode::DoubleArray | TypeCode::LongArray => {
                            metadata.insert("questdb.array_dim".into(), rank.to_string());
                        }
                        _ => {}
                    }
                    arrow_type(t, geohash_bits, scale, rank)
                }
            };
            fields.push(Field::new(def.name.as_ref(), data_type, true).with_metadata(metadata));
        }
        Ok(ResultSchema {
            schema: Arc::new(Schema::new(fields)),
            types: defs.iter().map(|d| d.type_code).collect(),
            geohash_bits: bits,
            tentative,
        })
    }

    /// Whether an array column's rank is still unknown (every row so far
    /// was NULL).
    pub(crate) fn is_tentative(&self) -> bool {
        self.tentative.iter().any(|&t| t)
    }

    /// Types tentative array columns by `batch`'s values, if it has any;
    /// whether the schema changed.
    pub(crate) fn settle(&mut self, batch: &ResultBatch<'_>) -> Result<bool, BatchError> {
        let mut fields: Vec<Field> = self
            .schema
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut changed = false;
        for (i, column) in batch.columns.iter().enumerate() {
            let Values::Array(a) = column.values() else {
                continue;
            };
            if !self.tentative.get(i).copied().unwrap_or(false) || a.is_empty() {
                continue;
            }
            let rank = array_rank(column).map_err(|e| column_error(fields[i].name(), &e))?;
            let t = arrow_type(self.types[i], 0, 0, rank);
            let mut metadata = fields[i].metadata().clone();
            metadata.insert("questdb.array_dim".into(), rank.to_string());
            fields[i] = fields[i].clone().with_data_type(t).with_metadata(metadata);
            self.tentative[i] = false;
            changed = true;
        }
        if changed {
            self.schema = Arc::new(Schema::new(fields));
        }
        Ok(changed)
    }

    /// A batch read before [`ResultSchema::settle`] changed the schema, in
    /// the new one (the settled columns were all NULL in it).
    pub(crate) fn retype(&self, batch: &RecordBatch) -> Result<RecordBatch, BatchError> {
        let mut arrays = Vec::with_capacity(batch.num_columns());
        for (field, array) in self.schema.fields().iter().zip(batch.columns()) {
            if array.data_type() == field.data_type() {
                arrays.push(Arc::clone(array));
            } else if array.null_count() == array.len() {
                arrays.push(new_null_array(field.data_type(), array.len()));
            } else {
                return Err(BatchError::Column {
                    column: field.name().clone(),
                    reason: "an array column changed rank".into(),
                });
            }
        }
        let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
        RecordBatch::try_new_with_options(Arc::clone(&self.schema), arrays, &options).map_err(|e| {
            BatchError::Column {
                column: String::new(),
                reason: e.to_string(),
            }
        })
    }

    /// The Arrow schema.
    pub(crate) fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// One batch's rows as a record batch of the schema. `dictionary` is
    /// the connection's, with the batch's delta applied.
    pub(crate) fn to_record_batch(
        &self,
        batch: &ResultBatch<'_>,
        dictionary: &SymbolDictionary,
        keys: &mut SymbolKeys,
    ) -> Result<RecordBatch, BatchError> {
        if batch.columns.len() != self.types.len() {
            return Err(BatchError::ColumnCount {
                expected: self.types.len(),
                got: batch.columns.len(),
            });
        }
        let mut arrays = Vec::with_capacity(batch.columns.len());
        for (i, (field, column)) in self.schema.fields().iter().zip(&batch.columns).enumerate() {
            if let Values::Geohash { precision_bits, .. } = column.values()
                && *precision_bits != self.geohash_bits[i]
            {
                return Err(BatchError::Column {
                    column: field.name().clone(),
                    reason: format!(
                        "GEOHASH of {precision_bits} bits in a later batch, {} in the first",
                        self.geohash_bits[i]
                    ),
                });
            }
            let array = match column.values() {
                Values::Symbol(symbols) => symbol_array(column, symbols, dictionary, keys),
                _ => column_to_array(column, &[], true),
            }
            .map_err(|e| column_error(field.name(), &e))?;
            if array.data_type() != field.data_type() {
                return Err(BatchError::Column {
                    column: field.name().clone(),
                    reason: format!(
                        "type {} in a later batch, {} in the first",
                        array.data_type(),
                        field.data_type()
                    ),
                });
            }
            arrays.push(array);
        }
        let options = RecordBatchOptions::new().with_row_count(Some(batch.row_count as usize));
        RecordBatch::try_new_with_options(Arc::clone(&self.schema), arrays, &options).map_err(|e| {
            BatchError::Column {
                column: String::new(),
                reason: e.to_string(),
            }
        })
    }
}

fn column_error(column: &str, e: &ToArrowError) -> BatchError {
    BatchError::Column {
        column: column.to_owned(),
        reason: e.to_string(),
    }
}

/// Gives each id of the column a key in order of first use (ids at or
/// past `len`, the dictionary's size, are refused).
fn map_ids(symbols: &Symbols<'_>, len: usize, keys: &mut SymbolKeys) -> Result<(), ToArrowError> {
    for id in symbols.ids().iter() {
        if id as usize >= len {
            return Err(ToArrowError::UnmappedSymbol { id, len });
        }
        let slot = &mut keys.by_id[id as usize];
        if *slot == u32::MAX {
            *slot = u32::try_from(keys.used.len()).map_err(|_| ToArrowError::TooLarge)?;
            keys.used.push(id);
        }
    }
    Ok(())
}

/// A SYMBOL column as a dictionary array holding only the values the
/// batch uses, keyed in order of first use.
fn symbol_array(
    column: &ColumnData<'_>,
    symbols: &Symbols<'_>,
    dictionary: &SymbolDictionary,
    keys: &mut SymbolKeys,
) -> Result<ArrayRef, ToArrowError> {
    let local: Vec<&str>;
    let (len, value) = match symbols {
        Symbols::Global(_) => (
            usize::try_from(dictionary.len()).map_err(|_| ToArrowError::TooLarge)?,
            None,
        ),
        Symbols::Local { dictionary, .. } => {
            local = dictionary.iter().collect();
            (local.len(), Some(&local))
        }
    };
    if keys.by_id.len() < len {
        keys.by_id.resize(len, u32::MAX);
    }
    keys.used.clear();
    let mapped =
        map_ids(symbols, len, keys).and_then(|()| column_to_array(column, &keys.by_id, true));
    // Back to all-unused for the next batch, whatever happened: only the
    // entries this batch touched, not the whole map.
    for &id in &keys.used {
        keys.by_id[id as usize] = u32::MAX;
    }
    let key_array = mapped?
        .as_any()
        .downcast_ref::<arrow_array::UInt32Array>()
        .ok_or_else(|| ToArrowError::Arrow("SYMBOL keys are not UInt32".into()))?
        .clone();
    let values: StringArray = match value {
        None => keys
            .used
            .iter()
            .map(|&id| dictionary.get(u64::from(id)))
            .collect(),
        Some(local) => keys
            .used
            .iter()
            .map(|&id| local.get(id as usize).copied())
            .collect(),
    };
    if values.null_count() > 0 {
        return Err(ToArrowError::Arrow(
            "a SYMBOL id past the dictionary".into(),
        ));
    }
    let array = DictionaryArray::<UInt32Type>::try_new(key_array, Arc::new(values))
        .map_err(|e| ToArrowError::Arrow(e.to_string()))?;
    Ok(Arc::new(array))
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use arrow_array::cast::AsArray;
    use quiver_qwp::{ColumnBuilder, ColumnDef, NullEncoding, Value};

    use super::*;

    fn symbols(ids: &[Option<u32>]) -> ColumnData<'static> {
        let mut b = ColumnBuilder::new(TypeCode::Symbol);
        for id in ids {
            b.push(id.map(Value::Symbol).as_ref()).unwrap();
        }
        b.finish(NullEncoding::Bitmap)
    }

    fn batch(seq: u64, column: ColumnData<'static>) -> ResultBatch<'static> {
        ResultBatch {
            request_id: 1,
            batch_seq: seq,
            symbols: None,
            table_name: Cow::Borrowed(""),
            row_count: column.row_count(),
            schema: (seq == 0).then(|| {
                vec![ColumnDef {
                    name: Cow::Borrowed("sym"),
                    type_code: TypeCode::Symbol,
                }]
            }),
            columns: vec![column],
        }
    }

    /// The batch's SYMBOL column as (keys, values).
    fn parts(rb: &RecordBatch) -> (Vec<Option<u32>>, Vec<String>) {
        let d = rb.column(0).as_dictionary::<UInt32Type>();
        let values = d.values().as_string::<i32>();
        (
            d.keys().iter().collect(),
            values.iter().map(|v| v.unwrap().to_owned()).collect(),
        )
    }

    #[test]
    fn symbol_batches_carry_only_their_values_and_leave_the_map_unused() {
        let mut dictionary = SymbolDictionary::new();
        for s in ["a", "b", "c", "d"] {
            dictionary.push(s);
        }
        let mut keys = SymbolKeys::default();
        let first = batch(0, symbols(&[Some(3), Some(1), Some(3), None, Some(0)]));
        let schema = ResultSchema::from_first_batch(&first).unwrap();
        let field = &schema.schema().fields()[0];
        assert_eq!(field.metadata()["questdb.symbol"], "true");
        assert_eq!(field.metadata()["questdb.column_type"], "symbol");
        let rb = schema
            .to_record_batch(&first, &dictionary, &mut keys)
            .unwrap();
        assert_eq!(
            parts(&rb),
            (
                vec![Some(0), Some(1), Some(0), None, Some(2)],
                vec!["d".into(), "b".into(), "a".into()]
            )
        );
        assert!(keys.by_id.iter().all(|&k| k == u32::MAX));

        let second = batch(1, symbols(&[Some(1), Some(1)]));
        let rb = schema
            .to_record_batch(&second, &dictionary, &mut keys)
            .unwrap();
        assert_eq!(parts(&rb), (vec![Some(0), Some(0)], vec!["b".into()]));

        // An id past the dictionary (here after it shrank: the map is
        // longer) is refused, and the map is left unused.
        let mut smaller = SymbolDictionary::new();
        smaller.push("x");
        let bad = batch(2, symbols(&[Some(0), Some(2)]));
        let e = schema
            .to_record_batch(&bad, &smaller, &mut keys)
            .unwrap_err();
        assert!(e.to_string().contains("symbol id 2"), "{e}");
        assert!(keys.by_id.iter().all(|&k| k == u32::MAX));
    }

    #[test]
    fn arrays_first_seen_null_take_the_rank_of_the_first_values() {
        let column = |value: Option<Value<'static>>| {
            let mut b = ColumnBuilder::new(TypeCode::DoubleArray);
            b.push(value.as_ref()).unwrap();
            b.finish(NullEncoding::Bitmap)
        };
        let mut first = batch(0, column(None));
        first.schema.as_mut().unwrap()[0].type_code = TypeCode::DoubleArray;
        let mut schema = ResultSchema::from_first_batch(&first).unwrap();
        assert!(schema.is_tentative());
        let dictionary = SymbolDictionary::new();
        let mut keys = SymbolKeys::default();
        let early = schema
            .to_record_batch(&first, &dictionary, &mut keys)
            .unwrap();
        let matrix = batch(
            1,
            column(Some(Value::DoubleArray {
                shape: vec![1, 2],
                values: vec![1.0, 2.0],
            })),
        );
        assert!(schema.settle(&matrix).unwrap());
        assert!(!schema.is_tentative());
        let field = &schema.schema().fields()[0];
        assert_eq!(field.metadata()["questdb.array_dim"], "2");
        let early = schema.retype(&early).unwrap();
        assert_eq!(early.schema(), *schema.schema());
        assert_eq!(early.column(0).null_count(), 1);
        let later = schema
            .to_record_batch(&matrix, &dictionary, &mut keys)
            .unwrap();
        assert_eq!(later.column(0).data_type(), field.data_type());
        // Settled: another batch changes nothing.
        assert!(!schema.settle(&matrix).unwrap());
    }

    #[test]
    fn a_geohash_of_another_precision_later_is_refused() {
        let column = |bits: u8| {
            let mut b = ColumnBuilder::new(TypeCode::Geohash).geohash_precision(bits);
            b.push(Some(&Value::Geohash {
                precision_bits: bits,
                value: 5,
            }))
            .unwrap();
            b.finish(NullEncoding::Bitmap)
        };
        let mut first = batch(0, column(12));
        first.schema.as_mut().unwrap()[0].type_code = TypeCode::Geohash;
        let schema = ResultSchema::from_first_batch(&first).unwrap();
        let dictionary = SymbolDictionary::new();
        let mut keys = SymbolKeys::default();
        schema
            .to_record_batch(&first, &dictionary, &mut keys)
            .unwrap();
        // 9 bits: the same Int16 array type, another precision.
        let e = schema
            .to_record_batch(&batch(1, column(9)), &dictionary, &mut keys)
            .unwrap_err();
        assert!(e.to_string().contains("GEOHASH of 9 bits"), "{e}");
    }

    #[test]
    fn a_later_batch_of_another_type_is_refused() {
        let column = |rank: usize| {
            let mut b = ColumnBuilder::new(TypeCode::DoubleArray);
            let shape = vec![1u32; rank];
            b.push(Some(&Value::DoubleArray {
                shape,
                values: vec![1.5],
            }))
            .unwrap();
            b.finish(NullEncoding::Bitmap)
        };
        let mut first = batch(0, column(1));
        first.schema.as_mut().unwrap()[0].type_code = TypeCode::DoubleArray;
        let schema = ResultSchema::from_first_batch(&first).unwrap();
        assert_eq!(
            schema.schema().fields()[0].metadata()["questdb.array_dim"],
            "1"
        );
        let dictionary = SymbolDictionary::new();
        let mut keys = SymbolKeys::default();
        schema
            .to_record_batch(&first, &dictionary, &mut keys)
            .unwrap();
        let e = schema
            .to_record_batch(&batch(1, column(2)), &dictionary, &mut keys)
            .unwrap_err();
        assert!(e.to_string().contains("later batch"), "{e}");
    }
}
