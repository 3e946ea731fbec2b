//! The PROXY protocol header (v1 text, v2 binary) a load balancer puts in front of the
//! client's bytes, so the audited address is the real client's, not the balancer's.
//!
//! Read with exact reads, bounded: v1 is at most 107 bytes, v2 at most 16 + 65535 (we
//! refuse more than 4 KiB of TLVs, far above what balancers send). Parsing is ppp's.

use super::FrontendError;
use std::net::SocketAddr;
use tokio::io::{AsyncRead, AsyncReadExt};

const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_MAX: usize = 107;
const V2_MAX_BODY: usize = 4096;

/// Reads the header and returns the client address it carries; `None` when the balancer
/// says the connection is its own (v2 LOCAL, v1 UNKNOWN).
pub async fn read_header<S: AsyncRead + Unpin>(
    s: &mut S,
) -> Result<Option<SocketAddr>, FrontendError> {
    let bad = |m: &str| FrontendError::ProxyHeader(m.to_string());
    let mut head = [0u8; 12];
    s.read_exact(&mut head)
        .await
        .map_err(|_| bad("connection closed before the PROXY header"))?;
    if &head == V2_SIGNATURE {
        let mut fixed = [0u8; 4];
        s.read_exact(&mut fixed)
            .await
            .map_err(|_| bad("truncated v2 header"))?;
        let len = u16::from_be_bytes([fixed[2], fixed[3]]) as usize;
        if len > V2_MAX_BODY {
            return Err(bad("v2 header too long"));
        }
        let mut all = Vec::with_capacity(16 + len);
        all.extend_from_slice(&head);
        all.extend_from_slice(&fixed);
        all.resize(16 + len, 0);
        s.read_exact(&mut all[16..])
            .await
            .map_err(|_| bad("truncated v2 header"))?;
        let h = ppp::v2::Header::try_from(all.as_slice()).map_err(|e| bad(&e.to_string()))?;
        if h.command == ppp::v2::Command::Local {
            return Ok(None);
        }
        return Ok(match h.addresses {
            ppp::v2::Addresses::IPv4(a) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            ppp::v2::Addresses::IPv6(a) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            _ => None,
        });
    }
    if !head.starts_with(b"PROXY ") {
        return Err(bad("expected a PROXY protocol header"));
    }
    let mut line = head.to_vec();
    while !line.ends_with(b"\r\n") {
        if line.len() >= V1_MAX {
            return Err(bad("v1 header too long"));
        }
        let mut b = [0u8; 1];
        s.read_exact(&mut b)
            .await
            .map_err(|_| bad("truncated v1 header"))?;
        line.push(b[0]);
    }
    // v1 is ASCII: letters, digits, dots, colons and single spaces, one CRLF at the end.
    // Checked here, not left to ppp: its parser slices past a stray CR and panics when a
    // non-ASCII byte follows it (found by the startup fuzz target).
    let body = line.get(..line.len().saturating_sub(2)).unwrap_or_default();
    if !body.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return Err(bad("v1 header is not ASCII text"));
    }
    let text = std::str::from_utf8(&line).map_err(|_| bad("v1 header is not text"))?;
    let h = ppp::v1::Header::try_from(text).map_err(|e| bad(&e.to_string()))?;
    Ok(match h.addresses {
        ppp::v1::Addresses::Tcp4(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v1::Addresses::Tcp6(a) => Some(SocketAddr::from((a.source_address, a.source_port))),
        ppp::v1::Addresses::Unknown => None,
    })
}

#[cfg(test)]
#[path = "proxy_protocol_tests.rs"]
mod tests;
