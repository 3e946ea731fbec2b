//! The relay of a session where statements may be refused: as `frontend::relay::pump`,
//! but a frame that may be replaced is held whole (up to what its observer asks for) before
//! any byte of it is forwarded, and the observer may hand a stand-in for it. A replaced
//! frame longer than what was held has its remaining bytes dropped as they arrive.
//!
//! Only sessions with something to refuse use this pump; the others forward their bytes
//! with no holding at all.

use crate::frontend::relay::{
    read_done, read_size, read_some, ByteCounter, Pace, PumpEnd, MIN_BUF,
};
use crate::wire::frame::body_len;
use crate::wire::{FrameObserver, FrameScanner, WireError};
use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

/// An observer that may replace the frames it holds.
pub trait Substitute: FrameObserver {
    /// How many body bytes of a frame with this tag and body length must be in hand before
    /// any of it is forwarded (0: stream it).
    fn hold(&mut self, tag: u8, body_len: usize) -> usize;
    /// A stand-in for the frame just scanned, if it is to be replaced.
    fn take_substitute(&mut self) -> Option<Vec<u8>>;
}

/// What one pass over the buffer produced.
struct Pass {
    /// Bytes of the buffer consumed (forwarded, replaced or dropped).
    used: usize,
    /// More bytes needed before the frame at `used` can be looked at.
    need: usize,
    /// The bytes to write when something was replaced or dropped (else `buf[..used]`).
    out: Option<Vec<u8>>,
}

/// Scans `buf` frame by frame from the scanner's position.
fn pass<O: Substitute>(
    buf: &[u8],
    scanner: &mut FrameScanner,
    obs: &mut O,
    discard: &mut usize,
    max: usize,
) -> Result<Pass, WireError> {
    let mut out: Option<Vec<u8>> = None;
    // Appends `range` to `out`, starting `out` with what was kept so far if needed.
    let mut pos = 0usize;
    let cont = scanner.remaining().min(buf.len());
    if cont > 0 {
        scanner.scan(&buf[..cont], obs)?;
        let drop = (*discard).min(cont);
        *discard -= drop;
        if drop > 0 {
            out = Some(buf[drop..cont].to_vec());
        }
        pos = cont;
    }
    let mut need = 0;
    while pos < buf.len() {
        let avail = buf.len() - pos;
        if avail < 5 {
            need = 5 - avail;
            break;
        }
        let tag = buf[pos];
        let body = body_len(
            [buf[pos + 1], buf[pos + 2], buf[pos + 3], buf[pos + 4]],
            max,
        )?;
        let total = body
            .checked_add(5)
            .ok_or(WireError::BadLength { len: body as u64 })?;
        let hold = obs.hold(tag, body).min(body);
        if avail < 5 + hold {
            need = 5 + hold - avail;
            break;
        }
        let end = pos + total.min(avail);
        scanner.scan(&buf[pos..end], obs)?;
        match obs.take_substitute() {
            Some(sub) => {
                let o = out.get_or_insert_with(|| buf[..pos].to_vec());
                o.extend_from_slice(&sub);
                *discard = total - (end - pos);
            }
            None => {
                if let Some(o) = out.as_mut() {
                    o.extend_from_slice(&buf[pos..end]);
                }
            }
        }
        pos = end;
    }
    Ok(Pass {
        used: pos,
        need,
        out,
    })
}

/// Forwards `from` to `to` like `frontend::relay::pump`, replacing the frames `observer`
/// hands stand-ins for.
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
    O: Substitute,
    C: ByteCounter,
    P: Pace,
{
    let mut size = MIN_BUF;
    let mut discard = 0usize;
    let mut need = 0usize;
    loop {
        if buf.is_empty() || need > 0 {
            pace.before_read().await;
            let want = read_size(&buf, size, need);
            let read = read_some(from, &mut buf, want).await;
            if let Err(end) = read_done(read, &mut size) {
                return end;
            }
        }
        let p = match pass(
            &buf,
            scanner,
            observer,
            &mut discard,
            crate::wire::frame::MAX_MESSAGE,
        ) {
            Ok(p) => p,
            Err(e) => return PumpEnd::ReadError(e),
        };
        need = p.need;
        pace.after_scan().await;
        let bytes: &[u8] = match &p.out {
            Some(o) => o,
            None => &buf[..p.used],
        };
        if !bytes.is_empty() {
            if let Err(e) = to.write_all(bytes).await {
                return PumpEnd::WriteError(WireError::Io(e));
            }
            if let Err(e) = to.flush().await {
                return PumpEnd::WriteError(WireError::Io(e));
            }
        }
        counter.add(p.used);
        buf.advance(p.used);
        if need == 0 && !buf.is_empty() {
            // A partial frame header is never left: `need` covers it. Anything left here
            // is a frame being streamed; nothing is.
            need = 1;
        }
    }
}

impl Substitute for crate::frontend::relay::ClientSide<'_> {
    fn hold(&mut self, tag: u8, body_len: usize) -> usize {
        // Only messages that run something may be refused: no lock for the rest (COPY
        // data above all).
        if !matches!(tag, b'Q' | b'P' | b'E' | b'F') {
            return 0;
        }
        lock(self.tracker).client_hold(tag, body_len)
    }
    fn take_substitute(&mut self) -> Option<Vec<u8>> {
        lock(self.tracker).take_substitute()
    }
}

impl Substitute for crate::frontend::relay::ServerSide<'_> {
    fn hold(&mut self, tag: u8, body_len: usize) -> usize {
        // Only a stand-in's ErrorResponse is ever replaced: no lock for rows.
        if tag != b'E' {
            return 0;
        }
        lock(self.tracker).server_hold(tag, body_len)
    }
    fn take_substitute(&mut self) -> Option<Vec<u8>> {
        lock(self.tracker).take_server_substitute()
    }
}

/// The tracker's lock; a poisoned lock is used as is (see `frontend::relay`).
fn lock(
    m: &std::sync::Mutex<crate::audit::Tracker>,
) -> std::sync::MutexGuard<'_, crate::audit::Tracker> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Holds Query frames whole (up to `cap`) and replaces those whose text starts "DROP".
    struct Fake {
        cap: usize,
        sub: Option<Vec<u8>>,
    }

    impl FrameObserver for Fake {
        fn on_header(&mut self, tag: u8, len: usize) -> usize {
            if tag == b'Q' {
                self.cap.min(len)
            } else {
                0
            }
        }
        fn on_frame(&mut self, _tag: u8, _len: usize, head: &[u8]) {
            if head.starts_with(b"DROP") {
                self.sub = Some(b"Z-sub".to_vec());
            }
        }
    }

    impl Substitute for Fake {
        fn hold(&mut self, tag: u8, len: usize) -> usize {
            if tag == b'Q' {
                self.cap.min(len)
            } else {
                0
            }
        }
        fn take_substitute(&mut self) -> Option<Vec<u8>> {
            self.sub.take()
        }
    }

    fn q(text: &str) -> Vec<u8> {
        let mut f = vec![b'Q'];
        f.extend_from_slice(&((text.len() + 5) as u32).to_be_bytes());
        f.extend_from_slice(text.as_bytes());
        f.push(0);
        f
    }

    /// Feeds `stream` in chunks of `step` bytes, as reads would, and returns what would
    /// be written on.
    fn run(stream: &[u8], step: usize, cap: usize) -> Vec<u8> {
        let mut scanner = FrameScanner::new(1 << 20);
        let mut obs = Fake { cap, sub: None };
        let mut discard = 0;
        let mut buf: Vec<u8> = Vec::new();
        let mut out = Vec::new();
        for chunk in stream.chunks(step) {
            buf.extend_from_slice(chunk);
            let p = pass(&buf, &mut scanner, &mut obs, &mut discard, 1 << 20).unwrap();
            match p.out {
                Some(o) => out.extend(o),
                None => out.extend_from_slice(&buf[..p.used]),
            }
            buf.drain(..p.used);
        }
        assert!(buf.is_empty(), "left over: {buf:?}");
        out
    }

    #[test]
    fn replaces_only_the_refused_frame_whatever_the_reads() {
        let mut stream = q("SELECT 1");
        stream.extend(q("DROP TABLE t"));
        stream.extend(q("SELECT 2"));
        let mut want = q("SELECT 1");
        want.extend_from_slice(b"Z-sub");
        want.extend(q("SELECT 2"));
        for step in 1..stream.len() {
            assert_eq!(run(&stream, step, 1024), want, "reads of {step} bytes");
        }
    }

    #[test]
    fn a_refused_frame_longer_than_the_hold_is_dropped_to_its_end() {
        let long = format!("DROP TABLE t /* {} */", "x".repeat(300));
        let mut stream = q(&long);
        stream.extend(q("SELECT 2"));
        let mut want = b"Z-sub".to_vec();
        want.extend(q("SELECT 2"));
        for step in [1, 7, 64, 100, 1000] {
            assert_eq!(run(&stream, step, 16), want, "reads of {step} bytes");
        }
    }
}
