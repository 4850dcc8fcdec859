//! Frames shared by the malformed-input and allocation tests: one ingress
//! message and one egress result batch that use every type code in both null
//! modes, Gorilla timestamps, arrays, decimals and non-ASCII text.

#![allow(dead_code)]

use std::borrow::Cow;

use quiver_qwp::ingress::Column;
use quiver_qwp::{
    BatchEncoding, ColumnBuilder, ColumnData, ColumnDef, IngressMessage, NullEncoding, ResultBatch,
    ServerMessage, StringList, SymbolDelta, TableBlock, TypeCode, Value, encode_ingress_message,
    encode_server_message,
};

/// A non-NULL sample value for row `r` of a column of type `t`.
pub fn sample(t: TypeCode, r: i64) -> Value<'static> {
    match t {
        TypeCode::Boolean => Value::Boolean(r % 3 == 0),
        TypeCode::Byte => Value::Byte(r as i8),
        TypeCode::Short => Value::Short(-(r as i16)),
        TypeCode::Int => Value::Int(r as i32 * 1000),
        TypeCode::Long => Value::Long(r << 40),
        TypeCode::Float => Value::Float(r as f32 / 3.0),
        TypeCode::Double => Value::Double(r as f64 * 1.5),
        TypeCode::Symbol => Value::Symbol((r % 3) as u32),
        TypeCode::Timestamp => Value::Timestamp(1_700_000_000_000_000 + r * 1_000),
        TypeCode::TimestampNanos => Value::TimestampNanos(1_700_000_000_000_000_000 + r * r),
        TypeCode::Date => Value::Date(1_700_000_000_000 + r),
        TypeCode::Uuid => Value::Uuid {
            lo: r as u64,
            hi: !(r as u64),
        },
        TypeCode::Long256 => Value::Long256([r as u64, 1, 2, 3]),
        TypeCode::Geohash => Value::Geohash {
            precision_bits: 25,
            value: r as u64 & 0x1FF_FFFF,
        },
        TypeCode::Varchar => {
            Value::Varchar(["", "a", "ünïcødé", "日本語テキスト"][(r % 4) as usize])
        }
        TypeCode::DoubleArray => Value::DoubleArray {
            shape: vec![2, (r % 3) as u32],
            values: vec![0.5; 2 * (r % 3) as usize],
        },
        TypeCode::LongArray => Value::LongArray {
            shape: vec![(r % 4) as u32],
            values: vec![r; (r % 4) as usize],
        },
        TypeCode::Decimal64 => Value::Decimal64 {
            scale: 4,
            unscaled: r * 12345,
        },
        TypeCode::Decimal128 => Value::Decimal128 {
            scale: 20,
            unscaled: -(r as i128) << 70,
        },
        TypeCode::Decimal256 => Value::Decimal256 {
            scale: 70,
            unscaled: [r as u8; 32],
        },
        TypeCode::Char => Value::Char(0x263A),
        TypeCode::Binary => Value::Binary(&[0xFF, 0x00, 0xC3]),
        TypeCode::Ipv4 => Value::Ipv4(0x7F00_0001 + r as u32),
    }
}

/// A column of `rows` rows of type `t`; every third row NULL when `nulls`.
pub fn column(t: TypeCode, rows: i64, nulls: bool, encoding: NullEncoding) -> ColumnData<'static> {
    let mut b = ColumnBuilder::new(t).geohash_precision(25);
    for r in 0..rows {
        if nulls && r % 3 == 1 {
            b.push(None).unwrap();
        } else {
            b.push(Some(&sample(t, r))).unwrap();
        }
    }
    b.finish(encoding)
}

/// One table block with every type code, in bitmap and in sentinel mode,
/// plus a designated timestamp.
pub fn rich_table(name: &'static str, rows: i64) -> TableBlock<'static> {
    let mut columns = Vec::new();
    for t in TypeCode::ALL {
        columns.push(Column {
            name: Cow::Owned(format!("{}_b", t.name().to_lowercase())),
            data: column(t, rows, true, NullEncoding::Bitmap),
        });
        columns.push(Column {
            name: Cow::Owned(format!("{}_s", t.name().to_lowercase())),
            data: column(t, rows, true, NullEncoding::Sentinel),
        });
    }
    columns.push(Column {
        name: Cow::Borrowed(""),
        data: column(TypeCode::Timestamp, rows, false, NullEncoding::Bitmap),
    });
    TableBlock {
        name: Cow::Borrowed(name),
        row_count: rows as u32,
        columns,
    }
}

/// An ingress frame: delta dictionary, Gorilla flag, two rich tables.
pub fn rich_ingress_frame(rows: i64) -> Vec<u8> {
    let message = IngressMessage {
        defer_commit: true,
        gorilla: true,
        symbols: Some(SymbolDelta {
            start: 0,
            entries: StringList::from_strs(["ETH-USD", "BTC-USD", "ünï"]),
        }),
        tables: vec![
            rich_table("trades", rows),
            rich_table("quotes_ü", rows / 2 + 1),
        ],
    };
    let mut frame = Vec::new();
    encode_ingress_message(&message, &mut frame).unwrap();
    frame
}

/// An egress RESULT_BATCH (batch 0) with every type code the egress client
/// accepts NULLs in as bitmaps and the rest dense.
pub fn rich_result_batch(rows: i64, encoding: BatchEncoding) -> Vec<u8> {
    let mut schema = Vec::new();
    let mut columns = Vec::new();
    for t in TypeCode::ALL {
        schema.push(ColumnDef {
            name: Cow::Owned(t.name().to_lowercase()),
            type_code: t,
        });
        columns.push(column(t, rows, !t.is_never_null(), NullEncoding::Bitmap));
    }
    let message = ServerMessage::ResultBatch(ResultBatch {
        request_id: 42,
        batch_seq: 0,
        symbols: Some(SymbolDelta {
            start: 0,
            entries: StringList::from_strs(["a", "b", "c"]),
        }),
        table_name: Cow::Borrowed(""),
        row_count: rows as u32,
        schema: Some(schema),
        columns,
    });
    let mut frame = Vec::new();
    encode_server_message(&message, &encoding, &mut frame).unwrap();
    frame
}

/// `frame` cut to `len` bytes with the header's payload_length patched to
/// match, so the decoder gets past the header and into the body.
pub fn truncated_with_patched_length(frame: &[u8], len: usize) -> Vec<u8> {
    let mut cut = frame[..len].to_vec();
    if len >= 12 {
        let payload = (len - 12) as u32;
        cut[8..12].copy_from_slice(&payload.to_le_bytes());
    }
    cut
}
