//! Two connections adding the same new column at once, with types one
//! coerces into the other, must end as one after the other would: the
//! later one converts its values into the column the earlier one created.
//! Before the fix the later one got SCHEMA_MISMATCH from storage (adding a
//! column that exists under another type was an error), though sent one
//! after the other its INT values would have gone into the LONG column.
//!
//! The race is set up by hand through the session's own steps: plan the
//! frame (the column does not exist), let "another connection" add it,
//! then convert, add columns and build the batch.

use std::sync::Arc;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use quiver_qwp::ingress::Column;
use quiver_qwp::{ColumnBuilder, NullEncoding, SymbolDictionary, TableBlock, TypeCode, Value};
use quiver_server::ingest::convert::BlockConverter;
use quiver_server::ingest::plan::{FrameLimits, plan_frame};
use quiver_storage::{ColumnSchema, ColumnType, Database, Options, Transaction};

fn ints(values: &[i32]) -> quiver_qwp::ColumnData<'static> {
    let mut b = ColumnBuilder::new(TypeCode::Int);
    for v in values {
        b.push(Some(&Value::Int(*v))).unwrap();
    }
    b.finish(NullEncoding::Bitmap)
}

#[test]
fn a_column_added_meanwhile_under_a_wider_type_takes_the_values() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path(), Options::default()).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    // The table exists without column x.
    let block = |name: &str| TableBlock {
        name: "t".into(),
        row_count: 2,
        columns: vec![Column {
            name: name.to_string().into(),
            data: ints(&[1, 2]),
        }],
    };
    let mut converter = BlockConverter::new(db.clone(), 1 << 20);
    let dictionary = SymbolDictionary::default();
    let first = [block("v")];
    let plan = plan_frame(&db, &first, &dictionary, &FrameLimits::default(), 0).unwrap();
    let tables = rt.block_on(converter.apply_ddl(&plan)).unwrap();
    let t = tables[0].clone();
    // This connection plans x as INT (it does not exist yet)...
    let frame = [block("x")];
    let plan = plan_frame(&db, &frame, &dictionary, &FrameLimits::default(), 0).unwrap();
    assert_eq!(plan.tables[0].new_columns[0].column_type, ColumnType::Int);
    // ...while another adds x as LONG.
    rt.block_on(db.add_columns(t.clone(), vec![ColumnSchema::new("x", ColumnType::Long)]))
        .unwrap()
        .unwrap();
    let prepared_x = converter.prepare(&plan, &frame, &dictionary).unwrap();
    let tables = rt
        .block_on(converter.apply_ddl(&plan))
        .expect("adding a column that exists under a coercible type is fine");
    let batch = converter
        .finish(
            &tables[0],
            &frame[0],
            &plan.blocks[0],
            &plan.tables[0].schema,
            prepared_x.into_iter().next().unwrap(),
            &dictionary,
        )
        .unwrap();
    let mut txn = Transaction::new();
    txn.add(Arc::clone(&tables[0]), batch).unwrap();
    rt.block_on(db.commit(txn, false).committed)
        .unwrap()
        .unwrap();
    let schema = t.schema();
    assert_eq!(
        schema.columns[schema.column_index("x").unwrap()].column_type,
        ColumnType::Long
    );
    let rows = db.snapshot("t").unwrap().collect(false).unwrap();
    let x = rows[0]
        .column_by_name("x")
        .unwrap()
        .as_primitive::<Int64Type>()
        .values()
        .to_vec();
    assert_eq!(x, vec![1, 2]);
}
