//! The 12-byte message header (SPEC §1.6), carried by every ingress client
//! message and every egress server message.
//!
//! ```text
//! offset  size  field           value
//! 0       4     magic           "QWP1" (51 57 50 31)
//! 4       1     version         negotiated version, 1
//! 5       1     flags           Flags (bits below)
//! 6       2     table_count     u16 LE
//! 8       4     payload_length  u32 LE, = frame length - 12
//! ```

use crate::error::{DecodeErrorKind, DecodeResult};
use crate::wire::ByteReader;

/// `"QWP1"`.
pub const MAGIC: [u8; 4] = *b"QWP1";
/// The only protocol version.
pub const VERSION: u8 = 1;
/// Size of the header in bytes.
pub const HEADER_LEN: usize = 12;

/// Header flag bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Flags(pub u8);

impl Flags {
    /// Ingress: append but do not commit; a later frame without it commits.
    pub const DEFER_COMMIT: u8 = 0x01;
    /// Timestamp columns carry an encoding byte (raw or Gorilla).
    pub const GORILLA: u8 = 0x04;
    /// The payload starts with a delta symbol dictionary; SYMBOL columns
    /// carry connection-global ids.
    pub const DELTA_SYMBOL_DICT: u8 = 0x08;
    /// Egress: the batch body after the prelude is one zstd frame.
    pub const ZSTD: u8 = 0x10;

    /// Bits an ingress message may set.
    pub const INGRESS_ALLOWED: u8 = Self::DEFER_COMMIT | Self::GORILLA | Self::DELTA_SYMBOL_DICT;
    /// Bits an egress RESULT_BATCH may set.
    pub const EGRESS_ALLOWED: u8 = Self::GORILLA | Self::DELTA_SYMBOL_DICT | Self::ZSTD;

    /// Whether every bit of `mask` is set.
    pub const fn contains(self, mask: u8) -> bool {
        self.0 & mask == mask
    }

    /// `FLAG_DEFER_COMMIT`.
    pub const fn defer_commit(self) -> bool {
        self.contains(Self::DEFER_COMMIT)
    }

    /// `FLAG_GORILLA`.
    pub const fn gorilla(self) -> bool {
        self.contains(Self::GORILLA)
    }

    /// `FLAG_DELTA_SYMBOL_DICT`.
    pub const fn delta_symbol_dict(self) -> bool {
        self.contains(Self::DELTA_SYMBOL_DICT)
    }

    /// `FLAG_ZSTD`.
    pub const fn zstd(self) -> bool {
        self.contains(Self::ZSTD)
    }

    /// These flags with `mask` set or cleared.
    pub const fn with(self, mask: u8, on: bool) -> Flags {
        if on {
            Flags(self.0 | mask)
        } else {
            Flags(self.0 & !mask)
        }
    }
}

/// A decoded message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MessageHeader {
    /// Version byte.
    pub version: u8,
    /// Flag bits.
    pub flags: Flags,
    /// Table blocks (ingress) or 1 for RESULT_BATCH, 0 otherwise (egress).
    pub table_count: u16,
    /// Bytes after the header.
    pub payload_len: u32,
}

impl MessageHeader {
    /// Reads and checks the header of a complete message: magic, version,
    /// flags within `allowed_flags`, and a payload length equal to the rest
    /// of the frame. Returns the header and the payload.
    pub(crate) fn decode(frame: &[u8], allowed_flags: u8) -> DecodeResult<(MessageHeader, &[u8])> {
        let mut r = ByteReader::new(frame);
        let magic: [u8; 4] = r
            .take(4, "message header")?
            .try_into()
            .expect("take(4) yields 4 bytes");
        if magic != MAGIC {
            return Err(r.error_at(DecodeErrorKind::BadMagic(magic), 0));
        }
        let version = r.u8("message header")?;
        if version != VERSION {
            return Err(r.error_at(
                DecodeErrorKind::UnsupportedVersion {
                    got: version,
                    expected: VERSION,
                },
                4,
            ));
        }
        let flags = r.u8("message header")?;
        if flags & !allowed_flags != 0 {
            return Err(r.error_at(
                DecodeErrorKind::ReservedFlags {
                    flags: flags & !allowed_flags,
                },
                5,
            ));
        }
        let table_count = r.u16("message header")?;
        let payload_len = r.u32("message header")?;
        if u64::from(payload_len) != r.remaining() as u64 {
            return Err(r.error_at(
                DecodeErrorKind::PayloadLengthMismatch {
                    declared: payload_len,
                    actual: r.remaining() as u64,
                },
                8,
            ));
        }
        Ok((
            MessageHeader {
                version,
                flags: Flags(flags),
                table_count,
                payload_len,
            },
            r.rest(),
        ))
    }

    /// Writes the header.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&MAGIC);
        out.push(self.version);
        out.push(self.flags.0);
        out.extend_from_slice(&self.table_count.to_le_bytes());
        out.extend_from_slice(&self.payload_len.to_le_bytes());
    }
}

/// Starts a message in `out`: writes a header with a zero payload length and
/// returns the header's offset, for [`finish_message`].
pub(crate) fn begin_message(out: &mut Vec<u8>, flags: Flags, table_count: u16) -> usize {
    let start = out.len();
    MessageHeader {
        version: VERSION,
        flags,
        table_count,
        payload_len: 0,
    }
    .encode(out);
    start
}

/// Patches the payload length of the message begun at `start`. Returns the
/// payload length, or `None` when it does not fit `u32`.
pub(crate) fn finish_message(out: &mut [u8], start: usize) -> Option<u32> {
    let payload = out.len() - start - HEADER_LEN;
    let payload = u32::try_from(payload).ok()?;
    out[start + 8..start + 12].copy_from_slice(&payload.to_le_bytes());
    Some(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_checks() {
        let mut out = Vec::new();
        let start = begin_message(&mut out, Flags(Flags::DELTA_SYMBOL_DICT), 1);
        out.extend_from_slice(&[0, 0]);
        assert_eq!(finish_message(&mut out, start), Some(2));
        assert_eq!(out, [0x51, 0x57, 0x50, 0x31, 1, 8, 1, 0, 2, 0, 0, 0, 0, 0]);
        let (h, payload) = MessageHeader::decode(&out, Flags::INGRESS_ALLOWED).unwrap();
        assert_eq!(h.table_count, 1);
        assert!(h.flags.delta_symbol_dict());
        assert_eq!(payload, [0, 0]);

        let mut bad = out.clone();
        bad[5] = 0x02;
        assert_eq!(
            MessageHeader::decode(&bad, Flags::INGRESS_ALLOWED)
                .unwrap_err()
                .kind(),
            DecodeErrorKind::ReservedFlags { flags: 0x02 }
        );
        bad[5] = Flags::ZSTD;
        assert!(MessageHeader::decode(&bad, Flags::INGRESS_ALLOWED).is_err());
        assert!(MessageHeader::decode(&bad, Flags::EGRESS_ALLOWED).is_ok());

        let mut bad = out.clone();
        bad[4] = 2;
        assert_eq!(
            MessageHeader::decode(&bad, Flags::INGRESS_ALLOWED)
                .unwrap_err()
                .kind(),
            DecodeErrorKind::UnsupportedVersion {
                got: 2,
                expected: 1
            }
        );
        let mut bad = out.clone();
        bad[0] = b'X';
        assert!(matches!(
            MessageHeader::decode(&bad, Flags::INGRESS_ALLOWED)
                .unwrap_err()
                .kind(),
            DecodeErrorKind::BadMagic(_)
        ));
        let long = [&out[..], &[0]].concat();
        assert_eq!(
            MessageHeader::decode(&long, Flags::INGRESS_ALLOWED)
                .unwrap_err()
                .kind(),
            DecodeErrorKind::PayloadLengthMismatch {
                declared: 2,
                actual: 3
            }
        );
    }
}
