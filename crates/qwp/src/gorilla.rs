//! Gorilla delta-of-delta timestamps (SPEC §2.4).
//!
//! ```text
//! i64 LE first, i64 LE second (only as many as there are values, max 2),
//! then for each further value a delta-of-delta (dod), LSB first in each byte:
//!   0                      dod == 0                    1 bit
//!   1 0   + 7-bit signed   dod in [-64, 63]            9 bits
//!   1 1 0 + 9-bit signed   dod in [-256, 255]         12 bits
//!   1 1 1 0 + 12-bit       dod in [-2048, 2047]       16 bits
//!   1 1 1 1 + 32-bit       any other dod that fits i32 36 bits
//! padded with zero bits to a byte boundary.
//! ```
//!
//! Arithmetic wraps, on both sides, so any sequence whose dods fit `i32`
//! round-trips exactly. Decoding validates the whole stream up front
//! ([`GorillaTimestamps::decode`]) and then iterates without failing.

use std::borrow::Cow;

use crate::error::{DecodeErrorKind, DecodeResult};
use crate::wire::ByteReader;

/// A validated Gorilla-encoded run of `count` timestamps, borrowed from the
/// message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GorillaTimestamps<'a> {
    first: i64,
    second: i64,
    stream: Cow<'a, [u8]>,
    count: u32,
    /// The values, kept from the validating pass so readers copy them
    /// instead of decoding the stream again.
    values: Vec<i64>,
}

impl<'a> GorillaTimestamps<'a> {
    /// Reads the seeds and the bitstream of `count` values, checking that
    /// every value decodes within the message.
    pub(crate) fn decode(r: &mut ByteReader<'a>, count: u32) -> DecodeResult<Self> {
        let first = if count >= 1 {
            r.i64("gorilla seed")?
        } else {
            0
        };
        let second = if count >= 2 {
            r.i64("gorilla seed")?
        } else {
            0
        };
        let mut stream_len = 0usize;
        // Each further value takes at least one bit: a count the bytes
        // cannot hold fails below before `values` grows past them.
        let mut values = Vec::with_capacity((count as usize).min(r.remaining() * 8 + 2));
        values.extend([first, second].into_iter().take(count.min(2) as usize));
        if count >= 3 {
            let rest = r.rest();
            let mut bits = BitCursor::new(rest);
            let (mut prev, mut prev_delta) = (second, second.wrapping_sub(first));
            for _ in 2..count {
                let Some(dod) = bits.next_dod() else {
                    return Err(r.error(DecodeErrorKind::UnexpectedEnd {
                        what: "gorilla bitstream",
                        needed: (bits.pos as u64).div_ceil(8) + 1,
                        remaining: rest.len() as u64,
                    }));
                };
                prev_delta = prev_delta.wrapping_add(dod);
                prev = prev.wrapping_add(prev_delta);
                values.push(prev);
            }
            stream_len = bits.pos.div_ceil(8);
        }
        let stream = r.take(stream_len as u64, "gorilla bitstream")?;
        Ok(GorillaTimestamps {
            first,
            second,
            stream: Cow::Borrowed(stream),
            count,
            values,
        })
    }

    /// Number of timestamps.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether there are no timestamps.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The timestamps in order.
    pub fn iter(&self) -> GorillaIter<'_> {
        GorillaIter {
            bits: BitCursor::new(&self.stream),
            first: self.first,
            prev: self.second,
            prev_delta: self.second.wrapping_sub(self.first),
            index: 0,
            count: self.count,
        }
    }

    /// Appends the timestamps to `out` (one pass, no other allocation).
    pub fn decode_into(&self, out: &mut Vec<i64>) {
        out.extend_from_slice(&self.values);
    }

    /// The timestamps, decoded when the run was validated.
    pub fn values(&self) -> &[i64] {
        &self.values
    }

    /// The same run, owning its bytes.
    pub fn into_owned(self) -> GorillaTimestamps<'static> {
        GorillaTimestamps {
            first: self.first,
            second: self.second,
            stream: Cow::Owned(self.stream.into_owned()),
            count: self.count,
            values: self.values,
        }
    }
}

/// Iterator over [`GorillaTimestamps`].
#[derive(Debug, Clone)]
pub struct GorillaIter<'s> {
    bits: BitCursor<'s>,
    first: i64,
    prev: i64,
    prev_delta: i64,
    index: u32,
    count: u32,
}

impl Iterator for GorillaIter<'_> {
    type Item = i64;

    #[inline]
    fn next(&mut self) -> Option<i64> {
        if self.index >= self.count {
            return None;
        }
        self.index += 1;
        match self.index {
            1 => Some(self.first),
            2 => Some(self.prev),
            _ => {
                // Validated at decode; a short stream ends the iteration.
                let dod = self.bits.next_dod()?;
                let delta = self.prev_delta.wrapping_add(dod);
                self.prev = self.prev.wrapping_add(delta);
                self.prev_delta = delta;
                Some(self.prev)
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = (self.count - self.index) as usize;
        (n, Some(n))
    }
}

/// LSB-first bit cursor.
#[derive(Debug, Clone)]
struct BitCursor<'s> {
    bytes: &'s [u8],
    /// Next bit to read.
    pos: usize,
}

impl<'s> BitCursor<'s> {
    fn new(bytes: &'s [u8]) -> Self {
        BitCursor { bytes, pos: 0 }
    }

    /// Up to 64 bits starting at `pos`, zero past the end.
    #[inline]
    fn window(&self) -> u64 {
        let byte = self.pos / 8;
        let mut buf = [0u8; 8];
        if let Some(src) = self.bytes.get(byte..) {
            let n = src.len().min(8);
            buf[..n].copy_from_slice(&src[..n]);
        }
        u64::from_le_bytes(buf) >> (self.pos % 8)
    }

    /// Decodes one delta-of-delta, or `None` if the stream ends inside it.
    #[inline]
    fn next_dod(&mut self) -> Option<i64> {
        // The window holds at least 57 valid bits; the longest code is 36.
        let w = self.window();
        let (used, payload_bits, shift) = if w & 1 == 0 {
            (1, 0, 0)
        } else if w & 0b10 == 0 {
            (9, 7, 2)
        } else if w & 0b100 == 0 {
            (12, 9, 3)
        } else if w & 0b1000 == 0 {
            (16, 12, 4)
        } else {
            (36, 32, 4)
        };
        if self.pos + used > self.bytes.len() * 8 {
            return None;
        }
        self.pos += used;
        if payload_bits == 0 {
            return Some(0);
        }
        let raw = (w >> shift) & ((1u64 << payload_bits) - 1);
        let unused = 64 - payload_bits;
        Some(((raw << unused) as i64) >> unused)
    }
}

/// LSB-first bit writer.
struct BitWriter<'o> {
    out: &'o mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl BitWriter<'_> {
    #[inline]
    fn put(&mut self, value: u64, bits: u32) {
        debug_assert!(bits <= 36);
        let value = value & ((1u64 << bits) - 1);
        self.acc |= value << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    fn finish(self) {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
    }
}

/// Bits one delta-of-delta takes, or `None` when it does not fit `i32`.
#[inline]
fn dod_bits(dod: i64) -> Option<u32> {
    Some(match dod {
        0 => 1,
        -64..=63 => 9,
        -256..=255 => 12,
        -2048..=2047 => 16,
        _ if i32::try_from(dod).is_ok() => 36,
        _ => return None,
    })
}

fn dods(values: &[i64]) -> impl Iterator<Item = i64> + '_ {
    values.windows(3).map(|w| {
        let d1 = w[1].wrapping_sub(w[0]);
        let d2 = w[2].wrapping_sub(w[1]);
        d2.wrapping_sub(d1)
    })
}

/// Bytes the Gorilla encoding of `values` takes, or `None` when some
/// delta-of-delta does not fit `i32` (the raw encoding must be used).
pub fn gorilla_encoded_len(values: &[i64]) -> Option<usize> {
    let seeds = values.len().min(2) * 8;
    let mut bits = 0u64;
    for dod in dods(values) {
        bits += u64::from(dod_bits(dod)?);
    }
    Some(seeds + bits.div_ceil(8) as usize)
}

/// Whether an encoder should pick Gorilla for `values`: the reference
/// server's rule, at least 3 values and smaller than raw `i64`s.
pub fn prefers_gorilla(values: &[i64]) -> bool {
    values.len() >= 3 && gorilla_encoded_len(values).is_some_and(|len| len < values.len() * 8)
}

/// Appends the Gorilla encoding of `values` (seeds and bitstream, without
/// the discriminator byte). Returns `false` and writes nothing when some
/// delta-of-delta does not fit `i32`.
pub fn encode_gorilla(values: &[i64], out: &mut Vec<u8>) -> bool {
    if gorilla_encoded_len(values).is_none() {
        return false;
    }
    write_gorilla(values, out);
    true
}

/// Appends the Gorilla encoding of `values` when the encoder should pick
/// it ([`prefers_gorilla`]), measuring it once; `false` (nothing written)
/// otherwise.
pub fn encode_gorilla_if_smaller(values: &[i64], out: &mut Vec<u8>) -> bool {
    match gorilla_encoded_len(values) {
        Some(len) if values.len() >= 3 && len < values.len() * 8 => {
            out.reserve(len);
            write_gorilla(values, out);
            true
        }
        _ => false,
    }
}

/// The encoding, for values whose delta-of-deltas all fit `i32`.
fn write_gorilla(values: &[i64], out: &mut Vec<u8>) {
    for v in values.iter().take(2) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut w = BitWriter { out, acc: 0, n: 0 };
    for dod in dods(values) {
        match dod_bits(dod).expect("checked by gorilla_encoded_len") {
            1 => w.put(0, 1),
            9 => {
                w.put(0b01, 2);
                w.put(dod as u64, 7);
            }
            12 => {
                w.put(0b011, 3);
                w.put(dod as u64, 9);
            }
            16 => {
                w.put(0b0111, 4);
                w.put(dod as u64, 12);
            }
            _ => {
                w.put(0b1111, 4);
                w.put(dod as u64, 32);
            }
        }
    }
    w.finish();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_one_pass_choice_matches_the_rule() {
        let cases: [&[i64]; 6] = [
            &[],
            &[1, 2],
            &[10, 20, 30, 40, 50],
            &[0, i64::MAX, 0, i64::MAX],
            &[5, 1 << 40, 3, 1 << 41, 7],
            &[
                1_700_000_000_000_000,
                1_700_000_000_000_001,
                1_700_000_000_000_003,
            ],
        ];
        for values in cases {
            let mut one_pass = Vec::new();
            let chosen = encode_gorilla_if_smaller(values, &mut one_pass);
            assert_eq!(chosen, prefers_gorilla(values), "{values:?}");
            let mut two_pass = Vec::new();
            if chosen {
                assert!(encode_gorilla(values, &mut two_pass));
            }
            assert_eq!(one_pass, two_pass, "{values:?}");
        }
    }

    fn round_trip(values: &[i64]) -> Vec<u8> {
        let mut bytes = Vec::new();
        assert!(encode_gorilla(values, &mut bytes));
        assert_eq!(Some(bytes.len()), gorilla_encoded_len(values));
        let mut r = ByteReader::new(&bytes);
        let g = GorillaTimestamps::decode(&mut r, values.len() as u32).unwrap();
        assert!(r.is_empty(), "decoder consumed exactly the encoding");
        assert_eq!(g.iter().collect::<Vec<_>>(), values);
        bytes
    }

    #[test]
    fn each_bucket_and_its_edges() {
        for dod in [
            0i64,
            1,
            -1,
            63,
            -64,
            64,
            -65,
            255,
            -256,
            256,
            -257,
            2047,
            -2048,
            2048,
            -2049,
            i32::MAX as i64,
            i32::MIN as i64,
        ] {
            let base = 1_700_000_000_000_000i64;
            let values = [base, base + 1000, base + 2000 + dod, base + 3000 + 2 * dod];
            round_trip(&values);
        }
    }

    #[test]
    fn regular_series_is_one_bit_per_value() {
        let values: Vec<i64> = (0..1001).map(|i| 1_000_000 + i * 1000).collect();
        let bytes = round_trip(&values);
        assert_eq!(bytes.len(), 16 + 999usize.div_ceil(8));
        assert!(prefers_gorilla(&values));
    }

    #[test]
    fn short_runs_and_wrapping() {
        round_trip(&[]);
        round_trip(&[42]);
        round_trip(&[i64::MIN, i64::MAX]);
        round_trip(&[i64::MAX, i64::MIN, i64::MAX]);
        assert!(!prefers_gorilla(&[1, 2]));
    }

    #[test]
    fn dod_outside_i32_forces_raw() {
        let values = [0i64, 0, 1 << 40];
        assert_eq!(gorilla_encoded_len(&values), None);
        let mut out = Vec::new();
        assert!(!encode_gorilla(&values, &mut out));
        assert!(out.is_empty());
        assert!(!prefers_gorilla(&values));
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let values: Vec<i64> = (0..20).map(|i| i * i * 1000).collect();
        let mut bytes = Vec::new();
        assert!(encode_gorilla(&values, &mut bytes));
        for cut in 0..bytes.len() {
            let mut r = ByteReader::new(&bytes[..cut]);
            assert!(
                GorillaTimestamps::decode(&mut r, 20).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn explicit_bits() {
        // values 0, 10, 20, 31: dods 0 then 1.
        let mut out = Vec::new();
        assert!(encode_gorilla(&[0, 10, 20, 31], &mut out));
        // bit stream: '0' then '1','0', then 7-bit 1 = 1000000 (LSB first)
        // bits: 0,1,0,1,0,0,0,0, 0,0 -> byte0 = 0b0000_1010, byte1 = 0
        assert_eq!(&out[16..], &[0b0000_1010, 0]);
    }
}
