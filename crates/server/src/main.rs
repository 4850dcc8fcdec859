//! `quiver`: the server (`quiver serve`) and offline tools (`quiver tables`,
//! `quiver export`) over one data directory.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use mimalloc::MiMalloc;
use quiver_server::{
    FrameLimits, LineOptions, QueryOptions, ServeConfig, SessionOptions, serve, tools,
};

/// Ingest allocates and frees column buffers of a few MiB per frame; mimalloc
/// reuses them where the system allocator maps and zeroes fresh pages.
#[global_allocator]
static GLOBAL: MiMalloc = MiMalloc;

#[derive(Parser)]
#[command(
    name = "quiver",
    version,
    about = "Arrow-native time-series database speaking QuestDB's QWP"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server: QWP/WebSocket ingest on /write/v4 and /api/v4/write, SQL queries on /read/v1 and /exec, line protocol on POST /write and /api/v2/write (and TCP with --ilp-tcp-listen), GET /ping.
    Serve {
        /// Data directory (created if missing).
        #[arg(long, env = "QUIVER_DATA_DIR", default_value = "./quiver-data")]
        data_dir: PathBuf,
        /// Address to listen on (port 0 picks a free port).
        #[arg(long, env = "QUIVER_LISTEN", default_value = "127.0.0.1:9000")]
        listen: SocketAddr,
        /// fsync the WAL after every commit, not only when a client asks for durable acks.
        #[arg(long, env = "QUIVER_SYNC_EVERY_COMMIT")]
        sync_every_commit: bool,
        /// Seal a table's in-memory rows into a segment file past this many rows.
        #[arg(long, env = "QUIVER_SEAL_ROWS", default_value_t = 1_000_000)]
        seal_rows: u64,
        /// Start a new WAL file past this many bytes.
        #[arg(long, env = "QUIVER_WAL_ROLL_BYTES", default_value_t = 64 << 20)]
        wal_roll_bytes: u64,
        /// Past this many bytes of unsealed rows in memory (all tables), seal the
        /// biggest tables and stop reading ingest sockets until sealing catches up.
        #[arg(long, env = "QUIVER_MAX_UNSEALED_BYTES", default_value_t = 512 << 20)]
        max_unsealed_bytes: usize,
        /// Most rows one QWP frame may hold over all its table blocks.
        #[arg(long, env = "QUIVER_MAX_FRAME_ROWS", default_value_t = FrameLimits::default().max_rows)]
        max_frame_rows: usize,
        /// Most bytes one QWP frame's rows may take once converted (capped at 2 GiB - 1).
        #[arg(long, env = "QUIVER_MAX_FRAME_BYTES", default_value_t = FrameLimits::default().max_bytes)]
        max_frame_bytes: usize,
        /// Most bytes of uncommitted (deferred) rows one connection may hold.
        #[arg(long, env = "QUIVER_MAX_PENDING_BYTES", default_value_t = SessionOptions::default().max_pending_bytes)]
        max_pending_bytes: usize,
        /// Most bytes of uncommitted rows all connections may hold together.
        #[arg(long, env = "QUIVER_MAX_UNCOMMITTED_BYTES", default_value_t = 1 << 30)]
        max_uncommitted_bytes: usize,
        /// Close an ingest connection that sends nothing for this many seconds.
        #[arg(long, env = "QUIVER_IDLE_TIMEOUT_SECS", default_value_t = 300)]
        idle_timeout_secs: u64,
        /// The same while it holds an open deferred group (its rows are rolled back); also how long a line protocol HTTP body may stall (408).
        #[arg(long, env = "QUIVER_DEFERRED_IDLE_TIMEOUT_SECS", default_value_t = 60)]
        deferred_idle_timeout_secs: u64,
        /// Most bytes the operators of all running queries may hold together (sorts, joins, aggregates); a query past it fails with LIMIT_EXCEEDED.
        #[arg(long, env = "QUIVER_QUERY_MEMORY_BYTES", default_value_t = 512 << 20)]
        query_memory_bytes: usize,
        /// Threads that run queries (and read a scan's blocks in parallel); 0: one per core.
        #[arg(long, env = "QUIVER_QUERY_THREADS", default_value_t = 0)]
        query_threads: usize,
        /// Apply tables' TTLs (drop expired partitions) every this many seconds.
        #[arg(long, env = "QUIVER_TTL_CHECK_SECS", default_value_t = 30)]
        ttl_check_secs: u64,
        /// Also take line protocol over plain TCP on this address (QuestDB uses port 9009); off unless given.
        #[arg(long, env = "QUIVER_ILP_TCP_LISTEN")]
        ilp_tcp_listen: Option<SocketAddr>,
        /// Most bytes one line protocol HTTP request body may hold (after gzip); larger ones get 413.
        #[arg(long, env = "QUIVER_ILP_MAX_REQUEST_BYTES", default_value_t = LineOptions::default().max_request_bytes)]
        ilp_max_request_bytes: usize,
        /// Most tables one line protocol request (or TCP commit group) may write.
        #[arg(long, env = "QUIVER_ILP_MAX_TABLES", default_value_t = LineOptions::default().max_tables)]
        ilp_max_tables: usize,
        /// Longest line protocol line, in bytes.
        #[arg(long, env = "QUIVER_ILP_MAX_LINE_BYTES", default_value_t = LineOptions::default().limits.max_line_bytes)]
        ilp_max_line_bytes: usize,
    },
    /// List tables with their columns, types and committed row counts.
    Tables {
        /// Data directory.
        #[arg(long, env = "QUIVER_DATA_DIR", default_value = "./quiver-data")]
        data_dir: PathBuf,
    },
    /// Write every committed row of a table, in row-id order, to a file.
    Export {
        /// Data directory.
        #[arg(long, env = "QUIVER_DATA_DIR", default_value = "./quiver-data")]
        data_dir: PathBuf,
        /// Table name.
        #[arg(long)]
        table: String,
        /// Output format.
        #[arg(long, value_enum, default_value_t = Format::Arrow)]
        format: Format,
        /// Output file.
        #[arg(long)]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// Arrow IPC file.
    Arrow,
    /// Parquet.
    Parquet,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve {
            data_dir,
            listen,
            sync_every_commit,
            seal_rows,
            wal_roll_bytes,
            max_unsealed_bytes,
            max_frame_rows,
            max_frame_bytes,
            max_pending_bytes,
            max_uncommitted_bytes,
            idle_timeout_secs,
            deferred_idle_timeout_secs,
            query_memory_bytes,
            query_threads,
            ttl_check_secs,
            ilp_tcp_listen,
            ilp_max_request_bytes,
            ilp_max_tables,
            ilp_max_line_bytes,
        } => {
            let ilp_defaults = LineOptions::default();
            let config = ServeConfig {
                data_dir,
                listen,
                sync_every_commit,
                seal_rows,
                wal_roll_bytes,
                max_unsealed_bytes,
                max_uncommitted_bytes,
                session: SessionOptions {
                    frame_limits: FrameLimits {
                        max_rows: max_frame_rows,
                        max_bytes: max_frame_bytes,
                    },
                    max_pending_bytes,
                    idle_timeout: Duration::from_secs(idle_timeout_secs),
                    deferred_idle_timeout: Duration::from_secs(deferred_idle_timeout_secs),
                    ..SessionOptions::default()
                },
                query: {
                    let defaults = QueryOptions::default();
                    QueryOptions {
                        memory_limit: query_memory_bytes,
                        threads: match query_threads {
                            0 => defaults.threads,
                            n => n,
                        },
                        ..defaults
                    }
                },
                ttl_check_interval: Duration::from_secs(ttl_check_secs),
                ilp: LineOptions {
                    max_request_bytes: ilp_max_request_bytes,
                    max_tables: ilp_max_tables,
                    limits: quiver_ilp::Limits {
                        max_line_bytes: ilp_max_line_bytes,
                        ..ilp_defaults.limits
                    },
                    ..ilp_defaults
                },
                ilp_tcp_listen,
                ..ServeConfig::default()
            };
            match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt.block_on(serve(config, quiver_server::shutdown_signal())),
                Err(e) => Err(e.into()),
            }
        }
        Command::Tables { data_dir } => tools::tables(&data_dir, &mut std::io::stdout()),
        Command::Export {
            data_dir,
            table,
            format,
            out,
        } => tools::export(
            &data_dir,
            &table,
            match format {
                Format::Arrow => tools::ExportFormat::Arrow,
                Format::Parquet => tools::ExportFormat::Parquet,
            },
            &out,
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quiver: {e}");
            ExitCode::FAILURE
        }
    }
}
