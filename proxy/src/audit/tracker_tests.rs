//! Unit tests of `tracker.rs`: message sequences in, statement events out.

use super::*;
use crate::snapshot::load_str;
use std::path::Path;

fn tracker(audit: &str) -> Tracker {
    let text = format!("[listen.tls]\nmode = \"disable\"\n[audit]\n{audit}\n");
    let config = load_str(&text, Path::new("/tmp/t.toml")).unwrap_or_else(|e| panic!("{e}"));
    let session = Arc::new(SessionInfo {
        session_id: "s-1".into(),
        user: Some("alice".into()),
        database: Some("app".into()),
        client_addr: "127.0.0.1".parse().unwrap(),
        client_port: 1,
        application_name: None,
        tls: false,
        auth_method: None,
        upstream_auth_method: None,
        service: false,
    });
    Tracker::new(Arc::new(config), Arc::new(Metrics::new()), session)
}

fn client(t: &mut Tracker, tag: u8, body: &[u8]) {
    let want = t.client_wants(tag, body.len());
    if want > 0 && !body.is_empty() {
        t.client_frame(tag, &body[..want.min(body.len())]);
    }
}

fn server(t: &mut Tracker, tag: u8, body: &[u8]) {
    let want = t.server_wants(tag, body.len());
    if want > 0 && !body.is_empty() {
        t.server_frame(tag, &body[..want.min(body.len())]);
    }
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut b = name.as_bytes().to_vec();
    b.push(0);
    b.extend_from_slice(sql.as_bytes());
    b.extend_from_slice(&[0, 0, 0]);
    b
}

fn bind(portal: &str, stmt: &str) -> Vec<u8> {
    let mut b = portal.as_bytes().to_vec();
    b.push(0);
    b.extend_from_slice(stmt.as_bytes());
    b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
    b
}

fn execute(portal: &str) -> Vec<u8> {
    execute_limit(portal, 0)
}

fn execute_limit(portal: &str, max_rows: i32) -> Vec<u8> {
    let mut b = portal.as_bytes().to_vec();
    b.push(0);
    b.extend_from_slice(&max_rows.to_be_bytes());
    b
}

fn error(code: &str) -> Vec<u8> {
    format!("SERROR\0C{code}\0Mboom\0\0").into_bytes()
}

fn statements(t: &mut Tracker) -> Vec<StatementEvent> {
    t.take_events()
        .into_iter()
        .filter_map(|e| match e {
            AuditEvent::Statement { statement, .. } => Some(*statement),
            _ => None,
        })
        .collect()
}

#[test]
fn named_statement_with_describe_and_suspended_portal() {
    let mut t = tracker("");
    client(&mut t, b'P', &parse("s1", "select * from t"));
    client(&mut t, b'D', b"Ss1\0");
    client(&mut t, b'S', b"");
    server(&mut t, b'1', b"");
    server(&mut t, b't', b"\0\0");
    server(&mut t, b'T', b"\0\0");
    server(&mut t, b'Z', b"I");
    assert!(statements(&mut t).is_empty(), "preparing runs nothing");
    // Two Executes of one portal with a row limit: suspended, then complete.
    client(&mut t, b'B', &bind("p1", "s1"));
    client(&mut t, b'E', &execute_limit("p1", 1));
    client(&mut t, b'E', &execute_limit("p1", 1));
    client(&mut t, b'S', b"");
    server(&mut t, b'2', b"");
    server(&mut t, b'D', b"");
    server(&mut t, b's', b"");
    server(&mut t, b'D', b"");
    server(&mut t, b'C', b"SELECT 1\0");
    server(&mut t, b'Z', b"I");
    let ev = statements(&mut t);
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|e| &*e.statement == "select * from t"));
    assert!(ev.iter().all(|e| e.outcome == Outcome::Ok));
    // A suspended batch returned exactly the row limit; the batches add up.
    assert_eq!(ev[0].rows, Some(1));
    assert_eq!(ev[1].rows, Some(1));
    assert_eq!((ev[0].rows_before, ev[0].rows_total), (0, Some(1)));
    assert_eq!((ev[1].rows_before, ev[1].rows_total), (1, Some(2)));
    assert!(ev[0].statement_id < ev[1].statement_id);
}

#[test]
fn failed_prepare_is_audited() {
    let mut t = tracker("");
    client(&mut t, b'P', &parse("", "select * from nope"));
    client(&mut t, b'D', b"S\0");
    client(&mut t, b'S', b"");
    server(&mut t, b'E', &error("42P01"));
    server(&mut t, b'Z', b"I");
    let ev = statements(&mut t);
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].outcome, Outcome::Error);
    assert_eq!(ev[0].sqlstate.as_deref(), Some("42P01"));
    assert_eq!(&*ev[0].statement, "select * from nope");
}

#[test]
fn empty_query_and_unknown_portal() {
    let mut t = tracker("");
    client(&mut t, b'Q', b" -- nothing\n\0");
    server(&mut t, b'I', b"");
    server(&mut t, b'Z', b"I");
    assert!(statements(&mut t).is_empty());
    client(&mut t, b'E', &execute("never_bound"));
    client(&mut t, b'S', b"");
    server(&mut t, b'E', &error("34000"));
    server(&mut t, b'Z', b"I");
    let ev = statements(&mut t);
    assert_eq!(ev.len(), 1);
    assert_eq!(&*ev[0].statement, "<unknown portal>");
    assert_eq!(ev[0].class.command, "UNKNOWN");
    assert_eq!(ev[0].outcome, Outcome::Error);
}

#[test]
fn unanswered_statements_are_abandoned_not_lost() {
    let mut t = tracker("");
    client(&mut t, b'Q', b"select pg_sleep(100)\0");
    client(&mut t, b'P', &parse("", "select * from t"));
    client(&mut t, b'B', &bind("", ""));
    client(&mut t, b'E', &execute(""));
    t.abandon();
    let ev = statements(&mut t);
    assert_eq!(ev.len(), 2);
    assert!(ev
        .iter()
        .all(|e| e.outcome == Outcome::Error && e.sqlstate.is_none()));
}

#[test]
fn parameters_logged_only_when_asked() {
    for (audit, expect) in [
        ("", None),
        ("log_parameters = true", Some(vec!["42".to_string()])),
    ] {
        let mut t = tracker(audit);
        client(&mut t, b'P', &parse("", "select * from t where a = $1"));
        let mut b = b"\0\0\0\0\0\x01".to_vec();
        b.extend_from_slice(&2i32.to_be_bytes());
        b.extend_from_slice(b"42\0\0");
        client(&mut t, b'B', &b);
        client(&mut t, b'E', &execute(""));
        client(&mut t, b'S', b"");
        for (tag, body) in [
            (b'1', &b""[..]),
            (b'2', b""),
            (b'C', b"SELECT 1\0"),
            (b'Z', b"I"),
        ] {
            server(&mut t, tag, body);
        }
        let ev = statements(&mut t);
        assert_eq!(ev.len(), 1);
        assert_eq!(ev[0].parameters.as_deref().map(|p| p.to_vec()), expect);
    }
}

#[test]
fn hostile_frames_never_panic() {
    let mut t = tracker("log_parameters = true");
    let junk: [&[u8]; 5] = [b"", b"\0", b"\xff\xfe\xfd", b"S", b"\0\0\0\0\0\0\0\0\0\0"];
    for tag in [
        b'Q', b'P', b'B', b'E', b'C', b'D', b'F', b'S', b'H', b'X', b'?',
    ] {
        for j in junk {
            client(&mut t, tag, j);
        }
    }
    for tag in [
        b'C', b'E', b'Z', b'1', b'2', b'3', b'n', b'T', b's', b'I', b'V', b'S', b't',
    ] {
        for j in junk {
            server(&mut t, tag, j);
        }
    }
    t.abandon();
    let _ = statements(&mut t);
}

/// A Query longer than the capture is seen only up to it. With `max_parse_bytes` as large
/// as the capture, the captured prefix was not longer than the parse limit, so it was
/// parsed as if whole: a literal padded to end exactly at the capture made
/// `select '<padding>', * from secrets` a bare `select <literal>`, tool noise, not
/// written by default. The capture takes one byte more than the parse limit, so the
/// classifier knows the text was cut.
#[test]
fn query_cut_at_the_capture_is_not_noise() {
    let limit = CAPTURE_MIN;
    let mut t = tracker(&format!("max_parse_bytes = {limit}"));
    let mut sql = format!("select '{}'", "x".repeat(limit - "select ''".len()));
    assert_eq!(sql.len(), limit);
    sql.push_str(", * from secrets");
    let mut body = sql.into_bytes();
    body.push(0);
    client(&mut t, b'Q', &body);
    server(&mut t, b'C', b"SELECT 1\0");
    server(&mut t, b'Z', b"I");
    let ev = statements(&mut t);
    assert_eq!(ev.len(), 1);
    assert!(!ev[0].class.noise, "a cut statement judged as noise");
}

/// The last statement of a Query cut by the capture is seen only in part, however short
/// that part: `...; select 'x'` cut right after the literal (the rest being
/// `, * from secrets`) must not pass as tool noise. Default limits.
#[test]
fn last_statement_of_a_cut_query_is_not_noise() {
    let mut t = tracker("");
    let tail = "; select 'x'";
    let first = format!(
        "select '{}'",
        "y".repeat(CAPTURE_MIN - tail.len() - "select ''".len())
    );
    let mut sql = format!("{first}{tail}");
    assert_eq!(sql.len(), CAPTURE_MIN);
    sql.push_str(", * from secrets");
    let mut body = sql.into_bytes();
    body.push(0);
    client(&mut t, b'Q', &body);
    server(&mut t, b'C', b"SELECT 1\0");
    server(&mut t, b'C', b"SELECT 1\0");
    server(&mut t, b'Z', b"I");
    let ev = statements(&mut t);
    assert_eq!(ev.len(), 2);
    assert!(
        ev.iter().all(|e| !e.class.noise),
        "a cut statement judged as noise"
    );
}

/// The same for a Parse whose text the capture cut (its name takes part of the capture,
/// so the text seen can be shorter than the parse limit).
#[test]
fn parse_cut_at_the_capture_is_not_noise() {
    let limit = CAPTURE_MIN;
    let mut t = tracker(&format!("max_parse_bytes = {limit}"));
    let name = "stmt_with_a_name";
    let seen = limit + 1 - name.len() - 1;
    let mut sql = format!("select '{}'", "x".repeat(seen - "select ''".len()));
    sql.push_str(", * from secrets");
    client(&mut t, b'P', &parse(name, &sql));
    client(&mut t, b'B', &bind("", name));
    client(&mut t, b'E', &execute(""));
    client(&mut t, b'S', b"");
    server(&mut t, b'1', b"");
    server(&mut t, b'2', b"");
    server(&mut t, b'C', b"SELECT 1\0");
    server(&mut t, b'Z', b"I");
    let ev = statements(&mut t);
    assert_eq!(ev.len(), 1);
    assert!(!ev[0].class.noise, "a cut statement judged as noise");
}

/// A Query of `n` copies of `select 1;` (9 bytes each), as its body.
fn many_selects(n: usize) -> Vec<u8> {
    let mut body = "select 1;".repeat(n).into_bytes();
    body.push(0);
    body
}

/// The statements of a huge simple query past the capture are summed into one event with
/// their byte count, the statements the server ran there, and an estimate; not logged one
/// placeholder each (a cheap way to fill the audit volume).
#[test]
fn query_past_the_capture_is_one_summary_event() {
    let mut t = tracker("");
    let n = 200_000;
    let body = many_selects(n);
    client(&mut t, b'Q', &body);
    for _ in 0..n {
        server(&mut t, b'C', b"SELECT 1\0");
    }
    server(&mut t, b'Z', b"I");
    let ev = statements(&mut t);
    let summary: Vec<_> = ev.iter().filter(|e| e.uncaptured.is_some()).collect();
    assert_eq!(summary.len(), 1, "one summary event");
    let u = summary[0].uncaptured.unwrap();
    let captured = ev.len() - 1;
    assert_eq!(captured as u64 + u.statements_run, n as u64);
    assert_eq!(u.bytes, (body.len() - 1 - CAPTURE_MIN) as u64);
    let est = u.statements_estimate as f64;
    assert!((est / u.statements_run as f64 - 1.0).abs() < 0.01, "{u:?}");
    assert_eq!(summary[0].outcome, Outcome::Ok);
    assert_eq!(summary[0].rows, Some(u.statements_run));
    assert!(ev.iter().all(|e| !e.statement.contains("did not see")));
}

/// A failure past the capture is the summary's; the statements after it never ran.
#[test]
fn error_past_the_capture_fails_the_summary() {
    let mut t = tracker("");
    client(&mut t, b'Q', &many_selects(150_000));
    let captured = CAPTURE_MIN / 9 + 1;
    for _ in 0..captured + 10 {
        server(&mut t, b'C', b"SELECT 1\0");
    }
    server(&mut t, b'E', b"SERROR\0C22012\0Mdivision by zero\0\0");
    server(&mut t, b'Z', b"I");
    let ev = statements(&mut t);
    let s = ev.last().unwrap();
    let u = s.uncaptured.expect("summary last");
    assert_eq!(u.statements_run, 11, "{u:?}");
    assert_eq!(s.outcome, Outcome::Error);
    assert_eq!(s.sqlstate.as_deref(), Some("22012"));
    assert_eq!(ev.iter().filter(|e| e.uncaptured.is_some()).count(), 1);
}

/// A failure in the captured part: the part past the capture never ran, and says so.
#[test]
fn error_before_the_capture_ends_skips_the_summary() {
    let mut t = tracker("");
    client(&mut t, b'Q', &many_selects(150_000));
    server(&mut t, b'C', b"SELECT 1\0");
    server(&mut t, b'E', b"SERROR\0C22012\0Mdivision by zero\0\0");
    server(&mut t, b'Z', b"I");
    let ev = statements(&mut t);
    let s = ev.last().unwrap();
    let u = s.uncaptured.expect("summary last");
    assert_eq!(s.outcome, Outcome::Skipped);
    assert_eq!(u.statements_run, 0);
    assert!((33_000..34_000).contains(&u.statements_estimate), "{u:?}");
    assert_eq!(ev[1].outcome, Outcome::Error);
    assert!(ev[2..ev.len() - 1]
        .iter()
        .all(|e| e.outcome == Outcome::Skipped));
}

/// The session ends while the part past the capture runs: its fate is unknown.
#[test]
fn session_ending_past_the_capture_logs_the_summary() {
    let mut t = tracker("");
    client(&mut t, b'Q', &many_selects(150_000));
    for _ in 0..CAPTURE_MIN / 9 + 5 {
        server(&mut t, b'C', b"SELECT 1\0");
    }
    t.abandon();
    let ev = statements(&mut t);
    let s = ev.last().unwrap();
    assert_eq!(s.uncaptured.unwrap().statements_run, 4);
    assert_eq!(s.outcome, Outcome::Error);
    assert!(s.error.as_deref().unwrap().contains("no reply"));
}

/// One statement longer than the capture: its own event covers it, no summary.
#[test]
fn one_long_statement_needs_no_summary() {
    let mut t = tracker("");
    let mut body = format!("select length('{}')", "a".repeat(2 * CAPTURE_MIN)).into_bytes();
    body.push(0);
    client(&mut t, b'Q', &body);
    server(&mut t, b'C', b"SELECT 1\0");
    server(&mut t, b'Z', b"I");
    let ev = statements(&mut t);
    assert_eq!(ev.len(), 1);
    assert!(ev[0].uncaptured.is_none());
}

#[test]
fn lines_carry_the_application_name_of_their_moment() {
    // The session's fields are written once and reused: a name set after the login
    // (JDBC's SET application_name) must reach the lines after it, and only those.
    let mut t = tracker("");
    let mut lines = Vec::new();
    for name in [None, Some("dbeaver"), Some("dbeaver"), Some("psql")] {
        if let Some(name) = name {
            t.set_application_name(name.to_string());
        }
        client(&mut t, b'Q', b"SELECT * FROM accounts\0");
        server(&mut t, b'C', b"SELECT 1\0");
        server(&mut t, b'Z', b"I");
        for e in t.take_events() {
            if let AuditEvent::Statement { statement, .. } = &e {
                assert!(statement.logged && statement.session_json.is_some());
            }
            let mut out = Vec::new();
            e.write_json(&mut out).unwrap();
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            lines.push(v["application_name"].clone());
        }
    }
    assert_eq!(
        lines,
        [
            serde_json::Value::Null,
            "dbeaver".into(),
            "dbeaver".into(),
            "psql".into()
        ]
    );
}
