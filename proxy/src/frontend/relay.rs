//! The relay: both directions of an authenticated session, forwarded as the original bytes.
//!
//! Each direction reads whatever the socket has into one buffer, lets the frame scanner
//! check every length (and show the observer the frames it wants), and writes the same bytes
//! on in one write. Frames are never assembled or copied one by one, so a multi-gigabyte
//! COPY or result streams through a buffer of at most [`MAX_BUF`] bytes, and an idle
//! direction holds no buffer at all: it is given back while the socket has nothing to read.
//!
//! A client that sends faster than the server answers (pipelining without reading the
//! replies) is read only while its [`Backlog`] is within the session's limits; past them
//! the relay waits for replies, so TCP pushes back on the client instead of the proxy's
//! memory growing.

use crate::audit::{AuditSink, Tracker};
use crate::config::Backpressure;
use crate::wire::frame::MAX_MESSAGE;
use crate::wire::{FrameObserver, FrameScanner, WireError};
use bytes::BytesMut;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::Poll;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::Notify;

/// A fresh session's buffer: small, because most sessions are idle most of the time.
pub(crate) const MIN_BUF: usize = 8 * 1024;
/// Buffers grow while reads fill them (bulk results), up to this.
pub(crate) const MAX_BUF: usize = 256 * 1024;

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

/// Shared by both directions: whether a statement may be in flight, so a client that
/// vanishes mid-statement can be cancelled.
///
/// "The last server frame was ReadyForQuery" is not enough: with a pipelining client
/// (tokio-postgres, libpq pipeline mode, JDBC batches) the ReadyForQuery answering the
/// first queued query arrives while the next one runs. So the client messages that each
/// earn exactly one ReadyForQuery (Query, FunctionCall, Sync) are counted against the
/// ReadyForQuery messages seen, and extended-protocol messages not yet followed by a Sync
/// count as in flight too (the server runs an Execute without waiting for Sync). Where the
/// server answers fewer (a Sync ignored during COPY IN, a Query discarded after an error in
/// an extended batch) the count errs towards "busy": the cost is one needless cancel.
#[derive(Default)]
pub struct Activity {
    /// Query/FunctionCall/Sync messages sent minus ReadyForQuery messages received.
    awaiting_ready: AtomicU64,
    /// Extended-protocol messages sent since the last Sync.
    unsynced: AtomicBool,
    client_terminated: AtomicBool,
}

impl Activity {
    /// True when the client sent Terminate.
    pub fn client_terminated(&self) -> bool {
        self.client_terminated.load(Ordering::Relaxed)
    }
    /// True when no statement is in flight.
    pub fn server_idle(&self) -> bool {
        self.awaiting_ready.load(Ordering::Relaxed) == 0 && !self.unsynced.load(Ordering::Relaxed)
    }
    /// Sessions start idle (the server's first ReadyForQuery was already relayed).
    pub fn new_idle() -> Activity {
        Activity::default()
    }
}

/// Watches client-to-server frames: activity for cancel-on-hang-up, statements for the
/// audit tracker.
pub struct ClientSide<'a> {
    pub activity: &'a Activity,
    pub tracker: &'a Mutex<Tracker>,
}

impl FrameObserver for ClientSide<'_> {
    fn on_header(&mut self, tag: u8, len: usize) -> usize {
        self.activity.client_sent(tag);
        // CopyData is the bulk of a COPY IN: not worth a lock.
        if tag == b'd' {
            return 0;
        }
        lock(self.tracker).client_wants(tag, len)
    }
    fn on_frame(&mut self, tag: u8, _len: usize, head: &[u8]) {
        lock(self.tracker).client_frame(tag, head);
    }
}

/// The tracker's lock. A panic while holding it cannot leave the protocol state worse
/// than a missed frame, so a poisoned lock is used as is.
fn lock(m: &Mutex<Tracker>) -> std::sync::MutexGuard<'_, Tracker> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Activity {
    /// Notes a client message by its tag.
    fn client_sent(&self, tag: u8) {
        let activity = self;
        match tag {
            b'X' => activity.client_terminated.store(true, Ordering::Relaxed),
            b'Q' | b'F' => {
                activity.awaiting_ready.fetch_add(1, Ordering::Relaxed);
            }
            b'S' => {
                activity.awaiting_ready.fetch_add(1, Ordering::Relaxed);
                activity.unsynced.store(false, Ordering::Relaxed);
            }
            // CopyData/CopyDone/CopyFail belong to a Query or Execute already counted.
            b'd' | b'c' | b'f' => {}
            // Parse, Bind, Describe, Execute, Close, Flush, and anything unknown.
            _ => activity.unsynced.store(true, Ordering::Relaxed),
        }
    }
}

/// Watches server-to-client frames.
pub struct ServerSide<'a> {
    pub activity: &'a Activity,
    pub tracker: &'a Mutex<Tracker>,
}

impl FrameObserver for ServerSide<'_> {
    fn on_header(&mut self, tag: u8, len: usize) -> usize {
        match tag {
            // DataRow and CopyData: the bulk of every result, never looked into.
            b'D' | b'd' => return 0,
            b'Z' => self.activity.server_ready(),
            _ => {}
        }
        lock(self.tracker).server_wants(tag, len)
    }
    fn on_frame(&mut self, tag: u8, _len: usize, head: &[u8]) {
        lock(self.tracker).server_frame(tag, head);
    }
}

impl Activity {
    /// Notes a ReadyForQuery.
    fn server_ready(&self) {
        // Saturating: a ReadyForQuery nothing asked for must not wrap the count.
        let _ = self
            .awaiting_ready
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// The client's messages still waiting for replies, and the limits past which the client
/// is not read (`[listen] max_pending_messages`, `max_pending_bytes`).
pub struct Backlog<'a> {
    pub tracker: &'a Mutex<Tracker>,
    pub max_messages: usize,
    pub max_bytes: usize,
    /// Counts each pause.
    pub pauses: &'a metrics::Counter,
    paused: AtomicBool,
    drained: Notify,
}

impl<'a> Backlog<'a> {
    pub fn new(
        tracker: &'a Mutex<Tracker>,
        max_messages: usize,
        max_bytes: usize,
        pauses: &'a metrics::Counter,
    ) -> Backlog<'a> {
        Backlog {
            tracker,
            max_messages,
            max_bytes,
            pauses,
            paused: AtomicBool::new(false),
            drained: Notify::new(),
        }
    }

    fn over(&self) -> bool {
        let (messages, bytes) = lock(self.tracker).backlog();
        messages >= self.max_messages || bytes >= self.max_bytes
    }

    /// Returns once the client may be read again.
    async fn room(&self) {
        if !self.over() {
            return;
        }
        self.pauses.increment(1);
        loop {
            // Made before the check: a reply that drains the backlog in between leaves a
            // permit, so the wake-up is not lost.
            let drained = self.drained.notified();
            self.paused.store(true, Ordering::Relaxed);
            if !self.over() {
                break;
            }
            drained.await;
        }
        self.paused.store(false, Ordering::Relaxed);
    }

    /// The server answered something: a paused client may have room again.
    fn replies_seen(&self) {
        if self.paused.load(Ordering::Relaxed) {
            self.drained.notify_one();
        }
    }
}

/// Where the completed statement events of a direction go.
pub struct Events<'a> {
    pub tracker: &'a Mutex<Tracker>,
    pub sink: &'a AuditSink,
    pub backpressure: Backpressure,
    pub backlog: &'a Backlog<'a>,
}

impl Events<'_> {
    /// Hands the tracker's finished events to the audit sink (waiting for room unless the
    /// policy is to drop), then waits until they are as durable as `[audit] durability`
    /// asks.
    async fn flush(&self) {
        let events = lock(self.tracker).take_events();
        if events.is_empty() {
            return;
        }
        // Written by the session itself (`written`, the default): no future to allocate.
        match self.sink.append_inline(events) {
            Ok(ticket) => self.sink.finish_inline(ticket).await,
            Err(events) => {
                // Boxed: the queue's hand-over state is allocated per batch of events
                // instead of being carried by the server direction's future, which lives
                // as long as the session.
                Box::pin(self.sink.queue_statements(events, self.backpressure))
                    .await
                    .wait()
                    .await
            }
        }
    }
}

/// How a direction's reads are paced: a trait rather than an enum so that each direction's
/// pump is compiled with only its own waits, and the client direction's future (alive as
/// long as the session) does not carry the audit hand-over's state.
pub trait Pace {
    /// Before each read: wait until reading may go on.
    fn before_read(&self) -> impl std::future::Future<Output = ()>;
    /// After a batch was scanned, before it is written on.
    fn after_scan(&self) -> impl std::future::Future<Output = ()>;
}

/// Client to server: read only while the backlog is within its limits.
impl Pace for Backlog<'_> {
    async fn before_read(&self) {
        self.room().await
    }
    async fn after_scan(&self) {}
}

/// Server to client: completed statements go to the audit sink before the bytes go on, and
/// a paused client may have room again.
impl Pace for Events<'_> {
    async fn before_read(&self) {}
    async fn after_scan(&self) {
        self.flush().await;
        self.backlog.replies_seen();
    }
}

/// Reads what `from` has into `buf` (empty on entry), with room for `size` bytes. While the
/// socket has nothing, the buffer is given back (to the thread's spares, `buffers`): an
/// idle session holds no read buffer.
pub(crate) async fn read_some<R: AsyncRead + Unpin>(
    from: &mut R,
    buf: &mut BytesMut,
    size: usize,
) -> std::io::Result<usize> {
    std::future::poll_fn(|cx| {
        if buf.capacity() == 0 {
            *buf = super::buffers::take(size);
        }
        if buf.capacity() < size {
            buf.reserve(size);
        }
        match tokio_util::io::poll_read_buf(Pin::new(&mut *from), cx, buf) {
            Poll::Pending => {
                if buf.is_empty() {
                    super::buffers::give_back(std::mem::take(buf));
                }
                Poll::Pending
            }
            ready => ready,
        }
    })
    .await
}

/// How much a pump reads next: room for `need` bytes past what `buf` holds, and at least
/// `size`.
pub(crate) fn read_size(buf: &BytesMut, size: usize, need: usize) -> usize {
    size.max(buf.len().saturating_add(need))
}

/// What a pump's read came to: `Err` says how the direction ended. The read size doubles,
/// up to [`MAX_BUF`], while reads fill it. (Not an async helper around the read: its own
/// state would be carried by every session's future.)
pub(crate) fn read_done(read: std::io::Result<usize>, size: &mut usize) -> Result<(), PumpEnd> {
    match read {
        Ok(0) => Err(PumpEnd::Eof),
        Ok(n) => {
            if n >= *size && *size < MAX_BUF {
                *size *= 2;
            }
            Ok(())
        }
        Err(e) => Err(PumpEnd::ReadError(WireError::Io(e))),
    }
}

/// Forwards `from` to `to` until either fails or `from` ends, starting with `buf`'s content
/// (bytes buffered during authentication). `scanner` is left where the stream stopped, so
/// the caller knows whether it may append a message of its own at a frame boundary.
pub async fn pump<R, W, O, C, P>(
    from: &mut R,
    to: &mut W,
    mut buf: BytesMut,
    scanner: &mut FrameScanner,
    observer: &mut O,
    counter: &mut C,
    pace: &P,
) -> PumpEnd
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    O: FrameObserver,
    C: ByteCounter,
    P: Pace,
{
    let mut size = MIN_BUF;
    loop {
        if buf.is_empty() {
            pace.before_read().await;
            let read = read_some(from, &mut buf, size).await;
            if let Err(end) = read_done(read, &mut size) {
                return end;
            }
        }
        if let Err(e) = scanner.scan(&buf, observer) {
            return PumpEnd::ReadError(e);
        }
        // Events are handed over before the bytes go on: a client never sees the result of a
        // statement whose audit event is not yet as durable as configured (queued, written
        // or synced). Only server replies complete statements, so the client direction has
        // none to hand over.
        pace.after_scan().await;
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

#[cfg(test)]
#[path = "relay_tests.rs"]
mod tests;
