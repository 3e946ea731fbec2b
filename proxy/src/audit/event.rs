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

#[derive(Serialize)]
struct Line<'a, T: Serialize> {
    ts: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    #[serde(flatten)]
    session: &'a SessionInfo,
    #[serde(flatten)]
    extra: &'a T,
}

#[derive(Serialize)]
struct Nothing {}

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

    /// Appends the event as one JSON line (with the newline).
    pub fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        match self {
            AuditEvent::SessionStart { ts, session } => serde_json::to_writer(
                &mut *out,
                &Line {
                    ts,
                    kind: "session_start",
                    session,
                    extra: &Nothing {},
                },
            ),
            AuditEvent::AuthFailure {
                ts,
                session,
                failure,
            } => serde_json::to_writer(
                &mut *out,
                &Line {
                    ts,
                    kind: "auth_failure",
                    session,
                    extra: failure,
                },
            ),
            AuditEvent::SessionEnd { ts, session, end } => serde_json::to_writer(
                &mut *out,
                &Line {
                    ts,
                    kind: "session_end",
                    session,
                    extra: end,
                },
            ),
            AuditEvent::Statement {
                ts,
                session,
                statement,
            } => serde_json::to_writer(
                &mut *out,
                &Line {
                    ts,
                    kind: "statement",
                    session,
                    extra: &statement.fields(),
                },
            ),
            AuditEvent::Cancel {
                ts,
                session,
                cancel,
            } => serde_json::to_writer(
                &mut *out,
                &Line {
                    ts,
                    kind: "cancel",
                    session,
                    extra: cancel,
                },
            ),
            AuditEvent::ConnectionRefused {
                ts,
                session,
                refusal,
            } => serde_json::to_writer(
                &mut *out,
                &Line {
                    ts,
                    kind: "connection_refused",
                    session,
                    extra: refusal,
                },
            ),
            AuditEvent::Admin { ts, session, admin } => serde_json::to_writer(
                &mut *out,
                &Line {
                    ts,
                    kind: "admin",
                    session,
                    extra: admin,
                },
            ),
        }?;
        out.push(b'\n');
        Ok(())
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
