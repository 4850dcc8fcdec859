//! Client → server egress messages: QUERY_REQUEST with binds, CANCEL,
//! CREDIT (SPEC §4.4, §4.5, §4.8). These frames have no QWP header.
//!
//! ```text
//! QUERY_REQUEST  10 | request_id i64 | sql string | initial_credit varint
//!                   | bind_count varint | bind × bind_count
//!                   | [query_flags varint | [timeout_ms varint if flags & 0x02]]
//! CANCEL         14 | request_id i64
//! CREDIT         15 | request_id i64 | additional_bytes varint
//!
//! bind           type_code u8 | null_flag u8 | [bitmap u8, bit 0 = NULL]
//!                | [DECIMAL: scale u8] [GEOHASH: precision varint]   (always)
//!                | [VARCHAR/BINARY: u32 0, u32 len]                   (non-NULL only)
//!                | value                                              (non-NULL only)
//! ```

use std::borrow::Cow;

use super::MessageKind;
use crate::error::{DecodeErrorKind, DecodeResult, EncodeError};
use crate::limits::Limits;
use crate::types::{Layout, TypeCode};
use crate::value::{LeScalar, Value};
use crate::wire::{ByteReader, put_string, put_varint};

/// `query_flags` bit: clear the connection's symbol dictionary first.
pub const QUERY_FLAG_RESET_DICT: u64 = 0x01;
/// `query_flags` bit: a `timeout_ms` follows.
pub const QUERY_FLAG_TIMEOUT: u64 = 0x02;

/// A positional bind parameter (`$1`, `$2`, …).
#[derive(Debug, Clone, PartialEq)]
pub enum Bind<'a> {
    /// A typed NULL. `arg` is the DECIMAL scale or GEOHASH precision (both
    /// travel even for NULL), 0 for other types.
    Null {
        /// The bind's type.
        type_code: TypeCode,
        /// DECIMAL scale or GEOHASH precision bits.
        arg: u8,
    },
    /// A value. SYMBOL binds arrive as [`Value::Varchar`].
    Value(Value<'a>),
}

/// The optional trailer of a QUERY_REQUEST (sent only to servers that
/// advertise `CAP_QUERY_FLAGS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueryFlags {
    /// Flag bits as sent; bit `0x02` agrees with `timeout_ms`.
    pub bits: u64,
    /// Query timeout in milliseconds (> 0), present iff bit `0x02`.
    pub timeout_ms: Option<u64>,
}

impl QueryFlags {
    /// Whether RESET_DICT is set.
    pub fn reset_dict(&self) -> bool {
        self.bits & QUERY_FLAG_RESET_DICT != 0
    }
}

/// QUERY_REQUEST.
#[derive(Debug, Clone, PartialEq)]
pub struct QueryRequest<'a> {
    /// Client-assigned id, echoed on every response frame.
    pub request_id: i64,
    /// SQL text.
    pub sql: Cow<'a, str>,
    /// Flow-control budget in bytes; 0 = unbounded.
    pub initial_credit: u64,
    /// Positional binds.
    pub binds: Vec<Bind<'a>>,
    /// The optional trailer.
    pub flags: Option<QueryFlags>,
}

/// A client → server egress message.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage<'a> {
    /// Run a statement.
    QueryRequest(QueryRequest<'a>),
    /// Cancel the query with this request id.
    Cancel {
        /// The query.
        request_id: i64,
    },
    /// Add flow-control credit.
    Credit {
        /// The query.
        request_id: i64,
        /// Bytes granted.
        additional_bytes: u64,
    },
}

/// Decodes one client frame (no QWP header).
pub fn decode_client_message<'a>(
    frame: &'a [u8],
    limits: &Limits,
) -> DecodeResult<ClientMessage<'a>> {
    let mut r = ByteReader::new(frame);
    let kind_byte = r.u8("message kind")?;
    let kind = MessageKind::from_u8(kind_byte)
        .ok_or_else(|| r.error_at(DecodeErrorKind::UnknownMessageKind(kind_byte), 0))?;
    let message = match kind {
        MessageKind::QueryRequest => {
            ClientMessage::QueryRequest(decode_query_request(&mut r, limits)?)
        }
        MessageKind::Cancel => ClientMessage::Cancel {
            request_id: r.i64("request_id")?,
        },
        MessageKind::Credit => ClientMessage::Credit {
            request_id: r.i64("request_id")?,
            additional_bytes: r.varint("additional_bytes")?,
        },
        _ => return Err(r.error_at(DecodeErrorKind::UnexpectedMessageKind(kind_byte), 0)),
    };
    r.finish("the message")?;
    Ok(message)
}

fn decode_query_request<'a>(
    r: &mut ByteReader<'a>,
    limits: &Limits,
) -> DecodeResult<QueryRequest<'a>> {
    let request_id = r.i64("request_id")?;
    let sql = r.string("sql", limits.max_sql_len)?;
    let initial_credit = r.varint("initial_credit")?;
    let bind_count = r.varint_max("bind_count", limits.max_binds)?;
    // Each bind takes at least 3 bytes.
    let mut binds = Vec::with_capacity((bind_count as usize).min(r.remaining() / 3));
    for _ in 0..bind_count {
        binds.push(decode_bind(r)?);
    }
    let flags = if r.is_empty() {
        None
    } else {
        let bits = r.varint("query_flags")?;
        let timeout_ms = if bits & QUERY_FLAG_TIMEOUT != 0 {
            let at = r.position();
            let t = r.varint("timeout_ms")?;
            if t == 0 {
                return Err(r.error_at(
                    DecodeErrorKind::InvalidValue {
                        what: "timeout_ms",
                        reason: "must be greater than 0",
                    },
                    at,
                ));
            }
            Some(t)
        } else {
            None
        };
        Some(QueryFlags { bits, timeout_ms })
    };
    Ok(QueryRequest {
        request_id,
        sql: Cow::Borrowed(sql),
        initial_credit,
        binds,
        flags,
    })
}

fn decode_bind<'a>(r: &mut ByteReader<'a>) -> DecodeResult<Bind<'a>> {
    let at = r.position();
    let code = r.u8("bind type")?;
    let type_code = TypeCode::from_u8(code)
        .ok_or_else(|| r.error_at(DecodeErrorKind::UnknownTypeCode(code), at))?;
    if type_code.layout() == Layout::Array {
        return Err(r.error_at(
            DecodeErrorKind::UnsupportedBindType {
                type_name: type_code.name(),
            },
            at,
        ));
    }
    let flag_at = r.position();
    let null_flag = r.u8("bind null flag")?;
    let is_null = match null_flag {
        0 => false,
        1 => r.u8("bind null bitmap")? & 1 != 0,
        other => return Err(r.error_at(DecodeErrorKind::InvalidNullFlag(other), flag_at)),
    };
    let arg = match type_code.layout() {
        Layout::Decimal(_) => {
            let at = r.position();
            let scale = r.u8("bind decimal scale")?;
            let max = type_code.max_decimal_scale().expect("decimal");
            if scale > max {
                return Err(r.error_at(
                    DecodeErrorKind::InvalidScale {
                        type_name: type_code.name(),
                        scale,
                        max,
                    },
                    at,
                ));
            }
            scale
        }
        Layout::Geohash => {
            let at = r.position();
            let bits = r.varint("bind geohash precision")?;
            if !(1..=60).contains(&bits) {
                return Err(r.error_at(DecodeErrorKind::InvalidGeohashPrecision { bits }, at));
            }
            bits as u8
        }
        _ => 0,
    };
    if is_null {
        return Ok(Bind::Null { type_code, arg });
    }
    let value = match type_code {
        TypeCode::Varchar | TypeCode::Symbol | TypeCode::Binary => {
            let offsets_at = r.position();
            let first = r.u32("bind offsets")?;
            let len = r.u32("bind offsets")?;
            if first != 0 {
                return Err(r.error_at(
                    DecodeErrorKind::InvalidOffsets {
                        what: "bind offsets",
                        reason: "first offset is not 0",
                    },
                    offsets_at,
                ));
            }
            if type_code == TypeCode::Binary {
                Value::Binary(r.take(u64::from(len), "bind value")?)
            } else {
                let data_at = r.position();
                let bytes = r.take(u64::from(len), "bind value")?;
                Value::Varchar(std::str::from_utf8(bytes).map_err(|_| {
                    r.error_at(DecodeErrorKind::InvalidUtf8 { what: "bind value" }, data_at)
                })?)
            }
        }
        TypeCode::Boolean => match r.u8("bind value")? {
            0 => Value::Boolean(false),
            1 => Value::Boolean(true),
            _ => {
                return Err(r.error_at(
                    DecodeErrorKind::InvalidValue {
                        what: "BOOLEAN bind",
                        reason: "must be 0 or 1",
                    },
                    r.position() - 1,
                ));
            }
        },
        TypeCode::Byte => Value::Byte(r.u8("bind value")? as i8),
        TypeCode::Short => Value::Short(r.u16("bind value")? as i16),
        TypeCode::Char => Value::Char(r.u16("bind value")?),
        TypeCode::Int => Value::Int(r.u32("bind value")? as i32),
        TypeCode::Ipv4 => Value::Ipv4(r.u32("bind value")?),
        TypeCode::Float => Value::Float(f32::from_bits(r.u32("bind value")?)),
        TypeCode::Long => Value::Long(r.i64("bind value")?),
        TypeCode::Double => Value::Double(f64::from_bits(r.u64("bind value")?)),
        TypeCode::Timestamp => Value::Timestamp(r.i64("bind value")?),
        TypeCode::TimestampNanos => Value::TimestampNanos(r.i64("bind value")?),
        TypeCode::Date => Value::Date(r.i64("bind value")?),
        TypeCode::Uuid => Value::Uuid {
            lo: r.u64("bind value")?,
            hi: r.u64("bind value")?,
        },
        TypeCode::Long256 => Value::Long256([
            r.u64("bind value")?,
            r.u64("bind value")?,
            r.u64("bind value")?,
            r.u64("bind value")?,
        ]),
        TypeCode::Geohash => {
            let w = u64::from(arg).div_ceil(8);
            let bytes = r.take(w, "bind value")?;
            let mut buf = [0u8; 8];
            buf[..bytes.len()].copy_from_slice(bytes);
            Value::Geohash {
                precision_bits: arg,
                value: u64::from_le_bytes(buf),
            }
        }
        TypeCode::Decimal64 => Value::Decimal64 {
            scale: arg,
            unscaled: r.i64("bind value")?,
        },
        TypeCode::Decimal128 => Value::Decimal128 {
            scale: arg,
            unscaled: i128::read_le(r.take(16, "bind value")?),
        },
        TypeCode::Decimal256 => Value::Decimal256 {
            scale: arg,
            unscaled: r.take(32, "bind value")?.try_into().expect("took 32"),
        },
        TypeCode::DoubleArray | TypeCode::LongArray => unreachable!("rejected above"),
    };
    Ok(Bind::Value(value))
}

/// Appends a client frame to `out`. On error `out` is left as it was.
pub fn encode_client_message(
    message: &ClientMessage<'_>,
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    let start = out.len();
    match message {
        ClientMessage::QueryRequest(q) => {
            out.push(MessageKind::QueryRequest as u8);
            out.extend_from_slice(&q.request_id.to_le_bytes());
            put_string(out, &q.sql);
            put_varint(out, q.initial_credit);
            put_varint(out, q.binds.len() as u64);
            for b in &q.binds {
                if let Err(e) = encode_bind(b, out) {
                    out.truncate(start);
                    return Err(e);
                }
            }
            if let Some(f) = &q.flags {
                let bits = (f.bits & !QUERY_FLAG_TIMEOUT)
                    | if f.timeout_ms.is_some() {
                        QUERY_FLAG_TIMEOUT
                    } else {
                        0
                    };
                put_varint(out, bits);
                if let Some(t) = f.timeout_ms {
                    if t == 0 {
                        out.truncate(start);
                        return Err(EncodeError::InvalidValue {
                            what: "timeout_ms",
                            reason: "must be greater than 0",
                        });
                    }
                    put_varint(out, t);
                }
            }
        }
        ClientMessage::Cancel { request_id } => {
            out.push(MessageKind::Cancel as u8);
            out.extend_from_slice(&request_id.to_le_bytes());
        }
        ClientMessage::Credit {
            request_id,
            additional_bytes,
        } => {
            out.push(MessageKind::Credit as u8);
            out.extend_from_slice(&request_id.to_le_bytes());
            put_varint(out, *additional_bytes);
        }
    }
    Ok(())
}

fn encode_bind(bind: &Bind<'_>, out: &mut Vec<u8>) -> Result<(), EncodeError> {
    let (type_code, arg) = match bind {
        Bind::Null { type_code, arg } => (*type_code, *arg),
        Bind::Value(v) => (
            v.type_code(),
            match *v {
                Value::Decimal64 { scale, .. }
                | Value::Decimal128 { scale, .. }
                | Value::Decimal256 { scale, .. } => scale,
                Value::Geohash { precision_bits, .. } => precision_bits,
                _ => 0,
            },
        ),
    };
    if matches!(type_code.layout(), Layout::Array) || matches!(bind, Bind::Value(Value::Symbol(_)))
    {
        return Err(EncodeError::InvalidValue {
            what: "bind",
            reason: "arrays and symbol ids cannot be bound; send text as VARCHAR",
        });
    }
    if type_code.layout() == Layout::Geohash && !(1..=60).contains(&arg) {
        return Err(EncodeError::InvalidValue {
            what: "GEOHASH bind",
            reason: "precision outside 1..=60 bits",
        });
    }
    if type_code.max_decimal_scale().is_some_and(|max| arg > max) {
        return Err(EncodeError::InvalidValue {
            what: "DECIMAL bind",
            reason: "scale past the type's maximum",
        });
    }
    out.push(type_code.as_u8());
    match bind {
        Bind::Null { .. } => out.extend_from_slice(&[1, 1]),
        Bind::Value(_) => out.push(0),
    }
    match type_code.layout() {
        Layout::Decimal(_) => out.push(arg),
        Layout::Geohash => put_varint(out, u64::from(arg)),
        _ => {}
    }
    let Bind::Value(v) = bind else {
        return Ok(());
    };
    match *v {
        Value::Varchar(s) => put_bind_bytes(out, s.as_bytes())?,
        Value::Binary(b) => put_bind_bytes(out, b)?,
        Value::Boolean(b) => out.push(u8::from(b)),
        Value::Byte(x) => x.put_le(out),
        Value::Short(x) => x.put_le(out),
        Value::Char(x) => x.put_le(out),
        Value::Int(x) => x.put_le(out),
        Value::Ipv4(x) => x.put_le(out),
        Value::Float(x) => x.put_le(out),
        Value::Long(x) | Value::Timestamp(x) | Value::TimestampNanos(x) | Value::Date(x) => {
            x.put_le(out)
        }
        Value::Double(x) => x.put_le(out),
        Value::Uuid { lo, hi } => {
            lo.put_le(out);
            hi.put_le(out);
        }
        Value::Long256(l) => l.iter().for_each(|x| x.put_le(out)),
        Value::Geohash {
            precision_bits,
            value,
        } => out.extend_from_slice(&value.to_le_bytes()[..usize::from(precision_bits).div_ceil(8)]),
        Value::Decimal64 { unscaled, .. } => unscaled.put_le(out),
        Value::Decimal128 { unscaled, .. } => unscaled.put_le(out),
        Value::Decimal256 { unscaled, .. } => out.extend_from_slice(&unscaled),
        Value::Symbol(_) | Value::DoubleArray { .. } | Value::LongArray { .. } => {
            unreachable!("rejected above")
        }
    }
    Ok(())
}

fn put_bind_bytes(out: &mut Vec<u8>, b: &[u8]) -> Result<(), EncodeError> {
    let len = u32::try_from(b.len()).map_err(|_| EncodeError::TooLarge {
        what: "bind value length",
        value: b.len() as u64,
        max: u64::from(u32::MAX),
    })?;
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(b);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(m: &ClientMessage<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_client_message(m, &mut out).unwrap();
        out
    }

    #[test]
    fn spec_query_request_vectors() {
        // SPEC §6.3: SELECT id, value FROM sensors LIMIT 2, rid 1. The SPEC
        // prints the length byte as 0x24, but the text is 37 (0x25) bytes;
        // with 0x24 the '2' would be read as initial_credit.
        let sql = "SELECT id, value FROM sensors LIMIT 2";
        assert_eq!(sql.len(), 0x25);
        let mut expected = vec![0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0x25];
        expected.extend_from_slice(sql.as_bytes());
        expected.extend_from_slice(&[0, 0]);
        let q = ClientMessage::QueryRequest(QueryRequest {
            request_id: 1,
            sql: sql.into(),
            initial_credit: 0,
            binds: vec![],
            flags: None,
        });
        assert_eq!(encode(&q), expected);
        assert_eq!(
            decode_client_message(&expected, &Limits::default()).unwrap(),
            q
        );

        // SPEC §6.3: QUERY_REQUEST("SELECT 1", rid=0x2A), 20 bytes.
        let bytes = [
            0x10, 0x2A, 0, 0, 0, 0, 0, 0, 0, 0x08, b'S', b'E', b'L', b'E', b'C', b'T', b' ', b'1',
            0, 0,
        ];
        let ClientMessage::QueryRequest(q) =
            decode_client_message(&bytes, &Limits::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!((q.request_id, &*q.sql), (0x2A, "SELECT 1"));
    }

    #[test]
    fn spec_credit_and_bind_vectors() {
        // CREDIT rid 7, 65536: 15 07 00.. 80 80 04.
        let credit = ClientMessage::Credit {
            request_id: 7,
            additional_bytes: 65536,
        };
        let bytes = encode(&credit);
        assert_eq!(bytes, [0x15, 7, 0, 0, 0, 0, 0, 0, 0, 0x80, 0x80, 0x04]);
        assert_eq!(
            decode_client_message(&bytes, &Limits::default()).unwrap(),
            credit
        );

        // LONG 42: 05 00 2A 00 ..; NULL LONG: 05 01 01; NULL VARCHAR: 0F 01 01.
        let mut out = Vec::new();
        encode_bind(&Bind::Value(Value::Long(42)), &mut out).unwrap();
        assert_eq!(out, [0x05, 0x00, 0x2A, 0, 0, 0, 0, 0, 0, 0]);
        let mut out = Vec::new();
        encode_bind(
            &Bind::Null {
                type_code: TypeCode::Long,
                arg: 0,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [0x05, 0x01, 0x01]);
        let mut out = Vec::new();
        encode_bind(
            &Bind::Null {
                type_code: TypeCode::Varchar,
                arg: 0,
            },
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [0x0F, 0x01, 0x01]);
        assert_eq!(
            decode_bind(&mut ByteReader::new(&out)).unwrap(),
            Bind::Null {
                type_code: TypeCode::Varchar,
                arg: 0
            }
        );
    }

    #[test]
    fn flags_trailer_and_timeout() {
        let q = |flags| {
            ClientMessage::QueryRequest(QueryRequest {
                request_id: 2,
                sql: "SELECT 1".into(),
                initial_credit: 0,
                binds: vec![],
                flags,
            })
        };
        for flags in [
            Some(QueryFlags {
                bits: 1,
                timeout_ms: None,
            }),
            Some(QueryFlags {
                bits: 3,
                timeout_ms: Some(1500),
            }),
            Some(QueryFlags {
                bits: 0,
                timeout_ms: None,
            }),
        ] {
            let bytes = encode(&q(flags));
            assert_eq!(
                decode_client_message(&bytes, &Limits::default()).unwrap(),
                q(flags)
            );
        }
        // timeout flag with a zero timeout
        let mut bytes = encode(&q(None));
        bytes.extend_from_slice(&[0x02, 0x00]);
        assert!(matches!(
            decode_client_message(&bytes, &Limits::default())
                .unwrap_err()
                .kind(),
            DecodeErrorKind::InvalidValue {
                what: "timeout_ms",
                ..
            }
        ));
        // timeout flag without a timeout
        let mut bytes = encode(&q(None));
        bytes.push(0x02);
        assert!(decode_client_message(&bytes, &Limits::default()).is_err());
    }

    #[test]
    fn kinds_in_the_wrong_direction_are_rejected() {
        assert_eq!(
            decode_client_message(&[0x11], &Limits::default())
                .unwrap_err()
                .kind(),
            DecodeErrorKind::UnexpectedMessageKind(0x11)
        );
        assert_eq!(
            decode_client_message(&[0x51, 0x57], &Limits::default())
                .unwrap_err()
                .kind(),
            DecodeErrorKind::UnknownMessageKind(0x51)
        );
        assert!(decode_client_message(&[], &Limits::default()).is_err());
        let array_bind = [0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x11, 0];
        assert!(matches!(
            decode_client_message(&array_bind, &Limits::default())
                .unwrap_err()
                .kind(),
            DecodeErrorKind::UnsupportedBindType { .. }
        ));
    }
}
