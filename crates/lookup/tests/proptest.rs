//! Property test: for random key sets (any u64, pushed in random chunks and
//! order, any record batch size) and random lookups, the Feather sidecar
//! returns exactly what a `BTreeMap` model returns, and SQLite agrees.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, UInt64Type};
use proptest::prelude::*;
use quiver_lookup::{BuildOptions, FeatherSidecarBuilder, SqliteSidecarBuilder};

fn schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("k", DataType::UInt64, false),
        Field::new("v", DataType::Utf8, true),
    ]))
}

fn batch(keys: &[u64]) -> RecordBatch {
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(UInt64Array::from(keys.to_vec())),
            Arc::new(StringArray::from_iter(
                keys.iter().map(|k| (k % 5 != 0).then(|| format!("v{k}"))),
            )),
        ],
    )
    .unwrap()
}

/// Keys clustered so lookups hit present keys, their neighbours and the
/// extremes of the u64 range.
fn key() -> impl Strategy<Value = u64> {
    prop_oneof![
        0u64..64,
        (1u64 << 63) - 8..(1u64 << 63) + 8,
        u64::MAX - 16..=u64::MAX,
        any::<u64>(),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn lookups_match_the_model(
        keys in prop::collection::btree_set(key(), 0..200),
        queries in prop::collection::vec(prop::collection::vec(key(), 0..40), 1..6),
        chunk in 1usize..70,
        batch_rows in 1usize..40,
        seed in any::<u64>(),
    ) {
        let model: BTreeMap<u64, Option<String>> =
            keys.iter().map(|&k| (k, (k % 5 != 0).then(|| format!("v{k}")))).collect();
        let mut order: Vec<u64> = keys.iter().copied().collect();
        common::SplitMix64::new(seed).shuffle(&mut order);
        let dir = tempfile::tempdir().unwrap();
        let mut f = FeatherSidecarBuilder::begin_with(
            dir.path().join("f"), schema(), 0, &[1], BuildOptions::default().batch_rows(batch_rows),
        ).unwrap();
        let mut s = SqliteSidecarBuilder::begin(dir.path().join("s"), schema(), 0, &[1]).unwrap();
        for c in order.chunks(chunk) {
            f.push_batch(&batch(c)).unwrap();
            s.push_batch(&batch(c)).unwrap();
        }
        let f = f.finish().unwrap();
        let s = s.finish().unwrap();
        prop_assert_eq!(f.len(), keys.len());
        for q in queries {
            // Mix in present keys so hits are common.
            let mut q = q;
            q.extend(order.iter().take(5));
            let got = f.fetch(&q, None).unwrap();
            let want: Vec<(u64, Option<String>)> = {
                let mut hits: Vec<u64> = q.iter().copied().filter(|k| model.contains_key(k)).collect();
                hits.sort_unstable();
                hits.dedup();
                hits.into_iter().map(|k| (k, model[&k].clone())).collect()
            };
            let got_rows: Vec<(u64, Option<String>)> = got.as_ref().map_or(vec![], |b| {
                let k = b.column(0).as_primitive::<UInt64Type>();
                let v = b.column(1).as_string::<i32>();
                (0..b.num_rows()).map(|i| (k.value(i), v.is_valid(i).then(|| v.value(i).to_string()))).collect()
            });
            prop_assert_eq!(&got_rows, &want);
            prop_assert_eq!(got, s.fetch_blocking(&q, None).unwrap());
        }
    }
}
