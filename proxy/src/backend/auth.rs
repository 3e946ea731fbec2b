//! Authenticating upstream, whatever the server asks for: SCRAM-SHA-256 (with -PLUS channel
//! binding over TLS), md5, cleartext, or nothing (trust). With the client's password
//! (`password` mode) every method works; with a ClientKey recovered from the client's SCRAM
//! proof (`scram` mode) only SCRAM, and an md5 hash from an auth file only md5.
//!
//! The SCRAM key derivation (thousands of HMAC rounds) runs on the blocking pool so a burst
//! of logins does not stall the relays sharing the runtime's workers.

use super::{BackendError, ServerConn};
use crate::auth::scram::{Key, SCRAM, SCRAM_PLUS};
use crate::auth::{AuthError, Binding, ScramClient, Verifier};
use crate::wire::frame::MAX_AUTH_MESSAGE;
use crate::wire::messages::{
    password_message, sasl_initial_response, sasl_response, AuthRequest, ErrorFields,
};
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

/// What the proxy authenticates with.
pub struct UpstreamAuth<'a> {
    pub user: &'a [u8],
    pub secret: UpstreamSecret<'a>,
}

/// The secret pgvigil proves upstream.
pub enum UpstreamSecret<'a> {
    /// The client's cleartext password (`password` mode).
    Password(&'a [u8]),
    /// A ClientKey recovered from the client's SCRAM proof, with the verifier it matches.
    ScramKey {
        client_key: &'a Key,
        verifier: &'a Verifier,
    },
    /// An md5 verifier (`md5` + hex of md5(password || user)), as an auth file holds it.
    Md5Hash(&'a str),
    /// Nothing but the TLS client certificate already presented (`certificate` mode).
    Certificate,
}

impl UpstreamSecret<'_> {
    fn name(&self) -> &'static str {
        match self {
            UpstreamSecret::Password(_) => "password",
            UpstreamSecret::ScramKey { .. } => "SCRAM key",
            UpstreamSecret::Md5Hash(_) => "md5 hash",
            UpstreamSecret::Certificate => "client certificate",
        }
    }
}

/// How upstream authentication ended.
#[derive(Debug)]
pub enum AuthOutcome {
    /// AuthenticationOk received; the connection continues with the startup messages.
    Ok { method: &'static str },
    /// The server refused: its ErrorResponse, as sent, to forward to the client.
    Rejected {
        method: &'static str,
        raw: Bytes,
        fields: ErrorFields,
    },
}

/// The server's first answer to the StartupMessage.
#[derive(Debug)]
pub enum Begin {
    /// AuthenticationOk at once: the server trusts this user; no password is needed.
    Trusted,
    /// The server refused before asking for anything (pg_hba.conf, unknown database...).
    Rejected { raw: Bytes, fields: ErrorFields },
    /// The server wants a password: continue with [`complete`].
    NeedsPassword(AuthRequest),
}

/// Sends the StartupMessage and reads the server's first authentication request, so the
/// client is asked for a password only when the server wants one.
pub async fn begin(conn: &mut ServerConn, startup: &Bytes) -> Result<Begin, BackendError> {
    write(conn, startup).await?;
    loop {
        let msg = conn.reader.next(&mut conn.stream, MAX_AUTH_MESSAGE).await?;
        match msg.tag {
            b'E' => {
                return Ok(Begin::Rejected {
                    fields: ErrorFields::parse(&msg.body),
                    raw: msg.raw,
                })
            }
            // A NegotiateProtocolVersion or notice before authentication: nothing to do.
            b'v' | b'N' => continue,
            b'R' => {}
            other => {
                return Err(BackendError::Unexpected {
                    tag: other as char,
                    phase: "authentication",
                })
            }
        }
        return Ok(match AuthRequest::parse(&msg.body)? {
            AuthRequest::Ok => Begin::Trusted,
            request => Begin::NeedsPassword(request),
        });
    }
}

/// Answers the server's authentication requests with the password, starting with `first`
/// (the request [`begin`] returned), until AuthenticationOk or an ErrorResponse.
pub async fn complete(
    conn: &mut ServerConn,
    first: AuthRequest,
    auth: &UpstreamAuth<'_>,
) -> Result<AuthOutcome, BackendError> {
    let mut method = "trust";
    let mut scram: Option<ScramClient> = None;
    let mut request = first;
    loop {
        match request {
            AuthRequest::Ok => return Ok(AuthOutcome::Ok { method }),
            AuthRequest::Cleartext => {
                method = "password";
                let UpstreamSecret::Password(p) = auth.secret else {
                    return Err(cannot_answer(method, &auth.secret));
                };
                // The message holds the password: built in memory that is wiped once sent
                // (sized up front, so never reallocated with a copy left behind).
                let mut msg = zeroize::Zeroizing::new(Vec::with_capacity(p.len() + 6));
                msg.push(b'p');
                msg.extend_from_slice(&(p.len().saturating_add(5) as u32).to_be_bytes());
                msg.extend_from_slice(p);
                msg.push(0);
                write(conn, &msg).await?;
            }
            AuthRequest::Md5 { salt } => {
                method = "md5";
                let hash = match auth.secret {
                    UpstreamSecret::Password(p) => {
                        postgres_protocol::authentication::md5_hash(auth.user, p, salt)
                    }
                    UpstreamSecret::Md5Hash(stored) => crate::auth::md5::salted(stored, salt),
                    UpstreamSecret::ScramKey { .. } | UpstreamSecret::Certificate => {
                        return Err(cannot_answer(method, &auth.secret))
                    }
                };
                write(conn, &password_message(hash.as_bytes())).await?;
            }
            AuthRequest::Sasl { mechanisms } => {
                let plus = mechanisms.iter().any(|m| m == SCRAM_PLUS);
                let (mech, binding) = match (&conn.channel_binding, plus) {
                    (Some(cb), true) => {
                        method = "scram-sha-256-plus";
                        (SCRAM_PLUS, Binding::TlsServerEndPoint(cb.clone()))
                    }
                    _ if mechanisms.iter().any(|m| m == SCRAM) => {
                        method = "scram-sha-256";
                        // 'y': we could bind but the server did not offer it; 'n': we can't.
                        let cb = if conn.stream.is_tls() {
                            Binding::Unrequested
                        } else {
                            Binding::Unsupported
                        };
                        (SCRAM, cb)
                    }
                    _ => return Err(BackendError::UnsupportedAuth(mechanisms.join(", "))),
                };
                let s = match auth.secret {
                    UpstreamSecret::Password(p) => ScramClient::new(p, binding),
                    UpstreamSecret::ScramKey {
                        client_key,
                        verifier,
                    } => ScramClient::with_client_key(*client_key, verifier.clone(), binding),
                    UpstreamSecret::Md5Hash(_) | UpstreamSecret::Certificate => {
                        return Err(cannot_answer(method, &auth.secret))
                    }
                };
                write(conn, &sasl_initial_response(mech, s.message())).await?;
                scram = Some(s);
            }
            AuthRequest::SaslContinue(data) => {
                let s = scram.take().ok_or(BackendError::Scram(
                    "SASL continue without a SASL start".into(),
                ))?;
                let s = tokio::task::spawn_blocking(move || scram_server_first(s, &data))
                    .await
                    .map_err(|e| BackendError::Scram(e.to_string()))??;
                write(conn, &sasl_response(s.message())).await?;
                scram = Some(s);
            }
            AuthRequest::SaslFinal(data) => {
                // Verifies the server's signature: proves the server knows the secret.
                let s = scram.take().ok_or(BackendError::Scram(
                    "SASL final without a SASL exchange".into(),
                ))?;
                scram_server_final(s, &data)?;
            }
            AuthRequest::Other(code) => {
                return Err(BackendError::UnsupportedAuth(format!(
                    "authentication request code {code}"
                )))
            }
        }
        let msg = conn.reader.next(&mut conn.stream, MAX_AUTH_MESSAGE).await?;
        request = match msg.tag {
            b'E' => {
                return Ok(AuthOutcome::Rejected {
                    method,
                    fields: ErrorFields::parse(&msg.body),
                    raw: msg.raw,
                })
            }
            b'R' => AuthRequest::parse(&msg.body)?,
            other => {
                return Err(BackendError::Unexpected {
                    tag: other as char,
                    phase: "authentication",
                })
            }
        };
    }
}

async fn write(conn: &mut ServerConn, bytes: &[u8]) -> Result<(), BackendError> {
    conn.stream
        .write_all(bytes)
        .await
        .map_err(crate::wire::WireError::from)?;
    conn.stream
        .flush()
        .await
        .map_err(crate::wire::WireError::from)?;
    Ok(())
}

/// Tells why a server's request cannot be answered with the secret pgvigil holds.
fn cannot_answer(method: &str, secret: &UpstreamSecret<'_>) -> BackendError {
    BackendError::UnsupportedAuth(format!(
        "the server asks for {method} but pgvigil holds only a {} for this user",
        secret.name()
    ))
}

/// Answers a SCRAM server-first message (AuthenticationSASLContinue): refuses absurd
/// iteration counts, then derives the keys. Blocking (thousands of HMAC rounds): the relay
/// calls it on the blocking pool. A pure step, so fuzzing reaches the server-message
/// parsing without a connection. On success `message()` is the client-final message.
pub fn scram_server_first(
    mut s: ScramClient,
    server_first: &[u8],
) -> Result<ScramClient, BackendError> {
    s.update(server_first).map_err(scram_error)?;
    Ok(s)
}

/// Checks a SCRAM server-final message (AuthenticationSASLFinal): its signature proves
/// the server knows the password's secret.
pub fn scram_server_final(mut s: ScramClient, server_final: &[u8]) -> Result<(), BackendError> {
    s.finish(server_final).map_err(scram_error)
}

fn scram_error(e: AuthError) -> BackendError {
    match e {
        AuthError::VerifierMismatch => BackendError::ScramVerifierMismatch,
        other => BackendError::Scram(other.to_string()),
    }
}
