//! The frame plan: a whole frame checked against the catalog before any of
//! it is converted, any table created or any column added. For every block
//! it resolves each column once: the table column it goes into (existing,
//! or new with the type it is sent as), and how its values get there
//! ([`Coercion`]). It builds each table's schema as the frame would leave
//! it and validates it whole (names, column count, types), and bounds what
//! the frame will materialise (rows and bytes, [`FrameLimits`]) before a
//! byte of it is allocated. A frame the plan refuses leaves the database as
//! it was.
//!
//! Tables are created as the first block naming them says: its columns in
//! order, the unnamed designated timestamp named `timestamp` where it
//! stands (or a `timestamp` TIMESTAMP appended, filled with server time),
//! partitioned by day. Later blocks add the columns they name that are new.

use std::sync::Arc;

use quiver_qwp::ingress::Column;
use quiver_qwp::{StatusCode, SymbolDictionary, Symbols, TableBlock, TypeCode, Values};
use quiver_storage::limits::MAX_TRANSACTION_PARTS;
use quiver_storage::schema::validate_name;
use quiver_storage::{
    ColumnSchema, ColumnType, DESIGNATED_TIMESTAMP_NAME, Database, PartitionBy, Table, TableSchema,
};

use super::IngestError;
use super::coerce::{Coercion, coercion, max_text_len, natural_type};

/// What one frame may materialise (checked before anything is allocated).
#[derive(Debug, Clone, Copy)]
pub struct FrameLimits {
    /// Most rows over all of a frame's blocks.
    pub max_rows: usize,
    /// Most bytes its rows may take once converted (an upper estimate of
    /// the Arrow buffers; at most `i32::MAX`, so no text column can overflow
    /// Arrow's 32-bit offsets).
    pub max_bytes: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_rows: 4 << 20,
            max_bytes: 256 << 20,
        }
    }
}

/// A table as the frame leaves it.
#[derive(Debug)]
pub struct TablePlan {
    /// The table, if it exists.
    pub existing: Option<Arc<Table>>,
    /// Its schema after the frame (validated).
    pub schema: TableSchema,
    /// Columns the frame adds to an existing table.
    pub new_columns: Vec<ColumnSchema>,
}

/// A column of a block, resolved.
#[derive(Debug, Clone, Copy)]
pub struct ColumnPlan {
    /// Index in the block.
    pub column: usize,
    /// Index of the target in its table plan's schema.
    pub target: usize,
    /// The column's own type (`None`: an all-NULL array of unknown rank).
    pub natural: Option<ColumnType>,
    /// How its values go into the planned target type.
    pub how: Coercion,
}

/// A block, resolved.
#[derive(Debug)]
pub struct BlockPlan {
    /// Index in the frame's blocks.
    pub block: usize,
    /// Index of its table in [`FramePlan::tables`].
    pub table: usize,
    /// Rows.
    pub rows: usize,
    /// Its stored columns.
    pub columns: Vec<ColumnPlan>,
    /// The table's designated timestamp is not sent: server time fills it.
    pub fill_designated: bool,
}

/// A whole frame, resolved (see the module docs).
#[derive(Debug, Default)]
pub struct FramePlan {
    /// Tables the frame writes, in order of first appearance.
    pub tables: Vec<TablePlan>,
    /// Blocks with rows, in frame order.
    pub blocks: Vec<BlockPlan>,
    /// Rows over all blocks.
    pub rows: usize,
    /// Bytes the converted rows take, estimated from above.
    pub bytes: usize,
}

/// The message of a type conflict (QuestDB's wording, plus both types).
pub fn mismatch(
    table: &str,
    column: &str,
    stored: &ColumnType,
    sent: &str,
    detail: Option<&str>,
) -> IngestError {
    let mut message = format!(
        "column type mismatch [table={table}, column={column}, stored={}, sent={sent}]",
        stored.name()
    );
    if let Some(d) = detail {
        message.push_str(": ");
        message.push_str(d);
    }
    IngestError::new(StatusCode::SCHEMA_MISMATCH, message).about_column(column)
}

fn parse_error(message: String) -> IngestError {
    IngestError::new(StatusCode::PARSE_ERROR, message)
}

/// Bytes one value of a stored column takes (offsets only for variable
/// width types).
fn stored_width(t: ColumnType) -> usize {
    match t {
        ColumnType::Boolean | ColumnType::Byte => 1,
        ColumnType::Short | ColumnType::Char => 2,
        ColumnType::Int
        | ColumnType::Float
        | ColumnType::Symbol
        | ColumnType::Ipv4
        | ColumnType::Varchar
        | ColumnType::Binary => 4,
        ColumnType::Uuid | ColumnType::Decimal128(_) => 16,
        ColumnType::Long256 | ColumnType::Decimal256(_) => 32,
        ColumnType::Geohash(bits) => match bits {
            0..=7 => 1,
            8..=15 => 2,
            16..=31 => 4,
            _ => 8,
        },
        ColumnType::DoubleArray(rank) | ColumnType::LongArray(rank) => 4 * usize::from(rank),
        _ => 8,
    }
}

/// Bytes of text a SYMBOL column's values are.
fn symbol_text_bytes(column: &Column<'_>, dictionary: &SymbolDictionary) -> usize {
    let Values::Symbol(s) = column.data.values() else {
        return 0;
    };
    match s {
        Symbols::Global(ids) => ids
            .iter()
            .map(|id| dictionary.get(u64::from(id)).map_or(0, str::len))
            .sum(),
        Symbols::Local { dictionary, .. } => {
            let entries: Vec<usize> = dictionary.iter().map(str::len).collect();
            s.ids()
                .iter()
                .map(|id| entries.get(id as usize).copied().unwrap_or(0))
                .sum()
        }
    }
}

/// Bytes of variable-width data a column brings (text, binary, array
/// elements) once converted into a column of type `to`.
fn data_bytes(column: &Column<'_>, to: ColumnType, dictionary: &SymbolDictionary) -> usize {
    let rows = column.data.row_count() as usize;
    let sent = column.data.type_code();
    let wire = match column.data.values() {
        Values::VarLen { data, .. } => data.len(),
        Values::Array(_) => column.data.value_count() as usize * 16,
        _ => 0,
    };
    // SYMBOL into SYMBOL maps ids to keys: no text is built (and this
    // must not walk the ids: it runs for every frame).
    if sent == TypeCode::Symbol && to == ColumnType::Symbol {
        return 0;
    }
    let textual =
        matches!(to, ColumnType::Varchar | ColumnType::Symbol) || sent == TypeCode::Symbol;
    match (sent, textual) {
        (TypeCode::Symbol, true) => symbol_text_bytes(column, dictionary),
        (TypeCode::Varchar, _) | (_, false) => wire,
        (_, true) => rows.saturating_mul(max_text_len(sent)),
    }
}

/// Bytes a table block costs in memory besides its values (its batch,
/// schema and encoding), counted so thousands of one-row blocks are not
/// nearly free.
const BLOCK_OVERHEAD: usize = 1024;

/// Plans `blocks` (see the module docs), to join a pending transaction of
/// `pending_parts` blocks.
pub fn plan_frame(
    db: &Database,
    blocks: &[TableBlock<'_>],
    dictionary: &SymbolDictionary,
    limits: &FrameLimits,
    pending_parts: usize,
) -> Result<FramePlan, IngestError> {
    let mut plan = FramePlan::default();
    let parts = pending_parts + blocks.iter().filter(|b| b.row_count > 0).count();
    if parts > MAX_TRANSACTION_PARTS {
        return Err(parse_error(format!(
            "the transaction would hold {parts} table blocks, more than {MAX_TRANSACTION_PARTS}; \
             commit sooner"
        )));
    }
    for (index, block) in blocks.iter().enumerate() {
        let rows = block.row_count as usize;
        if rows == 0 {
            continue;
        }
        plan.rows = plan.rows.saturating_add(rows);
        if plan.rows > limits.max_rows {
            return Err(parse_error(format!(
                "the frame holds more than {} rows, the most one frame may materialise \
                 (max_frame_rows); send smaller frames",
                limits.max_rows
            )));
        }
        let table = table_plan(db, &mut plan, block)?;
        let block_plan = plan_block(&mut plan.tables[table], block, index, table)?;
        let schema = &plan.tables[table].schema;
        let mut bytes = rows.saturating_mul(
            block_plan
                .columns
                .iter()
                .map(|c| stored_width(schema.columns[c.target].column_type) + 1)
                .sum::<usize>(),
        );
        for c in &block_plan.columns {
            let to = schema.columns[c.target].column_type;
            bytes = bytes.saturating_add(data_bytes(&block.columns[c.column], to, dictionary));
        }
        if block_plan.fill_designated {
            bytes = bytes.saturating_add(rows.saturating_mul(8));
        }
        bytes = bytes.saturating_add(BLOCK_OVERHEAD);
        plan.bytes = plan.bytes.saturating_add(bytes);
        // Never past i32::MAX, whatever the setting: no text column of the
        // frame can then overflow Arrow's 32-bit offsets.
        let max_bytes = limits.max_bytes.min(i32::MAX as usize);
        if plan.bytes > max_bytes {
            return Err(parse_error(format!(
                "the frame's rows take more than {max_bytes} bytes once converted, the most one \
                 frame may materialise (max_frame_bytes); send smaller frames"
            )));
        }
        plan.blocks.push(block_plan);
    }
    for t in &plan.tables {
        if t.existing.is_none() || !t.new_columns.is_empty() {
            t.schema
                .validate()
                .map_err(|e| parse_error(e.to_string()))?;
        }
    }
    Ok(plan)
}

/// The index of `block`'s table in the plan, adding it (and checking its
/// name) on first sight.
fn table_plan(
    db: &Database,
    plan: &mut FramePlan,
    block: &TableBlock<'_>,
) -> Result<usize, IngestError> {
    if let Some(i) = plan
        .tables
        .iter()
        .position(|t| t.schema.name.eq_ignore_ascii_case(&block.name))
    {
        return Ok(i);
    }
    validate_name(&block.name, "table", &block.name).map_err(|e| parse_error(e.to_string()))?;
    let existing = db.table(&block.name);
    let schema = match &existing {
        Some(t) => (*t.schema()).clone(),
        None => new_table_schema(&block.name, block)?,
    };
    plan.tables.push(TablePlan {
        existing,
        schema,
        new_columns: Vec::new(),
    });
    Ok(plan.tables.len() - 1)
}

/// The schema a table gets from the first block that names it.
fn new_table_schema(name: &str, block: &TableBlock<'_>) -> Result<TableSchema, IngestError> {
    let mut columns = Vec::with_capacity(block.columns.len() + 1);
    let mut designated = None;
    for c in &block.columns {
        let Some(t) = natural_type(c)? else {
            continue;
        };
        if c.name.is_empty() {
            if designated.is_some() {
                return Err(parse_error(format!(
                    "two designated timestamps [table={name}]"
                )));
            }
            designated = Some(columns.len());
            columns.push(ColumnSchema::new(DESIGNATED_TIMESTAMP_NAME, t));
        } else if !columns
            .iter()
            .any(|x: &ColumnSchema| x.name.eq_ignore_ascii_case(&c.name))
        {
            columns.push(ColumnSchema::new(c.name.to_string(), t));
        }
    }
    if designated.is_none() {
        designated = Some(columns.len());
        columns.push(ColumnSchema::new(
            DESIGNATED_TIMESTAMP_NAME,
            ColumnType::Timestamp,
        ));
    }
    Ok(TableSchema {
        name: name.to_string(),
        columns,
        designated_timestamp: designated,
        partition_by: PartitionBy::Day,
        version: 0,
        has_dropped_columns: false,
        ttl: None,
    })
}

/// Resolves a block's columns against its table plan, adding the columns
/// it creates.
fn plan_block(
    table: &mut TablePlan,
    block: &TableBlock<'_>,
    index: usize,
    table_index: usize,
) -> Result<BlockPlan, IngestError> {
    let name = table.schema.name.clone();
    let mut columns: Vec<ColumnPlan> = Vec::with_capacity(block.columns.len());
    for (i, c) in block.columns.iter().enumerate() {
        if !c.name.is_empty()
            && block.columns[..i]
                .iter()
                .any(|o| o.name.eq_ignore_ascii_case(&c.name))
        {
            return Err(parse_error(format!(
                "duplicate column name [table={name}, column={}]",
                c.name
            )));
        }
        let natural = natural_type(c)?;
        let sent = c.data.type_code();
        let target = match c.name.is_empty() {
            true => Some(table.schema.designated_timestamp.ok_or_else(|| {
                IngestError::new(
                    StatusCode::SCHEMA_MISMATCH,
                    format!("a designated timestamp was sent, but table {name} has none"),
                )
            })?),
            false => table.schema.column_index(&c.name),
        };
        let (target, how) = match target {
            Some(t) => {
                let column = &table.schema.columns[t];
                let how = coercion(sent, natural, column.column_type).ok_or_else(|| {
                    let created_here = table
                        .new_columns
                        .iter()
                        .any(|n| n.name.eq_ignore_ascii_case(&column.name))
                        || table.existing.is_none();
                    mismatch(
                        &name,
                        &column.name,
                        &column.column_type,
                        sent.name(),
                        created_here.then_some("an earlier block of this frame creates the column"),
                    )
                })?;
                (t, how)
            }
            None => {
                // An all-NULL array of unknown rank creates nothing.
                let Some(t) = natural else {
                    continue;
                };
                let column = ColumnSchema::new(c.name.to_string(), t);
                table.schema.columns.push(column.clone());
                if table.existing.is_some() {
                    table.new_columns.push(column);
                }
                (table.schema.columns.len() - 1, Coercion::Exact)
            }
        };
        if columns.iter().any(|p| p.target == target) {
            return Err(parse_error(format!(
                "column {} is sent twice [table={name}]",
                table.schema.columns[target].name
            )));
        }
        columns.push(ColumnPlan {
            column: i,
            target,
            natural,
            how,
        });
    }
    let fill_designated = table
        .schema
        .designated_timestamp
        .is_some_and(|d| !columns.iter().any(|c| c.target == d));
    Ok(BlockPlan {
        block: index,
        table: table_index,
        rows: block.row_count as usize,
        columns,
        fill_designated,
    })
}
