//! The catalog file (`catalog`): every table's schema, a checkpoint of the
//! DDL in the WAL, rewritten (temp file, fsync, rename, directory fsync)
//! before WAL files holding DDL are deleted.
//!
//! ```text
//! magic "QCAT" | u32 crc32c of the rest | u8 version (2)
//! u32 next table id
//! u64 lsn floor: the first lsn of the oldest WAL file kept when it was
//!     stored (the log continues from there even if no file is left)
//! u32 table count (at most MAX_TABLES), each: u32 table id | schema
//! ```
//!
//! (`schema` is the `TableSchema` encoding.)

use super::{Decoder, Encoder, Overflow, checksummed_file, open_checksummed_file};
use crate::error::Result;
use crate::limits::MAX_TABLES;
use crate::schema::TableSchema;

const MAGIC: [u8; 4] = *b"QCAT";
const VERSION: u8 = 2;

/// The catalog's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CatalogFile {
    /// The id the next table gets.
    pub next_id: u32,
    /// The lsn the log continues from at least.
    pub lsn_floor: u64,
    /// Tables by id, ascending.
    pub tables: Vec<(u32, TableSchema)>,
}

impl CatalogFile {
    /// The file's bytes.
    pub fn encode(&self) -> Result<Vec<u8>, Overflow> {
        let mut e = Encoder::with_capacity(64 + self.tables.len() * 128);
        e.u32(self.next_id);
        e.u64(self.lsn_floor);
        e.bounded_u32("tables", self.tables.len(), MAX_TABLES);
        for (id, schema) in &self.tables {
            e.u32(*id);
            schema.encode(&mut e);
        }
        Ok(checksummed_file(MAGIC, VERSION, &e.finish()?))
    }

    /// Decodes a catalog read from `source`.
    pub fn decode(bytes: &[u8], source: &str) -> Result<CatalogFile> {
        let mut d: Decoder<'_> = open_checksummed_file(MAGIC, VERSION, bytes, source)?;
        let next_id = d.u32()?;
        let lsn_floor = d.u64()?;
        // A table takes at least 21 bytes.
        let n = d.count(MAX_TABLES, 21)?;
        let mut tables = Vec::with_capacity(n);
        for _ in 0..n {
            let id = d.u32()?;
            if id >= next_id || tables.last().is_some_and(|(prev, _)| *prev >= id) {
                return Err(d.corrupt("table ids out of order"));
            }
            tables.push((id, TableSchema::decode(&mut d)?));
        }
        d.finish()?;
        Ok(CatalogFile {
            next_id,
            lsn_floor,
            tables,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::{ColumnSchema, ColumnType, PartitionBy};
    use proptest::prelude::*;

    fn schema(name: String, columns: usize) -> TableSchema {
        TableSchema {
            name,
            columns: (0..columns)
                .map(|i| ColumnSchema::new(format!("c{i}"), ColumnType::DoubleArray(2)))
                .chain([ColumnSchema::new("timestamp", ColumnType::Timestamp)])
                .collect(),
            designated_timestamp: Some(columns),
            partition_by: PartitionBy::Day,
            version: 1,
            has_dropped_columns: false,
            ttl: None,
        }
    }

    proptest! {
        #[test]
        fn catalogs_round_trip_and_detect_damage(
            tables in prop::collection::vec(("[a-z]{1,8}", 0usize..5), 0..5),
            flip in any::<prop::sample::Index>(),
        ) {
            let catalog = CatalogFile {
                next_id: tables.len() as u32 + 3,
                lsn_floor: 99,
                tables: tables
                    .into_iter()
                    .enumerate()
                    .map(|(i, (n, c))| (i as u32 + 1, schema(n, c)))
                    .collect(),
            };
            let bytes = catalog.encode().unwrap();
            prop_assert_eq!(CatalogFile::decode(&bytes, "c").unwrap(), catalog);
            let mut damaged = bytes.clone();
            let i = flip.index(damaged.len());
            damaged[i] ^= 0x10;
            prop_assert!(CatalogFile::decode(&damaged, "c").is_err());
            for cut in 0..bytes.len() {
                prop_assert!(CatalogFile::decode(&bytes[..cut], "c").is_err());
            }
        }
    }
}
