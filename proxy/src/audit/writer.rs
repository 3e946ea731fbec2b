//! The audit writer: a bounded queue in front of a dedicated thread that owns the file.
//!
//! A thread rather than a task because file writes and fsync block; keeping them off the
//! runtime keeps them off every session's latency. Serialisation happens on the writer
//! thread too, so a session pays for one channel send per event.
//!
//! Durability (`[audit] durability`) decides when a session may pass a statement's result
//! on to its client: once the event is queued (`queued`), written to the file (`written`:
//! survives a kill of pgvigil), or written and fsynced (`synced`: survives power loss). The
//! writer commits in groups: it takes whatever has queued, writes it in one call (and syncs
//! once), then releases every session waiting on that batch.
//!
//! Every event is counted once, as `written`, `failed` (its write failed; the file is cut
//! back so no line is torn) or `dropped` (`on_backpressure = "drop"` with a full queue).

use super::logfile::LogFile;
use super::{AuditError, AuditEvent};
use crate::config::{AuditFormat, Backpressure, Durability};
use crate::detect::Detector;
use crate::metrics::Metrics;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// How often written events are forced to disk (with `written` and `queued`).
const FSYNC_EVERY: Duration = Duration::from_secs(1);
/// Events taken from the queue per write.
const BATCH: usize = 1024;

/// What the queue carries.
enum Item {
    /// An event, and whom to tell once it is as durable as configured.
    Event {
        event: AuditEvent,
        ack: Option<oneshot::Sender<()>>,
    },
    /// Open the log file again (SIGUSR1, SIGHUP: logrotate moved it).
    Reopen,
}

/// Resolves once the events it was handed with are as durable as `[audit] durability`
/// asks (at once with `queued`).
pub struct Durable(Option<oneshot::Receiver<()>>);

impl Durable {
    /// Waits. A writer that stopped releases the wait (its loss is counted and logged).
    pub async fn wait(self) {
        if let Some(rx) = self.0 {
            let _ = rx.await;
        }
    }
}

/// The sessions' handle: cheap to clone.
#[derive(Clone)]
pub struct AuditSink {
    tx: mpsc::Sender<Item>,
    metrics: Arc<Metrics>,
    detector: Arc<Detector>,
    durability: Durability,
}

impl AuditSink {
    /// Queues an event, waiting while the queue is full (nothing is dropped). Session
    /// lifecycle events always wait: they are few and a trail without them is unreadable.
    pub async fn emit(&self, event: AuditEvent) {
        self.detector.observe(&event, event.session().service);
        self.queue(event, None).await
    }

    async fn queue(&self, event: AuditEvent, ack: Option<oneshot::Sender<()>>) {
        if self.tx.send(Item::Event { event, ack }).await.is_err() {
            self.writer_gone();
        }
    }

    /// Queues a statement event according to `[audit] on_backpressure`: waits for room,
    /// or drops it and counts the drop.
    /// Statements that are not logged (`StatementEvent::logged`) only meet the
    /// detector.
    pub async fn emit_statement(&self, event: AuditEvent, policy: Backpressure) {
        self.queue_statement(event, policy, None).await;
    }

    /// Queues a session's completed statement events (in order) and returns what to wait
    /// on before their results may reach the client: the last one's durability stands for
    /// all, as one writer writes them in queue order.
    pub async fn emit_statements(&self, events: Vec<AuditEvent>, policy: Backpressure) -> Durable {
        let mut rx = None;
        let last_logged = events.iter().rposition(|e| match e {
            AuditEvent::Statement { statement, .. } => statement.logged,
            _ => true,
        });
        for (i, e) in events.into_iter().enumerate() {
            let ack = if Some(i) == last_logged && self.durability != Durability::Queued {
                let (tx, r) = oneshot::channel();
                rx = Some(r);
                Some(tx)
            } else {
                None
            };
            self.queue_statement(e, policy, ack).await;
        }
        Durable(rx)
    }

    async fn queue_statement(
        &self,
        event: AuditEvent,
        policy: Backpressure,
        ack: Option<oneshot::Sender<()>>,
    ) {
        self.detector.observe(&event, event.session().service);
        if let AuditEvent::Statement { statement, .. } = &event {
            if !statement.logged {
                return;
            }
        }
        match policy {
            Backpressure::Wait => self.queue(event, ack).await,
            Backpressure::Drop => match self.tx.try_send(Item::Event { event, ack }) {
                Ok(()) => {}
                // The dropped event's ack goes with it: the session does not wait for it.
                Err(mpsc::error::TrySendError::Full(_)) => self.metrics.audit_dropped.increment(1),
                Err(mpsc::error::TrySendError::Closed(_)) => self.writer_gone(),
            },
        }
    }

    /// Asks the writer to open the log file again (after logrotate moved it).
    pub async fn reopen(&self) {
        if self.tx.send(Item::Reopen).await.is_err() {
            self.writer_gone();
        }
    }

    fn writer_gone(&self) {
        // Only possible after the writer died; it has logged why.
        self.metrics.audit_failed.increment(1);
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

/// How the writer writes.
pub struct WriterOptions<'a> {
    /// The file ("-" for standard output).
    pub log: &'a str,
    pub capacity: usize,
    pub format: AuditFormat,
    pub durability: Durability,
    /// Built-in rotation (`[audit] rotate_size`, `rotate_keep`); `None` = off.
    pub rotation: Option<super::logfile::Rotation>,
}

impl AuditWriter {
    /// Opens the log for appending and starts the writer thread.
    pub fn start(
        opts: WriterOptions<'_>,
        metrics: Arc<Metrics>,
        detector: Arc<Detector>,
    ) -> Result<(AuditSink, AuditWriter), AuditError> {
        let out = LogFile::open(opts.log)
            .map_err(|source| AuditError::Open {
                path: opts.log.to_string(),
                source,
            })?
            .with_rotation(opts.rotation);
        let (tx, rx) = mpsc::channel(opts.capacity.max(1));
        let (format, durability) = (opts.format, opts.durability);
        let thread = std::thread::Builder::new()
            .name("pgvigil-audit".into())
            .spawn({
                let metrics = metrics.clone();
                move || run(rx, out, format, durability, metrics)
            })
            .map_err(|source| AuditError::Open {
                path: opts.log.to_string(),
                source,
            })?;
        Ok((
            AuditSink {
                tx,
                metrics,
                detector,
                durability,
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

/// One group commit in the making.
struct Batch {
    buf: Vec<u8>,
    events: u64,
    acks: Vec<oneshot::Sender<()>>,
}

fn run(
    mut rx: mpsc::Receiver<Item>,
    mut out: LogFile,
    format: AuditFormat,
    durability: Durability,
    metrics: Arc<Metrics>,
) {
    let mut batch = Batch {
        buf: Vec::with_capacity(64 * 1024),
        events: 0,
        acks: Vec::new(),
    };
    let mut items = Vec::with_capacity(BATCH);
    // Only timers: the deadline of the periodic fsync while waiting for events. Without it
    // (it cannot really fail to build) the writer still writes, syncing only per batch.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .map_err(
            |e| tracing::error!(error = %e, "audit writer timer unavailable; syncing every batch"),
        )
        .ok();
    let mut last_sync = Instant::now();
    let mut dirty = false;
    loop {
        // Wait for the next item, but wake up to honour the fsync interval.
        let first = if let (true, Some(rt)) = (dirty, &rt) {
            match recv_until(rt, &mut rx, last_sync + FSYNC_EVERY) {
                Recv::Item(i) => Some(i),
                Recv::Timeout => None,
                Recv::Closed => break,
            }
        } else {
            match rx.blocking_recv() {
                Some(i) => Some(i),
                None => break,
            }
        };
        if let Some(i) = first {
            items.push(i);
            while items.len() < BATCH {
                match rx.try_recv() {
                    Ok(i) => items.push(i),
                    Err(_) => break,
                }
            }
            metrics.audit_queue_depth.set(rx.len() as f64);
            for item in items.drain(..) {
                match item {
                    Item::Event { event, ack } => {
                        let mark = batch.buf.len();
                        let written = match format {
                            AuditFormat::Json => event.write_json(&mut batch.buf),
                            AuditFormat::Pgaudit => super::pgaudit::write(&event, &mut batch.buf),
                        };
                        if let Err(err) = written {
                            batch.buf.truncate(mark);
                            metrics.audit_failed.increment(1);
                            tracing::error!(error = %err, "cannot serialise an audit event");
                        } else {
                            batch.events += 1;
                        }
                        batch.acks.extend(ack);
                    }
                    Item::Reopen => {
                        // What came before the request belongs in the old file.
                        commit(&mut out, &mut batch, durability, &metrics);
                        match out.reopen() {
                            Ok(()) => tracing::info!("audit log reopened"),
                            Err(e) => {
                                tracing::error!(error = %e, "cannot reopen the audit log; writing on to the old file")
                            }
                        }
                    }
                }
            }
            commit(&mut out, &mut batch, durability, &metrics);
            dirty = durability != Durability::Synced;
            if dirty && rt.is_none() {
                sync_or_report(&mut out, &metrics);
                dirty = false;
            }
        }
        if dirty && last_sync.elapsed() >= FSYNC_EVERY {
            sync_or_report(&mut out, &metrics);
            last_sync = Instant::now();
            dirty = false;
        }
    }
    commit(&mut out, &mut batch, durability, &metrics);
    sync_or_report(&mut out, &metrics);
}

/// Writes the batch in one call (and syncs it with `synced`), counts its events, and
/// releases the sessions waiting on it. A failed write is cut back out of the file; its
/// events are counted as failed and their sessions released all the same (the loss is
/// counted and logged, and a session must not hang on a broken disk).
fn commit(out: &mut LogFile, batch: &mut Batch, durability: Durability, metrics: &Metrics) {
    if !batch.buf.is_empty() {
        match out.append(&batch.buf) {
            Ok(()) => {
                if durability == Durability::Synced {
                    sync_or_report(out, metrics);
                }
                metrics.audit_written.increment(batch.events);
                out.rotate_if_due();
            }
            Err(e) => {
                metrics.audit_write_errors.increment(1);
                metrics.audit_failed.increment(batch.events);
                tracing::error!(error = %e, events = batch.events, "audit log write failed; events lost");
            }
        }
    }
    batch.buf.clear();
    batch.events = 0;
    for ack in batch.acks.drain(..) {
        let _ = ack.send(());
    }
}

enum Recv {
    Item(Item),
    Timeout,
    Closed,
}

/// A blocking receive with a deadline, on the writer thread's own small runtime: it wakes
/// the moment an item is queued (a poll-and-nap loop would hold every waiting session for
/// the nap).
fn recv_until(
    rt: &tokio::runtime::Runtime,
    rx: &mut mpsc::Receiver<Item>,
    deadline: Instant,
) -> Recv {
    let deadline = tokio::time::Instant::from_std(deadline);
    // The timer is made inside the runtime: a Sleep needs one to be created.
    match rt.block_on(async { tokio::time::timeout_at(deadline, rx.recv()).await }) {
        Ok(Some(i)) => Recv::Item(i),
        Ok(None) => Recv::Closed,
        Err(_) => Recv::Timeout,
    }
}

fn sync_or_report(out: &mut LogFile, metrics: &Metrics) {
    if let Err(e) = out.sync() {
        metrics.audit_write_errors.increment(1);
        tracing::error!(error = %e, "audit log fsync failed");
    }
}
