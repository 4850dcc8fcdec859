//! The read side of the Feather sidecar: [`FeatherLookupProvider`] maps a
//! sidecar file (format in [`crate::format`]) and answers point lookups
//! from it without copying the file into memory.
//!
//! # Opening
//!
//! [`OpenOptions::open`] maps the file read-only, wraps the mapping in an
//! Arrow [`Buffer`] (so decoded arrays borrow it: zero-copy), runs the
//! structural checks of [`crate::format::parse_layout`], decodes the
//! dictionaries, and reads the coarse index from the `quiver.lookup` footer
//! metadata. That is O(record batches), not O(rows). Record batches are
//! decoded lazily, each on first use, and each is then validated once: by
//! Arrow (offsets, UTF-8, sizes) and against the key invariant (no null
//! keys, strictly ascending in the `u64` domain, first key equal to the
//! coarse index entry, last key below the next batch's first key). A batch
//! that fails is an error for every lookup that touches it; other batches
//! stay usable. [`OpenOptions::verify_keys`] (or
//! [`FeatherLookupProvider::verify`]) does all of this up front.
//!
//! A foreign Arrow IPC file (no `quiver.lookup` metadata) is accepted when
//! [`OpenOptions::allow_foreign`] is on (the default): field 0 must be a key
//! column, and every batch is decoded and checked at open, which builds the
//! coarse index from the data (so opening a foreign file is O(rows)).
//!
//! # Lookups
//!
//! [`FeatherLookupProvider::fetch`]: sort and de-duplicate the requested
//! keys; for each run of keys that falls in one record batch
//! (`partition_point` on the coarse index), guess each key's position by
//! interpolating between the batch's first key and the next batch's (row
//! ids are dense with holes, so the guess is close), read the key there for
//! all keys first (independent loads the CPU overlaps), then gallop from the
//! guess to the lower bound (O(log distance), so a bad guess on skewed keys
//! costs at most about two binary searches) and keep a position only if the
//! key there equals the requested key (the exact-match guard: an absent key
//! never aliases onto a neighbour). Then one `take` (one batch touched) or
//! one `interleave` per projected column over only the touched batches
//! builds a single output batch.
//!
//! # The mapping
//!
//! The file must not be modified or truncated while it is mapped: the
//! builders here never do (they publish a new file by renaming a sibling
//! temp file over the path, which leaves existing mappings on the old
//! inode), and the structural checks make sure nothing outside the file's
//! length at open is ever read. A *third party* truncating the file in place
//! would still make a later access fault (`SIGBUS`); that is the one
//! invariant this module cannot check.
//!
//! The mapping is advised `MADV_HUGEPAGE` (Linux): a lookup reads a few
//! bytes from each column of a row, i.e. from about eight 4 KiB pages per
//! row, and where the kernel backs the file with 2 MiB folios those share a
//! TLB entry. Measured on the benchmark VM it cut K = 1000 lookups by about
//! a third; elsewhere it is a no-op.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use arrow::array::{ArrayRef, AsArray, RecordBatch, RecordBatchOptions};
use arrow::buffer::Buffer;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::ipc::reader::FileDecoder;

use crate::error::{FetchError, OpenError};
use crate::format::{BlockRange, Layout, SidecarMeta, guarded, parse_layout};
use crate::gather::gather_column;
use crate::key::{KeyColumn, KeyType, sorted_unique};

/// How to open a sidecar file.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    verify_keys: bool,
    allow_foreign: bool,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            verify_keys: false,
            allow_foreign: true,
        }
    }
}

impl OpenOptions {
    /// The defaults: trust the footer's coarse index and check each record
    /// batch on first use; accept foreign files (by scanning them).
    pub fn new() -> Self {
        Self::default()
    }

    /// Decode and check every record batch at open (O(file) instead of
    /// O(record batches)), so a corrupt batch fails `open` rather than the
    /// first lookup that touches it.
    pub fn verify_keys(mut self, verify: bool) -> Self {
        self.verify_keys = verify;
        self
    }

    /// Whether an Arrow IPC file without `quiver.lookup` metadata is opened
    /// (by scanning its key column, field 0) or rejected with
    /// [`OpenError::Foreign`].
    pub fn allow_foreign(mut self, allow: bool) -> Self {
        self.allow_foreign = allow;
        self
    }

    /// Opens the sidecar at `path`.
    pub fn open(&self, path: impl AsRef<Path>) -> Result<FeatherLookupProvider, OpenError> {
        SidecarFile::open(path.as_ref(), self).map(|f| FeatherLookupProvider { file: Arc::new(f) })
    }
}

/// An Arrow IPC file mapped into memory, structurally checked, with its
/// dictionaries decoded. Shared by the sidecar reader and the builder's
/// spill reader.
pub(crate) struct MappedIpc {
    /// The whole mapping; arrays decoded from it borrow slices of it.
    pub data: Buffer,
    pub layout: Layout,
    pub schema: SchemaRef,
    pub decoder: FileDecoder,
    /// Per top-level field: the one values array every decoded batch's
    /// dictionary column is re-pointed at (see [`MappedIpc::decode`]).
    shared_values: Vec<OnceLock<ArrayRef>>,
}

impl std::fmt::Debug for MappedIpc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MappedIpc")
            .field("bytes", &self.data.len())
            .field("batches", &self.layout.batches.len())
            .finish_non_exhaustive()
    }
}

impl MappedIpc {
    pub(crate) fn open(path: &Path) -> Result<Self, OpenError> {
        let io = |source| OpenError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let len = file.metadata().map_err(io)?.len();
        if len < 18 {
            return Err(OpenError::Malformed {
                path: path.to_path_buf(),
                reason: format!("{len} bytes is shorter than the smallest Arrow IPC file"),
            });
        }
        // SAFETY: the mapping is read-only and private to this process. The
        // invariant relied on is that nobody truncates or rewrites the file
        // while it is mapped: Quiver's writers (this crate's builders and
        // sealed storage segments) never modify a published file, they
        // publish a new one by renaming a sibling temp file over the path,
        // so a live mapping keeps the old inode. Every access is
        // bounds-checked against the length seen here (`parse_layout`), so
        // a file shorter than expected is an error, not a read past the end.
        // Tested by `tests/publish.rs` (a reader survives a rebuild of its
        // path) and the truncation/garbage tests in `tests/open.rs`.
        let mmap = unsafe { memmap2::Mmap::map(&file) }.map_err(io)?;
        // Lookups touch a few bytes in many pages of each column; ask for
        // huge pages where the kernel can back file mappings with them
        // (fewer TLB misses). Advisory: an error changes nothing.
        #[cfg(target_os = "linux")]
        let _ = mmap.advise(memmap2::Advice::HugePage);
        // The mapping moves into the Buffer's owner: it lives as long as any
        // array decoded from it, and is unmapped when the last one drops.
        let data = Buffer::from(bytes::Bytes::from_owner(mmap));
        let mut layout = parse_layout(&data).map_err(|reason| OpenError::Malformed {
            path: path.to_path_buf(),
            reason,
        })?;
        let schema = Arc::new(std::mem::replace(&mut layout.schema, Schema::empty()));
        let mut decoder = FileDecoder::new(Arc::clone(&schema), layout.version);
        for (i, d) in layout.dictionaries.iter().enumerate() {
            let bytes = data.slice_with_length(d.start, d.len);
            guarded(|| decoder.read_dictionary(&d.block, &bytes)).map_err(|source| {
                OpenError::Decode {
                    path: path.to_path_buf(),
                    what: format!("dictionary batch {i}"),
                    source,
                }
            })?;
        }
        let shared_values = schema.fields().iter().map(|_| OnceLock::new()).collect();
        Ok(Self {
            data,
            layout,
            schema,
            decoder,
            shared_values,
        })
    }

    /// Decodes record batch `b` (Arrow validates it).
    ///
    /// Every batch's dictionary columns are decoded against the same
    /// dictionary, but Arrow hands each batch its own `Arc` of it. Here they
    /// are re-pointed at one shared `Arc` per column, so gathers can tell by
    /// pointer that the sources share a dictionary and interleave only keys.
    pub(crate) fn decode(&self, path: &Path, b: usize) -> Result<RecordBatch, OpenError> {
        let range = &self.layout.batches[b];
        let batch = decode_block(&self.decoder, &self.data, range, path, b)?;
        let mut columns: Option<Vec<ArrayRef>> = None;
        for (c, column) in batch.columns().iter().enumerate() {
            let Some(dict) = column.as_any_dictionary_opt() else {
                continue;
            };
            let shared = self.shared_values[c].get_or_init(|| Arc::clone(dict.values()));
            if !Arc::ptr_eq(shared, dict.values())
                && shared.to_data().ptr_eq(&dict.values().to_data())
            {
                let columns = columns.get_or_insert_with(|| batch.columns().to_vec());
                columns[c] = dict.with_values(Arc::clone(shared));
            }
        }
        match columns {
            None => Ok(batch),
            Some(columns) => RecordBatch::try_new_with_options(
                batch.schema(),
                columns,
                &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
            )
            .map_err(|source| OpenError::Decode {
                path: path.to_path_buf(),
                what: format!("record batch {b}"),
                source,
            }),
        }
    }

    /// Number of record batches.
    pub(crate) fn num_batches(&self) -> usize {
        self.layout.batches.len()
    }
}

fn decode_block(
    decoder: &FileDecoder,
    data: &Buffer,
    range: &BlockRange,
    path: &Path,
    b: usize,
) -> Result<RecordBatch, OpenError> {
    let bytes = data.slice_with_length(range.start, range.len);
    guarded(|| decoder.read_record_batch(&range.block, &bytes))
        .map_err(|source| OpenError::Decode {
            path: path.to_path_buf(),
            what: format!("record batch {b}"),
            source,
        })?
        .ok_or_else(|| OpenError::Malformed {
            path: path.to_path_buf(),
            reason: format!("record batch {b} has no message"),
        })
}

/// A decoded, validated record batch.
#[derive(Debug)]
struct Decoded {
    batch: RecordBatch,
    keys: KeyColumn,
}

/// One opened sidecar file, shared by clones of the provider.
#[derive(Debug)]
struct SidecarFile {
    path: PathBuf,
    /// The mapped file; decoded arrays borrow slices of it.
    ipc: MappedIpc,
    schema: SchemaRef,
    key_type: KeyType,
    rows: u64,
    batch_rows: u64,
    /// First key of each non-empty batch, ascending.
    index: Vec<u64>,
    /// The batch each `index` entry belongs to.
    index_batch: Vec<usize>,
    last_key: Option<u64>,
    /// Whether the file had `quiver.lookup` metadata.
    native: bool,
    decoded: Vec<OnceLock<Decoded>>,
}

impl SidecarFile {
    fn open(path: &Path, options: &OpenOptions) -> Result<Self, OpenError> {
        let malformed = |reason: String| OpenError::Malformed {
            path: path.to_path_buf(),
            reason,
        };
        let mut ipc = MappedIpc::open(path)?;
        let schema = Arc::clone(&ipc.schema);
        let key_field = schema
            .fields()
            .first()
            .ok_or_else(|| malformed("the schema has no fields (no key column)".into()))?;
        let key_type =
            KeyType::from_data_type(key_field.data_type()).ok_or_else(|| OpenError::KeyType {
                path: path.to_path_buf(),
                name: key_field.name().clone(),
                data_type: key_field.data_type().clone(),
            })?;

        let total_rows: u64 = ipc.layout.batches.iter().map(|b| b.rows as u64).sum();
        let sidecar_meta = ipc.layout.sidecar_meta.take();
        let mut file = SidecarFile {
            path: path.to_path_buf(),
            decoded: ipc.layout.batches.iter().map(|_| OnceLock::new()).collect(),
            native: sidecar_meta.is_some(),
            ipc,
            schema,
            key_type,
            rows: total_rows,
            batch_rows: 0,
            index: Vec::new(),
            index_batch: Vec::new(),
            last_key: None,
        };
        match sidecar_meta {
            Some(value) => {
                let meta = SidecarMeta::parse(&value).map_err(|reason| OpenError::Metadata {
                    path: path.to_path_buf(),
                    reason,
                })?;
                file.adopt_metadata(meta)?;
                if options.verify_keys {
                    file.verify()?;
                }
            }
            None if options.allow_foreign => file.scan_foreign()?,
            None => {
                return Err(OpenError::Foreign {
                    path: path.to_path_buf(),
                });
            }
        }
        Ok(file)
    }

    /// Checks the footer metadata against the layout and installs the index.
    fn adopt_metadata(&mut self, meta: SidecarMeta) -> Result<(), OpenError> {
        let bad = |reason: String| OpenError::Metadata {
            path: self.path.clone(),
            reason,
        };
        if meta.key_type != self.key_type {
            return Err(bad(format!(
                "key_type {} but field 0 is {}",
                meta.key_type, self.key_type
            )));
        }
        if meta.rows != self.rows {
            return Err(bad(format!(
                "rows {} but the record batches hold {}",
                meta.rows, self.rows
            )));
        }
        if meta.first_keys.len() != self.ipc.num_batches() {
            return Err(bad(format!(
                "{} first_keys for {} record batches",
                meta.first_keys.len(),
                self.ipc.num_batches()
            )));
        }
        if let Some(i) = self.ipc.layout.batches.iter().position(|b| b.rows == 0) {
            return Err(bad(format!("record batch {i} is empty")));
        }
        if let Some(i) = meta.first_keys.windows(2).position(|w| w[0] >= w[1]) {
            return Err(bad(format!(
                "first_keys are not strictly ascending at batch {}",
                i + 1
            )));
        }
        match (meta.last_key, meta.first_keys.last()) {
            (None, None) => {}
            (Some(last), Some(&first)) if last >= first => {}
            _ => return Err(bad("last_key does not match first_keys".into())),
        }
        self.batch_rows = meta.batch_rows;
        self.index_batch = (0..meta.first_keys.len()).collect();
        self.index = meta.first_keys;
        self.last_key = meta.last_key;
        Ok(())
    }

    /// Builds the index of a foreign file by decoding and checking every
    /// batch in order.
    fn scan_foreign(&mut self) -> Result<(), OpenError> {
        let mut prev: Option<u64> = None;
        for b in 0..self.ipc.num_batches() {
            let decoded = self.decode(b)?;
            let n = decoded.keys.len();
            if n == 0 {
                let _ = self.decoded[b].set(decoded);
                continue;
            }
            let first = decoded.keys.get(0);
            if let Some(p) = prev
                && first <= p
            {
                return Err(OpenError::KeyInvariant {
                    path: self.path.clone(),
                    batch: b,
                    reason: format!(
                        "first key {first} is not greater than the previous batch's last key {p}"
                    ),
                });
            }
            prev = Some(decoded.keys.get(n - 1));
            self.index.push(first);
            self.index_batch.push(b);
            self.batch_rows = self.batch_rows.max(n as u64);
            let _ = self.decoded[b].set(decoded);
        }
        self.last_key = prev;
        Ok(())
    }

    /// Decodes batch `b` and checks it on its own (no nulls, ascending).
    fn decode(&self, b: usize) -> Result<Decoded, OpenError> {
        let expected_rows = self.ipc.layout.batches[b].rows;
        let batch = self.ipc.decode(&self.path, b)?;
        let invariant = |reason: String| OpenError::KeyInvariant {
            path: self.path.clone(),
            batch: b,
            reason,
        };
        if batch.num_rows() != expected_rows {
            return Err(invariant(format!(
                "decoded {} rows, the message says {}",
                batch.num_rows(),
                expected_rows
            )));
        }
        let key = batch.column(0);
        if key.null_count() > 0 {
            return Err(invariant(format!("{} null keys", key.null_count())));
        }
        let keys = KeyColumn::from_array(key)
            .ok_or_else(|| invariant(format!("key column decoded as {}", key.data_type())))?;
        if let Some(i) = keys.first_unordered() {
            return Err(invariant(format!(
                "key {} at row {i} is not greater than key {} before it",
                keys.get(i),
                keys.get(i - 1)
            )));
        }
        Ok(Decoded { batch, keys })
    }

    /// Checks a decoded batch of a native file against the coarse index.
    fn check_index(&self, b: usize, d: &Decoded) -> Result<(), OpenError> {
        let invariant = |reason: String| OpenError::KeyInvariant {
            path: self.path.clone(),
            batch: b,
            reason,
        };
        let n = d.keys.len();
        let (first, last) = (d.keys.get(0), d.keys.get(n - 1));
        if first != self.index[b] {
            return Err(invariant(format!(
                "first key {first} but the index says {}",
                self.index[b]
            )));
        }
        match self.index.get(b + 1) {
            Some(&next) if last >= next => Err(invariant(format!(
                "last key {last} is not below the next batch's first key {next}"
            ))),
            None if Some(last) != self.last_key => Err(invariant(format!(
                "last key {last} but the metadata says {:?}",
                self.last_key
            ))),
            _ => Ok(()),
        }
    }

    /// Batch `b`, decoded and validated on first use.
    fn batch(&self, b: usize) -> Result<&Decoded, OpenError> {
        if let Some(d) = self.decoded[b].get() {
            return Ok(d);
        }
        let d = self.decode(b)?;
        if self.native {
            self.check_index(b, &d)?;
        }
        Ok(self.decoded[b].get_or_init(|| d))
    }

    /// Decodes and checks every batch.
    fn verify(&self) -> Result<(), OpenError> {
        for b in 0..self.ipc.num_batches() {
            self.batch(b)?;
        }
        Ok(())
    }
}

/// A point-lookup provider over a memory-mapped sidecar file.
///
/// Cheap to clone (the mapping is shared). Lookups are synchronous CPU work
/// over the mapping ([`FeatherLookupProvider::fetch`]); the async
/// [`PointLookupProvider`](crate::PointLookupProvider) method runs them
/// inline, since a warm lookup takes microseconds. On a cold page cache a
/// lookup blocks on page faults.
#[derive(Debug, Clone)]
pub struct FeatherLookupProvider {
    file: Arc<SidecarFile>,
}

impl FeatherLookupProvider {
    /// Opens a sidecar with the default [`OpenOptions`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        OpenOptions::new().open(path)
    }

    /// Opens a sidecar and checks every record batch (see
    /// [`OpenOptions::verify_keys`]).
    pub fn open_verified(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        OpenOptions::new().verify_keys(true).open(path)
    }

    /// Number of rows (keys).
    pub fn len(&self) -> usize {
        self.file.rows as usize
    }

    /// Whether the sidecar has no rows.
    pub fn is_empty(&self) -> bool {
        self.file.rows == 0
    }

    /// The file this provider maps.
    pub fn path(&self) -> &Path {
        &self.file.path
    }

    /// The schema: the key column (field 0) then the value columns.
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.file.schema)
    }

    /// Name of the key column.
    pub fn key_column(&self) -> &str {
        self.file.schema.field(0).name()
    }

    /// Type of the key column.
    pub fn key_type(&self) -> KeyType {
        self.file.key_type
    }

    /// Number of record batches in the file.
    pub fn num_batches(&self) -> usize {
        self.file.ipc.num_batches()
    }

    /// The smallest and largest key (in the `u64` domain), if any.
    pub fn key_range(&self) -> Option<(u64, u64)> {
        Some((*self.file.index.first()?, self.file.last_key?))
    }

    /// Whether the file carried `quiver.lookup` metadata (false for a
    /// foreign Arrow IPC file, whose index was built by scanning it).
    pub fn has_sidecar_metadata(&self) -> bool {
        self.file.native
    }

    /// Decodes and checks every record batch that has not been checked yet
    /// (the integrity check; cheap for batches already in use).
    pub fn verify(&self) -> Result<(), OpenError> {
        self.file.verify()
    }

    /// All record batches, decoded (zero-copy) and validated, in key order.
    pub fn batches(&self) -> Result<Vec<RecordBatch>, OpenError> {
        (0..self.file.ipc.num_batches())
            .map(|b| self.file.batch(b).map(|d| d.batch.clone()))
            .collect()
    }

    /// Record batch `b`, decoded and validated.
    pub(crate) fn batch(&self, b: usize) -> Result<RecordBatch, OpenError> {
        self.file.batch(b).map(|d| d.batch.clone())
    }

    /// Looks up `keys` (in the `u64` domain; order and duplicates do not
    /// matter) and returns the matching rows, ascending by key and
    /// de-duplicated, projected to `projection` (indices into
    /// [`Self::schema`], in the order given). Missing keys are dropped;
    /// `None` if nothing matched.
    pub fn fetch(
        &self,
        keys: &[u64],
        projection: Option<&[usize]>,
    ) -> Result<Option<RecordBatch>, FetchError> {
        let file = &*self.file;
        let columns = file.schema.fields().len();
        if let Some(p) = projection
            && let Some(&index) = p.iter().find(|&&i| i >= columns)
        {
            return Err(FetchError::ProjectionOutOfRange { index, columns });
        }
        let (Some(&min), Some(max)) = (file.index.first(), file.last_key) else {
            return Ok(None);
        };
        if keys.is_empty() {
            return Ok(None);
        }
        let keys = sorted_unique(keys);
        let lo = keys.partition_point(|&k| k < min);
        let hi = keys.partition_point(|&k| k <= max);
        let keys = &keys[lo..hi];

        // Pass 1: for each key, its batch (coarse index) and a guess of its
        // position by interpolating between the batch's first key and the
        // next batch's, with a prefetch of the key at the guess. The loads
        // of different keys do not depend on each other, so the CPU
        // overlaps their cache and TLB misses instead of paying them one
        // after another.
        let mut batches: Vec<(&Decoded, u128)> = Vec::new();
        let mut probes: Vec<(usize, usize)> = Vec::with_capacity(keys.len());
        let mut i = 0;
        while i < keys.len() {
            // The last batch whose first key is <= keys[i].
            let e = file.index.partition_point(|&f| f <= keys[i]) - 1;
            let first = file.index[e];
            let (end, upper) = match file.index.get(e + 1) {
                Some(&next) => (i + keys[i..].partition_point(|&k| k < next), next - 1),
                None => (keys.len(), max),
            };
            let decoded = file.batch(file.index_batch[e])?;
            let last = decoded.keys.len() - 1;
            let span = u128::from((upper - first).max(1));
            let source = batches.len();
            batches.push((decoded, span));
            for &k in &keys[i..end] {
                let guess = ((u128::from(k - first) * last as u128 / span) as usize).min(last);
                decoded.keys.prefetch(guess);
                probes.push((source, guess));
            }
            i = end;
        }
        // Pass 2: read the key at each guess (prefetched) and correct the
        // guess by the distance to it at the batch's average key gap: the
        // first guess drifts by up to ~100 rows in the middle of a batch of
        // dense-with-holes row ids, the corrected one by a few, so the
        // gallop below stays within a cache line or two. Prefetch again.
        for (&k, probe) in keys.iter().zip(probes.iter_mut()) {
            let (decoded, span) = batches[probe.0];
            let last = decoded.keys.len() - 1;
            let seen = decoded.keys.get(probe.1);
            let shift = (i128::from(k) - i128::from(seen)) * last as i128 / span as i128;
            let guess = (probe.1 as i128 + shift).clamp(0, last as i128) as usize;
            decoded.keys.prefetch(guess);
            probe.1 = guess;
        }
        // Pass 3: gallop from each guess to the lower bound, and keep it
        // only if the key there is the one asked for (the exact-match guard:
        // an absent key never aliases onto a neighbour).
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(keys.len());
        for (&k, &(source, guess)) in keys.iter().zip(&probes) {
            let column = &batches[source].0.keys;
            let pos = column.lower_bound_from(k, guess, column.get(guess));
            if pos < column.len() && column.get(pos) == k {
                picks.push((source, pos));
            }
        }
        if picks.is_empty() {
            return Ok(None);
        }
        // Gather only from batches that had a hit.
        let mut slot = vec![usize::MAX; batches.len()];
        let mut touched: Vec<&Decoded> = Vec::with_capacity(batches.len());
        for pick in &mut picks {
            if slot[pick.0] == usize::MAX {
                slot[pick.0] = touched.len();
                touched.push(batches[pick.0].0);
            }
            pick.0 = slot[pick.0];
        }

        let (schema, column_ids): (SchemaRef, Vec<usize>) = match projection {
            None => (Arc::clone(&file.schema), (0..columns).collect()),
            Some(p) => (
                Arc::new(file.schema.project(p).map_err(FetchError::Arrow)?),
                p.to_vec(),
            ),
        };
        let sources: Vec<Vec<&ArrayRef>> = column_ids
            .iter()
            .map(|&c| touched.iter().map(|d| d.batch.column(c)).collect())
            .collect();
        let out = sources
            .iter()
            .map(|s| gather_column(s, &picks))
            .collect::<Result<Vec<ArrayRef>, _>>()
            .map_err(FetchError::Arrow)?;
        let options = RecordBatchOptions::new().with_row_count(Some(picks.len()));
        RecordBatch::try_new_with_options(schema, out, &options)
            .map(Some)
            .map_err(FetchError::Arrow)
    }

    /// The rows per record batch the writer used (the largest batch, for a
    /// foreign file).
    pub fn batch_rows(&self) -> u64 {
        self.file.batch_rows
    }
}

/// Projects `schema`, reporting an out-of-range index as a [`FetchError`].
pub(crate) fn project_schema(
    schema: &Schema,
    projection: Option<&[usize]>,
) -> Result<Schema, FetchError> {
    match projection {
        None => Ok(schema.clone()),
        Some(p) => {
            let columns = schema.fields().len();
            if let Some(&index) = p.iter().find(|&&i| i >= columns) {
                return Err(FetchError::ProjectionOutOfRange { index, columns });
            }
            schema.project(p).map_err(FetchError::Arrow)
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Array, Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};

    use super::*;
    use crate::FeatherSidecarBuilder;

    fn build(dir: &Path, n: i64) -> FeatherLookupProvider {
        let schema = Arc::new(Schema::new(vec![
            Field::new("rowid", DataType::Int64, false),
            Field::new("s", DataType::Utf8, true),
        ]));
        let mut b = FeatherSidecarBuilder::begin(dir.join("t.arrow"), Arc::clone(&schema), 0, &[1])
            .unwrap();
        let keys = Int64Array::from_iter_values((0..n).map(|i| i * 3));
        let s = StringArray::from_iter_values((0..n).map(|i| format!("v{i}")));
        b.push_batch(&RecordBatch::try_new(schema, vec![Arc::new(keys), Arc::new(s)]).unwrap())
            .unwrap();
        b.finish().unwrap()
    }

    /// Zero-copy contract: decoded column buffers point into the mapping.
    #[test]
    fn decoded_batches_borrow_the_mapping() {
        let dir = tempfile::tempdir().unwrap();
        let p = build(dir.path(), 20_000);
        let map = &p.file.ipc.data;
        let range = map.as_ptr() as usize..map.as_ptr() as usize + map.len();
        for b in p.batches().unwrap() {
            for c in b.columns() {
                for buf in c.to_data().buffers() {
                    let ptr = buf.as_ptr() as usize;
                    assert!(range.contains(&ptr), "buffer at {ptr:#x} is a copy");
                }
            }
        }
        // The lookup output is the only allocation: it does not alias the map.
        let out = p.fetch(&[3, 30_000], None).unwrap().unwrap();
        let ptr = out.column(1).to_data().buffers()[1].as_ptr() as usize;
        assert!(!range.contains(&ptr));
    }

    /// Batches are decoded lazily and cached.
    #[test]
    fn batches_decode_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        let p = build(dir.path(), 20_000);
        assert_eq!(p.num_batches(), 3);
        assert!(p.file.decoded.iter().all(|d| d.get().is_none()));
        let out = p.fetch(&[3 * 8200], None).unwrap().unwrap();
        assert_eq!(out.num_rows(), 1);
        let decoded: Vec<bool> = p.file.decoded.iter().map(|d| d.get().is_some()).collect();
        assert_eq!(decoded, vec![false, true, false]);
        p.verify().unwrap();
        assert!(p.file.decoded.iter().all(|d| d.get().is_some()));
        assert_eq!(out.column(1).len(), 1);
    }
}
