//! A group of uncommitted rows being built into one transaction: a QWP
//! connection's deferred frames, or one line-protocol request.
//!
//! [`PendingGroup::add`] takes table blocks through the whole ingest path
//! (plan, budget, conversion, DDL; see the parent module) and appends
//! their batches; the group's bytes count against its own bound and the
//! server-wide uncommitted budget until it is taken for commit or dropped.
//! It does not commit or ack: its owner does.

use quiver_qwp::{StatusCode, SymbolDictionary, TableBlock};
use quiver_storage::{Database, StorageError, Transaction, UncommittedReservation};

use super::IngestError;
use super::convert::BlockConverter;
use super::plan::{self, FrameLimits};

/// Uncommitted rows and the budget they hold.
pub struct PendingGroup {
    txn: Transaction,
    reservation: Option<UncommittedReservation>,
    /// Most converted bytes the group may hold.
    max_bytes: usize,
    /// What a client does when the group is full (ends the error message).
    full_hint: &'static str,
}

impl PendingGroup {
    /// An empty group of at most `max_bytes` converted bytes; `full_hint`
    /// tells a client what to do when it is full.
    pub fn new(max_bytes: usize, full_hint: &'static str) -> Self {
        PendingGroup {
            txn: Transaction::new(),
            reservation: None,
            max_bytes,
            full_hint,
        }
    }

    /// Whether the group holds no rows.
    pub fn is_empty(&self) -> bool {
        self.txn.is_empty()
    }

    /// Rows held.
    pub fn row_count(&self) -> usize {
        self.txn.row_count()
    }

    /// Plans, converts and appends `blocks` (resolving SYMBOL ids through
    /// `dictionary`). Nothing of them is added if they are refused; tables
    /// and columns they create stay created.
    pub async fn add(
        &mut self,
        db: &Database,
        converter: &mut BlockConverter,
        blocks: &[TableBlock<'_>],
        dictionary: &SymbolDictionary,
        limits: &FrameLimits,
    ) -> Result<(), IngestError> {
        // Everything is checked before anything changes (see `plan`).
        let plan = plan::plan_frame(db, blocks, dictionary, limits, self.txn.part_count())?;
        self.reserve(db, plan.bytes)?;
        let prepared = converter.prepare(&plan, blocks, dictionary)?;
        let tables = converter.apply_ddl(&plan).await?;
        let mut txn = Transaction::new();
        for (bp, prepared) in plan.blocks.iter().zip(prepared) {
            let table = &tables[bp.table];
            let batch = converter.finish(
                table,
                &blocks[bp.block],
                bp,
                &plan.tables[bp.table].schema,
                prepared,
                dictionary,
            )?;
            txn.add(table.clone(), batch)?;
        }
        self.txn.append(txn)?;
        Ok(())
    }

    /// Writes the rows to the WAL ahead of the commit ([`Database::stage`]).
    pub fn stage(&mut self, db: &Database) -> Result<(), IngestError> {
        Ok(db.stage(&mut self.txn)?)
    }

    /// The transaction, for commit; the group is empty again and its rows
    /// leave the uncommitted budget for the committer's.
    pub fn take(&mut self) -> Transaction {
        self.reservation = None;
        std::mem::take(&mut self.txn)
    }

    /// Drops every row (rolled back).
    pub fn clear(&mut self) {
        self.txn = Transaction::new();
        self.reservation = None;
    }

    /// Counts `bytes` more against the group's bound and the server-wide
    /// budget.
    fn reserve(&mut self, db: &Database, bytes: usize) -> Result<(), IngestError> {
        let held = self.reservation.as_ref().map_or(0, |r| r.bytes());
        if held.saturating_add(bytes) > self.max_bytes {
            return Err(IngestError::new(
                StatusCode::PARSE_ERROR,
                format!(
                    "uncommitted rows would take more than {} bytes once converted; {}",
                    self.max_bytes, self.full_hint
                ),
            ));
        }
        let budget = |e: StorageError| {
            IngestError::new(
                StatusCode::WRITE_ERROR,
                format!("the server is holding too many uncommitted rows; retry later ({e})"),
            )
        };
        match &mut self.reservation {
            Some(r) => r.grow(bytes).map_err(budget),
            None => {
                self.reservation = Some(db.reserve_uncommitted(bytes).map_err(budget)?);
                Ok(())
            }
        }
    }
}
