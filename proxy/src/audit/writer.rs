//! The audit writer: a bounded queue in front of a dedicated thread that owns the file.
//!
//! A thread rather than a task because file writes and fsync block; keeping them off the
//! runtime keeps them off every session's latency. Serialisation happens on the writer
//! thread too, so a session pays for one channel send per event.

use super::{AuditError, AuditEvent};
use crate::config::{AuditFormat, Backpressure};
use crate::detect::Detector;
use crate::metrics::Metrics;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// How often written events are forced to disk.
const FSYNC_EVERY: Duration = Duration::from_secs(1);
/// Events taken from the queue per write.
const BATCH: usize = 1024;

/// The sessions' handle: cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<AuditEvent>,
    metrics: Arc<Metrics>,
    detector: Arc<Detector>,
}

impl AuditSink {
    /// Queues an event, waiting while the queue is full (nothing is dropped). Session
    /// lifecycle events always wait: they are few and a trail without them is unreadable.
    pub async fn emit(&self, event: AuditEvent) {
        self.detector.observe(&event, event.session().service);
        self.queue(event).await
    }

    async fn queue(&self, event: AuditEvent) {
        if self.tx.send(event).await.is_err() {
            self.writer_gone();
        }
    }

    /// Queues a statement event according to `[audit] on_backpressure`: waits for room,
    /// or drops it and counts the drop.
    /// Statements that are not logged (`StatementEvent::logged`) only meet the
    /// detector.
    pub async fn emit_statement(&self, event: AuditEvent, policy: Backpressure) {
        self.detector.observe(&event, event.session().service);
        if let AuditEvent::Statement { statement, .. } = &event {
            if !statement.logged {
                return;
            }
        }
        match policy {
            Backpressure::Wait => self.queue(event).await,
            Backpressure::Drop => match self.tx.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => self.metrics.audit_dropped.increment(1),
                Err(mpsc::error::TrySendError::Closed(_)) => self.writer_gone(),
            },
        }
    }

    fn writer_gone(&self) {
        // Only possible after the writer died; it has logged why.
        self.metrics.audit_write_errors.increment(1);
        tracing::error!("audit writer has stopped; event not written");
    }

    /// The detector every event meets on its way to the log.
    pub fn detector(&self) -> &Arc<Detector> {
        &self.detector
    }

    /// Events waiting for the writer.
    pub fn queue_depth(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// Owner of the writer thread; [`AuditWriter::finish`] waits for the queue to drain.
pub struct AuditWriter {
    thread: Option<std::thread::JoinHandle<()>>,
}

enum Out {
    File(File),
    Stdout,
}

impl Out {
    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Out::File(f) => f.write_all(buf),
            Out::Stdout => {
                let mut s = std::io::stdout().lock();
                s.write_all(buf)?;
                s.flush()
            }
        }
    }
    fn sync(&mut self) -> std::io::Result<()> {
        match self {
            Out::File(f) => f.sync_data(),
            Out::Stdout => Ok(()),
        }
    }
}

impl AuditWriter {
    /// Opens `log` ("-" for standard output) for appending and starts the writer thread.
    pub fn start(
        log: &str,
        capacity: usize,
        format: AuditFormat,
        metrics: Arc<Metrics>,
        detector: Arc<Detector>,
    ) -> Result<(AuditSink, AuditWriter), AuditError> {
        let out = if log == "-" {
            Out::Stdout
        } else {
            let mut opts = OpenOptions::new();
            opts.create(true).append(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o640);
            }
            Out::File(opts.open(log).map_err(|source| AuditError::Open {
                path: log.to_string(),
                source,
            })?)
        };
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let thread = std::thread::Builder::new()
            .name("pgvigil-audit".into())
            .spawn({
                let metrics = metrics.clone();
                move || run(rx, out, format, metrics)
            })
            .map_err(|source| AuditError::Open {
                path: log.to_string(),
                source,
            })?;
        Ok((
            AuditSink {
                tx,
                metrics,
                detector,
            },
            AuditWriter {
                thread: Some(thread),
            },
        ))
    }

    /// Waits until every queued event is written and synced. Call after every
    /// [`AuditSink`] clone is dropped.
    pub fn finish(mut self) {
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("audit writer thread panicked");
            }
        }
    }
}

fn run(
    mut rx: mpsc::Receiver<AuditEvent>,
    mut out: Out,
    format: AuditFormat,
    metrics: Arc<Metrics>,
) {
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut batch = Vec::with_capacity(BATCH);
    let mut last_sync = Instant::now();
    let mut dirty = false;
    loop {
        // Wait for the next event, but wake up to honour the fsync interval.
        let first = if dirty {
            let deadline = last_sync + FSYNC_EVERY;
            match recv_until(&mut rx, deadline) {
                Recv::Event(e) => Some(e),
                Recv::Timeout => None,
                Recv::Closed => break,
            }
        } else {
            match rx.blocking_recv() {
                Some(e) => Some(e),
                None => break,
            }
        };
        if let Some(e) = first {
            batch.push(e);
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(e) => batch.push(e),
                    Err(_) => break,
                }
            }
            metrics.audit_queue_depth.set(rx.len() as f64);
            buf.clear();
            for e in batch.drain(..) {
                let written = match format {
                    AuditFormat::Json => e.write_json(&mut buf),
                    AuditFormat::Pgaudit => super::pgaudit::write(&e, &mut buf),
                };
                if let Err(err) = written {
                    metrics.audit_write_errors.increment(1);
                    tracing::error!(error = %err, "cannot serialise an audit event");
                } else {
                    metrics.audit_events.increment(1);
                }
            }
            write_or_report(&mut out, &buf, &metrics);
            dirty = true;
        }
        if dirty && last_sync.elapsed() >= FSYNC_EVERY {
            sync_or_report(&mut out, &metrics);
            last_sync = Instant::now();
            dirty = false;
        }
    }
    if dirty {
        sync_or_report(&mut out, &metrics);
    }
}

enum Recv {
    Event(AuditEvent),
    Timeout,
    Closed,
}

/// A blocking receive with a deadline, without a runtime: poll, then nap briefly.
fn recv_until(rx: &mut mpsc::Receiver<AuditEvent>, deadline: Instant) -> Recv {
    loop {
        match rx.try_recv() {
            Ok(e) => return Recv::Event(e),
            Err(mpsc::error::TryRecvError::Disconnected) => return Recv::Closed,
            Err(mpsc::error::TryRecvError::Empty) => {}
        }
        let now = Instant::now();
        if now >= deadline {
            return Recv::Timeout;
        }
        std::thread::sleep((deadline - now).min(Duration::from_millis(5)));
    }
}

fn write_or_report(out: &mut Out, buf: &[u8], metrics: &Metrics) {
    if let Err(e) = out.write_all(buf) {
        metrics.audit_write_errors.increment(1);
        tracing::error!(error = %e, bytes = buf.len(), "audit log write failed");
    }
}

fn sync_or_report(out: &mut Out, metrics: &Metrics) {
    if let Err(e) = out.sync() {
        metrics.audit_write_errors.increment(1);
        tracing::error!(error = %e, "audit log fsync failed");
    }
}
