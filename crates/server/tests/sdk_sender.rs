//! Our SDK's column-major sender against the real server:
//!
//! - the same rows sent by `questdb-rs`'s column sender (unsliced buffers)
//!   and by ours (slices of longer buffers, validity bitmaps at a bit
//!   offset that is not a multiple of 8, LargeUtf8 offsets not from 0,
//!   16-bit symbol codes) must be stored identically, column by column;
//! - a chunk larger than the server's frame limit is split and still
//!   commits as one transaction;
//! - dropping a sender with unsynced rows commits them, or reports the
//!   failure to the error handler; `discard` drops them;
//! - a durable sync needs durable acks, and waits for them.

mod common;
mod stored;

use std::sync::{Arc, Mutex};

use common::{Lcg, TestServer};
use questdb::QuestDb;
use questdb::ingress::TimestampUnit;
use questdb::ingress::column_sender::{Chunk as TheirChunk, Validity};
use quiver_client::{Ack, Bits, Chunk, Client, ClientError, Codes, Offsets};
use stored::read_table;

const ROWS: usize = 53;
/// Our buffers hold this many extra rows before the ones sent.
const SKIP: usize = 3;

/// An LSB-first validity bitmap (1 = valid) of `valid`, from bit `offset`.
fn bitmap(valid: &[bool], offset: usize) -> Vec<u8> {
    let mut out = vec![0u8; (offset + valid.len()).div_ceil(8)];
    for (i, v) in valid.iter().enumerate() {
        if *v {
            out[(offset + i) / 8] |= 1 << ((offset + i) % 8);
        }
    }
    out
}

/// Every column's data for ROWS rows, plus SKIP leading rows for slicing.
struct Data {
    valid: Vec<bool>,
    i8s: Vec<i8>,
    i16s: Vec<i16>,
    i32s: Vec<i32>,
    i64s: Vec<i64>,
    f32s: Vec<f32>,
    f64s: Vec<f64>,
    bools: Vec<bool>,
    texts: Vec<Option<String>>,
    sym_codes: Vec<i16>,
    dictionary: Vec<&'static str>,
    uuids: Vec<[u8; 16]>,
    l256s: Vec<[u8; 32]>,
    ips: Vec<u32>,
    micros: Vec<i64>,
    nanos: Vec<i64>,
    dates: Vec<i64>,
    bins: Vec<Option<Vec<u8>>>,
    d64: Vec<i64>,
    d128: Vec<i128>,
    d256: Vec<[u8; 32]>,
    designated: Vec<i64>,
}

fn data() -> Data {
    let n = ROWS + SKIP;
    let mut r = Lcg(42);
    let mut next = move || r.next();
    let valid: Vec<bool> = (0..n).map(|_| next() % 4 != 0).collect();
    let dictionary = vec!["alpha", "beta", "gamma", "δέλτα", "epsilon"];
    Data {
        i8s: (0..n).map(|_| next() as i8).collect(),
        i16s: (0..n).map(|_| next() as i16).collect(),
        i32s: (0..n).map(|_| (next() as i32).max(i32::MIN + 1)).collect(),
        i64s: (0..n).map(|_| (next() as i64).max(i64::MIN + 1)).collect(),
        f32s: (0..n).map(|_| (next() % 10_000) as f32 / 7.0).collect(),
        f64s: (0..n).map(|_| (next() % 1_000_000) as f64 / 13.0).collect(),
        bools: (0..n).map(|_| next() % 2 == 0).collect(),
        texts: (0..n)
            .map(|i| (next() % 5 != 0).then(|| format!("v{i}-é-{}", next() % 100)))
            .collect(),
        sym_codes: (0..n).map(|_| (next() % 5) as i16).collect(),
        uuids: (0..n)
            .map(|_| {
                let mut b = [0u8; 16];
                b[..8].copy_from_slice(&next().to_le_bytes());
                b[8..].copy_from_slice(&next().to_le_bytes());
                b
            })
            .collect(),
        l256s: (0..n)
            .map(|_| {
                let mut b = [0u8; 32];
                for k in 0..4 {
                    b[k * 8..k * 8 + 8]
                        .copy_from_slice(&(next() & 0x7fff_ffff_ffff_ffff).to_le_bytes());
                }
                b
            })
            .collect(),
        ips: (0..n).map(|_| (next() as u32).max(1)).collect(),
        micros: (0..n)
            .map(|_| 1_600_000_000_000_000 + (next() % 1_000_000_000) as i64)
            .collect(),
        nanos: (0..n)
            .map(|_| 1_600_000_000_000_000_000 + (next() % 1_000_000_000) as i64)
            .collect(),
        dates: (0..n)
            .map(|_| 1_600_000_000_000 + (next() % 1_000_000) as i64)
            .collect(),
        bins: (0..n)
            .map(|_| (next() % 3 != 0).then(|| (0..next() % 7).map(|b| b as u8 ^ 0x5a).collect()))
            .collect(),
        d64: (0..n)
            .map(|_| (next() % 1_000_000) as i64 - 500_000)
            .collect(),
        d128: (0..n)
            .map(|_| i128::from(next()) * 1_000_003 - (1 << 60))
            .collect(),
        d256: (0..n)
            .map(|_| {
                let v = i128::from(next()) - (1 << 50);
                let mut b = [if v < 0 { 0xff } else { 0 }; 32];
                b[..16].copy_from_slice(&v.to_le_bytes());
                b
            })
            .collect(),
        designated: (0..n)
            .map(|i| 1_700_000_000_000_000_000 + i as i64 * 1_000)
            .collect(),
        valid,
        dictionary,
    }
}

/// Arrow Utf8/Binary layout of optional values (NULLs empty).
fn layout<T: AsRef<[u8]>>(values: &[Option<T>]) -> (Vec<i64>, Vec<u8>) {
    let mut offsets = vec![0i64];
    let mut bytes = Vec::new();
    for v in values {
        if let Some(v) = v {
            bytes.extend_from_slice(v.as_ref());
        }
        offsets.push(bytes.len() as i64);
    }
    (offsets, bytes)
}

#[test]
fn every_column_kind_is_stored_as_the_official_column_sender_stores_it() {
    let server = TestServer::start();
    let d = data();
    let sent = SKIP..SKIP + ROWS;

    // Theirs: offset-0 buffers of exactly the rows sent.
    let valid = bitmap(&d.valid[sent.clone()], 0);
    let text_valid = bitmap(
        &d.texts[sent.clone()]
            .iter()
            .map(Option::is_some)
            .collect::<Vec<_>>(),
        0,
    );
    let bin_valid = bitmap(
        &d.bins[sent.clone()]
            .iter()
            .map(Option::is_some)
            .collect::<Vec<_>>(),
        0,
    );
    let (t_off, t_bytes) = layout(&d.texts[sent.clone()]);
    let t_off32: Vec<i32> = t_off.iter().map(|&o| o as i32).collect();
    let (b_off, b_bytes) = layout(&d.bins[sent.clone()]);
    let b_off32: Vec<i32> = b_off.iter().map(|&o| o as i32).collect();
    let (dict_off, dict_bytes) = layout(&d.dictionary.iter().map(Some).collect::<Vec<_>>());
    let dict_off32: Vec<i32> = dict_off.iter().map(|&o| o as i32).collect();
    let codes32: Vec<i32> = d.sym_codes[sent.clone()]
        .iter()
        .map(|&c| i32::from(c))
        .collect();
    let bool_bits = bitmap(&d.bools[sent.clone()], 0);
    {
        let db = QuestDb::connect(&format!("ws::addr={};", server.addr())).unwrap();
        let mut sender = db.borrow_sender().unwrap();
        let v = Validity::from_bitmap(&valid, ROWS).unwrap();
        let tv = Validity::from_bitmap(&text_valid, ROWS).unwrap();
        let bv = Validity::from_bitmap(&bin_valid, ROWS).unwrap();
        let mut chunk = TheirChunk::new("theirs");
        chunk
            .column_i8("i8", &d.i8s[sent.clone()], Some(&v))
            .unwrap()
            .column_i16("i16", &d.i16s[sent.clone()], Some(&v))
            .unwrap()
            .column_i32("i32", &d.i32s[sent.clone()], Some(&v))
            .unwrap()
            .column_i64("i64", &d.i64s[sent.clone()], Some(&v))
            .unwrap()
            .column_f32("f32", &d.f32s[sent.clone()], Some(&v))
            .unwrap()
            .column_f64("f64", &d.f64s[sent.clone()], Some(&v))
            .unwrap()
            .column_f64("f64_dense", &d.f64s[sent.clone()], None)
            .unwrap()
            .column_bool("flag", &bool_bits, ROWS, None)
            .unwrap()
            .column_str("s", &t_off32, &t_bytes, Some(&tv))
            .unwrap()
            .symbol_i32("sym", &codes32, &dict_off32, &dict_bytes, Some(&v))
            .unwrap()
            .column_uuid("u", &d.uuids[sent.clone()], Some(&v))
            .unwrap()
            .column_long256("l256", &d.l256s[sent.clone()], Some(&v))
            .unwrap()
            .column_ipv4("ip", &d.ips[sent.clone()], Some(&v))
            .unwrap()
            .column_ts(
                "ts_us",
                &d.micros[sent.clone()],
                TimestampUnit::Micros,
                Some(&v),
            )
            .unwrap()
            .column_ts("ts_ns", &d.nanos[sent.clone()], TimestampUnit::Nanos, None)
            .unwrap()
            .column_date("dt", &d.dates[sent.clone()], Some(&v))
            .unwrap()
            .column_binary("bin", &b_off32, &b_bytes, Some(&bv))
            .unwrap()
            .column_decimal64("dec64", &d.d64[sent.clone()], 3, Some(&v))
            .unwrap()
            .column_decimal128("dec128", &d.d128[sent.clone()], 9, Some(&v))
            .unwrap()
            .column_decimal256("dec256", &d.d256[sent.clone()], 20, Some(&v))
            .unwrap()
            .at_nanos(&d.designated[sent.clone()])
            .unwrap();
        sender
            .flush_and_wait(&mut chunk, questdb::ingress::AckLevel::Ok)
            .unwrap();
    }

    // Ours: slices of the longer buffers; bitmaps from bit SKIP.
    let all_valid = bitmap(&d.valid, 0);
    let all_text_valid = bitmap(&d.texts.iter().map(Option::is_some).collect::<Vec<_>>(), 0);
    let all_bin_valid = bitmap(&d.bins.iter().map(Option::is_some).collect::<Vec<_>>(), 0);
    let (all_t_off, all_t_bytes) = layout(&d.texts);
    let (all_b_off, all_b_bytes) = layout(&d.bins);
    let all_b_off32: Vec<i32> = all_b_off.iter().map(|&o| o as i32).collect();
    let all_bools = bitmap(&d.bools, 0);
    let v = Some(Bits::with_offset(&all_valid, SKIP));
    let tv = Some(Bits::with_offset(&all_text_valid, SKIP));
    let bv = Some(Bits::with_offset(&all_bin_valid, SKIP));
    let client = Client::from_conf(&format!("ws::addr={};", server.addr())).unwrap();
    let mut sender = client.sender().unwrap();
    let mut chunk = Chunk::new("ours", ROWS).unwrap();
    chunk
        .i8("i8", &d.i8s[sent.clone()], v)
        .unwrap()
        .i16("i16", &d.i16s[sent.clone()], v)
        .unwrap()
        .i32("i32", &d.i32s[sent.clone()], v)
        .unwrap()
        .i64("i64", &d.i64s[sent.clone()], v)
        .unwrap()
        .f32("f32", &d.f32s[sent.clone()], v)
        .unwrap()
        .f64("f64", &d.f64s[sent.clone()], v)
        .unwrap()
        .f64("f64_dense", &d.f64s[sent.clone()], None)
        .unwrap()
        .bool("flag", Bits::with_offset(&all_bools, SKIP), None)
        .unwrap()
        .varchar(
            "s",
            Offsets::I64(&all_t_off[SKIP..=SKIP + ROWS]),
            &all_t_bytes,
            tv,
        )
        .unwrap()
        .symbol(
            "sym",
            Codes::I16(&d.sym_codes[sent.clone()]),
            Offsets::I64(&dict_off),
            &dict_bytes,
            v,
        )
        .unwrap()
        .uuid("u", &d.uuids[sent.clone()], v)
        .unwrap()
        .long256("l256", &d.l256s[sent.clone()], v)
        .unwrap()
        .ipv4("ip", &d.ips[sent.clone()], v)
        .unwrap()
        .timestamp_micros("ts_us", &d.micros[sent.clone()], v)
        .unwrap()
        .timestamp_nanos("ts_ns", &d.nanos[sent.clone()], None)
        .unwrap()
        .date_millis("dt", &d.dates[sent.clone()], v)
        .unwrap()
        .binary(
            "bin",
            Offsets::I32(&all_b_off32[SKIP..=SKIP + ROWS]),
            &all_b_bytes,
            bv,
        )
        .unwrap()
        .decimal64("dec64", 3, &d.d64[sent.clone()], v)
        .unwrap()
        .decimal128("dec128", 9, &d.d128[sent.clone()], v)
        .unwrap()
        .decimal256("dec256", 20, &d.d256[sent.clone()], v)
        .unwrap()
        .at_nanos(&d.designated[sent.clone()])
        .unwrap();
    sender.flush(&chunk).unwrap();
    assert_eq!(sender.pending_rows(), ROWS as u64);
    sender.sync(Ack::Ok).unwrap();
    assert_eq!(sender.pending_rows(), 0);

    let db = server.storage();
    let theirs = read_table(&db, "theirs");
    let ours = read_table(&db, "ours");
    assert_eq!(ours.rows(), ROWS);
    assert_eq!(theirs.rows(), ROWS);
    let names: Vec<String> = theirs
        .schema
        .columns
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let ours_names: Vec<String> = ours.schema.columns.iter().map(|c| c.name.clone()).collect();
    assert_eq!(ours_names, names);
    for name in &names {
        assert_eq!(ours.column_type(name), theirs.column_type(name), "{name}");
        let (a, b) = (ours.col(name), theirs.col(name));
        assert!(
            a.as_ref() == b.as_ref(),
            "{name}:\nours   {a:?}\ntheirs {b:?}"
        );
    }
    // And the values are the ones meant (not merely equal to theirs).
    let want_i64: Vec<Option<i64>> = sent
        .clone()
        .map(|i| d.valid[i].then_some(d.i64s[i]))
        .collect();
    assert_eq!(ours.ints("i64"), want_i64);
    let want_s: Vec<Option<String>> = d.texts[sent.clone()].to_vec();
    assert_eq!(ours.strs("s"), want_s);
    let want_sym: Vec<Option<String>> = sent
        .clone()
        .map(|i| d.valid[i].then(|| d.dictionary[d.sym_codes[i] as usize].to_owned()))
        .collect();
    assert_eq!(ours.syms("sym"), want_sym);
}

#[test]
fn a_chunk_over_the_frame_limit_is_split_and_commits_as_one_transaction() {
    let server = TestServer::start();
    // 600,000 rows of ~40 bytes: over the 16 MiB frame limit.
    let rows = 600_000usize;
    let texts: Vec<Option<String>> = (0..rows)
        .map(|i| Some(format!("{i:0>20}-{:0>10}", i * 7)))
        .collect();
    let (offsets, bytes) = layout(&texts);
    let ts: Vec<i64> = (0..rows as i64)
        .map(|i| 1_700_000_000_000_000 + i)
        .collect();
    let longs: Vec<i64> = (0..rows as i64).collect();
    let client = Client::from_conf(&format!("ws::addr={};", server.addr())).unwrap();
    let mut sender = client.sender().unwrap();
    let mut chunk = Chunk::new("big", rows).unwrap();
    chunk
        .varchar("s", Offsets::I64(&offsets), &bytes, None)
        .unwrap()
        .i64("n", &longs, None)
        .unwrap()
        .at_micros(&ts)
        .unwrap();
    sender.flush(&chunk).unwrap();
    assert!(sender.frames_sent() >= 2, "{} frames", sender.frames_sent());
    // Deferred: nothing visible before the sync.
    assert_eq!(
        server
            .storage()
            .snapshot("big")
            .map_or(0, |s| s.row_count()),
        0
    );
    sender.sync(Ack::Ok).unwrap();
    let stored = read_table(&server.storage(), "big");
    assert_eq!(stored.rows(), rows);
    assert_eq!(
        stored.ints("n"),
        longs.iter().map(|&v| Some(v)).collect::<Vec<_>>()
    );
}

#[test]
fn rows_far_larger_than_the_mean_are_split_again_and_a_row_too_large_aborts_the_chunk() {
    let server = TestServer::start();
    let client = Client::from_conf(&format!("ws::addr={};", server.addr())).unwrap();
    // 200 rows of 100 KB first, then 200,000 empty ones: cut by the mean
    // row size, the first frame would hold 20 MB, over the 16 MiB limit.
    let rows = 200_200usize;
    let big = "x".repeat(100_000);
    let texts: Vec<Option<&str>> = (0..rows)
        .map(|i| Some(if i < 200 { big.as_str() } else { "" }))
        .collect();
    let (offsets, bytes) = layout(&texts);
    let ts: Vec<i64> = (0..rows as i64)
        .map(|i| 1_700_000_000_000_000 + i)
        .collect();
    let mut chunk = Chunk::new("skewed", rows).unwrap();
    chunk
        .varchar("s", Offsets::I64(&offsets), &bytes, None)
        .unwrap()
        .at_micros(&ts)
        .unwrap();
    let mut sender = client.sender().unwrap();
    sender.flush(&chunk).unwrap();
    sender.sync(Ack::Ok).unwrap();
    let stored = read_table(&server.storage(), "skewed");
    assert_eq!(stored.rows(), rows);
    assert_eq!(stored.strs("s")[199].as_deref(), Some(big.as_str()));

    // A row larger than any frame, after rows that were already sent:
    // the whole chunk (and what was flushed before it) is rolled back.
    let huge = "y".repeat(17 << 20);
    let texts: Vec<Option<&str>> = (0..100_000)
        .map(|i| Some(if i == 99_999 { huge.as_str() } else { "a" }))
        .collect();
    let (offsets, bytes) = layout(&texts);
    let ts: Vec<i64> = (0..100_000).map(|i| 1_700_000_000_000_000 + i).collect();
    let mut chunk = Chunk::new("aborted", 100_000).unwrap();
    chunk
        .varchar("s", Offsets::I64(&offsets), &bytes, None)
        .unwrap()
        .at_micros(&ts)
        .unwrap();
    let mut sender = client.sender().unwrap();
    match sender.flush(&chunk) {
        Err(ClientError::ChunkAborted { rows, cause }) => {
            assert!(rows > 0 && rows < 100_000, "{rows}");
            assert!(
                matches!(*cause, ClientError::FrameTooLarge { .. }),
                "{cause}"
            );
        }
        other => panic!("expected ChunkAborted, got {other:?}"),
    }
    assert!(matches!(sender.sync(Ack::Ok), Err(ClientError::Usage(_))));
    drop(sender);
    // A fresh sender commits something else; nothing of the aborted chunk.
    let mut sender = client.sender().unwrap();
    let one = [1i64];
    let one_ts = [1_700_000_000_000_000i64];
    let mut c = Chunk::new("aborted", 1).unwrap();
    c.i64("n", &one, None).unwrap().at_micros(&one_ts).unwrap();
    sender.flush(&c).unwrap();
    sender.sync(Ack::Ok).unwrap();
    assert_eq!(read_table(&server.storage(), "aborted").rows(), 1);
}

#[test]
fn dropping_a_sender_commits_its_rows_or_reports_why_not_and_discard_drops_them() {
    let mut server = TestServer::start();
    let longs = [1i64, 2, 3];
    let ts = [
        1_700_000_000_000_000i64,
        1_700_000_000_000_001,
        1_700_000_000_000_002,
    ];
    let mut chunk = Chunk::new("t", 3).unwrap();
    chunk
        .i64("v", &longs, None)
        .unwrap()
        .at_micros(&ts)
        .unwrap();
    let client =
        Client::from_conf(&format!("ws::addr={};sender_pool_min=0;", server.addr())).unwrap();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&errors);
    client.on_error(move |e| sink.lock().unwrap().push(e.to_string()));

    // Dropped after a flush: committed.
    let mut sender = client.sender().unwrap();
    sender.flush(&chunk).unwrap();
    drop(sender);
    assert_eq!(read_table(&server.storage(), "t").rows(), 3);

    // Discarded: rolled back.
    let mut sender = client.sender().unwrap();
    sender.flush(&chunk).unwrap();
    sender.discard();
    let mut sender = client.sender().unwrap();
    sender.sync(Ack::Ok).unwrap();
    drop(sender);
    assert_eq!(
        read_table(&server.storage(), "t").rows(),
        3,
        "discarded rows never commit"
    );
    assert!(errors.lock().unwrap().is_empty());

    // Dropped after a flush to a server that is gone: reported.
    let mut sender = client.sender().unwrap();
    sender.flush(&chunk).unwrap();
    server.kill9();
    drop(sender);
    let errors = errors.lock().unwrap();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("3 unsynced rows"), "{errors:?}");
}

#[test]
fn a_sender_dropped_while_panicking_rolls_back_instead_of_committing() {
    let server = TestServer::start();
    let addr = server.addr();
    let errors = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&errors);
    let joined = std::thread::spawn(move || {
        let client = Client::from_conf(&format!("ws::addr={addr};")).unwrap();
        client.on_error(move |e| sink.lock().unwrap().push(e.to_string()));
        let longs = [1i64, 2];
        let ts = [1_700_000_000_000_000i64, 1_700_000_000_000_001];
        let mut chunk = Chunk::new("t", 2).unwrap();
        chunk
            .i64("v", &longs, None)
            .unwrap()
            .at_micros(&ts)
            .unwrap();
        let mut sender = client.sender().unwrap();
        sender.flush(&chunk).unwrap();
        panic!("the application fails mid-way");
    })
    .join();
    assert!(joined.is_err());
    // A later commit on another connection: the panicked rows never land.
    let client = Client::from_conf(&format!("ws::addr={};", server.addr())).unwrap();
    let other = [9i64];
    let ts = [1_700_000_000_000_009i64];
    let mut chunk = Chunk::new("t", 1).unwrap();
    chunk
        .i64("v", &other, None)
        .unwrap()
        .at_micros(&ts)
        .unwrap();
    let mut sender = client.sender().unwrap();
    sender.flush(&chunk).unwrap();
    sender.sync(Ack::Ok).unwrap();
    assert_eq!(read_table(&server.storage(), "t").rows(), 1);
    assert!(errors.lock().unwrap().is_empty());
}

#[test]
fn a_durable_sync_needs_durable_acks_and_waits_for_them() {
    let server = TestServer::start();
    let longs = [7i64, 8];
    let ts = [1_700_000_000_000_000i64, 1_700_000_000_000_001];
    let mut chunk = Chunk::new("t", 2).unwrap();
    chunk
        .i64("v", &longs, None)
        .unwrap()
        .at_micros(&ts)
        .unwrap();

    let plain = Client::from_conf(&format!("ws::addr={};", server.addr())).unwrap();
    let mut sender = plain.sender().unwrap();
    sender.flush(&chunk).unwrap();
    assert!(matches!(
        sender.sync(Ack::Durable),
        Err(ClientError::Usage(_))
    ));
    assert_eq!(
        sender.pending_rows(),
        2,
        "nothing committed by a refused durable sync"
    );
    sender.sync(Ack::Ok).unwrap();

    let durable = Client::from_conf(&format!(
        "ws::addr={};request_durable_ack=on;",
        server.addr()
    ))
    .unwrap();
    let mut sender = durable.sender().unwrap();
    sender.flush(&chunk).unwrap();
    sender.sync(Ack::Durable).unwrap();
    assert_eq!(read_table(&server.storage(), "t").rows(), 4);

    // A chunk without a designated timestamp choice is refused before
    // anything is sent.
    let mut no_ts = Chunk::new("t", 2).unwrap();
    no_ts.i64("v", &longs, None).unwrap();
    assert!(matches!(sender.flush(&no_ts), Err(ClientError::Chunk(_))));
    assert_eq!(sender.pending_rows(), 0);
    sender.sync(Ack::Ok).unwrap();
}

mod arrow_ingest {
    use std::sync::Arc;

    use arrow::array::{
        ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, DictionaryArray,
        FixedSizeBinaryArray, Float32Array, Float64Array, Int8Array, Int16Array, Int32Array,
        Int64Array, LargeStringArray, RecordBatch, StringArray, TimestampMillisecondArray,
        TimestampNanosecondArray, UInt8Array, UInt32Array,
    };
    use arrow::datatypes::Int16Type;
    use questdb::ingress::{AckLevel, ColumnName};
    use quiver_client::{Ack, ArrowOptions, Client, ClientError, ColumnAs};

    use super::common::TestServer;
    use super::stored::read_table;

    const N: usize = 41;

    fn batch() -> RecordBatch {
        let valid = |i: usize| i % 5 != 2;
        let texts: Vec<Option<String>> =
            (0..N).map(|i| valid(i).then(|| format!("t{i}é"))).collect();
        let columns: Vec<(&str, ArrayRef)> = vec![
            (
                "i8",
                Arc::new(Int8Array::from_iter(
                    (0..N).map(|i| valid(i).then_some(i as i8 - 20)),
                )),
            ),
            (
                "i16",
                Arc::new(Int16Array::from_iter(
                    (0..N).map(|i| valid(i).then_some(i as i16 * 300)),
                )),
            ),
            (
                "i32",
                Arc::new(Int32Array::from_iter(
                    (0..N).map(|i| valid(i).then_some(i as i32 * 70_000)),
                )),
            ),
            (
                "i64",
                Arc::new(Int64Array::from_iter(
                    (0..N).map(|i| valid(i).then_some((i as i64) << 40)),
                )),
            ),
            (
                "u8",
                Arc::new(UInt8Array::from_iter(
                    (0..N).map(|i| valid(i).then_some(200 + i as u8 % 50)),
                )),
            ),
            (
                "f32",
                Arc::new(Float32Array::from_iter(
                    (0..N).map(|i| valid(i).then_some(i as f32 / 3.0)),
                )),
            ),
            (
                "f64",
                Arc::new(Float64Array::from_iter(
                    (0..N).map(|i| valid(i).then_some(i as f64 / 7.0)),
                )),
            ),
            (
                "flag",
                Arc::new(BooleanArray::from_iter((0..N).map(|i| Some(i % 3 == 0)))),
            ),
            ("s", Arc::new(StringArray::from(texts.clone()))),
            ("ls", Arc::new(LargeStringArray::from(texts.clone()))),
            (
                "sym",
                Arc::new(
                    (0..N)
                        .map(|i| valid(i).then(|| ["x", "y", "zé"][i % 3]))
                        .collect::<DictionaryArray<Int16Type>>(),
                ),
            ),
            (
                "tag",
                Arc::new(StringArray::from_iter(
                    (0..N).map(|i| valid(i).then(|| ["p", "q"][i % 2])),
                )),
            ),
            (
                "bin",
                Arc::new(BinaryArray::from_iter(
                    (0..N).map(|i| valid(i).then(|| vec![i as u8; i % 4])),
                )),
            ),
            (
                "u",
                Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                        (0..N).map(|i| valid(i).then_some([i as u8; 16])),
                        16,
                    )
                    .unwrap(),
                ),
            ),
            (
                "fsb",
                Arc::new(
                    FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                        (0..N).map(|i| valid(i).then_some([i as u8, 1, 2])),
                        3,
                    )
                    .unwrap(),
                ),
            ),
            (
                "ip",
                Arc::new(UInt32Array::from_iter(
                    (0..N).map(|i| valid(i).then_some(0x0a00_0001 + i as u32)),
                )),
            ),
            (
                "ms",
                Arc::new(TimestampMillisecondArray::from_iter(
                    (0..N).map(|i| valid(i).then_some(1_600_000_000_000 + i as i64)),
                )),
            ),
            (
                "day",
                Arc::new(Date32Array::from_iter(
                    (0..N).map(|i| valid(i).then_some(19_000 + i as i32)),
                )),
            ),
            (
                "dec",
                Arc::new(
                    Decimal128Array::from_iter(
                        (0..N).map(|i| valid(i).then_some(i as i128 * 12_345 - 99)),
                    )
                    .with_precision_and_scale(20, 4)
                    .unwrap(),
                ),
            ),
            (
                "ts",
                Arc::new(TimestampNanosecondArray::from_iter_values(
                    (0..N).map(|i| 1_700_000_000_000_000_000 + i as i64 * 1_000),
                )),
            ),
        ];
        let fields: Vec<arrow::datatypes::Field> = columns
            .iter()
            .map(|(name, array)| {
                let field = arrow::datatypes::Field::new(*name, array.data_type().clone(), true);
                match *name {
                    // The canonical UUID extension: RFC 4122 bytes.
                    "u" => field.with_metadata(
                        [("ARROW:extension:name".to_string(), "arrow.uuid".to_string())].into(),
                    ),
                    _ => field,
                }
            })
            .collect();
        let schema = Arc::new(arrow::datatypes::Schema::new(fields));
        RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect()).unwrap()
    }

    #[test]
    fn a_sliced_record_batch_is_stored_as_the_official_client_stores_the_same_rows() {
        let server = TestServer::start();
        let whole = batch();
        // Rows 3.. : every array at a non-zero offset (bitmaps at bit 3).
        let sliced = whole.slice(3, N - 3);
        let their_rows = RecordBatch::try_new(
            sliced.schema(),
            sliced
                .columns()
                .iter()
                .map(|c| {
                    arrow::compute::kernels::take::take(
                        c,
                        &arrow::array::UInt32Array::from_iter_values(0..(N - 3) as u32),
                        None,
                    )
                    .unwrap()
                })
                .collect(),
        )
        .unwrap();
        let overrides = [
            questdb::ingress::column_sender::ArrowColumnOverride::Ipv4 { column: "ip" },
            questdb::ingress::column_sender::ArrowColumnOverride::Symbol { column: "tag" },
        ];
        let db = questdb::QuestDb::connect(&format!("ws::addr={};", server.addr())).unwrap();
        db.flush_arrow_batch(
            "theirs",
            &their_rows,
            Some(ColumnName::new("ts").unwrap()),
            &overrides,
            Some(AckLevel::Ok),
        )
        .unwrap();

        let client = Client::from_conf(&format!("ws::addr={};", server.addr())).unwrap();
        let options = ArrowOptions::at_column("ours", "ts")
            .with("ip", ColumnAs::Ipv4)
            .with("tag", ColumnAs::Symbol);
        client.send_batch(&sliced, &options, Ack::Ok).unwrap();

        let db = server.storage();
        let theirs = read_table(&db, "theirs");
        let ours = read_table(&db, "ours");
        assert_eq!(ours.rows(), N - 3);
        let names: Vec<String> = theirs
            .schema
            .columns
            .iter()
            .map(|c| c.name.clone())
            .collect();
        let ours_names: Vec<String> = ours.schema.columns.iter().map(|c| c.name.clone()).collect();
        assert_eq!(ours_names, names);
        for name in &names {
            assert_eq!(ours.column_type(name), theirs.column_type(name), "{name}");
            let (a, b) = (ours.col(name), theirs.col(name));
            assert!(
                a.as_ref() == b.as_ref(),
                "{name}:\nours   {a:?}\ntheirs {b:?}"
            );
        }
        let want: Vec<Option<String>> = (3..N)
            .map(|i| (i % 5 != 2).then(|| format!("t{i}é")))
            .collect();
        assert_eq!(ours.strs("ls"), want);
    }

    #[test]
    fn a_batch_needs_a_designated_timestamp_choice_and_unmappable_types_are_named() {
        let server = TestServer::start();
        let client = Client::from_conf(&format!("ws::addr={};", server.addr())).unwrap();
        let b = batch();
        // A designated column that is not there.
        let missing = ArrowOptions::at_column("t", "nope");
        assert!(matches!(
            client.send_batch(&b, &missing, Ack::Ok),
            Err(ClientError::Chunk(_))
        ));
        // A list of Int32 (arrays are of DOUBLE or LONG): refused with its
        // name and type.
        let list: ArrayRef = Arc::new(arrow::array::ListArray::from_iter_primitive::<
            arrow::datatypes::Int32Type,
            _,
            _,
        >((0..N).map(|i| Some(vec![Some(i as i32)]))));
        let with_list = RecordBatch::try_from_iter(
            b.columns()
                .iter()
                .cloned()
                .zip(b.schema().fields().iter().map(|f| f.name().clone()))
                .map(|(c, n)| (n, c))
                .chain([("arr".to_string(), list)]),
        )
        .unwrap();
        match client.send_batch(&with_list, &ArrowOptions::at_column("t", "ts"), Ack::Ok) {
            Err(ClientError::Chunk(e)) => assert!(e.to_string().contains("arr"), "{e}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Server time, explicitly: the ts column is stored as a column.
        client
            .send_batch(&b, &ArrowOptions::at_server_time("st"), Ack::Ok)
            .unwrap();
        // An Int64 designated column in nanoseconds, said so.
        let ns: ArrayRef = Arc::new(Int64Array::from_iter_values(
            (0..N as i64).map(|i| 1_700_000_000_123_456_789 + i),
        ));
        let v: ArrayRef = Arc::new(Int64Array::from_iter_values(0..N as i64));
        let by_ns = RecordBatch::try_from_iter([("at", ns), ("v", v)]).unwrap();
        let options = ArrowOptions::at_column("ns", "at").with("at", ColumnAs::TimestampNanos);
        client.send_batch(&by_ns, &options, Ack::Ok).unwrap();
        let stored = read_table(&server.storage(), "ns");
        assert_eq!(
            stored.times("timestamp", arrow::datatypes::TimeUnit::Nanosecond)[0],
            Some(1_700_000_000_123_456_789)
        );
        // A dictionary told to be a SYMBOL (as metadata would) is one.
        let sym: ArrayRef = Arc::new(
            (0..N)
                .map(|i| Some(["a", "b"][i % 2]))
                .collect::<DictionaryArray<Int16Type>>(),
        );
        let ts: ArrayRef = b.column_by_name("ts").unwrap().clone();
        let dict = RecordBatch::try_from_iter([("s", sym), ("ts", ts.clone())]).unwrap();
        let options = ArrowOptions::at_column("dict", "ts").with("s", ColumnAs::Symbol);
        client.send_batch(&dict, &options, Ack::Ok).unwrap();
        assert_eq!(
            read_table(&server.storage(), "dict").syms("s")[1].as_deref(),
            Some("b")
        );
        // A dictionary whose values hold NULL is refused, naming it.
        let values = StringArray::from(vec![Some("a"), None]);
        let keys = arrow::array::Int8Array::from_iter_values((0..N).map(|i| (i % 2) as i8));
        let nulls: ArrayRef = Arc::new(DictionaryArray::try_new(keys, Arc::new(values)).unwrap());
        let bad = RecordBatch::try_from_iter([("s", nulls), ("ts", ts)]).unwrap();
        match client.send_batch(&bad, &ArrowOptions::at_column("bad", "ts"), Ack::Ok) {
            Err(ClientError::Chunk(e)) => assert!(e.to_string().contains("NULL"), "{e}"),
            other => panic!("expected a refusal, got {other:?}"),
        }
        let stored = read_table(&server.storage(), "st");
        assert_eq!(stored.rows(), N);
        assert!(stored.schema.columns.iter().any(|c| c.name == "ts"));
        assert!(
            server.storage().snapshot("t").is_none(),
            "nothing of a refused batch is stored"
        );
    }
}
