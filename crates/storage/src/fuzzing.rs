//! Batches of more than [`MAX_ROWS`] rows (a few bytes can describe
//! billions of rows of a column without buffers) are decoded but not
//! compared: comparing them costs seconds per input and finds nothing new.
//!
//! Properties the cargo-fuzz targets (`fuzz/fuzz_targets/storage_*.rs`)
//! and their regression tests (`tests/fuzz_regressions.rs`) check; not an
//! API. Whatever bytes a file holds, decoding returns a value
//! or an error without panicking, and what decodes re-encodes to bytes that
//! decode to the same value.
//!
//! - [`records`]: transaction, part, schema and symbols record bodies;
//! - [`rows`]: the rows encoding;
//! - [`files`]: the catalog and manifest files (the checksum is set to
//!   match, so the fuzzer reaches the fields behind it);
//! - [`wal`]: a log built from the input as valid chained records, then
//!   damaged at a chosen byte: recovery never panics, replays a prefix of
//!   what was written, and after cutting the tail finds no tail.

use std::path::Path;
use std::sync::Arc;

use crate::format::catalog::CatalogFile;
use crate::format::manifest::Manifest;
use crate::format::records::{
    PartRecord, PartRows, SchemaRecord, SymbolsRecord, TransactionRead, TransactionRecord, TxnPart,
    join,
};
use crate::format::wal::RecordKind;
use crate::io::{FileSystem, SimulatedDisk};
use crate::rows::{EncodedRows, decode_rows};
use crate::wal::{Chunk, RecordToWrite, Replay, WalWriter, cut_tail, scan};

/// Largest batch the round-trip checks compare.
pub const MAX_ROWS: usize = 1 << 16;

/// Record bodies: the first byte picks the kind.
pub fn records(data: &[u8]) {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    match kind % 4 {
        0 => {
            let Ok(txn) = TransactionRead::decode(body, "fuzz", 0) else {
                return;
            };
            // Re-encode (inline rows through their decoded batch) and
            // decode again: the same parts.
            let mut parts = Vec::new();
            for p in &txn.parts {
                let rows = match p.rows {
                    PartRows::Staged(id) => PartRows::Staged(id),
                    PartRows::Inline(bytes) => match decode_rows(bytes)
                        .ok()
                        .filter(|b| b.num_rows() <= MAX_ROWS)
                        .and_then(|b| EncodedRows::encode(&b).ok())
                    {
                        Some(rows) => PartRows::Inline(rows),
                        None => return,
                    },
                };
                parts.push(TxnPart {
                    table_id: p.table_id,
                    first_row_id: p.first_row_id,
                    row_count: p.row_count,
                    rows,
                });
            }
            let again = join(&TransactionRecord { parts }.encode().expect("it decoded"));
            let back = TransactionRead::decode(&again, "fuzz", 0).expect("re-encoded");
            assert_eq!(back.parts.len(), txn.parts.len());
            for (a, b) in back.parts.iter().zip(&txn.parts) {
                assert_eq!(
                    (a.table_id, a.first_row_id, a.row_count),
                    (b.table_id, b.first_row_id, b.row_count)
                );
            }
        }
        1 => {
            if let Ok((head, rows)) = PartRecord::decode(body, "fuzz", 0)
                && let Ok(batch) = decode_rows(rows)
                && batch.num_rows() <= MAX_ROWS
            {
                let again = join(&head.encode(EncodedRows::encode(&batch).unwrap()).unwrap());
                let (back, rows) = PartRecord::decode(&again, "fuzz", 0).unwrap();
                assert_eq!(back, head);
                assert_eq!(decode_rows(rows).unwrap(), batch);
            }
        }
        2 => {
            if let Ok(r) = SchemaRecord::decode(body, "fuzz", 0) {
                let again = r.encode().expect("it decoded");
                assert_eq!(SchemaRecord::decode(&again, "fuzz", 0).unwrap(), r);
            }
        }
        _ => {
            if let Ok(r) = SymbolsRecord::decode(body, "fuzz", 0) {
                let again = r.encode().expect("it decoded");
                assert_eq!(SymbolsRecord::decode(&again, "fuzz", 0).unwrap(), r);
            }
        }
    }
}

/// The rows encoding.
pub fn rows(data: &[u8]) {
    if let Ok(batch) = decode_rows(data)
        && batch.num_rows() <= MAX_ROWS
    {
        let again = EncodedRows::encode(&batch).expect("a decoded batch encodes");
        let bytes = join(&again.into_chunks());
        assert_eq!(decode_rows(&bytes).expect("re-encoded"), batch);
    }
}

/// Catalog (first byte even) or manifest (odd: version 2 when the byte is
/// 1 mod 4, else 3), with the checksum fixed.
pub fn files(data: &[u8]) {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let (magic, version) = match which % 4 {
        0 | 2 => (*b"QCAT", 2),
        1 => (*b"QMAN", 2),
        _ => (*b"QMAN", 3),
    };
    let mut bytes = magic.to_vec();
    bytes.extend_from_slice(&[0; 4]);
    bytes.push(version);
    bytes.extend_from_slice(rest);
    let crc = crc32c::crc32c(&bytes[8..]);
    bytes[4..8].copy_from_slice(&crc.to_le_bytes());
    if which % 2 == 0 {
        if let Ok(c) = CatalogFile::decode(&bytes, "fuzz") {
            let again = c.encode().expect("it decoded");
            assert_eq!(CatalogFile::decode(&again, "fuzz").unwrap(), c);
        }
    } else {
        let dir = Path::new("/t");
        if let Ok(m) = Manifest::decode(&bytes, dir, "fuzz") {
            let again = m.encode(dir).expect("it decoded");
            assert_eq!(Manifest::decode(&again, dir, "fuzz").unwrap(), m);
        }
    }
}

/// A log written from the input, then damaged: the input is a list of
/// records (`u8 kind`, `u8 len`, `len` body bytes; kind bit 7 ends a
/// group), the last 4 bytes pick a byte to change and how.
pub fn wal(data: &[u8]) {
    if data.len() < 4 {
        return;
    }
    let (spec, damage) = data.split_at(data.len() - 4);
    let disk = SimulatedDisk::new();
    let fs: Arc<dyn FileSystem> = Arc::new(disk.clone());
    let dir = Path::new("/wal");
    let start = scan(&*fs, dir, 1).expect("an empty log");
    let mut w = WalWriter::open(fs.clone(), dir, &start.end, 512).expect("opens");
    let mut written: Vec<Vec<u8>> = Vec::new();
    let mut group = Vec::new();
    let mut bodies = Vec::new();
    let mut i = 0;
    while i + 2 <= spec.len() {
        let (kind, len) = (spec[i], usize::from(spec[i + 1]));
        let body = &spec[i + 2..(i + 2 + len).min(spec.len())];
        i += 2 + len;
        group.push(RecordToWrite {
            kind: RecordKind::Part,
            body: vec![Chunk::Owned(body.to_vec())],
        });
        bodies.push(body.to_vec());
        if kind & 0x80 != 0 {
            w.append_group(std::mem::take(&mut group), 0)
                .expect("writes");
            written.append(&mut bodies);
            w.roll_if_full().expect("rolls");
        }
    }
    drop(w);
    let files = disk.files();
    let total: usize = files.values().map(Vec::len).sum();
    if total > 0 {
        // Change one byte of the log.
        let at = u32::from_le_bytes([damage[0], damage[1], damage[2], 0]) as usize % total;
        let mut skip = at;
        for (path, bytes) in files {
            if skip < bytes.len() {
                let mut bytes = bytes;
                bytes[skip] ^= damage[3] | 1;
                let f = fs.create(&path).unwrap();
                crate::io::write_all(&*f, &[&bytes]).unwrap();
                break;
            }
            skip -= bytes.len();
        }
    }
    let Ok(found) = scan(&*fs, dir, 1) else {
        // Refused: only when a record says damaged data was fsync'd, which
        // this log never claims.
        panic!("refused a log that claims nothing durable");
    };
    let replayed: Vec<Vec<u8>> = Replay::new(&*fs, &found)
        .map(|r| r.expect("scanned records replay").body)
        .collect();
    assert!(replayed.len() <= written.len());
    assert_eq!(&written[..replayed.len()], &replayed[..]);
    cut_tail(&*fs, dir, &found).expect("cuts");
    let again = scan(&*fs, dir, 1).expect("scans");
    assert!(again.tail.is_none());
    assert_eq!(Replay::new(&*fs, &again).count(), replayed.len());
}
