//! Shared by the server's integration tests: start the real `quiver` binary
//! on a free loopback port with a temporary data directory, stop or kill it,
//! run the official Python client from the test venv, and read what was
//! stored through `quiver-storage` (read-only).

#![allow(dead_code)]

pub mod raw;

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_storage::{Database, Options};

/// A running `quiver serve`.
pub struct TestServer {
    child: Option<Child>,
    /// The bound port on 127.0.0.1.
    pub port: u16,
    /// The line protocol TCP port, when started with `--ilp-tcp-listen`.
    pub ilp_tcp_port: Option<u16>,
    /// The data directory.
    pub data_dir: PathBuf,
    /// Holds the temp dir alive (when the server created it).
    _temp: Option<tempfile::TempDir>,
    /// The server's stderr log.
    pub log: PathBuf,
}

impl TestServer {
    /// Starts a server with a fresh data directory.
    pub fn start() -> TestServer {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("data");
        let mut s = Self::start_in(&data_dir, &[]);
        s._temp = Some(temp);
        s
    }

    /// Starts a server with a fresh data directory and extra args.
    pub fn start_with(extra: &[&str]) -> TestServer {
        let temp = tempfile::tempdir().expect("temp dir");
        let data_dir = temp.path().join("data");
        let mut s = Self::start_in(&data_dir, extra);
        s._temp = Some(temp);
        s
    }

    /// Starts a server on `data_dir` (kept by the caller) with extra args.
    pub fn start_in(data_dir: &Path, extra: &[&str]) -> TestServer {
        Self::start_at(data_dir, "127.0.0.1:0", extra)
    }

    /// Starts a server on `data_dir` listening on `listen` (a restart on
    /// the port of a server that stopped).
    pub fn start_at(data_dir: &Path, listen: &str, extra: &[&str]) -> TestServer {
        let log = data_dir.with_extension(format!("{}.log", std::process::id()));
        std::fs::create_dir_all(data_dir.parent().unwrap()).unwrap();
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_quiver"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg(listen)
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("spawn quiver");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = line.strip_prefix("quiver listening on ") {
                    let _ = tx.send(addr.to_string());
                }
                if let Some(addr) = line.strip_prefix("quiver line protocol over TCP on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not start; log:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        let port_of = |addr: &str| addr.rsplit(':').next().unwrap().parse::<u16>().unwrap();
        let port = port_of(&addr);
        let ilp_tcp_port = extra.contains(&"--ilp-tcp-listen").then(|| {
            let addr = rx
                .recv_timeout(Duration::from_secs(10))
                .expect("the server names its line protocol TCP address");
            port_of(&addr)
        });
        TestServer {
            child: Some(child),
            port,
            ilp_tcp_port,
            data_dir: data_dir.to_path_buf(),
            _temp: None,
            log,
        }
    }

    /// `host:port`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// SIGTERM, then wait for the exit.
    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not stop after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Opens the data directory read-only, as `quiver tables` does.
    pub fn storage(&self) -> Arc<Database> {
        open_storage(&self.data_dir)
    }

    /// The server log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A read-only view of a data directory.
pub fn open_storage(data_dir: &Path) -> Arc<Database> {
    Database::open(
        data_dir,
        Options {
            read_only: true,
            ..Options::default()
        },
    )
    .expect("open storage")
}

/// The Python of the interop venv (`scripts/test.sh` creates it).
pub fn python() -> PathBuf {
    let venv = std::env::var_os("QUIVER_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/quiver/venv")
        });
    let py = venv.join("bin/python");
    assert!(
        py.exists(),
        "no interop venv at {}: run ./scripts/test.sh, which creates it",
        venv.display()
    );
    py
}

/// Runs `tests/py/<script>` with `args`; panics with its output on failure.
pub fn run_python(script: &str, args: &[&str]) -> Output {
    let path = crate_dir().join("tests/py").join(script);
    Command::new(python())
        .arg(&path)
        .args(args)
        .output()
        .expect("run python")
}

/// Like [`run_python`], asserting success.
pub fn run_python_ok(script: &str, args: &[&str]) -> String {
    let out = run_python(script, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{script} failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// This crate's directory, as cargo/nextest report it when the test runs
/// (not where the binary was compiled: CI shares one target directory
/// between checkouts, and cargo may reuse a test binary built in another).
fn crate_dir() -> std::path::PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}

/// `GET path` with `Connection: close`; the whole response (head and body).
pub fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// The head, lower-cased.
    pub head: String,
    /// The body (de-chunked).
    pub body: String,
}

/// Sends `request` (a whole HTTP/1.1 request with `Connection: close`) and
/// reads the whole response.
pub fn http_exchange(addr: &str, request: &[u8]) -> HttpResponse {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    parse_response(&out)
}

/// `POST path` of `body` with extra header lines (each ending in `\r\n`).
pub fn http_post(addr: &str, path: &str, headers: &str, body: &[u8]) -> HttpResponse {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    http_exchange(addr, &request)
}

fn parse_response(raw: &[u8]) -> HttpResponse {
    let text = String::from_utf8_lossy(raw).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    let head = head.to_ascii_lowercase();
    let body = if head.contains("transfer-encoding: chunked") {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            rest = &tail[n + 2..];
        }
        out
    } else {
        body.to_string()
    };
    HttpResponse { status, head, body }
}

/// A deterministic pseudo-random sequence (test data that is the same in
/// every run).
pub struct Lcg(pub u64);

impl Lcg {
    /// The next 53-bit value.
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 11
    }
}

/// Polls `done` until it holds (panics after 30 s).
pub fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "condition not reached in 30 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}
