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
    /// The name its values are stored under in WAL records, memtables,
    /// segment files and symbol dictionaries: the name it was created
    /// with, kept through renames, so stored data never needs rewriting.
    /// A column added after a column was dropped gets `name/version`
    /// (no column name can hold a `/`), so it never picks up a dropped
    /// column's data. Set by the storage engine; callers pass
    /// [`ColumnSchema::new`]'s default.
    pub stored_name: String,
}

impl ColumnSchema {
    /// A column (stored under its name).
    pub fn new(name: impl Into<String>, column_type: ColumnType) -> Self {
        let name = name.into();
        ColumnSchema {
            stored_name: name.clone(),
            name,
            column_type,
        }
    }

    fn field(&self, name: &str, data_type: DataType) -> Field {
        Field::new(name, data_type, true).with_metadata(HashMap::from([(
            TYPE_METADATA_KEY.to_string(),
            self.column_type.name(),
        )]))
    }

    /// The Arrow field of stored batches (WAL records, memtables): the
    /// stored type under the stored name.
    pub fn stored_field(&self) -> Field {
        self.field(&self.stored_name, self.column_type.stored_type())
    }

    /// The Arrow field of segment files: the read type under the stored
    /// name.
    pub fn sealed_field(&self) -> Field {
        self.field(&self.stored_name, self.column_type.read_type())
    }

    /// The Arrow field readers see.
    pub fn read_field(&self) -> Field {
        self.field(&self.name, self.column_type.read_type())
    }
}

/// A change to a table's schema ([`TableSchema::apply_change`]): its
/// columns or its time to live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaChange {
    /// Adds the columns the table lacks (one it has under any type is left
    /// as it is).
    Add(Vec<ColumnSchema>),
    /// Drops columns; the data stays in the files it is in, unread.
    Drop {
        /// The columns.
        names: Vec<String>,
        /// Names the table lacks are skipped rather than refused.
        if_exists: bool,
    },
    /// Renames a column; its data stays where it is.
    Rename {
        /// The column.
        from: String,
        /// Its new name.
        to: String,
    },
    /// Sets (or with `None`, removes) the table's time to live.
    SetTtl(Option<Ttl>),
}

/// A table's time to live (QuestDB's `TTL n HOURS | DAYS | WEEKS | MONTHS
/// | YEARS`): partitions whose whole time range lies more than this before
/// the reference time (the newest designated timestamp, but never later
/// than the wall clock) are dropped. A whole number of the table's
/// partitions ([`TableSchema::validate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ttl {
    /// How many units (at least 1).
    pub count: u32,
    /// The unit.
    pub unit: TtlUnit,
}

/// The unit of a [`Ttl`]: hours, days and weeks are fixed lengths; months
/// and years go by the calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtlUnit {
    /// Hours.
    Hours,
    /// Days (24 hours).
    Days,
    /// Weeks (7 days).
    Weeks,
    /// Calendar months.
    Months,
    /// Calendar years.
    Years,
}

impl TtlUnit {
    /// QuestDB's name (`HOURS`, ...).
    pub fn name(self) -> &'static str {
        match self {
            TtlUnit::Hours => "HOURS",
            TtlUnit::Days => "DAYS",
            TtlUnit::Weeks => "WEEKS",
            TtlUnit::Months => "MONTHS",
            TtlUnit::Years => "YEARS",
        }
    }

    fn code(self) -> u8 {
        match self {
            TtlUnit::Hours => 0,
            TtlUnit::Days => 1,
            TtlUnit::Weeks => 2,
            TtlUnit::Months => 3,
            TtlUnit::Years => 4,
        }
    }

    fn from_code(code: u8) -> Option<TtlUnit> {
        Some(match code {
            0 => TtlUnit::Hours,
            1 => TtlUnit::Days,
            2 => TtlUnit::Weeks,
            3 => TtlUnit::Months,
            4 => TtlUnit::Years,
            _ => return None,
        })
    }
}

impl std::fmt::Display for Ttl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.count, self.unit.name())
    }
}

impl Ttl {
    /// The longest TTL, in years (a longer one could only reach before
    /// the first timestamps anyway).
    pub const MAX_YEARS: u32 = 1000;

    /// Whether the TTL is at most [`Ttl::MAX_YEARS`].
    pub fn is_in_range(&self) -> bool {
        let years = u64::from(Self::MAX_YEARS);
        u64::from(self.count)
            <= match self.unit {
                TtlUnit::Hours => years * 8766,
                TtlUnit::Days => years * 36525 / 100,
                TtlUnit::Weeks => years * 36525 / 700,
                TtlUnit::Months => years * 12,
                TtlUnit::Years => years,
            }
    }

    /// Whether the TTL is a whole number of `partition_by`'s partitions
    /// (QuestDB's rule: a DAY table takes `24 HOURS` or `2 DAYS` but not
    /// `36 HOURS`; a MONTH table only months and years).
    pub fn fits(&self, partition_by: PartitionBy) -> bool {
        let n = u64::from(self.count);
        // Hours in the TTL, for the fixed units.
        let hours = match self.unit {
            TtlUnit::Hours => Some(n),
            TtlUnit::Days => Some(n * 24),
            TtlUnit::Weeks => Some(n * 168),
            TtlUnit::Months | TtlUnit::Years => None,
        };
        let months = match self.unit {
            TtlUnit::Months => Some(n),
            TtlUnit::Years => Some(n * 12),
            _ => None,
        };
        self.count > 0
            && match partition_by {
                PartitionBy::None => false,
                PartitionBy::Hour => true,
                PartitionBy::Day => hours.is_none_or(|h| h % 24 == 0),
                PartitionBy::Week => hours.is_none_or(|h| h % 168 == 0),
                PartitionBy::Month => months.is_some(),
                PartitionBy::Year => months.is_some_and(|m| m % 12 == 0),
            }
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

/// A table's columns, designated timestamp and partitioning; `version`
/// counts the changes.
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
    /// Incremented by every change; 0 at creation.
    pub version: u32,
    /// A column was ever dropped: columns added since get `name/version`
    /// stored names (see [`ColumnSchema::stored_name`]).
    pub has_dropped_columns: bool,
    /// Time to live: old partitions are dropped (see [`Ttl`]).
    pub ttl: Option<Ttl>,
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
            let stored_ok = !c.stored_name.is_empty()
                && c.stored_name.len() <= MAX_NAME_LEN + 11
                && !c.stored_name.chars().any(|ch| ch.is_control())
                && !self.columns[..i]
                    .iter()
                    .any(|o| o.stored_name.eq_ignore_ascii_case(&c.stored_name));
            if !stored_ok {
                return Err(StorageError::InvalidName {
                    table: self.name.clone(),
                    name: c.stored_name.clone(),
                    reason: "a stored column name that is empty, too long or not unique",
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
        if let Some(ttl) = self.ttl {
            let reason =
                if self.designated_timestamp.is_none() || self.partition_by == PartitionBy::None {
                    Some("a TTL needs a designated timestamp and partitions".to_string())
                } else if !ttl.is_in_range() {
                    Some(format!("TTL {ttl} is longer than {} years", Ttl::MAX_YEARS))
                } else if !ttl.fits(self.partition_by) {
                    Some(format!(
                        "TTL {ttl} is not a whole number of {} partitions",
                        self.partition_by.name()
                    ))
                } else {
                    None
                };
            if let Some(reason) = reason {
                return Err(StorageError::InvalidRequest {
                    table: self.name.clone(),
                    reason,
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

    /// The column stored under `stored_name`, ignoring ASCII case.
    pub fn stored_column_index(&self, stored_name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.stored_name.eq_ignore_ascii_case(stored_name))
    }

    /// The schema after `change` (its version one higher), or `None` when
    /// it changes nothing (every column to add or drop with IF EXISTS is
    /// there or gone already). Refuses, naming table and column: dropping
    /// an unknown column, the designated timestamp or the last column;
    /// renaming an unknown column or to a name another column has.
    pub fn apply_change(&self, change: SchemaChange) -> Result<Option<TableSchema>> {
        let mut next = self.clone();
        next.version = self
            .version
            .checked_add(1)
            .ok_or(StorageError::LimitExceeded {
                what: "schema versions",
                value: u64::from(self.version) + 1,
                limit: u64::from(u32::MAX),
            })?;
        let refuse = |column: &str, reason: &'static str| StorageError::InvalidColumnChange {
            table: self.name.clone(),
            column: column.to_string(),
            reason,
        };
        match change {
            SchemaChange::Add(columns) => {
                for c in columns {
                    if next.column_index(&c.name).is_some() {
                        continue;
                    }
                    // A plain stored name only while it cannot meet data
                    // of another column: no column was ever dropped and no
                    // column (renamed away) is stored under it.
                    let plain =
                        !next.has_dropped_columns && next.stored_column_index(&c.name).is_none();
                    let stored_name = match plain {
                        true => c.name.clone(),
                        false => format!("{}/{}", c.name, next.version),
                    };
                    next.columns.push(ColumnSchema { stored_name, ..c });
                }
                if next.columns.len() == self.columns.len() {
                    return Ok(None);
                }
            }
            SchemaChange::Drop { names, if_exists } => {
                for name in &names {
                    let Some(i) = next.column_index(name) else {
                        match if_exists {
                            true => continue,
                            false => return Err(refuse(name, "column does not exist")),
                        }
                    };
                    match next.designated_timestamp {
                        Some(ts) if ts == i => {
                            return Err(refuse(name, "the designated timestamp cannot be dropped"));
                        }
                        Some(ts) if ts > i => next.designated_timestamp = Some(ts - 1),
                        _ => {}
                    }
                    if next.columns.len() == 1 {
                        return Err(refuse(name, "a table keeps at least one column"));
                    }
                    next.columns.remove(i);
                    next.has_dropped_columns = true;
                }
                if next.columns.len() == self.columns.len() {
                    return Ok(None);
                }
            }
            SchemaChange::Rename { from, to } => {
                let i = next
                    .column_index(&from)
                    .ok_or_else(|| refuse(&from, "column does not exist"))?;
                if next.column_index(&to).is_some_and(|j| j != i) {
                    return Err(refuse(&to, "another column has this name"));
                }
                next.columns[i].name = to;
            }
            SchemaChange::SetTtl(ttl) => {
                if ttl == self.ttl {
                    return Ok(None);
                }
                next.ttl = ttl;
            }
        }
        next.validate()?;
        Ok(Some(next))
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

    /// The Arrow schema of segment files: read types under stored names.
    pub fn sealed_schema(&self) -> SchemaRef {
        Arc::new(Schema::new(
            self.columns
                .iter()
                .map(ColumnSchema::sealed_field)
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
    /// str name | u32 version
    /// u8 partitioning (0 none, 1 day, 2 hour, 3 week, 4 month, 5 year)
    ///    | 0x80 when a column was ever dropped | 0x40 when a TTL follows
    ///      the columns
    /// u32 designated timestamp column index (u32::MAX: none)
    /// u32 column count (at most MAX_COLUMNS), each:
    ///    str name | u8 type code (| 0x80: a stored name follows) | u8 type argument
    ///    [str stored name, when it is not the name]
    /// [u32 TTL count | u8 TTL unit (0 hours, 1 days, 2 weeks, 3 months, 4 years)]
    /// ```
    pub(crate) fn encode(&self, e: &mut Encoder) {
        e.str("table name", &self.name);
        e.u32(self.version);
        e.u8(self.partition_by.code()
            | if self.has_dropped_columns { FLAG } else { 0 }
            | if self.ttl.is_some() { TTL_FLAG } else { 0 });
        match self.designated_timestamp {
            Some(i) => e.bounded_u32("designated timestamp index", i, MAX_COLUMNS),
            None => e.u32(u32::MAX),
        }
        e.bounded_u32("columns", self.columns.len(), MAX_COLUMNS);
        for c in &self.columns {
            e.str("column name", &c.name);
            let (code, arg) = c.column_type.code();
            let renamed = c.stored_name != c.name;
            e.u8(code | if renamed { FLAG } else { 0 });
            e.u8(arg);
            if renamed {
                e.str("stored column name", &c.stored_name);
            }
        }
        if let Some(ttl) = self.ttl {
            e.u32(ttl.count);
            e.u8(ttl.unit.code());
        }
    }

    /// Reads a schema written by [`TableSchema::encode`], and checks it.
    pub(crate) fn decode(d: &mut Decoder<'_>) -> Result<TableSchema> {
        let name = d.str()?.to_string();
        let version = d.u32()?;
        let partitioning = d.u8()?;
        let partition_by = PartitionBy::from_code(partitioning & !(FLAG | TTL_FLAG))
            .ok_or_else(|| d.corrupt("unknown partitioning"))?;
        let ts = d.u32()?;
        // A column takes at least 6 bytes.
        let n = d.count(MAX_COLUMNS, 6)?;
        let mut columns = Vec::with_capacity(n);
        for _ in 0..n {
            let name = d.str()?.to_string();
            let (code, arg) = (d.u8()?, d.u8()?);
            let column_type = ColumnType::from_code(code & !FLAG, arg)
                .ok_or_else(|| d.corrupt("unknown column type"))?;
            let stored_name = match code & FLAG != 0 {
                true => d.str()?.to_string(),
                false => name.clone(),
            };
            columns.push(ColumnSchema {
                name,
                column_type,
                stored_name,
            });
        }
        let ttl = match partitioning & TTL_FLAG != 0 {
            true => {
                let count = d.u32()?;
                let unit =
                    TtlUnit::from_code(d.u8()?).ok_or_else(|| d.corrupt("unknown TTL unit"))?;
                Some(Ttl { count, unit })
            }
            false => None,
        };
        let schema = TableSchema {
            name,
            columns,
            designated_timestamp: (ts != u32::MAX).then_some(ts as usize),
            partition_by,
            version,
            has_dropped_columns: partitioning & FLAG != 0,
            ttl,
        };
        schema
            .validate()
            .map_err(|_| d.corrupt("a schema that breaks the naming or type rules"))?;
        Ok(schema)
    }
}

/// The flag bit of the partitioning and type code bytes in a schema's
/// encoding.
const FLAG: u8 = 0x80;
/// The partitioning byte's flag for a TTL at the end.
const TTL_FLAG: u8 = 0x40;

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
            has_dropped_columns: false,
            ttl: None,
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

    #[test]
    fn ttls_round_trip_and_must_be_whole_partitions() {
        let mut schema = TableSchema {
            name: "t".into(),
            columns: vec![ColumnSchema::new("ts", ColumnType::Timestamp)],
            designated_timestamp: Some(0),
            partition_by: PartitionBy::Day,
            version: 0,
            has_dropped_columns: true,
            ttl: Some(Ttl {
                count: 30,
                unit: TtlUnit::Days,
            }),
        };
        schema.validate().unwrap();
        let mut w = Encoder::default();
        schema.encode(&mut w);
        let bytes = w.finish().unwrap();
        assert_eq!(
            TableSchema::decode(&mut Decoder::new(&bytes, "test")).unwrap(),
            schema
        );
        let ttl = |count, unit| Ttl { count, unit };
        for (partition_by, fits, does_not) in [
            (
                PartitionBy::Hour,
                ttl(1, TtlUnit::Hours),
                ttl(0, TtlUnit::Hours),
            ),
            (
                PartitionBy::Day,
                ttl(48, TtlUnit::Hours),
                ttl(36, TtlUnit::Hours),
            ),
            (
                PartitionBy::Day,
                ttl(3, TtlUnit::Months),
                ttl(0, TtlUnit::Days),
            ),
            (
                PartitionBy::Week,
                ttl(14, TtlUnit::Days),
                ttl(10, TtlUnit::Days),
            ),
            (
                PartitionBy::Month,
                ttl(2, TtlUnit::Years),
                ttl(31, TtlUnit::Days),
            ),
            (
                PartitionBy::Year,
                ttl(24, TtlUnit::Months),
                ttl(18, TtlUnit::Months),
            ),
            (
                PartitionBy::None,
                ttl(1, TtlUnit::Years),
                ttl(1, TtlUnit::Years),
            ),
            (
                PartitionBy::Day,
                ttl(365_250, TtlUnit::Days),
                ttl(365_251, TtlUnit::Days),
            ),
            (
                PartitionBy::Year,
                ttl(1000, TtlUnit::Years),
                ttl(1001, TtlUnit::Years),
            ),
            (
                PartitionBy::Hour,
                ttl(8_766_000, TtlUnit::Hours),
                ttl(u32::MAX, TtlUnit::Hours),
            ),
        ] {
            schema.partition_by = partition_by;
            schema.ttl = Some(fits);
            assert_eq!(
                schema.validate().is_ok(),
                partition_by != PartitionBy::None,
                "{fits}"
            );
            schema.ttl = Some(does_not);
            assert!(schema.validate().is_err(), "{does_not} on {partition_by:?}");
        }
        // Setting the TTL is a schema change; setting the same one is none.
        schema.partition_by = PartitionBy::Day;
        schema.ttl = None;
        let next = schema
            .apply_change(SchemaChange::SetTtl(Some(ttl(2, TtlUnit::Weeks))))
            .unwrap()
            .unwrap();
        assert_eq!(next.ttl, Some(ttl(2, TtlUnit::Weeks)));
        assert_eq!(next.version, schema.version + 1);
        assert_eq!(
            next.apply_change(SchemaChange::SetTtl(next.ttl)).unwrap(),
            None
        );
    }

    #[test]
    fn column_changes_keep_stored_names_apart() {
        let schema = TableSchema {
            name: "t".into(),
            columns: vec![
                ColumnSchema::new("a", ColumnType::Long),
                ColumnSchema::new("ts", ColumnType::Timestamp),
                ColumnSchema::new("b", ColumnType::Symbol),
            ],
            designated_timestamp: Some(1),
            partition_by: PartitionBy::Day,
            version: 0,
            has_dropped_columns: false,
            ttl: None,
        };
        let change = |s: &TableSchema, c: SchemaChange| s.apply_change(c).unwrap().unwrap();
        // A rename keeps the stored name; a new column takes a plain one
        // while no data can meet it, a `/version` one once it could.
        let s1 = change(
            &schema,
            SchemaChange::Rename {
                from: "A".into(),
                to: "c".into(),
            },
        );
        assert_eq!(
            (
                s1.columns[0].name.as_str(),
                s1.columns[0].stored_name.as_str()
            ),
            ("c", "a")
        );
        let s2 = change(
            &s1,
            SchemaChange::Add(vec![ColumnSchema::new("a", ColumnType::Double)]),
        );
        assert_eq!(s2.columns[3].stored_name, "a/2");
        let s2b = change(
            &s1,
            SchemaChange::Add(vec![ColumnSchema::new("d", ColumnType::Double)]),
        );
        assert_eq!(s2b.columns[3].stored_name, "d");
        let s3 = change(
            &s2,
            SchemaChange::Drop {
                names: vec!["c".into()],
                if_exists: false,
            },
        );
        assert!(s3.has_dropped_columns);
        assert_eq!(s3.designated_timestamp, Some(0));
        assert_eq!(s3.columns[0].name, "ts");
        let s4 = change(
            &s3,
            SchemaChange::Add(vec![ColumnSchema::new("c", ColumnType::Int)]),
        );
        assert_eq!(s4.columns[3].stored_name, "c/4");
        assert_eq!(s4.version, 4);
        // Nothing to do: None.
        assert_eq!(
            s4.apply_change(SchemaChange::Add(vec![ColumnSchema::new(
                "C",
                ColumnType::Long
            )]))
            .unwrap(),
            None
        );
        assert_eq!(
            s4.apply_change(SchemaChange::Drop {
                names: vec!["nope".into()],
                if_exists: true
            })
            .unwrap(),
            None
        );
        // Refusals name the column.
        for (c, reason) in [
            (
                SchemaChange::Drop {
                    names: vec!["ts".into()],
                    if_exists: false,
                },
                "designated timestamp",
            ),
            (
                SchemaChange::Drop {
                    names: vec!["nope".into()],
                    if_exists: false,
                },
                "does not exist",
            ),
            (
                SchemaChange::Rename {
                    from: "b".into(),
                    to: "TS".into(),
                },
                "another column",
            ),
            (
                SchemaChange::Rename {
                    from: "b".into(),
                    to: "x/y".into(),
                },
                "path separator",
            ),
        ] {
            let e = s4.apply_change(c).unwrap_err().to_string();
            assert!(e.contains(reason), "{e}");
        }
        // A rename to another case of the same name is allowed.
        assert_eq!(
            change(
                &s4,
                SchemaChange::Rename {
                    from: "b".into(),
                    to: "B".into()
                }
            )
            .columns[1]
                .name,
            "B"
        );
        // Stored names and the dropped flag survive the codec.
        let mut w = Encoder::default();
        s4.encode(&mut w);
        let bytes = w.finish().unwrap();
        assert_eq!(
            TableSchema::decode(&mut Decoder::new(&bytes, "test")).unwrap(),
            s4
        );
        // Stored names must stay unique.
        let mut bad = s4.clone();
        bad.columns[3].stored_name = "B".into();
        assert!(bad.validate().is_err());
    }
}
