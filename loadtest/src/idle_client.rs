//! The idle phase's client: a minimal tokio implementation of the startup, the optional
//! TLS negotiation and the cleartext-password exchange, up to ReadyForQuery, one socket per
//! connection and nothing else, so what pgvigil holds for it is all the measure shows.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;

use crate::procs;
use crate::targets::{APP_PASSWORD, APP_USER};

/// Logins in flight at once (each forks a PostgreSQL backend).
const CONCURRENCY: usize = 32;
/// Longest a single login may take.
const LOGIN_TIMEOUT: Duration = Duration::from_secs(60);

/// An idle connection, kept open only to be measured.
pub enum Conn {
    Plain(#[allow(dead_code)] TcpStream),
    Tls(#[allow(dead_code)] Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// How the client reaches pgvigil: plaintext, or TLS trusting `ca`'s certificates.
#[derive(Clone)]
pub enum ClientLeg {
    Plain,
    Tls(tokio_rustls::TlsConnector),
}

impl ClientLeg {
    /// A TLS leg that trusts the CA certificate in the PEM file `ca`.
    pub fn tls(ca: &std::path::Path) -> anyhow::Result<ClientLeg> {
        use anyhow::Context;
        use rustls_pki_types::pem::PemObject;
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_file_iter(ca)
            .with_context(|| format!("cannot read {}", ca.display()))?
        {
            roots
                .add(cert.context("bad CA certificate")?)
                .context("unusable CA certificate")?;
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("TLS versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(ClientLeg::Tls(tokio_rustls::TlsConnector::from(Arc::new(
            config,
        ))))
    }
}

/// Opens up to `n` authenticated connections, `CONCURRENCY` logins at a time; stops at
/// the first failure (or Ctrl-C) and returns what it has plus that error.
pub async fn open_many(port: u16, n: usize, leg: &ClientLeg) -> (Vec<Conn>, Option<String>) {
    let mut open = Vec::with_capacity(n);
    let mut tasks = JoinSet::new();
    let mut issued = 0;
    let mut first_err = None;
    loop {
        while first_err.is_none() && issued < n && tasks.len() < CONCURRENCY {
            if procs::interrupted() {
                first_err = Some("interrupted".to_owned());
                break;
            }
            issued += 1;
            let leg = leg.clone();
            tasks.spawn(async move {
                match tokio::time::timeout(LOGIN_TIMEOUT, login(port, leg)).await {
                    Ok(r) => r,
                    Err(_) => Err(format!("login timed out after {LOGIN_TIMEOUT:?}")),
                }
            });
        }
        let Some(joined) = tasks.join_next().await else {
            break;
        };
        match joined {
            Ok(Ok(stream)) => open.push(stream),
            Ok(Err(e)) => {
                first_err.get_or_insert(e);
            }
            Err(e) => {
                first_err.get_or_insert(format!("login task failed: {e}"));
            }
        }
    }
    (open, first_err)
}

/// Connects (over TLS when the leg says so) and logs in.
async fn login(port: u16, leg: ClientLeg) -> std::result::Result<Conn, String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| format!("connect to pgvigil: {e}"))?;
    match leg {
        ClientLeg::Plain => {
            exchange(&mut s).await?;
            Ok(Conn::Plain(s))
        }
        ClientLeg::Tls(connector) => {
            s.write_all(&[0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f])
                .await
                .map_err(|e| format!("send SSLRequest: {e}"))?;
            let mut answer = [0u8; 1];
            s.read_exact(&mut answer)
                .await
                .map_err(|e| format!("read SSLRequest answer: {e}"))?;
            if answer[0] != b'S' {
                return Err("pgvigil declined TLS".to_owned());
            }
            let name =
                rustls_pki_types::ServerName::try_from("localhost").map_err(|e| e.to_string())?;
            let mut tls = connector
                .connect(name, s)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            exchange(&mut tls).await?;
            Ok(Conn::Tls(Box::new(tls)))
        }
    }
}

/// Startup + cleartext password exchange as `app_user` on `app`, up to ReadyForQuery.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> std::result::Result<(), String> {
    s.write_all(&startup_message(APP_USER, "app"))
        .await
        .map_err(|e| format!("send startup: {e}"))?;
    loop {
        let mut head = [0u8; 5];
        s.read_exact(&mut head)
            .await
            .map_err(|e| format!("read reply: {e}"))?;
        let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
        if !(4..=1 << 20).contains(&len) {
            return Err(format!("bad message length {len}"));
        }
        let mut body = vec![0u8; len - 4];
        s.read_exact(&mut body)
            .await
            .map_err(|e| format!("read reply: {e}"))?;
        match head[0] {
            b'R' => match body
                .get(..4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            {
                Some(0) => {}
                Some(3) => {
                    let mut msg = vec![b'p'];
                    msg.extend_from_slice(&((4 + APP_PASSWORD.len() + 1) as u32).to_be_bytes());
                    msg.extend_from_slice(APP_PASSWORD.as_bytes());
                    msg.push(0);
                    s.write_all(&msg)
                        .await
                        .map_err(|e| format!("send password: {e}"))?;
                }
                other => return Err(format!("unsupported authentication request {other:?}")),
            },
            b'E' => return Err(format!("server error: {}", error_text(&body))),
            b'Z' => return Ok(()),
            _ => {} // ParameterStatus, BackendKeyData, NoticeResponse
        }
    }
}

/// A protocol 3.0 StartupMessage.
fn startup_message(user: &str, database: &str) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&196_608u32.to_be_bytes());
    for (k, v) in [("user", user), ("database", database)] {
        body.extend_from_slice(k.as_bytes());
        body.push(0);
        body.extend_from_slice(v.as_bytes());
        body.push(0);
    }
    body.push(0);
    let mut msg = ((body.len() + 4) as u32).to_be_bytes().to_vec();
    msg.extend_from_slice(&body);
    msg
}

/// SQLSTATE and message of an ErrorResponse body.
fn error_text(body: &[u8]) -> String {
    let mut code = String::new();
    let mut message = String::new();
    for field in body.split(|b| *b == 0) {
        match field.split_first() {
            Some((b'C', v)) => code = String::from_utf8_lossy(v).into_owned(),
            Some((b'M', v)) => message = String::from_utf8_lossy(v).into_owned(),
            _ => {}
        }
    }
    format!("{code} {message}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn startup_message_layout() {
        let m = startup_message("u", "d");
        assert_eq!(&m[..4], &(m.len() as u32).to_be_bytes());
        assert_eq!(&m[4..8], &196_608u32.to_be_bytes());
        assert_eq!(&m[8..], b"user\0u\0database\0d\0\0");
    }

    #[test]
    fn error_fields() {
        assert_eq!(
            error_text(b"SFATAL\0C53300\0Mtoo many\0\0"),
            "53300 too many"
        );
    }
}
