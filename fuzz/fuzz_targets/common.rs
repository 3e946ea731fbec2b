//! What several fuzz targets share: driving pgvigil's async readers over in-memory bytes,
//! delivered in chunks the fuzzer chooses (a socket hands data over in arbitrary pieces).

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};
use tokio::io::{AsyncRead, ReadBuf};

/// Runs a future whose I/O never waits (every reader here is in memory). A future still
/// pending after many polls is stuck: that is a bug worth a crash report, not a hang.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1_000_000 {
        if let Poll::Ready(v) = f.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("future pending over in-memory input");
}

/// An in-memory reader that returns at most the next chunk size per read, cycling
/// through `chunks` (a 0 in the list counts as 1: a read of 0 bytes means EOF).
pub struct ChunkedReader<'a> {
    data: &'a [u8],
    chunks: &'a [u8],
    next: usize,
}

impl<'a> ChunkedReader<'a> {
    /// A reader of `data` in chunks of the sizes in `chunks`, cycled (all at once if empty).
    pub fn new(data: &'a [u8], chunks: &'a [u8]) -> ChunkedReader<'a> {
        ChunkedReader {
            data,
            chunks,
            next: 0,
        }
    }

    /// Bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }
}

/// The size of the next chunk, cycling through the list; never 0.
pub fn chunk_size(chunks: &[u8], next: &mut usize) -> usize {
    let n = match chunks.get(*next % chunks.len().max(1)) {
        Some(&c) => usize::from(c).max(1),
        None => usize::MAX,
    };
    *next = next.wrapping_add(1);
    n
}

impl AsyncRead for ChunkedReader<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let n = chunk_size(this.chunks, &mut this.next)
            .min(buf.remaining())
            .min(this.data.len());
        let (now, later) = this.data.split_at(n);
        buf.put_slice(now);
        this.data = later;
        Poll::Ready(Ok(()))
    }
}
