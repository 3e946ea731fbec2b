//! Authentication checks what it owns in the configuration (`[auth]`) and loads it: the
//! auth file must exist and hold only verifiers (a cleartext password is refused: pgvigil
//! must not hold passwords), `scram` mode needs a source of verifiers, `certificate` mode
//! verified client certificates, a user map for verify-ca, upstream TLS and its CA. Called
//! while the snapshot is assembled, that is by `pgvigil check`, startup and every reload.

use super::cert_map::CertMap;
use super::lookup::AuthQuery;
use super::mint::UpstreamCa;
use super::userlist::UserList;
use super::AuthSetup;
use crate::backend::UpstreamTarget;
use crate::config::{AuthMode, Checker, ClientTlsMode, ConfigFile, SslMode};
use std::sync::Arc;

/// Validates `[auth]` and loads what it names; `target` is the default upstream (the
/// `auth_query` lookups connect there), absent when it has problems of its own.
pub fn setup(c: &mut Checker<'_>, file: &ConfigFile, target: Option<&UpstreamTarget>) -> AuthSetup {
    AuthSetup {
        users: users(c, file),
        lookup: lookup(c, file, target),
        cert_map: cert_map(c, file),
        upstream_ca: upstream_ca(c, file),
    }
}

/// `cert_map`: only with certificate mode; needed with verify-ca.
fn cert_map(c: &mut Checker<'_>, file: &ConfigFile) -> Option<CertMap> {
    let a = &file.auth;
    let tls = file.listen.tls.mode;
    if a.mode == AuthMode::Certificate {
        match tls {
            ClientTlsMode::VerifyFull => {}
            ClientTlsMode::VerifyCa if !a.cert_map.is_empty() => {}
            ClientTlsMode::VerifyCa => c.issue(
                &["auth", "cert_map"],
                "mode = \"certificate\" with [listen.tls] mode = \"verify-ca\" needs cert_map \
                 (e.g. cert_map = { \"CN=alice,O=Example\" = \"alice\" }), or use verify-full \
                 (CN = user name)",
            ),
            _ => c.issue(
                &["listen", "tls", "mode"],
                "[auth] mode = \"certificate\" needs verified client certificates: \
                 mode = \"verify-full\" (CN = user) or \"verify-ca\" with cert_map",
            ),
        }
    }
    if a.cert_map.is_empty() {
        return None;
    }
    if a.mode != AuthMode::Certificate {
        c.issue(
            &["auth", "cert_map"],
            "is only used with mode = \"certificate\"",
        );
        return None;
    }
    match CertMap::new(&a.cert_map) {
        Ok(m) => Some(m),
        Err(e) => {
            c.issue(&["auth", "cert_map"], e);
            None
        }
    }
}

/// `[auth.upstream_cert]`: required by certificate mode, with upstream TLS.
fn upstream_ca(c: &mut Checker<'_>, file: &ConfigFile) -> Option<UpstreamCa> {
    let a = &file.auth;
    let Some(u) = &a.upstream_cert else {
        if a.mode == AuthMode::Certificate {
            c.issue(
                &["auth", "mode"],
                "mode = \"certificate\" needs [auth.upstream_cert] (ca_cert, ca_key): the CA \
                 PostgreSQL trusts for pgvigil's client certificates (`pgvigil certs \
                 --upstream-client-ca` writes one)",
            );
        }
        return None;
    };
    if a.mode != AuthMode::Certificate {
        c.issue(
            &["auth", "upstream_cert"],
            "is only used with mode = \"certificate\"",
        );
        return None;
    }
    if file.upstream.sslmode == SslMode::Disable {
        c.issue(
            &["upstream", "sslmode"],
            "[auth] mode = \"certificate\" presents client certificates upstream: TLS is \
             required (sslmode = \"verify-full\")",
        );
    }
    if u.lifetime.is_zero() {
        c.issue(
            &["auth", "upstream_cert", "lifetime"],
            "must be longer than 0s",
        );
    }
    let cert = c.existing(&["auth", "upstream_cert", "ca_cert"], &u.ca_cert)?;
    let key = c.existing(&["auth", "upstream_cert", "ca_key"], &u.ca_key)?;
    match UpstreamCa::load(&cert, &key, u.lifetime) {
        Ok(ca) => Some(ca),
        Err(e) => {
            c.issue(&["auth", "upstream_cert"], e.to_string());
            None
        }
    }
}

/// `auth_file`, loaded.
fn users(c: &mut Checker<'_>, file: &ConfigFile) -> Option<Arc<UserList>> {
    let a = &file.auth;
    if a.mode == AuthMode::Scram && a.auth_file.is_none() && a.auth_user.is_none() {
        c.issue(
            &["auth", "mode"],
            "mode = \"scram\" needs auth_file (a userlist.txt of \"user\" \"SCRAM-SHA-256$...\" \
             lines, the verifiers from pg_authid.rolpassword) or auth_user (look them up with \
             auth_query)",
        );
    }
    let path = a.auth_file.as_ref()?;
    if a.mode != AuthMode::Scram {
        c.issue(
            &["auth", "auth_file"],
            format!(
                "is only used with mode = \"scram\" (mode is \"{}\")",
                a.mode.as_str()
            ),
        );
        return None;
    }
    let full = c.existing(&["auth", "auth_file"], path)?;
    let text = match std::fs::read_to_string(&full) {
        Ok(t) => t,
        Err(e) => {
            c.issue(
                &["auth", "auth_file"],
                format!("cannot read {}: {e}", full.display()),
            );
            return None;
        }
    };
    match UserList::parse(&text) {
        Ok(list) => Some(Arc::new(list)),
        Err(errors) => {
            for (line, message) in errors {
                c.issue(
                    &["auth", "auth_file"],
                    format!("{} line {line}: {message}", full.display()),
                );
            }
            None
        }
    }
}

/// Builds the auth_query lookups (`scram` mode with auth_user) against the default upstream.
fn lookup(
    c: &mut Checker<'_>,
    file: &ConfigFile,
    target: Option<&UpstreamTarget>,
) -> Option<Arc<AuthQuery>> {
    let a = &file.auth;
    let user = a.auth_user.as_ref()?;
    if a.mode != AuthMode::Scram {
        c.issue(
            &["auth", "auth_user"],
            format!(
                "is only used with mode = \"scram\" (mode is \"{}\")",
                a.mode.as_str()
            ),
        );
        return None;
    }
    if !a.auth_query.contains("$1") {
        c.issue(
            &["auth", "auth_query"],
            "must take the user name as $1 and return (user name, verifier)",
        );
    }
    let Some(secret) = &a.auth_password else {
        c.issue(
            &["auth", "auth_password"],
            "auth_user needs auth_password (inline, or { file = \"/run/secrets/...\" })",
        );
        return None;
    };
    let password = match secret.resolve(c.base) {
        Ok(p) => p,
        Err(e) => {
            c.issue(&["auth", "auth_password"], e);
            return None;
        }
    };
    Some(Arc::new(AuthQuery::new(
        user.clone(),
        password,
        a.auth_query.clone(),
        a.auth_dbname.clone(),
        a.auth_cache,
        target?.clone(),
    )))
}
