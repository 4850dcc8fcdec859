//! Opening and validating files: NOTES tests 8, 10, 11 and 16, plus
//! truncation at many offsets, random byte flips, foreign Arrow IPC files
//! (accepted by scanning, or rejected on request), metadata that lies about
//! the data, a misaligned foreign file, and a plain Arrow reader reading a
//! sidecar. Nothing here may panic: every bad file is an `Err`.

mod common;

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use arrow::array::{Array, Decimal128Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::ipc::MetadataVersion;
use arrow::ipc::reader::FileReader;
use arrow::ipc::writer::{FileWriter, IpcWriteOptions};
use common::*;
use quiver_lookup::{
    FeatherLookupProvider, FetchError, OpenError, OpenOptions, PointLookupProvider,
};

fn kv_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Utf8, true),
    ]))
}

fn kv(keys: &[i64]) -> RecordBatch {
    RecordBatch::try_new(
        kv_schema(),
        vec![
            Arc::new(Int64Array::from(keys.to_vec())),
            Arc::new(StringArray::from_iter_values(
                keys.iter().map(|k| format!("v{k}")),
            )),
        ],
    )
    .unwrap()
}

/// Writes a plain Arrow IPC file, optionally with a `quiver.lookup` entry.
fn write_ipc(path: &Path, batches: &[RecordBatch], meta: Option<String>, options: IpcWriteOptions) {
    let mut w = FileWriter::try_new_with_options(
        File::create(path).unwrap(),
        &batches[0].schema(),
        options,
    )
    .unwrap();
    for b in batches {
        w.write(b).unwrap();
    }
    if let Some(m) = meta {
        w.write_metadata("quiver.lookup", m);
    }
    w.finish().unwrap();
}

/// The documented metadata encoding (format docs), written by hand.
fn meta(rows: u64, first_keys: &[u64], last_key: u64) -> String {
    let firsts: String = first_keys.iter().map(|k| format!("{k:016x}")).collect();
    format!(
        "format=1;key_index=0;key_type=Int64;order=u64-strictly-ascending;rows={rows};\
         batch_rows=8192;last_key={last_key:016x};first_keys={firsts}"
    )
}

/// A small sidecar with three record batches and a dictionary column.
fn sample_sidecar(dir: &Path) -> (std::path::PathBuf, Vec<i64>) {
    let ids = rowids(600, 31);
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Utf8, true),
        Field::new(
            "tag",
            DataType::Dictionary(Box::new(DataType::Int16), Box::new(DataType::Utf8)),
            true,
        ),
    ]));
    let path = dir.join("s.arrow");
    let mut b = quiver_lookup::FeatherSidecarBuilder::begin_with(
        &path,
        schema.clone(),
        0,
        &[1, 2],
        quiver_lookup::BuildOptions::default().batch_rows(256),
    )
    .unwrap();
    for chunk in ids.chunks(100) {
        let names: Vec<String> = chunk.iter().map(|k| format!("t{}", k % 5)).collect();
        let tags: arrow::array::DictionaryArray<arrow::datatypes::Int16Type> =
            names.iter().map(String::as_str).collect();
        b.push_batch(
            &RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(Int64Array::from(chunk.to_vec())),
                    Arc::new(StringArray::from_iter(
                        chunk
                            .iter()
                            .map(|k| (k % 3 != 0).then(|| format!("value {k}"))),
                    )),
                    Arc::new(tags),
                ],
            )
            .unwrap(),
        )
        .unwrap();
    }
    b.finish().unwrap();
    (path, ids)
}

/// Opens, verifies and reads every key; any failure is an `Err`.
fn open_and_read_all(path: &Path, keys: &[u64]) -> Result<usize, String> {
    let p = FeatherLookupProvider::open(path).map_err(|e| e.to_string())?;
    p.verify().map_err(|e| e.to_string())?;
    let out = p.fetch(keys, None).map_err(|e| e.to_string())?;
    Ok(out.map_or(0, |b| b.num_rows()))
}

/// NOTES 8: the published file reopens with the same rows.
#[tokio::test]
async fn reopen_from_file_roundtrips() {
    let dir = tempfile::tempdir().unwrap();
    let ids = rowids(5000, 8);
    let built = build_feather(dir.path(), "t.arrow", &payload_chunks(&ids, 700));
    let reopened = FeatherLookupProvider::open(built.path()).unwrap();
    assert_eq!(reopened.len(), built.len());
    assert_eq!(reopened.schema(), built.schema());
    assert!(reopened.has_sidecar_metadata());
    let keys: Vec<u64> = ids.iter().step_by(5).map(|&k| k as u64).collect();
    assert_eq!(
        built.fetch_by_keys(&keys, "rowid", None).await.unwrap(),
        reopened.fetch_by_keys(&keys, "rowid", None).await.unwrap()
    );
}

/// NOTES 10: unsorted or duplicate keys in a raw file fail to open, also
/// across a batch boundary.
#[test]
fn open_rejects_unsorted_or_duplicate_keys() {
    let dir = tempfile::tempdir().unwrap();
    for (name, batches) in [
        ("unsorted", vec![kv(&[10, 3, 1])]),
        ("duplicate", vec![kv(&[1, 1, 2])]),
        ("across", vec![kv(&[1, 5]), kv(&[3, 7])]),
        ("dup-across", vec![kv(&[1, 5]), kv(&[5, 7])]),
    ] {
        let path = dir.path().join(name);
        write_ipc(&path, &batches, None, IpcWriteOptions::default());
        let e = FeatherLookupProvider::open(&path).unwrap_err();
        assert!(matches!(e, OpenError::KeyInvariant { .. }), "{name}: {e}");
    }
}

/// NOTES 11: garbage and missing files are errors.
#[test]
fn open_rejects_malformed_or_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = SplitMix64::new(11);
    let garbage: Vec<u8> = (0..4096).map(|_| rng.next_u64() as u8).collect();
    let p = dir.path().join("garbage");
    std::fs::write(&p, &garbage).unwrap();
    assert!(matches!(
        FeatherLookupProvider::open(&p),
        Err(OpenError::Malformed { .. })
    ));
    // Magic at both ends, garbage between.
    let mut framed = b"ARROW1\0\0".to_vec();
    framed.extend(&garbage);
    framed.extend(&200i32.to_le_bytes());
    framed.extend(b"ARROW1");
    std::fs::write(&p, &framed).unwrap();
    assert!(matches!(
        FeatherLookupProvider::open(&p),
        Err(OpenError::Malformed { .. })
    ));
    for empty in [&b""[..], b"ARROW1", b"ARROW1ARROW1ARROW1"] {
        std::fs::write(&p, empty).unwrap();
        assert!(FeatherLookupProvider::open(&p).is_err());
    }
    let e = FeatherLookupProvider::open(dir.path().join("missing")).unwrap_err();
    assert!(matches!(e, OpenError::Io { .. }), "{e}");
    assert!(e.to_string().contains("missing"));
    assert!(
        FeatherLookupProvider::open(dir.path()).is_err(),
        "a directory"
    );
}

/// NOTES 16: a footer length far beyond the file.
#[test]
fn open_rejects_corrupt_footer_length() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("footer");
    let mut f = vec![0u8; 22];
    f.extend(&1_000_000i32.to_le_bytes());
    f.extend(b"ARROW1");
    assert_eq!(f.len(), 32);
    std::fs::write(&p, &f).unwrap();
    assert!(FeatherLookupProvider::open(&p).is_err());
    // The same with a valid leading magic, and a negative length.
    f[..6].copy_from_slice(b"ARROW1");
    std::fs::write(&p, &f).unwrap();
    let e = FeatherLookupProvider::open(&p).unwrap_err();
    assert!(e.to_string().contains("footer length"), "{e}");
    f[22..26].copy_from_slice(&(-5i32).to_le_bytes());
    std::fs::write(&p, &f).unwrap();
    assert!(FeatherLookupProvider::open(&p).is_err());
}

/// A file cut at any offset fails to open; a cut body with the original
/// footer re-attached fails as soon as a block points past the cut.
#[test]
fn truncated_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = sample_sidecar(dir.path());
    let keys: Vec<u64> = ids.iter().map(|&k| k as u64).collect();
    let bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    assert_eq!(open_and_read_all(&path, &keys), Ok(ids.len()));
    let footer_len = i32::from_le_bytes(bytes[n - 10..n - 6].try_into().unwrap()) as usize;
    let trailer = &bytes[n - 10 - footer_len..];
    let data_end = n - 10 - footer_len - 8; // before the end-of-stream marker
    let cut = dir.path().join("cut");
    let mut lengths: Vec<usize> = (0..256).chain((256..n).step_by(61)).collect();
    lengths.extend(n - 256..n);
    for len in lengths {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        assert!(
            open_and_read_all(&cut, &keys).is_err(),
            "plain cut at {len} opened"
        );
        if len <= data_end {
            let mut spliced = bytes[..len].to_vec();
            spliced.extend_from_slice(trailer);
            std::fs::write(&cut, &spliced).unwrap();
            assert!(
                open_and_read_all(&cut, &keys).is_err(),
                "cut at {len} with the footer re-attached opened"
            );
        }
    }
}

/// Random byte flips anywhere in the file never panic (an open, verify or
/// lookup either fails or returns rows for requested keys only).
#[test]
fn byte_flips_never_panic() {
    static PANICS: AtomicUsize = AtomicUsize::new(0);
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICS.fetch_add(1, Ordering::SeqCst);
        default_hook(info);
    }));
    let dir = tempfile::tempdir().unwrap();
    let (path, ids) = sample_sidecar(dir.path());
    let keys: Vec<u64> = ids.iter().map(|&k| k as u64).collect();
    let bytes = std::fs::read(&path).unwrap();
    let flipped = dir.path().join("flipped");
    let mut rng = SplitMix64::new(1234);
    let (mut ok, mut err) = (0, 0);
    for round in 0..400 {
        let mut b = bytes.clone();
        // Bias half the flips to the metadata-dense tail (footer, headers).
        let pos = if round % 2 == 0 {
            rng.below(b.len() as u64) as usize
        } else {
            b.len() - 1 - rng.below(2048.min(b.len() as u64)) as usize
        };
        b[pos] ^= 1 << rng.below(8);
        std::fs::write(&flipped, &b).unwrap();
        match open_and_read_all(&flipped, &keys) {
            Ok(rows) => {
                ok += 1;
                assert!(rows <= ids.len());
            }
            Err(_) => err += 1,
        }
    }
    let _ = std::panic::take_hook();
    println!(
        "byte flips: {ok} read fine (flip in a value or padding), {err} rejected, {} arrow panics caught",
        PANICS.load(Ordering::SeqCst)
    );
    assert!(err > 0);
}

/// A foreign Arrow IPC file (no sidecar metadata) is opened by scanning its
/// keys, or rejected when foreign files are not allowed.
#[tokio::test]
async fn foreign_file_is_scanned_or_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("foreign.arrow");
    let batches = vec![kv(&[1, 4, 9]), kv(&[]), kv(&[10]), kv(&[16, 25])];
    write_ipc(&path, &batches, None, IpcWriteOptions::default());
    let p = FeatherLookupProvider::open(&path).unwrap();
    assert!(!p.has_sidecar_metadata());
    assert_eq!(p.len(), 6);
    assert_eq!(p.key_range(), Some((1, 25)));
    let out = p
        .fetch_by_keys(&[25, 4, 10, 11, 0], "k", None)
        .await
        .unwrap();
    assert_eq!(out, vec![kv(&[4, 10, 25])]);
    let e = OpenOptions::new()
        .allow_foreign(false)
        .open(&path)
        .unwrap_err();
    assert!(matches!(e, OpenError::Foreign { .. }), "{e}");

    let bad_key = dir.path().join("utf8-key.arrow");
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Utf8, false)]));
    let b = RecordBatch::try_new(schema, vec![Arc::new(StringArray::from(vec!["a"]))]).unwrap();
    write_ipc(&bad_key, &[b], None, IpcWriteOptions::default());
    let e = FeatherLookupProvider::open(&bad_key).unwrap_err();
    assert!(matches!(e, OpenError::KeyType { .. }), "{e}");
}

/// Metadata that disagrees with the data: caught at open when it can be
/// (counts, version, types), else when the batch is first used, or at open
/// with `verify_keys`.
#[tokio::test]
async fn lying_metadata_is_caught() {
    let dir = tempfile::tempdir().unwrap();
    let batches = vec![kv(&[1, 2, 3]), kv(&[10, 30, 20]), kv(&[40, 50])];
    let p = dir.path().join("unsorted-batch");
    write_ipc(
        &p,
        &batches,
        Some(meta(8, &[1, 10, 40], 50)),
        IpcWriteOptions::default(),
    );
    let f = FeatherLookupProvider::open(&p).unwrap();
    assert!(f.has_sidecar_metadata());
    assert_eq!(f.fetch(&[2, 50], None).unwrap().unwrap().num_rows(), 2);
    let e = f.fetch(&[30], None).unwrap_err();
    assert!(
        matches!(
            e,
            FetchError::Corrupt(OpenError::KeyInvariant { batch: 1, .. })
        ),
        "{e}"
    );
    assert!(f.fetch(&[30], None).is_err(), "stays an error");
    assert!(f.verify().is_err());
    let e = FeatherLookupProvider::open_verified(&p).unwrap_err();
    assert!(matches!(e, OpenError::KeyInvariant { batch: 1, .. }), "{e}");

    // The index says batch 1 starts at 11; the data says 10.
    let sorted = vec![kv(&[1, 2, 3]), kv(&[10, 20, 30]), kv(&[40, 50])];
    let p = dir.path().join("wrong-index");
    write_ipc(
        &p,
        &sorted,
        Some(meta(8, &[1, 11, 40], 50)),
        IpcWriteOptions::default(),
    );
    let f = FeatherLookupProvider::open(&p).unwrap();
    assert!(matches!(
        f.fetch(&[20], None),
        Err(FetchError::Corrupt(OpenError::KeyInvariant { .. }))
    ));
    // The last key is off.
    let p = dir.path().join("wrong-last");
    write_ipc(
        &p,
        &sorted,
        Some(meta(8, &[1, 10, 40], 60)),
        IpcWriteOptions::default(),
    );
    assert!(FeatherLookupProvider::open_verified(&p).is_err());

    for (name, m) in [
        ("rows", meta(9, &[1, 10, 40], 50)),
        ("batches", meta(8, &[1, 10], 50)),
        ("order", meta(8, &[1, 40, 10], 50)),
        (
            "version",
            meta(8, &[1, 10, 40], 50).replace("format=1", "format=2"),
        ),
        (
            "key-type",
            meta(8, &[1, 10, 40], 50).replace("Int64", "UInt64"),
        ),
        ("garbled", "format=1;rows=8".to_string()),
    ] {
        let p = dir.path().join(name);
        write_ipc(&p, &sorted, Some(m), IpcWriteOptions::default());
        let e = FeatherLookupProvider::open(&p).unwrap_err();
        assert!(matches!(e, OpenError::Metadata { .. }), "{name}: {e}");
    }
}

/// A foreign file with 8-byte alignment (as some writers produce) still
/// reads correctly: misaligned buffers are copied, aligned ones borrowed.
#[tokio::test]
async fn misaligned_foreign_file_reads_correctly() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::UInt64, false),
        Field::new("s", DataType::Utf8, true),
        Field::new("d", DataType::Decimal128(30, 2), true),
    ]));
    let n = 1000u64;
    let batch = RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(arrow::array::UInt64Array::from_iter_values(
                (0..n).map(|i| i * 2),
            )),
            Arc::new(StringArray::from_iter(
                (0..n).map(|i| (i % 3 != 0).then(|| "x".repeat(i as usize % 7))),
            )),
            Arc::new(
                Decimal128Array::from_iter_values((0..n).map(|i| i as i128 * -1_000_000_007))
                    .with_precision_and_scale(30, 2)
                    .unwrap(),
            ),
        ],
    )
    .unwrap();
    let path = dir.path().join("aligned8.arrow");
    let options = IpcWriteOptions::try_new(8, false, MetadataVersion::V5).unwrap();
    write_ipc(
        &path,
        &[batch.slice(0, 333), batch.slice(333, 667)],
        None,
        options,
    );
    let p = FeatherLookupProvider::open_verified(&path).unwrap();
    let all: Vec<u64> = (0..n).map(|i| i * 2).collect();
    assert_eq!(p.fetch_by_keys(&all, "k", None).await.unwrap(), vec![batch]);
}

/// A sidecar is a plain Arrow IPC file: arrow's own reader reads it.
#[test]
fn plain_arrow_reader_reads_a_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let ids = rowids(10_000, 40);
    let p = build_feather(dir.path(), "t.arrow", &payload_chunks(&ids, 999));
    let reader = FileReader::try_new(File::open(p.path()).unwrap(), None).unwrap();
    assert!(reader.custom_metadata()["quiver.lookup"].starts_with("format=1;"));
    let batches: Vec<RecordBatch> = reader.map(Result::unwrap).collect();
    assert_eq!(batches.len(), 2);
    assert_eq!(batches[0].num_rows(), 8192);
    let all = arrow::compute::concat_batches(&payload_schema(), &batches).unwrap();
    assert_eq!(all, payload_batch(&ids));
    assert_eq!(p.batches().unwrap(), batches);
    assert!(batches.iter().all(|b| b.column(0).null_count() == 0));
}
