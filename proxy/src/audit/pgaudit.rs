//! `[audit] format = "pgaudit"`: statement events as pgAudit's log lines, so pipelines
//! built on pgAudit (regexes on `AUDIT: SESSION,...`) keep working.
//!
//! Each line starts with what PostgreSQL's `log_line_prefix` usually supplies and pgAudit
//! cannot know (time, `user@database`, the client's address and port, the session id), then
//! the outcome (pgAudit only logs statements that ran; the proxy also logs failed and
//! skipped ones), then pgAudit's own fields:
//!
//! `2026-11-23T10:00:00.000000Z alice@app 10.0.0.5:51234 s-1 ok AUDIT: SESSION,1,1,READ,SELECT,TABLE,sales.orders,select * from sales.orders,<not logged>`
//!
//! Like pgAudit with `log_relation = on`, a statement touching several objects gets one
//! line per object. Events that are not statements (logins, failures, session ends) are
//! written as `... PGVIGIL: {json}` with the same prefix.

use super::event::AuditEvent;
use super::statement::StatementEvent;
use super::SessionInfo;
use crate::sql::Class;

/// Appends `event` in pgAudit's format (one or more lines, each ending in a newline).
pub fn write(event: &AuditEvent, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let AuditEvent::Statement { statement, .. } = event else {
        prefix(event.ts(), event.session(), out);
        out.extend_from_slice(b"PGVIGIL: ");
        return event.write_json(out);
    };
    let mut objects = statement.objects().peekable();
    if objects.peek().is_none() {
        line(event, statement, "", "", out);
    }
    for o in objects {
        line(event, statement, &o.kind, &o.name, out);
    }
    Ok(())
}

fn prefix(ts: &str, s: &SessionInfo, out: &mut Vec<u8>) {
    let user = s.user.as_deref().unwrap_or("");
    let db = s.database.as_deref().unwrap_or("");
    out.extend_from_slice(
        format!(
            "{ts} {user}@{db} {}:{} {} ",
            s.client_addr, s.client_port, s.session_id
        )
        .as_bytes(),
    );
}

fn line(event: &AuditEvent, st: &StatementEvent, kind: &str, name: &str, out: &mut Vec<u8>) {
    prefix(event.ts(), event.session(), out);
    out.extend_from_slice(st.outcome.as_str().as_bytes());
    if let Some(code) = &st.sqlstate {
        out.push(b' ');
        out.extend_from_slice(code.as_bytes());
    }
    out.extend_from_slice(
        format!(
            " AUDIT: SESSION,{},{},{},{},",
            st.statement_id,
            st.substatement_id,
            pgaudit_class(st.class.class),
            st.class.command
        )
        .as_bytes(),
    );
    csv(kind, out);
    out.push(b',');
    csv(name, out);
    out.push(b',');
    csv(&st.statement, out);
    out.push(b',');
    match &st.parameters {
        None => out.extend_from_slice(b"<not logged>"),
        Some(p) if p.is_empty() => out.extend_from_slice(b"<none>"),
        Some(p) => csv(&p.join(","), out),
    }
    out.push(b'\n');
}

/// The class as pgAudit prints it: pgAudit's MISC_SET statements appear as MISC in its
/// lines (pipelines parsing them expect the classes pgAudit writes); the JSON log keeps
/// MISC_SET.
fn pgaudit_class(class: Class) -> &'static str {
    match class {
        Class::MiscSet => Class::Misc.as_str(),
        other => other.as_str(),
    }
}

/// pgAudit's CSV rule: quote a field holding a quote, comma or line break, doubling quotes.
/// Unlike pgAudit (whose lines go through the server log's own framing), line breaks are
/// written as `\n` and `\r` so each statement stays on one line of the file.
fn csv(field: &str, out: &mut Vec<u8>) {
    if field.contains(['"', ',', '\n', '\r']) {
        out.push(b'"');
        for ch in field.chars() {
            match ch {
                '"' => out.extend_from_slice(b"\"\""),
                '\n' => out.extend_from_slice(b"\\n"),
                '\r' => out.extend_from_slice(b"\\r"),
                c => {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
                }
            }
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field.as_bytes());
    }
}
