//! `[auth] mode = "scram"`: the client logs in to pgvigil with SCRAM-SHA-256(-PLUS) (or md5
//! for a user whose stored verifier is md5, as PgBouncer does) from the verifier in the auth
//! file; pgvigil then logs in upstream with the ClientKey recovered from the client's proof
//! (or the stored md5 hash). The password never exists in pgvigil.
//!
//! Unknown users run the same exchange against a made-up verifier and get the same 28P01
//! as a wrong password. Failures are `FrontendError::Refused`, so the session audits each
//! as an `auth_failure` that counts for failed-logins rules.

use super::scram_server::ScramServer;
use super::userlist::StoredSecret;
use super::AuthError;
use crate::backend::{BackendError, ServerConn, UpstreamSecret};
use crate::frontend::admission::AuthTicket;
use crate::frontend::login::{
    authenticate_upstream, read_client, read_secret, write, LoginRequest,
};
use crate::frontend::FrontendError;
use crate::tls::MaybeTls;
use crate::wire::messages::{auth_sasl, parse_sasl_initial, password_of};
use crate::wire::FramedReader;
use bytes::{BufMut, Bytes, BytesMut};

/// Authenticates the client from its stored verifier, then the server with what the
/// exchange proved.
pub async fn scram_login(
    req: &mut LoginRequest<'_>,
    client: &mut MaybeTls,
    reader: &mut FramedReader,
    upstream_startup: &Bytes,
) -> Result<(ServerConn, AuthTicket), FrontendError> {
    let user = req.startup.get_str("user").unwrap_or_default();
    let (stored, looked_up) = stored_secret(req, &user).await?;
    let result = match stored {
        Some(StoredSecret::Md5(hash)) => {
            *req.auth_method = Some("md5".into());
            md5_with_client(client, reader, &user, &hash).await?;
            let secret = UpstreamSecret::Md5Hash(&hash);
            upstream(req, client, upstream_startup, secret, "md5").await
        }
        Some(StoredSecret::Scram(v)) => {
            let end_point = client_end_point(req, client);
            let server = ScramServer::new(&user, Some(v.clone()), end_point);
            let proven = scram_with_client(req, client, reader, &user, server).await?;
            let secret = UpstreamSecret::ScramKey {
                client_key: &proven.client_key,
                verifier: &v,
            };
            upstream(req, client, upstream_startup, secret, proven.method).await
        }
        None => {
            // The whole exchange, failing at the end exactly like a wrong password.
            let end_point = client_end_point(req, client);
            let server = ScramServer::new(&user, None, end_point);
            scram_with_client(req, client, reader, &user, server).await?;
            Err(wrong_password(&user))
        }
    };
    if looked_up
        && matches!(
            result,
            Err(FrontendError::Backend(BackendError::ScramVerifierMismatch))
        )
    {
        // The server's verifier changed since the lookup: look it up again next time.
        if let Some(lookup) = &req.config.auth.lookup {
            lookup.forget(&user);
        }
    }
    result.map_err(|e| explain_upstream(e, &user))
}

/// The user's secret: from the auth file, else from auth_query (then the flag is true). A
/// failed lookup refuses the login as an upstream problem (logged, not counted as a failed
/// login).
async fn stored_secret(
    req: &LoginRequest<'_>,
    user: &str,
) -> Result<(Option<StoredSecret>, bool), FrontendError> {
    if let Some(s) = req.config.auth.users.as_ref().and_then(|l| l.get(user)) {
        return Ok((Some(s.clone()), false));
    }
    let Some(lookup) = &req.config.auth.lookup else {
        return Ok((None, false));
    };
    let found = lookup.lookup(user).await.map_err(|e| {
        tracing::error!(error = %e, "cannot look up the user's verifier");
        FrontendError::Backend(BackendError::AuthSource(e.to_string()))
    })?;
    Ok((found, true))
}

/// Logs in upstream, then records both methods: the client's (`auth_method`) and the
/// upstream one.
async fn upstream(
    req: &mut LoginRequest<'_>,
    client: &mut MaybeTls,
    upstream_startup: &Bytes,
    secret: UpstreamSecret<'_>,
    client_method: &'static str,
) -> Result<(ServerConn, AuthTicket), FrontendError> {
    let result = authenticate_upstream(req, client, upstream_startup, secret).await;
    *req.upstream_auth_method = req.auth_method.take();
    *req.auth_method = Some(client_method.to_string());
    result
}

/// pgvigil's certificate binding, when the client's link is TLS.
fn client_end_point(req: &LoginRequest<'_>, client: &MaybeTls) -> Option<Vec<u8>> {
    if !client.is_tls() {
        return None;
    }
    req.config
        .client_tls
        .as_ref()
        .map(|t| t.end_point.clone())
        .filter(|e| !e.is_empty())
}

/// The SCRAM exchange with the client; on success the client has its server-final message
/// (AuthenticationSASLFinal) and AuthenticationOk follows once the server accepted.
async fn scram_with_client(
    req: &mut LoginRequest<'_>,
    client: &mut MaybeTls,
    reader: &mut FramedReader,
    user: &str,
    mut server: ScramServer,
) -> Result<super::scram_server::Proven, FrontendError> {
    *req.auth_method = Some("scram-sha-256".into());
    write(client, &auth_sasl(&server.mechanisms())).await?;
    let first = read_client(client, reader).await?;
    if first.tag != b'p' {
        return Err(FrontendError::Unexpected(first.tag as char));
    }
    let (mechanism, data) = parse_sasl_initial(&first.body)
        .map_err(|_| FrontendError::BadAuthMessage("malformed SASL message"))?;
    if mechanism == super::scram::SCRAM_PLUS {
        *req.auth_method = Some("scram-sha-256-plus".into());
    }
    let data = data.ok_or(FrontendError::BadAuthMessage(
        "SASL initial response without data",
    ))?;
    let server_first = server
        .client_first(&mechanism, &data)
        .map_err(|e| refusal(e, user))?;
    write(client, &auth_request(11, server_first.as_bytes())).await?;
    let last = read_client(client, reader).await?;
    if last.tag != b'p' {
        return Err(FrontendError::Unexpected(last.tag as char));
    }
    let proven = server
        .client_final(&last.body)
        .map_err(|e| refusal(e, user))?;
    write(client, &auth_request(12, proven.server_final.as_bytes())).await?;
    Ok(proven)
}

/// md5 with the client from a stored md5 verifier.
async fn md5_with_client(
    client: &mut MaybeTls,
    reader: &mut FramedReader,
    user: &str,
    stored: &str,
) -> Result<(), FrontendError> {
    let salt: [u8; 4] = rand::random();
    write(client, &auth_request(5, &salt)).await?;
    let msg = read_secret(client, reader).await?;
    if msg.tag != b'p' {
        return Err(FrontendError::Unexpected(msg.tag as char));
    }
    let answer =
        password_of(msg.body()).ok_or(FrontendError::BadAuthMessage("invalid password packet"))?;
    if super::md5::check(stored, salt, answer) {
        Ok(())
    } else {
        Err(wrong_password(user))
    }
}

/// An Authentication message (`R`) with `code` and its data.
fn auth_request(code: i32, data: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(data.len() + 9);
    b.put_u8(b'R');
    b.put_u32((data.len() + 8) as u32);
    b.put_i32(code);
    b.put_slice(data);
    b.freeze()
}

fn wrong_password(user: &str) -> FrontendError {
    FrontendError::Refused {
        sqlstate: "28P01",
        message: format!("password authentication failed for user \"{user}\""),
        hint: None,
    }
}

/// The client-facing error for a failed exchange, in PostgreSQL's words.
fn refusal(e: AuthError, user: &str) -> FrontendError {
    match e {
        AuthError::WrongPassword => wrong_password(user),
        AuthError::ChannelBinding => FrontendError::Refused {
            sqlstate: "08P01",
            message: "SCRAM channel binding check failed".into(),
            hint: None,
        },
        other => FrontendError::Refused {
            sqlstate: "08P01",
            message: other.to_string(),
            hint: None,
        },
    }
}

/// Upstream failures that are configuration problems, said in terms of what to change.
fn explain_upstream(e: FrontendError, user: &str) -> FrontendError {
    match e {
        FrontendError::Backend(BackendError::ScramVerifierMismatch) => {
            tracing::warn!(
                user,
                "the server's SCRAM verifier differs from the one pgvigil used"
            );
            FrontendError::Refused {
                sqlstate: "28000",
                message: format!(
                    "pgvigil's SCRAM verifier for user \"{user}\" differs from the server's \
                     (salt or iteration count), so the client's key cannot log in upstream"
                ),
                hint: Some(format!(
                    "the password was changed on the server: copy its verifier into pgvigil's \
                     auth_file (SELECT rolpassword FROM pg_authid WHERE rolname = '{}') and reload \
                     pgvigil; a user found by auth_query is looked up afresh at the next login",
                    user.replace('\'', "''")
                )),
            }
        }
        FrontendError::Backend(BackendError::UnsupportedAuth(what)) => FrontendError::Refused {
            sqlstate: "28000",
            message: format!("pgvigil cannot log in upstream as user \"{user}\": {what}"),
            hint: Some(
                "in [auth] mode = \"scram\", use scram-sha-256 in pg_hba.conf for users with a \
                 SCRAM verifier (md5 for users with an md5 one)"
                    .into(),
            ),
        },
        other => other,
    }
}
