//! TLS for `bt serve --tls-cert --tls-key` (cargo feature `tls`): rustls with the
//! ring provider, wrapped around each accepted socket. Handshakes happen on first
//! use, under the socket's read and write timeouts.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConnection, StreamOwned};

use super::ServerError;
use super::http::{Stream, Wrap};

struct TlsStream(StreamOwned<ServerConnection, TcpStream>);

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

impl Stream for TlsStream {
    fn finish(&mut self) {
        self.0.conn.send_close_notify();
        let _ = self.0.flush();
    }
}

fn tls_err(path: &Path, e: impl std::fmt::Display) -> ServerError {
    ServerError::Tls(format!("{}: {e}", path.display()))
}

/// Loads the PEM certificate chain and key; returns the socket wrapper.
pub fn wrapper(cert: &Path, key: &Path) -> Result<Arc<Wrap>, ServerError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| tls_err(cert, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| tls_err(cert, e))?;
    if certs.is_empty() {
        return Err(tls_err(cert, "no certificate in the file"));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| tls_err(key, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ServerError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .map_err(|e| tls_err(key, e))?;
    let config = Arc::new(config);
    Ok(Arc::new(move |tcp: TcpStream| {
        let conn = ServerConnection::new(config.clone()).map_err(std::io::Error::other)?;
        Ok(Box::new(TlsStream(StreamOwned::new(conn, tcp))) as Box<dyn Stream>)
    }))
}
