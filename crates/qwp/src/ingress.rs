//! Ingress messages (client → server on `/write/v4`, SPEC §3.1) and the
//! server's responses (SPEC §3.3).
//!
//! ```text
//! header                12 bytes; flags DEFER_COMMIT 0x01, GORILLA 0x04, DELTA_SYMBOL_DICT 0x08
//! [delta symbol dict]   iff DELTA_SYMBOL_DICT: varint start, varint count, count × string
//! table block × table_count:
//!   table_name          string (varint len + UTF-8), 1..=127 bytes
//!   row_count           varint, <= 1,000,000
//!   column_count        varint, <= 2,048
//!   column defs         column_count × { name: string, type_code: u8 }
//!                       (empty name = designated timestamp, TIMESTAMP or TIMESTAMP_NANOS)
//!   column bodies       column_count × column body (see `column`)
//! ```
//!
//! Responses have no header: `status u8` first.
//!
//! ```text
//! OK           00 | sequence i64 | u16 n | n × { u16 name_len (>= 1), name, seq_txn i64 }
//! DURABLE_ACK  02 | u16 n | n × { u16 name_len (>= 1), name, seq_txn i64 }
//! error        status | sequence i64 | u16 msg_len (<= 1024) | msg UTF-8
//! ```

use std::borrow::Cow;

use crate::column::{ColumnData, ColumnRules, EncodeRules};
use crate::error::{DecodeErrorKind, DecodeResult, EncodeError};
use crate::header::{Flags, HEADER_LEN, MessageHeader, begin_message, finish_message};
use crate::limits::{Limits, MAX_ERROR_MESSAGE_LEN};
use crate::symbols::{DeltaOutcome, DeltaRule, SymbolDelta, SymbolDictionary};
use crate::types::{Direction, StatusCode, TypeCode};
use crate::wire::{ByteReader, put_string, put_string_u16, put_varint, truncate_utf8};

/// One ingress message: its commit flag, symbol delta and table blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IngressMessage<'a> {
    /// `FLAG_DEFER_COMMIT`: keep the rows pending until a frame without it.
    pub defer_commit: bool,
    /// `FLAG_GORILLA`: timestamp columns carry an encoding byte.
    pub gorilla: bool,
    /// The delta symbol dictionary; `Some` iff `FLAG_DELTA_SYMBOL_DICT`.
    pub symbols: Option<SymbolDelta<'a>>,
    /// The table blocks.
    pub tables: Vec<TableBlock<'a>>,
}

/// One table's rows in a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableBlock<'a> {
    /// Table name.
    pub name: Cow<'a, str>,
    /// Rows in every column.
    pub row_count: u32,
    /// Columns in wire order.
    pub columns: Vec<Column<'a>>,
}

/// A named column of a table block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Column<'a> {
    /// Column name; empty for the designated timestamp.
    pub name: Cow<'a, str>,
    /// Type, nulls and values.
    pub data: ColumnData<'a>,
}

impl<'a> TableBlock<'a> {
    /// The designated timestamp column (empty name), if the block has one.
    pub fn designated_timestamp(&self) -> Option<&Column<'a>> {
        self.columns.iter().find(|c| c.name.is_empty())
    }
}

impl IngressMessage<'_> {
    /// An empty message (`table_count = 0`, empty delta section): without
    /// `defer_commit` it commits every pending frame of the connection.
    pub fn commit(dict_size: u64) -> IngressMessage<'static> {
        IngressMessage {
            defer_commit: false,
            gorilla: false,
            symbols: Some(SymbolDelta::empty(dict_size)),
            tables: Vec::new(),
        }
    }

    /// Rows across all table blocks.
    pub fn row_count(&self) -> u64 {
        self.tables.iter().map(|t| u64::from(t.row_count)).sum()
    }
}

/// Decodes one complete ingress message against the connection's current
/// dictionary, without changing it: the delta must not skip ids
/// ([`DecodeErrorKind::DictionaryGap`]) and every SYMBOL id must be below the
/// dictionary size after the delta.
pub fn decode_ingress_message<'a>(
    frame: &'a [u8],
    limits: &Limits,
    dictionary: &SymbolDictionary,
) -> DecodeResult<IngressMessage<'a>> {
    if frame.len() as u64 > limits.max_message_len {
        return Err(crate::error::DecodeError::new(
            DecodeErrorKind::LimitExceeded {
                what: "message length",
                value: frame.len() as u64,
                limit: limits.max_message_len,
            },
            0,
        ));
    }
    let (header, _) = MessageHeader::decode(frame, Flags::INGRESS_ALLOWED)?;
    let mut r = ByteReader::new(frame);
    r.take(HEADER_LEN as u64, "message header")?;

    let symbols = if header.flags.delta_symbol_dict() {
        let at = r.position();
        let delta = SymbolDelta::decode(&mut r, limits.max_symbol_entries, limits.max_symbol_len)?;
        dictionary
            .check_start(delta.start, DeltaRule::AllowOverlap)
            .map_err(|kind| r.error_at(kind, at))?;
        Some(delta)
    } else {
        None
    };
    let global_dict_size = symbols.as_ref().map(|d| d.size_after(dictionary.len()));
    let rules = ColumnRules {
        direction: Direction::Ingress,
        gorilla: header.flags.gorilla(),
        global_dict_size,
        limits,
    };

    // Each block takes at least 3 bytes (name, rows, columns).
    let mut tables = Vec::with_capacity(usize::from(header.table_count).min(r.remaining() / 3));
    for _ in 0..header.table_count {
        tables.push(decode_table_block(&mut r, &rules)?);
    }
    r.finish("the last table block")?;
    Ok(IngressMessage {
        defer_commit: header.flags.defer_commit(),
        gorilla: header.flags.gorilla(),
        symbols,
        tables,
    })
}

fn decode_table_block<'a>(
    r: &mut ByteReader<'a>,
    rules: &ColumnRules<'_>,
) -> DecodeResult<TableBlock<'a>> {
    let limits = rules.limits;
    let name_at = r.position();
    let name = r.string("table name", limits.max_name_len)?;
    if name.is_empty() {
        return Err(r.error_at(DecodeErrorKind::EmptyName { what: "table name" }, name_at));
    }
    let in_table = |e: crate::error::DecodeError| e.in_table(name);
    let row_count = r
        .varint_max("row_count", limits.max_rows_per_block)
        .map_err(in_table)? as u32;
    let column_count = r
        .varint_max("column_count", limits.max_columns)
        .map_err(in_table)?;

    // Each definition takes at least 2 bytes.
    let mut defs = Vec::with_capacity((column_count as usize).min(r.remaining() / 2));
    let mut designated = false;
    for _ in 0..column_count {
        let col_name = r
            .string("column name", limits.max_name_len)
            .map_err(in_table)?;
        let type_at = r.position();
        let code = r.u8("column type").map_err(in_table)?;
        let type_code = TypeCode::from_u8(code).ok_or_else(|| {
            r.error_at(DecodeErrorKind::UnknownTypeCode(code), type_at)
                .in_column(col_name)
                .in_table(name)
        })?;
        if col_name.is_empty() {
            let kind = if !type_code.can_be_designated() {
                Some(DecodeErrorKind::InvalidDesignatedTimestamp {
                    type_name: type_code.name(),
                })
            } else if designated {
                Some(DecodeErrorKind::DuplicateDesignatedTimestamp)
            } else {
                None
            };
            if let Some(kind) = kind {
                return Err(r.error_at(kind, type_at).in_table(name));
            }
            designated = true;
        }
        defs.push((col_name, type_code));
    }

    let mut columns = Vec::with_capacity(defs.len());
    for (col_name, type_code) in defs {
        let data = ColumnData::decode(r, type_code, row_count, rules)
            .map_err(|e| e.in_column(col_name).in_table(name))?;
        columns.push(Column {
            name: Cow::Borrowed(col_name),
            data,
        });
    }
    Ok(TableBlock {
        name: Cow::Borrowed(name),
        row_count,
        columns,
    })
}

/// A connection's ingress decoder: the negotiated limits and the symbol
/// dictionary, which changes only when a whole message decoded.
#[derive(Debug, Clone, Default)]
pub struct IngressDecoder {
    limits: Limits,
    dictionary: SymbolDictionary,
}

impl IngressDecoder {
    /// A decoder for a new connection.
    pub fn new(limits: Limits) -> Self {
        IngressDecoder {
            limits,
            dictionary: SymbolDictionary::new(),
        }
    }

    /// Decodes `frame` and, if it is valid, applies its symbol delta. On
    /// error the dictionary is unchanged.
    pub fn decode<'a>(
        &mut self,
        frame: &'a [u8],
    ) -> DecodeResult<(IngressMessage<'a>, DeltaOutcome)> {
        let message = decode_ingress_message(frame, &self.limits, &self.dictionary)?;
        let outcome = match &message.symbols {
            Some(delta) => self.dictionary.apply(delta),
            None => DeltaOutcome::default(),
        };
        Ok((message, outcome))
    }

    /// The connection's symbol dictionary.
    pub fn dictionary(&self) -> &SymbolDictionary {
        &self.dictionary
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
}

/// Appends `message` to `out` as one ingress frame. On error `out` is left
/// as it was.
pub fn encode_ingress_message(
    message: &IngressMessage<'_>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    let result = encode_ingress_inner(message, out, start);
    if result.is_err() {
        out.truncate(start);
    }
    result
}

fn encode_ingress_inner(
    message: &IngressMessage<'_>,
    out: &mut Vec<u8>,
    start: usize,
) -> Result<(), EncodeError> {
    let table_count = u16::try_from(message.tables.len()).map_err(|_| EncodeError::TooLarge {
        what: "table count",
        value: message.tables.len() as u64,
        max: u64::from(u16::MAX),
    })?;
    let flags = Flags(0)
        .with(Flags::DEFER_COMMIT, message.defer_commit)
        .with(Flags::GORILLA, message.gorilla)
        .with(Flags::DELTA_SYMBOL_DICT, message.symbols.is_some());
    begin_message(out, flags, table_count);
    if let Some(delta) = &message.symbols {
        delta.encode(out);
    }
    let rules = EncodeRules {
        direction: Direction::Ingress,
        gorilla: message.gorilla,
        delta_symbols: message.symbols.is_some(),
    };
    for table in &message.tables {
        put_string(out, &table.name);
        put_varint(out, u64::from(table.row_count));
        put_varint(out, table.columns.len() as u64);
        for c in &table.columns {
            if c.data.row_count() != table.row_count {
                return Err(EncodeError::RowCountMismatch {
                    column: c.name.to_string(),
                    column_rows: c.data.row_count(),
                    table_rows: table.row_count,
                });
            }
            put_string(out, &c.name);
            out.push(c.data.type_code().as_u8());
        }
        for c in &table.columns {
            c.data.encode(out, &rules).map_err(|e| match e {
                EncodeError::SymbolModeMismatch { reason, .. } => EncodeError::SymbolModeMismatch {
                    column: c.name.to_string(),
                    reason,
                },
                other => other,
            })?;
        }
    }
    finish_message(out, start).ok_or(EncodeError::TooLarge {
        what: "payload length",
        value: (out.len() - start - HEADER_LEN) as u64,
        max: u64::from(u32::MAX),
    })?;
    Ok(())
}

/// A per-table entry of an OK or durable ack: the table's committed
/// (or durable) transaction number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSeqTxn<'a> {
    /// Table name (non-empty).
    pub table: Cow<'a, str>,
    /// Sequencer transaction.
    pub seq_txn: i64,
}

/// A server → client ingress response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngressResponse<'a> {
    /// Every frame up to and including `sequence` is committed.
    Ok {
        /// Cumulative wire sequence.
        sequence: i64,
        /// Tables committed since the previous OK.
        tables: Vec<TableSeqTxn<'a>>,
    },
    /// Tables whose commits are now durable (fsync'd).
    DurableAck {
        /// Durable watermark per table.
        tables: Vec<TableSeqTxn<'a>>,
    },
    /// Frame `sequence` failed.
    Error {
        /// Any status other than OK and DURABLE_ACK.
        status: StatusCode,
        /// The failing frame.
        sequence: i64,
        /// What went wrong (at most 1,024 bytes on the wire).
        message: Cow<'a, str>,
    },
}

/// Appends `response` to `out`. Error messages are cut to 1,024 bytes at a
/// char boundary; table names are cut to `u16::MAX` bytes.
pub fn encode_ingress_response(response: &IngressResponse<'_>, out: &mut Vec<u8>) {
    let put_tables = |out: &mut Vec<u8>, tables: &[TableSeqTxn<'_>]| {
        let n = tables.len().min(usize::from(u16::MAX));
        out.extend_from_slice(&(n as u16).to_le_bytes());
        for t in &tables[..n] {
            put_string_u16(out, truncate_utf8(&t.table, usize::from(u16::MAX)));
            out.extend_from_slice(&t.seq_txn.to_le_bytes());
        }
    };
    match response {
        IngressResponse::Ok { sequence, tables } => {
            out.push(StatusCode::OK.0);
            out.extend_from_slice(&sequence.to_le_bytes());
            put_tables(out, tables);
        }
        IngressResponse::DurableAck { tables } => {
            out.push(StatusCode::DURABLE_ACK.0);
            put_tables(out, tables);
        }
        IngressResponse::Error {
            status,
            sequence,
            message,
        } => {
            out.push(status.0);
            out.extend_from_slice(&sequence.to_le_bytes());
            put_string_u16(out, truncate_utf8(message, MAX_ERROR_MESSAGE_LEN));
        }
    }
}

/// Decodes one ingress response frame, as the official client does: no
/// trailing bytes, non-empty UTF-8 table names, messages of at most 1,024
/// bytes.
pub fn decode_ingress_response(frame: &[u8]) -> DecodeResult<IngressResponse<'_>> {
    let mut r = ByteReader::new(frame);
    let status = StatusCode(r.u8("response status")?);
    let response = match status {
        StatusCode::OK => {
            let sequence = r.i64("ack sequence")?;
            IngressResponse::Ok {
                sequence,
                tables: decode_table_entries(&mut r)?,
            }
        }
        StatusCode::DURABLE_ACK => IngressResponse::DurableAck {
            tables: decode_table_entries(&mut r)?,
        },
        status => {
            let sequence = r.i64("error sequence")?;
            let message = r.string_u16("error message", MAX_ERROR_MESSAGE_LEN as u64)?;
            IngressResponse::Error {
                status,
                sequence,
                message: Cow::Borrowed(message),
            }
        }
    };
    r.finish("the response")?;
    Ok(response)
}

fn decode_table_entries<'a>(r: &mut ByteReader<'a>) -> DecodeResult<Vec<TableSeqTxn<'a>>> {
    let count = r.u16("table entry count")?;
    // Each entry takes at least 11 bytes.
    let mut tables = Vec::with_capacity(usize::from(count).min(r.remaining() / 11));
    for _ in 0..count {
        let at = r.position();
        let table = r.string_u16("table entry name", u64::from(u16::MAX))?;
        if table.is_empty() {
            return Err(r.error_at(
                DecodeErrorKind::EmptyName {
                    what: "table entry name",
                },
                at,
            ));
        }
        let seq_txn = r.i64("table entry seq_txn")?;
        tables.push(TableSeqTxn {
            table: Cow::Borrowed(table),
            seq_txn,
        });
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_ok_is_eleven_bytes() {
        let mut out = Vec::new();
        encode_ingress_response(
            &IngressResponse::Ok {
                sequence: 1,
                tables: vec![],
            },
            &mut out,
        );
        assert_eq!(out, [0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            decode_ingress_response(&out).unwrap(),
            IngressResponse::Ok {
                sequence: 1,
                tables: vec![]
            }
        );
    }

    #[test]
    fn error_message_is_cut_at_1024_bytes_on_a_char_boundary() {
        let long = "é".repeat(600); // 1200 bytes
        let mut out = Vec::new();
        encode_ingress_response(
            &IngressResponse::Error {
                status: StatusCode::PARSE_ERROR,
                sequence: 3,
                message: Cow::Borrowed(&long),
            },
            &mut out,
        );
        let IngressResponse::Error { message, .. } = decode_ingress_response(&out).unwrap() else {
            panic!("error expected");
        };
        assert_eq!(message.len(), 1024);
        assert!(long.starts_with(&*message));
    }

    #[test]
    fn responses_reject_bad_shapes() {
        // empty table name
        let bad = [
            0u8, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0,
        ];
        assert!(matches!(
            decode_ingress_response(&bad).unwrap_err().kind(),
            DecodeErrorKind::EmptyName { .. }
        ));
        // trailing byte
        assert!(decode_ingress_response(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9]).is_err());
        // message longer than 1024
        let mut too_long = vec![5u8, 0, 0, 0, 0, 0, 0, 0, 0];
        too_long.extend_from_slice(&1025u16.to_le_bytes());
        too_long.extend(std::iter::repeat_n(b'x', 1025));
        assert!(matches!(
            decode_ingress_response(&too_long).unwrap_err().kind(),
            DecodeErrorKind::LimitExceeded { .. }
        ));
        assert!(decode_ingress_response(&[]).is_err());
    }
}
