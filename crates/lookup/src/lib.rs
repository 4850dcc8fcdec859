//! `quiver-lookup`: point lookups by row id. Vector search and other index
//! paths produce a few hundred scattered row ids and need the full rows back
//! in microseconds; this crate serves them from a memory-mapped Arrow IPC
//! sidecar sorted by key, with a SQLite sidecar as the parity oracle.
//!
//! | piece | what it is |
//! |---|---|
//! | [`PointLookupProvider`] | the trait: `schema()` and async `fetch_by_keys` |
//! | [`FeatherSidecarBuilder`] | writes a sidecar from batches in any key order, bounded memory, atomic publish |
//! | [`FeatherLookupProvider`] | maps a sidecar and answers lookups zero-copy ([`OpenOptions`] to verify or reject foreign files) |
//! | [`SqliteSidecarBuilder`], [`SqliteLookupProvider`] | the same contract on SQLite (`INTEGER PRIMARY KEY`), for the types SQLite can hold |
//! | [`format`] | the file format: byte map, footer metadata, invariants |
//! | [`key`] | the `u64` key domain for Int32/Int64/UInt32/UInt64 keys |
//!
//! Both providers are also DataFusion [`TableProvider`]s
//! ([`scan`] module), so a sidecar can be registered in a `SessionContext`
//! and queried with SQL.
//!
//! # The lookup contract
//!
//! `fetch_by_keys(keys, key_col, projection)` returns only rows whose key is
//! in `keys`; missing keys are dropped; the rows come back ascending by key
//! (in the `u64` domain) and de-duplicated, as one batch (or no batch when
//! nothing matched); `projection` indexes into `schema()` in the order
//! given, and an out-of-range index is an error. `key_col` must name the
//! provider's key column.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use arrow::array::{AsArray, Int64Array, RecordBatch, StringArray};
//! use arrow::datatypes::{DataType, Field, Schema, Int64Type};
//! use quiver_lookup::{FeatherLookupProvider, FeatherSidecarBuilder, PointLookupProvider};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let path = dir.path().join("payload.arrow");
//! let schema = Arc::new(Schema::new(vec![
//!     Field::new("rowid", DataType::Int64, false),
//!     Field::new("title", DataType::Utf8, true),
//! ]));
//!
//! // Build from batches in any order; the builder sorts by key.
//! let mut builder = FeatherSidecarBuilder::begin(&path, schema.clone(), 0, &[1])?;
//! for (ids, titles) in [([30, 10], ["thirty", "ten"]), ([20, 40], ["twenty", "forty"])] {
//!     builder.push_batch(&RecordBatch::try_new(schema.clone(), vec![
//!         Arc::new(Int64Array::from(ids.to_vec())),
//!         Arc::new(StringArray::from(titles.to_vec())),
//!     ])?)?;
//! }
//! builder.finish()?;
//!
//! // Any process can map the published file.
//! let sidecar = FeatherLookupProvider::open(&path)?;
//! let rows = sidecar.fetch_by_keys(&[40, 10, 99, 10], "rowid", None).await?;
//! assert_eq!(rows.len(), 1);
//! assert_eq!(rows[0].column(0).as_primitive::<Int64Type>().values().as_ref(), &[10, 40]);
//! assert_eq!(rows[0].column(1).as_string::<i32>().value(1), "forty");
//! # Ok(())
//! # }
//! ```
//!
//! # Safety
//!
//! `unsafe` appears in three places. The `mmap` of a sidecar (in
//! [`feather`]) relies on the file not being modified while mapped, which
//! Quiver's writers guarantee by publishing through a rename. Everything
//! read from the mapping is bounds-checked first, so corrupt, truncated or
//! foreign files are errors, never panics. The lookup gather (`gather.rs`)
//! issues CPU prefetch hints, which cannot fault, and builds string arrays
//! from whole values of already-valid arrays without re-validating their
//! UTF-8 (both measured: they are most of the speed of a K = 1000 lookup).
//!
//! [`TableProvider`]: datafusion::catalog::TableProvider

#![warn(missing_docs)]

pub mod builder;
mod dictionary;
pub mod error;
pub mod feather;
pub mod format;
mod gather;
pub mod key;
pub mod scan;
pub mod sqlite;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use async_trait::async_trait;

pub use builder::{BuildOptions, BuildReport, FeatherSidecarBuilder};
pub use error::{BuildError, Error, FetchError, OpenError};
pub use feather::{FeatherLookupProvider, OpenOptions};
pub use format::DEFAULT_BATCH_ROWS;
pub use key::KeyType;
pub use scan::LookupScanExec;
pub use sqlite::{SqliteLookupProvider, SqliteSidecarBuilder};

/// Fetches full rows by key. See the [crate docs](crate) for the contract.
#[async_trait]
pub trait PointLookupProvider: Send + Sync + std::fmt::Debug {
    /// The provider's schema: the key column (field 0), then the values.
    fn schema(&self) -> SchemaRef;

    /// Returns the rows whose key is in `keys` (`u64` domain, any order,
    /// duplicates allowed), ascending by key and de-duplicated, projected to
    /// `projection` (indices into [`Self::schema`]). Missing keys are
    /// dropped; the result is empty when nothing matched. `key_col` must be
    /// the key column's name.
    async fn fetch_by_keys(
        &self,
        keys: &[u64],
        key_col: &str,
        projection: Option<&[usize]>,
    ) -> Result<Vec<RecordBatch>, FetchError>;
}

fn check_key_col(requested: &str, key_column: &str) -> Result<(), FetchError> {
    if requested == key_column {
        Ok(())
    } else {
        Err(FetchError::UnknownKeyColumn {
            requested: requested.to_string(),
            key_column: key_column.to_string(),
        })
    }
}

#[async_trait]
impl PointLookupProvider for FeatherLookupProvider {
    fn schema(&self) -> SchemaRef {
        FeatherLookupProvider::schema(self)
    }

    async fn fetch_by_keys(
        &self,
        keys: &[u64],
        key_col: &str,
        projection: Option<&[usize]>,
    ) -> Result<Vec<RecordBatch>, FetchError> {
        check_key_col(key_col, self.key_column())?;
        Ok(self.fetch(keys, projection)?.into_iter().collect())
    }
}

#[async_trait]
impl PointLookupProvider for SqliteLookupProvider {
    fn schema(&self) -> SchemaRef {
        SqliteLookupProvider::schema(self)
    }

    async fn fetch_by_keys(
        &self,
        keys: &[u64],
        key_col: &str,
        projection: Option<&[usize]>,
    ) -> Result<Vec<RecordBatch>, FetchError> {
        check_key_col(key_col, self.key_column())?;
        Ok(self.fetch(keys, projection).await?.into_iter().collect())
    }
}
