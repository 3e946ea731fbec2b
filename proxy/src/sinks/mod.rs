//! Alert sinks: where findings go, all behind the durable outbox.
//!
//! - [`outbox`]: one folder per channel, one file per undelivered finding; written and
//!   synced before delivery is attempted, removed only once the sink took it.
//! - [`deliver`]: the per-channel loop: oldest first, retries with backoff and jitter,
//!   `Retry-After`, rate limit, dead letters, metrics.
//! - [`file`], [`postgres`], [`webhook`]: the channels themselves. Each answers one
//!   delivery attempt with a [`Delivery`]; none of them retries on its own.
//! - [`check`]: `[alerts.*]` checked for config validation.

pub mod check;
pub mod deliver;
pub mod file;
pub mod outbox;
pub mod postgres;
pub mod webhook;

use std::time::Duration;

/// Errors of the sink layer (building a channel from its settings).
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("alerts.{channel}: {message}")]
    Config { channel: String, message: String },
    #[error("outbox {path}: {source}")]
    Outbox {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

/// How one delivery attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The sink has it; remove it from the outbox.
    Sent,
    /// Try again later: after `after` when the sink said so (`Retry-After`), otherwise
    /// after the channel's backoff. `reason` is for the log (no SQL, no secrets).
    Retry {
        after: Option<Duration>,
        reason: String,
    },
    /// The sink refused it for good (e.g. HTTP 400): dead-lettered, never retried.
    Reject { reason: String },
}
