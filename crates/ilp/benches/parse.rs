//! ILP text parsing throughput next to a memcpy of the same bytes.
//!
//! Input: TSBS's `cpu` lines as Telegraf writes them (`cpu` with nine
//! tags, ten integer-valued and float fields, a nanosecond timestamp),
//! 20,000 lines (~9 MB), and the same rows as the official clients write
//! them in protocol version 2 (binary doubles). Each case parses every
//! line into typed values (and reads each value, so nothing is skipped).
//! After the criterion runs, a summary prints each case's GB/s and its
//! ratio to memcpy of the same bytes (the target: at least 1 GB/s).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use quiver_ilp::{Limits, Line, Parser, Precision, Step, Value};

const LINES: usize = 20_000;

fn text_lines(binary: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut seed: u64 = 7;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    for i in 0..LINES {
        let host = i % 100;
        out.extend_from_slice(
            format!(
                "cpu,hostname=host_{host},region=eu-central-1,datacenter=eu-central-1a,rack={},os=Ubuntu16.10,arch=x86,team=SF,service={},service_version=1,service_environment=production ",
                host % 37,
                host % 19
            )
            .as_bytes(),
        );
        let names = [
            "usage_user",
            "usage_system",
            "usage_idle",
            "usage_nice",
            "usage_iowait",
            "usage_irq",
            "usage_softirq",
            "usage_steal",
            "usage_guest",
            "usage_guest_nice",
        ];
        for (k, name) in names.iter().enumerate() {
            if k > 0 {
                out.push(b',');
            }
            let v = (next() % 1_000_000) as f64 / 10_000.0;
            out.extend_from_slice(name.as_bytes());
            out.push(b'=');
            if binary {
                out.push(b'=');
                out.push(16);
                out.extend_from_slice(&v.to_le_bytes());
            } else {
                out.extend_from_slice(format!("{v}").as_bytes());
            }
        }
        out.extend_from_slice(
            format!(
                " {}\n",
                1_451_606_400_000_000_000u64 + i as u64 * 10_000_000_000
            )
            .as_bytes(),
        );
    }
    out
}

/// Parses every line and folds every value into a checksum.
fn parse_all(input: &[u8]) -> f64 {
    let mut parser = Parser::new(input, Precision::Nanos, Limits::default());
    let mut line = Line::default();
    let mut sum = 0.0;
    while parser.next_line(&mut line).unwrap() == Step::Line {
        sum += line.tags.len() as f64;
        for (_, v) in &line.fields {
            if let Value::Double(d) = v {
                sum += d;
            }
        }
        sum += line.timestamp.map_or(0, |t| t.as_micros()) as f64;
    }
    sum
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
    let cases = [
        ("text", text_lines(false)),
        ("binary-doubles", text_lines(true)),
    ];
    for (name, input) in &cases {
        let mut g = c.benchmark_group(*name);
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_function("parse", |b| {
            b.iter(|| black_box(parse_all(black_box(input))))
        });
        let mut copy = vec![0u8; input.len()];
        g.bench_function("memcpy", |b| {
            b.iter(|| {
                copy.copy_from_slice(black_box(input));
                black_box(&copy);
            })
        });
        g.finish();
    }
    c.final_summary();
    println!("\nsummary (median of 31 runs each, one core):");
    for (name, input) in &cases {
        let parse = median(
            || {
                black_box(parse_all(black_box(input)));
            },
            31,
        );
        let mut copy = vec![0u8; input.len()];
        let memcpy = median(
            || {
                copy.copy_from_slice(black_box(input));
                black_box(&copy);
            },
            31,
        );
        let gbs = |d: Duration| input.len() as f64 / d.as_secs_f64() / 1e9;
        println!(
            "{name:<16} {:>6.1} MB  parse {:>6.2} GB/s  memcpy {:>6.2} GB/s  parse/memcpy time {:>5.1}x  {:>5.1}M lines/s",
            input.len() as f64 / 1e6,
            gbs(parse),
            gbs(memcpy),
            parse.as_secs_f64() / memcpy.as_secs_f64(),
            LINES as f64 / parse.as_secs_f64() / 1e6,
        );
    }
}
