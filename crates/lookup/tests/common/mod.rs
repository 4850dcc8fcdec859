//! Shared test data and helpers: a SplitMix64 PRNG (deterministic, no
//! `rand`), the NOTES §4 payload (sparse row ids with gaps of 1–4, ints,
//! ~75-byte strings, some nulls), and builders for both sidecars.

#![allow(dead_code, missing_docs)]

use std::path::Path;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Int64Type, Schema, SchemaRef};
use quiver_lookup::{
    FeatherLookupProvider, FeatherSidecarBuilder, PointLookupProvider, SqliteLookupProvider,
    SqliteSidecarBuilder,
};

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, good enough for test data.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// `n` strictly increasing row ids starting at 5 with random gaps of 1–4.
pub fn rowids(n: usize, seed: u64) -> Vec<i64> {
    let mut rng = SplitMix64::new(seed);
    let mut id = 5i64;
    (0..n)
        .map(|_| {
            let v = id;
            id += 1 + rng.below(4) as i64;
            v
        })
        .collect()
}

/// The payload schema: rowid (key), id, url, title (nullable), sha, raw, filename.
pub fn payload_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("rowid", DataType::Int64, false),
        Field::new("id", DataType::Int64, false),
        Field::new("url", DataType::Utf8, false),
        Field::new("title", DataType::Utf8, true),
        Field::new("sha", DataType::Utf8, false),
        Field::new("raw", DataType::Utf8, false),
        Field::new("filename", DataType::Utf8, false),
    ]))
}

fn mix(x: u64) -> u64 {
    SplitMix64::new(x).next_u64()
}

/// One payload batch for the given row ids; every value is a function of
/// its row id, so expected rows can be recomputed.
pub fn payload_batch(ids: &[i64]) -> RecordBatch {
    let col = |f: &dyn Fn(i64) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from_iter(ids.iter().map(|&r| f(r))))
    };
    RecordBatch::try_new(
        payload_schema(),
        vec![
            Arc::new(Int64Array::from(ids.to_vec())),
            Arc::new(Int64Array::from_iter_values(ids.iter().map(|r| r * 7))),
            col(&|r| {
                Some(format!(
                    "https://example.com/d/{:x}/index.html",
                    mix(r as u64)
                ))
            }),
            col(&|r| (r % 7 != 0).then(|| format!("Title of document {r}"))),
            col(&|r| {
                Some(format!(
                    "{:016x}{:016x}{:08x}",
                    mix(r as u64),
                    mix(!r as u64),
                    r
                ))
            }),
            col(&|r| {
                let h = mix(r as u64 ^ 0xabcdef);
                Some(format!(
                    "raw:{r}:{h:016x}:{}",
                    "lorem ipsum dolor sit amet consectetur adip"
                ))
            }),
            col(&|r| Some(format!("file_{r}.json"))),
        ],
    )
    .unwrap()
}

/// The payload for `ids`, cut into batches of `chunk` rows.
pub fn payload_chunks(ids: &[i64], chunk: usize) -> Vec<RecordBatch> {
    ids.chunks(chunk).map(payload_batch).collect()
}

/// Reverses batch order and the rows inside each batch.
pub fn reversed(batches: &[RecordBatch]) -> Vec<RecordBatch> {
    batches
        .iter()
        .rev()
        .map(|b| {
            let ids: Vec<i64> = b
                .column(0)
                .as_primitive::<Int64Type>()
                .values()
                .iter()
                .rev()
                .copied()
                .collect();
            let idx = arrow::array::UInt32Array::from_iter_values((0..b.num_rows() as u32).rev());
            let cols = b
                .columns()
                .iter()
                .map(|c| arrow::compute::take(c.as_ref(), &idx, None).unwrap())
                .collect();
            let out = RecordBatch::try_new(b.schema(), cols).unwrap();
            assert_eq!(
                out.column(0).as_primitive::<Int64Type>().values().as_ref(),
                ids.as_slice()
            );
            out
        })
        .collect()
}

/// Builds a Feather sidecar keyed by column 0 with all other columns as values.
pub fn build_feather(dir: &Path, name: &str, batches: &[RecordBatch]) -> FeatherLookupProvider {
    let schema = batches[0].schema();
    let values: Vec<usize> = (1..schema.fields().len()).collect();
    let mut b = FeatherSidecarBuilder::begin(dir.join(name), schema, 0, &values).unwrap();
    for batch in batches {
        b.push_batch(batch).unwrap();
    }
    b.finish().unwrap()
}

/// Builds a SQLite sidecar keyed by column 0 with all other columns as values.
pub fn build_sqlite(dir: &Path, name: &str, batches: &[RecordBatch]) -> SqliteLookupProvider {
    let schema = batches[0].schema();
    let values: Vec<usize> = (1..schema.fields().len()).collect();
    let mut b = SqliteSidecarBuilder::begin(dir.join(name), schema, 0, &values).unwrap();
    for batch in batches {
        b.push_batch(batch).unwrap();
    }
    b.finish().unwrap()
}

/// Fetches from both providers, asserts they agree, returns the result.
pub async fn parity(
    feather: &dyn PointLookupProvider,
    sqlite: &dyn PointLookupProvider,
    keys: &[u64],
    projection: Option<&[usize]>,
    what: &str,
) -> Vec<RecordBatch> {
    let key_col = feather.schema().field(0).name().clone();
    let f = feather
        .fetch_by_keys(keys, &key_col, projection)
        .await
        .unwrap();
    let s = sqlite
        .fetch_by_keys(keys, &key_col, projection)
        .await
        .unwrap();
    assert_eq!(f, s, "{what}: feather and sqlite disagree");
    assert!(f.len() <= 1, "{what}: at most one batch");
    if let Some(b) = f.first() {
        assert!(b.num_rows() > 0, "{what}: no empty batch");
    }
    f
}

/// The expected rows for `keys` from the generator (the model oracle).
pub fn expected(ids: &[i64], keys: &[u64]) -> Vec<RecordBatch> {
    let present: std::collections::BTreeSet<i64> = ids.iter().copied().collect();
    let mut hits: Vec<i64> = keys
        .iter()
        .map(|&k| k as i64)
        .filter(|k| present.contains(k))
        .collect();
    hits.sort_unstable_by_key(|&k| k as u64);
    hits.dedup();
    if hits.is_empty() {
        vec![]
    } else {
        vec![payload_batch(&hits)]
    }
}

/// The key column of a lookup result, as i64.
pub fn key_values(out: &[RecordBatch]) -> Vec<i64> {
    out.iter()
        .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
        .collect()
}

/// `k` distinct random keys drawn from `ids`.
pub fn sample(ids: &[i64], k: usize, rng: &mut SplitMix64) -> Vec<u64> {
    let mut out = std::collections::BTreeSet::new();
    while out.len() < k.min(ids.len()) {
        out.insert(ids[rng.below(ids.len() as u64) as usize] as u64);
    }
    let mut v: Vec<u64> = out.into_iter().collect();
    rng.shuffle(&mut v);
    v
}
