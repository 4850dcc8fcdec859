//! The WAL encoding of a batch of rows: the batch's Arrow buffers written as
//! they are, so a commit's rows reach the log file without being copied into
//! an intermediate buffer first (an Arrow IPC stream copies every buffer;
//! that copy was ~5% of an ingest session's time).
//!
//! ```text
//! magic "QRW1"
//! u32 schema length | schema (see `write_schema`: field names, types,
//!                     nullability and metadata)
//! u64 rows
//! per array, depth first (each column, then its children):
//!   u64 len | u64 null count | u8 has validity | u8 buffer count
//!   | buffer count × u64 byte length | u8 child count
//! padding to a multiple of 32
//! body: per array, in the same order, its validity bytes then its buffers,
//!       each padded to a multiple of 32
//! ```
//!
//! Arrays are written from their buffers when they have no offset (fresh,
//! not sliced); a sliced array is copied first. Types `write_type` does not
//! know (none that storage stores) are refused. [`decode_rows`] checks
//! every length against the bytes present before Arrow sees it and
//! validates everything it builds: a record that passes its checksum but
//! does not decode is reported as corruption, never a panic, and never an
//! allocation larger than the record. (Arrow IPC streams, which the first
//! WAL format held, are not read: arrow-ipc trusts their length prefixes
//! and can panic on a damaged schema.)
//!
//! This module owns the byte layout only; where rows go in a record is the
//! WAL's and the committer's business.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayData, ArrayDataBuilder, BufferSpec, RecordBatch, RecordBatchOptions, make_array,
};
use arrow::buffer::Buffer;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::error::ArrowError;

use crate::wal::{Chunk, ZEROS};

/// First bytes of the encoding.
const MAGIC: [u8; 4] = *b"QRW1";

/// A batch's rows in their WAL encoding, as chunks to write in order.
#[derive(Debug, Clone, Default)]
pub struct EncodedRows {
    chunks: Vec<Chunk>,
    len: usize,
}

impl EncodedRows {
    /// Encodes `batch`: its buffers are referenced, not copied, unless an
    /// array is sliced (that array is copied). Refused for types the
    /// encoding does not cover.
    pub fn encode(batch: &RecordBatch) -> Result<EncodedRows, ArrowError> {
        let refused = || {
            ArrowError::InvalidArgumentError(
                "a column type the WAL rows encoding does not cover".into(),
            )
        };
        let columns: Vec<ArrayData> = batch
            .columns()
            .iter()
            .map(|c| {
                let data = c.to_data();
                match describable(&data) {
                    true => data,
                    false => unsliced(&data),
                }
            })
            .collect();
        let mut schema = Vec::with_capacity(256);
        if !columns.iter().all(describable) || !write_schema(&batch.schema(), &mut schema) {
            return Err(refused());
        }
        let mut meta = Vec::with_capacity(256 + schema.len());
        meta.extend_from_slice(&MAGIC);
        if !put_len(schema.len(), &mut meta) {
            return Err(refused());
        }
        meta.extend_from_slice(&schema);
        meta.extend_from_slice(&(batch.num_rows() as u64).to_le_bytes());
        let mut body = Vec::new();
        for column in &columns {
            describe(column, &mut meta, &mut body);
        }
        let pad = padding(meta.len());
        meta.extend_from_slice(&ZEROS[..pad]);
        let mut chunks = Vec::with_capacity(1 + 2 * body.len());
        chunks.push(Chunk::Owned(meta));
        for buffer in body {
            let pad = padding(buffer.len());
            chunks.push(Chunk::Arrow(buffer));
            if pad > 0 {
                chunks.push(Chunk::Padding(pad));
            }
        }
        Ok(EncodedRows::from_chunks(chunks))
    }

    fn from_chunks(chunks: Vec<Chunk>) -> EncodedRows {
        let len = chunks.iter().map(Chunk::len).sum();
        EncodedRows { chunks, len }
    }

    /// Encoded byte length.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is encoded.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The chunks, to write in order.
    pub fn into_chunks(self) -> Vec<Chunk> {
        self.chunks
    }
}

/// Whether `data` and every child have no offset (their buffers start at
/// their first value), so the buffers can be written as they are, and
/// their buffer and child counts fit the description's `u8` fields.
fn describable(data: &ArrayData) -> bool {
    data.offset() == 0
        && data.nulls().is_none_or(|n| n.offset() == 0)
        && u8::try_from(data.buffers().len()).is_ok()
        && u8::try_from(data.child_data().len()).is_ok()
        && data.child_data().iter().all(describable)
}

/// A copy of `data` whose arrays (and children) start at their first
/// value (`data` itself if the copy fails: the caller then refuses it).
fn unsliced(data: &ArrayData) -> ArrayData {
    let mut copy = arrow::array::MutableArrayData::new(vec![data], false, data.len());
    match copy.try_extend(0, 0, data.len()) {
        Ok(()) => copy.freeze(),
        Err(_) => data.clone(),
    }
}

/// Appends `n` as a `u32` length; false if it does not fit.
fn put_len(n: usize, out: &mut Vec<u8>) -> bool {
    match u32::try_from(n) {
        Ok(v) => {
            out.extend_from_slice(&v.to_le_bytes());
            true
        }
        Err(_) => false,
    }
}

/// Appends `data`'s node description to `meta` and its buffers to `body`.
fn describe(data: &ArrayData, meta: &mut Vec<u8>, body: &mut Vec<Buffer>) {
    meta.extend_from_slice(&(data.len() as u64).to_le_bytes());
    meta.extend_from_slice(&(data.null_count() as u64).to_le_bytes());
    match data.nulls() {
        Some(nulls) => {
            meta.push(1);
            body.push(nulls.buffer().slice_with_length(0, data.len().div_ceil(8)));
        }
        None => meta.push(0),
    }
    meta.push(u8::try_from(data.buffers().len()).unwrap_or(u8::MAX));
    for buffer in data.buffers() {
        meta.extend_from_slice(&(buffer.len() as u64).to_le_bytes());
        body.push(buffer.clone());
    }
    meta.push(u8::try_from(data.child_data().len()).unwrap_or(u8::MAX));
    for child in data.child_data() {
        describe(child, meta, body);
    }
}

/// Appends `schema` (`u32 field count, each field, metadata`); false if a
/// type is one this encoding does not cover or a length does not fit.
fn write_schema(schema: &Schema, out: &mut Vec<u8>) -> bool {
    put_len(schema.fields().len(), out)
        && schema.fields().iter().all(|f| write_field(f, out))
        && write_metadata(schema.metadata(), out)
}

fn write_field(field: &Field, out: &mut Vec<u8>) -> bool {
    write_str(field.name(), out)
        && {
            out.push(u8::from(field.is_nullable()));
            write_metadata(field.metadata(), out)
        }
        && write_type(field.data_type(), out)
}

fn write_str(s: &str, out: &mut Vec<u8>) -> bool {
    put_len(s.len(), out) && {
        out.extend_from_slice(s.as_bytes());
        true
    }
}

fn write_metadata(metadata: &HashMap<String, String>, out: &mut Vec<u8>) -> bool {
    let mut entries: Vec<_> = metadata.iter().collect();
    entries.sort();
    put_len(entries.len(), out)
        && entries
            .into_iter()
            .all(|(k, v)| write_str(k, out) && write_str(v, out))
}

fn time_unit_tag(unit: &TimeUnit) -> u8 {
    match unit {
        TimeUnit::Second => 0,
        TimeUnit::Millisecond => 1,
        TimeUnit::Microsecond => 2,
        TimeUnit::Nanosecond => 3,
    }
}

/// Appends a type tag and its parameters; false for types not covered.
fn write_type(data_type: &DataType, out: &mut Vec<u8>) -> bool {
    let simple = match data_type {
        DataType::Null => Some(0),
        DataType::Boolean => Some(1),
        DataType::Int8 => Some(2),
        DataType::Int16 => Some(3),
        DataType::Int32 => Some(4),
        DataType::Int64 => Some(5),
        DataType::UInt8 => Some(6),
        DataType::UInt16 => Some(7),
        DataType::UInt32 => Some(8),
        DataType::UInt64 => Some(9),
        DataType::Float16 => Some(10),
        DataType::Float32 => Some(11),
        DataType::Float64 => Some(12),
        DataType::Date32 => Some(13),
        DataType::Date64 => Some(14),
        DataType::Utf8 => Some(15),
        DataType::LargeUtf8 => Some(16),
        DataType::Binary => Some(17),
        DataType::LargeBinary => Some(18),
        _ => None,
    };
    if let Some(tag) = simple {
        out.push(tag);
        return true;
    }
    match data_type {
        DataType::Timestamp(unit, tz) => {
            out.push(32);
            out.push(time_unit_tag(unit));
            match tz {
                Some(tz) => {
                    out.push(1);
                    write_str(tz, out)
                }
                None => {
                    out.push(0);
                    true
                }
            }
        }
        DataType::FixedSizeBinary(n) => {
            out.push(33);
            out.extend_from_slice(&n.to_le_bytes());
            true
        }
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => {
            out.push(match data_type {
                DataType::Decimal32(..) => 34,
                DataType::Decimal64(..) => 35,
                DataType::Decimal128(..) => 36,
                _ => 37,
            });
            out.push(*p);
            out.extend_from_slice(&s.to_le_bytes());
            true
        }
        DataType::List(f) | DataType::LargeList(f) => {
            out.push(if matches!(data_type, DataType::List(_)) {
                38
            } else {
                39
            });
            write_field(f, out)
        }
        DataType::FixedSizeList(f, n) => {
            out.push(40);
            out.extend_from_slice(&n.to_le_bytes());
            write_field(f, out)
        }
        DataType::Struct(fields) => {
            out.push(41);
            put_len(fields.len(), out) && fields.iter().all(|f| write_field(f, out))
        }
        DataType::Dictionary(k, v) => {
            out.push(42);
            write_type(k, out) && write_type(v, out)
        }
        DataType::Time32(unit) | DataType::Time64(unit) | DataType::Duration(unit) => {
            out.push(match data_type {
                DataType::Time32(_) => 44,
                DataType::Time64(_) => 45,
                _ => 46,
            });
            out.push(time_unit_tag(unit));
            true
        }
        _ => false,
    }
}

/// Fewest bytes a field's description takes (name length, nullability,
/// metadata count, type tag): bounds what a damaged count can make us
/// reserve.
const MIN_FIELD_BYTES: usize = 10;

fn read_schema(r: &mut MetaReader<'_>) -> Result<Schema, ArrowError> {
    let n = r.u32()? as usize;
    let mut fields = Vec::with_capacity(n.min(r.remaining() / MIN_FIELD_BYTES));
    for _ in 0..n {
        fields.push(read_field(r, 0)?);
    }
    let metadata = read_metadata(r)?;
    Ok(Schema::new_with_metadata(fields, metadata))
}

fn read_field(r: &mut MetaReader<'_>, depth: usize) -> Result<Field, ArrowError> {
    let name = r.str()?;
    let nullable = r.u8()? != 0;
    let metadata = read_metadata(r)?;
    let data_type = read_type(r, depth)?;
    Ok(Field::new(name, data_type, nullable).with_metadata(metadata))
}

fn read_metadata(r: &mut MetaReader<'_>) -> Result<HashMap<String, String>, ArrowError> {
    let n = r.u32()? as usize;
    // An entry takes at least two string lengths.
    let mut metadata = HashMap::with_capacity(n.min(r.remaining() / 8));
    for _ in 0..n {
        let k = r.str()?;
        metadata.insert(k, r.str()?);
    }
    Ok(metadata)
}

fn read_time_unit(r: &mut MetaReader<'_>) -> Result<TimeUnit, ArrowError> {
    Ok(match r.u8()? {
        0 => TimeUnit::Second,
        1 => TimeUnit::Millisecond,
        2 => TimeUnit::Microsecond,
        3 => TimeUnit::Nanosecond,
        _ => return Err(corrupt("time unit")),
    })
}

fn read_type(r: &mut MetaReader<'_>, depth: usize) -> Result<DataType, ArrowError> {
    if depth > MAX_DEPTH {
        return Err(corrupt("nesting"));
    }
    let depth = depth + 1;
    Ok(match r.u8()? {
        0 => DataType::Null,
        1 => DataType::Boolean,
        2 => DataType::Int8,
        3 => DataType::Int16,
        4 => DataType::Int32,
        5 => DataType::Int64,
        6 => DataType::UInt8,
        7 => DataType::UInt16,
        8 => DataType::UInt32,
        9 => DataType::UInt64,
        10 => DataType::Float16,
        11 => DataType::Float32,
        12 => DataType::Float64,
        13 => DataType::Date32,
        14 => DataType::Date64,
        15 => DataType::Utf8,
        16 => DataType::LargeUtf8,
        17 => DataType::Binary,
        18 => DataType::LargeBinary,
        32 => {
            let unit = read_time_unit(r)?;
            let tz = match r.u8()? {
                0 => None,
                _ => Some(Arc::from(r.str()?)),
            };
            DataType::Timestamp(unit, tz)
        }
        33 => DataType::FixedSizeBinary(r.non_negative_i32()?),
        tag @ 34..=37 => {
            let (p, s) = (r.u8()?, i8::from_le_bytes([r.u8()?]));
            let max = [9, 18, 38, 76][usize::from(tag - 34)];
            if p == 0 || p > max || i16::from(s) > i16::from(p) {
                return Err(corrupt("decimal precision or scale"));
            }
            match tag {
                34 => DataType::Decimal32(p, s),
                35 => DataType::Decimal64(p, s),
                36 => DataType::Decimal128(p, s),
                _ => DataType::Decimal256(p, s),
            }
        }
        38 => DataType::List(Arc::new(read_field(r, depth)?)),
        39 => DataType::LargeList(Arc::new(read_field(r, depth)?)),
        40 => {
            let n = r.non_negative_i32()?;
            DataType::FixedSizeList(Arc::new(read_field(r, depth)?), n)
        }
        41 => {
            let n = r.u32()? as usize;
            let mut fields = Vec::with_capacity(n.min(r.remaining() / MIN_FIELD_BYTES));
            for _ in 0..n {
                fields.push(read_field(r, depth)?);
            }
            DataType::Struct(fields.into())
        }
        42 => {
            let k = read_type(r, depth)?;
            let v = read_type(r, depth)?;
            if !k.is_dictionary_key_type() {
                return Err(corrupt("dictionary key type"));
            }
            DataType::Dictionary(Box::new(k), Box::new(v))
        }
        // Arrow has no other Time32 or Time64 units (and panics on them).
        44 => match read_time_unit(r)? {
            unit @ (TimeUnit::Second | TimeUnit::Millisecond) => DataType::Time32(unit),
            _ => return Err(corrupt("time unit")),
        },
        45 => match read_time_unit(r)? {
            unit @ (TimeUnit::Microsecond | TimeUnit::Nanosecond) => DataType::Time64(unit),
            _ => return Err(corrupt("time unit")),
        },
        46 => DataType::Duration(read_time_unit(r)?),
        _ => return Err(corrupt("type tag")),
    })
}

/// Every buffer starts at a multiple of this in the body (the largest
/// alignment an Arrow native type needs: i128/i256 want 16).
const ALIGN: usize = 32;

fn padding(len: usize) -> usize {
    (ALIGN - len % ALIGN) % ALIGN
}

/// Decodes rows written by [`EncodedRows::encode`], validating every
/// array.
pub fn decode_rows(bytes: &[u8]) -> Result<RecordBatch, ArrowError> {
    if !bytes.starts_with(&MAGIC) {
        return Err(corrupt("not the WAL rows encoding"));
    }
    let mut r = MetaReader { bytes, pos: 4 };
    let schema_len = r.u32()? as usize;
    let mut schema_reader = MetaReader {
        bytes: r.take(schema_len)?,
        pos: 0,
    };
    let schema: SchemaRef = Arc::new(read_schema(&mut schema_reader)?);
    if schema_reader.pos != schema_reader.bytes.len() {
        return Err(corrupt("bytes after the schema"));
    }
    let rows = bounded_len(r.u64()?)?;
    let mut nodes = Vec::with_capacity(schema.fields().len());
    for field in schema.fields() {
        let node = read_node(&mut r, field.data_type().clone(), 0)?;
        if node.len != rows {
            return Err(corrupt("column length"));
        }
        nodes.push(node);
    }
    let body_start = r.pos + padding(r.pos);
    let body = bytes.get(body_start..).ok_or_else(|| corrupt("body"))?;
    // One aligned copy of the body (Arrow allocations are 64-byte aligned):
    // every buffer in it starts at a multiple of `ALIGN`, as Arrow requires
    // for its typed views.
    let body = Buffer::from_slice_ref(body);
    let mut at = 0;
    let columns = nodes
        .into_iter()
        .map(|node| build(node, &body, &mut at).map(make_array))
        .collect::<Result<Vec<_>, _>>()?;
    if at != body.len() {
        return Err(corrupt("bytes after the last buffer"));
    }
    RecordBatch::try_new_with_options(
        schema,
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
}

/// An array's description, before its buffers are cut from the body.
struct Node {
    data_type: DataType,
    len: usize,
    null_count: usize,
    has_validity: bool,
    buffers: Vec<usize>,
    children: Vec<Node>,
}

/// Nesting deeper than this is corruption (stored types nest a few levels).
const MAX_DEPTH: usize = 64;

/// An array or row count read from a record: at most `u32::MAX` (a batch
/// comes from one frame), so Arrow's size arithmetic (length × a 31-bit
/// element size) cannot overflow, which it would answer with a panic.
fn bounded_len(v: u64) -> Result<usize, ArrowError> {
    u32::try_from(v)
        .map(|v| v as usize)
        .map_err(|_| corrupt("length"))
}

fn read_node(
    r: &mut MetaReader<'_>,
    data_type: DataType,
    depth: usize,
) -> Result<Node, ArrowError> {
    if depth > MAX_DEPTH {
        return Err(corrupt("nesting"));
    }
    let len = bounded_len(r.u64()?)?;
    let null_count = bounded_len(r.u64()?)?;
    let has_validity = r.u8()? != 0;
    let buffer_count = r.u8()?;
    let mut buffers = Vec::with_capacity(buffer_count as usize);
    for _ in 0..buffer_count {
        buffers.push(usize::try_from(r.u64()?).map_err(|_| corrupt("buffer length"))?);
    }
    let child_count = r.u8()? as usize;
    let child_types = child_types(&data_type);
    if child_types.len() != child_count {
        return Err(corrupt("child count"));
    }
    let mut children = Vec::with_capacity(child_count);
    for t in child_types {
        children.push(read_node(r, t, depth + 1)?);
    }
    Ok(Node {
        data_type,
        len,
        null_count,
        has_validity,
        buffers,
        children,
    })
}

/// The types of `data_type`'s child arrays, in `ArrayData` order.
fn child_types(data_type: &DataType) -> Vec<DataType> {
    match data_type {
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::ListView(f)
        | DataType::LargeListView(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => vec![f.data_type().clone()],
        DataType::Struct(fields) => fields.iter().map(|f| f.data_type().clone()).collect(),
        DataType::Union(fields, _) => fields.iter().map(|(_, f)| f.data_type().clone()).collect(),
        DataType::Dictionary(_, values) => vec![values.as_ref().clone()],
        DataType::RunEndEncoded(ends, values) => {
            vec![ends.data_type().clone(), values.data_type().clone()]
        }
        _ => Vec::new(),
    }
}

/// Cuts `node`'s buffers from `body` at `at` and builds its array, with
/// full validation (offsets, UTF-8, lengths).
fn build(node: Node, body: &Buffer, at: &mut usize) -> Result<ArrayData, ArrowError> {
    // Arrow's validation assumes buffers hold whole values (it reinterprets
    // them as typed slices and asserts); check that first.
    let layout = arrow::array::layout(&node.data_type);
    if layout.buffers.len() != node.buffers.len() {
        return Err(corrupt("buffer count"));
    }
    for (spec, len) in layout.buffers.iter().zip(&node.buffers) {
        if let BufferSpec::FixedWidth { byte_width, .. } = spec
            && len % byte_width.max(&1) != 0
        {
            return Err(corrupt("buffer length"));
        }
    }
    let mut cut = |len: usize| -> Result<Buffer, ArrowError> {
        let end = at
            .checked_add(len)
            .and_then(|e| e.checked_add(padding(len)))
            .filter(|e| *e <= body.len())
            .ok_or_else(|| corrupt("buffer past the end"))?;
        let buffer = body.slice_with_length(*at, len);
        *at = end;
        Ok(buffer)
    };
    let validity = if node.has_validity {
        Some(cut(node.len.div_ceil(8))?)
    } else {
        None
    };
    let buffers = node
        .buffers
        .iter()
        .map(|len| cut(*len))
        .collect::<Result<Vec<_>, _>>()?;
    let children = node
        .children
        .into_iter()
        .map(|child| build(child, body, at))
        .collect::<Result<Vec<_>, _>>()?;
    ArrayDataBuilder::new(node.data_type)
        .len(node.len)
        .null_count(node.null_count)
        .null_bit_buffer(validity)
        .buffers(buffers)
        .child_data(children)
        .build()
}

fn corrupt(what: &str) -> ArrowError {
    ArrowError::IpcError(format!("corrupt WAL rows: {what}"))
}

/// Reads the little-endian description fields.
struct MetaReader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> MetaReader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ArrowError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.bytes.len())
            .ok_or_else(|| corrupt("description past the end"))?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8, ArrowError> {
        Ok(self.take(1)?[0])
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn non_negative_i32(&mut self) -> Result<i32, ArrowError> {
        i32::try_from(self.u32()?).map_err(|_| corrupt("size"))
    }

    fn str(&mut self) -> Result<String, ArrowError> {
        let n = self.u32()? as usize;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| corrupt("name"))
    }

    fn u32(&mut self) -> Result<u32, ArrowError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, ArrowError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{
        Array, ArrayRef, BinaryArray, BooleanArray, Decimal128Array, Decimal256Array,
        DictionaryArray, FixedSizeBinaryArray, FixedSizeListArray, Float64Array, Int64Array,
        ListArray, StringArray, StructArray, TimestampMicrosecondArray, UInt32Array,
    };
    use arrow::datatypes::{Float64Type, Int64Type, UInt32Type, i256};

    fn joined(rows: &EncodedRows) -> Vec<u8> {
        let bytes: Vec<u8> = rows
            .chunks
            .iter()
            .flat_map(|c| c.as_slice().to_vec())
            .collect();
        assert_eq!(bytes.len(), rows.len());
        bytes
    }

    fn every_stored_shape() -> RecordBatch {
        let list = ListArray::from_iter_primitive::<Float64Type, _, _>(vec![
            Some(vec![Some(1.5), None]),
            None,
            Some(vec![]),
        ]);
        let inner = ListArray::from_iter_primitive::<Int64Type, _, _>(vec![
            Some(vec![Some(1)]),
            Some(vec![Some(2), Some(3)]),
            None,
        ]);
        let nested = ListArray::new(
            Arc::new(Field::new("item", inner.data_type().clone(), true)),
            arrow::buffer::OffsetBuffer::from_lengths([1, 0, 2]),
            Arc::new(inner),
            None,
        );
        let dict: DictionaryArray<UInt32Type> =
            vec![Some("a"), None, Some("b")].into_iter().collect();
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "b",
                Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)])),
            ),
            (
                "l",
                Arc::new(Int64Array::from(vec![Some(i64::MIN), None, Some(7)])),
            ),
            ("d", Arc::new(Float64Array::from(vec![1.0, f64::NAN, -0.0]))),
            ("k", Arc::new(UInt32Array::from(vec![0, 1, 2]))),
            (
                "ts",
                Arc::new(TimestampMicrosecondArray::from(vec![1, 2, 3]).with_timezone("UTC")),
            ),
            (
                "s",
                Arc::new(StringArray::from(vec![Some("ç"), None, Some("")])),
            ),
            (
                "bin",
                Arc::new(BinaryArray::from_opt_vec(vec![
                    Some(b"\x00\xff"),
                    None,
                    Some(b""),
                ])),
            ),
            (
                "u",
                Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                        vec![Some([1u8; 16]), None, Some([2u8; 16])].into_iter(),
                        16,
                    )
                    .unwrap(),
                ),
            ),
            (
                "dec",
                Arc::new(
                    Decimal128Array::from(vec![Some(12_345), None, Some(-1)])
                        .with_precision_and_scale(38, 4)
                        .unwrap(),
                ),
            ),
            (
                "dec256",
                Arc::new(
                    Decimal256Array::from(vec![Some(i256::from(7)), None, Some(i256::MINUS_ONE)])
                        .with_precision_and_scale(76, 10)
                        .unwrap(),
                ),
            ),
            ("arr", Arc::new(list)),
            ("arr2", Arc::new(nested)),
            ("sym", Arc::new(dict)),
            (
                "st",
                Arc::new(StructArray::from(vec![(
                    Arc::new(Field::new("x", DataType::Int64, true)),
                    Arc::new(Int64Array::from(vec![Some(1), None, Some(3)])) as ArrayRef,
                )])),
            ),
        ];
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn every_stored_shape_round_trips_without_copying_buffers() {
        let batch = every_stored_shape();
        let rows = EncodedRows::encode(&batch).unwrap();
        assert!(joined(&rows).starts_with(&MAGIC));
        // The Int64 column's values are referenced, not copied.
        let values = batch.column(1).to_data().buffers()[0].as_ptr();
        assert!(
            rows.chunks
                .iter()
                .any(|c| matches!(c, Chunk::Arrow(b) if b.as_ptr() == values))
        );
        assert_eq!(decode_rows(&joined(&rows)).unwrap(), batch);
    }

    #[test]
    fn sliced_batches_are_copied_and_round_trip() {
        for (offset, len) in [(1, 2), (2, 1), (0, 2), (3, 0)] {
            let batch = every_stored_shape().slice(offset, len);
            let rows = EncodedRows::encode(&batch).unwrap();
            assert!(joined(&rows).starts_with(&MAGIC));
            assert_eq!(
                decode_rows(&joined(&rows)).unwrap(),
                batch,
                "{offset}+{len}"
            );
        }
    }

    #[test]
    fn batches_without_columns_keep_their_row_count() {
        let batch = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(5)),
        )
        .unwrap();
        let rows = EncodedRows::encode(&batch).unwrap();
        assert_eq!(decode_rows(&joined(&rows)).unwrap().num_rows(), 5);
    }

    #[test]
    fn damaged_encodings_are_errors_not_panics() {
        let bytes = joined(&EncodedRows::encode(&every_stored_shape()).unwrap());
        // Every truncation, and every single-byte change in the description
        // and at the start of the body.
        for end in 0..bytes.len() {
            assert!(decode_rows(&bytes[..end]).is_err(), "cut at {end}");
        }
        let meta_len = bytes.len().min(1200);
        for i in 0..meta_len {
            for flip in [0x01u8, 0x80, 0xff] {
                let mut damaged = bytes.clone();
                damaged[i] ^= flip;
                let _ = decode_rows(&damaged);
            }
        }
        // Lengths past any real batch, which Arrow's size arithmetic would
        // overflow (and panic on), are refused before it sees them.
        let list = FixedSizeListArray::from_iter_primitive::<Int64Type, _, _>(
            vec![Some(vec![Some(1), Some(2)])],
            2,
        );
        let batch = RecordBatch::try_from_iter([("fl", Arc::new(list) as ArrayRef)]).unwrap();
        let good = joined(&EncodedRows::encode(&batch).unwrap());
        assert_eq!(decode_rows(&good).unwrap(), batch);
        let schema_len = u32::from_le_bytes(good[4..8].try_into().unwrap()) as usize;
        let rows_at = 8 + schema_len;
        for (at, value) in [
            (rows_at, 1u64 << 63),
            (rows_at + 8, 1 << 63),
            (rows_at, 2),
            (rows_at + 8, 2),
        ] {
            let mut damaged = good.clone();
            damaged[at..at + 8].copy_from_slice(&value.to_le_bytes());
            assert!(decode_rows(&damaged).is_err(), "{value} at {at}");
        }
        // Invalid UTF-8 in a string column passes no checksum-level check
        // but is refused by validation.
        let at = bytes
            .windows(2)
            .position(|w| w == "ç".as_bytes())
            .expect("the string bytes");
        let mut damaged = bytes.clone();
        damaged[at + 1] = b'A';
        assert!(decode_rows(&damaged).is_err());
        assert!(decode_rows(&bytes).is_ok());
    }
}
