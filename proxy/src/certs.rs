//! Development certificates: a throwaway CA plus a server and a client certificate
//! signed by it, written as PEM files (`pgvigil certs --out DIR [--host NAME]...`).
//!
//! This is for development, tests and `pgvigil demo` only: the CA key is written next to
//! the certificates, so anyone who can read the directory can mint certificates that the
//! CA's users will trust.

use std::fmt::Write as _;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};
use time::{Duration, OffsetDateTime};

/// Hosts put in the server certificate when the caller names none.
const DEFAULT_HOSTS: [&str; 2] = ["localhost", "127.0.0.1"];
/// Common name of the generated CA.
const CA_COMMON_NAME: &str = "pgvigil development CA";
/// Validity: 825 days is the longest lifetime Apple platforms accept for TLS server
/// certificates, so the same files work with every client we care about.
const VALIDITY_DAYS: i64 = 825;

/// Errors from generating or writing development certificates.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// The output directory could not be created.
    #[error(
        "cannot create certificate directory {path}: {source} (choose a writable --out directory)"
    )]
    CreateDir {
        /// Directory that was being created.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
    /// A host name is not usable as a DNS subject alternative name.
    #[error("invalid host name {host:?} for the server certificate: {reason} (pass a DNS name or an IP address)")]
    InvalidHost {
        /// The offending host as given.
        host: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The client user name is empty: PostgreSQL compares the certificate CN with the user.
    #[error("the client certificate user name is empty (pass the PostgreSQL user the client certificate is for)")]
    EmptyClientUser,
    /// Key generation or signing failed.
    #[error("cannot generate the {what}: {source}")]
    Generate {
        /// Which object was being generated ("CA certificate", "server key", ...).
        what: &'static str,
        /// Underlying rcgen error.
        source: rcgen::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source} (check that the --out directory is writable)")]
    Write {
        /// File being written.
        path: PathBuf,
        /// Underlying I/O error.
        source: std::io::Error,
    },
}

/// Paths of the files written by [`write_dev_certs`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCerts {
    /// Self-signed CA certificate (`ca.crt`): the root to trust (`sslrootcert`, `ca_file`).
    pub ca_cert: PathBuf,
    /// CA private key (`ca.key`, mode 0600).
    pub ca_key: PathBuf,
    /// Server certificate (`server.crt`) for the requested hosts, signed by the CA.
    pub server_cert: PathBuf,
    /// Server private key (`server.key`, mode 0600).
    pub server_key: PathBuf,
    /// Client certificate (`client.crt`) whose CN is the client user, signed by the CA.
    pub client_cert: PathBuf,
    /// Client private key (`client.key`, mode 0600).
    pub client_key: PathBuf,
}

impl DevCerts {
    /// A human-readable description of what was written and how to use it.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail, so the results are ignored.
        let _ = writeln!(
            s,
            "Wrote development certificates (do not use in production):"
        );
        for (label, path) in [
            ("CA certificate     ", &self.ca_cert),
            ("CA key             ", &self.ca_key),
            ("server certificate ", &self.server_cert),
            ("server key         ", &self.server_key),
            ("client certificate ", &self.client_cert),
            ("client key         ", &self.client_key),
        ] {
            let _ = writeln!(s, "  {label}{}", path.display());
        }
        let _ = writeln!(
            s,
            "Clients trust the server with sslrootcert={} sslmode=verify-full;",
            self.ca_cert.display()
        );
        let _ = writeln!(
            s,
            "a client certificate is presented with sslcert={} sslkey={}.",
            self.client_cert.display(),
            self.client_key.display()
        );
        // No trailing newline: callers print it with println!.
        s.truncate(s.trim_end().len());
        s
    }
}

/// Generates a development CA, a server certificate for `hosts` and a client certificate
/// for `client_user`, and writes them as PEM files into `out` (created if missing).
///
/// `hosts` become the server certificate's subject alternative names (IP SANs for IP
/// addresses, DNS SANs otherwise) and its first entry the CN; when empty, `localhost` and
/// `127.0.0.1` are used. Existing files with the same names are replaced.
pub fn write_dev_certs(
    out: &Path,
    hosts: &[String],
    client_user: &str,
) -> Result<DevCerts, CertsError> {
    if client_user.is_empty() {
        return Err(CertsError::EmptyClientUser);
    }
    let hosts: Vec<String> = if hosts.is_empty() {
        DEFAULT_HOSTS.iter().map(|h| (*h).to_owned()).collect()
    } else {
        hosts.to_vec()
    };
    let sans = hosts
        .iter()
        .map(|h| san_for(h))
        .collect::<Result<Vec<_>, _>>()?;

    std::fs::create_dir_all(out).map_err(|source| CertsError::CreateDir {
        path: out.to_owned(),
        source,
    })?;

    let now = OffsetDateTime::now_utc();
    // Back-date by a day so that clocks that are slightly behind still accept the files.
    let not_before = now - Duration::days(1);
    let not_after = now + Duration::days(VALIDITY_DAYS);

    // CA.
    let ca_key = generate_key("CA key")?;
    let mut ca_params = CertificateParams::default();
    ca_params.distinguished_name = rcgen::DistinguishedName::new();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, CA_COMMON_NAME);
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    ca_params.not_before = not_before;
    ca_params.not_after = not_after;
    let ca_cert = ca_params
        .self_signed(&ca_key)
        .map_err(|source| CertsError::Generate {
            what: "CA certificate",
            source,
        })?;
    let ca_pem = ca_cert.pem();
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca_params, ca_key);

    // Server: CN is the first host (what older clients that ignore SANs look at).
    let server_key = generate_key("server key")?;
    let mut server_params = leaf_params(&hosts[0], not_before, not_after);
    server_params.subject_alt_names = sans;
    server_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = server_params
        .signed_by(&server_key, &issuer)
        .map_err(|source| CertsError::Generate {
            what: "server certificate",
            source,
        })?;

    // Client: PostgreSQL (and the proxy) compare the CN with the user name.
    let client_key = generate_key("client key")?;
    let mut client_params = leaf_params(client_user, not_before, not_after);
    client_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let client_cert = client_params
        .signed_by(&client_key, &issuer)
        .map_err(|source| CertsError::Generate {
            what: "client certificate",
            source,
        })?;

    let certs = DevCerts {
        ca_cert: out.join("ca.crt"),
        ca_key: out.join("ca.key"),
        server_cert: out.join("server.crt"),
        server_key: out.join("server.key"),
        client_cert: out.join("client.crt"),
        client_key: out.join("client.key"),
    };
    write_file(&certs.ca_key, &ca_key_pem, FileKind::PrivateKey)?;
    write_file(&certs.ca_cert, &ca_pem, FileKind::Certificate)?;
    write_file(
        &certs.server_key,
        &server_key.serialize_pem(),
        FileKind::PrivateKey,
    )?;
    write_file(
        &certs.server_cert,
        &server_cert.pem(),
        FileKind::Certificate,
    )?;
    write_file(
        &certs.client_key,
        &client_key.serialize_pem(),
        FileKind::PrivateKey,
    )?;
    write_file(
        &certs.client_cert,
        &client_cert.pem(),
        FileKind::Certificate,
    )?;
    Ok(certs)
}

/// The subject alternative name for one host: an IP SAN when it parses as an address,
/// because clients match IP literals only against IP SANs.
fn san_for(host: &str) -> Result<SanType, CertsError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SanType::IpAddress(ip));
    }
    let invalid = |reason: String| CertsError::InvalidHost {
        host: host.to_owned(),
        reason,
    };
    check_dns_name(host).map_err(invalid)?;
    let name = host
        .to_owned()
        .try_into()
        .map_err(|e: rcgen::Error| invalid(e.to_string()))?;
    Ok(SanType::DnsName(name))
}

/// rcgen accepts any ASCII string as a DNS SAN; check the shape here so that a typo is
/// reported now rather than as a confusing verification failure in a client later.
fn check_dns_name(host: &str) -> Result<(), String> {
    if host.is_empty() {
        return Err("it is empty".to_owned());
    }
    if host.len() > 253 {
        return Err("it is longer than 253 characters".to_owned());
    }
    let host = host.strip_suffix('.').unwrap_or(host);
    for (i, label) in host.split('.').enumerate() {
        // A wildcard is only meaningful as the whole leftmost label.
        if i == 0 && label == "*" {
            continue;
        }
        if label.is_empty() || label.len() > 63 {
            return Err("each dot-separated label must have 1 to 63 characters".to_owned());
        }
        if let Some(c) = label
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(format!("character {c:?} is not allowed in a DNS name"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err("a label cannot start or end with '-'".to_owned());
        }
    }
    Ok(())
}

/// ECDSA P-256 with SHA-256: rcgen's default, accepted by rustls and OpenSSL alike.
fn generate_key(what: &'static str) -> Result<KeyPair, CertsError> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|source| CertsError::Generate { what, source })
}

/// Common name of the CA that signs pgvigil's upstream client certificates.
const UPSTREAM_CA_COMMON_NAME: &str = "pgvigil upstream client CA";

/// Writes the CA that signs the short-lived client certificates pgvigil presents upstream
/// in `[auth] mode = "certificate"` (`upstream-client-ca.crt`, `upstream-client-ca.key`):
/// the server trusts it (`ssl_ca_file`), pgvigil holds its key (`[auth.upstream_cert]`).
/// A CA of its own, not the development CA: it must be trusted for nothing else.
pub fn write_upstream_client_ca(out: &Path) -> Result<(PathBuf, PathBuf), CertsError> {
    std::fs::create_dir_all(out).map_err(|source| CertsError::CreateDir {
        path: out.to_owned(),
        source,
    })?;
    let now = OffsetDateTime::now_utc();
    let key = generate_key("upstream client CA key")?;
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, UPSTREAM_CA_COMMON_NAME);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params.not_before = now - Duration::days(1);
    params.not_after = now + Duration::days(VALIDITY_DAYS);
    let cert = params
        .self_signed(&key)
        .map_err(|source| CertsError::Generate {
            what: "upstream client CA certificate",
            source,
        })?;
    let crt = out.join("upstream-client-ca.crt");
    let key_path = out.join("upstream-client-ca.key");
    write_file(&key_path, &key.serialize_pem(), FileKind::PrivateKey)?;
    write_file(&crt, &cert.pem(), FileKind::Certificate)?;
    Ok((crt, key_path))
}

/// Parameters shared by the end-entity certificates.
fn leaf_params(
    common_name: &str,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.not_before = not_before;
    params.not_after = not_after;
    params
}

/// What a file holds, which decides its permissions.
#[derive(Clone, Copy)]
enum FileKind {
    Certificate,
    PrivateKey,
}

/// Writes `contents` to `path` through a temporary file in the same directory that is
/// renamed into place, so a key is never readable by others, not even for a moment, and
/// a half-written file never replaces a good one.
fn write_file(path: &Path, contents: &str, kind: FileKind) -> Result<(), CertsError> {
    let err = |source| CertsError::Write {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    // tempfile creates the file with mode 0600 on unix.
    let mut tmp = tempfile::Builder::new()
        .prefix(".pgvigil-cert-")
        .tempfile_in(dir)
        .map_err(err)?;
    tmp.write_all(contents.as_bytes()).map_err(err)?;
    tmp.as_file().sync_all().map_err(err)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = match kind {
            FileKind::Certificate => 0o644,
            FileKind::PrivateKey => 0o600,
        };
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = kind;
    tmp.persist(path).map_err(|e| err(e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
    use std::sync::Arc;
    use x509_parser::extensions::GeneralName;
    use x509_parser::prelude::*;

    fn read_der(path: &Path) -> Vec<u8> {
        let pem = std::fs::read(path).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        pem.contents
    }

    #[test]
    fn writes_a_chain_with_the_requested_names() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("nested/certs");
        let hosts = vec!["db.example.test".to_owned(), "10.1.2.3".to_owned()];
        let certs = write_dev_certs(&out, &hosts, "app_user").unwrap();

        let ca_der = read_der(&certs.ca_cert);
        let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
        assert!(ca.is_ca());
        assert_eq!(ca.subject(), ca.issuer());
        assert_eq!(
            ca.subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            CA_COMMON_NAME
        );

        let server_der = read_der(&certs.server_cert);
        let (_, server) = X509Certificate::from_der(&server_der).unwrap();
        assert_eq!(server.issuer(), ca.subject());
        assert!(!server.is_ca());
        assert_eq!(
            server
                .subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "db.example.test"
        );
        let san = server.subject_alternative_name().unwrap().unwrap();
        let names = &san.value.general_names;
        assert_eq!(names.len(), 2);
        assert!(matches!(names[0], GeneralName::DNSName("db.example.test")));
        assert!(matches!(names[1], GeneralName::IPAddress(ip) if ip == [10, 1, 2, 3]));
        let eku = server.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && !eku.client_auth);
        assert!(server.validity().is_valid());
        let days = (server.validity().not_after.timestamp()
            - server.validity().not_before.timestamp())
            / 86_400;
        assert_eq!(days, VALIDITY_DAYS + 1);
        assert_eq!(
            server.signature_algorithm.algorithm,
            x509_parser::oid_registry::OID_SIG_ECDSA_WITH_SHA256
        );

        let client_der = read_der(&certs.client_cert);
        let (_, client) = X509Certificate::from_der(&client_der).unwrap();
        assert_eq!(client.issuer(), ca.subject());
        assert_eq!(
            client
                .subject()
                .iter_common_name()
                .next()
                .unwrap()
                .as_str()
                .unwrap(),
            "app_user"
        );
        let eku = client.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);

        // A real verifier accepts the chain for the DNS name and the IP address.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from(ca_der.clone())).unwrap();
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            roots.clone(),
            provider.clone(),
        )
        .build()
        .unwrap();
        for name in ["db.example.test", "10.1.2.3"] {
            verifier
                .verify_server_cert(
                    &CertificateDer::from(server_der.clone()),
                    &[],
                    &ServerName::try_from(name).unwrap(),
                    &[],
                    UnixTime::now(),
                )
                .unwrap();
        }
        assert!(verifier
            .verify_server_cert(
                &CertificateDer::from(server_der.clone()),
                &[],
                &ServerName::try_from("other.example.test").unwrap(),
                &[],
                UnixTime::now(),
            )
            .is_err());
        let client_verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(roots, provider)
                .build()
                .unwrap();
        client_verifier
            .verify_client_cert(&CertificateDer::from(client_der), &[], UnixTime::now())
            .unwrap();
    }

    #[test]
    fn defaults_to_localhost_and_loopback() {
        let dir = tempfile::tempdir().unwrap();
        let certs = write_dev_certs(dir.path(), &[], "postgres").unwrap();
        let der = read_der(&certs.server_cert);
        let (_, server) = X509Certificate::from_der(&der).unwrap();
        let san = server.subject_alternative_name().unwrap().unwrap();
        let names = &san.value.general_names;
        assert!(matches!(names[0], GeneralName::DNSName("localhost")));
        assert!(matches!(names[1], GeneralName::IPAddress(ip) if ip == [127, 0, 0, 1]));
        assert!(certs.summary().contains("ca.crt"));
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_private_and_certs_readable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // Writing twice replaces the files and keeps the modes.
        write_dev_certs(dir.path(), &[], "postgres").unwrap();
        let certs = write_dev_certs(dir.path(), &[], "postgres").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        for key in [&certs.ca_key, &certs.server_key, &certs.client_key] {
            assert_eq!(mode(key), 0o600, "{}", key.display());
            // The key parses back.
            KeyPair::from_pem(&std::fs::read_to_string(key).unwrap()).unwrap();
        }
        for cert in [&certs.ca_cert, &certs.server_cert, &certs.client_cert] {
            assert_eq!(mode(cert), 0o644, "{}", cert.display());
        }
        // No temporary files are left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 6);
    }

    #[test]
    fn rejects_bad_input_with_a_useful_message() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_dev_certs(dir.path(), &["bad host".to_owned()], "u").unwrap_err();
        assert!(err.to_string().contains("bad host"), "{err}");
        let err = write_dev_certs(dir.path(), &[], "").unwrap_err();
        assert!(matches!(err, CertsError::EmptyClientUser));
    }
}
