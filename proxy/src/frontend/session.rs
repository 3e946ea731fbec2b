//! One client connection from accept to close: the phases in order, inside one tracing span,
//! with the audit events (`session_start`, `auth_failure`, `session_end`) and connection
//! metrics emitted from this single place.

use super::admission::{Refusal, StartupTicket};
use super::login::{login, LoggedIn, LoginRequest};
use super::negotiate::{negotiate, Opening};
use super::registry::{Entry, KillReason};
use super::relay::{self, Activity, Backlog, ByteCounter, ClientSide, Events, PumpEnd, ServerSide};
use super::woken::WhenWoken;
use super::{proxy_protocol, FrontendError, Shared};
use crate::audit::{
    now_rfc3339, AuditEvent, AuthFailure, ConnectionRefused, SessionEnd, SessionInfo, Tracker,
};
use crate::config::ClientTlsMode;
use crate::metrics::ConnResult;
use crate::snapshot::Config;
use crate::tls::{peer_common_name, MaybeTls};
use crate::wire::messages::{error_response, Severity};
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::watch;
use tracing::{field, Instrument};

/// Runs one client connection to the end. `ticket` is its place in the pre-login budgets,
/// given back once it logs in; `via_balancer` says the peer is a trusted load balancer that
/// must send a PROXY header. `force_close` turns true when shutdown's drain period is over.
pub async fn run(
    shared: Arc<Shared>,
    tcp: TcpStream,
    peer: SocketAddr,
    ticket: StartupTicket,
    via_balancer: bool,
    force_close: watch::Receiver<bool>,
) {
    let session_id = shared.next_session_id();
    let span = tracing::info_span!(
        "session",
        id = %session_id,
        client = %peer,
        user = field::Empty,
        db = field::Empty,
        tls = field::Empty,
    );
    // Not `.instrument(span)` on the whole session: that enters and leaves the span on every
    // poll of the relay, a cost per relayed batch for logs that happen a few times a session.
    let opening = Accepted {
        tcp,
        peer,
        ticket,
        via_balancer,
    };
    run_inner(shared, opening, session_id, force_close, span).await
}

/// A connection as the listener hands it over.
struct Accepted {
    tcp: TcpStream,
    peer: SocketAddr,
    ticket: StartupTicket,
    via_balancer: bool,
}

async fn run_inner(
    shared: Arc<Shared>,
    opening: Accepted,
    session_id: String,
    force_close: watch::Receiver<bool>,
    span: tracing::Span,
) {
    let peer = opening.peer;
    let started = Instant::now();
    let config = shared.config();
    let _ = opening.tcp.set_nodelay(true);
    let mut info = SessionInfo::connection(session_id, peer);
    let timeout = config.file.listen.startup_timeout;
    // Boxed: the login's state (TLS handshakes, SCRAM, the catalog check) is freed once the
    // session is established, instead of sizing the task that lives as long as the session.
    let login = Box::pin(establish(&shared, &config, opening, &mut info));
    let result = tokio::time::timeout(timeout, login)
        .instrument(span.clone())
        .await;
    let (client, mut logged_in, _session_place) = match result {
        Ok(Ok(Some(pair))) => pair,
        Ok(Ok(None)) => {
            shared.metrics.connection(ConnResult::Cancel);
            return;
        }
        Ok(Err(e)) => {
            fail(&shared, info, &e).instrument(span).await;
            return;
        }
        Err(_) => {
            shared.metrics.connection(ConnResult::Timeout);
            span.in_scope(|| tracing::info!(timeout = ?timeout, "startup timed out"));
            if info.user.is_some() {
                let reason = format!(
                    "authentication timed out after {}",
                    humantime::format_duration(timeout)
                );
                audit_failure(&shared, info, None, reason, None).await;
            }
            return;
        }
    };
    shared.metrics.connection(ConnResult::Ok);
    let info = Arc::new(info);
    let registered = shared.sessions.register(info.clone());
    if info.database.as_deref() == Some(config.file.admin.database.as_str()) {
        let stop = (force_close, &*registered.entry);
        // Boxed: only console sessions pay for the console's state.
        let ended_by = Box::pin(console(&shared, client, logged_in, &info, stop))
            .instrument(span.clone())
            .await;
        let end = SessionEnd {
            duration_ms: started.elapsed().as_millis() as u64,
            bytes_in: registered.entry.bytes_in.load(Ordering::Relaxed),
            bytes_out: registered.entry.bytes_out.load(Ordering::Relaxed),
            ended_by,
        };
        drop(registered);
        let ts = now_rfc3339();
        let session = info;
        shared
            .audit
            .emit(AuditEvent::SessionEnd { ts, session, end })
            .await;
        return;
    }
    if let Some(key) = &logged_in.cancel_key {
        key.attach(info.clone());
    }
    shared
        .audit
        .emit(AuditEvent::SessionStart {
            ts: now_rfc3339(),
            session: info.clone(),
        })
        .await;
    span.in_scope(|| {
        tracing::info!(
            auth_method = info.auth_method.as_deref().unwrap_or(""),
            "session started"
        )
    });
    let mut tracker = Tracker::new(config.clone(), shared.metrics.clone(), info.clone());
    tracker.set_policy(crate::enforce::SessionPolicy::new(
        &config,
        &info,
        shared.audit.write_health().clone(),
    ));
    tracker.set_standard_conforming_strings(logged_in.standard_conforming_strings);
    if let Some(shadow) = logged_in.shadow.take() {
        tracker.set_shadow(shadow);
    }
    let tracker = Arc::new(Mutex::new(tracker));
    registered.entry.attach(&tracker);
    let (bytes_in, bytes_out, ended_by) = relay_session(
        &shared,
        &config,
        client,
        logged_in,
        &tracker,
        (force_close, &registered.entry),
        &span,
    )
    .await;
    // Statements the server never answered (the client or server went away mid-way) are
    // audited too.
    let unanswered = {
        let mut t = tracker.lock().unwrap_or_else(|p| p.into_inner());
        t.abandon();
        t.take_events()
    };
    for e in unanswered {
        shared
            .audit
            .emit_statement(e, config.file.audit.on_backpressure)
            .await;
    }
    drop(registered);
    shared
        .audit
        .emit(AuditEvent::SessionEnd {
            ts: now_rfc3339(),
            session: info,
            end: SessionEnd {
                duration_ms: started.elapsed().as_millis() as u64,
                bytes_in,
                bytes_out,
                ended_by,
            },
        })
        .await;
    span.in_scope(|| tracing::info!(bytes_in, bytes_out, "session ended"));
}

/// Serves the admin console to an authenticated administrator: the server connection
/// that proved the login is closed, then the console answers until the client leaves or
/// is killed, or the shutdown's drain period is over. Returns who ended it, when someone
/// did.
async fn console(
    shared: &Arc<Shared>,
    mut client: MaybeTls,
    logged_in: LoggedIn,
    info: &Arc<SessionInfo>,
    stop: (watch::Receiver<bool>, &Entry),
) -> Option<String> {
    let (mut force_close, entry) = stop;
    let LoggedIn {
        mut server,
        client_leftover,
        cancel_key,
        ..
    } = logged_in;
    drop(cancel_key);
    goodbye(server.write_all(&[b'X', 0, 0, 0, 4])).await;
    goodbye(server.shutdown()).await;
    drop(server);
    tracing::info!("admin console session");
    let ended = tokio::select! {
        r = crate::admin::serve(shared, &mut client, client_leftover, info, entry) => r,
        _ = force_close.wait_for(|&v| v) => Ok(crate::admin::Ended::Shutdown),
    };
    let by = match ended {
        Ok(crate::admin::Ended::Shutdown) => {
            goodbye(fatal_to_client(&mut client, "57P01", TERMINATED)).await;
            None
        }
        Ok(crate::admin::Ended::Client) => None,
        Ok(crate::admin::Ended::Killed(reason)) => {
            goodbye(fatal_to_client(&mut client, "57P01", &reason.message)).await;
            Some(reason.by)
        }
        Err(e) => {
            tracing::info!(error = %e, "admin console session failed");
            None
        }
    };
    goodbye(client.shutdown()).await;
    by
}

/// An established session: the client, the logged-in server, and the session's place in
/// `max_client_conn`.
type Established = (MaybeTls, LoggedIn, tokio::sync::OwnedSemaphorePermit);

/// Negotiation, TLS policy and login. `Ok(None)` for a handled cancel request. The
/// connection's pre-login places (`opening.ticket`) are given back when this returns.
async fn establish(
    shared: &Shared,
    config: &Config,
    opening: Accepted,
    info: &mut SessionInfo,
) -> Result<Option<Established>, FrontendError> {
    let Accepted {
        mut tcp,
        mut ticket,
        via_balancer,
        ..
    } = opening;
    first_bytes(&tcp, config.file.listen.first_byte_timeout, via_balancer).await?;
    if via_balancer {
        if let Some(real) = proxy_protocol::read_header(&mut tcp).await? {
            info.client_addr = real.ip();
            info.client_port = real.port();
            tracing::Span::current().record("client", field::display(real));
            if let Err(r) = shared.admission.bind_addr(&mut ticket, real.ip()) {
                let (code, msg, hint) = r.client_message();
                let _ = tcp
                    .write_all(&error_response(Severity::Fatal, code, msg, hint))
                    .await;
                return Err(FrontendError::Admission(r));
            }
        }
    }
    let opening = negotiate(tcp, config.client_tls.as_deref()).await?;
    let (mut client, startup) = match opening {
        Opening::Cancel {
            stream,
            pid,
            secret,
        } => {
            super::cancel::serve(shared, stream, pid, &secret, info).await;
            return Ok(None);
        }
        Opening::Session { stream, startup } => (stream, startup),
    };
    let mut startup = startup;
    let user = startup.get_str("user").unwrap_or_default();
    let database = startup.get_str("database").unwrap_or_else(|| user.clone());
    info.tls = client.is_tls();
    info.application_name = startup.get_str("application_name");
    let span = tracing::Span::current();
    span.record("user", field::display(&user));
    span.record("db", field::display(&database));
    span.record("tls", info.tls);
    info.service = config.is_service_account(&user);
    let console = database == config.file.admin.database;
    let console_refused = console && !config.file.admin.allows(&user);
    info.user = Some(user);
    info.database = Some(database.clone());
    let result = async {
        // Before any other refusal, so that a blocked client's retries (say, in plaintext
        // where TLS is required) are never counted as failed logins again.
        if let Some(block) = shared.audit.detector().blocked(info.client_addr) {
            return Err(FrontendError::Blocked {
                rule_id: block.rule_id,
                until: crate::audit::rfc3339_at(block.until),
            });
        }
        // Access policies and a refusing audit log decide before any authentication.
        crate::enforce::access::at_login(config, &shared.audit, info, &mut startup.params)?;
        check_client_tls(config, &client, info)?;
        if console_refused {
            return Err(FrontendError::Refused {
                sqlstate: "28000",
                message: format!(
                    "user \"{}\" may not use the pgvigil admin console",
                    info.user.as_deref().unwrap_or_default()
                ),
                hint: Some("the console's users are listed in [admin] users".into()),
            });
        }
        // Taken after the TLS negotiation, so a refused client can read why.
        let place = shared
            .admission
            .session()
            .map_err(FrontendError::Admission)?;
        // The console's name does not exist upstream: its users authenticate against
        // `[admin] auth_database`.
        let console_target;
        let target = if console {
            let auth_db = &config.file.admin.auth_database;
            let mut t = config.route(auth_db).clone();
            t.dbname = Some(t.dbname.take().unwrap_or_else(|| auth_db.clone()));
            console_target = t;
            &console_target
        } else {
            config.route(&database)
        };
        let req = LoginRequest {
            config,
            shared,
            target,
            startup: &startup,
            client_addr: info.client_addr,
            auth_method: &mut info.auth_method,
            upstream_auth_method: &mut info.upstream_auth_method,
        };
        let auth_started = Instant::now();
        let result = login(req, &mut client).await;
        shared
            .metrics
            .auth_time(result.is_ok(), auth_started.elapsed());
        result.map(|l| (l, place))
    }
    .await;
    drop(ticket);
    match result {
        Ok((l, place)) => Ok(Some((client, l, place))),
        Err(e) => {
            if let Some(msg) = e.client_error() {
                let _ = client.write_all(&msg).await;
                let _ = client.flush().await;
            }
            let _ = client.shutdown().await;
            Err(e)
        }
    }
}

/// Waits for the connection's first bytes, at most `limit`: a socket that says nothing is
/// closed long before `startup_timeout`. A PROXY protocol header (`PROXY ` or the v2
/// signature, neither of which can start a PostgreSQL packet) from a peer that is not a
/// trusted load balancer is refused: believing it would let anyone claim any address.
async fn first_bytes(
    tcp: &TcpStream,
    limit: Duration,
    via_balancer: bool,
) -> Result<(), FrontendError> {
    let mut first = [0u8; 1];
    let n = match tokio::time::timeout(limit, tcp.peek(&mut first)).await {
        Ok(r) => r.map_err(crate::wire::WireError::from)?,
        Err(_) => return Err(FrontendError::Silent),
    };
    if n == 0 {
        return Err(crate::wire::WireError::Eof.into());
    }
    if !via_balancer && (first[0] == b'P' || first[0] == b'\r') {
        let (code, msg, hint) = Refusal::UntrustedProxyHeader.client_message();
        let _ = tcp.try_write(&error_response(Severity::Fatal, code, msg, hint));
        return Err(FrontendError::Admission(Refusal::UntrustedProxyHeader));
    }
    Ok(())
}

/// Counts a refusal by a connection budget, and audits it at most once per address and
/// minute (`connection_refused`, with how many refusals it stands for). `info` is the
/// connection's, when it got that far.
pub fn refused(shared: &Arc<Shared>, peer: SocketAddr, info: Option<SessionInfo>, r: Refusal) {
    shared.metrics.connection(match r {
        Refusal::StartupFull => ConnResult::StartupFull,
        Refusal::AddrLimit => ConnResult::AddrLimit,
        Refusal::SessionsFull => ConnResult::TooMany,
        Refusal::UntrustedProxyHeader => ConnResult::ProxyUntrusted,
    });
    let addr = info.as_ref().map_or(peer.ip(), |i| i.client_addr);
    let Some(since_last) = shared.admission.audit_refusal(addr) else {
        return;
    };
    tracing::warn!(client = %addr, reason = r.reason(), refused_since_last = since_last, "connection refused");
    let session =
        Arc::new(info.unwrap_or_else(|| SessionInfo::connection(shared.next_session_id(), peer)));
    let event = AuditEvent::ConnectionRefused {
        ts: now_rfc3339(),
        session,
        refusal: ConnectionRefused {
            reason: r.reason(),
            refused_since_last: since_last,
        },
    };
    let shared = shared.clone();
    // The accept loop must not wait for the writer's queue.
    tokio::spawn(async move { shared.audit.emit(event).await });
}

/// The client-side TLS policy: `require` and up refuse plaintext; `verify-full` wants the
/// certificate's CN to be the user name.
fn check_client_tls(
    config: &Config,
    client: &MaybeTls,
    info: &SessionInfo,
) -> Result<(), FrontendError> {
    let mode = config.file.listen.tls.mode;
    let user = info.user.as_deref().unwrap_or_default();
    let db = info.database.as_deref().unwrap_or_default();
    let needs_tls = matches!(
        mode,
        ClientTlsMode::Require | ClientTlsMode::VerifyCa | ClientTlsMode::VerifyFull
    );
    if needs_tls && !client.is_tls() {
        return Err(FrontendError::Refused {
            sqlstate: "28000",
            message: format!(
                "no pg_hba.conf entry for host \"{}\", user \"{user}\", database \"{db}\", no encryption",
                info.client_addr
            ),
            hint: Some("pgvigil requires TLS: connect with sslmode=require or stronger".into()),
        });
    }
    if mode == ClientTlsMode::VerifyFull {
        let cn = client
            .peer_certificates()
            .and_then(|c| c.first())
            .and_then(peer_common_name);
        if cn.as_deref() != Some(user) {
            return Err(FrontendError::Refused {
                sqlstate: "28000",
                message: format!("certificate authentication failed for user \"{user}\""),
                hint: Some("the client certificate's CN must equal the user name (listen.tls.mode = verify-full)".into()),
            });
        }
    }
    Ok(())
}

/// Audits and counts a connection that did not make it to the relay.
async fn fail(shared: &Arc<Shared>, info: SessionInfo, e: &FrontendError) {
    match e {
        FrontendError::Admission(r) => {
            let peer = SocketAddr::new(info.client_addr, info.client_port);
            return refused(shared, peer, Some(info), *r);
        }
        FrontendError::Silent => return shared.metrics.connection(ConnResult::Silent),
        _ => {}
    }
    let (result, audit): (ConnResult, Option<(Option<String>, String)>) = match e {
        FrontendError::Rejected { sqlstate, reason } => (
            ConnResult::AuthFailure,
            Some((sqlstate.clone(), reason.clone())),
        ),
        FrontendError::Refused {
            sqlstate, message, ..
        } => (
            ConnResult::AuthFailure,
            Some((Some(sqlstate.to_string()), message.clone())),
        ),
        FrontendError::ClientGone => (
            ConnResult::AuthFailure,
            Some((
                None,
                "client disconnected during authentication".to_string(),
            )),
        ),
        FrontendError::Blocked { rule_id, until } => (
            ConnResult::Blocked,
            Some((
                Some("28000".to_string()),
                format!("too many failed authentication attempts: address blocked by rule {rule_id} until {until}"),
            )),
        ),
        FrontendError::Backend(_) => (ConnResult::UpstreamError, None),
        other => (
            ConnResult::ProtocolError,
            info.user.as_ref().map(|_| {
                (
                    Some("08P01".to_string()),
                    format!("protocol violation during authentication: {other}"),
                )
            }),
        ),
    };
    shared.metrics.connection(result);
    match result {
        ConnResult::UpstreamError => {
            tracing::error!(error = %e, "cannot open the server connection")
        }
        _ => tracing::info!(error = %e, "connection refused"),
    }
    let blocked_until = match e {
        FrontendError::Blocked { until, .. } => Some(until.clone()),
        _ => None,
    };
    if let (Some((sqlstate, reason)), Some(_)) = (audit, info.user.as_ref()) {
        audit_failure(shared, info, sqlstate, reason, blocked_until).await;
    }
}

async fn audit_failure(
    shared: &Shared,
    info: SessionInfo,
    sqlstate: Option<String>,
    reason: String,
    blocked_until: Option<String>,
) {
    if blocked_until.is_none() {
        shared.metrics.auth_failures.increment(1);
        shared.sessions.auth_failure(&info);
    }
    shared
        .audit
        .emit(AuditEvent::AuthFailure {
            ts: now_rfc3339(),
            session: Arc::new(info),
            failure: AuthFailure {
                sqlstate,
                reason,
                blocked_until,
            },
        })
        .await;
}

/// Bytes moved in one direction. The shared Prometheus counter is updated every
/// [`METRIC_BATCH`] bytes and at the end, not per batch: every session on every core would
/// otherwise contend on the same atomic for each relayed message.
struct Count<'a> {
    n: u64,
    unreported: u64,
    metric: &'a metrics::Counter,
    /// The session's own count for the admin console (no other session writes it).
    live: &'a std::sync::atomic::AtomicU64,
}

const METRIC_BATCH: u64 = 16 * 1024;

impl Count<'_> {
    fn flush(&mut self) {
        self.metric.increment(self.unreported);
        self.unreported = 0;
    }
}

impl ByteCounter for Count<'_> {
    fn add(&mut self, n: usize) {
        self.n += n as u64;
        self.unreported += n as u64;
        self.live
            .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
        if self.unreported >= METRIC_BATCH {
            self.flush();
        }
    }
}

/// Longest one goodbye write (FATAL, Terminate, TLS close_notify) may take. The peer may
/// have stopped reading; unbounded, such a session would never end: no session_end event,
/// and a shutdown would drop it instead of closing it. A few of these fit well within the
/// listener's close grace period.
const GOODBYE_TIMEOUT: Duration = Duration::from_millis(250);

/// Runs a goodbye write, giving up after [`GOODBYE_TIMEOUT`] (its error is moot: the
/// connection is closing either way).
async fn goodbye<T>(f: impl std::future::Future<Output = T>) {
    let _ = tokio::time::timeout(GOODBYE_TIMEOUT, f).await;
}

/// Relays until one side ends, then closes the other the way PostgreSQL clients expect.
/// Returns bytes from the client and bytes to the client, and who ended the session when
/// the console or a block did. `stop`: the shutdown's forced close, and the session's
/// registry entry (its kill handle and live byte counts).
async fn relay_session(
    shared: &Shared,
    config: &Config,
    client: MaybeTls,
    l: LoggedIn,
    tracker: &Mutex<Tracker>,
    stop: (watch::Receiver<bool>, &Entry),
    span: &tracing::Span,
) -> (u64, u64, Option<String>) {
    let (mut force_close, entry) = stop;
    let mut kill = entry.killed();
    let activity = Activity::new_idle();
    let (mut client, mut server) = (client, l.server);
    let (mut cr, mut cw) = client.halves();
    let (mut sr, mut sw) = server.halves();
    let mut c_scan = relay::scanner();
    let mut s_scan = relay::scanner();
    let mut c_obs = ClientSide {
        activity: &activity,
        tracker,
    };
    let mut s_obs = ServerSide {
        activity: &activity,
        tracker,
    };
    let backlog = Backlog::new(
        tracker,
        config.file.listen.max_pending_messages,
        config.file.listen.max_pending_bytes,
        &shared.metrics.pipeline_pauses,
    );
    let events = Events {
        tracker,
        sink: &shared.audit,
        backpressure: config.file.audit.on_backpressure,
        backlog: &backlog,
    };
    let mut bytes_in = Count {
        n: 0,
        unreported: 0,
        metric: &shared.metrics.bytes_in,
        live: &entry.bytes_in,
    };
    let mut bytes_out = Count {
        n: 0,
        unreported: 0,
        metric: &shared.metrics.bytes_out,
        live: &entry.bytes_out,
    };
    enum End {
        Client(PumpEnd),
        Server(PumpEnd),
        Shutdown,
        Killed(KillReason),
    }
    // What ends the session from outside: shutdown, or KILL (a console command, a block).
    // Polled only when one of its channels woke it, not on every message of the session.
    let stopped = WhenWoken::new(async {
        tokio::select! {
            _ = force_close.wait_for(|&v| v) => End::Shutdown,
            r = kill.wait_for(Option::is_some) => match r {
                Ok(reason) => End::Killed(reason.clone().unwrap_or_else(|| KillReason {
                    message: TERMINATED.to_string(),
                    by: "administrator".to_string(),
                })),
                // The registry entry outlives the relay: not reached.
                Err(_) => End::Shutdown,
            },
        }
    });
    tokio::pin!(stopped);
    // A session where statements may be refused holds the frames that may be replaced.
    let enforcing = tracker.lock().is_ok_and(|t| t.enforcing());
    // Each direction is polled only when its own socket (or wait) woke the task: a reply
    // from the server does not poll the client's side, which has nothing to read.
    let end = if enforcing {
        use crate::enforce::relay::pump;
        tokio::select! {
            biased;
            e = WhenWoken::new(pump(&mut sr, &mut cw, l.server_leftover, &mut s_scan, &mut s_obs, &mut bytes_out, &events)) => End::Server(e),
            e = WhenWoken::new(pump(&mut cr, &mut sw, l.client_leftover, &mut c_scan, &mut c_obs, &mut bytes_in, &backlog)) => End::Client(e),
            e = &mut stopped => e,
        }
    } else {
        tokio::select! {
            biased;
            e = WhenWoken::new(relay::pump(&mut sr, &mut cw, l.server_leftover, &mut s_scan, &mut s_obs, &mut bytes_out, &events)) => End::Server(e),
            e = WhenWoken::new(relay::pump(&mut cr, &mut sw, l.client_leftover, &mut c_scan, &mut c_obs, &mut bytes_in, &backlog)) => End::Client(e),
            e = &mut stopped => e,
        }
    };
    let ended_by = match &end {
        End::Killed(r) => Some(r.by.clone()),
        _ => None,
    };
    bytes_in.flush();
    bytes_out.flush();
    let close = async {
        match end {
            End::Client(PumpEnd::Eof)
            | End::Client(PumpEnd::ReadError(_))
            | End::Server(PumpEnd::WriteError(_)) => {
                if let End::Client(PumpEnd::ReadError(e)) = &end {
                    if !e.is_disconnect() {
                        tracing::warn!(error = %e, "client protocol violation; closing");
                        goodbye(fatal_to_client(
                            &mut cw,
                            "08P01",
                            "invalid frontend message",
                        ))
                        .await;
                    }
                }
                // A client that vanished mid-statement must not leave the statement running.
                if !activity.client_terminated() && !activity.server_idle() {
                    if let Some(key) = &l.cancel_key {
                        tracing::info!("client disconnected mid-statement; cancelling it upstream");
                        shared.cancels.cancel_running(key, &shared.metrics).await;
                    }
                }
                goodbye(sw.shutdown()).await;
            }
            End::Server(PumpEnd::Eof)
            | End::Server(PumpEnd::ReadError(_))
            | End::Client(PumpEnd::WriteError(_)) => {
                if let End::Server(PumpEnd::ReadError(e)) = &end {
                    tracing::warn!(error = %e, "server connection failed");
                }
                // A server that said FATAL before closing has told the client already; an
                // ErrorResponse in the middle of a half-sent frame would only garble it; and
                // after the client's Terminate the server's close is the expected end (a
                // FATAL then reaches clients that keep reading, such as node-postgres, as an
                // error event).
                if s_scan.at_boundary()
                    && s_scan.last_tag() != b'E'
                    && !activity.client_terminated()
                {
                    goodbye(fatal_to_client(
                        &mut cw,
                        "08006",
                        "server closed the connection unexpectedly",
                    ))
                    .await;
                }
            }
            End::Shutdown | End::Killed(_) => {
                let message = match &end {
                    End::Killed(r) => {
                        tracing::warn!(by = %r.by, "session ended from outside");
                        // pg_terminate_backend stops the statement too: a server busy
                        // with it would not notice the closed socket until it writes.
                        if !activity.server_idle() {
                            if let Some(key) = &l.cancel_key {
                                shared.cancels.cancel_running(key, &shared.metrics).await;
                            }
                        }
                        r.message.as_str()
                    }
                    _ => TERMINATED,
                };
                if s_scan.at_boundary() {
                    goodbye(fatal_to_client(&mut cw, "57P01", message)).await;
                }
                if c_scan.at_boundary() {
                    goodbye(sw.write_all(&[b'X', 0, 0, 0, 4])).await;
                }
                goodbye(sw.shutdown()).await;
            }
        }
        goodbye(cw.shutdown()).await;
    };
    // Boxed: allocated only when the session ends, not carried by every idle session.
    Box::pin(close.instrument(span.clone())).await;
    (bytes_in.n, bytes_out.n, ended_by)
}

/// PostgreSQL's words for a session ended by an administrator or a shutdown.
const TERMINATED: &str = "terminating connection due to administrator command";

async fn fatal_to_client<W: AsyncWriteExt + Unpin>(
    w: &mut W,
    code: &str,
    msg: &str,
) -> std::io::Result<()> {
    w.write_all(&error_response(Severity::Fatal, code, msg, None))
        .await?;
    w.flush().await
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
