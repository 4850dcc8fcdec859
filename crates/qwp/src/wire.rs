//! Primitive reads and writes: little-endian integers, LEB128 varints and
//! length-prefixed strings (SPEC §1.5).
//!
//! [`ByteReader`] is the only way decoders touch bytes: every read checks the
//! length against what remains and reports the field it was reading, so no
//! decoder indexes a slice by an untrusted number. Writers append to a
//! `Vec<u8>` and cannot fail.

use crate::error::{DecodeError, DecodeErrorKind, DecodeResult};

/// Longest LEB128 encoding of a `u64`.
pub const MAX_VARINT_LEN: usize = 10;

/// A cursor over one complete message (or a region of it).
#[derive(Debug, Clone)]
pub(crate) struct ByteReader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        ByteReader { buf, pos: 0 }
    }

    /// Offset of the next byte from the start of the buffer.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.remaining() == 0
    }

    /// The unread bytes, without consuming them.
    pub(crate) fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    /// An error of `kind` at the current position.
    pub(crate) fn error(&self, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(kind, self.pos as u64)
    }

    /// An error of `kind` at byte `offset` of this buffer.
    pub(crate) fn error_at(&self, kind: DecodeErrorKind, offset: usize) -> DecodeError {
        DecodeError::new(kind, offset as u64)
    }

    fn short(&self, what: &'static str, needed: u64) -> DecodeError {
        self.error(DecodeErrorKind::UnexpectedEnd {
            what,
            needed,
            remaining: self.remaining() as u64,
        })
    }

    /// Takes `n` bytes; `n` is untrusted and may be anything.
    pub(crate) fn take(&mut self, n: u64, what: &'static str) -> DecodeResult<&'a [u8]> {
        if n > self.remaining() as u64 {
            return Err(self.short(what, n));
        }
        let n = n as usize;
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Takes `count × width` bytes, checking the product for overflow.
    pub(crate) fn take_array(
        &mut self,
        count: u64,
        width: u64,
        what: &'static str,
    ) -> DecodeResult<&'a [u8]> {
        match count.checked_mul(width) {
            Some(n) => self.take(n, what),
            None => Err(self.short(what, u64::MAX)),
        }
    }

    fn take_const<const N: usize>(&mut self, what: &'static str) -> DecodeResult<[u8; N]> {
        let bytes = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(bytes);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> DecodeResult<u8> {
        Ok(self.take_const::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> DecodeResult<u16> {
        Ok(u16::from_le_bytes(self.take_const(what)?))
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> DecodeResult<u32> {
        Ok(u32::from_le_bytes(self.take_const(what)?))
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> DecodeResult<u64> {
        Ok(u64::from_le_bytes(self.take_const(what)?))
    }

    pub(crate) fn i64(&mut self, what: &'static str) -> DecodeResult<i64> {
        Ok(i64::from_le_bytes(self.take_const(what)?))
    }

    /// An unsigned LEB128 varint of at most 10 bytes; the 10th byte may only
    /// contribute the lowest bit (SPEC §1.5).
    pub(crate) fn varint(&mut self, what: &'static str) -> DecodeResult<u64> {
        match decode_varint(self.rest()) {
            VarintResult::Ok(value, len) => {
                self.pos += len;
                Ok(value)
            }
            VarintResult::Short => Err(self.short(what, self.remaining() as u64 + 1)),
            VarintResult::Overflow => Err(self.error(DecodeErrorKind::VarintOverflow { what })),
        }
    }

    /// A varint that must not exceed `limit`.
    pub(crate) fn varint_max(&mut self, what: &'static str, limit: u64) -> DecodeResult<u64> {
        let start = self.pos;
        let value = self.varint(what)?;
        if value > limit {
            return Err(self.error_at(DecodeErrorKind::LimitExceeded { what, value, limit }, start));
        }
        Ok(value)
    }

    /// A `varint length + UTF-8` string of at most `max_len` bytes.
    pub(crate) fn string(&mut self, what: &'static str, max_len: u64) -> DecodeResult<&'a str> {
        let len = self.varint_max(what, max_len)?;
        self.utf8(len, what)
    }

    /// A `u16 LE length + UTF-8` string of at most `max_len` bytes.
    pub(crate) fn string_u16(&mut self, what: &'static str, max_len: u64) -> DecodeResult<&'a str> {
        let start = self.pos;
        let len = u64::from(self.u16(what)?);
        if len > max_len {
            return Err(self.error_at(
                DecodeErrorKind::LimitExceeded {
                    what,
                    value: len,
                    limit: max_len,
                },
                start,
            ));
        }
        self.utf8(len, what)
    }

    fn utf8(&mut self, len: u64, what: &'static str) -> DecodeResult<&'a str> {
        let start = self.pos;
        let bytes = self.take(len, what)?;
        std::str::from_utf8(bytes)
            .map_err(|_| self.error_at(DecodeErrorKind::InvalidUtf8 { what }, start))
    }

    /// Fails unless every byte has been read.
    pub(crate) fn finish(&self, what: &'static str) -> DecodeResult<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(self.error(DecodeErrorKind::TrailingBytes {
                what,
                count: self.remaining() as u64,
            }))
        }
    }
}

/// Outcome of reading one varint from a byte slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VarintResult {
    /// The value and the number of bytes it used.
    Ok(u64, usize),
    /// The slice ended inside the varint.
    Short,
    /// More than 10 bytes, or bits beyond 64.
    Overflow,
}

/// Reads one LEB128 varint from the start of `bytes`.
#[inline]
pub(crate) fn decode_varint(bytes: &[u8]) -> VarintResult {
    // Fast path: one byte (ids < 128, short strings, small counts).
    if let Some(&b) = bytes.first()
        && b < 0x80
    {
        return VarintResult::Ok(u64::from(b), 1);
    }
    let mut value: u64 = 0;
    for (i, &b) in bytes.iter().enumerate().take(MAX_VARINT_LEN) {
        let low = u64::from(b & 0x7F);
        if i == MAX_VARINT_LEN - 1 && (b & 0x80 != 0 || low > 1) {
            return VarintResult::Overflow;
        }
        value |= low << (7 * i);
        if b & 0x80 == 0 {
            return VarintResult::Ok(value, i + 1);
        }
    }
    if bytes.len() >= MAX_VARINT_LEN {
        VarintResult::Overflow
    } else {
        VarintResult::Short
    }
}

/// Appends `value` as an unsigned LEB128 varint.
#[inline]
pub fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// The number of bytes `value` takes as a varint.
pub const fn varint_len(value: u64) -> usize {
    let bits = 64 - (value | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends `varint len + bytes`.
pub fn put_string(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// Appends a `u16 LE length + bytes` string; the caller keeps `s` within
/// `u16::MAX` bytes (checked by the message encoders that use it).
pub(crate) fn put_string_u16(out: &mut Vec<u8>, s: &str) {
    debug_assert!(s.len() <= usize::from(u16::MAX));
    out.extend_from_slice(&(s.len() as u16).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// The longest prefix of `s` that fits in `max` bytes and ends on a char
/// boundary.
pub(crate) fn truncate_utf8(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, v);
        out
    }

    #[test]
    fn spec_varint_examples() {
        // SPEC §1.5.
        for (v, bytes) in [
            (0u64, &[0x00u8][..]),
            (127, &[0x7F]),
            (128, &[0x80, 0x01]),
            (300, &[0xAC, 0x02]),
            (16384, &[0x80, 0x80, 0x01]),
            (65536, &[0x80, 0x80, 0x04]),
        ] {
            assert_eq!(enc(v), bytes, "{v}");
            assert_eq!(decode_varint(bytes), VarintResult::Ok(v, bytes.len()));
            assert_eq!(varint_len(v), bytes.len());
        }
    }

    #[test]
    fn varint_edges() {
        let max = enc(u64::MAX);
        assert_eq!(max.len(), 10);
        assert_eq!(*max.last().unwrap(), 0x01);
        assert_eq!(decode_varint(&max), VarintResult::Ok(u64::MAX, 10));
        assert_eq!(varint_len(u64::MAX), 10);
        // 10th byte contributing more than one bit overflows.
        let mut bad = max.clone();
        bad[9] = 0x02;
        assert_eq!(decode_varint(&bad), VarintResult::Overflow);
        // 11 bytes.
        let eleven = [0x80u8; 10]
            .iter()
            .copied()
            .chain([0x00])
            .collect::<Vec<_>>();
        assert_eq!(decode_varint(&eleven), VarintResult::Overflow);
        assert_eq!(decode_varint(&[0x80, 0x80]), VarintResult::Short);
        assert_eq!(decode_varint(&[]), VarintResult::Short);
        // Non-minimal encodings are accepted (the official clients never
        // send them, but nothing forbids them).
        assert_eq!(decode_varint(&[0x80, 0x00]), VarintResult::Ok(0, 2));
    }

    #[test]
    fn every_varint_length_round_trips() {
        for shift in 0..64 {
            for v in [(1u64 << shift) - 1, 1u64 << shift, (1u64 << shift) + 1] {
                let bytes = enc(v);
                assert_eq!(decode_varint(&bytes), VarintResult::Ok(v, bytes.len()));
                assert_eq!(varint_len(v), bytes.len());
            }
        }
    }

    #[test]
    fn reader_reports_field_and_remaining() {
        let mut r = ByteReader::new(&[1, 2, 3]);
        assert_eq!(r.u16("x").unwrap(), 0x0201);
        let e = r.u32("payload_length").unwrap_err();
        assert_eq!(
            e.kind(),
            DecodeErrorKind::UnexpectedEnd {
                what: "payload_length",
                needed: 4,
                remaining: 1
            }
        );
        assert_eq!(e.offset(), 2);
        assert!(r.take(u64::MAX, "huge").is_err());
        assert!(r.take_array(u64::MAX, 8, "huge").is_err());
        assert_eq!(r.remaining(), 1);
    }

    #[test]
    fn strings_check_limit_and_utf8() {
        let mut r = ByteReader::new(&[0x02, b'h', b'i', 0x01, 0xFF]);
        assert_eq!(r.string("name", 127).unwrap(), "hi");
        assert_eq!(
            r.string("name", 127).unwrap_err().kind(),
            DecodeErrorKind::InvalidUtf8 { what: "name" }
        );
        let mut r = ByteReader::new(&[0x80, 0x01]);
        assert!(matches!(
            r.string("name", 127).unwrap_err().kind(),
            DecodeErrorKind::LimitExceeded {
                value: 128,
                limit: 127,
                ..
            }
        ));
    }

    #[test]
    fn truncate_respects_char_boundaries() {
        assert_eq!(truncate_utf8("héllo", 2), "h");
        assert_eq!(truncate_utf8("héllo", 3), "hé");
        assert_eq!(truncate_utf8("abc", 10), "abc");
    }
}
