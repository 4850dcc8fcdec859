//! The storage engine's hard limits, each shared by the code that writes a
//! value and the code that reads it back, so nothing is accepted (and
//! acknowledged) that recovery would refuse. A request past a limit gets
//! [`crate::StorageError::LimitExceeded`] before anything is written.

/// Largest WAL record body (1 GiB). The writer refuses a record past it;
/// recovery treats a header claiming more as damage. Recovery holds at most
/// one record body in memory at a time.
pub const MAX_RECORD_BODY_LEN: usize = 1 << 30;

/// Most parts (table batches) in one transaction (1,048,576).
pub const MAX_TRANSACTION_PARTS: usize = 1 << 20;

/// Most rows in one part (`u32::MAX`, also the bound WAL rows decoding
/// checks, so Arrow's size arithmetic cannot overflow).
pub const MAX_PART_ROWS: usize = u32::MAX as usize;

/// Most entries in one SYMBOL column's dictionary (keys are `u32`; the top
/// values stay free) (268,435,456).
pub const MAX_SYMBOLS_PER_COLUMN: usize = 1 << 28;

/// Most tables in a database (1,000,000).
pub const MAX_TABLES: usize = 1_000_000;

/// Most segments one manifest lists (16,777,216).
pub const MAX_SEGMENTS: usize = 1 << 24;
