//! A chunk's rows as one QWP ingress frame, written straight from caller
//! memory into the frame buffer, and the connection's SYMBOL dictionary.
//!
//! Byte map of a frame (SPEC §1.6, §2, §3.1):
//!
//! ```text
//! 0   "QWP1" | version 1 | flags (DELTA_SYMBOL_DICT, DEFER_COMMIT) | u16 tables = 1 | u32 payload length
//! 12  varint delta_start | varint delta_count | delta_count × (varint len, UTF-8)
//!     varint len + table name | varint rows | varint columns
//!     columns × (varint len + name, u8 type)      the designated timestamp last, named ""
//!     columns × body: u8 null_flag [bitmap, bit set = NULL] [u8 scale | varint bits] values
//! ```
//!
//! Values per type: fixed-width little-endian; BOOLEAN bit-packed; VARCHAR
//! and BINARY `(n + 1) × u32` offsets from 0 then the bytes; SYMBOL one
//! varint connection-wide id per non-NULL row. BOOLEAN, BYTE, SHORT, CHAR,
//! INT, LONG, FLOAT and DOUBLE carry NULLs as sentinels (no bitmap), every
//! other type as a bitmap and only the non-NULL values, as the official
//! DataFrame path sends them.
//!
//! SYMBOL entries are interned in bulk: each dictionary code a valid row
//! uses is looked up once per frame; only entries the connection has not
//! sent before go in the delta section. A frame that is not sent rolls the
//! dictionary back ([`SymbolTable::rollback`]).
//!
//! What it must not do: read outside the ranges [`super::Chunk`] checked,
//! or send anything.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use quiver_qwp::{Flags, HEADER_LEN, MAGIC, TypeCode, VERSION, put_varint};

use super::chunk::{
    Bits, Chunk, ChunkColumn, ChunkError, Codes, Data, Designated, Elements, Fixed, NullMode,
    Offsets, array_shape, leaf_offset,
};

/// Most SYMBOL entries one connection may define (QuestDB's limit).
pub(crate) const MAX_SYMBOLS: usize = 2_000_000;
/// Most bytes of SYMBOL entries one connection keeps.
pub(crate) const MAX_SYMBOL_TABLE_BYTES: usize = 256 << 20;

/// The connection's SYMBOL dictionary: ids from 0 in the order sent. Each
/// string is stored once (shared by the list and the index).
#[derive(Debug, Default)]
pub(crate) struct SymbolTable {
    ids: HashMap<Arc<str>, u32>,
    entries: Vec<Arc<str>>,
    bytes: usize,
}

impl SymbolTable {
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Forgets the entries from `len` on (a frame that was not sent).
    pub(crate) fn rollback(&mut self, len: usize) {
        for e in self.entries.drain(len.min(self.entries.len())..) {
            self.bytes -= e.len();
            self.ids.remove(&e);
        }
    }

    /// The id of `s`, interned if new; `None` past the connection's limits
    /// (a fresh connection starts from an empty table).
    fn intern(&mut self, s: &str) -> Option<u32> {
        if let Some(&id) = self.ids.get(s) {
            return Some(id);
        }
        if self.entries.len() >= MAX_SYMBOLS || self.bytes + s.len() > MAX_SYMBOL_TABLE_BYTES {
            return None;
        }
        let id = u32::try_from(self.entries.len()).ok()?;
        let key: Arc<str> = s.into();
        self.entries.push(Arc::clone(&key));
        self.ids.insert(key, id);
        self.bytes += s.len();
        Some(id)
    }
}

/// Why a frame was not encoded.
#[derive(Debug)]
pub(crate) enum EncodeError {
    /// Too big for one frame (past the limit given, or a length past
    /// `u32`): fewer rows may fit.
    TooLarge,
    /// The connection's SYMBOL table is full (entries or bytes): a fresh
    /// connection starts an empty one.
    SymbolsFull,
    /// The chunk cannot be sent as it is.
    Chunk(ChunkError),
}

/// Appends to `out` the frame of `chunk`'s `rows`, interning its symbols
/// in `symbols` (rolled back on error). A frame whose payload would pass
/// `limit` bytes stops as soon as that is known ([`EncodeError::TooLarge`]),
/// before copying a value span that alone passes it.
pub(crate) fn encode_chunk(
    chunk: &Chunk<'_>,
    rows: Range<usize>,
    symbols: &mut SymbolTable,
    defer: bool,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let mark = symbols.len();
    let result = encode(chunk, rows, symbols, defer, limit, out);
    if result.is_err() {
        symbols.rollback(mark);
    }
    result
}

/// An empty frame: with `defer` clear, it commits the connection's open
/// deferred group.
pub(crate) fn encode_commit(symbols: &SymbolTable, out: &mut Vec<u8>) {
    let start = out.len();
    header(out, false, 0);
    put_varint(out, symbols.len() as u64);
    put_varint(out, 0);
    finish(out, start).unwrap_or_default();
}

fn header(out: &mut Vec<u8>, defer: bool, tables: u16) {
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(
        Flags(Flags::DELTA_SYMBOL_DICT)
            .with(Flags::DEFER_COMMIT, defer)
            .0,
    );
    out.extend_from_slice(&tables.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
}

/// Writes the payload length into the header at `start`.
fn finish(out: &mut [u8], start: usize) -> Option<()> {
    let len = u32::try_from(out.len() - start - HEADER_LEN).ok()?;
    out[start + 8..start + 12].copy_from_slice(&len.to_le_bytes());
    Some(())
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s);
}

fn encode(
    chunk: &Chunk<'_>,
    rows: Range<usize>,
    symbols: &mut SymbolTable,
    defer: bool,
    limit: usize,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    if chunk.timestamp == Designated::Unset {
        return Err(EncodeError::Chunk(ChunkError::NoTimestamp {
            table: chunk.table.clone(),
        }));
    }
    if chunk.timestamp == Designated::ServerTime && chunk.columns.is_empty() {
        return Err(EncodeError::Chunk(ChunkError::BadType {
            table: chunk.table.clone(),
            column: String::new(),
            reason: "a chunk with no column and server time holds nothing".into(),
        }));
    }
    // Symbols first: the delta section precedes the table block.
    let first_new = symbols.len();
    let mut translations = Vec::new();
    for column in &chunk.columns {
        if let Data::Symbol {
            codes,
            dictionary,
            strings,
        } = &column.data
        {
            let t = intern_column(column, codes, dictionary, strings, rows.clone(), symbols)?;
            translations.push(t);
        }
    }
    let start = out.len();
    header(out, defer, 1);
    put_varint(out, first_new as u64);
    put_varint(out, (symbols.len() - first_new) as u64);
    for entry in &symbols.entries[first_new..] {
        put_str(out, entry.as_bytes());
    }
    put_str(out, chunk.table.as_bytes());
    put_varint(out, rows.len() as u64);
    let designated = !matches!(chunk.timestamp, Designated::ServerTime);
    put_varint(out, (chunk.columns.len() + usize::from(designated)) as u64);
    for column in &chunk.columns {
        put_str(out, column.name.as_bytes());
        out.push(column.code.as_u8());
    }
    let ts = match chunk.timestamp {
        Designated::Micros(v) => Some((TypeCode::Timestamp, v)),
        Designated::Nanos(v) => Some((TypeCode::TimestampNanos, v)),
        Designated::ServerTime | Designated::Unset => None,
    };
    if let Some((code, _)) = ts {
        put_str(out, b"");
        out.push(code.as_u8());
    }
    let mut translations = translations.iter();
    for column in &chunk.columns {
        let ids = match column.data {
            Data::Symbol { .. } => translations.next().map(Vec::as_slice),
            _ => None,
        };
        let room = (start + HEADER_LEN)
            .saturating_add(limit)
            .saturating_sub(out.len());
        body(out, column, rows.clone(), ids, room)?;
        if out.len() - start - HEADER_LEN > limit {
            return Err(EncodeError::TooLarge);
        }
    }
    if let Some((_, values)) = ts {
        out.push(0);
        fixed_range(out, &Fixed::I64(values), rows.clone());
    }
    if out.len() - start - HEADER_LEN > limit {
        return Err(EncodeError::TooLarge);
    }
    finish(out, start).ok_or(EncodeError::TooLarge)
}

/// The connection-wide id of each dictionary code a valid row of `rows`
/// uses (`u32::MAX` for the others), interning new entries.
fn intern_column(
    column: &ChunkColumn<'_>,
    codes: &Codes<'_>,
    dictionary: &Offsets<'_>,
    strings: &[u8],
    rows: Range<usize>,
    symbols: &mut SymbolTable,
) -> Result<Vec<u32>, EncodeError> {
    let entries = dictionary.len().saturating_sub(1);
    let mut ids = vec![u32::MAX; entries];
    for r in rows {
        if column.validity.is_some_and(|v| !v.get(r)) {
            continue;
        }
        let code = codes.at(r);
        if ids[code] != u32::MAX {
            continue;
        }
        let bytes = &strings[dictionary.at(code)..dictionary.at(code + 1)];
        // Checked as UTF-8 on character boundaries when the column was added.
        let s = std::str::from_utf8(bytes).unwrap_or_default();
        ids[code] = symbols.intern(s).ok_or(EncodeError::SymbolsFull)?;
    }
    Ok(ids)
}

fn is_null(validity: Option<Bits<'_>>, row: usize) -> bool {
    validity.is_some_and(|v| !v.get(row))
}

fn body(
    out: &mut Vec<u8>,
    column: &ChunkColumn<'_>,
    rows: Range<usize>,
    symbol_ids: Option<&[u32]>,
    room: usize,
) -> Result<(), EncodeError> {
    let validity = column.validity;
    let nulls = match (column.nulls, validity) {
        (NullMode::Bitmap, Some(v)) => rows.clone().filter(|&r| !v.get(r)).count(),
        _ => 0,
    };
    if nulls == 0 {
        out.push(0);
    } else {
        out.push(1);
        let first = out.len();
        out.resize(first + rows.len().div_ceil(8), 0);
        for (i, r) in rows.clone().enumerate() {
            if is_null(validity, r) {
                out[first + i / 8] |= 1 << (i % 8);
            }
        }
    }
    if let Some(prefix) = column.prefix {
        match column.code {
            TypeCode::Geohash => put_varint(out, u64::from(prefix)),
            _ => out.push(prefix),
        }
    }
    match &column.data {
        Data::Bool(values) => {
            let first = out.len();
            out.resize(first + rows.len().div_ceil(8), 0);
            for (i, r) in rows.enumerate() {
                if values.get(r) && !is_null(validity, r) {
                    out[first + i / 8] |= 1 << (i % 8);
                }
            }
        }
        Data::Fixed(fixed) => match (column.nulls, validity) {
            (_, None) => fixed_range(out, fixed, rows),
            (NullMode::Sentinel, Some(v)) => {
                for r in rows {
                    match v.get(r) {
                        true => fixed_one(out, fixed, r),
                        false => sentinel(out, fixed),
                    }
                }
            }
            (NullMode::Bitmap, Some(_)) if nulls == 0 => fixed_range(out, fixed, rows),
            (NullMode::Bitmap, Some(v)) => {
                for r in rows.filter(|&r| v.get(r)) {
                    fixed_one(out, fixed, r);
                }
            }
        },
        Data::Var { offsets, data } => {
            if nulls == 0 {
                let base = offsets.at(rows.start);
                let span = offsets.at(rows.end) - base;
                if span > room {
                    return Err(EncodeError::TooLarge);
                }
                u32::try_from(span).map_err(|_| EncodeError::TooLarge)?;
                out.reserve(4 * (rows.len() + 1) + span);
                for i in rows.start..=rows.end {
                    // At most `span`, which fits (checked above).
                    let at =
                        u32::try_from(offsets.at(i) - base).map_err(|_| EncodeError::TooLarge)?;
                    out.extend_from_slice(&at.to_le_bytes());
                }
                out.extend_from_slice(&data[base..base + span]);
            } else {
                let span = offsets.at(rows.end) - offsets.at(rows.start);
                if span > room {
                    return Err(EncodeError::TooLarge);
                }
                let mut end = 0usize;
                out.extend_from_slice(&0u32.to_le_bytes());
                for r in rows.clone().filter(|&r| !is_null(validity, r)) {
                    end += offsets.at(r + 1) - offsets.at(r);
                    let end = u32::try_from(end).map_err(|_| EncodeError::TooLarge)?;
                    out.extend_from_slice(&end.to_le_bytes());
                }
                for r in rows.filter(|&r| !is_null(validity, r)) {
                    out.extend_from_slice(&data[offsets.at(r)..offsets.at(r + 1)]);
                }
            }
        }
        Data::Symbol { codes, .. } => {
            let ids = symbol_ids.unwrap_or_default();
            for r in rows.filter(|&r| !is_null(validity, r)) {
                put_varint(out, u64::from(ids[codes.at(r)]));
            }
        }
        Data::Array(elements) => array_values(out, column, *elements, rows, room)?,
    }
    Ok(())
}

/// Each non-NULL row of an array column: rank, dimensions, elements.
fn array_values(
    out: &mut Vec<u8>,
    column: &ChunkColumn<'_>,
    elements: Elements<'_>,
    rows: Range<usize>,
    room: usize,
) -> Result<(), EncodeError> {
    let levels = &column.levels;
    let rank = u8::try_from(levels.len()).map_err(|_| EncodeError::TooLarge)?;
    // What the non-NULL rows take (a NULL row's list may span elements).
    let mut need = 0usize;
    for r in rows.clone().filter(|&r| !is_null(column.validity, r)) {
        let elements = leaf_offset(levels, r + 1) - leaf_offset(levels, r);
        need = need.saturating_add(1 + 4 * levels.len() + 8 * elements);
        if need > room {
            return Err(EncodeError::TooLarge);
        }
    }
    out.reserve(need);
    let mut dims = Vec::with_capacity(levels.len());
    for r in rows.filter(|&r| !is_null(column.validity, r)) {
        // Rectangular and in range: checked when the column was added.
        let range = array_shape(levels, r, &mut dims).map_err(|_| EncodeError::TooLarge)?;
        out.push(rank);
        for &d in &dims {
            let d = u32::try_from(d).map_err(|_| EncodeError::TooLarge)?;
            out.extend_from_slice(&d.to_le_bytes());
        }
        match elements {
            Elements::F64(v) => put_all(out, &v[range], f64::to_le_bytes),
            Elements::I64(v) => put_all(out, &v[range], i64::to_le_bytes),
        }
    }
    Ok(())
}

/// Appends `n` little-endian values produced by `bytes` for each row.
#[inline(always)]
fn put_all<T: Copy, const W: usize>(out: &mut Vec<u8>, values: &[T], bytes: impl Fn(T) -> [u8; W]) {
    let first = out.len();
    out.resize(first + values.len() * W, 0);
    for (slot, &v) in out[first..].chunks_exact_mut(W).zip(values) {
        slot.copy_from_slice(&bytes(v));
    }
}

/// The values of `rows`, as they are.
fn fixed_range(out: &mut Vec<u8>, fixed: &Fixed<'_>, rows: Range<usize>) {
    match fixed {
        Fixed::I8(v) => put_all(out, &v[rows], i8::to_le_bytes),
        Fixed::I16(v) => put_all(out, &v[rows], i16::to_le_bytes),
        Fixed::I32(v) => put_all(out, &v[rows], i32::to_le_bytes),
        Fixed::I64(v) => put_all(out, &v[rows], i64::to_le_bytes),
        Fixed::F32(v) => put_all(out, &v[rows], f32::to_le_bytes),
        Fixed::F64(v) => put_all(out, &v[rows], f64::to_le_bytes),
        Fixed::U16(v) => put_all(out, &v[rows], u16::to_le_bytes),
        Fixed::U32(v) => put_all(out, &v[rows], u32::to_le_bytes),
        Fixed::I128(v) => put_all(out, &v[rows], i128::to_le_bytes),
        Fixed::Le32(v) => put_all(out, &v[rows], |b: [u8; 32]| b),
        Fixed::Uuid(v) => put_all(out, &v[rows], |mut b: [u8; 16]| {
            b.reverse();
            b
        }),
        Fixed::Geo(v, n) => {
            for g in &v[rows] {
                out.extend_from_slice(&g.to_le_bytes()[..*n]);
            }
        }
    }
}

fn fixed_one(out: &mut Vec<u8>, fixed: &Fixed<'_>, r: usize) {
    fixed_range(out, fixed, r..r + 1);
}

/// QuestDB's NULL for a sentinel-mode type.
fn sentinel(out: &mut Vec<u8>, fixed: &Fixed<'_>) {
    match fixed {
        Fixed::I8(_) => out.push(0),
        Fixed::I16(_) | Fixed::U16(_) => out.extend_from_slice(&[0, 0]),
        Fixed::I32(_) => out.extend_from_slice(&i32::MIN.to_le_bytes()),
        Fixed::I64(_) => out.extend_from_slice(&i64::MIN.to_le_bytes()),
        Fixed::F32(_) => out.extend_from_slice(&f32::NAN.to_le_bytes()),
        Fixed::F64(_) => out.extend_from_slice(&f64::NAN.to_le_bytes()),
        // Bitmap-mode types never take a sentinel.
        Fixed::U32(_) | Fixed::I128(_) | Fixed::Le32(_) | Fixed::Uuid(_) | Fixed::Geo(..) => {}
    }
}

#[cfg(test)]
mod tests {
    use quiver_qwp::{IngressDecoder, Limits, Value};

    use super::*;
    use crate::sender::chunk::{Bits, Chunk, Codes, Offsets};

    /// Arrow-style validity bits for `valid`, starting at bit `offset`.
    fn bits(valid: &[bool], offset: usize) -> Vec<u8> {
        let mut out = vec![0u8; (offset + valid.len()).div_ceil(8)];
        for (i, &v) in valid.iter().enumerate() {
            if v {
                out[(offset + i) / 8] |= 1 << ((offset + i) % 8);
            }
        }
        out
    }

    /// Decodes `frame` with `decoder` and returns each column's rows.
    fn decode(decoder: &mut IngressDecoder, frame: &[u8]) -> Vec<(String, Vec<Option<String>>)> {
        let (message, _) = decoder.decode(frame).unwrap();
        let block = &message.tables[0];
        block
            .columns
            .iter()
            .map(|c| {
                let rows = c
                    .data
                    .rows()
                    .into_iter()
                    .map(|v| v.map(|v| format!("{v:?}")))
                    .collect();
                (c.name.to_string(), rows)
            })
            .collect()
    }

    fn shown<'a>(values: impl IntoIterator<Item = Option<Value<'a>>>) -> Vec<Option<String>> {
        values
            .into_iter()
            .map(|v| v.map(|v| format!("{v:?}")))
            .collect()
    }

    #[test]
    fn sliced_columns_with_offset_bitmaps_decode_to_what_was_meant() {
        // Five meaningful rows inside longer buffers, starting at row 3
        // (bit offset 3: not a byte boundary).
        let valid = [true, false, true, true, false];
        let validity = bits(&[&[true; 3][..], &valid].concat(), 0);
        let v = Some(Bits::with_offset(&validity, 3));
        let longs = [9, 9, 9, 10, 11, 12, 13, 14];
        let doubles = [0.5, 1.5, 2.5, 3.5, 4.5];
        let flags = bits(
            &[
                false, false, false, false, false, true, false, true, true, false,
            ],
            0,
        );
        // Varchar rows "ab", NULL, "", "héllo", NULL; offsets not from 0.
        let text = b"xxab\xc3\xa9h\xc3\xa9llo".to_vec();
        let s_off = [2i32, 4, 4, 4, 12, 12];
        let dict = b"BTCETHSOL";
        let dict_off = [0i32, 3, 6, 9];
        let codes = [2i8, -1, 0, 2, 7];
        // Sixteen different bytes each: a swap of halves or no reversal shows.
        let uuids: Vec<[u8; 16]> = (1..=5u8)
            .map(|r| std::array::from_fn(|i| r * 16 + i as u8))
            .collect();
        let ints = [1i32, 2, 3, 4, 5];
        let ts = [10i64, 20, 30, 40, 50];
        let mut chunk = Chunk::new("t", 5).unwrap();
        chunk.i64("l", &longs[3..], v).unwrap();
        chunk.f64("d", &doubles, None).unwrap();
        chunk.bool("b", Bits::with_offset(&flags, 5), None).unwrap();
        chunk.varchar("s", Offsets::I32(&s_off), &text, v).unwrap();
        chunk
            .symbol("sym", Codes::I8(&codes), Offsets::I32(&dict_off), dict, v)
            .unwrap();
        chunk.uuid("u", &uuids, v).unwrap();
        chunk.i32("i", &ints, v).unwrap();
        chunk.at_micros(&ts).unwrap();

        let mut symbols = SymbolTable::default();
        let mut frame = Vec::new();
        encode_chunk(&chunk, 0..5, &mut symbols, true, usize::MAX, &mut frame).unwrap();
        let mut decoder = IngressDecoder::new(Limits::default());
        let columns = decode(&mut decoder, &frame);
        let get = |name: &str| columns.iter().find(|(n, _)| n == name).unwrap().1.clone();
        let masked = |vals: Vec<Value<'static>>| {
            shown(vals.into_iter().zip(valid).map(|(x, ok)| ok.then_some(x)))
        };
        // LONG and INT carry NULL as QuestDB's sentinel (no bitmap).
        let sentinel = |vals: Vec<Value<'static>>, null: Value<'static>| {
            shown(
                vals.into_iter()
                    .zip(valid)
                    .map(|(x, ok)| Some(if ok { x } else { null.clone() })),
            )
        };
        assert_eq!(
            get("l"),
            sentinel(
                longs[3..].iter().map(|&x| Value::Long(x)).collect(),
                Value::Long(i64::MIN)
            )
        );
        assert_eq!(
            get("d"),
            shown(doubles.iter().map(|&x| Some(Value::Double(x))))
        );
        assert_eq!(
            get("b"),
            shown([true, false, true, true, false].map(|b| Some(Value::Boolean(b))))
        );
        assert_eq!(
            get("s"),
            shown(
                [Some("ab"), None, Some(""), Some("éhéllo"), None].map(|s| s.map(Value::Varchar))
            )
        );
        // SOL first (id 0), then BTC (id 1); ETH is never used: not sent.
        assert_eq!(
            get("sym"),
            shown([Some(0), None, Some(1), Some(0), None].map(|s| s.map(Value::Symbol)))
        );
        assert_eq!(symbols.len(), 2);
        assert_eq!(decoder.dictionary().get(0), Some("SOL"));
        assert_eq!(decoder.dictionary().get(1), Some("BTC"));
        // UUIDs: RFC bytes reversed on the wire.
        // RFC bytes b0..b15 (b0 most significant) are the u128 b0..b15 big-endian:
        // QWP's lo is its low 64 bits, hi its high 64 bits.
        let uuid = |r: u8| {
            let v = u128::from_be_bytes(std::array::from_fn(|i| r * 16 + i as u8));
            Value::Uuid {
                lo: v as u64,
                hi: (v >> 64) as u64,
            }
        };
        assert_eq!(get("u"), masked((1..=5).map(uuid).collect()));
        assert_eq!(
            get("i"),
            sentinel(
                ints.iter().map(|&x| Value::Int(x)).collect(),
                Value::Int(i32::MIN)
            )
        );
        assert_eq!(
            get(""),
            shown(ts.iter().map(|&t| Some(Value::Timestamp(t))))
        );

        // A second frame reuses the connection's ids: no entry resent.
        let mut again = Vec::new();
        encode_chunk(&chunk, 2..4, &mut symbols, false, usize::MAX, &mut again).unwrap();
        assert_eq!(symbols.len(), 2);
        let columns = decode(&mut decoder, &again);
        let get = |name: &str| columns.iter().find(|(n, _)| n == name).unwrap().1.clone();
        assert_eq!(
            get("sym"),
            shown([Some(Value::Symbol(1)), Some(Value::Symbol(0))])
        );
        assert_eq!(
            get("s"),
            shown([Some(Value::Varchar("")), Some(Value::Varchar("éhéllo"))])
        );
        assert_eq!(
            get("l"),
            shown([Some(Value::Long(12)), Some(Value::Long(13))])
        );
    }

    #[test]
    fn array_rows_decode_to_their_shapes_from_sliced_levels() {
        // Rows (from row 1 of longer buffers, bit offset 1): a 2x2 matrix,
        // NULL, a 1x3 matrix, an empty 0-row matrix.
        let outer = [0i32, 1, 3, 3, 4, 4];
        // Inner lists: [9] (unused), [1, 2], [3, 4], [5, 6, 7]; offsets
        // into the elements do not start at 0.
        let inner = [1i64, 2, 4, 6, 9];
        let values = [0.0, -9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0];
        let longs: Vec<i64> = values.iter().map(|&v| v as i64).collect();
        let validity = bits(&[true, true, false, true, true], 0);
        let v = Some(Bits::with_offset(&validity, 1));
        let levels = [Offsets::I32(&outer[1..]), Offsets::I64(&inner)];
        let mut chunk = Chunk::new("t", 4).unwrap();
        chunk.f64_array("d", &levels, &values, v).unwrap();
        chunk.i64_array("l", &levels, &longs, v).unwrap();
        chunk.at_server_time().unwrap();
        let mut frame = Vec::new();
        encode_chunk(
            &chunk,
            0..4,
            &mut SymbolTable::default(),
            false,
            usize::MAX,
            &mut frame,
        )
        .unwrap();
        let columns = decode(&mut IngressDecoder::new(Limits::default()), &frame);
        let d = |shape: Vec<u32>, values: Vec<f64>| Some(Value::DoubleArray { shape, values });
        assert_eq!(
            columns[0].1,
            shown([
                d(vec![2, 2], vec![1.0, 2.0, 3.0, 4.0]),
                None,
                d(vec![1, 3], vec![5.0, 6.0, 7.0]),
                d(vec![0, 0], vec![]),
            ])
        );
        let l = |shape: Vec<u32>, values: Vec<i64>| Some(Value::LongArray { shape, values });
        assert_eq!(
            columns[1].1,
            shown([
                l(vec![2, 2], vec![1, 2, 3, 4]),
                None,
                l(vec![1, 3], vec![5, 6, 7]),
                l(vec![0, 0], vec![]),
            ])
        );
    }

    #[test]
    fn arrays_that_are_not_rectangular_or_out_of_range_are_refused() {
        let values = [1.0; 8];
        let mut chunk = Chunk::new("t", 1).unwrap();
        // One row of two lists of 1 and 2 elements.
        let ragged = [Offsets::I32(&[0, 2]), Offsets::I32(&[0, 1, 3])];
        let e = chunk.f64_array("a", &ragged, &values, None).unwrap_err();
        assert!(
            matches!(&e, ChunkError::BadValue { row: 0, reason, .. } if reason.contains("rectangular")),
            "{e}"
        );
        // An inner offset past the elements.
        let past = [Offsets::I32(&[0, 1]), Offsets::I32(&[0, 9])];
        let e = chunk.f64_array("a", &past, &values, None).unwrap_err();
        assert!(e.to_string().contains("past"), "{e}");
        // An outer offset past the inner lists.
        let past = [Offsets::I32(&[0, 3]), Offsets::I32(&[0, 1])];
        let e = chunk.f64_array("a", &past, &values, None).unwrap_err();
        assert!(e.to_string().contains("past"), "{e}");
        // Decreasing, negative, no levels, too many levels, wrong row count.
        for levels in [
            vec![Offsets::I32(&[2, 1])],
            vec![Offsets::I32(&[-1, 1])],
            vec![],
            vec![Offsets::I32(&[0, 1]); 33],
            vec![Offsets::I32(&[0, 1, 2])],
        ] {
            assert!(chunk.f64_array("a", &levels, &values, None).is_err());
        }
        assert!(chunk.columns.is_empty(), "nothing was added");
        // A ragged NULL row is not looked at.
        let null = [0u8];
        chunk
            .f64_array("a", &ragged, &values, Some(Bits::new(&null)))
            .unwrap();
    }

    #[test]
    fn a_frame_that_fails_rolls_the_dictionary_back() {
        let dict = b"ab";
        let dict_off = [0i32, 1, 2];
        let codes = [0i16, 1];
        let mut chunk = Chunk::new("t", 2).unwrap();
        chunk
            .symbol("s", Codes::I16(&codes), Offsets::I32(&dict_off), dict, None)
            .unwrap();
        let mut symbols = SymbolTable::default();
        symbols.intern("z").unwrap();
        let mut frame = Vec::new();
        // No designated timestamp chosen: refused, nothing kept.
        assert!(matches!(
            encode_chunk(&chunk, 0..2, &mut symbols, true, usize::MAX, &mut frame),
            Err(EncodeError::Chunk(ChunkError::NoTimestamp { .. }))
        ));
        assert_eq!(symbols.len(), 1);
        chunk.at_server_time().unwrap();
        // Interned, then too large for the limit: the new entries go.
        let text = [b'q'; 64];
        chunk
            .varchar("v", Offsets::I32(&[0, 32, 64]), &text, None)
            .unwrap();
        assert!(matches!(
            encode_chunk(&chunk, 0..2, &mut symbols, true, 40, &mut frame),
            Err(EncodeError::TooLarge)
        ));
        assert_eq!(symbols.len(), 1, "rolled back after interning");
        frame.clear();
        encode_chunk(&chunk, 0..2, &mut symbols, true, usize::MAX, &mut frame).unwrap();
        assert_eq!(symbols.len(), 3);
        symbols.rollback(1);
        assert_eq!(symbols.len(), 1);
        assert_eq!(
            symbols.intern("a"),
            Some(1),
            "a rolled-back entry is new again"
        );
    }

    #[test]
    fn chunks_refuse_buffers_that_do_not_match_their_rows() {
        let mut chunk = Chunk::new("t", 3).unwrap();
        let short = [1i64, 2];
        assert!(matches!(
            chunk.i64("a", &short, None),
            Err(ChunkError::Length { .. })
        ));
        let validity = [0xffu8];
        // 3 rows from bit 6 need 9 bits.
        assert!(matches!(
            chunk.i64("a", &[1, 2, 3], Some(Bits::with_offset(&validity, 6))),
            Err(ChunkError::Length { .. })
        ));
        let text = b"abc";
        for (offsets, why) in [
            (&[0i32, 1, 2][..], "too few"),
            (&[0, 2, 1, 3], "backwards"),
            (&[0, 1, 2, 4], "past the data"),
            (&[-1, 1, 2, 3], "negative"),
        ] {
            assert!(
                chunk
                    .varchar("s", Offsets::I32(offsets), text, None)
                    .is_err(),
                "{why}"
            );
        }
        let bad_utf8 = b"a\xff\xfe";
        assert!(matches!(
            chunk.varchar("s", Offsets::I32(&[0, 1, 2, 3]), bad_utf8, None),
            Err(ChunkError::BadValue { row: 1, .. })
        ));
        let split = "aé".as_bytes();
        assert!(
            chunk
                .varchar("s", Offsets::I64(&[0, 1, 2, 3]), split, None)
                .is_err()
        );
        // Binary takes any bytes.
        chunk
            .binary("bin", Offsets::I64(&[0, 1, 2, 3]), bad_utf8, None)
            .unwrap();
        let codes = [0i8, 3, 1];
        assert!(matches!(
            chunk.symbol(
                "sym",
                Codes::I8(&codes),
                Offsets::I32(&[0, 1, 2]),
                b"xy",
                None
            ),
            Err(ChunkError::BadValue { row: 1, .. })
        ));
        // The same code is fine on a NULL row.
        let null_middle = [0b101u8];
        chunk
            .symbol(
                "sym",
                Codes::I8(&codes),
                Offsets::I32(&[0, 1, 2]),
                b"xy",
                Some(Bits::new(&null_middle)),
            )
            .unwrap();
        assert!(matches!(
            chunk.i64("SYM", &[1, 2, 3], None),
            Err(ChunkError::DuplicateColumn { .. })
        ));
        assert!(matches!(
            chunk.i64("a.b", &[1, 2, 3], None),
            Err(ChunkError::BadName { .. })
        ));
        assert!(matches!(
            chunk.decimal64("d", 19, &[1, 2, 3], None),
            Err(ChunkError::BadType { .. })
        ));
        assert!(matches!(
            chunk.geohash("g", 61, &[1, 2, 3], None),
            Err(ChunkError::BadType { .. })
        ));
        assert!(matches!(
            chunk.at_micros(&[1, -2, 3]),
            Err(ChunkError::BadValue { row: 1, .. })
        ));
        chunk.at_micros(&[1, 2, 3]).unwrap();
        assert!(matches!(
            chunk.at_server_time(),
            Err(ChunkError::TimestampTwice { .. })
        ));
    }

    #[test]
    fn the_designated_timestamp_counts_against_the_column_limit() {
        let values = [1i64];
        let mut chunk = Chunk::new("t", 1).unwrap();
        for i in 0..crate::sender::chunk::MAX_COLUMNS - 1 {
            chunk.i64(&format!("c{i}"), &values, None).unwrap();
        }
        chunk.at_micros(&values).unwrap();
        assert!(matches!(
            chunk.i64("one_more", &values, None),
            Err(ChunkError::TooManyColumns { .. })
        ));
        let mut full = Chunk::new("t", 1).unwrap();
        for i in 0..crate::sender::chunk::MAX_COLUMNS {
            full.i64(&format!("c{i}"), &values, None).unwrap();
        }
        assert!(matches!(
            full.at_micros(&values),
            Err(ChunkError::TooManyColumns { .. })
        ));
        full.at_server_time().unwrap();
    }

    #[test]
    fn geohashes_keep_to_their_bits_and_an_empty_server_time_chunk_is_refused() {
        let mut chunk = Chunk::new("t", 2).unwrap();
        assert!(matches!(
            chunk.geohash("g", 5, &[0b11111, 0b100000], None),
            Err(ChunkError::BadValue { row: 1, .. })
        ));
        // On a NULL row the value is not looked at.
        let second_null = [0b01u8];
        chunk
            .geohash("g", 5, &[0b11111, u64::MAX], Some(Bits::new(&second_null)))
            .unwrap();
        let mut empty = Chunk::new("t", 2).unwrap();
        empty.at_server_time().unwrap();
        let mut frame = Vec::new();
        assert!(matches!(
            encode_chunk(
                &empty,
                0..2,
                &mut SymbolTable::default(),
                true,
                usize::MAX,
                &mut frame
            ),
            Err(EncodeError::Chunk(ChunkError::BadType { .. }))
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_slice_of_any_column_encodes_its_rows(
            cells in proptest::collection::vec(proptest::option::of("[a-cé]{0,4}"), 1..40),
            offset in 0usize..16,
            from in 0usize..40,
            take in 1usize..40,
        ) {
            let n = cells.len();
            let from = from % n;
            let take = take.min(n - from);
            // Arrow layout of all cells, sliced to [from, from + take).
            let mut data = Vec::new();
            let mut offsets = vec![0i64];
            for c in &cells {
                data.extend_from_slice(c.as_deref().unwrap_or("").as_bytes());
                offsets.push(data.len() as i64);
            }
            let valid: Vec<bool> = cells.iter().map(Option::is_some).collect();
            let validity = bits(&[vec![false; offset], valid].concat(), 0);
            let longs: Vec<i64> = (0..n as i64).collect();
            let ts: Vec<i64> = (0..n as i64).collect();
            let v = Some(Bits::with_offset(&validity, offset + from));
            let mut chunk = Chunk::new("t", take).unwrap();
            chunk.varchar("s", Offsets::I64(&offsets[from..=from + take]), &data, v).unwrap();
            chunk.i64("l", &longs[from..from + take], v).unwrap();
            chunk.at_nanos(&ts[from..from + take]).unwrap();
            let mut frame = Vec::new();
            encode_chunk(&chunk, 0..take, &mut SymbolTable::default(), false, usize::MAX, &mut frame).unwrap();
            let columns = decode(&mut IngressDecoder::new(Limits::default()), &frame);
            let want_s = shown(cells[from..from + take].iter().map(|c| c.as_deref().map(Value::Varchar)));
            let want_l = shown((from..from + take).map(|i| Some(Value::Long(if cells[i].is_some() { i as i64 } else { i64::MIN }))));
            proptest::prop_assert_eq!(&columns[0].1, &want_s);
            proptest::prop_assert_eq!(&columns[1].1, &want_l);
        }
    }
}
