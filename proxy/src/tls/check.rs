//! TLS checks what it owns in the configuration and builds it: `[listen.tls]` (the
//! proxy's certificate, key and client CA) and each upstream's `sslmode`/`ca_file`. A
//! config that validates has TLS settings that load. Called while the snapshot is
//! assembled, that is by `pgvigil check`, startup and every reload.

use super::{ClientTls, UpstreamTls};
use crate::config::{Checker, ClientTlsMode, ConfigFile, SslMode};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// `[listen.tls]`, built: `None` with mode = "disable" or when a problem was added to `c`.
pub fn client(c: &mut Checker<'_>, file: &ConfigFile) -> Option<Arc<ClientTls>> {
    let tls = &file.listen.tls;
    if tls.mode == ClientTlsMode::Disable {
        return None;
    }
    let key = |k: &'static str| ["listen", "tls", k];
    let needs_ca = matches!(
        tls.mode,
        ClientTlsMode::VerifyCa | ClientTlsMode::VerifyFull
    );
    let cert = match &tls.cert_file {
        Some(p) => c.existing(&key("cert_file"), p),
        None => {
            c.issue(
                &key("cert_file"),
                "TLS needs a server certificate: set cert_file and key_file (pgvigil certs --out certs \
                 writes a development set), or set mode = \"disable\"",
            );
            None
        }
    };
    let pkey = match &tls.key_file {
        Some(p) => c.existing(&key("key_file"), p),
        None => {
            c.issue(
                &key("key_file"),
                "TLS needs the server certificate's private key: set key_file",
            );
            None
        }
    };
    let ca = match (&tls.ca_file, needs_ca) {
        (Some(p), _) => c.existing(&key("ca_file"), p),
        (None, true) => {
            c.issue(
                &key("mode"),
                "verify-ca and verify-full need ca_file, the CA that signs client certificates",
            );
            None
        }
        (None, false) => None,
    };
    let (cert, pkey) = (cert?, pkey?);
    if needs_ca && ca.is_none() {
        return None;
    }
    match ClientTls::new(
        tls.mode,
        &cert,
        &pkey,
        if needs_ca { ca.as_deref() } else { None },
    ) {
        Ok(t) => Some(Arc::new(t)),
        Err(e) => {
            c.issue(&key("cert_file"), e.to_string());
            None
        }
    }
}

/// An upstream's `ca_file` (at `at.ca_file`), resolved and present; a verifying `sslmode`
/// without one is a problem (at `at.sslmode`).
pub fn upstream_ca(
    c: &mut Checker<'_>,
    at: &[&str],
    sslmode: SslMode,
    ca_file: &str,
) -> Option<PathBuf> {
    let key = |k: &'static str| {
        let mut v: Vec<&str> = at.to_vec();
        v.push(k);
        v
    };
    if ca_file.is_empty() {
        if matches!(sslmode, SslMode::VerifyCa | SslMode::VerifyFull) {
            c.issue(
                &key("sslmode"),
                format!(
                    "sslmode = \"{}\" needs ca_file, the root CA of the server's certificate",
                    sslmode.as_str()
                ),
            );
        }
        None
    } else {
        c.existing(&key("ca_file"), Path::new(ca_file))
    }
}

/// An upstream's rustls settings, built: `Some(None)` for a plaintext sslmode, `None`
/// when they do not load (the problem is added to `c` at `at.sslmode`).
pub fn upstream(
    c: &mut Checker<'_>,
    at: &[&str],
    sslmode: SslMode,
    host: &str,
    ca: Option<&Path>,
) -> Option<Option<Arc<UpstreamTls>>> {
    match UpstreamTls::new(sslmode, host, ca) {
        Ok(t) => Some(t.map(Arc::new)),
        Err(e) => {
            let mut key: Vec<&str> = at.to_vec();
            key.push("sslmode");
            c.issue(&key, e.to_string());
            None
        }
    }
}
