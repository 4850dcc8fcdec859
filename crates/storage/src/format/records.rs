//! WAL record bodies, one codec each.
//!
//! Transaction (kind 1):
//!
//! ```text
//! u8   version (1)
//! u32  part count (at most MAX_TRANSACTION_PARTS), then per part:
//!   u32  table id
//!   u64  first row id
//!   u64  row count (at least 1, at most MAX_PART_ROWS)
//!   u32  symbol section count, each:
//!          str column | u32 first key | u32 entry count | entries (str each)
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
//! Table created (kind 2) and columns added (kind 3):
//!
//! ```text
//! u8 version (1) | u32 table id | schema (`TableSchema` encoding)
//! ```

use std::sync::Arc;

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

/// Dictionary entries a transaction logs for one SYMBOL column: keys
/// `first_key ..` hold `entries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolSection<S> {
    /// Column name.
    pub column: S,
    /// Key of the first entry.
    pub first_key: u32,
    /// The entries.
    pub entries: Vec<S>,
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
pub struct TxnPart<R, S> {
    /// Table id.
    pub table_id: u32,
    /// Row id of the first row.
    pub first_row_id: u64,
    /// Rows.
    pub row_count: u64,
    /// Dictionary entries logged with it.
    pub symbols: Vec<SymbolSection<S>>,
    /// The rows.
    pub rows: PartRows<R>,
}

/// A transaction record body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionRecord<R, S> {
    /// Parts, in commit order.
    pub parts: Vec<TxnPart<R, S>>,
}

/// A transaction ready to write: rows as their encoding, strings shared.
pub type TransactionToWrite = TransactionRecord<EncodedRows, Arc<str>>;
/// A transaction read back: everything borrowed from the body.
pub type TransactionRead<'a> = TransactionRecord<&'a [u8], &'a str>;

impl TransactionToWrite {
    /// The body as chunks (rows are referenced, not copied), or the first
    /// count that does not fit the format.
    pub fn encode(self) -> Result<Vec<Chunk>, Overflow> {
        let mut out = Vec::with_capacity(self.parts.len() * 8 + 1);
        let mut e = Encoder::with_capacity(64);
        e.u8(VERSION);
        e.bounded_u32("transaction parts", self.parts.len(), MAX_TRANSACTION_PARTS);
        for part in self.parts {
            e.u32(part.table_id);
            e.u64(part.first_row_id);
            put_row_count(&mut e, part.row_count);
            e.count_u32("symbol sections", part.symbols.len());
            for s in &part.symbols {
                e.str("symbol column name", &s.column);
                e.u32(s.first_key);
                e.bounded_u32("symbol entries", s.entries.len(), MAX_SYMBOLS_PER_COLUMN);
                for entry in &s.entries {
                    e.str("symbol entry", entry);
                }
            }
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
        check_version(&mut d)?;
        // A part takes at least 33 bytes.
        let n = d.count(MAX_TRANSACTION_PARTS, 33)?;
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
            // A section takes at least 12 bytes.
            let sections = d.count(usize::MAX, 12)?;
            let mut symbols = Vec::with_capacity(sections);
            for _ in 0..sections {
                let column = d.str()?;
                let first_key = d.u32()?;
                let entries = d.count(MAX_SYMBOLS_PER_COLUMN, 4)?;
                if (first_key as usize).saturating_add(entries) > MAX_SYMBOLS_PER_COLUMN {
                    return Err(d.corrupt("symbol keys past the limit"));
                }
                let mut list = Vec::with_capacity(entries);
                for _ in 0..entries {
                    list.push(d.str()?);
                }
                symbols.push(SymbolSection {
                    column,
                    first_key,
                    entries: list,
                });
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
                symbols,
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
                (any::<u32>(), 0u64..1 << 40, 1i64..50, any::<bool>(), any::<u64>(),
                 prop::collection::vec(("[a-z]{1,5}", 0u32..1000, strings()), 0..3)),
                0..6),
        ) {
            let mut batches = Vec::new();
            let record = TransactionRecord {
                parts: parts.iter().map(|(table_id, first, n, inline, part_id, sections)| {
                    let (encoded, batch) = rows(*n);
                    batches.push((*inline).then_some(batch));
                    TxnPart {
                        table_id: *table_id,
                        first_row_id: *first,
                        row_count: *n as u64,
                        symbols: sections.iter().map(|(c, k, e)| SymbolSection {
                            column: Arc::from(c.as_str()),
                            first_key: *k,
                            entries: e.iter().map(|s| Arc::from(s.as_str())).collect(),
                        }).collect(),
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
                prop_assert_eq!(a.symbols.len(), b.symbols.len());
                for (x, y) in a.symbols.iter().zip(&b.symbols) {
                    prop_assert_eq!(x.column, &*y.column);
                    prop_assert_eq!(x.first_key, y.first_key);
                    prop_assert_eq!(x.entries.clone(), y.entries.iter().map(|s| &**s).collect::<Vec<_>>());
                }
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
            symbols: vec![],
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
        let mut body = vec![VERSION];
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(TransactionRead::decode(&body, "t", 0).is_err());
        let mut body = vec![VERSION];
        body.extend_from_slice(&1u32.to_le_bytes());
        body.extend_from_slice(&[0; 20]);
        body.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(TransactionRead::decode(&body, "t", 0).is_err());
    }
}
