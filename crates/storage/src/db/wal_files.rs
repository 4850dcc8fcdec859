//! Which WAL files may be deleted. Per file (keyed by its first lsn): the
//! end of the rows it holds, per table, and the staged parts in it that no
//! transaction has committed or abandoned yet. A file can go once it is not
//! the newest, holds no open part, and a durable manifest covers every row
//! it holds; files go oldest first.
//!
//! Invariants (checked with `debug_assert!`):
//! 1. Files are in lsn order and the last one is the file being written.
//! 2. A file's open-part count is the number of staged parts recorded in it
//!    that are neither committed nor abandoned.

use std::collections::HashMap;
use std::path::PathBuf;

/// One WAL file's bookkeeping.
#[derive(Debug, Clone)]
struct WalFile {
    path: PathBuf,
    first_lsn: u64,
    /// Table id → end of the rows the file holds for it.
    row_end: HashMap<u32, u64>,
    open_parts: usize,
}

/// The log's files and what pins them.
#[derive(Debug, Default)]
pub(super) struct WalFiles {
    files: Vec<WalFile>,
    /// Staged part id → first lsn of the file holding it.
    open_parts: HashMap<u64, u64>,
}

impl WalFiles {
    /// Bookkeeping for existing files, oldest first (nothing open).
    pub(super) fn new(files: impl IntoIterator<Item = (PathBuf, u64)>) -> Self {
        let files: Vec<WalFile> = files
            .into_iter()
            .map(|(path, first_lsn)| WalFile {
                path,
                first_lsn,
                row_end: HashMap::new(),
                open_parts: 0,
            })
            .collect();
        debug_assert!(files.windows(2).all(|w| w[0].first_lsn < w[1].first_lsn));
        WalFiles {
            files,
            open_parts: HashMap::new(),
        }
    }

    /// A new file being written from now on.
    pub(super) fn roll(&mut self, path: PathBuf, first_lsn: u64) {
        debug_assert!(
            self.files.last().is_none_or(|f| f.first_lsn < first_lsn),
            "invariant 1"
        );
        self.files.push(WalFile {
            path,
            first_lsn,
            row_end: HashMap::new(),
            open_parts: 0,
        });
    }

    /// How many files there are.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.files.len()
    }

    /// The file being written (its first lsn), if any.
    pub(super) fn current(&self) -> Option<u64> {
        self.files.last().map(|f| f.first_lsn)
    }

    fn file_mut(&mut self, first_lsn: u64) -> Option<&mut WalFile> {
        self.files.iter_mut().find(|f| f.first_lsn == first_lsn)
    }

    /// The file `file` holds rows of `table` up to `end`.
    pub(super) fn record_rows(&mut self, file: u64, table: u32, end: u64) {
        if let Some(f) = self.file_mut(file) {
            let e = f.row_end.entry(table).or_insert(end);
            *e = (*e).max(end);
        }
    }

    /// A staged part was written to `file`: it pins the file until its
    /// transaction commits or is abandoned.
    /// Forgets the rows of a dropped table: they pin no file any more.
    pub(super) fn forget_table(&mut self, table: u32) {
        for f in &mut self.files {
            f.row_end.remove(&table);
        }
    }

    pub(super) fn stage(&mut self, file: u64, part: u64) {
        if let Some(f) = self.file_mut(file) {
            f.open_parts += 1;
            self.open_parts.insert(part, file);
        }
    }

    /// A staged part was committed as rows of `table` up to `end`: its file
    /// now holds committed rows instead of an open part.
    pub(super) fn commit_staged(&mut self, part: u64, table: u32, end: u64) {
        if let Some(file) = self.open_parts.remove(&part)
            && let Some(f) = self.file_mut(file)
        {
            debug_assert!(f.open_parts > 0, "invariant 2");
            f.open_parts = f.open_parts.saturating_sub(1);
            let e = f.row_end.entry(table).or_insert(end);
            *e = (*e).max(end);
        }
    }

    /// A staged part's transaction was dropped.
    pub(super) fn abandon(&mut self, part: u64) {
        if let Some(file) = self.open_parts.remove(&part)
            && let Some(f) = self.file_mut(file)
        {
            debug_assert!(f.open_parts > 0, "invariant 2");
            f.open_parts = f.open_parts.saturating_sub(1);
        }
    }

    /// Past `max_files` files: the tables holding rows in the oldest one,
    /// with the end of those rows (sealing them lets it go).
    pub(super) fn pinning_tables(&self, max_files: usize) -> Vec<(u32, u64)> {
        if self.files.len() <= max_files.max(1) {
            return Vec::new();
        }
        self.files[0]
            .row_end
            .iter()
            .map(|(t, e)| (*t, *e))
            .collect()
    }

    /// How many of the oldest files may be deleted, given whether the rows
    /// of a table up to an end are in durable segments; and the first lsn
    /// of the oldest file that stays.
    pub(super) fn removable(&self, durable: impl Fn(u32, u64) -> bool) -> (usize, Option<u64>) {
        let mut n = 0;
        while n + 1 < self.files.len() {
            let f = &self.files[n];
            if f.open_parts > 0 || !f.row_end.iter().all(|(t, e)| durable(*t, *e)) {
                break;
            }
            n += 1;
        }
        (n, self.files.get(n).map(|f| f.first_lsn))
    }

    /// Forgets the `n` oldest files (after they were deleted), returning
    /// their paths.
    pub(super) fn remove_oldest(&mut self, n: usize) -> Vec<PathBuf> {
        let n = n.min(self.files.len().saturating_sub(1));
        self.files.drain(..n).map(|f| f.path).collect()
    }

    /// The oldest `n` files' paths.
    pub(super) fn oldest_paths(&self, n: usize) -> Vec<PathBuf> {
        self.files.iter().take(n).map(|f| f.path.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_go_oldest_first_once_unpinned_and_covered() {
        let mut w = WalFiles::new([(PathBuf::from("a"), 1), (PathBuf::from("b"), 10)]);
        w.record_rows(1, 7, 100);
        w.stage(1, 42);
        w.roll(PathBuf::from("c"), 20);
        w.record_rows(10, 7, 200);
        let all = |_: u32, _: u64| true;
        // The open part pins the first file, and so everything after it.
        assert_eq!(w.removable(all), (0, Some(1)));
        w.commit_staged(42, 8, 5);
        assert_eq!(w.removable(all), (2, Some(20)));
        // Rows not yet durable pin their file.
        assert_eq!(w.removable(|t, e| t != 7 || e <= 100), (1, Some(10)));
        assert_eq!(w.pinning_tables(2).len(), 2);
        assert!(w.pinning_tables(3).is_empty());
        assert_eq!(
            w.remove_oldest(5),
            vec![PathBuf::from("a"), PathBuf::from("b")]
        );
        assert_eq!(w.len(), 1);
        // Abandoning an unknown part changes nothing.
        w.abandon(99);
        w.stage(20, 1);
        w.abandon(1);
        assert_eq!(w.removable(all), (0, Some(20)));
    }
}
