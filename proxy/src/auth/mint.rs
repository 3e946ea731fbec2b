//! Short-lived upstream client certificates (`[auth] mode = "certificate"`): one per
//! session, CN = the database user, signed by the `[auth.upstream_cert]` CA that the
//! server trusts (`ssl_ca_file`, `hostssl ... cert` in pg_hba.conf).
//!
//! ECDSA P-256 keys: generating one and signing costs well under a millisecond, so a
//! certificate per session is affordable and none outlives `lifetime`.

use super::AuthError;
use rcgen::{
    CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use std::path::Path;
use std::time::Duration;

/// Clock skew tolerated between pgvigil and the server.
const BACKDATE: Duration = Duration::from_secs(300);

/// The upstream client CA, loaded.
pub struct UpstreamCa {
    issuer: Issuer<'static, KeyPair>,
    ca_der: CertificateDer<'static>,
    lifetime: Duration,
}

impl std::fmt::Debug for UpstreamCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamCa")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

/// A minted certificate chain and its key.
pub struct Minted {
    /// The user's certificate, then the CA's.
    pub chain: Vec<CertificateDer<'static>>,
    /// The certificate's fresh private key.
    pub key: PrivateKeyDer<'static>,
}

impl UpstreamCa {
    /// Loads the CA certificate and key (PEM).
    pub fn load(cert: &Path, key: &Path, lifetime: Duration) -> Result<UpstreamCa, AuthError> {
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| AuthError::Mint(format!("cannot read {}: {e}", p.display())))
        };
        let key_pem = zeroize::Zeroizing::new(read(key)?);
        let key = KeyPair::from_pem(&key_pem)
            .map_err(|e| AuthError::Mint(format!("{}: not a usable key: {e}", key_display(key))))?;
        let ca_der = crate::tls::load_certs(cert)
            .map_err(|e| AuthError::Mint(e.to_string()))?
            .into_iter()
            .next()
            .ok_or_else(|| AuthError::Mint(format!("{}: no certificate", cert.display())))?;
        let issuer = Issuer::from_ca_cert_der(&ca_der, key)
            .map_err(|e| AuthError::Mint(format!("{}: {e}", cert.display())))?;
        Ok(UpstreamCa {
            issuer,
            ca_der,
            lifetime,
        })
    }

    /// A fresh certificate for `user`, valid from a few minutes ago for `lifetime`.
    pub fn mint(&self, user: &str) -> Result<Minted, AuthError> {
        let fail = |e: rcgen::Error| AuthError::Mint(format!("cannot mint a certificate: {e}"));
        let key = KeyPair::generate().map_err(fail)?;
        let mut params = CertificateParams::default();
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(DnType::CommonName, user);
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - BACKDATE;
        params.not_after = now + self.lifetime;
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
        let cert = params.signed_by(&key, &self.issuer).map_err(fail)?;
        Ok(Minted {
            chain: vec![cert.der().clone(), self.ca_der.clone()],
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        })
    }
}

fn key_display(p: &Path) -> String {
    p.display().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_certificates_name_the_user_and_expire() {
        let dir = tempfile::tempdir().unwrap();
        let (crt, key) = crate::certs::write_upstream_client_ca(dir.path()).unwrap();
        let ca = UpstreamCa::load(&crt, &key, Duration::from_secs(600)).unwrap();
        let m = ca.mint("alice").unwrap();
        let (_, parsed) = x509_parser::parse_x509_certificate(m.chain[0].as_ref()).unwrap();
        let cn = parsed.subject().iter_common_name().next().unwrap();
        assert_eq!(cn.as_str().unwrap(), "alice");
        let life =
            parsed.validity().not_after.timestamp() - parsed.validity().not_before.timestamp();
        assert_eq!(life, 600 + 300);
        // Each session gets its own key.
        let other = ca.mint("alice").unwrap();
        assert_ne!(m.chain[0], other.chain[0]);
    }
}
