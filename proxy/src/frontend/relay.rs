//! The relay: both directions of an authenticated session, forwarded as the original bytes.
//!
//! Each direction reads whatever the socket has into one buffer, lets the frame scanner
//! check every length (and show the observer the frames it wants), and writes the same bytes
//! on in one write. Frames are never assembled or copied one by one, so a multi-gigabyte
//! COPY or result streams through a buffer of at most [`MAX_BUF`] bytes.

use crate::wire::frame::MAX_MESSAGE;
use crate::wire::{FrameObserver, FrameScanner, WireError};
use bytes::BytesMut;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A fresh session's buffer: small, because most sessions are idle most of the time.
const MIN_BUF: usize = 8 * 1024;
/// Buffers grow while reads fill them (bulk results), up to this.
const MAX_BUF: usize = 256 * 1024;

/// How one direction ended.
#[derive(Debug)]
pub enum PumpEnd {
    /// The reading side closed cleanly.
    Eof,
    /// Reading failed or a frame was invalid.
    ReadError(WireError),
    /// Writing to the other side failed.
    WriteError(WireError),
}

/// Byte counts of one direction.
pub trait ByteCounter {
    fn add(&mut self, n: usize);
}

/// Shared by both directions: whether the server is idle (last said ReadyForQuery and the
/// client has sent nothing since), so a client that vanishes mid-query can be cancelled.
#[derive(Default)]
pub struct Activity {
    server_idle: AtomicBool,
    client_terminated: AtomicBool,
}

impl Activity {
    /// True when the client sent Terminate.
    pub fn client_terminated(&self) -> bool {
        self.client_terminated.load(Ordering::Relaxed)
    }
    /// True when no statement is in flight.
    pub fn server_idle(&self) -> bool {
        self.server_idle.load(Ordering::Relaxed)
    }
    /// Sessions start idle (the server's first ReadyForQuery was already relayed).
    pub fn new_idle() -> Activity {
        let a = Activity::default();
        a.server_idle.store(true, Ordering::Relaxed);
        a
    }
}

/// Watches client-to-server frames.
pub struct ClientSide<'a>(pub &'a Activity);

impl FrameObserver for ClientSide<'_> {
    fn on_header(&mut self, tag: u8, _len: usize) -> usize {
        if tag == b'X' {
            self.0.client_terminated.store(true, Ordering::Relaxed);
        } else {
            self.0.server_idle.store(false, Ordering::Relaxed);
        }
        0
    }
    fn on_frame(&mut self, _tag: u8, _len: usize, _head: &[u8]) {}
}

/// Watches server-to-client frames.
pub struct ServerSide<'a>(pub &'a Activity);

impl FrameObserver for ServerSide<'_> {
    fn on_header(&mut self, tag: u8, _len: usize) -> usize {
        if tag == b'Z' {
            self.0.server_idle.store(true, Ordering::Relaxed);
        }
        0
    }
    fn on_frame(&mut self, _tag: u8, _len: usize, _head: &[u8]) {}
}

/// Forwards `from` to `to` until either fails or `from` ends, starting with `buf`'s content
/// (bytes buffered during authentication). Returns the scanner so the caller can see where
/// the stream stopped.
pub async fn pump<R, W, O, C>(
    from: &mut R,
    to: &mut W,
    mut buf: BytesMut,
    scanner: &mut FrameScanner,
    observer: &mut O,
    counter: &mut C,
) -> PumpEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    O: FrameObserver,
    C: ByteCounter,
{
    let mut size = MIN_BUF;
    loop {
        if buf.is_empty() {
            if buf.capacity() < size {
                buf.reserve(size);
            }
            let room = buf.capacity();
            match from.read_buf(&mut buf).await {
                Ok(0) => return PumpEnd::Eof,
                Ok(n) => {
                    if n == room && size < MAX_BUF {
                        size *= 2;
                    }
                }
                Err(e) => return PumpEnd::ReadError(WireError::Io(e)),
            }
        }
        if let Err(e) = scanner.scan(&buf, observer) {
            return PumpEnd::ReadError(e);
        }
        if let Err(e) = to.write_all(&buf).await {
            return PumpEnd::WriteError(WireError::Io(e));
        }
        if let Err(e) = to.flush().await {
            return PumpEnd::WriteError(WireError::Io(e));
        }
        counter.add(buf.len());
        buf.clear();
    }
}

/// A scanner for relayed traffic.
pub fn scanner() -> FrameScanner {
    FrameScanner::new(MAX_MESSAGE)
}
