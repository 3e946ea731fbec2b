//! The untagged packets a client opens with, and the StartupMessage's parameters.
//!
//! Parameters keep their original bytes and order: the proxy forwards them upstream as they
//! came (minus protocol options it answers itself), because decoding to a map and
//! re-encoding loses duplicates and order, and lossy UTF-8 would change the bytes.

use super::WireError;
use bytes::{BufMut, Bytes, BytesMut};

pub const SSL_REQUEST: u32 = 80_877_103;
pub const GSSENC_REQUEST: u32 = 80_877_104;
pub const CANCEL_REQUEST: u32 = 80_877_102;

/// What an untagged startup-phase packet is.
#[derive(Debug)]
pub enum StartupPacket {
    Ssl,
    GssEnc,
    /// A cancel request: the key the client was given.
    Cancel {
        pid: i32,
        secret: Bytes,
    },
    Startup(StartupMessage),
}

/// A StartupMessage: protocol version and parameters.
#[derive(Debug, Clone)]
pub struct StartupMessage {
    pub major: u16,
    pub minor: u16,
    /// Name/value pairs as sent.
    pub params: Vec<(Bytes, Bytes)>,
}

impl StartupPacket {
    /// Parses the body after the length word (already bounded by the framing).
    pub fn parse(body: Bytes) -> Result<StartupPacket, WireError> {
        if body.len() < 4 {
            return Err(WireError::Malformed("startup packet shorter than its code"));
        }
        let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        match code {
            SSL_REQUEST if body.len() == 4 => Ok(StartupPacket::Ssl),
            GSSENC_REQUEST if body.len() == 4 => Ok(StartupPacket::GssEnc),
            SSL_REQUEST | GSSENC_REQUEST => {
                Err(WireError::Malformed("encryption request with a body"))
            }
            CANCEL_REQUEST => {
                // 3.0: 4-byte key; 3.2: 4 to 256 bytes.
                if body.len() < 12 || body.len() > 8 + 256 {
                    return Err(WireError::Malformed("cancel request of the wrong size"));
                }
                let pid = i32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                Ok(StartupPacket::Cancel {
                    pid,
                    secret: body.slice(8..),
                })
            }
            _ => {
                let major = (code >> 16) as u16;
                let minor = (code & 0xffff) as u16;
                let params = parse_params(body.slice(4..))?;
                Ok(StartupPacket::Startup(StartupMessage {
                    major,
                    minor,
                    params,
                }))
            }
        }
    }
}

fn parse_params(mut rest: Bytes) -> Result<Vec<(Bytes, Bytes)>, WireError> {
    let mut params = Vec::new();
    loop {
        let name = take_cstr(&mut rest)?;
        if name.is_empty() {
            break;
        }
        let value = take_cstr(&mut rest)?;
        params.push((name, value));
    }
    if !rest.is_empty() {
        return Err(WireError::Malformed(
            "bytes after the startup packet's terminator",
        ));
    }
    Ok(params)
}

/// Splits off a NUL-terminated string (without the NUL).
pub fn take_cstr(rest: &mut Bytes) -> Result<Bytes, WireError> {
    let end = rest
        .iter()
        .position(|&b| b == 0)
        .ok_or(WireError::Malformed("string without terminator"))?;
    let s = rest.split_to(end);
    let _ = rest.split_to(1);
    Ok(s)
}

impl StartupMessage {
    /// The first value of a parameter.
    pub fn get(&self, name: &str) -> Option<&Bytes> {
        self.params
            .iter()
            .find(|(k, _)| k.as_ref() == name.as_bytes())
            .map(|(_, v)| v)
    }

    /// A parameter as text (lossy: for logs and audit fields, never for forwarding).
    pub fn get_str(&self, name: &str) -> Option<String> {
        self.get(name)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    /// Protocol options (`_pq_.*`) the client asked for; the proxy supports none.
    pub fn protocol_options(&self) -> Vec<String> {
        self.params
            .iter()
            .filter(|(k, _)| k.starts_with(b"_pq_."))
            .map(|(k, _)| String::from_utf8_lossy(k).into_owned())
            .collect()
    }

    /// Encodes a protocol 3.0 StartupMessage for the server: the client's parameters in
    /// order, `database` replaced when routed, protocol options left out.
    pub fn encode_upstream(&self, database: Option<&[u8]>) -> Bytes {
        let mut out = BytesMut::with_capacity(256);
        out.put_u32(0); // length, patched below
        out.put_u32(3 << 16);
        let mut db_seen = false;
        for (k, v) in &self.params {
            if k.starts_with(b"_pq_.") {
                continue;
            }
            let value = if k.as_ref() == b"database" {
                db_seen = true;
                database.unwrap_or(v)
            } else {
                v
            };
            out.put_slice(k);
            out.put_u8(0);
            out.put_slice(value);
            out.put_u8(0);
        }
        if let (false, Some(db)) = (db_seen, database) {
            out.put_slice(b"database\0");
            out.put_slice(db);
            out.put_u8(0);
        }
        out.put_u8(0);
        let len = out.len() as u32;
        out[..4].copy_from_slice(&len.to_be_bytes());
        out.freeze()
    }
}

#[cfg(test)]
#[path = "startup_tests.rs"]
mod tests;
