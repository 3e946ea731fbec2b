//! TLS for both legs: the proxy's own server identity towards clients, the libpq-style
//! verification modes towards PostgreSQL, and a stream type that is either plain or TLS.

pub mod check;
mod client_side;
mod halves;
mod stream;
mod upstream_side;

pub use client_side::{peer_common_name, ClientTls, ALPN_POSTGRESQL};
pub use halves::{ReadHalf, WriteHalf};
pub use stream::MaybeTls;
pub use upstream_side::{tls_server_end_point, UpstreamTls};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// Errors while loading TLS material or building rustls settings.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM {what}")]
    Empty { what: &'static str, path: String },
    #[error("{path}: invalid PEM {what}: {detail}")]
    Pem {
        what: &'static str,
        path: String,
        detail: String,
    },
    #[error("TLS settings rejected: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(String),
}

/// The one crypto provider of the whole build.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_file(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        what,
        path: path.display().to_string(),
        source,
    })
}

/// Reads every certificate in a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let data = read_file("certificate file", path)?;
    let certs = CertificateDer::pem_slice_iter(&data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            what: "certificate",
            path: path.display().to_string(),
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what: "certificate",
            path: path.display().to_string(),
        });
    }
    Ok(certs)
}

/// Reads the first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let data = read_file("key file", path)?;
    PrivateKeyDer::from_pem_slice(&data).map_err(|e| TlsError::Pem {
        what: "private key",
        path: path.display().to_string(),
        detail: e.to_string(),
    })
}

/// A root store holding every certificate of a PEM file.
pub fn load_roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert)?;
    }
    Ok(roots)
}

/// Whether bytes are already waiting on a socket where none may be: between an SSLRequest
/// and the TLS handshake. Such bytes were sent in plaintext and must never be treated as
/// if they had arrived over TLS (CVE-2021-23214, CVE-2021-23222).
pub fn has_pending_bytes(tcp: &tokio::net::TcpStream) -> bool {
    let mut probe = [0u8; 1];
    let mut buf = tokio::io::ReadBuf::new(&mut probe);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    matches!(tcp.poll_peek(&mut cx, &mut buf), std::task::Poll::Ready(Ok(n)) if n > 0)
}
