//! Timestamps against integers, as QuestDB compares them: an integer next
//! to a TIMESTAMP, TIMESTAMP_NS or DATE is a raw value in that column's
//! unit (`ts > 1700000000000000` is micros for TIMESTAMP, nanos for
//! TIMESTAMP_NS, millis for DATE), and `ts + 1000000` / `ts - 1000000`
//! move a timestamp by that many units. DataFusion finds no common type
//! for `Timestamp` and `Int64`; here the integer side is cast to the
//! timestamp's own Arrow type (Arrow's cast keeps the raw value), or to a
//! duration of its unit for `+` and `-`:
//!
//! - [`TimestampIntegerPlanner`], at planning, for comparisons and `+`/`-`
//!   (DataFusion checks their types while it plans, before any analyzer
//!   rule could run);
//! - [`TimestampIntegerCoercion`], an analyzer rule that runs before
//!   DataFusion's type coercion, for `BETWEEN` and `IN (...)` lists.
//!
//! Every other pair of types goes on to DataFusion untouched.

use std::sync::Arc;

use arrow::datatypes::DataType;
use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::common::{DFSchema, Result};
use datafusion::logical_expr::expr::InList;
use datafusion::logical_expr::planner::{ExprPlanner, PlannerResult, RawBinaryExpr};
use datafusion::logical_expr::utils::merge_schema;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, ExprSchemable, LogicalPlan, Operator};
use datafusion::optimizer::AnalyzerRule;
use datafusion::sql::sqlparser::ast::BinaryOperator;

/// The timestamp type of `e`, if it has one.
fn timestamp_type(e: &Expr, schema: &DFSchema) -> Option<DataType> {
    match e.get_type(schema).ok()? {
        t @ DataType::Timestamp(_, _) => Some(t),
        _ => None,
    }
}

/// Whether `e` is of an integer type.
fn is_integer(e: &Expr, schema: &DFSchema) -> bool {
    e.get_type(schema).is_ok_and(|t| t.is_integer())
}

/// `e` cast to `to`.
fn cast(e: Expr, to: DataType) -> Expr {
    Expr::Cast(datafusion::logical_expr::Cast::new(Box::new(e), to))
}

/// The duration type of a timestamp type's unit.
fn duration_of(timestamp: &DataType) -> Option<DataType> {
    match timestamp {
        DataType::Timestamp(unit, _) => Some(DataType::Duration(*unit)),
        _ => None,
    }
}

/// Plans comparisons and `+`/`-` between a timestamp and an integer (see
/// the module docs).
#[derive(Debug, Default)]
pub struct TimestampIntegerPlanner;

impl ExprPlanner for TimestampIntegerPlanner {
    fn plan_binary_op(
        &self,
        expr: RawBinaryExpr,
        schema: &DFSchema,
    ) -> Result<PlannerResult<RawBinaryExpr>> {
        let op = match expr.op {
            BinaryOperator::Eq => Operator::Eq,
            BinaryOperator::NotEq => Operator::NotEq,
            BinaryOperator::Lt => Operator::Lt,
            BinaryOperator::LtEq => Operator::LtEq,
            BinaryOperator::Gt => Operator::Gt,
            BinaryOperator::GtEq => Operator::GtEq,
            BinaryOperator::Plus => Operator::Plus,
            BinaryOperator::Minus => Operator::Minus,
            _ => return Ok(PlannerResult::Original(expr)),
        };
        let arithmetic = matches!(op, Operator::Plus | Operator::Minus);
        let (left_ts, right_ts) = (
            timestamp_type(&expr.left, schema),
            timestamp_type(&expr.right, schema),
        );
        let planned = match (left_ts, right_ts) {
            (Some(ts), None) if is_integer(&expr.right, schema) => {
                let to = match arithmetic {
                    true => duration_of(&ts),
                    false => Some(ts),
                };
                to.map(|to| (expr.left.clone(), cast(expr.right.clone(), to)))
            }
            // `1000000 + ts` moves it too; `1000000 - ts` means nothing.
            (None, Some(ts)) if is_integer(&expr.left, schema) && op != Operator::Minus => {
                let to = match arithmetic {
                    true => duration_of(&ts),
                    false => Some(ts),
                };
                to.map(|to| (cast(expr.left.clone(), to), expr.right.clone()))
            }
            _ => None,
        };
        Ok(match planned {
            Some((left, right)) => PlannerResult::Planned(Expr::BinaryExpr(BinaryExpr::new(
                Box::new(left),
                op,
                Box::new(right),
            ))),
            None => PlannerResult::Original(expr),
        })
    }
}

/// Casts integers to the timestamp type in `ts BETWEEN a AND b` and `ts
/// IN (...)` (see the module docs).
#[derive(Debug, Default)]
pub struct TimestampIntegerCoercion;

impl AnalyzerRule for TimestampIntegerCoercion {
    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|plan| {
            let mut schema = merge_schema(&plan.inputs());
            if let LogicalPlan::TableScan(scan) = &plan {
                let source = DFSchema::try_from_qualified_schema(
                    scan.table_name.clone(),
                    &scan.source.schema(),
                )?;
                schema.merge(&source);
            }
            plan.map_expressions(|e| e.transform_up(|e| coerce(e, &schema)))
        })
        .data()
    }

    fn name(&self) -> &str {
        "questdb_timestamp_integers"
    }
}

/// One BETWEEN or IN list with its integers cast, if it needs it.
fn coerce(e: Expr, schema: &DFSchema) -> Result<Transformed<Expr>> {
    match e {
        Expr::Between(b) => {
            let Some(ts) = timestamp_type(&b.expr, schema) else {
                return Ok(Transformed::no(Expr::Between(b)));
            };
            let (low_int, high_int) = (is_integer(&b.low, schema), is_integer(&b.high, schema));
            if !low_int && !high_int {
                return Ok(Transformed::no(Expr::Between(b)));
            }
            let Between {
                expr,
                negated,
                low,
                high,
            } = b;
            let side = |e: Box<Expr>, int: bool| match int {
                true => Box::new(cast(*e, ts.clone())),
                false => e,
            };
            Ok(Transformed::yes(Expr::Between(Between {
                expr,
                negated,
                low: side(low, low_int),
                high: side(high, high_int),
            })))
        }
        Expr::InList(l) => {
            let Some(ts) = timestamp_type(&l.expr, schema) else {
                return Ok(Transformed::no(Expr::InList(l)));
            };
            if !l.list.iter().any(|e| is_integer(e, schema)) {
                return Ok(Transformed::no(Expr::InList(l)));
            }
            let InList {
                expr,
                list,
                negated,
            } = l;
            let list = list
                .into_iter()
                .map(|e| match is_integer(&e, schema) {
                    true => cast(e, ts.clone()),
                    false => e,
                })
                .collect();
            Ok(Transformed::yes(Expr::InList(InList {
                expr,
                list,
                negated,
            })))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// DataFusion's analyzer rules with [`TimestampIntegerCoercion`] first.
pub fn analyzer_rules() -> Vec<Arc<dyn AnalyzerRule + Send + Sync>> {
    let mut rules: Vec<Arc<dyn AnalyzerRule + Send + Sync>> =
        vec![Arc::new(TimestampIntegerCoercion)];
    rules.extend(datafusion::optimizer::Analyzer::new().rules);
    rules
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::datatypes::{Field, Schema, TimeUnit};
    use datafusion::logical_expr::{col, lit};

    const UNITS: [TimeUnit; 3] = [
        TimeUnit::Millisecond,
        TimeUnit::Microsecond,
        TimeUnit::Nanosecond,
    ];

    fn schema(unit: TimeUnit) -> DFSchema {
        DFSchema::try_from(Schema::new(vec![
            Field::new("ts", DataType::Timestamp(unit, Some("UTC".into())), true),
            Field::new("v", DataType::Int64, true),
            Field::new("s", DataType::Utf8, true),
        ]))
        .unwrap()
    }

    fn planned(op: BinaryOperator, left: Expr, right: Expr, schema: &DFSchema) -> Option<Expr> {
        match TimestampIntegerPlanner
            .plan_binary_op(RawBinaryExpr { op, left, right }, schema)
            .unwrap()
        {
            PlannerResult::Planned(e) => Some(e),
            PlannerResult::Original(_) => None,
        }
    }

    #[test]
    fn integers_next_to_timestamps_take_the_timestamp_unit() {
        for unit in UNITS {
            let s = schema(unit);
            let ts_type = DataType::Timestamp(unit, Some("UTC".into()));
            let e = planned(BinaryOperator::Gt, col("ts"), lit(5i64), &s).unwrap();
            assert_eq!(e.get_type(&s).unwrap(), DataType::Boolean);
            assert_eq!(e, col("ts").gt(cast(lit(5i64), ts_type.clone())));
            let e = planned(BinaryOperator::Eq, col("v"), col("ts"), &s).unwrap();
            assert_eq!(e, cast(col("v"), ts_type.clone()).eq(col("ts")));
            let e = planned(BinaryOperator::Minus, col("ts"), lit(1i32), &s).unwrap();
            assert_eq!(
                e,
                Expr::BinaryExpr(BinaryExpr::new(
                    Box::new(col("ts")),
                    Operator::Minus,
                    Box::new(cast(lit(1i32), DataType::Duration(unit)))
                ))
            );
            // Not ours: strings, two integers, integer minus timestamp,
            // other operators.
            assert!(planned(BinaryOperator::Gt, col("ts"), col("s"), &s).is_none());
            assert!(planned(BinaryOperator::Gt, col("v"), lit(1i64), &s).is_none());
            assert!(planned(BinaryOperator::Minus, lit(1i64), col("ts"), &s).is_none());
            assert!(planned(BinaryOperator::Multiply, col("ts"), lit(2i64), &s).is_none());
        }
    }

    #[test]
    fn between_and_in_lists_cast_only_their_integers() {
        let s = schema(TimeUnit::Microsecond);
        let ts_type = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let e = coerce(col("ts").between(lit(1i64), lit("2024-01-01")), &s).unwrap();
        assert!(e.transformed);
        assert_eq!(
            e.data,
            col("ts").between(cast(lit(1i64), ts_type.clone()), lit("2024-01-01"))
        );
        let e = coerce(col("ts").in_list(vec![lit(1i64), lit(2i64)], true), &s).unwrap();
        assert_eq!(
            e.data,
            col("ts").in_list(
                vec![cast(lit(1i64), ts_type.clone()), cast(lit(2i64), ts_type)],
                true
            )
        );
        assert!(
            !coerce(col("v").between(lit(1i64), lit(2i64)), &s)
                .unwrap()
                .transformed
        );
    }
}
