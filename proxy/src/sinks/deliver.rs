//! Delivery: one task per channel takes its outbox folder oldest first and hands each
//! finding to the sink until the sink has it (or refuses it for good).
//!
//! Failed attempts wait with exponential backoff and jitter (`retry_initial` doubling up
//! to `retry_max`), or as long as the sink's `Retry-After` says (up to `retry_max`).
//! Delivery is in order per channel: a finding waits for the one before it. A channel's
//! `min_interval` spaces requests (Slack takes about one message a second).

use super::file::FileSink;
use super::outbox::{self, Slot, Slots};
use super::postgres::PostgresSink;
use super::webhook::WebhookSink;
use super::{Delivery, SinkError};
use crate::config::Retry;
use crate::detect::{Finding, Severity};
use crate::snapshot::Config;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;
use tokio::sync::{watch, Notify};
use tokio::task::JoinHandle;

/// A sink behind a channel.
enum Sink {
    File(FileSink),
    Postgres(Box<PostgresSink>),
    Webhook(Box<WebhookSink>),
}

impl Sink {
    async fn deliver(&mut self, f: &Finding) -> Delivery {
        match self {
            Sink::File(s) => s.deliver(f).await,
            Sink::Postgres(s) => s.deliver(f).await,
            Sink::Webhook(s) => s.deliver(f).await,
        }
    }
}

/// One configured channel, built and ready to run.
struct Channel {
    name: String,
    min_severity: Severity,
    retry: Retry,
    min_interval: Option<Duration>,
    sink: Sink,
}

/// The outbox root a config names (relative to the config file).
pub fn outbox_root(config: &Config) -> PathBuf {
    let dir = &config.file.alerts.outbox_dir;
    if dir.is_absolute() {
        dir.clone()
    } else {
        base(config).join(dir)
    }
}

fn base(config: &Config) -> PathBuf {
    config
        .path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Builds every channel `config` configures: the file (always), PostgreSQL, webhooks.
fn channels(config: &Config) -> Result<Vec<Channel>, SinkError> {
    let a = &config.file.alerts;
    let base = base(config);
    // The file channel has no retry keys: a disk problem is retried from 1s, at most a
    // minute apart.
    let file_retry = Retry {
        initial: Duration::from_secs(1),
        max: Duration::from_secs(60),
    };
    let file_path = if a.file.path.is_absolute() {
        a.file.path.clone()
    } else {
        base.join(&a.file.path)
    };
    let mut out = vec![Channel {
        name: "file".into(),
        min_severity: a.file.min_severity,
        retry: file_retry,
        min_interval: None,
        sink: Sink::File(FileSink::new(file_path)),
    }];
    if let Some(pg) = &a.postgres {
        out.push(Channel {
            name: pg.name.clone(),
            min_severity: pg.min_severity,
            retry: pg.retry(),
            min_interval: None,
            sink: Sink::Postgres(Box::new(PostgresSink::new(pg, &base)?)),
        });
    }
    for (name, hook) in &a.webhook {
        let sink = WebhookSink::new(name, hook, &base)?;
        out.push(Channel {
            name: name.clone(),
            min_severity: hook.min_severity,
            retry: hook.retry(),
            min_interval: sink.min_interval(),
            sink: Sink::Webhook(Box::new(sink)),
        });
    }
    Ok(out)
}

/// Channels built from a config, ready for [`Alerting::install`].
pub struct Prepared(Vec<Channel>);

/// The running channels: their tasks, and the slots the outbox writer fills.
pub struct Alerting {
    root: PathBuf,
    slots: Slots,
    tasks: Mutex<Vec<(watch::Sender<bool>, JoinHandle<()>)>>,
}

impl Alerting {
    /// Builds the channels of `config` and starts one delivery task each (on the current
    /// runtime). Returns the slots for the [`outbox::OutboxWriter`].
    pub fn start(config: &Config) -> Result<Alerting, SinkError> {
        let root = outbox_root(config);
        outbox::ensure_dir(&root).map_err(|source| SinkError::Outbox {
            path: root.clone(),
            source,
        })?;
        let alerting = Alerting {
            root,
            slots: Arc::new(RwLock::new(Arc::new(Vec::new()))),
            tasks: Mutex::new(Vec::new()),
        };
        alerting.install_channels(channels(config)?);
        Ok(alerting)
    }

    /// The channel slots, for the outbox writer.
    pub fn slots(&self) -> Slots {
        self.slots.clone()
    }

    /// The outbox root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Builds `config`'s channels without starting them: the first half of a reload, which
    /// must not change anything if it fails.
    pub fn prepare(config: &Config) -> Result<Prepared, SinkError> {
        channels(config).map(Prepared)
    }

    /// Replaces the running channels with prepared ones. Findings already in the outbox
    /// stay there and are delivered by the new channel of the same name.
    pub fn install(&self, prepared: Prepared) {
        self.install_channels(prepared.0)
    }

    fn install_channels(&self, channels: Vec<Channel>) {
        // Holding the slots' write lock while swapping means the writer is between
        // batches: every file it wrote is visible to the new tasks' first listing.
        let mut slots_guard = match self.slots.write() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let mut tasks = match self.tasks.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for (stop, _) in tasks.drain(..) {
            let _ = stop.send(true);
        }
        let mut slots = Vec::new();
        let configured: Vec<String> = channels.iter().map(|c| c.name.clone()).collect();
        for ch in channels {
            let dir = self.root.join(&ch.name);
            let notify = Arc::new(Notify::new());
            slots.push(Slot {
                name: ch.name.clone(),
                dir: dir.clone(),
                min_severity: ch.min_severity,
                notify: notify.clone(),
            });
            // The writer waits on the lock held here, so the count is exact.
            let waiting = outbox::pending(&dir).map(|p| p.len()).unwrap_or(0);
            outbox::depth(&ch.name).set(waiting as f64);
            let (stop_tx, stop_rx) = watch::channel(false);
            let handle = tokio::spawn(run_channel(ch, dir, notify, stop_rx));
            tasks.push((stop_tx, handle));
        }
        *slots_guard = Arc::new(slots);
        drop(slots_guard);
        warn_orphans(&self.root, &configured);
    }

    /// Stops every channel task (pending findings stay in the outbox).
    pub fn stop(&self) {
        let mut tasks = match self.tasks.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        for (stop, _) in tasks.drain(..) {
            let _ = stop.send(true);
        }
    }
}

/// Folders of channels no longer configured that still hold findings.
fn warn_orphans(root: &Path, configured: &[String]) {
    let Ok(dirs) = std::fs::read_dir(root) else {
        return;
    };
    for d in dirs.flatten() {
        let name = d.file_name().to_string_lossy().to_string();
        if configured.contains(&name) {
            continue;
        }
        let n = outbox::pending(&d.path()).map(|p| p.len()).unwrap_or(0);
        if n > 0 {
            tracing::warn!(
                channel = %name,
                pending = n,
                folder = %d.path().display(),
                "undelivered findings of a channel that is no longer configured; configure it again to deliver them"
            );
        }
    }
}

/// Sleeps `d` unless told to stop; true when stopped.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    if *stop.borrow() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => *stop.borrow(),
        _ = stop.changed() => true,
    }
}

/// The backoff before attempt `n + 1` (n failures so far): `initial * 2^n` capped at
/// `max`, then a random point in its upper half.
pub fn backoff(r: Retry, failures: u32) -> Duration {
    let exp = r
        .initial
        .saturating_mul(2u32.saturating_pow(failures.min(20)))
        .min(r.max);
    let half = exp / 2;
    let jitter = half.mul_f64(rand::random::<f64>());
    half + jitter
}

async fn run_channel(
    mut ch: Channel,
    dir: PathBuf,
    notify: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let label = ch.name.clone();
    let depth = outbox::depth(&label);
    let count = |status: &'static str| metrics::counter!("pgvigil_alerts_total", "channel" => label.clone(), "status" => status);
    let (sent, retry, error, dropped) = (
        count("sent"),
        count("retry"),
        count("error"),
        count("dropped"),
    );
    let mut last_request: Option<tokio::time::Instant> = None;
    if let Err(e) = outbox::ensure_dir(&dir) {
        tracing::error!(channel = %label, error = %e, "cannot create the outbox folder");
    }
    'outer: loop {
        let files = match outbox::pending(&dir) {
            Ok(f) => f,
            Err(e) => {
                error.increment(1);
                tracing::error!(channel = %label, error = %e, "cannot list the outbox");
                if pause(Duration::from_secs(5), &mut stop).await {
                    return;
                }
                continue;
            }
        };
        if files.is_empty() {
            tokio::select! {
                _ = notify.notified() => continue,
                _ = tokio::time::sleep(Duration::from_secs(30)) => continue,
                _ = stop.changed() => return,
            }
        }
        for path in files {
            let finding = match read_entry(&path).await {
                Ok(f) => f,
                // Delivered meanwhile by the channel this one replaced at a reload.
                Err(Unreadable::Gone) => continue,
                Err(Unreadable::Io(e)) => {
                    error.increment(1);
                    tracing::error!(channel = %label, file = %path.display(), error = %e, "cannot read an outbox entry; will try again");
                    if pause(Duration::from_secs(5), &mut stop).await {
                        return;
                    }
                    continue 'outer;
                }
                Err(Unreadable::NotAFinding(e)) => {
                    // Set aside, never retried: no retry can make it parse.
                    error.increment(1);
                    tracing::error!(channel = %label, file = %path.display(), error = %e, "outbox entry is not a finding; moved to dead/");
                    if outbox::bury(&path).is_ok() {
                        depth.decrement(1.0);
                    }
                    continue;
                }
            };
            let mut failures = 0u32;
            loop {
                if *stop.borrow() {
                    return;
                }
                if let (Some(gap), Some(last)) = (ch.min_interval, last_request) {
                    let wait = (last + gap).saturating_duration_since(tokio::time::Instant::now());
                    if !wait.is_zero() && pause(wait, &mut stop).await {
                        return;
                    }
                }
                last_request = Some(tokio::time::Instant::now());
                match ch.sink.deliver(&finding).await {
                    Delivery::Sent => {
                        sent.increment(1);
                        if remove(&path).await {
                            depth.decrement(1.0);
                        }
                        break;
                    }
                    Delivery::Reject { reason } => {
                        dropped.increment(1);
                        tracing::error!(channel = %label, rule_id = %finding.rule_id, finding_id = %finding.id, reason = %reason, "sink refused the finding; moved to dead/");
                        let gone = match outbox::bury(&path) {
                            Ok(()) => true,
                            Err(e) => {
                                tracing::error!(channel = %label, error = %e, "cannot move the entry to dead/");
                                remove(&path).await
                            }
                        };
                        if gone {
                            depth.decrement(1.0);
                        }
                        break;
                    }
                    Delivery::Retry { after, reason } => {
                        retry.increment(1);
                        // Never sooner than the sink asked, nor sooner than the backoff (a
                        // `Retry-After: 0` must not turn into a busy loop).
                        let wait = match after {
                            Some(a) => a.max(backoff(ch.retry, failures)).min(ch.retry.max),
                            None => backoff(ch.retry, failures),
                        };
                        failures = failures.saturating_add(1);
                        tracing::warn!(channel = %label, rule_id = %finding.rule_id, finding_id = %finding.id, attempt = failures, retry_in = ?wait, reason = %reason, "delivery failed; will retry");
                        if pause(wait, &mut stop).await {
                            return;
                        }
                    }
                }
            }
            if *stop.borrow() {
                break 'outer;
            }
        }
    }
}

/// Why an outbox entry could not be read.
enum Unreadable {
    Gone,
    Io(std::io::Error),
    NotAFinding(serde_json::Error),
}

async fn read_entry(path: &Path) -> Result<Finding, Unreadable> {
    let bytes = match tokio::fs::read(path).await {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Unreadable::Gone),
        Err(e) => return Err(Unreadable::Io(e)),
    };
    serde_json::from_slice(&bytes).map_err(Unreadable::NotAFinding)
}

/// Removes a delivered entry; false when it was already gone (a channel restarted by a
/// reload delivered it too) or cannot be removed.
async fn remove(path: &Path) -> bool {
    match tokio::fs::remove_file(path).await {
        Ok(()) => true,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => {
            tracing::error!(file = %path.display(), error = %e, "cannot remove a delivered outbox entry");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let r = Retry {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(10),
        };
        for n in 0..30 {
            let d = backoff(r, n);
            let full = Duration::from_secs(1 << n.min(20)).min(r.max);
            assert!(d >= full / 2 && d <= full, "attempt {n}: {d:?} vs {full:?}");
        }
    }
}
