//! Table schemas: column types as Quiver stores them, their Arrow types, and
//! the binary form schemas take in the WAL and the catalog.
//!
//! Column types are QuestDB's. Each has one stored Arrow type (what the WAL,
//! memtables and segments hold) and one read type (what queries and exports
//! see); they differ only for SYMBOL, stored as `UInt32` keys into the
//! table's symbol dictionary and read as `Dictionary(UInt32, Utf8)`.
//! Every Arrow field carries `quiver.type` metadata naming the column type,
//! so exports keep QuestDB types that Arrow cannot tell apart (CHAR vs
//! UInt16, IPV4, GEOHASH precision, DATE).

use std::collections::HashMap;
use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};

use crate::error::{Result, StorageError};
use crate::format::{Decoder, Encoder};

/// Longest table or column name, in bytes.
pub const MAX_NAME_LEN: usize = 127;
/// Most columns in one table.
pub const MAX_COLUMNS: usize = 2048;
/// Field metadata key holding the column type name.
pub const TYPE_METADATA_KEY: &str = "quiver.type";
/// Field metadata key marking the designated timestamp in read schemas.
pub const DESIGNATED_METADATA_KEY: &str = "quiver.designated";
/// Name the designated timestamp gets when a client sends it unnamed.
pub const DESIGNATED_TIMESTAMP_NAME: &str = "timestamp";

/// A column type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ColumnType {
    /// BOOLEAN.
    Boolean,
    /// BYTE (`i8`).
    Byte,
    /// SHORT (`i16`).
    Short,
    /// CHAR (UTF-16 code unit).
    Char,
    /// INT (`i32`).
    Int,
    /// LONG (`i64`).
    Long,
    /// FLOAT (`f32`).
    Float,
    /// DOUBLE (`f64`).
    Double,
    /// SYMBOL (dictionary-encoded string).
    Symbol,
    /// TIMESTAMP (µs since the epoch, UTC).
    Timestamp,
    /// TIMESTAMP_NS (ns since the epoch, UTC).
    TimestampNanos,
    /// DATE (ms since the epoch, UTC).
    Date,
    /// UUID (16 bytes, RFC 4122 order).
    Uuid,
    /// LONG256 (32 bytes, little-endian limbs).
    Long256,
    /// GEOHASH with a precision in bits (1..=60).
    Geohash(u8),
    /// VARCHAR (UTF-8).
    Varchar,
    /// BINARY.
    Binary,
    /// IPV4.
    Ipv4,
    /// DECIMAL(18, scale).
    Decimal64(u8),
    /// DECIMAL(38, scale).
    Decimal128(u8),
    /// DECIMAL(76, scale).
    Decimal256(u8),
    /// DOUBLE array of a rank.
    DoubleArray(u8),
    /// LONG array of a rank.
    LongArray(u8),
}

impl ColumnType {
    /// The QuestDB-style name, e.g. `GEOHASH(25b)`, `DECIMAL(38,4)`, `DOUBLE[][]`.
    pub fn name(&self) -> String {
        match self {
            ColumnType::Geohash(bits) => format!("GEOHASH({bits}b)"),
            ColumnType::Decimal64(s) => format!("DECIMAL(18,{s})"),
            ColumnType::Decimal128(s) => format!("DECIMAL(38,{s})"),
            ColumnType::Decimal256(s) => format!("DECIMAL(76,{s})"),
            ColumnType::DoubleArray(r) => format!("DOUBLE{}", "[]".repeat(usize::from(*r))),
            ColumnType::LongArray(r) => format!("LONG{}", "[]".repeat(usize::from(*r))),
            other => other.base_name().to_string(),
        }
    }

    /// The name QuestDB shows for the type (`IPv4`, `GEOHASH(8c)` when the
    /// bits are a multiple of 5); [`ColumnType::name`] otherwise.
    pub fn questdb_name(&self) -> String {
        match self {
            ColumnType::Ipv4 => "IPv4".to_string(),
            ColumnType::Geohash(bits) if bits.is_multiple_of(5) => {
                format!("GEOHASH({}c)", bits / 5)
            }
            other => other.name(),
        }
    }

    /// The type a name from [`ColumnType::name`] stands for (also without
    /// the `b` of a GEOHASH precision; ASCII case is ignored).
    pub fn from_name(name: &str) -> Option<ColumnType> {
        let upper = name.trim().to_ascii_uppercase();
        let args = |prefix: &str| -> Option<Vec<u8>> {
            let inner = upper
                .strip_prefix(prefix)?
                .strip_prefix('(')?
                .strip_suffix(')')?;
            inner
                .split(',')
                .map(|a| a.trim().trim_end_matches('B').parse::<u8>().ok())
                .collect()
        };
        let rank = |prefix: &str| -> Option<u8> {
            let rest = upper.strip_prefix(prefix)?;
            let n = rest.len() / 2;
            (n >= 1 && rest == "[]".repeat(n)).then(|| u8::try_from(n).ok())?
        };
        let t = match upper.as_str() {
            "BOOLEAN" => ColumnType::Boolean,
            "BYTE" => ColumnType::Byte,
            "SHORT" => ColumnType::Short,
            "CHAR" => ColumnType::Char,
            "INT" => ColumnType::Int,
            "LONG" => ColumnType::Long,
            "FLOAT" => ColumnType::Float,
            "DOUBLE" => ColumnType::Double,
            "SYMBOL" => ColumnType::Symbol,
            "TIMESTAMP" => ColumnType::Timestamp,
            "TIMESTAMP_NS" => ColumnType::TimestampNanos,
            "DATE" => ColumnType::Date,
            "UUID" => ColumnType::Uuid,
            "LONG256" => ColumnType::Long256,
            "VARCHAR" => ColumnType::Varchar,
            "BINARY" => ColumnType::Binary,
            "IPV4" => ColumnType::Ipv4,
            _ => {
                if let Some(a) = args("GEOHASH") {
                    match a[..] {
                        [bits] => ColumnType::Geohash(bits),
                        _ => return None,
                    }
                } else if let Some(a) = args("DECIMAL") {
                    match a[..] {
                        [18, s] => ColumnType::Decimal64(s),
                        [38, s] => ColumnType::Decimal128(s),
                        [76, s] => ColumnType::Decimal256(s),
                        _ => return None,
                    }
                } else if let Some(r) = rank("DOUBLE") {
                    ColumnType::DoubleArray(r)
                } else if let Some(r) = rank("LONG") {
                    ColumnType::LongArray(r)
                } else {
                    return None;
                }
            }
        };
        let (code, arg) = t.code();
        (ColumnType::from_code(code, arg) == Some(t)).then_some(t)
    }

    fn base_name(&self) -> &'static str {
        match self {
            ColumnType::Boolean => "BOOLEAN",
            ColumnType::Byte => "BYTE",
            ColumnType::Short => "SHORT",
            ColumnType::Char => "CHAR",
            ColumnType::Int => "INT",
            ColumnType::Long => "LONG",
            ColumnType::Float => "FLOAT",
            ColumnType::Double => "DOUBLE",
            ColumnType::Symbol => "SYMBOL",
            ColumnType::Timestamp => "TIMESTAMP",
            ColumnType::TimestampNanos => "TIMESTAMP_NS",
            ColumnType::Date => "DATE",
            ColumnType::Uuid => "UUID",
            ColumnType::Long256 => "LONG256",
            ColumnType::Geohash(_) => "GEOHASH",
            ColumnType::Varchar => "VARCHAR",
            ColumnType::Binary => "BINARY",
            ColumnType::Ipv4 => "IPV4",
            ColumnType::Decimal64(_) | ColumnType::Decimal128(_) | ColumnType::Decimal256(_) => {
                "DECIMAL"
            }
            ColumnType::DoubleArray(_) => "DOUBLE[]",
            ColumnType::LongArray(_) => "LONG[]",
        }
    }

    /// The Arrow type values of this column are stored as.
    pub fn stored_type(&self) -> DataType {
        let utc = || Some(Arc::<str>::from("UTC"));
        match self {
            ColumnType::Boolean => DataType::Boolean,
            ColumnType::Byte => DataType::Int8,
            ColumnType::Short => DataType::Int16,
            ColumnType::Char => DataType::UInt16,
            ColumnType::Int => DataType::Int32,
            ColumnType::Long => DataType::Int64,
            ColumnType::Float => DataType::Float32,
            ColumnType::Double => DataType::Float64,
            ColumnType::Symbol | ColumnType::Ipv4 => DataType::UInt32,
            ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, utc()),
            ColumnType::TimestampNanos => DataType::Timestamp(TimeUnit::Nanosecond, utc()),
            ColumnType::Date => DataType::Timestamp(TimeUnit::Millisecond, utc()),
            ColumnType::Uuid => DataType::FixedSizeBinary(16),
            ColumnType::Long256 => DataType::FixedSizeBinary(32),
            ColumnType::Geohash(bits) => match bits {
                0..=7 => DataType::Int8,
                8..=15 => DataType::Int16,
                16..=31 => DataType::Int32,
                _ => DataType::Int64,
            },
            ColumnType::Varchar => DataType::Utf8,
            ColumnType::Binary => DataType::Binary,
            ColumnType::Decimal64(s) => DataType::Decimal64(18, scale(*s)),
            ColumnType::Decimal128(s) => DataType::Decimal128(38, scale(*s)),
            ColumnType::Decimal256(s) => DataType::Decimal256(76, scale(*s)),
            ColumnType::DoubleArray(r) => nested_list(DataType::Float64, *r),
            ColumnType::LongArray(r) => nested_list(DataType::Int64, *r),
        }
    }

    /// The Arrow type readers see.
    pub fn read_type(&self) -> DataType {
        match self {
            ColumnType::Symbol => {
                DataType::Dictionary(Box::new(DataType::UInt32), Box::new(DataType::Utf8))
            }
            other => other.stored_type(),
        }
    }

    /// Whether this column may be the designated timestamp.
    pub fn is_timestamp(&self) -> bool {
        matches!(self, ColumnType::Timestamp | ColumnType::TimestampNanos)
    }

    fn code(&self) -> (u8, u8) {
        match *self {
            ColumnType::Boolean => (1, 0),
            ColumnType::Byte => (2, 0),
            ColumnType::Short => (3, 0),
            ColumnType::Int => (4, 0),
            ColumnType::Long => (5, 0),
            ColumnType::Float => (6, 0),
            ColumnType::Double => (7, 0),
            ColumnType::Symbol => (9, 0),
            ColumnType::Timestamp => (10, 0),
            ColumnType::Date => (11, 0),
            ColumnType::Uuid => (12, 0),
            ColumnType::Long256 => (13, 0),
            ColumnType::Geohash(b) => (14, b),
            ColumnType::Varchar => (15, 0),
            ColumnType::TimestampNanos => (16, 0),
            ColumnType::DoubleArray(r) => (17, r),
            ColumnType::LongArray(r) => (18, r),
            ColumnType::Decimal64(s) => (19, s),
            ColumnType::Decimal128(s) => (20, s),
            ColumnType::Decimal256(s) => (21, s),
            ColumnType::Char => (22, 0),
            ColumnType::Binary => (23, 0),
            ColumnType::Ipv4 => (24, 0),
        }
    }

    fn from_code(code: u8, arg: u8) -> Option<ColumnType> {
        Some(match code {
            1 => ColumnType::Boolean,
            2 => ColumnType::Byte,
            3 => ColumnType::Short,
            4 => ColumnType::Int,
            5 => ColumnType::Long,
            6 => ColumnType::Float,
            7 => ColumnType::Double,
            9 => ColumnType::Symbol,
            10 => ColumnType::Timestamp,
            11 => ColumnType::Date,
            12 => ColumnType::Uuid,
            13 => ColumnType::Long256,
            14 if (1..=60).contains(&arg) => ColumnType::Geohash(arg),
            15 => ColumnType::Varchar,
            16 => ColumnType::TimestampNanos,
            17 if arg >= 1 => ColumnType::DoubleArray(arg),
            18 if arg >= 1 => ColumnType::LongArray(arg),
            19 if arg <= 18 => ColumnType::Decimal64(arg),
            20 if arg <= 38 => ColumnType::Decimal128(arg),
            21 if arg <= 76 => ColumnType::Decimal256(arg),
            22 => ColumnType::Char,
            23 => ColumnType::Binary,
            24 => ColumnType::Ipv4,
            _ => return None,
        })
    }
}

/// A decimal scale as Arrow holds it (`TableSchema::validate` refuses a
/// scale past the precision, so the cap never applies to a stored column).
fn scale(s: u8) -> i8 {
    i8::try_from(s).unwrap_or(i8::MAX)
}

/// `rank` nested nullable Lists of `leaf` (the layout of array columns).
pub fn nested_list(leaf: DataType, rank: u8) -> DataType {
    let mut t = leaf;
    for _ in 0..rank {
        t = DataType::List(Arc::new(Field::new("item", t, true)));
    }
    t
}

/// A named column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSchema {
    /// Column name (case-insensitively unique in its table).
    pub name: String,
    /// Column type.
    pub column_type: ColumnType,
}

impl ColumnSchema {
    /// A column.
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Self {
        ColumnSchema {
            name: name.into(),
            column_type,
        }
    }

    fn field(&self, data_type: DataType) -> Field {
        Field::new(&self.name, data_type, true).with_metadata(HashMap::from([(
            TYPE_METADATA_KEY.to_string(),
            self.column_type.name(),
        )]))
    }

    /// The stored Arrow field.
    pub fn stored_field(&self) -> Field {
        self.field(self.column_type.stored_type())
    }

    /// The Arrow field readers see.
    pub fn read_field(&self) -> Field {
        self.field(self.column_type.read_type())
    }
}

/// How a table is partitioned by its designated timestamp (QuestDB's
/// `PARTITION BY` unit).
///
/// Segments are written in UTC-day directories for every unit but `None`:
/// a day lies within one week, month and year, so day directories prune at
/// least as well as the declared unit would; an `Hour` table keeps its unit
/// for `tables()` and uses day directories too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionBy {
    /// One partition per UTC day (QuestDB's ILP default).
    Day,
    /// No partitioning.
    None,
    /// QuestDB's `PARTITION BY HOUR`.
    Hour,
    /// QuestDB's `PARTITION BY WEEK`.
    Week,
    /// QuestDB's `PARTITION BY MONTH`.
    Month,
    /// QuestDB's `PARTITION BY YEAR`.
    Year,
}

impl PartitionBy {
    /// QuestDB's name of the unit (`DAY`, `NONE`, ...).
    pub fn name(&self) -> &'static str {
        match self {
            PartitionBy::Day => "DAY",
            PartitionBy::None => "NONE",
            PartitionBy::Hour => "HOUR",
            PartitionBy::Week => "WEEK",
            PartitionBy::Month => "MONTH",
            PartitionBy::Year => "YEAR",
        }
    }

    /// The unit a QuestDB name stands for (ASCII case ignored).
    pub fn from_name(name: &str) -> Option<PartitionBy> {
        [
            PartitionBy::Day,
            PartitionBy::None,
            PartitionBy::Hour,
            PartitionBy::Week,
            PartitionBy::Month,
            PartitionBy::Year,
        ]
        .into_iter()
        .find(|p| p.name().eq_ignore_ascii_case(name))
    }

    fn code(self) -> u8 {
        match self {
            PartitionBy::None => 0,
            PartitionBy::Day => 1,
            PartitionBy::Hour => 2,
            PartitionBy::Week => 3,
            PartitionBy::Month => 4,
            PartitionBy::Year => 5,
        }
    }

    fn from_code(code: u8) -> Option<PartitionBy> {
        Some(match code {
            0 => PartitionBy::None,
            1 => PartitionBy::Day,
            2 => PartitionBy::Hour,
            3 => PartitionBy::Week,
            4 => PartitionBy::Month,
            5 => PartitionBy::Year,
            _ => return None,
        })
    }
}

/// A table's columns, designated timestamp and partitioning. Columns are
/// only ever appended; `version` counts the changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSchema {
    /// Table name.
    pub name: String,
    /// Columns in order.
    pub columns: Vec<ColumnSchema>,
    /// Index of the designated timestamp column.
    pub designated_timestamp: Option<usize>,
    /// Partitioning.
    pub partition_by: PartitionBy,
    /// Incremented by every column addition; 0 at creation.
    pub version: u32,
}

impl TableSchema {
    /// Checks names and limits: table and column names non-empty, at most
    /// 127 bytes, free of path separators and control characters, column
    /// names unique ignoring ASCII case, the designated timestamp a
    /// TIMESTAMP or TIMESTAMP_NS column.
    pub fn validate(&self) -> Result<()> {
        validate_name(&self.name, "table", &self.name)?;
        if self.columns.len() > MAX_COLUMNS {
            return Err(StorageError::TooManyColumns {
                table: self.name.clone(),
                count: self.columns.len(),
            });
        }
        for (i, c) in self.columns.iter().enumerate() {
            validate_name(&c.name, "column", &self.name)?;
            let (code, arg) = c.column_type.code();
            if ColumnType::from_code(code, arg) != Some(c.column_type) {
                return Err(StorageError::InvalidColumnType {
                    table: self.name.clone(),
                    column: c.name.clone(),
                    reason: "its precision, scale or rank is out of range",
                });
            }
            if self.columns[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&c.name))
            {
                return Err(StorageError::InvalidName {
                    table: self.name.clone(),
                    name: c.name.clone(),
                    reason: "duplicate column name",
                });
            }
        }
        if let Some(ts) = self.designated_timestamp {
            let ok = self
                .columns
                .get(ts)
                .is_some_and(|c| c.column_type.is_timestamp());
            if !ok {
                return Err(StorageError::InvalidName {
                    table: self.name.clone(),
                    name: self
                        .columns
                        .get(ts)
                        .map_or_else(String::new, |c| c.name.clone()),
                    reason: "the designated timestamp must be a TIMESTAMP or TIMESTAMP_NS column",
                });
            }
        }
        Ok(())
    }

    /// The column called `name`, ignoring ASCII case.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.name.eq_ignore_ascii_case(name))
    }

    /// The Arrow schema of stored batches with every column.
    pub fn stored_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(ColumnSchema::stored_field)
                .collect::<Vec<_>>(),
        ))
    }

    /// The Arrow schema readers see; the designated timestamp's field also
    /// carries [`DESIGNATED_METADATA_KEY`].
    pub fn read_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let field = c.read_field();
                    match self.designated_timestamp == Some(i) {
                        true => {
                            let mut metadata = field.metadata().clone();
                            metadata
                                .insert(DESIGNATED_METADATA_KEY.to_string(), "true".to_string());
                            field.with_metadata(metadata)
                        }
                        false => field,
                    }
                })
                .collect::<Vec<_>>(),
        ))
    }

    /// Appends the schema's encoding:
    ///
    /// ```text
    /// str name | u32 version | u8 partitioning (0 none, 1 day, 2 hour, 3 week, 4 month, 5 year)
    /// u32 designated timestamp column index (u32::MAX: none)
    /// u32 column count (at most MAX_COLUMNS), each: str name | u8 type code | u8 type argument
    /// ```
    pub(crate) fn encode(&self, e: &mut Encoder) {
        e.str("table name", &self.name);
        e.u32(self.version);
        e.u8(self.partition_by.code());
        match self.designated_timestamp {
            Some(i) => e.bounded_u32("designated timestamp index", i, MAX_COLUMNS),
            None => e.u32(u32::MAX),
        }
        e.bounded_u32("columns", self.columns.len(), MAX_COLUMNS);
        for c in &self.columns {
            e.str("column name", &c.name);
            let (code, arg) = c.column_type.code();
            e.u8(code);
            e.u8(arg);
        }
    }

    /// Reads a schema written by [`TableSchema::encode`], and checks it.
    pub(crate) fn decode(d: &mut Decoder<'_>) -> Result<TableSchema> {
        let name = d.str()?.to_string();
        let version = d.u32()?;
        let partition_by =
            PartitionBy::from_code(d.u8()?).ok_or_else(|| d.corrupt("unknown partitioning"))?;
        let ts = d.u32()?;
        // A column takes at least 6 bytes.
        let n = d.count(MAX_COLUMNS, 6)?;
        let mut columns = Vec::with_capacity(n);
        for _ in 0..n {
            let name = d.str()?.to_string();
            let (code, arg) = (d.u8()?, d.u8()?);
            let column_type =
                ColumnType::from_code(code, arg).ok_or_else(|| d.corrupt("unknown column type"))?;
            columns.push(ColumnSchema { name, column_type });
        }
        let schema = TableSchema {
            name,
            columns,
            designated_timestamp: (ts != u32::MAX).then_some(ts as usize),
            partition_by,
            version,
        };
        schema
            .validate()
            .map_err(|_| d.corrupt("a schema that breaks the naming or type rules"))?;
        Ok(schema)
    }
}

/// Checks a table or column name.
pub fn validate_name(name: &str, what: &'static str, table: &str) -> Result<()> {
    let reason = if name.is_empty() {
        Some("name is empty")
    } else if name.len() > MAX_NAME_LEN {
        Some("name is longer than 127 bytes")
    } else if name
        .chars()
        .any(|c| c.is_control() || matches!(c, '/' | '\\' | '\0'))
        || (what == "table" && (name == "." || name == ".." || name.starts_with('.')))
    {
        Some("name contains a path separator, a control character or a leading dot")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(StorageError::InvalidName {
            table: table.to_string(),
            name: name.to_string(),
            reason,
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_round_trips_through_its_code() {
        let all = [
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
            ColumnType::Geohash(25),
            ColumnType::Varchar,
            ColumnType::Binary,
            ColumnType::Ipv4,
            ColumnType::Decimal64(4),
            ColumnType::Decimal128(20),
            ColumnType::Decimal256(70),
            ColumnType::DoubleArray(2),
            ColumnType::LongArray(1),
        ];
        for t in all {
            let (c, a) = t.code();
            assert_eq!(ColumnType::from_code(c, a), Some(t));
        }
        for t in all {
            assert_eq!(ColumnType::from_name(&t.name()), Some(t), "{}", t.name());
        }
        assert_eq!(
            ColumnType::from_name("geohash(5)"),
            Some(ColumnType::Geohash(5))
        );
        for bad in [
            "",
            "DOUBLE[",
            "DECIMAL(17,2)",
            "GEOHASH(61b)",
            "LONG[][]x",
            "NOPE",
        ] {
            assert_eq!(ColumnType::from_name(bad), None, "{bad}");
        }
        assert_eq!(ColumnType::Geohash(25).stored_type(), DataType::Int32);
        assert_eq!(ColumnType::DoubleArray(2).name(), "DOUBLE[][]");
    }

    #[test]
    fn schema_validation_and_codec() {
        let schema = TableSchema {
            name: "trades".into(),
            columns: vec![
                ColumnSchema::new("sym", ColumnType::Symbol),
                ColumnSchema::new("timestamp", ColumnType::Timestamp),
            ],
            designated_timestamp: Some(1),
            partition_by: PartitionBy::Day,
            version: 3,
        };
        schema.validate().unwrap();
        let mut w = Encoder::default();
        schema.encode(&mut w);
        let bytes = w.finish().unwrap();
        let back = TableSchema::decode(&mut Decoder::new(&bytes, "test")).unwrap();
        assert_eq!(back, schema);
        assert_eq!(schema.column_index("SYM"), Some(0));
        for name in ["NONE", "hour", "Day", "WEEK", "MONTH", "YEAR"] {
            let mut s = schema.clone();
            s.partition_by = PartitionBy::from_name(name).unwrap();
            assert!(s.partition_by.name().eq_ignore_ascii_case(name));
            let mut w = Encoder::default();
            s.encode(&mut w);
            let bytes = w.finish().unwrap();
            assert_eq!(
                TableSchema::decode(&mut Decoder::new(&bytes, "test")).unwrap(),
                s
            );
        }
        assert_eq!(PartitionBy::from_name("DECADE"), None);

        let mut dup = schema.clone();
        dup.columns.push(ColumnSchema::new("Sym", ColumnType::Long));
        assert!(dup.validate().is_err());
        for bad in ["", "a/b", "..", ".hidden", "x\u{1}"] {
            let mut s = schema.clone();
            s.name = bad.into();
            assert!(s.validate().is_err(), "{bad:?}");
        }
        let mut s = schema.clone();
        s.designated_timestamp = Some(0);
        assert!(s.validate().is_err());
    }
}
