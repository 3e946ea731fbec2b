//! The accept loop: each connection takes its place in the pre-login budgets (or is refused
//! at once), then runs in a task of its own; graceful shutdown.
//!
//! Shutdown has two steps. First the listener closes and sessions may finish on their own
//! for `shutdown_timeout`; then every remaining session is told FATAL 57P01 and closed.

use super::admission::Refusal;
use super::threads::SessionThreads;
use super::{session, Shared};
use crate::wire::messages::{error_response, Severity};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// How long closed sessions get to write their last messages after the forced close.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// Accepts until `stop` turns true, then drains. Returns when every session has ended.
pub async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    mut stop: watch::Receiver<bool>,
    threads: &SessionThreads,
) {
    let (force_tx, force_rx) = watch::channel(false);
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
        // A trusted load balancer's own address is not the client's: its connections are
        // counted per client once the PROXY header names the client.
        let config = shared.config();
        let via_balancer = config.file.listen.proxy_protocol
            && config
                .file
                .listen
                .proxy_trusted
                .iter()
                .any(|net| net.contains(&peer.ip()));
        let counted_as = (!via_balancer).then_some(peer.ip());
        let ticket = match shared.admission.admit(counted_as) {
            Ok(t) => t,
            Err(refusal) => {
                refuse_at_once(&shared, &tcp, peer, refusal);
                continue;
            }
        };
        // The socket moves to a session thread's event loop: taken off this one's first.
        let tcp = match tcp.into_std() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(error = %e, "cannot hand a connection to a session thread");
                continue;
            }
        };
        let shared = shared.clone();
        let force = force_rx.clone();
        threads.spawn(move || async move {
            let tcp = match TcpStream::from_std(tcp) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!(error = %e, "cannot register a connection on a session thread");
                    return;
                }
            };
            shared.metrics.client_connections.increment(1.0);
            session::run(shared.clone(), tcp, peer, ticket, via_balancer, force).await;
            shared.metrics.client_connections.decrement(1.0);
        });
    }
    drop(listener);
    let drain = shared.config().file.listen.shutdown_timeout;
    tracing::info!(open = shared.admission.open(), timeout = ?drain, "listener closed; draining sessions");
    if !shared.admission.drained(drain).await {
        tracing::warn!(
            open = shared.admission.open(),
            "drain timeout; closing remaining sessions"
        );
        let _ = force_tx.send(true);
        let _ = shared.admission.drained(CLOSE_GRACE).await;
    }
}

/// A refusal before the connection has a task: no read, one write the kernel buffers, and
/// close. (The pre-login budget is what is full, so nothing more may be spent on it; a
/// client that asked for TLS reads this as an error during the SSL exchange.)
fn refuse_at_once(shared: &Arc<Shared>, tcp: &TcpStream, peer: SocketAddr, refusal: Refusal) {
    let (code, msg, hint) = refusal.client_message();
    let _ = tcp.try_write(&error_response(Severity::Fatal, code, msg, hint));
    session::refused(shared, peer, None, refusal);
}
