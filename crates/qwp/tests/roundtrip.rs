//! Property tests: random schemas over every type code, random NULLs in both
//! null modes, 0..N rows; encode → decode gives back every row, and
//! re-encoding the decoded message gives the same bytes. For ingress
//! messages, egress result batches (with Gorilla, delta dictionaries and
//! zstd) and egress requests with every bind type.

use std::borrow::Cow;

use proptest::prelude::*;
use quiver_qwp::egress::response::role;
use quiver_qwp::ingress::Column;
use quiver_qwp::{
    BatchEncoding, Bind, ClientMessage, ColumnBuilder, ColumnData, ColumnDef, EgressDecoder,
    IngressDecoder, IngressMessage, Limits, NullEncoding, QueryFlags, QueryRequest, ResultBatch,
    ServerInfo, ServerMessage, StatusCode, StringList, SymbolDelta, TableBlock, TypeCode, Value,
    decode_client_message, encode_client_message, encode_ingress_message, encode_server_message,
};

/// Symbols every generated dictionary has.
const DICT: u32 = 5;

fn leak_str(s: String) -> &'static str {
    Box::leak(s.into_boxed_str())
}

fn leak_bytes(b: Vec<u8>) -> &'static [u8] {
    Box::leak(b.into_boxed_slice())
}

/// A column-wide parameter: GEOHASH precision or DECIMAL scale.
fn column_arg(t: TypeCode) -> BoxedStrategy<u8> {
    match t {
        TypeCode::Geohash => (1u8..=60).boxed(),
        TypeCode::Decimal64 => (0u8..=18).boxed(),
        TypeCode::Decimal128 => (0u8..=38).boxed(),
        TypeCode::Decimal256 => (0u8..=76).boxed(),
        _ => Just(0).boxed(),
    }
}

fn text() -> impl Strategy<Value = &'static str> {
    prop::collection::vec(any::<char>(), 0..8).prop_map(|c| leak_str(c.into_iter().collect()))
}

fn array(rank: std::ops::Range<usize>) -> impl Strategy<Value = (Vec<u32>, usize)> {
    prop::collection::vec(0u32..4, rank).prop_map(|shape| {
        let n = shape.iter().product::<u32>() as usize;
        (shape, n)
    })
}

fn value(t: TypeCode, arg: u8) -> BoxedStrategy<Value<'static>> {
    match t {
        TypeCode::Boolean => any::<bool>().prop_map(Value::Boolean).boxed(),
        TypeCode::Byte => any::<i8>().prop_map(Value::Byte).boxed(),
        TypeCode::Short => any::<i16>().prop_map(Value::Short).boxed(),
        TypeCode::Int => any::<i32>().prop_map(Value::Int).boxed(),
        TypeCode::Long => any::<i64>().prop_map(Value::Long).boxed(),
        TypeCode::Float => any::<u32>()
            .prop_map(|b| Value::Float(f32::from_bits(b)))
            .boxed(),
        TypeCode::Double => any::<u64>()
            .prop_map(|b| Value::Double(f64::from_bits(b)))
            .boxed(),
        TypeCode::Symbol => (0..DICT).prop_map(Value::Symbol).boxed(),
        TypeCode::Timestamp => any::<i64>().prop_map(Value::Timestamp).boxed(),
        TypeCode::TimestampNanos => any::<i64>().prop_map(Value::TimestampNanos).boxed(),
        TypeCode::Date => any::<i64>().prop_map(Value::Date).boxed(),
        TypeCode::Uuid => any::<(u64, u64)>()
            .prop_map(|(lo, hi)| Value::Uuid { lo, hi })
            .boxed(),
        TypeCode::Long256 => any::<[u64; 4]>().prop_map(Value::Long256).boxed(),
        TypeCode::Geohash => {
            let bytes = u32::from(arg).div_ceil(8);
            any::<u64>()
                .prop_map(move |v| Value::Geohash {
                    precision_bits: arg,
                    value: v & (u64::MAX >> (64 - 8 * bytes)),
                })
                .boxed()
        }
        TypeCode::Varchar => text().prop_map(Value::Varchar).boxed(),
        TypeCode::Binary => prop::collection::vec(any::<u8>(), 0..10)
            .prop_map(|b| Value::Binary(leak_bytes(b)))
            .boxed(),
        TypeCode::Decimal64 => any::<i64>()
            .prop_map(move |unscaled| Value::Decimal64 {
                scale: arg,
                unscaled,
            })
            .boxed(),
        TypeCode::Decimal128 => any::<i128>()
            .prop_map(move |unscaled| Value::Decimal128 {
                scale: arg,
                unscaled,
            })
            .boxed(),
        TypeCode::Decimal256 => any::<[u8; 32]>()
            .prop_map(move |unscaled| Value::Decimal256 {
                scale: arg,
                unscaled,
            })
            .boxed(),
        TypeCode::Char => any::<u16>().prop_map(Value::Char).boxed(),
        TypeCode::Ipv4 => any::<u32>().prop_map(Value::Ipv4).boxed(),
        TypeCode::DoubleArray => array(1..4)
            .prop_flat_map(|(shape, n)| {
                prop::collection::vec(any::<u64>().prop_map(f64::from_bits), n).prop_map(
                    move |values| Value::DoubleArray {
                        shape: shape.clone(),
                        values,
                    },
                )
            })
            .boxed(),
        TypeCode::LongArray => array(1..4)
            .prop_flat_map(|(shape, n)| {
                prop::collection::vec(any::<i64>(), n).prop_map(move |values| Value::LongArray {
                    shape: shape.clone(),
                    values,
                })
            })
            .boxed(),
    }
}

/// A generated column: type, the logical rows, and how NULLs go on the wire.
#[derive(Debug, Clone)]
struct ModelColumn {
    type_code: TypeCode,
    arg: u8,
    rows: Vec<Option<Value<'static>>>,
    nulls: NullEncoding,
    /// Entries of a per-column symbol dictionary.
    local_size: u32,
}

impl ModelColumn {
    /// Egress per-column symbol dictionaries may not be longer than the
    /// batch: keep only the ids used, renumbered in order of appearance.
    fn compact_symbols(mut self) -> Self {
        if self.type_code == TypeCode::Symbol {
            let mut seen: Vec<u32> = Vec::new();
            for r in self.rows.iter_mut() {
                if let Some(Value::Symbol(id)) = r {
                    let index = seen.iter().position(|s| s == id).unwrap_or_else(|| {
                        seen.push(*id);
                        seen.len() - 1
                    });
                    *id = index as u32;
                }
            }
            self.local_size = seen.len() as u32;
        }
        self
    }

    fn build(&self, local_dictionary: bool) -> ColumnData<'static> {
        let mut b = ColumnBuilder::new(self.type_code);
        if self.type_code == TypeCode::Geohash {
            b = b.geohash_precision(self.arg);
        }
        if self.type_code.max_decimal_scale().is_some() {
            b = b.decimal_scale(self.arg);
        }
        for r in &self.rows {
            b.push(r.as_ref()).unwrap();
        }
        if self.type_code == TypeCode::Symbol && local_dictionary {
            b.finish_local_symbols(StringList::from_strs(
                (0..self.local_size).map(|i| format!("s{i}")),
            ))
            .unwrap()
        } else {
            b.finish(self.nulls)
        }
    }

    /// What a decoder must return: NULL rows stay NULL, except in sentinel
    /// mode, where the types that have a sentinel carry it.
    fn expected(&self) -> Vec<Option<Value<'static>>> {
        let sentinel = match self.type_code {
            TypeCode::Boolean => Some(Value::Boolean(false)),
            TypeCode::Byte => Some(Value::Byte(0)),
            TypeCode::Short => Some(Value::Short(0)),
            TypeCode::Char => Some(Value::Char(0)),
            TypeCode::Int => Some(Value::Int(i32::MIN)),
            TypeCode::Long => Some(Value::Long(i64::MIN)),
            TypeCode::Float => Some(Value::Float(f32::NAN)),
            TypeCode::Double => Some(Value::Double(f64::NAN)),
            _ => None,
        }
        .filter(|_| self.nulls == NullEncoding::Sentinel);
        self.rows
            .iter()
            .map(|r| match r {
                None => sentinel.clone(),
                some => some.clone(),
            })
            .collect()
    }
}

fn model_column(rows: usize, types: Vec<TypeCode>) -> impl Strategy<Value = ModelColumn> {
    (prop::sample::select(types), prop::bool::ANY).prop_flat_map(move |(t, sentinel)| {
        column_arg(t).prop_flat_map(move |arg| {
            let nulls = if sentinel {
                NullEncoding::Sentinel
            } else {
                NullEncoding::Bitmap
            };
            prop::collection::vec(prop::option::weighted(0.8, value(t, arg)), rows).prop_map(
                move |rows| ModelColumn {
                    type_code: t,
                    arg,
                    rows,
                    nulls,
                    local_size: DICT,
                },
            )
        })
    })
}

fn assert_rows_eq(got: &[Option<Value<'_>>], want: &[Option<Value<'_>>], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: row count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let same = match (g, w) {
            (Some(g), Some(w)) => g.bit_eq(w),
            (None, None) => true,
            _ => false,
        };
        assert!(same, "{what} row {i}: got {g:?}, want {w:?}");
    }
}

#[derive(Debug, Clone)]
struct ModelTable {
    name: String,
    rows: u32,
    columns: Vec<ModelColumn>,
    /// Designated timestamp values (TIMESTAMP or TIMESTAMP_NANOS).
    designated: Option<(TypeCode, Vec<i64>)>,
}

fn model_table(index: usize) -> impl Strategy<Value = ModelTable> {
    (0usize..40).prop_flat_map(move |rows| {
        (
            prop::collection::vec(model_column(rows, TypeCode::ALL.to_vec()), 0..7),
            prop::option::of((
                prop::sample::select(vec![TypeCode::Timestamp, TypeCode::TimestampNanos]),
                // Gorilla-friendly sometimes: a base plus small steps.
                prop::bool::ANY.prop_flat_map(move |regular| {
                    if regular {
                        (any::<i32>(), 0i64..3)
                            .prop_map(move |(base, step)| {
                                (0..rows as i64)
                                    .map(|i| i64::from(base) + i * 1000 * step)
                                    .collect()
                            })
                            .boxed()
                    } else {
                        prop::collection::vec(any::<i64>(), rows).boxed()
                    }
                }),
            )),
        )
            .prop_map(move |(columns, designated)| ModelTable {
                name: format!("t{index}_é"),
                rows: rows as u32,
                columns,
                designated,
            })
    })
}

fn build_message(
    tables: &[ModelTable],
    delta: bool,
    gorilla: bool,
    defer: bool,
) -> IngressMessage<'static> {
    IngressMessage {
        defer_commit: defer,
        gorilla,
        symbols: delta.then(|| SymbolDelta {
            start: 0,
            entries: StringList::from_strs((0..DICT).map(|i| format!("sym{i}"))),
        }),
        tables: tables
            .iter()
            .map(|t| {
                let mut columns: Vec<Column<'static>> = t
                    .columns
                    .iter()
                    .enumerate()
                    .map(|(i, c)| Column {
                        name: Cow::Owned(format!("c{i}_{}", c.type_code.name())),
                        data: c.build(!delta),
                    })
                    .collect();
                if let Some((tc, values)) = &t.designated {
                    let mut b = ColumnBuilder::new(*tc);
                    for v in values {
                        let v = if *tc == TypeCode::Timestamp {
                            Value::Timestamp(*v)
                        } else {
                            Value::TimestampNanos(*v)
                        };
                        b.push(Some(&v)).unwrap();
                    }
                    columns.push(Column {
                        name: Cow::Borrowed(""),
                        data: b.finish(NullEncoding::Bitmap),
                    });
                }
                TableBlock {
                    name: Cow::Owned(t.name.clone()),
                    row_count: t.rows,
                    columns,
                }
            })
            .collect(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn ingress_round_trip(
        tables in (0usize..4).prop_flat_map(|n| (0..n).map(model_table).collect::<Vec<_>>()),
        delta in any::<bool>(),
        gorilla in any::<bool>(),
        defer in any::<bool>(),
    ) {
        let message = build_message(&tables, delta, gorilla, defer);
        let mut frame = Vec::new();
        encode_ingress_message(&message, &mut frame).unwrap();

        let mut decoder = IngressDecoder::new(Limits::default());
        let (decoded, _) = decoder.decode(&frame).unwrap();
        prop_assert_eq!(decoded.defer_commit, defer);
        prop_assert_eq!(decoded.tables.len(), tables.len());
        for (model, got) in tables.iter().zip(&decoded.tables) {
            prop_assert_eq!(&got.name, &model.name);
            prop_assert_eq!(got.row_count, model.rows);
            for (i, c) in model.columns.iter().enumerate() {
                let col = &got.columns[i];
                prop_assert_eq!(col.data.type_code(), c.type_code);
                assert_rows_eq(&col.data.rows(), &c.expected(), &col.name);
            }
            if let Some((tc, values)) = &model.designated {
                let ts = got.designated_timestamp().expect("designated timestamp");
                prop_assert_eq!(ts.data.type_code(), *tc);
                let want: Vec<_> = values.iter().map(|v| Some(if *tc == TypeCode::Timestamp { Value::Timestamp(*v) } else { Value::TimestampNanos(*v) })).collect();
                assert_rows_eq(&ts.data.rows(), &want, "designated");
            }
        }
        if delta {
            prop_assert_eq!(decoder.dictionary().len(), u64::from(DICT));
        }
        // Canonical: decode → encode is the identity on our own frames.
        let mut again = Vec::new();
        encode_ingress_message(&decoded, &mut again).unwrap();
        prop_assert_eq!(again, frame);
    }
}

/// Types an egress column may carry NULLs in (the client rejects a bitmap on
/// BOOLEAN, BYTE, SHORT and CHAR).
fn egress_column(rows: usize) -> impl Strategy<Value = ModelColumn> {
    model_column(rows, TypeCode::ALL.to_vec()).prop_map(|mut c| {
        if c.type_code.is_never_null() {
            c.nulls = NullEncoding::Sentinel;
        }
        c
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn egress_result_stream_round_trip(
        schema_rows in (1usize..6, 0usize..50, 0usize..50).prop_flat_map(|(ncols, r0, r1)| {
            (
                prop::collection::vec(egress_column(r0), ncols..=ncols),
                Just(r1),
            )
        }),
        gorilla in any::<bool>(),
        delta in any::<bool>(),
        zstd in any::<bool>(),
    ) {
        let (batch0_cols, r1) = schema_rows;
        let batch0_cols: Vec<ModelColumn> = batch0_cols
            .into_iter()
            .map(|c| if delta { c } else { c.compact_symbols() })
            .collect();
        // Batch 1 reuses batch 0's types with fresh rows (same column args).
        let runner_cols: Vec<ModelColumn> = batch0_cols
            .iter()
            .map(|c| {
                let c = ModelColumn { rows: c.rows.iter().cycle().take(r1).cloned().collect(), ..c.clone() };
                if delta { c } else { c.compact_symbols() }
            })
            .collect();
        let encoding = BatchEncoding { gorilla, zstd_level: zstd.then_some(1) };
        let batch = |seq: u64, cols: &[ModelColumn], start: u64| {
            let rows = cols.first().map_or(0, |c| c.rows.len()) as u32;
            ServerMessage::ResultBatch(ResultBatch {
                request_id: 77,
                batch_seq: seq,
                symbols: delta.then(|| SymbolDelta {
                    start,
                    entries: StringList::from_strs(if start == 0 { (0..DICT).map(|i| format!("s{i}")).collect::<Vec<_>>() } else { vec![] }),
                }),
                table_name: Cow::Borrowed(""),
                row_count: rows,
                schema: (seq == 0).then(|| {
                    cols.iter().enumerate().map(|(i, c)| ColumnDef { name: format!("col{i}").into(), type_code: c.type_code }).collect()
                }),
                columns: cols.iter().map(|c| c.build(!delta)).collect(),
            })
        };
        let frames: Vec<Vec<u8>> = [batch(0, &batch0_cols, 0), batch(1, &runner_cols, u64::from(DICT))]
            .iter()
            .map(|m| {
                let mut out = Vec::new();
                encode_server_message(m, &encoding, &mut out).unwrap();
                out
            })
            .collect();

        let mut decoder = EgressDecoder::new(Limits::egress_client());
        for (frame, model) in frames.iter().zip([&batch0_cols, &runner_cols]) {
            let mut scratch = Vec::new();
            let msg = decoder.decode(frame, &mut scratch).unwrap();
            let ServerMessage::ResultBatch(b) = &msg else { panic!("batch expected") };
            for (c, got) in model.iter().zip(&b.columns) {
                prop_assert_eq!(got.type_code(), c.type_code);
                assert_rows_eq(&got.rows(), &c.expected(), c.type_code.name());
            }
            // Canonical re-encode (same encoding choices) gives the same bytes.
            let mut again = Vec::new();
            encode_server_message(&msg, &encoding, &mut again).unwrap();
            prop_assert_eq!(&again, frame);
        }
        prop_assert_eq!(decoder.schema().map(|s| s.len()), Some(batch0_cols.len()));
    }

    #[test]
    fn egress_requests_and_binds_round_trip(
        binds in prop::collection::vec(
            prop::sample::select(TypeCode::ALL.iter().copied().filter(|t| !matches!(t, TypeCode::DoubleArray | TypeCode::LongArray | TypeCode::Symbol)).collect::<Vec<_>>())
                .prop_flat_map(|t| column_arg(t).prop_flat_map(move |arg| {
                    prop::option::weighted(0.8, value(t, arg)).prop_map(move |v| match v {
                        Some(v) => Bind::Value(v),
                        None => Bind::Null { type_code: t, arg },
                    })
                })),
            0..12,
        ),
        request_id in any::<i64>(),
        sql in text(),
        initial_credit in any::<u64>(),
        flags in prop::option::of((any::<u64>(), prop::option::of(1u64..u64::MAX))),
    ) {
        let request = ClientMessage::QueryRequest(QueryRequest {
            request_id,
            sql: sql.into(),
            initial_credit,
            binds,
            flags: flags.map(|(bits, timeout_ms)| QueryFlags {
                bits: (bits & !2) | if timeout_ms.is_some() { 2 } else { 0 },
                timeout_ms,
            }),
        });
        let mut frame = Vec::new();
        encode_client_message(&request, &mut frame).unwrap();
        let decoded = decode_client_message(&frame, &Limits::default()).unwrap();
        let (ClientMessage::QueryRequest(a), ClientMessage::QueryRequest(b)) = (&request, &decoded) else { panic!() };
        prop_assert_eq!((a.request_id, &a.sql, a.initial_credit, a.flags), (b.request_id, &b.sql, b.initial_credit, b.flags));
        prop_assert_eq!(a.binds.len(), b.binds.len());
        for (x, y) in a.binds.iter().zip(&b.binds) {
            let same = match (x, y) {
                (Bind::Value(x), Bind::Value(y)) => x.bit_eq(y),
                _ => x == y,
            };
            prop_assert!(same, "{:?} != {:?}", x, y);
        }
        let mut again = Vec::new();
        encode_client_message(&decoded, &mut again).unwrap();
        prop_assert_eq!(again, frame);
    }

    #[test]
    fn egress_control_frames_round_trip(
        request_id in any::<i64>(),
        n in any::<u64>(),
        m in any::<u64>(),
        op in any::<u8>(),
        text in text(),
        zone in prop::option::of(text()),
        status in prop::sample::select(vec![3u8, 5, 6, 8, 0x0A, 0x0B, 0x0E]),
    ) {
        let messages = [
            ServerMessage::ServerInfo(ServerInfo {
                role: role::PRIMARY,
                epoch: n,
                capabilities: 2 | u32::from(zone.is_some()),
                server_wall_ns: request_id,
                cluster_id: text.into(),
                node_id: "n".into(),
                zone_id: zone.map(Cow::Borrowed),
            }),
            ServerMessage::ResultEnd { request_id, final_seq: n, total_rows: m },
            ServerMessage::QueryError { request_id, status: StatusCode(status), message: text.into() },
            ServerMessage::ExecDone { request_id, op_type: op, rows_affected: n },
            ServerMessage::CacheReset { reset_mask: op },
        ];
        for message in messages {
            let mut frame = Vec::new();
            encode_server_message(&message, &BatchEncoding::default(), &mut frame).unwrap();
            let mut scratch = Vec::new();
            let decoded = EgressDecoder::new(Limits::egress_client()).decode(&frame, &mut scratch).unwrap();
            prop_assert_eq!(decoded, message);
        }
        for message in [ClientMessage::Cancel { request_id }, ClientMessage::Credit { request_id, additional_bytes: n }] {
            let mut frame = Vec::new();
            encode_client_message(&message, &mut frame).unwrap();
            prop_assert_eq!(decode_client_message(&frame, &Limits::default()).unwrap(), message);
        }
    }
}
