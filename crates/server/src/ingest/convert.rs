//! A planned frame's blocks turned into Arrow batches of their tables'
//! stored columns, in three steps the session runs in order:
//!
//! 1. [`BlockConverter::prepare`] converts every value that can be
//!    converted before any DDL (all but SYMBOL columns': any value with a
//!    text form fits one, and interning waits until the frame is sure to
//!    be applied), so a value that does not fit its column rejects the
//!    frame with the schema and every dictionary unchanged;
//! 2. [`BlockConverter::apply_ddl`] creates the tables and adds the columns
//!    the plan says;
//! 3. [`BlockConverter::finish`] builds each block's batch against the
//!    table's schema as it is then. Another connection may have added a
//!    planned column meanwhile, under another type: such a column's values
//!    are converted to that type if the coercion table allows it, else
//!    the frame gets `SCHEMA_MISMATCH` (what one connection after the
//!    other would get).
//!
//! SYMBOL ids map to table keys through the connection's [`SymbolCache`];
//! the designated timestamp is filled with server time where a block has
//! none.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, StringArray, UInt32Array};
use arrow::datatypes::{DataType, Field, Int64Type, Schema};
use quiver_qwp::arrow::column_to_array;
use quiver_qwp::ingress::Column;
use quiver_qwp::{StatusCode, SymbolDictionary, Symbols, TableBlock, TypeCode, Values};
use quiver_storage::{ColumnSchema, ColumnType, Database, Table};

use super::IngestError;
use super::coerce::{Coercion, coercion, convert};
use super::plan::{BlockPlan, ColumnPlan, FramePlan, mismatch};
use super::symbol_cache::{SymbolCache, UNKNOWN};

/// Values converted before DDL, per block plan and column plan: the type
/// they were converted to and the array.
pub type Prepared = Vec<Vec<Option<(ColumnType, ArrayRef)>>>;

/// Converts a connection's frames; owns its SYMBOL id cache.
pub struct BlockConverter {
    db: Arc<Database>,
    cache: SymbolCache,
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|d| i64::try_from(d.as_micros()).ok())
        .unwrap_or(0)
}

fn storage_stopped() -> IngestError {
    IngestError::new(StatusCode::INTERNAL_ERROR, "storage stopped")
}

impl BlockConverter {
    /// A converter for a new connection whose SYMBOL id maps hold at most
    /// `max_symbol_cache_entries` entries together.
    pub fn new(db: Arc<Database>, max_symbol_cache_entries: usize) -> Self {
        BlockConverter {
            db,
            cache: SymbolCache::new(max_symbol_cache_entries),
        }
    }

    /// The connection's SYMBOL id maps.
    pub fn symbol_cache(&self) -> &SymbolCache {
        &self.cache
    }

    /// Forgets every cached SYMBOL id (the client redefined ids).
    pub fn clear_symbol_caches(&mut self) {
        self.cache.clear();
    }

    /// Step 1 (see the module docs).
    pub fn prepare(
        &mut self,
        plan: &FramePlan,
        blocks: &[TableBlock<'_>],
        dictionary: &SymbolDictionary,
    ) -> Result<Prepared, IngestError> {
        let mut out = Vec::with_capacity(plan.blocks.len());
        for bp in &plan.blocks {
            let tp = &plan.tables[bp.table];
            let block = &blocks[bp.block];
            let mut arrays = Vec::with_capacity(bp.columns.len());
            for cp in &bp.columns {
                let target = &tp.schema.columns[cp.target];
                // SYMBOL values are interned only once the frame is sure to
                // be applied (in `finish`): a refused frame adds nothing to
                // a dictionary.
                let array = match target.column_type {
                    ColumnType::Symbol => None,
                    _ => Some(convert_column(
                        &tp.schema.name,
                        target,
                        &block.columns[cp.column],
                        cp.natural,
                        cp.how,
                        dictionary,
                    )?),
                };
                arrays.push(array.map(|a| (target.column_type, a)));
            }
            out.push(arrays);
        }
        Ok(out)
    }

    /// Step 2: the tables, created or with their new columns, in the order
    /// of [`FramePlan::tables`].
    pub async fn apply_ddl(&self, plan: &FramePlan) -> Result<Vec<Arc<Table>>, IngestError> {
        let mut tables = Vec::with_capacity(plan.tables.len());
        for tp in &plan.tables {
            let table = match &tp.existing {
                Some(t) => t.clone(),
                None => self
                    .db
                    .create_table(tp.schema.clone())
                    .await
                    .map_err(|_| storage_stopped())??,
            };
            // Add the columns this frame brings that the table lacks now:
            // for a table that existed, only the frame's new columns (a
            // column dropped or renamed since the frame was planned is not
            // brought back); for one it created (or that another client
            // created meanwhile), the frame's columns.
            let schema = table.schema();
            let wanted = match tp.existing {
                Some(_) => &tp.new_columns,
                None => &tp.schema.columns,
            };
            let missing: Vec<ColumnSchema> = wanted
                .iter()
                .filter(|c| schema.column_index(&c.name).is_none())
                .cloned()
                .collect();
            if !missing.is_empty() {
                self.db
                    .add_columns(table.clone(), missing)
                    .await
                    .map_err(|_| storage_stopped())??;
            }
            tables.push(table);
        }
        Ok(tables)
    }

    /// Step 3: the rows of block `bp` as a batch of `table`'s stored columns.
    pub fn finish(
        &mut self,
        table: &Arc<Table>,
        block: &TableBlock<'_>,
        bp: &BlockPlan,
        planned: &quiver_storage::TableSchema,
        prepared: Vec<Option<(ColumnType, ArrayRef)>>,
        dictionary: &SymbolDictionary,
    ) -> Result<RecordBatch, IngestError> {
        let schema = table.schema();
        let mut fields: Vec<Field> = Vec::with_capacity(bp.columns.len() + 1);
        let mut out: Vec<ArrayRef> = Vec::with_capacity(bp.columns.len() + 1);
        for (cp, prepared) in bp.columns.iter().zip(prepared) {
            let column = &block.columns[cp.column];
            let index = match column.name.is_empty() {
                true => schema.designated_timestamp,
                false => schema.column_index(&planned.columns[cp.target].name),
            }
            .ok_or_else(|| {
                IngestError::new(
                    StatusCode::INTERNAL_ERROR,
                    format!(
                        "column {} of {} vanished while the frame was applied",
                        planned.columns[cp.target].name, schema.name
                    ),
                )
            })?;
            let target = &schema.columns[index];
            let mut array = match prepared {
                Some((t, a)) if t == target.column_type => a,
                _ => {
                    // The column has another type than planned (added by
                    // another connection meanwhile): convert again.
                    let sent = column.data.type_code();
                    let how = coercion(sent, cp.natural, target.column_type).ok_or_else(|| {
                        mismatch(
                            &schema.name,
                            &target.name,
                            &target.column_type,
                            sent.name(),
                            None,
                        )
                    })?;
                    let replanned = ColumnPlan { how, ..*cp };
                    self.column_array(table, &schema.name, target, column, &replanned, dictionary)?
                }
            };
            if Some(index) == schema.designated_timestamp {
                array = fill_designated(array, &target.column_type);
            }
            fields.push(target.stored_field());
            out.push(array);
        }
        if bp.fill_designated
            && let Some(i) = schema.designated_timestamp
        {
            let target = &schema.columns[i];
            fields.push(target.stored_field());
            out.push(fill_designated(
                arrow::array::new_null_array(&target.column_type.stored_type(), bp.rows),
                &target.column_type,
            ));
        }
        RecordBatch::try_new(Arc::new(Schema::new(fields)), out).map_err(|e| {
            IngestError::new(
                StatusCode::INTERNAL_ERROR,
                format!("building rows of {}: {e}", schema.name),
            )
        })
    }

    /// One column converted to `target`'s stored type, SYMBOL columns
    /// through `table`'s dictionary.
    fn column_array(
        &mut self,
        table: &Arc<Table>,
        tname: &str,
        target: &ColumnSchema,
        column: &Column<'_>,
        cp: &ColumnPlan,
        dictionary: &SymbolDictionary,
    ) -> Result<ArrayRef, IngestError> {
        if target.column_type != ColumnType::Symbol {
            return convert_column(tname, target, column, cp.natural, cp.how, dictionary);
        }
        let data = &column.data;
        let fail = |detail: Option<String>| {
            mismatch(
                tname,
                &target.name,
                &target.column_type,
                data.type_code().name(),
                detail.as_deref(),
            )
        };
        let symbols = table.column_symbols(target).ok_or_else(|| {
            IngestError::new(
                StatusCode::INTERNAL_ERROR,
                "SYMBOL column without a dictionary",
            )
        })?;
        match data.values() {
            Values::Symbol(Symbols::Global(ids)) => {
                // Map only the ids this block uses (a one-byte id is < 128).
                let used_len = match ids.single_byte_ids() {
                    Some(_) => 128,
                    None => ids.iter().max().map_or(0, |m| m as usize + 1),
                };
                let mut map = self.cache.map(table.id(), &target.stored_name, used_len);
                let mut intern = |id: u32| -> Result<(), IngestError> {
                    let slot = &mut map[id as usize];
                    if *slot == UNKNOWN {
                        *slot =
                            symbols.intern(dictionary.get(u64::from(id)).unwrap_or_default())?;
                    }
                    Ok(())
                };
                match ids.single_byte_ids() {
                    Some(bytes) => {
                        let mut seen = [false; 128];
                        for &b in bytes {
                            seen[usize::from(b & 0x7f)] = true;
                        }
                        for id in (0..128u32).filter(|i| seen[*i as usize]) {
                            intern(id)?;
                        }
                    }
                    None => {
                        for id in ids.iter() {
                            intern(id)?;
                        }
                    }
                }
                column_to_array(data, &map, true).map_err(|e| fail(Some(e.to_string())))
            }
            Values::Symbol(Symbols::Local { dictionary, .. }) => {
                let keys: Vec<u32> = dictionary
                    .iter()
                    .map(|s| symbols.intern(s))
                    .collect::<Result<_, _>>()?;
                column_to_array(data, &keys, true).map_err(|e| fail(Some(e.to_string())))
            }
            _ if cp.how == Coercion::Intern => {
                // Anything with a text form becomes text, then a key.
                let text = column_text(column, dictionary)
                    .ok_or_else(|| fail(None))?
                    .map_err(|e| fail(Some(e)))?;
                let keys: UInt32Array = text
                    .as_string::<i32>()
                    .iter()
                    .map(|s| s.map(|s| symbols.intern(s)).transpose())
                    .collect::<Result<_, _>>()?;
                Ok(Arc::new(keys))
            }
            _ => Err(fail(None)),
        }
    }
}

/// A column converted to `target`'s stored type (not SYMBOL) as `how` says.
fn convert_column(
    tname: &str,
    target: &ColumnSchema,
    column: &Column<'_>,
    natural: Option<ColumnType>,
    how: Coercion,
    dictionary: &SymbolDictionary,
) -> Result<ArrayRef, IngestError> {
    let data = &column.data;
    let sent = data.type_code();
    let fail = |detail: Option<String>| {
        mismatch(
            tname,
            &target.name,
            &target.column_type,
            sent.name(),
            detail.as_deref(),
        )
    };
    if how == Coercion::NullArray {
        return Ok(arrow::array::new_null_array(
            &target.column_type.stored_type(),
            data.row_count() as usize,
        ));
    }
    let (array, from) = match sent {
        // A SYMBOL goes anywhere but a SYMBOL column through its text.
        TypeCode::Symbol => (
            symbol_text(data, dictionary),
            (TypeCode::Varchar, Some(ColumnType::Varchar)),
        ),
        _ => (
            column_to_array(data, &[], true).map_err(|e| fail(Some(e.to_string())))?,
            (sent, natural),
        ),
    };
    let how = match (sent, how) {
        (TypeCode::Symbol, Coercion::Text) => Coercion::Exact,
        (_, how) => how,
    };
    let to = target.column_type;
    convert(array.clone(), from.0, from.1, to, how).map_err(|d| {
        let mut e = fail(Some(d));
        e.row = first_refused_row(&array, |a| convert(a, from.0, from.1, to, how).is_ok());
        if let Some(row) = e.row {
            e.message.push_str(&format!(" (row {row} of the block)"));
        }
        e
    })
}

/// The first row of `array` that `converts` refuses, found by halving (on
/// the error path only: a slice is refused exactly when it holds a refused
/// row).
fn first_refused_row(array: &ArrayRef, converts: impl Fn(ArrayRef) -> bool) -> Option<usize> {
    let (mut start, mut len) = (0, array.len());
    if len == 0 || converts(array.clone()) {
        return None;
    }
    while len > 1 {
        let half = len / 2;
        if converts(array.slice(start, half)) {
            start += half;
            len -= half;
        } else {
            len = half;
        }
    }
    Some(start)
}

/// A column's values as text, for a SYMBOL column (`None`: no text form).
fn column_text(
    column: &Column<'_>,
    dictionary: &SymbolDictionary,
) -> Option<Result<ArrayRef, String>> {
    let data = &column.data;
    if data.type_code() == TypeCode::Symbol {
        return Some(Ok(symbol_text(data, dictionary)));
    }
    let natural = match column_to_array(data, &[], true) {
        Ok(a) => a,
        Err(e) => return Some(Err(e.to_string())),
    };
    if natural.data_type() == &DataType::Utf8 {
        return Some(Ok(natural));
    }
    super::coerce::to_text(&natural, data.type_code()).map(Ok)
}

/// A SYMBOL column's values as text.
fn symbol_text(data: &quiver_qwp::ColumnData<'_>, dictionary: &SymbolDictionary) -> ArrayRef {
    let Values::Symbol(s) = data.values() else {
        return Arc::new(StringArray::new_null(data.row_count() as usize));
    };
    let local: Vec<&str> = match s {
        Symbols::Local { dictionary, .. } => dictionary.iter().collect(),
        Symbols::Global(_) => Vec::new(),
    };
    let mut dense = s.ids().iter();
    let text: StringArray = (0..data.row_count())
        .map(|row| {
            if data.nulls().is_some_and(|n| n.is_null(row)) {
                return None;
            }
            let id = dense.next()?;
            match s {
                Symbols::Global(_) => dictionary.get(u64::from(id)),
                Symbols::Local { .. } => local.get(id as usize).copied(),
            }
        })
        .collect();
    Arc::new(text)
}

/// The designated timestamp with NULL rows set to server time (one clock
/// read per block).
fn fill_designated(array: ArrayRef, column_type: &ColumnType) -> ArrayRef {
    if array.null_count() == 0 {
        return array;
    }
    let micros = now_micros();
    let now = match column_type {
        ColumnType::TimestampNanos => micros.saturating_mul(1000),
        _ => micros,
    };
    let raw = arrow::compute::cast(&array, &DataType::Int64).unwrap_or(array.clone());
    let raw = raw.as_primitive::<Int64Type>();
    let filled: Int64Array = raw.iter().map(|v| Some(v.unwrap_or(now))).collect();
    arrow::compute::cast(&filled, &column_type.stored_type()).unwrap_or(array)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_refused_row_is_found_wherever_it_is() {
        for len in 1..40usize {
            for bad in 0..len {
                for second in [None, Some(len - 1)] {
                    let values: Int64Array = (0..len as i64)
                        .map(|i| {
                            let refused = i as usize == bad || Some(i as usize) == second;
                            Some(if refused { -1 } else { i })
                        })
                        .collect();
                    let array: ArrayRef = Arc::new(values);
                    let converts =
                        |a: ArrayRef| a.as_primitive::<Int64Type>().iter().all(|v| v != Some(-1));
                    let want = second.map_or(bad, |s| s.min(bad));
                    assert_eq!(
                        first_refused_row(&array, converts),
                        Some(want),
                        "{len} {bad}"
                    );
                }
            }
            let fine: ArrayRef = Arc::new(Int64Array::from(vec![1i64; len]));
            assert_eq!(first_refused_row(&fine, |_| true), None);
        }
    }
    use crate::ingest::coerce::natural_type;
    use quiver_qwp::{ColumnBuilder, NullEncoding, StringList, Value};

    /// Every column type, with parameters that let each conversion succeed.
    const TARGETS: [ColumnType; 25] = [
        ColumnType::Boolean,
        ColumnType::Byte,
        ColumnType::Short,
        ColumnType::Char,
        ColumnType::Int,
        ColumnType::Long,
        ColumnType::Float,
        ColumnType::Double,
        ColumnType::Symbol,
        ColumnType::Timestamp,
        ColumnType::TimestampNanos,
        ColumnType::Date,
        ColumnType::Uuid,
        ColumnType::Long256,
        ColumnType::Geohash(10),
        ColumnType::Geohash(30),
        ColumnType::Varchar,
        ColumnType::Binary,
        ColumnType::Ipv4,
        ColumnType::Decimal64(2),
        ColumnType::Decimal128(3),
        ColumnType::Decimal256(2),
        ColumnType::DoubleArray(1),
        ColumnType::DoubleArray(2),
        ColumnType::LongArray(1),
    ];

    /// Text that parses as a value of `to`.
    fn text_for(to: ColumnType) -> &'static str {
        match to {
            ColumnType::Boolean => "true",
            ColumnType::Date | ColumnType::Timestamp | ColumnType::TimestampNanos => {
                "2024-01-02T03:04:05Z"
            }
            ColumnType::Char => "x",
            ColumnType::Uuid => "11121314-1516-1718-0102-030405060708",
            _ => "7",
        }
    }

    /// One row of `sent` (its text `text` where it has one).
    fn sample(sent: TypeCode, text: &'static str) -> Column<'static> {
        let mut b = ColumnBuilder::new(sent);
        let value = match sent {
            TypeCode::Boolean => Value::Boolean(true),
            TypeCode::Byte => Value::Byte(7),
            TypeCode::Short => Value::Short(7),
            TypeCode::Int => Value::Int(7),
            TypeCode::Long => Value::Long(7),
            TypeCode::Float => Value::Float(7.0),
            TypeCode::Double => Value::Double(7.0),
            TypeCode::Symbol => Value::Symbol(0),
            TypeCode::Timestamp => Value::Timestamp(1_000_000),
            TypeCode::TimestampNanos => Value::TimestampNanos(1_000_000_000),
            TypeCode::Date => Value::Date(1_000),
            TypeCode::Uuid => Value::Uuid { lo: 1, hi: 2 },
            TypeCode::Long256 => Value::Long256([1, 0, 0, 0]),
            TypeCode::Geohash => {
                b = b.geohash_precision(20);
                Value::Geohash {
                    precision_bits: 20,
                    value: 5,
                }
            }
            TypeCode::Varchar => Value::Varchar(text),
            TypeCode::DoubleArray => Value::DoubleArray {
                shape: vec![2],
                values: vec![1.0, 2.0],
            },
            TypeCode::LongArray => Value::LongArray {
                shape: vec![2],
                values: vec![1, 2],
            },
            TypeCode::Decimal64 => {
                b = b.decimal_scale(2);
                Value::Decimal64 {
                    scale: 2,
                    unscaled: 700,
                }
            }
            TypeCode::Decimal128 => {
                b = b.decimal_scale(2);
                Value::Decimal128 {
                    scale: 2,
                    unscaled: 700,
                }
            }
            TypeCode::Decimal256 => {
                b = b.decimal_scale(2);
                let mut unscaled = [0u8; 32];
                unscaled[..8].copy_from_slice(&700i64.to_le_bytes());
                Value::Decimal256 { scale: 2, unscaled }
            }
            TypeCode::Char => Value::Char(u16::from(b'x')),
            TypeCode::Binary => Value::Binary(b"ab"),
            TypeCode::Ipv4 => Value::Ipv4(0x7f00_0001),
        };
        b.push(Some(&value)).unwrap();
        let data = match sent {
            TypeCode::Symbol => b
                .finish_local_symbols(StringList::from_strs(vec![text.to_string()]))
                .unwrap(),
            _ => b.finish(NullEncoding::Bitmap),
        };
        Column {
            name: "c".into(),
            data,
        }
    }

    #[test]
    fn every_qwp_type_into_every_column_type_follows_the_coercion_table() {
        let dictionary = SymbolDictionary::default();
        let mut accepted = 0;
        for sent in TypeCode::ALL {
            for to in TARGETS {
                let column = sample(sent, text_for(to));
                let natural = natural_type(&column).unwrap();
                let rule = coercion(sent, natural, to);
                let no_text = matches!(
                    sent,
                    TypeCode::Binary | TypeCode::DoubleArray | TypeCode::LongArray
                );
                // Anything with a text form goes into VARCHAR and SYMBOL.
                if matches!(to, ColumnType::Varchar | ColumnType::Symbol) {
                    assert_eq!(rule.is_some(), !no_text, "{sent:?} -> {to:?}");
                }
                // A value always goes into its own type.
                if natural == Some(to) {
                    assert_eq!(rule, Some(Coercion::Exact), "{sent:?} -> {to:?}");
                }
                let (Some(how), false) = (rule, to == ColumnType::Symbol) else {
                    continue;
                };
                // What the table accepts converts, into the stored type.
                let target = ColumnSchema::new("c", to);
                let array = convert_column("t", &target, &column, natural, how, &dictionary)
                    .unwrap_or_else(|e| panic!("{sent:?} -> {to:?} ({how:?}): {}", e.message));
                assert_eq!(array.data_type(), &to.stored_type(), "{sent:?} -> {to:?}");
                assert_eq!(
                    (array.len(), array.null_count()),
                    (1, 0),
                    "{sent:?} -> {to:?}"
                );
                accepted += 1;
            }
        }
        // The table is not empty or total: a sanity check on the loop.
        assert!(accepted > 100 && accepted < TypeCode::ALL.len() * TARGETS.len());
    }
}
