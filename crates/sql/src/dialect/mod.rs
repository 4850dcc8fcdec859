//! QuestDB's SQL dialect on DataFusion: the functions, table functions and
//! statement forms QuestDB users send that DataFusion lacks. Each lives in
//! its own module and is registered on every statement's session by
//! [`register`]. Only the catalog functions read the database, and only
//! its catalog (names, columns, types), never rows.

pub mod cast;
pub mod catalog;
pub mod clause_markers;
mod clock;
mod compensated_sum;
pub mod latest_on;
mod long_sequence;
pub mod planner;
pub mod rewrite;
pub mod sample_by;
pub(crate) mod time_arithmetic;
pub mod time_joins;
pub mod time_ranges;
pub mod time_zones;
mod timestamp_integers;

pub use timestamp_integers::analyzer_rules;

use std::sync::Arc;

use datafusion::execution::FunctionRegistry;
use datafusion::execution::context::SessionState;
use quiver_storage::Database;

/// Adds the dialect's functions to a statement's session.
pub fn register(state: &mut SessionState, db: &Arc<Database>) {
    use datafusion::logical_expr::ScalarUDF;
    state.register_udtf("long_sequence", Arc::new(long_sequence::LongSequence));
    state.register_udtf("tables", Arc::new(catalog::Tables(Arc::clone(db))));
    state.register_udtf(
        "table_columns",
        Arc::new(catalog::TableColumns(Arc::clone(db))),
    );
    let _ = state.register_expr_planner(Arc::new(timestamp_integers::TimestampIntegerPlanner));
    for udf in [
        ScalarUDF::new_from_impl(cast::QuestdbCast::new()),
        ScalarUDF::new_from_impl(clock::Clock::now()),
        ScalarUDF::new_from_impl(clock::Clock::systimestamp()),
        ScalarUDF::new_from_impl(time_arithmetic::TimestampRound::floor()),
        ScalarUDF::new_from_impl(time_arithmetic::TimestampRound::ceil()),
        ScalarUDF::new_from_impl(time_arithmetic::DateAdd::new()),
        ScalarUDF::new_from_impl(time_arithmetic::DateDiff::new()),
        ScalarUDF::new_from_impl(time_zones::ZoneConversion::to_timezone()),
        ScalarUDF::new_from_impl(time_zones::ZoneConversion::to_utc()),
    ] {
        let _ = state.register_udf(Arc::new(udf));
    }
    for udaf in [
        compensated_sum::CompensatedSum::kahan(),
        compensated_sum::CompensatedSum::neumaier(),
    ] {
        let udaf = datafusion::logical_expr::AggregateUDF::new_from_impl(udaf);
        let _ = state.register_udaf(Arc::new(udaf));
    }
    // QuestDB's name for the sample variance.
    let variance = datafusion::functions_aggregate::variance::var_samp_udaf()
        .as_ref()
        .clone()
        .with_aliases(["variance"]);
    let _ = state.register_udaf(Arc::new(variance));
    use time_arithmetic::Field;
    for field in [
        Field::Year,
        Field::Month,
        Field::Day,
        Field::Hour,
        Field::Minute,
        Field::Second,
        Field::DayOfWeek,
    ] {
        let udf = ScalarUDF::new_from_impl(time_arithmetic::CalendarField::new(field));
        let _ = state.register_udf(Arc::new(udf));
    }
}

/// Whether `name` is a table function (so a statement naming it reads no
/// stored table).
pub fn is_table_function(state: &SessionState, name: &str) -> bool {
    state.table_functions().contains_key(name)
}
