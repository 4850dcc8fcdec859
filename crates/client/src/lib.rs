//! `quiver-client`: a Rust SDK for servers that speak QWP (QuestDB's wire
//! protocol over WebSocket), Quiver's and QuestDB's.
//!
//! Built in slices (issue 13). This slice holds the connection string:
//! [`ClientConf::parse`] reads the official clients' `ws::`/`wss::`
//! grammar and key names (endpoints for failover, authentication, durable
//! acks, pool sizes and timeouts, compression, TLS) into typed, validated
//! settings with the official defaults. Keys of features not built yet
//! (auto-flush, store-and-forward, reconnect and failover tuning) are
//! refused as unknown rather than ignored. The pool, the column sender,
//! Arrow ingest and egress come next and take a [`ClientConf`].
//!
//! ```
//! use quiver_client::{ClientConf, Endpoint};
//!
//! let conf = ClientConf::parse("ws::addr=db1:9000,db2;request_durable_ack=on;sender_pool_max=8;")?;
//! assert_eq!(conf.endpoints, vec![Endpoint::new("db1", 9000), Endpoint::new("db2", 9000)]);
//! assert!(conf.request_durable_ack);
//! assert_eq!(conf.pool.sender_max, 8);
//! # Ok::<(), quiver_client::ConfError>(())
//! ```

#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod conf;

pub use conf::{Auth, ClientConf, Compression, ConfError, Endpoint, PoolConf, Reap};
