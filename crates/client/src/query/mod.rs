//! Queries (QWP egress, `/read/v1`): [`Query`] builds a statement with
//! positional binds, [`QueryStream`] streams its result as Arrow record
//! batches on a query connection borrowed from the pool (an Arrow
//! `RecordBatchReader`; [`AsyncQueryStream`] is the same as an async
//! `Stream`).
//!
//! The stream holds the connection until the result ends; it reads one
//! frame per batch asked for, so a slow consumer slows the server down
//! through TCP, and with [`Query::credit`] the server also stops at a byte
//! budget the client tops up as batches are consumed (QWP credit flow).
//! Dropping a stream mid-result sends CANCEL and reads to the terminator
//! (bounded by the request timeout, at most 5 s); the connection goes back
//! to the pool if that ends cleanly and is closed otherwise.
//!
//! Errors: a statement the server refuses is [`ClientError::Query`] (the
//! connection stays usable); a frame that does not decode, or decodes to
//! data Arrow cannot hold, is [`ClientError::Protocol`] and closes the
//! connection. Neither is retried: the same statement would fail the same
//! way. Nothing here retries a query on another connection (a query has no
//! side effects to duplicate, but a statement might: retrying is the
//! caller's choice).
//!
//! What it must not do: decode frames (the connection and `quiver-qwp`)
//! or know about pooling beyond holding a [`Reader`].

mod batch;
mod connection;
mod stream;

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use arrow_array::{RecordBatch, RecordBatchReader};
use arrow_schema::{ArrowError, Schema, SchemaRef};
use quiver_qwp::{Bind, QueryFlags, QueryRequest, ServerMessage, TypeCode, Value};

use crate::error::{ClientError, Result};
use crate::pool::{Client, Reader};
use batch::ResultSchema;
pub(crate) use batch::SymbolKeys;
pub use connection::ServerDescription;
pub(crate) use connection::{ConnectionState, QueryConnection};
pub use stream::AsyncQueryStream;

/// How long a dropped stream may read toward its terminator.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);
/// Batches read ahead, before the first is returned, to learn the rank of
/// array columns whose first rows are all NULL.
const RANK_LOOKAHEAD: usize = 16;
/// Credit granted with a CANCEL so a server paused for credit reaches a
/// batch boundary (bounded: servers keep the budget as a signed 64-bit
/// sum).
const CANCEL_CREDIT: u64 = u32::MAX as u64;
/// `query_flags` bit asking the server to clear the symbol dictionary.
const RESET_DICT: u64 = quiver_qwp::egress::request::QUERY_FLAG_RESET_DICT;
/// SERVER_INFO capability: the server reads `query_flags`.
const CAP_QUERY_FLAGS: u32 = quiver_qwp::egress::response::CAP_QUERY_FLAGS;

/// A bind parameter (`$1`, `$2`, ... in order of [`Query::bind`]).
/// Integers, floats, booleans and strings convert with `into()`; the other
/// QuestDB types have constructors.
#[derive(Debug, Clone, PartialEq)]
pub struct Param(ParamValue);

#[derive(Debug, Clone, PartialEq)]
enum ParamValue {
    /// A fixed-width value or a typed NULL.
    Fixed(Bind<'static>),
    /// VARCHAR (also how SYMBOL values are compared).
    Varchar(String),
}

impl Param {
    /// A typed NULL. `arg` is the DECIMAL scale or GEOHASH precision in
    /// bits (the server needs both even for NULL), else 0.
    pub fn null(type_code: TypeCode, arg: u8) -> Param {
        Param(ParamValue::Fixed(Bind::Null { type_code, arg }))
    }
    /// TIMESTAMP, microseconds since the epoch.
    pub fn timestamp_micros(micros: i64) -> Param {
        Param::value(Value::Timestamp(micros))
    }
    /// TIMESTAMP_NANOS, nanoseconds since the epoch.
    pub fn timestamp_nanos(nanos: i64) -> Param {
        Param::value(Value::TimestampNanos(nanos))
    }
    /// DATE, milliseconds since the epoch.
    pub fn date_millis(millis: i64) -> Param {
        Param::value(Value::Date(millis))
    }
    /// UUID (its 128 bits as a number: `0x550e8400_e29b_...`).
    pub fn uuid(value: u128) -> Param {
        Param::value(Value::Uuid {
            lo: value as u64,
            hi: (value >> 64) as u64,
        })
    }
    /// LONG256 as four 64-bit limbs, least significant first.
    pub fn long256(limbs: [u64; 4]) -> Param {
        Param::value(Value::Long256(limbs))
    }
    /// CHAR (one UTF-16 code unit).
    pub fn char(unit: u16) -> Param {
        Param::value(Value::Char(unit))
    }
    /// DECIMAL64: `unscaled × 10^-scale` (scale 0 to 18).
    pub fn decimal64(unscaled: i64, scale: u8) -> Param {
        Param::value(Value::Decimal64 { scale, unscaled })
    }
    /// DECIMAL128: `unscaled × 10^-scale` (scale 0 to 38).
    pub fn decimal128(unscaled: i128, scale: u8) -> Param {
        Param::value(Value::Decimal128 { scale, unscaled })
    }
    /// GEOHASH of `precision_bits` (1 to 60) bits.
    pub fn geohash(value: u64, precision_bits: u8) -> Param {
        Param::value(Value::Geohash {
            precision_bits,
            value,
        })
    }

    fn value(v: Value<'static>) -> Param {
        Param(ParamValue::Fixed(Bind::Value(v)))
    }

    fn as_bind(&self) -> Bind<'_> {
        match &self.0 {
            ParamValue::Fixed(b) => b.clone(),
            ParamValue::Varchar(s) => Bind::Value(Value::Varchar(s)),
        }
    }
}

macro_rules! param_from {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl From<$t> for Param {
            fn from(v: $t) -> Param {
                Param::value(Value::$variant(v))
            }
        }
    )*};
}
param_from!(bool => Boolean, i8 => Byte, i16 => Short, i32 => Int, i64 => Long, f32 => Float, f64 => Double);

macro_rules! param_from_option {
    ($($t:ty => $code:ident),* $(,)?) => {$(
        /// `None` is a typed NULL.
        impl From<Option<$t>> for Param {
            fn from(v: Option<$t>) -> Param {
                v.map_or(Param::null(TypeCode::$code, 0), Param::from)
            }
        }
    )*};
}
param_from_option!(bool => Boolean, i8 => Byte, i16 => Short, i32 => Int, i64 => Long, f32 => Float, f64 => Double, String => Varchar, &str => Varchar);

impl From<&String> for Param {
    fn from(v: &String) -> Param {
        Param(ParamValue::Varchar(v.clone()))
    }
}

impl From<&str> for Param {
    fn from(v: &str) -> Param {
        Param(ParamValue::Varchar(v.to_owned()))
    }
}

impl From<String> for Param {
    fn from(v: String) -> Param {
        Param(ParamValue::Varchar(v))
    }
}

/// A statement to run on a pooled query connection (see the module docs).
#[derive(Debug)]
#[must_use = "a query does nothing until fetched or executed"]
pub struct Query<'c> {
    client: &'c Client,
    sql: String,
    params: Vec<Param>,
    credit: u64,
    reset_dictionary: bool,
}

/// What a statement that returns no rows did (`EXEC_DONE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Executed {
    /// The server's statement kind (QuestDB's compiled-query type: 2
    /// INSERT, 4 ALTER, 7 DROP, 9 CREATE TABLE, ...); `None` when the
    /// statement returned rows instead.
    pub op_type: Option<u8>,
    /// Rows inserted or updated (rows returned, for a query).
    pub rows: u64,
}

impl<'c> Query<'c> {
    pub(crate) fn new(client: &'c Client, sql: String) -> Query<'c> {
        Query {
            client,
            sql,
            params: Vec::new(),
            credit: 0,
            reset_dictionary: false,
        }
    }

    /// Adds the next positional parameter (`$1`, then `$2`, ...).
    pub fn bind(mut self, param: impl Into<Param>) -> Self {
        self.params.push(param.into());
        self
    }

    /// Streams with credit flow control: the server sends at most about
    /// `bytes` of result frames ahead of what this client has consumed
    /// (at least one batch at a time). 0, the default, leaves only TCP's
    /// back-pressure.
    pub fn credit(mut self, bytes: u64) -> Self {
        // Servers keep the budget as a signed 64-bit number.
        self.credit = bytes.min(i64::MAX.unsigned_abs());
        self
    }

    /// Asks the server to clear the connection's symbol dictionary first
    /// (for servers that read query flags; others ignore it).
    pub fn reset_dictionary(mut self) -> Self {
        self.reset_dictionary = true;
        self
    }

    /// Runs the statement and returns its result stream, once the first
    /// batch (which fixes the schema) or the statement's end has arrived.
    /// This blocks (borrowing a connection, sending, reading the first
    /// batch); on an async runtime call it where blocking is allowed, then
    /// use [`QueryStream::into_async`].
    pub fn fetch(self) -> Result<QueryStream> {
        let reader = self.client.reader()?;
        QueryStream::start(reader, &self)
    }

    /// Runs a statement for its effect (DDL, INSERT, UPDATE): what it did.
    /// A query's rows are read and counted.
    pub fn execute(self) -> Result<Executed> {
        let mut stream = self.fetch()?;
        if let Some(done) = stream.executed {
            return Ok(done);
        }
        let mut rows = 0u64;
        while let Some(batch) = stream.next_batch()? {
            rows += batch.num_rows() as u64;
        }
        Ok(Executed {
            op_type: None,
            rows,
        })
    }
}

/// Where a stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StreamState {
    /// More batches may come.
    Streaming,
    /// The terminator arrived (or the stream failed): no more batches.
    Ended,
}

/// A query's result, batch by batch (see the module docs). Also an
/// Arrow [`RecordBatchReader`]; its errors wrap [`ClientError`] in
/// `ArrowError::ExternalError`.
pub struct QueryStream {
    reader: Reader,
    request_id: i64,
    schema: Option<ResultSchema>,
    /// Batches read but not returned yet (batch 0 and the look-ahead for
    /// array ranks, read by [`QueryStream::start`]), with wire lengths.
    pending: VecDeque<(RecordBatch, usize)>,
    /// Whether a batch was returned (the schema is then fixed).
    delivered: bool,
    /// The last batch's sequence number.
    last_seq: Option<u64>,
    state: StreamState,
    /// The credit window (0: none).
    window: u64,
    /// Bytes consumed since the last CREDIT.
    consumed: u64,
    rows: u64,
    /// For a statement without rows.
    executed: Option<Executed>,
    empty_schema: SchemaRef,
}

impl std::fmt::Debug for QueryStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryStream")
            .field("request_id", &self.request_id)
            .field("state", &self.state)
            .field("rows", &self.rows)
            .finish()
    }
}

impl QueryStream {
    fn start(mut reader: Reader, query: &Query<'_>) -> Result<QueryStream> {
        let conn = reader.conn();
        let flags = (query.reset_dictionary && conn.server().capabilities & CAP_QUERY_FLAGS != 0)
            .then_some(QueryFlags {
                bits: RESET_DICT,
                timeout_ms: None,
            });
        let request = QueryRequest {
            request_id: 0,
            sql: query.sql.as_str().into(),
            initial_credit: query.credit,
            binds: query.params.iter().map(Param::as_bind).collect(),
            flags,
        };
        let request_id = conn.start(request)?;
        let mut stream = QueryStream {
            reader,
            request_id,
            schema: None,
            pending: VecDeque::new(),
            delivered: false,
            last_seq: None,
            state: StreamState::Streaming,
            window: query.credit,
            consumed: 0,
            rows: 0,
            executed: None,
            empty_schema: std::sync::Arc::new(Schema::empty()),
        };
        if let Some(first) = stream.read_batch()? {
            stream.pending.push_back(first);
        }
        while stream.pending.len() < RANK_LOOKAHEAD
            && stream
                .schema
                .as_ref()
                .is_some_and(ResultSchema::is_tentative)
        {
            match stream.read_batch()? {
                Some(batch) => stream.pending.push_back(batch),
                None => break,
            }
        }
        Ok(stream)
    }

    /// The result's Arrow schema (empty for a statement without rows).
    pub fn schema(&self) -> SchemaRef {
        self.schema
            .as_ref()
            .map_or_else(|| self.empty_schema.clone(), |s| s.schema().clone())
    }

    /// What the statement did, when it returned no rows (`EXEC_DONE`).
    pub fn executed(&self) -> Option<Executed> {
        self.executed
    }

    /// What the server said about itself (SERVER_INFO).
    pub fn server(&self) -> &ServerDescription {
        self.reader.server()
    }

    /// The next batch, `None` after the last.
    pub fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        let next = match self.pending.pop_front() {
            Some(batch) => Some(batch),
            None => self.read_batch()?,
        };
        let Some((batch, wire_len)) = next else {
            return Ok(None);
        };
        self.delivered = true;
        self.consumed += wire_len as u64;
        if self.window > 0
            && self.state == StreamState::Streaming
            && self.consumed >= self.window.div_ceil(2)
        {
            let grant = std::mem::take(&mut self.consumed);
            if let Err(e) = self.reader.conn().credit(self.request_id, grant) {
                self.state = StreamState::Ended;
                return Err(e);
            }
        }
        Ok(Some(batch))
    }

    /// Reads frames up to the next batch (or the end), with its wire
    /// length.
    fn read_batch(&mut self) -> Result<Option<(RecordBatch, usize)>> {
        loop {
            if self.state == StreamState::Ended {
                return Ok(None);
            }
            match self.read_one() {
                Ok(Some(batch)) => return Ok(Some(batch)),
                Ok(None) => {}
                Err(e) => {
                    self.state = StreamState::Ended;
                    return Err(e);
                }
            }
        }
    }

    /// Reads one frame: a batch, or `None` for anything else.
    fn read_one(&mut self) -> Result<Option<(RecordBatch, usize)>> {
        let conn = self.reader.conn();
        let timeout = conn.request_timeout();
        let endpoint = conn.endpoint().clone();
        let received = conn.next_message(timeout)?;
        let wire_len = received.wire_len;
        // A fault of the server's data: the connection is closed.
        let mut fault = None;
        match received.message {
            ServerMessage::ResultBatch(batch) => {
                self.last_seq = Some(batch.batch_seq);
                if self.schema.is_none() {
                    match ResultSchema::from_first_batch(&batch) {
                        Ok(schema) => self.schema = Some(schema),
                        Err(e) => fault = Some(format!("query {}: {e}", self.request_id)),
                    }
                }
                // Before any batch is returned, array columns typed by
                // NULLs take the rank of the first values.
                if !self.delivered
                    && fault.is_none()
                    && let Some(schema) = self.schema.as_mut()
                {
                    let settled = schema.settle(&batch).and_then(|changed| {
                        if changed {
                            for (rb, _) in &mut self.pending {
                                *rb = schema.retype(rb)?;
                            }
                        }
                        Ok(())
                    });
                    if let Err(e) = settled {
                        fault = Some(format!("query {}: {e}", self.request_id));
                    }
                }
                if let Some(schema) = self.schema.as_ref().filter(|_| fault.is_none()) {
                    match schema.to_record_batch(&batch, received.dictionary, received.keys) {
                        Ok(rb) => {
                            self.rows += rb.num_rows() as u64;
                            return Ok(Some((rb, wire_len)));
                        }
                        Err(e) => {
                            fault = Some(format!(
                                "query {} batch {}: {e}",
                                self.request_id, batch.batch_seq
                            ));
                        }
                    }
                }
            }
            ServerMessage::ResultEnd {
                total_rows,
                final_seq,
                ..
            } => {
                self.state = StreamState::Ended;
                if total_rows != 0 && total_rows != self.rows {
                    fault = Some(format!(
                        "query {} ended with {total_rows} rows, {} arrived",
                        self.request_id, self.rows
                    ));
                } else if self.last_seq.is_some_and(|seq| seq != final_seq) {
                    fault = Some(format!(
                        "query {} ended at batch {final_seq}, the last that arrived was {}",
                        self.request_id,
                        self.last_seq.unwrap_or_default()
                    ));
                }
            }
            ServerMessage::ExecDone {
                op_type,
                rows_affected,
                ..
            } => {
                self.state = StreamState::Ended;
                self.executed = Some(Executed {
                    op_type: Some(op_type),
                    rows: rows_affected,
                });
            }
            ServerMessage::QueryError {
                status, message, ..
            } => {
                return Err(ClientError::Query {
                    request_id: self.request_id,
                    status: status.0,
                    message: message.into_owned(),
                });
            }
            // The decoder cleared the dictionary.
            ServerMessage::CacheReset { .. } => {}
            ServerMessage::ServerInfo(_) => unreachable!("refused by next_message"),
        }
        match fault {
            None => Ok(None),
            Some(reason) => {
                self.reader.conn().set_broken();
                Err(ClientError::Protocol { endpoint, reason })
            }
        }
    }

    /// Ends a stream that has not reached its terminator: CANCEL, then
    /// read to the terminator within the drain limit, or give the
    /// connection up.
    fn cancel(&mut self) {
        let conn = self.reader.conn();
        if conn.state()
            != (ConnectionState::Streaming {
                request_id: self.request_id,
            })
        {
            return;
        }
        let deadline = Instant::now() + DRAIN_LIMIT.min(conn.request_timeout());
        let mut sent = conn.cancel(self.request_id);
        if sent.is_ok() && self.window > 0 {
            // A server paused for credit must reach a batch boundary to
            // see the CANCEL.
            sent = conn.credit(self.request_id, CANCEL_CREDIT);
        }
        if sent.is_err() {
            return; // broken by the failed send
        }
        while matches!(conn.state(), ConnectionState::Streaming { .. }) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                conn.set_broken();
                return;
            }
            if conn.next_message(left).is_err() {
                return; // broken
            }
        }
    }
}

/// Captures the frames of `sql`'s result as they come from the server
/// (for [`crate::bench`]).
pub(crate) fn capture_result_frames(conf: &crate::ClientConf, sql: &str) -> Result<Vec<Vec<u8>>> {
    let mut conn = QueryConnection::connect(conf)?;
    let request = QueryRequest {
        request_id: 0,
        sql: sql.into(),
        initial_credit: 0,
        binds: Vec::new(),
        flags: None,
    };
    conn.start(request)?;
    let mut frames = Vec::new();
    loop {
        let timeout = conn.request_timeout();
        let done = match conn.next_message(timeout)?.message {
            ServerMessage::QueryError { message, .. } => {
                return Err(ClientError::Usage(format!("the capture failed: {message}")));
            }
            ServerMessage::ResultEnd { .. } | ServerMessage::ExecDone { .. } => true,
            _ => false,
        };
        frames.push(conn.last_frame().to_vec());
        if done {
            return Ok(frames);
        }
    }
}

/// Decodes captured result frames into record batches as a stream does,
/// without a socket (for [`crate::bench`]); returns the rows.
pub(crate) fn decode_result_frames(frames: &[Vec<u8>]) -> std::result::Result<usize, String> {
    let mut decoder = quiver_qwp::EgressDecoder::new(quiver_qwp::Limits::egress_client());
    let mut scratch = Vec::new();
    let mut keys = SymbolKeys::default();
    let mut schema: Option<ResultSchema> = None;
    let mut rows = 0;
    for frame in frames {
        let message = decoder
            .decode(frame, &mut scratch)
            .map_err(|e| e.to_string())?;
        if let ServerMessage::ResultBatch(batch) = message {
            if schema.is_none() {
                schema = Some(ResultSchema::from_first_batch(&batch).map_err(|e| e.to_string())?);
            }
            let schema = schema.as_ref().expect("set above");
            let rb = schema
                .to_record_batch(&batch, decoder.dictionary(), &mut keys)
                .map_err(|e| e.to_string())?;
            rows += std::hint::black_box(rb).num_rows();
        }
    }
    Ok(rows)
}

impl Drop for QueryStream {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl Iterator for QueryStream {
    type Item = std::result::Result<RecordBatch, ArrowError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_batch()
            .map_err(|e| ArrowError::ExternalError(Box::new(e)))
            .transpose()
    }
}

impl RecordBatchReader for QueryStream {
    fn schema(&self) -> SchemaRef {
        QueryStream::schema(self)
    }
}
