//! Ingest errors as the official Python client sees them: a value of the
//! wrong type for an existing LONG column is rejected with SCHEMA_MISMATCH
//! (0x03), the client raises its rejection error carrying the server's
//! status and message (naming the table, the column and both types),
//! nothing of the failing frame is stored, earlier commits remain, and a
//! new connection works afterwards. Driven by `tests/py/errors.py`.

mod common;
mod stored;

use arrow::datatypes::TimeUnit;
use common::{TestServer, run_python_ok};
use quiver_storage::ColumnType as T;
use stored::{owned, read_table};

/// `BASE_NS` in the script.
const BASE_NS: i64 = 1_700_000_000_000_000_000;
const SCHEMA_MISMATCH: u8 = 0x03;

/// The value printed as `rejected: <key>=<value>`.
fn field<'a>(out: &'a str, key: &str) -> Option<&'a str> {
    let prefix = format!("rejected: {key}=");
    out.lines().find_map(|l| l.strip_prefix(prefix.as_str()))
}

/// Asserts the server's message names the table, the column, the stored
/// type and the sent type.
fn assert_names_everything(message: &str, sent: &str, out: &str) {
    for word in ["err_target", "qty", "LONG", sent] {
        assert!(
            message.contains(word),
            "rejection message does not name {word:?}: {message:?}\nscript output:\n{out}"
        );
    }
}

/// Runs the script for `case` and checks what storage holds afterwards:
/// the first commit and the row sent on a new connection, nothing of the
/// rejected frame.
fn run_case(case: &str) -> (TestServer, String) {
    let server = TestServer::start();
    let out = run_python_ok("errors.py", &[&server.port.to_string(), case]);
    assert!(
        !out.contains("NOT REJECTED"),
        "the frame was accepted:\n{out}\nserver log:\n{}",
        server.log_text()
    );
    assert!(
        out.contains("recovered"),
        "a new connection did not work after the rejection:\n{out}"
    );

    let db = server.storage();
    let t = read_table(&db, "err_target");
    t.assert_types(&[
        ("qty", T::Long),
        ("note", T::Varchar),
        ("timestamp", T::TimestampNanos),
    ]);
    assert_eq!(
        t.ints("qty"),
        [Some(1), Some(3)],
        "err_target.qty: the first commit and the row of the new connection, \
         nothing of the rejected frame"
    );
    assert_eq!(t.strs("note"), owned(&[Some("first"), Some("third")]));
    assert_eq!(
        t.times("timestamp", TimeUnit::Nanosecond),
        [Some(BASE_NS), Some(BASE_NS + 3)]
    );
    // The other table of the rejected frame got no rows (the server may
    // have created it empty).
    if let Some(side) = db.snapshot("err_side") {
        assert_eq!(
            side.row_count(),
            0,
            "err_side holds rows of the rejected frame"
        );
    }
    (server, out)
}

/// The row API's rejection: `QuestDBServerRejectionError` with a
/// `SenderError` (status 3, SchemaMismatch, the failing frame's sequence).
fn assert_row_rejection(out: &str, sent: &str) {
    assert_eq!(
        field(out, "exc"),
        Some("QuestDBServerRejectionError"),
        "script output:\n{out}"
    );
    assert_eq!(field(out, "code"), Some("ServerRejection"), "{out}");
    assert_eq!(
        field(out, "status"),
        Some(SCHEMA_MISMATCH.to_string().as_str()),
        "{out}"
    );
    assert_eq!(field(out, "category"), Some("SchemaMismatch"), "{out}");
    // Frame 0 was the first commit; the rejected frame is frame 1.
    assert_eq!(field(out, "sequence"), Some("1"), "{out}");
    let message = field(out, "message").expect("a message");
    assert_names_everything(message, sent, out);
}

#[test]
fn varchar_into_long_is_a_schema_mismatch() {
    let (_server, out) = run_case("varchar");
    assert_row_rejection(&out, "VARCHAR");
}

#[test]
fn double_array_into_long_is_a_schema_mismatch() {
    let (_server, out) = run_case("array");
    assert_row_rejection(&out, "DOUBLE_ARRAY");
}

#[test]
fn symbol_into_long_is_a_schema_mismatch() {
    let (_server, out) = run_case("symbol");
    assert_row_rejection(&out, "SYMBOL");
}

/// `dataframe()` reports server rejections as a plain `QuestDBError` whose
/// text carries the status and the server's message.
#[test]
fn dataframe_rejection_surfaces_status_and_message() {
    let (_server, out) = run_case("dataframe");
    assert_eq!(field(&out, "exc"), Some("QuestDBError"), "{out}");
    let message = field(&out, "message").expect("a message");
    assert!(
        message.contains(&format!("status=0x{SCHEMA_MISMATCH:02x}")),
        "no SCHEMA_MISMATCH status in {message:?}"
    );
    assert_names_everything(message, "VARCHAR", &out);
}
