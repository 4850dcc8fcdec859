//! WAL file and record headers.
//!
//! A log file `wal/<first lsn, 20 digits>.wal` starts with a file header:
//!
//! ```text
//! offset  size  field
//! 0       4     magic "QWLF"
//! 4       4     crc32c of bytes 8 .. 32
//! 8       1     format version (2)
//! 9       7     reserved, 0
//! 16      8     first lsn (u64 LE): the lsn of the file's first record
//! 24      8     salt (u64 LE): random, chosen when the file is created
//! ```
//!
//! then records, each a header and a body:
//!
//! ```text
//! offset  size  field
//! 0       4     magic "QWAL"
//! 4       4     header crc: crc32c of the file's salt (8 bytes LE), then
//!               bytes 8 .. 40
//! 8       1     kind (1 transaction, 2 table created, 3 schema altered, 7 table dropped,
//!                     4 part staged ahead of its transaction, 5 sync mark,
//!                     6 symbols)
//! 9       1     flags: bit 0 = last record of its commit group
//! 10      2     reserved, 0
//! 12      4     body length (u32 LE, at most `MAX_RECORD_BODY_LEN`)
//! 16      8     lsn (u64 LE): the previous record's plus one
//! 24      8     durable lsn (u64 LE): every record up to this lsn had
//!               been fsync'd when this record was written (0: none)
//! 32      4     the previous record's header crc (the chain; 0 before the
//!               first record ever written)
//! 36      4     crc32c of the body
//! 40      ...   body (see `records`)
//! ```
//!
//! Recovery trusts a record only if its header checks out under its file's
//! salt and chains to the record before it (lsn + 1, previous header crc),
//! and applies a commit group only once its last record is there. The salt
//! makes a record header that is only data (a VARCHAR value holding bytes
//! copied from a WAL file) fail the check; the chain makes a stale record
//! left from earlier writes fail it; the durable lsn tells recovery which
//! records an fsync covered, so damage there is reported, not cut.

use crate::limits::MAX_RECORD_BODY_LEN;

/// File header magic.
pub const FILE_MAGIC: [u8; 4] = *b"QWLF";
/// Record header magic.
pub const RECORD_MAGIC: [u8; 4] = *b"QWAL";
/// Format version of WAL files.
pub const VERSION: u8 = 2;
/// File header length.
pub const FILE_HEADER_LEN: usize = 32;
/// Record header length.
pub const RECORD_HEADER_LEN: usize = 40;
/// Flag: the record ends its commit group.
const FLAG_GROUP_END: u8 = 1;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// A committed transaction: rows for one or more tables.
    Transaction = 1,
    /// A new table.
    CreateTable = 2,
    /// A table's new schema: columns added, or the table renamed.
    AlterSchema = 3,
    /// Rows written ahead of the transaction that will commit them.
    Part = 4,
    /// No body: written after an fsync (at open and at close) so its
    /// durable lsn covers the whole log before it, and later damage there
    /// is reported instead of cut as a torn tail.
    SyncMark = 5,
    /// New entries of a SYMBOL column's dictionary.
    Symbols = 6,
    /// A table dropped.
    DropTable = 7,
}

impl RecordKind {
    fn from_u8(b: u8) -> Option<RecordKind> {
        match b {
            1 => Some(RecordKind::Transaction),
            2 => Some(RecordKind::CreateTable),
            3 => Some(RecordKind::AlterSchema),
            4 => Some(RecordKind::Part),
            5 => Some(RecordKind::SyncMark),
            6 => Some(RecordKind::Symbols),
            7 => Some(RecordKind::DropTable),
            _ => None,
        }
    }
}

/// A WAL file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileHeader {
    /// The lsn of the file's first record.
    pub first_lsn: u64,
    /// The file's salt.
    pub salt: u64,
}

impl FileHeader {
    /// The header's bytes.
    pub fn encode(&self) -> [u8; FILE_HEADER_LEN] {
        let mut b = [0u8; FILE_HEADER_LEN];
        b[..4].copy_from_slice(&FILE_MAGIC);
        b[8] = VERSION;
        b[16..24].copy_from_slice(&self.first_lsn.to_le_bytes());
        b[24..32].copy_from_slice(&self.salt.to_le_bytes());
        let crc = crc32c::crc32c(&b[8..]);
        b[4..8].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// The header in `b`, if it is one (magic, checksum, version and
    /// reserved bytes all check out).
    pub fn decode(b: &[u8; FILE_HEADER_LEN]) -> Option<FileHeader> {
        if b[..4] != FILE_MAGIC
            || u32::from_le_bytes(le4(&b[4..8])) != crc32c::crc32c(&b[8..])
            || b[8] != VERSION
            || b[9..16].iter().any(|x| *x != 0)
        {
            return None;
        }
        Some(FileHeader {
            first_lsn: u64::from_le_bytes(le8(&b[16..24])),
            salt: u64::from_le_bytes(le8(&b[24..32])),
        })
    }
}

fn le4(b: &[u8]) -> [u8; 4] {
    let mut a = [0; 4];
    a.copy_from_slice(b);
    a
}

fn le8(b: &[u8]) -> [u8; 8] {
    let mut a = [0; 8];
    a.copy_from_slice(b);
    a
}

/// A record's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    /// Kind.
    pub kind: RecordKind,
    /// Whether it ends its commit group.
    pub group_end: bool,
    /// Body length.
    pub body_len: u32,
    /// Log sequence number.
    pub lsn: u64,
    /// What was durable when it was written.
    pub durable_lsn: u64,
    /// The previous record's header crc.
    pub prev_crc: u32,
    /// The body's crc32c.
    pub body_crc: u32,
}

impl RecordHeader {
    /// The header's bytes under `salt`, and its header crc (what the next
    /// record chains to).
    pub fn encode(&self, salt: u64) -> ([u8; RECORD_HEADER_LEN], u32) {
        let mut b = [0u8; RECORD_HEADER_LEN];
        b[..4].copy_from_slice(&RECORD_MAGIC);
        b[8] = self.kind as u8;
        b[9] = if self.group_end { FLAG_GROUP_END } else { 0 };
        b[12..16].copy_from_slice(&self.body_len.to_le_bytes());
        b[16..24].copy_from_slice(&self.lsn.to_le_bytes());
        b[24..32].copy_from_slice(&self.durable_lsn.to_le_bytes());
        b[32..36].copy_from_slice(&self.prev_crc.to_le_bytes());
        b[36..40].copy_from_slice(&self.body_crc.to_le_bytes());
        let crc = header_crc(&b, salt);
        b[4..8].copy_from_slice(&crc.to_le_bytes());
        (b, crc)
    }

    /// The header in `b` under `salt`, with its header crc, if it is one
    /// (magic, salted checksum, kind, flags, reserved bytes and the body
    /// length limit all check out). O(1): scanning for headers is linear.
    pub fn decode(b: &[u8; RECORD_HEADER_LEN], salt: u64) -> Option<(RecordHeader, u32)> {
        if b[..4] != RECORD_MAGIC {
            return None;
        }
        let crc = u32::from_le_bytes(le4(&b[4..8]));
        if crc != header_crc(b, salt) {
            return None;
        }
        let kind = RecordKind::from_u8(b[8])?;
        if b[9] & !FLAG_GROUP_END != 0 || b[10] != 0 || b[11] != 0 {
            return None;
        }
        let body_len = u32::from_le_bytes(le4(&b[12..16]));
        if body_len as usize > MAX_RECORD_BODY_LEN {
            return None;
        }
        Some((
            RecordHeader {
                kind,
                group_end: b[9] & FLAG_GROUP_END != 0,
                body_len,
                lsn: u64::from_le_bytes(le8(&b[16..24])),
                durable_lsn: u64::from_le_bytes(le8(&b[24..32])),
                prev_crc: u32::from_le_bytes(le4(&b[32..36])),
                body_crc: u32::from_le_bytes(le4(&b[36..40])),
            },
            crc,
        ))
    }
}

fn header_crc(b: &[u8; RECORD_HEADER_LEN], salt: u64) -> u32 {
    let crc = crc32c::crc32c(&salt.to_le_bytes());
    crc32c::crc32c_append(crc, &b[8..])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kind() -> impl Strategy<Value = RecordKind> {
        prop_oneof![
            Just(RecordKind::Transaction),
            Just(RecordKind::CreateTable),
            Just(RecordKind::AlterSchema),
            Just(RecordKind::DropTable),
            Just(RecordKind::Part),
            Just(RecordKind::SyncMark),
            Just(RecordKind::Symbols),
        ]
    }

    proptest! {
        #[test]
        fn record_headers_round_trip_under_their_salt_only(
            kind in kind(),
            group_end: bool,
            body_len in 0u32..=(MAX_RECORD_BODY_LEN as u32),
            lsn: u64,
            durable_lsn: u64,
            prev_crc: u32,
            body_crc: u32,
            salt: u64,
            flip in 0usize..RECORD_HEADER_LEN * 8,
        ) {
            let h = RecordHeader { kind, group_end, body_len, lsn, durable_lsn, prev_crc, body_crc };
            let (bytes, crc) = h.encode(salt);
            prop_assert_eq!(RecordHeader::decode(&bytes, salt), Some((h, crc)));
            prop_assert_eq!(RecordHeader::decode(&bytes, salt ^ 1), None);
            let mut damaged = bytes;
            damaged[flip / 8] ^= 1 << (flip % 8);
            prop_assert_eq!(RecordHeader::decode(&damaged, salt), None);
        }

        #[test]
        fn file_headers_round_trip(first_lsn: u64, salt: u64, flip in 0usize..FILE_HEADER_LEN * 8) {
            let h = FileHeader { first_lsn, salt };
            let bytes = h.encode();
            prop_assert_eq!(FileHeader::decode(&bytes), Some(h));
            let mut damaged = bytes;
            damaged[flip / 8] ^= 1 << (flip % 8);
            prop_assert_eq!(FileHeader::decode(&damaged), None);
        }
    }

    #[test]
    fn a_body_length_past_the_limit_is_not_a_header() {
        let h = RecordHeader {
            kind: RecordKind::Part,
            group_end: true,
            body_len: MAX_RECORD_BODY_LEN as u32 + 1,
            lsn: 1,
            durable_lsn: 0,
            prev_crc: 0,
            body_crc: 0,
        };
        let (bytes, _) = h.encode(7);
        assert_eq!(RecordHeader::decode(&bytes, 7), None);
    }
}
