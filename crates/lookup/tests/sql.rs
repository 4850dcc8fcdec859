//! DataFusion: both providers are `TableProvider`s whose scans work (NOTES
//! test 14, which guards against the seed's Parquet sibling whose scan was
//! `NotImplemented`), with projections, filters, limits and aggregates
//! agreeing between Feather, SQLite and the generator.

mod common;

use std::sync::Arc;

use arrow::array::{AsArray, RecordBatch};
use arrow::compute::concat_batches;
use arrow::datatypes::{Int64Type, Schema};
use common::*;
use datafusion::prelude::{SessionConfig, SessionContext};

async fn query(ctx: &SessionContext, sql: &str) -> RecordBatch {
    let df = ctx.sql(sql).await.unwrap();
    let schema: Arc<Schema> = Arc::clone(df.schema().inner());
    let batches = df.collect().await.unwrap();
    concat_batches(&schema, &batches).unwrap()
}

fn context(partitions: usize) -> SessionContext {
    SessionContext::new_with_config(SessionConfig::new().with_target_partitions(partitions))
}

/// NOTES 14: register, `SELECT rowid, title`, every row with 2 columns.
#[tokio::test]
async fn table_provider_scan_roundtrips() {
    let dir = tempfile::tempdir().unwrap();
    let ids = rowids(300, 14);
    let batches = payload_chunks(&ids, 64);
    let f = build_feather(dir.path(), "t.arrow", &batches);
    let s = build_sqlite(dir.path(), "t.sqlite", &batches);
    let ctx = context(4);
    ctx.register_table("f", Arc::new(f)).unwrap();
    ctx.register_table("s", Arc::new(s)).unwrap();
    let want = payload_batch(&ids).project(&[0, 3]).unwrap();
    for t in ["f", "s"] {
        let out = query(&ctx, &format!("SELECT rowid, title FROM {t}")).await;
        assert_eq!(out.num_columns(), 2);
        assert_eq!(out.num_rows(), 300);
        let sorted = query(
            &ctx,
            &format!("SELECT rowid, title FROM {t} ORDER BY rowid"),
        )
        .await;
        assert_eq!(sorted.columns(), want.columns(), "{t}");
    }
}

/// Filters, aggregates, limits and `SELECT *` over a multi-batch file and
/// several partitions agree across providers and with the generator.
#[tokio::test]
async fn queries_agree_across_providers() {
    let dir = tempfile::tempdir().unwrap();
    let ids = rowids(20_000, 15);
    let batches = reversed(&payload_chunks(&ids, 3000));
    let f = build_feather(dir.path(), "t.arrow", &batches);
    assert_eq!(f.num_batches(), 3);
    let s = build_sqlite(dir.path(), "t.sqlite", &batches);
    let ctx = context(3);
    ctx.register_table("f", Arc::new(f)).unwrap();
    ctx.register_table("s", Arc::new(s)).unwrap();

    let nulls = ids.iter().filter(|&&r| r % 7 == 0).count() as i64;
    let sum: i64 = ids.iter().map(|r| r * 7).sum();
    for t in ["f", "s"] {
        let out = query(
            &ctx,
            &format!("SELECT count(*), sum(id) FROM {t} WHERE title IS NULL"),
        )
        .await;
        assert_eq!(
            out.column(0).as_primitive::<Int64Type>().value(0),
            nulls,
            "{t}"
        );
        let out = query(&ctx, &format!("SELECT sum(id), count(raw) FROM {t}")).await;
        assert_eq!(
            out.column(0).as_primitive::<Int64Type>().value(0),
            sum,
            "{t}"
        );
        assert_eq!(
            out.column(1).as_primitive::<Int64Type>().value(0),
            ids.len() as i64
        );
        let out = query(
            &ctx,
            &format!("SELECT rowid FROM {t} ORDER BY rowid DESC LIMIT 3"),
        )
        .await;
        let top: Vec<i64> = ids.iter().rev().take(3).copied().collect();
        assert_eq!(
            out.column(0).as_primitive::<Int64Type>().values().as_ref(),
            top.as_slice()
        );
        let out = query(&ctx, &format!("SELECT * FROM {t} LIMIT 7")).await;
        assert_eq!((out.num_rows(), out.num_columns()), (7, 7), "{t}");
        let lo = ids[5000];
        let out = query(
            &ctx,
            &format!(
                "SELECT * FROM {t} WHERE rowid BETWEEN {lo} AND {} ORDER BY rowid",
                lo + 100
            ),
        )
        .await;
        let want: Vec<i64> = ids
            .iter()
            .copied()
            .filter(|&r| (lo..=lo + 100).contains(&r))
            .collect();
        assert_eq!(out, payload_batch(&want), "{t}");
    }
    let plan = query(&ctx, "EXPLAIN SELECT rowid FROM f").await;
    let text = format!(
        "{:?}",
        plan.column(1).as_string::<i32>().iter().collect::<Vec<_>>()
    );
    assert!(text.contains("LookupScanExec: feather="), "{text}");
}

/// A scan touching a corrupt batch fails the query with an error.
#[tokio::test]
async fn scan_of_corrupt_file_is_an_error() {
    use arrow::array::Int64Array;
    use arrow::datatypes::{DataType, Field};
    let dir = tempfile::tempdir().unwrap();
    let schema = Arc::new(Schema::new(vec![Field::new("k", DataType::Int64, false)]));
    let path = dir.path().join("bad.arrow");
    let mut w =
        arrow::ipc::writer::FileWriter::try_new(std::fs::File::create(&path).unwrap(), &schema)
            .unwrap();
    for keys in [vec![1i64, 2], vec![9, 3]] {
        w.write(
            &RecordBatch::try_new(schema.clone(), vec![Arc::new(Int64Array::from(keys))]).unwrap(),
        )
        .unwrap();
    }
    w.write_metadata(
        "quiver.lookup",
        "format=1;key_index=0;key_type=Int64;order=u64-strictly-ascending;rows=4;batch_rows=2;\
         last_key=0000000000000009;first_keys=00000000000000010000000000000009",
    );
    w.finish().unwrap();
    let f = quiver_lookup::FeatherLookupProvider::open(&path).unwrap();
    let ctx = context(1);
    ctx.register_table("t", Arc::new(f)).unwrap();
    let err = ctx
        .sql("SELECT * FROM t")
        .await
        .unwrap()
        .collect()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("key invariant"), "{err}");
}
