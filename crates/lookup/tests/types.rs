//! Type fidelity: NOTES tests 5 and 6, widened to every type the issue
//! lists (Decimal128/256, Struct, Map, FixedSizeList, Dictionary, Timestamp
//! with zone, nested List, LargeUtf8, Utf8View, Binary, Boolean, Float16)
//! and more, through both build paths; and the SQLite-holdable subset
//! checked against SQLite.

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BinaryViewArray, BooleanArray, Date32Array, Decimal128Array,
    Decimal256Array, DurationMillisecondArray, FixedSizeBinaryArray, FixedSizeListArray,
    Float16Array, Float32Array, Float64Array, Int8Array, Int32Builder, Int64Array,
    IntervalMonthDayNanoArray, LargeBinaryArray, LargeListBuilder, LargeStringArray, ListArray,
    ListBuilder, MapBuilder, NullArray, RecordBatch, StringBuilder, StringDictionaryBuilder,
    StringViewArray, StructArray, Time64NanosecondArray, TimestampMicrosecondArray, UInt64Array,
};
use arrow::buffer::NullBuffer;
use arrow::compute::{concat_batches, sort_to_indices, take_record_batch};
use arrow::datatypes::{
    ArrowPrimitiveType, DataType, Field, Fields, Float16Type, Float64Type, Int32Type,
    IntervalMonthDayNano, Schema, SchemaRef, i256,
};
use common::*;
use quiver_lookup::{
    BuildError, BuildOptions, FeatherLookupProvider, FeatherSidecarBuilder, PointLookupProvider,
    SqliteSidecarBuilder,
};

type F16 = <Float16Type as ArrowPrimitiveType>::Native;

/// Every column type under test, as (name, array) for the given keys.
/// Values are functions of the key; the dictionary column's dictionary is
/// built per call, so it differs between batches.
fn rich_columns(keys: &[i64]) -> Vec<(&'static str, ArrayRef)> {
    let n = keys.len();
    let opt = |k: i64, m: i64| k % m != 0;
    let mut map = MapBuilder::new(None, StringBuilder::new(), Int32Builder::new());
    let mut nested = ListBuilder::new(ListBuilder::new(Int32Builder::new()));
    let mut large_list = LargeListBuilder::new(StringBuilder::new());
    let mut dict = StringDictionaryBuilder::<Int32Type>::new();
    for &k in keys {
        if opt(k, 6) {
            for j in 0..(k % 3) {
                map.keys().append_value(format!("key{j}"));
                map.values().append_value((k * 10 + j) as i32);
            }
            map.append(true).unwrap();
        } else {
            map.append(false).unwrap();
        }
        if opt(k, 5) {
            for j in 0..(k % 4) {
                for x in 0..j {
                    nested.values().values().append_value((k + x) as i32);
                }
                nested.values().append(j != 2);
            }
            nested.append(true);
        } else {
            nested.append(false);
        }
        for j in 0..(k % 3) {
            large_list.values().append_value(format!("s{k}-{j}"));
        }
        large_list.append(opt(k, 8));
        if opt(k, 11) {
            dict.append_value(format!("tag-{}", k % 13));
        } else {
            dict.append_null();
        }
    }
    let lat = Float64Array::from_iter_values(keys.iter().map(|&k| k as f64 / 3.0));
    let lon = Float64Array::from_iter(keys.iter().map(|&k| opt(k, 4).then(|| -(k as f64))));
    let point = StructArray::try_new(
        Fields::from(vec![
            Field::new("lat", DataType::Float64, false),
            Field::new("lon", DataType::Float64, true),
        ]),
        vec![Arc::new(lat), Arc::new(lon)],
        Some(NullBuffer::from_iter(keys.iter().map(|&k| opt(k, 9)))),
    )
    .unwrap();
    let long = |k: i64| format!("a string long enough to live out of line #{k}");
    vec![
        (
            "dec128",
            Arc::new(
                Decimal128Array::from_iter(
                    keys.iter()
                        .map(|&k| opt(k, 7).then(|| (i128::from(k) - 500) * 123_456_789)),
                )
                .with_precision_and_scale(20, 4)
                .unwrap(),
            ),
        ),
        (
            "dec256",
            Arc::new(
                Decimal256Array::from_iter(keys.iter().map(|&k| {
                    opt(k, 10).then(|| {
                        i256::from_i128(i128::from(k) * 1_000_000_007)
                            .wrapping_mul(i256::from_i128(-1_000_000_000_000))
                    })
                }))
                .with_precision_and_scale(40, 6)
                .unwrap(),
            ),
        ),
        (
            "ts_tz",
            Arc::new(
                TimestampMicrosecondArray::from_iter(
                    keys.iter()
                        .map(|&k| opt(k, 12).then(|| 1_700_000_000_000_000 + k * 1_000_003)),
                )
                .with_timezone("America/New_York"),
            ),
        ),
        (
            "fsl",
            Arc::new(
                FixedSizeListArray::from_iter_primitive::<Float64Type, _, _>(
                    keys.iter().map(|&k| {
                        opt(k, 7).then(|| vec![Some(k as f64), None, Some(-(k as f64) / 2.0)])
                    }),
                    3,
                ),
            ),
        ),
        ("point", Arc::new(point)),
        ("map", Arc::new(map.finish())),
        ("dict", Arc::new(dict.finish())),
        ("nested", Arc::new(nested.finish())),
        (
            "list_f64",
            Arc::new(ListArray::from_iter_primitive::<Float64Type, _, _>(
                keys.iter().map(|&k| {
                    opt(k, 3).then(|| (0..k % 4).map(|j| Some(j as f64 * 0.5)).collect::<Vec<_>>())
                }),
            )),
        ),
        ("large_list", Arc::new(large_list.finish())),
        (
            "large_utf8",
            Arc::new(LargeStringArray::from_iter(
                keys.iter().map(|&k| opt(k, 13).then(|| long(k))),
            )),
        ),
        (
            "utf8_view",
            Arc::new(StringViewArray::from_iter(keys.iter().map(|&k| {
                opt(k, 14).then(|| if k % 2 == 0 { format!("s{k}") } else { long(k) })
            }))),
        ),
        (
            "binary",
            Arc::new(BinaryArray::from_iter(keys.iter().map(|&k| {
                opt(k, 15).then(|| k.to_le_bytes()[..(k % 8) as usize].to_vec())
            }))),
        ),
        (
            "large_binary",
            Arc::new(LargeBinaryArray::from_iter(
                keys.iter()
                    .map(|&k| opt(k, 16).then(|| long(k).into_bytes())),
            )),
        ),
        (
            "binary_view",
            Arc::new(BinaryViewArray::from_iter(
                keys.iter()
                    .map(|&k| opt(k, 17).then(|| long(k).into_bytes())),
            )),
        ),
        (
            "fixed_binary",
            Arc::new(
                FixedSizeBinaryArray::try_from_sparse_iter_with_size(
                    keys.iter()
                        .map(|&k| opt(k, 18).then(|| (k as u32).to_be_bytes())),
                    4,
                )
                .unwrap(),
            ),
        ),
        (
            "bool",
            Arc::new(BooleanArray::from_iter(
                keys.iter().map(|&k| opt(k, 19).then_some(k % 3 == 0)),
            )),
        ),
        (
            "f16",
            Arc::new(Float16Array::from_iter(keys.iter().map(|&k| {
                opt(k, 20).then(|| F16::from_f32((k % 1000) as f32 / 8.0))
            }))),
        ),
        (
            "f32",
            Arc::new(Float32Array::from_iter(
                keys.iter().map(|&k| opt(k, 21).then_some(k as f32 * 1.25)),
            )),
        ),
        (
            "date32",
            Arc::new(Date32Array::from_iter(
                keys.iter().map(|&k| opt(k, 22).then(|| 19_000 + k as i32)),
            )),
        ),
        (
            "time64",
            Arc::new(Time64NanosecondArray::from_iter(keys.iter().map(|&k| {
                opt(k, 23).then(|| k * 1_000_000_007 % 86_400_000_000_000)
            }))),
        ),
        (
            "duration",
            Arc::new(DurationMillisecondArray::from_iter(
                keys.iter().map(|&k| opt(k, 24).then(|| -k * 17)),
            )),
        ),
        (
            "interval",
            Arc::new(IntervalMonthDayNanoArray::from_iter(keys.iter().map(
                |&k| opt(k, 25).then(|| IntervalMonthDayNano::new(k as i32 % 12, 3, k * 1000)),
            ))),
        ),
        (
            "u64",
            Arc::new(UInt64Array::from_iter(
                keys.iter()
                    .map(|&k| opt(k, 26).then(|| u64::MAX - k as u64)),
            )),
        ),
        (
            "i8",
            Arc::new(Int8Array::from_iter(
                keys.iter()
                    .map(|&k| opt(k, 27).then_some((k % 256 - 128) as i8)),
            )),
        ),
        ("null", Arc::new(NullArray::new(n))),
    ]
}

fn rich_schema() -> SchemaRef {
    let cols = rich_columns(&[1, 2]);
    let mut fields = vec![Field::new("k", DataType::Int64, false)];
    for (name, a) in &cols {
        let mut f = Field::new(*name, a.data_type().clone(), true);
        if *name == "ts_tz" {
            f = f.with_metadata(HashMap::from([("unit".into(), "event time".into())]));
        }
        fields.push(f);
    }
    Arc::new(Schema::new_with_metadata(
        fields,
        HashMap::from([("origin".into(), "types.rs".into())]),
    ))
}

fn rich_batch(schema: &SchemaRef, keys: &[i64]) -> RecordBatch {
    let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(keys.to_vec()))];
    columns.extend(rich_columns(keys).into_iter().map(|(_, a)| a));
    RecordBatch::try_new(Arc::clone(schema), columns).unwrap()
}

/// Concatenates and sorts input batches by key: the expected sidecar rows.
fn sorted_rows(schema: &SchemaRef, batches: &[RecordBatch]) -> RecordBatch {
    let all = concat_batches(schema, batches).unwrap();
    let order = sort_to_indices(all.column(0), None, None).unwrap();
    take_record_batch(&all, &order).unwrap()
}

fn values_of(schema: &SchemaRef) -> Vec<usize> {
    (1..schema.fields().len()).collect()
}

/// NOTES 5: three rows, every type, output types and values exact.
#[tokio::test]
async fn type_fidelity_roundtrip() {
    let dir = tempfile::tempdir().unwrap();
    let schema = rich_schema();
    let batch = rich_batch(&schema, &[3, 1, 2]);
    let path = dir.path().join("t.arrow");
    let mut b =
        FeatherSidecarBuilder::begin(&path, schema.clone(), 0, &values_of(&schema)).unwrap();
    b.push_batch(&batch).unwrap();
    let f = b.finish().unwrap();
    assert_eq!(
        f.schema(),
        schema,
        "schema, field metadata and types verbatim"
    );
    let out = f.fetch_by_keys(&[1, 2, 3], "k", None).await.unwrap();
    assert_eq!(out, vec![sorted_rows(&schema, &[batch])]);
    for (i, field) in schema.fields().iter().enumerate() {
        assert_eq!(
            out[0].column(i).data_type(),
            field.data_type(),
            "{}",
            field.name()
        );
    }
}

/// Every type through the gather path (shuffled pushes, differing
/// dictionaries, many output batches), lookups through take and
/// interleave, a projection, and a reopened, verified file.
#[tokio::test]
async fn rich_types_multi_batch_shuffled() {
    let dir = tempfile::tempdir().unwrap();
    let schema = rich_schema();
    let mut keys: Vec<i64> = rowids(3000, 50);
    SplitMix64::new(50).shuffle(&mut keys);
    let batches: Vec<RecordBatch> = keys.chunks(500).map(|c| rich_batch(&schema, c)).collect();
    let path = dir.path().join("t.arrow");
    let mut b = FeatherSidecarBuilder::begin_with(
        &path,
        schema.clone(),
        0,
        &values_of(&schema),
        BuildOptions::default().batch_rows(1024),
    )
    .unwrap();
    for batch in &batches {
        b.push_batch(batch).unwrap();
    }
    assert!(!b.input_was_sorted());
    b.finish().unwrap();
    let f = FeatherLookupProvider::open_verified(&path).unwrap();
    assert_eq!(f.num_batches(), 3);
    let want = sorted_rows(&schema, &batches);
    let all: Vec<u64> = keys.iter().map(|&k| k as u64).collect();
    let out = f.fetch_by_keys(&all, "k", None).await.unwrap();
    assert_eq!(out, vec![want.clone()]);

    // One key per lookup (the `take` path) and a projected subset.
    let mut rng = SplitMix64::new(1);
    for _ in 0..20 {
        let i = rng.below(want.num_rows() as u64) as usize;
        let k = want
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap()
            .value(i);
        let out = f.fetch_by_keys(&[k as u64], "k", None).await.unwrap();
        assert_eq!(out, vec![want.slice(i, 1)]);
    }
    let proj = [7, 0, 12, 8];
    let some = sample(&keys, 200, &mut rng);
    let out = f.fetch_by_keys(&some, "k", Some(&proj)).await.unwrap();
    let full = f.fetch_by_keys(&some, "k", None).await.unwrap();
    assert_eq!(out[0], full[0].project(&proj).unwrap());
}

/// The fast path and the gather path write the same bytes for every type
/// (checked column by column, so a failure names the type).
#[test]
fn rich_types_fast_path_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let rich = rich_schema();
    let keys: Vec<i64> = rowids(2500, 51);
    let mut shuffled = keys.clone();
    SplitMix64::new(9).shuffle(&mut shuffled);
    let build = |name: &str, idx: &[usize], order: &[i64], chunk: usize| {
        let schema = Arc::new(rich.project(idx).unwrap());
        let path = dir.path().join(name);
        let mut b = FeatherSidecarBuilder::begin_with(
            &path,
            schema.clone(),
            0,
            &values_of(&schema),
            BuildOptions::default().batch_rows(1000),
        )
        .unwrap();
        for c in order.chunks(chunk) {
            b.push_batch(&rich_batch(&rich, c).project(idx).unwrap())
                .unwrap();
        }
        let (_, report) = b.finish_with_report().unwrap();
        (std::fs::read(&path).unwrap(), report.input_was_sorted)
    };
    let mut differ = Vec::new();
    let all: Vec<usize> = (0..rich.fields().len()).collect();
    let mut cases: Vec<(String, Vec<usize>)> = (1..rich.fields().len())
        .map(|c| (rich.field(c).name().clone(), vec![0, c]))
        .collect();
    cases.push(("all columns".into(), all));
    for (name, idx) in cases {
        let (fast, sorted) = build("fast", &idx, &keys, 333);
        assert!(sorted);
        let (gathered, sorted) = build("gathered", &idx, &shuffled, 700);
        assert!(!sorted);
        if fast != gathered {
            differ.push(name);
        }
    }
    assert!(
        differ.is_empty(),
        "the build paths wrote different bytes for {differ:?}"
    );
}

/// NOTES 6: SQLite rejects what it cannot hold; Feather takes it.
#[test]
fn sqlite_rejects_types_feather_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let rich = rich_schema();
    for name in [
        "dec128",
        "dec256",
        "fsl",
        "point",
        "map",
        "dict",
        "nested",
        "list_f64",
        "large_list",
        "interval",
        "null",
    ] {
        let field = rich.field_with_name(name).unwrap().clone();
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            field,
        ]));
        let e = SqliteSidecarBuilder::begin(dir.path().join(name), schema.clone(), 0, &[1])
            .unwrap_err();
        assert!(
            matches!(&e, BuildError::UnsupportedType { column, .. } if column == name),
            "{name}: {e}"
        );
        FeatherSidecarBuilder::begin(dir.path().join(name), schema, 0, &[1]).unwrap();
    }
}

/// Every type SQLite can hold round-trips through it exactly as through
/// Feather (SQLite as the oracle), including UInt64 values above i64::MAX.
#[tokio::test]
async fn sqlite_holdable_types_agree() {
    let dir = tempfile::tempdir().unwrap();
    let rich = rich_schema();
    let names = [
        "ts_tz",
        "large_utf8",
        "utf8_view",
        "binary",
        "large_binary",
        "binary_view",
        "fixed_binary",
        "bool",
        "f16",
        "f32",
        "date32",
        "time64",
        "duration",
        "u64",
        "i8",
    ];
    let idx: Vec<usize> = std::iter::once(0)
        .chain(names.iter().map(|n| rich.index_of(n).unwrap()))
        .collect();
    let schema = Arc::new(rich.project(&idx).unwrap());
    let mut keys = rowids(2000, 52);
    SplitMix64::new(52).shuffle(&mut keys);
    let batches: Vec<RecordBatch> = keys
        .chunks(300)
        .map(|c| rich_batch(&rich, c).project(&idx).unwrap())
        .collect();
    let f = build_feather(dir.path(), "t.arrow", &batches);
    let s = build_sqlite(dir.path(), "t.sqlite", &batches);
    assert_eq!(s.schema(), schema);
    let want = sorted_rows(&schema, &batches);
    let all: Vec<u64> = keys.iter().map(|&k| k as u64).collect();
    let out = parity(&f, &s, &all, None, "all").await;
    assert_eq!(out, vec![want]);
    let mut rng = SplitMix64::new(3);
    for k in [1, 10, 100] {
        let some = sample(&keys, k, &mut rng);
        parity(&f, &s, &some, None, "sample").await;
        parity(&f, &s, &some, Some(&[9, 3, 0]), "projected sample").await;
    }
}
