//! The connection string: `ws::key=value;key=value;` (or `wss::`), as the
//! official QuestDB clients read it, into typed settings.
//!
//! Grammar: a schema, `::`, then `key=value` pairs each ended by `;` (the
//! last `;` may be left out). Keys are ASCII letters, digits and `_`;
//! values are any characters but control characters, with `;` written
//! `;;`. A key given twice, an unknown key, a value that does not parse and
//! settings that contradict each other are errors naming the key (never
//! its value: it may be a password). Defaults are the official clients'.
//!
//! This module owns parsing and validation only; it opens nothing.

use std::fmt;
use std::time::Duration;

/// The port QuestDB's HTTP and WebSocket endpoints listen on by default.
pub const DEFAULT_PORT: u16 = 9000;

/// A connection string that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfError {
    /// The string does not follow the grammar.
    #[error("bad connection string at byte {position}: {reason}")]
    Syntax {
        /// Byte offset of the problem.
        position: usize,
        /// What is wrong.
        reason: &'static str,
    },
    /// Neither `ws` nor `wss`.
    #[error("unsupported schema {0:?}: use ws:: or wss::")]
    Schema(String),
    /// A key this client does not know.
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    /// A key given twice.
    #[error("key {0:?} is given twice")]
    DuplicateKey(String),
    /// A value that does not parse for its key.
    #[error("bad value for {key:?}: {expected}")]
    BadValue {
        /// The key.
        key: String,
        /// What the value must be.
        expected: &'static str,
    },
    /// Settings that contradict each other, or a required one missing.
    #[error("{0}")]
    Inconsistent(&'static str),
}

/// One server address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl Endpoint {
    /// `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Endpoint {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "[{}]:{}", self.host, self.port),
            false => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// How the client authenticates (one way at most).
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Auth {
    /// No `Authorization` header.
    #[default]
    None,
    /// `username` and `password`: HTTP Basic.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: String,
    },
    /// `token`: HTTP Bearer.
    Token(String),
}

impl fmt::Debug for Auth {
    // Secrets stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => write!(f, "None"),
            Auth::Basic { username, .. } => write!(f, "Basic {{ username: {username:?}, .. }}"),
            Auth::Token(_) => write!(f, "Token(..)"),
        }
    }
}

/// When idle connections are closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reap {
    /// By the pool, in the background.
    #[default]
    Auto,
    /// Only when the application asks.
    Manual,
}

/// Query result compression the client accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Compression {
    /// None (the default, as the official clients': on a fast link zstd
    /// costs the server more time than it saves).
    #[default]
    Raw,
    /// zstd, required.
    Zstd,
    /// zstd if the server offers it.
    Auto,
}

/// Pool settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolConf {
    /// Writers opened eagerly (`sender_pool_min`, default 1).
    pub sender_min: usize,
    /// Most writers (`sender_pool_max`, default 4).
    pub sender_max: usize,
    /// Readers opened eagerly (`query_pool_min`, default 1).
    pub query_min: usize,
    /// Most readers (`query_pool_max`, default 4).
    pub query_max: usize,
    /// How long borrowing past the maximum waits (`acquire_timeout_ms`,
    /// default 5 s).
    pub acquire_timeout: Duration,
    /// Idle connections older than this are closed (`idle_timeout_ms`,
    /// default 60 s).
    pub idle_timeout: Duration,
    /// Who closes them (`pool_reap`, `auto` or `manual`).
    pub reap: Reap,
    /// Open nothing until first use (`lazy_connect`, default off).
    pub lazy_connect: bool,
}

impl Default for PoolConf {
    fn default() -> Self {
        PoolConf {
            sender_min: 1,
            sender_max: 4,
            query_min: 1,
            query_max: 4,
            acquire_timeout: Duration::from_millis(5000),
            idle_timeout: Duration::from_millis(60_000),
            reap: Reap::Auto,
            lazy_connect: false,
        }
    }
}

/// A parsed connection string (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConf {
    /// `wss::`: TLS.
    pub tls: bool,
    /// `addr`: one endpoint, or several (comma-separated) for failover, in
    /// order; the port defaults to 9000.
    pub endpoints: Vec<Endpoint>,
    /// `username`/`password` or `token`.
    pub auth: Auth,
    /// `request_durable_ack=on`: ask for acks once rows are fsync'd.
    pub request_durable_ack: bool,
    /// Pool sizes and timeouts.
    pub pool: PoolConf,
    /// `connect_timeout` (milliseconds; default 10 s).
    pub connect_timeout: Duration,
    /// `request_timeout` (milliseconds; default 60 s; Quiver's key, named
    /// as the official `http::` sender's): the longest wait for the server
    /// to take a frame or to answer one, before the connection is given
    /// up as broken.
    pub request_timeout: Duration,
    /// `compression` (`raw`, the default, `zstd`, `auto`) for query
    /// results.
    pub compression: Compression,
    /// `compression_level` (1-22, default 3).
    pub compression_level: i32,
    /// `max_batch_rows`: the most rows per result batch the client asks
    /// for (`X-QWP-Max-Batch-Rows`; the server may only lower its cap).
    pub max_batch_rows: Option<u32>,
    /// `tls_verify=unsafe_off` turns certificate checks off (`on` by
    /// default).
    pub tls_verify: bool,
    /// `tls_roots`: a PEM file of CA certificates to trust instead of the
    /// built-in roots.
    pub tls_roots: Option<String>,
}

/// Keys this client reads (the official clients' names).
const KEYS: &[&str] = &[
    "addr",
    "username",
    "password",
    "token",
    "request_durable_ack",
    "sender_pool_min",
    "sender_pool_max",
    "query_pool_min",
    "query_pool_max",
    "acquire_timeout_ms",
    "idle_timeout_ms",
    "pool_reap",
    "lazy_connect",
    "connect_timeout",
    "request_timeout",
    "compression",
    "compression_level",
    "max_batch_rows",
    "tls_verify",
    "tls_roots",
];

/// A connection string split by the grammar, not yet interpreted.
struct RawConf<'s> {
    schema: &'s str,
    /// Keys and their values (`;;` already made `;`), in order.
    pairs: Vec<(&'s str, String)>,
}

/// Splits a connection string by the grammar in the module docs.
fn split(s: &str) -> Result<RawConf<'_>, ConfError> {
    let syntax = |position, reason| ConfError::Syntax { position, reason };
    let (schema, rest) = s.split_once("::").ok_or(syntax(0, "expected schema::"))?;
    let identifier =
        |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if !identifier(schema) {
        return Err(syntax(0, "the schema must be letters, digits or _"));
    }
    let base = schema.len() + 2;
    let bytes = rest.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let eq = rest[i..]
            .find('=')
            .map(|k| i + k)
            .ok_or(syntax(base + i, "expected key=value"))?;
        let key = &rest[i..eq];
        if !identifier(key) {
            return Err(syntax(base + i, "a key must be letters, digits or _"));
        }
        let mut value = String::new();
        let mut j = eq + 1;
        loop {
            match rest[j..].chars().next() {
                None => break,
                Some(';') if rest[j + 1..].starts_with(';') => {
                    value.push(';');
                    j += 2;
                }
                Some(';') => {
                    j += 1;
                    break;
                }
                Some(c) if c.is_control() => {
                    return Err(syntax(base + j, "control character in a value"));
                }
                Some(c) => {
                    value.push(c);
                    j += c.len_utf8();
                }
            }
        }
        out.push((key, value));
        i = j;
    }
    Ok(RawConf { schema, pairs: out })
}

fn bad(key: &str, expected: &'static str) -> ConfError {
    ConfError::BadValue {
        key: key.to_string(),
        expected,
    }
}

fn on_off(key: &str, v: &str) -> Result<bool, ConfError> {
    match v {
        "on" | "true" => Ok(true),
        "off" | "false" => Ok(false),
        _ => Err(bad(key, "on or off")),
    }
}

fn count(key: &str, v: &str) -> Result<usize, ConfError> {
    v.parse().map_err(|_| bad(key, "a whole number"))
}

fn millis(key: &str, v: &str) -> Result<Duration, ConfError> {
    v.parse()
        .map(Duration::from_millis)
        .map_err(|_| bad(key, "a whole number of milliseconds"))
}

/// Milliseconds, at least one (a zero timeout cannot be set on a socket).
fn positive_millis(key: &str, v: &str) -> Result<Duration, ConfError> {
    match millis(key, v)? {
        d if d.is_zero() => Err(bad(key, "at least 1 millisecond")),
        d => Ok(d),
    }
}

/// `host[:port]`, `[v6]:port`, comma-separated.
fn endpoints(v: &str) -> Result<Vec<Endpoint>, ConfError> {
    let one = |e: &str| -> Result<Endpoint, ConfError> {
        let e = e.trim();
        let (host, port) = match e.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6.split_once(']').ok_or(bad("addr", "[v6 address]:port"))?;
                (host, after.strip_prefix(':'))
            }
            None if e.matches(':').count() > 1 => (e, None),
            None => match e.split_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (e, None),
            },
        };
        if host.is_empty() {
            return Err(bad("addr", "host[:port], comma-separated"));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or(bad("addr", "a port from 1 to 65535"))?,
        };
        Ok(Endpoint::new(host, port))
    };
    v.split(',').map(one).collect()
}

impl ClientConf {
    /// Reads a connection string (see the module docs).
    pub fn parse(s: &str) -> Result<ClientConf, ConfError> {
        let RawConf { schema, pairs } = split(s)?;
        let tls = match schema {
            "ws" => false,
            "wss" => true,
            other => return Err(ConfError::Schema(other.to_string())),
        };
        let mut conf = ClientConf {
            tls,
            endpoints: Vec::new(),
            auth: Auth::None,
            request_durable_ack: false,
            pool: PoolConf::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(60),
            compression: Compression::Raw,
            compression_level: 3,
            max_batch_rows: None,
            tls_verify: true,
            tls_roots: None,
        };
        let mut seen: Vec<&str> = Vec::new();
        let (mut username, mut password, mut token) = (None, None, None);
        for (key, value) in pairs {
            if !KEYS.contains(&key) {
                return Err(ConfError::UnknownKey(key.to_string()));
            }
            if seen.contains(&key) {
                return Err(ConfError::DuplicateKey(key.to_string()));
            }
            seen.push(key);
            let v = value.as_str();
            match key {
                "addr" => conf.endpoints = endpoints(v)?,
                "username" => username = Some(value),
                "password" => password = Some(value),
                "token" => token = Some(value),
                "request_durable_ack" => conf.request_durable_ack = on_off(key, v)?,
                "sender_pool_min" => conf.pool.sender_min = count(key, v)?,
                "sender_pool_max" => conf.pool.sender_max = count(key, v)?,
                "query_pool_min" => conf.pool.query_min = count(key, v)?,
                "query_pool_max" => conf.pool.query_max = count(key, v)?,
                "acquire_timeout_ms" => conf.pool.acquire_timeout = millis(key, v)?,
                "idle_timeout_ms" => conf.pool.idle_timeout = millis(key, v)?,
                "pool_reap" => {
                    conf.pool.reap = match v {
                        "auto" => Reap::Auto,
                        "manual" => Reap::Manual,
                        _ => return Err(bad(key, "auto or manual")),
                    }
                }
                "lazy_connect" => conf.pool.lazy_connect = on_off(key, v)?,
                "connect_timeout" => conf.connect_timeout = positive_millis(key, v)?,
                "request_timeout" => conf.request_timeout = positive_millis(key, v)?,
                "compression" => {
                    conf.compression = match v {
                        "raw" => Compression::Raw,
                        "zstd" => Compression::Zstd,
                        "auto" => Compression::Auto,
                        _ => return Err(bad(key, "raw, zstd or auto")),
                    }
                }
                "compression_level" => {
                    conf.compression_level = v
                        .parse()
                        .ok()
                        .filter(|l| (1..=22).contains(l))
                        .ok_or(bad(key, "a level from 1 to 22"))?;
                }
                "max_batch_rows" => {
                    conf.max_batch_rows = Some(
                        v.parse()
                            .ok()
                            .filter(|&n: &u32| n > 0)
                            .ok_or(bad(key, "a row count from 1 to 4294967295"))?,
                    );
                }
                "tls_verify" => {
                    conf.tls_verify = match v {
                        "on" => true,
                        "unsafe_off" => false,
                        _ => return Err(bad(key, "on or unsafe_off")),
                    }
                }
                "tls_roots" => conf.tls_roots = Some(value),
                _ => return Err(ConfError::UnknownKey(key.to_string())),
            }
        }
        conf.auth = match (username, password, token) {
            (None, None, None) => Auth::None,
            (Some(username), Some(password), None) => Auth::Basic { username, password },
            (None, None, Some(t)) => Auth::Token(t),
            (_, _, Some(_)) => {
                return Err(ConfError::Inconsistent(
                    "token and username/password are exclusive: give one",
                ));
            }
            _ => {
                return Err(ConfError::Inconsistent("username and password go together"));
            }
        };
        if conf.endpoints.is_empty() {
            return Err(ConfError::Inconsistent("addr is required"));
        }
        let p = &conf.pool;
        if p.sender_max == 0 || p.query_max == 0 {
            return Err(ConfError::Inconsistent(
                "sender_pool_max and query_pool_max must be at least 1",
            ));
        }
        if p.sender_min > p.sender_max || p.query_min > p.query_max {
            return Err(ConfError::Inconsistent(
                "a pool's minimum is larger than its maximum",
            ));
        }
        if !conf.tls && (!conf.tls_verify || conf.tls_roots.is_some()) {
            return Err(ConfError::Inconsistent(
                "tls_verify and tls_roots need wss::",
            ));
        }
        Ok(conf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Any string over the grammar's interesting characters splits as
        /// the official clients' parser splits it, or both refuse it.
        #[test]
        fn the_grammar_is_the_official_parsers(
            s in proptest::string::string_regex("ws::([a-c_]{1,3}=[a-c;=:,\\[\\]\u{1} é]{0,5};?){0,4}").unwrap()
        ) {
            let ours = split(&s);
            let official = questdb_confstr::parse_conf_str(&s);
            match (ours, official) {
                (Ok(ours), Ok(official)) => {
                    let mut ours: Vec<(String, String)> = ours
                        .pairs
                        .into_iter()
                        .map(|(k, v)| (k.to_string(), v))
                        .collect();
                    ours.sort();
                    let mut dedup = ours.clone();
                    dedup.dedup_by(|a, b| a.0 == b.0);
                    // The official parser refuses duplicates; we do it after.
                    proptest::prop_assert_eq!(dedup.len(), ours.len(), "{:?}", s);
                    let mut theirs: Vec<(String, String)> = official
                        .params()
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    theirs.sort();
                    proptest::prop_assert_eq!(ours, theirs, "{:?}", s);
                }
                (Err(_), Err(_)) => {}
                (Ok(ours), Err(e)) => {
                    // Duplicates are ours to refuse, later.
                    let mut keys: Vec<&str> = ours.pairs.iter().map(|(k, _)| *k).collect();
                    keys.sort();
                    let before = keys.len();
                    keys.dedup();
                    proptest::prop_assert!(keys.len() < before, "{:?}: official refuses: {}", s, e);
                }
                (Err(e), Ok(_)) => proptest::prop_assert!(false, "{:?}: we refuse: {}", s, e),
            }
        }
    }

    #[test]
    fn defaults_are_the_official_clients() {
        let c = ClientConf::parse("ws::addr=localhost;").unwrap();
        assert!(!c.tls);
        assert_eq!(c.endpoints, vec![Endpoint::new("localhost", 9000)]);
        assert_eq!(c.auth, Auth::None);
        assert!(!c.request_durable_ack);
        assert_eq!(c.pool, PoolConf::default());
        assert_eq!(c.pool.acquire_timeout, Duration::from_secs(5));
        assert_eq!(c.compression, Compression::Raw);
        // The last `;` is optional.
        assert_eq!(ClientConf::parse("ws::addr=localhost").unwrap(), c);
    }

    #[test]
    fn every_key() {
        let c = ClientConf::parse(
            "wss::addr=a.example:9001,[::1]:9002,b;username=u;password=p;;w=d;\
             request_durable_ack=on;sender_pool_min=2;sender_pool_max=9;query_pool_min=0;\
             query_pool_max=3;acquire_timeout_ms=250;idle_timeout_ms=1000;pool_reap=manual;\
             lazy_connect=on;connect_timeout=1500;compression=zstd;compression_level=9;\
             max_batch_rows=500;tls_verify=unsafe_off;tls_roots=/etc/ca.pem;",
        )
        .unwrap();
        assert!(c.tls);
        assert_eq!(
            c.endpoints,
            vec![
                Endpoint::new("a.example", 9001),
                Endpoint::new("::1", 9002),
                Endpoint::new("b", 9000)
            ]
        );
        assert_eq!(c.endpoints[1].to_string(), "[::1]:9002");
        // `;;` is a `;` in a value.
        assert_eq!(
            c.auth,
            Auth::Basic {
                username: "u".into(),
                password: "p;w=d".into()
            }
        );
        assert!(c.request_durable_ack);
        assert_eq!(
            c.pool,
            PoolConf {
                sender_min: 2,
                sender_max: 9,
                query_min: 0,
                query_max: 3,
                acquire_timeout: Duration::from_millis(250),
                idle_timeout: Duration::from_secs(1),
                reap: Reap::Manual,
                lazy_connect: true,
            }
        );
        assert_eq!(c.connect_timeout, Duration::from_millis(1500));
        assert_eq!((c.compression, c.compression_level), (Compression::Zstd, 9));
        assert_eq!(c.max_batch_rows, Some(500));
        assert!(!c.tls_verify);
        assert_eq!(c.tls_roots.as_deref(), Some("/etc/ca.pem"));
        let t = ClientConf::parse("ws::addr=h;token=abc;").unwrap();
        assert_eq!(t.auth, Auth::Token("abc".into()));
    }

    #[test]
    fn errors_name_the_key_never_a_secret() {
        let err = |s: &str| ClientConf::parse(s).unwrap_err();
        assert_eq!(err("http::addr=h;"), ConfError::Schema("http".into()));
        assert_eq!(
            err("ws::addr=h;bogus=1;"),
            ConfError::UnknownKey("bogus".into())
        );
        assert_eq!(
            err("ws::addr=h;addr=g;"),
            ConfError::DuplicateKey("addr".into())
        );
        assert!(
            matches!(err("ws::addr=h;sender_pool_max=x;"), ConfError::BadValue { key, .. } if key == "sender_pool_max")
        );
        assert!(matches!(err("ws::addr=h:0;"), ConfError::BadValue { .. }));
        assert!(matches!(
            err("ws::addr=h:99999;"),
            ConfError::BadValue { .. }
        ));
        assert!(matches!(err("ws::addr=:9000;"), ConfError::BadValue { .. }));
        for zero in ["connect_timeout=0", "request_timeout=0"] {
            assert!(
                matches!(
                    err(&format!("ws::addr=h;{zero};")),
                    ConfError::BadValue { .. }
                ),
                "{zero}"
            );
        }
        let c = ClientConf::parse("ws::addr=h;request_timeout=2500;").unwrap();
        assert_eq!(c.request_timeout, Duration::from_millis(2500));
        assert!(matches!(
            err("ws::addr=h;lazy_connect=maybe;"),
            ConfError::BadValue { .. }
        ));
        assert!(matches!(
            err("ws::addr=h;compression_level=23;"),
            ConfError::BadValue { .. }
        ));
        for rows in ["0", "-1", "4294967296", "x"] {
            assert!(matches!(
                err(&format!("ws::addr=h;max_batch_rows={rows};")),
                ConfError::BadValue { .. }
            ));
        }
        assert!(matches!(
            err("ws::username=u;password=p;"),
            ConfError::Inconsistent(_)
        ));
        assert!(matches!(
            err("ws::addr=h;username=u;"),
            ConfError::Inconsistent(_)
        ));
        assert!(matches!(
            err("ws::addr=h;token=t;username=u;password=p;"),
            ConfError::Inconsistent(_)
        ));
        assert!(matches!(
            err("ws::addr=h;sender_pool_min=5;sender_pool_max=4;"),
            ConfError::Inconsistent(_)
        ));
        assert!(matches!(
            err("ws::addr=h;query_pool_max=0;"),
            ConfError::Inconsistent(_)
        ));
        assert!(matches!(
            err("ws::addr=h;tls_verify=unsafe_off;"),
            ConfError::Inconsistent(_)
        ));
        assert!(matches!(err("addr=h;"), ConfError::Syntax { .. }));
        assert!(matches!(err("ws::addr;"), ConfError::Syntax { .. }));
        assert!(matches!(err("ws::a-b=1;"), ConfError::Syntax { .. }));
        assert!(matches!(err("ws::addr=h\u{1};"), ConfError::Syntax { .. }));
        // A secret never shows, in errors or in Debug.
        let e = err("ws::addr=h;password=hunter2;").to_string();
        assert!(!e.contains("hunter2"), "{e}");
        let c = ClientConf::parse("ws::addr=h;username=u;password=hunter2;").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
        let c = ClientConf::parse("ws::addr=h;token=hunter2;").unwrap();
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
