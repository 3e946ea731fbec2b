//! The session thread's spare read buffers.
//!
//! A direction gives its read buffer back whenever its socket has nothing to read, so an
//! idle session holds none. Freed to the allocator, that was an 8 KiB `malloc` and `free`
//! per direction per round trip (measured: about 1.3% of pgvigil's CPU with pgbench -S at
//! 16 clients). Given back here instead, the next read on the same event loop takes it.
//! The spares are bounded in number and size, so what idle sessions do not hold, the
//! thread holds at most [`SPARE_MAX`] × [`SPARE_SIZE_MAX`] of.

use bytes::BytesMut;
use std::cell::RefCell;

/// Spare buffers kept per thread.
pub const SPARE_MAX: usize = 32;
/// Larger buffers (grown for a bulk result) go back to the allocator.
pub const SPARE_SIZE_MAX: usize = 16 * 1024;

thread_local! {
    static SPARES: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A buffer with room for at least `size` bytes: a spare when one fits, else a new one.
pub fn take(size: usize) -> BytesMut {
    let spare = SPARES
        .try_with(|s| {
            let mut s = s.borrow_mut();
            match s.last() {
                Some(b) if b.capacity() >= size => s.pop(),
                _ => None,
            }
        })
        .ok()
        .flatten();
    spare.unwrap_or_else(|| BytesMut::with_capacity(size))
}

/// Keeps `buf` (emptied) for the next [`take`] on this thread, or frees it.
pub fn give_back(mut buf: BytesMut) {
    if buf.capacity() == 0 || buf.capacity() > SPARE_SIZE_MAX {
        return;
    }
    buf.clear();
    // A thread being torn down frees the buffer instead.
    let _ = SPARES.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < SPARE_MAX {
            s.push(buf);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spares_are_reused_and_bounded() {
        let b = take(8 * 1024);
        let ptr = b.as_ptr();
        give_back(b);
        let again = take(8 * 1024);
        assert_eq!(again.as_ptr(), ptr, "the spare is reused");
        assert!(again.is_empty());
        // A grown buffer is not kept; neither is more than SPARE_MAX.
        give_back(BytesMut::with_capacity(SPARE_SIZE_MAX * 2));
        for _ in 0..SPARE_MAX + 10 {
            give_back(BytesMut::with_capacity(8 * 1024));
        }
        let kept = SPARES.with(|s| s.borrow().len());
        assert_eq!(kept, SPARE_MAX);
        assert!(SPARES.with(|s| s.borrow().iter().all(|b| b.capacity() <= SPARE_SIZE_MAX)));
    }

    #[test]
    fn a_spare_too_small_is_not_handed_out() {
        give_back(BytesMut::with_capacity(4096));
        let b = take(8 * 1024);
        assert!(b.capacity() >= 8 * 1024);
    }
}
