//! Every byte layout `quiver-storage` puts on disk, one codec type each,
//! with encode and decode side by side under a byte map:
//!
//! | format | codec | where |
//! |---|---|---|
//! | WAL file header, record header | [`wal::FileHeader`], [`wal::RecordHeader`] | `wal/<first lsn>.wal` |
//! | transaction record body | [`records::TransactionRecord`] | WAL, kind 1 |
//! | table created / columns added | [`records::SchemaRecord`] | WAL, kinds 2 and 3 |
//! | rows staged ahead of their commit | [`records::PartRecord`] | WAL, kind 4 |
//! | rows of one batch | [`crate::rows`] | inside transaction and part records |
//! | table schema | [`crate::schema::TableSchema::encode`] | inside schema records and the catalog |
//! | catalog | [`catalog::CatalogFile`] | `catalog` |
//! | table manifest | [`manifest::Manifest`] | `tables/<id>/manifest` |
//!
//! Fields are little-endian; `str` is a `u32` byte length and UTF-8 bytes.
//! Encoders never narrow a number silently: [`Encoder`] remembers the first
//! length or count that does not fit its field and [`Encoder::finish`]
//! reports it, so a value too big for the format is refused before anything
//! is written. Decoders check every length and count against the bytes
//! present (and a limit) before allocating, report damage as
//! [`StorageError::Corrupt`] naming the file and offset, and never panic.
//! Each codec has a property round-trip test and a fuzz target
//! (`fuzz/fuzz_targets/storage_*.rs`).

pub mod catalog;
pub mod manifest;
pub mod records;
pub mod wal;

use crate::error::StorageError;

/// A length or count too large for the field that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow {
    /// Which field.
    pub field: &'static str,
    /// The value.
    pub value: u64,
    /// The largest the field holds.
    pub max: u64,
}

impl From<Overflow> for StorageError {
    fn from(o: Overflow) -> Self {
        StorageError::LimitExceeded {
            what: o.field,
            value: o.value,
            limit: o.max,
        }
    }
}

/// Appends little-endian fields to a buffer; see the module docs.
#[derive(Debug, Default)]
pub struct Encoder {
    buf: Vec<u8>,
    overflow: Option<Overflow>,
}

impl Encoder {
    /// An encoder with room for `n` bytes.
    pub fn with_capacity(n: usize) -> Self {
        Encoder {
            buf: Vec::with_capacity(n),
            overflow: None,
        }
    }

    /// One byte.
    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// A `u32`.
    pub fn u32(&mut self, v: u32) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A `u64`.
    pub fn u64(&mut self, v: u64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// An `i64`.
    pub fn i64(&mut self, v: i64) {
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// A length or count as a `u32` field, remembering an overflow.
    pub fn count_u32(&mut self, field: &'static str, n: usize) {
        match u32::try_from(n) {
            Ok(v) => self.u32(v),
            Err(_) => {
                self.note(Overflow {
                    field,
                    value: n as u64,
                    max: u64::from(u32::MAX),
                });
                self.u32(u32::MAX);
            }
        }
    }

    /// A `usize` value as a `u32` field no larger than `max`, remembering
    /// an overflow.
    pub fn bounded_u32(&mut self, field: &'static str, n: usize, max: usize) {
        if n > max {
            self.note(Overflow {
                field,
                value: n as u64,
                max: max as u64,
            });
        }
        self.count_u32(field, n);
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self, field: &'static str, b: &[u8]) {
        self.count_u32(field, b.len());
        self.buf.extend_from_slice(b);
    }

    /// A length-prefixed UTF-8 string.
    pub fn str(&mut self, field: &'static str, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    /// Raw bytes, no prefix.
    pub fn raw(&mut self, b: &[u8]) {
        self.buf.extend_from_slice(b);
    }

    /// Records an overflow found by the caller (the first one wins).
    pub fn note(&mut self, overflow: Overflow) {
        self.overflow.get_or_insert(overflow);
    }

    /// Bytes so far.
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    /// Whether nothing was written.
    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// The bytes, or the first field that overflowed.
    pub fn finish(self) -> Result<Vec<u8>, Overflow> {
        match self.overflow {
            Some(o) => Err(o),
            None => Ok(self.buf),
        }
    }
}

/// Reads little-endian fields, reporting damage in `source` (a file name).
#[derive(Debug)]
pub struct Decoder<'a> {
    buf: &'a [u8],
    pos: usize,
    /// Added to positions in errors (where `buf` starts in its file).
    base: u64,
    source: &'a str,
}

impl<'a> Decoder<'a> {
    /// A decoder over `buf`, found in `source`.
    pub fn new(buf: &'a [u8], source: &'a str) -> Self {
        Decoder {
            buf,
            pos: 0,
            base: 0,
            source,
        }
    }

    /// A decoder whose errors name offsets from `base` in the file.
    pub fn at(buf: &'a [u8], source: &'a str, base: u64) -> Self {
        Decoder {
            buf,
            pos: 0,
            base,
            source,
        }
    }

    /// The corruption error for the current position.
    pub fn corrupt(&self, reason: &'static str) -> StorageError {
        StorageError::Corrupt {
            path: self.source.into(),
            offset: self.base + self.pos as u64,
            reason,
        }
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes.
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], StorageError> {
        if n > self.remaining() {
            return Err(self.corrupt("field runs past the end"));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Everything left.
    pub fn rest(&mut self) -> &'a [u8] {
        let out = &self.buf[self.pos..];
        self.pos = self.buf.len();
        out
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], StorageError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    /// One byte.
    pub fn u8(&mut self) -> Result<u8, StorageError> {
        Ok(self.array::<1>()?[0])
    }

    /// A `u32`.
    pub fn u32(&mut self) -> Result<u32, StorageError> {
        Ok(u32::from_le_bytes(self.array()?))
    }

    /// A `u64`.
    pub fn u64(&mut self) -> Result<u64, StorageError> {
        Ok(u64::from_le_bytes(self.array()?))
    }

    /// An `i64`.
    pub fn i64(&mut self) -> Result<i64, StorageError> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    /// A `u32` count of items at least `min_item_len` bytes each, checked
    /// against `max` and against the bytes left (so a damaged count cannot
    /// make the caller allocate more than the input justifies).
    pub fn count(&mut self, max: usize, min_item_len: usize) -> Result<usize, StorageError> {
        let n = self.u32()? as usize;
        if n > max {
            return Err(self.corrupt("count over its limit"));
        }
        if n.saturating_mul(min_item_len.max(1)) > self.remaining() && min_item_len > 0 {
            return Err(self.corrupt("count larger than the bytes left"));
        }
        Ok(n)
    }

    /// Length-prefixed bytes.
    pub fn bytes(&mut self) -> Result<&'a [u8], StorageError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// A length-prefixed UTF-8 string, borrowed.
    pub fn str(&mut self) -> Result<&'a str, StorageError> {
        let b = self.bytes()?;
        std::str::from_utf8(b).map_err(|_| self.corrupt("string is not UTF-8"))
    }

    /// Fails unless every byte was read.
    pub fn finish(&self) -> Result<(), StorageError> {
        if self.remaining() == 0 {
            Ok(())
        } else {
            Err(self.corrupt("trailing bytes"))
        }
    }
}

/// A whole file of one format: `magic | u32 crc32c of the rest | u8
/// version | body`.
pub fn checksummed_file(magic: [u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 9);
    out.extend_from_slice(&magic);
    out.extend_from_slice(&[0; 4]);
    out.push(version);
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out[8..]);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The body of a [`checksummed_file`], after checking its magic, checksum
/// and version.
pub fn open_checksummed_file<'a>(
    magic: [u8; 4],
    version: u8,
    bytes: &'a [u8],
    source: &'a str,
) -> Result<Decoder<'a>, StorageError> {
    open_checksummed_file_of(magic, version..=version, bytes, source).map(|(_, d)| d)
}

/// [`open_checksummed_file`] for a format that still reads older
/// versions: the version found (one of `versions`) and the body.
pub fn open_checksummed_file_of<'a>(
    magic: [u8; 4],
    versions: std::ops::RangeInclusive<u8>,
    bytes: &'a [u8],
    source: &'a str,
) -> Result<(u8, Decoder<'a>), StorageError> {
    let corrupt = |offset, reason| StorageError::Corrupt {
        path: source.into(),
        offset,
        reason,
    };
    if bytes.len() < 9 || bytes[..4] != magic {
        return Err(corrupt(0, "not the expected kind of file"));
    }
    let mut crc = [0; 4];
    crc.copy_from_slice(&bytes[4..8]);
    if crc32c::crc32c(&bytes[8..]) != u32::from_le_bytes(crc) {
        return Err(corrupt(4, "checksum mismatch"));
    }
    if !versions.contains(&bytes[8]) {
        return Err(corrupt(8, "written by another format version"));
    }
    Ok((bytes[8], Decoder::at(&bytes[9..], source, 9)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let mut w = Encoder::default();
        w.u8(1);
        w.u32(3);
        w.u64(4);
        w.i64(-5);
        w.str("s", "héllo");
        let b = w.finish().unwrap();
        let mut r = Decoder::new(&b, "t");
        assert_eq!(
            (r.u8().unwrap(), r.u32().unwrap(), r.u64().unwrap()),
            (1, 3, 4)
        );
        assert_eq!(r.i64().unwrap(), -5);
        assert_eq!(r.str().unwrap(), "héllo");
        r.finish().unwrap();
        assert!(r.u8().is_err());
        let mut r = Decoder::new(&[0xFF, 0xFF, 0xFF, 0xFF], "t");
        assert!(r.bytes().is_err());
        let mut r = Decoder::new(&[3, 0, 0, 0, 1, 2], "t");
        assert!(r.count(10, 1).is_err(), "3 items of a byte in 2 bytes");
        let mut r = Decoder::new(&[3, 0, 0, 0, 1, 2, 3], "t");
        assert_eq!(r.count(10, 1).unwrap(), 3);
        let mut r = Decoder::new(&[3, 0, 0, 0], "t");
        assert!(r.count(2, 0).is_err());
    }

    #[test]
    fn an_overflowing_length_is_reported_not_truncated() {
        let mut w = Encoder::default();
        w.count_u32("part count", 70_000);
        w.bounded_u32("parts", 70_000, 65_535);
        w.count_u32("huge", usize::MAX);
        assert_eq!(
            w.finish().unwrap_err(),
            Overflow {
                field: "parts",
                value: 70_000,
                max: 65_535
            }
        );
        let mut w = Encoder::default();
        w.count_u32("huge", u32::MAX as usize + 1);
        assert_eq!(w.finish().unwrap_err().field, "huge");
    }
}
