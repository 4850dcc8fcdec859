//! Where tokens may end: a bitmask of the bytes that can stop a name, a
//! value or a timestamp, 64 input bytes at a time.
//!
//! The parser asks [`Stops::next`] for the next such byte instead of
//! testing bytes one by one: a block's mask is computed once (SSE2
//! compares and `pmovmskb` on x86-64; elsewhere a compare of each byte,
//! which the compiler vectorises, packed to bits eight at a time) and
//! then each stop costs a count of trailing zeros. The marked bytes are a superset of every context's ends: control bytes and the
//! space (`<= 0x20`), `,`, `=`, `\\` and `"`; a context that meets one
//! that does not end it (an `=` inside a value, a tab inside a name) just
//! asks for the next. Binary values are skipped by their length, so the
//! parser may jump anywhere: a position outside the cached block starts a
//! new block there.
//!
//! What it must not do: decide what a byte means (the parser does).

/// Whether `b` is marked (see the module docs).
#[inline(always)]
fn marked(b: u8) -> bool {
    b <= b' ' || b == b',' || b == b'=' || b == b'\\' || b == b'"'
}

/// [`block_mask_scalar`] with sixteen bytes per SSE2 compare and one
/// `pmovmskb` each: 5% fewer instructions for the whole parse, and about
/// a sixth faster (best of 6 interleaved runs of TSBS lines, 2-core VM,
/// 2026-12-03).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
fn block_mask_sse2(block: &[u8; 64]) -> u64 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set_epi64x,
        _mm_set1_epi8,
    };
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&block[at..at + 8]);
        i64::from_le_bytes(w)
    };
    let space = _mm_set1_epi8(0x20);
    let [comma, equals, backslash, quote] =
        [b',', b'=', b'\\', b'"'].map(|c| _mm_set1_epi8(c as i8));
    let mut mask = 0u64;
    for k in 0..4 {
        let v = _mm_set_epi64x(word(16 * k + 8), word(16 * k));
        // `b <= 0x20` as `min(b, 0x20) == b` (unsigned).
        let low = _mm_cmpeq_epi8(_mm_min_epu8(v, space), v);
        let marks = _mm_or_si128(
            _mm_or_si128(low, _mm_cmpeq_epi8(v, comma)),
            _mm_or_si128(
                _mm_or_si128(_mm_cmpeq_epi8(v, equals), _mm_cmpeq_epi8(v, backslash)),
                _mm_cmpeq_epi8(v, quote),
            ),
        );
        // One bit per byte in the low 16 bits.
        let bits = _mm_movemask_epi8(marks) as u32 & 0xffff;
        mask |= u64::from(bits) << (16 * k);
    }
    mask
}

/// The mask of marked bytes in `block` (bit `i` for byte `i`).
#[inline(always)]
fn block_mask(block: &[u8; 64]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE2 is part of the x86-64 baseline (every x86-64 CPU has
    // it), so the target feature `block_mask_sse2` enables is present.
    let mask = unsafe { block_mask_sse2(block) };
    #[cfg(not(target_arch = "x86_64"))]
    let mask = block_mask_scalar(block);
    mask
}

/// [`block_mask`] one byte at a time (the portable path, and the oracle
/// of the SSE2 one in the tests).
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
#[inline(always)]
fn block_mask_scalar(block: &[u8; 64]) -> u64 {
    // One byte of 0 or 1 per input byte (vectorised), then each eight
    // bytes' low bits gathered into one byte by a multiply: byte `i`'s bit
    // lands at bit 56 + i and no two partial products meet.
    let mut flags = [0u8; 64];
    for (f, &b) in flags.iter_mut().zip(block) {
        *f = u8::from(marked(b));
    }
    let mut mask = 0u64;
    for (k, eight) in flags.chunks_exact(8).enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(eight);
        let bits = u64::from_le_bytes(w).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        mask |= bits << (8 * k);
    }
    mask
}

/// The next marked byte of one input, with the mask of the block it is in
/// kept for the next question.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stops {
    /// Where the cached block starts.
    base: usize,
    /// Its marked bytes.
    mask: u64,
    /// Whether `mask` holds a block (a fresh `Stops` holds none).
    valid: bool,
}

impl Stops {
    /// The position of the first marked byte of `input` at or after
    /// `from`, or `input.len()` if there is none.
    #[inline(always)]
    pub(crate) fn next(&mut self, input: &[u8], from: usize) -> usize {
        let offset = from.wrapping_sub(self.base);
        if !self.valid || offset >= 64 {
            self.base = from;
            self.mask = Self::mask_at(input, from);
            self.valid = true;
        }
        // Bits before `from` are left out, not cleared: the parser may
        // step back inside the block.
        let mut left = self.mask & (!0u64 << from.wrapping_sub(self.base));
        while left == 0 {
            self.base += 64;
            if self.base >= input.len() {
                self.valid = false;
                return input.len();
            }
            self.mask = Self::mask_at(input, self.base);
            left = self.mask;
        }
        self.base + left.trailing_zeros() as usize
    }

    /// A forward walk over the marked bytes of `input` from `from`,
    /// starting from this block if it holds `from`.
    #[inline(always)]
    pub(crate) fn walk(&self, input: &[u8], from: usize) -> Walk {
        let offset = from.wrapping_sub(self.base);
        match self.valid && offset < 64 {
            true => Walk {
                base: self.base,
                block: self.mask,
                left: self.mask & (!0u64 << offset),
            },
            false => {
                let block = Self::mask_at(input, from);
                Walk {
                    base: from,
                    block,
                    left: block,
                }
            }
        }
    }

    /// The block a walk ended in, kept for the next question.
    #[inline(always)]
    pub(crate) fn keep(&mut self, walk: &Walk, input: &[u8]) {
        self.base = walk.base;
        self.mask = walk.block;
        self.valid = walk.base < input.len();
    }

    /// Where the cached block starts, if one is cached.
    #[cfg(test)]
    pub(crate) fn block_start(&self) -> Option<usize> {
        self.valid.then_some(self.base)
    }

    /// The mask of the 64 bytes from `base` (bytes past the input's end
    /// are unmarked). Not inlined: its vector constants would be loaded on
    /// every entry of every caller, most of which never compute a block.
    #[inline(never)]
    fn mask_at(input: &[u8], base: usize) -> u64 {
        match input.get(base..).and_then(<[u8]>::first_chunk::<64>) {
            Some(block) => block_mask(block),
            None => {
                let mut b = [b'a'; 64];
                let rest = input.get(base..).unwrap_or_default();
                b[..rest.len()].copy_from_slice(rest);
                block_mask(&b)
            }
        }
    }
}

/// Marked bytes in order, each given once: a stop costs a count of
/// trailing zeros and clearing that bit (see [`Stops::walk`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Walk {
    /// Where the block starts.
    base: usize,
    /// Its marked bytes.
    block: u64,
    /// Those not yet given.
    left: u64,
}

impl Walk {
    /// The next marked byte, or `None` past the input's end.
    #[inline(always)]
    pub(crate) fn next(&mut self, input: &[u8]) -> Option<usize> {
        while self.left == 0 {
            self.base += 64;
            if self.base >= input.len() {
                return None;
            }
            self.block = Stops::mask_at(input, self.base);
            self.left = self.block;
        }
        let at = self.base + self.left.trailing_zeros() as usize;
        self.left &= self.left - 1;
        Some(at)
    }

    /// Skips the marked bytes before `to` (at or after the last given
    /// one: a binary value's bytes).
    #[inline(always)]
    pub(crate) fn skip_to(&mut self, input: &[u8], to: usize) {
        let offset = to - self.base;
        match offset < 64 {
            true => self.left = self.block & (!0u64 << offset),
            false => {
                self.base = to;
                self.block = Stops::mask_at(input, to);
                self.left = self.block;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_is_marked_as_the_rule_says() {
        for b in 0..=255u8 {
            let mut block = [b'a'; 64];
            block[13] = b;
            let want = matches!(b, 0..=0x20 | b',' | b'=' | b'\\' | b'"');
            assert_eq!(block_mask(&block) == 1 << 13, want, "{b:#x}");
            assert_eq!(block_mask(&block) == 0, !want, "{b:#x}");
        }
    }

    proptest::proptest! {
        #[test]
        fn the_block_mask_is_the_scalar_one(
            bytes in proptest::collection::vec(proptest::sample::select(b"ab \\,=\n\r\x00\"\x7f\xff\x21\x20\x1f\t".to_vec()), 64),
        ) {
            let mut block = [0u8; 64];
            block.copy_from_slice(&bytes);
            proptest::prop_assert_eq!(block_mask(&block), block_mask_scalar(&block));
        }

        #[test]
        fn a_walk_gives_each_marked_byte_once_in_order(
            bytes in proptest::collection::vec(proptest::sample::select(b"ab \\,=\n\r\x00\"\x7f\xff\x21\t".to_vec()), 0..300),
            start in 0usize..300,
            cached in proptest::option::of(0usize..300),
            skips in proptest::collection::vec(0usize..90, 0..20),
        ) {
            let start = start.min(bytes.len());
            let mut stops = Stops::default();
            if let Some(c) = cached {
                // A block cached somewhere before (or past) the start.
                stops.next(&bytes, c.min(bytes.len()));
            }
            let mut walk = stops.walk(&bytes, start);
            let mut from = start;
            let mut skips = skips.into_iter();
            loop {
                let want = bytes.iter().skip(from).position(|&b| marked(b)).map(|i| from + i);
                let got = walk.next(&bytes);
                proptest::prop_assert_eq!(got, want, "from {}", from);
                let Some(at) = got else { break };
                from = at + 1;
                // Sometimes skip ahead (a binary value), within the input.
                if let Some(skip) = skips.next().filter(|s| s % 3 == 0) {
                    from = (from + skip).min(bytes.len());
                    walk.skip_to(&bytes, from);
                }
            }
            stops.keep(&walk, &bytes);
            // What is kept still answers from anywhere.
            for from in [0, start, bytes.len()] {
                let want = bytes.iter().skip(from).position(|&b| marked(b)).map_or(bytes.len(), |i| from + i);
                proptest::prop_assert_eq!(stops.next(&bytes, from), want);
            }
        }

        #[test]
        fn stops_are_the_marked_bytes_from_anywhere(
            bytes in proptest::collection::vec(proptest::sample::select(b"ab \\,=\n\r\x00\"\x7f\xff\x21\t".to_vec()), 0..300),
            jumps in proptest::collection::vec(0usize..90, 1..40),
        ) {
            let mut stops = Stops::default();
            let mut from = 0;
            for jump in jumps {
                let want = bytes.iter().skip(from).position(|&b| marked(b)).map_or(bytes.len(), |i| from + i);
                let got = stops.next(&bytes, from);
                proptest::prop_assert_eq!(got, want, "from {}", from);
                // Onwards from just past the stop, or a jump (binary values).
                from = if jump < 45 { (got + 1).min(bytes.len()) } else { (from + jump).min(bytes.len()) };
                if jump % 7 == 0 { from = from.saturating_sub(jump / 7); }
            }
        }
    }
}
