//! QuestDB types of result columns that DataFusion's operators dropped.
//!
//! A stored column's field carries its QuestDB type (`quiver.type`), which
//! is how an IPV4, CHAR or GEOHASH goes out as itself rather than as the
//! integer Arrow holds it in. Projections keep that metadata, but most
//! aggregates (`min`, `max`), `CASE` and `coalesce` drop it. [`restore`]
//! follows each unmarked result column back through the logical plan to
//! the stored column it carries unchanged, and marks it again when its
//! Arrow type is still that column's:
//!
//! - a column reference, an alias, a projection, filter, sort, limit,
//!   subquery alias, distinct, join or union passes its input's type on;
//! - `min`, `max`, `first_value`, `last_value`, `any_value`, `lag`, `lead`
//!   and `nth_value` of a column have its type;
//! - `CASE` and `coalesce`/`nvl` have the type all their branches agree on
//!   (NULL literals aside).
//!
//! Anything else (arithmetic, casts, other functions) is a new value and
//! stays as DataFusion typed it.

use std::sync::Arc;

use arrow::datatypes::{Schema, SchemaRef};
use datafusion::logical_expr::{Expr, LogicalPlan};
use quiver_storage::{ColumnType, TYPE_METADATA_KEY};

/// `physical` (the stream's schema) with the QuestDB types `plan`'s columns
/// carry marked again (see the module docs).
pub fn restore(plan: &LogicalPlan, physical: SchemaRef) -> SchemaRef {
    let mut changed = false;
    let fields: Vec<_> = physical
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            if f.metadata().contains_key(TYPE_METADATA_KEY) {
                return Arc::clone(f);
            }
            let t = column_type(plan, i)
                .and_then(|t| ColumnType::from_name(&t))
                .filter(|t| &t.read_type() == f.data_type());
            match t {
                Some(t) => {
                    changed = true;
                    let mut metadata = f.metadata().clone();
                    metadata.insert(TYPE_METADATA_KEY.to_string(), t.name());
                    Arc::new(f.as_ref().clone().with_metadata(metadata))
                }
                None => Arc::clone(f),
            }
        })
        .collect();
    match changed {
        true => Arc::new(Schema::new_with_metadata(
            fields,
            physical.metadata().clone(),
        )),
        false => physical,
    }
}

/// The QuestDB type name output column `i` of `plan` carries, if any.
fn column_type(plan: &LogicalPlan, i: usize) -> Option<String> {
    let schema = plan.schema();
    if let Some(t) = schema.fields().get(i)?.metadata().get(TYPE_METADATA_KEY) {
        return Some(t.clone());
    }
    match plan {
        LogicalPlan::Projection(p) => expr_type(p.expr.get(i)?, &p.input),
        LogicalPlan::Aggregate(a) => {
            let groups = a.group_expr.len();
            // GROUPING SETS / ROLLUP / CUBE output more columns than the
            // expressions listed (every grouping column and an id): no
            // simple correspondence, no restored types.
            if schema.fields().len() != groups + a.aggr_expr.len() {
                return None;
            }
            match i < groups {
                true => expr_type(&a.group_expr[i], &a.input),
                false => expr_type(a.aggr_expr.get(i - groups)?, &a.input),
            }
        }
        LogicalPlan::Window(w) => {
            let n = w.input.schema().fields().len();
            match i < n {
                true => column_type(&w.input, i),
                false => expr_type(w.window_expr.get(i - n)?, &w.input),
            }
        }
        LogicalPlan::Join(j) => {
            let left = j.left.schema().fields().len();
            // Semi and anti joins output one side only; the column counts
            // tell which.
            if schema.fields().len() == left {
                column_type(&j.left, i)
            } else if schema.fields().len() == j.right.schema().fields().len() {
                column_type(&j.right, i)
            } else if i < left {
                column_type(&j.left, i)
            } else {
                column_type(&j.right, i - left)
            }
        }
        LogicalPlan::Union(u) => agree(u.inputs.iter().map(|p| column_type(p, i))),
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Distinct(datafusion::logical_expr::Distinct::All(_))
        | LogicalPlan::Repartition(_) => column_type(plan.inputs().first()?, i),
        _ => None,
    }
}

/// The type every one of `types` has (`None` if any lacks one or they differ).
fn agree(types: impl Iterator<Item = Option<String>>) -> Option<String> {
    let mut out: Option<String> = None;
    for t in types {
        let t = t?;
        match &out {
            Some(o) if *o != t => return None,
            _ => out = Some(t),
        }
    }
    out
}

fn is_null_literal(e: &Expr) -> bool {
    matches!(e, Expr::Literal(v, _) if v.is_null())
}

/// The QuestDB type `e`, evaluated over `input`, carries unchanged.
fn expr_type(e: &Expr, input: &LogicalPlan) -> Option<String> {
    match e {
        Expr::Column(c) => column_type(input, input.schema().index_of_column(c).ok()?),
        Expr::Alias(a) => expr_type(&a.expr, input),
        Expr::AggregateFunction(f) => match f.func.name() {
            "min" | "max" | "first_value" | "last_value" | "any_value" => {
                expr_type(f.params.args.first()?, input)
            }
            _ => None,
        },
        Expr::WindowFunction(w) => match w.fun.name() {
            "min" | "max" | "first_value" | "last_value" | "any_value" | "lag" | "lead"
            | "nth_value" => expr_type(w.params.args.first()?, input),
            _ => None,
        },
        Expr::Case(c) => agree(
            c.when_then_expr
                .iter()
                .map(|(_, then)| then.as_ref())
                .chain(c.else_expr.as_deref())
                .filter(|e| !is_null_literal(e))
                .map(|e| expr_type(e, input)),
        ),
        Expr::ScalarFunction(f) if matches!(f.name(), "coalesce" | "nvl" | "ifnull") => agree(
            f.args
                .iter()
                .filter(|e| !is_null_literal(e))
                .map(|e| expr_type(e, input)),
        ),
        _ => None,
    }
}
