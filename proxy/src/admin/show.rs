//! Running console commands against the live state: typed result sets for `SHOW ...`,
//! audited actions for `KILL`, `BLOCK`, `UNBLOCK` and `RELOAD`.

use super::command::{Command, USAGE};
use super::Reply;
use crate::audit::{now_rfc3339, rfc3339_at, AdminAction, AuditEvent, SessionInfo};
use crate::detect::engine::now_millis;
use crate::frontend::registry::KillReason;
use crate::frontend::Shared;
use bytes::{BufMut, BytesMut};
use pgwire::messages::data::{DataRow, FieldDescription, RowDescription};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// PostgreSQL type oids the console's columns use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Bool = 16,
    Int8 = 20,
    Int4 = 23,
    Text = 25,
    Inet = 869,
    Timestamptz = 1184,
    Interval = 1186,
}

/// One column of a result set.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: &'static str,
    pub ty: Type,
}

fn col(name: &'static str, ty: Type) -> Column {
    Column { name, ty }
}

/// The RowDescription of `columns` (text format).
pub fn row_description(columns: &[Column]) -> RowDescription {
    let fields = columns
        .iter()
        .map(|c| {
            let size = match c.ty {
                Type::Bool => 1,
                Type::Int8 | Type::Timestamptz => 8,
                Type::Int4 => 4,
                Type::Interval => 16,
                Type::Text | Type::Inet => -1,
            };
            FieldDescription::new(c.name.to_string(), 0, 0, c.ty as u32, size, -1, 0)
        })
        .collect();
    RowDescription::new(fields)
}

/// A DataRow of text values (`None` is NULL).
pub fn data_row(values: &[Option<String>]) -> DataRow {
    let mut data = BytesMut::new();
    for v in values {
        match v {
            None => data.put_i32(-1),
            Some(s) => {
                // Values are built here from bounded state; a longer one is cut, not
                // allowed to wrap the length.
                let bytes = &s.as_bytes()[..s.len().min(i32::MAX as usize / 2)];
                data.put_i32(bytes.len() as i32);
                data.put_slice(bytes);
            }
        }
    }
    DataRow::new(data, i16::try_from(values.len()).unwrap_or(i16::MAX))
}

/// PostgreSQL's text form of a timestamptz (UTC).
pub fn timestamptz(t: SystemTime) -> String {
    let millis = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    from_rfc3339(&rfc3339_at(millis))
}

/// `2026-01-02T03:04:05.123456Z` as PostgreSQL prints it: `2026-01-02 03:04:05.123456+00`.
fn from_rfc3339(s: &str) -> String {
    let s = s.replacen('T', " ", 1);
    match s.strip_suffix('Z') {
        Some(base) => format!("{base}+00"),
        None => s,
    }
}

/// PostgreSQL's text form of an interval: `HH:MM:SS.ffffff` (hours may exceed 24).
pub fn interval(d: Duration) -> String {
    let secs = d.as_secs();
    format!(
        "{:02}:{:02}:{:02}.{:06}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60,
        d.subsec_micros()
    )
}

fn some<T: ToString>(v: T) -> Option<String> {
    Some(v.to_string())
}

fn rows_tag(n: usize) -> String {
    format!("SHOW {n}")
}

/// Runs one command; `Err` is the message of an ERROR for the client.
pub async fn run(shared: &Arc<Shared>, cmd: &Command, who: &SessionInfo) -> Result<Reply, String> {
    let reply = match cmd {
        Command::ShowSessions => sessions(shared),
        Command::ShowStats => stats(shared),
        Command::ShowRules => rules(shared),
        Command::ShowFindings(n) => findings(shared, *n),
        Command::ShowBlocks => blocks(shared),
        Command::ShowConfig => config(shared),
        Command::ShowVersion => single("version", format!("pgvigil {}", env!("CARGO_PKG_VERSION"))),
        Command::ShowHelp => single("commands", USAGE.to_string()),
        Command::Empty => Reply {
            columns: Vec::new(),
            rows: Vec::new(),
            tag: String::new(),
        },
        Command::Kill(_) | Command::Block(..) | Command::Unblock(_) | Command::Reload => {
            return act(shared, cmd, who).await
        }
    };
    Ok(reply)
}

fn single(name: &'static str, value: String) -> Reply {
    Reply {
        columns: vec![col(name, Type::Text)],
        rows: vec![vec![Some(value)]],
        tag: rows_tag(1),
    }
}

fn sessions(shared: &Shared) -> Reply {
    let columns = vec![
        col("session_id", Type::Text),
        col("user", Type::Text),
        col("database", Type::Text),
        col("client_addr", Type::Inet),
        col("client_port", Type::Int4),
        col("application_name", Type::Text),
        col("tls", Type::Bool),
        col("auth_method", Type::Text),
        col("started", Type::Timestamptz),
        col("statements", Type::Int8),
        col("bytes_in", Type::Int8),
        col("bytes_out", Type::Int8),
        col("state", Type::Text),
        col("class", Type::Text),
        col("command", Type::Text),
        col("statement_age", Type::Interval),
    ];
    let rows: Vec<Vec<Option<String>>> = shared
        .sessions
        .snapshot()
        .into_iter()
        .map(|s| {
            let i = &s.info;
            let (class, command, age) = match &s.view.current {
                Some((c, started)) if s.view.busy => (
                    some(c.class.as_str()),
                    some(&c.command),
                    some(interval(started.elapsed())),
                ),
                _ => (None, None, None),
            };
            vec![
                some(&i.session_id),
                i.user.clone(),
                i.database.clone(),
                some(i.client_addr),
                some(i.client_port),
                s.view
                    .application_name
                    .clone()
                    .or_else(|| i.application_name.clone()),
                some(if i.tls { "t" } else { "f" }),
                i.auth_method.clone(),
                some(timestamptz(s.started)),
                some(s.view.statements),
                some(s.bytes_in),
                some(s.bytes_out),
                some(s.view.state()),
                class,
                command,
                age,
            ]
        })
        .collect();
    Reply {
        columns,
        tag: rows_tag(rows.len()),
        rows,
    }
}

fn stats(shared: &Shared) -> Reply {
    let columns = vec![
        col("database", Type::Text),
        col("user", Type::Text),
        col("sessions", Type::Int8),
        col("statements", Type::Int8),
        col("read", Type::Int8),
        col("write", Type::Int8),
        col("function", Type::Int8),
        col("role", Type::Int8),
        col("ddl", Type::Int8),
        col("misc", Type::Int8),
        col("misc_set", Type::Int8),
        col("errors", Type::Int8),
        col("denied", Type::Int8),
        col("auth_failures", Type::Int8),
    ];
    let rows: Vec<Vec<Option<String>>> = shared
        .sessions
        .stats()
        .into_iter()
        .map(|((db, user), r)| {
            let mut row = vec![some(db), some(user), some(r.sessions), some(r.statements)];
            row.extend(r.by_class.iter().map(some));
            row.extend([some(r.errors), some(r.denied), some(r.auth_failures)]);
            row
        })
        .collect();
    Reply {
        columns,
        tag: rows_tag(rows.len()),
        rows,
    }
}

fn rules(shared: &Shared) -> Reply {
    let columns = vec![
        col("id", Type::Text),
        col("on", Type::Text),
        col("severity", Type::Text),
        col("action", Type::Text),
        col("threshold", Type::Int8),
        col("window", Type::Interval),
        col("block_for", Type::Interval),
        col("category", Type::Text),
        col("description", Type::Text),
    ];
    let rows: Vec<Vec<Option<String>>> = shared
        .audit
        .detector()
        .rules()
        .iter()
        .map(|r| {
            let block = r.action == crate::detect::rule::Action::Block;
            vec![
                some(&r.id),
                some(r.on.as_str()),
                some(r.severity.as_str()),
                some(if block { "block" } else { "alert" }),
                some(r.threshold),
                some(interval(r.window)),
                r.block_for.filter(|_| block).map(interval),
                some(&r.category),
                some(&r.description),
            ]
        })
        .collect();
    Reply {
        columns,
        tag: rows_tag(rows.len()),
        rows,
    }
}

fn findings(shared: &Shared, n: usize) -> Reply {
    let columns = vec![
        col("ts", Type::Timestamptz),
        col("rule_id", Type::Text),
        col("severity", Type::Text),
        col("action", Type::Text),
        col("user", Type::Text),
        col("database", Type::Text),
        col("client_addr", Type::Inet),
        col("session_id", Type::Text),
        col("count", Type::Int8),
        col("blocked_until", Type::Timestamptz),
        col("statement", Type::Text),
    ];
    let rows: Vec<Vec<Option<String>>> = shared
        .audit
        .detector()
        .recent_findings(n)
        .into_iter()
        .map(|f| {
            vec![
                some(from_rfc3339(&f.ts)),
                some(f.rule_id),
                some(f.severity.as_str()),
                some(f.action),
                f.user,
                f.database,
                f.client_addr,
                f.session_id,
                some(f.count),
                f.blocked_until.map(|t| from_rfc3339(&t)),
                f.statement,
            ]
        })
        .collect();
    Reply {
        columns,
        tag: rows_tag(rows.len()),
        rows,
    }
}

fn blocks(shared: &Shared) -> Reply {
    let columns = vec![
        col("client_addr", Type::Inet),
        col("until", Type::Timestamptz),
        col("remaining", Type::Interval),
        col("blocked_by", Type::Text),
    ];
    let now = now_millis();
    let rows: Vec<Vec<Option<String>>> = shared
        .audit
        .detector()
        .blocks()
        .into_iter()
        .map(|(addr, b)| {
            vec![
                some(addr),
                some(from_rfc3339(&rfc3339_at(b.until))),
                some(interval(Duration::from_millis(b.until.saturating_sub(now)))),
                some(b.rule_id),
            ]
        })
        .collect();
    Reply {
        columns,
        tag: rows_tag(rows.len()),
        rows,
    }
}

/// The settings an operator asks about; no secret is among them (passwords, keys and
/// webhook secrets are never shown).
fn config(shared: &Shared) -> Reply {
    let c = shared.config();
    let f = &c.file;
    let d = |d: Duration| humantime::format_duration(d).to_string();
    let mut kv: Vec<(&str, String)> = vec![
        ("listen.addr", f.listen.addr.to_string()),
        (
            "listen.max_client_conn",
            f.listen.max_client_conn.to_string(),
        ),
        ("listen.startup_timeout", d(f.listen.startup_timeout)),
        ("listen.shutdown_timeout", d(f.listen.shutdown_timeout)),
        ("listen.proxy_protocol", f.listen.proxy_protocol.to_string()),
        (
            "listen.tls.mode",
            format!("{:?}", f.listen.tls.mode).to_lowercase(),
        ),
        ("upstream.host", f.upstream.host.clone()),
        ("upstream.port", f.upstream.port.to_string()),
        ("upstream.sslmode", f.upstream.sslmode.as_str().to_string()),
        ("upstream.connect_timeout", d(f.upstream.connect_timeout)),
        ("auth.mode", format!("{:?}", f.auth.mode).to_lowercase()),
        ("audit.log", f.audit.log.clone()),
        (
            "audit.format",
            format!("{:?}", f.audit.format).to_lowercase(),
        ),
        (
            "audit.redact",
            format!("{:?}", f.audit.redact).to_lowercase(),
        ),
        ("audit.log_noise", f.audit.log_noise.to_string()),
        (
            "audit.service_accounts",
            f.audit.service_accounts.join(", "),
        ),
        (
            "metrics.listen",
            f.metrics.listen.map(|a| a.to_string()).unwrap_or_default(),
        ),
        ("rules.loaded", c.rules.len().to_string()),
        ("rules.block_loopback", f.rules.block_loopback.to_string()),
        ("admin.database", f.admin.database.clone()),
        ("admin.users", f.admin.users.join(", ")),
    ];
    for name in f.databases.keys() {
        kv.push(("databases", name.clone()));
    }
    let rows: Vec<Vec<Option<String>>> = kv
        .into_iter()
        .map(|(k, v)| vec![some(k), Some(v)])
        .collect();
    Reply {
        columns: vec![col("key", Type::Text), col("value", Type::Text)],
        tag: rows_tag(rows.len()),
        rows,
    }
}

/// KILL, BLOCK, UNBLOCK, RELOAD: done, then audited (`type: "admin"`), failures too.
async fn act(shared: &Arc<Shared>, cmd: &Command, who: &SessionInfo) -> Result<Reply, String> {
    let user = who.user.clone().unwrap_or_default();
    let (action, target, outcome): (
        &'static str,
        Option<String>,
        Result<(String, String), String>,
    ) = match cmd {
        Command::Kill(id) => {
            let reason = KillReason {
                    message: format!(
                        "terminating connection due to administrator command (pgvigil console, user {user})"
                    ),
                    by: format!("administrator {user}"),
                };
            let r = if shared.sessions.kill(id, reason) {
                Ok(("KILL 1".to_string(), format!("session {id} ended")))
            } else {
                Err(format!("no session with id {id:?} (see SHOW SESSIONS)"))
            };
            ("KILL", Some(id.clone()), r)
        }
        Command::Block(addr, d) => {
            let until = now_millis().saturating_add(d.as_millis() as u64);
            let before = shared.sessions.len();
            shared
                .audit
                .detector()
                .block_manual(*addr, until, &format!("admin:{user}"));
            let detail = format!(
                "blocked until {} ({} live sessions before)",
                rfc3339_at(until),
                before
            );
            (
                "BLOCK",
                Some(addr.to_string()),
                Ok(("BLOCK".to_string(), detail)),
            )
        }
        Command::Unblock(addr) => {
            let r = if shared.audit.detector().unblock(*addr) {
                Ok(("UNBLOCK".to_string(), "block lifted".to_string()))
            } else {
                Err(format!("{addr} is not blocked (see SHOW BLOCKS)"))
            };
            ("UNBLOCK", Some(addr.to_string()), r)
        }
        Command::Reload => {
            // The same path as SIGHUP: the new file is checked before anything changes,
            // and a bad one is reported in the log and leaves the running config.
            // SAFETY: kill(2) on our own pid with a signal the process handles.
            let rc = unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
            let r = if rc == 0 {
                Ok((
                    "RELOAD".to_string(),
                    "reload requested (as SIGHUP); see pgvigil's log for the result".to_string(),
                ))
            } else {
                Err(format!(
                    "cannot signal the reload: {}",
                    std::io::Error::last_os_error()
                ))
            };
            ("RELOAD", None, r)
        }
        _ => return Err("not an action".into()),
    };
    let (result, detail) = match &outcome {
        Ok((_, d)) => ("ok", d.clone()),
        Err(e) => ("error", e.clone()),
    };
    tracing::info!(
        action,
        target = target.as_deref().unwrap_or(""),
        result,
        "admin console action"
    );
    shared
        .audit
        .emit(AuditEvent::Admin {
            ts: now_rfc3339(),
            session: Arc::new(who.clone()),
            admin: AdminAction {
                action,
                target,
                result,
                detail: Some(detail),
            },
        })
        .await;
    let (tag, _) = outcome?;
    Ok(Reply {
        columns: Vec::new(),
        rows: Vec::new(),
        tag,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms() {
        assert_eq!(
            interval(Duration::from_millis(3_723_500)),
            "01:02:03.500000"
        );
        assert_eq!(
            from_rfc3339("2026-01-02T03:04:05.123456Z"),
            "2026-01-02 03:04:05.123456+00"
        );
        let row = data_row(&[Some("ab".into()), None]);
        assert_eq!(row.field_count, 2);
        assert_eq!(
            &row.data[..],
            &[0, 0, 0, 2, b'a', b'b', 0xff, 0xff, 0xff, 0xff]
        );
    }
}
