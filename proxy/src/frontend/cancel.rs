//! Cancel keys: each client gets the proxy's own random secret (with the server's pid, when
//! no other live session uses it); the server's key stays here. A CancelRequest (a
//! connection of its own, TLS or not, with no user) is looked up and forwarded to the right
//! server with the server's key. Unknown keys are dropped silently, as PostgreSQL does, so
//! the endpoint cannot be used to probe for keys.

use crate::backend;
use crate::config::UpstreamTarget;
use crate::metrics::{CancelResult, Metrics};
use crate::wire::messages::cancel_request;
use bytes::Bytes;
use dashmap::DashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long forwarding one cancel may take.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(10);

struct Entry {
    secret: i32,
    target: UpstreamTarget,
    server_pid: i32,
    server_secret: Bytes,
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
                v.insert(Entry {
                    secret,
                    target: target.clone(),
                    server_pid,
                    server_secret: server_secret.clone(),
                });
                return CancelKey {
                    pid,
                    secret,
                    map: self.map.clone(),
                };
            }
        }
    }

    /// The server-side key for a client's key, when it matches a live session.
    fn lookup(&self, pid: i32, secret: &[u8]) -> Option<(UpstreamTarget, i32, Bytes)> {
        let e = self.map.get(&pid)?;
        if secret != e.secret.to_be_bytes() {
            return None;
        }
        Some((e.target.clone(), e.server_pid, e.server_secret.clone()))
    }

    /// Handles a CancelRequest: forwards it when the key is known, drops it otherwise.
    pub async fn handle(&self, pid: i32, secret: &[u8], metrics: &Metrics) {
        let Some((target, server_pid, server_secret)) = self.lookup(pid, secret) else {
            metrics.cancel(CancelResult::Unknown);
            tracing::debug!("cancel request with an unknown key dropped");
            return;
        };
        match tokio::time::timeout(CANCEL_TIMEOUT, send(&target, server_pid, &server_secret)).await
        {
            Ok(Ok(())) => metrics.cancel(CancelResult::Forwarded),
            Ok(Err(e)) => {
                metrics.cancel(CancelResult::Error);
                tracing::warn!(error = %e, "cannot forward cancel request");
            }
            Err(_) => {
                metrics.cancel(CancelResult::Error);
                tracing::warn!("forwarding a cancel request timed out");
            }
        }
    }

    /// Cancels whatever the server of a live session is running (the client hung up).
    pub async fn cancel_running(&self, key: &CancelKey, metrics: &Metrics) {
        self.handle(key.pid, &key.secret.to_be_bytes(), metrics)
            .await;
    }
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
