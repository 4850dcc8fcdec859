//! Decoding never allocates more than the frame's own length justifies,
//! whatever counts the frame claims: the peak heap growth while decoding is
//! at most `FACTOR × frame length + SLACK` bytes, for valid frames, for
//! frames that claim huge counts in few bytes, and for every truncation of a
//! valid frame.
//!
//! A counting global allocator measures the peak; this file holds a single
//! test so no other test allocates concurrently.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use quiver_qwp::{
    BatchEncoding, EgressDecoder, Limits, SymbolDictionary, decode_client_message,
    decode_ingress_message, decode_ingress_response, put_varint,
};

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let now = CURRENT.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Peak bytes allocated above the starting level while `f` runs.
fn peak_growth(f: impl FnOnce()) -> usize {
    let base = CURRENT.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    f();
    PEAK.load(Ordering::Relaxed) - base
}

/// Bytes of decoded structure allowed per frame byte: a column takes at least
/// 3 frame bytes (name, type, null flag) and ~150 bytes decoded.
const FACTOR: usize = 32;
const SLACK: usize = 4096;

fn check(what: &str, frame: &[u8], limits: &Limits) -> usize {
    let dictionary = SymbolDictionary::new();
    let peak = peak_growth(|| {
        let _ = std::hint::black_box(decode_ingress_message(frame, limits, &dictionary));
        let _ = std::hint::black_box(decode_ingress_response(frame));
        let _ = std::hint::black_box(decode_client_message(frame, limits));
        if frame.len() > 12 {
            let _ = std::hint::black_box(decode_client_message(&frame[12..], limits));
        }
        let mut scratch = Vec::new();
        let _ =
            std::hint::black_box(EgressDecoder::new(limits.clone()).decode(frame, &mut scratch));
    });
    let bound = FACTOR * frame.len() + SLACK;
    assert!(
        peak <= bound,
        "{what}: {peak} bytes allocated for a {}-byte frame (bound {bound})",
        frame.len()
    );
    peak
}

fn header(flags: u8, table_count: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = b"QWP1".to_vec();
    f.extend_from_slice(&[1, flags]);
    f.extend_from_slice(&table_count.to_le_bytes());
    f.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    f.extend_from_slice(payload);
    f
}

#[test]
fn decoding_allocates_in_proportion_to_the_frame() {
    let limits = Limits::default();
    let mut worst = 0f64;
    let mut record = |what: &str, frame: &[u8]| {
        let peak = check(what, frame, &limits);
        worst = worst.max(peak as f64 / frame.len().max(1) as f64);
    };

    // Valid frames, small and large.
    for rows in [1, 10, 1000] {
        record("rich ingress frame", &common::rich_ingress_frame(rows));
        for encoding in [
            BatchEncoding::default(),
            BatchEncoding {
                gorilla: true,
                zstd_level: Some(1),
            },
        ] {
            record(
                "rich result batch",
                &common::rich_result_batch(rows, encoding),
            );
        }
    }

    // Every truncation of a valid frame (header patched).
    let full = common::rich_ingress_frame(4);
    for len in 0..full.len() {
        record(
            "truncated ingress frame",
            &common::truncated_with_patched_length(&full, len),
        );
    }

    // Counts far larger than the bytes behind them.
    record(
        "65535 tables claimed",
        &header(0x08, u16::MAX, &[0, 0, 1, b't', 0, 0]),
    );
    let mut p = vec![0, 0, 1, b't', 1];
    put_varint(&mut p, 2048);
    record("2048 columns claimed", &header(0x08, 1, &p));
    let mut p = vec![0, 0, 1, b't'];
    put_varint(&mut p, 1_000_000);
    p.extend_from_slice(&[1, 1, b's', 0x09, 0x00, 0x00]);
    record("1M symbol ids claimed", &header(0x08, 1, &p));
    let mut p = vec![0];
    put_varint(&mut p, 1_999_999);
    record("2M dictionary entries claimed", &header(0x08, 0, &p));
    let mut p = vec![0, 0, 1, b't'];
    put_varint(&mut p, 1_000_000);
    p.extend_from_slice(&[1, 1, b'a', 0x11, 0x00, 0x01, 0xFF, 0xFF, 0xFF, 0xFF]);
    record("1M arrays claimed", &header(0x08, 1, &p));
    let mut p = vec![0, 0, 1, b't'];
    put_varint(&mut p, 1_000_000);
    p.extend_from_slice(&[1, 1, b't', 0x0A, 0x00, 0x01]);
    p.extend_from_slice(&[0u8; 16]);
    record("1M Gorilla timestamps claimed", &header(0x0C, 1, &p));
    let mut p = vec![0x10, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    put_varint(&mut p, 2048);
    record("2048 binds claimed", &p);
    record(
        "65535 ack entries claimed",
        &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF],
    );
    let mut p = vec![0x11, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    put_varint(&mut p, 1_048_576);
    put_varint(&mut p, 2048);
    record("result batch claiming 2048 columns", &header(0x08, 1, &p));

    println!("worst case: {worst:.1} bytes allocated per frame byte (bound {FACTOR} + {SLACK} B)");
}
