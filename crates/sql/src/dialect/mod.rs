//! QuestDB's SQL dialect on DataFusion: the functions, table functions and
//! statement forms QuestDB users send that DataFusion lacks. Each lives in
//! its own module and is registered on every statement's session by
//! [`register`]; nothing here reads storage directly.

mod long_sequence;

use std::sync::Arc;

use datafusion::execution::context::SessionState;

/// Adds the dialect's functions to a statement's session.
pub fn register(state: &mut SessionState) {
    state.register_udtf("long_sequence", Arc::new(long_sequence::LongSequence));
}

/// Whether `name` is a table function (so a statement naming it reads no
/// stored table).
pub fn is_table_function(state: &SessionState, name: &str) -> bool {
    state.table_functions().contains_key(name)
}
