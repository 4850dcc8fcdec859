//! QuestDB's `LATEST ON ts PARTITION BY a, b` (and the older `LATEST BY
//! a, b`, on the designated timestamp): the row with the newest timestamp
//! of each distinct key, after WHERE, in timestamp order.
//!
//! The clause is cut out of the text ([`extract`]; it may stand before or
//! after WHERE) and its SELECT marked; [`rewrite_selects`] moves the
//! table and WHERE into a subquery named by a marker, and [`wrap_plan`]
//! puts a [`LatestOnNode`] over that subquery: one pass over the rows that
//! keeps the newest row per key ([`exec::LatestOnExec`]), so memory grows
//! with the number of keys, never with the table, and nothing sorts the
//! table. Ties on the timestamp go to the row read last (the one ingested
//! last).

pub mod exec;

use std::fmt;
use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, DFSchemaRef, internal_err};
use datafusion::error::Result;
use datafusion::logical_expr::{Expr, Extension, LogicalPlan, UserDefinedLogicalNodeCore};
use datafusion::sql::sqlparser::ast::{GroupByExpr, Query, TableAlias, TableFactor};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion::sql::sqlparser::tokenizer::Token;

use crate::dialect::clause_markers::{for_each_select, marker_of, single_table};
use crate::error::{QueryError, QueryErrorKind};
use crate::write::tokens::{Tokens, describe};

/// The identifier marking a clause's SELECT, numbered.
pub const MARKER: &str = "__quiver_latest_on_";

fn invalid(message: impl Into<String>) -> QueryError {
    QueryError::new(QueryErrorKind::Invalid, message)
}

/// One `LATEST ON` / `LATEST BY` clause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestOnClause {
    /// The timestamp column (`None`: the designated timestamp).
    pub timestamp: Option<String>,
    /// The key columns.
    pub keys: Vec<String>,
}

fn is_word(t: Option<&Token>, word: &str) -> bool {
    matches!(t, Some(Token::Word(w)) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

/// `sql` with each LATEST clause cut out and its SELECT marked, and the
/// clauses in order; `None` when it has none.
pub fn extract(sql: &str) -> Result<Option<(String, Vec<LatestOnClause>)>, QueryError> {
    if !crate::dialect::clause_markers::mentions(sql, "latest") {
        return Ok(None);
    }
    let mut text = sql.to_string();
    let mut clauses = Vec::new();
    loop {
        let Ok(mut tokens) = Tokens::new(&text) else {
            return Ok(None);
        };
        let Some(at) = (0..tokens.len()).find(|&i| {
            is_word(tokens.get(i), "LATEST")
                && (is_word(tokens.get(i + 1), "ON") || is_word(tokens.get(i + 1), "BY"))
        }) else {
            break;
        };
        tokens.seek(at + 1);
        let clause = match tokens.keyword("ON") {
            true => {
                let ts = tokens.name("timestamp column")?;
                tokens.expect_keyword("PARTITION")?;
                tokens.expect_keyword("BY")?;
                LatestOnClause {
                    timestamp: Some(ts),
                    keys: names(&mut tokens)?,
                }
            }
            false => {
                tokens.expect_keyword("BY")?;
                LatestOnClause {
                    timestamp: None,
                    keys: names(&mut tokens)?,
                }
            }
        };
        let clause_end = tokens.position();
        // The SELECT's end: the first ORDER, LIMIT, set operation, `)` or
        // `;` at this depth; the marker goes there (after any WHERE).
        let mut depth = 0usize;
        let mut end = clause_end;
        while end < tokens.len() {
            match tokens.get(end) {
                Some(Token::LParen) => depth += 1,
                Some(Token::RParen) if depth == 0 => break,
                Some(Token::RParen) => depth -= 1,
                Some(Token::SemiColon | Token::EOF) if depth == 0 => break,
                t if depth == 0
                    && ["ORDER", "LIMIT", "UNION", "EXCEPT", "INTERSECT"]
                        .iter()
                        .any(|w| is_word(t, w)) =>
                {
                    break;
                }
                t if depth == 0 && (is_word(t, "SAMPLE") || is_word(t, "GROUP")) => {
                    return Err(QueryError::new(
                        QueryErrorKind::Unsupported,
                        "LATEST ON with SAMPLE BY or GROUP BY in one SELECT is not supported: aggregate a LATEST ON subquery",
                    ));
                }
                _ => {}
            }
            end += 1;
        }
        let span = |i: usize| tokens.span(i);
        let (Some((start, _)), Some((_, cut_end))) = (span(at), span(clause_end - 1)) else {
            return Ok(None);
        };
        let insert_at = span(end).map_or(text.len(), |s| s.0);
        let marked = format!(
            "{}{} GROUP BY \"{MARKER}{}\" {}",
            &text[..start],
            &text[cut_end..insert_at],
            clauses.len(),
            &text[insert_at..]
        );
        clauses.push(clause);
        text = marked;
    }
    match clauses.is_empty() {
        true => Ok(None),
        false => Ok(Some((text, clauses))),
    }
}

/// `a, b, ...`: column names.
fn names(tokens: &mut Tokens) -> Result<Vec<String>, QueryError> {
    let mut out = vec![tokens.name("key column")?];
    while tokens.token(&Token::Comma) {
        out.push(tokens.name("key column")?);
    }
    if let Some(Token::LParen) = tokens.peek() {
        return Err(invalid(format!(
            "LATEST ON ... PARTITION BY takes column names, found {}",
            describe(tokens.peek())
        )));
    }
    Ok(out)
}

/// A clause after its SELECT was rewritten: the marker subquery's name,
/// and the columns by name.
#[derive(Debug, Clone)]
pub struct PreparedLatestOn {
    /// The subquery alias to find in the plan.
    pub alias: String,
    /// The timestamp column.
    pub timestamp: String,
    /// The key columns.
    pub keys: Vec<String>,
}

/// Moves each marked SELECT's table and WHERE into a marker subquery
/// (see the module docs).
pub fn rewrite_selects(
    query: &mut Query,
    clauses: &[LatestOnClause],
    designated_timestamp: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<PreparedLatestOn>, QueryError> {
    let mut out = Vec::new();
    for_each_select(query, &mut |select| {
        let Some(index) = marker_of(select, MARKER) else {
            return Ok(());
        };
        let clause = clauses
            .get(index)
            .ok_or_else(|| invalid("unknown LATEST ON marker"))?;
        let (table, alias) = single_table(&select.from, "LATEST ON")?;
        let timestamp = match &clause.timestamp {
            Some(ts) => ts.clone(),
            None => designated_timestamp(&table).ok_or_else(|| {
                invalid(format!(
                    "LATEST BY needs a designated timestamp, and table {table} has none (use LATEST ON ts PARTITION BY ...)"
                ))
            })?,
        };
        // The alias (or table name) as written, quoted or not.
        let name = match &select.from[0].relation {
            TableFactor::Table { alias: Some(a), .. } => a.name.clone(),
            TableFactor::Table { name, .. } => name
                .0
                .last()
                .and_then(|p| p.as_ident())
                .cloned()
                .unwrap_or_else(|| datafusion::sql::sqlparser::ast::Ident::new(&table)),
            _ => datafusion::sql::sqlparser::ast::Ident::new(alias.unwrap_or(&table)),
        };
        let marker = format!("{MARKER}{index}");
        let inner = format!(
            "SELECT * FROM (SELECT * FROM {}{}) AS \"{marker}\"",
            select.from[0],
            select
                .selection
                .as_ref()
                .map(|w| format!(" WHERE {w}"))
                .unwrap_or_default()
        );
        let subquery = Parser::new(&GenericDialect {})
            .try_with_sql(&inner)
            .and_then(|mut p| p.parse_query())
            .map_err(|e| QueryError::new(QueryErrorKind::Internal, format!("LATEST ON: {e}")))?;
        select.from[0].relation = TableFactor::Derived {
            lateral: false,
            subquery,
            alias: Some(TableAlias {
                explicit: true,
                name,
                columns: vec![],
                at: None,
            }),
            sample: None,
        };
        select.selection = None;
        select.group_by = GroupByExpr::Expressions(vec![], vec![]);
        out.push(PreparedLatestOn {
            alias: marker,
            timestamp,
            keys: clause.keys.clone(),
        });
        Ok(())
    })?;
    if out.len() != clauses.len() {
        return Err(QueryError::new(
            QueryErrorKind::Unsupported,
            "LATEST ON is supported in a SELECT, its FROM subqueries and WITH queries, not in expressions",
        ));
    }
    Ok(out)
}

/// The logical `LatestOn` node: its expressions are the timestamp column
/// and then the key columns of its input.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd)]
pub struct LatestOnNode {
    input: LogicalPlan,
    columns: Vec<Expr>,
}

impl LatestOnNode {
    fn column_names(&self) -> Vec<String> {
        self.columns.iter().map(|c| c.to_string()).collect()
    }

    /// Input column indices of the timestamp and the keys.
    pub fn column_indices(&self) -> Result<Vec<usize>> {
        self.columns
            .iter()
            .map(|c| match c {
                Expr::Column(c) => Ok(self.input.schema().index_of_column(c)?),
                other => internal_err!("LatestOn works on columns, not {other}"),
            })
            .collect()
    }
}

impl UserDefinedLogicalNodeCore for LatestOnNode {
    fn name(&self) -> &str {
        "LatestOn"
    }

    fn inputs(&self) -> Vec<&LogicalPlan> {
        vec![&self.input]
    }

    fn schema(&self) -> &DFSchemaRef {
        self.input.schema()
    }

    fn expressions(&self) -> Vec<Expr> {
        self.columns.clone()
    }

    fn fmt_for_explain(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let names = self.column_names();
        write!(
            f,
            "LatestOn: timestamp={}, partition by=[{}]",
            names[0],
            names[1..].join(", ")
        )
    }

    fn with_exprs_and_inputs(
        &self,
        exprs: Vec<Expr>,
        mut inputs: Vec<LogicalPlan>,
    ) -> Result<Self> {
        match inputs.pop() {
            Some(input) if inputs.is_empty() => Ok(LatestOnNode {
                input,
                columns: exprs,
            }),
            _ => internal_err!("LatestOn has one input"),
        }
    }

    fn necessary_children_exprs(&self, output_columns: &[usize]) -> Option<Vec<Vec<usize>>> {
        let mut needed = output_columns.to_vec();
        needed.extend(self.column_indices().ok()?);
        needed.sort_unstable();
        needed.dedup();
        Some(vec![needed])
    }
}

/// Puts a [`LatestOnNode`] over each marker subquery in `plan`.
pub fn wrap_plan(
    plan: LogicalPlan,
    prepared: &[PreparedLatestOn],
) -> Result<LogicalPlan, QueryError> {
    let mut placed = 0usize;
    let plan = plan
        .transform_up(|node| {
            let LogicalPlan::SubqueryAlias(a) = &node else {
                return Ok(Transformed::no(node));
            };
            let Some(p) = prepared.iter().find(|p| a.alias.table() == p.alias) else {
                return Ok(Transformed::no(node));
            };
            let column = |name: &str| -> Result<Expr> {
                match a
                    .schema
                    .iter()
                    .find(|(_, f)| f.name().eq_ignore_ascii_case(name))
                {
                    Some((q, f)) => Ok(Expr::Column(Column::new(q.cloned(), f.name()))),
                    None => Err(datafusion::error::DataFusionError::Plan(format!(
                        "LATEST ON: column {name} does not exist"
                    ))),
                }
            };
            let mut columns = vec![column(&p.timestamp)?];
            for k in &p.keys {
                columns.push(column(k)?);
            }
            let ts_type = node
                .schema()
                .field(node.schema().index_of_column(match &columns[0] {
                    Expr::Column(c) => c,
                    _ => unreachable!("built as a column"),
                })?)
                .data_type()
                .clone();
            if !matches!(ts_type, arrow::datatypes::DataType::Timestamp(_, _)) {
                return Err(datafusion::error::DataFusionError::Plan(format!(
                    "LATEST ON needs a timestamp column, and {} is {ts_type}",
                    p.timestamp
                )));
            }
            placed += 1;
            Ok(Transformed::yes(LogicalPlan::Extension(Extension {
                node: Arc::new(LatestOnNode {
                    input: node,
                    columns,
                }),
            })))
        })?
        .data;
    if placed != prepared.len() {
        return Err(QueryError::new(
            QueryErrorKind::Internal,
            "LATEST ON lost its subquery",
        ));
    }
    Ok(plan)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_the_clause_and_marks_the_select_after_where() {
        let (text, clauses) =
            extract("SELECT * FROM t WHERE x > 1 LATEST ON ts PARTITION BY sym, venue ORDER BY ts")
                .unwrap()
                .unwrap();
        assert_eq!(
            text,
            "SELECT * FROM t WHERE x > 1   GROUP BY \"__quiver_latest_on_0\" ORDER BY ts"
        );
        assert_eq!(
            clauses,
            vec![LatestOnClause {
                timestamp: Some("ts".into()),
                keys: vec!["sym".into(), "venue".into()]
            }]
        );
        // The older form stands before WHERE.
        let (text, clauses) =
            extract("SELECT sym FROM (SELECT * FROM t LATEST BY sym WHERE x > 1) a")
                .unwrap()
                .unwrap();
        assert_eq!(
            text,
            "SELECT sym FROM (SELECT * FROM t  WHERE x > 1 GROUP BY \"__quiver_latest_on_0\" ) a"
        );
        assert_eq!(clauses[0].timestamp, None);
        assert!(extract("SELECT latest FROM t").unwrap().is_none());
    }

    #[test]
    fn clear_errors() {
        for (sql, says) in [
            ("SELECT * FROM t LATEST ON ts", "expected PARTITION"),
            (
                "SELECT * FROM t LATEST ON ts PARTITION BY",
                "expected a key column name",
            ),
            (
                "SELECT ts, count() FROM t LATEST ON ts PARTITION BY s SAMPLE BY 1h",
                "LATEST ON with SAMPLE BY",
            ),
        ] {
            let e = extract(sql).unwrap_err().to_string();
            assert!(e.contains(says), "{sql}: {e}");
        }
    }
}
