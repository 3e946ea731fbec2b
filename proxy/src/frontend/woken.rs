//! A future that is polled only after its own waker fired.
//!
//! A session's task is woken for every message either way, and `select!` polls all its
//! branches each time. The branch that ends a session from outside (shutdown, KILL) waits on
//! two watch channels whose every poll takes their waiter lists' locks, though it is
//! ready once in a session's life. Wrapped in [`WhenWoken`], it is polled once to register
//! and then only when one of those channels woke it.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

pin_project_lite::pin_project! {
    /// Polls `F` on its first poll and afterwards only when `F`'s waker was woken.
    pub struct WhenWoken<F> {
        // Inline, not boxed: a session holds three of these for its whole life, idle or not.
        #[pin]
        inner: F,
        flag: Arc<Flag>,
    }
}

struct Flag {
    woken: AtomicBool,
    task: atomic_waker::AtomicWaker,
}

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<F: Future> WhenWoken<F> {
    /// Wraps `inner`.
    pub fn new(inner: F) -> WhenWoken<F> {
        WhenWoken {
            inner,
            flag: Arc::new(Flag {
                woken: AtomicBool::new(true),
                task: atomic_waker::AtomicWaker::new(),
            }),
        }
    }
}

impl<F: Future> Future for WhenWoken<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        // Registered before the flag is read: a wake in between is not lost.
        this.flag.task.register(cx.waker());
        if !this.flag.woken.swap(false, Ordering::AcqRel) {
            return Poll::Pending;
        }
        let waker = Waker::from(this.flag.clone());
        let mut own = Context::from_waker(&waker);
        this.inner.poll(&mut own)
    }
}

#[cfg(test)]
#[path = "woken_tests.rs"]
mod tests;
