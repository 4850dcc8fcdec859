//! The write-ahead log: record framing, the appending writer and the
//! recovering reader.
//!
//! The log is a directory of files `wal/<first lsn, 20 digits>.wal`, each a
//! sequence of records:
//!
//! ```text
//! offset  size  field
//! 0       4     magic "QWAL"
//! 4       4     crc32c of bytes 8 .. 24 + body_len
//! 8       1     format version (1)
//! 9       1     kind (1 = transaction, 2 = create table, 3 = add columns,
//!                     4 = part staged ahead of its transaction)
//! 10      2     reserved, 0
//! 12      4     body_len (u32 LE)
//! 16      8     lsn (u64 LE), strictly increasing across the log
//! 24      ...   body (see `db` for each kind)
//! ```
//!
//! Recovery reads every file in order and stops at the first record whose
//! header or checksum does not check out. If that record is in the last file
//! and no valid record follows it anywhere, it is a torn tail from a crash
//! mid-write: the file is cut there and the cut is logged. A bad record that
//! a valid one follows is corruption, and opening fails with the position.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::buffer::Buffer;

use crate::error::{Result, StorageError};

/// Record magic.
pub const MAGIC: [u8; 4] = *b"QWAL";
/// Record format version.
pub const VERSION: u8 = 1;
/// Bytes before the body.
pub const HEADER_LEN: usize = 24;
/// Largest body accepted when reading (a bound on what a corrupt length
/// field can make recovery allocate).
pub const MAX_BODY_LEN: usize = 1 << 30;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RecordKind {
    /// A committed transaction: rows for one or more tables.
    Transaction = 1,
    /// A new table.
    CreateTable = 2,
    /// New columns on a table.
    AddColumns = 3,
    /// Rows written ahead of the transaction that will commit them.
    Part = 4,
}

impl RecordKind {
    fn from_u8(b: u8) -> Option<RecordKind> {
        match b {
            1 => Some(RecordKind::Transaction),
            2 => Some(RecordKind::CreateTable),
            3 => Some(RecordKind::AddColumns),
            4 => Some(RecordKind::Part),
            _ => None,
        }
    }
}

/// Zeros for padding.
pub(crate) static ZEROS: [u8; 32] = [0; 32];

/// A piece of an encoded record: bytes of its own, or an Arrow buffer
/// referenced (not copied) until the write.
#[derive(Debug, Clone)]
pub enum Chunk {
    /// Owned bytes.
    Owned(Vec<u8>),
    /// An Arrow buffer of the batch being written.
    Arrow(Buffer),
    /// Zeros, to align what follows.
    Padding(usize),
}

impl Chunk {
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        match self {
            Chunk::Owned(v) => v,
            Chunk::Arrow(b) => b.as_slice(),
            Chunk::Padding(n) => &ZEROS[..*n],
        }
    }

    /// Byte length.
    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Appends one framed record to `out`.
pub fn encode_record(out: &mut Vec<u8>, kind: RecordKind, lsn: u64, body: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[0; 4]);
    out.push(VERSION);
    out.push(kind as u8);
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&lsn.to_le_bytes());
    out.extend_from_slice(body);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Frames a record whose body is the concatenation of `body`, appending the
/// header and then the body parts to `out` without copying them (they are
/// written with one vectored write).
pub fn encode_record_parts(out: &mut Vec<Chunk>, kind: RecordKind, lsn: u64, body: Vec<Chunk>) {
    let body_len: usize = body.iter().map(Chunk::len).sum();
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(&MAGIC);
    header.extend_from_slice(&[0; 4]);
    header.push(VERSION);
    header.push(kind as u8);
    header.extend_from_slice(&[0, 0]);
    header.extend_from_slice(&(body_len as u32).to_le_bytes());
    header.extend_from_slice(&lsn.to_le_bytes());
    let mut crc = crc32c::crc32c(&header[8..]);
    for b in &body {
        crc = crc32c::crc32c_append(crc, b.as_slice());
    }
    header[4..8].copy_from_slice(&crc.to_le_bytes());
    out.push(Chunk::Owned(header));
    out.extend(body.into_iter().filter(|b| !b.is_empty()));
}

/// A record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Kind.
    pub kind: RecordKind,
    /// Log sequence number.
    pub lsn: u64,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// Parses the record at the start of `bytes`: `Some((record, length))` if
/// its header and checksum are valid.
fn parse_record(bytes: &[u8]) -> Option<(RecordKind, u64, &[u8], usize)> {
    if bytes.len() < HEADER_LEN || bytes[..4] != MAGIC || bytes[8] != VERSION {
        return None;
    }
    let kind = RecordKind::from_u8(bytes[9])?;
    let body_len = u32::from_le_bytes(bytes[12..16].try_into().ok()?) as usize;
    if body_len > MAX_BODY_LEN || bytes.len() - HEADER_LEN < body_len {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[4..8].try_into().ok()?);
    let end = HEADER_LEN + body_len;
    if crc32c::crc32c(&bytes[8..end]) != crc {
        return None;
    }
    let lsn = u64::from_le_bytes(bytes[16..24].try_into().ok()?);
    Some((kind, lsn, &bytes[HEADER_LEN..end], end))
}

/// The log files in `dir`, in LSN order.
pub fn list_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let mut files = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(StorageError::io("list", dir)(e)),
    };
    for entry in entries {
        let path = entry.map_err(StorageError::io("list", dir))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if let Some(stem) = name.strip_suffix(".wal")
            && let Ok(lsn) = stem.parse::<u64>()
        {
            files.push((lsn, path));
        }
    }
    files.sort();
    Ok(files)
}

fn file_name(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(format!("{first_lsn:020}.wal"))
}

/// What recovery found in the log.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Every valid record, in order.
    pub records: Vec<(PathBuf, Record)>,
    /// Bytes cut from a torn tail.
    pub cut_bytes: u64,
    /// The LSN the next record gets.
    pub next_lsn: u64,
}

/// Reads the whole log, cutting a torn tail (see the module docs). Running
/// it again on the result finds the same records and cuts nothing.
pub fn recover(dir: &Path) -> Result<Recovered> {
    scan(dir, true)
}

/// Reads the log without changing it, stopping at the first invalid record
/// (a writer may be in the middle of appending it).
pub fn read_only(dir: &Path) -> Result<Recovered> {
    scan(dir, false)
}

/// Reads every record in order. At the first invalid one, `repair` cuts a
/// torn tail (or refuses corruption); otherwise reading just stops there.
fn scan(dir: &Path, repair: bool) -> Result<Recovered> {
    let files = list_files(dir)?;
    let mut out = Recovered::default();
    let mut last_lsn: Option<u64> = None;
    'files: for (index, (first_lsn, path)) in files.iter().enumerate() {
        let bytes = fs::read(path).map_err(StorageError::io("read", path))?;
        let mut pos = 0usize;
        while pos < bytes.len() {
            let Some((kind, lsn, body, len)) = parse_record(&bytes[pos..]) else {
                if repair {
                    out.cut_bytes = cut_torn_tail(&files, index, &bytes, pos)?;
                }
                break 'files;
            };
            if last_lsn.is_some_and(|l| lsn <= l) || (pos == 0 && lsn != *first_lsn) {
                return Err(StorageError::Corrupt {
                    path: path.clone(),
                    offset: pos as u64,
                    reason: "log sequence numbers out of order",
                });
            }
            last_lsn = Some(lsn);
            out.records.push((
                path.clone(),
                Record {
                    kind,
                    lsn,
                    body: body.to_vec(),
                },
            ));
            pos += len;
        }
    }
    out.next_lsn = last_lsn.map_or_else(|| files.last().map_or(1, |(f, _)| (*f).max(1)), |l| l + 1);
    Ok(out)
}

/// An invalid record at `pos` of file `index`: a torn tail if no valid
/// record follows anywhere, which is cut (and logged); otherwise
/// corruption. Returns the bytes cut.
///
/// The torn file need not be the last: a crash (power loss) right after a
/// roll can leave the new file's directory entry but lose the end of the
/// old file. Later files then hold no valid record and are removed, so the
/// writer resumes in the torn file. Nothing in them was acknowledged as
/// durable: what is durable is a prefix of the log.
fn cut_torn_tail(files: &[(u64, PathBuf)], index: usize, bytes: &[u8], pos: usize) -> Result<u64> {
    let path = &files[index].1;
    let followed = valid_record_after(bytes, pos + 1)
        || files[index + 1..].iter().any(|(_, p)| {
            fs::read(p)
                .map(|b| valid_record_after(&b, 0))
                .unwrap_or(false)
        });
    if followed {
        return Err(StorageError::Corrupt {
            path: path.clone(),
            offset: pos as u64,
            reason: "invalid record followed by valid ones",
        });
    }
    for (_, later) in &files[index + 1..] {
        fs::remove_file(later).map_err(StorageError::io("remove", later))?;
        tracing::warn!(path = %later.display(), "removed a WAL file after a torn one (it held no valid record)");
    }
    if index + 1 != files.len()
        && let Some(dir) = path.parent()
    {
        sync_dir(dir)?;
    }
    let cut = (bytes.len() - pos) as u64;
    let f = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(StorageError::io("open", path))?;
    f.set_len(pos as u64)
        .map_err(StorageError::io("truncate", path))?;
    f.sync_all().map_err(StorageError::io("sync", path))?;
    tracing::warn!(path = %path.display(), offset = pos, cut, "cut a torn WAL tail");
    Ok(cut)
}

/// Whether a valid record starts anywhere at or after `from`.
fn valid_record_after(bytes: &[u8], from: usize) -> bool {
    let mut i = from;
    while i + HEADER_LEN <= bytes.len() {
        match bytes[i..].windows(4).position(|w| w == MAGIC) {
            Some(p) => {
                if parse_record(&bytes[i + p..]).is_some() {
                    return true;
                }
                i += p + 1;
            }
            None => return false,
        }
    }
    false
}

/// Appends records to the current log file, rolling to a new file past a
/// size threshold.
#[derive(Debug)]
pub struct WalWriter {
    dir: PathBuf,
    /// Shared with sync jobs in flight (no descriptor per job).
    file: Arc<File>,
    path: PathBuf,
    len: u64,
    roll_size: u64,
    /// Earlier files written since the last sync. A sync covers them first,
    /// so what is durable is always a prefix of the log.
    unsynced: Vec<(PathBuf, Arc<File>)>,
    /// Files were created since the last sync: their directory entries are
    /// made durable by the next one.
    dir_unsynced: bool,
}

impl WalWriter {
    /// Opens the log for appending: the last file if there is one, else a new
    /// file starting at `next_lsn`.
    pub fn open(dir: &Path, next_lsn: u64, roll_size: u64) -> Result<WalWriter> {
        create_dir_durably(dir)?;
        let files = list_files(dir)?;
        let path = match files.last() {
            Some((_, p)) => p.clone(),
            None => file_name(dir, next_lsn),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(StorageError::io("open", &path))?;
        let len = file
            .metadata()
            .map_err(StorageError::io("stat", &path))?
            .len();
        sync_dir(dir)?;
        Ok(WalWriter {
            dir: dir.to_path_buf(),
            file: Arc::new(file),
            path,
            len,
            roll_size,
            unsynced: Vec::new(),
            dir_unsynced: false,
        })
    }

    /// The file being appended to.
    pub fn current_path(&self) -> &Path {
        &self.path
    }

    /// Starts a new file whose first record will be `next_lsn`, if the
    /// current one is past the roll size. Returns the new path.
    pub fn roll_if_full(&mut self, next_lsn: u64) -> Result<Option<PathBuf>> {
        if self.len < self.roll_size {
            return Ok(None);
        }
        // Neither the old file nor the directory entry of the new one is
        // fsync'd here: that would stall every commit behind it (a directory
        // fsync waits for metadata I/O; measured as most of the committer's
        // blocked time on ext4). The next sync does both, before the new
        // file's data, so what is durable stays a prefix of the log.
        let path = file_name(&self.dir, next_lsn);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(StorageError::io("create", &path))?;
        self.dir_unsynced = true;
        let old_file = std::mem::replace(&mut self.file, Arc::new(file));
        let old_path = std::mem::replace(&mut self.path, path.clone());
        self.unsynced.push((old_path, old_file));
        self.len = 0;
        Ok(Some(path))
    }

    /// Writes `bytes` (one or more framed records) with one `write`.
    pub fn append(&mut self, bytes: &[u8]) -> Result<()> {
        (&*self.file)
            .write_all(bytes)
            .map_err(StorageError::io("write", &self.path))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Writes `parts` (framed records, see [`encode_record_parts`]) with
    /// vectored writes, without joining them first.
    pub fn append_parts(&mut self, parts: &[Chunk]) -> Result<()> {
        let mut slices: Vec<std::io::IoSlice<'_>> = parts
            .iter()
            .map(|p| std::io::IoSlice::new(p.as_slice()))
            .collect();
        let mut rest = &mut slices[..];
        while !rest.is_empty() {
            let n = (&*self.file)
                .write_vectored(rest)
                .map_err(StorageError::io("write", &self.path))?;
            if n == 0 {
                return Err(StorageError::io("write", &self.path)(
                    std::io::ErrorKind::WriteZero.into(),
                ));
            }
            self.len += n as u64;
            std::io::IoSlice::advance_slices(&mut rest, n);
        }
        Ok(())
    }

    /// `fdatasync` of every file written since the last sync, oldest first:
    /// everything appended is durable.
    pub fn sync(&mut self) -> Result<()> {
        self.sync_job().run()
    }

    /// What a sync of everything appended so far must cover, taken out of
    /// the writer so another thread can do the fsyncs while this one keeps
    /// appending. Running it makes everything appended before this call
    /// durable.
    pub fn sync_job(&mut self) -> SyncJob {
        let dir = std::mem::take(&mut self.dir_unsynced).then(|| self.dir.clone());
        SyncJob {
            rolled: std::mem::take(&mut self.unsynced),
            dir,
            current: (self.path.clone(), Arc::clone(&self.file)),
        }
    }
}

/// The fsyncs that make a prefix of the log durable (see
/// [`WalWriter::sync_job`]).
#[derive(Debug)]
pub struct SyncJob {
    /// Files rolled away from since the previous job, oldest first.
    rolled: Vec<(PathBuf, Arc<File>)>,
    /// The log directory, when files were created since the previous job.
    dir: Option<PathBuf>,
    /// The file being appended to when the job was taken.
    current: (PathBuf, Arc<File>),
}

impl SyncJob {
    /// `fdatasync` of the rolled files oldest first, then the directory,
    /// then the current file.
    pub fn run(self) -> Result<()> {
        Self::run_all(vec![self])
    }

    /// Runs jobs taken one after another as one: every rolled file and
    /// directory they name, then only the last job's current file (an
    /// earlier job's current file is either the same file or one a later
    /// job lists as rolled).
    pub fn run_all(jobs: Vec<SyncJob>) -> Result<()> {
        let mut dir = None;
        let mut current = None;
        for job in jobs {
            for (path, file) in &job.rolled {
                file.sync_data().map_err(StorageError::io("sync", path))?;
            }
            dir = dir.or(job.dir);
            current = Some(job.current);
        }
        if let Some(dir) = dir {
            sync_dir(&dir)?;
        }
        match current {
            Some((path, file)) => file.sync_data().map_err(StorageError::io("sync", &path)),
            None => Ok(()),
        }
    }
}

/// Creates `dir` and any missing parents, fsyncing the parent of each
/// directory it creates, so the new entries survive a crash (a file made
/// durable inside a directory whose own entry was lost is lost with it).
pub fn create_dir_durably(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        create_dir_durably(parent)?;
    }
    match fs::create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(StorageError::io("create", dir)(e)),
    }
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(parent),
        _ => Ok(()),
    }
}

/// fsyncs a directory so new or renamed entries in it are durable.
pub fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(StorageError::io("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_records(dir: &Path, n: u64) -> Vec<u8> {
        let mut w = WalWriter::open(dir, 1, u64::MAX).unwrap();
        let mut all = Vec::new();
        for lsn in 1..=n {
            let mut buf = Vec::new();
            encode_record(
                &mut buf,
                RecordKind::Transaction,
                lsn,
                format!("body {lsn}").as_bytes(),
            );
            w.append(&buf).unwrap();
            all.extend_from_slice(&buf);
        }
        all
    }

    #[test]
    fn record_parts_frame_like_one_record() {
        let mut whole = Vec::new();
        encode_record(&mut whole, RecordKind::Transaction, 9, b"abcdef");
        let mut parts = Vec::new();
        encode_record_parts(
            &mut parts,
            RecordKind::Transaction,
            9,
            vec![
                Chunk::Owned(b"ab".to_vec()),
                Chunk::Owned(vec![]),
                Chunk::Arrow(arrow::buffer::Buffer::from_slice_ref(b"cd")),
                Chunk::Padding(0),
                Chunk::Owned(b"ef".to_vec()),
            ],
        );
        let joined: Vec<u8> = parts.iter().flat_map(|c| c.as_slice().to_vec()).collect();
        assert_eq!(joined, whole);
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::open(dir.path(), 9, u64::MAX).unwrap();
        w.append_parts(&parts).unwrap();
        let r = recover(dir.path()).unwrap();
        assert_eq!(r.records[0].1.body, b"abcdef");
    }

    #[test]
    fn records_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        write_records(dir.path(), 5);
        let r = recover(dir.path()).unwrap();
        assert_eq!(r.records.len(), 5);
        assert_eq!(r.records[4].1.body, b"body 5");
        assert_eq!(r.next_lsn, 6);
        assert_eq!(r.cut_bytes, 0);
    }

    #[test]
    fn torn_tail_at_every_offset_keeps_what_came_before() {
        let dir = tempfile::tempdir().unwrap();
        let all = write_records(dir.path(), 3);
        let path = list_files(dir.path()).unwrap()[0].1.clone();
        let record_len = all.len() / 3;
        for cut in 0..all.len() {
            fs::write(&path, &all[..cut]).unwrap();
            let r = recover(dir.path()).unwrap();
            assert_eq!(r.records.len(), cut / record_len, "cut at {cut}");
            // Recovery is idempotent.
            let again = recover(dir.path()).unwrap();
            assert_eq!(again.records.len(), r.records.len());
            assert_eq!(again.cut_bytes, 0);
        }
        // A garbled last record is cut too.
        let mut garbled = all.clone();
        let n = garbled.len();
        garbled[n - 2] ^= 0xFF;
        fs::write(&path, &garbled).unwrap();
        let r = recover(dir.path()).unwrap();
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.cut_bytes as usize, record_len);
    }

    #[test]
    fn a_bad_record_followed_by_a_good_one_is_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let mut all = write_records(dir.path(), 3);
        let path = list_files(dir.path()).unwrap()[0].1.clone();
        let record_len = all.len() / 3;
        all[record_len + HEADER_LEN] ^= 0xFF; // body of record 2
        fs::write(&path, &all).unwrap();
        let e = recover(dir.path()).unwrap_err();
        assert!(
            matches!(e, StorageError::Corrupt { offset, .. } if offset as usize == record_len),
            "{e}"
        );
    }

    #[test]
    fn a_torn_file_before_an_empty_rolled_one_is_the_end_of_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::open(dir.path(), 1, 100).unwrap();
        for lsn in 1..=4u64 {
            w.roll_if_full(lsn).unwrap();
            let mut buf = Vec::new();
            encode_record(&mut buf, RecordKind::Transaction, lsn, &[7; 40]);
            w.append(&buf).unwrap();
        }
        // A new file after the last record, then the end of the file before
        // it lost (power loss right after a roll).
        w.roll_if_full(5).unwrap();
        w.roll_if_full(5).unwrap();
        let files = list_files(dir.path()).unwrap();
        let (_, torn) = &files[files.len() - 2];
        let (_, empty) = files.last().unwrap().clone();
        let len = std::fs::metadata(torn).unwrap().len();
        drop(w);
        std::fs::OpenOptions::new()
            .write(true)
            .open(torn)
            .unwrap()
            .set_len(len - 10)
            .unwrap();
        let r = recover(dir.path()).unwrap();
        let lsns: Vec<u64> = r.records.iter().map(|(_, r)| r.lsn).collect();
        assert_eq!(lsns, (1..=lsns.len() as u64).collect::<Vec<_>>());
        assert_eq!(*lsns.last().unwrap(), 3, "the torn record is dropped");
        assert!(!empty.exists(), "the empty later file was left behind");
        // Writing resumes where the log ends, and reads back.
        let mut w = WalWriter::open(dir.path(), r.next_lsn, 100).unwrap();
        let mut buf = Vec::new();
        encode_record(&mut buf, RecordKind::Transaction, r.next_lsn, &[8; 40]);
        w.append(&buf).unwrap();
        drop(w);
        let again = recover(dir.path()).unwrap();
        assert_eq!(again.records.last().unwrap().1.lsn, 4);
    }

    #[test]
    fn directories_are_created_with_their_parents() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("a/b/2024-01-01");
        create_dir_durably(&deep).unwrap();
        assert!(deep.is_dir());
        // Existing directories, and a file in the way, are handled.
        create_dir_durably(&deep).unwrap();
        std::fs::write(dir.path().join("f"), b"x").unwrap();
        assert!(create_dir_durably(&dir.path().join("f/g")).is_err());
    }

    #[test]
    fn rolls_files_and_keeps_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = WalWriter::open(dir.path(), 1, 100).unwrap();
        for lsn in 1..=10u64 {
            w.roll_if_full(lsn).unwrap();
            let mut buf = Vec::new();
            encode_record(&mut buf, RecordKind::Transaction, lsn, &[7; 40]);
            w.append(&buf).unwrap();
        }
        assert!(list_files(dir.path()).unwrap().len() > 1);
        // Rolling leaves the old files and the new directory entries to the
        // next sync, which covers them all.
        assert!(w.dir_unsynced);
        let rolled = w.unsynced.len();
        assert!(rolled > 0);
        let first = w.sync_job();
        assert_eq!((first.rolled.len(), first.dir.is_some()), (rolled, true));
        assert!(!w.dir_unsynced);
        assert!(w.unsynced.is_empty());
        // A job taken later covers only what came after the first; run
        // together they cover everything.
        let mut buf = Vec::new();
        encode_record(&mut buf, RecordKind::Transaction, 11, &[7; 40]);
        w.roll_if_full(11).unwrap();
        w.append(&buf).unwrap();
        let second = w.sync_job();
        assert_eq!(second.rolled.len(), 1);
        assert_eq!(second.current.0, w.path);
        SyncJob::run_all(vec![first, second]).unwrap();
        let r = recover(dir.path()).unwrap();
        assert_eq!(
            r.records.iter().map(|(_, r)| r.lsn).collect::<Vec<_>>(),
            (1..=11).collect::<Vec<_>>()
        );
    }
}
