//! QWP null bitmaps (SPEC §2.2) and their conversion to and from Arrow
//! validity bitmaps.
//!
//! A QWP bitmap has `ceil(rows/8)` bytes, LSB first, and a set bit means
//! NULL. Arrow's validity is the same shape with the meaning inverted (set
//! means valid), so conversion is a word-at-a-time NOT. Padding bits past
//! `rows` are ignored when reading and written as zero.

use std::borrow::Cow;

use crate::error::DecodeResult;
use crate::wire::ByteReader;

/// A column's null bitmap: which of its `rows` rows are NULL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NullBitmap<'a> {
    bytes: Cow<'a, [u8]>,
    rows: u32,
    null_count: u32,
}

impl<'a> NullBitmap<'a> {
    /// Reads a bitmap for `rows` rows.
    pub(crate) fn decode(r: &mut ByteReader<'a>, rows: u32) -> DecodeResult<Self> {
        let bytes = r.take(bitmap_len(rows) as u64, "null bitmap")?;
        let null_count = count_set_bits(bytes, rows as usize) as u32;
        Ok(NullBitmap {
            bytes: Cow::Borrowed(bytes),
            rows,
            null_count,
        })
    }

    /// A bitmap over `bytes` (QWP polarity: set = NULL). Bits past `rows` are
    /// ignored. Returns `None` when `bytes` is shorter than `ceil(rows/8)`.
    pub fn try_new(bytes: Cow<'a, [u8]>, rows: u32) -> Option<Self> {
        if bytes.len() < bitmap_len(rows) {
            return None;
        }
        let null_count = count_set_bits(&bytes, rows as usize) as u32;
        Some(NullBitmap {
            bytes,
            rows,
            null_count,
        })
    }

    /// A bitmap from one flag per row (`true` = NULL).
    pub fn from_nulls(nulls: impl IntoIterator<Item = bool>) -> NullBitmap<'static> {
        let mut bytes = Vec::new();
        let mut rows = 0u32;
        let mut null_count = 0u32;
        for is_null in nulls {
            if rows.is_multiple_of(8) {
                bytes.push(0);
            }
            if is_null {
                *bytes.last_mut().expect("pushed above") |= 1 << (rows % 8);
                null_count += 1;
            }
            rows += 1;
        }
        NullBitmap {
            bytes: Cow::Owned(bytes),
            rows,
            null_count,
        }
    }

    /// The raw bitmap bytes (`ceil(rows/8)` of them may be followed by more
    /// when built by [`NullBitmap::try_new`]).
    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..bitmap_len(self.rows)]
    }

    /// Rows covered.
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Rows that are NULL.
    pub fn null_count(&self) -> u32 {
        self.null_count
    }

    /// Whether `row` is NULL. Rows past the end are reported as not NULL.
    pub fn is_null(&self, row: u32) -> bool {
        row < self.rows && self.bytes[(row / 8) as usize] & (1 << (row % 8)) != 0
    }

    /// Appends the Arrow validity bitmap (set = valid) for these rows to
    /// `out`.
    pub fn to_validity(&self, out: &mut Vec<u8>) {
        validity_from_null_bitmap(self.bytes(), self.rows as usize, out);
    }

    /// Writes the bitmap bytes with zeroed padding.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let bytes = self.bytes();
        out.extend_from_slice(bytes);
        let tail = self.rows % 8;
        if tail != 0 {
            *out.last_mut().expect("rows % 8 != 0 implies a byte") &= (1u8 << tail) - 1;
        }
    }

    /// The same bitmap, owning its bytes.
    pub fn into_owned(self) -> NullBitmap<'static> {
        NullBitmap {
            bytes: Cow::Owned(self.bytes.into_owned()),
            rows: self.rows,
            null_count: self.null_count,
        }
    }
}

/// Bytes in a bitmap of `rows` bits.
pub const fn bitmap_len(rows: u32) -> usize {
    (rows as usize).div_ceil(8)
}

/// Counts the set bits among the first `bits` bits of `bytes`.
pub fn count_set_bits(bytes: &[u8], bits: usize) -> usize {
    let full = bits / 8;
    let mut count = 0usize;
    let mut chunks = bytes[..full].chunks_exact(8);
    for c in &mut chunks {
        count += u64::from_le_bytes(c.try_into().expect("chunk of 8")).count_ones() as usize;
    }
    for b in chunks.remainder() {
        count += b.count_ones() as usize;
    }
    let tail = bits % 8;
    if tail != 0 {
        count += (bytes[full] & ((1u8 << tail) - 1)).count_ones() as usize;
    }
    count
}

/// Appends to `out` the Arrow validity bitmap (set = valid) for a QWP null
/// bitmap (set = NULL) of `rows` rows: one NOT per 64-bit word, padding
/// cleared.
pub fn validity_from_null_bitmap(null_bitmap: &[u8], rows: usize, out: &mut Vec<u8>) {
    let len = rows.div_ceil(8);
    let src = &null_bitmap[..len];
    out.reserve(len);
    let mut chunks = src.chunks_exact(8);
    for c in &mut chunks {
        let w = !u64::from_le_bytes(c.try_into().expect("chunk of 8"));
        out.extend_from_slice(&w.to_le_bytes());
    }
    out.extend(chunks.remainder().iter().map(|b| !b));
    let tail = rows % 8;
    if tail != 0 {
        *out.last_mut().expect("len > 0") &= (1u8 << tail) - 1;
    }
}

/// Appends to `out` the QWP null bitmap for `rows` rows of an Arrow
/// validity bitmap that starts at bit `offset` of `validity`, and returns the
/// NULL count. Byte-aligned offsets take the word-at-a-time path.
pub fn null_bitmap_from_validity(
    validity: &[u8],
    offset: usize,
    rows: usize,
    out: &mut Vec<u8>,
) -> usize {
    let len = rows.div_ceil(8);
    let start = out.len();
    out.reserve(len);
    if offset.is_multiple_of(8) {
        let src = &validity[offset / 8..offset / 8 + len];
        let mut chunks = src.chunks_exact(8);
        for c in &mut chunks {
            let w = !u64::from_le_bytes(c.try_into().expect("chunk of 8"));
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend(chunks.remainder().iter().map(|b| !b));
    } else {
        out.resize(start + len, 0);
        for row in 0..rows {
            let bit = offset + row;
            if validity[bit / 8] & (1 << (bit % 8)) == 0 {
                out[start + row / 8] |= 1 << (row % 8);
            }
        }
    }
    let tail = rows % 8;
    if tail != 0 {
        out[start + len - 1] &= (1u8 << tail) - 1;
    }
    count_set_bits(&out[start..], rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_example_ten_rows() {
        // SPEC §2.2: 10 rows, rows 0, 2, 9 null => 05 02.
        let nulls = (0..10).map(|r| [0, 2, 9].contains(&r));
        let b = NullBitmap::from_nulls(nulls);
        assert_eq!(b.bytes(), [0x05, 0x02]);
        assert_eq!(b.null_count(), 3);
        assert!(b.is_null(9) && !b.is_null(8) && !b.is_null(10));
    }

    #[test]
    fn padding_bits_are_ignored_and_cleared() {
        let b = NullBitmap::try_new(Cow::Borrowed(&[0xFF][..]), 3).unwrap();
        assert_eq!(b.null_count(), 3);
        let mut out = Vec::new();
        b.encode(&mut out);
        assert_eq!(out, [0x07]);
        assert!(NullBitmap::try_new(Cow::Borrowed(&[0xFF][..]), 9).is_none());
    }

    #[test]
    fn validity_conversion_both_ways() {
        for rows in [0usize, 1, 7, 8, 9, 63, 64, 65, 130] {
            let nulls: Vec<bool> = (0..rows).map(|r| (r * 7 + 3) % 5 == 0).collect();
            let qwp = NullBitmap::from_nulls(nulls.iter().copied());
            let mut validity = Vec::new();
            validity_from_null_bitmap(qwp.bytes(), rows, &mut validity);
            for (r, &n) in nulls.iter().enumerate() {
                assert_eq!(
                    validity[r / 8] & (1 << (r % 8)) == 0,
                    n,
                    "rows={rows} r={r}"
                );
            }
            let mut back = Vec::new();
            let count = null_bitmap_from_validity(&validity, 0, rows, &mut back);
            assert_eq!(back, qwp.bytes());
            assert_eq!(count, nulls.iter().filter(|n| **n).count());
        }
    }

    #[test]
    fn unaligned_validity_offset() {
        // validity bits: offset 3, rows 10; valid unless row % 3 == 0.
        let rows = 10;
        let mut validity = vec![0u8; 3];
        for r in 0..rows {
            if r % 3 != 0 {
                let bit = 3 + r;
                validity[bit / 8] |= 1 << (bit % 8);
            }
        }
        let mut out = Vec::new();
        let count = null_bitmap_from_validity(&validity, 3, rows, &mut out);
        let expected = NullBitmap::from_nulls((0..rows).map(|r| r % 3 == 0));
        assert_eq!(out, expected.bytes());
        assert_eq!(count, 4);
    }
}
