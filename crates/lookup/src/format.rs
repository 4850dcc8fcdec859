//! The sidecar file format: what the bytes are, the `quiver.lookup` footer
//! metadata, and the structural checks run on a file before any of its
//! memory is handed to Arrow.
//!
//! # The file
//!
//! A sidecar is one Arrow IPC *file* (Feather v2, metadata version V5,
//! little-endian, uncompressed, buffers padded to 64 bytes), written by
//! arrow-rs's `FileWriter`. Nothing in it is Quiver-specific except one
//! footer metadata entry, so pyarrow, DuckDB or any Arrow reader can read a
//! sidecar as a plain table.
//!
//! ```text
//! offset            size        field
//! 0                 6           magic "ARROW1"
//! 6                 58          zero padding (the first message starts 64-aligned)
//! 64                m0          schema message (encapsulated, see below)
//! ...               d_i         dictionary messages (one per dictionary column; later
//!                               ones may be deltas that append values)
//! ...               r_i         record-batch messages, ascending keys, <= 8192 rows each
//! ...               8           end-of-stream marker: 0xFFFFFFFF, 0x00000000
//! F                 L           footer: flatbuffer `Footer` (version, schema, blocks,
//!                               custom_metadata with the `quiver.lookup` entry)
//! len - 10          4           L, footer length, i32 little-endian
//! len - 6           6           magic "ARROW1"
//! ```
//!
//! Each dictionary or record-batch message is one footer `Block`
//! `{offset: i64, metaDataLength: i32, bodyLength: i64}`:
//!
//! ```text
//! offset                 4   continuation marker 0xFFFFFFFF
//! offset + 4             4   n, flatbuffer length, i32 little-endian
//! offset + 8             n   flatbuffer `Message` (header: RecordBatch or DictionaryBatch,
//!                            field nodes, buffer (offset, length) pairs relative to the body)
//! offset + 8 + n         p   zero padding; 8 + n + p = metaDataLength
//! offset + metaDataLength    bodyLength bytes of buffers (validity, offsets, values)
//! ```
//!
//! Field 0 is the key column (Int32, Int64, UInt32 or UInt64, no nulls);
//! fields 1.. are the value columns, stored verbatim.
//!
//! # Invariants
//!
//! 1. Keys are strictly ascending in the `u64` domain (see [`crate::key`])
//!    across the whole file: within each record batch and across batch
//!    boundaries. So they are also unique.
//! 2. Every record batch has at least one row; the builder writes exactly
//!    `batch_rows` rows per batch except the last.
//! 3. `first_keys[i]` is the first key of record batch `i`; `last_key` is the
//!    last key of the file; `rows` is the total row count.
//! 4. Top-level dictionary columns have one dictionary id; it may grow by
//!    delta batches (values are only ever appended), so every record batch
//!    can be decoded against the final dictionary.
//!
//! # The `quiver.lookup` metadata
//!
//! Stored in the footer's `custom_metadata` (not the schema's, so the schema
//! a reader sees is exactly the one the builder was given) as one ASCII
//! string of `name=value` fields separated by `;`, in this order:
//!
//! | field | value |
//! |---|---|
//! | `format` | format version, `1` |
//! | `key_index` | `0` (the key is field 0) |
//! | `key_type` | `Int32`, `Int64`, `UInt32` or `UInt64` |
//! | `order` | `u64-strictly-ascending` (invariant 1) |
//! | `rows` | total rows, decimal |
//! | `batch_rows` | rows per record batch the writer used, decimal |
//! | `last_key` | last key as 16 lowercase hex digits, empty if no rows |
//! | `first_keys` | 16 lowercase hex digits per record batch, concatenated |
//!
//! With it, opening a file is O(record batches): the coarse index is read
//! from the footer instead of from the key column. Each record batch's keys
//! are still checked against invariant 1 and the index, once, when the batch
//! is first decoded (or all at once with
//! [`OpenOptions::verify_keys`](crate::OpenOptions::verify_keys)).
//!
//! A file without the entry (a *foreign* Arrow IPC file, e.g. one written by
//! pyarrow) is opened by scanning its key column in full, which establishes
//! the same invariants, or rejected if
//! [`OpenOptions::allow_foreign`](crate::OpenOptions::allow_foreign) is off.
//!
//! # Structural checks
//!
//! [`parse_layout`] runs before any of the mapped memory is given to Arrow:
//! both magics; the footer length against the file size; the footer
//! flatbuffer (verified); the endianness; and for every block: 8-byte
//! aligned offset, a metadata length that holds the message prefix, the
//! whole block inside `[8, footer start)`, a message flatbuffer that verifies
//! and has the expected header type and body length, non-negative node
//! lengths and null counts, every buffer inside the body, no compression and
//! the variadic buffer counts the schema implies. Arrow's own decoding
//! (which validates offsets, UTF-8 and buffer sizes) then runs on data known
//! to lie inside the file. Arrow code that still panics on some malformed
//! input (its schema conversion does) runs under [`guarded`], which turns a
//! panic into an error.

use std::panic::{AssertUnwindSafe, catch_unwind};

use arrow::datatypes::{DataType, Schema};
use arrow::error::ArrowError;
use arrow::ipc::{Block, MessageHeader, MetadataVersion};

use crate::key::KeyType;

/// Footer metadata key holding [`SidecarMeta`].
pub const METADATA_KEY: &str = "quiver.lookup";
/// Current format version.
pub const FORMAT_VERSION: u32 = 1;
/// Rows per record batch written by the builders (the last may be shorter).
pub const DEFAULT_BATCH_ROWS: usize = 8192;
/// The `order` field's only value.
const ORDER: &str = "u64-strictly-ascending";
/// Magic at both ends of an Arrow IPC file.
pub(crate) const MAGIC: &[u8; 6] = b"ARROW1";
/// Trailer: footer length (4) + magic (6).
const TRAILER: usize = 10;
/// Header: magic (6) + padding to 8 bytes (the minimum the format allows).
const HEADER: usize = 8;
/// Node lengths above this are rejected before Arrow multiplies them by a
/// value width (guards against overflow on hostile input).
const MAX_NODE_LENGTH: i64 = 1 << 40;

/// The parsed `quiver.lookup` footer metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SidecarMeta {
    pub key_type: KeyType,
    pub rows: u64,
    pub batch_rows: u64,
    pub last_key: Option<u64>,
    pub first_keys: Vec<u64>,
}

impl SidecarMeta {
    /// Encodes the metadata value (see the module docs for the grammar).
    pub(crate) fn encode(&self) -> String {
        use std::fmt::Write;
        let mut s = format!(
            "format={FORMAT_VERSION};key_index=0;key_type={};order={ORDER};rows={};batch_rows={};last_key=",
            self.key_type.name(),
            self.rows,
            self.batch_rows
        );
        if let Some(k) = self.last_key {
            let _ = write!(s, "{k:016x}");
        }
        s.push_str(";first_keys=");
        s.reserve(self.first_keys.len() * 16);
        for k in &self.first_keys {
            let _ = write!(s, "{k:016x}");
        }
        s
    }

    /// Parses a metadata value strictly: every field, in order, nothing else.
    pub(crate) fn parse(value: &str) -> Result<Self, String> {
        const NAMES: [&str; 8] = [
            "format",
            "key_index",
            "key_type",
            "order",
            "rows",
            "batch_rows",
            "last_key",
            "first_keys",
        ];
        let parts: Vec<&str> = value.split(';').collect();
        if parts.len() != NAMES.len() {
            return Err(format!(
                "expected {} fields, found {}",
                NAMES.len(),
                parts.len()
            ));
        }
        let mut values = [""; 8];
        for (i, (part, name)) in parts.iter().zip(NAMES).enumerate() {
            let Some((n, v)) = part.split_once('=') else {
                return Err(format!("field {i} has no `=`"));
            };
            if n != name {
                return Err(format!("field {i} is `{n}`, expected `{name}`"));
            }
            values[i] = v;
        }
        let version: u32 = values[0]
            .parse()
            .map_err(|_| format!("bad format version `{}`", values[0]))?;
        if version != FORMAT_VERSION {
            return Err(format!(
                "unsupported format version {version} (this build reads {FORMAT_VERSION})"
            ));
        }
        if values[1] != "0" {
            return Err(format!("key_index is {}, only 0 is supported", values[1]));
        }
        let key_type =
            KeyType::parse(values[2]).ok_or_else(|| format!("unknown key_type `{}`", values[2]))?;
        if values[3] != ORDER {
            return Err(format!("unknown order `{}`", values[3]));
        }
        let rows: u64 = values[4]
            .parse()
            .map_err(|_| format!("bad rows `{}`", values[4]))?;
        let batch_rows: u64 = values[5]
            .parse()
            .map_err(|_| format!("bad batch_rows `{}`", values[5]))?;
        let last_key = match values[6] {
            "" => None,
            hex => Some(parse_hex_u64(hex).ok_or_else(|| format!("bad last_key `{hex}`"))?),
        };
        let hex = values[7].as_bytes();
        if hex.len() % 16 != 0 {
            return Err(format!(
                "first_keys has {} hex digits, not a multiple of 16",
                hex.len()
            ));
        }
        let first_keys = hex
            .chunks_exact(16)
            .map(|c| {
                std::str::from_utf8(c)
                    .ok()
                    .and_then(parse_hex_u64)
                    .ok_or_else(|| "bad hex digit in first_keys".to_string())
            })
            .collect::<Result<Vec<u64>, String>>()?;
        Ok(Self {
            key_type,
            rows,
            batch_rows,
            last_key,
            first_keys,
        })
    }
}

fn parse_hex_u64(s: &str) -> Option<u64> {
    if s.len() != 16 || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u64::from_str_radix(s, 16).ok()
}

/// Where one message sits in the file, checked to lie inside it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BlockRange {
    /// The footer block (offset, metadata length, body length).
    pub block: Block,
    /// `offset` as usize.
    pub start: usize,
    /// `metaDataLength + bodyLength` as usize.
    pub len: usize,
    /// Rows (record batches) or dictionary values (dictionary batches).
    pub rows: usize,
}

/// The structure of an Arrow IPC file, validated against the file size.
#[derive(Debug)]
pub(crate) struct Layout {
    pub version: MetadataVersion,
    pub schema: Schema,
    pub dictionaries: Vec<BlockRange>,
    pub batches: Vec<BlockRange>,
    /// The `quiver.lookup` value, if present.
    pub sidecar_meta: Option<String>,
}

/// Runs Arrow code that may panic on malformed input, turning a panic into
/// an error message. Arrow's schema conversion and a few decoder paths
/// `panic!` instead of returning errors; the sidecar promises errors.
pub(crate) fn guarded<T>(f: impl FnOnce() -> Result<T, ArrowError>) -> Result<T, ArrowError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            Err(ArrowError::IpcError(format!("arrow panicked: {msg}")))
        }
    }
}

/// Number of variadic (view) buffer counts a record batch of `data_type`
/// carries: one per Utf8View/BinaryView array, not counting dictionary
/// values (those travel in dictionary batches).
fn view_arrays(data_type: &DataType) -> usize {
    match data_type {
        DataType::Utf8View | DataType::BinaryView => 1,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => view_arrays(f.data_type()),
        DataType::Struct(fields) => fields.iter().map(|f| view_arrays(f.data_type())).sum(),
        DataType::Union(fields, _) => fields.iter().map(|(_, f)| view_arrays(f.data_type())).sum(),
        DataType::RunEndEncoded(r, v) => view_arrays(r.data_type()) + view_arrays(v.data_type()),
        _ => 0,
    }
}

/// Parses and checks the structure of an Arrow IPC file held in `bytes`
/// (see the module docs for the list of checks). Returns the reason on
/// failure.
pub(crate) fn parse_layout(bytes: &[u8]) -> Result<Layout, String> {
    let len = bytes.len();
    if len < HEADER + TRAILER {
        return Err(format!(
            "{len} bytes is shorter than the smallest Arrow IPC file ({} bytes)",
            HEADER + TRAILER
        ));
    }
    if &bytes[..6] != MAGIC {
        return Err("no ARROW1 magic at offset 0".into());
    }
    if &bytes[len - 6..] != MAGIC {
        return Err("no ARROW1 magic at the end (truncated file?)".into());
    }
    let footer_len = i32::from_le_bytes([
        bytes[len - 10],
        bytes[len - 9],
        bytes[len - 8],
        bytes[len - 7],
    ]);
    let footer_end = len - TRAILER;
    let footer_len = usize::try_from(footer_len)
        .ok()
        .filter(|&l| l > 0 && l <= footer_end - HEADER)
        .ok_or_else(|| {
            format!(
                "footer length {footer_len} does not fit in a {len}-byte file (at most {})",
                footer_end - HEADER
            )
        })?;
    let footer_start = footer_end - footer_len;
    let footer = arrow::ipc::root_as_footer(&bytes[footer_start..footer_end])
        .map_err(|e| format!("footer flatbuffer at offset {footer_start}: {e}"))?;
    let version = footer.version();
    if version != MetadataVersion::V4 && version != MetadataVersion::V5 {
        return Err(format!(
            "metadata version {:?} is not supported (V4 or V5)",
            version
        ));
    }
    let fb_schema = footer.schema().ok_or("footer has no schema")?;
    if !fb_schema.endianness().equals_to_target_endianness() {
        return Err("file is big-endian".into());
    }
    if fb_schema.fields().is_none() {
        return Err("footer schema has no fields".into());
    }
    let schema = guarded(|| Ok(arrow::ipc::convert::fb_to_schema(fb_schema)))
        .map_err(|e| format!("footer schema: {e}"))?;

    let sidecar_meta = footer.custom_metadata().and_then(|kvs| {
        kvs.iter()
            .find(|kv| kv.key() == Some(METADATA_KEY))
            .map(|kv| kv.value().unwrap_or_default().to_string())
    });

    let expected_views: usize = schema
        .fields()
        .iter()
        .map(|f| view_arrays(f.data_type()))
        .sum();

    let mut batches = Vec::new();
    for (i, block) in footer.recordBatches().into_iter().flatten().enumerate() {
        let what = format!("record batch {i}");
        let range = check_block(bytes, block, footer_start, &what)?;
        let rows = check_message(
            &bytes[range.start..range.start + range.len],
            block,
            version,
            MessageHeader::RecordBatch,
            expected_views,
            &what,
        )?;
        batches.push(BlockRange { rows, ..range });
    }
    let mut dictionaries = Vec::new();
    for (i, block) in footer.dictionaries().into_iter().flatten().enumerate() {
        let what = format!("dictionary batch {i}");
        let range = check_block(bytes, block, footer_start, &what)?;
        // The value type (and so its view count) depends on the dictionary
        // id; the decoder checks the counts for dictionaries, so only the
        // generic checks run here (`usize::MAX` skips the count check).
        let rows = check_message(
            &bytes[range.start..range.start + range.len],
            block,
            version,
            MessageHeader::DictionaryBatch,
            usize::MAX,
            &what,
        )?;
        dictionaries.push(BlockRange { rows, ..range });
    }
    Ok(Layout {
        version,
        schema,
        dictionaries,
        batches,
        sidecar_meta,
    })
}

/// Checks that a block lies in `[HEADER, footer_start)` and is 8-aligned.
fn check_block(
    bytes: &[u8],
    block: &Block,
    footer_start: usize,
    what: &str,
) -> Result<BlockRange, String> {
    let offset = block.offset();
    let meta = block.metaDataLength();
    let body = block.bodyLength();
    let bad = |reason: &str| {
        format!(
            "{what}: {reason} (offset {offset}, metadata {meta} bytes, body {body} bytes, \
             data ends at {footer_start}, file is {} bytes)",
            bytes.len()
        )
    };
    if offset < HEADER as i64 || offset % 8 != 0 {
        return Err(bad("offset is not an 8-aligned position after the header"));
    }
    if meta < 8 || body < 0 {
        return Err(bad("negative or too small length"));
    }
    let end = offset
        .checked_add(i64::from(meta))
        .and_then(|e| e.checked_add(body))
        .ok_or_else(|| bad("length overflows"))?;
    if end > footer_start as i64 {
        return Err(bad("block extends past the data section"));
    }
    Ok(BlockRange {
        block: *block,
        start: offset as usize,
        len: (end - offset) as usize,
        rows: 0,
    })
}

/// Checks one encapsulated message (`buf` is exactly the block) and returns
/// its row count. `expected_views == usize::MAX` skips the variadic check.
fn check_message(
    buf: &[u8],
    block: &Block,
    version: MetadataVersion,
    expected: MessageHeader,
    expected_views: usize,
    what: &str,
) -> Result<usize, String> {
    let meta_len = block.metaDataLength() as usize;
    let body_len = block.bodyLength() as usize;
    // Prefix: continuation marker + i32 length (the pre-0.15 format had only
    // the length; the decoder accepts both, so do we).
    let (fb_start, fb_len) = if buf[..4] == [0xff; 4] {
        (8, i32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]))
    } else {
        (4, i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]))
    };
    let fb_len = usize::try_from(fb_len)
        .ok()
        .filter(|&l| l > 0 && fb_start + l <= meta_len)
        .ok_or_else(|| {
            format!("{what}: message length {fb_len} does not fit its {meta_len}-byte metadata")
        })?;
    let message = arrow::ipc::root_as_message(&buf[fb_start..fb_start + fb_len])
        .map_err(|e| format!("{what}: message flatbuffer: {e}"))?;
    if message.version() != version {
        return Err(format!(
            "{what}: message version {:?} differs from the footer's {:?}",
            message.version(),
            version
        ));
    }
    if message.header_type() != expected {
        return Err(format!(
            "{what}: message is a {:?}, expected {:?}",
            message.header_type(),
            expected
        ));
    }
    if message.bodyLength() != block.bodyLength() {
        return Err(format!(
            "{what}: message body length {} differs from the block's {}",
            message.bodyLength(),
            block.bodyLength()
        ));
    }
    let batch = match expected {
        MessageHeader::RecordBatch => message.header_as_record_batch(),
        _ => message.header_as_dictionary_batch().and_then(|d| d.data()),
    }
    .ok_or_else(|| format!("{what}: message has no record batch"))?;
    if batch.compression().is_some() {
        return Err(format!("{what}: compressed IPC bodies are not supported"));
    }
    let rows = batch.length();
    if !(0..=MAX_NODE_LENGTH).contains(&rows) {
        return Err(format!("{what}: bad row count {rows}"));
    }
    let nodes = batch
        .nodes()
        .ok_or_else(|| format!("{what}: no field nodes"))?;
    for (j, node) in nodes.iter().enumerate() {
        if !(0..=MAX_NODE_LENGTH).contains(&node.length())
            || node.null_count() < 0
            || node.null_count() > node.length()
        {
            return Err(format!(
                "{what}: field node {j} has length {} and null count {}",
                node.length(),
                node.null_count()
            ));
        }
    }
    let buffers = batch
        .buffers()
        .ok_or_else(|| format!("{what}: no buffers"))?;
    for (j, b) in buffers.iter().enumerate() {
        let ok = b.offset() >= 0
            && b.length() >= 0
            && b.offset()
                .checked_add(b.length())
                .is_some_and(|end| end as u64 <= body_len as u64);
        if !ok {
            return Err(format!(
                "{what}: buffer {j} (offset {}, length {}) lies outside the {body_len}-byte body",
                b.offset(),
                b.length()
            ));
        }
    }
    if expected_views != usize::MAX {
        let views = batch.variadicBufferCounts().map_or(0, |v| v.len());
        if views != expected_views {
            return Err(format!(
                "{what}: {views} variadic buffer counts, the schema has {expected_views} view arrays"
            ));
        }
        if let Some(counts) = batch.variadicBufferCounts()
            && counts
                .iter()
                .any(|c| !(0..=buffers.len() as i64).contains(&c))
        {
            return Err(format!("{what}: bad variadic buffer count"));
        }
    }
    Ok(rows as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> SidecarMeta {
        SidecarMeta {
            key_type: KeyType::Int64,
            rows: 20_000,
            batch_rows: 8192,
            last_key: Some(0xdead_beef),
            first_keys: vec![5, 8197, u64::MAX - 1],
        }
    }

    #[test]
    fn metadata_round_trips() {
        let m = meta();
        let s = m.encode();
        assert!(s.starts_with("format=1;key_index=0;key_type=Int64;order=u64-strictly-ascending;"));
        assert_eq!(SidecarMeta::parse(&s).unwrap(), m);
        let empty = SidecarMeta {
            rows: 0,
            last_key: None,
            first_keys: vec![],
            ..m
        };
        assert_eq!(SidecarMeta::parse(&empty.encode()).unwrap(), empty);
    }

    #[test]
    fn metadata_parse_is_strict() {
        let s = meta().encode();
        for bad in [
            s.replace("format=1", "format=2"),
            s.replace("key_index=0", "key_index=1"),
            s.replace("Int64", "Float64"),
            s.replace("order=", "ordr="),
            s.replace("rows=20000", "rows=-1"),
            format!("{s};extra=1"),
            s[..s.len() - 1].to_string(),
            s.replace("00000000deadbeef", "00000000deadbeeg"),
            String::new(),
        ] {
            assert!(SidecarMeta::parse(&bad).is_err(), "accepted {bad}");
        }
    }

    #[test]
    fn tiny_and_garbage_inputs_are_rejected() {
        assert!(parse_layout(b"").is_err());
        assert!(parse_layout(b"ARROW1").is_err());
        assert!(parse_layout(&[0u8; 64]).is_err());
        // NOTES test 16's shape: zero bytes, a huge footer length, magic.
        let mut f = vec![0u8; 22];
        f.extend_from_slice(&1_000_000i32.to_le_bytes());
        f.extend_from_slice(MAGIC);
        assert!(
            parse_layout(&f)
                .unwrap_err()
                .contains("no ARROW1 magic at offset 0")
        );
        f[..6].copy_from_slice(MAGIC);
        assert!(parse_layout(&f).unwrap_err().contains("footer length"));
    }

    #[test]
    fn guarded_turns_panics_into_errors() {
        let r: Result<(), ArrowError> = guarded(|| panic!("boom"));
        assert!(r.unwrap_err().to_string().contains("boom"));
    }
}
