//! Where sessions go upstream: `[upstream]` and each `[databases.NAME]` route resolved
//! into an [`UpstreamTarget`] (host, port, sslmode, timeout, database name, TLS built).
//!
//! Resolution lives with the code that connects (and knows what a Unix-socket host is)
//! rather than in config, which only describes, or in the snapshot, which auth's
//! `auth_query` lookups would then have to import back.

use crate::config::{Checker, ConfigFile, DatabaseRoute, SslMode, Upstream};
use crate::tls::UpstreamTls;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Where one database's sessions go, with everything resolved.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub host: String,
    pub port: u16,
    pub sslmode: SslMode,
    pub connect_timeout: Duration,
    /// Database name to send upstream; `None` keeps the client's.
    pub dbname: Option<String>,
    /// rustls client settings for this target (absent with sslmode=disable).
    pub tls: Option<Arc<UpstreamTls>>,
}

/// The `[databases.NAME]` routes, each resolved over `[upstream]`; a route with a problem
/// is left out (the problem is in `c`).
pub fn routes(c: &mut Checker<'_>, file: &ConfigFile) -> HashMap<String, UpstreamTarget> {
    let mut routes = HashMap::new();
    for (name, route) in &file.databases {
        if let Some(t) = resolve(c, &file.upstream, route, &["databases", name]) {
            routes.insert(name.clone(), t);
        }
    }
    routes
}

/// `route` over the `[upstream]` defaults, checked at key `at`; `None` when a problem was
/// added to `c`.
pub fn resolve(
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
    let unix = super::is_unix_socket_dir(&host);
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
    let ca = crate::tls::check::upstream_ca(c, at, sslmode, &ca_file);
    if c.issues.len() > before {
        return None;
    }
    // Over a Unix socket TLS is never negotiated, whatever sslmode says.
    let tls = if unix {
        None
    } else {
        crate::tls::check::upstream(c, at, sslmode, &host, ca.as_deref())?
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
