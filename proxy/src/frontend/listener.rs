//! The accept loop: connection cap, one task per connection, graceful shutdown.
//!
//! Shutdown has two steps. First the listener closes and sessions may finish on their own
//! for `shutdown_timeout`; then every remaining session is told FATAL 57P01 and closed.

use super::{session, Shared};
use crate::metrics::ConnResult;
use crate::wire::messages::{error_response, Severity};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// How long closed sessions get to write their last messages after the forced close.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Accepts until `stop` turns true, then drains. Returns when every session has ended.
pub async fn serve(shared: Arc<Shared>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let config = shared.config();
    let max = config.file.listen.max_client_conn;
    let slots = Arc::new(Semaphore::new(max));
    let (force_tx, force_rx) = watch::channel(false);
    let too_many = error_response(
        Severity::Fatal,
        "53300",
        "sorry, too many clients already",
        None,
    );
    let mut backoff = Duration::from_millis(5);
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.wait_for(|&v| v) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(c) => {
                backoff = Duration::from_millis(5);
                c
            }
            Err(e) => {
                // EMFILE and friends: wait instead of spinning; the error names the cause.
                tracing::error!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            // No task, no read: answer at once and close (the kernel buffers this write).
            let _ = tcp.try_write(&too_many);
            shared.metrics.connection(ConnResult::TooMany);
            tracing::warn!(client = %peer, max_client_conn = max, "connection refused: max_client_conn reached");
            continue;
        };
        let shared = shared.clone();
        let force = force_rx.clone();
        tokio::spawn(async move {
            shared.metrics.client_connections.increment(1.0);
            session::run(shared.clone(), tcp, peer, force).await;
            shared.metrics.client_connections.decrement(1.0);
            drop(permit);
        });
    }
    drop(listener);
    let drain = config.file.listen.shutdown_timeout;
    tracing::info!(open = max - slots.available_permits(), timeout = ?drain, "listener closed; draining sessions");
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(drain, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(
            open = max - slots.available_permits(),
            "drain timeout; closing remaining sessions"
        );
        let _ = force_tx.send(true);
        let _ = tokio::time::timeout(CLOSE_GRACE, slots.acquire_many(all)).await;
    }
}
