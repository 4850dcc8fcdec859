//! Decoder limits (SPEC §3.4, §4, §9.6).
//!
//! Every count or length read from the wire is checked against the bytes that
//! remain *and* one of these limits before anything is allocated. The
//! defaults are the reference server's; a server may lower them.

/// Limits a decoder enforces. [`Limits::default`] gives the protocol's
/// reference values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest whole message, header included (default 16 MiB).
    pub max_message_len: u64,
    /// Largest table or column name in bytes (default 127).
    pub max_name_len: u64,
    /// Most rows in one ingress table block (default 1,000,000).
    pub max_rows_per_block: u64,
    /// Most rows in one egress RESULT_BATCH (default 1,048,576, the client cap).
    pub max_rows_per_batch: u64,
    /// Most columns in one table block or result schema (default 2,048).
    pub max_columns: u64,
    /// Most entries in a connection's symbol dictionary (default 2,000,000
    /// on ingress; the egress client allows 8,388,608).
    pub max_symbol_entries: u64,
    /// Largest single symbol entry in bytes (default 1 MiB).
    pub max_symbol_len: u64,
    /// Highest array rank (default 32).
    pub max_array_rank: u8,
    /// Largest SQL text in a QUERY_REQUEST (default 1 MiB).
    pub max_sql_len: u64,
    /// Most binds in a QUERY_REQUEST (default 2,048, the server's limit).
    pub max_binds: u64,
    /// Largest decompressed zstd RESULT_BATCH body (default 64 MiB).
    pub max_decompressed_len: u64,
    /// Largest error message in an ack or QUERY_ERROR (1,024 bytes).
    pub max_error_message_len: u64,
}

/// The largest message the protocol allows (16 MiB).
pub const MAX_MESSAGE_LEN: u64 = 16 * 1024 * 1024;
/// Error messages are cut to this many UTF-8 bytes (SPEC §3.3).
pub const MAX_ERROR_MESSAGE_LEN: usize = 1024;

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_len: MAX_MESSAGE_LEN,
            max_name_len: 127,
            max_rows_per_block: 1_000_000,
            max_rows_per_batch: 1_048_576,
            max_columns: 2048,
            max_symbol_entries: 2_000_000,
            max_symbol_len: 1024 * 1024,
            max_array_rank: 32,
            max_sql_len: 1024 * 1024,
            max_binds: 2048,
            max_decompressed_len: 64 * 1024 * 1024,
            max_error_message_len: MAX_ERROR_MESSAGE_LEN as u64,
        }
    }
}

impl Limits {
    /// The limits the official egress client applies to server frames:
    /// larger messages (64 MiB) and dictionaries (8,388,608 entries).
    pub fn egress_client() -> Self {
        Limits {
            max_message_len: 64 * 1024 * 1024,
            max_symbol_entries: 8_388_608,
            ..Limits::default()
        }
    }
}
