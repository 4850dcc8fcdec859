//! A minimal QWP ingest client over a real WebSocket, built from
//! `quiver-qwp`'s encoder, for tests that need exact control of frames
//! (oracles, malformed input) rather than the official clients' batching.

use std::net::TcpStream;
use std::time::Duration;

use quiver_qwp::ingress::Column;
use quiver_qwp::{
    ColumnBuilder, IngressMessage, IngressResponse, NullEncoding, StringList, SymbolDelta,
    TableBlock, TypeCode, Value, decode_ingress_response, encode_ingress_message,
};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::WebSocket;
use tungstenite::{Message, Utf8Bytes};

/// A connected ingest client.
pub struct RawClient {
    /// The socket.
    pub ws: WebSocket<TcpStream>,
    /// Symbols this connection registered, in id order.
    pub symbols: Vec<String>,
}

/// An owned ack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// OK through `seq`.
    Ok(i64, Vec<(String, i64)>),
    /// Durable ack.
    Durable(Vec<(String, i64)>),
    /// Error for `seq`.
    Error(u8, i64, String),
}

fn owned(r: IngressResponse<'_>) -> Ack {
    match r {
        IngressResponse::Ok { sequence, tables } => Ack::Ok(
            sequence,
            tables
                .into_iter()
                .map(|t| (t.table.to_string(), t.seq_txn))
                .collect(),
        ),
        IngressResponse::DurableAck { tables } => Ack::Durable(
            tables
                .into_iter()
                .map(|t| (t.table.to_string(), t.seq_txn))
                .collect(),
        ),
        IngressResponse::Error {
            status,
            sequence,
            message,
        } => Ack::Error(status.0, sequence, message.to_string()),
    }
}

/// What the socket gave back instead of an ack.
#[derive(Debug)]
pub enum Closed {
    /// A close frame with this code and reason.
    Close(u16, String),
    /// The connection broke.
    Error(String),
}

impl RawClient {
    /// Connects to `addr` on `/write/v4`, optionally asking for durable acks.
    pub fn connect(addr: &str, durable: bool) -> RawClient {
        Self::try_connect(addr, durable).expect("connect")
    }

    /// Like [`RawClient::connect`], returning errors.
    pub fn try_connect(addr: &str, durable: bool) -> Result<RawClient, String> {
        let stream = TcpStream::connect(addr).map_err(|e| e.to_string())?;
        stream.set_nodelay(true).ok();
        stream.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let mut request = format!("ws://{addr}/write/v4")
            .into_client_request()
            .map_err(|e| e.to_string())?;
        request
            .headers_mut()
            .insert("X-QWP-Max-Version", "1".parse().unwrap());
        if durable {
            request
                .headers_mut()
                .insert("X-QWP-Request-Durable-Ack", "true".parse().unwrap());
        }
        let (ws, response) =
            tungstenite::client::client(request, stream).map_err(|e| e.to_string())?;
        assert_eq!(
            response
                .headers()
                .get("x-qwp-version")
                .map(|v| v.to_str().unwrap()),
            Some("1")
        );
        Ok(RawClient {
            ws,
            symbols: Vec::new(),
        })
    }

    /// Sends raw bytes as one binary frame.
    pub fn send_raw(&mut self, bytes: Vec<u8>) -> Result<(), String> {
        self.ws
            .send(Message::Binary(bytes.into()))
            .map_err(|e| e.to_string())
    }

    /// Sends a text frame.
    pub fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.ws
            .send(Message::Text(Utf8Bytes::from(text)))
            .map_err(|e| e.to_string())
    }

    /// Encodes and sends a message.
    pub fn send(&mut self, message: &IngressMessage<'_>) -> Result<(), String> {
        let mut frame = Vec::new();
        encode_ingress_message(message, &mut frame).map_err(|e| e.to_string())?;
        self.send_raw(frame)
    }

    /// The next ack (skipping pings), or why there is none.
    pub fn read_ack(&mut self) -> Result<Ack, Closed> {
        loop {
            match self.ws.read() {
                Ok(Message::Binary(b)) => {
                    return Ok(owned(
                        decode_ingress_response(&b).map_err(|e| Closed::Error(e.to_string()))?,
                    ));
                }
                Ok(Message::Close(Some(frame))) => {
                    return Err(Closed::Close(frame.code.into(), frame.reason.to_string()));
                }
                Ok(Message::Close(None)) => return Err(Closed::Close(1005, String::new())),
                Ok(_) => continue,
                Err(e) => return Err(Closed::Error(e.to_string())),
            }
        }
    }

    /// A symbol delta registering `names` not yet known on this connection,
    /// and the ids of `names`.
    pub fn register(&mut self, names: &[&str]) -> (SymbolDelta<'static>, Vec<u32>) {
        let start = self.symbols.len() as u64;
        let mut new = Vec::new();
        let ids = names
            .iter()
            .map(|n| match self.symbols.iter().position(|s| s == n) {
                Some(i) => i as u32,
                None => {
                    self.symbols.push(n.to_string());
                    new.push(n.to_string());
                    (self.symbols.len() - 1) as u32
                }
            })
            .collect();
        (
            SymbolDelta {
                start,
                entries: StringList::from_strs(new),
            },
            ids,
        )
    }
}

/// A LONG column.
pub fn longs(values: impl IntoIterator<Item = i64>) -> quiver_qwp::ColumnData<'static> {
    let mut b = ColumnBuilder::new(TypeCode::Long);
    for v in values {
        b.push(Some(&Value::Long(v))).unwrap();
    }
    b.finish(NullEncoding::Sentinel)
}

/// A DOUBLE column.
pub fn doubles(values: impl IntoIterator<Item = f64>) -> quiver_qwp::ColumnData<'static> {
    let mut b = ColumnBuilder::new(TypeCode::Double);
    for v in values {
        b.push(Some(&Value::Double(v))).unwrap();
    }
    b.finish(NullEncoding::Sentinel)
}

/// A SYMBOL column of connection ids.
pub fn symbol_ids(ids: impl IntoIterator<Item = u32>) -> quiver_qwp::ColumnData<'static> {
    let mut b = ColumnBuilder::new(TypeCode::Symbol);
    for id in ids {
        b.push(Some(&Value::Symbol(id))).unwrap();
    }
    b.finish(NullEncoding::Bitmap)
}

/// A TIMESTAMP (µs) column.
pub fn timestamps(values: impl IntoIterator<Item = i64>) -> quiver_qwp::ColumnData<'static> {
    let mut b = ColumnBuilder::new(TypeCode::Timestamp);
    for v in values {
        b.push(Some(&Value::Timestamp(v))).unwrap();
    }
    b.finish(NullEncoding::Bitmap)
}

/// A table block from named columns (`""` = designated timestamp).
pub fn block(
    table: &str,
    columns: Vec<(&str, quiver_qwp::ColumnData<'static>)>,
) -> TableBlock<'static> {
    let row_count = columns.first().map_or(0, |(_, c)| c.row_count());
    TableBlock {
        name: table.to_string().into(),
        row_count,
        columns: columns
            .into_iter()
            .map(|(n, data)| Column {
                name: n.to_string().into(),
                data,
            })
            .collect(),
    }
}

/// A message with a delta dictionary.
pub fn message(
    symbols: SymbolDelta<'static>,
    defer: bool,
    tables: Vec<TableBlock<'static>>,
) -> IngressMessage<'static> {
    IngressMessage {
        defer_commit: defer,
        gorilla: false,
        symbols: Some(symbols),
        tables,
    }
}

/// A VARCHAR column.
pub fn varchars<'a>(values: impl IntoIterator<Item = &'a str>) -> quiver_qwp::ColumnData<'static> {
    let mut b = ColumnBuilder::new(TypeCode::Varchar);
    for v in values {
        b.push(Some(&Value::Varchar(v))).unwrap();
    }
    b.finish(NullEncoding::Bitmap)
}
