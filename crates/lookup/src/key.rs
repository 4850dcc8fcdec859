//! The key domain: how Int32, Int64, UInt32 and UInt64 key columns map onto
//! the single `u64` ordering every provider, the file format and the
//! [`PointLookupProvider`](crate::PointLookupProvider) trait use.
//!
//! # Mapping
//!
//! | key type | `u64` value of key `v` | note |
//! |---|---|---|
//! | `UInt64` | `v` | identity |
//! | `UInt32` | `v as u64` | zero-extended |
//! | `Int64` | `v as u64` | two's complement bits |
//! | `Int32` | `v as i64 as u64` | sign-extended, then the bits |
//!
//! Keys are compared as `u64` everywhere: when a builder sorts, when a file
//! is validated, and when a lookup binary-searches. A consequence is that a
//! negative signed key sorts *after* every non-negative one (`-1` becomes
//! `u64::MAX`). Row ids are never negative, so for them the two orders agree;
//! for signed keys the order is still total and consistent, just not the
//! signed one. A caller looking up the Int64 key `-5` passes `(-5i64) as u64`
//! (for Int32, `(-5i32) as u64`, which Rust also sign-extends).

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::buffer::ScalarBuffer;
use arrow::datatypes::{DataType, Int32Type, Int64Type, UInt32Type, UInt64Type};

/// The four supported key column types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyType {
    /// `DataType::Int32`, sign-extended into the `u64` domain.
    Int32,
    /// `DataType::Int64`, reinterpreted as `u64`.
    Int64,
    /// `DataType::UInt32`, zero-extended.
    UInt32,
    /// `DataType::UInt64`, as is.
    UInt64,
}

impl KeyType {
    /// The key type for an Arrow type, or `None` if it is not a key type.
    pub fn from_data_type(data_type: &DataType) -> Option<Self> {
        match data_type {
            DataType::Int32 => Some(Self::Int32),
            DataType::Int64 => Some(Self::Int64),
            DataType::UInt32 => Some(Self::UInt32),
            DataType::UInt64 => Some(Self::UInt64),
            _ => None,
        }
    }

    /// The Arrow type.
    pub fn data_type(self) -> DataType {
        match self {
            Self::Int32 => DataType::Int32,
            Self::Int64 => DataType::Int64,
            Self::UInt32 => DataType::UInt32,
            Self::UInt64 => DataType::UInt64,
        }
    }

    /// The name stored in the file metadata (`Int32`, `Int64`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Int32 => "Int32",
            Self::Int64 => "Int64",
            Self::UInt32 => "UInt32",
            Self::UInt64 => "UInt64",
        }
    }

    /// Parses [`KeyType::name`].
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "Int32" => Some(Self::Int32),
            "Int64" => Some(Self::Int64),
            "UInt32" => Some(Self::UInt32),
            "UInt64" => Some(Self::UInt64),
            _ => None,
        }
    }

    /// Maps a `u64`-domain key back to the `i64` bit pattern SQLite stores
    /// for it (`INTEGER PRIMARY KEY` is a signed 64-bit integer).
    pub(crate) fn to_sqlite(key: u64) -> i64 {
        key as i64
    }

    /// Whether a `u64`-domain value can be a key of this type (e.g. a UInt32
    /// column can never hold a key above `u32::MAX`).
    pub(crate) fn can_hold(self, key: u64) -> bool {
        match self {
            Self::UInt64 | Self::Int64 => true,
            Self::UInt32 => key <= u64::from(u32::MAX),
            // Sign-extended i32: the top 33 bits are all equal.
            Self::Int32 => {
                let k = key as i64;
                k >= i64::from(i32::MIN) && k <= i64::from(i32::MAX)
            }
        }
    }
}

impl std::fmt::Display for KeyType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A key column's values, typed, without nulls (callers check nulls first).
/// Cloning is cheap: the buffer is shared.
#[derive(Debug, Clone)]
pub(crate) enum KeyColumn {
    I32(ScalarBuffer<i32>),
    I64(ScalarBuffer<i64>),
    U32(ScalarBuffer<u32>),
    U64(ScalarBuffer<u64>),
}

/// Applies `$body` with `$s` bound to the typed slice and `$f` to the
/// function converting one element into the `u64` domain.
macro_rules! with_slice {
    ($col:expr, |$s:ident, $f:ident| $body:expr) => {
        match $col {
            KeyColumn::I32(b) => {
                let $s: &[i32] = b;
                let $f = |v: i32| v as i64 as u64;
                $body
            }
            KeyColumn::I64(b) => {
                let $s: &[i64] = b;
                let $f = |v: i64| v as u64;
                $body
            }
            KeyColumn::U32(b) => {
                let $s: &[u32] = b;
                let $f = |v: u32| u64::from(v);
                $body
            }
            KeyColumn::U64(b) => {
                let $s: &[u64] = b;
                let $f = |v: u64| v;
                $body
            }
        }
    };
}

impl KeyColumn {
    /// The typed values of a key array, or `None` if the array is not of a
    /// key type. Nulls are not checked here (see [`Array::null_count`]).
    pub(crate) fn from_array(array: &ArrayRef) -> Option<Self> {
        Some(match array.data_type() {
            DataType::Int32 => Self::I32(array.as_primitive::<Int32Type>().values().clone()),
            DataType::Int64 => Self::I64(array.as_primitive::<Int64Type>().values().clone()),
            DataType::UInt32 => Self::U32(array.as_primitive::<UInt32Type>().values().clone()),
            DataType::UInt64 => Self::U64(array.as_primitive::<UInt64Type>().values().clone()),
            _ => return None,
        })
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        with_slice!(self, |s, _f| s.len())
    }

    /// Key `i` in the `u64` domain. Panics if `i` is out of bounds (callers
    /// index only below [`KeyColumn::len`]).
    #[inline]
    pub(crate) fn get(&self, i: usize) -> u64 {
        with_slice!(self, |s, f| f(s[i]))
    }

    /// First position in `[lo, hi)` whose key is not below `key` (or `hi`),
    /// by binary search in the `u64` domain (the reference for tests).
    #[cfg(test)]
    pub(crate) fn lower_bound_in(&self, key: u64, lo: usize, hi: usize) -> usize {
        with_slice!(self, |s, f| lo + s[lo..hi].partition_point(|&v| f(v) < key))
    }

    /// The first position whose key is not below `key` (or `len`), found by
    /// galloping (exponential search) outward from `guess`, whose key the
    /// caller already read as `probe`. O(log distance to the answer): a good
    /// guess touches one or two cache lines of the column.
    #[inline]
    pub(crate) fn lower_bound_from(&self, key: u64, guess: usize, probe: u64) -> usize {
        with_slice!(self, |s, f| {
            let n = s.len();
            if n == 0 {
                return 0;
            }
            let g = guess.min(n - 1);
            if probe < key {
                // Everything up to g is below key: gallop right.
                let mut lo = g + 1;
                let mut step = 1;
                let hi = loop {
                    let p = g + step;
                    if p >= n {
                        break n;
                    }
                    if f(s[p]) >= key {
                        break p;
                    }
                    lo = p + 1;
                    step *= 2;
                };
                lo + s[lo..hi].partition_point(|&v| f(v) < key)
            } else {
                // s[g] >= key: gallop left.
                let mut hi = g;
                let mut step = 1;
                let lo = loop {
                    if step > g {
                        break 0;
                    }
                    let p = g - step;
                    if f(s[p]) < key {
                        break p + 1;
                    }
                    hi = p;
                    step *= 2;
                };
                lo + s[lo..hi].partition_point(|&v| f(v) < key)
            }
        })
    }

    /// Hints the CPU to load key `i` (no effect past the end).
    #[inline]
    pub(crate) fn prefetch(&self, i: usize) {
        with_slice!(self, |s, _f| crate::gather::prefetch(
            s.as_ptr().wrapping_add(i)
        ))
    }

    /// Appends every key, in the `u64` domain, to `out`.
    pub(crate) fn extend_into(&self, out: &mut Vec<u64>) {
        with_slice!(self, |s, f| out.extend(s.iter().map(|&v| f(v))))
    }

    /// Checks the keys are strictly ascending in the `u64` domain. Returns
    /// the first position `i > 0` with `key[i] <= key[i - 1]`, if any.
    pub(crate) fn first_unordered(&self) -> Option<usize> {
        with_slice!(self, |s, f| s
            .windows(2)
            .position(|w| f(w[0]) >= f(w[1]))
            .map(|i| i + 1))
    }

    /// Whether the keys are strictly ascending and all above `prev`.
    pub(crate) fn ascending_after(&self, prev: Option<u64>) -> bool {
        if self.first_unordered().is_some() {
            return false;
        }
        match (prev, self.len()) {
            (Some(p), n) if n > 0 => self.get(0) > p,
            _ => true,
        }
    }
}

/// Sorts and de-duplicates requested keys, borrowing when they already are.
pub(crate) fn sorted_unique(keys: &[u64]) -> std::borrow::Cow<'_, [u64]> {
    if keys.windows(2).all(|w| w[0] < w[1]) {
        std::borrow::Cow::Borrowed(keys)
    } else {
        let mut v = keys.to_vec();
        v.sort_unstable();
        v.dedup();
        std::borrow::Cow::Owned(v)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int32Array, Int64Array, UInt32Array, UInt64Array};

    use super::*;

    #[test]
    fn domain_mapping_matches_the_table() {
        let i32s: ArrayRef = Arc::new(Int32Array::from(vec![-1, 0, 7]));
        let k = KeyColumn::from_array(&i32s).unwrap();
        assert_eq!(k.get(0), u64::MAX);
        assert_eq!(k.get(0), (-1i32) as u64);
        assert_eq!(k.get(2), 7);

        let i64s: ArrayRef = Arc::new(Int64Array::from(vec![-5, 3]));
        let k = KeyColumn::from_array(&i64s).unwrap();
        assert_eq!(k.get(0), (-5i64) as u64);

        let u32s: ArrayRef = Arc::new(UInt32Array::from(vec![u32::MAX]));
        assert_eq!(
            KeyColumn::from_array(&u32s).unwrap().get(0),
            u64::from(u32::MAX)
        );

        let u64s: ArrayRef = Arc::new(UInt64Array::from(vec![u64::MAX]));
        assert_eq!(KeyColumn::from_array(&u64s).unwrap().get(0), u64::MAX);
    }

    #[test]
    fn negative_keys_sort_after_positive_ones() {
        // Ascending in u64: 3, 10, then -5, -1.
        let a: ArrayRef = Arc::new(Int64Array::from(vec![3, 10, -5, -1]));
        let k = KeyColumn::from_array(&a).unwrap();
        assert_eq!(k.first_unordered(), None);
        let lb = |key: u64| k.lower_bound_in(key, 0, k.len());
        assert_eq!(lb((-5i64) as u64), 2);
        assert_eq!(lb(4), 1);
        assert_eq!(lb(u64::MAX), 3);
        let signed: ArrayRef = Arc::new(Int64Array::from(vec![-5, -1, 3, 10]));
        assert_eq!(
            KeyColumn::from_array(&signed).unwrap().first_unordered(),
            Some(2)
        );
    }

    /// Galloping from any guess finds the same lower bound as a plain
    /// binary search, for every probe around every position.
    #[test]
    fn lower_bound_from_any_guess_matches_partition_point() {
        for n in [1usize, 2, 3, 31, 64, 100, 257] {
            let values: Vec<u64> = (0..n as u64).map(|i| i * 3 + 1).collect();
            let a: ArrayRef = Arc::new(UInt64Array::from(values.clone()));
            let k = KeyColumn::from_array(&a).unwrap();
            for probe in (0..(n as u64 * 3 + 3)).chain([u64::MAX]) {
                let want = values.partition_point(|&v| v < probe);
                assert_eq!(k.lower_bound_in(probe, 0, n), want);
                for guess in [0, 1, n / 3, n / 2, n - 1, n, n + 10] {
                    let g = guess.min(n - 1);
                    assert_eq!(
                        k.lower_bound_from(probe, guess, k.get(g)),
                        want,
                        "n={n} probe={probe} guess={guess}"
                    );
                }
            }
        }
    }

    #[test]
    fn can_hold_checks_the_range() {
        assert!(KeyType::Int32.can_hold((-1i32) as u64));
        assert!(!KeyType::Int32.can_hold(u64::from(u32::MAX)));
        assert!(KeyType::UInt32.can_hold(u64::from(u32::MAX)));
        assert!(!KeyType::UInt32.can_hold(1 << 32));
        assert!(KeyType::UInt64.can_hold(u64::MAX));
    }

    #[test]
    fn sorted_unique_borrows_when_possible() {
        assert!(matches!(
            sorted_unique(&[1, 2, 3]),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(&*sorted_unique(&[3, 1, 3, 2, 1]), &[1, 2, 3]);
    }
}
