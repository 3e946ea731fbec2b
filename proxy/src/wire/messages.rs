//! The messages the proxy writes itself (encoded with pgwire), and hardened parsers for the
//! few it must read: Authentication requests, ErrorResponse fields, password and SASL
//! messages. pgwire's decoders are not used on network bytes (they panic on short input).

use super::startup::take_cstr;
use super::WireError;
use bytes::{BufMut, Bytes, BytesMut};
use pgwire::messages::response::ErrorResponse;
use pgwire::messages::startup::{
    Authentication, BackendKeyData, NegotiateProtocolVersion, SASLInitialResponse, SASLResponse,
    SecretKey,
};

fn encode<M: pgwire::messages::Message>(m: &M) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    // Encoding into a growable buffer cannot fail for these message types; an empty
    // result would surface as a protocol error at the peer rather than a panic here.
    let _ = m.encode(&mut buf);
    buf.freeze()
}

/// Severity of an ErrorResponse the proxy sends.
#[derive(Debug, Clone, Copy)]
pub enum Severity {
    Error,
    Fatal,
}

/// An ErrorResponse as PostgreSQL formats it: S, V, C, M and optional H fields.
pub fn error_response(
    severity: Severity,
    sqlstate: &str,
    message: &str,
    hint: Option<&str>,
) -> Bytes {
    let sev = match severity {
        Severity::Error => "ERROR",
        Severity::Fatal => "FATAL",
    };
    let mut fields = vec![
        (b'S', sev.to_string()),
        (b'V', sev.to_string()),
        (b'C', sqlstate.to_string()),
        (b'M', message.to_string()),
    ];
    if let Some(h) = hint {
        fields.push((b'H', h.to_string()));
    }
    encode(&ErrorResponse::new(fields))
}

/// AuthenticationOk.
pub fn auth_ok() -> Bytes {
    encode(&Authentication::Ok)
}

/// AuthenticationCleartextPassword.
pub fn auth_cleartext() -> Bytes {
    encode(&Authentication::CleartextPassword)
}

/// AuthenticationSASL with the given mechanisms.
pub fn auth_sasl(mechanisms: &[String]) -> Bytes {
    encode(&Authentication::SASL(mechanisms.to_vec()))
}

/// BackendKeyData with a 4-byte secret (protocol 3.0).
pub fn backend_key_data(pid: i32, secret: i32) -> Bytes {
    encode(&BackendKeyData::new(pid, SecretKey::I32(secret)))
}

/// NegotiateProtocolVersion: the newest minor version we speak and the options refused.
pub fn negotiate_protocol_version(minor: i32, unsupported: Vec<String>) -> Bytes {
    encode(&NegotiateProtocolVersion::new(minor, unsupported))
}

/// PasswordMessage carrying raw bytes (cleartext password or md5 hash), byte-exact.
pub fn password_message(password: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(password.len() + 6);
    b.put_u8(b'p');
    b.put_u32((password.len() + 5) as u32);
    b.put_slice(password);
    b.put_u8(0);
    b.freeze()
}

/// SASLInitialResponse.
pub fn sasl_initial_response(mechanism: &str, data: &[u8]) -> Bytes {
    encode(&SASLInitialResponse::new(
        mechanism.to_string(),
        Some(Bytes::copy_from_slice(data)),
    ))
}

/// SASLResponse.
pub fn sasl_response(data: &[u8]) -> Bytes {
    encode(&SASLResponse::new(Bytes::copy_from_slice(data)))
}

/// SSLRequest.
pub fn ssl_request() -> [u8; 8] {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&8u32.to_be_bytes());
    b[4..].copy_from_slice(&super::startup::SSL_REQUEST.to_be_bytes());
    b
}

/// CancelRequest carrying a server's key.
pub fn cancel_request(pid: i32, secret: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(12 + secret.len());
    b.put_u32((12 + secret.len()) as u32);
    b.put_u32(super::startup::CANCEL_REQUEST);
    b.put_i32(pid);
    b.put_slice(secret);
    b.freeze()
}

/// A server's Authentication request.
#[derive(Debug)]
pub enum AuthRequest {
    Ok,
    Cleartext,
    Md5 {
        salt: [u8; 4],
    },
    Sasl {
        mechanisms: Vec<String>,
    },
    SaslContinue(Bytes),
    SaslFinal(Bytes),
    /// Kerberos, GSS, SSPI, SCM: not supported through the proxy.
    Other(i32),
}

impl AuthRequest {
    /// Parses the body of an `R` message.
    pub fn parse(body: &Bytes) -> Result<AuthRequest, WireError> {
        if body.len() < 4 {
            return Err(WireError::Malformed(
                "authentication request without a code",
            ));
        }
        let code = i32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let rest = body.slice(4..);
        Ok(match code {
            0 => AuthRequest::Ok,
            3 => AuthRequest::Cleartext,
            5 => {
                if rest.len() != 4 {
                    return Err(WireError::Malformed("md5 request without a 4-byte salt"));
                }
                AuthRequest::Md5 {
                    salt: [rest[0], rest[1], rest[2], rest[3]],
                }
            }
            10 => {
                let mut rest = rest;
                let mut mechanisms = Vec::new();
                loop {
                    let m = take_cstr(&mut rest)?;
                    if m.is_empty() {
                        break;
                    }
                    mechanisms.push(String::from_utf8_lossy(&m).into_owned());
                }
                AuthRequest::Sasl { mechanisms }
            }
            11 => AuthRequest::SaslContinue(rest),
            12 => AuthRequest::SaslFinal(rest),
            other => AuthRequest::Other(other),
        })
    }
}

/// The fields of an ErrorResponse or NoticeResponse that the proxy uses.
#[derive(Debug, Clone, Default)]
pub struct ErrorFields {
    pub severity: String,
    /// Absent in malformed responses (CVE-2026-6666): never assume it.
    pub sqlstate: Option<String>,
    pub message: String,
}

impl ErrorFields {
    /// Parses an ErrorResponse body; tolerant of missing fields, never panics.
    pub fn parse(body: &[u8]) -> ErrorFields {
        let mut out = ErrorFields::default();
        let mut rest = body;
        while let Some((&code, tail)) = rest.split_first() {
            if code == 0 {
                break;
            }
            let Some(end) = tail.iter().position(|&b| b == 0) else {
                break;
            };
            let value = String::from_utf8_lossy(&tail[..end]).into_owned();
            match code {
                b'V' => out.severity = value,
                b'S' if out.severity.is_empty() => out.severity = value,
                b'C' => out.sqlstate = Some(value),
                b'M' => out.message = value,
                _ => {}
            }
            rest = &tail[end + 1..];
        }
        out
    }
}

/// The content of a PasswordMessage held as a plain slice (so it can be wiped): the bytes
/// up to the terminator, `None` without one.
pub fn password_of(body: &[u8]) -> Option<&[u8]> {
    body.iter().position(|&b| b == 0).map(|end| &body[..end])
}

/// The content of a PasswordMessage: bytes up to the terminator.
pub fn parse_password(body: &Bytes) -> Result<Bytes, WireError> {
    let mut rest = body.clone();
    take_cstr(&mut rest)
}

/// SASLInitialResponse: mechanism and the client-first message (absent when length -1).
pub fn parse_sasl_initial(body: &Bytes) -> Result<(String, Option<Bytes>), WireError> {
    let mut rest = body.clone();
    let mech = take_cstr(&mut rest)?;
    if rest.len() < 4 {
        return Err(WireError::Malformed(
            "SASL initial response without a length",
        ));
    }
    let len = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]);
    let data = rest.slice(4..);
    let data = match len {
        -1 => None,
        n if n >= 0 && n as usize == data.len() => Some(data),
        _ => {
            return Err(WireError::Malformed(
                "SASL initial response length mismatch",
            ))
        }
    };
    Ok((String::from_utf8_lossy(&mech).into_owned(), data))
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
