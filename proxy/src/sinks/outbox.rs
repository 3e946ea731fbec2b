//! The durable outbox: one folder per channel, one file per finding not yet delivered.
//!
//! A finding is written to a temporary name, synced, renamed to `<seq>.json` and the
//! folder synced, before any delivery is attempted; a channel removes the file only after
//! its sink took the finding, and moves it to `dead/` when the sink refused it for good.
//! So a restart, a kill -9 or a sink outage loses nothing that reached the outbox, and a
//! finding may be delivered twice (with the same `id` and `dedup_key`) but never lost.
//!
//! Files are written by one thread (the [`OutboxWriter`]): fsync blocks, and sessions
//! must not wait on it. A finding a folder cannot take (disk full, out of file handles)
//! stays in memory and is stored again with backoff until it can be.

use crate::detect::{Finding, Severity};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::Notify;

/// Name of the folder dead letters go to, inside a channel's folder.
pub const DEAD: &str = "dead";

/// A channel as the writer sees it: where its files go and who to wake.
#[derive(Debug)]
pub struct Slot {
    pub name: String,
    pub dir: PathBuf,
    pub min_severity: Severity,
    pub notify: Arc<Notify>,
}

/// The channels in effect; replaced whole on reload.
pub type Slots = Arc<RwLock<Arc<Vec<Slot>>>>;

/// Creates `dir` (mode 0700) if needed.
pub fn ensure_dir(dir: &Path) -> std::io::Result<()> {
    let mut b = fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir)
}

/// Pending entries of a channel folder, oldest first. Temporary files are skipped: the
/// writer may be filling one right now (stale ones are removed at startup).
pub fn pending(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".json") && !name.starts_with('.') {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// Removes temporary files an interrupted write left in any channel folder under `root`
/// (their finding was never acknowledged as stored). Only before the writer starts: it is
/// the one that creates them.
fn remove_stale_temporaries(root: &Path) {
    let Ok(channels) = fs::read_dir(root) else {
        return;
    };
    for ch in channels.flatten() {
        let Ok(files) = fs::read_dir(ch.path()) else {
            continue;
        };
        for f in files.flatten() {
            if f.file_name().to_string_lossy().starts_with(".tmp-") {
                let _ = fs::remove_file(f.path());
            }
        }
    }
}

/// The highest sequence number used under `root` (all channels, dead letters included).
fn max_seq(root: &Path) -> u64 {
    let mut max = 0;
    let Ok(channels) = fs::read_dir(root) else {
        return 0;
    };
    for ch in channels.flatten() {
        for dir in [ch.path(), ch.path().join(DEAD)] {
            let Ok(files) = fs::read_dir(&dir) else {
                continue;
            };
            for f in files.flatten() {
                let name = f.file_name();
                let seq = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .and_then(|n| n.parse::<u64>().ok());
                if let Some(s) = seq {
                    max = max.max(s);
                }
            }
        }
    }
    max
}

/// Writes `bytes` durably as `dir/<seq>.json`.
fn store(dir: &Path, seq: u64, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let tmp = dir.join(format!(".tmp-{seq:020}"));
    let path = dir.join(format!("{seq:020}.json"));
    let mut opts = OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, &path)?;
    Ok(path)
}

/// `pgvigil_outbox_depth{channel}`: raised by the writer for each file it stores, lowered
/// by the channel for each file it removes or buries, set from the folder when a channel
/// starts (while the writer is held off).
pub fn depth(channel: &str) -> metrics::Gauge {
    metrics::gauge!("pgvigil_outbox_depth", "channel" => channel.to_string())
}

/// Syncs a folder, so renames in it survive a crash.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Moves an entry to its channel's `dead/` folder.
pub fn bury(path: &Path) -> std::io::Result<()> {
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Ok(());
    };
    let dead = dir.join(DEAD);
    ensure_dir(&dead)?;
    fs::rename(path, dead.join(name))?;
    sync_dir(&dead)
}

/// The thread that stores findings; [`OutboxWriter::finish`] waits until every queued
/// finding is on disk.
pub struct OutboxWriter {
    thread: Option<std::thread::JoinHandle<()>>,
}

impl OutboxWriter {
    /// Starts the writer over `root`, taking findings from `rx` until every sender is gone.
    pub fn start(
        root: PathBuf,
        slots: Slots,
        rx: UnboundedReceiver<Finding>,
    ) -> std::io::Result<OutboxWriter> {
        ensure_dir(&root)?;
        remove_stale_temporaries(&root);
        let seq = AtomicU64::new(max_seq(&root) + 1);
        let thread = std::thread::Builder::new()
            .name("pgvigil-outbox".into())
            .spawn(move || run(rx, slots, seq))?;
        Ok(OutboxWriter {
            thread: Some(thread),
        })
    }

    /// Waits for the queue to drain (call once the detector is gone).
    pub fn finish(mut self) {
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("outbox writer thread panicked");
            }
        }
    }
}

fn current(slots: &Slots) -> Arc<Vec<Slot>> {
    match slots.read() {
        Ok(s) => s.clone(),
        Err(p) => p.into_inner().clone(),
    }
}

/// A finding a channel's folder could not take yet (disk full, out of file handles, ...).
struct Unstored {
    channel: String,
    rule_id: String,
    bytes: Arc<Vec<u8>>,
}

/// First and longest pause before storing again what could not be stored.
const STORE_RETRY_FIRST: Duration = Duration::from_millis(100);
const STORE_RETRY_MAX: Duration = Duration::from_secs(10);
/// Attempts left for what is still unstored once the detector is gone (shutdown).
const STORE_RETRIES_AT_EXIT: u32 = 10;

fn run(mut rx: UnboundedReceiver<Finding>, slots: Slots, seq: AtomicU64) {
    let stored = metrics::counter!("pgvigil_outbox_stored_total");
    let mut unstored: Vec<Unstored> = Vec::new();
    let mut delay = STORE_RETRY_FIRST;
    let mut exit_retries = STORE_RETRIES_AT_EXIT;
    loop {
        let mut batch = Vec::new();
        if unstored.is_empty() {
            match rx.blocking_recv() {
                Some(f) => batch.push(f),
                None => break,
            }
        } else {
            // Nothing is given up while the process runs: wait, then try again (new
            // findings meanwhile are taken too, and stored where they can be).
            std::thread::sleep(delay);
            delay = (delay * 2).min(STORE_RETRY_MAX);
            if rx.is_closed() && rx.is_empty() {
                if exit_retries == 0 {
                    for u in &unstored {
                        tracing::error!(channel = %u.channel, rule_id = %u.rule_id, "shutting down with a finding the outbox could not store; it is lost for this channel");
                    }
                    break;
                }
                exit_retries -= 1;
            }
        }
        while batch.len() < 256 {
            match rx.try_recv() {
                Ok(f) => batch.push(f),
                Err(_) => break,
            }
        }
        // The channel set is held for the whole batch: a reload waits, so a channel
        // restarted by it sees every file written under its name.
        let guard = slots.read();
        let set = match &guard {
            Ok(s) => Arc::clone(s),
            Err(_) => current(&slots),
        };
        let mut touched = vec![false; set.len()];
        let mut attempt = |slot_i: usize, u: Unstored, still: &mut Vec<Unstored>| {
            let slot = &set[slot_i];
            let n = seq.fetch_add(1, Ordering::Relaxed);
            match ensure_dir(&slot.dir).and_then(|()| store(&slot.dir, n, &u.bytes)) {
                Ok(_) => {
                    touched[slot_i] = true;
                    stored.increment(1);
                    depth(&slot.name).increment(1.0);
                }
                Err(e) => {
                    metrics::counter!(
                        "pgvigil_alerts_total",
                        "channel" => slot.name.clone(),
                        "status" => "error"
                    )
                    .increment(1);
                    tracing::error!(
                        channel = %slot.name,
                        rule_id = %u.rule_id,
                        error = %e,
                        "cannot store a finding in the outbox; will try again"
                    );
                    still.push(u);
                }
            }
        };
        let mut still = Vec::new();
        for u in unstored.drain(..) {
            match set.iter().position(|s| s.name == u.channel) {
                Some(i) => attempt(i, u, &mut still),
                None => {
                    tracing::warn!(channel = %u.channel, rule_id = %u.rule_id, "a finding waiting to be stored is dropped: its channel was removed from the configuration")
                }
            }
        }
        for finding in &batch {
            let bytes = match serde_json::to_vec(finding) {
                Ok(b) => Arc::new(b),
                Err(e) => {
                    tracing::error!(rule_id = %finding.rule_id, error = %e, "cannot serialise a finding");
                    continue;
                }
            };
            for (i, slot) in set.iter().enumerate() {
                if finding.severity < slot.min_severity {
                    continue;
                }
                let u = Unstored {
                    channel: slot.name.clone(),
                    rule_id: finding.rule_id.clone(),
                    bytes: bytes.clone(),
                };
                attempt(i, u, &mut still);
            }
        }
        unstored = still;
        if unstored.is_empty() {
            delay = STORE_RETRY_FIRST;
            exit_retries = STORE_RETRIES_AT_EXIT;
        }
        for (i, slot) in set.iter().enumerate() {
            if touched[i] {
                if let Err(e) = sync_dir(&slot.dir) {
                    tracing::error!(channel = %slot.name, error = %e, "cannot sync the outbox folder");
                }
                slot.notify.notify_one();
            }
        }
        drop(guard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_pending_bury_and_sequence() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("file");
        ensure_dir(&dir).unwrap();
        let a = store(&dir, 2, b"{}").unwrap();
        let b = store(&dir, 10, b"{}").unwrap();
        fs::write(dir.join(".tmp-00000000000000000011"), b"partial").unwrap();
        // A listing never touches a temporary file: the writer may be filling it.
        assert_eq!(pending(&dir).unwrap(), vec![a.clone(), b.clone()]);
        assert!(dir.join(".tmp-00000000000000000011").exists());
        remove_stale_temporaries(root.path());
        assert!(!dir.join(".tmp-00000000000000000011").exists());
        bury(&b).unwrap();
        assert_eq!(pending(&dir).unwrap(), vec![a]);
        assert_eq!(max_seq(root.path()), 10);
    }

    #[test]
    fn a_finding_that_cannot_be_stored_yet_is_stored_later() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("hook");
        // A file where the channel's folder should be: every store fails.
        fs::write(&dir, b"in the way").unwrap();
        let notify = Arc::new(Notify::new());
        let slots: Slots = Arc::new(RwLock::new(Arc::new(vec![Slot {
            name: "hook".into(),
            dir: dir.clone(),
            min_severity: Severity::Info,
            notify,
        }])));
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let writer = OutboxWriter::start(root.path().to_path_buf(), slots, rx).unwrap();
        tx.send(crate::detect::finding::test_support::sample())
            .unwrap();
        std::thread::sleep(Duration::from_millis(300));
        fs::remove_file(&dir).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pending(&dir).map(|p| p.len()).unwrap_or(0) == 0 {
            assert!(std::time::Instant::now() < deadline, "never stored");
            std::thread::sleep(Duration::from_millis(20));
        }
        drop(tx);
        writer.finish();
        assert_eq!(pending(&dir).unwrap().len(), 1);
        assert!(pending(&root.path().join("nope")).unwrap().is_empty());
    }
}
