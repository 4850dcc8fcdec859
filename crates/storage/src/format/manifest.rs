//! A table's manifest (`tables/<id>/manifest`): its segments, the row id
//! below which every row is in one, and the SYMBOL dictionaries as of the
//! last seal. Replaced by temp file + fsync + rename + directory fsync.
//!
//! ```text
//! magic "QMAN" | u32 crc32c of the rest | u8 version (3 once a segment
//!     lost rows to a drop, 2 until then so older binaries still open it)
//! u32 table id | u64 sealed row end
//! u32 segment count (at most MAX_SEGMENTS), each:
//!     str path | u64 first row id | u64 row count (the row ids it spans)
//!     | u64 live rows (at most the row count; version 3 only: version 2
//!       segments hold their whole span) | i64 min ts | i64 max ts
//! u32 symbol column count (at most MAX_COLUMNS), each:
//!     str column | u32 entry count (at most MAX_SYMBOLS_PER_COLUMN) | entries (str each)
//! ```
//!
//! A segment's path is relative to the table's `segments/` directory:
//! `YYYY-MM-DD/<first row id>-<rows>.arrow` for day-partitioned tables, the
//! bare file name otherwise; anything else (absolute, `..`, deeper) is
//! damage. Segments are in row-id order and contiguous from 0 up to the
//! sealed row end. DROP PARTITION keeps a segment's span when it removes
//! rows: a segment with 0 live rows has no file (its path names the one it
//! had), one with fewer than its span names a rewritten file.

use std::path::{Component, Path};

use super::{Encoder, Overflow, checksummed_file, open_checksummed_file_of};
use crate::error::Result;
use crate::limits::{MAX_SEGMENTS, MAX_SYMBOLS_PER_COLUMN};
use crate::schema::MAX_COLUMNS;
use crate::segment::Segment;

const MAGIC: [u8; 4] = *b"QMAN";
const VERSION: u8 = 3;
/// File name of a table's manifest.
pub const MANIFEST_FILE: &str = "manifest";

/// A table's manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    /// Table id.
    pub table_id: u32,
    /// Every row below this id is in a segment.
    pub sealed_row_end: u64,
    /// Segments in row-id order.
    pub segments: Vec<Segment>,
    /// SYMBOL dictionaries (column name → entries) as of the last seal.
    pub symbols: Vec<(String, Vec<String>)>,
}

impl Manifest {
    /// The file's bytes for a table whose directory is `table_dir`.
    pub fn encode(&self, table_dir: &Path) -> Result<Vec<u8>, Overflow> {
        let version = match self.segments.iter().all(|s| s.live_rows == s.row_count) {
            true => 2,
            false => VERSION,
        };
        let mut e = Encoder::with_capacity(256 + self.segments.len() * 80);
        e.u32(self.table_id);
        e.u64(self.sealed_row_end);
        e.bounded_u32("segments", self.segments.len(), MAX_SEGMENTS);
        let segments_dir = table_dir.join("segments");
        for s in &self.segments {
            let relative = s
                .path
                .strip_prefix(&segments_dir)
                .ok()
                .or_else(|| s.path.file_name().map(Path::new))
                .unwrap_or(Path::new(""));
            e.str("segment path", &relative.to_string_lossy());
            e.u64(s.first_row_id);
            e.u64(s.row_count);
            if version == VERSION {
                e.u64(s.live_rows);
            }
            e.i64(s.min_ts);
            e.i64(s.max_ts);
        }
        e.bounded_u32("symbol columns", self.symbols.len(), MAX_COLUMNS);
        for (column, entries) in &self.symbols {
            e.str("symbol column name", column);
            e.bounded_u32("symbol entries", entries.len(), MAX_SYMBOLS_PER_COLUMN);
            for entry in entries {
                e.str("symbol entry", entry);
            }
        }
        Ok(checksummed_file(MAGIC, version, &e.finish()?))
    }

    /// Decodes the manifest of the table in `table_dir`, read from
    /// `source`.
    pub fn decode(bytes: &[u8], table_dir: &Path, source: &str) -> Result<Manifest> {
        let (version, mut d) = open_checksummed_file_of(MAGIC, 2..=VERSION, bytes, source)?;
        let table_id = d.u32()?;
        let sealed_row_end = d.u64()?;
        // A segment takes at least 44 bytes.
        let n = d.count(MAX_SEGMENTS, 44)?;
        let mut segments: Vec<Segment> = Vec::with_capacity(n);
        let mut next = 0u64;
        for _ in 0..n {
            let file = d.str()?;
            let relative = Path::new(file);
            let parts: Vec<_> = relative.components().collect();
            if parts.is_empty()
                || parts.len() > 2
                || !parts.iter().all(|c| matches!(c, Component::Normal(_)))
            {
                return Err(d.corrupt("a segment path leaves the segments directory"));
            }
            let first_row_id = d.u64()?;
            let row_count = d.u64()?;
            if first_row_id != next || row_count == 0 {
                return Err(d.corrupt("segments do not continue each other"));
            }
            let live_rows = match version {
                2 => row_count,
                _ => d.u64()?,
            };
            if live_rows > row_count {
                return Err(d.corrupt("a segment holds more rows than it spans"));
            }
            next = first_row_id
                .checked_add(row_count)
                .ok_or_else(|| d.corrupt("row ids past the end of the range"))?;
            segments.push(Segment {
                path: table_dir.join("segments").join(relative),
                first_row_id,
                row_count,
                live_rows,
                min_ts: d.i64()?,
                max_ts: d.i64()?,
                cache: Default::default(),
            });
        }
        if next != sealed_row_end {
            return Err(d.corrupt("segments do not end at the sealed row end"));
        }
        // A column takes at least 8 bytes.
        let n = d.count(MAX_COLUMNS, 8)?;
        let mut symbols = Vec::with_capacity(n);
        for _ in 0..n {
            let column = d.str()?.to_string();
            let count = d.count(MAX_SYMBOLS_PER_COLUMN, 4)?;
            let mut entries = Vec::with_capacity(count);
            for _ in 0..count {
                entries.push(d.str()?.to_string());
            }
            symbols.push((column, entries));
        }
        d.finish()?;
        Ok(Manifest {
            table_id,
            sealed_row_end,
            segments,
            symbols,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn manifests_round_trip_and_detect_damage(
            sizes in prop::collection::vec(1u64..1000, 0..6),
            days: bool,
            symbols in prop::collection::vec(("[a-z]{1,4}", prop::collection::vec("\\PC{0,5}", 0..4)), 0..3),
            flip in any::<prop::sample::Index>(),
        ) {
            let dir = Path::new("/data/tables/7");
            let mut next = 0;
            let segments: Vec<Segment> = sizes.iter().enumerate().map(|(i, n)| {
                let name = format!("{next:020}-{n}.arrow");
                let path = match days {
                    true => dir.join("segments").join(format!("2026-01-0{}", i + 1)).join(name),
                    false => dir.join("segments").join(name),
                };
                let s = Segment { path, first_row_id: next, row_count: *n, live_rows: *n / (i as u64 + 1), min_ts: -(i as i64), max_ts: i as i64, cache: Default::default() };
                next += n;
                s
            }).collect();
            let m = Manifest { table_id: 7, sealed_row_end: next, segments, symbols };
            let bytes = m.encode(dir).unwrap();
            prop_assert_eq!(Manifest::decode(&bytes, dir, "m").unwrap(), m);
            let mut damaged = bytes.clone();
            let i = flip.index(damaged.len());
            damaged[i] ^= 0x04;
            prop_assert!(Manifest::decode(&damaged, dir, "m").is_err());
            for cut in 0..bytes.len() {
                prop_assert!(Manifest::decode(&bytes[..cut], dir, "m").is_err());
            }
        }
    }

    /// A manifest as version 2 wrote it (no live row counts) and, in
    /// version 3, with `live` live rows of a 5-row segment.
    fn one_segment(version: u8, live: u64) -> Vec<u8> {
        let mut e = Encoder::default();
        e.u32(1);
        e.u64(5);
        e.u32(1);
        e.str("p", "2026-01-01/x.arrow");
        e.u64(0);
        e.u64(5);
        if version == 3 {
            e.u64(live);
        }
        e.i64(1);
        e.i64(2);
        e.u32(0);
        checksummed_file(MAGIC, version, &e.finish().unwrap())
    }

    #[test]
    fn version_2_segments_hold_their_whole_span_and_live_rows_fit_in_it() {
        let dir = Path::new("/d");
        let m = Manifest::decode(&one_segment(2, 0), dir, "m").unwrap();
        assert_eq!((m.segments[0].row_count, m.segments[0].live_rows), (5, 5));
        let m = Manifest::decode(&one_segment(3, 0), dir, "m").unwrap();
        assert!(!m.segments[0].has_rows());
        assert!(Manifest::decode(&one_segment(3, 6), dir, "m").is_err());
        assert!(Manifest::decode(&one_segment(4, 5), dir, "m").is_err());
    }

    #[test]
    fn segment_paths_cannot_leave_their_directory() {
        let dir = Path::new("/d");
        for bad in ["../x.arrow", "/etc/passwd", "a/b/c.arrow", ""] {
            // A manifest as a damaged (or hostile) file would hold it.
            let mut e = Encoder::default();
            e.u32(1);
            e.u64(1);
            e.u32(1);
            e.str("p", bad);
            e.u64(0);
            e.u64(1);
            e.u64(1);
            e.i64(0);
            e.i64(0);
            e.u32(0);
            let bytes = checksummed_file(MAGIC, VERSION, &e.finish().unwrap());
            assert!(Manifest::decode(&bytes, dir, "m").is_err(), "{bad:?}");
        }
    }
}
