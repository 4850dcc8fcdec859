//! A connection's memo of which table dictionary key each of its SYMBOL ids
//! maps to, per (table, column): the hot loop maps ids through a `Vec`, not
//! a hash per row. Each map covers the ids the connection has used in that
//! column (not its whole dictionary), and all maps together hold at most a
//! bound of entries: past it they are dropped and rebuilt as needed (they
//! only save interning work), so a connection with a large dictionary
//! touching many SYMBOL columns cannot grow memory without bound.

use std::collections::HashMap;

/// Not yet known.
pub const UNKNOWN: u32 = u32::MAX;

/// See the module docs.
#[derive(Debug)]
pub struct SymbolCache {
    maps: HashMap<(u32, String), Vec<u32>>,
    entries: usize,
    max_entries: usize,
    /// How many times the maps were dropped for reaching the bound.
    pub resets: u64,
}

impl SymbolCache {
    /// A cache of at most `max_entries` ids over all columns.
    pub fn new(max_entries: usize) -> Self {
        SymbolCache {
            maps: HashMap::new(),
            entries: 0,
            max_entries,
            resets: 0,
        }
    }

    /// Forgets every map (the client redefined its ids).
    pub fn clear(&mut self) {
        self.maps.clear();
        self.entries = 0;
    }

    /// Entries held over all maps.
    pub fn entries(&self) -> usize {
        self.entries
    }

    /// The map of `column` of table `table`, covering ids below `len`
    /// (new slots [`UNKNOWN`]). A map larger than the whole bound is not
    /// kept: the caller gets a fresh one each time.
    pub fn map(&mut self, table: u32, column: &str, len: usize) -> MapRef<'_> {
        let key = (table, column.to_ascii_lowercase());
        let have = self.maps.get(&key).map_or(0, Vec::len);
        if len <= have {
            return MapRef::Cached(self.maps.get_mut(&key).expect("present"));
        }
        if len > self.max_entries {
            return MapRef::Temporary(vec![UNKNOWN; len]);
        }
        if self.entries - have + len > self.max_entries {
            tracing::debug!(
                entries = self.entries,
                "symbol id maps over their bound; dropped"
            );
            self.clear();
            self.resets += 1;
        }
        let map = self.maps.entry(key).or_default();
        self.entries += len - map.len();
        map.resize(len, UNKNOWN);
        MapRef::Cached(map)
    }
}

/// A map from [`SymbolCache::map`].
#[derive(Debug)]
pub enum MapRef<'a> {
    /// Kept for later frames.
    Cached(&'a mut Vec<u32>),
    /// Too large to keep.
    Temporary(Vec<u32>),
}

impl std::ops::Deref for MapRef<'_> {
    type Target = Vec<u32>;

    fn deref(&self) -> &Vec<u32> {
        match self {
            MapRef::Cached(m) => m,
            MapRef::Temporary(m) => m,
        }
    }
}

impl std::ops::DerefMut for MapRef<'_> {
    fn deref_mut(&mut self) -> &mut Vec<u32> {
        match self {
            MapRef::Cached(m) => m,
            MapRef::Temporary(m) => m,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_grow_to_the_ids_used_and_stay_under_the_bound() {
        let mut c = SymbolCache::new(100);
        c.map(1, "s", 10)[3] = 7;
        assert_eq!(c.map(1, "S", 5)[3], 7, "same column, any case");
        assert_eq!(c.entries(), 10);
        c.map(2, "s", 60);
        assert_eq!(c.entries(), 70);
        // Past the bound: everything is dropped, then the new map kept.
        c.map(3, "s", 50);
        assert_eq!(c.entries(), 50);
        assert_eq!(c.resets, 1);
        assert_eq!(c.map(1, "s", 10)[3], UNKNOWN);
        // Larger than the whole bound: not kept.
        assert_eq!(c.map(4, "s", 1000).len(), 1000);
        assert_eq!(c.entries(), 60);
    }
}
