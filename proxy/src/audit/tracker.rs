//! The statement tracker: follows one session's protocol conversation and turns it into
//! `statement` events, each carrying the server's verdict on that very statement.
//!
//! The client side records what was sent, in order: each simple Query (split into its
//! statements), each extended-protocol message (Parse, Bind, Describe, Execute, Close,
//! Sync) and each FunctionCall. The server answers strictly in that order, so every reply
//! settles the oldest entry still waiting for one:
//! - ParseComplete, BindComplete, CloseComplete, NoData/RowDescription settle Parse, Bind,
//!   Close and Describe.
//! - CommandComplete, EmptyQueryResponse and PortalSuspended settle the current statement
//!   of a Query, or an Execute.
//! - ErrorResponse fails the current statement. In a simple Query the statements after it
//!   never ran (`skipped`); in an extended batch the server ignores everything up to Sync,
//!   so the Executes queued before that Sync are `skipped` too.
//! - ReadyForQuery ends a Query, FunctionCall or Sync.
//!
//! Prepared statements are classified once, at Parse, and remembered by name; portals
//! remember the statement they were bound to (and the parameters, with `log_parameters`).
//! SQL-level PREPARE, DECLARE and their kin change those names when they succeed
//! (`registry.rs`); an EXECUTE or FETCH is logged as what it runs.
//!
//! Noise is decided at completion: a statement that failed is never noise.

use super::fate::{function_call_class, seen_in_part, unseen, Beyond, Extra, Fate, Pending};
use super::messages;
use super::registry::{placeholder, portal_parts, Params, Portal, Registry};
use super::roles::Roles;
use super::shadow::SessionShadow;
use super::statement::{Outcome, StatementEvent};
use super::{now_rfc3339, AuditEvent, SessionInfo};
use crate::detect::rule::On;
use crate::enforce::SessionPolicy;
use crate::metrics::Metrics;
use crate::snapshot::Config;
use crate::sql::{Object, ParsePath, Redact, Statement};
use crate::wire::messages::ErrorFields;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// Query and Parse texts are captured up to this many bytes (or `max_parse_bytes` + 1 if
/// larger): enough to split and log any hand-written statement, bounded for bulk loads.
const CAPTURE_MIN: usize = 1024 * 1024;
/// Names and small fields: Bind without parameters, Execute, Close.
const NAMES_CAPTURE: usize = 4096;
/// ErrorResponse fields worth keeping.
const ERROR_CAPTURE: usize = 4096;

/// Per-session audit state. Shared by both relay directions behind a mutex.
pub struct Tracker {
    config: Arc<Config>,
    metrics: Arc<Metrics>,
    session: Arc<SessionInfo>,
    /// The session's fields as they open every line of the log, written at its first
    /// logged statement (and again after `application_name` changes) instead of once per
    /// statement.
    session_json: Option<Arc<[u8]>>,
    service: bool,
    /// Whether some rule looks at statements: then statements that are not logged
    /// (noise, service accounts) still become events, for the detector only.
    detect_statements: bool,
    capture: usize,
    next_id: u64,
    /// Prepared statements, portals and cursors by name.
    registry: Registry,
    queue: VecDeque<Pending>,
    ready: Vec<AuditEvent>,
    roles: Roles,
    /// The server's `standard_conforming_strings` (ParameterStatus): off changes where
    /// string literals, and so statements, end.
    scs: bool,
    /// Whether a noise verdict resting on an unqualified name holds in this session.
    shadow: SessionShadow,
    /// The body length of the Query frame being read (its head may be all that is seen).
    query_len: usize,
    /// What this session may not run (`enforce`); `None` when nothing is refused.
    policy: Option<SessionPolicy>,
    /// The stand-in for the client frame just seen, when it was refused.
    substitute: Option<Vec<u8>>,
    /// The refusal's ErrorResponse in place of the server frame just seen.
    server_substitute: Option<Vec<u8>>,
    /// Refused Parse/Execute messages whose stand-in's error has not come back yet.
    denials_pending: usize,
    /// What the admin console shows (SHOW SESSIONS): read under the tracker's own lock.
    console: ConsoleView,
}

impl Tracker {
    /// A tracker for a session that has just logged in.
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>, session: Arc<SessionInfo>) -> Tracker {
        let service = session
            .user
            .as_deref()
            .is_some_and(|u| config.is_service_account(u));
        // One byte past the parse limit: a statement cut by the capture is then longer
        // than max_parse_bytes, so the classifier knows it sees only a prefix.
        let capture = config
            .file
            .audit
            .max_parse_bytes
            .saturating_add(1)
            .max(CAPTURE_MIN);
        let detect_statements = config
            .rules
            .iter()
            .any(|r| matches!(r.on, On::Statement | On::Error));
        Tracker {
            session_json: None,
            config,
            metrics,
            session,
            service,
            detect_statements,
            capture,
            next_id: 1,
            registry: Registry::default(),
            queue: VecDeque::new(),
            ready: Vec::new(),
            roles: Roles::default(),
            scs: true,
            shadow: SessionShadow::unknown(),
            query_len: 0,
            policy: None,
            substitute: None,
            server_substitute: None,
            denials_pending: 0,
            console: ConsoleView::default(),
        }
    }

    /// The session's activity for the admin console.
    pub fn console_view(&self) -> ConsoleView {
        let mut v = self.console.clone();
        v.busy = !self.queue.is_empty();
        v.application_name = self.session.application_name.clone();
        v
    }

    /// The server's `standard_conforming_strings` as reported at login.
    pub fn set_standard_conforming_strings(&mut self, on: bool) {
        self.scs = on;
    }

    /// What the login's catalog check found (until then no unqualified name is trusted).
    pub fn set_shadow(&mut self, shadow: SessionShadow) {
        self.shadow = shadow;
    }

    /// Events completed since the last call.
    pub fn take_events(&mut self) -> Vec<AuditEvent> {
        std::mem::take(&mut self.ready)
    }

    /// How many body bytes of a client frame the tracker needs.
    pub fn client_wants(&mut self, tag: u8, len: usize) -> usize {
        let want = match tag {
            b'Q' => {
                self.query_len = len;
                self.capture
            }
            b'P' => self.capture,
            b'B' if self.config.file.audit.log_parameters => self.capture,
            b'B' | b'E' | b'C' => NAMES_CAPTURE,
            b'F' => 4,
            b'D' => {
                self.push(Pending::Describe);
                0
            }
            b'S' => {
                self.push(Pending::Sync);
                0
            }
            _ => 0,
        };
        if want > 0 && len == 0 {
            // No body to look at (malformed): the server will answer with an error, which
            // must land on an entry of its own.
            self.client_frame(tag, &[]);
            return 0;
        }
        want
    }

    /// A client frame's head, as asked for by [`Tracker::client_wants`]. Client frames
    /// only queue work; events complete on server replies.
    pub fn client_frame(&mut self, tag: u8, body: &[u8]) {
        match tag {
            b'Q' => self.on_query(body),
            b'P' => self.on_parse(body),
            b'B' => self.on_bind(body),
            b'E' => self.on_execute(body),
            b'C' => {
                let (kind, name) = messages::close(body);
                match kind {
                    b'S' => self.registry.deallocate(Some(&name)),
                    b'P' => self.registry.close_portal(&name),
                    _ => {}
                }
                self.push(Pending::Close);
            }
            b'F' => {
                if self.deny_function_call(body) {
                    return;
                }
                let id = self.take_id();
                self.push(Pending::Function {
                    id,
                    oid: messages::function_call(body),
                    started: Instant::now(),
                });
            }
            _ => {}
        }
    }

    /// How many body bytes of a server frame the tracker needs.
    pub fn server_wants(&mut self, tag: u8, len: usize) -> usize {
        match tag {
            b'C' => 64,
            b'E' => ERROR_CAPTURE,
            b'Z' => 1,
            b'1' => self.settle(|p| matches!(p, Pending::Parse(_))),
            b'2' => self.settle(|p| matches!(p, Pending::Bind)),
            b'3' => self.settle(|p| matches!(p, Pending::Close)),
            b'n' => self.settle(|p| matches!(p, Pending::Describe)),
            // RowDescription answers Describe, or starts a simple query's result.
            b'T' => self.settle(|p| matches!(p, Pending::Describe)),
            b'I' => {
                self.complete(None, true);
                0
            }
            b's' | b'V' => {
                self.complete(None, false);
                0
            }
            // ParameterStatus: application_name may change after login.
            b'S' => 256,
            _ => 0,
        }
        .min(len.max(1))
    }

    /// A server frame's head.
    pub fn server_frame(&mut self, tag: u8, body: &[u8]) {
        match tag {
            b'C' => self.complete(Some(body), false),
            b'S' => {
                let mut r = messages::Reader::new(body);
                match r.cstr() {
                    b"application_name" => self.set_application_name(messages::text(r.cstr())),
                    b"standard_conforming_strings" => self.scs = r.cstr() != b"off",
                    _ => {}
                }
            }
            b'E' => self.on_error(ErrorFields::parse(body)),
            b'Z' => self.on_ready(body.first().copied().unwrap_or(b'I')),
            _ => {}
        }
    }

    fn take_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id = self.next_id.saturating_add(1);
        id
    }

    fn push(&mut self, p: Pending) {
        self.queue.push_back(p);
    }

    /// What the client has sent that still waits for the server's reply: the messages,
    /// and an estimate of the memory they hold here (statement texts included). The relay
    /// stops reading a client whose backlog is over its limits.
    pub fn backlog(&self) -> (usize, usize) {
        let bytes = self.queue.iter().map(Pending::cost).sum();
        (self.queue.len(), bytes)
    }

    /// Pops the front entry if `is` it; returns 0 (no body wanted).
    fn settle(&mut self, is: impl Fn(&Pending) -> bool) -> usize {
        if self.queue.front().is_some_and(is) {
            self.queue.pop_front();
        }
        0
    }

    fn on_query(&mut self, body: &[u8]) {
        let truncated = body.last() != Some(&0);
        let text = body.split(|&b| b == 0).next().unwrap_or_default();
        // Valid UTF-8 (nearly always) is checked by the fast validator, not the lossy one.
        let sql = match std::str::from_utf8(text) {
            Ok(s) => std::borrow::Cow::Borrowed(s),
            Err(_) => String::from_utf8_lossy(text),
        };
        let mut pieces = self.config.classifier.classify_query_with(&sql, self.scs);
        if let Some(d) = self.refusal(&pieces, truncated) {
            if truncated {
                if let Some(last) = pieces.pop() {
                    pieces.push(seen_in_part(last));
                }
            }
            return self.deny_query(pieces, d);
        }
        for p in &pieces {
            self.count_classified(p);
            self.shadow.sent(p);
        }
        let mut beyond = Box::<Beyond>::default();
        if truncated {
            if let Some(last) = pieces.pop() {
                pieces.push(seen_in_part(last));
            }
            // The text's bytes: the rest of the frame but its NUL terminator.
            beyond.bytes = self.query_len.saturating_sub(body.len() + 1) as u64;
            beyond.captured_bytes = body.len() as u64;
            beyond.captured_statements = pieces.len() as u64;
        }
        let started = Instant::now();
        self.console.current = pieces.first().map(|p| (p.class.clone(), started));
        let id = self.take_id();
        self.push(Pending::Query {
            id,
            pieces,
            done: 0,
            truncated,
            started,
            beyond,
        });
    }

    fn count_classified(&self, s: &Statement) {
        if s.cache_hit {
            self.metrics.classify_cache_hits.increment(1);
        } else {
            self.metrics.classify_cache_misses.increment(1);
            if s.class.parse == ParsePath::Tokens {
                self.metrics.parse_fallback.increment(1);
            }
        }
    }

    fn on_parse(&mut self, body: &[u8]) {
        let (name, sql) = messages::parse(body);
        let mut prepared = self
            .config
            .classifier
            .classify_statement_with(sql.trim(), self.scs);
        self.count_classified(&prepared);
        // The name and the text each end with a NUL: without the second, the capture cut
        // the text.
        let truncated = body.iter().filter(|&&b| b == 0).count() < 2;
        if truncated {
            prepared = seen_in_part(prepared);
        }
        if let Some(d) = self.refusal(std::slice::from_ref(&prepared), truncated) {
            // The server never learns of this statement: the registry keeps what it had.
            return self.deny_extended(prepared, None, d);
        }
        let prepared = Arc::new(prepared);
        self.registry.parse(name, prepared.clone());
        self.push(Pending::Parse(prepared));
    }

    fn on_bind(&mut self, body: &[u8]) {
        let audit = &self.config.file.audit;
        let max = audit
            .log_parameters
            .then_some(audit.log_parameter_max_bytes);
        let (portal, statement, params) = messages::bind(body, max);
        let params = params.map(|p| Arc::from(self.redact_params(&statement, p)));
        self.registry.bind(portal, &statement, params);
        self.push(Pending::Bind);
    }

    fn on_execute(&mut self, body: &[u8]) {
        let (name, max_rows) = messages::execute(body);
        if let Some(d) = self.refused_now() {
            let portal = self.registry.portal(&name);
            let (_, st, params) = self.executed(portal, &name);
            return self.deny_extended(st, params, d);
        }
        let portal = self.registry.portal(&name);
        let started = Instant::now();
        if let Some(st) = portal.as_ref().and_then(|p| p.prepared()) {
            self.shadow.sent(&st);
            self.console.current = Some((st.class.clone(), started));
        }
        let id = self.take_id();
        self.push(Pending::Execute {
            id,
            portal,
            name,
            started,
            max_rows,
        });
    }

    /// Drops entries whose replies were not seen (a Describe of a statement answered with
    /// ParameterDescription + RowDescription, a reply the proxy does not look at) until
    /// one that a command reply can settle.
    fn skip_to_command(&mut self) {
        while let Some(p) = self.queue.front() {
            match p {
                Pending::Parse(_) | Pending::Bind | Pending::Describe | Pending::Close => {
                    self.queue.pop_front();
                }
                _ => break,
            }
        }
    }

    /// Takes the next statement of the simple Query at the front of the queue: its query
    /// id, position (from 1), statement and start time. `belongs(pieces, settled,
    /// truncated)` decides whether the reply at hand settles a statement at all.
    fn next_piece(
        &mut self,
        belongs: impl Fn(usize, usize, bool) -> bool,
    ) -> Option<(u64, usize, Statement, Instant)> {
        let Some(Pending::Query {
            id,
            pieces,
            done,
            truncated,
            started,
            ..
        }) = self.queue.front_mut()
        else {
            return None;
        };
        if !belongs(pieces.len(), *done, *truncated) {
            return None;
        }
        let st = pieces.get(*done).cloned().unwrap_or_else(unseen);
        *done += 1;
        Some((*id, *done, st, *started))
    }

    /// CommandComplete (`tag`), EmptyQueryResponse (`empty`), PortalSuspended or
    /// FunctionCallResponse (`None`).
    fn complete(&mut self, tag: Option<&[u8]>, empty: bool) {
        self.skip_to_command();
        let rows = tag.and_then(messages::rows);
        if let Some(b) = self.beyond_reply() {
            b.rows = b.rows.saturating_add(rows.unwrap_or(0));
            return;
        }
        let tag_word = tag.and_then(|t| t.split(|&b| b == 0 || b == b' ').next());
        match self.queue.front() {
            Some(Pending::Query { .. }) => {
                // A query of only whitespace and comments answers EmptyQueryResponse:
                // nothing ran.
                let Some((id, n, st, started)) = self.next_piece(|len, _, _| !(empty && len == 0))
                else {
                    return;
                };
                self.roles
                    .completed(tag_word, &st.class, self.session.user.as_deref());
                let fate = Fate::ok(rows, started);
                self.finish(id, n, st, "simple", None, fate);
            }
            Some(Pending::Execute { .. }) => {
                if let Some(Pending::Execute {
                    id,
                    portal,
                    name,
                    started,
                    max_rows,
                }) = self.queue.pop_front()
                {
                    let (portal, st, params) = self.executed(portal, &name);
                    self.roles
                        .completed(tag_word, &st.class, self.session.user.as_deref());
                    // No tag and not empty: PortalSuspended, after exactly max_rows rows.
                    let suspended = tag.is_none() && !empty;
                    let rows = if suspended {
                        Some(u64::from(max_rows))
                    } else {
                        rows
                    };
                    let mut fate = Fate::ok(rows, started);
                    fate.batch = portal
                        .as_deref()
                        .and_then(|p| p.batch(rows.unwrap_or(0), suspended));
                    self.finish(id, 1, st, "extended", params, fate);
                }
            }
            Some(Pending::Function { .. }) => {
                if let Some(Pending::Function { id, oid, started }) = self.queue.pop_front() {
                    self.finish_function(id, oid, Fate::ok(None, started));
                }
            }
            _ => {}
        }
    }

    fn on_error(&mut self, e: ErrorFields) {
        let fate = |started: Instant| Fate {
            outcome: Outcome::Error,
            sqlstate: e.sqlstate.clone(),
            error: Some(e.message.clone()),
            rows: None,
            started: Some(started),
            batch: None,
            denied_by: None,
        };
        if let Some(b) = self.beyond_reply() {
            b.error = Some((e.sqlstate.clone(), e.message.clone()));
            return;
        }
        match self.queue.front_mut() {
            Some(Pending::Query { beyond, .. }) => {
                beyond.never_ran = true;
                // An error after the last statement (a failed implicit COMMIT) belongs to
                // no statement of its own.
                let Some((id, n, st, started)) =
                    self.next_piece(|len, done, truncated| done < len || truncated || done == 0)
                else {
                    return;
                };
                self.finish(id, n, st, "simple", None, fate(started));
                // The rest of the string never ran; ReadyForQuery logs it as skipped.
            }
            Some(Pending::Function { .. }) => {
                if let Some(Pending::Function { id, oid, started }) = self.queue.pop_front() {
                    self.finish_function(id, oid, fate(started));
                }
            }
            Some(Pending::Sync) | None => {}
            // The stand-in of a refused Query or FunctionCall failed as meant;
            // ReadyForQuery follows.
            Some(Pending::Denied { simple: true, .. }) => {}
            Some(Pending::Denied { simple: false, .. }) => {
                if let Some(Pending::Denied { denial, .. }) = self.queue.pop_front() {
                    self.denials_pending = self.denials_pending.saturating_sub(1);
                    if crate::enforce::substitute::is_stand_in_error(
                        e.sqlstate.as_deref(),
                        &e.message,
                    ) {
                        self.server_substitute = Some(crate::enforce::substitute::error(&denial));
                    }
                }
                // The server skips to Sync: what was queued after it never runs.
                self.fail_batch(Fate::skipped());
            }
            Some(_) => self.fail_batch(fate(Instant::now())),
        }
    }

    /// An error in an extended-protocol batch: the server skips everything up to Sync.
    /// The error is the attempt of the first Execute among the skipped messages (its Parse
    /// or Bind is what failed, or the Execute itself); later Executes never ran. A failed
    /// Parse with no Execute after it (a driver's prepare step) gets an event of its own.
    fn fail_batch(&mut self, error: Fate) {
        let mut error = Some(error);
        let mut failed_parse = None;
        while let Some(p) = self.queue.front() {
            if matches!(
                p,
                Pending::Sync
                    | Pending::Query { .. }
                    | Pending::Function { .. }
                    | Pending::Denied { simple: true, .. }
            ) {
                break;
            }
            let Some(p) = self.queue.pop_front() else {
                break;
            };
            match p {
                // Its stand-in is skipped too; its event is out already.
                Pending::Denied { .. } => {
                    self.denials_pending = self.denials_pending.saturating_sub(1);
                }
                Pending::Execute {
                    id,
                    portal,
                    name,
                    started,
                    ..
                } => {
                    let (_, st, params) = self.executed(portal, &name);
                    let fate = match error.take() {
                        Some(mut f) => {
                            f.started = Some(started);
                            f
                        }
                        None => Fate::skipped(),
                    };
                    self.finish(id, 1, st, "extended", params, fate);
                }
                Pending::Parse(prepared) if error.is_some() && failed_parse.is_none() => {
                    failed_parse = Some(prepared);
                }
                _ => {}
            }
        }
        if let (Some(fate), Some(p)) = (error, failed_parse) {
            let id = self.take_id();
            self.finish(id, 1, (*p).clone(), "extended", None, fate);
        }
    }

    /// The portal an Execute ran, with its statement and parameters.
    fn executed(
        &self,
        portal: Option<Arc<Portal>>,
        name: &str,
    ) -> (Option<Arc<Portal>>, Statement, Params) {
        let portal = self.registry.executed(portal, name);
        let (st, params) = portal_parts(portal.as_deref());
        (portal, st, params)
    }

    fn finish_function(&mut self, id: u64, oid: Option<u32>, fate: Fate) {
        let text = match oid {
            Some(oid) => format!("<FunctionCall oid {oid}>"),
            None => "<FunctionCall>".to_string(),
        };
        let extra = oid
            .map(|oid| Object {
                kind: "FUNCTION".to_string(),
                name: oid.to_string(),
            })
            .into_iter()
            .collect();
        let st = placeholder(&text, function_call_class());
        let extra = Extra {
            objects: extra,
            ..Extra::default()
        };
        self.emit(id, 1, st, extra, "function_call", None, fate);
    }

    fn finish(
        &mut self,
        id: u64,
        sub: usize,
        st: Statement,
        protocol: &'static str,
        params: Option<Arc<[String]>>,
        mut fate: Fate,
    ) {
        if matches!(fate.outcome, Outcome::Ok | Outcome::Error) {
            self.shadow.settled(&st, fate.outcome == Outcome::Ok);
        }
        let r = self
            .registry
            .resolve(st, fate.outcome == Outcome::Ok, fate.rows);
        if r.batch.is_some() {
            fate.batch = r.batch;
        }
        let extra = Extra {
            prepared_statement: r.prepared_statement,
            cursor_query: r.cursor_query,
            ..Extra::default()
        };
        self.emit(id, sub, r.statement, extra, protocol, params, fate);
    }

    #[allow(clippy::too_many_arguments)]
    fn emit(
        &mut self,
        id: u64,
        sub: usize,
        st: Statement,
        extra: Extra,
        protocol: &'static str,
        params: Option<Arc<[String]>>,
        fate: Fate,
    ) {
        // The noise verdict is withdrawn where an unqualified name cannot be trusted, and
        // for a statement that failed: tools' catalog queries do not fail; a failure is a
        // human's, and worth a line.
        self.console.statements = self.console.statements.saturating_add(1);
        let class = self.shadow.judge(st.class);
        if let Some(n) = self.console.by_class.get_mut(class.class as usize) {
            *n = n.saturating_add(1);
        }
        if fate.outcome == Outcome::Error {
            self.console.errors = self.console.errors.saturating_add(1);
            if fate.sqlstate.as_deref() == Some("42501") {
                self.console.denied = self.console.denied.saturating_add(1);
            }
        }
        if fate.outcome == Outcome::Denied {
            self.console.denied = self.console.denied.saturating_add(1);
        }
        let noise = class.noise && matches!(fate.outcome, Outcome::Ok | Outcome::Skipped);
        self.metrics.statement(class.class, self.service, noise);
        let took = fate.started.map(|s| s.elapsed());
        if let Some(took) = took {
            self.metrics.statement_duration(class.class, took);
        }
        let audit = &self.config.file.audit;
        // A refusal is always worth a line.
        let logged = fate.outcome == Outcome::Denied
            || ((audit.log_service_accounts || !self.service) && (audit.log_noise || !noise));
        if !logged && !self.detect_statements {
            return;
        }
        // The server's message may quote what redaction removed from the text.
        let error = match fate.error {
            Some(m) if audit.redact == Redact::Literals || st.redacted => {
                Some(messages::scrub_message(&m))
            }
            other => other,
        };
        let duration_ms = took.map(|t| (t.as_micros() as f64) / 1000.0);
        let event = StatementEvent {
            statement_id: id,
            substatement_id: u32::try_from(sub).unwrap_or(u32::MAX),
            class,
            extra_objects: extra.objects,
            statement: st.text,
            prepared_statement: extra.prepared_statement,
            cursor_query: extra.cursor_query,
            uncaptured: extra.uncaptured,
            noise,
            protocol,
            service: self.service,
            logged,
            role: self.roles.effective(),
            outcome: fate.outcome,
            sqlstate: fate.sqlstate,
            error,
            rows: fate.rows,
            rows_total: fate.batch.map(|(_, total)| total),
            rows_before: fate.batch.map_or(0, |(before, _)| before),
            duration_ms,
            parameters: params,
            denied_by: fate.denied_by,
            session_json: if logged {
                let session = &self.session;
                Some(
                    self.session_json
                        .get_or_insert_with(|| session.json_fields())
                        .clone(),
                )
            } else {
                None
            },
        };
        self.ready.push(AuditEvent::Statement {
            // Only the log prints `ts`: a statement kept for the detector alone skips the
            // formatting.
            ts: if logged { now_rfc3339() } else { String::new() },
            session: self.session.clone(),
            statement: Box::new(event),
        });
    }

    /// Updates `application_name` from the server's ParameterStatus (drivers such as JDBC
    /// set it with SET after the login).
    pub fn set_application_name(&mut self, name: String) {
        if self.session.application_name.as_deref() != Some(name.as_str()) {
            let mut s = (*self.session).clone();
            s.application_name = Some(name);
            self.session = Arc::new(s);
            self.session_json = None;
        }
    }
}

#[path = "tracker_end.rs"]
mod end;

#[path = "tracker_capture.rs"]
mod capture;
pub use capture::ConsoleView;

#[path = "tracker_enforce.rs"]
mod enforce;

#[cfg(test)]
#[path = "tracker_tests.rs"]
mod tests;
