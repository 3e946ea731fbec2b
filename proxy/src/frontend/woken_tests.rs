//! Unit tests of `woken.rs`: the inner future is polled on its own wake-ups only.

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
