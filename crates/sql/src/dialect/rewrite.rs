//! Rewrites of the parsed statement that make DataFusion answer as QuestDB
//! does, before it is planned:
//!
//! - casts to QuestDB's own types (`'1.2.3.4'::ipv4`, `x::symbol`,
//!   `1700000000123456789::timestamp_ns`, `'..'::uuid`, `::long256`,
//!   `::timestamp` in microseconds, `::date` in milliseconds, `::long`,
//!   `::short`, `::byte`, `::char`) become [`super::cast`] calls;
//! - unnamed result columns get QuestDB's names: an aggregate or other
//!   function call is named after the function (`count`, `avg`; `min1` for
//!   the second `min`), a cast `cast`;
//! - QuestDB's aggregates that DataFusion has under other names become
//!   those (after naming, so the column keeps QuestDB's name): `first(x)`
//!   and `last(x)` are `first_value(x)` / `last_value(x)`, ordered by the
//!   designated timestamp when the SELECT reads one table that has one
//!   ([`order_first_last`]; scan order otherwise), `first_not_null` /
//!   `last_not_null` the same `IGNORE NULLS`, and `count_distinct(x)` is
//!   `count(DISTINCT x)`;
//! - a SELECT that mixes aggregates with other columns and has no GROUP BY
//!   groups by those columns, as QuestDB's implicit GROUP BY does
//!   ([`implicit_group_by`]): `SELECT sym, avg(px) FROM t`;
//! - names are case-insensitive, as in QuestDB ([`resolve_names`]): an
//!   unquoted name that matches a column or a result alias in another case
//!   is replaced by that spelling, quoted (DataFusion would otherwise
//!   lower-case it and miss `Price`), and result aliases keep the case
//!   they were written in.
//!
//! Only the AST changes here; nothing is planned or read.

use std::collections::HashMap;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    DataType, Expr, Function, FunctionArg, FunctionArgExpr, FunctionArgumentList,
    FunctionArguments, Ident, ObjectName, Query, Select, SelectItem, SetExpr, Statement,
    TableFactor, Value, visit_expressions_mut,
};
use quiver_storage::ColumnType;

/// Applies every rewrite to `statement`.
pub fn rewrite(statement: &mut Statement) {
    rewrite_casts(statement);
    if let Statement::Query(q) = statement {
        name_query(q);
    }
    rewrite_aggregates(statement);
}

/// Makes `first_value` / `last_value` (QuestDB's `first`, `last` and their
/// `_not_null` forms) take the value at the earliest / latest designated
/// timestamp, not in scan order, in each SELECT over one table that has
/// one: `first_value(x ORDER BY ts)`. Rows ingested out of timestamp order
/// then still give QuestDB's answer.
pub fn order_first_last(
    query: &mut Query,
    designated_timestamp: &dyn Fn(&str) -> Option<String>,
) -> Result<(), crate::error::QueryError> {
    use datafusion::sql::sqlparser::ast::{
        FunctionArgumentClause, OrderByExpr, OrderByOptions, visit_expressions_mut,
    };
    super::clause_markers::for_each_select(query, &mut |select| {
        let Ok((table, _)) = super::clause_markers::single_table(&select.from, "") else {
            return Ok(());
        };
        let Some(ts) = designated_timestamp(&table) else {
            return Ok(());
        };
        let order = FunctionArgumentClause::OrderBy(vec![OrderByExpr {
            expr: Expr::Identifier(Ident::with_quote('"', ts)),
            options: OrderByOptions {
                asc: None,
                nulls_first: None,
            },
            with_fill: None,
        }]);
        for item in &mut select.projection {
            let _ = visit_expressions_mut(item, |expr| {
                if let Expr::Function(f) = expr
                    && f.over.is_none()
                    && f.name.0.last().and_then(|p| p.as_ident()).is_some_and(|i| {
                        i.value.eq_ignore_ascii_case("first_value")
                            || i.value.eq_ignore_ascii_case("last_value")
                    })
                    && let FunctionArguments::List(list) = &mut f.args
                    && !list
                        .clauses
                        .iter()
                        .any(|c| matches!(c, FunctionArgumentClause::OrderBy(_)))
                {
                    list.clauses.push(order.clone());
                }
                ControlFlow::<()>::Continue(())
            });
        }
        Ok(())
    })
}

/// QuestDB's implicit GROUP BY: in each SELECT without GROUP BY whose
/// result has an aggregate (`is_aggregate` names them; window functions are
/// not) next to items that read columns without one, those items become
/// the GROUP BY (`SELECT sym, timestamp_floor('d', ts) d, count() FROM t`
/// groups by `sym` and the day). Items that are constants are left out (a
/// number in GROUP BY would mean a position), as are SELECTs with `*`.
pub fn implicit_group_by(
    query: &mut Query,
    is_aggregate: &dyn Fn(&str) -> bool,
) -> Result<(), crate::error::QueryError> {
    use datafusion::sql::sqlparser::ast::{GroupByExpr, visit_expressions};
    let has_aggregate = |item: &SelectItem| match item {
        SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
            calls_aggregate(e, is_aggregate)
        }
        _ => false,
    };
    let reads_columns = |expr: &Expr| {
        visit_expressions(expr, |e| match e {
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => ControlFlow::Break(()),
            _ => ControlFlow::Continue(()),
        })
        .is_break()
    };
    super::clause_markers::for_each_select(query, &mut |select| {
        let ungrouped = matches!(&select.group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
        let wildcard = select.projection.iter().any(|i| {
            matches!(
                i,
                SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(_, _)
            )
        });
        if !ungrouped || wildcard || !select.projection.iter().any(has_aggregate) {
            return Ok(());
        }
        let keys: Vec<Expr> = select
            .projection
            .iter()
            .filter(|item| !has_aggregate(item))
            .filter_map(|item| match item {
                SelectItem::UnnamedExpr(e) | SelectItem::ExprWithAlias { expr: e, .. } => {
                    reads_columns(e).then(|| e.clone())
                }
                _ => None,
            })
            .collect();
        if !keys.is_empty() {
            select.group_by = GroupByExpr::Expressions(keys, vec![]);
        }
        Ok(())
    })
}

/// Whether `expr` calls an aggregate (one `is_aggregate` names, not as a
/// window function) anywhere.
pub(crate) fn calls_aggregate(expr: &Expr, is_aggregate: &dyn Fn(&str) -> bool) -> bool {
    use datafusion::sql::sqlparser::ast::visit_expressions;
    visit_expressions(expr, |e| match e {
        Expr::Function(f)
            if f.over.is_none()
                && f.name
                    .0
                    .last()
                    .and_then(|p| p.as_ident())
                    .is_some_and(|i| is_aggregate(&i.value.to_ascii_lowercase())) =>
        {
            ControlFlow::Break(())
        }
        _ => ControlFlow::Continue(()),
    })
    .is_break()
}

/// QuestDB's aggregate names as DataFusion's (see the module docs).
fn rewrite_aggregates(statement: &mut Statement) {
    use datafusion::sql::sqlparser::ast::{DuplicateTreatment, NullTreatment};
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Function(f) = expr
            && f.over.is_none()
            && let Some(ident) = f.name.0.last().and_then(|p| p.as_ident())
        {
            let (to, ignore_nulls, distinct) = match ident.value.to_ascii_lowercase().as_str() {
                "first" => ("first_value", false, false),
                "last" => ("last_value", false, false),
                "first_not_null" => ("first_value", true, false),
                "last_not_null" => ("last_value", true, false),
                "count_distinct" => ("count", false, true),
                _ => return ControlFlow::<()>::Continue(()),
            };
            f.name = ObjectName::from(vec![Ident::new(to)]);
            if ignore_nulls {
                f.null_treatment = Some(NullTreatment::IgnoreNulls);
            }
            if distinct && let FunctionArguments::List(list) = &mut f.args {
                list.duplicate_treatment = Some(DuplicateTreatment::Distinct);
            }
        }
        ControlFlow::Continue(())
    });
}

/// The QuestDB type a cast names, when DataFusion would cast differently
/// (or not at all).
fn questdb_type(data_type: &DataType) -> Option<ColumnType> {
    let text = match data_type {
        // `geohash(8c)` arrives as the modifiers "8" and "c".
        DataType::Custom(name, modifiers) if !modifiers.is_empty() => {
            let arg = modifiers.concat().to_ascii_lowercase();
            let bits = match arg.strip_suffix('c') {
                Some(chars) => chars.parse::<u32>().ok()?.checked_mul(5)?.to_string(),
                None => arg.trim_end_matches('b').to_string(),
            };
            format!("{name}({bits})")
        }
        other => other.to_string(),
    };
    let t = ColumnType::from_name(&text)?;
    match t {
        ColumnType::Byte
        | ColumnType::Short
        | ColumnType::Char
        | ColumnType::Long
        | ColumnType::Symbol
        | ColumnType::Timestamp
        | ColumnType::TimestampNanos
        | ColumnType::Date
        | ColumnType::Uuid
        | ColumnType::Long256
        | ColumnType::Ipv4
        | ColumnType::Geohash(_) => Some(t),
        _ => None,
    }
}

pub(crate) fn call(name: &str, args: Vec<Expr>) -> Expr {
    Expr::Function(Function {
        name: ObjectName::from(vec![Ident::new(name)]),
        uses_odbc_syntax: false,
        parameters: FunctionArguments::None,
        args: FunctionArguments::List(FunctionArgumentList {
            duplicate_treatment: None,
            args: args
                .into_iter()
                .map(|e| FunctionArg::Unnamed(FunctionArgExpr::Expr(e)))
                .collect(),
            clauses: vec![],
        }),
        filter: None,
        null_treatment: None,
        over: None,
        within_group: vec![],
    })
}

fn rewrite_casts(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Cast {
            expr: inner,
            data_type,
            ..
        } = expr
            && let Some(t) = questdb_type(data_type)
        {
            let value = std::mem::replace(inner.as_mut(), Expr::value(Value::Null));
            let name = Expr::value(Value::SingleQuotedString(t.name()));
            *expr = call(super::cast::NAME, vec![value, name]);
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Resolves names case-insensitively (see the module docs) against
/// `columns`, the columns of every table the statement reads.
pub fn resolve_names<'a>(statement: &mut Statement, columns: impl IntoIterator<Item = &'a str>) {
    let mut known: HashMap<String, String> = HashMap::new();
    for c in columns {
        known
            .entry(c.to_ascii_lowercase())
            .or_insert_with(|| c.to_string());
    }
    if let Statement::Query(q) = statement {
        let mut aliases = Vec::new();
        quote_aliases_query(q, &mut aliases);
        for a in aliases {
            known.entry(a.to_ascii_lowercase()).or_insert(a);
        }
    }
    let canonical = |ident: &mut Ident| {
        if ident.quote_style.is_none()
            && let Some(name) = known.get(&ident.value.to_ascii_lowercase())
        {
            ident.value = name.clone();
            ident.quote_style = Some('"');
        }
    };
    let _ = visit_expressions_mut(statement, |expr| {
        match expr {
            Expr::Identifier(i) => canonical(i),
            Expr::CompoundIdentifier(parts) => {
                if let Some(last) = parts.last_mut() {
                    canonical(last);
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Quotes unquoted result aliases (so they keep their case) and collects
/// them.
fn quote_aliases_query(query: &mut Query, out: &mut Vec<String>) {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            quote_aliases_query(&mut cte.query, out);
        }
    }
    quote_aliases_set(&mut query.body, out);
}

fn quote_aliases_set(body: &mut SetExpr, out: &mut Vec<String>) {
    match body {
        SetExpr::Select(select) => {
            for table in &mut select.from {
                let factors = std::iter::once(&mut table.relation)
                    .chain(table.joins.iter_mut().map(|j| &mut j.relation));
                for factor in factors {
                    if let TableFactor::Derived { subquery, .. } = factor {
                        quote_aliases_query(subquery, out);
                    }
                }
            }
            for item in &mut select.projection {
                if let SelectItem::ExprWithAlias { alias, .. } = item {
                    if alias.quote_style.is_none() {
                        alias.quote_style = Some('"');
                    }
                    out.push(alias.value.clone());
                }
            }
        }
        SetExpr::Query(q) => quote_aliases_query(q, out),
        SetExpr::SetOperation { left, right, .. } => {
            quote_aliases_set(left, out);
            quote_aliases_set(right, out);
        }
        _ => {}
    }
}

fn name_query(query: &mut Query) {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            name_query(&mut cte.query);
        }
    }
    name_set_expr(&mut query.body);
}

fn name_set_expr(body: &mut SetExpr) {
    match body {
        SetExpr::Select(select) => name_select(select),
        SetExpr::Query(q) => name_query(q),
        SetExpr::SetOperation { left, right, .. } => {
            name_set_expr(left);
            name_set_expr(right);
        }
        _ => {}
    }
}

fn name_select(select: &mut Select) {
    for table in &mut select.from {
        name_factor(&mut table.relation);
        for join in &mut table.joins {
            name_factor(&mut join.relation);
        }
    }
    let mut used: HashMap<String, usize> = HashMap::new();
    for item in &mut select.projection {
        let name = match item {
            SelectItem::UnnamedExpr(Expr::Function(f)) => f
                .name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .map(|i| i.value.to_ascii_lowercase()),
            SelectItem::UnnamedExpr(Expr::Cast { .. }) => Some("cast".to_string()),
            SelectItem::UnnamedExpr(Expr::Identifier(i)) => {
                used.entry(i.value.to_ascii_lowercase()).or_default();
                None
            }
            SelectItem::ExprWithAlias { alias, .. } => {
                used.entry(alias.value.to_ascii_lowercase()).or_default();
                None
            }
            _ => None,
        };
        let Some(name) = name else { continue };
        // `questdb_cast` calls came from casts.
        let name = if name == super::cast::NAME {
            "cast".to_string()
        } else {
            name
        };
        let n = used.entry(name.clone()).or_default();
        let alias = match *n {
            0 => name,
            k => format!("{name}{k}"),
        };
        *n += 1;
        let SelectItem::UnnamedExpr(expr) =
            std::mem::replace(item, SelectItem::Wildcard(Default::default()))
        else {
            continue;
        };
        *item = SelectItem::ExprWithAlias {
            expr,
            alias: Ident::with_quote('"', alias),
        };
    }
}

fn name_factor(factor: &mut TableFactor) {
    if let TableFactor::Derived { subquery, .. } = factor {
        name_query(subquery);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    fn rewritten(sql: &str) -> String {
        let mut s = Parser::parse_sql(&GenericDialect {}, sql)
            .unwrap()
            .remove(0);
        rewrite(&mut s);
        s.to_string()
    }

    #[test]
    fn questdb_aggregates_become_datafusion_ones_keeping_their_names() {
        assert_eq!(
            rewritten(
                "SELECT first(a), LAST(b), first_not_null(c), last_not_null(d), count_distinct(e) FROM t"
            ),
            "SELECT first_value(a) AS \"first\", last_value(b) AS \"last\", \
             first_value(c) IGNORE NULLS AS \"first_not_null\", last_value(d) IGNORE NULLS AS \"last_not_null\", \
             count(DISTINCT e) AS \"count_distinct\" FROM t"
        );
        // A window function of that name is left alone.
        assert!(rewritten("SELECT first(a) OVER () FROM t").contains("first(a) OVER ()"));
    }

    #[test]
    fn casts_and_names() {
        assert_eq!(
            rewritten(
                "SELECT '1.2.3.4'::ipv4, x::int, count(*), min(a), min(b), max(c) AS m FROM t"
            ),
            "SELECT questdb_cast('1.2.3.4', 'IPV4') AS \"cast\", x::INT AS \"cast1\", \
             count(*) AS \"count\", min(a) AS \"min\", min(b) AS \"min1\", max(c) AS m FROM t"
        );
        assert_eq!(
            rewritten("SELECT * FROM (SELECT avg(v) FROM t) WHERE ts > 5::timestamp_ns"),
            "SELECT * FROM (SELECT avg(v) AS \"avg\" FROM t) \
             WHERE ts > questdb_cast(5, 'TIMESTAMP_NS')"
        );
        let mut s = Parser::parse_sql(
            &GenericDialect {},
            "SELECT PRICE AS Total, t.Sym FROM t WHERE price > 1 ORDER BY TOTAL, other",
        )
        .unwrap()
        .remove(0);
        resolve_names(&mut s, ["Price", "sym"]);
        assert_eq!(
            s.to_string(),
            "SELECT \"Price\" AS \"Total\", t.\"sym\" FROM t WHERE \"Price\" > 1 \
             ORDER BY \"Total\", other"
        );
        assert_eq!(
            rewritten("SELECT 'u3'::geohash(2c), CAST(g AS geohash(7b))"),
            "SELECT questdb_cast('u3', 'GEOHASH(10b)') AS \"cast\", \
             questdb_cast(g, 'GEOHASH(7b)') AS \"cast1\""
        );
    }
}
