//! `[auth] mode = "certificate"`: the client's verified TLS certificate is the login, and
//! no password is asked. With `[listen.tls] mode = "verify-full"` its CN must be the user
//! (the session checked that already; checked again here so this mode never relies on
//! it); with `verify-ca`, `cert_map` must map its subject to the user.
//!
//! Upstream, pgvigil presents a certificate for that user minted for this session by the
//! `[auth.upstream_cert]` CA; the server (`hostssl ... cert`) lets it in without a password.
//! A server that asks for one anyway is explained, never answered.

use crate::backend::UpstreamTarget;
use crate::backend::{BackendError, ServerConn, UpstreamSecret};
use crate::config::ClientTlsMode;
use crate::frontend::admission::AuthTicket;
use crate::frontend::login::{authenticate_upstream, LoginRequest};
use crate::frontend::FrontendError;
use crate::tls::{peer_common_name, MaybeTls};
use bytes::Bytes;
use std::sync::Arc;

/// What the audit log says pgvigil and the client used.
const METHOD: &str = "cert";

/// Checks the client's certificate against the user it asks for, then logs in upstream
/// with a freshly minted certificate for that user.
pub async fn certificate_login(
    req: &mut LoginRequest<'_>,
    client: &mut MaybeTls,
    upstream_startup: &Bytes,
) -> Result<(ServerConn, AuthTicket), FrontendError> {
    *req.auth_method = Some(METHOD.to_string());
    let user = req.startup.get_str("user").unwrap_or_default();
    let Some(cert) = client.peer_certificates().and_then(|c| c.first()) else {
        return Err(refused(
            &user,
            "connect over TLS with a client certificate (sslcert, sslkey)".into(),
        ));
    };
    let allowed = match (&req.config.auth.cert_map, req.config.file.listen.tls.mode) {
        (Some(map), _) => {
            super::cert_map::subject_dn(cert).is_some_and(|dn| map.allows(&dn, &user))
        }
        (None, ClientTlsMode::VerifyFull) => peer_common_name(cert).as_deref() == Some(&user),
        // Validation requires one of the two; refuse rather than trust anything.
        (None, _) => false,
    };
    if !allowed {
        let dn = super::cert_map::subject_dn(cert).unwrap_or_default();
        return Err(refused(
            &user,
            format!("the client certificate (subject \"{dn}\") does not name this user (CN = user with verify-full, or an [auth] cert_map entry)"),
        ));
    }
    let Some(ca) = &req.config.auth.upstream_ca else {
        return Err(upstream_problem(
            "[auth.upstream_cert] is not loaded".into(),
        ));
    };
    let minted = ca
        .mint(&user)
        .map_err(|e| upstream_problem(e.to_string()))?;
    let Some(tls) = &req.target.tls else {
        return Err(upstream_problem(
            "the upstream connection has no TLS (sslmode = disable)".into(),
        ));
    };
    let tls = tls
        .with_client_cert(minted.chain, minted.key)
        .map_err(|e| upstream_problem(e.to_string()))?;
    let target = UpstreamTarget {
        tls: Some(Arc::new(tls)),
        ..req.target.clone()
    };
    let mut sub = LoginRequest {
        config: req.config,
        shared: req.shared,
        target: &target,
        startup: req.startup,
        client_addr: req.client_addr,
        auth_method: &mut *req.auth_method,
        upstream_auth_method: &mut *req.upstream_auth_method,
    };
    let result = authenticate_upstream(
        &mut sub,
        client,
        upstream_startup,
        UpstreamSecret::Certificate,
    )
    .await;
    // Whatever the server did (it asked for nothing, or refused), the client used its
    // certificate and pgvigil presented one.
    *req.auth_method = Some(METHOD.to_string());
    *req.upstream_auth_method = Some(METHOD.to_string());
    result.map_err(|e| match e {
        FrontendError::Backend(BackendError::UnsupportedAuth(what)) => FrontendError::Refused {
            sqlstate: "28000",
            message: format!("pgvigil cannot log in upstream as user \"{user}\": {what}"),
            hint: Some(
                "the server must accept pgvigil's certificate: a `hostssl ... cert` line in \
                 pg_hba.conf for this user and pgvigil's address, and ssl_ca_file = pgvigil's \
                 upstream client CA"
                    .into(),
            ),
        },
        other => other,
    })
}

fn refused(user: &str, hint: String) -> FrontendError {
    FrontendError::Refused {
        sqlstate: "28000",
        message: format!("certificate authentication failed for user \"{user}\""),
        hint: Some(hint),
    }
}

fn upstream_problem(what: String) -> FrontendError {
    tracing::error!(error = %what, "cannot prepare the upstream client certificate");
    FrontendError::Backend(BackendError::AuthSource(what))
}
