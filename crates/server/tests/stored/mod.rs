//! Shared by the Python interop tests: reads a table back from storage and
//! turns its columns into plain Rust values, plus small helpers that derive
//! expected values independently (civil dates to epoch units, geohash
//! strings to bits, UUID text to bytes).

#![allow(dead_code)]

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{
    DataType, Decimal64Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, UInt16Type, UInt32Type, i256,
};
use quiver_storage::{ColumnType, Database, TableSchema};

/// A table's visible rows, in row-id order, as one batch of the read schema.
pub struct Stored {
    /// The table name.
    pub name: String,
    /// The schema.
    pub schema: Arc<TableSchema>,
    /// Every visible row.
    pub batch: RecordBatch,
    /// `TableSnapshot::row_count`.
    pub snapshot_rows: u64,
}

/// Reads every visible row of `name`; panics if the table does not exist.
pub fn read_table(db: &Database, name: &str) -> Stored {
    let snapshot = db.snapshot(name).unwrap_or_else(|| {
        let names: Vec<String> = db
            .tables()
            .into_iter()
            .map(|t| t.schema.name.clone())
            .collect();
        panic!("table {name:?} not found; tables: {names:?}")
    });
    let batches = snapshot.collect(false).expect("scan table");
    let read_schema = snapshot.read_schema(false);
    let batch = arrow::compute::concat_batches(&read_schema, &batches).expect("concat batches");
    Stored {
        name: name.to_string(),
        schema: snapshot.schema().clone(),
        batch,
        snapshot_rows: snapshot.row_count(),
    }
}

impl Stored {
    /// Rows read.
    pub fn rows(&self) -> usize {
        self.batch.num_rows()
    }

    /// The column called `name` (exact name).
    pub fn col(&self, name: &str) -> &ArrayRef {
        self.batch.column_by_name(name).unwrap_or_else(|| {
            let names: Vec<&str> = self
                .schema
                .columns
                .iter()
                .map(|c| c.name.as_str())
                .collect();
            panic!("{}: no column {name:?}; columns: {names:?}", self.name)
        })
    }

    /// The stored column type of `name`.
    pub fn column_type(&self, name: &str) -> ColumnType {
        self.schema
            .columns
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("{}: no column {name:?} in the schema", self.name))
            .column_type
    }

    /// The name of the designated timestamp column.
    pub fn designated(&self) -> Option<&str> {
        self.schema
            .designated_timestamp
            .map(|i| self.schema.columns[i].name.as_str())
    }

    /// Asserts the table has exactly these columns (any order) with these
    /// types, and that every column reads as its type's Arrow read type.
    pub fn assert_types(&self, expected: &[(&str, ColumnType)]) {
        let mut got: Vec<(String, ColumnType)> = self
            .schema
            .columns
            .iter()
            .map(|c| (c.name.clone(), c.column_type))
            .collect();
        got.sort_by(|a, b| a.0.cmp(&b.0));
        let mut want: Vec<(String, ColumnType)> =
            expected.iter().map(|(n, t)| (n.to_string(), *t)).collect();
        want.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(got, want, "{}: column names and types", self.name);
        for (name, t) in expected {
            assert_eq!(
                self.col(name).data_type(),
                &t.read_type(),
                "{}.{name}: Arrow read type",
                self.name
            );
        }
    }

    /// A BOOLEAN column.
    pub fn bools(&self, name: &str) -> Vec<Option<bool>> {
        self.col(name).as_boolean().iter().collect()
    }

    /// Any integer column (BYTE, SHORT, INT, LONG, CHAR, IPV4, GEOHASH),
    /// widened to `i64`.
    pub fn ints(&self, name: &str) -> Vec<Option<i64>> {
        let a = self.col(name);
        match a.data_type() {
            DataType::Int8 => a
                .as_primitive::<Int8Type>()
                .iter()
                .map(|v| v.map(i64::from))
                .collect(),
            DataType::Int16 => a
                .as_primitive::<Int16Type>()
                .iter()
                .map(|v| v.map(i64::from))
                .collect(),
            DataType::Int32 => a
                .as_primitive::<Int32Type>()
                .iter()
                .map(|v| v.map(i64::from))
                .collect(),
            DataType::Int64 => a.as_primitive::<Int64Type>().iter().collect(),
            DataType::UInt16 => a
                .as_primitive::<UInt16Type>()
                .iter()
                .map(|v| v.map(i64::from))
                .collect(),
            DataType::UInt32 => a
                .as_primitive::<UInt32Type>()
                .iter()
                .map(|v| v.map(i64::from))
                .collect(),
            other => panic!("{}.{name}: {other} is not an integer column", self.name),
        }
    }

    /// A DOUBLE or FLOAT column, widened to `f64`.
    pub fn floats(&self, name: &str) -> Vec<Option<f64>> {
        let a = self.col(name);
        match a.data_type() {
            DataType::Float64 => a.as_primitive::<Float64Type>().iter().collect(),
            DataType::Float32 => a
                .as_primitive::<Float32Type>()
                .iter()
                .map(|v| v.map(f64::from))
                .collect(),
            other => panic!("{}.{name}: {other} is not a float column", self.name),
        }
    }

    /// A VARCHAR column.
    pub fn strs(&self, name: &str) -> Vec<Option<String>> {
        let a = self.col(name);
        assert_eq!(a.data_type(), &DataType::Utf8, "{}.{name}", self.name);
        a.as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_string))
            .collect()
    }

    /// A SYMBOL column, resolved through its dictionary.
    pub fn syms(&self, name: &str) -> Vec<Option<String>> {
        let d = self.col(name).as_dictionary::<UInt32Type>();
        let values = d.values().as_string::<i32>();
        d.keys()
            .iter()
            .map(|k| k.map(|k| values.value(k as usize).to_string()))
            .collect()
    }

    /// A TIMESTAMP / TIMESTAMP_NS / DATE column's raw values, with its unit
    /// checked.
    pub fn times(&self, name: &str, unit: TimeUnit) -> Vec<Option<i64>> {
        let a = self.col(name);
        match a.data_type() {
            DataType::Timestamp(u, tz) => {
                assert_eq!(*u, unit, "{}.{name}: unit", self.name);
                assert_eq!(
                    tz.as_deref(),
                    Some("UTC"),
                    "{}.{name}: time zone",
                    self.name
                );
            }
            other => panic!("{}.{name}: {other} is not a timestamp column", self.name),
        }
        match unit {
            TimeUnit::Microsecond => a
                .as_primitive::<TimestampMicrosecondType>()
                .iter()
                .collect(),
            TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().iter().collect(),
            TimeUnit::Millisecond => a
                .as_primitive::<TimestampMillisecondType>()
                .iter()
                .collect(),
            TimeUnit::Second => unreachable!("no second timestamps"),
        }
    }

    /// A BINARY, UUID or LONG256 column's bytes.
    pub fn bytes(&self, name: &str) -> Vec<Option<Vec<u8>>> {
        let a = self.col(name);
        match a.data_type() {
            DataType::Binary => a
                .as_binary::<i32>()
                .iter()
                .map(|v| v.map(<[u8]>::to_vec))
                .collect(),
            DataType::FixedSizeBinary(_) => a
                .as_fixed_size_binary()
                .iter()
                .map(|v| v.map(<[u8]>::to_vec))
                .collect(),
            other => panic!("{}.{name}: {other} is not a binary column", self.name),
        }
    }

    /// A DECIMAL column's unscaled values (any width) and its scale.
    pub fn decimals(&self, name: &str) -> (Vec<Option<i256>>, i8) {
        let a = self.col(name);
        match a.data_type() {
            DataType::Decimal64(_, s) => (
                a.as_primitive::<Decimal64Type>()
                    .iter()
                    .map(|v| v.map(|v| i256::from_i128(i128::from(v))))
                    .collect(),
                *s,
            ),
            DataType::Decimal128(_, s) => (
                a.as_primitive::<Decimal128Type>()
                    .iter()
                    .map(|v| v.map(i256::from_i128))
                    .collect(),
                *s,
            ),
            DataType::Decimal256(_, s) => (a.as_primitive::<Decimal256Type>().iter().collect(), *s),
            other => panic!("{}.{name}: {other} is not a decimal column", self.name),
        }
    }

    /// A rank-1 DOUBLE array column.
    pub fn arrays1(&self, name: &str) -> Vec<Option<Vec<f64>>> {
        let list = self.col(name).as_list::<i32>();
        (0..list.len())
            .map(|i| {
                list.is_valid(i).then(|| {
                    let v = list.value(i);
                    let f = v.as_primitive::<Float64Type>();
                    assert_eq!(
                        f.null_count(),
                        0,
                        "{}.{name}: NULL array element",
                        self.name
                    );
                    f.values().to_vec()
                })
            })
            .collect()
    }

    /// A rank-2 DOUBLE array column.
    pub fn arrays2(&self, name: &str) -> Vec<Option<Vec<Vec<f64>>>> {
        let list = self.col(name).as_list::<i32>();
        (0..list.len())
            .map(|i| {
                list.is_valid(i).then(|| {
                    let rows = list.value(i);
                    let rows = rows.as_list::<i32>();
                    (0..rows.len())
                        .map(|j| {
                            assert!(rows.is_valid(j), "{}.{name}: NULL inner array", self.name);
                            rows.value(j)
                                .as_primitive::<Float64Type>()
                                .values()
                                .to_vec()
                        })
                        .collect()
                })
            })
            .collect()
    }
}

/// Float vectors equal bit for bit (so NaN equals NaN, and -0.0 differs
/// from 0.0).
pub fn same_floats(a: &[Option<f64>], b: &[Option<f64>]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Some(x), Some(y)) => x.to_bits() == y.to_bits(),
            (None, None) => true,
            _ => false,
        })
}

/// Asserts two float columns are equal bit for bit.
pub fn assert_floats(what: &str, got: &[Option<f64>], want: &[Option<f64>]) {
    assert!(same_floats(got, want), "{what}: got {got:?}, want {want:?}");
}

/// Asserts two rank-1 array columns are equal bit for bit.
pub fn assert_arrays1(what: &str, got: &[Option<Vec<f64>>], want: &[Option<Vec<f64>>]) {
    let eq = got.len() == want.len()
        && got.iter().zip(want).all(|(g, w)| match (g, w) {
            (Some(g), Some(w)) => {
                g.len() == w.len() && g.iter().zip(w).all(|(x, y)| x.to_bits() == y.to_bits())
            }
            (None, None) => true,
            _ => false,
        });
    assert!(eq, "{what}: got {got:?}, want {want:?}");
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Microseconds since the epoch of a UTC civil time.
pub fn utc_micros(y: i64, mo: u32, d: u32, h: i64, mi: i64, s: i64, us: i64) -> i64 {
    ((days_from_civil(y, mo, d) * 24 + h) * 60 + mi) * 60 * 1_000_000 + s * 1_000_000 + us
}

/// The current time in microseconds since the epoch.
pub fn now_micros() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

/// The bits of a base-32 geohash string (5 bits per character).
pub fn geohash_bits(hash: &str) -> i64 {
    const ALPHABET: &str = "0123456789bcdefghjkmnpqrstuvwxyz";
    hash.chars().fold(0i64, |acc, c| {
        let i = ALPHABET
            .find(c)
            .unwrap_or_else(|| panic!("{c:?} is not a geohash character"));
        (acc << 5) | i as i64
    })
}

/// Bytes from hex text (non-hex characters such as `-` are skipped).
pub fn hex_bytes(text: &str) -> Vec<u8> {
    let digits: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

/// A UUID's 16 bytes in RFC 4122 order, from its canonical text.
pub fn uuid_bytes(text: &str) -> Vec<u8> {
    let b = hex_bytes(text);
    assert_eq!(b.len(), 16, "{text} is not a UUID");
    b
}

/// A LONG256 as stored (32 bytes, little-endian) from big-endian hex text
/// of up to 64 digits.
pub fn long256_le(hex_be: &str) -> Vec<u8> {
    let digits: String = hex_be.chars().filter(char::is_ascii_hexdigit).collect();
    let padded = format!("{digits:0>64}");
    let mut b = hex_bytes(&padded);
    b.reverse();
    b
}

/// A dotted IPv4 address as its `u32` value.
pub fn ipv4(text: &str) -> i64 {
    i64::from(u32::from(
        text.parse::<std::net::Ipv4Addr>().expect("IPv4 address"),
    ))
}

/// `Some(s.to_string())` for each entry; `None` stays `None`.
pub fn owned(v: &[Option<&str>]) -> Vec<Option<String>> {
    v.iter().map(|s| s.map(str::to_string)).collect()
}

/// An unscaled decimal from its decimal text.
pub fn dec(text: &str) -> i256 {
    i256::from_string(text).unwrap_or_else(|| panic!("{text} is not an integer"))
}

/// Collects failed comparisons so one run reports every mismatch, then
/// panics in [`Checks::finish`] if there was any.
#[derive(Default)]
pub struct Checks {
    failures: Vec<String>,
}

impl Checks {
    /// Records a mismatch unless `got == want`.
    pub fn eq<V: PartialEq + std::fmt::Debug>(
        &mut self,
        what: impl std::fmt::Display,
        got: V,
        want: V,
    ) {
        if got != want {
            self.failures.push(format!(
                "{what}:\n    stored:   {got:?}\n    expected: {want:?}"
            ));
        }
    }

    /// Records a mismatch unless the float columns are equal bit for bit.
    pub fn floats(
        &mut self,
        what: impl std::fmt::Display,
        got: &[Option<f64>],
        want: &[Option<f64>],
    ) {
        if !same_floats(got, want) {
            self.failures.push(format!(
                "{what}:\n    stored:   {got:?}\n    expected: {want:?}"
            ));
        }
    }

    /// Records `message` unless `ok`.
    pub fn check(&mut self, ok: bool, message: impl std::fmt::Display) {
        if !ok {
            self.failures.push(message.to_string());
        }
    }

    /// Panics listing every mismatch, if any.
    pub fn finish(self, context: &str) {
        assert!(
            self.failures.is_empty(),
            "{context}: {} mismatch(es):\n{}",
            self.failures.len(),
            self.failures.join("\n")
        );
    }
}
