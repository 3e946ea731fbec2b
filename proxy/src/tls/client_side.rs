//! TLS towards clients: the proxy's certificate, optional client-certificate verification,
//! and the `postgresql` ALPN protocol that direct TLS (PostgreSQL 17) requires.

use super::{load_certs, load_key, load_roots, provider, TlsError};
use crate::config::ClientTlsMode;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsAcceptor;

/// ALPN protocol name PostgreSQL registers for its wire protocol.
pub const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// Client-side TLS settings, built once per config load.
pub struct ClientTls {
    pub mode: ClientTlsMode,
    pub acceptor: TlsAcceptor,
    /// `tls-server-end-point` of pgvigil's certificate: the channel binding of the SCRAM
    /// exchanges pgvigil runs with clients (`[auth] mode = "scram"`).
    pub end_point: Vec<u8>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("mode", &self.mode)
            .finish()
    }
}

impl ClientTls {
    /// Builds the acceptor; `ca_file` is required for verify-ca and verify-full (the caller
    /// validated that), and optional otherwise (then client certificates are not asked for).
    pub fn new(
        mode: ClientTlsMode,
        cert_file: &Path,
        key_file: &Path,
        ca_file: Option<&Path>,
    ) -> Result<ClientTls, TlsError> {
        let certs = load_certs(cert_file)?;
        let end_point = certs
            .first()
            .map(super::tls_server_end_point)
            .unwrap_or_default();
        let key = load_key(key_file)?;
        let builder = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?;
        let builder = match (mode, ca_file) {
            (ClientTlsMode::VerifyCa | ClientTlsMode::VerifyFull, Some(ca)) => {
                let roots = Arc::new(load_roots(ca)?);
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider())
                    .build()
                    .map_err(|e| TlsError::Verifier(e.to_string()))?;
                builder.with_client_cert_verifier(verifier)
            }
            _ => builder.with_no_client_auth(),
        };
        let mut config = builder.with_single_cert(certs, key)?;
        config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
        Ok(ClientTls {
            mode,
            acceptor: TlsAcceptor::from(Arc::new(config)),
            end_point,
        })
    }
}

/// The subject CN of a peer certificate, for verify-full's CN = user name rule.
pub fn peer_common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}
