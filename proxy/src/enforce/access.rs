//! Access policies (`[access]`) at login: the first policy whose `users` match decides
//! whether a user may reach a database from an address, before any authentication, and
//! whether the session is read-only.

use crate::config::{Access, AccessDefault, AccessPolicy};
use crate::matching::{any_addr, any_glob};
use std::net::IpAddr;

/// The policy that decides for `user`: the first whose `users` match.
pub fn policy_for<'a>(access: &'a Access, user: &str) -> Option<&'a AccessPolicy> {
    access.policy.iter().find(|p| any_glob(&p.users, user))
}

/// Why a login is refused (the client's FATAL 28000 message and the audit reason).
pub fn refusal(access: &Access, user: &str, database: &str, addr: IpAddr) -> Option<String> {
    let Some(p) = policy_for(access, user) else {
        return match access.default {
            AccessDefault::Allow => None,
            AccessDefault::Deny => Some(format!(
                "pgvigil: access denied: no access policy names user \"{user}\""
            )),
        };
    };
    if let Some(dbs) = &p.databases {
        if !any_glob(dbs, database) {
            return Some(format!(
                "pgvigil: access denied: user \"{user}\" may not connect to database \"{database}\""
            ));
        }
    }
    if let Some(nets) = &p.client_addrs {
        if !any_addr(nets, addr) {
            return Some(format!(
                "pgvigil: access denied: user \"{user}\" may not connect from {addr}"
            ));
        }
    }
    None
}

/// The login-time decisions, before authentication: refused while the audit log cannot be
/// written (with `on_write_error = "refuse"`), refused by an access policy (FATAL 28000,
/// audited as an `auth_failure` with the reason), and a read-only policy's startup
/// parameters for the server.
pub fn at_login(
    config: &crate::snapshot::Config,
    audit: &crate::audit::AuditSink,
    info: &crate::audit::SessionInfo,
    params: &mut Vec<(bytes::Bytes, bytes::Bytes)>,
) -> Result<(), crate::frontend::FrontendError> {
    use crate::frontend::FrontendError;
    if config.file.audit.on_write_error == crate::config::OnWriteError::Refuse
        && !audit.write_health().ok()
    {
        return Err(FrontendError::Refused {
            sqlstate: super::UNAUDITABLE,
            message: "pgvigil: audit log cannot be written: new sessions are refused until it can"
                .into(),
            hint: None,
        });
    }
    let user = info.user.as_deref().unwrap_or("");
    let database = info.database.as_deref().unwrap_or("");
    if let Some(reason) = refusal(&config.file.access, user, database, info.client_addr) {
        return Err(FrontendError::Refused {
            sqlstate: "28000",
            message: reason,
            hint: None,
        });
    }
    if policy_for(&config.file.access, user).is_some_and(|p| p.read_only) {
        read_only_params(params);
    }
    Ok(())
}

/// Problems in `[access]`: `(key, message)`.
pub fn check(access: &Access) -> Vec<(&'static str, String)> {
    let mut out = Vec::new();
    for (i, p) in access.policy.iter().enumerate() {
        let n = i + 1;
        if p.users.is_empty() || p.users.iter().any(String::is_empty) {
            out.push((
                "access.policy.users",
                format!("policy {n}: name at least one user (exact names or globs)"),
            ));
        }
        if p.databases.as_ref().is_some_and(Vec::is_empty) {
            out.push((
                "access.policy.databases",
                format!("policy {n}: an empty list allows no database; leave it out to allow all"),
            ));
        }
        if let Some(nets) = &p.client_addrs {
            if nets.is_empty() {
                out.push((
                    "access.policy.client_addrs",
                    format!(
                        "policy {n}: an empty list allows no address; leave it out to allow all"
                    ),
                ));
            }
            for a in nets {
                if let Some(problem) = crate::matching::addr_pattern_problem(a) {
                    out.push((
                        "access.policy.client_addrs",
                        format!("policy {n}: {problem}"),
                    ));
                }
            }
        }
    }
    out
}

/// The upstream startup parameters of a read-only session: the client's own read-only
/// settings removed, `default_transaction_read_only = on` added last (PostgreSQL applies
/// startup parameters after `options`, so a `-c` in the client's `options` cannot undo it).
pub fn read_only_params(params: &mut Vec<(bytes::Bytes, bytes::Bytes)>) {
    params.retain(|(k, _)| {
        !k.eq_ignore_ascii_case(b"default_transaction_read_only")
            && !k.eq_ignore_ascii_case(b"transaction_read_only")
    });
    params.push((
        bytes::Bytes::from_static(b"default_transaction_read_only"),
        bytes::Bytes::from_static(b"on"),
    ));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(toml_text: &str) -> Access {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn first_match_decides() {
        let a = access(
            r#"
            default = "deny"
            [[policy]]
            users = ["analyst_*"]
            databases = ["app", "reporting"]
            client_addrs = ["10.0.0.0/8"]
            read_only = true
            [[policy]]
            users = ["*"]
            databases = ["app"]
            "#,
        );
        let inside: IpAddr = "10.2.3.4".parse().unwrap();
        let outside: IpAddr = "192.168.1.1".parse().unwrap();
        assert!(refusal(&a, "analyst_bob", "app", inside).is_none());
        assert!(refusal(&a, "analyst_bob", "billing", inside)
            .unwrap()
            .contains("database \"billing\""));
        assert!(refusal(&a, "analyst_bob", "app", outside)
            .unwrap()
            .contains("192.168.1.1"));
        // The first policy decides: the catch-all below does not rescue analyst_bob.
        assert!(refusal(&a, "analyst_bob", "reporting", outside).is_some());
        assert!(refusal(&a, "alice", "app", outside).is_none());
        assert!(refusal(&a, "alice", "reporting", outside).is_some());
        assert!(policy_for(&a, "analyst_x").unwrap().read_only);
        let d = access("default = \"deny\"\n");
        assert!(refusal(&d, "alice", "app", inside).is_some());
        assert!(
            check(&access(
                "[[policy]]\nusers = []\nclient_addrs = [\"10.0.0.0/40\"]\n"
            ))
            .len()
                == 2
        );
    }
}
