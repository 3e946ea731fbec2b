//! Cancel keys: each client gets the proxy's own random secret (with the server's pid, when
//! no other live session uses it); the server's key stays here. A CancelRequest (a
//! connection of its own, TLS or not, with no user) is looked up and forwarded to the right
//! server with the server's key. Unknown keys are dropped silently, as PostgreSQL does, so
//! the endpoint cannot be used to probe for keys; so are keys sent from another address
//! than their session's (a leaked or guessed key is useless elsewhere).
//!
//! Every client cancel is an audit event (`type: "cancel"`): a storm of them, or of
//! refused ones, is a signal. The cancel connection is closed only once the cancel was
//! forwarded (a client waiting for the close knows the server has it), and over TLS with
//! a close_notify, as PostgreSQL closes it (libpq 17+ reports a bare TCP close as an
//! error).

use crate::audit::{now_rfc3339, AuditEvent, CancelEvent, SessionInfo};
use crate::backend;
use crate::backend::UpstreamTarget;
use crate::metrics::{CancelResult, Metrics};
use crate::tls::MaybeTls;
use crate::wire::messages::cancel_request;
use bytes::Bytes;
use dashmap::DashMap;
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long forwarding one cancel may take.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the close of a cancel connection (TLS close_notify) may take.
const CLOSE_TIMEOUT: Duration = Duration::from_millis(250);

struct Entry {
    secret: i32,
    target: UpstreamTarget,
    server_pid: i32,
    server_secret: Bytes,
    /// The session the key belongs to, once its login is complete.
    owner: Arc<OnceLock<Arc<SessionInfo>>>,
}

/// A live session's key, as a lookup finds it.
struct Found {
    target: UpstreamTarget,
    server_pid: i32,
    server_secret: Bytes,
    owner: Option<Arc<SessionInfo>>,
}

/// What became of a cancel request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Sent to the server.
    Forwarded,
    /// Not sent: no live session has this key.
    UnknownKey,
    /// Not sent: the key's session is connected from another address.
    OtherAddress,
    /// Sending it failed (the reason, for the log).
    Failed(String),
}

impl Verdict {
    /// The event's `result` and `reason`.
    fn describe(&self) -> (&'static str, Option<String>) {
        match self {
            Verdict::Forwarded => ("forwarded", None),
            Verdict::UnknownKey => ("refused", Some("unknown key".into())),
            Verdict::OtherAddress => (
                "refused",
                Some("sent from another address than the session's".into()),
            ),
            Verdict::Failed(e) => ("failed", Some(e.clone())),
        }
    }
}

/// The live keys, by the proxy pid handed to the client.
#[derive(Default, Clone)]
pub struct CancelRegistry {
    map: Arc<DashMap<i32, Entry>>,
}

/// A registered key; unregisters itself when the session ends.
pub struct CancelKey {
    pid: i32,
    secret: i32,
    map: Arc<DashMap<i32, Entry>>,
    owner: Arc<OnceLock<Arc<SessionInfo>>>,
}

impl CancelKey {
    /// The pid the client was given.
    pub fn pid(&self) -> i32 {
        self.pid
    }
    /// The secret the client was given.
    pub fn secret(&self) -> i32 {
        self.secret
    }
    /// Names the session the key belongs to (for cancel events and the address check).
    /// Until then a cancel with the key is forwarded without either.
    pub fn attach(&self, session: Arc<SessionInfo>) {
        let _ = self.owner.set(session);
    }
}

impl Drop for CancelKey {
    fn drop(&mut self) {
        self.map.remove(&self.pid);
    }
}

impl CancelRegistry {
    /// Registers a server's key and returns the proxy's key for the client.
    pub fn register(
        &self,
        target: UpstreamTarget,
        server_pid: i32,
        server_secret: Bytes,
    ) -> CancelKey {
        let secret: i32 = rand::random();
        // The server's own pid when it is free here: the pid a client learns from
        // BackendKeyData must be the one it sees in pg_backend_pid(), pg_stat_activity and
        // NotificationResponse (libpq's documented test for "my own notification" compares
        // them). Only the secret has to be ours. Two upstream servers can hand out the same
        // pid; the later session then gets a random one.
        let mut candidate = Some(server_pid).filter(|&p| p > 0);
        loop {
            // Positive pids, like a real backend's, for tools that print them.
            let pid = candidate
                .take()
                .unwrap_or_else(|| (rand::random::<u32>() >> 1) as i32);
            if pid == 0 {
                continue;
            }
            if let dashmap::Entry::Vacant(v) = self.map.entry(pid) {
                let owner: Arc<OnceLock<Arc<SessionInfo>>> = Arc::default();
                v.insert(Entry {
                    secret,
                    target: target.clone(),
                    server_pid,
                    server_secret: server_secret.clone(),
                    owner: owner.clone(),
                });
                return CancelKey {
                    pid,
                    secret,
                    map: self.map.clone(),
                    owner,
                };
            }
        }
    }

    /// The server-side key for a client's key, when it matches a live session.
    fn lookup(&self, pid: i32, secret: &[u8]) -> Option<Found> {
        let e = self.map.get(&pid)?;
        if secret != e.secret.to_be_bytes() {
            return None;
        }
        Some(Found {
            target: e.target.clone(),
            server_pid: e.server_pid,
            server_secret: e.server_secret.clone(),
            owner: e.owner.get().cloned(),
        })
    }

    /// Handles a client's CancelRequest from `from`: forwards it when the key is known
    /// and its session is connected from the same address (any loopback address counts
    /// as the same), drops it otherwise. Returns the verdict and the key's session.
    pub async fn handle(
        &self,
        pid: i32,
        secret: &[u8],
        from: IpAddr,
        metrics: &Metrics,
    ) -> (Verdict, Option<Arc<SessionInfo>>) {
        let Some(found) = self.lookup(pid, secret) else {
            metrics.cancel(CancelResult::Unknown);
            tracing::debug!("cancel request with an unknown key dropped");
            return (Verdict::UnknownKey, None);
        };
        if let Some(owner) = &found.owner {
            if !same_client(owner.client_addr, from) {
                metrics.cancel(CancelResult::Unknown);
                tracing::info!(session = %owner.session_id, "cancel request from another address than its session's dropped");
                return (Verdict::OtherAddress, found.owner);
            }
        }
        let verdict = forward(&found, metrics).await;
        (verdict, found.owner)
    }

    /// Cancels whatever the server of a live session is running (the client hung up).
    pub async fn cancel_running(&self, key: &CancelKey, metrics: &Metrics) {
        if let Some(found) = self.lookup(key.pid, &key.secret.to_be_bytes()) {
            forward(&found, metrics).await;
        }
    }
}

/// Whether a cancel from `from` may come from the client at `session`.
fn same_client(session: IpAddr, from: IpAddr) -> bool {
    let (a, b) = (session.to_canonical(), from.to_canonical());
    a == b || (a.is_loopback() && b.is_loopback())
}

async fn forward(found: &Found, metrics: &Metrics) -> Verdict {
    let sent = send(&found.target, found.server_pid, &found.server_secret);
    match tokio::time::timeout(CANCEL_TIMEOUT, sent).await {
        Ok(Ok(())) => {
            metrics.cancel(CancelResult::Forwarded);
            Verdict::Forwarded
        }
        Ok(Err(e)) => {
            metrics.cancel(CancelResult::Error);
            tracing::warn!(error = %e, "cannot forward cancel request");
            Verdict::Failed(e.to_string())
        }
        Err(_) => {
            metrics.cancel(CancelResult::Error);
            tracing::warn!("forwarding a cancel request timed out");
            Verdict::Failed("forwarding timed out".into())
        }
    }
}

/// Serves a cancel connection: handles the request, closes the connection the way
/// PostgreSQL does (after the cancel is delivered; TLS with close_notify), and writes the
/// `cancel` event. `info` is the cancel connection's own (its id and address).
pub async fn serve(
    shared: &super::Shared,
    mut stream: MaybeTls,
    pid: i32,
    secret: &[u8],
    info: &SessionInfo,
) {
    let (verdict, owner) = shared
        .cancels
        .handle(pid, secret, info.client_addr, &shared.metrics)
        .await;
    let tls = stream.is_tls();
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, stream.shutdown()).await;
    drop(stream);
    let (result, reason) = verdict.describe();
    let mut canceller = info.clone();
    canceller.tls = tls;
    shared
        .audit
        .emit(AuditEvent::Cancel {
            ts: now_rfc3339(),
            session: Arc::new(canceller),
            cancel: CancelEvent {
                result,
                reason,
                target_session_id: owner.as_ref().map(|o| o.session_id.clone()),
                target_user: owner.as_ref().and_then(|o| o.user.clone()),
                target_database: owner.as_ref().and_then(|o| o.database.clone()),
                target_client_addr: owner.as_ref().map(|o| o.client_addr),
            },
        })
        .await;
}

/// Sends a CancelRequest to the server, over TLS when its sslmode asks for it, and waits
/// for the server to close the connection (so the cancel has been read).
async fn send(
    target: &UpstreamTarget,
    pid: i32,
    secret: &[u8],
) -> Result<(), backend::BackendError> {
    let mut conn = backend::connect(target, false).await?;
    conn.stream
        .write_all(&cancel_request(pid, secret))
        .await
        .map_err(crate::wire::WireError::from)?;
    conn.stream
        .flush()
        .await
        .map_err(crate::wire::WireError::from)?;
    let mut sink = [0u8; 64];
    let _ = conn.stream.read(&mut sink).await;
    Ok(())
}

#[cfg(test)]
#[path = "cancel_tests.rs"]
mod tests;
