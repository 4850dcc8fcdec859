//! `long_sequence(n)`: QuestDB's row generator, one LONG column `x` with
//! the values `1..=n`, streamed (n is not materialized).

use std::sync::Arc;

use datafusion::catalog::{TableFunctionArgs, TableFunctionImpl, TableProvider, view::ViewTable};
use datafusion::common::{ScalarValue, plan_err};
use datafusion::datasource::provider_as_source;
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, LogicalPlanBuilder, col, lit};

/// The `long_sequence` table function.
#[derive(Debug)]
pub struct LongSequence;

impl TableFunctionImpl for LongSequence {
    fn call_with_args(&self, args: TableFunctionArgs) -> Result<Arc<dyn TableProvider>> {
        let n = match args.exprs() {
            [Expr::Literal(ScalarValue::Int64(Some(n)), _)] if *n >= 0 => *n,
            _ => return plan_err!("long_sequence(n) takes one non-negative integer literal"),
        };
        // range(1, n + 1) yields `value` in 1..=n; the view renames it `x`.
        let Some(end) = n.checked_add(1) else {
            return plan_err!("long_sequence({n}) is too long");
        };
        let range = datafusion::functions_table::range();
        let exprs = [lit(1_i64), lit(end)];
        let provider = range
            .create_table_provider_with_args(TableFunctionArgs::new(&exprs, args.session()))?;
        let plan = LogicalPlanBuilder::scan("long_sequence", provider_as_source(provider), None)?
            .project(vec![col("value").alias("x")])?
            .build()?;
        Ok(Arc::new(ViewTable::new(plan, None)))
    }
}
