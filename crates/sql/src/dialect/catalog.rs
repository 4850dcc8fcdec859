//! QuestDB's catalog functions: `tables()` (one row per table) and
//! `table_columns('t')` (one row per column), with QuestDB's column names
//! and types, read from the database's live catalog when the statement is
//! planned. `SHOW TABLES` and `SHOW COLUMNS FROM t` are answered through
//! them ([`show_as_query`]).

use std::sync::Arc;

use arrow::array::{ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray};
use arrow::datatypes::{Field, Schema};
use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::logical_expr::Expr;
use quiver_storage::{ColumnType, Database, PartitionBy};

/// The catalog functions' column names (for case-insensitive names).
pub const COLUMNS: &[&str] = &[
    "designatedTimestamp",
    "partitionBy",
    "walEnabled",
    "directoryName",
    "indexBlockCapacity",
    "symbolCached",
    "symbolCapacity",
    "upsertKey",
    "ttlValue",
    "ttlUnit",
];

fn table_of(columns: Vec<(&str, ArrayRef)>) -> Result<Arc<dyn TableProvider>> {
    let schema = Arc::new(Schema::new(
        columns
            .iter()
            .map(|(name, a)| Field::new(*name, a.data_type().clone(), true))
            .collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        columns.into_iter().map(|(_, a)| a).collect(),
    )?;
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

fn strings(values: impl IntoIterator<Item = String>) -> ArrayRef {
    Arc::new(StringArray::from_iter_values(values))
}

fn bools(n: usize, f: impl Fn(usize) -> bool) -> ArrayRef {
    Arc::new(BooleanArray::from_iter((0..n).map(|i| Some(f(i)))))
}

/// `tables()`.
#[derive(Debug)]
pub struct Tables(pub Arc<Database>);

impl TableFunctionImpl for Tables {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        if !args.exprs().is_empty() {
            return plan_err!("tables() takes no arguments");
        }
        let tables = self.0.tables();
        let n = tables.len();
        let ids: Vec<i32> = tables
            .iter()
            .map(|t| {
                self.0
                    .table(&t.schema.name)
                    .and_then(|t| i32::try_from(t.id()).ok())
                    .unwrap_or(-1)
            })
            .collect();
        table_of(vec![
            ("id", Arc::new(Int32Array::from(ids.clone()))),
            (
                "table_name",
                strings(tables.iter().map(|t| t.schema.name.clone())),
            ),
            (
                "designatedTimestamp",
                Arc::new(StringArray::from_iter(tables.iter().map(|t| {
                    t.schema
                        .designated_timestamp
                        .map(|i| t.schema.columns[i].name.clone())
                }))),
            ),
            (
                "partitionBy",
                strings(
                    tables
                        .iter()
                        .map(|t| t.schema.partition_by.name().to_string()),
                ),
            ),
            (
                "walEnabled",
                bools(n, |i| tables[i].schema.partition_by != PartitionBy::None),
            ),
            (
                "directoryName",
                strings(ids.iter().map(|id| id.to_string())),
            ),
            ("dedup", bools(n, |_| false)),
            // QuestDB's: 0 hours without a TTL, singular unit names.
            (
                "ttlValue",
                Arc::new(Int32Array::from_iter(tables.iter().map(|t| {
                    t.schema
                        .ttl
                        .map_or(Some(0), |ttl| i32::try_from(ttl.count).ok())
                }))),
            ),
            (
                "ttlUnit",
                strings(tables.iter().map(|t| {
                    let unit = t.schema.ttl.map_or("HOURS", |ttl| ttl.unit.name());
                    unit.trim_end_matches('S').to_string()
                })),
            ),
        ])
    }
}

/// `table_columns('t')`.
#[derive(Debug)]
pub struct TableColumns(pub Arc<Database>);

impl TableFunctionImpl for TableColumns {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let name = match args.exprs() {
            [Expr::Literal(ScalarValue::Utf8(Some(n)) | ScalarValue::Utf8View(Some(n)), _)] => n,
            _ => return plan_err!("table_columns('table') takes one table name literal"),
        };
        let Some(table) = self.0.table(name) else {
            return plan_err!("table does not exist [table={name}]");
        };
        let schema = table.schema();
        let n = schema.columns.len();
        let is_symbol = |i: usize| schema.columns[i].column_type == ColumnType::Symbol;
        table_of(vec![
            (
                "column",
                strings(schema.columns.iter().map(|c| c.name.clone())),
            ),
            (
                "type",
                strings(schema.columns.iter().map(|c| c.column_type.questdb_name())),
            ),
            ("indexed", bools(n, |_| false)),
            ("indexBlockCapacity", Arc::new(Int32Array::from(vec![0; n]))),
            ("symbolCached", bools(n, is_symbol)),
            (
                "symbolCapacity",
                Arc::new(Int32Array::from_iter(
                    (0..n).map(|i| Some(if is_symbol(i) { 256 } else { 0 })),
                )),
            ),
            (
                "designated",
                bools(n, |i| schema.designated_timestamp == Some(i)),
            ),
            ("upsertKey", bools(n, |_| false)),
        ])
    }
}

/// `SHOW TABLES` and `SHOW COLUMNS FROM t` as the queries QuestDB answers
/// them with; `None` for other statements.
pub fn show_as_query(statement: &datafusion::sql::sqlparser::ast::Statement) -> Option<String> {
    use datafusion::sql::sqlparser::ast::Statement as Sql;
    match statement {
        Sql::ShowTables { .. } => {
            Some("SELECT table_name FROM tables() ORDER BY table_name".into())
        }
        Sql::ShowColumns { show_options, .. } => {
            let name = show_options.show_in.as_ref()?.parent_name.as_ref()?;
            let name = name.0.last()?.as_ident()?.value.replace('\'', "''");
            Some(format!(
                "SELECT \"column\", \"type\", indexed, \"indexBlockCapacity\", \"symbolCached\", \
                 \"symbolCapacity\", designated, \"upsertKey\" FROM table_columns('{name}')"
            ))
        }
        _ => None,
    }
}
