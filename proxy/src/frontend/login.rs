//! Client authentication, in each mode, and the end of the server's startup.
//!
//! - `password`: the proxy asks the client for its password (cleartext, which is why it is
//!   refused on an unencrypted non-loopback link) and authenticates upstream itself, with
//!   whatever the server demands, SCRAM-SHA-256-PLUS included.
//! - `passthrough`: the server's exchange is relayed message by message; the proxy only
//!   removes SCRAM-SHA-256-PLUS (the client's channel binding would bind to the proxy's
//!   certificate, not the server's) and explains the one case that cannot work.
//!
//! Either way the outcome is seen: AuthenticationOk, the server's ErrorResponse, or a client
//! that hung up.

use super::admission::AuthTicket;
use super::cancel::CancelKey;
use super::{FrontendError, Shared};
use crate::audit::shadow::{LoginFacts, SessionShadow};
use crate::backend::{self, AuthOutcome, Begin, ServerConn, UpstreamAuth, UpstreamTarget};
use crate::config::{AuthMode, ClientTlsMode, SslMode};
use crate::snapshot::Config;
use crate::tls::MaybeTls;
use crate::wire::frame::SecretMessage;
use crate::wire::frame::MAX_AUTH_MESSAGE;
use crate::wire::messages::{
    auth_cleartext, auth_ok, auth_sasl, backend_key_data, negotiate_protocol_version,
    parse_sasl_initial, password_of, AuthRequest, ErrorFields,
};
use crate::wire::startup::StartupMessage;
use crate::wire::{FramedReader, Message, WireError};
use bytes::{Bytes, BytesMut};
use std::net::IpAddr;
use std::time::Instant;
use tokio::io::AsyncWriteExt;

/// Largest message expected while the server finishes its startup (ParameterStatus etc.).
const MAX_STARTUP_REPLY: usize = 64 * 1024;

/// An authenticated pair of connections, ready to relay.
pub struct LoggedIn {
    pub client_leftover: BytesMut,
    pub server: MaybeTls,
    pub server_leftover: BytesMut,
    /// The proxy's cancel key for this client (unregistered on drop).
    pub cancel_key: Option<CancelKey>,
    pub server_is_tls: bool,
    /// The server's `standard_conforming_strings` at login (the statement tracker follows
    /// later changes itself).
    pub standard_conforming_strings: bool,
    /// What the noise filter may trust in this session (for the tracker).
    pub shadow: Option<SessionShadow>,
}

/// Everything login needs to know about the connection.
pub struct LoginRequest<'a> {
    pub config: &'a Config,
    pub shared: &'a Shared,
    pub target: &'a UpstreamTarget,
    pub startup: &'a StartupMessage,
    /// The audited client address (from the PROXY header when enabled).
    pub client_addr: IpAddr,
    /// Set as soon as the method is known, so a failure can report it.
    pub auth_method: &'a mut Option<String>,
    /// How pgvigil authenticated upstream, once known.
    pub upstream_auth_method: &'a mut Option<String>,
}

/// Authenticates the client and completes the server's startup.
pub async fn login(
    mut req: LoginRequest<'_>,
    client: &mut MaybeTls,
) -> Result<LoggedIn, FrontendError> {
    let mut client_reader = FramedReader::new();
    let options = req.startup.protocol_options();
    if req.startup.minor > 0 || !options.is_empty() {
        write(client, &negotiate_protocol_version(0, options)).await?;
    }
    let upstream_startup = req
        .startup
        .encode_upstream(req.target.dbname.as_deref().map(str::as_bytes));
    // The ticket (a place among the server connections authenticating) is held until the
    // server's startup is over.
    let mode = req.config.file.auth.mode;
    let result = match mode {
        AuthMode::Password => {
            password_login(&mut req, client, &mut client_reader, &upstream_startup).await
        }
        AuthMode::Passthrough => {
            let ticket = req.shared.admission.upstream_auth(req.client_addr).await;
            passthrough_login(&mut req, client, &mut client_reader, &upstream_startup)
                .await
                .map(|server| (server, ticket))
        }
        AuthMode::Scram => {
            crate::auth::client_login::scram_login(
                &mut req,
                client,
                &mut client_reader,
                &upstream_startup,
            )
            .await
        }
        AuthMode::Certificate => {
            crate::auth::cert_login::certificate_login(&mut req, client, &upstream_startup).await
        }
    };
    // In these modes the client's method is the upstream one (the others record both).
    if matches!(mode, AuthMode::Password | AuthMode::Passthrough)
        && req.upstream_auth_method.is_none()
    {
        *req.upstream_auth_method = req.auth_method.clone();
    }
    let (mut server, _ticket) = result?;
    let prefix = match mode {
        AuthMode::Password | AuthMode::Scram | AuthMode::Certificate => Some(auth_ok()),
        AuthMode::Passthrough => None,
    };
    let (cancel_key, standard_conforming_strings) =
        finish_startup(&req, client, &mut server, prefix).await?;
    let (shadow, mut server_leftover) = learn_catalog(&req, &mut server).await?;
    server_leftover.extend_from_slice(&server.reader.into_leftover());
    let server_is_tls = server.stream.is_tls();
    Ok(LoggedIn {
        client_leftover: client_reader.into_leftover(),
        server: server.stream,
        server_leftover,
        cancel_key,
        server_is_tls,
        standard_conforming_strings,
        shadow: Some(shadow),
    })
}

async fn password_login(
    req: &mut LoginRequest<'_>,
    client: &mut MaybeTls,
    reader: &mut FramedReader,
    upstream_startup: &Bytes,
) -> Result<(ServerConn, AuthTicket), FrontendError> {
    // The client answers first: no server connection exists for a client that has not even
    // sent a password (a startup packet costs the server nothing). The price: a user the
    // server trusts must send one too, as it cannot be known before asking the server.
    let tls_mode = req.config.file.listen.tls.mode;
    if !client.is_tls() && !req.client_addr.is_loopback() && tls_mode != ClientTlsMode::Disable {
        return Err(FrontendError::Refused {
            sqlstate: "28000",
            message: "pgvigil does not accept a password over an unencrypted connection".into(),
            hint: Some(
                "connect with sslmode=require, or set [listen.tls] mode = \"disable\" in pgvigil's \
                 configuration to allow plaintext passwords"
                    .into(),
            ),
        });
    }
    write(client, &auth_cleartext()).await?;
    let msg = read_secret(client, reader).await?;
    if msg.tag != b'p' {
        return Err(FrontendError::Unexpected(msg.tag as char));
    }
    // Both copies are wiped when dropped.
    let password = zeroize::Zeroizing::new(
        password_of(msg.body())
            .ok_or(FrontendError::BadAuthMessage("invalid password packet"))?
            .to_vec(),
    );
    drop(msg);
    let secret = backend::UpstreamSecret::Password(&password);
    authenticate_upstream(req, client, upstream_startup, secret).await
}

/// Opens the server connection for a client whose secret is in hand (its password, or a
/// key recovered from its SCRAM proof), and authenticates it with whatever the server
/// demands.
pub(crate) async fn authenticate_upstream(
    req: &mut LoginRequest<'_>,
    client: &mut MaybeTls,
    upstream_startup: &Bytes,
    secret: backend::UpstreamSecret<'_>,
) -> Result<(ServerConn, AuthTicket), FrontendError> {
    let ticket = req.shared.admission.upstream_auth(req.client_addr).await;
    let (mut server, begin) = begin_upstream(req, upstream_startup).await?;
    let request = match begin {
        Begin::Trusted => {
            *req.auth_method = Some("trust".to_string());
            return Ok((server, ticket));
        }
        Begin::Rejected { raw, fields } => {
            let _ = write(client, &raw).await;
            return Err(rejected(fields));
        }
        Begin::NeedsPassword(request) => request,
    };
    let user = req.startup.get("user").cloned().unwrap_or_default();
    let auth = UpstreamAuth {
        user: &user,
        secret,
    };
    match backend::complete(&mut server, request, &auth).await? {
        AuthOutcome::Ok { method } => {
            *req.auth_method = Some(method.to_string());
            Ok((server, ticket))
        }
        AuthOutcome::Rejected {
            method,
            raw,
            fields,
        } => {
            *req.auth_method = Some(method.to_string());
            let _ = write(client, &raw).await;
            Err(rejected(fields))
        }
    }
}

/// Connects and sends the startup; with sslmode=allow a plaintext attempt the server
/// refuses (28000, pg_hba.conf) is retried over TLS, as libpq does.
async fn begin_upstream(
    req: &LoginRequest<'_>,
    startup: &Bytes,
) -> Result<(ServerConn, Begin), FrontendError> {
    let mut server = connect(req, false).await?;
    let begin = backend::begin(&mut server, startup).await?;
    let retry = matches!(&begin, Begin::Rejected { fields, .. }
        if fields.sqlstate.as_deref() == Some("28000"))
        && req.target.sslmode == SslMode::Allow
        && !server.stream.is_tls();
    if !retry {
        return Ok((server, begin));
    }
    let mut server = connect(req, true).await?;
    let begin = backend::begin(&mut server, startup).await?;
    Ok((server, begin))
}

async fn connect(req: &LoginRequest<'_>, force_tls: bool) -> Result<ServerConn, FrontendError> {
    let started = Instant::now();
    let server = backend::connect(req.target, force_tls).await?;
    req.shared
        .metrics
        .upstream_connect_seconds
        .record(started.elapsed().as_secs_f64());
    Ok(server)
}

async fn passthrough_login(
    req: &mut LoginRequest<'_>,
    client: &mut MaybeTls,
    reader: &mut FramedReader,
    upstream_startup: &Bytes,
) -> Result<ServerConn, FrontendError> {
    let mut server = connect(req, false).await?;
    write(&mut server.stream, upstream_startup).await?;
    let mut method = "trust";
    loop {
        let msg = server
            .reader
            .next(&mut server.stream, MAX_AUTH_MESSAGE)
            .await
            .map_err(backend::BackendError::from)?;
        match msg.tag {
            b'E' => {
                *req.auth_method = Some(method.to_string());
                let _ = write(client, &msg.raw).await;
                return Err(rejected(ErrorFields::parse(&msg.body)));
            }
            b'v' | b'N' => continue,
            b'R' => {}
            other => {
                return Err(backend::BackendError::Unexpected {
                    tag: other as char,
                    phase: "authentication",
                }
                .into())
            }
        }
        let request = AuthRequest::parse(&msg.body).map_err(backend::BackendError::from)?;
        match request {
            AuthRequest::Ok => {
                *req.auth_method = Some(method.to_string());
                write(client, &msg.raw).await?;
                return Ok(server);
            }
            AuthRequest::Cleartext | AuthRequest::Md5 { .. } => {
                method = if matches!(request, AuthRequest::Cleartext) {
                    "password"
                } else {
                    "md5"
                };
                *req.auth_method = Some(method.to_string());
                write(client, &msg.raw).await?;
                relay_client_message(client, reader, &mut server).await?;
            }
            AuthRequest::Sasl { mechanisms } => {
                method = "scram-sha-256";
                *req.auth_method = Some(method.to_string());
                // PLUS would bind the client to our certificate; the server would refuse it.
                let offered: Vec<String> = mechanisms
                    .into_iter()
                    .filter(|m| m != "SCRAM-SHA-256-PLUS")
                    .collect();
                if offered.is_empty() {
                    return Err(refuse_unsupported("SCRAM-SHA-256-PLUS only"));
                }
                write(client, &auth_sasl(&offered)).await?;
                let first = read_client(client, reader).await?;
                if first.tag != b'p' {
                    return Err(FrontendError::Unexpected(first.tag as char));
                }
                let (_, data) = parse_sasl_initial(&first.body)
                    .map_err(|_| FrontendError::BadAuthMessage("malformed SASL message"))?;
                if data.as_ref().and_then(|d| d.first()) == Some(&b'y') && server.stream.is_tls() {
                    return Err(channel_binding_refusal());
                }
                write(&mut server.stream, &first.raw).await?;
            }
            AuthRequest::SaslContinue(_) => {
                write(client, &msg.raw).await?;
                relay_client_message(client, reader, &mut server).await?;
            }
            AuthRequest::SaslFinal(_) => write(client, &msg.raw).await?,
            AuthRequest::Other(code) => {
                return Err(refuse_unsupported(&format!(
                    "authentication request code {code}"
                )))
            }
        }
    }
}

/// The one passthrough case that cannot work, explained in terms of what to change.
fn channel_binding_refusal() -> FrontendError {
    FrontendError::Refused {
        sqlstate: "28000",
        message: "SCRAM channel binding cannot pass through pgvigil in auth mode \"passthrough\" \
                  when both links use TLS"
            .into(),
        hint: Some(
            "connect with channel_binding=disable, or set [auth] mode = \"password\" in pgvigil's \
             configuration (pgvigil then authenticates upstream itself, with channel binding)"
                .into(),
        ),
    }
}

fn refuse_unsupported(what: &str) -> FrontendError {
    FrontendError::Refused {
        sqlstate: "28000",
        message: format!(
            "the server asks for an authentication method pgvigil cannot relay ({what})"
        ),
        hint: Some("use scram-sha-256, md5, password or trust for this user in pg_hba.conf".into()),
    }
}

fn rejected(fields: ErrorFields) -> FrontendError {
    FrontendError::Rejected {
        sqlstate: fields.sqlstate,
        reason: fields.message,
    }
}

async fn relay_client_message(
    client: &mut MaybeTls,
    reader: &mut FramedReader,
    server: &mut ServerConn,
) -> Result<(), FrontendError> {
    // A cleartext password in passthrough: wiped once forwarded.
    let msg = read_secret(client, reader).await?;
    if msg.tag != b'p' {
        return Err(FrontendError::Unexpected(msg.tag as char));
    }
    write(&mut server.stream, &msg.raw).await?;
    Ok(())
}

/// Reads the server's messages after AuthenticationOk up to ReadyForQuery, replacing its
/// BackendKeyData with the proxy's own, and sends them to the client in one write.
async fn finish_startup(
    req: &LoginRequest<'_>,
    client: &mut MaybeTls,
    server: &mut ServerConn,
    prefix: Option<Bytes>,
) -> Result<(Option<CancelKey>, bool), FrontendError> {
    let mut scs = true;
    let mut out = BytesMut::with_capacity(1024);
    if let Some(p) = prefix {
        out.extend_from_slice(&p);
    }
    let mut key = None;
    loop {
        let msg = server
            .reader
            .next(&mut server.stream, MAX_STARTUP_REPLY)
            .await
            .map_err(backend::BackendError::from)?;
        match msg.tag {
            b'K' => {
                if msg.body.len() < 8 {
                    return Err(backend::BackendError::Wire(WireError::Malformed(
                        "short BackendKeyData",
                    ))
                    .into());
                }
                let b = &msg.body;
                let pid = i32::from_be_bytes([b[0], b[1], b[2], b[3]]);
                let k = req
                    .shared
                    .cancels
                    .register(req.target.clone(), pid, msg.body.slice(4..));
                out.extend_from_slice(&backend_key_data(k.pid(), k.secret()));
                key = Some(k);
            }
            b'Z' => {
                out.extend_from_slice(&msg.raw);
                write(client, &out).await?;
                return Ok((key, scs));
            }
            b'E' => {
                out.extend_from_slice(&msg.raw);
                let _ = write(client, &out).await;
                return Err(rejected(ErrorFields::parse(&msg.body)));
            }
            b'S' => {
                if msg.body.starts_with(b"standard_conforming_strings\0") {
                    scs = !msg.body.ends_with(b"\0off\0");
                }
                out.extend_from_slice(&msg.raw);
            }
            b'N' | b'v' => out.extend_from_slice(&msg.raw),
            other => {
                return Err(backend::BackendError::Unexpected {
                    tag: other as char,
                    phase: "startup",
                }
                .into())
            }
        }
    }
}

/// Runs pgvigil's catalog query on the fresh server connection (its ReadyForQuery was
/// the last message) and records what it found for the database. Returns the session's
/// view and the server messages to relay first. A replication connection runs no SQL:
/// nothing is learned and nothing unqualified is trusted.
async fn learn_catalog(
    req: &LoginRequest<'_>,
    server: &mut ServerConn,
) -> Result<(SessionShadow, BytesMut), FrontendError> {
    if req.startup.get("replication").is_some() {
        return Ok((SessionShadow::unknown(), BytesMut::new()));
    }
    let database = req
        .target
        .dbname
        .clone()
        .or_else(|| req.startup.get_str("database"))
        .or_else(|| req.startup.get_str("user"))
        .unwrap_or_default();
    let key = format!("{}:{}/{database}", req.target.host, req.target.port);
    let slot = req.shared.shadows.slot(&key);
    let ticket = slot.ticket();
    let refresh = req.config.file.audit.noise_catalog_refresh;
    let reply = backend::catalog::query(server, slot.needs_learning(refresh)).await?;
    if let Some(functions) = reply.functions {
        slot.store(ticket, functions);
    }
    if reply.schemas.is_none() {
        tracing::warn!("the noise filter's catalog check failed; unqualified names are not trusted in this session");
    }
    let facts = LoginFacts {
        schemas: reply.schemas,
        search_path: reply.search_path,
    };
    Ok((SessionShadow::new(slot, &facts), reply.for_client))
}

pub(crate) async fn read_client(
    client: &mut MaybeTls,
    reader: &mut FramedReader,
) -> Result<Message, FrontendError> {
    reader.next(client, MAX_AUTH_MESSAGE).await.map_err(|e| {
        if e.is_disconnect() {
            FrontendError::ClientGone
        } else {
            FrontendError::Wire(e)
        }
    })
}

/// Reads a message that may carry a password (see [`FramedReader::next_secret`]).
pub(crate) async fn read_secret(
    client: &mut MaybeTls,
    reader: &mut FramedReader,
) -> Result<SecretMessage, FrontendError> {
    reader
        .next_secret(client, MAX_AUTH_MESSAGE)
        .await
        .map_err(|e| {
            if e.is_disconnect() {
                FrontendError::ClientGone
            } else {
                FrontendError::Wire(e)
            }
        })
}

pub(crate) async fn write(s: &mut MaybeTls, bytes: &[u8]) -> Result<(), WireError> {
    s.write_all(bytes).await?;
    s.flush().await?;
    Ok(())
}
