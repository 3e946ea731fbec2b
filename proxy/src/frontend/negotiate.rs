//! The startup negotiation with a client, up to its StartupMessage: SSLRequest, direct TLS
//! (PostgreSQL 17 `sslnegotiation=direct`), GSSENCRequest, CancelRequest, protocol version.

use super::FrontendError;
use crate::config::ClientTlsMode;
use crate::tls::{has_pending_bytes, ClientTls, MaybeTls};
use crate::wire::frame::read_startup_packet;
use crate::wire::startup::{StartupMessage, StartupPacket};
use bytes::Bytes;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// First byte of a TLS handshake record: a client speaking TLS at once.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// How a connection opened.
pub enum Opening {
    /// A client that wants a session.
    Session {
        stream: MaybeTls,
        startup: StartupMessage,
    },
    /// A cancel request (on its own connection, TLS or not). The stream is kept so that
    /// the connection can be closed the way PostgreSQL closes it (TLS close_notify).
    Cancel {
        stream: MaybeTls,
        pid: i32,
        secret: Bytes,
    },
}

/// Runs the negotiation on a fresh connection.
pub async fn negotiate(
    mut tcp: TcpStream,
    tls: Option<&ClientTls>,
) -> Result<Opening, FrontendError> {
    let mut first = [0u8; 1];
    let n = tcp
        .peek(&mut first)
        .await
        .map_err(crate::wire::WireError::from)?;
    if n == 0 {
        return Err(crate::wire::WireError::Eof.into());
    }
    if first[0] == TLS_HANDSHAKE_RECORD {
        let tls = tls.ok_or(FrontendError::DirectTlsDisabled)?;
        let stream = accept_tls(tls, tcp).await?;
        // Direct TLS is only PostgreSQL when the client says so (PostgreSQL 17 insists too).
        let alpn_ok = match &stream {
            MaybeTls::Tls(s) => match s.as_ref() {
                tokio_rustls::TlsStream::Server(s) => {
                    s.get_ref().1.alpn_protocol() == Some(crate::tls::ALPN_POSTGRESQL)
                }
                tokio_rustls::TlsStream::Client(_) => false,
            },
            MaybeTls::Plain(_) | MaybeTls::Unix(_) => false,
        };
        if !alpn_ok {
            return Err(FrontendError::NoAlpn);
        }
        return after_tls(stream).await;
    }
    let mut gss_answered = false;
    loop {
        let body = read_startup_packet(&mut tcp).await?;
        match parse_or_explain(&mut tcp, body).await? {
            StartupPacket::Ssl => match tls {
                Some(tls) if tls.mode != ClientTlsMode::Disable => {
                    if has_pending_bytes(&tcp) {
                        return Err(FrontendError::InjectedBytes);
                    }
                    tcp.write_all(b"S")
                        .await
                        .map_err(crate::wire::WireError::from)?;
                    let stream = accept_tls(tls, tcp).await?;
                    return after_tls(stream).await;
                }
                _ => {
                    tcp.write_all(b"N")
                        .await
                        .map_err(crate::wire::WireError::from)?;
                    // The client continues in plaintext (or hangs up); one more packet.
                    return plain_startup(tcp).await;
                }
            },
            StartupPacket::GssEnc if !gss_answered => {
                gss_answered = true;
                tcp.write_all(b"N")
                    .await
                    .map_err(crate::wire::WireError::from)?;
            }
            StartupPacket::GssEnc => return Err(FrontendError::Unexpected('G')),
            StartupPacket::Cancel { pid, secret } => {
                return Ok(Opening::Cancel {
                    stream: MaybeTls::Plain(tcp),
                    pid,
                    secret,
                })
            }
            StartupPacket::Startup(m) => {
                return Ok(Opening::Session {
                    stream: MaybeTls::Plain(tcp),
                    startup: m,
                })
            }
        }
    }
}

async fn plain_startup(mut tcp: TcpStream) -> Result<Opening, FrontendError> {
    let body = read_startup_packet(&mut tcp).await?;
    match parse_or_explain(&mut tcp, body).await? {
        StartupPacket::Startup(m) => Ok(Opening::Session {
            stream: MaybeTls::Plain(tcp),
            startup: m,
        }),
        StartupPacket::Cancel { pid, secret } => Ok(Opening::Cancel {
            stream: MaybeTls::Plain(tcp),
            pid,
            secret,
        }),
        _ => Err(FrontendError::Unexpected('S')),
    }
}

async fn accept_tls(tls: &ClientTls, tcp: TcpStream) -> Result<MaybeTls, FrontendError> {
    let s = tls
        .acceptor
        .accept(tcp)
        .await
        .map_err(FrontendError::TlsHandshake)?;
    Ok(MaybeTls::Tls(Box::new(tokio_rustls::TlsStream::Server(s))))
}

/// Inside TLS only a StartupMessage or a CancelRequest may follow.
async fn after_tls(mut stream: MaybeTls) -> Result<Opening, FrontendError> {
    let body = read_startup_packet(&mut stream).await?;
    match parse_or_explain(&mut stream, body).await? {
        StartupPacket::Startup(m) => Ok(Opening::Session { stream, startup: m }),
        StartupPacket::Cancel { pid, secret } => Ok(Opening::Cancel {
            stream,
            pid,
            secret,
        }),
        StartupPacket::Ssl | StartupPacket::GssEnc => Err(FrontendError::Unexpected('S')),
    }
}

/// Parses a startup-phase packet and checks a StartupMessage's version and user. A refusal
/// is explained to the client before the connection closes, as PostgreSQL does for a bad
/// layout, an unsupported protocol or a missing user name: the caller drops the stream, so
/// this is the last chance to say why. (Length errors never get here: like PostgreSQL, the
/// proxy closes on those without a word.) A failed write is moot: the connection closes.
async fn parse_or_explain<S: AsyncWrite + Unpin>(
    s: &mut S,
    body: Bytes,
) -> Result<StartupPacket, FrontendError> {
    let checked = match StartupPacket::parse(body) {
        Ok(StartupPacket::Startup(m)) => check_version(m).map(StartupPacket::Startup),
        other => other.map_err(FrontendError::from),
    };
    if let Err(e) = &checked {
        if let Some(msg) = e.client_error() {
            let _ = s.write_all(&msg).await;
            let _ = s.flush().await;
        }
    }
    checked
}

fn check_version(m: StartupMessage) -> Result<StartupMessage, FrontendError> {
    if m.major != 3 {
        return Err(FrontendError::UnsupportedProtocol {
            major: m.major,
            minor: m.minor,
        });
    }
    if m.get("user").is_none_or(|u| u.is_empty()) {
        return Err(FrontendError::NoUser);
    }
    Ok(m)
}
