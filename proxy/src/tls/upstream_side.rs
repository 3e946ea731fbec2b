//! TLS towards PostgreSQL with libpq's `sslmode` meanings, and the channel-binding data
//! (`tls-server-end-point`) SCRAM-SHA-256-PLUS needs.

use super::{load_roots, provider, TlsError};
use crate::config::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{CertificateError, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sha2::Digest;
use std::path::Path;
use std::sync::Arc;
use tokio_rustls::TlsConnector;

/// Upstream TLS settings for one target.
pub struct UpstreamTls {
    pub connector: TlsConnector,
    /// The name the server certificate is checked against (verify-full) and sent as SNI.
    pub server_name: ServerName<'static>,
    /// How the server certificate is checked, kept for [`UpstreamTls::with_client_cert`].
    verifier: Arc<dyn ServerCertVerifier>,
}

impl std::fmt::Debug for UpstreamTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTls")
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl UpstreamTls {
    /// Settings for `sslmode` against `host`. `ca_file` is required for verify-ca and
    /// verify-full (validated by the caller). Returns `None` for `disable`.
    pub fn new(
        sslmode: SslMode,
        host: &str,
        ca_file: Option<&Path>,
    ) -> Result<Option<UpstreamTls>, TlsError> {
        let verifier: Arc<dyn ServerCertVerifier> = match (sslmode, ca_file) {
            (SslMode::Disable, _) => return Ok(None),
            (SslMode::VerifyCa | SslMode::VerifyFull, Some(ca)) => {
                let roots = Arc::new(load_roots(ca)?);
                let inner = WebPkiServerVerifier::builder_with_provider(roots, provider())
                    .build()
                    .map_err(|e| TlsError::Verifier(e.to_string()))?;
                if sslmode == SslMode::VerifyFull {
                    inner
                } else {
                    Arc::new(ChainOnly { inner })
                }
            }
            // allow/prefer/require: encrypted but unauthenticated, as libpq does without a
            // root certificate. The handshake signature is still checked.
            _ => Arc::new(NoVerify(provider())),
        };
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(verifier.clone())
            .with_no_client_auth();
        let server_name = ServerName::try_from(host.to_string())
            .map_err(|e| TlsError::Verifier(format!("invalid upstream host name {host}: {e}")))?;
        Ok(Some(UpstreamTls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            verifier,
        }))
    }

    /// The same settings, presenting `chain` (with its `key`) as the client certificate:
    /// `[auth] mode = "certificate"` mints one per session.
    pub fn with_client_cert(
        &self,
        chain: Vec<CertificateDer<'static>>,
        key: rustls_pki_types::PrivateKeyDer<'static>,
    ) -> Result<UpstreamTls, TlsError> {
        let config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(self.verifier.clone())
            .with_client_auth_cert(chain, key)?;
        Ok(UpstreamTls {
            connector: TlsConnector::from(Arc::new(config)),
            server_name: self.server_name.clone(),
            verifier: self.verifier.clone(),
        })
    }
}

/// verify-ca: the chain must lead to the CA; the host name is not checked.
#[derive(Debug)]
struct ChainOnly {
    inner: Arc<WebPkiServerVerifier>,
}

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// prefer/require: any certificate, as libpq without a root certificate.
#[derive(Debug)]
struct NoVerify(Arc<CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// RFC 5929 `tls-server-end-point` channel-binding data: the server certificate hashed with
/// its signature's hash, SHA-256 for MD5 and SHA-1 (and anything unrecognised).
pub fn tls_server_end_point(cert: &CertificateDer<'_>) -> Vec<u8> {
    let oid = x509_parser::parse_x509_certificate(cert.as_ref())
        .ok()
        .map(|(_, c)| c.signature_algorithm.algorithm.to_id_string());
    match oid.as_deref() {
        // sha384WithRSAEncryption, ecdsa-with-SHA384
        Some("1.2.840.113549.1.1.12") | Some("1.2.840.10045.4.3.3") => {
            sha2::Sha384::digest(cert.as_ref()).to_vec()
        }
        // sha512WithRSAEncryption, ecdsa-with-SHA512
        Some("1.2.840.113549.1.1.13") | Some("1.2.840.10045.4.3.4") => {
            sha2::Sha512::digest(cert.as_ref()).to_vec()
        }
        _ => sha2::Sha256::digest(cert.as_ref()).to_vec(),
    }
}
