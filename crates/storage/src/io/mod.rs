//! The storage engine's only way to files: one small trait, [`FileSystem`],
//! with the operating system behind it in production ([`OsFileSystem`]) and
//! a simulated disk in tests ([`SimulatedDisk`]) that fails or tears chosen
//! operations and "powers off", dropping every write no fsync covered.
//!
//! Everything `quiver-storage` writes or reads goes through here (WAL,
//! catalog, manifests, segments), so a test can cut the power at any
//! operation and check what the ack contract promises survives. This module
//! owns no format and no policy: callers decide what to sync and when.
//!
//! ```
//! use quiver_storage::io::{FileSystem, PowerLoss, SimulatedDisk, write_all};
//! use std::path::Path;
//!
//! let disk = SimulatedDisk::new();
//! disk.create_dir(Path::new("/db")).unwrap();
//! disk.sync_dir(Path::new("/")).unwrap();
//! let f = disk.create(Path::new("/db/a")).unwrap();
//! write_all(&*f, &[b"synced"]).unwrap();
//! f.sync_data().unwrap();
//! disk.sync_dir(Path::new("/db")).unwrap();
//! write_all(&*f, &[b" and not"]).unwrap();
//! disk.power_off();
//! disk.restart(PowerLoss::DropUnsynced);
//! assert_eq!(quiver_storage::io::read(&disk, Path::new("/db/a")).unwrap(), b"synced");
//! ```

mod simulated;

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice, Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use simulated::{Fault, Hold, Op, PowerLoss, SimulatedDisk};

/// A directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Full path.
    pub path: PathBuf,
    /// Whether it is a directory.
    pub is_dir: bool,
}

/// File operations the storage engine uses. Paths are absolute or relative
/// to the process's working directory, as for `std::fs`.
pub trait FileSystem: Send + Sync + fmt::Debug {
    /// Creates one directory (its parent must exist); `AlreadyExists` if it
    /// does.
    fn create_dir(&self, path: &Path) -> io::Result<()>;
    /// The entries of a directory, in no particular order.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>>;
    /// Whether `path` is an existing directory.
    fn is_dir(&self, path: &Path) -> bool;
    /// Opens a file for appending, creating it if missing.
    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn WritableFile>>;
    /// Creates a file for writing, truncating it if it exists.
    fn create(&self, path: &Path) -> io::Result<Arc<dyn WritableFile>>;
    /// Opens a file for reading.
    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadableFile>>;
    /// Renames a file, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    /// Removes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    /// Removes an empty directory.
    fn remove_dir(&self, path: &Path) -> io::Result<()>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// The bytes of a file that never changes once written (a sealed
    /// segment): memory-mapped where the file system can map files, so
    /// reading them copies nothing and only the pages touched are read
    /// from disk. The default reads the whole file.
    fn map_read(&self, path: &Path) -> io::Result<bytes::Bytes> {
        let mut out = Vec::new();
        self.open_read(path)?.read_to_end(&mut out)?;
        Ok(bytes::Bytes::from(out))
    }
}

/// A file open for writing. Writes append; handles are shared between
/// threads (one writes, another fsyncs).
pub trait WritableFile: Send + Sync + fmt::Debug {
    /// Appends some of `bufs`, returning how many bytes.
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Makes everything written so far durable (`fdatasync`).
    fn sync_data(&self) -> io::Result<()>;
    /// Cuts (or extends with zeros) the file to `len` bytes.
    fn set_len(&self, len: u64) -> io::Result<()>;
    /// Current length.
    fn size(&self) -> io::Result<u64>;
}

/// A file open for reading.
pub trait ReadableFile: Read + Seek + Send + fmt::Debug {}

impl<T: Read + Seek + Send + fmt::Debug> ReadableFile for T {}

/// Appends every byte of `bufs` (looping over short writes).
pub fn write_all(file: &dyn WritableFile, bufs: &[&[u8]]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = bufs.iter().map(|b| IoSlice::new(b)).collect();
    write_all_vectored(file, &mut slices)
}

/// Appends every byte of `slices` (looping over short writes; `slices` is
/// consumed).
pub fn write_all_vectored(file: &dyn WritableFile, slices: &mut [IoSlice<'_>]) -> io::Result<()> {
    let mut rest = slices;
    // Skip leading empty slices so a fully written list ends the loop.
    IoSlice::advance_slices(&mut rest, 0);
    while !rest.is_empty() {
        let n = file.write_vectored(rest)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(())
}

/// Reads a whole file.
pub fn read(fs: &dyn FileSystem, path: &Path) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    fs.open_read(path)?.read_to_end(&mut out)?;
    Ok(out)
}

/// A [`WritableFile`] as `std::io::Write` (for encoders that want one).
#[derive(Debug)]
pub struct Writer<'a>(pub &'a dyn WritableFile);

impl Write for Writer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// The operating system's file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct OsFileSystem;

#[derive(Debug)]
struct OsFile(File);

impl WritableFile for OsFile {
    fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&self.0).write_vectored(bufs)
    }

    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }

    fn size(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
}

impl FileSystem for OsFileSystem {
    fn create_dir(&self, path: &Path) -> io::Result<()> {
        fs::create_dir(path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<DirEntry>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(path)? {
            let entry = entry?;
            out.push(DirEntry {
                path: entry.path(),
                is_dir: entry.file_type()?.is_dir(),
            });
        }
        Ok(out)
    }

    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }

    fn open_append(&self, path: &Path) -> io::Result<Arc<dyn WritableFile>> {
        let f = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Arc::new(OsFile(f)))
    }

    fn create(&self, path: &Path) -> io::Result<Arc<dyn WritableFile>> {
        Ok(Arc::new(OsFile(File::create(path)?)))
    }

    fn open_read(&self, path: &Path) -> io::Result<Box<dyn ReadableFile>> {
        Ok(Box::new(io::BufReader::with_capacity(
            256 * 1024,
            File::open(path)?,
        )))
    }

    fn remove_dir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }

    // Measured (`bench/egress`, 10M rows from segments): reading segments
    // through `read` spent about a tenth of the server's CPU copying page
    // cache into freshly zeroed buffers; mapped, the column bytes are used
    // where they are.
    #[allow(unsafe_code)]
    fn map_read(&self, path: &Path) -> io::Result<bytes::Bytes> {
        let file = File::open(path)?;
        // SAFETY: the mapping is read-only and private. What it relies on
        // is that nobody modifies or truncates the file while it is mapped:
        // this is only called for sealed segments, which the engine writes
        // to a temp file, fsyncs and renames into place, and never opens for
        // writing again (a dropped table's files are deleted, which leaves a
        // live mapping on the old inode). Every read of the bytes is bounds
        // checked against the length mapped here (`SegmentFile::open`), so a
        // file shorter than expected is an error, not a read past the end.
        // What no check here can catch: a third party truncating the file
        // in place, or the disk failing to read a page, raises SIGBUS where
        // `read` would have returned an error (a failing data disk stops the
        // server either way). Tested by the segment round trips and damaged
        // files in `segment.rs` and every storage and query test that reads
        // sealed rows. No access-pattern advice: projected scans read some
        // columns' ranges, not the file front to back.
        let map = unsafe { memmap2::Mmap::map(&file) }?;
        Ok(bytes::Bytes::from_owner(map))
    }
}

/// The default file system: the operating system's.
pub fn os() -> Arc<dyn FileSystem> {
    Arc::new(OsFileSystem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn os_file_system_writes_reads_renames_and_lists() {
        let dir = tempfile::tempdir().unwrap();
        let fs = OsFileSystem;
        let sub = dir.path().join("d");
        fs.create_dir(&sub).unwrap();
        assert!(fs.is_dir(&sub));
        assert_eq!(
            fs.create_dir(&sub).unwrap_err().kind(),
            io::ErrorKind::AlreadyExists
        );
        let a = sub.join("a");
        let f = fs.open_append(&a).unwrap();
        write_all(&*f, &[b"ab", b"", b"cd"]).unwrap();
        f.sync_data().unwrap();
        assert_eq!(f.size().unwrap(), 4);
        f.set_len(3).unwrap();
        write_all(&*f, &[b"x"]).unwrap();
        assert_eq!(read(&fs, &a).unwrap(), b"abcx");
        fs.rename(&a, &sub.join("b")).unwrap();
        fs.sync_dir(&sub).unwrap();
        let names: Vec<_> = fs.read_dir(&sub).unwrap();
        assert_eq!(names.len(), 1);
        assert_eq!(names[0].path, sub.join("b"));
        fs.remove_file(&sub.join("b")).unwrap();
        assert!(fs.read_dir(&sub).unwrap().is_empty());
        let c = fs.create(&sub.join("c")).unwrap();
        let mut w = Writer(&*c);
        w.write_all(b"hello").unwrap();
        assert_eq!(read(&fs, &sub.join("c")).unwrap(), b"hello");
    }
}
