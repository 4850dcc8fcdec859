//! The builders: NOTES tests 7, 9, 12, 13, 17, 18 and 20, and the extras
//! about key types (Int32, UInt32, keys at or above 2^63), null keys,
//! dictionaries that differ across batches, and the sorted fast path
//! producing a byte-identical file.

mod common;

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Int32Array, Int64Array, RecordBatch, StringArray,
    UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Int32Type, Schema, SchemaRef, UInt64Type};
use common::*;
use quiver_lookup::{
    BuildError, BuildOptions, FeatherLookupProvider, FeatherSidecarBuilder, PointLookupProvider,
    SqliteSidecarBuilder,
};

fn kv_schema(key: DataType) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", key, false),
        Field::new("v", DataType::Utf8, true),
    ]))
}

fn kv_batch(schema: &SchemaRef, keys: ArrayRef, values: &[&str]) -> RecordBatch {
    RecordBatch::try_new(
        Arc::clone(schema),
        vec![keys, Arc::new(StringArray::from(values.to_vec()))],
    )
    .unwrap()
}

fn strings(out: &[RecordBatch], col: usize) -> Vec<String> {
    out.iter()
        .flat_map(|b| {
            b.column(col)
                .as_string::<i32>()
                .iter()
                .map(|v| v.unwrap_or("<null>").to_string())
                .collect::<Vec<_>>()
        })
        .collect()
}

/// NOTES 7: sorted and reversed input give the same rows; only sorted input
/// takes the fast path.
#[tokio::test]
async fn builder_is_sort_agnostic() {
    let dir = tempfile::tempdir().unwrap();
    let ids = rowids(1000, 70);
    let sorted = payload_chunks(&ids, 100);
    let schema = payload_schema();
    let values: Vec<usize> = (1..7).collect();

    let mut a =
        FeatherSidecarBuilder::begin(dir.path().join("a"), schema.clone(), 0, &values).unwrap();
    for b in &sorted {
        a.push_batch(b).unwrap();
    }
    assert!(a.input_was_sorted());
    let (a, ra) = a.finish_with_report().unwrap();
    assert!(ra.input_was_sorted);

    let mut b = FeatherSidecarBuilder::begin(dir.path().join("b"), schema, 0, &values).unwrap();
    for batch in reversed(&sorted) {
        b.push_batch(&batch).unwrap();
    }
    assert!(!b.input_was_sorted());
    let (b, rb) = b.finish_with_report().unwrap();
    assert!(!rb.input_was_sorted);

    let all: Vec<u64> = ids.iter().map(|&k| k as u64).collect();
    let out_a = a.fetch_by_keys(&all, "rowid", None).await.unwrap();
    let out_b = b.fetch_by_keys(&all, "rowid", None).await.unwrap();
    assert_eq!(out_a, out_b);
    let keys = key_values(&out_a);
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(keys, ids);
}

/// Extra: the sorted fast path writes the same bytes as the spill + gather
/// path, whatever the push sizes.
#[test]
fn sorted_fast_path_is_byte_identical_to_gather_path() {
    let dir = tempfile::tempdir().unwrap();
    let ids = rowids(20_000, 71);
    let schema = payload_schema();
    let values: Vec<usize> = (1..7).collect();
    let build = |name: &str, batches: Vec<RecordBatch>| {
        let path = dir.path().join(name);
        let mut b = FeatherSidecarBuilder::begin(&path, schema.clone(), 0, &values).unwrap();
        for batch in &batches {
            b.push_batch(batch).unwrap();
        }
        let (_, report) = b.finish_with_report().unwrap();
        (std::fs::read(path).unwrap(), report)
    };
    let (fast, r1) = build("fast", payload_chunks(&ids, 1000));
    let (fast_odd, r2) = build("fast_odd", payload_chunks(&ids, 7777));
    let mut shuffled_ids = ids.clone();
    SplitMix64::new(3).shuffle(&mut shuffled_ids);
    let (gathered, r3) = build("gathered", payload_chunks(&shuffled_ids, 3000));
    assert!(r1.input_was_sorted && r2.input_was_sorted && !r3.input_was_sorted);
    assert_eq!(r1.batches, 3);
    assert_eq!(fast, fast_odd, "push size must not change the file");
    assert!(
        fast == gathered,
        "fast path and gather path must write the same bytes"
    );
}

/// NOTES 9 (informational): footprint and build time of both sidecars.
#[test]
fn footprint_and_build_time_vs_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let ids = rowids(50_000, 9);
    let batches = payload_chunks(&ids, 2048);
    let t = Instant::now();
    let f = build_feather(dir.path(), "t.arrow", &batches);
    let feather_time = t.elapsed();
    let t = Instant::now();
    let s = build_sqlite(dir.path(), "t.sqlite", &batches);
    let sqlite_time = t.elapsed();
    let fb = std::fs::metadata(f.path()).unwrap().len();
    let sb = std::fs::metadata(s.path()).unwrap().len();
    println!(
        "50k rows: feather {fb} bytes in {feather_time:?}; sqlite {sb} bytes in {sqlite_time:?}"
    );
    assert!(fb > 0 && sb > 0);
}

/// NOTES 12: negative Int64 keys build, and are found through the u64
/// domain (where they sort after the positive keys); SQLite agrees.
#[tokio::test]
async fn signed_negative_keys_build_and_query() {
    let dir = tempfile::tempdir().unwrap();
    let schema = kv_schema(DataType::Int64);
    let batch = kv_batch(
        &schema,
        Arc::new(Int64Array::from(vec![-5, -1, 3, 10])),
        &["neg5", "neg1", "three", "ten"],
    );
    let f = build_feather(dir.path(), "t.arrow", std::slice::from_ref(&batch));
    let s = build_sqlite(dir.path(), "t.sqlite", std::slice::from_ref(&batch));
    let out = parity(&f, &s, &[(-5i64) as u64, 3], None, "negative").await;
    assert_eq!(strings(&out, 1), ["three", "neg5"]);
    let all: Vec<u64> = [-5i64, -1, 3, 10].iter().map(|&k| k as u64).collect();
    let out = parity(&f, &s, &all, None, "all").await;
    assert_eq!(strings(&out, 1), ["three", "ten", "neg5", "neg1"]);
    assert_eq!(f.key_range(), Some((3, (-1i64) as u64)));
}

/// NOTES 13: UInt64 keys.
#[tokio::test]
async fn uint64_keys_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let schema = kv_schema(DataType::UInt64);
    let batch = kv_batch(
        &schema,
        Arc::new(UInt64Array::from(vec![5, 50, 500, 5000])),
        &["a", "b", "c", "d"],
    );
    let f = build_feather(dir.path(), "t.arrow", std::slice::from_ref(&batch));
    let out = f.fetch_by_keys(&[5000, 50], "k", None).await.unwrap();
    assert_eq!(strings(&out, 1), ["b", "d"]);
}

/// Extra: keys at and above 2^63 (negative as SQLite's i64), shuffled.
#[tokio::test]
async fn keys_at_or_above_2_pow_63() {
    let dir = tempfile::tempdir().unwrap();
    let schema = kv_schema(DataType::UInt64);
    let keys: Vec<u64> = vec![u64::MAX, 1 << 63, 7, (1 << 63) - 1, (1 << 63) + 1, 0];
    let names: Vec<String> = keys.iter().map(|k| format!("k{k}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let batch = kv_batch(&schema, Arc::new(UInt64Array::from(keys.clone())), &refs);
    let f = build_feather(dir.path(), "t.arrow", std::slice::from_ref(&batch));
    let s = build_sqlite(dir.path(), "t.sqlite", std::slice::from_ref(&batch));
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    let out = parity(&f, &s, &keys, None, "all").await;
    assert_eq!(
        out[0]
            .column(0)
            .as_primitive::<UInt64Type>()
            .values()
            .as_ref(),
        sorted.as_slice()
    );
    parity(&f, &s, &[1 << 63, 5, u64::MAX], Some(&[1]), "some").await;
}

/// Extra: Int32 (with negatives) and UInt32 keys, against SQLite.
#[tokio::test]
async fn int32_and_uint32_keys() {
    let dir = tempfile::tempdir().unwrap();
    let schema = kv_schema(DataType::Int32);
    let ks = vec![i32::MIN, -3, 0, 2, i32::MAX];
    let batch = kv_batch(
        &schema,
        Arc::new(Int32Array::from(ks.clone())),
        &["min", "m3", "zero", "two", "max"],
    );
    let f = build_feather(dir.path(), "i.arrow", std::slice::from_ref(&batch));
    let s = build_sqlite(dir.path(), "i.sqlite", std::slice::from_ref(&batch));
    let keys: Vec<u64> = ks.iter().map(|&k| k as u64).collect();
    let out = parity(&f, &s, &keys, None, "int32").await;
    assert_eq!(strings(&out, 1), ["zero", "two", "max", "min", "m3"]);
    // A u64 that no Int32 key maps to is simply absent.
    assert!(
        f.fetch_by_keys(&[1 << 40], "k", None)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(out[0].column(0).data_type(), &DataType::Int32);

    let schema = kv_schema(DataType::UInt32);
    let batch = kv_batch(
        &schema,
        Arc::new(UInt32Array::from(vec![u32::MAX, 1, 70_000])),
        &["max", "one", "seventy"],
    );
    let f = build_feather(dir.path(), "u.arrow", std::slice::from_ref(&batch));
    let s = build_sqlite(dir.path(), "u.sqlite", std::slice::from_ref(&batch));
    let out = parity(&f, &s, &[u64::from(u32::MAX), 1, 2], None, "uint32").await;
    assert_eq!(strings(&out, 1), ["one", "max"]);
}

/// NOTES 17: an empty build is a valid, empty sidecar.
#[tokio::test]
async fn empty_build_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let b = FeatherSidecarBuilder::begin(
        dir.path().join("e"),
        payload_schema(),
        0,
        &[1, 2, 3, 4, 5, 6],
    )
    .unwrap();
    let p = b.finish().unwrap();
    assert!(p.is_empty());
    assert_eq!(p.len(), 0);
    assert!(
        p.fetch_by_keys(&[1, 5, 9], "rowid", None)
            .await
            .unwrap()
            .is_empty()
    );
    let reopened = FeatherLookupProvider::open_verified(dir.path().join("e")).unwrap();
    assert_eq!(reopened.len(), 0);
    assert_eq!(reopened.schema(), payload_schema());
    // Zero-row pushes change nothing.
    let mut b = FeatherSidecarBuilder::begin(
        dir.path().join("z"),
        payload_schema(),
        0,
        &[1, 2, 3, 4, 5, 6],
    )
    .unwrap();
    b.push_batch(&payload_batch(&[])).unwrap();
    assert!(b.finish().unwrap().is_empty());
}

/// NOTES 18: one row.
#[tokio::test]
async fn single_row_build() {
    let dir = tempfile::tempdir().unwrap();
    let f = build_feather(dir.path(), "t.arrow", &[payload_batch(&[42])]);
    assert_eq!(f.len(), 1);
    assert_eq!(
        key_values(&f.fetch_by_keys(&[42], "rowid", None).await.unwrap()),
        [42]
    );
    assert!(
        f.fetch_by_keys(&[7], "rowid", None)
            .await
            .unwrap()
            .is_empty()
    );
}

/// NOTES 20: a key repeated in a later push is rejected at finish; within
/// one push too; SQLite rejects it at push.
#[test]
fn duplicate_keys_across_pushes_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let schema = payload_schema();
    for (name, pushes) in [
        ("across", vec![vec![1, 2], vec![2, 3]]),
        ("within", vec![vec![4, 1, 4]]),
        ("far", vec![vec![1, 2, 3], vec![10, 11], vec![3]]),
    ] {
        let mut b = FeatherSidecarBuilder::begin(
            dir.path().join(name),
            schema.clone(),
            0,
            &[1, 2, 3, 4, 5, 6],
        )
        .unwrap();
        for p in &pushes {
            b.push_batch(&payload_batch(p)).unwrap();
        }
        let err = b.finish().unwrap_err();
        assert!(
            matches!(err, BuildError::DuplicateKey { .. }),
            "{name}: {err}"
        );
        assert!(!dir.path().join(name).exists(), "{name}: nothing published");

        let mut s = SqliteSidecarBuilder::begin(
            dir.path().join(format!("{name}.db")),
            schema.clone(),
            0,
            &[1, 2, 3, 4, 5, 6],
        )
        .unwrap();
        let errs: Vec<_> = pushes
            .iter()
            .filter_map(|p| s.push_batch(&payload_batch(p)).err())
            .collect();
        assert!(
            matches!(errs.first(), Some(BuildError::DuplicateKey { .. })),
            "{name}: {errs:?}"
        );
    }
}

/// Extra: a null key is rejected at push, naming the row; the builder
/// stays usable.
#[test]
fn null_keys_rejected_at_push() {
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, true),
        Field::new("v", DataType::Utf8, true),
    ]));
    let good = kv_batch(&schema, Arc::new(Int64Array::from(vec![1, 2])), &["a", "b"]);
    let bad = kv_batch(
        &schema,
        Arc::new(Int64Array::from(vec![Some(3), None])),
        &["c", "d"],
    );
    let mut f =
        FeatherSidecarBuilder::begin(dir.path().join("f"), schema.clone(), 0, &[1]).unwrap();
    let mut s = SqliteSidecarBuilder::begin(dir.path().join("s"), schema.clone(), 0, &[1]).unwrap();
    f.push_batch(&good).unwrap();
    s.push_batch(&good).unwrap();
    let e = f.push_batch(&bad).unwrap_err();
    assert!(matches!(e, BuildError::NullKey { row: 3 }), "{e}");
    let e = s.push_batch(&bad).unwrap_err();
    assert!(matches!(e, BuildError::NullKey { row: 3 }), "{e}");
    let more = kv_batch(&schema, Arc::new(Int64Array::from(vec![5])), &["e"]);
    f.push_batch(&more).unwrap();
    s.push_batch(&more).unwrap();
    assert_eq!(f.finish().unwrap().len(), 3);
    assert_eq!(s.finish().unwrap().len().unwrap(), 3);
}

/// Extra: bad arguments are typed errors.
#[test]
fn begin_and_push_validate_their_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let schema = kv_schema(DataType::Int64);
    let p = dir.path().join("x");
    let e = FeatherSidecarBuilder::begin(&p, schema.clone(), 0, &[1, 2]).unwrap_err();
    assert!(
        matches!(
            e,
            BuildError::Arity {
                fields: 2,
                values: 2
            }
        ),
        "{e}"
    );
    let e = FeatherSidecarBuilder::begin(&p, kv_schema(DataType::Utf8), 0, &[1]).unwrap_err();
    assert!(matches!(e, BuildError::KeyType { .. }), "{e}");
    let e = SqliteSidecarBuilder::begin(&p, kv_schema(DataType::Float64), 0, &[1]).unwrap_err();
    assert!(matches!(e, BuildError::KeyType { .. }), "{e}");

    let mut b = FeatherSidecarBuilder::begin(&p, schema.clone(), 0, &[5]).unwrap();
    let batch = kv_batch(&schema, Arc::new(Int64Array::from(vec![1])), &["a"]);
    let e = b.push_batch(&batch).unwrap_err();
    assert!(
        matches!(
            e,
            BuildError::ColumnIndex {
                index: 5,
                columns: 2
            }
        ),
        "{e}"
    );
    drop(b);
    let mut b = FeatherSidecarBuilder::begin(&p, schema.clone(), 1, &[0]).unwrap();
    let e = b.push_batch(&batch).unwrap_err();
    assert!(matches!(e, BuildError::SchemaMismatch { .. }), "{e}");
    drop(b);
    // Nothing was left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Extra: `batch_rows` sets the record batch size.
#[tokio::test]
async fn batch_rows_option() {
    let dir = tempfile::tempdir().unwrap();
    let ids = rowids(1000, 12);
    let mut b = FeatherSidecarBuilder::begin_with(
        dir.path().join("t"),
        payload_schema(),
        0,
        &[1, 2, 3, 4, 5, 6],
        BuildOptions::default().batch_rows(64),
    )
    .unwrap();
    for batch in reversed(&payload_chunks(&ids, 100)) {
        b.push_batch(&batch).unwrap();
    }
    let f = b.finish().unwrap();
    assert_eq!(f.num_batches(), 16);
    assert_eq!(f.batch_rows(), 64);
    let keys: Vec<u64> = ids.iter().map(|&k| k as u64).collect();
    assert_eq!(
        f.fetch_by_keys(&keys, "rowid", None).await.unwrap(),
        expected(&ids, &keys)
    );
}

fn dict_batch(
    schema: &SchemaRef,
    keys: &[i64],
    codes: &[Option<i8>],
    dict: &[&str],
) -> RecordBatch {
    let d = DictionaryArray::<arrow::datatypes::Int8Type>::try_new(
        arrow::array::Int8Array::from(codes.to_vec()),
        Arc::new(StringArray::from(dict.to_vec())),
    )
    .unwrap();
    RecordBatch::try_new(
        Arc::clone(schema),
        vec![Arc::new(Int64Array::from(keys.to_vec())), Arc::new(d)],
    )
    .unwrap()
}

/// Extra (the seed rejected this): dictionary columns whose dictionaries
/// differ across pushed batches round-trip, sorted or not.
#[tokio::test]
async fn differing_dictionaries_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let dt = DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Utf8));
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new("tag", dt.clone(), true),
    ]));
    let batches = [
        dict_batch(
            &schema,
            &[1, 2, 3],
            &[Some(0), Some(1), None],
            &["red", "green", "unused"],
        ),
        dict_batch(
            &schema,
            &[4, 5, 6],
            &[Some(1), Some(0), Some(2)],
            &["blue", "red", "violet"],
        ),
        dict_batch(&schema, &[7, 8], &[Some(0), Some(0)], &["green"]),
    ];
    let want = [
        "red", "green", "<null>", "red", "blue", "violet", "green", "green",
    ];
    for (name, order, batch_rows) in [
        ("sorted", vec![0, 1, 2], 8192),
        ("shuffled", vec![2, 0, 1], 8192),
        ("sorted-small", vec![0, 1, 2], 2),
        ("shuffled-small", vec![1, 2, 0], 3),
    ] {
        let path = dir.path().join(name);
        let mut b = FeatherSidecarBuilder::begin_with(
            &path,
            schema.clone(),
            0,
            &[1],
            BuildOptions::default().batch_rows(batch_rows),
        )
        .unwrap();
        for &i in &order {
            b.push_batch(&batches[i]).unwrap();
        }
        b.finish().unwrap();
        let f = FeatherLookupProvider::open_verified(&path).unwrap();
        let out = f
            .fetch_by_keys(&[8, 1, 2, 3, 4, 5, 6, 7], "k", None)
            .await
            .unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].schema(), schema, "{name}");
        let tag = arrow::compute::cast(out[0].column(1), &DataType::Utf8).unwrap();
        let got: Vec<String> = tag
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap_or("<null>").to_string())
            .collect();
        assert_eq!(got, want, "{name}");
        // One dictionary for the whole file, holding only values in use.
        let d = out[0]
            .column(1)
            .as_dictionary::<arrow::datatypes::Int8Type>();
        assert_eq!(d.values().len(), 4, "{name}");
        // A single-key lookup keeps the dictionary type too.
        let one = f.fetch_by_keys(&[6], "k", None).await.unwrap();
        assert_eq!(one[0].column(1).data_type(), &dt);
    }
}

/// Extra: dictionaries nested inside other types are rejected up front.
#[test]
fn nested_dictionary_is_rejected_at_begin() {
    let dir = tempfile::tempdir().unwrap();
    let dt = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let schema = Arc::new(Schema::new(vec![
        Field::new("k", DataType::Int64, false),
        Field::new(
            "l",
            DataType::List(Arc::new(Field::new("item", dt, true))),
            true,
        ),
    ]));
    let e = FeatherSidecarBuilder::begin(dir.path().join("x"), schema, 0, &[1]).unwrap_err();
    assert!(matches!(e, BuildError::UnsupportedType { .. }), "{e}");
}

/// Extra: an Int32 key column with many pushes keeps the u64 order.
#[tokio::test]
async fn many_small_pushes_in_random_order() {
    let dir = tempfile::tempdir().unwrap();
    let schema = kv_schema(DataType::Int32);
    let mut keys: Vec<i32> = (0..5000).map(|i| i * 3 - 7000).collect();
    SplitMix64::new(5).shuffle(&mut keys);
    let mut b =
        FeatherSidecarBuilder::begin(dir.path().join("t"), schema.clone(), 0, &[1]).unwrap();
    for chunk in keys.chunks(37) {
        let names: Vec<String> = chunk.iter().map(|k| format!("v{k}")).collect();
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        b.push_batch(&kv_batch(
            &schema,
            Arc::new(Int32Array::from(chunk.to_vec())),
            &refs,
        ))
        .unwrap();
    }
    let f = b.finish().unwrap();
    let all: Vec<u64> = keys.iter().map(|&k| k as u64).collect();
    let out = f.fetch_by_keys(&all, "k", None).await.unwrap();
    let got = out[0].column(0).as_primitive::<Int32Type>();
    let mut want = keys.clone();
    want.sort_unstable_by_key(|&k| k as u64);
    assert_eq!(got.values().as_ref(), want.as_slice());
    let names = out[0].column(1).as_string::<i32>();
    assert!((0..got.len()).all(|i| names.value(i) == format!("v{}", got.value(i))));
    assert_eq!(out[0].column(1).null_count(), 0);
}
