//! The file channel: findings appended to a JSON-lines file (`[alerts.file] path`),
//! synced before the outbox entry is removed.
//!
//! The file is opened for each delivery, so log rotation needs no signal here: after
//! logrotate moves it, the next finding creates a new file at the path (SIGUSR1 is
//! harmless). Findings are rare; an open per finding costs nothing that matters.

use super::Delivery;
use crate::detect::Finding;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

/// Appends findings to one file.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
}

impl FileSink {
    pub fn new(path: PathBuf) -> FileSink {
        FileSink { path }
    }

    /// Appends one line and syncs. A failure (disk full, permissions) is retried: the
    /// finding stays in the outbox meanwhile.
    pub async fn deliver(&self, finding: &Finding) -> Delivery {
        let mut line = match serde_json::to_vec(finding) {
            Ok(l) => l,
            Err(e) => {
                return Delivery::Reject {
                    reason: format!("cannot serialise: {e}"),
                }
            }
        };
        line.push(b'\n');
        let mut opts = tokio::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        opts.mode(0o640);
        let result = async {
            let mut f = opts.open(&self.path).await?;
            f.write_all(&line).await?;
            f.sync_data().await
        }
        .await;
        match result {
            Ok(()) => Delivery::Sent,
            Err(e) => Delivery::Retry {
                after: None,
                reason: format!("cannot append to {}: {e}", self.path.display()),
            },
        }
    }
}
