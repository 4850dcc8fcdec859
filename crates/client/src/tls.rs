//! TLS for `wss::` connections (rustls with the *ring* provider): which
//! certificates are trusted, and the byte stream a WebSocket runs over,
//! plain or encrypted.
//!
//! Trusted roots are the Mozilla set built into `webpki-roots`, or the PEM
//! file of `tls_roots` instead. `tls_verify=unsafe_off` accepts any
//! certificate (signatures are still checked, so the handshake is sound,
//! but anyone can impersonate the server): for tests against self-signed
//! servers only. The server name checked is the endpoint's host (a DNS
//! name or an IP address).
//!
//! What it must not do: know about WebSocket or QWP (the transport does).

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, StreamOwned};

use crate::conf::{ClientConf, Endpoint};
use crate::error::{ClientError, Result};

/// A connection's bytes: plain TCP, or TLS over TCP.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// The TCP socket underneath (timeouts, peeking, shutdown).
    pub(crate) fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(s) => s,
            Stream::Tls(s) => s.get_ref(),
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// The client settings of a `wss::` connection string.
pub(crate) fn client_config(conf: &ClientConf) -> Result<Arc<ClientConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let bad = |reason: String| ClientError::Tls { reason };
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(e.to_string()))?;
    let config = if conf.tls_verify {
        let mut roots = RootCertStore::empty();
        match &conf.tls_roots {
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Some(path) => {
                let certs = CertificateDer::pem_file_iter(path)
                    .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                    .map_err(|e| bad(format!("tls_roots {path}: {e}")))?;
                if certs.is_empty() {
                    return Err(bad(format!("tls_roots {path}: no certificate in it")));
                }
                for cert in certs {
                    roots
                        .add(cert)
                        .map_err(|e| bad(format!("tls_roots {path}: {e}")))?;
                }
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// Wraps `tcp` in TLS to `endpoint` (the handshake runs with the first
/// read or write, under the socket's timeouts).
pub(crate) fn wrap(
    config: Arc<ClientConfig>,
    endpoint: &Endpoint,
    tcp: TcpStream,
) -> Result<Stream> {
    let name = ServerName::try_from(endpoint.host.clone()).map_err(|e| ClientError::Tls {
        reason: format!("{} is not a valid server name: {e}", endpoint.host),
    })?;
    let conn = ClientConnection::new(config, name).map_err(|e| ClientError::Tls {
        reason: e.to_string(),
    })?;
    Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
}

/// `tls_verify=unsafe_off`: any certificate, signatures still checked.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}
