//! Sealed segments and table manifests.
//!
//! A segment is an Arrow IPC file holding a contiguous run of a table's rows,
//! sorted by row id, which is its first column (`_row_id`, UInt64). Its other
//! columns are the table's columns when it was sealed, in read form (SYMBOL
//! as `Dictionary(UInt32, Utf8)` carrying the dictionary as it was then, a
//! prefix of every later one). Schema metadata records the format version,
//! the table, the row-id range and the designated timestamp range. A segment
//! never changes after it is renamed into place, so it is also a valid
//! point-lookup sidecar keyed by row id.
//!
//! A table's manifest lists its segments, the row id below which every row
//! is in a segment, and the symbol dictionaries as of the last seal. It is
//! replaced by write-temp + fsync + rename:
//!
//! ```text
//! magic "QMAN" | u32 crc32c of the rest | u8 version 1
//! u32 table_id | u64 sealed_row_end
//! u32 segment count, each: str path | u64 first_row_id | u64 row_count | u64 min_ts | u64 max_ts
//! u32 symbol column count, each: str column | u32 entry count | entries as str
//! ```
//! (`str` = u32 length + UTF-8; a segment's path is relative to the table's
//! `segments/` directory: `YYYY-MM-DD/<first row id>-<rows>.arrow` for
//! day-partitioned tables, the bare file name otherwise.)

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;

use crate::codec::{Reader, Writer};
use crate::error::{Result, StorageError};
use crate::wal::{create_dir_durably, sync_dir};

/// Name of the row-id column in segments and row-id-bearing scans.
pub const ROW_ID_COLUMN: &str = "_row_id";
/// Segment format version (schema metadata `quiver.segment.version`).
pub const SEGMENT_VERSION: &str = "1";

/// A sealed segment's place in its table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// The file.
    pub path: PathBuf,
    /// First row id it holds.
    pub first_row_id: u64,
    /// Rows it holds (row ids `first_row_id .. first_row_id + row_count`).
    pub row_count: u64,
    /// Smallest designated timestamp (raw value), or `i64::MAX` if none.
    pub min_ts: i64,
    /// Largest designated timestamp (raw value), or `i64::MIN` if none.
    pub max_ts: i64,
}

impl Segment {
    /// Makes the file and its directory entry durable.
    pub fn sync(&self) -> Result<()> {
        File::open(&self.path)
            .and_then(|f| f.sync_all())
            .map_err(StorageError::io("sync", &self.path))?;
        match self.path.parent() {
            Some(dir) => sync_dir(dir),
            None => Ok(()),
        }
    }

    /// Reads the segment's batches (row-id column first).
    pub fn read(&self) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
        let file = File::open(&self.path).map_err(StorageError::io("open", &self.path))?;
        let reader = FileReader::try_new(BufReader::new(file), None)?;
        Ok(reader.map(|b| b.map_err(StorageError::from)))
    }
}

/// Writes `batches` (read form, without row ids, consecutive rows starting
/// at `first_row_id`) as a segment file in `dir`. Not yet durable: see
/// [`Segment::sync`]; no manifest may list it before.
pub fn write_segment(
    dir: &Path,
    table: &str,
    schema: &SchemaRef,
    first_row_id: u64,
    batches: &[RecordBatch],
    ts_range: (i64, i64),
) -> Result<Segment> {
    create_dir_durably(dir)?;
    let row_count: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let name = format!("{first_row_id:020}-{row_count}.arrow");
    let path = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut fields = vec![Arc::new(Field::new(ROW_ID_COLUMN, DataType::UInt64, false))];
    fields.extend(schema.fields().iter().cloned());
    let metadata = HashMap::from([
        (
            "quiver.segment.version".to_string(),
            SEGMENT_VERSION.to_string(),
        ),
        ("quiver.table".to_string(), table.to_string()),
        ("quiver.first_row_id".to_string(), first_row_id.to_string()),
        ("quiver.row_count".to_string(), row_count.to_string()),
        ("quiver.min_ts".to_string(), ts_range.0.to_string()),
        ("quiver.max_ts".to_string(), ts_range.1.to_string()),
    ]);
    let full = Arc::new(Schema::new_with_metadata(fields, metadata));
    let file = File::create(&tmp).map_err(StorageError::io("create", &tmp))?;
    let mut writer = FileWriter::try_new(BufWriter::new(file), &full)?;
    let mut next = first_row_id;
    for b in batches {
        let ids: ArrayRef = Arc::new(UInt64Array::from_iter_values(
            next..next + b.num_rows() as u64,
        ));
        next += b.num_rows() as u64;
        let mut columns = vec![ids];
        columns.extend(b.columns().iter().cloned());
        writer.write(&RecordBatch::try_new(full.clone(), columns)?)?;
    }
    writer.finish()?;
    let file = writer
        .into_inner()?
        .into_inner()
        .map_err(|e| StorageError::io("flush", &tmp)(e.into_error()))?;
    drop(file);
    fs::rename(&tmp, &path).map_err(StorageError::io("rename", &path))?;
    Ok(Segment {
        path,
        first_row_id,
        row_count,
        min_ts: ts_range.0,
        max_ts: ts_range.1,
    })
}

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

const MANIFEST_MAGIC: [u8; 4] = *b"QMAN";
/// File name of a table's manifest.
pub const MANIFEST_FILE: &str = "manifest";

impl Manifest {
    /// Loads `dir/manifest`, or `None` if the table was never sealed.
    pub fn load(dir: &Path) -> Result<Option<Manifest>> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(StorageError::io("read", &path)(e)),
        };
        let source = path.display().to_string();
        let corrupt = |reason| StorageError::Corrupt {
            path: path.clone(),
            offset: 0,
            reason,
        };
        if bytes.len() < 9 || bytes[..4] != MANIFEST_MAGIC {
            return Err(corrupt("not a manifest"));
        }
        let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
        if crc32c::crc32c(&bytes[8..]) != crc {
            return Err(corrupt("checksum mismatch"));
        }
        let mut r = Reader::new(&bytes[8..], &source);
        if r.u8()? != 1 {
            return Err(corrupt("unknown manifest version"));
        }
        let table_id = r.u32()?;
        let sealed_row_end = r.u64()?;
        let n = r.u32()? as usize;
        let mut segments = Vec::with_capacity(n.min(r.remaining()));
        for _ in 0..n {
            let file = r.str()?;
            // `name` or `YYYY-MM-DD/name` (a day partition), nothing else.
            let relative = Path::new(&file);
            let parts: Vec<_> = relative.components().collect();
            if parts.is_empty()
                || parts.len() > 2
                || !parts
                    .iter()
                    .all(|c| matches!(c, std::path::Component::Normal(_)))
            {
                return Err(corrupt("a segment path leaves the segments directory"));
            }
            segments.push(Segment {
                path: dir.join("segments").join(relative),
                first_row_id: r.u64()?,
                row_count: r.u64()?,
                min_ts: r.u64()? as i64,
                max_ts: r.u64()? as i64,
            });
        }
        let n = r.u32()? as usize;
        let mut symbols = Vec::with_capacity(n.min(r.remaining()));
        for _ in 0..n {
            let column = r.str()?;
            let count = r.u32()? as usize;
            let mut entries = Vec::with_capacity(count.min(r.remaining()));
            for _ in 0..count {
                entries.push(r.str()?);
            }
            symbols.push((column, entries));
        }
        r.finish()?;
        Ok(Some(Manifest {
            table_id,
            sealed_row_end,
            segments,
            symbols,
        }))
    }

    /// Replaces `dir/manifest` durably.
    pub fn store(&self, dir: &Path) -> Result<()> {
        let mut w = Writer::default();
        w.u8(1);
        w.u32(self.table_id);
        w.u64(self.sealed_row_end);
        w.u32(self.segments.len() as u32);
        let segments_dir = dir.join("segments");
        for s in &self.segments {
            // Relative to `segments/`: the file name, under its day
            // partition's directory for day-partitioned tables.
            let relative = s
                .path
                .strip_prefix(&segments_dir)
                .ok()
                .or_else(|| s.path.file_name().map(Path::new))
                .unwrap_or(Path::new(""));
            w.str(&relative.to_string_lossy());
            w.u64(s.first_row_id);
            w.u64(s.row_count);
            w.u64(s.min_ts as u64);
            w.u64(s.max_ts as u64);
        }
        w.u32(self.symbols.len() as u32);
        for (column, entries) in &self.symbols {
            w.str(column);
            w.u32(entries.len() as u32);
            for e in entries {
                w.str(e);
            }
        }
        let body = w.into_inner();
        let mut bytes = Vec::with_capacity(body.len() + 8);
        bytes.extend_from_slice(&MANIFEST_MAGIC);
        bytes.extend_from_slice(&crc32c::crc32c(&body).to_le_bytes());
        bytes.extend_from_slice(&body);
        write_durably(dir, MANIFEST_FILE, &bytes)
    }
}

/// Replaces `dir/name` with `bytes`: temp file, fsync, rename, fsync dir.
pub(crate) fn write_durably(dir: &Path, name: &str, bytes: &[u8]) -> Result<()> {
    create_dir_durably(dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let mut f = File::create(&tmp).map_err(StorageError::io("create", &tmp))?;
    f.write_all(bytes)
        .map_err(StorageError::io("write", &tmp))?;
    f.sync_all().map_err(StorageError::io("sync", &tmp))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(StorageError::io("rename", &path))?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Array, Int64Array};

    #[test]
    fn segment_and_manifest_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let b1 = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
            .unwrap();
        let b2 = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![3]))])
            .unwrap();
        let seg = write_segment(
            &dir.path().join("segments"),
            "t",
            &schema,
            10,
            &[b1, b2],
            (5, 9),
        )
        .unwrap();
        assert_eq!(seg.row_count, 3);
        let batches: Vec<_> = seg.read().unwrap().collect::<Result<_>>().unwrap();
        let ids = batches[1]
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap();
        assert_eq!(ids.value(0), 12);
        assert_eq!(batches[0].schema().metadata()["quiver.first_row_id"], "10");

        let m = Manifest {
            table_id: 3,
            sealed_row_end: 13,
            segments: vec![seg],
            symbols: vec![("s".into(), vec!["a".into(), "b".into()])],
        };
        m.store(dir.path()).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), Some(m));
        // A flipped byte is detected.
        let p = dir.path().join(MANIFEST_FILE);
        let mut bytes = fs::read(&p).unwrap();
        let n = bytes.len();
        bytes[n - 1] ^= 1;
        fs::write(&p, &bytes).unwrap();
        assert!(Manifest::load(dir.path()).is_err());
        assert!(
            Manifest::load(&dir.path().join("missing"))
                .unwrap()
                .is_none()
        );
        assert_eq!(batches[0].column(1).len(), 2);
    }
}
