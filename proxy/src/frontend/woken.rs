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
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls; ready once `open` is set.
    struct Gate<'a> {
        polls: &'a AtomicUsize,
        open: &'a AtomicBool,
        waker: &'a std::sync::Mutex<Option<Waker>>,
    }

    impl Future for Gate<'_> {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::Relaxed);
            if self.open.load(Ordering::Relaxed) {
                return Poll::Ready(());
            }
            *self.waker.lock().unwrap() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn polled_only_when_its_own_waker_fired() {
        let (polls, open, waker) = (
            AtomicUsize::new(0),
            AtomicBool::new(false),
            std::sync::Mutex::new(None::<Waker>),
        );
        let mut f = WhenWoken::new(Gate {
            polls: &polls,
            open: &open,
            waker: &waker,
        });
        let noop = Waker::noop();
        let mut cx = Context::from_waker(noop);
        assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        // Woken for other reasons: the inner future is not polled again.
        for _ in 0..5 {
            assert!(Pin::new(&mut f).poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::Relaxed), 1);
        // Its own waker fired (from another thread, as a shutdown's would): polled, ready.
        open.store(true, Ordering::Relaxed);
        let w = waker.lock().unwrap().take().unwrap();
        std::thread::spawn(move || w.wake()).join().unwrap();
        assert!(Pin::new(&mut f).poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::Relaxed), 2);
    }

    #[tokio::test]
    async fn a_wake_reaches_the_task() {
        // The wrapper's waker wakes the task that polled it: a session waiting on nothing
        // else is woken by a shutdown.
        let (tx, mut rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            WhenWoken::new(async move {
                let _ = rx.wait_for(|&v| v).await;
            })
            .await
        });
        tokio::task::yield_now().await;
        tx.send(true).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(5), task)
            .await
            .expect("woken")
            .unwrap();
    }
}
