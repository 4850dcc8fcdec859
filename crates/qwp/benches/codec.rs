//! Decode and encode of an S1-narrow ingress frame (designated TIMESTAMP,
//! LONG, DOUBLE, SYMBOL of cardinality 8, VARCHAR of 16 bytes; 100k rows,
//! 45 bytes per row on the wire), next to a memcpy of the same bytes.
//!
//! Cases:
//! - `decode/<frame>/view`: validate the frame and return zero-copy views;
//! - `decode/<frame>/materialize`: the same, then copy every column into
//!   owned buffers once (what the server does to build Arrow arrays);
//! - `encode/<frame>`: write the frame from column views;
//! - `memcpy/<frame>`: copy the frame's bytes into a preallocated buffer.
//!
//! `fixed` is the same frame with only the fixed-width columns (timestamp,
//! LONG, DOUBLE, no nulls): the case the 2x-of-memcpy target is about.
//! After the criterion runs, a summary prints each case's median time and its
//! ratio to memcpy of the same bytes.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use quiver_qwp::ingress::Column;
use quiver_qwp::{
    ColumnBuilder, IngressMessage, Limits, NullEncoding, StringList, SymbolDelta, SymbolDictionary,
    Symbols, TableBlock, Timestamps, TypeCode, Value, Values, decode_ingress_message,
    encode_ingress_message,
};

const ROWS: u32 = 100_000;

fn s1_frame(fixed_only: bool) -> Vec<u8> {
    let mut ts = ColumnBuilder::new(TypeCode::Timestamp);
    let mut i = ColumnBuilder::new(TypeCode::Long);
    let mut f = ColumnBuilder::new(TypeCode::Double);
    let mut sym = ColumnBuilder::new(TypeCode::Symbol);
    let mut s = ColumnBuilder::new(TypeCode::Varchar);
    for r in 0..ROWS {
        let r64 = i64::from(r);
        ts.push(Some(&Value::Timestamp(1_700_000_000_000_000 + r64 * 1000)))
            .unwrap();
        i.push(Some(&Value::Long(r64 * 7919 % 1_000_003))).unwrap();
        f.push(Some(&Value::Double(r64 as f64 * 0.25))).unwrap();
        sym.push(Some(&Value::Symbol(r % 8))).unwrap();
        let text = format!("v{:015}", r64 * 31);
        s.push(Some(&Value::Varchar(&text))).unwrap();
    }
    let mut columns = vec![
        Column {
            name: "i64".into(),
            data: i.finish(NullEncoding::Sentinel),
        },
        Column {
            name: "f64".into(),
            data: f.finish(NullEncoding::Sentinel),
        },
    ];
    if !fixed_only {
        columns.push(Column {
            name: "sym".into(),
            data: sym.finish(NullEncoding::Bitmap),
        });
        columns.push(Column {
            name: "str".into(),
            data: s.finish(NullEncoding::Bitmap),
        });
    }
    columns.push(Column {
        name: "".into(),
        data: ts.finish(NullEncoding::Bitmap),
    });
    let message = IngressMessage {
        defer_commit: false,
        gorilla: false,
        symbols: Some(SymbolDelta {
            start: 0,
            entries: StringList::from_strs((0..8).map(|k| format!("SYM-{k}"))),
        }),
        tables: vec![TableBlock {
            name: "s1".into(),
            row_count: ROWS,
            columns,
        }],
    };
    let mut frame = Vec::new();
    encode_ingress_message(&message, &mut frame).unwrap();
    frame
}

/// Owned copies of every column, as a server builds its Arrow buffers. The
/// buffers are reused across iterations, so the figure is the codec's cost
/// and not the allocator's page faults.
#[derive(Default)]
struct Materialized {
    fixed: Vec<Vec<u8>>,
    keys: Vec<Vec<u32>>,
    strings: Vec<(Vec<u8>, Vec<u8>)>,
}

fn slot<T: Default>(v: &mut Vec<T>, i: usize) -> &mut T {
    if v.len() == i {
        v.push(T::default());
    }
    &mut v[i]
}

impl Materialized {
    fn fill(&mut self, message: &IngressMessage<'_>, symbol_map: &[u32]) {
        let (mut f, mut k, mut s) = (0, 0, 0);
        for table in &message.tables {
            for c in &table.columns {
                match c.data.values() {
                    Values::Fixed(b) | Values::Timestamp(Timestamps::Raw(b)) => {
                        let out = slot(&mut self.fixed, f);
                        out.clear();
                        out.extend_from_slice(b);
                        f += 1;
                    }
                    Values::Symbol(Symbols::Global(ids)) => {
                        let out = slot(&mut self.keys, k);
                        out.clear();
                        out.extend(ids.iter().map(|id| symbol_map[id as usize]));
                        k += 1;
                    }
                    Values::VarLen { offsets, data } => {
                        let (o, d) = slot(&mut self.strings, s);
                        o.clear();
                        o.extend_from_slice(offsets);
                        d.clear();
                        d.extend_from_slice(data);
                        s += 1;
                    }
                    _ => unreachable!("S1 has no other layouts"),
                }
            }
        }
    }
}

fn memcpy(src: &[u8], dst: &mut [u8]) {
    dst.copy_from_slice(src);
}

struct Case {
    name: String,
    bytes: usize,
    run: Box<dyn FnMut()>,
}

fn cases() -> Vec<Case> {
    let limits = Limits::default();
    let symbol_map: Vec<u32> = (0..8).collect();
    let mut cases = Vec::new();
    for (label, fixed_only) in [("s1_narrow", false), ("fixed", true)] {
        let frame = s1_frame(fixed_only);
        let bytes = frame.len();
        let dict = SymbolDictionary::new();
        {
            let (frame, limits, dict) = (frame.clone(), limits.clone(), dict.clone());
            cases.push(Case {
                name: format!("decode/{label}/view"),
                bytes,
                run: Box::new(move || {
                    black_box(decode_ingress_message(black_box(&frame), &limits, &dict).unwrap());
                }),
            });
        }
        {
            let (frame, limits, dict, map) = (
                frame.clone(),
                limits.clone(),
                dict.clone(),
                symbol_map.clone(),
            );
            let mut buffers = Materialized::default();
            cases.push(Case {
                name: format!("decode/{label}/materialize"),
                bytes,
                run: Box::new(move || {
                    let m = decode_ingress_message(black_box(&frame), &limits, &dict).unwrap();
                    buffers.fill(&m, &map);
                    black_box(&buffers);
                }),
            });
        }
        {
            // Encode from views decoded once, outside the timed loop.
            let frame: &'static [u8] = Box::leak(frame.clone().into_boxed_slice());
            let message = decode_ingress_message(frame, &limits, &dict).unwrap();
            let mut out = Vec::with_capacity(frame.len());
            cases.push(Case {
                name: format!("encode/{label}"),
                bytes,
                run: Box::new(move || {
                    out.clear();
                    encode_ingress_message(black_box(&message), &mut out).unwrap();
                    black_box(&out);
                }),
            });
        }
        {
            let mut dst = vec![0u8; frame.len()];
            cases.push(Case {
                name: format!("memcpy/{label}"),
                bytes,
                run: Box::new(move || {
                    memcpy(black_box(&frame), black_box(&mut dst));
                }),
            });
        }
    }
    cases
}

fn median_time(run: &mut dyn FnMut()) -> Duration {
    for _ in 0..5 {
        run();
    }
    let mut samples: Vec<Duration> = (0..41)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..5 {
                run();
            }
            t.elapsed() / 5
        })
        .collect();
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    let mut cases = cases();
    for case in &mut cases {
        let mut group =
            criterion.benchmark_group(case.name.rsplit_once('/').map_or("codec", |(g, _)| g));
        group.throughput(Throughput::Bytes(case.bytes as u64));
        group.bench_function(case.name.rsplit('/').next().unwrap(), |b| {
            b.iter(&mut case.run)
        });
        group.finish();
    }
    criterion.final_summary();

    // The summary the README quotes: medians from one more pass, and each
    // case's time as a multiple of memcpy of the same frame.
    println!(
        "\nsummary ({} rows per frame; ratio = time / memcpy of the same bytes)",
        ROWS
    );
    println!(
        "{:<32} {:>10} {:>12} {:>10} {:>8}",
        "case", "bytes", "Mrows/s", "GB/s", "ratio"
    );
    let times: Vec<(String, usize, Duration)> = cases
        .iter_mut()
        .map(|c| (c.name.clone(), c.bytes, median_time(&mut c.run)))
        .collect();
    for (name, bytes, t) in &times {
        let label = name.split('/').nth(1).unwrap_or("");
        let base = times
            .iter()
            .find(|(n, _, _)| n == &format!("memcpy/{label}"))
            .map_or(*t, |(_, _, m)| *m);
        let secs = t.as_secs_f64();
        println!(
            "{:<32} {:>10} {:>12.1} {:>10.2} {:>7.2}x",
            name,
            bytes,
            f64::from(ROWS) / secs / 1e6,
            *bytes as f64 / secs / 1e9,
            secs / base.as_secs_f64()
        );
    }
}
