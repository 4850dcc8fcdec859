//! Table blocks to table rows: finds or creates the table, adds columns on
//! first sight, maps SYMBOL ids to table keys, converts each QWP column to
//! its table column's stored Arrow type (QuestDB's coercions where a client
//! may send a narrower or textual type, SPEC §9.3), and fills the designated
//! timestamp with server time when a block has none.
//!
//! Conflicts a conversion cannot bridge are `SCHEMA_MISMATCH` errors naming
//! the table, the column, the stored type and the sent type; nothing of the
//! frame is applied.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arrow::array::{
    Array, ArrayRef, AsArray, Int64Array, PrimitiveArray, RecordBatch, StringArray, UInt16Array,
    UInt32Array,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, TimeUnit};
use quiver_qwp::arrow::{array_rank, column_to_array};
use quiver_qwp::ingress::Column;
use quiver_qwp::{StatusCode, SymbolDictionary, Symbols, TableBlock, TypeCode, Values};
use quiver_storage::{
    ColumnSchema, ColumnType, DESIGNATED_TIMESTAMP_NAME, Database, PartitionBy, Table, TableSchema,
};

use super::IngestError;

/// Converts table blocks for one connection; owns its SYMBOL id caches.
pub struct BlockConverter {
    db: Arc<Database>,
    /// Connection symbol id → table key (`u32::MAX` = not yet known), per
    /// (table id, lower-cased column).
    caches: HashMap<(u32, String), Vec<u32>>,
}

fn mismatch(
    table: &str,
    column: &str,
    stored: &ColumnType,
    sent: &str,
    detail: Option<String>,
) -> IngestError {
    let mut message = format!(
        "column type mismatch [table={table}, column={column}, stored={}, sent={sent}]",
        stored.name()
    );
    if let Some(d) = detail {
        message.push_str(": ");
        message.push_str(&d);
    }
    IngestError::new(StatusCode::SCHEMA_MISMATCH, message)
}

/// The table column type a QWP column creates, or `None` for an array
/// column whose rank the block cannot tell (every value NULL).
fn column_type_for(column: &Column<'_>) -> Result<Option<ColumnType>, IngestError> {
    let data = &column.data;
    Ok(Some(match data.type_code() {
        TypeCode::Boolean => ColumnType::Boolean,
        TypeCode::Byte => ColumnType::Byte,
        TypeCode::Short => ColumnType::Short,
        TypeCode::Int => ColumnType::Int,
        TypeCode::Long => ColumnType::Long,
        TypeCode::Float => ColumnType::Float,
        TypeCode::Double => ColumnType::Double,
        TypeCode::Symbol => ColumnType::Symbol,
        TypeCode::Timestamp => ColumnType::Timestamp,
        TypeCode::TimestampNanos => ColumnType::TimestampNanos,
        TypeCode::Date => ColumnType::Date,
        TypeCode::Uuid => ColumnType::Uuid,
        TypeCode::Long256 => ColumnType::Long256,
        TypeCode::Varchar => ColumnType::Varchar,
        TypeCode::Binary => ColumnType::Binary,
        TypeCode::Ipv4 => ColumnType::Ipv4,
        TypeCode::Char => ColumnType::Char,
        TypeCode::Geohash => match data.values() {
            Values::Geohash { precision_bits, .. } => ColumnType::Geohash(*precision_bits),
            _ => return Ok(None),
        },
        t @ (TypeCode::Decimal64 | TypeCode::Decimal128 | TypeCode::Decimal256) => {
            let Values::Decimal { scale, .. } = data.values() else {
                return Ok(None);
            };
            match t {
                TypeCode::Decimal64 => ColumnType::Decimal64(*scale),
                TypeCode::Decimal128 => ColumnType::Decimal128(*scale),
                _ => ColumnType::Decimal256(*scale),
            }
        }
        t @ (TypeCode::DoubleArray | TypeCode::LongArray) => {
            if data.value_count() == 0 {
                return Ok(None);
            }
            let rank = array_rank(data).map_err(|e| {
                IngestError::new(
                    StatusCode::SCHEMA_MISMATCH,
                    format!("{e} [column={}]", column.name),
                )
            })?;
            let rank = u8::try_from(rank).unwrap_or(u8::MAX);
            if t == TypeCode::DoubleArray {
                ColumnType::DoubleArray(rank)
            } else {
                ColumnType::LongArray(rank)
            }
        }
    }))
}

fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

/// The columns a frame creates and their types (the type the first block
/// naming each sends), from [`BlockConverter::check_frame`].
#[derive(Debug, Default)]
pub struct FramePlan {
    /// By (lower-cased table, lower-cased column).
    new_columns: HashMap<(String, String), ColumnType>,
}

/// A block whose values for existing columns are converted (see
/// [`BlockConverter::prepare`]).
#[derive(Debug)]
pub struct PreparedBlock {
    /// Index into the block's columns and the column type, for every column
    /// that is stored.
    columns: Vec<(usize, ColumnType)>,
    /// The values of those columns converted so far, with the column type
    /// they were converted to (used only if the column has that type when
    /// the block is finished: another connection may have created it).
    arrays: Vec<Option<(ColumnType, ArrayRef)>>,
}

impl BlockConverter {
    /// A converter for a new connection.
    pub fn new(db: Arc<Database>) -> Self {
        BlockConverter {
            db,
            caches: HashMap::new(),
        }
    }

    /// Forgets every cached SYMBOL id (the client redefined ids).
    pub fn clear_symbol_caches(&mut self) {
        self.caches.clear();
    }

    /// Checks a whole frame before anything is created or added: every
    /// column of every block fits the existing column of that name
    /// ([`BlockConverter::check`]), and a column the frame creates (in a new
    /// or an existing table) fits the type its first block gives it in the
    /// later blocks that name it too. A frame rejected for a type conflict
    /// leaves the schema as it was.
    pub fn check_frame(&self, blocks: &[TableBlock<'_>]) -> Result<FramePlan, IngestError> {
        let mut planned: HashMap<(String, String), ColumnType> = HashMap::new();
        // Blocks without rows create nothing (the session skips them).
        for block in blocks.iter().filter(|b| b.row_count > 0) {
            let schema = self.db.table(&block.name).map(|t| t.schema());
            let table = block.name.to_ascii_lowercase();
            let designated = (
                table.clone(),
                DESIGNATED_TIMESTAMP_NAME.to_ascii_lowercase(),
            );
            match &schema {
                Some(schema) => check_block(block, schema)?,
                // The first block of a table the frame creates also creates
                // its designated timestamp: the type of the block's unnamed
                // timestamp column, or TIMESTAMP.
                None if !planned.contains_key(&designated) => {
                    let sent = block.columns.iter().find(|c| c.name.is_empty());
                    let t = match sent {
                        Some(c) => column_type_for(c)?,
                        None => None,
                    };
                    planned.insert(designated.clone(), t.unwrap_or(ColumnType::Timestamp));
                }
                None => {}
            }
            for c in &block.columns {
                if schema
                    .as_ref()
                    .is_some_and(|s| target_index(s, c).is_some())
                {
                    continue;
                }
                let Some(t) = column_type_for(c)? else {
                    continue;
                };
                let key = match c.name.is_empty() {
                    true => designated.clone(),
                    false => (table.clone(), c.name.to_ascii_lowercase()),
                };
                match planned.get(&key) {
                    Some(first) if !compatible(c, first)? => {
                        let name = match c.name.is_empty() {
                            true => DESIGNATED_TIMESTAMP_NAME,
                            false => &*c.name,
                        };
                        return Err(mismatch(
                            &block.name,
                            name,
                            first,
                            c.data.type_code().name(),
                            Some("an earlier block of this frame creates the column".into()),
                        ));
                    }
                    Some(_) => {}
                    None => {
                        planned.insert(key, t);
                    }
                }
            }
        }
        Ok(FramePlan {
            new_columns: planned,
        })
    }

    /// Converts the values of `block` that go into columns its table
    /// already has, and into the columns `plan` says the frame creates,
    /// creating nothing. A frame is prepared whole (every block) before
    /// [`BlockConverter::finish`] creates any table or column, so a value
    /// that does not fit its column (out of range when narrowing, a coarser
    /// geohash, text that is not a number) rejects the frame with the schema
    /// left as it was. (A column that does not exist yet takes the type its
    /// first block sends, which that block's values fit; a later block of
    /// the frame may not fit it. New SYMBOL columns take any value.)
    pub fn prepare(
        &mut self,
        block: &TableBlock<'_>,
        plan: &FramePlan,
        dictionary: &SymbolDictionary,
    ) -> Result<PreparedBlock, IngestError> {
        let name = &*block.name;
        // Column types, skipping array columns whose rank is unknown.
        let mut columns: Vec<(usize, ColumnType)> = Vec::with_capacity(block.columns.len());
        for (i, c) in block.columns.iter().enumerate() {
            if block.columns[..i]
                .iter()
                .any(|o| !c.name.is_empty() && o.name.eq_ignore_ascii_case(&c.name))
            {
                return Err(IngestError::new(
                    StatusCode::PARSE_ERROR,
                    format!("duplicate column name [table={name}, column={}]", c.name),
                ));
            }
            if let Some(t) = column_type_for(c)? {
                columns.push((i, t));
            }
        }
        let mut arrays = vec![None; columns.len()];
        let table = self.db.table(name);
        let schema = table.as_ref().map(|t| t.schema());
        for ((i, _), slot) in columns.iter().zip(&mut arrays) {
            let c = &block.columns[*i];
            let index = schema.as_ref().and_then(|s| target_index(s, c));
            if let (Some(index), Some(table), Some(schema)) = (index, &table, &schema) {
                let target = &schema.columns[index];
                let array = self.column_array(table, target, c, dictionary)?;
                *slot = Some((target.column_type, array));
                continue;
            }
            let key = (name.to_ascii_lowercase(), c.name.to_ascii_lowercase());
            match plan.new_columns.get(&key) {
                Some(t) if *t != ColumnType::Symbol && !c.name.is_empty() => {
                    let target = ColumnSchema::new(c.name.to_string(), *t);
                    *slot = Some((*t, self.convert(name, &target, c, dictionary)?));
                }
                _ => {}
            }
        }
        Ok(PreparedBlock { columns, arrays })
    }

    /// The rows of a prepared `block` as a batch of its table's stored
    /// columns: creates the table and adds missing columns first.
    pub async fn finish(
        &mut self,
        block: &TableBlock<'_>,
        prepared: PreparedBlock,
        dictionary: &SymbolDictionary,
    ) -> Result<(Arc<Table>, RecordBatch), IngestError> {
        let name = &*block.name;
        let PreparedBlock { columns, arrays } = prepared;
        let columns: Vec<(&Column<'_>, ColumnType)> = columns
            .into_iter()
            .map(|(i, t)| (&block.columns[i], t))
            .collect();
        let table = match self.db.table(name) {
            Some(t) => t,
            None => {
                let schema = new_table_schema(name, &columns);
                self.db.create_table(schema).await.map_err(|_| {
                    IngestError::new(StatusCode::INTERNAL_ERROR, "storage stopped")
                })??
            }
        };
        let mut schema = table.schema();
        let missing: Vec<ColumnSchema> = columns
            .iter()
            .filter(|(c, _)| !c.name.is_empty() && schema.column_index(&c.name).is_none())
            .map(|(c, t)| ColumnSchema::new(c.name.to_string(), *t))
            .collect();
        if !missing.is_empty() {
            schema = self
                .db
                .add_columns(table.clone(), missing)
                .await
                .map_err(|_| IngestError::new(StatusCode::INTERNAL_ERROR, "storage stopped"))??;
        }

        let rows = block.row_count as usize;
        let mut fields: Vec<Field> = Vec::with_capacity(columns.len() + 1);
        let mut out: Vec<ArrayRef> = Vec::with_capacity(columns.len() + 1);
        let mut designated_done = false;
        for ((c, _), prepared) in columns.iter().zip(arrays) {
            let index = match c.name.is_empty() {
                true => designated_index(&schema)?,
                false => schema.column_index(&c.name).expect("added above"),
            };
            let target = &schema.columns[index];
            let mut array = match prepared {
                Some((t, a)) if t == target.column_type => a,
                _ => self.column_array(&table, target, c, dictionary)?,
            };
            if Some(index) == schema.designated_timestamp {
                designated_done = true;
                array = fill_designated(array, &target.column_type);
            }
            fields.push(target.stored_field());
            out.push(array);
        }
        if let (Some(i), false) = (schema.designated_timestamp, designated_done) {
            let target = &schema.columns[i];
            fields.push(target.stored_field());
            out.push(fill_designated(
                arrow::array::new_null_array(&target.column_type.stored_type(), rows),
                &target.column_type,
            ));
        }
        let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), out).map_err(|e| {
            IngestError::new(
                StatusCode::INTERNAL_ERROR,
                format!("building rows of {name}: {e}"),
            )
        })?;
        Ok((table, batch))
    }

    /// One column converted to `target`'s stored type.
    fn column_array(
        &mut self,
        table: &Arc<Table>,
        target: &ColumnSchema,
        column: &Column<'_>,
        dictionary: &SymbolDictionary,
    ) -> Result<ArrayRef, IngestError> {
        let tname = table.schema().name.clone();
        let data = &column.data;
        let sent = data.type_code();
        let fail = |detail: Option<String>| {
            mismatch(
                &tname,
                &target.name,
                &target.column_type,
                sent.name(),
                detail,
            )
        };
        if target.column_type == ColumnType::Symbol {
            let symbols = table.symbols(&target.name).ok_or_else(|| {
                IngestError::new(
                    StatusCode::INTERNAL_ERROR,
                    "SYMBOL column without a dictionary",
                )
            })?;
            if sent == TypeCode::Symbol {
                let keys: Vec<u32> = match data.values() {
                    Values::Symbol(Symbols::Global(ids)) => {
                        let cache = self
                            .caches
                            .entry((table.id(), target.name.to_ascii_lowercase()))
                            .or_default();
                        if cache.len() < dictionary.len() as usize {
                            cache.resize(dictionary.len() as usize, u32::MAX);
                        }
                        let mut intern = |id: u32| -> Result<(), IngestError> {
                            let slot = &mut cache[id as usize];
                            if *slot == u32::MAX {
                                *slot = symbols
                                    .intern(dictionary.get(u64::from(id)).unwrap_or_default())?;
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
                        return column_to_array(data, cache, true)
                            .map_err(|e| fail(Some(e.to_string())));
                    }
                    Values::Symbol(Symbols::Local { dictionary, .. }) => dictionary
                        .iter()
                        .map(|s| symbols.intern(s))
                        .collect::<Result<_, _>>()?,
                    _ => return Err(fail(None)),
                };
                return column_to_array(data, &keys, true).map_err(|e| fail(Some(e.to_string())));
            }
            // Anything textual or numeric becomes text, then a key.
            let text = self.as_text(data, dictionary, &fail)?;
            let text = text.as_string::<i32>();
            let keys: UInt32Array = text
                .iter()
                .map(|s| s.map(|s| symbols.intern(s)).transpose())
                .collect::<Result<_, _>>()?;
            return Ok(Arc::new(keys));
        }
        self.convert(&tname, target, column, dictionary)
    }

    /// One column converted to `target`'s stored type, `target` not being a
    /// SYMBOL column (those need their table's dictionary).
    fn convert(
        &self,
        tname: &str,
        target: &ColumnSchema,
        column: &Column<'_>,
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
                detail,
            )
        };
        if sent == TypeCode::Symbol {
            // SYMBOL into another type: through its text (VARCHAR, numbers parsed).
            if !symbol_text_fits(&target.column_type) {
                return Err(fail(None));
            }
            let text = self.as_text(data, dictionary, &fail)?;
            return coerce(text, TypeCode::Varchar, &target.column_type).map_err(|d| fail(Some(d)));
        }
        let natural = column_to_array(data, &[], true).map_err(|e| fail(Some(e.to_string())))?;
        if let (ColumnType::Geohash(bits), Values::Geohash { precision_bits, .. }) =
            (&target.column_type, data.values())
        {
            return adapt_geohash(
                &natural,
                *precision_bits,
                *bits,
                &target.column_type.stored_type(),
            )
            .ok_or_else(|| {
                fail(Some(format!(
                    "geohash of {precision_bits} bits is coarser than the column's {bits}"
                )))
            });
        }
        if natural.data_type() == &target.column_type.stored_type() {
            return Ok(natural);
        }
        coerce(natural, sent, &target.column_type).map_err(|d| fail(Some(d)))
    }

    /// A SYMBOL, VARCHAR or numeric column as text.
    fn as_text(
        &self,
        data: &quiver_qwp::ColumnData<'_>,
        dictionary: &SymbolDictionary,
        fail: &dyn Fn(Option<String>) -> IngestError,
    ) -> Result<ArrayRef, IngestError> {
        if let Values::Symbol(s) = data.values() {
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
            return Ok(Arc::new(text));
        }
        let natural = column_to_array(data, &[], true).map_err(|e| fail(Some(e.to_string())))?;
        if natural.data_type() == &DataType::Utf8 {
            return Ok(natural);
        }
        to_text(&natural, data.type_code()).ok_or_else(|| fail(None))
    }
}

/// The index of the column a block's column goes into in `schema`: the
/// designated timestamp for the unnamed one, else by name.
fn target_index(schema: &TableSchema, column: &Column<'_>) -> Option<usize> {
    match column.name.is_empty() {
        true => schema.designated_timestamp,
        false => schema.column_index(&column.name),
    }
}

/// The designated timestamp's index, or the error for a block that sends
/// one to a table without it.
fn designated_index(schema: &TableSchema) -> Result<usize, IngestError> {
    schema.designated_timestamp.ok_or_else(|| {
        IngestError::new(
            StatusCode::SCHEMA_MISMATCH,
            format!(
                "a designated timestamp was sent, but table {} has none",
                schema.name
            ),
        )
    })
}

/// Checks that every column of `block` can go into the column of that name
/// that `schema` (the block's existing table) already has.
fn check_block(block: &TableBlock<'_>, schema: &TableSchema) -> Result<(), IngestError> {
    for c in &block.columns {
        let index = match c.name.is_empty() {
            true => designated_index(schema)?,
            false => match schema.column_index(&c.name) {
                Some(i) => i,
                None => continue,
            },
        };
        let target = &schema.columns[index];
        if !compatible(c, &target.column_type)? {
            return Err(mismatch(
                &schema.name,
                &target.name,
                &target.column_type,
                c.data.type_code().name(),
                None,
            ));
        }
    }
    Ok(())
}

/// Whether a SYMBOL column can go into a column of type `to` (through its
/// text: as VARCHAR, or parsed as a number).
fn symbol_text_fits(to: &ColumnType) -> bool {
    matches!(
        to,
        ColumnType::Varchar
            | ColumnType::Byte
            | ColumnType::Short
            | ColumnType::Int
            | ColumnType::Long
            | ColumnType::Float
            | ColumnType::Double
    )
}

/// Whether a column can be written into a column of type `to`.
fn compatible(column: &Column<'_>, to: &ColumnType) -> Result<bool, IngestError> {
    let sent = column.data.type_code();
    let natural = column_type_for(column)?;
    if natural.as_ref() == Some(to) {
        return Ok(true);
    }
    Ok(match (sent, to) {
        // All-NULL arrays have no rank: they fit any array column of that kind.
        (TypeCode::DoubleArray, ColumnType::DoubleArray(_))
        | (TypeCode::LongArray, ColumnType::LongArray(_)) => natural.is_none(),
        (_, ColumnType::Symbol) => !matches!(
            sent,
            TypeCode::DoubleArray | TypeCode::LongArray | TypeCode::Binary
        ),
        (TypeCode::Symbol, other) => symbol_text_fits(other),
        (TypeCode::Geohash, ColumnType::Geohash(bits)) => {
            matches!(natural, Some(ColumnType::Geohash(sent_bits)) if sent_bits >= *bits)
        }
        _ => coercible(sent, to),
    })
}

/// The schema of a table created by its first block: the block's columns
/// in order, the designated timestamp (empty name) named `timestamp` where
/// it stands, or appended last as a TIMESTAMP filled with server time.
fn new_table_schema(name: &str, columns: &[(&Column<'_>, ColumnType)]) -> TableSchema {
    let mut out = Vec::with_capacity(columns.len() + 1);
    let mut designated = None;
    for (c, t) in columns {
        if c.name.is_empty() {
            designated = Some(out.len());
            out.push(ColumnSchema::new(DESIGNATED_TIMESTAMP_NAME, *t));
        } else {
            out.push(ColumnSchema::new(c.name.to_string(), *t));
        }
    }
    if designated.is_none() {
        designated = Some(out.len());
        out.push(ColumnSchema::new(
            DESIGNATED_TIMESTAMP_NAME,
            ColumnType::Timestamp,
        ));
    }
    TableSchema {
        name: name.to_string(),
        columns: out,
        designated_timestamp: designated,
        partition_by: PartitionBy::Day,
        version: 0,
    }
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

/// A geohash of `from` bits stored at `to` bits: finer hashes are cut to
/// the column's precision (QuestDB adapts precision); coarser ones cannot
/// be.
fn adapt_geohash(array: &ArrayRef, from: u8, to: u8, target: &DataType) -> Option<ArrayRef> {
    if from < to {
        return None;
    }
    let wide = arrow::compute::cast(array, &DataType::Int64).ok()?;
    let shift = u32::from(from - to);
    let shifted: Int64Array = wide
        .as_primitive::<Int64Type>()
        .iter()
        .map(|v| v.map(|v| v >> shift))
        .collect();
    arrow::compute::cast(&shifted, target).ok()
}

/// Text for a column being written into VARCHAR or SYMBOL.
fn to_text(array: &ArrayRef, sent: TypeCode) -> Option<ArrayRef> {
    match sent {
        TypeCode::Uuid => {
            let a = array.as_fixed_size_binary();
            let text: StringArray = a
                .iter()
                .map(|v| {
                    v.map(|b| {
                        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
                        format!(
                            "{}-{}-{}-{}-{}",
                            &h[..8],
                            &h[8..12],
                            &h[12..16],
                            &h[16..20],
                            &h[20..]
                        )
                    })
                })
                .collect();
            Some(Arc::new(text))
        }
        TypeCode::Long256 => {
            let a = array.as_fixed_size_binary();
            let text: StringArray = a
                .iter()
                .map(|v| {
                    v.map(|b| {
                        format!(
                            "0x{}",
                            b.iter()
                                .rev()
                                .map(|x| format!("{x:02x}"))
                                .collect::<String>()
                        )
                    })
                })
                .collect();
            Some(Arc::new(text))
        }
        TypeCode::Char => {
            let a = array.as_primitive::<arrow::datatypes::UInt16Type>();
            let text: StringArray = a
                .iter()
                .map(|v| {
                    v.map(|c| {
                        char::decode_utf16([c])
                            .map(|r| r.unwrap_or('\u{FFFD}'))
                            .collect::<String>()
                    })
                })
                .collect();
            Some(Arc::new(text))
        }
        TypeCode::Ipv4 => {
            let a = array.as_primitive::<arrow::datatypes::UInt32Type>();
            let text: StringArray = a
                .iter()
                .map(|v| v.map(|ip| std::net::Ipv4Addr::from(ip).to_string()))
                .collect();
            Some(Arc::new(text))
        }
        TypeCode::DoubleArray | TypeCode::LongArray | TypeCode::Binary => None,
        _ => cast_with_options(array, &DataType::Utf8, &CastOptions::default()).ok(),
    }
}

fn is_integer(t: TypeCode) -> bool {
    matches!(
        t,
        TypeCode::Byte | TypeCode::Short | TypeCode::Int | TypeCode::Long
    )
}

fn is_float(t: TypeCode) -> bool {
    matches!(t, TypeCode::Float | TypeCode::Double)
}

/// Whether QuestDB's coercion table lets a `sent` column go into a `to`
/// column (SPEC §9.3).
fn coercible(sent: TypeCode, to: &ColumnType) -> bool {
    use ColumnType as C;
    let text = sent == TypeCode::Varchar;
    match to {
        C::Byte | C::Short | C::Int | C::Long => {
            is_integer(sent) || is_float(sent) || sent == TypeCode::Boolean || text
        }
        C::Float | C::Double => {
            is_integer(sent) || is_float(sent) || sent == TypeCode::Boolean || text
        }
        C::Boolean => text,
        C::Date => is_integer(sent) || text,
        C::Timestamp | C::TimestampNanos => {
            is_integer(sent)
                || text
                || matches!(sent, TypeCode::Timestamp | TypeCode::TimestampNanos)
        }
        C::Varchar => !matches!(
            sent,
            TypeCode::DoubleArray | TypeCode::LongArray | TypeCode::Binary
        ),
        C::Char => text,
        C::Uuid => text,
        C::Decimal64(_) | C::Decimal128(_) | C::Decimal256(_) => {
            is_integer(sent)
                || is_float(sent)
                || text
                || matches!(
                    sent,
                    TypeCode::Decimal64 | TypeCode::Decimal128 | TypeCode::Decimal256
                )
        }
        _ => false,
    }
}

/// Converts `array` (the natural Arrow form of a `sent` column) to the stored
/// type of `to`, following QuestDB's coercion table. `Err` describes why not.
pub(crate) fn coerce(array: ArrayRef, sent: TypeCode, to: &ColumnType) -> Result<ArrayRef, String> {
    use ColumnType as C;
    let strict = CastOptions {
        safe: false,
        ..CastOptions::default()
    };
    let target = to.stored_type();
    let allowed = coercible(sent, to);
    if !allowed {
        return Err("no conversion between these types".into());
    }
    match to {
        C::Varchar => to_text(&array, sent).ok_or_else(|| "values have no text form".to_string()),
        C::Char => {
            let s = array.as_string::<i32>();
            let chars: UInt16Array = s
                .iter()
                .map(|v| v.and_then(|s| s.encode_utf16().next()))
                .collect();
            Ok(Arc::new(chars))
        }
        C::Uuid => {
            let s = array.as_string::<i32>();
            let mut bytes = Vec::with_capacity(s.len() * 16);
            let mut valid = Vec::with_capacity(s.len());
            for v in s.iter() {
                match v {
                    Some(text) => {
                        let hex: String = text.chars().filter(|c| *c != '-').collect();
                        let parsed = (hex.len() == 32)
                            .then(|| u128::from_str_radix(&hex, 16).ok())
                            .flatten()
                            .ok_or_else(|| format!("{text:?} is not a UUID"))?;
                        bytes.extend_from_slice(&parsed.to_be_bytes());
                        valid.push(true);
                    }
                    None => {
                        bytes.extend_from_slice(&[0; 16]);
                        valid.push(false);
                    }
                }
            }
            let nulls = arrow::buffer::NullBuffer::from(valid);
            Ok(Arc::new(
                arrow::array::FixedSizeBinaryArray::try_new(16, bytes.into(), Some(nulls))
                    .map_err(|e| e.to_string())?,
            ))
        }
        C::Byte | C::Short | C::Int | C::Long if is_float(sent) => {
            let f = cast_with_options(&array, &DataType::Float64, &strict)
                .map_err(|e| e.to_string())?;
            if f.as_primitive::<arrow::datatypes::Float64Type>()
                .iter()
                .flatten()
                .any(|v| v.fract() != 0.0 || !v.is_finite())
            {
                return Err("a value is not a whole number".into());
            }
            cast_with_options(&f, &target, &strict)
                .map_err(|e| format!("a value is out of range: {e}"))
        }
        C::Timestamp | C::TimestampNanos | C::Date if is_integer(sent) => {
            let wide =
                cast_with_options(&array, &DataType::Int64, &strict).map_err(|e| e.to_string())?;
            let raw: PrimitiveArray<Int64Type> = wide.as_primitive::<Int64Type>().clone();
            let unit = match to {
                C::TimestampNanos => TimeUnit::Nanosecond,
                C::Date => TimeUnit::Millisecond,
                _ => TimeUnit::Microsecond,
            };
            cast_with_options(
                &raw,
                &DataType::Timestamp(unit, Some("UTC".into())),
                &strict,
            )
            .map_err(|e| e.to_string())
        }
        _ => cast_with_options(&array, &target, &strict)
            .map_err(|e| format!("a value cannot be converted: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, Int32Array};

    #[test]
    fn widening_narrowing_and_whole_numbers() {
        let ints: ArrayRef = Arc::new(Int32Array::from(vec![Some(1), None, Some(-5)]));
        let wide = coerce(ints, TypeCode::Int, &ColumnType::Long).unwrap();
        assert_eq!(
            wide.as_primitive::<Int64Type>().iter().collect::<Vec<_>>(),
            [Some(1), None, Some(-5)]
        );
        let big: ArrayRef = Arc::new(Int64Array::from(vec![1i64 << 40]));
        assert!(coerce(big, TypeCode::Long, &ColumnType::Int).is_err());
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![2.0, 3.5]));
        assert!(coerce(floats, TypeCode::Double, &ColumnType::Long).is_err());
        let floats: ArrayRef = Arc::new(Float64Array::from(vec![2.0, -3.0]));
        assert_eq!(
            coerce(floats, TypeCode::Double, &ColumnType::Long)
                .unwrap()
                .as_primitive::<Int64Type>()
                .values(),
            &[2, -3]
        );
        let text: ArrayRef = Arc::new(StringArray::from(vec!["12", "x"]));
        assert!(coerce(text, TypeCode::Varchar, &ColumnType::Long).is_err());
        let ints: ArrayRef = Arc::new(Int64Array::from(vec![5]));
        assert!(coerce(ints, TypeCode::Long, &ColumnType::Uuid).is_err());
    }

    #[test]
    fn timestamps_change_units_and_text_parses() {
        let micros: ArrayRef = Arc::new(
            arrow::array::TimestampMicrosecondArray::from(vec![1_000_000]).with_timezone("UTC"),
        );
        let nanos = coerce(micros, TypeCode::Timestamp, &ColumnType::TimestampNanos).unwrap();
        assert_eq!(
            nanos
                .as_primitive::<arrow::datatypes::TimestampNanosecondType>()
                .value(0),
            1_000_000_000
        );
        let uuid: ArrayRef = Arc::new(StringArray::from(vec![
            Some("11121314-1516-1718-0102-030405060708"),
            None,
        ]));
        let u = coerce(uuid, TypeCode::Varchar, &ColumnType::Uuid).unwrap();
        assert_eq!(u.as_fixed_size_binary().value(0)[0], 0x11);
        assert!(u.is_null(1));
        let longs: ArrayRef = Arc::new(Int64Array::from(vec![7]));
        let text = coerce(longs, TypeCode::Long, &ColumnType::Varchar).unwrap();
        assert_eq!(text.as_string::<i32>().value(0), "7");
    }
}
