//! Our SDK's pool and ingest connections against the real server: frames
//! pipelined and acknowledged, pool limits and waiting, broken or
//! unacknowledged connections closed instead of lent again, discard,
//! reaping, concurrent borrowers, failover across endpoints, a server
//! that closed an idle connection or stopped answering.

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::TestServer;
use common::raw::{block, longs, message, timestamps};
use quiver_client::{Client, ClientError, Lane, LaneStats};
use quiver_qwp::{IngressMessage, StringList, SymbolDelta, encode_ingress_message};

fn no_symbols() -> SymbolDelta<'static> {
    SymbolDelta {
        start: 0,
        entries: StringList::from_strs(Vec::<&str>::new()),
    }
}

/// One frame of `rows` rows into `table` (`v` counts from `first`).
fn frame(table: &str, first: i64, rows: i64, defer: bool) -> Vec<u8> {
    let msg: IngressMessage<'static> = message(
        no_symbols(),
        defer,
        vec![block(
            table,
            vec![
                ("v", longs(first..first + rows)),
                (
                    "",
                    timestamps((first..first + rows).map(|i| 1_700_000_000_000_000 + i)),
                ),
            ],
        )],
    );
    let mut out = Vec::new();
    encode_ingress_message(&msg, &mut out).unwrap();
    out
}

fn rows(server: &TestServer, table: &str) -> u64 {
    server
        .storage()
        .snapshot(table)
        .map_or(0, |s| s.row_count())
}

fn client(server: &TestServer, extra: &str) -> Client {
    Client::from_conf(&format!("ws::addr={};{extra}", server.addr())).unwrap()
}

#[test]
fn a_writer_pipelines_frames_and_waits_for_their_acks() {
    let server = TestServer::start();
    let client = client(&server, "");
    let mut writer = client.writer().unwrap();
    // Two deferred frames and the one that commits them: no answer until
    // the third, which covers all three.
    let a = writer.send(frame("t", 0, 10, true)).unwrap();
    let b = writer.send(frame("t", 10, 10, true)).unwrap();
    assert!(writer.in_deferred_group());
    // No answer comes for a frame of an open group: waiting is refused,
    // not left to hang, and the connection stays usable.
    match writer.wait_acked(b) {
        Err(e @ ClientError::Usage(_)) => assert!(!e.breaks_connection()),
        other => panic!("expected a usage error, got {other:?}"),
    }
    let c = writer.send(frame("t", 20, 5, false)).unwrap();
    assert!(!writer.in_deferred_group());
    assert_eq!((a.sequence(), b.sequence(), c.sequence()), (0, 1, 2));
    assert_eq!(writer.unacked(), 3);
    writer.wait_acked(c).unwrap();
    assert_eq!(writer.unacked(), 0);
    assert_eq!(rows(&server, "t"), 25);
    // The connection goes back and is lent again, numbering on.
    drop(writer);
    let mut writer = client.writer().unwrap();
    let d = writer.send(frame("t", 25, 1, false)).unwrap();
    assert_eq!(d.sequence(), 3);
    writer.wait_acked(d).unwrap();
    assert_eq!(rows(&server, "t"), 26);
    assert_eq!(client.writer_stats().open, 1);
    // A ticket is redeemed only on the connection that issued it.
    let mut other = client.writer().unwrap();
    let e = other.send(frame("t", 26, 1, false)).unwrap();
    assert!(matches!(other.wait_acked(d), Err(ClientError::Usage(_))));
    other.wait_acked(e).unwrap();
    assert!(!other.is_broken());
}

#[test]
fn the_pool_lends_up_to_its_maximum_then_waits_then_fails() {
    let server = TestServer::start();
    let client = client(
        &server,
        "sender_pool_min=1;sender_pool_max=2;acquire_timeout_ms=400;",
    );
    assert_eq!(
        client.writer_stats().open,
        1,
        "the minimum is opened eagerly"
    );
    let first = client.writer().unwrap();
    let second = client.writer().unwrap();
    assert_eq!(client.writer_stats().open, 2);
    let start = Instant::now();
    match client.writer() {
        Err(ClientError::PoolExhausted { lane, max, waited }) => {
            assert_eq!((lane, max), (Lane::Writer, 2));
            assert!(waited >= Duration::from_millis(400), "{waited:?}");
        }
        other => panic!("expected PoolExhausted, got {other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_millis(400));
    drop(first);
    drop(second);
    assert_eq!(client.writer_stats(), LaneStats { open: 2, idle: 2 });

    // A borrower past the maximum gets the first connection to come back,
    // and no new one is opened for it.
    let patient = Arc::new(self::client(
        &server,
        "sender_pool_min=1;sender_pool_max=1;acquire_timeout_ms=30000;",
    ));
    let held = patient.writer().unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = {
        let patient = Arc::clone(&patient);
        thread::spawn(move || {
            let mut w = patient.writer().unwrap();
            tx.send(()).unwrap();
            let seq = w.send(frame("t", 0, 1, false)).unwrap();
            w.wait_acked(seq).unwrap();
        })
    };
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "the waiter got a connection while the only one was lent"
    );
    drop(held);
    rx.recv_timeout(Duration::from_secs(30)).unwrap();
    waiter.join().unwrap();
    assert_eq!(patient.writer_stats().open, 1, "no second connection");
}

#[test]
fn a_connection_that_saw_an_error_is_closed_not_lent_again() {
    let server = TestServer::start();
    let client = client(&server, "sender_pool_min=1;sender_pool_max=2;");
    let mut writer = client.writer().unwrap();
    let bad = writer
        .send(b"QWP1\x01\x08\x00\x00\xff\xff\xff\xff".to_vec())
        .unwrap();
    match writer.wait_acked(bad) {
        Err(ClientError::Server {
            status, sequence, ..
        }) => assert_eq!((status, sequence), (0x05, bad.sequence())),
        other => panic!("expected a parse error ack, got {other:?}"),
    }
    assert!(writer.is_broken());
    // Later use fails without touching the socket.
    assert!(writer.send(frame("t", 0, 1, false)).is_err());
    drop(writer);
    assert_eq!(client.writer_stats(), LaneStats { open: 0, idle: 0 });
    // The next borrow opens a fresh connection, which works.
    let mut writer = client.writer().unwrap();
    let seq = writer.send(frame("t", 0, 3, false)).unwrap();
    assert_eq!(seq.sequence(), 0, "a new connection numbers from 0");
    writer.wait_acked(seq).unwrap();
    assert_eq!(rows(&server, "t"), 3);
}

#[test]
fn a_frame_over_the_servers_limit_is_refused_before_it_is_sent() {
    let server = TestServer::start();
    let client = client(&server, "");
    let mut writer = client.writer().unwrap();
    let max = writer.max_frame();
    assert!(max > 0 && max <= 16 << 20);
    match writer.send(vec![0; max + 1]) {
        Err(ClientError::FrameTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
        other => panic!("expected FrameTooLarge, got {other:?}"),
    }
    assert!(!writer.is_broken());
    let seq = writer.send(frame("t", 0, 2, false)).unwrap();
    writer.wait_acked(seq).unwrap();
    assert_eq!(rows(&server, "t"), 2);
}

#[test]
fn discard_closes_the_connection_and_its_deferred_rows_are_rolled_back() {
    let server = TestServer::start();
    let client = client(&server, "sender_pool_min=0;");
    let mut writer = client.writer().unwrap();
    writer.send(frame("t", 0, 5, true)).unwrap();
    writer.discard();
    assert_eq!(client.writer_stats().open, 0);
    let mut writer = client.writer().unwrap();
    let seq = writer.send(frame("t", 100, 1, false)).unwrap();
    writer.wait_acked(seq).unwrap();
    assert_eq!(
        rows(&server, "t"),
        1,
        "the discarded deferred rows never commit"
    );
}

#[test]
fn a_writer_returned_with_unacknowledged_frames_is_not_lent_again() {
    let server = TestServer::start();
    let client = client(&server, "sender_pool_min=0;");
    let mut writer = client.writer().unwrap();
    writer.send(frame("t", 0, 5, true)).unwrap();
    drop(writer);
    assert_eq!(client.writer_stats().open, 0, "closed, not idle");
    // Another borrower's commit does not commit the first one's rows.
    let mut writer = client.writer().unwrap();
    let seq = writer.send(frame("t", 100, 1, false)).unwrap();
    assert_eq!(seq.sequence(), 0, "a fresh connection");
    writer.wait_acked(seq).unwrap();
    assert_eq!(rows(&server, "t"), 1);
}

#[test]
fn idle_connections_are_reaped_down_to_the_minimum() {
    let server = TestServer::start();
    // In the background.
    let auto = client(
        &server,
        "sender_pool_min=1;sender_pool_max=3;idle_timeout_ms=200;pool_reap=auto;",
    );
    let lent: Vec<_> = (0..3).map(|_| auto.writer().unwrap()).collect();
    drop(lent);
    common::wait_for(|| auto.writer_stats().open == 1);
    thread::sleep(Duration::from_millis(300));
    assert_eq!(
        auto.writer_stats(),
        LaneStats { open: 1, idle: 1 },
        "never below the minimum"
    );
    // On request only.
    let manual = client(
        &server,
        "sender_pool_min=1;sender_pool_max=3;idle_timeout_ms=3000;pool_reap=manual;",
    );
    let lent: Vec<_> = (0..3).map(|_| manual.writer().unwrap()).collect();
    drop(lent);
    assert_eq!(manual.reap(), 0, "not idle long enough yet");
    thread::sleep(Duration::from_millis(3200));
    assert_eq!(
        manual.writer_stats().open,
        3,
        "nothing reaps in the background"
    );
    assert_eq!(manual.reap(), 2);
    assert_eq!(manual.writer_stats(), LaneStats { open: 1, idle: 1 });
}

#[test]
fn concurrent_borrowers_share_a_bounded_pool() {
    let server = TestServer::start();
    let client = Arc::new(client(
        &server,
        "sender_pool_min=1;sender_pool_max=3;acquire_timeout_ms=30000;",
    ));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let client = Arc::clone(&client);
            thread::spawn(move || {
                for i in 0..20 {
                    let mut w = client.writer().unwrap();
                    assert!(client.writer_stats().open <= 3);
                    let seq = w.send(frame("t", t * 1000 + i * 10, 10, false)).unwrap();
                    w.wait_acked(seq).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(rows(&server, "t"), 8 * 20 * 10);
    let stats = client.writer_stats();
    assert!(stats.open <= 3, "{stats:?}");
    assert_eq!(
        stats.idle, stats.open,
        "every connection came back to be lent again"
    );
}

#[test]
fn connecting_fails_over_across_endpoints_and_names_the_last_one() {
    let server = TestServer::start();
    // A port nothing listens on.
    let dead = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let client = Client::from_conf(&format!(
        "ws::addr={dead},{};connect_timeout=2000;",
        server.addr()
    ))
    .unwrap();
    let mut writer = client.writer().unwrap();
    let seq = writer.send(frame("t", 0, 1, false)).unwrap();
    writer.wait_acked(seq).unwrap();
    match Client::from_conf(&format!("ws::addr={dead};connect_timeout=2000;")) {
        Err(ClientError::Connect { endpoint, .. }) => {
            assert_eq!(endpoint.to_string(), dead.to_string());
        }
        other => panic!("expected a connect error, got {other:?}"),
    }
    // Lazily: the pool starts without a connection and fails at borrow.
    let lazy = Client::from_conf(&format!("ws::addr={dead};lazy_connect=on;")).unwrap();
    assert!(matches!(lazy.writer(), Err(ClientError::Connect { .. })));
    assert_eq!(
        lazy.writer_stats().open,
        0,
        "a failed open gives its slot back"
    );
}

#[test]
fn durable_acks_are_granted_when_asked_for_and_tls_to_a_plain_server_fails_at_connect() {
    let server = TestServer::start();
    let durable = client(&server, "request_durable_ack=on;");
    let mut writer = durable.writer().unwrap();
    assert!(writer.durable());
    let seq = writer.send(frame("t", 0, 4, false)).unwrap();
    writer.wait_acked(seq).unwrap();
    writer.wait_durable().unwrap();
    let plain = client(&server, "");
    let mut writer = plain.writer().unwrap();
    assert!(!writer.durable());
    assert!(matches!(writer.wait_durable(), Err(ClientError::Usage(_))));
    // The server speaks plain HTTP: the TLS handshake fails, at connect.
    assert!(matches!(
        Client::from_conf(&format!(
            "wss::addr={};tls_verify=unsafe_off;",
            server.addr()
        )),
        Err(ClientError::Connect { .. })
    ));
}

#[test]
fn an_idle_connection_the_server_closed_is_replaced_not_lent() {
    // The server closes ingest connections idle for a second.
    let server = TestServer::start_with(&["--idle-timeout-secs", "1"]);
    let client = client(
        &server,
        "sender_pool_min=1;sender_pool_max=1;pool_reap=manual;",
    );
    assert_eq!(client.writer_stats(), LaneStats { open: 1, idle: 1 });
    thread::sleep(Duration::from_millis(2500));
    let mut writer = client.writer().unwrap();
    let seq = writer.send(frame("t", 0, 2, false)).unwrap();
    assert_eq!(seq.sequence(), 0, "a fresh connection");
    writer.wait_acked(seq).unwrap();
    assert_eq!(rows(&server, "t"), 2);
}

#[test]
fn a_server_that_stops_answering_times_the_wait_out() {
    // A listener that accepts the upgrade and then answers no frame.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let silent = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut ws = tungstenite::accept(stream).unwrap();
        while ws.read().is_ok() {}
    });
    let client = Client::from_conf(&format!(
        "ws::addr={addr};request_timeout=500;sender_pool_min=0;"
    ))
    .unwrap();
    let mut writer = client.writer().unwrap();
    let ticket = writer.send(frame("t", 0, 1, false)).unwrap();
    let start = Instant::now();
    match writer.wait_acked(ticket) {
        Err(ClientError::Timeout { .. }) => {}
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(start.elapsed() >= Duration::from_millis(500));
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(writer.is_broken());
    drop(writer);
    assert_eq!(
        client.writer_stats().open,
        0,
        "a timed-out connection is closed"
    );
    drop(client);
    silent.join().unwrap();
}

#[test]
fn a_connection_whose_raw_frames_defined_symbols_is_not_lent_again() {
    let server = TestServer::start();
    let client = client(&server, "sender_pool_min=0;");
    let mut writer = client.writer().unwrap();
    // A raw frame defining symbol id 0 = "foo".
    let msg = message(
        SymbolDelta {
            start: 0,
            entries: StringList::from_strs(["foo"]),
        },
        false,
        vec![block(
            "raw",
            vec![
                ("s", common::raw::symbol_ids([0])),
                ("", timestamps([1_700_000_000_000_000])),
            ],
        )],
    );
    let mut bytes = Vec::new();
    encode_ingress_message(&msg, &mut bytes).unwrap();
    let t = writer.send(bytes).unwrap();
    writer.wait_acked(t).unwrap();
    drop(writer);
    assert_eq!(
        client.writer_stats().open,
        0,
        "closed: a sender's ids would disagree"
    );
    // Frames without new symbols keep the connection lendable.
    let mut writer = client.writer().unwrap();
    let t = writer.send(frame("t", 0, 1, false)).unwrap();
    writer.wait_acked(t).unwrap();
    drop(writer);
    assert_eq!(client.writer_stats(), LaneStats { open: 1, idle: 1 });
}
