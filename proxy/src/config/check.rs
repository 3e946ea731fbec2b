//! The checks config owns (limits, `[audit]`, `[admin]`: values that need nothing beyond
//! themselves), and the collector every owner checks with.
//!
//! What config describes but another module owns is checked there, with the same
//! [`Checker`]: `enforce::check`, `detect::check`, `sinks::check`, `tls::check`,
//! `backend::target`, `auth::check`. `snapshot` calls them all in order.

use super::locate::line_of_key;
use super::{ConfigFile, ConfigIssue};
use std::path::{Path, PathBuf};

/// Collects the problems of one config file. Config checks what it owns here; detect,
/// sinks, enforce, tls, backend and auth check theirs with the same collector, so every
/// problem carries its key and line.
pub struct Checker<'a> {
    text: &'a str,
    /// The config file's folder (relative paths resolve against it).
    pub base: &'a Path,
    /// Problems found so far.
    pub issues: Vec<ConfigIssue>,
}

impl<'a> Checker<'a> {
    /// A collector for the config `text`, whose relative paths resolve against `base`.
    pub fn new(text: &'a str, base: &'a Path) -> Self {
        Checker {
            text,
            base,
            issues: Vec::new(),
        }
    }

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

/// The checks config owns, in the order `pgvigil check` has always reported them.
pub fn check(c: &mut Checker<'_>, file: &ConfigFile) {
    if file.listen.max_client_conn == 0 {
        c.issue(&["listen", "max_client_conn"], "must be at least 1");
    }
    if file.listen.startup_timeout.is_zero() {
        c.issue(&["listen", "startup_timeout"], "must be longer than 0s");
    }
    limits(c, file);
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
    super::admin::check(c, file);
}
