//! Writes the fuzz seed corpus: `cargo run -p quiver-qwp --example fuzz_seeds -- fuzz/seeds`.
//! Seeds are the official client's captured frames plus frames that use every
//! type code, so the fuzzer starts inside every column decoder.

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};

use quiver_qwp::BatchEncoding;

fn unhex(text: &str) -> Vec<u8> {
    let hex: Vec<u8> = text.bytes().filter(u8::is_ascii_hexdigit).collect();
    hex.chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).expect("ascii"), 16).expect("hex"))
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) {
    std::fs::create_dir_all(dir).expect("seed dir");
    std::fs::write(dir.join(name), bytes).expect("seed file");
}

fn main() {
    let out = PathBuf::from(
        std::env::args()
            .nth(1)
            .unwrap_or_else(|| "fuzz/seeds".into()),
    );
    let captures = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/captures");
    let mut n = 0;
    for scenario in std::fs::read_dir(&captures).expect("captures") {
        let scenario = scenario.expect("entry").path();
        if !scenario.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&scenario).expect("scenario") {
            let file = file.expect("entry").path();
            let name = file.file_name().unwrap().to_string_lossy().into_owned();
            if !name.ends_with(".hex") || name.contains("close") {
                continue;
            }
            let bytes = unhex(&std::fs::read_to_string(&file).expect("hex file"));
            let seed = format!(
                "{}-{}",
                scenario.file_name().unwrap().to_string_lossy(),
                name.trim_end_matches(".hex")
            );
            // c_* scenarios are egress; the others ingress frames and acks.
            let target = if seed.starts_with("c_") {
                "egress"
            } else {
                "ingress"
            };
            write(&out.join(target), &seed, &bytes);
            n += 1;
        }
    }
    for rows in [1, 3, 17] {
        write(
            &out.join("ingress"),
            &format!("rich-{rows}"),
            &common::rich_ingress_frame(rows),
        );
        for (label, encoding) in [
            ("raw", BatchEncoding::default()),
            (
                "gorilla",
                BatchEncoding {
                    gorilla: true,
                    zstd_level: None,
                },
            ),
            (
                "zstd",
                BatchEncoding {
                    gorilla: true,
                    zstd_level: Some(1),
                },
            ),
        ] {
            write(
                &out.join("egress"),
                &format!("rich-{label}-{rows}"),
                &common::rich_result_batch(rows, encoding),
            );
        }
        n += 4;
    }
    println!("wrote {n} seeds to {}", out.display());
}
