//! Semantic checks of a parsed config, and building what it needs (TLS settings), so a
//! config that validates is a config that runs.

use super::locate::line_of_key;
use super::{
    ClientTlsMode, Config, ConfigFile, ConfigIssue, DatabaseRoute, SslMode, Upstream,
    UpstreamTarget,
};
use crate::sql::{Classifier, ClassifierOptions};
use crate::tls::{ClientTls, UpstreamTls};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Collects the problems of one config file. Config checks what it owns here; detect,
/// sinks and enforce check theirs (`detect::check`, `sinks::check`, `enforce::check`) with
/// the same collector, so every problem carries its key and line.
pub struct Checker<'a> {
    pub(super) text: &'a str,
    /// The config file's folder (relative paths resolve against it).
    pub base: &'a Path,
    /// Problems found so far.
    pub issues: Vec<ConfigIssue>,
}

impl Checker<'_> {
    /// A problem with the key at `key` (its line is looked up in the file).
    pub fn issue(&mut self, key: &[&str], message: impl Into<String>) {
        self.issues.push(ConfigIssue {
            file: None,
            line: line_of_key(self.text, key),
            key: key.join("."),
            message: message.into(),
        });
    }

    /// Resolves a path relative to the config file's folder.
    pub fn path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }

    /// A file the config names must exist now, not at the first connection.
    pub fn existing(&mut self, key: &[&str], p: &Path) -> Option<PathBuf> {
        let full = self.path(p);
        if full.is_file() {
            Some(full)
        } else {
            self.issue(key, format!("file {} does not exist", full.display()));
            None
        }
    }
}

/// The connection budgets: every one must admit something, and the PROXY protocol is
/// believed only from named load balancers.
fn limits(c: &mut Checker<'_>, file: &ConfigFile) {
    let l = &file.listen;
    for (key, v) in [
        ("max_startup_conn", l.max_startup_conn),
        ("max_startup_per_addr", l.max_startup_per_addr),
        ("max_pending_messages", l.max_pending_messages),
        ("max_pending_bytes", l.max_pending_bytes),
    ] {
        if v == 0 {
            c.issue(&["listen", key], "must be at least 1");
        }
    }
    if !(1..=256).contains(&l.threads) {
        c.issue(&["listen", "threads"], "must be between 1 and 256");
    }
    if l.first_byte_timeout.is_zero() {
        c.issue(&["listen", "first_byte_timeout"], "must be longer than 0s");
    }
    for (key, v) in [
        ("max_auth_conn", file.upstream.max_auth_conn),
        ("max_auth_per_addr", file.upstream.max_auth_per_addr),
    ] {
        if v == 0 {
            c.issue(&["upstream", key], "must be at least 1");
        }
    }
    if l.proxy_protocol && l.proxy_trusted.is_empty() {
        c.issue(
            &["listen", "proxy_protocol"],
            "proxy_protocol = true needs proxy_trusted: list the load balancers' addresses \
             (CIDR, e.g. proxy_trusted = [\"10.0.0.0/8\"]); a header from anyone else would let \
             any client claim any address",
        );
    }
    if !l.proxy_protocol && !l.proxy_trusted.is_empty() {
        c.issue(
            &["listen", "proxy_trusted"],
            "has no effect without proxy_protocol = true: set it, or remove proxy_trusted",
        );
    }
}

/// Validates `file`; on success the TLS settings are built and ready.
pub fn validate(file: ConfigFile, text: &str, base: &Path) -> Result<Config, Vec<ConfigIssue>> {
    let mut c = Checker {
        text,
        base,
        issues: Vec::new(),
    };
    if file.listen.max_client_conn == 0 {
        c.issue(&["listen", "max_client_conn"], "must be at least 1");
    }
    if file.listen.startup_timeout.is_zero() {
        c.issue(&["listen", "startup_timeout"], "must be longer than 0s");
    }
    limits(&mut c, &file);
    if file.audit.queue_capacity == 0 {
        c.issue(&["audit", "queue_capacity"], "must be at least 1");
    }
    if file.audit.max_parse_bytes == 0 {
        c.issue(&["audit", "max_parse_bytes"], "must be at least 1");
    }
    if let Some(size) = file.audit.rotate_size {
        if size.0 < 4096 {
            c.issue(&["audit", "rotate_size"], "must be at least 4KiB");
        }
        if file.audit.rotate_keep == 0 {
            c.issue(
                &["audit", "rotate_keep"],
                "must be at least 1 with rotate_size",
            );
        }
        if file.audit.log == "-" {
            c.issue(
                &["audit", "rotate_size"],
                "cannot rotate standard output (log = \"-\")",
            );
        }
    }
    for (i, pattern) in file.audit.service_accounts.iter().enumerate() {
        if pattern.is_empty() || pattern.chars().all(|ch| ch == '*') {
            c.issue(
                &["audit", "service_accounts"],
                format!(
                    "entry {} ({pattern:?}) would match every user; name the accounts, \
                     e.g. \"svc_*\"",
                    i + 1
                ),
            );
        }
    }
    if file.audit.log.is_empty() {
        c.issue(
            &["audit", "log"],
            "set a file path, or \"-\" for standard output",
        );
    }
    super::admin::check(&mut c, &file);
    // What config describes but other modules own is checked by its owner.
    crate::enforce::check(&mut c, &file);
    let rules = crate::detect::check::rules(&mut c, &file);
    crate::sinks::check::alerts(&mut c, &file);
    let client_tls = client_tls(&mut c, &file);
    let default_upstream = target(
        &mut c,
        &file.upstream,
        &DatabaseRoute::default(),
        &["upstream"],
    );
    let auth = super::validate_auth::auth(&mut c, &file, default_upstream.as_ref());
    let mut routes = std::collections::HashMap::new();
    for (name, route) in &file.databases {
        if let Some(t) = target(&mut c, &file.upstream, route, &["databases", name]) {
            routes.insert(name.clone(), t);
        }
    }
    match (c.issues.is_empty(), default_upstream) {
        (true, Some(default_upstream)) => Ok(Config {
            path: PathBuf::new(),
            client_tls,
            default_upstream,
            routes,
            rules,
            auth,
            classifier: Arc::new(Classifier::new(ClassifierOptions {
                max_parse_bytes: file.audit.max_parse_bytes,
                cache_bytes: file.audit.classify_cache_bytes,
                redact: file.audit.redact,
            })),
            file,
        }),
        _ => Err(c.issues),
    }
}

fn client_tls(c: &mut Checker<'_>, file: &ConfigFile) -> Option<Arc<ClientTls>> {
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

fn target(
    c: &mut Checker<'_>,
    up: &Upstream,
    route: &DatabaseRoute,
    at: &[&str],
) -> Option<UpstreamTarget> {
    let key = |k: &'static str| {
        let mut v: Vec<&str> = at.to_vec();
        v.push(k);
        v
    };
    let host = route.host.clone().unwrap_or_else(|| up.host.clone());
    let port = route.port.unwrap_or(up.port);
    let sslmode = route.sslmode.unwrap_or(up.sslmode);
    let ca_file = route.ca_file.clone().unwrap_or_else(|| up.ca_file.clone());
    let connect_timeout = route.connect_timeout.unwrap_or(up.connect_timeout);
    let before = c.issues.len();
    if host.is_empty() {
        c.issue(
            &key("host"),
            "set the PostgreSQL server's host name or address",
        );
    }
    if port == 0 {
        c.issue(&key("port"), "must be a TCP port from 1 to 65535");
    }
    // A Unix-socket directory, as libpq accepts: the link is local and never encrypted,
    // so an sslmode that insists on TLS cannot be met (prefer and allow are ignored, as
    // libpq ignores them for a socket).
    let unix = crate::backend::is_unix_socket_dir(&host);
    if unix
        && matches!(
            sslmode,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull
        )
    {
        c.issue(
            &key("sslmode"),
            format!(
                "sslmode = \"{}\" cannot be met over the Unix socket in {host}: TLS does not \
                 run over Unix sockets; set sslmode = \"disable\" (or \"prefer\")",
                sslmode.as_str()
            ),
        );
    }
    if connect_timeout.is_zero() {
        c.issue(&key("connect_timeout"), "must be longer than 0s");
    }
    if let Some(db) = &route.dbname {
        if db.is_empty() || db.contains('\0') {
            c.issue(&key("dbname"), "must be a non-empty database name");
        }
    }
    let ca = if ca_file.is_empty() {
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
        c.existing(&key("ca_file"), Path::new(&ca_file))
    };
    if c.issues.len() > before {
        return None;
    }
    let tls = match UpstreamTls::new(sslmode, &host, ca.as_deref()) {
        _ if unix => None,
        Ok(t) => t.map(Arc::new),
        Err(e) => {
            c.issue(&key("sslmode"), e.to_string());
            return None;
        }
    };
    Some(UpstreamTarget {
        host,
        port,
        sslmode,
        connect_timeout,
        dbname: route.dbname.clone(),
        tls,
    })
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use std::path::Path;

    fn errors(text: &str) -> String {
        match load_str(text, Path::new("/nonexistent/pgvigil.toml")) {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn defaults_are_valid_without_tls() {
        assert_eq!(errors("[listen.tls]\nmode = \"disable\"\n"), "");
    }

    #[test]
    fn unknown_key_is_reported_with_line() {
        let e = errors("[listen.tls]\nmode = \"disable\"\n[upstream]\nhots = \"x\"\n");
        assert!(e.contains("line 4"), "{e}");
        assert!(e.contains("hots"), "{e}");
    }

    #[test]
    fn missing_files_and_ca_are_reported_each_with_line() {
        let e = errors(
            "[listen.tls]\nmode = \"verify-full\"\ncert_file = \"nope.crt\"\nkey_file = \"nope.key\"\n\
             [upstream]\nsslmode = \"verify-full\"\n",
        );
        assert!(e.contains("line 3: listen.tls.cert_file"), "{e}");
        assert!(e.contains("line 4: listen.tls.key_file"), "{e}");
        assert!(
            e.contains("line 2: listen.tls.mode: verify-ca and verify-full need ca_file"),
            "{e}"
        );
        assert!(e.contains("line 6: upstream.sslmode"), "{e}");
    }

    #[test]
    fn bad_duration_is_reported() {
        let e = errors(
            "[listen]\nstartup_timeout = \"ten seconds\"\n[listen.tls]\nmode = \"disable\"\n",
        );
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn proxy_protocol_needs_trusted_balancers() {
        let e = errors("[listen]\nproxy_protocol = true\n[listen.tls]\nmode = \"disable\"\n");
        assert!(
            e.contains("line 2: listen.proxy_protocol") && e.contains("proxy_trusted"),
            "{e}"
        );
        let e = errors(
            "[listen]\nproxy_trusted = [\"10.0.0.0/8\"]\n[listen.tls]\nmode = \"disable\"\n",
        );
        assert!(e.contains("listen.proxy_trusted: has no effect"), "{e}");
        let e = errors("[listen]\nproxy_protocol = true\nproxy_trusted = [\"10.0.0.0/33\"]\n[listen.tls]\nmode = \"disable\"\n");
        assert!(
            e.contains("line 3"),
            "a bad CIDR is reported with its line: {e}"
        );
        assert_eq!(
            errors("[listen]\nproxy_protocol = true\nproxy_trusted = [\"10.0.0.0/8\", \"fd00::/8\"]\n[listen.tls]\nmode = \"disable\"\n"),
            ""
        );
        let e = errors("[listen]\nmax_startup_per_addr = 0\n[upstream]\nmax_auth_conn = 0\n[listen.tls]\nmode = \"disable\"\n");
        assert!(
            e.contains("listen.max_startup_per_addr: must be at least 1"),
            "{e}"
        );
        assert!(
            e.contains("upstream.max_auth_conn: must be at least 1"),
            "{e}"
        );
    }
}
