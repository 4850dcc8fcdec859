//! Our SDK over `wss::`: a TLS terminator (rustls, a certificate chain made
//! by `openssl` for this run) in front of the real server. Ingest and a
//! query go through with the chain's CA as `tls_roots`; the built-in roots
//! refuse the certificate, so does a host name it does not name, and
//! `tls_verify=unsafe_off` accepts it.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use arrow::array::{ArrayRef, Int64Array, RecordBatch, TimestampMicrosecondArray};
use common::TestServer;
use quiver_client::{Ack, ArrowOptions, Client, ClientError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// Makes a CA and a certificate for 127.0.0.1 signed by it; returns the
/// paths of the CA, the certificate and its key.
fn certificates(dir: &Path) -> (String, String, String) {
    let path = |name: &str| dir.join(name).to_str().unwrap().to_owned();
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"][..],
        &ec,
        &["-keyout", &path("ca.key"), "-out", &path("ca.pem")],
        &["-days", "2", "-subj", "/CN=quiver test CA"],
    ]
    .concat());
    run(&[
        &["req"][..],
        &ec,
        &["-keyout", &path("leaf.key"), "-out", &path("leaf.csr")],
        &["-subj", "/CN=127.0.0.1"],
    ]
    .concat());
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        &path("leaf.csr"),
        "-CA",
        &path("ca.pem"),
        "-CAkey",
        &path("ca.key"),
        "-CAcreateserial",
        "-out",
        &path("leaf.pem"),
        "-days",
        "2",
        "-extfile",
        &path("ext.cnf"),
    ]);
    (path("ca.pem"), path("leaf.pem"), path("leaf.key"))
}

/// Accepts TLS on a loopback port and relays each connection to
/// `backend`; returns the port.
fn tls_terminator(cert: &str, key: &str, backend: String) -> u16 {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let config = Arc::new(
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap(),
    );
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for client in listener.incoming() {
            let Ok(client) = client else { return };
            let config = Arc::clone(&config);
            let backend = backend.clone();
            thread::spawn(move || relay(config, client, &backend));
        }
    });
    port
}

/// Copies both ways until either side closes (short read timeouts let
/// one thread serve both directions).
fn relay(config: Arc<ServerConfig>, client: TcpStream, backend: &str) {
    let tick = Some(Duration::from_millis(2));
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    client.set_read_timeout(tick).unwrap();
    let mut tls = StreamOwned::new(conn, client);
    let mut server = TcpStream::connect(backend).unwrap();
    server.set_read_timeout(tick).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    let quiet =
        |e: &std::io::Error| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut);
    loop {
        match tls.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if server.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            Err(e) if quiet(&e) => {}
            Err(_) => return,
        }
        match server.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if tls.write_all(&buf[..n]).and_then(|()| tls.flush()).is_err() {
                    return;
                }
            }
            Err(e) if quiet(&e) => {}
            Err(_) => return,
        }
    }
}

fn batch(rows: i64) -> RecordBatch {
    let ts: ArrayRef = Arc::new(
        TimestampMicrosecondArray::from_iter_values((0..rows).map(|i| 1_700_000_000_000_000 + i))
            .with_timezone("UTC"),
    );
    let v: ArrayRef = Arc::new(Int64Array::from_iter_values(0..rows));
    RecordBatch::try_from_iter([("ts", ts), ("v", v)]).unwrap()
}

#[test]
fn wss_ingest_and_queries_go_through_tls_and_certificates_are_checked() {
    let temp = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(temp.path());
    let server = TestServer::start();
    let port = tls_terminator(&cert, &key, server.addr());

    let client = Client::from_conf(&format!("wss::addr=127.0.0.1:{port};tls_roots={ca};")).unwrap();
    client
        .send_batch(&batch(1000), &ArrowOptions::at_column("t", "ts"), Ack::Ok)
        .unwrap();
    let sum = client.query("SELECT sum(v) FROM t").fetch().unwrap();
    let batches: Vec<RecordBatch> = sum.map(Result::unwrap).collect();
    let total = batches[0]
        .column(0)
        .as_any()
        .downcast_ref::<Int64Array>()
        .unwrap()
        .value(0);
    assert_eq!(total, (0..1000).sum::<i64>());

    // The built-in (Mozilla) roots do not trust this CA.
    match Client::from_conf(&format!("wss::addr=127.0.0.1:{port};")) {
        Err(ClientError::Connect { reason, .. }) => {
            assert!(reason.to_lowercase().contains("certificate"), "{reason}")
        }
        other => panic!("expected an untrusted certificate, got {other:?}"),
    }
    // The certificate names 127.0.0.1, not localhost.
    match Client::from_conf(&format!("wss::addr=localhost:{port};tls_roots={ca};")) {
        Err(ClientError::Connect { reason, .. }) => {
            assert!(reason.to_lowercase().contains("certificate"), "{reason}")
        }
        other => panic!("expected a name mismatch, got {other:?}"),
    }
    // Checks off: accepted (for self-signed test servers only).
    let trusting = Client::from_conf(&format!(
        "wss::addr=localhost:{port};tls_verify=unsafe_off;"
    ))
    .unwrap();
    assert_eq!(
        trusting.query("SELECT * FROM t").execute().unwrap().rows,
        1000
    );
    // A missing roots file is a TLS settings error, before any connection.
    assert!(matches!(
        Client::from_conf(&format!(
            "wss::addr=127.0.0.1:{port};tls_roots=/nonexistent.pem;"
        )),
        Err(ClientError::Tls { .. })
    ));
}
