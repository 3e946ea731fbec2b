//! `[cluster]`: replicas that share failed-login windows, blocks and finding dedup keys
//! through Redis (or Valkey). Absent = every replica counts on its own, as before.

use serde::Deserialize;
use std::time::Duration;

/// `[cluster]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    /// `redis://[user:password@]host:port[/db]` or `rediss://` (TLS). Never logged: it
    /// may hold a password.
    pub redis_url: String,
    /// Prefix of every key pgvigil writes, so several deployments can share one Redis.
    #[serde(default = "default_key_prefix")]
    pub key_prefix: String,
    /// Each Redis command's time limit; past it Redis counts as down for the moment.
    #[serde(default = "default_command_timeout", with = "humantime_serde")]
    pub command_timeout: Duration,
}

fn default_key_prefix() -> String {
    "pgvigil:".to_string()
}
fn default_command_timeout() -> Duration {
    Duration::from_millis(500)
}
