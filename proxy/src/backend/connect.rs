//! Opening a connection to PostgreSQL with libpq's `sslmode` behaviour.

use super::BackendError;
use super::UpstreamTarget;
use crate::config::SslMode;
use crate::tls::MaybeTls;
use crate::wire::messages::ssl_request;
use crate::wire::FramedReader;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A connection to PostgreSQL, before or after authentication.
pub struct ServerConn {
    pub stream: MaybeTls,
    /// Buffered reader; its leftover bytes go to the relay.
    pub reader: FramedReader,
    /// `tls-server-end-point` data of the server certificate, for SCRAM-SHA-256-PLUS.
    pub channel_binding: Option<Vec<u8>>,
    /// `host:port`, for messages.
    pub addr: String,
}

/// Whether an upstream `host` names a Unix-socket directory (an absolute path, as libpq
/// takes it) rather than a host name or address.
pub fn is_unix_socket_dir(host: &str) -> bool {
    host.starts_with('/')
}

/// The socket file PostgreSQL listens on in directory `dir` for `port`.
fn unix_socket_path(dir: &str, port: u16) -> String {
    format!("{}/.s.PGSQL.{port}", dir.trim_end_matches('/'))
}

/// Connects to `target`, negotiating TLS as its sslmode says. `force_tls` upgrades
/// `allow` to a TLS attempt (libpq's second try).
pub async fn connect(target: &UpstreamTarget, force_tls: bool) -> Result<ServerConn, BackendError> {
    let addr = if is_unix_socket_dir(&target.host) {
        unix_socket_path(&target.host, target.port)
    } else {
        format!("{}:{}", target.host, target.port)
    };
    let fut = connect_inner(target, &addr, force_tls);
    let conn = tokio::time::timeout(target.connect_timeout, fut)
        .await
        .map_err(|_| BackendError::ConnectTimeout {
            addr: addr.clone(),
            secs: target.connect_timeout.as_secs_f64(),
        })??;
    Ok(conn)
}

async fn connect_inner(
    target: &UpstreamTarget,
    addr: &str,
    force_tls: bool,
) -> Result<ServerConn, BackendError> {
    if is_unix_socket_dir(&target.host) {
        // No TLS over a local socket (the config check refuses an sslmode that needs it).
        let unix = tokio::net::UnixStream::connect(addr)
            .await
            .map_err(|source| BackendError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        return Ok(ServerConn {
            stream: MaybeTls::Unix(unix),
            reader: FramedReader::new(),
            channel_binding: None,
            addr: addr.to_string(),
        });
    }
    let tcp = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|source| BackendError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    // Small request/response messages: Nagle would add latency to every statement.
    let _ = tcp.set_nodelay(true);
    let want_tls = match target.sslmode {
        SslMode::Disable => false,
        SslMode::Allow => force_tls,
        _ => true,
    };
    let plain = |tcp| ServerConn {
        stream: MaybeTls::Plain(tcp),
        reader: FramedReader::new(),
        channel_binding: None,
        addr: addr.to_string(),
    };
    let Some(tls) = target.tls.as_ref().filter(|_| want_tls) else {
        return Ok(plain(tcp));
    };
    let mut tcp = tcp;
    tcp.write_all(&ssl_request())
        .await
        .map_err(|source| BackendError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    let mut reply = [0u8; 1];
    tcp.read_exact(&mut reply)
        .await
        .map_err(|source| BackendError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    match reply[0] {
        b'S' => {}
        b'N' if matches!(target.sslmode, SslMode::Prefer | SslMode::Allow) => {
            return Ok(plain(tcp))
        }
        b'N' => {
            return Err(BackendError::TlsRefused {
                addr: addr.to_string(),
                sslmode: target.sslmode.as_str(),
            })
        }
        other => return Err(BackendError::BadSslReply(other)),
    }
    // Anything already waiting would be read as if it came over TLS (CVE-2021-23222).
    if crate::tls::has_pending_bytes(&tcp) {
        return Err(BackendError::InjectedBytes);
    }
    let stream = tls
        .connector
        .connect(tls.server_name.clone(), tcp)
        .await
        .map_err(|source| BackendError::TlsHandshake {
            addr: addr.to_string(),
            source,
        })?;
    let channel_binding = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(crate::tls::tls_server_end_point);
    Ok(ServerConn {
        stream: MaybeTls::Tls(Box::new(tokio_rustls::TlsStream::Client(stream))),
        reader: FramedReader::new(),
        channel_binding,
        addr: addr.to_string(),
    })
}
