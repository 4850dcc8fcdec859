//! Publishing: the output appears by an atomic rename, a reader that has
//! the old file mapped keeps reading the old rows while the path is rebuilt
//! under it (NOTES extra), a failed or abandoned build leaves the
//! destination and the directory as they were.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use common::*;
use quiver_lookup::{
    BuildOptions, FeatherLookupProvider, FeatherSidecarBuilder, SqliteSidecarBuilder,
};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("v", DataType::Utf8, false),
    ]))
}

fn batch(keys: &[i64], tag: &str) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from(keys.to_vec())),
            Arc::new(StringArray::from_iter_values(
                keys.iter().map(|k| format!("{tag}-{k}")),
            )),
        ],
    )
    .unwrap()
}

fn build(path: &Path, keys: &[i64], tag: &str, shuffle: bool) -> FeatherLookupProvider {
    let mut keys = keys.to_vec();
    if shuffle {
        SplitMix64::new(tag.len() as u64).shuffle(&mut keys);
    }
    let mut b = FeatherSidecarBuilder::begin_with(
        path,
        schema(),
        0,
        &[1],
        BuildOptions::default().batch_rows(500),
    )
    .unwrap();
    for c in keys.chunks(700) {
        b.push_batch(&batch(c, tag)).unwrap();
    }
    b.finish().unwrap()
}

fn tags(p: &FeatherLookupProvider, keys: &[u64]) -> BTreeSet<String> {
    let out = p.fetch(keys, None).unwrap().unwrap();
    out.column(1)
        .as_string::<i32>()
        .iter()
        .map(|v| v.unwrap().split('-').next().unwrap().to_string())
        .collect()
}

fn dir_entries(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// A provider opened on the old file keeps returning the old rows, from
/// batches it had decoded and from batches it decodes only after the path
/// was replaced, while lookups run concurrently with the rebuilds.
#[test]
fn reader_keeps_old_file_across_rebuild() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.arrow");
    let keys: Vec<i64> = (0..5000).map(|i| i * 3).collect();
    let all: Vec<u64> = keys.iter().map(|&k| k as u64).collect();
    build(&path, &keys, "old", false);
    let old = FeatherLookupProvider::open(&path).unwrap();
    // Decode only the first batch before the rebuilds.
    assert_eq!(tags(&old, &[0]), BTreeSet::from(["old".to_string()]));

    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (old, stop, all) = (old.clone(), Arc::clone(&stop), all.clone());
        std::thread::spawn(move || {
            let mut rng = SplitMix64::new(1);
            let mut rounds = 0;
            while !stop.load(Ordering::SeqCst) || rounds < 10 {
                let k = all[rng.below(all.len() as u64) as usize];
                assert_eq!(tags(&old, &[k]), BTreeSet::from(["old".to_string()]));
                rounds += 1;
            }
            rounds
        })
    };
    for round in 0..5 {
        let tag = format!("new{round}");
        build(&path, &keys, &tag, round % 2 == 1);
        let fresh = FeatherLookupProvider::open(&path).unwrap();
        assert_eq!(tags(&fresh, &all), BTreeSet::from([tag]));
    }
    stop.store(true, Ordering::SeqCst);
    assert!(reader.join().unwrap() >= 10);
    // Every batch of the old mapping, including ones first decoded now.
    assert_eq!(tags(&old, &all), BTreeSet::from(["old".to_string()]));
    old.verify().unwrap();
    assert_eq!(
        dir_entries(dir.path()),
        BTreeSet::from(["t.arrow".to_string()])
    );
}

/// A failed build (duplicate keys found at finish) leaves the destination
/// byte for byte as it was, and no temp files.
#[test]
fn failed_build_leaves_destination_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.arrow");
    build(&path, &[1, 2, 3], "old", false);
    let before = std::fs::read(&path).unwrap();
    let mut b = FeatherSidecarBuilder::begin(&path, schema(), 0, &[1]).unwrap();
    b.push_batch(&batch(&[5, 6], "x")).unwrap();
    b.push_batch(&batch(&[4, 6], "x")).unwrap();
    assert!(b.finish().is_err());
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(
        dir_entries(dir.path()),
        BTreeSet::from(["t.arrow".to_string()])
    );
}

/// A builder dropped before `finish` removes its temp files (sorted and
/// spilling Feather builds, and SQLite).
#[test]
fn abandoned_builders_clean_up() {
    let dir = tempfile::tempdir().unwrap();
    let mut sorted = FeatherSidecarBuilder::begin(dir.path().join("a"), schema(), 0, &[1]).unwrap();
    sorted.push_batch(&batch(&[1, 2], "x")).unwrap();
    let mut spilling =
        FeatherSidecarBuilder::begin(dir.path().join("b"), schema(), 0, &[1]).unwrap();
    spilling.push_batch(&batch(&[2, 1], "x")).unwrap();
    let mut sqlite = SqliteSidecarBuilder::begin(dir.path().join("c"), schema(), 0, &[1]).unwrap();
    sqlite.push_batch(&batch(&[2, 1], "x")).unwrap();
    assert_eq!(
        dir_entries(dir.path()).len(),
        3,
        "three temp files while building"
    );
    drop((sorted, spilling, sqlite));
    assert!(dir_entries(dir.path()).is_empty());
}
