//! Our SDK (`quiver-client`) against the official `questdb-rs` 7.2 on the
//! same work, in one process, plus the memcpy ceiling:
//!
//! - `encode/memcpy-f64` vs `encode/f64`: one DOUBLE column of 1M rows
//!   encoded into a frame, against a memcpy of the same 8 MB;
//! - `encode/s1-narrow`: the S1-narrow chunk (designated timestamp, LONG,
//!   DOUBLE, 8-entry SYMBOL, 16-byte VARCHAR) of 200k rows encoded;
//! - `sink/quiver-client` vs `sink/questdb-rs`: the same 1M-row S1 chunk
//!   flushed and committed by each client to a null QWP server (a thread
//!   that acknowledges frames and stores nothing): the clients' own cost;
//! - `arrow/quiver-client` vs `arrow/questdb-rs`: the same 1M-row S1
//!   Arrow `RecordBatch` sent and committed into a real `quiver serve`
//!   (`Client::send_batch` vs `QuestDb::flush_arrow_batch`);
//! - `egress/quiver-client` vs `egress/questdb-rs`: `SELECT *` of a 1M-row
//!   S1 table from the same server, read into Arrow record batches
//!   (`Client::query(..).fetch()` vs the official `Reader`'s
//!   `next_arrow_batch`): the same server work, each client's decoding;
//! - `decode/quiver-client` vs `decode/questdb-rs`: that result's frames,
//!   captured once, decoded into Arrow record batches by each client
//!   without a socket (the official crate's `_bench_internals` decoder and
//!   assembly, which its own decoder benchmark uses): the clients' decode
//!   cost alone, free of the server's and the network's noise.
//!
//! - with `--features sdk-polars`: `polars/dataframe-in` and
//!   `polars/dataframe-out`, the same rows as a Polars `DataFrame` sent
//!   and fetched through the SDK, summarised next to the Arrow paths (the
//!   cost of the Polars bridge).
//!
//! After the criterion runs a summary prints each pair's median (ten
//! runs, the two clients interleaved, each first in every other round)
//! and ratio.
//! Run: `cargo bench -p quiver-server --bench sdk [--features sdk-polars]`. With `SDK_BENCH_FRAMES=1`
//! the null server prints each frame's size (how each client cuts frames).

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use arrow::array::{
    ArrayRef, DictionaryArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampNanosecondArray,
};
use arrow::datatypes::Int8Type;
use criterion::{Criterion, Throughput};
use questdb::ingress::AckLevel;
use questdb::ingress::column_sender::Chunk as TheirChunk;
use quiver_client::{Ack, ArrowOptions, Chunk, Client, Codes, Offsets};
use std::hint::black_box;

/// S1-narrow columns as plain buffers.
struct S1 {
    ts: Vec<i64>,
    i64s: Vec<i64>,
    f64s: Vec<f64>,
    codes: Vec<i8>,
    dict_offsets: Vec<i32>,
    dict_bytes: Vec<u8>,
    str_offsets: Vec<i32>,
    str_bytes: Vec<u8>,
}

fn s1(n: usize) -> S1 {
    let mut seed = 42u64;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 11
    };
    let mut dict_offsets = vec![0i32];
    let mut dict_bytes = Vec::new();
    for i in 0..8 {
        dict_bytes.extend_from_slice(format!("SYM-{i}").as_bytes());
        dict_offsets.push(dict_bytes.len() as i32);
    }
    let mut str_offsets = vec![0i32];
    let mut str_bytes = Vec::with_capacity(n * 16);
    for i in 0..n {
        str_bytes.extend_from_slice(format!("v{i:015}").as_bytes());
        str_offsets.push(str_bytes.len() as i32);
    }
    S1 {
        ts: (0..n as i64)
            .map(|i| 1_704_067_200_000_000_000 + i * 1_000)
            .collect(),
        i64s: (0..n).map(|_| (next() % (1 << 40)) as i64).collect(),
        f64s: (0..n).map(|_| (next() % 1_000_000) as f64 / 1e6).collect(),
        codes: (0..n).map(|_| (next() % 8) as i8).collect(),
        dict_offsets,
        dict_bytes,
        str_offsets,
        str_bytes,
    }
}

fn our_chunk<'a>(d: &'a S1, table: &str) -> Chunk<'a> {
    let mut c = Chunk::new(table, d.ts.len()).unwrap();
    c.i64("i64", &d.i64s, None)
        .unwrap()
        .f64("f64", &d.f64s, None)
        .unwrap()
        .symbol(
            "sym",
            Codes::I8(&d.codes),
            Offsets::I32(&d.dict_offsets),
            &d.dict_bytes,
            None,
        )
        .unwrap()
        .varchar("str", Offsets::I32(&d.str_offsets), &d.str_bytes, None)
        .unwrap()
        .at_nanos(&d.ts)
        .unwrap();
    c
}

fn their_chunk<'a>(d: &'a S1, table: &str) -> TheirChunk<'a> {
    let mut c = TheirChunk::new(table);
    c.column_i64("i64", &d.i64s, None)
        .unwrap()
        .column_f64("f64", &d.f64s, None)
        .unwrap()
        .symbol_i8("sym", &d.codes, &d.dict_offsets, &d.dict_bytes, None)
        .unwrap()
        .column_str("str", &d.str_offsets, &d.str_bytes, None)
        .unwrap()
        .at_nanos(&d.ts)
        .unwrap();
    c
}

fn s1_batch(d: &S1) -> RecordBatch {
    let strings = StringArray::try_new(
        arrow::buffer::OffsetBuffer::new(d.str_offsets.clone().into()),
        d.str_bytes.clone().into(),
        None,
    )
    .unwrap();
    let dict_values = StringArray::try_new(
        arrow::buffer::OffsetBuffer::new(d.dict_offsets.clone().into()),
        d.dict_bytes.clone().into(),
        None,
    )
    .unwrap();
    let sym = DictionaryArray::<Int8Type>::try_new(d.codes.clone().into(), Arc::new(dict_values))
        .unwrap();
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("ts", Arc::new(TimestampNanosecondArray::from(d.ts.clone()))),
        ("i64", Arc::new(Int64Array::from(d.i64s.clone()))),
        ("f64", Arc::new(Float64Array::from(d.f64s.clone()))),
        ("sym", Arc::new(sym)),
        ("str", Arc::new(strings)),
    ];
    RecordBatch::try_from_iter(columns).unwrap()
}

/// A QWP ingest endpoint that acknowledges every committing frame at once
/// and keeps nothing.
fn null_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            thread::spawn(move || serve_null(stream));
        }
    });
    addr
}

// tungstenite's handshake callback returns its own (large) error type.
#[allow(clippy::result_large_err)]
fn serve_null(stream: TcpStream) {
    stream.set_nodelay(true).unwrap();
    let accept = |_: &tungstenite::handshake::server::Request,
                  mut response: tungstenite::handshake::server::Response| {
        let h = response.headers_mut();
        h.insert("X-QWP-Version", "1".parse().unwrap());
        h.insert(
            "X-QWP-Max-Batch-Size",
            (16u32 << 20).to_string().parse().unwrap(),
        );
        Ok(response)
    };
    let config = tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20));
    let Ok(mut ws) = tungstenite::accept_hdr_with_config(stream, accept, Some(config)) else {
        return;
    };
    let mut sequence: i64 = 0;
    while let Ok(message) = ws.read() {
        if let tungstenite::Message::Binary(frame) = message {
            let deferred = frame.get(5).is_some_and(|f| f & 1 != 0);
            if std::env::var_os("SDK_BENCH_FRAMES").is_some() {
                eprintln!(
                    "frame {sequence}: {} bytes, deferred {deferred}",
                    frame.len()
                );
            }
            if !deferred {
                let mut ok = vec![0u8];
                ok.extend_from_slice(&sequence.to_le_bytes());
                ok.extend_from_slice(&0u16.to_le_bytes());
                if ws.send(tungstenite::Message::binary(ok)).is_err() {
                    return;
                }
            }
            sequence += 1;
        }
    }
}

/// A `quiver serve` on a free loopback port with a temporary data dir.
struct Server {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn quiver() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr = line
        .split_whitespace()
        .find(|w| w.starts_with("127.0.0.1:"))
        .expect("listening address")
        .to_owned();
    Server {
        child,
        addr,
        _dir: dir,
    }
}

fn median(mut f: impl FnMut(), runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[runs / 2]
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    let small = s1(200_000);
    let big = s1(1_000_000);
    let f64_bytes: Vec<u8> = big.f64s.iter().flat_map(|v| v.to_le_bytes()).collect();

    // Encoding, no network.
    let mut frame = Vec::with_capacity(64 << 20);
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Bytes(f64_bytes.len() as u64));
    let mut copy = vec![0u8; f64_bytes.len()];
    g.bench_function("memcpy-f64", |b| {
        b.iter(|| {
            copy.copy_from_slice(black_box(&f64_bytes));
            black_box(&copy);
        })
    });
    let mut one = Chunk::new("t", big.f64s.len()).unwrap();
    one.f64("f64", &big.f64s, None)
        .unwrap()
        .at_server_time()
        .unwrap();
    g.bench_function("f64", |b| {
        b.iter(|| {
            frame.clear();
            assert!(quiver_client::bench::encode_frame(
                black_box(&one),
                &mut frame
            ));
        })
    });
    let s1_chunk = our_chunk(&small, "s1");
    g.throughput(Throughput::Elements(small.ts.len() as u64));
    g.bench_function("s1-narrow", |b| {
        b.iter(|| {
            frame.clear();
            assert!(quiver_client::bench::encode_frame(
                black_box(&s1_chunk),
                &mut frame
            ));
        })
    });
    g.finish();

    // Against a null server: each client's own cost.
    let null = null_server();
    let client = Client::from_conf(&format!("ws::addr={null};")).unwrap();
    // The null server speaks ingest only: no query connection opened.
    let official =
        questdb::QuestDb::connect(&format!("ws::addr={null};query_pool_min=0;")).unwrap();
    let big_chunk = our_chunk(&big, "s1");
    let mut ours_sink = || {
        let mut sender = client.sender().unwrap();
        sender.flush(&big_chunk).unwrap();
        sender.sync(Ack::Ok).unwrap();
    };
    let mut theirs_sink = || {
        let mut sender = official.borrow_sender().unwrap();
        let mut chunk = their_chunk(&big, "s1");
        sender.flush_and_wait(&mut chunk, AckLevel::Ok).unwrap();
    };
    let mut g = c.benchmark_group("sink");
    g.sample_size(10)
        .throughput(Throughput::Elements(big.ts.len() as u64));
    g.bench_function("quiver-client", |b| b.iter(&mut ours_sink));
    g.bench_function("questdb-rs", |b| b.iter(&mut theirs_sink));
    g.finish();

    // Arrow into a real server.
    let server = quiver();
    let batch = s1_batch(&big);
    let client_q = Client::from_conf(&format!("ws::addr={};", server.addr)).unwrap();
    let official_q = questdb::QuestDb::connect(&format!("ws::addr={};", server.addr)).unwrap();
    let ts = questdb::ingress::ColumnName::new("ts").unwrap();
    let mut ours_arrow = || {
        client_q
            .send_batch(&batch, &ArrowOptions::at_column("ours", "ts"), Ack::Ok)
            .unwrap();
    };
    let mut theirs_arrow = || {
        official_q
            .flush_arrow_batch("theirs", &batch, Some(ts), &[], Some(AckLevel::Ok))
            .unwrap();
    };
    let mut g = c.benchmark_group("arrow");
    g.sample_size(10)
        .throughput(Throughput::Elements(big.ts.len() as u64));
    g.bench_function("quiver-client", |b| b.iter(&mut ours_arrow));
    g.bench_function("questdb-rs", |b| b.iter(&mut theirs_arrow));
    g.finish();

    // Egress: the same query read by each client.
    client_q
        .send_batch(&batch, &ArrowOptions::at_column("egress", "ts"), Ack::Ok)
        .unwrap();
    let select = "SELECT * FROM egress";
    let mut their_reader =
        questdb::egress::Reader::from_conf(format!("ws::addr={};", server.addr)).unwrap();
    let mut ours_egress = || {
        let mut rows = 0;
        let mut stream = client_q.query(select).fetch().unwrap();
        while let Some(b) = stream.next_batch().unwrap() {
            rows += black_box(b).num_rows();
        }
        assert_eq!(rows, 1_000_000);
    };
    let mut theirs_egress = || {
        let mut rows = 0;
        let mut cursor = their_reader.execute(select).unwrap();
        while let Some(b) = cursor.next_arrow_batch().unwrap() {
            rows += black_box(b).num_rows();
        }
        assert_eq!(rows, 1_000_000);
    };
    let mut g = c.benchmark_group("egress");
    g.sample_size(10)
        .throughput(Throughput::Elements(big.ts.len() as u64));
    g.bench_function("quiver-client", |b| b.iter(&mut ours_egress));
    g.bench_function("questdb-rs", |b| b.iter(&mut theirs_egress));
    g.finish();

    // Decode only: the same result's frames, captured once, decoded into
    // Arrow by each client without a socket or a server.
    let frames =
        quiver_client::bench::capture_result_frames(&format!("ws::addr={};", server.addr), select)
            .unwrap();
    let mut ours_decode = || {
        let rows = quiver_client::bench::decode_result_frames(black_box(&frames)).unwrap();
        assert_eq!(rows, 1_000_000);
    };
    // The official decoder takes the payload after the 12-byte header and
    // the header's flags byte.
    let payloads: Vec<(u8, questdb::egress::_bench_internals::Bytes)> = frames
        .iter()
        .map(|f| {
            (
                f[5],
                questdb::egress::_bench_internals::Bytes::copy_from_slice(&f[12..]),
            )
        })
        .collect();
    let mut theirs_decode = || {
        use questdb::egress::_bench_internals as q;
        let (mut dict, mut schema, mut zstd) = (q::SymbolDict::new(), None, q::ZstdScratch::new());
        let mut rows = 0;
        for (flags, payload) in black_box(&payloads) {
            if payload[0] != 0x11 {
                continue;
            }
            let batch =
                q::decode_result_batch(payload, *flags, &mut dict, &mut schema, &mut zstd).unwrap();
            let rb =
                q::bench_batch_to_record_batch(schema.as_ref().unwrap(), batch, &dict).unwrap();
            rows += black_box(rb).num_rows();
        }
        assert_eq!(rows, 1_000_000);
    };
    // Polars through the SDK next to Arrow through the SDK, on the same
    // rows: what the IPC bridge costs.
    #[cfg(feature = "sdk-polars")]
    let s1_frame = quiver_client::batch_to_dataframe(&batch).unwrap();
    #[cfg(feature = "sdk-polars")]
    let mut frame_in = || {
        client_q
            .send_dataframe(&s1_frame, &ArrowOptions::at_column("frames", "ts"), Ack::Ok)
            .unwrap();
    };
    #[cfg(feature = "sdk-polars")]
    let mut frame_out = || {
        let result = client_q.query(select).fetch_dataframe().unwrap();
        assert_eq!(black_box(result).height(), 1_000_000);
    };
    #[cfg(feature = "sdk-polars")]
    {
        let mut g = c.benchmark_group("polars");
        g.sample_size(10)
            .throughput(Throughput::Elements(big.ts.len() as u64));
        g.bench_function("dataframe-in", |b| b.iter(&mut frame_in));
        g.bench_function("dataframe-out", |b| b.iter(&mut frame_out));
        g.finish();
    }

    let mut g = c.benchmark_group("decode");
    g.sample_size(20)
        .throughput(Throughput::Elements(big.ts.len() as u64));
    g.bench_function("quiver-client", |b| b.iter(&mut ours_decode));
    g.bench_function("questdb-rs", |b| b.iter(&mut theirs_decode));
    g.finish();
    c.final_summary();

    println!("\nsummary (median of the runs shown, one process, same data):");
    let mb = f64_bytes.len() as f64 / 1e6;
    let memcpy = median(|| copy.copy_from_slice(black_box(&f64_bytes)), 31);
    let enc = median(
        || {
            frame.clear();
            quiver_client::bench::encode_frame(&one, &mut frame);
        },
        31,
    );
    println!(
        "encode f64 column   {mb:.0} MB: memcpy {:.1} GB/s, encode {:.1} GB/s, encode/memcpy time {:.2}x",
        mb / 1e3 / memcpy.as_secs_f64(),
        mb / 1e3 / enc.as_secs_f64(),
        enc.as_secs_f64() / memcpy.as_secs_f64()
    );
    let enc = median(
        || {
            frame.clear();
            quiver_client::bench::encode_frame(&s1_chunk, &mut frame);
        },
        31,
    );
    println!(
        "encode S1-narrow    {} rows: {:.1}M rows/s, {:.2} GB/s of frame",
        small.ts.len(),
        small.ts.len() as f64 / enc.as_secs_f64() / 1e6,
        frame.len() as f64 / enc.as_secs_f64() / 1e9
    );
    let rows = big.ts.len() as f64;
    // Interleaved, so both see the same server state (tables grow), and
    // each goes first in every other round (the server may still be
    // finishing the previous round's work).
    let pair = |ours: &mut dyn FnMut(), theirs: &mut dyn FnMut()| {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let timed = |f: &mut dyn FnMut(), into: &mut Vec<Duration>| {
            let t = Instant::now();
            f();
            into.push(t.elapsed());
        };
        for round in 0..10 {
            if round % 2 == 0 {
                timed(ours, &mut a);
                timed(theirs, &mut b);
            } else {
                timed(theirs, &mut b);
                timed(ours, &mut a);
            }
        }
        a.sort();
        b.sort();
        (a[5], b[5])
    };
    // Egress first: the ingest pairs grow tables, and the server's
    // background sealing of them would land on the queries' timings.
    let egress = pair(&mut ours_egress, &mut theirs_egress);
    let decode = pair(&mut ours_decode, &mut theirs_decode);
    let sink = pair(&mut ours_sink, &mut theirs_sink);
    let arrow = pair(&mut ours_arrow, &mut theirs_arrow);
    for (what, (ours, theirs)) in [
        ("null server", sink),
        ("arrow into quiver", arrow),
        ("egress into arrow", egress),
        ("decode into arrow", decode),
    ] {
        println!(
            "{what:<19} 1M S1 rows: quiver-client {:.1}M rows/s, questdb-rs {:.1}M rows/s, ours/theirs speed {:.2}x",
            rows / ours.as_secs_f64() / 1e6,
            rows / theirs.as_secs_f64() / 1e6,
            theirs.as_secs_f64() / ours.as_secs_f64()
        );
    }
    #[cfg(feature = "sdk-polars")]
    for (what, (polars, arrow)) in [
        ("DataFrame in", pair(&mut frame_in, &mut ours_arrow)),
        ("DataFrame out", pair(&mut frame_out, &mut ours_egress)),
    ] {
        println!(
            "{what:<19} 1M S1 rows: Polars {:.1}M rows/s, Arrow {:.1}M rows/s, Polars/Arrow speed {:.2}x",
            rows / polars.as_secs_f64() / 1e6,
            rows / arrow.as_secs_f64() / 1e6,
            arrow.as_secs_f64() / polars.as_secs_f64()
        );
    }
}
