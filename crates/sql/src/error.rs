//! Query errors: what kind (so the wire layer can pick a status) and a
//! message naming what went wrong.

use datafusion::error::DataFusionError;

/// What kind of failure a query met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QueryErrorKind {
    /// The SQL does not parse, names something that does not exist, or
    /// does not type-check.
    Invalid,
    /// A construct this engine does not support yet.
    Unsupported,
    /// The query was cancelled.
    Cancelled,
    /// A resource limit (memory, time) was reached.
    Limit,
    /// Anything else (storage failures, bugs).
    Internal,
}

/// A failed statement.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct QueryError {
    /// What kind of failure.
    pub kind: QueryErrorKind,
    /// What went wrong.
    pub message: String,
}

impl QueryError {
    /// An error of `kind`.
    pub fn new(kind: QueryErrorKind, message: impl Into<String>) -> Self {
        QueryError {
            kind,
            message: message.into(),
        }
    }
}

impl From<DataFusionError> for QueryError {
    fn from(e: DataFusionError) -> Self {
        let kind = match e.find_root() {
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..) => QueryErrorKind::Invalid,
            DataFusionError::NotImplemented(_) => QueryErrorKind::Unsupported,
            DataFusionError::ResourcesExhausted(_) => QueryErrorKind::Limit,
            // A value that does not convert or compute (a bad cast, a
            // division by zero) is the statement's fault, as in QuestDB.
            DataFusionError::Execution(_) => QueryErrorKind::Invalid,
            DataFusionError::ArrowError(e, _)
                if matches!(
                    **e,
                    arrow::error::ArrowError::CastError(_)
                        | arrow::error::ArrowError::ParseError(_)
                        | arrow::error::ArrowError::DivideByZero
                        | arrow::error::ArrowError::ArithmeticOverflow(_)
                        | arrow::error::ArrowError::InvalidArgumentError(_)
                ) =>
            {
                QueryErrorKind::Invalid
            }
            _ => QueryErrorKind::Internal,
        };
        // DataFusion's messages carry a kind prefix ("Error during
        // planning: ...") that is noise to a client.
        let message = match e.find_root() {
            DataFusionError::Plan(m)
            | DataFusionError::NotImplemented(m)
            | DataFusionError::Execution(m) => m.clone(),
            DataFusionError::SQL(e, _) => e.to_string(),
            DataFusionError::SchemaError(e, _) => e.to_string(),
            other => other.to_string(),
        };
        QueryError { kind, message }
    }
}

impl From<quiver_storage::StorageError> for QueryError {
    fn from(e: quiver_storage::StorageError) -> Self {
        let kind = match e.is_client_fault() {
            true => QueryErrorKind::Invalid,
            false => QueryErrorKind::Internal,
        };
        QueryError::new(kind, e.to_string())
    }
}
