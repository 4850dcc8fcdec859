//! `quiver-qwp`: a sans-I/O codec for QWP, QuestDB's columnar wire protocol
//! over WebSocket (`../shared/qwp/SPEC.md`).
//!
//! The crate turns complete QWP messages (one WebSocket binary frame each)
//! into typed views and back. It owns no sockets, tasks or clocks and knows
//! nothing of storage; the server and the client SDK both build on it.
//!
//! | direction | decode | encode |
//! |---|---|---|
//! | ingress message (client → server) | [`IngressDecoder`], [`decode_ingress_message`] | [`encode_ingress_message`] |
//! | ingress ack (server → client) | [`decode_ingress_response`] | [`encode_ingress_response`] |
//! | egress request (client → server) | [`decode_client_message`] | [`encode_client_message`] |
//! | egress result (server → client) | [`EgressDecoder`] | [`encode_server_message`] |
//!
//! # Zero copy
//!
//! Decoding validates the whole message (lengths, offsets, UTF-8, symbol ids,
//! Gorilla streams, array shapes) and returns views that borrow from the
//! frame: fixed-width values, offsets, string data and null bitmaps are
//! `&[u8]` into it, varint ids and Gorilla streams are iterated in place.
//! A consumer building Arrow arrays copies each byte once, from the view
//! into its buffer. The only allocations are per table and per column, so
//! a decoder never allocates more than a small multiple of the frame's
//! length, whatever counts a frame claims.
//!
//! # Errors
//!
//! Malformed input is a [`DecodeError`]: a [`DecodeErrorKind`], the byte
//! offset, and the table and column being read. [`DecodeError::status`]
//! maps it onto the QWP status for the error ack. Decoding never panics.
//!
//! # Example
//!
//! ```
//! use quiver_qwp::{
//!     ColumnBuilder, IngressDecoder, IngressMessage, Limits, NullEncoding, SymbolDelta,
//!     StringList, TableBlock, TypeCode, Value, encode_ingress_message, ingress::Column,
//! };
//!
//! let mut px = ColumnBuilder::new(TypeCode::Double);
//! px.push(Some(&Value::Double(101.5))).unwrap();
//! px.push(None).unwrap();
//! let mut sym = ColumnBuilder::new(TypeCode::Symbol);
//! sym.push(Some(&Value::Symbol(0))).unwrap();
//! sym.push(Some(&Value::Symbol(0))).unwrap();
//! let message = IngressMessage {
//!     defer_commit: false,
//!     gorilla: false,
//!     symbols: Some(SymbolDelta { start: 0, entries: StringList::from_strs(["ETH-USD"]) }),
//!     tables: vec![TableBlock {
//!         name: "trades".into(),
//!         row_count: 2,
//!         columns: vec![
//!             Column { name: "sym".into(), data: sym.finish(NullEncoding::Bitmap) },
//!             Column { name: "px".into(), data: px.finish(NullEncoding::Sentinel) },
//!         ],
//!     }],
//! };
//! let mut frame = Vec::new();
//! encode_ingress_message(&message, &mut frame).unwrap();
//!
//! let mut decoder = IngressDecoder::new(Limits::default());
//! let (decoded, _) = decoder.decode(&frame).unwrap();
//! assert_eq!(decoded.tables[0].columns[1].data.rows()[0], Some(Value::Double(101.5)));
//! assert_eq!(decoder.dictionary().get(0), Some("ETH-USD"));
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

#[cfg(feature = "arrow")]
pub mod arrow;
pub mod bitmap;
pub mod column;
pub mod egress;
pub mod error;
pub mod gorilla;
pub mod header;
pub mod ingress;
pub mod limits;
pub mod symbols;
pub mod types;
pub mod value;
mod wire;

#[cfg(fuzzing)]
pub mod fuzzing;

pub use bitmap::NullBitmap;
pub use column::{
    ArrayValue, ArrayValues, ColumnBuilder, ColumnData, NullEncoding, Symbols, Timestamps, Values,
};
pub use egress::MessageKind;
pub use egress::request::{
    Bind, ClientMessage, QueryFlags, QueryRequest, decode_client_message, encode_client_message,
};
pub use egress::response::{
    BatchEncoding, ColumnDef, EgressDecoder, ResultBatch, ServerInfo, ServerMessage,
    encode_server_message,
};
pub use error::{DecodeError, DecodeErrorKind, DecodeResult, EncodeError};
pub use header::{Flags, HEADER_LEN, MAGIC, MessageHeader, VERSION};
pub use ingress::{
    IngressDecoder, IngressMessage, IngressResponse, TableBlock, TableSeqTxn,
    decode_ingress_message, decode_ingress_response, encode_ingress_message,
    encode_ingress_response,
};
pub use limits::Limits;
pub use symbols::{DeltaOutcome, StringList, SymbolDelta, SymbolDictionary, SymbolIds};
pub use types::{Direction, Layout, StatusCode, TypeCode};
pub use value::{LeScalar, Value, le_values};
pub use wire::{put_varint, varint_len};
