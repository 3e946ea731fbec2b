//! The session threads: each runs a single-threaded event loop of its own, and every
//! accepted connection is handed to one of them (in turn) for its whole life.
//!
//! Why not one multi-threaded runtime: a proxy's work per message is tiny, and a work-
//! stealing scheduler spends more than that waking its other workers (futex calls, context
//! switches) whenever a task becomes ready; measured with pgbench -S at 16 clients, that
//! was the largest part of pgvigil's CPU time per transaction. A session stays on one
//! thread, so its socket readiness, its timers and its task are all on one event loop, as
//! in PgBouncer. The accept loop, signals, metrics and alert delivery stay on the main
//! runtime.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// The session threads. Dropping it stops them (and drops any session still running).
pub struct SessionThreads {
    handles: Vec<Handle>,
    stops: Vec<oneshot::Sender<()>>,
    joins: Vec<std::thread::JoinHandle<()>>,
    next: AtomicUsize,
}

impl SessionThreads {
    /// Starts `n` threads (at least one).
    pub fn start(n: usize) -> std::io::Result<SessionThreads> {
        let mut threads = SessionThreads {
            handles: Vec::new(),
            stops: Vec::new(),
            joins: Vec::new(),
            next: AtomicUsize::new(0),
        };
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop_tx, stop_rx) = oneshot::channel::<()>();
            threads.handles.push(rt.handle().clone());
            threads.stops.push(stop_tx);
            let join = std::thread::Builder::new()
                .name(format!("pgvigil-sessions-{i}"))
                .spawn(move || {
                    rt.block_on(async {
                        let _ = stop_rx.await;
                    });
                    rt.shutdown_timeout(std::time::Duration::from_secs(1));
                })?;
            threads.joins.push(join);
        }
        Ok(threads)
    }

    /// Runs `make()`'s future on the next thread in turn. The closure runs on that thread,
    /// inside its runtime: sockets must be registered there (`TcpStream::from_std`), not
    /// with the accept loop's runtime, or their readiness would be dispatched from another
    /// thread.
    pub fn spawn<F, Fut>(&self, make: F)
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        let Some(handle) = self.handles.get(i) else {
            return;
        };
        handle.spawn(async move { make().await });
    }

    /// Stops every thread and waits for them.
    pub fn stop(mut self) {
        self.stop_all();
    }

    fn stop_all(&mut self) {
        for s in self.stops.drain(..) {
            let _ = s.send(());
        }
        for j in self.joins.drain(..) {
            if j.join().is_err() {
                tracing::error!("a session thread panicked");
            }
        }
    }
}

impl Drop for SessionThreads {
    fn drop(&mut self) {
        self.stop_all();
    }
}
