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
    pub fn from_strings(strings: impl IntoIterator<Item = String>) -> Self {
        let t = SymbolTable::new();
        {
            let mut inner = t.lock();
            for s in strings {
                inner.push(&s);
            }
            inner.logged = inner.strings.len();
        }
        t
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the dictionary
        // half-updated (every update is a single push), so poison is ignored.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The key for `s`, adding it if new.
    pub fn intern(&self, s: &str) -> u32 {
        let mut inner = self.lock();
        if let Some(&k) = inner.index.get(s) {
            return k;
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

    /// Entries not yet logged, with the key of the first; marks them logged.
    pub(crate) fn take_unlogged(&self) -> Option<(u32, Vec<Arc<str>>)> {
        let mut inner = self.lock();
        if inner.logged == inner.strings.len() {
            return None;
        }
        let start = inner.logged;
        inner.logged = inner.strings.len();
        Some((start as u32, inner.strings[start..].to_vec()))
    }

    /// Applies logged entries during recovery: keys below the current size
    /// must hold the same strings; the rest are appended.
    pub(crate) fn apply_logged(&self, start: u32, entries: &[String]) -> Result<(), &'static str> {
        let mut inner = self.lock();
        for (i, s) in entries.iter().enumerate() {
            let key = start as usize + i;
            match inner.strings.get(key) {
                Some(existing) if &**existing == s.as_str() => {}
                Some(_) => {
                    return Err("a logged symbol differs from the one already known for its key");
                }
                None if key == inner.strings.len() => {
                    inner.push(s);
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
    fn push(&mut self, s: &str) -> u32 {
        let key = self.strings.len() as u32;
        let s: Arc<str> = Arc::from(s);
        self.index.insert(s.clone(), key);
        self.strings.push(s);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Array;

    #[test]
    fn intern_log_and_recover() {
        let t = SymbolTable::new();
        assert_eq!(t.intern("a"), 0);
        assert_eq!(t.intern("b"), 1);
        assert_eq!(t.intern("a"), 0);
        assert_eq!(
            t.take_unlogged(),
            Some((0, vec![Arc::from("a"), Arc::from("b")]))
        );
        assert_eq!(t.take_unlogged(), None);
        t.intern("c");
        assert_eq!(t.take_unlogged().unwrap().0, 2);

        let r = SymbolTable::new();
        r.apply_logged(0, &["a".into(), "b".into()]).unwrap();
        r.apply_logged(1, &["b".into(), "c".into()]).unwrap();
        assert_eq!(r.len(), 3);
        assert!(r.apply_logged(0, &["x".into()]).is_err());
        assert!(r.apply_logged(5, &["x".into()]).is_err());
        assert_eq!(r.values(2).len(), 2);
        assert_eq!(r.values(10).len(), 3);
    }
}
