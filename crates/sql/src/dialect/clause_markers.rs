//! What the QuestDB clauses sqlparser cannot parse (`SAMPLE BY`, `LATEST
//! ON`) share: they are cut out of the statement's text and their SELECT
//! is marked with `GROUP BY "<marker><n>"`; after parsing, [`for_each_select`]
//! finds every SELECT (in FROM subqueries, WITH queries and set operations
//! too) and [`marker_of`] tells which clause marked it.

use datafusion::sql::sqlparser::ast::{
    Expr, GroupByExpr, Query, Select, SetExpr, TableFactor, TableWithJoins,
};

use crate::error::{QueryError, QueryErrorKind};

/// Whether `sql` holds `word` in any case (a cheap test before
/// tokenizing a statement for a clause it cannot hold otherwise).
pub fn mentions(sql: &str, word: &str) -> bool {
    let word = word.as_bytes();
    sql.as_bytes()
        .windows(word.len())
        .any(|w| w.eq_ignore_ascii_case(word))
}

/// Calls `f` on every SELECT of `query`, inner ones first.
pub fn for_each_select(
    query: &mut Query,
    f: &mut dyn FnMut(&mut Select) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    if let Some(with) = &mut query.with {
        for cte in &mut with.cte_tables {
            for_each_select(&mut cte.query, f)?;
        }
    }
    walk_set(&mut query.body, f)
}

fn walk_set(
    body: &mut SetExpr,
    f: &mut dyn FnMut(&mut Select) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    match body {
        SetExpr::Select(select) => {
            for t in &mut select.from {
                walk_factor(&mut t.relation, f)?;
                for j in &mut t.joins {
                    walk_factor(&mut j.relation, f)?;
                }
            }
            f(select)
        }
        SetExpr::Query(q) => for_each_select(q, f),
        SetExpr::SetOperation { left, right, .. } => {
            walk_set(left, f)?;
            walk_set(right, f)
        }
        _ => Ok(()),
    }
}

fn walk_factor(
    factor: &mut TableFactor,
    f: &mut dyn FnMut(&mut Select) -> Result<(), QueryError>,
) -> Result<(), QueryError> {
    match factor {
        TableFactor::Derived { subquery, .. } => for_each_select(subquery, f),
        TableFactor::NestedJoin {
            table_with_joins, ..
        } => {
            walk_factor(&mut table_with_joins.relation, f)?;
            for j in &mut table_with_joins.joins {
                walk_factor(&mut j.relation, f)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The clause number of a SELECT whose GROUP BY is `marker` and a number.
pub fn marker_of(select: &Select, marker: &str) -> Option<usize> {
    let GroupByExpr::Expressions(exprs, _) = &select.group_by else {
        return None;
    };
    match exprs.as_slice() {
        [Expr::Identifier(i)] if i.quote_style.is_some() => {
            i.value.strip_prefix(marker)?.parse().ok()
        }
        _ => None,
    }
}

/// The one stored table a clause's SELECT reads: its name and alias.
pub fn single_table<'a>(
    from: &'a [TableWithJoins],
    clause: &str,
) -> Result<(String, Option<&'a str>), QueryError> {
    let needs = || {
        QueryError::new(
            QueryErrorKind::Invalid,
            format!(
                "{clause} needs one table with a designated timestamp in FROM (no joins or subqueries)"
            ),
        )
    };
    let [t] = from else {
        return Err(needs());
    };
    if !t.joins.is_empty() {
        return Err(needs());
    }
    let TableFactor::Table { name, alias, .. } = &t.relation else {
        return Err(needs());
    };
    let table = name
        .0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.clone())
        .ok_or_else(needs)?;
    Ok((table, alias.as_ref().map(|a| a.name.value.as_str())))
}
