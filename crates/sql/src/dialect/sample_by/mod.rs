//! QuestDB's `SAMPLE BY`: rows grouped into time buckets of the designated
//! timestamp, one result row per bucket (and key), empty buckets filled
//! as asked.
//!
//! sqlparser cannot parse the clause, so it travels in three steps:
//!
//! 1. [`clause::extract`] cuts `SAMPLE BY ... FILL ... ALIGN TO ...` out of
//!    the text and leaves a marker `GROUP BY` in its place;
//! 2. [`rewrite_selects`] turns each marked SELECT into a plain grouped
//!    one: the designated timestamp becomes a bucket function
//!    ([`bucket_function::SampleBucket`], made per statement with the
//!    clause's [`bucketing::Bucketing`]), the other plain columns become
//!    keys, `FROM`/`TO` become bounds in WHERE (which prune segments);
//!    DataFusion's hash aggregate does the grouping;
//! 3. [`node::wrap_plan`] puts a [`node::SampleByNode`] over the grouped
//!    result: it orders rows by bucket and key and fills empty buckets
//!    ([`fill::SampleByExec`]), streaming its output in batches.
//!
//! What QuestDB does and this follows: results are ordered by bucket,
//! bucket timestamps are UTC, calendar alignment is the default, every key
//! seen in the result gets a row in every bucket when filling, PREV before
//! a key's first value is NULL, LINEAR extrapolates at the edges from the
//! two nearest values, one fill option applies to every aggregate,
//! `FROM`/`TO` are read in the time zone's wall time and also filter rows.
//! Nothing here reads rows except the one-row query that finds the first
//! observation.

pub mod bucket_function;
pub mod bucketing;
pub mod clause;
pub mod fill;
pub mod node;

use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Ident, Query, Select, SelectItem, Value,
};

use crate::dialect::clause_markers::{for_each_select, marker_of, single_table};
use crate::dialect::rewrite::call;
use crate::dialect::time_ranges::format_nanos;
use crate::error::{QueryError, QueryErrorKind};
use bucketing::Bucketing;
use clause::{Align, Fill, MARKER, SampleByClause};

pub use clause::extract;

fn invalid(message: impl Into<String>) -> QueryError {
    QueryError::new(QueryErrorKind::Invalid, message)
}

/// The name of clause `index`'s bucket function.
pub fn bucket_function_name(index: usize) -> String {
    format!("__quiver_sample_bucket_{index}")
}

/// The name of the bucket column added when the query does not select
/// the designated timestamp (removed again after filling).
pub fn hidden_bucket_name(index: usize) -> String {
    format!("__quiver_bucket_{index}")
}

/// One clause after its SELECT was rewritten.
#[derive(Debug, Clone)]
pub struct PreparedSampleBy {
    /// Which clause of the statement.
    pub index: usize,
    /// The clause.
    pub clause: SampleByClause,
    /// For `ALIGN TO FIRST OBSERVATION`: the query giving the first
    /// timestamp after WHERE.
    pub first_row_query: Option<String>,
    /// Whether the bucket column is hidden (not selected).
    pub hidden: bool,
    /// `FROM` and `TO` as UTC instants.
    pub range: (Option<i64>, Option<i64>),
}

impl PreparedSampleBy {
    /// How rows are cut into buckets, given the first row's timestamp
    /// (nanoseconds) for `ALIGN TO FIRST OBSERVATION`.
    pub fn bucketing(&self, first_row: Option<i64>) -> Result<Bucketing, QueryError> {
        let c = &self.clause;
        let (origin, zone) = match &c.align {
            Align::FirstObservation => (first_row.unwrap_or(0), None),
            Align::Calendar { zone, offset } => match c.from {
                Some(from) => (from.saturating_add(*offset), *zone),
                None => (Bucketing::calendar_origin(c.unit, *offset), *zone),
            },
        };
        Bucketing::new(c.stride, c.unit, origin, zone)
            .ok_or_else(|| invalid(format!("SAMPLE BY stride too long: {}", c.text)))
    }

    /// The fill option of each of `values` aggregate columns.
    pub fn fills(&self, values: usize) -> Result<Vec<Fill>, QueryError> {
        let fill = &self.clause.fill;
        if fill.len() > 1 && fill.contains(&Fill::None) {
            return Err(invalid(
                "FILL(NONE) cannot be combined with other fill options",
            ));
        }
        match fill.len() {
            0 => Ok(vec![Fill::None; values]),
            1 => Ok(vec![fill[0].clone(); values]),
            n if n == values => Ok(fill.clone()),
            n if n < values => Err(invalid(format!(
                "insufficient fill values for SAMPLE BY FILL: expected {values} values but only {n} provided"
            ))),
            n => Err(invalid(format!(
                "too many fill values for SAMPLE BY FILL: {values} aggregate columns but {n} values"
            ))),
        }
    }
}

/// What [`rewrite_selects`] needs to know of the database and session.
pub struct SelectContext<'a> {
    /// The designated timestamp column of a table, by its name.
    pub designated_timestamp: &'a dyn Fn(&str) -> Option<String>,
    /// Whether a function name is an aggregate.
    pub is_aggregate: &'a dyn Fn(&str) -> bool,
}

/// Rewrites each SELECT marked by [`extract`] (see the module docs).
pub fn rewrite_selects(
    query: &mut Query,
    clauses: &[SampleByClause],
    context: &SelectContext<'_>,
) -> Result<Vec<PreparedSampleBy>, QueryError> {
    let mut out = Vec::new();
    for_each_select(query, &mut |select| {
        if let Some(index) = marker_of(select, MARKER) {
            let clause = clauses
                .get(index)
                .ok_or_else(|| invalid("unknown SAMPLE BY marker"))?;
            out.push(rewrite_select(select, index, clause, context)?);
        }
        Ok(())
    })?;
    if out.len() != clauses.len() {
        return Err(QueryError::new(
            QueryErrorKind::Unsupported,
            "SAMPLE BY is supported in a SELECT, its FROM subqueries and WITH queries, not in expressions",
        ));
    }
    out.sort_by_key(|p| p.index);
    Ok(out)
}

/// Whether `expr` names column `ts` (bare or qualified by one of
/// `qualifiers`).
fn is_column(expr: &Expr, ts: &str, qualifiers: &[String]) -> bool {
    match expr {
        Expr::Identifier(i) => i.value.eq_ignore_ascii_case(ts),
        Expr::CompoundIdentifier(parts) => match parts.as_slice() {
            [q, c] => {
                c.value.eq_ignore_ascii_case(ts)
                    && qualifiers.iter().any(|n| n.eq_ignore_ascii_case(&q.value))
            }
            _ => false,
        },
        Expr::Nested(e) => is_column(e, ts, qualifiers),
        _ => false,
    }
}

fn timestamp_literal(ns: i64) -> Expr {
    Expr::value(Value::SingleQuotedString(format_nanos(ns)))
}

fn rewrite_select(
    select: &mut Select,
    index: usize,
    clause: &SampleByClause,
    context: &SelectContext<'_>,
) -> Result<PreparedSampleBy, QueryError> {
    let (table, alias) = single_table(&select.from, "SAMPLE BY")?;
    let ts = (context.designated_timestamp)(&table).ok_or_else(|| {
        invalid(format!(
            "SAMPLE BY needs a designated timestamp, and table {table} has none"
        ))
    })?;
    let mut qualifiers = vec![table];
    qualifiers.extend(alias.map(str::to_string));
    let ts_ident = Ident::with_quote('"', ts.clone());
    let bucket = |arg: Expr| call(&bucket_function_name(index), vec![arg]);
    if matches!(clause.align, Align::FirstObservation)
        && (clause.from.is_some() || clause.to.is_some())
    {
        return Err(invalid(
            "SAMPLE BY ... FROM/TO works with ALIGN TO CALENDAR, not ALIGN TO FIRST OBSERVATION",
        ));
    }
    // FROM and TO are wall-clock times in the clause's time zone.
    let zone = match &clause.align {
        Align::Calendar { zone, .. } => *zone,
        Align::FirstObservation => None,
    };
    let wall = Bucketing::new(clause.stride, clause.unit, 0, zone)
        .ok_or_else(|| invalid(format!("SAMPLE BY stride too long: {}", clause.text)))?;
    let to_utc = |local: Option<i64>| -> Result<Option<i64>, QueryError> {
        local
            .map(|l| {
                wall.to_utc(l).ok_or_else(|| {
                    invalid(format!("SAMPLE BY bound out of range: {}", clause.text))
                })
            })
            .transpose()
    };
    let range = (to_utc(clause.from)?, to_utc(clause.to)?);
    let first_row_query = match clause.align {
        Align::FirstObservation => Some(format!(
            "SELECT min({ts_ident}) FROM {}{}",
            select.from[0],
            select
                .selection
                .as_ref()
                .map(|w| format!(" WHERE {w}"))
                .unwrap_or_default()
        )),
        Align::Calendar { .. } => None,
    };
    let mut keys = Vec::new();
    let mut has_bucket = false;
    for item in &mut select.projection {
        let expr = match item {
            SelectItem::UnnamedExpr(e) => {
                if is_column(e, &ts, &qualifiers) {
                    let alias = match e {
                        Expr::Identifier(i) => i.clone(),
                        _ => ts_ident.clone(),
                    };
                    *item = SelectItem::ExprWithAlias {
                        expr: bucket(e.clone()),
                        alias,
                    };
                    has_bucket = true;
                    continue;
                }
                e
            }
            SelectItem::ExprWithAlias { expr, .. } => {
                if is_column(expr, &ts, &qualifiers) {
                    *expr = bucket(expr.clone());
                    has_bucket = true;
                    continue;
                }
                expr
            }
            _ => {
                return Err(invalid(
                    "SAMPLE BY needs its columns listed (a timestamp, keys and aggregates), not *",
                ));
            }
        };
        if !crate::dialect::rewrite::calls_aggregate(expr, context.is_aggregate) {
            keys.push(expr.clone());
        }
    }
    let bucket_expr = bucket(Expr::Identifier(ts_ident.clone()));
    if !has_bucket {
        select.projection.push(SelectItem::ExprWithAlias {
            expr: bucket_expr.clone(),
            alias: Ident::with_quote('"', hidden_bucket_name(index)),
        });
    }
    let mut group = vec![bucket_expr];
    group.extend(keys);
    select.group_by = GroupByExpr::Expressions(group, vec![]);
    // FROM / TO bound the rows read, as in QuestDB.
    for (bound, op) in [
        (range.0, BinaryOperator::GtEq),
        (range.1, BinaryOperator::Lt),
    ] {
        let Some(ns) = bound else { continue };
        let condition = Expr::BinaryOp {
            left: Box::new(Expr::Identifier(ts_ident.clone())),
            op,
            right: Box::new(timestamp_literal(ns)),
        };
        select.selection = Some(match select.selection.take() {
            Some(w) => Expr::BinaryOp {
                left: Box::new(Expr::Nested(Box::new(w))),
                op: BinaryOperator::And,
                right: Box::new(condition),
            },
            None => condition,
        });
    }
    Ok(PreparedSampleBy {
        index,
        clause: clause.clone(),
        first_row_query,
        hidden: !has_bucket,
        range,
    })
}
