//! WAL record bodies, one codec each.
//!
//! Transaction (kind 1):
//!
//! ```text
//! u8   version (2)
//! u32  part count (at most MAX_TRANSACTION_PARTS), then per part:
//!   u32  table id
//!   u64  first row id
//!   u64  row count (at least 1, at most MAX_PART_ROWS)
//!   u8   0: rows inline, followed by u64 byte length | rows (`rows` encoding)
//!        1: rows staged, followed by u64 part id (a Part record before it)
//! ```
//!
//! Part (kind 4), rows written ahead of the transaction that commits them:
//!
//! ```text
//! u8 version (1) | u64 part id | u32 table id | u64 row count | rows (the rest)
//! ```
//!
//! Table created (kind 2) and schema altered (kind 3: columns added or the
//! table renamed):
//!
//! ```text
//! u8 version (1) | u32 table id | schema (`TableSchema` encoding)
//! ```
//!
//! Table dropped (kind 7):
//!
//! ```text
//! u8 version (1) | u32 table id
//! ```
//!
//! Symbols (kind 6), new entries of one SYMBOL column's dictionary, written
//! before the first transaction whose rows use them (in the same commit
//! group), in records of at most [`SYMBOLS_PER_RECORD_BYTES`] each so no
//! backlog of entries can make a transaction's record too large:
//!
//! ```text
//! u8 version (1) | u32 table id | str column | u32 first key
//! | u32 entry count (at most MAX_SYMBOLS_PER_COLUMN) | entries (str each)
//! ```

use super::{Decoder, Encoder, Overflow};
use crate::error::Result;
use crate::limits::{MAX_PART_ROWS, MAX_SYMBOLS_PER_COLUMN, MAX_TRANSACTION_PARTS};
use crate::rows::EncodedRows;
use crate::schema::TableSchema;
use crate::wal::Chunk;

const VERSION: u8 = 1;

fn check_version(d: &mut Decoder<'_>) -> Result<()> {
    match d.u8()? {
        VERSION => Ok(()),
        _ => Err(d.corrupt("unknown record body version")),
    }
}

/// A part's row count, at most [`MAX_PART_ROWS`].
fn put_row_count(e: &mut Encoder, rows: u64) {
    if rows > MAX_PART_ROWS as u64 {
        e.note(Overflow {
            field: "rows in a part",
            value: rows,
            max: MAX_PART_ROWS as u64,
        });
    }
    e.u64(rows);
}

/// About how many bytes of entries one Symbols record holds.
pub const SYMBOLS_PER_RECORD_BYTES: usize = 16 << 20;

/// New dictionary entries of one SYMBOL column: keys `first_key ..` hold
/// `entries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolsRecord<S> {
    /// Table id.
    pub table_id: u32,
    /// Column name.
    pub column: S,
    /// Key of the first entry.
    pub first_key: u32,
    /// The entries.
    pub entries: Vec<S>,
}

impl<S: AsRef<str>> SymbolsRecord<S> {
    /// The body.
    pub fn encode(&self) -> Result<Vec<u8>, Overflow> {
        let bytes: usize = self.entries.iter().map(|e| e.as_ref().len() + 4).sum();
        let mut e = Encoder::with_capacity(32 + bytes);
        e.u8(1);
        e.u32(self.table_id);
        e.str("symbol column name", self.column.as_ref());
        e.u32(self.first_key);
        e.bounded_u32("symbol entries", self.entries.len(), MAX_SYMBOLS_PER_COLUMN);
        for entry in &self.entries {
            e.str("symbol entry", entry.as_ref());
        }
        e.finish()
    }
}

impl<'a> SymbolsRecord<&'a str> {
    /// Decodes a body read from `source`, starting at `base` in the file.
    pub fn decode(body: &'a [u8], source: &'a str, base: u64) -> Result<Self> {
        let mut d = Decoder::at(body, source, base);
        if d.u8()? != 1 {
            return Err(d.corrupt("unknown record body version"));
        }
        let table_id = d.u32()?;
        let column = d.str()?;
        let first_key = d.u32()?;
        let n = d.count(MAX_SYMBOLS_PER_COLUMN, 4)?;
        if (first_key as usize).saturating_add(n) > MAX_SYMBOLS_PER_COLUMN {
            return Err(d.corrupt("symbol keys past the limit"));
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            entries.push(d.str()?);
        }
        d.finish()?;
        Ok(SymbolsRecord {
            table_id,
            column,
            first_key,
            entries,
        })
    }
}

/// Where a part's rows are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PartRows<R> {
    /// In this record.
    Inline(R),
    /// In the Part record with this id, earlier in the log.
    Staged(u64),
}

/// One table's rows in a transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnPart<R> {
    /// Table id.
    pub table_id: u32,
    /// Row id of the first row.
    pub first_row_id: u64,
    /// Rows.
    pub row_count: u64,
    /// The rows.
    pub rows: PartRows<R>,
}

/// A transaction record body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord<R> {
    /// Parts, in commit order.
    pub parts: Vec<TxnPart<R>>,
}

/// A transaction ready to write: rows as their encoding.
pub type TransactionToWrite = TransactionRecord<EncodedRows>;
/// A transaction read back: rows borrowed from the body.
pub type TransactionRead<'a> = TransactionRecord<&'a [u8]>;

/// Transaction record version.
const TRANSACTION_VERSION: u8 = 2;

impl TransactionToWrite {
    /// The body as chunks (rows are referenced, not copied), or the first
    /// count that does not fit the format.
    pub fn encode(self) -> Result<Vec<Chunk>, Overflow> {
        let mut out = Vec::with_capacity(self.parts.len() * 8 + 1);
        let mut e = Encoder::with_capacity(64);
        e.u8(TRANSACTION_VERSION);
        e.bounded_u32("transaction parts", self.parts.len(), MAX_TRANSACTION_PARTS);
        for part in self.parts {
            e.u32(part.table_id);
            e.u64(part.first_row_id);
            put_row_count(&mut e, part.row_count);
            match part.rows {
                PartRows::Inline(rows) => {
                    e.u8(0);
                    e.u64(rows.len() as u64);
                    out.push(Chunk::Owned(std::mem::take(&mut e).finish()?));
                    out.extend(rows.into_chunks());
                }
                PartRows::Staged(id) => {
                    e.u8(1);
                    e.u64(id);
                }
            }
        }
        out.push(Chunk::Owned(e.finish()?));
        out.retain(|c| !c.is_empty());
        Ok(out)
    }
}

impl<'a> TransactionRead<'a> {
    /// Decodes a body read from `source`, starting at `base` in the file.
    pub fn decode(body: &'a [u8], source: &'a str, base: u64) -> Result<TransactionRead<'a>> {
        let mut d = Decoder::at(body, source, base);
        if d.u8()? != TRANSACTION_VERSION {
            return Err(d.corrupt("unknown record body version"));
        }
        // A part takes at least 29 bytes.
        let n = d.count(MAX_TRANSACTION_PARTS, 29)?;
        let mut parts = Vec::with_capacity(n);
        for _ in 0..n {
            let table_id = d.u32()?;
            let first_row_id = d.u64()?;
            let row_count = d.u64()?;
            if row_count == 0 || row_count > MAX_PART_ROWS as u64 {
                return Err(d.corrupt("row count of a part"));
            }
            if first_row_id.checked_add(row_count).is_none() {
                return Err(d.corrupt("row ids past the end of the range"));
            }
            let rows = match d.u8()? {
                0 => {
                    let len = usize::try_from(d.u64()?).map_err(|_| d.corrupt("rows length"))?;
                    PartRows::Inline(d.take(len)?)
                }
                1 => PartRows::Staged(d.u64()?),
                _ => return Err(d.corrupt("unknown part mode")),
            };
            parts.push(TxnPart {
                table_id,
                first_row_id,
                row_count,
                rows,
            });
        }
        d.finish()?;
        Ok(TransactionRecord { parts })
    }
}

/// The head of a Part record body (the rows follow it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartRecord {
    /// Part id (unique over the log's lifetime).
    pub part_id: u64,
    /// Table id.
    pub table_id: u32,
    /// Rows.
    pub row_count: u64,
}

impl PartRecord {
    /// Bytes before the rows.
    pub const HEAD_LEN: usize = 21;

    /// The body: this head, then `rows` (referenced, not copied).
    pub fn encode(&self, rows: EncodedRows) -> Result<Vec<Chunk>, Overflow> {
        let mut e = Encoder::with_capacity(Self::HEAD_LEN);
        e.u8(VERSION);
        e.u64(self.part_id);
        e.u32(self.table_id);
        put_row_count(&mut e, self.row_count);
        let mut out = vec![Chunk::Owned(e.finish()?)];
        out.extend(rows.into_chunks());
        Ok(out)
    }

    /// The head and the rows of a body.
    pub fn decode<'a>(
        body: &'a [u8],
        source: &'a str,
        base: u64,
    ) -> Result<(PartRecord, &'a [u8])> {
        let mut d = Decoder::at(body, source, base);
        check_version(&mut d)?;
        let part_id = d.u64()?;
        let table_id = d.u32()?;
        let row_count = d.u64()?;
        if row_count == 0 || row_count > MAX_PART_ROWS as u64 {
            return Err(d.corrupt("row count of a part"));
        }
        Ok((
            PartRecord {
                part_id,
                table_id,
                row_count,
            },
            d.rest(),
        ))
    }
}

/// A table created, or columns added: the table's whole new schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaRecord {
    /// Table id.
    pub table_id: u32,
    /// The schema after the change.
    pub schema: TableSchema,
}

impl SchemaRecord {
    /// The body.
    pub fn encode(&self) -> Result<Vec<u8>, Overflow> {
        let mut e = Encoder::with_capacity(256);
        e.u8(VERSION);
        e.u32(self.table_id);
        self.schema.encode(&mut e);
        e.finish()
    }

    /// Decodes a body.
    pub fn decode(body: &[u8], source: &str, base: u64) -> Result<SchemaRecord> {
        let mut d = Decoder::at(body, source, base);
        check_version(&mut d)?;
        let table_id = d.u32()?;
        let schema = TableSchema::decode(&mut d)?;
        d.finish()?;
        Ok(SchemaRecord { table_id, schema })
    }
}

/// A table dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DropTableRecord {
    /// Table id.
    pub table_id: u32,
}

impl DropTableRecord {
    /// The body.
    pub fn encode(&self) -> Result<Vec<u8>, Overflow> {
        let mut e = Encoder::with_capacity(8);
        e.u8(VERSION);
        e.u32(self.table_id);
        e.finish()
    }

    /// Decodes a body.
    pub fn decode(body: &[u8], source: &str, base: u64) -> Result<DropTableRecord> {
        let mut d = Decoder::at(body, source, base);
        check_version(&mut d)?;
        let table_id = d.u32()?;
        d.finish()?;
        Ok(DropTableRecord { table_id })
    }
}

/// Joins chunks (tests, and decoding what was just encoded).
pub fn join(chunks: &[Chunk]) -> Vec<u8> {
    let mut out = Vec::with_capacity(chunks.iter().map(Chunk::len).sum());
    for c in chunks {
        out.extend_from_slice(c.as_slice());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ColumnSchema, ColumnType, PartitionBy};
    use arrow::array::{Int64Array, RecordBatch};
    use proptest::prelude::*;
    use std::sync::Arc;

    fn rows(n: i64) -> (EncodedRows, RecordBatch) {
        let batch =
            RecordBatch::try_from_iter([("v", Arc::new(Int64Array::from_iter_values(0..n)) as _)])
                .unwrap();
        (EncodedRows::encode(&batch).unwrap(), batch)
    }

    fn strings() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec("[a-zé]{0,6}", 0..4)
    }

    proptest! {
        #[test]
        fn transactions_round_trip(
            parts in prop::collection::vec(
                (any::<u32>(), 0u64..1 << 40, 1i64..50, any::<bool>(), any::<u64>()),
                0..6),
        ) {
            let mut batches = Vec::new();
            let record = TransactionRecord {
                parts: parts.iter().map(|(table_id, first, n, inline, part_id)| {
                    let (encoded, batch) = rows(*n);
                    batches.push((*inline).then_some(batch));
                    TxnPart {
                        table_id: *table_id,
                        first_row_id: *first,
                        row_count: *n as u64,
                        rows: if *inline { PartRows::Inline(encoded) } else { PartRows::Staged(*part_id) },
                    }
                }).collect(),
            };
            let body = join(&record.clone().encode().unwrap());
            let back = TransactionRead::decode(&body, "t", 0).unwrap();
            prop_assert_eq!(back.parts.len(), record.parts.len());
            for ((a, b), batch) in back.parts.iter().zip(&record.parts).zip(&batches) {
                prop_assert_eq!(a.table_id, b.table_id);
                prop_assert_eq!(a.first_row_id, b.first_row_id);
                prop_assert_eq!(a.row_count, b.row_count);
                match (&a.rows, &b.rows, batch) {
                    (PartRows::Inline(bytes), PartRows::Inline(_), Some(batch)) => {
                        prop_assert_eq!(&crate::rows::decode_rows(bytes).unwrap(), batch);
                    }
                    (PartRows::Staged(x), PartRows::Staged(y), None) => prop_assert_eq!(x, y),
                    _ => prop_assert!(false, "rows changed mode"),
                }
            }
            // Every truncation is an error, never a panic.
            for cut in 0..body.len() {
                prop_assert!(TransactionRead::decode(&body[..cut], "t", 0).is_err());
            }
        }

        #[test]
        fn symbols_round_trip(table_id: u32, column in "[a-z]{1,5}", first_key in 0u32..1000, entries in strings()) {
            let record = SymbolsRecord { table_id, column: column.as_str(), first_key, entries: entries.iter().map(String::as_str).collect() };
            let body = record.encode().unwrap();
            prop_assert_eq!(SymbolsRecord::decode(&body, "t", 0).unwrap(), record);
            for cut in 0..body.len() {
                prop_assert!(SymbolsRecord::decode(&body[..cut], "t", 0).is_err());
            }
        }

        #[test]
        fn parts_and_schemas_round_trip(part_id: u64, table_id: u32, n in 1i64..100, version: u32) {
            let (encoded, batch) = rows(n);
            let head = PartRecord { part_id, table_id, row_count: n as u64 };
            let body = join(&head.encode(encoded).unwrap());
            let (back, bytes) = PartRecord::decode(&body, "t", 0).unwrap();
            prop_assert_eq!(back, head);
            prop_assert_eq!(crate::rows::decode_rows(bytes).unwrap(), batch);

            let schema = SchemaRecord {
                table_id,
                schema: TableSchema {
                    name: "t".into(),
                    columns: vec![
                        ColumnSchema::new("a", ColumnType::Geohash(20)),
                        ColumnSchema::new("ts", ColumnType::TimestampNanos),
                    ],
                    designated_timestamp: Some(1),
                    partition_by: PartitionBy::Day,
                    version,
                    has_dropped_columns: false,
                    ttl: None,
                },
            };
            let body = schema.encode().unwrap();
            prop_assert_eq!(SchemaRecord::decode(&body, "t", 0).unwrap(), schema);
            for cut in 0..body.len() {
                prop_assert!(SchemaRecord::decode(&body[..cut], "t", 0).is_err());
            }
        }
    }

    #[test]
    fn more_parts_than_the_format_holds_is_refused_when_encoding() {
        let part = TxnPart {
            table_id: 1,
            first_row_id: 0,
            row_count: 1,
            rows: PartRows::Staged(1),
        };
        let record = TransactionRecord {
            parts: vec![part; MAX_TRANSACTION_PARTS + 1],
        };
        let e = record.encode().unwrap_err();
        assert_eq!(e.field, "transaction parts");
        assert_eq!(e.value, MAX_TRANSACTION_PARTS as u64 + 1);
    }

    #[test]
    fn a_huge_count_in_a_short_body_is_refused_before_allocating() {
        let mut body = vec![TRANSACTION_VERSION];
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(TransactionRead::decode(&body, "t", 0).is_err());
        let mut body = vec![1u8];
        body.extend_from_slice(&7u32.to_le_bytes());
        body.extend_from_slice(&1u32.to_le_bytes());
        body.push(b'c');
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(SymbolsRecord::decode(&body, "t", 0).is_err());
    }

    #[test]
    fn drop_table_record_round_trips_and_refuses_damage() {
        let r = DropTableRecord { table_id: 7 };
        let body = r.encode().unwrap();
        assert_eq!(DropTableRecord::decode(&body, "t", 0).unwrap(), r);
        for cut in 0..body.len() {
            assert!(DropTableRecord::decode(&body[..cut], "t", 0).is_err());
        }
        let mut longer = body.clone();
        longer.push(0);
        assert!(DropTableRecord::decode(&longer, "t", 0).is_err());
        let mut other_version = body;
        other_version[0] = 9;
        assert!(DropTableRecord::decode(&other_version, "t", 0).is_err());
    }
}
