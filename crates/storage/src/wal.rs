//! The write-ahead log: the appending writer, the syncs that make a prefix
//! of it durable, and recovery's two passes over it.
//!
//! The log is a directory of files `wal/<first lsn, 20 digits>.wal`, each a
//! file header and records (byte maps in [`crate::format::wal`]). Records
//! are written in commit groups: the committer frames every request it took
//! at once as records, flags the last one, and writes the group with one
//! vectored write; a group never spans files.
//!
//! # What recovery trusts
//!
//! 1. A record whose header checks out under its file's salt, whose body
//!    checksum holds, and which chains to the record before it (lsn + 1,
//!    the previous header's crc). The first record of the oldest file
//!    anchors the chain.
//! 2. Only whole commit groups: the log ends after the last group-ending
//!    record of the chain. A group cut short (a write torn by a crash, or
//!    cut back after a failed write) is not applied, whichever of its
//!    records made it.
//!
//! Everything after that end is the tail. It is cut (the file truncated,
//! later files removed, both made durable) unless a record header in it,
//! under one of the log's salts, says records at or past the end were
//! already fsync'd when it was written: then data an fsync covered is
//! damaged, and opening fails with the position. (A power cut can leave
//! unsynced writes in any order, so a valid-looking record after a bad one
//! proves nothing by itself.) Finding the end reads each record once and
//! holds one buffer; scanning the tail for such headers is linear in its
//! length (a header is checked in O(1)).
//!
//! [`scan`] is the first pass (find the end, cut the tail); [`Replay`] is
//! the second (each trusted record in order, one body in memory at a time).

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::{IoSlice, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arrow::buffer::Buffer;

use crate::error::{Result, StorageError};
use crate::format::wal::{
    FILE_HEADER_LEN, FileHeader, RECORD_HEADER_LEN, RECORD_MAGIC, RecordHeader, RecordKind,
};
use crate::io::{FileSystem, WritableFile, write_all_vectored};
use crate::limits::MAX_RECORD_BODY_LEN;

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

/// A record to append: kind and body (its lsn is the writer's next).
#[derive(Debug)]
pub struct RecordToWrite {
    /// Kind.
    pub kind: RecordKind,
    /// Body chunks, written in order.
    pub body: Vec<Chunk>,
}

impl RecordToWrite {
    /// Body length, checked against [`MAX_RECORD_BODY_LEN`] (the limit
    /// recovery applies) before anything is written.
    pub fn body_len(&self) -> Result<u32> {
        let len: usize = self.body.iter().map(Chunk::len).sum();
        match u32::try_from(len) {
            Ok(v) if len <= MAX_RECORD_BODY_LEN => Ok(v),
            _ => Err(StorageError::LimitExceeded {
                what: "bytes in one WAL record",
                value: len as u64,
                limit: MAX_RECORD_BODY_LEN as u64,
            }),
        }
    }
}

fn file_name(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(format!("{first_lsn:020}.wal"))
}

/// A fresh random salt for a new log file (never 0).
fn new_salt() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut h = RandomState::new().build_hasher();
    h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        h.write_u128(t.as_nanos());
    }
    h.write_u32(std::process::id());
    h.finish().max(1)
}

/// The log files in `dir`, in lsn order.
pub fn list_files(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match fs.read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StorageError::io("list", dir)(e)),
    };
    let mut files: Vec<(u64, PathBuf)> = entries
        .into_iter()
        .filter(|e| !e.is_dir)
        .filter_map(|e| {
            let name = e.path.file_name()?.to_str()?;
            let lsn = name.strip_suffix(".wal")?.parse::<u64>().ok()?;
            Some((lsn, e.path))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// Where the trusted log ends: where the writer resumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEnd {
    /// The file the next record goes into, its header, and the offset just
    /// past its last trusted record; `None` if the log has no usable file.
    pub file: Option<(PathBuf, FileHeader, u64)>,
    /// The lsn the next record gets.
    pub next_lsn: u64,
    /// The header crc the next record chains to.
    pub prev_crc: u32,
}

/// A file holding trusted records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedFile {
    /// The file.
    pub path: PathBuf,
    /// Its header.
    pub header: FileHeader,
    /// The offset just past its last trusted record.
    pub end: u64,
}

/// Bytes after the trusted end of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// The file the tail starts in (`None`: it starts with a later file).
    pub file: Option<PathBuf>,
    /// Where it starts in that file.
    pub offset: u64,
    /// Later files, wholly in the tail.
    pub later_files: Vec<PathBuf>,
    /// Bytes in the tail, over all files.
    pub bytes: u64,
    /// Why the first untrusted byte is not trusted.
    pub reason: &'static str,
}

/// What the first pass found.
#[derive(Debug, Clone)]
pub struct Scan {
    /// Files with trusted records, in order.
    pub files: Vec<ScannedFile>,
    /// The end of the trusted log.
    pub end: LogEnd,
    /// What follows it, if anything.
    pub tail: Option<Tail>,
    /// Trusted records.
    pub records: u64,
}

/// Reads into `buf` until it is full or the input ends; returns how many
/// bytes were read.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Reads `len` bytes and checks their crc32c; false if they run out or the
/// checksum differs. Uses `buf` as scratch (no allocation per record).
fn body_checks(r: &mut dyn Read, len: u32, crc: u32, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut left = len as usize;
    let mut sum = 0u32;
    while left > 0 {
        let want = left.min(buf.len());
        let got = read_full(r, &mut buf[..want])?;
        sum = crc32c::crc32c_append(sum, &buf[..got]);
        if got < want {
            return Ok(false);
        }
        left -= got;
    }
    Ok(sum == crc)
}

/// The trusted end so far, in the scan's file list.
#[derive(Debug, Clone, Copy)]
struct Trusted {
    file: usize,
    offset: u64,
    next_lsn: u64,
    prev_crc: u32,
}

/// The first pass of recovery: finds the end of the trusted log (see the
/// module docs) without changing anything. `lsn_floor` is the lsn the log
/// continues from when it holds no record (the catalog keeps it when old
/// files are deleted). Fails with [`StorageError::Corrupt`] when the tail
/// holds a record written after an fsync that covered past the end.
pub fn scan(fs: &dyn FileSystem, dir: &Path, lsn_floor: u64) -> Result<Scan> {
    let files = list_files(fs, dir)?;
    let io = |path: &Path| StorageError::io("read", path);
    let mut scanned: Vec<ScannedFile> = Vec::new();
    let mut chain: Option<(u64, u32)> = None;
    let mut trusted: Option<Trusted> = None;
    let mut max_claim = 0u64;
    let mut records = 0u64;
    // (index in `files`, offset, reason) of the first untrusted byte.
    let mut broken: Option<(usize, u64, &'static str)> = None;
    let mut buf = vec![0u8; 256 * 1024];
    'files: for (i, (name_lsn, path)) in files.iter().enumerate() {
        let mut r = fs.open_read(path).map_err(io(path))?;
        let mut hb = [0u8; FILE_HEADER_LEN];
        let got = read_full(&mut r, &mut hb).map_err(io(path))?;
        let header = match (got == FILE_HEADER_LEN)
            .then(|| FileHeader::decode(&hb))
            .flatten()
        {
            // Lsns start at 1.
            Some(h) if h.first_lsn == *name_lsn && h.first_lsn > 0 => h,
            _ => {
                broken = Some((i, 0, "a WAL file header is torn or damaged"));
                break;
            }
        };
        if chain.is_some_and(|(next, _)| next != header.first_lsn) {
            broken = Some((i, 0, "a WAL file does not continue the log"));
            break;
        }
        scanned.push(ScannedFile {
            path: path.clone(),
            header,
            end: FILE_HEADER_LEN as u64,
        });
        let fi = scanned.len() - 1;
        // A file that starts where the last whole group ended is where the
        // next record would go.
        if trusted.is_none_or(|t| t.next_lsn == header.first_lsn) {
            trusted = Some(Trusted {
                file: fi,
                offset: FILE_HEADER_LEN as u64,
                next_lsn: header.first_lsn,
                prev_crc: chain.map_or(0, |c| c.1),
            });
        }
        let mut offset = FILE_HEADER_LEN as u64;
        loop {
            let mut rh = [0u8; RECORD_HEADER_LEN];
            match read_full(&mut r, &mut rh).map_err(io(path))? {
                0 => break,
                RECORD_HEADER_LEN => {}
                _ => {
                    broken = Some((i, offset, "a record header is torn"));
                    break 'files;
                }
            }
            let Some((h, crc)) = RecordHeader::decode(&rh, header.salt) else {
                broken = Some((i, offset, "a record header is damaged"));
                break 'files;
            };
            let expected = chain.map_or(header.first_lsn, |c| c.0);
            if h.lsn != expected || chain.is_some_and(|c| c.1 != h.prev_crc) {
                broken = Some((i, offset, "a record does not chain to the one before"));
                break 'files;
            }
            if !body_checks(&mut r, h.body_len, h.body_crc, &mut buf).map_err(io(path))? {
                broken = Some((i, offset, "a record body is torn or damaged"));
                break 'files;
            }
            let Some(next) = h.lsn.checked_add(1) else {
                broken = Some((i, offset, "a record's lsn is out of range"));
                break 'files;
            };
            offset += (RECORD_HEADER_LEN as u64) + u64::from(h.body_len);
            chain = Some((next, crc));
            max_claim = max_claim.max(h.durable_lsn);
            records += 1;
            scanned[fi].end = offset;
            if h.group_end {
                trusted = Some(Trusted {
                    file: fi,
                    offset,
                    next_lsn: next,
                    prev_crc: crc,
                });
            }
        }
    }
    let end = match trusted {
        Some(t) => LogEnd {
            file: Some((
                scanned[t.file].path.clone(),
                scanned[t.file].header,
                t.offset,
            )),
            next_lsn: t.next_lsn,
            prev_crc: t.prev_crc,
        },
        None => LogEnd {
            file: None,
            next_lsn: files.first().map_or(1, |f| f.0).max(lsn_floor).max(1),
            prev_crc: 0,
        },
    };
    // The tail: untrusted bytes of the end's file, then every later file.
    let first_later = match (trusted, broken) {
        (Some(t), _) => files
            .iter()
            .position(|(_, p)| *p == scanned[t.file].path)
            .map_or(files.len(), |i| i + 1),
        (None, _) => 0,
    };
    let mut tail = None;
    let mut tail_bytes = 0u64;
    let mut end_file_extra = 0u64;
    if let Some(t) = trusted {
        let len = file_len(fs, &scanned[t.file].path)?;
        end_file_extra = len.saturating_sub(t.offset);
        tail_bytes += end_file_extra;
    }
    let later: Vec<PathBuf> = files[first_later..].iter().map(|f| f.1.clone()).collect();
    for p in &later {
        tail_bytes += file_len(fs, p)?;
    }
    if end_file_extra > 0 || !later.is_empty() {
        let reason = broken.map_or("a commit group is incomplete", |b| b.2);
        tail = Some(Tail {
            file: trusted.map(|t| scanned[t.file].path.clone()),
            offset: trusted.map_or(0, |t| t.offset),
            later_files: later,
            bytes: tail_bytes,
            reason,
        });
    }
    // Files after the end's file hold nothing trusted.
    if let Some(t) = trusted {
        scanned.truncate(t.file + 1);
        scanned[t.file].end = t.offset;
    } else {
        scanned.clear();
    }
    if let Some(tail) = &tail {
        check_tail_claims(fs, &files, tail, &end, max_claim)?;
    }
    Ok(Scan {
        files: scanned,
        end,
        tail,
        records,
    })
}

fn file_len(fs: &dyn FileSystem, path: &Path) -> Result<u64> {
    let mut r = fs.open_read(path).map_err(StorageError::io("read", path))?;
    r.seek(SeekFrom::End(0))
        .map_err(StorageError::io("read", path))
}

/// Refuses a tail that holds a record written after an fsync covering
/// records at or past the end of the trusted log (see the module docs).
fn check_tail_claims(
    fs: &dyn FileSystem,
    files: &[(u64, PathBuf)],
    tail: &Tail,
    end: &LogEnd,
    max_claim: u64,
) -> Result<()> {
    let damaged = |path: &Path, offset: u64| StorageError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: "WAL records that were fsync'd are damaged or missing",
    };
    let path_of_tail = tail
        .file
        .clone()
        .or_else(|| tail.later_files.first().cloned());
    if max_claim >= end.next_lsn {
        return Err(damaged(
            path_of_tail.as_deref().unwrap_or(Path::new("wal")),
            tail.offset,
        ));
    }
    // Every salt the log uses, and the salt bytes of headers that fail
    // their check (a damaged header's records are still checked under its
    // salt, unless the damage hit the salt itself); every record is checked
    // under each.
    let mut salts = Vec::new();
    for (_, path) in files {
        let mut r = fs.open_read(path).map_err(StorageError::io("read", path))?;
        let mut hb = [0u8; FILE_HEADER_LEN];
        if read_full(&mut r, &mut hb).map_err(StorageError::io("read", path))? == FILE_HEADER_LEN {
            let salt = match FileHeader::decode(&hb) {
                Some(h) => h.salt,
                None => u64::from_le_bytes(hb[24..32].try_into().expect("8 bytes")),
            };
            if !salts.contains(&salt) {
                salts.push(salt);
            }
        }
    }
    let regions = tail
        .file
        .iter()
        .map(|p| (p.clone(), tail.offset))
        .chain(tail.later_files.iter().map(|p| (p.clone(), 0)));
    for (path, from) in regions {
        let io = StorageError::io("read", &path);
        let mut r = fs.open_read(&path).map_err(&io)?;
        r.seek(SeekFrom::Start(from)).map_err(&io)?;
        // Slide a window over the file, keeping the last header's worth of
        // bytes so a header across two reads is seen.
        let mut window: Vec<u8> = Vec::with_capacity(1 << 20);
        let mut window_at = from;
        let mut chunk = vec![0u8; 1 << 20];
        loop {
            let n = read_full(&mut r, &mut chunk).map_err(StorageError::io("read", &path))?;
            window.extend_from_slice(&chunk[..n]);
            let mut i = 0;
            while let Some(p) = find(&window[i..], &RECORD_MAGIC) {
                let at = i + p;
                if at + RECORD_HEADER_LEN > window.len() {
                    break;
                }
                let mut hb = [0u8; RECORD_HEADER_LEN];
                hb.copy_from_slice(&window[at..at + RECORD_HEADER_LEN]);
                for salt in &salts {
                    if let Some((h, _)) = RecordHeader::decode(&hb, *salt)
                        && h.durable_lsn >= end.next_lsn
                    {
                        return Err(damaged(&path, window_at + at as u64));
                    }
                }
                i = at + 1;
            }
            if n == 0 {
                break;
            }
            let keep = window.len().min(RECORD_HEADER_LEN - 1);
            let drop = window.len() - keep;
            window.drain(..drop);
            window_at += drop as u64;
        }
    }
    Ok(())
}

/// The first position of `needle` in `hay`.
fn find(hay: &[u8], needle: &[u8; 4]) -> Option<usize> {
    hay.windows(4).position(|w| w == needle)
}

/// Cuts the tail `scan` found: truncates the end's file, removes later
/// files, and makes both durable. Running [`scan`] again finds no tail.
/// Returns the bytes cut.
pub fn cut_tail(fs: &dyn FileSystem, dir: &Path, scan: &Scan) -> Result<u64> {
    let Some(tail) = &scan.tail else {
        return Ok(0);
    };
    for later in &tail.later_files {
        fs.remove_file(later)
            .map_err(StorageError::io("remove", later))?;
        tracing::warn!(path = %later.display(), "removed a WAL file after the end of the log (it held no whole commit group)");
    }
    if !tail.later_files.is_empty() {
        fs.sync_dir(dir).map_err(StorageError::io("sync", dir))?;
    }
    if let Some(path) = &tail.file {
        let f = fs
            .open_append(path)
            .map_err(StorageError::io("open", path))?;
        f.set_len(tail.offset)
            .map_err(StorageError::io("truncate", path))?;
        f.sync_data().map_err(StorageError::io("sync", path))?;
    }
    tracing::warn!(
        file = ?tail.file,
        offset = tail.offset,
        bytes = tail.bytes,
        reason = tail.reason,
        "cut the WAL's torn tail"
    );
    Ok(tail.bytes)
}

/// A record read back by [`Replay`].
#[derive(Debug)]
pub struct ReplayedRecord {
    /// Kind.
    pub kind: RecordKind,
    /// Log sequence number.
    pub lsn: u64,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Index of its file in the scan.
    pub file: usize,
    /// Where its body starts in the file.
    pub body_offset: u64,
}

/// The second pass of recovery: every trusted record in order, one body in
/// memory at a time. Checksums are checked again (the files are read again).
pub struct Replay<'a> {
    fs: &'a dyn FileSystem,
    files: &'a [ScannedFile],
    file: usize,
    reader: Option<Box<dyn crate::io::ReadableFile>>,
    offset: u64,
}

impl<'a> Replay<'a> {
    /// Replays the files of `scan`.
    pub fn new(fs: &'a dyn FileSystem, scan: &'a Scan) -> Self {
        Replay {
            fs,
            files: &scan.files,
            file: 0,
            reader: None,
            offset: 0,
        }
    }

    fn next_record(&mut self) -> Result<Option<ReplayedRecord>> {
        loop {
            let Some(f) = self.files.get(self.file) else {
                return Ok(None);
            };
            let changed = |reason| StorageError::Corrupt {
                path: f.path.clone(),
                offset: 0,
                reason,
            };
            if self.reader.is_none() {
                let mut r = self
                    .fs
                    .open_read(&f.path)
                    .map_err(StorageError::io("read", &f.path))?;
                r.seek(SeekFrom::Start(FILE_HEADER_LEN as u64))
                    .map_err(StorageError::io("read", &f.path))?;
                self.reader = Some(r);
                self.offset = FILE_HEADER_LEN as u64;
            }
            if self.offset >= f.end {
                self.reader = None;
                self.file += 1;
                continue;
            }
            let r = self.reader.as_mut().expect("opened above");
            let mut hb = [0u8; RECORD_HEADER_LEN];
            if read_full(r, &mut hb).map_err(StorageError::io("read", &f.path))? != hb.len() {
                return Err(changed("the WAL changed while it was recovered"));
            }
            let (h, _) = RecordHeader::decode(&hb, f.header.salt)
                .ok_or_else(|| changed("the WAL changed while it was recovered"))?;
            let mut body = vec![0u8; h.body_len as usize];
            r.read_exact(&mut body)
                .map_err(StorageError::io("read", &f.path))?;
            if crc32c::crc32c(&body) != h.body_crc {
                return Err(changed("the WAL changed while it was recovered"));
            }
            let body_offset = self.offset + RECORD_HEADER_LEN as u64;
            self.offset = body_offset + u64::from(h.body_len);
            return Ok(Some(ReplayedRecord {
                kind: h.kind,
                lsn: h.lsn,
                body,
                file: self.file,
                body_offset,
            }));
        }
    }
}

impl Iterator for Replay<'_> {
    type Item = Result<ReplayedRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record().transpose()
    }
}

/// Reads `len` body bytes at `offset` of `path` again (a staged part named
/// by a later transaction).
pub fn read_at(fs: &dyn FileSystem, path: &Path, offset: u64, len: usize) -> Result<Vec<u8>> {
    let io = StorageError::io("read", path);
    let mut r = fs.open_read(path).map_err(&io)?;
    r.seek(SeekFrom::Start(offset)).map_err(&io)?;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).map_err(&io)?;
    Ok(body)
}

/// Appends commit groups to the current log file, rolling to a new file
/// past a size threshold.
#[derive(Debug)]
pub struct WalWriter {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    /// Shared with sync jobs in flight.
    file: Arc<dyn WritableFile>,
    path: PathBuf,
    salt: u64,
    len: u64,
    roll_size: u64,
    next_lsn: u64,
    prev_crc: u32,
    /// Earlier files written since the last sync job. A sync covers them
    /// first, so what is durable is always a prefix of the log.
    unsynced: Vec<(PathBuf, Arc<dyn WritableFile>)>,
    /// Files were created since the last sync job: their directory entries
    /// are made durable by the next one.
    dir_unsynced: bool,
}

impl WalWriter {
    /// Opens the log for appending at `end` (recovery's result, after the
    /// tail was cut), creating the first file if there is none, and makes
    /// everything in the log durable (so the writer may say so in the
    /// records it writes).
    pub fn open(
        fs: Arc<dyn FileSystem>,
        dir: &Path,
        end: &LogEnd,
        roll_size: u64,
    ) -> Result<WalWriter> {
        create_dir_durably(&*fs, dir)?;
        for (_, path) in list_files(&*fs, dir)? {
            let f = fs
                .open_append(&path)
                .map_err(StorageError::io("open", &path))?;
            f.sync_data().map_err(StorageError::io("sync", &path))?;
        }
        let (file, path, salt, len) = match &end.file {
            Some((path, header, offset)) => {
                let f = fs
                    .open_append(path)
                    .map_err(StorageError::io("open", path))?;
                let len = f.size().map_err(StorageError::io("stat", path))?;
                if len != *offset {
                    return Err(StorageError::Corrupt {
                        path: path.clone(),
                        offset: *offset,
                        reason: "the WAL's tail was not cut before writing",
                    });
                }
                (f, path.clone(), header.salt, len)
            }
            None => {
                let (f, path, salt) = Self::create_file(&*fs, dir, end.next_lsn)?;
                (f, path, salt, FILE_HEADER_LEN as u64)
            }
        };
        sync_dir(&*fs, dir)?;
        Ok(WalWriter {
            fs,
            dir: dir.to_path_buf(),
            file,
            path,
            salt,
            len,
            roll_size,
            next_lsn: end.next_lsn,
            prev_crc: end.prev_crc,
            unsynced: Vec::new(),
            dir_unsynced: false,
        })
    }

    /// Creates a log file starting at `first_lsn` and writes its header
    /// (not synced).
    fn create_file(
        fs: &dyn FileSystem,
        dir: &Path,
        first_lsn: u64,
    ) -> Result<(Arc<dyn WritableFile>, PathBuf, u64)> {
        let path = file_name(dir, first_lsn);
        let salt = new_salt();
        let f = fs
            .create(&path)
            .map_err(StorageError::io("create", &path))?;
        let header = FileHeader { first_lsn, salt }.encode();
        crate::io::write_all(&*f, &[&header]).map_err(StorageError::io("write", &path))?;
        Ok((f, path, salt))
    }

    /// The file being appended to.
    pub fn current_path(&self) -> &Path {
        &self.path
    }

    /// The lsn the next record gets.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Writes `records` as one commit group (lsns from [`Self::next_lsn`],
    /// the last record flagged) with vectored writes; `durable_lsn` is what
    /// an fsync already covers. Every body must pass
    /// [`RecordToWrite::body_len`]. On failure the file is cut back to
    /// where the group began (best effort: recovery ignores an unfinished
    /// group anyway) and the writer must not be used again.
    pub fn append_group(&mut self, records: Vec<RecordToWrite>, durable_lsn: u64) -> Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        let count = records.len();
        let mut headers: Vec<[u8; RECORD_HEADER_LEN]> = Vec::with_capacity(count);
        let mut lsn = self.next_lsn;
        let mut prev_crc = self.prev_crc;
        let mut total = 0u64;
        for (i, r) in records.iter().enumerate() {
            let body_len = r.body_len()?;
            let mut body_crc = 0u32;
            for c in &r.body {
                body_crc = crc32c::crc32c_append(body_crc, c.as_slice());
            }
            let (bytes, crc) = RecordHeader {
                kind: r.kind,
                group_end: i + 1 == count,
                body_len,
                lsn,
                durable_lsn,
                prev_crc,
                body_crc,
            }
            .encode(self.salt);
            headers.push(bytes);
            prev_crc = crc;
            lsn += 1;
            total += (RECORD_HEADER_LEN as u64) + u64::from(body_len);
        }
        let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(count * 8);
        for (h, r) in headers.iter().zip(&records) {
            slices.push(IoSlice::new(h));
            slices.extend(
                r.body
                    .iter()
                    .filter(|c| !c.is_empty())
                    .map(|c| IoSlice::new(c.as_slice())),
            );
        }
        let start = self.len;
        // IOV_MAX is 1024 on Linux: write in batches of slices.
        let mut result = Ok(());
        for batch in slices.chunks_mut(1024) {
            result = write_all_vectored(&*self.file, batch);
            if result.is_err() {
                break;
            }
        }
        if let Err(e) = result {
            if let Err(cut) = self.file.set_len(start) {
                tracing::error!(path = %self.path.display(), error = %cut, "could not cut back a failed WAL write; recovery ignores the unfinished group");
            }
            return Err(StorageError::io("write", &self.path)(e));
        }
        self.len = start + total;
        self.next_lsn = lsn;
        self.prev_crc = prev_crc;
        Ok(())
    }

    /// Appends a sync mark (its own group) saying everything through
    /// `durable_lsn` is fsync'd; the caller makes sure it is.
    pub fn append_sync_mark(&mut self, durable_lsn: u64) -> Result<()> {
        self.append_group(
            vec![RecordToWrite {
                kind: RecordKind::SyncMark,
                body: Vec::new(),
            }],
            durable_lsn,
        )
    }

    /// Starts a new file if the current one is past the roll size. Returns
    /// the new path.
    pub fn roll_if_full(&mut self) -> Result<Option<PathBuf>> {
        if self.len < self.roll_size {
            return Ok(None);
        }
        // Neither the old file nor the directory entry of the new one is
        // fsync'd here: that would stall every commit behind it (a directory
        // fsync waits for metadata I/O). The next sync does both, before
        // the new file's data, so what is durable stays a prefix of the log.
        let (file, path, salt) = Self::create_file(&*self.fs, &self.dir, self.next_lsn)?;
        self.dir_unsynced = true;
        let old_file = std::mem::replace(&mut self.file, file);
        let old_path = std::mem::replace(&mut self.path, path.clone());
        self.unsynced.push((old_path, old_file));
        self.salt = salt;
        self.len = FILE_HEADER_LEN as u64;
        Ok(Some(path))
    }

    /// What a sync of everything written so far must cover, taken out of
    /// the writer so another thread can run the fsyncs while this one keeps
    /// writing. Running it makes every record written before this call
    /// durable (through `next_lsn() - 1`).
    pub fn sync_job(&mut self) -> SyncJob {
        let dir = std::mem::take(&mut self.dir_unsynced).then(|| self.dir.clone());
        SyncJob {
            fs: self.fs.clone(),
            rolled: std::mem::take(&mut self.unsynced),
            dir,
            current: (self.path.clone(), Arc::clone(&self.file)),
            through_lsn: self.next_lsn.saturating_sub(1),
        }
    }
}

/// The fsyncs that make a prefix of the log durable (see
/// [`WalWriter::sync_job`]).
#[derive(Debug)]
pub struct SyncJob {
    fs: Arc<dyn FileSystem>,
    /// Files rolled away from since the previous job, oldest first.
    rolled: Vec<(PathBuf, Arc<dyn WritableFile>)>,
    /// The log directory, when files were created since the previous job.
    dir: Option<PathBuf>,
    /// The file being appended to when the job was taken.
    current: (PathBuf, Arc<dyn WritableFile>),
    /// The last lsn the job makes durable.
    pub through_lsn: u64,
}

impl SyncJob {
    /// Folds a job taken after this one into it: running the result does
    /// what running both in order would.
    pub fn merge(&mut self, later: SyncJob) {
        self.rolled.extend(later.rolled);
        if later.dir.is_some() {
            self.dir = later.dir;
        }
        // This job's current file is either the later one's too, or one it
        // lists as rolled.
        self.current = later.current;
        self.through_lsn = later.through_lsn;
    }

    /// `fdatasync` of the rolled files oldest first, then the directory,
    /// then the current file.
    pub fn run(&self) -> Result<()> {
        for (path, file) in &self.rolled {
            file.sync_data().map_err(StorageError::io("sync", path))?;
        }
        if let Some(dir) = &self.dir {
            sync_dir(&*self.fs, dir)?;
        }
        let (path, file) = &self.current;
        file.sync_data().map_err(StorageError::io("sync", path))
    }
}

/// Creates `dir` and any missing parents, fsyncing the parent of each
/// directory it creates, so the new entries survive a crash (a file made
/// durable inside a directory whose own entry was lost is lost with it).
pub fn create_dir_durably(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    if fs.is_dir(dir) {
        return Ok(());
    }
    if let Some(parent) = dir.parent()
        && !parent.as_os_str().is_empty()
    {
        create_dir_durably(fs, parent)?;
    }
    match fs.create_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => return Err(StorageError::io("create", dir)(e)),
    }
    match dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => sync_dir(fs, parent),
        _ => Ok(()),
    }
}

/// fsyncs a directory so new or renamed entries in it are durable.
pub fn sync_dir(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).map_err(StorageError::io("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{Fault, PowerLoss, SimulatedDisk};

    fn disk() -> (SimulatedDisk, Arc<dyn FileSystem>, PathBuf) {
        let d = SimulatedDisk::new();
        let fs: Arc<dyn FileSystem> = Arc::new(d.clone());
        (d, fs, PathBuf::from("/db/wal"))
    }

    fn record(body: &[u8]) -> RecordToWrite {
        RecordToWrite {
            kind: RecordKind::Transaction,
            body: vec![Chunk::Owned(body.to_vec())],
        }
    }

    fn lsns(fs: &dyn FileSystem, scan: &Scan) -> Vec<u64> {
        Replay::new(fs, scan).map(|r| r.unwrap().lsn).collect()
    }

    fn open(fs: &Arc<dyn FileSystem>, dir: &Path, roll: u64) -> (WalWriter, Scan) {
        let scan = scan(&**fs, dir, 1).unwrap();
        cut_tail(&**fs, dir, &scan).unwrap();
        (
            WalWriter::open(fs.clone(), dir, &scan.end, roll).unwrap(),
            scan,
        )
    }

    #[test]
    fn groups_round_trip_across_rolled_files() {
        let (_, fs, dir) = disk();
        let (mut w, _) = open(&fs, &dir, 200);
        for g in 0..6u8 {
            let group = (0..3).map(|i| record(&[g, i, 9, 9, 9])).collect();
            w.append_group(group, 0).unwrap();
            w.roll_if_full().unwrap();
        }
        assert!(list_files(&*fs, &dir).unwrap().len() > 2);
        let s = scan(&*fs, &dir, 1).unwrap();
        assert!(s.tail.is_none(), "{:?}", s.tail);
        assert_eq!(lsns(&*fs, &s), (1..=18).collect::<Vec<_>>());
        let bodies: Vec<Vec<u8>> = Replay::new(&*fs, &s).map(|r| r.unwrap().body).collect();
        assert_eq!(bodies[4], vec![1, 1, 9, 9, 9]);
        // Writing goes on after a reopen, and chains.
        drop(w);
        let (mut w, _) = open(&fs, &dir, 200);
        w.append_group(vec![record(b"more")], 18).unwrap();
        let s = scan(&*fs, &dir, 1).unwrap();
        assert_eq!(lsns(&*fs, &s).last(), Some(&19));
    }

    #[test]
    fn a_cut_at_every_byte_keeps_the_whole_groups_before_it() {
        let (d, fs, dir) = disk();
        let (mut w, _) = open(&fs, &dir, u64::MAX);
        let mut ends = vec![];
        for g in 0..3u8 {
            w.append_group(vec![record(&[g; 10]), record(&[g; 20])], 0)
                .unwrap();
            ends.push(w.len);
        }
        drop(w);
        let path = list_files(&*fs, &dir).unwrap()[0].1.clone();
        let full = crate::io::read(&d, &path).unwrap();
        for cut in 0..full.len() {
            let f = d.create(&path).unwrap();
            crate::io::write_all(&*f, &[&full[..cut]]).unwrap();
            let s = scan(&*fs, &dir, 1).unwrap();
            let whole = ends.iter().filter(|e| **e as usize <= cut).count();
            assert_eq!(lsns(&*fs, &s).len(), whole * 2, "cut at {cut}");
            cut_tail(&*fs, &dir, &s).unwrap();
            // Idempotent: nothing more to cut.
            let again = scan(&*fs, &dir, 1).unwrap();
            assert!(again.tail.is_none());
            assert_eq!(lsns(&*fs, &again).len(), whole * 2);
        }
    }

    #[test]
    fn damage_after_the_last_sync_is_cut_and_before_it_refused() {
        let (d, fs, dir) = disk();
        let (mut w, _) = open(&fs, &dir, u64::MAX);
        w.append_group(vec![record(&[1; 50])], 0).unwrap();
        let group1_end = w.len;
        w.append_group(vec![record(&[2; 50])], 0).unwrap();
        w.sync_job().run().unwrap();
        // Written after a sync covering lsn 2: says so.
        w.append_group(vec![record(&[3; 50])], 2).unwrap();
        drop(w);
        let path = list_files(&*fs, &dir).unwrap()[0].1.clone();
        let full = crate::io::read(&d, &path).unwrap();
        let write = |bytes: &[u8]| {
            let f = d.create(&path).unwrap();
            crate::io::write_all(&*f, &[bytes]).unwrap();
        };
        // Damage in the last (unsynced) group: a torn tail, cut.
        let mut b = full.clone();
        let n = b.len();
        b[n - 5] ^= 1;
        write(&b);
        let s = scan(&*fs, &dir, 1).unwrap();
        assert_eq!(lsns(&*fs, &s), vec![1, 2]);
        // Damage in group 2, which record 3 says was fsync'd: refused.
        let mut b = full.clone();
        b[group1_end as usize + RECORD_HEADER_LEN + 3] ^= 1;
        write(&b);
        let e = scan(&*fs, &dir, 1).unwrap_err();
        assert!(
            matches!(&e, StorageError::Corrupt { reason, .. } if reason.contains("fsync'd")),
            "{e}"
        );
        // The same damage with nothing written after the sync is a tail.
        write(&b[..full.len() - (RECORD_HEADER_LEN + 50)]);
        let s = scan(&*fs, &dir, 1).unwrap();
        assert_eq!(lsns(&*fs, &s), vec![1]);
    }

    #[test]
    fn a_damaged_header_of_a_synced_file_is_refused_not_cut() {
        let (d, fs, dir) = disk();
        let (mut w, _) = open(&fs, &dir, u64::MAX);
        w.append_group(vec![record(&[1; 50])], 0).unwrap();
        w.sync_job().run().unwrap();
        // Written after the sync: says the first record is durable.
        w.append_sync_mark(1).unwrap();
        drop(w);
        let path = list_files(&*fs, &dir).unwrap()[0].1.clone();
        let mut bytes = crate::io::read(&d, &path).unwrap();
        // One bit of the file header's first lsn: its checksum fails.
        bytes[17] ^= 0x01;
        let f = d.create(&path).unwrap();
        crate::io::write_all(&*f, &[&bytes]).unwrap();
        let e = scan(&*fs, &dir, 1).unwrap_err();
        assert!(
            matches!(&e, StorageError::Corrupt { reason, .. } if reason.contains("fsync'd")),
            "{e}"
        );
    }

    #[test]
    fn lsns_at_the_ends_of_the_range_are_damage_not_overflow() {
        let (d, fs, dir) = disk();
        let path = dir.join(format!("{:020}.wal", 0));
        create_dir_durably(&*fs, &dir).unwrap();
        let f = d.create(&path).unwrap();
        crate::io::write_all(
            &*f,
            &[&FileHeader {
                first_lsn: 0,
                salt: 5,
            }
            .encode()],
        )
        .unwrap();
        let s = scan(&*fs, &dir, 1).unwrap();
        assert_eq!(s.end.next_lsn, 1);
        assert!(s.tail.is_some());
    }

    #[test]
    fn a_record_inside_a_body_is_data_not_a_record() {
        let (d, fs, dir) = disk();
        let (mut w, _) = open(&fs, &dir, u64::MAX);
        // A body holding a well-formed record header claiming everything is
        // durable, under a guessed salt: it is never taken for a record.
        let (fake, _) = RecordHeader {
            kind: RecordKind::Transaction,
            group_end: true,
            body_len: 0,
            lsn: 3,
            durable_lsn: u64::MAX,
            prev_crc: 0,
            body_crc: 0,
        }
        .encode(0);
        let mut body = vec![0u8; 100];
        body.extend_from_slice(&fake);
        body.extend_from_slice(&RECORD_MAGIC.repeat(5000));
        w.append_group(vec![record(&body)], 0).unwrap();
        w.append_group(vec![record(b"second")], 0).unwrap();
        drop(w);
        let path = list_files(&*fs, &dir).unwrap()[0].1.clone();
        let full = crate::io::read(&d, &path).unwrap();
        // Tear the second group: the first still recovers, nothing is
        // refused.
        let f = d.create(&path).unwrap();
        crate::io::write_all(&*f, &[&full[..full.len() - 3]]).unwrap();
        let s = scan(&*fs, &dir, 1).unwrap();
        assert_eq!(lsns(&*fs, &s), vec![1]);
        // Tear the first one inside its body: the fake header is in the
        // tail, and still not believed.
        let f = d.create(&path).unwrap();
        crate::io::write_all(&*f, &[&full[..FILE_HEADER_LEN + RECORD_HEADER_LEN + 50]]).unwrap();
        let s = scan(&*fs, &dir, 1).unwrap();
        assert!(lsns(&*fs, &s).is_empty());
    }

    #[test]
    fn a_failed_write_leaves_no_part_of_its_group() {
        let (d, fs, dir) = disk();
        let (mut w, _) = open(&fs, &dir, u64::MAX);
        w.append_group(vec![record(b"kept")], 0).unwrap();
        d.fail_at(d.ops() + 1, Fault::ShortWrite);
        // The cut back fails too: recovery must still ignore the group.
        d.fail_at(d.ops() + 2, Fault::Error);
        let big = vec![7u8; 10_000];
        assert!(
            w.append_group(vec![record(&big), record(&big), record(&big)], 0)
                .is_err()
        );
        drop(w);
        let s = scan(&*fs, &dir, 1).unwrap();
        assert_eq!(lsns(&*fs, &s), vec![1]);
        assert!(s.tail.is_some());
    }

    #[test]
    fn power_loss_keeps_every_synced_group() {
        for seed in 0..40 {
            let (d, fs, dir) = disk();
            let (mut w, _) = open(&fs, &dir, 300);
            let mut synced = 0;
            for g in 0..20u64 {
                w.append_group(vec![record(&[g as u8; 60]), record(&[1; 7])], synced)
                    .unwrap();
                w.roll_if_full().unwrap();
                if g % 3 == 0 {
                    let job = w.sync_job();
                    job.run().unwrap();
                    synced = job.through_lsn;
                }
            }
            drop(w);
            d.power_off();
            d.restart(PowerLoss::Scramble { seed });
            let s = scan(&*fs, &dir, 1).unwrap();
            let got = lsns(&*fs, &s);
            assert!(
                got.len() as u64 >= synced,
                "seed {seed}: {got:?} < {synced}"
            );
            assert_eq!(got, (1..=got.len() as u64).collect::<Vec<_>>());
            assert_eq!(got.len() % 2, 0, "whole groups only");
            cut_tail(&*fs, &dir, &s).unwrap();
            let (mut w, _) = open(&fs, &dir, 300);
            w.append_group(vec![record(b"after")], 0).unwrap();
            let s = scan(&*fs, &dir, 1).unwrap();
            assert_eq!(lsns(&*fs, &s).len(), got.len() + 1);
        }
    }
}
