//! The official Python client's query API (`db.query()` over `/read/v1`)
//! against the real server at default settings: every column type the
//! DataFrame path sends read back with the values sent, a result of
//! 200,000 rows over many batches in row order, SQL (aggregates, GROUP BY,
//! ORDER BY, LIMIT, expressions) checked against pandas over the same data,
//! every bind type the client sends, CREATE TABLE and INSERT through
//! `execute()`, SAMPLE BY with FILL, keys, FROM/TO and a time zone,
//! LATEST ON and ASOF/LT JOIN checked against pandas on the same rows,
//! and errors that leave the connection usable. The comparisons run in
//! `tests/py/query_roundtrip.py`, which exits non-zero on any difference.

mod common;

use common::{TestServer, run_python_ok};

fn run_case(case: &str) {
    let server = TestServer::start();
    let out = run_python_ok("query_roundtrip.py", &[&server.port.to_string(), case]);
    assert!(
        out.contains(&format!("ok {case}")),
        "script output:\n{out}\nserver log:\n{}",
        server.log_text()
    );
}

#[test]
fn every_type_reads_back_as_sent() {
    run_case("types");
}

#[test]
fn large_result_streams_in_row_order() {
    run_case("large");
}

#[test]
fn sql_results_match_pandas() {
    run_case("sql");
}

#[test]
fn every_client_bind_type_round_trips_and_filters() {
    run_case("binds");
}

#[test]
fn create_table_and_insert_write_through_the_wal() {
    run_case("writes");
}

#[test]
fn time_series_queries_match_pandas() {
    run_case("timeseries");
}

#[test]
fn errors_leave_the_connection_usable() {
    run_case("errors");
}
