//! Server → client egress messages (SPEC §4.3, §4.6, §4.7). Every frame
//! starts with the 12-byte header, then `msg_kind`.
//!
//! ```text
//! SERVER_INFO   18 | role u8 | epoch u64 | capabilities u32 | server_wall_ns i64
//!                  | cluster_id u16+UTF-8 | node_id u16+UTF-8 | [zone_id u16+UTF-8 iff CAP_ZONE]
//! RESULT_BATCH  11 | request_id i64 | batch_seq varint
//!                  | ---- one zstd frame from here on iff FLAG_ZSTD ----
//!                  | [delta dict iff FLAG_DELTA_SYMBOL_DICT] | table_name string (empty)
//!                  | row_count varint | [batch_seq == 0: column_count varint, defs]
//!                  | column bodies
//! RESULT_END    12 | request_id i64 | final_seq varint | total_rows varint
//! QUERY_ERROR   13 | request_id i64 | status u8 | msg_len u16 | msg
//! EXEC_DONE     16 | request_id i64 | op_type u8 | rows_affected varint
//! CACHE_RESET   17 | reset_mask u8
//! ```
//! Header: `table_count` is 1 for RESULT_BATCH and 0 otherwise; `flags` are
//! 0 except on RESULT_BATCH.

use std::borrow::Cow;

use super::MessageKind;
use crate::column::{ColumnData, ColumnRules, EncodeRules, Symbols, Values};
use crate::error::{DecodeError, DecodeErrorKind, DecodeResult, EncodeError};
use crate::header::{Flags, HEADER_LEN, MessageHeader, begin_message, finish_message};
use crate::limits::{Limits, MAX_ERROR_MESSAGE_LEN};
use crate::symbols::{DeltaRule, SymbolDelta, SymbolDictionary};
use crate::types::{Direction, StatusCode, TypeCode};
use crate::wire::{ByteReader, put_string, put_string_u16, put_varint, truncate_utf8};

/// SERVER_INFO capability: a `zone_id` follows.
pub const CAP_ZONE: u32 = 0x1;
/// SERVER_INFO capability: the server parses the `query_flags` trailer.
pub const CAP_QUERY_FLAGS: u32 = 0x2;
/// SERVER_INFO capability: the server honours `timeout_ms`.
pub const CAP_QUERY_TIMEOUT: u32 = 0x8;
/// CACHE_RESET bit: clear the connection's symbol dictionary.
pub const RESET_SYMBOL_DICT: u8 = 0x01;

/// Node roles in SERVER_INFO.
pub mod role {
    /// A single node.
    pub const STANDALONE: u8 = 0;
    /// Replication primary.
    pub const PRIMARY: u8 = 1;
    /// Read replica.
    pub const REPLICA: u8 = 2;
    /// Primary still catching up.
    pub const PRIMARY_CATCHUP: u8 = 3;
}

/// SERVER_INFO, the first frame on every egress connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo<'a> {
    /// Node role (see [`role`]); unknown values are tolerated.
    pub role: u8,
    /// Replication epoch, 0 if unused.
    pub epoch: u64,
    /// Capability bits; `CAP_ZONE` agrees with `zone_id`.
    pub capabilities: u32,
    /// Server wall clock, nanoseconds since the epoch.
    pub server_wall_ns: i64,
    /// Cluster name.
    pub cluster_id: Cow<'a, str>,
    /// Node name.
    pub node_id: Cow<'a, str>,
    /// Zone, present iff `CAP_ZONE`.
    pub zone_id: Option<Cow<'a, str>>,
}

/// A result column's name and type (sent in batch 0 only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef<'a> {
    /// Column name.
    pub name: Cow<'a, str>,
    /// Column type.
    pub type_code: TypeCode,
}

/// RESULT_BATCH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultBatch<'a> {
    /// The query.
    pub request_id: i64,
    /// 0, 1, 2, … per query.
    pub batch_seq: u64,
    /// New dictionary entries; `Some` iff `FLAG_DELTA_SYMBOL_DICT`.
    pub symbols: Option<SymbolDelta<'a>>,
    /// Always empty from the reference server; ignored by clients.
    pub table_name: Cow<'a, str>,
    /// Rows in this batch.
    pub row_count: u32,
    /// The schema, present iff `batch_seq == 0`.
    pub schema: Option<Vec<ColumnDef<'a>>>,
    /// Column bodies in schema order.
    pub columns: Vec<ColumnData<'a>>,
}

/// A server → client egress message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerMessage<'a> {
    /// First frame of a connection.
    ServerInfo(ServerInfo<'a>),
    /// Result rows.
    ResultBatch(ResultBatch<'a>),
    /// The result is complete.
    ResultEnd {
        /// The query.
        request_id: i64,
        /// Last batch_seq sent (0 if none).
        final_seq: u64,
        /// Rows sent (0 if untracked).
        total_rows: u64,
    },
    /// The query failed.
    QueryError {
        /// The query (-1 if not attributable).
        request_id: i64,
        /// Why.
        status: StatusCode,
        /// What went wrong (at most 1,024 bytes on the wire).
        message: Cow<'a, str>,
    },
    /// A non-SELECT statement finished.
    ExecDone {
        /// The statement.
        request_id: i64,
        /// QuestDB's compiled-query type (opaque to clients).
        op_type: u8,
        /// Rows inserted/updated.
        rows_affected: u64,
    },
    /// Clear connection caches (bit 0: the symbol dictionary).
    CacheReset {
        /// Reset bits.
        reset_mask: u8,
    },
}

/// How a RESULT_BATCH is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BatchEncoding {
    /// Set `FLAG_GORILLA` (timestamp/date columns get an encoding byte and
    /// use Gorilla where it is smaller).
    pub gorilla: bool,
    /// zstd level (1..=22) to compress the body with; the batch goes out raw
    /// when compression does not make it smaller.
    pub zstd_level: Option<i32>,
}

/// Appends a server frame to `out`. On error `out` is left as it was.
pub fn encode_server_message(
    message: &ServerMessage<'_>,
    encoding: &BatchEncoding,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let result = encode_server_inner(message, encoding, out, start);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_server_inner(
    message: &ServerMessage<'_>,
    encoding: &BatchEncoding,
    out: &mut Vec<u8>,
    start: usize,
) -> Result<(), EncodeError> {
    let (flags, table_count) = match message {
        ServerMessage::ResultBatch(b) => (
            Flags(0)
                .with(Flags::GORILLA, encoding.gorilla)
                .with(Flags::DELTA_SYMBOL_DICT, b.symbols.is_some()),
            1,
        ),
        _ => (Flags(0), 0),
    };
    begin_message(out, flags, table_count);
    match message {
        ServerMessage::ServerInfo(info) => {
            out.push(MessageKind::ServerInfo as u8);
            out.push(info.role);
            out.extend_from_slice(&info.epoch.to_le_bytes());
            let caps =
                (info.capabilities & !CAP_ZONE) | if info.zone_id.is_some() { CAP_ZONE } else { 0 };
            out.extend_from_slice(&caps.to_le_bytes());
            out.extend_from_slice(&info.server_wall_ns.to_le_bytes());
            for s in [
                Some(&info.cluster_id),
                Some(&info.node_id),
                info.zone_id.as_ref(),
            ]
            .into_iter()
            .flatten()
            {
                if s.len() > usize::from(u16::MAX) {
                    return Err(EncodeError::TooLarge {
                        what: "SERVER_INFO string",
                        value: s.len() as u64,
                        max: u64::from(u16::MAX),
                    });
                }
                put_string_u16(out, s);
            }
        }
        ServerMessage::ResultBatch(b) => encode_batch(b, encoding, out, start)?,
        ServerMessage::ResultEnd {
            request_id,
            final_seq,
            total_rows,
        } => {
            out.push(MessageKind::ResultEnd as u8);
            out.extend_from_slice(&request_id.to_le_bytes());
            put_varint(out, *final_seq);
            put_varint(out, *total_rows);
        }
        ServerMessage::QueryError {
            request_id,
            status,
            message,
        } => {
            out.push(MessageKind::QueryError as u8);
            out.extend_from_slice(&request_id.to_le_bytes());
            out.push(status.0);
            put_string_u16(out, truncate_utf8(message, MAX_ERROR_MESSAGE_LEN));
        }
        ServerMessage::ExecDone {
            request_id,
            op_type,
            rows_affected,
        } => {
            out.push(MessageKind::ExecDone as u8);
            out.extend_from_slice(&request_id.to_le_bytes());
            out.push(*op_type);
            put_varint(out, *rows_affected);
        }
        ServerMessage::CacheReset { reset_mask } => {
            out.push(MessageKind::CacheReset as u8);
            out.push(*reset_mask);
        }
    }
    finish_message(out, start).ok_or(EncodeError::TooLarge {
        what: "payload length",
        value: (out.len() - start - HEADER_LEN) as u64,
        max: u64::from(u32::MAX),
    })?;
    Ok(())
}

fn encode_batch(
    b: &ResultBatch<'_>,
    encoding: &BatchEncoding,
    out: &mut Vec<u8>,
    start: usize,
) -> Result<(), EncodeError> {
    out.push(MessageKind::ResultBatch as u8);
    out.extend_from_slice(&b.request_id.to_le_bytes());
    put_varint(out, b.batch_seq);
    let body_start = out.len();
    if let Some(delta) = &b.symbols {
        delta.encode(out);
    }
    put_string(out, &b.table_name);
    put_varint(out, u64::from(b.row_count));
    match (&b.schema, b.batch_seq) {
        (Some(schema), 0) => {
            if schema.len() != b.columns.len() {
                return Err(EncodeError::InvalidValue {
                    what: "RESULT_BATCH",
                    reason: "schema and columns differ in length",
                });
            }
            put_varint(out, schema.len() as u64);
            for (def, col) in schema.iter().zip(&b.columns) {
                if def.type_code != col.type_code() {
                    return Err(EncodeError::InvalidValue {
                        what: "RESULT_BATCH",
                        reason: "a column's type differs from its schema entry",
                    });
                }
                put_string(out, &def.name);
                out.push(def.type_code.as_u8());
            }
        }
        (None, seq) if seq > 0 => {}
        _ => {
            return Err(EncodeError::InvalidValue {
                what: "RESULT_BATCH",
                reason: "the schema goes in batch 0 and only there",
            });
        }
    }
    let rules = EncodeRules {
        direction: Direction::Egress,
        gorilla: encoding.gorilla,
        delta_symbols: b.symbols.is_some(),
    };
    for col in &b.columns {
        if col.row_count() != b.row_count {
            return Err(EncodeError::RowCountMismatch {
                column: String::new(),
                column_rows: col.row_count(),
                table_rows: b.row_count,
            });
        }
        if let Values::Symbol(Symbols::Local { dictionary, .. }) = col.values()
            && dictionary.len() > b.row_count
        {
            return Err(EncodeError::InvalidValue {
                what: "SYMBOL",
                reason: "egress clients reject a column dictionary longer than the batch",
            });
        }
        if col.type_code().is_never_null() && col.nulls().is_some() {
            return Err(EncodeError::InvalidValue {
                what: col.type_code().name(),
                reason: "egress clients reject a null bitmap on BOOLEAN, BYTE, SHORT and CHAR",
            });
        }
        col.encode(out, &rules)?;
    }
    if let Some(level) = encoding.zstd_level {
        compress_body(out, body_start, start, level)?;
    }
    Ok(())
}

#[cfg(feature = "zstd")]
fn compress_body(
    out: &mut Vec<u8>,
    body_start: usize,
    start: usize,
    level: i32,
) -> Result<(), EncodeError> {
    let compressed =
        zstd::bulk::compress(&out[body_start..], level).map_err(|_| EncodeError::InvalidValue {
            what: "zstd",
            reason: "compression failed",
        })?;
    if compressed.len() < out.len() - body_start {
        out.truncate(body_start);
        out.extend_from_slice(&compressed);
        out[start + 5] |= Flags::ZSTD;
    }
    Ok(())
}

#[cfg(not(feature = "zstd"))]
fn compress_body(_: &mut Vec<u8>, _: usize, _: usize, _: i32) -> Result<(), EncodeError> {
    Err(EncodeError::InvalidValue {
        what: "zstd",
        reason: "quiver-qwp was built without the zstd feature",
    })
}

/// The stream a client is receiving.
#[derive(Debug, Clone)]
struct ActiveStream {
    request_id: i64,
    next_seq: u64,
    schema: Vec<(String, TypeCode)>,
}

/// A client connection's egress decoder: symbol dictionary and the schema
/// of the result being streamed. Both change only when a frame decodes.
#[derive(Debug, Clone, Default)]
pub struct EgressDecoder {
    limits: Limits,
    dictionary: SymbolDictionary,
    stream: Option<ActiveStream>,
}

impl EgressDecoder {
    /// A decoder for a new connection.
    pub fn new(limits: Limits) -> Self {
        EgressDecoder {
            limits,
            dictionary: SymbolDictionary::new(),
            stream: None,
        }
    }

    /// The connection's symbol dictionary.
    pub fn dictionary(&self) -> &SymbolDictionary {
        &self.dictionary
    }

    /// Name and type of each column of the result being streamed.
    pub fn schema(&self) -> Option<&[(String, TypeCode)]> {
        self.stream.as_ref().map(|s| &s.schema[..])
    }

    /// Decodes one server frame. A zstd body is decompressed into `scratch`
    /// (offsets in errors inside it are relative to the decompressed body).
    pub fn decode<'a>(
        &mut self,
        frame: &'a [u8],
        scratch: &'a mut Vec<u8>,
    ) -> DecodeResult<ServerMessage<'a>> {
        if frame.len() as u64 > self.limits.max_message_len {
            return Err(DecodeError::new(
                DecodeErrorKind::LimitExceeded {
                    what: "message length",
                    value: frame.len() as u64,
                    limit: self.limits.max_message_len,
                },
                0,
            ));
        }
        let (header, payload) = MessageHeader::decode(frame, Flags::EGRESS_ALLOWED)?;
        let kind_byte = *payload.first().ok_or_else(|| {
            DecodeError::new(
                DecodeErrorKind::UnexpectedEnd {
                    what: "message kind",
                    needed: 1,
                    remaining: 0,
                },
                HEADER_LEN as u64,
            )
        })?;
        let kind = MessageKind::from_u8(kind_byte).ok_or_else(|| {
            DecodeError::new(
                DecodeErrorKind::UnknownMessageKind(kind_byte),
                HEADER_LEN as u64,
            )
        })?;
        if kind.is_client_kind() {
            return Err(DecodeError::new(
                DecodeErrorKind::UnexpectedMessageKind(kind_byte),
                HEADER_LEN as u64,
            ));
        }
        let expected_tables = u16::from(kind == MessageKind::ResultBatch);
        if header.table_count != expected_tables {
            return Err(DecodeError::new(
                DecodeErrorKind::InvalidTableCount {
                    what: "this message kind",
                    got: header.table_count,
                },
                6,
            ));
        }
        if kind != MessageKind::ResultBatch && header.flags.0 != 0 {
            return Err(DecodeError::new(
                DecodeErrorKind::ReservedFlags {
                    flags: header.flags.0,
                },
                5,
            ));
        }
        let mut r = ByteReader::new(frame);
        r.take(HEADER_LEN as u64 + 1, "message kind")?;
        let message = match kind {
            MessageKind::ServerInfo => {
                let role = r.u8("role")?;
                let epoch = r.u64("epoch")?;
                let capabilities = r.u32("capabilities")?;
                let server_wall_ns = r.i64("server_wall_ns")?;
                let max = u64::from(u16::MAX);
                let cluster_id = Cow::Borrowed(r.string_u16("cluster_id", max)?);
                let node_id = Cow::Borrowed(r.string_u16("node_id", max)?);
                let zone_id = if capabilities & CAP_ZONE != 0 {
                    Some(Cow::Borrowed(r.string_u16("zone_id", max)?))
                } else {
                    None
                };
                ServerMessage::ServerInfo(ServerInfo {
                    role,
                    epoch,
                    capabilities,
                    server_wall_ns,
                    cluster_id,
                    node_id,
                    zone_id,
                })
            }
            MessageKind::ResultBatch => return self.decode_batch(r, header.flags, scratch),
            MessageKind::ResultEnd => ServerMessage::ResultEnd {
                request_id: r.i64("request_id")?,
                final_seq: r.varint("final_seq")?,
                total_rows: r.varint("total_rows")?,
            },
            MessageKind::QueryError => {
                let request_id = r.i64("request_id")?;
                let at = r.position();
                let status = StatusCode(r.u8("status")?);
                if !status.is_valid_query_error() {
                    return Err(r.error_at(
                        DecodeErrorKind::InvalidValue {
                            what: "QUERY_ERROR status",
                            reason: "not one of 03, 05, 06, 08, 0A, 0B, 0E",
                        },
                        at,
                    ));
                }
                let message = Cow::Borrowed(
                    r.string_u16("error message", self.limits.max_error_message_len)?,
                );
                ServerMessage::QueryError {
                    request_id,
                    status,
                    message,
                }
            }
            MessageKind::ExecDone => ServerMessage::ExecDone {
                request_id: r.i64("request_id")?,
                op_type: r.u8("op_type")?,
                rows_affected: r.varint("rows_affected")?,
            },
            MessageKind::CacheReset => ServerMessage::CacheReset {
                reset_mask: r.u8("reset_mask")?,
            },
            MessageKind::QueryRequest | MessageKind::Cancel | MessageKind::Credit => {
                unreachable!("client kinds rejected above")
            }
        };
        r.finish("the message")?;
        match &message {
            // A terminator ends the stream it names; one for another
            // request (a refused second query) leaves it streaming.
            ServerMessage::ResultEnd { request_id, .. }
            | ServerMessage::QueryError { request_id, .. }
            | ServerMessage::ExecDone { request_id, .. }
                if self
                    .stream
                    .as_ref()
                    .is_some_and(|s| s.request_id == *request_id) =>
            {
                self.stream = None;
            }
            ServerMessage::CacheReset { reset_mask } if reset_mask & RESET_SYMBOL_DICT != 0 => {
                self.dictionary.clear();
            }
            _ => {}
        }
        Ok(message)
    }

    fn decode_batch<'a>(
        &mut self,
        mut r: ByteReader<'a>,
        flags: Flags,
        scratch: &'a mut Vec<u8>,
    ) -> DecodeResult<ServerMessage<'a>> {
        let request_id = r.i64("request_id")?;
        let seq_at = r.position();
        let batch_seq = r.varint("batch_seq")?;
        let expected = match &self.stream {
            Some(s) if s.request_id == request_id => s.next_seq,
            _ => 0,
        };
        if batch_seq != expected {
            return Err(r.error_at(
                DecodeErrorKind::BatchOutOfSequence {
                    request_id,
                    expected,
                    got: batch_seq,
                },
                seq_at,
            ));
        }
        let (body, base) = if flags.zstd() {
            decompress(r.rest(), scratch, self.limits.max_decompressed_len)
                .map_err(|kind| r.error(kind))?;
            let scratch: &'a Vec<u8> = scratch;
            (&scratch[..], None)
        } else {
            (r.rest(), Some(r.position() as u64))
        };
        let shift = |e: DecodeError| match base {
            Some(b) => e.shifted(b),
            None => e,
        };
        let mut r = ByteReader::new(body);
        let symbols = if flags.delta_symbol_dict() {
            let at = r.position();
            let delta = SymbolDelta::decode(
                &mut r,
                self.limits.max_symbol_entries,
                self.limits.max_symbol_len,
            )
            .map_err(shift)?;
            self.dictionary
                .check_start(delta.start, DeltaRule::Exact)
                .map_err(|kind| shift(r.error_at(kind, at)))?;
            Some(delta)
        } else {
            None
        };
        let table_name = Cow::Borrowed(
            r.string("table name", self.limits.max_name_len)
                .map_err(shift)?,
        );
        let row_count = r
            .varint_max("row_count", self.limits.max_rows_per_batch)
            .map_err(shift)? as u32;
        let mut schema = None;
        let defs: Vec<TypeCode> = if batch_seq == 0 {
            let count = r
                .varint_max("column_count", self.limits.max_columns)
                .map_err(shift)?;
            let mut defs = Vec::with_capacity((count as usize).min(r.remaining() / 2));
            for _ in 0..count {
                let name = r
                    .string("column name", self.limits.max_name_len)
                    .map_err(shift)?;
                let at = r.position();
                let code = r.u8("column type").map_err(shift)?;
                let type_code = TypeCode::from_u8(code).ok_or_else(|| {
                    shift(
                        r.error_at(DecodeErrorKind::UnknownTypeCode(code), at)
                            .in_column(name),
                    )
                })?;
                defs.push(ColumnDef {
                    name: Cow::Borrowed(name),
                    type_code,
                });
            }
            let types = defs.iter().map(|d| d.type_code).collect();
            schema = Some(defs);
            types
        } else {
            let s = self
                .stream
                .as_ref()
                .expect("batch_seq > 0 implies a stream");
            s.schema.iter().map(|(_, t)| *t).collect()
        };
        let rules = ColumnRules {
            direction: Direction::Egress,
            gorilla: flags.gorilla(),
            global_dict_size: symbols
                .as_ref()
                .map(|d| d.size_after(self.dictionary.len())),
            limits: &self.limits,
        };
        let mut columns = Vec::with_capacity(defs.len());
        for (i, type_code) in defs.iter().enumerate() {
            let col = ColumnData::decode(&mut r, *type_code, row_count, &rules).map_err(|e| {
                let name = match &schema {
                    Some(s) => s[i].name.to_string(),
                    None => self
                        .stream
                        .as_ref()
                        .map_or_else(String::new, |s| s.schema[i].0.clone()),
                };
                shift(e.in_column(&name))
            })?;
            columns.push(col);
        }
        r.finish("the result batch").map_err(shift)?;

        // The whole frame is valid: update connection state.
        if let Some(delta) = &symbols {
            self.dictionary.apply(delta);
        }
        match &schema {
            Some(defs) => {
                self.stream = Some(ActiveStream {
                    request_id,
                    next_seq: 1,
                    schema: defs
                        .iter()
                        .map(|d| (d.name.to_string(), d.type_code))
                        .collect(),
                });
            }
            None => {
                if let Some(s) = &mut self.stream {
                    s.next_seq += 1;
                }
            }
        }
        Ok(ServerMessage::ResultBatch(ResultBatch {
            request_id,
            batch_seq,
            symbols,
            table_name,
            row_count,
            schema,
            columns,
        }))
    }
}

#[cfg(feature = "zstd")]
fn decompress(input: &[u8], out: &mut Vec<u8>, limit: u64) -> Result<(), DecodeErrorKind> {
    use std::io::Read;
    out.clear();
    let decoder = zstd::stream::read::Decoder::with_buffer(input).map_err(|_| {
        DecodeErrorKind::Decompression {
            reason: "invalid zstd frame header",
        }
    })?;
    // Grow with the data actually produced, never past the limit.
    let mut limited = decoder.take(limit + 1);
    limited
        .read_to_end(out)
        .map_err(|_| DecodeErrorKind::Decompression {
            reason: "corrupt zstd frame",
        })?;
    if out.len() as u64 > limit {
        return Err(DecodeErrorKind::LimitExceeded {
            what: "decompressed batch size",
            value: out.len() as u64,
            limit,
        });
    }
    Ok(())
}

#[cfg(not(feature = "zstd"))]
fn decompress(_: &[u8], _: &mut Vec<u8>, _: u64) -> Result<(), DecodeErrorKind> {
    Err(DecodeErrorKind::Decompression {
        reason: "quiver-qwp was built without the zstd feature",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::column::{ColumnBuilder, NullEncoding};
    use crate::value::Value;

    fn encode(m: &ServerMessage<'_>, e: &BatchEncoding) -> Vec<u8> {
        let mut out = Vec::new();
        encode_server_message(m, e, &mut out).unwrap();
        out
    }

    #[test]
    fn spec_result_end_vector() {
        let m = ServerMessage::ResultEnd {
            request_id: 1,
            final_seq: 0,
            total_rows: 2,
        };
        let bytes = encode(&m, &BatchEncoding::default());
        assert_eq!(
            bytes,
            [
                0x51, 0x57, 0x50, 0x31, 0x01, 0x00, 0x00, 0x00, 0x0B, 0x00, 0x00, 0x00, 0x12, 0x01,
                0, 0, 0, 0, 0, 0, 0, 0x00, 0x02
            ]
        );
        let mut scratch = Vec::new();
        assert_eq!(
            EgressDecoder::default()
                .decode(&bytes, &mut scratch)
                .unwrap(),
            m
        );
    }

    #[test]
    fn spec_result_batch_vector() {
        // SPEC §6.3 RESULT_BATCH seq 0, flags 0: id LONG [1, 2], value DOUBLE [1.3, 2.2].
        let payload: Vec<u8> = [
            &[0x11, 0x01, 0, 0, 0, 0, 0, 0, 0, 0x00][..],
            &[0x00, 0x02, 0x02],
            &[
                0x02, b'i', b'd', 0x05, 0x05, b'v', b'a', b'l', b'u', b'e', 0x07,
            ],
            &[0x00, 1, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0],
            &[
                0x00, 0xCD, 0xCC, 0xCC, 0xCC, 0xCC, 0xCC, 0xF4, 0x3F, 0x9A, 0x99, 0x99, 0x99, 0x99,
                0x99, 0x01, 0x40,
            ],
        ]
        .concat();
        let mut frame = vec![0x51, 0x57, 0x50, 0x31, 0x01, 0x00, 0x01, 0x00];
        frame.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        frame.extend_from_slice(&payload);
        let mut scratch = Vec::new();
        let mut dec = EgressDecoder::default();
        let msg = dec.decode(&frame, &mut scratch).unwrap();
        let ServerMessage::ResultBatch(b) = &msg else {
            panic!()
        };
        assert_eq!(b.row_count, 2);
        let schema = b.schema.as_ref().unwrap();
        assert_eq!(
            (&*schema[0].name, schema[0].type_code),
            ("id", TypeCode::Long)
        );
        assert_eq!(
            b.columns[0].rows(),
            [Some(Value::Long(1)), Some(Value::Long(2))]
        );
        assert_eq!(
            b.columns[1].rows(),
            [Some(Value::Double(1.3)), Some(Value::Double(2.2))]
        );
        assert_eq!(encode(&msg, &BatchEncoding::default()), frame);
        assert_eq!(dec.schema().unwrap().len(), 2);
    }

    fn batch(seq: u64, rows: u32, symbols: Option<SymbolDelta<'static>>) -> ServerMessage<'static> {
        let mut ts = ColumnBuilder::new(TypeCode::Timestamp);
        let mut sym = ColumnBuilder::new(TypeCode::Symbol);
        for i in 0..rows {
            ts.push(Some(&Value::Timestamp(1_000_000 + i64::from(i) * 1000)))
                .unwrap();
            sym.push(Some(&Value::Symbol(i % 2))).unwrap();
        }
        ServerMessage::ResultBatch(ResultBatch {
            request_id: 9,
            batch_seq: seq,
            symbols,
            table_name: Cow::Borrowed(""),
            row_count: rows,
            schema: (seq == 0).then(|| {
                vec![
                    ColumnDef {
                        name: "ts".into(),
                        type_code: TypeCode::Timestamp,
                    },
                    ColumnDef {
                        name: "s".into(),
                        type_code: TypeCode::Symbol,
                    },
                ]
            }),
            columns: vec![
                ts.finish(NullEncoding::Bitmap),
                sym.finish(NullEncoding::Bitmap),
            ],
        })
    }

    #[test]
    fn an_error_for_another_request_leaves_the_stream_open() {
        let enc = BatchEncoding::default();
        let delta = SymbolDelta {
            start: 0,
            entries: crate::symbols::StringList::from_strs(["a", "b"]),
        };
        let b0 = encode(&batch(0, 4, Some(delta)), &enc);
        let b1 = encode(&batch(1, 4, Some(SymbolDelta::empty(2))), &enc);
        let refused = encode(
            &ServerMessage::QueryError {
                request_id: 10,
                status: StatusCode::PARSE_ERROR,
                message: "one query at a time".into(),
            },
            &enc,
        );
        let mut dec = EgressDecoder::default();
        let mut scratch = Vec::new();
        dec.decode(&b0, &mut scratch).unwrap();
        dec.decode(&refused, &mut scratch).unwrap();
        // Request 9 still streams: batch 1 follows batch 0.
        assert!(dec.decode(&b1, &mut scratch).is_ok());
        let end = encode(
            &ServerMessage::QueryError {
                request_id: 9,
                status: StatusCode::CANCELLED,
                message: "cancelled".into(),
            },
            &enc,
        );
        dec.decode(&end, &mut scratch).unwrap();
        assert!(dec.schema().is_none(), "its own terminator ends it");
    }

    #[test]
    fn continuation_batches_use_the_stored_schema_and_dictionary() {
        let enc = BatchEncoding {
            gorilla: true,
            zstd_level: None,
        };
        let b0 = encode(
            &batch(
                0,
                100,
                Some(SymbolDelta {
                    start: 0,
                    entries: crate::symbols::StringList::from_strs(["a", "b"]),
                }),
            ),
            &enc,
        );
        let b1 = encode(&batch(1, 50, Some(SymbolDelta::empty(2))), &enc);
        let mut dec = EgressDecoder::default();
        let mut scratch = Vec::new();
        let m0 = dec.decode(&b0, &mut scratch).unwrap();
        let ServerMessage::ResultBatch(r0) = &m0 else {
            panic!()
        };
        assert_eq!(r0.schema.as_ref().unwrap()[1].name, "s");
        assert!(matches!(
            r0.columns[0].values(),
            crate::column::Values::Timestamp(crate::column::Timestamps::Gorilla(_))
        ));
        assert_eq!(r0.columns[0].rows()[99], Some(Value::Timestamp(1_099_000)));
        assert_eq!(r0.columns[1].rows()[3], Some(Value::Symbol(1)));
        assert_eq!(dec.dictionary().len(), 2);
        let m1 = dec.decode(&b1, &mut scratch).unwrap();
        let ServerMessage::ResultBatch(r1) = &m1 else {
            panic!()
        };
        assert!(r1.schema.is_none());
        assert_eq!(r1.columns[0].rows()[49], Some(Value::Timestamp(1_049_000)));
        // Gorilla made the timestamps smaller than raw.
        assert!(b1.len() < 12 + 12 + 50 * 8);
        // A batch out of sequence, and a delta that does not start at the end.
        assert!(matches!(
            dec.decode(&b1, &mut scratch).unwrap_err().kind(),
            DecodeErrorKind::BatchOutOfSequence {
                expected: 2,
                got: 1,
                ..
            }
        ));
        let end = encode(
            &ServerMessage::ResultEnd {
                request_id: 9,
                final_seq: 1,
                total_rows: 150,
            },
            &enc,
        );
        dec.decode(&end, &mut scratch).unwrap();
        assert!(dec.schema().is_none());
        let again = encode(
            &batch(
                0,
                1,
                Some(SymbolDelta {
                    start: 0,
                    entries: crate::symbols::StringList::from_strs(["z"]),
                }),
            ),
            &enc,
        );
        assert!(matches!(
            dec.decode(&again, &mut scratch).unwrap_err().kind(),
            DecodeErrorKind::DictionaryOutOfOrder { start: 0, size: 2 }
        ));
        let reset = encode(&ServerMessage::CacheReset { reset_mask: 1 }, &enc);
        dec.decode(&reset, &mut scratch).unwrap();
        dec.decode(&again, &mut scratch).unwrap();
    }

    #[cfg(feature = "zstd")]
    #[test]
    fn zstd_bodies_round_trip_and_are_only_used_when_smaller() {
        let enc = BatchEncoding {
            gorilla: false,
            zstd_level: Some(3),
        };
        let msg = batch(
            0,
            1000,
            Some(SymbolDelta {
                start: 0,
                entries: crate::symbols::StringList::from_strs(["a", "b"]),
            }),
        );
        let bytes = encode(&msg, &enc);
        assert_ne!(bytes[5] & Flags::ZSTD, 0, "1000 regular rows compress");
        let raw = encode(&msg, &BatchEncoding::default());
        assert!(bytes.len() < raw.len());
        let mut scratch = Vec::new();
        let decoded = EgressDecoder::default()
            .decode(&bytes, &mut scratch)
            .unwrap();
        assert_eq!(encode(&decoded, &BatchEncoding::default()), raw);
        // A tiny batch does not compress: sent raw.
        let tiny = encode(&batch(0, 1, Some(SymbolDelta::empty(0))), &enc);
        assert_eq!(tiny[5] & Flags::ZSTD, 0);
        // A corrupt zstd body is an error.
        let mut bad = bytes.clone();
        let n = bad.len();
        bad[n - 3] ^= 0xFF;
        bad[n - 8] ^= 0xFF;
        assert!(EgressDecoder::default().decode(&bad, &mut scratch).is_err());
    }

    #[test]
    fn server_info_and_control_frames() {
        let info = ServerMessage::ServerInfo(ServerInfo {
            role: role::STANDALONE,
            epoch: 0,
            capabilities: CAP_QUERY_FLAGS,
            server_wall_ns: 1_700_000_000_000_000_000,
            cluster_id: "quiver".into(),
            node_id: "".into(),
            zone_id: None,
        });
        let mut scratch = Vec::new();
        for m in [
            info,
            ServerMessage::QueryError {
                request_id: -1,
                status: StatusCode::PARSE_ERROR,
                message: "bad".into(),
            },
            ServerMessage::ExecDone {
                request_id: 3,
                op_type: 9,
                rows_affected: 0,
            },
            ServerMessage::CacheReset { reset_mask: 1 },
        ] {
            let bytes = encode(&m, &BatchEncoding::default());
            assert_eq!(
                EgressDecoder::default()
                    .decode(&bytes, &mut scratch)
                    .unwrap(),
                m
            );
        }
        let bad_status = encode(
            &ServerMessage::QueryError {
                request_id: 1,
                status: StatusCode::WRITE_ERROR,
                message: "x".into(),
            },
            &BatchEncoding::default(),
        );
        assert!(
            EgressDecoder::default()
                .decode(&bad_status, &mut scratch)
                .is_err()
        );
    }
}
