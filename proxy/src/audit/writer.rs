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
//! With `written` (the default) and `queued` there is no queue at all: the session serialises its events
//! and writes them itself before it passes the result on. Handing each event to a thread
//! and waiting for its answer cost two cross-thread wake-ups per transaction, the largest
//! part of the proxy's CPU time per transaction when measured. Sessions that complete
//! statements in the same pass of an event loop share one write (see [`Group`]). The
//! thread then only reopens the file, forces it to disk every second, and writes the lines
//! of a session that ended between appending and writing them.
//!
//! Every event is counted once, as `written`, `failed` (its write failed; the file is cut
//! back so no line is torn) or `dropped` (`on_backpressure = "drop"` with a full queue).

use super::logfile::LogFile;
use super::{AuditError, AuditEvent};
use crate::config::{AuditFormat, Backpressure, Durability};
use crate::detect::Detector;
use crate::enforce::WriteHealth;
use crate::metrics::Metrics;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
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
    /// With `written`: the file, appended to by the sessions themselves.
    inline: Option<Arc<Inline>>,
    /// Whether the last write worked (`[audit] on_write_error = "refuse"` reads it).
    health: Arc<WriteHealth>,
}

/// The log file shared by the sessions (`written`) and the writer thread.
struct Inline {
    out: Arc<Mutex<LogFile>>,
    /// Lines appended by sessions and not yet written. Lock order: `out`, then `group`.
    group: Mutex<Group>,
    format: AuditFormat,
    /// Written since the last fsync.
    dirty: Arc<AtomicBool>,
    health: Arc<WriteHealth>,
}

/// One write in the making: the lines sessions of an event loop's pass have appended.
///
/// A session that completes statements appends their lines here, lets the other sessions
/// that are ready in the same pass of its event loop run (they append theirs), then makes
/// sure the group it joined is written before it passes its results on. The first one back
/// writes everybody's lines with one call; the others find their group written. On 2 cores
/// at 16 clients, several sessions complete in one pass, and the write per transaction was
/// the largest cost PgBouncer does not have.
#[derive(Default)]
struct Group {
    buf: Vec<u8>,
    events: u64,
    /// The number of the group now taking lines; each write takes the group and opens the
    /// next.
    open: u64,
    /// The previous write's buffer, kept for the next group (no allocation per write).
    spare: Vec<u8>,
}

/// The log file's lock. A panic while holding it cannot tear a line (appends are whole or
/// cut back), so a poisoned lock is used as is.
fn lock(m: &Mutex<LogFile>) -> MutexGuard<'_, LogFile> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn lock_group(m: &Mutex<Group>) -> MutexGuard<'_, Group> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Inline {
    /// Serialises `events` (those the log wants) and appends them to the open group;
    /// returns the group's number, or `None` when no line was added.
    fn append(
        &self,
        events: impl IntoIterator<Item = AuditEvent>,
        metrics: &Metrics,
    ) -> Option<u64> {
        let mut group = lock_group(&self.group);
        let mut n = 0u64;
        // Serialised straight into the group: no buffer of its own, no copy.
        for event in events {
            if !event_logged(&event) {
                continue;
            }
            let mark = group.buf.len();
            if let Err(err) = serialise(&event, self.format, &mut group.buf) {
                group.buf.truncate(mark);
                metrics.audit_failed.increment(1);
                tracing::error!(error = %err, "cannot serialise an audit event");
            } else {
                n += 1;
            }
        }
        if n == 0 {
            return None;
        }
        group.events += n;
        Some(group.open)
    }

    /// Returns once group `ticket` is written (or its write failed and was counted): by
    /// this call, or already by another session's. A group is taken and written under the
    /// file's lock, so a session that gets the lock after its group was taken knows the
    /// write is over.
    fn commit(&self, ticket: u64, metrics: &Metrics) {
        let mut out = lock(&self.out);
        let (buf, n) = {
            let mut group = lock_group(&self.group);
            if group.open != ticket || group.buf.is_empty() {
                return;
            }
            group.open = group.open.wrapping_add(1);
            let spare = std::mem::take(&mut group.spare);
            let buf = std::mem::replace(&mut group.buf, spare);
            (buf, std::mem::take(&mut group.events))
        };
        let result = out.append(&buf);
        if result.is_ok() {
            // Between whole writes, as the writer thread does.
            out.rotate_if_due();
        }
        drop(out);
        self.health.set(result.is_ok());
        match result {
            Ok(()) => {
                metrics.audit_written.increment(n);
                self.dirty.store(true, Ordering::Relaxed);
            }
            Err(e) => {
                metrics.audit_write_errors.increment(1);
                metrics.audit_failed.increment(n);
                tracing::error!(error = %e, events = n, "audit log write failed; events lost");
            }
        }
        let mut buf = buf;
        buf.clear();
        // A burst's buffer is not kept: only a typical group's.
        if buf.capacity() <= 256 * 1024 {
            lock_group(&self.group).spare = buf;
        }
    }

    /// Appends and writes at once (events that do not wait for a result: session start and
    /// end, refusals); lines other sessions left in the open group go with them.
    fn write(&self, events: impl IntoIterator<Item = AuditEvent>, metrics: &Metrics) {
        if let Some(ticket) = self.append(events, metrics) {
            self.commit(ticket, metrics);
        }
    }

    /// Writes whatever the open group holds (the writer thread's periodic pass and
    /// shutdown: lines of a session that ended between appending and committing).
    fn flush(&self, metrics: &Metrics) {
        let ticket = lock_group(&self.group).open;
        self.commit(ticket, metrics);
    }
}

/// Lets every task already ready on this event loop run once, then returns. Not
/// `tokio::task::yield_now`: that defers the wake-up until the loop has polled the
/// sockets again, which cost a non-blocking `epoll_wait` per group (measured: 0.27 per
/// transaction at 16 clients). Waking itself puts the task at the back of the loop's
/// queue, behind the sessions the same poll made ready: those are the ones whose lines
/// join the group.
fn behind_the_ready() -> impl std::future::Future<Output = ()> {
    let mut yielded = false;
    std::future::poll_fn(move |cx| {
        if yielded {
            return std::task::Poll::Ready(());
        }
        yielded = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    })
}

/// Whether other tasks share this event loop: only then can waiting for them to append
/// their lines save a write. A session alone on its thread writes at once.
fn has_company() -> bool {
    tokio::runtime::Handle::try_current().is_ok_and(|h| h.metrics().num_alive_tasks() > 1)
}

/// Whether the log wants the event (statements kept for the detector alone are not).
fn event_logged(event: &AuditEvent) -> bool {
    match event {
        AuditEvent::Statement { statement, .. } => statement.logged,
        _ => true,
    }
}

fn serialise(event: &AuditEvent, format: AuditFormat, buf: &mut Vec<u8>) -> serde_json::Result<()> {
    match format {
        AuditFormat::Json => event.write_json(buf),
        AuditFormat::Pgaudit => super::pgaudit::write(event, buf),
    }
}

impl AuditSink {
    /// Queues an event, waiting while the queue is full (nothing is dropped). Session
    /// lifecycle events always wait: they are few and a trail without them is unreadable.
    pub async fn emit(&self, event: AuditEvent) {
        self.detector.observe(&event, event.session().service);
        if let Some(inline) = &self.inline {
            inline.write([event], &self.metrics);
            return;
        }
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

    /// Queues a session's completed statement events (in order) for the writer thread
    /// (`synced`; with the other modes sessions write themselves, see
    /// [`AuditSink::append_inline`]) and returns what to wait on before their results may
    /// reach the client: the last one's durability stands for all, as one writer writes
    /// them in queue order.
    pub async fn queue_statements(&self, events: Vec<AuditEvent>, policy: Backpressure) -> Durable {
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

    /// With `written` and `queued` (the sessions write the file themselves): the detector
    /// sees the events and their lines join the open group. `Ok(ticket)`: the lines are
    /// written by [`AuditSink::finish_inline`], to be awaited before the statements'
    /// results go on. `Err`: not inline; the events go to [`AuditSink::queue_statements`].
    ///
    /// Not async, so that a session's relay can hand events over without a boxed future.
    pub fn append_inline(&self, events: Vec<AuditEvent>) -> Result<Option<u64>, Vec<AuditEvent>> {
        let Some(inline) = &self.inline else {
            return Err(events);
        };
        for e in &events {
            self.detector.observe(e, e.session().service);
        }
        Ok(inline.append(events, &self.metrics))
    }

    /// After [`AuditSink::append_inline`]: once the loop's other ready sessions had their
    /// turn to add lines (when there are any), writes the group holding `ticket`'s lines
    /// unless another session did already. A small future: no allocation per batch.
    pub async fn finish_inline(&self, ticket: Option<u64>) {
        let (Some(ticket), Some(inline)) = (ticket, &self.inline) else {
            return;
        };
        if has_company() {
            behind_the_ready().await;
        }
        inline.commit(ticket, &self.metrics);
    }

    async fn queue_statement(
        &self,
        event: AuditEvent,
        policy: Backpressure,
        ack: Option<oneshot::Sender<()>>,
    ) {
        self.detector.observe(&event, event.session().service);
        if !event_logged(&event) {
            return;
        }
        if let Some(inline) = &self.inline {
            inline.write([event], &self.metrics);
            return;
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

    /// Whether the audit log can be written, as the last write found.
    pub fn write_health(&self) -> &Arc<WriteHealth> {
        &self.health
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
        let out = Arc::new(Mutex::new(out));
        let (tx, rx) = mpsc::channel(opts.capacity.max(1));
        let (format, durability) = (opts.format, opts.durability);
        let health = Arc::new(WriteHealth::default());
        // `queued` is served the same way: an event in the file is more than an event in a
        // queue, and it costs less (measured: the queue's thread wake-ups cost more CPU per
        // transaction than the write itself).
        let inline = (durability != Durability::Synced).then(|| {
            Arc::new(Inline {
                out: out.clone(),
                group: Mutex::new(Group::default()),
                format,
                dirty: Arc::new(AtomicBool::new(false)),
                health: health.clone(),
            })
        });
        let inline_for_writer = inline.clone();
        let thread = std::thread::Builder::new()
            .name("pgvigil-audit".into())
            .spawn({
                let metrics = metrics.clone();
                let health = health.clone();
                move || {
                    run(
                        rx,
                        out,
                        inline_for_writer,
                        format,
                        durability,
                        metrics,
                        &health,
                    )
                }
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
                inline,
                health,
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
    out: Arc<Mutex<LogFile>>,
    inline: Option<Arc<Inline>>,
    format: AuditFormat,
    durability: Durability,
    metrics: Arc<Metrics>,
    health: &WriteHealth,
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
        // Sessions that write for themselves leave the periodic fsync to this thread, and
        // the lines of a session that ended between appending and writing them.
        if let Some(inline) = &inline {
            inline.flush(&metrics);
            dirty |= inline.dirty.swap(false, Ordering::Relaxed);
        }
        // Wait for the next item, but wake up to honour the fsync interval. With nothing
        // to sync yet (sessions may write meanwhile), look again an interval from now:
        // the last sync's deadline is long past on an idle proxy, and waiting for it would
        // spin.
        let first = if let (true, Some(rt)) = (dirty || inline.is_some(), &rt) {
            let deadline = if dirty {
                last_sync + FSYNC_EVERY
            } else {
                Instant::now() + FSYNC_EVERY
            };
            match recv_until(rt, &mut rx, deadline) {
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
                        if let Err(err) = serialise(&event, format, &mut batch.buf) {
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
                        commit(&out, &mut batch, durability, &metrics, health);
                        let reopened = lock(&out).reopen();
                        match reopened {
                            Ok(()) => tracing::info!("audit log reopened"),
                            Err(e) => {
                                tracing::error!(error = %e, "cannot reopen the audit log; writing on to the old file")
                            }
                        }
                    }
                }
            }
            commit(&out, &mut batch, durability, &metrics, health);
            dirty |= durability != Durability::Synced;
            if dirty && rt.is_none() {
                sync_or_report(&out, &metrics);
                dirty = false;
            }
        }
        if dirty && last_sync.elapsed() >= FSYNC_EVERY {
            sync_or_report(&out, &metrics);
            last_sync = Instant::now();
            dirty = false;
        }
    }
    commit(&out, &mut batch, durability, &metrics, health);
    if let Some(inline) = &inline {
        inline.flush(&metrics);
    }
    sync_or_report(&out, &metrics);
}

/// Writes the batch in one call (and syncs it with `synced`), counts its events, and
/// releases the sessions waiting on it. A failed write is cut back out of the file; its
/// events are counted as failed and their sessions released all the same (the loss is
/// counted and logged, and a session must not hang on a broken disk).
fn commit(
    out: &Mutex<LogFile>,
    batch: &mut Batch,
    durability: Durability,
    metrics: &Metrics,
    health: &WriteHealth,
) {
    if !batch.buf.is_empty() {
        let appended = lock(out).append(&batch.buf);
        health.set(appended.is_ok());
        match appended {
            Ok(()) => {
                if durability == Durability::Synced {
                    sync_or_report(out, metrics);
                }
                metrics.audit_written.increment(batch.events);
                lock(out).rotate_if_due();
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

/// Forces the file to disk through a second handle, so sessions appending meanwhile do not
/// wait for the fsync.
fn sync_or_report(out: &Mutex<LogFile>, metrics: &Metrics) {
    let handle = lock(out).sync_handle();
    let Some(file) = handle else {
        return;
    };
    if let Err(e) = file.sync_data() {
        metrics.audit_write_errors.increment(1);
        tracing::error!(error = %e, "audit log fsync failed");
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
