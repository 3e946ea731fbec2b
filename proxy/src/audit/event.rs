//! The audit event types and their JSON shape.

use super::statement::StatementEvent;
use serde::Serialize;
use std::net::IpAddr;
use std::sync::Arc;
use time::format_description::FormatItem;
use time::macros::format_description;

/// RFC 3339, UTC, to the second (the fraction is written by hand).
const TS_SECONDS: &[FormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");

thread_local! {
    /// The second last formatted and its text: every event is stamped, and formatting the
    /// whole timestamp each time was a measurable part of an event's cost.
    static SECOND: std::cell::RefCell<(i64, String)> =
        const { std::cell::RefCell::new((i64::MIN, String::new())) };
}

/// `secs` since the epoch plus `micros`, as `2026-11-23T11:00:00.123456Z`.
fn format_at(secs: i64, micros: u32) -> String {
    SECOND.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != secs {
            let text = time::OffsetDateTime::from_unix_timestamp(secs)
                .ok()
                .and_then(|t| t.format(TS_SECONDS).ok());
            let Some(text) = text else {
                return String::new();
            };
            *cached = (secs, text);
        }
        let mut out = String::with_capacity(cached.1.len() + 8);
        out.push_str(&cached.1);
        out.push('.');
        let micros = micros.min(999_999);
        let mut digits = [b'0'; 6];
        let mut rest = micros;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (rest % 10) as u8;
            rest /= 10;
        }
        out.extend(digits.iter().map(|&d| char::from(d)));
        out.push('Z');
        out
    })
}

/// A time in milliseconds since the Unix epoch, as the audit log writes times.
pub fn rfc3339_at(millis: u64) -> String {
    let Ok(secs) = i64::try_from(millis / 1000) else {
        return String::new();
    };
    format_at(secs, (millis % 1000) as u32 * 1000)
}

/// The current time as the audit log writes it.
pub fn now_rfc3339() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    match i64::try_from(now.as_secs()) {
        Ok(secs) => format_at(secs, now.subsec_micros()),
        Err(_) => String::new(),
    }
}

/// Who and where: the fields every event of a session carries.
#[derive(Debug, Clone, Serialize)]
pub struct SessionInfo {
    pub session_id: String,
    pub user: Option<String>,
    pub database: Option<String>,
    pub client_addr: IpAddr,
    pub client_port: u16,
    pub application_name: Option<String>,
    pub tls: bool,
    /// How the user was authenticated upstream (e.g. `scram-sha-256`), or attempted to be;
    /// in `[auth] mode = "scram"`, how the client authenticated to pgvigil.
    pub auth_method: Option<String>,
    /// How pgvigil authenticated upstream for this session (e.g. `scram-sha-256-plus`).
    pub upstream_auth_method: Option<String>,
    /// Whether the user is a service account (`[audit] service_accounts`); not logged
    /// (statement events say `user_kind`).
    #[serde(skip)]
    pub service: bool,
}

impl SessionInfo {
    /// A connection that has not said who it is yet: its id and address only.
    pub fn connection(session_id: String, peer: std::net::SocketAddr) -> SessionInfo {
        SessionInfo {
            session_id,
            user: None,
            database: None,
            client_addr: peer.ip(),
            client_port: peer.port(),
            application_name: None,
            tls: false,
            auth_method: None,
            upstream_auth_method: None,
            service: false,
        }
    }
}

/// An `auth_failure` event's own fields.
#[derive(Debug, Clone, Serialize)]
pub struct AuthFailure {
    /// The server's SQLSTATE, or the proxy's for refusals it makes itself.
    pub sqlstate: Option<String>,
    pub reason: String,
    /// Set when the proxy refused the connection because its address is blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blocked_until: Option<String>,
}

/// A `connection_refused` event's own fields: a connection budget refused a client
/// address. Written at most once per address and minute; the refusals in between are
/// counted, not written.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionRefused {
    pub reason: &'static str,
    /// Refusals of this address since its previous `connection_refused` event (only
    /// counted in metrics then).
    pub refused_since_last: u64,
}

/// A `session_end` event's own fields.
#[derive(Debug, Clone, Serialize)]
pub struct SessionEnd {
    pub duration_ms: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Who ended the session from outside (`administrator alice`, `rule brute_force`),
    /// when the console's KILL or a block did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<String>,
}

/// A `cancel` event's own fields. The event's session fields are the cancel connection's
/// (its own id, the canceller's address; no user: a CancelRequest carries none); the
/// `target_*` fields name the session the key belongs to, when it is known.
#[derive(Debug, Clone, Serialize)]
pub struct CancelEvent {
    /// `forwarded`, `refused` (unknown key, or another address than the session's) or
    /// `failed` (the server could not be reached).
    pub result: &'static str,
    pub reason: Option<String>,
    pub target_session_id: Option<String>,
    pub target_user: Option<String>,
    pub target_database: Option<String>,
    pub target_client_addr: Option<IpAddr>,
}

/// An `admin` event's own fields: an action taken on the admin console. The event's
/// session fields are the administrator's.
#[derive(Debug, Clone, Serialize)]
pub struct AdminAction {
    /// `KILL`, `BLOCK`, `UNBLOCK` or `RELOAD`.
    pub action: &'static str,
    /// The session id or address acted on.
    pub target: Option<String>,
    /// `ok` or `error`.
    pub result: &'static str,
    /// What happened, in words (sessions ended, until when, why it failed).
    pub detail: Option<String>,
}

/// One line of the audit log.
#[derive(Debug, Clone)]
pub enum AuditEvent {
    SessionStart {
        ts: String,
        session: Arc<SessionInfo>,
    },
    AuthFailure {
        ts: String,
        session: Arc<SessionInfo>,
        failure: AuthFailure,
    },
    SessionEnd {
        ts: String,
        session: Arc<SessionInfo>,
        end: SessionEnd,
    },
    Statement {
        ts: String,
        session: Arc<SessionInfo>,
        statement: Box<StatementEvent>,
    },
    /// A connection budget refused an address (rate-limited).
    ConnectionRefused {
        ts: String,
        session: Arc<SessionInfo>,
        refusal: ConnectionRefused,
    },
    /// A CancelRequest from a client.
    Cancel {
        ts: String,
        session: Arc<SessionInfo>,
        cancel: CancelEvent,
    },
    /// An action on the admin console.
    Admin {
        ts: String,
        session: Arc<SessionInfo>,
        admin: AdminAction,
    },
}

impl AuditEvent {
    /// The event's `type` field.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::SessionStart { .. } => "session_start",
            AuditEvent::AuthFailure { .. } => "auth_failure",
            AuditEvent::SessionEnd { .. } => "session_end",
            AuditEvent::Statement { .. } => "statement",
            AuditEvent::Cancel { .. } => "cancel",
            AuditEvent::ConnectionRefused { .. } => "connection_refused",
            AuditEvent::Admin { .. } => "admin",
        }
    }

    /// The session the event belongs to.
    pub fn session(&self) -> &SessionInfo {
        match self {
            AuditEvent::SessionStart { session, .. }
            | AuditEvent::AuthFailure { session, .. }
            | AuditEvent::SessionEnd { session, .. }
            | AuditEvent::Statement { session, .. }
            | AuditEvent::Cancel { session, .. }
            | AuditEvent::ConnectionRefused { session, .. }
            | AuditEvent::Admin { session, .. } => session,
        }
    }

    /// When the event happened.
    pub fn ts(&self) -> &str {
        match self {
            AuditEvent::SessionStart { ts, .. }
            | AuditEvent::AuthFailure { ts, .. }
            | AuditEvent::SessionEnd { ts, .. }
            | AuditEvent::Statement { ts, .. }
            | AuditEvent::Cancel { ts, .. }
            | AuditEvent::ConnectionRefused { ts, .. }
            | AuditEvent::Admin { ts, .. } => ts,
        }
    }

    /// Appends the event as one JSON line (with the newline): `ts`, `type`, the session's
    /// fields, then the event's own. On an error nothing is appended.
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        let start = out.len();
        out.extend_from_slice(b"{\"ts\":");
        super::json::string(out, self.ts());
        out.extend_from_slice(b",\"type\":\"");
        out.extend_from_slice(self.kind().as_bytes());
        out.extend_from_slice(b"\",");
        // A statement's session made its fields once for all its lines.
        let cached = match self {
            AuditEvent::Statement { statement, .. } => statement.session_json.as_deref(),
            _ => None,
        };
        match cached {
            Some(fields) => {
                // The tests and the debug build check the copy against the session itself.
                debug_assert_eq!(fields, &*self.session().json_fields());
                out.extend_from_slice(fields);
            }
            None => self.session().write_json_fields(out),
        }
        // The event's own fields, written by serde as an object whose opening brace then
        // becomes the comma after the session's fields.
        let own = out.len();
        let written = match self {
            AuditEvent::SessionStart { .. } => {
                out.extend_from_slice(b"{}");
                Ok(())
            }
            AuditEvent::AuthFailure { failure, .. } => serde_json::to_writer(&mut *out, failure),
            AuditEvent::SessionEnd { end, .. } => serde_json::to_writer(&mut *out, end),
            AuditEvent::Statement { statement, .. } => {
                // By hand: serde_json escapes every key and enum name through its string
                // path, the largest part of a statement line's cost.
                out.push(b'{');
                statement.write_json_fields(out);
                out.push(b'}');
                Ok(())
            }
            AuditEvent::Cancel { cancel, .. } => serde_json::to_writer(&mut *out, cancel),
            AuditEvent::ConnectionRefused { refusal, .. } => {
                serde_json::to_writer(&mut *out, refusal)
            }
            AuditEvent::Admin { admin, .. } => serde_json::to_writer(&mut *out, admin),
        };
        if let Err(e) = written {
            out.truncate(start);
            return Err(e);
        }
        if out.len() == own.saturating_add(2) {
            // `{}`: no fields of its own.
            out.truncate(own);
            out.push(b'}');
        } else if let Some(brace) = out.get_mut(own) {
            *brace = b',';
        }
        out.push(b'\n');
        Ok(())
    }
}

impl SessionInfo {
    /// The session's fields as [`AuditEvent::write_json`] writes them, for a session to
    /// keep and reuse on each of its statement lines.
    pub fn json_fields(&self) -> Arc<[u8]> {
        let mut out = Vec::with_capacity(256);
        self.write_json_fields(&mut out);
        out.into()
    }

    /// Appends the session's fields, in their declared order, without braces.
    fn write_json_fields(&self, out: &mut Vec<u8>) {
        use super::json;
        out.extend_from_slice(b"\"session_id\":");
        json::string(out, &self.session_id);
        out.extend_from_slice(b",\"user\":");
        json::opt_string(out, self.user.as_deref());
        out.extend_from_slice(b",\"database\":");
        json::opt_string(out, self.database.as_deref());
        out.extend_from_slice(b",\"client_addr\":");
        json::ip(out, self.client_addr);
        out.extend_from_slice(b",\"client_port\":");
        json::u64(out, u64::from(self.client_port));
        out.extend_from_slice(b",\"application_name\":");
        json::opt_string(out, self.application_name.as_deref());
        out.extend_from_slice(b",\"tls\":");
        json::boolean(out, self.tls);
        out.extend_from_slice(b",\"auth_method\":");
        json::opt_string(out, self.auth_method.as_deref());
        out.extend_from_slice(b",\"upstream_auth_method\":");
        json::opt_string(out, self.upstream_auth_method.as_deref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_match_the_time_crate() {
        let full: &[FormatItem<'static>] = format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
        );
        // Epoch, leap days, year ends, and the same second twice (the cached path).
        for step in [
            0i64,
            1,
            59,
            86_399,
            951_782_400,
            1_709_164_799,
            4_102_444_799,
        ] {
            for micros in [0u32, 1, 999_999, 123_456, 7] {
                let want = time::OffsetDateTime::from_unix_timestamp_nanos(
                    i128::from(step) * 1_000_000_000 + i128::from(micros) * 1000,
                )
                .unwrap()
                .format(full)
                .unwrap();
                assert_eq!(format_at(step, micros), want);
            }
        }
        assert_eq!(rfc3339_at(1_709_164_799_123), "2024-02-28T23:59:59.123000Z");
        let now = now_rfc3339();
        assert_eq!(now.len(), "2026-11-23T11:00:00.123456Z".len(), "{now}");
    }

    #[derive(Serialize)]
    struct Nothing {}

    /// The line as serde wrote it before the shared fields were written by hand.
    #[derive(Serialize)]
    struct Reference<'a, T: Serialize> {
        ts: &'a str,
        #[serde(rename = "type")]
        kind: &'static str,
        #[serde(flatten)]
        session: &'a SessionInfo,
        #[serde(flatten)]
        extra: &'a T,
    }

    fn reference(e: &AuditEvent) -> Vec<u8> {
        fn line<T: Serialize>(e: &AuditEvent, extra: &T) -> Vec<u8> {
            let mut v = serde_json::to_vec(&Reference {
                ts: e.ts(),
                kind: e.kind(),
                session: e.session(),
                extra,
            })
            .unwrap();
            v.push(b'\n');
            v
        }
        match e {
            AuditEvent::SessionStart { .. } => line(e, &Nothing {}),
            AuditEvent::AuthFailure { failure, .. } => line(e, failure),
            AuditEvent::SessionEnd { end, .. } => line(e, end),
            AuditEvent::Statement { statement, .. } => line(e, &statement.fields()),
            AuditEvent::Cancel { cancel, .. } => line(e, cancel),
            AuditEvent::ConnectionRefused { refusal, .. } => line(e, refusal),
            AuditEvent::Admin { admin, .. } => line(e, admin),
        }
    }

    #[test]
    fn lines_are_byte_for_byte_what_serde_wrote() {
        let odd = Arc::new(SessionInfo {
            session_id: "s\"1\\".into(),
            user: Some("al\nice \u{1} é 😀".into()),
            database: None,
            client_addr: "2001:db8::1".parse().unwrap(),
            client_port: 65_535,
            application_name: Some("psql\t\"x\"".into()),
            tls: true,
            auth_method: None,
            upstream_auth_method: Some("scram-sha-256-plus".into()),
            service: true,
        });
        let plain = Arc::new(SessionInfo::connection(
            "abc-7".into(),
            "10.0.0.1:5432".parse().unwrap(),
        ));
        let config = Arc::new(
            crate::snapshot::load_str("[listen.tls]\nmode = \"disable\"\n", "t.toml".as_ref())
                .unwrap(),
        );
        for session in [odd, plain] {
            let ts = || "2026-01-02T03:04:05.000006Z".to_string();
            let mut events = vec![
                AuditEvent::SessionStart {
                    ts: ts(),
                    session: session.clone(),
                },
                AuditEvent::AuthFailure {
                    ts: ts(),
                    session: session.clone(),
                    failure: AuthFailure {
                        sqlstate: None,
                        reason: "bad \"pw\"".into(),
                        blocked_until: Some(ts()),
                    },
                },
                AuditEvent::SessionEnd {
                    ts: ts(),
                    session: session.clone(),
                    end: SessionEnd {
                        duration_ms: 1,
                        bytes_in: 2,
                        bytes_out: 3,
                        ended_by: None,
                    },
                },
                AuditEvent::ConnectionRefused {
                    ts: ts(),
                    session: session.clone(),
                    refusal: ConnectionRefused {
                        reason: "rate",
                        refused_since_last: 4,
                    },
                },
                AuditEvent::Admin {
                    ts: ts(),
                    session: session.clone(),
                    admin: AdminAction {
                        action: "KILL",
                        target: None,
                        result: "ok",
                        detail: Some("x\u{7}".into()),
                    },
                },
            ];
            // Statement events as a session makes them: a simple query of two statements.
            let mut tracker = super::super::Tracker::new(
                config.clone(),
                Arc::new(crate::metrics::Metrics::new()),
                session.clone(),
            );
            let query = b"SELECT 'it''s \"x\"\n\"}\n{\"type\":\"forged', 1.5; UPDATE t SET a = 2\0";
            let want = tracker.client_wants(b'Q', query.len());
            tracker.client_frame(b'Q', &query[..want.min(query.len())]);
            for (tag, body) in [
                (b'C', &b"SELECT 1\0"[..]),
                (b'E', &b"SERROR\0C42P01\0Mno \"t\"\0\0"[..]),
                (b'Z', &b"I"[..]),
            ] {
                let want = tracker.server_wants(tag, body.len());
                tracker.server_frame(tag, &body[..want.min(body.len())]);
            }
            let statements = tracker.take_events();
            assert!(statements.len() >= 2, "{statements:?}");
            // And one with every optional field set, each class and parse path.
            if let Some(AuditEvent::Statement { statement, .. }) = statements.first() {
                for (i, class) in [
                    crate::sql::Class::Read,
                    crate::sql::Class::Write,
                    crate::sql::Class::Function,
                    crate::sql::Class::Role,
                    crate::sql::Class::Ddl,
                    crate::sql::Class::Misc,
                    crate::sql::Class::MiscSet,
                ]
                .into_iter()
                .enumerate()
                {
                    let mut st = statement.clone();
                    let mut classification = (*st.class).clone();
                    classification.class = class;
                    classification.parse = if i % 2 == 0 {
                        crate::sql::ParsePath::Tokens
                    } else {
                        crate::sql::ParsePath::Ast
                    };
                    st.class = Arc::new(classification);
                    st.extra_objects = vec![crate::sql::Object {
                        kind: "FUNCTION".into(),
                        name: "f\"1".into(),
                    }];
                    st.prepared_statement = Some("select $1".into());
                    st.cursor_query = Some("select \\".into());
                    st.uncaptured = Some(super::super::statement::Uncaptured {
                        bytes: 10,
                        statements_run: 2,
                        statements_estimate: 3,
                    });
                    st.role = Some("r\u{2}".into());
                    st.outcome = super::super::statement::Outcome::Denied;
                    st.rows = None;
                    st.rows_total = Some(u64::MAX);
                    st.duration_ms = Some(f64::NAN);
                    st.parameters = Some(vec!["a\"".to_string(), String::new()].into());
                    st.denied_by = Some("rule-1".into());
                    events.push(AuditEvent::Statement {
                        ts: ts(),
                        session: session.clone(),
                        statement: st,
                    });
                }
            }
            events.extend(statements);
            for e in &events {
                let mut out = b"before".to_vec();
                e.write_json(&mut out).unwrap();
                // Whatever the text holds (quotes, newlines, control bytes), it is one line
                // that parses: SQL cannot forge a line of its own.
                assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
                assert!(out.ends_with(b"\n"));
                let parsed: serde_json::Value = serde_json::from_slice(&out[6..]).unwrap();
                assert_eq!(parsed["type"], e.kind());
                if let AuditEvent::Statement { statement, .. } = e {
                    assert_eq!(parsed["statement"], &*statement.statement);
                }
                assert_eq!(
                    String::from_utf8_lossy(&out[6..]),
                    String::from_utf8_lossy(&reference(e)),
                    "{}",
                    e.kind()
                );
            }
        }
    }

    #[test]
    fn json_shape() {
        let s = Arc::new(SessionInfo {
            session_id: "abc-1".into(),
            user: Some("alice".into()),
            database: Some("app".into()),
            client_addr: "10.1.2.3".parse().unwrap(),
            client_port: 5555,
            application_name: None,
            tls: true,
            auth_method: Some("scram-sha-256".into()),
            upstream_auth_method: Some("scram-sha-256".into()),
            service: false,
        });
        let mut out = Vec::new();
        AuditEvent::AuthFailure {
            ts: now_rfc3339(),
            session: s,
            failure: AuthFailure {
                sqlstate: Some("28P01".into()),
                reason: "password authentication failed for user \"alice\"".into(),
                blocked_until: None,
            },
        }
        .write_json(&mut out)
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["type"], "auth_failure");
        assert_eq!(v["client_addr"], "10.1.2.3");
        assert_eq!(v["sqlstate"], "28P01");
        assert_eq!(v["tls"], true);
        let ts = v["ts"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-11-23T11:00:00.123456Z".len(), "{ts}");
    }

    #[test]
    fn cancel_json_shape() {
        let canceller = Arc::new(SessionInfo {
            session_id: "abc-9".into(),
            user: None,
            database: None,
            client_addr: "10.1.2.4".parse().unwrap(),
            client_port: 6000,
            application_name: None,
            tls: true,
            auth_method: None,
            upstream_auth_method: None,
            service: false,
        });
        let mut out = Vec::new();
        AuditEvent::Cancel {
            ts: now_rfc3339(),
            session: canceller,
            cancel: CancelEvent {
                result: "refused",
                reason: Some("unknown key".into()),
                target_session_id: None,
                target_user: None,
                target_database: None,
                target_client_addr: None,
            },
        }
        .write_json(&mut out)
        .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["type"], "cancel");
        assert_eq!(v["session_id"], "abc-9");
        assert_eq!(v["client_addr"], "10.1.2.4");
        assert_eq!(v["result"], "refused");
        assert_eq!(v["reason"], "unknown key");
        assert!(v["target_session_id"].is_null());
        assert!(v["user"].is_null());
    }
}
