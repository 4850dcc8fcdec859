//! The query engine: one statement in, a stream of Arrow batches (or a
//! statement's outcome) out.
//!
//! For each statement the engine
//!
//! 1. parses it (one statement per query);
//! 2. finds every table it names and takes their snapshots at one LSN
//!    ([`Database::snapshots`]): the whole statement, self-joins and
//!    subqueries included, sees one state of the database;
//! 3. plans it with DataFusion over those snapshots ([`SnapshotTable`]) and
//!    returns the physical plan's stream, which reads as it is pulled.
//!
//! Query memory is bounded by a DataFusion memory pool
//! ([`QueryOptions::memory_limit`]); operators that can spill do so, the
//! others fail the query with a limit error.

use std::sync::Arc;

use arrow::datatypes::SchemaRef;
use datafusion::common::ParamValues;
use datafusion::common::metadata::ScalarAndMetadata;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::parser::{DFParserBuilder, Statement};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;
use futures_util::StreamExt;
use quiver_storage::Database;
use tokio::sync::mpsc;

use std::collections::HashMap;

use crate::cooperative::CooperativeEverywhere;
use crate::dialect;
use crate::dialect::latest_on::{LatestOnClause, PreparedLatestOn};
use crate::dialect::sample_by::PreparedSampleBy;
use crate::dialect::sample_by::bucketing::Bucketing;
use crate::dialect::sample_by::clause::SampleByClause;
use crate::dialect::time_joins::TimeJoinClause;
use crate::error::{QueryError, QueryErrorKind};
use crate::executor::{Item, QueryExecutor, QueryStream};
use crate::scan::SnapshotTable;
use crate::write::WriteStatement;
use crate::write::insert::{InsertTarget, insert_rows};

/// The SQL statement inside `statement` (an EXPLAIN's too).
fn sql_statement(
    statement: &mut Statement,
) -> Option<&mut datafusion::sql::sqlparser::ast::Statement> {
    match statement {
        Statement::Statement(s) => Some(s.as_mut()),
        Statement::Explain(e) => sql_statement(e.statement.as_mut()),
        _ => None,
    }
}

/// Nanoseconds per raw value of `schema`'s designated timestamp (`None`
/// without one).
fn designated_nanos_per_tick(schema: &quiver_storage::TableSchema) -> Option<i64> {
    let ts = schema.columns.get(schema.designated_timestamp?)?;
    Some(match ts.column_type {
        quiver_storage::ColumnType::TimestampNanos => 1,
        _ => 1_000,
    })
}

/// The first value (nanoseconds) of the one timestamp `query` returns.
async fn first_timestamp(
    ctx: &SessionContext,
    query: Statement,
    binds: &[ScalarAndMetadata],
) -> Result<Option<i64>, QueryError> {
    use arrow::array::Array;
    use arrow::datatypes::DataType;
    let mut plan = ctx.state().statement_to_plan(query).await?;
    // The statement's WHERE may use its bind values.
    if !plan.get_parameter_types()?.is_empty() {
        plan = plan.with_param_values(ParamValues::List(binds.to_vec()))?;
    }
    let batches = ctx.execute_logical_plan(plan).await?.collect().await?;
    let Some(column) = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| b.column(0))
    else {
        return Ok(None);
    };
    let DataType::Timestamp(unit, _) = column.data_type() else {
        return Ok(None);
    };
    let values = dialect::time_arithmetic::raw_values(column)?;
    let per_tick = dialect::sample_by::bucket_function::nanos_per_tick(*unit);
    Ok((!values.is_null(0)).then(|| values.value(0).saturating_mul(per_tick)))
}

/// A result whose columns share a name (`SELECT *` over a join) names the
/// later ones as QuestDB does: `sym`, `sym1`, `sym2`.
fn unique_result_names(plan: LogicalPlan) -> Result<LogicalPlan, QueryError> {
    use datafusion::common::Column;
    use datafusion::logical_expr::{Expr, LogicalPlanBuilder};
    if !matches!(
        plan,
        LogicalPlan::Projection(_)
            | LogicalPlan::Sort(_)
            | LogicalPlan::Limit(_)
            | LogicalPlan::Filter(_)
            | LogicalPlan::Extension(_)
            | LogicalPlan::SubqueryAlias(_)
    ) {
        return Ok(plan);
    }
    let names: Vec<String> = plan
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let taken: std::collections::HashSet<String> =
        names.iter().map(|n| n.to_ascii_lowercase()).collect();
    if taken.len() == names.len() {
        return Ok(plan);
    }
    let mut used: std::collections::HashSet<String> = std::collections::HashSet::new();
    let exprs: Vec<Expr> = plan
        .schema()
        .iter()
        .map(|(q, f)| {
            let column = Expr::Column(Column::new(q.cloned(), f.name()));
            if used.insert(f.name().to_ascii_lowercase()) {
                return column;
            }
            let mut n = 1;
            let name = loop {
                let candidate = format!("{}{n}", f.name());
                let lower = candidate.to_ascii_lowercase();
                if !taken.contains(&lower) && used.insert(lower) {
                    break candidate;
                }
                n += 1;
            };
            column.alias(name)
        })
        .collect();
    Ok(LogicalPlanBuilder::from(plan).project(exprs)?.build()?)
}

/// The QuestDB clauses cut out of a statement's text before parsing.
#[derive(Default)]
struct Clauses {
    samples: Vec<SampleByClause>,
    latest: Vec<LatestOnClause>,
    joins: Vec<TimeJoinClause>,
}

/// What running a statement produced, on the query runtime.
enum Planned {
    /// Rows to stream, and their schema (with QuestDB types restored).
    Rows(SchemaRef, SendableRecordBatchStream),
    /// A statement without rows finished.
    Done { kind: StatementKind, rows: u64 },
}

/// Engine settings.
#[derive(Debug, Clone)]
pub struct QueryOptions {
    /// Most bytes the operators of all running queries may hold together
    /// (default 512 MiB).
    pub memory_limit: usize,
    /// Rows per batch the operators produce (default 8,192).
    pub batch_size: usize,
    /// Threads of the query runtime (default: the machine's cores).
    pub threads: usize,
}

impl Default for QueryOptions {
    fn default() -> Self {
        QueryOptions {
            memory_limit: 512 << 20,
            batch_size: 8192,
            threads: std::thread::available_parallelism().map_or(2, usize::from),
        }
    }
}

/// What kind of statement ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatementKind {
    /// A statement that returns rows (SELECT, EXPLAIN, SHOW).
    Query,
    /// `CREATE TABLE`.
    CreateTable,
    /// `CREATE TABLE ... AS (query)`.
    CreateTableAs,
    /// `ALTER TABLE`.
    AlterTable,
    /// `DROP TABLE`.
    DropTable,
    /// `TRUNCATE TABLE`.
    TruncateTable,
    /// `RENAME TABLE`.
    RenameTable,
    /// `INSERT INTO ... VALUES`.
    Insert,
    /// `INSERT INTO ... SELECT`.
    InsertSelect,
}

/// A statement's result.
pub enum QueryOutput {
    /// Rows, produced on the query runtime as the stream is pulled.
    Rows(QueryStream),
    /// A statement without rows finished.
    Done {
        /// What it was.
        kind: StatementKind,
        /// Rows it inserted or changed.
        rows: u64,
    },
}

impl std::fmt::Debug for QueryOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QueryOutput::Rows(s) => write!(f, "Rows({:?})", s.schema()),
            QueryOutput::Done { kind, rows } => write!(f, "Done({kind:?}, {rows})"),
        }
    }
}

/// Runs SQL over a database (see the module docs). Cheap to share.
#[derive(Clone)]
pub struct QueryEngine {
    db: Arc<Database>,
    config: SessionConfig,
    runtime: Arc<RuntimeEnv>,
    executor: Arc<QueryExecutor>,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine").finish_non_exhaustive()
    }
}

/// The error for a statement naming a table that does not exist.
fn no_such_table(name: &str) -> QueryError {
    QueryError::new(
        QueryErrorKind::Invalid,
        format!("table does not exist [table={name}]"),
    )
}

/// The error when storage stopped answering (the database closed).
fn database_closed() -> QueryError {
    QueryError::new(QueryErrorKind::Internal, "the database closed")
}

impl QueryEngine {
    /// An engine over `db`.
    pub fn new(db: Arc<Database>, options: &QueryOptions) -> Result<Self, QueryError> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(options.memory_limit, 1.0)
            .build_arc()?;
        // As many partitions (and scan threads, see `scan`) as query threads.
        let mut config = SessionConfig::new()
            .with_target_partitions(options.threads.max(1))
            .with_batch_size(options.batch_size)
            .with_information_schema(false);
        // A scan is one partition in row order, and QuestDB returns rows
        // in that order when a query does not sort them: no round-robin
        // split (which interleaves rows) between the scan and a filter.
        config
            .options_mut()
            .optimizer
            .enable_round_robin_repartition = false;
        Ok(QueryEngine {
            db,
            config,
            runtime,
            executor: Arc::new(QueryExecutor::new(options.threads)?),
        })
    }

    /// A fresh session for one statement: its catalog holds only the
    /// snapshots the statement reads (the memory pool is shared).
    fn session(&self) -> SessionState {
        let mut state = SessionStateBuilder::new()
            .with_config(self.config.clone())
            .with_runtime_env(Arc::clone(&self.runtime))
            .with_default_features()
            .with_analyzer_rules(dialect::analyzer_rules())
            .with_physical_optimizer_rule(Arc::new(CooperativeEverywhere))
            .with_query_planner(Arc::new(dialect::planner::QuiverQueryPlanner))
            .build();
        dialect::register(&mut state, &self.db);
        state
    }

    /// Parses `sql`: exactly one statement.
    fn parse(sql: &str) -> Result<Statement, QueryError> {
        let dialect = GenericDialect {};
        let mut statements = DFParserBuilder::new(sql)
            .with_dialect(&dialect)
            .build()?
            .parse_statements()?;
        match (statements.pop_front(), statements.is_empty()) {
            (Some(s), true) => Ok(s),
            (None, _) => Err(QueryError::new(QueryErrorKind::Invalid, "no statement")),
            (Some(_), false) => Err(QueryError::new(
                QueryErrorKind::Invalid,
                "one statement per query",
            )),
        }
    }

    /// Refuses statements other than queries (writes are run before this
    /// check): DataFusion would run DDL and DML against the throwaway
    /// per-statement catalog.
    fn check_supported(statement: &Statement) -> Result<(), QueryError> {
        use datafusion::sql::sqlparser::ast::Statement as Sql;
        let inner = match statement {
            Statement::Statement(s) => s.as_ref(),
            Statement::Explain(e) => return Self::check_supported(&e.statement),
            _ => {
                return Err(QueryError::new(
                    QueryErrorKind::Unsupported,
                    "only queries (SELECT) are supported",
                ));
            }
        };
        match inner {
            Sql::Query(_) => Ok(()),
            other => {
                // The statement's first words name it ("CREATE TABLE").
                let text = other.to_string();
                let head: Vec<&str> = text.split_whitespace().take(2).collect();
                Err(QueryError::new(
                    QueryErrorKind::Unsupported,
                    format!(
                        "only queries (SELECT) are supported, not {}",
                        head.join(" ").to_uppercase()
                    ),
                ))
            }
        }
    }

    /// Replaces the plan's placeholders with `binds`.
    fn bind(plan: LogicalPlan, binds: Vec<ScalarAndMetadata>) -> Result<LogicalPlan, QueryError> {
        let mut used = 0usize;
        for id in plan.get_parameter_types()?.keys() {
            let n = id
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n >= 1)
                .ok_or_else(|| {
                    QueryError::new(
                        QueryErrorKind::Invalid,
                        format!("bind placeholders are positional ($1, $2, ...), not {id}"),
                    )
                })?;
            used = used.max(n);
        }
        if used != binds.len() {
            return Err(QueryError::new(
                QueryErrorKind::Invalid,
                match used {
                    0 => format!(
                        "{} bind values sent, but the statement has no placeholders",
                        binds.len()
                    ),
                    _ => format!(
                        "the statement uses placeholders up to ${used}, but {} bind values were sent",
                        binds.len()
                    ),
                },
            ));
        }
        if used == 0 {
            return Ok(plan);
        }
        Ok(plan.with_param_values(ParamValues::List(binds))?)
    }

    /// Runs one statement without bind values.
    pub async fn execute(&self, sql: &str) -> Result<QueryOutput, QueryError> {
        self.execute_with(sql, Vec::new()).await
    }

    /// Runs one statement with positional bind values (`$1` is
    /// `binds[0]`). Their number must match the highest `$n` the statement
    /// uses; each is typed (a NULL too), and DataFusion's coercion fits it
    /// to where it is used; its field metadata (a stored type's name) goes
    /// with it into the result schema.
    pub async fn execute_with(
        &self,
        sql: &str,
        binds: Vec<ScalarAndMetadata>,
    ) -> Result<QueryOutput, QueryError> {
        let engine = self.clone();
        let sql = sql.to_string();
        // Two batches in flight: the task runs ahead by at most that much.
        let (tx, mut rx) = mpsc::channel(2);
        let task = self.executor.spawn(async move {
            let (schema, mut stream) = match engine.run(&sql, binds).await {
                Ok(Planned::Rows(schema, s)) => (schema, s),
                Ok(Planned::Done { kind, rows }) => {
                    let _ = tx.send(Ok(Item::Done { kind, rows })).await;
                    return;
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            if tx.send(Ok(Item::Schema(schema))).await.is_err() {
                return;
            }
            while let Some(batch) = stream.next().await {
                let failed = batch.is_err();
                let item = batch.map(Item::Batch).map_err(QueryError::from);
                if tx.send(item).await.is_err() || failed {
                    return;
                }
            }
        });
        match rx.recv().await {
            Some(Ok(Item::Schema(schema))) => {
                Ok(QueryOutput::Rows(QueryStream::new(schema, rx, task)))
            }
            Some(Ok(Item::Done { kind, rows })) => Ok(QueryOutput::Done { kind, rows }),
            Some(Err(e)) => Err(e),
            Some(Ok(Item::Batch(_))) | None => Err(QueryError::new(
                QueryErrorKind::Internal,
                "the query task ended before its schema",
            )),
        }
    }

    /// Runs one statement (on the query runtime): writes run to the end,
    /// queries are planned and their stream returned.
    async fn run(&self, sql: &str, binds: Vec<ScalarAndMetadata>) -> Result<Planned, QueryError> {
        use datafusion::sql::sqlparser::ast::{SetExpr, Statement as Sql};
        // `ts IN '2024-01'` is QuestDB's, not SQL: rewritten to bounds first.
        let rewritten = dialect::time_ranges::rewrite(sql)?;
        let sql = rewritten.as_deref().unwrap_or(sql);
        // So are time joins, LATEST ON and SAMPLE BY: cut out here,
        // planned in `query`.
        let (joins_text, joins) = match dialect::time_joins::extract(sql)? {
            Some((text, clauses)) => (Some(text), clauses),
            None => (None, Vec::new()),
        };
        let sql = joins_text.as_deref().unwrap_or(sql);
        let (latest_text, latest) = match dialect::latest_on::extract(sql)? {
            Some((text, clauses)) => (Some(text), clauses),
            None => (None, Vec::new()),
        };
        let sql = latest_text.as_deref().unwrap_or(sql);
        let (sampled, samples) = match dialect::sample_by::extract(sql)? {
            Some((text, clauses)) => (Some(text), clauses),
            None => (None, Vec::new()),
        };
        let sql = sampled.as_deref().unwrap_or(sql);
        let clauses = Clauses {
            samples,
            latest,
            joins,
        };
        if let Some(write) = WriteStatement::classify(sql)? {
            return match write {
                WriteStatement::CreateTableAs(c) => self.create_table_as(c, binds, &clauses).await,
                _ if !binds.is_empty() => Err(QueryError::new(
                    QueryErrorKind::Invalid,
                    "DDL takes no bind values",
                )),
                WriteStatement::CreateTable(create) => self.create_table(create).await,
                WriteStatement::AlterTable(alter) => self.alter_table(alter).await,
                WriteStatement::DropTable { table, if_exists } => {
                    self.drop_table(&table, if_exists).await
                }
                WriteStatement::RenameTable { from, to } => self.rename_table(&from, &to).await,
                WriteStatement::TruncateTable { table, if_exists } => {
                    self.truncate_table(&table, if_exists).await
                }
            };
        }
        let mut statement = Self::parse(sql)?;
        if let Statement::Statement(s) = &statement
            && let Some(query) = dialect::catalog::show_as_query(s)
        {
            statement = Self::parse(&query)?;
        }
        if let Statement::Statement(s) = &statement
            && let Sql::Insert(insert) = s.as_ref()
        {
            let target = InsertTarget::resolve(&self.db, insert)?;
            let Some(source) = insert.source.clone() else {
                return Err(QueryError::new(
                    QueryErrorKind::Unsupported,
                    "INSERT needs VALUES or a SELECT",
                ));
            };
            let kind = match source.body.as_ref() {
                SetExpr::Values(_) => StatementKind::Insert,
                _ => StatementKind::InsertSelect,
            };
            let query = Statement::Statement(Box::new(Sql::Query(source)));
            let (_, rows) = self.query(query, binds, &clauses).await?;
            let rows = insert_rows(&self.db, &target, rows).await?;
            return Ok(Planned::Done { kind, rows });
        }
        Self::check_supported(&statement)?;
        let (schema, stream) = self.query(statement, binds, &clauses).await?;
        Ok(Planned::Rows(schema, stream))
    }

    /// Creates a table, durably.
    async fn create_table(
        &self,
        create: crate::write::create_table::CreateTable,
    ) -> Result<Planned, QueryError> {
        let done = Planned::Done {
            kind: StatementKind::CreateTable,
            rows: 0,
        };
        if self.db.table(&create.schema.name).is_some() {
            return match create.if_not_exists {
                true => Ok(done),
                false => Err(QueryError::new(
                    QueryErrorKind::Invalid,
                    format!("table already exists [table={}]", create.schema.name),
                )),
            };
        }
        // Exclusive unless IF NOT EXISTS: a table another client created a
        // moment ago is an error, not silently this statement's.
        let created = match create.if_not_exists {
            true => self.db.create_table(create.schema),
            false => self.db.create_new_table(create.schema),
        };
        created.await.map_err(|_| database_closed())??;
        self.db.sync().await.map_err(|_| database_closed())??;
        Ok(done)
    }

    /// Drops a table, durably.
    async fn drop_table(&self, table: &str, if_exists: bool) -> Result<Planned, QueryError> {
        match self.db.drop_table(table) {
            Some(done) => done.await.map_err(|_| database_closed())??,
            None if if_exists => {}
            None => {
                return Err(no_such_table(table));
            }
        }
        self.db.sync().await.map_err(|_| database_closed())??;
        Ok(Planned::Done {
            kind: StatementKind::DropTable,
            rows: 0,
        })
    }

    /// Renames a table, durably.
    async fn rename_table(&self, from: &str, to: &str) -> Result<Planned, QueryError> {
        let Some(done) = self.db.rename_table(from, to) else {
            return Err(no_such_table(from));
        };
        done.await.map_err(|_| database_closed())??;
        self.db.sync().await.map_err(|_| database_closed())??;
        Ok(Planned::Done {
            kind: StatementKind::RenameTable,
            rows: 0,
        })
    }

    /// Empties a table, durably.
    async fn truncate_table(&self, table: &str, if_exists: bool) -> Result<Planned, QueryError> {
        match self.db.truncate_table(table) {
            Some(done) => {
                done.await.map_err(|_| database_closed())??;
            }
            None if if_exists => {}
            None => {
                return Err(no_such_table(table));
            }
        }
        self.db.sync().await.map_err(|_| database_closed())??;
        Ok(Planned::Done {
            kind: StatementKind::TruncateTable,
            rows: 0,
        })
    }

    /// Creates a table from a query's result and fills it; if filling
    /// fails the new table is dropped again.
    async fn create_table_as(
        &self,
        create: crate::write::create_table::CreateTableAs,
        binds: Vec<ScalarAndMetadata>,
        clauses: &Clauses,
    ) -> Result<Planned, QueryError> {
        if self.db.table(&create.name).is_some() {
            return match create.if_not_exists {
                true => Ok(Planned::Done {
                    kind: StatementKind::CreateTableAs,
                    rows: 0,
                }),
                false => Err(QueryError::new(
                    QueryErrorKind::Invalid,
                    format!("table already exists [table={}]", create.name),
                )),
            };
        }
        let statement = Self::parse(&create.query)?;
        Self::check_supported(&statement)?;
        let (schema, stream) = self.query(statement, binds, clauses).await?;
        let columns = schema
            .fields()
            .iter()
            .map(|f| {
                crate::write::create_as::column_type_of(f)
                    .map(|t| quiver_storage::ColumnSchema::new(f.name(), t))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut table_schema = quiver_storage::TableSchema {
            name: create.name.clone(),
            columns,
            designated_timestamp: None,
            partition_by: quiver_storage::PartitionBy::None,
            version: 0,
            has_dropped_columns: false,
            ttl: None,
        };
        crate::write::create_table::apply_table_options(
            &mut table_schema,
            create.timestamp.as_deref(),
            Some(create.partition_by),
            create.ttl,
        )?;
        // Exclusive: a table of the name created meanwhile by another
        // client is never filled (nor dropped) by this statement.
        let table = match self.db.create_new_table(table_schema).await {
            Err(_) => return Err(database_closed()),
            Ok(Err(quiver_storage::StorageError::TableExists { .. })) if create.if_not_exists => {
                return Ok(Planned::Done {
                    kind: StatementKind::CreateTableAs,
                    rows: 0,
                });
            }
            Ok(created) => created?,
        };
        let target = InsertTarget::all_columns(Arc::clone(&table));
        match insert_rows(&self.db, &target, stream).await {
            Ok(rows) => {
                self.db.sync().await.map_err(|_| database_closed())??;
                Ok(Planned::Done {
                    kind: StatementKind::CreateTableAs,
                    rows,
                })
            }
            Err(e) => {
                // This statement's table, whatever its name is now; made
                // durable so a restart does not bring back a half-filled one.
                let _ = self.db.drop_this_table(table).await;
                let _ = self.db.sync().await;
                Err(e)
            }
        }
    }

    /// Changes a table's columns (ADD, DROP or RENAME COLUMN), durably.
    async fn alter_table(
        &self,
        alter: crate::write::alter_table::AlterTable,
    ) -> Result<Planned, QueryError> {
        use crate::write::alter_table::AlterAction;
        use quiver_storage::SchemaChange;
        let table = self
            .db
            .table(&alter.table)
            .ok_or_else(|| no_such_table(&alter.table))?;
        let schema = table.schema();
        let change = match alter.action {
            AlterAction::DropPartitions(selection) => {
                return self.drop_partitions(table, selection).await;
            }
            AlterAction::AddColumns {
                columns: wanted,
                if_not_exists,
            } => {
                let mut columns = Vec::new();
                for c in wanted {
                    let exists = schema.column_index(&c.name).is_some()
                        || columns.iter().any(|o: &quiver_storage::ColumnSchema| {
                            o.name.eq_ignore_ascii_case(&c.name)
                        });
                    match (exists, if_not_exists) {
                        (false, _) => columns.push(c),
                        (true, true) => {}
                        (true, false) => {
                            return Err(QueryError::new(
                                QueryErrorKind::Invalid,
                                format!(
                                    "column already exists [table={}, column={}]",
                                    schema.name, c.name
                                ),
                            ));
                        }
                    }
                }
                SchemaChange::Add(columns)
            }
            AlterAction::DropColumns { names, if_exists } => {
                SchemaChange::Drop { names, if_exists }
            }
            AlterAction::RenameColumn { from, to } => SchemaChange::Rename { from, to },
            AlterAction::SetTtl(ttl) => SchemaChange::SetTtl(ttl),
        };
        // Checked here too, so a refused change is not sent to storage.
        let Some(_) = schema.apply_change(change.clone())? else {
            return Ok(Planned::Done {
                kind: StatementKind::AlterTable,
                rows: 0,
            });
        };
        let set_ttl = matches!(change, SchemaChange::SetTtl(Some(_)));
        self.db
            .alter_schema(table.clone(), change)
            .await
            .map_err(|_| database_closed())??;
        self.db.sync().await.map_err(|_| database_closed())??;
        if set_ttl {
            self.apply_ttl(table).await?;
        }
        Ok(Planned::Done {
            kind: StatementKind::AlterTable,
            rows: 0,
        })
    }

    /// Applies every table's TTL now: drops the partitions that ended
    /// more than the TTL before the table's newest designated timestamp
    /// (capped at the wall clock, so one row from the future cannot empty
    /// the table). Returns the rows dropped. A table that fails is logged
    /// and the others go on. The server calls it periodically and `ALTER
    /// TABLE ... SET TTL` right away.
    pub async fn apply_ttls(&self) -> u64 {
        let mut rows = 0;
        for info in self.db.tables() {
            if info.schema.ttl.is_some()
                && let Some(table) = self.db.table(&info.schema.name)
            {
                match self.apply_ttl(table).await {
                    Ok(n) => rows += n,
                    Err(e) => {
                        tracing::warn!(table = %info.schema.name, error = %e, "applying the TTL failed; retried at the next check")
                    }
                }
            }
        }
        rows
    }

    /// Applies `table`'s TTL (see [`QueryEngine::apply_ttls`]).
    async fn apply_ttl(&self, table: Arc<quiver_storage::Table>) -> Result<u64, QueryError> {
        let schema = table.schema();
        let (Some(ttl), Some(nanos_per_tick)) = (schema.ttl, designated_nanos_per_tick(&schema))
        else {
            return Ok(0);
        };
        let Some((oldest, newest)) = table.snapshot(self.db.visible_lsn()).timestamp_range() else {
            return Ok(0);
        };
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
            .unwrap_or(0);
        let reference = newest.saturating_mul(nanos_per_tick).min(wall);
        // A cut before the range of timestamps: nothing is that old.
        let Some(boundary) =
            crate::write::partitions::ttl_boundary(schema.partition_by, ttl, reference)
        else {
            return Ok(0);
        };
        let boundary_raw = boundary / nanos_per_tick;
        // Nothing old enough: no drop (which would seal the memtable).
        if oldest >= boundary_raw {
            return Ok(0);
        }
        let dropped = self
            .db
            .drop_rows_in(table, vec![(i64::MIN, boundary_raw)])
            .await
            .map_err(|_| database_closed())??;
        tracing::info!(
            table = %schema.name,
            ttl = %ttl,
            rows = dropped.rows,
            before = %crate::write::partitions::partition_name(schema.partition_by, boundary),
            "TTL dropped old partitions"
        );
        Ok(dropped.rows)
    }

    /// `ALTER TABLE t DROP PARTITION LIST ... | WHERE ...`: works out the
    /// partitions (QuestDB's: by the table's unit; a WHERE condition is
    /// evaluated on each partition's start as the designated timestamp)
    /// and has storage drop their rows and files, durably.
    async fn drop_partitions(
        &self,
        table: Arc<quiver_storage::Table>,
        selection: crate::write::alter_table::PartitionSelection,
    ) -> Result<Planned, QueryError> {
        use crate::write::alter_table::PartitionSelection;
        use crate::write::partitions::{
            floor_unit, parse_partition_name, partition_end, partition_name, partition_start,
        };
        let schema = table.schema();
        let unit = schema.partition_by;
        let invalid = |message: String| QueryError::new(QueryErrorKind::Invalid, message);
        let (Some(ts), Some(floor), Some(nanos_per_tick)) = (
            schema
                .designated_timestamp
                .and_then(|i| schema.columns.get(i)),
            floor_unit(unit),
            designated_nanos_per_tick(&schema),
        ) else {
            return Err(invalid(format!(
                "table is not partitioned [table={}]",
                schema.name
            )));
        };
        // A partition's rows as raw values of the column: [start, end).
        let raw_range = |start: i64| -> Result<(i64, i64), QueryError> {
            let end = partition_end(unit, start).ok_or_else(|| {
                invalid(format!(
                    "partition {} ends past the range of timestamps",
                    partition_name(unit, start)
                ))
            })?;
            Ok((start / nanos_per_tick, end / nanos_per_tick))
        };
        let quote = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
        let column = quote(&ts.name);
        let from = quote(&schema.name);
        // The partitions holding rows that the statement names.
        let (query, listed) = match &selection {
            PartitionSelection::List(names) => {
                let mut listed = std::collections::BTreeSet::new();
                for name in names {
                    listed.insert(parse_partition_name(unit, name)?);
                }
                let mut bounds = Vec::with_capacity(listed.len());
                for &start in &listed {
                    let (lo, hi) = raw_range(start)?;
                    bounds.push(format!("({column} >= {lo} AND {column} < {hi})"));
                }
                let query = format!(
                    "SELECT DISTINCT timestamp_floor('{floor}', {column}) FROM {from} WHERE {}",
                    bounds.join(" OR ")
                );
                (query, Some(listed))
            }
            PartitionSelection::Where(condition) => {
                // One expression and nothing after it: the text goes into
                // the query below only as the parsed condition.
                let condition = Parser::new(&GenericDialect {})
                    .try_with_sql(condition)
                    .and_then(|mut p| {
                        let e = p.parse_expr()?;
                        match p.peek_token().token {
                            Token::EOF => Ok(e),
                            other => Err(ParserError::ParserError(format!(
                                "unexpected {other} after the condition"
                            ))),
                        }
                    })
                    .map_err(|e| invalid(format!("DROP PARTITION WHERE: {e}")))?;
                let query = format!(
                    "SELECT DISTINCT {column} FROM (SELECT timestamp_floor('{floor}', {column}) AS {column} FROM {from}) WHERE {condition}"
                );
                (query, None)
            }
        };
        let statement = Self::parse(&query)?;
        Self::check_supported(&statement)?;
        let (schema_out, mut stream) = self
            .query(statement, Vec::new(), &Clauses::default())
            .await?;
        let result_nanos = match schema_out.field(0).data_type() {
            arrow::datatypes::DataType::Timestamp(u, _) => {
                dialect::sample_by::bucket_function::nanos_per_tick(*u)
            }
            other => {
                return Err(QueryError::new(
                    QueryErrorKind::Internal,
                    format!("partition starts came back as {other}"),
                ));
            }
        };
        let mut starts = std::collections::BTreeSet::new();
        while let Some(batch) = stream.next().await {
            let values = dialect::time_arithmetic::raw_values(batch?.column(0))?;
            for v in values.iter().flatten() {
                let start = v.checked_mul(result_nanos).ok_or_else(|| {
                    invalid("a partition lies outside the range of nanosecond timestamps".into())
                })?;
                // Only whole partitions (the floor guarantees it).
                if partition_start(unit, start) == Some(start) {
                    starts.insert(start);
                }
            }
            if starts.len() > quiver_storage::db::MAX_DROP_RANGES {
                return Err(invalid(format!(
                    "more than {} partitions to drop at once [table={}]",
                    quiver_storage::db::MAX_DROP_RANGES,
                    schema.name
                )));
            }
        }
        if let Some(listed) = &listed
            && let Some(missing) = listed.difference(&starts).next()
        {
            return Err(invalid(format!(
                "partition does not exist [table={}, partition={}]",
                schema.name,
                partition_name(unit, *missing)
            )));
        }
        let ranges = starts
            .iter()
            .map(|&start| raw_range(start))
            .collect::<Result<Vec<_>, _>>()?;
        tracing::info!(
            table = %schema.name,
            partitions = ranges.len(),
            "dropping partitions"
        );
        if !ranges.is_empty() {
            self.db
                .drop_rows_in(table, ranges)
                .await
                .map_err(|_| database_closed())??;
        }
        Ok(Planned::Done {
            kind: StatementKind::AlterTable,
            rows: 0,
        })
    }

    /// Rewrites the SELECTs of `statement`'s LATEST ON clauses.
    fn prepare_latest(
        statement: &mut Statement,
        latest: &[LatestOnClause],
        designated: &HashMap<String, String>,
    ) -> Result<Vec<PreparedLatestOn>, QueryError> {
        use datafusion::sql::sqlparser::ast::Statement as Sql;
        if latest.is_empty() {
            return Ok(Vec::new());
        }
        let Some(Sql::Query(query)) = sql_statement(statement) else {
            return Err(QueryError::new(
                QueryErrorKind::Unsupported,
                "LATEST ON is supported in queries",
            ));
        };
        dialect::latest_on::rewrite_selects(query, latest, &|t: &str| {
            designated.get(&t.to_ascii_lowercase()).cloned()
        })
    }

    /// Rewrites the SELECTs of `statement`'s SAMPLE BY clauses and
    /// registers their bucket functions (after finding the first row for
    /// `ALIGN TO FIRST OBSERVATION`).
    async fn prepare_samples(
        &self,
        ctx: &SessionContext,
        statement: &mut Statement,
        samples: &[SampleByClause],
        designated: &HashMap<String, String>,
        binds: &[ScalarAndMetadata],
    ) -> Result<Vec<(PreparedSampleBy, Bucketing)>, QueryError> {
        use datafusion::sql::sqlparser::ast::Statement as Sql;
        if samples.is_empty() {
            return Ok(Vec::new());
        }
        let Some(Sql::Query(query)) = sql_statement(statement) else {
            return Err(QueryError::new(
                QueryErrorKind::Unsupported,
                "SAMPLE BY is supported in queries",
            ));
        };
        let prepared = {
            let state = ctx.state();
            let aggregates = state.aggregate_functions();
            let context = dialect::sample_by::SelectContext {
                designated_timestamp: &|t: &str| designated.get(&t.to_ascii_lowercase()).cloned(),
                is_aggregate: &|f: &str| aggregates.contains_key(f),
            };
            dialect::sample_by::rewrite_selects(query, samples, &context)?
        };
        let mut out = Vec::new();
        for p in prepared {
            let first_row = match &p.first_row_query {
                Some(sql) => first_timestamp(ctx, Self::parse(sql)?, binds).await?,
                None => None,
            };
            let bucketing = p.bucketing(first_row)?;
            let udf = dialect::sample_by::bucket_function::SampleBucket::new(
                dialect::sample_by::bucket_function_name(p.index),
                bucketing,
            );
            ctx.register_udf(datafusion::logical_expr::ScalarUDF::new_from_impl(udf));
            out.push((p, bucketing));
        }
        Ok(out)
    }

    /// Snapshots the tables `statement` reads and plans it.
    async fn query(
        &self,
        statement: Statement,
        binds: Vec<ScalarAndMetadata>,
        clauses: &Clauses,
    ) -> Result<(SchemaRef, SendableRecordBatchStream), QueryError> {
        let mut statement = statement;
        if let Some(s) = sql_statement(&mut statement) {
            dialect::rewrite::rewrite(s);
        }
        let state = self.session();
        let mut references = state.resolve_table_references(&statement)?;
        references.sort_by_key(|r| r.to_string());
        references.dedup();
        let names: Vec<String> = references.iter().map(|r| r.table().to_string()).collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let (_lsn, snapshots) = self.db.snapshots(&name_refs);
        let ctx = SessionContext::new_with_state(state);
        let mut columns: Vec<String> = Vec::new();
        let mut designated: HashMap<String, String> = HashMap::new();
        for (reference, snapshot) in references.into_iter().zip(snapshots) {
            // Table functions (`long_sequence(10)`) come back as references
            // too; a stored table of the same name wins.
            if snapshot.is_none() && dialect::is_table_function(&ctx.state(), reference.table()) {
                continue;
            }
            let Some(snapshot) = snapshot else {
                return Err(no_such_table(reference.table()));
            };
            let schema = snapshot.schema();
            columns.extend(schema.columns.iter().map(|c| c.name.clone()));
            if let Some(ts) = schema
                .designated_timestamp
                .and_then(|i| schema.columns.get(i))
            {
                designated.insert(reference.table().to_ascii_lowercase(), ts.name.clone());
            }
            ctx.register_table(reference, Arc::new(SnapshotTable::new(snapshot)))?;
        }
        if let Some(s) = sql_statement(&mut statement) {
            let names = columns.iter().map(String::as_str);
            dialect::rewrite::resolve_names(
                s,
                names.chain(dialect::catalog::COLUMNS.iter().copied()),
            );
        }
        if let Some(datafusion::sql::sqlparser::ast::Statement::Query(q)) =
            sql_statement(&mut statement)
        {
            dialect::rewrite::order_first_last(q, &|t: &str| {
                designated.get(&t.to_ascii_lowercase()).cloned()
            })?;
            let aggregates = ctx.state().aggregate_functions().clone();
            dialect::rewrite::implicit_group_by(q, &|name: &str| aggregates.contains_key(name))?;
            if !clauses.joins.is_empty() {
                dialect::time_joins::using_to_on(q)?;
            }
        }
        let latest = Self::prepare_latest(&mut statement, &clauses.latest, &designated)?;
        let samples = self
            .prepare_samples(&ctx, &mut statement, &clauses.samples, &designated, &binds)
            .await?;
        let mut plan = ctx.state().statement_to_plan(statement).await?;
        if !latest.is_empty() {
            plan = dialect::latest_on::wrap_plan(plan, &latest)?;
        }
        if !clauses.joins.is_empty() {
            plan = dialect::time_joins::wrap_plan(plan, &clauses.joins, &designated)?;
        }
        if !samples.is_empty() {
            plan = dialect::sample_by::node::wrap_plan(plan, &samples)?;
        }
        let plan = unique_result_names(plan)?;
        let plan = Self::bind(plan, binds)?;
        let frame = ctx.execute_logical_plan(plan.clone()).await?;
        let stream = frame.execute_stream().await?;
        let schema = crate::result_types::restore(&plan, stream.schema());
        Ok((schema, stream))
    }
}
