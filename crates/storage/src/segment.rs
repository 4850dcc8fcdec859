//! Sealed segments.
//!
//! A segment is an Arrow IPC file holding a contiguous run of a table's rows,
//! sorted by row id, which is its first column (`_row_id`, UInt64). Its other
//! columns are the table's columns when it was sealed, in read form (SYMBOL
//! as `Dictionary(UInt32, Utf8)` carrying the dictionary as it was then, a
//! prefix of every later one). Schema metadata records the format version,
//! the table, the row-id range and the designated timestamp range. A segment
//! never changes after it is renamed into place, so it is also a valid
//! point-lookup sidecar keyed by row id. The table's manifest
//! ([`crate::format::manifest`]) lists the durable ones.

use std::collections::HashMap;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, RecordBatch, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::FileWriter;

use crate::error::{Result, StorageError};
use crate::io::{self, FileSystem};
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
    pub fn sync(&self, fs: &dyn FileSystem) -> Result<()> {
        fs.open_append(&self.path)
            .and_then(|f| f.sync_data())
            .map_err(StorageError::io("sync", &self.path))?;
        match self.path.parent() {
            Some(dir) => sync_dir(fs, dir),
            None => Ok(()),
        }
    }

    /// Reads the segment's batches (row-id column first).
    pub fn read(&self, fs: &dyn FileSystem) -> Result<impl Iterator<Item = Result<RecordBatch>>> {
        let file = fs
            .open_read(&self.path)
            .map_err(StorageError::io("open", &self.path))?;
        let reader = FileReader::try_new(file, None)?;
        Ok(reader.map(|b| b.map_err(StorageError::from)))
    }
}

impl Segment {
    /// Reads the segment's batches with only the columns named in
    /// `columns` that it holds (ASCII case ignored; no row ids): the other
    /// columns' bytes are not read.
    pub fn read_columns(
        &self,
        fs: &dyn FileSystem,
        columns: &[String],
    ) -> Result<impl Iterator<Item = Result<RecordBatch>> + use<>> {
        let open = || {
            fs.open_read(&self.path)
                .map_err(StorageError::io("open", &self.path))
        };
        let schema = FileReader::try_new(open()?, None)?.schema();
        let mut indices: Vec<usize> = columns
            .iter()
            .filter_map(|name| {
                schema
                    .fields()
                    .iter()
                    .position(|f| f.name().eq_ignore_ascii_case(name) && f.name() != ROW_ID_COLUMN)
            })
            .collect();
        if indices.is_empty() {
            // The row ids carry the row count when no column is read.
            indices.push(0);
        }
        let reader = FileReader::try_new(open()?, Some(indices))?;
        Ok(reader.map(|b| b.map_err(StorageError::from)))
    }
}

/// Writes `batches` (read form, without row ids, consecutive rows starting
/// at `first_row_id`) as a segment file in `dir`. Not yet durable: see
/// [`Segment::sync`]; no manifest may list it before.
pub fn write_segment(
    fs: &dyn FileSystem,
    dir: &Path,
    table: &str,
    schema: &SchemaRef,
    first_row_id: u64,
    batches: &[RecordBatch],
    ts_range: (i64, i64),
) -> Result<Segment> {
    create_dir_durably(fs, dir)?;
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
    let file = fs.create(&tmp).map_err(StorageError::io("create", &tmp))?;
    // Write errors surface as Arrow errors; report them as I/O on the file.
    let failed = |e: arrow::error::ArrowError| StorageError::Io {
        op: "write",
        path: tmp.clone(),
        source: std::io::Error::other(e.to_string()),
    };
    let mut writer =
        FileWriter::try_new(BufWriter::with_capacity(1 << 20, io::Writer(&*file)), &full)
            .map_err(failed)?;
    let mut next = first_row_id;
    for b in batches {
        let ids: ArrayRef = Arc::new(UInt64Array::from_iter_values(
            next..next + b.num_rows() as u64,
        ));
        next += b.num_rows() as u64;
        let mut columns = vec![ids];
        columns.extend(b.columns().iter().cloned());
        writer
            .write(&RecordBatch::try_new(full.clone(), columns)?)
            .map_err(failed)?;
    }
    writer.finish().map_err(failed)?;
    writer
        .into_inner()
        .map_err(failed)?
        .into_inner()
        .map_err(|e| StorageError::io("write", &tmp)(e.into_error()))?;
    fs.rename(&tmp, &path)
        .map_err(StorageError::io("rename", &path))?;
    Ok(Segment {
        path,
        first_row_id,
        row_count,
        min_ts: ts_range.0,
        max_ts: ts_range.1,
    })
}

/// Replaces `dir/name` with `bytes`: temp file, fsync, rename, fsync dir.
pub(crate) fn write_durably(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    bytes: &[u8],
) -> Result<()> {
    create_dir_durably(fs, dir)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let f = fs.create(&tmp).map_err(StorageError::io("create", &tmp))?;
    io::write_all(&*f, &[bytes]).map_err(StorageError::io("write", &tmp))?;
    f.sync_data().map_err(StorageError::io("sync", &tmp))?;
    drop(f);
    fs.rename(&tmp, &path)
        .map_err(StorageError::io("rename", &path))?;
    sync_dir(fs, dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::OsFileSystem;
    use arrow::array::{Array, Int64Array};

    #[test]
    fn segments_round_trip_with_row_ids() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFileSystem;
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, true)]));
        let b1 = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![1, 2]))])
            .unwrap();
        let b2 = RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(vec![3]))])
            .unwrap();
        let seg = write_segment(
            &fs,
            &dir.path().join("segments"),
            "t",
            &schema,
            10,
            &[b1, b2],
            (5, 9),
        )
        .unwrap();
        seg.sync(&fs).unwrap();
        assert_eq!(seg.row_count, 3);
        let batches: Vec<_> = seg.read(&fs).unwrap().collect::<Result<_>>().unwrap();
        let ids = batches[1]
            .column(0)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .unwrap();
        assert_eq!(ids.value(0), 12);
        assert_eq!(batches[0].schema().metadata()["quiver.first_row_id"], "10");
        assert_eq!(batches[0].column(1).len(), 2);
    }
}
