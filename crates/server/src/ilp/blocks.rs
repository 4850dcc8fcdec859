//! Parsed lines gathered into QWP table blocks, so that line-protocol rows
//! are planned, coerced, created and stored by exactly the path QWP
//! frames take (`crate::ingest`).
//!
//! Each table's consecutive lines share one open block: a column per tag
//! and field name met (case-insensitive, as QuestDB's names are), NULL in
//! the rows that lack it, and the line timestamps as the block's
//! designated timestamp (server time where a line has none). A value sent
//! as another type than the open block's column of that name closes the
//! block and starts the next one, so the second type meets the first as a
//! later QWP frame's would: coerced if the coercion table allows it,
//! otherwise refused naming the line.
//!
//! Types as QuestDB maps ILP: tags are SYMBOL, `i` integers LONG (`u`
//! integers too, if they fit), floats DOUBLE, booleans BOOLEAN, strings
//! VARCHAR, `t`/`n` timestamps TIMESTAMP/TIMESTAMP_NS, decimals DECIMAL
//! (128-bit unless a value needs 256, at the block's largest scale), arrays
//! DOUBLE[]/LONG[] of their rank. The line timestamp is in microseconds
//! unless the table's designated timestamp is TIMESTAMP_NS.
//!
//! This module must not parse bytes (`quiver_ilp` does) or decide
//! coercions (`crate::ingest::coerce` does).

use std::borrow::Cow;
use std::collections::HashMap;

use arrow::datatypes::i256;
use quiver_ilp::{ArrayElement, Line, Text, Timestamp, Value as LineValue};
use quiver_qwp::ingress::Column;
use quiver_qwp::{ColumnBuilder, NullEncoding, StringList, TableBlock, TypeCode, Value};
use quiver_storage::schema::MAX_COLUMNS;
use quiver_storage::{ColumnType, Database};

use super::WriteError;

/// Bytes a value is counted as besides its payload (buffers, NULL flag).
const VALUE_OVERHEAD: usize = 9;

/// A block with this many rows is likely to fill its step: its columns
/// then make room for the step at once instead of doubling their way up.
const RESERVE_AT: usize = 1024;

/// Largest decimal scale (QuestDB's DECIMAL precision is at most 76).
const MAX_DECIMAL_SCALE: u32 = 76;

/// Largest exponent of a text decimal (twice the largest scale).
const MAX_DECIMAL_EXPONENT: i32 = 152;

/// Largest scale and precision of a DECIMAL128 column.
const MAX_DECIMAL128_DIGITS: u8 = 38;

/// What a column of an open block holds (one per ILP value kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Symbol,
    Long,
    Double,
    Boolean,
    Varchar,
    Timestamp,
    TimestampNanos,
    Decimal,
    DoubleArray,
    LongArray,
}

impl Kind {
    fn of(value: &LineValue<'_>) -> Kind {
        match value {
            LineValue::Long(_) | LineValue::UnsignedLong(_) => Kind::Long,
            LineValue::Double(_) => Kind::Double,
            LineValue::Boolean(_) => Kind::Boolean,
            LineValue::String(_) => Kind::Varchar,
            LineValue::Timestamp(Timestamp::Micros(_)) => Kind::Timestamp,
            LineValue::Timestamp(Timestamp::Nanos(_)) => Kind::TimestampNanos,
            LineValue::DecimalText(_) | LineValue::Decimal { .. } => Kind::Decimal,
            LineValue::Array(a) => match a.element {
                ArrayElement::Double => Kind::DoubleArray,
                ArrayElement::Long => Kind::LongArray,
            },
        }
    }

    fn type_code(self) -> TypeCode {
        match self {
            Kind::Symbol => TypeCode::Symbol,
            Kind::Long => TypeCode::Long,
            Kind::Double => TypeCode::Double,
            Kind::Boolean => TypeCode::Boolean,
            Kind::Varchar => TypeCode::Varchar,
            Kind::Timestamp => TypeCode::Timestamp,
            Kind::TimestampNanos => TypeCode::TimestampNanos,
            Kind::Decimal => TypeCode::Decimal128,
            Kind::DoubleArray => TypeCode::DoubleArray,
            Kind::LongArray => TypeCode::LongArray,
        }
    }
}

/// A column's values so far.
enum Values {
    /// Values with a QWP encoding of their own.
    Plain(ColumnBuilder),
    /// Tag values: ids into the column's own dictionary (looked up by
    /// their bytes; checked to be UTF-8 once, when added).
    Symbol {
        ids: ColumnBuilder,
        index: HashMap<Box<[u8]>, u32>,
        strings: Vec<Box<str>>,
    },
    /// Decimals (row, unscaled value, the scale it was sent with, its
    /// line), rescaled at the end; the other rows of `rows` are NULL.
    Decimal {
        values: Vec<(usize, i256, u8, u64)>,
        rows: usize,
    },
}

impl Values {
    fn len(&self) -> usize {
        match self {
            Values::Plain(b) => b.len(),
            Values::Symbol { ids, .. } => ids.len(),
            Values::Decimal { rows, .. } => *rows,
        }
    }

    fn reserve(&mut self, rows: usize) {
        match self {
            Values::Plain(b) | Values::Symbol { ids: b, .. } => b.reserve(rows),
            Values::Decimal { .. } => {}
        }
    }

    fn push_null(&mut self) {
        match self {
            Values::Plain(b) | Values::Symbol { ids: b, .. } => {
                // A NULL fits every column.
                let _ = b.push(None);
            }
            Values::Decimal { rows, .. } => *rows += 1,
        }
    }
}

/// A column of an open block.
struct BlockColumn {
    name: String,
    kind: Kind,
    /// The first line that gave it a value.
    first_line: u64,
    values: Values,
}

/// One table's consecutive lines (see the module docs).
struct OpenBlock {
    table: String,
    rows: usize,
    columns: Vec<BlockColumn>,
    /// Lower-cased names to indexes into `columns`.
    index: HashMap<String, usize>,
    /// The column each tag and field position of the last line went to.
    hints: Vec<usize>,
    /// Line timestamps, in nanoseconds if `nanos`, else microseconds.
    timestamps: Vec<Option<i64>>,
    /// The line of each row.
    lines: Vec<u64>,
    any_timestamp: bool,
    nanos: bool,
    first_line: u64,
}

/// A finished block and where its values came from.
pub struct LineBlock {
    /// The rows, as a QWP block.
    pub block: TableBlock<'static>,
    /// Its first line.
    pub first_line: u64,
    /// Each column's first line with a value.
    pub column_lines: Vec<(String, u64)>,
    /// The line of each row.
    pub lines: Vec<u64>,
}

impl LineBlock {
    /// The line to blame for a failure concerning `column` at `row`: the
    /// row's line if known, else the first line that gave the column a
    /// value in this block, else the block's first line.
    pub fn line_of(&self, column: Option<&str>, row: Option<usize>) -> u64 {
        if let Some(&line) = row.and_then(|r| self.lines.get(r)) {
            return line;
        }
        column
            .and_then(|c| {
                self.column_lines
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(c))
            })
            .map_or(self.first_line, |(_, l)| *l)
    }
}

/// Lines gathered into blocks (see the module docs).
pub struct LineBlocks {
    /// Open and closed blocks, in order of their first line.
    blocks: Vec<OpenBlock>,
    /// Lower-cased table names to their open block.
    open: HashMap<String, usize>,
    /// The block of the last line.
    last: Option<usize>,
    /// The column of each tag and field of the current line (scratch).
    resolved: Vec<Option<usize>>,
    rows: usize,
    bytes: usize,
    /// A line adding columns to a block whose NULL fill would take more
    /// than this many (estimated) bytes starts a new block instead.
    max_fill_bytes: usize,
    /// Rows a large block makes room for (a step's).
    reserve_rows: usize,
    /// Bytes (estimated) blocks of this step reserved: all of them
    /// together reserve at most `max_fill_bytes`.
    reserved: usize,
    /// Lower-cased names of the tables written since [`LineBlocks::new`]
    /// (across steps), at most `max_tables`.
    tables: std::collections::HashSet<String>,
    max_tables: usize,
}

/// Whether a line fits its table's open block.
enum Fit {
    /// It does.
    Fits,
    /// A value has another kind than its column, or new columns would
    /// fill too many rows with NULLs: the line starts a new block.
    NewBlock,
}

fn utf8<'a>(text: &Text<'a>, line: u64, what: &str) -> Result<Cow<'a, str>, WriteError> {
    text.to_str().map_err(|_| WriteError::Line {
        line,
        message: format!("{what} is not valid UTF-8"),
    })
}

impl LineBlocks {
    /// No lines yet; `max_fill_bytes` bounds the NULLs a new column adds
    /// (and the bytes of a step); `reserve_rows` is a step's rows; lines
    /// may name at most `max_tables` tables.
    pub fn new(max_fill_bytes: usize, reserve_rows: usize, max_tables: usize) -> Self {
        LineBlocks {
            blocks: Vec::new(),
            open: HashMap::new(),
            last: None,
            resolved: Vec::new(),
            rows: 0,
            bytes: 0,
            max_fill_bytes,
            reserve_rows,
            reserved: 0,
            tables: std::collections::HashSet::new(),
            max_tables,
        }
    }

    /// Rows gathered since the last [`LineBlocks::finish`].
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Bytes they take, estimated.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Bytes (estimated) the blocks of this step reserved ahead.
    #[cfg(test)]
    pub fn reserved(&self) -> usize {
        self.reserved
    }

    /// Adds line number `number`; a table not seen before is looked up in
    /// `db` for its designated timestamp's unit.
    pub fn add(&mut self, line: &Line<'_>, number: u64, db: &Database) -> Result<(), WriteError> {
        let mut b = self.block_for(&line.table, number, db)?;
        if let Fit::NewBlock = self.resolve(b, line, number)? {
            let table = self.blocks[b].table.to_ascii_lowercase();
            self.open.remove(&table);
            self.last = None;
            b = self.block_for(&line.table, number, db)?;
            self.resolve(b, line, number)?;
        }
        let block = &mut self.blocks[b];
        let row = block.rows;
        let mut bytes = 0;
        let tags = line.tags.iter().map(|(n, v)| (n, Err(v)));
        let fields = line.fields.iter().map(|(n, v)| (n, Ok(v)));
        for (position, (name, value)) in tags.chain(fields).enumerate() {
            let kind = match &value {
                Err(_) => Kind::Symbol,
                Ok(v) => Kind::of(v),
            };
            let c = match self.resolved[position] {
                Some(c) => c,
                None => block.add_column(name, kind, number)?,
            };
            block.hints[position] = c;
            let column = &mut block.columns[c];
            if column.values.len() > row {
                return Err(WriteError::Line {
                    line: number,
                    message: format!(
                        "column {} appears twice in the line [table={}]",
                        column.name, block.table
                    ),
                });
            }
            while column.values.len() < row {
                column.values.push_null();
            }
            bytes += match value {
                Err(tag) => push_tag(column, tag, number)?,
                Ok(v) => push_field(column, v, number, &block.table)?,
            };
        }
        // Every column of the block takes room in this row, NULL or not.
        bytes += (block.columns.len() + 1) * VALUE_OVERHEAD;
        let ts = match line.timestamp {
            None => None,
            Some(ts) if block.nanos => Some(ts.as_nanos().ok_or_else(|| WriteError::Line {
                line: number,
                message: format!(
                    "the timestamp does not fit the table's TIMESTAMP_NS column [table={}]",
                    block.table
                ),
            })?),
            Some(ts) => Some(ts.as_micros()),
        };
        block.any_timestamp |= ts.is_some();
        block.timestamps.push(ts);
        block.lines.push(number);
        block.rows += 1;
        if block.rows == RESERVE_AT {
            // Bounded by what the step's blocks reserved together: wide
            // blocks, and blocks after many others, reserve fewer rows.
            let width = (block.columns.len() + 1) * VALUE_OVERHEAD;
            let budget = self.max_fill_bytes.saturating_sub(self.reserved);
            let more = self
                .reserve_rows
                .min(budget / width)
                .saturating_sub(RESERVE_AT);
            self.reserved += more * width;
            block.timestamps.reserve(more);
            for c in &mut block.columns {
                c.values.reserve(more);
            }
        }
        self.rows += 1;
        self.bytes += bytes;
        self.last = Some(b);
        Ok(())
    }

    /// The open block of `table`, opened if there is none. The last line's
    /// block is recognised by its name's bytes, without decoding them.
    fn block_for(
        &mut self,
        table: &Text<'_>,
        number: u64,
        db: &Database,
    ) -> Result<usize, WriteError> {
        if let Some(b) = self.last
            && self.blocks[b].table.as_bytes() == &*table.unescaped()
        {
            return Ok(b);
        }
        let table = utf8(table, number, "the table name")?;
        let lower = table.to_ascii_lowercase();
        if let Some(&b) = self.open.get(&lower) {
            return Ok(b);
        }
        if !self.tables.contains(&lower) {
            if self.tables.len() >= self.max_tables {
                return Err(WriteError::Line {
                    line: number,
                    message: format!(
                        "more than {} tables in one request (--ilp-max-tables); send fewer \
                         tables per request",
                        self.max_tables
                    ),
                });
            }
            self.tables.insert(lower.clone());
        }
        let nanos = db.table(&table).is_some_and(|t| {
            let schema = t.schema();
            schema
                .designated_timestamp
                .is_some_and(|d| schema.columns[d].column_type == ColumnType::TimestampNanos)
        });
        self.blocks.push(OpenBlock {
            table: table.into_owned(),
            rows: 0,
            columns: Vec::new(),
            index: HashMap::new(),
            hints: Vec::new(),
            timestamps: Vec::new(),
            lines: Vec::new(),
            any_timestamp: false,
            nanos,
            first_line: number,
        });
        let b = self.blocks.len() - 1;
        self.open.insert(lower, b);
        Ok(b)
    }

    /// Finds the column of each tag and field of `line` in block `b` (into
    /// `resolved`, `None` for a new one) and whether the line fits the
    /// block (see [`Fit`]).
    fn resolve(&mut self, b: usize, line: &Line<'_>, number: u64) -> Result<Fit, WriteError> {
        let block = &mut self.blocks[b];
        let count = line.tags.len() + line.fields.len();
        block.hints.resize(count, usize::MAX);
        self.resolved.clear();
        let tags = line.tags.iter().map(|(n, _)| (n, Kind::Symbol));
        let fields = line.fields.iter().map(|(n, v)| (n, Kind::of(v)));
        let mut new = 0usize;
        let mut conflict = false;
        for (position, (name, kind)) in tags.chain(fields).enumerate() {
            let c = block.find(name, position, number)?;
            match c {
                Some(c) if block.columns[c].kind != kind => conflict = true,
                Some(_) => {}
                None => new += 1,
            }
            self.resolved.push(c);
        }
        if block.rows == 0 {
            return Ok(Fit::Fits);
        }
        let fill = block
            .rows
            .saturating_mul(block.columns.len() + new)
            .saturating_mul(VALUE_OVERHEAD);
        Ok(match conflict || (new > 0 && fill > self.max_fill_bytes) {
            true => Fit::NewBlock,
            false => Fit::Fits,
        })
    }

    /// The blocks gathered so far (emptied), in order.
    pub fn finish(&mut self) -> Result<Vec<LineBlock>, WriteError> {
        self.open.clear();
        self.last = None;
        self.rows = 0;
        self.bytes = 0;
        self.reserved = 0;
        std::mem::take(&mut self.blocks)
            .into_iter()
            .map(OpenBlock::finish)
            .collect()
    }
}

impl OpenBlock {
    /// The column called `name` in the block, if it has one: the column
    /// the same position of the last line went to if its name has the same
    /// bytes (no decoding), else by its case-folded name.
    fn find(
        &self,
        name: &Text<'_>,
        position: usize,
        number: u64,
    ) -> Result<Option<usize>, WriteError> {
        let bytes = name.unescaped();
        if let Some(&h) = self.hints.get(position)
            && let Some(c) = self.columns.get(h)
            && c.name.as_bytes() == &*bytes
        {
            return Ok(Some(h));
        }
        let name = utf8(name, number, "a column name")?;
        Ok(self.index.get(&name.to_ascii_lowercase()).copied())
    }

    /// Adds the column `name` (NULL so far), or finds one added earlier in
    /// the same line; the caller checked its kind.
    fn add_column(
        &mut self,
        name: &Text<'_>,
        kind: Kind,
        number: u64,
    ) -> Result<usize, WriteError> {
        let name = utf8(name, number, "a column name")?;
        let lower = name.to_ascii_lowercase();
        if let Some(&c) = self.index.get(&lower) {
            return Ok(c);
        }
        if self.columns.len() >= MAX_COLUMNS {
            return Err(WriteError::Line {
                line: number,
                message: format!(
                    "more than {MAX_COLUMNS} columns for one table [table={}]",
                    self.table
                ),
            });
        }
        let values = match kind {
            Kind::Symbol => Values::Symbol {
                ids: ColumnBuilder::new(TypeCode::Symbol),
                index: HashMap::new(),
                strings: Vec::new(),
            },
            Kind::Decimal => Values::Decimal {
                values: Vec::new(),
                rows: 0,
            },
            k => Values::Plain(ColumnBuilder::new(k.type_code())),
        };
        self.columns.push(BlockColumn {
            name: name.into_owned(),
            kind,
            first_line: number,
            values,
        });
        let c = self.columns.len() - 1;
        self.index.insert(lower, c);
        Ok(c)
    }

    fn finish(self) -> Result<LineBlock, WriteError> {
        let rows = self.rows;
        let row_count = u32::try_from(rows).map_err(|_| WriteError::Line {
            line: self.first_line,
            message: format!("more than {} rows for one table", u32::MAX),
        })?;
        let mut columns = Vec::with_capacity(self.columns.len() + 1);
        let mut column_lines = Vec::with_capacity(self.columns.len());
        for mut c in self.columns {
            while c.values.len() < rows {
                c.values.push_null();
            }
            let data = match c.values {
                Values::Plain(b) => b.finish(NullEncoding::Bitmap),
                Values::Symbol { ids, strings, .. } => ids
                    .finish_local_symbols(StringList::from_strs(strings))
                    .map_err(|e| internal(&self.table, &c.name, e))?,
                Values::Decimal { values, rows } => {
                    decimal_column(&values, rows, &self.table, &c.name)?
                }
            };
            column_lines.push((c.name.clone(), c.first_line));
            columns.push(Column {
                name: Cow::Owned(c.name),
                data,
            });
        }
        if self.any_timestamp {
            let t = match self.nanos {
                true => TypeCode::TimestampNanos,
                false => TypeCode::Timestamp,
            };
            let mut b = ColumnBuilder::new(t);
            for ts in self.timestamps {
                let v = ts.map(|v| match self.nanos {
                    true => Value::TimestampNanos(v),
                    false => Value::Timestamp(v),
                });
                b.push(v.as_ref())
                    .map_err(|e| internal(&self.table, "timestamp", e))?;
            }
            columns.push(Column {
                name: Cow::Borrowed(""),
                data: b.finish(NullEncoding::Bitmap),
            });
        }
        Ok(LineBlock {
            block: TableBlock {
                name: Cow::Owned(self.table),
                row_count,
                columns,
            },
            first_line: self.first_line,
            column_lines,
            lines: self.lines,
        })
    }
}

fn internal(table: &str, column: &str, e: impl std::fmt::Display) -> WriteError {
    WriteError::Internal(format!(
        "building the column failed [table={table}, column={column}]: {e}"
    ))
}

/// A value met a column of another kind (checked before: a bug).
fn kind_bug(column: &str) -> WriteError {
    WriteError::Internal(format!(
        "a value reached a column of another type [column={column}]"
    ))
}

/// Adds a tag value; returns its payload bytes.
fn push_tag(column: &mut BlockColumn, value: &Text<'_>, line: u64) -> Result<usize, WriteError> {
    let Values::Symbol {
        ids,
        index,
        strings,
    } = &mut column.values
    else {
        return Err(kind_bug(&column.name));
    };
    let bytes = value.unescaped();
    let id = match index.get(&*bytes) {
        Some(&id) => id,
        None => {
            let text = utf8(value, line, "a tag value")?;
            let id = u32::try_from(strings.len()).unwrap_or(u32::MAX);
            strings.push(text.as_ref().into());
            index.insert(bytes.as_ref().into(), id);
            id
        }
    };
    let _ = ids.push(Some(&Value::Symbol(id)));
    Ok(bytes.len())
}

/// Adds a field value; returns its payload bytes.
fn push_field(
    column: &mut BlockColumn,
    value: &LineValue<'_>,
    line: u64,
    table: &str,
) -> Result<usize, WriteError> {
    let bad = |message: String| WriteError::Line {
        line,
        message: format!("{message} [table={table}, column={}]", column.name),
    };
    if let Values::Decimal { values, rows } = &mut column.values {
        let d = match value {
            LineValue::DecimalText(text) => parse_decimal(text).map_err(bad)?,
            LineValue::Decimal { scale, mantissa } => Some((
                decimal_from_be(mantissa)
                    .ok_or_else(|| bad("a decimal wider than 256 bits".into()))?,
                *scale,
            )),
            _ => return Err(kind_bug(&column.name)),
        };
        if let Some((_, scale)) = d
            && u32::from(scale) > MAX_DECIMAL_SCALE
        {
            return Err(bad(format!(
                "decimal scale {scale} is larger than {MAX_DECIMAL_SCALE}"
            )));
        }
        if let Some((v, s)) = d {
            values.push((*rows, v, s, line));
        }
        *rows += 1;
        return Ok(32);
    }
    let Values::Plain(b) = &mut column.values else {
        return Err(kind_bug(&column.name));
    };
    let (v, bytes) = match value {
        LineValue::Long(v) => (Value::Long(*v), 8),
        LineValue::UnsignedLong(v) => (
            Value::Long(
                i64::try_from(*v)
                    .map_err(|_| bad(format!("unsigned integer {v}u does not fit a LONG")))?,
            ),
            8,
        ),
        LineValue::Double(v) => (Value::Double(*v), 8),
        LineValue::Boolean(v) => (Value::Boolean(*v), 1),
        LineValue::String(s) => {
            let s = utf8(s, line, "a string value")?;
            let n = s.len();
            b.push(Some(&Value::Varchar(&s)))
                .map_err(|e| bad(e.to_string()))?;
            return Ok(n + 4);
        }
        LineValue::Timestamp(Timestamp::Micros(v)) => (Value::Timestamp(*v), 8),
        LineValue::Timestamp(Timestamp::Nanos(v)) => (Value::TimestampNanos(*v), 8),
        LineValue::Array(a) => {
            let shape: Vec<u32> = a.shape().collect();
            let v = match a.element {
                ArrayElement::Double => Value::DoubleArray {
                    shape,
                    values: a.doubles().collect(),
                },
                ArrayElement::Long => Value::LongArray {
                    shape,
                    values: a.longs().collect(),
                },
            };
            (v, a.data.len() + 4 * a.dimensions() + 1)
        }
        LineValue::DecimalText(_) | LineValue::Decimal { .. } => {
            return Err(kind_bug(&column.name));
        }
    };
    b.push(Some(&v)).map_err(|e| bad(e.to_string()))?;
    Ok(bytes)
}

/// A big-endian two's-complement mantissa of 1 to 32 bytes.
fn decimal_from_be(mantissa: &[u8]) -> Option<i256> {
    if mantissa.is_empty() || mantissa.len() > 32 {
        return None;
    }
    let fill = if mantissa[0] & 0x80 != 0 { 0xff } else { 0 };
    let mut be = [fill; 32];
    be[32 - mantissa.len()..].copy_from_slice(mantissa);
    Some(i256::from_be_bytes(be))
}

/// A text decimal (`-12.5`, `1e-3`): its unscaled value and scale; `None`
/// for `NaN` (NULL).
fn parse_decimal(text: &str) -> Result<Option<(i256, u8)>, String> {
    let bad = || format!("cannot read decimal {text:?}");
    if text.eq_ignore_ascii_case("nan") {
        return Ok(None);
    }
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => (&text[..i], text[i + 1..].parse::<i32>().map_err(|_| bad())?),
        None => (text, 0),
    };
    let (negative, digits) = match mantissa.as_bytes().first() {
        Some(b'-') => (true, &mantissa[1..]),
        Some(b'+') => (false, &mantissa[1..]),
        _ => (false, mantissa),
    };
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    if whole.is_empty() && fraction.is_empty() {
        return Err(bad());
    }
    // Beyond these no 256-bit value at a scale of at most 76 exists (and
    // scaling a zero by a huge exponent must not loop).
    if !(-MAX_DECIMAL_EXPONENT..=MAX_DECIMAL_EXPONENT).contains(&exponent) {
        return Err(format!(
            "decimal {text:?} has an exponent outside ±{MAX_DECIMAL_EXPONENT}"
        ));
    }
    let ten = i256::from_i128(10);
    let mut value = i256::ZERO;
    for d in whole.bytes().chain(fraction.bytes()) {
        if !d.is_ascii_digit() {
            return Err(bad());
        }
        value = value
            .checked_mul(ten)
            .and_then(|v| v.checked_add(i256::from_i128(i128::from(d - b'0'))))
            .ok_or_else(|| format!("decimal {text:?} is wider than 256 bits"))?;
    }
    let mut scale = i64::try_from(fraction.len()).map_err(|_| bad())? - i64::from(exponent);
    while scale < 0 {
        value = value
            .checked_mul(ten)
            .ok_or_else(|| format!("decimal {text:?} is wider than 256 bits"))?;
        scale += 1;
    }
    let scale = u8::try_from(scale)
        .ok()
        .filter(|s| u32::from(*s) <= MAX_DECIMAL_SCALE)
        .ok_or_else(|| {
            format!("decimal {text:?} has more than {MAX_DECIMAL_SCALE} digits after the point")
        })?;
    Ok(Some((
        if negative {
            value.wrapping_neg()
        } else {
            value
        },
        scale,
    )))
}

/// A decimal column of `rows` rows at the largest scale its values were
/// sent with: DECIMAL128 if that scale and every value fit one, else
/// DECIMAL256.
fn decimal_column(
    values: &[(usize, i256, u8, u64)],
    rows: usize,
    table: &str,
    column: &str,
) -> Result<quiver_qwp::ColumnData<'static>, WriteError> {
    let scale = values.iter().map(|(_, _, s, _)| *s).max().unwrap_or(0);
    let ten = i256::from_i128(10);
    let mut rescaled = Vec::with_capacity(values.len());
    for &(row, v, s, line) in values {
        let mut v = v;
        for _ in s..scale {
            v = v.checked_mul(ten).ok_or_else(|| WriteError::Line {
                line,
                message: format!(
                    "the decimal does not fit 256 bits at scale {scale}, the largest scale of \
                     the column in this request [table={table}, column={column}]"
                ),
            })?;
        }
        rescaled.push((row, v));
    }
    let limit = i256::from_i128(10i128.pow(u32::from(MAX_DECIMAL128_DIGITS)));
    let narrow = scale <= MAX_DECIMAL128_DIGITS
        && rescaled
            .iter()
            .all(|(_, v)| v.checked_abs().is_some_and(|a| a < limit));
    let mut b = ColumnBuilder::new(match narrow {
        true => TypeCode::Decimal128,
        false => TypeCode::Decimal256,
    })
    .decimal_scale(scale);
    let mut next = rescaled.iter().peekable();
    for row in 0..rows {
        let v = match next.peek() {
            Some((r, _)) if *r == row => next.next().map(|(_, v)| *v),
            _ => None,
        };
        let v = v.map(|v| match v.to_i128() {
            Some(small) if narrow => Value::Decimal128 {
                scale,
                unscaled: small,
            },
            _ => Value::Decimal256 {
                scale,
                unscaled: v.to_le_bytes(),
            },
        });
        b.push(v.as_ref()).map_err(|e| internal(table, column, e))?;
    }
    Ok(b.finish(NullEncoding::Bitmap))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_decimals() {
        let d = |s: &str| {
            parse_decimal(s)
                .unwrap()
                .map(|(v, s)| (v.to_i128().unwrap(), s))
        };
        assert_eq!(d("1.25"), Some((125, 2)));
        assert_eq!(d("-0.001"), Some((-1, 3)));
        assert_eq!(d("+7"), Some((7, 0)));
        assert_eq!(d("1.5e2"), Some((150, 0)));
        assert_eq!(d("15e-3"), Some((15, 3)));
        assert_eq!(d(".5"), Some((5, 1)));
        assert_eq!(d("NaN"), None);
        for bad in ["", "-", ".", "1..2", "1e", "Infinity", "1x"] {
            assert!(parse_decimal(bad).is_err(), "{bad}");
        }
        assert!(parse_decimal(&"9".repeat(80)).is_err());
        assert!(parse_decimal("1e-77").is_err());
        // A huge exponent is refused before any scaling (zero included).
        assert!(parse_decimal("0e999999").is_err());
        assert!(parse_decimal("1e-999999").is_err());
        assert_eq!(d("0e100"), Some((0, 0)));
    }

    #[test]
    fn binary_mantissas_sign_extend() {
        assert_eq!(decimal_from_be(&[0xff]).unwrap().to_i128(), Some(-1));
        assert_eq!(decimal_from_be(&[0x00, 0x80]).unwrap().to_i128(), Some(128));
        assert_eq!(
            decimal_from_be(&[0x80, 0x00]).unwrap().to_i128(),
            Some(-32768)
        );
        assert!(decimal_from_be(&[]).is_none() && decimal_from_be(&[0; 33]).is_none());
    }
}
