//! Symbol dictionaries (SPEC §2.5, §9.4).
//!
//! Three views borrowed from a message, each validated when decoded and then
//! iterated without failure:
//! - [`SymbolDelta`]: the delta dictionary section at the start of a payload
//!   (`delta_start`, `delta_count`, strings);
//! - [`SymbolIds`]: a SYMBOL column's varint ids;
//! - [`StringList`]: a column-local dictionary (per-column mode).
//!
//! [`SymbolDictionary`] is a connection's id → string table, owned by the
//! stateful decoders; it is changed only after a whole message decoded.

use std::borrow::Cow;

use crate::error::{DecodeErrorKind, DecodeResult};
use crate::wire::{ByteReader, VarintResult, decode_varint, put_string, put_varint};

/// A sequence of `varint length + UTF-8` strings, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StringList<'a> {
    bytes: Cow<'a, [u8]>,
    count: u32,
}

impl<'a> StringList<'a> {
    /// Reads `count` strings of at most `max_len` bytes each.
    pub(crate) fn decode(
        r: &mut ByteReader<'a>,
        count: u64,
        max_len: u64,
        what: &'static str,
    ) -> DecodeResult<Self> {
        // Every string takes at least one byte: a count past the remaining
        // bytes is malformed before anything is read.
        if count > r.remaining() as u64 {
            return Err(r.error(DecodeErrorKind::UnexpectedEnd {
                what,
                needed: count,
                remaining: r.remaining() as u64,
            }));
        }
        let start = r.rest();
        let before = r.position();
        for _ in 0..count {
            r.string(what, max_len)?;
        }
        let used = r.position() - before;
        Ok(StringList {
            bytes: Cow::Borrowed(&start[..used]),
            count: count as u32,
        })
    }

    /// A list from strings (for encoding).
    pub fn from_strs<S: AsRef<str>>(strings: impl IntoIterator<Item = S>) -> StringList<'static> {
        let mut bytes = Vec::new();
        let mut count = 0u32;
        for s in strings {
            put_string(&mut bytes, s.as_ref());
            count += 1;
        }
        StringList {
            bytes: Cow::Owned(bytes),
            count,
        }
    }

    /// Number of strings.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The strings in order.
    pub fn iter(&self) -> StringIter<'_> {
        StringIter {
            bytes: &self.bytes,
            remaining: self.count,
        }
    }

    /// The encoded bytes (the strings, without a count).
    pub(crate) fn encoded(&self) -> &[u8] {
        &self.bytes
    }

    /// The same list, owning its bytes.
    pub fn into_owned(self) -> StringList<'static> {
        StringList {
            bytes: Cow::Owned(self.bytes.into_owned()),
            count: self.count,
        }
    }
}

/// Iterator over a [`StringList`].
#[derive(Debug, Clone)]
pub struct StringIter<'s> {
    bytes: &'s [u8],
    remaining: u32,
}

impl<'s> Iterator for StringIter<'s> {
    type Item = &'s str;

    fn next(&mut self) -> Option<&'s str> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let VarintResult::Ok(len, n) = decode_varint(self.bytes) else {
            return None;
        };
        let body = self.bytes.get(n..n + len as usize)?;
        self.bytes = &self.bytes[n + len as usize..];
        // Validated when the list was decoded or built from `&str`s.
        std::str::from_utf8(body).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

/// The delta symbol dictionary section: ids `start .. start + len()` are
/// (re)defined by this message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolDelta<'a> {
    /// First id defined.
    pub start: u64,
    /// The new entries.
    pub entries: StringList<'a>,
}

impl<'a> SymbolDelta<'a> {
    /// Reads the section; the caller checks `start` against its dictionary.
    pub(crate) fn decode(
        r: &mut ByteReader<'a>,
        max_entries: u64,
        max_len: u64,
    ) -> DecodeResult<Self> {
        let start = r.varint_max("delta_start", max_entries)?;
        let count_at = r.position();
        let count = r.varint("delta_count")?;
        if start.saturating_add(count) > max_entries {
            return Err(r.error_at(
                DecodeErrorKind::LimitExceeded {
                    what: "symbol dictionary size",
                    value: start.saturating_add(count),
                    limit: max_entries,
                },
                count_at,
            ));
        }
        let entries = StringList::decode(r, count, max_len, "symbol dictionary entry")?;
        Ok(SymbolDelta { start, entries })
    }

    /// An empty delta starting at `start` (what a message with no new
    /// symbols carries).
    pub fn empty(start: u64) -> SymbolDelta<'static> {
        SymbolDelta {
            start,
            entries: StringList::from_strs::<&str>([]),
        }
    }

    /// The dictionary size after this delta is applied to one of `size`
    /// entries.
    pub fn size_after(&self, size: u64) -> u64 {
        size.max(self.start + u64::from(self.entries.len()))
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.start);
        put_varint(out, u64::from(self.entries.len()));
        out.extend_from_slice(self.entries.encoded());
    }

    /// The same delta, owning its bytes.
    pub fn into_owned(self) -> SymbolDelta<'static> {
        SymbolDelta {
            start: self.start,
            entries: self.entries.into_owned(),
        }
    }
}

/// A SYMBOL column's ids (one varint per non-NULL row), validated to be below
/// the dictionary size they were decoded against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SymbolIds<'a> {
    bytes: Cow<'a, [u8]>,
    count: u32,
    max_id: Option<u32>,
}

impl<'a> SymbolIds<'a> {
    /// Reads `count` ids, each below `dict_size`.
    pub(crate) fn decode(r: &mut ByteReader<'a>, count: u32, dict_size: u64) -> DecodeResult<Self> {
        let bytes = r.rest();
        if u64::from(count) > bytes.len() as u64 {
            return Err(r.error(DecodeErrorKind::UnexpectedEnd {
                what: "symbol ids",
                needed: u64::from(count),
                remaining: bytes.len() as u64,
            }));
        }
        // Fast path: every id is one byte (below 128, the usual case for
        // low-cardinality symbols). One pass that vectorizes.
        let first = &bytes[..count as usize];
        if first.iter().fold(0u8, |acc, b| acc | b) < 0x80 {
            let max = first.iter().copied().max().map(u64::from);
            if max.is_some_and(|m| m >= dict_size) {
                // The first id out of range, as the general path reports.
                let at = first
                    .iter()
                    .position(|b| u64::from(*b) >= dict_size)
                    .unwrap_or(0);
                return Err(r.error_at(
                    DecodeErrorKind::SymbolIdOutOfRange {
                        id: u64::from(first[at]),
                        dict_size,
                    },
                    r.position() + at,
                ));
            }
            let bytes = r.take(u64::from(count), "symbol ids")?;
            return Ok(SymbolIds {
                bytes: Cow::Borrowed(bytes),
                count,
                max_id: max.map(|m| m as u32),
            });
        }
        let mut pos = 0usize;
        let mut max: Option<u64> = None;
        for _ in 0..count {
            match decode_varint(&bytes[pos..]) {
                VarintResult::Ok(id, n) => {
                    if id >= dict_size {
                        return Err(r.error_at(
                            DecodeErrorKind::SymbolIdOutOfRange { id, dict_size },
                            r.position() + pos,
                        ));
                    }
                    max = Some(max.map_or(id, |m| m.max(id)));
                    pos += n;
                }
                VarintResult::Short => {
                    return Err(r.error_at(
                        DecodeErrorKind::UnexpectedEnd {
                            what: "symbol id",
                            needed: (bytes.len() - pos) as u64 + 1,
                            remaining: (bytes.len() - pos) as u64,
                        },
                        r.position() + pos,
                    ));
                }
                VarintResult::Overflow => {
                    return Err(r.error_at(
                        DecodeErrorKind::VarintOverflow { what: "symbol id" },
                        r.position() + pos,
                    ));
                }
            }
        }
        let bytes = r.take(pos as u64, "symbol ids")?;
        Ok(SymbolIds {
            bytes: Cow::Borrowed(bytes),
            count,
            // Below dict_size, which is at most u32::MAX by the limits.
            max_id: max.map(|m| m as u32),
        })
    }

    /// Ids from a slice (for encoding): one pass to find the largest, then
    /// one byte per id when every id is below 128 (the common case: a
    /// result's dictionary is small), varints otherwise.
    pub fn from_id_slice(ids: &[u32]) -> SymbolIds<'static> {
        let max_id = ids.iter().copied().max();
        let count = u32::try_from(ids.len()).unwrap_or(u32::MAX);
        match max_id {
            Some(m) if m >= 0x80 => SymbolIds::from_ids(ids.iter().copied()),
            _ => SymbolIds {
                // Every id is below 128: its varint is the id's one byte.
                bytes: Cow::Owned(
                    ids.iter()
                        .map(|&id| u8::try_from(id).unwrap_or(0x7F))
                        .collect(),
                ),
                count,
                max_id,
            },
        }
    }

    /// Ids that are each one byte below 128 (their own varints), or `None`
    /// if one is not.
    pub fn from_small_ids(ids: Vec<u8>) -> Option<SymbolIds<'static>> {
        let max_id = ids.iter().copied().max();
        if max_id.is_some_and(|m| m >= 0x80) {
            return None;
        }
        Some(SymbolIds {
            count: u32::try_from(ids.len()).ok()?,
            max_id: max_id.map(u32::from),
            bytes: Cow::Owned(ids),
        })
    }

    /// Ids from values (for encoding).
    pub fn from_ids(ids: impl IntoIterator<Item = u32>) -> SymbolIds<'static> {
        let mut bytes = Vec::new();
        let mut count = 0u32;
        let mut max_id: Option<u32> = None;
        for id in ids {
            put_varint(&mut bytes, u64::from(id));
            count += 1;
            max_id = Some(max_id.map_or(id, |m| m.max(id)));
        }
        SymbolIds {
            bytes: Cow::Owned(bytes),
            count,
            max_id,
        }
    }

    /// Number of ids.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The largest id, if any.
    pub fn max_id(&self) -> Option<u32> {
        self.max_id
    }

    /// The ids as bytes, if every id is below 128 (one varint byte each).
    pub fn single_byte_ids(&self) -> Option<&[u8]> {
        (self.bytes.len() == self.count as usize).then_some(&*self.bytes)
    }

    /// The ids in row order (NULL rows have none).
    pub fn iter(&self) -> SymbolIdIter<'_> {
        SymbolIdIter {
            bytes: &self.bytes,
            remaining: self.count,
        }
    }

    pub(crate) fn encoded(&self) -> &[u8] {
        &self.bytes
    }

    /// The same ids, owning their bytes.
    pub fn into_owned(self) -> SymbolIds<'static> {
        SymbolIds {
            bytes: Cow::Owned(self.bytes.into_owned()),
            count: self.count,
            max_id: self.max_id,
        }
    }
}

/// Iterator over [`SymbolIds`].
#[derive(Debug, Clone)]
pub struct SymbolIdIter<'s> {
    bytes: &'s [u8],
    remaining: u32,
}

impl Iterator for SymbolIdIter<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let (&b, rest) = self.bytes.split_first()?;
        if b < 0x80 {
            self.bytes = rest;
            return Some(u32::from(b));
        }
        match decode_varint(self.bytes) {
            VarintResult::Ok(id, n) => {
                self.bytes = &self.bytes[n..];
                Some(id as u32)
            }
            _ => None,
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining as usize, Some(self.remaining as usize))
    }
}

/// How a dictionary accepts a delta that does not start at its end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeltaRule {
    /// Ingress: `start` may be below the current size (the client's replay
    /// mode re-sends ids from 0); overlapping ids are overwritten. A start
    /// past the end is a [`DecodeErrorKind::DictionaryGap`].
    AllowOverlap,
    /// Egress client: `start` must equal the current size.
    Exact,
}

/// What applying a delta changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeltaOutcome {
    /// Entries appended past the previous end.
    pub added: u64,
    /// Whether an existing id got a different string (consumers that cache
    /// per-id state must drop it).
    pub redefined: bool,
}

/// A connection's symbol dictionary: dense ids from 0, strings stored
/// back to back in one buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SymbolDictionary {
    data: String,
    /// `ends[i]` = end of entry `i` in `data`.
    ends: Vec<usize>,
}

impl SymbolDictionary {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.ends.len() as u64
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// The string for `id`.
    pub fn get(&self, id: u64) -> Option<&str> {
        let i = usize::try_from(id).ok()?;
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.data[start..end])
    }

    /// Bytes of string data held.
    pub fn data_len(&self) -> usize {
        self.data.len()
    }

    /// Removes every entry (reconnect, CACHE_RESET, RESET_DICT).
    pub fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
    }

    /// Appends one entry and returns its id.
    pub fn push(&mut self, s: &str) -> u64 {
        self.data.push_str(s);
        self.ends.push(self.data.len());
        self.len() - 1
    }

    /// Checks that a delta starting at `start` may be applied under `rule`.
    pub(crate) fn check_start(&self, start: u64, rule: DeltaRule) -> Result<(), DecodeErrorKind> {
        let size = self.len();
        match rule {
            DeltaRule::AllowOverlap if start > size => {
                Err(DecodeErrorKind::DictionaryGap { start, size })
            }
            DeltaRule::Exact if start != size => {
                Err(DecodeErrorKind::DictionaryOutOfOrder { start, size })
            }
            _ => Ok(()),
        }
    }

    /// Applies a delta already checked by [`SymbolDictionary::check_start`].
    pub(crate) fn apply(&mut self, delta: &SymbolDelta<'_>) -> DeltaOutcome {
        let mut outcome = DeltaOutcome::default();
        let size = self.len();
        let mut changed: Vec<(u64, &str)> = Vec::new();
        for (id, s) in (delta.start..).zip(delta.entries.iter()) {
            if id < size {
                if self.get(id) != Some(s) {
                    changed.push((id, s));
                }
            } else {
                self.push(s);
                outcome.added += 1;
            }
        }
        if !changed.is_empty() {
            outcome.redefined = true;
            self.rewrite(&changed);
        }
        outcome
    }

    /// Rebuilds the buffer with some entries replaced (rare: a client
    /// redefining ids it sent before).
    fn rewrite(&mut self, changed: &[(u64, &str)]) {
        let mut next = SymbolDictionary {
            data: String::with_capacity(self.data.len()),
            ends: Vec::with_capacity(self.ends.len()),
        };
        let mut changes = changed.iter().peekable();
        for id in 0..self.len() {
            let s = match changes.peek() {
                Some((cid, s)) if *cid == id => {
                    changes.next();
                    *s
                }
                _ => self.get(id).expect("id < len"),
            };
            next.push(s);
        }
        *self = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(start: u64, entries: &[&str]) -> SymbolDelta<'static> {
        SymbolDelta {
            start,
            entries: StringList::from_strs(entries.iter().copied()),
        }
    }

    #[test]
    fn overlap_rules() {
        let mut d = SymbolDictionary::new();
        assert_eq!(
            d.apply(&delta(0, &["a", "b"])),
            DeltaOutcome {
                added: 2,
                redefined: false
            }
        );
        // Replay mode: ids from 0 again, plus one more.
        d.check_start(0, DeltaRule::AllowOverlap).unwrap();
        assert_eq!(
            d.apply(&delta(0, &["a", "b", "c"])),
            DeltaOutcome {
                added: 1,
                redefined: false
            }
        );
        assert_eq!(
            d.check_start(4, DeltaRule::AllowOverlap),
            Err(DecodeErrorKind::DictionaryGap { start: 4, size: 3 })
        );
        assert!(d.check_start(2, DeltaRule::Exact).is_err());
        d.check_start(3, DeltaRule::Exact).unwrap();
        // Redefinition overwrites.
        assert_eq!(
            d.apply(&delta(1, &["B", "c", "d"])),
            DeltaOutcome {
                added: 1,
                redefined: true
            }
        );
        let all: Vec<_> = (0..d.len()).map(|i| d.get(i).unwrap()).collect();
        assert_eq!(all, ["a", "B", "c", "d"]);
        assert_eq!(d.get(4), None);
        d.clear();
        assert!(d.is_empty());
    }

    #[test]
    fn ids_from_a_slice_encode_as_from_an_iterator() {
        for ids in [
            &[][..],
            &[5, 0, 127, 5],
            &[0, 127, 128, 300],
            &[u32::MAX, 1],
        ] {
            let a = SymbolIds::from_id_slice(ids);
            let b = SymbolIds::from_ids(ids.iter().copied());
            assert_eq!(a.encoded(), b.encoded(), "{ids:?}");
            assert_eq!((a.len(), a.max_id()), (b.len(), b.max_id()), "{ids:?}");
            let small: Option<Vec<u8>> = ids.iter().map(|&i| u8::try_from(i).ok()).collect();
            match small.and_then(SymbolIds::from_small_ids) {
                Some(c) => {
                    assert_eq!(c.encoded(), b.encoded(), "{ids:?}");
                    assert_eq!((c.len(), c.max_id()), (b.len(), b.max_id()), "{ids:?}");
                }
                None => assert!(ids.iter().any(|&i| i >= 0x80), "{ids:?}"),
            }
        }
    }

    #[test]
    fn ids_validate_against_size() {
        let ids = SymbolIds::from_ids([0, 127, 128, 300]);
        let mut r = ByteReader::new(ids.encoded());
        let decoded = SymbolIds::decode(&mut r, 4, 301).unwrap();
        assert_eq!(decoded.iter().collect::<Vec<_>>(), [0, 127, 128, 300]);
        assert_eq!(decoded.max_id(), Some(300));
        let mut r = ByteReader::new(ids.encoded());
        let e = SymbolIds::decode(&mut r, 4, 300).unwrap_err();
        assert_eq!(
            e.kind(),
            DecodeErrorKind::SymbolIdOutOfRange {
                id: 300,
                dict_size: 300
            }
        );
        assert_eq!(e.offset(), 4);
        let mut r = ByteReader::new(ids.encoded());
        assert!(SymbolIds::decode(&mut r, 5, 1000).is_err());
    }

    #[test]
    fn one_byte_ids_take_the_fast_path_with_the_same_checks() {
        let ids = SymbolIds::from_ids([5, 0, 127, 5]);
        // Followed by more bytes of the frame that are not ids.
        let mut bytes = ids.encoded().to_vec();
        bytes.extend_from_slice(&[0x81, 0x01]);
        let mut r = ByteReader::new(&bytes);
        let decoded = SymbolIds::decode(&mut r, 4, 128).unwrap();
        assert_eq!(r.rest(), [0x81, 0x01]);
        assert_eq!(decoded.single_byte_ids(), Some(&[5u8, 0, 127, 5][..]));
        assert_eq!(decoded.iter().collect::<Vec<_>>(), [5, 0, 127, 5]);
        assert_eq!(decoded.max_id(), Some(127));
        let mut r = ByteReader::new(&bytes);
        let e = SymbolIds::decode(&mut r, 4, 127).unwrap_err();
        assert_eq!(
            e.kind(),
            DecodeErrorKind::SymbolIdOutOfRange {
                id: 127,
                dict_size: 127
            }
        );
        assert_eq!(e.offset(), 2);
        // The first id out of range is the one reported, not the largest.
        let mut r = ByteReader::new(&bytes);
        let e = SymbolIds::decode(&mut r, 4, 3).unwrap_err();
        assert_eq!(
            (e.kind(), e.offset()),
            (
                DecodeErrorKind::SymbolIdOutOfRange {
                    id: 5,
                    dict_size: 3
                },
                0
            )
        );
        // Any multi-byte id: the general path, and no single-byte view.
        let mut r = ByteReader::new(&bytes[2..]);
        let decoded = SymbolIds::decode(&mut r, 3, 200).unwrap();
        assert_eq!(decoded.iter().collect::<Vec<_>>(), [127, 5, 129]);
        assert_eq!(decoded.single_byte_ids(), None);
        let empty = SymbolIds::decode(&mut ByteReader::new(&[]), 0, 0).unwrap();
        assert_eq!(
            (empty.max_id(), empty.single_byte_ids()),
            (None, Some(&[][..]))
        );
    }

    #[test]
    fn delta_limits() {
        let mut bytes = Vec::new();
        delta(0, &["x"; 3]).encode(&mut bytes);
        let mut r = ByteReader::new(&bytes);
        assert!(SymbolDelta::decode(&mut r, 3, 10).is_ok());
        let mut r = ByteReader::new(&bytes);
        assert!(matches!(
            SymbolDelta::decode(&mut r, 2, 10).unwrap_err().kind(),
            DecodeErrorKind::LimitExceeded { .. }
        ));
        // A count far past the bytes present is rejected before reading.
        let mut r = ByteReader::new(&[0x00, 0xFF, 0xFF, 0x03]);
        assert!(matches!(
            SymbolDelta::decode(&mut r, u64::MAX / 2, 10)
                .unwrap_err()
                .kind(),
            DecodeErrorKind::UnexpectedEnd { .. }
        ));
    }
}
