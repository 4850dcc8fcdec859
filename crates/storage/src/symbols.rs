//! A SYMBOL column's dictionary: strings to dense `u32` keys, append-only.
//!
//! Writers intern strings before commit; the committer logs every entry not
//! yet in the WAL with the first transaction that commits after it was added
//! (so any key a committed row uses is logged in that row's record or an
//! earlier one). Readers get the values as an Arrow `StringArray`, rebuilt
//! only when the dictionary grew.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use arrow::array::{ArrayRef, StringArray};

use crate::error::StorageError;
use crate::limits::MAX_SYMBOLS_PER_COLUMN;

/// One SYMBOL column's dictionary.
#[derive(Debug, Default)]
pub struct SymbolTable {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    strings: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
    /// Entries `..logged` are in the WAL (or a sealed manifest).
    logged: usize,
    /// `StringArray` of the first `cache.0` entries.
    cache: Option<(usize, ArrayRef)>,
}

impl SymbolTable {
    /// An empty dictionary.
    pub fn new() -> Self {
        Self::default()
    }

    /// A dictionary holding `strings`, all of them already durable.
    pub fn from_strings(strings: impl IntoIterator<Item = String>) -> Result<Self, StorageError> {
        let t = SymbolTable::new();
        {
            let mut inner = t.lock();
            for s in strings {
                inner.push(&s)?;
            }
            inner.logged = inner.strings.len();
        }
        Ok(t)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the dictionary
        // half-updated (every update is a single push), so poison is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key for `s`, adding it if new; refused past
    /// [`MAX_SYMBOLS_PER_COLUMN`] entries.
    pub fn intern(&self, s: &str) -> Result<u32, StorageError> {
        let mut inner = self.lock();
        if let Some(&k) = inner.index.get(s) {
            return Ok(k);
        }
        inner.push(s)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.lock().strings.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The string for `key`.
    pub fn get(&self, key: u32) -> Option<Arc<str>> {
        self.lock().strings.get(key as usize).cloned()
    }

    /// Every entry, in key order.
    pub fn strings(&self) -> Vec<Arc<str>> {
        self.lock().strings.clone()
    }

    /// Entries from key `from` (or from the first not yet logged, if that
    /// is later) to the end, with the key of the first; `None` if there are
    /// none. Nothing is marked: see [`SymbolTable::mark_logged`].
    pub(crate) fn unlogged_from(&self, from: u32) -> Option<(u32, Vec<Arc<str>>)> {
        let inner = self.lock();
        let start = inner.logged.max(from as usize);
        if start >= inner.strings.len() {
            return None;
        }
        // Keys are below MAX_SYMBOLS_PER_COLUMN (2^28): they fit a u32.
        let key = u32::try_from(start).ok()?;
        Some((key, inner.strings[start..].to_vec()))
    }

    /// Records that entries below `end` are in the WAL (the write that
    /// logged them succeeded).
    pub(crate) fn mark_logged(&self, end: usize) {
        let mut inner = self.lock();
        debug_assert!(end <= inner.strings.len());
        inner.logged = inner.logged.max(end.min(inner.strings.len()));
    }

    /// Applies logged entries during recovery: keys below the current size
    /// must hold the same strings; the rest are appended.
    pub(crate) fn apply_logged(&self, start: u32, entries: &[&str]) -> Result<(), &'static str> {
        let mut inner = self.lock();
        for (i, s) in entries.iter().enumerate() {
            let key = start as usize + i;
            match inner.strings.get(key) {
                Some(existing) if &**existing == *s => {}
                Some(_) => {
                    return Err("a logged symbol differs from the one already known for its key");
                }
                None if key == inner.strings.len() => {
                    inner
                        .push(s)
                        .map_err(|_| "a SYMBOL dictionary over its limit")?;
                }
                None => return Err("a logged symbol skips keys"),
            }
        }
        inner.logged = inner.strings.len();
        Ok(())
    }

    /// The first `len` entries as an Arrow array (shared until the
    /// dictionary grows).
    pub fn values(&self, len: usize) -> ArrayRef {
        let mut inner = self.lock();
        let len = len.min(inner.strings.len());
        if let Some((n, a)) = &inner.cache
            && *n == len
        {
            return a.clone();
        }
        let array: ArrayRef = Arc::new(StringArray::from_iter_values(
            inner.strings[..len].iter().map(|s| &**s),
        ));
        inner.cache = Some((len, array.clone()));
        array
    }
}

impl Inner {
    fn push(&mut self, s: &str) -> Result<u32, StorageError> {
        let n = self.strings.len();
        let key = match u32::try_from(n) {
            Ok(k) if n < MAX_SYMBOLS_PER_COLUMN => k,
            _ => {
                return Err(StorageError::LimitExceeded {
                    what: "entries in a SYMBOL column's dictionary",
                    value: n as u64 + 1,
                    limit: MAX_SYMBOLS_PER_COLUMN as u64,
                });
            }
        };
        let s: Arc<str> = Arc::from(s);
        self.index.insert(s.clone(), key);
        self.strings.push(s);
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn intern_log_and_recover() {
        let t = SymbolTable::new();
        assert_eq!(t.intern("a").unwrap(), 0);
        assert_eq!(t.intern("b").unwrap(), 1);
        assert_eq!(t.intern("a").unwrap(), 0);
        assert_eq!(
            t.unlogged_from(0),
            Some((0, vec![Arc::from("a"), Arc::from("b")]))
        );
        assert_eq!(t.unlogged_from(1).unwrap().0, 1);
        t.mark_logged(2);
        assert_eq!(t.unlogged_from(0), None);
        t.intern("c").unwrap();
        assert_eq!(t.unlogged_from(0).unwrap().0, 2);

        let r = SymbolTable::new();
        r.apply_logged(0, &["a", "b"]).unwrap();
        r.apply_logged(1, &["b", "c"]).unwrap();
        assert_eq!(r.len(), 3);
        assert!(r.apply_logged(0, &["x"]).is_err());
        assert!(r.apply_logged(5, &["x"]).is_err());
        assert_eq!(r.values(2).len(), 2);
        assert_eq!(r.values(10).len(), 3);
    }
}
