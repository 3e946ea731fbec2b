//! Message framing. Every length that arrives from a socket is checked here, before it can
//! size an allocation or move a cursor.
//!
//! Two readers exist on purpose:
//! - [`read_startup_packet`] reads one untagged startup-phase packet with exact reads, so
//!   nothing past it is ever buffered (bytes that follow an SSLRequest must stay in the
//!   socket, where the TLS handshake will choke on them: CVE-2021-23214).
//! - [`FramedReader`] reads tagged messages through a buffer, for authentication, and hands
//!   whatever it buffered beyond the last message to the relay so no byte is lost.
//!
//! [`FrameScanner`] follows frame boundaries in the relay without holding frames: the
//! bytes are forwarded as they came, the scanner only validates lengths and lets an
//! observer see the start of the frames it cares about.

use super::WireError;
use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// PostgreSQL's own limit for a startup packet.
pub const MAX_STARTUP_PACKET: usize = 10_000;
/// Upper bound for any regular message (PostgreSQL's own MaxAllocSize is 1 GiB).
pub const MAX_MESSAGE: usize = 1 << 30;
/// Authentication-phase messages are small; a large one is an attack (CVE-2026-6665).
pub const MAX_AUTH_MESSAGE: usize = 16 * 1024;

/// Validates a length word that counts itself. Returns the body length.
pub fn body_len(raw: [u8; 4], max_total: usize) -> Result<usize, WireError> {
    let total = u32::from_be_bytes(raw) as usize;
    if total < 4 {
        return Err(WireError::BadLength { len: total as u64 });
    }
    if total > max_total {
        return Err(WireError::TooLong {
            len: total as u64,
            max: max_total as u64,
        });
    }
    Ok(total - 4)
}

/// Reads one untagged startup-phase packet (StartupMessage, SSLRequest, GSSENCRequest,
/// CancelRequest) with exact reads, returning its body after the length word.
pub async fn read_startup_packet<S: AsyncRead + Unpin>(s: &mut S) -> Result<Bytes, WireError> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).await.map_err(WireError::from_read)?;
    let n = body_len(len, MAX_STARTUP_PACKET)?;
    if n < 4 {
        // Every startup packet carries at least a 4-byte code.
        return Err(WireError::BadLength { len: n as u64 + 4 });
    }
    let mut body = vec![0u8; n];
    s.read_exact(&mut body)
        .await
        .map_err(WireError::from_read)?;
    Ok(Bytes::from(body))
}

/// One complete tagged message.
#[derive(Debug, Clone)]
pub struct Message {
    pub tag: u8,
    /// The body, after tag and length.
    pub body: Bytes,
    /// The whole frame as it arrived (tag, length, body), for forwarding unchanged.
    pub raw: Bytes,
}

/// A message that carries a secret, in memory wiped on drop.
pub struct SecretMessage {
    pub tag: u8,
    /// The whole frame (tag, length, body).
    pub raw: zeroize::Zeroizing<Vec<u8>>,
}

impl SecretMessage {
    /// The body, after tag and length.
    pub fn body(&self) -> &[u8] {
        self.raw.get(5..).unwrap_or_default()
    }
}

/// Buffered reader of tagged messages for the authentication phase.
pub struct FramedReader {
    buf: BytesMut,
}

impl Default for FramedReader {
    fn default() -> Self {
        FramedReader::new()
    }
}

impl FramedReader {
    pub fn new() -> FramedReader {
        FramedReader {
            buf: BytesMut::with_capacity(1024),
        }
    }

    /// A reader that starts with bytes already read from the stream.
    pub fn with_leftover(buf: BytesMut) -> FramedReader {
        FramedReader { buf }
    }

    /// Reads the next message, refusing any larger than `max` bytes in all.
    pub async fn next<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
        max: usize,
    ) -> Result<Message, WireError> {
        loop {
            if let Some(m) = self.parse(max)? {
                return Ok(m);
            }
            if self.buf.capacity() - self.buf.len() < 512 {
                self.buf.reserve(4096);
            }
            self.fill(s).await?;
        }
    }

    /// One read into the buffer; the peer closing is [`WireError::Eof`].
    async fn fill<S: AsyncRead + Unpin>(&mut self, s: &mut S) -> Result<(), WireError> {
        let n = s
            .read_buf(&mut self.buf)
            .await
            .map_err(WireError::from_read)?;
        if n == 0 {
            return Err(WireError::Eof);
        }
        Ok(())
    }

    /// Reads the next message when it carries a secret (a password, a SASL response): the
    /// message is copied into memory that is wiped when dropped, and its bytes in the read
    /// buffer are overwritten before they are given up, so no copy outlives its use. The
    /// buffer is sized for the whole message before reading, so it is never reallocated
    /// with part of a secret left behind in the old allocation.
    pub async fn next_secret<S: AsyncRead + Unpin>(
        &mut self,
        s: &mut S,
        max: usize,
    ) -> Result<SecretMessage, WireError> {
        if self.buf.capacity() - self.buf.len() < max {
            self.buf.reserve(max);
        }
        loop {
            if let Some(total) = self.frame_len(max)?.filter(|&t| self.buf.len() >= t) {
                let tag = self.buf[0];
                let raw = zeroize::Zeroizing::new(self.buf[..total].to_vec());
                zeroize::Zeroize::zeroize(&mut self.buf[..total]);
                self.buf.advance(total);
                return Ok(SecretMessage { tag, raw });
            }
            self.fill(s).await?;
        }
    }

    /// The whole length of the message at the front of the buffer, once its header is in.
    fn frame_len(&self, max: usize) -> Result<Option<usize>, WireError> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let len = [self.buf[1], self.buf[2], self.buf[3], self.buf[4]];
        let body = body_len(len, max)?;
        let total = body
            .checked_add(5)
            .ok_or(WireError::BadLength { len: body as u64 })?;
        Ok(Some(total))
    }

    fn parse(&mut self, max: usize) -> Result<Option<Message>, WireError> {
        let Some(total) = self.frame_len(max)? else {
            return Ok(None);
        };
        let tag = self.buf[0];
        if self.buf.len() < total {
            self.buf.reserve(total - self.buf.len());
            return Ok(None);
        }
        let raw = self.buf.split_to(total).freeze();
        let body = raw.slice(5..);
        Ok(Some(Message { tag, body, raw }))
    }

    /// Bytes read past the last returned message: the relay starts with these.
    pub fn into_leftover(self) -> BytesMut {
        self.buf
    }
}

/// What the relay scanner reports to its observer.
pub trait FrameObserver {
    /// Called at the start of each frame with its tag and body length. Return how many body
    /// bytes you want to see (0 for none); they are passed to [`FrameObserver::on_frame`]
    /// once collected. `on_frame` is called only when this returned more than 0 and the body
    /// is not empty, so empty-bodied frames (Sync, Flush) are seen here alone.
    fn on_header(&mut self, tag: u8, body_len: usize) -> usize;
    /// The frame's first bytes, as many as asked for (or the whole body if shorter).
    fn on_frame(&mut self, tag: u8, body_len: usize, head: &[u8]);
}

/// An observer that watches nothing.
pub struct NoObserver;

impl FrameObserver for NoObserver {
    fn on_header(&mut self, _tag: u8, _len: usize) -> usize {
        0
    }
    fn on_frame(&mut self, _tag: u8, _len: usize, _head: &[u8]) {}
}

/// Streaming frame-boundary tracker for the relay. Holds at most a partial header and the
/// capped head of one observed frame; never a whole frame.
pub struct FrameScanner {
    max: usize,
    header: [u8; 5],
    header_len: usize,
    /// Body bytes of the current frame not yet seen.
    remaining: usize,
    tag: u8,
    body_len: usize,
    want: usize,
    head: Vec<u8>,
    /// Tag of the last frame whose header was complete.
    last_tag: u8,
}

impl FrameScanner {
    /// A scanner refusing frames larger than `max` bytes.
    pub fn new(max: usize) -> FrameScanner {
        FrameScanner {
            max,
            header: [0; 5],
            header_len: 0,
            remaining: 0,
            tag: 0,
            body_len: 0,
            want: 0,
            head: Vec::new(),
            last_tag: 0,
        }
    }

    /// Tag of the last frame that began.
    pub fn last_tag(&self) -> u8 {
        self.last_tag
    }

    /// Body bytes of the current frame still to come (0 at a boundary). Meaningful when
    /// the scanner was never handed a partial header (the enforcing relay never does).
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Whether the stream is at a frame boundary.
    pub fn at_boundary(&self) -> bool {
        self.header_len == 0 && self.remaining == 0 && self.want == 0
    }

    /// Follows the frames in `data`, calling the observer; an invalid length is an error
    /// and the connection must end.
    pub fn scan<O: FrameObserver>(
        &mut self,
        mut data: &[u8],
        obs: &mut O,
    ) -> Result<(), WireError> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let take = self.remaining.min(data.len());
                if self.want > 0 {
                    let keep = self.want.min(take);
                    self.head.extend_from_slice(&data[..keep]);
                    self.want -= keep;
                    if self.want == 0 {
                        obs.on_frame(self.tag, self.body_len, &self.head);
                        self.head.clear();
                    }
                }
                self.remaining -= take;
                data.advance(take);
                continue;
            }
            // Collect the 5-byte header, possibly across reads.
            let need = 5 - self.header_len;
            let take = need.min(data.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            self.header_len += take;
            data.advance(take);
            if self.header_len < 5 {
                break;
            }
            self.header_len = 0;
            let h = self.header;
            self.tag = h[0];
            self.last_tag = h[0];
            self.body_len = body_len([h[1], h[2], h[3], h[4]], self.max)?;
            self.remaining = self.body_len;
            self.want = obs.on_header(self.tag, self.body_len).min(self.body_len);
            if self.want > 0 {
                self.head.reserve(self.want);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "frame_tests.rs"]
mod tests;
