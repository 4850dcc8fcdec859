//! One result value as text, the way QuestDB's `/exec` (JSON) and `/exp`
//! (CSV) print it: timestamps in ISO 8601 UTC (`.000000Z` for TIMESTAMP,
//! nine digits for TIMESTAMP_NS, `.000Z` for DATE), UUIDs in their text
//! form, IPv4 dotted, LONG256 as `0x` hex, GEOHASH in base 32 (binary
//! digits when its bits are not a multiple of 5), BINARY as `0x` hex,
//! DECIMAL as its exact digits, arrays nested, NULL (and a float's NaN) as
//! `null` in JSON and an empty field in CSV.
//!
//! Columns arrive as [`WireType::prepare`] leaves them, so each QWP type
//! has one Arrow layout here.

use std::fmt::Write;

use arrow::array::{Array, ArrayRef, AsArray, GenericListArray, OffsetSizeTrait};
use arrow::datatypes::{
    DataType, Decimal64Type, Decimal128Type, Decimal256Type, Float32Type, Float64Type, Int8Type,
    Int16Type, Int32Type, Int64Type, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, UInt16Type, UInt32Type,
};
use quiver_qwp::TypeCode;

use crate::egress::columns::WireType;

/// How text values are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syntax {
    /// JSON values (strings quoted and escaped, NULL as `null`).
    Json,
    /// CSV fields (quoted only when they must be, NULL empty).
    Csv,
}

/// A result column ready to print.
pub struct Column {
    wire: WireType,
    array: ArrayRef,
}

impl Column {
    /// `array` as `wire` says it goes out.
    pub fn new(array: &ArrayRef, wire: &WireType) -> Result<Self, String> {
        let mut array = wire.prepare(array)?;
        if wire.type_code == TypeCode::Symbol {
            array = arrow::compute::cast(&array, &DataType::Utf8).map_err(|e| e.to_string())?;
        }
        Ok(Column {
            wire: wire.clone(),
            array,
        })
    }

    /// Appends row `row`'s value to `out`.
    pub fn write(&self, out: &mut String, row: usize, syntax: Syntax) {
        if self.array.is_null(row) {
            match (syntax, self.wire.type_code) {
                // No NULL for these in QuestDB: they read as 0 / false.
                (_, TypeCode::Boolean) => out.push_str("false"),
                (_, TypeCode::Byte | TypeCode::Short) => out.push('0'),
                (Syntax::Json, TypeCode::Char) => out.push_str("\"\""),
                (Syntax::Json, _) => out.push_str("null"),
                (Syntax::Csv, _) => {}
            }
            return;
        }
        let a = &self.array;
        match self.wire.type_code {
            TypeCode::Boolean => out.push_str(if a.as_boolean().value(row) {
                "true"
            } else {
                "false"
            }),
            TypeCode::Byte => push(out, a.as_primitive::<Int8Type>().value(row)),
            TypeCode::Short => push(out, a.as_primitive::<Int16Type>().value(row)),
            TypeCode::Int => push(out, a.as_primitive::<Int32Type>().value(row)),
            TypeCode::Long => push(out, a.as_primitive::<Int64Type>().value(row)),
            TypeCode::Float => float(out, a.as_primitive::<Float32Type>().value(row), syntax),
            TypeCode::Double => float(out, a.as_primitive::<Float64Type>().value(row), syntax),
            TypeCode::Char => {
                let unit = a.as_primitive::<UInt16Type>().value(row);
                let c = char::decode_utf16([unit])
                    .next()
                    .and_then(Result::ok)
                    .unwrap_or(char::REPLACEMENT_CHARACTER);
                string(out, c.encode_utf8(&mut [0; 4]), syntax);
            }
            TypeCode::Symbol | TypeCode::Varchar => {
                string(out, a.as_string::<i32>().value(row), syntax)
            }
            TypeCode::Timestamp => quoted(out, syntax, |o| {
                let v = a.as_primitive::<TimestampMicrosecondType>().value(row);
                iso(o, v.div_euclid(1_000_000), v.rem_euclid(1_000_000), 6);
            }),
            TypeCode::TimestampNanos => quoted(out, syntax, |o| {
                let v = a.as_primitive::<TimestampNanosecondType>().value(row);
                iso(
                    o,
                    v.div_euclid(1_000_000_000),
                    v.rem_euclid(1_000_000_000),
                    9,
                );
            }),
            TypeCode::Date => quoted(out, syntax, |o| {
                let v = a.as_primitive::<TimestampMillisecondType>().value(row);
                iso(o, v.div_euclid(1000), v.rem_euclid(1000), 3);
            }),
            TypeCode::Uuid => quoted(out, syntax, |o| {
                for (i, b) in a.as_fixed_size_binary().value(row).iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        o.push('-');
                    }
                    let _ = write!(o, "{b:02x}");
                }
            }),
            TypeCode::Long256 => quoted(out, syntax, |o| {
                let bytes = a.as_fixed_size_binary().value(row);
                hex_number(o, bytes.iter().rev().copied());
            }),
            TypeCode::Binary => quoted(out, syntax, |o| {
                o.push_str("0x");
                for b in a.as_binary::<i32>().value(row) {
                    let _ = write!(o, "{b:02x}");
                }
            }),
            TypeCode::Ipv4 => quoted(out, syntax, |o| {
                let ip = std::net::Ipv4Addr::from(a.as_primitive::<UInt32Type>().value(row));
                let _ = write!(o, "{ip}");
            }),
            TypeCode::Geohash => quoted(out, syntax, |o| {
                geohash(o, a.as_primitive::<Int64Type>().value(row), self.wire.arg());
            }),
            TypeCode::Decimal64 => {
                let v = a.as_primitive::<Decimal64Type>();
                out.push_str(&v.value_as_string(row));
            }
            TypeCode::Decimal128 => {
                out.push_str(&a.as_primitive::<Decimal128Type>().value_as_string(row))
            }
            TypeCode::Decimal256 => {
                out.push_str(&a.as_primitive::<Decimal256Type>().value_as_string(row))
            }
            TypeCode::DoubleArray | TypeCode::LongArray => {
                let mut text = String::new();
                nested(&mut text, a.as_ref(), row);
                match syntax {
                    Syntax::Json => out.push_str(&text),
                    Syntax::Csv => csv_field(out, &text),
                }
            }
        }
    }
}

fn push(out: &mut String, v: impl std::fmt::Display) {
    let _ = write!(out, "{v}");
}

/// A float as the shortest text that reads back as the same value, with
/// a `.0` on whole numbers (`{:?}`, which prints an `f32` as an `f32`).
fn float<F: Into<f64> + std::fmt::Debug + Copy>(out: &mut String, v: F, syntax: Syntax) {
    let v64: f64 = v.into();
    if v64.is_finite() {
        let _ = write!(out, "{v:?}");
    } else if syntax == Syntax::Json {
        // JSON has no NaN or infinity; QuestDB prints null.
        out.push_str("null");
    } else if v64.is_nan() {
        // An empty field, as NULL.
    } else {
        out.push_str(if v64 > 0.0 { "Infinity" } else { "-Infinity" });
    }
}

/// Text that has no characters JSON or CSV must escape, quoted in JSON.
fn quoted(out: &mut String, syntax: Syntax, body: impl FnOnce(&mut String)) {
    if syntax == Syntax::Json {
        out.push('"');
        body(out);
        out.push('"');
    } else {
        body(out);
    }
}

fn string(out: &mut String, s: &str, syntax: Syntax) {
    match syntax {
        Syntax::Json => json_string(out, s),
        Syntax::Csv => csv_field(out, s),
    }
}

/// `s` as a JSON string literal.
pub fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// `s` as one CSV field (RFC 4180): quoted, with quotes doubled, when it
/// holds a comma, quote, CR or LF.
pub fn csv_field(out: &mut String, s: &str) {
    if s.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// Big-endian bytes as `0x` and hex digits without leading zeros.
fn hex_number(out: &mut String, bytes: impl Iterator<Item = u8>) {
    out.push_str("0x");
    let mut started = false;
    for b in bytes {
        if !started && b == 0 {
            continue;
        }
        if started {
            let _ = write!(out, "{b:02x}");
        } else {
            let _ = write!(out, "{b:x}");
            started = true;
        }
    }
    if !started {
        out.push('0');
    }
}

fn geohash(out: &mut String, value: i64, bits: u8) {
    if bits.is_multiple_of(5) {
        for i in (0..bits / 5).rev() {
            let digit = (value >> (u32::from(i) * 5)) & 31;
            out.push(char::from(
                quiver_sql::write::to_stored::GEOHASH_ALPHABET[digit as usize],
            ));
        }
    } else {
        for i in (0..bits).rev() {
            out.push(if (value >> i) & 1 == 1 { '1' } else { '0' });
        }
    }
}

/// Seconds since the epoch and a fraction with `digits` digits, as
/// `YYYY-MM-DDThh:mm:ss.fffZ`.
fn iso(out: &mut String, seconds: i64, fraction: i64, digits: usize) {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    let (y, m, d) = quiver_storage::calendar::civil_from_days(days);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{fraction:0digits$}Z",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    );
}

/// A (nested) list value as `[..]`, NULL elements as `null`.
fn nested(out: &mut String, array: &dyn Array, row: usize) {
    if array.is_null(row) {
        out.push_str("null");
        return;
    }
    match array.data_type() {
        DataType::List(_) => list(out, array.as_list::<i32>(), row),
        DataType::LargeList(_) => list(out, array.as_list::<i64>(), row),
        DataType::Float64 => float(
            out,
            array.as_primitive::<Float64Type>().value(row),
            Syntax::Json,
        ),
        DataType::Int64 => push(out, array.as_primitive::<Int64Type>().value(row)),
        _ => out.push_str("null"),
    }
}

fn list<O: OffsetSizeTrait>(out: &mut String, array: &GenericListArray<O>, row: usize) {
    let values = array.value(row);
    out.push('[');
    for i in 0..values.len() {
        if i > 0 {
            out.push(',');
        }
        nested(out, values.as_ref(), i);
    }
    out.push(']');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_hex() {
        let mut s = String::new();
        iso(&mut s, 0, 0, 6);
        assert_eq!(s, "1970-01-01T00:00:00.000000Z");
        s.clear();
        // 2024-02-29T12:34:56.789Z and a time before the epoch.
        iso(&mut s, 1_709_210_096, 789, 3);
        assert_eq!(s, "2024-02-29T12:34:56.789Z");
        s.clear();
        let v: i64 = -1;
        iso(&mut s, v.div_euclid(1_000_000), v.rem_euclid(1_000_000), 6);
        assert_eq!(s, "1969-12-31T23:59:59.999999Z");
        s.clear();
        hex_number(&mut s, [0u8, 0, 1, 0xff].into_iter());
        assert_eq!(s, "0x1ff");
        s.clear();
        hex_number(&mut s, [0u8; 4].into_iter());
        assert_eq!(s, "0x0");
        s.clear();
        geohash(&mut s, (26 << 5) | 24, 10);
        assert_eq!(s, "us");
        s.clear();
        geohash(&mut s, 0b101, 3);
        assert_eq!(s, "101");
        s.clear();
        csv_field(&mut s, "a,\"b\"");
        assert_eq!(s, "\"a,\"\"b\"\"\"");
        s.clear();
        json_string(&mut s, "q\"\n\u{1}");
        assert_eq!(s, "\"q\\\"\\n\\u0001\"");
    }
}
