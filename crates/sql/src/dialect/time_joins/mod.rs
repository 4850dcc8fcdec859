//! QuestDB's time-series joins: `ASOF JOIN` (each left row with the right
//! row of the same key that was in force at its time: the newest at or
//! before it) and `LT JOIN` (strictly before), optionally `ON (key, ...)`
//! or `ON a.k = b.k`, and `TOLERANCE 1m` (no match older than that); and
//! `SPLICE JOIN` (every row of both sides, each with the other side's row in
//! force, in `side.rs`).
//!
//! The right side is a table or a subquery (with an alias) over one; the
//! time of each side is its table's designated timestamp.
//!
//! sqlparser cannot parse them, so [`extract`] rewrites the text: the join
//! becomes a `LEFT JOIN` (`FULL JOIN` for SPLICE) whose right table is wrapped in a marker subquery
//! (its alias kept), `ON (a, b)` becomes `USING (a, b)`, `TOLERANCE` is cut
//! out. [`wrap_plan`] then replaces each marked join with a
//! [`TimeJoinNode`]: a merge over both inputs ordered by their designated
//! timestamps ([`exec::TimeJoinExec`]) that keeps only the newest right row
//! per key, so its own memory follows the number of keys.

pub mod exec;
mod side;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchemaRef, internal_err};
use datafusion::error::Result;
use datafusion::logical_expr::{
    BinaryExpr, Expr, Extension, JoinType, LogicalPlan, Operator, UserDefinedLogicalNodeCore,
};
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::error::{QueryError, QueryErrorKind};
use crate::write::tokens::{Tokens, describe};

/// The alias prefix marking a time join's right table.
pub const MARKER: &str = "__quiver_time_join_";

fn invalid(message: impl Into<String>) -> QueryError {
    QueryError::new(QueryErrorKind::Invalid, message)
}

/// Which time join.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd)]
pub enum TimeJoinKind {
    /// The newest right row at or before the left row's time.
    AsOf,
    /// The newest right row strictly before it.
    LessThan,
    /// Every row of both sides, each with the other side's row in force.
    Splice,
}

impl fmt::Display for TimeJoinKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeJoinKind::AsOf => "ASOF",
            TimeJoinKind::LessThan => "LT",
            TimeJoinKind::Splice => "SPLICE",
        })
    }
}

/// One time join as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimeJoinClause {
    /// ASOF or LT.
    pub kind: TimeJoinKind,
    /// `TOLERANCE`, nanoseconds.
    pub tolerance: Option<i64>,
}

fn is_word(t: Option<&Token>, word: &str) -> bool {
    matches!(t, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// Words that end a join's right table or its constraint.
const STOP_WORDS: [&str; 19] = [
    "WHERE",
    "GROUP",
    "ORDER",
    "LIMIT",
    "JOIN",
    "LEFT",
    "RIGHT",
    "INNER",
    "FULL",
    "CROSS",
    "ASOF",
    "LT",
    "SPLICE",
    "SAMPLE",
    "LATEST",
    "UNION",
    "EXCEPT",
    "INTERSECT",
    "OUTER",
];

fn is_stop(t: Option<&Token>) -> bool {
    matches!(
        t,
        None | Some(Token::EOF | Token::SemiColon | Token::RParen)
    ) || STOP_WORDS.iter().any(|w| is_word(t, w))
}

/// `sql` with each ASOF / LT join rewritten (see the module docs), and the
/// joins in order; `None` when it has none.
pub fn extract(sql: &str) -> Result<Option<(String, Vec<TimeJoinClause>)>, QueryError> {
    if !crate::dialect::clause_markers::mentions(sql, "join") {
        return Ok(None);
    }
    let mut text = sql.to_string();
    let mut clauses = Vec::new();
    loop {
        let Ok(mut tokens) = Tokens::new(&text) else {
            return Ok(None);
        };
        let Some(at) = (0..tokens.len()).find(|&i| {
            (is_word(tokens.get(i), "ASOF")
                || is_word(tokens.get(i), "LT")
                || is_word(tokens.get(i), "SPLICE"))
                && is_word(tokens.get(i + 1), "JOIN")
        }) else {
            break;
        };
        let kind = match tokens.get(at) {
            t if is_word(t, "ASOF") => TimeJoinKind::AsOf,
            t if is_word(t, "LT") => TimeJoinKind::LessThan,
            _ => TimeJoinKind::Splice,
        };
        let join = match kind {
            TimeJoinKind::Splice => "FULL JOIN",
            _ => "LEFT JOIN",
        };
        // The right side: a table name (maybe dotted) or a subquery, and
        // an alias.
        tokens.seek(at + 2);
        let name_start = tokens.position();
        let subquery = match tokens.peek() {
            Some(Token::LParen) => {
                tokens.next();
                Some(tokens.balanced_text()?)
            }
            Some(Token::Word(_)) => {
                tokens.next();
                while tokens.token(&Token::Period) {
                    tokens.name("table")?;
                }
                None
            }
            other => {
                return Err(QueryError::new(
                    QueryErrorKind::Unsupported,
                    format!(
                        "{kind} JOIN's right side must be a table or a subquery, found {}",
                        describe(other)
                    ),
                ));
            }
        };
        let name_end = tokens.position();
        let mut alias = None;
        let explicit_as = tokens.keyword("AS");
        if explicit_as
            || (!is_stop(tokens.peek())
                && !is_word(tokens.peek(), "ON")
                && !is_word(tokens.peek(), "USING")
                && !is_word(tokens.peek(), "TOLERANCE"))
        {
            // As written: quoted or not, so references to it still match.
            alias = match tokens.next() {
                Some(Token::Word(w)) => Some(w.to_string()),
                other => {
                    return Err(invalid(format!(
                        "expected an alias, found {}",
                        describe(other.as_ref())
                    )));
                }
            };
        }
        let factor_end = tokens.position();
        let (Some((join_start, _)), Some((name_from, _)), Some((_, name_to))) = (
            tokens.span(at),
            tokens.span(name_start),
            tokens.span(name_end - 1),
        ) else {
            return Ok(None);
        };
        let factor_to = tokens.span(factor_end - 1).map_or(text.len(), |s| s.1);
        let (source, shown) = match (&subquery, &alias) {
            (Some(q), Some(a)) => (format!("({q})"), a.clone()),
            (Some(_), None) => {
                return Err(invalid(format!(
                    "{kind} JOIN's right subquery needs an alias"
                )));
            }
            (None, a) => {
                let name = text[name_from..name_to].to_string();
                let shown = match a {
                    Some(a) => a.clone(),
                    None => name.rsplit('.').next().unwrap_or(&name).to_string(),
                };
                (name, shown)
            }
        };
        let index = clauses.len();
        let mut out = format!(
            "{}{join} (SELECT * FROM (SELECT * FROM {source}) AS \"{MARKER}{index}\") AS {shown}",
            &text[..join_start]
        );
        let mut copied = factor_to;
        // The constraint: `ON (a, b)` is QuestDB's USING.
        let mut has_constraint = false;
        if is_word(tokens.peek(), "ON") {
            has_constraint = true;
            let on = tokens.position();
            tokens.next();
            if tokens.token(&Token::LParen) {
                let mut names = vec![];
                let mut plain = true;
                loop {
                    match tokens.next() {
                        Some(Token::Word(w)) => names.push(w.to_string()),
                        _ => {
                            plain = false;
                            break;
                        }
                    }
                    if tokens.token(&Token::RParen) {
                        break;
                    }
                    if !tokens.token(&Token::Comma) {
                        plain = false;
                        break;
                    }
                }
                if plain {
                    let (Some((on_from, _)), Some((_, list_to))) =
                        (tokens.span(on), tokens.span(tokens.position() - 1))
                    else {
                        return Ok(None);
                    };
                    out.push_str(&text[copied..on_from]);
                    out.push_str(&format!("USING ({})", names.join(", ")));
                    copied = list_to;
                } else {
                    tokens.seek(on + 1);
                }
            }
        } else if is_word(tokens.peek(), "USING") {
            has_constraint = true;
        }
        // TOLERANCE: the first at this depth before the join's end.
        let mut depth = 0usize;
        let mut tolerance = None;
        let mut i = tokens.position();
        while i < tokens.len() {
            match tokens.get(i) {
                Some(Token::LParen) => depth += 1,
                Some(Token::RParen) if depth > 0 => depth -= 1,
                // (`a.tolerance` is a column.)
                t if depth == 0
                    && is_word(t, "TOLERANCE")
                    && !matches!(tokens.get(i.wrapping_sub(1)), Some(Token::Period)) =>
                {
                    tokens.seek(i + 1);
                    tolerance = Some(read_tolerance(&mut tokens)?);
                    let (Some((from, _)), Some((_, to))) =
                        (tokens.span(i), tokens.span(tokens.position() - 1))
                    else {
                        return Ok(None);
                    };
                    out.push_str(&text[copied..from]);
                    copied = to;
                    break;
                }
                t if depth == 0 && is_stop(t) && !is_word(t, "OUTER") => break,
                _ => {}
            }
            i += 1;
        }
        if !has_constraint {
            out.push_str(&text[copied..factor_to.max(copied)]);
            copied = copied.max(factor_to);
            out.push_str(" ON TRUE");
        }
        out.push_str(&text[copied..]);
        if kind == TimeJoinKind::Splice && tolerance.is_some() {
            return Err(invalid("SPLICE JOIN takes no TOLERANCE"));
        }
        clauses.push(TimeJoinClause { kind, tolerance });
        text = out;
    }
    match clauses.is_empty() {
        true => Ok(None),
        false => Ok(Some((text, clauses))),
    }
}

/// QuestDB's `ON (a, b)` shows both sides' key columns in `SELECT *`: each
/// time join's `USING (a, b)` (from [`extract`]) becomes `ON l.a = r.a AND
/// l.b = r.b`, `l` naming the first table of the FROM item, `r` the joined
/// one.
pub fn using_to_on(query: &mut datafusion::sql::sqlparser::ast::Query) -> Result<(), QueryError> {
    use datafusion::sql::sqlparser::ast::{
        BinaryOperator, Expr as SqlExpr, Ident, JoinConstraint, JoinOperator, TableFactor as Factor,
    };
    fn name_of(factor: &Factor) -> Option<Ident> {
        match factor {
            Factor::Table { alias: Some(a), .. } | Factor::Derived { alias: Some(a), .. } => {
                Some(a.name.clone())
            }
            Factor::Table { name, .. } => name.0.last().and_then(|p| p.as_ident()).cloned(),
            _ => None,
        }
    }
    crate::dialect::clause_markers::for_each_select(query, &mut |select| {
        let mut keys: Vec<String> = Vec::new();
        let mut qualifier: Option<Ident> = None;
        for item in &mut select.from {
            let Some(left) = name_of(&item.relation) else {
                continue;
            };
            // Only the first join of a FROM item: a later one's key may
            // belong to a table other than the first (it keeps USING).
            for join in item.joins.iter_mut().take(1) {
                let is_time_join = match &join.relation {
                    Factor::Derived { subquery, .. } => is_marker_subquery(subquery),
                    _ => false,
                };
                let Some(right) = name_of(&join.relation).filter(|_| is_time_join) else {
                    continue;
                };
                let constraint = match &mut join.join_operator {
                    JoinOperator::Left(c)
                    | JoinOperator::LeftOuter(c)
                    | JoinOperator::FullOuter(c) => c,
                    _ => continue,
                };
                let JoinConstraint::Using(columns) = constraint else {
                    continue;
                };
                let mut on: Option<SqlExpr> = None;
                for column in columns.iter() {
                    let Some(c) = column.0.last().and_then(|p| p.as_ident()) else {
                        continue;
                    };
                    let equal = SqlExpr::BinaryOp {
                        left: Box::new(SqlExpr::CompoundIdentifier(vec![left.clone(), c.clone()])),
                        op: BinaryOperator::Eq,
                        right: Box::new(SqlExpr::CompoundIdentifier(vec![
                            right.clone(),
                            c.clone(),
                        ])),
                    };
                    on = Some(match on {
                        None => equal,
                        Some(prev) => SqlExpr::BinaryOp {
                            left: Box::new(prev),
                            op: BinaryOperator::And,
                            right: Box::new(equal),
                        },
                    });
                }
                if let Some(on) = on {
                    keys.extend(columns.iter().filter_map(|c| {
                        c.0.last()
                            .and_then(|p| p.as_ident())
                            .map(|i| i.value.clone())
                    }));
                    *constraint = JoinConstraint::On(on);
                    qualifier = Some(left.clone());
                }
            }
        }
        // A bare key name meant the one key column USING made; now both
        // sides have one, and QuestDB reads it as the left side's.
        if let Some(left) = qualifier {
            use datafusion::sql::sqlparser::ast::visit_expressions_mut;
            use std::ops::ControlFlow;
            // This SELECT's own clauses, not the subqueries in its FROM.
            let mut qualify = |e: &mut SqlExpr| {
                let _ = visit_expressions_mut(e, |e| {
                    if let SqlExpr::Identifier(i) = e
                        && keys.iter().any(|k| k.eq_ignore_ascii_case(&i.value))
                    {
                        *e = SqlExpr::CompoundIdentifier(vec![left.clone(), i.clone()]);
                    }
                    ControlFlow::<()>::Continue(())
                });
            };
            for item in &mut select.projection {
                match item {
                    datafusion::sql::sqlparser::ast::SelectItem::UnnamedExpr(e)
                    | datafusion::sql::sqlparser::ast::SelectItem::ExprWithAlias {
                        expr: e, ..
                    } => qualify(e),
                    _ => {}
                }
            }
            if let Some(w) = &mut select.selection {
                qualify(w);
            }
            if let Some(h) = &mut select.having {
                qualify(h);
            }
            if let datafusion::sql::sqlparser::ast::GroupByExpr::Expressions(exprs, _) =
                &mut select.group_by
            {
                exprs.iter_mut().for_each(&mut qualify);
            }
        }
        Ok(())
    })
}

/// Whether `subquery` is the marker wrapping of a time join's right side:
/// `SELECT * FROM (...) AS "__quiver_time_join_<n>"`.
fn is_marker_subquery(subquery: &datafusion::sql::sqlparser::ast::Query) -> bool {
    use datafusion::sql::sqlparser::ast::{SetExpr, TableFactor as Factor};
    let SetExpr::Select(select) = subquery.body.as_ref() else {
        return false;
    };
    matches!(select.from.as_slice(), [t] if t.joins.is_empty()
        && matches!(&t.relation, Factor::Derived { alias: Some(a), .. }
            if a.name.value.starts_with(MARKER)))
}

/// `<n><unit>` after TOLERANCE: U T s m h d w.
fn read_tolerance(tokens: &mut Tokens) -> Result<i64, QueryError> {
    let text = match tokens.next() {
        Some(Token::Number(n, _)) => match tokens.peek() {
            Some(Token::Word(w)) if w.quote_style.is_none() => {
                let t = format!("{n}{}", w.value);
                tokens.next();
                t
            }
            _ => n,
        },
        Some(Token::Word(w)) => w.value,
        other => {
            return Err(invalid(format!(
                "TOLERANCE needs an interval such as 10s or 1m, found {}",
                describe(other.as_ref())
            )));
        }
    };
    let bad = || {
        invalid(format!(
            "invalid TOLERANCE '{text}': expected a number and a unit (U T s m h d w), e.g. 10s"
        ))
    };
    let unit = text.chars().last().ok_or_else(bad)?;
    let per: i64 = match unit {
        'U' => 1_000,
        'T' => 1_000_000,
        's' => 1_000_000_000,
        'm' => 60_000_000_000,
        'h' => 3_600_000_000_000,
        'd' => 86_400_000_000_000,
        'w' => 604_800_000_000_000,
        _ => return Err(bad()),
    };
    let n: i64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
    if n < 0 {
        return Err(bad());
    }
    n.checked_mul(per).ok_or_else(bad)
}

/// The logical time join: its expressions are the left and right
/// timestamps, then the key pairs (left, right).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TimeJoinNode {
    left: LogicalPlan,
    right: LogicalPlan,
    kind: TimeJoinKind,
    tolerance: Option<i64>,
    columns: Vec<Expr>,
    schema: DFSchemaRef,
}

impl PartialOrd for TimeJoinNode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match (self.kind, self.tolerance, &self.columns)
            == (other.kind, other.tolerance, &other.columns)
        {
            true => (&self.left, &self.right).partial_cmp(&(&other.left, &other.right)),
            false => None,
        }
    }
}

impl TimeJoinNode {
    /// Which join.
    pub fn kind(&self) -> TimeJoinKind {
        self.kind
    }

    /// The tolerance in nanoseconds.
    pub fn tolerance(&self) -> Option<i64> {
        self.tolerance
    }

    /// (left timestamp, right timestamp, left keys, right keys) as
    /// column indices of the inputs.
    pub fn column_indices(&self) -> Result<(usize, usize, Vec<usize>, Vec<usize>)> {
        let index = |plan: &LogicalPlan, e: &Expr| -> Result<usize> {
            match e {
                Expr::Column(c) => Ok(plan.schema().index_of_column(c)?),
                other => internal_err!("a time join works on columns, not {other}"),
            }
        };
        let lt = index(&self.left, &self.columns[0])?;
        let rt = index(&self.right, &self.columns[1])?;
        let mut lk = Vec::new();
        let mut rk = Vec::new();
        for pair in self.columns[2..].chunks(2) {
            lk.push(index(&self.left, &pair[0])?);
            rk.push(index(&self.right, &pair[1])?);
        }
        Ok((lt, rt, lk, rk))
    }
}

impl UserDefinedLogicalNodeCore for TimeJoinNode {
    fn name(&self) -> &str {
        "TimeJoin"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.left, &self.right]
    }

    fn schema(&self) -> &DFSchemaRef {
        &self.schema
    }

    fn expressions(&self) -> Vec<Expr> {
        self.columns.clone()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let names: Vec<String> = self.columns.iter().map(|c| c.to_string()).collect();
        write!(
            f,
            "TimeJoin: {} JOIN on time {} >= {}",
            self.kind, names[0], names[1]
        )?;
        for pair in names[2..].chunks(2) {
            write!(f, ", {} = {}", pair[0], pair[1])?;
        }
        if let Some(t) = self.tolerance {
            write!(f, ", tolerance={t}ns")?;
        }
        Ok(())
    }

    fn with_exprs_and_inputs(
        &self,
        exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        let (Some(right), Some(left), true) = (inputs.pop(), inputs.pop(), inputs.is_empty())
        else {
            return internal_err!("a time join has two inputs");
        };
        let schema = joined_schema(&left, &right, self.kind)?;
        Ok(TimeJoinNode {
            left,
            right,
            kind: self.kind,
            tolerance: self.tolerance,
            columns: exprs,
            schema,
        })
    }

    /// The left columns asked for, then the right ones, each side with its
    /// time and key columns: the scans below read no other column.
    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let left_len = self.left.schema().fields().len();
        let (lt, rt, lk, rk) = self.column_indices().ok()?;
        let mut left: Vec<usize> = output_columns
            .iter()
            .copied()
            .filter(|&i| i < left_len)
            .collect();
        let mut right: Vec<usize> = output_columns
            .iter()
            .filter_map(|&i| i.checked_sub(left_len))
            .collect();
        left.push(lt);
        left.extend(lk);
        right.push(rt);
        right.extend(rk);
        for v in [&mut left, &mut right] {
            v.sort_unstable();
            v.dedup();
        }
        Some(vec![left, right])
    }
}

/// A time join's output: the left columns, then the right ones (NULL when
/// a row has no match; for SPLICE on both sides).
fn joined_schema(
    left: &LogicalPlan,
    right: &LogicalPlan,
    kind: TimeJoinKind,
) -> Result<DFSchemaRef> {
    let nullable = |plan: &LogicalPlan| -> Result<datafusion::common::DFSchema> {
        let fields = plan
            .schema()
            .iter()
            .map(|(q, f)| (q.cloned(), Arc::new(f.as_ref().clone().with_nullable(true))))
            .collect();
        datafusion::common::DFSchema::new_with_metadata(fields, plan.schema().metadata().clone())
    };
    let left = match kind {
        TimeJoinKind::Splice => nullable(left)?,
        _ => left.schema().as_ref().clone(),
    };
    Ok(Arc::new(left.join(&nullable(right)?)?))
}

/// The marker index of a join's right side.
fn marker_in(plan: &LogicalPlan) -> Option<usize> {
    match plan {
        LogicalPlan::SubqueryAlias(a) => match a.alias.table().strip_prefix(MARKER) {
            Some(n) => n.parse().ok(),
            None => marker_in(&a.input),
        },
        LogicalPlan::Projection(p) => marker_in(&p.input),
        _ => None,
    }
}

/// The designated timestamp of the table a side reads, as a column of
/// that side (the outermost alias names it).
fn timestamp_column(plan: &LogicalPlan, designated: &HashMap<String, String>) -> Option<Column> {
    fn find(
        plan: &LogicalPlan,
        alias: Option<String>,
        designated: &HashMap<String, String>,
    ) -> Option<Column> {
        match plan {
            LogicalPlan::SubqueryAlias(a) => find(
                &a.input,
                alias.or_else(|| Some(a.alias.table().to_string())),
                designated,
            ),
            LogicalPlan::Projection(p) => find(&p.input, alias, designated),
            LogicalPlan::Filter(f) => find(&f.input, alias, designated),
            LogicalPlan::Join(j) => find(&j.left, alias, designated),
            // A time join's time is its left side's; LatestOn keeps it.
            LogicalPlan::Extension(e) => find(e.node.inputs().first()?, alias, designated),
            LogicalPlan::TableScan(s) => {
                let ts = designated.get(&s.table_name.table().to_ascii_lowercase())?;
                let qualifier = alias.unwrap_or_else(|| s.table_name.table().to_string());
                Some(Column::new(Some(qualifier), ts))
            }
            _ => None,
        }
    }
    let c = find(plan, None, designated)?;
    match plan.schema().has_column(&c) {
        true => Some(c),
        false => {
            // Known by name alone when unique.
            let mut found = plan
                .schema()
                .iter()
                .filter(|(_, f)| f.name() == &c.name)
                .map(|(q, f)| Column::new(q.cloned(), f.name()));
            let first = found.next()?;
            found.next().is_none().then_some(first)
        }
    }
}

/// `expr` as `left = right` column pairs (ANDed), or an error naming what
/// else it holds.
fn key_pairs(
    expr: &Expr,
    left: &LogicalPlan,
    right: &LogicalPlan,
    out: &mut Vec<(Expr, Expr)>,
) -> Result<(), QueryError> {
    match expr {
        Expr::BinaryExpr(BinaryExpr {
            left: a,
            op: Operator::And,
            right: b,
        }) => {
            key_pairs(a, left, right, out)?;
            key_pairs(b, left, right, out)
        }
        Expr::Literal(ScalarValue::Boolean(Some(true)), _) => Ok(()),
        Expr::BinaryExpr(BinaryExpr {
            left: a,
            op: Operator::Eq,
            right: b,
        }) => match (a.as_ref(), b.as_ref()) {
            (Expr::Column(x), Expr::Column(y)) => {
                let (l, r) = match (left.schema().has_column(x), right.schema().has_column(y)) {
                    (true, true) => (x, y),
                    _ if left.schema().has_column(y) && right.schema().has_column(x) => (y, x),
                    _ => {
                        return Err(invalid(format!(
                            "a time join's ON compares a left column with a right one: {expr}"
                        )));
                    }
                };
                out.push((Expr::Column(l.clone()), Expr::Column(r.clone())));
                Ok(())
            }
            _ => Err(unsupported_condition(expr)),
        },
        other => Err(unsupported_condition(other)),
    }
}

fn unsupported_condition(expr: &Expr) -> QueryError {
    QueryError::new(
        QueryErrorKind::Unsupported,
        format!("a time join's ON takes key equalities (a.k = b.k) only, not {expr}"),
    )
}

/// Replaces each marked join in `plan` with a [`TimeJoinNode`].
pub fn wrap_plan(
    plan: LogicalPlan,
    clauses: &[TimeJoinClause],
    designated: &HashMap<String, String>,
) -> Result<LogicalPlan, QueryError> {
    let mut placed = 0usize;
    let mut failure: Option<QueryError> = None;
    let plan = plan
        .transform_up(|node| {
            let LogicalPlan::Join(join) = &node else {
                return Ok(Transformed::no(node));
            };
            let Some(index) = marker_in(&join.right) else {
                return Ok(Transformed::no(node));
            };
            let built = (|| -> Result<TimeJoinNode, QueryError> {
                let clause = clauses
                    .get(index)
                    .ok_or_else(|| invalid("unknown time join marker"))?;
                let expected = match clause.kind {
                    TimeJoinKind::Splice => JoinType::Full,
                    _ => JoinType::Left,
                };
                if join.join_type != expected {
                    return Err(invalid("a time join lost its join type"));
                }
                let needs = |side: &str| {
                    invalid(format!(
                        "{} JOIN needs a designated timestamp on its {side} side",
                        clause.kind
                    ))
                };
                let lt = timestamp_column(&join.left, designated).ok_or_else(|| needs("left"))?;
                let rt = timestamp_column(&join.right, designated).ok_or_else(|| needs("right"))?;
                let mut pairs: Vec<(Expr, Expr)> = join.on.clone();
                if let Some(filter) = &join.filter {
                    key_pairs(filter, &join.left, &join.right, &mut pairs)?;
                }
                let mut columns = vec![Expr::Column(lt), Expr::Column(rt)];
                for (l, r) in pairs {
                    match (&l, &r) {
                        (Expr::Column(_), Expr::Column(_)) => columns.extend([l, r]),
                        _ => {
                            return Err(unsupported_condition(&Expr::BinaryExpr(BinaryExpr {
                                left: Box::new(l),
                                op: Operator::Eq,
                                right: Box::new(r),
                            })));
                        }
                    }
                }
                Ok(TimeJoinNode {
                    left: join.left.as_ref().clone(),
                    right: join.right.as_ref().clone(),
                    kind: clause.kind,
                    tolerance: clause.tolerance,
                    columns,
                    schema: joined_schema(&join.left, &join.right, clause.kind)?,
                })
            })();
            match built {
                Ok(n) => {
                    placed += 1;
                    Ok(Transformed::yes(LogicalPlan::Extension(Extension {
                        node: Arc::new(n),
                    })))
                }
                Err(e) => {
                    failure.get_or_insert(e);
                    Ok(Transformed::no(node))
                }
            }
        })?
        .data;
    if let Some(e) = failure {
        return Err(e);
    }
    if placed != clauses.len() {
        return Err(QueryError::new(
            QueryErrorKind::Internal,
            "a time join lost its marker",
        ));
    }
    Ok(push_left_filters(plan)?)
}

/// Moves the parts of a filter over a time join that read only left
/// columns below it, onto the left side (so the left scan is pruned):
/// a left row's match does not depend on other left rows. DataFusion's own
/// pushdown would put them on both sides of an extension node.
fn push_left_filters(plan: LogicalPlan) -> Result<LogicalPlan> {
    use datafusion::logical_expr::Filter;
    use datafusion::logical_expr::utils::{conjunction, split_conjunction_owned};
    Ok(plan
        .transform_up(|node| {
            let LogicalPlan::Filter(filter) = &node else {
                return Ok(Transformed::no(node));
            };
            let LogicalPlan::Extension(ext) = filter.input.as_ref() else {
                return Ok(Transformed::no(node));
            };
            // (Not under SPLICE: its right rows see the left rows in force,
            // so filtering the left side would change them.)
            let Some(join) = ext
                .node
                .as_any()
                .downcast_ref::<TimeJoinNode>()
                .filter(|j| j.kind != TimeJoinKind::Splice)
            else {
                return Ok(Transformed::no(node));
            };
            let (left, keep): (Vec<Expr>, Vec<Expr>) =
                split_conjunction_owned(filter.predicate.clone())
                    .into_iter()
                    .partition(|e| {
                        let refs = e.column_refs();
                        !refs.is_empty()
                            && refs.iter().all(|c| join.left.schema().has_column(c))
                            && !e.is_volatile()
                    });
            let Some(pushed) = conjunction(left) else {
                return Ok(Transformed::no(node));
            };
            let mut moved = join.clone();
            moved.left = LogicalPlan::Filter(Filter::try_new(pushed, Arc::new(join.left.clone()))?);
            let joined = LogicalPlan::Extension(Extension {
                node: Arc::new(moved),
            });
            Ok(Transformed::yes(match conjunction(keep) {
                Some(rest) => LogicalPlan::Filter(Filter::try_new(rest, Arc::new(joined))?),
                None => joined,
            }))
        })?
        .data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_joins_keeping_aliases() {
        let (text, clauses) = extract(
            "SELECT * FROM trades t ASOF JOIN quotes q ON (sym) TOLERANCE 10s WHERE t.px > 0",
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            text,
            "SELECT * FROM trades t LEFT JOIN (SELECT * FROM (SELECT * FROM quotes) AS \"__quiver_time_join_0\") AS q USING (sym)  WHERE t.px > 0"
        );
        assert_eq!(
            clauses,
            vec![TimeJoinClause {
                kind: TimeJoinKind::AsOf,
                tolerance: Some(10_000_000_000)
            }]
        );
        let (text, clauses) = extract("SELECT * FROM a LT JOIN b ON a.k = b.k LT JOIN c")
            .unwrap()
            .unwrap();
        assert_eq!(
            text,
            "SELECT * FROM a LEFT JOIN (SELECT * FROM (SELECT * FROM b) AS \"__quiver_time_join_0\") AS b ON a.k = b.k LEFT JOIN (SELECT * FROM (SELECT * FROM c) AS \"__quiver_time_join_1\") AS c ON TRUE"
        );
        assert_eq!(clauses.len(), 2);
        assert!(extract("SELECT asof FROM t").unwrap().is_none());
        // A column named tolerance is not the clause; a quoted alias stays
        // quoted.
        let (text, clauses) =
            extract("SELECT * FROM a ASOF JOIN b \"B\" ON a.tolerance = \"B\".tolerance")
                .unwrap()
                .unwrap();
        assert!(
            text.ends_with("AS \"B\" ON a.tolerance = \"B\".tolerance"),
            "{text}"
        );
        assert_eq!(clauses[0].tolerance, None);
    }

    #[test]
    fn clear_errors() {
        for (sql, says) in [
            (
                "SELECT * FROM a ASOF JOIN b TOLERANCE 5q",
                "invalid TOLERANCE '5q'",
            ),
            (
                "SELECT * FROM a ASOF JOIN 'b'",
                "right side must be a table or a subquery",
            ),
            (
                "SELECT * FROM a ASOF JOIN (SELECT * FROM b) ON (k)",
                "right subquery needs an alias",
            ),
        ] {
            let e = extract(sql).unwrap_err().to_string();
            assert!(e.contains(says), "{sql}: {e}");
        }
    }
}
