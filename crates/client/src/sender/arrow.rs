//! Arrow ingest: a `RecordBatch` as a [`Chunk`], column by column, without
//! copying what QWP can take as it is.
//!
//! | Arrow | QuestDB | copied? |
//! |---|---|---|
//! | Boolean | BOOLEAN | no |
//! | Int8, Int16, UInt8, UInt16 | INT (BYTE and SHORT hold no NULL) | widened |
//! | Int32, UInt32 | LONG (INT's NULL is `i32::MIN`, a value here) | widened |
//! | Int64, UInt64 | LONG (UInt64 above `i64::MAX` refused) | Int64 no, UInt64 widened |
//! | Int8 / Int16 / Int32 with [`ColumnAs::Byte`] / `Short` / `Int` | BYTE / SHORT / INT | no |
//! | Float16, Float32, Float64 | FLOAT, FLOAT, DOUBLE | Float16 widened |
//! | Time32, Time64, Duration | LONG (the raw count) | Time32 widened |
//! | Utf8, LargeUtf8 | VARCHAR (SYMBOL with [`ColumnAs::Symbol`]) | no (a dictionary is built for SYMBOL) |
//! | Binary, LargeBinary | BINARY | no |
//! | Dictionary(Int8/16/32 or UInt8/16/32 keys, Utf8/LargeUtf8) | SYMBOL | unsigned keys widened |
//! | FixedSizeBinary(16) with the `arrow.uuid` extension, or [`ColumnAs::Uuid`] | UUID | no |
//! | FixedSizeBinary(32) with [`ColumnAs::Long256`] | LONG256 | no |
//! | FixedSizeBinary otherwise | BINARY (opaque bytes, as the official client) | offsets built |
//! | Timestamp(µs) / (ns) | TIMESTAMP / TIMESTAMP_NS | no |
//! | Timestamp(ms) | DATE | no |
//! | Timestamp(s) | TIMESTAMP | scaled |
//! | Date32 / Date64 | DATE | days scaled / no |
//! | Decimal32, Decimal64 / Decimal128 / Decimal256 | DECIMAL64 / DECIMAL128 / DECIMAL256 | Decimal32 widened, Decimal256 to bytes |
//! | List/LargeList nested n deep of Float64 / Int64 (rectangular rows, no NULL inside) | DOUBLE_ARRAY / LONG_ARRAY of n dimensions | no |
//! | Int64 with [`ColumnAs`] TimestampMicros, TimestampNanos, Date, Geohash | as named | no |
//! | UInt32 with [`ColumnAs::Ipv4`], UInt16 with [`ColumnAs::Char`] | IPv4, CHAR | no |
//!
//! This is the official client's mapping (`flush_arrow_batch`), so the
//! same batch lands as the same table through either.
//!
//! Field metadata as the official clients write it
//! chooses a type as an override would: `questdb.column_type` (`byte`,
//! `short`, `int`, `symbol`, `uuid`, `long256`, `ipv4`, `char`, `geohash`), `questdb.symbol=true`,
//! `questdb.geohash_bits`, the `arrow.uuid` extension; an explicit
//! override wins.
//!
//! Sliced arrays are taken at their offsets (values, offsets and validity
//! bitmaps at any bit offset). The designated timestamp is a column the
//! caller names, or server time the caller opts into; a batch is never
//! sent with a timestamp column silently ignored. Types that do not map
//! (fixed-size lists, structs, views, negative scales or widths) are
//! refused with the column and type named.
//!
//! What it must not do: send (the [`super::Sender`] does).

use std::collections::HashMap;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Decimal32Type, Decimal64Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type,
    Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, TimeUnit};

use super::chunk::{Bits, Chunk, ChunkError, Codes, Offsets};

/// Where a batch's rows get their designated timestamp.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Designated {
    /// The named column (a Timestamp, or an Int64 of microseconds).
    Column(String),
    /// The server's clock, for every row.
    ServerTime,
}

/// A column sent as another QuestDB type than its Arrow type maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnAs {
    /// Utf8/LargeUtf8 as SYMBOL.
    Symbol,
    /// UInt32 as IPv4.
    Ipv4,
    /// UInt16 as CHAR.
    Char,
    /// Int64 microseconds as TIMESTAMP.
    TimestampMicros,
    /// Int64 nanoseconds as TIMESTAMP_NS.
    TimestampNanos,
    /// Int64 milliseconds as DATE.
    Date,
    /// Int64 as a GEOHASH of this many bits (1 to 60).
    Geohash(u8),
    /// Int8 as BYTE (NULLs sent as 0).
    Byte,
    /// Int16 as SHORT (NULLs sent as 0).
    Short,
    /// Int32 as INT (NULLs, and `i32::MIN`, are NULL).
    Int,
    /// FixedSizeBinary(16) of RFC 4122 bytes as UUID.
    Uuid,
    /// FixedSizeBinary(32) of little-endian bytes as LONG256.
    Long256,
}

/// The type a field's metadata asks for (see the module docs).
fn metadata_kind(table: &str, field: &arrow_schema::Field) -> Result<Option<ColumnAs>, ChunkError> {
    let md = field.metadata();
    let get = |k: &str| md.get(k).map(|v| v.to_ascii_lowercase());
    let bad = |reason: String| ChunkError::BadType {
        table: table.to_owned(),
        column: field.name().clone(),
        reason,
    };
    let geohash_bits = match md.get("questdb.geohash_bits") {
        None => None,
        Some(raw) => Some(
            raw.trim()
                .parse::<u8>()
                .map_err(|_| bad(format!("questdb.geohash_bits {raw:?} (1 to 60 expected)")))?,
        ),
    };
    if get("questdb.symbol").as_deref() == Some("false")
        && matches!(field.data_type(), DataType::Dictionary(..))
    {
        return Err(bad("questdb.symbol=false on a dictionary column (VARCHAR from a dictionary) is not supported yet".into()));
    }
    Ok(match get("questdb.column_type").as_deref() {
        _ if get("ARROW:extension:name").as_deref() == Some("arrow.uuid") => Some(ColumnAs::Uuid),
        Some("uuid") => Some(ColumnAs::Uuid),
        Some("byte") => Some(ColumnAs::Byte),
        Some("short") => Some(ColumnAs::Short),
        Some("int") => Some(ColumnAs::Int),
        Some("long256") => Some(ColumnAs::Long256),
        Some("symbol") => Some(ColumnAs::Symbol),
        Some("ipv4") => Some(ColumnAs::Ipv4),
        Some("char") => Some(ColumnAs::Char),
        Some(t) if t.starts_with("geohash") => {
            Some(ColumnAs::Geohash(geohash_bits.ok_or_else(|| {
                bad("column_type=geohash without questdb.geohash_bits".into())
            })?))
        }
        _ if geohash_bits.is_some() => geohash_bits.map(ColumnAs::Geohash),
        _ if get("questdb.symbol").as_deref() == Some("true") => Some(ColumnAs::Symbol),
        _ => None,
    })
}

/// How a batch is sent: its table, its designated timestamp, overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrowOptions {
    table: String,
    designated: Designated,
    overrides: Vec<(String, ColumnAs)>,
}

impl ArrowOptions {
    /// Into `table`, with `column` as the designated timestamp.
    pub fn at_column(table: &str, column: &str) -> ArrowOptions {
        ArrowOptions {
            table: table.to_owned(),
            designated: Designated::Column(column.to_owned()),
            overrides: Vec::new(),
        }
    }

    /// Into `table`, stamped by the server (every column is sent as a
    /// column, timestamps included).
    pub fn at_server_time(table: &str) -> ArrowOptions {
        ArrowOptions {
            table: table.to_owned(),
            designated: Designated::ServerTime,
            overrides: Vec::new(),
        }
    }

    /// Sends `column` as `kind`.
    pub fn with(mut self, column: &str, kind: ColumnAs) -> ArrowOptions {
        self.overrides.push((column.to_owned(), kind));
        self
    }

    /// The table.
    pub fn table(&self) -> &str {
        &self.table
    }
}

/// What a column needed converted before it could be borrowed.
enum Scratch {
    None,
    I32(Vec<i32>),
    I64(Vec<i64>),
    U64(Vec<u64>),
    F32(Vec<f32>),
    Le32(Vec<[u8; 32]>),
    /// Offsets of a FixedSizeBinary sent as BINARY.
    Offsets(Vec<i64>),
    Codes(Vec<i32>),
    Dictionary {
        codes: Vec<i32>,
        offsets: Vec<i64>,
        bytes: Vec<u8>,
    },
}

/// A batch's columns as the chunk will borrow them: the conversions some
/// columns needed, owned here (see [`ArrowChunk::chunk`]).
pub(crate) struct ArrowChunk<'b> {
    batch: &'b RecordBatch,
    options: &'b ArrowOptions,
    scratch: Vec<Scratch>,
    /// Each column's override or metadata type.
    kinds: Vec<Option<ColumnAs>>,
    designated: Option<usize>,
}

fn unsupported(table: &str, column: &str, data_type: &DataType, hint: &'static str) -> ChunkError {
    ChunkError::Unsupported {
        table: table.to_owned(),
        column: column.to_owned(),
        data_type: data_type.to_string(),
        hint,
    }
}

fn validity(array: &dyn Array) -> Option<Bits<'_>> {
    array
        .nulls()
        .filter(|n| n.null_count() > 0)
        .map(|n| Bits::with_offset(n.buffer().as_slice(), n.offset()))
}

impl<'b> ArrowChunk<'b> {
    /// Converts what must be converted; checks every column maps.
    pub(crate) fn new(
        batch: &'b RecordBatch,
        options: &'b ArrowOptions,
    ) -> Result<Self, ChunkError> {
        let schema = batch.schema();
        let table = options.table.as_str();
        let designated = match &options.designated {
            Designated::ServerTime => None,
            Designated::Column(name) => {
                Some(schema.index_of(name).map_err(|_| ChunkError::BadType {
                    table: table.to_owned(),
                    column: name.clone(),
                    reason: "the designated timestamp column is not in the batch".into(),
                })?)
            }
        };
        for (name, _) in &options.overrides {
            if schema.index_of(name).is_err() {
                return Err(ChunkError::BadType {
                    table: table.to_owned(),
                    column: name.clone(),
                    reason: "an override names a column that is not in the batch".into(),
                });
            }
        }
        let mut scratch = Vec::with_capacity(batch.num_columns());
        let mut kinds = Vec::with_capacity(batch.num_columns());
        for (i, field) in schema.fields().iter().enumerate() {
            let array = batch.column(i).as_ref();
            let name = field.name().as_str();
            let kind = match options.overrides.iter().find(|(n, _)| n == name) {
                Some((_, k)) => Some(*k),
                None => metadata_kind(table, field)?,
            };
            let converted = if Some(i) == designated {
                designated_scratch(table, name, array, kind)?
            } else {
                column_scratch(table, name, array, kind)?
            };
            scratch.push(converted);
            kinds.push(kind);
        }
        Ok(ArrowChunk {
            batch,
            options,
            scratch,
            kinds,
            designated,
        })
    }

    /// The chunk, borrowing the batch and the conversions.
    pub(crate) fn chunk(&self) -> Result<Chunk<'_>, ChunkError> {
        let table = self.options.table.as_str();
        let mut chunk = Chunk::new(table, self.batch.num_rows())?;
        let schema = self.batch.schema_ref();
        for (i, field) in schema.fields().iter().enumerate() {
            let array: &ArrayRef = self.batch.column(i);
            let name = field.name().as_str();
            if Some(i) == self.designated {
                match (&self.scratch[i], array.data_type()) {
                    (Scratch::I64(micros), _) => chunk.at_micros(micros)?,
                    (_, DataType::Timestamp(TimeUnit::Nanosecond, _)) => chunk.at_nanos(
                        array
                            .as_primitive::<arrow_array::types::TimestampNanosecondType>()
                            .values(),
                    )?,
                    (_, DataType::Timestamp(TimeUnit::Microsecond, _)) => chunk.at_micros(
                        array
                            .as_primitive::<arrow_array::types::TimestampMicrosecondType>()
                            .values(),
                    )?,
                    _ => {
                        let values = array.as_primitive::<Int64Type>().values();
                        match self.kinds[i] {
                            Some(ColumnAs::TimestampNanos) => chunk.at_nanos(values)?,
                            _ => chunk.at_micros(values)?,
                        }
                    }
                };
                continue;
            }
            add_column(
                &mut chunk,
                name,
                array.as_ref(),
                &self.scratch[i],
                self.kinds[i],
            )?;
        }
        if self.designated.is_none() {
            chunk.at_server_time()?;
        }
        Ok(chunk)
    }
}

/// The designated timestamp's conversion (seconds and milliseconds to
/// microseconds); it may hold no NULL.
fn designated_scratch(
    table: &str,
    name: &str,
    array: &dyn Array,
    kind: Option<ColumnAs>,
) -> Result<Scratch, ChunkError> {
    let int64 = matches!(array.data_type(), DataType::Int64);
    match kind {
        None => {}
        Some(ColumnAs::TimestampMicros | ColumnAs::TimestampNanos) if int64 => {}
        Some(_) => {
            return Err(unsupported(
                table,
                name,
                array.data_type(),
                " with that override as the designated timestamp (an Int64 takes TimestampMicros or TimestampNanos)",
            ));
        }
    }
    if let Some(row) = (0..array.len()).find(|&r| array.is_null(r)) {
        return Err(ChunkError::BadValue {
            table: table.to_owned(),
            column: name.to_owned(),
            row,
            reason: "a NULL designated timestamp".into(),
        });
    }
    match array.data_type() {
        DataType::Timestamp(TimeUnit::Microsecond | TimeUnit::Nanosecond, _) | DataType::Int64 => {
            Ok(Scratch::None)
        }
        DataType::Timestamp(unit @ (TimeUnit::Second | TimeUnit::Millisecond), _) => {
            scaled_micros(table, name, array, *unit).map(Scratch::I64)
        }
        other => Err(unsupported(
            table,
            name,
            other,
            " as a designated timestamp (a Timestamp or an Int64 of microseconds is)",
        )),
    }
}

/// Seconds or milliseconds as microseconds (NULL rows as 0).
fn scaled_micros(
    table: &str,
    name: &str,
    array: &dyn Array,
    unit: TimeUnit,
) -> Result<Vec<i64>, ChunkError> {
    let (values, factor): (&[i64], i64) = match unit {
        TimeUnit::Second => (
            array
                .as_primitive::<arrow_array::types::TimestampSecondType>()
                .values(),
            1_000_000,
        ),
        _ => (
            array
                .as_primitive::<arrow_array::types::TimestampMillisecondType>()
                .values(),
            1_000,
        ),
    };
    values
        .iter()
        .enumerate()
        .map(|(row, &v)| match array.is_null(row) {
            true => Ok(0),
            false => v.checked_mul(factor).ok_or_else(|| ChunkError::BadValue {
                table: table.to_owned(),
                column: name.to_owned(),
                row,
                reason: format!("{v} does not fit in microseconds"),
            }),
        })
        .collect()
}

fn column_scratch(
    table: &str,
    name: &str,
    array: &dyn Array,
    kind: Option<ColumnAs>,
) -> Result<Scratch, ChunkError> {
    let data_type = array.data_type();
    let wrong = |hint| Err(unsupported(table, name, data_type, hint));
    Ok(match (data_type, kind) {
        (DataType::Int8, Some(ColumnAs::Byte))
        | (DataType::Int16, Some(ColumnAs::Short))
        | (DataType::Int32, Some(ColumnAs::Int)) => Scratch::None,
        (DataType::Int8, None) => Scratch::I32(
            array
                .as_primitive::<Int8Type>()
                .values()
                .iter()
                .map(|&v| i32::from(v))
                .collect(),
        ),
        (DataType::Int16, None) => Scratch::I32(
            array
                .as_primitive::<Int16Type>()
                .values()
                .iter()
                .map(|&v| i32::from(v))
                .collect(),
        ),
        (DataType::Int32, None) => Scratch::I64(
            array
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|&v| i64::from(v))
                .collect(),
        ),
        (DataType::Float16, None) => Scratch::F32(
            array
                .as_primitive::<arrow_array::types::Float16Type>()
                .values()
                .iter()
                .map(|v| v.to_f32())
                .collect(),
        ),
        (DataType::Time32(TimeUnit::Second), None) => Scratch::I64(
            array
                .as_primitive::<arrow_array::types::Time32SecondType>()
                .values()
                .iter()
                .map(|&v| i64::from(v))
                .collect(),
        ),
        (DataType::Time32(TimeUnit::Millisecond), None) => Scratch::I64(
            array
                .as_primitive::<arrow_array::types::Time32MillisecondType>()
                .values()
                .iter()
                .map(|&v| i64::from(v))
                .collect(),
        ),
        (
            DataType::Time64(TimeUnit::Microsecond | TimeUnit::Nanosecond) | DataType::Duration(_),
            None,
        )
        | (DataType::Timestamp(TimeUnit::Millisecond, _), None) => Scratch::None,
        (DataType::UInt8, None) => Scratch::I32(
            array
                .as_primitive::<UInt8Type>()
                .values()
                .iter()
                .map(|&v| i32::from(v))
                .collect(),
        ),
        (DataType::UInt16, None) => Scratch::I32(
            array
                .as_primitive::<UInt16Type>()
                .values()
                .iter()
                .map(|&v| i32::from(v))
                .collect(),
        ),
        (DataType::UInt32, None) => Scratch::I64(
            array
                .as_primitive::<UInt32Type>()
                .values()
                .iter()
                .map(|&v| i64::from(v))
                .collect(),
        ),
        (DataType::UInt64, None) => {
            let values = array.as_primitive::<UInt64Type>().values();
            let mut out = Vec::with_capacity(values.len());
            for (row, &v) in values.iter().enumerate() {
                match i64::try_from(v) {
                    Ok(v) => out.push(v),
                    Err(_) if array.is_null(row) => out.push(0),
                    Err(_) => {
                        return Err(ChunkError::BadValue {
                            table: table.to_owned(),
                            column: name.to_owned(),
                            row,
                            reason: format!("{v} is above LONG's maximum"),
                        });
                    }
                }
            }
            Scratch::I64(out)
        }
        (DataType::Timestamp(TimeUnit::Second, _), None) => {
            Scratch::I64(scaled_micros(table, name, array, TimeUnit::Second)?)
        }
        (DataType::Date32, None) => Scratch::I64(
            array
                .as_primitive::<arrow_array::types::Date32Type>()
                .values()
                .iter()
                .map(|&d| i64::from(d) * 86_400_000)
                .collect(),
        ),
        (DataType::Decimal32(_, s), None) if *s >= 0 => Scratch::I64(
            array
                .as_primitive::<Decimal32Type>()
                .values()
                .iter()
                .map(|&v| i64::from(v))
                .collect(),
        ),
        (DataType::Decimal256(_, s), None) if *s >= 0 => Scratch::Le32(
            array
                .as_primitive::<Decimal256Type>()
                .values()
                .iter()
                .map(|v| v.to_le_bytes())
                .collect(),
        ),
        (
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..),
            None,
        ) if decimal_scale(data_type).is_none() => {
            return wrong(": a negative scale");
        }
        (DataType::Dictionary(key, value), None | Some(ColumnAs::Symbol)) => {
            if !matches!(**value, DataType::Utf8 | DataType::LargeUtf8) {
                return wrong(": only dictionaries of Utf8 or LargeUtf8 become SYMBOL");
            }
            if dictionary_values_have_nulls(array) {
                return wrong(": a dictionary whose values hold NULL (encode NULLs in the keys)");
            }
            let widened: Option<Vec<i32>> = match **key {
                DataType::Int8 | DataType::Int16 | DataType::Int32 => None,
                DataType::UInt8 => Some(keys::<UInt8Type>(array)),
                DataType::UInt16 => Some(keys::<UInt16Type>(array)),
                DataType::UInt32 => {
                    let d = array.as_dictionary::<UInt32Type>();
                    let mut out = Vec::with_capacity(d.len());
                    for &k in d.keys().values() {
                        out.push(i32::try_from(k).unwrap_or(i32::MAX));
                    }
                    Some(out)
                }
                _ => return wrong(": dictionary keys wider than 32 bits"),
            };
            widened.map_or(Scratch::None, Scratch::Codes)
        }
        (DataType::Utf8 | DataType::LargeUtf8, Some(ColumnAs::Symbol)) => dictionary_of(array),
        (DataType::FixedSizeBinary(16), Some(ColumnAs::Uuid))
        | (DataType::FixedSizeBinary(32), Some(ColumnAs::Long256)) => Scratch::None,
        (DataType::FixedSizeBinary(_), Some(ColumnAs::Uuid | ColumnAs::Long256)) => {
            return wrong(": UUID needs FixedSizeBinary(16), LONG256 FixedSizeBinary(32)");
        }
        (DataType::FixedSizeBinary(w), None) => {
            let w = i64::from(*w);
            if w < 0 {
                return wrong(": a negative width");
            }
            let a = array.as_fixed_size_binary();
            Scratch::Offsets((0..=a.len() as i64).map(|i| i * w).collect())
        }
        (
            DataType::Boolean
            | DataType::Int64
            | DataType::Float32
            | DataType::Float64
            | DataType::Utf8
            | DataType::LargeUtf8
            | DataType::Binary
            | DataType::LargeBinary
            | DataType::Timestamp(..)
            | DataType::Date64
            | DataType::Decimal64(..)
            | DataType::Decimal128(..),
            None,
        ) => Scratch::None,
        (DataType::Int8, Some(ColumnAs::Geohash(_))) => Scratch::U64(
            array
                .as_primitive::<Int8Type>()
                .values()
                .iter()
                .map(|&v| i64::from(v).cast_unsigned())
                .collect(),
        ),
        (DataType::Int16, Some(ColumnAs::Geohash(_))) => Scratch::U64(
            array
                .as_primitive::<Int16Type>()
                .values()
                .iter()
                .map(|&v| i64::from(v).cast_unsigned())
                .collect(),
        ),
        (DataType::Int32, Some(ColumnAs::Geohash(_))) => Scratch::U64(
            array
                .as_primitive::<Int32Type>()
                .values()
                .iter()
                .map(|&v| i64::from(v).cast_unsigned())
                .collect(),
        ),
        (DataType::Int64, Some(ColumnAs::Geohash(_))) => Scratch::U64(
            array
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .map(|&v| v.cast_unsigned())
                .collect(),
        ),
        (
            DataType::Int64,
            Some(ColumnAs::TimestampMicros | ColumnAs::TimestampNanos | ColumnAs::Date),
        )
        | (DataType::UInt64, Some(ColumnAs::Geohash(_)))
        | (DataType::UInt32, Some(ColumnAs::Ipv4))
        | (DataType::UInt16, Some(ColumnAs::Char)) => Scratch::None,
        (_, Some(_)) => return wrong(": the override does not apply to this type"),
        (DataType::List(_) | DataType::LargeList(_), None) => {
            let (levels, leaf) = list_levels(array);
            if levels.len() > crate::sender::chunk::MAX_ARRAY_RANK {
                return wrong(": more than 32 nested lists");
            }
            if !matches!(leaf.data_type(), DataType::Float64 | DataType::Int64) {
                return wrong(": only lists of Float64 or Int64 become arrays");
            }
            if levels.iter().skip(1).any(|l| l.null_count() > 0) {
                return wrong(": a NULL inner list (QuestDB arrays are rectangular)");
            }
            if leaf.null_count() > 0 {
                return wrong(
                    ": NULL array elements (use NaN in DOUBLE arrays, i64::MIN in LONG arrays)",
                );
            }
            Scratch::None
        }
        (DataType::FixedSizeList(..), None) => {
            return wrong(": FixedSizeList (use List or LargeList)");
        }
        _ => return wrong(""),
    })
}

fn decimal_scale(data_type: &DataType) -> Option<u8> {
    match data_type {
        DataType::Decimal32(_, s)
        | DataType::Decimal64(_, s)
        | DataType::Decimal128(_, s)
        | DataType::Decimal256(_, s) => u8::try_from(*s).ok(),
        _ => None,
    }
}

fn keys<K: arrow_array::types::ArrowDictionaryKeyType>(array: &dyn Array) -> Vec<i32>
where
    K::Native: Into<i64>,
{
    array
        .as_dictionary::<K>()
        .keys()
        .values()
        .iter()
        .map(|&k| i32::try_from(k.into()).unwrap_or(i32::MAX))
        .collect()
}

/// A dictionary of a string column's distinct values (for SYMBOL).
fn dictionary_of(array: &dyn Array) -> Scratch {
    let strings: Box<dyn Iterator<Item = Option<&str>>> = match array.data_type() {
        DataType::LargeUtf8 => Box::new(array.as_string::<i64>().iter()),
        _ => Box::new(array.as_string::<i32>().iter()),
    };
    let mut ids: HashMap<&str, i32> = HashMap::new();
    let mut offsets = vec![0i64];
    let mut bytes = Vec::new();
    let mut codes = Vec::with_capacity(array.len());
    for s in strings {
        let Some(s) = s else {
            codes.push(0);
            continue;
        };
        let next = i32::try_from(ids.len()).unwrap_or(i32::MAX);
        let id = *ids.entry(s).or_insert_with(|| {
            bytes.extend_from_slice(s.as_bytes());
            offsets.push(bytes.len() as i64);
            next
        });
        codes.push(id);
    }
    Scratch::Dictionary {
        codes,
        offsets,
        bytes,
    }
}

/// A column of nested lists: each level's list array, outermost first,
/// and the innermost values.
fn list_levels(array: &dyn Array) -> (Vec<&dyn Array>, &dyn Array) {
    let mut levels = Vec::new();
    let mut at = array;
    loop {
        let child = match at.data_type() {
            DataType::List(_) => at.as_list::<i32>().values(),
            DataType::LargeList(_) => at.as_list::<i64>().values(),
            _ => return (levels, at),
        };
        levels.push(at);
        at = child.as_ref();
    }
}

/// A list array's offsets.
fn list_offsets(list: &dyn Array) -> Offsets<'_> {
    match list.data_type() {
        DataType::LargeList(_) => Offsets::I64(list.as_list::<i64>().value_offsets()),
        _ => Offsets::I32(list.as_list::<i32>().value_offsets()),
    }
}

fn add_column<'c>(
    chunk: &mut Chunk<'c>,
    name: &str,
    array: &'c dyn Array,
    scratch: &'c Scratch,
    kind: Option<ColumnAs>,
) -> Result<(), ChunkError> {
    let v = validity(array);
    match (scratch, array.data_type(), kind) {
        (Scratch::I32(values), ..) => chunk.i32(name, values, v)?,
        (Scratch::F32(values), ..) => chunk.f32(name, values, v)?,
        (Scratch::I64(values), DataType::Date32, _) => chunk.date_millis(name, values, v)?,
        (Scratch::I64(values), DataType::Timestamp(..), _) => {
            chunk.timestamp_micros(name, values, v)?
        }
        (Scratch::I64(values), DataType::Decimal32(_, s), _) => {
            chunk.decimal64(name, scale(*s), values, v)?
        }
        (Scratch::I64(values), ..) => chunk.i64(name, values, v)?,
        (Scratch::Le32(values), DataType::Decimal256(_, s), _) => {
            chunk.decimal256(name, scale(*s), values, v)?
        }
        (Scratch::Le32(..), ..) => return Err(internal(name)),
        (
            Scratch::Dictionary {
                codes,
                offsets,
                bytes,
            },
            ..,
        ) => chunk.symbol(name, Codes::I32(codes), Offsets::I64(offsets), bytes, v)?,
        (Scratch::Codes(codes), DataType::Dictionary(..), _) => {
            let (offsets, bytes) = dictionary_values(array);
            chunk.symbol(name, Codes::I32(codes), offsets, bytes, v)?
        }
        (Scratch::U64(values), _, Some(ColumnAs::Geohash(bits))) => {
            chunk.geohash(name, bits, values, v)?
        }
        (Scratch::Offsets(offsets), ..) => chunk.binary(
            name,
            Offsets::I64(offsets),
            array.as_fixed_size_binary().value_data(),
            v,
        )?,
        (Scratch::Codes(_) | Scratch::U64(_), ..) => return Err(internal(name)),
        (Scratch::None, data_type, kind) => match (data_type, kind) {
            (DataType::List(_) | DataType::LargeList(_), _) => {
                let (lists, leaf) = list_levels(array);
                let levels: Vec<Offsets<'c>> = lists.into_iter().map(list_offsets).collect();
                match leaf.data_type() {
                    DataType::Float64 => chunk.f64_array(
                        name,
                        &levels,
                        leaf.as_primitive::<Float64Type>().values(),
                        v,
                    )?,
                    _ => chunk.i64_array(
                        name,
                        &levels,
                        leaf.as_primitive::<Int64Type>().values(),
                        v,
                    )?,
                }
            }
            (DataType::Boolean, _) => {
                let values = array.as_boolean().values();
                chunk.bool(
                    name,
                    Bits::with_offset(values.inner().as_slice(), values.offset()),
                    v,
                )?
            }
            (DataType::Int8, _) => chunk.i8(name, array.as_primitive::<Int8Type>().values(), v)?,
            (DataType::Int16, _) => {
                chunk.i16(name, array.as_primitive::<Int16Type>().values(), v)?
            }
            (DataType::Int32, _) => {
                chunk.i32(name, array.as_primitive::<Int32Type>().values(), v)?
            }
            (DataType::Int64, kind) => {
                let values = array.as_primitive::<Int64Type>().values();
                match kind {
                    Some(ColumnAs::TimestampMicros) => chunk.timestamp_micros(name, values, v)?,
                    Some(ColumnAs::TimestampNanos) => chunk.timestamp_nanos(name, values, v)?,
                    Some(ColumnAs::Date) => chunk.date_millis(name, values, v)?,
                    _ => chunk.i64(name, values, v)?,
                }
            }
            (DataType::UInt64, Some(ColumnAs::Geohash(bits))) => {
                chunk.geohash(name, bits, array.as_primitive::<UInt64Type>().values(), v)?
            }
            (DataType::UInt32, Some(ColumnAs::Ipv4)) => {
                chunk.ipv4(name, array.as_primitive::<UInt32Type>().values(), v)?
            }
            (DataType::UInt16, Some(ColumnAs::Char)) => {
                chunk.char(name, array.as_primitive::<UInt16Type>().values(), v)?
            }
            (DataType::Timestamp(TimeUnit::Millisecond, _), _) => chunk.date_millis(
                name,
                array
                    .as_primitive::<arrow_array::types::TimestampMillisecondType>()
                    .values(),
                v,
            )?,
            (DataType::Time64(_) | DataType::Duration(_), _) => {
                chunk.i64(name, raw_i64(array).ok_or_else(|| internal(name))?, v)?
            }
            (DataType::Float32, _) => {
                chunk.f32(name, array.as_primitive::<Float32Type>().values(), v)?
            }
            (DataType::Float64, _) => {
                chunk.f64(name, array.as_primitive::<Float64Type>().values(), v)?
            }
            (DataType::Utf8, _) => {
                let a = array.as_string::<i32>();
                chunk.varchar(
                    name,
                    Offsets::I32(a.value_offsets()),
                    a.values().as_slice(),
                    v,
                )?
            }
            (DataType::LargeUtf8, _) => {
                let a = array.as_string::<i64>();
                chunk.varchar(
                    name,
                    Offsets::I64(a.value_offsets()),
                    a.values().as_slice(),
                    v,
                )?
            }
            (DataType::Binary, _) => {
                let a = array.as_binary::<i32>();
                chunk.binary(
                    name,
                    Offsets::I32(a.value_offsets()),
                    a.values().as_slice(),
                    v,
                )?
            }
            (DataType::LargeBinary, _) => {
                let a = array.as_binary::<i64>();
                chunk.binary(
                    name,
                    Offsets::I64(a.value_offsets()),
                    a.values().as_slice(),
                    v,
                )?
            }
            (DataType::FixedSizeBinary(16), _) => {
                let (values, _) = array.as_fixed_size_binary().value_data().as_chunks::<16>();
                chunk.uuid(name, values, v)?
            }
            (DataType::FixedSizeBinary(32), _) => {
                let (values, _) = array.as_fixed_size_binary().value_data().as_chunks::<32>();
                chunk.long256(name, values, v)?
            }
            (DataType::Timestamp(TimeUnit::Microsecond, _), _) => chunk.timestamp_micros(
                name,
                array
                    .as_primitive::<arrow_array::types::TimestampMicrosecondType>()
                    .values(),
                v,
            )?,
            (DataType::Timestamp(TimeUnit::Nanosecond, _), _) => chunk.timestamp_nanos(
                name,
                array
                    .as_primitive::<arrow_array::types::TimestampNanosecondType>()
                    .values(),
                v,
            )?,
            (DataType::Date64, _) => chunk.date_millis(
                name,
                array
                    .as_primitive::<arrow_array::types::Date64Type>()
                    .values(),
                v,
            )?,
            (DataType::Decimal64(_, s), _) => chunk.decimal64(
                name,
                scale(*s),
                array.as_primitive::<Decimal64Type>().values(),
                v,
            )?,
            (DataType::Decimal128(_, s), _) => chunk.decimal128(
                name,
                scale(*s),
                array.as_primitive::<Decimal128Type>().values(),
                v,
            )?,
            (DataType::Dictionary(key, _), _) => {
                let (offsets, bytes) = dictionary_values(array);
                let codes = match **key {
                    DataType::Int8 => Codes::I8(array.as_dictionary::<Int8Type>().keys().values()),
                    DataType::Int16 => {
                        Codes::I16(array.as_dictionary::<Int16Type>().keys().values())
                    }
                    _ => Codes::I32(array.as_dictionary::<Int32Type>().keys().values()),
                };
                chunk.symbol(name, codes, offsets, bytes, v)?
            }
            _ => return Err(internal(name)),
        },
    };
    Ok(())
}

/// The values of an array whose native type is i64 (times, durations).
fn raw_i64(array: &dyn Array) -> Option<&[i64]> {
    use arrow_array::types as t;
    Some(match array.data_type() {
        DataType::Time64(TimeUnit::Microsecond) => {
            array.as_primitive::<t::Time64MicrosecondType>().values()
        }
        DataType::Time64(TimeUnit::Nanosecond) => {
            array.as_primitive::<t::Time64NanosecondType>().values()
        }
        DataType::Duration(TimeUnit::Second) => {
            array.as_primitive::<t::DurationSecondType>().values()
        }
        DataType::Duration(TimeUnit::Millisecond) => {
            array.as_primitive::<t::DurationMillisecondType>().values()
        }
        DataType::Duration(TimeUnit::Microsecond) => {
            array.as_primitive::<t::DurationMicrosecondType>().values()
        }
        DataType::Duration(TimeUnit::Nanosecond) => {
            array.as_primitive::<t::DurationNanosecondType>().values()
        }
        _ => return None,
    })
}

/// A combination [`column_scratch`] refuses, met anyway (a bug).
fn internal(name: &str) -> ChunkError {
    ChunkError::BadType {
        table: String::new(),
        column: name.to_owned(),
        reason: "internal: a column was not converted as planned".into(),
    }
}

/// A non-negative scale (negative ones were refused before).
fn scale(s: i8) -> u8 {
    u8::try_from(s).unwrap_or(0)
}

/// Whether a dictionary array's values (not its keys) hold a NULL.
fn dictionary_values_have_nulls(array: &dyn Array) -> bool {
    array
        .as_any_dictionary_opt()
        .is_some_and(|d| d.values().null_count() > 0)
}

/// A dictionary array's values: offsets and UTF-8 bytes.
fn dictionary_values(array: &dyn Array) -> (Offsets<'_>, &[u8]) {
    let Some(dictionary) = array.as_any_dictionary_opt() else {
        return (Offsets::I32(&[]), &[]);
    };
    let values = dictionary.values();
    match values.data_type() {
        DataType::LargeUtf8 => {
            let s = values.as_string::<i64>();
            (Offsets::I64(s.value_offsets()), s.values().as_slice())
        }
        _ => {
            let s = values.as_string::<i32>();
            (Offsets::I32(s.value_offsets()), s.values().as_slice())
        }
    }
}
