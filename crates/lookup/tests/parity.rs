//! Feather vs SQLite parity on the NOTES §4 payload (sparse row ids, ints,
//! ~75-byte strings, nulls): NOTES tests 1, 2, 3, 4, 15 and 19, and the
//! extras about key sets (K > N, one key many times, out-of-range
//! projections, a wrong key column). SQLite is the oracle; the generator
//! (`common::expected`) is a second one where it is cheap.

mod common;

use common::*;
use quiver_lookup::{FetchError, PointLookupProvider};

/// NOTES 1: every key-set shape, 3000 rows in 256-row chunks.
#[tokio::test]
async fn parity_with_sqlite_sparse_rowids() {
    let dir = tempfile::tempdir().unwrap();
    let ids = rowids(3000, 1);
    let batches = payload_chunks(&ids, 256);
    let f = build_feather(dir.path(), "t.arrow", &batches);
    let s = build_sqlite(dir.path(), "t.sqlite", &batches);
    let (min, max, mid) = (ids[0] as u64, *ids.last().unwrap() as u64, ids[1500] as u64);
    let gap = (ids[10] + 1..ids[11]).next().map(|k| k as u64);
    let mut sets: Vec<(&str, Vec<u64>)> = vec![
        ("empty", vec![]),
        ("smallest", vec![min]),
        ("largest", vec![max]),
        ("mid", vec![mid]),
        ("edges_together", vec![max, min, mid]),
        ("duplicates", vec![mid, mid, min, min, max]),
        ("absent_below", vec![0]),
        ("absent_above", vec![max + 1000]),
        ("mixed_present_absent", vec![min, 0, mid, max + 1, max]),
    ];
    if let Some(g) = gap {
        sets.push(("absent_in_gap", vec![g]));
    }
    let mut rng = SplitMix64::new(7);
    for k in [1, 10, 100, 1000] {
        sets.push(("scattered", sample(&ids, k, &mut rng)));
    }
    for (name, keys) in &sets {
        let out = parity(&f, &s, keys, None, name).await;
        assert_eq!(out, expected(&ids, keys), "{name}: generator oracle");
    }
}

/// NOTES 2: narrow, full and reordered projections follow the order asked.
#[tokio::test]
async fn parity_with_sqlite_projection() {
    let dir = tempfile::tempdir().unwrap();
    let ids = rowids(1500, 2);
    let batches = payload_chunks(&ids, 512);
    let f = build_feather(dir.path(), "t.arrow", &batches);
    let s = build_sqlite(dir.path(), "t.sqlite", &batches);
    let keys: Vec<u64> = ids.iter().step_by(13).map(|&k| k as u64).collect();
    for (proj, names) in [
        (vec![0, 3, 6], vec!["rowid", "title", "filename"]),
        (
            (0..7).collect::<Vec<_>>(),
            vec!["rowid", "id", "url", "title", "sha", "raw", "filename"],
        ),
        (vec![3, 0, 6, 1], vec!["title", "rowid", "filename", "id"]),
    ] {
        let out = parity(&f, &s, &keys, Some(&proj), "projection").await;
        let schema = out[0].schema();
        let got: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(got, names);
        assert_eq!(out[0].num_rows(), keys.len());
    }
}

/// NOTES 3: an absent key never aliases onto a neighbour.
#[tokio::test]
async fn binary_search_lands_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let ids = rowids(2000, 3);
    let f = build_feather(dir.path(), "t.arrow", &payload_chunks(&ids, 256));
    let present: std::collections::BTreeSet<i64> = ids.iter().copied().collect();
    let mut keys: Vec<u64> = ids.iter().step_by(7).map(|&k| k as u64).collect();
    let absent: Vec<u64> = ids
        .iter()
        .map(|&k| k + 1)
        .filter(|k| !present.contains(k))
        .map(|k| k as u64)
        .collect();
    assert!(!absent.is_empty());
    keys.extend(&absent);
    keys.extend([0, *ids.last().unwrap() as u64 + 9999]);
    let out = f.fetch_by_keys(&keys, "rowid", None).await.unwrap();
    let mut want: Vec<i64> = ids.iter().step_by(7).copied().collect();
    want.sort_unstable();
    assert_eq!(key_values(&out), want);
}

/// NOTES 4: empty and all-absent requests return no batch, not an empty one.
#[tokio::test]
async fn empty_and_all_absent_return_no_batches() {
    let dir = tempfile::tempdir().unwrap();
    let ids = rowids(500, 4);
    let batches = payload_chunks(&ids, 100);
    let f = build_feather(dir.path(), "t.arrow", &batches);
    let s = build_sqlite(dir.path(), "t.sqlite", &batches);
    for keys in [vec![], vec![0, 1, 2, 3, 4], vec![u64::MAX, 1 << 40]] {
        assert!(
            f.fetch_by_keys(&keys, "rowid", None)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            s.fetch_by_keys(&keys, "rowid", None)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

/// NOTES 15: a multi-batch build from reversed input (the gather path),
/// keys straddling the 8192-row output batch boundary.
#[tokio::test]
async fn parity_multibatch_shuffled_build() {
    let dir = tempfile::tempdir().unwrap();
    let n = 20_000;
    let ids = rowids(n, 5);
    let rev = reversed(&payload_chunks(&ids, 1024));
    let schema = rev[0].schema();
    let mut b = quiver_lookup::FeatherSidecarBuilder::begin(
        dir.path().join("t.arrow"),
        schema,
        0,
        &[1, 2, 3, 4, 5, 6],
    )
    .unwrap();
    for batch in &rev {
        b.push_batch(batch).unwrap();
    }
    assert!(!b.input_was_sorted());
    let f = b.finish().unwrap();
    assert_eq!(f.len(), n);
    assert_eq!(f.num_batches(), 3);
    let s = build_sqlite(dir.path(), "t.sqlite", &rev);
    let mut rng = SplitMix64::new(15);
    let mut keys = sample(&ids, 1500, &mut rng);
    for p in [0, 8191, 8192, 8193, n - 1] {
        keys.push(ids[p] as u64);
    }
    let out = parity(&f, &s, &keys, None, "full").await;
    assert_eq!(out, expected(&ids, &keys));
    parity(&f, &s, &keys, Some(&[0, 3, 6]), "projected").await;
}

/// NOTES 19: exactly two output batches; keys at the boundary.
#[tokio::test]
async fn build_at_exact_chunk_boundary() {
    let dir = tempfile::tempdir().unwrap();
    let n = 16_384;
    let ids = rowids(n, 19);
    let batches = payload_chunks(&ids, 4096);
    let f = build_feather(dir.path(), "t.arrow", &batches);
    assert_eq!(f.num_batches(), 2);
    let s = build_sqlite(dir.path(), "t.sqlite", &batches);
    let mut rng = SplitMix64::new(19);
    let mut keys = sample(&ids, 500, &mut rng);
    for p in [0, 8191, 8192, 8193, 16383] {
        keys.push(ids[p] as u64);
    }
    let out = parity(&f, &s, &keys, None, "boundary").await;
    assert_eq!(out, expected(&ids, &keys));
}

/// Extra: K larger than N, and every key requested many times.
#[tokio::test]
async fn k_larger_than_n_and_repeated_keys() {
    let dir = tempfile::tempdir().unwrap();
    let ids = rowids(300, 6);
    let batches = payload_chunks(&ids, 64);
    let f = build_feather(dir.path(), "t.arrow", &batches);
    let s = build_sqlite(dir.path(), "t.sqlite", &batches);
    // Every key 0..=max (K ~ 2.5 N), in descending order.
    let max = *ids.last().unwrap() as u64;
    let keys: Vec<u64> = (0..=max + 10).rev().collect();
    let out = parity(&f, &s, &keys, None, "K > N").await;
    assert_eq!(key_values(&out), ids);
    // One key many times, and the whole set ten times over.
    let one = vec![ids[17] as u64; 5000];
    let out = parity(&f, &s, &one, None, "one key").await;
    assert_eq!(key_values(&out), vec![ids[17]]);
    let many: Vec<u64> = (0..10)
        .flat_map(|_| ids.iter().map(|&k| k as u64))
        .collect();
    let out = parity(&f, &s, &many, Some(&[0]), "all keys x10").await;
    assert_eq!(key_values(&out), ids);
}

/// Extra: an out-of-range projection is an error for both providers, also
/// when no key matches; a wrong key column name is an error.
#[tokio::test]
async fn out_of_range_projection_and_wrong_key_column_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let ids = rowids(100, 8);
    let batches = payload_chunks(&ids, 100);
    let f = build_feather(dir.path(), "t.arrow", &batches);
    let s = build_sqlite(dir.path(), "t.sqlite", &batches);
    let providers: [&dyn PointLookupProvider; 2] = [&f, &s];
    for p in providers {
        for keys in [vec![ids[0] as u64], vec![], vec![1]] {
            let err = p
                .fetch_by_keys(&keys, "rowid", Some(&[0, 7]))
                .await
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    FetchError::ProjectionOutOfRange {
                        index: 7,
                        columns: 7
                    }
                ),
                "{err}"
            );
        }
        let err = p.fetch_by_keys(&[5], "id", None).await.unwrap_err();
        assert!(matches!(err, FetchError::UnknownKeyColumn { .. }), "{err}");
        assert!(err.to_string().contains("`rowid`"));
    }
}

/// Extra: many concurrent lookups on one provider agree with SQLite.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_lookups_agree() {
    let dir = tempfile::tempdir().unwrap();
    let ids = rowids(20_000, 9);
    let batches = payload_chunks(&ids, 3000);
    let f = build_feather(dir.path(), "t.arrow", &batches);
    let s = build_sqlite(dir.path(), "t.sqlite", &batches);
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let (f, s, ids) = (f.clone(), s.clone(), ids.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = SplitMix64::new(100 + t);
            for _ in 0..20 {
                let keys = sample(&ids, 1 + rng.below(300) as usize, &mut rng);
                let out = parity(&f, &s, &keys, None, "concurrent").await;
                assert_eq!(out, expected(&ids, &keys));
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}
