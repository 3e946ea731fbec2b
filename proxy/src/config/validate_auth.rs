//! Checks of `[auth]`: the auth file must exist and hold only verifiers (a cleartext
//! password is refused: pgvigil must not hold passwords), and `scram` mode needs a source
//! of verifiers.

use super::validate::Checker;
use super::{AuthMode, ConfigFile, UpstreamTarget};
use crate::auth::lookup::AuthQuery;
use crate::auth::userlist::UserList;
use std::sync::Arc;

/// Validates `[auth]`; returns the loaded auth file, if one is configured.
pub(super) fn auth(c: &mut Checker<'_>, file: &ConfigFile) -> Option<Arc<UserList>> {
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
pub(super) fn lookup(
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
