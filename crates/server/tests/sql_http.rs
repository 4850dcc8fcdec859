//! `/exec` and `/exp` through plain HTTP GETs, as curl and tools send them,
//! against the real server: every type's JSON and CSV text checked against
//! text computed from the values written, limit/count/timings, errors as
//! 400 with QuestDB's JSON shape, DDL and INSERT answers, a 3,000,000-row
//! export streamed to the end and one abandoned mid-way. The checks run in
//! `tests/py/sql_http.py`, which exits non-zero on any difference.

mod common;

use common::{TestServer, run_python_ok};

#[test]
fn exec_and_exp_answer_as_questdb_does() {
    let server = TestServer::start();
    let out = run_python_ok("sql_http.py", &[&server.port.to_string()]);
    assert!(
        out.contains("ok"),
        "script output:\n{out}\nserver log:\n{}",
        server.log_text()
    );
}
