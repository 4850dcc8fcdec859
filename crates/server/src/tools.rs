//! Offline tools over a data directory. They open storage read-only (no
//! torn tail is cut, nothing is written), so they are safe while a server
//! runs: they see every transaction committed when they start.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use arrow::ipc::writer::FileWriter;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use quiver_storage::{Database, Options};

use crate::ServerError;

fn open(data_dir: &Path) -> Result<std::sync::Arc<Database>, ServerError> {
    if !data_dir.exists() {
        return Err(ServerError::Tool(format!(
            "no data directory at {}",
            data_dir.display()
        )));
    }
    Ok(Database::open(
        data_dir,
        Options {
            read_only: true,
            ..Options::default()
        },
    )?)
}

/// `quiver tables`: each table's columns, types and committed row count.
pub fn tables(data_dir: &Path, out: &mut dyn Write) -> Result<(), ServerError> {
    let db = open(data_dir)?;
    let tables = db.tables();
    if tables.is_empty() {
        writeln!(out, "no tables")?;
    }
    for t in tables {
        writeln!(
            out,
            "{} ({} rows, {} segments, partitioned by {:?})",
            t.schema.name, t.row_count, t.segments, t.schema.partition_by
        )?;
        for (i, c) in t.schema.columns.iter().enumerate() {
            let mark = if t.schema.designated_timestamp == Some(i) {
                "  designated timestamp"
            } else {
                ""
            };
            writeln!(out, "  {} {}{mark}", c.name, c.column_type.name())?;
        }
    }
    Ok(())
}

/// Output formats of `quiver export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Arrow IPC file.
    Arrow,
    /// Parquet (zstd).
    Parquet,
}

/// `quiver export`: every committed row of `table` in row-id order, with the
/// stored column names and types, streamed batch by batch.
pub fn export(
    data_dir: &Path,
    table: &str,
    format: ExportFormat,
    out: &Path,
) -> Result<(), ServerError> {
    let db = open(data_dir)?;
    let snapshot = db.snapshot(table).ok_or_else(|| {
        ServerError::Tool(format!("no table {table:?} in {}", data_dir.display()))
    })?;
    let schema = snapshot.read_schema(false);
    let file = File::create(out)?;
    let mut rows = 0u64;
    match format {
        ExportFormat::Arrow => {
            let mut w = FileWriter::try_new(BufWriter::new(file), &schema).map_err(arrow_err)?;
            for b in snapshot.scan(false) {
                let b = b?;
                rows += b.num_rows() as u64;
                w.write(&b).map_err(arrow_err)?;
            }
            w.finish().map_err(arrow_err)?;
        }
        ExportFormat::Parquet => {
            let props = WriterProperties::builder()
                .set_compression(Compression::ZSTD(Default::default()))
                .build();
            let mut w = ArrowWriter::try_new(file, schema, Some(props))
                .map_err(|e| ServerError::Tool(e.to_string()))?;
            for b in snapshot.scan(false) {
                let b = b?;
                rows += b.num_rows() as u64;
                w.write(&b).map_err(|e| ServerError::Tool(e.to_string()))?;
            }
            w.close().map_err(|e| ServerError::Tool(e.to_string()))?;
        }
    }
    eprintln!("exported {rows} rows of {table} to {}", out.display());
    Ok(())
}

fn arrow_err(e: arrow::error::ArrowError) -> ServerError {
    ServerError::Tool(e.to_string())
}
