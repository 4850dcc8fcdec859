//! Storage failures as clients see them, with the server running in this
//! process over a simulated disk that fails chosen operations (real
//! sockets, real sessions, the real storage engine; only the disk is
//! simulated):
//!
//! - A failed fsync was swallowed: durable-ack waiters never heard of it.
//!   Now the client gets an error for that frame and the connection closes,
//!   since no durable ack will come.
//! - After a failure that stops storage writing, `/ping` says so (503 with
//!   a JSON body), and every later frame gets an error.

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::raw::{Ack, Closed, RawClient, block, longs, message, timestamps};
use quiver_server::{ServeConfig, Server};
use quiver_storage::io::{Fault, Op, SimulatedDisk};

/// A server on a simulated disk, in a thread of its own; stops when the
/// returned sender is dropped.
fn start(disk: &SimulatedDisk) -> (String, tokio::sync::oneshot::Sender<()>) {
    let config = ServeConfig {
        data_dir: PathBuf::from("/db"),
        listen: "127.0.0.1:0".parse().unwrap(),
        fs: Some(Arc::new(disk.clone())),
        ..ServeConfig::default()
    };
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let server = Server::bind(config).await.unwrap();
            addr_tx.send(server.local_addr().to_string()).unwrap();
            server
                .run(async move {
                    let _ = stop_rx.await;
                })
                .await
                .unwrap();
        });
    });
    let addr = addr_rx.recv_timeout(Duration::from_secs(30)).unwrap();
    (addr, stop_tx)
}

fn frame(client: &mut RawClient, first: i64) {
    let (delta, _) = client.register(&[]);
    client
        .send(&message(
            delta,
            false,
            vec![block(
                "t",
                vec![
                    ("v", longs(first..first + 5)),
                    ("", timestamps((first..first + 5).map(|i| i + 1))),
                ],
            )],
        ))
        .unwrap();
}

#[test]
fn a_failed_fsync_reaches_the_durable_client_and_ping_reports_it() {
    let disk = SimulatedDisk::new();
    let (addr, _stop) = start(&disk);
    let mut client = RawClient::connect(&addr, true);
    frame(&mut client, 0);
    assert!(matches!(client.read_ack(), Ok(Ack::Ok(0, _))));
    assert!(matches!(client.read_ack(), Ok(Ack::Durable(_))));
    assert!(common::http_get(&addr, "/ping").starts_with("HTTP/1.1 204"));

    disk.fail_next(Op::Sync, std::path::Path::new("/db/wal"), Fault::Error);
    frame(&mut client, 5);
    // Committed (OK), then the durable wait fails: an error for that
    // frame, and the connection closes (no durable ack will come).
    assert!(matches!(client.read_ack(), Ok(Ack::Ok(1, _))));
    match client.read_ack() {
        Ok(Ack::Error(0x06, 1, text)) => assert!(text.contains("durable"), "{text}"),
        other => panic!("expected an error for frame 1, got {other:?}"),
    }
    match client.read_ack() {
        Err(Closed::Close(code, _)) => assert_eq!(code, 1011),
        other => panic!("expected a close, got {other:?}"),
    }

    let ping = common::http_get(&addr, "/ping");
    assert!(ping.starts_with("HTTP/1.1 503"), "{ping}");
    assert!(ping.contains("application/json"), "{ping}");
    assert!(ping.contains(r#""status":"unhealthy""#), "{ping}");
    assert!(ping.contains("sync"), "{ping}");

    // Nothing more is accepted.
    let mut other = RawClient::connect(&addr, false);
    frame(&mut other, 10);
    match other.read_ack() {
        Ok(Ack::Error(0x06, 0, text)) => assert!(text.contains("stopped"), "{text}"),
        other => panic!("expected an error, got {other:?}"),
    }
}
